//! Hybrid system areas: the MBR (and GPT) in the first 32 KiB that let the
//! same image boot from a disk or USB stick.
//!
//! Three jobs:
//!
//! - [`HybridOptions::render`] lays out a new isohybrid MBR (and GPT) for
//!   `iso build --hybrid`, in the structure `xorriso -as mkisofs
//!   -isohybrid-mbr isohdpfx.bin -isohybrid-gpt-basdat` writes.
//! - [`describe`] tells what a system area holds, for `iso info`.
//! - [`CarriedArea`] keeps an input image's system area through `iso edit`
//!   and re-targets everything in it that points into the image.
//!
//! Units: ISO 9660 addresses ([`Extent::lba`], [`Layout`]) are 2048-byte
//! sectors; MBR and GPT addresses are 512-byte blocks ("blocks" below).
//!
//! The MBR written here, byte by byte:
//!
//! | bytes    | content                                                            |
//! |----------|--------------------------------------------------------------------|
//! | 0..432   | boot code (`isohdpfx.bin`), or zeros                               |
//! | 432..440 | u64 LE: the BIOS boot image's block address (isolinux: `lba * 4`; GRUB 2's `boot_hybrid.img` uses `lba * 4 + 4`) |
//! | 440..444 | u32 LE disk signature                                              |
//! | 444..446 | zero                                                               |
//! | 446..510 | four partition entries: status, CHS start, type, CHS end, u32 LE start, u32 LE blocks |
//! | 510..512 | `55 AA`                                                            |
//!
//! Partition 1 is bootable (0x80), starts at block 0 and covers the image
//! (type 0x17 when it is alone; type 0x00 when an EFI partition 2 lies
//! inside it, because UEFI firmware rejects an MBR whose partitions
//! overlap, and skips type 0x00 entries when it checks). Partition 2 (type
//! 0xEF) is the EFI El Torito image. CHS values use 64 heads and 32 sectors
//! per track, and the image is padded to a whole "cylinder" (1 MiB).
//!
//! The GPT (with `gpt`): header at block 1, 248 entries of 128 bytes at
//! blocks 2..64, first usable block 64 (the volume descriptors), backup
//! entries and header in the last 63 blocks of the padded image. Entry 1 is
//! a basic-data partition from block 0 (as xorriso writes it: outside the
//! usable range, so UEFI firmware ignores it while other systems see the
//! ISO 9660 filesystem), entry 2 the EFI system partition. Like xorriso's,
//! the MBR holds no 0xEE protective entry: BIOS and UEFI firmware use the
//! MBR, and the GPT serves systems that read the GPT regardless.

use std::fmt;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::spec::{PLATFORM_BIOS, PLATFORM_EFI, SECTOR, SYSTEM_AREA_BYTES};

/// A new hybrid layout for `iso build --hybrid`.
#[derive(Clone, Debug)]
pub struct HybridOptions {
    /// MBR boot code (up to 432 bytes, e.g. syslinux's `isohdpfx.bin`) that
    /// loads the BIOS El Torito image; `None` writes no boot code.
    pub mbr_code: Option<Vec<u8>>,
    /// Also write a GPT (primary in the system area, backup at the end).
    pub gpt: bool,
}

/// Where something lies in an image: first 2048-byte sector and byte length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Extent {
    pub lba: u64,
    pub bytes: u64,
}

/// The facts about an image's layout that a system area points at.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Size of the ISO 9660 filesystem in sectors (the volume space size).
    pub fs_sectors: u64,
    /// End of everything the writer placed (filesystem and appended images),
    /// in sectors; the system area's tail goes after it.
    pub end_sectors: u64,
    /// El Torito images in catalog order: platform id and extent.
    pub boot: Vec<(u8, Extent)>,
}

/// A rendered system area and what must follow the image.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// Exactly 32768 bytes.
    pub system_area: Vec<u8>,
    /// Bytes written after `end_sectors` (alignment padding, backup GPT).
    pub tail: Vec<u8>,
}

/// Largest MBR boot code: bytes 432.. hold the boot image address.
pub const MBR_CODE_MAX: usize = 432;
const BOOT_POINTER: usize = 432;
const DISK_SIGNATURE: usize = 440;
const PARTITION_TABLE: usize = 446;
const BLOCK: u64 = 512;
/// Blocks per ISO sector.
const PER_SECTOR: u64 = SECTOR / BLOCK;
/// The system area in blocks: anything that ends here lies inside it.
const SYSTEM_AREA_BLOCKS: u64 = SYSTEM_AREA_BYTES as u64 / BLOCK;
/// The CHS geometry of isohybrid images, and the alignment it implies.
const HEADS: u64 = 64;
const TRACK: u64 = 32;
const CYLINDER_BLOCKS: u64 = HEADS * TRACK;
const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
const GPT_REVISION: u32 = 0x0001_0000;
const GPT_HEADER_SIZE: u32 = 92;
const GPT_ENTRY_SIZE: u32 = 128;
/// As many 128-byte entries as fit between block 2 and block 64.
const GPT_ENTRIES: u32 = 248;
const GPT_ENTRY_BLOCKS: u64 = GPT_ENTRIES as u64 * GPT_ENTRY_SIZE as u64 / BLOCK;
/// GPT attribute bits: platform-required (0) and read-only (60), as xorriso
/// marks its ISO partition.
const GPT_ATTR_ISO: u64 = (1 << 60) | 1;

const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]
}

/// GPT partition types this module writes or names.
pub const GUID_ESP: [u8; 16] = guid(0xC12A_7328, 0xF81F, 0x11D2, [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B]);
pub const GUID_BASIC_DATA: [u8; 16] =
    guid(0xEBD0_A0A2, 0xB9E5, 0x4433, [0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7]);
const KNOWN_TYPES: &[([u8; 16], &str)] = &[
    (GUID_ESP, "EFI System"),
    (GUID_BASIC_DATA, "Basic data"),
    (guid(0x0FC6_3DAF, 0x8483, 0x4772, [0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4]), "Linux filesystem"),
    (guid(0x2168_6148, 0x6449, 0x6E6F, [0x74, 0x4E, 0x65, 0x65, 0x64, 0x45, 0x46, 0x49]), "BIOS boot"),
    (guid(0x4846_5300, 0x0000, 0x11AA, [0xAA, 0x11, 0x00, 0x30, 0x65, 0x43, 0xEC, 0xAC]), "Apple HFS+"),
    (guid(0xE3C9_E316, 0x0B5C, 0x4DB8, [0x81, 0x7D, 0xF9, 0x2D, 0xF0, 0x02, 0x15, 0xAE]), "Microsoft reserved"),
];

// ---------------------------------------------------------------------------
// Small encoders shared by render, carry-over and describe.

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, reflected), the checksum of GPT headers and entries.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// Bytes to whole 512-byte blocks.
fn blocks(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK)
}

/// CHS bytes (head, sector | cylinder high bits, cylinder low) of block
/// `lba`; beyond cylinder 1023 the largest address, as partitioning tools do.
fn chs(lba: u64, geometry: Geometry) -> [u8; 3] {
    let Geometry { heads, track } = geometry;
    let cylinder = lba / (heads * track);
    let (c, h, s) =
        if cylinder > 1023 { (1023, heads - 1, track) } else { (cylinder, lba / track % heads, lba % track + 1) };
    [h as u8, (s as u8) | ((c >> 2) & 0xC0) as u8, c as u8]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    heads: u64,
    track: u64,
}

const ISOHYBRID_GEOMETRY: Geometry = Geometry { heads: HEADS, track: TRACK };
const LBA_GEOMETRY: Geometry = Geometry { heads: 255, track: 63 };

/// Writes MBR partition entry `slot` (0..4).
fn put_mbr_partition(
    sa: &mut [u8],
    slot: usize,
    status: u8,
    kind: u8,
    start: u64,
    count: u64,
    geometry: Geometry,
) -> anyhow::Result<()> {
    let (Ok(start32), Ok(count32)) = (u32::try_from(start), u32::try_from(count)) else {
        bail!(
            "MBR partition {} (blocks {start}..{}) lies beyond 2 TiB, where MBR addresses end",
            slot + 1,
            start + count
        );
    };
    let e = &mut sa[PARTITION_TABLE + 16 * slot..PARTITION_TABLE + 16 * slot + 16];
    e[0] = status;
    e[1..4].copy_from_slice(&chs(start, geometry));
    e[4] = kind;
    e[5..8].copy_from_slice(&chs((start + count).saturating_sub(1), geometry));
    put32(e, 8, start32);
    put32(e, 12, count32);
    Ok(())
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A random-looking (RFC 4122 version 4 shaped) GUID that depends only on
/// `seed` and `n`: the same image gets the same GUIDs on every build.
fn derive_guid(seed: &[u8; 16], n: u64) -> [u8; 16] {
    let a = u64::from_le_bytes(seed[..8].try_into().expect("8 bytes"));
    let b = u64::from_le_bytes(seed[8..].try_into().expect("8 bytes"));
    let x = splitmix64(a ^ splitmix64(n));
    let y = splitmix64(b ^ splitmix64(x ^ n.rotate_left(32)));
    let mut g = [0u8; 16];
    g[..8].copy_from_slice(&x.to_le_bytes());
    g[8..].copy_from_slice(&y.to_le_bytes());
    g[7] = (g[7] & 0x0F) | 0x40;
    g[8] = (g[8] & 0x3F) | 0x80;
    g
}

fn guid_string(g: &[u8]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        le32(g, 0),
        le16(g, 4),
        le16(g, 6),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

fn gpt_name(name: &str) -> [u8; 72] {
    let mut out = [0u8; 72];
    for (i, u) in name.encode_utf16().take(36).enumerate() {
        out[2 * i..2 * i + 2].copy_from_slice(&u.to_le_bytes());
    }
    out
}

/// Where a GPT's parts go in an image of `total` blocks.
struct GptPlace {
    total: u64,
    entries_lba: u64,
    entry_blocks: u64,
    first_usable: u64,
}

impl GptPlace {
    fn backup_header(&self) -> u64 {
        self.total - 1
    }
    fn backup_entries(&self) -> u64 {
        self.total - 1 - self.entry_blocks
    }
    fn last_usable(&self) -> u64 {
        self.backup_entries() - 1
    }
}

/// Writes a GPT whose entry array (`count` entries of `size` bytes) is
/// `entries`: primary header at block 1 and the array at `place.entries_lba`
/// in `sa`, the backup array and header at the end of `tail`, which covers
/// blocks `tail_start..place.total`.
#[allow(clippy::too_many_arguments)]
fn write_gpt(
    sa: &mut [u8],
    tail: &mut [u8],
    tail_start: u64,
    place: &GptPlace,
    disk_guid: &[u8; 16],
    count: u32,
    size: u32,
    entries: &[u8],
) {
    let entries_crc = crc32(entries);
    let header = |my_lba: u64, alternate: u64, entries_lba: u64| {
        let mut h = [0u8; GPT_HEADER_SIZE as usize];
        h[..8].copy_from_slice(GPT_SIGNATURE);
        put32(&mut h, 8, GPT_REVISION);
        put32(&mut h, 12, GPT_HEADER_SIZE);
        put64(&mut h, 24, my_lba);
        put64(&mut h, 32, alternate);
        put64(&mut h, 40, place.first_usable);
        put64(&mut h, 48, place.last_usable());
        h[56..72].copy_from_slice(disk_guid);
        put64(&mut h, 72, entries_lba);
        put32(&mut h, 80, count);
        put32(&mut h, 84, size);
        put32(&mut h, 88, entries_crc);
        let crc = crc32(&h);
        put32(&mut h, 16, crc);
        h
    };
    let primary = header(1, place.backup_header(), place.entries_lba);
    sa[512..512 + primary.len()].copy_from_slice(&primary);
    let at = (place.entries_lba * BLOCK) as usize;
    sa[at..at + entries.len()].copy_from_slice(entries);

    let backup = header(place.backup_header(), 1, place.backup_entries());
    let at = ((place.backup_entries() - tail_start) * BLOCK) as usize;
    tail[at..at + entries.len()].copy_from_slice(entries);
    let at = ((place.backup_header() - tail_start) * BLOCK) as usize;
    tail[at..at + backup.len()].copy_from_slice(&backup);
}

fn gpt_entry(type_guid: &[u8; 16], guid: &[u8; 16], first: u64, last: u64, attrs: u64, name: &str) -> [u8; 128] {
    let mut e = [0u8; 128];
    e[..16].copy_from_slice(type_guid);
    e[16..32].copy_from_slice(guid);
    put64(&mut e, 32, first);
    put64(&mut e, 40, last);
    put64(&mut e, 48, attrs);
    e[56..128].copy_from_slice(&gpt_name(name));
    e
}

impl Layout {
    fn check(&self) -> anyhow::Result<()> {
        if self.fs_sectors <= 16 {
            bail!("layout has a filesystem of {} sectors, too small for an ISO 9660 image", self.fs_sectors);
        }
        if self.end_sectors < self.fs_sectors {
            bail!(
                "layout ends at sector {} before its filesystem does ({} sectors)",
                self.end_sectors,
                self.fs_sectors
            );
        }
        for (i, (_, e)) in self.boot.iter().enumerate() {
            if e.lba.saturating_add(e.bytes.div_ceil(SECTOR)) > self.end_sectors {
                bail!("El Torito image {} (sector {}, {} bytes) lies beyond the image end", i + 1, e.lba, e.bytes);
            }
        }
        Ok(())
    }

    fn first(&self, platform: u8) -> Option<Extent> {
        self.boot.iter().find(|(p, _)| *p == platform).map(|&(_, e)| e)
    }
}

impl HybridOptions {
    /// Renders the system area and tail for an image laid out as `layout`.
    /// GUIDs and the MBR disk signature derive from `disk_guid_seed`, so the
    /// same seed gives the same bytes.
    pub fn render(&self, layout: &Layout, disk_guid_seed: [u8; 16]) -> anyhow::Result<Rendered> {
        layout.check()?;
        let bios = layout.first(PLATFORM_BIOS);
        let efi = layout.first(PLATFORM_EFI);
        let mut sa = vec![0u8; SYSTEM_AREA_BYTES];
        if let Some(code) = &self.mbr_code {
            if code.len() > MBR_CODE_MAX {
                bail!(
                    "the MBR boot code is {} bytes; at most {MBR_CODE_MAX} fit before the partition table \
                     (give isohdpfx.bin, or the first {MBR_CODE_MAX} bytes of a 512-byte MBR file)",
                    code.len()
                );
            }
            let Some(bios) = bios else {
                bail!(
                    "the MBR boot code loads the BIOS El Torito image, and the image has none; add a BIOS \
                     boot entry (isolinux.bin) or leave out the MBR code"
                );
            };
            sa[..code.len()].copy_from_slice(code);
            put64(&mut sa, BOOT_POINTER, bios.lba * PER_SECTOR);
        }
        let signature = u32::from_le_bytes(derive_guid(&disk_guid_seed, u64::MAX)[..4].try_into().expect("4 bytes"));
        put32(&mut sa, DISK_SIGNATURE, signature.max(1));

        let fs_end = layout.fs_sectors * PER_SECTOR;
        let end = layout.end_sectors * PER_SECTOR;
        let backup = if self.gpt { 1 + GPT_ENTRY_BLOCKS } else { 0 };
        let total = round_up(end + backup, CYLINDER_BLOCKS);
        let esp = match efi {
            Some(e) if e.bytes == 0 => bail!("the EFI El Torito image at sector {} is empty", e.lba),
            Some(e) => Some((e.lba * PER_SECTOR, blocks(e.bytes))),
            None => None,
        };
        // Partition 1 covers the whole padded image, unless the ESP was
        // appended after the filesystem: then it covers the filesystem.
        let p1_end = match esp {
            Some((start, _)) if start >= fs_end => fs_end,
            _ => total,
        };
        let p1_type = if esp.is_some() { 0x00 } else { 0x17 };
        put_mbr_partition(&mut sa, 0, 0x80, p1_type, 0, p1_end, ISOHYBRID_GEOMETRY)?;
        if let Some((start, count)) = esp {
            put_mbr_partition(&mut sa, 1, 0x00, 0xEF, start, count, ISOHYBRID_GEOMETRY)?;
        }
        sa[510] = 0x55;
        sa[511] = 0xAA;

        let mut tail = vec![0u8; ((total - end) * BLOCK) as usize];
        if self.gpt {
            let place =
                GptPlace { total, entries_lba: 2, entry_blocks: GPT_ENTRY_BLOCKS, first_usable: SYSTEM_AREA_BLOCKS };
            let mut entries = vec![0u8; (GPT_ENTRIES * GPT_ENTRY_SIZE) as usize];
            // Whole ISO sectors below the backup GPT, as xorriso does.
            let iso_end = p1_end.min((place.last_usable() + 1) / PER_SECTOR * PER_SECTOR);
            let iso =
                gpt_entry(&GUID_BASIC_DATA, &derive_guid(&disk_guid_seed, 1), 0, iso_end - 1, GPT_ATTR_ISO, "ISO9660");
            entries[..128].copy_from_slice(&iso);
            if let Some((start, count)) = esp {
                let e = gpt_entry(&GUID_ESP, &derive_guid(&disk_guid_seed, 2), start, start + count - 1, 0, "EFI boot");
                entries[128..256].copy_from_slice(&e);
            }
            let disk = derive_guid(&disk_guid_seed, 0);
            write_gpt(&mut sa, &mut tail, end, &place, &disk, GPT_ENTRIES, GPT_ENTRY_SIZE, &entries);
        }
        Ok(Rendered { system_area: sa, tail })
    }
}

// ---------------------------------------------------------------------------
// describe

/// What `iso info` shows about a system area. JSON field names are part of
/// the `iso info --json` schema.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SystemAreaInfo {
    /// Words in the manner of xorriso's summary: `none`, `unknown`, or
    /// `mbr` followed by any of `isohybrid`, `grub2`, `protective-msdos`,
    /// `protective-gpt`, `cyl-align`, `gpt`; `apm` for an Apple partition
    /// map.
    pub kind: String,
    /// Bytes 0..432 hold something (boot code).
    pub boot_code: bool,
    /// The boot image address at byte 432, when the MBR has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_pointer: Option<BootPointer>,
    /// The MBR disk signature (bytes 440..444).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_signature: Option<u32>,
    /// The image is a whole number of 1 MiB cylinders (64 heads x 32
    /// sectors) and partition 1 ends at its end.
    pub cyl_aligned: bool,
    /// The MBR's non-empty partition entries.
    pub partitions: Vec<MbrPartition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpt: Option<GptInfo>,
}

/// The u64 at MBR byte 432 that MBR boot code loads the BIOS image from.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BootPointer {
    /// `isolinux` (value = lba * 4), `grub2` (value = lba * 4 + 4) or
    /// `unknown` (the boot code is not recognised).
    pub style: &'static str,
    /// The raw value, in 512-byte blocks.
    pub value: u64,
    /// The 2048-byte sector of the boot image it points at, when the style
    /// is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lba: Option<u64>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MbrPartition {
    /// 1..=4.
    pub number: u8,
    /// 0x80 = bootable.
    pub status: u8,
    #[serde(rename = "type")]
    pub kind: u8,
    /// First block (512 bytes).
    pub start: u64,
    /// Length in blocks.
    pub blocks: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct GptInfo {
    pub disk_guid: String,
    pub first_usable: u64,
    pub last_usable: u64,
    /// Where the header says its backup is (block).
    pub backup_lba: u64,
    /// The backup header block lies inside the image.
    pub backup_in_image: bool,
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
    /// Whether the entry array lies in the system area and matches its CRC.
    pub entries_ok: bool,
    /// The non-empty entries (only when `entries_ok`).
    pub partitions: Vec<GptPartition>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GptPartition {
    /// 1-based index in the entry array.
    pub number: u32,
    pub name: String,
    pub type_guid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_name: Option<&'static str>,
    pub guid: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
}

/// A parsed GPT header at block 1 of a 32 KiB system area.
struct GptHeader {
    alternate: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: [u8; 16],
    entries_lba: u64,
    count: u32,
    entry_size: u32,
    entries_crc: u32,
}

enum GptFound {
    None,
    Damaged(String),
    Valid(GptHeader),
}

fn find_gpt(sa: &[u8]) -> GptFound {
    let h = &sa[512..1024];
    if &h[..8] != GPT_SIGNATURE {
        return GptFound::None;
    }
    let size = le32(h, 12);
    if !(GPT_HEADER_SIZE..=512).contains(&size) {
        return GptFound::Damaged(format!("header size {size}"));
    }
    let mut copy = h[..size as usize].to_vec();
    copy[16..20].fill(0);
    if crc32(&copy) != le32(h, 16) {
        return GptFound::Damaged("header CRC mismatch".into());
    }
    GptFound::Valid(GptHeader {
        alternate: le64(h, 32),
        first_usable: le64(h, 40),
        last_usable: le64(h, 48),
        disk_guid: h[56..72].try_into().expect("16 bytes"),
        entries_lba: le64(h, 72),
        count: le32(h, 80),
        entry_size: le32(h, 84),
        entries_crc: le32(h, 88),
    })
}

impl GptHeader {
    /// The byte range of the entry array inside the system area, if it is
    /// there and sane.
    fn entries_range(&self) -> Option<std::ops::Range<usize>> {
        if self.entry_size < 128 || self.entry_size % 8 != 0 || self.count == 0 {
            return None;
        }
        let start = self.entries_lba.checked_mul(BLOCK)?;
        let len = (self.count as u64).checked_mul(self.entry_size as u64)?;
        let end = start.checked_add(len)?;
        (start >= 1024 && end <= SYSTEM_AREA_BYTES as u64).then_some(start as usize..end as usize)
    }

    fn entry_blocks(&self) -> u64 {
        blocks(self.count as u64 * self.entry_size as u64)
    }
}

fn mbr_partitions(sa: &[u8]) -> Vec<MbrPartition> {
    (0..4)
        .filter_map(|i| {
            let e = &sa[PARTITION_TABLE + 16 * i..PARTITION_TABLE + 16 * i + 16];
            let p = MbrPartition {
                number: i as u8 + 1,
                status: e[0],
                kind: e[4],
                start: le32(e, 8) as u64,
                blocks: le32(e, 12) as u64,
            };
            (p.kind != 0 || p.blocks != 0).then_some(p)
        })
        .collect()
}

fn has_apm(sa: &[u8]) -> bool {
    &sa[..2] == b"ER" && (&sa[512..514] == b"PM" || &sa[2048..2050] == b"PM")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Describes the system area of an image of `file_len` bytes. The boot
/// pointer's style is guessed from the boot code; [`describe_with_boot`]
/// decides it from the El Torito catalog.
pub fn describe(system_area: &[u8], file_len: u64) -> SystemAreaInfo {
    describe_with_boot(system_area, file_len, &[])
}

/// Like [`describe`], with the image's El Torito images (catalog order) to
/// tell which image byte 432 points at.
pub fn describe_with_boot(system_area: &[u8], file_len: u64, boot: &[(u8, Extent)]) -> SystemAreaInfo {
    let mut sa = vec![0u8; SYSTEM_AREA_BYTES];
    let n = system_area.len().min(SYSTEM_AREA_BYTES);
    sa[..n].copy_from_slice(&system_area[..n]);
    let mut info = SystemAreaInfo::default();
    if sa.iter().all(|&b| b == 0) {
        info.kind = "none".into();
        return info;
    }
    let mut words: Vec<&str> = Vec::new();
    let mbr = sa[510] == 0x55 && sa[511] == 0xAA;
    info.boot_code = sa[..MBR_CODE_MAX].iter().any(|&b| b != 0);
    if mbr {
        words.push("mbr");
        info.partitions = mbr_partitions(&sa);
        let signature = le32(&sa, DISK_SIGNATURE);
        info.disk_signature = (signature != 0).then_some(signature);
        let value = le64(&sa, BOOT_POINTER);
        if value != 0 && info.boot_code {
            let pointer = boot_pointer(&sa[..MBR_CODE_MAX], value, boot);
            match pointer.style {
                "isolinux" => words.push("isohybrid"),
                "grub2" => words.push("grub2"),
                _ => {}
            }
            info.boot_pointer = Some(pointer);
        }
        if let [p] = info.partitions.as_slice() {
            if p.start == 1 && p.kind != 0xEE {
                words.push("protective-msdos");
            }
        }
        if info.partitions.iter().any(|p| p.kind == 0xEE && p.start == 1) {
            words.push("protective-gpt");
        }
        let file_blocks = blocks(file_len);
        info.cyl_aligned = file_len > 0
            && file_len % (CYLINDER_BLOCKS * BLOCK) == 0
            && info.partitions.first().is_some_and(|p| p.start + p.blocks == file_blocks);
        if info.cyl_aligned {
            words.push("cyl-align");
        }
    }
    match find_gpt(&sa) {
        GptFound::Valid(h) => {
            words.push("gpt");
            info.gpt = Some(gpt_info(&sa, &h, file_len));
        }
        GptFound::Damaged(_) => words.push("gpt-damaged"),
        GptFound::None => {}
    }
    if has_apm(&sa) {
        words.push("apm");
    }
    if words.is_empty() {
        words.push("unknown");
    }
    info.kind = words.join(" ");
    info
}

fn boot_pointer(code: &[u8], value: u64, boot: &[(u8, Extent)]) -> BootPointer {
    let by_catalog = boot.iter().find_map(|&(_, e)| {
        let at = e.lba.checked_mul(PER_SECTOR)?;
        if value == at {
            Some(("isolinux", e.lba))
        } else if Some(value) == at.checked_add(PER_SECTOR) {
            Some(("grub2", e.lba))
        } else {
            None
        }
    });
    let (style, lba) = match by_catalog {
        Some((style, lba)) => (style, Some(lba)),
        None if value % PER_SECTOR != 0 => ("unknown", None),
        None if contains(code, b"isolinux") => ("isolinux", Some(value / PER_SECTOR)),
        None if contains(code, b"GRUB") && value >= PER_SECTOR => ("grub2", Some(value / PER_SECTOR - 1)),
        None => ("unknown", None),
    };
    BootPointer { style, value, lba }
}

fn gpt_info(sa: &[u8], h: &GptHeader, file_len: u64) -> GptInfo {
    let range = h.entries_range();
    let entries_ok = range.as_ref().is_some_and(|r| crc32(&sa[r.clone()]) == h.entries_crc);
    let mut partitions = Vec::new();
    if let (true, Some(r)) = (entries_ok, range) {
        for (i, e) in sa[r].chunks_exact(h.entry_size as usize).enumerate() {
            if e[..16].iter().all(|&b| b == 0) {
                continue;
            }
            let units: Vec<u16> = e[56..128].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
            partitions.push(GptPartition {
                number: i as u32 + 1,
                name: String::from_utf16_lossy(&units[..end]),
                type_guid: guid_string(&e[..16]),
                type_name: KNOWN_TYPES.iter().find(|(g, _)| g[..] == e[..16]).map(|&(_, n)| n),
                guid: guid_string(&e[16..32]),
                first_lba: le64(e, 32),
                last_lba: le64(e, 40),
                attributes: le64(e, 48),
            });
        }
    }
    GptInfo {
        disk_guid: guid_string(&h.disk_guid),
        first_usable: h.first_usable,
        last_usable: h.last_usable,
        backup_lba: h.alternate,
        backup_in_image: h.alternate < blocks(file_len),
        entries_lba: h.entries_lba,
        entry_count: h.count,
        entry_size: h.entry_size,
        entries_ok,
        partitions,
    }
}

impl fmt::Display for SystemAreaInfo {
    /// Human-readable lines for `iso info`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "System area     : {}", self.kind)?;
        if let Some(p) = &self.boot_pointer {
            match p.lba {
                Some(lba) => writeln!(f, "MBR boot pointer: {} style, boot image at sector {lba}", p.style)?,
                None => writeln!(f, "MBR boot pointer: {} ({} in 512-byte blocks)", p.style, p.value)?,
            }
        }
        if let Some(s) = self.disk_signature {
            writeln!(f, "MBR disk id     : 0x{s:08x}")?;
        }
        if !self.partitions.is_empty() {
            writeln!(f, "MBR partitions  :  N  Status  Type        Start       Blocks")?;
            for p in &self.partitions {
                writeln!(
                    f,
                    "MBR partition   : {:>2}    0x{:02x}  0x{:02x}  {:>11}  {:>11}",
                    p.number, p.status, p.kind, p.start, p.blocks
                )?;
            }
        }
        if let Some(g) = &self.gpt {
            writeln!(f, "GPT disk GUID   : {}", g.disk_guid)?;
            writeln!(
                f,
                "GPT layout      : usable blocks {}..={}, backup header at {}{}",
                g.first_usable,
                g.last_usable,
                g.backup_lba,
                if g.backup_in_image { "" } else { " (beyond the image end)" }
            )?;
            writeln!(
                f,
                "GPT entries     : {} x {} bytes at block {}{}",
                g.entry_count,
                g.entry_size,
                g.entries_lba,
                if g.entries_ok { "" } else { " (outside the system area or damaged)" }
            )?;
            for p in &g.partitions {
                writeln!(
                    f,
                    "GPT partition   : {:>2}  {:>11}  {:>11}  {}  {:?}",
                    p.number,
                    p.first_lba,
                    p.last_lba,
                    p.type_name.map_or_else(|| p.type_guid.clone(), str::to_string),
                    p.name
                )?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Carry-over for `iso edit`

/// An input image's system area, kept so it can be re-targeted.
#[derive(Clone, Debug)]
pub struct CarriedArea {
    pub bytes: Vec<u8>,
    plan: Option<CarryPlan>,
}

/// What in a carried system area points into the image, and how each
/// pointer follows the new layout.
#[derive(Clone, Debug)]
struct CarryPlan {
    old_boot: Vec<(u8, Extent)>,
    /// The MBR boot pointer: style and El Torito image index.
    pointer: Option<(PointerStyle, usize)>,
    /// MBR partition slots and their targets.
    mbr: Vec<(usize, Target)>,
    gpt: Option<CarriedGpt>,
    /// Pad the new image to whole 1 MiB cylinders.
    cyl_align: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PointerStyle {
    /// Value = lba * 4 (isohdpfx.bin).
    Isolinux,
    /// Value = lba * 4 + 4 (GRUB 2's boot_hybrid.img, memtest86+).
    Grub2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// Starts at block 0 or 1 and ends where the image does.
    Image { start: u64, end: ImageEnd },
    /// Starts at El Torito image `index`.
    Boot { index: usize, size: BootSize },
    /// Lies inside the system area: kept as it is.
    Verbatim,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ImageEnd {
    /// The end of the file.
    File,
    /// The end of the ISO 9660 filesystem.
    Fs,
    /// The end of the filesystem and the appended images.
    Written,
    /// The GPT's last usable block (inclusive).
    LastUsable,
    /// The last whole ISO sector below the backup GPT (xorriso).
    LastUsableSectors,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BootSize {
    /// The image's size in 512-byte blocks, rounded up.
    Blocks,
    /// The image's size in whole 2048-byte sectors.
    Sectors,
    /// A size of its own, kept while the image keeps its size.
    Fixed(u64),
}

#[derive(Clone, Debug)]
struct CarriedGpt {
    entries_lba: u64,
    entry_blocks: u64,
    first_usable: u64,
    count: u32,
    entry_size: u32,
    disk_guid: [u8; 16],
    /// Entry index and target, for the non-empty entries.
    entries: Vec<(usize, Target)>,
}

/// The old image's ends, in blocks, that a partition may end at.
struct OldEnds {
    file: u64,
    fs: u64,
    written: u64,
}

impl OldEnds {
    fn whole(&self, end: u64) -> Option<ImageEnd> {
        if end == self.file {
            Some(ImageEnd::File)
        } else if end == self.fs {
            Some(ImageEnd::Fs)
        } else if end == self.written {
            Some(ImageEnd::Written)
        } else {
            None
        }
    }
}

/// The target of a partition at blocks `start..start + count` of the old
/// image, if it has one.
fn classify(start: u64, count: u64, ends: &OldEnds, gpt_end: Option<ImageEnd>, old: &Layout) -> Option<Target> {
    let end = start.saturating_add(count);
    if count > 0 && end <= SYSTEM_AREA_BLOCKS {
        return Some(Target::Verbatim);
    }
    if start <= 1 {
        if let Some(e) = gpt_end.or_else(|| ends.whole(end)) {
            return Some(Target::Image { start, end: e });
        }
    }
    old.boot.iter().enumerate().find_map(|(index, &(_, e))| {
        if e.lba < 16 || e.bytes == 0 || start != e.lba.saturating_mul(PER_SECTOR) {
            return None;
        }
        let size = if count == blocks(e.bytes) {
            BootSize::Blocks
        } else if count == e.bytes.div_ceil(SECTOR).saturating_mul(PER_SECTOR) {
            BootSize::Sectors
        } else {
            BootSize::Fixed(count)
        };
        Some(Target::Boot { index, size })
    })
}

fn refuse(what: &str, kind: &str, start: u64, count: u64) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot carry over {what} ({kind}, start {start}, blocks {count}): it points at neither the image nor a boot \
         image; give the edited image a new system area instead (a fresh hybrid layout, or none)"
    )
}

impl CarriedArea {
    /// Keeps the system area of an input image whose layout was `old`, and
    /// works out how each address in it follows a new layout. Errors when
    /// something in it points at a place the new image cannot keep.
    pub fn from_image(system_area: &[u8], old: &Layout, file_len: u64) -> anyhow::Result<Self> {
        if system_area.len() != SYSTEM_AREA_BYTES {
            bail!("a system area is {SYSTEM_AREA_BYTES} bytes; got {}", system_area.len());
        }
        let sa = system_area;
        if sa.iter().all(|&b| b == 0) {
            return Ok(CarriedArea { bytes: sa.to_vec(), plan: None });
        }
        if has_apm(sa) {
            bail!(
                "the input's system area holds an Apple partition map, which cannot be carried over; give the \
                 edited image a new system area instead"
            );
        }
        let mbr = sa[510] == 0x55 && sa[511] == 0xAA;
        let gpt = match find_gpt(sa) {
            GptFound::Valid(h) => Some(h),
            GptFound::Damaged(why) => bail!("the input's GPT header is damaged ({why}); it cannot be carried over"),
            GptFound::None => None,
        };
        if !mbr && gpt.is_none() {
            // Neither MBR nor GPT (e.g. a boot loader's own data): nothing
            // known to re-target, so it is kept byte for byte.
            return Ok(CarriedArea { bytes: sa.to_vec(), plan: None });
        }
        let ends =
            OldEnds { file: blocks(file_len), fs: old.fs_sectors * PER_SECTOR, written: old.end_sectors * PER_SECTOR };

        let mut plan =
            CarryPlan { old_boot: old.boot.clone(), pointer: None, mbr: Vec::new(), gpt: None, cyl_align: false };
        if mbr {
            let value = le64(sa, BOOT_POINTER);
            if value != 0 {
                plan.pointer = old.boot.iter().enumerate().find_map(|(i, &(_, e))| {
                    let at = e.lba.checked_mul(PER_SECTOR)?;
                    if value == at {
                        Some((PointerStyle::Isolinux, i))
                    } else if Some(value) == at.checked_add(PER_SECTOR) {
                        Some((PointerStyle::Grub2, i))
                    } else {
                        None
                    }
                });
            }
            for p in mbr_partitions(sa) {
                let slot = p.number as usize - 1;
                // A protective entry for a disk over 2 TiB says "to the end".
                if p.kind == 0xEE && p.blocks == u32::MAX as u64 {
                    plan.mbr.push((slot, Target::Verbatim));
                    continue;
                }
                let what = format!("MBR partition {}", p.number);
                let target = classify(p.start, p.blocks, &ends, None, old)
                    .ok_or_else(|| refuse(&what, &format!("type 0x{:02x}", p.kind), p.start, p.blocks))?;
                if p.number == 1 && target == (Target::Image { start: p.start, end: ImageEnd::File }) {
                    plan.cyl_align = file_len % (CYLINDER_BLOCKS * BLOCK) == 0;
                }
                plan.mbr.push((slot, target));
            }
        }
        if let Some(h) = gpt {
            let range = h.entries_range().with_context(|| {
                format!(
                    "the input's GPT entries ({} x {} bytes at block {}) do not lie in the system area; it cannot \
                     be carried over",
                    h.count, h.entry_size, h.entries_lba
                )
            })?;
            if crc32(&sa[range.clone()]) != h.entries_crc {
                bail!("the input's GPT entries are damaged (CRC mismatch); it cannot be carried over");
            }
            if h.first_usable < h.entries_lba + h.entry_blocks() {
                bail!("the input's GPT has its first usable block {} inside its entries", h.first_usable);
            }
            let mut entries = Vec::new();
            for (i, e) in sa[range].chunks_exact(h.entry_size as usize).enumerate() {
                if e[..16].iter().all(|&b| b == 0) {
                    continue;
                }
                let (first, last) = (le64(e, 32), le64(e, 40));
                let count = last.saturating_sub(first).saturating_add(1);
                let end = last.saturating_add(1);
                let gpt_end = if end == h.last_usable.saturating_add(1) {
                    Some(ImageEnd::LastUsable)
                } else if end == (h.last_usable.saturating_add(1)) / PER_SECTOR * PER_SECTOR {
                    Some(ImageEnd::LastUsableSectors)
                } else {
                    None
                };
                let target = (last >= first)
                    .then(|| classify(first, count, &ends, gpt_end, old))
                    .flatten()
                    .ok_or_else(|| refuse(&format!("GPT partition {}", i + 1), &guid_string(&e[..16]), first, count))?;
                entries.push((i, target));
            }
            plan.gpt = Some(CarriedGpt {
                entries_lba: h.entries_lba,
                entry_blocks: h.entry_blocks(),
                first_usable: h.first_usable,
                count: h.count,
                entry_size: h.entry_size,
                disk_guid: h.disk_guid,
                entries,
            });
        }
        Ok(CarriedArea { bytes: sa.to_vec(), plan: Some(plan) })
    }

    /// Renders the carried system area for the new layout: the boot
    /// pointer, the partitions and the GPT follow what they pointed at, and
    /// the tail holds the alignment padding and the backup GPT.
    pub fn render(&self, new: &Layout) -> anyhow::Result<Rendered> {
        new.check()?;
        let mut sa = self.bytes.clone();
        let Some(plan) = &self.plan else {
            return Ok(Rendered { system_area: sa, tail: Vec::new() });
        };
        let boot = |index: usize| -> anyhow::Result<Extent> {
            let (old_platform, _) = plan.old_boot[index];
            match new.boot.get(index) {
                Some(&(platform, e)) if platform == old_platform => Ok(e),
                _ => bail!(
                    "the system area points at El Torito image {} (platform 0x{old_platform:02x}), which the edited \
                     image no longer has in that place; keep the boot entries in their order, or give the image a \
                     new system area",
                    index + 1
                ),
            }
        };
        if let Some((style, index)) = plan.pointer {
            let lba = boot(index)?.lba;
            let value = match style {
                PointerStyle::Isolinux => lba * PER_SECTOR,
                PointerStyle::Grub2 => lba * PER_SECTOR + PER_SECTOR,
            };
            put64(&mut sa, BOOT_POINTER, value);
        }
        let end = new.end_sectors * PER_SECTOR;
        let backup = plan.gpt.as_ref().map_or(0, |g| 1 + g.entry_blocks);
        let mut total = round_up(end + backup, PER_SECTOR);
        if plan.cyl_align {
            total = round_up(total, CYLINDER_BLOCKS);
        }
        let place = plan.gpt.as_ref().map(|g| GptPlace {
            total,
            entries_lba: g.entries_lba,
            entry_blocks: g.entry_blocks,
            first_usable: g.first_usable,
        });
        let resolve = |target: Target| -> anyhow::Result<Option<(u64, u64)>> {
            Ok(Some(match target {
                Target::Verbatim => return Ok(None),
                Target::Image { start, end } => {
                    let end = match (end, &place) {
                        (ImageEnd::File, _) => total,
                        (ImageEnd::Fs, _) => new.fs_sectors * PER_SECTOR,
                        (ImageEnd::Written, _) => new.end_sectors * PER_SECTOR,
                        (ImageEnd::LastUsable, Some(p)) => p.last_usable() + 1,
                        (ImageEnd::LastUsableSectors, Some(p)) => (p.last_usable() + 1) / PER_SECTOR * PER_SECTOR,
                        (_, None) => total,
                    };
                    if end <= start {
                        bail!("the edited image is too small for its partitions (one would end at block {end})");
                    }
                    (start, end - start)
                }
                Target::Boot { index, size } => {
                    let e = boot(index)?;
                    let count = match size {
                        BootSize::Blocks => blocks(e.bytes),
                        BootSize::Sectors => e.bytes.div_ceil(SECTOR) * PER_SECTOR,
                        BootSize::Fixed(n) if e.bytes == plan.old_boot[index].1.bytes => n,
                        BootSize::Fixed(n) => bail!(
                            "a partition of {n} blocks starts at El Torito image {} and does not match its size; the \
                             image changed size ({} -> {} bytes), so the partition cannot follow it",
                            index + 1,
                            plan.old_boot[index].1.bytes,
                            e.bytes
                        ),
                    };
                    if count == 0 {
                        bail!("El Torito image {} is empty; the partition that follows it would be too", index + 1);
                    }
                    (e.lba * PER_SECTOR, count)
                }
            }))
        };
        for &(slot, target) in &plan.mbr {
            let Some((start, count)) = resolve(target)? else { continue };
            let e = PARTITION_TABLE + 16 * slot;
            let old: [u8; 16] = sa[e..e + 16].try_into().expect("16 bytes");
            let old_start = le32(&old, 8) as u64;
            let old_count = le32(&old, 12) as u64;
            let geometry = if chs((old_start + old_count).saturating_sub(1), LBA_GEOMETRY) == old[5..8]
                && chs((old_start + old_count).saturating_sub(1), ISOHYBRID_GEOMETRY) != old[5..8]
            {
                LBA_GEOMETRY
            } else {
                ISOHYBRID_GEOMETRY
            };
            put_mbr_partition(&mut sa, slot, old[0], old[4], start, count, geometry)?;
            // LBA-only markers (xorriso writes fe ff ff for its EFI partition).
            for at in [1, 5] {
                if matches!(old[at..at + 3], [0xFE, 0xFF, 0xFF] | [0xFF, 0xFF, 0xFF]) {
                    sa[e + at..e + at + 3].copy_from_slice(&old[at..at + 3]);
                }
            }
        }
        let mut tail = vec![0u8; ((total - end) * BLOCK) as usize];
        if let (Some(g), Some(place)) = (&plan.gpt, &place) {
            let at = (g.entries_lba * BLOCK) as usize;
            let len = g.count as usize * g.entry_size as usize;
            let mut entries = sa[at..at + len].to_vec();
            for &(i, target) in &g.entries {
                let Some((start, count)) = resolve(target)? else { continue };
                let e = i * g.entry_size as usize;
                put64(&mut entries, e + 32, start);
                put64(&mut entries, e + 40, start + count - 1);
            }
            if place.last_usable() < place.first_usable {
                bail!("the edited image is too small for its GPT");
            }
            // The old header may have been longer than 92 bytes; its
            // extra bytes are reserved (zero) and are dropped.
            sa[512..1024].fill(0);
            write_gpt(&mut sa, &mut tail, end, place, &g.disk_guid, g.count, g.entry_size, &entries);
        }
        Ok(Rendered { system_area: sa, tail })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isohdpfx() -> Vec<u8> {
        // Any 432 bytes do for layout tests; the boot test uses the real one.
        let mut code = vec![0x90u8; MBR_CODE_MAX];
        code[..8].copy_from_slice(b"isolinux");
        code
    }

    fn layout(fs: u64, boot: &[(u8, u64, u64)]) -> Layout {
        let boot: Vec<(u8, Extent)> = boot.iter().map(|&(p, lba, bytes)| (p, Extent { lba, bytes })).collect();
        let end = boot.iter().map(|(_, e)| e.lba + e.bytes.div_ceil(SECTOR)).max().unwrap_or(0).max(fs);
        Layout { fs_sectors: fs, end_sectors: end, boot }
    }

    /// The whole image as a disk would see it: system area, zeros, tail.
    fn disk(layout: &Layout, r: &Rendered) -> Vec<u8> {
        let mut d = r.system_area.clone();
        d.resize((layout.end_sectors * SECTOR) as usize, 0);
        d.extend_from_slice(&r.tail);
        d
    }

    #[test]
    fn render_isohybrid_gpt_matches_xorriso_structure() {
        // The shape of `xorriso -as mkisofs -isohybrid-mbr isohdpfx.bin -b
        // isolinux.bin -e efi.img -isohybrid-gpt-basdat` over a 49 MiB tree.
        let l = layout(25072, &[(PLATFORM_BIOS, 754, 38912), (PLATFORM_EFI, 34, 1_474_560)]);
        let opts = HybridOptions { mbr_code: Some(isohdpfx()), gpt: true };
        let r = opts.render(&l, [7; 16]).unwrap();
        assert_eq!(r.system_area.len(), SYSTEM_AREA_BYTES);
        let total = 25072 * 2048 + r.tail.len() as u64;
        assert_eq!(total, 49 << 20, "padded to whole 1 MiB cylinders with room for the backup GPT");
        let sa = &r.system_area;
        assert_eq!(&sa[..8], b"isolinux");
        assert_eq!(le64(sa, 432), 754 * 4);
        assert_eq!(sa[510..512], [0x55, 0xAA]);
        let info = describe(sa, total);
        assert_eq!(info.kind, "mbr isohybrid cyl-align gpt");
        assert_eq!(info.boot_pointer, Some(BootPointer { style: "isolinux", value: 3016, lba: Some(754) }));
        assert_eq!(
            info.partitions,
            vec![
                MbrPartition { number: 1, status: 0x80, kind: 0x00, start: 0, blocks: 100_352 },
                MbrPartition { number: 2, status: 0x00, kind: 0xEF, start: 136, blocks: 2880 },
            ]
        );
        // CHS of partition 1's end: cylinder 48, head 63, sector 32.
        assert_eq!(&sa[446 + 5..446 + 8], &[63, 32, 48]);
        let g = info.gpt.unwrap();
        assert!(g.entries_ok && g.backup_in_image);
        assert_eq!(
            (g.first_usable, g.last_usable, g.backup_lba, g.entries_lba, g.entry_count),
            (64, 100_288, 100_351, 2, 248)
        );
        assert_eq!(g.partitions.len(), 2);
        assert_eq!((g.partitions[0].first_lba, g.partitions[0].last_lba), (0, 100_287));
        assert_eq!(g.partitions[0].type_name, Some("Basic data"));
        assert_eq!((g.partitions[1].first_lba, g.partitions[1].last_lba), (136, 3015));
        assert_eq!(g.partitions[1].type_name, Some("EFI System"));
        // The backup header at the last block points back at the primary.
        let d = disk(&l, &r);
        let backup = &d[d.len() - 512..];
        assert_eq!(&backup[..8], GPT_SIGNATURE);
        assert_eq!((le64(backup, 24), le64(backup, 32), le64(backup, 72)), (100_351, 1, 100_289));
        let mut h = backup[..92].to_vec();
        h[16..20].fill(0);
        assert_eq!(crc32(&h), le32(backup, 16));
        assert_eq!(&d[100_289 * 512..100_289 * 512 + 248 * 128], &sa[1024..1024 + 248 * 128]);
        // Reproducible.
        assert_eq!(opts.render(&l, [7; 16]).unwrap().system_area, r.system_area);
        assert_ne!(opts.render(&l, [8; 16]).unwrap().system_area, r.system_area);
    }

    #[test]
    fn render_plain_isohybrid_without_efi() {
        let l = layout(845, &[(PLATFORM_BIOS, 466, 38912)]);
        let r = HybridOptions { mbr_code: Some(isohdpfx()), gpt: false }.render(&l, [1; 16]).unwrap();
        let total = 845 * 2048 + r.tail.len() as u64;
        assert_eq!(total, 2 << 20);
        let info = describe(&r.system_area, total);
        assert_eq!(info.kind, "mbr isohybrid cyl-align");
        assert_eq!(info.partitions, vec![MbrPartition { number: 1, status: 0x80, kind: 0x17, start: 0, blocks: 4096 }]);
        // ipxe.iso's partition entry, byte for byte.
        assert_eq!(&r.system_area[446..462], &[0x80, 0, 1, 0, 0x17, 0x3F, 0x20, 1, 0, 0, 0, 0, 0, 0x10, 0, 0]);
    }

    #[test]
    fn render_uefi_only_appended_esp() {
        let l = layout(826, &[(PLATFORM_EFI, 826, 4 << 20)]);
        let r = HybridOptions { mbr_code: None, gpt: false }.render(&l, [1; 16]).unwrap();
        assert!(r.system_area[..440].iter().all(|&b| b == 0));
        let info = describe(&r.system_area, 0);
        assert_eq!(info.kind, "mbr");
        assert_eq!(
            info.partitions,
            vec![
                MbrPartition { number: 1, status: 0x80, kind: 0x00, start: 0, blocks: 3304 },
                MbrPartition { number: 2, status: 0x00, kind: 0xEF, start: 3304, blocks: 8192 },
            ]
        );
        assert!(HybridOptions { mbr_code: Some(isohdpfx()), gpt: false }.render(&l, [1; 16]).is_err());
        assert!(HybridOptions { mbr_code: Some(vec![0; 433]), gpt: false }
            .render(&layout(845, &[(PLATFORM_BIOS, 466, 2048)]), [1; 16])
            .is_err());
    }

    #[test]
    fn chs_matches_vendor_images() {
        // memtest86+x64.iso: partition 2 from block 3304 to 11495.
        assert_eq!(chs(3304, ISOHYBRID_GEOMETRY), [0x27, 0x09, 0x01]);
        assert_eq!(chs(11495, ISOHYBRID_GEOMETRY), [0x27, 0x08, 0x05]);
        // Beyond cylinder 1023 the largest address.
        assert_eq!(chs(5_000_000, ISOHYBRID_GEOMETRY), [63, 32 | 0xC0, 0xFF]);
        assert_eq!(chs(50_000_000, LBA_GEOMETRY), [0xFE, 0xFF, 0xFF]);
    }

    /// The first 32 KiB and length of a vendor image, or `None` (with a
    /// message) when it is not installed.
    fn vendor(path: &str) -> Option<(Vec<u8>, u64)> {
        use std::io::Read;
        let Ok(mut f) = std::fs::File::open(path) else {
            eprintln!("skipping: {path} is not installed");
            return None;
        };
        let mut sa = vec![0u8; SYSTEM_AREA_BYTES];
        f.read_exact(&mut sa).unwrap();
        Some((sa, f.metadata().unwrap().len()))
    }

    fn shifted(l: &Layout, by: u64) -> Layout {
        Layout {
            fs_sectors: l.fs_sectors + by,
            end_sectors: l.end_sectors + by,
            boot: l.boot.iter().map(|&(p, e)| (p, Extent { lba: e.lba + by, bytes: e.bytes })).collect(),
        }
    }

    #[test]
    fn carry_ipxe_isohybrid() {
        let Some((sa, len)) = vendor("/usr/lib/ipxe/ipxe.iso") else { return };
        let old = layout(845, &[(PLATFORM_BIOS, 466, 2048), (PLATFORM_EFI, 34, 1728 * 512)]);
        let info = describe_with_boot(&sa, len, &old.boot);
        assert_eq!(info.kind, "mbr isohybrid cyl-align");
        let carried = CarriedArea::from_image(&sa, &old, len).unwrap();
        // Same layout: same bytes.
        let same = carried.render(&old).unwrap();
        assert_eq!(same.system_area, sa);
        assert_eq!(845 * 2048 + same.tail.len() as u64, len);
        // 300 sectors more: the pointer follows isolinux.bin, partition 1
        // the (still cylinder-aligned) image.
        let new = shifted(&old, 300);
        let r = carried.render(&new).unwrap();
        let total = 1145 * 2048 + r.tail.len() as u64;
        assert_eq!(total, 3 << 20);
        assert_eq!(&r.system_area[..432], &sa[..432], "boot code kept");
        assert_eq!(&r.system_area[440..444], &sa[440..444], "disk signature kept");
        let info = describe_with_boot(&r.system_area, total, &new.boot);
        assert_eq!(info.kind, "mbr isohybrid cyl-align");
        assert_eq!(info.boot_pointer.unwrap().lba, Some(766));
        assert_eq!(info.partitions, vec![MbrPartition { number: 1, status: 0x80, kind: 0x17, start: 0, blocks: 6144 }]);
        assert_eq!(&r.system_area[446 + 5..446 + 8], &[63, 32, 2]);
    }

    #[test]
    fn carry_memtest_grub2_appended_esp() {
        let Some((sa, len)) = vendor("/usr/lib/memtest86+/memtest86+x64.iso") else { return };
        let old = layout(826, &[(PLATFORM_BIOS, 35, 1_474_560), (PLATFORM_EFI, 826, 4 << 20)]);
        let info = describe_with_boot(&sa, len, &old.boot);
        assert_eq!(info.kind, "mbr grub2");
        let carried = CarriedArea::from_image(&sa, &old, len).unwrap();
        assert_eq!(carried.render(&old).unwrap().system_area, sa);
        let new = layout(900, &[(PLATFORM_BIOS, 40, 1_474_560), (PLATFORM_EFI, 900, 4 << 20)]);
        let r = carried.render(&new).unwrap();
        assert!(r.tail.is_empty(), "no alignment: the input was not aligned");
        let info = describe_with_boot(&r.system_area, 0, &new.boot);
        assert_eq!(info.boot_pointer, Some(BootPointer { style: "grub2", value: 164, lba: Some(40) }));
        assert_eq!(
            info.partitions,
            vec![
                MbrPartition { number: 1, status: 0x80, kind: 0x00, start: 0, blocks: 3600 },
                MbrPartition { number: 2, status: 0x00, kind: 0xEF, start: 3600, blocks: 8192 },
            ]
        );
        assert_eq!(&r.system_area[462 + 1..462 + 4], &chs(3600, ISOHYBRID_GEOMETRY));
        // A new EFI image size moves partition 2's end.
        let bigger = layout(900, &[(PLATFORM_BIOS, 40, 1_474_560), (PLATFORM_EFI, 900, 5 << 20)]);
        let info = describe(&carried.render(&bigger).unwrap().system_area, 0);
        assert_eq!(info.partitions[1].blocks, 10240);
        // The entries must stay where they were.
        let swapped = Layout { boot: vec![new.boot[1], new.boot[0]], ..new.clone() };
        assert!(carried.render(&swapped).is_err());
    }

    #[test]
    fn carry_grub_rescue_protective_msdos() {
        let Some((sa, len)) = vendor("/usr/lib/grub-rescue/grub-rescue-cdrom.iso") else { return };
        let old = layout(2481, &[(PLATFORM_BIOS, 1394, 2048)]);
        let info = describe(&sa, len);
        assert_eq!(info.kind, "mbr grub2 protective-msdos");
        let carried = CarriedArea::from_image(&sa, &old, len).unwrap();
        assert_eq!(carried.render(&old).unwrap().system_area, sa);
        let new = layout(3000, &[(PLATFORM_BIOS, 1500, 2048)]);
        let r = carried.render(&new).unwrap();
        assert!(r.tail.is_empty());
        let info = describe_with_boot(&r.system_area, 3000 * 2048, &new.boot);
        assert_eq!(info.boot_pointer.unwrap().value, 1500 * 4 + 4);
        assert_eq!(
            info.partitions,
            vec![MbrPartition { number: 1, status: 0x80, kind: 0xCD, start: 1, blocks: 11999 }]
        );
    }

    #[test]
    fn carry_rendered_gpt_follows_new_layout() {
        let old = layout(25072, &[(PLATFORM_BIOS, 754, 38912), (PLATFORM_EFI, 34, 1_474_560)]);
        let first = HybridOptions { mbr_code: Some(isohdpfx()), gpt: true }.render(&old, [3; 16]).unwrap();
        let len = 25072 * 2048 + first.tail.len() as u64;
        let carried = CarriedArea::from_image(&first.system_area, &old, len).unwrap();
        let same = carried.render(&old).unwrap();
        assert_eq!(same.system_area, first.system_area);
        assert_eq!(same.tail, first.tail);
        let new = layout(30000, &[(PLATFORM_BIOS, 800, 38912), (PLATFORM_EFI, 40, 2 << 20)]);
        let r = carried.render(&new).unwrap();
        let total = 30000 * 2048 + r.tail.len() as u64;
        assert_eq!(total % (1 << 20), 0);
        let info = describe(&r.system_area, total);
        assert_eq!(info.kind, "mbr isohybrid cyl-align gpt");
        assert_eq!(info.partitions[1], MbrPartition { number: 2, status: 0, kind: 0xEF, start: 160, blocks: 4096 });
        let g = info.gpt.unwrap();
        assert_eq!(g.backup_lba, total / 512 - 1);
        assert_eq!((g.partitions[1].first_lba, g.partitions[1].last_lba), (160, 4255));
        assert_eq!(g.partitions[0].last_lba, (g.last_usable + 1) / 4 * 4 - 1);
        // Identical to a fresh render: the carried GPT keeps the GUIDs.
        let fresh = HybridOptions { mbr_code: Some(isohdpfx()), gpt: true }.render(&new, [3; 16]).unwrap();
        assert_eq!(r.system_area, fresh.system_area);
        assert_eq!(r.tail, fresh.tail);
    }

    #[test]
    fn carry_refuses_partitions_pointing_elsewhere() {
        let old = layout(845, &[(PLATFORM_BIOS, 466, 2048)]);
        let mut sa =
            HybridOptions { mbr_code: Some(isohdpfx()), gpt: false }.render(&old, [1; 16]).unwrap().system_area;
        put_mbr_partition(&mut sa, 2, 0, 0x83, 5000, 100, ISOHYBRID_GEOMETRY).unwrap();
        let err = CarriedArea::from_image(&sa, &old, 2 << 20).unwrap_err().to_string();
        assert!(err.contains("cannot carry over MBR partition 3 (type 0x83, start 5000, blocks 100)"), "{err}");
        // One inside the system area is kept as it is.
        put_mbr_partition(&mut sa, 2, 0, 0x83, 10, 20, ISOHYBRID_GEOMETRY).unwrap();
        let r = CarriedArea::from_image(&sa, &old, 2 << 20).unwrap().render(&shifted(&old, 10)).unwrap();
        assert_eq!(&r.system_area[478..494], &sa[478..494]);
    }

    /// Runs a command; `None` when it is not installed.
    fn run(cmd: &str, args: &[&std::ffi::OsStr]) -> Option<String> {
        let out = std::process::Command::new(cmd).args(args).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{cmd} failed:\n{text}");
        Some(text)
    }

    /// Fields of the report line that starts with `key`, after the colon.
    fn report<'a>(text: &'a str, key: &str) -> Vec<Vec<&'a str>> {
        text.lines()
            .filter(|l| l.starts_with(key))
            .map(|l| l.split_once(':').map_or("", |(_, v)| v).split_whitespace().collect())
            .collect()
    }

    #[test]
    fn xorriso_reads_rendered_area_on_a_real_image() {
        use std::ffi::OsStr;
        let isolinux = std::path::Path::new("/usr/lib/ISOLINUX/isolinux.bin");
        let Ok(code) = std::fs::read("/usr/lib/ISOLINUX/isohdpfx.bin") else {
            eprintln!("skipping: isolinux is not installed");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("isolinux")).unwrap();
        std::fs::copy(isolinux, tree.join("isolinux/isolinux.bin")).unwrap();
        let efi = crate::model::Entry {
            name: b"BOOTX64.EFI".to_vec(),
            meta: Default::default(),
            kind: crate::model::Kind::File {
                size: 4000,
                content: crate::model::Content::Bytes(std::sync::Arc::from(vec![0x4D; 4000])),
            },
            link: None,
        };
        let boot = crate::model::Entry {
            name: b"BOOT".to_vec(),
            meta: Default::default(),
            kind: crate::model::Kind::Dir(vec![efi]),
            link: None,
        };
        let esp = crate::fat::esp_image(b"EFI", &[boot], None, 0).unwrap();
        std::fs::write(tree.join("efi.img"), &esp).unwrap();
        let plain = dir.path().join("plain.iso");
        let (out, src) = (plain.to_str().unwrap(), tree.to_str().unwrap());
        #[rustfmt::skip]
        let args = [
            "-as", "mkisofs", "-o", out, "-R", "-b", "isolinux/isolinux.bin", "-c", "boot.cat", "-no-emul-boot",
            "-boot-load-size", "4", "-boot-info-table", "-eltorito-alt-boot", "-e", "efi.img", "-no-emul-boot", src,
        ]
        .map(OsStr::new);
        if run("xorriso", &args).is_none() {
            eprintln!("skipping: xorriso is not installed");
            return;
        }
        let indev = |p: &std::path::Path, what: &str| {
            run("xorriso", &[OsStr::new("-indev"), p.as_os_str(), OsStr::new(what), OsStr::new("plain")]).unwrap()
        };
        let catalog = indev(&plain, "-report_el_torito");
        let lbas: Vec<u64> = report(&catalog, "El Torito boot img").iter().map(|f| f[7].parse().unwrap()).collect();
        let mut iso = std::fs::read(&plain).unwrap();
        let l = Layout {
            fs_sectors: le32(&iso, 0x8050) as u64,
            end_sectors: iso.len() as u64 / SECTOR,
            boot: vec![
                (PLATFORM_BIOS, Extent { lba: lbas[0], bytes: std::fs::metadata(isolinux).unwrap().len() }),
                (PLATFORM_EFI, Extent { lba: lbas[1], bytes: esp.len() as u64 }),
            ],
        };
        let r = HybridOptions { mbr_code: Some(code), gpt: true }.render(&l, [9; 16]).unwrap();
        iso[..SYSTEM_AREA_BYTES].copy_from_slice(&r.system_area);
        iso.extend_from_slice(&r.tail);
        let hybrid = dir.path().join("hybrid.iso");
        std::fs::write(&hybrid, &iso).unwrap();

        let text = indev(&hybrid, "-report_system_area");
        assert_eq!(report(&text, "System area summary"), [["MBR", "isohybrid", "cyl-align-on", "GPT"]], "{text}");
        let total = (iso.len() / 512).to_string();
        let (esp_start, esp_blocks) = ((lbas[1] * 4).to_string(), (esp.len() / 512).to_string());
        assert_eq!(
            report(&text, "MBR partition      :"),
            [vec!["1", "0x80", "0x00", "0", &total], vec!["2", "0x00", "0xef", &esp_start, &esp_blocks]],
            "{text}"
        );
        assert_eq!(report(&text, "GPT start and size :")[1], ["2", &esp_start, &esp_blocks], "{text}");
        let range = &report(&text, "GPT lba range")[0];
        assert_eq!((range[0], range[2]), ("64", (iso.len() / 512 - 1).to_string().as_str()), "{text}");
        assert_eq!(report(&text, "GPT partition path :"), [["2", "/efi.img"]], "xorriso matched the ESP to efi.img");
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x = splitmix64(x);
            x
        };
        let old = layout(100, &[(PLATFORM_BIOS, 20, 2048), (PLATFORM_EFI, 30, 4096)]);
        for round in 0..300 {
            let len = [0, 1, 511, 512, 1024, SYSTEM_AREA_BYTES, SYSTEM_AREA_BYTES + 7][round % 7];
            let mut sa: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= 1024 && round % 2 == 0 {
                // A plausible MBR and a GPT header with a valid CRC over
                // random fields.
                sa[510] = 0x55;
                sa[511] = 0xAA;
                sa[512..520].copy_from_slice(GPT_SIGNATURE);
                let size = [92u32, 0, 600, u32::MAX][round % 4];
                put32(&mut sa, 512 + 12, size);
                if size == 92 {
                    let mut h = sa[512..604].to_vec();
                    h[16..20].fill(0);
                    let crc = crc32(&h);
                    put32(&mut sa, 512 + 16, crc);
                }
            }
            let info = describe(&sa, next());
            let _ = info.to_string();
            let _ = serde_json::to_string(&info).unwrap();
            let _ = describe_with_boot(&sa, next(), &[(0, Extent { lba: next(), bytes: next() })]);
            if let Ok(c) = CarriedArea::from_image(&sa, &old, next() % (1 << 40)) {
                let _ = c.render(&shifted(&old, 5));
            }
        }
    }
}
