//! Zone files as cluster zones: in a cluster (`--tls-dir` set), every file
//! of `--zone-dir` is imported into the replicated zone of the same name,
//! at start and on each reload, writing only what changed in the file.
//!
//! What wins when both the file and the admin API (or UPDATE) change a
//! zone: each RRset holds its latest write. An RRset the file changes is
//! written again (a newer write) and wins over earlier API changes to it;
//! RRsets the file did not change keep whatever the API wrote. The first
//! import makes the zone equal to the file. The last imported version of
//! each file is kept in `DATA_DIR/imports/` to tell what changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshdns_replication::{EntryKey, RRset};

use super::text::parse_rrsets;
use super::{ReplicatedError, ReplicatedZones};
use crate::dns::wire::name::to_text;
use crate::zone::store::initial_origin;

/// What importing one file did.
#[derive(Debug)]
pub struct FileImport {
    /// The file.
    pub file: PathBuf,
    /// The zone, and the RRsets written; or why the file was not imported.
    pub result: Result<(String, usize), String>,
}

type Sets = BTreeMap<EntryKey, RRset>;

/// Whether two RRsets are the same, SOAs compared without their serials
/// (the served serial is the node's own).
pub fn same_rrset(k: &EntryKey, a: &RRset, b: &RRset) -> bool {
    if k.rtype != 6 {
        return a == b;
    }
    let strip = |s: &RRset| s.rdata.iter().map(|r| r[..r.len().saturating_sub(20)].to_vec()).collect::<Vec<_>>();
    a.ttl == b.ttl && strip(a) == strip(b)
}

fn read_sets(file: &Path, origin: &str) -> Result<(String, Sets), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let sets: Sets = parse_rrsets(origin, &text, &file.display().to_string())?.into_iter().collect();
    let zone = sets
        .keys()
        .find(|k| k.rtype == 6)
        .map(|k| to_text(&k.owner))
        .ok_or_else(|| format!("{}: no SOA record", file.display()))?;
    Ok((zone, sets))
}

/// Imports every `*.zone` file of `zone_dir`.
pub fn import_dir(zones: &ReplicatedZones, zone_dir: &Path, data_dir: &Path) -> Vec<FileImport> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(zone_dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "zone") && p.is_file());
    files.sort();
    let state = data_dir.join("imports");
    files
        .into_iter()
        .map(|file| {
            let result = import_file(zones, &file, &state);
            if let Err(e) = &result {
                tracing::error!(file = %file.display(), error = %e, "zone file not imported into the cluster; the zone keeps its cluster version");
            }
            FileImport { file, result }
        })
        .collect()
}

fn import_file(zones: &ReplicatedZones, file: &Path, state: &Path) -> Result<(String, usize), String> {
    let origin = initial_origin(file);
    let (zone, new) = read_sets(file, &origin)?;
    let last_copy = state.join(format!("{zone}zone"));
    let previous: Option<Sets> =
        last_copy.exists().then(|| read_sets(&last_copy, &zone).map(|(_, s)| s).ok()).flatten();
    let mut created = false;
    let current: Sets = match zones.rrsets(&zone) {
        Ok(c) => c.into_iter().collect(),
        Err(ReplicatedError::NoZone(_)) => {
            zones.create_zone(&zone, 3600).map_err(|e| e.to_string())?;
            created = true;
            zones.rrsets(&zone).map_err(|e| e.to_string())?.into_iter().collect()
        }
        Err(e) => return Err(e.to_string()),
    };
    // Against the last imported version when there is one (only the file's
    // own changes are written); else against the zone as it is.
    let base = match (&previous, created) {
        (Some(p), false) => p,
        _ => &current,
    };
    let mut writes: Vec<(EntryKey, Option<RRset>)> = Vec::new();
    for (k, v) in &new {
        if !base.get(k).is_some_and(|b| same_rrset(k, b, v)) {
            writes.push((k.clone(), Some(v.clone())));
        }
    }
    for k in base.keys() {
        if k.rtype != 6 && !new.contains_key(k) {
            writes.push((k.clone(), None));
        }
    }
    let n = writes.len();
    if n > 0 {
        zones.write(&zone, writes).map_err(|e| e.to_string())?;
    }
    // Remember this version, durably: a crash must not leave a torn copy
    // that the next import would diff against.
    std::fs::create_dir_all(state).map_err(|e| format!("{}: {e}", state.display()))?;
    std::fs::read(file)
        .and_then(|bytes| meshdns_replication::journal::write_durably(&last_copy, &[&bytes]))
        .map_err(|e| format!("remembering {}: {e}", last_copy.display()))?;
    Ok((zone, n))
}
