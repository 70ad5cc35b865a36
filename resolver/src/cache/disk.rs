//! L3: built answers on disk, so a restarted node starts warm.
//!
//! [`save`] writes the answers L2 holds (hottest first, see
//! [`crate::cache::Cache::answers_for_disk`]) at shutdown or now and then;
//! [`DiskCache::open`] maps the file at start, checks it whole, and serves
//! lookups from the map or hands every live entry back to refill L2.
//!
//! File layout, integers little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..8 | magic `MESHDCA1` |
//! | 8..12 | format version (1) |
//! | 12..16 | entry count |
//! | 16..24 | body length |
//! | 24..32 | xxh3-64 of the body |
//! | 32.. | body: the entries, one after another |
//!
//! Entry: key length u16, key ([`L1Key::as_bytes`]), stored_ms u64 (Unix
//! ms), ttl u32, security u8, has-OPT u8, OPT offset u16, wire length
//! u32, wire, TTL offset count u16, TTL offsets u16 each.
//!
//! The file is written to `<path>.tmp`, fsynced and renamed over `path`,
//! never modified in place: a reader maps either the old file or the new
//! one, whole. A file with a wrong magic, version, length or checksum, or
//! an entry that does not parse, is refused ([`DiskError`]); the caller
//! deletes it. Its entries are never served.
//!
//! Times are wall-clock Unix milliseconds: a node may restart hours
//! later, and an answer expired by then is not returned.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use super::AnswerKey;
use super::l1::L1Key;
use crate::response::Template;
use crate::types::{Millis, Security};

/// First eight bytes of the file.
pub const MAGIC: &[u8; 8] = b"MESHDCA1";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Length of the header before the body.
pub const HEADER_LEN: usize = 32;

/// Why the file could not be written or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// Reading, writing, renaming or mapping failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not one of our files, or of another format version.
    #[error("not a cache file of version {VERSION} (bad magic or version)")]
    BadHeader,
    /// Shorter or longer than its header says.
    #[error("truncated or padded: {0}")]
    BadLength(String),
    /// The body does not match its checksum.
    #[error("checksum mismatch")]
    BadChecksum,
    /// The checksum matched but an entry does not parse (a bug, or a
    /// file of ours edited by hand).
    #[error("entry {0} is malformed")]
    BadEntry(usize),
    /// Larger than the limit given to `open`.
    #[error("file is {0} bytes, over the limit")]
    TooLarge(u64),
}

/// What [`save`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Saved {
    /// Entries written.
    pub written: usize,
    /// Entries left out: expired, unkeyable, or beyond `max_bytes`.
    pub skipped: usize,
    /// Size of the file.
    pub bytes: usize,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |source| DiskError::Io { path: path.to_owned(), source }
}

/// Writes `entries` (hottest first) to `path` atomically: entries expired
/// at `now` are left out, and so is every entry that would take the file
/// past `max_bytes`.
pub fn save<K, T>(
    path: &Path,
    entries: impl IntoIterator<Item = (K, T)>,
    now: Millis,
    max_bytes: usize,
) -> Result<Saved, DiskError>
where
    K: Borrow<AnswerKey>,
    T: Borrow<Template>,
{
    let mut body = Vec::new();
    let (mut written, mut skipped) = (0, 0);
    for (k, t) in entries {
        let (k, t) = (k.borrow(), t.borrow());
        let live = now < t.stored_ms.saturating_add(u64::from(t.ttl) * 1000);
        let key = L1Key::from_answer_key(k).filter(|_| live && written < u32::MAX as usize);
        let Some(key) = key else {
            skipped += 1;
            continue;
        };
        let mark = body.len();
        encode_entry(&mut body, &key, t);
        if HEADER_LEN + body.len() > max_bytes {
            body.truncate(mark);
            skipped += 1;
            continue;
        }
        written += 1;
    }
    let mut file_bytes = Vec::with_capacity(HEADER_LEN + body.len());
    file_bytes.extend_from_slice(MAGIC);
    file_bytes.extend_from_slice(&VERSION.to_le_bytes());
    file_bytes.extend_from_slice(&(written as u32).to_le_bytes());
    file_bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    file_bytes.extend_from_slice(&xxh3_64(&body).to_le_bytes());
    file_bytes.extend_from_slice(&body);

    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&file_bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    // The rename is durable once the directory is synced; failing that
    // only risks losing the new file, never reading a half-written one.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(Saved { written, skipped, bytes: file_bytes.len() })
}

fn encode_entry(out: &mut Vec<u8>, key: &L1Key, t: &Template) {
    let k = key.as_bytes();
    out.extend_from_slice(&(k.len() as u16).to_le_bytes());
    out.extend_from_slice(k);
    out.extend_from_slice(&t.stored_ms.to_le_bytes());
    out.extend_from_slice(&t.ttl.to_le_bytes());
    out.push(security_byte(t.security));
    out.push(u8::from(t.opt_offset.is_some()));
    out.extend_from_slice(&t.opt_offset.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&(t.wire.len() as u32).to_le_bytes());
    out.extend_from_slice(&t.wire);
    out.extend_from_slice(&(t.ttl_offsets.len() as u16).to_le_bytes());
    for o in t.ttl_offsets.iter() {
        out.extend_from_slice(&o.to_le_bytes());
    }
}

fn security_byte(s: Security) -> u8 {
    match s {
        Security::Secure => 0,
        Security::Insecure => 1,
        Security::Bogus => 2,
        Security::Indeterminate => 3,
    }
}

fn security_of(b: u8) -> Option<Security> {
    Some(match b {
        0 => Security::Secure,
        1 => Security::Insecure,
        2 => Security::Bogus,
        3 => Security::Indeterminate,
        _ => return None,
    })
}

/// One parsed entry, borrowing from the map.
struct Parsed<'a> {
    key: &'a [u8],
    template: Template,
}

/// A bounds-checked reader over the body.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes)
    }
}

/// Parses the entry at `r`, checking every offset against its wire.
fn parse_entry<'a>(r: &mut Reader<'a>) -> Option<Parsed<'a>> {
    let key_len = usize::from(r.u16()?);
    let key = r.take(key_len)?;
    L1Key::from_bytes(key)?;
    let stored_ms = r.u64()?;
    let ttl = r.u32()?;
    let security = security_of(r.u8()?)?;
    let has_opt = r.u8()?;
    let opt = r.u16()?;
    let wire_len = usize::try_from(r.u32()?).ok().filter(|&n| n <= usize::from(u16::MAX))?;
    let wire = r.take(wire_len)?;
    let n = usize::from(r.u16()?);
    let offsets = r.take(2 * n)?;
    let ttl_offsets: Box<[u16]> = offsets.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    if ttl_offsets.iter().any(|&o| usize::from(o) + 4 > wire_len) {
        return None;
    }
    let opt_offset = match has_opt {
        0 => None,
        1 if usize::from(opt) < wire_len => Some(opt),
        _ => return None,
    };
    Some(Parsed { key, template: Template { wire: wire.into(), ttl_offsets, opt_offset, stored_ms, ttl, security } })
}

/// The cache file, mapped and checked. See the module docs.
pub struct DiskCache {
    map: memmap2::Mmap,
    /// Key hash to the entry's offset in the body (live entries only).
    index: HashMap<u64, usize>,
}

impl DiskCache {
    /// Maps and checks the file at `path`, indexing the entries live at
    /// `now`. A file over `max_bytes` is refused whole.
    pub fn open(path: &Path, now: Millis, max_bytes: usize) -> Result<DiskCache, DiskError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        if len > max_bytes as u64 {
            return Err(DiskError::TooLarge(len));
        }
        if len < HEADER_LEN as u64 {
            return Err(DiskError::BadLength(format!("{len} bytes, shorter than the header")));
        }
        let map = map_file(&file).map_err(io_err(path))?;
        let h = &map[..HEADER_LEN];
        let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let long = |at: usize| u64::from(word(at)) | (u64::from(word(at + 4)) << 32);
        if &h[..8] != MAGIC || word(8) != VERSION {
            return Err(DiskError::BadHeader);
        }
        let (count, body_len, checksum) = (word(12) as usize, long(16), long(24));
        let body = &map[HEADER_LEN..];
        if body_len != body.len() as u64 {
            return Err(DiskError::BadLength(format!("body is {} bytes, header says {body_len}", body.len())));
        }
        if xxh3_64(body) != checksum {
            return Err(DiskError::BadChecksum);
        }
        let mut index = HashMap::with_capacity(count);
        let mut r = Reader { b: body, at: 0 };
        for i in 0..count {
            let at = r.at;
            let e = parse_entry(&mut r).ok_or(DiskError::BadEntry(i))?;
            if now < e.template.stored_ms.saturating_add(u64::from(e.template.ttl) * 1000) {
                index.entry(xxh3_64(e.key)).or_insert(at);
            }
        }
        if r.at != body.len() {
            return Err(DiskError::BadLength(format!("{} bytes after {count} entries", body.len() - r.at)));
        }
        Ok(DiskCache { map, index })
    }

    fn parse_at(&self, at: usize) -> Option<Parsed<'_>> {
        parse_entry(&mut Reader { b: self.map.get(HEADER_LEN..)?, at })
    }

    /// Live entries indexed at open.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no entry was live at open.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// A copy of the answer for `key`, if it is still fresh at `now`.
    pub fn get(&self, key: &L1Key, now: Millis) -> Option<Template> {
        let p = self.parse_at(*self.index.get(&key.hash())?)?;
        let t = p.template;
        (p.key == key.as_bytes() && now < t.stored_ms.saturating_add(u64::from(t.ttl) * 1000)).then_some(t)
    }

    /// Every answer still fresh at `now`, with its key, to refill L2
    /// (and L1) at start.
    pub fn entries(&self, now: Millis) -> Vec<(AnswerKey, Template)> {
        let mut out: Vec<_> = self
            .index
            .values()
            .filter_map(|&at| self.parse_at(at))
            .filter(|p| now < p.template.stored_ms.saturating_add(u64::from(p.template.ttl) * 1000))
            .filter_map(|p| Some((L1Key::from_bytes(p.key)?.to_answer_key()?, p.template)))
            .collect();
        out.sort_by(|a, b| a.0.question.name.cmp(&b.0.question.name));
        out
    }
}

/// Maps `file` read-only.
#[allow(unsafe_code)]
fn map_file(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is sound only if nobody modifies the file while it is
    // mapped. The file is ours: `save` writes a new file under a temporary
    // name and renames it into place, so a later save replaces the inode
    // and never writes into the one mapped here. Whatever the file holds,
    // `open` checks its length and checksum, and every read is
    // bounds-checked, before anything from it is used.
    unsafe { memmap2::Mmap::map(file) }
}

#[cfg(test)]
mod tests;
