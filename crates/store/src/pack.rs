//! Pack files: blobs gathered into zstd frames, with a trailer that lists
//! them. See `docs/store-format.md` for the byte layout.
//!
//! ```text
//! "SLWPACK1" | frame 0 | frame 1 | ... | trailer | u64le trailer_offset | "SLWPEND1"
//! ```

use std::io::Read;

use crate::id::BlobId;

pub const PACK_MAGIC: &[u8; 8] = b"SLWPACK1";
pub const PACK_END: &[u8; 8] = b"SLWPEND1";
/// Largest uncompressed frame (and so largest blob) a reader accepts.
pub const MAX_FRAME: u32 = 64 << 20;
/// Bytes of one entry in a pack trailer.
pub const ENTRY_LEN: usize = 57;
const FOOTER_LEN: usize = 16;

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// File content (a chunk).
    Data = 0,
    /// A directory's tree object.
    Tree = 1,
}

impl BlobKind {
    /// The id of `data` as a blob of this kind.
    pub fn hash(self, data: &[u8]) -> BlobId {
        match self {
            Self::Data => BlobId::of(data),
            Self::Tree => BlobId::of_tree(data),
        }
    }

    fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Data),
            1 => Some(Self::Tree),
            _ => None,
        }
    }
}

/// Where one blob sits in its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    /// Offset of the frame's first byte in the pack file.
    pub frame_off: u64,
    /// Compressed length of the frame.
    pub frame_clen: u32,
    /// Uncompressed length of the frame.
    pub frame_ulen: u32,
    /// Offset of the blob inside the uncompressed frame.
    pub off: u32,
    pub len: u32,
}

/// Stored data is not in the format it should be.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Corrupt(pub String);

fn corrupt(msg: impl Into<String>) -> Corrupt {
    Corrupt(msg.into())
}

impl PackEntry {
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.frame_off.to_le_bytes());
        out.extend_from_slice(&self.frame_clen.to_le_bytes());
        out.extend_from_slice(&self.frame_ulen.to_le_bytes());
        out.extend_from_slice(&self.off.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, Corrupt> {
        debug_assert_eq!(b.len(), ENTRY_LEN);
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let e = Self {
            id: BlobId(b[..32].try_into().expect("32 bytes")),
            kind: BlobKind::from_u8(b[32]).ok_or_else(|| corrupt(format!("unknown blob kind {}", b[32])))?,
            frame_off: u64::from_le_bytes(b[33..41].try_into().expect("8 bytes")),
            frame_clen: u32_at(41),
            frame_ulen: u32_at(45),
            off: u32_at(49),
            len: u32_at(53),
        };
        if e.frame_ulen > MAX_FRAME {
            return Err(corrupt(format!("frame of {} bytes is larger than the {MAX_FRAME} allowed", e.frame_ulen)));
        }
        if e.off as u64 + e.len as u64 > e.frame_ulen as u64 {
            return Err(corrupt(format!("blob {} lies outside its frame", e.id.short())));
        }
        if e.frame_clen == 0 || e.frame_off < PACK_MAGIC.len() as u64 {
            return Err(corrupt(format!("blob {} has an impossible frame position", e.id.short())));
        }
        Ok(e)
    }
}

/// Decodes a run of entries (a pack trailer's or an index's body).
pub(crate) fn decode_entries(body: &[u8], stride: usize, prefix: usize) -> Result<Vec<(&[u8], PackEntry)>, Corrupt> {
    if body.len() % stride != 0 {
        return Err(corrupt(format!(
            "entry table of {} bytes is not a whole number of {stride}-byte entries",
            body.len()
        )));
    }
    body.chunks_exact(stride).map(|c| Ok((&c[..prefix], PackEntry::decode(&c[prefix..])?))).collect()
}

/// Decompresses at most `limit` bytes of a zstd stream; more is an error.
pub(crate) fn zstd_decode_bounded(data: &[u8], limit: u64) -> Result<Vec<u8>, Corrupt> {
    let mut out = Vec::new();
    let dec = zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(format!("zstd: {e}")))?;
    dec.take(limit + 1).read_to_end(&mut out).map_err(|e| corrupt(format!("zstd: {e}")))?;
    if out.len() as u64 > limit {
        return Err(corrupt(format!("decompresses to more than the {limit} bytes allowed")));
    }
    Ok(out)
}

/// A frame ready to go into a pack: compressed bytes and its blobs.
pub(crate) struct Frame {
    pub compressed: Vec<u8>,
    pub ulen: u32,
    /// (id, kind, offset, length) of each blob, in frame order.
    pub blobs: Vec<(BlobId, BlobKind, u32, u32)>,
}

/// Compresses `data` (the concatenated blobs) into a frame, with zstd's
/// content checksum so damage is caught even before blob hashes are checked.
pub(crate) fn compress_frame(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.include_checksum(true)?;
    c.include_contentsize(true)?;
    c.compress(data)
}

/// Lays out a pack file from frames. Returns the bytes and the entries (with
/// frame positions filled in).
pub(crate) fn build_pack(frames: &[Frame]) -> (Vec<u8>, Vec<PackEntry>) {
    let total: usize = frames.iter().map(|f| f.compressed.len()).sum();
    let mut out = Vec::with_capacity(total + 64 + frames.iter().map(|f| f.blobs.len() * ENTRY_LEN).sum::<usize>());
    out.extend_from_slice(PACK_MAGIC);
    let mut entries = Vec::new();
    for f in frames {
        let frame_off = out.len() as u64;
        out.extend_from_slice(&f.compressed);
        for &(id, kind, off, len) in &f.blobs {
            entries.push(PackEntry {
                id,
                kind,
                frame_off,
                frame_clen: f.compressed.len() as u32,
                frame_ulen: f.ulen,
                off,
                len,
            });
        }
    }
    let trailer_off = out.len() as u64;
    let mut table = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for e in &entries {
        e.encode_into(&mut table);
    }
    out.extend_from_slice(&zstd::bulk::compress(&table, 3).expect("compressing to memory"));
    out.extend_from_slice(&trailer_off.to_le_bytes());
    out.extend_from_slice(PACK_END);
    (out, entries)
}

/// Parses a whole pack file's trailer and checks every entry lies inside the
/// frame area.
pub fn parse_pack(bytes: &[u8]) -> Result<Vec<PackEntry>, Corrupt> {
    if bytes.len() < PACK_MAGIC.len() + FOOTER_LEN || &bytes[..8] != PACK_MAGIC {
        return Err(corrupt("not a slipway pack (bad magic or too short)"));
    }
    let foot = &bytes[bytes.len() - FOOTER_LEN..];
    if &foot[8..] != PACK_END {
        return Err(corrupt("pack footer missing (truncated pack?)"));
    }
    let trailer_off = u64::from_le_bytes(foot[..8].try_into().expect("8 bytes"));
    let trailer_end = (bytes.len() - FOOTER_LEN) as u64;
    if trailer_off < 8 || trailer_off > trailer_end {
        return Err(corrupt("pack trailer offset points outside the pack"));
    }
    let table = zstd_decode_bounded(&bytes[trailer_off as usize..trailer_end as usize], 256 << 20)
        .map_err(|e| corrupt(format!("pack trailer: {e}")))?;
    let entries: Vec<PackEntry> = decode_entries(&table, ENTRY_LEN, 0)?.into_iter().map(|(_, e)| e).collect();
    for e in &entries {
        if e.frame_off.checked_add(e.frame_clen as u64).is_none_or(|end| end > trailer_off) {
            return Err(corrupt(format!("blob {} has a frame past the end of the frame area", e.id.short())));
        }
    }
    Ok(entries)
}

/// Decompresses one frame, which must give exactly `ulen` bytes.
pub fn decompress_frame(compressed: &[u8], ulen: u32) -> Result<Vec<u8>, Corrupt> {
    let out = zstd::bulk::decompress(compressed, ulen as usize)
        .map_err(|e| corrupt(format!("frame does not decompress: {e}")))?;
    if out.len() != ulen as usize {
        return Err(corrupt(format!("frame decompresses to {} bytes, expected {ulen}", out.len())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `pack` fuzz target: a frame offset near u64::MAX
    /// overflowed the bounds check.
    #[test]
    fn regression_frame_offset_overflow_is_an_error() {
        let bytes = include_bytes!("../../../fuzz/regressions/pack-frame-off-overflow.bin");
        assert!(parse_pack(bytes).is_err());
    }

    #[test]
    fn pack_round_trip_and_truncation_is_caught() {
        let a = b"hello world".repeat(100);
        let b = b"second blob".to_vec();
        let mut data = a.clone();
        data.extend_from_slice(&b);
        let frame = Frame {
            compressed: compress_frame(&data, 3).unwrap(),
            ulen: data.len() as u32,
            blobs: vec![
                (BlobId::of(&a), BlobKind::Data, 0, a.len() as u32),
                (BlobId::of(&b), BlobKind::Tree, a.len() as u32, b.len() as u32),
            ],
        };
        let (bytes, entries) = build_pack(&[frame]);
        let parsed = parse_pack(&bytes).unwrap();
        assert_eq!(parsed, entries);
        let e = &parsed[1];
        let f = decompress_frame(&bytes[e.frame_off as usize..][..e.frame_clen as usize], e.frame_ulen).unwrap();
        assert_eq!(&f[e.off as usize..][..e.len as usize], &b[..]);
        for cut in [0, 7, 20, bytes.len() - 1] {
            assert!(parse_pack(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
