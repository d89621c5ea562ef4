//! Verify: re-read every pack, re-hash every blob, check every index, record
//! and ref, and name the images and paths that use anything damaged.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::id::BlobId;
use crate::index::decode_index;
use crate::pack::{decompress_frame, parse_pack, BlobKind};
use crate::progress::Progress;
use crate::store::{pack_id_of, Store};
use crate::tree::EntryKind;

/// One thing found wrong.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// `pack`, `index`, `record` or `chunk`.
    pub object: &'static str,
    pub id: String,
    #[serde(serialize_with = "crate::serde_path::opt_path")]
    pub path: Option<PathBuf>,
    pub message: String,
}

/// A damaged or missing blob, and where an image uses it.
#[derive(Clone, Debug, Serialize)]
pub struct DamagedUse {
    pub image: String,
    pub path: String,
    pub blob: BlobId,
    pub problem: String,
}

/// What `verify` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    pub packs: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub images: u64,
    pub problems: Vec<Problem>,
    pub damaged_uses: Vec<DamagedUse>,
    /// Packs no index names: left by an interrupted capture, harmless.
    #[serde(serialize_with = "crate::serde_path::paths")]
    pub unindexed_packs: Vec<PathBuf>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.damaged_uses.is_empty()
    }
}

/// Checks the whole store. Never changes it.
pub fn verify(store: &mut Store, progress: &dyn Progress) -> anyhow::Result<VerifyReport> {
    // The refs first, then the index: a capture that commits in between has
    // its index files in place before its ref, so nothing it uses is missed.
    let mut versions = Vec::new();
    for name in store.names()? {
        for v in store.versions(&name)? {
            versions.push((name.clone(), v));
        }
    }
    store.reload_index()?;
    let store: &Store = store;
    let mut rep = VerifyReport::default();
    let index = store.index();
    // Blob id -> why it cannot be read.
    let mut bad: HashMap<BlobId, String> = HashMap::new();

    // 1. Every pack on disk: name = hash, trailer parses, every frame
    //    decompresses, every blob hashes to its id.
    let mut on_disk: HashSet<BlobId> = HashSet::new();
    let files = store.pack_files()?;
    let total: u64 = files.iter().filter_map(|p| p.metadata().ok()).map(|m| m.len()).sum();
    progress.phase("verifying", Some(total));
    let indexed: HashSet<BlobId> = index.packs().iter().copied().collect();
    // The index's blobs, grouped by pack once (not a scan of the whole index
    // per pack).
    let mut by_pack: HashMap<BlobId, Vec<(BlobId, crate::index::Location)>> = HashMap::new();
    for (b, l) in index.iter() {
        by_pack.entry(index.pack_id(l.pack)).or_default().push((*b, *l));
    }
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(id) = pack_id_of(path) else {
            rep.problems.push(Problem {
                object: "pack",
                id: name.into(),
                path: Some(path.clone()),
                message: "not a pack file name".into(),
            });
            continue;
        };
        on_disk.insert(id);
        rep.packs += 1;
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                rep.problems.push(Problem {
                    object: "pack",
                    id: id.to_hex(),
                    path: Some(path.clone()),
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        progress.advance(bytes.len() as u64);
        let whole_ok = BlobId::of(&bytes) == id;
        if !indexed.contains(&id) && whole_ok {
            rep.unindexed_packs.push(path.clone());
        }
        if !whole_ok {
            rep.problems.push(Problem {
                object: "pack",
                id: id.to_hex(),
                path: Some(path.clone()),
                message: "contents do not match the pack's name (damaged)".into(),
            });
        }
        // Which blobs the index expects in this pack (trust the index over a
        // trailer that may itself be damaged).
        let mut expected = by_pack.remove(&id).unwrap_or_default();
        if expected.is_empty() && whole_ok {
            if let Err(e) = parse_pack(&bytes) {
                rep.problems.push(Problem {
                    object: "pack",
                    id: id.to_hex(),
                    path: Some(path.clone()),
                    message: format!("trailer: {e}"),
                });
            }
        }
        if expected.is_empty() {
            if let Ok(entries) = parse_pack(&bytes) {
                for e in entries {
                    expected.push((
                        e.id,
                        crate::index::Location {
                            pack: 0,
                            kind: e.kind,
                            frame_off: e.frame_off,
                            frame_clen: e.frame_clen,
                            frame_ulen: e.frame_ulen,
                            off: e.off,
                            len: e.len,
                        },
                    ));
                }
            }
        } else if let Err(e) = parse_pack(&bytes) {
            rep.problems.push(Problem {
                object: "pack",
                id: id.to_hex(),
                path: Some(path.clone()),
                message: format!("trailer: {e}"),
            });
        }
        expected.sort_by_key(|(_, l)| (l.frame_off, l.off));
        let mut frames: HashMap<u64, Result<Vec<u8>, String>> = HashMap::new();
        for (blob, l) in &expected {
            rep.blobs += 1;
            let frame = frames.entry(l.frame_off).or_insert_with(|| {
                let end = (l.frame_off as usize).saturating_add(l.frame_clen as usize);
                if end > bytes.len() {
                    return Err("pack is truncated".into());
                }
                decompress_frame(&bytes[l.frame_off as usize..end], l.frame_ulen).map_err(|e| e.0)
            });
            match frame {
                Err(e) => {
                    bad.insert(*blob, e.clone());
                }
                Ok(f) => {
                    let d = &f[l.off as usize..(l.off + l.len) as usize];
                    rep.bytes += d.len() as u64;
                    if l.kind.hash(d) != *blob {
                        bad.insert(*blob, "content does not match its hash".into());
                    }
                }
            }
        }
    }
    for (b, l) in index.iter() {
        if !on_disk.contains(&index.pack_id(l.pack)) {
            bad.insert(*b, format!("pack {} is missing", index.pack_id(l.pack)));
        }
    }
    for (b, why) in &bad {
        rep.problems.push(Problem { object: "chunk", id: b.to_hex(), path: None, message: why.clone() });
    }

    // 2. Index files: each file's name is the hash of its contents.
    let index_dir = store.path().join("index");
    if let Ok(rd) = std::fs::read_dir(&index_dir) {
        for f in rd.flatten() {
            let p = f.path();
            if p.extension().and_then(|e| e.to_str()) != Some("idx") {
                continue;
            }
            let ok = std::fs::read(&p).ok().is_some_and(|b| {
                let named = p.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<BlobId>().ok());
                named == Some(BlobId::of(&b)) && decode_index(&b).is_ok()
            });
            if !ok {
                rep.problems.push(Problem {
                    object: "index",
                    id: String::new(),
                    path: Some(p),
                    message: "damaged index file".into(),
                });
            }
        }
    }

    // 3. Every image version: record, trees, and every chunk it uses. One
    // reader for all, so tree frames are decompressed once.
    let mut reader = store.reader();
    for (name, v) in versions {
        rep.images += 1;
        let label = format!("{name}@{v}");
        let img = match store.resolve(&crate::record::ImageSpec { name: name.clone(), version: Some(v) }) {
            Ok(i) => i,
            Err(e) => {
                rep.problems.push(Problem {
                    object: "record",
                    id: label.clone(),
                    path: None,
                    message: format!("{e:#}"),
                });
                continue;
            }
        };
        let mut links = HashMap::new();
        walk(store, &mut reader, &label, &img.record.root.tree, String::new(), &bad, &mut links, &mut rep);
    }
    progress.finish();
    Ok(rep)
}

/// First member (path, entry) of each hard-link group seen in an image.
type Links = HashMap<u64, (String, crate::tree::TreeEntry)>;

#[allow(clippy::too_many_arguments)]
fn walk(
    store: &Store,
    reader: &mut crate::store::BlobReader<'_>,
    label: &str,
    tree: &BlobId,
    at: String,
    bad: &HashMap<BlobId, String>,
    links: &mut Links,
    rep: &mut VerifyReport,
) {
    let problem = |id: &BlobId| -> Option<String> {
        if let Some(why) = bad.get(id) {
            return Some(why.clone());
        }
        if !store.index().contains(id) {
            return Some("missing (no index entry)".into());
        }
        None
    };
    let dir_path = if at.is_empty() { "/".to_string() } else { at.clone() };
    if let Some(why) = problem(tree) {
        rep.damaged_uses.push(DamagedUse {
            image: label.into(),
            path: dir_path,
            blob: *tree,
            problem: format!("directory listing: {why}"),
        });
        return;
    }
    if store.index().get(tree).map(|l| l.kind) != Some(BlobKind::Tree) {
        rep.damaged_uses.push(DamagedUse {
            image: label.into(),
            path: dir_path,
            blob: *tree,
            problem: "not a tree object".into(),
        });
        return;
    }
    let t = match reader.tree(tree) {
        Ok(t) => t,
        Err(e) => {
            rep.damaged_uses.push(DamagedUse {
                image: label.into(),
                path: dir_path,
                blob: *tree,
                problem: format!("{e:#}"),
            });
            return;
        }
    };
    for e in &t.entries {
        let p = format!("{at}/{}", e.name);
        if let Some(g) = e.hardlink {
            match links.get(&g) {
                Some((first, f)) if f.kind != e.kind || f.meta != e.meta => rep.damaged_uses.push(DamagedUse {
                    image: label.into(),
                    path: p.clone(),
                    blob: *tree,
                    problem: format!("hard-link group {g} differs from its first member {first}"),
                }),
                Some(_) => {}
                None => {
                    links.insert(g, (p.clone(), e.clone()));
                }
            }
        }
        match &e.kind {
            EntryKind::Dir { tree } => walk(store, reader, label, tree, p, bad, links, rep),
            EntryKind::File { chunks, .. } => {
                for c in chunks {
                    let wrong =
                        store.index().get(&c.id).filter(|l| l.len != c.len || l.kind != BlobKind::Data).map(|l| {
                            format!(
                                "the tree gives it {} bytes of file data, the store holds {} bytes of {:?}",
                                c.len, l.len, l.kind
                            )
                        });
                    if let Some(why) = problem(&c.id).or(wrong) {
                        rep.damaged_uses.push(DamagedUse {
                            image: label.into(),
                            path: p.clone(),
                            blob: c.id,
                            problem: why,
                        });
                    }
                }
            }
            _ => {}
        }
    }
}
