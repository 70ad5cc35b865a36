//! A pass over master-file text before `domain`'s scanner reads it, for the
//! two forms BIND, NSD and Knot all accept that the scanner does not:
//!
//! - **TTLs with units** (`1h`, `1d2h3m4s`, `1W`, `1h30`): in a record's TTL
//!   field, in `$TTL`, in the four SOA timers and in RRSIG's original TTL.
//!   Each unit is a number followed by `w`, `d`, `h`, `m` or `s` (either
//!   case); a trailing bare number counts seconds, as NSD and BIND read it.
//!   The token is replaced by its value in seconds.
//! - **SMIMEA** (RFC 8162) in text form: its presentation and wire formats
//!   are TLSA's (RFC 8162 §2), so the type token is replaced by `TLSA` and
//!   its offset remembered; the record read from that entry gets TYPE 53.
//!
//! - **Types the scanner has no text form for** (LOC, APL, CERT, DHCID, URI,
//!   EUI48, EUI64, L32, L64, NID, CSYNC): the RDATA is turned into RFC 3597
//!   generic form `\# <length> <hex>` by [`super::rdata_text`]; AFSDB, RT, KX
//!   and LP are read as MX (same layout) and retyped, like SMIMEA.
//! - **DNSSEC algorithm mnemonics** (`ECDSAP256SHA256`) in DNSKEY, CDNSKEY,
//!   DS, CDS and RRSIG become their numbers.
//!
//! All these rewrites need to know which token of an entry is the TTL, the type
//! or an RDATA field, so the pass splits the text into entries and tokens
//! as RFC 1035 §5.1 lays them out: an entry ends at a newline outside
//! parentheses and quotes, `;` starts a comment, `\` escapes the next
//! character, a quoted string is one token, and an entry whose line starts
//! with a blank has no owner. Then `[<TTL>] [<class>] <type>` or
//! `[<class>] [<TTL>] <type>` follow. Only those fields are touched: an
//! RDATA word that happens to read `smimea` or `1h` stays as written.
//!
//! Newlines are never added or removed, so line numbers hold; byte offsets
//! after a rewritten TTL move, which is why the caller indexes lines from
//! the rewritten text when [`Rewritten::changed_length`] is set.

/// The text after the pass.
#[derive(Debug, Default)]
pub(super) struct Rewritten {
    /// Offsets (in the rewritten text) of type tokens that were replaced by
    /// a type of the same RDATA layout, and the TYPE the record really has.
    pub retyped: Vec<(usize, u16)>,
    /// Whether any token changed length (so offsets moved).
    pub changed_length: bool,
}

/// A field the pass cannot read (a TTL, or RDATA it converts): where it
/// starts, and why.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadField {
    /// Byte offset of the token in the text given to [`rewrite`].
    pub offset: usize,
    /// What is wrong, for the operator.
    pub message: String,
}

/// Rewrites `bytes` in place (see the module docs).
pub(super) fn rewrite(bytes: &mut Vec<u8>) -> Result<Rewritten, BadField> {
    let mut out = Rewritten::default();
    // Cheap exit for the common case: no letter that could be a TTL unit
    // right after a digit, and no `smimea` anywhere.
    if !might_need_rewrite(bytes) {
        return Ok(out);
    }
    // The scanner needs the last entry to end with a newline; BIND, NSD and
    // Knot do not.
    if bytes.last().is_some_and(|&b| b != b'\n') {
        bytes.push(b'\n');
    }
    let mut edits: Vec<Edit> = Vec::new();
    let mut tokens: Vec<(usize, usize)> = Vec::with_capacity(16);
    let mut at = 0usize;
    while at < bytes.len() {
        let (end, has_owner) = entry_tokens(bytes, at, &mut tokens);
        plan_entry(bytes, &tokens, has_owner, &mut edits)?;
        at = end;
    }
    if edits.is_empty() {
        return Ok(out);
    }
    let mut new = Vec::with_capacity(bytes.len() + edits.len() * 8);
    let mut from = 0usize;
    for edit in &edits {
        new.extend_from_slice(&bytes[from..edit.start]);
        if let Some(rtype) = edit.retype {
            out.retyped.push((new.len(), rtype));
        }
        new.extend_from_slice(&edit.text);
        out.changed_length |= edit.text.len() != edit.end - edit.start;
        from = edit.end;
    }
    new.extend_from_slice(&bytes[from..]);
    *bytes = new;
    Ok(out)
}

/// One token (or run of tokens) to replace.
struct Edit {
    start: usize,
    end: usize,
    text: Vec<u8>,
    /// The TYPE the record really has, when this replaces its type token.
    retype: Option<u16>,
}

impl Edit {
    fn text(start: usize, end: usize, text: Vec<u8>) -> Edit {
        Edit { start, end, text, retype: None }
    }
}

/// Whether the pass can change anything: a last line without a newline, a
/// digit followed by a TTL unit letter, or a word that may be a type or a
/// mnemonic the pass handles. Only a zone with none of these (no base64 or
/// hex RDATA, say) skips the tokeniser; for the rest it is one more linear
/// pass.
fn might_need_rewrite(bytes: &[u8]) -> bool {
    if bytes.last().is_some_and(|&b| b != b'\n') {
        return true;
    }
    let unit_after_digit =
        bytes.windows(2).any(|w| w[0].is_ascii_digit() && matches!(w[1] | 0x20, b'w' | b'd' | b'h' | b'm' | b's'));
    // Type names the pass handles, and how DNSSEC algorithm mnemonics start.
    const TYPES: [&[u8]; 16] = [
        b"SMIMEA", b"LOC", b"APL", b"CERT", b"DHCID", b"URI", b"EUI48", b"EUI64", b"L32", b"L64", b"NID", b"CSYNC",
        b"AFSDB", b"RT", b"KX", b"LP",
    ];
    const ALGORITHMS: [&[u8]; 10] =
        [b"RSA", b"DSA", b"DH", b"ECDSA", b"ECC-", b"ED25519", b"ED448", b"PRIVATE", b"INDIRECT", b"DELETE"];
    unit_after_digit
        || bytes.split(|b| b.is_ascii_whitespace()).any(|w| {
            TYPES.iter().any(|t| w.eq_ignore_ascii_case(t))
                || ALGORITHMS.iter().any(|a| w.len() >= a.len() && w[..a.len()].eq_ignore_ascii_case(a))
        })
}

/// Collects the tokens of the entry starting at `start` into `tokens` as
/// byte ranges, and returns where the next entry starts and whether this
/// one begins with an owner (its first line does not start with a blank).
fn entry_tokens(bytes: &[u8], start: usize, tokens: &mut Vec<(usize, usize)>) -> (usize, bool) {
    tokens.clear();
    let has_owner = bytes.get(start).is_some_and(|&b| !matches!(b, b' ' | b'\t' | b'\r'));
    let mut depth = 0u32;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                i += 1;
                if depth == 0 {
                    return (i, has_owner);
                }
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                let from = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    // An escaped character (a quote among them) stays inside.
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                tokens.push((from, i));
            }
            _ => {
                let from = i;
                while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b';' | b'"') {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = i.min(bytes.len());
                tokens.push((from, i));
            }
        }
    }
    (bytes.len(), has_owner)
}

/// Decides the edits for one entry's tokens.
fn plan_entry(bytes: &[u8], tokens: &[(usize, usize)], has_owner: bool, edits: &mut Vec<Edit>) -> Result<(), BadField> {
    let text = |&(s, e): &(usize, usize)| &bytes[s..e];
    let Some(first) = tokens.first() else { return Ok(()) };
    if text(first).first() == Some(&b'$') {
        if text(first).eq_ignore_ascii_case(b"$TTL")
            && let Some(ttl) = tokens.get(1)
        {
            ttl_edit(bytes, *ttl, edits)?;
        }
        return Ok(());
    }
    let mut i = usize::from(has_owner);
    // `[<TTL>] [<class>] <type>` or `[<class>] [<TTL>] <type>`.
    for _ in 0..2 {
        let Some(tok) = tokens.get(i) else { return Ok(()) };
        let t = text(tok);
        if is_class(t) {
            i += 1;
        } else if t.first().is_some_and(u8::is_ascii_digit) {
            ttl_edit(bytes, *tok, edits)?;
            i += 1;
        } else {
            break;
        }
    }
    let Some(&rtype) = tokens.get(i) else { return Ok(()) };
    let rdata = tokens.get(i + 1..).unwrap_or(&[]);
    let t = text(&rtype);
    if t.eq_ignore_ascii_case(b"SMIMEA") {
        edits.push(Edit { start: rtype.0, end: rtype.1, text: b"TLSA".to_vec(), retype: Some(53) });
        return Ok(());
    }
    if let Some(real) = super::rdata_text::mx_shaped(t) {
        edits.push(Edit { start: rtype.0, end: rtype.1, text: b"MX".to_vec(), retype: Some(real) });
        return Ok(());
    }
    // RDATA already in RFC 3597 generic form is hex: nothing to rewrite.
    if rdata.first().is_some_and(|f| text(f) == b"\\#") {
        return Ok(());
    }
    if let Some(wire) = super::rdata_text::to_wire(t, &rdata.iter().map(text).collect::<Vec<_>>()) {
        let at = rdata.first().map_or(rtype.1, |f| f.0);
        let wire = wire.map_err(|message| BadField { offset: at, message })?;
        let mut generic = format!("\\# {}", wire.len()).into_bytes();
        if !wire.is_empty() {
            generic.push(b' ');
        }
        generic.extend(wire.iter().flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]));
        match (rdata.first(), rdata.last()) {
            (Some(first), Some(last)) => {
                // Keep the parentheses and newlines between the tokens, so
                // the entry still ends where it did and line numbers hold.
                generic.extend(structure_between(bytes, rdata));
                edits.push(Edit::text(first.0, last.1, generic));
            }
            // No RDATA at all (an empty APL): the generic form goes after the type.
            _ => {
                generic.insert(0, b' ');
                edits.push(Edit::text(rtype.1, rtype.1, generic));
            }
        }
    } else if [b"DNSKEY".as_slice(), b"CDNSKEY", b"DS", b"CDS", b"RRSIG"].iter().any(|k| t.eq_ignore_ascii_case(k)) {
        let at = if t.eq_ignore_ascii_case(b"DNSKEY") || t.eq_ignore_ascii_case(b"CDNSKEY") { 2 } else { 1 };
        if let Some(tok) = rdata.get(at)
            && let Some(number) = super::rdata_text::algorithm_number(text(tok))
        {
            edits.push(Edit::text(tok.0, tok.1, number.into_bytes()));
        }
        if t.eq_ignore_ascii_case(b"RRSIG")
            && let Some(tok) = rdata.get(3)
        {
            // The original TTL (RFC 4034 §3.2).
            ttl_edit(bytes, *tok, edits)?;
        }
    } else if t.eq_ignore_ascii_case(b"SOA") {
        // MNAME RNAME SERIAL then REFRESH RETRY EXPIRE MINIMUM (RFC 1035 §3.3.13).
        for tok in rdata.iter().skip(3).take(4) {
            ttl_edit(bytes, *tok, edits)?;
        }
    }
    Ok(())
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The parentheses and newlines between consecutive tokens (comments
/// skipped), in order.
fn structure_between(bytes: &[u8], tokens: &[(usize, usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    for pair in tokens.windows(2) {
        let mut in_comment = false;
        for &c in &bytes[pair[0].1..pair[1].0] {
            match c {
                b'\n' => {
                    in_comment = false;
                    out.extend_from_slice(b"\n");
                }
                b';' => in_comment = true,
                b'(' | b')' if !in_comment => {
                    out.push(b' ');
                    out.push(c);
                }
                _ => {}
            }
        }
    }
    out
}

/// `IN`, `CH`, `CS`, `HS` or RFC 3597's `CLASSnnn`.
fn is_class(t: &[u8]) -> bool {
    ["IN", "CH", "CS", "HS"].iter().any(|c| t.eq_ignore_ascii_case(c.as_bytes()))
        || (t.len() > 5 && t[..5].eq_ignore_ascii_case(b"CLASS") && t[5..].iter().all(u8::is_ascii_digit))
}

/// Adds an edit for a TTL token with units; a plain number is left to the
/// scanner (which range-checks it), anything else is an error here.
fn ttl_edit(bytes: &[u8], (start, end): (usize, usize), edits: &mut Vec<Edit>) -> Result<(), BadField> {
    let token = &bytes[start..end];
    // A quoted token is no TTL in any server: the scanner says so.
    if token.iter().all(u8::is_ascii_digit) || token.first() == Some(&b'"') {
        return Ok(());
    }
    let secs = ttl_seconds(token).map_err(|message| BadField { offset: start, message })?;
    edits.push(Edit::text(start, end, secs.to_string().into_bytes()));
    Ok(())
}

/// The value of a TTL written with units: `(<number>[wdhms])+`, the last
/// unit optional (a bare number counts seconds), any case.
pub(super) fn ttl_seconds(token: &[u8]) -> Result<u32, String> {
    let shown = String::from_utf8_lossy(token);
    let bad = || format!("bad TTL {shown:?}: expected seconds or a number with units w, d, h, m, s (like 1h30m or 1W)");
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for &c in token {
        if c.is_ascii_digit() {
            let n = number.unwrap_or(0).checked_mul(10).and_then(|n| n.checked_add(u64::from(c - b'0')));
            number = Some(n.filter(|&n| n <= u64::from(u32::MAX)).ok_or_else(|| too_large(&shown))?);
            continue;
        }
        let unit: u64 = match c | 0x20 {
            b'w' => 7 * 86_400,
            b'd' => 86_400,
            b'h' => 3_600,
            b'm' => 60,
            b's' => 1,
            _ => return Err(bad()),
        };
        let n = number.take().ok_or_else(bad)?;
        total = total.saturating_add(n.saturating_mul(unit));
    }
    total = total.saturating_add(number.unwrap_or(0));
    u32::try_from(total).map_err(|_| too_large(&shown))
}

fn too_large(shown: &str) -> String {
    format!("TTL {shown:?} is larger than 4294967295 seconds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (String, Vec<usize>) {
        let mut bytes = text.as_bytes().to_vec();
        let r = rewrite(&mut bytes).unwrap_or_else(|e| panic!("{e:?}"));
        (String::from_utf8(bytes).unwrap_or_default(), r.retyped.iter().map(|&(at, _)| at).collect())
    }

    #[test]
    fn types_without_a_scanner_text_form_become_generic_and_keep_their_lines() {
        let (text, _) = run("x LOC ( 42 21 54 N ; lat\n 71 06 18 W -24m 30m )\ny EUI48 00-00-5e-00-53-2a\n");
        assert_eq!(text, "x LOC ( \\# 16 0033161389172DD070BE15F000988D20\n )\ny EUI48 \\# 6 00005E00532A\n");
        let (text, at) = run("a AFSDB 1 db\nk DS 1 ECDSAP256SHA256 2 AB\n");
        assert_eq!(text, "a MX 1 db\nk DS 1 13 2 AB\n");
        assert_eq!(at, vec![2]);
    }

    #[test]
    fn generic_rdata_is_left_alone_and_an_empty_apl_becomes_generic() {
        let src = "@ SOA \\# 22 00 00 1A 00 1h\nx RRSIG \\# 4 0001 0D02\ny DS \\# 2 ED25\n";
        assert_eq!(run(src).0, src);
        assert_eq!(run("a APL\nb APL ; none\n").0, "a APL \\# 0\nb APL \\# 0 ; none\n");
    }

    #[test]
    fn a_last_line_without_newline_gets_one() {
        let (text, _) = run("x A 192.0.2.1");
        assert_eq!(text, "x A 192.0.2.1\n");
    }

    #[test]
    fn ttl_units_as_bind_nsd_and_knot_read_them() {
        assert_eq!(ttl_seconds(b"1h"), Ok(3600));
        assert_eq!(ttl_seconds(b"1d2h3m4s"), Ok(93_784));
        assert_eq!(ttl_seconds(b"1W"), Ok(604_800));
        assert_eq!(ttl_seconds(b"1h30"), Ok(3630));
        assert_eq!(ttl_seconds(b"2H1M"), Ok(7260));
        assert!(ttl_seconds(b"h").is_err());
        assert!(ttl_seconds(b"1x").is_err());
        assert!(ttl_seconds(b"1hh").is_err());
        assert!(ttl_seconds(b"7102w").is_err(), "over 2^32-1 seconds");
        assert!(ttl_seconds(b"99999999999").is_err());
    }

    #[test]
    fn record_ttl_dollar_ttl_soa_timers_and_rrsig_original_ttl_are_rewritten() {
        let (text, _) =
            run("$TTL 1h\n@ SOA ns h 2026 1h 15m 1w 1d\nttlunits 1d2h3m4s A 192.0.2.2\n  IN 2m TXT \"1h\"\n\
             s RRSIG A 13 2 1h 20260101000000 20251201000000 1 x. AAAA\n");
        assert_eq!(
            text,
            "$TTL 3600\n@ SOA ns h 2026 3600 900 604800 86400\nttlunits 93784 A 192.0.2.2\n  IN 120 TXT \"1h\"\n\
             s RRSIG A 13 2 3600 20260101000000 20251201000000 1 x. AAAA\n"
        );
    }

    #[test]
    fn rdata_and_owners_that_look_like_ttls_or_smimea_are_left_alone() {
        let src = "1h A 192.0.2.1\nx TXT hi smimea 42\nmail CNAME smimea\nsmimea MX 10 1h\nq TXT ( a\n 1h )\n";
        let (text, at) = run(src);
        assert_eq!(text, src);
        assert!(at.is_empty());
    }

    #[test]
    fn rfc8162_smimea_type_token_becomes_tlsa() {
        let (text, at) = run("smimea 60 IN SMIMEA 3 0 1 ABCD\n@ CNAME smimea\nx 1h smimea ( 3 0 1\n AB )\n");
        assert_eq!(text, "smimea 60 IN TLSA 3 0 1 ABCD\n@ CNAME smimea\nx 3600 TLSA ( 3 0 1\n AB )\n");
        let tlsa: Vec<usize> = text.match_indices("TLSA").map(|(i, _)| i).collect();
        assert_eq!(at, tlsa);
    }

    #[test]
    fn parentheses_quotes_and_comments_do_not_confuse_the_fields() {
        let (text, _) = run("@ SOA ( ns h ; comment 1h\n 1 ; serial\n 2h 3h\n 4h \"5h\" )\nt TXT \"a\\\" 1h\" 1h\n");
        assert!(text.contains(" 7200 10800\n 14400 \"5h\" )"), "{text}");
        assert!(text.ends_with("t TXT \"a\\\" 1h\" 1h\n"), "quoted and RDATA words stay: {text}");
        assert!(text.contains("; comment 1h"), "comments are not touched: {text}");
    }

    #[test]
    fn a_bad_ttl_names_its_offset() {
        let mut bytes = b"@ SOA ns h 1 1h 1h 1h 1h\nx 1q A 192.0.2.1\n".to_vec();
        let e = rewrite(&mut bytes).err();
        assert_eq!(e.map(|e| e.offset), Some(27));
    }
}
