//! Push subscriptions (API.md "Push subscriptions") on the real binary, with a loopback
//! receiver in this process: every push verifies as a Standard Webhooks signature and parses
//! as a CloudEvent with the `standardwebhooks` and `cloudevents` Python packages (the test
//! venv, `FERRYMQ_TEST_PYTHON`); failures retry and dead-letter after exactly
//! `1 + max_retries` attempts; FIFO groups push one message per message group at a time, in
//! order, while failures are injected; `max_in_flight` holds over three gateways, one of
//! which is SIGKILLed mid-push without losing a message; `Retry-After` and `rate_per_s` slow
//! the group; a group switches from push to pull and back without losing or re-acking a
//! message; URLs outside `--push-allow` are refused and change nothing.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; real processes run on real time

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ferrymq_tests::common::gateway::{Api, Gateway};
use ferrymq_tests::common::stores::{self, Backend};
use ferrymq_tests::on_real_stores;
use serde_json::{Value, json};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    at: Instant,
    /// What the receiver answered.
    status: u16,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The message id (`ce-id`, or the structured event's `id`).
    fn message_id(&self) -> String {
        match self.headers.get("ce-id") {
            Some(id) => id.clone(),
            None => serde_json::from_slice::<Value>(&self.body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        }
    }

    fn attempt(&self) -> u32 {
        self.header("ferrymq-delivery-attempt").parse().unwrap()
    }
}

/// How the receiver answers a push: status, `Retry-After`, and how long it takes.
#[derive(Debug, Clone, Copy)]
struct Reply {
    status: u16,
    retry_after_s: Option<u32>,
    delay: Duration,
}

impl Reply {
    fn ok() -> Self {
        Reply {
            status: 200,
            retry_after_s: None,
            delay: Duration::ZERO,
        }
    }
}

type Behaviour = Arc<dyn Fn(&Hit) -> Reply + Send + Sync>;

#[derive(Default)]
struct Seen {
    hits: Vec<Hit>,
    /// Requests being answered now, over all and per message group.
    open: usize,
    max_open: usize,
    open_per_group: HashMap<String, usize>,
    max_open_per_group: usize,
}

/// A loopback HTTP server that records every push.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Receiver {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = (seen.clone(), behaviour);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                |axum::extract::State((seen, behaviour)): axum::extract::State<(
                    Arc<Mutex<Seen>>,
                    Behaviour,
                )>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let mut hit = Hit {
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                            .collect(),
                        body: body.to_vec(),
                        at: Instant::now(),
                        status: 0,
                    };
                    let reply = behaviour(&hit);
                    hit.status = reply.status;
                    let mg = hit.header("ferrymq-message-group").to_string();
                    {
                        let mut s = seen.lock().unwrap();
                        s.open += 1;
                        s.max_open = s.max_open.max(s.open);
                        if !mg.is_empty() {
                            let n = s.open_per_group.entry(mg.clone()).or_default();
                            *n += 1;
                            let n = *n;
                            s.max_open_per_group = s.max_open_per_group.max(n);
                        }
                    }
                    tokio::time::sleep(reply.delay).await;
                    {
                        let mut s = seen.lock().unwrap();
                        s.open -= 1;
                        if !mg.is_empty() {
                            *s.open_per_group.get_mut(&mg).unwrap() -= 1;
                        }
                        s.hits.push(hit);
                    }
                    let mut h = HeaderMap::new();
                    if let Some(s) = reply.retry_after_s {
                        h.insert("retry-after", s.to_string().parse().unwrap());
                    }
                    (StatusCode::from_u16(reply.status).unwrap(), h, "")
                },
            ),
        );
        let app = app.with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, seen, task }
    }

    fn hits(&self) -> Vec<Hit> {
        self.seen.lock().unwrap().hits.clone()
    }

    /// Message ids answered 2xx, with how many times each.
    fn delivered(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for h in self.hits().iter().filter(|h| h.status < 300) {
            *out.entry(h.message_id()).or_default() += 1;
        }
        out
    }

    /// Waits until `done` holds for the hits, panicking after `max`.
    async fn wait_for(&self, max: Duration, what: &str, done: impl Fn(&[Hit]) -> bool) {
        let start = Instant::now();
        loop {
            if done(&self.hits()) {
                return;
            }
            assert!(
                start.elapsed() < max,
                "{what}: not within {max:?}; {} hits",
                self.hits().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs tests/conformance/push_verify.py on `hits`: every signature verifies under `secret`
/// and every push parses as a CloudEvent. The parsed events, in order.
fn verify_with_python(secret: &str, hits: &[Hit]) -> Vec<Value> {
    let python = std::env::var("FERRYMQ_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("FERRYMQ_TEST_PYTHON is not set: run scripts/test (it installs standardwebhooks and cloudevents)")
    });
    let captured: Vec<Value> = hits
        .iter()
        .map(|h| json!({"headers": h.headers, "body_base64": B64.encode(&h.body)}))
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&captured).unwrap()).unwrap();
    let script = ferrymq_tests::common::package_dir().join("conformance/push_verify.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(secret)
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "push_verify.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn publish(api: &Api, topic: &str, messages: Value) -> Vec<String> {
    let r = api
        .post(
            &format!("/v1/topics/{topic}/messages"),
            json!({ "messages": messages }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["message_id"].as_str().unwrap().to_string())
        .collect()
}

/// Everything in `topic`'s queue 0, by pulling from offset 0.
async fn pull_queue0(api: &Api, topic: &str) -> Vec<Value> {
    let r = api
        .get(&format!(
            "/v1/topics/{topic}/queues/0/messages?offset=0&max=1000"
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["messages"].as_array().unwrap().clone()
}

/// The extra flags that let a gateway on `backend` push to loopback (the S3 default allows
/// nothing).
fn allow_loopback(backend: Backend) -> Vec<&'static str> {
    match backend {
        Backend::S3 => vec!["--push-allow", "http://127.0.0.1:*"],
        _ => vec![],
    }
}

async fn wait_until<F, Fut>(max: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < max, "{what}: not within {max:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------- delivery, signatures, retries and the DLQ ----------

async fn pushes_signed_cloudevents_and_dead_letters_after_max_retries(backend: Backend) {
    let Some(store) = stores::fresh(backend) else {
        return;
    };
    // On S3 the default allow-list is empty: a push group is refused there.
    if backend == Backend::S3 {
        let g = Gateway::start(&store.url, &[]).await;
        let api = Api::admin(&g);
        assert_eq!(
            api.put("/v1/topics/orders", json!({"queues": 2}))
                .await
                .status,
            201
        );
        let r = api
            .put(
                "/v1/groups/billing",
                json!({"subscriptions": [{"topic": "orders"}], "push": {"url": "http://127.0.0.1:9/hook"}}),
            )
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--push-allow")
        );
        assert_eq!(api.get("/v1/groups/billing").await.status, 404);
    }
    let receiver = Receiver::start(Arc::new(|h: &Hit| {
        if h.body == b"poison" {
            Reply {
                status: 500,
                ..Reply::ok()
            }
        } else {
            Reply::ok()
        }
    }))
    .await;
    let g = Gateway::start(&store.url, &allow_loopback(backend)).await;
    let api = Api::admin(&g);
    let r = api.put("/v1/topics/orders", json!({"queues": 2})).await;
    assert!(r.status == 201 || r.status == 200, "{:?}", r.body);
    let group = json!({
        "subscriptions": [{"topic": "orders"}],
        "start_from": "earliest",
        "max_retries": 2,
        "retry_backoff_ms": [200],
        "push": {"url": receiver.url, "max_in_flight": 8, "timeout_ms": 2000},
    });
    let r = api.put("/v1/groups/billing", group.clone()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let secret = r.body["push"]["signing_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(r.body["push"]["format"], "binary");
    // Shown once: the same PUT again, and a read, do not show it.
    let again = api.put("/v1/groups/billing", group.clone()).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert!(again.body["push"].get("signing_secret").is_none());
    let got = api.get("/v1/groups/billing").await;
    assert!(got.body["push"].get("signing_secret").is_none());
    assert_eq!(got.body["push"]["url"], receiver.url.as_str());

    let mut messages: Vec<Value> = (0..20)
        .map(|i| {
            json!({"body": format!("order-{i}"), "tag": "TagA", "keys": [format!("k{i}")],
                   "properties": {"amount": i.to_string()}})
        })
        .collect();
    messages.push(json!({"body": "poison"}));
    let ids = publish(&api, "orders", Value::Array(messages)).await;
    let poison = ids[20].clone();
    receiver
        .wait_for(
            Duration::from_secs(30),
            "20 delivered, poison 3 times",
            |hits| {
                let ok: BTreeSet<String> = hits
                    .iter()
                    .filter(|h| h.status == 200)
                    .map(Hit::message_id)
                    .collect();
                ok.len() == 20 && hits.iter().filter(|h| h.body == b"poison").count() >= 3
            },
        )
        .await;
    // The poison message's last delivery failed: it moves to the DLQ, no fourth attempt.
    wait_until(
        Duration::from_secs(20),
        "the poison message in DLQ.billing",
        || async {
            pull_queue0(&api, "DLQ.billing")
                .await
                .iter()
                .any(|m| m["message_id"] == poison.as_str())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let hits = receiver.hits();
    let poison_hits: Vec<&Hit> = hits.iter().filter(|h| h.body == b"poison").collect();
    assert_eq!(poison_hits.len(), 3, "exactly 1 + max_retries attempts");
    let webhook_ids: BTreeSet<&str> = poison_hits.iter().map(|h| h.header("webhook-id")).collect();
    assert_eq!(
        webhook_ids,
        (1..=3)
            .map(|a| format!("{poison}.{a}"))
            .collect::<BTreeSet<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
        "each attempt its own webhook-id"
    );
    assert_eq!(
        poison_hits.iter().map(|h| h.attempt()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // The message's trace tells the same story, the endpoint as the consumer.
    let trace = api
        .get(&format!("/v1/topics/orders/messages/{poison}/trace"))
        .await;
    assert_eq!(trace.status, 200, "{:?}", trace.body);
    let events = trace.body["events"].as_array().unwrap();
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["event"] == kind).collect() };
    let delivered = of("delivered");
    assert_eq!(delivered.len(), 3, "{events:?}");
    for (i, e) in delivered.iter().enumerate() {
        assert_eq!(e["group"], "billing");
        assert_eq!(e["consumer"], receiver.url.as_str());
        assert_eq!(e["attempt"], i as u64 + 1);
    }
    assert_eq!(of("nacked").len(), 3, "{events:?}");
    assert_eq!(of("dead_lettered").len(), 1, "{events:?}");
    // Each good message once (nothing failed, no lease expired).
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 20);
    assert!(delivered.values().all(|&n| n == 1), "{delivered:?}");
    assert_eq!(
        delivered.keys().cloned().collect::<BTreeSet<_>>(),
        ids[..20].iter().cloned().collect::<BTreeSet<_>>()
    );
    // The headers a receiver relies on.
    let h = hits.iter().find(|h| h.body == b"order-3").unwrap();
    assert_eq!(h.header("ce-specversion"), "1.0");
    assert_eq!(h.header("ce-source"), "ferrymq://orders");
    assert_eq!(h.header("ce-type"), "ferrymq.message");
    assert_eq!(h.header("ce-subject"), "TagA");
    assert_eq!(h.header("ferrymq-keys"), r#"["k3"]"#);
    assert_eq!(h.header("ferrymq-properties"), r#"{"amount":"3"}"#);
    assert!(h.header("content-type").starts_with("text/plain"));

    // Counters over all gateways (acks that rode a lease are reported within a second); a
    // pull receive on a push group is refused.
    wait_until(
        Duration::from_secs(10),
        "push_status counts everything",
        || async {
            let s = api.get("/v1/groups/billing").await.body["push_status"].clone();
            s["delivered_total"] == 20 && s["in_flight"] == 0
        },
    )
    .await;
    let status = api.get("/v1/groups/billing").await.body["push_status"].clone();
    assert_eq!(status["delivered_total"], 20, "{status:?}");
    assert_eq!(status["failed_total"], 3, "{status:?}");
    assert_eq!(status["in_flight"], 0, "{status:?}");
    assert!(
        status["last_error"].as_str().unwrap().contains("500"),
        "{status:?}"
    );
    let r = api
        .post("/v1/groups/billing/receive", json!({"max_messages": 1}))
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);

    // Structured mode: only `push` changes, so the group is updated in place (200), and the
    // secret stays the same (not shown again).
    let mut structured = group.clone();
    structured["push"]["format"] = json!("structured");
    let r = api.put("/v1/groups/billing", structured).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["push"]["format"], "structured");
    assert!(r.body["push"].get("signing_secret").is_none());
    let more = publish(
        &api,
        "orders",
        json!([{"body": "{\"a\":1}", "properties": {"content-type": "application/json"}},
               {"body_base64": B64.encode([0xffu8, 0, 1])}]),
    )
    .await;
    receiver
        .wait_for(Duration::from_secs(20), "2 structured pushes", |hits| {
            hits.iter()
                .filter(|h| {
                    h.header("content-type")
                        .starts_with("application/cloudevents+json")
                })
                .count()
                >= 2
        })
        .await;

    // Libraries nobody here wrote: every push verifies and parses.
    let hits = receiver.hits();
    let events = verify_with_python(&secret, &hits);
    assert_eq!(events.len(), hits.len());
    for (h, e) in hits.iter().zip(&events) {
        assert_eq!(e["attributes"]["id"], h.message_id().as_str());
        assert_eq!(e["attributes"]["source"], "ferrymq://orders");
        assert_eq!(e["attributes"]["specversion"], "1.0");
    }
    let data_of = |id: &str| -> Vec<u8> {
        let e = events.iter().find(|e| e["attributes"]["id"] == id).unwrap();
        B64.decode(e["data_base64"].as_str().unwrap()).unwrap()
    };
    assert_eq!(data_of(&ids[7]), b"order-7");
    assert_eq!(data_of(&more[0]), br#"{"a":1}"#);
    assert_eq!(data_of(&more[1]), [0xff, 0, 1]);
    // A signature under another secret does not verify.
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let python = std::env::var("FERRYMQ_TEST_PYTHON").unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        serde_json::to_vec(
            &json!([{"headers": hits[0].headers, "body_base64": B64.encode(&hits[0].body)}]),
        )
        .unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new(python)
        .arg(ferrymq_tests::common::package_dir().join("conformance/push_verify.py"))
        .arg(other)
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong secret must not verify");
}
on_real_stores!(pushes_signed_cloudevents_and_dead_letters_after_max_retries);

// ---------- refusals ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_definitions_outside_the_rules_are_refused_and_change_nothing() {
    let store = stores::fresh(Backend::Local).unwrap();
    let g = Gateway::start(&store.url, &["--push-allow", "http://127.0.0.1:*/hooks/*"]).await;
    let api = Api::admin(&g);
    assert_eq!(api.put("/v1/topics/t", json!({})).await.status, 201);
    let sub = json!([{"topic": "t"}]);
    for (push, extra, why) in [
        (
            json!({"url": "http://127.0.0.1:8080/other"}),
            json!({}),
            "path outside the pattern",
        ),
        (
            json!({"url": "http://10.0.0.1:8080/hooks/a"}),
            json!({}),
            "host outside",
        ),
        (
            json!({"url": "http://127.0.0.1:80@evil.example/hooks/a"}),
            json!({}),
            "user info",
        ),
        (json!({"url": "file:///etc/passwd"}), json!({}), "scheme"),
        (json!({"url": "not a url"}), json!({}), "not a URL"),
        (
            json!({"url": "http://127.0.0.1:1/hooks/a", "max_in_flight": 0}),
            json!({}),
            "max_in_flight 0",
        ),
        (
            json!({"url": "http://127.0.0.1:1/hooks/a", "timeout_ms": 5}),
            json!({}),
            "timeout",
        ),
        (
            json!({"url": "http://127.0.0.1:1/hooks/a", "format": "xml"}),
            json!({}),
            "format",
        ),
        (
            json!({"url": "http://127.0.0.1:1/hooks/a", "colour": 1}),
            json!({}),
            "unknown field",
        ),
        (
            json!({"url": "http://127.0.0.1:1/hooks/a"}),
            json!({"mode": "broadcast"}),
            "broadcast",
        ),
    ] {
        let mut body = json!({"subscriptions": sub, "push": push});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = api.put("/v1/groups/g", body).await;
        assert_eq!(r.status, 400, "{why}: {:?}", r.body);
        assert_eq!(
            api.get("/v1/groups/g").await.status,
            404,
            "{why}: nothing created"
        );
    }
    // A pull group stays pull when a switch to push is refused.
    assert_eq!(
        api.put("/v1/groups/g", json!({"subscriptions": sub}))
            .await
            .status,
        201
    );
    let before = api.get("/v1/groups/g").await.body;
    let r = api
        .put(
            "/v1/groups/g",
            json!({"subscriptions": sub, "push": {"url": "http://10.0.0.1/hooks/a"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(api.get("/v1/groups/g").await.body, before);
    // A change beyond `push` is still a conflict.
    let r = api
        .put(
            "/v1/groups/g",
            json!({"subscriptions": sub, "max_retries": 3, "push": {"url": "http://127.0.0.1:1/hooks/a"}}),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(api.get("/v1/groups/g").await.body, before);
}

// ---------- FIFO ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fifo_group_pushes_each_message_group_one_at_a_time_in_order_despite_failures() {
    let store = stores::fresh(Backend::Local).unwrap();
    // Every third message fails its first two attempts; each push takes 20 ms, so pushes of
    // one message group would overlap if they were not one at a time.
    let receiver = Receiver::start(Arc::new(|h: &Hit| {
        let n: u32 = String::from_utf8_lossy(&h.body)
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        Reply {
            status: if n.is_multiple_of(3) && h.attempt() <= 2 {
                503
            } else {
                204
            },
            retry_after_s: None,
            delay: Duration::from_millis(20),
        }
    }))
    .await;
    let g = Gateway::start(&store.url, &[]).await;
    let api = Api::admin(&g);
    assert_eq!(
        api.put("/v1/topics/f", json!({"type": "fifo", "queues": 2}))
            .await
            .status,
        201
    );
    let r = api
        .put(
            "/v1/groups/fg",
            json!({"subscriptions": [{"topic": "f"}], "start_from": "earliest", "max_retries": 5,
                   "retry_backoff_ms": [100], "push": {"url": receiver.url, "max_in_flight": 64}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let (groups, per_group) = (6, 8);
    for i in 0..per_group {
        let batch: Vec<Value> = (0..groups)
            .map(|g| json!({"body": format!("g{g}-{i}"), "message_group": format!("g{g}")}))
            .collect();
        publish(&api, "f", Value::Array(batch)).await;
    }
    receiver
        .wait_for(Duration::from_secs(60), "every message delivered", |hits| {
            hits.iter().filter(|h| h.status < 300).count() >= groups * per_group
        })
        .await;
    let hits = receiver.hits();
    let seen = receiver.seen.lock().unwrap().max_open_per_group;
    assert_eq!(seen, 1, "two pushes of one message group overlapped");
    // Per message group, every push (failed ones included) is of the oldest message not yet
    // delivered: never a later one before an earlier one was acked.
    for g in 0..groups {
        let mut next = 0;
        for h in hits
            .iter()
            .filter(|h| h.header("ferrymq-message-group") == format!("g{g}"))
        {
            let body = String::from_utf8_lossy(&h.body).to_string();
            assert_eq!(body, format!("g{g}-{next}"), "out of order in g{g}");
            if h.status < 300 {
                next += 1;
            }
        }
        assert_eq!(next, per_group);
    }
    let failed = hits.iter().filter(|h| h.status >= 300).count();
    assert_eq!(
        failed,
        2 * groups * per_group.div_ceil(3),
        "failures injected"
    );
}

// ---------- max_in_flight over three gateways, one killed ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_in_flight_holds_over_three_gateways_and_a_killed_one_loses_nothing() {
    let store = stores::fresh(Backend::Local).unwrap();
    let receiver = Receiver::start(Arc::new(|_: &Hit| Reply {
        delay: Duration::from_millis(60),
        ..Reply::ok()
    }))
    .await;
    let mut gateways = Vec::new();
    for _ in 0..3 {
        gateways.push(Gateway::start(&store.url, &[]).await);
    }
    let api = Api::admin(&gateways[0]);
    assert_eq!(
        api.put("/v1/topics/t", json!({"queues": 4})).await.status,
        201
    );
    let r = api
        .put(
            "/v1/groups/pg",
            json!({"subscriptions": [{"topic": "t"}], "start_from": "earliest",
                   "push": {"url": receiver.url, "max_in_flight": 5, "timeout_ms": 1000}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let total = 300;
    let mut ids = BTreeSet::new();
    for chunk in 0..(total / 100) {
        let batch: Vec<Value> = (0..100)
            .map(|i| json!({"body": format!("m{}", chunk * 100 + i)}))
            .collect();
        ids.extend(publish(&api, "t", Value::Array(batch)).await);
    }
    // Kill a gateway other than the one the test talks to while pushes are in flight.
    receiver
        .wait_for(Duration::from_secs(60), "a third delivered", |hits| {
            hits.len() >= total / 3
        })
        .await;
    let mut pushed_by = Vec::new();
    for g in &gateways {
        pushed_by.push(
            g.metric(r#"ferrymq_push_deliveries_total{result="delivered"}"#)
                .await,
        );
    }
    gateways[2].kill9();
    receiver
        .wait_for(Duration::from_secs(90), "every message delivered", |hits| {
            hits.iter()
                .map(Hit::message_id)
                .collect::<BTreeSet<_>>()
                .len()
                >= total
        })
        .await;
    let delivered = receiver.delivered();
    assert_eq!(delivered.keys().cloned().collect::<BTreeSet<_>>(), ids);
    let max_open = receiver.seen.lock().unwrap().max_open;
    assert!(max_open <= 5, "max_in_flight 5, seen {max_open} at once");
    assert!(max_open >= 2, "pushes ran one at a time: {max_open}");
    // The work spread: more than one gateway pushed before the kill.
    assert!(
        pushed_by.iter().filter(|&&n| n > 0.0).count() >= 2,
        "pushes per gateway: {pushed_by:?}"
    );
    // Everything acked: no lag, nothing in flight.
    wait_until(Duration::from_secs(30), "the group caught up", || async {
        let g = api.get("/v1/groups/pg").await.body;
        g["lag"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["lag"] == 0 && q["inflight"] == 0)
    })
    .await;
}

// ---------- Retry-After and rate_per_s ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_and_rate_per_s_slow_the_group() {
    let store = stores::fresh(Backend::Local).unwrap();
    let first = Arc::new(Mutex::new(true));
    let gate = first.clone();
    let receiver = Receiver::start(Arc::new(move |_: &Hit| {
        let mut f = gate.lock().unwrap();
        if std::mem::take(&mut *f) {
            Reply {
                status: 429,
                retry_after_s: Some(3),
                delay: Duration::ZERO,
            }
        } else {
            Reply::ok()
        }
    }))
    .await;
    let g = Gateway::start(&store.url, &[]).await;
    let api = Api::admin(&g);
    assert_eq!(
        api.put("/v1/topics/t", json!({"queues": 1})).await.status,
        201
    );
    let r = api
        .put(
            "/v1/groups/slow",
            json!({"subscriptions": [{"topic": "t"}], "start_from": "earliest",
                   "retry_backoff_ms": [0],
                   "push": {"url": receiver.url, "max_in_flight": 1}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    publish(&api, "t", json!([{"body": "a"}, {"body": "b"}])).await;
    receiver
        .wait_for(Duration::from_secs(20), "the 429", |hits| !hits.is_empty())
        .await;
    // The pause shows in push_status while it lasts, and ends with it.
    let paused_seen = Instant::now();
    let until = loop {
        let g = api.get("/v1/groups/slow").await.body;
        if let Some(t) = g["push_status"]["paused_until_ms"].as_i64() {
            break t;
        }
        assert!(
            paused_seen.elapsed() < Duration::from_secs(2),
            "no paused_until_ms in {g:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        until > now_ms && until <= now_ms + 3_500,
        "paused until {until}, now {now_ms}"
    );
    receiver
        .wait_for(Duration::from_secs(20), "a and b delivered", |hits| {
            hits.iter().filter(|h| h.status == 200).count() >= 2
        })
        .await;
    let hits = receiver.hits();
    assert_eq!(hits[0].status, 429);
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_millis(2800),
        "Retry-After 3 s, next push after {gap:?}"
    );
    let g = api.get("/v1/groups/slow").await.body;
    assert!(
        g["push_status"].get("paused_until_ms").is_none(),
        "the pause is over: {g:?}"
    );

    // rate_per_s 10 over 40 messages: the first second's burst, then 10 a second.
    let receiver = Receiver::start(Arc::new(|_: &Hit| Reply::ok())).await;
    let r = api
        .put(
            "/v1/groups/paced",
            json!({"subscriptions": [{"topic": "t"}], "start_from": "latest",
                   "push": {"url": receiver.url, "rate_per_s": 10}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let batch: Vec<Value> = (0..40).map(|i| json!({"body": format!("p{i}")})).collect();
    publish(&api, "t", Value::Array(batch)).await;
    receiver
        .wait_for(Duration::from_secs(30), "40 paced pushes", |hits| {
            hits.len() >= 40
        })
        .await;
    let hits = receiver.hits();
    let span = hits[39].at - hits[0].at;
    assert!(
        span >= Duration::from_millis(2500),
        "40 at 10/s after a burst of 10 took {span:?}"
    );
    // No one-second window holds more than a burst plus a second's worth.
    for (i, h) in hits.iter().enumerate() {
        let within = hits[i..]
            .iter()
            .filter(|x| x.at - h.at < Duration::from_secs(1))
            .count();
        assert!(within <= 21, "{within} pushes within a second");
    }
}

// ---------- push to pull and back ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_switches_from_push_to_pull_and_back_without_losing_or_reacking() {
    let store = stores::fresh(Backend::Local).unwrap();
    let receiver = Receiver::start(Arc::new(|_: &Hit| Reply::ok())).await;
    let g = Gateway::start(&store.url, &[]).await;
    let api = Api::admin(&g);
    assert_eq!(
        api.put("/v1/topics/t", json!({"queues": 2})).await.status,
        201
    );
    let pull = json!({"subscriptions": [{"topic": "t"}], "start_from": "earliest"});
    let mut push = pull.clone();
    push["push"] = json!({"url": receiver.url});
    assert_eq!(api.put("/v1/groups/sw", push.clone()).await.status, 201);
    let mut all = BTreeSet::new();
    let batch = |from: usize| -> Value {
        Value::Array(
            (from..from + 10)
                .map(|i| json!({"body": format!("m{i}")}))
                .collect(),
        )
    };
    all.extend(publish(&api, "t", batch(0)).await);
    receiver
        .wait_for(Duration::from_secs(20), "first 10 pushed", |h| {
            h.len() >= 10
        })
        .await;
    // To pull: 200, the cursors stay; receives get what is published next, nothing twice.
    let r = api.put("/v1/groups/sw", pull.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body.get("push").is_none());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pushed_before = receiver.hits().len();
    let second = publish(&api, "t", batch(10)).await;
    all.extend(second.iter().cloned());
    let mut pulled = BTreeSet::new();
    let start = Instant::now();
    while pulled.len() < 10 && start.elapsed() < Duration::from_secs(20) {
        let r = api
            .post(
                "/v1/groups/sw/receive",
                json!({"max_messages": 32, "wait_ms": 1000}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let msgs = r.body["messages"].as_array().unwrap().clone();
        let handles: Vec<Value> = msgs.iter().map(|m| m["receipt_handle"].clone()).collect();
        for m in &msgs {
            assert!(
                pulled.insert(m["message_id"].as_str().unwrap().to_string()),
                "received twice"
            );
        }
        if !handles.is_empty() {
            let r = api
                .post("/v1/groups/sw/ack", json!({"receipt_handles": handles}))
                .await;
            assert_eq!(r.status, 200);
        }
    }
    assert_eq!(pulled, second.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(
        receiver.hits().len(),
        pushed_before,
        "a pull group is not pushed"
    );
    // Back to push: a new secret is shown (push was off), and only new messages are pushed.
    let r = api.put("/v1/groups/sw", push.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body["push"]["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let third = publish(&api, "t", batch(20)).await;
    all.extend(third.iter().cloned());
    receiver
        .wait_for(Duration::from_secs(20), "third batch pushed", |h| {
            h.len() >= 20
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let pushed: BTreeMap<String, usize> = receiver.delivered();
    assert!(pushed.values().all(|&n| n == 1), "pushed twice: {pushed:?}");
    let pushed: BTreeSet<String> = pushed.into_keys().collect();
    assert!(
        pushed.is_disjoint(&pulled),
        "a message both pushed and received"
    );
    assert_eq!(pushed.union(&pulled).cloned().collect::<BTreeSet<_>>(), all);
}
