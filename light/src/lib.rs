//! A light client: it keeps a chain's headers only, and believes a header only once a
//! finality proof it can check covers it.
//!
//! It starts from the genesis header (its hash given, or taken on first use) and the
//! validators it trusts ([`Trust`], from a node manifest: PoA's authorities or the
//! genesis validator sets of BFT). Each [`LightClient::sync`] fetches the headers above
//! the last one it holds, recomputes each hash from the header's fields
//! (chain-linear's `sha256("nest/unit/v1" ‖ borsh(header))`) and checks the parent
//! links, then proves the newest one it can:
//!
//! - **PoA**: a block that carries a finality proof — floor(2n/3) + 1 distinct
//!   authorities' votes over `vote_message(height, header hash)` (ADR 0007);
//! - **BFT**: the newest block's commit certificate — precommits of more than two thirds
//!   of its height's power over the digest of the whole unit, whose bytes the client
//!   fetches for that one block and whose first bytes must be the header (ADR 0009).
//!
//! The headers up to the proven one are kept (the parent links make them final with
//! it); the rest wait for a later proof. A header whose fields do not hash to its hash,
//! a broken link, or a proof that does not hold is refused with the reason, and nothing
//! of that batch is kept. [`LightClient::verify_tx`] checks a transaction's RFC 6962
//! inclusion proof against a header the client holds. DPoS chains elect their
//! delegates in chain state; following them would take state proofs, which the client
//! does not have, so it refuses to start on one.

pub mod cli;

use borsh::BorshSerialize;
use chain_linear::{HEADER_BYTES, Header, UNIT_HASH_DOMAIN, UNIT_VERSION};
use nest_ledger::{
    crypto::{sha256, verify},
    ledger::{
        merkle::{leaf_hash, verify_inclusion},
        validators::{Member, ValidatorSet, set_at},
    },
};
use nest_sdk::{Hash32, PublicKey, Validator, certificate::CommitCertificate};
use serde_json::Value;
use std::time::Duration;

/// Most headers fetched in one [`LightClient::sync`].
pub const SYNC_BATCH_HEADERS: u64 = 256;

/// Who the client believes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// PoA: the authorities; a proof needs floor(2n/3) + 1 of their votes.
    Authorities(Vec<PublicKey>),
    /// BFT: the validator sets by first height; a certificate needs more than two
    /// thirds of its height's power.
    Validators(Vec<ValidatorSet>),
}

/// A header the client holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedHeader {
    /// Its hash (recomputed from the fields below).
    pub hash: Hash32,
    /// The header.
    pub header: Header,
}

/// Why the client refused what a node served, or could not ask.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LightError {
    /// The node could not be asked, or answered something unreadable.
    #[error("{0}")]
    Transport(String),
    /// A header that is not what it claims.
    #[error("header {height} refused: {reason}")]
    Forged {
        /// Its height.
        height: u64,
        /// Why.
        reason: String,
    },
    /// A finality proof that does not hold.
    #[error("finality proof of header {height} refused: {reason}")]
    Unproven {
        /// The header's height.
        height: u64,
        /// Why.
        reason: String,
    },
    /// A transaction's inclusion proof that does not hold.
    #[error("transaction {tx} refused: {reason}")]
    NotIncluded {
        /// The transaction.
        tx: Hash32,
        /// Why.
        reason: String,
    },
}

/// What a transaction's proof showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inclusion {
    /// The transaction.
    pub tx: Hash32,
    /// Height of the block that holds it.
    pub height: u64,
    /// Its position there.
    pub index: u64,
}

/// Follows one chain of one node.
pub struct LightClient {
    url: String,
    chain: String,
    trust: Trust,
    genesis: Option<Hash32>,
    agent: ureq::Agent,
    headers: Vec<VerifiedHeader>,
}

impl LightClient {
    /// A client of `chain` at the node API `url` trusting `trust`; `genesis` pins the
    /// genesis hash (else the first one served is taken).
    pub fn new(url: &str, chain: &str, trust: Trust, genesis: Option<Hash32>) -> LightClient {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
        LightClient {
            url: url.trim_end_matches('/').to_string(),
            chain: chain.to_string(),
            trust,
            genesis,
            agent,
            headers: Vec::new(),
        }
    }

    /// The headers held, genesis first.
    pub fn headers(&self) -> &[VerifiedHeader] {
        &self.headers
    }

    /// Height of the newest header held (`None` before the first sync).
    pub fn height(&self) -> Option<u64> {
        self.headers.last().map(|held| held.header.height)
    }

    /// Fetches and proves the headers above the newest one held; returns the new
    /// height held. A refusal keeps nothing of the batch.
    pub fn sync(&mut self) -> Result<u64, LightError> {
        if self.headers.is_empty() {
            self.start()?;
        }
        let held = self.height().unwrap_or(0);
        let final_height = self.final_height()?;
        let last = final_height.min(held.saturating_add(SYNC_BATCH_HEADERS));
        let mut batch: Vec<(VerifiedHeader, Value)> = Vec::new();
        for height in held + 1..=last {
            let block = self.block(height)?;
            let header = checked_header(&block, height)?;
            let parent = batch.last().map_or_else(|| self.headers.last().map(|h| h.hash), |(h, _)| Some(h.hash));
            if Some(header.header.parent) != parent {
                return Err(LightError::Forged { height, reason: "its parent is not the header below it".into() });
            }
            batch.push((header, block));
        }
        let proven = self.prove(&batch)?;
        self.headers.extend(batch.into_iter().take(proven).map(|(header, _)| header));
        Ok(self.height().unwrap_or(0))
    }

    /// Checks a transaction's inclusion proof against a header this client holds.
    pub fn verify_tx(&self, tx: Hash32) -> Result<Inclusion, LightError> {
        let refused = |reason: String| LightError::NotIncluded { tx, reason };
        let proof = self.get(&format!("/v1/chains/{}/txs/{tx}/proof", self.chain))?;
        let height = proof["header"]["height"].as_u64().ok_or_else(|| refused("the proof names no header".into()))?;
        let held = self
            .headers
            .iter()
            .find(|held| held.header.height == height)
            .ok_or_else(|| refused(format!("header {height} is not held yet (sync first)")))?;
        if field_hash(&proof["header"], "hash").ok() != Some(held.hash) {
            return Err(refused(format!("the proof's header {height} is not the one held")));
        }
        let index = proof["leaf_index"].as_u64().ok_or_else(|| refused("no leaf_index".into()))?;
        let path = proof["audit_path"]
            .as_array()
            .ok_or_else(|| refused("no audit_path".into()))?
            .iter()
            .map(|node| hash_of(node).map_err(refused))
            .collect::<Result<Vec<Hash32>, _>>()?;
        let size = u64::from(held.header.tx_count);
        verify_inclusion(&leaf_hash(&tx.0), index, size, &path, &held.header.tx_root)
            .map_err(|error| refused(format!("the inclusion proof does not hold: {error}")))?;
        Ok(Inclusion { tx, height, index })
    }

    /// Takes the genesis header: its hash recomputed, and pinned when given.
    fn start(&mut self) -> Result<(), LightError> {
        let header = checked_header(&self.block(0)?, 0)?;
        if let Some(pinned) = self.genesis
            && pinned != header.hash
        {
            return Err(LightError::Forged { height: 0, reason: format!("genesis is {}, not {pinned}", header.hash) });
        }
        self.headers.push(header);
        Ok(())
    }

    /// How many headers of `batch`, from the first, a finality proof covers.
    fn prove(&self, batch: &[(VerifiedHeader, Value)]) -> Result<usize, LightError> {
        match &self.trust {
            Trust::Authorities(authorities) => {
                // The newest block that carries a proof; the ones above it wait.
                let Some(index) = batch.iter().rposition(|(_, block)| block["finality"].as_str() != Some("")) else {
                    return Ok(0);
                };
                let (header, block) = &batch[index];
                check_votes(header, block, authorities)?;
                Ok(index + 1)
            }
            Trust::Validators(sets) => {
                let Some((header, _)) = batch.last() else { return Ok(0) };
                self.check_certificate(header, sets)?;
                Ok(batch.len())
            }
        }
    }

    /// BFT: the newest header's certificate over the digest of its whole unit.
    fn check_certificate(&self, held: &VerifiedHeader, sets: &[ValidatorSet]) -> Result<(), LightError> {
        let height = held.header.height;
        let unproven = |reason: String| LightError::Unproven { height, reason };
        let raw = self.get(&format!("/v1/chains/{}/blocks/{height}/unit", self.chain))?;
        let unit = hex_field(&raw, "unit").map_err(unproven)?;
        if unit.get(..HEADER_BYTES) != Some(header_bytes(&held.header).as_slice()) {
            return Err(unproven("the unit served does not begin with the header".into()));
        }
        let certificate = hex_field(&raw, "certificate").map_err(unproven)?;
        let certificate = CommitCertificate::decode(&certificate)
            .ok_or_else(|| unproven("the certificate is not a commit certificate".into()))?;
        if certificate.value != sha256(&unit) {
            return Err(unproven("the certificate is for another unit".into()));
        }
        let set = set_at(sets, height).ok_or_else(|| unproven("no trusted validator set covers it".into()))?;
        let validators: Vec<Validator> =
            set.members.iter().map(|Member { key, power }| Validator { key: *key, power: *power }).collect();
        certificate.check(height, &validators, verify).map_err(|error| unproven(error.to_string()))?;
        Ok(())
    }

    fn final_height(&self) -> Result<u64, LightError> {
        let status = self.get("/v1/status")?;
        let chains = status["chains"].as_array().cloned().unwrap_or_default();
        let chain = chains
            .iter()
            .find(|chain| chain["id"].as_str() == Some(self.chain.as_str()))
            .ok_or_else(|| LightError::Transport(format!("{}: the node has no chain \"{}\"", self.url, self.chain)))?;
        chain["height"].as_u64().ok_or_else(|| LightError::Transport(format!("{}: no height", self.url)))
    }

    fn block(&self, height: u64) -> Result<Value, LightError> {
        self.get(&format!("/v1/chains/{}/blocks/{height}?txs=hashes", self.chain))
    }

    fn get(&self, path: &str) -> Result<Value, LightError> {
        let url = format!("{}{path}", self.url);
        let response = self.agent.get(&url).call().map_err(|error| LightError::Transport(format!("{url}: {error}")))?;
        response.into_json().map_err(|error| LightError::Transport(format!("{url}: {error}")))
    }
}

/// PoA: a finality proof of the header, from enough distinct authorities (public for
/// the fuzz target `light_block`).
pub fn check_votes(held: &VerifiedHeader, block: &Value, authorities: &[PublicKey]) -> Result<(), LightError> {
    let height = held.header.height;
    let unproven = |reason: String| LightError::Unproven { height, reason };
    let bytes = hex_field(block, "finality").map_err(unproven)?;
    let proof: consensus_poa::FinalityProof =
        borsh::from_slice(&bytes).map_err(|error| unproven(format!("unreadable finality proof: {error}")))?;
    if (proof.height, proof.unit_hash) != (height, held.hash) {
        return Err(unproven("the proof is for another header".into()));
    }
    let message = consensus_poa::vote_message(height, &held.hash);
    let mut voters = std::collections::BTreeSet::new();
    for (voter, signature) in &proof.votes {
        if !authorities.contains(voter) || !voters.insert(*voter) {
            return Err(unproven(format!("{voter} is not a distinct trusted authority")));
        }
        if !verify(voter, &message, signature) {
            return Err(unproven(format!("the vote of {voter} does not verify")));
        }
    }
    let quorum = authorities.len() * 2 / 3 + 1;
    if voters.len() < quorum {
        return Err(unproven(format!("{} votes, fewer than the quorum {quorum}", voters.len())));
    }
    Ok(())
}

/// The header a block view describes, its hash recomputed and compared with the one
/// served (public for the fuzz target `light_block`).
pub fn checked_header(block: &Value, height: u64) -> Result<VerifiedHeader, LightError> {
    let forged = |reason: String| LightError::Forged { height, reason };
    let number = |key: &str| block[key].as_u64().ok_or_else(|| forged(format!("no {key}")));
    let header = Header {
        version: UNIT_VERSION,
        parent: field_hash(block, "parent").map_err(forged)?,
        height: number("height")?,
        timestamp_ms: number("timestamp_ms")?,
        proposer: PublicKey(field_hash(block, "proposer").map_err(forged)?.0),
        tx_root: field_hash(block, "tx_root").map_err(forged)?,
        state_digest: field_hash(block, "state_digest").map_err(forged)?,
        tx_count: u32::try_from(number("tx_count")?).map_err(|_| forged("tx_count out of range".into()))?,
    };
    if header.height != height {
        return Err(forged(format!("asked for height {height}, served {}", header.height)));
    }
    let hash = sha256(&[UNIT_HASH_DOMAIN, &header_bytes(&header)].concat());
    if field_hash(block, "hash").map_err(forged)? != hash {
        return Err(forged(format!("its fields hash to {hash}, not to the hash it claims")));
    }
    Ok(VerifiedHeader { hash, header })
}

fn header_bytes(header: &Header) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES);
    // Encoding a fixed-size header into memory cannot fail.
    let _ = header.serialize(&mut bytes);
    bytes
}

fn field_hash(value: &Value, key: &str) -> Result<Hash32, String> {
    hash_of(&value[key]).map_err(|error| format!("{key}: {error}"))
}

fn hash_of(value: &Value) -> Result<Hash32, String> {
    let text = value.as_str().ok_or("not a string")?;
    let bytes = hex::decode(text).map_err(|error| error.to_string())?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| "not 32 bytes".to_string())?;
    Ok(Hash32(bytes))
}

fn hex_field(value: &Value, key: &str) -> Result<Vec<u8>, String> {
    let text = value[key].as_str().ok_or_else(|| format!("no {key}"))?;
    hex::decode(text).map_err(|error| format!("{key}: {error}"))
}
