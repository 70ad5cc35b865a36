//! Zone lifecycle with the real binary: broken files, reloads, snapshots,
//! and the `zone check` / `zone reload` / `config check` commands.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

const GOOD: &str = "$ORIGIN good.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.10\n";

fn good_with(serial: u32, www: &str) -> String {
    format!(
        "$ORIGIN good.test.\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\nwww A {www}\n"
    )
}

fn a_of(s: &Server, name: &str) -> Option<String> {
    let r = s.query(name, RecordType::A);
    r.answers().iter().find_map(|a| match a.data() {
        RData::A(ip) => Some(ip.to_string()),
        _ => None,
    })
}

#[test]
fn a_broken_zone_file_fails_alone_with_file_and_line() {
    let d = zone_dir(&[
        ("good.test.zone", GOOD),
        (
            "bad.test.zone",
            "$ORIGIN bad.test.\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\nwww A 300.1.2.3\n",
        ),
    ]);
    let s = Server::with_zones(d.path());
    assert_eq!(a_of(&s, "www.good.test.").as_deref(), Some("192.0.2.10"));
    assert_eq!(s.query("www.bad.test.", RecordType::A).response_code(), ResponseCode::Refused);
    let log = s.log_text();
    assert!(log.contains("bad.test.zone:5:"), "the log names file and line:\n{log}");
    let (_, metrics) = s.http_get("/metrics").unwrap();
    assert!(metrics.contains("meshdns_zone_load_errors_total{file="), "{metrics}");
    assert!(metrics.contains("meshdns_zone_serial{zone=\"good.test.\"} 1"), "{metrics}");
}

#[test]
fn sighup_and_zone_reload_swap_changes_in_and_a_failed_reload_keeps_the_old_version() {
    let d = zone_dir(&[("good.test.zone", GOOD)]);
    let s = Server::with_zones(d.path());
    assert_eq!(a_of(&s, "www.good.test.").as_deref(), Some("192.0.2.10"));

    // SIGHUP picks up an edit.
    std::fs::write(d.path().join("good.test.zone"), good_with(2, "192.0.2.20")).unwrap();
    s.signal(1);
    wait_for("the SIGHUP reload", Duration::from_secs(10), || {
        (a_of(&s, "www.good.test.").as_deref() == Some("192.0.2.20")).then_some(())
    });

    // `meshdns zone reload` with a broken file: exit 1, the reason, old version still served.
    std::fs::write(
        d.path().join("good.test.zone"),
        "$ORIGIN good.test.\n@ SOA ns hostmaster 3 3600 600 86400 60\nwww CNAME a\nwww A 192.0.2.30\n",
    )
    .unwrap();
    let out = Command::new(BIN).args(["zone", "reload", "--http", &s.http.to_string()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("CNAME and other data") && text.contains("previous version still served"), "{text}");
    assert_eq!(a_of(&s, "www.good.test.").as_deref(), Some("192.0.2.20"));

    // Fixed: reload succeeds with exit 0.
    std::fs::write(d.path().join("good.test.zone"), good_with(4, "192.0.2.40")).unwrap();
    let out = Command::new(BIN).args(["zone", "reload", "--http", &s.http.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(a_of(&s, "www.good.test.").as_deref(), Some("192.0.2.40"));

    // A new file is a new zone; a removed file is a removed zone.
    std::fs::write(d.path().join("second.test.zone"), GOOD.replace("good.test.", "second.test.")).unwrap();
    std::fs::remove_file(d.path().join("good.test.zone")).unwrap();
    let out = Command::new(BIN).args(["zone", "reload", "--http", &s.http.to_string()]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(a_of(&s, "www.second.test.").as_deref(), Some("192.0.2.10"));
    assert_eq!(s.query("www.good.test.", RecordType::A).response_code(), ResponseCode::Refused);
}

#[test]
fn a_restart_reuses_snapshots_and_a_corrupt_snapshot_is_rebuilt_not_served() {
    let d = zone_dir(&[("good.test.zone", GOOD)]);
    let data = tempfile::tempdir().unwrap();
    let mut s = Server::builder().zone_dir(d.path()).data_dir(data.path()).start();
    assert!(s.log_text().contains("zone compiled"));
    assert!(s.stop().success());

    let s = Server::builder().zone_dir(d.path()).data_dir(data.path()).start();
    assert!(s.log_text().contains("zone loaded from its snapshot"), "{}", s.log_text());
    assert_eq!(a_of(&s, "www.good.test.").as_deref(), Some("192.0.2.10"));
    drop(s);

    // Flip one byte in the middle of every snapshot.
    for e in std::fs::read_dir(data.path().join("snapshots")).unwrap() {
        let p = e.unwrap().path();
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
    }
    let s = Server::builder().zone_dir(d.path()).data_dir(data.path()).start();
    let log = s.log_text();
    assert!(log.contains("checksum mismatch") && log.contains("zone compiled"), "{log}");
    assert_eq!(a_of(&s, "www.good.test.").as_deref(), Some("192.0.2.10"));
}

#[test]
fn include_with_origin_and_every_listed_record_type_load() {
    let d = zone_dir(&[
        (
            "inc.test.zone",
            "$ORIGIN inc.test.\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n$INCLUDE sub.inc sub.inc.test.\nafter A 192.0.2.3\n",
        ),
        ("sub.inc", "www A 192.0.2.2\n"),
    ]);
    let s = Server::with_zones(d.path());
    assert_eq!(a_of(&s, "www.sub.inc.test.").as_deref(), Some("192.0.2.2"));
    // The including file's origin is restored after the include.
    assert_eq!(a_of(&s, "after.inc.test.").as_deref(), Some("192.0.2.3"));
    drop(s);

    let d = zone_dir(&[]);
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/semantics.test.zone"),
        d.path().join("semantics.test.zone"),
    )
    .unwrap();
    let s = Server::with_zones(d.path());
    for (name, t) in [
        ("ptr", RecordType::PTR),
        ("srv", RecordType::SRV),
        ("naptr", RecordType::NAPTR),
        ("sshfp", RecordType::SSHFP),
        ("tlsa", RecordType::TLSA),
        ("smimea", RecordType::Unknown(53)),
        ("svc", RecordType::SVCB),
        ("https", RecordType::HTTPS),
        ("nsec", RecordType::NSEC),
        ("rrsig", RecordType::RRSIG),
        ("unknown", RecordType::Unknown(65534)),
        ("", RecordType::CAA),
        ("", RecordType::DNSKEY),
        ("", RecordType::NSEC3PARAM),
        ("subdel", RecordType::DS),
        ("dn", RecordType::Unknown(39)),
    ] {
        let qname = if name.is_empty() { "semantics.test.".to_string() } else { format!("{name}.semantics.test.") };
        let r = s.query(&qname, t);
        assert_eq!(r.answers().len(), 1, "{qname} {t}: {r:?}");
        assert_eq!(r.answers()[0].record_type(), t, "{qname}");
    }
}

#[test]
fn zone_check_reports_named_checkzone_style_errors() {
    let d = zone_dir(&[
        ("ok.test.zone", GOOD),
        ("nosoa.test.zone", "$ORIGIN nosoa.test.\nwww A 192.0.2.1\n"),
        (
            "cname.test.zone",
            "$ORIGIN cname.test.\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\nwww CNAME ns\nwww TXT \"x\"\n",
        ),
        (
            "glue.test.zone",
            "$ORIGIN glue.test.\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\nsub NS ns.sub\n",
        ),
        (
            "outside.test.zone",
            "$ORIGIN outside.test.\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\nelsewhere.example. A 192.0.2.9\n",
        ),
        (
            "syntax.test.zone",
            "$ORIGIN syntax.test.\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\nwww MX ten mail\n",
        ),
    ]);
    let check = |f: &str| {
        let out = Command::new(BIN).args(["zone", "check"]).arg(d.path().join(f)).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, text) = check("ok.test.zone");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ok: zone good.test. serial 1"), "{text}");
    let (code, text) = check("nosoa.test.zone");
    assert_eq!(code, Some(1));
    assert!(text.contains("no SOA record"), "{text}");
    let (code, text) = check("cname.test.zone");
    assert_eq!(code, Some(1));
    assert!(text.contains("cname.test.zone:6: error:") && text.contains("CNAME and other data"), "{text}");
    let (code, text) = check("glue.test.zone");
    assert_eq!(code, Some(1));
    assert!(text.contains("ns.sub.glue.test.") && text.contains("glue is required"), "{text}");
    let (code, text) = check("outside.test.zone");
    assert_eq!(code, Some(0), "out-of-zone data is a warning");
    assert!(text.contains("outside.test.zone:5: warning:") && text.contains("outside the zone"), "{text}");
    let (code, text) = check("syntax.test.zone");
    assert_eq!(code, Some(1));
    assert!(text.contains("syntax.test.zone:5:"), "{text}");
}

#[test]
fn config_check_rejects_unknown_keys_and_bad_values_clearly() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.toml");
    std::fs::write(&good, "[server]\nlisten = [\"127.0.0.1:5353\"]\n[log]\nformat = \"json\"\n").unwrap();
    let out = Command::new(BIN).args(["config", "check", "--config"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let typo = d.path().join("typo.toml");
    std::fs::write(&typo, "[server]\nlisen = [\"127.0.0.1:5353\"]\n").unwrap();
    let out = Command::new(BIN).args(["config", "check", "--config"]).arg(&typo).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("typo.toml") && err.contains("lisen"), "{err}");

    let out =
        Command::new(BIN).args(["config", "check"]).env("MESHDNS_SERVER_LISTEN", "not-an-address").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-an-address"));

    // serve refuses to start on a bad config, and says why.
    let out = Command::new(BIN).args(["serve", "--config"]).arg(&typo).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Unmounts on drop, also when the test fails.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_data_disk_still_serves_every_zone_from_memory() {
    // A 64 KiB tmpfs, filled up: snapshots cannot be written. Needs root
    // (CI runs as root).
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("full");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(&mnt).status().unwrap();
    assert!(mounted.success(), "mounting a tmpfs failed: this test needs root");
    let _guard = Tmpfs(mnt.clone());
    std::fs::create_dir(mnt.join("snapshots")).unwrap();
    let filler = mnt.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);

    let d = zone_dir(&[("good.test.zone", GOOD)]);
    let s = Server::builder().zone_dir(d.path()).data_dir(&mnt).start();
    assert_eq!(a_of(&s, "www.good.test.").as_deref(), Some("192.0.2.10"));
    let log = s.log_text();
    assert!(log.contains("serving the zone from memory") && log.contains("No space left on device"), "{log}");
    // The mesh starts too, though its generation could not be recorded.
    assert!(log.contains("cannot record this start's generation"), "{log}");
    assert!(!mnt.join("mesh-generation.tmp").exists());
    // Nothing half-written is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(mnt.join("snapshots")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_zone_file_broken_before_a_restart_serves_its_last_good_snapshot() {
    let d = zone_dir(&[("good.test.zone", GOOD)]);
    let data = tempfile::tempdir().unwrap();
    let mut s = Server::builder().zone_dir(d.path()).data_dir(data.path()).start();
    assert!(s.stop().success());
    std::fs::write(
        d.path().join("good.test.zone"),
        "$ORIGIN good.test.\n@ SOA ns hostmaster 2 3600 600 86400 60\nwww A not-an-address\n",
    )
    .unwrap();
    let s = Server::builder().zone_dir(d.path()).data_dir(data.path()).start();
    assert_eq!(a_of(&s, "www.good.test.").as_deref(), Some("192.0.2.10"), "{}", s.log_text());
    assert!(s.log_text().contains("kept_previous=true"), "{}", s.log_text());
}

#[test]
fn a_file_included_twice_is_not_a_loop_but_including_itself_is() {
    let d = zone_dir(&[
        (
            "twice.test.zone",
            "$ORIGIN twice.test.\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n$INCLUDE common.inc a.twice.test.\n$INCLUDE common.inc b.twice.test.\n",
        ),
        ("common.inc", "www A 192.0.2.7\n"),
        ("loop.test.zone", "$ORIGIN loop.test.\n@ SOA ns hostmaster 1 3600 600 86400 60\n$INCLUDE self.inc\n"),
        ("self.inc", "$INCLUDE self.inc\n"),
    ]);
    let s = Server::with_zones(d.path());
    assert_eq!(a_of(&s, "www.a.twice.test.").as_deref(), Some("192.0.2.7"));
    assert_eq!(a_of(&s, "www.b.twice.test.").as_deref(), Some("192.0.2.7"));
    assert!(s.log_text().contains("$INCLUDE loop"), "{}", s.log_text());
}

/// A node serving `tests/data/tricky.test.zone` (and the dir it lives in).
fn serve_tricky_zone() -> (tempfile::TempDir, Server) {
    let d = zone_dir(&[]);
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tricky.test.zone"),
        d.path().join("tricky.test.zone"),
    )
    .unwrap();
    let s = Server::with_zones(d.path());
    (d, s)
}

#[test]
fn ttl_units_and_types_without_a_scanner_text_form_load_and_answer() {
    let (_d, s) = serve_tricky_zone();
    // TTLs with units as BIND, NSD and Knot read them.
    for (name, ttl) in [("ttlunits", 93_784), ("week", 604_800), ("mixed", 7_260), ("classttl", 5_400), ("ns1", 3_600)]
    {
        let r = s.query(&format!("{name}.tricky.test."), RecordType::A);
        assert_eq!(r.answers().first().map(|a| a.ttl()), Some(ttl), "{name}: {r:?}");
    }
    let soa = s.query("tricky.test.", RecordType::SOA);
    match soa.answers().first().map(|a| a.data()) {
        Some(RData::SOA(soa)) => {
            assert_eq!((soa.refresh(), soa.retry(), soa.expire(), soa.minimum()), (3_600, 900, 604_800, 86_400))
        }
        other => panic!("no SOA: {other:?}"),
    }
    // Each answered with its own TYPE (read as MX or as generic data first).
    for (name, t) in [
        ("loc", 29),
        ("apl", 42),
        ("cert", 37),
        ("dhcid", 49),
        ("uri", 256),
        ("eui48", 108),
        ("eui64", 109),
        ("l32", 105),
        ("l64", 106),
        ("nid", 104),
        ("csync", 62),
        ("afsdb", 18),
        ("kx", 36),
        ("rt", 21),
        ("last", 1),
    ] {
        let t = RecordType::from(t);
        let r = s.query(&format!("{name}.tricky.test."), t);
        assert_eq!(r.answers().len(), 1, "{name} {t}: {r:?}");
        assert_eq!(r.answers()[0].record_type(), t, "{name}");
    }
    // An RDATA word that reads like a type stays data (not TXT "TLSA").
    let txt = s.query("smimea-txt.tricky.test.", RecordType::TXT);
    let text = txt.answers().first().map(|a| a.data().to_string()).unwrap_or_default();
    assert!(text.contains("smimea") && !text.contains("TLSA"), "{text}");
}

#[test]
fn a_bad_ttl_is_reported_at_its_line_even_after_rewritten_lines() {
    let d = zone_dir(&[(
        "badttl.test.zone",
        "$ORIGIN badttl.test.\n$TTL 1h\n@ SOA ns hostmaster 1 1h 15m 1w 1d\n@ NS ns\nns 1d A 192.0.2.1\nwww 1x A 192.0.2.2\n",
    )]);
    let out = Command::new(BIN).args(["zone", "check"]).arg(d.path().join("badttl.test.zone")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("badttl.test.zone:6: error: bad TTL \"1x\""), "{text}");
}

#[test]
fn svcb_additional_chains_into_cuts_and_the_cd_bit() {
    let (_d, s) = serve_tricky_zone();
    // RFC 9460 §4.1: the TargetName's addresses; §2.5.2: the owner's own for
    // a ServiceMode ".", nothing for an AliasMode ".".
    let additional = |name: &str, t: RecordType| {
        let mut v = lines(s.query(name, t).additionals());
        v.retain(|l| !l.contains(" opt "));
        v
    };
    assert_eq!(
        additional("svc.tricky.test.", RecordType::SVCB),
        ["web.tricky.test. 3600 a 192.0.2.80", "web.tricky.test. 3600 aaaa 2001:db8::80"]
    );
    assert_eq!(
        additional("https.tricky.test.", RecordType::HTTPS),
        ["https.tricky.test. 3600 a 192.0.2.81", "https.tricky.test. 3600 aaaa 2001:db8::81"]
    );
    assert!(additional("aliasdot.tricky.test.", RecordType::HTTPS).is_empty());
    assert!(additional("ext.tricky.test.", RecordType::HTTPS).is_empty(), "out-of-zone target");
    // RFC 1034 §4.3.2 3.b after 3.a: the CNAME, then the referral, AA kept.
    let r = s.query("65.tricky.test.", RecordType::PTR);
    assert!(r.authoritative());
    assert_eq!(lines(r.answers()), ["65.tricky.test. 3600 cname 65.64\\/26.tricky.test."]);
    assert_eq!(
        lines(r.name_servers()),
        ["64\\/26.tricky.test. 3600 ns ns1.rev.tricky.test.", "64\\/26.tricky.test. 3600 ns ns2.outside.example."]
    );
    assert!(lines(r.additionals()).contains(&"ns1.rev.tricky.test. 3600 a 192.0.2.66".to_owned()));
    // RFC 4035 §3.1.6: CD cleared in authoritative answers (RD still copied).
    let mut q = query("web.tricky.test.", RecordType::A);
    q.set_checking_disabled(true);
    q.set_recursion_desired(true);
    let r = s.udp(&q);
    assert_eq!(r.answers().len(), 1);
    assert!(!r.checking_disabled(), "CD must be cleared: {r:?}");
    assert!(r.recursion_desired());
}

#[test]
fn a_cname_into_a_child_zone_served_here_is_answered_from_the_child() {
    // RFC 1034 §4.3.2 step 3.a goes back to step 1, which picks the closest
    // served zone: the child, not the parent's referral to it.
    let d = zone_dir(&[
        (
            "parent.test.zone",
            "$ORIGIN parent.test.\n@ SOA ns h 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n\
             sub NS ns.sub\nns.sub A 192.0.2.53\nwww CNAME host.sub\n",
        ),
        (
            "sub.parent.test.zone",
            "$ORIGIN sub.parent.test.\n@ SOA ns h 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\nhost A 192.0.2.99\n",
        ),
    ]);
    let s = Server::with_zones(d.path());
    let r = s.query("www.parent.test.", RecordType::A);
    assert!(r.authoritative(), "{r:?}");
    assert_eq!(
        lines(r.answers()),
        ["host.sub.parent.test. 3600 a 192.0.2.99", "www.parent.test. 3600 cname host.sub.parent.test."]
    );
    assert!(r.name_servers().iter().all(|n| n.record_type() != RecordType::NS), "no referral: {r:?}");
}
