//! A real Debian root (debootstrap minbase bookworm, built once and cached
//! under target/cache) round-trips through capture and apply with no
//! difference that bsdtar's mtree or getfattr can see, and verifies clean.

mod common;

use std::process::Command;

use common::*;

#[test]
fn debootstrap_minbase_root_round_trips_exactly() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (debootstrap, device nodes, owners)");
        return;
    }
    if !require("debootstrap") || !require("bsdtar") || !require("getfattr") {
        return;
    }
    let ws = workspace();
    let cache = ws.join("target/cache/minbase-bookworm");
    let o = Command::new(ws.join("scripts/minbase-root.sh")).arg(&cache).output().expect("minbase-root.sh");
    if !o.status.success() {
        let msg = format!("building the minbase root failed:\n{}", String::from_utf8_lossy(&o.stderr));
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (store, dst) = (t.path().join("store"), t.path().join("applied"));
    ok(slipway(&store).args(["store", "init"]));
    ok(slipway(&store).arg("capture").arg(&cache).args(["--name", "minbase"]));
    ok(slipway(&store).args(["apply", "minbase"]).arg(&dst));
    let (a, b) = (mtree(&cache), mtree(&dst));
    assert!(a.lines().count() > 5000, "a minbase root has thousands of entries");
    assert!(a.contains("type=char device=native,1,3"), "the root has /dev/null");
    assert_same("mtree", &a, &b);
    assert_same("xattrs", &xattrs(&cache), &xattrs(&dst));
    ok(slipway(&store).arg("verify"));
}
