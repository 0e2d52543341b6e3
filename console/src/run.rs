//! Open a session with the node and run one chunk without a terminal (`-e`, a file,
//! piped stdin); print outcomes.

use crate::chunk::{CHUNK_BYTES_MAX, too_long};
use crate::interrupt::Evaluating;
use crate::json::Json;
use crate::protocol::ErrorKind;
use crate::render::{clean_multiline, render_values};
use crate::session::{Outcome, Session, TransportError};
use crate::settings::{self, Endpoint};
use crate::websocket::WebSocketTransport;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

/// How `nest` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything succeeded.
    Success,
    /// The evaluation (or reading the input) failed.
    Failed,
    /// The node is unreachable, refused the token, or the token is missing.
    Unreachable,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        match exit {
            Exit::Success => ExitCode::SUCCESS,
            Exit::Failed => ExitCode::from(1),
            Exit::Unreachable => ExitCode::from(2),
        }
    }
}

/// Open a console session with the node at `endpoint`; on failure the message is printed.
pub fn connect(endpoint: &Endpoint) -> Result<Session, Exit> {
    let opened = settings::console_url(&endpoint.url).map_err(|e| e.to_string()).and_then(|url| {
        let token = settings::read_token(&endpoint.token_file).map_err(|e| e.to_string())?;
        WebSocketTransport::connect(&url, &token).map_err(|e| e.to_string())
    });
    match opened {
        Ok(transport) => Ok(Session::new(Box::new(transport))),
        Err(message) => {
            eprintln!("error: {message}");
            Err(Exit::Unreachable)
        }
    }
}

/// Evaluate `code` once and print the outcome.
pub fn run_chunk(session: &mut Session, code: &str) -> Exit {
    if code.len() > CHUNK_BYTES_MAX {
        return print_outcome(&too_long());
    }
    match evaluate(session, code) {
        Ok(outcome) => print_outcome(&outcome),
        Err(error) => lost(&error),
    }
}

/// Evaluate `code`, printing events as they stream; Ctrl-C cancels.
pub fn evaluate(session: &mut Session, code: &str) -> Result<Outcome, TransportError> {
    let guard = Evaluating::begin();
    session.eval(code, &mut print_event, &mut || guard.take())
}

/// Report a lost connection.
pub fn lost(error: &TransportError) -> Exit {
    eprintln!("error: connection to the node lost: {error}");
    Exit::Unreachable
}

/// One streamed event, as a line of compact JSON.
fn print_event(event: &Json) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", clean_multiline(&event.to_compact()));
    let _ = out.flush();
}

/// Print what an evaluation gave: printed lines then values on stdout, or the error
/// on stderr.
pub fn print_outcome(outcome: &Outcome) -> Exit {
    match outcome {
        Outcome::Values { values, printed } => {
            let mut out = std::io::stdout().lock();
            for line in printed {
                let _ = writeln!(out, "{}", clean_multiline(line));
            }
            let _ = out.write_all(render_values(values, output_width()).as_bytes());
            let _ = out.flush();
            Exit::Success
        }
        Outcome::Failed { kind, message, .. } => {
            eprintln!("{}", failure_line(*kind, message));
            Exit::Failed
        }
        Outcome::Abandoned => {
            eprintln!("error: the node has not answered the cancel; stopped waiting");
            Exit::Failed
        }
    }
}

/// What a failed evaluation prints: the node's message, or only `cancelled` when the
/// operator stopped it (nothing it would have returned is shown).
fn failure_line(kind: ErrorKind, message: &str) -> String {
    match kind {
        ErrorKind::Cancelled => "cancelled".into(),
        _ => format!("error: {}", clean_multiline(message)),
    }
}

/// Columns results are rendered to: the terminal's, when stdout is one; else `COLUMNS`
/// when set; else no limit (output for a pipe or a file is not wrapped).
pub fn output_width() -> usize {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCGWINSZ writes one `winsize` into `size`, which outlives the call.
        let asked = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
        if asked == 0 && size.ws_col > 0 {
            return usize::from(size.ws_col);
        }
    }
    let columns = std::env::var("COLUMNS").ok().and_then(|text| text.trim().parse::<usize>().ok());
    columns.filter(|&columns| columns > 0).unwrap_or(usize::MAX)
}

/// Read a script file as one chunk (a `#!` first line is blanked, keeping line numbers).
pub fn read_script(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let code = read_bounded(file).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(match code.strip_prefix("#!") {
        Some(rest) => rest.find('\n').map_or_else(String::new, |newline| rest[newline..].to_string()),
        None => code,
    })
}

/// Read all of stdin as one chunk.
pub fn read_stdin() -> Result<String, String> {
    read_bounded(std::io::stdin().lock()).map_err(|e| format!("stdin: {e}"))
}

fn read_bounded(reader: impl Read) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    reader.take(CHUNK_BYTES_MAX as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > CHUNK_BYTES_MAX {
        return Err(std::io::Error::other(format!("longer than {CHUNK_BYTES_MAX} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_keeps_its_text_and_loses_a_shebang_line_but_not_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.lua");
        std::fs::write(&path, "#!/usr/bin/env nest\nreturn 1\n").unwrap();
        assert_eq!(read_script(&path).unwrap(), "\nreturn 1\n");
        std::fs::write(&path, "return 2").unwrap();
        assert_eq!(read_script(&path).unwrap(), "return 2");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read_script(&path).unwrap_err().contains("not UTF-8"));
        assert!(read_script(&dir.path().join("missing.lua")).unwrap_err().contains("missing.lua"));
    }

    #[test]
    fn a_cancelled_evaluation_prints_cancelled_and_an_error_its_message() {
        assert_eq!(failure_line(ErrorKind::Cancelled, "cancelled"), "cancelled");
        assert_eq!(failure_line(ErrorKind::Runtime, "console:1: boom\u{1b}"), "error: console:1: boom\\u{1b}");
    }

    #[test]
    fn exit_codes_are_0_1_2() {
        assert_eq!(ExitCode::from(Exit::Success), ExitCode::SUCCESS);
        assert_eq!(ExitCode::from(Exit::Failed), ExitCode::from(1));
        assert_eq!(ExitCode::from(Exit::Unreachable), ExitCode::from(2));
    }

    #[test]
    fn failed_and_abandoned_outcomes_fail_and_values_succeed() {
        let failed = Outcome::Failed {
            kind: crate::protocol::ErrorKind::Runtime,
            message: "console:1: boom".into(),
            incomplete: false,
        };
        assert_eq!(print_outcome(&failed), Exit::Failed);
        assert_eq!(print_outcome(&Outcome::Abandoned), Exit::Failed);
        assert_eq!(print_outcome(&Outcome::Values { values: vec![], printed: vec![] }), Exit::Success);
    }
}
