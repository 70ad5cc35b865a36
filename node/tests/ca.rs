//! `meshdns cluster ca init|issue|renew` with the real binary, checked with
//! `openssl x509`: node certificates live a year, renewal replaces them,
//! and bad node ids are refused by the same rule gossip uses.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::BIN;

fn meshdns(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// `openssl x509 -in CERT FLAG -noout`, trimmed.
fn openssl(cert: &Path, flag: &str) -> String {
    let out = Command::new("openssl").args(["x509", "-noout", flag, "-in"]).arg(cert).output().unwrap();
    assert!(out.status.success(), "openssl failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether `cert` is still valid `secs` from now (`openssl x509 -checkend`).
fn valid_in(cert: &Path, secs: u64) -> bool {
    Command::new("openssl")
        .args(["x509", "-noout", "-checkend", &secs.to_string(), "-in"])
        .arg(cert)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

const DAY: u64 = 86_400;

#[test]
fn node_certificates_live_a_year_and_renew() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ca_s = ca.to_str().unwrap();
    assert!(meshdns(&["cluster", "ca", "init", "--dir", ca_s]).0);
    let (ok, out) = meshdns(&["cluster", "ca", "issue", "--dir", ca_s, "--node-id", "a"]);
    assert!(ok, "{out}");
    let cert = ca.join("a.pem");
    assert!(valid_in(&cert, 360 * DAY), "expires within 360 days");
    assert!(!valid_in(&cert, 366 * DAY), "valid for more than a year");
    assert_eq!(openssl(&cert, "-issuer"), openssl(&ca.join("ca.pem"), "-subject").replacen("subject", "issuer", 1));

    let before = (openssl(&cert, "-serial"), std::fs::read_to_string(ca.join("a.key")).unwrap());
    let (ok, out) = meshdns(&["cluster", "ca", "renew", "--dir", ca_s, "--node-id", "a"]);
    assert!(ok, "{out}");
    assert!(out.contains("renewed"), "{out}");
    let after = (openssl(&cert, "-serial"), std::fs::read_to_string(ca.join("a.key")).unwrap());
    assert_ne!(before.0, after.0, "the certificate was not replaced");
    assert_ne!(before.1, after.1, "the key was not replaced");
    assert!(valid_in(&cert, 360 * DAY) && !valid_in(&cert, 366 * DAY));
    // The renewed certificate chains to the CA.
    let verify =
        Command::new("openssl").args(["verify", "-CAfile"]).arg(ca.join("ca.pem")).arg(&cert).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));

    // Nothing to renew, and ids gossip would refuse, are clear errors.
    let (ok, out) = meshdns(&["cluster", "ca", "renew", "--dir", ca_s, "--node-id", "b"]);
    assert!(!ok && out.contains("cluster ca issue"), "{out}");
    for bad in ["a_b", "a.b"] {
        let (ok, out) = meshdns(&["cluster", "ca", "issue", "--dir", ca_s, "--node-id", bad]);
        assert!(!ok && out.contains("cannot be put in a certificate"), "{out}");
    }
}

#[test]
#[allow(clippy::disallowed_methods)] // the certificate is dated from the real clock
fn a_node_warns_before_its_certificate_expires() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    meshdns_transport::ca::init(&ca).unwrap();
    // Issued 340 days ago: 25 days left, inside the 30-day warning.
    let issued = std::time::SystemTime::now() - std::time::Duration::from_secs(340 * DAY);
    meshdns_transport::ca::issue_at(&ca, "a", issued, false).unwrap();
    let quic = format!("127.0.0.1:{}", common::free_port());
    let s =
        common::Server::builder().args(&["--node-id", "a", "--quic", &quic, "--tls-dir", ca.to_str().unwrap()]).start();
    common::wait_for("the expiry warning", std::time::Duration::from_secs(10), || {
        let log = s.log_text();
        (log.contains("certificate expires soon") && log.contains("days_left=24") && log.contains("cluster ca renew"))
            .then_some(())
    });
    // A fresh certificate draws no warning (the check runs before replication starts).
    let fresh = tempfile::tempdir().unwrap();
    let ca2 = fresh.path().join("ca");
    meshdns_transport::ca::init(&ca2).unwrap();
    meshdns_transport::ca::issue(&ca2, "b").unwrap();
    let quic = format!("127.0.0.1:{}", common::free_port());
    let s2 = common::Server::builder()
        .args(&["--node-id", "b", "--quic", &quic, "--tls-dir", ca2.to_str().unwrap()])
        .start();
    common::wait_for("replication to start", std::time::Duration::from_secs(10), || {
        s2.log_text().contains("replicating zones over QUIC").then_some(())
    });
    assert!(!s2.log_text().contains("expires soon"), "{}", s2.log_text());
}
