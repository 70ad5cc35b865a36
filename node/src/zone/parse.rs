//! Reads RFC 1035 master files (§5) into flat records, with NLnet Labs'
//! `domain` zonefile scanner doing the lexing and RDATA parsing.
//!
//! `domain` handles `$ORIGIN`, `$TTL`, `@`, relative names, parentheses,
//! quoted strings with escapes, class and TTL in either order and RFC 3597
//! `TYPEnnn \# len hex`. This module adds what it leaves to its caller:
//! `$INCLUDE` (a path relative to the including file's directory, with an
//! optional origin, at most [`MAX_INCLUDE_DEPTH`] deep and never a loop), line
//! numbers for diagnostics, `@` inside RDATA (see [`at_sign`]), and what
//! [`super::prepass`] rewrites first: TTLs with units and SMIMEA in text
//! form.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use domain::base::iana::Class;
use domain::base::name::{Name, ToName};
use domain::base::rdata::ComposeRecordData;
use domain::zonefile::inplace::{Entry, Zonefile};
use xxhash_rust::xxh3::Xxh3;

use super::diag::{Diagnostic, ZoneError};

/// `$INCLUDE` nesting allowed before the file is rejected.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// A byte range in [`ParsedFile::arena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    start: u32,
    len: u32,
}

/// One record as read from a file. Its bytes live in the file's arena, so
/// a million records cost two allocations, not two million.
#[derive(Clone, Debug)]
pub struct RawRecord {
    /// Absolute owner name, lower-cased wire form.
    pub owner: Span,
    /// TYPE.
    pub rtype: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// RDATA in wire form, names uncompressed and as written (case kept).
    pub rdata: Span,
    /// Where it was written, for diagnostics.
    pub at: Location,
}

/// A place in a source file: which file, and the byte offset where the
/// entry starts (its line is worked out only when a message needs it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Index into [`ParsedFile::sources`].
    pub source: u16,
    /// Byte offset of the entry's first character.
    pub offset: u32,
}

/// Everything read from a zone file and its includes.
#[derive(Debug, Default)]
pub struct ParsedFile {
    /// Records in file order.
    pub records: Vec<RawRecord>,
    /// Owner names and RDATA of every record, back to back.
    arena: Vec<u8>,
    /// The zone file, then each included file in the order read.
    pub sources: Vec<PathBuf>,
    /// Digest over every source's path and bytes (see [`source_digest`]).
    pub digest: u64,
    /// Newline offsets per source, built on the first diagnostic.
    lines: Vec<std::cell::OnceCell<Vec<u32>>>,
}

impl ParsedFile {
    /// The owner name of `r`.
    pub fn owner(&self, r: &RawRecord) -> &[u8] {
        self.span(r.owner)
    }

    /// The RDATA of `r`.
    pub fn rdata(&self, r: &RawRecord) -> &[u8] {
        self.span(r.rdata)
    }

    fn span(&self, s: Span) -> &[u8] {
        self.arena.get(s.start as usize..(s.start + s.len) as usize).unwrap_or(&[])
    }

    fn push(&mut self, bytes: &[u8]) -> Option<Span> {
        let start = u32::try_from(self.arena.len()).ok()?;
        let len = u32::try_from(bytes.len()).ok()?;
        start.checked_add(len)?;
        self.arena.extend_from_slice(bytes);
        Some(Span { start, len })
    }

    /// Records that come from somewhere other than a file (a replicated
    /// zone), as if read from `label`. Owners are lower-case wire form.
    pub fn from_records<'a>(label: &Path, records: impl IntoIterator<Item = (&'a [u8], u16, u32, &'a [u8])>) -> Self {
        let mut out = ParsedFile { sources: vec![label.to_owned()], ..ParsedFile::default() };
        out.lines.push(std::cell::OnceCell::new());
        let at = Location { source: 0, offset: 0 };
        for (owner, rtype, ttl, rdata) in records {
            let (Some(owner), Some(rdata)) = (out.push(owner), out.push(rdata)) else { break };
            out.records.push(RawRecord { owner, rtype, ttl, rdata, at });
        }
        out
    }

    /// The file of a location.
    pub fn file(&self, at: &Location) -> &Path {
        self.sources.get(at.source as usize).map_or(Path::new(""), PathBuf::as_path)
    }

    /// The 1-based line of a location. The first call for a source reads
    /// that file once to index its newlines.
    pub fn line(&self, at: &Location) -> u32 {
        let Some(cell) = self.lines.get(at.source as usize) else { return 0 };
        let newlines = cell.get_or_init(|| {
            let bytes = std::fs::read(self.file(at)).unwrap_or_default();
            bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i as u32).collect()
        });
        (newlines.partition_point(|&nl| nl < at.offset) + 1) as u32
    }
}

/// The first byte at or after `from` that is not blank or inside a comment.
fn first_content(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(&b) = bytes.get(at) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => at += 1,
            b';' => {
                while bytes.get(at).is_some_and(|&c| c != b'\n') {
                    at += 1;
                }
            }
            _ => break,
        }
    }
    at
}

/// Parses `path` with `origin` (absolute, text) as the initial origin.
pub fn parse_file(path: &Path, origin: Option<&str>) -> Result<ParsedFile, ZoneError> {
    // A name derived from a file name may not be a valid domain name; the
    // file's own $ORIGIN or absolute names then have to do.
    let origin = origin.and_then(|o| Name::<Bytes>::bytes_from_str(o).ok());
    let mut out = ParsedFile::default();
    let mut hasher = Xxh3::new();
    read_one(path, origin, &mut Vec::new(), &mut out, &mut hasher)?;
    out.digest = hasher.digest();
    Ok(out)
}

/// The digest [`parse_file`] computes, from the list of sources alone, so a
/// snapshot can be checked for freshness without parsing anything.
pub fn source_digest(sources: &[PathBuf]) -> std::io::Result<u64> {
    let mut hasher = Xxh3::new();
    for path in sources {
        let bytes = std::fs::read(path)?;
        feed(&mut hasher, path, &bytes);
    }
    Ok(hasher.digest())
}

fn feed(hasher: &mut Xxh3, path: &Path, bytes: &[u8]) {
    hasher.update(path.as_os_str().as_encoded_bytes());
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
    // The compiler's own version: a new build may lay snapshots out differently.
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
}

/// Reads one file. `chain` holds the files being read, outermost first:
/// a file may be included twice, but never from inside itself.
fn read_one(
    path: &Path,
    origin: Option<Name<Bytes>>,
    chain: &mut Vec<PathBuf>,
    out: &mut ParsedFile,
    hasher: &mut Xxh3,
) -> Result<(), ZoneError> {
    let err = |line: u32, msg: String| ZoneError::single(Diagnostic::error(path, line, msg));
    if chain.len() > MAX_INCLUDE_DEPTH {
        return Err(err(0, format!("$INCLUDE nested deeper than {MAX_INCLUDE_DEPTH} levels")));
    }
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    if chain.contains(&canonical) {
        return Err(err(0, "$INCLUDE loop: file includes itself".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| err(0, format!("cannot read: {e}")))?;
    feed(hasher, path, &bytes);
    scan(bytes, path, origin, Some((canonical, chain, hasher)), out)
}

/// Parses zone-file text that is not in a file (a zone sent over the admin
/// API, or one record typed on the command line). `label` names it in
/// messages; `$INCLUDE` is refused.
pub fn parse_text(text: &str, origin: &str, label: &Path) -> Result<ParsedFile, ZoneError> {
    let origin = Name::<Bytes>::bytes_from_str(origin).ok();
    let mut out = ParsedFile::default();
    let mut hasher = Xxh3::new();
    feed(&mut hasher, label, text.as_bytes());
    scan(text.as_bytes().to_vec(), label, origin, None, &mut out)?;
    out.digest = hasher.digest();
    Ok(out)
}

/// The file being read and what `$INCLUDE` needs to follow it.
type IncludeChain<'a> = (PathBuf, &'a mut Vec<PathBuf>, &'a mut Xxh3);

/// Scans the bytes of one source into `out`. `include` is `None` where
/// `$INCLUDE` is not allowed.
fn scan(
    mut bytes: Vec<u8>,
    path: &Path,
    origin: Option<Name<Bytes>>,
    mut include: Option<IncludeChain<'_>>,
    out: &mut ParsedFile,
) -> Result<(), ZoneError> {
    let err = |line: u32, msg: String| ZoneError::single(Diagnostic::error(path, line, msg));
    let source = u16::try_from(out.sources.len()).map_err(|_| err(0, "too many included files".into()))?;
    out.sources.push(path.to_owned());
    let line_of = |bytes: &[u8], offset: usize| {
        bytes[..offset.min(bytes.len())].iter().filter(|&&b| b == b'\n').count() as u32 + 1
    };
    let rewritten = super::prepass::rewrite(&mut bytes).map_err(|e| err(line_of(&bytes, e.offset), e.message))?;
    let retyped = rewritten.retyped;
    let mut next_retyped = 0usize;
    let lines = std::cell::OnceCell::new();
    if include.is_none() || rewritten.changed_length {
        // Text that is not a file, or whose offsets the pre-pass moved:
        // index its lines now, as `line` cannot read them back later.
        let _ = lines.set(bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i as u32).collect());
    }
    out.lines.push(lines);

    // Line numbers for messages (the pre-pass keeps every newline).
    let line_at = |offset: usize| line_of(&bytes, first_content(&bytes, offset));
    let mut zonefile = Zonefile::with_capacity(bytes.len());
    zonefile.extend_from_slice(&bytes);
    zonefile.set_default_class(Class::IN);
    if let Some(o) = origin {
        zonefile.set_origin(o);
    }
    let mut scratch = Vec::with_capacity(512);
    let mut entry_start = 0usize;
    loop {
        let entry = match zonefile.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            // domain's message is "line:col: what", where line:col is where
            // the scanner stopped (often the start of the next line); the
            // entry being read started at `entry_start`, which is the line
            // an operator needs.
            Err(e) => {
                let text = e.to_string();
                let what = text.splitn(3, ':').nth(2).map_or(text.as_str(), str::trim_start);
                return Err(err(line_at(entry_start), what.to_owned()));
            }
        };
        let entry_end = zonefile.current_offset();
        let at = Location { source, offset: first_content(&bytes, entry_start) as u32 };
        match entry {
            Entry::Record(record) => {
                if record.class() != Class::IN {
                    return Err(err(
                        line_at(entry_start),
                        format!("class {} is not supported, only IN", record.class()),
                    ));
                }
                scratch.clear();
                // Canonical form lower-cases the owner (RFC 4034 §6.2).
                let _ = record.owner().compose_canonical(&mut scratch);
                let owner = out.push(&scratch).ok_or_else(|| err(0, "zone larger than 4 GiB".into()))?;
                scratch.clear();
                record
                    .data()
                    .compose_rdata(&mut scratch)
                    .map_err(|_| err(line_at(entry_start), "record data too long".into()))?;
                let mut rtype = record.rtype().to_int();
                at_sign::resolve(rtype, &mut scratch);
                // `retyped` is in offset order, as are the entries: one pass.
                while retyped.get(next_retyped).is_some_and(|&(p, _)| p < entry_start) {
                    next_retyped += 1;
                }
                if let Some(&(p, real)) = retyped.get(next_retyped)
                    && p < entry_end
                {
                    rtype = real;
                }
                if scratch.len() > u16::MAX as usize {
                    return Err(err(line_at(entry_start), "record data longer than 65535 octets".into()));
                }
                let rdata = out.push(&scratch).ok_or_else(|| err(0, "zone larger than 4 GiB".into()))?;
                out.records.push(RawRecord { owner, rtype, ttl: record.ttl().as_secs(), rdata, at });
            }
            Entry::Include { path: inc, origin: inc_origin } => {
                let line = line_at(entry_start);
                let Some((canonical, chain, hasher)) = include.as_mut() else {
                    return Err(err(line, "$INCLUDE is not allowed here".into()));
                };
                let inc_path = path.parent().unwrap_or(Path::new(".")).join(inc.as_ref() as &str);
                let inc_origin = inc_origin.or_else(|| zonefile.origin().ok());
                chain.push(canonical.clone());
                let included = read_one(&inc_path, inc_origin, chain, out, hasher);
                chain.pop();
                included.map_err(|e| {
                    e.with_context(Diagnostic::error(path, line, format!("in $INCLUDE {}", inc_path.display())))
                })?;
            }
        }
        entry_start = entry_end;
    }
    Ok(())
}

/// `@` as a name inside RDATA (`www CNAME @`, `@ MX 10 @`, `_x SVCB 1 @`).
///
/// RFC 1035 §5.1 makes `@` the origin wherever a name may stand; `domain`'s
/// scanner honours it only as an owner and reads it as a label `@` in RDATA
/// (so `@` becomes `\@.<origin>`). Every type with a domain name in its
/// RDATA is described here field by field; a name whose first label is a
/// lone `@` loses that label, leaving the origin. A literal label `\@`
/// there is lost with it: no real zone has one.
mod at_sign {
    use crate::dns::wire::name::plain_name_len;

    /// One RDATA field, as far as finding the names goes.
    #[derive(Clone, Copy)]
    enum Field {
        /// A domain name (uncompressed in our RDATA).
        Name,
        /// Fixed-size octets.
        Fixed(usize),
        /// A <character-string>: a length octet and that many octets.
        Text,
    }
    use Field::{Fixed, Name, Text};

    /// The fields up to the last name, per TYPE. Types whose names sit
    /// behind a variable-size field of their own kind (HIP's rendezvous
    /// servers, IPSECKEY's and AMTRELAY's gateway) are not covered.
    fn layout(rtype: u16) -> &'static [Field] {
        match rtype {
            // NS, MD, MF, CNAME, MB, MG, MR, PTR, NXT, DNAME, NSEC (RFC 1035
            // §3.3, RFC 2535, RFC 6672, RFC 4034 §4).
            2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 30 | 39 | 47 => &[Name],
            // SOA (RFC 1035 §3.3.13), MINFO (§3.3.7), RP (RFC 1183 §2.2),
            // TALINK.
            6 | 14 | 17 | 58 => &[Name, Name],
            // MX, AFSDB (RFC 1183 §1), RT (§3.3), KX (RFC 2230), LP (RFC 6742),
            // SVCB and HTTPS's TargetName (RFC 9460 §2.2).
            15 | 18 | 21 | 36 | 107 | 64 | 65 => &[Fixed(2), Name],
            // PX (RFC 2163): preference, MAP822, MAPX400.
            26 => &[Fixed(2), Name, Name],
            // SRV (RFC 2782).
            33 => &[Fixed(6), Name],
            // NAPTR (RFC 3403 §4.1): order, preference, flags, services,
            // regexp, replacement.
            35 => &[Fixed(4), Text, Text, Text, Name],
            // SIG and RRSIG (RFC 4034 §3.1): the signer's name.
            24 | 46 => &[Fixed(18), Name],
            _ => &[],
        }
    }

    pub(super) fn resolve(rtype: u16, rdata: &mut Vec<u8>) {
        let mut at = 0usize;
        for field in layout(rtype) {
            match field {
                Fixed(n) => at += n,
                Text => match rdata.get(at) {
                    Some(&len) => at += 1 + len as usize,
                    None => return,
                },
                Name => {
                    if rdata.get(at..at + 2) == Some(b"\x01@") {
                        rdata.drain(at..at + 2);
                    }
                    match plain_name_len(rdata, at) {
                        Ok(len) => at += len,
                        Err(_) => return,
                    }
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn rfc1035_5_1_at_in_rdata_is_the_origin() {
            let mut soa = b"\x01@\x03com\x00\x01@\x03com\x00".to_vec();
            soa.extend_from_slice(&[7; 20]);
            super::resolve(6, &mut soa);
            assert_eq!(&soa[..10], b"\x03com\x00\x03com\x00");
            assert_eq!(soa.len(), 30);
            let mut mx = b"\x00\x0a\x01@\x03com\x00".to_vec();
            super::resolve(15, &mut mx);
            assert_eq!(mx, b"\x00\x0a\x03com\x00");
        }

        #[test]
        fn at_in_svcb_naptr_rp_and_rrsig_names_is_the_origin() {
            let mut svcb = b"\x00\x01\x01@\x03com\x00\x00\x01\x00\x03\x02h2".to_vec();
            super::resolve(64, &mut svcb);
            assert_eq!(svcb, b"\x00\x01\x03com\x00\x00\x01\x00\x03\x02h2");
            let mut naptr = b"\x00\x01\x00\x02\x01S\x07SIP+D2U\x00\x01@\x03com\x00".to_vec();
            super::resolve(35, &mut naptr);
            assert_eq!(naptr, b"\x00\x01\x00\x02\x01S\x07SIP+D2U\x00\x03com\x00");
            let mut rp = b"\x01@\x03com\x00\x01@\x03com\x00".to_vec();
            super::resolve(17, &mut rp);
            assert_eq!(rp, b"\x03com\x00\x03com\x00");
            let mut rrsig = vec![0u8; 18];
            rrsig.extend_from_slice(b"\x01@\x03com\x00\xab\xcd");
            super::resolve(46, &mut rrsig);
            assert_eq!(&rrsig[18..], b"\x03com\x00\xab\xcd");
            // A literal `@` label inside TXT is data, not a name.
            let mut txt = b"\x01@".to_vec();
            super::resolve(16, &mut txt);
            assert_eq!(txt, b"\x01@");
        }
    }
}
