//! Managing versions: diff agrees with bsdtar's mtree, delete and gc free
//! space, and gc is safe beside a running capture or apply.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn init(store: &Path) {
    ok(slipway(store).args(["store", "init"]));
}

fn capture(store: &Path, src: &Path, name: &str) {
    ok(slipway(store).arg("capture").arg(src).args(["--name", name]));
}

/// mtree lines by path, keywords as a map.
fn mtree_map(dir: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for line in mtree(dir).lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let mut parts = line.split(' ');
        let path = parts.next().unwrap();
        let path = if path == "." { "/".to_string() } else { path.trim_start_matches('.').to_string() };
        let kw = parts.filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        out.insert(path, kw);
    }
    out
}

#[test]
fn diff_matches_what_mtree_sees_between_the_two_source_trees() {
    if !require("bsdtar") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (a, b, store) = (t.path().join("a"), t.path().join("b"), t.path().join("store"));
    fs::create_dir(&a).unwrap();
    sh(
        "mkdir -p etc usr/bin var/old/deep srv; seq 1 50000 > usr/bin/tool; echo conf > etc/conf; echo keep > etc/keep;
         ln -s conf etc/link; echo gone > var/old/deep/x; echo t > srv/typechange; mkdir srv/dir2file; echo 1 > srv/dir2file/in;
         echo m > etc/mode; touch -d '2001-01-01' etc etc/* usr usr/bin usr/bin/* var var/old var/old/deep var/old/deep/x srv srv/* .",
        &a,
    );
    sh(&format!("cp -a {}/. {}/", a.display(), b.display()), t.path());
    sh(
        "seq 1 50001 > usr/bin/tool; rm -r var/old; mkdir -p opt/new; echo n > opt/new/file; chmod 600 etc/mode;
         ln -sf keep etc/link; rm srv/typechange; mkdir srv/typechange; rm -r srv/dir2file; echo f > srv/dir2file;
         touch -d '2002-02-02' etc/keep",
        &b,
    );
    init(&store);
    capture(&store, &a, "t");
    capture(&store, &b, "t");
    let text = ok(slipway(&store).args(["diff", "t@1", "t@2", "--json", "--bytes"]));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let got: BTreeMap<String, String> = v["report"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e["change"].as_str().unwrap().to_string()))
        .collect();

    // What mtree sees: only in A, only in B, or a keyword that differs.
    let (ma, mb) = (mtree_map(&a), mtree_map(&b));
    let mut want = BTreeMap::new();
    for (p, kw) in &ma {
        match mb.get(p) {
            None => {
                want.insert(p.clone(), "removed".to_string());
            }
            Some(kb) if kb != kw => {
                let content = ["sha256", "link", "device", "size"].iter().any(|k| kw.get(*k) != kb.get(*k));
                let c = if kw.get("type") != kb.get("type") {
                    "type"
                } else if content {
                    "content"
                } else {
                    "metadata"
                };
                want.insert(p.clone(), c.to_string());
            }
            _ => {}
        }
    }
    for p in mb.keys().filter(|p| !ma.contains_key(*p)) {
        want.insert(p.clone(), "added".to_string());
    }
    assert_eq!(got, want, "slipway diff vs mtree");
    assert!(v["report"]["new_stored_bytes"].as_u64().unwrap() > 0);

    // And `diff -r` names the same changed and one-sided paths.
    let o = Command::new("diff").arg("-r").arg("--no-dereference").arg(&a).arg(&b).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    for p in ["usr/bin/tool", "a/var: old", "b: opt", "srv/typechange", "etc/link"] {
        assert!(text.contains(p), "diff -r does not mention {p}:\n{text}");
    }
}

#[test]
fn delete_then_gc_frees_space_and_keeps_every_other_version_whole() {
    let t = tempfile::tempdir().unwrap();
    let (src, store) = (t.path().join("src"), t.path().join("store"));
    fs::create_dir(&src).unwrap();
    init(&store);
    sh("mkdir keep; head -c 3000000 /dev/urandom > keep/k; head -c 6000000 /dev/urandom > big", &src);
    capture(&store, &src, "g");
    sh("rm big; head -c 100000 /dev/urandom > small", &src);
    capture(&store, &src, "g");
    let size = |s: &Path| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&ok(slipway(s).args(["store", "info", "--json"]))).unwrap();
        v["pack_bytes"].as_u64().unwrap()
    };
    let before = size(&store);
    let o = out(slipway(&store).args(["delete", "g"]));
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("g@VERSION"));
    ok(slipway(&store).args(["delete", "g@1"]));
    let dry = ok(slipway(&store).args(["gc", "--dry-run", "--json"]));
    assert_eq!(size(&store), before, "a dry run changes nothing: {dry}");
    let rep: serde_json::Value = serde_json::from_str(&ok(slipway(&store).args(["gc", "--json"]))).unwrap();
    let after = size(&store);
    // The 6 MB file only g@1 used is gone, but for what shares a pack with
    // live data above the repack threshold (half).
    assert!(after + 4_000_000 < before, "gc freed too little: {before} -> {after}: {rep}");
    assert_eq!(rep["report"]["records_removed"], 1);
    ok(slipway(&store).arg("verify"));
    let dst = t.path().join("dst");
    ok(slipway(&store).args(["apply", "g@2"]).arg(&dst));
    assert!(fs::read(dst.join("keep/k")).unwrap() == fs::read(src.join("keep/k")).unwrap());
    assert!(fs::read(dst.join("small")).unwrap() == fs::read(src.join("small")).unwrap());
}

#[test]
fn gc_beside_a_running_capture_and_running_applies_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (src, big, store) = (t.path().join("src"), t.path().join("big"), t.path().join("store"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&big).unwrap();
    init(&store);
    // "mix" holds keep/ and drop/ in the same packs; "k" holds keep/ only.
    sh("mkdir keep drop; for i in $(seq 1 40); do head -c 200000 /dev/urandom > keep/$i; head -c 300000 /dev/urandom > drop/$i; done", &src);
    capture(&store, &src, "mix");
    capture(&store, &src.join("keep"), "k");
    ok(slipway(&store).args(["delete", "mix@1"]));
    // A big capture runs while gc starts: gc must wait for it, then keep it.
    sh("for i in $(seq 1 12); do head -c 4000000 /dev/urandom > r$i; done; seq 1 3000000 > text", &big);
    let mut cap = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cap.arg("--store").arg(&store).arg("-q").arg("capture").arg(&big).args(["--name", "big"]);
    let mut cap = cap.spawn().unwrap();
    // Applies of "k" run in a loop while gc repacks every pack "k" uses.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let applier = {
        let (store, t, stop) = (store.clone(), t.path().to_owned(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 2 {
                let dst = t.join(format!("apply-{n}"));
                let o = out(slipway(&store).args(["apply", "k"]).arg(&dst));
                assert!(o.status.success(), "apply {n} during gc failed: {}", String::from_utf8_lossy(&o.stderr));
                fs::remove_dir_all(&dst).unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    ok(slipway(&store).args(["gc", "--repack-below", "1.0"]));
    assert!(cap.wait().unwrap().success());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let applies = applier.join().unwrap();
    assert!(applies >= 2);
    ok(slipway(&store).arg("verify"));
    for (img, from) in [("big", &big), ("k", &src.join("keep"))] {
        let dst = t.path().join(format!("final-{img}"));
        ok(slipway(&store).args(["apply", img]).arg(&dst));
        let o = Command::new("diff").arg("-r").arg(from).arg(&dst).output().unwrap();
        assert!(o.status.success(), "{img} differs after gc: {}", String::from_utf8_lossy(&o.stdout));
    }
}

#[test]
fn export_to_store_copies_only_missing_chunks_and_the_copy_is_whole() {
    let t = tempfile::tempdir().unwrap();
    let (src, a, b) = (t.path().join("src"), t.path().join("a"), t.path().join("b"));
    fs::create_dir(&src).unwrap();
    init(&a);
    sh("head -c 2000000 /dev/urandom > r1; mkdir d; echo x > d/x; ln -s x d/l", &src);
    capture(&a, &src, "e");
    sh("head -c 1000000 /dev/urandom > r2", &src);
    capture(&a, &src, "e");
    let export = |img: &str| -> serde_json::Value {
        serde_json::from_str(&ok(slipway(&a).args(["export", img, "--json", "--to-store"]).arg(&b))).unwrap()
    };
    let first = export("e@1");
    assert_eq!(first["report"]["exported_as"], "e@1");
    assert_eq!(first["report"]["blobs_present"], 0);
    let second = export("e@2");
    assert_eq!(second["report"]["exported_as"], "e@2");
    let copied = second["report"]["bytes_copied"].as_u64().unwrap();
    assert!((1_000_000..1_100_000).contains(&copied), "only r2 and new trees are copied: {second}");
    assert!(second["report"]["blobs_present"].as_u64().unwrap() > 0);
    // Exporting into the same store is refused.
    let o = out(slipway(&a).args(["export", "e", "--to-store"]).arg(&a));
    assert!(!o.status.success());
    ok(slipway(&b).arg("verify"));
    let dst = t.path().join("dst");
    ok(slipway(&b).args(["apply", "e@2"]).arg(&dst));
    if have("bsdtar") {
        assert_same("mtree", &mtree(&src), &mtree(&dst));
    }
}
