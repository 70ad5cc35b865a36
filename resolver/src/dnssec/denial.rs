//! Authenticated denial of existence with NSEC (RFC 4035 §5.4, RFC 4034
//! §4, RFC 6840 §4.1 and §4.4 for which side of a delegation an NSEC is
//! from). The NSEC records given are already validated by the caller.

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::Ede;

/// The NSEC in a record, if it is one.
pub(crate) fn nsec(record: &Record) -> Option<&NSEC> {
    match record.data() {
        RData::DNSSEC(DNSSECRData::NSEC(n)) => Some(n),
        _ => None,
    }
}

/// The NSEC records of `zone` in `authority`, as (owner, NSEC).
fn nsecs<'a>(zone: &Name, authority: &'a [Record]) -> Vec<(&'a Name, &'a NSEC)> {
    authority.iter().filter(|r| zone.zone_of(r.name())).filter_map(|r| nsec(r).map(|n| (r.name(), n))).collect()
}

/// DNAME's type code (RFC 6672); hickory 0.25 has no variant for it.
pub(crate) const DNAME: u16 = 39;

fn has_dname(n: &NSEC) -> bool {
    n.type_bit_maps().any(|t| u16::from(t) == DNAME)
}

fn has(n: &NSEC, t: RecordType) -> bool {
    n.type_bit_maps().any(|x| x == t)
}

/// The owner is a delegation point seen from the parent: NS without SOA
/// (RFC 6840 §4.1). Names below it are the child zone's business.
fn is_delegation(n: &NSEC) -> bool {
    has(n, RecordType::NS) && !has(n, RecordType::SOA)
}

/// Whether the NSEC at `owner` covers `name` (RFC 4034 §6.1 canonical
/// order; the last NSEC of a zone points back to the apex, RFC 4034
/// §4.1.1), and may speak for it: not when `owner` is a delegation or
/// DNAME above `name`.
fn covers(owner: &Name, n: &NSEC, name: &Name) -> bool {
    let next = n.next_domain_name();
    let between = if owner < next {
        owner < name && name < next
    } else {
        // The wrap-around NSEC: everything after the last name, within
        // the zone its next name (the apex) is.
        owner < name && next.zone_of(name)
    };
    if !between {
        return false;
    }
    let above = owner.zone_of(name) && owner != name;
    !(above && (is_delegation(n) || has_dname(n)))
}

/// The longest name both `a` and `b` are at or below.
pub(crate) fn common_ancestor(a: &Name, b: &Name) -> Name {
    let a = a.to_lowercase();
    let b = b.to_lowercase();
    let same = a.iter().rev().zip(b.iter().rev()).take_while(|(x, y)| x == y).count();
    a.trim_to(same)
}

/// RFC 8198 (aggressive use of the cache): whether the validated NSEC
/// record `nsec_record` proves `name` does not exist, i.e. its span
/// covers `name` and it is not a delegation or DNAME above it. The cache
/// layer may then synthesise NXDOMAIN, once it also has an NSEC covering
/// the wildcard at the closest encloser ([`closest_encloser`]).
pub fn nsec_covers(name: &Name, nsec_record: &Record) -> bool {
    nsec(nsec_record).is_some_and(|n| covers(nsec_record.name(), n, name))
}

/// The closest encloser a covering NSEC shows for `name` (RFC 4035 §5.4):
/// the deepest ancestor of `name` shared with the NSEC's owner or next
/// name.
pub fn closest_encloser(name: &Name, nsec_record: &Record) -> Option<Name> {
    let n = nsec(nsec_record)?;
    let a = common_ancestor(name, nsec_record.name());
    let b = common_ancestor(name, n.next_domain_name());
    Some(if a.num_labels() >= b.num_labels() { a } else { b })
}

fn missing(what: String) -> Ede {
    Ede::new(Ede::NSEC_MISSING, what)
}

fn bogus(what: String) -> Ede {
    Ede::new(Ede::DNSSEC_BOGUS, what)
}

/// The NSEC covering `name`, and the closest encloser it shows.
fn cover<'a>(name: &Name, set: &[(&'a Name, &'a NSEC)]) -> Option<(&'a Name, &'a NSEC, Name)> {
    set.iter().find(|(o, n)| covers(o, n, name)).map(|(o, n)| {
        let a = common_ancestor(name, o);
        let b = common_ancestor(name, n.next_domain_name());
        let ce = if a.num_labels() >= b.num_labels() { a } else { b };
        (*o, *n, ce)
    })
}

fn matching<'a>(name: &Name, set: &[(&'a Name, &'a NSEC)]) -> Option<&'a NSEC> {
    set.iter().find(|(o, _)| *o == name).map(|(_, n)| *n)
}

/// `*.ce`.
fn wildcard_at(ce: &Name) -> Result<Name, Ede> {
    ce.prepend_label("*").map_err(|e| bogus(format!("wildcard at {ce}: {e}")))
}

/// RFC 4035 §5.4: an NSEC covering `qname`, and one covering the
/// wildcard at the closest encloser.
pub(crate) fn prove_nxdomain(qname: &Name, zone: &Name, authority: &[Record]) -> Result<(), Ede> {
    let set = nsecs(zone, authority);
    if matching(qname, &set).is_some() {
        return Err(bogus(format!("NXDOMAIN for {qname}, but an NSEC shows it exists")));
    }
    let (_, _, ce) = cover(qname, &set).ok_or_else(|| missing(format!("no NSEC covers {qname} in {zone}")))?;
    if ce == *qname {
        // The covering NSEC's next name is below qname: qname is an empty
        // non-terminal, it exists. A genuine NSEC replayed under a forged
        // NXDOMAIN would otherwise deny the whole subtree (RFC 8020).
        return Err(bogus(format!("NXDOMAIN for {qname}, but names exist below it (an empty non-terminal)")));
    }
    if !zone.zone_of(&ce) {
        return Err(bogus(format!("NSEC for {qname} shows closest encloser {ce} outside {zone}")));
    }
    let wildcard = wildcard_at(&ce)?;
    if matching(&wildcard, &set).is_some() {
        return Err(bogus(format!("NXDOMAIN for {qname}, but wildcard {wildcard} exists")));
    }
    if cover(&wildcard, &set).is_none() {
        return Err(missing(format!("no NSEC covers wildcard {wildcard} for {qname}")));
    }
    Ok(())
}

/// Type bitmap says `qtype` (and CNAME) absent, from the right side of a
/// delegation (RFC 4035 §5.4, RFC 6840 §4.4).
fn bitmap_denies(owner: &Name, n: &NSEC, qtype: RecordType) -> Result<(), Ede> {
    if has(n, qtype) {
        return Err(bogus(format!("NODATA for {owner} {qtype}, but its NSEC lists {qtype}")));
    }
    if qtype != RecordType::CNAME && has(n, RecordType::CNAME) {
        return Err(bogus(format!("NODATA for {owner} {qtype}, but its NSEC lists CNAME")));
    }
    if qtype == RecordType::DS {
        // A DS denial must come from the parent: not the child's apex NSEC.
        if has(n, RecordType::SOA) && !owner.is_root() {
            return Err(bogus(format!("no-DS proof for {owner} is the child zone's NSEC")));
        }
    } else if is_delegation(n) {
        return Err(bogus(format!("NODATA for {owner} {qtype} from the parent side of a delegation")));
    }
    Ok(())
}

/// RFC 4035 §5.4 NODATA: the NSEC at `qname` without `qtype`; or `qname`
/// an empty non-terminal (an NSEC covering it whose next name is below
/// it); or, for a wildcard NODATA, `qname` covered and the NSEC at the
/// wildcard of the closest encloser without `qtype`.
pub(crate) fn prove_nodata(qname: &Name, qtype: RecordType, zone: &Name, authority: &[Record]) -> Result<(), Ede> {
    let set = nsecs(zone, authority);
    if let Some(n) = matching(qname, &set) {
        return bitmap_denies(qname, n, qtype);
    }
    let (_, n, ce) = cover(qname, &set).ok_or_else(|| missing(format!("no NSEC for {qname} {qtype} in {zone}")))?;
    let next = n.next_domain_name();
    if qname.zone_of(next) && next != qname {
        return Ok(()); // empty non-terminal
    }
    let wildcard = wildcard_at(&ce)?;
    match matching(&wildcard, &set) {
        Some(w) if zone.zone_of(&ce) => bitmap_denies(&wildcard, w, qtype),
        _ => Err(missing(format!("no NSEC at {qname} nor at wildcard {wildcard} for {qtype}"))),
    }
}

/// RFC 4035 §5.3.4: the answer for `qname` expanded from `wildcard`, so
/// `qname` must not exist and no name between it and the wildcard's
/// parent either: an NSEC covering `qname` whose closest encloser is the
/// wildcard's parent.
pub(crate) fn prove_wildcard(qname: &Name, wildcard: &Name, zone: &Name, authority: &[Record]) -> Result<(), Ede> {
    let base = wildcard.base_name();
    let set = nsecs(zone, authority);
    let (_, _, ce) =
        cover(qname, &set).ok_or_else(|| missing(format!("no NSEC covers {qname}, expanded from {wildcard}")))?;
    if ce != base {
        return Err(bogus(format!("{qname} expanded from {wildcard}, but its NSEC shows closest encloser {ce}")));
    }
    Ok(())
}

/// No DS at the delegation `child`: the parent's NSEC at `child` has NS
/// and neither DS nor SOA (RFC 4035 §5.2, RFC 6840 §4.4).
pub(crate) fn prove_no_ds(child: &Name, zone: &Name, authority: &[Record]) -> Result<(), Ede> {
    let set = nsecs(zone, authority);
    let n = matching(child, &set).ok_or_else(|| missing(format!("no NSEC at delegation {child}")))?;
    if has(n, RecordType::DS) {
        return Err(bogus(format!("NSEC at {child} lists DS: the delegation is signed")));
    }
    if !has(n, RecordType::NS) || has(n, RecordType::SOA) {
        return Err(bogus(format!("NSEC at {child} is not the parent side of a delegation")));
    }
    Ok(())
}

#[cfg(test)]
mod ent_tests {
    use std::str::FromStr;

    use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn nsec(owner: &str, next: &str) -> Record {
        let n = NSEC::new(name(next), vec![RecordType::A, RecordType::RRSIG, RecordType::NSEC]);
        Record::from_rdata(name(owner), 300, RData::DNSSEC(DNSSECRData::NSEC(n)))
    }

    #[test]
    fn an_empty_non_terminal_is_never_proven_nonexistent() {
        // c.example. has no records but b.c.example. exists.
        let zone = name("example.");
        let auth = vec![nsec("a.example.", "b.c.example."), nsec("example.", "a.example.")];
        let e = super::prove_nxdomain(&name("c.example."), &zone, &auth);
        assert!(e.is_err_and(|e| e.text.contains("empty non-terminal")));
        // A name that really is absent in the same span still is proven
        // (its wildcard *.example. is covered by the apex NSEC).
        assert!(super::prove_nxdomain(&name("aa.example."), &zone, &auth).is_ok());
    }
}
