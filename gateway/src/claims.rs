//! Offsets that receives on this gateway are about to lease: while one receive's lease is being
//! committed, the others on the same gateway pass its candidates over instead of asking for the
//! same offsets (of which apply would grant them none, so they would read, commit and answer for
//! nothing). Only a hint: apply still decides every lease, and receives on other gateways do not
//! see these claims. Bounded by the receives in flight times their candidate window.
//!
//! Ordered (FIFO) topics are claimed by message group, never by offset: a receive that passed
//! over a claimed offset could otherwise propose the next message of its group before it, and
//! apply trusts the proposal to be the group's oldest. A receive skips a group another receive
//! here is leasing, whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use segment_writer::manifest::QueueOffset;

/// Claimed offsets: cursor key (`group`, or `group` and consumer in broadcast mode) → topic →
/// queue → offsets.
pub type Held = HashMap<String, HashMap<String, BTreeMap<u32, BTreeSet<u64>>>>;

/// Claimed message groups of ordered topics: (cursor key, topic, queue, message group).
type Groups = std::collections::HashSet<(String, String, u32, String)>;

/// The claims of this gateway's receives in flight.
#[derive(Debug, Default)]
pub struct Claims {
    held: Mutex<Held>,
    groups: Mutex<Groups>,
    /// Counts releases of message-group claims: a receive that found nothing to lease knows
    /// from it whether a group it passed over as claimed may be free again, even if the
    /// state did not change.
    released: std::sync::atomic::AtomicU64,
}

impl Claims {
    /// The claims, locked: look up and claim under one lock so that two receives never claim
    /// the same offset.
    pub fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().expect("claims lock poisoned")
    }

    /// How many times message-group claims have been released so far.
    pub fn releases(&self) -> u64 {
        self.released.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Claims `offsets` for `key` in `held` (the locked claims) until the guard is dropped.
    pub fn claim<'a>(
        self: &Arc<Self>,
        held: &mut Held,
        key: &str,
        offsets: impl IntoIterator<Item = &'a QueueOffset>,
    ) -> ClaimGuard {
        let mine = held.entry(key.to_string()).or_default();
        let offsets: Vec<QueueOffset> = offsets.into_iter().cloned().collect();
        for o in &offsets {
            mine.entry(o.topic.clone())
                .or_default()
                .entry(o.queue)
                .or_default()
                .insert(o.offset);
        }
        ClaimGuard {
            claims: self.clone(),
            key: key.to_string(),
            offsets,
            groups: Vec::new(),
        }
    }
}

/// The offsets of `topic`/`queue` claimed in `mine` (one key's claims), if any.
pub fn claimed<'a>(
    mine: Option<&'a HashMap<String, BTreeMap<u32, BTreeSet<u64>>>>,
    topic: &str,
    queue: u32,
) -> Option<&'a BTreeSet<u64>> {
    mine.and_then(|m| m.get(topic)).and_then(|q| q.get(&queue))
}

/// Releases its offsets and message groups when dropped (answered, failed or cancelled alike).
#[derive(Debug)]
pub struct ClaimGuard {
    claims: Arc<Claims>,
    key: String,
    offsets: Vec<QueueOffset>,
    groups: Vec<(String, String, u32, String)>,
}

impl ClaimGuard {
    /// Claims message group `group` of ordered `topic`/`queue` for this receive: false when
    /// another receive on this gateway holds it (then pass the whole group over).
    pub fn claim_group(&mut self, topic: &str, queue: u32, group: &str) -> bool {
        let k = (
            self.key.clone(),
            topic.to_string(),
            queue,
            group.to_string(),
        );
        if self.groups.contains(&k) {
            return true;
        }
        let mut groups = self.claims.groups.lock().expect("claims lock poisoned");
        if !groups.insert(k.clone()) {
            return false;
        }
        self.groups.push(k);
        true
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.groups.is_empty() {
            let mut groups = self.claims.groups.lock().expect("claims lock poisoned");
            for k in &self.groups {
                groups.remove(k);
            }
            self.claims
                .released
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
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
        // Whether `offset` of `topic`/`queue` is claimed.
        let claimed = |mine: Option<&HashMap<String, BTreeMap<u32, BTreeSet<u64>>>>,
                       topic: &str,
                       queue: u32,
                       offset: u64| {
            claimed(mine, topic, queue).is_some_and(|set| set.contains(&offset))
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

    #[test]
    fn a_message_group_has_one_claimant_until_it_lets_go() {
        let claims = Arc::new(Claims::default());
        let mut a = claims.claim(&mut claims.lock(), "g", &[]);
        let mut b = claims.claim(&mut claims.lock(), "g", &[]);
        let mut other_group = claims.claim(&mut claims.lock(), "h", &[]);
        assert!(a.claim_group("t", 0, "order-1"));
        assert!(a.claim_group("t", 0, "order-1"), "a holder may ask again");
        assert!(!b.claim_group("t", 0, "order-1"));
        assert!(
            b.claim_group("t", 1, "order-1"),
            "another queue is another group"
        );
        assert!(other_group.claim_group("t", 0, "order-1"), "another cursor");
        assert_eq!(claims.releases(), 0);
        drop(a);
        assert_eq!(claims.releases(), 1, "a released group claim is counted");
        assert!(b.claim_group("t", 0, "order-1"));
        let empty = claims.claim(&mut claims.lock(), "g", &[]);
        drop(empty);
        assert_eq!(claims.releases(), 1, "a guard without groups releases none");
        drop((b, other_group));
        assert!(claims.groups.lock().unwrap().is_empty());
    }
}
