//! Authenticated gossip: the cluster keyring and the envelope every gossip
//! datagram and seed-referral message travels in.
//!
//! Without a key anyone who can reach a gossip port can join the mesh,
//! forge members, or steer replication through gossiped values (agreement
//! levels, zone serials). With one, a message is accepted only if it was
//! sealed, recently, by a holder of a key in this node's keyring, and has
//! not been seen before. The shape follows memberlist's keyring (several
//! keys accepted, one primary that signs, so keys rotate without downtime),
//! but with HMAC-SHA256 (RFC 2104) over the whole envelope: gossip is
//! authenticated, not encrypted.
//!
//! Envelope (all integers big-endian):
//!
//! ```text
//! | "MG" | version 1 | kind | key id (4) | unix ms (8) | nonce (16) | payload | tag (32) |
//! ```
//!
//! The tag covers every byte before it, so the kind (gossip datagram,
//! referral request, referral answer) cannot be swapped and the timestamp
//! cannot be moved. A receiver checks, in this order, before anything
//! decodes the payload: the framing, the key id, the tag (constant time),
//! the time window, and the replay cache. Junk therefore never reaches the
//! cache, and only key holders can fill it.
//!
//! Sans-IO: the caller passes `now` (Unix milliseconds) and the nonce; this
//! module reads no clock and draws no randomness.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use ring::hmac;

/// Length of a cluster key (HMAC-SHA256 key), in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the nonce in each envelope.
pub const NONCE_LEN: usize = 16;
/// Length of the tag (HMAC-SHA256 output).
pub const TAG_LEN: usize = 32;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 2 + 1 + 1 + 4 + 8 + NONCE_LEN;
/// Bytes an envelope adds to its payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// How far a sender's clock may be from the receiver's, either way: five
/// minutes, Kerberos's usual skew (RFC 4120 §1.6). Narrower would cut a node
/// with a drifting clock out of the mesh (the chaos suite steps clocks by up
/// to two minutes); a replay inside the window is caught by the cache.
pub const DEFAULT_WINDOW_MS: u64 = 300_000;
/// Most (timestamp, nonce) pairs remembered for replay detection: a node
/// in three pools receives some tens of messages per second, so this
/// covers the window many times over (about 10 MiB when full).
pub const DEFAULT_REPLAY_CAPACITY: usize = 200_000;

const MAGIC: [u8; 2] = *b"MG";
const VERSION: u8 = 1;

/// What an envelope carries; part of the signed header, so a message of one
/// kind cannot be replayed as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A chitchat datagram.
    Gossip = 1,
    /// A newcomer's referral request (TCP).
    ReferralRequest = 2,
    /// A seed's referral answer (TCP).
    ReferralAnswer = 3,
}

/// Why a message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// Not an envelope of this version or kind (unauthenticated gossip, junk).
    Malformed,
    /// Sealed with a key this node does not hold.
    UnknownKey,
    /// The tag does not match: tampered, or a forged key id.
    BadTag,
    /// Sealed outside the time window (a late replay, or a skewed clock).
    Stale,
    /// Seen before.
    Replay,
}

impl Reject {
    /// Every cause, for metrics that list them all.
    pub const ALL: [Reject; 5] = [Reject::Malformed, Reject::UnknownKey, Reject::BadTag, Reject::Stale, Reject::Replay];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::UnknownKey => "unknown_key",
            Reject::BadTag => "bad_tag",
            Reject::Stale => "stale",
            Reject::Replay => "replay",
        }
    }
}

/// A problem with a key or keyring file. Never quotes key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read the gossip keyring {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a key.
    #[error(
        "gossip keyring line {line}: expected {} hex digits (create a key with `meshdns cluster key generate`)",
        KEY_LEN * 2
    )]
    BadKey {
        /// 1-based line number.
        line: usize,
    },
    /// No key at all.
    #[error("the gossip keyring has no key (create one with `meshdns cluster key generate`)")]
    Empty,
    /// The system random generator failed.
    #[error("cannot draw random bytes for a key")]
    Random,
}

/// One cluster key. Its bytes never appear in `Debug` output or logs; its
/// id (a hash prefix) does, and is not secret.
#[derive(Clone)]
pub struct GossipKey {
    bytes: [u8; KEY_LEN],
    id: u32,
    hmac: hmac::Key,
}

impl GossipKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: [u8; KEY_LEN]) -> GossipKey {
        let digest =
            ring::digest::digest(&ring::digest::SHA256, &[b"meshdns gossip key id\0".as_slice(), &bytes].concat());
        let d = digest.as_ref();
        let id = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        GossipKey { bytes, id, hmac: hmac::Key::new(hmac::HMAC_SHA256, &bytes) }
    }

    /// A fresh random key.
    pub fn generate(rng: &dyn ring::rand::SecureRandom) -> Result<GossipKey, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        rng.fill(&mut bytes).map_err(|_| KeyError::Random)?;
        Ok(GossipKey::new(bytes))
    }

    /// Parses 64 hex digits.
    fn from_hex(s: &str) -> Option<GossipKey> {
        let s = s.as_bytes();
        if s.len() != KEY_LEN * 2 {
            return None;
        }
        let mut bytes = [0u8; KEY_LEN];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            bytes[i] = (hi * 16 + lo) as u8;
        }
        Some(GossipKey::new(bytes))
    }

    /// The key as 64 hex digits: only for `meshdns cluster key generate`
    /// to print a new key. Never log it.
    pub fn to_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key's id, as it appears in envelopes and logs.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GossipKey({:08x})", self.id)
    }
}

/// The keys a node accepts; the first (the primary) signs what it sends.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<GossipKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| format!("{:08x}", k.id)).collect();
        write!(f, "Keyring(primary first: {})", ids.join(", "))
    }
}

impl Keyring {
    /// A keyring of `keys`, primary first; duplicates are dropped.
    pub fn new(keys: Vec<GossipKey>) -> Result<Keyring, KeyError> {
        let mut unique: Vec<GossipKey> = Vec::with_capacity(keys.len());
        for k in keys {
            if !unique.iter().any(|u| u.id == k.id) {
                unique.push(k);
            }
        }
        if unique.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Keyring { keys: unique })
    }

    /// Parses a keyring file: one key (64 hex digits) per line, primary
    /// first; blank lines and lines starting with `#` are ignored.
    pub fn parse(text: &str) -> Result<Keyring, KeyError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            keys.push(GossipKey::from_hex(line).ok_or(KeyError::BadKey { line: i + 1 })?);
        }
        Keyring::new(keys)
    }

    /// Reads and parses a keyring file.
    pub fn load(path: &Path) -> Result<Keyring, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| KeyError::Read { path: path.display().to_string(), source })?;
        Keyring::parse(&text)
    }

    /// The key that signs.
    pub fn primary(&self) -> &GossipKey {
        &self.keys[0]
    }

    /// Ids of every key, primary first.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.iter().map(|k| k.id).collect()
    }

    fn find(&self, id: u32) -> Option<&GossipKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// Seals `payload` as `kind` with `key`, at `now_ms`, with `nonce` (fresh
/// random bytes from the caller), appending the envelope to `out`.
pub fn seal(key: &GossipKey, kind: Kind, now_ms: u64, nonce: [u8; NONCE_LEN], payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(OVERHEAD + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&key.id.to_be_bytes());
    out.extend_from_slice(&now_ms.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(payload);
    let tag = hmac::sign(&key.hmac, &out[start..]);
    out.extend_from_slice(tag.as_ref());
}

/// Checks envelopes against a keyring and remembers what it accepted, so a
/// replay inside the window is refused and one outside is stale.
#[derive(Debug)]
pub struct ReplayGuard {
    window_ms: u64,
    capacity: usize,
    /// Accepted (timestamp, nonce) pairs, oldest first.
    seen: BTreeSet<(u64, [u8; NONCE_LEN])>,
    /// When the cache is full the oldest entries are dropped early; nothing
    /// sealed at or before the newest dropped timestamp is accepted after
    /// that, so a dropped entry cannot be replayed.
    floor_ms: Option<u64>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new(DEFAULT_WINDOW_MS, DEFAULT_REPLAY_CAPACITY)
    }
}

impl ReplayGuard {
    /// A guard accepting timestamps within `window_ms` of `now`, remembering
    /// at most `capacity` messages.
    pub fn new(window_ms: u64, capacity: usize) -> ReplayGuard {
        ReplayGuard { window_ms, capacity: capacity.max(1), seen: BTreeSet::new(), floor_ms: None }
    }

    /// Messages remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Opens `envelope` of `kind` at `now_ms`: the payload if it is
    /// authentic, fresh and new, else why not. An accepted message is
    /// remembered; a refused one changes nothing.
    pub fn open<'a>(
        &mut self,
        keys: &Keyring,
        kind: Kind,
        now_ms: u64,
        envelope: &'a [u8],
    ) -> Result<&'a [u8], Reject> {
        if envelope.len() < OVERHEAD || envelope[..2] != MAGIC || envelope[2] != VERSION || envelope[3] != kind as u8 {
            return Err(Reject::Malformed);
        }
        let be = |r: std::ops::Range<usize>| -> u64 { envelope[r].iter().fold(0u64, |acc, b| (acc << 8) | *b as u64) };
        let key_id = be(4..8) as u32;
        let sent_ms = be(8..16);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&envelope[16..HEADER_LEN]);
        let (signed, tag) = envelope.split_at(envelope.len() - TAG_LEN);
        let key = keys.find(key_id).ok_or(Reject::UnknownKey)?;
        hmac::verify(&key.hmac, signed, tag).map_err(|_| Reject::BadTag)?;
        if sent_ms.abs_diff(now_ms) > self.window_ms {
            return Err(Reject::Stale);
        }
        if self.floor_ms.is_some_and(|f| sent_ms <= f) || self.seen.contains(&(sent_ms, nonce)) {
            return Err(Reject::Replay);
        }
        // Forget what has left the window: it would be refused as stale.
        let horizon = now_ms.saturating_sub(self.window_ms);
        while self.seen.first().is_some_and(|(t, _)| *t < horizon) {
            self.seen.pop_first();
        }
        while self.seen.len() >= self.capacity {
            if let Some((t, _)) = self.seen.pop_first() {
                self.floor_ms = Some(self.floor_ms.map_or(t, |f| f.max(t)));
            }
        }
        self.seen.insert((sent_ms, nonce));
        Ok(&signed[HEADER_LEN..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> GossipKey {
        GossipKey::new([b; KEY_LEN])
    }

    fn sealed(k: &GossipKey, kind: Kind, now: u64, nonce: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        seal(k, kind, now, [nonce; NONCE_LEN], payload, &mut out);
        out
    }

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn a_sealed_message_opens_once() {
        let ring = Keyring::new(vec![key(1)]).unwrap();
        let mut g = ReplayGuard::default();
        let m = sealed(&key(1), Kind::Gossip, NOW, 7, b"hello");
        assert_eq!(m.len(), b"hello".len() + OVERHEAD);
        assert_eq!(g.open(&ring, Kind::Gossip, NOW + 5, &m), Ok(&b"hello"[..]));
        assert_eq!(g.open(&ring, Kind::Gossip, NOW + 6, &m), Err(Reject::Replay));
        // Another nonce is another message.
        let m2 = sealed(&key(1), Kind::Gossip, NOW, 8, b"hello");
        assert_eq!(g.open(&ring, Kind::Gossip, NOW + 6, &m2), Ok(&b"hello"[..]));
    }

    #[test]
    fn a_wrong_key_is_refused() {
        let ring = Keyring::new(vec![key(1)]).unwrap();
        let mut g = ReplayGuard::default();
        let m = sealed(&key(2), Kind::Gossip, NOW, 1, b"x");
        assert_eq!(g.open(&ring, Kind::Gossip, NOW, &m), Err(Reject::UnknownKey));
        // A forged key id (the right id, the wrong key) fails on the tag.
        let mut forged = m.clone();
        forged[4..8].copy_from_slice(&key(1).id().to_be_bytes());
        assert_eq!(g.open(&ring, Kind::Gossip, NOW, &forged), Err(Reject::BadTag));
        assert_eq!(g.remembered(), 0);
    }

    #[test]
    fn any_tampered_byte_is_refused() {
        let ring = Keyring::new(vec![key(1)]).unwrap();
        let m = sealed(&key(1), Kind::Gossip, NOW, 1, b"payload bytes");
        for i in 0..m.len() {
            let mut t = m.clone();
            t[i] ^= 0x01;
            let mut g = ReplayGuard::default();
            let r = g.open(&ring, Kind::Gossip, NOW, &t);
            assert!(r.is_err(), "flipping byte {i} was accepted");
            assert_eq!(g.remembered(), 0);
        }
        // Truncated or padded.
        let mut g = ReplayGuard::default();
        assert!(g.open(&ring, Kind::Gossip, NOW, &m[..m.len() - 1]).is_err());
        let mut longer = m.clone();
        longer.push(0);
        assert!(g.open(&ring, Kind::Gossip, NOW, &longer).is_err());
        assert_eq!(g.open(&ring, Kind::Gossip, NOW, b"short"), Err(Reject::Malformed));
        assert_eq!(g.open(&ring, Kind::Gossip, NOW, &m[..]), Ok(&b"payload bytes"[..]));
    }

    #[test]
    fn a_kind_cannot_be_swapped() {
        let ring = Keyring::new(vec![key(1)]).unwrap();
        let mut g = ReplayGuard::default();
        let m = sealed(&key(1), Kind::ReferralRequest, NOW, 1, b"{}");
        assert_eq!(g.open(&ring, Kind::Gossip, NOW, &m), Err(Reject::Malformed));
        let mut swapped = m.clone();
        swapped[3] = Kind::Gossip as u8;
        assert_eq!(g.open(&ring, Kind::Gossip, NOW, &swapped), Err(Reject::BadTag));
    }

    #[test]
    fn outside_the_window_is_stale() {
        let ring = Keyring::new(vec![key(1)]).unwrap();
        let mut g = ReplayGuard::new(30_000, 1000);
        let old = sealed(&key(1), Kind::Gossip, NOW - 30_001, 1, b"x");
        assert_eq!(g.open(&ring, Kind::Gossip, NOW, &old), Err(Reject::Stale));
        let future = sealed(&key(1), Kind::Gossip, NOW + 30_001, 2, b"x");
        assert_eq!(g.open(&ring, Kind::Gossip, NOW, &future), Err(Reject::Stale));
        let edge = sealed(&key(1), Kind::Gossip, NOW - 30_000, 3, b"x");
        assert!(g.open(&ring, Kind::Gossip, NOW, &edge).is_ok());
        // Replayed once it has left the window: stale, not accepted.
        assert_eq!(g.open(&ring, Kind::Gossip, NOW + 60_000, &edge), Err(Reject::Stale));
    }

    #[test]
    fn a_full_cache_never_lets_a_dropped_message_back_in() {
        let ring = Keyring::new(vec![key(1)]).unwrap();
        let mut g = ReplayGuard::new(30_000, 3);
        let msgs: Vec<Vec<u8>> = (0..5).map(|i| sealed(&key(1), Kind::Gossip, NOW + i, i as u8, b"x")).collect();
        for m in &msgs {
            assert!(g.open(&ring, Kind::Gossip, NOW + 10, m).is_ok());
        }
        assert_eq!(g.remembered(), 3);
        for m in &msgs {
            assert_eq!(g.open(&ring, Kind::Gossip, NOW + 10, m), Err(Reject::Replay));
        }
    }

    #[test]
    fn rotation_accepts_the_old_key_while_the_new_primary_signs() {
        let (old, new) = (key(1), key(2));
        // Step 1: the new key added as a secondary everywhere.
        let step1 = Keyring::new(vec![old.clone(), new.clone()]).unwrap();
        // Step 2: the new key primary on some nodes, not yet on others.
        let step2 = Keyring::new(vec![new.clone(), old.clone()]).unwrap();
        // Step 3: the old key dropped.
        let step3 = Keyring::new(vec![new.clone()]).unwrap();
        let mut g = ReplayGuard::default();
        let by_step1 = sealed(step1.primary(), Kind::Gossip, NOW, 1, b"a");
        let by_step2 = sealed(step2.primary(), Kind::Gossip, NOW, 2, b"b");
        assert_eq!(step1.primary().id(), old.id());
        assert_eq!(step2.primary().id(), new.id());
        assert!(g.open(&step2, Kind::Gossip, NOW, &by_step1).is_ok());
        assert!(g.open(&step1, Kind::Gossip, NOW, &by_step2).is_ok());
        let mut g = ReplayGuard::default();
        assert!(g.open(&step3, Kind::Gossip, NOW, &by_step2).is_ok());
        assert_eq!(g.open(&step3, Kind::Gossip, NOW, &by_step1), Err(Reject::UnknownKey));
    }

    #[test]
    fn keyring_files_parse_and_never_show_keys() {
        let a = key(0xab);
        let b = key(0xcd);
        let text = format!("# primary\n{}\n\n  {}  \n{}\n", a.to_hex(), b.to_hex(), a.to_hex());
        let ring = Keyring::parse(&text).unwrap();
        assert_eq!(ring.ids(), vec![a.id(), b.id()]);
        let shown = format!("{ring:?} {:?}", ring.primary());
        assert!(!shown.contains(&a.to_hex()) && !shown.contains("abab"), "{shown}");
        let bad = format!("{}\nnot-a-key\n", a.to_hex());
        let e = Keyring::parse(&bad).unwrap_err();
        assert!(matches!(e, KeyError::BadKey { line: 2 }), "{e}");
        assert!(!e.to_string().contains("not-a-key"));
        assert!(matches!(Keyring::parse("# nothing\n"), Err(KeyError::Empty)));
        let short = &a.to_hex()[..63];
        assert!(Keyring::parse(short).is_err());
    }

    #[test]
    fn generated_keys_differ_and_round_trip() {
        let rng = ring::rand::SystemRandom::new();
        let k1 = GossipKey::generate(&rng).unwrap();
        let k2 = GossipKey::generate(&rng).unwrap();
        assert_ne!(k1.to_hex(), k2.to_hex());
        let back = Keyring::parse(&k1.to_hex()).unwrap();
        assert_eq!(back.primary().id(), k1.id());
    }
}
