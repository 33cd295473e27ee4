//! A set of offsets kept as disjoint half-open intervals: a cursor's consumed offsets above its
//! committed offset. A group with one stuck message and a million acked after it holds one
//! interval, not a million offsets.
//!
//! Encoded as a list of `[start, end]` pairs. A list of plain offsets (the encoding before
//! intervals) still decodes, so old checkpoints open.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Disjoint, non-adjacent intervals `start..end`, keyed by start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetSet {
    runs: BTreeMap<u64, u64>,
}

impl OffsetSet {
    /// An empty set.
    pub fn new() -> Self {
        OffsetSet::default()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// How many intervals it holds (what it costs).
    pub fn intervals(&self) -> usize {
        self.runs.len()
    }

    /// How many offsets it holds.
    pub fn len(&self) -> u64 {
        self.runs.iter().map(|(s, e)| e - s).sum()
    }

    /// The interval holding `offset`.
    fn holding(&self, offset: u64) -> Option<(u64, u64)> {
        self.runs
            .range(..=offset)
            .next_back()
            .filter(|(_, e)| offset < **e)
            .map(|(s, e)| (*s, *e))
    }

    /// Whether `offset` is in the set.
    pub fn contains(&self, offset: u64) -> bool {
        self.holding(offset).is_some()
    }

    /// Adds `offset`, merging with its neighbours.
    pub fn insert(&mut self, offset: u64) {
        if self.contains(offset) {
            return;
        }
        let mut start = offset;
        let mut end = offset + 1;
        if let Some((s, e)) = self.runs.range(..offset).next_back().map(|(s, e)| (*s, *e)) {
            if e == offset {
                self.runs.remove(&s);
                start = s;
            }
        }
        if let Some(e) = self.runs.remove(&end) {
            end = e;
        }
        self.runs.insert(start, end);
    }

    /// Removes `offset`, splitting its interval.
    pub fn remove(&mut self, offset: u64) -> bool {
        let Some((s, e)) = self.holding(offset) else {
            return false;
        };
        self.runs.remove(&s);
        if s < offset {
            self.runs.insert(s, offset);
        }
        if offset + 1 < e {
            self.runs.insert(offset + 1, e);
        }
        true
    }

    /// If an interval starts at `offset`, removes it and answers its end.
    pub fn take_from(&mut self, offset: u64) -> Option<u64> {
        self.runs.remove(&offset)
    }

    /// Removes everything below `offset`.
    pub fn drop_below(&mut self, offset: u64) {
        let keep = self.runs.split_off(&offset);
        let below = std::mem::replace(&mut self.runs, keep);
        if let Some((_, e)) = below.last_key_value() {
            if *e > offset {
                self.runs.insert(offset, *e);
            }
        }
    }

    /// The first offset at or after `from` not in the set.
    pub fn next_absent(&self, from: u64) -> u64 {
        self.holding(from).map_or(from, |(_, e)| e)
    }

    /// The intervals in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().map(|(s, e)| (*s, *e))
    }
}

impl Serialize for OffsetSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.runs.iter().map(|(a, b)| [*a, *b]))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Item {
    Interval([u64; 2]),
    Offset(u64),
}

impl<'de> Deserialize<'de> for OffsetSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<Item>::deserialize(d)?;
        let mut set = OffsetSet::new();
        for item in items {
            match item {
                Item::Offset(o) => set.insert(o),
                Item::Interval([a, b]) => {
                    if b <= a {
                        return Err(serde::de::Error::custom(format!(
                            "empty interval [{a}, {b}]"
                        )));
                    }
                    // Merge through insert of the ends: intervals are few.
                    let mut start = a;
                    let mut end = b;
                    let overlapping: Vec<(u64, u64)> = set
                        .runs
                        .range(..=b)
                        .filter(|(_, e)| **e >= a)
                        .map(|(s, e)| (*s, *e))
                        .collect();
                    for (s, e) in overlapping {
                        set.runs.remove(&s);
                        start = start.min(s);
                        end = end.max(e);
                    }
                    set.runs.insert(start, end);
                }
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_million_acked_after_a_stuck_one_is_one_interval() {
        let mut s = OffsetSet::new();
        for o in 1..1_000_001 {
            s.insert(o);
        }
        assert_eq!(s.intervals(), 1);
        assert_eq!(s.len(), 1_000_000);
        assert!(!s.contains(0));
        assert_eq!(s.take_from(1), Some(1_000_001));
        assert!(s.is_empty());
    }

    #[test]
    fn plain_offsets_of_old_checkpoints_decode() {
        let s: OffsetSet = serde_json::from_str("[3,4,5,9]").expect("old form");
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(3, 6), (9, 10)]);
        assert_eq!(
            serde_json::to_string(&s).expect("encodes"),
            "[[3,6],[9,10]]"
        );
        let back: OffsetSet = serde_json::from_str("[[3,6],[9,10]]").expect("new form");
        assert_eq!(back, s);
        assert!(serde_json::from_str::<OffsetSet>("[[5,5]]").is_err());
    }

    proptest! {
        #[test]
        fn behaves_as_a_set_of_offsets(ops in proptest::collection::vec((any::<bool>(), 0u64..64), 0..200), probe in 0u64..70) {
            let mut s = OffsetSet::new();
            let mut model = BTreeSet::new();
            for (add, o) in ops {
                if add { s.insert(o); model.insert(o); } else { prop_assert_eq!(s.remove(o), model.remove(&o)); }
            }
            for o in 0..70 { prop_assert_eq!(s.contains(o), model.contains(&o)); }
            prop_assert_eq!(s.len(), model.len() as u64);
            let mut next = probe;
            while model.contains(&next) { next += 1; }
            prop_assert_eq!(s.next_absent(probe), next);
            // Disjoint and not adjacent.
            let v: Vec<_> = s.iter().collect();
            for w in v.windows(2) { prop_assert!(w[0].1 < w[1].0); }
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(serde_json::from_str::<OffsetSet>(&json).unwrap(), s.clone());
            let mut d = s.clone();
            d.drop_below(probe);
            for o in 0..70 { prop_assert_eq!(d.contains(o), o >= probe && model.contains(&o)); }
        }
    }
}
