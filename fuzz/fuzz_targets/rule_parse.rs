//! The collection rule parser on arbitrary text: `slipway_api::rules::Rule::parse`
//! must return a rule or an error, never panic. An error must point inside the
//! text or just past its end and quote no more than a short excerpt of it. A
//! rule that parses must print (its canonical Display) and parse again to
//! itself, print the same the second time, and evaluate against a fixed facts
//! document. Seeds: hand-written rules (`hand-rule-*`), good and refused ones.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use slipway_api::rules::Rule;

/// A machine's inventory facts, with the awkward cases too: nested arrays,
/// nulls, an empty array, mixed types, a u64 beyond i64, non-ASCII text.
fn facts() -> &'static Value {
    static FACTS: OnceLock<Value> = OnceLock::new();
    FACTS.get_or_init(|| {
        json!({
            "arch": "x86_64", "firmware": "uefi", "hostname": "web-01", "memory_mb": 8192,
            "cpu": {"model": "QEMU Virtual CPU", "cores": 2, "threads": 2, "mhz": 2399.998},
            "disk": [
                {"name": "vda", "size_bytes": 21474836480u64, "rotational": false, "removable": false},
                {"name": "sr0", "size_bytes": null, "rotational": true, "removable": true}
            ],
            "nic": [{"name": "ens3", "mac": "52:54:00:12:34:56"}, {"name": "ens4", "mac": "52:54:00:AA:BB:CC"}],
            "dmi": {"vendor": "QEMU", "model": "Standard PC", "serial": "A1"},
            "os": {"id": "debian", "version_id": "12"}, "rack": "r1", "gpu": true,
            "tags": [["a", "b"], [], "c", 1, null], "big": u64::MAX, "neg": -3, "name": "Émile ☃"
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let rule = match Rule::parse(text) {
        Ok(rule) => rule,
        Err(e) => {
            let end = text.chars().count() + 1;
            assert!((1..=end).contains(&e.column), "error column {} outside 1..={end}: {e}", e.column);
            assert!(e.message.len() <= 300, "error message quotes too much of the rule: {e}");
            return;
        }
    };
    let printed = rule.to_string();
    match Rule::parse(&printed) {
        Ok(back) => {
            assert_eq!(back, rule, "rule does not round-trip through Display:\n{text}\n{printed}");
            assert_eq!(back.to_string(), printed, "canonical form is not stable:\n{printed}");
        }
        Err(e) => panic!("a parsed rule, printed, is refused: {e}\n{text}\n{printed}"),
    }
    let _ = rule.matches(facts());
    let _ = rule.paths();
});
