//! Sets of GLOBCNT values kept as disjoint ranges, the shape of the IDSETs and CNSETs of
//! ICS state (MS-OXCFXICS 2.2.2.4).

use std::collections::BTreeMap;

use super::ids::Globcnt;

/// A set of 48-bit counters stored as disjoint, non-adjacent inclusive ranges. The store
/// has one replica, so the set contains counters only, and a MAPI front end pairs them with
/// the store's replica GUID when it writes an IDSET.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GlobSet {
    // Range start -> range end, both inclusive.
    ranges: BTreeMap<u64, u64>,
}

impl GlobSet {
    /// Creates an empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Returns whether `value` is in the set.
    pub fn contains(&self, value: Globcnt) -> bool {
        let value = value.get();
        self.ranges
            .range(..=value)
            .next_back()
            .is_some_and(|(_, end)| *end >= value)
    }

    /// Adds `value`.
    pub fn insert(&mut self, value: Globcnt) {
        self.insert_range(value, value);
    }

    /// Adds every value from `first` to `last`, both inclusive. Does nothing when
    /// `first > last`.
    pub fn insert_range(&mut self, first: Globcnt, last: Globcnt) {
        let (mut start, mut end) = (first.get(), last.get());
        if start > end {
            return;
        }

        // Absorb a range that overlaps or touches the new one from the left.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back()
            && e.saturating_add(1) >= start
        {
            start = s;
            end = end.max(e);
        }

        // Absorb every range that starts inside or right after the new one.
        let following: Vec<(u64, u64)> = self
            .ranges
            .range(start..=end.saturating_add(1))
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in following {
            self.ranges.remove(&s);
            end = end.max(e);
        }

        self.ranges.insert(start, end);
    }

    /// Removes `value`.
    pub fn remove(&mut self, value: Globcnt) {
        let value = value.get();
        let Some((&start, &end)) = self.ranges.range(..=value).next_back() else {
            return;
        };
        if end < value {
            return;
        }

        self.ranges.remove(&start);
        if start < value {
            self.ranges.insert(start, value - 1);
        }
        if value < end {
            self.ranges.insert(value + 1, end);
        }
    }

    /// Adds every value of `other`.
    pub fn union_with(&mut self, other: &GlobSet) {
        for (first, last) in other.ranges() {
            self.insert_range(first, last);
        }
    }

    /// Returns the greatest value, if any.
    pub fn max(&self) -> Option<Globcnt> {
        self.ranges
            .values()
            .next_back()
            .and_then(|end| Globcnt::new(*end))
    }

    /// Returns the ranges in ascending order as inclusive `(first, last)` pairs.
    pub fn ranges(&self) -> impl Iterator<Item = (Globcnt, Globcnt)> + '_ {
        self.ranges
            .iter()
            .filter_map(|(start, end)| Some((Globcnt::new(*start)?, Globcnt::new(*end)?)))
    }

    /// Returns the number of ranges.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// Returns every value in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = Globcnt> + '_ {
        self.ranges
            .iter()
            .flat_map(|(start, end)| (*start..=*end).filter_map(Globcnt::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(value: u64) -> Globcnt {
        Globcnt::new(value).unwrap()
    }

    #[test]
    fn insert_merges_adjacent_ranges() {
        let mut set = GlobSet::new();
        set.insert(g(1));
        set.insert(g(3));
        assert_eq!(set.range_count(), 2);
        set.insert(g(2));
        assert_eq!(set.range_count(), 1);
        set.insert_range(g(10), g(20));
        set.insert_range(g(4), g(9));
        assert_eq!(set.ranges().collect::<Vec<_>>(), vec![(g(1), g(20))]);
    }

    #[test]
    fn remove_splits_range() {
        let mut set = GlobSet::new();
        set.insert_range(g(1), g(5));
        set.remove(g(3));
        assert!(!set.contains(g(3)));
        assert!(set.contains(g(2)));
        assert!(set.contains(g(4)));
        assert_eq!(
            set.iter().map(Globcnt::get).collect::<Vec<_>>(),
            [1, 2, 4, 5]
        );
        set.remove(g(9));
        assert_eq!(set.range_count(), 2);
        assert_eq!(set.max(), Some(g(5)));
    }
}
