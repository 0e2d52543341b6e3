//! The Nest node's HTTP side: the public API (`/v1/...`), `/metrics`, the admin API
//! behind its token (`/v1/admin/...`), the console sessions and their Lua bindings.
//! Everything it answers it asks the node with a `nest_node::node::Request`.

//!
//! Its modules are layered, each using only those above it in this list:
//! `http` (error answers, event streams), `auth` and `rate` (the admin guards), `procfs`,
//! `logring`, `api` (the state the handlers share and the public routes), `ops` (the
//! node's operations from blocking code), `session` (console sessions over `ops`),
//! `admin` (the admin routes, the console's among them), `server` (the composition).

pub mod admin;
pub mod api;
pub mod auth;
pub mod http;
pub mod logring;
pub mod ops;
pub mod procfs;
pub mod rate;
pub mod server;
pub mod session;

/// The node's modules and the crates it is built from, under the paths these modules use.
pub use nest_node::{crypto, devices, ledger, loader, manifest, market, net, node, package, script, store, telemetry};
