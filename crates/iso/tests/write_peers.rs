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
