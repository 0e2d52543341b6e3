//! Proof of authority: a fixed, ordered list of authorities signs blocks in turn.
