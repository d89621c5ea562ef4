//! Looking inside an image without applying it: find an entry by path, list
//! a directory, stream a file's content.

use std::io::Write;

use anyhow::{bail, Context};
use slipway_fstree::{display_bytes, EntryName};

use crate::store::{BlobReader, ImageVersion};
use crate::tree::{EntryKind, TreeEntry};

/// What a path inside an image names.
#[derive(Clone, Debug)]
pub enum Found {
    /// The image's top directory.
    Root,
    Entry(TreeEntry),
}

/// Splits a path inside an image into names. Leading, trailing and repeated
/// `/` and `.` components are ignored; `..` is refused (there is no "up" in a
/// lookup that never follows symlinks).
pub fn split_path(path: &[u8]) -> anyhow::Result<Vec<EntryName>> {
    let mut out = Vec::new();
    for c in path.split(|b| *b == b'/') {
        if c.is_empty() || c == b"." {
            continue;
        }
        if c == b".." {
            bail!("path {} contains '..'; give the path from the image's top directory", display_bytes(path));
        }
        out.push(EntryName::new(c.to_vec())?);
    }
    Ok(out)
}

/// Finds `path` in `image`, never following symlinks.
pub fn lookup(reader: &mut BlobReader<'_>, image: &ImageVersion, path: &[u8]) -> anyhow::Result<Found> {
    let names = split_path(path)?;
    let mut tree_id = image.record.root.tree;
    let mut found = Found::Root;
    for (i, n) in names.iter().enumerate() {
        let tree = reader.tree(&tree_id).with_context(|| format!("image {}", image.label()))?;
        let Some(e) = tree.get(n.as_bytes()) else {
            bail!("{} has no {}", image.label(), display_bytes(path));
        };
        if i + 1 < names.len() {
            match &e.kind {
                EntryKind::Dir { tree } => tree_id = *tree,
                EntryKind::Symlink { target } => bail!(
                    "{}: /{} is a symlink (to {}); slipway does not follow symlinks inside images, give the path it points to",
                    image.label(),
                    names[..=i].iter().map(|n| n.to_string()).collect::<Vec<_>>().join("/"),
                    display_bytes(target)
                ),
                _ => bail!("{}: /{} is not a directory", image.label(), names[..=i].iter().map(|n| n.to_string()).collect::<Vec<_>>().join("/")),
            }
        }
        found = Found::Entry(e.clone());
    }
    Ok(found)
}

/// Writes the content of a regular file (holes as zeros) to `out`.
pub fn read_file(reader: &mut BlobReader<'_>, entry: &TreeEntry, out: &mut dyn Write) -> anyhow::Result<()> {
    let EntryKind::File { size, chunks, extents } = &entry.kind else {
        bail!("{} is a {}, not a regular file", entry.name, entry.kind.type_name());
    };
    let zeros = |out: &mut dyn Write, mut n: u64| -> std::io::Result<()> {
        let z = [0u8; 8192];
        while n > 0 {
            let k = n.min(z.len() as u64) as usize;
            out.write_all(&z[..k])?;
            n -= k as u64;
        }
        Ok(())
    };
    let whole = [(0, *size)];
    let regions = extents.as_deref().unwrap_or(&whole);
    let mut pos = 0u64; // position in the file
    let mut ri = 0usize;
    let mut left = regions.first().map(|r| r.1).unwrap_or(0);
    if let Some(r) = regions.first() {
        zeros(out, r.0)?;
        pos = r.0;
    }
    for c in chunks {
        reader.with_chunk(c, |mut d| -> std::io::Result<()> {
            while !d.is_empty() {
                while left == 0 {
                    ri += 1;
                    let r = regions.get(ri).ok_or_else(|| std::io::Error::other("content longer than its extents"))?;
                    zeros(out, r.0 - pos)?;
                    pos = r.0;
                    left = r.1;
                }
                let n = d.len().min(left as usize);
                out.write_all(&d[..n])?;
                pos += n as u64;
                left -= n as u64;
                d = &d[n..];
            }
            Ok(())
        })??;
    }
    zeros(out, size - pos)?;
    Ok(())
}
