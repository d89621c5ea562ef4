//! A new version re-reads only files whose size, mtime, ctime or inode
//! changed since the previous version, and is still exact.

mod common;

use std::fs;

use common::*;

fn capture(store: &std::path::Path, src: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let text = ok(slipway(store).arg("capture").arg(src).args(["--name", "inc", "--json"]).args(extra));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn recapture_reads_only_changed_files_and_stays_exact() {
    let t = tempfile::tempdir().unwrap();
    let (src, store) = (t.path().join("src"), t.path().join("store"));
    fs::create_dir(&src).unwrap();
    sh(
        "mkdir -p a b; for i in $(seq 1 50); do seq 1 $((i*1000)) > a/f$i; done; echo same > b/s; echo keep > b/k",
        &src,
    );
    ok(slipway(&store).args(["store", "init"]));
    let r1 = capture(&store, &src, &[]);
    assert_eq!(r1["report"]["files_read"], 52);

    // Nothing changed: nothing is read.
    let r2 = capture(&store, &src, &[]);
    assert_eq!(r2["report"]["files_read"], 0, "{r2}");
    assert_eq!(r2["report"]["files_reused"], 52);

    // One file rewritten with the same size and its mtime put back: only
    // the ctime tells, and it is enough.
    sh(
        "m=$(stat -c %y a/f7); printf 'X' | dd of=a/f7 bs=1 seek=10 conv=notrunc status=none; touch -d \"$m\" a/f7",
        &src,
    );
    // One file replaced by a new inode with identical metadata and content.
    sh("cp -p b/s b/s.new && mv b/s.new b/s", &src);
    // One file appended to.
    sh("echo more >> a/f9", &src);
    let r3 = capture(&store, &src, &[]);
    assert_eq!(r3["report"]["files_read"], 3, "{r3}");
    let dst = t.path().join("dst");
    ok(slipway(&store).args(["apply", "inc@3"]).arg(&dst));
    if have("bsdtar") {
        assert_same("mtree", &mtree(&src), &mtree(&dst));
    } else {
        assert!(fs::read(dst.join("a/f7")).unwrap() == fs::read(src.join("a/f7")).unwrap());
    }

    // --rehash reads everything.
    let r4 = capture(&store, &src, &["--rehash"]);
    assert_eq!(r4["report"]["files_read"], 52);

    // A damaged cache is ignored: every file is read, the capture works.
    for e in fs::read_dir(store.join("caches")).unwrap() {
        fs::write(e.unwrap().path(), b"SLWCACH1garbage").unwrap();
    }
    let r5 = capture(&store, &src, &[]);
    assert_eq!(r5["report"]["files_read"], 52);
    assert_eq!(fs::read_dir(store.join("caches")).unwrap().count(), 1, "only the newest version keeps a cache");
    ok(slipway(&store).arg("verify"));
}
