//! Load verified plugin packages into the process, exactly the bytes that were checked.
//!
//! [`load`] checks a package directory in a fixed order, all before any plugin code
//! runs: `plugin.toml` parses, the library name is a plain file name, `plugin.sig` is
//! present, the vendor key is trusted, the signature covers the canonical manifest,
//! `sdk_abi` is ours, the library is a regular file (no symlink) whose bytes hash to
//! `library_sha256`. Those bytes — read once — go into a sealed memfd, and the dynamic
//! loader opens that memfd, so nothing can change the file between check and load.
//! abi_stable then checks the root module's layout; the module's `abi_version` and
//! `kinds` must equal the manifest. Only then is `describe()` called.
//!
//! **Libraries are never unloaded.** Disabling a plugin drops its instances; the code
//! stays mapped (and its memfd open) until the process exits.

use crate as package;
use crate::PackageManifest;
use abi_stable::{
    library::{LibHeader, LibraryError, RootModule, lib_header_from_path},
    std_types::RStr,
};
use nest_sdk::{
    Hash32, Host, PluginError, PluginInfo, PluginKind, PluginModuleRef, PublicKey, chain::ChainTypeBox,
    consensus::ConsensusBox, market::MarketBox, radio::RadioBox,
};
use std::{
    collections::{HashMap, HashSet},
    ffi::CString,
    fs::File,
    io::{self, Read, Write},
    os::{
        fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd},
        unix::fs::OpenOptionsExt,
    },
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

/// Largest library file the host loads.
pub const LIBRARY_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// Lines of abi_stable's layout report kept in [`LoadError::Layout`].
const LAYOUT_DETAIL_LINES_MAX: usize = 4;

/// The vendors whose packages this node loads: public key to vendor name.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    vendors: HashMap<PublicKey, String>,
}

impl TrustStore {
    /// An empty store: no vendor is trusted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key` under the vendor name `name` (replaces an earlier name for the key).
    pub fn add(&mut self, name: impl Into<String>, key: PublicKey) {
        self.vendors.insert(key, name.into());
    }

    /// Whether `key` is trusted.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.vendors.contains_key(key)
    }

    /// The vendor name `key` was trusted under.
    pub fn vendor_name(&self, key: &PublicKey) -> Option<&str> {
        self.vendors.get(key).map(String::as_str)
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.vendors.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.vendors.is_empty()
    }
}

/// How [`load`] decides what to trust.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Vendor keys whose signatures are accepted.
    pub trust: TrustStore,
    /// Development mode: skip the signature and vendor checks (the hash is still
    /// checked) and log a warning naming the package at every load.
    pub allow_unsigned: bool,
}

/// Why a package was refused. Every message names the file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file of the package could not be read.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// `plugin.toml` (or a source manifest) does not parse or breaks a rule.
    #[error("{detail}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// `path:line: message`.
        detail: String,
    },
    /// There is no `plugin.sig` and unsigned packages are not allowed.
    #[error(
        "{path}: missing: the package is unsigned (unsigned packages load only with allow_unsigned)",
        path = path.display()
    )]
    Unsigned {
        /// The expected signature file.
        path: PathBuf,
    },
    /// `plugin.sig` is not one line of signature hex.
    #[error("{path}: not a signature: {reason}", path = path.display())]
    SignatureFile {
        /// The signature file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The vendor key in `plugin.toml` is not in the trust store.
    #[error(
        "{path}: vendor_key {key} is not trusted by this node",
        path = path.display()
    )]
    UnknownVendor {
        /// The manifest.
        path: PathBuf,
        /// The untrusted key.
        key: PublicKey,
    },
    /// `plugin.sig` does not verify over the canonical manifest.
    #[error(
        "{path}: signature does not match plugin.toml (edited after signing?)",
        path = path.display()
    )]
    BadSignature {
        /// The signature file.
        path: PathBuf,
    },
    /// `sdk_abi` in the manifest is not one this host loads.
    #[error(
        "{path}: sdk_abi = {declared} but this host speaks nest-sdk ABI {host} (and loads ABI {min} to {host})",
        path = path.display(),
        min = nest_sdk::ABI_COMPATIBLE_MIN
    )]
    SdkAbi {
        /// The manifest.
        path: PathBuf,
        /// What the manifest says.
        declared: u32,
        /// [`nest_sdk::ABI_VERSION`].
        host: u32,
    },
    /// The library is a symbolic link.
    #[error(
        "{path}: is a symbolic link; a package library must be a regular file",
        path = path.display()
    )]
    Symlink {
        /// The library path.
        path: PathBuf,
    },
    /// The library is not a regular file (directory, device, fifo).
    #[error("{path}: not a regular file", path = path.display())]
    NotRegularFile {
        /// The library path.
        path: PathBuf,
    },
    /// The library is larger than [`LIBRARY_BYTES_MAX`].
    #[error(
        "{path}: larger than the {max} bytes a plugin library may have",
        path = path.display(),
        max = LIBRARY_BYTES_MAX
    )]
    TooLarge {
        /// The library path.
        path: PathBuf,
    },
    /// The library's SHA-256 is not the one the manifest records.
    #[error(
        "{path}: SHA-256 mismatch: plugin.toml says {expected}, the file hashes to {actual}",
        path = path.display()
    )]
    HashMismatch {
        /// The library path.
        path: PathBuf,
        /// `library_sha256` from the manifest.
        expected: Hash32,
        /// The hash of the bytes read.
        actual: Hash32,
    },
    /// The sealed in-memory copy of the library could not be made.
    #[error(
        "{path}: could not make a sealed in-memory copy: {source}",
        path = path.display()
    )]
    Memfd {
        /// The library path.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// The dynamic loader refused the library.
    #[error("{path}: the dynamic loader refused it: {reason}", path = path.display())]
    Open {
        /// The library path.
        path: PathBuf,
        /// dlopen's reason.
        reason: String,
    },
    /// The library exports no Nest root module.
    #[error(
        "{path}: not a Nest plugin: it exports no root module ({reason})",
        path = path.display()
    )]
    NotAPlugin {
        /// The library path.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The library was built with an incompatible version of nest-sdk.
    #[error(
        "{path}: incompatible nest-sdk version: the host uses {host}, the library was built with {library}",
        path = path.display()
    )]
    IncompatibleVersion {
        /// The library path.
        path: PathBuf,
        /// The host's nest-sdk version.
        host: String,
        /// The library's nest-sdk version.
        library: String,
    },
    /// abi_stable found that the root module's layout differs from the host's.
    #[error(
        "{path}: ABI/layout mismatch: the library was built against an incompatible nest-sdk\n{detail}",
        path = path.display()
    )]
    Layout {
        /// The library path.
        path: PathBuf,
        /// The first lines of abi_stable's report.
        detail: String,
    },
    /// The library's root module failed to initialize.
    #[error("{path}: root module failed to initialize: {reason}", path = path.display())]
    RootModule {
        /// The library path.
        path: PathBuf,
        /// What the library reported.
        reason: String,
    },
    /// The root module reports another ABI version than the manifest.
    #[error(
        "{path}: the library reports nest-sdk ABI {library} but plugin.toml declares sdk_abi = {declared}",
        path = path.display()
    )]
    ModuleAbi {
        /// The library path.
        path: PathBuf,
        /// `abi_version` of the root module.
        library: u32,
        /// `sdk_abi` of the manifest.
        declared: u32,
    },
    /// The root module provides other kinds than the manifest declares.
    #[error(
        "{path}: plugin.toml declares [{declared}] but the library provides [{provided}]",
        path = path.display(),
        declared = kind_list(declared),
        provided = kind_list(provided)
    )]
    KindMismatch {
        /// The library path.
        path: PathBuf,
        /// Kinds in the manifest.
        declared: Vec<PluginKind>,
        /// Kinds in the root module.
        provided: Vec<PluginKind>,
    },
    /// The plugin's `describe()` failed.
    #[error("{path}: describe() failed: {error}", path = path.display())]
    Describe {
        /// The library path.
        path: PathBuf,
        /// The plugin's error.
        error: PluginError,
    },
    /// The library calls itself something other than its signed `plugin.toml` says.
    #[error("{path}: the library describes itself as {described}, but plugin.toml says {declared}", path = path.display())]
    IdentityMismatch {
        /// The library path.
        path: PathBuf,
        /// `name version` from plugin.toml.
        declared: String,
        /// `name version` from `describe()`.
        described: String,
    },
}

fn kind_list(kinds: &[PluginKind]) -> String {
    let names: Vec<&str> = kinds.iter().map(|kind| kind.name()).collect();
    names.join(", ")
}

/// The bit set of `kinds` (see [`PluginKind::bit`]).
pub(crate) fn kind_mask(kinds: &[PluginKind]) -> u32 {
    kinds.iter().fold(0, |mask, kind| mask | kind.bit())
}

/// A loaded plugin library: its checked package and its root module.
pub struct LoadedLibrary {
    /// The package directory.
    pub dir: PathBuf,
    /// The package manifest.
    pub manifest: PackageManifest,
    /// SHA-256 of the library bytes that were loaded.
    pub library_sha256: Hash32,
    /// The trusted vendor who signed the package; `None` when loaded unsigned.
    pub signed_by: Option<String>,
    /// What the plugin says about itself.
    pub info: PluginInfo,
    module: PluginModuleRef,
}

impl std::fmt::Debug for LoadedLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedLibrary")
            .field("dir", &self.dir)
            .field("manifest", &self.manifest)
            .field("signed_by", &self.signed_by)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl LoadedLibrary {
    /// The kinds the library provides.
    pub fn kinds(&self) -> Vec<PluginKind> {
        PluginKind::from_mask(self.module.kinds())
    }

    fn require(&self, kind: PluginKind) -> Result<(), PluginError> {
        if self.module.kinds() & kind.bit() == 0 {
            return Err(PluginError::WrongKind { kind });
        }
        Ok(())
    }

    /// Validates a JSON config for one kind; the error names the offending key.
    pub fn check_config(&self, kind: PluginKind, config_json: &str) -> Result<(), PluginError> {
        self.require(kind)?;
        (self.module.check_config())(kind, RStr::from(config_json)).into_result()
    }

    /// Builds a consensus engine instance.
    pub fn new_consensus(&self, config_json: &str, host: &Host) -> Result<ConsensusBox, PluginError> {
        self.require(PluginKind::Consensus)?;
        (self.module.new_consensus())(RStr::from(config_json), host.to_box()).into_result()
    }

    /// The library's function listing the signatures of a consensus message (SDK ABI 9);
    /// `None` for a library without a consensus engine or built with an older SDK.
    pub fn message_signatures(&self) -> Option<nest_sdk::MessageSignatures> {
        self.require(PluginKind::Consensus).ok()?;
        self.module.consensus_message_signatures()
    }

    /// Builds a chain type instance.
    pub fn new_chain_type(&self, config_json: &str, host: &Host) -> Result<ChainTypeBox, PluginError> {
        self.require(PluginKind::ChainType)?;
        (self.module.new_chain_type())(RStr::from(config_json), host.to_box()).into_result()
    }

    /// Builds a radio driver instance.
    pub fn new_radio(&self, config_json: &str, host: &Host) -> Result<RadioBox, PluginError> {
        self.require(PluginKind::Radio)?;
        (self.module.new_radio())(RStr::from(config_json), host.to_box()).into_result()
    }

    /// Builds a market policy instance.
    pub fn new_market(&self, config_json: &str, host: &Host) -> Result<MarketBox, PluginError> {
        self.require(PluginKind::Market)?;
        (self.module.new_market())(RStr::from(config_json), host.to_box()).into_result()
    }
}

/// Checks the package in `dir` and loads its library; see the module documentation for
/// the order of the checks.
pub fn load(dir: &Path, options: &LoadOptions) -> Result<LoadedLibrary, LoadError> {
    let (verified, bytes) = package::check(dir, &options.trust, options.allow_unsigned)?;
    if options.allow_unsigned {
        tracing::warn!(
            package = %dir.display(),
            name = %verified.manifest.name,
            "loading plugin package without checking its signature (allow_unsigned)"
        );
    }
    let module = open_module(&bytes, &verified.library_path, &verified.manifest.name)?;
    check_module(&module, &verified.manifest, &verified.library_path)?;
    let info = (module.describe())()
        .into_result()
        .map_err(|error| LoadError::Describe { path: verified.library_path.clone(), error })?;
    let declared = format!("{} {}", verified.manifest.name, verified.manifest.version);
    let described = format!("{} {}", info.name, info.version);
    if declared != described {
        return Err(LoadError::IdentityMismatch { path: verified.library_path.clone(), declared, described });
    }
    Ok(LoadedLibrary {
        dir: verified.dir,
        manifest: verified.manifest,
        library_sha256: verified.library_sha256,
        signed_by: verified.signed_by,
        info,
        module,
    })
}

/// Checks that the root module's plain data (`abi_version`, `kinds`) equals the
/// manifest; runs no plugin code.
fn check_module(module: &PluginModuleRef, manifest: &PackageManifest, library_path: &Path) -> Result<(), LoadError> {
    if module.abi_version() != manifest.sdk_abi {
        return Err(LoadError::ModuleAbi {
            path: library_path.to_path_buf(),
            library: module.abi_version(),
            declared: manifest.sdk_abi,
        });
    }
    if module.kinds() != kind_mask(&manifest.kinds) {
        return Err(LoadError::KindMismatch {
            path: library_path.to_path_buf(),
            declared: manifest.kinds.clone(),
            provided: PluginKind::from_mask(module.kinds()),
        });
    }
    Ok(())
}

/// What a library's root module declares, read without running plugin code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleSummary {
    /// `abi_version` of the root module.
    pub abi_version: u32,
    /// Kinds the root module provides.
    pub kinds: Vec<PluginKind>,
}

/// Loads library bytes (unsigned, unhashed: the caller vouches for them) and reports
/// what the root module declares. `pack` uses it to catch vendor mistakes.
pub fn inspect_library(bytes: &[u8], library_path: &Path, label: &str) -> Result<ModuleSummary, LoadError> {
    let module = open_module(bytes, library_path, label)?;
    Ok(ModuleSummary { abi_version: module.abi_version(), kinds: PluginKind::from_mask(module.kinds()) })
}

/// Reads a library file once: refuses symlinks and anything but a regular file.
pub fn read_library(path: &Path) -> Result<Vec<u8>, LoadError> {
    let io = |source| LoadError::Io { path: path.to_path_buf(), source };
    let metadata = std::fs::symlink_metadata(path).map_err(io)?;
    if metadata.file_type().is_symlink() {
        return Err(LoadError::Symlink { path: path.to_path_buf() });
    }
    let file =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path).map_err(
            |source| match source.raw_os_error() {
                Some(libc::ELOOP) => LoadError::Symlink { path: path.to_path_buf() },
                _ => io(source),
            },
        )?;
    let opened = file.metadata().map_err(io)?;
    if !opened.file_type().is_file() {
        return Err(LoadError::NotRegularFile { path: path.to_path_buf() });
    }
    if opened.len() > LIBRARY_BYTES_MAX {
        return Err(LoadError::TooLarge { path: path.to_path_buf() });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(opened.len()).unwrap_or(0));
    file.take(LIBRARY_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > LIBRARY_BYTES_MAX {
        return Err(LoadError::TooLarge { path: path.to_path_buf() });
    }
    Ok(bytes)
}

/// Puts `bytes` in a sealed memfd, opens it with the dynamic loader and checks the
/// root module's layout. The memfd stays open for the life of the process: its
/// `/proc/self/fd/N` name must never be reused, or the dynamic loader would hand back
/// the library already loaded under that name.
fn open_module(bytes: &[u8], library_path: &Path, label: &str) -> Result<PluginModuleRef, LoadError> {
    let memfd =
        sealed_memfd(bytes, label).map_err(|source| LoadError::Memfd { path: library_path.to_path_buf(), source })?;
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", memfd.as_raw_fd()));
    // Leak the descriptor: the library is never unloaded, and the name stays unique.
    let _ = memfd.into_raw_fd();
    let readable = |error: LibraryError| library_error(error, library_path, &fd_path);
    let header = lib_header_from_path(&fd_path).map_err(readable)?;
    remember_header(header, library_path)?;
    header.init_root_module::<PluginModuleRef>().map_err(readable)
}

/// Refuses a header seen before: the dynamic loader returned an already loaded library.
fn remember_header(header: &'static LibHeader, library_path: &Path) -> Result<(), LoadError> {
    static HEADERS: Mutex<Option<HashSet<usize>>> = Mutex::new(None);
    let mut headers = HEADERS.lock().unwrap_or_else(PoisonError::into_inner);
    let address = header as *const LibHeader as usize;
    if !headers.get_or_insert_with(HashSet::new).insert(address) {
        return Err(LoadError::Open {
            path: library_path.to_path_buf(),
            reason: "the dynamic loader returned a library that is already loaded".into(),
        });
    }
    Ok(())
}

fn sealed_memfd(bytes: &[u8], label: &str) -> io::Result<OwnedFd> {
    let name = CString::new(format!("nest-plugin:{label}")).unwrap_or_else(|_| CString::from(c"nest-plugin"));
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: `name` is a valid NUL-terminated string; the flags are plain bits.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | libc::MFD_EXEC) };
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Kernels before 6.3 know no MFD_EXEC; their memfds are executable anyway.
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by no one else.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(bytes)?;
    add_seals(&file)?;
    Ok(file.into())
}

/// How many times sealing a memfd is tried: `F_SEAL_WRITE` fails with EBUSY while the
/// kernel still holds a transient reference to a page just written (a page batch of
/// another CPU not yet drained), which a short wait clears.
const SEAL_ATTEMPTS_MAX: u32 = 5;
/// The wait between two attempts.
const SEAL_RETRY_WAIT_MS: u64 = 20;

fn add_seals(file: &File) -> io::Result<()> {
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    let mut attempt = 1;
    loop {
        // SAFETY: fcntl on a descriptor we own, with an integer argument.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EBUSY) || attempt == SEAL_ATTEMPTS_MAX {
            return Err(error);
        }
        attempt += 1;
        std::thread::sleep(std::time::Duration::from_millis(SEAL_RETRY_WAIT_MS));
    }
}

/// Turns abi_stable's multi-line report into one or two lines naming the library.
fn library_error(error: LibraryError, library_path: &Path, fd_path: &Path) -> LoadError {
    let path = library_path.to_path_buf();
    let rename = |text: String| text.replace(&fd_path.display().to_string(), &library_path.display().to_string());
    match error {
        LibraryError::OpenError { err, .. } => LoadError::Open { path, reason: rename(err.to_string()) },
        LibraryError::GetSymbolError { symbol, err, .. } => LoadError::NotAPlugin {
            path,
            reason: format!(
                "missing symbol `{}`: {}",
                String::from_utf8_lossy(&symbol).trim_end_matches('\0'),
                rename(err.to_string())
            ),
        },
        LibraryError::ParseVersionError(error) => LoadError::IncompatibleVersion {
            path,
            host: PluginModuleRef::VERSION_STRINGS.version.to_string(),
            library: format!("an unreadable version ({})", error.to_string().trim()),
        },
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => {
            LoadError::IncompatibleVersion {
                path,
                host: expected_version.to_string(),
                library: actual_version.to_string(),
            }
        }
        LibraryError::AbiInstability(detail) => LoadError::Layout { path, detail: layout_summary(&detail.to_string()) },
        LibraryError::InvalidAbiHeader(header) => {
            LoadError::Layout { path, detail: format!("  the library uses another abi_stable ABI header: {header:?}") }
        }
        LibraryError::InvalidCAbi { found, .. } => {
            LoadError::Layout { path, detail: first_lines(&format!("the library's C ABI differs: {found}")) }
        }
        LibraryError::RootModule { err, .. } => {
            LoadError::RootModule { path, reason: err.to_string().trim().to_string() }
        }
        LibraryError::Many(errors) => match errors.into_iter().next() {
            Some(first) => library_error(first, library_path, fd_path),
            None => LoadError::Open { path, reason: "abi_stable reported an empty list of errors".into() },
        },
    }
}

/// Picks the verdicts out of abi_stable's layout report (`Error:`, with the expected
/// and found types after it) and the package the library's type comes from; falls back
/// to the report's first lines.
fn layout_summary(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    let value_after = |start: usize, label: &str| {
        let offset = lines[start..].iter().position(|line| *line == label)?;
        lines.get(start + offset + 1).copied()
    };
    let mut summary: Vec<String> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(verdict) = line.strip_prefix("Error:") else {
            continue;
        };
        let expected = value_after(index, "Expected:");
        let found = value_after(index, "Found:");
        summary.push(match (expected, found) {
            (Some(expected), Some(found)) => {
                format!("{}: expected {expected}, found {found}", verdict.trim())
            }
            _ => verdict.trim().to_string(),
        });
    }
    if summary.is_empty() {
        return first_lines(report);
    }
    summary.truncate(LAYOUT_DETAIL_LINES_MAX - 1);
    let found_package = lines
        .iter()
        .position(|line| *line == "Layout of found type:")
        .and_then(|start| lines[start..].iter().find(|line| line.starts_with("package:")));
    if let Some(package) = found_package {
        summary.push(format!("the library's root module comes from {package}"));
    }
    first_lines(&summary.join("\n"))
}

fn first_lines(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .take(LAYOUT_DETAIL_LINES_MAX)
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_library_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<LoadedLibrary>();
        shareable::<TrustStore>();
    }

    #[test]
    fn layout_report_is_cut_to_its_verdicts() {
        let report = "\nCompared <this>:\n  --- Type Layout ---\n  type:PrefixRef\n\
                      Layout of found type:\n  type:Other\n  package:'vendor-x' version:'0.2.0'\n\
                      Error:mismatched type\nExpected:\n  PluginModule\nFound:\n  Other\n";
        assert_eq!(
            layout_summary(report),
            "  mismatched type: expected PluginModule, found Other\n  \
             the library's root module comes from package:'vendor-x' version:'0.2.0'"
        );
        assert_eq!(layout_summary("one\n\ntwo\n"), "  one\n  two");
    }

    #[test]
    fn symlinked_or_special_library_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.so");
        std::fs::write(&real, b"bytes").unwrap();
        let link = dir.path().join("link.so");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(read_library(&link), Err(LoadError::Symlink { .. })));
        assert!(matches!(read_library(dir.path()), Err(LoadError::NotRegularFile { .. })));
        assert_eq!(read_library(&real).unwrap(), b"bytes");
    }

    #[test]
    fn sealed_memfd_holds_the_bytes_and_refuses_writes() {
        let fd = sealed_memfd(b"library bytes", "test").unwrap();
        let mut file = File::from(fd);
        assert!(file.write_all(b"more").is_err(), "the memfd is sealed");
        let mut back = Vec::new();
        std::io::Seek::rewind(&mut file).unwrap();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"library bytes");
    }
}
