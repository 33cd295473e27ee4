//! `ferrymq bench`: drives a running gateway with N producers and M consumers over keep-alive
//! HTTP and prints publish throughput, publish-ack latency percentiles, end-to-end latency
//! (publish to receive), and object-store requests per 1,000 messages (from `/metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Settings of `ferrymq bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The gateway, or several on one store separated by commas: producer and consumer `i`
    /// use the `i`th (round robin), and store requests are summed over all.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    pub url: Vec<String>,
    /// A token with admin rights (to create the bench topic and group).
    #[arg(long, env = "FERRYMQ_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Topic to use (created if missing).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Queues of the topic when created.
    #[arg(long, default_value_t = 8)]
    pub queues: u32,
    /// The topic's `retention_hours` when created (default: the gateway's, 72). 0 lets a
    /// compaction pass free the segments it archived at once (`scripts/archive-lag.sh`).
    #[arg(long)]
    pub retention_hours: Option<u32>,
    /// Concurrent producer connections.
    #[arg(long, default_value_t = 64)]
    pub producers: usize,
    /// Concurrent consumers; 0 for publish only.
    #[arg(long, default_value_t = 0)]
    pub consumers: usize,
    /// How consumers read: `group` (receive with long-poll, then ack, as a clustering
    /// consumer group) or `pull` (long-poll pull by queue and offset, one loop per queue:
    /// consumer `i` reads the queues `q` with `q % consumers == i`, from where each queue
    /// ended at the start).
    #[arg(long, value_enum, default_value_t = ConsumerMode::Group)]
    pub consumer_mode: ConsumerMode,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub message_size: usize,
    /// Every message a different body of random letters, digits, `-` and `_` (which compress
    /// about as little as base64 data), instead of the same `x`s in every message, which
    /// compress to nothing in the archive.
    #[arg(long)]
    pub varied_bodies: bool,
    /// Messages per publish request.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// How long to run.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Publish at most this many messages per second in all (0: as fast as acknowledgements
    /// come). Each producer sends its share at an even pace; a late request is not made up.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Stop after this many messages (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub max_messages: u64,
    /// Publish to a FIFO topic with this many message groups (messages take them in turn);
    /// 0: a normal topic. The topic is created with this type if missing.
    #[arg(long, default_value_t = 0)]
    pub message_groups: usize,
}

/// How `ferrymq bench` consumers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsumerMode {
    /// `POST /v1/groups/{group}/receive`, then `ack`.
    Group,
    /// `GET /v1/topics/{topic}/queues/{queue}/messages?offset=…&wait_ms=…`.
    Pull,
    /// A push group (API.md "Push subscriptions") whose endpoint is a receiver in this
    /// process on 127.0.0.1 answering 204 at once; `--consumers` is its `max_in_flight`.
    Push,
}

/// The property that carries a message's send time (µs since the Unix epoch).
const SENT_PROPERTY: &str = "bench_sent_us";

/// The bodies a producer sends: one repeated, or slices of a pool of random text.
#[derive(Debug, Clone)]
enum Bodies {
    Same(Arc<str>),
    /// `size` bytes from a pseudo-random offset of `pool` (16 MiB: larger than zstd's window
    /// at the archive's level, so no two messages near each other share a body).
    Varied {
        pool: Arc<str>,
        size: usize,
    },
}

/// splitmix64: the bench's cheap, deterministic mixing of counters into offsets and letters.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Bodies {
    const POOL_BYTES: usize = 16 << 20;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    fn new(size: usize, varied: bool) -> Self {
        if !varied {
            return Bodies::Same("x".repeat(size).into());
        }
        let len = Self::POOL_BYTES.max(2 * size);
        let pool: String = (0..len)
            .map(|i| Self::ALPHABET[(mix(i as u64) & 63) as usize] as char)
            .collect();
        Bodies::Varied {
            pool: pool.into(),
            size,
        }
    }

    /// The body of a request's `i`-th message (`seed` differs from request to request).
    fn pick(&self, seed: u64, i: usize) -> &str {
        match self {
            Bodies::Same(body) => body,
            Bodies::Varied { pool, size } => {
                let at = (mix(seed ^ mix(i as u64)) % (pool.len() - size + 1) as u64) as usize;
                &pool[at..at + size]
            }
        }
    }

    fn size(&self) -> usize {
        match self {
            Bodies::Same(body) => body.len(),
            Bodies::Varied { size, .. } => *size,
        }
    }
}

/// One publish request's JSON, written directly: the bench must cost the shared CPU as little
/// as it can (bodies are `x`s or letters and digits, so nothing needs escaping).
fn publish_body(
    bodies: &Bodies,
    batch: usize,
    sent_us: i64,
    groups: Option<(u64, usize)>,
) -> String {
    let props = format!(r#""properties":{{"{SENT_PROPERTY}":"{sent_us}"}}"#);
    let mut s = String::with_capacity(16 + batch * (bodies.size() + props.len() + 40));
    s.push_str(r#"{"messages":["#);
    for i in 0..batch {
        if i > 0 {
            s.push(',');
        }
        s.push_str(r#"{"body":""#);
        s.push_str(bodies.pick(sent_us as u64, i));
        s.push_str("\",");
        if let Some((first, n)) = groups {
            // Message groups in turn: `first` counts the messages this producer sent before.
            let g = (first + i as u64) % n as u64;
            s.push_str(&format!(r#""message_group":"g{g}","#));
        }
        s.push_str(&props);
        s.push('}');
    }
    s.push_str("]}");
    s
}

/// Records the end-to-end latency of every message in `msgs` that carries a send time.
async fn record_e2e(msgs: &[Value], hist: &Mutex<Histogram<u64>>) {
    let now = now_us();
    let mut h = hist.lock().await;
    for m in msgs {
        if let Some(t) = m["properties"][SENT_PROPERTY]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
        {
            h.saturating_record((now - t).max(0) as u64);
        }
    }
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

async fn store_requests(client: &reqwest::Client, urls: &[String]) -> u64 {
    let mut total = 0;
    for url in urls {
        let Ok(r) = client.get(format!("{url}/metrics")).send().await else {
            continue;
        };
        let text = r.text().await.unwrap_or_default();
        total += text
            .lines()
            .filter(|l| l.starts_with("ferrymq_store_requests_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64;
    }
    total
}

#[allow(clippy::disallowed_methods)] // end-to-end latency compares wall clocks by definition
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Runs the benchmark and prints a report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.producers + args.consumers + 4)
        .timeout(Duration::from_secs(60))
        .build()?;
    let auth = format!("Bearer {}", args.token);
    let urls: Vec<String> = args
        .url
        .iter()
        .map(|u| u.trim_end_matches('/').to_string())
        .collect();
    anyhow::ensure!(!urls.is_empty(), "--url names no gateway");
    let url = urls[0].clone();
    let r = client
        .put(format!("{url}/v1/topics/{}", args.topic))
        .header("authorization", &auth)
        .json(&{
            let mut topic = json!({
                "type": if args.message_groups > 0 { "fifo" } else { "normal" },
                "queues": args.queues,
            });
            if let Some(hours) = args.retention_hours {
                topic["retention_hours"] = hours.into();
            }
            topic
        })
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "creating the topic: HTTP {} {}",
        r.status(),
        r.text().await.unwrap_or_default()
    );
    let group = format!("{}-bench", args.topic);
    let received = Arc::new(AtomicU64::new(0));
    let e2e_hist = Arc::new(Mutex::new(hist()));
    let (received_for_push, e2e_for_push) = (received.clone(), e2e_hist.clone());
    // Where pull consumers start: the end of each queue now.
    let mut pull_from = Vec::new();
    if args.consumers > 0 && args.consumer_mode == ConsumerMode::Pull {
        let v: Value = client
            .get(format!("{url}/v1/topics/{}", args.topic))
            .header("authorization", &auth)
            .send()
            .await?
            .json()
            .await?;
        pull_from = v["queue_stats"]
            .as_array()
            .map(|qs| {
                qs.iter()
                    .map(|q| q["max_offset"].as_u64().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        anyhow::ensure!(
            !pull_from.is_empty(),
            "topic {} reports no queues",
            args.topic
        );
    }
    if args.consumers > 0 && args.consumer_mode == ConsumerMode::Group {
        let r = client
            .put(format!("{url}/v1/groups/{group}"))
            .header("authorization", &auth)
            .json(&json!({"subscriptions": [{"topic": args.topic}], "start_from": "latest"}))
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "creating the group: HTTP {}",
            r.status()
        );
    }
    let mut receiver = None;
    if args.consumers > 0 && args.consumer_mode == ConsumerMode::Push {
        let (addr, task) = push_receiver(received_for_push.clone(), e2e_for_push.clone()).await?;
        receiver = Some(task);
        let push_group = format!("{}-push", args.topic);
        let r = client
            .put(format!("{url}/v1/groups/{push_group}"))
            .header("authorization", &auth)
            .json(
                &json!({"subscriptions": [{"topic": args.topic}], "start_from": "latest",
                "push": {"url": format!("http://{addr}/push"), "max_in_flight": args.consumers}}),
            )
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "creating the push group: HTTP {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    // A follower learns of the topic and group within a tail interval.
    if urls.len() > 1 {
        tokio::time::timeout(Duration::from_secs(1), futures::future::pending::<()>())
            .await
            .ok();
    }
    let store_before = store_requests(&client, &urls).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let ack_hist = Arc::new(Mutex::new(hist()));
    let body = Bodies::new(args.message_size, args.varied_bodies);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.producers {
        let (client, auth, url, topic, body) = (
            client.clone(),
            auth.clone(),
            urls[i % urls.len()].clone(),
            args.topic.clone(),
            body.clone(),
        );
        let (stop, sent, errors, ack_hist) =
            (stop.clone(), sent.clone(), errors.clone(), ack_hist.clone());
        let (batch, max, rate, producers) =
            (args.batch, args.max_messages, args.rate, args.producers);
        let publish_url = format!("{url}/v1/topics/{topic}/messages");
        tasks.push(tokio::spawn(async move {
            let producer = Producer {
                period: (rate > 0)
                    .then(|| Duration::from_secs_f64((producers * batch) as f64 / rate as f64)),
                url: &publish_url,
                auth: &auth,
                body: &body,
                batch,
                groups: (args.message_groups > 0).then_some(args.message_groups),
                max,
                stop: &stop,
                sent: &sent,
                errors: &errors,
                ack_hist: &ack_hist,
            };
            // Plain HTTP goes over one hyper connection per producer (a lighter client than
            // reqwest: the bench shares the machine's CPU with the gateway it measures).
            match PlainHttp::of(&publish_url) {
                Some(target) => producer.run_hyper(&target).await,
                None => producer.run_reqwest(&client).await,
            }
        }));
    }
    for c in 0..args.consumers {
        let (client, auth, url) = (client.clone(), auth.clone(), urls[c % urls.len()].clone());
        let (stop, received, e2e_hist) = (stop.clone(), received.clone(), e2e_hist.clone());
        match args.consumer_mode {
            // The gateways push to the receiver started above.
            ConsumerMode::Push => {}
            ConsumerMode::Group => {
                let group = group.clone();
                tasks.push(tokio::spawn(async move {
                    group_consumer(&client, &auth, &url, &group, c, &stop, &received, &e2e_hist)
                        .await;
                }));
            }
            ConsumerMode::Pull => {
                // One long-poll loop per queue this consumer owns.
                for q in (0..pull_from.len()).filter(|q| q % args.consumers == c) {
                    let (client, auth, url, topic) = (
                        client.clone(),
                        auth.clone(),
                        url.clone(),
                        args.topic.clone(),
                    );
                    let (stop, received, e2e_hist) =
                        (stop.clone(), received.clone(), e2e_hist.clone());
                    let from = (q as u32, pull_from[q]);
                    tasks.push(tokio::spawn(async move {
                        pull_consumer(
                            &client, &auth, &url, &topic, from, &stop, &received, &e2e_hist,
                        )
                        .await;
                    }));
                }
            }
        }
    }
    let mut last = 0;
    while started.elapsed() < args.duration
        && (args.max_messages == 0 || sent.load(Ordering::Relaxed) < args.max_messages)
    {
        tokio::time::timeout(Duration::from_secs(1), futures::future::pending::<()>())
            .await
            .ok();
        let s = sent.load(Ordering::Relaxed);
        eprint!(
            "\r{:>5.1}s  sent {s}  ({}/s)  received {}  errors {}   ",
            started.elapsed().as_secs_f64(),
            s - last,
            received.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed)
        );
        last = s;
    }
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    if let Some(r) = receiver {
        // Pushes of the last moments still arrive.
        tokio::time::timeout(Duration::from_secs(1), futures::future::pending::<()>())
            .await
            .ok();
        r.abort();
    }
    eprintln!();
    let secs = started.elapsed().as_secs_f64();
    let store_after = store_requests(&client, &urls).await;
    let n = sent.load(Ordering::Relaxed);
    let ack = ack_hist.lock().await;
    let e2e = e2e_hist.lock().await;
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "messages published: {n} in {secs:.1} s ({} producers x batch {}, {} B bodies, {} gateways)",
        args.producers,
        args.batch,
        args.message_size,
        urls.len()
    );
    println!(
        "publish throughput: {:.0} msg/s, {:.2} MB/s",
        n as f64 / secs,
        n as f64 * args.message_size as f64 / secs / 1e6
    );
    println!(
        "publish-ack latency: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms (per request)",
        ms(&ack, 0.5),
        ms(&ack, 0.99),
        ms(&ack, 0.999)
    );
    if args.consumers > 0 {
        println!(
            "received ({:?}): {}; end-to-end latency: p50 {:.2} ms, p99 {:.2} ms",
            args.consumer_mode,
            received.load(Ordering::Relaxed),
            ms(&e2e, 0.5),
            ms(&e2e, 0.99)
        );
    }
    println!("errors: {}", errors.load(Ordering::Relaxed));
    if n > 0 {
        let reqs = store_after.saturating_sub(store_before);
        println!(
            "store requests: {reqs} ({:.1} per 1,000 messages, {:.1}/s)",
            reqs as f64 * 1000.0 / n as f64,
            reqs as f64 / secs
        );
    }
    Ok(())
}

/// A loopback push endpoint: counts each push, records its end-to-end latency from the
/// message's send time (in the `ferrymq-properties` header), answers 204 at once.
async fn push_receiver(
    received: Arc<AtomicU64>,
    e2e: Arc<Mutex<Histogram<u64>>>,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = axum::Router::new().route(
        "/push",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let (received, e2e) = (received.clone(), e2e.clone());
            async move {
                let now = now_us();
                received.fetch_add(1, Ordering::Relaxed);
                let sent = headers
                    .get("ferrymq-properties")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(&format!(r#""{SENT_PROPERTY}":""#)).nth(1))
                    .and_then(|v| v.split('"').next())
                    .and_then(|v| v.parse::<i64>().ok());
                if let Some(t) = sent {
                    e2e.lock().await.saturating_record((now - t).max(0) as u64);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, task))
}

/// One producer connection's loop: publish `batch` messages per request until stopped.
struct Producer<'a> {
    /// One request per period (`--rate`), or none.
    period: Option<Duration>,
    url: &'a str,
    auth: &'a str,
    body: &'a Bodies,
    batch: usize,
    /// FIFO message groups to cycle through, if any.
    groups: Option<usize>,
    max: u64,
    stop: &'a AtomicBool,
    sent: &'a AtomicU64,
    errors: &'a AtomicU64,
    ack_hist: &'a Mutex<Histogram<u64>>,
}

/// Where a plain `http://host:port/path` URL points.
struct PlainHttp {
    addr: String,
    host: String,
    path: String,
}

impl PlainHttp {
    /// `None` for anything but plain HTTP.
    fn of(url: &str) -> Option<PlainHttp> {
        let u = url::Url::parse(url).ok()?;
        if u.scheme() != "http" {
            return None;
        }
        let host = u.host_str()?.to_string();
        let port = u.port_or_known_default()?;
        Some(PlainHttp {
            addr: format!("{host}:{port}"),
            host: format!("{host}:{port}"),
            path: u.path().to_string(),
        })
    }
}

impl Producer<'_> {
    /// Where this request's messages start in the message group cycle: after the messages
    /// sent so far (by all producers: spread, not exact), with the cycle's length.
    fn groups_from(&self) -> Option<(u64, usize)> {
        self.groups.map(|n| {
            (
                self.sent.load(Ordering::Relaxed) + rand::random::<u16>() as u64,
                n,
            )
        })
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && (self.max == 0 || self.sent.load(Ordering::Relaxed) < self.max)
    }

    /// Waits for this producer's next turn under `--rate` (from `next`, then one period on).
    async fn pace(&self, next: &mut Instant) {
        use segment_writer::clock::{Clock, TokioClock};
        let Some(period) = self.period else { return };
        let now = Instant::now();
        if *next > now {
            TokioClock::new().sleep(*next - now).await;
            *next += period;
        } else {
            *next = now + period;
        }
    }

    async fn record(&self, begin: Instant) {
        self.ack_hist
            .lock()
            .await
            .saturating_record(begin.elapsed().as_micros() as u64);
        self.sent.fetch_add(self.batch as u64, Ordering::Relaxed);
    }

    async fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        use segment_writer::clock::{Clock, TokioClock};
        TokioClock::new().sleep(Duration::from_millis(10)).await;
    }

    async fn run_reqwest(&self, client: &reqwest::Client) {
        let mut next = Instant::now();
        while self.running() {
            self.pace(&mut next).await;
            let req = publish_body(self.body, self.batch, now_us(), self.groups_from());
            let begin = Instant::now();
            let r = client
                .post(self.url)
                .header("authorization", self.auth)
                .header("content-type", "application/json")
                .body(req)
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    self.record(begin).await;
                }
                _ => self.failed().await,
            }
        }
    }

    async fn run_hyper(&self, target: &PlainHttp) {
        use http_body_util::{BodyExt, Full};
        let mut next = Instant::now();
        while self.running() {
            let Ok(stream) = tokio::net::TcpStream::connect(&target.addr).await else {
                self.failed().await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let io = hyper_util::rt::TokioIo::new(stream);
            let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(io).await else {
                self.failed().await;
                continue;
            };
            let driver = tokio::spawn(conn);
            while self.running() {
                self.pace(&mut next).await;
                let req = hyper::Request::post(&target.path)
                    .header("host", &target.host)
                    .header("authorization", self.auth)
                    .header("content-type", "application/json")
                    .body(Full::new(bytes::Bytes::from(publish_body(
                        self.body,
                        self.batch,
                        now_us(),
                        self.groups_from(),
                    ))));
                let Ok(req) = req else { return };
                let begin = Instant::now();
                match sender.send_request(req).await {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let read = r.into_body().collect().await.is_ok();
                        if ok && read {
                            self.record(begin).await;
                        } else {
                            self.failed().await;
                        }
                        if !read {
                            break;
                        }
                    }
                    // The connection broke: a new one.
                    Err(_) => {
                        self.failed().await;
                        break;
                    }
                }
            }
            driver.abort();
        }
    }
}

/// A clustering consumer: long-poll receive (up to 256), record, ack them all.
#[allow(clippy::too_many_arguments)]
async fn group_consumer(
    client: &reqwest::Client,
    auth: &str,
    url: &str,
    group: &str,
    c: usize,
    stop: &AtomicBool,
    received: &AtomicU64,
    e2e_hist: &Mutex<Histogram<u64>>,
) {
    let receive_url = format!("{url}/v1/groups/{group}/receive");
    let ack_url = format!("{url}/v1/groups/{group}/ack");
    // Each receive acks the previous batch in the same request (`ack_receipt_handles`): one
    // request and one commit per batch.
    let mut handles: Vec<Value> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let r = client
            .post(&receive_url)
            .header("authorization", auth)
            .json(
                &json!({"max_messages": 256, "wait_ms": 1000, "consumer": format!("c{c}"),
                "ack_receipt_handles": handles}),
            )
            .send()
            .await;
        let Ok(r) = r else { continue };
        if !r.status().is_success() {
            continue;
        }
        let Ok(mut v) = r.json::<Value>().await else {
            continue;
        };
        let msgs = match v["messages"].take() {
            Value::Array(m) => m,
            _ => Vec::new(),
        };
        record_e2e(&msgs, e2e_hist).await;
        received.fetch_add(msgs.len() as u64, Ordering::Relaxed);
        handles = msgs
            .into_iter()
            .map(|mut m| m["receipt_handle"].take())
            .collect();
    }
    if !handles.is_empty() {
        let _ = client
            .post(&ack_url)
            .header("authorization", auth)
            .json(&json!({"receipt_handles": handles}))
            .send()
            .await;
    }
}

/// A pull consumer of one queue: long-poll pull (up to 1,000 per request) from `offset`,
/// following `next_offset`.
#[allow(clippy::too_many_arguments)]
async fn pull_consumer(
    client: &reqwest::Client,
    auth: &str,
    url: &str,
    topic: &str,
    (queue, mut offset): (u32, u64),
    stop: &AtomicBool,
    received: &AtomicU64,
    e2e_hist: &Mutex<Histogram<u64>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let r = client
            .get(format!(
                "{url}/v1/topics/{topic}/queues/{queue}/messages?offset={offset}&max=1000&wait_ms=1000"
            ))
            .header("authorization", auth)
            .send()
            .await;
        let Ok(r) = r else { continue };
        let Ok(v) = r.json::<Value>().await else {
            continue;
        };
        let msgs = v["messages"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        record_e2e(msgs, e2e_hist).await;
        received.fetch_add(msgs.len() as u64, Ordering::Relaxed);
        if let Some(next) = v["next_offset"].as_u64() {
            offset = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bodies;

    #[test]
    fn publish_bodies_are_the_json_the_api_expects() {
        let xx = Bodies::new(2, false);
        let v: serde_json::Value =
            serde_json::from_str(&super::publish_body(&xx, 3, 42, None)).expect("valid JSON");
        let msgs = v["messages"].as_array().expect("messages");
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[2]["body"], "xx");
        assert_eq!(msgs[2]["properties"][super::SENT_PROPERTY], "42");
        assert!(msgs[2].get("message_group").is_none());
        let v: serde_json::Value =
            serde_json::from_str(&super::publish_body(&xx, 3, 42, Some((9, 10))))
                .expect("valid JSON");
        let groups: Vec<&str> = v["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["message_group"].as_str().expect("group"))
            .collect();
        assert_eq!(groups, ["g9", "g0", "g1"]);
    }

    #[test]
    fn varied_bodies_differ_and_stay_plain_text() {
        let bodies = Bodies::new(1024, true);
        let mut seen = std::collections::HashSet::new();
        for request in 0..50u64 {
            let v: serde_json::Value =
                serde_json::from_str(&super::publish_body(&bodies, 20, request as i64, None))
                    .expect("valid JSON");
            for m in v["messages"].as_array().expect("messages") {
                let body = m["body"].as_str().expect("body");
                assert_eq!(body.len(), 1024);
                assert!(
                    body.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                );
                seen.insert(body.to_string());
            }
        }
        assert_eq!(seen.len(), 1000, "every message its own body");
    }
}
