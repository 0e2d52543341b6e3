//! Guard the admin routes with a bearer token kept in a `0600` file in the data directory.
//!
//! Like a cookie file: the first start writes 32 random bytes (hex) to
//! `<data_dir>/api.token`, later starts reuse them, and a token file that group or others
//! can read is refused. Presented tokens are compared in constant time, and a missing
//! token gets the same answer as a wrong one.

use crate::http::unauthorized;
use axum::{
    extract::{Request, State},
    http::{HeaderMap, header::AUTHORIZATION},
    middleware::Next,
    response::Response,
};
use ring::rand::{SecureRandom, SystemRandom};
use std::{
    fs,
    io::Write,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};
use subtle::ConstantTimeEq;

/// The token file's name inside the data directory.
pub const TOKEN_FILE_NAME: &str = "api.token";
/// Random bytes in a token (written as twice as many hex characters).
pub const TOKEN_BYTES: usize = 32;

/// The token file could not be created or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading, creating or writing the file failed.
    #[error("{path}: {error}")]
    Io {
        /// The token file.
        path: PathBuf,
        /// The failure.
        error: std::io::Error,
    },
    /// The file's permissions let others read it.
    #[error(
        "{path}: readable by group or others (mode {mode:o}); run `chmod 600 {path}` or delete it to get a new token"
    )]
    Exposed {
        /// The token file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a token this node wrote.
    #[error("{path}: {message}")]
    Invalid {
        /// The token file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The admin API's bearer token.
pub struct Token {
    secret: Vec<u8>,
    id: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Reads `<data_dir>/api.token`, or creates it (mode `0600`) with a random token.
    pub fn ensure(data_dir: &Path) -> Result<Token, TokenError> {
        let path = data_dir.join(TOKEN_FILE_NAME);
        let io = |error| TokenError::Io { path: path.clone(), error };
        match fs::symlink_metadata(&path) {
            Ok(_) => Self::read(&path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(data_dir).map_err(io)?;
                Self::create(&path)
            }
            Err(error) => Err(io(error)),
        }
    }

    fn create(path: &Path) -> Result<Token, TokenError> {
        let io = |error| TokenError::Io { path: path.to_path_buf(), error };
        let mut bytes = [0u8; TOKEN_BYTES];
        SystemRandom::new().fill(&mut bytes).map_err(|_| TokenError::Invalid {
            path: path.to_path_buf(),
            message: "the system's random source failed".into(),
        })?;
        let text = hex::encode(bytes);
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
        file.write_all(format!("{text}\n").as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Token::from_secret(text.into_bytes()))
    }

    fn read(path: &Path) -> Result<Token, TokenError> {
        let io = |error| TokenError::Io { path: path.to_path_buf(), error };
        let invalid = |message: &str| TokenError::Invalid { path: path.to_path_buf(), message: message.into() };
        let metadata = fs::symlink_metadata(path).map_err(io)?;
        if !metadata.file_type().is_file() {
            return Err(invalid("not a regular file"));
        }
        let mode = metadata.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Exposed { path: path.to_path_buf(), mode });
        }
        let text = fs::read_to_string(path).map_err(io)?;
        let text = text.trim();
        if text.len() != 2 * TOKEN_BYTES || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(&format!("expected {} hex characters", 2 * TOKEN_BYTES)));
        }
        Ok(Token::from_secret(text.as_bytes().to_vec()))
    }

    /// A token with the given secret (tests and tools).
    pub fn from_secret(secret: Vec<u8>) -> Token {
        let id = crate::crypto::sha256(&secret).0;
        Token { secret, id }
    }

    /// Whether `presented` is this token, compared in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.secret.ct_eq(presented).into()
    }

    /// SHA-256 of the token: names it (rate limits, logs) without revealing it.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }
}

/// The SHA-256 of the token a request authenticated with (set by [`require_token`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenId(pub [u8; 32]);

/// The value of `Authorization: Bearer <token>`, if present.
pub fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| value[7..].trim_ascii())
}

/// Middleware: 401 unless the request carries the node's token; marks it with its [`TokenId`].
pub async fn require_token(State(token): State<Arc<Token>>, mut request: Request, next: Next) -> Response {
    if !bearer(request.headers()).is_some_and(|presented| token.matches(presented)) {
        return unauthorized();
    }
    request.extensions_mut().insert(TokenId(token.id()));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Token::ensure(&dir.path().join("data")).unwrap();
        let path = dir.path().join("data").join(TOKEN_FILE_NAME);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let again = Token::ensure(&dir.path().join("data")).unwrap();
        assert_eq!(first.id(), again.id());
        let text = fs::read_to_string(&path).unwrap();
        assert!(again.matches(text.trim().as_bytes()));
        assert!(!again.matches(b"nope"));
        assert!(!again.matches(&text.trim().as_bytes()[1..]));
    }

    #[test]
    fn token_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Token::ensure(dir.path()).unwrap();
        let path = dir.path().join(TOKEN_FILE_NAME);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let error = Token::ensure(dir.path()).unwrap_err().to_string();
        assert!(error.contains("readable by group or others (mode 640)"), "{error}");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_ignored() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some(&b"abc"[..]));
        headers.insert(AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&headers), Some(&b"abc"[..]));
        headers.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
