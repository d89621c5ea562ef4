//! The El Torito boot catalog: its entries, the boot images they point at
//! (a file of the tree, or bytes no directory lists), and the layout facts a
//! carried system area needs.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use anyhow::{anyhow, Result};
use serde::Serialize;

use super::IsoImage;
use crate::hybrid::{Extent, Layout};
use crate::model::{self, Boot, BootEntry, BootImage, CatalogPlace, Content, Entry, Kind, Tree};
use crate::spec::{self, SECTOR};

/// Bytes of boot catalog read: 2048 entries, far more than any real one.
const MAX_CATALOG: u64 = 64 * 1024;
/// MBR partition type of a GPT protective partition (never a boot image).
const MBR_PROTECTIVE: u8 = 0xEE;

/// One entry of the boot catalog, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub platform: u8,
    pub bootable: bool,
    pub emulation: u8,
    pub load_segment: u16,
    pub system_type: u8,
    pub load_sectors: u16,
    pub lba: u32,
}

/// What `iso info` shows about El Torito.
#[derive(Clone, Debug, Serialize)]
pub struct ElToritoInfo {
    pub catalog_lba: u64,
    /// The catalog's path in the tree, or null when no file lists it.
    pub catalog_path: Option<String>,
    pub entries: Vec<BootEntryInfo>,
}

/// One boot catalog entry, as `iso info` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct BootEntryInfo {
    /// `BIOS`, `UEFI`, `PowerPC`, `Mac`, or the id in hex (`0x..`).
    pub platform: String,
    /// The platform id itself (not in the JSON, which has the name).
    #[serde(skip)]
    pub platform_id: u8,
    /// `none`, `floppy-1.2`, `floppy-1.44`, `floppy-2.88`, `hard-disk`, or
    /// the media type in hex.
    pub emulation: String,
    pub bootable: bool,
    pub load_segment: u16,
    pub system_type: u8,
    /// The sector count field (512-byte sectors loaded by the firmware).
    pub load_sectors: u16,
    pub lba: u64,
    /// Size of the boot image in bytes.
    pub bytes: u64,
    /// The file the image is, or null when no directory lists it.
    pub path: Option<String>,
    /// A hidden image placed after the ISO 9660 filesystem.
    pub appended: bool,
    /// The image carries an isolinux boot info table.
    pub info_table: bool,
    /// The image carries GRUB 2's boot info.
    pub grub2_boot_info: bool,
}

/// A boot entry resolved against the tree.
struct Resolved {
    raw: RawEntry,
    image: BootImage,
    bytes: u64,
    info_table: bool,
    grub2_boot_info: bool,
}

fn fail(img: &IsoImage, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}: El Torito boot catalog: {msg}", img.path.display())
}

/// Reads the catalog the boot record points at.
pub(crate) fn read_catalog(img: &IsoImage) -> Result<Option<(u64, Vec<RawEntry>)>> {
    let Some(lba) = img.catalog_lba.map(u64::from) else { return Ok(None) };
    let off = lba * SECTOR;
    if off + 64 > img.len {
        return Err(fail(
            img,
            format!("catalog at sector {lba} lies past the end of the image ({} sectors)", spec::sectors(img.len)),
        ));
    }
    let n = MAX_CATALOG.min(img.len - off);
    let mut buf = vec![0u8; n as usize];
    img.file.read_exact_at(&mut buf, off).map_err(|e| fail(img, format!("reading sector {lba}: {e}")))?;
    let v = &buf[..32];
    if v[0] != 1 || v[30] != 0x55 || v[31] != 0xAA {
        return Err(fail(img, format!("sector {lba} does not start with a validation entry (01 ... 55 AA)")));
    }
    let sum = v.chunks_exact(2).fold(0u16, |s, c| s.wrapping_add(u16::from_le_bytes([c[0], c[1]])));
    if sum != 0 {
        return Err(fail(img, format!("the validation entry's checksum is wrong (the words add up to 0x{sum:04x})")));
    }
    let mut entries = vec![parse_entry(v[1], &buf[32..64])];
    let mut pos = 64usize;
    while let Some(h) = buf.get(pos..pos + 32) {
        match h[0] {
            0x90 | 0x91 => {
                let last = h[0] == 0x91;
                let platform = h[1];
                let count = u16::from_le_bytes([h[2], h[3]]);
                pos += 32;
                for i in 0..count {
                    let Some(e) = buf.get(pos..pos + 32) else {
                        return Err(fail(
                            img,
                            format!("section of platform 0x{platform:02x} ends at entry {} of {count}", i + 1),
                        ));
                    };
                    entries.push(parse_entry(platform, e));
                    pos += 32;
                    // Selection criteria extensions (0x44) follow an entry
                    // whose media type has bit 5 set, each with bit 5 of its
                    // second byte set when another follows.
                    let mut more = e[1] & 0x20 != 0;
                    while more {
                        match buf.get(pos..pos + 32) {
                            Some(x) if x[0] == 0x44 => {
                                more = x[1] & 0x20 != 0;
                                pos += 32;
                            }
                            _ => more = false,
                        }
                    }
                }
                if last {
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(Some((lba, entries)))
}

fn parse_entry(platform: u8, e: &[u8]) -> RawEntry {
    RawEntry {
        platform,
        bootable: e[0] == 0x88,
        emulation: e[1] & 0x0F,
        load_segment: u16::from_le_bytes([e[2], e[3]]),
        system_type: e[4],
        load_sectors: u16::from_le_bytes([e[6], e[7]]),
        lba: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
    }
}

/// First sector -> (path, size) of every non-empty regular file of `tree`
/// whose content is in `img`.
fn files_by_lba(img: &IsoImage, tree: &Tree) -> HashMap<u64, (Vec<Vec<u8>>, u64)> {
    fn walk(img: &IsoImage, entries: &[Entry], path: &mut Vec<Vec<u8>>, out: &mut HashMap<u64, (Vec<Vec<u8>>, u64)>) {
        for e in entries {
            path.push(e.name.clone());
            match &e.kind {
                Kind::Dir(children) => walk(img, children, path, out),
                Kind::File { size, content: Content::Region { file, ranges } } if *size > 0 && **file == *img.path => {
                    if let Some(&(off, _)) = ranges.first() {
                        if off % SECTOR == 0 {
                            out.entry(off / SECTOR).or_insert_with(|| (path.clone(), *size));
                        }
                    }
                }
                _ => {}
            }
            path.pop();
        }
    }
    let mut out = HashMap::new();
    walk(img, &tree.entries, &mut Vec::new(), &mut out);
    out
}

/// Partitions of the MBR and GPT in the system area: (first 512-byte
/// sector, sectors).
fn partitions(sa: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    if sa.len() >= 512 && sa[510] == 0x55 && sa[511] == 0xAA {
        for i in 0..4 {
            let p = &sa[446 + 16 * i..446 + 16 * (i + 1)];
            let start = u32::from_le_bytes([p[8], p[9], p[10], p[11]]);
            let count = u32::from_le_bytes([p[12], p[13], p[14], p[15]]);
            if p[4] != 0 && p[4] != MBR_PROTECTIVE && count > 0 {
                out.push((u64::from(start), u64::from(count)));
            }
        }
    }
    if let Some(h) = sa.get(512..604) {
        if &h[..8] == b"EFI PART" {
            let le64 = |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let table = le64(&h[72..80]);
            let count = u32::from_le_bytes([h[80], h[81], h[82], h[83]]).min(256) as u64;
            let size = u32::from_le_bytes([h[84], h[85], h[86], h[87]]) as u64;
            if size >= 128 {
                for i in 0..count {
                    let Some(off) = table.checked_mul(512).and_then(|t| t.checked_add(i * size)) else { break };
                    let Some(e) = usize::try_from(off).ok().and_then(|o| sa.get(o..o + 128)) else { break };
                    let (first, last) = (le64(&e[32..40]), le64(&e[40..48]));
                    if e[..16].iter().any(|&b| b != 0) && last >= first {
                        out.push((first, (last - first).saturating_add(1)));
                    }
                }
            }
        }
    }
    out
}

/// Size of an image no file lists: a partition of the system area that
/// starts at it; the floppy size of a floppy emulation; for an EFI entry
/// whose sector count means "all of it" (0 or 1), the FAT filesystem's
/// size; otherwise the catalog's sector count.
fn hidden_size(img: &IsoImage, e: &RawEntry, parts: &[(u64, u64)]) -> Result<u64> {
    let lba = u64::from(e.lba);
    if let Some(&(_, n)) = parts.iter().find(|&&(start, _)| start == lba * 4) {
        return Ok(n.saturating_mul(512));
    }
    match e.emulation {
        spec::EMUL_FLOPPY_12 => return Ok(1_228_800),
        spec::EMUL_FLOPPY_144 => return Ok(1_474_560),
        spec::EMUL_FLOPPY_288 => return Ok(2_949_120),
        _ => {}
    }
    if e.platform == spec::PLATFORM_EFI && e.load_sectors <= 1 {
        if let Some(n) = fat_size(img, lba)? {
            return Ok(n);
        }
    }
    Ok(u64::from(e.load_sectors) * 512)
}

/// The size a FAT boot sector at `lba` gives its filesystem.
fn fat_size(img: &IsoImage, lba: u64) -> Result<Option<u64>> {
    let off = lba * SECTOR;
    if off + 512 > img.len {
        return Ok(None);
    }
    let mut b = [0u8; 512];
    img.file.read_exact_at(&mut b, off).map_err(|e| fail(img, format!("reading sector {lba}: {e}")))?;
    let bps = u64::from(u16::from_le_bytes([b[11], b[12]]));
    let total16 = u64::from(u16::from_le_bytes([b[19], b[20]]));
    let total32 = u64::from(u32::from_le_bytes([b[32], b[33], b[34], b[35]]));
    let total = if total16 != 0 { total16 } else { total32 };
    if b[510] != 0x55 || b[511] != 0xAA || ![512, 1024, 2048, 4096].contains(&bps) || total == 0 {
        return Ok(None);
    }
    Ok(Some(total * bps))
}

/// Reads `n` bytes at `off` if they are inside the image.
fn peek<const N: usize>(img: &IsoImage, off: u64) -> Result<Option<[u8; N]>> {
    if off + N as u64 > img.len {
        return Ok(None);
    }
    let mut b = [0u8; N];
    img.file.read_exact_at(&mut b, off).map_err(|e| fail(img, format!("reading byte {off}: {e}")))?;
    Ok(Some(b))
}

/// The catalog resolved against the tree.
struct Catalog {
    lba: u64,
    /// The file listing the catalog, if one does.
    path: Option<Vec<Vec<u8>>>,
    entries: Vec<Resolved>,
}

/// Resolves every catalog entry against the tree.
fn resolve(img: &IsoImage, tree: &Tree) -> Result<Option<Catalog>> {
    let Some((cat_lba, raw)) = read_catalog(img)? else { return Ok(None) };
    let files = files_by_lba(img, tree);
    let vss = img.volume_space_sectors();
    let sa = img.system_area()?;
    let parts = partitions(&sa);
    let mut out = Vec::with_capacity(raw.len());
    for (i, e) in raw.into_iter().enumerate() {
        let lba = u64::from(e.lba);
        let (image, bytes) = match files.get(&lba) {
            Some((path, size)) => (BootImage::File(path.clone()), *size),
            None => {
                let size = hidden_size(img, &e, &parts)?;
                if (lba * SECTOR).saturating_add(size) > img.len {
                    return Err(fail(
                        img,
                        format!(
                            "boot image {} at sector {lba} ({size} bytes) runs past the end of the image ({} sectors)",
                            i + 1,
                            spec::sectors(img.len)
                        ),
                    ));
                }
                let content = Content::Region { file: img.path.clone(), ranges: vec![(lba * SECTOR, size)] };
                (BootImage::Hidden { size, content, appended: lba >= vss }, size)
            }
        };
        let head = if bytes >= 16 { peek::<16>(img, lba * SECTOR)? } else { None };
        let info_table = head.is_some_and(|h| {
            u32::from_le_bytes([h[8], h[9], h[10], h[11]]) == spec::SYSTEM_AREA_SECTORS as u32
                && u32::from_le_bytes([h[12], h[13], h[14], h[15]]) == e.lba
        });
        let grub = if bytes >= 2556 { peek::<8>(img, lba * SECTOR + 2548)? } else { None };
        let grub2_boot_info = grub.is_some_and(|g| u64::from_le_bytes(g) == lba * 4 + 5);
        out.push(Resolved { raw: e, image, bytes, info_table, grub2_boot_info });
    }
    let path = files.get(&cat_lba).map(|(p, _)| p.clone());
    Ok(Some(Catalog { lba: cat_lba, path, entries: out }))
}

/// The boot configuration and the old layout, for `iso edit`.
pub(crate) fn read_boot(img: &IsoImage, tree: &Tree) -> Result<Option<(Boot, Layout)>> {
    let Some(Catalog { path: catalog, entries, .. }) = resolve(img, tree)? else { return Ok(None) };
    let vss = img.volume_space_sectors();
    let mut layout = Layout { fs_sectors: vss, end_sectors: vss, boot: Vec::new() };
    let mut boot = Boot { catalog: catalog.map_or(CatalogPlace::Hidden, CatalogPlace::File), entries: Vec::new() };
    for r in entries {
        let lba = u64::from(r.raw.lba);
        if let BootImage::Hidden { appended: true, .. } = r.image {
            layout.end_sectors = layout.end_sectors.max(lba.saturating_add(spec::sectors(r.bytes)));
        }
        layout.boot.push((r.raw.platform, Extent { lba, bytes: r.bytes }));
        boot.entries.push(BootEntry {
            platform: r.raw.platform,
            emulation: r.raw.emulation,
            bootable: r.raw.bootable,
            load_segment: r.raw.load_segment,
            system_type: r.raw.system_type,
            load_sectors: Some(r.raw.load_sectors),
            image: r.image,
            info_table: r.info_table,
            grub2_boot_info: r.grub2_boot_info,
        });
    }
    Ok(Some((boot, layout)))
}

/// The boot catalog for `iso info`.
pub(crate) fn info(img: &IsoImage, tree: &Tree) -> Result<Option<ElToritoInfo>> {
    let Some(Catalog { lba: catalog_lba, path: catalog, entries }) = resolve(img, tree)? else { return Ok(None) };
    let entries = entries
        .into_iter()
        .map(|r| BootEntryInfo {
            platform: crate::write::platform_name(r.raw.platform),
            platform_id: r.raw.platform,
            emulation: match r.raw.emulation {
                spec::EMUL_NONE => "none".into(),
                spec::EMUL_FLOPPY_12 => "floppy-1.2".into(),
                spec::EMUL_FLOPPY_144 => "floppy-1.44".into(),
                spec::EMUL_FLOPPY_288 => "floppy-2.88".into(),
                spec::EMUL_HARD_DISK => "hard-disk".into(),
                m => format!("0x{m:02x}"),
            },
            bootable: r.raw.bootable,
            load_segment: r.raw.load_segment,
            system_type: r.raw.system_type,
            load_sectors: r.raw.load_sectors,
            lba: u64::from(r.raw.lba),
            bytes: r.bytes,
            path: match &r.image {
                BootImage::File(p) => Some(model::join(p)),
                BootImage::Hidden { .. } => None,
            },
            appended: matches!(r.image, BootImage::Hidden { appended: true, .. }),
            info_table: r.info_table,
            grub2_boot_info: r.grub2_boot_info,
        })
        .collect();
    Ok(Some(ElToritoInfo { catalog_lba, catalog_path: catalog.map(|p| model::join(&p)), entries }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_and_gpt_partitions_are_found() {
        let mut sa = vec![0u8; 32768];
        sa[510] = 0x55;
        sa[511] = 0xAA;
        // MBR: ISO at 0, ESP at 3304 (8192 sectors), protective ignored.
        sa[446 + 4] = 0x17;
        sa[446 + 12..446 + 16].copy_from_slice(&3304u32.to_le_bytes());
        sa[462 + 4] = 0xEF;
        sa[462 + 8..462 + 12].copy_from_slice(&3304u32.to_le_bytes());
        sa[462 + 12..462 + 16].copy_from_slice(&8192u32.to_le_bytes());
        sa[478 + 4] = MBR_PROTECTIVE;
        sa[478 + 8..478 + 12].copy_from_slice(&1u32.to_le_bytes());
        sa[478 + 12..478 + 16].copy_from_slice(&100u32.to_le_bytes());
        // GPT header at LBA 1, one entry at LBA 2.
        sa[512..520].copy_from_slice(b"EFI PART");
        sa[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        sa[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        sa[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        sa[1024] = 1;
        sa[1024 + 32..1024 + 40].copy_from_slice(&64u64.to_le_bytes());
        sa[1024 + 40..1024 + 48].copy_from_slice(&127u64.to_le_bytes());
        // A table pointing far outside the system area is ignored.
        let p = partitions(&sa);
        assert_eq!(p, vec![(0, 3304), (3304, 8192), (64, 64)]);
        sa[512 + 72..512 + 80].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(partitions(&sa).len(), 2);
    }
}
