//! Checks, asked of the lab's authoritative servers directly, that the
//! lab is built the way its comment says: the questions' outcomes alone
//! could pass for the wrong reasons (a "TC" answer that fits in UDP, a
//! "dead" server that answers, a zone that is not opt-out at all).

use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::{Flags, Lab, exchange_udp, query_msg};

const T: Duration = Duration::from_millis(500);

/// A non-recursive query with DO=1, straight to a lab server, over UDP.
fn direct(lab: &Lab, host: u8, name: &str, rtype: RecordType) -> Result<Message, String> {
    let mut q = query_msg(name, rtype, Flags { dnssec_ok: true, ..Flags::default() });
    q.set_recursion_desired(false);
    exchange_udp(lab.server(host), &q, T)
}

fn rdata(r: &Record) -> Vec<u8> {
    r.data().to_bytes().unwrap_or_default()
}

fn of_type(rs: &[Record], t: RecordType) -> Vec<&Record> {
    rs.iter().filter(|r| r.record_type() == t).collect()
}

/// RFC 4034 Appendix B: the key tag of a DNSKEY's RDATA.
fn key_tag(rdata: &[u8]) -> u16 {
    let mut ac: u32 = 0;
    for (i, b) in rdata.iter().enumerate() {
        ac += if i & 1 == 1 { *b as u32 } else { (*b as u32) << 8 };
    }
    ac += (ac >> 16) & 0xffff;
    (ac & 0xffff) as u16
}

/// Key tags of the DNSKEYs `host` serves for `zone`.
fn key_tags(lab: &Lab, host: u8, zone: &str) -> Result<Vec<u16>, String> {
    let m = direct(lab, host, zone, RecordType::DNSKEY)?;
    Ok(of_type(m.answers(), RecordType::DNSKEY).iter().map(|r| key_tag(&rdata(r))).collect())
}

/// The opt-out flags (RFC 5155 §3.1.2) of the NSEC3s in an authority section.
fn opt_out_flags(m: &Message) -> Vec<bool> {
    of_type(m.name_servers(), RecordType::NSEC3).iter().map(|r| rdata(r).get(1).is_some_and(|f| f & 1 == 1)).collect()
}

/// Every way the lab differs from its description; empty when it is right.
#[allow(clippy::disallowed_methods)] // expiry is judged against the real clock, as the resolvers do
pub fn check_structure(lab: &Lab) -> Vec<String> {
    let mut bad = Vec::new();
    let mut expect = |ok: Result<bool, String>, what: &str| match ok {
        Ok(true) => {}
        Ok(false) => bad.push(what.to_owned()),
        Err(e) => bad.push(format!("{what}: {e}")),
    };
    // The 2 KB TXT does not fit a 1232-octet UDP answer, from the server
    // or from Unbound.
    for (host, name) in [(6, "big.dest.example."), (5, "big.good.sec.")] {
        expect(direct(lab, host, name, RecordType::TXT).map(|m| m.truncated()), &format!("{name} TXT is TC over UDP"));
    }
    let q = query_msg("big.dest.example.", RecordType::TXT, Flags::default());
    expect(exchange_udp(lab.unbound_addr(), &q, T * 8).map(|m| m.truncated()), "Unbound's big TXT answer is TC");
    // The dead server reads and never answers; the lame one refuses.
    expect(Ok(direct(lab, 8, "www.dead.testlab.", RecordType::A).is_err()), "the dead server is silent");
    for zone in ["lame.testlab.", "alllame.testlab."] {
        expect(
            direct(lab, 7, zone, RecordType::SOA).map(|m| m.response_code() == ResponseCode::Refused),
            &format!("the lame server refuses {zone}"),
        );
    }
    // The glueless referral carries no address for its NS.
    expect(
        direct(lab, 3, "www.glueless.testlab.", RecordType::A).map(|m| {
            !of_type(m.name_servers(), RecordType::NS).is_empty()
                && m.additionals().iter().all(|r| r.record_type() == RecordType::OPT)
        }),
        "glueless.testlab. is a referral without glue",
    );
    // insecure.sec. has no DS, and sec.'s NSEC3 (no opt-out) proves it.
    expect(
        direct(lab, 4, "insecure.sec.", RecordType::DS).map(|m| {
            let flags = opt_out_flags(&m);
            m.answers().is_empty() && !flags.is_empty() && flags.iter().all(|o| !o)
        }),
        "insecure.sec. DS: NODATA with NSEC3, opt-out clear",
    );
    // nsec3.sec. is opt-out; unsigned.nsec3.sec. has no DS.
    expect(
        direct(lab, 5, "nope.nsec3.sec.", RecordType::A).map(|m| {
            let flags = opt_out_flags(&m);
            m.response_code() == ResponseCode::NXDomain && !flags.is_empty() && flags.iter().all(|o| *o)
        }),
        "nsec3.sec. NXDOMAIN with opt-out NSEC3s",
    );
    expect(
        direct(lab, 5, "unsigned.nsec3.sec.", RecordType::DS).map(|m| of_type(m.answers(), RecordType::DS).is_empty()),
        "unsigned.nsec3.sec. has no DS",
    );
    // The bogus zone's DS names no key it has; the good zone's does.
    for (zone, matches) in [("bogus-ds.sec.", false), ("good.sec.", true)] {
        let ds = direct(lab, 4, zone, RecordType::DS).map(|m| {
            of_type(m.answers(), RecordType::DS)
                .iter()
                .map(|r| u16::from_be_bytes([rdata(r)[0], rdata(r)[1]]))
                .collect()
        });
        let check = ds.and_then(|ds: Vec<u16>| {
            let tags = key_tags(lab, 5, zone)?;
            Ok(!ds.is_empty() && !tags.is_empty() && ds.iter().any(|t| tags.contains(t)) == matches)
        });
        expect(check, &format!("{zone} DS matches a DNSKEY: {matches}"));
    }
    // expired.sec.'s signatures expired (RFC 4034 §3.1.5: bytes 8..12).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    expect(
        direct(lab, 5, "www.expired.sec.", RecordType::A).map(|m| {
            let sigs = of_type(m.answers(), RecordType::RRSIG);
            !sigs.is_empty()
                && sigs.iter().all(|r| {
                    let d = rdata(r);
                    d.len() > 12 && (u32::from_be_bytes([d[8], d[9], d[10], d[11]]) as u64) < now
                })
        }),
        "www.expired.sec. signatures have expired",
    );
    // Both roots serve the same signed zone, whose KSK is the trust anchor.
    let anchor = std::fs::read_to_string(&lab.trust_anchor).unwrap_or_default();
    let anchor_tag: Option<u16> =
        anchor.split_whitespace().skip_while(|w| *w != "DS").nth(1).and_then(|t| t.parse().ok());
    for host in [1, 2] {
        expect(
            key_tags(lab, host, ".").map(|tags| tags.len() == 2 && anchor_tag.is_some_and(|a| tags.contains(&a))),
            &format!("root server {host} has the anchored KSK and a ZSK ({anchor_tag:?})"),
        );
    }
    bad
}
