//! RFC 2136 UPDATE with TSIG, driven by BIND's real `nsupdate` against
//! a real node: adds, prerequisites, deletes, over UDP and TCP; bad keys
//! and unsigned updates are refused and change nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::Server;
use hickory_proto::rr::{RData, RecordType};

const KEY: &str = "hmac-sha256:ddns-key:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=";

fn nsupdate(s: &Server, key: Option<&str>, tcp: bool, script: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cmds");
    let text = format!("server 127.0.0.1 {}\nzone example.net\n{script}send\n", s.dns.port());
    std::fs::write(&f, text).unwrap();
    let mut cmd = Command::new("nsupdate");
    if let Some(k) = key {
        cmd.args(["-y", k]);
    }
    if tcp {
        cmd.arg("-v");
    }
    let out = cmd.arg(&f).output().expect("nsupdate is needed (scripts/test.sh installs bind9-dnsutils)");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn a_records(s: &Server, name: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .query(name, RecordType::A)
        .answers()
        .iter()
        .filter_map(|rr| if let RData::A(a) = rr.data() { Some(a.to_string()) } else { None })
        .collect();
    v.sort();
    v
}

fn zone_ready() -> Server {
    let s = Server::builder().env("MESHDNS_UPDATE_TSIG_KEYS", KEY).start();
    for args in [
        vec!["create", "example.net"],
        vec!["set", "example.net", "ns1", "A", "3600", "192.0.2.53"],
        vec!["set", "example.net", "@", "NS", "3600", "ns1"],
    ] {
        let (ok, _, err) = s.zone_cli(&args);
        assert!(ok, "{err}");
    }
    s
}

#[test]
fn nsupdate_adds_checks_prerequisites_and_deletes() {
    let s = zone_ready();
    let (ok, out) = nsupdate(
        &s,
        Some(KEY),
        false,
        "update add www.example.net. 300 A 192.0.2.80\nupdate add www.example.net. 300 A 192.0.2.81\nupdate add t.example.net. 60 TXT \"hello world\"\n",
    );
    assert!(ok, "{out}");
    assert_eq!(a_records(&s, "www.example.net."), vec!["192.0.2.80", "192.0.2.81"]);
    let txt = s.query("t.example.net.", RecordType::TXT);
    assert_eq!(txt.answers().len(), 1);
    // A prerequisite that does not hold: YXRRSET, nothing written.
    let (ok, out) = nsupdate(
        &s,
        Some(KEY),
        false,
        "prereq nxrrset www.example.net. A\nupdate add www.example.net. 300 A 192.0.2.99\n",
    );
    assert!(!ok && out.contains("YXRRSET"), "{out}");
    assert_eq!(a_records(&s, "www.example.net."), vec!["192.0.2.80", "192.0.2.81"]);
    // Delete one record, over TCP.
    let (ok, out) = nsupdate(
        &s,
        Some(KEY),
        true,
        "prereq yxrrset www.example.net. A\nupdate delete www.example.net. A 192.0.2.80\n",
    );
    assert!(ok, "{out}");
    assert_eq!(a_records(&s, "www.example.net."), vec!["192.0.2.81"]);
    // The apex NS cannot be deleted as a whole (RFC 2136 §3.4.2.3).
    let (ok, out) = nsupdate(&s, Some(KEY), false, "update delete example.net. NS\n");
    assert!(ok, "{out}");
    assert_eq!(s.query("example.net.", RecordType::NS).answers().len(), 1);
    // A CNAME replaces the CNAME there (RFC 2136 §3.4.2.2).
    let (ok, out) = nsupdate(&s, Some(KEY), false, "update add alias.example.net. 300 CNAME www.example.net.\n");
    assert!(ok, "{out}");
    let (ok, out) = nsupdate(&s, Some(KEY), false, "update add alias.example.net. 300 CNAME ns1.example.net.\n");
    assert!(ok, "{out}");
    let c = s.query("alias.example.net.", RecordType::CNAME);
    assert_eq!(c.answers().len(), 1);
    assert!(c.answers()[0].data().to_string().contains("ns1.example.net"), "{:?}", c.answers());
    // The write went through the journal like any other: it is exported.
    let (_, text, _) = s.zone_cli(&["export", "example.net"]);
    assert!(text.contains("t.example.net. 60 IN TXT \"hello world\""), "{text}");
}

#[test]
fn bad_keys_and_unsigned_updates_change_nothing() {
    let s = zone_ready();
    let wrong = "hmac-sha256:ddns-key:d3Jvbmd3cm9uZ3dyb25nd3Jvbmd3cm9uZ3dyb25nMTI=";
    let (ok, out) = nsupdate(&s, Some(wrong), false, "update add x.example.net. 300 A 192.0.2.1\n");
    assert!(!ok && out.contains("tsig"), "{out}");
    let (ok, out) = nsupdate(&s, None, false, "update add x.example.net. 300 A 192.0.2.1\n");
    assert!(!ok && out.contains("REFUSED"), "{out}");
    assert!(a_records(&s, "x.example.net.").is_empty());
    assert!(s.log_text().contains("refused an unsigned UPDATE"));
    // An update that would break the zone (a CNAME beside other data is
    // ignored by RFC 2136 §3.4.2.2; an NS without glue is refused).
    let (ok, out) = nsupdate(&s, Some(KEY), false, "update add example.net. 3600 NS ns9.example.net.\n");
    assert!(!ok && out.contains("REFUSED"), "{out}");
    assert_eq!(s.query("example.net.", RecordType::NS).answers().len(), 1);
}

#[test]
fn a_bad_key_in_the_configuration_is_a_clear_error() {
    let out = Command::new(common::BIN)
        .arg("serve")
        .env("MESHDNS_UPDATE_TSIG_KEYS", "hmac-sha256:k:not base64!")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("update.tsig_keys") && err.contains("not base64"), "{err}");
}
