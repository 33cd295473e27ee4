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

use super::settle::{MAX_HANDLES, SettlePlan};
use super::{
    AppState, Error, Result, check_name, long_poll_slot, one, refresh_unless, submit, unexpected,
    wait_longer,
};
use crate::fifo_groups::{self, Identity};
use crate::reader::Stored;
use crate::receipt::Receipt;
use crate::wire::{ReceiveRequest, SettleResult};

/// Candidates a receive considers per queue of a FIFO topic (past message groups that have
/// one in flight).
const FIFO_LOOK_AHEAD: usize = 512;

/// Message groups of ordered topics with one in flight, by topic and queue.
type Blocked = BTreeMap<(String, u32), InFlight>;

/// One queue's message groups with one in flight: group → its offset in flight.
type InFlight = BTreeMap<String, u64>;

/// The ordered candidates a look reads: without those whose message group is known here
/// (`fifo_groups`) and either has another message in flight (the look passes over the whole
/// group) or has an earlier candidate in this look (at most one message of a group is leased
/// per receive; at worst this one waits for the next look). Each kept candidate's identity
/// comes with whether its group was known (`true`: nothing to remember after reading it).
fn pass_over_known_groups(
    st: &AppState,
    candidates: Vec<QueueOffset>,
    identities: Vec<Option<Identity>>,
    blocked: &Blocked,
) -> (Vec<QueueOffset>, Vec<Option<(Identity, bool)>>) {
    let mut keep = vec![true; candidates.len()];
    let mut kept_identities = Vec::with_capacity(candidates.len());
    let mut seen: rustc_hash::FxHashSet<(&str, u32, std::sync::Arc<str>)> = Default::default();
    let mut known = st.fifo_groups.lock();
    // The in-flight groups of the queue of the previous candidate (candidates come by queue).
    let mut queue_blocked: Option<(&str, u32, Option<&InFlight>)> = None;
    for (i, (c, identity)) in candidates.iter().zip(identities).enumerate() {
        let Some(identity) = identity else {
            kept_identities.push(None);
            continue;
        };
        let Some(group) = known.known(&c.topic, c.queue, c.offset, identity) else {
            kept_identities.push(Some((identity, false)));
            continue;
        };
        let in_queue = match queue_blocked {
            Some((t, q, b)) if q == c.queue && t == c.topic => b,
            _ => {
                let b = blocked
                    .iter()
                    .find(|((t, q), _)| *q == c.queue && *t == c.topic)
                    .map(|(_, b)| b);
                queue_blocked = Some((&c.topic, c.queue, b));
                b
            }
        };
        let in_flight = in_queue.and_then(|b| b.get(&*group));
        if in_flight.is_some_and(|&o| o != c.offset) || !seen.insert((&c.topic, c.queue, group)) {
            keep[i] = false;
            continue;
        }
        kept_identities.push(Some((identity, true)));
    }
    drop((seen, known, queue_blocked));
    let kept = candidates
        .into_iter()
        .zip(keep)
        .filter_map(|(c, keep)| keep.then_some(c))
        .collect();
    (kept, kept_identities)
}

/// A leased message, as a receive answers it.
#[derive(Debug)]
pub struct Delivery {
    pub message: Stored,
    /// 1 on the first delivery.
    pub attempt: u32,
    pub receipt_handle: String,
}

/// What a receive answers: the messages it leased, and the answers to the acks it carried.
#[derive(Debug, Default)]
pub struct Received {
    pub deliveries: Vec<Delivery>,
    /// One per `ack_receipt_handles` entry, in order.
    pub ack_results: Vec<SettleResult>,
}

/// Receives up to `b.max_messages` messages for `group`, long-polling up to `b.wait_ms`, after
/// acking `b.ack_receipt_handles` (in the same commit as its first lease, or alone before it
/// waits).
pub async fn receive(st: &AppState, group: &str, b: ReceiveRequest) -> Result<Received> {
    receive_as(st, group, b, Receiver::Client).await
}

/// Who receives: a client, or this gateway's pusher of a push group (`crate::push`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    Client,
    /// A pusher, leasing from its share of the group's queues only.
    Pusher(Share),
}

/// Which of a push group's queues a pusher leases from: those whose hash modulo `of` is
/// `index` (every gateway computes the same hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub index: usize,
    pub of: usize,
}

impl Share {
    /// Whether queue `queue` of `topic` is in this share.
    pub fn holds(&self, topic: &str, queue: u32) -> bool {
        if self.of <= 1 {
            return true;
        }
        let h = crc32c::crc32c_append(crc32c::crc32c(topic.as_bytes()), &queue.to_le_bytes());
        h as usize % self.of == self.index
    }
}

/// [`receive`] for `who`: a push group's messages go to its pusher only, and a pull group's to
/// clients only.
pub async fn receive_as(
    st: &AppState,
    group: &str,
    b: ReceiveRequest,
    who: Receiver,
) -> Result<Received> {
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
        if who == Receiver::Client {
            check_name("consumer", c, 120)?;
        }
    }
    if b.ack_receipt_handles.len() > MAX_HANDLES {
        return Err(Error::bad(
            "ack_receipt_handles must hold at most 1000 handles",
        ));
    }
    refresh_unless(st, |s| s.groups.contains_key(&group)).await;
    let (def, filters, ordered) = {
        let s = st.node.state();
        let g = s
            .groups
            .get(&group)
            .ok_or_else(|| Error::group_not_found(&group))?;
        match (&g.def.push, who) {
            (Some(p), Receiver::Client) => {
                return Err(Error::Conflict(format!(
                    "group {group} is a push group: the gateways POST its messages to {}; PUT the group without \"push\" to receive them",
                    p.url
                )));
            }
            (None, Receiver::Pusher(_)) => {
                return Err(Error::Conflict(format!(
                    "group {group} is not a push group"
                )));
            }
            _ => {}
        }
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
    // The previous batch's acks ride this receive: committed with its first lease (before
    // it, in the same delta, so that a FIFO message group they free can be leased at once),
    // or alone before the receive waits.
    let mut ack_results = Vec::new();
    let mut pending_acks = None;
    if !b.ack_receipt_handles.is_empty() {
        let plan = SettlePlan::new(
            &st.receipts,
            &group,
            &def,
            &b.ack_receipt_handles,
            |_, _| SettleAction::Ack,
        );
        if plan.is_empty() {
            ack_results = plan.all_invalid();
        } else {
            pending_acks = Some(plan);
        }
    }
    let cursor_key = GroupDef::cursor_key(def.mode, &consumer).to_string();
    let mut fruitless_look = None;
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
    'look: loop {
        let now = st.node.clock().now_ms();
        // Ordered topics look further ahead in each queue: a message group with one in flight
        // is passed over.
        let (candidates, identities, blocked, mut claim) = {
            let mut held = st.claims.lock();
            let s = st.node.state();
            let mine = held.get(&claim_key);
            let candidates = s.candidates_looking_ahead(
                &group,
                &consumer,
                now,
                window,
                |t| ordered.contains(t).then_some(window.max(FIFO_LOOK_AHEAD)),
                |t, q| match who {
                    Receiver::Pusher(share) => share.holds(t, q),
                    Receiver::Client => true,
                },
                // Ordered topics are claimed by message group below, never by offset.
                |t, q| {
                    if ordered.contains(t) {
                        return None;
                    }
                    crate::claims::claimed(mine, t, q)
                },
            );
            let unordered = candidates.iter().filter(|c| !ordered.contains(&c.topic));
            let claim = st.claims.claim(&mut held, &claim_key, unordered);
            // Which stored message each ordered candidate is, where the state holds its range
            // inline (`fifo_groups`).
            let identities: Vec<Option<Identity>> = candidates
                .iter()
                .map(|c| {
                    if !ordered.contains(&c.topic) {
                        return None;
                    }
                    let q = s.topics.get(&c.topic)?.queues.get(c.queue as usize)?;
                    let (range, ordinal) = q.locate(c.offset)?;
                    Some(fifo_groups::identity(&range.segment, ordinal))
                })
                .collect();
            let mut blocked: Blocked = BTreeMap::new();
            for c in candidates.iter().filter(|c| ordered.contains(&c.topic)) {
                let key = (c.topic.clone(), c.queue);
                blocked.entry(key).or_insert_with(|| {
                    s.cursor(&group, &consumer, &c.topic, c.queue)
                        .map(|c| c.fifo_inflight.clone())
                        .unwrap_or_default()
                });
            }
            // Message groups whose message in flight this request acks are free once the
            // acks apply, which they do before the lease.
            if let Some(acks) = &pending_acks {
                for (topic, queue, offset) in acks.acked_by(&def, &cursor_key) {
                    if let Some(b) = blocked.get_mut(&(topic.to_string(), queue)) {
                        b.retain(|_, o| *o != offset);
                    }
                }
            }
            (candidates, identities, blocked, claim)
        };
        // What this look found, when it found nothing to lease: the same candidates with the
        // same message groups in flight (and no group claim released here since) will find
        // nothing again, so the next look after a change reads them only if one differs.
        let look = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            candidates.hash(&mut h);
            blocked.hash(&mut h);
            st.claims.releases().hash(&mut h);
            h.finish()
        };
        'lease: {
            if candidates.is_empty() || fruitless_look == Some(look) {
                break 'lease;
            }
            let (candidates, identities) = if ordered.is_empty() {
                let none = identities.iter().map(|_| None).collect();
                (candidates, none)
            } else {
                pass_over_known_groups(st, candidates, identities, &blocked)
            };
            // Read the candidates and apply the tag filters.
            let mut by_queue: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
            for c in &candidates {
                by_queue
                    .entry((c.topic.clone(), c.queue))
                    .or_default()
                    .push(c.offset);
            }
            // What was read, per queue, in offset order.
            let mut read: Vec<((String, u32), Vec<Stored>)> = Vec::with_capacity(by_queue.len());
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
                read.push(((topic, queue), msgs));
            }
            let position = |at: &QueueOffset| -> Option<(usize, usize)> {
                let q = read
                    .iter()
                    .position(|((t, q), _)| *q == at.queue && *t == at.topic)?;
                let i = read[q]
                    .1
                    .binary_search_by_key(&at.offset, |m| m.offset)
                    .ok()?;
                Some((q, i))
            };
            let read_at = |at: &QueueOffset| position(at).map(|(q, i)| &read[q].1[i]);
            if identities.iter().any(|i| matches!(i, Some((_, false)))) {
                let mut known = st.fifo_groups.lock();
                for (c, identity) in candidates.iter().zip(&identities) {
                    if let (Some((identity, false)), Some(m)) = (identity, read_at(c)) {
                        if let Some(g) = &m.message.message_group {
                            known.remember(&c.topic, c.queue, c.offset, *identity, g);
                        }
                    }
                }
            }
            let mut wanted = Vec::new();
            let mut located = Vec::new();
            let mut message_groups = Vec::new();
            let mut skipped = Vec::new();
            // Message groups in this batch, borrowed from what was read.
            let mut taken: std::collections::HashSet<(&str, u32, &str)> = Default::default();
            let blocked_in = |topic: &str, queue: u32| {
                blocked
                    .iter()
                    .find(|((t, q), _)| *q == queue && t == topic)
                    .map(|(_, b)| b)
            };
            for c in candidates {
                if wanted.len() >= window {
                    // Full: the rest stays for the next receive (filtered ones included).
                    break;
                }
                let Some(m) = read_at(&c) else { continue };
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
                        let inflight = blocked_in(&c.topic, c.queue).and_then(|b| b.get(g));
                        if inflight.is_some_and(|&o| o != c.offset)
                            || !taken.insert((m.topic.as_str(), m.queue, g.as_str()))
                        {
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
                located.push(m.located.as_deref().cloned());
                wanted.push(c);
                message_groups.push(mg);
            }
            if ordered.is_empty() {
                message_groups.clear();
            }
            if located.iter().all(Option::is_none) {
                located.clear();
            }
            let had_skips = !skipped.is_empty();
            if wanted.is_empty() && !had_skips {
                // Every candidate's message group is in flight (or claimed here): nothing to
                // commit; wait for a change.
                fruitless_look = Some(look);
                break 'lease;
            }
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
            let mut commands = pending_acks
                .as_ref()
                .map(SettlePlan::commands)
                .unwrap_or_default();
            commands.push(lease);
            let (_, mut outcomes) = submit(st, commands).await?;
            let leased = outcomes.pop().into_iter().collect();
            let acked = pending_acks.take().is_some_and(|acks| {
                ack_results = acks.answer(&outcomes);
                true
            });
            let (version, grants) = match one(leased)? {
                Outcome::Leased {
                    grants,
                    capped: true,
                    version,
                } if grants.is_empty() && acked => {
                    // The acks are in: answer them, with no messages.
                    st.node.wait_applied(version, Duration::from_secs(2)).await;
                    return Ok(Received {
                        deliveries: Vec::new(),
                        ack_results,
                    });
                }
                Outcome::Leased {
                    grants,
                    capped: true,
                    ..
                } if grants.is_empty() && matches!(who, Receiver::Pusher(_)) => {
                    return Err(Error::Busy(format!(
                        "push group {group} is at its max_in_flight or rate_per_s"
                    )));
                }
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
                        let m = read_at(&g.at)?.clone();
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
                return Ok(Received {
                    deliveries: messages,
                    ack_results,
                });
            }
            st.node.wait_applied(version, Duration::from_secs(2)).await;
            if had_skips {
                continue 'look;
            }
        }
        if let Some(acks) = pending_acks.take() {
            // Nothing to lease now: commit the acks before waiting.
            let (version, outcomes) = submit(st, acks.commands()).await?;
            ack_results = acks.answer(&outcomes);
            st.node.wait_applied(version, Duration::from_secs(2)).await;
        }
        if !wait_longer(st, deadline).await {
            return Ok(Received {
                deliveries: Vec::new(),
                ack_results,
            });
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
    if handles.is_empty() || handles.len() > MAX_HANDLES {
        return Err(Error::bad("receipt_handles must hold 1..=1000 handles"));
    }
    let def = st
        .node
        .state()
        .groups
        .get(group)
        .map(|g| g.def.clone())
        .ok_or_else(|| Error::group_not_found(group))?;
    let plan = SettlePlan::new(&st.receipts, group, &def, &handles, action);
    if plan.is_empty() {
        return Ok(plan.all_invalid());
    }
    let (_, outcomes) = submit(st, plan.commands()).await?;
    Ok(plan.answer(&outcomes))
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
