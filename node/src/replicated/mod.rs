//! Replicated zones on this node: the CRDT replicas of `meshdns-replication`
//! made durable with its journal, written through the admin API, and
//! compiled into snapshots the data plane serves.
//!
//! - A write is journalled (fsynced) first, then applied, then compiled:
//!   it is acknowledged only once on disk, and a write the disk refuses
//!   changes nothing.
//! - The zone list is itself a replica (the *catalog*): a zone exists while
//!   its catalog entry is live. Deleting a zone hides every entry written
//!   before it; creating it again starts from its SOA.
//! - The SOA serial served is the number of writes the node holds for the
//!   zone: it only grows on a node and is equal on nodes holding the same
//!   writes (what a writer puts in the serial field is replaced).
//!
//! Replication between nodes (pushing and pulling deltas over QUIC) builds
//! on [`ReplicatedZones::apply_remote`]; see docs/replication.md.

pub mod files;
pub mod ixfr;
mod overlay;
pub mod sync;
pub mod text;
pub mod update;
pub mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use meshdns_replication::journal::{Journal, JournalError};
use meshdns_replication::wire::{self, Limits, Part};
use meshdns_replication::{Clock, Delta, EntryKey, RRset, Write, ZoneReplica};

use crate::dns::wire::name::{is_subdomain, to_text};
use crate::zone::compile::compile;
use crate::zone::parse::ParsedFile;
use crate::zone::snapshot::Snapshot;

/// The catalog's name in journal frames.
const CATALOG: &str = "";
/// RR type code of a catalog entry (not a real type).
const ZONE_ENTRY: u16 = 0;
/// SOA.
const SOA: u16 = 6;
/// The journal is compacted into a snapshot once its log passes this size.
pub const COMPACT_AFTER_BYTES: u64 = 64 * 1024 * 1024;

/// Why a replicated-zone operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicatedError {
    /// The journal refused (a full disk): nothing was changed.
    #[error("the write was not stored, nothing changed: {0}")]
    Journal(#[from] JournalError),
    /// No such zone.
    #[error("no replicated zone {0} (create it with `meshdns zone create {0}`)")]
    NoZone(String),
    /// The zone exists already.
    #[error("zone {0} exists already")]
    Exists(String),
    /// A name or record is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A journal frame could not be read back.
    #[error("journal frame {index} is not a replication message: {reason}")]
    Corrupt {
        /// Which frame.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// One write of this node, by the number it carries: the last of a
/// commit (a commit's writes to one zone travel as one delta, so a peer
/// holding the last holds them all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteVersion {
    /// Zone, as text.
    pub zone: String,
    /// The writer's origin (node id and journal epoch).
    pub origin: String,
    /// The write's number among the origin's writes to the zone.
    pub seq: u64,
}

/// A zone as listed by `meshdns zone list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneInfo {
    /// Zone name.
    pub name: String,
    /// Serial served.
    pub serial: u32,
    /// Live RRsets.
    pub rrsets: usize,
    /// Digest of the served data.
    pub digest: u64,
    /// Why the zone cannot be served, if it cannot.
    pub error: Option<String>,
}

struct Book {
    catalog: ZoneReplica,
    zones: BTreeMap<Vec<u8>, ZoneReplica>,
    clock: Clock,
    /// What changed in each zone since it was last served: the next
    /// recompile turns it into an IXFR step.
    pending: BTreeMap<Vec<u8>, ixfr::Pending>,
    /// Counts applied changes: a compiled zone records the count it
    /// includes, overlay entries the count that made them.
    change_seq: u64,
    /// Per zone, the digest and RRset count of its live data, kept current
    /// change by change (a zone's digest is a sum over its RRsets); absent
    /// until first asked for, and dropped on changes not told by key.
    summaries: BTreeMap<Vec<u8>, (u64, usize)>,
    /// Per zone, the change count of its last change that needs a compile
    /// (not one an overlay can answer). Until the served zone has compiled
    /// it, no change to that zone is judged against the served one.
    needs_compile: BTreeMap<Vec<u8>, u64>,
}

/// Changes to one zone to answer from its overlay: the change count that
/// made them, and (owner, type, RRset) with the zone's new SOA among them.
type OverlayUpdate = (Vec<u8>, u64, Vec<(Vec<u8>, u16, crate::zone::overlay::OverlayRRset)>);

/// One change to make: in `zone` (wire form; the catalog when empty), set
/// or delete one RRset.
struct Change {
    zone: Vec<u8>,
    key: EntryKey,
    value: Option<RRset>,
}

/// Replicated zones of this node.
pub struct ReplicatedZones {
    me: String,
    book: Mutex<Book>,
    journal: Mutex<Journal>,
    /// Compiled zones, by origin (wire form).
    served: arc_swap::ArcSwap<BTreeMap<Vec<u8>, Arc<Snapshot>>>,
    errors: Mutex<BTreeMap<Vec<u8>, String>>,
    wall_ms: Box<dyn Fn() -> u64 + Send + Sync>,
    /// Where this node's own new writes go to be pushed to peers.
    outbox: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Vec<Vec<u8>>>>>,
    /// Log size that triggers a compaction.
    compact_after: std::sync::atomic::AtomicU64,
    /// Held while the served set is rebuilt and handed on, so concurrent
    /// recompiles cannot lose each other's zones.
    recompiling: Mutex<()>,
    /// Called with every new served set, under `recompiling`.
    on_served: Mutex<Option<ServedHook>>,
    /// IXFR history per zone, updated under `recompiling`.
    histories: Mutex<BTreeMap<Vec<u8>, ixfr::History>>,
    /// Serialises overlay inserts with the swap to a recompiled zone, so
    /// an entry made meanwhile is carried over, never lost.
    overlay_lock: Mutex<()>,
    /// Zones with overlay entries waiting for a recompile.
    overlaid: Mutex<std::collections::BTreeSet<Vec<u8>>>,
    /// Woken when a zone has new overlay entries.
    compaction_wanted: tokio::sync::Notify,
    /// Held (shared) by every change from the moment it is applied until
    /// the data plane serves it; [`ReplicatedZones::holds`] takes it
    /// exclusively, so a write it reports as held is also served.
    publishing: std::sync::RwLock<()>,
}

/// Receives every new set of served replicated zones.
pub type ServedHook = Box<dyn Fn(Arc<BTreeMap<Vec<u8>, Arc<Snapshot>>>) + Send + Sync>;

fn zone_text(zone: &[u8]) -> String {
    if zone.is_empty() { CATALOG.to_owned() } else { to_text(zone) }
}

impl ReplicatedZones {
    /// Opens the journal under `data_dir/replication` and rebuilds every
    /// replica from it. `wall_ms` reads the wall clock (the driver's).
    pub fn open(
        data_dir: &Path,
        me: &str,
        wall_ms: Box<dyn Fn() -> u64 + Send + Sync>,
    ) -> Result<ReplicatedZones, ReplicatedError> {
        let dir = data_dir.join("replication");
        let fresh = !dir.join("journal.log").exists() && !dir.join("snapshot.bin").exists();
        let (journal, recovered) = Journal::open(&dir)?;
        let origin = writer_origin(&dir, me, fresh, wall_ms())?;
        if recovered.truncated > 0 {
            tracing::warn!(bytes = recovered.truncated, "cut a torn write from the end of the replication journal");
        }
        let mut book = Book {
            catalog: ZoneReplica::new(),
            zones: BTreeMap::new(),
            clock: Clock::new(60_000),
            pending: BTreeMap::new(),
            change_seq: 0,
            summaries: BTreeMap::new(),
            needs_compile: BTreeMap::new(),
        };
        let mut snapshot_parts: BTreeMap<String, Vec<Part>> = BTreeMap::new();
        let mut adopted: BTreeMap<String, Vec<Part>> = BTreeMap::new();
        let limits = Limits::default();
        for (index, payload) in recovered.payloads.iter().enumerate() {
            let part = wire::decode(payload, &limits)
                .map_err(|e| ReplicatedError::Corrupt { index, reason: e.to_string() })?;
            if index < recovered.from_snapshot {
                snapshot_parts.entry(part.zone.clone()).or_default().push(part);
                continue;
            }
            if !snapshot_parts.is_empty() {
                install_snapshots(&mut book, std::mem::take(&mut snapshot_parts))?;
            }
            if part.snapshot {
                // A snapshot taken from a peer: its parts were journalled
                // together and are adopted together.
                adopted.entry(part.zone.clone()).or_default().push(part);
                continue;
            }
            adopt_pending(&mut book, &mut adopted)?;
            apply_part(&mut book, part)?;
        }
        install_snapshots(&mut book, snapshot_parts)?;
        adopt_pending(&mut book, &mut adopted)?;
        // Stamps issued from now on follow everything recovered.
        let latest = book
            .zones
            .values()
            .chain(std::iter::once(&book.catalog))
            .flat_map(|r| r.entries().values().map(|e| e.stamp.hlc))
            .max()
            .unwrap_or_default();
        let now = wall_ms();
        let _ = book.clock.observe(latest, latest.wall_ms.max(now));
        let zones = ReplicatedZones {
            me: origin,
            book: Mutex::new(book),
            journal: Mutex::new(journal),
            served: arc_swap::ArcSwap::from_pointee(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
            wall_ms,
            outbox: Mutex::new(None),
            compact_after: std::sync::atomic::AtomicU64::new(COMPACT_AFTER_BYTES),
            recompiling: Mutex::new(()),
            on_served: Mutex::new(None),
            histories: Mutex::new(BTreeMap::new()),
            overlay_lock: Mutex::new(()),
            overlaid: Mutex::new(Default::default()),
            compaction_wanted: tokio::sync::Notify::new(),
            publishing: std::sync::RwLock::new(()),
        };
        let names: Vec<Vec<u8>> = zones.lock_book().zones.keys().cloned().collect();
        for z in names {
            zones.recompile(&z);
        }
        Ok(zones)
    }

    fn lock_book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The compiled zones, by origin.
    pub fn served(&self) -> Arc<BTreeMap<Vec<u8>, Arc<Snapshot>>> {
        self.served.load_full()
    }

    /// Journals `changes` as writes of this node (one fsync), then applies
    /// them and recompiles the zones touched. Returns, per zone written
    /// (the catalog as empty), the number of this node's last write to it.
    fn commit(&self, changes: Vec<Change>) -> Result<Vec<(Vec<u8>, u64)>, ReplicatedError> {
        let _publishing = self.publishing.read().unwrap_or_else(|e| e.into_inner());
        let numbered;
        let mut touched: Vec<Vec<u8>> = Vec::new();
        let mut updates: Vec<OverlayUpdate> = Vec::new();
        {
            let mut book = self.lock_book();
            // One delta per zone: numbers are given in order within one
            // commit, so each zone's writes cover one range.
            let mut per_zone: BTreeMap<Vec<u8>, Delta> = BTreeMap::new();
            for c in changes {
                let wall = (self.wall_ms)();
                let hlc = book.clock.tick(wall);
                let replica =
                    if c.zone.is_empty() { &book.catalog } else { book.zones.entry(c.zone.clone()).or_default() };
                let first = replica.next_seq(&self.me);
                let d = per_zone.entry(c.zone).or_insert_with(|| Delta {
                    origin: self.me.clone(),
                    covered: vec![(first, first - 1)],
                    writes: Vec::new(),
                });
                let seq = d.covered[0].1 + 1;
                d.covered[0].1 = seq;
                d.writes.push(Write { origin: self.me.clone(), seq, hlc, key: c.key, value: c.value });
            }
            let deltas: Vec<(Vec<u8>, Delta)> = per_zone.into_iter().collect();
            numbered = deltas.iter().map(|(z, d)| (z.clone(), d.covered[0].1)).collect();
            // Changes the overlay can answer cannot leave a zone unservable
            // (see `overlay::fits`); the others are compiled first.
            let fast: Vec<bool> = deltas.iter().map(|(z, d)| self.fits_overlay(&book, z, &d.writes)).collect();
            if fast.contains(&false) {
                self.check(&book, &deltas)?;
            }
            // A large import travels as several bounded messages.
            let frames: Vec<Vec<u8>> =
                deltas.iter().flat_map(|(z, d)| wire::encode_chunked(&zone_text(z), d)).collect();
            self.journal.lock().unwrap_or_else(|e| e.into_inner()).append(&frames)?;
            if let Some(tx) = self.outbox.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                let _ = tx.send(frames.clone());
            }
            for ((zone, d), fast) in deltas.into_iter().zip(fast) {
                if zone.is_empty() {
                    for w in &d.writes {
                        touched.push(w.key.owner.clone());
                    }
                    apply_to(&mut book, &zone, d);
                    let seq = book.change_seq;
                    for w in &touched {
                        book.needs_compile.insert(w.clone(), seq);
                    }
                } else {
                    let keys: Vec<EntryKey> = d.writes.iter().map(|w| w.key.clone()).collect();
                    apply_to(&mut book, &zone, d);
                    match fast.then(|| overlay_update(&book, &zone, &keys)).flatten() {
                        Some(update) => updates.push(update),
                        None => {
                            let seq = book.change_seq;
                            book.needs_compile.insert(zone.clone(), seq);
                            touched.push(zone);
                        }
                    }
                }
            }
            self.maybe_compact(&book);
        }
        self.publish(updates, touched);
        Ok(numbered)
    }

    /// Whether this node holds write `seq` of `origin` in `zone`: what a
    /// writer waiting for its write to reach other nodes asks them.
    pub fn holds(&self, zone: &str, origin: &str, seq: u64) -> bool {
        let Some(wire) = zone_wire(zone) else { return false };
        // No change is between applied and served while this is held.
        let _quiet = self.publishing.write().unwrap_or_else(|e| e.into_inner());
        let book = self.lock_book();
        let replica = if wire.is_empty() { Some(&book.catalog) } else { book.zones.get(&wire) };
        replica.and_then(|r| r.knowledge().get(origin)).is_some_and(|seen| seen.contains(seq))
    }

    /// Whether writes to `zone` can be answered from its overlay: judged
    /// against the served zone, once that has compiled every change that
    /// needed a compile (a CNAME set a moment ago must not be missed).
    fn fits_overlay(&self, book: &Book, zone: &[u8], writes: &[Write]) -> bool {
        if zone.is_empty() || writes.is_empty() {
            return false;
        }
        let served = self.served.load();
        let Some(snap) = served.get(zone) else { return false };
        if book.needs_compile.get(zone).is_some_and(|&seq| seq > snap.base_seq()) {
            return false;
        }
        writes.iter().all(|w| overlay::fits(snap, &w.key, w.value.as_ref()))
    }

    /// Makes applied changes visible: overlay entries for the zones that
    /// have them (a recompile follows in the background), a recompile now
    /// for the others.
    fn publish(&self, updates: Vec<OverlayUpdate>, mut touched: Vec<Vec<u8>>) {
        for (zone, seq, entries) in updates {
            let guard = self.overlay_lock.lock().unwrap_or_else(|e| e.into_inner());
            let served = self.served.load();
            match served.get(&zone) {
                // Judged again against what is served now: a recompile may
                // have swapped in a zone where the change no longer fits.
                Some(snap) if entries.iter().all(|(owner, rtype, _)| overlay::entry_fits(snap, owner, *rtype)) => {
                    // A snapshot compiled after this change holds it already.
                    if seq > snap.base_seq() {
                        for (owner, rtype, rrset) in entries {
                            snap.overlay().insert(&owner, rtype, rrset);
                        }
                    }
                    drop(guard);
                    self.overlaid.lock().unwrap_or_else(|e| e.into_inner()).insert(zone);
                    self.compaction_wanted.notify_one();
                }
                _ => {
                    drop(guard);
                    touched.push(zone);
                }
            }
        }
        touched.sort();
        touched.dedup();
        for z in touched {
            self.recompile(&z);
        }
    }

    /// Recompiles the zones whose changes are being answered from an
    /// overlay. Blocking; the node's driver calls it shortly after
    /// [`ReplicatedZones::compaction_wanted`] fires.
    pub fn compact_overlays(&self) {
        let zones = std::mem::take(&mut *self.overlaid.lock().unwrap_or_else(|e| e.into_inner()));
        for z in zones {
            self.recompile(&z);
        }
    }

    /// Recompiles one zone now if changes wait in its overlay (a zone
    /// transfer must carry them).
    pub fn compact_zone(&self, zone: &[u8]) {
        let listed = self.overlaid.lock().unwrap_or_else(|e| e.into_inner()).remove(zone);
        // Also when a background compile has taken the zone off the list
        // but not finished: `recompile` waits for it, then compiles again.
        if listed || self.served.load().get(zone).is_some_and(|s| !s.overlay().is_empty()) {
            self.recompile(zone);
        }
    }

    /// Fires when a zone has changes waiting in its overlay.
    pub fn compaction_wanted(&self) -> &tokio::sync::Notify {
        &self.compaction_wanted
    }

    /// RRsets answered from overlays, over every zone.
    pub fn overlay_rrsets(&self) -> usize {
        self.served.load().values().map(|s| s.overlay().len()).sum()
    }

    /// Compacts the journal once its log has grown past the threshold: the
    /// whole state is written as a snapshot (temporary file, sync, rename)
    /// and the log emptied. A failure (a full disk) is logged and leaves
    /// the journal as it was; the next write tries again.
    fn maybe_compact(&self, book: &Book) {
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        if journal.log_len() < self.compact_after.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut frames = wire::encode_snapshot(CATALOG, &book.catalog.snapshot());
        for (z, r) in &book.zones {
            frames.extend(wire::encode_snapshot(&to_text(z), &r.snapshot()));
        }
        let before = journal.log_len();
        match journal.compact(&frames) {
            Ok(()) => tracing::info!(log_bytes = before, "compacted the replication journal into a snapshot"),
            Err(e) => tracing::warn!(error = %e, "journal compaction failed; keeping the log"),
        }
    }

    /// Drops tombstones older than `horizon_ms` in every zone (and the
    /// catalog). A node that has not seen them is sent a snapshot instead
    /// of deltas. Returns how many were dropped.
    pub fn collect_tombstones(&self, horizon_ms: u64) -> usize {
        let now = (self.wall_ms)();
        let horizon = meshdns_replication::Hlc { wall_ms: now.saturating_sub(horizon_ms), logical: 0 };
        let mut book = self.lock_book();
        // Catalog tombstones (deleted zones) are kept: a zone created again
        // must hide what was written before its deletion, and that needs
        // the deletion's stamp (one small entry per deleted zone name).
        let mut n = 0;
        for r in book.zones.values_mut() {
            n += r.collect_tombstones_before(horizon);
        }
        n
    }

    /// Tombstones of deleted RRsets held, over every zone.
    pub fn tombstones(&self) -> usize {
        // Deleted zones' catalog entries are kept for good, so not counted.
        let book = self.lock_book();
        book.zones.values().map(ZoneReplica::tombstones).sum::<usize>()
    }

    /// Sets the log size that triggers a compaction (tests use a small one).
    pub fn set_compact_after(&self, bytes: u64) {
        self.compact_after.store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sends this node's own new writes (journal frames) to `tx`, for the
    /// push to peers.
    pub fn set_outbox(&self, tx: tokio::sync::mpsc::UnboundedSender<Vec<Vec<u8>>>) {
        *self.outbox.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }

    /// Applies a delta from a peer: journalled first, unless it holds
    /// nothing new. Returns whether it held anything new.
    pub fn apply_remote(&self, payload: &[u8]) -> Result<bool, ReplicatedError> {
        let part = wire::decode(payload, &Limits::default())
            .map_err(|e| ReplicatedError::Invalid(format!("bad delta from a peer: {e}")))?;
        if part.snapshot {
            return Err(ReplicatedError::Invalid("a snapshot part where a delta was expected".into()));
        }
        let zone = zone_wire(&part.zone).ok_or_else(|| ReplicatedError::Invalid("bad zone name".into()))?;
        let mut touched: Vec<Vec<u8>> = if zone.is_empty() {
            part.delta.writes.iter().map(|w| w.key.owner.clone()).collect()
        } else {
            vec![zone.clone()]
        };
        let keys: Vec<EntryKey> = part.delta.writes.iter().map(|w| w.key.clone()).collect();
        let mut updates = Vec::new();
        let _publishing = self.publishing.read().unwrap_or_else(|e| e.into_inner());
        {
            let mut book = self.lock_book();
            let fast = self.fits_overlay(&book, &zone, &part.delta.writes);
            let replica = if zone.is_empty() { Some(&book.catalog) } else { book.zones.get(&zone) };
            if !is_news(replica, &part.delta) {
                return Ok(false);
            }
            // Nobody knows this node's own writes better than it does.
            if part.delta.origin == self.me {
                let next = replica.map_or(1, |r| r.next_seq(&self.me));
                if part.delta.covered.iter().any(|&(_, b)| b >= next) {
                    return Err(ReplicatedError::Invalid(
                        "a peer claims writes of this node that it never made".into(),
                    ));
                }
            }
            let now = (self.wall_ms)();
            let mut clock = book.clock.clone();
            for w in &part.delta.writes {
                clock.observe(w.hlc, now).map_err(|e| ReplicatedError::Invalid(e.to_string()))?;
            }
            self.journal.lock().unwrap_or_else(|e| e.into_inner()).append(&[payload.to_vec()])?;
            book.clock = clock;
            apply_part(&mut book, part)?;
            match fast.then(|| overlay_update(&book, &zone, &keys)).flatten() {
                Some(update) => {
                    updates.push(update);
                    touched.clear();
                }
                None => {
                    let seq = book.change_seq;
                    for z in &touched {
                        book.needs_compile.insert(z.clone(), seq);
                    }
                }
            }
            self.maybe_compact(&book);
        }
        self.publish(updates, touched);
        Ok(true)
    }

    /// Adopts a peer's snapshot of one zone (the parts of
    /// `wire::encode_snapshot`), journalled first.
    pub fn adopt_remote(&self, payloads: &[Vec<u8>]) -> Result<(), ReplicatedError> {
        let mut parts = Vec::new();
        for p in payloads {
            let part = wire::decode(p, &Limits::default())
                .map_err(|e| ReplicatedError::Invalid(format!("bad snapshot part from a peer: {e}")))?;
            if !part.snapshot {
                return Err(ReplicatedError::Invalid("a delta among snapshot parts".into()));
            }
            parts.push(part);
        }
        let Some(zone_text) = parts.first().map(|p| p.zone.clone()) else { return Ok(()) };
        if parts.iter().any(|p| p.zone != zone_text) {
            return Err(ReplicatedError::Invalid("snapshot parts of several zones".into()));
        }
        let zone = zone_wire(&zone_text).ok_or_else(|| ReplicatedError::Invalid("bad zone name".into()))?;
        let snap = wire::snapshot_from_parts(parts).map_err(|e| ReplicatedError::Invalid(e.to_string()))?;
        let _publishing = self.publishing.read().unwrap_or_else(|e| e.into_inner());
        let touched: Vec<Vec<u8>> = {
            let mut book = self.lock_book();
            // Adopt into a copy first: a snapshot that does not hold together
            // is refused before anything is written.
            let mut adopted =
                if zone.is_empty() { book.catalog.clone() } else { book.zones.get(&zone).cloned().unwrap_or_default() };
            adopted.adopt_snapshot(snap).map_err(|e| ReplicatedError::Invalid(e.to_string()))?;
            let now = (self.wall_ms)();
            let mut clock = book.clock.clone();
            for e in adopted.entries().values() {
                clock.observe(e.stamp.hlc, now).map_err(|e| ReplicatedError::Invalid(e.to_string()))?;
            }
            // Made durable as a compaction: the journal then holds the whole
            // new state, and no snapshot parts sit among its deltas.
            let mut frames = Vec::new();
            let catalog = if zone.is_empty() { &adopted } else { &book.catalog };
            frames.extend(wire::encode_snapshot(CATALOG, &catalog.snapshot()));
            for (z, r) in &book.zones {
                let r = if *z == zone { &adopted } else { r };
                frames.extend(wire::encode_snapshot(&to_text(z), &r.snapshot()));
            }
            if !zone.is_empty() && !book.zones.contains_key(&zone) {
                frames.extend(wire::encode_snapshot(&zone_text, &adopted.snapshot()));
            }
            self.journal.lock().unwrap_or_else(|e| e.into_inner()).compact(&frames)?;
            book.clock = clock;
            let touched = if zone.is_empty() {
                // Zones that disappear from the catalog must be recompiled too.
                let mut keys: Vec<Vec<u8>> = book.catalog.entries().keys().map(|k| k.owner.clone()).collect();
                keys.extend(adopted.entries().keys().map(|k| k.owner.clone()));
                book.catalog = adopted;
                keys
            } else {
                book.zones.insert(zone.clone(), adopted);
                vec![zone]
            };
            book.change_seq += 1;
            let seq = book.change_seq;
            for z in &touched {
                book.pending.insert(z.clone(), ixfr::Pending::Whole);
                book.summaries.remove(z);
                book.needs_compile.insert(z.clone(), seq);
            }
            touched
        };
        for z in touched {
            self.recompile(&z);
        }
        Ok(())
    }

    /// What this node holds of every zone (the catalog as `""`): the
    /// version vectors a pull request carries.
    pub fn version_vectors(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let book = self.lock_book();
        let mut out = BTreeMap::from([(CATALOG.to_owned(), book.catalog.version_vector())]);
        for (z, r) in &book.zones {
            out.insert(to_text(z), r.version_vector());
        }
        out
    }

    /// The frames answering a pull from a peer holding `theirs`: deltas
    /// where deltas can bring it up to date, a snapshot where they cannot;
    /// and how many zones went as snapshots.
    pub fn answer_pull(&self, theirs: &BTreeMap<String, BTreeMap<String, u64>>) -> (Vec<Vec<u8>>, u64) {
        let book = self.lock_book();
        let empty = BTreeMap::new();
        let mut frames = Vec::new();
        let mut snapshots = 0;
        let replicas =
            std::iter::once((CATALOG.to_owned(), &book.catalog)).chain(book.zones.iter().map(|(z, r)| (to_text(z), r)));
        for (name, replica) in replicas {
            let vv = theirs.get(&name).unwrap_or(&empty);
            match replica.deltas_for(vv) {
                Ok(deltas) => frames.extend(deltas.iter().flat_map(|d| wire::encode_chunked(&name, d))),
                Err(_) => {
                    snapshots += 1;
                    frames.extend(wire::encode_snapshot(&name, &replica.snapshot()));
                }
            }
        }
        (frames, snapshots)
    }

    /// A digest of this node's replicated state: what it serves and how
    /// many writes it holds (per zone, and of the catalog). Equal on nodes
    /// holding the same writes; published in gossip so peers that differ
    /// pull. The write counts only grow, so a digest never comes back: a
    /// stale gossiped value cannot pass for agreement on a later state
    /// that happens to serve the same data.
    pub fn state_digest(&self) -> u64 {
        state_digest_of(&mut self.lock_book())
    }

    /// Drops every tombstone (and catalog tombstone) of the contiguous
    /// history, if this node's state digest is still `agreed`: the digest
    /// every live member was seen to hold (see
    /// `meshdns_replication::agreement`). Checked under the lock, so a
    /// deletion that arrived since is kept. Returns how many were dropped.
    pub fn collect_agreed_tombstones(&self, agreed: u64) -> usize {
        let mut book = self.lock_book();
        if state_digest_of(&mut book) != agreed {
            return 0;
        }
        let all = meshdns_replication::Hlc { wall_ms: u64::MAX, logical: u32::MAX };
        // Catalog tombstones stay (see `collect_tombstones`).
        let mut n = 0;
        for r in book.zones.values_mut() {
            n += r.collect_tombstones_before(all);
        }
        n
    }

    /// Creates a zone with an SOA record.
    pub fn create_zone(&self, name: &str, soa_ttl: u32) -> Result<(), ReplicatedError> {
        let zone = zone_wire(name).ok_or_else(|| ReplicatedError::Invalid(format!("{name:?} is not a zone name")))?;
        if self.zone_live(&zone) {
            return Err(ReplicatedError::Exists(to_text(&zone)));
        }
        // SOA: ns.<zone> hostmaster.<zone> serial refresh retry expire minimum.
        let mut rdata = Vec::new();
        for prefix in [b"\x02ns".as_slice(), b"\x0ahostmaster".as_slice()] {
            rdata.extend_from_slice(prefix);
            rdata.extend_from_slice(&zone);
        }
        for v in [0u32, 3600, 600, 86400, 300] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        // Hide what was written before a deletion this node knows of.
        let deleted = {
            let book = self.lock_book();
            let key = EntryKey { owner: zone.clone(), rtype: ZONE_ENTRY };
            book.catalog.entries().get(&key).filter(|e| e.value.is_none()).map(|e| e.stamp.clone())
        };
        let marker = Change {
            zone: Vec::new(),
            key: EntryKey { owner: zone.clone(), rtype: ZONE_ENTRY },
            value: Some(RRset::new(0, deleted.iter().map(encode_stamp).collect())),
        };
        let soa = Change {
            zone: zone.clone(),
            key: EntryKey { owner: zone.clone(), rtype: SOA },
            value: Some(RRset::new(soa_ttl, vec![rdata])),
        };
        self.commit(vec![marker, soa]).map(drop)
    }

    /// Deletes a zone: it stops being served, everywhere.
    pub fn delete_zone(&self, name: &str) -> Result<(), ReplicatedError> {
        let zone = self.existing(name)?;
        self.commit(vec![Change { zone: Vec::new(), key: EntryKey { owner: zone, rtype: ZONE_ENTRY }, value: None }])
            .map(drop)
    }

    /// Sets (replaces) or removes RRsets in a zone. Owners must be inside it.
    pub fn write(&self, name: &str, rrsets: Vec<(EntryKey, Option<RRset>)>) -> Result<(), ReplicatedError> {
        self.write_versioned(name, rrsets).map(drop)
    }

    /// [`ReplicatedZones::write`], returning which write it was: other
    /// nodes hold it once [`ReplicatedZones::holds`] says so there.
    pub fn write_versioned(
        &self,
        name: &str,
        rrsets: Vec<(EntryKey, Option<RRset>)>,
    ) -> Result<Option<WriteVersion>, ReplicatedError> {
        let zone = self.existing(name)?;
        let mut changes = Vec::new();
        for (key, value) in rrsets {
            if !is_subdomain(&key.owner, &zone) {
                return Err(ReplicatedError::Invalid(format!(
                    "{} is not in zone {}",
                    to_text(&key.owner),
                    to_text(&zone)
                )));
            }
            if key.rtype == SOA && key.owner != zone {
                return Err(ReplicatedError::Invalid("an SOA record belongs at the zone apex".into()));
            }
            if key.rtype == SOA && value.is_none() {
                return Err(ReplicatedError::Invalid(
                    "the SOA record cannot be removed (delete the zone instead)".into(),
                ));
            }
            changes.push(Change { zone: zone.clone(), key, value });
        }
        let numbered = self.commit(changes)?;
        Ok(numbered.into_iter().find(|(z, _)| *z == zone).map(|(_, seq)| WriteVersion {
            zone: to_text(&zone),
            origin: self.me.clone(),
            seq,
        }))
    }

    /// The live RRsets of a zone (as served, before the serial is replaced).
    pub fn rrsets(&self, name: &str) -> Result<Vec<(EntryKey, RRset)>, ReplicatedError> {
        let zone = self.existing(name)?;
        let book = self.lock_book();
        Ok(visible(&book, &zone).into_iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// The serial `zone` is served with (0 if it is not), without listing
    /// every zone.
    pub fn zone_serial(&self, zone: &str) -> u32 {
        let Some(wire) = zone_wire(zone) else { return 0 };
        self.lock_book().zones.get(&wire).map_or(0, ZoneReplica::serial)
    }

    /// Every live zone.
    pub fn list(&self) -> Vec<ZoneInfo> {
        let mut book = self.lock_book();
        let errors = self.errors.lock().map(|e| e.clone()).unwrap_or_default();
        list_in(&mut book, &errors)
    }

    fn zone_live(&self, zone: &[u8]) -> bool {
        let book = self.lock_book();
        let key = EntryKey { owner: zone.to_vec(), rtype: ZONE_ENTRY };
        book.catalog.entries().get(&key).is_some_and(|e| e.value.is_some())
    }

    fn existing(&self, name: &str) -> Result<Vec<u8>, ReplicatedError> {
        let zone = zone_wire(name).ok_or_else(|| ReplicatedError::Invalid(format!("{name:?} is not a zone name")))?;
        if self.zone_live(&zone) { Ok(zone) } else { Err(ReplicatedError::NoZone(to_text(&zone))) }
    }

    /// Compiles `zone` from its replica and swaps it into the served set
    /// (or out of it, if the zone is gone). A zone that cannot be compiled
    /// (a peer's writes left it without glue, say) keeps serving its last
    /// good version, and `zone list` shows why.
    fn recompile(&self, zone: &[u8]) {
        let _one_at_a_time = self.recompiling.lock().unwrap_or_else(|e| e.into_inner());
        let (records, serial, changed, base_seq) = {
            let mut book = self.lock_book();
            let base_seq = book.change_seq;
            let serial = book.zones.get(zone).map_or(0, ZoneReplica::serial);
            let changed = match book.pending.remove(zone) {
                None => Some(Vec::new()),
                Some(ixfr::Pending::Whole) => None,
                Some(ixfr::Pending::Keys(keys)) => Some(
                    keys.into_iter()
                        .map(|(k, before)| {
                            let now = visible_value(&book.catalog, book.zones.get(zone), zone, &k);
                            (k, before, now)
                        })
                        .collect::<Vec<_>>(),
                ),
            };
            (served_records(visible(&book, zone), serial), serial, changed, base_seq)
        };
        let soa = records.iter().find(|r| r.1 == SOA && r.0 == zone).cloned();
        // Compiled before any lock is taken: transfers and `zone list`
        // are not held up by a large zone's compile.
        let built = if records.is_empty() { None } else { Some(build(zone, &records, serial)) };
        let mut served = (*self.served.load_full()).clone();
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        errors.remove(zone);
        let mut histories = self.histories.lock().unwrap_or_else(|e| e.into_inner());
        let history = histories.entry(zone.to_vec()).or_default();
        // From here to the swap, no overlay entry can slip in unseen.
        let overlay_guard = self.overlay_lock.lock().unwrap_or_else(|e| e.into_inner());
        match built {
            None => {
                served.remove(zone);
                history.served(None, None);
            }
            Some(Ok(snap)) => {
                let snap = snap.with_base_seq(base_seq);
                // Changes answered from the old overlay after this compile
                // read the state carry over, if they all still fit the new
                // compile (a concurrent change may have put a cut or DNAME
                // above one). If one does not, none do: the zone is served
                // as compiled, a consistent older version, until the next
                // compile, which follows at once.
                let newer = served.get(zone).map(|old| old.overlay().newer_than(base_seq)).unwrap_or_default();
                let refit = !newer.iter().all(|(owner, rtype, _)| overlay::entry_fits(&snap, owner, *rtype));
                if !refit {
                    for (owner, rtype, rrset) in newer {
                        snap.overlay().insert(&owner, rtype, rrset);
                    }
                } else {
                    self.overlaid.lock().unwrap_or_else(|e| e.into_inner()).insert(zone.to_vec());
                    self.compaction_wanted.notify_one();
                }
                served.insert(zone.to_vec(), Arc::new(snap));
                history.served(soa, changed);
            }
            Some(Err(e)) => {
                tracing::warn!(zone = %to_text(zone), error = %e, "replicated zone cannot be compiled; serving its last good version");
                errors.insert(zone.to_vec(), e);
                history.served(None, None);
            }
        }
        drop(histories);
        let served = Arc::new(served);
        self.served.store(served.clone());
        drop(errors);
        if let Some(hook) = self.on_served.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            hook(served);
        }
        // Held until the data plane has the new zone: an overlay entry
        // published after this is in the zone the data plane serves.
        drop(overlay_guard);
    }

    /// The IXFR steps of `zone` (wire form) from serial `from` to `to`, if
    /// this node still holds an unbroken chain of them.
    pub fn ixfr_steps(&self, zone: &[u8], from: u32, to: u32) -> Option<Vec<Arc<ixfr::Step>>> {
        self.histories.lock().unwrap_or_else(|e| e.into_inner()).get(zone)?.chain(from, to)
    }

    /// Hands every new served set to `hook` (the data plane's store), and
    /// the current one at once.
    pub fn set_on_served(&self, hook: ServedHook) {
        let _one_at_a_time = self.recompiling.lock().unwrap_or_else(|e| e.into_inner());
        hook(self.served.load_full());
        *self.on_served.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// Refuses local changes that would leave a zone that cannot be served:
    /// the zones touched are compiled as they would be, before anything is
    /// written.
    fn check(&self, book: &Book, deltas: &[(Vec<u8>, Delta)]) -> Result<(), ReplicatedError> {
        let mut catalog = book.catalog.clone();
        let mut zones: BTreeMap<Vec<u8>, ZoneReplica> = BTreeMap::new();
        for (zone, d) in deltas {
            if zone.is_empty() {
                catalog.apply_delta(d.clone());
            } else {
                zones
                    .entry(zone.clone())
                    .or_insert_with(|| book.zones.get(zone).cloned().unwrap_or_default())
                    .apply_delta(d.clone());
            }
        }
        for (zone, replica) in &zones {
            let records = served_records(visible_in(&catalog, Some(replica), zone), replica.serial());
            if records.is_empty() {
                continue;
            }
            build(zone, &records, replica.serial()).map_err(|e| {
                let e = e.replace(&format!("<replicated zone {}>:1: ", to_text(zone)), "");
                ReplicatedError::Invalid(format!("refused, the zone would not be servable: {e}"))
            })?;
        }
        Ok(())
    }
}

/// The overlay entries for `keys` of `zone` as they now stand, with the
/// zone's SOA under its new serial; `None` if one of them is no longer
/// set (a concurrent deletion won), which needs a recompile.
fn overlay_update(book: &Book, zone: &[u8], keys: &[EntryKey]) -> Option<OverlayUpdate> {
    let seq = book.change_seq;
    let replica = book.zones.get(zone);
    let mut entries = Vec::with_capacity(keys.len() + 1);
    for k in keys {
        let value = visible_value(&book.catalog, replica, zone, k)?;
        entries.push((k.owner.clone(), k.rtype, overlay::entry(seq, &value)));
    }
    let soa_key = EntryKey { owner: zone.to_vec(), rtype: SOA };
    let soa = visible_value(&book.catalog, replica, zone, &soa_key)?;
    let (_, _, ttl, rdata) = served_records(vec![(&soa_key, &soa)], replica?.serial()).into_iter().next()?;
    entries.push((zone.to_vec(), SOA, crate::zone::overlay::OverlayRRset { seq, ttl, rdata: vec![rdata] }));
    Some((zone.to_vec(), seq, entries))
}

/// Every live zone of `book`, `errors` giving why one cannot be served.
/// Digests and counts come from the zones' summaries, computed the first
/// time and then kept current by [`apply_to`].
fn list_in(book: &mut Book, errors: &BTreeMap<Vec<u8>, String>) -> Vec<ZoneInfo> {
    let names: Vec<Vec<u8>> =
        book.catalog.rrsets().filter(|(k, _)| k.rtype == ZONE_ENTRY).map(|(k, _)| k.owner.clone()).collect();
    names
        .into_iter()
        .map(|zone| {
            let (digest, rrsets) = match book.summaries.get(&zone) {
                Some(s) => *s,
                None => {
                    let live = visible(book, &zone);
                    let s = (meshdns_replication::replica::rrsets_digest(live.iter().copied()), live.len());
                    book.summaries.insert(zone.clone(), s);
                    s
                }
            };
            ZoneInfo {
                name: to_text(&zone),
                serial: book.zones.get(&zone).map_or(0, ZoneReplica::serial),
                rrsets,
                digest,
                error: errors.get(&zone).cloned(),
            }
        })
        .collect()
}

/// See [`ReplicatedZones::state_digest`].
fn state_digest_of(book: &mut Book) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&book.catalog.serial().to_le_bytes());
    for z in list_in(book, &BTreeMap::new()) {
        h.update(z.name.as_bytes());
        h.update(&z.digest.to_le_bytes());
        h.update(&z.serial.to_le_bytes());
    }
    h.digest()
}

/// Notes, before `keys` of `zone` change, what each served until now, for
/// the zone's next IXFR step. Catalog changes (a zone created or deleted)
/// restart the history of the zones they touch.
fn note_changes<'k>(book: &mut Book, zone: &[u8], keys: impl Iterator<Item = &'k EntryKey>) {
    let Book { catalog, zones, pending, .. } = book;
    if zone.is_empty() {
        for k in keys {
            pending.insert(k.owner.clone(), ixfr::Pending::Whole);
        }
        return;
    }
    let noted = pending.entry(zone.to_vec()).or_insert_with(|| ixfr::Pending::Keys(BTreeMap::new()));
    for k in keys {
        noted.note(k, || visible_value(catalog, zones.get(zone), zone, k));
    }
}

/// One key's value as served (see [`visible_in`]).
fn visible_value(catalog: &ZoneReplica, replica: Option<&ZoneReplica>, zone: &[u8], key: &EntryKey) -> Option<RRset> {
    let hide_before = zone_marker(catalog, zone)?;
    let e = replica?.entries().get(key)?;
    if hide_before.as_ref().is_some_and(|h| e.stamp <= *h) {
        return None;
    }
    e.value.clone()
}

/// `None` when the zone is not live; else the stamp of the deletion its
/// entries must follow, if any.
fn zone_marker(catalog: &ZoneReplica, zone: &[u8]) -> Option<Option<meshdns_replication::Stamp>> {
    let key = EntryKey { owner: zone.to_vec(), rtype: ZONE_ENTRY };
    let marker = catalog.entries().get(&key).and_then(|e| e.value.as_ref())?;
    Some(marker.rdata.first().and_then(|r| decode_stamp(r)))
}

/// The zone's live entries written after its creation (a deleted zone has
/// none; a re-created one starts again).
fn visible<'b>(book: &'b Book, zone: &[u8]) -> Vec<(&'b EntryKey, &'b RRset)> {
    visible_in(&book.catalog, book.zones.get(zone), zone)
}

fn visible_in<'b>(
    catalog: &'b ZoneReplica,
    replica: Option<&'b ZoneReplica>,
    zone: &[u8],
) -> Vec<(&'b EntryKey, &'b RRset)> {
    let Some(hide_before) = zone_marker(catalog, zone) else { return Vec::new() };
    let Some(replica) = replica else { return Vec::new() };
    replica
        .entries()
        .iter()
        .filter(|(_, e)| hide_before.as_ref().is_none_or(|h| e.stamp > *h))
        .filter_map(|(k, e)| e.value.as_ref().map(|v| (k, v)))
        .collect()
}

/// A zone marker's data: the stamp of the deletion it follows, if any.
/// Entries written before it stay hidden; nothing else is (a create on a
/// node that has not heard of earlier writes hides nothing).
fn encode_stamp(s: &meshdns_replication::Stamp) -> Vec<u8> {
    let mut out = s.hlc.wall_ms.to_be_bytes().to_vec();
    out.extend_from_slice(&s.hlc.logical.to_be_bytes());
    out.extend_from_slice(s.origin.as_bytes());
    out
}

fn decode_stamp(r: &[u8]) -> Option<meshdns_replication::Stamp> {
    let wall_ms = u64::from_be_bytes(r.get(..8)?.try_into().ok()?);
    let logical = u32::from_be_bytes(r.get(8..12)?.try_into().ok()?);
    let origin = String::from_utf8(r.get(12..)?.to_vec()).ok()?;
    Some(meshdns_replication::Stamp { hlc: meshdns_replication::Hlc { wall_ms, logical }, origin })
}

/// The records of a zone as served: every RRset expanded, the SOA serial
/// replaced by `serial`.
fn served_records(rrsets: Vec<(&EntryKey, &RRset)>, serial: u32) -> Vec<(Vec<u8>, u16, u32, Vec<u8>)> {
    rrsets
        .into_iter()
        .flat_map(|(k, v)| {
            v.rdata.iter().map(move |r| {
                let mut r = r.clone();
                if k.rtype == SOA && r.len() >= 20 {
                    let at = r.len() - 20;
                    r[at..at + 4].copy_from_slice(&serial.to_be_bytes());
                }
                (k.owner.clone(), k.rtype, v.ttl, r)
            })
        })
        .collect()
}

/// Compiles records into a snapshot served from memory.
fn build(zone: &[u8], records: &[(Vec<u8>, u16, u32, Vec<u8>)], serial: u32) -> Result<Snapshot, String> {
    let label = PathBuf::from(format!("<replicated zone {}>", to_text(zone)));
    let parsed =
        ParsedFile::from_records(&label, records.iter().map(|(o, t, ttl, r)| (o.as_slice(), *t, *ttl, r.as_slice())));
    let compiled = compile(&parsed, Some(zone)).map_err(|e| e.to_string())?;
    Snapshot::in_memory(compiled.payload(), u64::from(serial), &label).map_err(|e| e.to_string())
}

/// The name this node's writes carry: its id plus the epoch of its journal.
/// A node whose journal is lost (a new disk) starts numbering its writes
/// from 1 again; a new epoch makes them a new origin, so peers never take
/// them for writes they already hold. A journal kept from before epochs
/// keeps the plain id.
fn writer_origin(dir: &Path, me: &str, fresh: bool, now_ms: u64) -> Result<String, ReplicatedError> {
    let file = dir.join("epoch");
    match std::fs::read_to_string(&file) {
        Ok(e) => {
            let e = e.trim();
            Ok(if e.is_empty() { me.to_owned() } else { format!("{me}~{e}") })
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let epoch = if fresh { format!("{now_ms:x}") } else { String::new() };
            if let Err(e) = meshdns_replication::journal::write_durably(&file, &[epoch.as_bytes()]) {
                // A full disk: this run still writes under a new epoch; a
                // later start without the file falls back to the plain id,
                // another origin again, so numbers never collide.
                tracing::warn!(file = %file.display(), error = %e, "cannot record the journal epoch");
            }
            Ok(if epoch.is_empty() { me.to_owned() } else { format!("{me}~{epoch}") })
        }
        Err(err) => Err(ReplicatedError::Invalid(format!("{}: {err}", file.display()))),
    }
}

/// The wire form of a zone name in text (the catalog is `""`).
pub fn zone_wire(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    let absolute = if text.ends_with('.') { text.to_owned() } else { format!("{text}.") };
    let name: domain::base::Name<Vec<u8>> = absolute.parse().ok()?;
    Some(name.as_slice().to_ascii_lowercase())
}

fn apply_part(book: &mut Book, part: Part) -> Result<(), ReplicatedError> {
    let zone = zone_wire(&part.zone).ok_or_else(|| ReplicatedError::Invalid("bad zone name in a delta".into()))?;
    apply_to(book, &zone, part.delta);
    Ok(())
}

/// Applies a delta to `zone` (the catalog when empty), noting what changes
/// for IXFR and keeping the zone's summary current.
fn apply_to(book: &mut Book, zone: &[u8], d: Delta) {
    note_changes(book, zone, d.writes.iter().map(|w| &w.key));
    book.change_seq += 1;
    if zone.is_empty() {
        // A zone created or deleted: its summary is computed afresh.
        for w in &d.writes {
            book.summaries.remove(&w.key.owner);
        }
        book.catalog.apply_delta(d);
        return;
    }
    if !book.summaries.contains_key(zone) {
        book.zones.entry(zone.to_vec()).or_default().apply_delta(d);
        return;
    }
    let keys: std::collections::BTreeSet<EntryKey> = d.writes.iter().map(|w| w.key.clone()).collect();
    let value = |book: &Book, k: &EntryKey| visible_value(&book.catalog, book.zones.get(zone), zone, k);
    let before: Vec<Option<RRset>> = keys.iter().map(|k| value(book, k)).collect();
    book.zones.entry(zone.to_vec()).or_default().apply_delta(d);
    let after: Vec<Option<RRset>> = keys.iter().map(|k| value(book, k)).collect();
    if let Some((digest, count)) = book.summaries.get_mut(zone) {
        for ((k, b), a) in keys.iter().zip(before).zip(after) {
            if let Some(b) = b {
                *digest = digest.wrapping_sub(meshdns_replication::replica::rrset_digest(k, &b));
                *count -= 1;
            }
            if let Some(a) = a {
                *digest = digest.wrapping_add(meshdns_replication::replica::rrset_digest(k, &a));
                *count += 1;
            }
        }
    }
}

/// Whether `delta` holds a write or a number `replica` does not hold.
fn is_news(replica: Option<&ZoneReplica>, delta: &Delta) -> bool {
    let Some(replica) = replica else { return true };
    let Some(seen) = replica.knowledge().get(&delta.origin) else { return true };
    delta.writes.iter().any(|w| !seen.contains(w.seq)) || delta.covered.iter().any(|&(_, b)| b > seen.contiguous())
}

/// Adopts the snapshot parts gathered per zone.
fn adopt_pending(book: &mut Book, pending: &mut BTreeMap<String, Vec<Part>>) -> Result<(), ReplicatedError> {
    for (zone, parts) in std::mem::take(pending) {
        let wire_zone =
            zone_wire(&zone).ok_or_else(|| ReplicatedError::Invalid("bad zone name in a snapshot".into()))?;
        let snap = wire::snapshot_from_parts(parts).map_err(|e| ReplicatedError::Invalid(e.to_string()))?;
        let replica = if wire_zone.is_empty() { &mut book.catalog } else { book.zones.entry(wire_zone).or_default() };
        replica.adopt_snapshot(snap).map_err(|e| ReplicatedError::Invalid(e.to_string()))?;
    }
    Ok(())
}

fn install_snapshots(book: &mut Book, parts: BTreeMap<String, Vec<Part>>) -> Result<(), ReplicatedError> {
    for (zone, parts) in parts {
        let wire_zone =
            zone_wire(&zone).ok_or_else(|| ReplicatedError::Invalid("bad zone name in a snapshot".into()))?;
        let snap = wire::snapshot_from_parts(parts).map_err(|e| ReplicatedError::Invalid(e.to_string()))?;
        let replica = ZoneReplica::from_snapshot(snap).map_err(|e| ReplicatedError::Invalid(e.to_string()))?;
        if wire_zone.is_empty() {
            book.catalog = replica;
        } else {
            book.zones.insert(wire_zone, replica);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(text: &str) -> Vec<(EntryKey, Option<RRset>)> {
        text::parse_rrsets("example.net.", text, "<test>").unwrap().into_iter().map(|(k, v)| (k, Some(v))).collect()
    }

    /// The digest and count `zone list` shows are kept up to date change by
    /// change; they must equal what a full walk of the zone gives.
    #[test]
    fn zone_summaries_kept_change_by_change_equal_a_full_recount() {
        let dir = tempfile::tempdir().unwrap();
        let zones = ReplicatedZones::open(dir.path(), "a", Box::new(|| 1_000)).unwrap();
        zones.create_zone("example.net", 3600).unwrap();
        let recount = |zones: &ReplicatedZones| {
            let live = zones.rrsets("example.net").unwrap();
            let digest = meshdns_replication::replica::rrsets_digest(live.iter().map(|(k, v)| (k, v)));
            (digest, live.len())
        };
        let listed = |zones: &ReplicatedZones| {
            let z = zones.list().into_iter().next().unwrap();
            (z.digest, z.rrsets)
        };
        assert_eq!(listed(&zones), recount(&zones), "first listing computes it");
        zones.write("example.net", sets("ns1 300 IN A 192.0.2.1\n@ 300 IN NS ns1\nwww 60 IN A 192.0.2.2\n")).unwrap();
        assert_eq!(listed(&zones), recount(&zones));
        // A replacement, a TTL change and a removal in one write, one key twice.
        let mut change = sets("www 60 IN A 192.0.2.3\nwww 60 IN A 192.0.2.4\nns1 30 IN A 192.0.2.1\n");
        change.push((EntryKey::new(b"\x03www\x07example\x03net\x00", 1).unwrap(), None));
        zones.write("example.net", change).unwrap();
        assert_eq!(listed(&zones), recount(&zones));
        assert_eq!(listed(&zones).1, 3, "SOA, NS, ns1 A");
        // Deleted and created again: computed afresh.
        zones.delete_zone("example.net").unwrap();
        zones.create_zone("example.net", 3600).unwrap();
        assert_eq!(listed(&zones), recount(&zones));
        assert_eq!(listed(&zones).1, 1);
    }

    /// What `--wait-for` asks a peer: whether it holds one write, by its
    /// number. A node holding more writes (its own) but not this one says
    /// no; once the write arrives, yes.
    #[test]
    fn holds_answers_for_the_write_itself_not_a_count() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = ReplicatedZones::open(da.path(), "a", Box::new(|| 1_000)).unwrap();
        let b = ReplicatedZones::open(db.path(), "b", Box::new(|| 2_000)).unwrap();
        a.create_zone("example.net", 3600).unwrap();
        let sync = |from: &ReplicatedZones, to: &ReplicatedZones| {
            for f in from.answer_pull(&to.version_vectors()).0 {
                to.apply_remote(&f).unwrap();
            }
        };
        sync(&a, &b);
        for _ in 0..3 {
            b.write("example.net", sets("b 300 IN A 192.0.2.1\n")).unwrap();
        }
        let w = a.write_versioned("example.net", sets("w 300 IN A 192.0.2.7\n")).unwrap().unwrap();
        assert!(a.holds(&w.zone, &w.origin, w.seq));
        assert!(b.zone_serial("example.net") > a.zone_serial("example.net"), "b holds more writes");
        assert!(!b.holds(&w.zone, &w.origin, w.seq), "but not this one");
        sync(&a, &b);
        assert!(b.holds(&w.zone, &w.origin, w.seq));
        assert!(!b.holds("example.org", &w.origin, w.seq), "another zone");
    }
}
