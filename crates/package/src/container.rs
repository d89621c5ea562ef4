//! The package file: manifest, signature and payload in one file.
//!
//! ```text
//! offset  size  field (integers little-endian)
//! 0       8     magic "SLWPKG\0\x01" (the last byte is the format version)
//! 8       8     M: manifest length, 1..=64 MiB
//! 16      M     manifest: JSON of `manifest::Manifest`
//! 16+M    8     S: signature length, 0 (unsigned) ..= 8 KiB
//! 24+M    S     minisign signature file (text) over the manifest bytes,
//!               trusted comment "slipway package ID VERSION"
//! 24+M+S  P     payload: the blobs the manifest's `data` entries point to
//!               (offsets relative to the payload start); P is
//!               manifest.payload.size and nothing follows it
//! ```
//!
//! [`Package::open`] checks all of it before it returns: the signature
//! against the trusted keys, the manifest's rules ([`validate`]), the
//! payload's size and BLAKE3, every blob's stored BLAKE3, and the content of
//! every full (non-delta) entry. The manifest is signed and binds the
//! payload through those hashes.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ct_codecs::Decoder as _;

use crate::delta::{self, DecodeError, Encoded};
use crate::keys::{key_id, TrustedKey};
use crate::manifest::{
    Action, Data, Encoding, Entry, Manifest, Node, OldKind, Op, MANIFEST_FORMAT, MAX_FILE_SIZE, MAX_OPS,
};

/// The first 8 bytes of a package file (format version 1).
pub const MAGIC: [u8; 8] = *b"SLWPKG\x00\x01";

/// Largest manifest accepted.
pub const MAX_MANIFEST: u64 = 64 << 20;

/// Largest signature accepted.
pub const MAX_SIGNATURE: u64 = 8 << 10;

/// Longest path in a package, in bytes.
pub const MAX_PATH: usize = 4096;

/// Longest path component, in bytes.
pub const MAX_NAME: usize = 255;

/// Read buffer for hashing the payload.
const CHUNK: usize = 1 << 20;

/// What [`Package::open`] accepts.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions<'a> {
    /// Keys whose signatures are accepted.
    pub trusted: &'a [TrustedKey],
    /// Accept a package without a signature. Never excuses a signature that
    /// does not verify or that was made by a key not in `trusted`.
    pub allow_unsigned: bool,
}

/// Who signed an opened package.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureStatus {
    /// No signature (opened with `allow_unsigned`).
    Unsigned,
    /// A valid signature by a trusted key.
    Signed { key_id: String, key_source: PathBuf, trusted_comment: String },
}

/// Why a package cannot be used. Every message names the file and says
/// what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    #[error("reading package {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a slipway package (it does not start with the package magic bytes)", .0.display())]
    NotAPackage(PathBuf),
    #[error("{} is truncated (its {what} is incomplete); copy or download it again", path.display())]
    Truncated { path: PathBuf, what: &'static str },
    #[error("{} is damaged: {what}; copy or download it again", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error(
        "{} is not signed; ask its publisher for a signed package, or allow unsigned packages if you \
         trust where it came from",
        .0.display()
    )]
    Unsigned(PathBuf),
    #[error(
        "{} is signed by key {key_id}, which is not trusted; if you trust that key, add its public key \
         with `slipway key trust PUBLIC_KEY_FILE`",
        path.display()
    )]
    UntrustedKey { path: PathBuf, key_id: String },
    #[error(
        "{} has a signature that does not verify ({why}): it was altered or damaged after signing; \
         do not use it, get it again from its publisher",
        path.display()
    )]
    BadSignature { path: PathBuf, why: String },
    #[error("{} has an invalid manifest: {what}; it cannot be used (rebuild it with a fixed manifest)", path.display())]
    Invalid { path: PathBuf, what: String },
    /// A delta was decoded against the wrong base (or none).
    #[error(
        "{}: the delta at payload offset {offset} needs base content {expected}, but {}; the target \
         does not hold the file this package was built against",
        path.display(),
        match actual { Some(a) => format!("was given {a}"), None => "none was given".to_string() }
    )]
    WrongBase { path: PathBuf, offset: u64, expected: String, actual: Option<String> },
    /// Writing decoded content to the caller's output failed.
    #[error("{}: writing the decoded content of the entry at payload offset {offset}: {source}", path.display())]
    Output {
        path: PathBuf,
        offset: u64,
        #[source]
        source: io::Error,
    },
}

/// A file entry stored in a blob: declared size, content BLAKE3, path.
type EntryRef<'a> = (u64, &'a str, &'a str);

/// An opened and fully checked package.
#[derive(Debug)]
pub struct Package {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub signature: SignatureStatus,
    file: File,
    payload_offset: u64,
    manifest_bytes: Vec<u8>,
    signature_text: Option<String>,
    /// BLAKE3 of the whole file, computed while it was checked.
    file_blake3: String,
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> PackageError + '_ {
    move |source| PackageError::Io { path: path.to_owned(), source }
}

fn corrupt(path: &Path, what: impl Into<String>) -> PackageError {
    PackageError::Corrupt { path: path.to_owned(), what: what.into() }
}

fn read_at(file: &File, path: &Path, offset: u64, len: u64, what: &'static str) -> Result<Vec<u8>, PackageError> {
    let mut buf = vec![0u8; usize::try_from(len).map_err(|_| corrupt(path, format!("{what} too large")))?];
    file.read_exact_at(&mut buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            PackageError::Truncated { path: path.to_owned(), what }
        } else {
            io_err(path)(e)
        }
    })?;
    Ok(buf)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Package {
    /// Opens `path` and checks everything (see the module documentation)
    /// before returning. Memory use is bounded by the manifest and the
    /// largest blob.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Package, PackageError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let mut head = [0u8; 16];
        let got = (&file).take(16).read(&mut head).map_err(io_err(path))?;
        let got = if got < 16 && got > 0 {
            // A short read is possible in principle; read the rest.
            let mut n = got;
            while n < 16 {
                match file.read_at(&mut head[n..], n as u64).map_err(io_err(path))? {
                    0 => break,
                    k => n += k,
                }
            }
            n
        } else {
            got
        };
        let m = got.min(8);
        if m == 0 || head[..m] != MAGIC[..m] {
            if m >= 7 && head[..7] == MAGIC[..7] {
                return Err(corrupt(
                    path,
                    format!("package format version {} (this slipway reads version 1); use a newer slipway", head[7]),
                ));
            }
            return Err(PackageError::NotAPackage(path.to_owned()));
        }
        if got < 16 {
            return Err(PackageError::Truncated { path: path.to_owned(), what: "header" });
        }
        let mlen = u64_at(&head, 8);
        if mlen == 0 || mlen > MAX_MANIFEST {
            return Err(corrupt(path, format!("manifest length {mlen} (must be 1 to {MAX_MANIFEST})")));
        }
        if len < 16 + mlen {
            return Err(PackageError::Truncated { path: path.to_owned(), what: "manifest" });
        }
        let manifest_bytes = read_at(&file, path, 16, mlen, "manifest")?;
        let slen =
            u64::from_le_bytes(read_at(&file, path, 16 + mlen, 8, "signature length")?.try_into().unwrap_or_default());
        if slen > MAX_SIGNATURE {
            return Err(corrupt(path, format!("signature length {slen} (at most {MAX_SIGNATURE})")));
        }
        if len < 24 + mlen + slen {
            return Err(PackageError::Truncated { path: path.to_owned(), what: "signature" });
        }
        let sig_bytes = read_at(&file, path, 24 + mlen, slen, "signature")?;
        let payload_offset = 24 + mlen + slen;
        // The whole file's hash (the package cache and the state name it)
        // is taken on the same read as the checks.
        let mut file_hash = blake3::Hasher::new();
        file_hash.update(&head);
        file_hash.update(&manifest_bytes);
        file_hash.update(&slen.to_le_bytes());
        file_hash.update(&sig_bytes);

        // The signature first: nothing unsigned is parsed when a signature is required.
        let (signature, signature_text) = check_signature(path, &manifest_bytes, sig_bytes, opts)?;

        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| corrupt(path, format!("manifest is not valid: {e}")))?;
        validate(&manifest).map_err(|what| PackageError::Invalid { path: path.to_owned(), what })?;
        let payload_len = len - payload_offset;
        if payload_len < manifest.payload.size {
            return Err(PackageError::Truncated { path: path.to_owned(), what: "payload" });
        }
        if payload_len > manifest.payload.size {
            return Err(corrupt(path, format!("{} bytes after the payload", payload_len - manifest.payload.size)));
        }
        let mut pkg = Package {
            path: path.to_owned(),
            manifest,
            signature,
            file,
            payload_offset,
            manifest_bytes,
            signature_text,
            file_blake3: String::new(),
        };
        pkg.check_payload(&mut file_hash)?;
        pkg.file_blake3 = file_hash.finalize().to_hex().to_string();
        Ok(pkg)
    }

    /// Reads the whole payload once, in order: its BLAKE3 and size, every
    /// blob's stored BLAKE3 and every full entry's content. Every payload
    /// byte also goes into `file_hash`.
    fn check_payload(&self, file_hash: &mut blake3::Hasher) -> Result<(), PackageError> {
        let path = &self.path;
        // Each distinct blob once, in payload order, with the file entries stored in it.
        let mut blobs: Vec<(&Data, Vec<EntryRef>)> = Vec::new();
        let mut index: HashMap<(u64, u64, &str, Encoding), usize> = HashMap::new();
        for op in &self.manifest.ops {
            if let Some(Entry { node: Node::File { size, blake3, data }, .. }) = &op.entry {
                let key = (data.offset, data.length, data.stored_blake3.as_str(), data.encoding);
                let i = *index.entry(key).or_insert_with(|| {
                    blobs.push((data, Vec::new()));
                    blobs.len() - 1
                });
                blobs[i].1.push((*size, blake3.as_str(), op.path.as_str()));
            }
        }
        blobs.sort_by_key(|(d, _)| (d.offset, d.length));
        let mut whole = blake3::Hasher::new();
        let mut pos = 0u64;
        for (data, entries) in &blobs {
            if data.offset > pos {
                self.hash_range(&mut [&mut whole, &mut *file_hash], pos, data.offset)?;
                pos = data.offset;
            }
            let stored = self.stored_for(data, entries[0].2)?;
            let end = data.offset + data.length;
            if end > pos {
                whole.update(&stored[(pos - data.offset) as usize..]);
                file_hash.update(&stored[(pos - data.offset) as usize..]);
                pos = end;
            }
            if data.encoding == Encoding::Zstd {
                let mut seen = HashSet::new();
                for (size, blake3, op_path) in entries {
                    if !seen.insert((*size, *blake3)) {
                        continue;
                    }
                    let got = delta::decode(Encoding::Zstd, &stored, None, *size, &mut io::sink())
                        .map_err(|e| corrupt(path, format!("content of {op_path}: {e}")))?;
                    if got.to_hex().as_str() != *blake3 {
                        return Err(corrupt(path, format!("content of {op_path} does not match its BLAKE3")));
                    }
                }
            }
        }
        self.hash_range(&mut [&mut whole, file_hash], pos, self.manifest.payload.size)?;
        if whole.finalize().to_hex().as_str() != self.manifest.payload.blake3 {
            return Err(corrupt(path, "the payload does not match its BLAKE3"));
        }
        Ok(())
    }

    fn hash_range(&self, hashers: &mut [&mut blake3::Hasher], from: u64, to: u64) -> Result<(), PackageError> {
        let mut buf = vec![0u8; CHUNK.min((to - from) as usize)];
        let mut pos = from;
        while pos < to {
            let n = (to - pos).min(buf.len() as u64) as usize;
            self.file.read_exact_at(&mut buf[..n], self.payload_offset + pos).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    PackageError::Truncated { path: self.path.clone(), what: "payload" }
                } else {
                    io_err(&self.path)(e)
                }
            })?;
            for h in hashers.iter_mut() {
                h.update(&buf[..n]);
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn stored_for(&self, data: &Data, what: &str) -> Result<Vec<u8>, PackageError> {
        let end = data.offset.checked_add(data.length);
        if end.is_none_or(|e| e > self.manifest.payload.size) {
            return Err(PackageError::Invalid {
                path: self.path.clone(),
                what: format!("data of {what} lies outside the payload"),
            });
        }
        let bytes = read_at(&self.file, &self.path, self.payload_offset + data.offset, data.length, "payload")?;
        if blake3::hash(&bytes).to_hex().as_str() != data.stored_blake3 {
            return Err(corrupt(
                &self.path,
                format!(
                    "the stored data of {what} (payload offset {}, {} bytes) does not match its BLAKE3",
                    data.offset, data.length
                ),
            ));
        }
        Ok(bytes)
    }

    /// The stored bytes of one blob, read again and checked against its
    /// stored BLAKE3.
    pub fn stored(&self, data: &Data) -> Result<Vec<u8>, PackageError> {
        self.stored_for(data, "an entry")
    }

    /// Decodes a file entry's content into `out`: `node` must be a
    /// [`Node::File`] of this package; deltas need `base`, the content they
    /// were made against (checked against the BLAKE3 the package names).
    /// Returns Ok only after the size and the content's BLAKE3 matched; on
    /// an error, `out` may have received some bytes, which must be discarded.
    pub fn decode_to(&self, node: &Node, base: Option<&[u8]>, out: &mut dyn Write) -> Result<(), PackageError> {
        let Node::File { size, blake3, data } = node else {
            return Err(PackageError::Invalid {
                path: self.path.clone(),
                what: "only file entries have content to decode".into(),
            });
        };
        let base = if data.encoding.is_delta() {
            let expected = data.base.clone().unwrap_or_default();
            let Some(b) = base else {
                return Err(PackageError::WrongBase {
                    path: self.path.clone(),
                    offset: data.offset,
                    expected,
                    actual: None,
                });
            };
            let actual = blake3::hash(b).to_hex().to_string();
            if actual != expected {
                return Err(PackageError::WrongBase {
                    path: self.path.clone(),
                    offset: data.offset,
                    expected,
                    actual: Some(actual),
                });
            }
            Some(b)
        } else {
            None
        };
        let stored = self.stored(data)?;
        let got = delta::decode(data.encoding, &stored, base, *size, out).map_err(|e| match e {
            DecodeError::Write(source) => PackageError::Output { path: self.path.clone(), offset: data.offset, source },
            e => corrupt(&self.path, format!("the entry at payload offset {}: {e}", data.offset)),
        })?;
        if got.to_hex().as_str() != blake3 {
            return Err(corrupt(
                &self.path,
                format!(
                    "the entry at payload offset {} decodes to content that does not match its BLAKE3",
                    data.offset
                ),
            ));
        }
        Ok(())
    }

    /// The manifest exactly as stored (the signed bytes).
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// The minisign signature file, if signed.
    pub fn signature_text(&self) -> Option<&str> {
        self.signature_text.as_deref()
    }

    /// BLAKE3 of the package file, as checked by [`Package::open`].
    pub fn file_blake3(&self) -> &str {
        &self.file_blake3
    }
}

fn check_signature(
    path: &Path,
    manifest: &[u8],
    sig: Vec<u8>,
    opts: &OpenOptions,
) -> Result<(SignatureStatus, Option<String>), PackageError> {
    let bad = |why: String| PackageError::BadSignature { path: path.to_owned(), why };
    if sig.is_empty() {
        if opts.allow_unsigned {
            return Ok((SignatureStatus::Unsigned, None));
        }
        return Err(PackageError::Unsigned(path.to_owned()));
    }
    let text = String::from_utf8(sig).map_err(|_| bad("the signature is not text".into()))?;
    let sbox = minisign::SignatureBox::from_string(&text).map_err(|e| bad(format!("unreadable signature: {e}")))?;
    // minisign 0.10 indexes the global signature (4th line) as 64 bytes
    // without checking its length: check it here, so a forged one is a bad
    // signature instead of a panic.
    let global = text.lines().nth(3).map(|l| ct_codecs::Base64::decode_to_vec(l.trim(), None));
    if !matches!(global, Some(Ok(ref g)) if g.len() == 64) {
        return Err(bad("the global signature (4th line) is not 64 bytes of base64".into()));
    }
    let id = key_id(sbox.keynum());
    let Some(key) = opts.trusted.iter().find(|k| k.key.keynum() == sbox.keynum()) else {
        return Err(PackageError::UntrustedKey { path: path.to_owned(), key_id: id });
    };
    minisign::verify(&key.key, &sbox, Cursor::new(manifest), true, false, false).map_err(|e| bad(e.to_string()))?;
    let trusted_comment = sbox.trusted_comment().map_err(|e| bad(e.to_string()))?;
    Ok((SignatureStatus::Signed { key_id: id, key_source: key.source.clone(), trusted_comment }, Some(text)))
}

// ---------------------------------------------------------------------------
// Validation

/// Checks a package id: 1-64 of `[A-Za-z0-9._+-]`, starting with a letter
/// or digit.
pub fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "package id {id:?} is not valid (1-64 letters, digits, '.', '_', '+', '-', starting with a letter or digit)"
        ))
    }
}

/// Checks a version string (of the package, of a file, or in `applies_to`):
/// 1-128 printable characters without spaces.
pub fn check_version(what: &str, v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 128 || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{what} {v:?} is not a valid version (1-128 printable characters, no spaces)"));
    }
    Ok(())
}

/// Checks a path inside a package: relative, `/`-separated, no empty, `.`
/// or `..` components, no NUL, at most [`MAX_PATH`] bytes and components of
/// at most [`MAX_NAME`] bytes.
pub fn check_path(p: &str) -> Result<(), String> {
    let why = if p.is_empty() {
        "is empty"
    } else if p.len() > MAX_PATH {
        "is longer than 4096 bytes"
    } else if p.starts_with('/') {
        "is absolute (paths are relative to the root)"
    } else if p.contains('\0') {
        "contains a NUL byte"
    } else if p.split('/').any(|c| c.is_empty()) {
        "has an empty component"
    } else if p.split('/').any(|c| c == "." || c == "..") {
        "has a '.' or '..' component"
    } else if p.split('/').any(|c| c.len() > MAX_NAME) {
        "has a component longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(format!("path {p:?} {why}"))
}

fn check_hash(what: &str, h: &str) -> Result<(), String> {
    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(format!("{what} {h:?} is not a BLAKE3 hash (64 lowercase hex digits)"))
    }
}

fn is_hex(s: &str) -> bool {
    s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks everything in a manifest that does not need the payload: see the
/// package format specification. The message names the offending operation.
pub fn validate(m: &Manifest) -> Result<(), String> {
    if m.format != MANIFEST_FORMAT {
        return Err(format!("manifest format {} (this slipway reads format {MANIFEST_FORMAT})", m.format));
    }
    check_id(&m.id)?;
    check_version("package version", &m.version)?;
    if m.title.len() > 4096 || m.description.len() > 1 << 20 || m.created.len() > 64 {
        return Err("title, description or creation time is too long".into());
    }
    for (what, v) in
        [("applies_to.version_min", &m.applies_to.version_min), ("applies_to.version_max", &m.applies_to.version_max)]
    {
        if let Some(v) = v {
            check_version(what, v)?;
        }
    }
    for r in m.requires.iter().chain(&m.supersedes) {
        check_id(r).map_err(|e| format!("in requires/supersedes: {e}"))?;
    }
    check_hash("payload BLAKE3", &m.payload.blake3)?;
    if m.ops.len() > MAX_OPS {
        return Err(format!("{} operations (at most {MAX_OPS})", m.ops.len()));
    }
    // Path → (index, writes a directory, is a delete).
    let mut paths: HashMap<&str, (usize, bool, bool)> = HashMap::with_capacity(m.ops.len());
    for (i, op) in m.ops.iter().enumerate() {
        check_op(m, op, &paths).map_err(|e| format!("operation {i} ({:?}): {e}", op.path))?;
        let is_dir = matches!(&op.entry, Some(Entry { node: Node::Dir, .. }));
        if paths.insert(&op.path, (i, is_dir, op.action == Action::Delete)).is_some() {
            return Err(format!("operation {i}: path {:?} appears in more than one operation", op.path));
        }
    }
    // Nothing is written below a path the package deletes or makes a non-directory.
    for (i, op) in m.ops.iter().enumerate() {
        if op.action == Action::Delete {
            continue;
        }
        let mut at = 0;
        while let Some(k) = op.path[at..].find('/') {
            let parent = &op.path[..at + k];
            if let Some(&(j, is_dir, is_delete)) = paths.get(parent) {
                if is_delete || !is_dir {
                    return Err(format!(
                        "operation {i} writes {:?} below {parent:?}, which operation {j} {}",
                        op.path,
                        if is_delete { "deletes" } else { "makes a non-directory" }
                    ));
                }
            }
            at += k + 1;
        }
    }
    Ok(())
}

fn check_op(m: &Manifest, op: &Op, earlier: &HashMap<&str, (usize, bool, bool)>) -> Result<(), String> {
    check_path(&op.path)?;
    if let Some(v) = &op.version {
        check_version("file version", v)?;
    }
    if let Some(old) = &op.old {
        if let Some(h) = &old.blake3 {
            check_hash("old BLAKE3", h)?;
        }
    }
    let entry = match (op.action, &op.entry) {
        (Action::Delete, None) => return Ok(()),
        (Action::Delete, Some(_)) => return Err("a delete has no entry".into()),
        (_, None) => return Err("an add or replace needs an entry".into()),
        (_, Some(e)) => e,
    };
    if entry.mode > 0o7777 {
        return Err(format!("mode {:o} has bits beyond 7777", entry.mode));
    }
    if entry.mtime.1 >= 1_000_000_000 {
        return Err("mtime nanoseconds must be below 10^9".into());
    }
    let mut prev: Option<&str> = None;
    for (name, value) in &entry.xattrs {
        if name.is_empty() || !is_hex(name) || !is_hex(value) || name.len() > 2 * 255 || value.len() > 2 * 65536 {
            return Err(format!("xattr {name:?} is not a hex-encoded name and value"));
        }
        if prev.is_some_and(|p| p >= name.as_str()) {
            return Err("xattrs must be sorted by name, each name once".into());
        }
        prev = Some(name);
    }
    match &entry.node {
        Node::Dir => {}
        Node::Symlink { target } => {
            if target.is_empty() || target.len() > MAX_PATH || target.contains('\0') {
                return Err("symlink target must be 1-4096 bytes without NUL".into());
            }
        }
        Node::Hardlink { target } => {
            check_path(target).map_err(|e| format!("hard link target: {e}"))?;
            let ok = earlier.get(target.as_str()).is_some_and(|&(j, _, _)| {
                matches!(
                    &m.ops[j],
                    Op {
                        action: Action::Add | Action::Replace,
                        entry: Some(Entry { node: Node::File { .. }, .. }),
                        ..
                    }
                )
            });
            if !ok {
                return Err(format!("hard link target {target:?} is not a file written by an earlier operation"));
            }
        }
        Node::File { size, blake3, data } => {
            if *size > MAX_FILE_SIZE {
                return Err(format!("size {size} is above the limit of {MAX_FILE_SIZE}"));
            }
            check_hash("content BLAKE3", blake3)?;
            check_hash("stored BLAKE3", &data.stored_blake3)?;
            if data.offset.checked_add(data.length).is_none_or(|end| end > m.payload.size) {
                return Err(format!(
                    "data at offset {} length {} lies outside the payload of {} bytes",
                    data.offset, data.length, m.payload.size
                ));
            }
            match (&data.base, data.encoding.is_delta()) {
                (Some(b), true) => {
                    check_hash("delta base BLAKE3", b)?;
                    let old_matches = op
                        .old
                        .as_ref()
                        .is_some_and(|o| o.kind == OldKind::File && o.blake3.as_deref() == Some(b.as_str()));
                    if op.action != Action::Replace || !old_matches {
                        return Err("a delta must replace the file it was made against (old.blake3 = base)".into());
                    }
                }
                (None, true) => return Err(format!("{} data needs a base", data.encoding.as_str())),
                (Some(_), false) => return Err("full (zstd) data has no base".into()),
                (None, false) => {}
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Writing

/// The payload of a package being built, spooled to a temporary file in
/// the output directory (so payloads larger than memory are fine). Blobs
/// are appended with [`PayloadWriter::append`], which returns the
/// [`Data`] to put in the manifest; [`write`] then makes the package.
/// The spool file is removed when the writer is dropped.
pub struct PayloadWriter {
    spool: File,
    spool_path: PathBuf,
    hasher: blake3::Hasher,
    len: u64,
}

impl PayloadWriter {
    /// Starts a payload for a package that will be written to `out`.
    pub fn new(out: &Path) -> anyhow::Result<Self> {
        let dir = out_dir(out);
        let spool_path = temp_name(out, "payload");
        let spool =
            fs::OpenOptions::new().read(true).write(true).create_new(true).open(&spool_path).with_context(|| {
                format!("creating temporary payload file {} (in {})", spool_path.display(), dir.display())
            })?;
        Ok(Self { spool, spool_path, hasher: blake3::Hasher::new(), len: 0 })
    }

    /// Appends one encoded blob; returns where it is.
    pub fn append(&mut self, enc: &Encoded) -> anyhow::Result<Data> {
        self.spool
            .write_all(&enc.bytes)
            .with_context(|| format!("writing temporary payload file {}", self.spool_path.display()))?;
        self.hasher.update(&enc.bytes);
        let data = Data {
            offset: self.len,
            length: enc.bytes.len() as u64,
            stored_blake3: blake3::hash(&enc.bytes).to_hex().to_string(),
            encoding: enc.encoding,
            base: enc.base.clone(),
        };
        self.len += enc.bytes.len() as u64;
        Ok(data)
    }

    /// Bytes appended so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for PayloadWriter {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.spool_path);
    }
}

fn out_dir(out: &Path) -> PathBuf {
    match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn temp_name(out: &Path, what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "package".into());
    out_dir(out).join(format!(".{name}.{what}-{}-{}.tmp", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))
}

/// Writes a package to `out`: fills `manifest.payload` from `payload`,
/// checks the manifest ([`validate`]), signs it when `key` is given, and
/// writes magic, manifest, signature and payload to a temporary file in
/// `out`'s directory, which is synced and renamed over `out`. Returns the
/// package's size in bytes.
pub fn write(
    out: &Path,
    manifest: &mut Manifest,
    payload: PayloadWriter,
    key: Option<&minisign::SecretKey>,
) -> anyhow::Result<u64> {
    let mut payload = payload;
    manifest.payload.size = payload.len;
    manifest.payload.blake3 = payload.hasher.finalize().to_hex().to_string();
    validate(manifest).map_err(|e| anyhow::anyhow!("the package manifest is not valid: {e}"))?;
    let mbytes = serde_json::to_vec(manifest).context("encoding the manifest")?;
    if mbytes.len() as u64 > MAX_MANIFEST {
        bail!("the manifest is {} bytes, more than {MAX_MANIFEST}: split the package", mbytes.len());
    }
    let sig = match key {
        None => Vec::new(),
        Some(sk) => {
            let pk = minisign::PublicKey::from_secret_key(sk).context("deriving the public key")?;
            let id = key_id(sk.keynum());
            let sbox = minisign::sign(
                Some(&pk),
                sk,
                Cursor::new(&mbytes),
                Some(&format!("slipway package {} {}", manifest.id, manifest.version)),
                Some(&format!("signature from slipway key {id}")),
            )
            .context("signing the manifest")?;
            sbox.to_string().into_bytes()
        }
    };
    if sig.len() as u64 > MAX_SIGNATURE {
        bail!("the signature is {} bytes, more than {MAX_SIGNATURE}", sig.len());
    }
    let tmp = temp_name(out, "new");
    let result = (|| -> anyhow::Result<u64> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        let ctx = || format!("writing {}", tmp.display());
        f.write_all(&MAGIC).with_context(ctx)?;
        f.write_all(&(mbytes.len() as u64).to_le_bytes()).with_context(ctx)?;
        f.write_all(&mbytes).with_context(ctx)?;
        f.write_all(&(sig.len() as u64).to_le_bytes()).with_context(ctx)?;
        f.write_all(&sig).with_context(ctx)?;
        payload.spool.flush().with_context(ctx)?;
        payload.spool.seek(SeekFrom::Start(0)).with_context(ctx)?;
        let copied = io::copy(&mut (&payload.spool).take(payload.len), &mut f).with_context(ctx)?;
        if copied != payload.len {
            bail!("temporary payload file {} shrank while writing the package", payload.spool_path.display());
        }
        f.sync_all().with_context(ctx)?;
        let size = f.metadata().with_context(ctx)?.len();
        fs::rename(&tmp, out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
        File::open(out_dir(out))
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", out_dir(out).display()))?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::{encode, EncodeOptions};
    use crate::keys::{load_public, load_secret, new_key};
    use crate::manifest::{AppliesTo, Kind, OldEntry, PayloadInfo};

    struct Fixture {
        _dir: tempfile::TempDir,
        dir: PathBuf,
        sk: minisign::SecretKey,
        trusted: Vec<TrustedKey>,
    }

    fn fixture() -> Fixture {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_owned();
        let k = new_key(&dir.join("test")).unwrap();
        let (sk, _) = load_secret(&k.secret).unwrap();
        let trusted = vec![load_public(&k.public).unwrap()];
        Fixture { _dir: d, dir, sk, trusted }
    }

    fn manifest(ops: Vec<Op>) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            id: "SW-2026-0001".into(),
            title: "Test".into(),
            version: "1.0".into(),
            kind: Kind::Hotfix,
            description: String::new(),
            created: "2026-01-01T00:00:00Z".into(),
            applies_to: AppliesTo::default(),
            requires: vec![],
            supersedes: vec![],
            ops,
            payload: PayloadInfo::default(),
        }
    }

    fn entry(node: Node) -> Entry {
        Entry { node, mode: 0o644, uid: 0, gid: 0, mtime: (1_700_000_000, 0), xattrs: vec![] }
    }

    fn file_op(path: &str, w: &mut PayloadWriter, content: &[u8]) -> Op {
        let enc = encode(content, None, EncodeOptions { level: 3, deltas: false }).unwrap();
        let data = w.append(&enc).unwrap();
        let node = Node::File { size: content.len() as u64, blake3: blake3::hash(content).to_hex().to_string(), data };
        Op { action: Action::Replace, path: path.into(), entry: Some(entry(node)), old: None, version: None }
    }

    /// A package with a directory, two files, a hard link, a symlink and a delete.
    fn sample(f: &Fixture, name: &str, signed: bool) -> PathBuf {
        let out = f.dir.join(name);
        let mut w = PayloadWriter::new(&out).unwrap();
        let ops = vec![
            Op { action: Action::Add, path: "etc".into(), entry: Some(entry(Node::Dir)), old: None, version: None },
            file_op("etc/a.conf", &mut w, b"alpha\n"),
            file_op("etc/b.conf", &mut w, &b"bravo ".repeat(1000)),
            Op {
                action: Action::Add,
                path: "etc/c.conf".into(),
                entry: Some(entry(Node::Hardlink { target: "etc/a.conf".into() })),
                old: None,
                version: None,
            },
            Op {
                action: Action::Replace,
                path: "etc/l".into(),
                entry: Some(entry(Node::Symlink { target: "a.conf".into() })),
                old: None,
                version: Some("2.0-1".into()),
            },
            Op { action: Action::Delete, path: "etc/old".into(), entry: None, old: None, version: None },
        ];
        let mut m = manifest(ops);
        write(&out, &mut m, w, signed.then_some(&f.sk)).unwrap();
        out
    }

    fn open(p: &Path, f: &Fixture, allow_unsigned: bool) -> Result<Package, PackageError> {
        Package::open(p, &OpenOptions { trusted: &f.trusted, allow_unsigned })
    }

    /// Assembles a package file from its parts, unchecked.
    fn raw(manifest: &[u8], sig: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
        v.extend_from_slice(manifest);
        v.extend_from_slice(&(sig.len() as u64).to_le_bytes());
        v.extend_from_slice(sig);
        v.extend_from_slice(payload);
        v
    }

    /// Where the sections of a package file start: (manifest, signature, payload).
    fn sections(bytes: &[u8]) -> (usize, usize, usize) {
        let m = u64_at(bytes, 8) as usize;
        let s = u64_at(bytes, 16 + m) as usize;
        (16, 24 + m, 24 + m + s)
    }

    #[test]
    fn opens_a_signed_package_and_decodes_it() {
        let f = fixture();
        let p = sample(&f, "ok.slwpkg", true);
        let pkg = open(&p, &f, false).unwrap();
        match &pkg.signature {
            SignatureStatus::Signed { key_id, key_source, trusted_comment } => {
                assert_eq!(key_id, &f.trusted[0].id);
                assert_eq!(key_source, &f.trusted[0].source);
                assert_eq!(trusted_comment, "slipway package SW-2026-0001 1.0");
            }
            s => panic!("{s:?}"),
        }
        assert!(pkg.signature_text().unwrap().contains("trusted comment: slipway package SW-2026-0001 1.0"));
        assert_eq!(serde_json::from_slice::<Manifest>(pkg.manifest_bytes()).unwrap(), pkg.manifest);
        let node = &pkg.manifest.ops[2].entry.as_ref().unwrap().node;
        let mut out = Vec::new();
        pkg.decode_to(node, None, &mut out).unwrap();
        assert_eq!(out, b"bravo ".repeat(1000));
        let Node::File { data, .. } = node else { panic!() };
        assert_eq!(blake3::hash(&pkg.stored(data).unwrap()).to_hex().as_str(), data.stored_blake3);
        // Not a file: refused.
        let dir = &pkg.manifest.ops[0].entry.as_ref().unwrap().node;
        assert!(matches!(pkg.decode_to(dir, None, &mut out), Err(PackageError::Invalid { .. })));
        // Unsigned packages open only when allowed.
        let u = sample(&f, "unsigned.slwpkg", false);
        assert!(matches!(open(&u, &f, false), Err(PackageError::Unsigned(_))));
        let pkg = open(&u, &f, true).unwrap();
        assert_eq!(pkg.signature, SignatureStatus::Unsigned);
        assert_eq!(pkg.signature_text(), None);
    }

    #[test]
    fn the_minisign_cli_verifies_the_manifest_signature() {
        if std::process::Command::new("minisign").arg("-v").output().is_err() {
            eprintln!("skipped: the minisign binary is not installed (apt-get install minisign)");
            return;
        }
        let f = fixture();
        let p = sample(&f, "cli.slwpkg", true);
        let pkg = open(&p, &f, false).unwrap();
        fs::write(f.dir.join("manifest.json"), pkg.manifest_bytes()).unwrap();
        fs::write(f.dir.join("manifest.json.minisig"), pkg.signature_text().unwrap()).unwrap();
        let out = std::process::Command::new("minisign")
            .args(["-V", "-q", "-p"])
            .arg(f.dir.join("test.pub"))
            .arg("-m")
            .arg(f.dir.join("manifest.json"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn refuses_wrong_magic_and_newer_formats() {
        let f = fixture();
        let p = sample(&f, "m.slwpkg", true);
        let mut bytes = fs::read(&p).unwrap();
        bytes[0] = b'X';
        fs::write(&p, &bytes).unwrap();
        assert!(matches!(open(&p, &f, true), Err(PackageError::NotAPackage(_))));
        bytes[0] = b'S';
        bytes[7] = 2;
        fs::write(&p, &bytes).unwrap();
        let e = open(&p, &f, true).unwrap_err();
        assert!(e.to_string().contains("format version 2"), "{e}");
        fs::write(&p, b"").unwrap();
        assert!(matches!(open(&p, &f, true), Err(PackageError::NotAPackage(_))));
    }

    #[test]
    fn refuses_a_package_truncated_anywhere_or_with_trailing_bytes() {
        let f = fixture();
        let p = sample(&f, "t.slwpkg", true);
        let bytes = fs::read(&p).unwrap();
        let (m, s, pl) = sections(&bytes);
        let cut = f.dir.join("cut.slwpkg");
        for len in 1..bytes.len() {
            fs::write(&cut, &bytes[..len]).unwrap();
            let e = open(&cut, &f, true).unwrap_err();
            let what = match len {
                l if l < m => "header",
                l if l < s - 8 => "manifest",
                l if l < s => "signature length",
                l if l < pl => "signature",
                _ => "payload",
            };
            assert!(matches!(&e, PackageError::Truncated { what: w, .. } if *w == what), "cut at {len}: {e}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        fs::write(&cut, &longer).unwrap();
        let e = open(&cut, &f, true).unwrap_err();
        assert!(matches!(&e, PackageError::Corrupt { what, .. } if what.contains("after the payload")), "{e}");
    }

    #[test]
    fn a_changed_manifest_byte_breaks_the_signature_even_when_unsigned_is_allowed() {
        let f = fixture();
        let p = sample(&f, "s.slwpkg", true);
        let bytes = fs::read(&p).unwrap();
        let (m, s, _) = sections(&bytes);
        for at in [m, m + 1, (m + s) / 2, s - 9] {
            let mut b = bytes.clone();
            b[at] ^= 0x01;
            fs::write(&p, &b).unwrap();
            for allow in [false, true] {
                let e = open(&p, &f, allow).unwrap_err();
                assert!(matches!(e, PackageError::BadSignature { .. }), "byte {at}: {e}");
            }
        }
        // A short global signature (last line): bad, not a panic in minisign.
        let pkg = open(&sample(&f, "g.slwpkg", true), &f, false).unwrap();
        let text = pkg.signature_text().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let short = format!("{}\n{}\n{}\nAAAA\n", lines[0], lines[1], lines[2]);
        let g = f.dir.join("g2.slwpkg");
        let mut raw_pkg = raw(pkg.manifest_bytes(), short.as_bytes(), b"");
        let payload = fs::read(f.dir.join("g.slwpkg")).unwrap();
        raw_pkg.extend_from_slice(&payload[sections(&payload).2..]);
        fs::write(&g, &raw_pkg).unwrap();
        let e = open(&g, &f, true).unwrap_err();
        assert!(matches!(&e, PackageError::BadSignature { why, .. } if why.contains("global")), "{e}");
        // A damaged signature text is bad too, never "unsigned".
        let mut b = bytes.clone();
        b[s + 3] ^= 0x20;
        fs::write(&p, &b).unwrap();
        assert!(matches!(open(&p, &f, true), Err(PackageError::BadSignature { .. })));
    }

    #[test]
    fn a_changed_payload_byte_is_caught() {
        let f = fixture();
        let p = sample(&f, "p.slwpkg", true);
        let bytes = fs::read(&p).unwrap();
        let (_, _, pl) = sections(&bytes);
        for at in [pl, pl + 5, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[at] ^= 0x80;
            fs::write(&p, &b).unwrap();
            let e = open(&p, &f, false).unwrap_err();
            assert!(matches!(&e, PackageError::Corrupt { what, .. } if what.contains("etc/")), "{e}");
        }
    }

    #[test]
    fn an_untrusted_key_is_named_with_how_to_trust_it() {
        let f = fixture();
        let p = sample(&f, "u.slwpkg", true);
        let other = fixture();
        for allow in [false, true] {
            let e = open(&p, &other, allow).unwrap_err();
            match &e {
                PackageError::UntrustedKey { key_id, .. } => assert_eq!(key_id, &f.trusted[0].id),
                e => panic!("{e}"),
            }
            assert!(e.to_string().contains("slipway key trust"), "{e}");
        }
    }

    fn raw_with_ops(f: &Fixture, ops: Vec<Op>, payload: &[u8]) -> PathBuf {
        let mut m = manifest(ops);
        m.payload = PayloadInfo { size: payload.len() as u64, blake3: blake3::hash(payload).to_hex().to_string() };
        let p = f.dir.join("raw.slwpkg");
        fs::write(&p, raw(&serde_json::to_vec(&m).unwrap(), b"", payload)).unwrap();
        p
    }

    #[test]
    fn unknown_manifest_fields_are_refused_in_entries_too() {
        let e = entry(Node::Symlink { target: "t".into() });
        let mut v = serde_json::to_value(&e).unwrap();
        assert_eq!(serde_json::from_value::<Entry>(v.clone()).unwrap(), e);
        v["surprise"] = 1.into();
        assert!(serde_json::from_value::<Entry>(v).is_err());
        let mut m = serde_json::to_value(manifest(vec![])).unwrap();
        m["surprise"] = 1.into();
        assert!(serde_json::from_value::<Manifest>(m).is_err());
    }

    #[test]
    fn refuses_unsafe_and_duplicate_paths() {
        let f = fixture();
        let dir = |p: &str| Op {
            action: Action::Add,
            path: p.into(),
            entry: Some(entry(Node::Dir)),
            old: None,
            version: None,
        };
        for bad in ["../x", "/abs", "a/../b", "a//b", "a/./b", "", "a/", "x\0y"] {
            let p = raw_with_ops(&f, vec![dir(bad)], b"");
            let e = open(&p, &f, true).unwrap_err();
            assert!(matches!(e, PackageError::Invalid { .. }), "{bad:?}: {e}");
        }
        let p = raw_with_ops(&f, vec![dir("a"), dir("b"), dir("a")], b"");
        let e = open(&p, &f, true).unwrap_err();
        assert!(e.to_string().contains("more than one operation"), "{e}");
        assert!(check_path(&"x/".repeat(3000)).is_err());
        assert!(check_path(&"x".repeat(256)).is_err());
        assert!(check_path("ok/fine.txt").is_ok());
    }

    #[test]
    fn validate_enforces_the_manifest_rules() {
        let dir = |p: &str| Op {
            action: Action::Replace,
            path: p.into(),
            entry: Some(entry(Node::Dir)),
            old: None,
            version: None,
        };
        let del = |p: &str| Op { action: Action::Delete, path: p.into(), entry: None, old: None, version: None };
        let link = |p: &str, t: &str| Op {
            action: Action::Add,
            path: p.into(),
            entry: Some(entry(Node::Symlink { target: t.into() })),
            old: None,
            version: None,
        };
        let hard = |p: &str, t: &str| Op {
            action: Action::Add,
            path: p.into(),
            entry: Some(entry(Node::Hardlink { target: t.into() })),
            old: None,
            version: None,
        };
        let fake_file = |p: &str, enc: Encoding, base: Option<String>| {
            let h = blake3::hash(p.as_bytes()).to_hex().to_string();
            let data = Data { offset: 0, length: 1, stored_blake3: h.clone(), encoding: enc, base };
            Op {
                action: Action::Replace,
                path: p.into(),
                entry: Some(entry(Node::File { size: 1, blake3: h, data })),
                old: None,
                version: None,
            }
        };
        let check = |ops: Vec<Op>| {
            let mut m = manifest(ops);
            m.payload = PayloadInfo { size: 1, blake3: "0".repeat(64) };
            validate(&m)
        };
        check(vec![dir("a"), dir("a/b"), del("a/c"), del("x/y"), del("x")]).unwrap();
        // Dir replaced by a file: its children are deleted.
        check(vec![fake_file("a", Encoding::Zstd, None), del("a/c")]).unwrap();
        assert!(check(vec![del("a"), dir("a/b")]).unwrap_err().contains("deletes"));
        assert!(check(vec![link("a", "x"), dir("a/b")]).unwrap_err().contains("non-directory"));
        assert!(check(vec![hard("b", "a"), fake_file("a", Encoding::Zstd, None)]).is_err());
        check(vec![fake_file("a", Encoding::Zstd, None), hard("b", "a")]).unwrap();
        assert!(check(vec![link("a", "x"), hard("b", "a")]).is_err());
        assert!(check(vec![fake_file("a", Encoding::ZstdRef, None)]).unwrap_err().contains("base"));
        let base = "1".repeat(64);
        assert!(check(vec![fake_file("a", Encoding::ZstdRef, Some(base.clone()))]).is_err());
        let mut with_old = fake_file("a", Encoding::ZstdRef, Some(base.clone()));
        with_old.old = Some(OldEntry { kind: OldKind::File, blake3: Some(base.clone()) });
        check(vec![with_old]).unwrap();
        assert!(check(vec![fake_file("a", Encoding::Zstd, Some(base))]).is_err());
        let mut m = dir("a");
        m.entry.as_mut().unwrap().mode = 0o10000;
        assert!(check(vec![m]).is_err());
        let mut x = dir("a");
        x.entry.as_mut().unwrap().xattrs = vec![("75736572".into(), "ZZ".into())];
        assert!(check(vec![x]).is_err());
        let mut d = del("a");
        d.entry = Some(entry(Node::Dir));
        assert!(check(vec![d]).is_err());
        let mut a = dir("a");
        a.entry = None;
        assert!(check(vec![a]).is_err());
        let mut bad_id = manifest(vec![]);
        bad_id.payload.blake3 = "0".repeat(64);
        validate(&bad_id).unwrap();
        bad_id.requires = vec!["../x".into()];
        assert!(validate(&bad_id).is_err());
        bad_id.requires = vec![];
        bad_id.id = "-x".into();
        assert!(validate(&bad_id).is_err());
        bad_id.id = "x".into();
        bad_id.payload.blake3 = "0".repeat(63) + "A";
        assert!(validate(&bad_id).is_err());
    }

    #[test]
    fn a_decompression_bomb_fails_fast() {
        let f = fixture();
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        let data = Data {
            offset: 0,
            length: bomb.len() as u64,
            stored_blake3: blake3::hash(&bomb).to_hex().to_string(),
            encoding: Encoding::Zstd,
            base: None,
        };
        let node = Node::File { size: 10, blake3: blake3::hash(&[0u8; 10]).to_hex().to_string(), data };
        let op = Op { action: Action::Add, path: "bomb".into(), entry: Some(entry(node)), old: None, version: None };
        let p = raw_with_ops(&f, vec![op], &bomb);
        let t = std::time::Instant::now();
        let e = open(&p, &f, true).unwrap_err();
        assert!(e.to_string().contains("longer than the declared 10 bytes"), "{e}");
        assert!(t.elapsed().as_secs() < 5);
    }

    #[test]
    fn a_delta_needs_its_own_base() {
        let f = fixture();
        let base: Vec<u8> = (0..50_000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let mut content = base.clone();
        content.extend_from_slice(b"new last line\n");
        let out = f.dir.join("d.slwpkg");
        let mut w = PayloadWriter::new(&out).unwrap();
        let enc = encode(&content, Some(&base), EncodeOptions::default()).unwrap();
        assert_eq!(enc.encoding, Encoding::ZstdRef);
        let data = w.append(&enc).unwrap();
        let node = Node::File { size: content.len() as u64, blake3: blake3::hash(&content).to_hex().to_string(), data };
        let op = Op {
            action: Action::Replace,
            path: "f".into(),
            entry: Some(entry(node.clone())),
            old: Some(OldEntry { kind: OldKind::File, blake3: Some(blake3::hash(&base).to_hex().to_string()) }),
            version: None,
        };
        write(&out, &mut manifest(vec![op]), w, Some(&f.sk)).unwrap();
        let pkg = open(&out, &f, false).unwrap();
        let mut got = Vec::new();
        pkg.decode_to(&node, Some(&base), &mut got).unwrap();
        assert_eq!(got, content);
        let mut wrong = base.clone();
        wrong[0] = b'X';
        let e = pkg.decode_to(&node, Some(&wrong), &mut Vec::new()).unwrap_err();
        assert!(matches!(e, PackageError::WrongBase { actual: Some(_), .. }), "{e}");
        let e = pkg.decode_to(&node, None, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, PackageError::WrongBase { actual: None, .. }), "{e}");
    }

    #[test]
    fn write_leaves_no_temporary_files() {
        let f = fixture();
        sample(&f, "clean.slwpkg", true);
        let names: Vec<String> =
            fs::read_dir(&f.dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}
