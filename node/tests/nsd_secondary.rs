//! Interoperability: a real NSD runs as a secondary of meshdns, pulls the
//! zone by AXFR, serves the same records, and follows a change.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::nsd::*;
use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

fn sorted(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    lines(records)
}

#[test]
fn nsd_secondary_transfers_the_zone_from_meshdns_and_follows_a_change() {
    let zones = zone_dir(&[]);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/semantics.test.zone");
    std::fs::copy(&src, zones.path().join("semantics.test.zone")).unwrap();
    let ours = Server::with_zones(zones.path());

    let sec_dir = tempfile::tempdir().unwrap();
    let sec_file = sec_dir.path().join("semantics.test.secondary");
    let extra =
        format!("  request-xfr: AXFR {}@{} NOKEY\n  allow-notify: 127.0.0.1 NOKEY\n", ours.dns.ip(), ours.dns.port());
    // `start_nsd_with` waits until NSD answers the SOA, i.e. until the transfer is done.
    let nsd = start_nsd_with(&[("semantics.test", &sec_file)], &extra, "semantics.test.");

    let mine = sorted(&axfr(ours.dns, "semantics.test."));
    let theirs = sorted(&axfr(nsd.addr, "semantics.test."));
    assert_eq!(mine.len(), 59);
    assert_eq!(mine, theirs, "NSD's copy differs from meshdns's zone");
    // NSD answers from the transferred copy like meshdns does.
    for name in ["web.semantics.test.", "host3.semantics.test.", "x.dn.semantics.test."] {
        let q = query(name, RecordType::A).to_vec().unwrap();
        let a = Message::from_vec(&udp_exchange(nsd.addr, &q).unwrap()).unwrap();
        let b = ours.udp(&Message::from_vec(&q).unwrap());
        assert_eq!(lines(a.answers()), lines(b.answers()), "{name}");
    }

    // A change on meshdns: new serial, new record; NSD pulls it.
    let text = std::fs::read_to_string(&src).unwrap().replace("2026112501", "2026112502") + "added IN A 192.0.2.123\n";
    std::fs::write(zones.path().join("semantics.test.zone"), text).unwrap();
    let out = Command::new(BIN).args(["zone", "reload", "--http", &ours.http.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let said = nsd.control(&["force_transfer", "semantics.test"]);
    assert!(said.contains("ok"), "nsd-control: {said}");
    wait_for("NSD to serve the new record", Duration::from_secs(30), || {
        let q = query("added.semantics.test.", RecordType::A).to_vec().unwrap();
        let r = Message::from_vec(&udp_exchange(nsd.addr, &q)?).ok()?;
        (r.answers().len() == 1).then_some(())
    });
    assert_eq!(sorted(&axfr(ours.dns, "semantics.test.")), sorted(&axfr(nsd.addr, "semantics.test.")));
}

/// NSD as a secondary of a replicated zone: meshdns sends NOTIFY on every
/// change, NSD asks IXFR, meshdns answers with only the change (built from
/// the replicated deltas), and NSD serves each new value; no forced
/// transfer. Its copy stays identical to meshdns's through the sequence.
#[test]
fn nsd_follows_a_replicated_zone_through_notify() {
    let nsd_port = free_port();
    let ours = Server::builder().env("MESHDNS_TRANSFER_NOTIFY", &format!("127.0.0.1:{nsd_port}")).start();
    for args in [
        vec!["create", "repl.test"],
        vec!["set", "repl.test", "ns1", "A", "3600", "192.0.2.53"],
        vec!["set", "repl.test", "@", "NS", "3600", "ns1"],
        vec!["set", "repl.test", "www", "A", "300", "192.0.2.1"],
    ] {
        let (ok, _, err) = ours.zone_cli(&args);
        assert!(ok, "{err}");
    }
    let sec_dir = tempfile::tempdir().unwrap();
    let sec_file = sec_dir.path().join("repl.test.secondary");
    let extra =
        format!("  request-xfr: {}@{} NOKEY\n  allow-notify: 127.0.0.1 NOKEY\n", ours.dns.ip(), ours.dns.port());
    let nsd = start_nsd_on(nsd_port, &[("repl.test", &sec_file)], &extra, "repl.test.");
    let a_at_nsd = |name: &str| -> Option<String> {
        let q = query(name, RecordType::A).to_vec().unwrap();
        let r = Message::from_vec(&udp_exchange(nsd.addr, &q)?).ok()?;
        r.answers().iter().find_map(|rr| rr.data().as_a().map(|a| a.to_string()))
    };
    for i in 2..=6 {
        let value = format!("192.0.2.{i}");
        let (ok, _, err) = ours.zone_cli(&["set", "repl.test", "www", "A", "300", &value]);
        assert!(ok, "{err}");
        // Additions and removals of whole RRsets too, not only swaps.
        let (ok, _, err) = if i % 2 == 0 {
            ours.zone_cli(&["set", "repl.test", &format!("h{i}"), "TXT", "60", &format!("step-{i}")])
        } else {
            ours.zone_cli(&["remove", "repl.test", &format!("h{}", i - 1), "TXT"])
        };
        assert!(ok, "{err}");
        wait_for(&format!("NSD to serve www = {value}"), Duration::from_secs(20), || {
            (a_at_nsd("www.repl.test.").as_deref() == Some(value.as_str())).then_some(())
        });
        wait_for("NSD's copy to equal meshdns's", Duration::from_secs(20), || {
            (sorted(&axfr(ours.dns, "repl.test.")) == sorted(&axfr(nsd.addr, "repl.test."))).then_some(())
        });
    }
    let (_, m) = ours.http_get("/metrics").unwrap();
    let incremental: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("meshdns_ixfr_responses_total{kind=\"incremental\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(incremental >= 5, "NSD followed by incremental transfers, not whole zones:\n{m}");
}

/// NSD as a secondary that transfers with TSIG (`request-xfr: ADDR KEY`)
/// from a meshdns that requires it (`transfer.keys`): NSD verifies the
/// signed transfer and serves the zone.
#[test]
fn nsd_secondary_transfers_with_tsig() {
    const SECRET: &str = "eGZyeGZyeGZyeGZyeGZyeGZyeGZyeGZyeGZyeGZyeGY=";
    let zones = zone_dir(&[]);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/semantics.test.zone");
    std::fs::copy(&src, zones.path().join("semantics.test.zone")).unwrap();
    let ours = Server::builder()
        .zone_dir(zones.path())
        .env("MESHDNS_TRANSFER_KEYS", &format!("hmac-sha256:xfr-key:{SECRET}"))
        .start();
    let sec_dir = tempfile::tempdir().unwrap();
    let sec_file = sec_dir.path().join("semantics.test.secondary");
    let extra = format!(
        "  request-xfr: AXFR {}@{} xfr-key\nkey:\n  name: \"xfr-key\"\n  algorithm: hmac-sha256\n  secret: \"{SECRET}\"\n",
        ours.dns.ip(),
        ours.dns.port()
    );
    let nsd = start_nsd_with(&[("semantics.test", &sec_file)], &extra, "semantics.test.");
    let theirs = sorted(&axfr(nsd.addr, "semantics.test."));
    assert_eq!(theirs.len(), 59, "NSD transferred the zone with TSIG");
    assert!(ours.log_text().contains("signed=true"), "meshdns signed the transfer");
}
