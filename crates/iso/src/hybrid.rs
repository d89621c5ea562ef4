//! Hybrid system areas: the MBR (and GPT) in the first 32 KiB that let the
//! same image boot from a disk or USB stick. PLACEHOLDER: interface only.

use serde::Serialize;

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

/// An input image's system area, kept so it can be re-targeted.
#[derive(Clone, Debug)]
pub struct CarriedArea {
    pub bytes: Vec<u8>,
}

/// What `iso info` shows about a system area (filled in by the hybrid module).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SystemAreaInfo {
    pub kind: String,
}

/// Describes the system area of an image of `file_len` bytes.
pub fn describe(_system_area: &[u8], _file_len: u64) -> SystemAreaInfo {
    SystemAreaInfo::default()
}

impl CarriedArea {
    /// Keeps the system area of an input image whose layout was `old`.
    pub fn from_image(system_area: &[u8], _old: &Layout, _file_len: u64) -> anyhow::Result<Self> {
        Ok(CarriedArea { bytes: system_area.to_vec() })
    }
}
