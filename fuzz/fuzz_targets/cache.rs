//! `SourceCache::decode` on arbitrary bytes: must return Ok or Err, never
//! panic; a cache that decodes must encode and decode to the same files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = slipway_store::SourceCache::decode(data) {
        let again = slipway_store::SourceCache::decode(&c.encode()).expect("re-encoded cache decodes");
        assert_eq!(again.files, c.files);
    }
});
