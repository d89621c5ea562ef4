//! Image records (JSON, named by the BLAKE3 of their bytes) and refs
//! (`refs/NAME/VERSION`, holding a record id).

use serde::{Deserialize, Serialize};
use slipway_fstree::{Metadata, Timestamp, Xattr};

use crate::id::BlobId;

pub const RECORD_FORMAT: &str = "slipway-image";
pub const RECORD_VERSION: u32 = 1;

/// Everything a store knows about one image version.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    pub format: String,
    pub format_version: u32,
    pub name: String,
    pub version: u32,
    pub description: String,
    /// Unix time (seconds) of the capture.
    pub created: i64,
    /// The record of the previous version of this name, if any.
    pub parent: Option<BlobId>,
    pub root: RootDir,
    pub stats: ImageStats,
    /// Update packages integrated into this version (`slipway integrate`),
    /// in the order they were applied, including those of earlier versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PackageRef>,
}

/// An update package recorded in an image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PackageRef {
    pub id: String,
    pub version: String,
    /// `hotfix`, `rollup` or `service-pack`.
    pub kind: String,
    /// BLAKE3 of the package file.
    pub blake3: String,
}

/// The image's top directory: its own metadata and tree.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RootDir {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    /// `[name, value]` pairs, both hex-encoded bytes.
    #[serde(default)]
    pub xattrs: Vec<(String, String)>,
    pub tree: BlobId,
}

/// Counts and sizes of an image, computed at capture.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageStats {
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    pub specials: u64,
    /// Entries that are a further name of an inode already counted.
    pub hardlinks: u64,
    /// Sum of the sizes of regular files (each inode once).
    pub logical_bytes: u64,
    /// Bytes of file data (holes left out), each inode once.
    pub data_bytes: u64,
    /// Distinct chunks the image uses, and their uncompressed bytes.
    pub chunks: u64,
    pub unique_bytes: u64,
    /// Estimated compressed bytes of the distinct chunks and trees this image
    /// uses (its share of the packs).
    pub stored_bytes: u64,
    /// Bytes of packs this capture added to the store.
    pub new_bytes: u64,
}

use slipway_fstree::hex::{decode as unhex, encode as hex};

impl RootDir {
    pub fn new(meta: &Metadata, tree: BlobId) -> Self {
        Self {
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: (meta.mtime.sec, meta.mtime.nsec),
            xattrs: meta.xattrs.iter().map(|x| (hex(&x.name), hex(&x.value))).collect(),
            tree,
        }
    }

    pub fn metadata(&self) -> Result<Metadata, String> {
        let mut xattrs: Vec<Xattr> = Vec::new();
        for (n, v) in &self.xattrs {
            let (n, v) =
                (unhex(n).ok_or("bad hex in root xattr name")?, unhex(v).ok_or("bad hex in root xattr value")?);
            if n.is_empty() || n.contains(&0) || n.len() > 255 || v.len() > 65536 {
                return Err("bad root xattr name or value".into());
            }
            if xattrs.last().is_some_and(|p| p.name >= n) {
                return Err("root xattrs not sorted or repeated".into());
            }
            xattrs.push(Xattr { name: n, value: v });
        }
        if self.mode > 0o7777 || self.mtime.1 >= 1_000_000_000 {
            return Err("root mode or mtime out of range".into());
        }
        Ok(Metadata {
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime: Timestamp { sec: self.mtime.0, nsec: self.mtime.1 },
            xattrs,
        })
    }
}

impl ImageRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("serializing to memory");
        v.push(b'\n');
        v
    }

    /// Parses and checks a record's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let r: ImageRecord = serde_json::from_slice(bytes).map_err(|e| format!("not an image record: {e}"))?;
        if r.format != RECORD_FORMAT || r.format_version != RECORD_VERSION {
            return Err(format!("unsupported image record format {:?} version {}", r.format, r.format_version));
        }
        check_name(&r.name).map_err(|e| e.to_string())?;
        if r.version == 0 {
            return Err("image version 0 is not valid".into());
        }
        r.root.metadata()?;
        Ok(r)
    }
}

/// Image names: 1 to 128 of `A-Z a-z 0-9 . _ + -`, starting with a letter or
/// digit (so a name is always a safe file name and never has an `@`).
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if !ok {
        anyhow::bail!(
            "{name:?} is not a valid image name: use 1 to 128 letters, digits, '.', '_', '+' or '-', starting with a letter or digit"
        );
    }
    Ok(())
}

/// `NAME` (the newest version) or `NAME@VERSION`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    pub name: String,
    pub version: Option<u32>,
}

impl std::str::FromStr for ImageSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (name, version) = match s.split_once('@') {
            Some((n, v)) => {
                let v: u32 = v
                    .parse()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| anyhow::anyhow!("{s:?}: the version after '@' must be a number from 1 up"))?;
                (n, Some(v))
            }
            None => (s, None),
        };
        check_name(name)?;
        Ok(Self { name: name.to_string(), version })
    }
}

/// Formats Unix seconds as RFC 3339 UTC (`2026-11-22T19:31:58Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_names() {
        assert_eq!("web@3".parse::<ImageSpec>().unwrap(), ImageSpec { name: "web".into(), version: Some(3) });
        assert_eq!("web".parse::<ImageSpec>().unwrap().version, None);
        assert!("web@0".parse::<ImageSpec>().is_err());
        assert!("../x".parse::<ImageSpec>().is_err());
        assert!("a/b".parse::<ImageSpec>().is_err());
        assert!(".hidden".parse::<ImageSpec>().is_err());
    }

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_376_318), "2026-11-22T19:38:38Z");
    }
}
