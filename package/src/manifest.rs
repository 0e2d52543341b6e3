//! The package manifest (`plugin.toml`), the crate source manifest, and the canonical
//! writer whose bytes the vendor signs.

use nest_sdk::{Hash32, PluginKind, PublicKey};
use serde::{Deserialize, Deserializer, de::Error as _};
use std::{fmt::Write as _, path::Path};

/// Largest `plugin.toml` (package or source) the host reads.
pub const MANIFEST_BYTES_MAX: u64 = 64 * 1024;

/// The signed description of a package: what the library is, who made it, its hash.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageManifest {
    /// Plugin name, e.g. `consensus-poa`.
    pub name: String,
    /// Plugin version (semver).
    pub version: String,
    /// Kinds the library provides, in the vendor's order.
    #[serde(deserialize_with = "kinds_from_names")]
    pub kinds: Vec<PluginKind>,
    /// One line describing the plugin.
    pub description: String,
    /// [`nest_sdk::ABI_VERSION`] the library was built with.
    pub sdk_abi: u32,
    /// File name of the library inside the package directory.
    pub library: String,
    /// SHA-256 of the library file.
    pub library_sha256: Hash32,
    /// The vendor's Ed25519 public key; `plugin.sig` is checked against it.
    pub vendor_key: PublicKey,
    /// For a consensus engine: the fault families it claims to survive (`delay`, `loss`,
    /// `partition`, `crash`, `twins`), which `nestd sim --faults all` puts it through.
    /// Signed with the rest; absent from the canonical text when empty.
    #[serde(default)]
    pub tolerates: Vec<String>,
}

/// The manifest a plugin crate keeps in its root; `pack` completes it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceManifest {
    /// Plugin name.
    pub name: String,
    /// Plugin version (semver).
    pub version: String,
    /// Kinds the library provides.
    #[serde(deserialize_with = "kinds_from_names")]
    pub kinds: Vec<PluginKind>,
    /// File name the library gets inside the package directory.
    pub library: String,
    /// One line describing the plugin.
    pub description: String,
    /// See [`PackageManifest::tolerates`].
    #[serde(default)]
    pub tolerates: Vec<String>,
}

/// Why a manifest text was refused; `line` is 1-based when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// Line of the offending key, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl ManifestError {
    /// Formats the error as `path:line: message`.
    pub fn at(&self, path: &Path) -> String {
        match self.line {
            Some(line) => format!("{}:{line}: {}", path.display(), self.message),
            None => format!("{}: {}", path.display(), self.message),
        }
    }
}

fn kinds_from_names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PluginKind>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    let mut kinds = Vec::with_capacity(names.len());
    for name in &names {
        let kind = PluginKind::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = PluginKind::ALL.iter().map(|kind| kind.name()).collect();
            D::Error::custom(format!("unknown plugin kind `{name}` (known: {})", known.join(", ")))
        })?;
        if kinds.contains(&kind) {
            return Err(D::Error::custom(format!("plugin kind `{name}` listed twice")));
        }
        kinds.push(kind);
    }
    if kinds.is_empty() {
        return Err(D::Error::custom("at least one plugin kind is required"));
    }
    Ok(kinds)
}

fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ManifestError> {
    toml::from_str(text).map_err(|error| ManifestError {
        line: error.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1),
        message: error.message().trim().to_string(),
    })
}

/// Checks that `name` is a plain file name: no directory part, no `..`, not hidden.
pub fn check_library_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']) && name.len() <= 255;
    if plain {
        Ok(())
    } else {
        Err(format!(
            "library `{}` must be a plain file name inside the package directory \
             (no '/', no '..', not hidden)",
            name.escape_debug()
        ))
    }
}

fn check_text_fields(name: &str, version: &str, library: &str) -> Result<(), ManifestError> {
    let refuse = |message: String| ManifestError { line: None, message };
    if name.is_empty() {
        return Err(refuse("`name` must not be empty".into()));
    }
    if version.is_empty() {
        return Err(refuse("`version` must not be empty".into()));
    }
    check_library_name(library).map_err(refuse)
}

/// Parses a manifest of either form and checks its name, version and library fields.
fn parse_checked<T: serde::de::DeserializeOwned>(
    text: &str,
    fields: impl Fn(&T) -> [&String; 3],
) -> Result<T, ManifestError> {
    let manifest: T = parse_toml(text)?;
    let [name, version, library] = fields(&manifest);
    check_text_fields(name, version, library).map_err(|mut error| {
        error.line = line_of_key(text, "library");
        error
    })?;
    Ok(manifest)
}

impl PackageManifest {
    /// Parses and checks the text of a package's `plugin.toml`.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        parse_checked(text, |m: &Self| [&m.name, &m.version, &m.library])
    }

    /// The manifest as the vendor signs it: fixed key order, one `key = value` a line.
    pub fn to_canonical_toml(&self) -> String {
        let kinds: Vec<String> = self.kinds.iter().map(|kind| toml_string(kind.name())).collect();
        let mut out = String::new();
        let mut line = |key: &str, value: String| {
            let _ = writeln!(out, "{key} = {value}");
        };
        line("name", toml_string(&self.name));
        line("version", toml_string(&self.version));
        line("kinds", format!("[{}]", kinds.join(", ")));
        line("description", toml_string(&self.description));
        line("sdk_abi", self.sdk_abi.to_string());
        line("library", toml_string(&self.library));
        line("library_sha256", toml_string(&self.library_sha256.to_hex()));
        line("vendor_key", toml_string(&self.vendor_key.to_hex()));
        if !self.tolerates.is_empty() {
            let families: Vec<String> = self.tolerates.iter().map(|name| toml_string(name)).collect();
            line("tolerates", format!("[{}]", families.join(", ")));
        }
        out
    }

    /// The bytes a vendor signature covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        self.to_canonical_toml().into_bytes()
    }
}

impl SourceManifest {
    /// Parses and checks the text of a crate's source `plugin.toml`.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        parse_checked(text, |m: &Self| [&m.name, &m.version, &m.library])
    }
}

fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| line.trim_start().strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')))
        .map(|index| index + 1)
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
pub fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            control if control.is_control() => {
                let _ = write!(out, "\\u{:04X}", control as u32);
            }
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> PackageManifest {
        PackageManifest {
            name: "consensus-poa".into(),
            version: "0.1.0".into(),
            kinds: vec![PluginKind::Consensus, PluginKind::ChainType],
            description: "Proof of \"authority\"\\ in turn\n".into(),
            sdk_abi: 1,
            library: "libconsensus_poa.so".into(),
            library_sha256: Hash32([0xab; 32]),
            vendor_key: PublicKey([0x01; 32]),
            tolerates: Vec::new(),
        }
    }

    #[test]
    fn canonical_text_has_fixed_key_order_and_escapes() {
        let text = sample().to_canonical_toml();
        let expected = format!(
            "name = \"consensus-poa\"\n\
             version = \"0.1.0\"\n\
             kinds = [\"consensus\", \"chain-type\"]\n\
             description = \"Proof of \\\"authority\\\"\\\\ in turn\\n\"\n\
             sdk_abi = 1\n\
             library = \"libconsensus_poa.so\"\n\
             library_sha256 = \"{}\"\n\
             vendor_key = \"{}\"\n",
            "ab".repeat(32),
            "01".repeat(32)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn canonical_text_parses_back_to_the_same_manifest() {
        let mut manifest = sample();
        manifest.description = "tab\t bell\u{7} é ✓".into();
        let back = PackageManifest::parse(&manifest.to_canonical_toml()).unwrap();
        assert_eq!(back, manifest);
    }

    #[test]
    fn key_order_in_the_file_does_not_change_canonical_bytes() {
        let text = sample().to_canonical_toml();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.reverse();
        let shuffled = PackageManifest::parse(&lines.join("\n")).unwrap();
        assert_eq!(shuffled.canonical_bytes(), sample().canonical_bytes());
    }

    #[test]
    fn parse_errors_give_the_line() {
        let text = sample().to_canonical_toml().replace("sdk_abi = 1", "sdk_abi = \"one\"");
        let error = PackageManifest::parse(&text).unwrap_err();
        assert_eq!(error.line, Some(5), "{error:?}");
        assert!(error.message.contains("invalid type"), "{error:?}");
        let shown = error.at(Path::new("pkg/plugin.toml"));
        assert!(shown.starts_with("pkg/plugin.toml:5: "), "{shown}");
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused() {
        let text = format!("{}extra = 1\n", sample().to_canonical_toml());
        let error = PackageManifest::parse(&text).unwrap_err();
        assert!(error.message.contains("unknown field `extra`"), "{error:?}");
        assert_eq!(error.line, Some(9));

        let text = sample().to_canonical_toml().replace("\"chain-type\"", "\"dag\"");
        let error = PackageManifest::parse(&text).unwrap_err();
        assert!(error.message.contains("unknown plugin kind `dag`"), "{error:?}");
        assert_eq!(error.line, Some(3));
    }

    #[test]
    fn bad_hash_hex_is_refused() {
        let text = sample().to_canonical_toml().replace(&"ab".repeat(32), "abcd");
        let error = PackageManifest::parse(&text).unwrap_err();
        assert!(error.message.contains("expected 32 bytes"), "{error:?}");
        assert_eq!(error.line, Some(7));
    }

    #[test]
    fn library_name_must_be_a_plain_file_name() {
        for bad in ["", "../libx.so", "lib/x.so", "/abs.so", "..", ".", ".hidden.so", "a\\b"] {
            assert!(check_library_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["libconsensus_poa.so", "libx-1.2.so", "x"] {
            assert!(check_library_name(good).is_ok(), "{good:?} refused");
        }
        let text = sample().to_canonical_toml().replace("libconsensus_poa.so", "../evil.so");
        let error = PackageManifest::parse(&text).unwrap_err();
        assert_eq!(error.line, Some(6));
        assert!(error.message.contains("plain file name"), "{error:?}");
    }

    #[test]
    fn source_manifest_has_only_the_vendor_fields() {
        let text = "name = \"radio-x\"\nversion = \"0.1.0\"\nkinds = [\"radio\"]\n\
                    library = \"libradio_x.so\"\ndescription = \"x\"\n";
        let source = SourceManifest::parse(text).unwrap();
        assert_eq!(source.kinds, vec![PluginKind::Radio]);
        let error = SourceManifest::parse(&format!("{text}sdk_abi = 1\n")).unwrap_err();
        assert!(error.message.contains("unknown field `sdk_abi`"), "{error:?}");
    }
}
