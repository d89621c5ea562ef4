//! Writes the seed corpora in `fuzz/seeds/<target>/` (not a fuzz target).
//!
//! ```text
//! cargo run --features make-seeds --bin make_seeds -- SEEDS_DIR [STORE_DIR]
//! ```
//!
//! Always writes hand-built trees covering every entry kind (for `tree` and
//! `tree_roundtrip`), and packages (for `package_open`; their manifests for
//! `package_manifest`; their blobs for `delta_decode`): built from two small
//! trees and from a directory, signed with the test key
//! `fuzz/package-test-key.key` and unsigned, plus damaged ones and
//! hand-written manifests (`hand-*`). Signatures are randomized, so the
//! signed package seeds get new names on every run. Given a store made by `slipway capture` (see
//! `fuzz/make-seeds.sh`), also copies its packs, index files, records and
//! config, and extracts every frame (for `frame`) and every tree blob.
//! Files are named `<what>-<first 12 hex digits of their BLAKE3>`, so running
//! it again writes the same names.

use std::fs;
use std::path::{Path, PathBuf};

use slipway_fstree::{EntryName, Metadata, Timestamp, Xattr};
use slipway_store::{
    decode_index, decompress_frame, parse_pack, BlobId, BlobKind, ChunkRef, EntryKind, Tree, TreeEntry,
};

/// Larger seeds slow libFuzzer down; the store is meant to be tiny.
const MAX_SEED: usize = 64 << 10;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let (seeds, store) = match args.as_slice() {
        [s] => (s.clone(), None),
        [s, st] => (s.clone(), Some(st.clone())),
        _ => return Err("usage: make_seeds SEEDS_DIR [STORE_DIR]".into()),
    };
    let mut n = 0;
    for (what, t) in synthetic_trees() {
        let bytes = t.encode();
        assert_eq!(Tree::decode(&bytes)?, t, "synthetic tree {what} does not round-trip");
        n += put(&seeds, &["tree", "tree_roundtrip"], what, &bytes)?;
    }
    n += package_seeds(&seeds)?;
    if let Some(store) = store {
        n += from_store(&seeds, &store)?;
    }
    eprintln!("make_seeds: {n} seed files written under {}", seeds.display());
    Ok(())
}

/// Writes `bytes` as a seed of each target; returns the number of files.
fn put(seeds: &Path, targets: &[&str], what: &str, bytes: &[u8]) -> Result<usize> {
    if bytes.len() > MAX_SEED {
        eprintln!("make_seeds: skipping {what} seed of {} bytes (over {MAX_SEED})", bytes.len());
        return Ok(0);
    }
    let name = format!("{what}-{}", BlobId::of(bytes).short());
    for t in targets {
        let dir = seeds.join(t);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(&name), bytes)?;
    }
    Ok(targets.len())
}

fn files_in(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(files_in(&p, suffix)?);
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn from_store(seeds: &Path, store: &Path) -> Result<usize> {
    let mut n = put(seeds, &["config"], "config", &fs::read(store.join("config"))?)?;
    for p in files_in(&store.join("records"), ".json")? {
        n += put(seeds, &["record"], "record", &fs::read(p)?)?;
    }
    for p in files_in(&store.join("index"), ".idx")? {
        let bytes = fs::read(&p)?;
        decode_index(&bytes)?;
        n += put(seeds, &["index"], "index", &bytes)?;
    }
    for p in files_in(&store.join("packs"), ".pack")? {
        let bytes = fs::read(&p)?;
        n += put(seeds, &["pack"], "pack", &bytes)?;
        let entries = parse_pack(&bytes)?;
        let mut done = Vec::new();
        for e in &entries {
            let frame = &bytes[e.frame_off as usize..][..e.frame_clen as usize];
            let data = decompress_frame(frame, e.frame_ulen)?;
            if !done.contains(&e.frame_off) {
                done.push(e.frame_off);
                // The `frame` target's input: u32le ulen, then the frame.
                let mut seed = e.frame_ulen.to_le_bytes().to_vec();
                seed.extend_from_slice(frame);
                n += put(seeds, &["frame"], "frame", &seed)?;
            }
            if e.kind == BlobKind::Tree {
                let blob = &data[e.off as usize..][..e.len as usize];
                Tree::decode(blob)?;
                n += put(seeds, &["tree", "tree_roundtrip"], "tree-captured", blob)?;
            }
        }
    }
    Ok(n)
}

fn meta(mode: u32, xattrs: &[(&[u8], &[u8])]) -> Metadata {
    Metadata {
        mode,
        uid: 1000,
        gid: 100,
        mtime: Timestamp { sec: 1_700_000_000, nsec: 123_456_789 },
        xattrs: xattrs.iter().map(|(n, v)| Xattr { name: n.to_vec(), value: v.to_vec() }).collect(),
    }
}

fn entry(name: &[u8], meta: Metadata, kind: EntryKind, hardlink: Option<u64>) -> TreeEntry {
    TreeEntry { name: EntryName::new(name).expect("valid name"), meta, kind, hardlink }
}

fn synthetic_trees() -> Vec<(&'static str, Tree)> {
    let c1 = ChunkRef { id: BlobId::of(b"chunk one"), len: 9 };
    let c2 = ChunkRef { id: BlobId::of(b"chunk two"), len: 4096 };
    let plain = meta(0o644, &[]);
    let all_kinds = Tree {
        entries: vec![
            entry(b"blk", plain.clone(), EntryKind::BlockDev { rdev: (8 << 8) | 1 }, None),
            entry(b"chr", meta(0o620, &[]), EntryKind::CharDev { rdev: (4 << 8) | 1 }, None),
            entry(b"dir", meta(0o1777, &[]), EntryKind::Dir { tree: BlobId::of(b"subtree") }, None),
            entry(b"empty", plain.clone(), EntryKind::File { size: 0, chunks: vec![], extents: None }, None),
            entry(b"fifo", plain.clone(), EntryKind::Fifo, None),
            entry(
                b"file",
                meta(0o4755, &[(b"security.capability", &[1, 0, 0, 2]), (b"user.a", b"v")]),
                EntryKind::File { size: 4105, chunks: vec![c1, c2], extents: None },
                Some(1),
            ),
            entry(b"hard", plain.clone(), EntryKind::File { size: 9, chunks: vec![c1], extents: None }, Some(1)),
            entry(
                b"sparse",
                plain.clone(),
                EntryKind::File { size: 1 << 20, chunks: vec![c1], extents: Some(vec![(4096, 5), (8192, 4)]) },
                None,
            ),
            entry(b"sym", meta(0o777, &[]), EntryKind::Symlink { target: b"../dir/x".to_vec() }, None),
            entry(b"\xffnot-utf8", plain.clone(), EntryKind::Fifo, None),
        ],
    };
    let one_file = Tree {
        entries: vec![entry(
            b"hello.txt",
            plain.clone(),
            EntryKind::File { size: 9, chunks: vec![c1], extents: None },
            None,
        )],
    };
    let holes_only = Tree {
        entries: vec![entry(
            b"holes",
            plain,
            EntryKind::File { size: 1 << 30, chunks: vec![], extents: Some(vec![]) },
            None,
        )],
    };
    vec![
        ("tree-empty", Tree::default()),
        ("tree-all-kinds", all_kinds),
        ("tree-one-file", one_file),
        ("tree-holes", holes_only),
    ]
}

// ---------------------------------------------------------------------------
// Packages

/// A manifest written by hand: one of every operation and node kind.
const HAND_MANIFEST: &str = r#"{"format":1,"id":"SW-2026-0042","title":"Hand made","version":"1:2.0~rc1-3","kind":"service-pack",
"description":"every kind of op","created":"2026-01-01T00:00:00Z",
"applies_to":{"images":["web"],"os_id":"debian","version_min":"12","version_max":"13"},
"requires":["SW-2026-0001"],"supersedes":["SW-2025-0100"],
"ops":[
{"action":"add","path":"etc","entry":{"kind":"dir","mode":493,"uid":0,"gid":0,"mtime":[1700000000,5]}},
{"action":"replace","path":"etc/a","entry":{"kind":"file","size":5,"blake3":"0000000000000000000000000000000000000000000000000000000000000000","data":{"offset":0,"length":14,"stored_blake3":"1111111111111111111111111111111111111111111111111111111111111111","encoding":"zstd"},"mode":420,"uid":0,"gid":0,"mtime":[1,0],"xattrs":[["757365722e61","76"]]},"version":"2.0-1"},
{"action":"replace","path":"etc/b","entry":{"kind":"file","size":5,"blake3":"0000000000000000000000000000000000000000000000000000000000000000","data":{"offset":14,"length":4,"stored_blake3":"1111111111111111111111111111111111111111111111111111111111111111","encoding":"zstd-ref","base":"2222222222222222222222222222222222222222222222222222222222222222"},"mode":420,"uid":0,"gid":0,"mtime":[1,0]},"old":{"kind":"file","blake3":"2222222222222222222222222222222222222222222222222222222222222222"}},
{"action":"add","path":"etc/c","entry":{"kind":"hardlink","target":"etc/a","mode":420,"uid":0,"gid":0,"mtime":[1,0]}},
{"action":"add","path":"etc/l","entry":{"kind":"symlink","target":"../usr/x","mode":511,"uid":0,"gid":0,"mtime":[1,0]}},
{"action":"delete","path":"etc/old","old":{"kind":"other"}}],
"payload":{"size":18,"blake3":"3333333333333333333333333333333333333333333333333333333333333333"}}"#;

/// Invalid on purpose: unsafe paths, a hard link to nothing, a delta without base.
const HAND_MANIFEST_BAD: &str = r#"{"format":1,"id":"x","title":"","version":"1","kind":"hotfix","created":"",
"ops":[{"action":"add","path":"../x","entry":{"kind":"dir","mode":493,"uid":0,"gid":0,"mtime":[0,0]}},
{"action":"add","path":"a//b","entry":{"kind":"hardlink","target":"nope","mode":0,"uid":0,"gid":0,"mtime":[0,0]}},
{"action":"replace","path":"d","entry":{"kind":"file","size":1,"blake3":"","data":{"offset":0,"length":1,"stored_blake3":"","encoding":"bidiff-zstd"},"mode":0,"uid":0,"gid":0,"mtime":[0,0]}}],
"payload":{"size":0,"blake3":""}}"#;

fn write_tree(root: &Path, files: &[(&str, &[u8])]) -> Result<()> {
    for (p, content) in files {
        let p = root.join(p);
        fs::create_dir_all(p.parent().expect("below the root"))?;
        fs::write(p, content)?;
    }
    Ok(())
}

/// A tiny "executable": ELF magic and code-like bytes, so deltas use bidiff.
fn fake_elf(seed: u8) -> Vec<u8> {
    let mut v = b"\x7fELF\x02\x01\x01\x00".to_vec();
    v.extend((0..1500u32).map(|i| (i.wrapping_mul(31) as u8) ^ if i % 97 == 0 { seed } else { 0 }));
    v
}

fn text(lines: u32, changed: u32) -> Vec<u8> {
    (0..lines).flat_map(|i| format!("key{i} = {}\n", if i == changed { 999 } else { i }).into_bytes()).collect()
}

/// The `delta_decode` input for one encoded blob.
fn delta_seed(enc: &slipway_package::delta::Encoded, base: Option<&[u8]>, size: usize) -> Vec<u8> {
    use slipway_package::manifest::Encoding;
    let mut v = vec![match enc.encoding {
        Encoding::Zstd => 0,
        Encoding::BidiffZstd => 1,
        Encoding::ZstdRef => 2,
    }];
    v.extend_from_slice(&(size as u32).to_le_bytes()[..3]);
    let base = base.unwrap_or_default();
    v.extend_from_slice(&(base.len() as u16).to_le_bytes());
    v.extend_from_slice(base);
    v.extend_from_slice(&enc.bytes);
    v
}

/// Gives every entry below `root` the same mtime (not following symlinks).
fn freeze(root: &Path) -> Result<()> {
    let t = rustix::fs::Timespec { tv_sec: 1_700_000_000, tv_nsec: 0 };
    let ts = rustix::fs::Timestamps { last_access: t, last_modification: t };
    for e in fs::read_dir(root)? {
        let p = e?.path();
        if fs::symlink_metadata(&p)?.is_dir() {
            freeze(&p)?;
        }
        rustix::fs::utimensat(rustix::fs::CWD, &p, &ts, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
    }
    Ok(())
}

fn package_seeds(seeds: &Path) -> Result<usize> {
    use slipway_package::build::{from_diff, from_dir, BuildOptions, Header};
    use slipway_package::delta::{encode, EncodeOptions};
    use slipway_package::keys::load_secret;
    use slipway_package::manifest::{AppliesTo, Kind};

    let (sk, _) = load_secret(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/package-test-key.key")))
        .map_err(|e| format!("{e:#}"))?;
    let scratch = std::env::temp_dir().join(format!("slipway-make-seeds-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    let (old, new, dir) = (scratch.join("old"), scratch.join("new"), scratch.join("dir"));
    let (elf1, elf2) = (fake_elf(0), fake_elf(0x5a));
    let (text1, text2) = (text(150, 9999), text(150, 70));
    write_tree(&old, &[("usr/bin/tool", &elf1), ("etc/app.conf", &text1), ("etc/gone", b"bye\n"), ("keep", b"k")])?;
    write_tree(&new, &[("usr/bin/tool", &elf2), ("etc/app.conf", &text2), ("etc/new", b"hi\n"), ("keep", b"k")])?;
    fs::hard_link(new.join("etc/new"), new.join("etc/new2"))?;
    std::os::unix::fs::symlink("app.conf", new.join("etc/link"))?;
    write_tree(&dir, &[("opt/app/run", b"#!/bin/sh\necho hi\n"), ("opt/app/README", b"read me\n")])?;
    for t in [&old, &new, &dir] {
        freeze(t)?;
    }
    // The manifests' creation time (signatures stay randomized).
    std::env::set_var("SOURCE_DATE_EPOCH", "1700000000");
    let toml = scratch.join("pkg.toml");
    fs::write(
        &toml,
        "id = \"SW-SEED-DIR\"\ntitle = \"seed\"\nversion = \"1.0\"\nkind = \"rollup\"\n\
         delete = [\"opt/old\"]\ndefault_version = \"1.0-1\"\n[applies_to]\nos_id = \"debian\"\n",
    )?;
    let header = Header {
        id: "SW-SEED-DIFF".into(),
        title: "seed".into(),
        version: "2.0".into(),
        kind: Kind::Hotfix,
        description: "from two trees".into(),
        applies_to: AppliesTo::default(),
        requires: vec!["SW-SEED-DIR".into()],
        supersedes: vec![],
    };
    let opts = BuildOptions { deltas: true, level: 19 };
    let mut packages: Vec<(&str, Vec<u8>)> = Vec::new();
    for (what, signed) in [("package-diff-signed", true), ("package-diff-unsigned", false)] {
        let out = scratch.join(what);
        from_diff(&old, &new, header.clone(), &opts, signed.then_some(&sk), &out).map_err(|e| format!("{e:#}"))?;
        packages.push((what, fs::read(&out)?));
    }
    let out = scratch.join("dir.slwpkg");
    from_dir(&dir, &toml, &opts, Some(&sk), &out).map_err(|e| format!("{e:#}"))?;
    packages.push(("package-dir-signed", fs::read(&out)?));

    // Damaged copies of the signed diff package.
    let good = packages[0].1.clone();
    let mlen = u64::from_le_bytes(good[8..16].try_into()?) as usize;
    let mut bad_sig = good.clone();
    bad_sig[16 + mlen / 2] ^= 1;
    let mut bad_payload = good.clone();
    *bad_payload.last_mut().expect("not empty") ^= 1;
    let mut trailing = good.clone();
    trailing.push(0);
    packages.push(("package-bad-signature", bad_sig));
    packages.push(("package-bad-payload", bad_payload));
    packages.push(("package-trailing", trailing));
    packages.push(("package-truncated", good[..good.len() - 7].to_vec()));

    let mut n = 0;
    for (what, bytes) in &packages {
        n += put(seeds, &["package_open"], what, bytes)?;
        if ["package-diff-unsigned", "package-dir-signed", "package-bad-signature"].contains(what) {
            let m = u64::from_le_bytes(bytes[8..16].try_into()?) as usize;
            n += put(seeds, &["package_manifest"], &format!("manifest-{what}"), &bytes[16..16 + m])?;
        }
    }
    n += put(seeds, &["package_manifest"], "hand-manifest", HAND_MANIFEST.as_bytes())?;
    n += put(seeds, &["package_manifest"], "hand-manifest-bad", HAND_MANIFEST_BAD.as_bytes())?;

    // A hand-assembled unsigned package whose manifest holds the hand-made
    // manifest (with its made-up hashes: it opens up to the payload check).
    let mut hand = b"SLWPKG\x00\x01".to_vec();
    hand.extend_from_slice(&(HAND_MANIFEST.len() as u64).to_le_bytes());
    hand.extend_from_slice(HAND_MANIFEST.as_bytes());
    hand.extend_from_slice(&0u64.to_le_bytes());
    hand.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x05, 0x29, 0x00, 0x00, b'h', b'e', b'l', b'l', b'o']);
    hand.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
    n += put(seeds, &["package_open"], "hand-package", &hand)?;

    // Blobs of every encoding for delta_decode.
    let d = EncodeOptions { level: 19, deltas: true };
    for (what, content, base) in [
        ("delta-zstd", &text2[..], None),
        ("delta-zstd-ref", &text2[..], Some(&text1[..])),
        ("delta-bidiff", &elf2[..], Some(&elf1[..])),
    ] {
        let enc = encode(content, base, d)?;
        n += put(seeds, &["delta_decode"], what, &delta_seed(&enc, base, content.len()))?;
    }
    let _ = fs::remove_dir_all(&scratch);
    Ok(n)
}
