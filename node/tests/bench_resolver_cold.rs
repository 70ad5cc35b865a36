//! Benchmark (ignored by default): cold-cache recursive resolution of
//! 1,000 lab names, meshdns against Unbound, on the lab internet
//! (tests/common/lab.rs) with 1,000 extra names spread over four zones:
//! `hosts.example.` (unsigned, Knot), `insecure.` (unsigned TLD, NSD),
//! `good.sec.` (signed, NSEC, NSD) and `nsec3.sec.` (signed, NSEC3
//! opt-out, NSD).
//!
//! Both resolvers start with an empty cache, the lab's root hints and
//! trust anchor, and validate. Each name (`A`, DO=1) is asked once,
//! one after the other, of meshdns, then of the lab's Unbound; the time
//! of each exchange is measured at the client. Prints one line
//! `BENCH_JSON {...}` with the figures, read by bench/resolver.py.
//!
//! Run as root (port 53):
//! `cargo test --release -p meshdns --test bench_resolver_cold -- --ignored --nocapture`.
//! BENCH_COLD_NAMES sets the number of names (default 1000).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::lab::{self, Flags, Lab};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// The zones the extra names go in, in turn.
const ZONES: &[&str] = &["hosts.example.", "insecure.", "good.sec.", "nsec3.sec."];

/// The i-th benchmark name and the zone it is in.
fn name(i: usize) -> (&'static str, String) {
    let zone = ZONES[i % ZONES.len()];
    (zone, format!("cold{i}.{zone}"))
}

/// Per-resolver figures.
struct Figures {
    ms: Vec<f64>,
    failed: Vec<String>,
    secure: usize,
    total: Duration,
}

/// Asks `resolver` every name once, in order; times each exchange.
fn resolve_all(resolver: SocketAddr, names: &[String]) -> Figures {
    let mut f = Figures { ms: Vec::with_capacity(names.len()), failed: Vec::new(), secure: 0, total: Duration::ZERO };
    let start = Instant::now();
    for n in names {
        let q = lab::query_msg(n, RecordType::A, Flags { dnssec_ok: true, ..Flags::default() });
        let t = Instant::now();
        let answer = lab::exchange(resolver, &q, Duration::from_secs(5));
        f.ms.push(t.elapsed().as_secs_f64() * 1e3);
        match answer {
            Ok(m) if m.response_code() == ResponseCode::NoError && !m.answers().is_empty() => {
                f.secure += usize::from(m.authentic_data());
            }
            Ok(m) => f.failed.push(format!("{n}: {:?}, {} answers", m.response_code(), m.answers().len())),
            Err(e) => f.failed.push(format!("{n}: {e}")),
        }
    }
    f.total = start.elapsed();
    f
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn json(f: &Figures) -> String {
    let mut s = f.ms.clone();
    s.sort_by(f64::total_cmp);
    format!(
        "{{\"total_ms\":{:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"mean_ms\":{:.3},\"failed\":{},\"secure\":{}",
        f.total.as_secs_f64() * 1e3,
        pct(&s, 50.0),
        pct(&s, 90.0),
        pct(&s, 99.0),
        s.last().copied().unwrap_or(0.0),
        s.iter().sum::<f64>() / s.len().max(1) as f64,
        f.failed.len(),
        f.secure
    ) + &format!(",\"p50_by_zone\":{{{}}}}}", by_zone(f))
}

/// The median per zone (name i is in zone i % 4), as JSON members.
fn by_zone(f: &Figures) -> String {
    let mut parts = Vec::new();
    for (z, zone) in ZONES.iter().enumerate() {
        let mut v: Vec<f64> = f.ms.iter().enumerate().filter(|(i, _)| i % ZONES.len() == z).map(|(_, m)| *m).collect();
        v.sort_by(f64::total_cmp);
        parts.push(format!("\"{zone}\":{:.3}", pct(&v, 50.0)));
    }
    parts.join(",")
}

#[test]
#[ignore = "benchmark: run by bench/resolver.py"]
fn cold_cache_resolution_meshdns_vs_unbound() {
    let n: usize = std::env::var("BENCH_COLD_NAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut extra: Vec<(&str, String)> = ZONES.iter().map(|z| (*z, String::new())).collect();
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let (zone, full) = name(i);
        let text = &mut extra.iter_mut().find(|(z, _)| *z == zone).unwrap_or_else(|| panic!("zone {zone}")).1;
        text.push_str(&format!("{full} 3600 IN A %NET%{}\n", 230 + i % 20));
        names.push(full);
    }
    let t = Instant::now();
    let Some(lab) = Lab::start_with(&extra) else { return };
    let lab_ms = t.elapsed().as_secs_f64() * 1e3;
    let args = lab.recursive_args();
    let node = common::Server::builder()
        .args(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .env("MESHDNS_LOG_LEVEL", "warn")
        .start();
    let mesh = resolve_all(node.dns, &names);
    let unbound = resolve_all(lab.unbound_addr(), &names);
    // How many queries meshdns sent to the lab's servers for all that.
    let metrics = node.http_get("/metrics").map(|(_, body)| body).unwrap_or_default();
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok()))
            .map_or(0, |v| v as u64)
    };
    for (who, f) in [("meshdns", &mesh), ("unbound", &unbound)] {
        for e in f.failed.iter().take(5) {
            eprintln!("{who} failed: {e}");
        }
    }
    println!(
        "BENCH_JSON {{\"names\":{n},\"zones\":{},\"lab_start_ms\":{lab_ms:.0},\"meshdns_upstream_queries\":{},\"meshdns_upstream_tcp\":{},\"meshdns\":{},\"unbound\":{}}}",
        ZONES.len(),
        counter("meshdns_resolver_upstream_queries_total "),
        counter("meshdns_resolver_upstream_tcp_total "),
        json(&mesh),
        json(&unbound)
    );
    // A benchmark of failures measures nothing: every name must resolve.
    assert!(mesh.failed.is_empty() && unbound.failed.is_empty(), "some names failed to resolve (see above)");
    drop(node);
    drop(lab);
}
