//! The simulator's only source of randomness: the node's SplitMix64 ([`nest_node::rng`]),
//! seeded per run.

pub use nest_node::rng::Rng;
