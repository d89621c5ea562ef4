//! Helpers shared by the integration tests: run the real binary, and read
//! trees with independent tools (bsdtar's mtree, getfattr).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn slipway(store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
    c.arg("--store").arg(store).arg("--quiet");
    c
}

/// Runs and requires success, returning stdout.
pub fn ok(c: &mut Command) -> String {
    let o = c.output().expect("running command");
    assert!(
        o.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn out(c: &mut Command) -> Output {
    c.output().expect("running command")
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success()).unwrap_or(false)
}

/// In CI a missing tool is a failure; on a developer's machine the test is
/// skipped with a message saying how to get it.
pub fn require(tool: &str) -> bool {
    if have(tool) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is required in CI; scripts/install-deps.sh installs it");
    }
    eprintln!("SKIPPED: {tool} not installed (run scripts/install-deps.sh)");
    false
}

/// bsdtar's mtree listing of a tree: type, uid, gid, mode, mtime (ns),
/// size, sha256, symlink target, device numbers, link count.
pub fn mtree(dir: &Path) -> String {
    mtree_excluding(dir, &[])
}

/// [`mtree`] without the given entries (`./path` patterns, as bsdtar's
/// `--exclude` takes them).
pub fn mtree_excluding(dir: &Path, exclude: &[&str]) -> String {
    let mut c = Command::new("bsdtar");
    c.current_dir(dir).args([
        "-cf",
        "-",
        "--format=mtree",
        "--options=!all,type,uid,gid,mode,time,size,sha256,link,device,nlink",
    ]);
    for e in exclude {
        c.arg("--exclude").arg(e);
    }
    let o = c.arg(".").output().expect("bsdtar");
    assert!(o.status.success(), "bsdtar: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).expect("mtree is ASCII")
}

/// Every xattr of every entry (not following symlinks), hex-encoded.
pub fn xattrs(dir: &Path) -> String {
    let o = Command::new("getfattr")
        .current_dir(dir)
        .args(["-R", "-h", "-d", "-m", "-", "-e", "hex", "."])
        .output()
        .expect("getfattr");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts two texts are equal, showing the first differing lines.
pub fn assert_same(what: &str, a: &str, b: &str) {
    if a == b {
        return;
    }
    let (al, bl): (Vec<_>, Vec<_>) = (a.lines().collect(), b.lines().collect());
    let mut shown = 0;
    let mut msg = format!("{what} differ ({} vs {} lines):\n", al.len(), bl.len());
    for i in 0..al.len().max(bl.len()) {
        let (x, y) = (al.get(i), bl.get(i));
        if x != y && shown < 10 {
            msg.push_str(&format!("  source: {}\n  applied: {}\n", x.unwrap_or(&"<none>"), y.unwrap_or(&"<none>")));
            shown += 1;
        }
    }
    panic!("{msg}");
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

pub fn sh(script: &str, dir: &Path) {
    let o =
        Command::new("bash").arg("-euo").arg("pipefail").arg("-c").arg(script).current_dir(dir).output().expect("bash");
    assert!(o.status.success(), "script failed:\n{script}\n{}", String::from_utf8_lossy(&o.stderr));
}

/// Builds a tree with every kind of entry slipway must keep.
pub fn every_kind(root: &Path) {
    sh(
        r#"
        mkdir -p etc usr/bin var/empty-dir 'dir with space' deep/a/b/c/d
        printf 'root:x:0:0::/root:/bin/bash\n' > etc/passwd
        : > etc/empty-file
        head -c 300000 /dev/urandom > usr/bin/random-300k
        seq 1 2000000 > usr/bin/big-text           # ~15 MB, many chunks
        head -c 18000000 /dev/urandom > usr/bin/huge   # > 16 MiB: streamed chunking
        printf 'setuid\n' > usr/bin/su; chmod 4755 usr/bin/su
        printf 'setgid\n' > usr/bin/wall; chmod 2755 usr/bin/wall; chgrp 5 usr/bin/wall
        mkdir tmp; chmod 1777 tmp
        printf 'secret\n' > etc/shadow; chmod 0000 etc/shadow; chown 0:42 etc/shadow
        printf 'odd owner\n' > deep/a/b/c/d/file; chown 12345:54321 deep/a/b/c/d/file
        ln -s ../etc/passwd usr/passwd-rel
        ln -s /etc/passwd usr/passwd-abs
        ln -s /nonexistent/nowhere usr/dangling
        ln -s ../../../../../../outside usr/climbing-link
        ln etc/passwd usr/bin/hardlink-to-passwd
        printf 'multi\n' > var/a; ln var/a var/b; ln var/a deep/a/c
        mknod dev-null c 1 3
        mknod dev-loop0 b 7 0
        mkfifo fifo
        printf 'caf\n' > "$(printf 'caf\xe9')"
        printf 'nl\n' > "$(printf 'new\nline')"
        printf 'bs\n' > 'back\slash'
        truncate -s 100M sparse
        printf 'island' | dd of=sparse bs=1 seek=50000000 conv=notrunc status=none
        printf 'x' | dd of=sparse bs=1 seek=104857599 conv=notrunc status=none
        truncate -s 10M all-hole
        setfattr -n user.comment -v 'hello' etc/passwd
        setfattr -n user.binary -v 0x00ff10 etc/passwd
        setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 usr/bin/random-300k
        setfacl -m u:1234:rwx,g:99:r-x etc/shadow
        setfacl -d -m u:1234:rwx var
        setfacl -m u:4321:r var
        setfattr -h -n trusted.note -v on-a-link usr/passwd-rel
        setfattr -n trusted.on-fifo -v 1 fifo; setfattr -n trusted.on-dev -v 1 dev-null
        setfattr -n user.dir -v 1 'dir with space'
        touch -h -d '2001-02-03 04:05:06.123456789' usr/passwd-rel usr/dangling
        touch -d '1999-12-31 23:59:59.999999999' etc/passwd sparse
        touch -d '1970-01-01 00:00:00.000000001' fifo dev-null
        touch -d '2038-01-19 03:14:08.5' usr/bin/huge
        touch -d '2011-11-11 11:11:11.111111111' var/empty-dir deep/a/b etc
        "#,
        root,
    );
}

// ------------------------------------------------------------------ boot tests

/// A file from a Debian package the tests need (firmware, a vendor image):
/// in CI a missing one is a failure, elsewhere the test is skipped.
pub fn require_file(path: &str, package: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{path} is required in CI; scripts/install-deps.sh installs {package}");
    }
    eprintln!("SKIPPED: {path} missing (package {package}; run scripts/install-deps.sh)");
    false
}

/// The boot fixtures of scripts/iso-fixtures.sh, built once under
/// target/iso-fixtures: `netboot-tree/` (isolinux, standalone GRUB for UEFI,
/// Debian's netboot kernel and initrd, all on the serial console) and
/// `efi.img`. `None` (after printing why) when they cannot be built here.
pub fn iso_fixtures() -> Option<PathBuf> {
    let ws = workspace();
    let dir = ws.join("target/iso-fixtures");
    let o = Command::new(ws.join("scripts/iso-fixtures.sh")).arg(&dir).output().expect("running iso-fixtures.sh");
    if o.status.success() {
        return Some(dir);
    }
    let msg = format!("building the ISO boot fixtures failed:\n{}", String::from_utf8_lossy(&o.stderr));
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// QEMU and, for `Firmware::Uefi`, OVMF are installed (skips otherwise).
pub fn require_qemu(firmware: &[Firmware]) -> bool {
    require("qemu-system-x86_64")
        && (!firmware.contains(&Firmware::Uefi) || require_file(OVMF_CODE, "ovmf") && require_file(OVMF_VARS, "ovmf"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS on QEMU's default i440FX machine.
    Bios,
    /// OVMF on q35, code read-only, a private copy of the variable store.
    Uefi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    /// `-cdrom`: El Torito.
    Cdrom,
    /// A raw disk (`-drive if=ide`): the hybrid MBR / GPT.
    Disk,
    /// A raw virtio disk whose writes are kept (a root filesystem booted
    /// with `-kernel` in `extra`).
    WritableVirtio,
}

/// A QEMU virtual machine (TCG: KVM is not usable on the test hosts) with
/// its serial port in a file and a QMP socket for memory and screen dumps.
/// Dropping it stops it by its PID; it runs under `timeout`, so even when
/// the test process dies it ends within `BOOT_LIMIT` + 60 s.
pub struct Vm {
    name: String,
    child: std::process::Child,
    dir: PathBuf,
    serial: PathBuf,
    qmp_path: PathBuf,
    qmp: Option<std::io::BufReader<std::os::unix::net::UnixStream>>,
    started: std::time::Instant,
}

/// Longest wait for any boot milestone; under TCG on 2 cores the kernel
/// prints its first line after about 10 s (research/baseline.md §5).
pub const BOOT_LIMIT: std::time::Duration = std::time::Duration::from_secs(150);

impl Vm {
    /// Starts `image` as `medium` under `firmware`. `extra` goes last on the
    /// command line; without a `-netdev` in it the VM has no network.
    pub fn start(dir: &Path, name: &str, firmware: Firmware, medium: Medium, image: &Path, extra: &[&str]) -> Vm {
        let serial = dir.join(format!("{name}.serial.log"));
        let qmp_path = dir.join(format!("{name}.qmp"));
        let _ = std::fs::remove_file(&qmp_path);
        let mut c = Command::new("timeout");
        c.args(["-k", "5", &(BOOT_LIMIT.as_secs() + 60).to_string(), "qemu-system-x86_64"]);
        c.args(["-accel", "tcg", "-m", "1024", "-display", "none", "-monitor", "none", "-no-reboot"]);
        c.arg("-serial").arg(format!("file:{}", serial.display()));
        c.arg("-qmp").arg(format!("unix:{},server=on,wait=off", qmp_path.display()));
        if firmware == Firmware::Uefi {
            let vars = dir.join(format!("{name}.OVMF_VARS.fd"));
            std::fs::copy(OVMF_VARS, &vars).expect("copying the OVMF variable store");
            c.args(["-machine", "q35", "-drive"]);
            c.arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"));
            c.arg("-drive").arg(format!("if=pflash,format=raw,unit=1,file={}", vars.display()));
        }
        match medium {
            Medium::Cdrom => {
                c.arg("-cdrom").arg(image);
                if firmware == Firmware::Bios {
                    c.args(["-boot", "d"]);
                }
            }
            Medium::Disk => {
                c.arg("-drive").arg(format!("file={},format=raw,if=ide,snapshot=on", image.display()));
            }
            Medium::WritableVirtio => {
                c.arg("-drive").arg(format!("file={},format=raw,if=virtio", image.display()));
            }
        }
        if !extra.contains(&"-netdev") {
            c.args(["-net", "none"]);
        }
        c.args(extra);
        c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        c.stderr(std::fs::File::create(dir.join(format!("{name}.qemu.err"))).expect("qemu stderr file"));
        let child = c.spawn().expect("starting qemu-system-x86_64 under timeout");
        Vm {
            name: name.to_string(),
            child,
            dir: dir.to_path_buf(),
            serial,
            qmp_path,
            qmp: None,
            started: std::time::Instant::now(),
        }
    }

    /// Everything the guest wrote to its first serial port so far.
    pub fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// Polls `seen` until it holds and returns the time since the start;
    /// panics with the serial log and the screen when `limit` passes or QEMU
    /// exits first.
    pub fn wait(&mut self, what: &str, limit: std::time::Duration, mut seen: impl FnMut(&mut Vm) -> bool) -> f64 {
        loop {
            if seen(self) {
                let s = self.started.elapsed().as_secs_f64();
                eprintln!("boot {}: {what} after {s:.1} s", self.name);
                return s;
            }
            let exited = self.child.try_wait().expect("polling qemu").is_some();
            if exited || self.started.elapsed() > limit {
                let why = if exited { "QEMU exited".to_string() } else { format!("{} s passed", limit.as_secs()) };
                let err = std::fs::read_to_string(self.dir.join(format!("{}.qemu.err", self.name))).unwrap_or_default();
                let screen = if exited {
                    String::new()
                } else {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.vga_text()))
                        .unwrap_or_else(|_| "<no screen: QMP failed>".to_string())
                };
                let serial = self.serial();
                let tail: String = serial.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect();
                panic!(
                    "boot {}: {why} before {what}\n--- qemu stderr:\n{err}\n--- serial (tail):\n{tail}\n--- VGA text:\n{screen}",
                    self.name
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    /// Waits until the serial log contains `text`.
    pub fn wait_serial(&mut self, text: &str, limit: std::time::Duration) -> f64 {
        self.wait(&format!("{text:?} on the serial port"), limit, |vm| vm.serial().contains(text))
    }

    /// One QMP command; returns its `return` value (events are skipped).
    pub fn qmp(&mut self, cmd: serde_json::Value) -> serde_json::Value {
        use std::io::{BufRead, Write};
        if self.qmp.is_none() {
            let t0 = std::time::Instant::now();
            let stream = loop {
                match std::os::unix::net::UnixStream::connect(&self.qmp_path) {
                    Ok(s) => break s,
                    Err(_) if t0.elapsed().as_secs() < 20 => std::thread::sleep(std::time::Duration::from_millis(100)),
                    Err(e) => panic!("connecting to QMP {}: {e}", self.qmp_path.display()),
                }
            };
            stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
            let mut r = std::io::BufReader::new(stream);
            let mut greeting = String::new();
            r.read_line(&mut greeting).expect("QMP greeting");
            self.qmp = Some(r);
            self.qmp(serde_json::json!({"execute": "qmp_capabilities"}));
        }
        let r = self.qmp.as_mut().unwrap();
        writeln!(r.get_mut(), "{cmd}").expect("writing to QMP");
        loop {
            let mut line = String::new();
            r.read_line(&mut line).expect("reading from QMP");
            assert!(!line.is_empty(), "QMP closed during {cmd}");
            let v: serde_json::Value = serde_json::from_str(&line).expect("QMP sends JSON");
            if let Some(ret) = v.get("return") {
                return ret.clone();
            }
            assert!(v.get("error").is_none(), "QMP {cmd}: {v}");
        }
    }

    /// The 80x25 VGA text screen (guest memory at 0xb8000), printable ASCII
    /// only; what a BIOS-booted loader shows that prints nothing on serial.
    pub fn vga_text(&mut self) -> String {
        let f = self.dir.join(format!("{}.vga.bin", self.name));
        self.qmp(serde_json::json!({"execute": "pmemsave",
            "arguments": {"val": 0xb8000, "size": 4000, "filename": f.to_str().unwrap()}}));
        let b = std::fs::read(&f).expect("reading the VGA dump");
        let chars: Vec<char> =
            b.iter().step_by(2).map(|&c| if (0x20..0x7f).contains(&c) { c as char } else { ' ' }).collect();
        chars.chunks(80).map(|l| l.iter().collect::<String>().trim_end().to_string()).collect::<Vec<_>>().join("\n")
    }

    /// Fraction of the screen's pixels that have colour `rgb` (QMP
    /// screendump); for graphical screens, like an EFI program's.
    pub fn screen_share(&mut self, rgb: [u8; 3]) -> f64 {
        let f = self.dir.join(format!("{}.screen.ppm", self.name));
        self.qmp(serde_json::json!({"execute": "screendump", "arguments": {"filename": f.to_str().unwrap()}}));
        let b = std::fs::read(&f).expect("reading the screendump");
        // "P6\n<w> <h>\n255\n" then RGB triplets.
        let mut fields = 0;
        let mut start = 0;
        let mut in_field = false;
        for (i, &c) in b.iter().enumerate() {
            if c.is_ascii_whitespace() {
                if in_field {
                    fields += 1;
                    in_field = false;
                    if fields == 4 {
                        start = i + 1;
                        break;
                    }
                }
            } else {
                in_field = true;
            }
        }
        let px = &b[start..];
        let n = px.len() / 3;
        px.chunks_exact(3).filter(|p| *p == rgb).count() as f64 / n.max(1) as f64
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // SIGTERM to `timeout`, which passes it on to QEMU and exits with it.
        let _ =
            rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), rustix::process::Signal::TERM);
        let _ = self.child.wait();
    }
}

/// A one-thread HTTP server on 127.0.0.1 (an ephemeral port) that answers
/// every request 404 and records its request line; a guest on QEMU's user
/// network reaches it at 10.0.2.2:PORT.
pub struct HttpProbe {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpProbe {
    pub fn start() -> HttpProbe {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (req, st) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let mut s = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        continue;
                    }
                    Err(_) => continue,
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf);
                req.lock().unwrap().push(text.lines().next().unwrap_or("").to_string());
                let _ = s.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        HttpProbe { port, requests, stop, thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request lines received so far (`GET /path HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for HttpProbe {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
