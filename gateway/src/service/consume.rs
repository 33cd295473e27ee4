//! Consuming (API.md "Receive, ack, nack"): receive leases visible messages of a group's
//! subscriptions, passing over what its filters refuse and, on FIFO topics, message groups
//! with one in flight; ack, nack and invisibility settle the leases named by signed receipt
//! handles, batched per queue and lease version.
//!
//! Invariants: a receive's leases are committed before it answers, and it answers only after
//! this gateway applied them (an ack sent here right after finds its lease); a handle of
//! another group, forged or garbled settles nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use segment_writer::manifest::{
    Command, GroupDef, GroupMode, Outcome, QueueOffset, SettleAction, TopicKind,
};

use super::{
    AppState, Error, Result, check_name, long_poll_slot, one, refresh_unless, submit, unexpected,
    wait_longer,
};
use crate::reader::Stored;
use crate::receipt::Receipt;
use crate::wire::{ReceiveRequest, SettleResult};

/// Candidates a receive considers per queue of a FIFO topic (past message groups that have
/// one in flight).
const FIFO_LOOK_AHEAD: usize = 512;

/// A leased message, as a receive answers it.
#[derive(Debug)]
pub struct Delivery {
    pub message: Stored,
    /// 1 on the first delivery.
    pub attempt: u32,
    pub receipt_handle: String,
}

/// Receives up to `b.max_messages` messages for `group`, long-polling up to `b.wait_ms`.
pub async fn receive(st: &AppState, group: &str, b: ReceiveRequest) -> Result<Vec<Delivery>> {
    let group = group.to_string();
    if b.max_messages == 0 || b.max_messages > st.limits.max_receive {
        return Err(Error::bad(format!(
            "max_messages must be 1..={}",
            st.limits.max_receive
        )));
    }
    if b.wait_ms > st.limits.max_wait_ms {
        return Err(Error::bad(format!(
            "wait_ms must be at most {}",
            st.limits.max_wait_ms
        )));
    }
    if let Some(c) = &b.consumer {
        check_name("consumer", c, 120)?;
    }
    refresh_unless(st, |s| s.groups.contains_key(&group)).await;
    let (def, filters, ordered) = {
        let s = st.node.state();
        let g = s
            .groups
            .get(&group)
            .ok_or_else(|| Error::group_not_found(&group))?;
        let mut filters = BTreeMap::new();
        let mut ordered = std::collections::BTreeSet::new();
        for sub in &g.def.subscriptions {
            filters.insert(
                sub.topic.clone(),
                crate::filter::parse(sub.filter.as_deref(), sub.sql.as_deref())?,
            );
            if s.topics
                .get(&sub.topic)
                .is_some_and(|t| t.def.kind == TopicKind::Fifo)
            {
                ordered.insert(sub.topic.clone());
            }
        }
        (g.def.clone(), filters, ordered)
    };
    let consumer = match (def.mode, b.consumer) {
        (GroupMode::Broadcast, None) => {
            return Err(Error::bad("consumer is required in broadcast mode"));
        }
        (GroupMode::Broadcast, Some(c)) => c,
        (GroupMode::Clustering, c) => c.unwrap_or_default(),
    };
    let invisible_ms = b.invisible_ms.unwrap_or(def.invisible_ms);
    if invisible_ms <= 0 || invisible_ms > 12 * 3600 * 1000 {
        return Err(Error::bad("invisible_ms must be 1..=43200000"));
    }
    let _waiter = long_poll_slot(st, b.wait_ms)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(b.wait_ms);
    // Receives of one cursor on this gateway claim their candidates (`claims`).
    let claim_key = format!("{group}\n{}", GroupDef::cursor_key(def.mode, &consumer));
    // Filters and ordered topics pass candidates over: a lease asks for up to twice what it
    // may grant there, and for what it may grant elsewhere.
    let filtered = def
        .subscriptions
        .iter()
        .any(|s| s.filter.is_some() || s.sql.is_some());
    let window = if filtered || !ordered.is_empty() {
        (b.max_messages as usize) * 2
    } else {
        b.max_messages as usize
    };
    loop {
        let now = st.node.clock().now_ms();
        // Ordered topics look further ahead in each queue: a message group with one in flight
        // is passed over.
        let (candidates, blocked, mut claim) = {
            let mut held = st.claims.lock();
            let s = st.node.state();
            let mine = held.get(&claim_key);
            let candidates = s.candidates_looking_ahead(
                &group,
                &consumer,
                now,
                window,
                |t| ordered.contains(t).then_some(window.max(FIFO_LOOK_AHEAD)),
                // Ordered topics are claimed by message group below, never by offset.
                |t, q, o| !ordered.contains(t) && crate::claims::claimed(mine, t, q, o),
            );
            let unordered = candidates.iter().filter(|c| !ordered.contains(&c.topic));
            let claim = st.claims.claim(&mut held, &claim_key, unordered);
            let mut blocked: BTreeMap<(String, u32), BTreeMap<String, u64>> = BTreeMap::new();
            for c in candidates.iter().filter(|c| ordered.contains(&c.topic)) {
                let key = (c.topic.clone(), c.queue);
                blocked.entry(key).or_insert_with(|| {
                    s.cursor(&group, &consumer, &c.topic, c.queue)
                        .map(|c| c.fifo_inflight.clone())
                        .unwrap_or_default()
                });
            }
            (candidates, blocked, claim)
        };
        if !candidates.is_empty() {
            // Read the candidates and apply the tag filters.
            let mut by_queue: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
            for c in &candidates {
                by_queue
                    .entry((c.topic.clone(), c.queue))
                    .or_default()
                    .push(c.offset);
            }
            let mut read: std::collections::HashMap<QueueOffset, Stored> =
                std::collections::HashMap::with_capacity(candidates.len());
            for ((topic, queue), mut offsets) in by_queue {
                offsets.sort_unstable();
                let msgs = match st
                    .reader
                    .read_offsets(&st.node.shared_state(), &topic, queue, &offsets)
                    .await
                {
                    Ok(m) => m,
                    // A corrupt segment must not stall the group: read one by one and pass
                    // over (and count) what cannot be read; a store outage still fails.
                    Err(segment_writer::Error::Corrupt { .. }) => {
                        let mut ok = Vec::new();
                        for &o in &offsets {
                            match st
                                .reader
                                .read_offsets(&st.node.shared_state(), &topic, queue, &[o])
                                .await
                            {
                                Ok(m) => ok.extend(m),
                                Err(e @ segment_writer::Error::Corrupt { .. }) => {
                                    crate::metrics::observe_corrupt_object();
                                    tracing::error!(error = %e, %topic, queue, offset = o, "unreadable message passed over");
                                }
                                Err(e) => return Err(e.into()),
                            }
                        }
                        ok
                    }
                    Err(e) => return Err(e.into()),
                };
                for m in msgs {
                    read.insert(
                        QueueOffset {
                            topic: m.topic.clone(),
                            queue: m.queue,
                            offset: m.offset,
                        },
                        m,
                    );
                }
            }
            let mut wanted = Vec::new();
            let mut located = Vec::new();
            let mut message_groups = Vec::new();
            let mut skipped = Vec::new();
            let mut taken: std::collections::BTreeSet<(String, u32, String)> = Default::default();
            for c in candidates {
                let Some(m) = read.get(&c) else { continue };
                let passes = filters
                    .get(&c.topic)
                    .is_none_or(|f| f.matches(m.message.tag.as_deref(), &m.message.properties));
                if !passes {
                    skipped.push(c);
                    continue;
                }
                let mg = match (&m.message.message_group, ordered.contains(&c.topic)) {
                    (Some(g), true) => {
                        // One in flight per message group, in publish order, and a receive
                        // batch never holds two of one group.
                        let key = (c.topic.clone(), c.queue, g.clone());
                        let inflight = blocked
                            .get(&(c.topic.clone(), c.queue))
                            .and_then(|b| b.get(g));
                        if inflight.is_some_and(|&o| o != c.offset) || !taken.insert(key) {
                            continue;
                        }
                        // Another receive on this gateway is leasing this group's head.
                        if !claim.claim_group(&c.topic, c.queue, g) {
                            continue;
                        }
                        Some(g.clone())
                    }
                    _ => None,
                };
                if wanted.len() < window {
                    located.push(m.located.clone());
                    wanted.push(c);
                    message_groups.push(mg);
                }
            }
            if ordered.is_empty() {
                message_groups.clear();
            }
            if located.iter().all(Option::is_none) {
                located.clear();
            }
            let had_skips = !skipped.is_empty();
            let lease = Command::Lease {
                group: group.clone(),
                consumer: consumer.clone(),
                invisible_ms,
                max: b.max_messages,
                candidates: wanted,
                skipped,
                message_groups,
                located,
                max_in_flight: Some(st.limits.max_in_flight_per_group),
            };
            let (version, grants) = match one(submit(st, vec![lease]).await?.1)? {
                Outcome::Leased {
                    grants,
                    capped: true,
                    ..
                } if grants.is_empty() => {
                    return Err(Error::Busy(format!(
                        "group {group} has {} messages leased or waiting for a retry, its cap: ack or nack some first",
                        st.limits.max_in_flight_per_group
                    )));
                }
                Outcome::Leased {
                    version, grants, ..
                } => (version, grants),
                o => return Err(unexpected(&o)),
            };
            if !grants.is_empty() {
                let messages: Vec<Delivery> = grants
                    .iter()
                    .filter_map(|g| {
                        let m = read.remove(&g.at)?;
                        let r = Receipt {
                            group: group.clone(),
                            consumer: consumer.clone(),
                            topic: g.at.topic.clone(),
                            queue: g.at.queue,
                            offset: g.at.offset,
                            version,
                            attempt: g.attempt,
                        };
                        Some(Delivery {
                            message: m,
                            attempt: g.attempt,
                            receipt_handle: st.receipts.sign(&r),
                        })
                    })
                    .collect();
                st.node.wait_applied(version, Duration::from_secs(2)).await;
                return Ok(messages);
            }
            st.node.wait_applied(version, Duration::from_secs(2)).await;
            if had_skips {
                continue;
            }
        }
        if !wait_longer(st, deadline).await {
            return Ok(Vec::new());
        }
    }
}

/// Settles the leases of `handles` (ack or nack, as `action` says per receipt): one result
/// per handle, in order.
pub async fn settle_many(
    st: &AppState,
    group: &str,
    handles: Vec<String>,
    action: impl Fn(&Receipt, &GroupDef) -> SettleAction,
) -> Result<Vec<SettleResult>> {
    if handles.is_empty() || handles.len() > 1000 {
        return Err(Error::bad("receipt_handles must hold 1..=1000 handles"));
    }
    let def = st
        .node
        .state()
        .groups
        .get(group)
        .map(|g| g.def.clone())
        .ok_or_else(|| Error::group_not_found(group))?;
    let invalid = SettleResult {
        ok: false,
        error: Some("InvalidReceipt".into()),
    };
    let expired = SettleResult {
        ok: false,
        error: Some("ReceiptExpired".into()),
    };
    let ok = SettleResult {
        ok: true,
        error: None,
    };
    let mut results: Vec<SettleResult> = vec![invalid.clone(); handles.len()];
    // The receipts of one receive on one queue settle as one command (`SettleMany`): one
    // command per queue and lease version instead of one per message. A handle repeated within
    // a batch settles on its own, so that each answer stays its own.
    struct Batch {
        consumer: String,
        topic: String,
        queue: u32,
        version: u64,
        action: SettleAction,
        offsets: Vec<u64>,
        handles: Vec<usize>,
    }
    let mut batches: Vec<Batch> = Vec::new();
    for (i, h) in handles.iter().enumerate() {
        let Some(r) = st.receipts.verify(h) else {
            continue;
        };
        if r.group != group {
            continue;
        }
        let action = action(&r, &def);
        let same = |b: &Batch| {
            b.consumer == r.consumer
                && b.topic == r.topic
                && b.queue == r.queue
                && b.version == r.version
                && b.action == action
                && !b.offsets.contains(&r.offset)
        };
        match batches.iter_mut().find(|b| same(b)) {
            Some(b) => {
                b.offsets.push(r.offset);
                b.handles.push(i);
            }
            None => batches.push(Batch {
                consumer: r.consumer,
                topic: r.topic,
                queue: r.queue,
                version: r.version,
                action,
                offsets: vec![r.offset],
                handles: vec![i],
            }),
        }
    }
    if !batches.is_empty() {
        let commands = batches
            .iter()
            .map(|b| match b.offsets.as_slice() {
                [offset] => Command::Settle {
                    group: group.to_string(),
                    consumer: b.consumer.clone(),
                    at: QueueOffset {
                        topic: b.topic.clone(),
                        queue: b.queue,
                        offset: *offset,
                    },
                    lease_version: b.version,
                    action: b.action,
                },
                offsets => Command::SettleMany {
                    group: group.to_string(),
                    consumer: b.consumer.clone(),
                    topic: b.topic.clone(),
                    queue: b.queue,
                    lease_version: b.version,
                    action: b.action,
                    offsets: offsets.to_vec(),
                },
            })
            .collect();
        let (_, outcomes) = submit(st, commands).await?;
        for (b, o) in batches.iter().zip(outcomes) {
            for (&i, offset) in b.handles.iter().zip(&b.offsets) {
                results[i] = match &o {
                    Outcome::Settled { .. } => ok.clone(),
                    Outcome::SettledMany { expired: e, .. } if e.contains(offset) => {
                        expired.clone()
                    }
                    Outcome::SettledMany { .. } => ok.clone(),
                    Outcome::Rejected {
                        rejection: segment_writer::manifest::Rejection::ReceiptExpired,
                    } => expired.clone(),
                    _ => invalid.clone(),
                };
            }
        }
    }
    Ok(results)
}

/// Acks `handles`.
pub async fn ack(st: &AppState, group: &str, handles: Vec<String>) -> Result<Vec<SettleResult>> {
    settle_many(st, group, handles, |_, _| SettleAction::Ack).await
}

/// Nacks `handles`: redelivered after `delay_ms`, else after the group's backoff for the
/// attempt.
pub async fn nack(
    st: &AppState,
    group: &str,
    handles: Vec<String>,
    delay_ms: Option<i64>,
) -> Result<Vec<SettleResult>> {
    if delay_ms.is_some_and(|d| !(0..=40 * 86_400_000).contains(&d)) {
        return Err(Error::bad("delay_ms must be 0..=3456000000"));
    }
    settle_many(st, group, handles, move |r, def| SettleAction::Nack {
        delay_ms: delay_ms.unwrap_or_else(|| def.backoff_ms(r.attempt)),
    })
    .await
}

/// Extends (or shortens) the lease of `handle` to `invisible_ms` from now: the new handle.
pub async fn invisibility(
    st: &AppState,
    group: &str,
    handle: &str,
    invisible_ms: i64,
) -> Result<String> {
    if invisible_ms <= 0 || invisible_ms > 12 * 3600 * 1000 {
        return Err(Error::bad("invisible_ms must be 1..=43200000"));
    }
    if !st.node.state().groups.contains_key(group) {
        return Err(Error::group_not_found(group));
    }
    let r = st
        .receipts
        .verify(handle)
        .filter(|r| r.group == group)
        .ok_or_else(|| Error::InvalidReceipt("not a receipt handle of this group".into()))?;
    let cmd = Command::Settle {
        group: group.to_string(),
        consumer: r.consumer.clone(),
        at: QueueOffset {
            topic: r.topic.clone(),
            queue: r.queue,
            offset: r.offset,
        },
        lease_version: r.version,
        action: SettleAction::Extend { invisible_ms },
    };
    match one(submit(st, vec![cmd]).await?.1)? {
        Outcome::Settled { lease_version } => {
            let new = Receipt {
                version: lease_version,
                ..r
            };
            Ok(st.receipts.sign(&new))
        }
        o => Err(unexpected(&o)),
    }
}
