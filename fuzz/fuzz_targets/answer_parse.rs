//! The answer file parser and checker on arbitrary text:
//! `slipway_sysprep::answer::parse` must return Ok or a refusal, never
//! panic; an answer that parses must write back as TOML (`answer::new::to_toml`)
//! and parse again to itself, and rendering it for a machine must not panic.
//! Seeds: hand-written answer files (`hand-*`), good and refused ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_sysprep::answer::{new::to_toml, parse, Facts};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(a) = parse(text, "fuzz.toml") else { return };
    let again = to_toml(&a);
    match parse(&again, "again.toml") {
        Ok(back) => assert_eq!(back, a, "answer does not round-trip through TOML:\n{again}"),
        Err(e) => panic!("a parsed answer, written back, is refused: {e}\n{again}"),
    }
    let mut facts = Facts::default();
    facts.set("serial", "S-1");
    facts.set("mac", "52:54:00:12:34:56");
    let _ = a.for_machine(&facts, &mut |b: &mut [u8]| b.fill(7));
});
