//! Data-plane counters, kept per worker so the hot path never shares a
//! cache line, summed when Prometheus scrapes `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::dns::auth::Answered;
use crate::dns::iana::{Rcode, Rtype};
use crate::exposition::{Exposition, Kind};
use crate::rrl::{Action, CLASSES, ResponseClass};

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
    /// Limited responses by class and action (dropped, slipped, logged).
    rrl: [[AtomicU64; RRL_ACTIONS.len()]; CLASSES.len()],
    /// Queries dropped by the per-client query limit.
    client_limited: AtomicU64,
    /// Requests refused by an access list, by kind.
    acl_refused: [AtomicU64; ACL_KINDS.len()],
}

/// Action labels of `meshdns_rrl_responses_total`.
const RRL_ACTIONS: [&str; 3] = ["dropped", "slipped", "logged"];
/// Kind labels of `meshdns_acl_refused_total`, in [`crate::acl::AclKind`] order.
const ACL_KINDS: [&str; 5] = ["query", "transfer", "notify", "update", "admin"];

impl Default for Shard {
    fn default() -> Self {
        Shard {
            queries: std::array::from_fn(|_| std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0)))),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rrl: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            client_limited: AtomicU64::new(0),
            acl_refused: std::array::from_fn(|_| AtomicU64::new(0)),
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

    /// Counts a response the rate limiter held back ([`Action::Send`] is
    /// not counted).
    pub fn record_rrl(&self, class: ResponseClass, action: Action) {
        let a = match action {
            Action::Send => return,
            Action::Drop => 0,
            Action::Slip => 1,
            Action::Logged => 2,
        };
        self.rrl[class as usize][a].fetch_add(1, Relaxed);
    }

    /// Counts a query dropped by the per-client query limit.
    pub fn record_client_limited(&self) {
        self.client_limited.fetch_add(1, Relaxed);
    }

    /// Counts a request an access list refused.
    pub fn record_acl_refused(&self, kind: crate::acl::AclKind) {
        self.acl_refused[kind as usize].fetch_add(1, Relaxed);
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

    /// Counts a request an access list refused, outside the data plane
    /// (admin listeners, transfers).
    pub fn record_acl_refused(&self, kind: crate::acl::AclKind) {
        self.shards[self.shards.len() - 1].record_acl_refused(kind);
    }

    /// Adds the data-plane counters to `out`.
    pub fn render(&self, out: &mut Exposition) {
        let sum = |f: &dyn Fn(&Shard) -> u64| self.shards.iter().map(f).sum::<u64>();
        out.family(
            "meshdns_queries_total",
            Kind::Counter,
            "DNS queries answered, by transport, query type and response code.",
        );
        for (p, pname) in PROTOS.iter().enumerate() {
            for qt in 0..=OTHER_QTYPE {
                for rc in 0..=OTHER_RCODE {
                    let v = sum(&|s| s.queries[p][qt][rc].load(Relaxed));
                    if v == 0 {
                        continue;
                    }
                    let qname = QTYPES.get(qt).map_or("other", |q| q.1);
                    let rname = RCODES.get(rc).map_or("other", |r| r.label());
                    out.sample("meshdns_queries_total", &[("proto", pname), ("qtype", qname), ("rcode", rname)], v);
                }
            }
        }
        out.family(
            "meshdns_ixfr_responses_total",
            Kind::Counter,
            "IXFR responses, by kind: current (SOA only), incremental, full zone.",
        );
        for (kind, label) in IXFR_KINDS.iter().enumerate() {
            out.sample("meshdns_ixfr_responses_total", &[("kind", label)], self.ixfr[kind].load(Relaxed));
        }
        out.family(
            "meshdns_query_duration_seconds",
            Kind::Histogram,
            "Time from receiving a query to having its answer ready.",
        );
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
            cumulative += sum(&|s| s.latency[i].load(Relaxed));
            out.sample("meshdns_query_duration_seconds_bucket", &[("le", &format!("{bound:e}"))], cumulative);
        }
        cumulative += sum(&|s| s.latency[LATENCY_BOUNDS.len()].load(Relaxed));
        out.sample("meshdns_query_duration_seconds_bucket", &[("le", "+Inf")], cumulative);
        out.sample("meshdns_query_duration_seconds_sum", &[], sum(&|s| s.latency_sum_ns.load(Relaxed)) as f64 * 1e-9);
        out.sample("meshdns_query_duration_seconds_count", &[], cumulative);
        out.family("meshdns_responses_truncated_total", Kind::Counter, "Responses sent with TC set.");
        out.sample("meshdns_responses_truncated_total", &[], sum(&|s| s.truncated.load(Relaxed)));
        out.family("meshdns_messages_dropped_total", Kind::Counter, "Messages that were not queries and got no reply.");
        out.sample("meshdns_messages_dropped_total", &[], sum(&|s| s.dropped.load(Relaxed)));
        out.family(
            "meshdns_rrl_responses_total",
            Kind::Counter,
            "Responses over the response rate limit, by class and action: dropped, slipped (sent truncated, TC=1) or logged (log-only mode, sent).",
        );
        for (c, class) in CLASSES.iter().enumerate() {
            for (a, action) in RRL_ACTIONS.iter().enumerate() {
                out.sample(
                    "meshdns_rrl_responses_total",
                    &[("class", class), ("action", action)],
                    sum(&|s| s.rrl[c][a].load(Relaxed)),
                );
            }
        }
        out.family(
            "meshdns_client_queries_limited_total",
            Kind::Counter,
            "Queries dropped by the per-client query rate limit (rrl.client_queries_per_second).",
        );
        out.sample("meshdns_client_queries_limited_total", &[], sum(&|s| s.client_limited.load(Relaxed)));
        out.family("meshdns_acl_refused_total", Kind::Counter, "Requests refused by an access list, by kind.");
        for (k, kind) in ACL_KINDS.iter().enumerate() {
            out.sample("meshdns_acl_refused_total", &[("kind", kind)], sum(&|s| s.acl_refused[k].load(Relaxed)));
        }
    }
}
