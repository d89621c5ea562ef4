//! `parse_pack` on arbitrary bytes: must return Ok or Err, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = slipway_store::parse_pack(data);
});
