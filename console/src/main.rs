//! Attach to a running Nest node and administer it.

fn main() {}
