//! The recursive resolver against the lab internet (tests/common/lab.rs):
//! first that the lab is what the tests think it is (Unbound, a
//! validating resolver everyone trusts, gets every expected outcome), then
//! that meshdns answers every lab question as Unbound does.
//!
//! Needs root (the lab's servers listen on 127.53.N.x port 53): run as
//! root, or LAB_SKIP_OK=1 to skip. `cargo test -p meshdns --test resolver_lab`.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::lab::{self, Flags, Lab, Outcome, Question};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

/// Every lab question gets its expected outcome from Unbound: with DO=1
/// (rcode, AD, data), and for bogus ones with CD=1 (the data, no AD).
/// Also checks the lab leaves no process behind once dropped.
#[test]
fn lab_is_what_the_tests_think() {
    let Some(lab) = Lab::start() else { return };
    let mut failures = lab::check_structure(&lab);
    for q in lab::questions() {
        let variants: &[bool] = if q.expect == Outcome::Bogus { &[false, true] } else { &[false] };
        for &cd in variants {
            let flags = Flags { dnssec_ok: true, cd, ..Flags::default() };
            let t = std::time::Instant::now();
            let answer = lab::ask(lab.unbound_addr(), &q, flags);
            if t.elapsed() > std::time::Duration::from_millis(500) {
                eprintln!("slow: {} {} took {:?}", q.name, q.rtype, t.elapsed());
            }
            match answer {
                Ok(m) => {
                    let ede = lab::ede_codes(&m);
                    if let Err(e) = lab::check(&q, &m, cd) {
                        failures.push(format!("{} {} cd={cd} ({}): {e}\n{m}", q.name, q.rtype, q.why));
                    } else if q.expect == Outcome::Bogus && !cd && ede.is_empty() {
                        // The lab's Unbound runs with `ede: yes`: its bogus
                        // answers say why (RFC 8914).
                        failures.push(format!("{} {}: SERVFAIL without EDE\n{m}", q.name, q.rtype));
                    }
                }
                Err(e) => failures.push(format!("{} {} cd={cd} ({}): {e}", q.name, q.rtype, q.why)),
            }
        }
    }
    if !failures.is_empty() {
        let unbound_log = lab.unbound.daemon.log_text();
        panic!("{} lab questions wrong:\n{}\n{unbound_log}", failures.len(), failures.join("\n"));
    }
    let dir = lab.dir().to_owned();
    let t = std::time::Instant::now();
    drop(lab);
    eprintln!("lab stopped in {:?}", t.elapsed());
    let left = processes_naming(&dir.display().to_string());
    assert!(left.is_empty(), "lab processes still running after drop: {left:?}");
}

/// Pids whose command line contains `s`.
fn processes_naming(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap_or_else(|e| panic!("/proc: {e}")).flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(s) {
            out.push(format!("{pid}: {cmd}"));
        }
    }
    out
}

/// A difference from Unbound that is known and explained. Mirrored in
/// docs/resolver.md, "Differences from Unbound": keep the two in step.
struct Known {
    name: &'static str,
    rtype: RecordType,
    /// The query variant ("DO=1", "DO=0", "DO=1 CD=1"), or "*" for all.
    variant: &'static str,
    /// "rcode", "AD" or "answer".
    field: &'static str,
    reason: &'static str,
}

/// The known differences. Empty: meshdns must answer every lab question
/// as Unbound does.
const KNOWN: &[Known] = &[];

/// The variants every question is asked in.
fn variants(q: &Question) -> Vec<(&'static str, Flags)> {
    let mut v = vec![
        ("DO=1", Flags { dnssec_ok: true, ..Flags::default() }),
        ("DO=0", Flags::default()),
        ("DO=0 AD=1", Flags { ad: true, ..Flags::default() }),
    ];
    if q.expect == Outcome::Bogus {
        v.push(("DO=1 CD=1", Flags { dnssec_ok: true, cd: true, ..Flags::default() }));
    }
    v
}

/// The answer section as a set of (owner lower-cased, type, rdata): TTLs
/// and record order (RRSIGs included) do not count.
fn answer_set(m: &Message) -> BTreeSet<(String, String, String)> {
    m.answers()
        .iter()
        .map(|r| (r.name().to_lowercase().to_string(), r.record_type().to_string(), r.data().to_string()))
        .collect()
}

/// The records of `a` not in `b`, each shortened to 60 characters (RRSIG
/// signatures are long), for the difference table.
fn only_in(a: &BTreeSet<(String, String, String)>, b: &BTreeSet<(String, String, String)>) -> String {
    let v: Vec<String> = a
        .difference(b)
        .map(|(n, t, d)| {
            let line = format!("{n} {t} {d}");
            if line.chars().count() > 60 { line.chars().take(59).chain(['…']).collect() } else { line }
        })
        .collect();
    if v.is_empty() { "-".into() } else { v.join(" | ") }
}

/// meshdns (`serve --resolver recursive`) and Unbound on the same lab give
/// the same rcode, AD bit and answer RRsets for every lab question, with
/// DO=1, DO=0, AD=1 without DO, and with CD=1 for the bogus ones.
#[test]
fn meshdns_matches_unbound_on_the_lab() {
    let help = Command::new(common::BIN).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--resolver"),
        "`meshdns serve` has no --resolver flag yet (issue 13): this test needs the recursive resolver \
         (`serve --resolver recursive --root-hints --trust-anchor --recursion-allow --query-loopback`)"
    );
    let Some(lab) = Lab::start() else { return };
    let args = lab.recursive_args();
    let node = common::Server::builder().args(&args.iter().map(String::as_str).collect::<Vec<_>>()).start();
    assert_same_as_unbound(&lab, &node, KNOWN);
}

/// Asks Unbound and meshdns (`node`) every lab question in every variant
/// and fails, printing a table, on any difference in rcode, AD or answer
/// RRsets that `known` does not explain.
fn assert_same_as_unbound(lab: &Lab, node: &common::Server, known: &[Known]) {
    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut unexplained = 0;
    let mut asked = 0;
    let mut seen = vec![false; known.len()];
    for q in lab::questions() {
        for (variant, flags) in variants(&q) {
            asked += 1;
            let theirs = lab::ask(lab.unbound_addr(), &q, flags)
                .unwrap_or_else(|e| panic!("Unbound did not answer {} {} {variant}: {e}", q.name, q.rtype));
            for (field, unbound, meshdns) in differences(&theirs, &lab::ask(node.dns, &q, flags)) {
                let hit = known.iter().position(|k| {
                    k.name == q.name
                        && k.rtype == q.rtype
                        && k.field == field
                        && (k.variant == "*" || k.variant == variant)
                });
                let note = match hit {
                    Some(i) => {
                        seen[i] = true;
                        format!("known: {}", known[i].reason)
                    }
                    None => {
                        unexplained += 1;
                        "UNEXPLAINED".to_owned()
                    }
                };
                let question = format!("{} {}", q.name, q.rtype);
                rows.push([question, variant.to_owned(), field.to_owned(), unbound, meshdns, note]);
            }
        }
    }
    eprintln!("compared {asked} answers with Unbound's: {} differences, {unexplained} unexplained", rows.len());
    if !rows.is_empty() {
        eprintln!("{}", table(&rows));
    }
    let log = node.log_text();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    assert_eq!(
        unexplained,
        0,
        "{unexplained} unexplained differences from Unbound in {asked} answers (table above; \"answer\" cells hold \
         the records only that side has)\n--- meshdns log, last 60 lines ---\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    // A known difference that no longer happens is stale: drop it here and
    // in docs/resolver.md.
    let stale: Vec<String> = known
        .iter()
        .zip(&seen)
        .filter(|(_, s)| !**s)
        .map(|(k, _)| format!("{} {} {}", k.name, k.rtype, k.field))
        .collect();
    assert!(stale.is_empty(), "known differences that did not happen (remove them, and from the docs): {stale:?}");
}

/// (field, Unbound's, ours) for each way `ours` differs from `theirs`.
fn differences(theirs: &Message, ours: &Result<Message, String>) -> Vec<(&'static str, String, String)> {
    let ours = match ours {
        Ok(m) => m,
        Err(e) => return vec![("answer", theirs.response_code().to_string(), format!("no answer: {e}"))],
    };
    let mut diffs = Vec::new();
    if ours.response_code() != theirs.response_code() {
        // With each side's Extended DNS Errors: they say why.
        let rcode = |m: &Message| [vec![m.response_code().to_string()], lab::ede_text(m)].concat().join(", ");
        diffs.push(("rcode", rcode(theirs), rcode(ours)));
    }
    if ours.authentic_data() != theirs.authentic_data() {
        diffs.push(("AD", (theirs.authentic_data() as u8).to_string(), (ours.authentic_data() as u8).to_string()));
    }
    let (a, b) = (answer_set(theirs), answer_set(ours));
    if a != b {
        diffs.push(("answer", only_in(&a, &b), only_in(&b, &a)));
    }
    diffs
}

/// Forward mode through the lab: meshdns forwarding to the lab's Unbound
/// answers every lab question as Unbound does (DO and CD passed on, AD
/// copied: the upstream validates); forwarding to the lab's Knot (an
/// authoritative upstream) it answers for the plain zone.
#[test]
fn forward_mode_through_the_lab() {
    let Some(lab) = Lab::start() else { return };
    let via_unbound = common::Server::builder()
        .args(&["--resolver", "forward", "--forward", &format!("udp://{}", lab.unbound_addr())])
        .args(&["--recursion-allow", "127.0.0.0/8", "--query-loopback"])
        .start();
    assert_same_as_unbound(&lab, &via_unbound, &[]);

    let (zone, knot) = lab.plain_upstream();
    let via_knot = common::Server::builder()
        .args(&["--resolver", "forward", "--forward", &format!("udp://{knot}")])
        .args(&["--recursion-allow", "127.0.0.0/8", "--query-loopback"])
        .start();
    let ask = |name: &str| {
        let q = lab::query_msg(name, RecordType::A, Flags::default());
        lab::exchange(via_knot.dns, &q, std::time::Duration::from_secs(4))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", via_knot.log_text()))
    };
    let m = ask(&format!("www.{zone}"));
    let want = lab.fwd_www().to_string();
    assert!(
        m.answers().iter().any(|r| r.record_type() == RecordType::A && r.data().to_string() == want),
        "www.{zone} via Knot: want A {want}, got\n{m}"
    );
    let m = ask(&format!("nope.{zone}"));
    assert_eq!(m.response_code(), hickory_proto::op::ResponseCode::NXDomain, "nope.{zone} via Knot:\n{m}");
}

/// The differences as an aligned text table.
fn table(rows: &[[String; 6]]) -> String {
    let head = ["question", "variant", "field", "unbound", "meshdns", "note"].map(String::from);
    let all: Vec<&[String; 6]> = std::iter::once(&head).chain(rows).collect();
    let width: Vec<usize> = (0..6).map(|i| all.iter().map(|r| r[i].len().min(70)).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in all {
        let cells: Vec<String> = (0..6).map(|i| format!("{:w$}", r[i], w = width[i])).collect();
        out += cells.join(" | ").trim_end();
        out.push('\n');
    }
    out
}

/// Not a check: a lab kept up for poking at by hand. `LAB_HOLD_SECS=600
/// cargo test -p meshdns --test resolver_lab -- --ignored --nocapture
/// lab_hold` prints its servers, files and Unbound, then keeps them for
/// that long (default 300 s); `dig @127.53.N.1 . SOA +dnssec`.
#[test]
#[ignore = "a lab to poke at by hand"]
fn lab_hold() {
    let Some(lab) = Lab::start() else { return };
    let secs: u64 = std::env::var("LAB_HOLD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    eprintln!(
        "lab {}: servers {}..{} port 53, unbound {}\nhints {}\nanchor {}\nmeshdns serve {}\nheld for {secs} s",
        lab.n,
        lab.ip(1),
        lab.ip(8),
        lab.unbound_addr(),
        lab.root_hints.display(),
        lab.trust_anchor.display(),
        lab.recursive_args().join(" ")
    );
    std::thread::sleep(std::time::Duration::from_secs(secs));
}
