//! QNAME minimisation (RFC 9156): ask each server only for one label more
//! than the zone it serves.
//!
//! Choices, as Unbound makes them:
//! - the QTYPE of a minimised query is A (RFC 9156 §3 recommends A over
//!   NS: some servers answer NS queries badly, and an A query for a name
//!   that exists looks like ordinary traffic);
//! - NXDOMAIN for a minimised name ends the resolution: nothing below it
//!   exists (RFC 8020, RFC 9156 §2.3);
//! - "relaxed" fallback: a server that answers a minimised query with
//!   REFUSED, SERVFAIL, NOTIMP or FORMERR is asked the full name instead,
//!   and the rest of that resolution step is not minimised;
//! - at most [`MAX_MINIMISE_COUNT`] minimised queries per name: the first
//!   [`MINIMISE_ONE_LAB`] add one label each, later ones several
//!   (RFC 9156 §2.3).

use hickory_proto::rr::Name;

/// RFC 9156 §2.3: most minimised queries for one name.
pub(crate) const MAX_MINIMISE_COUNT: u32 = 10;
/// RFC 9156 §2.3: queries that add a single label before adding several.
pub(crate) const MINIMISE_ONE_LAB: u32 = 4;

/// Minimisation state of one name being resolved.
#[derive(Clone, Debug)]
pub(crate) struct Minimiser {
    /// Off: ask the full name.
    pub(crate) on: bool,
    /// Labels of the longest ancestor of the target known to exist or be
    /// a cut (the next query adds labels to it).
    pub(crate) base: usize,
    /// Minimised queries done so far.
    pub(crate) count: u32,
}

impl Minimiser {
    /// A fresh state for a zone of `zone_labels` labels.
    pub(crate) fn new(on: bool, zone_labels: usize) -> Self {
        Minimiser { on, base: zone_labels, count: 0 }
    }

    /// The name to ask for next on the way to `target`; equals `target`
    /// when not minimising (any more).
    pub(crate) fn next_name(&self, target: &Name) -> Name {
        let total = usize::from(target.num_labels());
        if !self.on || self.base >= total {
            return target.clone();
        }
        let left = total - self.base;
        let add = if self.count < MINIMISE_ONE_LAB {
            1
        } else if self.count + 1 < MAX_MINIMISE_COUNT {
            // Spread what is left over the queries left.
            let queries_left = (MAX_MINIMISE_COUNT - self.count) as usize;
            left.div_ceil(queries_left)
        } else {
            left
        };
        target.trim_to(self.base + add.min(left))
    }

    /// The name `asked` exists (or is a cut): go one step further.
    pub(crate) fn advance(&mut self, asked: &Name) {
        self.base = self.base.max(usize::from(asked.num_labels()));
        self.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn adds_one_label_at_a_time() {
        let t = name("a.b.example.com.");
        let mut m = Minimiser::new(true, 0);
        let mut asked = Vec::new();
        loop {
            let n = m.next_name(&t);
            asked.push(n.to_ascii());
            if n == t {
                break;
            }
            m.advance(&n);
        }
        assert_eq!(asked, ["com.", "example.com.", "b.example.com.", "a.b.example.com."]);
    }

    #[test]
    fn long_names_take_at_most_max_minimise_count_queries() {
        let t = name("1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.example.");
        let mut m = Minimiser::new(true, 0);
        let mut n_queries = 0;
        loop {
            let n = m.next_name(&t);
            n_queries += 1;
            if n == t {
                break;
            }
            m.advance(&n);
            assert!(n_queries < 40);
        }
        assert!(n_queries <= MAX_MINIMISE_COUNT as usize, "{n_queries}");
    }

    #[test]
    fn off_asks_the_full_name() {
        let t = name("a.b.example.com.");
        assert_eq!(Minimiser::new(false, 0).next_name(&t), t);
        assert_eq!(Minimiser::new(true, 4).next_name(&t), t);
    }
}
