//! Importing an image version blob by blob from somewhere else (a server, a
//! distribution point): the caller fetches what [`Import::missing`] names,
//! hands each blob to [`Import::add`], which checks its hash before it is
//! queued, and [`Import::finish`] writes the packs, the index and last the
//! image's ref. A killed import leaves only unreferenced packs behind, which
//! the next import reuses.

use std::collections::HashSet;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::id::BlobId;
use crate::lock::WriteLock;
use crate::pack::BlobKind;
use crate::packer::Packer;
use crate::record::ImageRecord;
use crate::store::{BlobReader, ImageVersion, Store};
use crate::tree::EntryKind;

/// Every blob of the tree `tree` in walk order (trees before what they
/// hold), each once.
pub fn image_blobs(r: &mut BlobReader<'_>, tree: &BlobId) -> anyhow::Result<Vec<(BlobId, BlobKind)>> {
    let mut out = Vec::new();
    walk(r, tree, &mut HashSet::new(), &mut out)?;
    Ok(out)
}

fn walk(
    r: &mut BlobReader<'_>,
    tree: &BlobId,
    seen: &mut HashSet<BlobId>,
    out: &mut Vec<(BlobId, BlobKind)>,
) -> anyhow::Result<()> {
    if !seen.insert(*tree) {
        return Ok(());
    }
    out.push((*tree, BlobKind::Tree));
    for e in r.tree(tree)?.entries {
        match &e.kind {
            EntryKind::Dir { tree } => walk(r, tree, seen, out)?,
            EntryKind::File { chunks, .. } => {
                for c in chunks {
                    if seen.insert(c.id) {
                        out.push((c.id, BlobKind::Data));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// What an import did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    pub image: String,
    /// Blobs added, and their uncompressed bytes.
    pub blobs_added: u64,
    pub bytes_added: u64,
    pub pack_bytes_written: u64,
}

/// An import in progress; holds the store's writer lock.
pub struct Import<'a> {
    store: &'a mut Store,
    packer: Option<Packer>,
    report: ImportReport,
    _lock: WriteLock,
}

impl<'a> Import<'a> {
    /// Takes the writer lock of `store`.
    pub fn begin(store: &'a mut Store, waiting: &dyn Fn(&str)) -> anyhow::Result<Import<'a>> {
        let lock = store.lock(waiting)?;
        let packer = Packer::new(store);
        Ok(Import { store, packer: Some(packer), report: ImportReport::default(), _lock: lock })
    }

    /// The blobs of `wanted` that the store does not hold yet.
    pub fn missing(&self, wanted: &[(BlobId, BlobKind)]) -> Vec<(BlobId, BlobKind)> {
        let p = self.packer.as_ref().expect("packer until finish");
        wanted.iter().filter(|(id, _)| !p.has(self.store.index(), id)).copied().collect()
    }

    /// Checks that `data` is the blob `id` of `kind`, then queues it.
    pub fn add(&mut self, id: BlobId, kind: BlobKind, data: &[u8]) -> anyhow::Result<()> {
        let got = kind.hash(data);
        if got != id {
            bail!("blob {id} arrived damaged or forged: its bytes hash to {got}");
        }
        let p = self.packer.as_mut().expect("packer until finish");
        if p.add(self.store.index(), id, kind, data)? {
            self.report.blobs_added += 1;
            self.report.bytes_added += data.len() as u64;
        }
        Ok(())
    }

    /// Writes what was queued and then the image's record and ref (as
    /// `NAME@VERSION` of the record, kept when the store has that version
    /// with the same record already). Fails when a blob of the image is still
    /// missing.
    pub fn finish(mut self, record: &ImageRecord) -> anyhow::Result<(ImageVersion, ImportReport)> {
        let packer = self.packer.take().expect("packer until finish").finish()?;
        self.report.pack_bytes_written = packer.pack_bytes;
        self.store.reload_index()?;
        let mut r = self.store.reader();
        let blobs = image_blobs(&mut r, &record.root.tree)
            .with_context(|| format!("checking that every blob of {}@{} arrived", record.name, record.version))?;
        drop(r);
        if let Some((id, _)) = blobs.iter().find(|(id, _)| !self.store.index().contains(id)) {
            bail!("blob {id} of {}@{} did not arrive; import it again", record.name, record.version);
        }
        let id = BlobId::of(&record.encode());
        let have = self.store.versions(&record.name)?.contains(&record.version);
        if have {
            let existing = self.store.ref_target(&record.name, record.version)?;
            if existing != id {
                bail!(
                    "{}@{} in {} is another image than the one imported (record {existing}, not {id}); \
                     use another cache store",
                    record.name,
                    record.version,
                    self.store.path().display()
                );
            }
        } else {
            let written = self.store.commit_image(record)?;
            debug_assert_eq!(written, id);
        }
        self.report.image = format!("{}@{}", record.name, record.version);
        let img = ImageVersion { record: record.clone(), record_id: id };
        Ok((img, self.report))
    }
}
