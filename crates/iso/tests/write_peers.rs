//! Images written by slipway, read back by the reference tools.

use std::path::Path;
use std::process::Command;

use slipway_iso::model::Image;
use slipway_iso::source::tree_from_dir;
use slipway_iso::write::write_image;

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success()).unwrap_or(false)
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sample(root: &Path) {
    sh(&format!(
        "cd {r} && mkdir -p a/b/c/d/e/f/g/h/i/j && echo deep > a/b/c/d/e/f/g/h/i/j/file.txt && \
         echo hello > hello.txt && : > empty && ln -s hello.txt rel && ln -s /etc/passwd abs && \
         ln hello.txt hard && chmod 4755 hello.txt && mkdir -p 'Mixed Case Dir' && \
         echo x > 'Mixed Case Dir/a very long file name that goes on and on beyond sixty four characters for joliet.txt' && \
         head -c 300000 /dev/urandom > big.bin && mkfifo fifo && \
         ln -s aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/../c longlink && \
         touch -d '2001-02-03 04:05:06' hello.txt",
        r = root.display()
    ));
}

#[test]
fn xorriso_bsdtar_isoinfo_read_what_we_write() {
    if !have("xorriso") || !have("bsdtar") {
        eprintln!("skipped: xorriso or bsdtar missing (run scripts/install-deps.sh)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    sample(&src);
    let (tree, _) = tree_from_dir(&src).unwrap();
    let iso = t.path().join("out.iso");
    let image = Image { joliet: true, created: 1_700_000_000, ..Default::default() };
    write_image(tree, &image, None, &iso, &|_, _| {}).unwrap();
    let find = sh(&format!("xorriso -indev {} -find / 2>/dev/null", iso.display()));
    assert!(find.contains("'/a/b/c/d/e/f/g/h/i/j/file.txt'"), "{find}");
    assert!(find.contains("'/longlink'"), "{find}");
    let check = sh(&format!("xorriso -indev {} -check_media -- 2>&1", iso.display()));
    assert!(check.contains("+ good"), "{check}");
    let x = t.path().join("x");
    std::fs::create_dir(&x).unwrap();
    sh(&format!("bsdtar -xf {} -C {}", iso.display(), x.display()));
    let d = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg("-x")
        .arg("fifo")
        .arg(&src)
        .arg(&x)
        .output()
        .unwrap();
    assert!(d.status.success(), "diff: {}", String::from_utf8_lossy(&d.stdout));
    let lt = sh(&format!("readlink {}/longlink", x.display()));
    assert_eq!(lt.trim(), std::fs::read_link(src.join("longlink")).unwrap().to_str().unwrap());
    if have("isoinfo") {
        sh(&format!("isoinfo -d -i {}", iso.display()));
        let rr = sh(&format!("isoinfo -R -l -i {}", iso.display()));
        assert!(rr.contains("hello.txt"), "{rr}");
        let j = sh(&format!("isoinfo -J -l -i {}", iso.display()));
        assert!(j.contains("Mixed Case Dir"), "{j}");
    }
}

/// Builds an ISO of the directory in `SLIPWAY_ISO_BENCH_SRC` to
/// `SLIPWAY_ISO_BENCH_OUT` (a manual timing aid; skipped otherwise).
#[test]
fn manual_build_from_env() {
    let (Ok(src), Ok(out)) = (std::env::var("SLIPWAY_ISO_BENCH_SRC"), std::env::var("SLIPWAY_ISO_BENCH_OUT")) else {
        return;
    };
    let t = std::time::Instant::now();
    let (tree, _) = tree_from_dir(Path::new(&src)).unwrap();
    let image = Image { joliet: true, created: 1_700_000_000, ..Default::default() };
    let r = write_image(tree, &image, None, Path::new(&out), &|_, _| {}).unwrap();
    eprintln!("built {} bytes in {:?}", r.bytes, t.elapsed());
}

/// Every name length from 1 to 255, for files, directories and symlinks
/// (with targets up to 1020 bytes), so that every record and continuation
/// size boundary is crossed; the reader and xorriso must see every name.
#[test]
fn every_name_length_reads_back() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for kind in ["f", "d", "l"] {
        std::fs::create_dir_all(src.join(kind)).unwrap();
    }
    let mut expected = Vec::new();
    for n in 1..=255usize {
        let name: String = std::iter::repeat_n('x', n).collect();
        std::fs::write(src.join("f").join(&name), n.to_string()).unwrap();
        std::fs::create_dir(src.join("d").join(&name)).unwrap();
        let target: String =
            (0..n * 4).map(|i| if i % 37 == 36 { '/' } else { (b'a' + (i % 26) as u8) as char }).collect();
        std::os::unix::fs::symlink(&target, src.join("l").join(&name)).unwrap();
        expected.push((name, target));
    }
    let (tree, _) = tree_from_dir(&src).unwrap();
    let iso = t.path().join("names.iso");
    let image = Image { joliet: true, created: 1_700_000_000, ..Default::default() };
    write_image(tree, &image, None, &iso, &|_, _| {}).unwrap();

    let img = slipway_iso::read::IsoImage::open(&iso).unwrap();
    let back = img.tree().unwrap();
    for (name, target) in &expected {
        for kind in ["f", "d", "l"] {
            let path = vec![kind.as_bytes().to_vec(), name.as_bytes().to_vec()];
            let e = back.get(&path).unwrap_or_else(|| panic!("/{kind}/{} ({} bytes) is missing", name, name.len()));
            if kind == "l" {
                match &e.kind {
                    slipway_iso::model::Kind::Symlink(t) => {
                        assert_eq!(t, target.as_bytes(), "/l/ name of {} bytes", name.len())
                    }
                    k => panic!("/l/{}: {}", name.len(), k.type_name()),
                }
            }
        }
    }
    if have("xorriso") {
        let find = sh(&format!("xorriso -indev {} -find / 2>/dev/null | wc -l", iso.display()));
        assert_eq!(find.trim(), (1 + 3 + 3 * 255).to_string());
    }
    if have("bsdtar") {
        let x = t.path().join("x");
        std::fs::create_dir(&x).unwrap();
        sh(&format!("bsdtar -xf {} -C {}", iso.display(), x.display()));
        let d = Command::new("diff").arg("-r").arg("--no-dereference").arg(&src).arg(&x).output().unwrap();
        assert!(d.status.success(), "bsdtar extract differs: {}", String::from_utf8_lossy(&d.stdout));
    }
}

/// A symlink target xorriso could not load is refused, naming the entry.
#[test]
fn symlink_targets_over_1023_bytes_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::os::unix::fs::symlink("a".repeat(1024), src.join("long")).unwrap();
    let (tree, _) = tree_from_dir(&src).unwrap();
    let iso = t.path().join("x.iso");
    let err = write_image(tree, &Image::default(), None, &iso, &|_, _| {}).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("/long") && msg.contains("1024 bytes"), "{msg}");
    assert!(!iso.exists());
}

/// A build killed half-way leaves `.NAME.tmp-PID`; the next build of the
/// same output removes it when that process is gone, and leaves others'.
#[test]
fn stale_temporary_images_of_killed_builds_are_removed() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), "a").unwrap();
    // No process has pid 4194304 (above the kernel's pid_max limit).
    let stale = t.path().join(".out.iso.tmp-4194304");
    let other = t.path().join(".other.iso.tmp-4194304");
    let live = t.path().join(format!(".out.iso.tmp-{}", std::os::unix::process::parent_id()));
    for f in [&stale, &other, &live] {
        std::fs::write(f, "partial").unwrap();
    }
    let (tree, _) = tree_from_dir(&src).unwrap();
    write_image(tree, &Image::default(), None, &t.path().join("out.iso"), &|_, _| {}).unwrap();
    assert!(!stale.exists(), "the killed build's temporary image is still there");
    assert!(other.exists() && live.exists(), "a temporary file of another output or a live process went away");
}
