//! Round trips through capture and apply keep every piece of a tree, as
//! independent tools (bsdtar's mtree, getfattr, du) see it.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::*;

#[test]
fn every_kind_of_entry_round_trips_exactly() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (device nodes, owners, trusted xattrs)");
        return;
    }
    if !require("bsdtar") || !require("getfattr") || !require("setfacl") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (src, store, dst) = (t.path().join("src"), t.path().join("store"), t.path().join("dst"));
    fs::create_dir(&src).unwrap();
    every_kind(&src);
    ok(slipway(&store).args(["store", "init"]));
    ok(slipway(&store).arg("capture").arg(&src).args(["--name", "kinds"]));
    ok(slipway(&store).args(["apply", "kinds"]).arg(&dst));
    assert_same("mtree", &mtree(&src), &mtree(&dst));
    let xa = xattrs(&src);
    assert!(
        xa.contains("security.capability") && xa.contains("system.posix_acl_default"),
        "fixture lacks xattrs:\n{xa}"
    );
    assert_same("xattrs", &xa, &xattrs(&dst));

    // Holes stay holes.
    for f in ["sparse", "all-hole"] {
        let (s, d) = (fs::metadata(src.join(f)).unwrap(), fs::metadata(dst.join(f)).unwrap());
        assert_eq!(s.len(), d.len());
        assert!(
            d.blocks() * 512 <= s.blocks() * 512 + 64 * 1024,
            "{f}: {} blocks applied vs {} in source",
            d.blocks(),
            s.blocks()
        );
        assert!(d.blocks() * 512 < 1 << 20, "{f} was written out in full");
    }
    // Hard links are links, not copies.
    let ino = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap().ino();
    assert_eq!(ino("var/a"), ino("var/b"));
    assert_eq!(ino("var/a"), ino("deep/a/c"));
    assert_eq!(ino("etc/passwd"), ino("usr/bin/hardlink-to-passwd"));
    assert_ne!(ino("var/a"), ino("etc/passwd"));
    // The climbing symlink was written as a link, and nothing was written
    // through it.
    assert!(!t.path().join("outside").exists());

    // cat reads files back byte for byte, holes as zeros.
    for f in ["sparse", "usr/bin/huge", "etc/passwd", "etc/empty-file"] {
        let o = out(slipway(&store).args(["cat", "kinds", f]));
        assert!(o.status.success());
        assert!(o.stdout == fs::read(src.join(f)).unwrap(), "cat {f} differs");
    }
}

#[test]
fn second_capture_of_same_tree_stores_almost_nothing_and_versions_count_up() {
    let t = tempfile::tempdir().unwrap();
    let (src, store) = (t.path().join("src"), t.path().join("store"));
    fs::create_dir(&src).unwrap();
    sh("mkdir -p a b; seq 1 300000 > a/numbers; cp a/numbers b/copy; head -c 2000000 /dev/urandom > r", &src);
    ok(slipway(&store).args(["store", "init"]));
    for _ in 0..2 {
        ok(slipway(&store).arg("capture").arg(&src).args(["--name", "twice", "--description", "test"]));
    }
    // One byte changed in the middle of a big file: only that chunk is new.
    sh("printf Z | dd of=r bs=1 seek=1000000 conv=notrunc status=none", &src);
    ok(slipway(&store).arg("capture").arg(&src).args(["--name", "twice"]));
    let v: serde_json::Value = serde_json::from_str(&ok(slipway(&store).args(["images", "--json"]))).unwrap();
    let imgs = v["images"].as_array().unwrap();
    let labels: Vec<_> = imgs.iter().map(|i| i["image"].as_str().unwrap().to_string()).collect();
    assert_eq!(labels, ["twice@1", "twice@2", "twice@3"]);
    let new = |i: usize| imgs[i]["new_bytes"].as_u64().unwrap();
    assert!(new(0) > 2_000_000, "first capture stores the random file: {}", new(0));
    assert_eq!(new(1), 0, "an identical tree adds no packs");
    assert!(new(2) < 400_000, "one changed byte in a 2 MB file stored {} new bytes", new(2));
    // The copy in b/ was stored once: unique < logical.
    assert!(imgs[0]["unique_bytes"].as_u64().unwrap() < imgs[0]["logical_bytes"].as_u64().unwrap() - 1_500_000);
    // NAME alone means the newest; NAME@V an older one.
    let newest = ok(slipway(&store).args(["info", "twice", "--json"]));
    assert!(newest.contains("\"image\": \"twice@3\""));
    let r1 = out(slipway(&store).args(["cat", "twice@1", "/r"]));
    let r3 = out(slipway(&store).args(["cat", "twice", "r"]));
    assert_eq!(r1.stdout.len(), 2_000_000);
    assert_ne!(r1.stdout, r3.stdout);
    assert_eq!(r3.stdout, fs::read(src.join("r")).unwrap());
}

#[test]
fn ls_lists_entries_and_refuses_climbing_paths() {
    let t = tempfile::tempdir().unwrap();
    let (src, store) = (t.path().join("src"), t.path().join("store"));
    fs::create_dir(&src).unwrap();
    sh("mkdir -p etc/ssh; echo x > etc/ssh/sshd_config; ln -s ssh etc/link; chmod 4755 etc/ssh/sshd_config", &src);
    ok(slipway(&store).args(["store", "init"]));
    ok(slipway(&store).arg("capture").arg(&src).args(["--name", "ls"]));
    let text = ok(slipway(&store).args(["ls", "ls", "/etc/ssh"]));
    assert!(text.contains("-rwsr-xr-x") && text.contains("sshd_config"), "{text}");
    let rec = ok(slipway(&store).args(["ls", "ls", "-R", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&rec).unwrap();
    let paths: Vec<_> =
        v["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_string()).collect();
    assert_eq!(paths, ["/etc", "/etc/link", "/etc/ssh", "/etc/ssh/sshd_config"]);
    for bad in ["/etc/../etc", "/etc/link/sshd_config", "/nope"] {
        let o = out(slipway(&store).args(["ls", "ls", bad]));
        assert!(!o.status.success(), "ls {bad} should fail");
        assert!(String::from_utf8_lossy(&o.stderr).contains("error:"));
    }
}

#[test]
fn json_reports_survive_paths_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let (src, store) = (t.path().join("src"), t.path().join("store"));
    fs::create_dir(&src).unwrap();
    sh("echo hi > f", &src);
    let target = t.path().join(std::ffi::OsStr::from_bytes(b"target-\xff"));
    ok(slipway(&store).args(["store", "init"]));
    ok(slipway(&store).arg("capture").arg(&src).args(["--name", "u", "--json"]));
    let text = ok(slipway(&store).args(["apply", "u", "--json"]).arg(&target));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v["report"]["target"].as_str().unwrap().contains("target-\u{fffd}"), "{v}");
    assert_eq!(fs::read(target.join("f")).unwrap(), b"hi\n");
}

#[test]
fn default_acl_on_the_target_does_not_leak_into_applied_entries() {
    if !require("setfacl") || !require("getfattr") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (src, store, dst) = (t.path().join("src"), t.path().join("store"), t.path().join("dst"));
    fs::create_dir(&src).unwrap();
    sh("mkdir -p a/b; echo x > a/b/f; echo y > top", &src);
    fs::create_dir(&dst).unwrap();
    sh("setfacl -d -m u:1234:rwx,g:99:r-x .", &dst);
    ok(slipway(&store).args(["store", "init"]));
    ok(slipway(&store).arg("capture").arg(&src).args(["--name", "acl"]));
    ok(slipway(&store).args(["apply", "acl"]).arg(&dst));
    assert_same("xattrs", &xattrs(&src), &xattrs(&dst));
    if have("bsdtar") {
        assert_same("mtree", &mtree(&src), &mtree(&dst));
    }
}
