//! Fixed-size values that cross the boundary: hashes, public keys, signatures.

use abi_stable::StableAbi;
use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;

macro_rules! fixed_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Parses lowercase or uppercase hex of exactly `LEN` bytes.
            pub fn from_hex(text: &str) -> Result<Self, String> {
                let bytes = hex::decode(text.trim()).map_err(|e| format!("invalid hex: {e}"))?;
                let array: [u8; $len] = bytes.try_into().map_err(|b: Vec<u8>| {
                    format!("expected {} bytes, got {}", $len, b.len())
                })?;
                Ok(Self(array))
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self([0; $len])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({}…)", stringify!($name), &self.to_hex()[..12])
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                Self::from_hex(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

fixed_bytes!(
    /// A SHA-256 digest.
    Hash32,
    32
);
fixed_bytes!(
    /// An Ed25519 public key: a node, an account, a validator.
    PublicKey,
    32
);
fixed_bytes!(
    /// An Ed25519 signature.
    Signature,
    64
);

impl Hash32 {
    /// The all-zero hash: the parent of a genesis unit.
    pub const ZERO: Hash32 = Hash32([0; 32]);
}
