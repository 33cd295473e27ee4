//! The gateway's services: what each `/v1` operation does, apart from HTTP. These modules
//! know nothing of axum (no extractors, no responses, no status codes): they take plain
//! arguments, change the manifest through [`Node`], and return values or an [`Error`], which
//! `http::error` maps to HTTP in one place.
//!
//! - [`publish`]: validation, dedup, queue choice and group commit of a publish.
//! - [`consume`]: receive (leasing, FIFO look-ahead, filters), ack, nack, invisibility.
//! - [`lookup`]: pull, lookup by id and by key, cancel of a delayed message.
//! - [`definitions`]: topics and groups defined, deleted, reset, re-driven.
//! - [`transactions`]: decisions, producer groups, check-back polls.
//! - [`settle`]: which commands a list of receipt handles becomes, and each handle's answer.
//! - [`trace`]: a message's life from the delivery ledger (objects and pending events).
//! - [`trace_context`]: W3C `traceparent` / `tracestate` properties checked at publish.
//!
//! Invariant: a request refused with an error changed nothing: every check runs before the
//! first command is submitted.

pub mod consume;
pub mod definitions;
pub mod error;
pub mod lookup;
pub mod publish;
pub mod settle;
pub mod trace;
pub mod trace_context;
pub mod transactions;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use segment_writer::manifest::{Command, Outcome};
use segment_writer::node::Node;

use crate::auth::Verifier;
use crate::batcher::Batcher;
use crate::forward::ForwardKey;
use crate::reader::Reader;
use crate::receipt::ReceiptKey;
pub use error::{Error, Result};

/// Request limits (API.md "Limits").
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_request_bytes: usize,
    pub max_messages_per_publish: usize,
    pub max_receive: u32,
    pub max_wait_ms: u64,
    pub max_properties_bytes: usize,
    pub max_delay_ms: i64,
    /// Leased plus retrying messages per group ([`Command::Lease`]`::max_in_flight`).
    pub max_in_flight_per_group: u32,
}

/// Everything a service (and a handler) needs.
#[derive(Debug)]
pub struct AppState {
    pub node: Node,
    pub batcher: Batcher,
    pub reader: Arc<Reader>,
    pub verifier: Verifier,
    pub receipts: ReceiptKey,
    pub forward_key: ForwardKey,
    pub limits: Limits,
    pub round_robin: AtomicU64,
    /// Bounds the long-polls waiting at once (`--max-long-polls`).
    pub long_polls: tokio::sync::Semaphore,
    /// Offsets this gateway's receives are leasing right now (`claims`).
    pub claims: Arc<crate::claims::Claims>,
    /// Message groups of FIFO messages read here, so looks pass over blocked groups unread.
    pub fifo_groups: crate::fifo_groups::FifoGroups,
    pub ready: AtomicBool,
    pub store_url: String,
    /// `--metrics-per-queue`: backlog gauges with a `queue` label.
    pub metrics_per_queue: bool,
    /// Push delivery: `--push-allow`, the key of push groups' secrets, `--no-push`.
    pub push: crate::push::PushSettings,
}

/// A long-poll's place among the bounded number of waiters (`None` for a request that does
/// not wait); beyond the bound a waiting request is refused at once ([`Error::Busy`]).
pub(crate) fn long_poll_slot(
    st: &AppState,
    wait_ms: u64,
) -> Result<Option<tokio::sync::SemaphorePermit<'_>>> {
    if wait_ms == 0 {
        return Ok(None);
    }
    st.long_polls
        .try_acquire()
        .map(Some)
        .map_err(|_| Error::Busy("too many long-polls waiting on this gateway; retry later".into()))
}

/// A long-poll's wait for something to change: false once `deadline` has passed. Wakes on a
/// new version (a publish, a due timer, an expiry) or after at most a second (time-based
/// visibility such as retry backoff needs no new version).
pub(crate) async fn wait_longer(st: &AppState, deadline: tokio::time::Instant) -> bool {
    if tokio::time::Instant::now() >= deadline {
        return false;
    }
    let wake = deadline.min(tokio::time::Instant::now() + Duration::from_millis(1000));
    wait_for_change(st, wake).await;
    true
}

pub(crate) async fn wait_for_change(st: &AppState, deadline: tokio::time::Instant) -> bool {
    let mut rx = st.node.watch_version();
    rx.borrow_and_update();
    tokio::time::timeout_at(deadline, rx.changed())
        .await
        .is_ok()
}

/// `name` unless it is not 1..=`max` of `[A-Za-z0-9._-]` ([`Error::InvalidName`]).
pub fn check_name(kind: &str, name: &str, max: usize) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(format!(
            "invalid {kind} name {name:?}: use 1..={max} of A-Z a-z 0-9 . _ -"
        )))
    }
}

/// Names starting with `DLQ.` are the gateway's.
pub fn reserved(kind: &str, name: &str) -> Result<()> {
    if name.starts_with("DLQ.") {
        return Err(Error::InvalidName(format!(
            "{kind} names starting with DLQ. are reserved"
        )));
    }
    Ok(())
}

/// On a follower a definition made on another gateway arrives within a tail interval: before
/// answering 404 for a name this gateway does not know, catch up with the log, i.e. apply
/// everything committed before this request (`Node::catch_up`: a tail round that began after
/// the request read the log to its end). A store failing meanwhile delays the answer (at most
/// 5 s) rather than turn a transient error into a false 404.
pub async fn refresh_unless(
    st: &AppState,
    known: impl Fn(&segment_writer::manifest::State) -> bool,
) {
    if !known(&st.node.state()) {
        st.node.catch_up(Duration::from_secs(5)).await;
    }
}

/// Submits and returns the version and the outcomes.
pub(crate) async fn submit(st: &AppState, commands: Vec<Command>) -> Result<(u64, Vec<Outcome>)> {
    let c = st.node.submit(commands).await?;
    Ok((c.version, c.outcomes))
}

/// Submits, then waits until this gateway has applied the version (read your writes).
pub(crate) async fn submit_and_apply(
    st: &AppState,
    commands: Vec<Command>,
) -> Result<Vec<Outcome>> {
    let (version, outcomes) = submit(st, commands).await?;
    st.node.wait_applied(version, Duration::from_secs(5)).await;
    Ok(outcomes)
}

/// The outcome of a single command, a rejection as its error.
pub(crate) fn one(outcomes: Vec<Outcome>) -> Result<Outcome> {
    match outcomes.into_iter().next() {
        Some(Outcome::Rejected { rejection }) => Err(rejection.into()),
        Some(o) => Ok(o),
        None => Err(Error::Internal("no outcome".into())),
    }
}

/// An outcome a command cannot have: a bug, answered as 500.
pub(crate) fn unexpected(o: &Outcome) -> Error {
    Error::Internal(format!("unexpected outcome {o:?}"))
}
