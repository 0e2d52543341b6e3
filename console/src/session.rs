//! Run a console session over a transport: evaluations, completions and cancels.
//!
//! The session is plain logic over a [`Transport`] that sends and receives text
//! frames, so tests drive it with a fake node.

use crate::json::Json;
use crate::protocol::{Answer, ErrorKind, Request};
use std::time::{Duration, Instant};

/// How often a waiting evaluation checks for Ctrl-C (milliseconds).
pub const INTERRUPT_POLL_MS: u64 = 100;

/// The most completion candidates kept from one answer.
pub const CANDIDATES_MAX: usize = 1000;

/// Largest file the console sends the node (as the node bounds it).
pub const FILE_BYTES_MAX: u64 = 256 * 1024;

/// A way to exchange text frames with the node.
pub trait Transport: Send {
    /// Send one text frame.
    fn send(&mut self, text: &str) -> Result<(), TransportError>;
    /// Wait up to `wait` for one text frame; `None` when none came.
    fn receive(&mut self, wait: Duration) -> Result<Option<String>, TransportError>;
    /// Say goodbye to the node (best effort).
    fn close(&mut self) {}
}

/// The connection to the node failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    /// The node closed the connection.
    #[error("the node closed the connection")]
    Closed,
    /// Reading or writing the socket failed.
    #[error("{0}")]
    Io(String),
}

/// How an evaluation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The chunk returned.
    Values {
        /// The returned values.
        values: Vec<Json>,
        /// What the chunk printed.
        printed: Vec<String>,
    },
    /// The chunk failed (or is incomplete).
    Failed {
        /// Why.
        kind: ErrorKind,
        /// The node's message.
        message: String,
        /// The chunk is unfinished.
        incomplete: bool,
    },
    /// The operator pressed Ctrl-C twice: the cancel was sent, its answer not awaited.
    Abandoned,
}

impl Outcome {
    /// Whether the chunk is unfinished and more lines should be read.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, Outcome::Failed { incomplete: true, .. })
    }
}

/// Completion candidates for a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completions {
    /// Byte offset in the line where the completed word begins.
    pub start: usize,
    /// Words that replace the line from `start`.
    pub candidates: Vec<String>,
}

/// A console session: request ids and the transport.
pub struct Session {
    transport: Box<dyn Transport>,
    next_id: u64,
    /// Answers dropped because their request was no longer awaited.
    pub stale_answers: u64,
    /// Frames dropped because they did not decode.
    pub malformed_answers: u64,
}

impl Session {
    /// A session over `transport`.
    pub fn new(transport: Box<dyn Transport>) -> Session {
        Session { transport, next_id: 1, stale_answers: 0, malformed_answers: 0 }
    }

    /// End the session (best effort).
    pub fn close(&mut self) {
        self.transport.close();
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Evaluate `code`, calling `on_event` for each streamed event, until the node
    /// answers. When `interrupted()` turns true the evaluation is cancelled; a second
    /// time abandons waiting.
    pub fn eval(
        &mut self,
        code: &str,
        on_event: &mut dyn FnMut(&Json),
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<Outcome, TransportError> {
        let id = self.take_id();
        self.transport.send(&Request::Eval { id, code: code.to_owned() }.encode())?;
        let mut cancel_sent = false;
        loop {
            if interrupted() {
                if cancel_sent {
                    return Ok(Outcome::Abandoned);
                }
                self.transport.send(&Request::Cancel { id }.encode())?;
                cancel_sent = true;
            }
            match self.receive_for(id, Duration::from_millis(INTERRUPT_POLL_MS))? {
                Some(Answer::Result { values, printed, .. }) => return Ok(Outcome::Values { values, printed }),
                Some(Answer::Error { kind, message, incomplete, .. }) => {
                    return Ok(Outcome::Failed { kind, message, incomplete });
                }
                Some(Answer::Event { event, .. }) => on_event(&event),
                Some(Answer::ReadFile { path, .. }) => {
                    let file = match read_named_file(code, &path) {
                        Ok(content) => Request::File { id, content: Some(content), error: None },
                        Err(error) => Request::File { id, content: None, error: Some(error) },
                    };
                    self.transport.send(&file.encode())?;
                }
                Some(Answer::Completions { .. }) | None => {}
            }
        }
    }

    /// Ask the node to complete the end of `line`; `None` when it did not answer
    /// within `timeout` or answered nonsense.
    pub fn complete(&mut self, line: &str, timeout: Duration) -> Result<Option<Completions>, TransportError> {
        let id = self.take_id();
        self.transport.send(&Request::Complete { id, line: line.to_owned() }.encode())?;
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            if let Some(Answer::Completions { start, candidates, .. }) = self.receive_for(id, deadline - now)? {
                if start > line.len() || !line.is_char_boundary(start) {
                    self.malformed_answers += 1;
                    return Ok(None);
                }
                let candidates =
                    candidates.into_iter().filter(|c| !c.chars().any(char::is_control)).take(CANDIDATES_MAX).collect();
                return Ok(Some(Completions { start, candidates }));
            }
        }
    }

    /// Read whatever the node sent while no request is waiting (answers pings,
    /// notices a closed connection).
    pub fn poll_idle(&mut self, wait: Duration) -> Result<(), TransportError> {
        while let Some(text) = self.transport.receive(wait)? {
            self.count_unawaited(&text);
        }
        Ok(())
    }

    /// One answer to request `id`, if one comes within `wait`; others are dropped.
    fn receive_for(&mut self, id: u64, wait: Duration) -> Result<Option<Answer>, TransportError> {
        let Some(text) = self.transport.receive(wait)? else { return Ok(None) };
        match Answer::decode(&text) {
            Ok(answer) if answer.id() == id => Ok(Some(answer)),
            _ => {
                self.count_unawaited(&text);
                Ok(None)
            }
        }
    }

    fn count_unawaited(&mut self, text: &str) {
        if Answer::decode(text).is_ok() {
            self.stale_answers += 1;
        } else {
            self.malformed_answers += 1;
        }
    }
}

/// The text of `path`, read here, for the node evaluating `code`. Only a path the chunk
/// names literally is read: the node cannot ask for any other of the operator's files.
pub fn read_named_file(code: &str, path: &str) -> Result<String, String> {
    use std::io::Read;
    if path.is_empty() || !code.contains(path) {
        return Err("the console sends only files the chunk names literally".to_string());
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(FILE_BYTES_MAX + 1).read_to_string(&mut text).map_err(|e| e.to_string())?;
    if text.len() as u64 > FILE_BYTES_MAX {
        return Err(format!("larger than {FILE_BYTES_MAX} bytes"));
    }
    Ok(text)
}

#[cfg(test)]
pub mod fake {
    //! A node that answers from a script, for tests.

    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    type Reply = Box<dyn FnMut(&Request) -> Vec<String> + Send>;

    /// A transport whose node answers each request with `reply(request)`.
    pub struct FakeNode {
        reply: Reply,
        inbox: VecDeque<String>,
        /// Every request the console sent, decoded.
        pub sent: Arc<Mutex<Vec<Request>>>,
        closed: bool,
    }

    impl FakeNode {
        /// A node that answers with `reply`.
        pub fn new(reply: impl FnMut(&Request) -> Vec<String> + Send + 'static) -> FakeNode {
            FakeNode { reply: Box::new(reply), inbox: VecDeque::new(), sent: Arc::default(), closed: false }
        }

        /// A node that has closed the connection.
        pub fn closed() -> FakeNode {
            FakeNode { closed: true, ..FakeNode::new(|_| vec![]) }
        }
    }

    impl Transport for FakeNode {
        fn send(&mut self, text: &str) -> Result<(), TransportError> {
            if self.closed {
                return Err(TransportError::Closed);
            }
            let request: Request = serde_json::from_str(text).expect("the console sends valid requests");
            self.inbox.extend((self.reply)(&request));
            self.sent.lock().unwrap().push(request);
            Ok(())
        }

        fn receive(&mut self, _wait: Duration) -> Result<Option<String>, TransportError> {
            if self.closed {
                return Err(TransportError::Closed);
            }
            Ok(self.inbox.pop_front())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeNode;
    use super::*;

    fn no_events(_: &Json) {
        panic!("no event expected");
    }

    #[test]
    fn eval_returns_the_result_with_its_id_and_ignores_other_ids() {
        let node = FakeNode::new(|request| match request {
            Request::Eval { id, .. } => vec![
                r#"{"op":"result","id":999,"values":[0]}"#.into(),
                "garbage".into(),
                format!(r#"{{"op":"result","id":{id},"values":[1,"two"],"printed":["p"]}}"#),
            ],
            _ => vec![],
        });
        let mut session = Session::new(Box::new(node));
        let outcome = session.eval("return 1, 'two'", &mut no_events, &mut || false).unwrap();
        let Outcome::Values { values, printed } = outcome else { panic!("{outcome:?}") };
        assert_eq!(values, vec![Json::parse("1").unwrap(), Json::String("two".into())]);
        assert_eq!(printed, vec!["p".to_string()]);
        assert_eq!((session.stale_answers, session.malformed_answers), (1, 1));
    }

    #[test]
    fn each_request_gets_a_new_id() {
        let node = FakeNode::new(|request| match request {
            Request::Eval { id, .. } => vec![format!(r#"{{"op":"result","id":{id}}}"#)],
            _ => vec![],
        });
        let sent = node.sent.clone();
        let mut session = Session::new(Box::new(node));
        session.eval("a()", &mut no_events, &mut || false).unwrap();
        session.eval("b()", &mut no_events, &mut || false).unwrap();
        let ids: Vec<u64> = sent
            .lock()
            .unwrap()
            .iter()
            .map(|r| match r {
                Request::Eval { id, .. } => *id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn events_stream_until_ctrl_c_sends_cancel_and_the_node_answers() {
        let node = FakeNode::new(|request| match request {
            Request::Eval { id, .. } => {
                (0..3).map(|n| format!(r#"{{"op":"event","id":{id},"event":{{"n":{n}}}}}"#)).collect()
            }
            Request::Cancel { id } => {
                vec![format!(r#"{{"op":"error","id":{id},"kind":"cancelled","message":"console: cancelled"}}"#)]
            }
            Request::Complete { .. } | Request::File { .. } => vec![],
        });
        let sent = node.sent.clone();
        let mut session = Session::new(Box::new(node));
        let mut events = Vec::new();
        let mut polls = 0;
        let outcome = session
            .eval("watch('blocks')", &mut |event| events.push(event.to_compact()), &mut || {
                polls += 1;
                polls == 5
            })
            .unwrap();
        assert_eq!(events, [r#"{"n":0}"#, r#"{"n":1}"#, r#"{"n":2}"#]);
        assert_eq!(
            outcome,
            Outcome::Failed { kind: ErrorKind::Cancelled, message: "console: cancelled".into(), incomplete: false }
        );
        assert_eq!(sent.lock().unwrap().last(), Some(&Request::Cancel { id: 1 }));
    }

    #[test]
    fn a_file_the_chunk_names_is_read_here_and_sent_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("surge.lua").display().to_string();
        std::fs::write(&path, "return function(ctx) return 7 end").unwrap();
        let secret = dir.path().join("secret.key").display().to_string();
        std::fs::write(&secret, "do not send").unwrap();
        let asked = [path.clone(), secret.clone(), dir.path().join("missing.lua").display().to_string()];
        let node = FakeNode::new(move |request| match request {
            Request::Eval { id, .. } => {
                let mut frames: Vec<String> =
                    asked.iter().map(|p| format!(r#"{{"op":"read_file","id":{id},"path":"{p}"}}"#)).collect();
                frames.push(format!(r#"{{"op":"result","id":{id}}}"#));
                frames
            }
            _ => vec![],
        });
        let sent = node.sent.clone();
        let mut session = Session::new(Box::new(node));
        let missing = dir.path().join("missing.lua").display().to_string();
        let code = format!(r#"market("wifi"):strategy("{path}") market("x"):strategy("{missing}")"#);
        session.eval(&code, &mut no_events, &mut || false).unwrap();
        let files: Vec<Request> = sent.lock().unwrap().iter().skip(1).cloned().collect();
        let content = Some("return function(ctx) return 7 end".to_string());
        assert_eq!(files[0], Request::File { id: 1, content, error: None });
        let refused = Some("the console sends only files the chunk names literally".to_string());
        assert_eq!(files[1], Request::File { id: 1, content: None, error: refused });
        let Request::File { content: None, error: Some(error), .. } = &files[2] else { panic!("{:?}", files[2]) };
        assert!(error.contains("No such file"), "{error}");
        assert_eq!(files.len(), 3);
    }

    #[test]
    fn a_second_ctrl_c_abandons_an_evaluation_the_node_does_not_cancel() {
        let node = FakeNode::new(|_| vec![]);
        let mut session = Session::new(Box::new(node));
        let outcome = session.eval("while true do end", &mut no_events, &mut || true).unwrap();
        assert_eq!(outcome, Outcome::Abandoned);
    }

    #[test]
    fn complete_returns_candidates_for_its_id() {
        let node = FakeNode::new(|request| match request {
            Request::Complete { id, line } => {
                assert_eq!(line, "chain(\"main\"):he");
                vec![format!(
                    r#"{{"op":"completions","id":{id},"start":14,"candidates":["head","height","bad\u001b"]}}"#
                )]
            }
            _ => vec![],
        });
        let mut session = Session::new(Box::new(node));
        let completions = session.complete("chain(\"main\"):he", Duration::from_millis(50)).unwrap();
        assert_eq!(completions, Some(Completions { start: 14, candidates: vec!["head".into(), "height".into()] }));
    }

    #[test]
    fn complete_rejects_a_start_outside_the_line_and_times_out_without_answer() {
        let node = FakeNode::new(|request| match request {
            Request::Complete { id, .. } => vec![format!(r#"{{"op":"completions","id":{id},"start":99}}"#)],
            _ => vec![],
        });
        let mut session = Session::new(Box::new(node));
        assert_eq!(session.complete("no", Duration::from_millis(50)).unwrap(), None);
        let mut silent = Session::new(Box::new(FakeNode::new(|_| vec![])));
        assert_eq!(silent.complete("no", Duration::from_millis(20)).unwrap(), None);
    }

    #[test]
    fn a_closed_connection_is_an_error() {
        let mut session = Session::new(Box::new(FakeNode::closed()));
        assert_eq!(session.eval("x", &mut no_events, &mut || false), Err(TransportError::Closed));
        assert_eq!(session.poll_idle(Duration::ZERO), Err(TransportError::Closed));
    }
}
