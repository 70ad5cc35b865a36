//! Small helpers on records: RRSIG coverage, DNAME targets, grouping a
//! section into RRsets for the cache.

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// DNAME's type code (RFC 6672 §2.1); hickory keeps it as unknown data.
pub(crate) const DNAME: RecordType = RecordType::Unknown(39);

/// The type an RRSIG covers, `None` for other records.
pub(crate) fn covered_type(r: &Record) -> Option<RecordType> {
    match r.data() {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some(sig.type_covered()),
        _ => None,
    }
}

/// The target of a DNAME record, lowercase. RFC 6672 §2.5 / RFC 3597 §4:
/// the target is never compressed, so the raw RDATA is one whole name.
pub(crate) fn dname_target(r: &Record) -> Option<Name> {
    match r.data() {
        RData::Unknown { code, rdata } if *code == DNAME => {
            let mut d = BinDecoder::new(rdata.anything());
            let n = Name::read(&mut d).ok()?;
            d.is_empty().then(|| n.to_lowercase())
        }
        _ => None,
    }
}

/// `chain` without the CNAMEs synthesised from its DNAMEs (and their
/// RRSIGs): those are made by the resolver or the server for one name
/// (RFC 6672 §3.4 says a resolver need not cache them); the DNAME itself
/// is cached and answers every name below it.
pub(crate) fn without_synthesised(chain: &[Record]) -> Vec<Record> {
    let dnames: Vec<&Name> = chain.iter().filter(|r| r.record_type() == DNAME).map(Record::name).collect();
    let synthesised = |r: &Record| {
        let is_cname = r.record_type() == RecordType::CNAME || covered_type(r) == Some(RecordType::CNAME);
        is_cname && dnames.iter().any(|d| d.zone_of(r.name()) && *d != r.name())
    };
    chain.iter().filter(|r| !synthesised(r)).cloned().collect()
}

/// Lowercases every owner name in `msg` so that names compare byte for
/// byte (the cache keys and the bailiwick checks rely on it).
pub(crate) fn lowercase_owners(msg: &mut Message) {
    let lower = |rs: &mut Vec<Record>| {
        for r in rs.iter_mut() {
            let n = r.name().to_lowercase();
            r.set_name(n);
        }
    };
    lower(msg.answers_mut());
    lower(msg.name_servers_mut());
    lower(msg.additionals_mut());
}

/// One RRset: the records and the RRSIGs covering them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RrsetParts {
    pub(crate) name: Name,
    pub(crate) rtype: RecordType,
    pub(crate) records: Vec<Record>,
    pub(crate) rrsigs: Vec<Record>,
}

impl RrsetParts {
    /// RFC 2181 §5.2: an RRset lives as long as its shortest TTL.
    pub(crate) fn ttl(&self) -> u32 {
        self.records.iter().map(Record::ttl).min().unwrap_or(0)
    }
}

/// Groups `records` into RRsets (in first-seen order), attaching each
/// RRSIG to the RRset it covers. RRSIGs with nothing to cover are dropped.
pub(crate) fn group(records: &[Record]) -> Vec<RrsetParts> {
    let mut out: Vec<RrsetParts> = Vec::new();
    for r in records.iter().filter(|r| r.record_type() != RecordType::RRSIG) {
        match out.iter_mut().find(|s| s.name == *r.name() && s.rtype == r.record_type()) {
            Some(s) => {
                if !s.records.contains(r) {
                    s.records.push(r.clone());
                }
            }
            None => out.push(RrsetParts {
                name: r.name().clone(),
                rtype: r.record_type(),
                records: vec![r.clone()],
                rrsigs: Vec::new(),
            }),
        }
    }
    for r in records {
        if let Some(t) = covered_type(r)
            && let Some(s) = out.iter_mut().find(|s| s.name == *r.name() && s.rtype == t)
        {
            s.rrsigs.push(r.clone());
        }
    }
    out
}
