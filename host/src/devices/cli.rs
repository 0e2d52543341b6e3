//! Run `nestd device`: device keys, device transactions sent to a node, and signed frames.
//!
//! `keygen` writes a P-256 key file and prints the µID and public key; `register`,
//! `transfer` and `revoke` sign a device transaction with an owner's Ed25519 key file and
//! submit it to a node; `frame` writes a signed envelope (optionally fragmented to an
//! MTU) as a device would put it on the air, for `mosquitto_pub -f` and the tests; `send`
//! puts frame files on a UDP radio, as a device on the LAN would.

use super::{FrameSpec, keys::DeviceKey, link_frames, signed_envelope};
use crate::api::SubmitAnswer;
use crate::client::Client;
use crate::crypto::SecretKey;
use crate::ledger::device::DeviceTx;
use crate::ledger::tx::{TxBody, UnsignedTx, gas_of};
use crate::node::{AccountView, status::NodeStatus};
use nest_sdk::{Hash32, device::device_uid};
use std::{
    io::Write,
    net::{ToSocketAddrs, UdpSocket},
    path::PathBuf,
    time::Duration,
};

/// `nestd device ...`
#[derive(clap::Subcommand, Debug)]
pub enum DeviceCommand {
    /// Generate a device P-256 key file; prints its public key (and µID with --hardware-id).
    Keygen {
        /// Where to write the key (mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// The device's hardware id, to print its µID.
        #[arg(long)]
        hardware_id: Option<String>,
    },
    /// Print the µID of a hardware id (SHA-256, hex).
    Uid {
        /// The device's hardware id.
        #[arg(long)]
        hardware_id: String,
    },
    /// Register a device on chain; the owner key's account owns it.
    Register {
        /// Where and with which key.
        #[command(flatten)]
        submit: SubmitArgs,
        /// Which device.
        #[command(flatten)]
        device: DeviceArg,
        /// The device's key file (its public key is registered).
        #[arg(long, conflicts_with = "public_key")]
        device_key: Option<PathBuf>,
        /// The device's public key (65-byte uncompressed SEC1, hex).
        #[arg(long)]
        public_key: Option<String>,
        /// Device class.
        #[arg(long, default_value = "sensor")]
        class: String,
    },
    /// Give a device to another account.
    Transfer {
        /// Where and with which key.
        #[command(flatten)]
        submit: SubmitArgs,
        /// Which device.
        #[command(flatten)]
        device: DeviceArg,
        /// The new owner's account (public key, hex).
        #[arg(long)]
        to: String,
    },
    /// Revoke a device for good.
    Revoke {
        /// Where and with which key.
        #[command(flatten)]
        submit: SubmitArgs,
        /// Which device.
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Write a signed envelope as the device would send it.
    Frame(FrameArgs),
    /// Send frame files to a UDP radio, one datagram each, in order (fragments: f.0 f.1 ...).
    Send {
        /// The radio's address, `ip:port` (`nestd up` prints node-1's as `udp radio`).
        #[arg(long)]
        to: String,
        /// Frame files, as `nestd device frame --out` writes them.
        #[arg(required = true)]
        frames: Vec<PathBuf>,
    },
}

/// Largest UDP payload over IPv4.
const DATAGRAM_BYTES_MAX: usize = 65_507;
/// How long `send` listens for the ICMP refusal of an address where no radio listens.
const REFUSAL_WAIT_MS: u64 = 200;

/// Which device: by hardware id or µID.
#[derive(clap::Args, Debug)]
pub struct DeviceArg {
    /// The device's hardware id.
    #[arg(long, conflicts_with = "uid")]
    pub hardware_id: Option<String>,
    /// The device's µID (hex).
    #[arg(long)]
    pub uid: Option<String>,
}

impl DeviceArg {
    fn uid(&self) -> Result<Hash32, String> {
        match (&self.hardware_id, &self.uid) {
            (Some(hardware_id), _) => Ok(Hash32(device_uid(hardware_id.as_bytes()))),
            (None, Some(uid)) => crate::crypto::hash_from_hex(uid).map_err(|e| format!("--uid: {e}")),
            (None, None) => Err("give --hardware-id or --uid".into()),
        }
    }
}

/// Where and how a device transaction is submitted.
#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// The owner's Ed25519 key file (signs and pays the fee).
    #[arg(long)]
    pub key: PathBuf,
    /// Node API URL (as the console, `NEST_URL` when set).
    #[arg(long, env = "NEST_URL", default_value = "http://127.0.0.1:7300")]
    pub node: String,
    /// Chain id.
    #[arg(long, default_value = "main")]
    pub chain: String,
    /// Wait until the transaction is committed.
    #[arg(long)]
    pub wait: bool,
}

/// What `nestd device frame` builds.
#[derive(clap::Args, Debug)]
pub struct FrameArgs {
    /// The device's key file.
    #[arg(long)]
    pub key: PathBuf,
    /// The device's hardware id.
    #[arg(long)]
    pub hardware_id: String,
    /// The frame's counter (strictly increasing per device).
    #[arg(long)]
    pub counter: u64,
    /// Device timestamp (default: now).
    #[arg(long)]
    pub timestamp_ms: Option<u64>,
    /// `reading`, `transaction` or `offer`.
    #[arg(long, default_value = "reading")]
    pub kind: String,
    /// Payload text.
    #[arg(long, conflicts_with = "payload_hex")]
    pub payload: Option<String>,
    /// Payload bytes, hex.
    #[arg(long)]
    pub payload_hex: Option<String>,
    /// Fragment to this MTU; each fragment goes to `<out>.<index>`.
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Message id of the fragments.
    #[arg(long, default_value_t = 1)]
    pub message_id: u16,
    /// Output file (default: stdout, unfragmented only).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Flip a bit of the signature (to test rejection).
    #[arg(long)]
    pub corrupt_signature: bool,
}

/// Runs a `nestd device` command.
pub fn run(command: DeviceCommand) -> Result<(), String> {
    match command {
        DeviceCommand::Keygen { out, hardware_id } => {
            let key = DeviceKey::generate().map_err(|e| e.to_string())?;
            key.write(&out).map_err(|e| e.to_string())?;
            println!("public_key {}", hex::encode(key.public_key()));
            if let Some(hardware_id) = hardware_id {
                println!("uid {}", hex::encode(device_uid(hardware_id.as_bytes())));
            }
            Ok(())
        }
        DeviceCommand::Uid { hardware_id } => {
            println!("{}", hex::encode(device_uid(hardware_id.as_bytes())));
            Ok(())
        }
        DeviceCommand::Register { submit, device, device_key, public_key, class } => {
            let public_key = match (device_key, public_key) {
                (Some(path), _) => DeviceKey::read(&path).map_err(|e| e.to_string())?.public_key().to_vec(),
                (None, Some(text)) => hex::decode(text.trim()).map_err(|e| format!("--public-key: {e}"))?,
                (None, None) => return Err("give --device-key or --public-key".into()),
            };
            let body = DeviceTx::Register { device_uid: device.uid()?, public_key, class };
            submit_device_tx(&submit, body)
        }
        DeviceCommand::Transfer { submit, device, to } => {
            let new_owner = crate::crypto::account_from_hex(&to).map_err(|e| format!("--to: {e}"))?;
            submit_device_tx(&submit, DeviceTx::Transfer { device_uid: device.uid()?, new_owner })
        }
        DeviceCommand::Revoke { submit, device } => {
            submit_device_tx(&submit, DeviceTx::Revoke { device_uid: device.uid()? })
        }
        DeviceCommand::Frame(args) => write_frame(&args),
        DeviceCommand::Send { to, frames } => send_frames(&to, &frames),
    }
}

/// Sends each file as one UDP datagram to `to`; fails on an unreadable or oversized file,
/// an address that is not `ip:port`, and an address that refuses datagrams.
fn send_frames(to: &str, frames: &[PathBuf]) -> Result<(), String> {
    let address: std::net::SocketAddr = to
        .to_socket_addrs()
        .map_err(|e| format!("--to {to}: not an ip:port address ({e})"))?
        .next()
        .ok_or_else(|| format!("--to {to}: the name resolves to no address"))?;
    let payloads = frames
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if bytes.len() > DATAGRAM_BYTES_MAX {
                return Err(format!("{}: {} bytes do not fit one UDP datagram", path.display(), bytes.len()));
            }
            Ok(bytes)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let local = if address.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(local).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket.connect(address).map_err(|e| format!("--to {address}: {e}"))?;
    let refused = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => format!("{address} refused the datagram: no radio listens there"),
        _ => format!("sending to {address}: {e}"),
    };
    for (path, bytes) in frames.iter().zip(&payloads) {
        socket.send(bytes).map_err(refused)?;
        println!("sent {} bytes from {} to {address}", bytes.len(), path.display());
    }
    // A connected UDP socket hears the ICMP "port unreachable" of a closed port.
    socket.set_read_timeout(Some(Duration::from_millis(REFUSAL_WAIT_MS))).map_err(|e| e.to_string())?;
    match socket.recv(&mut [0u8; 1]) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(refused(e)),
        _ => Ok(()),
    }
}

/// Signs a device transaction with the owner's key and submits it; prints its hash.
fn submit_device_tx(args: &SubmitArgs, body: DeviceTx) -> Result<(), String> {
    let client = Client::new(&args.node);
    let key = SecretKey::read(&args.key).map_err(|e| e.to_string())?;
    let status: NodeStatus = client.get("/v1/status")?;
    let chain = status
        .chains
        .iter()
        .find(|c| c.id == args.chain)
        .ok_or_else(|| format!("the node has no chain \"{}\"", args.chain))?;
    let account: AccountView = client.get(&format!("/v1/chains/{}/accounts/{}", args.chain, key.public_key()))?;
    let body = TxBody::Device(body);
    let fee = gas_of(&body).saturating_mul(chain.gas_price);
    let tx = UnsignedTx { chain: chain.genesis_hash, from: key.public_key(), nonce: account.next_nonce, fee, body }
        .sign(&key);
    let answer: SubmitAnswer = client
        .post(&format!("/v1/chains/{}/txs", args.chain), &serde_json::json!({ "tx": hex::encode(tx.encode()) }))?;
    let result = answer.results.first().ok_or("the node answered with no result")?;
    if result.status != "accepted" {
        return Err(format!("rejected: {}", result.reason.clone().unwrap_or_default()));
    }
    println!("accepted {}", tx.hash());
    if args.wait {
        let (height, _) = crate::wallet::wait_committed(&client, &args.chain, &tx, Duration::from_secs(60))?;
        println!("committed at height {height}");
    }
    Ok(())
}

fn kind_code(kind: &str) -> Result<u8, String> {
    use nest_sdk::device::{KIND_MARKET_OFFER, KIND_READING, KIND_TRANSACTION};
    match kind {
        "reading" => Ok(KIND_READING),
        "transaction" => Ok(KIND_TRANSACTION),
        "offer" => Ok(KIND_MARKET_OFFER),
        other => Err(format!("--kind must be reading, transaction or offer, not \"{other}\"")),
    }
}

fn write_frame(args: &FrameArgs) -> Result<(), String> {
    let key = DeviceKey::read(&args.key).map_err(|e| e.to_string())?;
    let payload = match (&args.payload, &args.payload_hex) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(text)) => hex::decode(text.trim()).map_err(|e| format!("--payload-hex: {e}"))?,
        (None, None) => Vec::new(),
    };
    let spec = FrameSpec {
        hardware_id: args.hardware_id.as_bytes(),
        counter: args.counter,
        timestamp_ms: args.timestamp_ms.unwrap_or_else(crate::node::now_ms),
        kind: kind_code(&args.kind)?,
        payload,
    };
    let mut envelope = signed_envelope(&key, &spec).map_err(|e| e.to_string())?;
    if args.corrupt_signature {
        envelope.signature[7] ^= 0x01;
    }
    let frames = link_frames(&envelope, args.mtu, args.message_id).map_err(|e| e.to_string())?;
    match (&args.out, args.mtu) {
        (None, None) => std::io::stdout().write_all(&frames[0]).map_err(|e| format!("stdout: {e}")),
        (None, Some(_)) => Err("--mtu needs --out (one file per fragment)".into()),
        (Some(out), None) => std::fs::write(out, &frames[0]).map_err(|e| format!("{}: {e}", out.display())),
        (Some(out), Some(_)) => {
            for (index, frame) in frames.iter().enumerate() {
                let path = PathBuf::from(format!("{}.{index}", out.display()));
                std::fs::write(&path, frame).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            println!("{} fragments", frames.len());
            Ok(())
        }
    }
}
