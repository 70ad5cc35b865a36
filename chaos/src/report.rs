//! The report of a run: `summary.json`, `history.json`, `report.md` and a
//! timeline plot (`timeline.svg`) in the run's results folder.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde::Serialize;

use crate::checker::{FinalState, Violation};
use crate::history::{Answer, History, Method, Outcome};
use crate::scenario::Scenario;

/// Round trips measured between nodes (ms; `None`: no such pair).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Rtt {
    /// Within a site.
    pub site_ms: Option<f64>,
    /// Between sites of a region.
    pub region_ms: Option<f64>,
    /// Between regions.
    pub global_ms: Option<f64>,
}

/// The figures of a run.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Seconds of workload and faults.
    pub duration_s: f64,
    /// Seconds from the first start to a whole cluster with the zone.
    pub formed_s: f64,
    /// Round trips between nodes, measured before the workload.
    pub rtt: Rtt,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
    /// Faults whose injection or heal reported an error.
    pub fault_errors: usize,
    /// Writes sent.
    pub writes: usize,
    /// Writes acknowledged, by method.
    pub acked: BTreeMap<String, usize>,
    /// Writes that failed or got no answer (may or may not be applied).
    pub failed: usize,
    /// Acknowledged writes not answered by every node at the end.
    pub lost: usize,
    /// Queries sent, and answered (NOERROR or NXDOMAIN), by protocol.
    pub queries: BTreeMap<String, (usize, usize)>,
    /// Seconds from the final heal until every node agreed (`None`: not
    /// within `settle_s`).
    pub convergence_s: Option<f64>,
    /// Nodes that exited without being told to.
    pub crashes: usize,
    /// Checker violations.
    pub violations: usize,
    /// Whether the run passed.
    pub passed: bool,
}

/// Counts the run.
#[allow(clippy::too_many_arguments)]
pub fn summarize(
    sc: &Scenario,
    seed: u64,
    h: &History,
    fin: &FinalState,
    violations: &[Violation],
    formed_s: f64,
    rtt: Rtt,
    convergence_s: Option<f64>,
) -> Summary {
    let mut faults = BTreeMap::new();
    for f in &h.faults {
        *faults.entry(f.kind.name().to_owned()).or_insert(0) += 1;
    }
    let mut acked = BTreeMap::new();
    for w in h.writes.iter().filter(|w| w.outcome == Outcome::Acked) {
        let m = match w.method {
            Method::Grpc => "grpc",
            Method::Update => "update",
        };
        *acked.entry(m.to_owned()).or_insert(0) += 1;
    }
    let lost = violations.iter().filter(|v| v.check == "acknowledged writes").count();
    let mut queries: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for q in &h.queries {
        let e = queries.entry(if q.tcp { "tcp" } else { "udp" }.to_owned()).or_default();
        e.0 += 1;
        if !matches!(q.answer, Answer::Error(_)) {
            e.1 += 1;
        }
    }
    let crashes = h.events.iter().filter(|e| e.1.contains("exited on its own")).count();
    Summary {
        scenario: sc.name.clone(),
        seed,
        nodes: fin.names.len(),
        duration_s: sc.duration_s,
        formed_s,
        rtt,
        faults,
        fault_errors: h.faults.iter().filter(|f| f.note.contains("failed")).count(),
        writes: h.writes.len(),
        acked,
        failed: h.writes.iter().filter(|w| matches!(w.outcome, Outcome::Failed(_) | Outcome::Pending)).count(),
        lost,
        queries,
        convergence_s,
        crashes,
        violations: violations.len(),
        passed: violations.is_empty(),
    }
}

/// Writes the run's files under `out`.
pub fn write(out: &Path, s: &Summary, h: &History, violations: &[Violation]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(s)?)?;
    std::fs::write(out.join("history.json"), serde_json::to_string(h)?)?;
    std::fs::write(out.join("violations.json"), serde_json::to_string_pretty(violations)?)?;
    std::fs::write(out.join("report.md"), markdown(s, h, violations))?;
    timeline(&out.join("timeline.svg"), h).map_err(|e| anyhow::anyhow!("timeline plot: {e}"))?;
    Ok(())
}

fn markdown(s: &Summary, h: &History, violations: &[Violation]) -> String {
    let mut m = String::new();
    let acked: usize = s.acked.values().sum();
    m += &format!("# Chaos run `{}` (seed {})\n\n", s.scenario, s.seed);
    m += &format!(
        "**{}**: {} nodes, {} s of writes and queries under {} faults; {} violation(s).\n\n",
        if s.passed { "PASSED" } else { "FAILED" },
        s.nodes,
        s.duration_s,
        h.faults.len(),
        s.violations
    );
    m += "| figure | value |\n| --- | --- |\n";
    m += &format!("| cluster formed | {:.1} s |\n", s.formed_s);
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
    m += &format!(
        "| round trip site / region / global (dig) | {} / {} / {} |\n",
        ms(s.rtt.site_ms),
        ms(s.rtt.region_ms),
        ms(s.rtt.global_ms)
    );
    m += &format!(
        "| faults injected | {} ({}) |\n",
        h.faults.len(),
        s.faults.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    );
    m += &format!("| writes sent / acknowledged / failed | {} / {acked} / {} |\n", s.writes, s.failed);
    m += &format!(
        "| acknowledged by method | {} |\n",
        s.acked.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    );
    m += &format!("| acknowledged writes lost | {} |\n", s.lost);
    for (p, (sent, answered)) in &s.queries {
        m += &format!("| {p} queries sent / answered | {sent} / {answered} |\n");
    }
    m += &format!(
        "| convergence after the final heal | {} |\n",
        s.convergence_s.map_or("not reached".to_owned(), |c| format!("{c:.1} s"))
    );
    m += &format!("| nodes that exited on their own | {} |\n\n", s.crashes);
    m += "![timeline](timeline.svg)\n\n## Faults\n\n| # | kind | target | start (s) | end (s) | note |\n| --- | --- | --- | --- | --- | --- |\n";
    for f in &h.faults {
        m += &format!(
            "| {} | {} | {} | {:.1} | {} | {} |\n",
            f.index,
            f.kind.name(),
            f.target,
            f.start_s,
            f.end_s.map_or("-".to_owned(), |e| format!("{e:.1}")),
            f.note
        );
    }
    if !violations.is_empty() {
        m += "\n## Violations\n";
        for v in violations {
            m += &format!("\n### {}: {}\n\n```\n{}\n```\n", v.check, v.message, v.history.join("\n"));
        }
    }
    m
}

/// Faults as bars, one row per kind; write acknowledgements and failures
/// as marks; the final heal and convergence as lines.
fn timeline(path: &Path, h: &History) -> Result<(), Box<dyn std::error::Error>> {
    let end = h
        .writes
        .iter()
        .map(|w| w.done_s)
        .chain(h.events.iter().map(|e| e.0))
        .chain(h.faults.iter().filter_map(|f| f.end_s))
        .fold(1.0f64, f64::max)
        + 5.0;
    let kinds = crate::scenario::FaultKind::ALL;
    let rows = kinds.len() as f64 + 2.0;
    let root = SVGBackend::new(path, (1200, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("faults, writes and convergence", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(110)
        .build_cartesian_2d(0f64..end, -0.5f64..rows - 0.5)?;
    let labels: Vec<String> =
        kinds.iter().map(|k| k.name().to_owned()).chain(["writes acked".into(), "writes failed".into()]).collect();
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_labels(labels.len())
        .y_label_formatter(&|y| labels.get(y.round() as usize).cloned().unwrap_or_default())
        .disable_y_mesh()
        .draw()?;
    for f in &h.faults {
        let row = kinds.iter().position(|k| *k == f.kind).unwrap_or(0) as f64;
        let e = f.end_s.unwrap_or(end);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(f.start_s, row - 0.3), (e.max(f.start_s + 0.3), row + 0.3)],
            Palette99::pick(row as usize).mix(0.5).filled(),
        )))?;
    }
    let acked_row = kinds.len() as f64;
    chart.draw_series(
        h.writes
            .iter()
            .filter(|w| w.outcome == Outcome::Acked)
            .map(|w| Circle::new((w.done_s, acked_row), 2, GREEN.filled())),
    )?;
    chart.draw_series(
        h.writes
            .iter()
            .filter(|w| w.outcome != Outcome::Acked)
            .map(|w| Circle::new((w.done_s, acked_row + 1.0), 2, RED.filled())),
    )?;
    for (t, what) in &h.events {
        let colour = if what.contains("converged") {
            BLUE
        } else if what.contains("exited") {
            RED
        } else {
            BLACK
        };
        if what.contains("converged") || what.contains("final heal") || what.contains("exited") {
            chart.draw_series(std::iter::once(PathElement::new(vec![(*t, -0.5), (*t, rows - 0.5)], colour)))?;
        }
    }
    root.present()?;
    Ok(())
}
