//! Host services with real Ed25519 keys, for plugin unit tests and in-process simulation.

use crate::{
    host::{Host, HostServices, LogLevel},
    types::{Hash32, PublicKey, Signature},
};
use abi_stable::std_types::{RResult, RSlice, RStr, RString};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A host with its own key that records log lines instead of printing them.
#[derive(Clone)]
pub struct LocalHost {
    key: Arc<Ed25519KeyPair>,
    /// Log lines written by the plugin, in order.
    pub logs: Arc<Mutex<Vec<(LogLevel, String)>>>,
    /// Unit prices answered by `price`, by strategy name.
    pub prices: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl LocalHost {
    /// A host whose key derives from `seed` (deterministic across runs).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = Ed25519KeyPair::from_seed_unchecked(&seed).expect("32-byte seed is a valid Ed25519 seed");
        Self { key: Arc::new(key), logs: Arc::default(), prices: Arc::default() }
    }

    /// Makes `price(strategy, _)` answer `unit_price`.
    pub fn set_price(&self, strategy: &str, unit_price: u64) {
        if let Ok(mut prices) = self.prices.lock() {
            prices.insert(strategy.to_string(), unit_price);
        }
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
        match self.prices.lock().ok().and_then(|prices| prices.get(strategy.as_str()).copied()) {
            Some(unit_price) => RResult::ROk(unit_price),
            None => RResult::RErr(format!("no pricing strategy named `{strategy}` in this test host").into()),
        }
    }
}

/// Values for market policy unit tests.
pub mod market {
    use crate::market::{Order, QuoteRequest, Round, Terms, Usage};
    use crate::types::{Hash32, PublicKey};

    /// Immediate-sale terms at `unit_price` with a 60 s deadline.
    pub fn terms(unit_price: u64) -> Terms {
        Terms { unit_price, reserve_price: 0, tiers: Default::default(), deadline_ms: 60_000, round_end_ms: 0 }
    }

    /// An order `id` by buyer `[id; 32]`, placed at `1_000 + id` ms.
    pub fn order(id: u8, units: u64, max_price: u64) -> Order {
        Order {
            id: Hash32([id; 32]),
            buyer: PublicKey([id; 32]),
            units,
            max_price,
            placed_at_ms: 1_000 + u64::from(id),
        }
    }

    /// A round of `orders` against `terms` with `units_available` at `now_ms`.
    pub fn round(terms: Terms, orders: Vec<Order>, units_available: u64, now_ms: u64) -> Round {
        Round { terms, orders: orders.into(), units_available, now_ms }
    }

    /// A quote request for `units` of `sku` at 1 000 ms.
    pub fn request(sku: &str, units: u64) -> QuoteRequest {
        QuoteRequest { sku: sku.into(), units, duration_s: 0, now_ms: 1_000, context_json: "{}".into() }
    }

    /// A lock of 10 units and `escrow`, made at 1 000 ms, settled at `now_ms`.
    pub fn usage(units_used: u64, escrow: u64, reported: bool, confirmed: bool, now_ms: u64) -> Usage {
        Usage {
            order_id: Hash32([1; 32]),
            units_locked: 10,
            units_used,
            escrow,
            reported,
            confirmed,
            locked_at_ms: 1_000,
            reported_at_ms: if reported { 2_000 } else { 0 },
            now_ms,
        }
    }
}
