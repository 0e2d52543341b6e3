//! Read the node's public HTTP API for `nest status`, `nest block` and `nest account`.

use crate::Command;
use serde_json::Value;
use std::time::Duration;

/// Fetching failed.
#[derive(Debug)]
pub enum FetchError {
    /// No node answered.
    Unreachable(String),
    /// The node answered with an error.
    Status(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Unreachable(message) | FetchError::Status(message) => f.write_str(message),
        }
    }
}

/// GET `path` from the API at `base`.
pub fn fetch(base: &str, path: &str) -> Result<Value, FetchError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    match agent.get(&url).call() {
        Ok(response) => response.into_json().map_err(|e| FetchError::Status(format!("{url}: {e}"))),
        Err(ureq::Error::Status(code, response)) => {
            let body: Value = response.into_json().unwrap_or_default();
            Err(FetchError::Status(format!("{url}: HTTP {code}: {}", body["error"].as_str().unwrap_or("no detail"))))
        }
        Err(ureq::Error::Transport(error)) => Err(FetchError::Unreachable(format!("{error} (is the node running?)"))),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Left-aligned columns under a header.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    crate::render::table(Some(&header), rows)
}

/// The table for a subcommand's answer.
pub fn render(command: &Command, value: &Value) -> String {
    match command {
        Command::Status => render_status(value),
        Command::Block { .. } => render_block(value),
        Command::Bench { .. } => String::new(),
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
