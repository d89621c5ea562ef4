//! The package manifest: what a package is, what it applies to, and every
//! file operation it makes. The manifest is the signed part of a package; the
//! payload is bound to it by the BLAKE3 hashes it lists.
//!
//! The byte format is specified in `docs/package-format.md`.

use serde::{Deserialize, Serialize};

/// The manifest format this code writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// Most operations one package may carry.
pub const MAX_OPS: usize = 1_000_000;

/// The largest file a package may declare (a decoder never produces more
/// than the declared size, so this bounds memory and disk for one entry).
pub const MAX_FILE_SIZE: u64 = 1 << 40;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Unique name of the package: 1-64 of `[A-Za-z0-9._+-]`, starting with
    /// a letter or digit (e.g. `SW-2026-0042`).
    pub id: String,
    pub title: String,
    /// Version of the package, compared with Debian's version ordering.
    pub version: String,
    pub kind: Kind,
    #[serde(default)]
    pub description: String,
    /// When the package was built (RFC 3339, UTC).
    pub created: String,
    #[serde(default)]
    pub applies_to: AppliesTo,
    /// Package ids that must be installed (or integrated) first.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Package ids this one replaces: once it is in, they are neither offered
    /// nor reinstalled.
    #[serde(default)]
    pub supersedes: Vec<String>,
    pub ops: Vec<Op>,
    /// The payload section that follows the manifest.
    pub payload: PayloadInfo,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Hotfix,
    Rollup,
    ServicePack,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Hotfix => "hotfix",
            Kind::Rollup => "rollup",
            Kind::ServicePack => "service-pack",
        }
    }
}

/// What a package applies to. Every field that is set must match.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AppliesTo {
    /// Image names it may be integrated into (empty: any image).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// `ID` from the target's os-release (e.g. `debian`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_id: Option<String>,
    /// Lowest `VERSION_ID` it applies to (inclusive, Debian version order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_min: Option<String>,
    /// Highest `VERSION_ID` it applies to (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_max: Option<String>,
}

/// Size and hash of the payload section.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PayloadInfo {
    pub size: u64,
    /// BLAKE3 of the whole payload section, hex.
    pub blake3: String,
}

/// What an operation does to its path.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A new path. If the target has an entry there anyway, it is replaced
    /// (and backed up), and the plan says so.
    Add,
    /// The path is written whether or not it exists.
    Replace,
    /// The path is removed (a directory only when empty after the package's
    /// other operations).
    Delete,
}

/// One file operation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Op {
    pub action: Action,
    /// Relative path below the root, `/`-separated: no empty, `.` or `..`
    /// components, no leading `/`, no NUL. Non-UTF-8 bytes are not allowed.
    pub path: String,
    /// The new entry; absent for `delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Entry>,
    /// The entry the package was built against (what `--diff` saw in the old
    /// tree): its kind and, for files, its BLAKE3. Informational for `replace`
    /// and `delete`; required as the base of a delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<OldEntry>,
    /// Version of the file this operation writes (for example the Debian
    /// version of the package that owns it). Compared in Debian version order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The entry an `add` or `replace` writes.
// No `deny_unknown_fields` here: serde does not support it together with
// `flatten` (every entry would be refused). Unknown keys are still refused:
// they reach `Node`, which denies them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    #[serde(flatten)]
    pub node: Node,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time: seconds and nanoseconds since the Unix epoch.
    pub mtime: (i64, u32),
    /// `[name, value]` pairs, both hex-encoded bytes, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(String, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Node {
    File {
        size: u64,
        /// BLAKE3 of the content, hex.
        blake3: String,
        /// Where the content is in the payload.
        data: Data,
    },
    /// A hard link to another path this package writes as a file (an earlier
    /// operation). Its metadata is that file's.
    Hardlink {
        target: String,
    },
    Dir,
    Symlink {
        /// The link target, as text (never followed by slipway).
        target: String,
    },
}

/// One stored blob of the payload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// Byte offset inside the payload section.
    pub offset: u64,
    /// Stored (encoded) length.
    pub length: u64,
    /// BLAKE3 of the stored bytes, hex (checkable without the base).
    pub stored_blake3: String,
    pub encoding: Encoding,
    /// For deltas: BLAKE3 of the base content the delta was made against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// The whole content, one zstd frame.
    Zstd,
    /// A bidiff patch against the base, compressed with zstd (executables).
    BidiffZstd,
    /// zstd with the base as reference prefix (`--patch-from`).
    ZstdRef,
}

impl Encoding {
    pub fn is_delta(self) -> bool {
        !matches!(self, Encoding::Zstd)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::BidiffZstd => "bidiff-zstd",
            Encoding::ZstdRef => "zstd-ref",
        }
    }
}

/// What was at the path when the package was built.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OldEntry {
    pub kind: OldKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OldKind {
    File,
    Dir,
    Symlink,
    Other,
}
