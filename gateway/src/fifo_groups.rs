//! The message groups of FIFO messages this gateway has read, so that a receive's look-ahead
//! can pass over the messages of groups that have one in flight without reading them again.
//! A look on an ordered topic takes up to 512 offsets per queue as candidates and used to read
//! every one of them to learn its group, although most belong to groups with a message in
//! flight (docs/benchmarks.md, "FIFO, 1,000 message groups").
//!
//! Only a hint for what to read: a receive leases only messages it has read, with the group
//! read from the message, and apply decides every lease. What the hint may do is leave a
//! message unread, which is safe in two cases only (`service::consume`): its group has another
//! message in flight (the look passes over all of that group's messages anyway), or an
//! earlier candidate of its group is read in the same look (at worst the message waits for
//! the next look).
//!
//! An entry is trusted only while its offset is held by the same segment and ordinal
//! ([`Identity`]): a deleted and re-created topic reuses offsets, never segment names, and an
//! offset folded into an index object or written out of an inline batch is read again.
//!
//! Bounded: two generations of at most [`GENERATION_ENTRIES`] entries each; when the newer
//! fills up, the older is dropped (a hit in the older moves the entry to the newer). At an
//! estimated ~100 bytes an entry (key, identity, `Arc<str>` group, table overhead; not
//! measured): at most ~50 MB.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHashMap;

/// Entries per generation.
pub const GENERATION_ENTRIES: usize = 262_144;

/// Which stored message an offset is: a hash of its segment's name and its ordinal there.
pub type Identity = u64;

/// The identity of the message at `ordinal` of `segment`.
pub fn identity(segment: &str, ordinal: u32) -> Identity {
    // SipHash with fixed keys: the same within this process, which is all it must be.
    let mut h = std::hash::DefaultHasher::new();
    segment.hash(&mut h);
    ordinal.hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone)]
struct Entry {
    identity: Identity,
    group: Arc<str>,
}

/// topic → (queue, offset) → entry (Fx hashing: these keys are short and not chosen by
/// clients in a way that matters, and a look makes thousands of lookups).
type Generation = FxHashMap<String, FxHashMap<(u32, u64), Entry>>;

#[derive(Debug, Default)]
struct Generations {
    current: Generation,
    current_len: usize,
    previous: Generation,
}

/// The message groups of FIFO messages read on this gateway (see the module docs).
#[derive(Debug, Default)]
pub struct FifoGroups {
    inner: Mutex<Generations>,
}

/// The map, locked: a look makes all its lookups (or all its inserts) under one lock.
pub struct Locked<'a>(MutexGuard<'a, Generations>);

impl FifoGroups {
    pub fn lock(&self) -> Locked<'_> {
        Locked(self.inner.lock().expect("fifo groups lock poisoned"))
    }

    /// Entries held now (both generations): what the bound's test counts.
    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.lock();
        g.0.current_len + g.0.previous.values().map(|t| t.len()).sum::<usize>()
    }
}

impl Locked<'_> {
    /// The group of the message at `offset`, if it was read here and `identity` is still the
    /// message's.
    pub fn known(
        &mut self,
        topic: &str,
        queue: u32,
        offset: u64,
        identity: Identity,
    ) -> Option<Arc<str>> {
        let g = &mut *self.0;
        let key = (queue, offset);
        if let Some(e) = g.current.get(topic).and_then(|t| t.get(&key)) {
            return (e.identity == identity).then(|| e.group.clone());
        }
        let e = g.previous.get_mut(topic)?.remove(&key)?;
        if e.identity != identity {
            return None;
        }
        let group = e.group.clone();
        g.insert(topic, key, e);
        Some(group)
    }

    /// Remembers the group of the message read at `offset`.
    pub fn remember(
        &mut self,
        topic: &str,
        queue: u32,
        offset: u64,
        identity: Identity,
        group: &str,
    ) {
        let entry = Entry {
            identity,
            group: group.into(),
        };
        self.0.insert(topic, (queue, offset), entry);
    }
}

impl Generations {
    fn insert(&mut self, topic: &str, key: (u32, u64), entry: Entry) {
        if self.current_len >= GENERATION_ENTRIES {
            self.previous = std::mem::take(&mut self.current);
            self.current_len = 0;
        }
        let per_topic = match self.current.get_mut(topic) {
            Some(t) => t,
            None => self.current.entry(topic.to_string()).or_default(),
        };
        if per_topic.insert(key, entry).is_none() {
            self.current_len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_known_only_for_the_same_stored_message() {
        let groups = FifoGroups::default();
        let id = identity("seg-a", 7);
        assert_eq!(groups.lock().known("orders", 0, 10, id), None);
        groups.lock().remember("orders", 0, 10, id, "g1");
        assert_eq!(
            groups.lock().known("orders", 0, 10, id).as_deref(),
            Some("g1")
        );
        // Another queue, topic or offset: unknown.
        assert_eq!(groups.lock().known("orders", 1, 10, id), None);
        assert_eq!(groups.lock().known("other", 0, 10, id), None);
        assert_eq!(groups.lock().known("orders", 0, 11, id), None);
        // The topic was re-created: offset 10 is now another segment's message.
        assert_eq!(
            groups.lock().known("orders", 0, 10, identity("seg-b", 7)),
            None
        );
        assert_eq!(
            groups.lock().known("orders", 0, 10, identity("seg-a", 8)),
            None
        );
        assert_ne!(identity("seg-a", 7), identity("seg-a", 8));
    }

    #[test]
    fn two_generations_bound_the_entries_and_keep_what_is_used() {
        let groups = FifoGroups::default();
        let id = |o: u64| identity("seg", o as u32);
        let n = GENERATION_ENTRIES as u64;
        for o in 0..n {
            groups.lock().remember("t", 0, o, id(o), "g");
        }
        assert_eq!(groups.len(), GENERATION_ENTRIES);
        // The next insert starts a generation; the first one is still readable...
        groups.lock().remember("t", 0, n, id(n), "g");
        assert_eq!(groups.len(), GENERATION_ENTRIES + 1);
        // ...and a hit moves it to the newer generation.
        assert!(groups.lock().known("t", 0, 0, id(0)).is_some());
        for o in n + 1..2 * n + 10 {
            groups.lock().remember("t", 0, o, id(o), "g");
        }
        assert!(groups.len() <= 2 * GENERATION_ENTRIES);
        // Offset 0 was moved into the generation that is now the older one; offset 1 was
        // never used again and is gone with the generation dropped.
        assert!(groups.lock().known("t", 0, 0, id(0)).is_some());
        assert!(groups.lock().known("t", 0, 1, id(1)).is_none());
        for o in 2 * n + 10..4 * n {
            groups.lock().remember("t", 0, o, id(o), "g");
        }
        assert!(groups.len() <= 2 * GENERATION_ENTRIES);
    }
}
