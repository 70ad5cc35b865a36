//! Zone-file text (RFC 1035 §5.1) to [`Record`]s, with the DNSSEC types
//! in their RFC 4034 / RFC 5155 presentation formats.
//!
//! hickory-proto's text parser does not read DNSKEY, RRSIG, NSEC, NSEC3 or
//! NSEC3PARAM, and those are what trust-anchor files and signed zones are
//! made of, so this module reads them itself and hands every other type to
//! hickory's RDATA parser. It reads what `ldns-signzone`, `dnssec-signzone
//! -O full`, `ldns-key2ds`/`dnssec-dsfromkey`, and unbound's
//! `trust-anchor-file`/`auto-trust-anchor-file` write: `$ORIGIN`, `$TTL`,
//! `;` comments, parentheses over several lines, `@`, relative names, a
//! blank owner meaning the previous one, TTL and class in either order.

use std::str::FromStr;

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, NSEC, NSEC3, NSEC3PARAM, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType, Nsec3HashAlgorithm, PublicKeyBuf};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::RDataParser;

/// Why a line of zone-file text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TextError {
    /// 1-based line number where the record (or directive) starts.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> TextError {
    TextError { line, message: message.into() }
}

/// One logical line: its first physical line number, whether it began
/// with blank space (owner omitted), and its tokens.
struct Logical {
    line: usize,
    indented: bool,
    tokens: Vec<String>,
}

/// Splits `text` into logical lines: comments dropped, parenthesised
/// continuations joined, quoted strings kept as one token (quotes removed).
fn logical_lines(text: &str) -> Result<Vec<Logical>, TextError> {
    let mut out = Vec::new();
    let mut current: Option<Logical> = None;
    let mut depth = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        if depth == 0 {
            if let Some(done) = current.take()
                && !done.tokens.is_empty()
            {
                out.push(done);
            }
            let indented = raw.starts_with([' ', '\t']);
            current = Some(Logical { line: lineno, indented, tokens: Vec::new() });
        }
        let Some(cur) = current.as_mut() else { continue };
        let mut chars = raw.chars().peekable();
        let mut token = String::new();
        let mut in_quotes = false;
        let mut quoted = false;
        while let Some(c) = chars.next() {
            if in_quotes {
                match c {
                    '\\' => {
                        token.push(c);
                        if let Some(n) = chars.next() {
                            token.push(n);
                        }
                    }
                    '"' => in_quotes = false,
                    _ => token.push(c),
                }
                continue;
            }
            match c {
                ';' => break,
                '"' => {
                    in_quotes = true;
                    quoted = true;
                }
                '(' | ')' => {
                    if !token.is_empty() || quoted {
                        cur.tokens.push(std::mem::take(&mut token));
                        quoted = false;
                    }
                    if c == '(' {
                        depth += 1;
                    } else {
                        depth = depth.checked_sub(1).ok_or_else(|| err(lineno, "')' without '('"))?;
                    }
                }
                c if c.is_whitespace() => {
                    if !token.is_empty() || quoted {
                        cur.tokens.push(std::mem::take(&mut token));
                        quoted = false;
                    }
                }
                '\\' => {
                    token.push(c);
                    if let Some(n) = chars.next() {
                        token.push(n);
                    }
                }
                _ => token.push(c),
            }
        }
        if in_quotes {
            return Err(err(lineno, "unterminated quoted string"));
        }
        if !token.is_empty() || quoted {
            cur.tokens.push(token);
        }
    }
    if depth != 0 {
        let line = current.as_ref().map_or(0, |c| c.line);
        return Err(err(line, "'(' without ')'"));
    }
    if let Some(done) = current
        && !done.tokens.is_empty()
    {
        out.push(done);
    }
    Ok(out)
}

/// Reads zone-file text into records. `origin` is the initial `$ORIGIN`
/// (the root if `None`). `$INCLUDE` is refused: a trust anchor file names
/// its records itself.
pub fn parse_records(text: &str, origin: Option<&Name>) -> Result<Vec<Record>, TextError> {
    let mut origin = origin.cloned().unwrap_or_else(Name::root);
    let mut default_ttl: Option<u32> = None;
    let mut last_owner: Option<Name> = None;
    let mut last_ttl: Option<u32> = None;
    let mut records = Vec::new();
    for logical in logical_lines(text)? {
        let line = logical.line;
        let mut tokens = logical.tokens.into_iter().peekable();
        let owner = if logical.indented {
            last_owner.clone().ok_or_else(|| err(line, "no previous owner name"))?
        } else {
            let first = tokens.next().ok_or_else(|| err(line, "empty line"))?;
            match first.to_ascii_uppercase().as_str() {
                "$ORIGIN" => {
                    let name = tokens.next().ok_or_else(|| err(line, "$ORIGIN without a name"))?;
                    origin = parse_name(&name, &origin).map_err(|m| err(line, m))?;
                    continue;
                }
                "$TTL" => {
                    let ttl = tokens.next().ok_or_else(|| err(line, "$TTL without a value"))?;
                    default_ttl = Some(parse_ttl(&ttl).map_err(|m| err(line, m))?);
                    continue;
                }
                "$INCLUDE" => return Err(err(line, "$INCLUDE is not supported")),
                _ => parse_name(&first, &origin).map_err(|m| err(line, m))?,
            }
        };
        // TTL and class, in either order, both optional (RFC 1035 §5.1).
        let mut ttl = None;
        let mut class = DNSClass::IN;
        let rtype = loop {
            let tok = tokens.next().ok_or_else(|| err(line, "no record type"))?;
            if ttl.is_none() && tok.starts_with(|c: char| c.is_ascii_digit()) {
                ttl = Some(parse_ttl(&tok).map_err(|m| err(line, m))?);
            } else if let Some(c) = parse_class(&tok) {
                class = c;
            } else {
                break parse_type(&tok).map_err(|m| err(line, m))?;
            }
        };
        let rest: Vec<String> = tokens.collect();
        let rdata =
            parse_rdata(rtype, &rest, &origin).map_err(|m| err(line, format!("{rtype} record for {owner}: {m}")))?;
        let ttl = ttl.or(default_ttl).or(last_ttl).unwrap_or(0);
        let mut record = Record::from_rdata(owner.clone(), ttl, rdata);
        record.set_dns_class(class);
        records.push(record);
        last_owner = Some(owner);
        last_ttl = Some(ttl);
    }
    Ok(records)
}

fn parse_name(s: &str, origin: &Name) -> Result<Name, String> {
    if s == "@" {
        return Ok(origin.clone());
    }
    let name = Name::from_str(s).map_err(|e| format!("bad name {s:?}: {e}"))?;
    if name.is_fqdn() { Ok(name) } else { name.append_domain(origin).map_err(|e| format!("bad name {s:?}: {e}")) }
}

/// A TTL: seconds, or BIND's units (`1h30m`, `2d`, `1w`).
fn parse_ttl(s: &str) -> Result<u32, String> {
    if let Ok(v) = s.parse::<u32>() {
        return Ok(v);
    }
    let mut total: u64 = 0;
    let mut num: u64 = 0;
    let mut any = false;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = num * 10 + u64::from(d);
            any = true;
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(format!("bad TTL {s:?}")),
        };
        total += num * unit;
        num = 0;
    }
    total += num;
    if !any {
        return Err(format!("bad TTL {s:?}"));
    }
    u32::try_from(total).map_err(|_| format!("TTL {s:?} too large"))
}

fn parse_class(s: &str) -> Option<DNSClass> {
    match s.to_ascii_uppercase().as_str() {
        "IN" => Some(DNSClass::IN),
        "CH" => Some(DNSClass::CH),
        "HS" => Some(DNSClass::HS),
        _ => None,
    }
}

/// A type mnemonic or RFC 3597 `TYPEnnn`.
pub(crate) fn parse_type(s: &str) -> Result<RecordType, String> {
    let upper = s.to_ascii_uppercase();
    if let Some(num) = upper.strip_prefix("TYPE")
        && let Ok(n) = num.parse::<u16>()
    {
        return Ok(RecordType::from(n));
    }
    RecordType::from_str(&upper).map_err(|_| format!("unknown record type {s:?}"))
}

/// An algorithm number or mnemonic (RFC 4034 Appendix A.1).
fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    if let Ok(n) = s.parse::<u8>() {
        return Ok(Algorithm::from_u8(n));
    }
    let n = match s.to_ascii_uppercase().as_str() {
        "RSAMD5" => 1,
        "DSA" => 3,
        "RSASHA1" => 5,
        "DSA-NSEC3-SHA1" => 6,
        "RSASHA1-NSEC3-SHA1" => 7,
        "RSASHA256" => 8,
        "RSASHA512" => 10,
        "ECC-GOST" => 12,
        "ECDSAP256SHA256" => 13,
        "ECDSAP384SHA384" => 14,
        "ED25519" => 15,
        "ED448" => 16,
        _ => return Err(format!("unknown algorithm {s:?}")),
    };
    Ok(Algorithm::from_u8(n))
}

fn num<T: FromStr>(tokens: &[String], i: usize, what: &str) -> Result<T, String> {
    let tok = tokens.get(i).ok_or_else(|| format!("missing {what}"))?;
    tok.parse().map_err(|_| format!("bad {what} {tok:?}"))
}

fn tok<'a>(tokens: &'a [String], i: usize, what: &str) -> Result<&'a str, String> {
    tokens.get(i).map(String::as_str).ok_or_else(|| format!("missing {what}"))
}

fn base64(parts: &[String], what: &str) -> Result<Vec<u8>, String> {
    let joined: String = parts.concat();
    if joined.is_empty() {
        return Err(format!("missing {what}"));
    }
    data_encoding::BASE64.decode(joined.as_bytes()).map_err(|e| format!("bad base64 in {what}: {e}"))
}

fn hex(s: &str, what: &str) -> Result<Vec<u8>, String> {
    data_encoding::HEXLOWER_PERMISSIVE.decode(s.as_bytes()).map_err(|e| format!("bad hex in {what}: {e}"))
}

/// RFC 4034 §3.2: `YYYYMMDDHHmmSS` (UTC), or seconds since the epoch.
/// Returns the 32-bit serial the wire carries.
fn parse_sig_time(s: &str) -> Result<u32, String> {
    if s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()) {
        let f = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap_or(0);
        let secs =
            super::time::unix_from_civil(f(0, 4), f(4, 6), f(6, 8)) + f(8, 10) * 3600 + f(10, 12) * 60 + f(12, 14);
        // Serial arithmetic (RFC 4034 §3.1.5): the wire keeps it mod 2^32.
        return Ok(secs.rem_euclid(1 << 32) as u32);
    }
    s.parse::<u32>().map_err(|_| format!("bad signature time {s:?}"))
}

fn parse_types(tokens: &[String]) -> Result<Vec<RecordType>, String> {
    tokens.iter().map(|t| parse_type(t)).collect()
}

fn parse_rdata(rtype: RecordType, t: &[String], origin: &Name) -> Result<RData, String> {
    let dnssec = match rtype {
        RecordType::DNSKEY | RecordType::CDNSKEY => {
            let flags: u16 = num(t, 0, "flags")?;
            let protocol: u8 = num(t, 1, "protocol")?;
            if protocol != 3 {
                return Err(format!("protocol {protocol}, RFC 4034 §2.1.2 requires 3"));
            }
            let alg = parse_algorithm(tok(t, 2, "algorithm")?)?;
            let key = base64(t.get(3..).unwrap_or(&[]), "public key")?;
            let key = DNSKEY::with_flags(flags, PublicKeyBuf::new(key, alg));
            if rtype == RecordType::CDNSKEY {
                return Err("CDNSKEY is not read here".into());
            }
            DNSSECRData::DNSKEY(key)
        }
        RecordType::DS => {
            let tag: u16 = num(t, 0, "key tag")?;
            let alg = parse_algorithm(tok(t, 1, "algorithm")?)?;
            let digest_type: u8 = num(t, 2, "digest type")?;
            let digest = hex(&t.get(3..).unwrap_or(&[]).concat(), "digest")?;
            if digest.is_empty() {
                return Err("missing digest".into());
            }
            DNSSECRData::DS(DS::new(tag, alg, DigestType::from(digest_type), digest))
        }
        RecordType::RRSIG => {
            let covered = parse_type(tok(t, 0, "type covered")?)?;
            let alg = parse_algorithm(tok(t, 1, "algorithm")?)?;
            let labels: u8 = num(t, 2, "labels")?;
            let original_ttl: u32 = num(t, 3, "original TTL")?;
            let expiration = parse_sig_time(tok(t, 4, "expiration")?)?;
            let inception = parse_sig_time(tok(t, 5, "inception")?)?;
            let key_tag: u16 = num(t, 6, "key tag")?;
            let signer = parse_name(tok(t, 7, "signer name")?, origin)?;
            let sig = base64(t.get(8..).unwrap_or(&[]), "signature")?;
            DNSSECRData::RRSIG(RRSIG::new(
                covered,
                alg,
                labels,
                original_ttl,
                expiration,
                inception,
                key_tag,
                signer,
                sig,
            ))
        }
        RecordType::NSEC => {
            let next = parse_name(tok(t, 0, "next domain name")?, origin)?;
            DNSSECRData::NSEC(NSEC::new(next, parse_types(t.get(1..).unwrap_or(&[]))?))
        }
        RecordType::NSEC3 | RecordType::NSEC3PARAM => {
            let hash: u8 = num(t, 0, "hash algorithm")?;
            let hash =
                Nsec3HashAlgorithm::from_u8(hash).map_err(|_| format!("unsupported NSEC3 hash algorithm {hash}"))?;
            let flags: u8 = num(t, 1, "flags")?;
            let iterations: u16 = num(t, 2, "iterations")?;
            let salt = match tok(t, 3, "salt")? {
                "-" => Vec::new(),
                s => hex(s, "salt")?,
            };
            let opt_out = flags & 1 == 1;
            if rtype == RecordType::NSEC3PARAM {
                DNSSECRData::NSEC3PARAM(NSEC3PARAM::new(hash, opt_out, iterations, salt))
            } else {
                let next = tok(t, 4, "next hashed owner name")?;
                let next = data_encoding::BASE32HEX_NOPAD
                    .decode(next.to_ascii_uppercase().as_bytes())
                    .map_err(|e| format!("bad base32hex in next hashed owner name: {e}"))?;
                let types = parse_types(t.get(5..).unwrap_or(&[]))?;
                DNSSECRData::NSEC3(NSEC3::new(hash, opt_out, iterations, salt, next, types))
            }
        }
        _ => {
            return RData::parse(rtype, t.iter().map(String::as_str), Some(origin)).map_err(|e| e.to_string());
        }
    };
    Ok(RData::DNSSEC(dnssec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_multiline_dnskey_and_directives() {
        let text = "$ORIGIN example.\n$TTL 1h\n@ IN DNSKEY 257 3 8 ( AwEA\n  AQ== ) ; comment\n  DS 1 8 2 ABCD\nwww 60 A 192.0.2.1\n";
        let records = parse_records(text, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].name().to_string(), "example.");
        assert_eq!(records[0].ttl(), 3600);
        assert_eq!(records[0].record_type(), RecordType::DNSKEY);
        assert_eq!(records[1].name().to_string(), "example.");
        assert_eq!(records[1].record_type(), RecordType::DS);
        assert_eq!(records[2].name().to_string(), "www.example.");
        assert_eq!(records[2].ttl(), 60);
    }

    #[test]
    fn errors_name_the_line() {
        let text = "example. IN DNSKEY 257 3 8 AwEAAQ==\nexample. IN DS 1 8 2 XYZ\n";
        let e = parse_records(text, None).err().unwrap_or_else(|| panic!("bad hex accepted"));
        assert_eq!(e.line, 2);
        assert!(e.message.contains("hex"), "{e}");
    }

    #[test]
    fn signature_times_are_utc() {
        assert_eq!(parse_sig_time("20360101000000"), Ok(2_082_758_400));
        assert_eq!(parse_sig_time("19700101000000"), Ok(0));
        assert_eq!(parse_sig_time("1234"), Ok(1234));
    }
}
