//! Delivering messages of clustering and broadcast groups: leases granted at apply (with the
//! in-flight and push caps), settles (ack, nack, extend), dead letters, expired leases, and the
//! candidates a receive asks to lease.

use std::collections::BTreeSet;

use crate::manifest::command::SettleAction;
use crate::manifest::model::{
    Cursor, EventKind, Grant, GroupMode, Lease, LedgerEvent, OffsetRange, Outcome, PUSH_CONSUMER,
    PushProgress, QueueOffset, Rejection, Retry, State, dlq_topic,
};

impl State {
    #[allow(clippy::type_complexity)]
    pub(super) fn lease(
        &mut self,
        group: &str,
        consumer: &str,
        (invisible_ms, max, cap): (i64, u32, u32),
        (candidates, message_groups, located): (
            &[QueueOffset],
            &[Option<String>],
            &[Option<OffsetRange>],
        ),
        skipped: &[QueueOffset],
        now: i64,
    ) -> Result<Outcome, Rejection> {
        let def = self
            .groups
            .get(group)
            .ok_or_else(|| Rejection::GroupNotFound(group.to_string()))?
            .def
            .clone();
        if invisible_ms <= 0 {
            return Err(Rejection::Invalid("invisible_ms must be positive".into()));
        }
        // A push group's messages go to its pushers only, a pull group's to receives only,
        // as of this version: a lease asked for before the group switched grants nothing.
        if (consumer == PUSH_CONSUMER) != def.push.is_some() {
            return Err(Rejection::Conflict(if def.push.is_some() {
                format!("group {group} is a push group")
            } else {
                format!("group {group} is not a push group")
            }));
        }
        let version = self.version;
        for at in skipped {
            let Some(next) = self
                .topics
                .get(&at.topic)
                .and_then(|t| t.queues.get(at.queue as usize))
                .map(|q| q.next_offset)
            else {
                continue;
            };
            let Ok(c) = self.cursor_mut(group, consumer, &at.topic, at.queue) else {
                continue;
            };
            if at.offset < next
                && c.availability(at.offset, now, &def)
                    .is_some_and(|(attempt, _)| attempt == 1)
            {
                c.mark_done(at.offset);
            }
        }
        let mut grants = Vec::new();
        let mut dead = Vec::new();
        let mut events = Vec::new();
        let mut in_flight = self.in_flight(group);
        let mut capped = false;
        // A push group's `max_in_flight` bounds its leases (pushes outstanding) across all
        // gateways, and its `rate_per_s` the leases granted per second.
        let (mut max, mut leased) = (max as usize, 0usize);
        let push_cap = match &def.push {
            Some(p) => {
                leased = self.leased(group);
                let allowed = self
                    .groups
                    .get_mut(group)
                    .map(|g| g.push.get_or_insert_with(PushProgress::default))
                    .map_or(u32::MAX, |progress| progress.refill(p.rate_per_s, now));
                // Out of tokens: say so (capped) rather than grant nothing silently, so that
                // the pusher waits instead of asking again at once.
                capped |= allowed == 0;
                max = max.min(allowed as usize);
                p.max_in_flight as usize
            }
            None => usize::MAX,
        };
        for (i, at) in candidates.iter().enumerate() {
            if grants.len() >= max {
                break;
            }
            let message_group = message_groups.get(i).and_then(Option::as_ref);
            let Some((next, held_from, inline_from)) = self
                .topics
                .get(&at.topic)
                .and_then(|t| t.queues.get(at.queue as usize))
                .map(|q| (q.next_offset, q.first_held(), q.first_inline()))
            else {
                continue;
            };
            if at.offset >= next {
                continue;
            }
            // A folded offset must come with its range (or have it from an earlier lease).
            let given = located
                .get(i)
                .and_then(Option::as_ref)
                .filter(|r| r.base == at.offset && r.count == 1);
            let Ok(c) = self.cursor_mut(group, consumer, &at.topic, at.queue) else {
                continue;
            };
            if let Some(mg) = message_group {
                if c.fifo_inflight.get(mg).is_some_and(|&o| o != at.offset) {
                    continue;
                }
            }
            // Offsets only archived (below every run) have no segment pointer to keep.
            let kept = c.located(at.offset).cloned();
            let folded = at.offset >= held_from && at.offset < inline_from;
            if folded && kept.is_none() && given.is_none() {
                continue;
            }
            let fresh = !c.leases.contains_key(&at.offset) && !c.retries.contains_key(&at.offset);
            // A lease that ran out unacknowledged is on record from its deadline.
            let expired = |c: &Cursor| {
                c.leases
                    .get(&at.offset)
                    .filter(|l| l.deadline_ms <= now)
                    .map(|l| {
                        LedgerEvent::new(EventKind::LeaseExpired, &at.topic)
                            .at(at.queue, at.offset)
                            .of_group(group, "")
                            .attempt(l.attempt)
                            .time(l.deadline_ms)
                    })
            };
            match c.availability(at.offset, now, &def) {
                None => {}
                Some((_, true)) => {
                    events.extend(expired(c));
                    dead.push(at.clone());
                }
                Some((_, false)) if fresh && in_flight >= cap as usize => capped = true,
                Some((_, false)) if !c.leases.contains_key(&at.offset) && leased >= push_cap => {
                    capped = true;
                }
                Some((attempt, false)) => {
                    leased += usize::from(!c.leases.contains_key(&at.offset));
                    events.extend(expired(c));
                    // A push delivery names the endpoint as its consumer.
                    let shown = def.push.as_ref().map_or(consumer, |p| p.url.as_str());
                    events.push(
                        LedgerEvent::new(EventKind::Delivered, &at.topic)
                            .at(at.queue, at.offset)
                            .of_group(group, shown)
                            .attempt(attempt),
                    );
                    if let Some(mg) = message_group {
                        c.fifo_inflight.insert(mg.clone(), at.offset);
                    }
                    c.retries.remove(&at.offset);
                    in_flight += usize::from(fresh);
                    let located = folded
                        .then(|| kept.or_else(|| given.cloned()).map(Box::new))
                        .flatten();
                    c.leases.insert(
                        at.offset,
                        Lease {
                            attempt,
                            version,
                            deadline_ms: now + invisible_ms,
                            located,
                        },
                    );
                    grants.push(Grant {
                        at: at.clone(),
                        attempt,
                    });
                }
            }
        }
        if def.push.as_ref().is_some_and(|p| p.rate_per_s > 0) {
            if let Some(p) = self.groups.get_mut(group).and_then(|g| g.push.as_mut()) {
                p.tokens_milli = p.tokens_milli.saturating_sub(grants.len() as u64 * 1000);
            }
        }
        for e in events {
            self.record(e);
        }
        for at in dead {
            self.dead_letter(group, &at, now);
        }
        Ok(Outcome::Leased {
            version,
            grants,
            capped,
        })
    }

    pub(super) fn settle(
        &mut self,
        group: &str,
        consumer: &str,
        at: &QueueOffset,
        lease_version: u64,
        action: SettleAction,
        now: i64,
    ) -> Result<Outcome, Rejection> {
        let (mode, max_deliveries) = self
            .groups
            .get(group)
            .map(|g| (g.def.mode, g.def.max_deliveries()))
            .ok_or_else(|| Rejection::GroupNotFound(group.to_string()))?;
        let version = self.version;
        let c = self.cursor_mut(group, consumer, &at.topic, at.queue)?;
        if c.is_done(at.offset) {
            return match action {
                SettleAction::Ack => Ok(Outcome::Settled { lease_version }),
                _ => Err(Rejection::ReceiptExpired),
            };
        }
        let lease = match c.leases.get(&at.offset) {
            Some(l) if l.version == lease_version && l.deadline_ms > now => l.clone(),
            _ => return Err(Rejection::ReceiptExpired),
        };
        let event = |kind| {
            LedgerEvent::new(kind, &at.topic)
                .at(at.queue, at.offset)
                .of_group(group, consumer)
                .attempt(lease.attempt)
        };
        match action {
            SettleAction::Ack => {
                c.mark_done(at.offset);
                self.record(event(EventKind::Acked));
                Ok(Outcome::Settled { lease_version })
            }
            SettleAction::Nack { delay_ms } => {
                let last = mode == GroupMode::Clustering && lease.attempt >= max_deliveries;
                self.record(event(EventKind::Nacked).detail(if last {
                    "no delivery left".to_string()
                } else {
                    format!("redelivery in {} ms", delay_ms.max(0))
                }));
                if last {
                    // The lease still holds the range of a folded offset: the move needs it.
                    self.dead_letter(group, at, now);
                } else {
                    let c = self.cursor_mut(group, consumer, &at.topic, at.queue)?;
                    c.leases.remove(&at.offset);
                    c.retries.insert(
                        at.offset,
                        Retry {
                            attempts: lease.attempt,
                            visible_at_ms: now + delay_ms.max(0),
                            located: lease.located,
                        },
                    );
                }
                Ok(Outcome::Settled { lease_version })
            }
            SettleAction::Extend { invisible_ms } => {
                if invisible_ms <= 0 {
                    return Err(Rejection::Invalid("invisible_ms must be positive".into()));
                }
                let c = self.cursor_mut(group, consumer, &at.topic, at.queue)?;
                c.leases.insert(
                    at.offset,
                    Lease {
                        attempt: lease.attempt,
                        version,
                        deadline_ms: now + invisible_ms,
                        located: lease.located,
                    },
                );
                Ok(Outcome::Settled {
                    lease_version: version,
                })
            }
        }
    }

    /// Moves a message to its group's dead-letter topic (a pointer to the same bytes) and marks
    /// it consumed for the group.
    fn dead_letter(&mut self, group: &str, at: &QueueOffset, now: i64) {
        let inline = self
            .topics
            .get(&at.topic)
            .and_then(|t| t.queues.get(at.queue as usize))
            .and_then(|q| q.locate(at.offset))
            .map(|(r, o)| (r.clone(), o));
        let kept = || {
            let g = self.groups.get(group)?;
            let c = g.cursors.get("")?.get(&at.topic)?.get(at.queue as usize)?;
            c.located(at.offset).map(|r| (r.clone(), r.first_ordinal))
        };
        let dead = LedgerEvent::new(EventKind::DeadLettered, &at.topic)
            .at(at.queue, at.offset)
            .of_group(group, "");
        let Some((range, ordinal)) = inline.or_else(kept) else {
            // Only in the archive (retention dropped its range): nothing to point the dead
            // letter at; it is consumed rather than redelivered for ever.
            if let Ok(c) = self.cursor_mut(group, "", &at.topic, at.queue) {
                c.mark_done(at.offset);
            }
            self.record(dead.detail("only archived: consumed, not moved"));
            return;
        };
        let dlq = dlq_topic(group);
        let mut moved_to = None;
        if let Some(q) = self.topics.get_mut(&dlq).and_then(|t| t.queues.get_mut(0)) {
            moved_to = Some(q.next_offset);
            let segment = range.segment;
            if let Some(queues) = self.packable.get_mut(&segment) {
                queues.insert((dlq.clone(), 0));
            }
            q.append(OffsetRange {
                base: 0,
                count: 1,
                segment,
                first_ordinal: ordinal,
                publish_time_ms: range.publish_time_ms,
                appended_ms: Some(now),
                origin: match &range.origin_topic {
                    Some(_) => range.origin.map(|(q, o)| (q, o + (at.offset - range.base))),
                    None => Some((at.queue, at.offset)),
                },
                origin_topic: Some(range.origin_topic.unwrap_or_else(|| at.topic.clone())),
            });
        }
        if let Ok(c) = self.cursor_mut(group, "", &at.topic, at.queue) {
            c.mark_done(at.offset);
        }
        match moved_to {
            Some(o) => {
                self.record(dead.detail(format!("{dlq} queue 0 offset {o}")));
                self.record(
                    LedgerEvent::new(EventKind::Published, &dlq)
                        .at(0, o)
                        .of_group(group, "")
                        .detail(format!(
                            "dead letter of {} queue {} offset {}",
                            at.topic, at.queue, at.offset
                        )),
                );
            }
            None => self.record(dead.detail(format!("{dlq} is missing: consumed, not moved"))),
        }
    }

    /// Messages whose last allowed lease has expired, per clustering group.
    pub fn exhausted_leases(&self, now: i64) -> Vec<(String, QueueOffset)> {
        let mut out = Vec::new();
        for (name, g) in &self.groups {
            if g.def.mode != GroupMode::Clustering {
                continue;
            }
            for (topic, cursors) in g.cursors.get("").into_iter().flatten() {
                for (queue, c) in cursors.iter().enumerate() {
                    for (&offset, lease) in &c.leases {
                        if lease.deadline_ms <= now && lease.attempt >= g.def.max_deliveries() {
                            out.push((
                                name.clone(),
                                QueueOffset {
                                    topic: topic.clone(),
                                    queue: queue as u32,
                                    offset,
                                },
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    pub(super) fn expire_leases(&mut self, now: i64) {
        for (group, at) in self.exhausted_leases(now) {
            let lease = self
                .cursor(&group, "", &at.topic, at.queue)
                .and_then(|c| c.leases.get(&at.offset).map(|l| (l.attempt, l.deadline_ms)));
            if let Some((attempt, deadline)) = lease {
                self.record(
                    LedgerEvent::new(EventKind::LeaseExpired, &at.topic)
                        .at(at.queue, at.offset)
                        .of_group(&group, "")
                        .attempt(attempt)
                        .time(deadline),
                );
            }
            self.dead_letter(&group, &at, now);
        }
    }

    /// Offsets a receive could lease now for `consumer` of `group`, oldest first per queue and
    /// interleaved across queues, at most `limit`. Apply re-checks each one.
    pub fn candidates(
        &self,
        group: &str,
        consumer: &str,
        now: i64,
        limit: usize,
    ) -> Vec<QueueOffset> {
        self.candidates_looking_ahead(
            group,
            consumer,
            now,
            limit,
            |_| None,
            |_, _| true,
            |_, _| None,
        )
    }

    /// [`State::candidates`], except that the queues of a topic for which `ahead` answers
    /// `Some(n)` give up to `n` candidates each, outside the shared `limit` (FIFO topics: a
    /// receive looks past message groups that have one in flight, in every queue). The
    /// offsets in `skip(topic, queue)` are passed over (a gateway's own receives in flight
    /// claim theirs, so that concurrent receives do not all ask for the same offsets).
    ///
    /// Each queue is scanned once from its committed offset, stepping over acked, leased,
    /// retrying and skipped offsets with ordered iterators (no lookup per offset): with
    /// hundreds of messages in flight per queue a receive walks past all of them.
    #[allow(clippy::too_many_arguments)] // each closure is one question the caller answers
    pub fn candidates_looking_ahead<'c>(
        &self,
        group: &str,
        consumer: &str,
        now: i64,
        limit: usize,
        ahead: impl Fn(&str) -> Option<usize>,
        queues: impl Fn(&str, u32) -> bool,
        skip: impl Fn(&str, u32) -> Option<&'c BTreeSet<u64>>,
    ) -> Vec<QueueOffset> {
        let Some(g) = self.groups.get(group) else {
            return Vec::new();
        };
        // Each queue's candidates, and whether they count against `limit`.
        let mut per_queue: Vec<(Vec<QueueOffset>, bool)> = Vec::new();
        for s in &g.def.subscriptions {
            let Some(t) = self.topics.get(&s.topic) else {
                continue;
            };
            let wide = ahead(&s.topic);
            let limit = wide.unwrap_or(limit);
            for (qi, q) in t.queues.iter().enumerate() {
                if !queues(&s.topic, qi as u32) {
                    continue;
                }
                let Some(c) = self.cursor(group, consumer, &s.topic, qi as u32) else {
                    continue;
                };
                let mut found = Vec::new();
                let skipped = skip(&s.topic, qi as u32);
                let is_skipped = |o: u64| skipped.is_some_and(|set| set.contains(&o));
                // Only expired leases and due retries can be available (a scan without
                // allocating per lease: most of them are not).
                let mut pending: Vec<u64> = c
                    .leases
                    .iter()
                    .filter(|(_, l)| l.deadline_ms <= now)
                    .map(|(&o, _)| o)
                    .chain(
                        c.retries
                            .iter()
                            .filter(|(_, r)| r.visible_at_ms <= now)
                            .map(|(&o, _)| o),
                    )
                    .collect();
                pending.sort_unstable();
                for offset in pending {
                    if found.len() >= limit {
                        break;
                    }
                    if c.availability(offset, now, &g.def).is_some() && !is_skipped(offset) {
                        found.push(offset);
                    }
                }
                let mut offset = c.committed.max(q.min_offset);
                // Leased, retrying and skipped offsets from here on, in order: each is passed
                // once as the scan moves past it.
                let mut leased = c.leases.range(offset..).map(|(&o, _)| o).peekable();
                let mut retrying = c.retries.range(offset..).map(|(&o, _)| o).peekable();
                let mut claimed = skipped
                    .map(|set| set.range(offset..).copied())
                    .into_iter()
                    .flatten()
                    .peekable();
                while found.len() < limit && offset < q.next_offset {
                    offset = c.done.next_absent(offset);
                    if offset >= q.next_offset {
                        break;
                    }
                    let busy = holds(&mut leased, offset)
                        || holds(&mut retrying, offset)
                        || holds(&mut claimed, offset);
                    if !busy {
                        found.push(offset);
                    }
                    offset += 1;
                }
                found.sort_unstable();
                per_queue.push((
                    found
                        .into_iter()
                        .map(|offset| QueueOffset {
                            topic: s.topic.clone(),
                            queue: qi as u32,
                            offset,
                        })
                        .collect(),
                    wide.is_none(),
                ));
            }
        }
        let mut out = Vec::new();
        let mut shared = 0;
        let mut i = 0;
        while per_queue.iter().any(|(v, _)| i < v.len()) {
            for (v, counted) in &per_queue {
                if *counted && shared >= limit {
                    continue;
                }
                if let Some(x) = v.get(i) {
                    out.push(x.clone());
                    shared += usize::from(*counted);
                }
            }
            i += 1;
        }
        out
    }
}

/// Whether the ordered offsets of `it` hold `offset`, passing those below it (the scan that
/// asks moves forward only).
fn holds(it: &mut std::iter::Peekable<impl Iterator<Item = u64>>, offset: u64) -> bool {
    while it.next_if(|&o| o < offset).is_some() {}
    it.peek() == Some(&offset)
}
