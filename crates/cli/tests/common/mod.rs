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
