//! rustls configurations for mutual TLS between nodes, with the ring
//! provider installed explicitly (one crypto provider in the build).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};

use crate::ca::node_dns_name;

/// ALPN protocol of the replication transport.
pub const ALPN: &[u8] = b"meshdns-repl/1";

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing or unreadable.
    #[error("{path}: {reason} (make one with `meshdns cluster ca issue --dir DIR --node-id ID`)")]
    File {
        /// File.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the material.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("TLS client verifier: {0}")]
    Verifier(String),
}

/// A node's TLS identity: the CA it trusts, its certificate chain and key.
#[derive(Debug, Clone)]
pub struct Identity {
    /// This node's id.
    pub node_id: String,
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::File { path: path.to_owned(), reason };
    let all = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if all.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    Ok(all)
}

impl Identity {
    /// Loads `ca.pem`, `<node_id>.pem` and `<node_id>.key` from `dir`.
    pub fn load(dir: &Path, node_id: &str) -> Result<Identity, TlsError> {
        let key_path = dir.join(format!("{node_id}.key"));
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| TlsError::File { path: key_path.clone(), reason: e.to_string() })?;
        Ok(Identity {
            node_id: node_id.to_owned(),
            ca: certs(&dir.join("ca.pem"))?,
            chain: certs(&dir.join(format!("{node_id}.pem")))?,
            key: Arc::new(key),
        })
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in &self.ca {
            roots.add(c.clone())?;
        }
        Ok(roots)
    }

    /// Server side: requires a client certificate from the cluster CA.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        Ok(cfg)
    }

    /// Client side: trusts only the cluster CA and presents this node's
    /// certificate.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        Ok(cfg)
    }
}

/// Whether `cert` (already verified against the cluster CA by the TLS
/// handshake) was issued for node `node_id`.
pub fn cert_names_node(cert: &CertificateDer<'_>, node_id: &str) -> bool {
    let Ok(name) = ServerName::try_from(node_dns_name(node_id)) else { return false };
    webpki::EndEntityCert::try_from(cert).is_ok_and(|c| c.verify_is_valid_for_subject_name(&name).is_ok())
}
