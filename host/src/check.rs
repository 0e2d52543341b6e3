//! Dry-run a manifest: everything `nestd run` would do before it opens any state.

use crate::manifest::Manifest;
use crate::node::{chain::build_genesis, prepare_all};
use std::{fmt::Write, path::Path};

/// The outcome of a check: a readable report and whether the node would start.
pub struct CheckReport {
    /// Lines for the operator.
    pub text: String,
    /// True when the node would start.
    pub ok: bool,
}

/// Checks a manifest: parses it, verifies and loads every plugin, validates each
/// plugin's config through the plugin, and builds each chain's genesis in memory.
/// Every problem is reported, not only the first: past a structural problem the check
/// goes on with the plugins and chains it can still build. Only a file that cannot be
/// read or parsed as a manifest stops it at once.
pub fn check(path: &Path) -> CheckReport {
    let (manifest, structure) = match Manifest::load_all(path) {
        Ok(loaded) => loaded,
        Err(error) => return failed(vec![error.to_string()]),
    };
    let mut errors: Vec<String> = structure.iter().map(ToString::to_string).collect();
    let mut prepared = match prepare_all(manifest) {
        Ok((prepared, problems)) => {
            errors.extend(problems);
            prepared
        }
        Err(error) => return failed(vec![error]),
    };
    let mut text = String::new();
    let manifest = &prepared.manifest;
    let _ = writeln!(text, "manifest  {}", manifest.file.display());
    let _ = writeln!(
        text,
        "node      {}  key {}  data {}",
        manifest.node.name,
        prepared.key.public_key(),
        manifest.node.data_dir.display()
    );
    let trust = if manifest.trust.allow_unsigned {
        "UNSIGNED PLUGINS ALLOWED (development only)"
    } else {
        "unsigned plugins refused"
    };
    let vendors: Vec<String> = manifest
        .trust
        .vendor
        .iter()
        .map(|v| format!("{} {}…", v.name, v.key.chars().take(12).collect::<String>()))
        .collect();
    let _ = writeln!(text, "trust     {} vendor key(s) [{}]; {trust}", vendors.len(), vendors.join(", "));
    for package in &prepared.packages {
        let info = &package.library.info;
        let kinds: Vec<&str> = package.library.kinds().iter().map(|k| k.name()).collect();
        let signer = package.library.signed_by.clone().map_or("UNSIGNED".to_string(), |v| format!("signed by {v}"));
        let _ = writeln!(
            text,
            "plugin    {:<10} {} {}  [{}]  {signer}  sha256 {}…",
            package.id,
            info.name,
            info.version,
            kinds.join(", "),
            &package.library.library_sha256.to_hex()[..16]
        );
    }
    for parts in &mut prepared.chains {
        match build_genesis(parts) {
            Ok((_, view, ledger)) => {
                let _ = writeln!(
                    text,
                    "chain     {:<10} {} + {}  genesis {}  {} account(s), supply {}",
                    parts.id,
                    parts.chain_type.status().name,
                    parts.consensus.status().name,
                    view.hash,
                    ledger.len(),
                    ledger.total_supply()
                );
            }
            Err(error) => {
                errors.push(format!("{}: [[chain]] id=\"{}\": genesis: {error}", manifest.file.display(), parts.id))
            }
        }
    }
    for radio in &prepared.radios {
        let _ = writeln!(text, "radio     {:<10} {}", radio.id, radio.slot.status().name);
    }
    for market in &prepared.markets {
        let _ = writeln!(text, "market    {:<10} {}", market.id, market.slot.status().name);
    }
    if !errors.is_empty() {
        return failed(errors);
    }
    text.push_str("ok: the node would start\n");
    CheckReport { text, ok: true }
}

/// The report of a manifest that would not start: each problem once, in the order found
/// (a structural problem the plugins' checks find again is not repeated).
fn failed(mut errors: Vec<String>) -> CheckReport {
    let mut seen = std::collections::BTreeSet::new();
    errors.retain(|error| seen.insert(error.clone()));
    let mut text = String::new();
    for error in &errors {
        let _ = writeln!(text, "error: {error}");
    }
    let _ = writeln!(text, "{} problem(s): the node would not start", errors.len());
    CheckReport { text, ok: false }
}
