//! Register devices on chain, transfer and revoke them, and anchor their readings.
//!
//! A device is known by its µID (SHA-256 of its hardware id). Its record,
//! `device/d/<µID>`, holds its P-256 public key, owner account, class, whether it is
//! revoked, and the highest counter anchored so far: an anchor must start above it, so a
//! reading can never be anchored twice (replay protection on chain, besides the node's
//! own check). Each anchor also writes `device/a/<µID><last counter BE>`: the Merkle
//! root of the device's reading hashes in that batch, the counter span and the gateway.
//!
//! An anchor is a gateway's statement that it verified these readings against the key
//! on chain; the signed envelopes stay in the gateway's store, where anyone can check
//! them against the key and the root.

use super::exec::TxContext;
use super::tx::TxError;
use crate::device_keys::{PublicKeyError, check_public_key};
use borsh::{BorshDeserialize, BorshSerialize};
use nest_sdk::{Hash32, PublicKey};

/// Longest device class name, in bytes.
pub const DEVICE_CLASS_BYTES_MAX: usize = 64;
/// Most devices one anchor transaction covers (keeps it under `TX_BYTES_MAX`).
pub const ANCHOR_ENTRIES_MAX: usize = 32;
/// Gas of a registration.
pub const REGISTER_GAS: u64 = 2_000;
/// Gas of an ownership transfer or a revocation.
pub const OWNER_ACTION_GAS: u64 = 1_000;
/// Gas of an anchor transaction, before its entries.
pub const ANCHOR_BASE_GAS: u64 = 500;
/// Gas per anchored device entry.
pub const ANCHOR_ENTRY_GAS: u64 = 200;

/// Key prefix of device records.
pub const DEVICE_PREFIX: &[u8] = b"device/d/";
/// Key prefix of anchor records.
pub const ANCHOR_PREFIX: &[u8] = b"device/a/";

/// A device transaction.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceTx {
    /// Registers a device; the sender becomes its owner.
    Register {
        /// µID: SHA-256 of the hardware id.
        device_uid: Hash32,
        /// Uncompressed SEC1 P-256 public key (65 bytes).
        #[serde(serialize_with = "hex_bytes")]
        public_key: Vec<u8>,
        /// Free-form class (`thermometer`, `meter/v2`...), at most [`DEVICE_CLASS_BYTES_MAX`].
        class: String,
    },
    /// Gives the device to another account (owner only).
    Transfer {
        /// The device.
        device_uid: Hash32,
        /// Its new owner.
        new_owner: PublicKey,
    },
    /// Revokes the device for good (owner only): its frames are refused from then on.
    Revoke {
        /// The device.
        device_uid: Hash32,
    },
    /// Anchors batches of readings, one entry per device.
    Anchor {
        /// At most [`ANCHOR_ENTRIES_MAX`] entries.
        entries: Vec<AnchorEntry>,
    },
}

/// One device's readings in an anchor.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnchorEntry {
    /// The device.
    pub device_uid: Hash32,
    /// Counter of the first reading.
    pub first_counter: u64,
    /// Counter of the last reading.
    pub last_counter: u64,
    /// Readings under the root.
    pub count: u32,
    /// Merkle root of the readings' hashes (SHA-256 of each envelope), in counter order.
    pub root: Hash32,
}

/// A registered device, as stored at `device/d/<µID>`.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceRecord {
    /// Uncompressed SEC1 P-256 public key.
    #[serde(serialize_with = "hex_bytes", deserialize_with = "from_hex_bytes")]
    pub public_key: Vec<u8>,
    /// Owner account.
    pub owner: PublicKey,
    /// Class.
    pub class: String,
    /// Revoked for good.
    pub revoked: bool,
    /// Height of the registering block.
    pub registered_height: u64,
    /// Highest counter anchored (0: none yet; devices count from 1).
    pub last_counter: u64,
    /// Readings anchored in total.
    pub readings_anchored: u64,
    /// Height of the last anchor.
    pub last_anchor_height: u64,
}

/// One anchor, as stored at `device/a/<µID><last counter BE>`.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnchorRecord {
    /// Counter of the first reading.
    pub first_counter: u64,
    /// Counter of the last reading.
    pub last_counter: u64,
    /// Readings under the root.
    pub count: u32,
    /// Merkle root of the reading hashes.
    pub root: Hash32,
    /// The gateway account that anchored them.
    pub gateway: PublicKey,
    /// Height of the anchoring block.
    pub height: u64,
    /// Time of the anchoring block.
    pub time_ms: u64,
}

/// Why a device transaction was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// No device with this µID.
    #[error("unknown device {0}")]
    UnknownDevice(Hash32),
    /// The µID is taken.
    #[error("device {0} is already registered")]
    AlreadyRegistered(Hash32),
    /// The sender does not own the device.
    #[error("device {device} belongs to {owner}, not to the sender")]
    NotOwner {
        /// The device.
        device: Hash32,
        /// Its owner.
        owner: PublicKey,
    },
    /// The device is revoked.
    #[error("device {0} is revoked")]
    Revoked(Hash32),
    /// The key is not a P-256 public key.
    #[error("bad device key: {0}")]
    BadKey(PublicKeyError),
    /// The class is too long or not printable.
    #[error("bad device class: {0}")]
    BadClass(String),
    /// A counter at or below the last anchored one.
    #[error("replayed counter for device {device}: {counter} is not above the last anchored {last_counter}")]
    ReplayedCounter {
        /// The device.
        device: Hash32,
        /// The first counter of the entry.
        counter: u64,
        /// The last counter anchored.
        last_counter: u64,
    },
    /// An anchor entry that cannot describe readings.
    #[error("bad anchor entry for device {device}: {reason}")]
    BadAnchor {
        /// The device.
        device: Hash32,
        /// What is wrong.
        reason: String,
    },
    /// An anchor with no entries or too many.
    #[error("an anchor holds 1 to {ANCHOR_ENTRIES_MAX} entries, got {0}")]
    AnchorSize(usize),
}

impl DeviceError {
    /// A stable snake_case code for API clients and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            DeviceError::UnknownDevice(_) => "unknown_device",
            DeviceError::AlreadyRegistered(_) => "device_already_registered",
            DeviceError::NotOwner { .. } => "not_device_owner",
            DeviceError::Revoked(_) => "device_revoked",
            DeviceError::BadKey(_) => "bad_device_key",
            DeviceError::BadClass(_) => "bad_device_class",
            DeviceError::ReplayedCounter { .. } => "replayed_counter",
            DeviceError::BadAnchor { .. } => "bad_anchor",
            DeviceError::AnchorSize(_) => "bad_anchor_size",
        }
    }
}

/// Key of a device record.
pub fn device_key(device_uid: &Hash32) -> Vec<u8> {
    [DEVICE_PREFIX, &device_uid.0].concat()
}

/// Key of an anchor record.
pub fn anchor_key(device_uid: &Hash32, last_counter: u64) -> Vec<u8> {
    [ANCHOR_PREFIX, &device_uid.0, &last_counter.to_be_bytes()].concat()
}

/// The µID of a device record key, if it is one.
pub fn uid_of_device_key(key: &[u8]) -> Option<Hash32> {
    let rest = key.strip_prefix(DEVICE_PREFIX)?;
    <[u8; 32]>::try_from(rest).ok().map(Hash32)
}

/// Gas consumed by a device transaction.
pub fn gas_of(body: &DeviceTx) -> u64 {
    match body {
        DeviceTx::Register { .. } => REGISTER_GAS,
        DeviceTx::Transfer { .. } | DeviceTx::Revoke { .. } => OWNER_ACTION_GAS,
        DeviceTx::Anchor { entries } => {
            let entries = u64::try_from(entries.len()).unwrap_or(u64::MAX);
            ANCHOR_BASE_GAS.saturating_add(entries.saturating_mul(ANCHOR_ENTRY_GAS))
        }
    }
}

/// Applies a device transaction (fee and nonce are already handled).
pub fn apply(ctx: &mut TxContext<'_>, body: &DeviceTx) -> Result<(), TxError> {
    match body {
        DeviceTx::Register { device_uid, public_key, class } => register(ctx, device_uid, public_key, class),
        DeviceTx::Transfer { device_uid, new_owner } => {
            let mut record = owned(ctx, device_uid)?;
            record.owner = *new_owner;
            ctx.put_record(device_key(device_uid), &record)
        }
        DeviceTx::Revoke { device_uid } => {
            let mut record = owned(ctx, device_uid)?;
            record.revoked = true;
            ctx.put_record(device_key(device_uid), &record)
        }
        DeviceTx::Anchor { entries } => {
            if entries.is_empty() || entries.len() > ANCHOR_ENTRIES_MAX {
                return Err(DeviceError::AnchorSize(entries.len()).into());
            }
            entries.iter().try_for_each(|entry| anchor(ctx, entry))
        }
    }
}

fn register(ctx: &mut TxContext<'_>, device_uid: &Hash32, public_key: &[u8], class: &str) -> Result<(), TxError> {
    check_public_key(public_key).map_err(DeviceError::BadKey)?;
    check_class(class)?;
    let key = device_key(device_uid);
    if ctx.record::<DeviceRecord>(&key)?.is_some() {
        return Err(DeviceError::AlreadyRegistered(*device_uid).into());
    }
    let record = DeviceRecord {
        public_key: public_key.to_vec(),
        owner: ctx.tx().tx.from,
        class: class.to_string(),
        revoked: false,
        registered_height: ctx.env().height,
        last_counter: 0,
        readings_anchored: 0,
        last_anchor_height: 0,
    };
    ctx.put_record(key, &record)
}

fn check_class(class: &str) -> Result<(), DeviceError> {
    if class.len() > DEVICE_CLASS_BYTES_MAX {
        return Err(DeviceError::BadClass(format!("{} bytes, at most {DEVICE_CLASS_BYTES_MAX}", class.len())));
    }
    if class.chars().any(char::is_control) {
        return Err(DeviceError::BadClass("control characters are not allowed".into()));
    }
    Ok(())
}

/// The device record, if the sender owns the device and it is not revoked.
fn owned(ctx: &TxContext<'_>, device_uid: &Hash32) -> Result<DeviceRecord, TxError> {
    let record = live(ctx, device_uid)?;
    let sender = ctx.tx().tx.from;
    if record.owner != sender {
        return Err(DeviceError::NotOwner { device: *device_uid, owner: record.owner }.into());
    }
    Ok(record)
}

/// The device record, if the device exists and is not revoked.
fn live(ctx: &TxContext<'_>, device_uid: &Hash32) -> Result<DeviceRecord, TxError> {
    let record: DeviceRecord = ctx.record(&device_key(device_uid))?.ok_or(DeviceError::UnknownDevice(*device_uid))?;
    if record.revoked {
        return Err(DeviceError::Revoked(*device_uid).into());
    }
    Ok(record)
}

fn anchor(ctx: &mut TxContext<'_>, entry: &AnchorEntry) -> Result<(), TxError> {
    let device = entry.device_uid;
    let mut record = live(ctx, &device)?;
    check_entry(entry)?;
    if entry.first_counter <= record.last_counter {
        return Err(DeviceError::ReplayedCounter {
            device,
            counter: entry.first_counter,
            last_counter: record.last_counter,
        }
        .into());
    }
    let height = ctx.env().height;
    record.last_counter = entry.last_counter;
    record.readings_anchored = record.readings_anchored.checked_add(u64::from(entry.count)).ok_or(TxError::Overflow)?;
    record.last_anchor_height = height;
    let anchored = AnchorRecord {
        first_counter: entry.first_counter,
        last_counter: entry.last_counter,
        count: entry.count,
        root: entry.root,
        gateway: ctx.tx().tx.from,
        height,
        time_ms: ctx.env().time_ms,
    };
    ctx.put_record(device_key(&device), &record)?;
    ctx.put_record(anchor_key(&device, entry.last_counter), &anchored)
}

/// Checks that an entry can describe readings: a non-empty span holding `count` distinct counters.
fn check_entry(entry: &AnchorEntry) -> Result<(), DeviceError> {
    let bad = |reason: String| DeviceError::BadAnchor { device: entry.device_uid, reason };
    if entry.first_counter == 0 {
        return Err(bad("counters start at 1".into()));
    }
    if entry.last_counter < entry.first_counter {
        return Err(bad(format!("last counter {} below first {}", entry.last_counter, entry.first_counter)));
    }
    let span = entry.last_counter - entry.first_counter;
    if entry.count == 0 || u64::from(entry.count - 1) > span {
        return Err(bad(format!(
            "{} readings cannot have counters {}..={}",
            entry.count, entry.first_counter, entry.last_counter
        )));
    }
    Ok(())
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(bytes))
}

fn from_hex_bytes<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    hex::decode(text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests;
