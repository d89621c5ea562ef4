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
pub fn ok(mut c: Command) -> String {
    let o = c.output().expect("running command");
    assert!(
        o.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn out(mut c: Command) -> Output {
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
    let o = Command::new("bsdtar")
        .current_dir(dir)
        .args([
            "-cf",
            "-",
            "--format=mtree",
            "--options=!all,type,uid,gid,mode,time,size,sha256,link,device,nlink",
            ".",
        ])
        .output()
        .expect("bsdtar");
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
