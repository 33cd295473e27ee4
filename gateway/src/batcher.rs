//! The publish path: one batcher per gateway for all topics (group commit).
//!
//! Publishes queue up; a batch closes when a segment-write slot is free (at most
//! `max_inflight_batches` in flight; adaptive: no waiting when nothing is in flight), after an
//! optional `linger`, or at `max_batch_bytes`. A batch becomes one segment PUT plus one
//! manifest submission (one `Append` per topic queue it touches), or, when its segment is at
//! most `inline_max_bytes`, one submission carrying the segment's bytes inline
//! (`Command::InlineSegment`: one PUT to acknowledge; the sequencer writes the object later);
//! only then are its requests answered with their offsets. Deduplicated, delayed and transactional messages ride the
//! same segment, each with its own `PublishOne` command. A segment PUT that still fails after
//! its retries (`segment_store::PUT_ATTEMPTS`), or a failed commit, fails every
//! request it carried (503): nothing is acknowledged from memory. Bytes accepted but not yet answered are bounded;
//! beyond the bound a publish gets 429 at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use segment_writer::clock::new_ulid;
use segment_writer::hedge::Hedger;
use segment_writer::manifest::{Command, DedupRecord, Outcome, PublishMode};
use segment_writer::node::Node;
use segment_writer::paths::Paths;
use segment_writer::segment::{Message, SegmentBuilder};
use segment_writer::segment_store;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::reader::Reader;
use crate::service::Error;

/// Batcher settings (see `ferrymq serve --help` for their costs).
#[derive(Debug, Clone)]
pub struct BatchSettings {
    pub linger: Duration,
    /// Batches whose segment is at most this many bytes ride inline in the manifest delta.
    pub inline_max_bytes: usize,
    /// No batch rides inline while the state holds this many inline segments not yet
    /// written out (the bound on that backlog).
    pub inline_backlog: usize,
    pub max_batch_bytes: usize,
    pub max_inflight_batches: usize,
    pub max_inflight_bytes: usize,
    /// Hedge slow segment PUTs with a second identical one (not on a local disk).
    pub hedge: bool,
}

/// One message to append to a chosen queue.
#[derive(Debug, Clone)]
pub struct PublishItem {
    pub queue: u32,
    pub message: Message,
    /// Deduplicate by `(topic, dedup_id)` within the window.
    pub dedup_id: Option<String>,
    /// Visible at once, a timer, or a half message.
    pub mode: PublishMode,
}

/// What became of one published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// Visible at this offset of its queue.
    Offset(u64),
    /// A timer or a half message: it gets its offset when it becomes visible.
    Pending,
    /// A repeated `dedup_id`: nothing stored; the first publish's result.
    Duplicate(DedupRecord),
}

struct Job {
    items: Vec<PublishItem>,
    bytes: usize,
    reply: oneshot::Sender<Result<Vec<Placed>, Error>>,
}

/// Handle to the batcher task.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
    inflight: Arc<AtomicUsize>,
    max_inflight_bytes: usize,
}

impl Batcher {
    /// Starts the batcher.
    pub fn start(
        node: Node,
        reader: Arc<Reader>,
        settings: BatchSettings,
    ) -> (Batcher, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let inflight = Arc::new(AtomicUsize::new(0));
        let handle = tokio::spawn(run(rx, node, reader, settings.clone()));
        (
            Batcher {
                tx,
                inflight,
                max_inflight_bytes: settings.max_inflight_bytes,
            },
            handle,
        )
    }

    /// Appends `items` (in order); resolves with their offsets once durable and committed.
    pub async fn publish(&self, items: Vec<PublishItem>) -> Result<Vec<Placed>, Error> {
        let bytes: usize = items.iter().map(|i| i.message.approx_size()).sum();
        let before = self.inflight.fetch_add(bytes, Ordering::SeqCst);
        if before + bytes > self.max_inflight_bytes && before > 0 {
            self.inflight.fetch_sub(bytes, Ordering::SeqCst);
            return Err(Error::Busy(format!(
                "{before} bytes of publishes in flight; retry later"
            )));
        }
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Job {
            items,
            bytes,
            reply,
        });
        let result = match sent {
            Ok(()) => rx
                .await
                .unwrap_or_else(|_| Err(Error::Unavailable("the gateway is shutting down".into()))),
            Err(_) => Err(Error::Unavailable("the gateway is shutting down".into())),
        };
        self.inflight.fetch_sub(bytes, Ordering::SeqCst);
        result
    }

    /// Stops accepting; the task finishes what it holds.
    pub fn close(self) {
        drop(self.tx);
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Job>,
    node: Node,
    reader: Arc<Reader>,
    settings: BatchSettings,
) {
    let slots = Arc::new(Semaphore::new(settings.max_inflight_batches.max(1)));
    let hedger = Arc::new(Hedger::new(settings.hedge, Duration::from_millis(2)));
    let mut flushes = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        if !settings.linger.is_zero() {
            node.clock().sleep(settings.linger).await;
        }
        let mut bytes = first.bytes;
        let mut jobs = vec![first];
        while bytes < settings.max_batch_bytes {
            match rx.try_recv() {
                Ok(j) => {
                    bytes += j.bytes;
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let (node, reader, hedger) = (node.clone(), reader.clone(), hedger.clone());
        let inline = (settings.inline_max_bytes, settings.inline_backlog);
        flushes.spawn(async move {
            flush(&node, &reader, &hedger, inline, jobs).await;
            drop(permit);
        });
        while flushes.try_join_next().is_some() {}
    }
    while flushes.join_next().await.is_some() {}
}

async fn flush(
    node: &Node,
    reader: &Reader,
    hedger: &Hedger,
    (inline_max_bytes, inline_backlog): (usize, usize),
    mut jobs: Vec<Job>,
) {
    // Order the batch by (topic, queue), keeping publish order within a queue.
    let mut order: Vec<(usize, usize)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| (0..job.items.len()).map(move |i| (j, i)))
        .collect();
    order.sort_by(|a, b| {
        let (x, y) = (&jobs[a.0].items[a.1], &jobs[b.0].items[b.1]);
        (&x.message.topic, x.queue).cmp(&(&y.message.topic, y.queue))
    });
    let expected: usize = jobs.iter().map(|j| j.bytes).sum();
    let mut builder = SegmentBuilder::with_capacity(64 * 1024, expected);
    let mut messages = Vec::with_capacity(order.len());
    let mut commands = Vec::new();
    // (command index, offset within the run) per item.
    let mut placed: Vec<Vec<(usize, u64)>> =
        jobs.iter().map(|j| vec![(0, 0); j.items.len()]).collect();
    // The items move out of their jobs (in `order`): each message goes into the segment and
    // then, without a copy, into the hot tail.
    let mut items: Vec<Vec<Option<PublishItem>>> = jobs
        .iter_mut()
        .map(|j| std::mem::take(&mut j.items).into_iter().map(Some).collect())
        .collect();
    for &(j, i) in &order {
        let Some(item) = items[j][i].take() else {
            continue;
        };
        let ordinal = builder.push(&item.message);
        let plain = item.dedup_id.is_none() && item.mode == PublishMode::Visible;
        let extends = plain
            && matches!(commands.last(), Some(Command::Append { topic, queue, .. }) if *topic == item.message.topic && *queue == item.queue);
        if !plain {
            commands.push(Command::PublishOne {
                topic: item.message.topic.clone(),
                queue: item.queue,
                segment: String::new(),
                ordinal,
                publish_time_ms: item.message.publish_time_ms,
                message_id: item.message.message_id.clone(),
                dedup_id: item.dedup_id,
                mode: item.mode,
            });
            placed[j][i] = (commands.len() - 1, 0);
        } else if extends {
            let last = commands.len() - 1;
            if let Some(Command::Append { count, .. }) = commands.last_mut() {
                placed[j][i] = (last, u64::from(*count));
                *count += 1;
            }
        } else {
            commands.push(Command::Append {
                topic: item.message.topic.clone(),
                queue: item.queue,
                segment: String::new(),
                first_ordinal: ordinal,
                count: 1,
                publish_time_ms: item.message.publish_time_ms,
            });
            placed[j][i] = (commands.len() - 1, 0);
        }
        messages.push(item.message);
    }
    let bytes = builder.finish();
    let now = node.clock().now_ms();
    let name = Paths::segment_name(&date_of(now), &new_ulid(&**node.clock()));
    for c in &mut commands {
        if let Command::Append { segment, .. } | Command::PublishOne { segment, .. } = c {
            segment.clone_from(&name);
        }
    }
    crate::metrics::observe_batch(bytes.len());
    let inline = bytes.len() <= inline_max_bytes && {
        let backlog = node.state().inline_segments.len();
        if backlog >= inline_backlog {
            crate::metrics::observe_inline_declined();
        }
        backlog < inline_backlog
    };
    if inline {
        // One PUT: the bytes ride in the delta, ahead of the commands that name them. Only
        // stored messages may be packed with other batches later (a timer or a half message
        // keeps pointing at the segment's own name).
        let packable = commands.iter().all(|c| match c {
            Command::PublishOne { mode, .. } => *mode == PublishMode::Visible,
            _ => true,
        });
        commands.insert(
            0,
            Command::InlineSegment {
                segment: name.clone(),
                data: bytes,
                packable,
            },
        );
        for p in placed.iter_mut().flatten() {
            p.0 += 1;
        }
    } else {
        let put = segment_store::put_segment_hedged(
            node.store(),
            &name,
            bytes,
            hedger,
            node.clock().as_ref(),
        )
        .await;
        if let Err(e) = put {
            let e = Error::from(e);
            for job in jobs {
                let _ = job.reply.send(Err(Error::Unavailable(e.to_string())));
            }
            return;
        }
    }
    // `expected` is the sum of the messages' sizes (each job's `bytes`).
    reader.insert_sized(&name, Arc::new(messages), expected);
    // Which outcomes belong to a single delayed, transactional or deduplicated message.
    let publish_ones: Vec<usize> = commands
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, Command::PublishOne { .. }))
        .map(|(i, _)| i)
        .collect();
    let committed = node.submit(commands).await;
    match committed {
        Err(e) => {
            let msg = Error::from(e).to_string();
            for job in jobs {
                let _ = job.reply.send(Err(Error::Unavailable(msg.clone())));
            }
        }
        Ok(c) => {
            // Read your writes: a half or delayed message is acknowledged only once this
            // gateway has applied its version, so that a decision or a cancel sent here right
            // after finds it (a follower learns the outcome before it has tailed the version;
            // found by the history checker as a 404 on a transaction just acknowledged).
            let pending = publish_ones
                .iter()
                .any(|&i| matches!(c.outcomes.get(i), Some(Outcome::Done)));
            if pending {
                node.wait_applied(c.version, Duration::from_secs(5)).await;
            }
            for (j, job) in jobs.into_iter().enumerate() {
                let mut offsets = Vec::with_capacity(placed[j].len());
                let mut failure = None;
                for &(ci, k) in &placed[j] {
                    match &c.outcomes[ci] {
                        Outcome::Appended { base_offset } => {
                            offsets.push(Placed::Offset(base_offset + k))
                        }
                        Outcome::Done => offsets.push(Placed::Pending),
                        Outcome::Duplicate { first } => {
                            offsets.push(Placed::Duplicate(first.clone()))
                        }
                        Outcome::Rejected { rejection } => {
                            failure = Some(Error::from(rejection.clone()))
                        }
                        other => {
                            failure = Some(Error::Internal(format!("unexpected outcome {other:?}")))
                        }
                    }
                }
                let _ = job.reply.send(match failure {
                    Some(e) => Err(e),
                    None => Ok(offsets),
                });
            }
        }
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix millisecond time.
pub fn date_of(ms: i64) -> String {
    segment_writer::paths::utc_date_hour(ms).0
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(super::date_of(0), "1970-01-01");
        assert_eq!(super::date_of(1_767_225_600_000), "2026-01-01");
        assert_eq!(super::date_of(1_709_164_800_000), "2024-02-29");
    }
}
