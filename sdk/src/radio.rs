//! Radio drivers: move device frames between a radio (or a broker) and the host.
//!
//! Drivers are the one plugin kind that owns threads: [`RadioDriver::start`] receives
//! a [`FrameSink`] and the driver's own threads push received frames into it. The sink
//! is bounded: when it answers [`SinkStatus::Full`] the driver drops or retries. What a
//! driver drops or never puts on the air it reports with [`FrameSink::skipped`], so the
//! node can count it by reason instead of the driver keeping it in its own log.

use crate::{
    config::ConfigError,
    error::PluginError,
    export::{guard, panic_message},
    host::{Host, LogLevel},
};
use abi_stable::{
    StableAbi, sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RArc, RBox, ROption, RResult, RSlice, RStr, RString, RVec},
};
use serde::de::DeserializeOwned;

/// What a radio can carry.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct RadioInfo {
    /// Technology name, e.g. `lora-sf7`, `ble`, `mqtt`.
    pub technology: RString,
    /// Largest payload of one frame on the air.
    pub mtu_bytes: u32,
    /// Raw link rate.
    pub bitrate_bps: u64,
    /// Allowed share of air time, in thousandths (1000 = unrestricted).
    pub duty_cycle_permille: u32,
}

/// One frame received from a device.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct RadioFrame {
    /// Link-layer address of the sender (driver-specific text: MAC, topic, ip:port).
    pub link_address: RString,
    /// Frame bytes as received.
    pub payload: RVec<u8>,
    /// Received signal strength, where the radio reports it.
    pub rssi_dbm: ROption<i32>,
}

/// Whether the host took a frame.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkStatus {
    /// Queued for the node.
    Accepted,
    /// The bounded queue is full; the frame was not taken.
    Full,
    /// The host no longer listens (the driver is being stopped).
    Closed,
}

/// Where a driver delivers received frames; implemented by the host.
#[sabi_trait]
pub trait FrameSinkFfi: Send + Sync + Clone {
    /// Offers one frame to the host.
    #[sabi(last_prefix_field)]
    fn deliver(&self, frame: RadioFrame) -> SinkStatus;

    /// Counts `frames` frames the driver did not deliver, for `reason` (ABI 7; a sink
    /// that predates it ignores the report).
    fn skipped(&self, _reason: RStr<'_>, _frames: u64) {}
}

/// The FFI handle to a frame sink.
pub type FrameSinkBox = FrameSinkFfi_TO<'static, RArc<()>>;

/// A frame sink as a driver sees it: clone it into each thread.
#[derive(Clone)]
pub struct FrameSink(FrameSinkBox);

impl FrameSink {
    /// Wraps a sink implementation (used by the host and tests).
    pub fn new<T: FrameSinkFfi + 'static>(sink: T) -> Self {
        Self(FrameSinkFfi_TO::from_ptr(RArc::new(sink), TD_Opaque))
    }

    /// Wraps the handle received through the boundary.
    pub fn from_box(handle: FrameSinkBox) -> Self {
        Self(handle)
    }

    /// The FFI handle.
    pub fn to_box(&self) -> FrameSinkBox {
        self.0.clone()
    }

    /// Offers one frame to the host.
    pub fn deliver(&self, frame: RadioFrame) -> SinkStatus {
        self.0.deliver(frame)
    }

    /// Reports `frames` frames (readings or fragments, one each) that the driver did not
    /// deliver, for `reason`: a short snake_case code such as `duty_cycle` or
    /// `host_queue_full`. The node counts them per radio and reason (at most
    /// [`SKIP_REASONS_MAX`] reasons per radio; others, and codes that are not snake_case
    /// of at most [`SKIP_REASON_BYTES_MAX`] bytes, count as `other`).
    pub fn skipped(&self, reason: &str, frames: u64) {
        self.0.skipped(reason.into(), frames)
    }
}

/// Distinct skip reasons the node counts per radio (see [`FrameSink::skipped`]).
pub const SKIP_REASONS_MAX: usize = 16;
/// Longest skip reason code.
pub const SKIP_REASON_BYTES_MAX: usize = 32;

/// A radio driver, as a vendor writes it.
pub trait RadioDriver: Send + Sized + 'static {
    /// The driver's configuration.
    type Config: DeserializeOwned;

    /// Checks a parsed configuration beyond its types.
    fn check_config(_config: &Self::Config) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Builds an instance (no threads yet).
    fn new(config: Self::Config, host: Host) -> Result<Self, PluginError>;

    /// What the radio can carry.
    fn info(&self) -> RadioInfo;

    /// Starts receiving; frames go to `sink` from the driver's own threads.
    fn start(&mut self, sink: FrameSink) -> Result<(), PluginError>;

    /// Sends one frame to a device.
    fn send(&mut self, link_address: &str, payload: &[u8]) -> Result<(), PluginError>;

    /// Stops the driver's threads; no frame is delivered after it returns.
    fn stop(&mut self) -> Result<(), PluginError>;
}

/// Runs the body of one of a driver's own threads, logging a panic through `host`.
///
/// A panic there is no entry point the SDK's guard covers; without this it would end the
/// thread silently. The node keeps running either way. Returns whether `body` returned.
pub fn run_contained(host: &Host, thread: &str, body: impl FnOnce()) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(()) => true,
        Err(payload) => {
            host.log(
                LogLevel::Error,
                &format!("radio thread {thread} panicked and stopped: {}", panic_message(&payload)),
            );
            false
        }
    }
}

/// The FFI face of a radio driver instance.
#[sabi_trait]
pub trait RadioFfi: Send {
    /// See [`RadioDriver::info`].
    fn info(&self) -> RResult<RadioInfo, PluginError>;
    /// See [`RadioDriver::start`].
    fn start(&mut self, sink: FrameSinkBox) -> RResult<(), PluginError>;
    /// See [`RadioDriver::send`].
    fn send(&mut self, link_address: RStr<'_>, payload: RSlice<'_, u8>) -> RResult<(), PluginError>;
    /// See [`RadioDriver::stop`].
    #[sabi(last_prefix_field)]
    fn stop(&mut self) -> RResult<(), PluginError>;
}

/// An owned radio driver instance behind the boundary.
pub type RadioBox = RadioFfi_TO<'static, RBox<()>>;

/// Adapts a [`RadioDriver`] to [`RadioFfi`], catching panics.
pub struct RadioAdapter<R>(pub R);

impl<R: RadioDriver> RadioFfi for RadioAdapter<R> {
    fn info(&self) -> RResult<RadioInfo, PluginError> {
        guard(|| Ok(self.0.info()))
    }
    fn start(&mut self, sink: FrameSinkBox) -> RResult<(), PluginError> {
        guard(|| self.0.start(FrameSink::from_box(sink)))
    }
    fn send(&mut self, link_address: RStr<'_>, payload: RSlice<'_, u8>) -> RResult<(), PluginError> {
        guard(|| self.0.send(link_address.as_str(), payload.as_slice()))
    }
    fn stop(&mut self) -> RResult<(), PluginError> {
        guard(|| self.0.stop())
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::LocalHost;

    #[test]
    fn a_thread_panic_is_logged_not_propagated() {
        let local = LocalHost::from_seed([5; 32]);
        assert!(run_contained(&local.host(), "fine", || {}));
        assert!(!run_contained(&local.host(), "rx", || panic!("socket gone")));
        let logs = local.logs.lock().unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0], (LogLevel::Error, "radio thread rx panicked and stopped: socket gone".to_string()));
    }
}
