//! TLS: the certificate and key given, or a self-signed pair made on the
//! first start and kept in the data directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Where the certificate and key are, and whether they were just made.
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub made: bool,
}

/// Uses `cert`/`key` when given, else `DATA/tls/{cert,key}.pem`, made
/// self-signed for `names` (host names and IP addresses) when missing.
pub fn files(data: &Path, given: Option<(PathBuf, PathBuf)>, names: &[String]) -> Result<TlsFiles> {
    if let Some((cert, key)) = given {
        return Ok(TlsFiles { cert, key, made: false });
    }
    let dir = data.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok(TlsFiles { cert, key, made: false });
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let made = rcgen::generate_simple_self_signed(names.to_vec()).context("making a self-signed certificate")?;
    write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
    write_private(&cert, made.cert.pem().as_bytes())?;
    Ok(TlsFiles { cert, key, made: true })
}

/// A rustls server configuration for the PEM chain and key. HTTP/1.1 only:
/// some HTTP/2 clients take an early answer (a 401 before the body was
/// read) for a broken stream.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    let mut cfg = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Writes a private file (0600) atomically.
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    slipway_store::write_private(path, data).with_context(|| format!("writing {}", path.display()))
}

/// The SHA-256 fingerprint of a PEM certificate, as `openssl x509
/// -fingerprint -sha256` prints it, for an admin to compare.
pub fn fingerprint(cert_pem: &Path) -> Result<String> {
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let der = rustls::pki_types::CertificateDer::from_pem_file(cert_pem)
        .map_err(|e| anyhow::anyhow!("{}: no PEM certificate ({e})", cert_pem.display()))?;
    let d = sha2::Sha256::digest(der.as_ref());
    Ok(d.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
}
