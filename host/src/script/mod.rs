//! Run operator Lua in a sandbox: console sessions and pricing strategies.
