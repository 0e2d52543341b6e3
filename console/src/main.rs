//! Attach to a running Nest node and show its state as tables.
//!
//! `nest status`, `nest block <height>` and `nest account <key>` read the node's HTTP
//! API (default `http://127.0.0.1:7300`, or `--url`).

use clap::{Parser, Subcommand};
use serde_json::Value;
use std::{process::ExitCode, time::Duration};

/// The Nest operator console.
#[derive(Parser)]
#[command(name = "nest", version, about = "Nest operator console")]
struct Cli {
    /// The node's API.
    #[arg(long, default_value = "http://127.0.0.1:7300", global = true)]
    url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The node, its chains and its plugins.
    Status,
    /// A committed block.
    Block {
        /// Block height.
        height: u64,
        /// Chain id.
        #[arg(long, default_value = "main")]
        chain: String,
    },
    /// An account's balance and nonces.
    Account {
        /// Account public key (hex).
        key: String,
        /// Chain id.
        #[arg(long, default_value = "main")]
        chain: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = match &cli.command {
        Command::Status => "/v1/status".to_string(),
        Command::Block { height, chain } => format!("/v1/chains/{chain}/blocks/{height}"),
        Command::Account { key, chain } => format!("/v1/chains/{chain}/accounts/{key}"),
    };
    match fetch(&cli.url, &path) {
        Ok(value) => {
            print!("{}", render(&cli.command, &value));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn fetch(base: &str, path: &str) -> Result<Value, String> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    match agent.get(&url).call() {
        Ok(response) => response.into_json().map_err(|e| format!("{url}: {e}")),
        Err(ureq::Error::Status(code, response)) => {
            let body: Value = response.into_json().unwrap_or_default();
            Err(format!("{url}: HTTP {code}: {}", body["error"].as_str().unwrap_or("no detail")))
        }
        Err(ureq::Error::Transport(error)) => Err(format!("{url}: {error} (is the node running?)")),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Left-aligned columns sized to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

fn render(command: &Command, value: &Value) -> String {
    match command {
        Command::Status => render_status(value),
        Command::Block { .. } => render_block(value),
        Command::Account { .. } => table(
            &["account", "balance", "nonce", "next nonce"],
            &[vec![
                text(&value["account"]),
                text(&value["balance"]),
                text(&value["nonce"]),
                text(&value["next_nonce"]),
            ]],
        ),
    }
}

fn render_status(value: &Value) -> String {
    let mut out = format!(
        "node {}  key {}  nestd {}  peers {}\n\n",
        text(&value["name"]),
        text(&value["public_key"]),
        text(&value["version"]),
        text(&value["peers"])
    );
    let chains: Vec<Vec<String>> = value["chains"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let plugin =
                |role: &str| format!("{} ({})", text(&c["plugins"][role]["name"]), text(&c["plugins"][role]["state"]));
            vec![
                text(&c["id"]),
                text(&c["height"]),
                short(&text(&c["head_hash"])),
                short(&text(&c["state_digest"])),
                text(&c["mempool_txs"]),
                plugin("consensus"),
                plugin("chain_type"),
            ]
        })
        .collect();
    out.push_str(&table(&["chain", "height", "head", "state digest", "mempool", "consensus", "chain type"], &chains));
    let plugins: Vec<Vec<String>> = value["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let kinds: Vec<String> = p["kinds"].as_array().into_iter().flatten().map(text).collect();
            vec![
                text(&p["id"]),
                text(&p["name"]),
                text(&p["version"]),
                kinds.join(","),
                text(&p["signed_by"]),
                short(&text(&p["library_sha256"])),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(&["plugin", "name", "version", "kinds", "signed by", "sha256"], &plugins));
    out
}

fn render_block(value: &Value) -> String {
    let mut out = String::new();
    for key in ["height", "hash", "parent", "timestamp_ms", "proposer", "tx_root", "state_digest", "tx_count"] {
        out.push_str(&format!("{key:<14}{}\n", text(&value[key])));
    }
    let txs: Vec<Vec<String>> = value["txs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let transfer = &t["tx"]["body"]["Transfer"];
            vec![
                short(&text(&t["hash"])),
                short(&text(&t["tx"]["from"])),
                short(&text(&transfer["to"])),
                text(&transfer["amount"]),
                text(&t["tx"]["nonce"]),
                text(&t["tx"]["fee"]),
            ]
        })
        .collect();
    if !txs.is_empty() {
        out.push('\n');
        out.push_str(&table(&["tx", "from", "to", "amount", "nonce", "fee"], &txs));
    }
    out
}

fn short(hex: &str) -> String {
    if hex.len() > 16 { format!("{}…", &hex[..16]) } else { hex.to_string() }
}
