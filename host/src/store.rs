//! Persist blocks, ledger state and consensus data in fjall.
