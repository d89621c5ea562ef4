//! Crash safety, damage detection and hostile input, through the real
//! `slipway` binary:
//!
//! - `kill -9` at any moment of a capture leaves a store that `verify`
//!   accepts, lists no half-made image, and a rerun captures correctly;
//! - one flipped byte, a truncated pack or a missing pack is reported by
//!   `verify` (naming the image and path) and refused by `apply`;
//! - a store holding forged, hostile directory trees (names such as `..`,
//!   `a/b` or absolute paths, repeated names, data posing as a directory)
//!   is refused by `apply`, reported by `verify`, and nothing outside the
//!   target is ever written;
//! - `apply` into a non-empty target needs `--force`, and `--force` never
//!   writes through a symlink it finds there.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_fstree::{EntryName, Metadata, Timestamp};
use slipway_store::{BlobId, ChunkRef, EntryKind, ImageRecord, ImageStats, RootDir, Tree, TreeEntry};

const BIN: &str = env!("CARGO_BIN_EXE_slipway");

// ---------------------------------------------------------------------------
// Running the binary

fn slipway<S: AsRef<OsStr>>(store: &Path, args: impl IntoIterator<Item = S>) -> Output {
    Command::new(BIN)
        .arg("--store")
        .arg(store)
        .arg("--quiet")
        .args(args)
        .env_remove("SLIPWAY_STORE")
        .stdin(Stdio::null())
        .output()
        .expect("running slipway")
}

fn show(what: &str, o: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs slipway and asserts it succeeded; returns stdout.
fn ok<S: AsRef<OsStr>>(store: &Path, args: impl IntoIterator<Item = S> + Clone) -> String {
    let what = args.clone().into_iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>();
    let o = slipway(store, args);
    assert!(o.status.success(), "{}", show(&format!("slipway {}", what.join(" ")), &o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(store: &Path, args: &[&str]) -> Value {
    let out = ok(store, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("slipway {args:?} printed invalid JSON ({e}):\n{out}"))
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn verify_is_clean(store: &Path, when: &str) {
    let o = slipway(store, ["verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&format!("verify {when}"), &o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().any(|l| l.starts_with("ok: ")), "{}", show(&format!("verify {when}"), &o));
}

/// Labels (`NAME@V`) of every image version, from `images --json`.
fn image_labels(store: &Path) -> Vec<String> {
    let v = json(store, &["images", "--json"]);
    v["images"]
        .as_array()
        .expect("images --json has an images array")
        .iter()
        .map(|i| i["image"].as_str().expect("image label").to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// Deterministic test data

/// SplitMix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Incompressible bytes.
    fn random(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len.next_multiple_of(8)];
        for c in out.chunks_exact_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Log-like text: compresses several times over but does not repeat
    /// exactly, so it still makes many distinct chunks.
    fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "kernel", "mount", "service", "started", "stopped", "failed", "eth0", "link", "up", "down", "user",
            "session", "opened", "closed", "for", "root", "by", "uid=0", "cron", "daemon", "network", "dhcp", "lease",
            "renewed", "disk", "sda1", "clean", "journal", "rotated", "warning", "error", "info", "debug",
        ];
        let mut out = Vec::with_capacity(len + 128);
        let mut line = 0u64;
        while out.len() < len {
            line += 1;
            out.extend_from_slice(format!("{:010} host{:02} ", 1_700_000_000 + line * 7, line % 13).as_bytes());
            let n = 4 + self.below(10);
            for _ in 0..n {
                out.extend_from_slice(WORDS[self.below(WORDS.len() as u64) as usize].as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(format!("[{}]\n", self.below(100_000)).as_bytes());
        }
        out.truncate(len);
        out
    }
}

fn write_file(path: &Path, data: &[u8], mode: u32) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A source tree of about 100 MB: a few thousand small files (some of them
/// duplicates), large incompressible files (one above the 16 MiB streaming
/// threshold), large compressible logs, symlinks, empty files and
/// directories, and assorted modes. Returns its size in bytes.
fn make_big_tree(root: &Path) -> u64 {
    let mut rng = Rng(0x5EED_0001);
    let mut total = 0u64;
    let mut small: Vec<Vec<u8>> = Vec::new();
    const MODES: [u32; 6] = [0o644, 0o600, 0o755, 0o444, 0o4755, 0o640];
    for i in 0..3000u32 {
        let dir = root.join(format!("small/d{:02}/e{}", i % 40, i % 3));
        let data = if i % 10 == 9 && !small.is_empty() {
            let k = rng.below(small.len() as u64) as usize;
            small[k].clone()
        } else {
            let len = rng.below(9000) as usize;
            if i % 2 == 0 {
                rng.random(len)
            } else {
                rng.text(len)
            }
        };
        total += data.len() as u64;
        write_file(&dir.join(format!("f{i:04}.dat")), &data, MODES[i as usize % MODES.len()]);
        if small.len() < 200 {
            small.push(data);
        }
    }
    for i in 0..4 {
        let data = rng.random(12 << 20);
        total += data.len() as u64;
        write_file(&root.join(format!("big/random-{i}.bin")), &data, 0o644);
    }
    let streamed = rng.random(18 << 20);
    total += streamed.len() as u64;
    write_file(&root.join("big/streamed.img"), &streamed, 0o600);
    for i in 0..2 {
        let data = rng.text(8 << 20);
        total += data.len() as u64;
        write_file(&root.join(format!("logs/syslog.{i}")), &data, 0o640);
    }
    // A copy of part of a large file: deduplicated, but still read.
    write_file(
        &root.join("big/copy-of-random-0-head.bin"),
        &fs::read(root.join("big/random-0.bin")).unwrap()[..4 << 20],
        0o644,
    );
    total += 4 << 20;
    write_file(&root.join("etc/empty"), b"", 0o644);
    fs::create_dir_all(root.join("var/empty-dir")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    symlink("../big/random-1.bin", root.join("etc/link-rel")).unwrap();
    symlink("/nonexistent/target", root.join("etc/link-dangling")).unwrap();
    total
}

/// Asserts `b` has exactly the entries of `a`: names, types, mode bits,
/// owners, file contents and symlink targets.
fn assert_same_tree(a: &Path, b: &Path) {
    fn walk(a: &Path, b: &Path, rel: &str, n: &mut u64) {
        let names = |d: &Path| -> Vec<std::ffi::OsString> {
            let mut v: Vec<_> = fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect();
            v.sort();
            v
        };
        let (na, nb) = (names(a), names(b));
        assert_eq!(na, nb, "entries of {rel}/ differ");
        for name in na {
            let (pa, pb) = (a.join(&name), b.join(&name));
            let r = format!("{rel}/{}", name.to_string_lossy());
            let (ma, mb) = (fs::symlink_metadata(&pa).unwrap(), fs::symlink_metadata(&pb).unwrap());
            assert_eq!(ma.file_type(), mb.file_type(), "type of {r}");
            *n += 1;
            if ma.file_type().is_symlink() {
                assert_eq!(fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap(), "symlink target of {r}");
                continue;
            }
            assert_eq!(ma.mode() & 0o7777, mb.mode() & 0o7777, "mode of {r}");
            assert_eq!((ma.uid(), ma.gid()), (mb.uid(), mb.gid()), "owner of {r}");
            if ma.is_dir() {
                walk(&pa, &pb, &r, n);
            } else if ma.is_file() {
                assert_eq!(ma.len(), mb.len(), "size of {r}");
                assert!(fs::read(&pa).unwrap() == fs::read(&pb).unwrap(), "contents of {r} differ");
            }
        }
    }
    let mut n = 0;
    walk(a, b, "", &mut n);
    assert!(n > 0, "compared an empty tree");
}

fn pack_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in fs::read_dir(store.join("packs")).unwrap() {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// 1. kill -9 during capture

/// Captures killed per run, each followed by a verify (together 1-2 s in a
/// debug build). This samples moments: a kill rarely lands inside the few
/// milliseconds a pack or index is being written, so more rounds catch more.
const ROUNDS: u32 = 12;

#[test]
fn capture_killed_at_any_moment_leaves_a_store_that_verifies_and_a_rerun_is_correct() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let bytes = make_big_tree(&src);
    assert!(bytes > 60 << 20, "source tree is {bytes} bytes");

    // How long an uninterrupted capture takes here, to spread the kills over
    // it (after flushing the new source tree, whose writeback would otherwise
    // slow the capture's fsyncs down).
    let _ = Command::new("sync").status();
    let timing_store = t.path().join("timing-store");
    ok(&timing_store, ["store", "init"]);
    let started = Instant::now();
    ok(&timing_store, ["capture", p(&src), "--name", "timing"]);
    let full = started.elapsed();
    let packs = pack_files(&timing_store).len();
    eprintln!("full capture of {} MB: {:.2} s, {packs} packs", bytes >> 20, full.as_secs_f64());
    assert!(packs > 16, "the tree should fill more packs ({packs}) than one index checkpoint");
    fs::remove_dir_all(&timing_store).unwrap();

    // Kill captures at pseudo-random moments. Once a capture has finished,
    // later ones in the same store only re-read and deduplicate, so the kills
    // would stop landing while packs and indexes are written: carry on in a
    // fresh store then. A store keeps what every killed capture left in it.
    let mut rng = Rng(0xC0FF_EE00);
    let (mut completed, mut killed) = (0u32, 0u32);
    let full_ms = (full.as_millis() as u64).max(100);
    let mut stores = vec![(t.path().join("store-0"), 0u32)];
    ok(&stores[0].0, ["store", "init"]);
    for round in 0..ROUNDS {
        let store = stores.last().unwrap().0.clone();
        let delay = Duration::from_millis(50 + rng.below(full_ms - 40));
        let mut child = Command::new(BIN)
            .arg("--store")
            .arg(&store)
            .args(["--quiet", "capture", p(&src), "--name", "crash"])
            .env_remove("SLIPWAY_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning slipway capture");
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; fails harmlessly if the capture already ended
        let out = child.wait_with_output().unwrap();
        let finished = match (out.status.success(), out.status.signal()) {
            (true, _) => true,
            (false, Some(9)) => false,
            _ => panic!("{}", show(&format!("capture in round {round} failed on its own"), &out)),
        };
        eprintln!("round {round}: {} after {} ms: {}", store.display(), delay.as_millis(), out.status);
        verify_is_clean(&store, &format!("after round {round} (capture killed after {} ms)", delay.as_millis()));
        if finished {
            completed += 1;
            stores.last_mut().unwrap().1 += 1;
            if round + 1 < ROUNDS {
                let next = t.path().join(format!("store-{}", stores.len()));
                ok(&next, ["store", "init"]);
                stores.push((next, 0));
            }
        } else {
            killed += 1;
        }
    }
    eprintln!("{killed} captures killed, {completed} finished before the kill, {} stores", stores.len());
    assert!(killed >= ROUNDS / 3, "most captures should have been killed mid-way, but only {killed} of {ROUNDS} were");

    let store = stores.last().unwrap().0.clone();
    ok(&store, ["capture", p(&src), "--name", "crash"]);
    stores.last_mut().unwrap().1 += 1;
    verify_is_clean(&store, "after the final capture");

    // Only whole images are listed: versions are numbered without gaps, and
    // every version has the root tree of the final, uninterrupted capture
    // (trees are content-addressed, so a version made from a partial walk
    // could not have it); verify above re-read every chunk each one uses.
    let root_of = |store: &Path, label: &str| json(store, &["info", label, "--json"])["record"]["root"]["tree"].clone();
    let whole = root_of(&store, "crash");
    assert!(whole.is_string(), "info --json gives the root tree: {whole}");
    for (s, finished) in &stores {
        let labels = image_labels(s);
        let n = labels.len() as u32;
        // A capture killed just after writing its ref counts as a version too.
        assert!(n >= *finished, "{}: versions {labels:?} after {finished} finished captures", s.display());
        let want: Vec<String> = (1..=n).map(|v| format!("crash@{v}")).collect();
        assert_eq!(labels, want, "{}: versions are numbered without gaps", s.display());
        for l in &labels {
            assert_eq!(root_of(s, l), whole, "{} {l} does not hold the whole source tree", s.display());
        }
    }

    let target = t.path().join("target");
    ok(&store, ["apply", "crash", p(&target)]);
    assert_same_tree(&src, &target);
}

// ---------------------------------------------------------------------------
// 2. Damaged packs

/// Paths of the regular files in [`small_tree`], as verify and apply name them.
const SMALL_FILES: [&str; 4] = ["/a.txt", "/big.txt", "/sub/c.bin", "/sub/d.txt"];

/// A few files, one of them 1 MiB of compressible text: every chunk lands in
/// one data frame (one pack), the trees in another.
fn small_tree(root: &Path) {
    let mut rng = Rng(0xDA7A);
    write_file(&root.join("a.txt"), b"alpha\n", 0o644);
    write_file(&root.join("big.txt"), &rng.text(1 << 20), 0o644);
    write_file(&root.join("sub/c.bin"), &rng.random(5000), 0o600);
    write_file(&root.join("sub/d.txt"), b"delta\n", 0o755);
}

/// A store holding `small_tree` captured as `dmg@1`. Returns (tempdir, src,
/// store).
fn damage_fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (src, store) = (t.path().join("src"), t.path().join("store"));
    small_tree(&src);
    ok(&store, ["store", "init"]);
    ok(&store, ["capture", p(&src), "--name", "dmg"]);
    verify_is_clean(&store, "before any damage");
    (t, src, store)
}

/// The largest pack: the one holding the file data.
fn largest_pack(store: &Path) -> PathBuf {
    let packs = pack_files(store);
    assert!(packs.len() >= 2, "expected a data pack and a tree pack, got {packs:?}");
    packs.into_iter().max_by_key(|p| fs::metadata(p).unwrap().len()).unwrap()
}

/// Runs verify expecting it to find damage; returns its stdout.
fn verify_finds_damage(store: &Path, what: &str) -> String {
    let o = slipway(store, ["verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&format!("verify after {what}"), &o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("DAMAGED"), "{}", show(&format!("verify after {what}"), &o));
    out
}

/// Asserts `apply dmg` fails, and returns its stderr.
fn apply_refused(store: &Path, target: &Path, what: &str) -> String {
    let o = slipway(store, ["apply", "dmg", p(target)]);
    assert!(!o.status.success(), "{}", show(&format!("apply after {what} succeeded"), &o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("dmg@1"), "apply after {what} does not name the image:\n{err}");
    assert!(SMALL_FILES.iter().any(|f| err.contains(f)), "apply after {what} does not name a file:\n{err}");
    err
}

#[test]
fn one_flipped_byte_in_a_pack_is_reported_by_verify_and_refused_by_apply() {
    let (t, _src, store) = damage_fixture();
    let pack = largest_pack(&store);
    let mut bytes = fs::read(&pack).unwrap();
    // "SLWPACK1" | frames | trailer | u64le trailer offset | "SLWPEND1"
    assert_eq!(&bytes[..8], b"SLWPACK1");
    assert_eq!(&bytes[bytes.len() - 8..], b"SLWPEND1");
    let trailer = u64::from_le_bytes(bytes[bytes.len() - 16..bytes.len() - 8].try_into().unwrap()) as usize;
    assert!(trailer > 8 + 1000 && trailer < bytes.len(), "trailer offset {trailer} of a {}-byte pack", bytes.len());
    let at = (8 + trailer) / 2;
    bytes[at] ^= 0x10;
    fs::write(&pack, &bytes).unwrap();

    let out = verify_finds_damage(&store, "flipping one byte");
    let named: Vec<&str> = SMALL_FILES.iter().copied().filter(|f| out.contains(&format!("dmg@1 {f} "))).collect();
    assert!(!named.is_empty(), "verify names no damaged file of dmg@1:\n{out}");

    let o = slipway(&store, ["verify", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", show("verify --json", &o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("verify --json prints JSON");
    assert_eq!(v["ok"], Value::Bool(false), "{v:#}");
    let uses = v["report"]["damaged_uses"].as_array().expect("damaged_uses is an array");
    assert!(!uses.is_empty(), "no damaged uses in {v:#}");
    for u in uses {
        assert_eq!(u["image"], "dmg@1", "{u}");
        let path = u["path"].as_str().expect("a damaged use has a path");
        assert!(SMALL_FILES.contains(&path), "damaged use of an unknown path: {u}");
    }

    let err = apply_refused(&store, &t.path().join("target"), "flipping one byte");
    assert!(err.contains("chunk") && err.contains("damaged"), "apply does not say a chunk is damaged:\n{err}");

    let o = slipway(&store, ["cat", "dmg", "/big.txt"]);
    assert!(!o.status.success(), "{}", show("cat of a damaged file succeeded", &o));
}

#[test]
fn missing_data_pack_is_reported_by_verify_and_refused_by_apply() {
    let (t, _src, store) = damage_fixture();
    fs::remove_file(largest_pack(&store)).unwrap();
    let out = verify_finds_damage(&store, "deleting the data pack");
    assert!(out.contains("missing"), "verify does not say the pack is missing:\n{out}");
    assert!(SMALL_FILES.iter().any(|f| out.contains(&format!("dmg@1 {f} "))), "no damaged file named:\n{out}");
    let err = apply_refused(&store, &t.path().join("target"), "deleting the data pack");
    assert!(err.contains("missing"), "apply does not say the pack is missing:\n{err}");
}

#[test]
fn missing_tree_pack_is_reported_by_verify_and_refused_by_apply() {
    let (t, _src, store) = damage_fixture();
    let small = pack_files(&store).into_iter().min_by_key(|p| fs::metadata(p).unwrap().len()).unwrap();
    fs::remove_file(small).unwrap();
    let out = verify_finds_damage(&store, "deleting the tree pack");
    assert!(out.contains("dmg@1 / ") && out.contains("directory listing"), "root directory not named:\n{out}");
    let o = slipway(&store, ["apply", "dmg", p(&t.path().join("target"))]);
    assert!(!o.status.success(), "{}", show("apply without the tree pack", &o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("dmg@1") && err.contains("missing"), "{err}");
}

#[test]
fn truncated_pack_is_reported_by_verify_and_refused_by_apply() {
    let (t, _src, store) = damage_fixture();
    let pack = largest_pack(&store);
    let len = fs::metadata(&pack).unwrap().len();
    fs::OpenOptions::new().write(true).open(&pack).unwrap().set_len(len / 2).unwrap();
    let out = verify_finds_damage(&store, "truncating the data pack");
    assert!(SMALL_FILES.iter().any(|f| out.contains(&format!("dmg@1 {f} "))), "no damaged file named:\n{out}");
    let err = apply_refused(&store, &t.path().join("target"), "truncating the data pack");
    assert!(err.contains("chunk") && err.contains("damaged"), "apply does not say a chunk is damaged:\n{err}");
}

// ---------------------------------------------------------------------------
// 3. Hostile store content

/// A zstd frame holding `data` in raw (stored) blocks: valid zstd that any
/// decoder reads, written without a compressor.
fn zstd_stored(data: &[u8]) -> Vec<u8> {
    // Magic, then a header descriptor: 8-byte content size, single segment.
    let mut out = vec![0x28, 0xB5, 0x2F, 0xFD, 0xE0];
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let blocks: Vec<&[u8]> = if data.is_empty() { vec![data] } else { data.chunks(128 << 10).collect() };
    for (i, b) in blocks.iter().enumerate() {
        let last = u32::from(i + 1 == blocks.len());
        let header = last | (b.len() as u32) << 3; // block type 0: raw
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(b);
    }
    out
}

const DATA: u8 = 0;
const TREE: u8 = 1;

/// A blob's id: file data and tree objects are hashed in different domains.
fn blob_id(bytes: &[u8], kind: u8) -> BlobId {
    if kind == TREE {
        BlobId::of_tree(bytes)
    } else {
        BlobId::of(bytes)
    }
}

/// Writes one pack holding `blobs` (bytes, kind) in one frame, and an index
/// file naming them, laid out as `crates/store/src/{pack,index}.rs` write
/// them.
fn forge_pack(store: &Path, blobs: &[(Vec<u8>, u8)]) {
    let all: Vec<u8> = blobs.iter().flat_map(|(b, _)| b.iter().copied()).collect();
    let frame = zstd_stored(&all);
    // One 57-byte trailer entry per blob: id, kind, frame offset, frame
    // compressed and uncompressed length, offset and length in the frame.
    let mut table = Vec::new();
    let mut off = 0u32;
    for (b, kind) in blobs {
        table.extend_from_slice(&blob_id(b, *kind).0);
        table.push(*kind);
        table.extend_from_slice(&8u64.to_le_bytes()); // the frame follows the magic
        table.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        table.extend_from_slice(&(all.len() as u32).to_le_bytes());
        table.extend_from_slice(&off.to_le_bytes());
        table.extend_from_slice(&(b.len() as u32).to_le_bytes());
        off += b.len() as u32;
    }
    let mut pack = b"SLWPACK1".to_vec();
    pack.extend_from_slice(&frame);
    let trailer = pack.len() as u64;
    pack.extend_from_slice(&zstd_stored(&table));
    pack.extend_from_slice(&trailer.to_le_bytes());
    pack.extend_from_slice(b"SLWPEND1");
    let pack_id = BlobId::of(&pack);
    let hex = pack_id.to_hex();
    fs::create_dir_all(store.join("packs").join(&hex[..2])).unwrap();
    fs::write(store.join("packs").join(&hex[..2]).join(format!("{hex}.pack")), &pack).unwrap();

    let mut body = Vec::new();
    for e in table.chunks_exact(57) {
        body.extend_from_slice(&pack_id.0);
        body.extend_from_slice(e);
    }
    let mut index = b"SLWIDX01".to_vec();
    index.extend_from_slice(&zstd_stored(&body));
    fs::write(store.join("index").join(format!("{}.idx", BlobId::of(&index))), &index).unwrap();
}

/// Writes a record for `name@1` with root tree `tree`, and its ref.
fn forge_image(store: &Path, name: &str, tree: BlobId) {
    let record = ImageRecord {
        format: "slipway-image".into(),
        format_version: 1,
        name: name.into(),
        version: 1,
        description: "forged by a test".into(),
        created: 1_600_000_000,
        parent: None,
        root: RootDir { mode: 0o755, uid: 0, gid: 0, mtime: (1_600_000_000, 0), xattrs: vec![], tree },
        stats: ImageStats::default(),
        packages: vec![],
    };
    let bytes = record.encode();
    let id = BlobId::of(&bytes);
    fs::write(store.join("records").join(format!("{id}.json")), &bytes).unwrap();
    fs::create_dir_all(store.join("refs").join(name)).unwrap();
    fs::write(store.join("refs").join(name).join("1"), format!("{id}\n")).unwrap();
}

fn entry(name: &str, mode: u32, kind: EntryKind) -> TreeEntry {
    TreeEntry {
        name: EntryName::new(name.as_bytes()).unwrap(),
        meta: Metadata { mode, uid: 0, gid: 0, mtime: Timestamp { sec: 1_600_000_000, nsec: 0 }, xattrs: vec![] },
        kind,
        hardlink: None,
    }
}

fn file(name: &str, content: &[u8]) -> TreeEntry {
    let chunk = ChunkRef { id: BlobId::of(content), len: content.len() as u32 };
    entry(name, 0o644, EntryKind::File { size: content.len() as u64, chunks: vec![chunk], extents: None })
}

fn dir(name: &str, tree: &[u8]) -> TreeEntry {
    entry(name, 0o755, EntryKind::Dir { tree: BlobId::of_tree(tree) })
}

/// Encodes `entries` as a tree, then renames the entry `from` to `to` in the
/// encoded bytes (same length, so the CBOR stays well-formed): how a tree
/// with a name the library would never build is forged.
fn forged_tree(entries: Vec<TreeEntry>, from: &str, to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut bytes = Tree { entries }.encode();
    let hits: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i..].starts_with(from.as_bytes())).collect();
    assert_eq!(hits.len(), 1, "{from:?} must occur once in the encoded tree");
    bytes[hits[0]..hits[0] + to.len()].copy_from_slice(to);
    bytes
}

/// Every path below `root` whose name is `name`.
fn find_named(root: &Path, name: &str, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        if e.file_name() == name {
            out.push(e.path());
        }
        if e.file_type().unwrap().is_dir() {
            find_named(&e.path(), name, out);
        }
    }
}

#[test]
fn hostile_trees_in_the_store_are_refused_and_nothing_outside_the_target_is_written() {
    let t = tempfile::tempdir().unwrap();
    let sandbox = t.path();
    let store = sandbox.join("store");
    let outside = sandbox.join("outside");
    write_file(&outside.join("keep"), b"original\n", 0o644);
    ok(&store, ["store", "init"]);

    let pwned: &[u8] = b"pwned\n";
    // A directory holding a file "pwned": written anywhere outside a target,
    // the test fails.
    let pwn_tree = Tree { entries: vec![file("pwned", pwned)] }.encode();
    let outside_name = p(&outside).to_string();
    assert!(outside_name.len() <= 255 && outside_name.starts_with('/'));

    // Well-formed trees first, to show the forged store is one slipway reads.
    let sub = Tree { entries: vec![file("x.txt", b"x\n")] }.encode();
    let good = Tree {
        entries: vec![
            file("hello.txt", b"hello\n"),
            entry("link", 0o777, EntryKind::Symlink { target: b"hello.txt".to_vec() }),
            dir("sub", &sub),
        ],
    }
    .encode();

    // Hostile trees.
    let dotdot = forged_tree(vec![dir("PP", &pwn_tree)], "PP", b"..");
    let slash = forged_tree(vec![dir("AAAAAAAAAA", &pwn_tree)], "AAAAAAAAAA", b"../outside");
    let absolute = forged_tree(
        vec![dir(&"Q".repeat(outside_name.len()), &pwn_tree)],
        &"Q".repeat(outside_name.len()),
        outside_name.as_bytes(),
    );
    let repeated = forged_tree(
        vec![
            entry("evil-a", 0o777, EntryKind::Symlink { target: outside_name.clone().into_bytes() }),
            dir("evil-b", &pwn_tree),
        ],
        "evil-b",
        b"evil-a",
    );
    // ok/../../pwned: climbs out two levels from inside a legitimate directory.
    let deep1 = forged_tree(vec![dir("PP", &dotdot)], "PP", b"..");
    let deep = Tree { entries: vec![dir("ok", &deep1)] }.encode();
    // A data blob whose bytes are a valid tree, named as a directory.
    let as_data = Tree { entries: vec![entry("pwned", 0o600, EntryKind::Fifo)] }.encode();

    let blobs = vec![
        (pwned.to_vec(), DATA),
        (b"hello\n".to_vec(), DATA),
        (b"x\n".to_vec(), DATA),
        (as_data.clone(), DATA),
        (pwn_tree, TREE),
        (sub, TREE),
        (good.clone(), TREE),
        (dotdot.clone(), TREE),
        (slash.clone(), TREE),
        (absolute.clone(), TREE),
        (repeated.clone(), TREE),
        (deep1, TREE),
        (deep.clone(), TREE),
    ];
    forge_pack(&store, &blobs);

    forge_image(&store, "good", BlobId::of_tree(&good));
    verify_is_clean(&store, "with only well-formed forged images");
    let good_target = sandbox.join("t-good");
    ok(&store, ["apply", "good", p(&good_target)]);
    assert_eq!(fs::read(good_target.join("hello.txt")).unwrap(), b"hello\n");
    assert_eq!(fs::read(good_target.join("sub/x.txt")).unwrap(), b"x\n");
    assert_eq!(fs::read_link(good_target.join("link")).unwrap(), Path::new("hello.txt"));

    // (image name, root tree, what apply must say)
    let images = [
        ("dotdot", BlobId::of_tree(&dotdot), "invalid tree"),
        ("slash", BlobId::of_tree(&slash), "invalid tree"),
        ("absolute", BlobId::of_tree(&absolute), "invalid tree"),
        ("repeated", BlobId::of_tree(&repeated), "invalid tree"),
        ("deep", BlobId::of_tree(&deep), "invalid tree"),
        ("data-as-dir", BlobId::of(&as_data), "file data"),
    ];
    for (name, tree, _) in &images {
        forge_image(&store, name, *tree);
    }

    let out = verify_finds_damage(&store, "forging hostile trees");
    for (name, _, _) in &images {
        assert!(out.contains(&format!("{name}@1 ")), "verify does not report {name}@1:\n{out}");
    }
    assert!(!out.contains("good@1"), "verify reports the well-formed image:\n{out}");

    for (name, _, why) in &images {
        let target = sandbox.join(format!("t-{name}"));
        let o = slipway(&store, ["apply", name, p(&target)]);
        assert!(!o.status.success(), "{}", show(&format!("apply of hostile image {name}"), &o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("{name}@1")) && err.contains(why), "apply of {name}: {err}");
        // Forcing changes nothing about what may be written.
        let o = slipway(&store, ["apply", name, p(&target), "--force"]);
        assert!(!o.status.success(), "{}", show(&format!("apply --force of hostile image {name}"), &o));
    }

    let mut found = Vec::new();
    find_named(sandbox, "pwned", &mut found);
    assert!(found.is_empty(), "hostile images wrote {found:?}");
    let mut top: Vec<String> =
        fs::read_dir(sandbox).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    top.sort();
    let mut want: Vec<String> = ["store", "outside", "t-good"].iter().map(|s| s.to_string()).collect();
    want.extend(images.iter().map(|(n, _, _)| format!("t-{n}")));
    want.sort();
    assert_eq!(top, want, "entries next to the targets");
    let kept: Vec<_> = fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(kept, ["keep"], "the directory outside the targets changed");
    assert_eq!(fs::read(outside.join("keep")).unwrap(), b"original\n");
}

// ---------------------------------------------------------------------------
// 4. Non-empty targets

fn small_image() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (src, store) = (t.path().join("src"), t.path().join("store"));
    small_tree(&src);
    ok(&store, ["store", "init"]);
    ok(&store, ["capture", p(&src), "--name", "img"]);
    (t, src, store)
}

/// Every file of the target, with its contents (symlinks as their target).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_owned();
            let m = fs::symlink_metadata(&path).unwrap();
            if m.file_type().is_symlink() {
                out.insert(rel, fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes());
            } else if m.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                walk(root, &path, out);
            } else {
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn apply_into_a_non_empty_target_needs_force_and_writes_nothing_without_it() {
    let (t, src, store) = small_image();
    let target = t.path().join("target");
    write_file(&target.join("keep.txt"), b"mine\n", 0o644);
    write_file(&target.join("a.txt"), b"old contents of a\n", 0o644);
    let before = snapshot(&target);

    let o = slipway(&store, ["apply", "img", p(&target)]);
    assert!(!o.status.success(), "{}", show("apply into a non-empty target", &o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--force") && err.contains("not empty"), "the refusal does not point at --force:\n{err}");
    assert_eq!(snapshot(&target), before, "a refused apply changed the target");

    ok(&store, ["apply", "img", p(&target), "--force"]);
    for f in SMALL_FILES {
        let rel = &f[1..];
        assert_eq!(fs::read(target.join(rel)).unwrap(), fs::read(src.join(rel)).unwrap(), "{f} after apply --force");
    }
    assert_eq!(fs::read(target.join("keep.txt")).unwrap(), b"mine\n", "an entry the image lacks is left alone");
}

#[test]
fn apply_force_replaces_symlinks_in_the_target_instead_of_writing_through_them() {
    let (t, src, store) = small_image();
    let outside = t.path().join("outside");
    write_file(&outside.join("victim"), b"do not touch\n", 0o644);
    let target = t.path().join("target");
    fs::create_dir_all(&target).unwrap();
    // The image has a file a.txt and a directory sub/ with files in it.
    symlink(outside.join("victim"), target.join("a.txt")).unwrap();
    symlink(&outside, target.join("sub")).unwrap();
    let before = snapshot(&outside);

    ok(&store, ["apply", "img", p(&target), "--force"]);
    assert_eq!(snapshot(&outside), before, "apply --force wrote through a symlink in the target");
    for f in SMALL_FILES {
        let rel = &f[1..];
        let m = fs::symlink_metadata(target.join(rel)).unwrap();
        assert!(m.is_file(), "{f} is not a regular file after apply --force");
        assert_eq!(fs::read(target.join(rel)).unwrap(), fs::read(src.join(rel)).unwrap(), "{f}");
    }
    assert!(fs::symlink_metadata(target.join("sub")).unwrap().is_dir(), "sub is still a symlink");
}
