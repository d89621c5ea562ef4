//! Index files: which pack holds each blob, so a store opens without reading
//! every pack. `"SLWIDX01" | zstd(entries)`, each entry a pack id followed by
//! a pack-trailer entry. Named by the BLAKE3 of the whole file.

use std::collections::HashMap;
use std::path::Path;

use crate::id::BlobId;
use crate::pack::{decode_entries, zstd_decode_bounded, BlobKind, Corrupt, PackEntry, ENTRY_LEN};

pub const INDEX_MAGIC: &[u8; 8] = b"SLWIDX01";
const STRIDE: usize = 32 + ENTRY_LEN;
/// Largest decompressed index body a reader accepts (about 3 million
/// entries); writers split larger indexes into several files.
pub const MAX_INDEX_BODY: u64 = 256 << 20;
/// Entries a writer puts in one index file, well under [`MAX_INDEX_BODY`].
pub(crate) const MAX_INDEX_ENTRIES: usize = 1 << 20;

/// Encodes index entries (pack id, entry) into an index file's bytes.
pub(crate) fn encode_index(entries: &[(BlobId, PackEntry)]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.len() * STRIDE);
    for (pack, e) in entries {
        body.extend_from_slice(&pack.0);
        e.encode_into(&mut body);
    }
    let mut out = INDEX_MAGIC.to_vec();
    out.extend_from_slice(&zstd::bulk::compress(&body, 3).expect("compressing to memory"));
    out
}

/// Writes `entries` as index files in `index_dir` (one per
/// [`MAX_INDEX_ENTRIES`] entries), each staged in `tmp_dir`, fsynced and
/// renamed into place. Returns their paths.
pub(crate) fn write_index_files(
    tmp_dir: &Path,
    index_dir: &Path,
    entries: &[(BlobId, PackEntry)],
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use anyhow::Context;
    let mut out = Vec::new();
    for part in entries.chunks(MAX_INDEX_ENTRIES) {
        let bytes = encode_index(part);
        let path = index_dir.join(format!("{}.idx", BlobId::of(&bytes)));
        crate::atomic::write_atomic(tmp_dir, &path, &bytes)
            .with_context(|| format!("writing index file {}", path.display()))?;
        out.push(path);
    }
    Ok(out)
}

/// Decodes an index file's bytes.
pub fn decode_index(bytes: &[u8]) -> Result<Vec<(BlobId, PackEntry)>, Corrupt> {
    if bytes.len() < 8 || &bytes[..8] != INDEX_MAGIC {
        return Err(Corrupt("not a slipway index file (bad magic)".into()));
    }
    let body = zstd_decode_bounded(&bytes[8..], MAX_INDEX_BODY)?;
    Ok(decode_entries(&body, STRIDE, 32)?
        .into_iter()
        .map(|(p, e)| (BlobId(p.try_into().expect("32 bytes")), e))
        .collect())
}

/// Where a blob is: its pack (by position in [`Index::packs`]) and place.
#[derive(Clone, Copy, Debug)]
pub struct Location {
    pub pack: u32,
    pub kind: BlobKind,
    pub frame_off: u64,
    pub frame_clen: u32,
    pub frame_ulen: u32,
    pub off: u32,
    pub len: u32,
}

impl Location {
    /// This blob's share of its frame's compressed size.
    pub fn stored_estimate(&self) -> u64 {
        if self.frame_ulen == 0 {
            return 0;
        }
        (self.len as u64 * self.frame_clen as u64).div_ceil(self.frame_ulen as u64)
    }
}

/// All blobs of a store, loaded from its index files.
#[derive(Default, Debug)]
pub struct Index {
    packs: Vec<BlobId>,
    pack_pos: HashMap<BlobId, u32>,
    map: HashMap<BlobId, Location>,
    /// The index files read, by name.
    pub files: Vec<BlobId>,
}

impl Index {
    /// Reads every `*.idx` file in `dir`, checking each one's name against
    /// the hash of its contents.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let mut idx = Index::default();
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(idx),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        let mut names = Vec::new();
        for e in rd {
            let e = e.with_context(|| format!("listing {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".idx") {
                names.push((stem.to_string(), e.path()));
            }
        }
        names.sort();
        for (stem, path) in names {
            let id: BlobId = stem.parse().with_context(|| format!("index file {}", path.display()))?;
            let bytes = std::fs::read(&path).with_context(|| format!("reading index file {}", path.display()))?;
            if BlobId::of(&bytes) != id {
                anyhow::bail!(
                    "index file {} is damaged (its contents do not match its name); \
                     run `slipway store rebuild-index` to rebuild the index from the packs",
                    path.display()
                );
            }
            let entries = decode_index(&bytes).with_context(|| format!("index file {} is damaged", path.display()))?;
            for (pack, e) in entries {
                idx.insert(pack, e);
            }
            idx.files.push(id);
        }
        Ok(idx)
    }

    /// [`Index::load`], tolerating index files that another process (a gc)
    /// removes while they are read: it tries again, a few times.
    pub fn load_retrying(dir: &Path) -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..5 {
            match Self::load(dir) {
                Ok(i) => return Ok(i),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(last.expect("at least one attempt"))
    }

    pub fn insert(&mut self, pack: BlobId, e: PackEntry) {
        let next = self.packs.len() as u32;
        let p = *self.pack_pos.entry(pack).or_insert_with(|| next);
        if p == next {
            self.packs.push(pack);
        }
        self.map.entry(e.id).or_insert(Location {
            pack: p,
            kind: e.kind,
            frame_off: e.frame_off,
            frame_clen: e.frame_clen,
            frame_ulen: e.frame_ulen,
            off: e.off,
            len: e.len,
        });
    }

    pub fn get(&self, id: &BlobId) -> Option<&Location> {
        self.map.get(id)
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.map.contains_key(id)
    }

    pub fn pack_id(&self, pos: u32) -> BlobId {
        self.packs[pos as usize]
    }

    pub fn packs(&self) -> &[BlobId] {
        &self.packs
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&BlobId, &Location)> {
        self.map.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `index` fuzz target: a small file that decompressed to
    /// gigabytes. The body is now capped at MAX_INDEX_BODY.
    #[test]
    fn regression_decompression_bomb_is_refused() {
        let bytes = include_bytes!("../../../fuzz/regressions/index-zstd-bomb-oom.bin");
        let err = decode_index(bytes).unwrap_err();
        assert!(err.to_string().contains("bytes allowed") || err.to_string().contains("zstd"), "{err}");
    }

    #[test]
    fn index_round_trip_and_garbage_is_refused() {
        let e = PackEntry {
            id: BlobId::of(b"x"),
            kind: BlobKind::Data,
            frame_off: 8,
            frame_clen: 10,
            frame_ulen: 100,
            off: 5,
            len: 1,
        };
        let pack = BlobId::of(b"pack");
        let bytes = encode_index(&[(pack, e)]);
        assert_eq!(decode_index(&bytes).unwrap(), vec![(pack, e)]);
        assert!(decode_index(b"SLWIDX01garbage").is_err());
        assert!(decode_index(&bytes[..bytes.len() - 3]).is_err());
    }
}
