//! Reading ISO 9660 images: volume descriptors, the directory tree (with
//! Rock Ridge, else Joliet, else plain ISO 9660 names), the El Torito boot
//! catalog and the system area; and extracting the tree into a directory.
//!
//! Images are untrusted input. Every length and offset is checked against
//! the record, the area and the file it lies in; directory loops, runaway
//! nesting and continuation chains are refused; and the metadata read for
//! one tree is budgeted against the size of the image, so a crafted image
//! gets an error naming the image and the path inside it, never a panic, a
//! hang or an unbounded allocation.

mod boot;
mod dir;
mod extract;
mod susp;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::hybrid::SystemAreaInfo;
use crate::model;
use crate::spec::{self, SECTOR};

pub use boot::{BootEntryInfo, ElToritoInfo};
pub use extract::{extract, extract_with, ExtractStats};

/// Volume descriptors read before giving up on finding a terminator.
const MAX_DESCRIPTORS: u64 = 64;

/// An open ISO 9660 image.
#[derive(Debug)]
pub struct IsoImage {
    file: File,
    path: Arc<Path>,
    len: u64,
    descriptors: Vec<Descriptor>,
    /// Index of the primary volume descriptor in `descriptors`.
    primary: usize,
    /// Index of the Joliet supplementary descriptor and its level.
    joliet: Option<(usize, u8)>,
    /// The El Torito boot catalog's sector, from the boot record.
    catalog_lba: Option<u32>,
}

/// One volume descriptor as read (2048 bytes).
#[derive(Debug)]
struct Descriptor {
    lba: u64,
    raw: Vec<u8>,
}

/// Where a directory's records are: first sector (past any extended
/// attribute record) and byte length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirExtent {
    pub lba: u64,
    pub size: u64,
}

/// What `iso info` shows: the volume descriptors, the boot catalog and the
/// system area.
#[derive(Clone, Debug, Serialize)]
pub struct IsoInfo {
    /// The image file, as given.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// The volume space size of the primary descriptor, in 2048-byte sectors.
    pub volume_space_sectors: u64,
    pub volume_id: String,
    pub volume_descriptors: Vec<DescriptorInfo>,
    /// The tree carries Rock Ridge (an SP entry in the root and an ER entry
    /// naming RRIP).
    pub rock_ridge: bool,
    /// Joliet level (1-3) of the Joliet supplementary descriptor, if any.
    pub joliet: Option<u8>,
    pub el_torito: Option<ElToritoInfo>,
    pub system_area: SystemAreaInfo,
    /// What could not be read (a corrupt tree or boot catalog); empty for a
    /// sound image.
    pub problems: Vec<String>,
}

/// One volume descriptor, as `iso info` shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DescriptorInfo {
    /// `primary`, `supplementary`, `boot record`, `partition`,
    /// `terminator`, or `type N`.
    #[serde(rename = "type")]
    pub kind: String,
    pub lba: u64,
    /// Joliet level of a supplementary descriptor carrying Joliet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joliet: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_set: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preparer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Volume creation time, seconds since the Unix epoch (null when unset
    /// or not a volume descriptor).
    pub created: Option<i64>,
    pub modified: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_space_sectors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_lba: Option<u64>,
    /// Boot record: the boot system identifier (`EL TORITO SPECIFICATION`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_system_id: Option<String>,
    /// Boot record: the El Torito catalog's sector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_catalog_lba: Option<u64>,
}

impl IsoImage {
    /// Opens an image (a file or a block device) and reads its volume
    /// descriptors.
    pub fn open(path: &Path) -> anyhow::Result<IsoImage> {
        let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file.seek(SeekFrom::End(0)).with_context(|| format!("finding the size of {}", path.display()))?;
        let path: Arc<Path> = Arc::from(path);
        let first = spec::SYSTEM_AREA_SECTORS;
        if len < (first + 1) * SECTOR {
            bail!(
                "{}: not an ISO 9660 image: {len} bytes is too short to hold the volume descriptor at sector {first}",
                path.display()
            );
        }
        let mut descriptors = Vec::new();
        for lba in first..first + MAX_DESCRIPTORS {
            if (lba + 1) * SECTOR > len {
                break;
            }
            let mut raw = vec![0u8; SECTOR as usize];
            file.read_exact_at(&mut raw, lba * SECTOR)
                .with_context(|| format!("{}: reading the volume descriptor at sector {lba}", path.display()))?;
            if &raw[1..6] != spec::VD_MAGIC {
                if lba == first {
                    bail!("{}: not an ISO 9660 image (no CD001 volume descriptor at sector {first})", path.display());
                }
                break;
            }
            let end = raw[0] == spec::VD_TERMINATOR;
            descriptors.push(Descriptor { lba, raw });
            if end {
                break;
            }
        }
        let Some(primary) = descriptors.iter().position(|d| d.raw[0] == spec::VD_PRIMARY) else {
            bail!("{}: not an ISO 9660 image: no primary volume descriptor", path.display());
        };
        let pvd = &descriptors[primary].raw;
        let block = spec::read_both16(&pvd[128..132]);
        if u64::from(block) != SECTOR {
            bail!(
                "{}: the logical block size is {block} bytes; slipway reads images with 2048-byte blocks only",
                path.display()
            );
        }
        root_record(pvd).with_context(|| format!("{}: primary volume descriptor", path.display()))?;
        let joliet = descriptors.iter().enumerate().find_map(|(i, d)| {
            (d.raw[0] == spec::VD_SUPPLEMENTARY && root_record(&d.raw).is_ok()).then_some(())?;
            joliet_level(&d.raw).map(|l| (i, l))
        });
        let catalog_lba = descriptors.iter().find_map(|d| {
            (d.raw[0] == spec::VD_BOOT_RECORD && is_el_torito(&d.raw))
                .then(|| u32::from_le_bytes([d.raw[71], d.raw[72], d.raw[73], d.raw[74]]))
        });
        Ok(IsoImage { file, path, len, descriptors, primary, joliet, catalog_lba })
    }

    /// The image file, as given to [`IsoImage::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image file, shared (what [`model::Content::Region`] points at).
    pub fn shared_path(&self) -> Arc<Path> {
        self.path.clone()
    }

    /// Size of the image in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn pvd(&self) -> &[u8] {
        &self.descriptors[self.primary].raw
    }

    /// The volume space size of the primary descriptor, in sectors.
    pub fn volume_space_sectors(&self) -> u64 {
        u64::from(spec::read_both32(&self.pvd()[80..88]))
    }

    pub fn volume_id(&self) -> String {
        spec::read_text(&self.pvd()[40..72])
    }

    /// The text fields of the primary volume descriptor.
    pub fn volume(&self) -> model::Volume {
        let p = self.pvd();
        model::Volume {
            volume_id: spec::read_text(&p[40..72]),
            publisher: spec::read_text(&p[318..446]),
            preparer: spec::read_text(&p[446..574]),
            application: spec::read_text(&p[574..702]),
            system_id: spec::read_text(&p[8..40]),
            volume_set: spec::read_text(&p[190..318]),
        }
    }

    /// Volume creation time of the primary descriptor (seconds since the
    /// Unix epoch), if set.
    pub fn created(&self) -> Option<i64> {
        spec::read_date17(&self.pvd()[813..830])
    }

    /// Joliet level (1-3), if the image has a Joliet tree.
    pub fn joliet_level(&self) -> Option<u8> {
        self.joliet.map(|(_, l)| l)
    }

    /// The El Torito boot catalog's sector, if the image has a boot record.
    pub fn boot_catalog_lba(&self) -> Option<u64> {
        self.catalog_lba.map(u64::from)
    }

    /// The system area: the first 32768 bytes.
    pub fn system_area(&self) -> anyhow::Result<Vec<u8>> {
        let mut buf = vec![0u8; spec::SYSTEM_AREA_BYTES];
        self.read_at(0, &mut buf, || "the system area".into())?;
        Ok(buf)
    }

    /// Reads exactly `buf.len()` bytes at `off`, which the caller has checked
    /// against the file's length.
    fn read_at(&self, off: u64, buf: &mut [u8], what: impl FnOnce() -> String) -> anyhow::Result<()> {
        if off.checked_add(buf.len() as u64).is_none_or(|end| end > self.len) {
            bail!(
                "{}: {} ({} bytes at byte {off}) runs past the end of the image ({} bytes)",
                self.path.display(),
                what(),
                buf.len(),
                self.len
            );
        }
        self.file
            .read_exact_at(buf, off)
            .with_context(|| format!("{}: reading {} ({} bytes at byte {off})", self.path.display(), what(), buf.len()))
    }

    /// The root directory of the primary (ISO 9660 / Rock Ridge) tree.
    fn primary_root(&self) -> DirExtent {
        root_record(self.pvd()).unwrap_or(DirExtent { lba: 0, size: 0 })
    }

    fn joliet_root(&self) -> Option<DirExtent> {
        let (i, _) = self.joliet?;
        root_record(&self.descriptors[i].raw).ok()
    }

    /// The whole directory tree. Rock Ridge names and metadata when the
    /// image has them, else Joliet names, else ISO 9660 names (version and
    /// a trailing dot stripped). File content points at the image's extents.
    pub fn tree(&self) -> anyhow::Result<model::Tree> {
        dir::read_tree(self)
    }

    /// The El Torito boot configuration, with each boot image mapped to a
    /// file of `tree` where one starts at its sector, and the image's layout
    /// (which a carried system area points at). `None` without a boot record.
    pub fn boot(&self, tree: &model::Tree) -> anyhow::Result<Option<(model::Boot, crate::hybrid::Layout)>> {
        boot::read_boot(self, tree)
    }

    /// Volume descriptors, boot catalog and system area, for `iso info`.
    /// Problems in the tree or the boot catalog are listed in
    /// [`IsoInfo::problems`] rather than failing the whole report.
    pub fn info(&self) -> anyhow::Result<IsoInfo> {
        let mut problems = Vec::new();
        let rock_ridge = match dir::probe_rock_ridge(self) {
            Ok(rr) => rr.is_some_and(|r| r.er),
            Err(e) => {
                problems.push(format!("{e:#}"));
                false
            }
        };
        let tree = match self.tree() {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{e:#}"));
                model::Tree::default()
            }
        };
        let el_torito = match boot::info(self, &tree) {
            Ok(x) => x,
            Err(e) => {
                problems.push(format!("{e:#}"));
                None
            }
        };
        let sa = self.system_area()?;
        let boot_extents: Vec<(u8, crate::hybrid::Extent)> = el_torito
            .iter()
            .flat_map(|e| e.entries.iter())
            .map(|b| (b.platform_id, crate::hybrid::Extent { lba: b.lba, bytes: b.bytes }))
            .collect();
        Ok(IsoInfo {
            file: self.path.display().to_string(),
            size: self.len,
            volume_space_sectors: self.volume_space_sectors(),
            volume_id: self.volume_id(),
            volume_descriptors: self.descriptors.iter().map(describe_descriptor).collect(),
            rock_ridge,
            joliet: self.joliet_level(),
            el_torito,
            system_area: crate::hybrid::describe_with_boot(&sa, self.len, &boot_extents),
            problems,
        })
    }
}

/// The root directory record of a primary or supplementary descriptor.
fn root_record(vd: &[u8]) -> anyhow::Result<DirExtent> {
    let r = &vd[156..190];
    if (r[0] as usize) < 34 {
        bail!("the root directory record is {} bytes, less than 34", r[0]);
    }
    let lba = u64::from(spec::read_both32(&r[2..10])) + u64::from(r[1]);
    Ok(DirExtent { lba, size: u64::from(spec::read_both32(&r[10..18])) })
}

/// The Joliet level of a supplementary descriptor's escape sequences.
fn joliet_level(vd: &[u8]) -> Option<u8> {
    let esc = &vd[88..120];
    [(b"%/@", 1), (b"%/C", 2), (b"%/E", 3)]
        .into_iter()
        .find(|(seq, _)| esc.windows(3).any(|w| w == *seq))
        .map(|(_, l)| l)
}

fn is_el_torito(vd: &[u8]) -> bool {
    let id = &vd[7..39];
    id.starts_with(spec::EL_TORITO_ID) && id[spec::EL_TORITO_ID.len()..].iter().all(|&b| b == 0 || b == b' ')
}

fn describe_descriptor(d: &Descriptor) -> DescriptorInfo {
    let r = &d.raw;
    let kind = match r[0] {
        spec::VD_BOOT_RECORD => "boot record".to_string(),
        spec::VD_PRIMARY => "primary".to_string(),
        spec::VD_SUPPLEMENTARY => "supplementary".to_string(),
        3 => "partition".to_string(),
        spec::VD_TERMINATOR => "terminator".to_string(),
        t => format!("type {t}"),
    };
    let mut info = DescriptorInfo { kind, lba: d.lba, ..Default::default() };
    match r[0] {
        spec::VD_PRIMARY | spec::VD_SUPPLEMENTARY => {
            let joliet = if r[0] == spec::VD_SUPPLEMENTARY { joliet_level(r) } else { None };
            let text = |b: &[u8]| if joliet.is_some() { spec::read_text_ucs2(b) } else { spec::read_text(b) };
            info.joliet = joliet;
            info.system_id = Some(text(&r[8..40]));
            info.volume_id = Some(text(&r[40..72]));
            info.volume_set = Some(text(&r[190..318]));
            info.publisher = Some(text(&r[318..446]));
            info.preparer = Some(text(&r[446..574]));
            info.application = Some(text(&r[574..702]));
            info.created = spec::read_date17(&r[813..830]);
            info.modified = spec::read_date17(&r[830..847]);
            info.block_size = Some(spec::read_both16(&r[128..132]));
            info.volume_space_sectors = Some(u64::from(spec::read_both32(&r[80..88])));
            info.root_lba = root_record(r).ok().map(|x| x.lba);
        }
        spec::VD_BOOT_RECORD => {
            info.boot_system_id = Some(spec::read_text(&r[7..39]));
            if is_el_torito(r) {
                info.boot_catalog_lba = Some(u64::from(u32::from_le_bytes([r[71], r[72], r[73], r[74]])));
            }
        }
        _ => {}
    }
    info
}
