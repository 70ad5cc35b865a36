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

/// `nsupdate -y KEY` against zone `zone`; (succeeded, output).
fn nsupdate_zone(s: &Server, zone: &str, key: &str, script: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cmds");
    std::fs::write(&f, format!("server 127.0.0.1 {}\nzone {zone}\n{script}send\n", s.dns.port())).unwrap();
    let out = Command::new("nsupdate").args(["-y", key]).arg(&f).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn txt_count(s: &Server, name: &str) -> usize {
    s.query(name, RecordType::TXT).answers().len()
}

const ACME: &str = "hmac-sha256:acme:YWNtZWFjbWVhY21lYWNtZWFjbWVhY21lYWNtZWFjbWU=";

/// A key scoped to a zone, a name and a type (`[[update.keys]]`, in the
/// spirit of Knot's ACL `update-owner`) changes exactly that; anything
/// else is answered NOTAUTH, as Knot answers an ACL denial, and changes
/// nothing. The unscoped key of `update.tsig_keys` still works.
#[test]
fn a_scoped_key_updates_only_its_zones_names_and_types() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("meshdns.toml");
    std::fs::write(
        &config,
        format!(
            "[update]\ntsig_keys = [\"{KEY}\"]\n\n[[update.keys]]\nname = \"acme\"\nalgorithm = \"hmac-sha256\"\n\
             secret = \"YWNtZWFjbWVhY21lYWNtZWFjbWVhY21lYWNtZWFjbWU=\"\nzones = [\"example.net\"]\n\
             names = [\"_acme-challenge\"]\ntypes = [\"TXT\"]\n"
        ),
    )
    .unwrap();
    let s = Server::builder().args(&["--config", config.to_str().unwrap()]).start();
    for zone in ["example.net", "example.org"] {
        for args in [
            vec!["create", zone],
            vec!["set", zone, "ns1", "A", "3600", "192.0.2.53"],
            vec!["set", zone, "@", "NS", "3600", "ns1"],
        ] {
            let (ok, _, err) = s.zone_cli(&args);
            assert!(ok, "{err}");
        }
    }
    // In scope: its name (and below), its type, its zone.
    let (ok, out) = nsupdate_zone(&s, "example.net", ACME, "update add _acme-challenge.example.net. 60 TXT \"t1\"\n");
    assert!(ok, "{out}");
    let (ok, out) = nsupdate_zone(&s, "example.net", ACME, "update add x._acme-challenge.example.net. 60 TXT \"t2\"\n");
    assert!(ok, "{out}");
    assert_eq!(txt_count(&s, "_acme-challenge.example.net."), 1);
    // Another type at its name, its type at another name, another zone.
    for (zone, script) in [
        ("example.net", "update add _acme-challenge.example.net. 60 CAA 0 issue \"ca.example\"\n"),
        ("example.net", "update add www.example.net. 60 TXT \"no\"\n"),
        ("example.net", "update delete ns1.example.net. A\n"),
        ("example.org", "update add _acme-challenge.example.org. 60 TXT \"no\"\n"),
        // One record out of scope refuses the whole message.
        (
            "example.net",
            "update add _acme-challenge.example.net. 60 TXT \"t3\"\nupdate add www.example.net. 60 TXT \"no\"\n",
        ),
    ] {
        let (ok, out) = nsupdate_zone(&s, zone, ACME, script);
        assert!(!ok && out.contains("NOTAUTH"), "{script}: {out}");
    }
    assert_eq!(txt_count(&s, "_acme-challenge.example.net."), 1, "nothing changed");
    assert!(s.query("_acme-challenge.example.net.", RecordType::CAA).answers().is_empty());
    assert_eq!(txt_count(&s, "www.example.net."), 0);
    assert_eq!(a_records(&s, "ns1.example.net."), vec!["192.0.2.53"]);
    assert_eq!(txt_count(&s, "_acme-challenge.example.org."), 0);
    assert!(s.log_text().contains("outside its key's scope"));
    // The unscoped key may still change anything.
    let (ok, out) = nsupdate_zone(&s, "example.org", KEY, "update add www.example.org. 60 TXT \"yes\"\n");
    assert!(ok, "{out}");
    assert_eq!(txt_count(&s, "www.example.org."), 1);
}

/// With `server.udp_batch = true` UPDATEs over UDP are answered like on
/// the plain UDP path (the batched workers used to answer them as
/// queries). Many UPDATEs at once, over UDP and TCP, are all applied,
/// while queries keep being answered correctly throughout: the journal's
/// fsync runs on the update writer, never on a DNS worker.
#[test]
fn updates_work_with_udp_batching_and_queries_are_answered_meanwhile() {
    let s = Server::builder().env("MESHDNS_UPDATE_TSIG_KEYS", KEY).env("MESHDNS_SERVER_UDP_BATCH", "true").start();
    for args in [
        vec!["create", "example.net"],
        vec!["set", "example.net", "ns1", "A", "3600", "192.0.2.53"],
        vec!["set", "example.net", "@", "NS", "3600", "ns1"],
    ] {
        let (ok, _, err) = s.zone_cli(&args);
        assert!(ok, "{err}");
    }
    let (ok, out) = nsupdate(&s, Some(KEY), false, "update add b.example.net. 300 A 192.0.2.9\n");
    assert!(ok, "an UPDATE over batched UDP: {out}");
    assert_eq!(a_records(&s, "b.example.net."), vec!["192.0.2.9"]);
    let done = std::sync::atomic::AtomicBool::new(false);
    let answered = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..5 {
                        let script = format!("update add w{t}-{i}.example.net. 300 A 192.0.2.{}\n", 10 + t * 5 + i);
                        let (ok, out) = nsupdate(s, Some(KEY), t % 2 == 1, &script);
                        assert!(ok, "{out}");
                    }
                })
            })
            .collect();
        let reader = scope.spawn(|| {
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(a_records(&s, "ns1.example.net."), vec!["192.0.2.53"], "a query during the UPDATEs");
                n += 1;
            }
            n
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(answered > 0);
    for t in 0..4 {
        for i in 0..5 {
            assert_eq!(a_records(&s, &format!("w{t}-{i}.example.net.")), vec![format!("192.0.2.{}", 10 + t * 5 + i)]);
        }
    }
}
