//! Open windows and busy intervals.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

/// A half-open instant interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    /// Start (inclusive).
    pub start: Timestamp,
    /// End (exclusive).
    pub end: Timestamp,
}

impl Interval {
    /// Whether two intervals share any instant.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether this interval lies within another.
    pub fn within(&self, other: &Interval) -> bool {
        other.start <= self.start && self.end <= other.end
    }
}

/// A weekly opening window in local civil time: e.g. Monday 08:00-16:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyWindow {
    /// The day of the week.
    pub weekday: Weekday,
    /// Opens (local).
    pub start: Time,
    /// Closes (local); after `start`.
    pub end: Time,
}

impl WeeklyWindow {
    /// The window on a date, as instants in the zone; `None` if it is not that
    /// weekday. Local times that fall in a DST gap move forward (jiff's
    /// "compatible" rule), so a window never starts at a time that does not exist.
    pub fn on(&self, date: Date, tz: &TimeZone) -> Option<Interval> {
        if date.weekday() != self.weekday {
            return None;
        }
        let start = date
            .to_datetime(self.start)
            .to_zoned_datetime(tz.clone())
            .ok()?
            .timestamp();
        let end = date
            .to_datetime(self.end)
            .to_zoned_datetime(tz.clone())
            .ok()?
            .timestamp();
        (start < end).then_some(Interval { start, end })
    }
}

/// Busy intervals per resource, indexed for fast overlap checks.
#[derive(Debug, Clone, Default)]
pub struct BusyIndex<K: std::hash::Hash + Eq> {
    by_resource: HashMap<K, BTreeMap<Timestamp, Timestamp>>,
}

impl<K: std::hash::Hash + Eq + Clone> BusyIndex<K> {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            by_resource: HashMap::new(),
        }
    }

    /// Marks a resource busy for an interval. Overlapping intervals for one resource
    /// are kept (they may come from exceptions and bookings alike).
    pub fn add(&mut self, resource: K, interval: Interval) {
        let map = self.by_resource.entry(resource).or_default();
        // Keep the longest end for a given start.
        let end = map
            .get(&interval.start)
            .map_or(interval.end, |e| (*e).max(interval.end));
        map.insert(interval.start, end);
    }

    /// Whether the resource is free for the whole interval.
    pub fn is_free(&self, resource: &K, interval: &Interval) -> bool {
        let Some(map) = self.by_resource.get(resource) else {
            return true;
        };
        // Anything starting before our end and ending after our start overlaps. Busy
        // intervals are short (an appointment, a closure), so scanning back from our
        // end over those that start within a day of our start is enough; longer
        // closures are split per day by whoever adds them.
        let horizon = interval.start - jiff::SignedDuration::from_hours(24);
        map.range(horizon..interval.end).all(|(start, end)| {
            !Interval {
                start: *start,
                end: *end,
            }
            .overlaps(interval)
        })
    }

    /// The busy intervals of a resource that share any instant with `range`, in start
    /// order, as stored (bookings and closure pieces alike; they may overlap one
    /// another). Read-only: for showing free and busy time, not for deciding.
    pub fn intervals(&self, resource: &K, range: &Interval) -> Vec<Interval> {
        let Some(map) = self.by_resource.get(resource) else {
            return Vec::new();
        };
        map.range(..range.end)
            .map(|(start, end)| Interval {
                start: *start,
                end: *end,
            })
            .filter(|i| i.overlaps(range))
            .collect()
    }

    /// Adds a long closure split into day-long pieces (see [`BusyIndex::is_free`]).
    pub fn add_closure(&mut self, resource: K, interval: Interval) {
        let day = jiff::SignedDuration::from_hours(24);
        let mut start = interval.start;
        while start < interval.end {
            let end = (start + day).min(interval.end);
            self.add(resource.clone(), Interval { start, end });
            start = end;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn intervals_lists_what_overlaps_a_range() {
        let mut busy: BusyIndex<i64> = BusyIndex::new();
        let early = Interval {
            start: at("2026-12-07T13:00:00Z"),
            end: at("2026-12-07T13:30:00Z"),
        };
        let late = Interval {
            start: at("2026-12-07T18:00:00Z"),
            end: at("2026-12-07T18:20:00Z"),
        };
        busy.add(1, late);
        busy.add(1, early);
        busy.add(2, early);
        busy.add_closure(
            3,
            Interval {
                start: at("2026-12-01T00:00:00Z"),
                end: at("2026-12-10T00:00:00Z"),
            },
        );
        let day = Interval {
            start: at("2026-12-07T00:00:00Z"),
            end: at("2026-12-08T00:00:00Z"),
        };
        assert_eq!(busy.intervals(&1, &day), vec![early, late]);
        let morning = Interval {
            start: at("2026-12-07T13:30:00Z"),
            end: at("2026-12-07T18:00:00Z"),
        };
        assert!(busy.intervals(&1, &morning).is_empty(), "half-open");
        assert!(busy.intervals(&9, &day).is_empty());
        // A closure's day-long pieces that touch the range.
        assert_eq!(busy.intervals(&3, &day), vec![day]);
    }
}
