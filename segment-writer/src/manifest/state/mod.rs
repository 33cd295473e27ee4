//! The behaviour of the manifest state: its deterministic [`State::apply`] and the queries the
//! gateways make of it. The data is in `manifest::model`; this module and its children hold
//! every `impl State`, by area:
//!
//! - here: [`State::apply`], requests' idempotency, and the dispatch of each [`Command`];
//! - [`topics`]: creating topics, and the ranges that name packable inline segments;
//! - [`groups`]: creating groups, and finding or starting their cursors;
//! - [`delivery`]: leases, settles, dead letters and the candidates of a receive;
//! - [`messaging`]: timers, half messages, producer groups, dedup and re-drive;
//! - [`timers`]: spilling timers due far ahead, and loading them back;
//! - [`index`]: planning folds and merges of offset ranges into index objects, installing runs;
//! - [`archive`]: the archive catalogue, retention of offset ranges, the compactor lease;
//! - [`ledger`]: recording delivery-ledger events.
//!
//! Everything here is a function of the deltas applied: times come from [`Delta::time_ms`],
//! offsets are assigned in apply order, leases are granted only if still free when applied.
//! Nothing here does I/O: objects (index runs, timer spills) are read and written by
//! `manifest::index` and `manifest::timers`, and a command carries what apply needs of them.

use std::collections::BTreeSet;

use crate::manifest::command::{
    Command, Delta, Entry, RequestId, ResetTarget, ResolvedOffset, SettleAction,
};
use crate::manifest::model::{
    Cursor, DEFAULT_MAX_IN_FLIGHT, EventKind, GroupMode, LedgerEvent, OffsetRange, Outcome,
    Pending, PushProgress, QueueLog, QueueOffset, REQUEST_WINDOW_MS, REQUESTS_PER_ORIGIN,
    RecordedRequest, Rejection, SequencerInfo, State,
};

pub mod archive;
pub mod delivery;
pub mod groups;
pub mod index;
pub mod ledger;
pub mod messaging;
pub mod timers;
pub mod topics;

#[cfg(test)]
mod tests;

/// Why a delta cannot be applied to this state (the log is damaged or skipped a version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delta version {got} cannot follow state version {have}")]
pub struct VersionGap {
    pub have: u64,
    pub got: u64,
}

impl State {
    /// Whether `delta` was written to follow another delta than this state's head: then it
    /// takes its version and changes nothing else.
    pub fn is_orphan(&self, delta: &Delta) -> bool {
        delta
            .parent
            .as_ref()
            .is_some_and(|p| self.head.as_ref() != Some(p))
    }

    /// Applies one delta; returns each entry's outcomes (one per command). An orphan
    /// ([`State::is_orphan`]) only advances the version and answers no outcomes (an empty list
    /// per entry): its commands were never applied, and its writer retries them.
    pub fn apply(&mut self, delta: &Delta) -> Result<Vec<Vec<Outcome>>, VersionGap> {
        if delta.version != self.version + 1 {
            return Err(VersionGap {
                have: self.version,
                got: delta.version,
            });
        }
        self.version = delta.version;
        if self.is_orphan(delta) {
            return Ok(vec![Vec::new(); delta.entries.len()]);
        }
        self.head = Some(delta.id());
        self.time_ms = self.time_ms.max(delta.time_ms);
        let now = self.time_ms;
        self.prune_requests(now);
        self.sweep_windows(now);
        let mut out = Vec::with_capacity(delta.entries.len());
        for entry in &delta.entries {
            self.ledger.origin = Some(
                entry
                    .request
                    .as_ref()
                    .map_or(&delta.writer, |r| &r.origin)
                    .clone(),
            );
            out.push(self.apply_entry(entry, now));
        }
        self.ledger.origin = None;
        Ok(out)
    }

    fn apply_entry(&mut self, entry: &Entry, now: i64) -> Vec<Outcome> {
        if let Some(RequestId { origin, seq }) = &entry.request {
            if let Some(done) = self.requests.get(origin).and_then(|m| m.get(seq)) {
                return done.outcomes.clone();
            }
        }
        let outcomes: Vec<Outcome> = entry
            .commands
            .iter()
            .map(|c| self.apply_command(c, now))
            .collect();
        if let Some(RequestId { origin, seq }) = &entry.request {
            self.requests.entry(origin.clone()).or_default().insert(
                *seq,
                RecordedRequest {
                    time_ms: now,
                    outcomes: outcomes.clone(),
                },
            );
        }
        outcomes
    }

    fn prune_requests(&mut self, now: i64) {
        for m in self.requests.values_mut() {
            m.retain(|_, r| now - r.time_ms <= REQUEST_WINDOW_MS);
            while m.len() > REQUESTS_PER_ORIGIN {
                m.pop_first();
            }
        }
        self.requests.retain(|_, m| !m.is_empty());
    }

    fn apply_command(&mut self, command: &Command, now: i64) -> Outcome {
        match self.try_apply(command, now) {
            Ok(o) => o,
            Err(r) => Outcome::rejected(r),
        }
    }

    fn try_apply(&mut self, command: &Command, now: i64) -> Result<Outcome, Rejection> {
        match command {
            Command::CreateTopic { topic, def } => self.create_topic(topic, def),
            Command::DeleteTopic { topic } => {
                self.topics
                    .remove(topic)
                    .ok_or_else(|| Rejection::TopicNotFound(topic.clone()))?;
                self.detach_archive(topic);
                for g in self.groups.values_mut() {
                    for per_topic in g.cursors.values_mut() {
                        per_topic.remove(topic);
                    }
                }
                Ok(Outcome::Done)
            }
            Command::Append {
                topic,
                queue,
                segment,
                first_ordinal,
                count,
                publish_time_ms,
            } => {
                let t = self
                    .topics
                    .get_mut(topic)
                    .ok_or_else(|| Rejection::TopicNotFound(topic.clone()))?;
                let q = t.queues.get_mut(*queue as usize).ok_or_else(|| {
                    Rejection::Invalid(format!("topic {topic} has no queue {queue}"))
                })?;
                if *count == 0 {
                    return Err(Rejection::Invalid("empty append".into()));
                }
                let base = q.append(OffsetRange {
                    base: 0,
                    count: *count,
                    segment: segment.clone(),
                    first_ordinal: *first_ordinal,
                    publish_time_ms: *publish_time_ms,
                    origin_topic: None,
                    origin: None,
                    appended_ms: None,
                });
                self.note_packable_ref(segment, topic, *queue);
                self.record(LedgerEvent {
                    count: *count,
                    ..LedgerEvent::new(EventKind::Published, topic).at(*queue, base)
                });
                Ok(Outcome::Appended { base_offset: base })
            }
            Command::CreateGroup {
                group,
                def,
                resolved,
            } => self.create_group(group, def, resolved),
            Command::DeleteGroup { group } => {
                self.groups
                    .remove(group)
                    .ok_or_else(|| Rejection::GroupNotFound(group.clone()))?;
                Ok(Outcome::Done)
            }
            Command::Lease {
                group,
                consumer,
                invisible_ms,
                max,
                candidates,
                skipped,
                message_groups,
                located,
                max_in_flight,
            } => self.lease(
                group,
                consumer,
                (
                    *invisible_ms,
                    *max,
                    max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
                ),
                (candidates, message_groups, located),
                skipped,
                now,
            ),
            Command::Settle {
                group,
                consumer,
                at,
                lease_version,
                action,
            } => self.settle(group, consumer, at, *lease_version, *action, now),
            Command::PushReport {
                group,
                gateway,
                delivered,
                failed,
                last_error,
                paused_until_ms,
            } => {
                let g = self
                    .groups
                    .get_mut(group)
                    .ok_or_else(|| Rejection::GroupNotFound(group.clone()))?;
                // A report after the group turned to pull is dropped.
                if let Some(p) = g.push.as_mut() {
                    p.pushers
                        .retain(|_, t| *t > now - PushProgress::PUSHER_TTL_MS);
                    if !gateway.is_empty() {
                        p.pushers.insert(gateway.clone(), now);
                    }
                    p.delivered_total = p.delivered_total.saturating_add(*delivered);
                    p.failed_total = p.failed_total.saturating_add(*failed);
                    if let Some(e) = last_error {
                        let mut end = e.len().min(PushProgress::MAX_ERROR_BYTES);
                        while !e.is_char_boundary(end) {
                            end -= 1;
                        }
                        p.last_error = Some(e[..end].to_string());
                        p.last_error_time_ms = Some(now);
                    }
                    if let Some(until) = paused_until_ms {
                        p.paused_until_ms = p.paused_until_ms.max(Some(*until));
                    }
                }
                Ok(Outcome::Done)
            }
            Command::SettleMany {
                group,
                consumer,
                topic,
                queue,
                lease_version,
                action,
                offsets,
            } => {
                // Everything that would refuse the whole command is checked before anything
                // changes; past this, an offset is settled or expired on its own.
                self.cursor_mut(group, consumer, topic, *queue)?;
                if matches!(action, SettleAction::Extend { invisible_ms } if *invisible_ms <= 0) {
                    return Err(Rejection::Invalid("invisible_ms must be positive".into()));
                }
                let mut at = QueueOffset {
                    topic: topic.clone(),
                    queue: *queue,
                    offset: 0,
                };
                let mut expired = Vec::new();
                let mut version = *lease_version;
                for &offset in offsets {
                    at.offset = offset;
                    match self.settle(group, consumer, &at, *lease_version, *action, now) {
                        Ok(Outcome::Settled { lease_version }) => version = lease_version,
                        Ok(_) | Err(Rejection::ReceiptExpired) => expired.push(offset),
                        Err(e) => return Err(e),
                    }
                }
                Ok(Outcome::SettledMany {
                    lease_version: version,
                    expired,
                })
            }
            Command::ResetOffsets {
                group,
                topic,
                to,
                resolved,
            } => {
                let t = self
                    .topics
                    .get(topic)
                    .ok_or_else(|| Rejection::TopicNotFound(topic.clone()))?;
                let targets: Vec<u64> = t
                    .queues
                    .iter()
                    .enumerate()
                    .map(|(qi, q)| match to {
                        ResetTarget::Earliest => q.min_offset,
                        ResetTarget::Latest => q.next_offset,
                        ResetTarget::Timestamp(ts) => offset_at_time_resolved(q, qi, *ts, resolved),
                    })
                    .collect();
                let g = self
                    .groups
                    .get_mut(group)
                    .ok_or_else(|| Rejection::GroupNotFound(group.clone()))?;
                if !g.def.subscriptions.iter().any(|s| &s.topic == topic) {
                    return Err(Rejection::Invalid(format!(
                        "group {group} does not subscribe to {topic}"
                    )));
                }
                let consumers: Vec<String> = match g.def.mode {
                    GroupMode::Clustering => vec![String::new()],
                    GroupMode::Broadcast => g.cursors.keys().cloned().collect(),
                };
                for c in consumers {
                    let cursors = targets.iter().map(|&o| Cursor::at(o)).collect();
                    g.cursors
                        .entry(c)
                        .or_default()
                        .insert(topic.clone(), cursors);
                }
                Ok(Outcome::Done)
            }
            Command::ExpireLeases => {
                self.expire_leases(now);
                Ok(Outcome::Done)
            }
            Command::PublishOne {
                topic,
                queue,
                segment,
                ordinal,
                publish_time_ms,
                message_id,
                dedup_id,
                mode,
            } => self.publish_one(
                Pending {
                    topic: topic.clone(),
                    queue: *queue,
                    segment: segment.clone(),
                    ordinal: *ordinal,
                    publish_time_ms: *publish_time_ms,
                    message_id: message_id.clone(),
                },
                dedup_id.as_deref(),
                mode,
                now,
            ),
            Command::InlineSegment {
                segment, packable, ..
            } => {
                if segment.is_empty() {
                    return Err(Rejection::Invalid("an inline segment needs a name".into()));
                }
                self.inline_segments.insert(segment.clone(), self.version);
                if *packable {
                    self.packable.insert(segment.clone(), BTreeSet::new());
                }
                Ok(Outcome::Done)
            }
            Command::Materialized { segments } => {
                for s in segments {
                    self.inline_segments.remove(s);
                    self.packable.remove(s);
                }
                Ok(Outcome::Done)
            }
            Command::Packed { pack, parts } => {
                if pack.is_empty() {
                    return Err(Rejection::Invalid("a pack needs a name".into()));
                }
                for part in parts {
                    self.pack_part(pack, part);
                }
                Ok(Outcome::Done)
            }
            Command::FireTimers => {
                self.fire_timers(now);
                Ok(Outcome::Done)
            }
            Command::CancelTimer {
                topic,
                message_id,
                spilled_in,
            } => self.cancel_timer(topic, message_id, spilled_in.as_deref()),
            Command::SpillTimers { object, spill } => self.spill_timers(object, spill),
            Command::LoadTimers { object, timers } => self.load_timers(object, timers),
            Command::Decide {
                transaction_id,
                commit,
            } => self.decide(transaction_id, *commit, now),
            Command::CheckTransactions => Ok(self.check_transactions(now)),
            Command::ClaimChecks {
                producer_group,
                max,
            } => Ok(self.claim_checks(producer_group, *max)),
            Command::ConfigureProducerGroup {
                producer_group,
                check_immunity_ms,
                check_interval_ms,
                max_checks,
            } => self.configure_producer_group(
                producer_group,
                *check_immunity_ms,
                *check_interval_ms,
                *max_checks,
            ),
            Command::RegisterProducer {
                producer_group,
                instance,
                check_url,
                ttl_ms,
            } => self.register_producer(producer_group, instance, check_url, *ttl_ms, now),
            Command::Redrive { group, max, folded } => self.redrive(group, *max, folded, now),
            Command::FoldIndex { runs, .. } => self.apply_index(runs),
            Command::LedgerFlushed { through_seq, .. } => {
                self.ledger.flushed(*through_seq);
                Ok(Outcome::Done)
            }
            Command::Sequencer {
                gateway,
                address,
                epoch,
            } => {
                let current = self.sequencer.as_ref().map_or(0, |s| s.epoch);
                if *epoch <= current {
                    return Err(Rejection::StaleEpoch {
                        claimed: *epoch,
                        current,
                    });
                }
                self.sequencer = Some(SequencerInfo {
                    gateway: gateway.clone(),
                    address: address.clone(),
                    epoch: *epoch,
                    since_version: self.version,
                });
                Ok(Outcome::Done)
            }
            Command::ArchiveFile { .. }
            | Command::DropRanges { .. }
            | Command::CompactorLease { .. }
            | Command::ReleaseCompactorLease { .. }
            | Command::ExpireArchive { .. }
            | Command::FoldCatalogue { .. }
            | Command::ExpireCatalogueRun { .. } => self.apply_archive(command, now),
        }
    }
}

/// The first offset of queue `qi` stored at or after `time_ms`: exact while the offsets there
/// are listed; inside a folded index run, the offset the gateway read from the run's object
/// (`resolved`, a [`ResolvedOffset`] of that queue) if the run is still the one the time falls
/// in, else the run's start (apply cannot read objects).
fn offset_at_time_resolved(
    q: &QueueLog,
    qi: usize,
    time_ms: i64,
    resolved: &[ResolvedOffset],
) -> u64 {
    let hint = resolved.iter().find(|r| r.queue as usize == qi);
    match (q.run_at_time(time_ms), hint) {
        (Some(run), Some(h))
            if h.run_object == run.object
                && h.run_base == run.base
                && (run.base..run.end).contains(&h.offset) =>
        {
            h.offset.max(q.min_offset)
        }
        _ => q.offset_at_time(time_ms),
    }
}
