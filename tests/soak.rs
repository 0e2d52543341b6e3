//! The crash soak as CI runs it, on each engine: `nestd soak` SIGKILLs the nodes of a
//! four-node devnet 50 times at moments a fixed seed draws (steady, right after a commit,
//! during start-up, mid-sync), restarts them, and checks after each restart that no
//! final block was lost (by the API and by the node's own log of what it synced), that
//! every node holds the same block at every final height and that the chain keeps
//! finalizing. A test fails when the soak exits non-zero, and keeps the devnet for
//! inspection.

use nest_tests::node::nestd_binary;
use std::{
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Kills of the short soak.
const KILLS: u64 = 50;
/// The schedule's seed: fixed, so a failure replays with the same schedule.
const SEED: u64 = 15;
/// Short blocks keep the two runs within about four minutes on two busy cores.
const BLOCK_INTERVAL_MS: u64 = 200;
/// The soak bounds each of its waits (60 s); this bounds the whole run.
const SOAK_TIMEOUT: Duration = Duration::from_secs(600);

/// Held by each test while its soak runs: two devnets at once would overload a small
/// machine, and neither test is about sharing it.
static ONE_SOAK_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `nestd soak` in a process group of its own, with its nodes: dropping it kills the
/// group whatever happened to the test.
struct Soak {
    child: Child,
}

impl Drop for Soak {
    fn drop(&mut self) {
        // SAFETY: signalling the process group this test created (`nestd soak` and its nodes).
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

#[test]
fn fifty_sigkills_on_poa_lose_no_final_block_and_the_nodes_agree() {
    soak("poa");
}

#[test]
fn fifty_sigkills_on_bft_lose_no_final_block_and_the_nodes_agree() {
    soak("bft");
}

/// Runs the short soak on `consensus` and fails the test when it fails.
fn soak(consensus: &str) {
    let _one = ONE_SOAK_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let temp = tempfile::tempdir().expect("tempdir");
    let (stdout, stderr) = (temp.path().join("soak.stdout"), temp.path().join("soak.stderr"));
    let child = Command::new(nestd_binary())
        .arg("soak")
        .args(["--seed", &SEED.to_string(), "--kills", &KILLS.to_string()])
        .args(["--consensus", consensus, "--block-interval-ms", &BLOCK_INTERVAL_MS.to_string()])
        .arg("--dir")
        .arg(temp.path().join("devnet"))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("spawn nestd soak");
    let mut soak = Soak { child };
    let exit = wait(&mut soak);
    let out = std::fs::read_to_string(&stdout).unwrap_or_default();
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    if !exit.is_some_and(|exit| exit.success()) {
        drop(soak);
        let kept = temp.keep();
        panic!("the {consensus} soak failed ({exit:?}); kept in {}\n{out}\n{err}", kept.display());
    }
    assert!(out.contains("soak passed"), "{out}\n{err}");
    assert!(out.contains(&format!("kills        {KILLS} (")), "{out}");
    assert!(out.contains("restarted runs began above every block"), "the store check did not run:\n{out}");
}

/// The soak's exit status, or `None` when it outlived [`SOAK_TIMEOUT`].
fn wait(soak: &mut Soak) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + SOAK_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(exit) = soak.child.try_wait().expect("wait for nestd soak") {
            return Some(exit);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}
