//! Gather a chunk of Lua line by line until the node accepts it as complete.
//!
//! The node decides: an evaluation that fails with `incomplete: true` means "read
//! another line and send the whole chunk again".

use crate::protocol::ErrorKind;
use crate::session::{Outcome, TransportError};

/// The longest chunk the console sends (bytes), from a prompt, a file or stdin.
pub const CHUNK_BYTES_MAX: usize = 1 << 20;

/// Which prompt a line is read under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// The first line of a chunk (`nest> `).
    First,
    /// A further line of an unfinished chunk (`  ... `).
    Continuation,
}

impl Prompt {
    /// The prompt's text.
    pub fn text(self) -> &'static str {
        match self {
            Prompt::First => "nest> ",
            Prompt::Continuation => "  ... ",
        }
    }
}

/// What reading a line gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A line of text.
    Text(String),
    /// Ctrl-C while editing.
    Interrupted,
    /// Ctrl-D or the end of input.
    Eof,
}

/// A source of lines (the line editor, or a script in tests).
pub trait LineSource {
    /// Read one line under `prompt`.
    fn read_line(&mut self, prompt: Prompt) -> Line;
}

/// How gathering a chunk ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Chunk {
    /// The chunk was evaluated (or failed for good).
    Evaluated {
        /// The whole chunk, lines joined by newlines.
        code: String,
        /// What the node answered to the last send.
        outcome: Outcome,
    },
    /// Ctrl-C on a continuation line dropped the chunk.
    Discarded,
}

/// Evaluate `first` and, while the node says the chunk is incomplete, read another
/// line from `lines` and evaluate the whole chunk again.
pub fn gather(
    first: String,
    lines: &mut dyn LineSource,
    evaluate: &mut dyn FnMut(&str) -> Result<Outcome, TransportError>,
) -> Result<Chunk, TransportError> {
    let mut code = first;
    loop {
        if code.len() > CHUNK_BYTES_MAX {
            return Ok(Chunk::Evaluated { outcome: too_long(), code });
        }
        let outcome = evaluate(&code)?;
        if !outcome.is_incomplete() {
            return Ok(Chunk::Evaluated { code, outcome });
        }
        match lines.read_line(Prompt::Continuation) {
            Line::Text(line) => {
                code.push('\n');
                code.push_str(&line);
            }
            Line::Interrupted => return Ok(Chunk::Discarded),
            Line::Eof => return Ok(Chunk::Evaluated { code, outcome }),
        }
    }
}

/// The failure of a chunk longer than [`CHUNK_BYTES_MAX`].
pub fn too_long() -> Outcome {
    Outcome::Failed {
        kind: ErrorKind::Limit,
        message: format!("the chunk is longer than {CHUNK_BYTES_MAX} bytes"),
        incomplete: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Json;
    use crate::protocol::Request;
    use crate::session::Session;
    use crate::session::fake::FakeNode;
    use std::collections::VecDeque;

    /// Lines typed by the operator, with the prompts they were read under.
    struct Typed {
        lines: VecDeque<Line>,
        prompts: Vec<Prompt>,
    }

    impl Typed {
        fn new(lines: impl IntoIterator<Item = Line>) -> Typed {
            Typed { lines: lines.into_iter().collect(), prompts: Vec::new() }
        }
    }

    impl LineSource for Typed {
        fn read_line(&mut self, prompt: Prompt) -> Line {
            self.prompts.push(prompt);
            self.lines.pop_front().unwrap_or(Line::Eof)
        }
    }

    fn text(line: &str) -> Line {
        Line::Text(line.into())
    }

    /// A node that says a chunk is incomplete until its `do`/`function` count is
    /// matched by `end`s, then returns the chunk's line count.
    fn lua_like_node() -> FakeNode {
        FakeNode::new(|request| {
            let Request::Eval { id, code } = request else { return vec![] };
            let opened = code.matches("function").count() + code.matches(" do").count();
            let closed = code.matches("end").count();
            if opened > closed {
                vec![format!(
                    r#"{{"op":"error","id":{id},"kind":"syntax","message":"console:{}: 'end' expected near <eof>","incomplete":true}}"#,
                    code.lines().count()
                )]
            } else {
                vec![format!(r#"{{"op":"result","id":{id},"values":[{}]}}"#, code.lines().count())]
            }
        })
    }

    fn gather_with(node: FakeNode, first: &str, typed: &mut Typed) -> (Chunk, Vec<Request>) {
        let sent = node.sent.clone();
        let mut session = Session::new(Box::new(node));
        let chunk = gather(first.into(), typed, &mut |code| session.eval(code, &mut |_| {}, &mut || false)).unwrap();
        let sent = sent.lock().unwrap().clone();
        (chunk, sent)
    }

    #[test]
    fn a_complete_line_is_evaluated_once() {
        let mut typed = Typed::new([]);
        let (chunk, sent) = gather_with(lua_like_node(), "return 1", &mut typed);
        assert_eq!(
            chunk,
            Chunk::Evaluated {
                code: "return 1".into(),
                outcome: Outcome::Values { values: vec![Json::parse("1").unwrap()], printed: vec![] }
            }
        );
        assert_eq!(sent.len(), 1);
        assert!(typed.prompts.is_empty());
    }

    #[test]
    fn an_incomplete_chunk_reads_continuation_lines_and_resends_the_whole_chunk() {
        let mut typed = Typed::new([text("  local x = 1"), text("  return x"), text("end")]);
        let (chunk, sent) = gather_with(lua_like_node(), "function f()", &mut typed);
        let whole = "function f()\n  local x = 1\n  return x\nend";
        assert_eq!(
            chunk,
            Chunk::Evaluated {
                code: whole.into(),
                outcome: Outcome::Values { values: vec![Json::parse("4").unwrap()], printed: vec![] }
            }
        );
        assert_eq!(typed.prompts, [Prompt::Continuation; 3]);
        let codes: Vec<&str> = sent
            .iter()
            .map(|r| match r {
                Request::Eval { code, .. } => code.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            codes,
            ["function f()", "function f()\n  local x = 1", "function f()\n  local x = 1\n  return x", whole]
        );
    }

    #[test]
    fn ctrl_c_on_a_continuation_line_discards_the_chunk() {
        let mut typed = Typed::new([text("local y = 2"), Line::Interrupted, text("never read")]);
        let (chunk, sent) = gather_with(lua_like_node(), "for i = 1, 3 do", &mut typed);
        assert_eq!(chunk, Chunk::Discarded);
        assert_eq!(sent.len(), 2);
        assert_eq!(typed.lines.len(), 1);
    }

    #[test]
    fn end_of_input_inside_a_chunk_reports_the_incomplete_error() {
        let mut typed = Typed::new([]);
        let (chunk, _) = gather_with(lua_like_node(), "function g()", &mut typed);
        let Chunk::Evaluated { code, outcome } = chunk else { panic!("discarded") };
        assert_eq!(code, "function g()");
        assert!(outcome.is_incomplete());
    }

    #[test]
    fn a_chunk_past_the_limit_is_refused_without_sending() {
        let mut typed = Typed::new([]);
        let long = "-".repeat(CHUNK_BYTES_MAX + 1);
        let (chunk, sent) = gather_with(lua_like_node(), &long, &mut typed);
        assert!(matches!(chunk, Chunk::Evaluated { outcome: Outcome::Failed { kind: ErrorKind::Limit, .. }, .. }));
        assert!(sent.is_empty());
    }

    #[test]
    fn runtime_errors_end_the_chunk() {
        let node = FakeNode::new(|request| match request {
            Request::Eval { id, .. } => vec![format!(
                r#"{{"op":"error","id":{id},"kind":"runtime","message":"console:1: attempt to call a nil value"}}"#
            )],
            _ => vec![],
        });
        let mut typed = Typed::new([text("unused")]);
        let (chunk, _) = gather_with(node, "nope()", &mut typed);
        assert!(matches!(chunk, Chunk::Evaluated { outcome: Outcome::Failed { kind: ErrorKind::Runtime, .. }, .. }));
        assert!(typed.prompts.is_empty());
    }
}
