//! Connect to the node's console endpoint over a WebSocket with the bearer token.

use crate::protocol::MESSAGE_BYTES_MAX;
use crate::session::{Transport, TransportError};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderValue, StatusCode, header::AUTHORIZATION};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How long connecting and the handshake may take (milliseconds).
pub const CONNECT_TIMEOUT_MS: u64 = 5000;
/// How long one write may block (milliseconds).
pub const WRITE_TIMEOUT_MS: u64 = 10_000;

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
        self.socket.send(Message::text(text)).map_err(transport_error)
    }

    fn receive(&mut self, wait: Duration) -> Result<Option<String>, TransportError> {
        let wait = Some(wait.max(Duration::from_millis(1)));
        if self.read_timeout != wait {
            self.socket.get_ref().set_read_timeout(wait).map_err(|e| TransportError::Io(e.to_string()))?;
            self.read_timeout = wait;
        }
        match self.socket.read() {
            Ok(Message::Text(text)) => Ok(Some(text.as_str().to_owned())),
            Ok(Message::Close(_)) => Err(TransportError::Closed),
            Ok(_) => Ok(None),
            Err(tungstenite::Error::Io(error))
                if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
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
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => TransportError::Closed,
        other => TransportError::Io(other.to_string()),
    }
}
