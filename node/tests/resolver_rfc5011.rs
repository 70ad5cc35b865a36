//! RFC 5011 trust-anchor tracking with the real binary on the lab
//! internet (tests/common/lab.rs): the state file is written from a
//! validated DNSKEY RRset, and a restart trusts it over `--trust-anchor`.
//!
//! Needs root (the lab's servers listen on 127.53.N.x port 53): run as
//! root, or LAB_SKIP_OK=1 to skip. `cargo test -p meshdns --test resolver_rfc5011`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::lab::{self, Flags, Lab};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// The key tag of the lab's root KSK, from its DS anchor file
/// (`. 3600 IN DS <tag> 13 2 <digest>`).
fn anchor_tag(lab: &Lab) -> String {
    let text = std::fs::read_to_string(&lab.trust_anchor).unwrap_or_else(|e| panic!("{e}"));
    let fields: Vec<&str> = text.split_whitespace().collect();
    let at = fields.iter().position(|f| *f == "DS").unwrap_or_else(|| panic!("no DS in {text}"));
    fields[at + 1].to_owned()
}

/// The line of the state file for the key with `tag`, once it is in state `state`.
fn key_line(file: &Path, tag: &str, state: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find(|l| l.contains(&format!("{{id = {tag}}}")) && l.contains(state)).map(str::to_owned)
}

fn start(lab: &Lab, data: &Path, conf: &Path, anchor: &Path) -> common::Server {
    let mut args = lab.recursive_args();
    let at = args.iter().position(|a| a == "--trust-anchor").unwrap_or_else(|| panic!("{args:?}"));
    args[at + 1] = anchor.display().to_string();
    args.extend(["--config".to_owned(), conf.display().to_string()]);
    common::Server::builder().data_dir(data).args(&args.iter().map(String::as_str).collect::<Vec<_>>()).start()
}

/// A Secure answer from meshdns: NOERROR with AD.
fn secure(node: &common::Server) -> Result<(), String> {
    let q = lab::query_msg("www.good.sec.", RecordType::A, Flags { dnssec_ok: true, ..Flags::default() });
    let m = lab::exchange(node.dns, &q, Duration::from_secs(5))?;
    if m.response_code() == ResponseCode::NoError && m.authentic_data() && !m.answers().is_empty() {
        Ok(())
    } else {
        Err(format!("not a secure answer:\n{m}"))
    }
}

#[test]
fn the_root_ksk_becomes_valid_in_the_state_file_and_a_restart_trusts_it() {
    let Some(lab) = Lab::start() else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let conf = dir.path().join("meshdns.toml");
    std::fs::write(&conf, "[resolver]\nanchor_refresh_s = 1\n").unwrap_or_else(|e| panic!("{e}"));
    let state = data.join("trust-anchors.state");
    let tag = anchor_tag(&lab);

    let mut node = start(&lab, &data, &conf, &lab.trust_anchor);
    let line = common::wait_for("the root KSK VALID in the state file", Duration::from_secs(30), || {
        key_line(&state, &tag, ";;state=2 [ VALID ]")
    });
    assert!(line.starts_with(". ") && line.contains("DNSKEY 257 3 13 "), "the KSK itself: {line}");
    let text = std::fs::read_to_string(&state).unwrap_or_else(|e| panic!("{e}"));
    assert!(!text.contains(" DS "), "the DS anchor is replaced by the key it matched:\n{text}");
    assert!(!text.contains("DNSKEY 256 "), "only SEP keys are tracked:\n{text}");
    secure(&node).unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
    assert!(node.log_text().contains("no RFC 5011 state file yet"), "{}", node.log_text());
    node.stop();

    // The restart is given an anchor that matches no key: only the state
    // file can make the lab's answers Secure now.
    let wrong = dir.path().join("wrong.key");
    let mut ds = std::fs::read_to_string(&lab.trust_anchor).unwrap_or_else(|e| panic!("{e}"));
    let last = ds.trim_end().chars().last().unwrap_or('0');
    ds = format!("{}{}\n", &ds.trim_end()[..ds.trim_end().len() - 1], if last == '0' { '1' } else { '0' });
    std::fs::write(&wrong, ds).unwrap_or_else(|e| panic!("{e}"));
    let node = start(&lab, &data, &conf, &wrong);
    assert!(
        node.log_text().contains("trust anchors from the RFC 5011 state file"),
        "the restart says it uses the state file:\n{}",
        node.log_text()
    );
    secure(&node).unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));

    // Without the state file, the same wrong anchor makes the answer Bogus.
    let other = dir.path().join("data2");
    let node2 = start(&lab, &other, &conf, &wrong);
    let q = lab::query_msg("www.good.sec.", RecordType::A, Flags { dnssec_ok: true, ..Flags::default() });
    let m = lab::exchange(node2.dns, &q, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.response_code(), ResponseCode::ServFail, "the wrong anchor alone: {m}");
}

/// RFC 5011 §2.4.1: a new KSK in the validated root DNSKEY RRset is
/// ADDPEND (its 30-day hold-down cannot pass in a test), and the old one
/// stays VALID.
#[test]
fn a_new_root_ksk_is_pending_add() {
    let Some(mut lab) = Lab::start() else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let conf = dir.path().join("meshdns.toml");
    std::fs::write(&conf, "[resolver]\nanchor_refresh_s = 1\n").unwrap_or_else(|e| panic!("{e}"));
    let state = data.join("trust-anchors.state");
    let old = anchor_tag(&lab);
    let node = start(&lab, &data, &conf, &lab.trust_anchor);
    common::wait_for("the root KSK VALID", Duration::from_secs(30), || key_line(&state, &old, ";;state=2 [ VALID ]"));
    let new = lab.add_root_ksk().to_string();
    let line = common::wait_for("the new KSK ADDPEND", Duration::from_secs(30), || {
        key_line(&state, &new, ";;state=1 [ ADDPEND ]")
    });
    assert!(line.contains("DNSKEY 257 3 13 "), "{line}");
    assert!(key_line(&state, &old, ";;state=2 [ VALID ]").is_some(), "the old KSK stays VALID");
    secure(&node).unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
}
