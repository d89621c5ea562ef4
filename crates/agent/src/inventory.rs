//! The machine's hardware and software inventory, as `slipway agent`
//! reports it: read from `/proc`, `/sys`, `/etc/os-release` and slipway's
//! own servicing state, never by running a tool.
//!
//! Everything is read below [`Sources::root`] ("/" on a real machine, a fake
//! tree in the tests). Only `proc/cpuinfo` and `proc/meminfo` are required;
//! any other source that is missing or unreadable (no DMI in a container,
//! the DMI serial being root-only, a link speed the driver refuses to give)
//! leaves its value out. What is reported:
//!
//! - **disks**: entries of `sys/block` with a `device` entry (a piece of
//!   hardware, so no loop, ram, zram, dm, md or nbd device, which live under
//!   `devices/virtual`) and a non-zero size; also never `loop*`, `ram*`,
//!   `zram*`, `dm-*`, `md*` whatever sysfs says, nor the drives images are
//!   not deployed to: optical (`sr*`), floppy (`fd*`), eMMC boot and RPMB
//!   areas (`mmcblk*boot*`, `mmcblk*rpmb`), and hidden NVMe multipath paths
//!   (`hidden` = 1).
//! - **NICs**: entries of `sys/class/net` with a `device` entry and an
//!   address (physical interfaces: no `lo`, bridge, bond, VLAN, veth, tun).
//! - **DMI**: values that firmware vendors leave as placeholders are treated
//!   as missing (see [`DMI_PLACEHOLDERS`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use slipway_api::{Cpu, Disk, Dmi, Firmware, InstalledPackage, Inventory, Nic, OsRelease, Target};

/// Where to read from: "/" on a real machine; tests point it at a fake tree
/// holding `sys/`, `proc/`, `etc/`.
///
/// Symlinks inside the tree are followed as the host would (an absolute
/// `etc/os-release` link in a fake tree points at the host's file, so the
/// tree then falls back to `usr/lib/os-release` only if that is dangling).
#[derive(Clone, Debug)]
pub struct Sources {
    pub root: PathBuf,
}

/// The running machine: `/`.
impl Default for Sources {
    fn default() -> Sources {
        Sources { root: PathBuf::from("/") }
    }
}

impl Sources {
    fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// Reads the inventory. Never fails for a missing or unreadable optional
/// source; fails only if `proc/meminfo` or `proc/cpuinfo` is unreadable or
/// `proc/meminfo` has no `MemTotal`. Leaves `target` and `extra` empty: the
/// agent fills them.
pub fn gather(src: &Sources) -> anyhow::Result<Inventory> {
    let cpuinfo = read_required(&src.path("proc/cpuinfo"))?;
    let meminfo_path = src.path("proc/meminfo");
    let meminfo = read_required(&meminfo_path)?;
    let memory_mb =
        mem_total_mb(&meminfo).with_context(|| format!("{} has no MemTotal line", meminfo_path.display()))?;
    Ok(Inventory {
        arch: arch(src),
        firmware: firmware(src),
        hostname: hostname(src),
        cpu: parse_cpuinfo(&cpuinfo),
        memory_mb,
        disk: entries(&src.path("sys/block")).into_iter().filter_map(|(name, dir)| disk(name, &dir)).collect(),
        nic: entries(&src.path("sys/class/net")).into_iter().filter_map(|(name, dir)| nic(name, &dir)).collect(),
        dmi: dmi(&src.path("sys/class/dmi/id")),
        os: os_release(src),
        packages: installed_packages(&src.root),
        target: None,
        extra: BTreeMap::new(),
    })
}

/// Free and total bytes of the filesystem holding `dir` (`statvfs`: free is
/// `f_bavail * f_frsize`, what an unprivileged writer may use).
pub fn target(dir: &Path) -> anyhow::Result<Target> {
    let st = rustix::fs::statvfs(dir).with_context(|| format!("reading the free space of {}", dir.display()))?;
    Ok(Target {
        path: dir.display().to_string(),
        free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
    })
}

/// The servicing state of a root, relative to it (`docs/package-format.md`
/// §12.2; `slipway_package::state`).
#[cfg(test)]
const STATE_FILE: &str = "var/lib/slipway/state.json";

/// The slipway update packages installed (or integrated) in a root, in
/// install order, from `<root>/var/lib/slipway/state.json`: its `id`,
/// `title` (as `name`) and `version`. Empty when there is no state, when it
/// is not JSON or its `format` is not 1; an entry lacking one of the three
/// strings is left out. Inventory never fails on it: `slipway verify`
/// is what reports a damaged state.
pub fn installed_packages(root: &Path) -> Vec<InstalledPackage> {
    // The servicing engine's own reader; a missing state is an empty list,
    // a damaged one is left out of the inventory rather than failing it.
    match slipway_package::state::State::load(root) {
        Ok(s) => s
            .packages
            .iter()
            .map(|p| InstalledPackage { id: p.id.clone(), name: p.title.clone(), version: p.version.clone() })
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn read_required(path: &Path) -> anyhow::Result<String> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A small text file (a sysfs attribute), trimmed; `None` when it is
/// missing, unreadable (sysfs answers `EINVAL` for a speed with the link
/// down) or blank.
fn read_text(path: &Path) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn read_u64(path: &Path) -> Option<u64> {
    read_text(path)?.parse().ok()
}

fn read_flag(path: &Path) -> bool {
    read_text(path).as_deref() == Some("1")
}

/// Whether `path` exists, without following a final symlink (sysfs
/// `device` is a link).
fn present(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// The entries of a directory with UTF-8 names, sorted by name; empty when
/// it cannot be read.
fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, PathBuf)> =
        rd.filter_map(|e| e.ok()).filter_map(|e| Some((e.file_name().into_string().ok()?, e.path()))).collect();
    out.sort();
    out
}

/// `uname -m` on the host. For another root, its `proc/sys/kernel/arch`
/// (kernel 6.1 and later), else `uname -m` of the machine running this.
fn arch(src: &Sources) -> String {
    if !src.is_host() {
        if let Some(a) = read_text(&src.path("proc/sys/kernel/arch")) {
            return a;
        }
    }
    rustix::system::uname().machine().to_string_lossy().into_owned()
}

/// UEFI when `sys/firmware/efi` exists, BIOS when it does not; unknown
/// without a `sys` at all.
fn firmware(src: &Sources) -> Option<Firmware> {
    if !src.path("sys").is_dir() {
        return None;
    }
    Some(if src.path("sys/firmware/efi").is_dir() { Firmware::Uefi } else { Firmware::Bios })
}

/// `proc/sys/kernel/hostname`, else the first line of `etc/hostname` that is
/// not a comment, else (on the host) `uname -n`.
fn hostname(src: &Sources) -> String {
    if let Some(h) = read_text(&src.path("proc/sys/kernel/hostname")) {
        return h;
    }
    let from_etc = read_text(&src.path("etc/hostname"))
        .and_then(|t| t.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned));
    match from_etc {
        Some(h) => h,
        None if src.is_host() => rustix::system::uname().nodename().to_string_lossy().into_owned(),
        None => String::new(),
    }
}

/// Keys naming the processor model, by preference: x86 and most others,
/// MIPS, POWER, RISC-V. (arm64 names none: the model is left empty.)
const CPU_MODEL_KEYS: &[&str] = &["model name", "cpu model", "cpu", "uarch"];

fn parse_cpuinfo(text: &str) -> Cpu {
    // One record per logical CPU: its (physical id, core id).
    let mut records: Vec<(Option<&str>, Option<&str>)> = Vec::new();
    let mut models: [Option<&str>; CPU_MODEL_KEYS.len()] = [None; CPU_MODEL_KEYS.len()];
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let (key, value) = (key.trim(), value.trim());
        // s390x writes `processor 0: ...`.
        if key == "processor" || key.strip_prefix("processor ").is_some_and(|n| n.parse::<u32>().is_ok()) {
            records.push((None, None));
        } else if key == "physical id" {
            if let Some(r) = records.last_mut() {
                r.0 = Some(value);
            }
        } else if key == "core id" {
            if let Some(r) = records.last_mut() {
                r.1 = Some(value);
            }
        } else if let Some(i) = CPU_MODEL_KEYS.iter().position(|k| *k == key) {
            if models[i].is_none() && !value.is_empty() {
                models[i] = Some(value);
            }
        }
    }
    let threads = u32::try_from(records.len()).unwrap_or(u32::MAX);
    let pairs: BTreeSet<(&str, &str)> = records.iter().filter_map(|(p, c)| Some((p.unwrap_or("0"), (*c)?))).collect();
    let cores = if pairs.is_empty() { threads } else { u32::try_from(pairs.len()).unwrap_or(u32::MAX) };
    let model = models.iter().flatten().next().map(|m| (*m).to_owned()).unwrap_or_default();
    Cpu { model, cores, threads }
}

/// `MemTotal` of `/proc/meminfo` (in kB) in MiB.
fn mem_total_mb(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kb / 1024)
}

/// Block devices never reported, by kernel name prefix: virtual ones, and
/// optical and floppy drives.
const SKIPPED_DISK_PREFIXES: &[&str] = &["loop", "ram", "zram", "dm-", "md", "nbd", "sr", "fd"];

fn disk(name: String, dir: &Path) -> Option<Disk> {
    if SKIPPED_DISK_PREFIXES.iter().any(|p| name.starts_with(p))
        || (name.starts_with("mmcblk") && (name.contains("boot") || name.ends_with("rpmb")))
        || !present(&dir.join("device"))
        || read_flag(&dir.join("hidden"))
    {
        return None;
    }
    // `size` counts 512-byte sectors whatever the logical block size.
    let size_bytes = read_u64(&dir.join("size"))?.checked_mul(512).filter(|s| *s > 0)?;
    let serial = read_text(&dir.join("device/serial"))
        .or_else(|| read_text(&dir.join("serial")))
        .or_else(|| vpd_serial(&dir.join("device/vpd_pg80")));
    Some(Disk {
        model: read_text(&dir.join("device/model")),
        serial,
        rotational: read_flag(&dir.join("queue/rotational")),
        removable: read_flag(&dir.join("removable")),
        name,
        size_bytes,
    })
}

/// The unit serial number of a SCSI/SATA disk: VPD page 0x80 as sysfs
/// gives it (4-byte header whose last two bytes are the length, then the
/// serial, space padded).
fn vpd_serial(path: &Path) -> Option<String> {
    let page = fs::read(path).ok()?;
    if page.len() < 4 || page[1] != 0x80 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([page[2], page[3]]));
    let body = page.get(4..)?;
    let body = &body[..len.min(body.len())];
    let serial = String::from_utf8_lossy(body);
    let serial = serial.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!serial.is_empty()).then(|| serial.to_owned())
}

fn nic(name: String, dir: &Path) -> Option<Nic> {
    if name == "lo" || !present(&dir.join("device")) {
        return None;
    }
    let mac = read_text(&dir.join("address"))?.to_ascii_lowercase();
    // -1 (or EINVAL) when the link is down or the driver does not know.
    let speed_mbps =
        read_text(&dir.join("speed")).and_then(|s| s.parse::<i64>().ok()).and_then(|s| u32::try_from(s).ok());
    let speed_mbps = speed_mbps.filter(|s| *s > 0);
    let driver = fs::read_link(dir.join("device/driver"))
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
    Some(Nic { name, mac, speed_mbps, driver })
}

/// DMI values firmware leaves as placeholders, compared without regard to
/// case. Also a placeholder: a value made only of `0`s or only of `F`s
/// (ignoring `-`, `:`, `.` and spaces), such as the all-zero UUID, and the
/// UUID AMI firmware ships, `03000200-0400-0500-0006-000700080009`.
pub const DMI_PLACEHOLDERS: &[&str] = &[
    "None",
    "N/A",
    "NA",
    "Unknown",
    "Not Specified",
    "Not Applicable",
    "Not Available",
    "Not Present",
    "Default string",
    "To Be Filled By O.E.M.",
    "O.E.M.",
    "OEM",
    "System manufacturer",
    "System Product Name",
    "System Serial Number",
    "System Version",
    "0123456789",
    "03000200-0400-0500-0006-000700080009",
];

fn is_dmi_placeholder(value: &str) -> bool {
    if DMI_PLACEHOLDERS.iter().any(|p| p.eq_ignore_ascii_case(value)) {
        return true;
    }
    let mut digits = value.chars().filter(|c| !matches!(c, '-' | ':' | '.' | ' '));
    match digits.next() {
        None => true,
        Some(first @ ('0' | 'f' | 'F')) => digits.all(|c| c.eq_ignore_ascii_case(&first)),
        Some(_) => false,
    }
}

fn dmi(dir: &Path) -> Dmi {
    let get = |file: &str| read_text(&dir.join(file)).filter(|v| !is_dmi_placeholder(v));
    Dmi {
        vendor: get("sys_vendor"),
        model: get("product_name"),
        serial: get("product_serial"),
        uuid: get("product_uuid").map(|u| u.to_ascii_lowercase()),
        bios_vendor: get("bios_vendor"),
        bios_version: get("bios_version"),
    }
}

/// `etc/os-release`, else `usr/lib/os-release` (os-release(5)); `ID`
/// defaults to `linux` as that page says.
fn os_release(src: &Sources) -> Option<OsRelease> {
    let bytes = ["etc/os-release", "usr/lib/os-release"].iter().find_map(|rel| fs::read(src.path(rel)).ok())?;
    let text = String::from_utf8_lossy(&bytes);
    let (mut id, mut version_id, mut pretty_name) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = Some(unquote(value.trim())).filter(|v| !v.is_empty());
        match key.trim() {
            "ID" => id = value,
            "VERSION_ID" => version_id = value,
            "PRETTY_NAME" => pretty_name = value,
            _ => {}
        }
    }
    Some(OsRelease { id: id.unwrap_or_else(|| "linux".to_owned()), version_id, pretty_name })
}

/// A shell word as os-release(5) allows it: `'...'` literally, `"..."` with
/// `\"`, `\\`, `` \` `` and `\$` escapes, a backslash outside quotes
/// escaping the next character. An unterminated quote runs to the end.
fn unquote(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => out.extend(chars.by_ref().take_while(|c| *c != '\'')),
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '`' | '$')) => out.push(e),
                            Some(e) => out.extend(['\\', e]),
                            None => out.push('\\'),
                        },
                        _ => out.push(c),
                    }
                }
            }
            '\\' => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn put(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn mkdir(root: &Path, rel: &str) {
        fs::create_dir_all(root.join(rel)).unwrap();
    }

    const CPUINFO: &str = "\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2620 v4 @ 2.10GHz
physical id\t: 0
core id\t\t: 0

processor\t: 1
model name\t: Intel(R) Xeon(R) CPU E5-2620 v4 @ 2.10GHz
physical id\t: 0
core id\t\t: 1

processor\t: 2
model name\t: Intel(R) Xeon(R) CPU E5-2620 v4 @ 2.10GHz
physical id\t: 0
core id\t\t: 0

processor\t: 3
model name\t: Intel(R) Xeon(R) CPU E5-2620 v4 @ 2.10GHz
physical id\t: 0
core id\t\t: 1
";

    /// The example of docs/package-format.md §12.2.
    const STATE_JSON: &str = r#"{
  "format": 1,
  "packages": [
    {
      "id": "HF-1", "title": "App fix", "version": "1.0", "kind": "hotfix", "mode": "installed",
      "when": "2026-11-23T01:02:42Z", "source": "p1.slwpkg", "signer": "3C370E91D1E44858",
      "package_blake3": "26fd6e267d96907f7f593f3ee884eea32a1bcab3fdf525b438002621af5e608e",
      "supersedes": [], "requires": [],
      "changes": [
        {
          "path": "etc/app/app.conf",
          "below": { "kind": "file", "blake3": "b4ec7bb0201bd4757b3e1839a5cf7bb1157c3318e4c34bc4df72ebfcb6e5a559",
                     "size": 12, "mode": 420, "uid": 0, "gid": 0, "mtime": [1795395747, 518735420] },
          "above": { "kind": "file", "blake3": "0dc90f2232038b7bac93e2d5051ceb6f57151ac77a24f2c97be569d4bbc71462",
                     "size": 12, "mode": 420, "uid": 0, "gid": 0, "mtime": [1795395747, 538735421] },
          "version": "1.1-1", "below_version": "1.0-1"
        }
      ]
    },
    { "id": "SP-2", "title": "Service pack 2", "version": "2.0", "kind": "service-pack",
      "mode": "integrated", "when": "2026-11-24T00:00:00Z", "source": "sp2.slwpkg",
      "package_blake3": "00", "changes": [] }
  ]
}"#;

    /// A QEMU/KVM-like machine with a few oddities the filters must handle.
    fn fake_machine(root: &Path) {
        put(root, "proc/sys/kernel/arch", "x86_64\n");
        put(root, "proc/sys/kernel/hostname", "node1\n");
        put(root, "etc/hostname", "not-this-one\n");
        put(root, "proc/cpuinfo", CPUINFO);
        put(root, "proc/meminfo", "MemTotal:        8154764 kB\nMemFree:         1000000 kB\n");
        mkdir(root, "sys/firmware/efi/efivars");

        // A virtio disk: serial beside the disk, no model.
        mkdir(root, "sys/block/vda/device");
        put(root, "sys/block/vda/size", "41943040\n");
        put(root, "sys/block/vda/serial", "vd-0001\n");
        put(root, "sys/block/vda/queue/rotational", "1\n");
        put(root, "sys/block/vda/removable", "0\n");
        // NVMe keeps model and serial on the controller, space padded.
        put(root, "sys/block/nvme0n1/device/model", "Samsung SSD 980 PRO 1TB                 \n");
        put(root, "sys/block/nvme0n1/device/serial", "S5GXNF0R123456      \n");
        put(root, "sys/block/nvme0n1/size", "1953525168\n");
        put(root, "sys/block/nvme0n1/queue/rotational", "0\n");
        put(root, "sys/block/nvme0n1/removable", "0\n");
        // A SATA disk: serial only in VPD page 0x80.
        put(root, "sys/block/sda/device/model", "WDC WD40EFRX-68N\n");
        put(root, "sys/block/sda/device/vpd_pg80", b"\x00\x80\x00\x0c  WD-WCC7K1\x00\x00");
        put(root, "sys/block/sda/size", "7814037168\n");
        put(root, "sys/block/sda/queue/rotational", "1\n");
        put(root, "sys/block/sda/removable", "0\n");
        // Skipped: a card reader with no card, a loop device (even one that
        // looks like hardware), an optical drive, a device-mapper volume.
        mkdir(root, "sys/block/sdb/device");
        put(root, "sys/block/sdb/size", "0\n");
        put(root, "sys/block/sdb/removable", "1\n");
        mkdir(root, "sys/block/loop0/device");
        put(root, "sys/block/loop0/size", "2048\n");
        put(root, "sys/block/sr0/device/model", "QEMU DVD-ROM\n");
        put(root, "sys/block/sr0/size", "2097152\n");
        put(root, "sys/block/sr0/removable", "1\n");
        put(root, "sys/block/dm-0/size", "2048\n");

        put(root, "sys/class/net/lo/address", "00:00:00:00:00:00\n");
        put(root, "sys/class/net/ens3/address", "52:54:00:AB:CD:EF\n");
        put(root, "sys/class/net/ens3/speed", "1000\n");
        mkdir(root, "sys/class/net/ens3/device");
        symlink("../../../bus/virtio/drivers/virtio_net", root.join("sys/class/net/ens3/device/driver")).unwrap();
        put(root, "sys/class/net/br0/address", "52:54:00:ab:cd:ef\n");
        put(root, "sys/class/net/br0/speed", "10000\n");
        put(root, "sys/class/net/eth1/address", "52:54:00:00:00:02\n");
        put(root, "sys/class/net/eth1/speed", "-1\n");
        mkdir(root, "sys/class/net/eth1/device");

        let dmi = "sys/class/dmi/id";
        put(root, &format!("{dmi}/sys_vendor"), "QEMU\n");
        put(root, &format!("{dmi}/product_name"), "Standard PC (Q35 + ICH9, 2009)\n");
        put(root, &format!("{dmi}/product_serial"), "To Be Filled By O.E.M.\n");
        put(root, &format!("{dmi}/product_uuid"), "4C4C4544-0042-3510-8058-B4C04F4B4E32\n");
        put(root, &format!("{dmi}/bios_vendor"), "SeaBIOS\n");
        put(root, &format!("{dmi}/bios_version"), "   \n");

        put(
            root,
            "etc/os-release",
            "# generated\nNAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\n\
             PRETTY_NAME='Debian GNU/Linux 12 (bookworm)'\n",
        );
        put(root, "usr/lib/os-release", "ID=other\n");
        put(root, STATE_FILE, STATE_JSON);
    }

    #[test]
    fn a_fake_machine_reads_as_expected() {
        let dir = tempfile::tempdir().unwrap();
        fake_machine(dir.path());
        let inv = gather(&Sources { root: dir.path().to_owned() }).unwrap();
        let expected = Inventory {
            arch: "x86_64".into(),
            firmware: Some(Firmware::Uefi),
            hostname: "node1".into(),
            cpu: Cpu { model: "Intel(R) Xeon(R) CPU E5-2620 v4 @ 2.10GHz".into(), cores: 2, threads: 4 },
            memory_mb: 7963,
            disk: vec![
                Disk {
                    name: "nvme0n1".into(),
                    size_bytes: 1953525168 * 512,
                    model: Some("Samsung SSD 980 PRO 1TB".into()),
                    serial: Some("S5GXNF0R123456".into()),
                    rotational: false,
                    removable: false,
                },
                Disk {
                    name: "sda".into(),
                    size_bytes: 7814037168 * 512,
                    model: Some("WDC WD40EFRX-68N".into()),
                    serial: Some("WD-WCC7K1".into()),
                    rotational: true,
                    removable: false,
                },
                Disk {
                    name: "vda".into(),
                    size_bytes: 20 << 30,
                    model: None,
                    serial: Some("vd-0001".into()),
                    rotational: true,
                    removable: false,
                },
            ],
            nic: vec![
                Nic {
                    name: "ens3".into(),
                    mac: "52:54:00:ab:cd:ef".into(),
                    speed_mbps: Some(1000),
                    driver: Some("virtio_net".into()),
                },
                Nic { name: "eth1".into(), mac: "52:54:00:00:00:02".into(), speed_mbps: None, driver: None },
            ],
            dmi: Dmi {
                vendor: Some("QEMU".into()),
                model: Some("Standard PC (Q35 + ICH9, 2009)".into()),
                serial: None,
                uuid: Some("4c4c4544-0042-3510-8058-b4c04f4b4e32".into()),
                bios_vendor: Some("SeaBIOS".into()),
                bios_version: None,
            },
            os: Some(OsRelease {
                id: "debian".into(),
                version_id: Some("12".into()),
                pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            }),
            packages: vec![
                InstalledPackage { id: "HF-1".into(), name: "App fix".into(), version: "1.0".into() },
                InstalledPackage { id: "SP-2".into(), name: "Service pack 2".into(), version: "2.0".into() },
            ],
            target: None,
            extra: BTreeMap::new(),
        };
        assert_eq!(inv, expected);
    }

    #[test]
    fn a_container_without_sys_or_etc_still_reports() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "proc/cpuinfo", "processor : 0\nprocessor : 1\n");
        put(dir.path(), "proc/meminfo", "MemTotal: 2048 kB\n");
        put(dir.path(), "etc/hostname", "# set by the image\n\nbox\n");
        put(dir.path(), "usr/lib/os-release", "NAME=Thing\n");
        let inv = gather(&Sources { root: dir.path().to_owned() }).unwrap();
        assert_eq!(inv.firmware, None);
        assert_eq!(inv.hostname, "box");
        assert_eq!(inv.cpu, Cpu { model: String::new(), cores: 2, threads: 2 });
        assert_eq!(inv.memory_mb, 2);
        assert!(inv.disk.is_empty() && inv.nic.is_empty() && inv.packages.is_empty());
        assert_eq!(inv.dmi, Dmi::default());
        assert_eq!(inv.os, Some(OsRelease { id: "linux".into(), version_id: None, pretty_name: None }));
    }

    #[test]
    fn only_cpuinfo_and_meminfo_are_required() {
        let dir = tempfile::tempdir().unwrap();
        let src = Sources { root: dir.path().to_owned() };
        put(dir.path(), "proc/cpuinfo", "processor : 0\n");
        let err = format!("{:#}", gather(&src).unwrap_err());
        assert!(err.contains("proc/meminfo"), "{err}");
        put(dir.path(), "proc/meminfo", "MemFree: 1 kB\n");
        let err = format!("{:#}", gather(&src).unwrap_err());
        assert!(err.contains("no MemTotal"), "{err}");
        fs::remove_file(dir.path().join("proc/cpuinfo")).unwrap();
        put(dir.path(), "proc/meminfo", "MemTotal: 1 kB\n");
        let err = format!("{:#}", gather(&src).unwrap_err());
        assert!(err.contains("proc/cpuinfo"), "{err}");
    }

    #[test]
    fn odd_files_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        put(root, "proc/cpuinfo", b"\xff\xfe:\x00\nprocessor\nphysical id : 3\n::::\n");
        put(root, "proc/meminfo", "MemTotal: 99999999999999999999 kB\nMemTotal: 4096 kB\n");
        put(root, "sys/block/sdz/size", "18446744073709551615\n");
        mkdir(root, "sys/block/sdz/device");
        put(root, "sys/block/sdy/size", "x\n");
        mkdir(root, "sys/block/sdy/device");
        put(root, "sys/block/sdx/size", "8\n");
        put(root, "sys/block/sdx/device/vpd_pg80", b"\x00\x80\xff\xff");
        put(root, "sys/class/net/eth0/speed", "99999999999\n");
        put(root, "sys/class/net/eth0/address", "AA:BB\n");
        mkdir(root, "sys/class/net/eth0/device");
        put(root, "etc/os-release", b"ID=\"unterminated\\\nVERSION_ID='x\nPRETTY_NAME=\\\xff\n=\n");
        put(root, STATE_FILE, "{\"format\": 1, \"packages\": [1, {\"id\": 2}, null]}");
        // The first MemTotal line counts, and it does not parse.
        let src = Sources { root: root.to_owned() };
        assert!(gather(&src).is_err());
        put(root, "proc/meminfo", "MemTotal: 4096 kB\n");
        let inv = gather(&src).unwrap();
        assert_eq!(inv.cpu, Cpu { model: String::new(), cores: 0, threads: 0 });
        let disks: Vec<(&str, u64, bool)> =
            inv.disk.iter().map(|d| (d.name.as_str(), d.size_bytes, d.serial.is_none())).collect();
        assert_eq!(disks, [("sdx", 4096, true)]);
        assert_eq!(inv.nic[0].speed_mbps, None);
        assert_eq!(inv.os.unwrap().id, "unterminated\\");
        assert!(inv.packages.is_empty());
    }

    #[test]
    fn cpuinfo_without_topology_counts_threads_as_cores() {
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n";
        assert_eq!(parse_cpuinfo(arm), Cpu { model: String::new(), cores: 2, threads: 2 });
        let s390 = "vendor_id : IBM/S390\nprocessor 0: version = FF\nprocessor 1: version = FF\n";
        assert_eq!(parse_cpuinfo(s390).threads, 2);
        let power = "processor\t: 0\ncpu\t\t: POWER9 (raw), altivec supported\n";
        assert_eq!(parse_cpuinfo(power).model, "POWER9 (raw), altivec supported");
        // Two sockets with the same core ids.
        let two = "processor:0\nphysical id:0\ncore id:0\nprocessor:1\nphysical id:1\ncore id:0\n";
        assert_eq!(parse_cpuinfo(two).cores, 2);
    }

    #[test]
    fn dmi_placeholders_are_missing() {
        for p in [
            "",
            "None",
            "not specified",
            "To be filled by O.E.M.",
            "Default string",
            "System Serial Number",
            "00000000-0000-0000-0000-000000000000",
            "FFFFFFFF-FFFF-FFFF-FFFF-ffffffffffff",
            "03000200-0400-0500-0006-000700080009",
            "0",
            "F",
        ] {
            assert!(is_dmi_placeholder(p), "{p:?}");
        }
        for v in ["QEMU", "Dell Inc.", "1.16.2", "4c4c4544-0042-3510-8058-b4c04f4b4e32", "0A", "CZ1234"] {
            assert!(!is_dmi_placeholder(v), "{v:?}");
        }
    }

    #[test]
    fn os_release_values_lose_their_shell_quoting() {
        assert_eq!(unquote(r#""Fedora Linux 40 (Workstation Edition)""#), "Fedora Linux 40 (Workstation Edition)");
        assert_eq!(unquote(r#"'it''s'"#), "its");
        assert_eq!(unquote(r#""say \"hi\" for \$5 \\ \n""#), r#"say "hi" for $5 \ \n"#);
        assert_eq!(unquote(r#"'no \"escapes\" here'"#), r#"no \"escapes\" here"#);
        assert_eq!(unquote(r"plain\ word"), "plain word");
        assert_eq!(unquote(r#""unterminated"#), "unterminated");
    }

    #[test]
    fn packages_come_from_the_servicing_state() {
        let dir = tempfile::tempdir().unwrap();
        assert!(installed_packages(dir.path()).is_empty());
        put(dir.path(), STATE_FILE, "{ not json");
        assert!(installed_packages(dir.path()).is_empty());
        put(dir.path(), STATE_FILE, STATE_JSON.replacen("\"format\": 1", "\"format\": 2", 1));
        assert!(installed_packages(dir.path()).is_empty());
        put(dir.path(), STATE_FILE, STATE_JSON);
        let ids: Vec<String> = installed_packages(dir.path()).into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["HF-1", "SP-2"]);
    }

    #[test]
    fn the_host_reports_itself() {
        let inv = gather(&Sources::default()).unwrap();
        assert_eq!(inv.arch, std::env::consts::ARCH);
        assert!(inv.memory_mb > 0);
        assert!(inv.cpu.threads >= 1 && inv.cpu.cores >= 1 && inv.cpu.cores <= inv.cpu.threads, "{:?}", inv.cpu);
        assert!(!inv.hostname.is_empty());
    }

    #[test]
    fn target_reports_the_space_of_its_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let t = target(dir.path()).unwrap();
        assert_eq!(t.path, dir.path().display().to_string());
        assert!(t.total_bytes >= t.free_bytes && t.free_bytes > 0, "{t:?}");
        assert!(target(&dir.path().join("missing")).is_err());
    }
}
