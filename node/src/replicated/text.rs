//! Records as text: what `meshdns zone set` and `zone import` send, and
//! what `zone export` prints (RFC 1035 §5 master-file format).

use std::collections::BTreeMap;
use std::path::Path;

use domain::base::ParsedName;
use domain::base::iana::Rtype;
use domain::base::rdata::ParseAnyRecordData;
use domain::dep::octseq::parse::Parser;
use domain::rdata::AllRecordData;
use meshdns_replication::{EntryKey, RRset};

use crate::dns::wire::name::to_text;
use crate::zone::parse::parse_text;

/// Parses master-file text for `zone` into RRsets (records of one owner and
/// type grouped; their TTLs must agree, RFC 2181 §5.2).
pub fn parse_rrsets(zone: &str, text: &str, label: &str) -> Result<Vec<(EntryKey, RRset)>, String> {
    let origin = if zone.ends_with('.') { zone.to_owned() } else { format!("{zone}.") };
    let parsed = parse_text(text, &origin, Path::new(label)).map_err(|e| e.to_string())?;
    let mut sets: BTreeMap<EntryKey, (u32, Vec<Vec<u8>>)> = BTreeMap::new();
    for r in &parsed.records {
        let key = EntryKey::new(parsed.owner(r), r.rtype).ok_or_else(|| "bad owner name".to_owned())?;
        let entry = sets.entry(key.clone()).or_insert((r.ttl, Vec::new()));
        if entry.0 != r.ttl {
            return Err(format!(
                "{} {}: records of one RRset have TTLs {} and {} (RFC 2181 §5.2: give them one TTL)",
                to_text(&key.owner),
                Rtype::from_int(key.rtype),
                entry.0,
                r.ttl
            ));
        }
        entry.1.push(parsed.rdata(r).to_vec());
    }
    Ok(sets.into_iter().map(|(k, (ttl, rdata))| (k, RRset::new(ttl, rdata))).collect())
}

/// One record line for `zone set NAME TYPE TTL RDATA`.
pub fn record_line(name: &str, rtype: &str, ttl: u32, rdata: &str) -> String {
    format!("{name} {ttl} IN {rtype} {rdata}\n")
}

/// The RDATA of one record in presentation form; RFC 3597 `\# len hex`
/// where the type is unknown or the data does not parse.
pub fn rdata_text(rtype: u16, rdata: &[u8]) -> String {
    let mut parser = Parser::from_ref(rdata);
    let parsed = AllRecordData::<&[u8], ParsedName<&[u8]>>::parse_any_rdata(Rtype::from_int(rtype), &mut parser);
    match parsed {
        Ok(data) if parser.remaining() == 0 => data.to_string(),
        _ => {
            let hex: String = rdata.iter().map(|b| format!("{b:02x}")).collect();
            if rdata.is_empty() { "\\# 0".to_owned() } else { format!("\\# {} {hex}", rdata.len()) }
        }
    }
}

/// A master file for `zone` with `rrsets`, SOA first.
pub fn zone_file(zone: &[u8], rrsets: &[(EntryKey, RRset)]) -> String {
    let mut out = format!("$ORIGIN {}\n", to_text(zone));
    let mut ordered: Vec<&(EntryKey, RRset)> = rrsets.iter().collect();
    ordered.sort_by_key(|(k, _)| (k.rtype != 6, k.owner.clone(), k.rtype));
    for (k, v) in ordered {
        let rtype = Rtype::from_int(k.rtype);
        for r in &v.rdata {
            out.push_str(&format!("{} {} IN {} {}\n", to_text(&k.owner), v.ttl, rtype, rdata_text(k.rtype, r)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_text() {
        let text = "www 300 IN A 192.0.2.1\nwww 300 IN A 192.0.2.2\n@ 60 IN MX 10 mail\nx 60 IN TYPE65280 \\# 2 abcd\n";
        let sets = parse_rrsets("example.org", text, "<test>").unwrap();
        assert_eq!(sets.len(), 3);
        let file = zone_file(b"\x07example\x03org\x00", &sets);
        assert!(file.contains("www.example.org. 300 IN A 192.0.2.1"), "{file}");
        assert!(file.contains("example.org. 60 IN MX 10 mail.example.org."), "{file}");
        assert!(file.contains("TYPE65280 \\# 2 ab cd"), "{file}");
        let again = parse_rrsets("example.org", &file, "<export>").unwrap();
        assert_eq!(again, sets);
    }

    #[test]
    fn an_rrset_with_two_ttls_is_refused() {
        let err = parse_rrsets("example.org", "a 1 IN A 192.0.2.1\na 2 IN A 192.0.2.2\n", "<t>").unwrap_err();
        assert!(err.contains("RFC 2181"), "{err}");
        let err = parse_rrsets("example.org", "$INCLUDE /etc/passwd\n", "<t>").unwrap_err();
        assert!(err.contains("not allowed"), "{err}");
    }
}
