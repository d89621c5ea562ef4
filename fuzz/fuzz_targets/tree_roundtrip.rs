//! Any tree `Tree::decode` accepts must survive `encode` -> `decode` unchanged,
//! and its encoding must be canonical (re-encoding gives the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_store::Tree;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = Tree::decode(data) else { return };
    let bytes = tree.encode();
    let again = match Tree::decode(&bytes) {
        Ok(t) => t,
        Err(e) => panic!("re-encoded tree does not decode: {e}\ntree: {tree:?}"),
    };
    assert_eq!(again, tree, "tree changed through encode/decode");
    assert_eq!(again.encode(), bytes, "tree encoding is not deterministic");
});
