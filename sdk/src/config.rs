//! Parse a plugin's configuration with errors that name the offending key.
//!
//! The host hands each plugin its config table from the node manifest as JSON text.
//! [`parse`] turns it into the plugin's typed config and, on failure, reports the
//! dotted path of the key (`authorities[2]`, `block_interval_ms`) and what was
//! expected, so that `nestd check` can point the operator at the exact line.

use crate::error::PluginError;
use serde::de::DeserializeOwned;
use std::fmt;

/// A configuration key that is missing, mistyped or out of range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the key inside the plugin's config table; empty for the table itself.
    pub path: String,
    /// What is wrong, in the operator's terms.
    pub message: String,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

impl From<ConfigError> for PluginError {
    fn from(error: ConfigError) -> Self {
        PluginError::invalid_config(error.path, error.message)
    }
}

/// Parses a JSON config into `T`, naming the failing key on error.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, ConfigError> {
    let deserializer = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, readable(&error.into_inner()))
    })
}

/// Rewords serde's messages for operators ("expected u64" becomes "expected an integer").
fn readable(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    };
    let replacements = [
        ("expected u64", "expected an integer"),
        ("expected u32", "expected an integer"),
        ("expected u16", "expected an integer"),
        ("expected u8", "expected an integer"),
        ("expected i64", "expected an integer"),
        ("expected i32", "expected an integer"),
        ("expected usize", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ];
    replacements.iter().fold(text, |text, (from, to)| text.replace(from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        block_interval_ms: u64,
        authorities: Vec<String>,
    }

    #[test]
    fn mistyped_key_is_named_with_operator_wording() {
        let error = parse::<Sample>(r#"{"block_interval_ms": "fast", "authorities": []}"#).unwrap_err();
        assert_eq!(error.path, "block_interval_ms");
        assert!(error.message.starts_with("invalid type: string \"fast\", expected an integer"), "{}", error.message);
    }

    #[test]
    fn missing_and_unknown_keys_are_reported() {
        let missing = parse::<Sample>(r#"{"authorities": []}"#).unwrap_err();
        assert_eq!(missing.message, "missing field `block_interval_ms`");
        let unknown = parse::<Sample>(r#"{"block_interval_ms": 1, "authorities": [], "x": 1}"#).unwrap_err();
        assert!(unknown.message.starts_with("unknown field `x`"), "{}", unknown.message);
    }
}
