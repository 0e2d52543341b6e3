//! Verify device signatures on a bounded pool of worker threads, off the node loop.
//!
//! The loop offers jobs without waiting ([`VerifyPool::offer`] answers `false` when the
//! queue holds [`VERIFY_JOBS_QUEUED_MAX`] jobs); each worker takes up to
//! [`VERIFY_BATCH_MAX`] jobs at once, verifies them and hands the batch back through the
//! `deliver` function (the node loop's request channel).

use super::keys;
use nest_sdk::device::DeviceEnvelope;
use std::sync::{Arc, Mutex, mpsc};

/// Jobs waiting for a worker; more are refused (and counted as `verify_busy`).
pub const VERIFY_JOBS_QUEUED_MAX: usize = 8192;
/// Jobs one worker verifies before handing results back.
pub const VERIFY_BATCH_MAX: usize = 256;
/// Most worker threads.
pub const VERIFY_WORKERS_MAX: usize = 8;

/// A frame whose signature is to be checked.
#[derive(Debug, Clone)]
pub struct VerifyJob {
    /// Position in the order the node received the frames (verdicts are taken in it).
    pub seq: u64,
    /// Index of the radio it came through.
    pub radio: usize,
    /// The sender's link address.
    pub link_address: String,
    /// The decoded envelope.
    pub envelope: DeviceEnvelope,
    /// The envelope bytes as received.
    pub bytes: Vec<u8>,
    /// The device key registered on chain.
    pub public_key: Vec<u8>,
    /// When the frame arrived (node clock).
    pub received_ms: u64,
}

/// A job and whether its signature is valid.
pub type Verdict = (VerifyJob, bool);

/// The worker threads and their job queue.
pub struct VerifyPool {
    jobs: mpsc::SyncSender<VerifyJob>,
    workers: usize,
}

impl VerifyPool {
    /// Starts `workers` threads (1 to [`VERIFY_WORKERS_MAX`]) that hand their verdicts to
    /// `deliver`; a `deliver` that answers `false` stops the worker (the node is gone).
    pub fn start(workers: usize, deliver: impl Fn(Vec<Verdict>) -> bool + Send + Sync + 'static) -> VerifyPool {
        let workers = workers.clamp(1, VERIFY_WORKERS_MAX);
        let (jobs, receiver) = mpsc::sync_channel(VERIFY_JOBS_QUEUED_MAX);
        let receiver = Arc::new(Mutex::new(receiver));
        let deliver = Arc::new(deliver);
        for index in 0..workers {
            let receiver = receiver.clone();
            let deliver = deliver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("nest-device-verify-{index}"))
                .spawn(move || work(&receiver, deliver.as_ref()));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a device verification worker");
            }
        }
        VerifyPool { jobs, workers }
    }

    /// Worker threads started.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Queues a job; gives it back when the queue is full.
    pub fn offer(&self, job: Box<VerifyJob>) -> Result<(), Box<VerifyJob>> {
        self.jobs.try_send(*job).map_err(|error| match error {
            mpsc::TrySendError::Full(job) | mpsc::TrySendError::Disconnected(job) => Box::new(job),
        })
    }
}

/// Verifies one job.
pub fn verify_job(job: &VerifyJob) -> bool {
    keys::verify(&job.public_key, &job.envelope.signing_message(), &job.envelope.signature)
}

fn work(receiver: &Mutex<mpsc::Receiver<VerifyJob>>, deliver: &(dyn Fn(Vec<Verdict>) -> bool + Send + Sync)) {
    loop {
        let batch = {
            let Ok(receiver) = receiver.lock() else { return };
            let Ok(first) = receiver.recv() else { return };
            let mut batch = vec![first];
            while batch.len() < VERIFY_BATCH_MAX {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let verdicts = batch
            .into_iter()
            .map(|job| {
                let ok = verify_job(&job);
                (job, ok)
            })
            .collect();
        if !deliver(verdicts) {
            return;
        }
    }
}
