//! A byte-bounded, least-recently-used map shared by the caches of immutable objects the
//! state summarises (index sections, catalogue runs): entries never go stale, so the only
//! policy is which to forget first.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Mutex;

/// At most `max_bytes` of values (by the sizes given on insert), least recently used first
/// out; counts the loads its owner reports.
#[derive(Debug)]
pub struct ByteLru<K, V> {
    max_bytes: usize,
    inner: Mutex<Inner<K, V>>,
}

#[derive(Debug)]
struct Inner<K, V> {
    /// Value, its size, the tick of its last use.
    map: HashMap<K, (V, usize, u64)>,
    by_use: BTreeMap<u64, K>,
    total: usize,
    tick: u64,
    loads: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> ByteLru<K, V> {
    /// An empty map holding at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        ByteLru {
            max_bytes,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                by_use: BTreeMap::new(),
                total: 0,
                tick: 0,
                loads: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().expect("cache lock poisoned")
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lock().total
    }

    /// Loads reported with [`ByteLru::loaded`].
    pub fn loads(&self) -> u64 {
        self.lock().loads
    }

    /// Counts one load from the store.
    pub fn loaded(&self) {
        self.lock().loads += 1;
    }

    /// The value of `key`, now the most recently used.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut c = self.lock();
        c.tick += 1;
        let tick = c.tick;
        let (v, last) = {
            let e = c.map.get_mut(key)?;
            (e.0.clone(), std::mem::replace(&mut e.2, tick))
        };
        c.by_use.remove(&last);
        c.by_use.insert(tick, key.clone());
        Some(v)
    }

    /// Keeps `value` (of `size` bytes) under `key`, forgetting the least recently used
    /// entries beyond the bound; a value larger than the whole bound is not kept.
    pub fn insert(&self, key: K, value: V, size: usize) {
        if size > self.max_bytes {
            return;
        }
        let mut c = self.lock();
        c.tick += 1;
        let tick = c.tick;
        if let Some(old) = c.map.insert(key.clone(), (value, size, tick)) {
            c.total -= old.1;
            c.by_use.remove(&old.2);
        }
        c.by_use.insert(tick, key);
        c.total += size;
        while c.total > self.max_bytes {
            let Some((_, victim)) = c.by_use.pop_first() else {
                break;
            };
            if let Some(v) = c.map.remove(&victim) {
                c.total -= v.1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_first_and_the_bound_holds() {
        let lru: ByteLru<u32, u32> = ByteLru::new(10);
        lru.insert(1, 10, 4);
        lru.insert(2, 20, 4);
        assert_eq!(lru.get(&1), Some(10), "1 is now the most recent");
        lru.insert(3, 30, 4);
        assert_eq!(
            (lru.get(&2), lru.get(&1), lru.get(&3)),
            (None, Some(10), Some(30))
        );
        assert_eq!(lru.bytes(), 8);
        lru.insert(4, 40, 11);
        assert_eq!(lru.get(&4), None, "larger than the bound");
        lru.insert(1, 11, 2);
        assert_eq!((lru.get(&1), lru.bytes()), (Some(11), 6));
    }
}
