//! Backlog metrics of consumer groups (API.md "Operations"), labelled `group` and `topic`.
//!
//! Gauges (ready, in flight, delayed, lag, oldest ready and oldest unacked age, pending
//! transactions) are derived from the applied state at scrape time by
//! `segment_writer::manifest::backlog`, which costs per queue a few binary searches and a walk
//! over the cursor's live leases and retries, never over messages. Counters (dead letters,
//! redeliveries) are kept by [`observe_applied`] from every applied delta: redeliveries from
//! the lease outcomes, dead letters from the growth of each group's `DLQ.<group>` topic
//! (attributed to the topic the message came from). They count since this process started.
//!
//! Labels are `group` and `topic` (for pending transactions, the producer group and topic);
//! `--metrics-per-queue` adds `queue` to the gauges of groups.
//!
//! Only the sequencer exports these families, so a sum over the gateways of a cluster is the
//! cluster's figure; followers keep counting and export nothing for them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};

use segment_writer::manifest::{AppliedDelta, Command, Outcome, State, backlog, dlq_topic};

/// (group, topic) → count.
type Counts = BTreeMap<(String, String), u64>;

#[derive(Default)]
struct Counters {
    dead_letters: Counts,
    redeliveries: Counts,
    /// group → the `DLQ.<group>` offsets already counted (its next offset when last seen).
    dlq_seen: BTreeMap<String, u64>,
}

static COUNTERS: LazyLock<Mutex<Counters>> = LazyLock::new(Default::default);

fn counters() -> std::sync::MutexGuard<'static, Counters> {
    // A panic while counting leaves counts that are still counts.
    COUNTERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the dead letters already in the state as counted (call once, after loading it):
/// the counters then count what happens from now on.
pub fn seed(state: &State) {
    let mut c = counters();
    for group in state.groups.keys() {
        let next = dlq_next(state, group).unwrap_or(0);
        c.dlq_seen.insert(group.clone(), next);
    }
}

fn dlq_next(state: &State, group: &str) -> Option<u64> {
    state
        .topics
        .get(&dlq_topic(group))
        .and_then(|t| t.queues.first())
        .map(|q| q.next_offset)
}

/// Counts the redeliveries and dead letters of one applied delta; `state` is the state at or
/// after it (dead letters are counted from the DLQ's growth, so a later state only counts
/// them earlier).
pub fn observe_applied(state: &State, applied: &AppliedDelta) {
    if applied.orphan {
        return;
    }
    let mut touched: BTreeSet<&str> = BTreeSet::new();
    let mut all_groups = false;
    let mut c = counters();
    for (entry, outcomes) in applied.delta.entries.iter().zip(&applied.outcomes) {
        for (command, outcome) in entry.commands.iter().zip(outcomes) {
            match command {
                Command::Lease { group, .. } => {
                    touched.insert(group);
                    if let Outcome::Leased { grants, .. } = outcome {
                        for g in grants.iter().filter(|g| g.attempt > 1) {
                            *c.redeliveries
                                .entry((group.clone(), g.at.topic.clone()))
                                .or_default() += 1;
                        }
                    }
                }
                Command::Settle { group, .. } | Command::SettleMany { group, .. } => {
                    touched.insert(group);
                }
                Command::ExpireLeases => all_groups = true,
                _ => {}
            }
        }
    }
    let groups: Vec<&str> = if all_groups {
        state.groups.keys().map(String::as_str).collect()
    } else {
        touched.into_iter().collect()
    };
    for group in groups {
        count_dead_letters(&mut c, state, group);
    }
}

fn count_dead_letters(c: &mut Counters, state: &State, group: &str) {
    let Some(q) = state
        .topics
        .get(&dlq_topic(group))
        .and_then(|t| t.queues.first())
    else {
        return;
    };
    let seen = c.dlq_seen.get(group).copied().unwrap_or(0);
    // A DLQ that shrank was deleted and made again: everything in it is new.
    let from = if q.next_offset < seen { 0 } else { seen };
    for o in from..q.next_offset {
        let origin = q
            .locate(o)
            .and_then(|(r, _)| r.origin_topic.clone())
            .unwrap_or_default();
        *c.dead_letters
            .entry((group.to_string(), origin))
            .or_default() += 1;
    }
    c.dlq_seen.insert(group.to_string(), q.next_offset);
}

/// Appends a label value, escaped as the text format requires.
fn label(out: &mut String, v: &str) {
    if !v.contains(['\\', '"', '\n']) {
        out.push_str(v);
        return;
    }
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// One sample: group, topic, queue (with `--metrics-per-queue`), value.
type Row<'a> = (&'a str, &'a str, Option<usize>, f64);

fn family<'a, I>(out: &mut String, name: &str, kind: &str, help: &str, rows: I)
where
    I: IntoIterator<Item = Row<'a>>,
{
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (group, topic, queue, v) in rows {
        out.push_str(name);
        out.push_str("{group=\"");
        label(out, group);
        out.push_str("\",topic=\"");
        label(out, topic);
        if let Some(q) = queue {
            let _ = write!(out, "\",queue=\"{q}");
        }
        let _ = writeln!(out, "\"}} {v}");
    }
}

/// The backlog figures of one scrape, taken while the state is locked (then formatted
/// without holding the lock, so a large scrape does not hold up apply).
#[derive(Debug)]
pub struct Snapshot {
    now: i64,
    lines: Vec<backlog::GroupTopicBacklog>,
    pending: BTreeMap<(String, String), u64>,
}

/// Reads the backlog of every group from `state` at `now_ms`.
pub fn snapshot(state: &State, now_ms: i64) -> Snapshot {
    let now = now_ms.max(state.time_ms);
    Snapshot {
        now,
        lines: backlog::all(state, now),
        pending: backlog::pending_transactions(state),
    }
}

/// The backlog families in the Prometheus text format; with `per_queue`, the gauges have one
/// sample per queue (a `queue` label) instead of one per topic.
pub fn render(snap: &Snapshot, per_queue: bool) -> String {
    let (now, lines, pending) = (snap.now, &snap.lines, &snap.pending);
    let age = |t: Option<i64>| t.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
    let mut out = String::with_capacity(64 + lines.len() * 6 * 96);
    // The gauge of each line (and queue): `f` of the backlog and the delayed count.
    let rows = |f: &dyn Fn(&backlog::QueueBacklog, u64) -> f64| -> Vec<Row<'_>> {
        let mut v = Vec::new();
        for l in lines {
            let (g, t) = (l.group.as_str(), l.topic.as_str());
            if per_queue {
                for (qi, (q, delayed)) in l.queues.iter().enumerate() {
                    v.push((g, t, Some(qi), f(q, *delayed)));
                }
            } else {
                v.push((g, t, None, f(&l.backlog, l.delayed)));
            }
        }
        v
    };
    family(
        &mut out,
        "ferrymq_consumer_ready_messages",
        "gauge",
        "Messages visible to the group and not leased",
        rows(&|b, _| b.ready as f64),
    );
    family(
        &mut out,
        "ferrymq_consumer_inflight_messages",
        "gauge",
        "Messages leased to the group and not settled",
        rows(&|b, _| b.inflight as f64),
    );
    family(
        &mut out,
        "ferrymq_consumer_delayed_messages",
        "gauge",
        "Messages waiting for a retry backoff, or delayed messages of the topic not yet due (held in the manifest)",
        rows(&|_, delayed| delayed as f64),
    );
    family(
        &mut out,
        "ferrymq_consumer_lag_messages",
        "gauge",
        "Messages published minus the group's committed offsets",
        rows(&|b, _| b.lag as f64),
    );
    family(
        &mut out,
        "ferrymq_consumer_oldest_ready_age_seconds",
        "gauge",
        "Age (since stored) of the oldest message the group could receive now; 0 when none",
        rows(&|b, _| age(b.oldest_ready_ms)),
    );
    family(
        &mut out,
        "ferrymq_consumer_oldest_unacked_age_seconds",
        "gauge",
        "Age (since stored) of the oldest message the group has not consumed; 0 when none",
        rows(&|b, _| age(b.oldest_unacked_ms)),
    );
    {
        let c = counters();
        let counted = |m: &Counts| {
            m.iter()
                .map(|((g, t), n)| (g.clone(), t.clone(), *n as f64))
                .collect::<Vec<_>>()
        };
        let dead = counted(&c.dead_letters);
        let redelivered = counted(&c.redeliveries);
        drop(c);
        family(
            &mut out,
            "ferrymq_dead_letters_total",
            "counter",
            "Messages moved to the group's dead-letter topic since this gateway started, by the topic they came from",
            dead.iter()
                .map(|(g, t, n)| (g.as_str(), t.as_str(), None, *n)),
        );
        family(
            &mut out,
            "ferrymq_redeliveries_total",
            "counter",
            "Deliveries after the first (attempt 2 and later) since this gateway started",
            redelivered
                .iter()
                .map(|(g, t, n)| (g.as_str(), t.as_str(), None, *n)),
        );
    }
    family(
        &mut out,
        "ferrymq_transactions_pending",
        "gauge",
        "Half messages waiting for a commit or rollback, by producer group and topic",
        pending
            .iter()
            .map(|((g, t), n)| (g.as_str(), t.as_str(), None, *n as f64)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        label(&mut s, "a\"b\\c\nd");
        assert_eq!(s, "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn an_empty_state_renders_every_family_without_samples() {
        let text = render(&snapshot(&State::default(), 0), false);
        for name in [
            "ferrymq_consumer_ready_messages",
            "ferrymq_consumer_inflight_messages",
            "ferrymq_consumer_delayed_messages",
            "ferrymq_consumer_lag_messages",
            "ferrymq_consumer_oldest_ready_age_seconds",
            "ferrymq_consumer_oldest_unacked_age_seconds",
            "ferrymq_dead_letters_total",
            "ferrymq_redeliveries_total",
            "ferrymq_transactions_pending",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert!(!text.contains('{'));
    }
}
