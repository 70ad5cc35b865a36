//! `meshdns-sim run SCENARIO... [--seed N] [--out DIR]`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use meshdns_sim::Scenario;

/// Deterministic simulation of a meshdns mesh on virtual nodes.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs scenarios; each writes its results under OUT/<name>, and two or
    /// more also write a comparison into OUT.
    Run {
        /// Scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seed for every run (default: each scenario's own).
        #[arg(long)]
        seed: Option<u64>,
        /// Results folder.
        #[arg(long, default_value = "results/sim")]
        out: PathBuf,
    },
    /// Writes the comparison of earlier runs (their summary.json) into OUT.
    Compare {
        /// Run folders (each holding a summary.json).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where the comparison goes.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Compare { runs, out } => {
            let mut summaries = Vec::new();
            for r in &runs {
                let path = r.join("summary.json");
                let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let s: meshdns_sim::Summary =
                    serde_json::from_str(&text).with_context(|| format!("{} is not a run summary", path.display()))?;
                summaries.push(s);
            }
            meshdns_sim::report::write_comparison(&out, &summaries)?;
            println!("comparison in {}", out.join("comparison.md").display());
            Ok(())
        }
        Command::Run { scenarios, seed, out } => {
            let mut summaries = Vec::new();
            for path in &scenarios {
                let sc = Scenario::load(path)?;
                let seed = seed.unwrap_or(sc.seed);
                let name = sc.name.clone();
                let nodes = sc.topology.nodes();
                let dir = out.join(&name);
                eprintln!("meshdns-sim: running {name} ({nodes} nodes, {} virtual s, seed {seed})", sc.duration_s);
                let started = Instant::now();
                let s =
                    meshdns_sim::run(sc, seed, &dir, true).with_context(|| format!("scenario {}", path.display()))?;
                let wall = started.elapsed().as_secs_f64();
                println!(
                    "{name}: {nodes} nodes, {:.0} virtual s in {wall:.1} s wall; data converged: {}, members converged: {}; results in {}",
                    s.duration_s,
                    s.converged_data,
                    s.converged_members,
                    dir.display()
                );
                summaries.push(s);
            }
            if summaries.len() > 1 {
                meshdns_sim::report::write_comparison(&out, &summaries)?;
                println!("comparison in {}", out.join("comparison.md").display());
            }
            let failed: Vec<&str> = summaries
                .iter()
                .filter(|s| !(s.converged_data && s.converged_members && s.digests_recount_ok))
                .map(|s| s.scenario.as_str())
                .collect();
            if !failed.is_empty() {
                anyhow::bail!("did not converge by the end: {}", failed.join(", "));
            }
            Ok(())
        }
    }
}
