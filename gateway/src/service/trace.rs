//! `GET /v1/topics/{topic}/messages/{id}/trace`: a message's life from the delivery ledger.
//!
//! Events name a message by id (delayed, transactional and single-message publishes, and the
//! moves that make those visible) or by position (queue and offset: batch publishes,
//! deliveries, acks, nacks, expiries, dead letters, re-drives), so a trace first finds the
//! message's position: by a lookup of the visible message, else from its events that carry
//! both. The events come from two places: the ledger objects of the topic in the bucket,
//! listed by hour from the message's publish time (its id is a ULID) to now and bounded by the
//! topic's retention, and the events still pending in this gateway's copy of the manifest state
//! (not yet flushed by the sequencer), after catching up with the log (on a follower, one tail
//! round), so that a trace follows everything committed before it was asked. One row per
//! `seq`; in time order.
//!
//! Cost: one LIST per hour of the message's life so far, and one GET per ledger object of those
//! hours (a few per hour at the default flush interval, more under load); the objects are read
//! in parallel.

use segment_writer::manifest::LedgerEvent;

use super::error::Missing;
use super::lookup::{find_message, ulid_time};
use super::{AppState, Error, Result, refresh_unless};
use crate::wire::{Trace, TraceEvent};

/// How long a follower waits to have applied everything committed before a trace.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(5);

const HOUR_MS: i64 = 3_600_000;

/// Hours of ledger objects a trace reads at most (one LIST each): a month from the message's
/// publish (or the retention's start). Events of a message delivered again after that are
/// left out of its trace (still in the ledger for SQL).
const MAX_HOURS: usize = 31 * 24;

/// Hours listed before the message's publish hour and after now (clock skew between gateways).
const SKEW_MS: i64 = 3_600_000;

fn wire(e: LedgerEvent) -> TraceEvent {
    TraceEvent {
        time_ms: e.time_ms,
        event: e.event.as_str().to_string(),
        group: e.group,
        consumer: e.consumer,
        attempt: e.attempt,
        gateway: e.gateway,
        detail: e.detail,
    }
}

/// The events of `message_id` in `topic`, oldest first.
pub async fn trace(st: &AppState, topic: &str, message_id: &str) -> Result<Trace> {
    // Everything committed before the call, also on a follower that has not tailed it yet (an
    // ack just forwarded through it): a trace is rare, one tail round is cheap.
    if !st.node.catch_up(CATCH_UP).await {
        return Err(Error::Unavailable(
            "this gateway cannot read the manifest log".into(),
        ));
    }
    refresh_unless(st, |s| s.topics.contains_key(topic)).await;
    let retention_hours = st
        .node
        .state()
        .topics
        .get(topic)
        .map(|t| t.def.retention_hours)
        .ok_or_else(|| Error::topic_not_found(topic))?;
    let not_found = || Error::NotFound {
        what: Missing::Message,
        message: format!("no message {message_id} in topic {topic}"),
    };
    let published = ulid_time(message_id).ok_or_else(not_found)?;
    let mut position = find_message(st, topic, message_id)
        .await?
        .map(|m| (m.queue, m.offset));
    let now = st.node.state().time_ms.max(st.node.clock().now_ms());
    // Ledger objects older than the retention are gone: never list before it.
    let retained_from = now.saturating_sub((i64::from(retention_hours) + 2) * HOUR_MS);
    let window = (
        published.saturating_sub(SKEW_MS).max(retained_from),
        now + SKEW_MS,
        MAX_HOURS,
    );
    let store = st.node.store();
    let mut events = compactor::ledger::read(store, topic, window, |e| {
        e.concerns(topic, message_id, position)
    })
    .await?;
    let pending = |position| st.node.state().pending_events(topic, message_id, position);
    let mut recent = pending(position);
    if position.is_none() {
        // Not visible by lookup (delayed, transactional, or past retention): an event naming
        // it by id may say where it went, and the events by position follow from there.
        position = events
            .iter()
            .chain(&recent)
            .filter(|e| e.message_id.as_deref() == Some(message_id))
            .find_map(|e| e.queue.zip(e.offset));
        if position.is_some() {
            events = compactor::ledger::read(store, topic, window, |e| {
                e.concerns(topic, message_id, position)
            })
            .await?;
            recent = pending(position);
        }
    }
    // Flushed meanwhile: the same `seq` in both; keep one.
    let mut by_seq: std::collections::BTreeMap<u64, LedgerEvent> =
        events.into_iter().map(|e| (e.seq, e)).collect();
    for e in recent {
        by_seq.entry(e.seq).or_insert(e);
    }
    if by_seq.is_empty() && position.is_none() {
        return Err(not_found());
    }
    let mut all: Vec<LedgerEvent> = by_seq.into_values().collect();
    // Time order; events of one delta (one time) in apply order.
    all.sort_by_key(|e| (e.time_ms, e.seq));
    Ok(Trace {
        events: all.into_iter().map(wire).collect(),
    })
}
