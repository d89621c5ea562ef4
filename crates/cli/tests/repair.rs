//! A damaged index file is named, and `store rebuild-index` repairs it from
//! the packs' own trailers.

mod common;

use std::fs;

use common::*;

#[test]
fn damaged_index_is_named_and_rebuilt_from_packs() {
    let t = tempfile::tempdir().unwrap();
    let (src, store) = (t.path().join("src"), t.path().join("store"));
    fs::create_dir(&src).unwrap();
    sh("seq 1 200000 > a; mkdir d; seq 5 90000 > d/b", &src);
    ok(slipway(&store).args(["store", "init"]));
    for name in ["one", "two"] {
        ok(slipway(&store).arg("capture").arg(&src).args(["--name", name]));
    }
    sh("echo more > c", &src);
    ok(slipway(&store).arg("capture").arg(&src).args(["--name", "two"]));
    let idx: Vec<_> = fs::read_dir(store.join("index")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(idx.len(), 2, "two captures that added data wrote two index files");
    let mut bytes = fs::read(&idx[0]).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    fs::write(&idx[0], bytes).unwrap();

    let o = out(slipway(&store).arg("images"));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&*idx[0].to_string_lossy()) && err.contains("rebuild-index"), "{err}");

    let rep = ok(slipway(&store).args(["store", "rebuild-index", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&rep).unwrap();
    assert_eq!(v["report"]["skipped"].as_array().unwrap().len(), 0);
    assert_eq!(fs::read_dir(store.join("index")).unwrap().count(), 1);
    ok(slipway(&store).arg("verify"));
    ok(slipway(&store).args(["apply", "two@2"]).arg(t.path().join("out")));
    assert_eq!(fs::read(t.path().join("out/c")).unwrap(), b"more\n");
}

#[test]
fn stray_files_in_refs_do_not_break_listing() {
    let t = tempfile::tempdir().unwrap();
    let (src, store) = (t.path().join("src"), t.path().join("store"));
    fs::create_dir(&src).unwrap();
    sh("echo a > a", &src);
    ok(slipway(&store).args(["store", "init"]));
    ok(slipway(&store).arg("capture").arg(&src).args(["--name", "r"]));
    // Not canonical version numbers: ignored, never read as version 1.
    for stray in ["01", "+1", "x", "1.tmp"] {
        fs::write(store.join("refs/r").join(stray), b"garbage").unwrap();
    }
    let text = ok(slipway(&store).args(["images", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["images"].as_array().unwrap().len(), 1);
    ok(slipway(&store).arg("verify"));
}
