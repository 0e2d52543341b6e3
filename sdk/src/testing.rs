//! Host services with real Ed25519 keys, for plugin unit tests and in-process simulation.

use crate::{
    host::{Host, HostServices, LogLevel},
    types::{Hash32, PublicKey, Signature},
};
use abi_stable::std_types::{RResult, RSlice, RStr, RString};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use std::sync::{Arc, Mutex};

/// A host with its own key that records log lines instead of printing them.
#[derive(Clone)]
pub struct LocalHost {
    key: Arc<Ed25519KeyPair>,
    /// Log lines written by the plugin, in order.
    pub logs: Arc<Mutex<Vec<(LogLevel, String)>>>,
}

impl LocalHost {
    /// A host whose key derives from `seed` (deterministic across runs).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = Ed25519KeyPair::from_seed_unchecked(&seed).expect("32-byte seed is a valid Ed25519 seed");
        Self { key: Arc::new(key), logs: Arc::default() }
    }

    /// The services as a plugin receives them.
    pub fn host(&self) -> Host {
        Host::new(self.clone())
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Hash32 {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    Hash32(out)
}

impl HostServices for LocalHost {
    fn public_key(&self) -> PublicKey {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.key.public_key().as_ref());
        PublicKey(out)
    }

    fn sign(&self, message: RSlice<'_, u8>) -> Signature {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.key.sign(message.as_slice()).as_ref());
        Signature(out)
    }

    fn verify(&self, key: &PublicKey, message: RSlice<'_, u8>, signature: &Signature) -> bool {
        UnparsedPublicKey::new(&ED25519, key.0).verify(message.as_slice(), &signature.0).is_ok()
    }

    fn hash(&self, bytes: RSlice<'_, u8>) -> Hash32 {
        sha256(bytes.as_slice())
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        if let Ok(mut logs) = self.logs.lock() {
            logs.push((level, message.to_string()));
        }
    }

    fn price(&self, strategy: RStr<'_>, _context_json: RStr<'_>) -> RResult<u64, RString> {
        RResult::RErr(format!("no pricing strategy named `{strategy}` in this test host").into())
    }
}
