//! Offsets that receives on this gateway are about to lease: while one receive's lease is being
//! committed, the others on the same gateway pass its candidates over instead of asking for the
//! same offsets (of which apply would grant them none, so they would read, commit and answer for
//! nothing). Only a hint: apply still decides every lease, and receives on other gateways do not
//! see these claims. Bounded by the receives in flight times their candidate window.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use segment_writer::manifest::QueueOffset;

/// Claimed offsets: cursor key (`group`, or `group` and consumer in broadcast mode) → topic →
/// queue → offsets.
pub type Held = HashMap<String, HashMap<String, BTreeMap<u32, BTreeSet<u64>>>>;

/// The claims of this gateway's receives in flight.
#[derive(Debug, Default)]
pub struct Claims {
    held: Mutex<Held>,
}

impl Claims {
    /// The claims, locked: look up and claim under one lock so that two receives never claim
    /// the same offset.
    pub fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().expect("claims lock poisoned")
    }

    /// Claims `offsets` for `key` in `held` (the locked claims) until the guard is dropped.
    pub fn claim(
        self: &Arc<Self>,
        held: &mut Held,
        key: &str,
        offsets: &[QueueOffset],
    ) -> ClaimGuard {
        let mine = held.entry(key.to_string()).or_default();
        for o in offsets {
            mine.entry(o.topic.clone())
                .or_default()
                .entry(o.queue)
                .or_default()
                .insert(o.offset);
        }
        ClaimGuard {
            claims: self.clone(),
            key: key.to_string(),
            offsets: offsets.to_vec(),
        }
    }
}

/// Whether `offset` of `topic`/`queue` is claimed in `mine` (one key's claims).
pub fn claimed(
    mine: Option<&HashMap<String, BTreeMap<u32, BTreeSet<u64>>>>,
    topic: &str,
    queue: u32,
    offset: u64,
) -> bool {
    mine.and_then(|m| m.get(topic))
        .and_then(|q| q.get(&queue))
        .is_some_and(|set| set.contains(&offset))
}

/// Releases its offsets when dropped (answered, failed or cancelled alike).
#[derive(Debug)]
pub struct ClaimGuard {
    claims: Arc<Claims>,
    key: String,
    offsets: Vec<QueueOffset>,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let mut held = self.claims.lock();
        let Some(mine) = held.get_mut(&self.key) else {
            return;
        };
        for o in &self.offsets {
            if let Some(queues) = mine.get_mut(&o.topic) {
                if let Some(set) = queues.get_mut(&o.queue) {
                    set.remove(&o.offset);
                    if set.is_empty() {
                        queues.remove(&o.queue);
                    }
                }
                if queues.is_empty() {
                    mine.remove(&o.topic);
                }
            }
        }
        if mine.is_empty() {
            held.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(topic: &str, queue: u32, offset: u64) -> QueueOffset {
        QueueOffset {
            topic: topic.into(),
            queue,
            offset,
        }
    }

    #[test]
    fn claims_hold_until_dropped_and_leave_nothing_behind() {
        let claims = Arc::new(Claims::default());
        let a = {
            let mut held = claims.lock();
            claims.claim(&mut held, "g", &[at("t", 0, 1), at("t", 1, 5)])
        };
        let b = {
            let mut held = claims.lock();
            claims.claim(&mut held, "g", &[at("t", 0, 2)])
        };
        {
            let held = claims.lock();
            let mine = held.get("g");
            assert!(claimed(mine, "t", 0, 1) && claimed(mine, "t", 1, 5));
            assert!(claimed(mine, "t", 0, 2));
            assert!(!claimed(mine, "t", 0, 5) && !claimed(mine, "u", 0, 1));
            assert!(!claimed(held.get("other"), "t", 0, 1));
        }
        drop(a);
        {
            let held = claims.lock();
            assert!(!claimed(held.get("g"), "t", 0, 1));
            assert!(claimed(held.get("g"), "t", 0, 2));
        }
        drop(b);
        assert!(claims.lock().is_empty(), "no empty sets are left behind");
    }
}
