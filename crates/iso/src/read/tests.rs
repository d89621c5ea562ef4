//! Tests of the reader over images made by xorriso and genisoimage (compared
//! with the source tree they were made from), the distribution's boot images,
//! and forged images that break every rule a reader relies on.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use slipway_fstree::{display_bytes, scan, Node, NodeKind, ScanOptions};

use super::*;
use crate::model::{BootImage, CatalogPlace, Content, Entry, Kind, Tree};
use crate::spec::{both16, both32, FLAG_DIR, FLAG_MULTI_EXTENT};

// ---------------------------------------------------------------------------
// Listings: one line per entry with everything the tree carries, so a tree
// read from an image can be compared with the directory it was made from.

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn content_of(c: &Content, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    crate::write::copy_content(c, size, None, &mut out).unwrap();
    out
}

/// `path kind+details mode uid:gid mtime [=first path of its link group]`,
/// tab-separated.
fn tree_lines(tree: &Tree) -> Vec<String> {
    fn walk(entries: &[Entry], prefix: &str, out: &mut Vec<String>, groups: &mut BTreeMap<u64, String>) {
        for e in entries {
            let p = format!("{prefix}/{}", display_bytes(&e.name));
            let k = match &e.kind {
                Kind::Dir(_) => "dir".to_string(),
                Kind::File { size, content } => format!("file {size} {:x}", fnv(&content_of(content, *size))),
                Kind::Symlink(t) => format!("symlink {}", display_bytes(t)),
                Kind::CharDev(d) => format!("chardev {}:{}", rustix::fs::major(*d), rustix::fs::minor(*d)),
                Kind::BlockDev(d) => format!("blockdev {}:{}", rustix::fs::major(*d), rustix::fs::minor(*d)),
                Kind::Fifo => "fifo".into(),
                Kind::Socket => "socket".into(),
            };
            let link = match e.link {
                Some(g) => format!("\t={}", groups.entry(g).or_insert_with(|| p.clone())),
                None => String::new(),
            };
            let m = &e.meta;
            out.push(format!("{p}\t{k}\t{:o}\t{}:{}\t{}{link}", m.mode, m.uid, m.gid, m.mtime.sec));
            if let Kind::Dir(c) = &e.kind {
                walk(c, &p, out, groups);
            }
        }
    }
    let m = &tree.root;
    let mut out = vec![format!("/\tdir\t{:o}\t{}:{}\t{}", m.mode, m.uid, m.gid, m.mtime.sec)];
    walk(&tree.entries, "", &mut out, &mut BTreeMap::new());
    out
}

/// The same listing for a directory on the host.
fn dir_lines(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, nodes: &[Node], prefix: &str, out: &mut Vec<String>, groups: &mut BTreeMap<u64, String>) {
        for n in nodes {
            let p = format!("{prefix}/{}", n.name);
            let host = dir.join(n.name.as_os_str());
            let k = match &n.kind {
                NodeKind::Dir(_) => "dir".to_string(),
                NodeKind::File { size, .. } => format!("file {size} {:x}", fnv(&fs::read(&host).unwrap())),
                NodeKind::Symlink(t) => format!("symlink {}", display_bytes(t)),
                NodeKind::CharDev(d) => format!("chardev {}:{}", rustix::fs::major(*d), rustix::fs::minor(*d)),
                NodeKind::BlockDev(d) => format!("blockdev {}:{}", rustix::fs::major(*d), rustix::fs::minor(*d)),
                NodeKind::Fifo => "fifo".into(),
            };
            let link = match n.hardlink {
                Some(g) => format!("\t={}", groups.entry(g).or_insert_with(|| p.clone())),
                None => String::new(),
            };
            let m = &n.meta;
            out.push(format!("{p}\t{k}\t{:o}\t{}:{}\t{}{link}", m.mode, m.uid, m.gid, m.mtime.sec));
            if let NodeKind::Dir(c) = &n.kind {
                walk(&host, c, &p, out, groups);
            }
        }
    }
    let (m, nodes, _) = scan(root, &ScanOptions::default()).unwrap();
    let mut out = vec![format!("/\tdir\t{:o}\t{}:{}\t{}", m.mode, m.uid, m.gid, m.mtime.sec)];
    walk(root, &nodes, "", &mut out, &mut BTreeMap::new());
    out
}

fn assert_same(got: &[String], want: &[String]) {
    if got != want {
        let g: std::collections::BTreeSet<_> = got.iter().collect();
        let w: std::collections::BTreeSet<_> = want.iter().collect();
        panic!(
            "listings differ\nonly in image: {:#?}\nonly in source: {:#?}",
            g.difference(&w).collect::<Vec<_>>(),
            w.difference(&g).collect::<Vec<_>>()
        );
    }
}

// ---------------------------------------------------------------------------
// Real tools.

fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: {tool} is not installed");
    }
    ok
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn set_mtime(p: &Path, sec: i64) {
    let ts = rustix::fs::Timespec { tv_sec: sec, tv_nsec: 0 };
    let times = rustix::fs::Timestamps { last_access: ts, last_modification: ts };
    rustix::fs::utimensat(rustix::fs::CWD, p, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// A tree with every kind of entry Rock Ridge carries.
fn make_source(root: &Path) {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let p = |s: &str| root.join(s);
    fs::create_dir_all(p("sub/d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12")).unwrap();
    fs::write(p("sub/d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/deep.txt"), b"deep\n").unwrap();
    fs::write(p("sub/d1/other"), b"other\n").unwrap();
    fs::write(p("a.txt"), b"hello\n").unwrap();
    fs::set_permissions(p("a.txt"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(p("a.txt"), p("hard")).unwrap();
    fs::hard_link(p("a.txt"), p("sub/hard2")).unwrap();
    fs::set_permissions(p("sub"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(p("sub/d1/d2"), fs::Permissions::from_mode(0o2750)).unwrap();
    symlink("a.txt", p("link")).unwrap();
    symlink("/etc/passwd", p("abslink")).unwrap();
    symlink("/", p("rootlink")).unwrap();
    // (A trailing slash is not kept by Rock Ridge writers.)
    symlink("../x/./y", p("sub/uplink")).unwrap();
    // Long enough to need a continuation area; genisoimage writes broken SL
    // entries when one component crosses into it, so components stay short.
    let long: Vec<String> = (0..6).map(|i| format!("{i}").repeat(50)).collect();
    symlink(format!("../{}/end", long.join("/")), p("longlink")).unwrap();
    fs::write(root.join("n".repeat(200)), b"").unwrap();
    fs::write(p("empty"), b"").unwrap();
    fs::write(p("späce name.txt"), b"unicode\n").unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(p("big.bin"), &big).unwrap();
    rustix::fs::mknodat(rustix::fs::CWD, p("fifo"), rustix::fs::FileType::Fifo, 0o640.into(), 0).unwrap();
    if is_root() {
        let dev = |name: &str, ft, major, minor| {
            rustix::fs::mknodat(rustix::fs::CWD, p(name), ft, 0o600.into(), rustix::fs::makedev(major, minor)).unwrap();
        };
        dev("null", rustix::fs::FileType::CharacterDevice, 1, 3);
        dev("sda1", rustix::fs::FileType::BlockDevice, 8, 1);
        dev("bigdev", rustix::fs::FileType::CharacterDevice, 300, 70000);
        std::os::unix::fs::lchown(p("sub/d1"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(p("link"), Some(42), Some(43)).unwrap();
    }
    set_mtime(&p("a.txt"), 981_173_106);
    set_mtime(&p("link"), 1_000_000_000);
    set_mtime(&p("sub/d1/d2"), 1_200_000_000);
}

struct Made {
    _dir: tempfile::TempDir,
    src: PathBuf,
    iso: PathBuf,
}

fn make_iso(tool: &str, args: &[&str]) -> Made {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    make_source(&src);
    if tool == "xorriso" {
        let target = format!("../{}/{}/end", "x".repeat(200), "y".repeat(150));
        std::os::unix::fs::symlink(target, src.join("longcomponents")).unwrap();
    }
    let iso = dir.path().join("out.iso");
    let mut cmd = Command::new(tool);
    if tool == "xorriso" {
        cmd.args(["-as", "mkisofs"]);
    }
    cmd.args(args).arg("-quiet").arg("-o").arg(&iso).arg(&src);
    run(&mut cmd);
    Made { _dir: dir, src, iso }
}

#[test]
fn xorriso_rock_ridge_tree_matches_the_source() {
    if !have("xorriso") {
        return;
    }
    let m = make_iso("xorriso", &["-R", "-J"]);
    let img = IsoImage::open(&m.iso).unwrap();
    let tree = img.tree().unwrap();
    assert_same(&tree_lines(&tree), &dir_lines(&m.src));
    let info = img.info().unwrap();
    assert!(info.rock_ridge);
    assert_eq!(info.joliet, Some(3));
    assert!(info.el_torito.is_none());
    assert!(info.problems.is_empty(), "{:?}", info.problems);
    assert_eq!(img.boot(&tree).unwrap().map(|_| ()), None);
}

#[test]
fn genisoimage_relocated_deep_directories_come_back_in_place() {
    if !have("genisoimage") {
        return;
    }
    let m = make_iso("genisoimage", &["-R", "-J", "-joliet-long"]);
    let img = IsoImage::open(&m.iso).unwrap();
    let tree = img.tree().unwrap();
    // rr_moved is gone, the relocated directories are back under d8.
    assert!(tree.get(&[b"rr_moved".to_vec()]).is_none());
    assert_same(&tree_lines(&tree), &dir_lines(&m.src));
}

#[test]
fn joliet_and_plain_iso_names_without_rock_ridge() {
    if !have("genisoimage") {
        return;
    }
    let m = make_iso("genisoimage", &["-J", "-D"]);
    let img = IsoImage::open(&m.iso).unwrap();
    assert!(!img.info().unwrap().rock_ridge);
    let tree = img.tree().unwrap();
    let a = tree.get(&[b"a.txt".to_vec()]).unwrap();
    assert_eq!(a.meta.mode, 0o444);
    assert!(matches!(a.kind, Kind::File { size: 6, .. }));
    assert!(tree.get(&[b"sub".to_vec(), b"d1".to_vec(), b"other".to_vec()]).is_some());
    assert!(tree.get(&["späce name.txt".as_bytes().to_vec()]).is_some());
    // No Joliet: ISO 9660 level 1 names, version and trailing dot gone.
    let m = make_iso("genisoimage", &["-D"]);
    let tree = IsoImage::open(&m.iso).unwrap().tree().unwrap();
    assert!(tree.get(&[b"A.TXT".to_vec()]).is_some());
    assert!(tree.get(&[b"EMPTY".to_vec()]).is_some());
    let d = tree.get(&[b"SUB".to_vec()]).unwrap();
    assert_eq!(d.meta.mode, 0o555);
}

#[test]
fn extract_writes_the_tree_and_selected_paths() {
    if !have("xorriso") {
        return;
    }
    let m = make_iso("xorriso", &["-R"]);
    let img = IsoImage::open(&m.iso).unwrap();
    let tree = img.tree().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("all");
    let opts = slipway_fstree::ApplyOptions { force: false, restore_owner: is_root() };
    let stats = extract_with(&img, &tree, &dest, &[], opts).unwrap();
    assert_eq!(stats.hardlinks, 2);
    let mut want = dir_lines(&m.src);
    let mut got = dir_lines(&dest);
    if !is_root() {
        // Without root, owners are the extractor's.
        let strip = |v: &mut Vec<String>| {
            for l in v.iter_mut() {
                let mut parts: Vec<&str> = l.split('\t').collect();
                parts[3] = "-";
                *l = parts.join("\t");
            }
        };
        strip(&mut want);
        strip(&mut got);
    }
    assert_same(&got, &want);
    assert_eq!(fs::metadata(dest.join("hard")).unwrap().ino(), fs::metadata(dest.join("sub/hard2")).unwrap().ino());
    // Selected paths land at DEST/<path>, parents with their metadata; the
    // link group is written as a file and a link to it.
    let dest = out.path().join("some");
    let paths =
        vec![model::split(b"/sub/d1/d2").unwrap(), model::split(b"hard").unwrap(), model::split(b"sub/hard2").unwrap()];
    let stats = extract_with(&img, &tree, &dest, &paths, opts).unwrap();
    assert_eq!((stats.files, stats.hardlinks), (2, 1));
    assert!(dest.join("sub/d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/deep.txt").is_file());
    assert!(!dest.join("sub/d1/other").exists());
    assert!(!dest.join("a.txt").exists());
    assert_eq!(fs::metadata(dest.join("sub")).unwrap().mode() & 0o7777, 0o1777);
    assert_eq!(fs::read(dest.join("sub/hard2")).unwrap(), b"hello\n");
    assert_eq!(fs::metadata(dest.join("hard")).unwrap().ino(), fs::metadata(dest.join("sub/hard2")).unwrap().ino());
    // A path that is not there is refused before anything is written.
    let err = extract_with(&img, &tree, &out.path().join("none"), &[model::split(b"nope").unwrap()], opts).unwrap_err();
    assert!(err.to_string().contains("/nope is not in the image"), "{err}");
    assert!(!out.path().join("none").exists());
    // A non-empty destination needs force.
    let err = extract_with(&img, &tree, &dest, &[], opts).unwrap_err();
    assert!(format!("{err:#}").contains("--force"), "{err:#}");
}

#[test]
#[ignore = "writes a 5 GiB image; run with --ignored"]
fn xorriso_multi_extent_file_over_4_gib_is_one_entry() {
    if !have("xorriso") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let f = fs::File::create(src.join("huge")).unwrap();
    f.set_len(5 << 30).unwrap();
    (&f).write_all(b"").unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"tail", (5 << 30) - 4).unwrap();
    let iso = dir.path().join("big.iso");
    run(Command::new("xorriso").args(["-as", "mkisofs", "-R", "-iso-level", "3", "-quiet", "-o"]).arg(&iso).arg(&src));
    let img = IsoImage::open(&iso).unwrap();
    let tree = img.tree().unwrap();
    let e = tree.get(&[b"huge".to_vec()]).unwrap();
    let Kind::File { size, content: Content::Region { ranges, .. } } = &e.kind else { panic!("{e:?}") };
    assert_eq!(*size, 5 << 30);
    assert_eq!(ranges.len(), 2);
    assert_eq!(ranges.iter().map(|r| r.1).sum::<u64>(), 5 << 30);
    let (off, len) = ranges[1];
    let mut tail = [0u8; 4];
    std::os::unix::fs::FileExt::read_exact_at(&fs::File::open(&iso).unwrap(), &mut tail, off + len - 4).unwrap();
    assert_eq!(&tail, b"tail");
    // Extraction leaves the zeros as holes.
    let dest = dir.path().join("x");
    extract(&img, &tree, &dest, &[]).unwrap();
    let md = fs::metadata(dest.join("huge")).unwrap();
    assert_eq!(md.len(), 5 << 30);
    assert!(md.blocks() * 512 < 1 << 20, "{} blocks", md.blocks());
}

#[test]
fn boot_catalog_of_xorriso_hybrid_image() {
    if !have("xorriso") || !Path::new("/usr/lib/ISOLINUX/isolinux.bin").exists() || !have_mkfs_vfat() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("isolinux")).unwrap();
    fs::copy("/usr/lib/ISOLINUX/isolinux.bin", src.join("isolinux/isolinux.bin")).unwrap();
    let efi = dir.path().join("efi.img");
    run(Command::new("mkfs.vfat").arg("-C").arg(&efi).arg("1440"));
    let iso = dir.path().join("b.iso");
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-R", "-J", "-quiet", "-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin"])
        .args(["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4"])
        .args(["-boot-info-table", "-eltorito-alt-boot", "-e", "--interval:appended_partition_2:all::"])
        .args(["-no-emul-boot", "-isohybrid-gpt-basdat", "-append_partition", "2", "0xef"])
        .arg(&efi)
        .arg("-o")
        .arg(&iso)
        .arg(&src));
    let img = IsoImage::open(&iso).unwrap();
    let tree = img.tree().unwrap();
    let (boot, layout) = img.boot(&tree).unwrap().unwrap();
    assert_eq!(boot.catalog, CatalogPlace::File(model::split(b"isolinux/boot.cat").unwrap()));
    assert_eq!(boot.entries.len(), 2);
    let bios = &boot.entries[0];
    assert!(matches!(&bios.image, BootImage::File(p) if *p == model::split(b"isolinux/isolinux.bin").unwrap()));
    assert!(bios.info_table && !bios.grub2_boot_info && bios.bootable);
    assert_eq!(bios.load_sectors, Some(4));
    let uefi = &boot.entries[1];
    assert_eq!(uefi.platform, spec::PLATFORM_EFI);
    let BootImage::Hidden { size, content, appended } = &uefi.image else { panic!("{:?}", uefi.image) };
    assert_eq!(*size, 1_474_560);
    assert!(appended);
    assert_eq!(content_of(content, *size), fs::read(&efi).unwrap());
    let vss = img.volume_space_sectors();
    assert_eq!(layout.fs_sectors, vss);
    assert_eq!(layout.boot[1].0, spec::PLATFORM_EFI);
    assert_eq!(layout.end_sectors, layout.boot[1].1.lba + 720);
    let info = img.info().unwrap();
    let et = info.el_torito.unwrap();
    assert_eq!(et.catalog_path.as_deref(), Some("/isolinux/boot.cat"));
    assert_eq!(et.entries[0].path.as_deref(), Some("/isolinux/isolinux.bin"));
    assert_eq!(et.entries[1].platform, "UEFI");
    assert!(et.entries[1].appended);
}

fn have_mkfs_vfat() -> bool {
    let ok = Command::new("mkfs.vfat").arg("--help").output().is_ok();
    if !ok {
        eprintln!("skipping: mkfs.vfat is not installed");
    }
    ok
}

/// The images the distribution ships, where installed.
#[test]
fn distribution_boot_images() {
    let memtest = Path::new("/usr/lib/memtest86+/memtest86+x64.iso");
    if memtest.exists() {
        let img = IsoImage::open(memtest).unwrap();
        let tree = img.tree().unwrap();
        let (boot, layout) = img.boot(&tree).unwrap().unwrap();
        assert_eq!(boot.catalog, CatalogPlace::File(vec![b"boot.catalog".to_vec()]));
        assert_eq!(boot.entries[0].emulation, spec::EMUL_FLOPPY_144);
        assert!(
            matches!(&boot.entries[0].image, BootImage::File(p) if *p == model::split(b"boot/floppy.img").unwrap())
        );
        let BootImage::Hidden { size, appended, .. } = &boot.entries[1].image else { panic!() };
        assert_eq!((*size, *appended), (8192 * 512, true));
        assert_eq!(layout.boot[1].1, crate::hybrid::Extent { lba: 826, bytes: 8192 * 512 });
        assert_eq!(layout.end_sectors, 826 + 2048);
    } else {
        eprintln!("skipping memtest86+: not installed");
    }
    let grub = Path::new("/usr/lib/grub-rescue/grub-rescue-cdrom.iso");
    if grub.exists() {
        let img = IsoImage::open(grub).unwrap();
        let tree = img.tree().unwrap();
        let (boot, _) = img.boot(&tree).unwrap().unwrap();
        let e = &boot.entries[0];
        assert!(e.info_table && e.grub2_boot_info);
        assert!(
            matches!(&e.image, BootImage::File(p) if *p == model::split(b"boot/grub/i386-pc/eltorito.img").unwrap())
        );
    } else {
        eprintln!("skipping grub-rescue: not installed");
    }
    let ipxe = Path::new("/usr/lib/ipxe/ipxe.iso");
    if ipxe.exists() {
        let img = IsoImage::open(ipxe).unwrap();
        let tree = img.tree().unwrap();
        let (boot, _) = img.boot(&tree).unwrap().unwrap();
        assert!(boot.entries[0].info_table);
        assert!(matches!(&boot.entries[1].image, BootImage::File(p) if *p == vec![b"efi.img".to_vec()]));
        assert_eq!(boot.catalog, CatalogPlace::File(vec![b"boot.cat".to_vec()]));
    } else {
        eprintln!("skipping ipxe: not installed");
    }
}

// ---------------------------------------------------------------------------
// Forged images: a PVD at 16, a terminator at 17, directories from 18 on.

const S: usize = 2048;
const ROOT: u32 = 18;

fn rec(name: &[u8], lba: u32, size: u32, flags: u8, su: &[u8]) -> Vec<u8> {
    let pad = usize::from(name.len() % 2 == 0);
    let len = (33 + name.len() + pad + su.len() + 1) & !1;
    assert!(len < 256);
    let mut r = vec![0u8; len];
    r[0] = len as u8;
    both32(&mut r[2..10], lba);
    both32(&mut r[10..18], size);
    r[18..25].copy_from_slice(&spec::date7(1_600_000_000));
    r[25] = flags;
    both16(&mut r[28..32], 1);
    r[32] = name.len() as u8;
    r[33..33 + name.len()].copy_from_slice(name);
    r[33 + name.len() + pad..33 + name.len() + pad + su.len()].copy_from_slice(su);
    r
}

fn su(sig: &[u8; 2], data: &[u8]) -> Vec<u8> {
    let mut e = vec![sig[0], sig[1], (4 + data.len()) as u8, 1];
    e.extend_from_slice(data);
    e
}

fn px(mode: u32, nlink: u32, uid: u32, gid: u32, serial: Option<u32>) -> Vec<u8> {
    let mut d = vec![0u8; if serial.is_some() { 40 } else { 32 }];
    both32(&mut d[0..8], mode);
    both32(&mut d[8..16], nlink);
    both32(&mut d[16..24], uid);
    both32(&mut d[24..32], gid);
    if let Some(s) = serial {
        both32(&mut d[32..40], s);
    }
    su(b"PX", &d)
}

fn nm(name: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8];
    d.extend_from_slice(name);
    su(b"NM", &d)
}

fn ce(lba: u32, off: u32, len: u32) -> Vec<u8> {
    let mut d = vec![0u8; 24];
    both32(&mut d[0..8], lba);
    both32(&mut d[8..16], off);
    both32(&mut d[16..24], len);
    su(b"CE", &d)
}

fn bb32(v: u32) -> Vec<u8> {
    let mut d = vec![0u8; 8];
    both32(&mut d, v);
    d
}

/// The `.` record of a Rock Ridge root: SP, ER and the root's PX.
fn rr_root_dot(size: u32) -> Vec<u8> {
    let mut er = vec![10, 0, 0, 1];
    er.extend_from_slice(b"RRIP_1991A");
    rec(&[0], ROOT, size, FLAG_DIR, &[su(b"SP", &[0xBE, 0xEF, 0]), su(b"ER", &er), px(0o40755, 2, 0, 0, None)].concat())
}

struct Forge {
    img: Vec<u8>,
}

impl Forge {
    /// An image of `sectors` sectors with its root directory at sector 18.
    fn new(sectors: usize, root_size: u32) -> Forge {
        let mut img = vec![0u8; sectors * S];
        let p = &mut img[16 * S..17 * S];
        p[0] = 1;
        p[1..6].copy_from_slice(b"CD001");
        p[6] = 1;
        p[40..48].copy_from_slice(b"FORGED  ");
        both32(&mut p[80..88], sectors as u32);
        both16(&mut p[128..132], 2048);
        p[156..190].copy_from_slice(&rec(&[0], ROOT, root_size, FLAG_DIR, &[]));
        let t = &mut img[17 * S..18 * S];
        t[0] = 255;
        t[1..6].copy_from_slice(b"CD001");
        t[6] = 1;
        Forge { img }
    }

    /// Writes directory records from sector `lba` on, never across a sector end.
    fn dir(&mut self, lba: u32, records: &[Vec<u8>]) -> &mut Self {
        let mut off = lba as usize * S;
        for r in records {
            if off % S + r.len() > S {
                off = off.next_multiple_of(S);
            }
            self.img[off..off + r.len()].copy_from_slice(r);
            off += r.len();
        }
        self
    }

    fn put(&mut self, off: usize, bytes: &[u8]) -> &mut Self {
        self.img[off..off + bytes.len()].copy_from_slice(bytes);
        self
    }

    fn open(&self) -> (tempfile::NamedTempFile, IsoImage) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&self.img).unwrap();
        f.flush().unwrap();
        let img = IsoImage::open(f.path()).unwrap();
        (f, img)
    }

    fn tree_err(&self) -> String {
        let (_f, img) = self.open();
        format!("{:#}", img.tree().unwrap_err())
    }
}

/// A Rock Ridge root (sector 18) holding `entries`, plus `..`.
fn rr_root(sectors: usize, entries: &[Vec<u8>]) -> Forge {
    let mut f = Forge::new(sectors, 2048);
    let mut recs = vec![rr_root_dot(2048), rec(&[1], ROOT, 2048, FLAG_DIR, &[])];
    recs.extend_from_slice(entries);
    f.dir(ROOT, &recs);
    f
}

#[test]
fn forged_rock_ridge_tree_with_every_field() {
    let link = [su(b"SL", &[0, 0x08, 0, 0, 3, b'u', b's', b'r']), ce(21, 100, 40)].concat();
    let mut pn = bb32(0);
    pn.extend(bb32(0x0801));
    let entries = vec![
        rec(b"HELLO.;1", 20, 5, 0, &[nm(b"hello world"), px(0o100640, 1, 7, 8, Some(1))].concat()),
        rec(b"LINK.;1", 0, 0, 0, &[nm(b"link"), px(0o120777, 1, 0, 0, Some(2)), link].concat()),
        rec(b"DEV.;1", 0, 0, 0, &[nm(b"dev"), px(0o60600, 1, 0, 0, Some(3)), su(b"PN", &pn)].concat()),
        rec(b"D", 19, 2048, FLAG_DIR, &[nm(b"d"), px(0o42755, 2, 0, 0, Some(4))].concat()),
        rec(b"BIG.;1", 22, 2048, FLAG_MULTI_EXTENT, &[nm(b"big"), px(0o100644, 1, 0, 0, Some(5))].concat()),
        rec(b"BIG.;1", 23, 3, 0, &[nm(b"big"), px(0o100644, 1, 0, 0, Some(5))].concat()),
        rec(b"H1.;1", 20, 5, 0, &[nm(b"h1"), px(0o100600, 2, 0, 0, Some(9))].concat()),
        rec(b"FIFO.;1", 0, 0, 0, &[nm(b"fifo"), px(0o10644, 1, 0, 0, Some(6))].concat()),
        rec(b"SOCK.;1", 0, 0, 0, &[nm(b"sock"), px(0o140644, 1, 0, 0, Some(7))].concat()),
        rec(b"HIDDEN.;1", 20, 5, 0x04, &[nm(b"associated")].concat()),
    ];
    let mut f = rr_root(30, &entries);
    f.dir(
        19,
        &[
            rec(&[0], 19, 2048, FLAG_DIR, &px(0o40755, 2, 0, 0, Some(4))),
            rec(&[1], ROOT, 2048, FLAG_DIR, &[]),
            rec(b"H2.;1", 20, 5, 0, &[nm(b"h2"), px(0o100600, 2, 0, 0, Some(9))].concat()),
        ],
    );
    f.put(20 * S, b"hello");
    // The link continues in a CE area: "lo" continued into "cal", then "..".
    let cont = [su(b"SL", &[0, 0x01, 2, b'l', b'o']), su(b"SL", &[0, 0, 3, b'c', b'a', b'l', 0x04, 0])].concat();
    let mut area = cont.clone();
    area.resize(40, 0);
    f.put(21 * S + 100, &area);
    f.put(22 * S, &[1u8; 2048]);
    f.put(23 * S, b"end");
    let (_file, img) = f.open();
    let tree = img.tree().unwrap();
    let lines = tree_lines(&tree);
    let hello = format!("{:x}", fnv(b"hello"));
    let big = format!("{:x}", fnv(&[vec![1u8; 2048], b"end".to_vec()].concat()));
    let want = [
        "/\tdir\t755\t0:0\t1600000000".to_string(),
        format!("/big\tfile 2051 {big}\t644\t0:0\t1600000000"),
        "/d\tdir\t2755\t0:0\t1600000000".into(),
        format!("/d/h2\tfile 5 {hello}\t600\t0:0\t1600000000\t=/d/h2"),
        "/dev\tblockdev 8:1\t600\t0:0\t1600000000".into(),
        "/fifo\tfifo\t644\t0:0\t1600000000".into(),
        format!("/h1\tfile 5 {hello}\t600\t0:0\t1600000000\t=/d/h2"),
        format!("/hello world\tfile 5 {hello}\t640\t7:8\t1600000000"),
        "/link\tsymlink /usr/local/..\t777\t0:0\t1600000000".into(),
        "/sock\tsocket\t644\t0:0\t1600000000".into(),
    ];
    assert_eq!(lines, want);
    // h1 and d/h2 share serial 9 and an extent: one link group. "hello
    // world" shares the extent but not the serial.
    let h1 = tree.get(&[b"h1".to_vec()]).unwrap();
    let h2 = tree.get(&[b"d".to_vec(), b"h2".to_vec()]).unwrap();
    assert!(h1.link.is_some() && h1.link == h2.link);
    assert_eq!(tree.get(&[b"hello world".to_vec()]).unwrap().link, None);
}

#[test]
fn forged_relocated_directories_go_back_in_place() {
    let moved = |extra: &[Vec<u8>]| {
        let mut f = rr_root(
            30,
            &[
                rec(b"R", 0, 0, 0, &[nm(b"reloc"), px(0o40755, 2, 0, 0, None), su(b"CL", &bb32(24))].concat()),
                rec(b"MOVED", 25, 2048, FLAG_DIR, &[nm(b"rr_moved"), px(0o40555, 2, 0, 0, None)].concat()),
            ],
        );
        // The relocated directory: its '.' carries its metadata, '..' the
        // real parent (PL).
        f.dir(
            24,
            &[
                rec(&[0], 24, 2048, FLAG_DIR, &[px(0o40700, 2, 5, 6, None)].concat()),
                rec(&[1], 25, 2048, FLAG_DIR, &su(b"PL", &bb32(ROOT))),
                rec(b"X.;1", 20, 5, 0, &[nm(b"x"), px(0o100600, 1, 0, 0, None)].concat()),
            ],
        );
        let mut recs = vec![rec(&[0], 25, 2048, FLAG_DIR, &[]), rec(&[1], ROOT, 2048, FLAG_DIR, &[])];
        recs.push(rec(b"R", 24, 2048, FLAG_DIR, &[nm(b"reloc"), su(b"RE", &[])].concat()));
        recs.extend_from_slice(extra);
        f.dir(25, &recs);
        f.put(20 * S, b"hello");
        f
    };
    let (_file, img) = moved(&[]).open();
    let tree = img.tree().unwrap();
    let got: Vec<String> =
        tree_lines(&tree).into_iter().map(|l| l.split('\t').take(4).collect::<Vec<_>>().join(" ")).collect();
    let hello = format!("{:x}", fnv(b"hello"));
    assert_eq!(got, ["/ dir 755 0:0", "/reloc dir 700 5:6", &format!("/reloc/x file 5 {hello} 600 0:0")]);
    // A relocation directory that holds anything else stays.
    let (_file, img) = moved(&[rec(b"KEEP.;1", 20, 5, 0, &nm(b"keep"))]).open();
    let tree = img.tree().unwrap();
    assert!(tree.get(&[b"rr_moved".to_vec(), b"keep".to_vec()]).is_some());
    assert!(tree.get(&[b"rr_moved".to_vec(), b"reloc".to_vec()]).is_none());
}

#[test]
fn a_tree_near_the_depth_limit_reads_and_extracts_on_a_small_stack() {
    let n = dir::MAX_DEPTH as u32 - 6;
    let mut f = Forge::new(ROOT as usize + n as usize + 4, 2048);
    for i in 0..n {
        let lba = ROOT + i;
        f.dir(lba, &[rec(&[0], lba, 2048, FLAG_DIR, &[]), rec(b"D", lba + 1, 2048, FLAG_DIR, &[])]);
    }
    let last = ROOT + n;
    f.dir(last, &[rec(&[0], last, 2048, FLAG_DIR, &[]), rec(b"F.;1", last + 1, 4, 0, &[])]);
    f.put((last as usize + 1) * S, b"deep");
    let (_file, img) = f.open();
    // Test threads have 2 MiB of stack; run in one with far less: neither
    // the walk nor the extraction recurses per level.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let tree = img.tree().unwrap();
            let dest = tempfile::tempdir().unwrap();
            let opts = slipway_fstree::ApplyOptions { force: true, restore_owner: false };
            let stats = extract_with(&img, &tree, dest.path(), &[], opts).unwrap();
            assert_eq!((stats.dirs, stats.files), (u64::from(n), 1));
            let mut p = dest.path().to_path_buf();
            for _ in 0..n {
                p.push("D");
            }
            assert_eq!(fs::read(p.join("F")).unwrap(), b"deep");
            // Directories without Rock Ridge are read-only: make them
            // writable again so the temporary directory can go.
            let mut q = dest.path().to_path_buf();
            for _ in 0..n {
                q.push("D");
                let _ = fs::set_permissions(&q, std::os::unix::fs::PermissionsExt::from_mode(0o755));
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn directory_loops_are_refused_naming_the_path() {
    let mut f = rr_root(24, &[rec(b"D", 19, 2048, FLAG_DIR, &nm(b"d"))]);
    f.dir(19, &[rec(&[0], 19, 2048, FLAG_DIR, &[]), rec(b"E", ROOT, 2048, FLAG_DIR, &nm(b"e"))]);
    let err = f.tree_err();
    assert!(err.contains(": /d/e: directory extent at sector 18 is reached a second time"), "{err}");
    // A relocation (CL) pointing back at its parent.
    let f = rr_root(24, &[rec(b"D", 0, 0, 0, &[nm(b"d"), su(b"CL", &bb32(ROOT))].concat())]);
    let err = f.tree_err();
    assert!(err.contains(": /d: directory extent at sector 18 is reached a second time"), "{err}");
    // A relocation to nowhere.
    let f = rr_root(24, &[rec(b"D", 0, 0, 0, &[nm(b"d"), su(b"CL", &bb32(5000))].concat())]);
    let err = f.tree_err();
    assert!(err.contains(": /d: relocated directory (Rock Ridge CL) at sector 5000 lies past the end"), "{err}");
}

#[test]
fn extents_past_the_end_name_the_entry_and_the_sector() {
    let f = rr_root(24, &[rec(b"F.;1", 9999, 10, 0, &nm(b"f"))]);
    let err = f.tree_err();
    assert!(
        err.contains(": /f: extent at sector 9999 (10 bytes) runs past the end of the image (24 sectors)"),
        "{err}"
    );
    let f = rr_root(24, &[rec(b"D", 9999, 2048, FLAG_DIR, &nm(b"boot"))]);
    let err = f.tree_err();
    assert!(
        err.contains(": /boot: directory extent at sector 9999 (2048 bytes) runs past the end of the image"),
        "{err}"
    );
    // An extent that starts inside but runs out.
    let f = rr_root(24, &[rec(b"F.;1", 23, 4096, 0, &nm(b"f"))]);
    assert!(f.tree_err().contains("extent at sector 23 (4096 bytes) runs past the end"));
    // The root itself.
    let f = Forge::new(20, 1 << 30);
    let err = f.tree_err();
    assert!(err.contains(": /: directory extent at sector 18"), "{err}");
}

#[test]
fn names_that_would_leave_the_target_are_refused() {
    for (name, want) in [
        (nm(b"a/b"), "contains '/'"),
        (nm(b".."), "refers to a directory itself or its parent"),
        (nm(b"a\0b"), "NUL"),
        (su(b"NM", &[0x04]), "is '.' or '..'"),
        (su(b"NM", &[0x02]), "is '.' or '..'"),
    ] {
        let f = rr_root(24, &[rec(b"F.;1", 20, 0, 0, &name)]);
        let err = f.tree_err();
        assert!(err.contains(want), "{want}: {err}");
    }
    // A name of 300 bytes, from two NM entries in a continuation area.
    let mut f = rr_root(24, &[rec(b"F.;1", 20, 0, 0, &ce(21, 0, 310))]);
    f.put(21 * S, &[su(b"NM", &[&[1u8][..], &[b'x'; 200]].concat()), nm(&[b'y'; 100])].concat());
    let err = f.tree_err();
    assert!(err.contains("longer than 255"), "{err}");
    // Joliet and ISO 9660 names get the same check.
    let f = {
        let mut f = Forge::new(24, 2048);
        f.dir(ROOT, &[rec(&[0], ROOT, 2048, FLAG_DIR, &[]), rec(b"..;1", 20, 0, 0, &[])]);
        f
    };
    assert!(f.tree_err().contains("refers to a directory itself or its parent"));
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    let n = dir::MAX_DEPTH as u32 + 5;
    let mut f = Forge::new(ROOT as usize + n as usize + 2, 2048);
    for i in 0..=n {
        let lba = ROOT + i;
        f.dir(lba, &[rec(&[0], lba, 2048, FLAG_DIR, &[]), rec(b"D", lba + 1, 2048, FLAG_DIR, &[])]);
    }
    let err = f.tree_err();
    assert!(err.contains("nested more than 256 levels deep"), "{err}");
    assert!(err.contains("/D/D/D/D"), "{err}");
}

#[test]
fn malformed_system_use_entries_are_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![b'N', b'M', 2, 1], "length 2, less than 4"),
        (vec![b'N', b'M', 90, 1, 0, b'a'], "runs past the end of its system use area"),
        (su(b"PX", &[0; 10]), "needs at least 36"),
        (ce(5000, 0, 100), "runs past the end of the image"),
        (ce(20, 0, 1 << 20), "at most 65536"),
        (ce(20, 0, 100), "more than 32 SUSP continuation areas"),
        (su(b"ZF", &[0; 12]), "zisofs"),
        ([px(0o120777, 1, 0, 0, None), nm(b"l")].concat(), "without a target (SL)"),
        ([px(0o20600, 1, 0, 0, None), nm(b"c")].concat(), "without a device number (PN)"),
        ([px(0o40755, 1, 0, 0, None), nm(b"x")].concat(), "says directory"),
    ];
    for (field, want) in cases {
        let mut f = rr_root(24, &[rec(b"F.;1", 20, 0, 0, &field)]);
        // Sector 20 holds a CE entry pointing at itself (for the loop case).
        let mut area = ce(20, 0, 100);
        area.resize(100, 0);
        f.put(20 * S, &area);
        let err = f.tree_err();
        assert!(err.contains(want), "{want}: {err}");
        assert!(err.contains(": /"), "{err}");
    }
}

#[test]
fn broken_directories_are_errors() {
    // Two entries of the same name.
    let f = rr_root(24, &[rec(b"A.;1", 20, 0, 0, &nm(b"x")), rec(b"B.;1", 20, 0, 0, &nm(b"x"))]);
    assert!(f.tree_err().contains("two entries are named x"));
    // A multi-extent file without its last extent.
    let f = rr_root(24, &[rec(b"A.;1", 20, 10, FLAG_MULTI_EXTENT, &nm(b"a")), rec(b"B.;1", 20, 0, 0, &nm(b"b"))]);
    assert!(f.tree_err().contains("without its final extent"));
    let f = rr_root(24, &[rec(b"A.;1", 20, 10, FLAG_MULTI_EXTENT, &nm(b"a"))]);
    assert!(f.tree_err().contains("without its final extent"));
    // A record shorter than its fixed fields, one running out of its
    // directory.
    let end = rr_root_dot(2048).len() + 34;
    let mut f = rr_root(24, &[]);
    f.put(ROOT as usize * S + end, &[20]);
    assert!(f.tree_err().contains("is 20 bytes, less than 34"), "{}", f.tree_err());
    let mut f = Forge::new(24, end as u32 + 20);
    f.dir(ROOT, &[rr_root_dot(end as u32 + 20), rec(&[1], ROOT, 2048, FLAG_DIR, &[]), rec(b"F", 20, 0, 0, &[])]);
    let err = f.tree_err();
    assert!(err.contains(&format!("directory record at sector 18 byte {end} (34 bytes) runs past the end")), "{err}");
    // A name longer than its record.
    let mut r = rec(b"A", 20, 0, 0, &[]);
    r[32] = 200;
    let f = rr_root(24, &[r]);
    assert!(f.tree_err().contains("name runs past the record"));
    // Overlapping directories that would make the walk read far more than
    // the image holds.
    let entries: Vec<Vec<u8>> =
        (0..60u32).map(|i| rec(format!("D{i}").as_bytes(), 30 + i, 40 * 2048, FLAG_DIR, &[])).collect();
    let mut f = Forge::new(200, 4096);
    let mut recs = vec![rec(&[0], ROOT, 4096, FLAG_DIR, &[])];
    recs.extend(entries);
    f.dir(ROOT, &recs);
    let err = f.tree_err();
    assert!(err.contains("twice the image's size"), "{err}");
}

#[test]
fn not_an_iso_or_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.iso");
    fs::write(&p, vec![0u8; 1000]).unwrap();
    let err = IsoImage::open(&p).unwrap_err().to_string();
    assert!(err.contains("too short") && err.contains("x.iso"), "{err}");
    fs::write(&p, vec![0u8; 40000]).unwrap();
    let err = IsoImage::open(&p).unwrap_err().to_string();
    assert!(err.contains("no CD001"), "{err}");
    let mut f = Forge::new(24, 2048);
    f.img[16 * S + 128] = 0;
    f.img[16 * S + 129] = 2;
    f.img[16 * S + 130] = 2;
    fs::write(&p, &f.img).unwrap();
    let err = IsoImage::open(&p).unwrap_err().to_string();
    assert!(err.contains("512 bytes"), "{err}");
    let err = format!("{:#}", IsoImage::open(dir.path()).unwrap_err());
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

/// A forged image with a boot record and catalog at 19.
fn with_catalog(entries: &[[u8; 32]]) -> Forge {
    let mut f = rr_root(800, &[rec(b"BOOT.;1", 30, 4096, 0, &nm(b"boot.img"))]);
    let b = &mut f.img[17 * S..18 * S];
    b.fill(0);
    b[1..6].copy_from_slice(b"CD001");
    b[6] = 1;
    b[7..7 + spec::EL_TORITO_ID.len()].copy_from_slice(spec::EL_TORITO_ID);
    b[71..75].copy_from_slice(&19u32.to_le_bytes());
    // No terminator: the set ends at the root directory (no CD001).
    let mut v = [0u8; 32];
    v[0] = 1;
    v[30] = 0x55;
    v[31] = 0xAA;
    let sum = v.chunks(2).fold(0u16, |s, c| s.wrapping_add(u16::from_le_bytes([c[0], c[1]])));
    v[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    f.put(19 * S, &v);
    for (i, e) in entries.iter().enumerate() {
        f.put(19 * S + 32 * (i + 1), e);
    }
    f
}

fn boot_entry(indicator: u8, media: u8, sectors: u16, lba: u32) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[0] = indicator;
    e[1] = media;
    e[6..8].copy_from_slice(&sectors.to_le_bytes());
    e[8..12].copy_from_slice(&lba.to_le_bytes());
    e
}

#[test]
fn forged_boot_catalogs() {
    let mut header = [0u8; 32];
    header[0] = 0x91;
    header[1] = spec::PLATFORM_EFI;
    header[2] = 2;
    let mut f = with_catalog(&[
        boot_entry(0x88, 0, 4, 30),
        header,
        boot_entry(0x88, 0x20, 0, 40),
        {
            let mut x = [0u8; 32];
            x[0] = 0x44;
            x
        },
        boot_entry(0, 2, 1, 50),
    ]);
    // A FAT boot sector at 40: 4 sectors of 2048 bytes.
    let mut bpb = [0u8; 512];
    bpb[11..13].copy_from_slice(&2048u16.to_le_bytes());
    bpb[19..21].copy_from_slice(&4u16.to_le_bytes());
    bpb[510] = 0x55;
    bpb[511] = 0xAA;
    f.put(40 * S, &bpb);
    // The BIOS image carries a boot info table and GRUB 2 boot info.
    f.put(30 * S + 8, &16u32.to_le_bytes()).put(30 * S + 12, &30u32.to_le_bytes());
    f.put(30 * S + 2548, &(30u64 * 4 + 5).to_le_bytes());
    let (_file, img) = f.open();
    let tree = img.tree().unwrap();
    let (boot, layout) = img.boot(&tree).unwrap().unwrap();
    assert_eq!(boot.catalog, CatalogPlace::Hidden);
    assert_eq!(boot.entries.len(), 3);
    let e = &boot.entries[0];
    assert!(matches!(&e.image, BootImage::File(p) if *p == vec![b"boot.img".to_vec()]));
    assert!(e.info_table && e.grub2_boot_info);
    let e = &boot.entries[1];
    assert_eq!(e.platform, spec::PLATFORM_EFI);
    assert!(matches!(e.image, BootImage::Hidden { size: 8192, appended: false, .. }), "{:?}", e.image);
    let e = &boot.entries[2];
    assert!(!e.bootable);
    assert!(matches!(e.image, BootImage::Hidden { size: 1_474_560, appended: false, .. }), "{:?}", e.image);
    assert_eq!(layout.boot.len(), 3);
    drop(boot);
    let info = img.info().unwrap();
    assert!(info.problems.is_empty());
    assert_eq!(info.el_torito.unwrap().entries[2].emulation, "floppy-1.44");

    // An image that runs past the end is an error naming the entry.
    let f = with_catalog(&[boot_entry(0x88, 0, 4, 30), header, boot_entry(0x88, 0, 200, 790), [0; 32]]);
    let (_file, img) = f.open();
    let err = format!("{:#}", img.boot(&img.tree().unwrap()).unwrap_err());
    assert!(err.contains("boot image 2 at sector 790 (102400 bytes) runs past the end"), "{err}");
    // info() reports it instead of failing.
    let info = img.info().unwrap();
    assert_eq!(info.problems.len(), 1);

    // A section that promises more entries than the catalog has.
    let mut long = header;
    long[2..4].copy_from_slice(&5000u16.to_le_bytes());
    let f = with_catalog(&[boot_entry(0x88, 0, 4, 30), long]);
    let (_file, img) = f.open();
    let err = format!("{:#}", img.boot(&Tree::default()).unwrap_err());
    assert!(err.contains("ends at entry"), "{err}");

    // A bad checksum.
    let mut f = with_catalog(&[boot_entry(0x88, 0, 4, 30)]);
    f.img[19 * S + 5] ^= 1;
    let (_file, img) = f.open();
    let err = format!("{:#}", img.boot(&Tree::default()).unwrap_err());
    assert!(err.contains("checksum"), "{err}");
}

// ---------------------------------------------------------------------------
// Damage: truncations and random byte changes of a real image never panic.

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn exercise(path: &Path) {
    let Ok(img) = IsoImage::open(path) else { return };
    let _ = img.info();
    let tree = img.tree().unwrap_or_default();
    let _ = img.boot(&tree);
    let _ = img.system_area();
}

#[test]
fn damaged_images_give_errors_not_panics() {
    if !have("xorriso") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("a/b")).unwrap();
    fs::write(src.join("a/b/f"), b"data").unwrap();
    fs::write(src.join("boot.bin"), vec![7u8; 2048]).unwrap();
    std::os::unix::fs::symlink("a/b/f", src.join("l")).unwrap();
    std::os::unix::fs::symlink(["x".repeat(100), "y".repeat(100), "z".repeat(100)].join("/"), src.join("long"))
        .unwrap();
    let iso = dir.path().join("s.iso");
    run(Command::new("xorriso")
        .args([
            "-as",
            "mkisofs",
            "-R",
            "-J",
            "-quiet",
            "-no-pad",
            "-b",
            "boot.bin",
            "-no-emul-boot",
            "-boot-info-table",
        ])
        .arg("-o")
        .arg(&iso)
        .arg(&src));
    let good = fs::read(&iso).unwrap();
    let img = IsoImage::open(&iso).unwrap();
    assert!(img.tree().is_ok());
    let meta_end = (img.volume_space_sectors() as usize * S).min(good.len());
    let p = dir.path().join("bad.iso");
    // Every truncation at a sector boundary and a few inside sectors.
    for cut in (0..good.len()).step_by(S).chain([100, 33000, 34817, 36000]) {
        fs::write(&p, &good[..cut]).unwrap();
        exercise(&p);
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..1500 {
        let mut bad = good.clone();
        for _ in 0..1 + xorshift(&mut seed) % 8 {
            let at = 16 * S + (xorshift(&mut seed) as usize) % (meta_end - 16 * S);
            bad[at] = xorshift(&mut seed) as u8;
        }
        fs::write(&p, &bad).unwrap();
        exercise(&p);
    }
}
