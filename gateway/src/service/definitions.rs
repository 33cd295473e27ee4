//! Definitions (API.md "Topics", "Consumer groups", "Offsets"): topics and groups created
//! (201), confirmed (200, same definition) or refused (409, a different one), deleted, read
//! with their offsets and lag; a group's offsets reset; its dead letters re-driven.
//!
//! Invariant: names and fields are checked before the command is submitted, so a refused
//! definition changes nothing.

use std::collections::BTreeMap;

use segment_writer::manifest::index::QueueSnapshot;
use segment_writer::manifest::{
    Command, GroupDef, GroupMode, IndexRun, OffsetRange, Outcome, PushDef, PushFormat, ResetTarget,
    ResolvedOffset, StartFrom, Subscription, TopicDef, TopicKind, backlog,
};

use super::{
    AppState, Error, Result, check_name, one, refresh_unless, reserved, submit_and_apply,
    unexpected,
};
use crate::wire::{
    CreateGroupRequest, CreateTopicRequest, NamedPosition, Position, PushConfig, PushStatus,
    QueueLag, QueueStats, TopicBacklog, TopicType,
};

/// Whether a definition was created (else an identical one existed).
pub type Created = bool;

/// The manifest's topic type of a wire type.
pub fn topic_kind(t: TopicType) -> TopicKind {
    match t {
        TopicType::Normal => TopicKind::Normal,
        TopicType::Fifo => TopicKind::Fifo,
        TopicType::Delay => TopicKind::Delay,
        TopicType::Transaction => TopicKind::Transaction,
    }
}

/// The wire type of a manifest topic type.
pub fn topic_type(k: TopicKind) -> TopicType {
    match k {
        TopicKind::Normal => TopicType::Normal,
        TopicKind::Fifo => TopicType::Fifo,
        TopicKind::Delay => TopicType::Delay,
        TopicKind::Transaction => TopicType::Transaction,
    }
}

/// Commits a definition.
async fn define(st: &AppState, command: Command) -> Result<Created> {
    match one(submit_and_apply(st, vec![command]).await?)? {
        Outcome::Defined { created } => Ok(created),
        o => Err(unexpected(&o)),
    }
}

/// Creates `topic` (or confirms an identical definition).
pub async fn define_topic(
    st: &AppState,
    topic: &str,
    b: CreateTopicRequest,
) -> Result<(Created, TopicDef)> {
    check_name("topic", topic, 127)?;
    reserved("topic", topic)?;
    let def = TopicDef {
        kind: topic_kind(b.kind.unwrap_or(TopicType::Normal)),
        queues: b.queues.unwrap_or(8),
        retention_hours: b.retention_hours.unwrap_or(72),
    };
    if !(1..=1024).contains(&def.queues) {
        return Err(Error::bad("queues must be between 1 and 1024"));
    }
    // int32 on the wire, as every count of the API.
    if i32::try_from(def.retention_hours).is_err() {
        return Err(Error::bad(format!(
            "retention_hours must be at most {}",
            i32::MAX
        )));
    }
    let created = define(
        st,
        Command::CreateTopic {
            topic: topic.to_string(),
            def: def.clone(),
        },
    )
    .await?;
    Ok((created, def))
}

/// `topic`'s definition and its queues' offsets.
pub async fn topic(st: &AppState, topic: &str) -> Result<(TopicDef, Vec<QueueStats>)> {
    refresh_unless(st, |s| s.topics.contains_key(topic)).await;
    let s = st.node.state();
    let t = s
        .topics
        .get(topic)
        .ok_or_else(|| Error::topic_not_found(topic))?;
    let stats = t
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| QueueStats {
            queue: i as u32,
            min_offset: q.min_offset,
            max_offset: q.next_offset,
        })
        .collect();
    Ok((t.def.clone(), stats))
}

/// Every topic with its readable messages.
pub fn topics(st: &AppState) -> Vec<(String, TopicDef, u64)> {
    let s = st.node.state();
    s.topics
        .iter()
        .map(|(n, t)| {
            let messages = t
                .queues
                .iter()
                .map(|q| q.next_offset - q.min_offset.min(q.next_offset))
                .sum::<u64>();
            (n.clone(), t.def.clone(), messages)
        })
        .collect()
}

/// Deletes `topic`.
pub async fn delete_topic(st: &AppState, topic: &str) -> Result<()> {
    if !st.node.state().topics.contains_key(topic) {
        return Err(Error::topic_not_found(topic));
    }
    one(submit_and_apply(
        st,
        vec![Command::DeleteTopic {
            topic: topic.to_string(),
        }],
    )
    .await?)?;
    Ok(())
}

/// RocketMQ's retry ladder: 10 s, 30 s, 1 m, 2 m, 3 m, 4 m, 5 m, 6 m, 7 m, 8 m, 9 m, 10 m, 20 m, 30 m, 1 h, 2 h.
fn rocketmq_ladder() -> Vec<i64> {
    let s = 1000;
    let m = 60 * s;
    vec![
        10 * s,
        30 * s,
        m,
        2 * m,
        3 * m,
        4 * m,
        5 * m,
        6 * m,
        7 * m,
        8 * m,
        9 * m,
        10 * m,
        20 * m,
        30 * m,
        60 * m,
        120 * m,
    ]
}

/// The manifest's group mode of a wire mode.
pub fn group_mode(m: crate::wire::GroupMode) -> GroupMode {
    match m {
        crate::wire::GroupMode::Clustering => GroupMode::Clustering,
        crate::wire::GroupMode::Broadcast => GroupMode::Broadcast,
    }
}

/// A group defined: whether it was created, its definition now, and its push signing secret
/// when this request turned push on (shown once).
#[derive(Debug)]
pub struct DefinedGroup {
    pub created: Created,
    pub def: GroupDef,
    pub signing_secret: Option<String>,
}

/// The manifest's push settings of a request's, checked against this gateway's
/// `--push-allow`, with a fresh secret nonce (kept only if push is turned on by this request).
fn push_def(st: &AppState, p: PushConfig, mode: GroupMode) -> Result<PushDef> {
    if mode != GroupMode::Clustering {
        return Err(Error::bad("push delivery needs a clustering group"));
    }
    st.push
        .allow
        .check(&p.url)
        .map_err(|e| Error::bad(e.to_string()))?;
    if !(1..=10_000).contains(&p.max_in_flight) {
        return Err(Error::bad("push.max_in_flight must be 1..=10000"));
    }
    if p.rate_per_s > 100_000 {
        return Err(Error::bad(
            "push.rate_per_s must be at most 100000 (0: no cap)",
        ));
    }
    if !(100..=600_000).contains(&p.timeout_ms) {
        return Err(Error::bad("push.timeout_ms must be 100..=600000"));
    }
    Ok(PushDef {
        url: p.url,
        max_in_flight: p.max_in_flight,
        rate_per_s: p.rate_per_s,
        timeout_ms: p.timeout_ms,
        format: match p.format {
            crate::wire::PushFormat::Binary => PushFormat::Binary,
            crate::wire::PushFormat::Structured => PushFormat::Structured,
        },
        secret_nonce: crate::push::signing::new_nonce(),
    })
}

/// A push group's counters over all gateways (`None` for a pull group).
pub fn push_status(st: &AppState, group: &str) -> Option<PushStatus> {
    let s = st.node.state();
    let g = s.groups.get(group)?;
    g.def.push.as_ref()?;
    let p = g.push.clone().unwrap_or_default();
    Some(PushStatus {
        in_flight: s.leased(group) as u64,
        delivered_total: p.delivered_total,
        failed_total: p.failed_total,
        last_error: p.last_error,
        last_error_time_ms: p.last_error_time_ms,
        paused_until_ms: p.paused_until_ms.filter(|&t| t > st.node.clock().now_ms()),
    })
}

/// Creates `group` (or confirms an identical definition, or switches it between pull and
/// push).
pub async fn define_group(
    st: &AppState,
    group: &str,
    b: CreateGroupRequest,
) -> Result<DefinedGroup> {
    check_name("group", group, 120)?;
    reserved("group", group)?;
    if b.subscriptions.is_empty() {
        return Err(Error::bad("subscriptions must not be empty"));
    }
    for s in &b.subscriptions {
        check_name("topic", &s.topic, 127)?;
        crate::filter::parse(s.filter.as_deref(), s.sql.as_deref())?;
    }
    let start_from = match b.start_from {
        None | Some(Position::Named(NamedPosition::Latest)) => StartFrom::Latest,
        Some(Position::Named(NamedPosition::Earliest)) => StartFrom::Earliest,
        Some(Position::Timestamp { timestamp_ms }) => StartFrom::Timestamp(timestamp_ms),
    };
    let invisible_ms = b.invisible_ms.unwrap_or(30_000);
    if invisible_ms <= 0 || invisible_ms > 12 * 3600 * 1000 {
        return Err(Error::bad("invisible_ms must be 1..=43200000"));
    }
    // A group reading a FIFO topic retries on a fixed 3 s by default (RocketMQ 5).
    let reads_fifo = {
        let state = st.node.state();
        b.subscriptions.iter().any(|sub| {
            state
                .topics
                .get(&sub.topic)
                .is_some_and(|t| t.def.kind == TopicKind::Fifo)
        })
    };
    let backoff = b.retry_backoff_ms.unwrap_or_else(|| {
        if reads_fifo {
            vec![3_000]
        } else {
            rocketmq_ladder()
        }
    });
    if backoff.is_empty() || backoff.iter().any(|&x| x < 0) {
        return Err(Error::bad(
            "retry_backoff_ms must be a non-empty list of non-negative numbers",
        ));
    }
    let max_retries = b.max_retries.unwrap_or(16);
    if max_retries > 1000 {
        return Err(Error::bad("max_retries must be at most 1000"));
    }
    let mode = group_mode(b.mode.unwrap_or(crate::wire::GroupMode::Clustering));
    let push = b.push.map(|p| push_def(st, p, mode)).transpose()?;
    let def = GroupDef {
        subscriptions: b
            .subscriptions
            .into_iter()
            .map(|s| Subscription {
                topic: s.topic,
                filter: s.filter,
                sql: s.sql,
            })
            .collect(),
        mode,
        start_from,
        max_retries,
        invisible_ms,
        retry_backoff_ms: backoff,
        push,
    };
    // A new clustering group starting at a time inside folded index runs starts exactly there
    // (a broadcast group's cursors start as each consumer first appears: at the run's start).
    let mut resolved = BTreeMap::new();
    if let StartFrom::Timestamp(ts) = def.start_from
        && mode == GroupMode::Clustering
        && !st.node.state().groups.contains_key(group)
    {
        for s in &def.subscriptions {
            let offsets = resolve_folded(st, &s.topic, ts).await?;
            if !offsets.is_empty() {
                resolved.insert(s.topic.clone(), offsets);
            }
        }
    }
    let created = define(
        st,
        Command::CreateGroup {
            group: group.to_string(),
            def: def.clone(),
            resolved,
        },
    )
    .await?;
    // What the group is now (an endpoint that changed keeps its nonce); its secret shows
    // only to the request whose nonce it adopted.
    let now = st
        .node
        .state()
        .groups
        .get(group)
        .map(|g| g.def.clone())
        .unwrap_or(def.clone());
    let signing_secret = match (&def.push, &now.push) {
        (Some(mine), Some(kept)) if mine.secret_nonce == kept.secret_nonce => {
            Some(st.push.key.secret(group, &kept.secret_nonce).whsec())
        }
        _ => None,
    };
    Ok(DefinedGroup {
        created,
        def: now,
        signing_secret,
    })
}

/// `group`'s definition and its progress on every queue of its topics.
pub async fn group(st: &AppState, group: &str) -> Result<(GroupDef, Vec<QueueLag>)> {
    refresh_unless(st, |s| s.groups.contains_key(group)).await;
    let s = st.node.state();
    let g = s
        .groups
        .get(group)
        .ok_or_else(|| Error::group_not_found(group))?;
    let now = st.node.clock().now_ms().max(s.time_ms);
    let age = |t: Option<i64>| t.map(|t| (now - t).max(0));
    let mut lag = Vec::new();
    for sub in &g.def.subscriptions {
        let Some(t) = s.topics.get(&sub.topic) else {
            continue;
        };
        let backlog = backlog::topic_queues(&s, group, &sub.topic, now).unwrap_or_default();
        for (qi, q) in t.queues.iter().enumerate() {
            let c = s
                .cursor(group, "", &sub.topic, qi as u32)
                .unwrap_or_default();
            let c = c.as_ref();
            let b = backlog.get(qi).copied().unwrap_or_default();
            lag.push(QueueLag {
                topic: sub.topic.clone(),
                queue: qi as u32,
                committed_offset: c.committed,
                max_offset: q.next_offset,
                inflight: c.leases.len() as u64,
                lag: b.lag,
                ready: b.ready,
                retrying: b.retrying,
                oldest_ready_age_ms: age(b.oldest_ready_ms),
                oldest_unacked_age_ms: age(b.oldest_unacked_ms),
            });
        }
    }
    Ok((g.def.clone(), lag))
}

/// A group of the list: its definition, backlog per topic and dead letters.
#[derive(Debug)]
pub struct GroupSummary {
    pub name: String,
    pub def: GroupDef,
    pub backlog: Vec<TopicBacklog>,
    pub dead_letters: u64,
}

/// Every group with its backlog summed per topic.
pub fn groups(st: &AppState) -> Vec<GroupSummary> {
    let s = st.node.state();
    let now = st.node.clock().now_ms().max(s.time_ms);
    let age = |t: Option<i64>| t.map(|t| (now - t).max(0));
    let mut per_group: BTreeMap<String, Vec<TopicBacklog>> = BTreeMap::new();
    for l in backlog::all(&s, now) {
        let b = l.backlog;
        per_group.entry(l.group).or_default().push(TopicBacklog {
            topic: l.topic,
            lag: b.lag,
            ready: b.ready,
            inflight: b.inflight,
            delayed: l.delayed,
            oldest_ready_age_ms: age(b.oldest_ready_ms),
            oldest_unacked_age_ms: age(b.oldest_unacked_ms),
        });
    }
    s.groups
        .iter()
        .map(|(name, g)| {
            let dead_letters = s
                .topics
                .get(&segment_writer::manifest::dlq_topic(name))
                .and_then(|t| t.queues.first())
                .map_or(0, |q| q.next_offset - q.min_offset.min(q.next_offset));
            GroupSummary {
                name: name.clone(),
                def: g.def.clone(),
                backlog: per_group.remove(name).unwrap_or_default(),
                dead_letters,
            }
        })
        .collect()
}

/// Deletes `group`.
pub async fn delete_group(st: &AppState, group: &str) -> Result<()> {
    if !st.node.state().groups.contains_key(group) {
        return Err(Error::group_not_found(group));
    }
    one(submit_and_apply(
        st,
        vec![Command::DeleteGroup {
            group: group.to_string(),
        }],
    )
    .await?)?;
    Ok(())
}

/// Moves `group`'s offsets on `topic` to `to`.
pub async fn reset(st: &AppState, group: &str, topic: &str, to: Position) -> Result<()> {
    let to = match to {
        Position::Named(NamedPosition::Earliest) => ResetTarget::Earliest,
        Position::Named(NamedPosition::Latest) => ResetTarget::Latest,
        Position::Timestamp { timestamp_ms } => ResetTarget::Timestamp(timestamp_ms),
    };
    {
        let s = st.node.state();
        if !s.groups.contains_key(group) {
            return Err(Error::group_not_found(group));
        }
        if !s.topics.contains_key(topic) {
            return Err(Error::topic_not_found(topic));
        }
    }
    let resolved = match to {
        ResetTarget::Timestamp(ts) => resolve_folded(st, topic, ts).await?,
        _ => Vec::new(),
    };
    one(submit_and_apply(
        st,
        vec![Command::ResetOffsets {
            group: group.to_string(),
            topic: topic.to_string(),
            to,
            resolved,
        }],
    )
    .await?)?;
    Ok(())
}

/// The exact first offset stored at or after `time_ms` of each queue of `topic` where that
/// offset lies in a folded index run, read from the run's object here (apply cannot read
/// objects; the command carries these, and apply uses each only while its run is still the one
/// the time falls in). Empty for an unknown topic and for queues whose offsets there are listed.
async fn resolve_folded(st: &AppState, topic: &str, time_ms: i64) -> Result<Vec<ResolvedOffset>> {
    let folded: Vec<(u32, QueueSnapshot, IndexRun)> = {
        let s = st.node.state();
        s.topics.get(topic).map_or_else(Vec::new, |t| {
            t.queues
                .iter()
                .enumerate()
                .filter_map(|(qi, q)| {
                    let run = q.run_at_time(time_ms)?.clone();
                    Some((qi as u32, QueueSnapshot::of(q, run.base, 0), run))
                })
                .collect()
        })
    };
    let mut resolved = Vec::with_capacity(folded.len());
    for (queue, snap, run) in folded {
        let offset = st
            .reader
            .index()
            .offset_at_time(st.reader.store(), topic, queue, &snap, time_ms)
            .await?;
        resolved.push(ResolvedOffset {
            queue,
            run_object: run.object,
            run_base: run.base,
            offset,
        });
    }
    Ok(resolved)
}

/// The ranges of the group's dead-letter queue from its first readable offset (up to `max`
/// offsets) that are folded into index objects: a re-drive carries them, as apply cannot read
/// objects.
async fn folded_dead_letters(st: &AppState, group: &str, max: u32) -> Result<Vec<OffsetRange>> {
    let dlq = segment_writer::manifest::dlq_topic(group);
    let (snap, inline_from) = {
        let s = st.node.state();
        match s.topics.get(&dlq).and_then(|t| t.queues.first()) {
            Some(q) if q.min_offset < q.first_inline() && !q.index.is_empty() => {
                (QueueSnapshot::of(q, q.min_offset, 0), q.first_inline())
            }
            _ => return Ok(Vec::new()),
        }
    };
    let from = snap.min_offset;
    let n = (inline_from - from).min(u64::from(max));
    let mut ranges = st
        .reader
        .index()
        .ranges_from(st.reader.store(), &dlq, 0, &snap, from, n)
        .await?;
    ranges.retain(|r| r.base < inline_from);
    Ok(ranges)
}

/// Makes up to `max` of `group`'s dead letters visible to it again: how many moved.
pub async fn redrive(st: &AppState, group: &str, max: u32) -> Result<u64> {
    if max == 0 || max > 100_000 {
        return Err(Error::bad("max_messages must be 1..=100000"));
    }
    refresh_unless(st, |s| s.groups.contains_key(group)).await;
    if !st.node.state().groups.contains_key(group) {
        return Err(Error::group_not_found(group));
    }
    let folded = folded_dead_letters(st, group, max).await?;
    let cmd = Command::Redrive {
        group: group.to_string(),
        max,
        folded,
    };
    match one(submit_and_apply(st, vec![cmd]).await?)? {
        Outcome::Redriven { moved } => Ok(u64::from(moved)),
        o => Err(unexpected(&o)),
    }
}
