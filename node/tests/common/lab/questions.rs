//! The lab's test questions, each with the outcome a validating resolver
//! must give, and the check of an answer against that outcome.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// What a validating resolver answers, asked with DO=1 (RFC 4035 §3.2.3:
/// AD only for data it validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// NOERROR, AD, the asked type in the answer.
    Secure,
    /// NXDOMAIN with AD (denial proven by NSEC/NSEC3).
    SecureNxdomain,
    /// NOERROR, AD, no record of the asked type (proven NODATA).
    SecureNodata,
    /// NOERROR, no AD (an insecure delegation on the way), data present.
    Insecure,
    /// NXDOMAIN without AD.
    InsecureNxdomain,
    /// NOERROR, no AD, no record of the asked type.
    InsecureNodata,
    /// SERVFAIL (RFC 4035 §5.5); with CD=1 the data, NOERROR, no AD.
    Bogus,
    /// SERVFAIL: no server answers for the zone.
    ServFail,
}

/// One lab question.
#[derive(Clone, Copy, Debug)]
pub struct Question {
    pub name: &'static str,
    pub rtype: RecordType,
    pub expect: Outcome,
    /// What the question exercises, for failure tables.
    pub why: &'static str,
    /// Extended DNS Error info codes (RFC 8914 §4) acceptable in the
    /// SERVFAIL of a bogus answer, if the resolver sends one.
    pub ede: &'static [u16],
}

const fn q(name: &'static str, rtype: RecordType, expect: Outcome, why: &'static str) -> Question {
    Question { name, rtype, expect, why, ede: &[] }
}

/// Every question, in asking order.
pub fn questions() -> Vec<Question> {
    use Outcome::*;
    use RecordType::*;
    vec![
        // The signed chain: root (NSEC) -> sec. (NSEC3) -> good.sec. (NSEC), nsec3.sec. (NSEC3 opt-out).
        q("www.sec.", A, Secure, "data in a signed NSEC3 TLD"),
        q("www.good.sec.", A, Secure, "signed NSEC zone below a signed NSEC3 parent"),
        q("www.nsec3.sec.", A, Secure, "signed NSEC3 opt-out zone"),
        q("good.sec.", DNSKEY, Secure, "DNSKEY RRset"),
        q("sec.", DS, Secure, "DS at the root"),
        q("host.wild.good.sec.", A, Secure, "wildcard in an NSEC zone (RFC 4035 §5.3.4)"),
        q("host.wild.sec.", A, Secure, "wildcard in an NSEC3 zone (RFC 5155 §8.8)"),
        q("nope.good.sec.", A, SecureNxdomain, "NSEC name error proof"),
        q("nope.sec.", A, SecureNxdomain, "NSEC3 name error in a TLD"),
        q("nosuchtld.", A, SecureNxdomain, "NSEC name error at the root"),
        q("txt.good.sec.", A, SecureNodata, "NSEC NODATA"),
        q("www.nsec3.sec.", AAAA, SecureNodata, "NSEC3 NODATA"),
        q("insecure.sec.", DS, SecureNodata, "NSEC3 proof of no DS"),
        q("host.wild.good.sec.", TXT, SecureNodata, "wildcard NODATA, NSEC (RFC 4035 §3.1.3.4)"),
        q("host.wild.sec.", TXT, SecureNodata, "wildcard NODATA, NSEC3 (RFC 5155 §7.2.5)"),
        q("ent.good.sec.", A, SecureNodata, "empty non-terminal, NSEC"),
        q("ent.sec.", A, SecureNodata, "empty non-terminal, NSEC3 (RFC 5155 §7.2.3)"),
        q("dangling.good.sec.", A, SecureNxdomain, "signed CNAME to a signed NXDOMAIN (RFC 6604)"),
        q("alias.good.sec.", A, Secure, "signed cross-zone CNAME"),
        q("www.d.good.sec.", A, Secure, "signed DNAME into another signed zone"),
        q("big.good.sec.", TXT, Secure, "signed 2 KB TXT: TC over UDP, TCP"),
        // Insecure: unsigned delegations from signed parents, unsigned TLDs.
        q("www.insecure.sec.", A, Insecure, "no DS, proven by the parent's NSEC3"),
        q("www.unsigned.nsec3.sec.", A, Insecure, "no DS, covered by an opt-out NSEC3"),
        // An opt-out span may hide unsigned names (RFC 5155 §6, RFC 7129 §5.1):
        // a proof resting on a covering opt-out NSEC3 is not secure.
        q("nope.nsec3.sec.", A, InsecureNxdomain, "NXDOMAIN under opt-out: no AD"),
        q("host.wild.nsec3.sec.", A, Insecure, "wildcard under opt-out: no AD"),
        q("nope.insecure.sec.", A, InsecureNxdomain, "NXDOMAIN in an insecure zone"),
        q("to-insecure.good.sec.", A, Insecure, "signed CNAME into an insecure zone"),
        q("www.insecure.", A, Insecure, "unsigned TLD (NSEC at the root proves no DS)"),
        q("www.testlab.", A, Insecure, "data in an unsigned TLD"),
        q("nope.testlab.", A, InsecureNxdomain, "NXDOMAIN in an unsigned TLD"),
        q("www.cname.testlab.", A, Insecure, "cross-zone CNAME"),
        q("chain.cname.testlab.", A, Insecure, "CNAME chain unsigned -> unsigned -> signed"),
        q("www.d.cname.testlab.", A, Insecure, "DNAME into another zone"),
        q("dangling.cname.testlab.", A, InsecureNxdomain, "CNAME to an NXDOMAIN in another zone"),
        q("host.wild.testlab.", A, Insecure, "wildcard, unsigned"),
        q("nope.dest.example.", A, InsecureNxdomain, "NXDOMAIN, unsigned"),
        q("txt.dest.example.", A, InsecureNodata, "NODATA, unsigned"),
        q("big.dest.example.", TXT, Insecure, "2 KB TXT: TC over UDP, TCP"),
        q("www.lame.testlab.", A, Insecure, "one server lame (REFUSED), one working"),
        q("www.dead.testlab.", A, Insecure, "one server dead (silent), one working"),
        q("www.glueless.testlab.", A, Insecure, "glueless delegation: NS name in another zone"),
        q("www.fwd.example.", A, Insecure, "the forward-mode plain zone"),
        // Failures.
        Question { ede: &[6, 9, 10, 12], ..q("www.bogus-ds.sec.", A, Bogus, "DS in the parent matches no DNSKEY") },
        Question { ede: &[6, 7], ..q("www.expired.sec.", A, Bogus, "signatures expired in 2020") },
        q("www.alllame.testlab.", A, ServFail, "the only server is lame"),
    ]
}

/// The info code of each Extended DNS Error option (RFC 8914 §2) in `m`.
pub fn ede_codes(m: &Message) -> Vec<u16> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let Some(edns) = m.extensions() else { return Vec::new() };
    edns.options()
        .get_all(EdnsCode::from(15))
        .into_iter()
        .filter_map(|o| match o {
            EdnsOption::Unknown(_, data) if data.len() >= 2 => Some(u16::from_be_bytes([data[0], data[1]])),
            _ => None,
        })
        .collect()
}

/// The Extended DNS Errors in `m` as "code text" strings (RFC 8914 §2:
/// INFO-CODE, then EXTRA-TEXT in UTF-8), for failure messages.
pub fn ede_text(m: &Message) -> Vec<String> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let Some(edns) = m.extensions() else { return Vec::new() };
    edns.options()
        .get_all(EdnsCode::from(15))
        .into_iter()
        .filter_map(|o| match o {
            EdnsOption::Unknown(_, data) if data.len() >= 2 => {
                Some(format!("EDE {} {}", u16::from_be_bytes([data[0], data[1]]), String::from_utf8_lossy(&data[2..])))
            }
            _ => None,
        })
        .collect()
}

/// Whether the answer section holds a record of the asked type.
fn has_type(m: &Message, rtype: RecordType) -> bool {
    m.answers().iter().any(|r| r.record_type() == rtype)
}

/// Checks an answer to `q` asked with DO=1 (and CD=`cd`) against its
/// expected outcome; `Err` says what is wrong.
pub fn check(q: &Question, m: &Message, cd: bool) -> Result<(), String> {
    use Outcome::*;
    let rcode = m.response_code();
    let ad = m.authentic_data();
    let data = has_type(m, q.rtype);
    let (want_rcode, want_ad, want_data) = match (q.expect, cd) {
        (Bogus, true) => (ResponseCode::NoError, Some(false), Some(true)),
        (Secure, _) => (ResponseCode::NoError, Some(true), Some(true)),
        (SecureNxdomain, _) => (ResponseCode::NXDomain, Some(true), Some(false)),
        (SecureNodata, _) => (ResponseCode::NoError, Some(true), Some(false)),
        (Insecure, _) => (ResponseCode::NoError, Some(false), Some(true)),
        (InsecureNxdomain, _) => (ResponseCode::NXDomain, Some(false), Some(false)),
        (InsecureNodata, _) => (ResponseCode::NoError, Some(false), Some(false)),
        (Bogus, false) | (ServFail, _) => (ResponseCode::ServFail, None, Some(false)),
    };
    let mut wrong = Vec::new();
    if rcode != want_rcode {
        wrong.push(format!("rcode {rcode} (want {want_rcode})"));
    }
    if want_ad.is_some_and(|w| w != ad) {
        wrong.push(format!("AD={} (want {})", ad as u8, !ad as u8));
    }
    if want_data.is_some_and(|w| w != data) {
        wrong.push(format!("{} record in the answer: {data} (want {})", q.rtype, !data));
    }
    if q.expect == Bogus && !cd {
        let ede = ede_codes(m);
        if let Some(bad) = ede.iter().find(|c| !q.ede.contains(c)) {
            wrong.push(format!("EDE {bad} (want one of {:?})", q.ede));
        }
    }
    if wrong.is_empty() { Ok(()) } else { Err(wrong.join("; ")) }
}
