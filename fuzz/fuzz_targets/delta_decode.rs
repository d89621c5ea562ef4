//! `delta::decode` on arbitrary stored data, encoding, declared size and
//! base: must return Ok or Err, never panic, hang or exhaust memory, and
//! must never write more than the declared size. On Ok it wrote exactly
//! the declared size, and the hash it returns is of what it wrote.
//!
//! Input: byte 0 picks the encoding (mod 3: zstd, bidiff-zstd, zstd-ref;
//! bit 7 set: no base), bytes 1-3 (little-endian, at most 1 MiB) the
//! declared size, bytes 4-5 (little-endian) the base length (taken from
//! what follows, capped at what is there), then the base, then the stored
//! data. make_seeds writes seeds of all three encodings.
#![no_main]

use std::io::{self, Write};

use libfuzzer_sys::fuzz_target;
use slipway_package::delta::decode;
use slipway_package::manifest::Encoding;

const MAX_SIZE: u64 = 1 << 20;

struct Capped {
    hasher: blake3::Hasher,
    written: u64,
    size: u64,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len() as u64;
        assert!(self.written <= self.size, "decode wrote more than the declared size");
        self.hasher.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let encoding = match data[0] & 0x7f {
        x if x % 3 == 0 => Encoding::Zstd,
        x if x % 3 == 1 => Encoding::BidiffZstd,
        _ => Encoding::ZstdRef,
    };
    let size = u64::from(u32::from_le_bytes([data[1], data[2], data[3], 0])) % (MAX_SIZE + 1);
    let rest = &data[6..];
    let base_len = usize::from(u16::from_le_bytes([data[4], data[5]])).min(rest.len());
    let (base, stored) = rest.split_at(base_len);
    let base = (data[0] & 0x80 == 0).then_some(base);
    let mut out = Capped { hasher: blake3::Hasher::new(), written: 0, size };
    if let Ok(h) = decode(encoding, stored, base, size, &mut out) {
        assert_eq!(out.written, size, "decode returned Ok with the wrong length");
        assert_eq!(h, out.hasher.finalize(), "decode returned the hash of something else");
    }
});
