//! The `nestd plugin` subcommands: the vendor's tools over this crate.

use crate as package;
use crate::loader::TrustStore;
use nest_ledger::crypto::{self, SecretKey};
use std::path::PathBuf;

/// `nestd plugin ...`: make, sign and check plugin packages.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum PluginCommand {
    /// Generate a vendor key: the secret key in OUT (mode 0600), its public key in OUT.pub.
    Keygen {
        /// Where to write the secret key (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Build a signed package from a crate's plugin.toml and its built library.
    Pack {
        /// The crate's source plugin.toml.
        #[arg(long)]
        source: PathBuf,
        /// The built library (.so).
        #[arg(long)]
        library: PathBuf,
        /// The package directory to write.
        #[arg(long)]
        out: PathBuf,
        /// The vendor's secret key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Re-sign a package (after changing its manifest or key).
    Sign {
        /// The package directory.
        dir: PathBuf,
        /// The vendor's secret key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a package as the loader would, without loading it.
    Verify {
        /// The package directory.
        dir: PathBuf,
        /// A trusted vendor public key, as hex or `name=hex` (repeatable).
        #[arg(long = "trust", required = true)]
        trust: Vec<String>,
    },
    /// Print a package's fields, hash status and signature status.
    Inspect {
        /// The package directory.
        dir: PathBuf,
    },
}

/// Runs one subcommand, printing a human-readable result.
pub fn run(command: PluginCommand) -> Result<(), String> {
    match command {
        PluginCommand::Keygen { out } => {
            let public_key = package::keygen(&out).map_err(|e| e.to_string())?;
            println!("wrote vendor key {}", out.display());
            println!("public key {public_key} (also in {}.pub)", out.display());
        }
        PluginCommand::Pack { source, library, out, key } => {
            let key = SecretKey::read(&key).map_err(|e| e.to_string())?;
            let manifest = package::pack(&source, &library, &out, &key).map_err(|e| e.to_string())?;
            println!(
                "packed {} {} into {} (sha256 {}, signed by {})",
                manifest.name,
                manifest.version,
                out.display(),
                manifest.library_sha256,
                manifest.vendor_key
            );
        }
        PluginCommand::Sign { dir, key } => {
            let key = SecretKey::read(&key).map_err(|e| e.to_string())?;
            let manifest = package::sign(&dir, &key).map_err(|e| e.to_string())?;
            println!("signed {} with vendor key {}", dir.display(), manifest.vendor_key);
        }
        PluginCommand::Verify { dir, trust } => {
            let trust = parse_trust(&trust)?;
            let verified = package::verify(&dir, &trust).map_err(|e| e.to_string())?;
            println!(
                "{}: ok: {} {} [{}], signed by {}",
                dir.display(),
                verified.manifest.name,
                verified.manifest.version,
                verified.manifest.kinds.iter().map(|kind| kind.name()).collect::<Vec<_>>().join(", "),
                verified.signed_by.unwrap_or_default()
            );
        }
        PluginCommand::Inspect { dir } => {
            print!("{}", package::inspect(&dir).map_err(|e| e.to_string())?);
        }
    }
    Ok(())
}

/// Parses `hex` or `name=hex` entries into a trust store (a bare key is named by its hex).
pub fn parse_trust(entries: &[String]) -> Result<TrustStore, String> {
    let mut trust = TrustStore::new();
    for entry in entries {
        let (name, hex) = entry.split_once('=').unwrap_or((entry, entry));
        let key =
            crypto::account_from_hex(hex).map_err(|reason| format!("--trust {entry}: not a public key: {reason}"))?;
        trust.add(name, key);
    }
    Ok(trust)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use nest_sdk::PublicKey;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: PluginCommand,
    }

    #[test]
    fn command_line_is_well_formed_and_parses() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["nestd", "verify", "pkg", "--trust", "a=00", "--trust", "01"]);
        assert_eq!(cli.command, PluginCommand::Verify { dir: "pkg".into(), trust: vec!["a=00".into(), "01".into()] });
    }

    #[test]
    fn trust_entries_take_optional_names() {
        let hex = "11".repeat(32);
        let trust = parse_trust(&[format!("acme={hex}")]).unwrap();
        assert_eq!(trust.vendor_name(&PublicKey([0x11; 32])), Some("acme"));
        let trust = parse_trust(std::slice::from_ref(&hex)).unwrap();
        assert_eq!(trust.vendor_name(&PublicKey([0x11; 32])), Some(hex.as_str()));
        let error = parse_trust(&["acme=zz".into()]).unwrap_err();
        assert_eq!(error, "--trust acme=zz: not a public key: must be 64 hex characters, got 2");
    }
}
