//! A package's `plugin.toml` (and a crate's source `plugin.toml`), as the loader reads it.

use nest_api::package::{MANIFEST_BYTES_MAX, PackageManifest, SourceManifest};

/// Parses `data` as both manifests. A package manifest that parses must parse again,
/// unchanged, from its canonical text: that text is what the vendor signs.
pub fn run(data: &[u8]) {
    if data.len() as u64 > MANIFEST_BYTES_MAX {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = SourceManifest::parse(text);
    let Ok(manifest) = PackageManifest::parse(text) else { return };
    let canonical = manifest.to_canonical_toml();
    assert_eq!(PackageManifest::parse(&canonical), Ok(manifest), "canonical text:\n{canonical}");
}
