//! generalize, specialize and first boot on a real Debian root (debootstrap
//! with systemd, openssh-server, sudo and its own kernel), booted in QEMU;
//! and the answer file's refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn sw() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
    c.arg("--quiet");
    c
}

const HASH: &str =
    "$6$slipwaysalt0$aT7VBVHeEKNYQ4.7yiJzLCAtWW232OSH2F70KCkgaiYR1D/tFPs/m6L/hhJMvpqUfnV4CjDcv4YAxpm1Tomi/0";

/// The cached master root from scripts/sysprep-root.sh, or None (skipped)
/// when it cannot be built here; in CI that is a failure.
fn debian_root() -> Option<PathBuf> {
    if !is_root() || !require("debootstrap") || !require("bsdtar") {
        if std::env::var_os("CI").is_some() {
            panic!("CI must run the sysprep tests: needs root, debootstrap and bsdtar");
        }
        eprintln!("SKIPPED: needs root, debootstrap and bsdtar");
        return None;
    }
    let ws = workspace();
    let cache = ws.join("target/cache/sysprep-bookworm");
    let o = Command::new(ws.join("scripts/sysprep-root.sh")).arg(&cache).output().expect("sysprep-root.sh");
    if !o.status.success() {
        let msg = format!("building the sysprep root failed:\n{}", String::from_utf8_lossy(&o.stderr));
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    Some(cache)
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("reading {}: {e}", p.as_ref().display()))
}

fn answer_text(pubkey: &str) -> String {
    format!(
        r#"version = 1

[computer]
name = "web-{{serial}}"
domain = "example.test"
machine_id = "specialize"

[[machines]]
match = {{ serial = "B2" }}
timezone = "America/New_York"

[[users]]
name = "admin"
gecos = "Fleet Admin"
password_hash = "{HASH}"
groups = ["adm"]
sudo = "nopasswd"
ssh_authorized_keys = ["{pubkey}"]

[ssh]
password_authentication = false
host_keys = "specialize"

[network]
[[network.interfaces]]
match = {{ name = "en*" }}
mode = "dhcp"

[locale]
lang = "C.UTF-8"

[time]
timezone = "Europe/Berlin"

[[files]]
path = "/etc/motd"
mode = "0640"
content = "Specialized by slipway.\n"

[[commands]]
name = "hello"
shell = "echo hello-from-firstboot; cat /etc/hostname"

[[commands]]
name = "tick"
run = ["/bin/echo", "every-boot-tick"]
when = "every-boot"
"#
    )
}

/// The check from issue 6: generalize a Debian root, specialize two copies
/// with one answer file and different facts, compare them, then boot one
/// in QEMU with the root's own kernel twice.
#[test]
fn debian_root_generalized_specialized_twice_and_booted() {
    let Some(cache) = debian_root() else { return };
    let ws = workspace();
    let t = tempfile::tempdir_in(ws.join("target")).unwrap();
    let master = t.path().join("master");
    copy_tree(&cache, &master);
    let old_key = read(master.join("etc/ssh/ssh_host_ed25519_key.pub"));
    let old_id = read(master.join("etc/machine-id"));
    assert_eq!(old_id.trim().len(), 32, "the debootstrap root has a machine-id");

    // Generalize.
    let out = ok(sw().args(["generalize", "--json"]).arg(&master));
    let r = json(&out);
    let ops = r["report"]["operations"].as_array().unwrap();
    let op = |n: &str| ops.iter().find(|o| o["name"] == n).unwrap_or_else(|| panic!("no op {n} in {out}")).clone();
    assert!(op("ssh-hostkeys")["removed"].as_array().unwrap().iter().any(|p| p == "/etc/ssh/ssh_host_ed25519_key"));
    assert!(op("machine-id")["written"].as_array().unwrap().iter().any(|p| p == "/etc/machine-id"));
    assert_eq!(read(master.join("etc/machine-id")), "uninitialized\n");
    assert!(!master.join("var/lib/dbus/machine-id").exists(), "the D-Bus copy of the machine-id is gone");
    assert!(!master.join("etc/ssh/ssh_host_ed25519_key").exists());
    assert!(!master.join("etc/hostname").exists());
    // Running it again finds nothing more to remove.
    let again = json(&ok(sw().args(["generalize", "--json", "--dry-run"]).arg(&master)));
    assert_eq!(again["report"]["removed_entries"], 0, "{again}");

    // The answer file, checked against the master.
    let keydir = t.path().join("keys");
    std::fs::create_dir(&keydir).unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "admin@test", "-f"])
        .arg(keydir.join("id"))
        .status()
        .unwrap();
    assert!(st.success());
    let pubkey = read(keydir.join("id.pub")).trim().to_string();
    let answer = t.path().join("answer.toml");
    std::fs::write(&answer, answer_text(&pubkey)).unwrap();
    let out = ok(sw().args(["answer", "check", "--json"]).arg(&answer).arg("--root").arg(&master));
    assert_eq!(json(&out)["ok"], true, "{out}");

    // Two copies, two machines.
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    copy_tree(&master, &a);
    copy_tree(&master, &b);
    let ra = json(&ok(sw().args(["specialize", "--json", "--answer"]).arg(&answer).arg(&a).args([
        "--fact",
        "serial=A1",
        "--fact",
        "mac=52:54:00:12:34:56",
    ])));
    let facts = t.path().join("b.json");
    std::fs::write(&facts, r#"{"serial": "B2", "macs": ["52:54:00:00:00:b2"], "uuid": "b2b2"}"#).unwrap();
    let rb =
        json(&ok(sw().args(["specialize", "--json", "--answer"]).arg(&answer).arg(&b).arg("--machine").arg(&facts)));
    assert_eq!(read(a.join("etc/hostname")), "web-a1\n");
    assert_eq!(read(b.join("etc/hostname")), "web-b2\n");
    assert!(read(a.join("etc/hosts")).contains("127.0.1.1\tweb-a1.example.test web-a1\n"));
    let (ida, idb) = (read(a.join("etc/machine-id")), read(b.join("etc/machine-id")));
    assert_eq!(ida.trim(), ra["report"]["machine_id"].as_str().unwrap());
    assert!(ida.trim().len() == 32 && idb.trim().len() == 32 && ida != idb && ida != old_id, "{ida} {idb}");
    let (ka, kb) = (read(a.join("etc/ssh/ssh_host_ed25519_key.pub")), read(b.join("etc/ssh/ssh_host_ed25519_key.pub")));
    assert!(ka != kb && ka != old_key && kb != old_key, "every copy has its own host keys");
    for (root, r) in [(&a, &ra), (&b, &rb)] {
        let shadow = read(root.join("etc/shadow"));
        assert!(shadow.lines().any(|l| l.starts_with(&format!("admin:{HASH}:"))), "{shadow}");
        let passwd = read(root.join("etc/passwd"));
        let line = passwd.lines().find(|l| l.starts_with("admin:")).expect("admin in passwd");
        let f: Vec<&str> = line.split(':').collect();
        assert_eq!(f[4], "Fleet Admin");
        assert_eq!(f[5], "/home/admin");
        let uid: u32 = f[2].parse().unwrap();
        assert!(read(root.join("etc/group")).lines().any(|l| l.starts_with("adm:") && l.contains("admin")));
        let ak = root.join("home/admin/.ssh/authorized_keys");
        assert_eq!(read(&ak).trim(), pubkey);
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&ak).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (uid, 0o600));
        assert_eq!(read(root.join("etc/sudoers.d/50-slipway-admin")), "admin ALL=(ALL:ALL) NOPASSWD: ALL\n");
        // The root's stack is systemd-networkd (no NetworkManager, no ifupdown).
        assert_eq!(r["report"]["network"]["stack"], "networkd", "{r}");
        let nets: Vec<_> =
            std::fs::read_dir(root.join("etc/systemd/network")).unwrap().map(|e| e.unwrap().path()).collect();
        let net = nets.iter().find(|p| p.extension().is_some_and(|e| e == "network")).expect("a .network file");
        let text = read(net);
        assert!(text.contains("Name=en*") && text.contains("DHCP=yes"), "{text}");
        assert!(root.join("etc/systemd/system/multi-user.target.wants/systemd-networkd.service").is_symlink());
        assert!(root.join("etc/systemd/system/multi-user.target.wants/slipway-firstboot.service").is_symlink());
        assert!(root.join("usr/local/sbin/slipway").is_file());
        assert_eq!(read(root.join("etc/motd")), "Specialized by slipway.\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("etc/motd")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "the answer's mode, over the image's own /etc/motd");
        // pwck and grpck (shadow's own checkers) accept the account files.
        for tool in [&["pwck", "-r", "-q"][..], &["grpck", "-r"][..]] {
            let o = Command::new(tool[0]).args(&tool[1..]).arg("-R").arg(root).output().unwrap();
            assert!(o.status.success(), "{tool:?} -R {}: {}", root.display(), String::from_utf8_lossy(&o.stdout));
        }
    }
    assert_eq!(std::fs::read_link(a.join("etc/localtime")).unwrap(), Path::new("../usr/share/zoneinfo/Europe/Berlin"));
    assert_eq!(
        std::fs::read_link(b.join("etc/localtime")).unwrap(),
        Path::new("../usr/share/zoneinfo/America/New_York"),
        "the override for serial B2 wins"
    );
    // Specialize changed only what it reports (bsdtar's view, times aside).
    let changed = mtree_changes(&master, &a);
    let mut reported: Vec<String> =
        ra["report"]["written"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    for k in ["accounts", "network"] {
        reported.extend(ra["report"][k]["written"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()));
    }
    for c in &changed {
        // A reported path, or a directory made to hold one.
        let ok = reported.iter().any(|r| r == c || r.starts_with(&format!("{c}/")))
            || c.starts_with("/home/admin")
            || c.starts_with("/etc/ssh/ssh_host_")
            || c.starts_with("/var/lib/slipway/firstboot")
            || c.starts_with("/etc/systemd/system/");
        assert!(ok, "{c} changed but specialize did not report it; reported: {reported:?}");
    }

    // Boot copy A from an ext4 image of it, with the root's own kernel.
    if !require_qemu(&[Firmware::Bios]) || !require("mkfs.ext4") || !require("debugfs") {
        return;
    }
    let disk = t.path().join("a.ext4");
    let st = Command::new("truncate").args(["-s", "2G"]).arg(&disk).status().unwrap();
    assert!(st.success());
    let o = Command::new("mkfs.ext4").args(["-q", "-F", "-L", "root", "-d"]).arg(&a).arg(&disk).output().unwrap();
    assert!(o.status.success(), "mkfs.ext4 -d: {}", String::from_utf8_lossy(&o.stderr));
    let kernel = glob_one(&a.join("boot"), "vmlinuz-");
    let initrd = glob_one(&a.join("boot"), "initrd.img-");
    let port = free_port();
    let fwd = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22");
    let boot_disk = |name: &str, disk: &Path| {
        Vm::start(
            t.path(),
            name,
            Firmware::Bios,
            Medium::WritableVirtio,
            disk,
            &[
                "-kernel",
                kernel.to_str().unwrap(),
                "-initrd",
                initrd.to_str().unwrap(),
                "-append",
                "root=/dev/vda rw console=ttyS0 panic=-1",
                "-netdev",
                &fwd,
                "-device",
                "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
            ],
        )
    };
    let boot = |name: &str| boot_disk(name, &disk);
    let limit = Duration::from_secs(240);
    let mut vm = boot("first");
    vm.wait_serial("Linux version", limit);
    vm.wait_serial("web-a1 login:", limit);
    let serial = vm.serial();
    assert!(serial.contains("slipway-firstboot: run 1 started"), "{serial}");
    assert!(serial.contains("hello-from-firstboot"), "the first-boot command ran");
    assert!(serial.contains("slipway-firstboot: run 1 finished: ok"), "{serial}");
    assert!(serial.contains("every-boot-tick"));
    assert!(serial.contains("Started") && serial.contains("ssh.service"), "sshd started");
    // sshd serves the host key specialize made for this copy.
    let scanned = ssh_keyscan(port);
    let mine = ka.split_whitespace().nth(1).unwrap();
    assert!(scanned.contains(mine), "sshd presents the copy's own ed25519 key; keyscan: {scanned}");
    assert!(!scanned.contains(old_key.split_whitespace().nth(1).unwrap()));
    shutdown(vm);

    // Second boot: the first-boot unit does not run again; every-boot does.
    let mut vm = boot("second");
    vm.wait_serial("web-a1 login:", limit);
    let serial2 = vm.serial();
    assert!(!serial2.contains("slipway-firstboot: run"), "first boot ran again:\n{serial2}");
    assert!(serial2.contains("every-boot-tick"), "the every-boot command runs at every boot");
    shutdown(vm);
    let o = Command::new("debugfs").args(["-R", "cat /var/log/slipway/firstboot.log"]).arg(&disk).output().unwrap();
    let log = String::from_utf8_lossy(&o.stdout);
    assert_eq!(log.matches("run 1 started").count(), 1, "{log}");
    assert!(!log.contains("run 2"), "{log}");
    assert_eq!(log.matches("every-boot commands started").count(), 2, "one every-boot run per boot: {log}");
    assert_eq!(log.matches("every-boot-tick").count(), 2, "{log}");
    let o = Command::new("debugfs").args(["-R", "cat /var/lib/slipway/firstboot/done"]).arg(&disk).output().unwrap();
    let done = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(done["status"], "ok");

    // The generalized master itself, never specialized: systemd sees a
    // first boot (machine-id `uninitialized`) and makes a new ID, and
    // slipway-ssh-hostkeys.service makes new host keys before sshd starts.
    let mdisk = t.path().join("master.ext4");
    let st = Command::new("truncate").args(["-s", "2G"]).arg(&mdisk).status().unwrap();
    assert!(st.success());
    let o = Command::new("mkfs.ext4").args(["-q", "-F", "-L", "root", "-d"]).arg(&master).arg(&mdisk).output().unwrap();
    assert!(o.status.success(), "mkfs.ext4 -d: {}", String::from_utf8_lossy(&o.stderr));
    let mut vm = boot_disk("master", &mdisk);
    vm.wait_serial(" login:", limit);
    // The serial getty does not wait for sshd, so under TCG the login
    // prompt can come before key generation finishes: wait for the units
    // themselves (the host key unit is ordered before ssh.service).
    vm.wait_serial("slipway-ssh-hostkeys.service", limit);
    vm.wait("sshd started after the host key unit", limit, |vm| {
        let s = vm.serial();
        s.find("slipway-ssh-hostkeys.service").is_some_and(|k| s[k..].contains("ssh.service"))
    });
    shutdown(vm);
    let cat = |path: &str| {
        let o = Command::new("debugfs").args(["-R", &format!("cat {path}")]).arg(&mdisk).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let new_id = cat("/etc/machine-id");
    assert!(
        new_id.trim().len() == 32 && new_id != old_id && new_id != ida && new_id != idb,
        "first boot made a new machine-id: {new_id:?}"
    );
    let new_key = cat("/etc/ssh/ssh_host_ed25519_key.pub");
    assert!(new_key.starts_with("ssh-ed25519 ") && new_key != old_key, "new host keys: {new_key:?}");
}

fn glob_one(dir: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* in {}", dir.display()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The host keys sshd offers on the forwarded port (retrying while sshd
/// comes up).
fn ssh_keyscan(port: u16) -> String {
    for _ in 0..30 {
        let o = Command::new("timeout")
            .args(["20", "ssh-keyscan", "-T", "10", "-p", &port.to_string(), "-t", "ed25519", "127.0.0.1"])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        if s.contains("ssh-ed25519") {
            return s;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    panic!("sshd did not answer on port {port}");
}

/// ACPI power-off, waiting for QEMU to end; the Vm's drop stops it if the
/// guest does not.
fn shutdown(mut vm: Vm) {
    vm.qmp(serde_json::json!({"execute": "system_powerdown"}));
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(90) {
        if vm.serial().contains("reboot: Power down") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(vm);
}

/// Paths whose type, owner, mode, size, content or link differ between two
/// trees (bsdtar mtree; times and directories' sizes aside).
fn mtree_changes(a: &Path, b: &Path) -> Vec<String> {
    let parse = |d: &Path| -> std::collections::BTreeMap<String, String> {
        let o = Command::new("bsdtar")
            .current_dir(d)
            .args(["-cf", "-", "--format=mtree", "--options=!all,type,uid,gid,mode,size,sha256,link", "."])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (p, rest) = l.split_once(' ').unwrap_or((l, ""));
                let rest = if rest.contains("type=dir") {
                    rest.split(' ').filter(|f| !f.starts_with("size=")).collect::<Vec<_>>().join(" ")
                } else {
                    rest.to_string()
                };
                (p.trim_start_matches('.').to_string(), rest)
            })
            .collect()
    };
    let (ma, mb) = (parse(a), parse(b));
    let mut out: Vec<String> = mb.iter().filter(|(p, v)| ma.get(*p) != Some(v)).map(|(p, _)| p.clone()).collect();
    out.extend(ma.keys().filter(|p| !mb.contains_key(*p)).cloned());
    out
}

/// Answer files that must be refused, each with the key and the fix.
#[test]
fn answer_check_refuses_bad_files_naming_the_key_and_the_fix() {
    let t = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("version = 1\n[computer]\nhostnme = \"x\"\n", "computer.hostnme", "unknown key"),
        ("version = 1\n[[users]]\nname = \"a\"\npassword = \"hunter2\"\n", "users[0].password", "plain-text"),
        ("version = 1\n[[users]]\nname = \"a\"\npassword_hash = \"hunter2\"\n", "users[0].password_hash", "plain-text"),
        ("version = 1\n[computer]\nname = \"web-{serail}\"\n", "computer.name", "unknown token {serail}"),
        ("version = 1\n[computer]\nname = \"web_{serial}\"\n", "computer.name", "cannot be in a host name"),
        (
            "version = 1\n[domain]\nrealm = \"AD.EXAMPLE.COM\"\npassword = \"hunter2\"\n",
            "domain.password",
            "plain-text",
        ),
    ];
    for (i, (text, key, what)) in cases.iter().enumerate() {
        let f = t.path().join(format!("bad{i}.toml"));
        std::fs::write(&f, text).unwrap();
        let o = sw().args(["answer", "check"]).arg(&f).output().unwrap();
        assert_eq!(o.status.code(), Some(3), "case {i} must be refused");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(key) && err.contains(what) && err.contains("fix:"), "case {i}: {err}");
        assert!(!err.contains("hunter2"), "a secret was echoed: {err}");
        let o = sw().args(["answer", "check", "--json"]).arg(&f).output().unwrap();
        let v = json(&String::from_utf8_lossy(&o.stdout));
        assert_eq!(v["ok"], false);
        assert_eq!(v["problems"][0]["key"], *key);
    }
    // Settings a root cannot satisfy: no sudo, no such zone, no such shell.
    let root = t.path().join("root");
    for d in ["etc", "bin", "usr/share/zoneinfo/Europe", "lib/systemd"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("bin/sh"), "").unwrap();
    std::fs::write(root.join("usr/share/zoneinfo/Europe/Berlin"), "TZif").unwrap();
    let f = t.path().join("unsat.toml");
    std::fs::write(
        &f,
        "version = 1\n[[users]]\nname = \"ops\"\nshell = \"/bin/zsh\"\nsudo = \"password\"\n[time]\ntimezone = \"Mars/Olympus\"\n",
    )
    .unwrap();
    let o = sw().args(["answer", "check"]).arg(&f).arg("--root").arg(&root).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    for k in ["users[0].shell", "users[0].sudo", "time.timezone"] {
        assert!(err.contains(k), "{k} not named: {err}");
    }
    // specialize runs the same checks first and changes nothing.
    let before = mtree(&root);
    let o = sw().args(["specialize", "--answer"]).arg(&f).arg(&root).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("nothing was changed") && err.contains("users[0].shell"), "{err}");
    assert_eq!(mtree(&root), before, "a refused specialize writes nothing");
    // The same checks against the root captured as an image in a store.
    let store = t.path().join("store");
    ok(sw().arg("--store").arg(&store).args(["store", "init"]));
    ok(sw().arg("--store").arg(&store).arg("capture").arg(&root).args(["--name", "tiny"]));
    let o =
        sw().arg("--store").arg(&store).args(["answer", "check"]).arg(&f).args(["--image", "tiny"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("users[0].shell") && err.contains("time.timezone"), "{err}");
    // The same file with the root's own settings passes, on the root and
    // on the image.
    std::fs::write(&f, "version = 1\n[[users]]\nname = \"ops\"\n[time]\ntimezone = \"Europe/Berlin\"\n").unwrap();
    ok(sw().args(["answer", "check"]).arg(&f).arg("--root").arg(&root));
    ok(sw().arg("--store").arg(&store).args(["answer", "check"]).arg(&f).args(["--image", "tiny@1"]));
}

/// `answer new --non-interactive` (the contract in issue 6) writes a file
/// that `answer check` accepts; interactive mode reads piped answers.
#[test]
fn answer_new_writes_valid_files() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("a.toml");
    ok(sw()
        .args(["answer", "new", "--non-interactive", "-o"])
        .arg(&f)
        .args(["--hostname", "web-{serial}", "--user", "admin", "--password-hash", HASH])
        .args(["--ssh-key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk2c2xpcHdheXRlc3RrZXkwMDAwMDAwMDAwMDAw a@b"])
        .args(["--timezone", "Europe/Berlin"]));
    let text = read(&f);
    assert!(text.contains("web-{serial}") && text.contains("Europe/Berlin"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "an answer file may hold a password hash");
    // Setting flags without --non-interactive are refused, not ignored.
    let o = sw().args(["answer", "new", "--user", "ops"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--non-interactive"));
    ok(sw().args(["answer", "check"]).arg(&f));
    // A plain password is refused by name.
    let o = sw()
        .args(["answer", "new", "--non-interactive", "--user", "a", "--password-hash", "hunter2"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--password-hash") && !err.contains("hunter2"), "{err}");
    // Interactive: host name, domain, user, hash, (no keys), sudo, zone, dhcp.
    let g = t.path().join("i.toml");
    let mut c = sw();
    c.args(["answer", "new", "-o"]).arg(&g);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    let input = format!("db-{{seq}}\n\nops\nnot-a-hash\n{HASH}\n\ny\nUTC\ny\n");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = read(&g);
    assert!(text.contains("db-{seq}") && text.contains("ops"), "{text}");
    ok(sw().args(["answer", "check"]).arg(&g));
}

/// A root whose /etc is a symlink out of it: specialize refuses, naming it,
/// and writes nothing outside.
#[test]
fn specialize_never_writes_through_a_symlink_out_of_the_root() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("etc")).unwrap();
    let f = t.path().join("a.toml");
    std::fs::write(&f, "version = 1\n[computer]\nname = \"x\"\n").unwrap();
    let o = sw().args(["specialize", "--answer"]).arg(&f).arg(&root).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("symlink"), "{err}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing written outside the root");
    // The running system is refused without --force.
    let o = sw().args(["specialize", "--answer"]).arg(&f).arg("/").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("running system"));
}

/// First boot in a directory root: steps run once, failures are reported
/// by exit status and in the log, stored secrets are used and deleted,
/// and never written to the log.
#[test]
fn firstboot_runs_once_reports_failures_and_keeps_secrets_out_of_logs() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    for d in ["etc", "bin", "var/log", "var/lib", "var/tmp", "usr/share/zoneinfo"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // The commands' programs, as answer check and specialize want them in the root.
    std::fs::write(root.join("bin/sh"), "").unwrap();
    std::fs::write(root.join("bin/false"), "").unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    std::fs::write(root.join("etc/gshadow"), "root:*::\n").unwrap();
    let marker = t.path().join("ran");
    let f = t.path().join("a.toml");
    std::fs::write(
        &f,
        format!(
            r#"version = 1
[[commands]]
name = "first"
shell = "echo secret is $TOKEN >/dev/null; echo once >> {m}"
secret_env = {{ TOKEN = {{ env = "SLIPWAY_TEST_TOKEN" }} }}

[[commands]]
name = "leaks"
shell = "echo token=$TOKEN"
secret_env = {{ TOKEN = {{ env = "SLIPWAY_TEST_TOKEN" }} }}

[[commands]]
name = "broken"
run = ["/bin/false"]

[[commands]]
name = "slow"
shell = "sleep 30"
timeout = 1
on_failure = "halt"

[[commands]]
name = "never"
shell = "echo never >> {m}"

[[commands]]
name = "tick"
shell = "echo tick $TOKEN"
when = "every-boot"
secret_env = {{ TOKEN = {{ env = "SLIPWAY_TEST_TOKEN" }} }}
"#,
            m = marker.display()
        ),
    )
    .unwrap();
    let mut c = sw();
    c.env("SLIPWAY_TEST_TOKEN", "s3cr3t-value").args(["specialize", "--answer"]).arg(&f).arg(&root);
    ok(&mut c);
    let stored = root.join("var/lib/slipway/firstboot/secrets");
    assert!(stored.is_dir(), "secrets resolved by specialize wait for first boot");
    assert!(!read(root.join("etc/slipway/firstboot.json")).contains("s3cr3t"), "the plan holds references only");
    let o = sw().args(["firstboot", "--json", "--root"]).arg(&root).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "a halting failure exits 2: {}", String::from_utf8_lossy(&o.stderr));
    let r = json(&String::from_utf8_lossy(&o.stdout));
    let steps = r["report"]["steps"].as_array().unwrap();
    let status = |n: &str| steps.iter().find(|s| s["name"] == format!("command:{n}")).unwrap()["status"].clone();
    assert_eq!(status("first"), "ok");
    assert_eq!(status("broken"), "failed");
    assert_eq!(status("slow"), "failed");
    assert_eq!(status("never"), "not-run");
    assert_eq!(read(&marker), "once\n");
    let log = read(root.join("var/log/slipway/firstboot.log"));
    assert!(log.contains("token=<redacted>") && !log.contains("s3cr3t"), "{log}");
    assert!(log.contains("timed out after 1 s"), "{log}");
    let left: Vec<_> = std::fs::read_dir(&stored).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec!["commands.5.TOKEN"], "used secrets are deleted; the every-boot command's stays");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o700);
    // The every-boot command still has its secret, and it stays out of the log.
    let o = sw().args(["firstboot", "--every-boot", "--root"]).arg(&root).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let log = read(root.join("var/log/slipway/firstboot.log"));
    assert!(log.contains("tick <redacted>") && !log.contains("s3cr3t"), "{log}");
    // Again: nothing runs.
    let o = sw().args(["firstboot", "--root"]).arg(&root).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(read(&marker), "once\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("already done"));
}
