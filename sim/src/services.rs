//! Host services for simulated plugin instances: the node's key, and a verification
//! cache shared by every node of one run.
//!
//! Each simulated node signs with its own Ed25519 key and verifies with the same crypto
//! the node runs. A consensus message broadcast to n nodes would be verified n times;
//! the shared cache verifies each distinct (key, message, signature) once for all of
//! them, which is what makes thousands of seeds affordable and changes no outcome
//! (verification is a pure function).

use nest_node::crypto::{self, SecretKey};
use nest_sdk::{
    Hash32, Host, HostServices, LogLevel, PublicKey, Signature,
    abi_stable::std_types::{RResult, RSlice, RStr, RString},
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Verdicts remembered before the cache starts over.
const VERIFY_CACHE_ENTRIES_MAX: usize = 1 << 18;

/// Verification verdicts by digest of (key, signature, message).
#[derive(Clone, Default)]
pub struct VerifyCache {
    verdicts: Arc<Mutex<HashMap<Hash32, bool>>>,
}

impl VerifyCache {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        let digest = crypto::sha256_parts(&[&key.0, &signature.0, message]);
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(verdict) = verdicts.get(&digest) {
            return *verdict;
        }
        let verdict = crypto::verify(key, message, signature);
        if verdicts.len() >= VERIFY_CACHE_ENTRIES_MAX {
            verdicts.clear();
        }
        verdicts.insert(digest, verdict);
        verdict
    }
}

/// The services one simulated plugin instance gets.
#[derive(Clone)]
pub struct SimServices {
    key: Arc<SecretKey>,
    cache: VerifyCache,
}

impl SimServices {
    /// A host signing with `key` and verifying through `cache`.
    pub fn host(key: Arc<SecretKey>, cache: VerifyCache) -> Host {
        Host::new(SimServices { key, cache })
    }
}

impl HostServices for SimServices {
    fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    fn sign(&self, message: RSlice<'_, u8>) -> Signature {
        self.key.sign(message.as_slice())
    }

    fn verify(&self, key: &PublicKey, message: RSlice<'_, u8>, signature: &Signature) -> bool {
        self.cache.verify(key, message.as_slice(), signature)
    }

    fn hash(&self, bytes: RSlice<'_, u8>) -> Hash32 {
        crypto::sha256(bytes.as_slice())
    }

    fn log(&self, _level: LogLevel, _message: RStr<'_>) {
        // Thousands of nodes' worth of plugin logging would drown the report; the
        // invariants, not the logs, judge a run.
    }

    fn price(&self, _strategy: RStr<'_>, _context_json: RStr<'_>) -> RResult<u64, RString> {
        RResult::RErr("the simulator runs no market policies".into())
    }
}
