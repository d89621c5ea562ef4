//! Content addresses: BLAKE3 hashes of plaintext.

use std::fmt;
use std::str::FromStr;

/// The BLAKE3 key-derivation context for tree object ids.
pub const TREE_CONTEXT: &str = "slipway 2026-11 tree object v1";

/// The BLAKE3 hash of a blob's uncompressed bytes (or of a whole pack, index
/// or record file, which are named by the hash of their contents).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// The id of file data, and the name of pack, index and record files:
    /// the plain BLAKE3 hash.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// The id of a tree object: BLAKE3 in key-derivation mode with the
    /// context [`TREE_CONTEXT`], so a file whose bytes equal a tree object
    /// never shares its id.
    pub fn of_tree(data: &[u8]) -> Self {
        let mut h = blake3::Hasher::new_derive_key(TREE_CONTEXT);
        h.update(data);
        Self(*h.finalize().as_bytes())
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", self.short())
    }
}

/// The text is not 64 lowercase or uppercase hex digits.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a BLAKE3 id (64 hex digits)")]
pub struct BadId(pub String);

impl FromStr for BlobId {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, BadId> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return Err(BadId(s.to_string()));
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            let hex = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            };
            match (hex(b[2 * i]), hex(b[2 * i + 1])) {
                (Some(h), Some(l)) => *o = h << 4 | l,
                _ => return Err(BadId(s.to_string())),
            }
        }
        Ok(Self(out))
    }
}

impl serde::Serialize for BlobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for BlobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(D::Error::custom)
        } else {
            let b = serde_bytes::ByteBuf::deserialize(d)?;
            let a: [u8; 32] = b.as_slice().try_into().map_err(|_| D::Error::custom("a blob id must be 32 bytes"))?;
            Ok(Self(a))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_text() {
        let id = BlobId::of(b"hello");
        assert_eq!(id.to_hex().parse::<BlobId>().unwrap(), id);
        assert!("xyz".parse::<BlobId>().is_err());
        assert!("g".repeat(64).parse::<BlobId>().is_err());
    }
}
