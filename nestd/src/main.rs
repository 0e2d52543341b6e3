//! Run the `nestd` command line: node, devnet, checks, keys, plugin packages, benchmark,
//! simulator, crash soak.

use clap::{Parser, Subcommand};
use nest_host::{
    bench, check,
    crypto::{self, SecretKey},
    devices,
    devnet::{self, Consensus, DevnetSpec},
    init::{self, InitSpec},
    manifest::Manifest,
    package, run,
    wallet::{self, Transfer},
};
use std::{path::PathBuf, process::ExitCode};

/// The Nest node host.
#[derive(Parser)]
#[command(name = "nestd", version, about = "Nest node host: loads signed plugins, runs chains, serves the API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node from its manifest until SIGINT or SIGTERM.
    Run {
        /// The node manifest (TOML).
        manifest: PathBuf,
    },
    /// Check a manifest without starting the node: plugins, signatures, configs, genesis.
    Check {
        /// The node manifest (TOML).
        manifest: PathBuf,
    },
    /// Write a ready single-node directory: manifest, node and vendor keys, a funded account, signed plugins.
    Init {
        /// The directory to write (created if missing; must be empty unless --force).
        dir: PathBuf,
        /// Write into a directory that holds files: keeps key files, rewrites node.toml and packages/.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        chain: ChainOptions,
        /// API port on 127.0.0.1 (0: any free port, written to data/api.addr at start).
        #[arg(long, default_value_t = 7300)]
        port: u16,
    },
    /// Start a local devnet with the workspace's plugins, signed with a developer key.
    Up {
        /// Directory for keys, packages, manifest and data (kept between runs).
        #[arg(long, default_value = ".devnet")]
        dir: PathBuf,
        /// Start from scratch: delete the directory first.
        #[arg(long)]
        fresh: bool,
        #[command(flatten)]
        chain: ChainOptions,
        /// API port of node-1 (node-k listens on port + k - 1).
        #[arg(long, default_value_t = 7300)]
        port: u16,
        /// Nodes, all PoA authorities or BFT validators, each a `nestd run` process connected over libp2p.
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// An MQTT broker (`host:port`, e.g. a local Mosquitto on 127.0.0.1:1883) for a radio-mqtt radio on node-1.
        #[arg(long)]
        mqtt: Option<String>,
    },
    /// Generate an Ed25519 key file (node, account or vendor key).
    Keygen {
        /// Where to write the key (mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Build, sign and submit transactions.
    Tx {
        #[command(subcommand)]
        command: TxCommand,
    },
    /// Device keys, device transactions and signed device frames.
    Device {
        #[command(subcommand)]
        command: devices::cli::DeviceCommand,
    },
    /// Vendor tools for plugin packages.
    Plugin {
        #[command(subcommand)]
        command: package::cli::PluginCommand,
    },
    /// Measure committed tx/s and commit latency on a local node against this machine's verify ceiling.
    Bench(bench::BenchOptions),
    /// Check a transaction's RFC 6962 inclusion proof offline (exit 0 when it holds, 1 when not, 2 on a bad command line).
    Merkle {
        #[command(subcommand)]
        command: nest_host::merkle_cli::MerkleCommand,
    },
    /// Follow a chain as a light client: headers only, each batch proven by a finality proof of the trusted validators.
    Light(nest_light::cli::LightOptions),
    /// Run many simulated nodes of the real chain runtime under faults and check consensus invariants.
    Sim(nest_sim::cli::SimOptions),
    /// SIGKILL the nodes of a local devnet at random moments, restart them, and check that no final block is lost.
    Soak(nest_host::soak::SoakOptions),
}

/// The chain that `init` and `up` write.
#[derive(clap::Args)]
struct ChainOptions {
    /// Consensus engine of the chain: PoA authorities, BFT validators from genesis, or DPoS delegates elected on chain (every node is one at genesis).
    #[arg(long, value_enum, default_value_t = Consensus::Poa)]
    consensus: Consensus,
    /// Block interval of the chain (PoA: the slot; BFT and DPoS: the wait after each decision).
    #[arg(long, default_value_t = 1000)]
    block_interval_ms: u64,
}

#[derive(Subcommand)]
enum TxCommand {
    /// Transfer tokens from the account of a key file.
    Transfer {
        /// Sender's key file.
        #[arg(long)]
        key: PathBuf,
        /// Recipient account (public key, hex).
        #[arg(long)]
        to: String,
        /// Amount to send.
        #[arg(long)]
        amount: u64,
        /// Fee (default: the chain's minimum).
        #[arg(long)]
        fee: Option<u64>,
        /// Nonce (default: the account's next).
        #[arg(long)]
        nonce: Option<u64>,
        /// Node API URL (as the console, `NEST_URL` when set).
        #[arg(long, env = "NEST_URL", default_value = "http://127.0.0.1:7300")]
        node: String,
        /// Chain id.
        #[arg(long, default_value = "main")]
        chain: String,
        /// Wait until the transfer is committed.
        #[arg(long)]
        wait: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `up` draws a status line: keep the node's per-block lines out of it by default.
    // The simulator judges runs by their invariants; thousands of nodes' log lines would bury the report.
    init_logging(match cli.command {
        // The soak prints a line per kill; its nodes log to their own files.
        Command::Up { .. } | Command::Soak(_) => "warn",
        Command::Sim(_) => "off",
        _ => "info",
    });
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("NEST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let colour = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(nest_host::logring::make_writer)
        .init();
}

fn execute(command: Command) -> Result<(), String> {
    match command {
        Command::Run { manifest } => run_manifest(&manifest),
        Command::Check { manifest } => {
            let report = check::check(&manifest);
            print!("{}", report.text);
            // The report already ends with the verdict: exit 1 without another line.
            if report.ok { Ok(()) } else { Err(String::new()) }
        }
        Command::Init { dir, force, chain: ChainOptions { consensus, block_interval_ms }, port } => {
            let spec = InitSpec {
                dir,
                force,
                consensus,
                block_interval_ms,
                api_port: port,
                plugin_dir: devnet::library_dir(),
            };
            print_init(&spec, &init::init(&spec)?);
            Ok(())
        }
        Command::Up { dir, fresh, chain: ChainOptions { consensus, block_interval_ms }, port, nodes, mqtt } => {
            let shape = UpShape { consensus, block_interval_ms, port, nodes };
            up(dir, fresh, shape, mqtt.as_deref())
        }
        Command::Keygen { out } => {
            let key = SecretKey::generate().map_err(|e| e.to_string())?;
            key.write(&out).map_err(|e| e.to_string())?;
            println!("{}", key.public_key());
            Ok(())
        }
        Command::Tx { command: TxCommand::Transfer { key, to, amount, fee, nonce, node, chain, wait } } => {
            let to = crypto::account_from_hex(&to).map_err(|e| format!("--to: {e}"))?;
            wallet::transfer(&Transfer { node_url: &node, chain: &chain, key: &key, to, amount, fee, nonce, wait })
        }
        Command::Device { command } => devices::cli::run(command),
        Command::Plugin { command } => package::cli::run(command),
        Command::Merkle { command } => nest_host::merkle_cli::run(command),
        Command::Bench(options) => bench::run(&options),
        Command::Sim(options) => nest_sim::cli::run(&options),
        Command::Light(options) => nest_light::cli::run(&options),
        Command::Soak(options) => nest_host::soak::run(&options),
    }
}

fn print_init(spec: &InitSpec, written: &init::Initialized) {
    println!("wrote {}:", spec.dir.display());
    for line in &written.files {
        println!("  {line}");
    }
    println!("next:");
    println!("  nestd check {}", written.manifest.display());
    println!("  nestd run {}", written.manifest.display());
    let api = if spec.api_port == 0 {
        "the address in data/api.addr".to_string()
    } else {
        format!("http://127.0.0.1:{}", spec.api_port)
    };
    println!("then the API answers on {api}; `nest --data-dir {}` opens the console.", spec.dir.join("data").display());
}

fn run_manifest(path: &std::path::Path) -> Result<(), String> {
    let manifest = Manifest::load(path).map_err(|e| e.to_string())?;
    let running = run::start(manifest)?;
    running.wait_for_signal();
    running.stop();
    Ok(())
}

/// The devnet `nestd up` runs.
struct UpShape {
    consensus: Consensus,
    block_interval_ms: u64,
    port: u16,
    nodes: usize,
}

fn up(dir: PathBuf, fresh: bool, shape: UpShape, mqtt_broker: Option<&str>) -> Result<(), String> {
    let UpShape { consensus, block_interval_ms, port, nodes } = shape;
    if fresh && dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let spec = nest_host::up::devnet_spec(dir, consensus, block_interval_ms, port, nodes)?;
    if spec.nodes > 1 {
        return nest_host::up::up(&spec, mqtt_broker);
    }
    let net = devnet::write(&spec)?;
    let udp_radio = devices::devnet::add_devnet_radios(&net.manifest, mqtt_broker)?;
    let manifest = Manifest::load(&net.manifest).map_err(|e| e.to_string())?;
    let running = run::start(manifest)?;
    print_summary(&spec, &net, &running, (udp_radio, mqtt_broker));
    print_devices(&format!("http://{}", running.api_addr), &net.faucet_key);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let status_line = spawn_status_line(running.node().status.clone(), stop.clone());
    running.wait_for_signal();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = status_line.join();
    eprintln!();
    running.stop();
    Ok(())
}

/// The device radios of node-1: the UDP radio's address and the MQTT broker, if any.
type DeviceRadios<'a> = (std::net::SocketAddr, Option<&'a str>);

fn print_summary(spec: &DevnetSpec, net: &devnet::Devnet, running: &run::Running, radios: DeviceRadios<'_>) {
    let url = format!("http://{}", running.api_addr);
    let status = running.node().status.read().map(|s| s.clone()).ok();
    let faucet = SecretKey::read(&net.faucet_key).map(|k| k.public_key().to_hex()).unwrap_or_default();
    println!("Nest devnet is up ({})", spec.dir.display());
    println!("  node      node-1  {}", status.as_ref().map(|s| s.public_key.to_hex()).unwrap_or_default());
    println!("  chain     main: {} + chain-linear", spec.consensus.describe(spec.block_interval_ms));
    println!("  api       {url}/v1/status");
    println!("  manifest  {}", net.manifest.display());
    println!("  faucet    {faucet} ({})", net.faucet_key.display());
    println!("  plugins   signed with {} (trusted by the manifest)", net.vendor_key.display());
    println!("  logs      this terminal (NEST_LOG=debug for more)");
    nest_host::up::print_try(&url, &net.faucet_key, radios.0, radios.1);
    println!("  curl -s {url}/v1/status");
    println!("Ctrl-C stops the devnet.");
}

/// Registers the simulated devices and says so.
fn print_devices(url: &str, faucet_key: &std::path::Path) {
    match devices::devnet::register_sim_devices(url, faucet_key) {
        Ok(_) => println!(
            "  devices   {} simulated on radio \"sim\" ({}), registered: {url}/v1/devices",
            devices::devnet::SIM_DEVICES,
            devices::devnet::SIM_PROFILE
        ),
        Err(error) => eprintln!("warning: the simulated devices are not registered: {error}"),
    }
}

fn spawn_status_line(
    status: nest_host::node::status::SharedStatus,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut last_txs = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let Ok(snapshot) = status.read().map(|s| s.clone()) else {
                continue;
            };
            if let Some(chain) = snapshot.chains.first() {
                let rate = chain.txs_committed.saturating_sub(last_txs);
                last_txs = chain.txs_committed;
                eprint!(
                    "\rheight {:>6}  head {}…  peers {}  mempool {:>6}  tx/s {:>6}   ",
                    chain.height,
                    &chain.head_hash.to_hex()[..12],
                    snapshot.peers,
                    chain.mempool_txs,
                    rate
                );
            }
        }
    })
}
