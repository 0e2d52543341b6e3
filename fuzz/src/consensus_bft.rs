//! BFT consensus messages and synced units with their certificates, fed to a started
//! engine's `handle`.

use crate::engine::{self, Fixture, locals, pick};
use consensus_bft::{BftConfig, BftEngine, Body, CommitCertificate, Envelope, proposal_message, vote_message};
use nest_sdk::{
    ConsensusEngine, Input, PublicKey, Validator,
    certificate::precommit_message,
    testing::{LocalHost, sha256},
};

/// Four validators of power 1; the engine runs as the first.
pub struct Bft {
    locals: Vec<LocalHost>,
}

impl Default for Bft {
    fn default() -> Self {
        Self { locals: locals(4) }
    }
}

impl Bft {
    /// `certificate` for `unit`: its value the unit's digest, each precommit signed by the
    /// validator its key picks.
    pub fn sign_certificate(&self, unit: &[u8], certificate: CommitCertificate) -> CommitCertificate {
        let value = sha256(unit);
        let message = precommit_message(certificate.height, certificate.round, &value);
        let signatures = certificate
            .signatures
            .iter()
            .map(|(key, _)| {
                let validator = pick(&self.locals, key).host();
                (validator.public_key(), validator.sign(&message))
            })
            .collect();
        CommitCertificate { value, signatures, ..certificate }
    }

    /// `body` with every signature made by the validator it names.
    pub fn sign(&self, body: Body) -> Body {
        match body {
            Body::Proposal(mut proposal) => {
                let proposer = pick(&self.locals, &proposal.proposer).host();
                let message =
                    proposal_message(proposal.height, proposal.round, proposal.valid_round, &sha256(&proposal.unit));
                proposal.proposer = proposer.public_key();
                proposal.signature = proposer.sign(&message);
                Body::Proposal(proposal)
            }
            Body::Vote(mut vote) => {
                let validator = pick(&self.locals, &vote.validator).host();
                vote.validator = validator.public_key();
                vote.signature = validator.sign(&vote_message(vote.kind, vote.height, vote.round, vote.value.as_ref()));
                Body::Vote(vote)
            }
            Body::Decided { unit, certificate } => {
                let certificate = self.sign_certificate(&unit, certificate);
                Body::Decided { unit, certificate }
            }
            Body::ProposalSeen(mut seen) => {
                let proposer = pick(&self.locals, &seen.proposer).host();
                seen.proposer = proposer.public_key();
                seen.signature =
                    proposer.sign(&proposal_message(seen.height, seen.round, seen.valid_round, &seen.value));
                Body::ProposalSeen(seen)
            }
        }
    }
}

impl Fixture for Bft {
    type Engine = BftEngine;

    fn start(&self) -> BftEngine {
        let mut engine = BftEngine::new(BftConfig::default(), self.locals[0].host()).expect("the fuzz config is valid");
        let validators =
            self.locals.iter().map(|local| Validator { key: local.host().public_key(), power: 1 }).collect();
        engine.handle(Input::Validators { from_height: 1, validators }).expect("validators");
        let start = Input::Start { last_commit: engine::genesis(), now_ms: 0, persisted: Default::default() };
        engine.handle(start).expect("start");
        engine
    }

    fn signed_message(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let envelope: Envelope = borsh::from_slice(payload).ok()?;
        borsh::to_vec(&Envelope { sent_ms: envelope.sent_ms, body: self.sign(envelope.body) }).ok()
    }

    fn signed_sync(&self, unit: &[u8], certificate: Vec<u8>, finality: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        let certificate = match CommitCertificate::decode(&certificate) {
            Some(decoded) => borsh::to_vec(&self.sign_certificate(unit, decoded)).unwrap_or(certificate),
            None => certificate,
        };
        (certificate, finality)
    }

    fn peer(&self) -> PublicKey {
        self.locals[1].host().public_key()
    }
}

/// Runs the steps of `data` (see [`crate::engine`]) on a started BFT engine.
pub fn run(data: &[u8]) {
    let _ = engine::run(&Bft::default(), data);
}
