//! Trust anchors (RFC 4033 §5): the DS or DNSKEY records a chain of trust
//! starts from, built in for the root or read from a file.

use std::collections::BTreeMap;

use hickory_proto::rr::{Name, Record, RecordType};

use super::text::{TextError, parse_records};
use super::verify::{dnskey, ds, key_tag};

/// The root KSKs as DS records (SHA-256), as IANA publishes them in
/// root-anchors.xml: KSK-2017 (key tag 20326) and KSK-2024 (key tag
/// 38696).
const ROOT_ANCHORS: &str = "\
. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
";

/// Why a trust-anchor file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// The text is not zone-file syntax we read.
    #[error("trust anchor {0}")]
    Syntax(#[from] TextError),
    /// A record other than DS or DNSKEY.
    #[error("trust anchor line {line}: {rtype} record for {name}: only DS and DNSKEY can be anchors")]
    NotAnAnchor {
        /// 1-based line (record number when the line is not known).
        line: usize,
        /// The record's owner.
        name: Name,
        /// Its type.
        rtype: RecordType,
    },
    /// No record at all.
    #[error("trust anchor file holds no DS or DNSKEY record")]
    Empty,
}

/// The trust anchors, by zone: each zone's DS and/or DNSKEY records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    zones: BTreeMap<Name, Vec<Record>>,
}

impl TrustAnchors {
    /// The root KSKs built in: KSK-2017 (key tag 20326) and KSK-2024 (key
    /// tag 38696) as DS records (SHA-256), from IANA's root-anchors.xml.
    pub fn builtin_root() -> Self {
        // The text is a constant checked by a test, so this cannot fail
        // at run time; fall back to no anchor rather than panic.
        Self::parse(ROOT_ANCHORS).unwrap_or_default()
    }

    /// Zone-file text of DS and/or DNSKEY records, the `--trust-anchor
    /// FILE` format: what unbound's `trust-anchor-file` and
    /// `auto-trust-anchor-file` accept (`$ORIGIN`, `$TTL`, `;` comments,
    /// parentheses; in an RFC 5011 auto file only keys in state VALID or
    /// MISSING are taken). Errors name the line.
    pub fn parse(text: &str) -> Result<Self, AnchorError> {
        // An RFC 5011 state file lists keys not (or no longer) trusted
        // too: keep only VALID (2) and MISSING (3) ones, as unbound does.
        // Blanking the line keeps the line numbers of errors right.
        let kept: String = text
            .lines()
            .map(|line| match auto_state(line) {
                Some(state) if state != 2 && state != 3 => "",
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let text = kept.as_str();
        let records = parse_records(text, None)?;
        if records.is_empty() {
            return Err(AnchorError::Empty);
        }
        let mut anchors = TrustAnchors::default();
        for (i, record) in records.into_iter().enumerate() {
            match record.record_type() {
                RecordType::DS | RecordType::DNSKEY => anchors.add(record),
                rtype => {
                    return Err(AnchorError::NotAnAnchor {
                        line: line_of(text, i),
                        name: record.name().clone(),
                        rtype,
                    });
                }
            }
        }
        Ok(anchors)
    }

    /// Adds one DS or DNSKEY record as an anchor for its owner.
    pub fn add(&mut self, record: Record) {
        let zone = record.name().to_lowercase();
        let entry = self.zones.entry(zone).or_default();
        if !entry.iter().any(|r| r.data() == record.data()) {
            entry.push(record);
        }
    }

    /// The closest anchor at or above `name`, if any (its owner name).
    pub fn closest(&self, name: &Name) -> Option<&Name> {
        // BTreeMap keys are in canonical order, not by depth: look each
        // ancestor up, nearest first.
        let labels = usize::from(name.num_labels()) + usize::from(name.is_wildcard());
        (0..=labels).rev().find_map(|n| {
            let ancestor = name.trim_to(n).to_lowercase();
            self.zones.get_key_value(&ancestor).map(|(k, _)| k)
        })
    }

    /// The anchor records for `zone` (DS and/or DNSKEY records).
    pub fn for_zone(&self, zone: &Name) -> Option<&[Record]> {
        self.zones.get(&zone.to_lowercase()).map(Vec::as_slice)
    }

    /// Every zone with an anchor.
    pub fn zones(&self) -> impl Iterator<Item = &Name> {
        self.zones.keys()
    }

    /// Replaces the anchors of `zone` with `records` (its DS and/or
    /// DNSKEY records; none removes the zone's anchor).
    pub fn set_zone(&mut self, zone: &Name, records: Vec<Record>) {
        let zone = zone.to_lowercase();
        self.zones.remove(&zone);
        for r in records.into_iter().filter(|r| r.name() == &zone) {
            self.add(r);
        }
    }

    /// The zones whose trust `next` withdraws: some record anchoring the
    /// zone here is gone from `next`, and is not a DS whose key `next`
    /// anchors directly (RFC 5011 turns a DS anchor into the DNSKEY it
    /// matches, which trusts the same key). Data validated under `self`
    /// in these zones may no longer be Secure under `next`.
    pub fn withdrawn(&self, next: &TrustAnchors) -> Vec<Name> {
        self.zones
            .iter()
            .filter(|(zone, old)| {
                let new = next.zones.get(*zone).map(Vec::as_slice).unwrap_or_default();
                old.iter().any(|r| !new.iter().any(|n| n.data() == r.data()) && !ds_kept(zone, r, new))
            })
            .map(|(zone, _)| zone.clone())
            .collect()
    }
}

/// Whether `record` is a DS of `zone` matching a DNSKEY among `new`.
fn ds_kept(zone: &Name, record: &Record, new: &[Record]) -> bool {
    let Some(d) = ds(record) else { return false };
    new.iter().filter_map(dnskey).any(|k| {
        key_tag(k) == Some(d.key_tag()) && k.to_digest(zone, d.digest_type()).is_ok_and(|h| h.as_ref() == d.digest())
    })
}

/// The `;;state=N` of a line of an RFC 5011 state file, if it has one.
fn auto_state(line: &str) -> Option<u8> {
    let rest = line.split(";;state=").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The line where the `index`-th record of `text` starts, for messages:
/// found again by counting record lines (good enough for anchor files,
/// whose records are one per line or parenthesised).
fn line_of(text: &str, index: usize) -> usize {
    let mut seen = 0;
    let mut depth = 0i32;
    for (i, line) in text.lines().enumerate() {
        let code = line.split(';').next().unwrap_or("");
        let starts = depth == 0 && !code.trim().is_empty() && !code.trim_start().starts_with('$');
        if starts {
            if seen == index {
                return i + 1;
            }
            seen += 1;
        }
        depth += code.matches('(').count() as i32 - code.matches(')').count() as i32;
    }
    0
}
