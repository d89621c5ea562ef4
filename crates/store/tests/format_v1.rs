//! Store format version 1 stays readable: the fixture in
//! `tests/fixtures/store-v1` (written by slipway 0.1.0, described in
//! `tests/fixtures/store-v1.md`) must verify, resolve, list, read and apply
//! to exactly the tree its description gives.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use slipway_store::{apply, lookup, read_file, verify, ApplyOptions, EntryKind, Found, NoProgress, Store};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One row of the description's source-tree table.
#[derive(Debug)]
struct Expected {
    path: String,
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Names of the inode inside the tree (files and symlinks only).
    links: Option<u64>,
    sec: i64,
    nsec: u32,
    /// File content or symlink target.
    content: Option<Vec<u8>>,
}

/// Reads the table in `store-v1.md` (rows whose first cell is a path).
fn description() -> Vec<Expected> {
    let text = fs::read_to_string(fixtures().join("store-v1.md")).expect("reading store-v1.md");
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| `/")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 10, "bad row in store-v1.md: {line}");
        let unquote = |c: &str| c.trim_matches('`').to_string();
        let (uid, gid) = cells[3].split_once(':').expect("uid:gid");
        let content = match cells[8] {
            "-" => None,
            c => Some(serde_json::from_str::<String>(&unquote(c)).expect("a JSON string").into_bytes()),
        };
        rows.push(Expected {
            path: unquote(cells[0]),
            kind: cells[1].to_string(),
            mode: u32::from_str_radix(cells[2], 8).expect("octal mode"),
            uid: uid.parse().expect("uid"),
            gid: gid.parse().expect("gid"),
            links: cells[4].parse().ok(),
            sec: cells[6].parse().expect("mtime seconds"),
            nsec: cells[7].parse().expect("mtime nanoseconds"),
            content,
        });
    }
    assert_eq!(rows.len(), 9, "store-v1.md lists 9 entries");
    rows
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Every path below `dir`, as `/a/b`, sorted.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = format!("{prefix}/{}", e.file_name().to_str().unwrap());
        out.push(p.clone());
        if e.file_type().unwrap().is_dir() {
            walk(&e.path(), &p, out);
        }
    }
}

#[test]
fn store_format_v1_fixture_verifies_and_applies_to_its_description() {
    let expected = description();
    let t = tempfile::tempdir().unwrap();
    let store_dir = t.path().join("store");
    copy_dir(&fixtures().join("store-v1"), &store_dir);
    assert!(!store_dir.join("tmp").exists() && !store_dir.join("lock").exists(), "the fixture has no tmp/ or lock");

    let mut store = Store::open(&store_dir).expect("opening the v1 fixture");
    let report = verify(&mut store, &NoProgress).unwrap();
    assert!(report.ok(), "{report:#?}");
    assert_eq!((report.packs, report.blobs, report.images), (2, 6, 1), "{report:#?}");
    assert!(report.unindexed_packs.is_empty());

    let img = store.open_image(&"fixture".parse().unwrap()).unwrap();
    assert_eq!(img.label(), "fixture@1");
    assert_eq!(img.record_id.to_hex(), "7481899003482d7aa12007675637bb0b323fadd364d8f0f934597c3414dd9a11");
    assert_eq!(img.record.root.tree.to_hex(), "d42289a434264175d3af680bc764f462ebdc10af4f878445603689b9970d0d79");
    assert_eq!(img.record.description, "store format v1 fixture");
    assert_eq!(img.record.parent, None);

    // The image itself, entry by entry, without applying it.
    let mut reader = store.reader();
    for x in &expected {
        let (meta, kind) = match lookup(&mut reader, &img, x.path.as_bytes()).unwrap() {
            Found::Root => (img.record.root.metadata().unwrap(), "dir"),
            Found::Entry(e) => (e.meta.clone(), e.kind.type_name()),
        };
        assert_eq!(kind, x.kind, "{}", x.path);
        assert_eq!(meta.mode, x.mode, "{}: mode", x.path);
        assert_eq!((meta.uid, meta.gid), (x.uid, x.gid), "{}: owner", x.path);
        assert_eq!((meta.mtime.sec, meta.mtime.nsec), (x.sec, x.nsec), "{}: mtime", x.path);
        assert!(meta.xattrs.is_empty(), "{}: xattrs", x.path);
    }
    let Found::Entry(motd) = lookup(&mut reader, &img, b"/etc/motd").unwrap() else { panic!("/etc/motd is an entry") };
    let mut out = Vec::new();
    read_file(&mut reader, &motd, &mut out).unwrap();
    assert_eq!(out, b"hello from the v1 fixture\n");
    let Found::Entry(hi) = lookup(&mut reader, &img, b"bin/hi").unwrap() else { panic!("/bin/hi is an entry") };
    assert_eq!(hi.hardlink, Some(0));
    let EntryKind::File { size, chunks, extents } = &hi.kind else { panic!("/bin/hi is a file") };
    assert_eq!((*size, chunks.len(), extents), (21, 1, &None));
    drop(reader);

    // Applied, as a user who cannot set owners.
    let target = t.path().join("target");
    let opts = ApplyOptions { force: false, restore_owner: false };
    let applied = apply(&store, &img, &target, opts, &NoProgress).unwrap();
    assert_eq!((applied.files, applied.dirs, applied.hardlinks, applied.others), (4, 2, 1, 1), "{applied:?}");
    for x in &expected {
        let p = target.join(x.path.trim_start_matches('/'));
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", x.path));
        let ft = md.file_type();
        match x.kind.as_str() {
            "dir" => assert!(ft.is_dir(), "{} is a directory", x.path),
            "file" => {
                assert!(ft.is_file(), "{} is a file", x.path);
                assert_eq!(fs::read(&p).unwrap(), *x.content.as_ref().unwrap(), "{}: content", x.path);
            }
            "symlink" => {
                assert!(ft.is_symlink(), "{} is a symlink", x.path);
                assert_eq!(
                    fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes(),
                    *x.content.as_ref().unwrap(),
                    "{}: target",
                    x.path
                );
            }
            other => panic!("unexpected type {other} in store-v1.md"),
        }
        if !ft.is_symlink() {
            assert_eq!(md.permissions().mode() & 0o7777, x.mode, "{}: mode", x.path);
        }
        if let Some(n) = x.links {
            assert_eq!(md.nlink(), n, "{}: links", x.path);
        }
        assert_eq!((md.mtime(), md.mtime_nsec()), (x.sec, i64::from(x.nsec)), "{}: mtime", x.path);
    }
    assert_eq!(
        fs::metadata(target.join("bin/hello")).unwrap().ino(),
        fs::metadata(target.join("bin/hi")).unwrap().ino()
    );
    // Nothing more than the description.
    let mut found = Vec::new();
    walk(&target, "", &mut found);
    found.sort();
    let mut listed: Vec<String> = expected.iter().map(|x| x.path.clone()).filter(|p| p != "/").collect();
    listed.sort();
    assert_eq!(found, listed);
}
