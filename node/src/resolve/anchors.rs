//! RFC 5011 automated trust-anchor updates, driven for the iterative
//! resolver: the state machine is `meshdns_resolver::dnssec::AnchorState`;
//! this module reads and writes its file and runs the periodic checks.
//!
//! One zone is tracked: the first of the configured anchors (the root,
//! when it is anchored); anchors for other zones stay as configured. At
//! start, `DATA_DIR/trust-anchors.state`, if it exists, parses and is
//! for that zone, replaces the configured anchors of the zone (its VALID
//! and MISSING keys; `--trust-anchor` and the built-in root anchors only
//! seed a node that has no state yet). Delete the file to start again
//! from the configured anchors.
//!
//! Then [`run`] resolves the zone's DNSKEY RRset (DO set, CD clear, the
//! cached copy dropped first so the server is asked) through the
//! recursor, every RFC 5011 §2.3 period; a Secure answer — validated
//! against the anchors in use, §2.1 — goes to `AnchorState::observe`;
//! the file is rewritten (temp file, fsync, rename) when its text
//! changed, and the recursor's anchors replaced when the trusted keys
//! did (`Recursor::set_anchors`, which flushes what a withdrawn key had
//! validated). A state that trusts no key at all (every key revoked) is
//! written but not applied: the zone keeps its last anchors, so it fails
//! closed (Bogus) rather than becoming Insecure.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use meshdns_resolver::dnssec::{AnchorState, TrustAnchors};
use meshdns_resolver::proto::{DNSSECRData, Name, RData, Record, RecordType};
use meshdns_resolver::recursive::Recursor;
use meshdns_resolver::{Question, Resolved, Security};

use super::ResolverService;
use super::drive::{drive, now_ms};

/// RFC 5011 §2.3: never check more often than hourly…
const MIN_PERIOD_S: u64 = 3_600;
/// …nor less often than every 15 days (after success).
const MAX_PERIOD_S: u64 = 15 * 86_400;

/// What the resolver starts with: the anchors, and the tracked state
/// (`None`: no anchors, nothing to track) with the text of its file as
/// read (`None`: no usable file, so the first check writes it).
pub(super) struct Startup {
    pub(super) anchors: TrustAnchors,
    pub(super) tracked: Option<Tracked>,
}

/// The tracked zone's state and what its file holds.
pub(super) struct Tracked {
    state: AnchorState,
    on_disk: Option<String>,
}

/// The anchors to start from: `configured` (file or built in), with the
/// tracked zone's anchors taken from the state file at `path` when it is
/// there and sound (see the module docs).
pub(super) fn startup(path: &Path, configured: TrustAnchors, now_s: u64) -> Startup {
    let Some(zone) = configured.zones().next().cloned() else { return Startup { anchors: configured, tracked: None } };
    let seeded = |configured: TrustAnchors| {
        let records = configured.for_zone(&zone).map(<[Record]>::to_vec).unwrap_or_default();
        let state = AnchorState::new(&zone, &records, now_s);
        Startup { anchors: configured, tracked: Some(Tracked { state, on_disk: None }) }
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(file = %path.display(), %zone, "no RFC 5011 state file yet: trust anchors as configured");
            return seeded(configured);
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the RFC 5011 state file; trust anchors as configured");
            return seeded(configured);
        }
    };
    match AnchorState::from_text(&text) {
        Ok(state) if state.zone() == &zone => {
            let trusted = state.trusted();
            if trusted.is_empty() {
                tracing::error!(file = %path.display(), %zone, "the RFC 5011 state file trusts no key (all revoked?); trust anchors as configured");
                return seeded(configured);
            }
            tracing::info!(
                file = %path.display(), %zone, keys = trusted.len(),
                "trust anchors from the RFC 5011 state file (instead of --trust-anchor or the built-in ones)"
            );
            let mut anchors = configured;
            anchors.set_zone(&zone, trusted);
            Startup { anchors, tracked: Some(Tracked { state, on_disk: Some(text) }) }
        }
        Ok(state) => {
            tracing::warn!(file = %path.display(), file_zone = %state.zone(), %zone, "the RFC 5011 state file is for another zone; ignored, trust anchors as configured");
            seeded(configured)
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "the RFC 5011 state file does not parse; ignored, trust anchors as configured");
            seeded(configured)
        }
    }
}

/// The periodic RFC 5011 checks of the tracked zone (module docs). Runs
/// until the runtime stops; returns at once if there is nothing to track.
pub async fn run(r: Arc<ResolverService>) {
    let (Some(rec), Some(mut tracked)) = (r.recursor().cloned(), r.take_anchor_state()) else { return };
    let path = r.settings().anchor_state_file.clone();
    let fixed = r.settings().anchor_refresh_s;
    loop {
        let zone = tracked.state.zone().clone();
        let res = check(&r, &rec, &zone).await;
        let now_s = now_ms() / 1000;
        let wait = if res.security == Security::Secure {
            let seen = keys_and_sigs(&res, &zone);
            tracked.state.observe(&seen, now_s);
            save(&path, &mut tracked).await;
            apply(&rec, &tracked.state);
            fixed.unwrap_or_else(|| period(&seen, now_s))
        } else {
            tracing::warn!(%zone, rcode = %res.rcode, security = ?res.security, ede = ?res.ede, "RFC 5011: the DNSKEY RRset did not validate; anchors unchanged");
            // §2.3's retry is max(1 hour, min(1 day, a tenth of the TTL
            // and of the signature lifetime)); without a valid answer
            // those are unknown, so the floor: an hour.
            fixed.unwrap_or(MIN_PERIOD_S)
        };
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

/// Resolves `zone` DNSKEY afresh, with DO, through the recursor.
async fn check(r: &ResolverService, rec: &Arc<Recursor>, zone: &Name) -> Resolved {
    rec.cache().remove_rrset(zone, RecordType::DNSKEY);
    let m = rec.start(Question::new(zone, RecordType::DNSKEY), true, false, now_ms());
    drive(m, r.exchanges.clone(), r.tcp_pool.clone(), super::service::RESOLUTION_DEADLINE).await
}

/// The zone's DNSKEY records and the RRSIGs over them, from an answer.
fn keys_and_sigs(res: &Resolved, zone: &Name) -> Vec<Record> {
    res.answer
        .iter()
        .filter(|r| r.name() == zone)
        .filter(|r| r.record_type() == RecordType::DNSKEY || rrsig_over_dnskey(r).is_some())
        .cloned()
        .collect()
}

/// (original TTL, expiration) of an RRSIG covering DNSKEY.
fn rrsig_over_dnskey(r: &Record) -> Option<(u32, u64)> {
    match r.data() {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) if s.type_covered() == RecordType::DNSKEY => {
            Some((s.original_ttl(), u64::from(s.sig_expiration().get())))
        }
        _ => None,
    }
}

/// RFC 5011 §2.3, after a successful check: max(1 hour, min(15 days,
/// half the original TTL, half the time left to the first signature
/// expiry)).
fn period(seen: &[Record], now_s: u64) -> u64 {
    let sigs: Vec<(u32, u64)> = seen.iter().filter_map(rrsig_over_dnskey).collect();
    let ttl = sigs.iter().map(|(t, _)| u64::from(*t)).min().unwrap_or(MAX_PERIOD_S * 2);
    let left = sigs.iter().map(|(_, e)| e.saturating_sub(now_s)).min().unwrap_or(MAX_PERIOD_S * 2);
    MIN_PERIOD_S.max(MAX_PERIOD_S.min(ttl / 2).min(left / 2))
}

/// Writes the state file if its text changed: temp file, fsync, rename,
/// so a crash leaves the old file or the new one, never half of one.
async fn save(path: &Path, tracked: &mut Tracked) {
    let text = tracked.state.to_text();
    if tracked.on_disk.as_deref() == Some(text.as_str()) {
        return;
    }
    let (p, t) = (path.to_owned(), text.clone());
    let written = tokio::task::spawn_blocking(move || write_atomically(&p, &t)).await;
    match written {
        Ok(Ok(())) => {
            tracing::info!(file = %path.display(), zone = %tracked.state.zone(), "RFC 5011 state written");
            tracked.on_disk = Some(text);
        }
        Ok(Err(e)) => tracing::warn!(file = %path.display(), error = %e, "cannot write the RFC 5011 state file"),
        Err(e) => tracing::error!(error = %e, "writing the RFC 5011 state file panicked (a bug)"),
    }
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("state.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // The rename itself is durable once the directory is synced.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Gives the recursor the state's trusted keys, if they changed (and are
/// not empty: see the module docs).
fn apply(rec: &Recursor, state: &AnchorState) {
    let Some(current) = rec.anchors() else { return };
    let trusted = state.trusted();
    let zone = state.zone();
    let now: Vec<&RData> = current.for_zone(zone).unwrap_or_default().iter().map(Record::data).collect();
    let same = now.len() == trusted.len() && trusted.iter().all(|r| now.contains(&r.data()));
    if same {
        return;
    }
    if trusted.is_empty() {
        tracing::error!(%zone, "RFC 5011: no key of the zone is trusted any more (all revoked?); keeping the last anchors");
        return;
    }
    let mut next = (*current).clone();
    next.set_zone(zone, trusted);
    let withdrawn = rec.set_anchors(next);
    tracing::info!(%zone, ?withdrawn, "RFC 5011: trust anchors updated");
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshdns_resolver::dnssec::text::parse_records;

    /// KSK-2017, tag 20326.
    const KSK: &str = ". 172800 IN DNSKEY 257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU=\n";

    fn root() -> Name {
        Name::root()
    }

    fn is_dnskey_anchored(s: &Startup) -> bool {
        s.anchors.for_zone(&root()).unwrap_or_default().iter().all(|r| r.record_type() == RecordType::DNSKEY)
    }

    #[test]
    fn a_sound_state_file_replaces_the_configured_anchors() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("trust-anchors.state");
        let keys = parse_records(KSK, None).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, AnchorState::new(&root(), &keys, 1).to_text()).unwrap_or_else(|e| panic!("{e}"));
        let s = startup(&path, TrustAnchors::builtin_root(), 2);
        assert!(is_dnskey_anchored(&s), "the state file's key, not the built-in DS records");
        assert_eq!(s.anchors.for_zone(&root()).map(<[Record]>::len), Some(1));
        assert!(s.tracked.as_ref().is_some_and(|t| t.on_disk.is_some()), "not written again unless it changes");
    }

    #[test]
    fn no_file_a_bad_one_or_another_zones_means_the_configured_anchors() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("trust-anchors.state");
        let s = startup(&path, TrustAnchors::builtin_root(), 1);
        assert_eq!(s.anchors, TrustAnchors::builtin_root());
        assert!(s.tracked.as_ref().is_some_and(|t| t.on_disk.is_none() && t.state.zone().is_root()));
        for text in ["garbage here\n".to_owned(), KSK.replacen(". ", "example. ", 1)] {
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
            let s = startup(&path, TrustAnchors::builtin_root(), 1);
            assert_eq!(s.anchors, TrustAnchors::builtin_root());
        }
        assert!(startup(&path, TrustAnchors::default(), 1).tracked.is_none(), "nothing anchored, nothing tracked");
    }

    #[test]
    fn the_period_follows_rfc_5011_section_2_3() {
        let sig = |ttl: u32, exp: &str| {
            let text = format!(". {ttl} IN RRSIG DNSKEY 8 0 {ttl} {exp} 20250101000000 20326 . AAAA\n");
            parse_records(&text, None).unwrap_or_else(|e| panic!("{e}"))
        };
        let now = 1_767_225_600; // 2026-01-01
        // Half the TTL (1 day → 12 h).
        assert_eq!(period(&sig(86_400, "20360101000000"), now), 43_200);
        // Never above 15 days.
        assert_eq!(period(&sig(10_000_000, "20360101000000"), now), MAX_PERIOD_S);
        // Half the time the signature has left: 4 h → 2 h.
        assert_eq!(period(&sig(86_400, "20260101040000"), now), 7_200);
        // Never below an hour (the TTL is a minute).
        assert_eq!(period(&sig(60, "20360101000000"), now), MIN_PERIOD_S);
    }
}
