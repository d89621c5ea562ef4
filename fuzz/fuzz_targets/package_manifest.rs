//! The package manifest parser and checker on arbitrary bytes:
//! `serde_json::from_slice::<Manifest>` then `container::validate` must
//! return Ok or Err, never panic; a manifest that parses must serialize and
//! parse back to itself. Seeds: manifests of packages made by make_seeds
//! (real builds) and hand-written ones (`hand-*`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_package::container::validate;
use slipway_package::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = serde_json::from_slice::<Manifest>(data) else { return };
    let _ = validate(&m);
    let again = serde_json::to_vec(&m).expect("a parsed manifest serializes");
    let back: Manifest = serde_json::from_slice(&again).expect("a serialized manifest parses");
    assert_eq!(back, m, "manifest does not round-trip");
});
