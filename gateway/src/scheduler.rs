//! The sequencer's scheduler: fires due timers and counts transaction check-backs, each as a
//! committed command, and calls the check-back webhooks of live producer instances.
//!
//! Only the sequencer ticks (every `tick`), so a due timer becomes visible within about one
//! tick plus one commit. `check_times` is committed before each webhook call; a webhook that
//! answers `commit` or `rollback` is turned into a decision like `POST /v1/transactions/{id}`.
//!
//! The spill keeper (also the sequencer's) moves timers due far ahead out of the manifest into
//! spill objects and back ([`spawn_spill_keeper`]); the index keeper folds old offset ranges
//! into index objects and merges them ([`spawn_index_keeper`]); the ledger keeper writes the
//! delivery ledger's pending events to Parquet objects and applies its retention
//! ([`spawn_ledger_keeper`]).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use segment_writer::clock::new_ulid;
use segment_writer::manifest::index::{self, IndexCache, IndexSettings};
use segment_writer::manifest::timers::{self, SpillSettings};
use segment_writer::manifest::{CheckDue, Command, Outcome};
use segment_writer::node::Node;
use segment_writer::paths::Paths;
use serde_json::Value;
use tracing::{debug, error, warn};

use crate::reader::Reader;
use crate::wire::Check;

/// The check-back payload of a half message (API.md), or `None` if it is no longer pending.
pub async fn check(node: &Node, reader: &Reader, due: &CheckDue) -> Option<Check> {
    let half = node.state().half(&due.transaction_id).cloned()?;
    let m = match reader
        .read_one(&half.message.segment, half.message.ordinal)
        .await
    {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, transaction = %due.transaction_id, "reading a half message failed");
            return None;
        }
    };
    let (body, body_base64) = match std::str::from_utf8(&m.body) {
        Ok(t) => (Some(t.to_string()), None),
        Err(_) => (None, Some(B64.encode(&m.body))),
    };
    Some(Check {
        transaction_id: due.transaction_id.clone(),
        message_id: m.message_id.clone(),
        topic: m.topic.clone(),
        properties: m.properties.clone(),
        check_times: due.check_times,
        body,
        body_base64,
    })
}

/// Starts the ticker.
pub fn spawn(node: Node, reader: Arc<Reader>, tick: Duration) -> tokio::task::JoinHandle<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    tokio::spawn(async move {
        let mut ticks = 0u64;
        loop {
            node.clock().sleep(tick).await;
            ticks += 1;
            if node.is_stopped() {
                return;
            }
            if !node.is_sequencer() {
                continue;
            }
            let now = node.state().time_ms.max(node.clock().now_ms());
            let (fire, check) = {
                let s = node.state();
                // Check-backs are due on a seconds scale and finding them scans the half
                // messages: look every 10th tick.
                (
                    s.next_timer_due().is_some_and(|d| d <= now),
                    ticks.is_multiple_of(10) && s.checks_due(now),
                )
            };
            let mut commands = Vec::new();
            if fire {
                commands.push(Command::FireTimers);
            }
            if check {
                commands.push(Command::CheckTransactions);
            }
            if commands.is_empty() {
                continue;
            }
            let committed = match node.submit(commands).await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "firing timers / counting check-backs failed");
                    continue;
                }
            };
            node.wait_applied(committed.version, Duration::from_secs(2))
                .await;
            for o in committed.outcomes {
                if let Outcome::Checks { checks } = o {
                    for due in checks.into_iter().filter(|c| c.webhook) {
                        let (node, reader, client) = (node.clone(), reader.clone(), client.clone());
                        tokio::spawn(
                            async move { call_webhook(&node, &reader, &client, due).await },
                        );
                    }
                }
            }
        }
    })
}

async fn call_webhook(node: &Node, reader: &Reader, client: &reqwest::Client, due: CheckDue) {
    let Some(payload) = check(node, reader, &due).await else {
        return;
    };
    let urls: Vec<String> = {
        let s = node.state();
        let now = s.time_ms;
        s.producer_groups
            .get(&due.producer_group)
            .map(|g| g.live(now).map(|(_, i)| i.check_url.clone()).collect())
            .unwrap_or_default()
    };
    if urls.is_empty() {
        return;
    }
    // Spread checks over the live instances; if one does not answer, ask the next.
    let start = due.check_times as usize % urls.len();
    for k in 0..urls.len() {
        let url = &urls[(start + k) % urls.len()];
        let answer = match client.post(url).json(&payload).send().await {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
            Ok(r) => {
                debug!(status = %r.status(), %url, "check-back webhook refused");
                continue;
            }
            Err(e) => {
                debug!(error = %e, %url, "check-back webhook unreachable");
                continue;
            }
        };
        let commit = match answer
            .as_ref()
            .and_then(|v| v.get("action"))
            .and_then(Value::as_str)
        {
            Some("commit") => true,
            Some("rollback") => false,
            _ => return, // "unknown" (or garbage): check again after the interval.
        };
        let decide = Command::Decide {
            transaction_id: due.transaction_id.clone(),
            commit,
        };
        if let Err(e) = node.submit(vec![decide]).await {
            warn!(error = %e, transaction = %due.transaction_id, "committing a check-back answer failed");
        }
        return;
    }
}

/// Starts the sequencer's timer spill keeper (`segment_writer::manifest::timers`): every
/// 50 ms it loads back the spill due first if it is near, or else spills the chunk of timers
/// due last if too many are inline. One object write or read and one commit per round.
pub fn spawn_spill_keeper(node: Node, settings: SpillSettings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        // Spill objects found missing or damaged: passed over (and counted) so that the
        // spills due after them still load; tried again after a restart.
        let mut unreadable = std::collections::BTreeSet::new();
        loop {
            // Back off after failures (a store outage): 50 ms, then up to 5 s.
            let pause = Duration::from_millis(50 << failures.min(7)).min(Duration::from_secs(5));
            node.clock().sleep(pause).await;
            if node.is_stopped() {
                return;
            }
            if !node.is_sequencer() {
                continue;
            }
            match keep_timers(&node, &settings, &unreadable).await {
                Ok(()) => failures = 0,
                Err((Some(object), e @ segment_writer::Error::Corrupt { .. })) => {
                    crate::metrics::observe_corrupt_object();
                    error!(error = %e, "a timer spill cannot be read: its delayed messages are not delivered");
                    unreadable.insert(object);
                }
                Err((_, e)) => {
                    failures += 1;
                    warn!(error = %e, "spilling or loading timers failed");
                }
            }
        }
    })
}

/// One round of the spill keeper; an error names the spill it could not load, if any.
async fn keep_timers(
    node: &Node,
    settings: &SpillSettings,
    unreadable: &std::collections::BTreeSet<String>,
) -> Result<(), (Option<String>, segment_writer::Error)> {
    let now = node.state().time_ms.max(node.clock().now_ms());
    let (load, plan) = {
        let s = node.state();
        match s.due_timer_spill(now, settings, |o| unreadable.contains(o)) {
            Some(object) => (Some(object), None),
            None => (None, s.plan_timer_spill(now, settings)),
        }
    };
    let command = if let Some(object) = load {
        let file = timers::get_spill(node.store(), &object)
            .await
            .map_err(|e| (Some(object.clone()), e))?;
        debug!(%object, timers = file.timers.len(), "loading spilled timers");
        Command::LoadTimers {
            object,
            timers: file.timers,
        }
    } else if let Some(file) = plan {
        let object = Paths::timer_spill_name(&new_ulid(&**node.clock()));
        timers::put_spill(node.store(), &object, &file)
            .await
            .map_err(|e| (None, e))?;
        debug!(%object, timers = file.timers.len(), "spilling timers");
        Command::SpillTimers {
            object,
            spill: file.summary(),
        }
    } else {
        return Ok(());
    };
    let committed = node.submit(vec![command]).await.map_err(|e| (None, e))?;
    if let Some(Outcome::Rejected { rejection }) = committed.outcomes.first() {
        // Timers published into the chunk meanwhile: planned again next round.
        debug!(%rejection, "timer spill refused");
    }
    node.wait_applied(committed.version, Duration::from_secs(2))
        .await;
    Ok(())
}

/// Ranges one round of the index keeper folds or merges at most (a few MB of object).
const INDEX_RANGES_PER_ROUND: usize = 200_000;

/// Starts the sequencer's index keeper (`segment_writer::manifest::index`): every 200 ms it
/// folds the oldest ranges of queues that hold too many inline into one index object, or
/// merges runs, with one object write and one commit per round.
pub fn spawn_index_keeper(
    node: Node,
    cache: Arc<IndexCache>,
    settings: IndexSettings,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let pause = Duration::from_millis(200 << failures.min(5)).min(Duration::from_secs(5));
            node.clock().sleep(pause).await;
            if node.is_stopped() {
                return;
            }
            if !node.is_sequencer() {
                continue;
            }
            match keep_index(&node, &cache, &settings).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    if matches!(e, segment_writer::Error::Corrupt { .. }) {
                        crate::metrics::observe_corrupt_object();
                        error!(error = %e, "an index object cannot be read: its runs are not merged");
                    } else {
                        warn!(error = %e, "folding the offset index failed");
                    }
                    failures += 1;
                }
            }
        }
    })
}

/// One round of the index keeper.
async fn keep_index(
    node: &Node,
    cache: &IndexCache,
    settings: &IndexSettings,
) -> segment_writer::Result<()> {
    let work = {
        let s = node.state();
        let now = s.time_ms.max(node.clock().now_ms());
        s.plan_index(now, settings, INDEX_RANGES_PER_ROUND)
    };
    if work.is_empty() {
        return Ok(());
    }
    let object = Paths::index_name(&new_ulid(&**node.clock()));
    let Some((bytes, command)) = index::build(node.store(), cache, &object, &work).await? else {
        return Ok(());
    };
    let size = bytes.len();
    index::put_object(node.store(), &object, bytes).await?;
    let committed = node.submit(vec![command]).await?;
    if let Some(Outcome::Indexed { runs }) = committed.outcomes.first() {
        debug!(%object, bytes = size, planned = work.len(), installed = runs, "index runs written");
    }
    node.wait_applied(committed.version, Duration::from_secs(2))
        .await;
    Ok(())
}

/// How the sequencer keeps the delivery ledger (`compactor::ledger`).
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// Pending events are written at least this often. Default 10 s.
    pub flush_interval: Duration,
    /// ... or once they take this many bytes in the state. Default 1 MiB.
    pub flush_bytes: u64,
    /// Ledger objects past their topic's retention are looked for this often. Default 10 min.
    pub retention_every: Duration,
    /// The ledger of a topic that no longer exists is kept this many hours. Default 72.
    pub orphan_hours: u32,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings {
            flush_interval: Duration::from_secs(10),
            flush_bytes: 1024 * 1024,
            retention_every: Duration::from_secs(600),
            orphan_hours: 72,
        }
    }
}

/// Starts the sequencer's ledger keeper: every 100 ms (backing off after failures) it writes
/// the pending ledger events once they are `flush_interval` old or `flush_bytes` large, one
/// object per topic and hour, then commits [`Command::LedgerFlushed`]; every
/// `retention_every` it deletes ledger objects past their topic's retention.
pub fn spawn_ledger_keeper(node: Node, settings: LedgerSettings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        let mut last_retention: Option<tokio::time::Instant> = None;
        loop {
            let pause = Duration::from_millis(100 << failures.min(6)).min(Duration::from_secs(5));
            node.clock().sleep(pause).await;
            if node.is_stopped() {
                return;
            }
            if !node.is_sequencer() {
                continue;
            }
            match flush_ledger(&node, &settings).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    warn!(error = %e, "writing the delivery ledger failed");
                }
            }
            let now = node.clock().instant();
            if last_retention.is_none_or(|at| now >= at + settings.retention_every) {
                last_retention = Some(now);
                let (now_ms, retention): (i64, std::collections::BTreeMap<String, u32>) = {
                    let s = node.state();
                    (
                        s.time_ms.max(node.clock().now_ms()),
                        s.topics
                            .iter()
                            .map(|(t, d)| (t.clone(), d.def.retention_hours))
                            .collect(),
                    )
                };
                match compactor::ledger::collect(node.store(), now_ms, settings.orphan_hours, |t| {
                    retention.get(t).copied()
                })
                .await
                {
                    Ok(c) if c.objects > 0 => debug!(objects = c.objects, "ledger retention"),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "ledger retention failed"),
                }
            }
        }
    })
}

/// One round of the ledger keeper: writes and commits the pending events if they are due.
async fn flush_ledger(node: &Node, settings: &LedgerSettings) -> Result<(), compactor::Error> {
    let events = {
        let s = node.state();
        let l = &s.ledger;
        let now = s.time_ms.max(node.clock().now_ms());
        let due = l.bytes >= settings.flush_bytes
            || l.events.first().is_some_and(|e| {
                now.saturating_sub(e.time_ms) >= settings.flush_interval.as_millis() as i64
            });
        if !due {
            return Ok(());
        }
        l.events.clone()
    };
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(());
    };
    let flushed = compactor::ledger::write(node.store(), &events).await?;
    let committed = node
        .submit(vec![Command::LedgerFlushed {
            through_seq: last + 1,
            objects: flushed.objects.clone(),
        }])
        .await?;
    debug!(
        events = events.len(),
        objects = flushed.objects.len(),
        bytes = flushed.bytes,
        "ledger events written"
    );
    crate::metrics::observe_ledger_flush(events.len(), flushed.objects.len(), flushed.bytes);
    node.wait_applied(committed.version, Duration::from_secs(2))
        .await;
    Ok(())
}
