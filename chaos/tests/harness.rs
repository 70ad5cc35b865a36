//! The harness end to end: the CI scenario on real meshdns processes in
//! network namespaces (root only, as CI runs), cleanup after an
//! interruption, and the errors a user meets first.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHAOS: &str = env!("CARGO_BIN_EXE_meshdns-chaos");

/// The meshdns binary cargo built beside this test's target directory.
fn meshdns() -> PathBuf {
    let p = PathBuf::from(CHAOS).with_file_name("meshdns");
    assert!(p.exists(), "{} missing: build the workspace (cargo build --workspace)", p.display());
    p
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.strip_prefix("Uid:").and_then(|r| r.split_whitespace().nth(1)) == Some("0"))
}

fn leftover_namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("mc-"))
        .map(str::to_owned)
        .collect()
}

/// The two tests that build namespaces must not overlap (nextest runs
/// each test in a process of its own): a file lock, held while it lives.
fn exclusive() -> std::fs::File {
    let f = std::fs::File::create(std::env::temp_dir().join("meshdns-chaos-tests.lock")).unwrap();
    f.lock().unwrap();
    f
}

/// The lock and a results folder for a run, or `None` (test skipped)
/// without root.
fn root_run_setup() -> Option<(std::fs::File, tempfile::TempDir)> {
    if !is_root() {
        eprintln!("skipped: the chaos harness needs root (CI runs as root)");
        return None;
    }
    Some((exclusive(), tempfile::tempdir().unwrap()))
}

/// `meshdns-chaos run` of the CI scenario into `out`.
fn ci_run(out: &tempfile::TempDir) -> Command {
    let mut c = Command::new(CHAOS);
    c.arg("run").arg(scenario("ci.toml")).arg("--out").arg(out.path()).arg("--bin").arg(meshdns());
    c
}

#[test]
fn a_bad_scenario_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nduration_s = 10\n[topology]\nregions = 1\nsites_per_region = 1\nnodes_per_site = 12\n",
    )
    .unwrap();
    let out = Command::new(CHAOS).arg("run").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("topology.nodes_per_site") && err.contains("1 to 9"), "{err}");
}

#[test]
fn without_root_it_says_so() {
    if is_root() {
        // Checked from the other side: `setpriv` drops to an unprivileged
        // user when it is there.
        let Ok(out) = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", CHAOS, "run"])
            .arg(scenario("ci.toml"))
            .output()
        else {
            return;
        };
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("needs root"), "{err}");
        return;
    }
    let out = Command::new(CHAOS).arg("run").arg(scenario("ci.toml")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs root"), "{err}");
}

#[test]
fn the_ci_scenario_passes_the_checker_and_leaves_nothing_behind() {
    let Some((_one, out)) = root_run_setup() else { return };
    let status = ci_run(&out).status().unwrap();
    let run = out.path().join("ci");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).expect("summary.json written"))
            .unwrap();
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(status.success(), "the run failed:\n{report}");
    assert_eq!(summary["passed"], true);
    assert_eq!(summary["lost"], 0);
    assert_eq!(summary["crashes"], 0);
    // Every fault of the scenario happened, without errors.
    let faults: u64 = summary["faults"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(faults, 9, "{report}");
    assert_eq!(summary["fault_errors"], 0, "{report}");
    // Writes were acknowledged both ways, and queries answered both ways.
    assert!(summary["acked"]["grpc"].as_u64().unwrap() > 50, "{report}");
    assert!(summary["acked"]["update"].as_u64().unwrap() > 20, "{report}");
    for p in ["udp", "tcp"] {
        assert!(summary["queries"][p][1].as_u64().unwrap() > 100, "{p}: {report}");
    }
    // The delayers add the tiers' latency (one way 10 / 60 ms).
    let region = summary["rtt"]["region_ms"].as_f64().expect("region round trip measured");
    let global = summary["rtt"]["global_ms"].as_f64().expect("global round trip measured");
    assert!(region >= 15.0 && global >= 100.0, "round trips {region} / {global} ms");
    assert!(summary["convergence_s"].as_f64().is_some());
    assert!(run.join("timeline.svg").exists() && run.join("history.json").exists());
    assert!(leftover_namespaces().is_empty(), "left behind: {:?}", leftover_namespaces());
}

#[test]
fn an_interrupted_run_removes_everything() {
    let Some((_one, out)) = root_run_setup() else { return };
    let mut child = ci_run(&out).stderr(Stdio::piped()).spawn().unwrap();
    // Interrupt once the first fault is in (stderr read on a thread, so
    // the deadline holds even if the run falls silent).
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("fault #0") {
                    break;
                }
            }
            Err(e) => panic!("no fault within 180 s ({e}):\n{seen}"),
        }
    }
    assert!(!leftover_namespaces().is_empty(), "the run made its namespaces");
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "an interrupted run says so");
    assert!(leftover_namespaces().is_empty(), "left behind: {:?}", leftover_namespaces());
    // SIGKILLed processes vanish a moment after the signal: poll, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ps = Command::new("pgrep").args(["-f", "meshdns serve --node-id r0s0n0"]).output().unwrap();
        if ps.stdout.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "a node still runs: {}", String::from_utf8_lossy(&ps.stdout));
        std::thread::sleep(Duration::from_millis(100));
    }
}
