//! Tree objects: one per directory, a CBOR map listing its entries with full
//! metadata. Stored as blobs of kind [`BlobKind::Tree`](crate::pack::BlobKind),
//! so an unchanged directory costs nothing in a new image version.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use slipway_fstree::{EntryName, Metadata, Timestamp, Xattr};

use crate::id::BlobId;

pub const TREE_VERSION: u32 = 1;
/// Largest symlink target accepted (Linux's PATH_MAX).
const MAX_LINK: usize = 4096;
/// Largest xattr value accepted (Linux's XATTR_SIZE_MAX).
const MAX_XATTR: usize = 65536;

/// A chunk of a file's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: BlobId,
    pub len: u32,
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    pub name: EntryName,
    pub meta: Metadata,
    pub kind: EntryKind,
    /// Hard-link group within the image (see the format spec).
    pub hardlink: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir {
        tree: BlobId,
    },
    File {
        size: u64,
        chunks: Vec<ChunkRef>,
        /// Data regions `(offset, length)` of a sparse file; `None` means the
        /// content covers the whole size.
        extents: Option<Vec<(u64, u64)>>,
    },
    Symlink {
        target: Vec<u8>,
    },
    CharDev {
        rdev: u64,
    },
    BlockDev {
        rdev: u64,
    },
    Fifo,
}

impl EntryKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            EntryKind::Dir { .. } => "dir",
            EntryKind::File { .. } => "file",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::CharDev { .. } => "chardev",
            EntryKind::BlockDev { .. } => "blockdev",
            EntryKind::Fifo => "fifo",
        }
    }
}

/// A directory: entries sorted by name bytes, names unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeWire {
    v: u32,
    entries: Vec<EntryWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryWire {
    name: ByteBuf,
    #[serde(rename = "type")]
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    xattrs: Vec<(ByteBuf, ByteBuf)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hardlink: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tree: Option<BlobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunks: Option<Vec<(BlobId, u32)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extents: Option<Vec<(u64, u64)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rdev: Option<u64>,
}

/// A tree blob that is not valid, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("invalid tree object: {0}")]
pub struct BadTree(pub String);

fn bad(msg: impl Into<String>) -> BadTree {
    BadTree(msg.into())
}

impl Tree {
    /// The canonical encoding (equal trees give equal bytes, so equal ids).
    pub fn encode(&self) -> Vec<u8> {
        let wire = TreeWire { v: TREE_VERSION, entries: self.entries.iter().map(to_wire).collect() };
        let mut out = Vec::new();
        ciborium::into_writer(&wire, &mut out).expect("encoding to memory");
        out
    }

    /// Decodes and validates a tree blob. Anything that could make an apply
    /// write outside its target, or that is inconsistent, is refused here.
    pub fn decode(bytes: &[u8]) -> Result<Self, BadTree> {
        let wire: TreeWire =
            ciborium::de::from_reader_with_recursion_limit(bytes, 16).map_err(|e| bad(format!("{e}")))?;
        if wire.v != TREE_VERSION {
            return Err(bad(format!("tree version {} is not supported (expected {TREE_VERSION})", wire.v)));
        }
        let mut entries = Vec::with_capacity(wire.entries.len());
        for w in wire.entries {
            let e = from_wire(w)?;
            if let Some(prev) = entries.last() {
                let prev: &TreeEntry = prev;
                if prev.name >= e.name {
                    return Err(bad(format!("entries not sorted or name {} repeated", e.name)));
                }
            }
            entries.push(e);
        }
        Ok(Self { entries })
    }

    pub fn get(&self, name: &[u8]) -> Option<&TreeEntry> {
        self.entries.binary_search_by(|e| e.name.as_bytes().cmp(name)).ok().map(|i| &self.entries[i])
    }
}

fn to_wire(e: &TreeEntry) -> EntryWire {
    let m = &e.meta;
    let mut w = EntryWire {
        name: ByteBuf::from(e.name.as_bytes().to_vec()),
        kind: e.kind.type_name().to_string(),
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime: (m.mtime.sec, m.mtime.nsec),
        xattrs: m.xattrs.iter().map(|x| (ByteBuf::from(x.name.clone()), ByteBuf::from(x.value.clone()))).collect(),
        hardlink: e.hardlink,
        tree: None,
        size: None,
        chunks: None,
        extents: None,
        target: None,
        rdev: None,
    };
    match &e.kind {
        EntryKind::Dir { tree } => w.tree = Some(*tree),
        EntryKind::File { size, chunks, extents } => {
            w.size = Some(*size);
            w.chunks = Some(chunks.iter().map(|c| (c.id, c.len)).collect());
            w.extents = extents.clone();
        }
        EntryKind::Symlink { target } => w.target = Some(ByteBuf::from(target.clone())),
        EntryKind::CharDev { rdev } | EntryKind::BlockDev { rdev } => w.rdev = Some(*rdev),
        EntryKind::Fifo => {}
    }
    w
}

fn from_wire(w: EntryWire) -> Result<TreeEntry, BadTree> {
    let name = EntryName::new(w.name.into_vec()).map_err(|e| bad(e.to_string()))?;
    let ctx = |msg: String| bad(format!("entry {name}: {msg}"));
    if w.mode > 0o7777 {
        return Err(ctx(format!("mode {:o} has bits beyond 07777", w.mode)));
    }
    if w.mtime.1 >= 1_000_000_000 {
        return Err(ctx("mtime nanoseconds out of range".into()));
    }
    let mut xattrs: Vec<Xattr> = Vec::with_capacity(w.xattrs.len());
    for (n, v) in w.xattrs {
        let (n, v) = (n.into_vec(), v.into_vec());
        if n.is_empty() || n.contains(&0) || n.len() > 255 {
            return Err(ctx("bad xattr name".into()));
        }
        if v.len() > MAX_XATTR {
            return Err(ctx("xattr value too large".into()));
        }
        if let Some(p) = xattrs.last() {
            if p.name >= n {
                return Err(ctx("xattrs not sorted or repeated".into()));
            }
        }
        xattrs.push(Xattr { name: n, value: v });
    }
    let only = |fields: &[(&str, bool)]| -> Result<(), BadTree> {
        for (f, present) in fields {
            if *present {
                return Err(bad(format!("entry {name}: field {f} does not belong to a {}", w.kind)));
            }
        }
        Ok(())
    };
    let kind = match w.kind.as_str() {
        "dir" => {
            only(&[
                ("size", w.size.is_some()),
                ("chunks", w.chunks.is_some()),
                ("extents", w.extents.is_some()),
                ("target", w.target.is_some()),
                ("rdev", w.rdev.is_some()),
                ("hardlink", w.hardlink.is_some()),
            ])?;
            EntryKind::Dir { tree: w.tree.ok_or_else(|| ctx("directory without tree".into()))? }
        }
        "file" => {
            only(&[("tree", w.tree.is_some()), ("target", w.target.is_some()), ("rdev", w.rdev.is_some())])?;
            let size = w.size.ok_or_else(|| ctx("file without size".into()))?;
            let chunks: Vec<ChunkRef> = w
                .chunks
                .ok_or_else(|| ctx("file without chunks".into()))?
                .into_iter()
                .map(|(id, len)| ChunkRef { id, len })
                .collect();
            let content: u64 = chunks.iter().map(|c| c.len as u64).sum();
            let data = match &w.extents {
                None => size,
                Some(ext) => {
                    let mut end = 0u64;
                    let mut total = 0u64;
                    for &(off, len) in ext {
                        if len == 0 || off < end || off.checked_add(len).is_none_or(|e| e > size) {
                            return Err(ctx("sparse extents overlap, are empty or pass the end".into()));
                        }
                        end = off + len;
                        total += len;
                    }
                    total
                }
            };
            if content != data {
                return Err(ctx(format!("chunks hold {content} bytes but the file has {data}")));
            }
            if chunks.iter().any(|c| c.len == 0) {
                return Err(ctx("empty chunk".into()));
            }
            EntryKind::File { size, chunks, extents: w.extents }
        }
        "symlink" => {
            only(&[
                ("tree", w.tree.is_some()),
                ("size", w.size.is_some()),
                ("chunks", w.chunks.is_some()),
                ("extents", w.extents.is_some()),
                ("rdev", w.rdev.is_some()),
            ])?;
            let target = w.target.ok_or_else(|| ctx("symlink without target".into()))?.into_vec();
            if target.is_empty() || target.contains(&0) || target.len() > MAX_LINK {
                return Err(ctx("symlink target empty, too long or with NUL".into()));
            }
            EntryKind::Symlink { target }
        }
        "chardev" | "blockdev" | "fifo" => {
            only(&[
                ("tree", w.tree.is_some()),
                ("size", w.size.is_some()),
                ("chunks", w.chunks.is_some()),
                ("extents", w.extents.is_some()),
                ("target", w.target.is_some()),
            ])?;
            match w.kind.as_str() {
                "fifo" => {
                    only(&[("rdev", w.rdev.is_some())])?;
                    EntryKind::Fifo
                }
                k => {
                    let rdev = w.rdev.ok_or_else(|| ctx("device without rdev".into()))?;
                    if k == "chardev" {
                        EntryKind::CharDev { rdev }
                    } else {
                        EntryKind::BlockDev { rdev }
                    }
                }
            }
        }
        other => return Err(ctx(format!("unknown entry type {other:?}"))),
    };
    Ok(TreeEntry {
        meta: Metadata {
            mode: w.mode,
            uid: w.uid,
            gid: w.gid,
            mtime: Timestamp { sec: w.mtime.0, nsec: w.mtime.1 },
            xattrs,
        },
        name,
        kind,
        hardlink: w.hardlink,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8], kind: EntryKind) -> TreeEntry {
        TreeEntry {
            name: EntryName::new(name).unwrap(),
            meta: Metadata {
                mode: 0o4755,
                uid: 1,
                gid: 2,
                mtime: Timestamp { sec: 5, nsec: 6 },
                xattrs: vec![Xattr { name: b"user.a".to_vec(), value: vec![0, 1] }],
            },
            kind,
            hardlink: None,
        }
    }

    #[test]
    fn round_trip_all_kinds() {
        let c = ChunkRef { id: BlobId::of(b"c"), len: 3 };
        let t = Tree {
            entries: vec![
                entry(b"a", EntryKind::File { size: 10, chunks: vec![c], extents: Some(vec![(4, 3)]) }),
                entry(b"b", EntryKind::Dir { tree: BlobId::of(b"t") }),
                entry(b"c", EntryKind::Symlink { target: b"../x".to_vec() }),
                entry(b"d", EntryKind::CharDev { rdev: 259 }),
                entry(b"e", EntryKind::Fifo),
                entry(b"f\xff", EntryKind::BlockDev { rdev: 7 }),
            ],
        };
        let bytes = t.encode();
        assert_eq!(Tree::decode(&bytes).unwrap(), t);
        assert_eq!(BlobId::of(&bytes), BlobId::of(&t.encode()), "encoding is deterministic");
    }

    fn forged(name: &[u8]) -> Vec<u8> {
        let w = TreeWire {
            v: 1,
            entries: vec![EntryWire {
                name: ByteBuf::from(name.to_vec()),
                kind: "fifo".into(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: (0, 0),
                xattrs: vec![],
                hardlink: None,
                tree: None,
                size: None,
                chunks: None,
                extents: None,
                target: None,
                rdev: None,
            }],
        };
        let mut out = Vec::new();
        ciborium::into_writer(&w, &mut out).unwrap();
        out
    }

    #[test]
    fn refuses_forged_names() {
        for n in [&b".."[..], b"/etc/passwd", b"a/../../b", b"a\0b", b"", b"."] {
            let err = Tree::decode(&forged(n)).unwrap_err();
            assert!(err.to_string().contains("invalid tree"), "{err}");
        }
        assert!(Tree::decode(&forged(b"ok")).is_ok());
    }

    #[test]
    fn refuses_inconsistent_files() {
        let c = ChunkRef { id: BlobId::of(b"c"), len: 3 };
        let t = Tree { entries: vec![entry(b"a", EntryKind::File { size: 10, chunks: vec![c], extents: None })] };
        assert!(Tree::decode(&t.encode()).unwrap_err().to_string().contains("chunks hold 3 bytes"));
        let t = Tree { entries: vec![entry(b"a", EntryKind::Dir { tree: c.id }), entry(b"a", EntryKind::Fifo)] };
        assert!(Tree::decode(&t.encode()).is_err());
    }
}
