//! Run the interactive console: a line editor on its own thread, the session on
//! the main thread.
//!
//! rustyline blocks while it reads, so it runs on a thread of its own and hands
//! lines over a channel; the main thread gathers chunks, evaluates them and, while
//! the operator types, keeps the connection read (pings, a closed socket). Tab asks
//! the node for completions through the same session.

use crate::chunk::{self, Chunk, Line, LineSource, Prompt};
use crate::run::{self, Exit};
use crate::session::Session;
use rustyline::completion::{Completer, Pair};
use rustyline::config::BellStyle;
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hinter, HistoryHinter};
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, ExternalPrinter, Helper};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long Tab waits for the node's completions (milliseconds).
pub const COMPLETION_TIMEOUT_MS: u64 = 2000;
/// How often the idle connection is read while the operator types (milliseconds).
pub const IDLE_POLL_MS: u64 = 1000;
/// The most history entries kept.
pub const HISTORY_ENTRIES_MAX: usize = 10_000;

/// What `.help` prints.
pub const HELP: &str = "\
Lua runs inside the node, in this session's own sandbox; variables last as long as the session.
Tab completes names the node knows. Ctrl-C clears the line, or cancels a running evaluation.
Ctrl-D or .quit leaves. An unfinished chunk (a `function` without its `end`) continues on `  ... `.

node        the node: status, info, stop
              node.status()
chain(id)   a chain: head(), block(h), tx(hash), digest(), account(key)
              chain(\"main\"):block(12)
plugins     loaded plugins: list, inspect(id), disable(id), enable(id), upgrade(id, package_dir_on_the_node)
              plugins.inspect(\"poa\")
peers       the peers the node knows: list(), count()
              peers.list()
tx          transactions: transfer{from_key_file=... or from=\"node\", to=..., amount=..., fee=?, nonce=?}
              tx.transfer{from_key_file=\".devnet/faucet.key\", to=\"<account hex>\", amount=5000}
keys        the node's keys: node(), list()
              keys.list()
log         the node's log: tail(n)
              log.tail(20)
market(sku) an SKU: strategy(f|source|file), versions(), source(v), rollback(v), quote{...}, chart{points=},
            shelve{policy=, resource=, unit=, units=}, update{...}, withdraw(), lock{units=, max_price=},
            bid{...}, close(), book(), prices()
              market(\"wifi\"):strategy(function(ctx) return 100 * (1 + ctx.utilization) end)
market      skus(), demands(), locks(), strategies(), demand{...}, report(lock, units), confirm(lock),
            settle(lock), refund(lock), buy{resource=, units=, max_unit_price=, max_total=?, prefer=?}
              market.buy{resource=\"network\", units=600, max_unit_price=150}
radios      radio drivers: list(), stats(id) (link, state, skipped by reason), send(id, link_address, frame_hex)
              radios.stats(\"sim\")
devices     devices on chain: list(), show(uid), readings(uid, from_ms?, to_ms?, limit?), uid(hardware_id),
            register{uid= or hardware_id=, public_key=, class=?, from=...}, transfer{..., to=}, revoke{...}
              devices.show(devices.uid(\"sim-device-0\"))
watch(...)  stream events until Ctrl-C: \"blocks\", \"txs\", \"plugins\", \"market\", \"frames\", or {type=, chain=, count=}
              watch(\"blocks\")

.help       this text
.quit       leave (as Ctrl-D)
";

type Shared = Arc<Mutex<Session>>;

fn lock(session: &Shared) -> MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Run the console until Ctrl-D, `.quit` or a lost connection.
pub fn run(session: Session, history: Option<PathBuf>) -> Exit {
    let session = Arc::new(Mutex::new(session));
    let (commands, editor_commands) = mpsc::channel();
    let (editor_replies, replies) = mpsc::channel();
    let helper = NestHelper { session: session.clone(), hinter: HistoryHinter::new() };
    let spawned = std::thread::Builder::new()
        .name("line-editor".into())
        .spawn(move || editor_thread(helper, history, editor_commands, editor_replies));
    let Ok(editor) = spawned else {
        eprintln!("error: cannot start the line editor thread");
        return Exit::Failed;
    };
    let printer = match replies.recv() {
        Ok(Reply::Ready(printer)) => printer,
        Ok(Reply::Failed(message)) => {
            eprintln!("error: line editor: {message}");
            return Exit::Failed;
        }
        Ok(Reply::Line(_)) | Err(_) => None,
    };
    let mut lines = EditorLines { commands, replies, session: session.clone(), printer, connection_lost: false };
    let exit = repl(&session, &mut lines);
    drop(lines);
    let _ = editor.join();
    exit
}

/// Read, evaluate, print, until the end.
fn repl(session: &Shared, lines: &mut EditorLines) -> Exit {
    loop {
        let first = match lines.read_line(Prompt::First) {
            Line::Eof => return Exit::Success,
            Line::Interrupted => continue,
            Line::Text(text) => text,
        };
        match dot_command(&first) {
            Some(DotCommand::Quit) => return Exit::Success,
            Some(DotCommand::Help) => {
                print!("{HELP}");
                continue;
            }
            Some(DotCommand::Unknown) => {
                eprintln!("error: unknown command {} (try .help)", first.trim());
                continue;
            }
            Some(DotCommand::Blank) => continue,
            None => {}
        }
        match chunk::gather(first, lines, &mut |code| run::evaluate(&mut lock(session), code)) {
            Ok(Chunk::Evaluated { code, outcome }) => {
                lines.remember(code);
                let _ = run::print_outcome(&outcome);
            }
            Ok(Chunk::Discarded) => {}
            Err(error) => return run::lost(&error),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum DotCommand {
    Blank,
    Help,
    Quit,
    Unknown,
}

/// A console command: a line that starts with `.` (no Lua chunk does), or a blank line.
fn dot_command(line: &str) -> Option<DotCommand> {
    match line.trim() {
        "" => Some(DotCommand::Blank),
        ".help" => Some(DotCommand::Help),
        ".quit" | ".exit" => Some(DotCommand::Quit),
        other if other.starts_with('.') && !other.starts_with("..") => Some(DotCommand::Unknown),
        _ => None,
    }
}

enum Command {
    Read(Prompt),
    Remember(String),
}

enum Reply {
    Ready(Option<Box<dyn ExternalPrinter + Send>>),
    Failed(String),
    Line(Line),
}

/// Lines from the editor thread; while waiting, the idle connection is read.
struct EditorLines {
    commands: Sender<Command>,
    replies: Receiver<Reply>,
    session: Shared,
    printer: Option<Box<dyn ExternalPrinter + Send>>,
    connection_lost: bool,
}

impl EditorLines {
    fn remember(&mut self, entry: String) {
        let _ = self.commands.send(Command::Remember(entry));
    }

    fn poll_idle(&mut self) {
        if self.connection_lost {
            return;
        }
        let Err(error) = lock(&self.session).poll_idle(Duration::from_millis(1)) else { return };
        self.connection_lost = true;
        let notice = format!("\nnest: {error}; press Enter to leave\n");
        let printed = self.printer.as_mut().is_some_and(|printer| printer.print(notice.clone()).is_ok());
        if !printed {
            eprint!("{notice}");
        }
    }
}

impl LineSource for EditorLines {
    fn read_line(&mut self, prompt: Prompt) -> Line {
        if self.commands.send(Command::Read(prompt)).is_err() {
            return Line::Eof;
        }
        loop {
            match self.replies.recv_timeout(Duration::from_millis(IDLE_POLL_MS)) {
                Ok(Reply::Line(line)) => return line,
                Ok(Reply::Ready(_) | Reply::Failed(_)) => {}
                Err(RecvTimeoutError::Timeout) => self.poll_idle(),
                Err(RecvTimeoutError::Disconnected) => return Line::Eof,
            }
        }
    }
}

fn editor_config() -> Config {
    Config::builder()
        .max_history_size(HISTORY_ENTRIES_MAX)
        .unwrap_or_else(|_| Config::builder())
        .completion_type(CompletionType::List)
        .bell_style(BellStyle::None)
        .auto_add_history(false)
        .history_ignore_space(true)
        .build()
}

/// The editor thread: owns rustyline and the history file.
fn editor_thread(helper: NestHelper, history: Option<PathBuf>, commands: Receiver<Command>, replies: Sender<Reply>) {
    let mut editor = match Editor::<NestHelper, FileHistory>::with_config(editor_config()) {
        Ok(editor) => editor,
        Err(error) => {
            let _ = replies.send(Reply::Failed(error.to_string()));
            return;
        }
    };
    editor.set_helper(Some(helper));
    if let Some(path) = &history
        && path.exists()
        && let Err(error) = editor.load_history(path)
    {
        eprintln!("warning: history {}: {error}", path.display());
    }
    let printer = editor.create_external_printer().ok().map(|p| Box::new(p) as Box<dyn ExternalPrinter + Send>);
    if replies.send(Reply::Ready(printer)).is_err() {
        return;
    }
    let mut history_warned = false;
    for command in commands {
        match command {
            Command::Read(prompt) => {
                let line = match editor.readline(prompt.text()) {
                    Ok(text) => Line::Text(text),
                    Err(rustyline::error::ReadlineError::Interrupted) => Line::Interrupted,
                    Err(rustyline::error::ReadlineError::Eof) => Line::Eof,
                    Err(error) => {
                        eprintln!("error: line editor: {error}");
                        Line::Eof
                    }
                };
                if replies.send(Reply::Line(line)).is_err() {
                    return;
                }
            }
            Command::Remember(entry) => {
                let _ = editor.add_history_entry(entry);
                if let Some(path) = &history
                    && let Err(error) = editor.append_history(path)
                    && !history_warned
                {
                    history_warned = true;
                    eprintln!("warning: history {}: {error}", path.display());
                }
            }
        }
    }
}

/// rustyline's helper: completion from the node, hints from history.
struct NestHelper {
    session: Shared,
    hinter: HistoryHinter,
}

impl Completer for NestHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let timeout = Duration::from_millis(COMPLETION_TIMEOUT_MS);
        let Ok(Some(completions)) = lock(&self.session).complete(&line[..pos], timeout) else {
            return Ok((pos, Vec::new()));
        };
        let pairs = completions
            .candidates
            .into_iter()
            .map(|candidate| Pair { display: candidate.clone(), replacement: candidate })
            .collect();
        Ok((completions.start, pairs))
    }
}

impl Hinter for NestHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, context: &Context<'_>) -> Option<String> {
        self.hinter.hint(line, pos, context)
    }
}

impl Highlighter for NestHelper {}
impl Validator for NestHelper {}
impl Helper for NestHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_commands_are_recognised_and_lua_is_not() {
        assert_eq!(dot_command("  "), Some(DotCommand::Blank));
        assert_eq!(dot_command(".help"), Some(DotCommand::Help));
        assert_eq!(dot_command(" .quit "), Some(DotCommand::Quit));
        assert_eq!(dot_command(".frobnicate"), Some(DotCommand::Unknown));
        assert_eq!(dot_command("return 1"), None);
        assert_eq!(dot_command("..."), None);
    }

    #[test]
    fn help_names_every_table_with_an_example() {
        for name in
            ["node", "chain(id)", "plugins", "peers", "tx", "keys", "log", "market(sku)", "market", "watch(...)"]
        {
            assert!(HELP.lines().any(|line| line.starts_with(name)), "{name} missing");
        }
        for call in ["node.status()", "chain(\"main\"):block(12)", "plugins.inspect(", "tx.transfer{", "log.tail(20)"] {
            assert!(HELP.contains(call), "{call} missing");
        }
    }
}
