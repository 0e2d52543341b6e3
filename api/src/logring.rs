//! Keep the node's most recent log lines in memory, for `log.tail(n)` in the console.
//!
//! The log formatter writes each event through a [`TeeWriter`]: the bytes go to
//! stderr as before, and the finished line (without colour codes) into a bounded ring.

use std::{
    collections::VecDeque,
    io::{self, Write},
    sync::{Mutex, OnceLock},
};

/// Log lines kept in memory.
pub const LOG_LINES_KEPT: usize = 2000;

static RING: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();

fn ring() -> &'static Mutex<VecDeque<String>> {
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(LOG_LINES_KEPT)))
}

/// The last `count` lines, oldest first.
pub fn tail(count: usize) -> Vec<String> {
    let lines = ring().lock().unwrap_or_else(|e| e.into_inner());
    lines.iter().skip(lines.len().saturating_sub(count)).cloned().collect()
}

fn push(line: String) {
    let mut lines = ring().lock().unwrap_or_else(|e| e.into_inner());
    if lines.len() == LOG_LINES_KEPT {
        lines.pop_front();
    }
    lines.push_back(line);
}

/// Removes ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes one log event to stderr and, when dropped, its lines into the ring.
pub struct TeeWriter {
    buffer: Vec<u8>,
    echo: bool,
}

impl Write for TeeWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.echo { io::stderr().write(bytes) } else { Ok(bytes.len()) }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl Drop for TeeWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buffer);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            push(strip_ansi(line));
        }
    }
}

/// Makes a [`TeeWriter`] per log event (for `tracing_subscriber::fmt().with_writer`).
pub fn make_writer() -> TeeWriter {
    TeeWriter { buffer: Vec::new(), echo: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_without_colour_and_bounded() {
        for i in 0..LOG_LINES_KEPT + 5 {
            let mut writer = TeeWriter { buffer: Vec::new(), echo: false };
            let _ = writeln!(writer, "\u{1b}[32mINFO\u{1b}[0m line {i}");
        }
        let last = tail(2);
        assert_eq!(
            last,
            vec![format!("INFO line {}", LOG_LINES_KEPT + 3), format!("INFO line {}", LOG_LINES_KEPT + 4)]
        );
        assert_eq!(tail(usize::MAX).len(), LOG_LINES_KEPT);
    }
}
