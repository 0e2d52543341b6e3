//! Read a process's CPU time, memory and age from Linux's `/proc`.
//!
//! Used by the API's `/v1/process` (the node's own figures, for the dashboard) and by
//! the benchmarks (a node process's figures). A field `/proc` does not give reads as
//! absent rather than failing: these are observations, never inputs to the node.

use serde::{Deserialize, Serialize};

/// What `/proc` says about one process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    /// Process id.
    pub pid: u32,
    /// User and system CPU time so far, milliseconds.
    pub cpu_time_ms: Option<u64>,
    /// Resident memory now, bytes.
    pub rss_bytes: Option<u64>,
    /// Highest resident memory so far, bytes.
    pub rss_peak_bytes: Option<u64>,
    /// Threads.
    pub threads: Option<u64>,
    /// Time since the process started, milliseconds.
    pub uptime_ms: Option<u64>,
    /// CPU cores this process may run on.
    pub cores: usize,
    /// The machine's memory, bytes.
    pub memory_total_bytes: Option<u64>,
}

/// Reads the figures of process `pid` ("self" for this one).
pub fn usage(pid: u32) -> ProcessUsage {
    let read = |file: &str| std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    let stat = StatFields::parse(&read("stat"));
    let status = read("status");
    let ticks_per_s = clock_ticks_per_s();
    let boot_uptime_ms = std::fs::read_to_string("/proc/uptime").ok().and_then(|text| first_seconds_as_ms(&text));
    let started_ms = stat.start_ticks.map(|ticks| ticks * 1000 / ticks_per_s);
    ProcessUsage {
        pid,
        cpu_time_ms: stat.cpu_ticks.map(|ticks| ticks * 1000 / ticks_per_s),
        rss_bytes: status_kib(&status, "VmRSS:").map(|kib| kib * 1024),
        rss_peak_bytes: status_kib(&status, "VmHWM:").map(|kib| kib * 1024),
        threads: stat.threads,
        uptime_ms: boot_uptime_ms.zip(started_ms).map(|(now, start)| now.saturating_sub(start)),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_total_bytes: status_kib(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default(), "MemTotal:")
            .map(|kib| kib * 1024),
    }
}

/// This process's figures.
pub fn own_usage() -> ProcessUsage {
    usage(std::process::id())
}

/// The fields of `/proc/<pid>/stat` this module uses.
#[derive(Debug, Default, PartialEq, Eq)]
struct StatFields {
    /// utime + stime, clock ticks.
    cpu_ticks: Option<u64>,
    /// num_threads.
    threads: Option<u64>,
    /// starttime: clock ticks after boot.
    start_ticks: Option<u64>,
}

impl StatFields {
    fn parse(text: &str) -> StatFields {
        // The command name (field 2) may hold spaces and parentheses: the fields after
        // it start after the last ')', with field 3 (state) at index 0.
        let fields: Vec<&str> =
            text.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
        StatFields {
            cpu_ticks: field(14).zip(field(15)).map(|(user, system)| user + system),
            threads: field(20),
            start_ticks: field(22),
        }
    }
}

/// The kibibytes of a `Name:   123 kB` line of `/proc/<pid>/status` or `/proc/meminfo`.
fn status_kib(text: &str, name: &str) -> Option<u64> {
    text.lines().find(|line| line.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
}

/// The first number of `/proc/uptime` (seconds since boot, two decimals) in milliseconds.
fn first_seconds_as_ms(text: &str) -> Option<u64> {
    let seconds: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some((seconds * 1000.0) as u64)
}

fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).unwrap_or(100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let text = "42 (nest (d) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 12345 1000 300";
        assert_eq!(
            StatFields::parse(text),
            StatFields { cpu_ticks: Some(300), threads: Some(7), start_ticks: Some(12345) }
        );
        assert_eq!(StatFields::parse("garbage"), StatFields::default());
    }

    #[test]
    fn status_lines_give_kibibytes() {
        let text = "Name:\tnestd\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(text, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(text, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(text, "VmSwap:"), None);
    }

    #[test]
    fn own_usage_reports_this_process() {
        let usage = own_usage();
        assert_eq!(usage.pid, std::process::id());
        assert!(usage.rss_bytes.is_some_and(|bytes| bytes > 0), "{usage:?}");
        assert!(usage.cpu_time_ms.is_some() && usage.uptime_ms.is_some() && usage.threads.is_some(), "{usage:?}");
        assert!(usage.cores >= 1 && usage.memory_total_bytes.is_some_and(|bytes| bytes > 0), "{usage:?}");
        assert_eq!(first_seconds_as_ms("12.34 56.78\n"), Some(12_340));
    }
}
