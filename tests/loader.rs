//! The loader on real signed packages built from the workspace's fixture libraries:
//! every refusal names the file and the reason, and each plugin kind loads and runs.

use nest_host::{
    crypto::SecretKey,
    loader::{self, LoadError, LoadOptions, LoadedLibrary},
    package::{self, PackageManifest},
};
use nest_sdk::{
    ABI_COMPATIBLE_MIN, ABI_VERSION, BuildRequest, Effect, Hash32, Input, LastCommit, Order, PluginError, PluginKind,
    PublicKey, QuoteRequest, Round, Terms, UnitRef, Usage, consensus, testing::LocalHost,
};
use nest_tests::{
    ABI_MISMATCH, CONSENSUS_PANIC, CollectingSink, MARKET_FLAT, PluginCrate, RADIO_LOOPBACK, pack_crate,
    package_by_hand, trusting, vendor_key,
};
use std::{fs, path::Path};

fn options(key: &SecretKey) -> LoadOptions {
    LoadOptions { trust: trusting("nest-tests", key), allow_unsigned: false }
}

/// Packs `plugin` into `<temp>/pkg`, returning the temp dir and the package path.
fn packed(plugin: PluginCrate, key: &SecretKey) -> (tempfile::TempDir, std::path::PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("pkg");
    pack_crate(plugin, &dir, key);
    (temp, dir)
}

fn load_ok(dir: &Path, key: &SecretKey) -> LoadedLibrary {
    loader::load(dir, &options(key)).unwrap_or_else(|error| panic!("{error}"))
}

fn refusal(dir: &Path, options: &LoadOptions) -> (LoadError, String) {
    let error = loader::load(dir, options).expect_err("the package must be refused");
    let message = error.to_string();
    (error, message)
}

fn host() -> LocalHost {
    LocalHost::from_seed([9; 32])
}

#[test]
fn unsigned_package_is_refused_naming_plugin_sig() {
    let key = vendor_key(1);
    let (_temp, dir) = packed(RADIO_LOOPBACK, &key);
    fs::remove_file(dir.join("plugin.sig")).unwrap();
    let (error, message) = refusal(&dir, &options(&key));
    assert!(matches!(error, LoadError::Unsigned { .. }), "{message}");
    let expected = format!("{}: missing: the package is unsigned", dir.join("plugin.sig").display());
    assert!(message.starts_with(&expected), "{message}");
}

#[test]
fn library_outside_the_package_directory_is_refused_naming_the_line() {
    let key = vendor_key(20);
    let (_temp, dir) = packed(RADIO_LOOPBACK, &key);
    let manifest_path = dir.join("plugin.toml");
    let text = fs::read_to_string(&manifest_path).unwrap();
    fs::write(&manifest_path, text.replace("library = \"", "library = \"../")).unwrap();
    let (error, message) = refusal(&dir, &options(&key));
    assert!(matches!(error, LoadError::Manifest { .. }), "{message}");
    assert!(message.starts_with(&format!("{}:6: library `../", manifest_path.display())), "{message}");
    assert!(message.contains("plain file name"), "{message}");
}

#[test]
fn missing_library_build_says_to_build_first() {
    let error = nest_tests::try_library_path("no_such_fixture").unwrap_err();
    assert!(
        error.starts_with("run `cargo build --workspace` first: ")
            && error.ends_with("libno_such_fixture.so is missing"),
        "{error}"
    );
}

#[test]
fn unknown_vendor_key_is_refused_naming_plugin_toml() {
    let key = vendor_key(2);
    let (_temp, dir) = packed(RADIO_LOOPBACK, &key);
    let (error, message) = refusal(&dir, &options(&vendor_key(3)));
    assert!(matches!(error, LoadError::UnknownVendor { .. }), "{message}");
    assert!(message.starts_with(&dir.join("plugin.toml").display().to_string()), "{message}");
    assert!(message.contains(&format!("vendor_key {} is not trusted", key.public_key())), "{message}");
}

#[test]
fn library_changed_by_one_bit_is_refused_with_both_hashes() {
    let key = vendor_key(4);
    let (_temp, dir) = packed(MARKET_FLAT, &key);
    let manifest = package::read_manifest(&dir).unwrap();
    let library = dir.join(&manifest.library);
    let mut bytes = fs::read(&library).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&library, &bytes).unwrap();
    let (error, message) = refusal(&dir, &options(&key));
    let LoadError::HashMismatch { actual, .. } = error else { panic!("{message}") };
    assert!(message.starts_with(&format!("{}: SHA-256 mismatch", library.display())), "{message}");
    assert!(message.contains(&manifest.library_sha256.to_hex()), "{message}");
    assert!(message.contains(&actual.to_hex()), "{message}");
}

#[test]
fn plugin_toml_edited_after_signing_is_refused() {
    let key = vendor_key(5);
    let (_temp, dir) = packed(MARKET_FLAT, &key);
    let manifest_path = dir.join("plugin.toml");
    let text = fs::read_to_string(&manifest_path).unwrap();
    fs::write(&manifest_path, text.replace("version = \"0.1.0\"", "version = \"9.9.9\"")).unwrap();
    let (error, message) = refusal(&dir, &options(&key));
    assert!(matches!(error, LoadError::BadSignature { .. }), "{message}");
    assert_eq!(
        message,
        format!("{}: signature does not match plugin.toml (edited after signing?)", dir.join("plugin.sig").display())
    );
}

#[test]
fn symlinked_library_is_refused() {
    let key = vendor_key(6);
    let (temp, dir) = packed(RADIO_LOOPBACK, &key);
    let manifest = package::read_manifest(&dir).unwrap();
    let library = dir.join(&manifest.library);
    let elsewhere = temp.path().join("real.so");
    fs::rename(&library, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &library).unwrap();
    let (error, message) = refusal(&dir, &options(&key));
    assert!(matches!(error, LoadError::Symlink { .. }), "{message}");
    assert_eq!(message, format!("{}: is a symbolic link; a package library must be a regular file", library.display()));
}

#[test]
fn root_module_with_another_layout_is_refused_as_abi_mismatch() {
    let key = vendor_key(7);
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("pkg");
    let manifest = package_by_hand(
        &ABI_MISMATCH.library(),
        &dir,
        "fixture-abi-mismatch",
        &[PluginKind::Consensus],
        ABI_VERSION,
        &key,
    );
    let (error, message) = refusal(&dir, &options(&key));
    assert!(matches!(error, LoadError::Layout { .. }), "{message}");
    let first_line = message.lines().next().unwrap();
    assert_eq!(
        first_line,
        format!(
            "{}: ABI/layout mismatch: the library was built against an incompatible nest-sdk",
            dir.join(&manifest.library).display()
        )
    );
    assert!(message.lines().count() > 1, "abi_stable's detail is kept: {message}");
}

#[test]
fn pack_refuses_a_library_whose_layout_does_not_match() {
    let key = vendor_key(8);
    let temp = tempfile::tempdir().unwrap();
    let error = package::pack(&ABI_MISMATCH.source_manifest(), &ABI_MISMATCH.library(), &temp.path().join("pkg"), &key)
        .unwrap_err()
        .to_string();
    assert!(error.contains("ABI/layout mismatch"), "{error}");
    assert!(!temp.path().join("pkg").exists(), "nothing is written");
}

#[test]
fn other_sdk_abi_is_refused_before_the_library_is_opened() {
    let key = vendor_key(9);
    let (_temp, dir) = packed(MARKET_FLAT, &key);
    let mut manifest = package::read_manifest(&dir).unwrap();
    manifest.sdk_abi = ABI_VERSION + 1;
    package::write_manifest(&dir, &manifest).unwrap();
    package::sign(&dir, &key).unwrap();
    let (error, message) = refusal(&dir, &options(&key));
    assert!(matches!(error, LoadError::SdkAbi { .. }), "{message}");
    assert_eq!(
        message,
        format!(
            "{}: sdk_abi = {} but this host speaks nest-sdk ABI {ABI_VERSION} (and loads ABI {ABI_COMPATIBLE_MIN} to {ABI_VERSION})",
            dir.join("plugin.toml").display(),
            ABI_VERSION + 1
        )
    );
    // ABI 4 and older had closed boundary enums: a package built for them is refused too.
    manifest.sdk_abi = ABI_COMPATIBLE_MIN - 1;
    package::write_manifest(&dir, &manifest).unwrap();
    package::sign(&dir, &key).unwrap();
    let (error, message) = refusal(&dir, &options(&key));
    assert!(matches!(error, LoadError::SdkAbi { declared: 4, .. }), "{message}");
}

#[test]
fn declared_kind_other_than_the_library_provides_is_refused() {
    let key = vendor_key(10);
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("pkg");
    let manifest = package_by_hand(
        &RADIO_LOOPBACK.library(),
        &dir,
        "fixture-radio-loopback",
        &[PluginKind::Consensus],
        ABI_VERSION,
        &key,
    );
    let (error, message) = refusal(&dir, &options(&key));
    assert!(matches!(error, LoadError::KindMismatch { .. }), "{message}");
    assert_eq!(
        message,
        format!(
            "{}: plugin.toml declares [consensus] but the library provides [radio]",
            dir.join(&manifest.library).display()
        )
    );
}

#[test]
fn pack_refuses_a_source_manifest_with_the_wrong_kind() {
    let key = vendor_key(11);
    let temp = tempfile::tempdir().unwrap();
    let source = temp.path().join("plugin.toml");
    let text = fs::read_to_string(RADIO_LOOPBACK.source_manifest()).unwrap();
    fs::write(&source, text.replace("[\"radio\"]", "[\"market\"]")).unwrap();
    let error =
        package::pack(&source, &RADIO_LOOPBACK.library(), &temp.path().join("pkg"), &key).unwrap_err().to_string();
    assert!(error.ends_with("plugin.toml declares [market] but the library provides [radio]"), "{error}");
}

#[test]
fn allow_unsigned_loads_an_unsigned_package_but_still_checks_the_hash() {
    let key = vendor_key(12);
    let (_temp, dir) = packed(RADIO_LOOPBACK, &key);
    fs::remove_file(dir.join("plugin.sig")).unwrap();
    let development = LoadOptions { allow_unsigned: true, ..LoadOptions::default() };
    let library = loader::load(&dir, &development).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(library.signed_by, None);
    assert_eq!(library.kinds(), vec![PluginKind::Radio]);

    let manifest = package::read_manifest(&dir).unwrap();
    let library_path = dir.join(&manifest.library);
    let mut bytes = fs::read(&library_path).unwrap();
    bytes[0] ^= 0x80;
    fs::write(&library_path, bytes).unwrap();
    let (error, message) = refusal(&dir, &development);
    assert!(matches!(error, LoadError::HashMismatch { .. }), "{message}");
}

#[test]
fn invalid_plugin_config_is_refused_with_the_key_path() {
    let key = vendor_key(13);
    let (_temp, dir) = packed(MARKET_FLAT, &key);
    let library = load_ok(&dir, &key);
    let error = library.check_config(PluginKind::Market, r#"{"price_per_unit": "cheap"}"#).unwrap_err();
    assert!(
        error.to_string().starts_with("price_per_unit: invalid type: string \"cheap\", expected an integer"),
        "{error}"
    );
    let Err(error) = library.new_market(r#"{"price_per_unit": 1, "extra": 2}"#, &host().host()) else {
        panic!("an unknown key must be refused")
    };
    assert!(error.to_string().contains("unknown field `extra`"), "{error}");
    assert_eq!(library.check_config(PluginKind::Radio, "{}"), Err(PluginError::WrongKind { kind: PluginKind::Radio }));
}

#[test]
fn radio_loopback_echoes_sent_frames_into_the_sink() {
    let key = vendor_key(14);
    let (_temp, dir) = packed(RADIO_LOOPBACK, &key);
    let library = load_ok(&dir, &key);
    assert_eq!(library.signed_by.as_deref(), Some("nest-tests"));
    assert_eq!(library.info.name.as_str(), "fixture-radio-loopback");
    let mut radio = library.new_radio(r#"{"mtu_bytes": 8}"#, &host().host()).unwrap();
    let info = radio.info().unwrap();
    assert_eq!((info.technology.as_str(), info.mtu_bytes), ("loopback", 8));

    let sink = CollectingSink::default();
    radio.start(sink.sink().to_box()).unwrap();
    radio.send("dev-1".into(), b"hello"[..].into()).unwrap();
    let frames = sink.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].link_address.as_str(), "dev-1");
    assert_eq!(frames[0].payload.as_slice(), b"hello");

    let error = radio.send("dev-1".into(), b"too long!"[..].into()).unwrap_err();
    assert!(
        matches!(&error, PluginError::Rejected { message } if message.contains("exceeds the MTU of 8 bytes")),
        "{error:?}"
    );
    radio.stop().unwrap();
    assert!(radio.send("dev-1".into(), b"x"[..].into()).is_err());
    assert_eq!(sink.frames().len(), 1);
}

fn order(id: u8, units: u64, max_price: u64) -> Order {
    Order { id: Hash32([id; 32]), buyer: PublicKey([id; 32]), units, max_price, placed_at_ms: 1_000 }
}

fn flat_terms(unit_price: u64) -> Terms {
    Terms { unit_price, reserve_price: 0, tiers: Default::default(), deadline_ms: 60_000, round_end_ms: 0 }
}

#[test]
fn market_flat_quotes_matches_and_settles() {
    let key = vendor_key(15);
    let (_temp, dir) = packed(MARKET_FLAT, &key);
    let library = load_ok(&dir, &key);
    let mut market = library.new_market(r#"{"price_per_unit": 7}"#, &host().host()).unwrap();
    let request =
        |units| QuoteRequest { sku: "wifi".into(), units, duration_s: 0, now_ms: 1_000, context_json: "{}".into() };
    let quote = market.quote(request(3)).unwrap();
    assert_eq!(quote.price, 21);
    assert!(quote.valid_until_ms > 1_000);
    assert!(matches!(market.quote(request(u64::MAX)).into_result(), Err(PluginError::Rejected { .. })));

    market.check_terms(&flat_terms(7)).unwrap();
    let mut auction = flat_terms(7);
    auction.round_end_ms = 5;
    assert!(matches!(market.check_terms(&auction).into_result(), Err(PluginError::Rejected { .. })));

    let round = Round {
        terms: flat_terms(7),
        orders: vec![order(3, 2, 14), order(1, 10, 69), order(2, 1, 100)].into(),
        units_available: 100,
        now_ms: 2_000,
    };
    let matches = market.clear(round).unwrap();
    let matched: Vec<(u8, u64)> = matches.iter().map(|m| (m.order_id.0[0], m.price)).collect();
    assert_eq!(matched, vec![(3, 14), (2, 7)], "placement order; order 1 bids too low");

    let usage = |units_used, escrow, reported| Usage {
        order_id: Hash32([2; 32]),
        units_locked: 20,
        units_used,
        escrow,
        reported,
        confirmed: false,
        locked_at_ms: 1_000,
        reported_at_ms: 1_500,
        now_ms: 2_000,
    };
    assert_eq!(market.settle(&flat_terms(7), usage(2, 100, true)).unwrap(), 14);
    assert_eq!(market.settle(&flat_terms(7), usage(20, 100, true)).unwrap(), 100);
    assert!(matches!(
        market.settle(&flat_terms(7), usage(2, 100, false)).into_result(),
        Err(PluginError::Rejected { .. })
    ));
}

#[test]
fn consensus_panic_sets_timers_and_its_panic_becomes_an_error() {
    let key = vendor_key(16);
    let (_temp, dir) = packed(CONSENSUS_PANIC, &key);
    let library = load_ok(&dir, &key);
    assert_eq!(library.kinds(), vec![PluginKind::Consensus, PluginKind::ChainType]);
    let mut engine = library.new_consensus(r#"{"panic_after_ticks": 3}"#, &host().host()).unwrap();
    let start = Input::Start {
        last_commit: LastCommit { height: 0, unit_hash: Hash32::ZERO, timestamp_ms: 0 },
        now_ms: 500,
        persisted: Default::default(),
    };
    assert_eq!(consensus::handle(&mut engine, start).unwrap().effects, vec![Effect::TimerAt { at_ms: 600 }]);
    for now_ms in [1_000, 2_000] {
        assert_eq!(
            consensus::handle(&mut engine, Input::Tick { now_ms }).unwrap().effects,
            vec![Effect::TimerAt { at_ms: now_ms + 100 }]
        );
    }
    let error = consensus::handle(&mut engine, Input::Tick { now_ms: 3_000 }).unwrap_err();
    assert_eq!(error, PluginError::Panicked { message: "fixture panic after 3 ticks".into() });
    assert!(error.is_fatal());

    // The process survives; a fresh instance from the same library works.
    let mut engine = library.new_consensus(r#"{"panic_after_ticks": 0}"#, &host().host()).unwrap();
    let message = |bytes: &[u8]| Input::Message { from: PublicKey([1; 32]), bytes: bytes.to_vec().into() };
    assert!(consensus::handle(&mut engine, message(b"hello")).unwrap().effects.is_empty());
    assert!(matches!(
        consensus::handle(&mut engine, message(b"panic")).into_result(),
        Err(PluginError::Panicked { .. })
    ));
    assert!(consensus::handle(&mut engine, Input::Tick { now_ms: 10 }).is_ok());
}

#[test]
fn chain_type_builds_decodes_and_inserts_units() {
    let key = vendor_key(17);
    let (_temp, dir) = packed(CONSENSUS_PANIC, &key);
    let library = load_ok(&dir, &key);
    let mut chain = library.new_chain_type("{}", &host().host()).unwrap();
    let genesis = UnitRef { height: 0, hash: Hash32::ZERO, timestamp_ms: 0 };
    chain.start(genesis).unwrap();

    let mut head = genesis;
    for height in 1..=3u64 {
        let request = BuildRequest {
            parent: head.hash,
            height,
            timestamp_ms: height * 1_000,
            proposer: PublicKey([5; 32]),
            tx_root: Hash32([6; 32]),
            state_digest: Hash32([height as u8; 32]),
            txs: vec![vec![height as u8; 3].into()].into(),
        };
        let unit = chain.build(request.clone()).unwrap();
        let view = chain.decode(unit.as_slice().into()).unwrap();
        assert_eq!((view.height, view.parent), (height, head.hash));
        assert_eq!(view.txs, request.txs);
        let report = chain.insert(unit.as_slice().into(), b"certificate"[..].into()).unwrap();
        assert_eq!(report.head, view.to_ref());
        assert_eq!(report.finalized.to_vec(), vec![view.to_ref()]);
        head = report.head;
        assert!(chain.validate(unit.as_slice().into()).is_err(), "a unit cannot extend itself");
    }
    assert_eq!(chain.head().unwrap().height, 3);
}

/// The DAG chain type's package.
const CHAIN_DAG: PluginCrate = PluginCrate { dir: "plugins/chain-dag", lib_name: "chain_dag" };

/// ABI 10 across the boundary: the signed DAG chain type approves tips and makes a
/// checkpoint's cone final in order; a chain type that keeps the SDK's defaults answers
/// as a linear chain (one parent, its head its only tip) and refuses checkpoints.
#[test]
fn dag_chain_type_approves_tips_and_finalizes_a_checkpoint_across_the_boundary() {
    let key = vendor_key(20);
    let (_temp, dir) = packed(CHAIN_DAG, &key);
    let library = load_ok(&dir, &key);
    let local = host();
    let mut chain = library.new_chain_type(r#"{"pow_bits": 8}"#, &local.host()).unwrap();
    let request = |height: u64, proposer: PublicKey, tx: u8| BuildRequest {
        parent: Hash32::ZERO,
        height,
        timestamp_ms: 1_000 + u64::from(tx),
        proposer,
        tx_root: Hash32([tx; 32]),
        state_digest: Hash32::ZERO,
        txs: vec![vec![tx].into()].into(),
    };
    let genesis = chain.build(request(0, PublicKey([0; 32]), 0)).unwrap();
    let genesis = chain.decode(genesis.as_slice().into()).unwrap().to_ref();
    chain.start(genesis).unwrap();
    let me = local.host().public_key();
    let mut units = Vec::new();
    for tx in 1..=3u8 {
        let unit = chain.build(request(1, me, tx)).unwrap();
        chain.insert(unit.as_slice().into(), b""[..].into()).unwrap();
        let view = chain.decode(unit.as_slice().into()).unwrap();
        assert_eq!(chain.parents(unit.as_slice().into()).unwrap().to_vec(), vec![view.parent]);
        units.push(view);
    }
    assert_eq!(chain.tips().unwrap().to_vec(), vec![units[2].hash]);
    assert_eq!(chain.weight(genesis.hash).unwrap().into_option(), Some(4));
    let report = chain.checkpoint(vec![units[1].hash].as_slice().into()).unwrap();
    let order: Vec<Hash32> = report.finalized.iter().map(|unit| unit.hash).collect();
    assert_eq!(order, vec![units[0].hash, units[1].hash]);
    let refused = chain.checkpoint(vec![Hash32([3; 32])].as_slice().into()).into_result().unwrap_err();
    assert!(refused.to_string().contains("does not hold"), "{refused}");

    let (_fixture_temp, fixture_dir) = packed(CONSENSUS_PANIC, &key);
    let fixture = load_ok(&fixture_dir, &key);
    let mut linear = fixture.new_chain_type("{}", &local.host()).unwrap();
    let start = UnitRef { height: 0, hash: Hash32::ZERO, timestamp_ms: 0 };
    linear.start(start).unwrap();
    let mut step = request(1, me, 1);
    step.parent = start.hash;
    let unit = linear.build(step).unwrap();
    assert_eq!(linear.parents(unit.as_slice().into()).unwrap().to_vec(), vec![start.hash]);
    assert_eq!(linear.tips().unwrap().to_vec(), vec![linear.head().unwrap().hash]);
    assert!(linear.checkpoint(vec![start.hash].as_slice().into()).is_err());
    assert_eq!(linear.weight(start.hash).unwrap().into_option(), None);
}

#[test]
fn libraries_loaded_side_by_side_keep_their_own_root_modules() {
    let key = vendor_key(18);
    let (_radio_temp, radio_dir) = packed(RADIO_LOOPBACK, &key);
    let (_market_temp, market_dir) = packed(MARKET_FLAT, &key);
    let (_again_temp, again_dir) = packed(RADIO_LOOPBACK, &key);
    let radio = load_ok(&radio_dir, &key);
    let market = load_ok(&market_dir, &key);
    let again = load_ok(&again_dir, &key);
    assert_eq!(radio.info.name.as_str(), "fixture-radio-loopback");
    assert_eq!(market.info.name.as_str(), "fixture-market-flat");
    assert_eq!(again.info.name.as_str(), "fixture-radio-loopback");
    assert_eq!(market.kinds(), vec![PluginKind::Market]);
}

#[test]
fn verify_and_inspect_agree_with_the_loader() {
    let key = vendor_key(19);
    let (_temp, dir) = packed(CONSENSUS_PANIC, &key);
    let verified = package::verify(&dir, &trusting("acme", &key)).unwrap();
    assert_eq!(verified.signed_by.as_deref(), Some("acme"));
    let manifest: PackageManifest = verified.manifest;
    assert_eq!(manifest.sdk_abi, ABI_VERSION);
    assert_eq!(manifest.library, "libfixture_consensus_panic.so");
    let report = package::inspect(&dir).unwrap();
    assert!(report.contains("consensus, chain-type"), "{report}");
    assert!(report.contains("matches the library"), "{report}");
    assert!(report.contains("valid, by vendor key"), "{report}");
}

#[test]
fn plugin_cli_keygen_pack_verify_and_inspect() {
    use nest_host::package::cli::{PluginCommand, run};
    let temp = tempfile::tempdir().unwrap();
    let key_path = temp.path().join("vendor.key");
    let dir = temp.path().join("pkg");
    run(PluginCommand::Keygen { out: key_path.clone() }).unwrap();
    let public_hex = fs::read_to_string(temp.path().join("vendor.key.pub")).unwrap();
    run(PluginCommand::Pack {
        source: MARKET_FLAT.source_manifest(),
        library: MARKET_FLAT.library(),
        out: dir.clone(),
        key: key_path.clone(),
    })
    .unwrap();
    run(PluginCommand::Verify { dir: dir.clone(), trust: vec![format!("acme={}", public_hex.trim())] }).unwrap();
    run(PluginCommand::Inspect { dir: dir.clone() }).unwrap();
    let error =
        run(PluginCommand::Verify { dir: dir.clone(), trust: vec![vendor_key(21).public_key().to_hex()] }).unwrap_err();
    assert!(error.contains("is not trusted"), "{error}");
    run(PluginCommand::Sign { dir: dir.clone(), key: key_path }).unwrap();
}

#[test]
fn library_describing_itself_unlike_its_signed_manifest_is_refused() {
    let key = vendor_key(31);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("plugin.toml");
    let text = fs::read_to_string(RADIO_LOOPBACK.source_manifest()).unwrap();
    fs::write(&source, text.replace("name = \"fixture-radio-loopback\"", "name = \"renamed-radio\"")).unwrap();
    let dir = work.path().join("package");
    nest_tests::make_package(&source, &RADIO_LOOPBACK.library(), &dir, &key);
    let (error, message) = refusal(&dir, &options(&key));
    assert!(matches!(error, LoadError::IdentityMismatch { .. }), "{message}");
    assert!(
        message.ends_with(
            "the library describes itself as fixture-radio-loopback 0.1.0, but plugin.toml says renamed-radio 0.1.0"
        ),
        "{message}"
    );
}
