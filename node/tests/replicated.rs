//! Replicated zones on one real node: writes through the admin API are
//! answered over DNS, survive restarts and SIGKILL, are refused when they
//! would break the zone or when the disk is full, and imports write only
//! what differs.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, wait_for};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

fn a_records(s: &Server, name: &str) -> Vec<String> {
    let r = s.query(name, RecordType::A);
    let mut v: Vec<String> = r
        .answers()
        .iter()
        .filter_map(|rr| if let RData::A(a) = rr.data() { Some(a.to_string()) } else { None })
        .collect();
    v.sort();
    v
}

fn serial(s: &Server, zone: &str) -> u32 {
    let r = s.query(zone, RecordType::SOA);
    r.answers().iter().find_map(|rr| if let RData::SOA(soa) = rr.data() { Some(soa.serial()) } else { None }).unwrap()
}

fn ok(r: (bool, String, String)) -> String {
    assert!(r.0, "command failed: {}", r.2);
    r.1
}

fn populated(s: &Server) {
    ok(s.zone_cli(&["create", "example.net"]));
    ok(s.zone_cli(&["set", "example.net", "ns1", "A", "3600", "192.0.2.53"]));
    ok(s.zone_cli(&["set", "example.net", "@", "NS", "3600", "ns1"]));
    ok(s.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.7", "192.0.2.8"]));
}

#[test]
fn writes_are_answered_over_dns_and_serials_grow() {
    let s = Server::builder().start();
    populated(&s);
    assert_eq!(a_records(&s, "www.example.net."), vec!["192.0.2.7", "192.0.2.8"]);
    let before = serial(&s, "example.net.");
    assert_eq!(before, 4, "one write per change: create (SOA), ns1, NS, www");
    ok(s.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.9"]));
    assert_eq!(a_records(&s, "www.example.net."), vec!["192.0.2.9"], "set replaces the RRset");
    assert_eq!(serial(&s, "example.net."), before + 1);
    ok(s.zone_cli(&["remove", "example.net", "www", "A"]));
    assert_eq!(s.query("www.example.net.", RecordType::A).response_code(), ResponseCode::NXDomain);
    let list = ok(s.zone_cli(&["list", "--output", "json"]));
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v["zones"][0]["name"], "example.net.");
    assert_eq!(v["zones"][0]["serial"], 6);
    // Export is a master file that `zone check` accepts.
    let text = ok(s.zone_cli(&["export", "example.net"]));
    assert!(text.contains("example.net. 3600 IN NS ns1.example.net."), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("example.net.zone");
    std::fs::write(&f, &text).unwrap();
    let check = Command::new(common::BIN).args(["zone", "check"]).arg(&f).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    // Deleting the zone stops it being served.
    ok(s.zone_cli(&["delete", "example.net"]));
    assert_eq!(s.query("ns1.example.net.", RecordType::A).response_code(), ResponseCode::Refused);
}

/// RFC 1995: an IXFR from a serial the node served gets only the change;
/// from the current serial, the SOA alone; from a serial it never served,
/// the whole zone.
#[test]
fn rfc1995_ixfr_carries_only_what_changed_since_the_clients_serial() {
    let s = Server::builder().env("MESHDNS_TRANSFER_ALLOW", "127.0.0.1/32").start();
    populated(&s);
    // A secondary holds a version it transferred, and transfers carry
    // compiled versions: start from one.
    wait_for("the set-up compiled", Duration::from_secs(30), || {
        (gauge(&s, "meshdns_replication_overlay_rrsets") == 0).then_some(())
    });
    let before = serial(&s, "example.net.");
    // An MX (compiled at once: not a type the overlay takes), then a change
    // answered from the overlay (compiled when the transfer asks for it).
    ok(s.zone_cli(&["set", "example.net", "mail", "MX", "300", "10 www"]));
    ok(s.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.8", "192.0.2.9"]));
    let now = serial(&s, "example.net.");
    assert_eq!(now, before + 2);
    let text = |records: &[hickory_proto::rr::Record]| -> Vec<String> {
        records.iter().map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data())).collect()
    };
    let got = text(&common::ixfr(s.dns, "example.net.", before));
    let soa = |n: u32| format!("example.net. SOA ns.example.net. hostmaster.example.net. {n} 3600 600 86400 300");
    assert_eq!(
        got,
        vec![
            soa(now),
            soa(before),
            soa(before + 1),
            "mail.example.net. MX 10 www.example.net.".into(),
            soa(before + 1),
            "www.example.net. A 192.0.2.7".into(),
            soa(now),
            "www.example.net. A 192.0.2.9".into(),
            soa(now),
        ],
        "two steps: one record added, one swapped"
    );
    assert_eq!(text(&common::ixfr(s.dns, "example.net.", now)), vec![soa(now)], "a current client gets the SOA alone");
    // RFC 1982: 1000 behind, a serial this node never served.
    let full = common::ixfr(s.dns, "example.net.", now.wrapping_sub(1000));
    assert_eq!(full.len(), 7, "a serial never served gets the whole zone (SOA, 5 records, SOA): {:?}", text(&full));
    // A deleted and re-created zone starts a new history: no increment
    // may span the two.
    ok(s.zone_cli(&["delete", "example.net"]));
    populated(&s);
    let recreated = serial(&s, "example.net.");
    let got = common::ixfr(s.dns, "example.net.", before);
    assert!(
        got.len() >= 2 && got[1].record_type() != RecordType::SOA,
        "whole zone after a re-creation: {:?}",
        text(&got)
    );
    assert_eq!(common::ixfr(s.dns, "example.net.", recreated).len(), 1);
    let (_, m) = s.http_get("/metrics").unwrap();
    for line in [
        "meshdns_ixfr_responses_total{kind=\"current\"} 2",
        "meshdns_ixfr_responses_total{kind=\"incremental\"} 1",
        "meshdns_ixfr_responses_total{kind=\"full\"} 2",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
}

fn gauge(s: &Server, name: &str) -> u64 {
    let (_, m) = s.http_get("/metrics").unwrap();
    m.lines().find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.parse().ok())).unwrap_or(0)
}

/// Everything a response says, sorted per section: equal for equal answers.
fn sections(r: &hickory_proto::op::Message) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?}",
        r.response_code(),
        r.authoritative(),
        common::lines(r.answers()),
        common::lines(r.name_servers()),
        common::lines(r.additionals())
    )
}

/// A change to an existing name, or a new leaf name, is answered from the
/// zone's overlay at once, before the recompile that follows (held back 3 s
/// here), and every answer is then the one the recompiled zone gives: the
/// RRset, the serial in SOA answers and negative answers, additional
/// addresses, NODATA and NXDOMAIN. A deletion is compiled before it is
/// acknowledged.
#[test]
fn changes_to_existing_names_are_answered_from_the_overlay_until_the_recompile() {
    let s = Server::builder().env("MESHDNS_REPLICATION_OVERLAY_COMPACT_DELAY_MS", "3000").start();
    populated(&s);
    ok(s.zone_cli(&["set", "example.net", "mail", "MX", "300", "10 www", "20 new"]));
    let overlay = || gauge(&s, "meshdns_replication_overlay_rrsets");
    wait_for("the recompile of the set-up", Duration::from_secs(30), || (overlay() == 0).then_some(()));
    let before = serial(&s, "example.net.");
    ok(s.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.50"]));
    // No waiting: the acknowledged change is answered.
    assert_eq!(a_records(&s, "www.example.net."), vec!["192.0.2.50"]);
    assert_eq!(overlay(), 2, "the RRset and the zone's SOA");
    assert_eq!(serial(&s, "example.net."), before + 1);
    // A new leaf, the MX's second target.
    ok(s.zone_cli(&["set", "example.net", "new", "A", "300", "192.0.2.51"]));
    assert_eq!(a_records(&s, "new.example.net."), vec!["192.0.2.51"]);
    assert_eq!(overlay(), 3);
    let questions = [
        ("www.example.net.", RecordType::A),
        ("www.example.net.", RecordType::AAAA),
        ("www.example.net.", RecordType::ANY),
        ("new.example.net.", RecordType::A),
        ("new.example.net.", RecordType::TXT),
        ("new.example.net.", RecordType::ANY),
        ("below.new.example.net.", RecordType::A),
        ("example.net.", RecordType::SOA),
        ("nope.example.net.", RecordType::A),
        ("mail.example.net.", RecordType::MX),
    ];
    let answers = |s: &Server| -> Vec<String> { questions.iter().map(|(n, t)| sections(&s.query(n, *t))).collect() };
    let from_overlay = answers(&s);
    assert!(from_overlay[4].contains("NoError") && !from_overlay[4].contains("192.0.2"), "NODATA: {}", from_overlay[4]);
    assert!(from_overlay[6].contains("NXDomain"), "below the new leaf: {}", from_overlay[6]);
    assert!(from_overlay[8].contains(&format!("hostmaster.example.net. {}", before + 2)), "{}", from_overlay[8]);
    assert!(
        from_overlay[9].contains("192.0.2.50") && from_overlay[9].contains("192.0.2.51"),
        "the MX targets' new addresses: {}",
        from_overlay[9]
    );
    wait_for("the recompile", Duration::from_secs(30), || (overlay() == 0).then_some(()));
    assert_eq!(answers(&s), from_overlay, "the recompiled zone answers as the overlay did");
    // A deletion is compiled before the acknowledgement.
    ok(s.zone_cli(&["remove", "example.net", "new", "A"]));
    assert_eq!(s.query("new.example.net.", RecordType::A).response_code(), ResponseCode::NXDomain);
    assert_eq!(overlay(), 0);
    // IXFR (built at the recompile) carries the overlaid changes too.
    let got = common::ixfr(s.dns, "example.net.", before);
    assert!(got.iter().any(|r| r.to_string().contains("192.0.2.50")), "{got:?}");
}

/// Tombstone collection keeps the record of a zone's deletion: a zone
/// created again after a collection pass must not bring back what was in
/// it before (a review found the catalog tombstone being collected).
#[test]
fn a_zone_created_again_after_tombstones_are_collected_starts_empty() {
    let s = Server::builder().env("MESHDNS_REPLICATION_TOMBSTONE_HORIZON_S", "1").start();
    populated(&s);
    ok(s.zone_cli(&["set", "example.net", "gone", "A", "300", "192.0.2.99"]));
    ok(s.zone_cli(&["remove", "example.net", "gone", "A"]));
    ok(s.zone_cli(&["delete", "example.net"]));
    // A collection pass has run after the deletion once the record's
    // tombstone is gone.
    wait_for("a collection pass", Duration::from_secs(30), || {
        s.log_text().contains("collected tombstones older than the horizon").then_some(())
    });
    ok(s.zone_cli(&["create", "example.net"]));
    assert_eq!(s.query("www.example.net.", RecordType::A).response_code(), ResponseCode::NXDomain);
    let list = ok(s.zone_cli(&["list", "--output", "json"]));
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v["zones"][0]["rrsets"], 1, "only the new SOA: {list}");
}

#[test]
fn bad_writes_are_refused_with_a_reason_and_change_nothing() {
    let s = Server::builder().start();
    populated(&s);
    let before = serial(&s, "example.net.");
    let (okay, _, err) = s.zone_cli(&["set", "example.net", "www", "A", "300", "not-an-address"]);
    assert!(!okay && err.contains("expected IPv4 address"), "{err}");
    let (okay, _, err) = s.zone_cli(&["set", "example.net", "@", "NS", "3600", "ns2"]);
    assert!(!okay && err.contains("would not be servable") && err.contains("ns2.example.net."), "{err}");
    let (okay, _, err) = s.zone_cli(&["set", "nowhere.org", "www", "A", "1", "192.0.2.1"]);
    assert!(!okay && err.contains("zone create nowhere.org"), "{err}");
    let (okay, _, err) = s.zone_cli(&["set", "example.net", "www.other.org.", "A", "1", "192.0.2.1"]);
    assert!(!okay && err.contains("is not in zone"), "{err}");
    let (okay, _, err) = s.zone_cli(&["create", "example.net"]);
    assert!(!okay && err.contains("exists already"), "{err}");
    assert_eq!(serial(&s, "example.net."), before, "nothing was written");
    assert_eq!(a_records(&s, "www.example.net."), vec!["192.0.2.7", "192.0.2.8"]);
}

#[test]
fn acknowledged_writes_survive_a_restart_and_a_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let mut s = Server::builder().data_dir(data.path()).start();
    populated(&s);
    assert!(s.stop().success());
    let mut s = Server::builder().data_dir(data.path()).start();
    assert_eq!(a_records(&s, "www.example.net."), vec!["192.0.2.7", "192.0.2.8"]);
    assert_eq!(serial(&s, "example.net."), 4);
    // SIGKILL straight after the acknowledgement: the write was on disk.
    ok(s.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.99"]));
    s.signal(9);
    let _ = s.child.take().map(|mut c| c.wait());
    let s = Server::builder().data_dir(data.path()).start();
    assert_eq!(a_records(&s, "www.example.net."), vec!["192.0.2.99"]);
    assert_eq!(serial(&s, "example.net."), 5);
}

#[test]
fn import_writes_only_what_differs() {
    let s = Server::builder().start();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("example.org.zone");
    let zone = "$ORIGIN example.org.\n@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ 3600 IN NS ns1\nns1 3600 IN A 192.0.2.1\nwww 300 IN A 192.0.2.2\nmail 300 IN A 192.0.2.3\n";
    std::fs::write(&f, zone).unwrap();
    let out = ok(s.zone_cli(&["import", f.to_str().unwrap()]));
    assert!(out.contains("example.org"), "{out}");
    assert_eq!(a_records(&s, "www.example.org."), vec!["192.0.2.2"]);
    // `zone diff` shows nothing to do, and exits 0.
    let (same, out, err) = s.zone_cli(&["diff", f.to_str().unwrap()]);
    assert!(same && out.is_empty(), "{out}{err}");
    let again = ok(s.zone_cli(&["import", f.to_str().unwrap()]));
    assert!(again.contains("0 RRset(s) written"), "{again}");
    // One record changed, one removed: two writes.
    std::fs::write(&f, zone.replace("192.0.2.2", "192.0.2.22").replace("mail 300 IN A 192.0.2.3\n", "")).unwrap();
    // `zone diff` lists the two changes and exits 1; nothing is written.
    let (same, out, err) = s.zone_cli(&["diff", f.to_str().unwrap()]);
    assert!(!same && err.contains("2 RRset(s) differ"), "{err}");
    assert!(out.contains("+ www.example.org. 300 IN A 192.0.2.22") && out.contains("- mail.example.org. A"), "{out}");
    assert_eq!(a_records(&s, "www.example.org."), vec!["192.0.2.2"]);
    let changed = ok(s.zone_cli(&["import", f.to_str().unwrap()]));
    assert!(changed.contains("2 RRset(s) written"), "{changed}");
    assert_eq!(a_records(&s, "www.example.org."), vec!["192.0.2.22"]);
    assert_eq!(s.query("mail.example.org.", RecordType::A).response_code(), ResponseCode::NXDomain);
}

struct Tmpfs(std::path::PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_writes_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("full");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"]).arg(&mnt).status().unwrap();
    assert!(mounted.success(), "mounting a tmpfs failed: this test needs root");
    let _guard = Tmpfs(mnt.clone());
    let s = Server::builder().data_dir(&mnt).start();
    populated(&s);
    // Fill the disk.
    let mut f = std::fs::File::create(mnt.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    // 200 distinct TXT records of 250 characters: ~50 KB to journal.
    let big: Vec<String> = (0..200).map(|i| format!("\"{i:0>250}\"")).collect();
    let mut args = vec!["set", "example.net", "big", "TXT", "300"];
    args.extend(big.iter().map(String::as_str));
    let (okay, _, err) = s.zone_cli(&args);
    assert!(!okay, "a write on a full disk must fail");
    assert!(err.contains("not stored") && err.contains("No space left on device"), "{err}");
    // Reads carry on, and the refused write left nothing behind.
    assert_eq!(a_records(&s, "www.example.net."), vec!["192.0.2.7", "192.0.2.8"]);
    assert_eq!(s.query("big.example.net.", RecordType::TXT).response_code(), ResponseCode::NXDomain);
    std::fs::remove_file(mnt.join("filler")).unwrap();
    wait_for("a write to succeed once there is room", Duration::from_secs(5), || {
        s.zone_cli(&["set", "example.net", "after", "A", "300", "192.0.2.100"]).0.then_some(())
    });
    assert_eq!(serial(&s, "example.net."), 5);
}

#[test]
fn the_journal_is_compacted_and_recovery_reads_the_snapshot_then_the_log() {
    let data = tempfile::tempdir().unwrap();
    let start =
        || Server::builder().data_dir(data.path()).env("MESHDNS_REPLICATION_COMPACT_AFTER_BYTES", "4096").start();
    let mut s = start();
    populated(&s);
    for i in 0..40 {
        ok(s.zone_cli(&["set", "example.net", &format!("h{i}"), "A", "300", &format!("192.0.2.{i}")]));
    }
    let dir = data.path().join("replication");
    assert!(dir.join("snapshot.bin").exists(), "a snapshot was written");
    let log = std::fs::metadata(dir.join("journal.log")).unwrap().len();
    assert!(log < 4096 + 1024, "the log was emptied by the compaction ({log} bytes)");
    assert!(s.log_text().contains("compacted the replication journal"));
    // Writes after the last compaction live in the log only; a SIGKILL
    // then a restart reads both.
    ok(s.zone_cli(&["set", "example.net", "last", "A", "300", "192.0.2.200"]));
    s.signal(9);
    let _ = s.child.take().map(|mut c| c.wait());
    let s = start();
    assert_eq!(a_records(&s, "h0.example.net."), vec!["192.0.2.0"]);
    assert_eq!(a_records(&s, "h39.example.net."), vec!["192.0.2.39"]);
    assert_eq!(a_records(&s, "last.example.net."), vec!["192.0.2.200"]);
    assert_eq!(serial(&s, "example.net."), 45);
}

/// SIGKILL at arbitrary moments while writes stream in and the journal is
/// compacted every few writes (so kills land in appends and in snapshot
/// writes): after each restart, every acknowledged write is served.
#[test]
fn sigkill_during_writes_and_compactions_loses_no_acknowledged_write() {
    let data = tempfile::tempdir().unwrap();
    let start =
        || Server::builder().data_dir(data.path()).env("MESHDNS_REPLICATION_COMPACT_AFTER_BYTES", "1024").start();
    let mut s = start();
    ok(s.zone_cli(&["create", "example.net"]));
    let mut acknowledged: Vec<usize> = Vec::new();
    let mut next = 0;
    for round in 0..3 {
        // Writes from another thread; the kill comes while they run.
        let grpc = s.grpc.to_string();
        let from = next;
        let writer = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for i in from..from + 400 {
                let out = Command::new(common::BIN)
                    .args(["zone", "set", "example.net", &format!("h{i}"), "A", "300", "192.0.2.1"])
                    .args(["--endpoint", &grpc, "--timeout", "2"])
                    .output()
                    .unwrap();
                if !out.status.success() {
                    break; // the node is gone
                }
                acked.push(i);
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(700 + 300 * round));
        s.signal(9);
        let _ = s.child.take().map(|mut c| c.wait());
        let acked = writer.join().unwrap();
        assert!(!acked.is_empty(), "round {round}: some writes were acknowledged before the kill");
        next = acked.last().map_or(next, |l| l + 1) + 1;
        acknowledged.extend(acked);
        s = start();
        for i in &acknowledged {
            assert_eq!(
                a_records(&s, &format!("h{i}.example.net.")),
                vec!["192.0.2.1"],
                "round {round}: h{i} was acknowledged"
            );
        }
        assert!(data.path().join("replication/snapshot.bin").exists(), "compactions happened between the writes");
    }
    eprintln!("{} acknowledged writes survived three SIGKILLs", acknowledged.len());
}

const XFR_KEY: &str = "hmac-sha256:xfr-key:eGZyeGZyeGZyeGZyeGZyeGZyeGZyeGZyeGZyeGZyeGY=";

/// `dig -y KEY` (or unsigned) AXFR/IXFR of `zone`: (output, records dig
/// printed from the answer section, whether dig reported a failure).
fn dig_transfer(s: &Server, key: Option<&str>, zone: &str, kind: &str) -> (String, usize, bool) {
    let mut cmd = Command::new("dig");
    if let Some(k) = key {
        cmd.args(["-y", k]);
    }
    let out = cmd
        .args(["@127.0.0.1", "-p", &s.dns.port().to_string(), zone, kind, "+tries=1", "+time=5"])
        .output()
        .expect("dig is needed (scripts/test.sh installs bind9-dnsutils)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let records = text.lines().filter(|l| !l.starts_with(';') && l.contains("\tIN\t") && !l.contains("TSIG")).count();
    let failed = text.contains("failed") || text.contains("Couldn't verify") || text.contains("BAD");
    (text, records, failed)
}

/// TSIG-authenticated transfers with a key-based ACL, as NSD's
/// `provide-xfr: ADDR KEY` and Knot's ACL `key`: with `transfer.keys`
/// set, an unsigned request, a wrong secret and a key not in the list are
/// refused (NOTAUTH, as Knot answers a request no ACL rule admits); the
/// right key gets the zone, every message signed, which dig verifies.
#[test]
fn transfers_need_a_key_of_transfer_keys_and_answers_are_signed() {
    let s = Server::builder().env("MESHDNS_TRANSFER_KEYS", XFR_KEY).start();
    populated(&s);
    // Big enough for several messages: each is signed (RFC 8945 §5.3.1).
    let big: Vec<String> = (0..400).map(|i| format!("\"{i:04} {}\"", "x".repeat(90))).collect();
    let mut args = vec!["set", "example.net", "big", "TXT", "300"];
    args.extend(big.iter().map(String::as_str));
    ok(s.zone_cli(&args));
    let (text, records, failed) = dig_transfer(&s, Some(XFR_KEY), "example.net", "AXFR");
    assert!(!failed && records >= 405, "the right key gets the zone, signature verified:\n{text}");
    let messages = text.lines().find(|l| l.starts_with(";; XFR size:")).unwrap_or_default();
    assert!(!messages.contains(" 1 messages"), "several messages: {messages}");
    assert!(text.contains("TSIG"), "the answer carries TSIG:\n{text}");
    let (text, records, failed) = dig_transfer(&s, Some(XFR_KEY), "example.net", "IXFR=1");
    assert!(!failed && records >= 5, "IXFR too:\n{text}");
    for (what, key) in [
        ("unsigned", None),
        ("wrong secret", Some("hmac-sha256:xfr-key:d3Jvbmd3cm9uZ3dyb25nd3Jvbmd3cm9uZ3dyb25nMTI=")),
        ("key not in transfer.keys", Some("hmac-sha256:other-key:eGZyeGZyeGZyeGZyeGZyeGZyeGZyeGZyeGZyeGZyeGY=")),
    ] {
        let (text, records, _) = dig_transfer(&s, key, "example.net", "AXFR");
        assert_eq!(records, 0, "{what}: nothing of the zone:\n{text}");
        // RFC 8945 §5.2: the TSIG error says why.
        let want = match what {
            "wrong secret" => Some("BADSIG"),
            "key not in transfer.keys" => Some("BADKEY"),
            _ => None,
        };
        if let Some(want) = want {
            assert!(text.contains(want), "{what}: {want}:\n{text}");
        }
    }
    // The refusal of an unsigned request is NOTAUTH.
    let r = s.tcp(&common::plain_query("example.net.", RecordType::AXFR));
    assert_eq!(r.response_code(), ResponseCode::NotAuth);
    assert!(r.answers().is_empty());
    // Without transfer.keys, unsigned transfers from transfer.allow work as before.
    let open = Server::builder().start();
    populated(&open);
    let (text, records, failed) = dig_transfer(&open, None, "example.net", "AXFR");
    assert!(!failed && records >= 5, "{text}");
}

/// An AXFR of example.net over TCP from source address `src`; the RCODE
/// of its first message.
fn axfr_from(s: &Server, src: &str) -> ResponseCode {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: std::net::SocketAddr = format!("{src}:0").parse().unwrap();
    sock.bind(&from.into()).unwrap();
    sock.connect(&s.dns.into()).unwrap();
    let mut stream: std::net::TcpStream = sock.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    common::write_tcp(&mut stream, &common::plain_query("example.net.", RecordType::AXFR).to_vec().unwrap());
    hickory_proto::op::Message::from_vec(&common::read_tcp(&mut stream).unwrap()).unwrap().response_code()
}

/// The access check comes before any other work: a refused client does
/// not make the node recompile a zone with changes waiting in its
/// overlay (it used to: the recompile ran first). An allowed client does.
#[test]
fn a_refused_transfer_does_no_work() {
    let s = Server::builder()
        .env("MESHDNS_TRANSFER_ALLOW", "127.0.0.2/32")
        .env("MESHDNS_REPLICATION_OVERLAY_COMPACT_DELAY_MS", "600000")
        .start();
    populated(&s);
    // An allowed transfer compiles what waits: a known start.
    assert_eq!(axfr_from(&s, "127.0.0.2"), ResponseCode::NoError);
    assert_eq!(gauge(&s, "meshdns_replication_overlay_rrsets"), 0);
    ok(s.zone_cli(&["set", "example.net", "www", "A", "300", "192.0.2.99"]));
    let waiting = gauge(&s, "meshdns_replication_overlay_rrsets");
    assert!(waiting > 0, "the change waits in the overlay");
    assert_eq!(axfr_from(&s, "127.0.0.1"), ResponseCode::Refused);
    assert_eq!(gauge(&s, "meshdns_replication_overlay_rrsets"), waiting, "no recompile for a refused client");
    assert_eq!(axfr_from(&s, "127.0.0.2"), ResponseCode::NoError);
    assert_eq!(gauge(&s, "meshdns_replication_overlay_rrsets"), 0, "an allowed client's transfer compiles it");
}
