//! PoA consensus messages, synced units and proofs, fed to a started engine's `handle`.

use crate::engine::{self, Fixture, keys, locals, pick};
use consensus_poa::{FinalityProof, PoaConfig, PoaEngine, PoaMessage, Seal, seal_message, vote_message};
use nest_sdk::{ConsensusEngine, Input, PublicKey, testing::LocalHost, testing::sha256};

/// Block interval of the fuzzed engine.
pub const INTERVAL_MS: u64 = 1000;

/// Three authorities; the engine runs as the first.
pub struct Poa {
    locals: Vec<LocalHost>,
}

impl Default for Poa {
    fn default() -> Self {
        Self { locals: locals(3) }
    }
}

impl Poa {
    fn leader(&self, slot: u64) -> &LocalHost {
        &self.locals[(slot % self.locals.len() as u64) as usize]
    }

    /// `message` with every signature made by the authority it names (a block: the slot leader).
    pub fn sign(&self, message: PoaMessage) -> PoaMessage {
        match message {
            PoaMessage::Block { slot, unit, .. } => {
                let signature = self.leader(slot).host().sign(&seal_message(slot, &sha256(&unit)));
                PoaMessage::Block { slot, unit, signature }
            }
            PoaMessage::Vote { height, unit_hash, voter, .. } => {
                let voter = pick(&self.locals, &voter).host();
                let signature = voter.sign(&vote_message(height, &unit_hash));
                PoaMessage::Vote { height, unit_hash, voter: voter.public_key(), signature }
            }
            PoaMessage::VoteAgain { height, unit_hash, voter, sent_ms, .. } => {
                let voter = pick(&self.locals, &voter).host();
                let signature = voter.sign(&vote_message(height, &unit_hash));
                PoaMessage::VoteAgain { height, unit_hash, voter: voter.public_key(), signature, sent_ms }
            }
        }
    }
}

impl Fixture for Poa {
    type Engine = PoaEngine;

    fn start(&self) -> PoaEngine {
        let config = PoaConfig::new(keys(&self.locals), INTERVAL_MS);
        let mut engine = PoaEngine::new(config, self.locals[0].host()).expect("the fuzz config is valid");
        let start = Input::Start { last_commit: engine::genesis(), now_ms: 0, persisted: Default::default() };
        engine.handle(start).expect("start");
        engine
    }

    fn signed_message(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let message: PoaMessage = borsh::from_slice(payload).ok()?;
        borsh::to_vec(&self.sign(message)).ok()
    }

    fn signed_sync(&self, unit: &[u8], certificate: Vec<u8>, finality: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        let certificate = match borsh::from_slice::<Seal>(&certificate) {
            Ok(Seal { slot, .. }) => {
                let leader = self.leader(slot).host();
                let signature = leader.sign(&seal_message(slot, &sha256(unit)));
                borsh::to_vec(&Seal { slot, signer: leader.public_key(), signature }).unwrap_or(certificate)
            }
            Err(_) => certificate,
        };
        let finality = match borsh::from_slice::<FinalityProof>(&finality) {
            Ok(FinalityProof { height, unit_hash, votes }) => {
                let votes = votes
                    .iter()
                    .map(|(key, _)| {
                        let voter = pick(&self.locals, key).host();
                        (voter.public_key(), voter.sign(&vote_message(height, &unit_hash)))
                    })
                    .collect();
                borsh::to_vec(&FinalityProof { height, unit_hash, votes }).unwrap_or(finality)
            }
            Err(_) => finality,
        };
        (certificate, finality)
    }

    fn peer(&self) -> PublicKey {
        self.locals[1].host().public_key()
    }
}

/// Runs the steps of `data` (see [`crate::engine`]) on a started PoA engine.
pub fn run(data: &[u8]) {
    let _ = engine::run(&Poa::default(), data);
}
