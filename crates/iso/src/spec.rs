//! Constants and field encodings of ECMA-119 (ISO 9660), El Torito, SUSP,
//! Rock Ridge (RRIP 1.12) and Joliet, shared by the reader and the writer.

/// Logical sector and block size: slipway reads and writes 2048-byte blocks only.
pub const SECTOR: u64 = 2048;
/// The system area: the first 16 sectors, unused by ISO 9660 itself (MBR, GPT).
pub const SYSTEM_AREA_SECTORS: u64 = 16;
pub const SYSTEM_AREA_BYTES: usize = (SYSTEM_AREA_SECTORS * SECTOR) as usize;

/// Volume descriptor types.
pub const VD_BOOT_RECORD: u8 = 0;
pub const VD_PRIMARY: u8 = 1;
pub const VD_SUPPLEMENTARY: u8 = 2;
pub const VD_TERMINATOR: u8 = 255;
pub const VD_MAGIC: &[u8; 5] = b"CD001";
pub const EL_TORITO_ID: &[u8] = b"EL TORITO SPECIFICATION";

/// Directory record file flags.
pub const FLAG_HIDDEN: u8 = 0x01;
pub const FLAG_DIR: u8 = 0x02;
pub const FLAG_MULTI_EXTENT: u8 = 0x80;

/// The largest extent one directory record can describe. Files larger than
/// this are written as several records with [`FLAG_MULTI_EXTENT`]; slipway
/// cuts them at a sector multiple (4 GiB - 2 KiB).
pub const MAX_EXTENT: u64 = 0xFFFF_F800;

/// El Torito platform ids.
pub const PLATFORM_BIOS: u8 = 0x00;
pub const PLATFORM_PPC: u8 = 0x01;
pub const PLATFORM_MAC: u8 = 0x02;
pub const PLATFORM_EFI: u8 = 0xEF;

/// El Torito boot media types (emulation).
pub const EMUL_NONE: u8 = 0;
pub const EMUL_FLOPPY_12: u8 = 1;
pub const EMUL_FLOPPY_144: u8 = 2;
pub const EMUL_FLOPPY_288: u8 = 3;
pub const EMUL_HARD_DISK: u8 = 4;

/// POSIX file types in Rock Ridge `PX` modes.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

/// Joliet escape sequence for UCS-2 level 3.
pub const JOLIET_ESCAPE: &[u8; 3] = b"%/E";

/// Writes `v` as a both-endian 16-bit field (ECMA-119 7.2.3).
pub fn both16(out: &mut [u8], v: u16) {
    out[0..2].copy_from_slice(&v.to_le_bytes());
    out[2..4].copy_from_slice(&v.to_be_bytes());
}

/// Writes `v` as a both-endian 32-bit field (ECMA-119 7.3.3).
pub fn both32(out: &mut [u8], v: u32) {
    out[0..4].copy_from_slice(&v.to_le_bytes());
    out[4..8].copy_from_slice(&v.to_be_bytes());
}

/// Reads the little-endian half of a both-endian 32-bit field. Images in the
/// wild sometimes get the big-endian half wrong; every reader we check
/// against uses the little-endian one.
pub fn read_both32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

pub fn read_both16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

/// A calendar date and time in UTC, as both ISO 9660 date formats carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DateTime {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub centis: u8,
}

/// Converts seconds since the Unix epoch to a UTC calendar date
/// (proleptic Gregorian; Howard Hinnant's days-to-civil algorithm).
pub fn civil_from_unix(secs: i64) -> DateTime {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    DateTime {
        year: y,
        month: m as u8,
        day: d as u8,
        hour: (rem / 3600) as u8,
        minute: (rem % 3600 / 60) as u8,
        second: (rem % 60) as u8,
        centis: 0,
    }
}

/// Converts a UTC calendar date to seconds since the Unix epoch.
pub fn unix_from_civil(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hour as i64 * 3600 + minute as i64 * 60 + second as i64
}

/// The 7-byte date of directory records and Rock Ridge TF (ECMA-119 9.1.5),
/// always written in UTC (offset 0). Years outside 1900..=2155 are clamped.
pub fn date7(secs: i64) -> [u8; 7] {
    let secs = secs.clamp(unix_from_civil(1900, 1, 1, 0, 0, 0), unix_from_civil(2155, 12, 31, 23, 59, 59));
    let d = civil_from_unix(secs);
    [(d.year - 1900) as u8, d.month, d.day, d.hour, d.minute, d.second, 0]
}

/// Reads a 7-byte date, applying its offset from UTC (15-minute units).
/// Returns `None` for an all-zero (unset) date.
pub fn read_date7(b: &[u8]) -> Option<i64> {
    if b[..6].iter().all(|&x| x == 0) {
        return None;
    }
    let month = b[1].clamp(1, 12) as u32;
    let day = b[2].clamp(1, 31) as u32;
    let t =
        unix_from_civil(1900 + b[0] as i64, month, day, b[3].min(23) as u32, b[4].min(59) as u32, b[5].min(59) as u32);
    Some(t - (b[6] as i8) as i64 * 15 * 60)
}

/// The 17-byte date of volume descriptors (ECMA-119 8.4.26.1), in UTC.
pub fn date17(secs: i64) -> [u8; 17] {
    let d = civil_from_unix(secs.clamp(0, unix_from_civil(9999, 12, 31, 23, 59, 59)));
    let s =
        format!("{:04}{:02}{:02}{:02}{:02}{:02}{:02}", d.year, d.month, d.day, d.hour, d.minute, d.second, d.centis);
    let mut out = [0u8; 17];
    out[..16].copy_from_slice(s.as_bytes());
    out
}

/// The 17-byte "not specified" date.
pub fn date17_unset() -> [u8; 17] {
    let mut out = [b'0'; 17];
    out[16] = 0;
    out
}

/// Reads a 17-byte date; `None` when unset or malformed.
pub fn read_date17(b: &[u8]) -> Option<i64> {
    let digits = &b[..16];
    if !digits.iter().all(|c| c.is_ascii_digit()) || digits.iter().all(|&c| c == b'0') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> u32 {
        std::str::from_utf8(&digits[r]).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
    };
    let t = unix_from_civil(n(0..4) as i64, n(4..6).clamp(1, 12), n(6..8).clamp(1, 31), n(8..10), n(10..12), n(12..14));
    Some(t - (b[16] as i8) as i64 * 15 * 60)
}

/// A text field of a volume descriptor: trailing spaces removed.
pub fn read_text(b: &[u8]) -> String {
    let end = b.iter().rposition(|&c| c != b' ' && c != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A Joliet (UCS-2 big-endian) text field of a supplementary descriptor.
pub fn read_text_ucs2(b: &[u8]) -> String {
    let units: Vec<u16> = b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    let s = String::from_utf16_lossy(&units);
    s.trim_end_matches([' ', '\0']).to_string()
}

/// Rounds `n` bytes up to whole sectors.
pub fn sectors(n: u64) -> u64 {
    n.div_ceil(SECTOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for t in [0i64, 1, 86_399, 951_782_400, 1_700_000_000, 4_102_444_800, -1, -2_208_988_800] {
            let d = civil_from_unix(t);
            assert_eq!(
                unix_from_civil(d.year, d.month as u32, d.day as u32, d.hour as u32, d.minute as u32, d.second as u32),
                t
            );
        }
        assert_eq!(read_date7(&date7(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(read_date17(&date17(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(read_date17(&date17_unset()), None);
        assert_eq!(&date17(0)[..16], b"1970010100000000");
    }

    #[test]
    fn both_endian() {
        let mut b = [0u8; 8];
        both32(&mut b, 0x01020304);
        assert_eq!(b, [4, 3, 2, 1, 1, 2, 3, 4]);
        assert_eq!(read_both32(&b), 0x01020304);
    }
}
