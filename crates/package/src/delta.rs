//! Payload encodings: how one file's content is stored in a package.
//!
//! - [`Encoding::Zstd`]: the whole content, one zstd frame.
//! - [`Encoding::BidiffZstd`]: a bidiff (bsdiff-like) patch from the base to
//!   the content, in one zstd frame. Made for executables, whose code moves
//!   by small offsets between builds.
//! - [`Encoding::ZstdRef`]: one zstd frame compressed with the base as
//!   reference prefix (`zstd --patch-from`), long-distance matching on and a
//!   window covering base and content.
//!
//! Decoding never produces more than the declared size (it stops at the
//! first byte too many, so a small blob cannot expand into a huge one),
//! never accepts fewer, and accepts exactly one zstd frame with nothing after
//! it.

use std::io::{self, Cursor, Read, Write};

use crate::manifest::Encoding;

/// The zstd frame magic number, little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The first bytes of an ELF file.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// Largest base or content bidiff is used for: its suffix array takes four
/// bytes per base byte. Larger files get a zstd-ref delta instead.
const BIDIFF_MAX: usize = 256 << 20;

/// zstd's largest window (`ZSTD_WINDOWLOG_MAX_64`). A zstd-ref delta needs
/// a window over base and content, so it is made only when both fit.
const WINDOW_LOG_MAX: u32 = 31;

/// zstd's smallest window (`ZSTD_WINDOWLOG_ABSOLUTEMIN`).
const WINDOW_LOG_MIN: u32 = 10;

/// Copy buffer of the decoders.
const CHUNK: usize = 64 << 10;

/// One file's content as stored in a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub encoding: Encoding,
    pub bytes: Vec<u8>,
    /// For deltas: the BLAKE3 (hex) of the base it was made against.
    pub base: Option<String>,
    /// Length of the full zstd encoding (equal to `bytes.len()` when that is
    /// the one chosen), for reports comparing with and without deltas.
    pub full_len: u64,
}

/// How [`encode`] works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// zstd compression level (1-22).
    pub level: i32,
    /// Try a delta against the base when one is given.
    pub deltas: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self { level: 19, deltas: true }
    }
}

/// Why stored data did not decode to what was declared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("{} data needs the base content it was made against, and none was given", .0.as_str())]
    MissingBase(Encoding),
    #[error("the content is longer than the declared {size} bytes")]
    TooLong { size: u64 },
    #[error("the content is {got} bytes, {size} were declared")]
    TooShort { got: u64, size: u64 },
    #[error("corrupt {} data: {why}", encoding.as_str())]
    Corrupt { encoding: Encoding, why: String },
    /// The output refused the decoded bytes.
    #[error("writing the decoded content: {0}")]
    Write(#[source] io::Error),
}

fn is_elf(b: &[u8]) -> bool {
    b.starts_with(ELF_MAGIC)
}

/// The zstd window log covering `n` bytes (at least zstd's minimum).
fn window_log_for(n: u64) -> u32 {
    let log = if n <= 1 { 0 } else { 64 - (n - 1).leading_zeros() };
    log.max(WINDOW_LOG_MIN)
}

fn zstd_full(content: &[u8], level: i32) -> io::Result<Vec<u8>> {
    // Single-shot with the size known: zstd sizes the window to the content
    // (never above level 19's 8 MiB), so the default decoder limit holds.
    zstd::bulk::Compressor::new(level)?.compress(content)
}

fn zstd_ref(content: &[u8], base: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), level, base)?;
    enc.set_pledged_src_size(Some(content.len() as u64))?;
    enc.include_contentsize(true)?;
    enc.include_checksum(false)?;
    enc.long_distance_matching(true)?;
    enc.window_log(window_log_for(base.len() as u64 + content.len() as u64))?;
    enc.write_all(content)?;
    enc.finish()
}

fn bidiff_zstd(content: &[u8], base: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut patch = Vec::new();
    bidiff::simple_diff(base, content, &mut patch)?;
    zstd_full(&patch, level)
}

/// Encodes `content`. The full zstd encoding is always made; with
/// `opts.deltas` and a base, a delta too (bidiff when content or base is an
/// ELF file, zstd-ref otherwise), and the smaller of the two is kept (the
/// full one on a tie: it needs no base).
pub fn encode(content: &[u8], base: Option<&[u8]>, opts: EncodeOptions) -> io::Result<Encoded> {
    let full = zstd_full(content, opts.level)?;
    let full_len = full.len() as u64;
    let mut best = Encoded { encoding: Encoding::Zstd, bytes: full, base: None, full_len };
    let Some(base) = base.filter(|_| opts.deltas) else { return Ok(best) };
    let delta = if is_elf(content) || is_elf(base) {
        if base.len() <= BIDIFF_MAX && content.len() <= BIDIFF_MAX {
            Some((Encoding::BidiffZstd, bidiff_zstd(content, base, opts.level)?))
        } else {
            None
        }
    } else {
        None
    };
    let delta = match delta {
        Some(d) => Some(d),
        None if window_log_for(base.len() as u64 + content.len() as u64) <= WINDOW_LOG_MAX => {
            Some((Encoding::ZstdRef, zstd_ref(content, base, opts.level)?))
        }
        None => None,
    };
    if let Some((encoding, bytes)) = delta {
        if bytes.len() < best.bytes.len() {
            best = Encoded { encoding, bytes, base: Some(blake3::hash(base).to_hex().to_string()), full_len };
        }
    }
    Ok(best)
}

/// Copies `reader` to `out`, requiring exactly `size` bytes: stops with
/// [`DecodeError::TooLong`] at the first byte beyond it. Returns the BLAKE3
/// of the bytes written.
fn copy_exact(
    encoding: Encoding,
    reader: &mut dyn Read,
    size: u64,
    out: &mut dyn Write,
) -> Result<blake3::Hash, DecodeError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut written = 0u64;
    loop {
        // Once everything is there, ask for one byte more: there must be none.
        let want = if written < size { (size - written).min(CHUNK as u64) as usize } else { 1 };
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DecodeError::Corrupt { encoding, why: e.to_string() }),
        };
        if written + n as u64 > size {
            return Err(DecodeError::TooLong { size });
        }
        out.write_all(&buf[..n]).map_err(DecodeError::Write)?;
        hasher.update(&buf[..n]);
        written += n as u64;
    }
    if written < size {
        return Err(DecodeError::TooShort { got: written, size });
    }
    Ok(hasher.finalize())
}

fn check_frame_start(encoding: Encoding, stored: &[u8]) -> Result<(), DecodeError> {
    if !stored.starts_with(&ZSTD_MAGIC) {
        return Err(DecodeError::Corrupt { encoding, why: "not a zstd frame".into() });
    }
    Ok(())
}

fn check_frame_end(encoding: Encoding, rest: &[u8]) -> Result<(), DecodeError> {
    if !rest.is_empty() {
        return Err(DecodeError::Corrupt { encoding, why: format!("{} bytes after the zstd frame", rest.len()) });
    }
    Ok(())
}

fn zstd_err(encoding: Encoding) -> impl Fn(io::Error) -> DecodeError {
    move |e| DecodeError::Corrupt { encoding, why: e.to_string() }
}

/// Decodes `stored` into `out`, writing exactly `size` bytes (never more:
/// decoding stops at the first byte beyond; never fewer). Deltas need the
/// `base` they were made against (checking that it is the right one is the
/// caller's job; a wrong base gives wrong content, and so a wrong hash).
/// Returns the BLAKE3 of what was written, for the caller to compare.
///
/// Memory is bounded: the zstd window may not exceed what the declared size
/// (plus the base, for zstd-ref) needs, and a bidiff patch may not be longer
/// than a patch for `size` bytes can be.
pub fn decode(
    encoding: Encoding,
    stored: &[u8],
    base: Option<&[u8]>,
    size: u64,
    out: &mut dyn Write,
) -> Result<blake3::Hash, DecodeError> {
    check_frame_start(encoding, stored)?;
    match encoding {
        Encoding::Zstd => {
            // The default window limit (128 MiB) is far above what the encoder uses.
            let mut dec = zstd::stream::read::Decoder::with_buffer(stored).map_err(zstd_err(encoding))?.single_frame();
            let h = copy_exact(encoding, &mut dec, size, out)?;
            check_frame_end(encoding, dec.get_ref())?;
            Ok(h)
        }
        Encoding::ZstdRef => {
            let base = base.ok_or(DecodeError::MissingBase(encoding))?;
            let wlog = window_log_for((base.len() as u64).saturating_add(size)).min(WINDOW_LOG_MAX);
            let mut dec =
                zstd::stream::read::Decoder::with_ref_prefix(stored, base).map_err(zstd_err(encoding))?.single_frame();
            dec.window_log_max(wlog).map_err(zstd_err(encoding))?;
            let h = copy_exact(encoding, &mut dec, size, out)?;
            check_frame_end(encoding, dec.get_ref())?;
            Ok(h)
        }
        Encoding::BidiffZstd => {
            let base = base.ok_or(DecodeError::MissingBase(encoding))?;
            let mut dec = zstd::stream::read::Decoder::with_buffer(stored).map_err(zstd_err(encoding))?.single_frame();
            // A patch is the added and copied bytes (at most `size`) plus
            // three varints per control; bidiff never emits more controls than
            // it has matches, so this leaves plenty of room and bounds the
            // work a forged patch of empty controls can cause.
            let limit = size.saturating_mul(32).saturating_add(1 << 20);
            let mut patch = (&mut dec).take(limit);
            let mut reader = bipatch::Reader::new(&mut patch, Cursor::new(base))
                .map_err(|e| DecodeError::Corrupt { encoding, why: format!("bidiff patch: {e}") })?;
            let h = copy_exact(encoding, &mut reader, size, out)?;
            drop(reader);
            if patch.limit() == 0 {
                return Err(DecodeError::Corrupt { encoding, why: "the bidiff patch is too long".into() });
            }
            // The patch ended where a control starts; its zstd frame must end too.
            let mut probe = [0u8; 1];
            match dec.read(&mut probe) {
                Ok(0) => {}
                Ok(_) => return Err(DecodeError::Corrupt { encoding, why: "data after the bidiff patch".into() }),
                Err(e) => return Err(zstd_err(encoding)(e)),
            }
            check_frame_end(encoding, dec.get_ref())?;
            Ok(h)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(content: &[u8], base: Option<&[u8]>, opts: EncodeOptions) -> Encoded {
        let enc = encode(content, base, opts).unwrap();
        let mut out = Vec::new();
        let h = decode(enc.encoding, &enc.bytes, base, content.len() as u64, &mut out).unwrap();
        assert_eq!(out, content);
        assert_eq!(h, blake3::hash(content));
        enc
    }

    fn text(seed: u64, lines: usize) -> Vec<u8> {
        let mut s = String::new();
        let mut x = seed;
        for i in 0..lines {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s.push_str(&format!("line {i}: value {} flag {}\n", x >> 40, (x >> 20) & 0xfff));
        }
        s.into_bytes()
    }

    #[test]
    fn text_delta_is_zstd_ref_and_smaller() {
        let base = text(1, 20_000);
        let mut content = base.clone();
        content.splice(5000..5010, b"CHANGED!!".iter().copied());
        content.extend_from_slice(b"one more line\n");
        let enc = roundtrip(&content, Some(&base), EncodeOptions::default());
        assert_eq!(enc.encoding, Encoding::ZstdRef);
        let candidates = [zstd_full(&content, 19).unwrap().len(), zstd_ref(&content, &base, 19).unwrap().len()];
        assert_eq!(enc.bytes.len(), *candidates.iter().min().unwrap());
        assert_eq!(enc.base, Some(blake3::hash(&base).to_hex().to_string()));
        assert!(enc.bytes.len() * 10 < enc.full_len as usize, "{} vs {}", enc.bytes.len(), enc.full_len);
        // The delta needs its base, and the right one.
        let mut out = Vec::new();
        assert!(matches!(
            decode(enc.encoding, &enc.bytes, None, content.len() as u64, &mut out),
            Err(DecodeError::MissingBase(_))
        ));
        let other = text(2, 20_000);
        let mut out = Vec::new();
        // A wrong base gives an error or other content, never the right content.
        if let Ok(h) = decode(enc.encoding, &enc.bytes, Some(&other), content.len() as u64, &mut out) {
            assert_ne!(h, blake3::hash(&content));
        }
    }

    #[test]
    fn elf_delta_is_bidiff_and_smaller() {
        let ls = std::fs::read("/usr/bin/ls").unwrap();
        // A "rebuild": some bytes changed throughout, a few inserted.
        let mut new = ls.clone();
        for i in (1000..new.len()).step_by(4099) {
            new[i] = new[i].wrapping_add(1);
        }
        new.splice(2000..2000, b"inserted".iter().copied());
        let enc = roundtrip(&new, Some(&ls), EncodeOptions::default());
        assert_eq!(enc.encoding, Encoding::BidiffZstd);
        let candidates = [zstd_full(&new, 19).unwrap().len(), bidiff_zstd(&new, &ls, 19).unwrap().len()];
        assert_eq!(enc.bytes.len(), *candidates.iter().min().unwrap());
        assert!(enc.bytes.len() * 5 < enc.full_len as usize, "{} vs {}", enc.bytes.len(), enc.full_len);
        // Unrelated ELF files: whichever is smaller, and it still decodes.
        let cp = std::fs::read("/usr/bin/cp").unwrap();
        let enc = roundtrip(&cp, Some(&ls), EncodeOptions::default());
        let full = zstd_full(&cp, 19).unwrap();
        assert_eq!(enc.bytes.len(), full.len().min(bidiff_zstd(&cp, &ls, 19).unwrap().len()));
        assert_eq!(enc.full_len, full.len() as u64);
    }

    #[test]
    fn chooses_full_without_deltas_or_when_smaller() {
        let base = text(1, 2000);
        let enc = roundtrip(&base, Some(&base), EncodeOptions { level: 3, deltas: false });
        assert_eq!(enc.encoding, Encoding::Zstd);
        assert_eq!(enc.base, None);
        // Content unrelated to its base: the delta is no better.
        let enc = roundtrip(b"tiny", Some(&base), EncodeOptions::default());
        assert_eq!(enc.encoding, Encoding::Zstd);
        roundtrip(b"", None, EncodeOptions::default());
        roundtrip(b"", Some(b""), EncodeOptions::default());
    }

    #[test]
    fn decompression_bomb_stops_at_the_declared_size() {
        // 1 GiB of zeros compresses to a few tens of kilobytes.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let t = std::time::Instant::now();
        let mut out = Vec::new();
        let err = decode(Encoding::Zstd, &bomb, None, 10, &mut out).unwrap_err();
        assert!(matches!(err, DecodeError::TooLong { size: 10 }), "{err}");
        assert_eq!(out.len(), 10);
        assert!(t.elapsed().as_secs() < 5);
    }

    #[test]
    fn refuses_short_trailing_and_foreign_data() {
        let content = text(3, 100);
        let enc = encode(&content, None, EncodeOptions::default()).unwrap();
        let n = content.len() as u64;
        let mut sink = io::sink();
        assert!(matches!(
            decode(Encoding::Zstd, &enc.bytes, None, n + 1, &mut sink),
            Err(DecodeError::TooShort { .. })
        ));
        assert!(matches!(decode(Encoding::Zstd, &enc.bytes, None, n - 1, &mut sink), Err(DecodeError::TooLong { .. })));
        let mut trailing = enc.bytes.clone();
        trailing.push(0);
        assert!(decode(Encoding::Zstd, &trailing, None, n, &mut sink).is_err());
        let mut two = enc.bytes.clone();
        two.extend_from_slice(&enc.bytes);
        assert!(decode(Encoding::Zstd, &two, None, n, &mut sink).is_err());
        assert!(decode(Encoding::Zstd, &enc.bytes[..enc.bytes.len() - 1], None, n, &mut sink).is_err());
        assert!(decode(Encoding::Zstd, b"", None, 0, &mut sink).is_err());
        assert!(decode(Encoding::BidiffZstd, &enc.bytes, Some(b"x"), n, &mut sink).is_err());
        assert!(decode(Encoding::ZstdRef, b"\x28\xb5\x2f\xfd", Some(b"x"), 0, &mut sink).is_err());
    }
}
