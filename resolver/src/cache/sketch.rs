//! The hottest questions, for predictive cache warming.
//!
//! Each node counts the questions it is asked in a [`HotSketch`], a
//! Space-Saving top-K summary (Metwally, Agrawal, El Abbadi, "Efficient
//! computation of frequent and top-k elements in data streams", ICDT
//! 2005): K counters; a question already counted gets +1; a new one takes
//! over the smallest counter and inherits its count (+1), remembering that
//! count as its possible overestimate. Any question asked more than N/K
//! times in a stream of N is guaranteed to be held, in O(K) memory
//! whatever the flood of one-off names. [`HotSketch::decay`] halves every
//! count once per period, so yesterday's hot names give way.
//!
//! Nodes gossip [`HotSketch::encode`] (under 1 KiB, the hottest first)
//! and resolve what peers find hot before their own clients ask.
//!
//! Finding the smallest counter is a scan of K entries: for K ≤ 256 that
//! is a few hundred nanoseconds, paid only for questions not already held.

use std::collections::HashMap;

use hickory_proto::rr::{DNSClass, RecordType};

use super::key::{self, KeyBuf};
use crate::types::Question;

/// Largest [`HotSketch::encode`] output: 4 KiB (5.5 KB in base64), a gossip
/// value that only a few nodes per site publish, once a minute at most.
pub const MAX_ENCODED: usize = 4096;
/// Format version byte of the encoding.
const VERSION: u8 = 1;

/// Why an encoded sketch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SketchError {
    /// Empty, or of another version.
    #[error("unknown sketch version")]
    BadVersion,
    /// Over [`MAX_ENCODED`] bytes.
    #[error("sketch of {0} bytes is too long")]
    TooLong(usize),
    /// Ends inside an entry, or has bytes after the last.
    #[error("sketch is truncated or has trailing bytes")]
    Truncated,
    /// A name that is not an uncompressed wire name.
    #[error("sketch entry {0} has a malformed name")]
    BadName(usize),
}

struct Counter {
    q: Question,
    count: u64,
    /// How much of `count` may be inherited from the question replaced.
    error: u64,
}

/// A Space-Saving top-K counter of questions. See the module docs.
pub struct HotSketch {
    k: usize,
    counters: Vec<Counter>,
    index: HashMap<Question, usize>,
}

impl HotSketch {
    /// A sketch of `k` counters (at least 1).
    pub fn new(k: usize) -> Self {
        let k = k.max(1);
        HotSketch { k, counters: Vec::with_capacity(k), index: HashMap::with_capacity(k) }
    }

    /// Counts one asking of `q` (name expected lowercase, as
    /// [`Question::new`] makes it).
    pub fn observe(&mut self, q: &Question) {
        if let Some(&i) = self.index.get(q) {
            self.counters[i].count += 1;
            return;
        }
        if self.counters.len() < self.k {
            self.index.insert(q.clone(), self.counters.len());
            self.counters.push(Counter { q: q.clone(), count: 1, error: 0 });
            return;
        }
        let Some((i, _)) = self.counters.iter().enumerate().min_by_key(|(_, c)| c.count) else { return };
        let min = self.counters[i].count;
        self.index.remove(&self.counters[i].q);
        self.index.insert(q.clone(), i);
        self.counters[i] = Counter { q: q.clone(), count: min + 1, error: min };
    }

    /// The `n` most counted questions with their counts (an overestimate
    /// by at most the count they took over), most counted first.
    pub fn top(&self, n: usize) -> Vec<(Question, u64)> {
        let mut v: Vec<&Counter> = self.counters.iter().collect();
        v.sort_by(|a, b| {
            b.count.cmp(&a.count).then_with(|| a.q.name.cmp(&b.q.name)).then_with(|| a.q.qtype.cmp(&b.q.qtype))
        });
        v.into_iter().take(n).map(|c| (c.q.clone(), c.count)).collect()
    }

    /// The guaranteed part of `q`'s count (count less possible error), 0
    /// if it is not held.
    pub fn guaranteed(&self, q: &Question) -> u64 {
        self.index.get(q).map_or(0, |&i| self.counters[i].count - self.counters[i].error)
    }

    /// Halves every count (call once per period); counters that reach
    /// zero are freed.
    pub fn decay(&mut self) {
        for c in &mut self.counters {
            c.count /= 2;
            c.error /= 2;
        }
        self.counters.retain(|c| c.count > 0);
        self.index.clear();
        for (i, c) in self.counters.iter().enumerate() {
            self.index.insert(c.q.clone(), i);
        }
    }

    /// Questions held.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// The hottest class-IN questions in a compact form of at most
    /// [`MAX_ENCODED`] bytes: a version byte, then per question its name
    /// in lowercase wire form and its type (u16, big-endian), hottest
    /// first, as many as fit.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_within(MAX_ENCODED)
    }

    /// [`HotSketch::encode`] in at most `max_bytes` (capped at
    /// [`MAX_ENCODED`]): the hottest questions that fit, whole.
    pub fn encode_within(&self, max_bytes: usize) -> Vec<u8> {
        let max_bytes = max_bytes.min(MAX_ENCODED);
        let mut out = vec![VERSION];
        for (q, _) in self.top(self.k) {
            if q.qclass != DNSClass::IN {
                continue;
            }
            let mut k = KeyBuf::new(0);
            if !k.push_name(&q.name) {
                continue;
            }
            k.push_u16(q.qtype.into());
            let bytes = &k.as_bytes()[1..];
            if out.len() + bytes.len() > max_bytes {
                break;
            }
            out.extend_from_slice(bytes);
        }
        out
    }
}

/// The questions of an [`HotSketch::encode`] output, hottest first
/// (class IN).
pub fn decode(bytes: &[u8]) -> Result<Vec<Question>, SketchError> {
    if bytes.len() > MAX_ENCODED {
        return Err(SketchError::TooLong(bytes.len()));
    }
    let Some((&VERSION, mut rest)) = bytes.split_first() else { return Err(SketchError::BadVersion) };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let i = out.len();
        let n = key::name_wire_len(rest).ok_or(if rest.len() < 2 {
            SketchError::Truncated
        } else {
            SketchError::BadName(i)
        })?;
        let name = key::name_from_wire(&rest[..n]).ok_or(SketchError::BadName(i))?;
        let qtype = key::u16_at(rest, n).ok_or(SketchError::Truncated)?;
        out.push(Question::new(&name, RecordType::from(qtype)));
        rest = &rest[n + 2..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::Name;

    use super::*;

    fn q(name: &str, t: RecordType) -> Question {
        Question::new(&Name::from_str(name).unwrap_or_else(|e| panic!("{e}")), t)
    }

    #[test]
    fn heavy_hitters_survive_a_flood_of_one_offs() {
        let mut s = HotSketch::new(64);
        let hot = [q("www.example.com.", RecordType::A), q("api.example.net.", RecordType::AAAA)];
        for i in 0..20_000 {
            if i % 10 == 0 {
                s.observe(&hot[0]);
            }
            if i % 25 == 0 {
                s.observe(&hot[1]);
            }
            s.observe(&q(&format!("r{i}.flood.example."), RecordType::A));
        }
        assert_eq!(s.len(), 64);
        let top: Vec<Question> = s.top(2).into_iter().map(|(q, _)| q).collect();
        assert_eq!(top, hot.to_vec());
        // 2000 real observations of hot[0]; the guaranteed part never
        // exceeds the truth.
        assert!(s.guaranteed(&hot[0]) <= 2_000 && s.guaranteed(&hot[0]) > 0);
    }

    #[test]
    fn decay_halves_and_frees() {
        let mut s = HotSketch::new(8);
        let (a, b) = (q("a.", RecordType::A), q("b.", RecordType::A));
        for _ in 0..10 {
            s.observe(&a);
        }
        s.observe(&b);
        s.decay();
        assert_eq!(s.top(8), vec![(a.clone(), 5)]);
        s.observe(&a);
        assert_eq!(s.top(1), vec![(a, 6)]);
    }

    #[test]
    fn encoding_round_trips_and_stays_under_1k() {
        let mut s = HotSketch::new(256);
        for i in 0..256u32 {
            let name = format!("{}.some-rather-long-label.example.org.", "x".repeat(1 + (i % 40) as usize));
            for _ in 0..(300 - i) {
                s.observe(&q(&format!("n{i}.{name}"), RecordType::AAAA));
            }
        }
        let enc = s.encode();
        assert!(enc.len() <= MAX_ENCODED, "{}", enc.len());
        let dec = decode(&enc).unwrap_or_else(|e| panic!("{e}"));
        assert!(dec.len() > 5, "{}", dec.len());
        let want: Vec<Question> = s.top(dec.len()).into_iter().map(|(q, _)| q).collect();
        assert_eq!(dec, want, "hottest first");
    }

    #[test]
    fn bad_encodings_are_refused() {
        let mut s = HotSketch::new(4);
        s.observe(&q("a.example.", RecordType::MX));
        let enc = s.encode();
        assert_eq!(decode(&enc), Ok(vec![q("a.example.", RecordType::MX)]));
        assert_eq!(decode(&[]), Err(SketchError::BadVersion));
        assert_eq!(decode(&[2]), Err(SketchError::BadVersion));
        assert_eq!(decode(&enc[..enc.len() - 1]), Err(SketchError::Truncated));
        assert!(decode(&[1, 0xc0, 0x0c, 0, 1]).is_err());
        assert!(decode(&vec![1; 2000]).is_err());
    }
}
