//! Cache keys as bytes.
//!
//! Every level keys its entries by the same byte string, built on the
//! stack without allocating: a kind byte, the owner name in lowercase wire
//! form (RFC 1035 §3.1, no compression), then the type and what else the
//! kind needs, big-endian:
//!
//! | kind | bytes after the name |
//! | --- | --- |
//! | RRset | TYPE |
//! | negative | TYPE, CLASS (NXDOMAIN is stored under TYPE ANY) |
//! | answer | TYPE, CLASS, flags (bit 0 DO, bit 1 CD) |
//!
//! Comparing wire bytes is exact and cheap (hickory's `Name` hashes label
//! by label, lowercasing copies), and a question's name taken straight
//! from a packet can be keyed without parsing it into a `Name`. ASCII
//! lowercasing the whole wire name is safe: length octets are at most 63,
//! below `A` (65).

use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::AnswerKey;
use crate::types::Question;

/// Longest name in wire form (RFC 1035 §2.3.4).
pub(crate) const MAX_NAME_WIRE: usize = 255;
/// Kind byte of an RRset key.
pub(crate) const KIND_RRSET: u8 = 0;
/// Kind byte of a negative-answer key.
pub(crate) const KIND_NEGATIVE: u8 = 1;
/// Kind byte of a built-answer key.
pub(crate) const KIND_ANSWER: u8 = 2;
/// Answer flag bit: DO (RFC 3225).
pub(crate) const FLAG_DO: u8 = 1;
/// Answer flag bit: CD (RFC 4035 §3.2.2).
pub(crate) const FLAG_CD: u8 = 2;

const CAP: usize = 1 + MAX_NAME_WIRE + 2 + 2 + 1;

/// A key being built or used, on the stack.
#[derive(Clone)]
pub(crate) struct KeyBuf {
    buf: [u8; CAP],
    len: usize,
}

impl KeyBuf {
    /// An empty key of `kind`.
    pub(crate) fn new(kind: u8) -> Self {
        let mut buf = [0; CAP];
        buf[0] = kind;
        KeyBuf { buf, len: 1 }
    }

    /// Appends `name` lowercased; false if it does not fit (never for a
    /// valid `Name`).
    pub(crate) fn push_name(&mut self, name: &Name) -> bool {
        for label in name.iter() {
            if label.len() > 63 || self.len + 1 + label.len() + 1 > 1 + MAX_NAME_WIRE {
                return false;
            }
            self.buf[self.len] = label.len() as u8;
            self.len += 1;
            for &b in label {
                self.buf[self.len] = b.to_ascii_lowercase();
                self.len += 1;
            }
        }
        self.buf[self.len] = 0;
        self.len += 1;
        true
    }

    /// Appends a name given in wire form, exactly one uncompressed name
    /// (as a question's QNAME is), lowercasing it; false if it is not one.
    pub(crate) fn push_name_wire(&mut self, wire: &[u8]) -> bool {
        if wire.len() > MAX_NAME_WIRE || name_wire_len(wire) != Some(wire.len()) {
            return false;
        }
        for &b in wire {
            self.buf[self.len] = b.to_ascii_lowercase();
            self.len += 1;
        }
        true
    }

    /// Appends a big-endian u16.
    pub(crate) fn push_u16(&mut self, v: u16) {
        self.buf[self.len..self.len + 2].copy_from_slice(&v.to_be_bytes());
        self.len += 2;
    }

    /// Appends a byte.
    pub(crate) fn push_u8(&mut self, v: u8) {
        self.buf[self.len] = v;
        self.len += 1;
    }

    /// The whole key, kind byte first.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The key of RRset `name`/`rtype`.
pub(crate) fn rrset_key(name: &Name, rtype: RecordType) -> Option<KeyBuf> {
    let mut k = KeyBuf::new(KIND_RRSET);
    k.push_name(name).then(|| {
        k.push_u16(rtype.into());
        k
    })
}

/// The key of a negative answer to `name`/`qtype`/`qclass`.
pub(crate) fn negative_key(name: &Name, qtype: RecordType, qclass: DNSClass) -> Option<KeyBuf> {
    let mut k = KeyBuf::new(KIND_NEGATIVE);
    k.push_name(name).then(|| {
        k.push_u16(qtype.into());
        k.push_u16(qclass.into());
        k
    })
}

/// The key of a built answer.
pub(crate) fn answer_key(q: &Question, dnssec_ok: bool, checking_disabled: bool) -> Option<KeyBuf> {
    let mut k = KeyBuf::new(KIND_ANSWER);
    k.push_name(&q.name).then(|| {
        k.push_u16(q.qtype.into());
        k.push_u16(q.qclass.into());
        k.push_u8(flags(dnssec_ok, checking_disabled));
        k
    })
}

/// The flags byte of an answer key.
pub(crate) fn flags(dnssec_ok: bool, checking_disabled: bool) -> u8 {
    (if dnssec_ok { FLAG_DO } else { 0 }) | (if checking_disabled { FLAG_CD } else { 0 })
}

/// Length of the uncompressed wire name at the start of `wire`, `None`
/// if it is not one (pointer, bad label type, over 255 bytes, cut short).
pub(crate) fn name_wire_len(wire: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let len = usize::from(*wire.get(at)?);
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if at > MAX_NAME_WIRE || at > wire.len() {
            return None;
        }
        if len == 0 {
            return Some(at);
        }
    }
}

/// The labels of a valid wire name (see [`name_wire_len`]).
fn labels(wire: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(*wire.get(at)?);
        if len == 0 {
            return None;
        }
        let label = wire.get(at + 1..at + 1 + len)?;
        let start = at;
        at += 1 + len;
        Some((start, label))
    })
}

/// The fully qualified `Name` of a valid wire name.
pub(crate) fn name_from_wire(wire: &[u8]) -> Option<Name> {
    let mut name = Name::from_labels(labels(wire).map(|(_, l)| l)).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// Whether wire name `name` is `zone` or below it (both lowercase).
pub(crate) fn is_under(name: &[u8], zone: &[u8]) -> bool {
    zone == b"\x00" || name == zone || labels(name).any(|(start, _)| &name[start..] == zone)
}

/// A key split into kind, owner name (wire) and the bytes after it.
pub(crate) fn split(key: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&kind, rest) = key.split_first()?;
    let n = name_wire_len(rest)?;
    Some((kind, &rest[..n], &rest[n..]))
}

/// A big-endian u16 at `at`.
pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The `AnswerKey` an answer entry's key bytes encode.
pub(crate) fn answer_key_of(k: &[u8]) -> Option<AnswerKey> {
    let (kind, name, rest) = split(k)?;
    if kind != KIND_ANSWER {
        return None;
    }
    let name = name_from_wire(name)?;
    let qtype = RecordType::from(u16_at(rest, 0)?);
    let qclass = DNSClass::from(u16_at(rest, 2)?);
    let flags = *rest.get(4)?;
    Some(AnswerKey {
        question: Question { name, qtype, qclass },
        dnssec_ok: flags & FLAG_DO != 0,
        checking_disabled: flags & FLAG_CD != 0,
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn name_and_wire_forms_give_the_same_key() {
        let mut a = KeyBuf::new(KIND_ANSWER);
        assert!(a.push_name(&name("WwW.Example.COM.")));
        let mut b = KeyBuf::new(KIND_ANSWER);
        assert!(b.push_name_wire(b"\x03www\x07EXAMPLE\x03com\x00"));
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_eq!(a.as_bytes(), b"\x02\x03www\x07example\x03com\x00");
    }

    #[test]
    fn bad_wire_names_are_refused() {
        for bad in [&b"\x03www"[..], b"\xc0\x0c", b"\x03www\x00extra", b"", b"\x40aaaa"] {
            assert!(!KeyBuf::new(KIND_ANSWER).push_name_wire(bad), "{bad:?}");
        }
    }

    #[test]
    fn under_matches_at_label_boundaries_only() {
        let n = b"\x03www\x07example\x03com\x00";
        assert!(is_under(n, b"\x07example\x03com\x00"));
        assert!(is_under(n, b"\x00"));
        assert!(is_under(n, n));
        assert!(!is_under(n, b"\x06xample\x03com\x00"));
        assert!(!is_under(b"\x03com\x00", b"\x07example\x03com\x00"));
    }

    #[test]
    fn names_round_trip_through_wire() {
        let k = rrset_key(&name("a.b.example."), RecordType::A).unwrap_or_else(|| panic!("key"));
        let (kind, wire, rest) = split(k.as_bytes()).unwrap_or_else(|| panic!("split"));
        assert_eq!(kind, KIND_RRSET);
        assert_eq!(name_from_wire(wire), Some(name("a.b.example.")));
        assert_eq!(u16_at(rest, 0), Some(1));
        assert_eq!(name_from_wire(b"\x00"), Some(Name::root()));
    }

    proptest::proptest! {
        /// A name spelled in any case in a packet keys like its `Name`.
        #[test]
        fn wire_spelling_keys_like_the_name(labels in proptest::collection::vec("[a-zA-Z0-9_-]{1,20}", 0..6)) {
            let mut n = Name::from_labels(labels.iter().map(|l| l.as_bytes())).unwrap_or_else(|e| panic!("{e}"));
            n.set_fqdn(true);
            let mut wire = Vec::new();
            for l in &labels {
                wire.push(l.len() as u8);
                wire.extend_from_slice(l.as_bytes());
            }
            wire.push(0);
            let (mut a, mut b) = (KeyBuf::new(KIND_ANSWER), KeyBuf::new(KIND_ANSWER));
            proptest::prop_assert!(a.push_name(&n) && b.push_name_wire(&wire));
            proptest::prop_assert_eq!(a.as_bytes(), b.as_bytes());
            proptest::prop_assert_eq!(name_from_wire(&a.as_bytes()[1..]), Some(n.to_lowercase()));
        }
    }
}
