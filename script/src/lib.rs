//! Run operator Lua in a sandbox: console sessions and pricing strategies.
//!
//! A [`Session`] owns one Lua state with a reduced standard library (no `io`, `os`,
//! `package`, `debug`, `load`, `string.dump`; text chunks only), a memory limit, an
//! instruction budget and a cancel flag checked by a hook that also covers coroutines,
//! and bounded string patterns and output. Limits come from the manifest's `[lua]` table
//! ([`LuaLimits`]). See `docs/adr/0003-lua-sandbox.md`.

mod complete;
mod convert;
mod sandbox;
mod stdlib;

#[cfg(test)]
mod tests;

pub use sandbox::{EvalOutput, LuaLimits, ScriptError, Session};
