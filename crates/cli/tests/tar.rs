//! `export --tar` and `import-tar` against the peers: GNU tar and bsdtar
//! extract what slipway writes, slipway imports what GNU tar writes, and a
//! round trip through a tar archive keeps every piece of a tree, as bsdtar's
//! mtree and getfattr see it (sparse files come back full: tar export does
//! not keep holes).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn run(store: &Path, args: &[&str]) -> String {
    ok(slipway(store).args(args))
}

fn json(store: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run(store, args)).expect("JSON output")
}

/// Entries the shared fixture lacks that need tar's extended headers: long
/// names and link targets, ids and times outside the ustar fields, xattr
/// names with '=' and '%', an empty xattr value, hard-linked symlinks and
/// FIFOs, nested empty directories.
fn tar_extras(root: &Path) {
    sh(
        r#"
        d=$(printf 'd%.0s' $(seq 1 120)); f=$(printf 'f%.0s' $(seq 1 200))
        mkdir -p "long/$d/$d"; echo long > "long/$d/$d/$f"
        ln -s "$(printf 'x%.0s' $(seq 1 300))" long/long-target-link
        echo big-ids > big-ids; chown 3000000:4000000 big-ids
        setfattr -n user.empty big-ids
        echo old > old; setfattr -n 'user.a=b%c' -v 1 old
        touch -d '1960-06-15 12:00:00.25' old
        ln -s target sym; ln -P sym sym-hardlink
        mkfifo fifo2; ln fifo2 fifo2-hardlink
        mkdir -p empty/nested-empty; chmod 0700 empty; chmod 1750 long
        "#,
        root,
    );
}

/// Root, and every tool these tests compare with.
fn ready() -> bool {
    if !is_root() {
        eprintln!("SKIPPED: needs root (device nodes, owners, trusted xattrs)");
        return false;
    }
    require("bsdtar") && require("getfattr") && require("setfacl") && require("tar")
}

fn fixture(t: &Path) -> std::path::PathBuf {
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    every_kind(&src);
    tar_extras(&src);
    src
}

fn same_tree(src: &Path, dst: &Path) {
    same_tree_but(src, dst, |m| m, |x| x);
}

/// [`same_tree`], with the mtree listings of both trees passed through
/// `mtree_adjust` and the getfattr listing of `dst` through `xattr_adjust`.
fn same_tree_but(
    src: &Path,
    dst: &Path,
    mtree_adjust: impl Fn(String) -> String,
    xattr_adjust: impl Fn(String) -> String,
) {
    assert_same("mtree", &mtree_adjust(mtree(src)), &mtree_adjust(mtree(dst)));
    let xa = xattrs(src);
    assert!(xa.contains("system.posix_acl_default") && xa.contains("user.a\\075b%c"), "fixture lacks xattrs:\n{xa}");
    assert_same("xattrs", &xa, &xattr_adjust(xattrs(dst)));
    let ino = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap().ino();
    assert_eq!(ino("var/a"), ino("deep/a/c"));
    assert_eq!(ino("sym"), ino("sym-hardlink"));
    if src.join("fifo2-hardlink").exists() {
        assert_eq!(ino("fifo2"), ino("fifo2-hardlink"));
    }
}

/// Drops the `time=` field of the mtree lines for these paths.
fn without_time(mtree: String, paths: &[&str]) -> String {
    mtree
        .lines()
        .map(|l| {
            let path = l.split(' ').next().unwrap_or("");
            if paths.contains(&path) {
                l.split(' ').filter(|f| !f.starts_with("time=")).collect::<Vec<_>>().join(" ")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths `slipway diff` reports between two images, with their change.
fn differences(store: &Path, a: &str, b: &str) -> Vec<(String, String)> {
    let v = json(store, &["diff", a, b, "--json"]);
    v["report"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e["change"].as_str().unwrap().to_string()))
        .collect()
}

/// The only difference a trip through tar makes: sparse files lose their
/// holes (same bytes, stored as data).
fn only_sparse_files_differ(store: &Path, a: &str, b: &str) {
    let d = differences(store, a, b);
    let paths: Vec<_> = d.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["/all-hole", "/sparse"], "{d:?}");
}

#[test]
fn export_then_import_round_trips_every_kind_of_entry() {
    if !ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = fixture(t.path());
    let (store, dst, archive) = (t.path().join("store"), t.path().join("dst"), t.path().join("kinds.tar"));
    run(&store, &["store", "init"]);
    run(&store, &["capture", src.to_str().unwrap(), "--name", "kinds"]);
    let v = json(&store, &["export", "kinds", "--tar", archive.to_str().unwrap(), "--json"]);
    assert_eq!(v["schema"], "slipway.export-tar/1");
    assert_eq!(v["report"]["sparse_files"], 2);
    assert_eq!(v["report"]["archive_bytes"].as_u64().unwrap(), fs::metadata(&archive).unwrap().len());
    let v = json(&store, &["import-tar", archive.to_str().unwrap(), "--name", "back", "--json"]);
    assert_eq!(v["schema"], "slipway.capture/1");
    assert_eq!(v["report"]["image"], "back@1");
    run(&store, &["apply", "back", dst.to_str().unwrap()]);
    same_tree(&src, &dst);
    only_sparse_files_differ(&store, "kinds", "back");
    // Counts agree with the capture's.
    let info = |i: &str| json(&store, &["info", i, "--json"])["record"]["stats"].clone();
    let (a, b) = (info("kinds"), info("back"));
    for k in ["files", "dirs", "symlinks", "specials", "hardlinks", "logical_bytes"] {
        assert_eq!(a[k], b[k], "{k}");
    }
    let rep = out(slipway(&store).arg("verify"));
    assert!(rep.status.success());
}

/// The every-kind fixture captured and exported to a tar archive, and an
/// empty directory to extract it into: (source, archive, destination).
fn exported_fixture(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let src = fixture(dir);
    let (store, dst, archive) = (dir.join("store"), dir.join("dst"), dir.join("kinds.tar"));
    run(&store, &["store", "init"]);
    run(&store, &["capture", src.to_str().unwrap(), "--name", "kinds"]);
    run(&store, &["export", "kinds", "--tar", archive.to_str().unwrap()]);
    fs::create_dir(&dst).unwrap();
    (src, archive, dst)
}

#[test]
fn gnu_tar_extracts_an_exported_archive_exactly() {
    if !ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (src, archive, dst) = exported_fixture(t.path());
    let o = Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-xpf"])
        .arg(&archive)
        .arg("-C")
        .arg(&dst)
        .output()
        .unwrap();
    assert!(o.status.success(), "GNU tar: {}", String::from_utf8_lossy(&o.stderr));
    same_tree(&src, &dst);
}

#[test]
fn bsdtar_extracts_an_exported_archive_exactly() {
    if !ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (src, archive, dst) = exported_fixture(t.path());
    let o = Command::new("bsdtar")
        .args(["--numeric-owner", "--xattrs", "--acls", "-xpf"])
        .arg(&archive)
        .arg("-C")
        .arg(&dst)
        .output()
        .unwrap();
    assert!(o.status.success(), "bsdtar: {}", String::from_utf8_lossy(&o.stderr));
    // Three things bsdtar (libarchive 3.7) does its own way. It does not
    // set the mtime of the directory it extracts into (the `./` member),
    // whoever wrote the archive. It reads a pax time before 1970 with a
    // fraction, `-301233599.75`, as -301233599 s + 0.75 s (GNU tar and POSIX:
    // -301233599.75 s). And it does not undo GNU tar's escaping of '=' and
    // '%' in xattr names (`SCHILY.xattr.user.a%3Db%25c`). Everything else
    // must match.
    same_tree_but(&src, &dst, |m| without_time(m, &[".", "./old"]), |x| x.replace("user.a%3Db%25c", "user.a\\075b%c"));
}

#[test]
fn an_archive_made_by_gnu_tar_imports_exactly() {
    if !ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = fixture(t.path());
    let (store, dst, archive) = (t.path().join("store"), t.path().join("dst"), t.path().join("gnu.tar"));
    // GNU tar records hard links between regular files and symlinks only: it
    // archives a second name of a FIFO or device as a node of its own.
    fs::remove_file(src.join("fifo2-hardlink")).unwrap();
    let o = Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "GNU tar: {}", String::from_utf8_lossy(&o.stderr));
    run(&store, &["store", "init"]);
    run(&store, &["capture", src.to_str().unwrap(), "--name", "kinds"]);
    run(&store, &["import-tar", archive.to_str().unwrap(), "--name", "gnu"]);
    run(&store, &["apply", "gnu", dst.to_str().unwrap()]);
    same_tree(&src, &dst);
    only_sparse_files_differ(&store, "kinds", "gnu");
}

#[test]
fn export_to_stdout_and_import_from_stdin_give_the_same_trees() {
    let t = tempfile::tempdir().unwrap();
    let (src, store) = (t.path().join("src"), t.path().join("store"));
    fs::create_dir(&src).unwrap();
    sh(
        "mkdir -p a/b empty; echo x > a/b/f; ln a/b/f a/g; ln -s b/f a/l; seq 1 100000 > n; \
         printf 'z' > \"$(printf 'caf\\xe9')\"; touch -d '2001-01-01 00:00:00.000000001' a",
        &src,
    );
    run(&store, &["store", "init"]);
    run(&store, &["capture", src.to_str().unwrap(), "--name", "one"]);
    let bin = env!("CARGO_BIN_EXE_slipway");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{bin}' -q --store \"$1\" export one --tar - | '{bin}' -q --store \"$1\" import-tar - --name two --json"
        ))
        .arg("bash")
        .arg(&store)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["report"]["image"], "two@1");
    // Same chunking, same hard-link numbering: the very same trees.
    let rec = |i: &str| json(&store, &["info", i, "--json"])["record"]["root"].clone();
    assert_eq!(rec("one"), rec("two"));
    assert!(differences(&store, "one", "two").is_empty());
}

#[test]
fn export_needs_exactly_one_destination() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    run(&store, &["store", "init"]);
    for args in [&["export", "x"][..], &["export", "x", "--tar", "a.tar", "--to-store", "s"]] {
        let o = out(slipway(&store).args(args));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn hostile_archives_made_with_gnu_tar_are_refused_and_commit_nothing() {
    if !require("tar") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    run(&store, &["store", "init"]);
    sh(
        "mkdir -p in; echo owned > in/f; \
         tar -P -cf abs.tar \"$PWD/in/f\"; \
         tar -P --transform 's,^in/,../,' -cf climb.tar in/f; \
         ln -s /etc in/link; tar -C in -cf through.tar link; \
         mkdir -p x/link; echo evil > x/link/passwd; tar -C x -rf through.tar link/passwd; \
         tar -C in -cf ok.tar f; head -c 700 ok.tar > truncated.tar",
        t.path(),
    );
    for (file, says) in
        [("abs.tar", "absolute"), ("climb.tar", "'..'"), ("through.tar", "symlink"), ("truncated.tar", "truncated")]
    {
        let o = out(slipway(&store).args(["import-tar", t.path().join(file).to_str().unwrap(), "--name", "evil"]));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{file}: {err}");
        assert!(err.contains(says), "{file}: {err}");
    }
    let v = json(&store, &["images", "--json"]);
    assert!(v["images"].as_array().unwrap().is_empty(), "{v}");
    assert!(!t.path().join("passwd").exists());
}
