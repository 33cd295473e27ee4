//! The fault and history checker (issue 5, item 4): N producers and M consumers over HTTP
//! against K gateways on one store, every gateway injecting store errors and lost responses
//! (`--store-faults`), gateways killed with SIGKILL and restarted on a schedule (every other
//! kill hits the current sequencer), while a normal, a FIFO and a transaction topic are
//! published to, consumed by one clustering group and finally pulled back. A push group reads
//! the normal and FIFO topics too: the gateways POST its messages to a receiver in the test
//! that fails one push in five (500) and answers after 0-20 ms; it checks that no
//! acknowledged publish is lost, nothing unpublished is pushed, a FIFO message group's next
//! message is pushed only after the previous one was answered 2xx, and `max_in_flight` holds.
//!
//! Every request is recorded with its start and end time and its outcome: ok, refused (an
//! error status or `ok: false`), or no answer (a transport error or a timeout). The checks,
//! the exact at-least-once contract and how to run it by hand are in `docs/reliability.md`.
//! A violation fails the test and the report names the seed that reproduces the schedule.
//!
//! The test command runs it with modest sizes (`checker_local_dir`, `checker_s3`). By hand:
//! `FERRYMQ_CHECKER_SECS=600 FERRYMQ_CHECKER_KILL_EVERY=20 cargo test -p ferrymq-tests --test
//! checker -- --ignored --nocapture by_hand` (settings below, each a `FERRYMQ_CHECKER_*`).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; the checker runs on real time against real processes

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrymq_tests::common::gateway::{Gateway, token};
use ferrymq_tests::common::stores::{self, Backend};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// What one run does. Every field has a `FERRYMQ_CHECKER_<NAME>` environment twin.
#[derive(Debug, Clone)]
struct Config {
    /// Seconds of load (producers and kills); the drain comes after.
    secs: u64,
    gateways: usize,
    producers: usize,
    consumers: usize,
    /// Seeds the clients' choices, the kill schedule and every gateway's fault generator.
    seed: u64,
    /// Seconds between kills (0: none).
    kill_every: u64,
    /// Fraction of store calls failed, on every gateway.
    errors: f64,
    /// Fraction of store puts that land but report an error.
    lost: f64,
    /// Longest wait, after the load, for every acknowledged message to be delivered.
    drain_secs: u64,
    /// `--store-profile` of the gateways (`none` for no added latency).
    profile: String,
    /// A JSON-lines file to write the whole history to.
    history: Option<String>,
}

impl Config {
    fn with_env(mut self) -> Config {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            let v = std::env::var(format!("FERRYMQ_CHECKER_{name}")).ok()?;
            Some(
                v.parse()
                    .unwrap_or_else(|_| panic!("FERRYMQ_CHECKER_{name}={v:?} does not parse")),
            )
        }
        self.secs = var("SECS").unwrap_or(self.secs);
        self.gateways = var("GATEWAYS").unwrap_or(self.gateways);
        self.producers = var("PRODUCERS").unwrap_or(self.producers);
        self.consumers = var("CONSUMERS").unwrap_or(self.consumers);
        self.seed = var("SEED").unwrap_or(self.seed);
        self.kill_every = var("KILL_EVERY").unwrap_or(self.kill_every);
        self.errors = var("ERRORS").unwrap_or(self.errors);
        self.lost = var("LOST").unwrap_or(self.lost);
        self.drain_secs = var("DRAIN_SECS").unwrap_or(self.drain_secs);
        self.profile = var("PROFILE").unwrap_or(self.profile);
        self.history = var("HISTORY").or(self.history);
        self
    }
}

/// A fresh seed per run unless one is given, so repeated runs explore different schedules.
fn random_seed() -> u64 {
    rand::random::<u32>().into()
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// 2xx.
    Ok,
    /// A non-2xx status: the request left no state (API.md), except that a 5xx on a forwarded
    /// command may hide a commit, so 5xx is treated as indeterminate where it matters.
    Status(u16),
    /// Transport error or timeout: indeterminate.
    NoAnswer,
}

impl Outcome {
    fn name(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Status(s) => format!("http {s}"),
            Outcome::NoAnswer => "no answer".into(),
        }
    }
    /// May the request have taken effect?
    fn maybe_applied(&self) -> bool {
        match self {
            Outcome::Ok | Outcome::NoAnswer => true,
            Outcome::Status(s) => *s >= 500,
        }
    }
}

/// One message a producer tried to publish.
#[derive(Debug, Clone)]
struct Publish {
    topic: &'static str,
    body: String,
    /// FIFO: (message group, sequence in the group's publish order).
    fifo: Option<(String, u64)>,
    start_us: u64,
    end_us: u64,
    gateway: usize,
    outcome: Outcome,
    /// (queue, offset, message_id) of an acknowledged normal or FIFO publish.
    at: Option<(u64, u64, String)>,
    transaction_id: Option<String>,
}

/// One attempt at a transaction decision.
#[derive(Debug, Clone)]
struct Decision {
    body: String,
    action: &'static str,
    start_us: u64,
    end_us: u64,
    gateway: usize,
    outcome: Outcome,
    /// `state` of a 200, or the error code.
    answer: String,
}

/// One message handed out by a receive.
#[derive(Debug, Clone)]
struct Delivery {
    topic: String,
    queue: u64,
    offset: u64,
    body: String,
    message_group: Option<String>,
    attempt: u64,
    receipt: String,
    /// Which receive response it came in.
    batch: u64,
    start_us: u64,
    end_us: u64,
    consumer: usize,
    gateway: usize,
}

/// The outcome of acking one receipt.
#[derive(Debug, Clone)]
struct Ack {
    receipt: String,
    start_us: u64,
    end_us: u64,
    gateway: usize,
    outcome: Outcome,
    /// `Some(true)` for `ok: true`, `Some(false)` for a refusal in a 200.
    ok: Option<bool>,
    error: String,
}

#[derive(Debug, Clone)]
struct Kill {
    at_us: u64,
    gateway: usize,
    sequencer: bool,
    back_after_ms: u64,
}

#[derive(Debug, Default)]
struct History {
    publishes: Vec<Publish>,
    decisions: Vec<Decision>,
    deliveries: Vec<Delivery>,
    acks: Vec<Ack>,
    kills: Vec<Kill>,
    /// (kind, outcome) → count, for every request made.
    requests: BTreeMap<(&'static str, String), u64>,
    /// Latency of acknowledged publishes, microseconds.
    publish_latency_us: Vec<u64>,
}

/// The shared state of one run.
struct Run {
    config: Config,
    t0: Instant,
    bases: Vec<String>,
    http: reqwest::Client,
    token: String,
    history: Mutex<History>,
    batches: AtomicU64,
    /// The fault-free gateway started for the final pull (index [`READER`]).
    reader: std::sync::OnceLock<String>,
}

/// The gateway index that names [`Run::reader`].
const READER: usize = usize::MAX;

impl Run {
    fn base(&self, g: usize) -> &str {
        if g == READER {
            self.reader.get().expect("the reader gateway is started")
        } else {
            &self.bases[g]
        }
    }

    fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// One request to gateway `g`: (outcome, JSON body, start, end).
    async fn request(
        &self,
        kind: &'static str,
        g: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (Outcome, Value, u64, u64) {
        let start = self.now_us();
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base(g)))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let result = async {
            let r = rb.send().await?;
            let status = r.status().as_u16();
            let bytes = r.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        }
        .await;
        let end = self.now_us();
        let (outcome, value) = match result {
            Ok((status, bytes)) => (
                if (200..300).contains(&status) {
                    Outcome::Ok
                } else {
                    Outcome::Status(status)
                },
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ),
            Err(_) => (Outcome::NoAnswer, Value::Null),
        };
        *self
            .history
            .lock()
            .unwrap()
            .requests
            .entry((kind, outcome.name()))
            .or_default() += 1;
        (outcome, value, start, end)
    }

    /// Retries an idempotent admin call on every gateway in turn until it answers 2xx.
    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0.. {
            let g = i % self.bases.len();
            let (o, v, _, _) = self
                .request("admin", g, method.clone(), path, Some(&body))
                .await;
            if o == Outcome::Ok {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{method} {path} never succeeded: {o:?} {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        unreachable!()
    }
}

const NORMAL: &str = "n";
const FIFO: &str = "f";
const TX: &str = "t";
const GROUP: &str = "checker";
/// The push group, and its `max_in_flight`.
const PUSH_GROUP: &str = "pushed";
const PUSH_IN_FLIGHT: usize = 32;
const PUSH_TIMEOUT_MS: u64 = 2000;

/// One POST the push receiver answered.
#[derive(Debug, Clone)]
struct PushHit {
    body: String,
    attempt: u64,
    start_us: u64,
    end_us: u64,
    ok: bool,
}

/// The push group's endpoint: answers 500 to one push in five (seeded), after 0-20 ms.
#[derive(Default)]
struct PushSeen {
    hits: Vec<PushHit>,
    /// Requests being answered now: id → when it was sent (`webhook-timestamp`, whole
    /// seconds). One sent longer ago than the push timeout (plus the second's rounding) was
    /// given up by its gateway, which then settled it: it no longer counts as in flight (a
    /// loaded machine may start a handler seconds after the request arrived).
    open: BTreeMap<u64, u64>,
    next_id: u64,
    max_open: usize,
    open_per_group: BTreeMap<String, usize>,
    overlaps: Vec<String>,
}

async fn push_receiver(
    seed: u64,
    t0: Instant,
) -> (String, Arc<Mutex<PushSeen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(PushSeen::default()));
    let rng = Arc::new(Mutex::new(SmallRng::seed_from_u64(seed.wrapping_mul(31))));
    let shared = seen.clone();
    let app = axum::Router::new().route(
        "/push",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (seen, rng) = (shared.clone(), rng.clone());
                async move {
                    let start_us = t0.elapsed().as_micros() as u64;
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let message_group = header("ferrymq-message-group");
                    let (ok, delay) = {
                        let mut r = rng.lock().unwrap();
                        (!r.random_bool(0.2), r.random_range(0..20))
                    };
                    let id = {
                        let mut s = seen.lock().unwrap();
                        let now_ms = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_millis() as u64;
                        let sent_ms = header("webhook-timestamp")
                            .and_then(|t| t.parse::<u64>().ok())
                            .unwrap_or(now_ms / 1000)
                            * 1000;
                        let id = s.next_id;
                        s.next_id += 1;
                        s.open.insert(id, sent_ms);
                        let live = s
                            .open
                            .values()
                            .filter(|&&t| now_ms.saturating_sub(t) < PUSH_TIMEOUT_MS + 1000)
                            .count();
                        s.max_open = s.max_open.max(live);
                        if let Some(g) = &message_group {
                            let n = s.open_per_group.entry(g.clone()).or_default();
                            *n += 1;
                            if *n > 1 {
                                let msg = format!("FIFO {g}: two pushes at once ({start_us} us)");
                                s.overlaps.push(msg);
                            }
                        }
                        id
                    };
                    // A gateway killed mid-push drops the connection, and the server drops this
                    // future: the request is no longer open either way.
                    let _closed = Closed {
                        seen: seen.clone(),
                        id,
                        message_group: message_group.clone(),
                    };
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let mut s = seen.lock().unwrap();
                    s.hits.push(PushHit {
                        body: String::from_utf8_lossy(&body).into_owned(),
                        attempt: header("ferrymq-delivery-attempt")
                            .and_then(|a| a.parse().ok())
                            .unwrap_or(0),
                        start_us,
                        end_us: t0.elapsed().as_micros() as u64,
                        ok,
                    });
                    if ok {
                        axum::http::StatusCode::NO_CONTENT
                    } else {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, task)
}

/// Closes an open request in [`PushSeen`] when its handler ends or is dropped.
struct Closed {
    seen: Arc<Mutex<PushSeen>>,
    id: u64,
    message_group: Option<String>,
}

impl Drop for Closed {
    fn drop(&mut self) {
        let mut s = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        s.open.remove(&self.id);
        if let Some(g) = &self.message_group {
            if let Some(n) = s.open_per_group.get_mut(g) {
                *n -= 1;
            }
        }
    }
}

/// Acknowledged normal and FIFO publishes with no 2xx push yet.
fn not_pushed<'a>(h: &'a History, seen: &PushSeen) -> Vec<&'a str> {
    let pushed: BTreeSet<&str> = seen
        .hits
        .iter()
        .filter(|x| x.ok)
        .map(|x| x.body.as_str())
        .collect();
    h.publishes
        .iter()
        .filter(|p| p.topic != TX && p.outcome == Outcome::Ok)
        .map(|p| p.body.as_str())
        .filter(|b| !pushed.contains(b))
        .collect()
}

/// Acknowledged FIFO publishes by message group, in publish order.
fn fifo_groups(h: &History) -> BTreeMap<&str, Vec<&Publish>> {
    let mut groups: BTreeMap<&str, Vec<&Publish>> = BTreeMap::new();
    for p in h
        .publishes
        .iter()
        .filter(|p| p.topic == FIFO && p.outcome == Outcome::Ok)
    {
        groups
            .entry(p.fifo.as_ref().unwrap().0.as_str())
            .or_default()
            .push(p);
    }
    groups
}

/// The push group's checks: no loss, no phantom, FIFO order, `max_in_flight`.
fn check_push(h: &History, seen: &PushSeen) -> (Vec<String>, BTreeMap<&'static str, u64>) {
    let mut v = Vec::new();
    let mut stats = BTreeMap::new();
    for b in not_pushed(h, seen) {
        v.push(format!(
            "push: acknowledged publish {b:?} never pushed with a 2xx"
        ));
    }
    let attempted: BTreeSet<&str> = h
        .publishes
        .iter()
        .filter(|p| p.topic != TX && p.outcome.maybe_applied())
        .map(|p| p.body.as_str())
        .collect();
    for x in &seen.hits {
        if !attempted.contains(x.body.as_str()) {
            v.push(format!("push: {:?} pushed but never published", x.body));
        }
    }
    v.extend(seen.overlaps.iter().cloned());
    if seen.max_open > PUSH_IN_FLIGHT {
        v.push(format!(
            "push: {} pushes at once, max_in_flight {PUSH_IN_FLIGHT}",
            seen.max_open
        ));
    }
    // FIFO: the next acknowledged message of a group is pushed only after the previous one
    // was answered 2xx (its ack is committed after that answer).
    let mut first_ok_end: BTreeMap<&str, u64> = BTreeMap::new();
    let mut first_start: BTreeMap<&str, u64> = BTreeMap::new();
    for x in &seen.hits {
        let s = first_start.entry(x.body.as_str()).or_insert(x.start_us);
        *s = (*s).min(x.start_us);
        if x.ok {
            let e = first_ok_end.entry(x.body.as_str()).or_insert(x.end_us);
            *e = (*e).min(x.end_us);
        }
    }
    for (group, ps) in &fifo_groups(h) {
        for w in ps.windows(2) {
            let (prev, next) = (w[0].body.as_str(), w[1].body.as_str());
            if let (Some(&start), Some(&prev_ok)) = (first_start.get(next), first_ok_end.get(prev))
            {
                if start < prev_ok {
                    v.push(format!(
                        "push FIFO {group}: {next:?} pushed at {start} us before {prev:?} was answered 2xx at {prev_ok} us"
                    ));
                }
            }
        }
    }
    stats.insert("push: POSTs", seen.hits.len() as u64);
    stats.insert(
        "push: POSTs answered 500 (retried)",
        seen.hits.iter().filter(|x| !x.ok).count() as u64,
    );
    stats.insert("push: messages pushed more than once with a 2xx", {
        let mut n: BTreeMap<&str, u64> = BTreeMap::new();
        for x in seen.hits.iter().filter(|x| x.ok) {
            *n.entry(x.body.as_str()).or_default() += 1;
        }
        n.values().filter(|&&c| c > 1).count() as u64
    });
    stats.insert(
        "push: highest attempt",
        seen.hits.iter().map(|x| x.attempt).max().unwrap_or(0),
    );
    stats.insert("push: most at once", seen.max_open as u64);
    stats.insert(
        "push: slowest answer (ms)",
        seen.hits
            .iter()
            .map(|x| (x.end_us - x.start_us) / 1000)
            .max()
            .unwrap_or(0),
    );
    (v, stats)
}
const INVISIBLE_MS: u64 = 3000;

async fn producer(run: Arc<Run>, p: usize, stop: Arc<AtomicBool>) {
    let mut rng = SmallRng::seed_from_u64(run.config.seed.wrapping_mul(1_000_003) + p as u64);
    let mut fifo_seq: BTreeMap<String, u64> = BTreeMap::new();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let g = rng.random_range(0..run.bases.len());
        let roll: f64 = rng.random();
        let pad = "x".repeat(rng.random_range(0..40));
        let (topic, bodies, fifo, body) = if roll < 0.6 {
            let n = rng.random_range(1..=3);
            let bodies: Vec<String> = (0..n).map(|k| format!("n-p{p}-{i}-{k}-{pad}")).collect();
            let msgs: Vec<Value> = bodies.iter().map(|b| json!({"body": b})).collect();
            (NORMAL, bodies, None, json!({"messages": msgs}))
        } else if roll < 0.85 {
            let group = format!("g{p}-{}", rng.random_range(0..3));
            let seq = fifo_seq.entry(group.clone()).or_default();
            *seq += 1;
            let b = format!("f-{group}-{seq}-{pad}");
            let body = json!({"messages": [{"body": b, "message_group": group}]});
            (FIFO, vec![b], Some((group, *seq)), body)
        } else {
            let b = format!("t-p{p}-{i}-{pad}");
            let body = json!({"messages": [{"body": b}], "producer_group": "checker-tx"});
            (TX, vec![b], None, body)
        };
        let path = format!("/v1/topics/{topic}/messages");
        let (outcome, v, start, end) = run
            .request("publish", g, reqwest::Method::POST, &path, Some(&body))
            .await;
        let mut tx = None;
        {
            let mut h = run.history.lock().unwrap();
            if outcome == Outcome::Ok {
                h.publish_latency_us.push(end - start);
            }
            for (k, b) in bodies.iter().enumerate() {
                let r = &v["results"][k];
                let at = (outcome == Outcome::Ok && topic != TX).then(|| {
                    (
                        r["queue"].as_u64().expect("queue in a publish result"),
                        r["offset"].as_u64().expect("offset in a publish result"),
                        r["message_id"].as_str().expect("message_id").to_string(),
                    )
                });
                let transaction_id = r["transaction_id"].as_str().map(str::to_string);
                if outcome == Outcome::Ok && topic == TX {
                    tx = Some((b.clone(), transaction_id.clone().expect("transaction_id")));
                }
                h.publishes.push(Publish {
                    topic,
                    body: b.clone(),
                    fifo: fifo.clone(),
                    start_us: start,
                    end_us: end,
                    gateway: g,
                    outcome: outcome.clone(),
                    at,
                    transaction_id,
                });
            }
        }
        if let Some((b, id)) = tx {
            let action = if rng.random_bool(0.7) {
                "commit"
            } else {
                "rollback"
            };
            // Any gateway: half of the decisions go to another gateway than the publish.
            let first = if rng.random_bool(0.5) {
                g
            } else {
                rng.random_range(0..run.bases.len())
            };
            decide(&run, &mut rng, &b, &id, action, first).await;
        }
        if outcome != Outcome::Ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends a decision until it gets a definite answer (200 or 4xx), as a producer would: to
/// `first`, and to another gateway after no answer. A follower catches up with the log before
/// it answers 404, so any gateway must know an acknowledged half message.
async fn decide(
    run: &Run,
    rng: &mut SmallRng,
    body: &str,
    id: &str,
    action: &'static str,
    first: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut g = first;
    loop {
        let (outcome, v, start, end) = run
            .request(
                "decide",
                g,
                reqwest::Method::POST,
                &format!("/v1/transactions/{id}"),
                Some(&json!({"action": action})),
            )
            .await;
        let answer = match &outcome {
            Outcome::Ok => v["state"].as_str().unwrap_or("").to_string(),
            _ => v["error"]["code"].as_str().unwrap_or("").to_string(),
        };
        run.history.lock().unwrap().decisions.push(Decision {
            body: body.to_string(),
            action,
            start_us: start,
            end_us: end,
            gateway: g,
            outcome: outcome.clone(),
            answer,
        });
        let definite = matches!(outcome, Outcome::Ok | Outcome::Status(400..=499));
        if definite || Instant::now() > deadline {
            return;
        }
        if outcome == Outcome::NoAnswer {
            g = rng.random_range(0..run.bases.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Records the answers to acks of `handles` sent in one request (`results` names the answers'
/// field: `results` of an ack, `ack_results` of a receive).
#[allow(clippy::too_many_arguments)]
fn record_acks(
    run: &Run,
    handles: Vec<String>,
    gateway: usize,
    outcome: &Outcome,
    v: &Value,
    results: &str,
    start: u64,
    end: u64,
) {
    let mut h = run.history.lock().unwrap();
    for (k, receipt) in handles.into_iter().enumerate() {
        let r = &v[results][k];
        h.acks.push(Ack {
            receipt,
            start_us: start,
            end_us: end,
            gateway,
            outcome: outcome.clone(),
            ok: (*outcome == Outcome::Ok).then(|| r["ok"] == true),
            error: r["error"]
                .as_str()
                .or(v["error"]["code"].as_str())
                .unwrap_or("")
                .to_string(),
        });
    }
}

async fn consumer(run: Arc<Run>, c: usize, stop: Arc<AtomicBool>) {
    let mut rng = SmallRng::seed_from_u64(run.config.seed.wrapping_mul(7_000_003) + c as u64);
    // Half the batches are acked by the next receive (`ack_receipt_handles`), half on their own.
    let mut carried: Vec<String> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let g = rng.random_range(0..run.bases.len());
        let mut body = json!({"max_messages": 16, "wait_ms": 500, "invisible_ms": INVISIBLE_MS,
                          "consumer": format!("c{c}")});
        if !carried.is_empty() {
            body["ack_receipt_handles"] = json!(carried);
        }
        let (outcome, v, start, end) = run
            .request(
                "receive",
                g,
                reqwest::Method::POST,
                &format!("/v1/groups/{GROUP}/receive"),
                Some(&body),
            )
            .await;
        if !carried.is_empty() {
            let acked = std::mem::take(&mut carried);
            record_acks(&run, acked, g, &outcome, &v, "ack_results", start, end);
        }
        if outcome != Outcome::Ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let batch = run.batches.fetch_add(1, Ordering::SeqCst);
        let msgs = v["messages"].as_array().cloned().unwrap_or_default();
        let mut handles = Vec::new();
        {
            let mut h = run.history.lock().unwrap();
            for m in &msgs {
                let receipt = m["receipt_handle"].as_str().unwrap_or("").to_string();
                h.deliveries.push(Delivery {
                    topic: m["topic"].as_str().unwrap_or("").to_string(),
                    queue: m["queue"].as_u64().unwrap_or(u64::MAX),
                    offset: m["offset"].as_u64().unwrap_or(u64::MAX),
                    body: m["body"].as_str().unwrap_or("").to_string(),
                    message_group: m["message_group"].as_str().map(str::to_string),
                    attempt: m["delivery_attempt"].as_u64().unwrap_or(0),
                    receipt: receipt.clone(),
                    batch,
                    start_us: start,
                    end_us: end,
                    consumer: c,
                    gateway: g,
                });
                // One in twenty is left to expire and be redelivered.
                if !rng.random_bool(0.05) {
                    handles.push(receipt);
                }
            }
        }
        if handles.is_empty() {
            continue;
        }
        if rng.random_bool(0.5) {
            carried = handles;
            continue;
        }
        let g = rng.random_range(0..run.bases.len());
        let (outcome, v, start, end) = run
            .request(
                "ack",
                g,
                reqwest::Method::POST,
                &format!("/v1/groups/{GROUP}/ack"),
                Some(&json!({"receipt_handles": handles})),
            )
            .await;
        record_acks(&run, handles, g, &outcome, &v, "results", start, end);
    }
}

/// The sequencer's index among `bases`, asking any gateway that answers.
async fn sequencer(run: &Run) -> Option<usize> {
    for g in 0..run.bases.len() {
        let (o, v, _, _) = run
            .request("admin", g, reqwest::Method::GET, "/v1/cluster", None)
            .await;
        if o != Outcome::Ok {
            continue;
        }
        let addr = v["gateways"]
            .as_array()?
            .iter()
            .find(|x| x["sequencer"] == true)?["address"]
            .as_str()?
            .to_string();
        return run
            .bases
            .iter()
            .position(|b| addr.ends_with(&format!(":{}", b.rsplit(':').next().unwrap_or(""))));
    }
    None
}

/// `ferrymq_store_injected_faults_total` of gateway `g`, 0 if it does not answer.
async fn injected_faults(run: &Run, g: usize) -> u64 {
    let Ok(r) = run
        .http
        .get(format!("{}/metrics", run.bases[g]))
        .send()
        .await
    else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("ferrymq_store_injected_faults_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Kills a gateway every `kill_every` seconds (odd kills: the sequencer) and restarts it.
/// Returns the injected-fault counts read from each victim just before its death.
async fn killer(
    run: Arc<Run>,
    gateways: Arc<tokio::sync::Mutex<Vec<Gateway>>>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut rng = SmallRng::seed_from_u64(run.config.seed.wrapping_mul(9_000_011));
    let mut faults = 0;
    if run.config.kill_every == 0 {
        return 0;
    }
    let mut n = 0u64;
    loop {
        let until = Instant::now() + Duration::from_secs(run.config.kill_every);
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return faults;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        n += 1;
        let seq = sequencer(&run).await;
        let victim = match seq {
            Some(s) if n % 2 == 1 => s,
            _ => rng.random_range(0..run.bases.len()),
        };
        faults += injected_faults(&run, victim).await;
        let at_us = run.now_us();
        let mut gws = gateways.lock().await;
        gws[victim].kill9();
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..1000))).await;
        gws[victim].restart().await;
        let back_after_ms = (run.now_us() - at_us) / 1000;
        run.history.lock().unwrap().kills.push(Kill {
            at_us,
            gateway: victim,
            sequencer: seq == Some(victim),
            back_after_ms,
        });
    }
}

/// Everything the final pull finds: (topic, queue, offset) → (body, message_id).
type Pulled = BTreeMap<(String, u64, u64), (String, String)>;

/// Pulls every queue of every topic from the reader gateway, after it caught up with the
/// others.
async fn pull_everything(run: &Run, violations: &mut Vec<String>) -> Pulled {
    let mut head = 0;
    for g in 0..run.bases.len() {
        for _ in 0..100 {
            let (o, v, _, _) = run
                .request("admin", g, reqwest::Method::GET, "/v1/cluster", None)
                .await;
            if o == Outcome::Ok {
                head = head.max(v["manifest_version"].as_u64().unwrap_or(0));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (o, v, _, _) = run
            .request("admin", READER, reqwest::Method::GET, "/v1/cluster", None)
            .await;
        if o == Outcome::Ok && v["manifest_version"].as_u64().unwrap_or(0) >= head {
            break;
        }
        assert!(Instant::now() < deadline, "the reader never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut pulled = Pulled::new();
    for topic in [NORMAL, FIFO, TX] {
        let def = loop {
            let (o, v, _, _) = run
                .request(
                    "admin",
                    READER,
                    reqwest::Method::GET,
                    &format!("/v1/topics/{topic}"),
                    None,
                )
                .await;
            if o == Outcome::Ok {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for qs in def["queue_stats"].as_array().unwrap() {
            let q = qs["queue"].as_u64().unwrap();
            let (min, max) = (
                qs["min_offset"].as_u64().unwrap(),
                qs["max_offset"].as_u64().unwrap(),
            );
            if min != 0 {
                violations.push(format!("{topic}/{q}: min_offset {min}, expected 0"));
            }
            let mut offset = min;
            let mut tries = 0;
            // A pull fails (503) if any segment GET behind it fails, so under injected store
            // errors the page shrinks after a failure and grows back after a success.
            let mut page = 256;
            while offset < max {
                let (o, v, _, _) = run
                    .request(
                        "pull",
                        READER,
                        reqwest::Method::GET,
                        &format!(
                            "/v1/topics/{topic}/queues/{q}/messages?offset={offset}&max={page}"
                        ),
                        None,
                    )
                    .await;
                if o != Outcome::Ok {
                    tries += 1;
                    assert!(tries < 500, "pull of {topic}/{q} at {offset} keeps failing");
                    page = (page / 2).max(1);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                page = (page * 2).min(256);
                let msgs = v["messages"].as_array().unwrap();
                if msgs.is_empty() {
                    violations.push(format!(
                        "{topic}/{q}: pull at {offset} is empty below max_offset {max}"
                    ));
                    break;
                }
                for m in msgs {
                    let at = m["offset"].as_u64().unwrap();
                    if at != offset {
                        violations.push(format!(
                            "{topic}/{q}: offsets not dense: expected {offset}, got {at}"
                        ));
                    }
                    let prev = pulled.insert(
                        (topic.to_string(), q, at),
                        (
                            m["body"].as_str().unwrap_or("").to_string(),
                            m["message_id"].as_str().unwrap_or("").to_string(),
                        ),
                    );
                    if prev.is_some() {
                        violations.push(format!("{topic}/{q}/{at} returned twice by pull"));
                    }
                    offset = at + 1;
                }
            }
        }
    }
    pulled
}

/// What each body's transaction ended as, by our decisions' answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TxFate {
    Committed,
    RolledBack,
    /// A decision may have been applied, but no answer says which.
    Unknown,
    /// Never committed by anyone: the half publish was not acknowledged, or only rollbacks
    /// were sent.
    NeverCommitted,
}

/// Checks the history against the final pull; returns the violations.
fn check(h: &History, pulled: &Pulled) -> (Vec<String>, BTreeMap<&'static str, u64>) {
    let mut v = Vec::new();
    let mut stats: BTreeMap<&'static str, u64> = BTreeMap::new();
    let publishes: BTreeMap<&str, &Publish> =
        h.publishes.iter().map(|p| (p.body.as_str(), p)).collect();
    assert_eq!(publishes.len(), h.publishes.len(), "bodies are unique");

    // Transaction fates.
    let mut fate: BTreeMap<&str, TxFate> = BTreeMap::new();
    for p in h.publishes.iter().filter(|p| p.topic == TX) {
        fate.insert(&p.body, TxFate::NeverCommitted);
    }
    for d in &h.decisions {
        let f = fate
            .get_mut(d.body.as_str())
            .expect("decision on a known body");
        match (&d.outcome, d.answer.as_str()) {
            (Outcome::Ok, "committed") => *f = TxFate::Committed,
            (Outcome::Ok, "rolled_back") => *f = TxFate::RolledBack,
            (Outcome::Ok, other) => v.push(format!("decision answered state {other:?}")),
            (Outcome::Status(404), _) => v.push(format!(
                "{} of the acknowledged half message {:?} answered 404 {}",
                d.action, d.body, d.answer
            )),
            (o, _) if o.maybe_applied() && d.action == "commit" && *f == TxFate::NeverCommitted => {
                *f = TxFate::Unknown
            }
            _ => {}
        }
    }
    for f in fate.values() {
        *stats
            .entry(match f {
                TxFate::Committed => "tx committed",
                TxFate::RolledBack => "tx rolled back",
                TxFate::Unknown => "tx undecided (no answer)",
                TxFate::NeverCommitted => "tx never committed",
            })
            .or_default() += 1;
    }
    let must_appear = |p: &Publish| match p.topic {
        TX => fate[p.body.as_str()] == TxFate::Committed,
        _ => p.outcome == Outcome::Ok,
    };
    let may_appear = |p: &Publish| match p.topic {
        TX => matches!(fate[p.body.as_str()], TxFate::Committed | TxFate::Unknown),
        _ => true,
    };

    // The pull: every body once, only published ones, acknowledged ones at their offset.
    let mut pulled_at: BTreeMap<&str, (String, u64, u64)> = BTreeMap::new();
    for ((topic, q, o), (body, _)) in pulled {
        match publishes.get(body.as_str()) {
            None => v.push(format!(
                "{topic}/{q}/{o}: body {body:?} was never published"
            )),
            Some(p) if p.topic != topic => v.push(format!(
                "{topic}/{q}/{o}: {body:?} was published to {}",
                p.topic
            )),
            Some(p) if !may_appear(p) => v.push(format!(
                "{topic}/{q}/{o}: {body:?} is pullable but its transaction was {:?}",
                fate[body.as_str()]
            )),
            Some(_) => {}
        }
        if let Some(prev) = pulled_at.insert(body, (topic.clone(), *q, *o)) {
            v.push(format!(
                "{body:?} stored twice: at {prev:?} and {topic}/{q}/{o}"
            ));
        }
    }
    let mut assigned: BTreeMap<(&str, u64, u64), &str> = BTreeMap::new();
    for p in &h.publishes {
        if let Some((q, o, id)) = &p.at {
            if let Some(other) = assigned.insert((p.topic, *q, *o), &p.body) {
                v.push(format!(
                    "{}/{q}/{o} acknowledged to two publishes: {other:?} and {:?}",
                    p.topic, p.body
                ));
            }
            match pulled.get(&(p.topic.to_string(), *q, *o)) {
                Some((b, m)) if *b == p.body && m == id => {}
                got => v.push(format!(
                    "acknowledged {:?} (id {id}) not at {}/{q}/{o}: found {got:?}",
                    p.body, p.topic
                )),
            }
        }
        if must_appear(p) && !pulled_at.contains_key(p.body.as_str()) {
            v.push(format!(
                "{} {:?} must be pullable but is not",
                p.topic, p.body
            ));
        }
        if p.outcome == Outcome::Ok {
            *stats
                .entry(match p.topic {
                    NORMAL => "publishes acknowledged: normal",
                    FIFO => "publishes acknowledged: FIFO",
                    _ => "publishes acknowledged: half messages",
                })
                .or_default() += 1;
        } else {
            *stats
                .entry("publishes indeterminate or failed")
                .or_default() += 1;
            if pulled_at.contains_key(p.body.as_str()) && p.topic != TX {
                *stats
                    .entry("indeterminate publishes that landed")
                    .or_default() += 1;
            }
        }
    }
    stats.insert("messages pulled", pulled.len() as u64);

    // Deliveries: of published bodies, at their one offset, with the pulled bytes.
    let mut delivered: BTreeMap<&str, Vec<&Delivery>> = BTreeMap::new();
    for d in &h.deliveries {
        match publishes.get(d.body.as_str()) {
            None => v.push(format!("delivered {:?} was never published", d.body)),
            Some(p) if p.topic != d.topic => v.push(format!(
                "delivered {:?} from {}, published to {}",
                d.body, d.topic, p.topic
            )),
            Some(p) if !may_appear(p) => v.push(format!(
                "delivered {:?} but its transaction was {:?}",
                d.body,
                fate[d.body.as_str()]
            )),
            Some(_) => {}
        }
        match pulled.get(&(d.topic.clone(), d.queue, d.offset)) {
            Some((b, _)) if *b == d.body => {}
            got => v.push(format!(
                "delivered {:?} as {}/{}/{}, where the pull found {got:?}",
                d.body, d.topic, d.queue, d.offset
            )),
        }
        delivered.entry(d.body.as_str()).or_default().push(d);
    }
    for p in &h.publishes {
        if must_appear(p) && !delivered.contains_key(p.body.as_str()) {
            v.push(format!(
                "{} {:?} was never delivered to the group",
                p.topic, p.body
            ));
        }
    }
    stats.insert("deliveries", h.deliveries.len() as u64);
    stats.insert(
        "redeliveries",
        delivered.values().map(|ds| ds.len() as u64 - 1).sum(),
    );

    // Acks: an acknowledged ack (ok: true) ends the message for the group.
    let by_receipt: BTreeMap<&str, &Delivery> = h
        .deliveries
        .iter()
        .map(|d| (d.receipt.as_str(), d))
        .collect();
    let mut acks_of: BTreeMap<&str, Vec<&Ack>> = BTreeMap::new();
    for a in &h.acks {
        let d = by_receipt[a.receipt.as_str()];
        acks_of.entry(d.body.as_str()).or_default().push(a);
        let counted = match (a.ok, a.error.as_str()) {
            (Some(true), _) => "acks ok",
            (Some(false), "ReceiptExpired") => "acks refused: ReceiptExpired",
            (Some(false), _) => "acks refused: other",
            (None, _) => "acks failed or unanswered",
        };
        *stats.entry(counted).or_default() += 1;
        if a.ok == Some(false) && a.error != "ReceiptExpired" {
            v.push(format!("ack of {:?} refused with {:?}", d.body, a.error));
        }
        if a.ok != Some(true) {
            continue;
        }
        for later in &delivered[d.body.as_str()] {
            if later.attempt > d.attempt || later.start_us > a.end_us {
                v.push(format!(
                    "{:?}: attempt {} acked ok (ack ended at {} us), yet delivered again as attempt {} (receive {}..{} us)",
                    d.body, d.attempt, a.end_us, later.attempt, later.start_us, later.end_us
                ));
            }
        }
    }

    // FIFO: acknowledged publishes of a group sit in publish order in one queue; a receive
    // never holds two of one group; the next is delivered only after an ack of the previous
    // was sent (and not refused).
    for (group, ps) in &fifo_groups(h) {
        for w in ps.windows(2) {
            let (prev, next) = (w[0], w[1]);
            let (pa, na) = (prev.at.as_ref().unwrap(), next.at.as_ref().unwrap());
            if pa.0 != na.0 || pa.1 >= na.1 {
                v.push(format!(
                    "FIFO {group}: {:?} at {pa:?} published before {:?} at {na:?}",
                    prev.body, next.body
                ));
            }
            let Some(first) = delivered
                .get(next.body.as_str())
                .and_then(|ds| ds.iter().map(|d| d.end_us).min())
            else {
                continue;
            };
            let prev_acked = acks_of
                .get(prev.body.as_str())
                .into_iter()
                .flatten()
                .filter(|a| a.ok == Some(true) || (a.ok.is_none() && a.outcome.maybe_applied()))
                .map(|a| a.start_us)
                .min();
            match prev_acked {
                Some(t) if t < first => {}
                _ => v.push(format!(
                    "FIFO {group}: {:?} delivered (by {first} us) before {:?} was acked (first ack sent: {prev_acked:?} us)",
                    next.body, prev.body
                )),
            }
        }
    }
    let mut in_batch: BTreeSet<(u64, &str)> = BTreeSet::new();
    for d in &h.deliveries {
        if let Some(g) = &d.message_group {
            if !in_batch.insert((d.batch, g.as_str())) {
                v.push(format!(
                    "FIFO {g}: two messages in one receive (batch {})",
                    d.batch
                ));
            }
        }
    }
    (v, stats)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn write_history(path: &str, h: &History) {
    let mut out = String::new();
    for p in &h.publishes {
        let line = json!({"kind": "publish", "topic": p.topic, "body": p.body, "fifo": p.fifo,
            "start_us": p.start_us, "end_us": p.end_us, "gateway": p.gateway,
            "outcome": p.outcome.name(), "at": p.at, "transaction_id": p.transaction_id});
        writeln!(out, "{line}").unwrap();
    }
    for d in &h.decisions {
        let line = json!({"kind": "decide", "body": d.body, "action": d.action,
            "start_us": d.start_us, "end_us": d.end_us, "gateway": d.gateway,
            "outcome": d.outcome.name(), "answer": d.answer});
        writeln!(out, "{line}").unwrap();
    }
    for d in &h.deliveries {
        let line = json!({"kind": "deliver", "topic": d.topic, "queue": d.queue,
            "offset": d.offset, "body": d.body, "message_group": d.message_group,
            "attempt": d.attempt, "receipt": d.receipt, "batch": d.batch,
            "start_us": d.start_us, "end_us": d.end_us, "consumer": d.consumer,
            "gateway": d.gateway});
        writeln!(out, "{line}").unwrap();
    }
    for a in &h.acks {
        let line = json!({"kind": "ack", "receipt": a.receipt, "start_us": a.start_us,
            "end_us": a.end_us, "gateway": a.gateway, "outcome": a.outcome.name(),
            "ok": a.ok, "error": a.error});
        writeln!(out, "{line}").unwrap();
    }
    for k in &h.kills {
        let line = json!({"kind": "kill", "at_us": k.at_us, "gateway": k.gateway,
            "sequencer": k.sequencer, "back_after_ms": k.back_after_ms});
        writeln!(out, "{line}").unwrap();
    }
    std::fs::write(path, out).unwrap();
}

/// One checker run; panics with the report and the seed on any violation.
async fn run_checker(backend: Backend, config: Config) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let config = config.with_env();
    eprintln!("checker: seed {} on {} ({config:?})", config.seed, ts.url);
    let mut gateways = Vec::new();
    for i in 0..config.gateways {
        let faults = format!(
            "errors={},lost={},seed={}",
            config.errors,
            config.lost,
            config.seed.wrapping_mul(101).wrapping_add(i as u64)
        );
        let args = [
            "--store-faults",
            &faults,
            "--store-profile",
            &config.profile,
            "--lease-ttl",
            "1s",
            "--tail-interval",
            "30ms",
            "--push-allow",
            "http://127.0.0.1:*",
        ];
        gateways.push(Gateway::start(&ts.url, &args).await);
    }
    let run = Arc::new(Run {
        t0: Instant::now(),
        bases: gateways.iter().map(|g| g.base.clone()).collect(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        token: token(&["admin:*"]),
        history: Mutex::default(),
        batches: AtomicU64::new(0),
        reader: std::sync::OnceLock::new(),
        config: config.clone(),
    });
    let put = reqwest::Method::PUT;
    for (topic, kind, queues) in [
        (NORMAL, "normal", 4),
        (FIFO, "fifo", 4),
        (TX, "transaction", 2),
    ] {
        run.admin(
            put.clone(),
            &format!("/v1/topics/{topic}"),
            json!({"type": kind, "queues": queues}),
        )
        .await;
    }
    run.admin(
        put.clone(),
        &format!("/v1/groups/{GROUP}"),
        json!({"subscriptions": [{"topic": NORMAL}, {"topic": FIFO}, {"topic": TX}],
               "start_from": "earliest", "max_retries": 1000, "invisible_ms": INVISIBLE_MS,
               "retry_backoff_ms": [200]}),
    )
    .await;
    let (push_url, push_seen, push_task) = push_receiver(config.seed, run.t0).await;
    run.admin(
        put.clone(),
        &format!("/v1/groups/{PUSH_GROUP}"),
        json!({"subscriptions": [{"topic": NORMAL}, {"topic": FIFO}],
               "start_from": "earliest", "max_retries": 1000, "retry_backoff_ms": [200],
               "push": {"url": push_url, "max_in_flight": PUSH_IN_FLIGHT, "timeout_ms": PUSH_TIMEOUT_MS}}),
    )
    .await;
    // Every gateway must know the definitions before the load starts.
    for g in 0..run.bases.len() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (o, _, _, _) = run
                .request(
                    "admin",
                    g,
                    reqwest::Method::GET,
                    &format!("/v1/groups/{GROUP}"),
                    None,
                )
                .await;
            if o == Outcome::Ok {
                break;
            }
            assert!(Instant::now() < deadline, "gateway {g} never saw the group");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let gateways = Arc::new(tokio::sync::Mutex::new(gateways));
    let stop_load = Arc::new(AtomicBool::new(false));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..config.producers)
        .map(|p| tokio::spawn(producer(run.clone(), p, stop_load.clone())))
        .collect();
    let consumers: Vec<_> = (0..config.consumers)
        .map(|c| tokio::spawn(consumer(run.clone(), c, stop_consumers.clone())))
        .collect();
    let killer_task = tokio::spawn(killer(run.clone(), gateways.clone(), stop_load.clone()));
    let load_start = Instant::now();
    while load_start.elapsed() < Duration::from_secs(config.secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = load_start.elapsed().as_secs();
        if s.is_multiple_of(30) {
            let h = run.history.lock().unwrap();
            eprintln!(
                "checker: {s} s, {} publishes, {} deliveries, {} kills",
                h.publishes.len(),
                h.deliveries.len(),
                h.kills.len()
            );
        }
    }
    stop_load.store(true, Ordering::SeqCst);
    for p in producers {
        p.await.unwrap();
    }
    let mut faults = killer_task.await.unwrap();
    let load_secs = load_start.elapsed().as_secs_f64();

    // Drain: until every message that must be delivered was, and acked.
    let drain_start = Instant::now();
    loop {
        let done = {
            let h = run.history.lock().unwrap();
            let committed: BTreeSet<&str> = h
                .decisions
                .iter()
                .filter(|d| d.answer == "committed")
                .map(|d| d.body.as_str())
                .collect();
            // An ack without an answer may have applied, and then nothing is redelivered.
            let acked: BTreeSet<&str> = h
                .acks
                .iter()
                .filter(|a| a.ok == Some(true) || (a.ok.is_none() && a.outcome.maybe_applied()))
                .map(|a| a.receipt.as_str())
                .collect();
            let done_bodies: BTreeSet<&str> = h
                .deliveries
                .iter()
                .filter(|d| acked.contains(d.receipt.as_str()))
                .map(|d| d.body.as_str())
                .collect();
            h.publishes
                .iter()
                .filter(|p| {
                    if p.topic == TX {
                        committed.contains(p.body.as_str())
                    } else {
                        p.outcome == Outcome::Ok
                    }
                })
                .all(|p| done_bodies.contains(p.body.as_str()))
        };
        let done =
            done && not_pushed(&run.history.lock().unwrap(), &push_seen.lock().unwrap()).is_empty();
        if done || drain_start.elapsed() > Duration::from_secs(config.drain_secs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A little longer, to catch redeliveries after acks.
    tokio::time::sleep(Duration::from_millis(INVISIBLE_MS + 500)).await;
    stop_consumers.store(true, Ordering::SeqCst);
    for c in consumers {
        c.await.unwrap();
    }
    let drain_secs = drain_start.elapsed().as_secs_f64();

    // The final pull goes through a fresh gateway without injected faults: it reads what the
    // bucket holds (replaying the log from the last checkpoint), and pulls are not slowed by
    // the 503s a faulty segment read causes.
    let reader = Gateway::start(&ts.url, &["--lease-ttl", "1s", "--tail-interval", "30ms"]).await;
    run.reader.set(reader.base.clone()).expect("set once");
    let mut violations = Vec::new();
    let pull_start = Instant::now();
    let pulled = pull_everything(&run, &mut violations).await;
    let pull_secs = pull_start.elapsed().as_secs_f64();
    for g in 0..run.bases.len() {
        faults += injected_faults(&run, g).await;
    }
    push_task.abort();
    let h = run.history.lock().unwrap();
    let (found, mut stats) = check(&h, &pulled);
    violations.extend(found);
    let (found, push_stats) = check_push(&h, &push_seen.lock().unwrap());
    violations.extend(found);
    stats.extend(push_stats);
    if let Some(path) = &config.history {
        write_history(path, &h);
    }

    let mut report = String::new();
    let total: u64 = h.requests.values().sum();
    writeln!(
        report,
        "== FerryMQ checker: seed {} on {}\n{} gateways, {} producers, {} consumers, store errors {}, lost responses {}, profile {}, lease-ttl 1s, tail-interval 30ms",
        config.seed, ts.url, config.gateways, config.producers, config.consumers, config.errors,
        config.lost, config.profile
    )
    .unwrap();
    writeln!(
        report,
        "load {load_secs:.0} s, drain {drain_secs:.1} s, final pull {pull_secs:.1} s; requests {total} ({:.0}/s)",
        total as f64 / (load_secs + drain_secs)
    )
    .unwrap();
    let mut kinds: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((kind, outcome), n) in &h.requests {
        kinds
            .entry(kind)
            .or_default()
            .push(format!("{outcome} {n}"));
    }
    for (kind, outcomes) in kinds {
        writeln!(report, "  {kind}: {}", outcomes.join(", ")).unwrap();
    }
    let seq_kills = h.kills.iter().filter(|k| k.sequencer).count();
    let mut back: Vec<u64> = h.kills.iter().map(|k| k.back_after_ms).collect();
    back.sort_unstable();
    writeln!(
        report,
        "kills (SIGKILL): {} ({seq_kills} of the sequencer), back ready after {:?} ms (max)",
        h.kills.len(),
        back.last()
    )
    .unwrap();
    writeln!(
        report,
        "store faults injected (errors + lost responses, from /metrics): {faults}"
    )
    .unwrap();
    let mut lat = h.publish_latency_us.clone();
    lat.sort_unstable();
    writeln!(
        report,
        "publish ack latency ms: p50 {:.1}, p99 {:.1}, max {:.1}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    )
    .unwrap();
    for (k, n) in &stats {
        writeln!(report, "  {k}: {n}").unwrap();
    }
    writeln!(report, "violations: {}", violations.len()).unwrap();
    for x in violations.iter().take(30) {
        writeln!(report, "  VIOLATION {x}").unwrap();
    }
    eprintln!("{report}");
    assert!(
        violations.is_empty(),
        "{} violations; reproduce with FERRYMQ_CHECKER_SEED={}",
        violations.len(),
        config.seed
    );
    assert!(
        stats
            .get("publishes acknowledged: normal")
            .copied()
            .unwrap_or(0)
            > 0
            && !h.deliveries.is_empty(),
        "the run did nothing: seed {}",
        config.seed
    );
    // Each kill waits for the restart before the next period starts, so a loaded machine
    // fits fewer kills in the load than secs / kill_every; at least one must happen.
    if config.kill_every > 0 && config.secs > config.kill_every + 2 {
        assert!(!h.kills.is_empty(), "the schedule killed no gateway");
    }
}

fn test_config(secs: u64, kill_every: u64) -> Config {
    Config {
        secs,
        gateways: 3,
        producers: 4,
        consumers: 3,
        seed: random_seed(),
        kill_every,
        errors: 0.05,
        lost: 0.01,
        drain_secs: 40,
        profile: "none".into(),
        history: None,
    }
}

/// The test command's run on a local directory: 3 gateways, 5% store errors, 1% lost
/// responses, a SIGKILL every 6 s (every other one the sequencer's).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checker_local_dir() {
    run_checker(Backend::Local, test_config(20, 6)).await;
}

/// The same, shorter, on the S3 server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checker_s3() {
    run_checker(Backend::S3, test_config(15, 5)).await;
}

/// The long run by hand (ignored by the test command): 10 minutes, a kill every 20 s, six
/// consumers, unless `FERRYMQ_CHECKER_*` says otherwise; `FERRYMQ_CHECKER_STORE=s3` runs on
/// the S3 server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long; run by hand, see docs/reliability.md"]
async fn by_hand() {
    let backend = match std::env::var("FERRYMQ_CHECKER_STORE").as_deref() {
        Ok("s3") => Backend::S3,
        _ => Backend::Local,
    };
    let mut config = test_config(600, 20);
    // Three consumers fall behind four producers over ten minutes; six keep up.
    config.consumers = 6;
    config.drain_secs = 300;
    run_checker(backend, config).await;
}
