//! Timer spills: delayed messages due far ahead leave the state for immutable objects in the
//! bucket and come back shortly before they are due, as an LSM keeps SSTs (DESIGN.md: what
//! grows with traffic spills into immutable index objects the state references).
//!
//! A timer costs about 220 bytes of checkpoint, so a backlog of a million delayed messages
//! would make every checkpoint hundreds of MiB and start-up seconds long. Instead:
//!
//! - **Spill.** When more than `keep_inline + chunk` timers are inline, the sequencer takes the
//!   `chunk` timers due last (only those due beyond `horizon`), writes them to
//!   `timers/<ulid>.json` ([`SpillFile`]) and commits [`Command::SpillTimers`](super::Command::SpillTimers) with the object's
//!   name, its key range and a summary ([`TimerSpill`]: count, due range, the segments it points
//!   into, fingerprints of its message ids). Apply recomputes the summary from the inline timers
//!   in that key range and moves them out only if it matches exactly, so a timer published
//!   between the snapshot and the commit is never dropped (the spill is refused and retried).
//! - **Load.** When a spill's first timer is due within `load_ahead`, the sequencer reads the
//!   object and commits [`Command::LoadTimers`](super::Command::LoadTimers) carrying its timers; apply checks them against
//!   the summary and puts them back inline (skipping cancelled ones), where `FireTimers` finds
//!   them as before.
//! - **Cancel.** The fingerprints (32-bit FNV-1a of each message id, sorted) say which spills may
//!   hold a message; the gateway reads those objects, and [`Command::CancelTimer`](super::Command::CancelTimer) with
//!   `spilled_in` records the message id as cancelled in the spill's summary.
//! - **Garbage.** [`State::referenced_segments`] includes every spill's segments; spill objects
//!   no longer referenced (loaded, or written by a commit that failed) are deleted by the
//!   compactor after a grace ([`State::referenced_timer_spills`]).

use std::collections::BTreeSet;

use crate::manifest::model::timers::SPILL_FORMAT;
use crate::manifest::model::{
    Outcome, Rejection, SpillFile, SpilledTimer, State, TimerSpill, timer_key,
};

/// When timers spill and come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpillSettings {
    /// Timers kept inline (the earliest due); spilling starts above `keep_inline + chunk`.
    /// Default 20,000 (about 4.4 MB of checkpoint).
    pub keep_inline: usize,
    /// Timers per spill object. Default 4,096 (an object and a load delta of about 1 MB).
    pub chunk: usize,
    /// Only timers due later than this from now are spilled. Default 5 minutes.
    pub horizon_ms: i64,
    /// A spill is loaded back when its first timer is due within this. Default 60 s; must be
    /// below `horizon_ms`, or a loaded chunk could spill again at once.
    pub load_ahead_ms: i64,
}

impl Default for SpillSettings {
    fn default() -> Self {
        SpillSettings {
            keep_inline: 20_000,
            chunk: 4_096,
            horizon_ms: 5 * 60_000,
            load_ahead_ms: 60_000,
        }
    }
}

impl State {
    /// The next chunk of timers to spill at `now`, in key order, or `None`.
    pub fn plan_timer_spill(&self, now: i64, s: &SpillSettings) -> Option<SpillFile> {
        let chunk = s.chunk.max(1);
        if self.timers.len() < s.keep_inline.saturating_add(chunk) {
            return None;
        }
        // The chunk due last; all of it must lie beyond the horizon.
        let horizon = timer_key(now.saturating_add(s.horizon_ms).saturating_add(1), "");
        let timers: Vec<SpilledTimer> = self
            .timers
            .iter()
            .rev()
            .take(chunk)
            .take_while(|(k, _)| **k >= horizon)
            .map(|(k, p)| SpilledTimer {
                key: k.clone(),
                message: p.clone(),
            })
            .collect();
        if timers.len() < chunk {
            return None;
        }
        let mut timers = timers;
        timers.reverse();
        Some(SpillFile {
            format: SPILL_FORMAT,
            timers,
        })
    }

    /// The spill to load back at `now`: the one due first, if within `load_ahead_ms`, among
    /// those `skip` does not name (objects that could not be read must not hold up the rest).
    pub fn due_timer_spill(
        &self,
        now: i64,
        s: &SpillSettings,
        skip: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.spilled_timers
            .iter()
            .filter(|(name, _)| !skip(name))
            .min_by(|a, b| a.1.first_key.cmp(&b.1.first_key))
            .filter(|(_, t)| t.first_due_ms() <= now.saturating_add(s.load_ahead_ms))
            .map(|(name, _)| name.clone())
    }

    /// Spills that may hold `message_id` (not cancelled there).
    pub fn spills_holding(&self, message_id: &str) -> Vec<String> {
        self.spilled_timers
            .iter()
            .filter(|(_, t)| !t.cancelled.contains(message_id) && t.may_hold(message_id))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Timers inline and spilled (cancelled spilled ones not counted).
    pub fn timer_counts(&self) -> (usize, usize) {
        let spilled = self
            .spilled_timers
            .values()
            .map(|t| t.count as usize - t.cancelled.len())
            .sum();
        (self.timers.len(), spilled)
    }

    /// Spill objects the state references.
    pub fn referenced_timer_spills(&self) -> BTreeSet<String> {
        self.spilled_timers.keys().cloned().collect()
    }

    pub(super) fn spill_timers(
        &mut self,
        object: &str,
        spill: &TimerSpill,
    ) -> Result<Outcome, Rejection> {
        if self.spilled_timers.contains_key(object) {
            return Err(Rejection::Conflict(format!("timer spill {object} exists")));
        }
        if spill.count == 0 || spill.first_key > spill.last_key {
            return Err(Rejection::Invalid("an empty timer spill".into()));
        }
        let range = spill.first_key.clone()..=spill.last_key.clone();
        let inline = TimerSpill::summarize(self.timers.range(range.clone()));
        if !inline.same_contents(spill) {
            return Err(Rejection::Conflict(
                "the timers changed since the spill was planned".into(),
            ));
        }
        let keys: Vec<String> = self.timers.range(range).map(|(k, _)| k.clone()).collect();
        for k in keys {
            self.timers.remove(&k);
        }
        let mut stored = spill.clone();
        stored.cancelled.clear();
        self.spilled_timers.insert(object.to_string(), stored);
        Ok(Outcome::Done)
    }

    pub(super) fn load_timers(
        &mut self,
        object: &str,
        timers: &[SpilledTimer],
    ) -> Result<Outcome, Rejection> {
        let spill = self
            .spilled_timers
            .get(object)
            .ok_or_else(|| Rejection::Conflict(format!("no timer spill {object}")))?;
        let given = TimerSpill::summarize(timers.iter().map(|t| (&t.key, &t.message)));
        if !given.same_contents(spill) {
            return Err(Rejection::Invalid(format!(
                "the timers loaded do not match spill {object}"
            )));
        }
        let cancelled = spill.cancelled.clone();
        self.spilled_timers.remove(object);
        for t in timers {
            if !cancelled.contains(&t.message.message_id) {
                self.timers.insert(t.key.clone(), t.message.clone());
            }
        }
        Ok(Outcome::Done)
    }

    /// Marks a spilled timer cancelled; `Err(MessageNotFound)` if the spill is gone or it is
    /// cancelled already.
    pub(super) fn cancel_spilled(
        &mut self,
        object: &str,
        message_id: &str,
    ) -> Result<Outcome, Rejection> {
        let spill = self
            .spilled_timers
            .get_mut(object)
            .filter(|t| t.may_hold(message_id))
            .ok_or_else(|| Rejection::MessageNotFound(message_id.to_string()))?;
        if !spill.cancelled.insert(message_id.to_string()) {
            return Err(Rejection::MessageNotFound(message_id.to_string()));
        }
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::Pending;

    fn pending(id: &str, segment: &str) -> Pending {
        Pending {
            topic: "d".into(),
            queue: 0,
            segment: segment.into(),
            ordinal: 0,
            publish_time_ms: 0,
            message_id: id.into(),
        }
    }

    fn state_with(n: usize) -> State {
        let mut s = State::default();
        for i in 0..n {
            let id = format!("m{i:05}");
            s.timers.insert(
                timer_key(1_000_000 + i as i64 * 1000, &id),
                pending(&id, &format!("seg{}", i % 3)),
            );
        }
        s
    }

    fn settings() -> SpillSettings {
        SpillSettings {
            keep_inline: 10,
            chunk: 8,
            horizon_ms: 5_000,
            load_ahead_ms: 2_000,
        }
    }

    #[test]
    fn spills_the_latest_chunk_beyond_the_horizon_and_loads_it_back() {
        let mut s = state_with(30);
        let before = s.timers.clone();
        let plan = s.plan_timer_spill(0, &settings()).expect("a chunk");
        assert_eq!(plan.timers.len(), 8);
        assert_eq!(plan.timers.last().map(|t| &t.key), before.keys().last());
        let sum = plan.summary();
        s.spill_timers("timers/a.json", &sum).expect("spilled");
        assert_eq!(s.timer_counts(), (22, 8));
        assert!(s.referenced_segments().contains("seg2"));
        // Another chunk, then nothing: 14 left, fewer than keep_inline + chunk.
        let plan2 = s.plan_timer_spill(0, &settings()).expect("a second chunk");
        s.spill_timers("timers/b.json", &plan2.summary())
            .expect("spilled");
        assert_eq!(s.plan_timer_spill(0, &settings()), None);
        assert_eq!(s.timer_counts(), (14, 16));
        // Load b (due first) when it is near.
        let b_due = plan2.summary().first_due_ms();
        assert_eq!(
            s.due_timer_spill(b_due - 2_001, &settings(), |_| false),
            None
        );
        assert_eq!(
            s.due_timer_spill(b_due - 2_000, &settings(), |_| false)
                .as_deref(),
            Some("timers/b.json")
        );
        // An unreadable b does not hold up a, once a is near too.
        let a_due = plan.summary().first_due_ms();
        assert_eq!(
            s.due_timer_spill(a_due - 2_000, &settings(), |n| n == "timers/b.json")
                .as_deref(),
            Some("timers/a.json")
        );
        s.load_timers("timers/b.json", &plan2.timers)
            .expect("loaded");
        s.load_timers("timers/a.json", &plan.timers)
            .expect("loaded");
        assert_eq!(s.timers, before, "every timer is back, unchanged");
        assert!(s.spilled_timers.is_empty());
    }

    #[test]
    fn nothing_due_within_the_horizon_is_spilled() {
        let s = state_with(30);
        // At 1,000,000 + 25,000 - 5,000 the last chunk starts within the horizon.
        assert_eq!(s.plan_timer_spill(1_020_000, &settings()), None);
        assert!(s.plan_timer_spill(1_000_000, &settings()).is_some());
    }

    #[test]
    fn a_spill_that_no_longer_matches_is_refused_and_changes_nothing() {
        let mut s = state_with(30);
        let plan = s.plan_timer_spill(0, &settings()).expect("a chunk");
        // A timer published into the chunk's key range after it was planned.
        let first = plan.timers[0].key.clone();
        let late = format!("{}x", first);
        s.timers.insert(late, pending("late", "seg9"));
        let before = s.clone();
        let r = s.spill_timers("timers/a.json", &plan.summary());
        assert!(matches!(r, Err(Rejection::Conflict(_))), "{r:?}");
        assert_eq!(s, before);
        // A load whose timers do not match the summary is refused too.
        let mut s = state_with(30);
        s.spill_timers("timers/a.json", &plan.summary())
            .expect("spilled");
        let before = s.clone();
        let mut wrong = plan.timers.clone();
        wrong[3].message.segment = "elsewhere".into();
        assert!(s.load_timers("timers/a.json", &wrong).is_err());
        assert!(s.load_timers("timers/nope.json", &plan.timers).is_err());
        assert_eq!(s, before);
    }

    #[test]
    fn a_cancelled_spilled_timer_is_not_loaded() {
        let mut s = state_with(30);
        let plan = s.plan_timer_spill(0, &settings()).expect("a chunk");
        s.spill_timers("timers/a.json", &plan.summary())
            .expect("spilled");
        let id = plan.timers[2].message.message_id.clone();
        assert_eq!(s.spills_holding(&id), vec!["timers/a.json".to_string()]);
        assert!(s.spills_holding("not-there").is_empty());
        s.cancel_spilled("timers/a.json", &id).expect("cancelled");
        assert!(matches!(
            s.cancel_spilled("timers/a.json", &id),
            Err(Rejection::MessageNotFound(_))
        ));
        assert!(s.spills_holding(&id).is_empty());
        assert_eq!(s.timer_counts(), (22, 7));
        s.load_timers("timers/a.json", &plan.timers)
            .expect("loaded");
        assert_eq!(s.timers.len(), 29);
        assert!(!s.timers.values().any(|p| p.message_id == id));
    }
}
