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
            let flags = Flags { dnssec_ok: true, cd };
            match lab::ask(lab.unbound_addr(), &q, flags) {
                Ok(m) => {
                    let ede = lab::ede_codes(&m);
                    if let Err(e) = lab::check(&q, &m, cd) {
                        failures.push(format!("{} {} cd={cd} ({}): {e}\n{m}", q.name, q.rtype, q.why));
                    } else if !ede.is_empty() {
                        eprintln!("{} {}: SERVFAIL with EDE {ede:?}", q.name, q.rtype);
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
    drop(lab);
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
    let mut v = vec![("DO=1", Flags { dnssec_ok: true, cd: false }), ("DO=0", Flags { dnssec_ok: false, cd: false })];
    if q.expect == Outcome::Bogus {
        v.push(("DO=1 CD=1", Flags { dnssec_ok: true, cd: true }));
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

fn show(set: &BTreeSet<(String, String, String)>) -> String {
    if set.is_empty() {
        return "(empty)".into();
    }
    set.iter().map(|(n, t, d)| format!("{n} {t} {d}")).collect::<Vec<_>>().join(" | ")
}

/// meshdns (`serve --resolver recursive`) and Unbound on the same lab give
/// the same rcode, AD bit and answer RRsets for every lab question, with
/// DO=1 and DO=0, and with CD=1 for the bogus ones.
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
    let hints = lab.root_hints.display().to_string();
    let anchor = lab.trust_anchor.display().to_string();
    let node = common::Server::builder()
        .args(&["--resolver", "recursive", "--root-hints", &hints, "--trust-anchor", &anchor])
        .args(&["--recursion-allow", "127.0.0.0/8", "--query-loopback"])
        .start();

    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut unexplained = 0;
    let mut asked = 0;
    for q in lab::questions() {
        for (variant, flags) in variants(&q) {
            asked += 1;
            let theirs = lab::ask(lab.unbound_addr(), &q, flags)
                .unwrap_or_else(|e| panic!("Unbound did not answer {} {} {variant}: {e}", q.name, q.rtype));
            let ours = lab::ask(node.dns, &q, flags);
            let mut diffs: Vec<(&str, String, String)> = Vec::new();
            match &ours {
                Err(e) => diffs.push(("answer", theirs.response_code().to_string(), format!("no answer: {e}"))),
                Ok(ours) => {
                    if ours.response_code() != theirs.response_code() {
                        diffs.push(("rcode", theirs.response_code().to_string(), ours.response_code().to_string()));
                    }
                    if ours.authentic_data() != theirs.authentic_data() {
                        diffs.push((
                            "AD",
                            (theirs.authentic_data() as u8).to_string(),
                            (ours.authentic_data() as u8).to_string(),
                        ));
                    }
                    let (a, b) = (answer_set(&theirs), answer_set(ours));
                    if a != b {
                        diffs.push(("answer", show(&a), show(&b)));
                    }
                }
            }
            for (field, unbound, meshdns) in diffs {
                let known = KNOWN.iter().find(|k| {
                    k.name == q.name
                        && k.rtype == q.rtype
                        && k.field == field
                        && (k.variant == "*" || k.variant == variant)
                });
                let note = match known {
                    Some(k) => format!("known: {}", k.reason),
                    None => {
                        unexplained += 1;
                        "UNEXPLAINED".to_owned()
                    }
                };
                rows.push([
                    format!("{} {}", q.name, q.rtype),
                    variant.to_owned(),
                    field.to_owned(),
                    unbound,
                    meshdns,
                    note,
                ]);
            }
        }
    }
    if !rows.is_empty() {
        eprintln!("{}", table(&rows));
    }
    assert_eq!(
        unexplained,
        0,
        "{unexplained} unexplained differences from Unbound in {asked} answers (table above)\n--- meshdns log ---\n{}",
        node.log_text()
    );
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
