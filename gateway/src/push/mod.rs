//! Push delivery (API.md "Push subscriptions"): every gateway runs a pusher for each push
//! group. A pusher is a receive whose consumer is the gateway: it leases messages through the
//! same committed lease commands as `receive` (so `max_in_flight` and `rate_per_s`, enforced
//! when the lease applies, hold across all gateways together), POSTs each one to the group's
//! endpoint, and settles by the answer: a 2xx acks; anything else, a timeout or a refused
//! connection nacks with the group's backoff (the dead-letter move after `1 + max_retries`
//! deliveries is the lease's, as for `receive`). Settles of one pusher go out together, with
//! a [`Command::PushReport`] of the counters in the same delta.
//!
//! Invariants: no webhook call happens inside apply or on the commit path; a lease outlives
//! its push (`timeout_ms` plus [`LEASE_MARGIN_MS`]), so a gateway killed mid-push loses
//! nothing: its leases expire and any gateway delivers again. A FIFO group's receive never
//! leases two messages of one message group at once, so its pushes are one at a time per
//! message group, in order. Redirects are not followed; the URL is checked against
//! `--push-allow` at every push, not only when the group is defined.

pub mod allow;
pub mod event;
pub mod signing;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use segment_writer::manifest::{Command, GroupDef, PUSH_CONSUMER, SettleAction};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, warn};

use crate::service::consume::{Delivery, Receiver, Share, receive_as};
use crate::service::settle::SettlePlan;
use crate::service::{AppState, Error};
use crate::wire::ReceiveRequest;

/// How much longer than the push's timeout its lease lasts (time to commit the settle).
pub const LEASE_MARGIN_MS: i64 = 15_000;
/// Pushes one gateway keeps outstanding per group at most (the group's `max_in_flight` may be
/// lower; it holds across gateways).
const LOCAL_MAX_IN_FLIGHT: usize = 1000;
/// A pusher that reported nothing for this long says it is still pushing (well within
/// `PushProgress::PUSHER_TTL_MS`).
const HEARTBEAT_MS: i64 = 5_000;
/// A pusher reports acks that rode its leases at least this often while it has some.
const REPORT_MS: i64 = 1_000;
/// How long a pusher whose look found nothing waits at most for the next applied version.
const IDLE_MS: u64 = 2_000;
/// Bytes of an endpoint's answer read (and dropped) so the connection can be reused.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER_MS: i64 = 3_600_000;

/// What the gateway needs to push: the allow-list and the key of the groups' secrets.
#[derive(Debug, Clone)]
pub struct PushSettings {
    pub allow: allow::AllowList,
    pub key: signing::PushKey,
    /// `--no-push`: this gateway pushes nothing (others on the bucket still do).
    pub enabled: bool,
}

/// How one push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Delivered,
    Failed {
        error: String,
        /// A 429 or 503's `Retry-After`, in milliseconds.
        retry_after_ms: Option<i64>,
    },
    /// Not pushed: the group turned to pull after this message was leased; it goes back at
    /// once, not counted as a delivery.
    Released,
}

/// A push done, waiting to be settled; holds its slot until then.
struct Pushed {
    receipt_handle: String,
    topic: String,
    queue: u32,
    offset: u64,
    attempt: u32,
    answer: Answer,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// Runs the pushers of every push group while the gateway runs.
pub fn spawn(st: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("ferrymq/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the push HTTP client: pushing nothing");
                return;
            }
        };
        supervise(st, client).await;
    })
}

/// Starts a pusher for each push group, tells pushers of changed groups their new definition,
/// and stops those of groups that are gone or pull now (they finish what is in flight first).
async fn supervise(st: Arc<AppState>, client: reqwest::Client) {
    // Dropped with this task (at shutdown): every pusher is aborted with it.
    let mut pushers = JoinSet::new();
    let mut running: HashMap<String, (watch::Sender<Option<GroupDef>>, AbortHandle)> =
        HashMap::new();
    let mut version = st.node.watch_version();
    loop {
        while pushers.try_join_next().is_some() {}
        let push_groups: HashMap<String, GroupDef> = st
            .node
            .state()
            .groups
            .iter()
            .filter(|(_, g)| g.def.push.is_some())
            .map(|(name, g)| (name.clone(), g.def.clone()))
            .collect();
        running.retain(|name, (tx, task)| {
            if task.is_finished() {
                return false;
            }
            let def = push_groups.get(name).cloned();
            let stop = def.is_none();
            tx.send_if_modified(|d| {
                let changed = *d != def;
                *d = def.clone();
                changed
            });
            !stop
        });
        for (name, def) in push_groups {
            if running.contains_key(&name) {
                continue;
            }
            let (tx, rx) = watch::channel(Some(def));
            let pusher = Pusher {
                st: st.clone(),
                client: client.clone(),
                group: name.clone(),
                def: rx,
                paused_until_ms: Arc::new(AtomicI64::new(0)),
                settled: Arc::new(Notify::new()),
                last_report_ms: Arc::new(AtomicI64::new(0)),
                riding: Arc::default(),
                unreported: Arc::default(),
                version: st.node.watch_version(),
            };
            running.insert(name, (tx, pushers.spawn(pusher.run())));
        }
        // Definitions change by deltas: look again after the next one (or a second).
        let _ = tokio::time::timeout(Duration::from_secs(1), version.changed()).await;
        version.borrow_and_update();
    }
}

/// The pusher of one group on this gateway.
struct Pusher {
    st: Arc<AppState>,
    client: reqwest::Client,
    group: String,
    def: watch::Receiver<Option<GroupDef>>,
    /// No new pushes before this time (a `Retry-After`).
    paused_until_ms: Arc<AtomicI64>,
    /// Told when a batch of settles is committed (room for more pushes).
    settled: Arc<Notify>,
    /// When this pusher last reported (settles carry a report).
    last_report_ms: Arc<AtomicI64>,
    /// Pushes answered 2xx whose acks ride the pusher's next lease (one commit for both).
    riding: Arc<Mutex<Vec<Pushed>>>,
    /// Acks committed (riding) not yet counted in a report.
    unreported: Arc<AtomicU64>,
    /// Applied versions: a look that found nothing waits for the next one.
    version: watch::Receiver<u64>,
}

impl Pusher {
    async fn run(mut self) {
        let slots = Arc::new(Semaphore::new(LOCAL_MAX_IN_FLIGHT));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        // The settler and every push: aborted if this pusher is (at shutdown).
        let mut children = JoinSet::new();
        children.spawn(settle_loop(
            self.st.clone(),
            self.group.clone(),
            done_rx,
            self.paused_until_ms.clone(),
            self.settled.clone(),
            self.last_report_ms.clone(),
            self.riding.clone(),
            self.unreported.clone(),
        ));
        debug!(group = %self.group, "pusher started");
        loop {
            while children.try_join_next().is_some() {}
            let Some(def) = self.def.borrow_and_update().clone() else {
                break;
            };
            let Some(push) = def.push.clone() else { break };
            if !self.st.push.enabled {
                // Wait for a change of mind (the flag does not change at run time: forever).
                if self.def.changed().await.is_err() {
                    break;
                }
                continue;
            }
            let now = self.st.node.clock().now_ms();
            let paused = self.paused_until_ms.load(Ordering::Relaxed);
            if paused > now {
                self.idle(Duration::from_millis((paused - now) as u64))
                    .await;
                continue;
            }
            let since = now - self.last_report_ms.load(Ordering::Relaxed);
            if since >= HEARTBEAT_MS
                || (since >= REPORT_MS && self.unreported.load(Ordering::Relaxed) > 0)
            {
                self.heartbeat(now).await;
            }
            let me = self.st.node.settings().gateway_id.as_str();
            let (leased, allowed, share) = {
                let s = self.st.node.state();
                let now = now.max(s.time_ms);
                let progress = s.groups.get(&self.group).and_then(|g| g.push.as_ref());
                let allowed = progress.map_or(u32::MAX, |p| p.available(push.rate_per_s, now));
                // This gateway's share of the queues among the gateways pushing the group.
                let mut live: Vec<&str> = progress
                    .map(|p| p.live_pushers(now).collect())
                    .unwrap_or_default();
                if !live.contains(&me) {
                    live.push(me);
                    live.sort_unstable();
                }
                let share = Share {
                    index: live.iter().position(|g| *g == me).unwrap_or(0),
                    of: live.len(),
                };
                (s.leased(&self.group), allowed, share)
            };
            // Each pusher keeps its part of `max_in_flight` outstanding (the cap itself holds
            // at apply; this keeps the pushers from racing for it).
            // Acks waiting to ride this lease free their slots in the same commit.
            let acks: Vec<Pushed> = {
                let mut r = self.riding.lock().unwrap_or_else(|e| e.into_inner());
                let n = r.len().min(crate::service::settle::MAX_HANDLES);
                r.drain(..n).collect()
            };
            let mine = (LOCAL_MAX_IN_FLIGHT - slots.available_permits()).saturating_sub(acks.len());
            let part = (push.max_in_flight as usize).div_ceil(share.of);
            let room = part
                .saturating_sub(mine)
                .min((push.max_in_flight as usize).saturating_sub(leased.min(mine)))
                .min(slots.available_permits() + acks.len())
                .min(allowed as usize)
                .min(self.st.limits.max_receive as usize);
            if room == 0 {
                // Full here or cluster-wide, or out of rate: wait for a settle somewhere (a
                // new version) or a token. (Acks taken above are never left behind: with
                // acks, room is at least their number, unless the rate is out.)
                self.ride_back(acks);
                let wait = if allowed == 0 {
                    1000 / u64::from(push.rate_per_s.max(1))
                } else {
                    200
                };
                self.idle(Duration::from_millis(wait.max(5))).await;
                continue;
            }
            let handles: Vec<String> = acks.iter().map(|p| p.receipt_handle.clone()).collect();
            let request = ReceiveRequest {
                max_messages: room as u32,
                // No long-poll: acks finishing meanwhile must not wait for it; a look that
                // finds nothing waits below for the next applied version instead.
                wait_ms: 0,
                invisible_ms: Some(
                    (i64::try_from(push.timeout_ms).unwrap_or(i64::MAX))
                        .saturating_add(LEASE_MARGIN_MS)
                        .min(12 * 3600 * 1000),
                ),
                consumer: Some(PUSH_CONSUMER.to_string()),
                ack_receipt_handles: handles,
            };
            self.version.borrow_and_update();
            let result = receive_as(&self.st, &self.group, request, Receiver::Pusher(share)).await;
            if result.is_ok() {
                self.unreported
                    .fetch_add(acks.len() as u64, Ordering::Relaxed);
                drop(acks);
            } else {
                // Maybe not committed: they ride the next one (acking twice is fine).
                self.ride_back(acks);
            }
            match result {
                Ok(received) if received.deliveries.is_empty() => {
                    self.idle(Duration::from_millis(IDLE_MS)).await;
                }
                Ok(received) => {
                    for d in received.deliveries {
                        let Ok(slot) = slots.clone().acquire_owned().await else {
                            break;
                        };
                        let (st, client, group) =
                            (self.st.clone(), self.client.clone(), self.group.clone());
                        let done = done_tx.clone();
                        children.spawn(async move {
                            let pushed = push_one(&st, &client, &group, d, slot).await;
                            let _ = done.send(pushed);
                        });
                    }
                }
                Err(Error::Busy(_)) => self.idle(Duration::from_millis(50)).await,
                // The group turned to pull or went away: the next look says so.
                Err(Error::Conflict(_) | Error::NotFound { .. }) => {
                    self.idle(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    warn!(group = %self.group, error = %e, "push: leasing failed; retrying in 1 s");
                    self.idle(Duration::from_secs(1)).await;
                }
            }
        }
        // Finish what is in flight: every slot comes back once its settle is committed.
        drop(done_tx);
        while children.join_next().await.is_some() {}
        let acks: Vec<Pushed> =
            std::mem::take(&mut *self.riding.lock().unwrap_or_else(|e| e.into_inner()));
        if !acks.is_empty() {
            let n = acks.len() as u64;
            let handles: Vec<String> = acks.iter().map(|p| p.receipt_handle.clone()).collect();
            if crate::service::consume::ack(&self.st, &self.group, handles)
                .await
                .is_ok()
            {
                self.unreported.fetch_add(n, Ordering::Relaxed);
            }
        }
        if self.unreported.load(Ordering::Relaxed) > 0 {
            self.heartbeat(self.st.node.clock().now_ms()).await;
        }
        debug!(group = %self.group, "pusher stopped");
    }

    /// Puts acks taken for a lease back, first in line.
    fn ride_back(&self, acks: Vec<Pushed>) {
        if acks.is_empty() {
            return;
        }
        let mut r = self.riding.lock().unwrap_or_else(|e| e.into_inner());
        let later = std::mem::replace(&mut *r, acks);
        r.extend(later);
    }

    /// Says this gateway pushes the group (it counts in the queues' shares), with the acks
    /// that rode leases since the last report.
    async fn heartbeat(&self, now: i64) {
        let delivered = self.unreported.swap(0, Ordering::Relaxed);
        let report = Command::PushReport {
            group: self.group.clone(),
            gateway: self.st.node.settings().gateway_id.clone(),
            delivered,
            failed: 0,
            last_error: None,
            paused_until_ms: paused(&self.paused_until_ms, now),
        };
        match crate::service::submit(&self.st, vec![report]).await {
            Ok(_) => self.last_report_ms.store(now, Ordering::Relaxed),
            Err(e) => {
                self.unreported.fetch_add(delivered, Ordering::Relaxed);
                debug!(group = %self.group, error = %e, "push: report failed");
            }
        }
    }

    /// Waits `d`, or less if the definition changes, a version is applied or pushes finish.
    async fn idle(&mut self, d: Duration) {
        let settled = self.settled.clone();
        let _ = tokio::time::timeout(d, async {
            tokio::select! {
                _ = self.def.changed() => {}
                _ = settled.notified() => {}
                _ = self.version.changed() => {}
            }
        })
        .await;
    }
}

/// Pushes one delivery and says how it went.
async fn push_one(
    st: &AppState,
    client: &reqwest::Client,
    group: &str,
    d: Delivery,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Pushed {
    // The group as it is now: its endpoint or format may have changed while this message was
    // being leased, or it may have turned to pull (then the message goes back at once).
    let current = st
        .node
        .state()
        .groups
        .get(group)
        .and_then(|g| g.def.push.clone());
    let Some(push) = current.as_ref() else {
        return Pushed {
            receipt_handle: d.receipt_handle,
            topic: d.message.topic.clone(),
            queue: d.message.queue,
            offset: d.message.offset,
            attempt: d.attempt,
            answer: Answer::Released,
            _slot: slot,
        };
    };
    let answer = match st.push.allow.check(&push.url) {
        Err(e) => Answer::Failed {
            error: e.to_string(),
            retry_after_ms: None,
        },
        Ok(url) => {
            let secret = st.push.key.secret(group, &push.secret_nonce);
            let request = event::build(
                &d.message,
                d.attempt,
                push.format,
                &secret,
                st.node.clock().now_ms(),
            );
            let timeout = Duration::from_millis(push.timeout_ms);
            post(client, url, request, timeout, st.node.clock().as_ref()).await
        }
    };
    crate::metrics::observe_push(answer == Answer::Delivered);
    if let Answer::Failed { error, .. } = &answer {
        debug!(%group, message_id = %d.message.message.message_id, attempt = d.attempt, %error, "push failed");
    }
    Pushed {
        receipt_handle: d.receipt_handle,
        topic: d.message.topic.clone(),
        queue: d.message.queue,
        offset: d.message.offset,
        attempt: d.attempt,
        answer,
        _slot: slot,
    }
}

/// POSTs `request` to `url` within `timeout` (answer included).
async fn post(
    client: &reqwest::Client,
    url: url::Url,
    request: event::PushRequest,
    timeout: Duration,
    clock: &dyn segment_writer::clock::Clock,
) -> Answer {
    let mut builder = client.post(url).timeout(timeout).body(request.body);
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    let exchange = async {
        let mut response = builder.send().await?;
        let status = response.status();
        let retry_after_ms = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after_ms(v, clock.now_ms()));
        // Read a little of the answer so the connection can be reused; never all of it.
        let mut read = 0;
        while let Some(chunk) = response.chunk().await? {
            read += chunk.len();
            if read > MAX_ANSWER_BYTES {
                break;
            }
        }
        Ok::<_, reqwest::Error>((status, retry_after_ms))
    };
    match exchange.await {
        Ok((status, _)) if status.is_success() => Answer::Delivered,
        Ok((status, retry_after_ms)) => Answer::Failed {
            error: format!("the endpoint answered {status}"),
            retry_after_ms: retry_after_ms.filter(|_| {
                status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            }),
        },
        Err(e) if e.is_timeout() => Answer::Failed {
            error: format!("no answer within {} ms", timeout.as_millis()),
            retry_after_ms: None,
        },
        Err(e) => Answer::Failed {
            error: crate::client::chain(&e),
            retry_after_ms: None,
        },
    }
}

/// Settles finished pushes in batches: acks and nacks (with the group's backoff, or a longer
/// `Retry-After`) and the counters, in one delta. A settle that cannot be committed after a
/// few tries is given up: its leases expire and the messages are pushed again.
#[allow(clippy::too_many_arguments)] // the pusher's shared handles, each one thing
async fn settle_loop(
    st: Arc<AppState>,
    group: String,
    mut done: mpsc::UnboundedReceiver<Pushed>,
    paused_until_ms: Arc<AtomicI64>,
    settled: Arc<Notify>,
    last_report_ms: Arc<AtomicI64>,
    riding: Arc<Mutex<Vec<Pushed>>>,
    unreported: Arc<AtomicU64>,
) {
    while let Some(first) = done.recv().await {
        let mut batch = vec![first];
        while batch.len() < crate::service::settle::MAX_HANDLES {
            match done.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        // Answered 2xx: the acks ride the pusher's next lease.
        let (delivered_now, batch): (Vec<Pushed>, Vec<Pushed>) = batch
            .into_iter()
            .partition(|p| p.answer == Answer::Delivered);
        if !delivered_now.is_empty() {
            riding
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(delivered_now);
            settled.notify_one();
        }
        if batch.is_empty() {
            continue;
        }
        let Some(def) = st.node.state().groups.get(&group).map(|g| g.def.clone()) else {
            continue;
        };
        let now = st.node.clock().now_ms();
        let mut actions: HashMap<(&str, u32, u64), SettleAction> = HashMap::new();
        // The acks that rode leases since the last report are counted with this one.
        let delivered = unreported.swap(0, Ordering::Relaxed);
        let (mut failed, mut last_error) = (0, None);
        for p in &batch {
            let action = match &p.answer {
                Answer::Released => SettleAction::Nack { delay_ms: 0 },
                // Not here: 2xx answers ride the pusher's next lease (above).
                Answer::Delivered => SettleAction::Ack,
                Answer::Failed {
                    error,
                    retry_after_ms,
                } => {
                    failed += 1;
                    last_error = Some(error.clone());
                    if let Some(ms) = retry_after_ms {
                        paused_until_ms.fetch_max(now + ms, Ordering::Relaxed);
                    }
                    SettleAction::Nack {
                        delay_ms: def.backoff_ms(p.attempt).max(retry_after_ms.unwrap_or(0)),
                    }
                }
            };
            actions.insert((p.topic.as_str(), p.queue, p.offset), action);
        }
        let handles: Vec<String> = batch.iter().map(|p| p.receipt_handle.clone()).collect();
        let plan = SettlePlan::new(&st.receipts, &group, &def, &handles, |r, _| {
            actions
                .get(&(r.topic.as_str(), r.queue, r.offset))
                .copied()
                .unwrap_or(SettleAction::Ack)
        });
        let mut commands = plan.commands();
        commands.push(Command::PushReport {
            group: group.clone(),
            gateway: st.node.settings().gateway_id.clone(),
            delivered,
            failed,
            last_error,
            paused_until_ms: paused(&paused_until_ms, now),
        });
        let mut committed = false;
        for attempt in 1..=5u32 {
            match crate::service::submit(&st, commands.clone()).await {
                Ok(_) => {
                    last_report_ms.store(now, Ordering::Relaxed);
                    committed = true;
                    break;
                }
                Err(e) if attempt < 5 => {
                    warn!(%group, error = %e, attempt, "push: settling failed; retrying");
                    st.node
                        .clock()
                        .sleep(Duration::from_millis(200 * u64::from(attempt)))
                        .await;
                }
                Err(e) => {
                    warn!(%group, error = %e, "push: settling failed; the leases will expire and the messages be pushed again");
                }
            }
        }
        if !committed {
            unreported.fetch_add(delivered, Ordering::Relaxed);
        }
        // The slots go back with the batch; the pusher may lease again.
        drop(batch);
        settled.notify_one();
    }
}

/// The end of this gateway's pause of a group, if it is still ahead of `now`.
fn paused(until: &AtomicI64, now: i64) -> Option<i64> {
    Some(until.load(Ordering::Relaxed)).filter(|&t| t > now)
}

/// A `Retry-After` value (RFC 9110 §10.2.3) as milliseconds from `now_ms`: delay-seconds or an
/// HTTP-date (a date in the past means at once), capped at [`MAX_RETRY_AFTER_MS`]; `None` for
/// anything else, which is then ignored.
fn retry_after_ms(value: &str, now_ms: i64) -> Option<i64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = value.parse::<i64>().unwrap_or(i64::MAX);
        return Some(seconds.saturating_mul(1000).min(MAX_RETRY_AFTER_MS));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())?;
    Some(at_ms.saturating_sub(now_ms).clamp(0, MAX_RETRY_AFTER_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example date, in milliseconds.
    const RFC_EXAMPLE_MS: i64 = 784_111_777_000;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(retry_after_ms("120", 0), Some(120_000));
        assert_eq!(retry_after_ms(" 0 ", 0), Some(0));
        assert_eq!(
            retry_after_ms("99999999999999999999999", 0),
            Some(MAX_RETRY_AFTER_MS)
        );
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(retry_after_ms(date, RFC_EXAMPLE_MS - 30_000), Some(30_000));
        // The obsolete forms the RFC says a recipient must accept.
        let rfc850 = "Sunday, 06-Nov-94 08:49:37 GMT";
        assert_eq!(retry_after_ms(rfc850, RFC_EXAMPLE_MS - 5_000), Some(5_000));
        let asctime = "Sun Nov  6 08:49:37 1994";
        assert_eq!(retry_after_ms(asctime, RFC_EXAMPLE_MS - 5_000), Some(5_000));
        // A date already passed: at once. One far ahead: the cap.
        assert_eq!(retry_after_ms(date, RFC_EXAMPLE_MS + 60_000), Some(0));
        assert_eq!(retry_after_ms(date, 0), Some(MAX_RETRY_AFTER_MS));
    }

    #[test]
    fn retry_after_ignores_what_it_cannot_read() {
        for v in ["", "-5", "1.5", "soon", "Sun, 06 Nov 1994", "+30"] {
            assert_eq!(retry_after_ms(v, 0), None, "{v:?}");
        }
    }
}
