//! The resolver's part of `/metrics` and of `meshdns cache stats`.

use std::sync::atomic::Ordering::Relaxed;

use crate::exposition::{Exposition, Kind};

use super::ResolverService;

impl ResolverService {
    /// Adds the resolver's families to `/metrics`.
    pub fn render_metrics(&self, out: &mut Exposition) {
        let (s, x) = (&self.stats, &self.exchanges);
        let counters = [
            (
                "meshdns_resolver_warmed_total",
                "Names resolved ahead of clients from peers' hot-name sketches.",
                s.warmed.load(Relaxed),
            ),
            (
                "meshdns_resolver_cache_disk_hits_total",
                "Answers found in the warm-start file (L3).",
                s.disk_hits.load(Relaxed),
            ),
            (
                "meshdns_resolver_cache_hits_total",
                "Recursive queries answered from the cache.",
                s.cache_hits.load(Relaxed),
            ),
            (
                "meshdns_resolver_cache_misses_total",
                "Recursive queries not in the cache.",
                s.cache_misses.load(Relaxed),
            ),
            ("meshdns_resolver_resolutions_total", "Resolutions started.", s.resolutions.load(Relaxed)),
            (
                "meshdns_resolver_coalesced_total",
                "Queries that joined a running resolution.",
                s.coalesced.load(Relaxed),
            ),
            ("meshdns_resolver_servfail_total", "Resolutions that ended in SERVFAIL.", s.servfail.load(Relaxed)),
            ("meshdns_resolver_stale_served_total", "Stale answers served (RFC 8767).", s.stale_served.load(Relaxed)),
            ("meshdns_resolver_overloaded_total", "Queries refused: too many in flight.", s.overloaded.load(Relaxed)),
            (
                "meshdns_resolver_refused_total",
                "Queries for other names from clients outside recursion.allow.",
                s.refused.load(Relaxed),
            ),
            ("meshdns_resolver_prefetches_total", "Prefetches started.", s.prefetches.load(Relaxed)),
            ("meshdns_resolver_upstream_queries_total", "Queries sent to servers.", x.sent.load(Relaxed)),
            ("meshdns_resolver_upstream_tcp_total", "Queries sent over TCP.", x.tcp.load(Relaxed)),
            ("meshdns_resolver_upstream_timeouts_total", "Queries that timed out.", x.timeouts.load(Relaxed)),
            ("meshdns_resolver_upstream_failures_total", "Queries that failed at once.", x.failures.load(Relaxed)),
            (
                "meshdns_resolver_upstream_mismatched_total",
                "Replies ignored: wrong source, ID or question (spoofing defence).",
                x.mismatched.load(Relaxed),
            ),
            (
                "meshdns_resolver_tcp_connections_opened_total",
                "TCP connections opened to servers (each reused and pipelined).",
                self.tcp_pool.opened.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            out.family(name, Kind::Counter, help);
            out.sample(name, &[], v);
        }
        if let Some(r) = self.recursor() {
            out.family(
                "meshdns_resolver_aggressive_nsec_answers_total",
                Kind::Counter,
                "Negative answers made from validated NSEC/NSEC3 records in the cache (RFC 8198), no upstream query.",
            );
            out.sample("meshdns_resolver_aggressive_nsec_answers_total", &[], r.aggressive_hits());
            out.family(
                "meshdns_resolver_aggressive_nsec_records",
                Kind::Gauge,
                "Validated NSEC/NSEC3 records held for RFC 8198.",
            );
            out.sample("meshdns_resolver_aggressive_nsec_records", &[], r.aggressive_entries());
        }
        let c = self.cache().stats();
        out.family("meshdns_resolver_cache_entries", Kind::Gauge, "Entries in the shared cache (L2).");
        out.sample("meshdns_resolver_cache_entries", &[], c.entries);
        out.family("meshdns_resolver_cache_bytes", Kind::Gauge, "Approximate bytes in the shared cache (L2).");
        out.sample("meshdns_resolver_cache_bytes", &[], c.bytes);
        let levels = [
            ("l2_answer", c.answer_hits, c.answer_misses),
            ("l2_rrset", c.rrset_hits, c.rrset_misses),
            ("l2_negative", c.negative_hits, c.negative_misses),
        ];
        out.family("meshdns_resolver_cache_level_hits_total", Kind::Counter, "Hits per cache level and kind.");
        for (level, hits, _) in levels {
            out.sample("meshdns_resolver_cache_level_hits_total", &[("level", level)], hits);
        }
        out.family("meshdns_resolver_cache_level_misses_total", Kind::Counter, "Misses per cache level and kind.");
        for (level, _, misses) in levels {
            out.sample("meshdns_resolver_cache_level_misses_total", &[("level", level)], misses);
        }
        out.family(
            "meshdns_resolver_cache_evictions_total",
            Kind::Counter,
            "Live entries evicted to stay within the byte bound.",
        );
        out.sample("meshdns_resolver_cache_evictions_total", &[], c.evictions);
        out.family("meshdns_resolver_in_flight", Kind::Gauge, "Questions being resolved now.");
        out.sample("meshdns_resolver_in_flight", &[], self.in_flight_len());
    }

    /// `meshdns cache stats` as text.
    pub fn stats_text(&self) -> String {
        let mut out = Exposition::new();
        self.render_metrics(&mut out);
        out.finish()
    }
}
