//! Verify the signatures of gossiped consensus messages off the consensus loop.
//!
//! Each consensus library lists, from a message's bytes alone, the signatures its engine
//! will check (`ConsensusEngine::message_signatures`, SDK ABI 9). The bridge has them
//! verified here, in one batch per message on tokio's blocking pool, before the message
//! joins the loop's queue: a message whose listed signature fails is rejected there and
//! then, and the others' signatures are recorded in [`VerifiedSignatures`]. When the
//! engine then checks one of them through `Host::verify`, the answer is a set lookup.
//!
//! Only signatures that verified are ever recorded, under the SHA-256 of key, signature
//! and message together, so the record can make no forged signature pass; at worst an
//! evicted entry is verified again on the loop. Libraries of an older SDK list nothing,
//! and their engines verify on the loop as before.

use crate::crypto::{self, sha256_parts};
use crate::ledger::verify::VerifiedCache;
use nest_sdk::{Hash32, Host, MessageSignatures, PublicKey, RSlice, Signature, SignedBytes};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock},
};

/// Signatures remembered as verified; the oldest is forgotten first. A height of a
/// 100-validator BFT chain needs a few hundred.
pub const VERIFIED_SIGNATURES_MAX: usize = 16_384;
/// Most signatures verified ahead for one message; a message listing more goes to its
/// engine unchecked, which judges it on the loop (the BFT engine refuses an oversized
/// certificate by its count, before verifying anything).
pub const LISTED_SIGNATURES_MAX: usize = 256;

/// A bounded record of signatures known to verify, shared by the bridge (which records)
/// and the consensus engines' host services (which look up).
#[derive(Debug)]
pub struct VerifiedSignatures {
    cache: Mutex<VerifiedCache>,
}

impl Default for VerifiedSignatures {
    fn default() -> Self {
        VerifiedSignatures { cache: Mutex::new(VerifiedCache::new(VERIFIED_SIGNATURES_MAX)) }
    }
}

fn digest(key: &PublicKey, message: &[u8], signature: &Signature) -> Hash32 {
    // Key and signature have fixed lengths, so the concatenation is unambiguous.
    sha256_parts(&[&key.0, &signature.0, message])
}

impl VerifiedSignatures {
    fn record(&self, signed: &SignedBytes) {
        let digest = digest(&signed.key, &signed.message, &signed.signature);
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(digest);
    }

    /// Whether `signature` by `key` over `message` verifies: from the record when it is
    /// there, else by verifying it now.
    pub fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        let known = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&digest(key, message, signature));
        crate::telemetry::metrics::consensus_signature_checked(known);
        known || crypto::verify(key, message, signature)
    }
}

/// What the bridge needs to check consensus messages: each chain's listing function and
/// the record the checks fill.
#[derive(Clone)]
pub struct Prechecker {
    verified: Arc<VerifiedSignatures>,
    listers: Arc<RwLock<BTreeMap<String, MessageSignatures>>>,
    /// Host services lent to listing functions (they hash; they never sign).
    host: Host,
}

impl Prechecker {
    /// A prechecker recording into `verified`, lending `host` to the listing functions.
    pub fn new(verified: Arc<VerifiedSignatures>, host: Host) -> Prechecker {
        Prechecker { verified, listers: Arc::default(), host }
    }

    /// The record the checks fill, for the consensus engines' host services.
    pub fn verified(&self) -> Arc<VerifiedSignatures> {
        self.verified.clone()
    }

    /// Sets (or, with `None`, clears) the listing function of `chain`'s consensus
    /// library: at start and whenever an upgrade replaces the library.
    pub fn set_lister(&self, chain: &str, lister: Option<MessageSignatures>) {
        let mut listers = self.listers.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        match lister {
            Some(lister) => listers.insert(chain.to_owned(), lister),
            None => listers.remove(chain),
        };
    }

    /// Verifies the signatures `chain`'s engine lists for `bytes` and records them;
    /// the error names the first that does not verify. Blocking: call it off the loop.
    pub fn check(&self, chain: &str, bytes: &[u8]) -> Result<(), String> {
        let lister = self.listers.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(chain).copied();
        let Some(lister) = lister else { return Ok(()) };
        let listed = lister(RSlice::from_slice(bytes), self.host.to_box());
        if listed.is_empty() || listed.len() > LISTED_SIGNATURES_MAX {
            return Ok(());
        }
        let batch = listed.iter().map(|s| (&s.key, s.message.as_slice(), &s.signature));
        if !crypto::verify_batch(batch) {
            let bad = listed.iter().find(|s| !crypto::verify(&s.key, &s.message, &s.signature));
            if let Some(bad) = bad {
                return Err(format!("the signature of {} in the message does not verify", bad.key));
            }
        }
        listed.iter().for_each(|signed| self.verified.record(signed));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use nest_sdk::RVec;

    /// A listing function for tests: the message is `key ++ signature ++ signed bytes`.
    extern "C" fn one_signature(bytes: RSlice<'_, u8>, _host: nest_sdk::host::HostBox) -> RVec<SignedBytes> {
        let bytes = bytes.as_slice();
        if bytes.len() < 96 {
            return RVec::new();
        }
        let key = PublicKey(bytes[..32].try_into().unwrap());
        let signature = Signature(bytes[32..96].try_into().unwrap());
        RVec::from(vec![SignedBytes { key, message: RVec::from(bytes[96..].to_vec()), signature }])
    }

    fn message(signer: &SecretKey, text: &[u8]) -> Vec<u8> {
        [&signer.public_key().0[..], &signer.sign(text).0[..], text].concat()
    }

    fn prechecker() -> (Prechecker, Arc<VerifiedSignatures>) {
        let verified = Arc::new(VerifiedSignatures::default());
        let host = super::super::services::NodeServices::host(Arc::new(SecretKey::from_seed([9; 32])), "test");
        let prechecker = Prechecker::new(verified.clone(), host);
        prechecker.set_lister("main", Some(one_signature));
        (prechecker, verified)
    }

    #[test]
    fn a_checked_signature_is_recorded_and_a_forged_one_is_refused_by_name() {
        let (prechecker, verified) = prechecker();
        let signer = SecretKey::from_seed([1; 32]);
        let good = message(&signer, b"vote");
        assert_eq!(prechecker.check("main", &good), Ok(()));
        let digest = digest(&signer.public_key(), b"vote", &signer.sign(b"vote"));
        assert!(verified.cache.lock().unwrap().contains(&digest));

        let mut forged = message(&signer, b"vote 2");
        forged[40] ^= 1;
        let error = prechecker.check("main", &forged).unwrap_err();
        assert!(error.contains(&signer.public_key().to_string()), "{error}");
        assert_eq!(verified.cache.lock().unwrap().len(), 1, "nothing of a forged message is recorded");
    }

    #[test]
    fn without_a_lister_or_a_listing_nothing_is_checked_and_the_engine_verifies() {
        let (prechecker, verified) = prechecker();
        assert_eq!(prechecker.check("other", b"anything"), Ok(()));
        assert_eq!(prechecker.check("main", b"too short to list"), Ok(()));
        prechecker.set_lister("main", None);
        let signer = SecretKey::from_seed([1; 32]);
        let mut forged = message(&signer, b"vote");
        forged[40] ^= 1;
        assert_eq!(prechecker.check("main", &forged), Ok(()), "no lister: the engine judges it");
        assert!(verified.cache.lock().unwrap().is_empty());
    }

    #[test]
    fn the_record_answers_only_for_what_verified_and_else_verifies_now() {
        let verified = VerifiedSignatures::default();
        let signer = SecretKey::from_seed([1; 32]);
        let signature = signer.sign(b"vote");
        assert!(verified.verify(&signer.public_key(), b"vote", &signature), "not recorded: verified now");
        let mut forged = signature;
        forged.0[0] ^= 1;
        assert!(!verified.verify(&signer.public_key(), b"vote", &forged));
        verified.record(&SignedBytes { key: signer.public_key(), message: RVec::from(b"vote".to_vec()), signature });
        assert!(verified.verify(&signer.public_key(), b"vote", &signature));
        assert!(!verified.verify(&signer.public_key(), b"vote!", &signature), "another message is not covered");
    }
}
