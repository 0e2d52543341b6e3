//! Services the host lends to every plugin instance: its key, hashing, logging, pricing.
//!
//! The node key never crosses the boundary: a plugin asks the host to sign, the way a
//! device asks its secure element.

use crate::types::{Hash32, PublicKey, Signature};
use abi_stable::{
    StableAbi, sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RArc, RResult, RSlice, RStr, RString},
};

/// Severity of a plugin's log line.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Fine-grained detail.
    Trace,
    /// Diagnostics for developers.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something failed.
    Error,
}

/// The host side of the boundary, implemented by `nestd` (and by test hosts).
#[sabi_trait]
pub trait HostServices: Send + Sync + Clone {
    /// The node's public key (its identity as a validator).
    fn public_key(&self) -> PublicKey;

    /// Signs `message` with the node key.
    fn sign(&self, message: RSlice<'_, u8>) -> Signature;

    /// Checks an Ed25519 signature.
    fn verify(&self, key: &PublicKey, message: RSlice<'_, u8>, signature: &Signature) -> bool;

    /// SHA-256 of `bytes`.
    fn hash(&self, bytes: RSlice<'_, u8>) -> Hash32;

    /// Writes a line to the node's log, tagged with the plugin instance.
    fn log(&self, level: LogLevel, message: RStr<'_>);

    /// Runs the operator's pricing strategy `strategy` on a JSON context; returns the price.
    #[sabi(last_prefix_field)]
    fn price(&self, strategy: RStr<'_>, context_json: RStr<'_>) -> RResult<u64, RString>;
}

/// The FFI-safe handle to the host services, as it crosses the boundary.
pub type HostBox = HostServices_TO<'static, RArc<()>>;

/// The host services as a plugin sees them: cheap to clone, safe to keep.
#[derive(Clone)]
pub struct Host(HostBox);

impl Host {
    /// Wraps a host implementation (used by the host and by test hosts).
    pub fn new<T: HostServices + 'static>(services: T) -> Self {
        Self(HostServices_TO::from_ptr(RArc::new(services), TD_Opaque))
    }

    /// Wraps the handle received through the boundary.
    pub fn from_box(handle: HostBox) -> Self {
        Self(handle)
    }

    /// The FFI handle, to pass to a plugin constructor.
    pub fn to_box(&self) -> HostBox {
        self.0.clone()
    }

    /// The node's public key.
    pub fn public_key(&self) -> PublicKey {
        self.0.public_key()
    }

    /// Signs `message` with the node key.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.0.sign(message.into())
    }

    /// Checks an Ed25519 signature by `key` over `message`.
    pub fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        self.0.verify(key, message.into(), signature)
    }

    /// SHA-256 of `bytes`.
    pub fn hash(&self, bytes: &[u8]) -> Hash32 {
        self.0.hash(bytes.into())
    }

    /// Writes a log line.
    pub fn log(&self, level: LogLevel, message: &str) {
        self.0.log(level, message.into());
    }

    /// Runs the operator's pricing strategy on a JSON context.
    pub fn price(&self, strategy: &str, context_json: &str) -> Result<u64, String> {
        self.0.price(strategy.into(), context_json.into()).into_result().map_err(String::from)
    }
}
