//! FAT images for the EFI system partition: `iso build` puts one directory
//! (`EFI`) into a FAT filesystem that the UEFI El Torito entry (and, on a
//! hybrid image, MBR/GPT partition 2) points at.
//!
//! The image is deterministic: every timestamp is the given `mtime`, the
//! volume id is a hash of the finished image, and the size follows from the
//! content alone. It is sized to the content plus a little slack (at least
//! 1 MiB, a multiple of 64 KiB), which makes small ESPs FAT12 and larger
//! ones FAT16 or FAT32, as `mkfs.vfat` would choose for the size.

use std::cell::Cell;
use std::io::{Cursor, Write};

use anyhow::{bail, Context};

use crate::model::{self, Entry, Kind};

/// Volume label of the ESPs slipway makes.
const LABEL: &[u8; 11] = b"ESP        ";
const KIB: u64 = 1024;
/// Sizes are rounded to this: a multiple of 2048-byte ISO sectors and of
/// the 32-sector tracks FAT tools like to see.
const GRANULE: u64 = 64 * KIB;
const MIN_SIZE: u64 = 1024 * KIB;
/// Largest file FAT can hold.
const MAX_FILE: u64 = u32::MAX as u64;

thread_local! {
    /// The DOS date and time fatfs stamps on entries it creates; set for
    /// the duration of one [`esp_image`] call on this thread.
    static STAMP: Cell<(u16, u16, u16, u16, u16, u16)> = const { Cell::new((1980, 1, 1, 0, 0, 0)) };
}

/// fatfs wants a `&'static` time provider; this one answers with the
/// timestamp of the image being built on the calling thread.
#[derive(Debug)]
struct FixedTime;

static FIXED_TIME: FixedTime = FixedTime;

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        let (year, month, day, ..) = STAMP.with(Cell::get);
        fatfs::Date { year, month, day }
    }

    fn get_current_date_time(&self) -> fatfs::DateTime {
        let (year, month, day, hour, min, sec) = STAMP.with(Cell::get);
        fatfs::DateTime { date: fatfs::Date { year, month, day }, time: fatfs::Time { hour, min, sec, millis: 0 } }
    }
}

/// FAT stores local dates from 1980 to 2107 with 2-second resolution; the
/// time is taken as UTC and clamped to that range.
fn dos_stamp(mtime: i64) -> (u16, u16, u16, u16, u16, u16) {
    let lo = crate::spec::unix_from_civil(1980, 1, 1, 0, 0, 0);
    let hi = crate::spec::unix_from_civil(2107, 12, 31, 23, 59, 58);
    let d = crate::spec::civil_from_unix(mtime.clamp(lo, hi));
    (d.year as u16, d.month as u16, d.day as u16, d.hour as u16, d.minute as u16, (d.second / 2 * 2) as u16)
}

/// Makes a FAT filesystem image holding one directory `top` (e.g. `EFI`)
/// with `entries` in it. Regular files are copied with
/// [`crate::write::copy_content`]; any other kind of file is an error, as
/// are names FAT cannot store and names that differ only in case.
pub fn esp_image(
    top: &[u8],
    entries: &[model::Entry],
    mut external: Option<&mut dyn model::External>,
    mtime: i64,
) -> anyhow::Result<Vec<u8>> {
    let top_name = check_name(top, &[]).context("making the EFI system partition image")?;
    let path = vec![top.to_vec()];
    check_dir(entries, &path).context("making the EFI system partition image")?;

    let content: u64 = file_bytes(entries);
    let mut size = round_up(content + content / 16 + 128 * KIB, GRANULE).max(MIN_SIZE);
    // Format, see how much room the chosen geometry leaves, and grow until
    // the content fits: no content is written before it does.
    for _ in 0..64 {
        let mut disk = Cursor::new(vec![0u8; size as usize]);
        let formatted =
            fatfs::format_volume(&mut disk, fatfs::FormatVolumeOptions::new().volume_id(0).volume_label(*LABEL));
        if formatted.is_err() {
            // fatfs finds no FAT type whose cluster count fits this size.
            size += GRANULE;
            continue;
        }
        disk.set_position(0);
        let previous = STAMP.with(|s| s.replace(dos_stamp(mtime)));
        let result = fill(&mut disk, &top_name, entries, &path, external.as_mut().map(|x| &mut **x as _));
        STAMP.with(|s| s.set(previous));
        match result? {
            Fill::Done => {
                let mut image = disk.into_inner();
                tidy_directories(&mut image).context("tidying the new FAT filesystem's directories")?;
                set_volume_id(&mut image);
                return Ok(image);
            }
            Fill::Short { cluster, missing } => size = round_up(size + missing * cluster + GRANULE, GRANULE),
        }
    }
    bail!("could not find a FAT geometry for an EFI system partition of {content} bytes of files")
}

enum Fill {
    Done,
    /// The formatted filesystem lacks `missing` clusters of `cluster` bytes.
    Short {
        cluster: u64,
        missing: u64,
    },
}

fn fill(
    disk: &mut Cursor<Vec<u8>>,
    top_name: &str,
    entries: &[Entry],
    path: &[Vec<u8>],
    external: Option<&mut dyn model::External>,
) -> anyhow::Result<Fill> {
    let options = fatfs::FsOptions::new().time_provider(&FIXED_TIME).update_accessed_date(false);
    let fs = fatfs::FileSystem::new(disk, options).context("opening the new FAT filesystem")?;
    let stats = fs.stats().context("reading the new FAT filesystem's free space")?;
    let cluster = stats.cluster_size() as u64;
    // The top directory and everything in it, and a cluster for a root
    // directory that has to grow (FAT32).
    let need = clusters(entries, cluster) + 1;
    let slack = (16 * KIB).div_ceil(cluster) + need / 32;
    let free = stats.free_clusters() as u64;
    if free < need + slack {
        return Ok(Fill::Short { cluster, missing: need + slack - free });
    }
    let dir = fs.root_dir().create_dir(top_name).with_context(|| format!("creating {}", model::join(path)))?;
    write_dir(&dir, entries, path, external)?;
    drop(dir);
    fs.unmount().context("finishing the FAT filesystem")?;
    Ok(Fill::Done)
}

fn write_dir<T: fatfs::ReadWriteSeek>(
    dir: &fatfs::Dir<'_, T>,
    entries: &[Entry],
    path: &[Vec<u8>],
    mut external: Option<&mut dyn model::External>,
) -> anyhow::Result<()> {
    for e in entries {
        let mut p = path.to_vec();
        p.push(e.name.clone());
        let name = std::str::from_utf8(&e.name).expect("checked");
        match &e.kind {
            Kind::Dir(children) => {
                let sub = dir.create_dir(name).with_context(|| format!("creating {} in the ESP", model::join(&p)))?;
                write_dir(&sub, children, &p, external.as_mut().map(|x| &mut **x as _))?;
            }
            Kind::File { size, content } => {
                let mut f =
                    dir.create_file(name).with_context(|| format!("creating {} in the ESP", model::join(&p)))?;
                crate::write::copy_content(content, *size, external.as_mut().map(|x| &mut **x as _), &mut f)
                    .with_context(|| format!("copying {} into the ESP", model::join(&p)))?;
                f.flush().with_context(|| format!("writing {} into the ESP", model::join(&p)))?;
            }
            _ => unreachable!("checked by check_dir"),
        }
    }
    Ok(())
}

/// A name FAT can store as a long file name, as UTF-8.
fn check_name(name: &[u8], path: &[Vec<u8>]) -> anyhow::Result<String> {
    let mut p = path.to_vec();
    p.push(name.to_vec());
    let shown = model::join(&p);
    let Ok(s) = std::str::from_utf8(name) else {
        bail!("{shown}: a FAT file name must be UTF-8");
    };
    if s.is_empty() || s == "." || s == ".." {
        bail!("{shown}: not a file name FAT can store");
    }
    if s.encode_utf16().count() > 255 {
        bail!("{shown}: longer than the 255 characters a FAT long name holds");
    }
    if s.ends_with(['.', ' ']) {
        bail!("{shown}: FAT drops trailing dots and spaces from names; rename it");
    }
    // What fatfs (and Windows) accept in a long name.
    let ok = |c: char| c.is_ascii_alphanumeric() || c as u32 >= 0x80 || "$%'-_@~`!(){}. +,;=[]^#&".contains(c);
    if let Some(c) = s.chars().find(|&c| !ok(c) || c as u32 > 0xFFFF) {
        bail!("{shown}: FAT names cannot hold {c:?}; rename it");
    }
    Ok(s.to_string())
}

/// Checks names, kinds and sizes before anything is written.
fn check_dir(entries: &[Entry], path: &[Vec<u8>]) -> anyhow::Result<()> {
    let mut seen = std::collections::HashMap::new();
    for e in entries {
        let name = check_name(&e.name, path)?;
        let mut p = path.to_vec();
        p.push(e.name.clone());
        if let Some(other) = seen.insert(name.to_uppercase(), name.clone()) {
            bail!(
                "{} and {other:?} in {} differ only in case, which FAT does not tell apart; rename one",
                model::join(&p),
                model::join(path)
            );
        }
        match &e.kind {
            Kind::Dir(children) => check_dir(children, &p)?,
            Kind::File { size, .. } if *size > MAX_FILE => {
                bail!("{} is {size} bytes; a FAT file holds at most {MAX_FILE}", model::join(&p))
            }
            Kind::File { .. } => {}
            k => bail!(
                "{} is a {}; the FAT filesystem of the EFI system partition holds only files and directories \
                 (put the file it stands for there instead)",
                model::join(&p),
                k.type_name()
            ),
        }
    }
    Ok(())
}

fn file_bytes(entries: &[Entry]) -> u64 {
    entries
        .iter()
        .map(|e| match &e.kind {
            Kind::Dir(children) => 4 * KIB + file_bytes(children),
            Kind::File { size, .. } => *size,
            _ => 0,
        })
        .sum()
}

/// Clusters a directory holding `entries` and everything below it take.
/// Every name is counted with long-name entries, which errs on the safe
/// side for 8.3 names.
fn clusters(entries: &[Entry], cluster: u64) -> u64 {
    let slots: u64 = entries.iter().map(|e| 1 + (e.name.len() as u64).div_ceil(13)).sum();
    let own = (32 * (2 + slots)).div_ceil(cluster).max(1);
    own + entries
        .iter()
        .map(|e| match &e.kind {
            Kind::Dir(children) => clusters(children, cluster),
            Kind::File { size, .. } => size.div_ceil(cluster),
            _ => 0,
        })
        .sum::<u64>()
}

/// The parts of a FAT boot sector needed to walk directories.
struct Geometry {
    fat_start: usize,
    fat_bits: u32,
    /// FAT12/16 root directory region; `None` on FAT32.
    root_region: Option<std::ops::Range<usize>>,
    root_cluster: u32,
    data_start: usize,
    cluster_bytes: usize,
    clusters: u32,
}

impl Geometry {
    fn read(img: &[u8]) -> anyhow::Result<Self> {
        if img.len() < 512 {
            bail!("image too small for a FAT boot sector");
        }
        let u16_at = |at: usize| u16::from_le_bytes([img[at], img[at + 1]]) as usize;
        let u32_at = |at: usize| u32::from_le_bytes([img[at], img[at + 1], img[at + 2], img[at + 3]]) as usize;
        let bps = u16_at(11);
        let spc = img[13] as usize;
        let reserved = u16_at(14);
        let fats = img[16] as usize;
        let root_entries = u16_at(17);
        let total = if u16_at(19) != 0 { u16_at(19) } else { u32_at(32) };
        let per_fat = if u16_at(22) != 0 { u16_at(22) } else { u32_at(36) };
        if bps < 512 || spc == 0 || total * bps > img.len() {
            bail!("boot sector does not describe this image");
        }
        let root_start = (reserved + fats * per_fat) * bps;
        let data_start = root_start + (root_entries * 32).div_ceil(bps) * bps;
        let clusters = (total * bps).saturating_sub(data_start) / (spc * bps);
        let fat_bits = match clusters {
            0..4085 => 12,
            4085..65525 => 16,
            _ => 32,
        };
        Ok(Geometry {
            fat_start: reserved * bps,
            fat_bits,
            root_region: (fat_bits != 32).then_some(root_start..data_start),
            root_cluster: u32_at(44) as u32,
            data_start,
            cluster_bytes: spc * bps,
            clusters: clusters as u32,
        })
    }

    /// The byte ranges of the cluster chain starting at `first`.
    fn chain(&self, img: &[u8], first: u32) -> anyhow::Result<Vec<std::ops::Range<usize>>> {
        let mut out = Vec::new();
        let mut c = first;
        loop {
            if c < 2 || c - 2 >= self.clusters || out.len() > self.clusters as usize {
                bail!("broken cluster chain from cluster {first}");
            }
            let start = self.data_start + (c as usize - 2) * self.cluster_bytes;
            out.push(start..start + self.cluster_bytes);
            let next = match self.fat_bits {
                12 => {
                    let at = self.fat_start + c as usize * 3 / 2;
                    let v = u16::from_le_bytes([img[at], img[at + 1]]) as u32;
                    if c % 2 == 1 {
                        v >> 4
                    } else {
                        v & 0xFFF
                    }
                }
                16 => {
                    let at = self.fat_start + c as usize * 2;
                    u16::from_le_bytes([img[at], img[at + 1]]) as u32
                }
                _ => {
                    let at = self.fat_start + c as usize * 4;
                    u32::from_le_bytes([img[at], img[at + 1], img[at + 2], img[at + 3]]) & 0x0FFF_FFFF
                }
            };
            let end = match self.fat_bits {
                12 => 0xFF8,
                16 => 0xFFF8,
                _ => 0x0FFF_FFF8,
            };
            if next >= end {
                return Ok(out);
            }
            c = next;
        }
    }
}

/// Repairs two things fatfs 0.3 gets wrong in the directories it creates,
/// both of which `fsck.vfat` reports and strict readers may trip over:
/// it writes long-name entries in front of the `.` and `..` entries
/// ("Expected a valid '.' entry in this slot"), which are dropped here and
/// each directory closed up; and on FAT32 it points `..` of a directory in
/// the root at the root's cluster, where the specification wants 0.
fn tidy_directories(img: &mut [u8]) -> anyhow::Result<()> {
    let g = Geometry::read(img)?;
    let root = match &g.root_region {
        Some(r) => vec![r.clone()],
        None => g.chain(img, g.root_cluster)?,
    };
    // Directories to do: their byte ranges, and whether the root holds them.
    let mut pending = vec![(root, false)];
    let mut seen = 0u32;
    while let Some((ranges, in_root)) = pending.pop() {
        seen += 1;
        if seen > g.clusters + 1 {
            bail!("directory tree loops");
        }
        let is_root = seen == 1;
        let bytes: Vec<u8> = ranges.iter().flat_map(|r| img[r.clone()].iter().copied()).collect();
        let mut out = Vec::with_capacity(bytes.len());
        let mut run: Vec<&[u8]> = Vec::new();
        for e in bytes.chunks_exact(32) {
            if e[0] == 0 {
                break;
            }
            if e[11] & 0x3F == 0x0F {
                run.push(e);
                continue;
            }
            let mut entry: [u8; 32] = e.try_into().expect("32 bytes");
            if e[0] == b'.' {
                if &e[..2] == b".." && in_root {
                    entry[20..22].fill(0);
                    entry[26..28].fill(0);
                }
            } else {
                run.iter().for_each(|l| out.extend_from_slice(l));
                if e[0] != 0xE5 && e[11] & 0x10 != 0 && e[11] & 0x08 == 0 {
                    let hi = if g.fat_bits == 32 { u16::from_le_bytes([e[20], e[21]]) as u32 } else { 0 };
                    let first = (hi << 16) | u16::from_le_bytes([e[26], e[27]]) as u32;
                    pending.push((g.chain(img, first)?, is_root));
                }
            }
            run.clear();
            out.extend_from_slice(&entry);
        }
        out.resize(bytes.len(), 0);
        let mut at = 0;
        for r in ranges {
            let n = r.len();
            img[r].copy_from_slice(&out[at..at + n]);
            at += n;
        }
    }
    Ok(())
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// Sets the volume id (serial number) to a hash of the image made with id
/// 0, in the boot sector and, on FAT32, its backup.
fn set_volume_id(image: &mut [u8]) {
    // FNV-1a, 32 bits.
    let mut h = 0x811C_9DC5u32;
    for &b in image.iter() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    let fat32 = image[11..13] != [0, 0] && image[22..24] == [0, 0];
    let at = if fat32 { 67 } else { 39 };
    image[at..at + 4].copy_from_slice(&h.to_le_bytes());
    if fat32 {
        let backup = u16::from_le_bytes([image[50], image[51]]) as usize * 512;
        if backup != 0 && backup + 512 <= image.len() {
            image[backup + at..backup + at + 4].copy_from_slice(&h.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::sync::Arc;

    use super::*;
    use crate::model::{Content, Meta};

    fn file(name: &str, bytes: Vec<u8>) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            meta: Meta::default(),
            kind: Kind::File { size: bytes.len() as u64, content: Content::Bytes(Arc::from(bytes)) },
            link: None,
        }
    }

    fn dir(name: &str, entries: Vec<Entry>) -> Entry {
        Entry { name: name.as_bytes().to_vec(), meta: Meta::default(), kind: Kind::Dir(entries), link: None }
    }

    fn sample(efi_size: usize) -> Vec<Entry> {
        let efi: Vec<u8> = (0..efi_size).map(|i| (i * 7 + i / 4096) as u8).collect();
        vec![
            dir("BOOT", vec![file("BOOTX64.EFI", efi), file("grub.cfg", b"set timeout=0\n".to_vec())]),
            dir("debian", vec![file("A rather long file name.txt", b"x".to_vec()), file("empty", Vec::new())]),
        ]
    }

    /// Runs a tool on the image; `None` (with a message) when it is not
    /// installed.
    fn tool(img: &[u8], name: &str, args: &[&str]) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("esp.img");
        std::fs::write(&path, img).unwrap();
        let mut cmd = Command::new(name);
        for a in args {
            cmd.arg(if *a == "IMG" { path.to_str().unwrap() } else { a });
        }
        match cmd.output() {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "{name} {args:?} failed:\n{text}");
                Some(text)
            }
            Err(_) => {
                eprintln!("skipping the {name} check: {name} is not installed");
                None
            }
        }
    }

    #[test]
    fn small_esp_is_fat12_deterministic_and_readable() {
        let t = 1_700_000_000;
        let img = esp_image(b"EFI", &sample(900_000), None, t).unwrap();
        assert_eq!(img.len() as u64 % GRANULE, 0);
        assert!(img.len() as u64 <= 2 * MIN_SIZE, "{} bytes for 900 kB", img.len());
        assert_eq!(&img[54..62], b"FAT12   ");
        assert_eq!(&img[510..512], &[0x55, 0xAA]);
        assert_eq!(esp_image(b"EFI", &sample(900_000), None, t).unwrap(), img, "same input, same bytes");
        assert_ne!(esp_image(b"EFI", &sample(900_000), None, t + 2).unwrap(), img);

        if let Some(out) = tool(&img, "fsck.vfat", &["-n", "IMG"]) {
            assert!(!out.contains("differences between boot sector and its backup"), "{out}");
        }
        if let Some(out) = tool(&img, "mdir", &["-i", "IMG", "::/EFI/BOOT"]) {
            assert!(out.lines().any(|l| l.starts_with("BOOTX64  EFI    900000")), "{out}");
            assert!(out.contains("grub.cfg"), "long (lower-case) name kept:\n{out}");
            assert!(out.contains("2023-11-14"), "timestamps are mtime:\n{out}");
        }
        if let Some(out) = tool(&img, "mdir", &["-i", "IMG", "::/EFI/debian"]) {
            assert!(out.contains("A rather long file name.txt"), "{out}");
        }
        if let Some(out) = tool(&img, "mtype", &["-i", "IMG", "::/EFI/BOOT/grub.cfg"]) {
            assert_eq!(out, "set timeout=0\n");
        }
        if tool(&img, "mcopy", &["-V"]).is_some() {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("esp.img");
            std::fs::write(&p, &img).unwrap();
            let out = dir.path().join("BOOTX64.EFI");
            let st = Command::new("mcopy").arg("-i").arg(&p).arg("::/EFI/BOOT/BOOTX64.EFI").arg(&out).status().unwrap();
            assert!(st.success());
            let Kind::Dir(boot) = &sample(900_000)[0].kind else { unreachable!() };
            let Kind::File { content: Content::Bytes(b), .. } = &boot[0].kind else { unreachable!() };
            assert!(std::fs::read(&out).unwrap() == **b, "content intact");
        }
    }

    #[test]
    fn larger_esps_grow_to_fat16() {
        let img = esp_image(b"EFI", &sample(20 << 20), None, 0).unwrap();
        assert_eq!(&img[54..62], b"FAT16   ");
        assert!(img.len() < 22 << 20, "{} bytes", img.len());
        tool(&img, "fsck.vfat", &["-n", "IMG"]);
    }

    #[test]
    fn many_files_fit() {
        let files: Vec<Entry> = (0..700).map(|i| file(&format!("module-number-{i}.mod"), vec![1; 3000])).collect();
        let img = esp_image(b"EFI", &[dir("grub", files)], None, 0).unwrap();
        tool(&img, "fsck.vfat", &["-n", "IMG"]);
    }

    #[test]
    fn refuses_what_fat_cannot_hold() {
        let link = Entry { name: b"l".to_vec(), meta: Meta::default(), kind: Kind::Symlink(b"x".to_vec()), link: None };
        let err = format!("{:#}", esp_image(b"EFI", &[dir("BOOT", vec![link])], None, 0).unwrap_err());
        assert!(err.contains("/EFI/BOOT/l is a symlink"), "{err}");
        let err = format!("{:#}", esp_image(b"EFI", &[file("a", vec![]), file("A", vec![])], None, 0).unwrap_err());
        assert!(err.contains("differ only in case"), "{err}");
        assert!(esp_image(b"EFI", &[file("a:b", vec![])], None, 0).is_err());
        assert!(esp_image(b"E/FI", &[], None, 0).is_err());
        let mut bad = file("x", vec![]);
        bad.name = vec![0xFF];
        assert!(esp_image(b"EFI", &[bad], None, 0).is_err(), "not UTF-8");
    }

    #[test]
    fn external_content_is_copied() {
        struct Source;
        impl model::External for Source {
            fn write_external(&mut self, id: u64, size: u64, out: &mut dyn Write) -> anyhow::Result<()> {
                out.write_all(&vec![id as u8; size as usize])?;
                Ok(())
            }
        }
        let e = Entry {
            name: b"BOOTX64.EFI".to_vec(),
            meta: Meta::default(),
            kind: Kind::File { size: 5000, content: Content::External(9) },
            link: None,
        };
        let mut src = Source;
        let img = esp_image(b"EFI", &[dir("BOOT", vec![e.clone()])], Some(&mut src), 0).unwrap();
        if let Some(out) = tool(&img, "mdir", &["-i", "IMG", "::/EFI/BOOT"]) {
            assert!(out.lines().any(|l| l.starts_with("BOOTX64  EFI      5000")), "{out}");
        }
        assert!(esp_image(b"EFI", &[e], None, 0).is_err(), "external content without a source");
    }
}
