//! Read, write, sign and verify plugin packages (`plugin.toml`, library, `plugin.sig`).
//!
//! A package is a directory holding the signed manifest `plugin.toml`, the library it
//! names, and `plugin.sig`: one line of hex, an Ed25519 signature by the vendor key over
//! [`SIGNING_DOMAIN`] followed by the manifest's canonical bytes
//! ([`PackageManifest::canonical_bytes`]). Any field edited after signing breaks the
//! signature. These are the vendor's tools (`nestd plugin ...`, see [`cli`]); the
//! loader ([`crate::loader`]) runs the same checks through [`verify`]'s core.

pub mod cli;
pub mod loader;
mod manifest;

pub use manifest::{
    MANIFEST_BYTES_MAX, ManifestError, PackageManifest, SourceManifest, check_library_name, toml_string,
};

use crate::loader::{LoadError, TrustStore};
use nest_ledger::crypto::{self, KeyError, SecretKey};
use nest_sdk::{ABI_COMPATIBLE_MIN, ABI_VERSION, Hash32, PublicKey, Signature};
use std::{
    fmt::Write as _,
    fs,
    io::{self, Read},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// File name of the manifest inside a package.
pub const MANIFEST_FILE: &str = "plugin.toml";
/// File name of the signature inside a package.
pub const SIGNATURE_FILE: &str = "plugin.sig";
/// Prefix of every signed message, so a manifest signature can mean nothing else.
pub const SIGNING_DOMAIN: &[u8] = b"nest/plugin-manifest/v1\n";
/// Largest `plugin.sig` the host reads.
const SIGNATURE_BYTES_MAX: u64 = 1024;

/// A package that passed every check short of loading its library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPackage {
    /// The package directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: PackageManifest,
    /// Path of its library.
    pub library_path: PathBuf,
    /// SHA-256 of the library bytes that were checked.
    pub library_sha256: Hash32,
    /// Name of the trusted vendor who signed it; `None` when checked as unsigned.
    pub signed_by: Option<String>,
}

/// Why a vendor tool (`keygen`, `pack`, `sign`) failed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A package check failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The vendor key could not be read or written.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A package file could not be written.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

fn write_error(path: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Io { path: path.to_path_buf(), source }
}

/// The message a vendor signs for `manifest`.
pub fn signing_message(manifest: &PackageManifest) -> Vec<u8> {
    let mut message = SIGNING_DOMAIN.to_vec();
    message.extend_from_slice(&manifest.canonical_bytes());
    message
}

/// Whether `signature` by the manifest's vendor key covers the manifest.
pub fn signature_matches(manifest: &PackageManifest, signature: &Signature) -> bool {
    crypto::verify(&manifest.vendor_key, &signing_message(manifest), signature)
}

/// Reads a small text file, refusing more than `max` bytes.
fn read_small(path: &Path, max: u64) -> Result<String, LoadError> {
    let io = |source| LoadError::Io { path: path.to_path_buf(), source };
    let mut text = String::new();
    fs::File::open(path).map_err(io)?.take(max + 1).read_to_string(&mut text).map_err(io)?;
    if text.len() as u64 > max {
        return Err(io(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {max} bytes"))));
    }
    Ok(text)
}

/// Reads and checks `plugin.toml` in `dir`.
pub fn read_manifest(dir: &Path) -> Result<PackageManifest, LoadError> {
    let path = dir.join(MANIFEST_FILE);
    let text = read_small(&path, MANIFEST_BYTES_MAX)?;
    PackageManifest::parse(&text).map_err(|error| LoadError::Manifest { detail: error.at(&path), path })
}

/// Reads and checks a crate's source `plugin.toml`.
pub fn read_source_manifest(path: &Path) -> Result<SourceManifest, LoadError> {
    let text = read_small(path, MANIFEST_BYTES_MAX)?;
    SourceManifest::parse(&text)
        .map_err(|error| LoadError::Manifest { detail: error.at(path), path: path.to_path_buf() })
}

/// Writes `manifest` as canonical `plugin.toml` into `dir` (no signature).
pub fn write_manifest(dir: &Path, manifest: &PackageManifest) -> Result<(), PackageError> {
    let path = dir.join(MANIFEST_FILE);
    fs::write(&path, manifest.to_canonical_toml()).map_err(write_error(&path))
}

/// Reads `plugin.sig` in `dir`; `None` when there is none.
pub fn read_signature(dir: &Path) -> Result<Option<Signature>, LoadError> {
    let path = dir.join(SIGNATURE_FILE);
    match fs::symlink_metadata(&path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LoadError::Io { path, source }),
        Ok(_) => {}
    }
    let text = read_small(&path, SIGNATURE_BYTES_MAX)?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    if line.contains('\n') {
        return Err(LoadError::SignatureFile { path, reason: "expected one line of hex".into() });
    }
    Signature::from_hex(line).map(Some).map_err(|reason| LoadError::SignatureFile { path, reason })
}

/// Writes `signature` as `plugin.sig` into `dir`.
pub fn write_signature(dir: &Path, signature: &Signature) -> Result<(), PackageError> {
    let path = dir.join(SIGNATURE_FILE);
    fs::write(&path, format!("{}\n", signature.to_hex())).map_err(write_error(&path))
}

/// Runs every check of a package short of loading its library and returns the library
/// bytes that were hashed, so that exactly those bytes get loaded.
pub(crate) fn check(
    dir: &Path,
    trust: &TrustStore,
    allow_unsigned: bool,
) -> Result<(VerifiedPackage, Vec<u8>), LoadError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = read_manifest(dir)?;
    let signed_by = if allow_unsigned { None } else { Some(check_signature(dir, &manifest_path, &manifest, trust)?) };
    if !(ABI_COMPATIBLE_MIN..=ABI_VERSION).contains(&manifest.sdk_abi) {
        return Err(LoadError::SdkAbi { path: manifest_path, declared: manifest.sdk_abi, host: ABI_VERSION });
    }
    let library_path = dir.join(&manifest.library);
    let bytes = loader::read_library(&library_path)?;
    let actual = crypto::sha256(&bytes);
    if actual != manifest.library_sha256 {
        return Err(LoadError::HashMismatch { path: library_path, expected: manifest.library_sha256, actual });
    }
    let verified =
        VerifiedPackage { dir: dir.to_path_buf(), manifest, library_path, library_sha256: actual, signed_by };
    Ok((verified, bytes))
}

/// Checks presence, vendor and validity of `plugin.sig`; returns the vendor's name.
fn check_signature(
    dir: &Path,
    manifest_path: &Path,
    manifest: &PackageManifest,
    trust: &TrustStore,
) -> Result<String, LoadError> {
    let signature_path = dir.join(SIGNATURE_FILE);
    let signature = read_signature(dir)?.ok_or_else(|| LoadError::Unsigned { path: signature_path.clone() })?;
    let vendor = trust
        .vendor_name(&manifest.vendor_key)
        .ok_or_else(|| LoadError::UnknownVendor { path: manifest_path.to_path_buf(), key: manifest.vendor_key })?;
    if !signature_matches(manifest, &signature) {
        return Err(LoadError::BadSignature { path: signature_path });
    }
    Ok(vendor.to_string())
}

/// Runs everything the loader checks before it opens the library: manifest, signature
/// by a trusted vendor, ABI version, no symlink, library hash.
pub fn verify(dir: &Path, trust: &TrustStore) -> Result<VerifiedPackage, LoadError> {
    check(dir, trust, false).map(|(verified, _)| verified)
}

/// Generates a vendor key: the secret key in `out` (mode 0600, never overwritten) and
/// the public key's hex in `<out>.pub`. Returns the public key.
pub fn keygen(out: &Path) -> Result<PublicKey, PackageError> {
    let key = SecretKey::generate()?;
    key.write(out)?;
    let mut public_path = out.as_os_str().to_owned();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    let public_key = key.public_key();
    fs::write(&public_path, format!("{}\n", public_key.to_hex())).map_err(write_error(&public_path))?;
    Ok(public_key)
}

/// Builds a signed package in `out_dir` from a crate's source manifest and its built
/// library. Refuses a library whose root module provides other kinds than the source
/// manifest declares; `sdk_abi` is taken from the root module.
pub fn pack(
    source_manifest: &Path,
    library: &Path,
    out_dir: &Path,
    key: &SecretKey,
) -> Result<PackageManifest, PackageError> {
    let source = read_source_manifest(source_manifest)?;
    let bytes = loader::read_library(library)?;
    let module = loader::inspect_library(&bytes, library, &source.name)?;
    if loader::kind_mask(&module.kinds) != loader::kind_mask(&source.kinds) {
        return Err(LoadError::KindMismatch {
            path: library.to_path_buf(),
            declared: source.kinds,
            provided: module.kinds,
        }
        .into());
    }
    fs::create_dir_all(out_dir).map_err(write_error(out_dir))?;
    write_library(&out_dir.join(&source.library), &bytes)?;
    let manifest = PackageManifest {
        name: source.name,
        version: source.version,
        kinds: source.kinds,
        description: source.description,
        sdk_abi: module.abi_version,
        library: source.library,
        library_sha256: crypto::sha256(&bytes),
        vendor_key: key.public_key(),
        tolerates: source.tolerates,
    };
    write_manifest(out_dir, &manifest)?;
    write_signature(out_dir, &key.sign(&signing_message(&manifest)))?;
    Ok(manifest)
}

/// Writes a fresh regular file (an existing file or symlink at `path` is replaced, never
/// written through).
pub fn write_library(path: &Path, bytes: &[u8]) -> Result<(), PackageError> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            return Err(write_error(path)(error));
        }
        _ => {}
    }
    let mut file =
        fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(path).map_err(write_error(path))?;
    io::Write::write_all(&mut file, bytes).map_err(write_error(path))
}

/// Re-signs the package in `dir` with `key`: checks the library hash, sets
/// `vendor_key`, rewrites `plugin.toml` canonically and writes `plugin.sig`.
pub fn sign(dir: &Path, key: &SecretKey) -> Result<PackageManifest, PackageError> {
    let mut manifest = read_manifest(dir)?;
    let library_path = dir.join(&manifest.library);
    let actual = crypto::sha256(&loader::read_library(&library_path)?);
    if actual != manifest.library_sha256 {
        return Err(LoadError::HashMismatch { path: library_path, expected: manifest.library_sha256, actual }.into());
    }
    manifest.vendor_key = key.public_key();
    write_manifest(dir, &manifest)?;
    write_signature(dir, &key.sign(&signing_message(&manifest)))?;
    Ok(manifest)
}

/// A readable report of the package in `dir`: its fields, whether the library hash
/// matches and whether the signature is valid and by which key. Fails only when
/// `plugin.toml` cannot be read or parsed.
pub fn inspect(dir: &Path) -> Result<String, LoadError> {
    let manifest = read_manifest(dir)?;
    let kinds: Vec<&str> = manifest.kinds.iter().map(|kind| kind.name()).collect();
    let abi = if manifest.sdk_abi == ABI_VERSION {
        "matches this host".to_string()
    } else {
        format!("DIFFERS from this host's {ABI_VERSION}")
    };
    let mut out = String::new();
    let mut row = |key: &str, value: String| {
        let _ = writeln!(out, "{key:<15}{value}");
    };
    row("package", dir.display().to_string());
    row("name", manifest.name.clone());
    row("version", manifest.version.clone());
    row("kinds", kinds.join(", "));
    row("description", manifest.description.clone());
    row("sdk_abi", format!("{} ({abi})", manifest.sdk_abi));
    row("library", manifest.library.clone());
    row("library_sha256", format!("{} ({})", manifest.library_sha256, hash_status(dir, &manifest)));
    row("vendor_key", manifest.vendor_key.to_hex());
    row("signature", signature_status(dir, &manifest));
    Ok(out)
}

fn hash_status(dir: &Path, manifest: &PackageManifest) -> String {
    match loader::read_library(&dir.join(&manifest.library)) {
        Ok(bytes) => {
            let actual = crypto::sha256(&bytes);
            if actual == manifest.library_sha256 {
                "matches the library".into()
            } else {
                format!("MISMATCH: the library hashes to {actual}")
            }
        }
        Err(error) => format!("library unreadable: {error}"),
    }
}

fn signature_status(dir: &Path, manifest: &PackageManifest) -> String {
    match read_signature(dir) {
        Ok(None) => "missing (unsigned package)".into(),
        Ok(Some(signature)) if signature_matches(manifest, &signature) => {
            format!("valid, by vendor key {}", manifest.vendor_key)
        }
        Ok(Some(_)) => "INVALID: does not match plugin.toml (edited after signing?)".into(),
        Err(error) => format!("unreadable: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nest_sdk::PluginKind;

    fn package_with_library(dir: &Path, key: &SecretKey) -> PackageManifest {
        let library = b"not really an ELF file".to_vec();
        fs::write(dir.join("libx.so"), &library).unwrap();
        let manifest = PackageManifest {
            name: "x".into(),
            version: "0.1.0".into(),
            kinds: vec![PluginKind::Radio],
            description: "test package".into(),
            sdk_abi: ABI_VERSION,
            library: "libx.so".into(),
            library_sha256: crypto::sha256(&library),
            vendor_key: PublicKey::default(),
            tolerates: Vec::new(),
        };
        write_manifest(dir, &manifest).unwrap();
        sign(dir, key).unwrap()
    }

    fn trusting(key: &SecretKey) -> TrustStore {
        let mut trust = TrustStore::new();
        trust.add("acme", key.public_key());
        trust
    }

    #[test]
    fn signed_package_verifies_and_names_its_vendor() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_seed([3; 32]);
        let manifest = package_with_library(dir.path(), &key);
        assert_eq!(manifest.vendor_key, key.public_key());
        let verified = verify(dir.path(), &trusting(&key)).unwrap();
        assert_eq!(verified.signed_by.as_deref(), Some("acme"));
        assert_eq!(verified.manifest, manifest);
    }

    #[test]
    fn signature_covers_domain_and_canonical_bytes() {
        let key = SecretKey::from_seed([4; 32]);
        let dir = tempfile::tempdir().unwrap();
        let manifest = package_with_library(dir.path(), &key);
        let signature = read_signature(dir.path()).unwrap().unwrap();
        let mut message = b"nest/plugin-manifest/v1\n".to_vec();
        message.extend_from_slice(manifest.to_canonical_toml().as_bytes());
        assert!(crypto::verify(&key.public_key(), &message, &signature));
        assert!(!crypto::verify(&key.public_key(), manifest.to_canonical_toml().as_bytes(), &signature));
    }

    #[test]
    fn any_field_edited_after_signing_breaks_the_signature() {
        let key = SecretKey::from_seed([5; 32]);
        let dir = tempfile::tempdir().unwrap();
        let manifest = package_with_library(dir.path(), &key);
        let signature = read_signature(dir.path()).unwrap().unwrap();
        let edits: [fn(&mut PackageManifest); 5] = [
            |m| m.name.push('!'),
            |m| m.version = "0.1.1".into(),
            |m| m.kinds.push(PluginKind::Market),
            |m| m.description.clear(),
            |m| m.sdk_abi += 1,
        ];
        for edit in edits {
            let mut edited = manifest.clone();
            edit(&mut edited);
            assert!(!signature_matches(&edited, &signature), "{edited:?}");
        }
        assert!(signature_matches(&manifest, &signature));
    }

    #[test]
    fn verify_refuses_unsigned_unknown_vendor_and_edits() {
        let key = SecretKey::from_seed([6; 32]);
        let dir = tempfile::tempdir().unwrap();
        package_with_library(dir.path(), &key);

        let stranger = SecretKey::from_seed([7; 32]);
        let error = verify(dir.path(), &trusting(&stranger)).unwrap_err();
        assert!(matches!(error, LoadError::UnknownVendor { .. }), "{error}");

        let manifest_path = dir.path().join(MANIFEST_FILE);
        let text = fs::read_to_string(&manifest_path).unwrap();
        fs::write(&manifest_path, text.replace("test package", "test packagE")).unwrap();
        let error = verify(dir.path(), &trusting(&key)).unwrap_err().to_string();
        assert!(error.contains("plugin.sig") && error.contains("edited after signing"), "{error}");

        fs::remove_file(dir.path().join(SIGNATURE_FILE)).unwrap();
        let error = verify(dir.path(), &trusting(&key)).unwrap_err().to_string();
        assert!(error.contains("plugin.sig: missing"), "{error}");
    }

    #[test]
    fn malformed_signature_file_is_named() {
        let key = SecretKey::from_seed([8; 32]);
        let dir = tempfile::tempdir().unwrap();
        package_with_library(dir.path(), &key);
        fs::write(dir.path().join(SIGNATURE_FILE), "abcd\nabcd\n").unwrap();
        let error = verify(dir.path(), &trusting(&key)).unwrap_err().to_string();
        assert!(error.contains("plugin.sig: not a signature"), "{error}");
    }

    #[test]
    fn parse_error_names_file_and_line() {
        let key = SecretKey::from_seed([9; 32]);
        let dir = tempfile::tempdir().unwrap();
        package_with_library(dir.path(), &key);
        let manifest_path = dir.path().join(MANIFEST_FILE);
        let text = fs::read_to_string(&manifest_path).unwrap();
        fs::write(&manifest_path, format!("{text}color = \"red\"\n")).unwrap();
        let error = verify(dir.path(), &trusting(&key)).unwrap_err().to_string();
        let expected = format!("{}:9: unknown field `color`", manifest_path.display());
        assert!(error.starts_with(&expected), "{error}");
    }

    #[test]
    fn sign_refuses_a_library_that_does_not_match() {
        let key = SecretKey::from_seed([10; 32]);
        let dir = tempfile::tempdir().unwrap();
        package_with_library(dir.path(), &key);
        fs::write(dir.path().join("libx.so"), b"changed").unwrap();
        let error = sign(dir.path(), &key).unwrap_err().to_string();
        assert!(error.contains("libx.so") && error.contains("SHA-256 mismatch"), "{error}");
    }

    #[test]
    fn keygen_writes_a_private_key_and_its_public_half() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("vendor.key");
        let public_key = keygen(&out).unwrap();
        let written = fs::read_to_string(dir.path().join("vendor.key.pub")).unwrap();
        assert_eq!(PublicKey::from_hex(&written).unwrap(), public_key);
        assert_eq!(SecretKey::read(&out).unwrap().public_key(), public_key);
        assert!(keygen(&out).is_err(), "keygen must not overwrite a key");
    }

    #[test]
    fn inspect_reports_hash_and_signature() {
        let key = SecretKey::from_seed([11; 32]);
        let dir = tempfile::tempdir().unwrap();
        package_with_library(dir.path(), &key);
        let report = inspect(dir.path()).unwrap();
        assert!(report.contains("matches the library"), "{report}");
        assert!(report.contains(&format!("valid, by vendor key {}", key.public_key())), "{report}");
        fs::write(dir.path().join("libx.so"), b"changed").unwrap();
        let report = inspect(dir.path()).unwrap();
        assert!(report.contains("MISMATCH"), "{report}");
    }
}
