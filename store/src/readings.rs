//! Keep the device readings this node accepted, by µID and time, in the `readings`
//! keyspace.
//!
//! Keys are `µID (32) ‖ timestamp_ms (u64 BE) ‖ counter (u64 BE)`, so one device's
//! readings sort by time and a time range is one range scan. Values are borsh
//! [`StoredReading`]s holding the whole signed envelope, so anyone can check a reading
//! against the device key on chain and its hash against the anchor. Readings are
//! written without a sync; [`Readings::sync`] makes them durable before their hashes
//! are anchored on chain.

use super::{Store, StoreError};
use borsh::{BorshDeserialize, BorshSerialize};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use nest_sdk::Hash32;
use std::path::PathBuf;

/// Most readings one query returns.
pub const READINGS_PER_QUERY_MAX: usize = 1000;

/// Where a reading's hash was anchored.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnchorRef {
    /// The anchor transaction.
    pub tx: Hash32,
    /// Merkle root of the device's reading hashes in that anchor.
    pub root: Hash32,
    /// Position of this reading's hash under the root.
    pub index: u32,
}

/// One accepted reading.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredReading {
    /// The device's µID.
    pub device_uid: [u8; 32],
    /// The device's counter.
    pub counter: u64,
    /// The device's timestamp.
    pub timestamp_ms: u64,
    /// When this node accepted it.
    pub received_ms: u64,
    /// The radio it came through.
    pub radio: String,
    /// The sender's link address.
    pub link_address: String,
    /// SHA-256 of the envelope bytes: what is anchored.
    pub reading_hash: Hash32,
    /// The signed envelope, as received.
    pub envelope: Vec<u8>,
    /// Its anchor, once submitted.
    pub anchor: Option<AnchorRef>,
}

impl StoredReading {
    fn key(&self) -> Vec<u8> {
        reading_key(&self.device_uid, self.timestamp_ms, self.counter)
    }
}

/// The readings keyspace.
pub struct Readings {
    dir: PathBuf,
    db: Database,
    keyspace: Keyspace,
}

impl Readings {
    /// Opens (or creates) the keyspace in the node's store.
    pub fn open(store: &Store) -> Result<Readings, StoreError> {
        let keyspace = store
            .db
            .keyspace("readings", KeyspaceCreateOptions::default)
            .map_err(|source| store.io("open readings", source))?;
        Ok(Readings { dir: store.dir.clone(), db: store.db.clone(), keyspace })
    }

    /// Stores (or replaces) a reading.
    pub fn put(&self, reading: &StoredReading) -> Result<(), StoreError> {
        self.keyspace.insert(reading.key(), super::encode(reading)).map_err(|source| self.io("write reading", source))
    }

    /// Makes every reading written so far durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.persist(PersistMode::SyncAll).map_err(|source| self.io("sync readings", source))
    }

    /// The device's readings with `from_ms ≤ timestamp_ms ≤ to_ms`, oldest first, at
    /// most `limit` (itself at most [`READINGS_PER_QUERY_MAX`]).
    pub fn range(
        &self,
        device_uid: &[u8; 32],
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<StoredReading>, StoreError> {
        let start = reading_key(device_uid, from_ms, 0);
        let end = reading_key(device_uid, to_ms, u64::MAX);
        let mut readings = Vec::new();
        if from_ms > to_ms {
            return Ok(readings);
        }
        for item in self.keyspace.range(start..=end).take(limit.min(READINGS_PER_QUERY_MAX)) {
            let (key, value) = item.into_inner().map_err(|source| self.io("read readings", source))?;
            readings.push(borsh::from_slice(&value).map_err(|_| self.corrupt(&key))?);
        }
        Ok(readings)
    }

    /// The device's latest `count` readings, newest first.
    pub fn latest(&self, device_uid: &[u8; 32], count: usize) -> Result<Vec<StoredReading>, StoreError> {
        let mut readings = Vec::new();
        for item in self.keyspace.prefix(device_uid).rev().take(count.min(READINGS_PER_QUERY_MAX)) {
            let (key, value) = item.into_inner().map_err(|source| self.io("read readings", source))?;
            readings.push(borsh::from_slice(&value).map_err(|_| self.corrupt(&key))?);
        }
        Ok(readings)
    }

    /// The highest counter stored for each device (the node's replay floor after a restart).
    pub fn highest_counters(&self) -> Result<std::collections::HashMap<[u8; 32], u64>, StoreError> {
        let mut highest = std::collections::HashMap::new();
        for item in self.keyspace.iter() {
            let key = item.key().map_err(|source| self.io("read readings", source))?;
            let (uid, counter) = split_key(&key).ok_or_else(|| self.corrupt(&key))?;
            let entry = highest.entry(uid).or_insert(counter);
            *entry = (*entry).max(counter);
        }
        Ok(highest)
    }

    fn io(&self, operation: &'static str, source: fjall::Error) -> StoreError {
        StoreError::Io { dir: self.dir.display().to_string(), operation, source }
    }

    fn corrupt(&self, key: &[u8]) -> StoreError {
        StoreError::Corrupt { dir: self.dir.display().to_string(), what: "reading", key: hex::encode(key) }
    }
}

fn reading_key(device_uid: &[u8; 32], timestamp_ms: u64, counter: u64) -> Vec<u8> {
    [&device_uid[..], &timestamp_ms.to_be_bytes(), &counter.to_be_bytes()].concat()
}

fn split_key(key: &[u8]) -> Option<([u8; 32], u64)> {
    let uid: [u8; 32] = key.get(..32)?.try_into().ok()?;
    let counter = u64::from_be_bytes(key.get(40..48)?.try_into().ok()?);
    Some((uid, counter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(uid: u8, timestamp_ms: u64, counter: u64) -> StoredReading {
        StoredReading {
            device_uid: [uid; 32],
            counter,
            timestamp_ms,
            received_ms: timestamp_ms + 1,
            radio: "sim".into(),
            link_address: "dev".into(),
            reading_hash: Hash32([counter as u8; 32]),
            envelope: vec![1, 2, 3],
            anchor: None,
        }
    }

    #[test]
    fn readings_are_found_by_device_and_time_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let readings = Readings::open(&store).unwrap();
        for (time, counter) in [(100, 1), (200, 2), (300, 3)] {
            readings.put(&reading(1, time, counter)).unwrap();
        }
        readings.put(&reading(2, 150, 9)).unwrap();
        let found = readings.range(&[1; 32], 150, 300, 10).unwrap();
        assert_eq!(found.iter().map(|r| r.counter).collect::<Vec<_>>(), vec![2, 3]);
        assert!(readings.range(&[1; 32], 301, 1000, 10).unwrap().is_empty());
        assert!(readings.range(&[1; 32], 300, 100, 10).unwrap().is_empty());
        assert_eq!(readings.range(&[1; 32], 0, u64::MAX, 2).unwrap().len(), 2);
        assert_eq!(readings.latest(&[1; 32], 1).unwrap()[0].counter, 3);
        let highest = readings.highest_counters().unwrap();
        assert_eq!(highest.get(&[1; 32]), Some(&3));
        assert_eq!(highest.get(&[2; 32]), Some(&9));
    }

    #[test]
    fn readings_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let readings = Readings::open(&store).unwrap();
            readings.put(&reading(3, 10, 4)).unwrap();
            readings.sync().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let readings = Readings::open(&store).unwrap();
        assert_eq!(readings.latest(&[3; 32], 5).unwrap(), vec![reading(3, 10, 4)]);
    }
}
