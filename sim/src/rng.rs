//! The simulator's only source of randomness: the host's SplitMix64 ([`nest_host::rng`]),
//! seeded per run.

pub use nest_host::rng::Rng;
