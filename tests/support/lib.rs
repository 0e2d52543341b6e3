//! Build, sign and run real plugin packages and nestd processes for end-to-end tests.
//!
//! Plugin libraries come from the workspace's build directory (`target/debug`, or
//! `$CARGO_TARGET_DIR/debug`). `cargo test` does not build other packages' cdylibs, so
//! the tests need `cargo build --workspace` (or `-p <fixture>`) first; a missing
//! library fails the test with a message that says so.

use nest_host::{
    crypto::{self, SecretKey},
    loader::TrustStore,
    package::{self, PackageManifest},
};
use nest_sdk::{
    PluginKind, RadioFrame, SinkStatus,
    radio::{FrameSink, FrameSinkFfi},
};
use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

/// A fixture or plugin crate: its directory and its library's crate name.
#[derive(Clone, Copy, Debug)]
pub struct PluginCrate {
    /// Crate directory, relative to the workspace root.
    pub dir: &'static str,
    /// The library's crate name (`lib<name>.so`).
    pub lib_name: &'static str,
}

/// The loopback radio fixture.
pub const RADIO_LOOPBACK: PluginCrate =
    PluginCrate { dir: "tests/fixtures/radio-loopback", lib_name: "fixture_radio_loopback" };
/// The simulated radio plugin.
pub const RADIO_SIM: PluginCrate = PluginCrate { dir: "plugins/radio-sim", lib_name: "radio_sim" };
/// The UDP radio plugin.
pub const RADIO_UDP: PluginCrate = PluginCrate { dir: "plugins/radio-udp", lib_name: "radio_udp" };
/// The MQTT bridge plugin.
pub const RADIO_MQTT: PluginCrate = PluginCrate { dir: "plugins/radio-mqtt", lib_name: "radio_mqtt" };
/// The flat-price market fixture.
pub const MARKET_FLAT: PluginCrate = PluginCrate { dir: "tests/fixtures/market-flat", lib_name: "fixture_market_flat" };
/// The proof-of-authority engine.
pub const CONSENSUS_POA: PluginCrate = PluginCrate { dir: "plugins/consensus-poa", lib_name: "consensus_poa" };
/// The panicking consensus engine (and counting chain type) fixture.
pub const CONSENSUS_PANIC: PluginCrate =
    PluginCrate { dir: "tests/fixtures/consensus-panic", lib_name: "fixture_consensus_panic" };
/// The fixture whose root module has the wrong layout.
pub const ABI_MISMATCH: PluginCrate =
    PluginCrate { dir: "tests/fixtures/abi-mismatch", lib_name: "fixture_abi_mismatch" };

impl PluginCrate {
    /// The crate's source `plugin.toml`.
    pub fn source_manifest(&self) -> PathBuf {
        workspace_root().join(self.dir).join("plugin.toml")
    }

    /// The built library; panics with "build first" when it is missing.
    pub fn library(&self) -> PathBuf {
        library_path(self.lib_name)
    }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate lives inside the workspace").to_path_buf()
}

/// The debug build directory: `$CARGO_TARGET_DIR/debug` or `<root>/target/debug`.
pub fn target_dir() -> PathBuf {
    let base = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    };
    base.join("debug")
}

/// Path of `lib<crate_lib_name>.so` in the build directory, or an error telling how to
/// build it.
pub fn try_library_path(crate_lib_name: &str) -> Result<PathBuf, String> {
    let path = target_dir().join(format!("lib{crate_lib_name}.so"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("run `cargo build --workspace` first: {} is missing", path.display()))
    }
}

/// Path of `lib<crate_lib_name>.so`; panics with "run `cargo build --workspace` first"
/// when it is missing.
pub fn library_path(crate_lib_name: &str) -> PathBuf {
    try_library_path(crate_lib_name).unwrap_or_else(|message| panic!("{message}"))
}

/// A deterministic vendor key for tests.
pub fn vendor_key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

/// A trust store holding `key` under the name `vendor`.
pub fn trusting(vendor: &str, key: &SecretKey) -> TrustStore {
    let mut trust = TrustStore::new();
    trust.add(vendor, key.public_key());
    trust
}

/// Packs `library` with `source_manifest` into `out_dir` with the real `pack`.
pub fn make_package(source_manifest: &Path, library: &Path, out_dir: &Path, key: &SecretKey) -> PackageManifest {
    package::pack(source_manifest, library, out_dir, key)
        .unwrap_or_else(|error| panic!("pack {}: {error}", library.display()))
}

/// Packs a fixture crate into `out_dir`.
pub fn pack_crate(plugin: PluginCrate, out_dir: &Path, key: &SecretKey) -> PackageManifest {
    make_package(&plugin.source_manifest(), &plugin.library(), out_dir, key)
}

/// Builds a signed package by hand (no root-module check, unlike `pack`): copies
/// `library`, writes a manifest declaring `kinds` and `sdk_abi`, signs it.
pub fn package_by_hand(
    library: &Path,
    out_dir: &Path,
    name: &str,
    kinds: &[PluginKind],
    sdk_abi: u32,
    key: &SecretKey,
) -> PackageManifest {
    let bytes = fs::read(library).expect("read library");
    fs::create_dir_all(out_dir).expect("create package dir");
    let file_name = library.file_name().and_then(|name| name.to_str()).expect("library has a UTF-8 file name");
    package::write_library(&out_dir.join(file_name), &bytes).expect("copy library");
    let manifest = PackageManifest {
        name: name.into(),
        version: "0.1.0".into(),
        kinds: kinds.to_vec(),
        description: "built by hand for a test".into(),
        sdk_abi,
        library: file_name.into(),
        library_sha256: crypto::sha256(&bytes),
        vendor_key: key.public_key(),
        tolerates: Vec::new(),
    };
    package::write_manifest(out_dir, &manifest).expect("write plugin.toml");
    package::sign(out_dir, key).expect("sign package")
}

/// A frame sink that keeps every frame it is given.
#[derive(Clone, Default)]
pub struct CollectingSink {
    frames: Arc<Mutex<Vec<RadioFrame>>>,
}

impl CollectingSink {
    /// The sink as a driver receives it.
    pub fn sink(&self) -> FrameSink {
        FrameSink::new(self.clone())
    }

    /// The frames received so far.
    pub fn frames(&self) -> Vec<RadioFrame> {
        self.frames.lock().expect("sink lock").clone()
    }
}

impl FrameSinkFfi for CollectingSink {
    fn deliver(&self, frame: RadioFrame) -> SinkStatus {
        self.frames.lock().expect("sink lock").push(frame);
        SinkStatus::Accepted
    }
}

pub mod device;
pub mod devices;
pub mod mosquitto;
pub mod node;
pub mod tour;
