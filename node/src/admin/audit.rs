//! The audit log: one JSON line per administrative action (gRPC writes,
//! RFC 2136 UPDATEs, reloads), in `audit.file` (default
//! `DATA_DIR/audit.log`), rotated by size.
//!
//! When a write would take the file past `audit.max_bytes` it is renamed
//! to `FILE.1` (`FILE.1` to `FILE.2`, and so on) and a new one started;
//! `audit.keep` rotated files are kept, the oldest deleted. `meshdns audit
//! tail|search` read them, oldest first.
//!
//! Failing to write an entry is logged (`error`) but does not undo or
//! refuse the action: the data plane must not stop because a disk filled.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Default size at which the file is rotated: 16 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default number of rotated files kept.
pub const DEFAULT_KEEP: usize = 5;
/// The file's name under the data directory by default.
pub const DEFAULT_FILE_NAME: &str = "audit.log";

/// Where and how much to keep (`[audit]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSettings {
    /// The live file; rotated ones are `FILE.1` (newest) to `FILE.KEEP`.
    pub file: PathBuf,
    /// Rotate before the file would grow past this.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: usize,
}

/// One administrative action.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// When, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// When, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The node that did it.
    pub node: String,
    /// Who: `token:NAME`, `anonymous` (a node without tokens),
    /// `tsig:KEY-NAME`, `unsigned` (an UPDATE without TSIG) or
    /// `signal:SIGHUP`.
    pub actor: String,
    /// The client's address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// What: `zone.create`, `zone.delete`, `zone.set`, `zone.remove`,
    /// `zone.import`, `dns.update`, `reload`.
    pub action: String,
    /// Which zone, if the action is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// `ok`, `denied` (authentication or authorization) or `error`.
    pub result: String,
    /// Details: what was written, or why it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// What an action names; the log adds the time and node.
#[derive(Clone, Debug, Default)]
pub struct Action {
    /// See [`Entry::actor`].
    pub actor: String,
    /// See [`Entry::peer`].
    pub peer: Option<String>,
    /// See [`Entry::action`].
    pub action: String,
    /// See [`Entry::zone`].
    pub zone: Option<String>,
    /// See [`Entry::result`].
    pub result: String,
    /// See [`Entry::detail`].
    pub detail: String,
}

/// The wall clock, in Unix milliseconds (the driver passes it in).
pub type Clock = Box<dyn Fn() -> u64 + Send + Sync>;

/// The open audit log.
pub struct AuditLog {
    settings: AuditSettings,
    node: String,
    clock: Clock,
    /// The open file and its size.
    file: Mutex<Option<(std::fs::File, u64)>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// The `n`th rotated file (`FILE.n`).
pub fn rotated(file: &Path, n: usize) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl AuditLog {
    /// A log writing to `settings.file` (created, with its directory, on
    /// the first entry).
    pub fn new(settings: AuditSettings, node: &str, clock: Clock) -> AuditLog {
        AuditLog { settings, node: node.to_owned(), clock, file: Mutex::new(None) }
    }

    /// Where it writes.
    pub fn settings(&self) -> &AuditSettings {
        &self.settings
    }

    /// Appends one entry (rotating first if it would not fit).
    pub fn record(&self, action: Action) {
        let unix_ms = (self.clock)();
        let entry = Entry {
            time: rfc3339(unix_ms),
            unix_ms,
            node: self.node.clone(),
            actor: action.actor,
            peer: action.peer,
            action: action.action,
            zone: action.zone,
            result: action.result,
            detail: action.detail,
        };
        if let Err(e) = self.append(&entry) {
            tracing::error!(file = %self.settings.file.display(), error = %e, action = %entry.action,
                "cannot write the audit log (is the disk full or the directory read-only?)");
        }
    }

    fn append(&self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, size)) = guard.as_ref()
            && *size > 0
            && size.saturating_add(line.len() as u64) > self.settings.max_bytes
        {
            *guard = None;
            self.rotate()?;
        }
        if guard.is_none() {
            if let Some(dir) = self.settings.file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let f = std::fs::OpenOptions::new().create(true).append(true).open(&self.settings.file)?;
            let size = f.metadata()?.len();
            *guard = Some((f, size));
            // A file already past the limit (a restart) is rotated now.
            if size > 0 && size.saturating_add(line.len() as u64) > self.settings.max_bytes {
                *guard = None;
                self.rotate()?;
                let f = std::fs::OpenOptions::new().create(true).append(true).open(&self.settings.file)?;
                *guard = Some((f, 0));
            }
        }
        let Some((f, size)) = guard.as_mut() else { return Ok(()) };
        f.write_all(&line)?;
        *size += line.len() as u64;
        Ok(())
    }

    /// `FILE.keep` is dropped, every `FILE.n` becomes `FILE.n+1`, `FILE`
    /// becomes `FILE.1`.
    fn rotate(&self) -> std::io::Result<()> {
        let file = &self.settings.file;
        let keep = self.settings.keep;
        if keep == 0 {
            return std::fs::remove_file(file);
        }
        match std::fs::remove_file(rotated(file, keep)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for n in (1..keep).rev() {
            match std::fs::rename(rotated(file, n), rotated(file, n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::rename(file, rotated(file, 1))
    }
}

/// The log's files that exist, oldest first (`FILE.keep` .. `FILE.1`,
/// `FILE`). Rotated files beyond `keep` are read too, if present.
pub fn files(file: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut n = 1;
    while rotated(file, n).exists() {
        out.push(rotated(file, n));
        n += 1;
    }
    out.reverse();
    if file.exists() {
        out.push(file.to_owned());
    }
    out
}

/// Every entry of the log, oldest first. Lines that are not entries (a
/// torn last line after a crash) are skipped and counted.
pub fn read_all(file: &Path) -> std::io::Result<(Vec<Entry>, usize)> {
    let mut entries = Vec::new();
    let mut bad = 0;
    for f in files(file) {
        let r = std::io::BufReader::new(std::fs::File::open(&f)?);
        for line in r.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Entry>(&line) {
                Ok(e) => entries.push(e),
                Err(_) => bad += 1,
            }
        }
    }
    Ok((entries, bad))
}

/// What `meshdns audit search` looks for; every field given must match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The zone, with or without the final dot, any case.
    pub zone: Option<String>,
    /// The actor: the whole `token:ops`, or the name alone (`ops`).
    pub actor: Option<String>,
    /// The action: exact (`zone.set`) or its group (`zone`).
    pub action: Option<String>,
    /// Entries at or after this Unix time in milliseconds.
    pub since_ms: Option<u64>,
}

impl Filter {
    /// Whether `e` matches.
    pub fn matches(&self, e: &Entry) -> bool {
        let norm = |z: &str| z.trim_end_matches('.').to_ascii_lowercase();
        if let Some(z) = &self.zone
            && e.zone.as_deref().map(norm) != Some(norm(z))
        {
            return false;
        }
        if let Some(a) = &self.actor
            && e.actor != *a
            && e.actor.split_once(':').is_none_or(|(_, name)| name != a)
        {
            return false;
        }
        if let Some(a) = &self.action
            && e.action != *a
            && !e.action.strip_prefix(a.as_str()).is_some_and(|rest| rest.starts_with('.'))
        {
            return false;
        }
        self.since_ms.is_none_or(|t| e.unix_ms >= t)
    }
}

/// Parses `--since`: RFC 3339 (`2026-12-05T17:00:00Z`), Unix seconds, or
/// an age before `now_ms` (`30s`, `10m`, `2h`, `7d`).
pub fn parse_since(text: &str, now_ms: u64) -> Option<u64> {
    let t = text.trim();
    if let Some(ms) = parse_rfc3339(t) {
        return Some(ms);
    }
    if let Ok(secs) = t.parse::<u64>() {
        return secs.checked_mul(1000);
    }
    let (num, unit) = t.split_at(t.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(now_ms.saturating_sub(secs.checked_mul(1000)?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (the inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-12-05T17:04:05.123Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, unix_ms % 1000)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC only) or `YYYY-MM-DD`.
pub fn parse_rfc3339(t: &str) -> Option<u64> {
    let num = |s: &str| s.parse::<u32>().ok();
    let (date, time) = match t.split_once(['T', 't', ' ']) {
        Some((d, rest)) => (d, Some(rest.strip_suffix(['Z', 'z'])?)),
        None => (t, None),
    };
    let mut dp = date.split('-');
    let (y, m, d) = (num(dp.next()?)?, num(dp.next()?)?, num(dp.next()?)?);
    if dp.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) || date.len() != 10 {
        return None;
    }
    let (mut secs, mut ms) = (0u64, 0u64);
    if let Some(time) = time {
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let mut tp = hms.split(':');
        let (h, mi, s) = (num(tp.next()?)?, num(tp.next()?)?, num(tp.next()?)?);
        if tp.next().is_some() || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        secs = u64::from(h * 3600 + mi * 60 + s);
        if !frac.is_empty() {
            let digits: String = frac.chars().chain("000".chars()).take(3).collect();
            ms = u64::from(num(&digits)?);
        }
    }
    let days = u64::try_from(days_from_civil(i64::from(y), m, d)).ok()?;
    Some((days * 86_400 + secs) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for ms in [0, 951_782_400_000, 1_796_490_245_123, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms), "{}", rfc3339(ms));
        }
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(parse_rfc3339("2000-02-29"), Some(951_782_400_000));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00+01:00"), None);
        assert_eq!(parse_since("10m", 1_000_000), Some(400_000));
        assert_eq!(parse_since("1700000000", 0), Some(1_700_000_000_000));
        assert_eq!(parse_since("soon", 0), None);
    }

    #[test]
    fn filters_match_names_groups_and_zones() {
        let e = Entry {
            time: rfc3339(5000),
            unix_ms: 5000,
            node: "n".into(),
            actor: "token:ops".into(),
            peer: None,
            action: "zone.set".into(),
            zone: Some("Example.com.".into()),
            result: "ok".into(),
            detail: String::new(),
        };
        let f = |zone: Option<&str>, actor: Option<&str>, action: Option<&str>, since_ms| Filter {
            zone: zone.map(Into::into),
            actor: actor.map(Into::into),
            action: action.map(Into::into),
            since_ms,
        };
        assert!(f(Some("example.com"), Some("ops"), Some("zone"), Some(5000)).matches(&e));
        assert!(f(None, Some("token:ops"), Some("zone.set"), None).matches(&e));
        assert!(!f(Some("example.org"), None, None, None).matches(&e));
        assert!(!f(None, Some("op"), None, None).matches(&e));
        assert!(!f(None, None, Some("zone.s"), None).matches(&e));
        assert!(!f(None, None, None, Some(5001)).matches(&e));
    }

    #[test]
    fn rotation_keeps_n_files_and_reads_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a").join("audit.log");
        let clock = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = clock.clone();
        let log = AuditLog::new(
            AuditSettings { file: file.clone(), max_bytes: 400, keep: 2 },
            "n1",
            Box::new(move || c.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        );
        for i in 0..40 {
            log.record(Action {
                actor: "token:ops".into(),
                action: "zone.set".into(),
                zone: Some(format!("z{i}.")),
                result: "ok".into(),
                ..Action::default()
            });
        }
        let names = files(&file);
        assert_eq!(names, vec![rotated(&file, 2), rotated(&file, 1), file.clone()]);
        for f in &names {
            assert!(std::fs::metadata(f).unwrap().len() <= 400, "{}", f.display());
        }
        let (entries, bad) = read_all(&file).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(entries.last().unwrap().zone.as_deref(), Some("z39."));
        assert!(entries.windows(2).all(|w| w[0].unix_ms < w[1].unix_ms), "oldest first");
        assert!(entries.len() < 40, "the oldest were rotated away");
    }
}
