//! Results on disk: CSV, JSON, a markdown report and SVG plots per run, and
//! a comparison across runs. Nothing here reads a clock: the same run
//! writes the same bytes.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::stats::{Spread, Stats, Summary};

/// Why results could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The file.
        path: String,
        /// What plotters said.
        message: String,
    },
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Write { path: path.display().to_string(), source })
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 10_000.0 => format!("{:.1} s", v / 1_000.0),
        Some(v) => format!("{v:.1} ms"),
        None => "never (some node missed it)".into(),
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1} s"))
}

fn spread_row(name: &str, s: &Spread) -> String {
    format!("| {name} | {} | {} | {} |\n", ms(s.p50), ms(s.p99), ms(s.p100))
}

/// Writes one run's results into `dir`.
pub fn write_run(dir: &Path, stats: &Stats) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write { path: dir.display().to_string(), source })?;
    let Some(s) = &stats.summary else { return Ok(()) };
    let json = serde_json::to_string_pretty(s).unwrap_or_default();
    write(&dir.join("summary.json"), &json)?;

    let spreads = stats.write_spreads();
    let mut csv = String::from(
        "t_s,quiet,zone,bytes,nodes,all_p50_ms,all_p99_ms,all_p100_ms,site_p100_ms,region_p100_ms,global_p100_ms\n",
    );
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.2}"));
    for w in &spreads {
        let _ = writeln!(
            csv,
            "{:.3},{},{},{},{},{},{},{},{},{},{}",
            w.t,
            w.quiet,
            w.zone,
            w.bytes,
            w.nodes,
            f(w.all.p50),
            f(w.all.p99),
            f(w.all.p100),
            f(w.site.p100),
            f(w.region.p100),
            f(w.global.p100)
        );
    }
    write(&dir.join("writes.csv"), &csv)?;

    let mut csv = String::from("t_s,up,gossip_bytes_per_node,repl_bytes_per_node,pulls_in_flight\n");
    for x in &stats.seconds {
        let _ = writeln!(csv, "{},{},{:.1},{:.1},{}", x.t, x.up, x.gossip_per_node, x.repl_per_node, x.pulls_in_flight);
    }
    write(&dir.join("traffic.csv"), &csv)?;

    let mut csv = String::from("t_s,node,observers,up,p50_s,p99_s,max_s\n");
    for d in &s.detections {
        let _ = writeln!(
            csv,
            "{:.3},{},{},{},{},{},{}",
            d.t,
            d.node,
            d.observers,
            d.up,
            f(d.p50_s),
            f(d.p99_s),
            f(d.max_s)
        );
    }
    write(&dir.join("detections.csv"), &csv)?;

    let mut csv = String::from("event,since_s,took_s\n");
    for c in &s.convergence {
        let _ = writeln!(csv, "\"{}\",{:.1},{}", c.event, c.since_s, f(c.took_s));
    }
    write(&dir.join("convergence.csv"), &csv)?;

    let mut traffic_series =
        vec![("replication", stats.seconds.iter().map(|x| (x.t as f64, x.repl_per_node)).collect())];
    if s.mode == "gossip" {
        traffic_series.push(("gossip", stats.seconds.iter().map(|x| (x.t as f64, x.gossip_per_node)).collect()));
    }
    let markers: Vec<(f64, String)> = stats.faults().iter().map(|(t, l)| (*t as f64 / 1e6, l.clone())).collect();
    line_chart(
        &dir.join("traffic.svg"),
        &format!("{}: bytes sent per node per second", s.scenario),
        "virtual time (s)",
        "bytes / node / s",
        &traffic_series,
        false,
        &markers,
    )?;
    line_chart(
        &dir.join("pulls.svg"),
        &format!("{}: pulls in flight across the cluster", s.scenario),
        "virtual time (s)",
        "pulls",
        &[("in flight", stats.seconds.iter().map(|x| (x.t as f64, x.pulls_in_flight as f64)).collect())],
        false,
        &markers,
    )?;
    let vis = |g: &dyn Fn(&crate::stats::WriteSpread) -> Option<f64>| -> Vec<(f64, f64)> {
        spreads.iter().filter_map(|w| Some((w.t, g(w)?))).collect()
    };
    line_chart(
        &dir.join("visibility.svg"),
        &format!("{}: time for each write to reach 50/99/100% of nodes", s.scenario),
        "virtual time of the write (s)",
        "ms",
        &[("50%", vis(&|w| w.all.p50)), ("99%", vis(&|w| w.all.p99)), ("100%", vis(&|w| w.all.p100))],
        false,
        &markers,
    )?;
    write(&dir.join("report.md"), &markdown(s, &markers))
}

fn markdown(s: &Summary, markers: &[(f64, String)]) -> String {
    let mut md = String::new();
    let (r, si, n) = s.shape;
    let _ = writeln!(md, "# Simulation `{}` (seed {})\n", s.scenario, s.seed);
    let _ = writeln!(
        md,
        "{} nodes ({r} regions × {si} sites × {n} nodes), membership: **{}**, {:.0} virtual seconds, loss site/region/global {}/{}/{}.\n",
        s.nodes, s.mode, s.duration_s, s.loss.0, s.loss.1, s.loss.2
    );
    let _ = writeln!(md, "## Checks\n");
    let _ = writeln!(md, "- all up nodes hold the same data at the end: **{}**", s.converged_data);
    if s.mode == "gossip" {
        let _ = writeln!(md, "- all up nodes list exactly the up nodes as members: **{}**", s.converged_members);
    }
    let _ = writeln!(md, "- zone digests kept change by change equal a recount: **{}**", s.digests_recount_ok);
    let _ = writeln!(md, "- writes some counted node never got: **{}** of {}\n", s.writes_not_everywhere, s.writes);
    let _ = writeln!(md, "## Write visibility\n");
    let _ = writeln!(
        md,
        "{} writes, {} of them quiet (no fault in the 30 s before). Time from the write until it is held by 50%, 99% and 100% of the nodes that were up then and did not crash later:\n",
        s.writes, s.quiet_writes
    );
    let _ = writeln!(md, "| quiet writes | 50% of nodes | 99% | 100% |\n| --- | --- | --- | --- |");
    md.push_str(&spread_row("median write", &s.visible_median));
    md.push_str(&spread_row("slowest write", &s.visible_worst));
    let _ = writeln!(md, "\nBy distance from the writer, time to all nodes of each group:\n");
    let _ = writeln!(
        md,
        "| quiet writes | writer's site | rest of its region | other regions |\n| --- | --- | --- | --- |"
    );
    for (name, (a, b, c)) in [("median write", s.visible_median_by_tier), ("slowest write", s.visible_worst_by_tier)] {
        let _ = writeln!(md, "| {name} | {} | {} | {} |", ms(a), ms(b), ms(c));
    }
    md.push('\n');
    let _ = writeln!(md, "![visibility](visibility.svg)\n");
    let _ = writeln!(md, "## Traffic\n");
    let gossip = if s.mode == "gossip" {
        format!("gossip **{:.0} B/s** (busiest node {:.0} B/s)", s.gossip_bytes_per_node_s, s.gossip_bytes_max_node_s)
    } else {
        "gossip not simulated (oracle membership)".to_owned()
    };
    let _ = writeln!(
        md,
        "After warm-up, per node and second: {gossip}, replication **{:.0} B/s**. Pulls: {} answered, {} failed, {} bytes; at most {} in flight on one node, {} across the cluster.\n",
        s.repl_bytes_per_node_s, s.pulls.0, s.pulls.1, s.pulls.2, s.peak_pulls.0, s.peak_pulls.1
    );
    if let Some((peak, bytes)) = s.storm {
        let _ = writeln!(
            md,
            "Mass rejoin: in the two minutes after the rejoin, at most **{peak}** pulls in flight across the cluster and **{bytes:.0} B/s** of replication per node in the busiest second.\n"
        );
    }
    let _ = writeln!(md, "![traffic](traffic.svg)\n\n![pulls](pulls.svg)\n");
    if s.mode == "gossip" {
        let _ = writeln!(md, "## Failure detection\n");
        let _ = writeln!(
            md,
            "{} crashes; median of the per-crash median detection delay {}, slowest observer {}. False positives (a live, reachable member reported dead): **{}** in {:.2} node-days = **{:.2} per node-day**.\n",
            s.detections.len(),
            secs(s.detection_p50_s),
            secs(s.detection_max_s),
            s.false_positives,
            s.node_days,
            s.false_positives_per_node_day
        );
    }
    if !s.convergence.is_empty() {
        let _ = writeln!(md, "## Convergence\n\n| event | measured from | took |\n| --- | --- | --- |");
        for c in &s.convergence {
            let _ = writeln!(md, "| {} | {:.0} s | {} |", c.event, c.since_s, secs(c.took_s));
        }
        md.push('\n');
    }
    if let Some(r) = &s.ring {
        let _ = writeln!(md, "## Ring\n");
        let _ = writeln!(
            md,
            "{} keys on {} members: most loaded {:.2}× the mean, least {:.2}×, spread {:.2}× that of pure chance. One member leaving moved {:.4}% of keys, one joining {:.4}% (ideal {:.4}%).\n",
            r.keys,
            r.members,
            r.max_over_mean,
            r.min_over_mean,
            r.stddev_over_chance,
            r.moved_on_leave * 100.0,
            r.moved_on_join * 100.0,
            r.ideal_moved * 100.0
        );
    }
    let _ = writeln!(md, "## Events\n");
    for (t, l) in markers {
        let _ = writeln!(md, "- {t:.0} s: {l}");
    }
    let _ = writeln!(
        md,
        "\nOther counters: {} restarts, {} writes refused for clock drift, {} unreadable relay records.",
        s.restarts, s.drift_refusals, s.bad_relay_records
    );
    md
}

/// Writes the comparison of several runs into `dir`.
pub fn write_comparison(dir: &Path, runs: &[Summary]) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write { path: dir.display().to_string(), source })?;
    let mut csv = String::from(
        "scenario,mode,nodes,loss_site,vis_p50_ms,vis_p99_ms,vis_p100_ms,worst_p99_ms,worst_p100_ms,site_p100_ms,region_p100_ms,global_p100_ms,gossip_B_node_s,repl_B_node_s,detection_p50_s,detection_max_s,false_positives_per_node_day,converged\n",
    );
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.2}"));
    let mut md = String::from(
        "| scenario | mode | nodes | loss | write to 50% | 99% | 100% | slowest write to 99% | to 100% | gossip B/node/s | replication B/node/s | detection p50 | false positives / node-day | converged |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for s in runs {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.1},{},{},{:.3},{}",
            s.scenario,
            s.mode,
            s.nodes,
            s.loss.0,
            f(s.visible_median.p50),
            f(s.visible_median.p99),
            f(s.visible_median.p100),
            f(s.visible_worst.p99),
            f(s.visible_worst.p100),
            f(s.visible_median_by_tier.0),
            f(s.visible_median_by_tier.1),
            f(s.visible_median_by_tier.2),
            s.gossip_bytes_per_node_s,
            s.repl_bytes_per_node_s,
            f(s.detection_p50_s),
            f(s.detection_max_s),
            s.false_positives_per_node_day,
            s.converged_data && s.converged_members
        );
        let gossip = if s.mode == "gossip" { format!("{:.0}", s.gossip_bytes_per_node_s) } else { "(oracle)".into() };
        let det = if s.mode == "gossip" { secs(s.detection_p50_s) } else { "(oracle)".into() };
        let fp = if s.mode == "gossip" { format!("{:.2}", s.false_positives_per_node_day) } else { "—".into() };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {}% | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} |",
            s.scenario,
            s.mode,
            s.nodes,
            s.loss.0 * 100.0,
            ms(s.visible_median.p50),
            ms(s.visible_median.p99),
            ms(s.visible_median.p100),
            ms(s.visible_worst.p99),
            ms(s.visible_worst.p100),
            gossip,
            s.repl_bytes_per_node_s,
            det,
            fp,
            s.converged_data && s.converged_members
        );
    }
    write(&dir.join("comparison.csv"), &csv)?;
    write(&dir.join("comparison.md"), &md)?;

    // Versus N: runs without loss, one point per N (the first run of each size).
    let mut by_n: Vec<&Summary> = runs.iter().filter(|s| s.loss.0 == 0.0).collect();
    by_n.sort_by_key(|s| s.nodes);
    by_n.dedup_by_key(|s| s.nodes);
    let logn = |s: &Summary| (s.nodes as f64).log10();
    let series = |g: &dyn Fn(&Summary) -> Option<f64>| -> Vec<(f64, f64)> {
        by_n.iter().filter_map(|s| Some((logn(s), g(s)?))).collect()
    };
    if by_n.len() > 1 {
        line_chart(
            &dir.join("visibility-vs-n.svg"),
            "median write: time to reach 50/99/100% of nodes vs N",
            "nodes (log scale)",
            "ms",
            &[
                ("50%", series(&|s| s.visible_median.p50)),
                ("99%", series(&|s| s.visible_median.p99)),
                ("100%", series(&|s| s.visible_median.p100)),
                ("slowest write, 100%", series(&|s| s.visible_worst.p100)),
                ("median write, all of writer's site", series(&|s| s.visible_median_by_tier.0)),
                ("median write, all of other regions", series(&|s| s.visible_median_by_tier.2)),
            ],
            true,
            &[],
        )?;
        // Per mode: oracle and gossip runs differ in what they measure.
        let per_mode = |mode: &str, g: &dyn Fn(&Summary) -> f64| -> Vec<(f64, f64)> {
            let mut v: Vec<&Summary> = runs.iter().filter(|s| s.loss.0 == 0.0 && s.mode == mode).collect();
            v.sort_by_key(|s| s.nodes);
            v.dedup_by_key(|s| s.nodes);
            v.iter().map(|s| (logn(s), g(s))).collect()
        };
        let bytes = vec![
            ("replication, oracle membership", per_mode("oracle", &|s| s.repl_bytes_per_node_s)),
            ("replication, gossip membership", per_mode("gossip", &|s| s.repl_bytes_per_node_s)),
            ("gossip, gossip membership", per_mode("gossip", &|s| s.gossip_bytes_per_node_s)),
        ];
        line_chart(
            &dir.join("bytes-vs-n.svg"),
            "bytes sent per node per second vs N",
            "nodes (log scale)",
            "bytes / node / s",
            &bytes,
            true,
            &[],
        )?;
    }
    // Versus loss: gossip-mode runs.
    let mut by_loss: Vec<&Summary> = runs.iter().filter(|s| s.mode == "gossip" && !s.detections.is_empty()).collect();
    by_loss.sort_by(|a, b| a.loss.0.total_cmp(&b.loss.0));
    if by_loss.len() > 1 {
        line_chart(
            &dir.join("detection-vs-loss.svg"),
            "failure detection delay vs packet loss",
            "loss (%)",
            "seconds",
            &[
                ("median", by_loss.iter().filter_map(|s| Some((s.loss.0 * 100.0, s.detection_p50_s?))).collect()),
                (
                    "slowest observer",
                    by_loss.iter().filter_map(|s| Some((s.loss.0 * 100.0, s.detection_max_s?))).collect(),
                ),
                (
                    "false positives / node-day",
                    by_loss.iter().map(|s| (s.loss.0 * 100.0, s.false_positives_per_node_day)).collect(),
                ),
            ],
            false,
            &[],
        )?;
    }
    Ok(())
}

/// A line chart of `series`; `log_x`: x values are log10 and labelled as
/// powers. `markers`: vertical lines with labels (events).
fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    log_x: bool,
    markers: &[(f64, String)],
) -> Result<(), ReportError> {
    let err = |e: String| ReportError::Plot { path: path.display().to_string(), message: e };
    let pts = series.iter().flat_map(|(_, v)| v.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    for (x, _) in markers {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.1 };
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..y1)
        .map_err(|e| err(e.to_string()))?;
    let fmt_x = move |v: &f64| if log_x { format!("{:.0}", 10f64.powf(*v)) } else { format!("{v:.0}") };
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&fmt_x)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let colours = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (k, (name, pts)) in series.iter().enumerate() {
        let c = colours[k % colours.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 2, c.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    for (x, label) in markers {
        chart.draw_series(LineSeries::new([(*x, 0.0), (*x, y1)], BLACK.mix(0.3))).map_err(|e| err(e.to_string()))?;
        chart
            .draw_series([Text::new(label.clone(), (*x, y1 * 0.97), ("sans-serif", 11))])
            .map_err(|e| err(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
