//! Check from a node's log that a restart lost nothing its store had: the first block a
//! run commits must follow the highest block any earlier run logged as committed.
//!
//! The node logs `block committed` only after the block's batch was synced to the store
//! (`ChainRuntime` in `node/chain.rs`), so a height logged once is durable. The API alone
//! cannot show this: by the time a restarted node answers, it may already have fetched
//! from its peers the blocks its store lost.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

/// The message the node logs for each block it commits (and has synced to its store).
const COMMITTED: &str = " block committed ";

/// What one node's log showed so far.
#[derive(Debug, Default)]
pub struct CommitLog {
    /// Bytes of the log read so far: whole lines only.
    read_to: u64,
    /// The highest height any run of the node logged as committed.
    logged_max: u64,
    /// The current run has logged no commit yet: its first must be above `logged_max`.
    first_pending: bool,
    /// Runs whose first commit was seen and checked.
    pub runs_checked: u64,
}

impl CommitLog {
    /// Starts a new run of the node: its first commit will be checked. Read the previous
    /// run's last lines first.
    pub fn new_run(&mut self) {
        self.first_pending = true;
    }

    /// The highest height any run of the node logged as committed, as far as read.
    pub fn highest(&self) -> u64 {
        self.logged_max
    }

    /// Reads the whole lines the log gained since the last call. Returns the first height
    /// the current run committed when these lines hold it; an error when that height is
    /// not above every height an earlier run logged as committed.
    pub fn read(&mut self, log: &Path, chain: &str) -> Result<Option<u64>, String> {
        let text = self.new_lines(log)?;
        let mut first_of_run = None;
        for height in text.lines().filter_map(|line| committed_height(line, chain)) {
            if self.first_pending {
                if height <= self.logged_max {
                    return Err(format!(
                        "the store lost final blocks: an earlier run of the node logged height {} committed, \
                         and after its restart it committed height {height} again (see {})",
                        self.logged_max,
                        log.display()
                    ));
                }
                self.first_pending = false;
                self.runs_checked += 1;
                first_of_run = Some(height);
            }
            self.logged_max = self.logged_max.max(height);
        }
        Ok(first_of_run)
    }

    /// The whole lines added to the log since the last read.
    fn new_lines(&mut self, log: &Path) -> Result<String, String> {
        let failed = |e: std::io::Error| format!("{}: {e}", log.display());
        let mut file = std::fs::File::open(log).map_err(failed)?;
        file.seek(SeekFrom::Start(self.read_to)).map_err(failed)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(failed)?;
        let whole = bytes.iter().rposition(|byte| *byte == b'\n').map_or(0, |end| end + 1);
        bytes.truncate(whole);
        self.read_to += whole as u64;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The height of a `block committed chain=<chain> height=<n> ...` line.
fn committed_height(line: &str, chain: &str) -> Option<u64> {
    let (_, fields) = line.split_once(COMMITTED)?;
    let mut words = fields.split_whitespace();
    if !words.any(|word| word.strip_prefix("chain=") == Some(chain)) {
        return None;
    }
    fields.split_whitespace().find_map(|word| word.strip_prefix("height="))?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn line(height: u64) -> String {
        format!(
            "2026-12-06T03:41:20Z  INFO nest_host::node::chain: block committed chain=main height={height} hash=ab txs=0\n"
        )
    }

    fn append(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("log");
        file.write_all(text.as_bytes()).expect("append");
    }

    #[test]
    fn a_run_that_resumes_above_the_logged_height_passes_and_one_that_commits_it_again_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("nestd.log");
        let mut commits = CommitLog::default();
        append(&log, &(line(1) + &line(2) + &line(3)));
        assert_eq!(commits.read(&log, "main"), Ok(None));
        commits.new_run();
        append(&log, &format!("--- restarted ---\n{}{}", line(4), line(5)));
        assert_eq!(commits.read(&log, "main"), Ok(Some(4)));
        assert_eq!(commits.runs_checked, 1);
        commits.new_run();
        append(&log, &line(5));
        let error = commits.read(&log, "main").expect_err("height 5 committed twice");
        assert!(error.contains("logged height 5 committed") && error.contains("height 5 again"), "{error}");
    }

    #[test]
    fn a_line_being_written_waits_for_its_end_and_other_chains_and_messages_do_not_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("nestd.log");
        let mut commits = CommitLog::default();
        commits.new_run();
        let whole = line(7);
        append(&log, &whole[..20]);
        assert_eq!(commits.read(&log, "main"), Ok(None));
        append(&log, &whole[20..]);
        assert_eq!(commits.read(&log, "main"), Ok(Some(7)));
        assert_eq!(committed_height(&line(9).replace("chain=main", "chain=side"), "main"), None);
        assert_eq!(committed_height("INFO block proposed chain=main height=3", "main"), None);
    }
}
