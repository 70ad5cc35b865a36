//! Automated updates of DNSSEC trust anchors (RFC 5011), sans-IO.
//!
//! One [`AnchorState`] per anchored zone. The driver validates the zone's
//! DNSKEY RRset against [`AnchorState::trusted`] with
//! [`super::validate_dnskeys`] (RFC 5011 §2.1: only a validated RRset may
//! change anchors), hands it to [`AnchorState::observe`] with the current
//! time, and writes [`AnchorState::to_text`] back to the anchor file, as
//! unbound does with its `auto-trust-anchor-file`. The clock is an
//! argument, so the 30-day hold-downs run on a virtual clock in tests.
//!
//! States (RFC 5011 §4), numbered as unbound writes them:
//! Start (0) → AddPend (1) when a new SEP key appears; AddPend → Valid (2)
//! once it has been seen for the add hold-down (30 days, §2.4.1), or
//! back to Start (forgotten) if it disappears first; Valid ⇄ Missing (3)
//! as it leaves and comes back; Valid/Missing → Revoked (4) when the key
//! appears with the REVOKE bit and signs the RRset itself (§2.1);
//! Revoked → Removed (5) after the remove hold-down (30 days, §2.4.2).
//! Valid and Missing keys are trusted; DS anchors from the initial file
//! are trusted until a key they match has been seen, which then becomes
//! Valid at once (it was trusted through the DS already).

use hickory_proto::dnssec::Verifier;
use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::rr::{Name, Record, RecordType};

use super::anchors::AnchorError;
use super::text::{TextError, parse_records};
use super::verify::{dnskey, ds, key_tag, signs_with};

/// RFC 5011 §2.4.1: a new key is trusted after being seen this long.
pub const ADD_HOLD_DOWN_S: u64 = 30 * 86_400;
/// RFC 5011 §2.4.2: a revoked key is kept (untrusted) this long.
pub const REMOVE_HOLD_DOWN_S: u64 = 30 * 86_400;

/// The state of one tracked key (RFC 5011 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Not seen yet (never stored: such a key is simply not tracked).
    Start,
    /// Seen, waiting out the add hold-down.
    AddPend,
    /// Trusted.
    Valid,
    /// Trusted, but absent from the last RRset seen.
    Missing,
    /// Revoked by its own signature; kept for the remove hold-down.
    Revoked,
    /// Past the remove hold-down; kept so it is never added again.
    Removed,
}

impl KeyState {
    /// Unbound's number for the state in an auto-trust-anchor file.
    pub fn number(self) -> u8 {
        match self {
            KeyState::Start => 0,
            KeyState::AddPend => 1,
            KeyState::Valid => 2,
            KeyState::Missing => 3,
            KeyState::Revoked => 4,
            KeyState::Removed => 5,
        }
    }

    fn from_number(n: u8) -> Option<Self> {
        Some(match n {
            0 => KeyState::Start,
            1 => KeyState::AddPend,
            2 => KeyState::Valid,
            3 => KeyState::Missing,
            4 => KeyState::Revoked,
            5 => KeyState::Removed,
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            KeyState::Start => "START",
            KeyState::AddPend => "ADDPEND",
            KeyState::Valid => "VALID",
            KeyState::Missing => "MISSING",
            KeyState::Revoked => "REVOKED",
            KeyState::Removed => "REMOVED",
        }
    }
}

/// One tracked key: the record as last seen, its state and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tracked {
    record: Record,
    state: KeyState,
    /// Unix seconds of the last state change.
    since: u64,
}

/// The same key, with or without the REVOKE bit: algorithm and key bytes.
fn same_key(a: &DNSKEY, b: &DNSKEY) -> bool {
    a.algorithm() == b.algorithm() && a.public_key() == b.public_key()
}

/// The RFC 5011 state of one zone's trust anchors (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorState {
    zone: Name,
    keys: Vec<Tracked>,
    /// DS anchors not yet matched to a key.
    ds: Vec<Record>,
}

impl AnchorState {
    /// Starts tracking `zone` from its configured anchors: DNSKEY records
    /// are Valid from `now_s`; DS records stay trusted until a matching
    /// key is seen.
    pub fn new(zone: &Name, anchors: &[Record], now_s: u64) -> Self {
        let mut state = AnchorState { zone: zone.to_lowercase(), keys: Vec::new(), ds: Vec::new() };
        for r in anchors.iter().filter(|r| r.name() == zone) {
            if dnskey(r).is_some() {
                state.keys.push(Tracked { record: r.clone(), state: KeyState::Valid, since: now_s });
            } else if ds(r).is_some() {
                state.ds.push(r.clone());
            }
        }
        state
    }

    /// The zone tracked.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// The anchors to validate the zone's DNSKEY RRset with: the Valid
    /// and Missing keys, and the DS records not yet matched.
    pub fn trusted(&self) -> Vec<Record> {
        self.keys
            .iter()
            .filter(|t| matches!(t.state, KeyState::Valid | KeyState::Missing))
            .map(|t| t.record.clone())
            .chain(self.ds.iter().cloned())
            .collect()
    }

    /// The state of the key with `tag` (the tag as it is now, so a
    /// revoked key's tag includes the REVOKE bit), if tracked.
    pub fn state_of(&self, tag: u16) -> Option<KeyState> {
        self.keys.iter().find(|t| dnskey(&t.record).and_then(key_tag) == Some(tag)).map(|t| t.state)
    }

    /// One observation of the zone's DNSKEY RRset, already validated
    /// against [`Self::trusted`] (RFC 5011 §2.1). `validated` holds the
    /// DNSKEY records and the RRSIG records over them: a key with the
    /// REVOKE bit counts as revoked only if it signs the RRset itself.
    pub fn observe(&mut self, validated: &[Record], now_s: u64) {
        let keys: Vec<&Record> = validated.iter().filter(|r| r.name() == &self.zone && dnskey(r).is_some()).collect();
        let rrset: Vec<Record> = keys.iter().map(|r| (*r).clone()).collect();
        let rrsigs: Vec<Record> = validated.iter().filter(|r| r.record_type() == RecordType::RRSIG).cloned().collect();
        let mut seen = vec![false; self.keys.len()];
        for record in keys {
            let Some(key) = dnskey(record) else { continue };
            // RFC 5011 tracks SEP keys (§2.1 talks of the KSKs).
            if !key.zone_key() || !key.secure_entry_point() {
                continue;
            }
            let idx = self.keys.iter().position(|t| dnskey(&t.record).is_some_and(|k| same_key(k, key)));
            if let Some(i) = idx {
                seen[i] = true;
            }
            if key.revoke() {
                if !signs_with(&rrset, &rrsigs, record, now_s) {
                    continue; // §2.1: a revocation must be self-signed
                }
                if let Some(i) = idx {
                    let t = &mut self.keys[i];
                    match t.state {
                        KeyState::Valid | KeyState::Missing => {
                            *t = Tracked { record: record.clone(), state: KeyState::Revoked, since: now_s };
                        }
                        KeyState::AddPend | KeyState::Start => t.state = KeyState::Start,
                        KeyState::Revoked | KeyState::Removed => {}
                    }
                }
                continue;
            }
            match idx {
                Some(i) => {
                    let t = &mut self.keys[i];
                    match t.state {
                        KeyState::Start => {
                            t.state = KeyState::AddPend;
                            t.since = now_s;
                        }
                        KeyState::AddPend if now_s.saturating_sub(t.since) >= ADD_HOLD_DOWN_S => {
                            t.state = KeyState::Valid;
                            t.since = now_s;
                        }
                        KeyState::Missing => {
                            t.state = KeyState::Valid;
                            t.since = now_s;
                        }
                        _ => {}
                    }
                    t.record = if matches!(t.state, KeyState::Revoked | KeyState::Removed) {
                        t.record.clone()
                    } else {
                        record.clone()
                    };
                }
                None => {
                    let by_ds = self.ds.iter().any(|d| {
                        ds(d).is_some_and(|d| {
                            Some(d.key_tag()) == key_tag(key)
                                && key.to_digest(&self.zone, d.digest_type()).is_ok_and(|h| h.as_ref() == d.digest())
                        })
                    });
                    let state = if by_ds { KeyState::Valid } else { KeyState::AddPend };
                    self.keys.push(Tracked { record: record.clone(), state, since: now_s });
                    seen.push(true);
                }
            }
        }
        for (t, seen) in self.keys.iter_mut().zip(&seen) {
            match t.state {
                KeyState::AddPend | KeyState::Start if !seen => t.state = KeyState::Start,
                KeyState::Valid if !seen => {
                    t.state = KeyState::Missing;
                    t.since = now_s;
                }
                KeyState::Revoked if now_s.saturating_sub(t.since) >= REMOVE_HOLD_DOWN_S => {
                    t.state = KeyState::Removed;
                    t.since = now_s;
                }
                _ => {}
            }
        }
        // Keys that fell back to Start are forgotten.
        self.keys.retain(|t| t.state != KeyState::Start);
        // Once a key is trusted, the DS anchors have done their job.
        if self.keys.iter().any(|t| t.state == KeyState::Valid) {
            self.ds.clear();
        }
    }

    /// The state as an anchor file: one record a line, each DNSKEY
    /// followed by unbound-style `;;state=N [ NAME ] ;;lastchange=SECS`.
    /// Read back with [`Self::from_text`], or as a plain anchor file with
    /// [`super::TrustAnchors::parse`] (the state is a comment).
    pub fn to_text(&self) -> String {
        let mut out = format!("; autotrust trust anchor file (RFC 5011)\n;;id: {} 1\n", self.zone);
        for t in &self.keys {
            if let Some(k) = dnskey(&t.record) {
                out.push_str(&format!(
                    "{} {} IN DNSKEY {k} ;{{id = {}}} ;;state={} [ {} ] ;;count=0 ;;lastchange={}\n",
                    self.zone,
                    t.record.ttl(),
                    key_tag(k).unwrap_or(0),
                    t.state.number(),
                    t.state.label(),
                    t.since
                ));
            }
        }
        for d in &self.ds {
            if let Some(ds) = ds(d) {
                out.push_str(&format!("{} {} IN DS {ds}\n", self.zone, d.ttl()));
            }
        }
        out
    }

    /// Reads what [`Self::to_text`] wrote. A DNSKEY without a state
    /// comment is Valid (a plain anchor file), with `lastchange` 0.
    pub fn from_text(text: &str) -> Result<Self, AnchorError> {
        let mut zone: Option<Name> = None;
        let mut state = AnchorState { zone: Name::root(), keys: Vec::new(), ds: Vec::new() };
        for (i, line) in text.lines().enumerate() {
            let lineno = i + 1;
            let code = line.split(';').next().unwrap_or("");
            if code.trim().is_empty() {
                continue;
            }
            let records = parse_records(code, None).map_err(|e| TextError { line: lineno, message: e.message })?;
            let Some(record) = records.into_iter().next() else { continue };
            match &zone {
                None => zone = Some(record.name().to_lowercase()),
                Some(z) if z != record.name() => {
                    return Err(TextError {
                        line: lineno,
                        message: format!("{} in an RFC 5011 file for {z}", record.name()),
                    }
                    .into());
                }
                Some(_) => {}
            }
            let field = |key: &str| {
                line.split(";;")
                    .find_map(|f| f.trim().strip_prefix(key))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
            };
            match record.record_type() {
                RecordType::DNSKEY => {
                    let key_state = match field("state=") {
                        None => KeyState::Valid,
                        Some(n) => u8::try_from(n)
                            .ok()
                            .and_then(KeyState::from_number)
                            .ok_or_else(|| TextError { line: lineno, message: format!("bad state {n}") })?,
                    };
                    if key_state != KeyState::Start {
                        let since = field("lastchange=").unwrap_or(0);
                        state.keys.push(Tracked { record, state: key_state, since });
                    }
                }
                RecordType::DS => state.ds.push(record),
                rtype => {
                    return Err(AnchorError::NotAnAnchor { line: lineno, name: record.name().clone(), rtype });
                }
            }
        }
        state.zone = zone.ok_or(AnchorError::Empty)?;
        Ok(state)
    }
}
