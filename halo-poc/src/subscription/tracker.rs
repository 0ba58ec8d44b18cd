//! Event-number bookkeeping per subscription, without I/O: which numbers are new, which are
//! duplicates, and which are missing (REQ LI-06).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// The most missing numbers remembered per subscription: a late arrival of one of them is still
/// applied; older gaps are only reported.
const MAX_MISSING: usize = 10_000;

#[derive(Debug)]
struct Sequence {
    /// Every number up to this one was applied, recovered, or reported missing.
    last: u64,
    /// Numbers at or below `last` that were reported missing and may still arrive.
    missing: BTreeSet<u64>,
    /// When the SoFA was last heard from on this subscription.
    heard: Instant,
}

/// What to do with one event number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Apply it; numbers `from..=to` before it are missing and must be recovered first.
    ApplyAfterGap {
        /// First missing number.
        from: u64,
        /// Last missing number.
        to: u64,
    },
    /// Apply it.
    Apply,
    /// Already applied: drop it.
    Duplicate,
}

#[derive(Debug, Default)]
pub(crate) struct Tracker {
    sequences: HashMap<String, Sequence>,
}

impl Tracker {
    /// Starts (or restarts) a subscription's sequence after event `last`.
    pub(crate) fn track(&mut self, subscription: &str, last: u64) {
        self.sequences.insert(
            subscription.to_owned(),
            Sequence {
                last,
                missing: BTreeSet::new(),
                heard: Instant::now(),
            },
        );
    }

    /// Whether the subscription is tracked.
    pub(crate) fn knows(&self, subscription: &str) -> bool {
        self.sequences.contains_key(subscription)
    }

    /// The last number accounted for.
    pub(crate) fn last(&self, subscription: &str) -> Option<u64> {
        self.sequences.get(subscription).map(|s| s.last)
    }

    /// Records that the SoFA was heard from.
    pub(crate) fn heard(&mut self, subscription: &str) {
        if let Some(s) = self.sequences.get_mut(subscription) {
            s.heard = Instant::now();
        }
    }

    /// When the SoFA was last heard from.
    pub(crate) fn last_heard(&self, subscription: &str) -> Option<Instant> {
        self.sequences.get(subscription).map(|s| s.heard)
    }

    /// Classifies event `number`. An untracked subscription starts just before it.
    pub(crate) fn classify(&mut self, subscription: &str, number: u64) -> Verdict {
        let sequence = self
            .sequences
            .entry(subscription.to_owned())
            .or_insert_with(|| Sequence {
                last: number.saturating_sub(1),
                missing: BTreeSet::new(),
                heard: Instant::now(),
            });
        if number <= sequence.last {
            if sequence.missing.contains(&number) {
                Verdict::Apply
            } else {
                Verdict::Duplicate
            }
        } else if number == sequence.last + 1 {
            Verdict::Apply
        } else {
            Verdict::ApplyAfterGap {
                from: sequence.last + 1,
                to: number - 1,
            }
        }
    }

    /// Records event `number` as applied.
    pub(crate) fn applied(&mut self, subscription: &str, number: u64) {
        if let Some(s) = self.sequences.get_mut(subscription) {
            s.missing.remove(&number);
            s.last = s.last.max(number);
        }
    }

    /// Records that `from..=to` could not be recovered, except the numbers in `recovered`: the
    /// sequence moves past them, and the most recent [`MAX_MISSING`] are remembered in case they
    /// arrive late. Bounded however wide the range is.
    pub(crate) fn missed(
        &mut self,
        subscription: &str,
        from: u64,
        to: u64,
        recovered: &BTreeSet<u64>,
    ) {
        if let Some(s) = self.sequences.get_mut(subscription) {
            let start = from.max(to.saturating_sub(MAX_MISSING as u64 - 1));
            for n in start..=to {
                if !recovered.contains(&n) {
                    s.missing.insert(n);
                }
            }
            s.last = s.last.max(to);
            while s.missing.len() > MAX_MISSING {
                s.missing.pop_first();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REQ: LI-06
    #[test]
    fn duplicates_gaps_and_late_arrivals() {
        let mut t = Tracker::default();
        t.track("s", 0);
        assert_eq!(t.classify("s", 1), Verdict::Apply);
        t.applied("s", 1);
        assert_eq!(t.classify("s", 1), Verdict::Duplicate);
        assert_eq!(
            t.classify("s", 4),
            Verdict::ApplyAfterGap { from: 2, to: 3 }
        );
        // 2 recovered, 3 lost.
        t.applied("s", 2);
        t.missed("s", 2, 3, &BTreeSet::from([2]));
        t.applied("s", 4);
        assert_eq!(t.last("s"), Some(4));
        // 3 arrives late: applied once, then a duplicate.
        assert_eq!(t.classify("s", 3), Verdict::Apply);
        t.applied("s", 3);
        assert_eq!(t.classify("s", 3), Verdict::Duplicate);
        // An untracked subscription starts at its first event.
        assert_eq!(t.classify("new", 9), Verdict::Apply);
        assert!(t.knows("new"));
        assert_eq!(
            t.classify("new", u64::MAX),
            Verdict::ApplyAfterGap {
                from: 9,
                to: u64::MAX - 1
            }
        );
        // A hostile gap is bounded.
        t.missed("new", 9, u64::MAX - 1, &BTreeSet::new());
        assert_eq!(t.last("new"), Some(u64::MAX - 1));
    }
}
