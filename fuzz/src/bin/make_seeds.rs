//! Writes the seed corpora in `fuzz/seeds/<target>/` (not a fuzz target).
//!
//! ```text
//! cargo run --features make-seeds --bin make_seeds -- SEEDS_DIR [STORE_DIR]
//! ```
//!
//! Always writes hand-built trees covering every entry kind (for `tree` and
//! `tree_roundtrip`). Given a store made by `slipway capture` (see
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
