//! Deleting image versions and collecting garbage.
//!
//! `gc` runs under the writer lock, so it never overlaps a capture: a capture
//! that starts first finishes (and its image is then live) before gc looks;
//! one that starts later waits. Readers take no lock; gc keeps a blob
//! reachable through the index files on disk at every moment: it writes new
//! packs and their index files first, then removes the old index files, and
//! only then the old packs. A reader that loaded the old index and finds a
//! pack gone reads the index again and finds the blob in its new pack.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::atomic::sync_dir;
use crate::diff::blobs_of;
use crate::id::BlobId;
use crate::index::{write_index_files, Index};
use crate::pack::PackEntry;
use crate::packer::Packer;
use crate::progress::Progress;
use crate::record::ImageSpec;
use crate::store::{pack_id_of, Store};

/// Removes the version `spec` (which must name a version). Its blobs stay
/// until `gc`.
pub fn delete(store: &mut Store, spec: &ImageSpec, progress: &dyn Progress) -> anyhow::Result<String> {
    let Some(v) = spec.version else {
        anyhow::bail!("give the version to delete, as {}@VERSION (see `slipway images`)", spec.name);
    };
    let _lock = store.lock(&|m| progress.note(m))?;
    store.resolve(spec)?;
    let dir = store.path().join("refs").join(&spec.name);
    let p = dir.join(v.to_string());
    std::fs::remove_file(&p).with_context(|| format!("removing ref {}", p.display()))?;
    sync_dir(&dir)?;
    if std::fs::remove_dir(&dir).is_ok() {
        sync_dir(&store.path().join("refs"))?;
    }
    Ok(format!("{}@{v}", spec.name))
}

/// What gc will do (with `dry_run`) or did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    pub images: u64,
    pub live_blobs: u64,
    pub packs_before: u64,
    pub bytes_before: u64,
    /// Packs with no live blob: removed.
    pub packs_removed: u64,
    /// Packs whose live share was below the threshold: their live blobs
    /// moved to new packs, then removed.
    pub packs_repacked: u64,
    pub packs_written: u64,
    pub packs_after: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    pub caches_removed: u64,
    pub dry_run: bool,
}

/// gc's settings.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Repack a pack when less than this share of its bytes is live.
    pub repack_below: f64,
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self { repack_below: 0.5, dry_run: false }
    }
}

fn file_len(p: &PathBuf) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Drops blobs no image version uses, and repacks packs that are mostly
/// garbage.
pub fn gc(store: &mut Store, opts: &GcOptions, progress: &dyn Progress) -> anyhow::Result<GcReport> {
    let _lock = store.lock(&|m| progress.note(m))?;
    let mut rep = GcReport { dry_run: opts.dry_run, ..Default::default() };

    // Mark. Any image that cannot be read stops gc before it removes anything.
    progress.phase("marking", None);
    let mut live = HashSet::new();
    let mut live_records = HashSet::new();
    for img in store.images()? {
        rep.images += 1;
        live_records.insert(img.record_id);
        blobs_of(&mut store.reader(), &img.record.root.tree, &mut live).with_context(|| {
            format!("reading {}; run `slipway verify`, gc removes nothing from a damaged store", img.label())
        })?;
    }
    for id in &live {
        if !store.index().contains(id) {
            anyhow::bail!(
                "blob {id} is used but missing; run `slipway verify`; gc removes nothing from a damaged store"
            );
        }
    }
    rep.live_blobs = live.len() as u64;

    // Plan, per pack: keep, remove, or repack.
    let index = store.index();
    let mut total: HashMap<u32, u64> = HashMap::new();
    let mut alive: HashMap<u32, u64> = HashMap::new();
    for (id, l) in index.iter() {
        *total.entry(l.pack).or_default() += l.len as u64;
        if live.contains(id) {
            *alive.entry(l.pack).or_default() += l.len as u64;
        }
    }
    let on_disk: Vec<(BlobId, PathBuf)> =
        store.pack_files()?.into_iter().filter_map(|p| Some((pack_id_of(&p)?, p))).collect();
    rep.packs_before = on_disk.len() as u64;
    rep.bytes_before = on_disk.iter().map(|(_, p)| file_len(p)).sum();
    let pos: HashMap<BlobId, u32> = index.packs().iter().enumerate().map(|(i, p)| (*p, i as u32)).collect();
    let (mut remove, mut repack, mut keep) = (Vec::new(), HashSet::new(), HashSet::new());
    for (id, path) in &on_disk {
        let p = pos.get(id).copied();
        let (t, a) =
            p.map(|p| (total.get(&p).copied().unwrap_or(0), alive.get(&p).copied().unwrap_or(0))).unwrap_or((0, 0));
        if a == 0 {
            remove.push(path.clone());
        } else if (a as f64) < opts.repack_below * t as f64 {
            repack.insert(p.expect("indexed"));
            remove.push(path.clone());
        } else {
            keep.insert(p.expect("indexed"));
        }
    }
    rep.packs_removed = (remove.len() - repack.len()) as u64;
    rep.packs_repacked = repack.len() as u64;

    let referenced_caches: HashSet<String> = live_records.iter().map(|r| format!("{r}.cache")).collect();
    let stale = |dir: &str, keep: &dyn Fn(&str) -> bool| -> Vec<PathBuf> {
        std::fs::read_dir(store.path().join(dir))
            .map(|rd| rd.flatten().filter(|e| !keep(&e.file_name().to_string_lossy())).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let old_records = stale("records", &|n| {
        n.strip_suffix(".json").and_then(|s| s.parse::<BlobId>().ok()).is_some_and(|id| live_records.contains(&id))
    });
    let old_caches = stale("caches", &|n| referenced_caches.contains(n));
    rep.records_removed = old_records.len() as u64;
    rep.caches_removed = old_caches.len() as u64;
    if opts.dry_run {
        rep.packs_after = rep.packs_before - remove.len() as u64;
        return Ok(rep);
    }

    // Repack: live blobs of mostly-garbage packs go to new packs (with
    // their own index files).
    let old_index_files: Vec<PathBuf> = std::fs::read_dir(store.index_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("idx"))
        .collect();
    let to_move: Vec<(BlobId, crate::index::Location)> =
        index.iter().filter(|(id, l)| repack.contains(&l.pack) && live.contains(*id)).map(|(b, l)| (*b, *l)).collect();
    progress.phase("repacking", Some(to_move.iter().map(|(_, l)| l.len as u64).sum()));
    let empty = Index::default();
    let mut packer = Packer::new(store);
    {
        let mut r = store.reader();
        let mut sorted = to_move;
        sorted.sort_by_key(|(_, l)| (l.pack, l.frame_off, l.off));
        for (id, l) in sorted {
            let data = r.with_blob(&id, |d| d.to_vec())?;
            packer.add(&empty, id, l.kind, &data)?;
            progress.advance(l.len as u64);
        }
    }
    let packer = packer.finish()?;
    rep.packs_written = packer.packs_written;

    // One index for what stays in kept packs (live blobs only).
    let kept: Vec<(BlobId, PackEntry)> = index
        .iter()
        .filter(|(id, l)| keep.contains(&l.pack) && live.contains(*id))
        .map(|(id, l)| {
            (
                index.pack_id(l.pack),
                PackEntry {
                    id: *id,
                    kind: l.kind,
                    frame_off: l.frame_off,
                    frame_clen: l.frame_clen,
                    frame_ulen: l.frame_ulen,
                    off: l.off,
                    len: l.len,
                },
            )
        })
        .collect();
    let new_files = write_index_files(&store.tmp_dir(), &store.index_dir(), &kept)?;
    // Then the old index files, then the packs they named.
    for p in old_index_files.iter().filter(|p| !new_files.contains(p)) {
        std::fs::remove_file(p).with_context(|| format!("removing old index file {}", p.display()))?;
    }
    sync_dir(&store.index_dir())?;
    for p in &remove {
        std::fs::remove_file(p).with_context(|| format!("removing pack {}", p.display()))?;
        if let Some(d) = p.parent() {
            let _ = sync_dir(d);
        }
    }
    for p in old_records.iter().chain(&old_caches) {
        std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
    }
    store.reload_index()?;
    let after = store.pack_files()?;
    rep.packs_after = after.len() as u64;
    rep.bytes_after = after.iter().map(file_len).sum();
    progress.finish();
    Ok(rep)
}
