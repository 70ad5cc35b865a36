//! Deltas on the wire: the FlatBuffer of `schemas/fbs/replication_delta.fbs`.
//!
//! Decoding runs the FlatBuffers verifier and then checks every field
//! against [`Limits`]: a peer that sends garbage gets an error, and nothing
//! it sent reaches a replica.

use flatbuffers::{FlatBufferBuilder, VerifierOptions, WIPOffset};
use meshdns_schemas::replication_delta as fb;

use crate::hlc::Hlc;
use crate::model::{EntryKey, RRset, Write};
use crate::replica::{BadSnapshot, Delta, OriginState, Snapshot};
use crate::seen::SeqSet;

/// One decoded message: a delta, or one origin's part of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The zone.
    pub zone: String,
    /// The origin's writes and the numbers covered.
    pub delta: Delta,
    /// Whether this is part of a snapshot (see the schema).
    pub snapshot: bool,
    /// Tombstones of the origin collected by the sender, up to this number.
    pub collected: u64,
}

/// Bounds on what a decoded delta may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest encoded delta, in bytes.
    pub max_bytes: usize,
    /// Most writes in one delta.
    pub max_writes: usize,
    /// Most covered ranges in one delta.
    pub max_ranges: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 64 * 1024 * 1024, max_writes: 1_000_000, max_ranges: 100_000 }
    }
}

/// Why a delta could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Longer than [`Limits::max_bytes`].
    #[error("delta of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not a FlatBuffer of the delta schema.
    #[error("not a replication delta: {0}")]
    Invalid(String),
    /// A version this node does not read.
    #[error("delta format version {0} is not supported (this node reads version 1)")]
    Version(u16),
    /// A field out of bounds.
    #[error("bad delta: {0}")]
    Field(&'static str),
}

/// Bytes of writes a message carries at most, well under
/// [`Limits::max_bytes`], so a large import travels as several messages.
pub const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Writes a message carries at most.
pub const CHUNK_WRITES: usize = 50_000;

/// Encodes `delta` of `zone` as one message. Use [`encode_chunked`] for a
/// delta that may be large.
pub fn encode(zone: &str, delta: &Delta) -> Vec<u8> {
    encode_part(zone, delta, false, 0)
}

/// Encodes `delta` of `zone` as messages of at most [`CHUNK_BYTES`] of
/// writes and [`CHUNK_WRITES`] writes each: every message covers a slice of
/// the numbers with the writes among them, so each applies on its own, in
/// any order.
pub fn encode_chunked(zone: &str, delta: &Delta) -> Vec<Vec<u8>> {
    split(delta).iter().map(|d| encode_part(zone, d, false, 0)).collect()
}

/// Splits a delta into deltas of bounded size (see [`encode_chunked`]).
pub fn split(delta: &Delta) -> Vec<Delta> {
    let mut writes: Vec<&Write> = delta.writes.iter().collect();
    writes.sort_by_key(|w| w.seq);
    // The last number of each chunk but the final one, which runs to the end.
    let mut cuts: Vec<u64> = Vec::new();
    let (mut bytes, mut count) = (0usize, 0usize);
    for (i, w) in writes.iter().enumerate() {
        bytes += write_size(w);
        count += 1;
        let next_same = writes.get(i + 1).is_some_and(|n| n.seq == w.seq);
        if (bytes >= CHUNK_BYTES || count >= CHUNK_WRITES) && !next_same && i + 1 < writes.len() {
            cuts.push(w.seq);
            bytes = 0;
            count = 0;
        }
    }
    if cuts.is_empty() {
        return vec![delta.clone()];
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut lo = 0u64;
    for hi in cuts.iter().copied().map(Some).chain(std::iter::once(None)) {
        let inside = |s: u64| s > lo && hi.is_none_or(|h| s <= h);
        let covered: Vec<(u64, u64)> = delta
            .covered
            .iter()
            .filter_map(|&(a, z)| {
                let a = a.max(lo + 1);
                let z = hi.map_or(z, |h| z.min(h));
                (a <= z).then_some((a, z))
            })
            .collect();
        let writes: Vec<Write> = delta.writes.iter().filter(|w| inside(w.seq)).cloned().collect();
        out.push(Delta { origin: delta.origin.clone(), covered, writes });
        lo = hi.unwrap_or(u64::MAX);
    }
    out
}

/// About what a write takes in a message.
fn write_size(w: &Write) -> usize {
    64 + w.origin.len() + w.key.owner.len() + w.value.as_ref().map_or(0, |v| v.rdata.iter().map(|r| r.len() + 8).sum())
}

/// Encodes a snapshot of `zone`: per origin, one message or several (each
/// with the origin's numbers and a share of its writes, see [`split`]).
pub fn encode_snapshot(zone: &str, snap: &Snapshot) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (origin, st) in &snap.origins {
        let mut covered = Vec::new();
        if st.contiguous > 0 {
            covered.push((1, st.contiguous));
        }
        covered.extend(st.beyond.iter().map(|&b| (b, b)));
        let writes: Vec<Write> = snap.writes.iter().filter(|w| &w.origin == origin).cloned().collect();
        let whole = Delta { origin: origin.clone(), covered: covered.clone(), writes };
        for piece in split(&whole) {
            // Every part states the origin's whole knowledge: a receiver
            // checks they agree, and no number is lost with a part.
            let part = Delta { origin: origin.clone(), covered: covered.clone(), writes: piece.writes };
            out.push(encode_part(zone, &part, true, st.collected));
        }
    }
    out
}

/// Puts a snapshot back together from its parts (all of one zone).
pub fn snapshot_from_parts(parts: Vec<Part>) -> Result<Snapshot, BadSnapshot> {
    let mut snap = Snapshot { origins: Default::default(), writes: Vec::new() };
    for p in parts {
        if !p.snapshot {
            return Err(BadSnapshot("a delta among snapshot parts"));
        }
        let mut seen = SeqSet::default();
        for (a, z) in p.delta.covered {
            if a == z {
                seen.insert(a);
            } else {
                seen.insert_range(a, z);
            }
        }
        let st = OriginState { contiguous: seen.contiguous(), beyond: seen.beyond().collect(), collected: p.collected };
        match snap.origins.get(&p.delta.origin) {
            // Several parts of one origin: a large snapshot, split.
            Some(known) if *known != st => return Err(BadSnapshot("parts of one origin disagree")),
            Some(_) => {}
            None => {
                snap.origins.insert(p.delta.origin.clone(), st);
            }
        }
        snap.writes.extend(p.delta.writes.into_iter().filter(|w| w.origin == p.delta.origin));
    }
    Ok(snap)
}

fn encode_part(zone: &str, delta: &Delta, snapshot: bool, collected: u64) -> Vec<u8> {
    let mut b = FlatBufferBuilder::with_capacity(256 + delta.writes.len() * 64);
    let writes: Vec<WIPOffset<fb::WriteRecord>> = delta
        .writes
        .iter()
        .map(|w| {
            let owner = b.create_vector(&w.key.owner);
            let (ttl, rdata) = match &w.value {
                Some(v) => {
                    let items: Vec<_> = v
                        .rdata
                        .iter()
                        .map(|r| {
                            let bytes = b.create_vector(r);
                            fb::Rdata::create(&mut b, &fb::RdataArgs { bytes: Some(bytes) })
                        })
                        .collect();
                    (v.ttl, Some(b.create_vector(&items)))
                }
                None => (0, None),
            };
            fb::WriteRecord::create(
                &mut b,
                &fb::WriteRecordArgs {
                    seq: w.seq,
                    wall_ms: w.hlc.wall_ms,
                    logical: w.hlc.logical,
                    owner: Some(owner),
                    rtype: w.key.rtype,
                    deleted: w.value.is_none(),
                    ttl,
                    rdata,
                },
            )
        })
        .collect();
    let writes = b.create_vector(&writes);
    let ranges: Vec<fb::SeqRange> = delta.covered.iter().map(|&(a, z)| fb::SeqRange::new(a, z)).collect();
    let covered = b.create_vector(&ranges);
    let zone = b.create_string(zone);
    let origin = b.create_string(&delta.origin);
    let root = fb::Delta::create(
        &mut b,
        &fb::DeltaArgs {
            version: 1,
            zone: Some(zone),
            origin: Some(origin),
            covered: Some(covered),
            writes: Some(writes),
            snapshot,
            collected,
        },
    );
    fb::finish_delta_buffer(&mut b, root);
    b.finished_data().to_vec()
}

/// Decodes and checks one message.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Part, WireError> {
    if buf.len() > limits.max_bytes {
        return Err(WireError::TooLarge(buf.len()));
    }
    // flatbuffers asserts (panics) on a buffer too short for an identifier.
    if buf.len() < 8 || !fb::delta_buffer_has_identifier(buf) {
        return Err(WireError::Invalid("missing the MDRD identifier".into()));
    }
    let opts = VerifierOptions {
        max_tables: limits.max_writes.saturating_mul(4).saturating_add(1024),
        max_apparent_size: limits.max_bytes,
        ..VerifierOptions::default()
    };
    let d = fb::root_as_delta_with_opts(&opts, buf).map_err(|e| WireError::Invalid(e.to_string()))?;
    if d.version() != 1 {
        return Err(WireError::Version(d.version()));
    }
    let zone = d.zone().ok_or(WireError::Field("no zone"))?.to_owned();
    let origin = d.origin().ok_or(WireError::Field("no origin"))?.to_owned();
    if origin.is_empty() || origin.len() > 127 {
        return Err(WireError::Field("origin must be 1-127 bytes"));
    }
    let covered: Vec<(u64, u64)> =
        d.covered().map(|v| v.iter().map(|r| (r.from(), r.to())).collect()).unwrap_or_default();
    if covered.len() > limits.max_ranges {
        return Err(WireError::Field("too many ranges"));
    }
    if covered.iter().any(|&(a, z)| a == 0 || a > z) {
        return Err(WireError::Field("a range is empty or starts at 0"));
    }
    let records = d.writes().map(|v| v.len()).unwrap_or(0);
    if records > limits.max_writes {
        return Err(WireError::Field("too many writes"));
    }
    let mut writes = Vec::with_capacity(records);
    for r in d.writes().into_iter().flatten() {
        let owner = r.owner().ok_or(WireError::Field("a write without owner"))?;
        let key = EntryKey::new(owner.bytes(), r.rtype()).ok_or(WireError::Field("owner is not a wire-form name"))?;
        let value = if r.deleted() {
            None
        } else {
            let rdata: Vec<Vec<u8>> = r
                .rdata()
                .map(|v| v.iter().map(|x| x.bytes().map(|b| b.bytes().to_vec()).unwrap_or_default()).collect())
                .unwrap_or_default();
            if rdata.iter().any(|x| x.len() > usize::from(u16::MAX)) {
                return Err(WireError::Field("RDATA over 65535 bytes"));
            }
            Some(RRset::new(r.ttl(), rdata))
        };
        writes.push(Write {
            origin: origin.clone(),
            seq: r.seq(),
            hlc: Hlc { wall_ms: r.wall_ms(), logical: r.logical() },
            key,
            value,
        });
    }
    Ok(Part { zone, delta: Delta { origin, covered, writes }, snapshot: d.snapshot(), collected: d.collected() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Delta {
        let key = |o: &str| EntryKey::new(&wire(o), 1).unwrap();
        Delta {
            origin: "fra1-a".into(),
            covered: vec![(1, 7), (9, 9)],
            writes: vec![
                Write {
                    origin: "fra1-a".into(),
                    seq: 3,
                    hlc: Hlc { wall_ms: 1_700_000_000_000, logical: 2 },
                    key: key("www.example.com."),
                    value: Some(RRset::new(300, vec![vec![192, 0, 2, 1], vec![192, 0, 2, 2]])),
                },
                Write {
                    origin: "fra1-a".into(),
                    seq: 9,
                    hlc: Hlc { wall_ms: 1_700_000_000_001, logical: 0 },
                    key: key("old.example.com."),
                    value: None,
                },
            ],
        }
    }

    /// Wire form of a plain dotted name (no escapes), for tests.
    fn wire(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for l in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
        out
    }

    #[test]
    fn bad_owner_names_are_refused() {
        let mut d = sample();
        d.writes[0].key.owner = vec![3, b'w', b'w']; // truncated label
        assert_eq!(
            decode(&encode("x.", &d), &Limits::default()),
            Err(WireError::Field("owner is not a wire-form name"))
        );
        assert!(crate::model::valid_wire_name(&wire("a.b.")));
        assert!(!crate::model::valid_wire_name(&[64; 70]));
    }

    #[test]
    fn deltas_round_trip() {
        let d = sample();
        let bytes = encode("example.com.", &d);
        let part = decode(&bytes, &Limits::default()).unwrap();
        assert_eq!(part.zone, "example.com.");
        assert_eq!(part.delta, d);
        assert!(!part.snapshot);
    }

    #[test]
    fn snapshots_round_trip_through_parts() {
        let mut r = crate::ZoneReplica::new();
        let key = |o: &str| EntryKey::new(&wire(o), 1).unwrap();
        r.write("a", Hlc { wall_ms: 1, logical: 0 }, key("x.example."), Some(RRset::new(60, vec![vec![1, 2, 3, 4]])));
        r.write("a", Hlc { wall_ms: 2, logical: 0 }, key("y.example."), None);
        r.apply(Write {
            origin: "b".into(),
            seq: 3,
            hlc: Hlc { wall_ms: 3, logical: 0 },
            key: key("z.example."),
            value: None,
        });
        let snap = r.snapshot();
        let parts: Vec<Part> =
            encode_snapshot("example.", &snap).iter().map(|b| decode(b, &Limits::default()).unwrap()).collect();
        assert_eq!(parts.len(), 2);
        let back = crate::ZoneReplica::from_snapshot(snapshot_from_parts(parts).unwrap()).unwrap();
        assert_eq!(back.snapshot(), snap);
    }

    /// A replica holding `n` writes of origin "a" (every third one later
    /// overwritten, so the covered numbers have writes missing) and a few of "b".
    fn big_replica(n: u32) -> crate::ZoneReplica {
        let mut r = crate::ZoneReplica::new();
        for i in 0..n {
            let owner = wire(&format!("h{}.example.", i % (n - n / 3).max(1)));
            let rdata = vec![b'x'; 200];
            r.write(
                "a",
                Hlc { wall_ms: u64::from(i), logical: 0 },
                EntryKey::new(&owner, 16).unwrap(),
                Some(RRset::new(60, vec![rdata])),
            );
        }
        r.write("b", Hlc { wall_ms: u64::from(n), logical: 0 }, EntryKey::new(&wire("b.example."), 1).unwrap(), None);
        r
    }

    #[test]
    fn a_large_delta_travels_in_bounded_chunks_that_apply_in_any_order() {
        let r = big_replica(120_000);
        let deltas = r.deltas_for(&Default::default()).unwrap();
        let mut frames: Vec<Vec<u8>> = deltas.iter().flat_map(|d| encode_chunked("example.", d)).collect();
        assert!(frames.len() >= 4, "{} frames", frames.len());
        assert!(frames.iter().all(|f| f.len() <= CHUNK_BYTES + 1024 * 1024), "every frame well under the limit");
        frames.reverse();
        let mut back = crate::ZoneReplica::new();
        for f in &frames {
            back.apply_delta(decode(f, &Limits::default()).unwrap().delta);
        }
        assert_eq!(back.digest(), r.digest());
        assert_eq!(back.version_vector(), r.version_vector());
        assert_eq!(back.serial(), r.serial());
    }

    #[test]
    fn a_large_snapshot_travels_in_parts_that_must_agree() {
        let r = big_replica(120_000);
        let snap = r.snapshot();
        let frames = encode_snapshot("example.", &snap);
        assert!(frames.len() >= 4, "{} parts", frames.len());
        let mut parts: Vec<Part> = frames.iter().map(|f| decode(f, &Limits::default()).unwrap()).collect();
        let back = crate::ZoneReplica::from_snapshot(snapshot_from_parts(parts.clone()).unwrap()).unwrap();
        assert_eq!(back.snapshot(), snap);
        // A part whose numbers disagree with its sibling's is refused.
        parts[0].delta.covered = vec![(1, 5)];
        assert_eq!(snapshot_from_parts(parts).unwrap_err(), BadSnapshot("parts of one origin disagree"));
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let bytes = encode("example.com.", &sample());
        for n in 0..bytes.len() {
            let _ = decode(&bytes[..n], &Limits::default()); // never panics
        }
        assert!(matches!(decode(b"hello world, not a delta", &Limits::default()), Err(WireError::Invalid(_))));
        let small = Limits { max_bytes: 16, ..Limits::default() };
        assert!(matches!(decode(&bytes, &small), Err(WireError::TooLarge(_))));
        let few = Limits { max_writes: 1, ..Limits::default() };
        assert_eq!(decode(&bytes, &few), Err(WireError::Field("too many writes")));
    }

    #[test]
    fn a_one_record_change_is_small() {
        let mut d = sample();
        d.writes.truncate(1);
        d.covered = vec![(42, 42)];
        let n = encode("example.com.", &d).len();
        // Two A records at www.example.com.: a fraction of an AXFR's size.
        assert!(n < 300, "{n} bytes");
    }
}
