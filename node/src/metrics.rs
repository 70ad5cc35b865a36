//! Data-plane counters, kept per worker so the hot path never shares a
//! cache line, summed when Prometheus scrapes `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::dns::auth::Answered;
use crate::dns::iana::{Rcode, Rtype};

/// Transport label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// UDP.
    Udp = 0,
    /// TCP.
    Tcp = 1,
}
const PROTOS: [&str; 2] = ["udp", "tcp"];

const QTYPES: [(u16, &str); 17] = [
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (15, "MX"),
    (16, "TXT"),
    (28, "AAAA"),
    (33, "SRV"),
    (43, "DS"),
    (48, "DNSKEY"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (257, "CAA"),
    (255, "ANY"),
    (252, "AXFR"),
    (251, "IXFR"),
];
const OTHER_QTYPE: usize = QTYPES.len();
const RCODES: [Rcode; 9] = [
    Rcode::NOERROR,
    Rcode::FORMERR,
    Rcode::SERVFAIL,
    Rcode::NXDOMAIN,
    Rcode::NOTIMP,
    Rcode::REFUSED,
    Rcode::YXDOMAIN,
    Rcode::NOTAUTH,
    Rcode::BADVERS,
];
const OTHER_RCODE: usize = RCODES.len();

/// Upper bounds of the latency histogram, in seconds.
const LATENCY_BOUNDS: [f64; 10] = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2];

/// One worker's counters, on its own cache lines.
#[repr(align(128))]
pub struct Shard {
    queries: [[[AtomicU64; OTHER_RCODE + 1]; OTHER_QTYPE + 1]; 2],
    latency: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_sum_ns: AtomicU64,
    truncated: AtomicU64,
    dropped: AtomicU64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            queries: std::array::from_fn(|_| std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0)))),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

impl Shard {
    /// Counts one answered query that took `nanos` to process.
    pub fn record(&self, proto: Proto, a: &Answered, nanos: u64) {
        let qt = a.qtype.map_or(OTHER_QTYPE, qtype_index);
        let rc = RCODES.iter().position(|&r| r == a.rcode).unwrap_or(OTHER_RCODE);
        self.queries[proto as usize][qt][rc].fetch_add(1, Relaxed);
        let secs = nanos as f64 * 1e-9;
        let bucket = LATENCY_BOUNDS.iter().position(|&b| secs <= b).unwrap_or(LATENCY_BOUNDS.len());
        self.latency[bucket].fetch_add(1, Relaxed);
        self.latency_sum_ns.fetch_add(nanos, Relaxed);
        if a.truncated {
            self.truncated.fetch_add(1, Relaxed);
        }
    }

    /// Counts a message that got no reply (not a query).
    pub fn record_dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }
}

fn qtype_index(t: Rtype) -> usize {
    QTYPES.iter().position(|&(v, _)| v == t.0).unwrap_or(OTHER_QTYPE)
}

/// All shards.
pub struct Metrics {
    shards: Vec<Shard>,
    /// IXFR responses by kind (see [`IxfrKind`]); rare, so not sharded.
    ixfr: [AtomicU64; 3],
}

/// How an IXFR was answered (RFC 1995).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IxfrKind {
    /// The client is current: the SOA alone.
    Current = 0,
    /// The changes since the client's serial.
    Incremental = 1,
    /// The whole zone, in AXFR form.
    Full = 2,
}
const IXFR_KINDS: [&str; 3] = ["current", "incremental", "full"];

impl Metrics {
    /// `n` shards (one per UDP worker plus one for TCP).
    pub fn new(n: usize) -> Self {
        Metrics { shards: (0..n.max(1)).map(|_| Shard::default()).collect(), ixfr: Default::default() }
    }

    /// Counts one IXFR response.
    pub fn record_ixfr(&self, kind: IxfrKind) {
        self.ixfr[kind as usize].fetch_add(1, Relaxed);
    }

    /// Shard `i` (wraps around).
    pub fn shard(&self, i: usize) -> &Shard {
        &self.shards[i % self.shards.len()]
    }

    /// Total queries answered, all shards.
    pub fn total_queries(&self) -> u64 {
        self.shards.iter().flat_map(|s| s.queries.iter().flatten().flatten()).map(|c| c.load(Relaxed)).sum()
    }

    /// Appends the Prometheus text exposition of the data-plane counters.
    pub fn render(&self, out: &mut String) {
        let sum = |f: &dyn Fn(&Shard) -> u64| self.shards.iter().map(f).sum::<u64>();
        out.push_str(
            "# HELP meshdns_queries_total DNS queries answered, by transport, query type and response code.\n",
        );
        out.push_str("# TYPE meshdns_queries_total counter\n");
        for (p, pname) in PROTOS.iter().enumerate() {
            for qt in 0..=OTHER_QTYPE {
                for rc in 0..=OTHER_RCODE {
                    let v = sum(&|s| s.queries[p][qt][rc].load(Relaxed));
                    if v == 0 {
                        continue;
                    }
                    let qname = QTYPES.get(qt).map_or("other", |q| q.1);
                    let rname = RCODES.get(rc).map_or("other", |r| r.label());
                    let _ = writeln!(
                        out,
                        "meshdns_queries_total{{proto=\"{pname}\",qtype=\"{qname}\",rcode=\"{rname}\"}} {v}"
                    );
                }
            }
        }
        out.push_str("# HELP meshdns_ixfr_responses_total IXFR responses, by kind: current (SOA only), incremental, full zone.\n");
        out.push_str("# TYPE meshdns_ixfr_responses_total counter\n");
        for (kind, label) in IXFR_KINDS.iter().enumerate() {
            let _ = writeln!(out, "meshdns_ixfr_responses_total{{kind=\"{label}\"}} {}", self.ixfr[kind].load(Relaxed));
        }
        out.push_str("# HELP meshdns_query_duration_seconds Time from receiving a query to having its answer ready.\n");
        out.push_str("# TYPE meshdns_query_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
            cumulative += sum(&|s| s.latency[i].load(Relaxed));
            let _ = writeln!(out, "meshdns_query_duration_seconds_bucket{{le=\"{bound:e}\"}} {cumulative}");
        }
        cumulative += sum(&|s| s.latency[LATENCY_BOUNDS.len()].load(Relaxed));
        let _ = writeln!(out, "meshdns_query_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            out,
            "meshdns_query_duration_seconds_sum {}",
            sum(&|s| s.latency_sum_ns.load(Relaxed)) as f64 * 1e-9
        );
        let _ = writeln!(out, "meshdns_query_duration_seconds_count {cumulative}");
        out.push_str("# HELP meshdns_responses_truncated_total Responses sent with TC set.\n# TYPE meshdns_responses_truncated_total counter\n");
        let _ = writeln!(out, "meshdns_responses_truncated_total {}", sum(&|s| s.truncated.load(Relaxed)));
        out.push_str("# HELP meshdns_messages_dropped_total Messages that were not queries and got no reply.\n# TYPE meshdns_messages_dropped_total counter\n");
        let _ = writeln!(out, "meshdns_messages_dropped_total {}", sum(&|s| s.dropped.load(Relaxed)));
    }
}
