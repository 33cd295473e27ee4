//! Reading a topic directly (API.md "Pull", "Lookup"): pull from one queue at an offset, find
//! a message by id (its ULID's time bounds the scan) or by key within a time window, and
//! cancel a delayed message not yet due.
//!
//! Invariants: half messages and not-yet-due delayed messages are never returned; a lookup
//! reads at most [`LOOKUP_MAX_SCAN`] messages.

use std::time::Duration;

use segment_writer::manifest::index::QueueSnapshot;
use segment_writer::manifest::{Command, OffsetRange};

use super::error::Missing;
use super::{
    AppState, Error, Result, long_poll_slot, one, refresh_unless, submit_and_apply, wait_for_change,
};
use crate::reader::Stored;
use crate::wire::{KeyQuery, PullQuery};

/// How far around a message id's time a lookup scans (publish times come from the gateway
/// that took the message; ids are ULIDs minted at the same moment).
const LOOKUP_SLACK_MS: i64 = 60_000;

/// At most this many messages are read by one lookup.
pub const LOOKUP_MAX_SCAN: usize = 200_000;

/// Messages of one queue from an offset, and the offset to pull from next.
#[derive(Debug)]
pub struct Pulled {
    pub messages: Vec<Stored>,
    pub next_offset: u64,
}

/// Pulls from `topic`'s queue `queue` (long-polling up to `q.wait_ms` while nothing is there).
pub async fn pull(st: &AppState, topic: &str, queue: &str, q: PullQuery) -> Result<Pulled> {
    let queue: u32 = queue
        .parse()
        .map_err(|_| Error::bad(format!("bad queue {queue:?}")))?;
    if q.max == 0 || q.max > 1000 {
        return Err(Error::bad("max must be 1..=1000"));
    }
    // Offsets are int64 on the wire (as in RocketMQ); a larger one is a malformed request.
    if i64::try_from(q.offset).is_err() {
        return Err(Error::bad(format!("offset must be at most {}", i64::MAX)));
    }
    if q.wait_ms > st.limits.max_wait_ms {
        return Err(Error::bad(format!(
            "wait_ms must be at most {}",
            st.limits.max_wait_ms
        )));
    }
    let _waiter = long_poll_slot(st, q.wait_ms)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.wait_ms);
    refresh_unless(st, |s| s.topics.contains_key(topic)).await;
    loop {
        let (min, next) = {
            let s = st.node.state();
            let t = s
                .topics
                .get(topic)
                .ok_or_else(|| Error::topic_not_found(topic))?;
            let qq = t
                .queues
                .get(queue as usize)
                .ok_or_else(|| Error::bad(format!("topic {topic} has no queue {queue}")))?;
            (qq.min_offset, qq.next_offset)
        };
        let from = q.offset.max(min);
        if from < next {
            let messages = st
                .reader
                .read(&st.node.shared_state(), topic, queue, from, q.max as usize)
                .await?;
            let next_offset = messages.last().map_or(from, |m| m.offset + 1);
            return Ok(Pulled {
                messages,
                next_offset,
            });
        }
        if tokio::time::Instant::now() >= deadline || !wait_for_change(st, deadline).await {
            return Ok(Pulled {
                messages: Vec::new(),
                next_offset: from,
            });
        }
    }
}

/// Messages of `topic` whose ranges were published within `[begin, end]`, filtered by `keep`.
async fn scan_topic(
    st: &AppState,
    topic: &str,
    begin: i64,
    end: i64,
    keep: impl Fn(&Stored) -> bool,
    limit: usize,
) -> Result<Vec<Stored>> {
    // (queue, first offset, count) of every range published in the window: inline, and in
    // the index runs whose publish times overlap it (read through the index cache).
    let queues: Vec<QueueSnapshot> = {
        let s = st.node.state();
        let t = s
            .topics
            .get(topic)
            .ok_or_else(|| Error::topic_not_found(topic))?;
        t.queues
            .iter()
            .map(|q| QueueSnapshot::of(q, q.min_offset, u64::MAX))
            .collect()
    };
    let in_window = |r: &OffsetRange| r.publish_time_ms >= begin && r.publish_time_ms <= end;
    let mut spans: Vec<(u32, u64, u64)> = Vec::new();
    for (qi, q) in queues.iter().enumerate() {
        let mut ranges = Vec::new();
        for run in &q.index {
            if run.max_publish_ms >= begin && run.min_publish_ms <= end {
                let section = st
                    .reader
                    .index()
                    .run(st.reader.store(), topic, qi as u32, run)
                    .await?;
                ranges.extend(section.ranges().into_iter().filter(|r| in_window(r)));
            }
        }
        ranges.extend(q.ranges.iter().filter(|r| in_window(r)).cloned());
        for r in ranges {
            let from = r.base.max(q.min_offset);
            let to = r.base + u64::from(r.count);
            if to > from {
                spans.push((qi as u32, from, to - from));
            }
        }
    }
    let mut found = Vec::new();
    let mut scanned = 0usize;
    for (queue, from, count) in spans {
        let mut at = from;
        while at < from + count {
            if scanned >= LOOKUP_MAX_SCAN || found.len() >= limit {
                return Ok(found);
            }
            let n = (from + count - at).min(1000) as usize;
            let msgs = st
                .reader
                .read(&st.node.shared_state(), topic, queue, at, n)
                .await?;
            if msgs.is_empty() {
                break;
            }
            scanned += msgs.len();
            at = msgs.last().map_or(at + n as u64, |m| m.offset + 1);
            found.extend(msgs.into_iter().filter(|m| keep(m)));
        }
    }
    found.truncate(limit);
    Ok(found)
}

pub(crate) fn ulid_time(message_id: &str) -> Option<i64> {
    ulid::Ulid::from_string(message_id)
        .ok()
        .map(|u| u.timestamp_ms() as i64)
}

/// The visible message `message_id` of `topic`, if any.
pub(crate) async fn find_message(
    st: &AppState,
    topic: &str,
    message_id: &str,
) -> Result<Option<Stored>> {
    let Some(t) = ulid_time(message_id) else {
        return Ok(None);
    };
    let id = message_id.to_string();
    Ok(scan_topic(
        st,
        topic,
        t - LOOKUP_SLACK_MS,
        t + LOOKUP_SLACK_MS,
        move |m| m.message.message_id == id,
        1,
    )
    .await?
    .pop())
}

/// The visible message `message_id` of `topic`, or [`Missing::Message`].
pub async fn message(st: &AppState, topic: &str, message_id: &str) -> Result<Stored> {
    refresh_unless(st, |s| s.topics.contains_key(topic)).await;
    find_message(st, topic, message_id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: Missing::Message,
            message: format!("no visible message {message_id} in topic {topic}"),
        })
}

/// The messages of `topic` carrying key `q.key`, published within `[begin_ms, end_ms]`.
pub async fn by_key(st: &AppState, topic: &str, q: KeyQuery) -> Result<Vec<Stored>> {
    let begin = q.begin_ms.unwrap_or(0);
    let end = q.end_ms.unwrap_or(i64::MAX);
    if begin > end {
        return Err(Error::bad("begin_ms must not be after end_ms"));
    }
    let max = q.max.unwrap_or(1000);
    if max == 0 || max > 1000 {
        return Err(Error::bad("max must be 1..=1000"));
    }
    refresh_unless(st, |s| s.topics.contains_key(topic)).await;
    let key = q.key;
    scan_topic(
        st,
        topic,
        begin.saturating_sub(LOOKUP_SLACK_MS),
        end,
        move |m| {
            m.message.keys.contains(&key)
                && m.message.publish_time_ms >= begin
                && m.message.publish_time_ms <= end
        },
        max,
    )
    .await
}

/// Cancels the delayed message `message_id` of `topic`: [`Error::Conflict`] if it is already
/// due (visible), [`Missing::Message`] if unknown.
pub async fn cancel(st: &AppState, topic: &str, message_id: &str) -> Result<()> {
    refresh_unless(st, |s| s.topics.contains_key(topic)).await;
    let (inline, spills) = {
        let s = st.node.state();
        if !s.topics.contains_key(topic) {
            return Err(Error::topic_not_found(topic));
        }
        let inline = s
            .timers
            .values()
            .any(|p| p.topic == topic && p.message_id == message_id);
        (inline, s.spills_holding(message_id))
    };
    // Not inline: the spills whose fingerprints match may hold it (immutable objects; a
    // fingerprint can match by chance, so look).
    let mut spilled_in = None;
    if !inline {
        for object in spills {
            let file =
                segment_writer::manifest::timers::get_spill(st.node.store(), &object).await?;
            if file
                .timers
                .iter()
                .any(|t| t.message.message_id == message_id && t.message.topic == topic)
            {
                spilled_in = Some(object);
                break;
            }
        }
    }
    if inline || spilled_in.is_some() {
        let cancel = Command::CancelTimer {
            topic: topic.to_string(),
            message_id: message_id.to_string(),
            spilled_in,
        };
        match one(submit_and_apply(st, vec![cancel]).await?) {
            Ok(_) => return Ok(()),
            // Fired meanwhile: fall through to tell 409 from 404.
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if find_message(st, topic, message_id).await?.is_some() {
        return Err(Error::Conflict(format!(
            "message {message_id} is already due (visible)"
        )));
    }
    Err(Error::NotFound {
        what: Missing::Message,
        message: format!("no delayed message {message_id} in topic {topic}"),
    })
}
