//! Hold Ed25519 keys and compute the hashes and signatures the node uses.
//!
//! Key files hold the hex of a PKCS#8 document and are written with mode `0600`. Keys sign
//! with ring; signatures are checked with ed25519-zebra under the ZIP 215 rules, one at a
//! time ([`verify`]) or in batches ([`verify_batch`]) with the same verdicts.

use nest_sdk::{Hash32, PublicKey, Signature};
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::{fs, io::Write, os::unix::fs::OpenOptionsExt, path::Path};

/// A key file could not be read, written or parsed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold an Ed25519 key in the expected form.
    #[error("{path}: not an Ed25519 key file ({reason})")]
    Invalid {
        /// The key file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Key generation failed (no system randomness).
    #[error("key generation failed: {0}")]
    Generate(String),
}

/// An Ed25519 key pair: a node key, an account key or a vendor key.
pub struct SecretKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| KeyError::Generate(e.to_string()))?;
        Self::from_pkcs8(document.as_ref()).map_err(KeyError::Generate)
    }

    /// A key derived from a 32-byte seed (deterministic; for tests and benchmarks).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32 bytes are an Ed25519 seed");
        // PKCS#8 v1 wrapper for a raw Ed25519 seed (RFC 8410).
        let mut pkcs8 = hex::decode("302e020100300506032b657004220420").expect("constant hex");
        pkcs8.extend_from_slice(&seed);
        Self { pair, pkcs8 }
    }

    /// Parses a PKCS#8 document.
    pub fn from_pkcs8(document: &[u8]) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(document).map_err(|e| e.to_string())?;
        Ok(Self { pair, pkcs8: document.to_vec() })
    }

    /// Reads a key file written by [`SecretKey::write`].
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let text =
            fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|reason| KeyError::Invalid { path: path.display().to_string(), reason })
    }

    /// Parses the text of a key file written by [`SecretKey::write`] (read elsewhere, e.g.
    /// where the console runs).
    pub fn parse(text: &str) -> Result<Self, String> {
        let document = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
        Self::from_pkcs8(&document)
    }

    /// Writes the key to a new file readable only by its owner; refuses to overwrite.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io { path: path.display().to_string(), source };
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
        writeln!(file, "{}", hex::encode(&self.pkcs8)).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(out)
    }

    /// The 32-byte Ed25519 seed this key was made from (it derives the node's libp2p identity).
    ///
    /// Both PKCS#8 forms ring reads (v1, and v2 with the public key) put the seed in an
    /// OCTET STRING right after the 16-byte header; the seed is checked against the public key.
    pub fn seed(&self) -> Result<[u8; 32], String> {
        const SEED_HEADER: [u8; 4] = [0x04, 0x22, 0x04, 0x20];
        let seed: [u8; 32] = match self.pkcs8.get(12..48) {
            Some(bytes) if bytes[..4] == SEED_HEADER => bytes[4..].try_into().expect("32 bytes"),
            _ => return Err("PKCS#8 document does not hold an Ed25519 seed where expected".to_string()),
        };
        if SecretKey::from_seed(seed).public_key() != self.public_key() {
            return Err("the seed in the PKCS#8 document does not match its public key".to_string());
        }
        Ok(seed)
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        Signature(out)
    }
}

/// Checks an Ed25519 signature under the ZIP 215 rules, the rules [`verify_batch`] applies
/// to many signatures at once: `s` must be canonical, `A` and `R` may be any encoding of a
/// curve point, and the equation holds after multiplying by the cofactor. Every signature
/// made by an RFC 8032 signer passes; what ZIP 215 adds over RFC 8032's checks is fixed, so
/// every node judges every signature alike (docs/adr/0010-ed25519-batch-verification.md).
pub fn verify(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    ed25519_zebra::VerificationKey::try_from(key.0)
        .and_then(|key| key.verify(&ed25519_zebra::Signature::from_bytes(&signature.0), message))
        .is_ok()
}

/// Checks many Ed25519 signatures together: true when every one passes [`verify`].
///
/// One random linear combination of all the verification equations (weights from the
/// thread's CSPRNG, so no signer can aim at them) is checked with one multiscalar
/// multiplication, and signatures by the same key share its term: a batch costs about half
/// of checking each alone. Under ZIP 215 the batch and the single check agree (except with
/// probability about 2^-128 for a batch holding a bad signature); false says only that some
/// signature is bad, not which: check them one by one to find out.
pub fn verify_batch<'a>(items: impl IntoIterator<Item = (&'a PublicKey, &'a [u8], &'a Signature)>) -> bool {
    let mut batch = ed25519_zebra::batch::Verifier::new();
    for (key, message, signature) in items {
        let key = ed25519_zebra::VerificationKeyBytes::from(key.0);
        batch.queue((key, ed25519_zebra::Signature::from_bytes(&signature.0), message));
    }
    batch.verify(rand::rng()).is_ok()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Hash32 {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    Hash32(out)
}

/// SHA-256 over several parts, fed in order (no copying into one buffer).
pub fn sha256_parts(parts: &[&[u8]]) -> Hash32 {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    Hash32(out)
}

/// Parses an account (an Ed25519 public key) written as 64 hex characters.
pub fn account_from_hex(text: &str) -> Result<PublicKey, String> {
    hex32(text).map(PublicKey)
}

/// Parses a hash (a transaction hash, a device µID, a lock id) written as 64 hex characters.
pub fn hash_from_hex(text: &str) -> Result<Hash32, String> {
    hex32(text).map(Hash32)
}

/// 32 bytes from exactly 64 hex characters (surrounding whitespace ignored); the message
/// says what is wrong with the text: its length or its first character that is not hex.
fn hex32(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let length = text.chars().count();
    if length != 64 {
        return Err(format!("must be 64 hex characters, got {length}"));
    }
    if let Some((position, character)) = text.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!("must be 64 hex characters, got {character:?} at position {}", position + 1));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|e| format!("must be 64 hex characters: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_is_not_64_hex_characters_is_refused_saying_so() {
        let key = "ab".repeat(32);
        assert_eq!(account_from_hex(&key).unwrap().0, [0xab; 32]);
        assert_eq!(hash_from_hex(&format!(" {} ", key.to_uppercase())).unwrap().0, [0xab; 32]);
        assert_eq!(account_from_hex("abc").unwrap_err(), "must be 64 hex characters, got 3");
        assert_eq!(account_from_hex(&key[..63]).unwrap_err(), "must be 64 hex characters, got 63");
        assert_eq!(account_from_hex("").unwrap_err(), "must be 64 hex characters, got 0");
        let bad = format!("{}xy", &key[..62]);
        assert_eq!(hash_from_hex(&bad).unwrap_err(), "must be 64 hex characters, got 'x' at position 63");
        let accented = format!("é{}", &key[..63]);
        assert_eq!(account_from_hex(&accented).unwrap_err(), "must be 64 hex characters, got 'é' at position 1");
    }

    #[test]
    fn key_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = SecretKey::generate().unwrap();
        key.write(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        let back = SecretKey::read(&path).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert!(key.write(&path).is_err(), "an existing key file must not be overwritten");
    }

    #[test]
    fn seeded_key_signs_and_verifies() {
        let key = SecretKey::from_seed([7; 32]);
        let signature = key.sign(b"hello");
        assert!(verify(&key.public_key(), b"hello", &signature));
        assert!(!verify(&key.public_key(), b"hellO", &signature));
        let reparsed = SecretKey::from_pkcs8(&key.pkcs8).unwrap();
        assert_eq!(reparsed.public_key(), key.public_key());
    }

    #[test]
    fn seed_is_recovered_from_both_pkcs8_forms() {
        let key = SecretKey::from_seed([9; 32]);
        assert_eq!(key.seed().unwrap(), [9; 32]);
        let generated = SecretKey::generate().unwrap();
        let seed = generated.seed().unwrap();
        assert_eq!(SecretKey::from_seed(seed).public_key(), generated.public_key());
    }

    #[test]
    fn garbage_key_file_is_rejected_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        fs::write(&path, "zz").unwrap();
        let error = SecretKey::read(&path).err().unwrap().to_string();
        assert!(error.contains("bad.key") && error.contains("not hex"), "{error}");
    }
}
