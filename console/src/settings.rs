//! Resolve where the node is, its token and the history file from flags, the
//! environment and the node's data directory.
//!
//! Precedence: flag, then environment (`NEST_URL`, `NEST_TOKEN_FILE`,
//! `NEST_HISTORY`), then the data directory (`api.addr`, `api.token`), then defaults.

use crate::protocol::CONSOLE_PATH;
use std::path::{Path, PathBuf};

/// The data directory `nestd up` gives the devnet's first node.
pub const DEFAULT_DATA_DIR: &str = ".devnet/node-1/data";
/// The API address when nothing else names one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7300";
/// The history file under the home directory.
pub const HISTORY_FILE_NAME: &str = ".nest_history";
/// The longest token file read (bytes).
pub const TOKEN_BYTES_MAX: u64 = 4096;

/// What the operator gave on the command line.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    /// `--url`.
    pub url: Option<String>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

/// Where to reach the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The node's HTTP API, without a trailing slash.
    pub url: String,
    /// The file holding the admin bearer token.
    pub token_file: PathBuf,
}

/// The URL or the token could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// The token file does not exist.
    #[error(
        "no API token at {path}: the node writes it when it starts (`nestd up` runs a devnet in .devnet/); \
         for another node pass --data-dir, --token-file or NEST_TOKEN_FILE"
    )]
    TokenMissing {
        /// The token file.
        path: String,
    },
    /// The token file could not be read or holds no usable token.
    #[error("{path}: {reason}")]
    TokenUnusable {
        /// The token file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The URL is not one the console can use.
    #[error("{url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
}

/// Resolve the endpoint; `env` reads an environment variable (empty counts as unset).
pub fn resolve(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Endpoint {
    let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let data_dir = flags.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let url = flags
        .url
        .clone()
        .or_else(|| env("NEST_URL"))
        .or_else(|| api_addr(&data_dir).map(|addr| format!("http://{addr}")))
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let token_file = flags
        .token_file
        .clone()
        .or_else(|| env("NEST_TOKEN_FILE").map(PathBuf::from))
        .unwrap_or_else(|| data_dir.join("api.token"));
    Endpoint { url: url.trim().trim_end_matches('/').to_string(), token_file }
}

/// The address in `<data_dir>/api.addr`, if the node wrote one.
fn api_addr(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("api.addr")).ok()?;
    let addr = text.lines().next()?.trim();
    (!addr.is_empty()).then(|| addr.to_string())
}

/// The history file: `NEST_HISTORY`, else `~/.nest_history`, else none.
pub fn history_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let env = |name: &str| env(name).filter(|value| !value.is_empty());
    env("NEST_HISTORY").map(PathBuf::from).or_else(|| env("HOME").map(|home| Path::new(&home).join(HISTORY_FILE_NAME)))
}

/// The console's WebSocket URL for the API at `url` (`http://` or `ws://`, or no scheme).
pub fn console_url(url: &str) -> Result<String, SettingsError> {
    let error = |reason| SettingsError::Url { url: url.to_string(), reason };
    let rest = match url.split_once("://") {
        Some(("http" | "ws", rest)) => rest,
        Some(("https" | "wss", _)) => return Err(error("TLS is not supported: the admin API is plain HTTP")),
        Some(_) => return Err(error("expected an http:// URL")),
        None => url,
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(error("expected http://HOST:PORT"));
    }
    Ok(format!("ws://{authority}{CONSOLE_PATH}"))
}

/// Read the bearer token from `path` (one line).
pub fn read_token(path: &Path) -> Result<String, SettingsError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let unusable = |reason: String| SettingsError::TokenUnusable { path: shown.clone(), reason };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(SettingsError::TokenMissing { path: shown });
        }
        Err(error) => return Err(unusable(error.to_string())),
    };
    let mut text = String::new();
    file.take(TOKEN_BYTES_MAX).read_to_string(&mut text).map_err(|e| unusable(e.to_string()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(unusable("the token file is empty".into()));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(unusable("the token holds characters a header cannot carry".into()));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    fn data_dir_with_addr(addr: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("api.addr"), addr).unwrap();
        dir
    }

    #[test]
    fn defaults_are_the_devnet_data_dir_and_port_7300() {
        let flags = Flags { data_dir: Some("/nonexistent/nest".into()), ..Flags::default() };
        let endpoint = resolve(&flags, &env_of(&[]));
        assert_eq!(
            endpoint,
            Endpoint { url: DEFAULT_URL.into(), token_file: PathBuf::from("/nonexistent/nest/api.token") }
        );
        let endpoint = resolve(&Flags::default(), &env_of(&[]));
        assert_eq!(endpoint.token_file, Path::new(DEFAULT_DATA_DIR).join("api.token"));
    }

    #[test]
    fn the_data_dir_api_addr_gives_the_url() {
        let dir = data_dir_with_addr("127.0.0.1:41234\n");
        let flags = Flags { data_dir: Some(dir.path().into()), ..Flags::default() };
        let endpoint = resolve(&flags, &env_of(&[]));
        assert_eq!(endpoint.url, "http://127.0.0.1:41234");
        assert_eq!(endpoint.token_file, dir.path().join("api.token"));
    }

    #[test]
    fn an_empty_api_addr_falls_back_to_the_default_url() {
        let dir = data_dir_with_addr("\n");
        let flags = Flags { data_dir: Some(dir.path().into()), ..Flags::default() };
        assert_eq!(resolve(&flags, &env_of(&[])).url, DEFAULT_URL);
    }

    #[test]
    fn environment_overrides_the_data_dir_and_flags_override_the_environment() {
        let dir = data_dir_with_addr("127.0.0.1:41234");
        let env = env_of(&[("NEST_URL", "http://10.0.0.1:9000/"), ("NEST_TOKEN_FILE", "/run/token")]);
        let mut flags = Flags { data_dir: Some(dir.path().into()), ..Flags::default() };
        let endpoint = resolve(&flags, &env);
        assert_eq!(endpoint, Endpoint { url: "http://10.0.0.1:9000".into(), token_file: "/run/token".into() });
        flags.url = Some("http://127.0.0.1:1".into());
        flags.token_file = Some("my.token".into());
        let endpoint = resolve(&flags, &env);
        assert_eq!(endpoint, Endpoint { url: "http://127.0.0.1:1".into(), token_file: "my.token".into() });
    }

    #[test]
    fn empty_environment_variables_count_as_unset() {
        let flags = Flags { data_dir: Some("/d".into()), ..Flags::default() };
        let endpoint = resolve(&flags, &env_of(&[("NEST_URL", ""), ("NEST_TOKEN_FILE", " ")]));
        assert_eq!(endpoint, Endpoint { url: DEFAULT_URL.into(), token_file: "/d/api.token".into() });
    }

    #[test]
    fn history_file_is_nest_history_else_home() {
        assert_eq!(history_file(&env_of(&[("NEST_HISTORY", "/tmp/h"), ("HOME", "/home/op")])), Some("/tmp/h".into()));
        assert_eq!(history_file(&env_of(&[("HOME", "/home/op")])), Some("/home/op/.nest_history".into()));
        assert_eq!(history_file(&env_of(&[])), None);
    }

    #[test]
    fn console_url_turns_the_api_url_into_the_websocket_endpoint() {
        assert_eq!(console_url("http://127.0.0.1:7300").unwrap(), "ws://127.0.0.1:7300/v1/admin/console");
        assert_eq!(console_url("ws://[::1]:7300/").unwrap(), "ws://[::1]:7300/v1/admin/console");
        assert_eq!(console_url("localhost:7300").unwrap(), "ws://localhost:7300/v1/admin/console");
        assert!(console_url("https://node:7300").is_err());
        assert!(console_url("ftp://node").is_err());
        assert!(console_url("http://node:7300/v1").is_err());
        assert!(console_url("http://").is_err());
    }

    #[test]
    fn a_missing_token_file_names_the_path_and_how_to_get_it() {
        let error = read_token(Path::new("/nonexistent/api.token")).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("/nonexistent/api.token"), "{message}");
        assert!(message.contains("nestd up"), "{message}");
        assert!(message.contains("--token-file"), "{message}");
    }

    #[test]
    fn the_token_is_the_first_line_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.token");
        std::fs::write(&path, "abc123\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "abc123");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(read_token(&path), Err(SettingsError::TokenUnusable { .. })));
        std::fs::write(&path, "bad token\n").unwrap();
        assert!(matches!(read_token(&path), Err(SettingsError::TokenUnusable { .. })));
    }
}
