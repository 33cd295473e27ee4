//! A node of the manifest: group commit, sequencer leadership, forwarding and tailing.
//!
//! One task (the commit loop) owns the [`ManifestLog`]. Callers [`Node::submit`] commands and
//! await their outcomes. When this node is the sequencer, everything that arrived while a
//! commit was in flight rides the next delta (group commit). Otherwise it hands its commands,
//! coalesced into requests with idempotency ids, to the sequencer through a
//! [`Forwarder`]; a few forwards are in flight at once, and the sequencer remembers the last
//! few request ids per origin. Followers tail the log every `tail_interval`; a follower that
//! sees the log silent for `lease_ttl` claims leadership with epoch + 1, and the conditional
//! create lets exactly one claim win. A deposed sequencer learns it at its next failed create.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::manifest::{
    AppliedDelta, Command, CommitAttempt, Created, Entry, LogSettings, ManifestLog, Outcome,
    PreparedDelta, RequestId, State,
};
use crate::store::Store;
use crate::{Error, Result};

/// Settings of a node. Defaults follow DESIGN.md.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// This incarnation's id (unique per process start).
    pub gateway_id: String,
    /// How other gateways reach this one (recorded with its sequencer claim).
    pub address: String,
    /// A follower that sees the log silent this long takes over. Default 3 s.
    pub lease_ttl: Duration,
    /// An idle sequencer writes an empty delta this often. Default 1 s (≤ lease_ttl / 3).
    pub heartbeat: Duration,
    /// Followers GET the next version this often. Shorter: fresher followers, more GETs
    /// (10/s per follower at 100 ms). Default 100 ms.
    pub tail_interval: Duration,
    /// A submission not committed within this is failed as unknown. Default 10 s.
    pub submit_timeout: Duration,
    /// Commands in one delta at most. Default 20,000.
    pub max_commands_per_delta: usize,
    /// Deltas the sequencer has in flight at once, each chained to the one before it
    /// (DESIGN.md, "Several deltas in flight"): a submission never waits for a whole commit
    /// round trip before its own starts. More: lower latency under load, up to this many log
    /// PUTs per PUT latency. 1 = one commit at a time. Default 16.
    pub max_deltas_in_flight: usize,
    /// While deltas are in flight, another starts at most this many times per typical create
    /// latency (the recent median): PUTs per second stay near this ÷ latency however fast the
    /// submissions come, and a slow create still never holds up the next (up to
    /// `max_deltas_in_flight`). Default 4.
    pub deltas_per_round_trip: u32,
    /// Log settings.
    pub log: LogSettings,
}

impl NodeSettings {
    /// Defaults for a node with this id and address.
    pub fn new(gateway_id: impl Into<String>, address: impl Into<String>) -> Self {
        NodeSettings {
            gateway_id: gateway_id.into(),
            address: address.into(),
            lease_ttl: Duration::from_secs(3),
            heartbeat: Duration::from_secs(1),
            tail_interval: Duration::from_millis(100),
            submit_timeout: Duration::from_secs(10),
            max_commands_per_delta: 20_000,
            max_deltas_in_flight: 16,
            deltas_per_round_trip: 4,
            log: LogSettings::default(),
        }
    }
}

/// A request forwarded to the sequencer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRequest {
    pub id: RequestId,
    pub commands: Vec<Command>,
}

/// The sequencer's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ForwardReply {
    /// Applied at `version` (or found already applied).
    Committed {
        version: u64,
        outcomes: Vec<Outcome>,
    },
    /// The receiver is not the sequencer (any more).
    NotSequencer,
    /// The receiver could not commit; the outcome is unknown and the request may be retried.
    Failed { message: String },
}

/// Hands commands to the sequencer at `address`. The gateway implements it over HTTP.
#[async_trait]
pub trait Forwarder: Send + Sync + fmt::Debug + 'static {
    /// Sends `request`; an `Err` is a transport failure (unknown outcome, retry with the same id).
    async fn forward(
        &self,
        address: &str,
        request: ForwardRequest,
    ) -> std::result::Result<ForwardReply, String>;
}

/// Committed outcomes of one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub version: u64,
    pub outcomes: Vec<Outcome>,
}

type Reply = oneshot::Sender<Result<Committed>>;

/// Forwards one follower keeps in flight at least (else as many as the pipeline is deep). The
/// sequencer remembers the last [`crate::manifest::model::REQUESTS_PER_ORIGIN`] request ids
/// per origin, far more than this.
const MIN_FORWARDS_IN_FLIGHT: usize = 4;

/// Submissions waiting for a commit. `parts` splits a coalesced entry's outcomes back.
struct Pending {
    request: Option<RequestId>,
    commands: Vec<Command>,
    parts: Vec<(usize, Reply)>,
    deadline: tokio::time::Instant,
}

impl Pending {
    fn answer(self, result: Result<Committed>) {
        match result {
            Ok(c) => {
                let mut outcomes = c.outcomes.into_iter();
                for (n, reply) in self.parts {
                    let mine: Vec<Outcome> = outcomes.by_ref().take(n).collect();
                    let _ = reply.send(Ok(Committed {
                        version: c.version,
                        outcomes: mine,
                    }));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for (_, reply) in self.parts {
                    let _ = reply.send(Err(match &e {
                        Error::ShuttingDown => Error::ShuttingDown,
                        _ => Error::CommitFailed(msg.clone()),
                    }));
                }
            }
        }
    }

    fn coalesce(items: Vec<Pending>, id: RequestId) -> Pending {
        let deadline = items
            .iter()
            .map(|p| p.deadline)
            .min()
            .unwrap_or_else(tokio::time::Instant::now);
        let mut commands = Vec::new();
        let mut parts = Vec::new();
        for p in items {
            commands.extend(p.commands);
            parts.extend(p.parts);
        }
        Pending {
            request: Some(id),
            commands,
            parts,
            deadline,
        }
    }
}

enum Msg {
    Submit(Pending),
    ForwardFailed(Pending),
    ForwardDone,
    Nudge,
}

struct Shared {
    settings: NodeSettings,
    state: Arc<RwLock<State>>,
    tx: mpsc::UnboundedSender<Msg>,
    version: watch::Receiver<u64>,
    applied: broadcast::Sender<Arc<AppliedDelta>>,
    store: Store,
    clock: Arc<dyn Clock>,
    shutdown: watch::Sender<bool>,
    done: watch::Receiver<bool>,
    /// Whether the last manifest read or write reached the store.
    store_ok: std::sync::atomic::AtomicBool,
    /// Tail rounds that read the log to its end without an error.
    tails: watch::Sender<u64>,
    /// The newest version this node knows exists (from the sequencer's answers to its
    /// forwards, and versions it was asked to wait for): a tail fetches up to it without
    /// guessing.
    known_head: AtomicU64,
}

/// A handle to a running node (cheap to clone).
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("gateway_id", &self.shared.settings.gateway_id)
            .finish()
    }
}

impl Node {
    /// Opens the log on `store` and starts the commit loop.
    pub async fn start(
        store: Store,
        settings: NodeSettings,
        clock: Arc<dyn Clock>,
        forwarder: Arc<dyn Forwarder>,
        seed: u64,
    ) -> Result<Node> {
        let log = ManifestLog::open(
            store.clone(),
            settings.log.clone(),
            clock.clone(),
            settings.gateway_id.clone(),
            seed,
        )
        .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (version_tx, version) = watch::channel(log.version());
        let (applied, _) = broadcast::channel(4096);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (done_tx, done) = watch::channel(false);
        let shared = Arc::new(Shared {
            settings,
            state: log.state(),
            tx,
            version,
            applied,
            store,
            clock,
            shutdown,
            done,
            store_ok: std::sync::atomic::AtomicBool::new(true),
            tails: watch::channel(0).0,
            known_head: AtomicU64::new(0),
        });
        let lp = CommitLoop {
            shared: shared.clone(),
            log,
            rx,
            version_tx,
            forwarder,
            pending: VecDeque::new(),
            retry: VecDeque::new(),
            in_flight: VecDeque::new(),
            creates: FuturesOrdered::new(),
            checkpointing: None,
            last_start: shared.clock.instant(),
            paced_until: None,
            forwarding: 0,
            seq: AtomicU64::new(0),
            last_progress: shared.clock.instant(),
            last_commit: shared.clock.instant(),
            tail_due: shared.clock.instant(),
            shutdown: shutdown_rx,
        };
        tokio::spawn(async move {
            lp.run().await;
            let _ = done_tx.send(true);
        });
        Ok(Node { shared })
    }

    /// Submits commands; resolves once they are committed (or failed) with one outcome each.
    pub async fn submit(&self, commands: Vec<Command>) -> Result<Committed> {
        self.enqueue(None, commands).await
    }

    /// Applies a request forwarded by another gateway (call only on the sequencer's side).
    pub async fn submit_forwarded(&self, request: ForwardRequest) -> ForwardReply {
        if !self.is_sequencer() {
            return ForwardReply::NotSequencer;
        }
        match self.enqueue(Some(request.id), request.commands).await {
            Ok(c) => ForwardReply::Committed {
                version: c.version,
                outcomes: c.outcomes,
            },
            Err(Error::Fenced(_)) => ForwardReply::NotSequencer,
            Err(e) => ForwardReply::Failed {
                message: e.to_string(),
            },
        }
    }

    async fn enqueue(
        &self,
        request: Option<RequestId>,
        commands: Vec<Command>,
    ) -> Result<Committed> {
        let (reply, rx) = oneshot::channel();
        let n = commands.len();
        let deadline = self.shared.clock.instant() + self.shared.settings.submit_timeout;
        let p = Pending {
            request,
            commands,
            parts: vec![(n, reply)],
            deadline,
        };
        self.shared
            .tx
            .send(Msg::Submit(p))
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    /// The replicated state (read only).
    pub fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.shared.state.read().expect("state lock poisoned")
    }

    /// The shared state itself, for readers that need it without a guard.
    pub fn shared_state(&self) -> Arc<RwLock<State>> {
        self.shared.state.clone()
    }

    /// The applied version.
    pub fn version(&self) -> u64 {
        *self.shared.version.borrow()
    }

    /// Waits until this node has applied `version` (read-your-writes after a forwarded
    /// submit, whose outcome arrives before the follower has tailed the version), at most `max`.
    pub async fn wait_applied(&self, version: u64, max: Duration) -> bool {
        if self.version() >= version {
            return true;
        }
        self.shared.known_head.fetch_max(version, Ordering::Relaxed);
        self.nudge();
        let mut rx = self.shared.version.clone();
        tokio::time::timeout(max, rx.wait_for(|v| *v >= version))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until this node has applied every version committed before the call: on the
    /// sequencer at once, on a follower after a tail round that began after the call has read
    /// the log to its end (it asks for one now). False if that did not happen within `max` (the
    /// store failing). What a follower checks before answering that something does not exist.
    pub async fn catch_up(&self, max: Duration) -> bool {
        if self.is_sequencer() {
            return true;
        }
        let mut rx = self.shared.tails.subscribe();
        // A round in progress may have begun before the call: the one after it did not.
        let target = *rx.borrow_and_update() + 2;
        // Ask for a round after each one ends (and again after a failed one).
        let again = self
            .shared
            .settings
            .tail_interval
            .min(Duration::from_millis(100));
        let caught_up = async {
            loop {
                self.nudge();
                if *rx.borrow_and_update() >= target {
                    return;
                }
                let _ = tokio::time::timeout(again, rx.changed()).await;
            }
        };
        tokio::time::timeout(max, caught_up).await.is_ok()
    }

    /// Watches the applied version.
    pub fn watch_version(&self) -> watch::Receiver<u64> {
        self.shared.version.clone()
    }

    /// Every delta this node applies, as it applies it.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AppliedDelta>> {
        self.shared.applied.subscribe()
    }

    /// Whether this node is the sequencer according to its state.
    pub fn is_sequencer(&self) -> bool {
        self.state()
            .sequencer
            .as_ref()
            .is_some_and(|s| s.gateway == self.shared.settings.gateway_id)
    }

    /// The settings.
    pub fn settings(&self) -> &NodeSettings {
        &self.shared.settings
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// Asks the follower loop to tail the log now.
    pub fn nudge(&self) {
        let _ = self.shared.tx.send(Msg::Nudge);
    }

    /// Stops the commit loop after committing what is pending; resolves when it has stopped.
    pub async fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
        let mut done = self.shared.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Whether the last manifest read or write reached the store (`/readyz`). A failure turns
    /// it false; the next success (a heartbeat or a tail, within a second) turns it true again.
    pub fn store_healthy(&self) -> bool {
        self.shared.store_ok.load(Ordering::SeqCst)
    }

    /// Whether the commit loop has stopped.
    pub fn is_stopped(&self) -> bool {
        *self.shared.done.borrow()
    }
}

/// A delta of the sequencer's whose create is in flight, and the submissions it carries.
struct InFlight {
    /// Until it is settled.
    prepared: Option<PreparedDelta>,
    version: u64,
    id: crate::manifest::DeltaId,
    batch: Vec<Pending>,
}

struct CommitLoop {
    shared: Arc<Shared>,
    /// Deltas in flight, oldest first; `creates` holds their creates in the same order.
    in_flight: VecDeque<InFlight>,
    creates: FuturesOrdered<tokio::task::JoinHandle<Created>>,
    /// The checkpoint being written (and the log collected behind it), on its own task.
    checkpointing: Option<tokio::task::JoinHandle<()>>,
    /// When the newest delta in flight started.
    last_start: tokio::time::Instant,
    /// Submissions wait for the pipeline's pace until then.
    paced_until: Option<tokio::time::Instant>,
    log: ManifestLog,
    rx: mpsc::UnboundedReceiver<Msg>,
    version_tx: watch::Sender<u64>,
    forwarder: Arc<dyn Forwarder>,
    pending: VecDeque<Pending>,
    /// Forwarded batches that failed and must be resolved with their ids.
    retry: VecDeque<Pending>,
    /// Forwards in flight.
    forwarding: usize,
    seq: AtomicU64,
    last_progress: tokio::time::Instant,
    last_commit: tokio::time::Instant,
    /// When a follower next GETs the log.
    tail_due: tokio::time::Instant,
    shutdown: watch::Receiver<bool>,
}

impl CommitLoop {
    fn me(&self) -> &str {
        &self.shared.settings.gateway_id
    }

    fn is_leader(&self) -> bool {
        self.shared
            .state
            .read()
            .expect("state lock poisoned")
            .sequencer
            .as_ref()
            .is_some_and(|s| s.gateway == self.me())
    }

    fn publish(&mut self, applied: Vec<AppliedDelta>) {
        if applied.is_empty() {
            return;
        }
        self.last_progress = self.shared.clock.instant();
        for a in applied.into_iter().filter(|a| !a.orphan) {
            let _ = self.shared.applied.send(Arc::new(a));
        }
        let _ = self.version_tx.send(self.log.version());
    }

    fn take(&mut self, msg: Msg) {
        take_msg(
            msg,
            &mut self.pending,
            &mut self.retry,
            &mut self.forwarding,
            &mut self.tail_due,
            &self.shared,
        );
    }

    fn expire(&mut self) {
        let now = self.shared.clock.instant();
        let (keep, dead): (VecDeque<_>, VecDeque<_>) =
            self.retry.drain(..).partition(|p| p.deadline > now);
        self.retry = keep;
        for p in dead {
            p.answer(Err(Error::CommitFailed(
                "no sequencer answered in time".into(),
            )));
        }
        let (keep, dead): (VecDeque<_>, VecDeque<_>) =
            self.pending.drain(..).partition(|p| p.deadline > now);
        self.pending = keep;
        for p in dead {
            p.answer(Err(Error::CommitFailed("not committed in time".into())));
        }
    }

    async fn run(mut self) {
        loop {
            while let Ok(m) = self.rx.try_recv() {
                self.take(m);
            }
            let stopping = *self.shutdown.borrow();
            self.expire();
            let leading = !self.in_flight.is_empty() || self.is_leader();
            if leading {
                if self.in_flight.is_empty() {
                    match self.log.refresh_if_stale().await {
                        Ok(None) => {}
                        Ok(Some(last)) => {
                            self.publish(vec![last]);
                            continue;
                        }
                        Err(e) => {
                            warn!(error = %e, "re-reading the stale manifest failed");
                            self.shared.store_ok.store(false, Ordering::SeqCst);
                        }
                    }
                }
                self.fill_pipeline();
            } else {
                if !stopping && self.should_take_over() {
                    self.take_over().await;
                    continue;
                }
                self.forward_pending();
                let now = self.shared.clock.instant();
                if now >= self.tail_due {
                    self.tail_due = now + self.shared.settings.tail_interval;
                    self.tail().await;
                }
            }
            if stopping
                && self.pending.is_empty()
                && self.retry.is_empty()
                && self.forwarding == 0
                && self.in_flight.is_empty()
            {
                break;
            }
            if stopping && !self.is_leader() && sequencer_address(&self.shared).is_none() {
                break;
            }
            let wait = if let Some(at) = self.paced_until {
                at.saturating_duration_since(self.shared.clock.instant())
            } else if !self.in_flight.is_empty() {
                // A create finishing wakes the loop.
                self.shared.settings.heartbeat
            } else if leading {
                self.shared
                    .settings
                    .heartbeat
                    .saturating_sub(self.last_commit.elapsed())
            } else {
                self.tail_due
                    .saturating_duration_since(self.shared.clock.instant())
            };
            let sleep = self.shared.clock.sleep(wait.max(Duration::from_millis(1)));
            tokio::select! {
                created = self.creates.next(), if !self.creates.is_empty() => {
                    if let Some(created) = created {
                        self.settle_front(created).await;
                    }
                }
                m = self.rx.recv() => match m {
                    Some(m) => self.take(m),
                    None => break,
                },
                _ = self.shutdown.changed() => {}
                _ = sleep => {}
            }
        }
        for p in self.pending.drain(..).chain(self.retry.drain(..)) {
            p.answer(Err(Error::ShuttingDown));
        }
        debug!(gateway = %self.shared.settings.gateway_id, "commit loop stopped");
    }

    /// Applies what others committed, waking waiters as each version is applied. Submissions
    /// that arrive meanwhile are forwarded at once: a tail round chasing a busy sequencer can
    /// take many GETs, and a forward must not wait for it.
    async fn tail(&mut self) {
        let shared = &self.shared;
        let version_tx = &self.version_tx;
        let (rx, seq, forwarder) = (&mut self.rx, &self.seq, &self.forwarder);
        let (pending, retry) = (&mut self.pending, &mut self.retry);
        let (forwarding, tail_due) = (&mut self.forwarding, &mut self.tail_due);
        let known = shared.known_head.load(Ordering::Relaxed);
        let catch_up = self.log.catch_up_each(known, |a| {
            if !a.orphan {
                let _ = shared.applied.send(Arc::new(a.clone()));
            }
            let _ = version_tx.send(a.delta.version);
        });
        tokio::pin!(catch_up);
        let result = loop {
            tokio::select! {
                r = &mut catch_up => break r,
                Some(m) = rx.recv() => {
                    take_msg(m, pending, retry, forwarding, tail_due, shared);
                    start_forwards(pending, retry, forwarding, seq, shared, forwarder);
                }
            }
        };
        self.shared.store_ok.store(result.is_ok(), Ordering::SeqCst);
        if result.is_ok() {
            self.shared.tails.send_modify(|n| *n += 1);
        }
        match result {
            Ok(0) => {}
            Ok(_) => self.last_progress = self.shared.clock.instant(),
            Err(e) => warn!(error = %e, "tailing the manifest failed"),
        }
    }

    fn should_take_over(&self) -> bool {
        let state = self.shared.state.read().expect("state lock poisoned");
        match &state.sequencer {
            None => true,
            // My address is mine now: the process that claimed it before me is gone.
            Some(s)
                if s.address == self.shared.settings.address
                    && !s.address.is_empty()
                    && !s.address.starts_with("0.0.0.0") =>
            {
                true
            }
            Some(_) => self.last_progress.elapsed() >= self.shared.settings.lease_ttl,
        }
    }

    async fn take_over(&mut self) {
        let epoch = self
            .shared
            .state
            .read()
            .expect("state lock poisoned")
            .sequencer
            .as_ref()
            .map_or(0, |s| s.epoch)
            + 1;
        let claim = Command::Sequencer {
            gateway: self.me().to_string(),
            address: self.shared.settings.address.clone(),
            epoch,
        };
        match self
            .log
            .try_commit(vec![Entry {
                request: None,
                commands: vec![claim],
            }])
            .await
        {
            Ok(CommitAttempt::Committed(a)) => {
                info!(gateway = %self.me(), epoch, version = a.delta.version, "became sequencer");
                self.last_commit = self.shared.clock.instant();
                self.publish(vec![a]);
            }
            Ok(CommitAttempt::Conflict(a)) => self.publish(vec![a]),
            Err(e) => {
                warn!(error = %e, "sequencer claim failed");
                self.shared
                    .clock
                    .sleep(self.shared.settings.tail_interval)
                    .await;
            }
        }
    }

    /// Starts deltas while the pipeline has room: everything pending (up to
    /// `max_commands_per_delta`) rides the next one, chained to the delta before it; an idle
    /// sequencer with nothing in flight writes a heartbeat. Each create runs on its own task.
    fn fill_pipeline(&mut self) {
        let max = self.shared.settings.max_commands_per_delta;
        let depth = self.shared.settings.max_deltas_in_flight.max(1);
        self.paced_until = None;
        while self.in_flight.len() < depth {
            if !self.in_flight.is_empty() && self.log.is_stale() {
                // Re-read before writing on (after the pipeline drains): never chain more
                // deltas onto knowledge older than half the GC grace.
                return;
            }
            let heartbeat = self.in_flight.is_empty()
                && self.last_commit.elapsed() >= self.shared.settings.heartbeat;
            if self.retry.is_empty() && self.pending.is_empty() && !heartbeat {
                return;
            }
            if let Some(at) = self.next_start() {
                if at > self.shared.clock.instant() {
                    // Paced: what arrives meanwhile rides the next delta.
                    self.paced_until = Some(at);
                    return;
                }
            }
            let mut batch: Vec<Pending> = Vec::new();
            let mut n = 0;
            while let Some(p) = self.retry.pop_front() {
                n += p.commands.len();
                batch.push(p);
            }
            while let Some(p) = self.pending.front() {
                if n > 0 && n + p.commands.len() > max {
                    break;
                }
                n += p.commands.len();
                batch.extend(self.pending.pop_front());
            }
            let entries: Vec<Entry> = batch
                .iter()
                .map(|p| Entry {
                    request: p.request.clone(),
                    commands: p.commands.clone(),
                })
                .collect();
            let prepared = match self.log.prepare(
                entries,
                self.in_flight.back().and_then(|f| f.prepared.as_ref()),
            ) {
                Ok(p) => p,
                Err(e) => {
                    let msg = e.to_string();
                    for p in batch {
                        p.answer(Err(Error::CommitFailed(msg.clone())));
                    }
                    return;
                }
            };
            self.creates
                .push_back(tokio::spawn(self.log.create(&prepared)));
            self.in_flight.push_back(InFlight {
                version: prepared.delta.version,
                id: prepared.delta.id(),
                prepared: Some(prepared),
                batch,
            });
            // A heartbeat counts from when it is sent, so an idle loop does not send another.
            self.last_commit = self.shared.clock.instant();
            self.last_start = self.last_commit;
        }
    }

    /// When the next delta may start while others are in flight (`None`: now).
    fn next_start(&self) -> Option<tokio::time::Instant> {
        if self.in_flight.is_empty() {
            return None;
        }
        let per = self.shared.settings.deltas_per_round_trip.max(1);
        let gap = self.log.typical_create()? / per;
        Some(self.last_start + gap)
    }

    /// Settles the oldest delta in flight once its create has finished: answers its requests
    /// if it is mine at its version; otherwise resolves everything in flight
    /// ([`CommitLoop::resolve`]).
    async fn settle_front(
        &mut self,
        created: std::result::Result<Created, tokio::task::JoinError>,
    ) {
        let created = created.unwrap_or_else(|e| {
            Created::Failed(Error::CommitFailed(format!(
                "manifest create task failed: {e}"
            )))
        });
        let mut front = self
            .in_flight
            .pop_front()
            .expect("a create finished, so a delta is in flight");
        let prepared = front
            .prepared
            .take()
            .expect("each delta in flight is settled once");
        let result = self.log.settle(prepared, created).await;
        self.shared.store_ok.store(result.is_ok(), Ordering::SeqCst);
        match result {
            Ok(CommitAttempt::Committed(a)) if !a.orphan => {
                self.shared.tails.send_modify(|n| *n += 1);
                self.last_commit = self.shared.clock.instant();
                let version = a.delta.version;
                for (p, outcomes) in front.batch.into_iter().zip(a.outcomes.iter().cloned()) {
                    p.answer(Ok(Committed { version, outcomes }));
                }
                self.publish(vec![a]);
                let idle = self.checkpointing.as_ref().is_none_or(|j| j.is_finished());
                if idle && self.log.checkpoint_due() {
                    let job = self.log.checkpoint_job();
                    self.checkpointing = Some(tokio::spawn(async move {
                        if let Err(e) = job.await {
                            warn!(error = %e, "checkpoint failed");
                        }
                    }));
                }
            }
            Ok(CommitAttempt::Committed(a) | CommitAttempt::Conflict(a)) => {
                // Another writer's delta holds the version (or mine landed as an orphan):
                // mine never applied; nor will any delta in flight after it.
                self.publish(vec![a]);
                self.resolve(front, true, None).await;
                if !self.is_leader() {
                    info!(gateway = %self.me(), "deposed as sequencer; forwarding from now on");
                }
            }
            Err(e) => {
                warn!(error = %e, "manifest commit failed");
                self.resolve(front, false, Some(e.to_string())).await;
            }
        }
    }

    /// Resolves `front` (already settled, not applied as mine) and every delta still in flight
    /// after it, once their creates have finished and the log has been read to its end: a
    /// delta applied as mine answers its outcomes; one whose version holds another's delta, or
    /// that landed as an orphan, or that follows one of those (`doomed`: it can only ever be
    /// an orphan) is submitted again; one whose version is still empty after a failed create
    /// answers an error (it may land later: its outcome is unknown).
    async fn resolve(&mut self, front: InFlight, mut doomed: bool, failure: Option<String>) {
        let mut all = vec![front];
        while let Some(created) = self.creates.next().await {
            drop(created);
            all.extend(self.in_flight.pop_front());
        }
        all.extend(self.in_flight.drain(..));
        let mut landed: std::collections::BTreeMap<u64, AppliedDelta> = Default::default();
        match self.log.catch_up().await {
            Ok(applied) => {
                for a in &applied {
                    landed.insert(a.delta.version, a.clone());
                }
                self.publish(applied);
            }
            Err(e) => warn!(error = %e, "re-reading the manifest failed"),
        }
        let failure = failure.unwrap_or_else(|| "the manifest commit failed".into());
        let mut again: Vec<Pending> = Vec::new();
        for f in all {
            let version = f.version;
            let mine =
                |a: &AppliedDelta| a.delta.writer == f.id.writer && a.delta.nonce == f.id.nonce;
            match landed.get(&version) {
                // The log is the truth: a delta of mine that applied is answered.
                Some(a) if mine(a) && !a.orphan => {
                    for (p, outcomes) in f.batch.into_iter().zip(a.outcomes.iter().cloned()) {
                        p.answer(Ok(Committed { version, outcomes }));
                    }
                }
                Some(_) => {
                    doomed = true;
                    again.extend(f.batch);
                }
                // Its chain passes through a delta that lost: it can only land as an orphan.
                None if doomed => again.extend(f.batch),
                None => {
                    for p in f.batch {
                        p.answer(Err(Error::CommitFailed(failure.clone())));
                    }
                }
            }
        }
        for p in again.into_iter().rev() {
            if p.request.is_some() {
                self.retry.push_front(p);
            } else {
                self.pending.push_front(p);
            }
        }
    }

    /// Starts forwards while there is room and something to forward.
    fn forward_pending(&mut self) {
        start_forwards(
            &mut self.pending,
            &mut self.retry,
            &mut self.forwarding,
            &self.seq,
            &self.shared,
            &self.forwarder,
        );
    }
}

/// Where the sequencer the state names can be reached.
fn sequencer_address(shared: &Shared) -> Option<String> {
    shared
        .state
        .read()
        .expect("state lock poisoned")
        .sequencer
        .as_ref()
        .map(|s| s.address.clone())
}

/// Takes one message of the commit loop's channel into its queues.
fn take_msg(
    msg: Msg,
    pending: &mut VecDeque<Pending>,
    retry: &mut VecDeque<Pending>,
    forwarding: &mut usize,
    tail_due: &mut tokio::time::Instant,
    shared: &Shared,
) {
    match msg {
        Msg::Submit(p) => pending.push_back(p),
        Msg::ForwardFailed(p) => {
            *forwarding -= 1;
            retry.push_back(p);
        }
        Msg::ForwardDone => *forwarding -= 1,
        Msg::Nudge => *tail_due = shared.clock.instant(),
    }
}

/// Starts forwards to the sequencer (retries first, then everything pending coalesced into
/// one request with a new id) while fewer than the sequencer's pipeline depth (at least
/// [`MIN_FORWARDS_IN_FLIGHT`]) are in flight.
fn start_forwards(
    pending: &mut VecDeque<Pending>,
    retry: &mut VecDeque<Pending>,
    forwarding: &mut usize,
    seq: &AtomicU64,
    shared: &Arc<Shared>,
    forwarder: &Arc<dyn Forwarder>,
) {
    let most = shared
        .settings
        .max_deltas_in_flight
        .max(MIN_FORWARDS_IN_FLIGHT);
    while *forwarding < most && (!retry.is_empty() || !pending.is_empty()) {
        let Some(address) = sequencer_address(shared) else {
            return;
        };
        let batch = match retry.pop_front() {
            Some(p) => p,
            None => {
                let items: Vec<Pending> = pending.drain(..).collect();
                let seq = seq.fetch_add(1, Ordering::Relaxed);
                Pending::coalesce(
                    items,
                    RequestId {
                        origin: shared.settings.gateway_id.clone(),
                        seq,
                    },
                )
            }
        };
        *forwarding += 1;
        let forwarder = forwarder.clone();
        let tx = shared.tx.clone();
        let clock = shared.clock.clone();
        let backoff = shared.settings.tail_interval;
        let known_head = shared.clone();
        tokio::spawn(async move {
            let request = ForwardRequest {
                id: batch
                    .request
                    .clone()
                    .expect("forwarded batches carry an id"),
                commands: batch.commands.clone(),
            };
            match forwarder.forward(&address, request).await {
                Ok(ForwardReply::Committed {
                    version: v,
                    outcomes,
                }) => {
                    known_head.known_head.fetch_max(v, Ordering::Relaxed);
                    // Answer at once; a caller that must read its write waits with
                    // `Node::wait_applied`, which asks for a tail.
                    batch.answer(Ok(Committed {
                        version: v,
                        outcomes,
                    }));
                    let _ = tx.send(Msg::ForwardDone);
                }
                other => {
                    debug!(?other, %address, "forward failed; will retry");
                    clock.sleep(backoff).await;
                    let _ = tx.send(Msg::Nudge);
                    let _ = tx.send(Msg::ForwardFailed(batch));
                }
            }
        });
    }
}

/// An in-process [`Forwarder`] for tests and simulation: addresses map to nodes.
#[derive(Debug, Default)]
pub struct LocalForwarder {
    nodes: std::sync::Mutex<std::collections::BTreeMap<String, Node>>,
    calls: AtomicU64,
}

impl LocalForwarder {
    /// Registers `node` at its address.
    pub fn register(&self, node: &Node) {
        self.nodes
            .lock()
            .expect("forwarder lock poisoned")
            .insert(node.settings().address.clone(), node.clone());
    }

    /// Removes the node at `address` (as if it died).
    pub fn unregister(&self, address: &str) {
        self.nodes
            .lock()
            .expect("forwarder lock poisoned")
            .remove(address);
    }

    /// Forwards made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Forwarder for LocalForwarder {
    async fn forward(
        &self,
        address: &str,
        request: ForwardRequest,
    ) -> std::result::Result<ForwardReply, String> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let node = self
            .nodes
            .lock()
            .expect("forwarder lock poisoned")
            .get(address)
            .cloned();
        match node {
            Some(n) if !n.is_stopped() => Ok(n.submit_forwarded(request).await),
            _ => Err(format!("connection refused: {address}")),
        }
    }
}
