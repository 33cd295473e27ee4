//! Benchmarks of the message types against a running gateway (issue 4's figures):
//!
//! - FIFO consume throughput with 1,000 message groups (receive + ack, several consumers);
//! - delayed-message delivery lag with many timers due within one minute;
//! - transaction commit-to-visible latency.
//!
//! `FERRYMQ_URL=http://127.0.0.1:8080 FERRYMQ_TOKEN=… cargo run --release -p gateway --example
//! message_types_bench -- [fifo|delay|transaction]...` (all three when none is named). Sizes:
//! `FIFO_MESSAGES` (50,000), `TIMERS` (100,000), `TX_ROUNDS` (200).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark driver: a panic is the report; it reads the wall clock on purpose

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Clone)]
struct Client {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    async fn post(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.call(reqwest::Method::POST, path, body).await;
        assert_eq!(s, 200, "{path}: {v}");
        v
    }
    async fn put(&self, path: &str, body: Value) {
        let (s, v) = self.call(reqwest::Method::PUT, path, body).await;
        assert!(s == 200 || s == 201, "{path}: {v}");
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(h: &Histogram<u64>) -> String {
    format!(
        "p50 {} ms, p99 {} ms, max {} ms (n = {})",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max(),
        h.len()
    )
}

/// Receives and acks with `consumers` tasks until `total` messages were acked; calls `seen`
/// with each message as it arrives.
async fn consume(
    c: &Client,
    group: &str,
    consumers: usize,
    total: u64,
    seen: Arc<dyn Fn(&Value) + Send + Sync>,
) -> Duration {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..consumers {
        let (c, done, seen, group) = (c.clone(), done.clone(), seen.clone(), group.to_string());
        tasks.push(tokio::spawn(async move {
            while done.load(Ordering::SeqCst) < total {
                let got = c
                    .post(
                        &format!("/v1/groups/{group}/receive"),
                        json!({"max_messages": 256, "wait_ms": 1000, "consumer": format!("c{i}")}),
                    )
                    .await;
                let msgs = got["messages"].as_array().cloned().unwrap_or_default();
                if msgs.is_empty() {
                    continue;
                }
                for m in &msgs {
                    seen(m);
                }
                let handles: Vec<Value> =
                    msgs.iter().map(|m| m["receipt_handle"].clone()).collect();
                c.post(
                    &format!("/v1/groups/{group}/ack"),
                    json!({"receipt_handles": handles}),
                )
                .await;
                done.fetch_add(msgs.len() as u64, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// Creates a topic of `kind` and a group on it from the earliest, with fresh names.
async fn topic_and_group(c: &Client, kind: &str, queues: u32) -> (String, String) {
    let suffix = now_ms();
    let (topic, group) = (
        format!("bench-{kind}-{suffix}"),
        format!("bench-{kind}-g-{suffix}"),
    );
    c.put(
        &format!("/v1/topics/{topic}"),
        json!({"type": kind, "queues": queues}),
    )
    .await;
    c.put(
        &format!("/v1/groups/{group}"),
        json!({"subscriptions": [{"topic": topic}], "start_from": "earliest"}),
    )
    .await;
    (topic, group)
}

/// Publishes messages `0..total` made by `message`, 1,000 per request.
async fn publish_all(c: &Client, topic: &str, total: u64, message: impl Fn(u64) -> Value) {
    let mut sent = 0;
    while sent < total {
        let n = (total - sent).min(1000);
        let msgs: Vec<Value> = (sent..sent + n).map(&message).collect();
        c.post(
            &format!("/v1/topics/{topic}/messages"),
            json!({"messages": msgs}),
        )
        .await;
        sent += n;
    }
}

async fn fifo(c: &Client) {
    let total = env("FIFO_MESSAGES", 50_000);
    let (topic, group) = topic_and_group(c, "fifo", 8).await;
    publish_all(
        c,
        &topic,
        total,
        |i| json!({"body": format!("m{i}"), "message_group": format!("g{}", i % 1000)}),
    )
    .await;
    for consumers in [1usize, 4, 16] {
        // A fresh group per run, reading from the beginning.
        let g = format!("{group}-{consumers}");
        c.put(
            &format!("/v1/groups/{g}"),
            json!({"subscriptions": [{"topic": topic}], "start_from": "earliest"}),
        )
        .await;
        let took = consume(c, &g, consumers, total, Arc::new(|_| {})).await;
        println!(
            "fifo: {total} messages in 1,000 message groups, {consumers} consumers: {:.1} s, {:.0} msg/s",
            took.as_secs_f64(),
            total as f64 / took.as_secs_f64()
        );
    }
}

async fn delay(c: &Client) {
    let total = env("TIMERS", 100_000);
    let (topic, group) = topic_and_group(c, "delay", 8).await;
    // Due uniformly over one minute, starting once the timers are all published.
    let publish_start = Instant::now();
    let first_due = now_ms() + 20_000;
    publish_all(c, &topic, total, |i| {
        let due = first_due + (i as i64 * 60_000) / total as i64;
        json!({"body": format!("t{i}"), "deliver_at": due, "properties": {"due": due.to_string()}})
    })
    .await;
    println!(
        "delay: {total} timers published in {:.1} s; first due {} ms after",
        publish_start.elapsed().as_secs_f64(),
        first_due - now_ms()
    );
    let lag = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let early = Arc::new(AtomicU64::new(0));
    let (l, e) = (lag.clone(), early.clone());
    consume(
        c,
        &group,
        4,
        total,
        Arc::new(move |m: &Value| {
            let due: i64 = m["properties"]["due"].as_str().unwrap().parse().unwrap();
            let d = now_ms() - due;
            if d < 0 {
                e.fetch_add(1, Ordering::SeqCst);
            }
            l.lock().unwrap().saturating_record(d.max(0) as u64);
        }),
    )
    .await;
    println!(
        "delay: delivery lag (receive time - due time) {}; delivered early: {}; the last received {} ms after the last was due",
        pct(&lag.lock().unwrap()),
        early.load(Ordering::SeqCst),
        now_ms() - (first_due + 60_000)
    );
}

async fn transaction(c: &Client) {
    let rounds = env("TX_ROUNDS", 200);
    let (topic, group) = topic_and_group(c, "transaction", 4).await;
    let mut visible = Histogram::<u64>::new(3).unwrap();
    let mut commit = Histogram::<u64>::new(3).unwrap();
    for i in 0..rounds {
        let r = c
            .post(
                &format!("/v1/topics/{topic}/messages"),
                json!({"messages": [{"body": format!("tx{i}")}], "producer_group": "bench"}),
            )
            .await;
        let tx = r["results"][0]["transaction_id"]
            .as_str()
            .unwrap()
            .to_string();
        // A receiver already waiting when the commit is sent.
        let waiter = {
            let (c, group) = (c.clone(), group.clone());
            tokio::spawn(async move {
                loop {
                    let got = c
                        .post(
                            &format!("/v1/groups/{group}/receive"),
                            json!({"max_messages": 16, "wait_ms": 5000}),
                        )
                        .await;
                    let msgs = got["messages"].as_array().cloned().unwrap_or_default();
                    if !msgs.is_empty() {
                        let handles: Vec<Value> =
                            msgs.iter().map(|m| m["receipt_handle"].clone()).collect();
                        c.post(
                            &format!("/v1/groups/{group}/ack"),
                            json!({"receipt_handles": handles}),
                        )
                        .await;
                        return Instant::now();
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        c.post(
            &format!("/v1/transactions/{tx}"),
            json!({"action": "commit"}),
        )
        .await;
        commit.saturating_record(t0.elapsed().as_millis() as u64);
        let seen = waiter.await.unwrap();
        visible.saturating_record(seen.saturating_duration_since(t0).as_millis() as u64);
    }
    println!("transaction: commit request {}", pct(&commit));
    println!(
        "transaction: commit sent -> received by a waiting consumer {}",
        pct(&visible)
    );
}

#[tokio::main]
async fn main() {
    let c = Client {
        url: std::env::var("FERRYMQ_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        token: std::env::var("FERRYMQ_TOKEN").expect("FERRYMQ_TOKEN"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    };
    let mut which: Vec<String> = std::env::args().skip(1).collect();
    if which.is_empty() {
        which = vec!["fifo".into(), "delay".into(), "transaction".into()];
    }
    for w in which {
        match w.as_str() {
            "fifo" => fifo(&c).await,
            "delay" => delay(&c).await,
            "transaction" => transaction(&c).await,
            other => panic!("unknown scenario {other}"),
        }
    }
}
