//! Comparing two image versions path by path, and the bytes a store holding
//! one still needs to get the other.

use std::collections::HashSet;

use serde::Serialize;

use crate::id::BlobId;
use crate::store::{BlobReader, ImageVersion, Store};
use crate::tree::{EntryKind, Tree, TreeEntry};

/// How one path differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    /// Content (file data, symlink target, device number) differs.
    Content,
    /// Owner, mode, mtime, xattrs or hard-link group differ, content not.
    Metadata,
    /// The entry is of another type (a file became a symlink, ...).
    Type,
}

/// One changed path.
#[derive(Clone, Debug, Serialize)]
pub struct DiffEntry {
    pub path: String,
    pub change: Change,
    /// Content changed *and* metadata changed (only on `content` entries).
    pub metadata_too: bool,
}

/// What `diff` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DiffReport {
    pub from: String,
    pub to: String,
    pub entries: Vec<DiffEntry>,
    /// With `bytes`: blobs `to` uses that `from` does not, their
    /// uncompressed size, and their compressed size in this store's packs.
    pub new_blobs: Option<u64>,
    pub new_bytes: Option<u64>,
    pub new_stored_bytes: Option<u64>,
}

/// Compares `a` with `b`. Subtrees with equal tree ids are skipped unread.
pub fn diff(store: &Store, a: &ImageVersion, b: &ImageVersion, bytes: bool) -> anyhow::Result<DiffReport> {
    let mut r = store.reader();
    let mut rep = DiffReport { from: a.label(), to: b.label(), ..Default::default() };
    if a.record.root.metadata().ok() != b.record.root.metadata().ok() {
        rep.entries.push(DiffEntry { path: "/".into(), change: Change::Metadata, metadata_too: false });
    }
    diff_trees(&mut r, Some(&a.record.root.tree), Some(&b.record.root.tree), "", &mut rep.entries)?;
    if bytes {
        let mut have = HashSet::new();
        blobs_of(&mut r, &a.record.root.tree, &mut have)?;
        let mut want = HashSet::new();
        blobs_of(&mut r, &b.record.root.tree, &mut want)?;
        let (mut n, mut raw, mut stored) = (0u64, 0u64, 0u64);
        for id in want.difference(&have) {
            let loc = store.index().get(id).ok_or_else(|| anyhow::anyhow!("blob {id} of {} is missing", b.label()))?;
            n += 1;
            raw += loc.len as u64;
            stored += loc.stored_estimate();
        }
        rep.new_blobs = Some(n);
        rep.new_bytes = Some(raw);
        rep.new_stored_bytes = Some(stored);
    }
    Ok(rep)
}

/// Every blob (trees and chunks) an image uses.
pub(crate) fn blobs_of(r: &mut BlobReader<'_>, tree: &BlobId, out: &mut HashSet<BlobId>) -> anyhow::Result<()> {
    if !out.insert(*tree) {
        return Ok(()); // a subtree seen before: its blobs are in already
    }
    for e in r.tree(tree)?.entries {
        match &e.kind {
            EntryKind::Dir { tree } => blobs_of(r, tree, out)?,
            EntryKind::File { chunks, .. } => out.extend(chunks.iter().map(|c| c.id)),
            _ => {}
        }
    }
    Ok(())
}

fn load(r: &mut BlobReader<'_>, t: Option<&BlobId>) -> anyhow::Result<Tree> {
    Ok(match t {
        Some(t) => r.tree(t)?,
        None => Tree::default(),
    })
}

fn content_differs(a: &EntryKind, b: &EntryKind) -> bool {
    match (a, b) {
        (EntryKind::Dir { .. }, EntryKind::Dir { .. }) => false,
        (
            EntryKind::File { size: s1, chunks: c1, extents: e1 },
            EntryKind::File { size: s2, chunks: c2, extents: e2 },
        ) => s1 != s2 || c1 != c2 || e1 != e2,
        _ => a != b,
    }
}

fn diff_trees(
    r: &mut BlobReader<'_>,
    a: Option<&BlobId>,
    b: Option<&BlobId>,
    at: &str,
    out: &mut Vec<DiffEntry>,
) -> anyhow::Result<()> {
    if a == b {
        return Ok(());
    }
    let (ta, tb) = (load(r, a)?, load(r, b)?);
    let (mut i, mut j) = (0, 0);
    // Merge the two name-sorted lists.
    while i < ta.entries.len() || j < tb.entries.len() {
        let ea = ta.entries.get(i);
        let eb = tb.entries.get(j);
        let order = match (ea, eb) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let x = ea.expect("left entry");
                added_or_removed(r, x, at, Change::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let y = eb.expect("right entry");
                added_or_removed(r, y, at, Change::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (ea.expect("left"), eb.expect("right"));
                let path = format!("{at}/{}", x.name);
                let meta = x.meta != y.meta || x.hardlink.is_some() != y.hardlink.is_some();
                if std::mem::discriminant(&x.kind) != std::mem::discriminant(&y.kind) {
                    out.push(DiffEntry { path: path.clone(), change: Change::Type, metadata_too: meta });
                    // What was below a directory that is now something else.
                    if let EntryKind::Dir { tree } = &x.kind {
                        subtree(r, tree, &path, Change::Removed, out)?;
                    }
                    if let EntryKind::Dir { tree } = &y.kind {
                        subtree(r, tree, &path, Change::Added, out)?;
                    }
                } else if content_differs(&x.kind, &y.kind) {
                    out.push(DiffEntry { path, change: Change::Content, metadata_too: meta });
                } else {
                    if meta {
                        out.push(DiffEntry { path: path.clone(), change: Change::Metadata, metadata_too: false });
                    }
                    if let (EntryKind::Dir { tree: t1 }, EntryKind::Dir { tree: t2 }) = (&x.kind, &y.kind) {
                        diff_trees(r, Some(t1), Some(t2), &path, out)?;
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

fn added_or_removed(
    r: &mut BlobReader<'_>,
    e: &TreeEntry,
    at: &str,
    change: Change,
    out: &mut Vec<DiffEntry>,
) -> anyhow::Result<()> {
    let path = format!("{at}/{}", e.name);
    out.push(DiffEntry { path: path.clone(), change, metadata_too: false });
    if let EntryKind::Dir { tree } = &e.kind {
        subtree(r, tree, &path, change, out)?;
    }
    Ok(())
}

/// Every entry below a directory that was added or removed as a whole.
fn subtree(
    r: &mut BlobReader<'_>,
    tree: &BlobId,
    at: &str,
    change: Change,
    out: &mut Vec<DiffEntry>,
) -> anyhow::Result<()> {
    for e in r.tree(tree)?.entries {
        added_or_removed(r, &e, at, change, out)?;
    }
    Ok(())
}
