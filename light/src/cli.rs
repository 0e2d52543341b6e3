//! `nestd light`: follow a chain as a light client and check transactions' inclusion.

use super::{LightClient, Trust};
use nest_ledger::ledger::validators::ValidatorSet;
use nest_manifest::Manifest;
use nest_sdk::{Hash32, PublicKey};
use std::{path::PathBuf, time::Duration};

/// `nestd light` options.
#[derive(clap::Args, Debug)]
pub struct LightOptions {
    /// The node API to follow, e.g. http://127.0.0.1:7300.
    #[arg(long)]
    pub follow: String,
    /// The chain.
    #[arg(long, default_value = "main")]
    pub chain: String,
    /// A node manifest whose chain entry names the validators to trust (PoA's
    /// authorities, or the genesis validators of BFT).
    #[arg(long)]
    pub manifest: PathBuf,
    /// The genesis hash to pin (hex); without it the first one served is taken.
    #[arg(long)]
    pub genesis: Option<String>,
    /// After syncing, check this transaction's inclusion proof (hex hash) and exit.
    #[arg(long)]
    pub tx: Option<String>,
    /// Sync once and exit.
    #[arg(long)]
    pub once: bool,
    /// Pause between syncs when following.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
}

/// Runs `nestd light`: exit 0 while what is served holds, an error naming the header or
/// proof refused otherwise.
pub fn run(options: &LightOptions) -> Result<(), String> {
    let trust = trust_from_manifest(options)?;
    let genesis = options.genesis.as_deref().map(parse_hash).transpose().map_err(|e| format!("--genesis: {e}"))?;
    let mut client = LightClient::new(&options.follow, &options.chain, trust, genesis);
    loop {
        let held = client.sync().map_err(|error| error.to_string())?;
        let hash = client.headers().last().map(|held| held.hash).unwrap_or_default();
        println!("header {held} {hash} final and verified");
        if let Some(tx) = &options.tx {
            let tx = parse_hash(tx).map_err(|e| format!("--tx: {e}"))?;
            let inclusion = client.verify_tx(tx).map_err(|error| error.to_string())?;
            println!("tx {} included: block {} position {}", inclusion.tx, inclusion.height, inclusion.index);
            return Ok(());
        }
        if options.once {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(options.interval_ms));
    }
}

/// The validators the manifest's chain entry names.
pub fn trust_from_manifest(options: &LightOptions) -> Result<Trust, String> {
    let path = &options.manifest;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest = Manifest::parse(&text, path).map_err(|e| e.to_string())?;
    let chain = manifest
        .chain
        .iter()
        .find(|chain| chain.id == options.chain)
        .ok_or_else(|| format!("{}: no chain \"{}\"", path.display(), options.chain))?;
    if chain.genesis.dpos.is_some() {
        return Err(format!(
            "chain \"{}\" is DPoS: its delegates are elected in chain state, which a light client cannot follow without state proofs",
            options.chain
        ));
    }
    if !chain.genesis.validators.is_empty() {
        let sets: Vec<ValidatorSet> =
            chain.genesis.validator_sets().map_err(|(key, message)| format!("{}: {key}: {message}", path.display()))?;
        return Ok(Trust::Validators(sets));
    }
    let authorities = chain.consensus.config.get("authorities").and_then(|list| list.as_array()).ok_or_else(|| {
        format!("{}: chain \"{}\" names neither genesis validators nor authorities", path.display(), options.chain)
    })?;
    let keys = authorities
        .iter()
        .map(|key| {
            key.as_str()
                .ok_or("not a string".to_string())
                .and_then(|key| PublicKey::from_hex(key).map_err(|e| e.to_string()))
        })
        .collect::<Result<Vec<PublicKey>, String>>()
        .map_err(|e| format!("{}: authorities: {e}", path.display()))?;
    Ok(Trust::Authorities(keys))
}

fn parse_hash(text: &str) -> Result<Hash32, String> {
    let bytes = hex::decode(text).map_err(|e| e.to_string())?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| "must be 32 bytes (64 hex characters)".to_string())?;
    Ok(Hash32(bytes))
}
