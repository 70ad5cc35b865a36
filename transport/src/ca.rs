//! The cluster certificate authority: `meshdns cluster ca init` and
//! `meshdns cluster ca issue`.
//!
//! A directory holds `ca.pem` and `ca.key` (the CA), and `<node-id>.pem` /
//! `<node-id>.key` for each node issued. A node's certificate names it as
//! `<node-id>.node.meshdns` (see [`node_dns_name`]), is valid as both a TLS
//! server and a TLS client, and is signed by the CA: every node trusts the
//! CA and nothing else, so only nodes with a certificate from it take part.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The name a node's certificate is issued for.
pub fn node_dns_name(node_id: &str) -> String {
    format!("{}.node.meshdns", node_id.to_ascii_lowercase())
}

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `init` would overwrite an existing CA.
    #[error(
        "{0} already exists: a cluster CA is there (remove it first to make a new one; every node then needs a new certificate)"
    )]
    Exists(PathBuf),
    /// The CA files are missing.
    #[error("no cluster CA in {0}: run `meshdns cluster ca init --dir {0}` first")]
    NoCa(String),
    /// The node id cannot be a certificate name.
    #[error("node id {0:?} cannot be put in a certificate: use letters, digits and '-'")]
    BadId(String),
    /// rcgen refused.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io { path: path.to_owned(), source }
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "meshdns cluster CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    p
}

/// Writes `contents` to `path`, readable by the owner only when `secret`.
fn write_new(path: &Path, contents: &str, secret: bool) -> Result<(), CaError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists { CaError::Exists(path.to_owned()) } else { io(path)(e) }
        })?;
    f.write_all(contents.as_bytes()).and_then(|()| f.sync_all()).map_err(io(path))
}

/// Creates a new cluster CA in `dir`.
pub fn init(dir: &Path) -> Result<PathBuf, CaError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    if cert_path.exists() {
        return Err(CaError::Exists(cert_path));
    }
    let key = KeyPair::generate()?;
    let cert = ca_params().self_signed(&key)?;
    write_new(&key_path, &key.serialize_pem(), true)?;
    write_new(&cert_path, &cert.pem(), false)?;
    Ok(cert_path)
}

/// Issues a certificate for `node_id` from the CA in `dir`: writes
/// `<node_id>.pem` and `<node_id>.key` there and returns their paths.
pub fn issue(dir: &Path, node_id: &str) -> Result<(PathBuf, PathBuf), CaError> {
    let valid = !node_id.is_empty()
        && node_id.len() <= 63
        && node_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !node_id.starts_with('-')
        && !node_id.ends_with('-');
    if !valid {
        return Err(CaError::BadId(node_id.to_owned()));
    }
    let key_path = dir.join("ca.key");
    let ca_key_pem = std::fs::read_to_string(&key_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CaError::NoCa(dir.display().to_string())
        } else {
            io(&key_path)(e)
        }
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut p = CertificateParams::new(vec![node_dns_name(node_id)])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node_id);
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    let (cert_path, node_key_path) = (dir.join(format!("{node_id}.pem")), dir.join(format!("{node_id}.key")));
    write_new(&node_key_path, &key.serialize_pem(), true)?;
    write_new(&cert_path, &cert.pem(), false)?;
    Ok((cert_path, node_key_path))
}
