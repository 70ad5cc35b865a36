//! Stand-in for `crate::dnssec::TrustAnchors` until the validator lands
//! (branch res-dnssec); the recursor only needs to know whether anchors
//! are configured. Replaced by a re-export when it is merged.

use hickory_proto::rr::{Name, Record};

/// Trust anchors (stand-in; see the module docs).
#[derive(Clone, Debug, Default)]
pub struct TrustAnchors {
    anchors: Vec<(Name, Vec<Record>)>,
}

impl TrustAnchors {
    /// The closest anchor at or above `name`.
    pub fn closest(&self, name: &Name) -> Option<&Name> {
        self.anchors.iter().map(|(n, _)| n).filter(|n| n.zone_of(name)).max_by_key(|n| n.num_labels())
    }

    /// The anchor records (DS or DNSKEY) for `zone`.
    pub fn for_zone(&self, zone: &Name) -> Option<&[Record]> {
        self.anchors.iter().find(|(n, _)| n == zone).map(|(_, r)| r.as_slice())
    }
}
