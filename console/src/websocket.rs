//! Connect to the node's console endpoint over a WebSocket with the bearer token.

use crate::protocol::MESSAGE_BYTES_MAX;
use crate::session::{Transport, TransportError};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::error::ProtocolError;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderValue, StatusCode, header::AUTHORIZATION};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How long connecting and the handshake may take (milliseconds).
pub const CONNECT_TIMEOUT_MS: u64 = 5000;
/// How long one write may block (milliseconds).
pub const WRITE_TIMEOUT_MS: u64 = 10_000;
/// How many times a send interrupted by a signal is flushed again.
pub const SEND_RETRIES_MAX: usize = 8;

/// The console could not open a session.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No node answered.
    #[error("cannot reach the node at {url}: {reason} (is it running? `nestd up` starts a devnet)")]
    Unreachable {
        /// The console URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The node refused the token.
    #[error("the node at {url} refused the token (HTTP {status}): use the api.token of this node's data directory")]
    Refused {
        /// The console URL.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// The node answered the upgrade with another status.
    #[error("the node at {url} answered HTTP {status}{hint}")]
    Status {
        /// The console URL.
        url: String,
        /// The status.
        status: u16,
        /// What it likely means.
        hint: &'static str,
    },
}

/// A WebSocket to the node's console endpoint.
pub struct WebSocketTransport {
    socket: WebSocket<TcpStream>,
    read_timeout: Option<Duration>,
}

impl WebSocketTransport {
    /// Open `url` (`ws://HOST:PORT/v1/admin/console`) with `Authorization: Bearer <token>`.
    pub fn connect(url: &str, token: &str) -> Result<WebSocketTransport, ConnectError> {
        let unreachable = |reason: String| ConnectError::Unreachable { url: url.to_string(), reason };
        let mut request = url.into_client_request().map_err(|e| unreachable(e.to_string()))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| unreachable(e.to_string()))?;
        request.headers_mut().insert(AUTHORIZATION, bearer);
        let host = request.uri().host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = request.uri().port_u16().unwrap_or(80);
        let stream = open_stream(&host, port).map_err(|e| unreachable(e.to_string()))?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MESSAGE_BYTES_MAX))
            .max_frame_size(Some(MESSAGE_BYTES_MAX));
        let (socket, _response) =
            tungstenite::client::client_with_config(request, stream, Some(config)).map_err(|error| match error {
                HandshakeError::Failure(tungstenite::Error::Http(response)) => status_error(url, response.status()),
                HandshakeError::Failure(error) => unreachable(error.to_string()),
                HandshakeError::Interrupted(_) => unreachable("the handshake timed out".into()),
            })?;
        socket.get_ref().set_read_timeout(None).map_err(|e| unreachable(e.to_string()))?;
        Ok(WebSocketTransport { socket, read_timeout: None })
    }
}

fn open_stream(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let timeout = Duration::from_millis(CONNECT_TIMEOUT_MS);
    let mut last_error = std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host}: no address"));
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(Duration::from_millis(WRITE_TIMEOUT_MS)))?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

fn status_error(url: &str, status: StatusCode) -> ConnectError {
    let url = url.to_string();
    let status = status.as_u16();
    match status {
        401 | 403 => ConnectError::Refused { url, status },
        404 => ConnectError::Status { url, status, hint: ": this node has no console endpoint (an older nestd?)" },
        _ => ConnectError::Status { url, status, hint: "" },
    }
}

impl Transport for WebSocketTransport {
    fn send(&mut self, text: &str) -> Result<(), TransportError> {
        let mut sent = self.socket.send(Message::text(text));
        // Ctrl-C interrupts the write system call; the frame stays queued, so flush again.
        for _ in 0..SEND_RETRIES_MAX {
            match sent {
                Err(tungstenite::Error::Io(error)) if error.kind() == std::io::ErrorKind::Interrupted => {
                    sent = self.socket.flush();
                }
                _ => break,
            }
        }
        sent.map_err(transport_error)
    }

    fn receive(&mut self, wait: Duration) -> Result<Option<String>, TransportError> {
        let wait = Some(wait.max(Duration::from_millis(1)));
        if self.read_timeout != wait {
            self.socket.get_ref().set_read_timeout(wait).map_err(|e| TransportError::Io(e.to_string()))?;
            self.read_timeout = wait;
        }
        match self.socket.read() {
            Ok(Message::Text(text)) => Ok(Some(text.as_str().to_owned())),
            Ok(Message::Close(_)) => {
                let _ = self.socket.flush();
                Err(TransportError::Closed)
            }
            Ok(_) => Ok(None),
            Err(tungstenite::Error::Io(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(error) => Err(transport_error(error)),
        }
    }

    fn close(&mut self) {
        let _ = self.socket.close(None);
        let _ = self.socket.flush();
    }
}

fn transport_error(error: tungstenite::Error) -> TransportError {
    match error {
        tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => TransportError::Closed,
        tungstenite::Error::Io(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            TransportError::Closed
        }
        other => TransportError::Io(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use tungstenite::handshake::server::{ErrorResponse, Request, Response};

    /// A node that accepts one connection with `token` and echoes each frame back
    /// upper-cased, then closes.
    fn node(token: &'static str) -> (String, std::thread::JoinHandle<Option<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/v1/admin/console", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            // The callback's signature is tungstenite's.
            #[allow(clippy::result_large_err)]
            let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
                assert_eq!(request.uri().path(), "/v1/admin/console");
                let authorized =
                    request.headers().get(AUTHORIZATION).is_some_and(|v| v == format!("Bearer {token}").as_str());
                if authorized {
                    Ok(response)
                } else {
                    let mut refusal = ErrorResponse::new(None);
                    *refusal.status_mut() = StatusCode::UNAUTHORIZED;
                    Err(refusal)
                }
            };
            let mut socket = tungstenite::accept_hdr(stream, check).ok()?;
            let Message::Text(text) = socket.read().ok()? else { return None };
            socket.send(Message::text(text.as_str().to_uppercase())).ok()?;
            socket.close(None).ok()?;
            while socket.read().is_ok() {}
            Some(text.as_str().to_owned())
        });
        (url, handle)
    }

    #[test]
    fn the_token_is_sent_as_a_bearer_header_and_frames_round_trip() {
        let (url, node) = node("secret");
        let mut transport = WebSocketTransport::connect(&url, "secret").unwrap();
        assert_eq!(transport.receive(Duration::from_millis(10)).unwrap(), None);
        transport.send(r#"{"op":"eval"}"#).unwrap();
        let mut answer = None;
        while answer.is_none() {
            answer = transport.receive(Duration::from_millis(100)).unwrap();
        }
        assert_eq!(answer.as_deref(), Some(r#"{"OP":"EVAL"}"#));
        assert_eq!(transport.receive(Duration::from_secs(5)), Err(TransportError::Closed));
        assert_eq!(node.join().unwrap().as_deref(), Some(r#"{"op":"eval"}"#));
    }

    #[test]
    fn a_wrong_token_is_refused_with_a_clear_message() {
        let (url, node) = node("secret");
        let error = WebSocketTransport::connect(&url, "guess").err().expect("refused");
        assert!(matches!(error, ConnectError::Refused { status: 401, .. }), "{error}");
        assert!(error.to_string().contains("refused the token"));
        let _ = node.join();
    }

    #[test]
    fn no_node_listening_is_unreachable() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("ws://127.0.0.1:{port}/v1/admin/console");
        let error = WebSocketTransport::connect(&url, "t").err().expect("unreachable");
        assert!(matches!(error, ConnectError::Unreachable { .. }), "{error}");
        assert!(error.to_string().contains("nestd up"));
    }
}
