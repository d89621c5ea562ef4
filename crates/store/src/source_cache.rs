//! The source cache: what a capture saw of each regular file (path, device,
//! inode, size, mtime, ctime) and the chunks it stored for it. The next
//! capture of the same image name reuses those chunks for every file whose
//! size, mtime, ctime and inode are unchanged, without reading it.
//!
//! A cache is a hint, never part of an image: `caches/<record id>.cache`,
//! `"SLWCACH1" | zstd(CBOR)`. A cache that is missing, unreadable or names
//! chunks the store no longer has is ignored (the files are read).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use slipway_fstree::Timestamp;

use crate::atomic::write_atomic;
use crate::id::BlobId;
use crate::pack::zstd_decode_bounded;
use crate::store::Store;
use crate::tree::ChunkRef;

pub const CACHE_MAGIC: &[u8; 8] = b"SLWCACH1";
const CACHE_VERSION: u32 = 1;
/// Largest decompressed cache a reader accepts.
const MAX_CACHE: u64 = 512 << 20;

/// What was seen of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub chunks: Vec<ChunkRef>,
    pub extents: Option<Vec<(u64, u64)>>,
}

impl Seen {
    /// Same inode, size and times: the content is taken to be unchanged.
    pub fn unchanged(&self, other: &Seen) -> bool {
        self.dev == other.dev
            && self.ino == other.ino
            && self.size == other.size
            && self.mtime == other.mtime
            && self.ctime == other.ctime
    }
}

/// Files of one capture, by path relative to the captured root.
#[derive(Debug, Default)]
pub struct SourceCache {
    pub files: HashMap<Vec<u8>, Seen>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    files: Vec<FileWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWire {
    path: ByteBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
    chunks: Vec<(BlobId, u32)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extents: Option<Vec<(u64, u64)>>,
}

impl SourceCache {
    pub fn encode(&self) -> Vec<u8> {
        let mut paths: Vec<&Vec<u8>> = self.files.keys().collect();
        paths.sort();
        let files = paths
            .into_iter()
            .map(|p| {
                let s = &self.files[p];
                FileWire {
                    path: ByteBuf::from(p.clone()),
                    dev: s.dev,
                    ino: s.ino,
                    size: s.size,
                    mtime: (s.mtime.sec, s.mtime.nsec),
                    ctime: (s.ctime.sec, s.ctime.nsec),
                    chunks: s.chunks.iter().map(|c| (c.id, c.len)).collect(),
                    extents: s.extents.clone(),
                }
            })
            .collect();
        let mut cbor = Vec::new();
        ciborium::into_writer(&Wire { v: CACHE_VERSION, files }, &mut cbor).expect("encoding to memory");
        let mut out = CACHE_MAGIC.to_vec();
        out.extend_from_slice(&zstd::bulk::compress(&cbor, 3).expect("compressing to memory"));
        out
    }

    /// Parses a cache file's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 8 || &bytes[..8] != CACHE_MAGIC {
            return Err("not a slipway source cache (bad magic)".into());
        }
        let cbor = zstd_decode_bounded(&bytes[8..], MAX_CACHE).map_err(|e| e.0)?;
        let w: Wire = ciborium::de::from_reader_with_recursion_limit(&cbor[..], 16).map_err(|e| e.to_string())?;
        if w.v != CACHE_VERSION {
            return Err(format!("source cache version {} is not supported", w.v));
        }
        let mut files = HashMap::with_capacity(w.files.len());
        for f in w.files {
            if f.mtime.1 >= 1_000_000_000 || f.ctime.1 >= 1_000_000_000 {
                return Err("timestamp out of range".into());
            }
            let data: u64 = match &f.extents {
                Some(e) => e.iter().map(|x| x.1).sum(),
                None => f.size,
            };
            if f.chunks.iter().map(|c| c.1 as u64).sum::<u64>() != data {
                return Err("chunk lengths do not add up to the file's data".into());
            }
            files.insert(
                f.path.into_vec(),
                Seen {
                    dev: f.dev,
                    ino: f.ino,
                    size: f.size,
                    mtime: Timestamp { sec: f.mtime.0, nsec: f.mtime.1 },
                    ctime: Timestamp { sec: f.ctime.0, nsec: f.ctime.1 },
                    chunks: f.chunks.into_iter().map(|(id, len)| ChunkRef { id, len }).collect(),
                    extents: f.extents,
                },
            );
        }
        Ok(Self { files })
    }
}

pub(crate) fn cache_path(store: &Store, record: &BlobId) -> PathBuf {
    store.path().join("caches").join(format!("{record}.cache"))
}

/// Loads the cache written by the capture that made `record`; `Err` says why
/// it cannot be used (a missing cache is `Ok(None)`).
pub(crate) fn load(store: &Store, record: &BlobId) -> Result<Option<SourceCache>, String> {
    let p = cache_path(store, record);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", p.display())),
    };
    SourceCache::decode(&bytes).map(Some).map_err(|e| format!("{}: {e}", p.display()))
}

pub(crate) fn save(store: &Store, record: &BlobId, cache: &SourceCache) -> std::io::Result<()> {
    write_atomic(&store.tmp_dir(), &cache_path(store, record), &cache.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let mut c = SourceCache::default();
        c.files.insert(
            b"usr/bin/x".to_vec(),
            Seen {
                dev: 1,
                ino: 2,
                size: 3,
                mtime: Timestamp { sec: 4, nsec: 5 },
                ctime: Timestamp { sec: 6, nsec: 7 },
                chunks: vec![ChunkRef { id: BlobId::of(b"abc"), len: 3 }],
                extents: None,
            },
        );
        let d = SourceCache::decode(&c.encode()).unwrap();
        assert_eq!(d.files, c.files);
        assert!(SourceCache::decode(b"SLWCACH1junk").is_err());
        assert!(SourceCache::decode(b"").is_err());
    }
}
