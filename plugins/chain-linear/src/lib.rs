//! A main chain: units linked to their parent, longest chain wins, final at a fixed depth.
