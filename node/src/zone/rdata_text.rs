//! RDATA in presentation form for the types BIND, NSD and Knot read but
//! `domain`'s scanner does not: turned into wire form here so that
//! [`super::prepass`] can hand the scanner RFC 3597 §5 generic text
//! (`\# <length> <hex>`), which it reads for every type.
//!
//! Types whose RDATA is a 16-bit number and one domain name (AFSDB, RT, KX,
//! LP) are not converted here: their layout is MX's, so the pre-pass lets
//! the scanner read them as MX (relative names and `@` included) and gives
//! the record its own TYPE afterwards, as it does for SMIMEA and TLSA.

use std::net::Ipv4Addr;

use domain::base::iana::{Rtype, SecurityAlgorithm};

/// The TYPE number and the wire form of `rdata` (the entry's RDATA tokens,
/// quotes kept) if `rtype` is one this module converts; `None` otherwise.
pub(super) fn to_wire(rtype: &[u8], rdata: &[&[u8]]) -> Option<Result<Vec<u8>, String>> {
    let name = std::str::from_utf8(rtype).ok()?.to_ascii_uppercase();
    let out = match name.as_str() {
        "URI" => uri(rdata),
        "EUI48" => eui(rdata, 6),
        "EUI64" => eui(rdata, 8),
        "L32" => l32(rdata),
        "L64" | "NID" => l64(rdata),
        "DHCID" => base64_rest(rdata),
        "CERT" => cert(rdata),
        "CSYNC" => csync(rdata),
        "APL" => apl(rdata),
        "LOC" => loc(rdata),
        _ => return None,
    };
    Some(out.map_err(|e| format!("{name} record: {e}")))
}

/// The TYPE that a record read as MX really has (see the module docs).
pub(super) fn mx_shaped(rtype: &[u8]) -> Option<u16> {
    [("AFSDB", 18), ("RT", 21), ("KX", 36), ("LP", 107)]
        .iter()
        .find(|(n, _)| rtype.eq_ignore_ascii_case(n.as_bytes()))
        .map(|&(_, t)| t)
}

/// A DNSSEC algorithm written as a mnemonic (`ECDSAP256SHA256`), as a
/// number in text; `None` if `token` is a number already or unknown.
pub(super) fn algorithm_number(token: &[u8]) -> Option<String> {
    if token.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let upper = token.to_ascii_uppercase();
    SecurityAlgorithm::from_mnemonic(&upper).map(|a| a.to_int().to_string())
}

fn text(t: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(t).map_err(|_| "not UTF-8 text".to_owned())
}

fn field<'a>(rdata: &[&'a [u8]], i: usize, what: &str) -> Result<&'a str, String> {
    rdata.get(i).ok_or_else(|| format!("missing {what}")).and_then(|t| text(t))
}

fn number<T: std::str::FromStr>(rdata: &[&[u8]], i: usize, what: &str) -> Result<T, String> {
    let t = field(rdata, i, what)?;
    let plain = t.bytes().all(|c| c.is_ascii_digit() || c == b'.');
    t.parse().ok().filter(|_| plain).ok_or_else(|| format!("bad {what} {t:?}"))
}

fn exactly(rdata: &[&[u8]], n: usize) -> Result<(), String> {
    if rdata.len() == n { Ok(()) } else { Err(format!("expected {n} fields, got {}", rdata.len())) }
}

/// RFC 7553 §4: priority, weight, and the target as a quoted string whose
/// octets (no length octet) fill the rest.
fn uri(rdata: &[&[u8]]) -> Result<Vec<u8>, String> {
    exactly(rdata, 3)?;
    let mut out = Vec::new();
    out.extend_from_slice(&number::<u16>(rdata, 0, "priority")?.to_be_bytes());
    out.extend_from_slice(&number::<u16>(rdata, 1, "weight")?.to_be_bytes());
    let target = rdata[2];
    let inner = target.strip_prefix(b"\"").and_then(|t| t.strip_suffix(b"\"")).unwrap_or(target);
    out.extend_from_slice(&unescape(inner)?);
    Ok(out)
}

/// RFC 1035 §5.1 escapes: `\X` is X, `\DDD` the octet DDD.
fn unescape(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let digits = s.get(i + 1..i + 4).filter(|d| d.iter().all(u8::is_ascii_digit));
        match (digits, s.get(i + 1)) {
            (None, Some(c)) if c.is_ascii_digit() => {
                return Err("a \\DDD escape needs exactly three digits".to_owned());
            }
            (Some(d), _) => {
                let v: u16 = d.iter().fold(0, |v, c| v * 10 + u16::from(c - b'0'));
                out.push(u8::try_from(v).map_err(|_| format!("escape \\{} is over 255", v))?);
                i += 4;
            }
            (None, Some(&c)) => {
                out.push(c);
                i += 2;
            }
            (None, None) => return Err("a lone backslash at the end".to_owned()),
        }
    }
    Ok(out)
}

/// RFC 7043 §3.2/§4.2: six or eight hex pairs joined by `-`.
fn eui(rdata: &[&[u8]], octets: usize) -> Result<Vec<u8>, String> {
    exactly(rdata, 1)?;
    let t = field(rdata, 0, "address")?;
    let parts: Vec<&str> = t.split('-').collect();
    if parts.len() != octets || parts.iter().any(|p| p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit())) {
        return Err(format!("{t:?} is not {octets} hex pairs joined by '-'"));
    }
    parts.iter().map(|p| u8::from_str_radix(p, 16).map_err(|_| format!("bad hex pair {p:?}"))).collect()
}

/// RFC 6742 §2.2: preference and an IPv4 locator.
fn l32(rdata: &[&[u8]]) -> Result<Vec<u8>, String> {
    exactly(rdata, 2)?;
    let mut out = number::<u16>(rdata, 0, "preference")?.to_be_bytes().to_vec();
    out.extend_from_slice(&number::<Ipv4Addr>(rdata, 1, "locator")?.octets());
    Ok(out)
}

/// RFC 6742 §2.1/§2.3: preference and four 16-bit hex groups joined by `:`.
fn l64(rdata: &[&[u8]]) -> Result<Vec<u8>, String> {
    exactly(rdata, 2)?;
    let mut out = number::<u16>(rdata, 0, "preference")?.to_be_bytes().to_vec();
    let t = field(rdata, 1, "locator")?;
    let groups: Vec<&str> = t.split(':').collect();
    if groups.len() != 4 || groups.iter().any(|g| g.len() != 4 || !g.bytes().all(|c| c.is_ascii_hexdigit())) {
        return Err(format!("{t:?} is not four hex groups joined by ':'"));
    }
    for g in groups {
        out.extend_from_slice(&u16::from_str_radix(g, 16).map_err(|_| format!("bad hex group {g:?}"))?.to_be_bytes());
    }
    Ok(out)
}

/// Base64 that may be split over several tokens (RFC 4701 §3.4 for DHCID).
fn base64_rest(rdata: &[&[u8]]) -> Result<Vec<u8>, String> {
    let joined: Vec<u8> = rdata.iter().flat_map(|t| t.iter().copied()).collect();
    if joined.is_empty() {
        return Err("missing base64 data".to_owned());
    }
    base64(&joined)
}

fn base64(s: &[u8]) -> Result<Vec<u8>, String> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let body: Vec<u8> = s.iter().copied().take_while(|&c| c != b'=').collect();
    let padding = s.len() - body.len();
    if s[body.len()..].iter().any(|&c| c != b'=') || padding > 2 || !(body.len() + padding).is_multiple_of(4) {
        return Err("bad base64".to_owned());
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c).ok_or("bad base64")? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

/// RFC 4398 §2.2: type (number or mnemonic), key tag, algorithm (number or
/// mnemonic), base64 certificate.
fn cert(rdata: &[&[u8]]) -> Result<Vec<u8>, String> {
    if rdata.len() < 4 {
        return Err(format!("expected type, key tag, algorithm and data, got {} fields", rdata.len()));
    }
    let types = [
        ("PKIX", 1u16),
        ("SPKI", 2),
        ("PGP", 3),
        ("IPKIX", 4),
        ("ISPKI", 5),
        ("IPGP", 6),
        ("ACPKIX", 7),
        ("IACPKIX", 8),
        ("URI", 253),
        ("OID", 254),
    ];
    let t = field(rdata, 0, "type")?;
    let cert_type = match types.iter().find(|(n, _)| t.eq_ignore_ascii_case(n)) {
        Some(&(_, v)) => v,
        None => number(rdata, 0, "type")?,
    };
    let mut out = cert_type.to_be_bytes().to_vec();
    out.extend_from_slice(&number::<u16>(rdata, 1, "key tag")?.to_be_bytes());
    let alg = match algorithm_number(rdata[2]) {
        Some(n) => n.parse().map_err(|_| "bad algorithm".to_owned())?,
        None => number::<u8>(rdata, 2, "algorithm")?,
    };
    out.push(alg);
    out.extend_from_slice(&base64_rest(&rdata[3..])?);
    Ok(out)
}

/// RFC 7477 §2.1.1: SOA serial, flags, and the types as an RFC 4034 §4.1.2
/// bitmap.
fn csync(rdata: &[&[u8]]) -> Result<Vec<u8>, String> {
    if rdata.len() < 2 {
        return Err("expected a serial and flags".to_owned());
    }
    let mut out = number::<u32>(rdata, 0, "serial")?.to_be_bytes().to_vec();
    out.extend_from_slice(&number::<u16>(rdata, 1, "flags")?.to_be_bytes());
    let mut types = Vec::new();
    for t in &rdata[2..] {
        let t = text(t)?;
        let rtype: Rtype = t.parse().map_err(|_| format!("unknown type {t:?}"))?;
        types.push(rtype.to_int());
    }
    types.sort_unstable();
    types.dedup();
    let mut window_start = 0;
    while window_start < types.len() {
        let window = (types[window_start] >> 8) as u8;
        let in_window: Vec<u16> =
            types[window_start..].iter().copied().take_while(|t| (t >> 8) as u8 == window).collect();
        let mut bitmap = [0u8; 32];
        for t in &in_window {
            let low = (t & 0xff) as usize;
            bitmap[low / 8] |= 0x80 >> (low % 8);
        }
        let len = bitmap.iter().rposition(|&b| b != 0).map_or(1, |p| p + 1);
        out.push(window);
        out.push(len as u8);
        out.extend_from_slice(&bitmap[..len]);
        window_start += in_window.len();
    }
    Ok(out)
}

/// RFC 3123 §5: items `[!]afi:address/prefix`, the address with trailing
/// zero octets left out.
fn apl(rdata: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for item in rdata {
        let item = text(item)?;
        let (negate, rest) = match item.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, item),
        };
        let bad = || format!("bad item {item:?}: expected [!]afi:address/prefix");
        let (afi, rest) = rest.split_once(':').ok_or_else(bad)?;
        let (addr, prefix) = rest.rsplit_once('/').ok_or_else(bad)?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let (afi, mut octets): (u16, Vec<u8>) = match afi {
            "1" if prefix <= 32 => (1, addr.parse::<Ipv4Addr>().map_err(|_| bad())?.octets().to_vec()),
            "2" if prefix <= 128 => (2, addr.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?.octets().to_vec()),
            _ => return Err(bad()),
        };
        while octets.last() == Some(&0) {
            octets.pop();
        }
        out.extend_from_slice(&afi.to_be_bytes());
        out.push(prefix);
        out.push(octets.len() as u8 | if negate { 0x80 } else { 0 });
        out.extend_from_slice(&octets);
    }
    Ok(out)
}

/// RFC 1876 §3: `d1 [m1 [s1]] {N|S} d2 [m2 [s2]] {E|W} alt[m] [siz[m]
/// [hp[m] [vp[m]]]]`, defaults 1 m size, 10,000 m horizontal and 10 m
/// vertical precision. Degrees and minutes are whole numbers, seconds a
/// decimal below 60; altitude from −100,000.00 m to 42,849,672.95 m.
fn loc(rdata: &[&[u8]]) -> Result<Vec<u8>, String> {
    let tokens: Vec<&str> = rdata.iter().map(|t| text(t)).collect::<Result<_, _>>()?;
    let mut at = 0;
    let latitude = loc_angle(&tokens, &mut at, ('N', 'S'), 90)?;
    let longitude = loc_angle(&tokens, &mut at, ('E', 'W'), 180)?;
    let altitude = tokens.get(at).ok_or("missing altitude")?;
    at += 1;
    let alt_cm = centimetres(altitude, -10_000_000, 4_284_967_295)?;
    // Stored in cm above a base 100,000 m below the WGS 84 spheroid; the
    // range above keeps it within 32 bits.
    let alt = u32::try_from(alt_cm + 10_000_000).map_err(|_| format!("altitude {altitude:?} out of range"))?;
    let mut precision = [0x12u8, 0x16, 0x13]; // 1 m, 10,000 m, 10 m
    for p in precision.iter_mut() {
        let Some(t) = tokens.get(at) else { break };
        *p = loc_precision(centimetres(t, 0, 9_000_000_000)?);
        at += 1;
    }
    if at != tokens.len() {
        return Err("too many fields".to_owned());
    }
    let mut out = vec![0u8, precision[0], precision[1], precision[2]];
    out.extend_from_slice(&latitude.to_be_bytes());
    out.extend_from_slice(&longitude.to_be_bytes());
    out.extend_from_slice(&alt.to_be_bytes());
    Ok(out)
}

/// Whole degrees, optional whole minutes and decimal seconds, then a
/// hemisphere letter; in thousandths of a second of arc offset from 2^31
/// (RFC 1876 §2).
fn loc_angle(tokens: &[&str], at: &mut usize, (plus, minus): (char, char), max_degrees: u64) -> Result<u32, String> {
    let mut parts: Vec<&str> = Vec::new();
    loop {
        let t = tokens.get(*at).ok_or("missing hemisphere")?;
        *at += 1;
        let hemisphere = match t.to_ascii_uppercase() {
            h if h == plus.to_string() => Some(1i64),
            h if h == minus.to_string() => Some(-1i64),
            _ => None,
        };
        let Some(sign) = hemisphere else {
            parts.push(t);
            continue;
        };
        let bad = || format!("bad angle {:?} {t}", parts.join(" "));
        let whole = |p: &str, limit: u64| {
            p.parse::<u64>().ok().filter(|&v| v <= limit && p.bytes().all(|c| c.is_ascii_digit()))
        };
        let (degrees, minutes, seconds_ms) = match parts.as_slice() {
            [d] => (whole(d, max_degrees), Some(0), Some(0)),
            [d, m] => (whole(d, max_degrees), whole(m, 59), Some(0)),
            [d, m, s] => (whole(d, max_degrees), whole(m, 59), decimal_thousandths(s).filter(|&v| v < 60_000)),
            _ => (None, None, None),
        };
        let (Some(d), Some(m), Some(s)) = (degrees, minutes, seconds_ms) else { return Err(bad()) };
        let thousandths = (d * 3600 + m * 60) * 1000 + s;
        if thousandths > max_degrees * 3_600_000 {
            return Err(bad());
        }
        return u32::try_from((1i64 << 31) + sign * thousandths as i64).map_err(|_| bad());
    }
}

/// A non-negative decimal with at most three decimals, in thousandths.
fn decimal_thousandths(t: &str) -> Option<u64> {
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty()
        || whole.len() > 6
        || frac.len() > 3
        || !(whole.bytes().chain(frac.bytes())).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let frac: u64 = format!("{frac:0<3}").parse().ok()?;
    Some(whole.parse::<u64>().ok()? * 1000 + frac)
}

/// `[-]metres[.cc][m]` in centimetres, within `min..=max`.
fn centimetres(t: &str, min: i64, max: i64) -> Result<i64, String> {
    let bad = || format!("bad distance {t:?}");
    let body = t.strip_suffix(['m', 'M']).unwrap_or(t);
    let (negative, body) = match body.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, body),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty()
        || whole.len() > 10
        || frac.len() > 2
        || !(whole.bytes().chain(frac.bytes())).all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let cm =
        whole.parse::<i64>().map_err(|_| bad())? * 100 + format!("{frac:0<2}").parse::<i64>().map_err(|_| bad())?;
    let cm = if negative { -cm } else { cm };
    if (min..=max).contains(&cm) { Ok(cm) } else { Err(format!("distance {t:?} out of range")) }
}

/// A size or precision in cm (0 to 90,000,000 m) as RFC 1876's
/// mantissa/exponent octet.
fn loc_precision(cm: i64) -> u8 {
    let (mut mantissa, mut exponent) = (cm, 0u8);
    while mantissa > 9 {
        mantissa /= 10;
        exponent += 1;
    }
    ((mantissa as u8) << 4) | exponent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(rtype: &str, rdata: &str) -> Vec<u8> {
        let tokens: Vec<&[u8]> = rdata.split_whitespace().map(str::as_bytes).collect();
        match to_wire(rtype.as_bytes(), &tokens) {
            Some(Ok(w)) => w,
            other => panic!("{rtype} {rdata}: {other:?}"),
        }
    }

    #[test]
    fn rfc_examples_encode_as_their_rfcs_say() {
        assert_eq!(wire("eui48", "00-00-5e-00-53-2a"), [0, 0, 0x5e, 0, 0x53, 0x2a]);
        assert_eq!(wire("L32", "10 10.1.2.0"), [0, 10, 10, 1, 2, 0]);
        assert_eq!(wire("NID", "10 0014:4fff:ff20:ee64"), [0, 10, 0x00, 0x14, 0x4f, 0xff, 0xff, 0x20, 0xee, 0x64]);
        assert_eq!(wire("URI", "10 1 \"ftp://a/\""), b"\x00\x0a\x00\x01ftp://a/");
        // RFC 3123 §4's example, first two items.
        assert_eq!(
            wire("APL", "1:192.168.32.0/21 !1:192.168.38.0/28"),
            [0, 1, 21, 3, 192, 168, 32, 0, 1, 28, 0x83, 192, 168, 38]
        );
        assert_eq!(wire("CSYNC", "66 3 A NS AAAA"), [0, 0, 0, 66, 0, 3, 0, 4, 0x60, 0, 0, 0x08]);
        assert_eq!(wire("CERT", "PGP 0 0 AQID"), [0, 3, 0, 0, 0, 1, 2, 3]);
        assert_eq!(wire("DHCID", "AQ ID"), [1, 2, 3]);
        // RFC 1876's example is 42 21 54 N 71 06 18 W -24m 30m.
        let loc = wire("LOC", "42 21 54 N 71 06 18 W -24m 30m");
        assert_eq!(&loc[..4], &[0, 0x33, 0x16, 0x13]);
        assert_eq!(u32::from_be_bytes([loc[4], loc[5], loc[6], loc[7]]), (1 << 31) + 152_514_000);
        assert_eq!(u32::from_be_bytes([loc[8], loc[9], loc[10], loc[11]]), (1 << 31) - 255_978_000);
        assert_eq!(u32::from_be_bytes([loc[12], loc[13], loc[14], loc[15]]), 10_000_000 - 2400);
    }

    #[test]
    fn bad_rdata_is_an_error_that_names_the_type() {
        for (t, r) in [
            ("EUI48", "00-00"),
            ("EUI48", "+0-00-5e-00-53-2a"),
            ("NID", "10 14:4fff:ff20:ee64"),
            ("L32", "10 10.1.2"),
            ("L32", "+10 10.1.2.0"),
            ("LOC", "91 N 0 E 0m"),
            ("LOC", "90 30 N 0 E 0m"),
            ("LOC", "-10 N 0 E 0m"),
            ("LOC", "0 N 0 E 1e300m"),
            ("LOC", "-1e300 S 0 E 0m"),
            ("LOC", "NaN N 0 E 0m"),
            ("LOC", "0 0 60 N 0 E 0m"),
            ("URI", "1 1 \"a\\12b\""),
            ("APL", "3:1.2.3.4/8"),
        ] {
            let tokens: Vec<&[u8]> = r.split_whitespace().map(str::as_bytes).collect();
            let e = to_wire(t.as_bytes(), &tokens).and_then(Result::err);
            assert!(e.as_deref().is_some_and(|e| e.starts_with(t)), "{t} {r}: {e:?}");
        }
    }

    #[test]
    fn mnemonics_and_mx_shaped_types() {
        assert_eq!(algorithm_number(b"ecdsap256sha256").as_deref(), Some("13"));
        assert_eq!(algorithm_number(b"13"), None);
        assert_eq!(mx_shaped(b"afsdb"), Some(18));
        assert_eq!(mx_shaped(b"MX"), None);
    }
}
