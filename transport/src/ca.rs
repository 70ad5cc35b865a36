//! The cluster certificate authority: `meshdns cluster ca init` and
//! `meshdns cluster ca issue`.
//!
//! A directory holds `ca.pem` and `ca.key` (the CA), and `<node-id>.pem` /
//! `<node-id>.key` for each node issued. A node's certificate names it as
//! `<node-id>.node.meshdns` (see [`node_dns_name`]), is valid as both a TLS
//! server and a TLS client, and is signed by the CA: every node trusts the
//! CA and nothing else, so only nodes with a certificate from it take part.
//!
//! Node certificates live [`NODE_CERT_DAYS`] days; `meshdns cluster ca
//! renew` issues a fresh one (new key) in place, and a node warns when its
//! certificate nears its end ([`not_after`]). The issuer of every node
//! certificate is read from `ca.pem`, so it names exactly the CA that
//! signed it, whatever that CA was created with.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// How long a node certificate is valid: a year, so a stolen node key
/// stops working on its own, and renewal is a yearly chore, not a surprise.
pub const NODE_CERT_DAYS: u64 = 365;
/// A node warns once its certificate has less than this left.
pub const RENEW_BEFORE_DAYS: u64 = 30;
/// Slack before `now` in `not_before`, for peers whose clocks lag.
const BACKDATE: Duration = Duration::from_secs(3600);

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
    #[error("node id {0:?} cannot be put in a certificate: use 1-63 letters, digits and '-', not first or last")]
    BadId(String),
    /// A certificate could not be read.
    #[error("{path}: not a PEM certificate: {reason}")]
    BadCert {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `renew` found no certificate to renew.
    #[error("no certificate for node {0:?} in {1}: issue one with `meshdns cluster ca issue`")]
    NoCert(String, String),
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
    f.write_all(contents.as_bytes()).and_then(|()| f.sync_all()).map_err(io(path))?;
    sync_parent(path)
}

/// Makes a new or renamed entry of `path`'s directory durable (the file's
/// own fsync does not cover its name), as `write_durably` in the
/// replication crate does for the node's other state.
fn sync_parent(path: &Path) -> Result<(), CaError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
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

/// Issues a certificate for `node_id` from the CA in `dir`, valid for
/// [`NODE_CERT_DAYS`] from now: writes `<node_id>.pem` and `<node_id>.key`
/// there (refusing to overwrite) and returns their paths.
#[allow(clippy::disallowed_methods)] // a command: it reads the wall clock once
pub fn issue(dir: &Path, node_id: &str) -> Result<(PathBuf, PathBuf), CaError> {
    issue_at(dir, node_id, SystemTime::now(), false)
}

/// Renews `node_id`'s certificate in `dir`: a new key and a certificate
/// valid for [`NODE_CERT_DAYS`] from now replace the old ones (each file
/// atomically). The node picks them up at its next start.
#[allow(clippy::disallowed_methods)] // a command: it reads the wall clock once
pub fn renew(dir: &Path, node_id: &str) -> Result<(PathBuf, PathBuf), CaError> {
    issue_at(dir, node_id, SystemTime::now(), true)
}

/// [`issue`] (or, with `replace`, [`renew`]) as if run at `now`.
pub fn issue_at(dir: &Path, node_id: &str, now: SystemTime, replace: bool) -> Result<(PathBuf, PathBuf), CaError> {
    if !meshdns_ring::valid_node_id(node_id) {
        return Err(CaError::BadId(node_id.to_owned()));
    }
    let (cert_path, node_key_path) = (dir.join(format!("{node_id}.pem")), dir.join(format!("{node_id}.key")));
    if replace && !cert_path.exists() {
        return Err(CaError::NoCert(node_id.to_owned(), dir.display().to_string()));
    }
    let read_ca = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CaError::NoCa(dir.display().to_string())
            } else {
                io(&path)(e)
            }
        })
    };
    let ca_key = KeyPair::from_pem(&read_ca(dir.join("ca.key"))?)?;
    let ca_pem = read_ca(dir.join("ca.pem"))?;
    // The issuer (name, key identifier) comes from the CA certificate
    // itself, so chains verify against exactly the ca.pem nodes trust.
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
        .map_err(|e| CaError::BadCert { path: dir.join("ca.pem"), reason: e.to_string() })?;
    let mut p = CertificateParams::new(vec![node_dns_name(node_id)])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node_id);
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = (now - BACKDATE).into();
    p.not_after = (now + Duration::from_secs(NODE_CERT_DAYS * 86_400)).into();
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    if replace {
        replace_file(&node_key_path, &key.serialize_pem(), true)?;
        replace_file(&cert_path, &cert.pem(), false)?;
    } else {
        write_new(&node_key_path, &key.serialize_pem(), true)?;
        write_new(&cert_path, &cert.pem(), false)?;
    }
    Ok((cert_path, node_key_path))
}

/// Replaces `path` atomically (a temporary file renamed over it).
fn replace_file(path: &Path, contents: &str, secret: bool) -> Result<(), CaError> {
    let tmp = path.with_extension("renew.tmp");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, contents, secret)?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    sync_parent(path)
}

/// When the first certificate in the PEM file `path` expires.
pub fn not_after(path: &Path) -> Result<SystemTime, CaError> {
    let bad = |reason: String| CaError::BadCert { path: path.to_owned(), reason };
    let pem = std::fs::read(path).map_err(io(path))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    let secs = cert.validity().not_after.timestamp();
    let secs = u64::try_from(secs).map_err(|_| bad("expires before 1970".to_owned()))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn parsed(path: &Path) -> (String, String, i64, i64) {
        let pem = std::fs::read(path).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        let v = cert.validity();
        (cert.issuer().to_string(), cert.subject().to_string(), v.not_before.timestamp(), v.not_after.timestamp())
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // checks against the real clock too
    fn node_certificates_have_a_bounded_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (cert, _) = issue_at(dir.path(), "a", now, false).unwrap();
        let (_, _, from, until) = parsed(&cert);
        assert_eq!(until - from, (NODE_CERT_DAYS * DAY + 3600) as i64);
        assert_eq!(until, 1_800_000_000 + (NODE_CERT_DAYS * DAY) as i64);
        assert_eq!(not_after(&cert).unwrap(), now + Duration::from_secs(NODE_CERT_DAYS * DAY));
        // The real clock: within a year from now, not a century.
        let (cert, _) = issue(dir.path(), "b").unwrap();
        let left = not_after(&cert).unwrap().duration_since(SystemTime::now()).unwrap();
        assert!(left <= Duration::from_secs(NODE_CERT_DAYS * DAY) && left > Duration::from_secs(364 * DAY));
    }

    #[test]
    fn renewal_replaces_the_key_and_extends_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(matches!(issue_at(dir.path(), "a", t0, true), Err(CaError::NoCert(..))));
        let (cert, key) = issue_at(dir.path(), "a", t0, false).unwrap();
        let old_key = std::fs::read_to_string(&key).unwrap();
        // Issuing again refuses to overwrite; renewing replaces.
        assert!(matches!(issue_at(dir.path(), "a", t0, false), Err(CaError::Exists(_))));
        let t1 = t0 + Duration::from_secs(340 * DAY);
        issue_at(dir.path(), "a", t1, true).unwrap();
        assert_eq!(not_after(&cert).unwrap(), t1 + Duration::from_secs(NODE_CERT_DAYS * DAY));
        assert_ne!(std::fs::read_to_string(&key).unwrap(), old_key);
        // The renewed identity loads and is trusted by the CA.
        let id = crate::tls::Identity::load(dir.path(), "a").unwrap();
        id.server_config().unwrap();
        assert!(!dir.path().join("a.renew.tmp").exists());
    }

    #[test]
    fn the_issuer_is_the_ca_certificate_subject() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path()).unwrap();
        // A CA made elsewhere, with a name other than ours.
        let mut p = ca_params();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Example Ops CA");
        dn.push(DnType::OrganizationName, "Example");
        p.distinguished_name = dn;
        let key = KeyPair::generate().unwrap();
        let ca = p.self_signed(&key).unwrap();
        write_new(&dir.path().join("ca.key"), &key.serialize_pem(), true).unwrap();
        write_new(&dir.path().join("ca.pem"), &ca.pem(), false).unwrap();
        let (cert, _) = issue(dir.path(), "a").unwrap();
        let (issuer, subject, _, _) = parsed(&cert);
        let (_, ca_subject, _, _) = parsed(&dir.path().join("ca.pem"));
        assert_eq!(issuer, ca_subject);
        assert!(issuer.contains("Example Ops CA"), "{issuer}");
        assert!(subject.contains("CN=a"), "{subject}");
    }

    #[test]
    fn node_ids_follow_the_one_rule() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        for bad in ["a_b", "a.b", "-a", ""] {
            assert!(matches!(issue(dir.path(), bad), Err(CaError::BadId(_))), "{bad}");
        }
    }
}
