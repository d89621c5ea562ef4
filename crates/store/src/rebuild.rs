//! Rebuilding the index from the packs' own trailers: the repair for a
//! damaged or lost index file.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::atomic::sync_dir;
use crate::id::BlobId;
use crate::index::write_index_files;
use crate::pack::parse_pack;
use crate::progress::Progress;
use crate::store::{pack_id_of, Store};

/// What a rebuild did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RebuildReport {
    pub packs: u64,
    pub blobs: u64,
    /// Packs left out because their contents do not match their name or
    /// their trailer is unreadable.
    #[serde(serialize_with = "crate::serde_path::path_pairs")]
    pub skipped: Vec<(PathBuf, String)>,
    /// Other index files removed (the new one may have the same name as
    /// an old one when nothing was lost).
    pub index_files_removed: u64,
}

/// Replaces every index file with one built from the trailers of every
/// intact pack. Takes the writer lock.
pub fn rebuild_index(store: &mut Store, progress: &dyn Progress) -> anyhow::Result<RebuildReport> {
    let _lock = store.lock_only(&|m| progress.note(m))?;
    let mut rep = RebuildReport::default();
    let files = store.pack_files()?;
    let total = files.iter().filter_map(|p| p.metadata().ok()).map(|m| m.len()).sum();
    progress.phase("reading packs", Some(total));
    let mut entries = Vec::new();
    for path in files {
        let Some(id) = pack_id_of(&path) else {
            rep.skipped.push((path, "not a pack file name".into()));
            continue;
        };
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        progress.advance(bytes.len() as u64);
        if BlobId::of(&bytes) != id {
            rep.skipped.push((path, "contents do not match the name (damaged)".into()));
            continue;
        }
        match parse_pack(&bytes) {
            Ok(es) => {
                rep.packs += 1;
                rep.blobs += es.len() as u64;
                entries.extend(es.into_iter().map(|e| (id, e)));
            }
            Err(e) => rep.skipped.push((path, format!("trailer: {e}"))),
        }
    }
    let old: Vec<PathBuf> = std::fs::read_dir(store.index_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("idx"))
        .collect();
    let new_paths = write_index_files(&store.tmp_dir(), &store.index_dir(), &entries)?;
    for p in old.into_iter().filter(|p| !new_paths.contains(p)) {
        std::fs::remove_file(&p).with_context(|| format!("removing old index file {}", p.display()))?;
        rep.index_files_removed += 1;
    }
    sync_dir(&store.index_dir())?;
    store.reload_index()?;
    progress.finish();
    Ok(rep)
}
