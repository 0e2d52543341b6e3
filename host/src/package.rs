//! Read, write, sign and verify plugin packages (`plugin.toml`, library, `plugin.sig`).
