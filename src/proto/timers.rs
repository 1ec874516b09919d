//! A timer table for many engines (a worker's connections, an endpoint's
//! transfers): a min-heap of (deadline, slot token) with at most one
//! live entry per slot. A slot whose deadline moves later keeps its entry; when
//! that entry fires early, the slot re-arms at its real deadline. So the heap
//! holds about one entry per slot however often deadlines move, and re-arming
//! costs nothing on the hot path (a keep-alive's idle deadline moves per request).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// The heap of one worker.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

/// A slot's half of the bookkeeping: the deadline of its live heap entry.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Armed(Option<Instant>);

impl Timers {
    /// Makes sure slot `token` wakes by `at` (its engine's `poll_timeout`).
    pub(crate) fn arm(&mut self, armed: &mut Armed, token: usize, at: Option<Instant>) {
        let Some(at) = at else { return };
        if armed.0.is_none_or(|live| at < live) {
            armed.0 = Some(at);
            self.heap.push(Reverse((at, token)));
        }
    }

    /// The earliest entry, for the poll timeout.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops the next entry due at `now`. The caller passes `at` to
    /// [`Armed::fired`] on the slot (if it still exists: tokens are reused, and
    /// an entry may belong to a slot's previous occupant), then asks the engine
    /// whether its deadline really passed.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(usize, Instant)> {
        let &Reverse((at, token)) = self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        Some((token, at))
    }
}

impl Armed {
    /// The entry at `at` left the heap: if it was this slot's live one, the slot
    /// has none now.
    pub(crate) fn fired(&mut self, at: Instant) {
        if self.0 == Some(at) {
            self.0 = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_later_deadline_reuses_the_live_entry_and_an_earlier_one_adds_one() {
        let t0 = crate::testutil::t0();
        let s = Duration::from_secs(1);
        let (mut timers, mut armed) = (Timers::default(), Armed::default());
        timers.arm(&mut armed, 7, Some(t0 + 2 * s));
        timers.arm(&mut armed, 7, Some(t0 + 5 * s)); // later: no new entry
        assert_eq!(timers.heap.len(), 1);
        timers.arm(&mut armed, 7, Some(t0 + s)); // earlier: a new entry
        assert_eq!(timers.next(), Some(t0 + s));
        assert_eq!(timers.pop_due(t0), None);
        let (token, at) = timers.pop_due(t0 + s).unwrap();
        assert_eq!((token, at), (7, t0 + s));
        armed.fired(at);
        assert_eq!(armed, Armed::default());
        // The stale entry at 2 s fires later; it is not the slot's live one any more.
        timers.arm(&mut armed, 7, Some(t0 + 5 * s));
        let (_, stale) = timers.pop_due(t0 + 2 * s).unwrap();
        armed.fired(stale);
        assert_eq!(armed, Armed(Some(t0 + 5 * s)));
    }
}
