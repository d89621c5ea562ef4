//! `slipway iso`: an image `iso build` writes reads back in the independent
//! readers (xorriso, bsdtar, isoinfo) and in `iso extract` exactly as the
//! source tree was; builds are reproducible; the images boot in QEMU from CD
//! and, when hybrid, from disk, under BIOS and UEFI; vendor images changed
//! with `iso edit` keep their boot records and hybrid layout and still boot;
//! damaged input gives an error that names the file.
//!
//! How the boot checks see that a machine booted (QEMU with TCG, 5 to 20 s
//! each):
//! - our netboot fixture (scripts/iso-fixtures.sh; isolinux for BIOS, GRUB
//!   for UEFI, both on the serial console): `Linux version` on the serial port;
//! - ipxe.iso: iPXE asks for its boot file over HTTP; the test serves
//!   127.0.0.1 and QEMU's user network hands iPXE that URL by DHCP. The NIC
//!   has no option ROM, so only the iPXE on the image can ask;
//! - memtest86+ and GRUB under BIOS print nothing on serial: the test reads
//!   the VGA text screen (guest memory at 0xb8000) over QMP;
//! - memtest86+ under UEFI draws on a framebuffer: most of the screen turns
//!   its blue (QMP screendump).
//!
//! `boot_checks_work_on_xorriso_and_vendor_images` (ignored: run it with
//! `cargo test --test iso -- --ignored`) runs the same checks on images made
//! by xorriso and on the unedited vendor images, to tell a broken check from
//! a broken image.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;

const IPXE_ISO: &str = "/usr/lib/ipxe/ipxe.iso";
const MEMTEST_ISO: &str = "/usr/lib/memtest86+/memtest86+x64.iso";
const GRUB_RESCUE_ISO: &str = "/usr/lib/grub-rescue/grub-rescue-cdrom.iso";

/// `slipway` with a store under `t` (only `--image` uses it).
fn sw(t: &Path) -> Command {
    slipway(&t.join("store"))
}

/// `slipway iso build SRC -o OUT ARGS...`, required to succeed.
fn build(t: &Path, src: &Path, iso: &Path, args: &[&str]) {
    ok(sw(t).args(["iso", "build"]).arg(src).arg("-o").arg(iso).args(args));
}

/// Runs xorriso (which reports on stderr and stdout alike), requires
/// success, and returns both.
fn xorriso(args: &[&str], iso: &Path) -> String {
    let o = Command::new("xorriso").arg("-indev").arg(iso).args(args).output().expect("xorriso");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "xorriso -indev {} {args:?} failed:\n{text}", iso.display());
    text
}

fn tools(list: &[&str]) -> bool {
    list.iter().all(|t| require(t))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ------------------------------------------------------------------ the tree

/// Every kind of entry an ISO must carry: empty files, names longer than
/// Joliet's 64 and 103 characters, non-ASCII UTF-8 names, names that differ
/// only in case, symlinks (relative, absolute, dangling, to a directory),
/// hard links, a FIFO, setuid / setgid / sticky modes, directories deeper
/// than ISO 9660's 8 levels, and times before 2000 and after 2038; as root
/// also device nodes, a mode 0000 file and odd owners. Every time is a whole
/// second (ISO 9660 keeps seconds).
fn iso_kinds(root: &Path) {
    sh(
        r#"
        mkdir -p etc usr/bin var/empty-dir 'dir with space' 'Ünïcödé dir' tmp
        printf 'root:x:0:0::/root:/bin/bash\n' > etc/passwd
        : > etc/empty-file; : > var/another-empty
        head -c 300000 /dev/urandom > usr/bin/random-300k
        seq 1 300000 > usr/bin/text
        printf 'setuid\n' > usr/bin/su; chmod 4755 usr/bin/su
        printf 'setgid\n' > usr/bin/wall; chmod 2755 usr/bin/wall
        chmod 1777 tmp
        printf 'private\n' > etc/private; chmod 0600 etc/private
        long70=$(printf 'a%.0s' $(seq 1 70)).txt; echo 70 > "$long70"
        long110=$(printf 'b%.0s' $(seq 1 110)).txt; echo 110 > "$long110"
        long200=$(printf 'c%.0s' $(seq 1 200)); mkdir "$long200"; echo 200 > "$long200/$long200"
        echo café > café.txt; echo jp > 'Ünïcödé dir/日本語のファイル名.txt'
        echo upper > 'Same Name.TXT'; echo lower > 'same name.txt'; echo x > many.dots.in.name.tar.gz
        ln -s ../etc/passwd usr/passwd-rel
        ln -s /etc/passwd usr/passwd-abs
        ln -s /nonexistent/nowhere usr/dangling
        ln -s 'Ünïcödé dir' link-to-dir
        ln etc/passwd usr/bin/hardlink-to-passwd
        printf 'multi\n' > var/a; ln var/a var/b; ln var/a 'dir with space/c'
        deep=d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12
        mkdir -p "$deep"; echo deep > "$deep/file"; ln -s ../../d1 "$deep/up"
        mkfifo fifo
        if [ "$(id -u)" -eq 0 ]; then
          mknod dev-null c 1 3; mknod dev-loop0 b 7 0
          printf 'secret\n' > etc/shadow; chmod 0000 etc/shadow; chown 0:42 etc/shadow
          chown 12345:54321 "$deep/file"; chown -h 777:888 usr/passwd-rel; chown 1000:1000 'Ünïcödé dir'
        fi
        find . -exec touch -h -d @1600000000 {} +
        touch -d '1999-12-31 23:59:59Z' etc/passwd
        touch -d '2040-02-29 12:00:00Z' usr/bin/su
        touch -h -d '2001-02-03 04:05:06Z' usr/dangling
        touch -d '2011-11-11 11:11:11Z' 'dir with space' "$deep"
        "#,
        root,
    );
}

/// Every path below `root`, as `/a/b`, sorted.
fn tree_paths(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = format!("{prefix}/{}", e.file_name().to_str().expect("UTF-8 names"));
            out.push(p.clone());
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out.sort();
    out
}

/// bsdtar's mtree listing without the line of the top directory (whose
/// times and mode belong to wherever it was extracted).
fn mtree_below(dir: &Path) -> String {
    mtree(dir).lines().filter(|l| l.split(' ').next() != Some(".")).collect::<Vec<_>>().join("\n")
}

fn same_paths(what: &str, expected: &[String], actual: &[String]) {
    assert_same(what, &expected.join("\n"), &actual.join("\n"));
}

// ------------------------------------------------------------------ readers

/// Every path in the image as xorriso sees it (Rock Ridge names), sorted,
/// without `/`.
fn xorriso_find(iso: &Path) -> Vec<String> {
    let o = Command::new("xorriso").arg("-indev").arg(iso).args(["-find", "/"]).output().expect("xorriso");
    assert!(o.status.success(), "xorriso -find: {}", String::from_utf8_lossy(&o.stderr));
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')))
        .filter(|p| *p != "/")
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Every path in the image as libarchive lists it, as `/a/b`, sorted.
fn bsdtar_list(iso: &Path) -> Vec<String> {
    let text = ok(Command::new("bsdtar").arg("-tf").arg(iso));
    let mut v: Vec<String> = text
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/'))
        .filter(|l| !l.is_empty() && *l != ".")
        .map(|l| format!("/{l}"))
        .collect();
    v.sort();
    v
}

/// xorriso reads every block of the image and finds no bad one (blocks
/// after the filesystem, such as padding or a backup GPT, stay "untested").
fn media_is_good(iso: &Path) {
    let text = xorriso(&["-check_media", "--"], iso);
    let regions: Vec<_> = text.lines().filter(|l| l.starts_with("Media region :")).collect();
    let quality = |l: &str| l.rsplit(',').next().unwrap_or("").trim().to_string();
    assert!(
        regions.iter().any(|l| quality(l).starts_with("+ good"))
            && regions.iter().all(|l| quality(l).starts_with('+') || quality(l) == "0 untested"),
        "check_media:\n{text}"
    );
}

/// The paths of `isoinfo -l` with `-R` (Rock Ridge) or `-J` (Joliet).
fn isoinfo_paths(iso: &Path, tree: &str) -> BTreeSet<String> {
    let o = Command::new("isoinfo").args([tree, "-l", "-i"]).arg(iso).output().expect("isoinfo");
    assert!(o.status.success(), "isoinfo {tree} -l: {}", String::from_utf8_lossy(&o.stderr));
    let mut dir = String::new();
    let mut out = BTreeSet::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        if let Some(d) = line.strip_prefix("Directory listing of ") {
            dir = d.trim_end_matches('/').to_string();
            continue;
        }
        let Some(i) = line.find("]  ") else { continue };
        let mut name = &line[i + 3..];
        if let Some(j) = name.find(" -> ") {
            name = &name[..j];
        }
        let name = name.strip_suffix(' ').unwrap_or(name);
        if name != "." && name != ".." {
            out.insert(format!("{dir}/{name}"));
        }
    }
    out
}

/// `isoinfo -d`: the volume descriptor summary.
fn isoinfo_d(iso: &Path) -> String {
    ok(Command::new("isoinfo").arg("-d").arg("-i").arg(iso))
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The `path` of every entry of an `iso ls --json` document.
fn ls_paths(doc: &serde_json::Value) -> Vec<String> {
    let entries = doc["entries"].as_array().unwrap_or_else(|| panic!("no \"entries\" array:\n{doc:#}"));
    let mut v: Vec<String> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap_or_else(|| panic!("entry without \"path\": {e}")).to_string())
        .collect();
    v.sort();
    v
}

/// The boot platforms an `iso info --json` document names (any `platform`
/// field, string or El Torito platform id), as "bios" / "uefi".
fn info_platforms(doc: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if k == "platform" {
                        let p = match x {
                            serde_json::Value::String(s) => s.to_ascii_lowercase(),
                            serde_json::Value::Number(n) => n.to_string(),
                            other => other.to_string(),
                        };
                        out.push(
                            match p.as_str() {
                                "0" | "x86" | "80x86" | "bios" => "bios",
                                "239" | "efi" | "uefi" => "uefi",
                                other => other,
                            }
                            .to_string(),
                        );
                    } else {
                        walk(x, out);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut out);
    out
}

/// Whether any string in the document equals `s`.
fn has_string(doc: &serde_json::Value, s: &str) -> bool {
    match doc {
        serde_json::Value::String(x) => x == s,
        serde_json::Value::Object(m) => m.values().any(|v| has_string(v, s)),
        serde_json::Value::Array(a) => a.iter().any(|v| has_string(v, s)),
        _ => false,
    }
}

fn info(t: &Path, iso: &Path) -> serde_json::Value {
    let doc = json(&ok(sw(t).args(["iso", "info"]).arg(iso).arg("--json")));
    assert!(
        doc["schema"].as_str().is_some_and(|s| s.starts_with("slipway.iso-info/")),
        "schema slipway.iso-info/N expected:\n{doc:#}"
    );
    doc
}

// ------------------------------------------------------------------ boot records

/// What `xorriso -report_el_torito plain -report_system_area plain` says
/// about an image's boot records and system area.
#[derive(Debug, Default)]
struct BootReport {
    boot_record: String,
    catalog_path: String,
    /// `N Pltf B Emul Ld_seg Hdpt Ldsiz LBA`, one per El Torito entry.
    entries: Vec<Vec<String>>,
    /// `N path` and `N options` of the entries that have them.
    paths: Vec<String>,
    opts: Vec<String>,
    summary: String,
    /// The ISO filesystem's size in 512-byte sectors.
    fs_sectors: u64,
    /// `N Status Type Start Blocks`.
    mbr: Vec<Vec<String>>,
    mbr_paths: Vec<String>,
    gpt_types: Vec<String>,
    gpt_names: Vec<String>,
    /// `N start size`.
    gpt_ranges: Vec<Vec<String>>,
    text: String,
}

fn boot_report(iso: &Path) -> BootReport {
    let text = xorriso(&["-report_el_torito", "plain", "-report_system_area", "plain"], iso);
    let mut r = BootReport { text: text.clone(), ..Default::default() };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let (key, value) = (key.trim(), value.trim());
        let fields = || value.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        match key {
            "Boot record" if r.boot_record.is_empty() => r.boot_record = value.to_string(),
            "El Torito cat path" => r.catalog_path = value.to_string(),
            "El Torito boot img" => r.entries.push(fields()),
            "El Torito img path" => r.paths.push(fields().join(" ")),
            "El Torito img opts" => r.opts.push(fields().join(" ")),
            "System area summary" => r.summary = value.to_string(),
            "ISO image size/512" => r.fs_sectors = value.parse().unwrap(),
            "MBR partition" => r.mbr.push(fields()),
            "MBR partition path" => r.mbr_paths.push(fields().join(" ")),
            "GPT type GUID" => r.gpt_types.push(fields().join(" ")),
            "GPT partname local" => r.gpt_names.push(fields().join(" ")),
            "GPT start and size" => r.gpt_ranges.push(fields()),
            _ => {}
        }
    }
    r
}

impl BootReport {
    /// What a 512-byte sector number is, in terms of this image: the first
    /// sectors (`0`, `1`), the end of the ISO filesystem, the start of El
    /// Torito image N. As the end of a partition: the end of image N (start
    /// plus load size), or "the end", where the end of the filesystem and the
    /// end of the file are one place: writers pad differently (alignment,
    /// xorriso's 300 KiB) and cover the padding or not.
    fn labels(&self, sector: u64, file_len: u64, is_end: bool) -> BTreeSet<String> {
        let mut l = BTreeSet::new();
        if is_end {
            if sector == self.fs_sectors || sector == file_len / 512 {
                l.insert("the end".to_string());
            }
            for e in &self.entries {
                let n = |i: usize| e[i].parse::<u64>().ok();
                if n(e.len() - 1).zip(n(6)).is_some_and(|(lba, sectors)| lba * 4 + sectors == sector) {
                    l.insert(format!("end of boot image {}", e[0]));
                }
            }
            return l;
        }
        for (v, name) in [(0, "0"), (1, "1"), (self.fs_sectors, "filesystem end")] {
            if sector == v {
                l.insert(name.to_string());
            }
        }
        for e in &self.entries {
            if e.last().and_then(|lba| lba.parse::<u64>().ok()).is_some_and(|lba| lba * 4 == sector) {
                l.insert(format!("boot image {}", e[0]));
            }
        }
        l
    }

    /// El Torito entries without their LBA.
    fn entries_without_lba(&self) -> Vec<String> {
        self.entries.iter().map(|e| e[..e.len() - 1].join(" ")).collect()
    }
}

/// Two label sets describe the same place: both say nothing, or they share
/// a label (the end of the filesystem may also be the end of the file in one
/// image and not in the other).
fn same_place(a: &BTreeSet<String>, b: &BTreeSet<String>) -> bool {
    (a.is_empty() && b.is_empty()) || a.intersection(b).next().is_some()
}

/// How `output`, an edited copy of `input`, differs from it in El Torito
/// entries (platform, emulation, load size, image path, boot info table),
/// kind of system area, and MBR / GPT partitions (types, and what they
/// point at: the filesystem, its end, a boot image); empty when it does not.
/// The tests boot the image before they fail on these, so a report shows
/// both.
fn boot_layout_differences(input: &Path, output: &Path) -> Vec<String> {
    let (a, b) = (boot_report(input), boot_report(output));
    let (alen, blen) = (fs::metadata(input).unwrap().len(), fs::metadata(output).unwrap().len());
    let mut d = Vec::new();
    let mut same = |what: &str, x: &dyn std::fmt::Debug, y: &dyn std::fmt::Debug| {
        let (x, y) = (format!("{x:?}"), format!("{y:?}"));
        if x != y {
            d.push(format!("{what}: {x} in the input, {y} in the output"));
        }
    };
    same("boot record", &a.boot_record, &b.boot_record);
    same("catalog path", &a.catalog_path, &b.catalog_path);
    same("El Torito entries", &a.entries_without_lba(), &b.entries_without_lba());
    same("El Torito image paths", &a.paths, &b.paths);
    same("El Torito image options", &a.opts, &b.opts);
    same("system area", &a.summary, &b.summary);
    same("MBR partitions (number status type)", &part_kinds(&a.mbr), &part_kinds(&b.mbr));
    same("MBR partition files", &a.mbr_paths, &b.mbr_paths);
    same("GPT partition types", &a.gpt_types, &b.gpt_types);
    same("GPT partition names", &a.gpt_names, &b.gpt_names);
    let n = |p: &[String], i: usize| p[i].parse::<u64>().unwrap();
    for (pa, pb) in a.mbr.iter().zip(&b.mbr) {
        let (sa, sb) = (a.labels(n(pa, 3), alen, false), b.labels(n(pb, 3), blen, false));
        if !same_place(&sa, &sb) {
            d.push(format!("MBR partition {} starts at {sa:?} in the input, {sb:?} in the output", pa[0]));
        }
        let (ea, eb) = (a.labels(n(pa, 3) + n(pa, 4), alen, true), b.labels(n(pb, 3) + n(pb, 4), blen, true));
        if !same_place(&ea, &eb) {
            d.push(format!("MBR partition {} ends at {ea:?} in the input, {eb:?} in the output", pa[0]));
        }
    }
    for (ga, gb) in a.gpt_ranges.iter().zip(&b.gpt_ranges) {
        let (sa, sb) = (a.labels(n(ga, 1), alen, false), b.labels(n(gb, 1), blen, false));
        if !same_place(&sa, &sb) {
            d.push(format!("GPT partition {} starts at {sa:?} in the input, {sb:?} in the output", ga[0]));
        }
    }
    if !d.is_empty() {
        d.push(format!("--- input {}:\n{}\n--- output {}:\n{}", input.display(), a.text, output.display(), b.text));
    }
    d
}

fn part_kinds(parts: &[Vec<String>]) -> Vec<String> {
    parts.iter().map(|p| p[..3].join(" ")).collect()
}

/// Fails with `differences` (from [`boot_layout_differences`]) unless empty.
fn no_layout_differences(differences: &[String]) {
    assert!(differences.is_empty(), "the edit changed the boot layout:\n{}", differences.join("\n"));
}

/// `output` lists exactly what `input` does, less `removed` (and everything
/// below it), plus `added`, in xorriso's and in bsdtar's view.
fn listing_after_edit(input: &Path, output: &Path, added: &[&str], removed: &[&str]) {
    let gone = |p: &str| removed.iter().any(|r| p == *r || p.starts_with(&format!("{r}/")));
    let mut expected: Vec<String> = xorriso_find(input).into_iter().filter(|p| !gone(p)).collect();
    expected.extend(added.iter().map(|p| p.to_string()));
    expected.sort();
    same_paths("xorriso -find after the edit", &expected, &xorriso_find(output));
    let tar = bsdtar_list(output);
    for a in added {
        assert!(tar.iter().any(|p| p == a), "bsdtar -tf misses {a}: {tar:?}");
    }
    assert!(!tar.iter().any(|p| gone(p)), "bsdtar -tf still lists {removed:?}: {tar:?}");
}

// ------------------------------------------------------------------ boot checks

/// Boots `iso` and waits for the kernel's first line on the serial port.
fn kernel_starts(dir: &Path, name: &str, fw: Firmware, medium: Medium, iso: &Path) -> f64 {
    Vm::start(dir, name, fw, medium, iso, &[]).wait_serial("Linux version", BOOT_LIMIT)
}

/// Boots an iPXE image with a NIC that has no option ROM and waits for
/// iPXE to ask our HTTP server for the boot file DHCP named.
fn ipxe_asks_for_its_boot_file(dir: &Path, name: &str, fw: Firmware, medium: Medium, iso: &Path) -> f64 {
    let http = HttpProbe::start();
    let netdev = format!("user,id=n0,bootfile=http://10.0.2.2:{}/slipway-probe", http.port());
    let mut vm = Vm::start(dir, name, fw, medium, iso, &["-netdev", &netdev, "-device", "e1000,netdev=n0,romfile="]);
    vm.wait("iPXE's GET /slipway-probe", BOOT_LIMIT, |_| {
        http.requests().iter().any(|r| r.starts_with("GET /slipway-probe "))
    })
}

/// memtest86+ shows its main screen: on the VGA text screen under BIOS,
/// as a mostly blue framebuffer under UEFI.
fn memtest_runs(dir: &Path, name: &str, fw: Firmware, medium: Medium, iso: &Path) -> f64 {
    let mut vm = Vm::start(dir, name, fw, medium, iso, &[]);
    match fw {
        Firmware::Bios => vm.wait("memtest86+'s screen", BOOT_LIMIT, |vm| {
            let s = vm.vga_text();
            s.contains("Memtest86+ v") && s.contains("Errors")
        }),
        Firmware::Uefi => vm.wait("memtest86+'s blue screen", BOOT_LIMIT, |vm| vm.screen_share([0, 0, 0xaa]) > 0.5),
    }
}

/// GRUB (BIOS) shows its menu with an entry named `entry`, read from the
/// image's grub.cfg.
fn grub_menu_shows(dir: &Path, name: &str, medium: Medium, iso: &Path, entry: &str) -> f64 {
    let mut vm = Vm::start(dir, name, Firmware::Bios, medium, iso, &[]);
    vm.wait(&format!("GRUB's menu with {entry:?}"), BOOT_LIMIT, |vm| {
        let s = vm.vga_text();
        s.contains("GNU GRUB") && s.contains(entry)
    })
}

// ------------------------------------------------------------------ build: content

#[test]
fn every_kind_of_entry_reads_back_in_xorriso_bsdtar_isoinfo_and_extract() {
    if !tools(&["xorriso", "bsdtar", "isoinfo"]) {
        return;
    }
    let t = tempdir();
    let (src, iso) = (t.path().join("src"), t.path().join("kinds.iso"));
    fs::create_dir(&src).unwrap();
    iso_kinds(&src);
    build(t.path(), &src, &iso, &["--volume-id", "KINDS", "--publisher", "SLIPWAY TESTS"]);
    let paths = tree_paths(&src);

    same_paths("xorriso -find", &paths, &xorriso_find(&iso));
    media_is_good(&iso);
    same_paths("bsdtar -tf", &paths, &bsdtar_list(&iso));
    let rr: Vec<String> = isoinfo_paths(&iso, "-R").into_iter().collect();
    same_paths("isoinfo -R -l", &paths, &rr);

    // Joliet: every ASCII file and directory name, whole or (past 64
    // characters) cut to a prefix of at least 60.
    let joliet: BTreeSet<String> =
        isoinfo_paths(&iso, "-J").iter().map(|p| p.rsplit('/').next().unwrap().to_string()).collect();
    for p in &paths {
        let name = p.rsplit('/').next().unwrap();
        let ft = fs::symlink_metadata(src.join(&p[1..])).unwrap().file_type();
        if !name.is_ascii() || !(ft.is_file() || ft.is_dir()) {
            continue;
        }
        let found = joliet.contains(name)
            || name.len() > 64 && joliet.iter().any(|j| j.len() >= 60 && name.starts_with(&j[..60]));
        assert!(found, "Joliet tree lacks {p}: {joliet:?}");
    }
    let d = isoinfo_d(&iso);
    for want in ["Volume id: KINDS", "Publisher id: SLIPWAY TESTS", "Joliet with UCS level", "Rock Ridge signatures"] {
        assert!(d.contains(want), "isoinfo -d lacks {want:?}:\n{d}");
    }

    // bsdtar restores names, types, modes, owners, times, link targets,
    // hard links, devices (as root) and content exactly.
    let bx = t.path().join("bsdtar-x");
    fs::create_dir(&bx).unwrap();
    ok(Command::new("bsdtar").arg("-xpf").arg(&iso).arg("-C").arg(&bx));
    assert_same("mtree of bsdtar's extraction", &mtree_below(&src), &mtree_below(&bx));

    // So does `iso extract`, hard links as one inode.
    let sx = t.path().join("slipway-x");
    ok(sw(t.path()).args(["iso", "extract"]).arg(&iso).arg(&sx));
    assert_same("mtree of iso extract", &mtree_below(&src), &mtree_below(&sx));
    let ino = |p: &str| fs::symlink_metadata(sx.join(p)).unwrap().ino();
    assert_eq!(ino("var/a"), ino("var/b"));
    assert_eq!(ino("var/a"), ino("dir with space/c"));
    assert_eq!(ino("etc/passwd"), ino("usr/bin/hardlink-to-passwd"));
    assert_ne!(ino("etc/empty-file"), ino("var/another-empty"), "empty files are not hard links");
}

#[test]
fn ls_and_info_describe_a_built_image() {
    let t = tempdir();
    let (src, iso) = (t.path().join("src"), t.path().join("kinds.iso"));
    fs::create_dir(&src).unwrap();
    iso_kinds(&src);
    build(t.path(), &src, &iso, &["--volume-id", "KINDS", "--publisher", "SLIPWAY TESTS"]);
    let ls = |args: &[&str]| ok(sw(t.path()).args(["iso", "ls"]).arg(&iso).args(args));

    same_paths("iso ls --recursive --json", &tree_paths(&src), &ls_paths(&json(&ls(&["--recursive", "--json"]))));
    let top: Vec<String> = tree_paths(&src).into_iter().filter(|p| p.matches('/').count() == 1).collect();
    same_paths("iso ls --json", &top, &ls_paths(&json(&ls(&["--json"]))));
    let usr: Vec<String> = tree_paths(&src).into_iter().filter(|p| p.starts_with("/usr/bin/")).collect();
    same_paths("iso ls /usr/bin --json", &usr, &ls_paths(&json(&ls(&["/usr/bin", "--json"]))));
    let long = ls(&["/usr/bin", "--long"]);
    assert!(long.contains("rwsr-xr-x") && long.contains("su"), "iso ls --long shows modes:\n{long}");
    let long = ls(&["/usr", "--long"]);
    assert!(long.contains("passwd-rel") && long.contains("../etc/passwd"), "iso ls --long shows link targets:\n{long}");

    let doc = info(t.path(), &iso);
    assert!(has_string(&doc, "KINDS") && has_string(&doc, "SLIPWAY TESTS"), "volume id and publisher:\n{doc:#}");
    assert!(info_platforms(&doc).is_empty(), "an image without boot options has no boot entries:\n{doc:#}");
}

#[test]
fn same_tree_and_source_date_epoch_give_identical_bytes() {
    let t = tempdir();
    // The copy has the same name: a default volume id may come from it.
    let (src, copy) = (t.path().join("src"), t.path().join("elsewhere/src"));
    fs::create_dir(&src).unwrap();
    iso_kinds(&src);
    sh("mkdir elsewhere; cp -a src elsewhere/src", t.path());
    let build_at = |src: &Path, name: &str, epoch: &str| {
        let iso = t.path().join(name);
        ok(sw(t.path()).args(["iso", "build"]).arg(src).arg("-o").arg(&iso).env("SOURCE_DATE_EPOCH", epoch));
        fs::read(iso).unwrap()
    };
    let a = build_at(&src, "a.iso", "1700000000");
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a clock that leaks shows
    let b = build_at(&src, "b.iso", "1700000000");
    let c = build_at(&copy, "c.iso", "1700000000");
    let d = build_at(&src, "d.iso", "1700000001");
    let first_diff = |x: &[u8], y: &[u8]| x.iter().zip(y).position(|(p, q)| p != q);
    assert!(a == b, "two builds differ (sizes {} / {}, first at byte {:?})", a.len(), b.len(), first_diff(&a, &b));
    assert!(a == c, "a copy of the tree (cp -a) builds other bytes (first at byte {:?})", first_diff(&a, &c));
    assert!(a != d, "SOURCE_DATE_EPOCH does not reach the image");
}

/// A file over 4 GiB needs several ISO 9660 extents. The source is sparse;
/// the image holds 4.3 GB (written sparse or not) and so may the extracted
/// copy: the test wants 9.6 GB free. About 75 s with a debug build (most of
/// it slipway scanning 4 GiB of zeros twice), 15 s with a release build.
#[test]
fn a_file_over_4_gib_reads_back_whole() {
    if !tools(&["xorriso", "bsdtar", "cmp"]) {
        return;
    }
    const SIZE: u64 = (4 << 30) + (1 << 20);
    // Marks at the start, across the first extent's end (4 GiB - 2 KiB), at
    // 4 GiB and at the very end.
    const MARKS: [(u64, &str); 4] =
        [(0, "start"), (4294965248 - 3, "across-the-edge"), (4294967296, "past-4g"), (SIZE - 4, "end!")];
    let t = tempdir();
    let st = rustix::fs::statvfs(t.path()).unwrap();
    let (free, need) = (st.f_bavail * st.f_frsize, 2 * SIZE + (1 << 30));
    if free < need {
        eprintln!("SKIPPED: needs {need} bytes free in {}, has {free}", t.path().display());
        return;
    }
    let started = std::time::Instant::now();
    let (src, iso) = (t.path().join("src"), t.path().join("big.iso"));
    fs::create_dir(&src).unwrap();
    let marks: String = MARKS.iter().map(|(at, m)| format!("put {at} {m}\n")).collect();
    sh(
        &format!(
            "truncate -s {SIZE} big
            put() {{ printf %s \"$2\" | dd of=big bs=1 seek=$1 conv=notrunc status=none; }}
            {marks}
            echo small > small"
        ),
        &src,
    );
    build(t.path(), &src, &iso, &[]);
    same_paths("xorriso -find", &["/big".to_string(), "/small".to_string()], &xorriso_find(&iso));
    let lsl = xorriso(&["-lsl", "/big"], &iso);
    assert!(lsl.contains(&format!(" {SIZE} ")), "xorriso -lsl shows the size {SIZE}:\n{lsl}");
    let v = ok(Command::new("bsdtar").arg("-tvf").arg(&iso));
    assert!(v.contains(&format!(" {SIZE} ")), "bsdtar -tv shows the size {SIZE}:\n{v}");
    sh(&format!("bsdtar -xOf '{}' big | cmp - src/big", iso.display()), t.path());
    let doc = json(&ok(sw(t.path()).args(["iso", "ls"]).arg(&iso).arg("--json")));
    let big = doc["entries"].as_array().unwrap().iter().find(|e| e["path"] == "/big").expect("/big listed").clone();
    assert!(big.as_object().unwrap().values().any(|v| v.as_u64() == Some(SIZE)), "iso ls shows the size: {big}");
    let x = t.path().join("x");
    ok(sw(t.path()).args(["iso", "extract"]).arg(&iso).arg(&x));
    fs::remove_file(&iso).unwrap();
    let mut f = fs::File::open(x.join("big")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), SIZE);
    for (at, mark) in MARKS {
        use std::io::{Read, Seek};
        let mut got = vec![0u8; mark.len() + 2];
        f.seek(std::io::SeekFrom::Start(at - u64::from(at > 0))).unwrap();
        let n = f.read(&mut got).unwrap();
        let want: Vec<u8> =
            if at > 0 { [&[0u8][..], mark.as_bytes(), &[0]].concat() } else { [mark.as_bytes(), &[0, 0]].concat() };
        assert_eq!(&got[..n], &want[..n], "iso extract: bytes around {at}");
    }
    eprintln!("4 GiB file: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn build_from_a_stored_image_writes_its_tree() {
    if !tools(&["bsdtar", "xorriso"]) {
        return;
    }
    let Some(fx) = iso_fixtures() else { return };
    let tree = fx.join("netboot-tree");
    let t = tempdir();
    ok(sw(t.path()).args(["store", "init"]));
    ok(sw(t.path()).arg("capture").arg(&tree).args(["--name", "netboot"]));
    let (a, b) = (t.path().join("from-image.iso"), t.path().join("from-dir.iso"));
    let boot = ["--efi-boot", "boot/efi.img", "--catalog", "boot/boot.cat", "--volume-id", "NETBOOT"];
    ok(sw(t.path())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["iso", "build", "--image", "netboot@1", "-o"])
        .arg(&a)
        .args(boot));
    ok(sw(t.path())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["iso", "build"])
        .arg(&tree)
        .arg("-o")
        .arg(&b)
        .args(boot));
    // The store keeps everything the ISO records, so both builds are the
    // same bytes.
    assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap(), "the builds from the store and the directory differ");
    let x = t.path().join("x");
    fs::create_dir(&x).unwrap();
    ok(Command::new("bsdtar").arg("-xpf").arg(&a).arg("-C").arg(&x));
    // The fixture may belong to root: only root can give bsdtar's copy its owners.
    let comparable = |m: String| {
        m.lines()
            .filter(|l| !l.starts_with("./boot/boot.cat "))
            .map(|l| l.split(' ').filter(|f| is_root() || !f.starts_with("uid=") && !f.starts_with("gid=")))
            .map(|fields| fields.collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_same("mtree of the image's ISO", &comparable(mtree_below(&tree)), &comparable(mtree_below(&x)));
    let (ra, rb) = (boot_report(&a), boot_report(&b));
    assert_eq!(ra.entries_without_lba(), rb.entries_without_lba(), "{}\n{}", ra.text, rb.text);
    assert_eq!((&ra.catalog_path, &ra.paths), (&rb.catalog_path, &rb.paths), "{}\n{}", ra.text, rb.text);
}

// ------------------------------------------------------------------ build: boot records

#[test]
fn boot_records_and_volume_fields_are_where_readers_look() {
    if !tools(&["xorriso", "isoinfo"]) {
        return;
    }
    let Some(fx) = iso_fixtures() else { return };
    let tree = fx.join("netboot-tree");
    let t = tempdir();

    // BIOS + UEFI from an ESP file, catalog where asked.
    let iso = t.path().join("a.iso");
    build(
        t.path(),
        &tree,
        &iso,
        &[
            "--bios-boot",
            "isolinux/isolinux.bin",
            "--efi-boot",
            "boot/efi.img",
            "--catalog",
            "isolinux/boot.cat",
            "--volume-id",
            "NETBOOT",
            "--publisher",
            "SLIPWAY TESTS",
        ],
    );
    let r = boot_report(&iso);
    assert_eq!(r.catalog_path, "/isolinux/boot.cat", "{}", r.text);
    let esp_sectors = (fs::metadata(tree.join("boot/efi.img")).unwrap().len() / 512).to_string();
    assert_eq!(
        r.entries_without_lba(),
        ["1 BIOS y none 0x0000 0x00 4".to_string(), format!("2 UEFI y none 0x0000 0x00 {esp_sectors}")],
        "{}",
        r.text
    );
    assert_eq!(r.paths, ["1 /isolinux/isolinux.bin", "2 /boot/efi.img"], "{}", r.text);
    assert!(r.opts.iter().any(|o| o.starts_with("1 ") && o.contains("boot-info-table")), "{}", r.text);
    // The boot info table isolinux reads: PVD at 16, its own LBA and length,
    // and the checksum of its 32-bit words from byte 64.
    let lba: u64 = r.entries[0].last().unwrap().parse().unwrap();
    let src = fs::read(tree.join("isolinux/isolinux.bin")).unwrap();
    let img = fs::read(&iso).unwrap();
    let bin = &img[(lba * 2048) as usize..(lba * 2048) as usize + src.len()];
    let word = |i: usize| u32::from_le_bytes(bin[i..i + 4].try_into().unwrap());
    let sum = bin[64..].chunks(4).fold(0u32, |s, c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        s.wrapping_add(u32::from_le_bytes(w))
    });
    assert_eq!([word(8), word(12), word(16), word(20)], [16, lba as u32, src.len() as u32, sum], "boot info table");
    assert_eq!(bin[64..], src[64..], "isolinux.bin changed outside its boot info table");
    let d = isoinfo_d(&iso);
    for want in ["Volume id: NETBOOT", "Publisher id: SLIPWAY TESTS", "Joliet with UCS level"] {
        assert!(d.contains(want), "isoinfo -d lacks {want:?}:\n{d}");
    }
    let doc = info(t.path(), &iso);
    assert_eq!(info_platforms(&doc), ["bios", "uefi"], "{doc:#}");
    assert!(has_string(&doc, "NETBOOT"), "{doc:#}");

    // Default catalog, an ESP made from a directory, hybrid, no Joliet.
    let iso = t.path().join("b.iso");
    build(
        t.path(),
        &tree,
        &iso,
        &["--bios-boot", "isolinux/isolinux.bin", "--efi-dir", "EFI", "--hybrid", "--no-joliet"],
    );
    let r = boot_report(&iso);
    assert_eq!(r.catalog_path, "/boot.catalog", "{}", r.text);
    let platforms: Vec<_> = r.entries.iter().map(|e| e[1].as_str()).collect();
    assert_eq!(platforms, ["BIOS", "UEFI"], "{}", r.text);
    assert!(r.summary.contains("MBR"), "a hybrid image has an MBR:\n{}", r.text);
    assert!(
        r.mbr.iter().any(|p| p[2] == "0xef") || !r.gpt_types.is_empty(),
        "a hybrid image with UEFI boot has an EFI system partition (MBR type 0xef or GPT):\n{}",
        r.text
    );
    media_is_good(&iso);
    assert!(!isoinfo_d(&iso).contains("Joliet with UCS level"), "--no-joliet wrote a Joliet tree");
}

// ------------------------------------------------------------------ build: booting

#[test]
fn bios_boot_from_cdrom_reaches_the_kernel() {
    if !require_qemu(&[Firmware::Bios]) {
        return;
    }
    let Some(fx) = iso_fixtures() else { return };
    let t = tempdir();
    let iso = t.path().join("bios.iso");
    build(t.path(), &fx.join("netboot-tree"), &iso, &["--bios-boot", "isolinux/isolinux.bin"]);
    kernel_starts(t.path(), "bios-cdrom", Firmware::Bios, Medium::Cdrom, &iso);
}

#[test]
fn hybrid_image_boots_as_cdrom_and_as_disk_under_bios_and_uefi() {
    if !require_qemu(&[Firmware::Bios, Firmware::Uefi]) {
        return;
    }
    let Some(fx) = iso_fixtures() else { return };
    let t = tempdir();
    let iso = t.path().join("hybrid.iso");
    let args = ["--bios-boot", "isolinux/isolinux.bin", "--efi-dir", "EFI", "--hybrid"];
    build(t.path(), &fx.join("netboot-tree"), &iso, &args);
    kernel_starts(t.path(), "hybrid-uefi-cdrom", Firmware::Uefi, Medium::Cdrom, &iso);
    kernel_starts(t.path(), "hybrid-bios-disk", Firmware::Bios, Medium::Disk, &iso);
    kernel_starts(t.path(), "hybrid-uefi-disk", Firmware::Uefi, Medium::Disk, &iso);
}

#[test]
fn uefi_boot_from_an_esp_image_file_reaches_the_kernel() {
    if !require_qemu(&[Firmware::Uefi]) {
        return;
    }
    let Some(fx) = iso_fixtures() else { return };
    let t = tempdir();
    let iso = t.path().join("uefi.iso");
    build(t.path(), &fx.join("netboot-tree"), &iso, &["--efi-boot", "boot/efi.img"]);
    kernel_starts(t.path(), "esp-file-uefi-cdrom", Firmware::Uefi, Medium::Cdrom, &iso);
}

// ------------------------------------------------------------------ vendor images

/// xorriso and bsdtar, QEMU with both firmwares, and the vendor image.
fn vendor_ready(iso: &str, package: &str) -> bool {
    tools(&["xorriso", "bsdtar"]) && require_qemu(&[Firmware::Bios, Firmware::Uefi]) && require_file(iso, package)
}

#[test]
fn ipxe_iso_with_a_folder_added_keeps_its_boot_records_and_still_boots() {
    if !vendor_ready(IPXE_ISO, "ipxe") {
        return;
    }
    let t = tempdir();
    sh("mkdir -p extra/sub; echo 'hello from slipway' > extra/hello.txt; echo deeper > extra/sub/deeper.txt", t.path());
    let out = t.path().join("ipxe-edited.iso");
    let add = format!("{}:/extra", t.path().join("extra").display());
    ok(sw(t.path()).args(["iso", "edit", IPXE_ISO, "-o"]).arg(&out).args(["--add", &add]));
    let layout = boot_layout_differences(Path::new(IPXE_ISO), &out);
    layout.iter().for_each(|d| eprintln!("{d}"));
    listing_after_edit(
        Path::new(IPXE_ISO),
        &out,
        &["/extra", "/extra/hello.txt", "/extra/sub", "/extra/sub/deeper.txt"],
        &[],
    );
    media_is_good(&out);
    assert_eq!(ok(Command::new("bsdtar").arg("-xOf").arg(&out).arg("extra/hello.txt")), "hello from slipway\n");
    ipxe_asks_for_its_boot_file(t.path(), "ipxe-edited-bios-cdrom", Firmware::Bios, Medium::Cdrom, &out);
    ipxe_asks_for_its_boot_file(t.path(), "ipxe-edited-bios-disk", Firmware::Bios, Medium::Disk, &out);
    ipxe_asks_for_its_boot_file(t.path(), "ipxe-edited-uefi-cdrom", Firmware::Uefi, Medium::Cdrom, &out);
    no_layout_differences(&layout);
}

#[test]
fn memtest_iso_without_its_efi_folder_keeps_its_boot_records_and_still_boots() {
    if !vendor_ready(MEMTEST_ISO, "memtest86+") || !tools(&["isoinfo"]) {
        return;
    }
    let t = tempdir();
    sh("echo 'hello from slipway' > hello.txt", t.path());
    let out = t.path().join("memtest-edited.iso");
    let add = format!("{}:/hello.txt", t.path().join("hello.txt").display());
    ok(sw(t.path()).args(["iso", "edit", MEMTEST_ISO, "-o"]).arg(&out).args([
        "--add",
        &add,
        "--rm",
        "/EFI",
        "--volume-id",
        "MEMTEST_EDITED",
    ]));
    // The UEFI entry boots an image appended after the filesystem, not
    // /EFI/BOOT/bootx64.efi: it survives the folder's removal.
    let layout = boot_layout_differences(Path::new(MEMTEST_ISO), &out);
    layout.iter().for_each(|d| eprintln!("{d}"));
    listing_after_edit(Path::new(MEMTEST_ISO), &out, &["/hello.txt"], &["/EFI"]);
    media_is_good(&out);
    let d = isoinfo_d(&out);
    assert!(d.contains("Volume id: MEMTEST_EDITED"), "{d}");
    memtest_runs(t.path(), "memtest-edited-bios-cdrom", Firmware::Bios, Medium::Cdrom, &out);
    memtest_runs(t.path(), "memtest-edited-uefi-cdrom", Firmware::Uefi, Medium::Cdrom, &out);
    no_layout_differences(&layout);
}

#[test]
fn grub_rescue_iso_with_fonts_removed_and_menu_replaced_still_boots() {
    if !vendor_ready(GRUB_RESCUE_ISO, "grub-rescue-pc") {
        return;
    }
    let t = tempdir();
    sh(
        "echo 'hello from slipway' > hello.txt
        printf 'set timeout=60\\nmenuentry \"slipway replaced this menu\" {\\n  echo hi\\n}\\n' > grub.cfg",
        t.path(),
    );
    let out = t.path().join("grub-edited.iso");
    let add = format!("{}:/boot/hello.txt", t.path().join("hello.txt").display());
    let replace = format!("{}:/boot/grub/grub.cfg", t.path().join("grub.cfg").display());
    ok(sw(t.path()).args(["iso", "edit", GRUB_RESCUE_ISO, "-o"]).arg(&out).args([
        "--add",
        &add,
        "--rm",
        "/boot/grub/fonts",
        "--replace",
        &replace,
    ]));
    let layout = boot_layout_differences(Path::new(GRUB_RESCUE_ISO), &out);
    layout.iter().for_each(|d| eprintln!("{d}"));
    listing_after_edit(Path::new(GRUB_RESCUE_ISO), &out, &["/boot/hello.txt"], &["/boot/grub/fonts"]);
    media_is_good(&out);
    // GRUB finds its core via the GRUB 2 boot info and its modules and menu
    // in the filesystem: the new menu on screen shows all three.
    let entry = "slipway replaced this menu";
    grub_menu_shows(t.path(), "grub-edited-bios-cdrom", Medium::Cdrom, &out, entry);
    grub_menu_shows(t.path(), "grub-edited-bios-disk", Medium::Disk, &out, entry);
    no_layout_differences(&layout);
}

#[test]
fn ls_and_info_read_vendor_images() {
    if !tools(&["xorriso"]) {
        return;
    }
    let t = tempdir();
    for (iso, package, volume, platforms) in [
        (IPXE_ISO, "ipxe", "ISOIMAGE", &["bios", "uefi"][..]),
        (MEMTEST_ISO, "memtest86+", "MT86PLUS_64", &["bios", "uefi"]),
        (GRUB_RESCUE_ISO, "grub-rescue-pc", "ISOIMAGE", &["bios"]),
    ] {
        if !require_file(iso, package) {
            continue;
        }
        let doc = json(&ok(sw(t.path()).args(["iso", "ls", iso, "--recursive", "--json"])));
        same_paths(&format!("iso ls -R of {iso}"), &xorriso_find(Path::new(iso)), &ls_paths(&doc));
        let doc = info(t.path(), Path::new(iso));
        assert!(has_string(&doc, volume), "{iso}: volume id {volume}:\n{doc:#}");
        assert_eq!(info_platforms(&doc), platforms, "{iso}:\n{doc:#}");
    }
}

// ------------------------------------------------------------------ errors

#[test]
fn bad_boot_paths_and_damaged_images_give_errors_that_name_the_file() {
    let t = tempdir();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    sh("mkdir isolinux; echo x > isolinux/readme; head -c 1000000 /dev/urandom > data.bin", &src);
    let outdir = t.path().join("out");
    fs::create_dir(&outdir).unwrap();
    let refused = |o: &std::process::Output, what: &str, name: &str| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{what} succeeded");
        assert!(!err.contains("panicked") && o.status.code() != Some(101), "{what} panicked:\n{err}");
        assert!(err.contains(name), "{what}: the message does not name {name}:\n{err}");
    };
    for (arg, name) in [("isolinux/missing.bin", "missing.bin"), ("isolinux", "isolinux")] {
        let o = out(sw(t.path())
            .args(["iso", "build"])
            .arg(&src)
            .arg("-o")
            .arg(outdir.join("x.iso"))
            .args(["--bios-boot", arg]));
        refused(&o, &format!("iso build --bios-boot {arg}"), name);
        let left: Vec<_> = fs::read_dir(&outdir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "a failed build left {left:?} behind");
    }

    let good = t.path().join("good.iso");
    build(t.path(), &src, &good, &[]);
    let bytes = fs::read(&good).unwrap();
    let damaged = [
        ("head.iso", bytes[..34 * 1024].to_vec()), // the primary volume descriptor, nothing after
        ("empty.iso", Vec::new()),
        ("random.bin", (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
    ];
    for (name, content) in damaged {
        let p = t.path().join(name);
        fs::write(&p, content).unwrap();
        refused(&out(sw(t.path()).args(["iso", "ls"]).arg(&p)), &format!("iso ls {name}"), name);
        let o = out(sw(t.path()).args(["iso", "info"]).arg(&p));
        if name == "head.iso" {
            // The volume descriptor is whole: info may show it.
            assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"), "iso info head.iso panicked");
        } else {
            refused(&o, &format!("iso info {name}"), name);
        }
        let x = t.path().join(format!("{name}.x"));
        refused(&out(sw(t.path()).args(["iso", "extract"]).arg(&p).arg(&x)), &format!("iso extract {name}"), name);
    }
    // Cut inside data.bin's extent: listing may work, extracting must not.
    let p = t.path().join("cut.iso");
    fs::write(&p, &bytes[..bytes.len() - 300_000]).unwrap();
    let o = out(sw(t.path()).args(["iso", "ls", "--recursive"]).arg(&p));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"), "iso ls cut.iso panicked");
    refused(
        &out(sw(t.path()).args(["iso", "extract"]).arg(&p).arg(t.path().join("cut-x"))),
        "iso extract cut.iso",
        "cut.iso",
    );
}

// ------------------------------------------------------------------ the checks themselves

/// Builds the netboot images with xorriso (the mkisofs options of
/// research/baseline.md §4) and edits the vendor images with xorriso
/// (`-boot_image any replay`), then runs every check above on them and on
/// the unedited vendor images: if one fails here, the check is wrong, not
/// slipway.
#[test]
#[ignore = "checks the checks (about 3 minutes of QEMU): cargo test --test iso -- --ignored"]
fn boot_checks_work_on_xorriso_and_vendor_images() {
    if !tools(&["xorriso", "bsdtar"]) || !require_qemu(&[Firmware::Bios, Firmware::Uefi]) {
        return;
    }
    let Some(fx) = iso_fixtures() else { return };
    for (iso, package) in [(IPXE_ISO, "ipxe"), (MEMTEST_ISO, "memtest86+"), (GRUB_RESCUE_ISO, "grub-rescue-pc")] {
        if !require_file(iso, package) {
            return;
        }
    }
    let t = tempdir();
    let dir = t.path();
    let tree = fx.join("netboot-tree");
    let mkisofs = |out: &Path, extra: &[&str]| {
        let mut c = Command::new("xorriso");
        c.args(["-as", "mkisofs", "-R", "-J", "-b", "isolinux/isolinux.bin", "-c", "boot.catalog"]);
        c.args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"]).args(extra);
        ok(c.arg("-o").arg(out).arg(&tree));
    };
    let (bios, hybrid) = (dir.join("xorriso-bios.iso"), dir.join("xorriso-hybrid.iso"));
    mkisofs(&bios, &[]);
    let hybrid_args = [
        "-eltorito-alt-boot",
        "-e",
        "boot/efi.img",
        "-no-emul-boot",
        "-isohybrid-mbr",
        "/usr/lib/ISOLINUX/isohdpfx.bin",
        "-isohybrid-gpt-basdat",
    ];
    mkisofs(&hybrid, &hybrid_args);
    kernel_starts(dir, "xorriso-bios-cdrom", Firmware::Bios, Medium::Cdrom, &bios);
    kernel_starts(dir, "xorriso-hybrid-uefi-cdrom", Firmware::Uefi, Medium::Cdrom, &hybrid);
    kernel_starts(dir, "xorriso-hybrid-bios-disk", Firmware::Bios, Medium::Disk, &hybrid);
    kernel_starts(dir, "xorriso-hybrid-uefi-disk", Firmware::Uefi, Medium::Disk, &hybrid);

    let ipxe = Path::new(IPXE_ISO);
    ipxe_asks_for_its_boot_file(dir, "ipxe-bios-cdrom", Firmware::Bios, Medium::Cdrom, ipxe);
    ipxe_asks_for_its_boot_file(dir, "ipxe-bios-disk", Firmware::Bios, Medium::Disk, ipxe);
    ipxe_asks_for_its_boot_file(dir, "ipxe-uefi-cdrom", Firmware::Uefi, Medium::Cdrom, ipxe);
    memtest_runs(dir, "memtest-bios-cdrom", Firmware::Bios, Medium::Cdrom, Path::new(MEMTEST_ISO));
    memtest_runs(dir, "memtest-uefi-cdrom", Firmware::Uefi, Medium::Cdrom, Path::new(MEMTEST_ISO));
    let grub = Path::new(GRUB_RESCUE_ISO);
    grub_menu_shows(dir, "grub-bios-cdrom", Medium::Cdrom, grub, "GNU/Linux");
    grub_menu_shows(dir, "grub-bios-disk", Medium::Disk, grub, "GNU/Linux");

    // The layout and listing checks accept what xorriso's own editor makes.
    sh("echo hello > hello.txt; mkdir -p extra; echo hi > extra/hello.txt", dir);
    let edit = |input: &str, out: &Path, ops: &[&str]| {
        let mut c = Command::new("xorriso");
        c.args(["-indev", input, "-outdev"]).arg(out).args(["-boot_image", "any", "replay"]).args(ops);
        ok(c.arg("-commit").current_dir(dir));
    };
    let out = dir.join("ipxe-xorriso.iso");
    edit(IPXE_ISO, &out, &["-map", "extra", "/extra"]);
    no_layout_differences(&boot_layout_differences(ipxe, &out));
    listing_after_edit(ipxe, &out, &["/extra", "/extra/hello.txt"], &[]);
    let out = dir.join("memtest-xorriso.iso");
    edit(MEMTEST_ISO, &out, &["-map", "hello.txt", "/hello.txt", "-rm_r", "/EFI", "--"]);
    no_layout_differences(&boot_layout_differences(Path::new(MEMTEST_ISO), &out));
    listing_after_edit(Path::new(MEMTEST_ISO), &out, &["/hello.txt"], &["/EFI"]);
    let out = dir.join("grub-xorriso.iso");
    edit(GRUB_RESCUE_ISO, &out, &["-map", "hello.txt", "/boot/hello.txt", "-rm_r", "/boot/grub/fonts", "--"]);
    no_layout_differences(&boot_layout_differences(grub, &out));
    listing_after_edit(grub, &out, &["/boot/hello.txt"], &["/boot/grub/fonts"]);
}

/// The layout Debian's own installer images have: made by xorriso with an
/// isohybrid MBR, a GPT and the ESP as a file (`-isohybrid-gpt-basdat`).
/// Edited, it keeps that layout and still boots from a disk under both
/// firmwares and from a CD under UEFI.
#[test]
fn xorriso_hybrid_gpt_image_edited_keeps_its_gpt_and_still_boots() {
    if !tools(&["xorriso", "bsdtar"]) || !require_qemu(&[Firmware::Bios, Firmware::Uefi]) {
        return;
    }
    if !require_file("/usr/lib/ISOLINUX/isohdpfx.bin", "isolinux") {
        return;
    }
    let Some(fx) = iso_fixtures() else { return };
    let t = tempdir();
    let input = t.path().join("debian-like.iso");
    let o = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-r", "-J", "-joliet-long", "-V", "DEBIAN_LIKE"])
        .args(["-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin"])
        .args(["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4"])
        .args(["-boot-info-table", "-eltorito-alt-boot", "-e", "boot/efi.img", "-no-emul-boot"])
        .args(["-isohybrid-gpt-basdat", "-o"])
        .arg(&input)
        .arg(fx.join("netboot-tree"))
        .output()
        .unwrap();
    assert!(o.status.success(), "xorriso: {}", String::from_utf8_lossy(&o.stderr));
    sh("mkdir -p pool/main; head -c 3000000 /dev/urandom > pool/main/blob.deb", t.path());
    let out = t.path().join("debian-like-edited.iso");
    let add = format!("{}:/pool", t.path().join("pool").display());
    ok(sw(t.path()).args(["iso", "edit"]).arg(&input).arg("-o").arg(&out).args(["--add", &add, "--rm", "/EFI"]));
    let layout = boot_layout_differences(&input, &out);
    layout.iter().for_each(|d| eprintln!("{d}"));
    // UEFI boots boot/efi.img, so the loose /EFI folder can go.
    listing_after_edit(&input, &out, &["/pool", "/pool/main", "/pool/main/blob.deb"], &["/EFI"]);
    media_is_good(&out);
    let r = boot_report(&out);
    assert!(r.summary.contains("GPT"), "the GPT did not carry over:\n{}", r.text);
    kernel_starts(t.path(), "debian-like-edited-bios-disk", Firmware::Bios, Medium::Disk, &out);
    kernel_starts(t.path(), "debian-like-edited-uefi-disk", Firmware::Uefi, Medium::Disk, &out);
    no_layout_differences(&layout);
}
