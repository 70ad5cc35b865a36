//! Signs test zones with fresh Ed25519 keys (hickory's crypto), so a
//! chain of trust through a DS can be tested end to end.

use hickory_proto::dnssec::crypto::Ed25519SigningKey;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType, SigningKey, TBS};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::recursive::rrset::group;

pub(crate) struct ZoneKey {
    key: Ed25519SigningKey,
    dnskey: DNSKEY,
    tag: u16,
    apex: Name,
}

impl ZoneKey {
    pub(crate) fn new(apex: &Name) -> Self {
        let der = Ed25519SigningKey::generate_pkcs8().unwrap_or_else(|e| panic!("{e}"));
        let key = Ed25519SigningKey::from_pkcs8(&der).unwrap_or_else(|e| panic!("{e}"));
        let public = key.to_public_key().unwrap_or_else(|e| panic!("{e}"));
        let dnskey = DNSKEY::new(true, true, false, public);
        let tag = dnskey.calculate_key_tag().unwrap_or_else(|e| panic!("{e}"));
        ZoneKey { key, dnskey, tag, apex: apex.clone() }
    }

    pub(crate) fn dnskey(&self) -> Record {
        Record::from_rdata(self.apex.clone(), 3600, RData::DNSSEC(DNSSECRData::DNSKEY(self.dnskey.clone())))
    }

    pub(crate) fn ds(&self) -> Record {
        let digest = self.dnskey.to_digest(&self.apex, DigestType::SHA256).unwrap_or_else(|e| panic!("{e}"));
        let ds = DS::new(self.tag, Algorithm::ED25519, DigestType::SHA256, digest.as_ref().to_vec());
        Record::from_rdata(self.apex.clone(), 3600, RData::DNSSEC(DNSSECRData::DS(ds)))
    }

    /// `records` (the zone, DNSKEY included) with RRSIGs over every
    /// authoritative RRset: not over delegation NS RRsets and glue.
    pub(crate) fn sign_zone(&self, records: Vec<Record>, now_s: u32) -> Vec<Record> {
        let cuts: Vec<Name> = records
            .iter()
            .filter(|r| r.record_type() == RecordType::NS && *r.name() != self.apex)
            .map(|r| r.name().clone())
            .collect();
        let mut out = records.clone();
        for s in group(&records) {
            let below_cut = cuts.iter().any(|c| c.zone_of(&s.name));
            if below_cut && !(s.rtype == RecordType::DS && cuts.contains(&s.name)) {
                continue;
            }
            let unsigned = RRSIG::new(
                s.rtype,
                Algorithm::ED25519,
                s.name.num_labels(),
                s.ttl(),
                now_s + 30 * 86400,
                now_s - 3600,
                self.tag,
                self.apex.clone(),
                Vec::new(),
            );
            let tbs =
                TBS::from_sig(&s.name, DNSClass::IN, &unsigned, s.records.iter()).unwrap_or_else(|e| panic!("{e}"));
            let sig = self.key.sign(&tbs).unwrap_or_else(|e| panic!("{e}"));
            let rrsig = RRSIG::new(
                s.rtype,
                Algorithm::ED25519,
                s.name.num_labels(),
                s.ttl(),
                now_s + 30 * 86400,
                now_s - 3600,
                self.tag,
                self.apex.clone(),
                sig,
            );
            out.push(Record::from_rdata(s.name.clone(), s.ttl(), RData::DNSSEC(DNSSECRData::RRSIG(rrsig))));
        }
        out
    }
}
