use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};

use super::*;
use crate::types::Question;

fn akey(n: &str, dnssec_ok: bool) -> AnswerKey {
    let name = Name::from_str(n).unwrap_or_else(|e| panic!("{e}"));
    AnswerKey { question: Question::new(&name, RecordType::AAAA), dnssec_ok, checking_disabled: !dnssec_ok }
}

fn template(stored_ms: Millis, ttl: u32, len: usize, security: Security) -> Template {
    let wire: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
    Template {
        wire: wire.into(),
        ttl_offsets: vec![12, (len - 4) as u16].into(),
        opt_offset: Some((len - 11) as u16),
        stored_ms,
        ttl,
        security,
    }
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn sample() -> Vec<(AnswerKey, Arc<Template>)> {
    vec![
        (akey("a.example.", true), Arc::new(template(1_000, 60, 40, Security::Secure))),
        (akey("b.example.", false), Arc::new(template(2_000, 600, 300, Security::Insecure))),
        (akey("c.example.", false), Arc::new(template(3_000, 3_600, 100, Security::Bogus))),
    ]
}

fn open(path: &Path, now: Millis) -> Result<DiskCache, DiskError> {
    DiskCache::open(path, now, 1 << 20)
}

fn l1(k: &AnswerKey) -> L1Key {
    L1Key::from_answer_key(k).unwrap_or_else(|| panic!("key"))
}

#[test]
fn round_trip() {
    let d = dir();
    let path = d.path().join("answers.cache");
    let entries = sample();
    let saved = save(&path, entries.iter().map(|(k, t)| (k, &**t)), 5_000, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((saved.written, saved.skipped), (3, 0));
    assert!(!d.path().join("answers.cache.tmp").exists(), "renamed into place");
    let disk = open(&path, 5_000).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(disk.len(), 3);
    for (k, t) in &entries {
        assert_eq!(disk.get(&l1(k), 5_000).as_ref(), Some(&**t), "{}", k.question);
    }
    let mut other = entries[0].0.clone();
    other.dnssec_ok = false;
    assert!(disk.get(&l1(&other), 5_000).is_none(), "DO/CD are part of the key");
    let all = disk.entries(5_000);
    assert_eq!(all.len(), 3);
    for ((k, t), (k2, t2)) in all.iter().zip(&entries) {
        assert_eq!((k, t), (k2, &**t2));
    }
}

#[test]
fn expired_entries_are_not_served() {
    let d = dir();
    let path = d.path().join("c");
    let entries = sample();
    save(&path, entries.iter().map(|(k, t)| (k, t.clone())), 5_000, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
    // Hours later: a (60 s) and b (600 s) have expired, c (1 h) not yet.
    let disk = open(&path, 3_000 + 3_599_000).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(disk.len(), 1);
    assert!(disk.get(&l1(&entries[1].0), 3_000 + 3_599_000).is_none());
    assert!(disk.get(&l1(&entries[2].0), 3_000 + 3_599_000).is_some());
    assert!(disk.get(&l1(&entries[2].0), 3_000 + 3_600_000).is_none(), "expired since open");
    assert!(disk.entries(3_000 + 3_600_000).is_empty());
    // Already expired at save: not written.
    let saved = save(&path, entries.iter().map(|(k, t)| (k, t.clone())), 100_000, 1 << 20);
    assert_eq!(saved.map(|s| (s.written, s.skipped)).ok(), Some((2, 1)));
}

#[test]
fn a_corrupt_byte_anywhere_is_refused() {
    let d = dir();
    let path = d.path().join("c");
    save(&path, sample(), 0, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
    let good = fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    for at in [0, 9, 13, 17, 25, HEADER_LEN, HEADER_LEN + 40, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        fs::write(&path, &bad).unwrap_or_else(|e| panic!("{e}"));
        assert!(open(&path, 0).is_err(), "flipped byte {at} was accepted");
    }
    fs::write(&path, &good).unwrap_or_else(|e| panic!("{e}"));
    assert!(open(&path, 0).is_ok());
}

#[test]
fn truncated_or_foreign_files_are_refused() {
    let d = dir();
    let path = d.path().join("c");
    save(&path, sample(), 0, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
    let good = fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    for len in [0, 7, HEADER_LEN - 1, HEADER_LEN, good.len() - 1] {
        fs::write(&path, &good[..len]).unwrap_or_else(|e| panic!("{e}"));
        assert!(open(&path, 0).is_err(), "truncated to {len} was accepted");
    }
    let mut padded = good.clone();
    padded.push(0);
    fs::write(&path, &padded).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(open(&path, 0), Err(DiskError::BadLength(_))));
    let mut v2 = good.clone();
    v2[8] = 2;
    fs::write(&path, &v2).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(open(&path, 0), Err(DiskError::BadHeader)));
    assert!(matches!(open(&d.path().join("missing"), 0), Err(DiskError::Io { .. })));
}

#[test]
fn a_body_that_checksums_but_does_not_parse_is_refused() {
    let d = dir();
    let path = d.path().join("c");
    let mut body = vec![3, 0]; // key length 3: not a valid key
    body.extend_from_slice(b"abc");
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&VERSION.to_le_bytes());
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    file.extend_from_slice(&xxh3_64(&body).to_le_bytes());
    file.extend_from_slice(&body);
    fs::write(&path, &file).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(open(&path, 0), Err(DiskError::BadEntry(0))));
}

#[test]
fn the_size_limit_is_respected() {
    let d = dir();
    let path = d.path().join("c");
    let entries: Vec<_> = (0..100)
        .map(|i| (akey(&format!("n{i}.example."), false), Arc::new(template(0, 60, 200, Security::Insecure))))
        .collect();
    let saved = save(&path, entries.clone(), 0, 4_096).unwrap_or_else(|e| panic!("{e}"));
    let len = fs::metadata(&path).map(|m| m.len()).unwrap_or_else(|e| panic!("{e}"));
    assert!(len <= 4_096 && len as usize == saved.bytes, "{len}");
    assert!(saved.written >= 10 && saved.written + saved.skipped == 100, "{saved:?}");
    let disk = DiskCache::open(&path, 0, 4_096).unwrap_or_else(|e| panic!("{e}"));
    assert!(disk.get(&l1(&entries[0].0), 0).is_some(), "the first (hottest) entries are kept");
    assert!(disk.get(&l1(&entries[99].0), 0).is_none());
    assert!(matches!(DiskCache::open(&path, 0, 1_000), Err(DiskError::TooLarge(_))));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Any one corrupted byte, header or body, gets the file refused.
    #[test]
    fn any_corrupt_byte_is_refused(at in proptest::prelude::any::<proptest::sample::Index>(), flip in 1u8..=255) {
        let d = dir();
        let path = d.path().join("c");
        save(&path, sample(), 0, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        proptest::prop_assert!(open(&path, 0).is_err(), "byte {} ^ {:#x} accepted", i, flip);
    }
}
