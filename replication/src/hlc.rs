//! Hybrid logical clocks (Kulkarni et al., "Logical Physical Clocks",
//! 2014): wall-clock milliseconds with a logical counter, so stamps follow
//! real time where clocks agree and causality where they do not.

/// A hybrid logical timestamp. Ordered by wall time, then the counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch (the largest seen).
    pub wall_ms: u64,
    /// Events within the same millisecond.
    pub logical: u32,
}

/// A remote stamp too far ahead of this node's clock.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a peer's clock is {ahead_ms} ms ahead of ours (limit {limit_ms} ms): check NTP on both")]
pub struct ClockDrift {
    /// How far ahead.
    pub ahead_ms: u64,
    /// The limit.
    pub limit_ms: u64,
}

/// One node's clock. The driver passes the wall time in, so the simulator
/// can run it on virtual time.
#[derive(Clone, Debug)]
pub struct Clock {
    last: Hlc,
    max_drift_ms: u64,
}

impl Clock {
    /// A clock that refuses remote stamps more than `max_drift_ms` ahead.
    pub fn new(max_drift_ms: u64) -> Clock {
        Clock { last: Hlc::default(), max_drift_ms }
    }

    /// The last stamp issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    fn bump(h: Hlc) -> Hlc {
        match h.logical.checked_add(1) {
            Some(logical) => Hlc { wall_ms: h.wall_ms, logical },
            // 4 billion events in a millisecond: borrow from the next one.
            None => Hlc { wall_ms: h.wall_ms.saturating_add(1), logical: 0 },
        }
    }

    /// A stamp for a local event, above every stamp issued or observed.
    pub fn tick(&mut self, wall_ms: u64) -> Hlc {
        self.last = if wall_ms > self.last.wall_ms { Hlc { wall_ms, logical: 0 } } else { Clock::bump(self.last) };
        self.last
    }

    /// Takes in a stamp from another node so later local stamps sort after
    /// it. A stamp too far in the future is refused and changes nothing.
    pub fn observe(&mut self, remote: Hlc, wall_ms: u64) -> Result<(), ClockDrift> {
        let limit = wall_ms.saturating_add(self.max_drift_ms);
        if remote.wall_ms > limit {
            return Err(ClockDrift { ahead_ms: remote.wall_ms - wall_ms, limit_ms: self.max_drift_ms });
        }
        if remote > self.last {
            self.last = remote;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_only_grow_even_when_the_wall_clock_steps_back() {
        let mut c = Clock::new(1_000);
        let a = c.tick(100);
        let b = c.tick(50);
        let d = c.tick(100);
        assert!(a < b && b < d);
        assert_eq!(c.tick(200), Hlc { wall_ms: 200, logical: 0 });
    }

    #[test]
    fn observed_stamps_order_later_local_ones() {
        let mut c = Clock::new(1_000);
        c.observe(Hlc { wall_ms: 500, logical: 7 }, 100).unwrap();
        assert!(c.tick(100) > Hlc { wall_ms: 500, logical: 7 });
        let err = c.observe(Hlc { wall_ms: 5_000, logical: 0 }, 100).unwrap_err();
        assert_eq!(err.ahead_ms, 4_900);
        assert!(c.last().wall_ms < 5_000, "a refused stamp changes nothing");
    }

    #[test]
    fn the_counter_overflows_into_the_next_millisecond() {
        let mut c = Clock::new(0);
        c.observe(Hlc { wall_ms: 10, logical: u32::MAX }, 10).unwrap();
        assert_eq!(c.tick(10), Hlc { wall_ms: 11, logical: 0 });
    }
}
