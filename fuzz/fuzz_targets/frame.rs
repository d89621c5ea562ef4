//! `decompress_frame`: the first 4 bytes (little-endian) are the expected
//! uncompressed length, capped at 1 MiB so the fuzzer's memory limit is about
//! the decoder and not the caller's buffer; the rest is the compressed frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

const MAX_ULEN: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let ulen = u32::from_le_bytes(data[..4].try_into().expect("4 bytes")) % (MAX_ULEN + 1);
    if let Ok(out) = slipway_store::decompress_frame(&data[4..], ulen) {
        assert_eq!(out.len(), ulen as usize, "decompress_frame returned the wrong length");
    }
});
