//! [`ResolverService`]: the cache, the in-flight table and the engine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshdns_resolver::cache::disk::DiskCache;
use meshdns_resolver::cache::sketch::HotSketch;
use meshdns_resolver::cache::{AnswerKey, AnswerLookup, Cache, L1Key, WorkerCache};
use meshdns_resolver::dnssec::TrustAnchors;
use meshdns_resolver::forward::{ForwardConfig, Forwarder};
use meshdns_resolver::recursive::{RecursiveConfig, Recursor, RootHints};
use meshdns_resolver::response::{self, ClientQuery, Template};
use meshdns_resolver::{Ede, Millis, Resolved};

use super::drive::{drive, now_ms};
use super::exchange::ExchangeStats;
use crate::config::resolver::{ResolverMode, ResolverSettings};
use crate::replicated::writer::Reply;

/// Longest a resolution may take before the client gets SERVFAIL.
pub(super) const RESOLUTION_DEADLINE: Duration = Duration::from_secs(10);
/// RFC 8767 §5: the client-response timer. With stale data at hand, a
/// client waits no longer than this for a fresh answer.
const CLIENT_RESPONSE_TIMER: Duration = Duration::from_millis(1_800);
/// Questions resolved at once, at most. Past it new questions get
/// SERVFAIL at once: a flood of random names (water torture) fills the
/// table, not the memory, and names already cached still answer.
const MAX_IN_FLIGHT: usize = 10_000;
/// Questions the hot-name sketch counts.
const HOT_NAMES: usize = 512;
/// One cache hit in this many (per worker) is counted in the sketch.
const HOT_SAMPLE: u64 = 64;

/// Clients waiting on one question, at most (the rest get SERVFAIL).
const MAX_WAITERS: usize = 1_000;

/// Counters for `/metrics` and `meshdns cache stats`.
#[derive(Default, Debug)]
pub struct ResolverStats {
    /// Answered from the cache.
    pub cache_hits: AtomicU64,
    /// Not in the cache (or stale): resolved.
    pub cache_misses: AtomicU64,
    /// Resolutions started.
    pub resolutions: AtomicU64,
    /// Queries that joined a resolution already running.
    pub coalesced: AtomicU64,
    /// Resolutions that ended in SERVFAIL.
    pub servfail: AtomicU64,
    /// Stale answers served (RFC 8767).
    pub stale_served: AtomicU64,
    /// Questions refused because too many were in flight.
    pub overloaded: AtomicU64,
    /// Queries for names outside our zones from clients not allowed to recurse.
    pub refused: AtomicU64,
    /// Prefetches started.
    pub prefetches: AtomicU64,
    /// Answers found in the warm-start file (L3).
    pub disk_hits: AtomicU64,
    /// Names resolved ahead of clients from peers' hot-name sketches.
    pub warmed: AtomicU64,
}

/// A client waiting for a resolution.
struct Waiter {
    id: u16,
    recursion_desired: bool,
    checking_disabled: bool,
    wants_ad: bool,
    edns: bool,
    qname_wire: Vec<u8>,
    limit: usize,
    reply: Reply,
}

impl Waiter {
    fn client(&self) -> ClientQuery<'_> {
        ClientQuery {
            id: self.id,
            recursion_desired: self.recursion_desired,
            checking_disabled: self.checking_disabled,
            wants_ad: self.wants_ad,
            edns: self.edns,
            qname_wire: &self.qname_wire,
            limit: self.limit,
        }
    }

    fn answer(self, t: &Template, now: Millis, stale_ttl: Option<u32>) {
        let mut buf = vec![0u8; self.limit.max(512)];
        match t.write(&mut buf, &self.client(), now, stale_ttl) {
            Some(n) => {
                buf.truncate(n);
                self.reply.send(buf);
            }
            None => tracing::debug!("a resolved answer did not fit its question (a bug); not sent"),
        }
    }
}

enum Engine {
    Forward(Arc<Forwarder>),
    Recursive(Arc<Recursor>),
}

/// The resolver of one node (see the module docs of [`super`]).
pub struct ResolverService {
    settings: ResolverSettings,
    cache: Arc<Cache>,
    engine: Engine,
    runtime: tokio::runtime::Handle,
    in_flight: Mutex<HashMap<AnswerKey, Vec<Waiter>>>,
    /// Questions still being resolved whose clients already got stale
    /// data (the RFC 8767 client-response timer fired): a client asking
    /// one now gets the stale answer at once instead of joining the wait.
    stale_now: Mutex<HashMap<AnswerKey, Arc<Template>>>,
    /// Counters.
    pub stats: ResolverStats,
    /// Upstream exchange counters.
    pub exchanges: Arc<ExchangeStats>,
    /// Reused TCP connections to servers.
    pub tcp_pool: Arc<super::tcp_pool::TcpPool>,
    /// The warm-start file of the previous run, memory-mapped (L3).
    disk: Option<DiskCache>,
    /// The hottest questions, for warming peers (see `warming`).
    hot: Mutex<HotSketch>,
    /// The RFC 5011 state, until `anchors::run` takes it.
    anchor_state: Mutex<Option<super::anchors::Tracked>>,
}

impl ResolverService {
    /// The service for `settings`, resolving on `runtime`. `None` when the
    /// resolver is off.
    pub fn new(settings: &ResolverSettings, runtime: tokio::runtime::Handle) -> anyhow::Result<Option<Arc<Self>>> {
        let cache = Arc::new(Cache::new(settings.cache.clone()));
        let mut anchor_state = None;
        let engine = match settings.mode {
            ResolverMode::Off => return Ok(None),
            ResolverMode::Forward => Engine::Forward(Arc::new(Forwarder::new(ForwardConfig {
                upstreams: settings.forward.clone(),
                domains: settings.forward_zones.clone(),
                strategy: settings.strategy,
                timeout_ms: settings.timeout_ms,
                ..ForwardConfig::default()
            }))),
            ResolverMode::Recursive => {
                let (rec, tracked) = recursor(settings, cache.clone())?;
                anchor_state = tracked;
                Engine::Recursive(Arc::new(rec))
            }
        };
        if settings.is_open() {
            tracing::warn!(
                allow = ?settings.recursion_allow,
                "recursion.allow lets the whole internet recurse: this is an open resolver, \
                 usable for amplification attacks; list your clients' networks instead"
            );
        }
        Ok(Some(Arc::new(ResolverService {
            settings: settings.clone(),
            cache,
            engine,
            runtime,
            in_flight: Mutex::new(HashMap::new()),
            stale_now: Mutex::new(HashMap::new()),
            stats: ResolverStats::default(),
            exchanges: Arc::new(ExchangeStats::default()),
            tcp_pool: Arc::new(super::tcp_pool::TcpPool::default()),
            disk: open_disk_cache(settings),
            hot: Mutex::new(HotSketch::new(HOT_NAMES)),
            anchor_state: Mutex::new(anchor_state),
        })))
    }

    /// The iterative resolver, in recursive mode.
    pub fn recursor(&self) -> Option<&Arc<Recursor>> {
        match &self.engine {
            Engine::Recursive(r) => Some(r),
            Engine::Forward(_) => None,
        }
    }

    /// The RFC 5011 state to track, once (for `anchors::run`).
    pub(super) fn take_anchor_state(&self) -> Option<super::anchors::Tracked> {
        self.anchor_state.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The settings.
    pub fn settings(&self) -> &ResolverSettings {
        &self.settings
    }

    /// The shared cache.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// Answers from the cache into `out`, if the answer is there and
    /// live: from `l1` (the worker's own: no lock, no allocation), else
    /// the shared L2 (promoted into `l1`), else the warm-start file (L3,
    /// promoted into L2). A hit in the last tenth of its TTL may start a
    /// prefetch.
    pub fn from_cache(
        self: &Arc<Self>,
        key: &L1Key,
        client: &ClientQuery<'_>,
        out: &mut [u8],
        now: Millis,
        l1: Option<&mut WorkerCache>,
    ) -> Option<usize> {
        let mut l1 = l1;
        if let Some(l1) = l1.as_deref_mut() {
            l1.sync(self.cache.generation());
            if let Some(t) = l1.get(key, now) {
                let len = t.write(out, client, now, None)?;
                let near_end = near_end(t, now);
                self.stats.cache_hits.fetch_add(1, Relaxed);
                if near_end {
                    self.maybe_prefetch(key, now);
                }
                if l1.hits.is_multiple_of(HOT_SAMPLE) {
                    self.observe(key);
                }
                return Some(len);
            }
        }
        let t = match self.cache.answer_l1(key, now) {
            AnswerLookup::Fresh(t) => t,
            _ => {
                let t = Arc::new(self.disk.as_ref()?.get(key, now)?);
                if let Some(k) = key.to_answer_key() {
                    self.cache.insert_answer(k, t.clone());
                }
                self.stats.disk_hits.fetch_add(1, Relaxed);
                t
            }
        };
        let len = t.write(out, client, now, None)?;
        self.stats.cache_hits.fetch_add(1, Relaxed);
        if near_end(&t, now) {
            self.maybe_prefetch(key, now);
        }
        if let Some(l1) = l1 {
            l1.insert(key, t);
        }
        Some(len)
    }

    /// Starts a background refresh of `key` if the cache says it is due
    /// (once per stored answer, see `Cache::should_prefetch`).
    fn maybe_prefetch(self: &Arc<Self>, key: &L1Key, now: Millis) {
        if !self.settings.prefetch || !self.cache.should_prefetch_l1(key, now) {
            return;
        }
        let Some(key) = key.to_answer_key() else { return };
        let mut table = self.in_flight();
        if table.contains_key(&key) || table.len() >= MAX_IN_FLIGHT {
            return;
        }
        table.insert(key.clone(), Vec::new());
        drop(table);
        self.stats.prefetches.fetch_add(1, Relaxed);
        let me = self.clone();
        self.runtime.spawn(async move { me.resolve(key, None).await });
    }

    /// Removes `name` and everything below it from the cache (everything
    /// for `None`); how many entries went.
    pub fn flush(&self, name: Option<&str>) -> Result<usize, String> {
        let name = match name {
            Some(n) => {
                let mut parsed = <meshdns_resolver::proto::Name as std::str::FromStr>::from_str(n)
                    .map_err(|e| format!("{n:?} is not a domain name: {e}"))?
                    .to_lowercase();
                parsed.set_fqdn(true);
                Some(parsed)
            }
            None => None,
        };
        let n = self.cache.flush(name.as_ref());
        tracing::info!(name = ?name.map(|n| n.to_string()), entries = n, "cache flushed");
        Ok(n)
    }

    /// `meshdns cache dump`: one line per entry.
    pub fn dump_text(&self) -> String {
        let mut out = String::new();
        for line in self.cache.dump(now_ms()) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    fn lock_hot(&self) -> std::sync::MutexGuard<'_, HotSketch> {
        self.hot.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn observe(&self, key: &L1Key) {
        if let Some(k) = key.to_answer_key() {
            self.lock_hot().observe(&k.question);
        }
    }

    /// The sketch's head, encoded in at most `max_bytes`; `decay` halves
    /// the counts first, so old favourites fade.
    pub fn hot_sketch(&self, max_bytes: usize, decay: bool) -> Vec<u8> {
        let mut hot = self.lock_hot();
        if decay {
            hot.decay();
        }
        hot.encode_within(max_bytes)
    }

    /// Resolves `questions` into the cache (no client waits), at most
    /// `concurrency` at a time; names already cached are skipped.
    pub async fn warm(self: &Arc<Self>, questions: Vec<meshdns_resolver::Question>, concurrency: usize) {
        let mut running = tokio::task::JoinSet::new();
        for q in questions {
            // Only what a client could have had resolved: class IN, data types.
            if q.qclass != meshdns_resolver::proto::DNSClass::IN
                || matches!(
                    q.qtype,
                    meshdns_resolver::proto::RecordType::ANY
                        | meshdns_resolver::proto::RecordType::AXFR
                        | meshdns_resolver::proto::RecordType::IXFR
                        | meshdns_resolver::proto::RecordType::OPT
                )
            {
                continue;
            }
            let key = AnswerKey { question: q, dnssec_ok: false, checking_disabled: false };
            if matches!(self.cache.answer(&key, now_ms()), AnswerLookup::Fresh(_)) {
                continue;
            }
            {
                let mut table = self.in_flight();
                if table.contains_key(&key) || table.len() >= MAX_IN_FLIGHT {
                    continue;
                }
                table.insert(key.clone(), Vec::new());
            }
            self.stats.warmed.fetch_add(1, Relaxed);
            let me = self.clone();
            running.spawn(async move { me.resolve(key, None).await });
            while running.len() >= concurrency.max(1) {
                let _ = running.join_next().await;
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Questions being resolved now.
    pub fn in_flight_len(&self) -> usize {
        self.in_flight().len()
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<AnswerKey, Vec<Waiter>>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves `key` for `client` and answers through `reply`.
    pub fn submit(self: &Arc<Self>, key: &L1Key, client: &ClientQuery<'_>, reply: Reply, now: Millis) {
        self.stats.cache_misses.fetch_add(1, Relaxed);
        let Some(key) = key.to_answer_key() else { return };
        self.lock_hot().observe(&key.question);
        let waiter = Waiter {
            id: client.id,
            recursion_desired: client.recursion_desired,
            checking_disabled: client.checking_disabled,
            wants_ad: client.wants_ad,
            edns: client.edns,
            qname_wire: client.qname_wire.to_vec(),
            limit: client.limit,
            reply,
        };
        let stale_now = self.lock_stale_now().get(&key).cloned();
        if let Some(t) = stale_now {
            self.stats.stale_served.fetch_add(1, Relaxed);
            return waiter.answer(&t, now, Some(self.cache.config().stale_answer_ttl));
        }
        let mut table = self.in_flight();
        if let Some(waiting) = table.get_mut(&key) {
            if waiting.len() < MAX_WAITERS {
                self.stats.coalesced.fetch_add(1, Relaxed);
                waiting.push(waiter);
                return;
            }
            drop(table);
            return self.overloaded(&key, waiter, now);
        }
        if table.len() >= MAX_IN_FLIGHT {
            drop(table);
            return self.overloaded(&key, waiter, now);
        }
        table.insert(key.clone(), vec![waiter]);
        drop(table);
        self.stats.resolutions.fetch_add(1, Relaxed);
        let stale = match self.cache.answer(&key, now) {
            AnswerLookup::Stale(t) => Some(t),
            _ => None,
        };
        let me = self.clone();
        self.runtime.spawn(async move { me.resolve(key, stale).await });
    }

    fn overloaded(&self, key: &AnswerKey, w: Waiter, now: Millis) {
        self.stats.overloaded.fetch_add(1, Relaxed);
        let why = Ede::new(Ede::NOT_SUPPORTED, "resolver overloaded: too many questions in flight");
        if let Ok(t) = response::build(&key.question, &Resolved::servfail(Some(why)), key.dnssec_ok, now) {
            w.answer(&t, now, None);
        }
    }

    /// Resolves `key` and answers its waiters. A guard makes sure the
    /// question leaves the in-flight table even if the resolution panics
    /// or its task is aborted: its waiters then get SERVFAIL, and the next
    /// client starts a new resolution instead of joining a dead one.
    async fn resolve(self: Arc<Self>, key: AnswerKey, stale: Option<Arc<Template>>) {
        let mut guard = InFlightGuard { svc: self.clone(), key: Some(key.clone()) };
        self.clone().resolve_inner(key.clone(), stale).await;
        guard.key = None;
        self.lock_stale_now().remove(&key);
    }

    async fn resolve_inner(self: Arc<Self>, key: AnswerKey, stale: Option<Arc<Template>>) {
        let run = self.run(&key);
        tokio::pin!(run);
        let resolved = tokio::select! {
            r = &mut run => r,
            _ = tokio::time::sleep(CLIENT_RESPONSE_TIMER) => {
                // Answer who is waiting with the stale data, if there is
                // some by now (a prefetch can outlive the data it
                // refreshes); the resolution goes on and refreshes the cache.
                let held = stale.clone().or_else(|| match self.cache.answer(&key, now_ms()) {
                    AnswerLookup::Stale(t) if t.rcode() != 2 => Some(t),
                    _ => None,
                });
                if let Some(t) = &held {
                    self.answer_stale(&key, t);
                }
                run.await
            }
        };
        let now = now_ms();
        if resolved.rcode == meshdns_resolver::proto::ResponseCode::ServFail {
            self.stats.servfail.fetch_add(1, Relaxed);
            if let Some(t) = &stale {
                // RFC 8767 §4: resolution failed, so the stale data is served.
                self.answer_stale(&key, t);
                self.in_flight().remove(&key);
                return;
            }
            // A failed refresh (prefetch, warming) must not replace good
            // data: what the cache holds stays, and anyone waiting gets it.
            let held = match self.cache.answer(&key, now) {
                AnswerLookup::Fresh(t) => Some((t, None)),
                AnswerLookup::Stale(t) => Some((t, Some(self.cache.config().stale_answer_ttl))),
                AnswerLookup::Miss => None,
            };
            if let Some((t, stale_ttl)) = held.filter(|(t, _)| t.rcode() != 2) {
                let waiters = self.in_flight().remove(&key).unwrap_or_default();
                if stale_ttl.is_some() {
                    self.stats.stale_served.fetch_add(waiters.len() as u64, Relaxed);
                }
                for w in waiters {
                    w.answer(&t, now, stale_ttl);
                }
                return;
            }
        }
        let template = match response::build(&key.question, &resolved, key.dnssec_ok, now) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                tracing::warn!(question = %key.question, error = %e, "cannot build the answer; SERVFAIL");
                match response::build(&key.question, &Resolved::servfail(None), key.dnssec_ok, now) {
                    Ok(t) => Arc::new(t),
                    Err(_) => return drop(self.in_flight().remove(&key)),
                }
            }
        };
        if template.ttl > 0 {
            self.cache.insert_answer(key.clone(), template.clone());
        }
        let waiters = self.in_flight().remove(&key).unwrap_or_default();
        for w in waiters {
            w.answer(&template, now, None);
        }
    }

    fn lock_stale_now(&self) -> std::sync::MutexGuard<'_, HashMap<AnswerKey, Arc<Template>>> {
        self.stale_now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn answer_stale(&self, key: &AnswerKey, t: &Arc<Template>) {
        self.lock_stale_now().insert(key.clone(), t.clone());
        let waiters = std::mem::take(self.in_flight().get_mut(key).map_or(&mut Vec::new(), |w| w));
        let now = now_ms();
        let ttl = self.cache.config().stale_answer_ttl;
        for w in waiters {
            self.stats.stale_served.fetch_add(1, Relaxed);
            w.answer(t, now, Some(ttl));
        }
    }

    async fn run(&self, key: &AnswerKey) -> Resolved {
        let now = now_ms();
        let q = key.question.clone();
        match &self.engine {
            Engine::Forward(f) => {
                let m = f.start(q, key.dnssec_ok, key.checking_disabled, now);
                drive(m, self.exchanges.clone(), self.tcp_pool.clone(), RESOLUTION_DEADLINE).await
            }
            Engine::Recursive(r) => {
                let m = r.start(q, key.dnssec_ok, key.checking_disabled, now);
                drive(m, self.exchanges.clone(), self.tcp_pool.clone(), RESOLUTION_DEADLINE).await
            }
        }
    }
}

/// The L3 file, if there is one and it is sound. A file that fails its
/// checks is removed, never served (`cache::disk`).
fn open_disk_cache(settings: &ResolverSettings) -> Option<DiskCache> {
    let path = settings.cache_file.as_ref()?;
    if !path.exists() {
        return None;
    }
    match DiskCache::open(path, now_ms(), settings.cache_file_bytes) {
        Ok(d) => {
            tracing::info!(file = %path.display(), answers = d.len(), "warm start: answering from the cache file of the last run");
            Some(d)
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "discarding the cache file (it is not served)");
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

impl ResolverService {
    /// Writes the live answers to the L3 file (temp file, fsync, rename),
    /// hottest first, within `cache_file_bytes`.
    pub fn save_cache(&self) {
        let Some(path) = &self.settings.cache_file else { return };
        let now = now_ms();
        let entries = self.cache.answers_for_disk(now);
        match meshdns_resolver::cache::disk::save(
            path,
            entries.iter().map(|(k, t)| (k, t.as_ref())),
            now,
            self.settings.cache_file_bytes,
        ) {
            Ok(saved) => tracing::debug!(file = %path.display(), ?saved, "cache file written"),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot write the cache file; the next start is cold")
            }
        }
    }
}

/// The iterative resolver for `settings`: root hints and trust anchors
/// from their files, or the built-in ones — the tracked zone's anchors
/// from the RFC 5011 state file when there is one (`anchors`).
fn recursor(
    settings: &ResolverSettings,
    cache: Arc<Cache>,
) -> anyhow::Result<(Recursor, Option<super::anchors::Tracked>)> {
    use anyhow::Context;
    let hints = match &settings.root_hints {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the root hints {} (--root-hints)", path.display()))?;
            RootHints::parse(&text).with_context(|| format!("root hints {}", path.display()))?
        }
        None => RootHints::builtin(),
    };
    let anchors = if !settings.validate {
        tracing::warn!("DNSSEC validation is off ([resolver] validate = false)");
        None
    } else {
        Some(match &settings.trust_anchor {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the trust anchors {} (--trust-anchor)", path.display()))?;
                TrustAnchors::parse(&text).with_context(|| format!("trust anchors {}", path.display()))?
            }
            None => TrustAnchors::builtin_root(),
        })
    };
    let (anchors, tracked) = match anchors {
        Some(configured) => {
            let s = super::anchors::startup(&settings.anchor_state_file, configured, now_ms() / 1000);
            (Some(s.anchors), s.tracked)
        }
        None => (None, None),
    };
    let cfg = RecursiveConfig {
        hints,
        query_loopback: settings.query_loopback,
        qname_minimisation: settings.qname_minimisation,
        timeout_ms: settings.timeout_ms,
        validate: anchors.is_some(),
        ..RecursiveConfig::default()
    };
    Ok((Recursor::new(cfg, cache, anchors), tracked))
}

/// In the last tenth of its lifetime (to the millisecond): a hit now may
/// start a prefetch.
fn near_end(t: &Template, now: Millis) -> bool {
    let life = u64::from(t.ttl) * 1000;
    let end = t.stored_ms.saturating_add(life);
    now < end && (end - now) * 10 < life
}

/// Clears an in-flight entry whose resolution ended abnormally (see
/// [`ResolverService::resolve`]).
struct InFlightGuard {
    svc: Arc<ResolverService>,
    key: Option<AnswerKey>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        self.svc.lock_stale_now().remove(&key);
        let waiters = self.svc.in_flight().remove(&key).unwrap_or_default();
        tracing::error!(question = %key.question, "a resolution ended abnormally (a bug); its clients get SERVFAIL");
        let now = now_ms();
        let why = Ede::new(0, "internal error while resolving");
        if let Ok(t) = response::build(&key.question, &Resolved::servfail(Some(why)), key.dnssec_ok, now) {
            for w in waiters {
                w.answer(&t, now, None);
            }
        }
    }
}
