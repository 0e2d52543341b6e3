//! Talk to a node's HTTP API from the command line tools (blocking).

use serde::de::DeserializeOwned;
use std::time::Duration;

/// A blocking API client with a per-request timeout.
pub struct Client {
    base_url: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `base_url` (e.g. `http://127.0.0.1:7300`).
    pub fn new(base_url: &str) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
        Self { base_url: base_url.trim_end_matches('/').to_string(), agent }
    }

    /// GET a JSON resource.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let url = format!("{}{path}", self.base_url);
        let response = self.agent.get(&url).call().map_err(|e| describe(&url, e))?;
        response.into_json().map_err(|e| format!("{url}: {e}"))
    }

    /// POST JSON and read a JSON answer.
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T, String> {
        let url = format!("{}{path}", self.base_url);
        let response = self.agent.post(&url).send_json(body).map_err(|e| describe(&url, e))?;
        response.into_json().map_err(|e| format!("{url}: {e}"))
    }
}

/// Turns a transport or status error into one line, with the API's own error text.
fn describe(url: &str, error: ureq::Error) -> String {
    match error {
        ureq::Error::Status(code, response) => {
            let body: serde_json::Value = response.into_json().unwrap_or_default();
            let message = body.get("error").and_then(|e| e.as_str()).unwrap_or("no detail").to_string();
            format!("{url}: HTTP {code}: {message}")
        }
        ureq::Error::Transport(transport) => format!("{url}: {transport}"),
    }
}
