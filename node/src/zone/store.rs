//! Loads a zone directory into a [`ZoneSet`] and reloads it on request.
//!
//! Each `*.zone` file is one zone. Its name comes from the file name
//! (`example.com.zone` → `example.com.`; `root.zone` → the root) as the
//! initial `$ORIGIN`, and the zone is whatever the SOA owner says.
//!
//! A zone compiles to `DATA_DIR/snapshots/<file stem>-<path hash>.snap`. On
//! start and on reload a snapshot is reused when the digest of its sources
//! (zone file and includes, plus the compiler version) still matches; a
//! missing, stale or corrupt snapshot is rebuilt from the zone file. A zone
//! that fails to load keeps serving its previous version, if it had one, and
//! does not stop the other zones from loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use xxhash_rust::xxh3::xxh3_64;

use super::compile::compile;
use super::diag::{Diagnostic, ZoneError};
use super::parse::{parse_file, source_digest};
use super::set::ZoneSet;
use super::snapshot::{Snapshot, write_atomic};
use crate::dns::wire::name::to_text;

/// Outcome of loading one zone file.
#[derive(Debug)]
pub enum ZoneLoad {
    /// Compiled from the zone file.
    Compiled {
        /// Zone name (text).
        zone: String,
        /// SOA serial.
        serial: u32,
        /// Records in the zone.
        records: usize,
        /// Warnings.
        warnings: Vec<Diagnostic>,
        /// Seconds spent parsing and compiling.
        seconds: f64,
    },
    /// An existing snapshot was current and reused.
    Reused {
        /// Zone name.
        zone: String,
        /// SOA serial.
        serial: u32,
    },
    /// Unchanged since the last load: nothing done.
    Unchanged {
        /// Zone name.
        zone: String,
    },
    /// Failed; the previous version (if any) keeps serving.
    Failed {
        /// The zone file.
        file: PathBuf,
        /// Why.
        error: ZoneError,
        /// Whether an older version is still being served.
        kept_previous: bool,
    },
}

/// What a (re)load did, per zone file.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// One entry per zone file, in file name order.
    pub zones: Vec<ZoneLoad>,
    /// Zones dropped because their file disappeared.
    pub removed: Vec<String>,
}

impl LoadReport {
    /// Number of zones that failed.
    pub fn failures(&self) -> usize {
        self.zones.iter().filter(|z| matches!(z, ZoneLoad::Failed { .. })).count()
    }
}

/// The served zones, plus what is needed to reload them.
pub struct ZoneStore {
    zone_dir: PathBuf,
    snapshot_dir: PathBuf,
    current: ArcSwap<ZoneSet>,
    /// Zone file → loaded snapshot. Held only while (re)loading.
    loaded: Mutex<BTreeMap<PathBuf, Arc<Snapshot>>>,
    /// Load failures since start, per zone file (for metrics).
    failures: Mutex<BTreeMap<String, u64>>,
    /// Replicated zones, by origin: served beside the files' zones, and
    /// instead of a file's zone of the same name.
    replicated: Mutex<Arc<BTreeMap<Vec<u8>, Arc<Snapshot>>>>,
}

impl ZoneStore {
    /// A store serving nothing yet.
    pub fn new(zone_dir: &Path, data_dir: &Path) -> Self {
        ZoneStore {
            zone_dir: zone_dir.to_owned(),
            snapshot_dir: data_dir.join("snapshots"),
            current: ArcSwap::from_pointee(ZoneSet::default()),
            loaded: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
            replicated: Mutex::new(Arc::new(BTreeMap::new())),
        }
    }

    /// The zone set to answer from; one atomic load, never blocks.
    pub fn current(&self) -> arc_swap::Guard<Arc<ZoneSet>> {
        self.current.load()
    }

    /// A shared handle on the current set (for long-lived readers).
    pub fn current_full(&self) -> Arc<ZoneSet> {
        self.current.load_full()
    }

    /// Load failures since start, by zone file.
    pub fn failure_counts(&self) -> BTreeMap<String, u64> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Replaces the replicated zones and swaps in the new set.
    pub fn set_replicated(&self, zones: Arc<BTreeMap<Vec<u8>, Arc<Snapshot>>>) {
        // Lock order: `loaded`, then `replicated` (as in `publish`).
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        *self.replicated.lock().unwrap_or_else(|e| e.into_inner()) = zones;
        self.publish(loaded.values().cloned().collect());
    }

    /// Serves the files' zones plus the replicated ones (a replicated zone
    /// wins over a file's zone of the same name).
    fn publish(&self, file_zones: Vec<Arc<Snapshot>>) {
        let replicated = self.replicated.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut zones: Vec<Arc<Snapshot>> = file_zones
            .into_iter()
            .filter(|z| {
                let shadowed = replicated.contains_key(z.origin());
                if shadowed {
                    tracing::warn!(zone = %to_text(z.origin()), "a replicated zone of that name is served instead of the file's");
                }
                !shadowed
            })
            .collect();
        zones.extend(replicated.values().cloned());
        self.current.store(Arc::new(ZoneSet::new(zones)));
    }

    /// (Re)loads every `*.zone` file and swaps the result in atomically.
    ///
    /// Errors reading the directory itself are returned; per-zone failures
    /// are in the report and leave that zone's previous version serving.
    pub fn reload(&self) -> std::io::Result<LoadReport> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.zone_dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.zone_dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "zone") && p.is_file())
            .collect();
        files.sort();
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let mut report = LoadReport::default();
        let mut next: BTreeMap<PathBuf, Arc<Snapshot>> = BTreeMap::new();
        for file in &files {
            let previous = loaded.get(file).cloned();
            let result = self.load_one(file, previous.as_ref());
            match result {
                Ok((snap, outcome)) => {
                    next.insert(file.clone(), snap);
                    report.zones.push(outcome);
                }
                Err(error) => {
                    if let Ok(mut f) = self.failures.lock() {
                        *f.entry(file.display().to_string()).or_default() += 1;
                    }
                    // The last good version: the one in memory, or after a
                    // restart the snapshot it left on disk (its sources have
                    // changed since, which is why it was not reused).
                    let fallback = previous.or_else(|| self.last_good_snapshot(file));
                    let kept_previous = fallback.is_some();
                    if let Some(prev) = fallback {
                        next.insert(file.clone(), prev);
                    }
                    report.zones.push(ZoneLoad::Failed { file: file.clone(), error, kept_previous });
                }
            }
        }
        // Two files claiming one zone: the first (by file name) wins.
        let mut by_origin: BTreeMap<Vec<u8>, PathBuf> = BTreeMap::new();
        let mut dupes = Vec::new();
        for (file, snap) in &next {
            if let Some(first) = by_origin.get(snap.origin()) {
                dupes.push((file.clone(), first.clone(), to_text(snap.origin())));
            } else {
                by_origin.insert(snap.origin().to_vec(), file.clone());
            }
        }
        for (file, first, zone) in dupes {
            next.remove(&file);
            let error = ZoneError::single(Diagnostic::error(
                &file,
                0,
                format!("zone {zone} is already loaded from {}", first.display()),
            ));
            report.zones.push(ZoneLoad::Failed { file, error, kept_previous: false });
        }
        for (file, snap) in loaded.iter() {
            if !next.contains_key(file) && !files.contains(file) {
                report.removed.push(to_text(snap.origin()));
            }
        }
        self.publish(next.values().cloned().collect());
        *loaded = next;
        self.remove_stale_snapshots(&loaded, &files);
        if report.zones.iter().any(|z| matches!(z, ZoneLoad::Compiled { .. })) {
            super::snapshot::release_freed_memory();
        }
        Ok(report)
    }

    fn snapshot_path(&self, file: &Path) -> PathBuf {
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let abs = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
        let tag = xxh3_64(abs.as_os_str().as_encoded_bytes());
        self.snapshot_dir.join(format!("{stem}-{tag:016x}.snap"))
    }

    fn load_one(&self, file: &Path, previous: Option<&Arc<Snapshot>>) -> Result<(Arc<Snapshot>, ZoneLoad), ZoneError> {
        let err = |text: String| ZoneError::single(Diagnostic::error(file, 0, text));
        let snap_path = self.snapshot_path(file);
        // Unchanged since the last load?
        if let Some(prev) = previous {
            let srcs: Vec<PathBuf> = prev.sources().iter().map(PathBuf::from).collect();
            if source_digest(&srcs).ok() == Some(prev.source_digest()) {
                return Ok((prev.clone(), ZoneLoad::Unchanged { zone: to_text(prev.origin()) }));
            }
        }
        // A current snapshot on disk from an earlier run?
        if snap_path.exists() {
            match Snapshot::open(&snap_path) {
                Ok(snap) => {
                    let srcs: Vec<PathBuf> = snap.sources().iter().map(PathBuf::from).collect();
                    if srcs.first().map(PathBuf::as_path) == Some(file)
                        && source_digest(&srcs).ok() == Some(snap.source_digest())
                    {
                        let outcome = ZoneLoad::Reused { zone: to_text(snap.origin()), serial: snap.serial() };
                        return Ok((Arc::new(snap), outcome));
                    }
                }
                Err(e) => {
                    tracing::warn!(snapshot = %snap_path.display(), error = %e, "snapshot unusable, rebuilding from the zone file")
                }
            }
        }
        let started = Instant::now();
        let parsed = parse_file(file, Some(&initial_origin(file)))?;
        let compiled = compile(&parsed, None)?;
        // A snapshot that cannot be written (full or read-only disk) must not
        // take the zone down: serve the same bytes from memory and say so.
        // A restart (or a reload after the file changes) writes it once
        // there is room.
        let snap = match write_atomic(&snap_path, compiled.payload(), parsed.digest) {
            Ok(()) => Snapshot::open(&snap_path).map_err(|e| err(format!("reading back the snapshot failed: {e}")))?,
            Err(e) => {
                tracing::warn!(zone = %to_text(&compiled.origin), error = %e, "snapshot could not be written; serving the zone from memory");
                Snapshot::in_memory(compiled.payload(), parsed.digest, &snap_path)
                    .map_err(|e| err(format!("building the in-memory snapshot failed: {e}")))?
            }
        };
        let outcome = ZoneLoad::Compiled {
            zone: to_text(&compiled.origin),
            serial: compiled.serial,
            records: compiled.records,
            warnings: compiled.warnings,
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok((Arc::new(snap), outcome))
    }

    /// A valid snapshot on disk compiled from `file`, however old.
    fn last_good_snapshot(&self, file: &Path) -> Option<Arc<Snapshot>> {
        let snap = Snapshot::open(&self.snapshot_path(file)).ok()?;
        (snap.sources().first().map(Path::new) == Some(file)).then(|| Arc::new(snap))
    }

    /// Deletes snapshots that belong to no zone file any more. A snapshot
    /// of a file that still exists is kept even when unused: it is the last
    /// good version to fall back on if that file is broken at a restart.
    fn remove_stale_snapshots(&self, loaded: &BTreeMap<PathBuf, Arc<Snapshot>>, files: &[PathBuf]) {
        let Ok(entries) = std::fs::read_dir(&self.snapshot_dir) else {
            return;
        };
        let wanted: Vec<PathBuf> = files.iter().map(|f| self.snapshot_path(f)).collect();
        for e in entries.flatten() {
            let p = e.path();
            let in_use = loaded.values().any(|s| s.path() == p) || wanted.contains(&p);
            if !in_use && p.extension().is_some_and(|x| x == "snap") {
                // Already-mapped snapshots stay valid after unlink.
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// The initial `$ORIGIN` for a zone file, from its name.
pub fn initial_origin(file: &Path) -> String {
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    match stem.trim_end_matches('.') {
        "" | "root" => ".".to_owned(),
        s => format!("{s}."),
    }
}
