//! minisign-compatible Ed25519 keys and the trust directories.
//!
//! Key files are minisign's: a public key is two lines (an untrusted comment
//! and the base64 key), readable by `minisign -V -p FILE`; a secret key is
//! minisign's secret key box, unencrypted (slipway signs unattended, so the
//! file's permissions protect it). A key is named by its key id: the 16
//! uppercase hex digits minisign prints.
//!
//! A trust directory holds one `ID.pub` per trusted key: a machine's is
//! `ROOT/etc/slipway/trusted.d`, a store's is `STORE/trusted.d`.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ct_codecs::{Base64, Decoder};
use minisign::{KeyPair, PublicKey, PublicKeyBox, SecretKey, SecretKeyBox};

/// Key files are a few lines; anything larger is not a key.
const MAX_KEY_FILE: u64 = 64 << 10;

/// A public key that signatures may be checked against.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    /// The minisign key id: 16 uppercase hex digits, as minisign prints it.
    pub id: String,
    pub key: PublicKey,
    /// The file it was read from.
    pub source: PathBuf,
}

/// The files [`new_key`] wrote.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub secret: PathBuf,
    pub public: PathBuf,
    pub id: String,
}

/// The key id of a minisign key number (8 bytes, little-endian), as minisign
/// prints it: 16 uppercase hex digits.
pub fn key_id(keynum: &[u8]) -> String {
    let mut b = [0u8; 8];
    let n = keynum.len().min(8);
    b[..n].copy_from_slice(&keynum[..n]);
    format!("{:016X}", u64::from_le_bytes(b))
}

/// `PREFIX` with `suffix` appended to its file name (`keys/release` →
/// `keys/release.key`).
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The text of a public key file: minisign's format with a comment naming
/// slipway and the key id.
fn public_key_text(key: &PublicKey, id: &str) -> String {
    format!("untrusted comment: slipway public key {id}\n{}\n", key.to_base64())
}

/// Generates a key pair and writes `PREFIX.key` (the secret key, mode 0600)
/// and `PREFIX.pub` (the public key). Refuses to overwrite either file.
pub fn new_key(prefix: &Path) -> anyhow::Result<NewKey> {
    let secret = with_suffix(prefix, ".key");
    let public = with_suffix(prefix, ".pub");
    for p in [&secret, &public] {
        if fs::symlink_metadata(p).is_ok() {
            bail!("{} already exists; choose another name or move the old key away first", p.display());
        }
    }
    let KeyPair { pk, sk } = KeyPair::generate_unencrypted_keypair().context("generating an Ed25519 key pair")?;
    let id = key_id(pk.keynum());
    let sk_text = sk
        .to_box(Some(&format!("slipway secret key {id} (unencrypted; keep it private)")))
        .context("encoding the secret key")?
        .into_string();
    write_new(&secret, sk_text.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, public_key_text(&pk, &id).as_bytes(), 0o644) {
        let _ = fs::remove_file(&secret);
        return Err(e);
    }
    sync_parent(&secret)?;
    Ok(NewKey { secret, public, id })
}

/// Creates `path` (never overwriting) with `mode`, writes `bytes`, syncs.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(path).with_context(|| {
            format!("creating {} (it must not exist yet; move an old key away first)", path.display())
        })?;
    f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("writing {}", path.display()))
}

fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing directory {}", dir.display()))
}

fn read_key_file(path: &Path, what: &str) -> anyhow::Result<String> {
    let md = fs::metadata(path).with_context(|| format!("reading {what} {}", path.display()))?;
    if !md.is_file() || md.len() > MAX_KEY_FILE {
        bail!("{} is not a {what} file (a minisign key file is a few lines of text)", path.display());
    }
    let bytes = fs::read(path).with_context(|| format!("reading {what} {}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!("{} is not a {what} file (not text); give the .pub/.key file minisign wrote", path.display())
    })
}

/// Parses the text of a public key file: minisign's two lines, or the bare
/// base64 line (`minisign -P`).
pub fn parse_public(text: &str) -> Result<PublicKey, String> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let key = match lines.as_slice() {
        [b64] => PublicKey::from_base64(b64),
        [comment, _, ..] if comment.starts_with("untrusted comment:") => PublicKey::from_box(
            PublicKeyBox::from_string(&format!("{}\n{}\n", lines[0], lines[1])).map_err(|e| e.to_string())?,
        ),
        _ => return Err("not a minisign public key (expected an `untrusted comment:` line and a base64 line)".into()),
    }
    .map_err(|e| format!("not a minisign public key: {e}"))?;
    if key.to_bytes().get(..2) != Some(&b"Ed"[..]) {
        return Err("not an Ed25519 minisign public key (unknown signature algorithm)".into());
    }
    Ok(key)
}

/// Reads a public key file.
pub fn load_public(path: &Path) -> anyhow::Result<TrustedKey> {
    let text = read_key_file(path, "public key")?;
    let key = parse_public(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(TrustedKey { id: key_id(key.keynum()), key, source: path.to_owned() })
}

/// Reads an unencrypted secret key file; returns the key and its id.
/// Encrypted keys (made by `minisign -G` without `-W`) are refused.
pub fn load_secret(path: &Path) -> anyhow::Result<(SecretKey, String)> {
    let text = read_key_file(path, "secret key")?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let (Some(comment), Some(b64)) = (lines.next(), lines.next()) else {
        bail!("{} is not a minisign secret key (expected a comment line and a base64 line)", path.display());
    };
    if !comment.starts_with("untrusted comment:") {
        bail!("{} is not a minisign secret key (no `untrusted comment:` line)", path.display());
    }
    let raw = Base64::decode_to_vec(b64, None)
        .map_err(|_| anyhow::anyhow!("{} is not a minisign secret key (bad base64)", path.display()))?;
    // Layout: signature algorithm (2), KDF algorithm (2), checksum algorithm (2), ...
    if raw.len() < 6 || &raw[..2] != b"Ed" {
        bail!("{} is not an Ed25519 minisign secret key", path.display());
    }
    if raw[2..4] != [0, 0] {
        bail!(
            "{} is an encrypted (password-protected) secret key; slipway signs unattended and needs an \
             unencrypted one: make one with `slipway key new`",
            path.display()
        );
    }
    let sk = SecretKey::from_unencrypted_box(
        SecretKeyBox::from_string(&format!("{comment}\n{b64}\n")).map_err(|e| anyhow::anyhow!("{e}"))?,
    )
    .map_err(|e| anyhow::anyhow!("{} is not a usable minisign secret key: {e}", path.display()))?;
    let id = key_id(sk.keynum());
    Ok((sk, id))
}

/// Every `*.pub` file in a trust directory, in name order. A missing
/// directory trusts nothing; a file that is not a public key is an error.
pub fn trusted_in(dir: &Path) -> anyhow::Result<Vec<TrustedKey>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing trusted keys in {}", dir.display())),
    };
    let mut paths = Vec::new();
    for e in rd {
        let e = e.with_context(|| format!("listing trusted keys in {}", dir.display()))?;
        let name = e.file_name();
        if name.as_encoded_bytes().ends_with(b".pub") && !name.as_encoded_bytes().starts_with(b".") {
            paths.push(e.path());
        }
    }
    paths.sort();
    paths
        .iter()
        .map(|p| {
            load_public(p)
                .with_context(|| format!("reading trusted key {} (remove or fix the file to go on)", p.display()))
        })
        .collect()
}

/// Copies the public key `public` into the trust directory `dir` as
/// `ID.pub` (creating `dir` with mode 0755; temporary file, fsync, rename).
/// Returns the written path and the key. Trusting a key twice is fine.
pub fn trust(public: &Path, dir: &Path) -> anyhow::Result<(PathBuf, TrustedKey)> {
    let key = load_public(public)?;
    let dest = dir.join(format!("{}.pub", key.id));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("creating trust directory {}", dir.display()))?;
    if dest.exists() {
        let old = load_public(&dest).with_context(|| format!("{} is in the way", dest.display()))?;
        if old.key == key.key && old.key.keynum() == key.key.keynum() {
            return Ok((dest.clone(), TrustedKey { source: dest, ..key }));
        }
        bail!(
            "{} holds a different key with the same id {}; remove it first if {} should replace it",
            dest.display(),
            key.id,
            public.display()
        );
    }
    let tmp = dir.join(format!(".{}.pub.tmp-{}", key.id, std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = (|| -> anyhow::Result<()> {
        write_new(&tmp, public_key_text(&key.key, &key.id).as_bytes(), 0o644)?;
        fs::rename(&tmp, &dest).with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        sync_parent(&dest)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok((dest.clone(), TrustedKey { source: dest, ..key }))
}

/// The trust directory of a machine (or image) root: `ROOT/etc/slipway/trusted.d`.
pub fn machine_trust_dir(root: &Path) -> PathBuf {
    root.join("etc/slipway/trusted.d")
}

/// The trust directory of a store: `STORE/trusted.d`.
pub fn store_trust_dir(store: &Path) -> PathBuf {
    store.join("trusted.d")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    #[test]
    fn new_key_round_trips_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("release");
        let k = new_key(&prefix).unwrap();
        assert_eq!(k.secret, dir.path().join("release.key"));
        assert_eq!(k.public, dir.path().join("release.pub"));
        assert_eq!(k.id.len(), 16);
        assert!(k.id.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert_eq!(fs::metadata(&k.secret).unwrap().permissions().mode() & 0o777, 0o600);
        let pubtext = fs::read_to_string(&k.public).unwrap();
        assert!(pubtext.starts_with(&format!("untrusted comment: slipway public key {}\n", k.id)), "{pubtext}");

        let p = load_public(&k.public).unwrap();
        let (sk, id) = load_secret(&k.secret).unwrap();
        assert_eq!(p.id, k.id);
        assert_eq!(id, k.id);
        assert!(PublicKey::from_secret_key(&sk).unwrap() == p.key);

        let err = new_key(&prefix).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        // Only the public half left over: still refused, and the secret is not recreated.
        fs::remove_file(&k.secret).unwrap();
        assert!(new_key(&prefix).is_err());
        assert!(!k.secret.exists());
    }

    #[test]
    fn refuses_encrypted_and_damaged_secret_keys() {
        let dir = tempfile::tempdir().unwrap();
        let kp = KeyPair::generate_encrypted_keypair(Some("pw".into())).unwrap();
        let enc = dir.path().join("enc.key");
        fs::write(&enc, kp.sk.to_box(None).unwrap().to_bytes()).unwrap();
        let err = format!("{:#}", load_secret(&enc).unwrap_err());
        assert!(err.contains("encrypted"), "{err}");

        let k = new_key(&dir.path().join("k")).unwrap();
        let text = fs::read_to_string(&k.secret).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        // Damage the key material (keep the base64 valid): the checksum catches it.
        let mut raw = Base64::decode_to_vec(&lines[1], None).unwrap();
        raw[60] ^= 1;
        lines[1] = <Base64 as ct_codecs::Encoder>::encode_to_string(&raw).unwrap();
        fs::write(&k.secret, lines.join("\n")).unwrap();
        assert!(load_secret(&k.secret).is_err());
        fs::write(&k.public, "hello\n").unwrap();
        assert!(load_public(&k.public).is_err());
    }

    #[test]
    fn trust_directory_is_idempotent_and_reports_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let k = new_key(&dir.path().join("k")).unwrap();
        let trust_dir = machine_trust_dir(&dir.path().join("root"));
        assert!(trusted_in(&trust_dir).unwrap().is_empty());
        let (p1, t1) = trust(&k.public, &trust_dir).unwrap();
        let (p2, _) = trust(&k.public, &trust_dir).unwrap();
        assert_eq!(p1, p2);
        assert_eq!(p1, trust_dir.join(format!("{}.pub", k.id)));
        assert_eq!(t1.source, p1);
        assert_eq!(fs::metadata(&trust_dir).unwrap().permissions().mode() & 0o777, 0o755);
        let all = trusted_in(&trust_dir).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, k.id);

        fs::write(trust_dir.join("junk.pub"), "not a key").unwrap();
        let err = format!("{:#}", trusted_in(&trust_dir).unwrap_err());
        assert!(err.contains("junk.pub"), "{err}");
        assert_eq!(store_trust_dir(Path::new("/s")), Path::new("/s/trusted.d"));
    }

    #[test]
    fn minisign_cli_verifies_our_signature() {
        if Command::new("minisign").arg("-v").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "minisign is required in CI; scripts/install-deps.sh installs it"
            );
            eprintln!("skipped: the minisign binary is not installed (apt-get install minisign)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let k = new_key(&dir.path().join("k")).unwrap();
        let (sk, _) = load_secret(&k.secret).unwrap();
        let pk = load_public(&k.public).unwrap();
        let data = dir.path().join("data");
        fs::write(&data, b"some bytes to sign\n").unwrap();
        let sig = minisign::sign(Some(&pk.key), &sk, File::open(&data).unwrap(), Some("slipway test"), None).unwrap();
        let sigp = dir.path().join("data.minisig");
        fs::write(&sigp, sig.to_string()).unwrap();
        let verify = || {
            Command::new("minisign")
                .arg("-V")
                .arg("-p")
                .arg(&k.public)
                .arg("-m")
                .arg(&data)
                .arg("-x")
                .arg(&sigp)
                .output()
        };
        let out = verify().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("slipway test"), "{text}");
        // And a tampered file fails.
        fs::write(&data, b"some bytes to sign!\n").unwrap();
        assert!(!verify().unwrap().status.success());
    }
}
