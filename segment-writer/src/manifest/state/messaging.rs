//! Messages that are not (yet) in a queue, and the windows that remember what was done:
//! delayed messages (timers), half messages of transactions and their check-backs, producer
//! groups, the `dedup_id` window, and re-driving dead letters.
//!
//! A timer or a half message is a pointer to bytes already in a segment: firing a timer or
//! committing a transaction appends that pointer to its queue, nothing is copied. Every time
//! compared here is the delta time, so replicas agree.
//!
//! The data (timers, halves, decisions, producer groups, the dedup window) is in
//! `manifest::model::messaging`.

use crate::manifest::command::PublishMode;
use crate::manifest::model::messaging::timer_due;
use crate::manifest::model::{
    CheckDue, DECISION_WINDOW_MS, DECISIONS_KEPT, DEDUP_PER_TOPIC, DEDUP_WINDOW_MS, Decision,
    DedupRecord, EventKind, Half, LedgerEvent, MAX_PENDING_TRANSACTIONS, OffsetRange, Outcome,
    Pending, ProducerInstance, ProducerSettings, Rejection, Retry, SWEEP_EVERY, State, dlq_topic,
    single, timer_key,
};

impl State {
    /// The producer group's settings (defaults if it was never configured).
    pub fn producer_settings(&self, group: &str) -> ProducerSettings {
        self.producer_groups
            .get(group)
            .map(|g| g.settings)
            .unwrap_or_default()
    }

    /// When the earliest timer is due.
    pub fn next_timer_due(&self) -> Option<i64> {
        self.timers.keys().next().map(|k| timer_due(k))
    }

    /// Whether any half message is due for a check-back at `now`.
    pub fn checks_due(&self, now: i64) -> bool {
        self.halves.values().any(|h| h.next_check_ms <= now)
    }

    /// The topic and queue of the half message of `transaction_id`, if it is pending.
    pub fn half(&self, transaction_id: &str) -> Option<&Half> {
        self.halves.get(transaction_id)
    }

    /// Appends one stored message to its queue; `appended_ms` is its store time when that is
    /// not its publish time (a delayed message when due, a half message when committed).
    /// `None` if its topic or queue is gone.
    fn append_pointer(&mut self, p: &Pending, appended_ms: Option<i64>) -> Option<u64> {
        let q = self
            .topics
            .get_mut(&p.topic)?
            .queues
            .get_mut(p.queue as usize)?;
        let base = q.next_offset;
        match q.ranges.last_mut() {
            // A run of one segment's ordinals (timers due together) stays one range.
            Some(r)
                if r.segment == p.segment
                    && r.origin_topic.is_none()
                    && r.base + u64::from(r.count) == base
                    && r.first_ordinal + r.count == p.ordinal
                    && r.appended_ms == appended_ms =>
            {
                r.count += 1;
            }
            _ => q.ranges.push(OffsetRange {
                base,
                count: 1,
                segment: p.segment.clone(),
                first_ordinal: p.ordinal,
                publish_time_ms: p.publish_time_ms,
                origin_topic: None,
                origin: None,
                appended_ms,
            }),
        }
        q.next_offset += 1;
        self.note_packable_ref(&p.segment, &p.topic, p.queue);
        Some(base)
    }

    /// Drops expired dedup ids of `topic`, then the oldest beyond [`DEDUP_PER_TOPIC`].
    fn prune_dedup(&mut self, topic: &str, now: i64) {
        if let Some(m) = self.dedup.get_mut(topic) {
            m.retain(|_, r| now - r.time_ms <= DEDUP_WINDOW_MS);
            if m.len() > DEDUP_PER_TOPIC {
                let mut times: Vec<(i64, String)> =
                    m.iter().map(|(k, r)| (r.time_ms, k.clone())).collect();
                times.sort();
                for (_, k) in times.into_iter().take(m.len() - DEDUP_PER_TOPIC) {
                    m.remove(&k);
                }
            }
        }
    }

    /// The periodic sweep of the windows (deterministic: by version).
    pub(super) fn sweep_windows(&mut self, now: i64) {
        if !self.version.is_multiple_of(SWEEP_EVERY) {
            return;
        }
        let topics: Vec<String> = self.dedup.keys().cloned().collect();
        for t in topics {
            self.prune_dedup(&t, now);
        }
        self.dedup.retain(|_, m| !m.is_empty());
        self.prune_decisions(now);
    }

    pub(super) fn publish_one(
        &mut self,
        message: Pending,
        dedup_id: Option<&str>,
        mode: &PublishMode,
        now: i64,
    ) -> Result<Outcome, Rejection> {
        let t = self
            .topics
            .get(&message.topic)
            .ok_or_else(|| Rejection::TopicNotFound(message.topic.clone()))?;
        if message.queue as usize >= t.queues.len() {
            return Err(Rejection::Invalid(format!(
                "topic {} has no queue {}",
                message.topic, message.queue
            )));
        }
        if let Some(id) = dedup_id {
            let first = self
                .dedup
                .get(&message.topic)
                .and_then(|m| m.get(id))
                .filter(|r| now - r.time_ms <= DEDUP_WINDOW_MS);
            if let Some(first) = first {
                return Ok(Outcome::Duplicate {
                    first: first.clone(),
                });
            }
        }
        let mut record = DedupRecord {
            time_ms: now,
            message_id: message.message_id.clone(),
            queue: None,
            offset: None,
            transaction_id: None,
        };
        let outcome = match mode {
            PublishMode::Timer { deliver_at_ms } if *deliver_at_ms > now => {
                self.record(
                    LedgerEvent::new(EventKind::Scheduled, &message.topic)
                        .id(&message.message_id)
                        .detail(format!("due at {deliver_at_ms}")),
                );
                self.unpackable(&message.segment);
                self.timers.insert(
                    timer_key(*deliver_at_ms, &message.message_id),
                    message.clone(),
                );
                Outcome::Done
            }
            PublishMode::Visible | PublishMode::Timer { .. } => {
                let base = self
                    .append_pointer(&message, None)
                    .ok_or_else(|| Rejection::TopicNotFound(message.topic.clone()))?;
                record.queue = Some(message.queue);
                record.offset = Some(base);
                self.record(
                    LedgerEvent::new(EventKind::Published, &message.topic)
                        .at(message.queue, base)
                        .id(&message.message_id),
                );
                Outcome::Appended { base_offset: base }
            }
            PublishMode::Half {
                transaction_id,
                producer_group,
                check_immunity_ms,
            } => {
                if self.halves.contains_key(transaction_id)
                    || self.decisions.contains_key(transaction_id)
                {
                    return Err(Rejection::Conflict(format!(
                        "transaction {transaction_id} exists"
                    )));
                }
                if self.halves.len() >= MAX_PENDING_TRANSACTIONS {
                    return Err(Rejection::Full(format!(
                        "{MAX_PENDING_TRANSACTIONS} transactions are pending: commit or roll \
                         back some before starting more"
                    )));
                }
                self.unpackable(&message.segment);
                let settings = self.producer_settings(producer_group);
                let immunity = settings
                    .check_immunity_ms
                    .max(check_immunity_ms.unwrap_or(0));
                self.halves.insert(
                    transaction_id.clone(),
                    Half {
                        message: message.clone(),
                        producer_group: producer_group.clone(),
                        checks: 0,
                        claimed: 0,
                        next_check_ms: now + immunity,
                    },
                );
                record.transaction_id = Some(transaction_id.clone());
                self.record(
                    LedgerEvent::new(EventKind::Half, &message.topic)
                        .id(&message.message_id)
                        .detail(format!("transaction {transaction_id}")),
                );
                Outcome::Done
            }
        };
        if let Some(id) = dedup_id {
            let m = self.dedup.entry(message.topic.clone()).or_default();
            m.insert(id.to_string(), record);
            // Amortized: sweep when 10% over the bound.
            if m.len() > DEDUP_PER_TOPIC + DEDUP_PER_TOPIC / 10 {
                self.prune_dedup(&message.topic, now);
            }
        }
        Ok(outcome)
    }

    pub(super) fn fire_timers(&mut self, now: i64) {
        let bound = timer_key(now.saturating_add(1), "");
        let rest = self.timers.split_off(&bound);
        let due = std::mem::replace(&mut self.timers, rest);
        for p in due.values() {
            if let Some(offset) = self.append_pointer(p, Some(now)) {
                self.record(
                    LedgerEvent::new(EventKind::Due, &p.topic)
                        .at(p.queue, offset)
                        .id(&p.message_id),
                );
            }
        }
    }

    /// Cancels a timer inline, or else one the gateway found in the spill `spilled_in`.
    pub(super) fn cancel_timer(
        &mut self,
        topic: &str,
        message_id: &str,
        spilled_in: Option<&str>,
    ) -> Result<Outcome, Rejection> {
        let key = self
            .timers
            .iter()
            .find(|(_, p)| p.message_id == message_id && p.topic == topic)
            .map(|(k, _)| k.clone());
        let outcome = match (key, spilled_in) {
            (Some(key), _) => {
                self.timers.remove(&key);
                Ok(Outcome::Done)
            }
            (None, Some(object)) => self.cancel_spilled(object, message_id),
            (None, None) => Err(Rejection::MessageNotFound(message_id.to_string())),
        }?;
        self.record(LedgerEvent::new(EventKind::Cancelled, topic).id(message_id));
        Ok(outcome)
    }

    fn prune_decisions(&mut self, now: i64) {
        self.decisions
            .retain(|_, d| now - d.time_ms <= DECISION_WINDOW_MS);
        if self.decisions.len() > DECISIONS_KEPT {
            let mut times: Vec<(i64, String)> = self
                .decisions
                .iter()
                .map(|(k, d)| (d.time_ms, k.clone()))
                .collect();
            times.sort();
            let extra = self.decisions.len() - DECISIONS_KEPT;
            for (_, k) in times.into_iter().take(extra) {
                self.decisions.remove(&k);
            }
        }
    }

    fn remember_decision(&mut self, id: String, decision: Decision, now: i64) {
        self.decisions.insert(id, decision);
        if self.decisions.len() > DECISIONS_KEPT + DECISIONS_KEPT / 10 {
            self.prune_decisions(now);
        }
    }

    pub(super) fn decide(
        &mut self,
        transaction_id: &str,
        commit: bool,
        now: i64,
    ) -> Result<Outcome, Rejection> {
        if let Some(d) = self
            .decisions
            .get(transaction_id)
            .filter(|d| now - d.time_ms <= DECISION_WINDOW_MS)
        {
            return if d.committed == commit {
                Ok(Outcome::Decided { committed: commit })
            } else {
                Err(Rejection::Conflict(format!(
                    "transaction {transaction_id} was already {}",
                    if d.committed {
                        "committed"
                    } else {
                        "rolled back"
                    }
                )))
            };
        }
        let half = self
            .halves
            .remove(transaction_id)
            .ok_or_else(|| Rejection::TransactionNotFound(transaction_id.to_string()))?;
        let m = &half.message;
        let event = match commit.then(|| self.append_pointer(m, Some(now))).flatten() {
            Some(offset) => LedgerEvent::new(EventKind::Committed, &m.topic).at(m.queue, offset),
            None if commit => LedgerEvent::new(EventKind::Committed, &m.topic)
                .detail("its topic or queue is gone: not stored"),
            None => LedgerEvent::new(EventKind::RolledBack, &m.topic),
        };
        self.record(
            event
                .id(&m.message_id)
                .detail_or(format!("transaction {transaction_id}")),
        );
        self.remember_decision(
            transaction_id.to_string(),
            Decision {
                committed: commit,
                time_ms: now,
                producer_group: half.producer_group.clone(),
            },
            now,
        );
        Ok(Outcome::Decided { committed: commit })
    }

    pub(super) fn check_transactions(&mut self, now: i64) -> Outcome {
        let due: Vec<String> = self
            .halves
            .iter()
            .filter(|(_, h)| h.next_check_ms <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut checks = Vec::new();
        for id in due {
            let Some(h) = self.halves.get(&id) else {
                continue;
            };
            let group = h.producer_group.clone();
            let settings = self.producer_settings(&group);
            if h.checks >= settings.max_checks {
                let m = &h.message;
                let event = LedgerEvent::new(EventKind::RolledBack, &m.topic)
                    .id(&m.message_id)
                    .detail(format!(
                        "transaction {id}: no answer after {} check-backs",
                        h.checks
                    ));
                self.record(event);
                self.halves.remove(&id);
                self.remember_decision(
                    id,
                    Decision {
                        committed: false,
                        time_ms: now,
                        producer_group: group,
                    },
                    now,
                );
                continue;
            }
            let webhook = self
                .producer_groups
                .get(&group)
                .is_some_and(|g| g.live(now).next().is_some());
            let Some(h) = self.halves.get_mut(&id) else {
                continue;
            };
            h.checks += 1;
            h.next_check_ms = now + settings.check_interval_ms;
            if webhook {
                h.claimed = h.checks;
            }
            checks.push(CheckDue {
                transaction_id: id,
                producer_group: group,
                check_times: h.checks,
                webhook,
            });
        }
        Outcome::Checks { checks }
    }

    pub(super) fn claim_checks(&mut self, producer_group: &str, max: u32) -> Outcome {
        let mut checks = Vec::new();
        for (id, h) in &mut self.halves {
            if checks.len() >= max as usize {
                break;
            }
            if h.producer_group == producer_group && h.claimed < h.checks {
                h.claimed = h.checks;
                checks.push(CheckDue {
                    transaction_id: id.clone(),
                    producer_group: producer_group.to_string(),
                    check_times: h.checks,
                    webhook: false,
                });
            }
        }
        Outcome::Checks { checks }
    }

    /// Whether a poller of `producer_group` would get a check now.
    pub fn checks_waiting(&self, producer_group: &str) -> bool {
        self.halves
            .values()
            .any(|h| h.producer_group == producer_group && h.claimed < h.checks)
    }

    pub(super) fn configure_producer_group(
        &mut self,
        group: &str,
        check_immunity_ms: Option<i64>,
        check_interval_ms: Option<i64>,
        max_checks: Option<u32>,
    ) -> Result<Outcome, Rejection> {
        let positive = |v: Option<i64>| v.is_none_or(|v| v > 0);
        if !positive(check_immunity_ms) || !positive(check_interval_ms) {
            return Err(Rejection::Invalid(
                "check_immunity_ms and check_interval_ms must be positive".into(),
            ));
        }
        let g = self.producer_groups.entry(group.to_string()).or_default();
        if let Some(v) = check_immunity_ms {
            g.settings.check_immunity_ms = v;
        }
        if let Some(v) = check_interval_ms {
            g.settings.check_interval_ms = v;
        }
        if let Some(v) = max_checks {
            g.settings.max_checks = v;
        }
        Ok(Outcome::Done)
    }

    pub(super) fn register_producer(
        &mut self,
        group: &str,
        instance: &str,
        check_url: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<Outcome, Rejection> {
        if ttl_ms <= 0 {
            return Err(Rejection::Invalid("ttl_ms must be positive".into()));
        }
        let g = self.producer_groups.entry(group.to_string()).or_default();
        g.instances.retain(|_, i| i.expires_ms > now);
        g.instances.insert(
            instance.to_string(),
            ProducerInstance {
                check_url: check_url.to_string(),
                expires_ms: now + ttl_ms,
            },
        );
        Ok(Outcome::Done)
    }

    /// `folded`: the DLQ's ranges from its first readable offset that are no longer inline, as
    /// the gateway read them from the index; they must start at that offset and stay below
    /// the inline ranges, or the re-drive is refused (and retried on a fresh state).
    pub(super) fn redrive(
        &mut self,
        group: &str,
        max: u32,
        folded: &[OffsetRange],
        now: i64,
    ) -> Result<Outcome, Rejection> {
        if !self.groups.contains_key(group) {
            return Err(Rejection::GroupNotFound(group.to_string()));
        }
        let dlq = dlq_topic(group);
        let Some(q) = self.topics.get(&dlq).and_then(|t| t.queues.first()) else {
            return Ok(Outcome::Redriven { moved: 0 });
        };
        let from = q.min_offset;
        let inline_from = q.first_inline();
        let mut to = q.next_offset.min(from + u64::from(max));
        if from < inline_from {
            // Offsets below the inline ranges come from `folded`, which must be contiguous
            // from `from`.
            let mut at = from;
            for r in folded {
                if r.base > at || r.base + u64::from(r.count) <= at {
                    break;
                }
                at = r.base + u64::from(r.count);
            }
            if at < to.min(inline_from) {
                if folded.is_empty() && q.index.first().is_none_or(|r| r.base > from) {
                    // Nothing held below the inline ranges: only archived dead letters.
                    to = to.min(inline_from);
                } else {
                    return Err(Rejection::Conflict(format!(
                        "{dlq}: the folded ranges given do not cover {from}..{}",
                        to.min(inline_from)
                    )));
                }
            }
        }
        let range_of = |o: u64| -> Option<OffsetRange> {
            if o < inline_from {
                single(folded, o)
            } else {
                q.locate(o)
                    .map(|(r, _)| single(std::slice::from_ref(r), o))?
            }
        };
        // (origin topic, queue, offset, the message's range in the DLQ).
        let origins: Vec<(String, u32, u64, OffsetRange)> = (from..to)
            .filter_map(|o| {
                let r = range_of(o)?;
                let (queue, offset) = r.origin?;
                Some((r.origin_topic.clone()?, queue, offset, r))
            })
            .collect();
        // Dead letters whose DLQ range retention dropped (they live on in the archive, without
        // their origin) or whose original topic is gone are passed over, and not counted.
        let mut moved = 0u32;
        for (topic, queue, offset, dlq_range) in origins {
            let dlq_offset = dlq_range.base;
            let Some(origin_inline_from) = self
                .topics
                .get(&topic)
                .and_then(|t| t.queues.get(queue as usize))
                .filter(|q| offset < q.next_offset)
                .map(|q| q.first_inline())
            else {
                continue;
            };
            // The origin's range may be folded: the DLQ's pointer names the same bytes.
            let located = (offset < origin_inline_from).then(|| {
                Box::new(OffsetRange {
                    base: offset,
                    origin_topic: None,
                    origin: None,
                    ..dlq_range
                })
            });
            let redriven = LedgerEvent::new(EventKind::Redriven, &topic)
                .at(queue, offset)
                .of_group(group, "")
                .detail(format!("from {dlq} offset {dlq_offset}"));
            if let Ok(c) = self.cursor_mut(group, "", &topic, queue) {
                c.done.remove(offset);
                c.leases.remove(&offset);
                c.retries.insert(
                    offset,
                    Retry {
                        attempts: 0,
                        visible_at_ms: now,
                        located,
                    },
                );
                moved += 1;
                self.record(redriven);
            }
        }
        if let Some(q) = self.topics.get_mut(&dlq).and_then(|t| t.queues.first_mut()) {
            q.min_offset = to;
            q.index.retain(|r| r.end > to);
            q.ranges.retain(|r| r.base + u64::from(r.count) > to);
        }
        Ok(Outcome::Redriven { moved })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::command::*;
    use crate::manifest::model::*;
    use crate::manifest::sim::Sim;

    /// A state with the delay topic `t` (one queue).
    fn sim() -> Sim {
        let mut s = Sim::new();
        s.one(Command::CreateTopic {
            topic: "t".into(),
            def: TopicDef {
                kind: TopicKind::Delay,
                queues: 1,
                retention_hours: 1,
            },
        });
        s
    }

    impl Sim {
        fn publish(
            &mut self,
            id: &str,
            ordinal: u32,
            dedup: Option<&str>,
            mode: PublishMode,
        ) -> Outcome {
            self.one(Command::PublishOne {
                topic: "t".into(),
                queue: 0,
                segment: "seg".into(),
                ordinal,
                publish_time_ms: self.now,
                message_id: id.into(),
                dedup_id: dedup.map(str::to_string),
                mode,
            })
        }
        fn next(&self) -> u64 {
            self.state.topics["t"].queues[0].next_offset
        }
    }

    #[test]
    fn a_delayed_message_is_stored_when_due_so_reset_to_a_time_finds_it() {
        let mut s = sim();
        s.publish(
            "late",
            0,
            None,
            PublishMode::Timer {
                deliver_at_ms: 5_000,
            },
        );
        s.now = 2_000;
        s.publish("early", 1, None, PublishMode::Visible);
        s.now = 5_000;
        s.one(Command::FireTimers);
        let q = &s.state.topics["t"].queues[0];
        assert_eq!(q.next_offset, 2);
        // Offset 1 was published at 1,000 but stored (made visible) at 5,000.
        assert_eq!(q.ranges[1].publish_time_ms, 1_000);
        assert_eq!(q.ranges[1].stored_ms(), 5_000);
        assert_eq!(q.offset_at_time(1_500), 0);
        assert_eq!(
            q.offset_at_time(3_000),
            1,
            "the delayed message is not skipped"
        );
        assert_eq!(q.offset_at_time(5_001), 2);
    }

    #[test]
    fn timers_fire_in_due_order_as_pointers_and_cancel_only_before() {
        let mut s = sim();
        s.publish(
            "b",
            1,
            None,
            PublishMode::Timer {
                deliver_at_ms: 3_000,
            },
        );
        s.publish(
            "a",
            0,
            None,
            PublishMode::Timer {
                deliver_at_ms: 2_000,
            },
        );
        s.publish(
            "c",
            2,
            None,
            PublishMode::Timer {
                deliver_at_ms: 9_000,
            },
        );
        assert_eq!(s.state.next_timer_due(), Some(2_000));
        s.now = 1_999;
        s.one(Command::FireTimers);
        assert_eq!(s.next(), 0);
        s.now = 3_000;
        s.one(Command::FireTimers);
        assert_eq!(s.next(), 2);
        let q = &s.state.topics["t"].queues[0];
        assert_eq!(
            q.locate(0).map(|(r, o)| (r.segment.as_str(), o)),
            Some(("seg", 0))
        );
        assert_eq!(q.locate(1).map(|(_, o)| o), Some(1));
        assert_eq!(q.ranges.len(), 1, "consecutive ordinals stay one range");
        let before = s.state.timers.clone();
        assert!(matches!(
            s.one(Command::CancelTimer {
                topic: "t".into(),
                message_id: "a".into(),
                spilled_in: None,
            }),
            Outcome::Rejected {
                rejection: Rejection::MessageNotFound(_)
            }
        ));
        assert_eq!(s.state.timers, before);
        assert_eq!(
            s.one(Command::CancelTimer {
                topic: "t".into(),
                message_id: "c".into(),
                spilled_in: None,
            }),
            Outcome::Done
        );
        s.now = 10_000;
        s.one(Command::FireTimers);
        assert_eq!(s.next(), 2, "a cancelled timer never fires");
    }

    #[test]
    fn a_repeated_dedup_id_answers_the_first_result_and_stores_nothing() {
        let mut s = sim();
        assert_eq!(
            s.publish("m1", 0, Some("d"), PublishMode::Visible),
            Outcome::Appended { base_offset: 0 }
        );
        let again = s.publish("m2", 1, Some("d"), PublishMode::Visible);
        assert!(
            matches!(&again, Outcome::Duplicate { first } if first.message_id == "m1" && first.offset == Some(0))
        );
        assert_eq!(s.next(), 1);
        s.now += DEDUP_WINDOW_MS + 1;
        assert_eq!(
            s.publish("m3", 2, Some("d"), PublishMode::Visible),
            Outcome::Appended { base_offset: 1 }
        );
    }

    #[test]
    fn pending_transactions_stop_at_their_bound_and_a_refused_half_changes_nothing() {
        let mut s = sim();
        let half = |tx: &str| PublishMode::Half {
            transaction_id: tx.into(),
            producer_group: "p".into(),
            check_immunity_ms: None,
        };
        s.publish("m0", 0, None, half("x0"));
        let pending = s.state.halves["x0"].clone();
        for i in 1..MAX_PENDING_TRANSACTIONS {
            s.state.halves.insert(format!("x{i}"), pending.clone());
        }
        let before = s.state.clone();
        let refused = s.publish("late", 1, Some("d"), half("late"));
        assert!(
            matches!(&refused, Outcome::Rejected { rejection: Rejection::Full(m) } if m.contains("pending")),
            "{refused:?}"
        );
        assert_eq!(s.state.halves, before.halves);
        assert_eq!(
            s.state.dedup, before.dedup,
            "a refused half keeps no dedup record"
        );
        // One decided makes room for one more.
        s.one(Command::Decide {
            transaction_id: "x1".into(),
            commit: false,
        });
        assert_eq!(s.publish("late", 1, Some("d"), half("late")), Outcome::Done);
    }

    #[test]
    fn transactions_commit_rollback_idempotent_and_checked_then_rolled_back() {
        let mut s = sim();
        s.one(Command::ConfigureProducerGroup {
            producer_group: "p".into(),
            check_immunity_ms: Some(100),
            check_interval_ms: Some(50),
            max_checks: Some(2),
        });
        let half = |tx: &str| PublishMode::Half {
            transaction_id: tx.into(),
            producer_group: "p".into(),
            check_immunity_ms: None,
        };
        s.publish("m1", 0, None, half("x1"));
        s.publish("m2", 1, None, half("x2"));
        s.publish("m3", 2, None, half("x3"));
        assert_eq!(s.next(), 0, "half messages are invisible");
        assert_eq!(
            s.one(Command::Decide {
                transaction_id: "x1".into(),
                commit: true
            }),
            Outcome::Decided { committed: true }
        );
        assert_eq!(s.next(), 1);
        assert_eq!(
            s.one(Command::Decide {
                transaction_id: "x1".into(),
                commit: true
            }),
            Outcome::Decided { committed: true }
        );
        assert!(matches!(
            s.one(Command::Decide {
                transaction_id: "x1".into(),
                commit: false
            }),
            Outcome::Rejected {
                rejection: Rejection::Conflict(_)
            }
        ));
        assert_eq!(
            s.one(Command::Decide {
                transaction_id: "x2".into(),
                commit: false
            }),
            Outcome::Decided { committed: false }
        );
        assert!(matches!(
            s.one(Command::Decide {
                transaction_id: "nope".into(),
                commit: true
            }),
            Outcome::Rejected {
                rejection: Rejection::TransactionNotFound(_)
            }
        ));
        assert_eq!(s.next(), 1);
        // x3: no check before the immunity, then two checks, then rolled back.
        assert_eq!(
            s.one(Command::CheckTransactions),
            Outcome::Checks { checks: vec![] }
        );
        s.now += 100;
        let Outcome::Checks { checks } = s.one(Command::CheckTransactions) else {
            panic!()
        };
        assert_eq!(checks.len(), 1);
        assert_eq!((checks[0].check_times, checks[0].webhook), (1, false));
        let Outcome::Checks { checks } = s.one(Command::ClaimChecks {
            producer_group: "p".into(),
            max: 10,
        }) else {
            panic!()
        };
        assert_eq!(checks.len(), 1, "a poller gets the unclaimed check");
        let Outcome::Checks { checks } = s.one(Command::ClaimChecks {
            producer_group: "p".into(),
            max: 10,
        }) else {
            panic!()
        };
        assert!(checks.is_empty(), "only once");
        s.now += 50;
        s.one(Command::CheckTransactions);
        s.now += 50;
        s.one(Command::CheckTransactions);
        assert!(s.state.halves.is_empty());
        assert!(matches!(
            s.one(Command::Decide {
                transaction_id: "x3".into(),
                commit: true
            }),
            Outcome::Rejected {
                rejection: Rejection::Conflict(_)
            }
        ));
        assert_eq!(s.next(), 1);
    }

    #[test]
    fn redrive_makes_dead_letters_visible_to_the_group_again() {
        let mut s = sim();
        s.publish("m1", 0, None, PublishMode::Visible);
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: GroupDef {
                subscriptions: vec![Subscription {
                    topic: "t".into(),
                    filter: None,
                    sql: None,
                }],
                mode: GroupMode::Clustering,
                start_from: StartFrom::Earliest,
                max_retries: 0,
                invisible_ms: 10,
                retry_backoff_ms: vec![0],
                push: None,
            },
            resolved: Default::default(),
        });
        let lease = |s: &mut Sim| {
            let candidates = s.state.candidates("g", "", s.now, 10);
            s.one(Command::Lease {
                group: "g".into(),
                consumer: String::new(),
                invisible_ms: 10,
                max: 10,
                candidates,
                skipped: vec![],
                message_groups: vec![],
                located: vec![],
                max_in_flight: None,
            })
        };
        assert!(matches!(lease(&mut s), Outcome::Leased { grants, .. } if grants.len() == 1));
        s.now += 20;
        s.one(Command::ExpireLeases);
        let dlq = &s.state.topics["DLQ.g"].queues[0];
        assert_eq!(dlq.next_offset, 1);
        assert!(matches!(lease(&mut s), Outcome::Leased { grants, .. } if grants.is_empty()));
        let redrive = |s: &mut Sim| {
            s.one(Command::Redrive {
                group: "g".into(),
                max: 100,
                folded: vec![],
            })
        };
        assert_eq!(redrive(&mut s), Outcome::Redriven { moved: 1 });
        assert_eq!(s.state.topics["DLQ.g"].queues[0].min_offset, 1);
        let Outcome::Leased { grants, .. } = lease(&mut s) else {
            panic!()
        };
        assert_eq!(grants.len(), 1);
        assert_eq!(
            grants[0].at,
            QueueOffset {
                topic: "t".into(),
                queue: 0,
                offset: 0
            }
        );
        assert_eq!(grants[0].attempt, 1, "attempts reset");
        // Dead-letter it again, then lose the DLQ range (as retention drops it after
        // archiving): a re-drive passes it over and does not count it.
        s.now += 20;
        s.one(Command::ExpireLeases);
        assert_eq!(s.state.topics["DLQ.g"].queues[0].next_offset, 2);
        if let Some(t) = s.state.topics.get_mut("DLQ.g") {
            t.queues[0].ranges.clear();
        }
        assert_eq!(redrive(&mut s), Outcome::Redriven { moved: 0 });
        assert_eq!(s.state.topics["DLQ.g"].queues[0].min_offset, 2);
    }
}
