//! Copying an image version to another store: only the blobs the other store
//! lacks are read, and they are written there as new packs.

use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::import::image_blobs;
use crate::packer::Packer;
use crate::progress::Progress;
use crate::record::ImageRecord;
use crate::store::{ImageVersion, Store};

/// What an export to a store did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExportReport {
    pub image: String,
    /// The name the image has in the other store (`NAME@V` there).
    pub exported_as: String,
    pub blobs: u64,
    /// Blobs the other store already had.
    pub blobs_present: u64,
    pub blobs_copied: u64,
    /// Uncompressed bytes of the blobs copied, and bytes of packs written.
    pub bytes_copied: u64,
    pub pack_bytes_written: u64,
}

/// Copies `img` from `src` into the store at `dest` (created if missing),
/// as the next version of the same name there.
pub fn export_to_store(
    src: &Store,
    img: &ImageVersion,
    dest: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<ExportReport> {
    let mut dst = if dest.join("config").exists() {
        Store::open(dest)?
    } else {
        progress.note(&format!("creating a new store at {}", dest.display()));
        Store::init(dest)?
    };
    if let (Ok(a), Ok(b)) = (src.path().canonicalize(), dst.path().canonicalize()) {
        if a == b {
            bail!("{} is the store the image is in; give another store", dest.display());
        }
    }
    let _lock = dst.lock(&|m| progress.note(m))?;
    let mut r = src.reader();
    let blobs = image_blobs(&mut r, &img.record.root.tree).with_context(|| format!("reading {}", img.label()))?;
    let missing: Vec<_> = blobs.iter().filter(|(id, _)| !dst.index().contains(id)).copied().collect();
    let mut rep = ExportReport {
        image: img.label(),
        blobs: blobs.len() as u64,
        blobs_present: (blobs.len() - missing.len()) as u64,
        blobs_copied: missing.len() as u64,
        ..Default::default()
    };
    progress
        .phase("copying", Some(missing.iter().filter_map(|(id, _)| src.index().get(id)).map(|l| l.len as u64).sum()));
    let mut packer = Packer::new(&dst);
    for (id, kind) in &missing {
        let data = r.with_blob(id, |d| d.to_vec()).with_context(|| format!("reading {} from {}", id, img.label()))?;
        rep.bytes_copied += data.len() as u64;
        packer.add(dst.index(), *id, *kind, &data)?;
        progress.advance(data.len() as u64);
    }
    let packer = packer.finish()?;
    rep.pack_bytes_written = packer.pack_bytes;
    dst.reload_index()?;

    let versions = dst.versions(&img.record.name)?;
    let parent = match versions.last() {
        Some(v) => Some(dst.ref_target(&img.record.name, *v)?),
        None => None,
    };
    let version = versions.last().copied().unwrap_or(0) + 1;
    let mut record: ImageRecord = img.record.clone();
    record.version = version;
    record.parent = parent;
    record.stats.new_bytes = packer.pack_bytes;
    record.stats.stored_bytes =
        blobs.iter().filter_map(|(id, _)| dst.index().get(id)).map(|l| l.stored_estimate()).sum();
    dst.commit_image(&record)?;
    rep.exported_as = format!("{}@{version}", record.name);
    progress.finish();
    Ok(rep)
}
