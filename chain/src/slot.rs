//! Hold one plugin instance and disable it when it panics.
//!
//! A panic inside a plugin is caught by the SDK's adapter and arrives here as
//! `PluginError::Panicked`; the slot then refuses every later call, so the node keeps
//! running without the plugin instead of aborting.

use crate::telemetry::{self, EventSink};
use nest_sdk::{PluginError, RResult};
use serde::{Deserialize, Serialize};

/// Identity and state of a plugin instance, as the API reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlotStatus {
    /// Manifest id of the plugin package.
    pub id: String,
    /// Plugin name from its package.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// `running`, `disabled`, or `failed` (a radio driver whose `start` failed).
    pub state: String,
    /// Why it was disabled, or the error it failed with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a call through a slot did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// The instance is disabled (or failed to start); nothing was called.
    #[error("plugin {id} is {state}: {reason}")]
    Disabled {
        /// Plugin id.
        id: String,
        /// `disabled` or `failed`.
        state: String,
        /// Why.
        reason: String,
    },
    /// The call returned an error (the instance may have been disabled by it).
    #[error("plugin {id}: {error}")]
    Plugin {
        /// Plugin id.
        id: String,
        /// The plugin's error.
        error: PluginError,
    },
}

/// A plugin instance with its kill switch.
pub struct Slot<T> {
    instance: T,
    status: SlotStatus,
    /// The instance's configuration, kept to build a replacement (enable, upgrade).
    config_json: String,
    /// Whether it was disabled by a panic (its state can no longer be trusted).
    panicked: bool,
    events: Option<EventSink>,
}

impl<T> Slot<T> {
    /// Wraps a running instance built from `config_json`.
    pub fn new(instance: T, id: &str, name: &str, version: &str, config_json: &str) -> Self {
        let status = SlotStatus {
            id: id.into(),
            name: name.into(),
            version: version.into(),
            state: "running".into(),
            reason: None,
        };
        Self { instance, status, config_json: config_json.to_string(), panicked: false, events: None }
    }

    /// Calls the instance unless it is disabled; disables it if the call panicked.
    pub fn call<R>(&mut self, f: impl FnOnce(&mut T) -> RResult<R, PluginError>) -> Result<R, SlotError> {
        if let Some(reason) = &self.status.reason {
            let (id, state) = (self.status.id.clone(), self.status.state.clone());
            return Err(SlotError::Disabled { id, state, reason: reason.clone() });
        }
        let started = std::time::Instant::now();
        let result = f(&mut self.instance).into_result();
        if let Some(metrics) = telemetry::metrics() {
            metrics.plugin_called(&self.status.id, started.elapsed());
        }
        match result {
            Ok(value) => Ok(value),
            Err(error) => {
                if let Some(metrics) = telemetry::metrics() {
                    metrics.plugin_failed(&self.status.id);
                }
                if error.is_fatal() {
                    self.panicked = true;
                    self.disable(error.to_string());
                }
                Err(SlotError::Plugin { id: self.status.id.clone(), error })
            }
        }
    }

    /// Stops calling the instance.
    pub fn disable(&mut self, reason: String) {
        tracing::error!(plugin = %self.status.id, %reason, "plugin disabled; the node keeps running without it");
        self.status.state = "disabled".into();
        self.status.reason = Some(reason);
        self.publish_state();
    }

    /// Marks an instance that could not start (a radio driver whose `start` failed): it
    /// is refused calls like a disabled one and reports `failed` with the error, until
    /// the operator enables it again (which retries the start).
    pub fn fail(&mut self, reason: String) {
        tracing::error!(plugin = %self.status.id, %reason, "plugin failed to start; the node keeps running without it");
        self.status.state = "failed".into();
        self.status.reason = Some(reason);
        self.publish_state();
    }

    fn publish_state(&self) {
        if let Some(events) = &self.events {
            events.plugin_state(&self.status);
        }
    }

    /// Publishes this instance's state changes on `events`.
    pub fn attach_events(&mut self, events: &EventSink) {
        self.events = Some(events.clone());
    }

    /// Resumes an instance the operator disabled. An instance that panicked cannot be
    /// resumed (its state is suspect): replace it instead.
    pub fn resume(&mut self) -> Result<(), String> {
        if self.panicked {
            return Err(format!("plugin {} panicked; build a fresh instance instead of resuming it", self.status.id));
        }
        if self.status.reason.take().is_some() {
            tracing::info!(plugin = %self.status.id, "plugin enabled");
            self.status.state = "running".into();
            self.publish_state();
        }
        Ok(())
    }

    /// Swaps in a new instance (an upgrade, or a fresh start after a panic).
    pub fn replace(&mut self, instance: T, name: &str, version: &str) {
        tracing::info!(plugin = %self.status.id, from = %self.status.version, to = %version, "plugin instance replaced");
        self.instance = instance;
        self.status.name = name.to_string();
        self.status.version = version.to_string();
        self.status.state = "running".into();
        self.status.reason = None;
        self.panicked = false;
        self.publish_state();
    }

    /// Whether the last disable came from a panic.
    pub fn panicked(&self) -> bool {
        self.panicked
    }

    /// The configuration the instance was built from.
    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    /// Whether the instance still runs.
    pub fn is_running(&self) -> bool {
        self.status.reason.is_none()
    }

    /// Identity and state.
    pub fn status(&self) -> &SlotStatus {
        &self.status
    }
}
