//! Run the `nestd` command line.

fn main() {}
