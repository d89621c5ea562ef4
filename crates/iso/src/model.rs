//! The tree an ISO image is written from and read back into, with its boot
//! configuration. `iso build` makes one from a directory or a store image,
//! `iso edit` from the input image (file content then points at the input's
//! extents), and the writer lays out whatever it is given.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::Serialize;
use slipway_fstree::{display_bytes, Timestamp};

/// What Rock Ridge records about an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
}

impl From<&slipway_fstree::Metadata> for Meta {
    fn from(m: &slipway_fstree::Metadata) -> Self {
        Meta { mode: m.mode & 0o7777, uid: m.uid, gid: m.gid, mtime: m.mtime }
    }
}

/// Where a regular file's bytes come from when the image is written.
#[derive(Clone, Debug)]
pub enum Content {
    /// A whole file on the host.
    Path(Arc<Path>),
    /// Bytes in memory (generated files: ESP images, answer files).
    Bytes(Arc<[u8]>),
    /// Byte ranges `(offset, length)` of a file on the host, concatenated:
    /// a file inside an input ISO (one range per extent).
    Region { file: Arc<Path>, ranges: Vec<(u64, u64)> },
    /// Supplied by the caller's [`External`] source (a store image's file).
    External(u64),
}

/// Supplies [`Content::External`] content while an image is written.
pub trait External {
    /// Writes exactly `size` bytes of content `id` to `out`.
    fn write_external(&mut self, id: u64, size: u64, out: &mut dyn std::io::Write) -> anyhow::Result<()>;
}

/// An entry of a directory.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The name as Rock Ridge records it (any bytes but `/` and NUL).
    pub name: Vec<u8>,
    pub meta: Meta,
    pub kind: Kind,
    /// Hard-link group: regular files in one group share one extent and one
    /// Rock Ridge file serial number.
    pub link: Option<u64>,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Dir(Vec<Entry>),
    File { size: u64, content: Content },
    Symlink(Vec<u8>),
    CharDev(u64),
    BlockDev(u64),
    Fifo,
    Socket,
}

impl Kind {
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Dir(_) => "dir",
            Kind::File { .. } => "file",
            Kind::Symlink(_) => "symlink",
            Kind::CharDev(_) => "chardev",
            Kind::BlockDev(_) => "blockdev",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

/// A whole directory tree: the root's metadata and its entries.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub root: Meta,
    pub entries: Vec<Entry>,
}

/// Splits `a/b/c` into names; empty and `.` components are skipped, `..`
/// is refused.
pub fn split(path: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => bail!("path {} contains '..'; give it from the image's top directory", display_bytes(path)),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

pub fn join(names: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for n in names {
        s.push('/');
        s.push_str(&display_bytes(n));
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

impl Tree {
    /// The directory at `dir` (names from the top), if there is one.
    pub fn dir_mut(&mut self, dir: &[Vec<u8>]) -> anyhow::Result<&mut Vec<Entry>> {
        let mut cur = &mut self.entries;
        for (i, n) in dir.iter().enumerate() {
            let e = cur
                .iter_mut()
                .find(|e| &e.name == n)
                .with_context(|| format!("{} does not exist", join(&dir[..=i])))?;
            match &mut e.kind {
                Kind::Dir(children) => cur = children,
                k => bail!("{} is a {}, not a directory", join(&dir[..=i]), k.type_name()),
            }
        }
        Ok(cur)
    }

    /// The entry at `path`.
    pub fn get(&self, path: &[Vec<u8>]) -> Option<&Entry> {
        let (last, dir) = path.split_last()?;
        let mut cur = &self.entries;
        for n in dir {
            match &cur.iter().find(|e| &e.name == n)?.kind {
                Kind::Dir(children) => cur = children,
                _ => return None,
            }
        }
        cur.iter().find(|e| &e.name == last)
    }

    /// Removes the entry at `path` (a directory goes with everything in it).
    pub fn remove(&mut self, path: &[Vec<u8>]) -> anyhow::Result<Entry> {
        let Some((last, dir)) = path.split_last() else { bail!("cannot remove the top directory") };
        let entries = self.dir_mut(dir)?;
        let i =
            entries.iter().position(|e| &e.name == last).with_context(|| format!("{} does not exist", join(path)))?;
        Ok(entries.remove(i))
    }

    /// Puts `entry` into the directory `dir`, creating missing parent
    /// directories with `parent_meta`. An existing entry of the same name is
    /// replaced when `replace` is set, an error otherwise; two directories
    /// are merged (entries of `entry` win).
    pub fn insert(&mut self, dir: &[Vec<u8>], entry: Entry, replace: bool, parent_meta: &Meta) -> anyhow::Result<()> {
        let mut cur = &mut self.entries;
        for (i, n) in dir.iter().enumerate() {
            let pos = match cur.iter().position(|e| &e.name == n) {
                Some(p) => p,
                None => {
                    cur.push(Entry {
                        name: n.clone(),
                        meta: parent_meta.clone(),
                        kind: Kind::Dir(Vec::new()),
                        link: None,
                    });
                    cur.len() - 1
                }
            };
            match &mut cur[pos].kind {
                Kind::Dir(children) => cur = children,
                k => bail!("{} is a {}, not a directory", join(&dir[..=i]), k.type_name()),
            }
        }
        merge_into(cur, entry, replace, dir)
    }
}

fn merge_into(dir: &mut Vec<Entry>, entry: Entry, replace: bool, at: &[Vec<u8>]) -> anyhow::Result<()> {
    let Some(pos) = dir.iter().position(|e| e.name == entry.name) else {
        dir.push(entry);
        return Ok(());
    };
    let mut path = at.to_vec();
    path.push(entry.name.clone());
    let slot = &mut dir[pos];
    match (&mut slot.kind, entry.kind) {
        (Kind::Dir(old), Kind::Dir(new)) => {
            slot.meta = entry.meta;
            for e in new {
                merge_into(old, e, replace, &path)?;
            }
            Ok(())
        }
        (_, kind) if replace => {
            *slot = Entry { kind, ..entry };
            Ok(())
        }
        _ => bail!("{} already exists; use --replace SRC:{} to overwrite it", join(&path), join(&path)),
    }
}

/// Where the El Torito boot catalog goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum CatalogPlace {
    /// A file at this path in the tree (like `isolinux/boot.cat`).
    File(Vec<Vec<u8>>),
    /// Not visible in any directory.
    Hidden,
}

/// The bytes an El Torito entry boots.
#[derive(Clone, Debug)]
pub enum BootImage {
    /// A regular file of the tree, by path.
    File(Vec<Vec<u8>>),
    /// An image no directory lists. `appended` places it after the ISO
    /// filesystem (as `xorriso -append_partition` does), otherwise inside.
    Hidden { size: u64, content: Content, appended: bool },
}

/// One El Torito boot catalog entry. The first is the default entry; the
/// others go into sections grouped by platform.
#[derive(Clone, Debug)]
pub struct BootEntry {
    /// [`crate::spec::PLATFORM_BIOS`], [`crate::spec::PLATFORM_EFI`], ...
    pub platform: u8,
    /// [`crate::spec::EMUL_NONE`] and the floppy / hard-disk emulations.
    pub emulation: u8,
    pub bootable: bool,
    pub load_segment: u16,
    pub system_type: u8,
    /// The sector count field (512-byte sectors to load). `None` computes
    /// it: 4 for a BIOS no-emulation image, the image's size (at most
    /// 0xFFFF) for EFI, 1 for emulated floppies and disks.
    pub load_sectors: Option<u16>,
    pub image: BootImage,
    /// Patch the isolinux boot info table (bytes 8..64) into the image.
    pub info_table: bool,
    /// Patch GRUB 2's boot info (the image's LBA * 4 + 5 at byte 2548).
    pub grub2_boot_info: bool,
}

impl BootEntry {
    /// A BIOS no-emulation entry with a boot info table, as isolinux wants.
    pub fn bios(path: Vec<Vec<u8>>) -> Self {
        BootEntry {
            platform: crate::spec::PLATFORM_BIOS,
            emulation: crate::spec::EMUL_NONE,
            bootable: true,
            load_segment: 0,
            system_type: 0,
            load_sectors: None,
            image: BootImage::File(path),
            info_table: true,
            grub2_boot_info: false,
        }
    }

    /// A UEFI no-emulation entry for an ESP image.
    pub fn efi(image: BootImage) -> Self {
        BootEntry {
            platform: crate::spec::PLATFORM_EFI,
            emulation: crate::spec::EMUL_NONE,
            bootable: true,
            load_segment: 0,
            system_type: 0,
            load_sectors: None,
            image,
            info_table: false,
            grub2_boot_info: false,
        }
    }
}

/// What goes into the system area (the first 32 KiB).
#[derive(Clone, Debug, Default)]
pub enum SystemArea {
    /// Zeros.
    #[default]
    None,
    /// A new hybrid MBR (+ GPT) layout (`--hybrid`).
    Hybrid(crate::hybrid::HybridOptions),
    /// The input image's system area, re-targeted to the new layout (`edit`).
    Carried(crate::hybrid::CarriedArea),
}

/// El Torito and system area configuration.
#[derive(Clone, Debug)]
pub struct Boot {
    pub catalog: CatalogPlace,
    pub entries: Vec<BootEntry>,
}

/// Text fields of the primary volume descriptor.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Volume {
    /// Up to 32 characters; d-characters (`A-Z 0-9 _`) for strict readers.
    pub volume_id: String,
    pub publisher: String,
    pub preparer: String,
    pub application: String,
    pub system_id: String,
    pub volume_set: String,
}

/// Everything that decides the bytes of an image besides the tree.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub volume: Volume,
    /// Creation time of the volume (`SOURCE_DATE_EPOCH` or now).
    pub created: i64,
    pub boot: Option<Boot>,
    pub system_area: SystemArea,
    /// Write a Joliet tree beside the ISO 9660 one.
    pub joliet: bool,
}
