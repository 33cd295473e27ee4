//! Backlog figures of consumer groups, read from the state as it is: per queue and per
//! (group, topic), how many messages are ready, in flight, waiting for a retry or a due time,
//! how far the group is behind, and the store times of its oldest ready and oldest unacked
//! message (`/metrics` and `GET /v1/groups/{group}`).
//!
//! Nothing here scans messages: a queue costs a few binary searches plus a walk over its
//! cursor's live work (leases and retries, bounded by the group's in-flight cap) and its acked
//! intervals. The figures are derived, never stored, so the checkpoint format does not change.

use std::collections::BTreeMap;

use super::model::{Cursor, Group, GroupMode, QueueLog, State};

/// One queue's backlog for one cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueBacklog {
    /// Published minus committed (what RocketMQ calls the consumer's diff).
    pub lag: u64,
    /// Visible now and not leased: a receive could take them.
    pub ready: u64,
    /// Leased and not settled.
    pub inflight: u64,
    /// Waiting for their retry backoff.
    pub retrying: u64,
    /// Store time of the oldest message a receive could take now.
    pub oldest_ready_ms: Option<i64>,
    /// Store time of the oldest message not yet consumed (ready, leased or waiting).
    pub oldest_unacked_ms: Option<i64>,
}

impl QueueBacklog {
    /// Adds `other` (counts add; the oldest times are the minimum).
    pub fn add(&mut self, other: &QueueBacklog) {
        self.lag += other.lag;
        self.ready += other.ready;
        self.inflight += other.inflight;
        self.retrying += other.retrying;
        self.oldest_ready_ms = min_some(self.oldest_ready_ms, other.oldest_ready_ms);
        self.oldest_unacked_ms = min_some(self.oldest_unacked_ms, other.oldest_unacked_ms);
    }
}

fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// When `offset` was stored in `q`: exact for inline ranges, the first store time of its run
/// for folded offsets (an upper bound of the age), `None` below what the queue holds.
pub fn stored_ms(q: &QueueLog, offset: u64) -> Option<i64> {
    if offset >= q.next_offset {
        return None;
    }
    if offset >= q.first_inline() {
        return q.locate(offset).map(|(r, _)| r.stored_ms());
    }
    let i = q.index.partition_point(|r| r.end <= offset);
    q.index
        .get(i)
        .filter(|r| r.base <= offset)
        .map(|r| r.first_stored_ms)
}

/// The backlog of cursor `c` on queue `q` at delta time `now`.
pub fn queue_backlog(q: &QueueLog, c: &Cursor, now: i64) -> QueueBacklog {
    let next = q.next_offset;
    let start = c.committed.max(q.min_offset).min(next);
    // Consumed offsets in start..next.
    let done: u64 = c
        .done
        .iter()
        .map(|(a, b)| b.min(next).saturating_sub(a.max(start)))
        .sum();
    let pending = (next - start).saturating_sub(done);
    let in_span = |o: u64| o >= start && o < next;
    let leases_in_span = c.leases.keys().filter(|&&o| in_span(o)).count() as u64;
    let mut retries_in_span = 0u64;
    let mut retrying = 0u64;
    let mut first_due_retry = None;
    for (&o, r) in &c.retries {
        retries_in_span += u64::from(in_span(o));
        if r.visible_at_ms > now {
            retrying += 1;
        } else if first_due_retry.is_none() {
            first_due_retry = Some(o);
        }
    }
    let due_retries = c.retries.len() as u64 - retrying;
    let ready = (pending.saturating_sub(leases_in_span + retries_in_span)) + due_retries;
    // The first offset from `start` that is neither consumed, leased nor waiting: each step
    // past a taken offset passes one lease or retry, so this walk is bounded by them.
    let mut first_free = c.done.next_absent(start);
    while first_free < next
        && (c.leases.contains_key(&first_free) || c.retries.contains_key(&first_free))
    {
        first_free = c.done.next_absent(first_free + 1);
    }
    let first_free = (first_free < next).then_some(first_free);
    let oldest_ready = [first_free, first_due_retry].into_iter().flatten().min();
    let first_pending = c.done.next_absent(start);
    let oldest_unacked = [
        (first_pending < next).then_some(first_pending),
        c.leases.keys().next().copied(),
        c.retries.keys().next().copied(),
    ]
    .into_iter()
    .flatten()
    .min();
    QueueBacklog {
        lag: next.saturating_sub(c.committed),
        ready,
        inflight: c.leases.len() as u64,
        retrying,
        oldest_ready_ms: oldest_ready.and_then(|o| stored_ms(q, o)),
        oldest_unacked_ms: oldest_unacked.and_then(|o| stored_ms(q, o)),
    }
}

/// The backlog of `group` on each queue of `topic` (summed over a broadcast group's
/// instances), or `None` when either is unknown or the group does not read the topic.
pub fn topic_queues(
    state: &State,
    group: &str,
    topic: &str,
    now: i64,
) -> Option<Vec<QueueBacklog>> {
    let g = state.groups.get(group)?;
    if !g.def.subscriptions.iter().any(|s| s.topic == topic) {
        return None;
    }
    let t = state.topics.get(topic)?;
    let mut out = vec![QueueBacklog::default(); t.queues.len()];
    let mut seen = false;
    for per_topic in g.cursors.values() {
        let Some(cursors) = per_topic.get(topic) else {
            continue;
        };
        seen = true;
        for (qi, q) in t.queues.iter().enumerate() {
            match cursors.get(qi) {
                Some(c) => out[qi].add(&queue_backlog(q, c, now)),
                // A queue added since the cursor was made: it starts where the group would.
                None => {
                    if let Some(c) = state.cursor(group, "", topic, qi as u32) {
                        out[qi].add(&queue_backlog(q, &c, now));
                    }
                }
            }
        }
    }
    if !seen && g.def.mode == GroupMode::Clustering {
        // No cursor yet (the topic came after the group): where the group would start.
        for (qi, q) in t.queues.iter().enumerate() {
            if let Some(c) = state.cursor(group, "", topic, qi as u32) {
                out[qi] = queue_backlog(q, &c, now);
            }
        }
    }
    Some(out)
}

/// One (group, topic) line of the backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTopicBacklog {
    pub group: String,
    pub topic: String,
    pub backlog: QueueBacklog,
    /// Delayed messages of the topic not yet due and held in the state (spilled ones are
    /// not attributed to a topic), plus this group's retries waiting for their backoff.
    pub delayed: u64,
    /// Per queue: its backlog and its delayed messages (counted as `delayed` is).
    pub queues: Vec<(QueueBacklog, u64)>,
}

/// Every (group, topic) pair's backlog, in name order. Costs one pass over the groups'
/// cursors and one over the timers kept in the state.
pub fn all(state: &State, now: i64) -> Vec<GroupTopicBacklog> {
    let mut timers: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    for p in state.timers.values() {
        *timers.entry((p.topic.as_str(), p.queue)).or_default() += 1;
    }
    let mut out = Vec::new();
    for (name, g) in &state.groups {
        out.extend(group_lines(state, name, g, now, &timers));
    }
    out
}

fn group_lines(
    state: &State,
    name: &str,
    g: &Group,
    now: i64,
    timers: &BTreeMap<(&str, u32), u64>,
) -> Vec<GroupTopicBacklog> {
    let mut out = Vec::new();
    for s in &g.def.subscriptions {
        let Some(queues) = topic_queues(state, name, &s.topic, now) else {
            continue;
        };
        let mut sum = QueueBacklog::default();
        let mut delayed = 0;
        let queues: Vec<(QueueBacklog, u64)> = queues
            .into_iter()
            .enumerate()
            .map(|(qi, q)| {
                sum.add(&q);
                let due_later = timers
                    .get(&(s.topic.as_str(), qi as u32))
                    .copied()
                    .unwrap_or(0);
                delayed += q.retrying + due_later;
                (q, q.retrying + due_later)
            })
            .collect();
        out.push(GroupTopicBacklog {
            group: name.to_string(),
            topic: s.topic.clone(),
            delayed,
            backlog: sum,
            queues,
        });
    }
    out
}

/// Half messages waiting for a decision, per (producer group, topic).
pub fn pending_transactions(state: &State) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for h in state.halves.values() {
        *out.entry((h.producer_group.clone(), h.message.topic.clone()))
            .or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::command::{Command, SettleAction};
    use crate::manifest::model::{GroupDef, Outcome};
    use crate::manifest::sim::{Sim, group_def, topic};

    fn setup(max_retries: u32) -> Sim {
        let mut s = Sim::new();
        s.one(topic("t", 2));
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: GroupDef {
                retry_backoff_ms: vec![500],
                push: None,
                ..group_def(max_retries)
            },
            resolved: Default::default(),
        });
        for (queue, count, at) in [(0, 6, 1_000), (1, 4, 2_000)] {
            s.one(Command::Append {
                topic: "t".into(),
                queue,
                segment: "s".into(),
                first_ordinal: 0,
                count,
                publish_time_ms: at,
            });
        }
        s
    }

    fn lease(s: &mut Sim, max: u32) -> Vec<crate::manifest::Grant> {
        let candidates = s.state.candidates("g", "", s.now, max as usize);
        match s.one(Command::Lease {
            group: "g".into(),
            consumer: String::new(),
            invisible_ms: 1000,
            max,
            candidates,
            skipped: vec![],
            message_groups: vec![],
            located: vec![],
            max_in_flight: None,
        }) {
            Outcome::Leased { grants, .. } => grants,
            o => panic!("{o:?}"),
        }
    }

    fn settle(s: &mut Sim, grants: &[crate::manifest::Grant], version: u64, action: SettleAction) {
        for g in grants {
            s.one(Command::Settle {
                group: "g".into(),
                consumer: String::new(),
                at: g.at.clone(),
                lease_version: version,
                action,
            });
        }
    }

    fn line(s: &Sim) -> GroupTopicBacklog {
        let mut all = all(&s.state, s.now);
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    #[test]
    fn leased_messages_are_in_flight_and_the_rest_ready_until_acked() {
        let mut s = setup(3);
        let b = line(&s).backlog;
        assert_eq!((b.lag, b.ready, b.inflight), (10, 10, 0));
        assert_eq!(b.oldest_unacked_ms, Some(1_000));
        let v = s.state.version + 1;
        let grants = lease(&mut s, 4);
        assert_eq!(grants.len(), 4);
        let b = line(&s).backlog;
        assert_eq!((b.lag, b.ready, b.inflight, b.retrying), (10, 6, 4, 0));
        assert_eq!(b.oldest_unacked_ms, Some(1_000));
        settle(&mut s, &grants, v, SettleAction::Ack);
        let b = line(&s).backlog;
        assert_eq!((b.lag, b.ready, b.inflight), (6, 6, 0));
    }

    #[test]
    fn a_nacked_message_is_delayed_until_its_backoff_passes() {
        let mut s = setup(3);
        let v = s.state.version + 1;
        let grants = lease(&mut s, 1);
        settle(&mut s, &grants, v, SettleAction::Nack { delay_ms: 500 });
        let l = line(&s);
        assert_eq!((l.backlog.ready, l.backlog.retrying, l.delayed), (9, 1, 1));
        assert_eq!(l.backlog.lag, 10);
        s.now += 600;
        s.one(Command::ExpireLeases);
        let l = line(&s);
        assert_eq!((l.backlog.ready, l.backlog.retrying), (10, 0));
    }

    #[test]
    fn the_oldest_ready_message_skips_the_leased_ones() {
        let mut s = setup(3);
        // Both queues give their first offsets; queue 1 (stored at 2,000) still has ready ones.
        let v = s.state.version + 1;
        let grants = lease(&mut s, 10);
        assert_eq!(grants.len(), 10);
        let b = line(&s).backlog;
        assert_eq!((b.ready, b.oldest_ready_ms), (0, None));
        settle(&mut s, &grants[..2], v, SettleAction::Ack);
        let b = line(&s).backlog;
        assert_eq!(b.inflight, 8);
        assert_eq!(b.oldest_unacked_ms, Some(1_000));
    }

    #[test]
    fn folded_offsets_are_dated_by_their_run_and_archived_ones_not_at_all() {
        let range = |base: u64, count: u32, at: i64| crate::manifest::OffsetRange {
            base,
            count,
            segment: "s".into(),
            first_ordinal: 0,
            publish_time_ms: at,
            origin_topic: None,
            origin: None,
            appended_ms: None,
        };
        let folded = [range(10, 5, 100), range(15, 5, 200)];
        let q = QueueLog {
            next_offset: 30,
            min_offset: 10,
            index: vec![crate::manifest::index::IndexRun::summarize(
                "index/x.idx",
                0,
                1,
                0,
                &folded,
            )],
            ranges: vec![range(20, 10, 300)],
        };
        assert_eq!(stored_ms(&q, 9), None);
        assert_eq!(stored_ms(&q, 17), Some(100));
        assert_eq!(stored_ms(&q, 25), Some(300));
        assert_eq!(stored_ms(&q, 30), None);
        // A cursor at 12 with nothing else: everything from 12 is ready, the oldest dated 100.
        let c = Cursor {
            committed: 12,
            ..Cursor::default()
        };
        let b = queue_backlog(&q, &c, 1_000);
        assert_eq!((b.lag, b.ready, b.inflight), (18, 18, 0));
        assert_eq!(
            (b.oldest_ready_ms, b.oldest_unacked_ms),
            (Some(100), Some(100))
        );
        // Acked 12..20 out of order: the oldest is the first inline range.
        let mut c = c;
        for o in 13..20 {
            c.done.insert(o);
        }
        c.done.insert(12);
        let b = queue_backlog(&q, &c, 1_000);
        assert_eq!(b.ready, 10);
        assert_eq!(b.oldest_unacked_ms, Some(300));
    }

    #[test]
    fn a_dead_letter_leaves_the_backlog_and_pending_transactions_count_halves() {
        let mut s = setup(0);
        let v = s.state.version + 1;
        let grants = lease(&mut s, 1);
        settle(&mut s, &grants, v, SettleAction::Nack { delay_ms: 0 });
        let b = line(&s).backlog;
        assert_eq!((b.lag, b.ready, b.inflight), (9, 9, 0));
        assert!(pending_transactions(&s.state).is_empty());
    }
}
