//! Attach to a running Nest node: a Lua console inside the node, and its state as tables.
//!
//! `nest` opens the interactive console (a TTY on stdin); `nest -e CODE`, `nest
//! FILE.lua` and piped stdin evaluate one chunk. The console speaks JSON over the
//! node's WebSocket `/v1/admin/console` with the admin bearer token. `nest status`,
//! `nest block <height>` and `nest account <key>` read the public HTTP API.
//!
//! Exit codes: 0 success, 1 the evaluation failed, 2 the node is unreachable or
//! refused the token.

mod bench;
mod chunk;
mod http;
mod interrupt;
mod json;
mod protocol;
mod render;
mod repl;
mod run;
mod session;
mod settings;
mod websocket;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use run::Exit;
use settings::Flags;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// The Nest operator console.
#[derive(Parser)]
#[command(
    name = "nest",
    version,
    about = "Nest operator console: Lua inside a running node",
    after_help = "Environment: NEST_URL, NEST_TOKEN_FILE, NEST_HISTORY (default ~/.nest_history).\n\
                  Exit codes: 0 success, 1 the evaluation failed, 2 the node is unreachable or refused the token."
)]
struct Cli {
    /// The node's API [default: http://ADDR from <data-dir>/api.addr, else http://127.0.0.1:7300]
    #[arg(long, value_name = "URL", global = true)]
    url: Option<String>,
    /// The admin API token [default: <data-dir>/api.token]
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// The node's data directory [default: .devnet/node-1/data]
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Evaluate CODE as one chunk and exit.
    #[arg(short = 'e', long = "eval", value_name = "CODE", conflicts_with = "script")]
    eval: Option<String>,
    /// A Lua file to evaluate as one chunk (`-` for stdin).
    script: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The node, its chains and its plugins.
    Status,
    /// A committed block.
    Block {
        /// Block height.
        height: u64,
        /// Chain id.
        #[arg(long, default_value = "main")]
        chain: String,
    },
    /// An account's balance and nonces.
    Account {
        /// Account public key (hex).
        key: String,
        /// Chain id.
        #[arg(long, default_value = "main")]
        chain: String,
    },
    /// Time console round trips (`node.status()`, `1 + 1`) against plain `GET /v1/status`.
    Bench {
        /// Calls of each kind.
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.is_some() && cli.eval.is_some() {
        Cli::command().error(ErrorKind::ArgumentConflict, "-e cannot be used with a subcommand").exit();
    }
    let env = |name: &str| std::env::var(name).ok();
    let flags = Flags { url: cli.url, token_file: cli.token_file, data_dir: cli.data_dir };
    let endpoint = settings::resolve(&flags, &env);
    if let Some(Command::Bench { count }) = &cli.command {
        return match run::connect(&endpoint) {
            Ok(mut session) => {
                let exit = bench::run(&mut session, &endpoint.url, *count);
                session.close();
                exit.into()
            }
            Err(exit) => exit.into(),
        };
    }
    if let Some(command) = &cli.command {
        return subcommand(&endpoint.url, command).into();
    }
    let code = match chunk_input(cli.eval, cli.script) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Failed.into();
        }
    };
    let mut session = match run::connect(&endpoint) {
        Ok(session) => session,
        Err(exit) => return exit.into(),
    };
    let exit = match code {
        Some(code) => {
            let exit = run::run_chunk(&mut session, &code);
            session.close();
            exit
        }
        None => repl::run(session, settings::history_file(&env)),
    };
    exit.into()
}

/// The chunk to evaluate, or `None` for the interactive console.
fn chunk_input(eval: Option<String>, script: Option<PathBuf>) -> Result<Option<String>, String> {
    match (eval, script) {
        (Some(code), _) => Ok(Some(code)),
        (None, Some(path)) if path.as_os_str() == "-" => run::read_stdin().map(Some),
        (None, Some(path)) => run::read_script(&path).map(Some),
        (None, None) if std::io::stdin().is_terminal() => Ok(None),
        (None, None) => run::read_stdin().map(Some),
    }
}

fn subcommand(url: &str, command: &Command) -> Exit {
    let path = match command {
        Command::Status => "/v1/status".to_string(),
        Command::Block { height, chain } => format!("/v1/chains/{chain}/blocks/{height}"),
        Command::Account { key, chain } => format!("/v1/chains/{chain}/accounts/{key}"),
        Command::Bench { .. } => unreachable!("bench runs over the console session, before subcommands"),
    };
    match http::fetch(url, &path) {
        Ok(value) => {
            print!("{}", http::render(command, &value));
            Exit::Success
        }
        Err(http::FetchError::Status(message)) => {
            eprintln!("error: {message}");
            Exit::Failed
        }
        Err(http::FetchError::Unreachable(message)) => {
            eprintln!("error: {message}");
            Exit::Unreachable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses_flags_eval_script_and_subcommands() {
        let cli = Cli::try_parse_from(["nest", "--url", "http://h:1", "-e", "return 1"]).unwrap();
        assert_eq!((cli.url.as_deref(), cli.eval.as_deref()), (Some("http://h:1"), Some("return 1")));
        let cli = Cli::try_parse_from(["nest", "--data-dir", "d", "--token-file", "t", "s.lua"]).unwrap();
        assert_eq!(cli.script, Some(PathBuf::from("s.lua")));
        assert_eq!((cli.data_dir, cli.token_file), (Some("d".into()), Some("t".into())));
        let cli = Cli::try_parse_from(["nest", "status", "--url", "http://h:2"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Status)));
        assert_eq!(cli.url.as_deref(), Some("http://h:2"));
        let cli = Cli::try_parse_from(["nest", "--data-dir", "d", "status"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Status)));
        assert_eq!(cli.script, None);
        let cli = Cli::try_parse_from(["nest", "--url", "http://h:1", "account", "ab"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Account { .. })));
        let cli = Cli::try_parse_from(["nest", "block", "7", "--chain", "iot"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Block { height: 7, .. })));
        assert!(Cli::try_parse_from(["nest", "-e", "x", "s.lua"]).is_err());
        assert!(Cli::try_parse_from(["nest"]).unwrap().command.is_none());
    }
}
