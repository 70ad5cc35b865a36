//! Iterative resolution from the root hints (RFC 1034 §5.3.3), as a
//! sans-IO state machine.
//!
//! A [`Recursor`] holds what all resolutions share: the settings, the
//! root hints, the trust anchors, the RRset cache and the infrastructure
//! cache of server RTTs, EDNS support and lameness. [`Recursor::start`]
//! begins a [`Resolution`] for one client question; the driver then loops:
//!
//! 1. [`Resolution::poll`] → [`Step::Send`](crate::Step::Send): send each [`crate::Outgoing`]
//!    (writing a random ID into it), [`Step::Wait`](crate::Step::Wait): wait for replies
//!    already asked for, [`Step::Done`](crate::Step::Done): answer the client;
//! 2. [`Resolution::on_reply`] with each reply or timeout, then poll again.
//!
//! Inside, a resolution is a stack of lookups: the client's question at
//! the bottom, and above it the lookups it depends on — the addresses of
//! a name server given without glue (RFC 1034 §5.3.3 step 3: "a parallel
//! query for the address of a name server"). Only the top lookup runs;
//! one query is in flight at a time. Work is bounded per client question:
//! upstream queries ([`RecursiveConfig::max_upstream_queries`]), NS names
//! resolved per referral ([`RecursiveConfig::max_ns_fanout`], the
//! NXNSAttack bound), nesting of glueless lookups
//! ([`RecursiveConfig::max_depth`]) and CNAME/DNAME chain length
//! ([`RecursiveConfig::max_cname_chain`]).
//!
//! Choices (each explained where it is made): QNAME minimisation asks
//! QTYPE A, takes NXDOMAIN for a minimised name as final (RFC 8020) and
//! falls back to the full name on REFUSED/SERVFAIL/NOTIMP/FORMERR
//! (`minimise`); glue is used only for the referral's NS names
//! and inside the referring server's zone, sibling glue included
//! (`classify`); a malformed reply counts as a timeout (`resolution`);
//! referral data (rank Authority/Additional) finds servers but never
//! answers a client, except a referral's DS for the validator (`frame`).
//!
//! With trust anchors and validation on, every upstream query has DO
//! set, and the client's answer is validated once resolved (`validate`):
//! the DS and DNSKEY RRsets it needs are looked up as further lookups on
//! the same stack, so they share the cache and the work bound.
//!
//! The trust anchors may change while it runs ([`Recursor::set_anchors`],
//! fed by RFC 5011 updates): each resolution takes the anchors current
//! when it starts and keeps them to its end. When a change withdraws
//! trust in a zone (a key revoked or removed), the cache is flushed at
//! and below that zone, so a DNSKEY RRset once validated with the old
//! key — and everything validated through it — is checked again rather
//! than trusted until its TTL runs out; a resolution that started under
//! the old anchors does not mark anything Secure in the cache after the
//! change. Anchors that only add trust (a new key, or a DS anchor
//! replaced by the key it matches) leave the cache alone.
//!
//! Validated NSEC/NSEC3 records are also indexed per zone and answer for every
//! name they cover (RFC 8198, `aggressive`): for clients that did not set
//! CD, only with Secure data; [`Recursor::aggressive_hits`] counts them.
//!
//! Not done: priming the root NS set (RFC 8109; the hints are used as
//! they are), 0x20 case randomisation (it needs randomness: a driver
//! concern), parallel queries to several servers, and serve-stale.

mod aggressive;
mod classify;
mod delegation;
mod frame;
mod hints;
mod infra;
mod minimise;
mod resolution;
mod rrset;
mod store;
mod validate;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use crate::dnssec::TrustAnchors;
pub use hints::{HintsError, RootHints};
pub use infra::InfraCache;
pub use resolution::Resolution;

use crate::cache::Cache;
use crate::types::{Millis, Question};
use hickory_proto::rr::Name;

/// Settings of the iterative resolver.
#[derive(Clone, Debug)]
pub struct RecursiveConfig {
    /// Where iteration starts when the cache knows no closer zone cut.
    pub hints: RootHints,
    /// Send queries to loopback and unspecified addresses (off by
    /// default, as Unbound's `do-not-query-localhost: yes`); labs on
    /// 127.0.0.0/8 turn it on.
    pub query_loopback: bool,
    /// QNAME minimisation (RFC 9156), relaxed (see the `minimise` notes
    /// in [`Resolution`]'s docs).
    pub qname_minimisation: bool,
    /// Upstream queries one client question may cause, sub-lookups
    /// included; past it the answer is SERVFAIL with EDE 0 (Other).
    pub max_upstream_queries: u32,
    /// NS names without glue resolved per referral (NXNSAttack bound).
    pub max_ns_fanout: u32,
    /// Nesting of glueless NS lookups (a lookup for the address of a
    /// server of a zone whose servers need a lookup, …).
    pub max_depth: u32,
    /// CNAME and DNAME records followed for one question.
    pub max_cname_chain: u32,
    /// Upper bound on the wait for one reply (ms); the infrastructure
    /// cache's RTO is used below it.
    pub timeout_ms: u64,
    /// EDNS payload size advertised upstream (RFC 6891; 1232 per DNS
    /// Flag Day 2020).
    pub edns_payload: u16,
    /// Validate DNSSEC when trust anchors are given.
    pub validate: bool,
}

impl Default for RecursiveConfig {
    fn default() -> Self {
        RecursiveConfig {
            hints: RootHints::builtin(),
            query_loopback: false,
            qname_minimisation: true,
            max_upstream_queries: 64,
            max_ns_fanout: 5,
            max_depth: 4,
            max_cname_chain: 12,
            timeout_ms: 3_000,
            edns_payload: 1232,
            validate: true,
        }
    }
}

/// What every resolution shares (see the module docs). `Send + Sync`.
pub struct Recursor {
    cfg: RecursiveConfig,
    cache: Arc<Cache>,
    /// Read once per resolution start; replaced by [`Self::set_anchors`].
    anchors: RwLock<Option<Arc<TrustAnchors>>>,
    /// Bumped by every [`Self::set_anchors`] that withdraws trust.
    anchor_generation: AtomicU64,
    infra: InfraCache,
    /// Stand-in for randomness in server selection: a counter mixed into
    /// each choice so that servers of equal speed take turns.
    picks: AtomicU64,
    /// Validated NSEC/NSEC3 records for aggressive negative answers (RFC 8198).
    aggressive: aggressive::AggressiveNsec,
}

impl Recursor {
    /// A recursor over `cache`; `anchors` `None` turns validation off.
    pub fn new(cfg: RecursiveConfig, cache: Arc<Cache>, anchors: Option<TrustAnchors>) -> Self {
        Recursor {
            cfg,
            cache,
            anchors: RwLock::new(anchors.map(Arc::new)),
            anchor_generation: AtomicU64::new(0),
            infra: InfraCache::default(),
            picks: AtomicU64::new(0),
            aggressive: aggressive::AggressiveNsec::default(),
        }
    }

    /// The trust anchors now (`None`: validation off).
    pub fn anchors(&self) -> Option<Arc<TrustAnchors>> {
        // A poisoned lock still holds a whole value (it is only ever
        // replaced): use it.
        self.anchors.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the trust anchors (RFC 5011 updates). Resolutions already
    /// running keep the anchors they started with. Zones where trust is
    /// withdrawn ([`TrustAnchors::withdrawn`]) are flushed from the cache,
    /// so nothing validated with a withdrawn key stays Secure; returns
    /// those zones.
    pub fn set_anchors(&self, anchors: TrustAnchors) -> Vec<Name> {
        let mut slot = self.anchors.write().unwrap_or_else(|e| e.into_inner());
        let withdrawn = slot.as_ref().map(|old| old.withdrawn(&anchors)).unwrap_or_default();
        if !withdrawn.is_empty() {
            // Bumped before the flush: a resolution that started under
            // the old anchors then cannot put its marks back after it.
            self.anchor_generation.fetch_add(1, Ordering::SeqCst);
            for zone in &withdrawn {
                self.cache.flush(Some(zone));
            }
            self.aggressive.clear();
        }
        *slot = Some(Arc::new(anchors));
        withdrawn
    }

    fn anchor_generation(&self) -> u64 {
        self.anchor_generation.load(Ordering::SeqCst)
    }

    /// Starts resolving `q` for a client that set DO (`dnssec_ok`) and CD
    /// (`checking_disabled`) as given.
    pub fn start(self: &Arc<Self>, q: Question, dnssec_ok: bool, checking_disabled: bool, now: Millis) -> Resolution {
        Resolution::new(self.clone(), q, dnssec_ok, checking_disabled, now)
    }

    /// The settings.
    pub fn config(&self) -> &RecursiveConfig {
        &self.cfg
    }

    /// The shared RRset cache.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// The infrastructure cache (server RTTs, EDNS, lameness).
    pub fn infra(&self) -> &InfraCache {
        &self.infra
    }

    /// Whether answers are validated: anchors given and validation on.
    pub fn validating(&self) -> bool {
        self.cfg.validate && self.anchors().is_some()
    }

    /// Answers synthesised from validated NSEC records (RFC 8198
    /// aggressive use of the DNSSEC-validated cache): NXDOMAIN or NODATA
    /// given with no upstream query, since this recursor was made.
    pub fn aggressive_hits(&self) -> u64 {
        self.aggressive.hits()
    }

    /// Validated NSEC and NSEC3 records held for aggressive negative answers.
    pub fn aggressive_entries(&self) -> usize {
        self.aggressive.len()
    }

    fn next_pick(&self) -> u64 {
        self.picks.fetch_add(1, Ordering::Relaxed)
    }
}
