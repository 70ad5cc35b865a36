//! The CI scenario through the real `meshdns-sim` binary: it converges,
//! and the same seed gives byte-identical results.

use std::path::{Path, PathBuf};
use std::process::Command;

fn scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ci.toml")
}

fn run(out: &Path, seed: Option<u64>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshdns-sim"));
    cmd.arg("run").arg(scenario()).arg("--out").arg(out);
    if let Some(s) = seed {
        cmd.arg("--seed").arg(s.to_string());
    }
    cmd.output().expect("meshdns-sim runs")
}

/// Every file under `dir`, relative path and bytes, in order.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("inside").display().to_string();
                out.push((rel, std::fs::read(&p).expect("readable")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_ci_scenario_converges_and_replays_byte_for_byte() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let first = run(&a, None);
    assert!(first.status.success(), "the CI scenario converges: {}", String::from_utf8_lossy(&first.stderr));
    let second = run(&b, None);
    assert!(second.status.success());
    let (ta, tb) = (tree(&a), tree(&b));
    let names: Vec<&str> = ta.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["ci/report.md", "ci/summary.json", "ci/writes.csv", "ci/traffic.csv", "ci/visibility.svg"] {
        assert!(names.contains(&expected), "{expected} is written (got {names:?})");
    }
    for ((na, ba), (nb, bb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert!(ba == bb, "{na} differs between two runs with the same seed");
    }
    assert_eq!(ta.len(), tb.len());

    // Another seed is another run: the check above is not comparing constants.
    let third = run(&c, Some(12_345));
    assert!(third.status.success(), "{}", String::from_utf8_lossy(&third.stderr));
    let tc = tree(&c);
    let writes = |t: &[(String, Vec<u8>)]| t.iter().find(|(n, _)| n == "ci/writes.csv").map(|(_, b)| b.clone());
    assert_ne!(writes(&ta), writes(&tc), "a different seed gives different writes");

    // What the summary says is what the scenario demands.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("ci/summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["converged_data"], true);
    assert_eq!(summary["converged_members"], true);
    assert_eq!(summary["digests_recount_ok"], true);
    assert_eq!(summary["writes_not_everywhere"], 0);
    assert_eq!(summary["false_positives"], 0, "no live member reported dead without loss");
    let crashes = summary["detections"].as_array().expect("detections");
    assert_eq!(crashes.len(), 2, "the two crashes are seen");
    for c in crashes {
        assert!(c["observers"].as_u64().unwrap_or(0) >= 10, "most nodes report each crash: {c}");
    }
    let heal = summary["convergence"]
        .as_array()
        .expect("convergence")
        .iter()
        .find(|c| c["event"].as_str().is_some_and(|e| e.starts_with("heal")));
    assert!(heal.is_some_and(|h| h["took_s"].is_number()), "the partition heals: {heal:?}");
}

#[test]
fn a_bad_scenario_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nduration_s = 10\n[topology]\nregions = 1\nsites_per_region = 1\nnodes_per_site = 2\n[writes]\nrate = 1\n")
        .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_meshdns-sim"))
        .arg("run")
        .arg(&bad)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("rate"), "names the file and the key: {err}");
}
