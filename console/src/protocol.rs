//! Encode the console's requests and decode the node's answers on `/v1/admin/console`.
//!
//! One JSON object per WebSocket text frame; `op` names the message, `id` ties an
//! answer to its request.

use crate::json::Json;
use serde::{Deserialize, Serialize};

/// The console endpoint, relative to the node's API.
pub const CONSOLE_PATH: &str = "/v1/admin/console";

/// The largest message the console accepts from the node (bytes).
pub const MESSAGE_BYTES_MAX: usize = 16 << 20;

/// A request from the console to the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Evaluate a chunk of Lua in the session.
    Eval {
        /// Request id.
        id: u64,
        /// The whole chunk.
        code: String,
    },
    /// Complete the word that ends `line`.
    Complete {
        /// Request id.
        id: u64,
        /// The line up to the cursor.
        line: String,
    },
    /// Cancel the running evaluation `id`.
    Cancel {
        /// The id of the evaluation to cancel.
        id: u64,
    },
    /// The file evaluation `id` asked for with `read_file`: its content, or why not.
    File {
        /// The evaluation's id.
        id: u64,
        /// The file's text.
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        /// Why there is no content.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl Request {
    /// The JSON text of the request.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a request always serializes")
    }
}

/// Why an evaluation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// The chunk does not parse.
    Syntax,
    /// The chunk raised an error.
    Runtime,
    /// The chunk ran out of instructions, memory or time.
    Limit,
    /// The evaluation was cancelled.
    Cancelled,
    /// The session may not do that.
    Denied,
    /// A kind this console does not know.
    #[serde(other)]
    Other,
}

/// A message from the node.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Answer {
    /// Evaluation `id` returned.
    Result {
        /// Request id.
        id: u64,
        /// The returned values.
        #[serde(default)]
        values: Vec<Json>,
        /// What the chunk printed, line by line.
        #[serde(default)]
        printed: Vec<String>,
    },
    /// Evaluation `id` failed.
    Error {
        /// Request id.
        id: u64,
        /// Why.
        kind: ErrorKind,
        /// Lua's message, `console:LINE: ...`.
        message: String,
        /// The chunk is unfinished: read another line and send the whole chunk again.
        #[serde(default)]
        incomplete: bool,
    },
    /// Completion candidates for request `id`.
    Completions {
        /// Request id.
        id: u64,
        /// Byte offset in the line where the completed word begins.
        start: usize,
        /// Words that may replace the line from `start`.
        #[serde(default)]
        candidates: Vec<String>,
    },
    /// An event streamed while evaluation `id` runs `watch(...)`.
    Event {
        /// Request id.
        id: u64,
        /// The event.
        event: Json,
    },
    /// Evaluation `id` needs a file it names (`strategy("x.lua")`, `from_key_file`), read
    /// where the console runs.
    #[serde(rename = "read_file")]
    ReadFile {
        /// Request id.
        id: u64,
        /// The path as the chunk gives it (relative to the console's working directory).
        path: String,
    },
}

impl Answer {
    /// Decode one text frame.
    pub fn decode(text: &str) -> Result<Answer, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The id of the request this answers.
    pub fn id(&self) -> u64 {
        match self {
            Answer::Result { id, .. }
            | Answer::Error { id, .. }
            | Answer::Completions { id, .. }
            | Answer::Event { id, .. }
            | Answer::ReadFile { id, .. } => *id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_encode_as_the_protocol_says() {
        let eval = Request::Eval { id: 1, code: "return chain(\"main\"):head()".into() };
        assert_eq!(eval.encode(), r#"{"op":"eval","id":1,"code":"return chain(\"main\"):head()"}"#);
        let complete = Request::Complete { id: 2, line: "chain(\"main\"):he".into() };
        assert_eq!(complete.encode(), r#"{"op":"complete","id":2,"line":"chain(\"main\"):he"}"#);
        assert_eq!(Request::Cancel { id: 1 }.encode(), r#"{"op":"cancel","id":1}"#);
        let file = Request::File { id: 3, content: Some("x".into()), error: None };
        assert_eq!(file.encode(), r#"{"op":"file","id":3,"content":"x"}"#);
        let refused = Request::File { id: 3, content: None, error: Some("no".into()) };
        assert_eq!(refused.encode(), r#"{"op":"file","id":3,"error":"no"}"#);
        let asked = Answer::decode(r#"{"op":"read_file","id":3,"path":"s.lua"}"#).unwrap();
        assert_eq!(asked, Answer::ReadFile { id: 3, path: "s.lua".into() });
    }

    #[test]
    fn result_decodes_with_values_in_order_and_printed_lines() {
        let answer = Answer::decode(r#"{"op":"result","id":7,"values":[{"b":1,"a":2},"x"],"printed":["hi"]}"#).unwrap();
        let Answer::Result { id, values, printed } = answer else { panic!("not a result") };
        assert_eq!((id, printed), (7, vec!["hi".to_string()]));
        assert_eq!(values[0].to_compact(), r#"{"b":1,"a":2}"#);
        assert_eq!(values[1], Json::String("x".into()));
    }

    #[test]
    fn result_without_values_or_printed_is_empty() {
        let answer = Answer::decode(r#"{"op":"result","id":3}"#).unwrap();
        assert_eq!(answer, Answer::Result { id: 3, values: vec![], printed: vec![] });
    }

    #[test]
    fn error_decodes_each_kind_and_incomplete() {
        for (text, kind) in [
            ("syntax", ErrorKind::Syntax),
            ("runtime", ErrorKind::Runtime),
            ("limit", ErrorKind::Limit),
            ("cancelled", ErrorKind::Cancelled),
            ("denied", ErrorKind::Denied),
            ("something-new", ErrorKind::Other),
        ] {
            let frame =
                format!(r#"{{"op":"error","id":4,"kind":"{text}","message":"console:1: x","incomplete":true}}"#);
            let answer = Answer::decode(&frame).unwrap();
            assert_eq!(answer, Answer::Error { id: 4, kind, message: "console:1: x".into(), incomplete: true });
        }
        let answer = Answer::decode(r#"{"op":"error","id":4,"kind":"runtime","message":"m"}"#).unwrap();
        assert!(matches!(answer, Answer::Error { incomplete: false, .. }));
    }

    #[test]
    fn completions_and_events_decode() {
        let answer =
            Answer::decode(r#"{"op":"completions","id":5,"start":14,"candidates":["head","height"]}"#).unwrap();
        assert_eq!(answer, Answer::Completions { id: 5, start: 14, candidates: vec!["head".into(), "height".into()] });
        let answer = Answer::decode(r#"{"op":"event","id":6,"event":{"block":9}}"#).unwrap();
        assert_eq!(answer.id(), 6);
    }

    #[test]
    fn unknown_or_malformed_messages_are_errors_not_panics() {
        assert!(Answer::decode(r#"{"op":"teleport","id":1}"#).is_err());
        assert!(Answer::decode(r#"{"op":"result"}"#).is_err());
        assert!(Answer::decode("not json").is_err());
        assert!(Answer::decode(r#"{"op":"completions","id":1,"start":-1}"#).is_err());
    }
}
