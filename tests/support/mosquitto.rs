//! Run a private Mosquitto broker on a free 127.0.0.1 port, and publish with `mosquitto_pub`.
//!
//! The broker persists its state (sessions, subscriptions, queued QoS 1 messages) in
//! its temporary directory, so a stop and a start on the same port resume them, as a
//! broker restart in the field does.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A `mosquitto` child process with its own config and persistence file; killed on drop.
pub struct Mosquitto {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Mosquitto {
    /// Starts a broker on a free port; panics (naming the fix) when mosquitto is missing.
    pub fn start() -> Mosquitto {
        let port = free_port();
        let dir = tempfile::tempdir().expect("broker tempdir");
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\npersistence_file mosquitto.db\nautosave_interval 1\nlog_dest file {}\nuser root\n",
            dir.path().display(),
            dir.path().join("mosquitto.log").display(),
        );
        std::fs::write(dir.path().join("mosquitto.conf"), config).expect("write broker config");
        let mut broker = Mosquitto { child: None, dir, port };
        broker.spawn();
        broker
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker with SIGTERM (it writes its persistence file) and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops and starts the broker on the same port with the same persistence file.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Publishes `payload` to `topic` with the real `mosquitto_pub` at QoS 1; true once
    /// the broker acknowledged it.
    pub fn publish(&self, topic: &str, payload: &[u8]) -> bool {
        let file = self.dir.path().join(format!("payload-{}", crate::node::unique()));
        std::fs::write(&file, payload).expect("write payload file");
        let status = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1", "-t", topic, "-f"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run mosquitto_pub (apt-get install mosquitto-clients)");
        let _ = std::fs::remove_file(&file);
        status.success()
    }

    /// Starts the real `mosquitto_sub` on `topic` for one message; `wait` it for the payload.
    pub fn subscribe_one(&self, topic: &str) -> Child {
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1", "-C", "1", "-W", "20", "-t", topic])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run mosquitto_sub (apt-get install mosquitto-clients)")
    }

    fn spawn(&mut self) {
        let config: PathBuf = self.dir.path().join("mosquitto.conf");
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("mosquitto did not listen on {} within 10 s; log:\n{}", self.port, self.log_text());
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The broker binary: on PATH, or Debian's `/usr/sbin/mosquitto`.
fn mosquitto_binary() -> PathBuf {
    let debian = Path::new("/usr/sbin/mosquitto");
    if debian.exists() {
        return debian.to_path_buf();
    }
    PathBuf::from("mosquitto")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
