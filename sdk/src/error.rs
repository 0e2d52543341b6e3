//! The error value every plugin entry point returns.

use crate::export::PluginKind;
use abi_stable::{StableAbi, std_types::RString};
use std::fmt;

/// What went wrong inside a plugin call.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub enum PluginError {
    /// The plugin panicked; the host disables this instance.
    Panicked {
        /// The panic payload, when it was a string.
        message: RString,
    },
    /// The configuration given to the plugin is invalid.
    InvalidConfig {
        /// Dotted path of the offending key inside the plugin's config table (may be empty).
        path: RString,
        /// What is wrong with it.
        message: RString,
    },
    /// An input (message, unit, order) was malformed or breaks the rules; the plugin is fine.
    Rejected {
        /// Why the input was rejected.
        message: RString,
    },
    /// The library does not provide the requested plugin kind.
    WrongKind {
        /// The kind that was asked for.
        kind: PluginKind,
    },
    /// The plugin could not do what was asked (an internal failure).
    Failed {
        /// What failed.
        message: RString,
    },
}

impl PluginError {
    /// A rejected input.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::Rejected { message: RString::from(message.into()) }
    }

    /// An internal failure.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed { message: RString::from(message.into()) }
    }

    /// An invalid configuration key.
    pub fn invalid_config(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidConfig { path: RString::from(path.into()), message: RString::from(message.into()) }
    }

    /// Whether the host should disable the instance after this error.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Panicked { .. })
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panicked { message } => write!(f, "plugin panicked: {message}"),
            Self::InvalidConfig { path, message } if path.is_empty() => write!(f, "{message}"),
            Self::InvalidConfig { path, message } => write!(f, "{path}: {message}"),
            Self::Rejected { message } => write!(f, "rejected: {message}"),
            Self::WrongKind { kind } => write!(f, "the library provides no {kind} plugin"),
            Self::Failed { message } => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for PluginError {}
