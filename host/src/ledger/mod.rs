//! Keep accounts, verify and apply transactions, compute state digests.
