//! The compactor against real processes and real stores (a local directory and the S3 server):
//! publish over HTTP, run `ferrymq compact`, then query the archive with DuckDB (from the test
//! venv, `FERRYMQ_TEST_PYTHON`), pull compacted offsets after retention deleted their
//! segments, kill the compactor at random steps, and check the bucket holds exactly the
//! segments the manifest still references.
//!
//! Sizes: 100,000 messages on the local directory; 15,000 on the S3 server (moto is a
//! single-threaded Python server, and the whole file must stay well under two minutes).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; real processes run on real time

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use rand::{Rng, SeedableRng};
use segment_writer::manifest::State;
use segment_writer::store::Store;
use serde_json::{Value, json};

use ferrymq_tests::common::gateway::{Api, Gateway, SECRET, binary};
use ferrymq_tests::common::stores::{Backend, TestStore, fresh, manifest};
use ferrymq_tests::on_real_stores;

const TOPICS: [&str; 3] = ["orders", "clicks", "audit"];
const QUEUES: u32 = 4;

/// What was published: (topic, queue, offset) → (message_id, body).
type Published = BTreeMap<(String, u32, u64), (String, Vec<u8>)>;

fn json_body(rng: &mut rand::rngs::SmallRng, i: u64) -> Vec<u8> {
    let items: Vec<Value> = (0..rng.random_range(1..4))
        .map(|k| json!({"sku": format!("SKU-{:05}", rng.random_range(0..5000)), "qty": k + 1}))
        .collect();
    let status = ["new", "paid", "shipped"][rng.random_range(0..3)];
    serde_json::to_vec(&json!({
        "order_id": i,
        "customer": format!("customer-{}", rng.random_range(0..2000)),
        "amount": rng.random_range(1..100_000) as f64 / 100.0,
        "currency": "EUR",
        "items": items,
        "status": status,
    }))
    .unwrap()
}

/// Publishes `batches` batches of `per_batch` messages round-robin over the topics, four
/// requests in flight; a few bodies are binary.
async fn publish(api: &Api, batches: u64, per_batch: u64, seed: u64, out: &mut Published) {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut requests = Vec::new();
    for b in 0..batches {
        let topic = TOPICS[(b % 3) as usize];
        let bodies: Vec<Vec<u8>> = (0..per_batch)
            .map(|i| {
                let n = seed * 1_000_000 + b * per_batch + i;
                if n.is_multiple_of(97) {
                    vec![0, 0xff, (n % 251) as u8, 0x80]
                } else {
                    json_body(&mut rng, n)
                }
            })
            .collect();
        requests.push((topic, bodies));
    }
    let results: Vec<(String, Vec<Vec<u8>>, Value)> = futures::stream::iter(requests)
        .map(|(topic, bodies)| async move {
            let messages: Vec<Value> = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| match std::str::from_utf8(b) {
                    Ok(s) => json!({"body": s, "tag": "T", "keys": [format!("k{i}")], "properties": {"i": i.to_string()}}),
                    Err(_) => json!({"body_base64": base64::engine::general_purpose::STANDARD.encode(b)}),
                })
                .collect();
            let r = api
                .post(
                    &format!("/v1/topics/{topic}/messages"),
                    json!({ "messages": messages }),
                )
                .await;
            assert_eq!(r.status, 200, "publish: {:?}", r.body);
            (topic.to_string(), bodies, r.body)
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for (topic, bodies, body) in results {
        for (res, b) in body["results"].as_array().unwrap().iter().zip(bodies) {
            let key = (
                topic.clone(),
                res["queue"].as_u64().unwrap() as u32,
                res["offset"].as_u64().unwrap(),
            );
            let id = res["message_id"].as_str().unwrap().to_string();
            assert!(out.insert(key, (id, b)).is_none(), "an offset acked twice");
        }
    }
}

async fn setup(api: &Api, retention_hours: u32) {
    for t in TOPICS {
        let r = api
            .put(
                &format!("/v1/topics/{t}"),
                json!({"queues": QUEUES, "retention_hours": retention_hours}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
}

/// Runs `ferrymq compact` on `store`; returns (exit code, stdout, stderr).
async fn compact(store: &str, extra: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(binary())
        .arg("compact")
        .arg("--store")
        .arg(store)
        .arg("--jwt-secret")
        .arg(SECRET)
        .arg("--json")
        .args(extra)
        .env("FERRYMQ_LOG", "warn")
        .output()
        .await
        .expect("run ferrymq compact");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a pass to completion, waiting out a lease left by a killed compactor.
async fn compact_ok(store: &str, extra: &[&str]) -> Value {
    for _ in 0..60 {
        let (code, stdout, stderr) = compact(store, extra).await;
        if code == 0 {
            return serde_json::from_str(stdout.trim()).expect("summary JSON");
        }
        assert!(
            stderr.contains("another compactor is running"),
            "compact failed ({code}): {stderr}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("the compactor lease was never free");
}

/// Segments the state names, inline or through its index objects.
async fn referenced_segments(store: &Store, state: &State) -> BTreeSet<String> {
    let cache = segment_writer::manifest::index::IndexCache::new(64 << 20);
    let mut named = state.referenced_segments();
    named.extend(
        segment_writer::manifest::index::indexed_segments(store, &cache, state)
            .await
            .expect("index objects"),
    );
    named
}

async fn list(store: &Store, dir: object_store::path::Path) -> BTreeSet<String> {
    store
        .inner
        .list(Some(&dir))
        .map_ok(|m| store.paths.strip_prefix(&m.location).unwrap())
        .try_collect()
        .await
        .expect("list")
}

/// Connects DuckDB to the archive under `sys.argv[1]` (a directory or `s3://…`): `con`, `rel`.
const DUCKDB_CONNECT: &str = r#"
import duckdb, importlib.util, os, sys
root = sys.argv[1]
con = duckdb.connect()
if root.startswith("s3://"):
    ext = list(importlib.util.find_spec("duckdb_ext").submodule_search_locations)[0]
    con.execute(f"SET extension_directory='{ext}/extensions'")
    con.execute("LOAD httpfs")
    endpoint = os.environ["AWS_ENDPOINT"].split("://", 1)[1]
    con.execute(f"""CREATE SECRET (TYPE s3, KEY_ID '{os.environ["AWS_ACCESS_KEY_ID"]}',
        SECRET '{os.environ["AWS_SECRET_ACCESS_KEY"]}', REGION '{os.environ["AWS_REGION"]}',
        ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)""")
rel = f"read_parquet('{root}/archive/**/*.parquet', hive_partitioning = true)"
"#;

/// Per-topic counts and every row (with [`DUCKDB_CONNECT`]).
const DUCKDB: &str = r#"
for topic, n, distinct in con.execute(f"""select topic, count(*), count(distinct (queue, "offset"))
        from {rel} group by topic order by topic""").fetchall():
    print(f"count\t{topic}\t{n}\t{distinct}")
for topic, queue, offset, mid, body in con.execute(
        f"""select topic, queue, "offset", message_id, hex(body) from {rel}""").fetchall():
    print(f"row\t{topic}\t{queue}\t{offset}\t{mid}\t{body}")
"#;

/// Bytes from the hex the DuckDB and pyiceberg scripts print bodies as.
fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs the DuckDB `script` (after [`DUCKDB_CONNECT`]) on the archive under `root`; its stdout.
fn run_duckdb(script: &str, root: &str) -> String {
    let python = std::env::var("FERRYMQ_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("FERRYMQ_TEST_PYTHON is not set: run scripts/test (it installs DuckDB)")
    });
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(format!("{DUCKDB_CONNECT}{script}"))
        .arg(root)
        .output()
        .expect("run DuckDB");
    assert!(
        out.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// DuckDB's view of the archive: per-topic (rows, distinct offsets) and every row.
fn duckdb(root: &str) -> (BTreeMap<String, (u64, u64)>, Published) {
    let mut counts = BTreeMap::new();
    let mut rows = Published::new();
    for line in run_duckdb(DUCKDB, root).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "count" => {
                counts.insert(
                    f[1].to_string(),
                    (f[2].parse().unwrap(), f[3].parse().unwrap()),
                );
            }
            "row" => {
                let body = unhex(f[5]);
                rows.insert(
                    (
                        f[1].to_string(),
                        f[2].parse().unwrap(),
                        f[3].parse().unwrap(),
                    ),
                    (f[4].to_string(), body),
                );
            }
            _ => panic!("unexpected DuckDB output {line}"),
        }
    }
    (counts, rows)
}

/// The archive's Iceberg table as pyiceberg reads it (tests/conformance/iceberg_read.py), with
/// DuckDB's `iceberg_scan` count and DuckDB's `read_parquet` of the files beside it.
#[derive(Debug)]
struct IcebergView {
    version: u64,
    counts: BTreeMap<String, (u64, u64)>,
    rows: Published,
    /// Tag, publish and deliver times, keys and properties of every row, as pyiceberg read
    /// them from the table ...
    meta: BTreeSet<String>,
    /// ... and as DuckDB reads them from the Parquet files directly.
    parquet_meta: BTreeSet<String>,
    /// The rows of a filtered scan (`topic = filter.0 and offset >= filter.1`).
    matches: BTreeSet<(String, u32, u64)>,
    duckdb: Option<u64>,
}

fn iceberg(root: &str, filter: (&str, u64)) -> IcebergView {
    let python = std::env::var("FERRYMQ_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("FERRYMQ_TEST_PYTHON is not set: run scripts/test (it installs pyiceberg)")
    });
    let script = ferrymq_tests::common::package_dir().join("conformance/iceberg_read.py");
    let from = filter.1.to_string();
    let out = std::process::Command::new(python)
        .arg(script)
        .args([root, "--duckdb", "--parquet", "--filter-topic"])
        .args([filter.0, "--filter-from", &from])
        .output()
        .expect("run pyiceberg");
    assert!(
        out.status.success(),
        "iceberg_read.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut view = IcebergView {
        version: 0,
        counts: BTreeMap::new(),
        rows: Published::new(),
        meta: BTreeSet::new(),
        parquet_meta: BTreeSet::new(),
        matches: BTreeSet::new(),
        duckdb: None,
    };
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "version" => view.version = f[1].parse().unwrap(),
            "count" => {
                view.counts.insert(
                    f[1].to_string(),
                    (f[2].parse().unwrap(), f[3].parse().unwrap()),
                );
            }
            "row" => {
                let body = unhex(f[5]);
                let key = (
                    f[1].to_string(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                );
                let old = view.rows.insert(key, (f[4].to_string(), body));
                assert!(old.is_none(), "a row twice in the table: {line}");
            }
            "meta" => {
                view.meta.insert(f[1..].join("\t"));
            }
            "pmeta" => {
                view.parquet_meta.insert(f[1..].join("\t"));
            }
            "match" => {
                view.matches.insert((
                    f[1].to_string(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                ));
            }
            "duckdb" => view.duckdb = Some(f[1].parse().unwrap()),
            _ => panic!("unexpected iceberg_read.py output {line}"),
        }
    }
    view
}

/// Checks the Iceberg table holds exactly `expected` (ids and bodies), every tag, time, key and
/// property as the Parquet files hold them, that a filtered scan on `orders` from offset 100
/// returns exactly those rows, and that DuckDB's `iceberg_scan` counts the same.
fn assert_iceberg_holds(root: &str, expected: &Published, what: &str) -> IcebergView {
    let view = iceberg(root, ("orders", 100));
    assert_eq!(view.counts, per_topic(expected), "{what}: rows per topic");
    assert!(
        view.rows == *expected,
        "{what}: the Iceberg table's rows differ from the published messages"
    );
    assert_eq!(view.meta.len(), expected.len(), "{what}");
    assert!(
        view.meta == view.parquet_meta,
        "{what}: tags, times, keys or properties differ between the table and the files"
    );
    let wanted: BTreeSet<(String, u32, u64)> = expected
        .keys()
        .filter(|(t, _, o)| t == "orders" && *o >= 100)
        .cloned()
        .collect();
    assert_eq!(view.matches, wanted, "{what}: the filtered scan");
    assert_eq!(view.duckdb, Some(expected.len() as u64), "{what}: DuckDB");
    view
}

/// The archive root DuckDB reads: the local directory or `s3://bucket/prefix`.
fn archive_root(ts: &TestStore) -> String {
    match ts.url.strip_prefix("file://") {
        Some(dir) => dir.to_string(),
        None => ts.url.clone(),
    }
}

fn per_topic(p: &Published) -> BTreeMap<String, (u64, u64)> {
    let mut m = BTreeMap::new();
    for (t, _, _) in p.keys() {
        let e = m.entry(t.clone()).or_insert((0, 0));
        e.0 += 1;
        e.1 += 1;
    }
    m
}

/// Pulls every offset of every queue and compares ids and bodies with what was published.
async fn pull_all(api: &Api, published: &Published) {
    let mut got = Published::new();
    for t in TOPICS {
        for q in 0..QUEUES {
            let mut offset = 0;
            loop {
                let r = api
                    .get(&format!(
                        "/v1/topics/{t}/queues/{q}/messages?offset={offset}&max=1000"
                    ))
                    .await;
                assert_eq!(r.status, 200, "pull {t}/{q}@{offset}: {:?}", r.body);
                let msgs = r.body["messages"].as_array().unwrap();
                if msgs.is_empty() {
                    break;
                }
                for m in msgs {
                    let body = match m.get("body").and_then(Value::as_str) {
                        Some(s) => s.as_bytes().to_vec(),
                        None => base64::engine::general_purpose::STANDARD
                            .decode(m["body_base64"].as_str().unwrap())
                            .unwrap(),
                    };
                    got.insert(
                        (t.to_string(), q, m["offset"].as_u64().unwrap()),
                        (m["message_id"].as_str().unwrap().to_string(), body),
                    );
                }
                offset = r.body["next_offset"].as_u64().unwrap();
            }
        }
    }
    assert_eq!(got.len(), published.len(), "pulled every offset");
    assert!(
        got == *published,
        "pulled messages differ from the published ones"
    );
}

async fn archive_query_pull_and_retention(backend: Backend) {
    let Some(ts) = fresh(backend) else { return };
    let (batches, per_batch) = match backend {
        Backend::S3 => (15, 1000),
        _ => (100, 1000),
    };
    // `ferrymq compact` is the compactor here: the gateway's own (on by default) stays off.
    let gw = Gateway::start(&ts.url, &["--no-compact"]).await;
    let api = Api::admin(&gw);
    // Retention 0: every archived, consumed range may go at once.
    setup(&api, 0).await;
    // A group on `audit` that has consumed nothing: its segments must stay.
    let r = api
        .put(
            "/v1/groups/keeper",
            json!({"subscriptions": [{"topic": "audit"}], "start_from": "earliest"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let mut published = Published::new();
    publish(&api, batches, per_batch, 1, &mut published).await;
    assert_eq!(published.len() as u64, batches * per_batch);

    let summary = compact_ok(&ts.url, &["--segment-grace", "0s"]).await;
    assert_eq!(
        summary["rows"].as_u64(),
        Some(batches * per_batch),
        "{summary}"
    );

    // DuckDB counts per topic and reads every body byte-equal.
    let (counts, rows) = duckdb(&archive_root(&ts));
    assert_eq!(counts, per_topic(&published), "DuckDB counts per topic");
    assert!(
        rows == published,
        "DuckDB rows differ from the published messages"
    );
    // So do pyiceberg and DuckDB through the Iceberg table.
    let view = assert_iceberg_holds(&archive_root(&ts), &published, "one pass");
    assert_eq!(view.version, 1);

    // The catalogue lists the same rows.
    let files = api.get("/v1/archive").await;
    assert_eq!(files.status, 200);
    let listed: u64 = files.body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(listed, batches * per_batch);
    // Page by page, two files at a time: the same files, in the same order.
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let r = api.get(&format!("/v1/archive?limit=2{after}")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let page = r.body["files"].as_array().unwrap();
        assert!(page.len() <= 2);
        paged.extend(page.iter().cloned());
        match r.body["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(&paged, files.body["files"].as_array().unwrap());
    assert!(paged.len() > 2, "several pages: {}", paged.len());
    let only = api.get("/v1/archive?topic=orders").await;
    assert!(
        only.body["files"].as_array().unwrap().iter().all(
            |f| f["topic"] == "orders" && f["path"].as_str().unwrap().contains("topic=orders/")
        )
    );

    // Retention dropped orders' and clicks' ranges; audit's are kept for the group.
    let state = manifest(&ts.store).await;
    for t in ["orders", "clicks"] {
        assert!(
            state.topics[t].queues.iter().all(|q| q.ranges.is_empty()),
            "{t} trimmed"
        );
    }
    assert!(
        state.topics["audit"]
            .queues
            .iter()
            .all(|q| !q.ranges.is_empty())
    );
    // The bucket holds exactly the segments the manifest still references.
    let segments = list(&ts.store, ts.store.paths.segment_dir()).await;
    assert_eq!(
        segments,
        referenced_segments(&ts.store, &state).await,
        "no needed segment deleted, none unneeded kept"
    );
    assert!(
        summary["segments_deleted"].as_u64().unwrap() > 0,
        "{summary}"
    );

    // Pulls of compacted offsets (orders and clicks now come from Parquet) are identical.
    pull_all(&api, &published).await;

    // A second pass archives nothing new and keeps everything.
    let again = compact_ok(&ts.url, &["--segment-grace", "0s"]).await;
    assert_eq!(again["rows"].as_u64(), Some(0));
    assert_eq!(
        list(&ts.store, ts.store.paths.segment_dir()).await,
        segments
    );
}
on_real_stores!(archive_query_pull_and_retention);

/// Ten runs crash at a seeded step of the pass (as if killed there), five more are SIGKILLed at
/// a seeded moment; a final run completes. Every message is then archived exactly once, and
/// no uncatalogued file is left.
async fn killing_the_compactor_never_loses_or_duplicates(backend: Backend) {
    let Some(ts) = fresh(backend) else { return };
    // `ferrymq compact` is the compactor here: the gateway's own (on by default) stays off.
    let gw = Gateway::start(&ts.url, &["--no-compact"]).await;
    let api = Api::admin(&gw);
    setup(&api, 1_000_000).await;
    let mut published = Published::new();
    let flags = [
        "--segment-grace",
        "0s",
        "--orphan-grace",
        "0s",
        "--compact-lease-ttl",
        "1s",
    ];
    let mut crashed = 0;
    for seed in 0..10u64 {
        // New messages each round, so every pass has files to write.
        publish(&api, 3, 300, 100 + seed, &mut published).await;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let step = rng.random_range(1..=24u64).to_string();
        let mut args = flags.to_vec();
        args.extend(["--crash-after-steps", step.as_str()]);
        // Wait out the lease a killed run left (1 s), then run until the crash point.
        loop {
            let (code, _, stderr) = compact(&ts.url, &args).await;
            match code {
                86 => crashed += 1,
                0 => {}
                _ => {
                    assert!(
                        stderr.contains("another compactor is running"),
                        "seed {seed}: compact failed ({code}): {stderr}"
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            }
            break;
        }
    }
    assert!(
        crashed >= 8,
        "only {crashed} of 10 runs crashed: the crash points are too late"
    );
    // And SIGKILL at random moments (mid-write, mid-commit), not only at step boundaries.
    for seed in 10..15u64 {
        publish(&api, 3, 300, 100 + seed, &mut published).await;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut child = tokio::process::Command::new(binary())
            .args(["compact", "--store", &ts.url, "--jwt-secret", SECRET])
            .args(flags)
            .env("FERRYMQ_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ferrymq compact");
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..400))).await;
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    compact_ok(&ts.url, &flags).await;

    // Every message archived exactly once, in catalogued files only (orphans collected).
    let state = manifest(&ts.store).await;
    for t in TOPICS {
        for (q, ql) in state.topics[t].queues.iter().enumerate() {
            assert_eq!(
                state.archive.archived_to(t, q as u32),
                ql.next_offset,
                "{t}/{q}"
            );
        }
    }
    let mut files = list(&ts.store, ts.store.paths.archive_dir()).await;
    let metadata = files
        .extract_if(.., |f| f.starts_with("archive/metadata/"))
        .count();
    assert!(metadata > 0, "the Iceberg table is there");
    assert_eq!(
        files,
        state.archive.paths(),
        "no orphan left, no catalogued file missing"
    );
    assert_iceberg_holds(&archive_root(&ts), &published, "after kills");
    let (counts, rows) = duckdb(&archive_root(&ts));
    assert_eq!(
        counts,
        per_topic(&published),
        "rows per topic, each offset once"
    );
    assert!(
        rows == published,
        "DuckDB rows differ from the published messages"
    );
}
on_real_stores!(killing_the_compactor_never_loses_or_duplicates);

/// pyiceberg over the archive's Iceberg table after several passes (one snapshot each), then
/// after archive retention expired the oldest files: exactly the messages still archived.
async fn the_iceberg_table_follows_passes_and_archive_retention(backend: Backend) {
    let Some(ts) = fresh(backend) else { return };
    let gw = Gateway::start(&ts.url, &["--no-compact"]).await;
    let api = Api::admin(&gw);
    setup(&api, 1_000_000).await;
    let root = archive_root(&ts);
    // Every file but the newest of a queue folds into catalogue objects, merged two by two:
    // the table, the archive listing and retention must see through them.
    let fold = [
        "--catalogue-keep-listed",
        "1",
        "--catalogue-chunk",
        "1",
        "--catalogue-fan-in",
        "2",
    ];
    let mut published = Published::new();
    let mut runs = 0;
    for round in 0..3u64 {
        publish(&api, 2, 300, 200 + round, &mut published).await;
        let summary = compact_ok(&ts.url, &fold).await;
        assert_eq!(summary["iceberg"]["version"], round + 1, "{summary}");
        runs += summary["catalogue_runs"].as_u64().unwrap();
    }
    assert!(runs > 0, "nothing folded");
    let state = manifest(&ts.store).await;
    assert!(
        state
            .archive
            .queues
            .values()
            .flat_map(|qs| qs.values())
            .all(|qa| qa.files.len() <= 1),
        "{:?}",
        state.archive
    );
    let view = assert_iceberg_holds(&root, &published, "three passes");
    assert_eq!(view.version, 3);
    let listed: u64 = api.get("/v1/archive").await.body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(
        listed,
        published.len() as u64,
        "the listing sees runs' files"
    );

    // The messages so far are 12 s old when newer ones are published; a pass keeping 6 s of
    // archive then expires exactly the older files, and the table drops them first.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut newer = Published::new();
    publish(&api, 2, 300, 300, &mut newer).await;
    let summary = compact_ok(
        &ts.url,
        &[
            &fold[..],
            &["--archive-retention", "6s", "--orphan-grace", "0s"],
        ]
        .concat(),
    )
    .await;
    assert!(
        summary["archive_files_expired"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert_eq!(summary["iceberg"]["version"], 4, "{summary}");
    assert_eq!(
        summary["iceberg"]["files_removed"], summary["archive_files_expired"],
        "{summary}"
    );
    assert_iceberg_holds(&root, &newer, "after archive retention");
    drop(gw);
}
on_real_stores!(the_iceberg_table_follows_passes_and_archive_retention);

async fn the_background_compactor_archives_and_trims(backend: Backend) {
    let Some(ts) = fresh(backend) else { return };
    let gw = Gateway::start(
        &ts.url,
        &["--compact-interval", "500ms", "--segment-grace", "0s"],
    )
    .await;
    let api = Api::admin(&gw);
    setup(&api, 0).await;
    let mut published = Published::new();
    publish(&api, 3, 200, 7, &mut published).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let files = api.get("/v1/archive").await;
        let rows: u64 = files.body["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rows"].as_u64().unwrap())
            .sum();
        let state = manifest(&ts.store).await;
        let trimmed = TOPICS
            .iter()
            .all(|t| state.topics[*t].queues.iter().all(|q| q.ranges.is_empty()));
        if rows == 600 && trimmed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "background compactor did not archive and trim in 30 s: {rows} rows\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pull_all(&api, &published).await;
}
on_real_stores!(the_background_compactor_archives_and_trims);

/// Rows the archive catalogue lists.
async fn archived_rows(api: &Api) -> u64 {
    api.get("/v1/archive").await.body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rows"].as_u64().unwrap())
        .sum()
}

/// Receives and acks every message of `group` until `n` were received; returns how many.
async fn consume_all(api: &Api, group: &str, n: usize) -> usize {
    let mut got = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while got < n {
        assert!(
            std::time::Instant::now() < deadline,
            "received {got} of {n} in 60 s"
        );
        let r = api
            .post(
                &format!("/v1/groups/{group}/receive"),
                json!({"max_messages": 1000, "wait_ms": 1000, "invisible_ms": 60000}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let handles: Vec<Value> = r.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["receipt_handle"].clone())
            .collect();
        if handles.is_empty() {
            continue;
        }
        got += handles.len();
        let a = api
            .post(
                &format!("/v1/groups/{group}/ack"),
                json!({ "receipt_handles": handles }),
            )
            .await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert!(
            a.body["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["ok"] == true),
            "{:?}",
            a.body
        );
    }
    got
}

/// `ferrymq serve` with no compaction flag archives on its own (the interval only shortened
/// for the test) and retention then frees the segments a group has consumed, while a topic
/// whose group has consumed nothing keeps its segments; the flag `--no-compact` turns it off.
async fn a_default_gateway_archives_and_frees_consumed_segments(backend: Backend) {
    let Some(ts) = fresh(backend) else { return };
    // Off: nothing is archived however long we wait for a few intervals.
    let off = Gateway::start(
        &ts.url,
        &[
            "--no-compact",
            "--compact-interval",
            "200ms",
            "--segment-grace",
            "0s",
        ],
    )
    .await;
    let api = Api::admin(&off);
    setup(&api, 0).await;
    for (group, topic) in [
        ("eater", "orders"),
        ("clicker", "clicks"),
        ("keeper", "audit"),
    ] {
        let r = api
            .put(
                &format!("/v1/groups/{group}"),
                json!({"subscriptions": [{"topic": topic}], "start_from": "earliest"}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let mut published = Published::new();
    publish(&api, 6, 300, 11, &mut published).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        api.get("/v1/archive").await.body["files"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "--no-compact archived something"
    );
    let before = manifest(&ts.store).await;
    let segments_before = list(&ts.store, ts.store.paths.segment_dir()).await.len();
    drop(api);
    drop(off);

    // The default: on. Only the interval (default 5 min) and the segment grace (default 1 h,
    // longer than this test) are shortened.
    let gw = Gateway::start(
        &ts.url,
        &["--compact-interval", "1s", "--segment-grace", "0s"],
    )
    .await;
    let api = Api::admin(&gw);
    // orders and clicks are consumed; audit's group reads nothing.
    assert_eq!(consume_all(&api, "eater", 600).await, 600);
    assert_eq!(consume_all(&api, "clicker", 600).await, 600);
    let audit_segments: BTreeSet<String> = before.topics["audit"]
        .queues
        .iter()
        .flat_map(|q| q.ranges.iter().map(|r| r.segment.clone()))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows: u64 = api.get("/v1/archive").await.body["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rows"].as_u64().unwrap())
            .sum();
        let state = manifest(&ts.store).await;
        let trimmed = ["orders", "clicks"]
            .iter()
            .all(|t| state.topics[*t].queues.iter().all(|q| q.ranges.is_empty()));
        let segments = list(&ts.store, ts.store.paths.segment_dir()).await;
        let referenced = referenced_segments(&ts.store, &state).await;
        if rows == 1800 && trimmed && segments == referenced {
            // audit's ranges (its group consumed nothing) and their segments stay.
            assert!(
                state.topics["audit"]
                    .queues
                    .iter()
                    .map(|q| q.ranges.len())
                    .sum::<usize>()
                    > 0
            );
            assert!(
                audit_segments.iter().all(|s| segments.contains(s)),
                "a segment audit still needs was deleted"
            );
            assert!(
                segments.len() < segments_before,
                "no segment was freed: {} left",
                segments.len()
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a default gateway did not archive and free in 60 s: {rows} rows archived, trimmed {trimmed}, {} segments, {} referenced\n{}",
            segments.len(),
            referenced.len(),
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    pull_all(&api, &published).await;
}
on_real_stores!(a_default_gateway_archives_and_frees_consumed_segments);

/// The issue's case: a default install (no compaction flag; default segment grace of 1 h)
/// with topics of `retention_hours` 1. The gateway archives at once, but frees nothing while
/// the messages are younger than an hour; restarted with its clock 2 h ahead (a hidden test
/// flag), it frees the segments of the consumed topics, keeps those a group still needs, and
/// pulls of the freed offsets come from Parquet.
async fn retention_of_an_hour_frees_archived_consumed_segments_an_hour_later(backend: Backend) {
    let Some(ts) = fresh(backend) else { return };
    let gw = Gateway::start(&ts.url, &["--compact-interval", "500ms"]).await;
    let api = Api::admin(&gw);
    setup(&api, 1).await;
    for (group, topic) in [
        ("eater", "orders"),
        ("clicker", "clicks"),
        ("keeper", "audit"),
    ] {
        let r = api
            .put(
                &format!("/v1/groups/{group}"),
                json!({"subscriptions": [{"topic": topic}], "start_from": "earliest"}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let mut published = Published::new();
    publish(&api, 6, 300, 13, &mut published).await;
    assert_eq!(consume_all(&api, "eater", 600).await, 600);
    assert_eq!(consume_all(&api, "clicker", 600).await, 600);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while archived_rows(&api).await < 1800 {
        assert!(
            std::time::Instant::now() < deadline,
            "a default gateway did not archive in 60 s\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Several more passes: younger than the retention, nothing is trimmed or deleted.
    let segments = list(&ts.store, ts.store.paths.segment_dir()).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let state = manifest(&ts.store).await;
    assert!(
        TOPICS
            .iter()
            .all(|t| state.topics[*t].queues.iter().any(|q| !q.ranges.is_empty())),
        "ranges dropped before their retention"
    );
    assert_eq!(
        list(&ts.store, ts.store.paths.segment_dir()).await,
        segments,
        "segments deleted before their retention"
    );
    assert_eq!(archived_rows(&api).await, 1800, "archived twice");
    drop(api);
    drop(gw);

    // Two hours later (by the gateway's clock).
    let gw = Gateway::start(
        &ts.url,
        &["--compact-interval", "500ms", "--test-clock-ahead", "2h"],
    )
    .await;
    let api = Api::admin(&gw);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let state = manifest(&ts.store).await;
        let trimmed = ["orders", "clicks"]
            .iter()
            .all(|t| state.topics[*t].queues.iter().all(|q| q.ranges.is_empty()));
        let now = list(&ts.store, ts.store.paths.segment_dir()).await;
        let referenced = referenced_segments(&ts.store, &state).await;
        if trimmed && now == referenced {
            assert!(
                state.topics["audit"]
                    .queues
                    .iter()
                    .all(|q| !q.ranges.is_empty()),
                "audit's group has consumed nothing: its ranges stay"
            );
            assert!(now.len() < segments.len(), "no segment was freed");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not free in 60 s: trimmed {trimmed}, {} segments, {} referenced\n{}",
            now.len(),
            referenced.len(),
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(archived_rows(&api).await, 1800, "archived twice");
    pull_all(&api, &published).await;
}
on_real_stores!(retention_of_an_hour_frees_archived_consumed_segments_an_hour_later);

/// A dead letter keeps its original topic in the archive: DuckDB finds it in the
/// `original_topic` column beside the same message id, and ordinary rows have none.
async fn dead_letters_keep_their_original_topic_in_the_archive(backend: Backend) {
    let Some(ts) = fresh(backend) else { return };
    // `ferrymq compact` is the compactor here: the gateway's own (on by default) stays off.
    let gw = Gateway::start(&ts.url, &["--no-compact"]).await;
    let api = Api::admin(&gw);
    let r = api.put("/v1/topics/orders", json!({"queues": 1})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api
        .put(
            "/v1/groups/dl",
            json!({"subscriptions": [{"topic": "orders"}], "start_from": "earliest",
                   "max_retries": 0, "invisible_ms": 300, "retry_backoff_ms": [0]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api
        .post(
            "/v1/topics/orders/messages",
            json!({"messages": [{"body": "doomed"}, {"body": "fine"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ids: Vec<String> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect();
    // Both delivered once; only "fine" is acked, so "doomed" is dead-lettered on expiry.
    let mut delivered = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while delivered.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "not delivered");
        let r = api
            .post(
                "/v1/groups/dl/receive",
                json!({"max_messages": 10, "wait_ms": 1000}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        delivered.extend(r.body["messages"].as_array().unwrap().iter().cloned());
    }
    let fine: Vec<Value> = delivered
        .iter()
        .filter(|m| m["body"] == "fine")
        .map(|m| m["receipt_handle"].clone())
        .collect();
    let r = api
        .post("/v1/groups/dl/ack", json!({"receipt_handles": fine}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = api
            .get("/v1/topics/DLQ.dl/queues/0/messages?offset=0&wait_ms=500")
            .await;
        if r.status == 200 && r.body["messages"].as_array().is_some_and(|m| m.len() == 1) {
            assert_eq!(r.body["messages"][0]["original_topic"], "orders");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not dead-lettered: {:?}",
            r.body
        );
    }

    let summary = compact_ok(&ts.url, &["--segment-grace", "0s"]).await;
    assert_eq!(summary["rows"].as_u64(), Some(3), "{summary}");
    let out = run_duckdb(
        r#"
for row in con.execute(f"""select topic, "offset", message_id, coalesce(original_topic, '-')
        from {rel} order by topic, "offset" """).fetchall():
    print("\t".join(str(v) for v in row))
"#,
        &archive_root(&ts),
    );
    let want = format!(
        "DLQ.dl\t0\t{doomed}\torders\norders\t0\t{doomed}\t-\norders\t1\t{fine}\t-\n",
        doomed = ids[0],
        fine = ids[1]
    );
    assert_eq!(
        out, want,
        "DuckDB's rows (topic, offset, id, original topic)"
    );
}
on_real_stores!(dead_letters_keep_their_original_topic_in_the_archive);

/// On a local directory, `compact` deletes the staging files (`x#1`) that puts interrupted by a
/// crash leave behind, once older than the orphan grace; a younger one (a put that may still be
/// running) and every object stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staging_files_of_interrupted_puts_are_swept_from_a_local_directory() {
    let ts = fresh(Backend::Local).unwrap();
    // `ferrymq compact` is the compactor here: the gateway's own (on by default) stays off.
    let gw = Gateway::start(&ts.url, &["--no-compact"]).await;
    let api = Api::admin(&gw);
    setup(&api, 1).await;
    let mut published = Published::new();
    publish(&api, 2, 100, 3, &mut published).await;
    let root = std::path::PathBuf::from(archive_root(&ts));
    let segments = list(&ts.store, ts.store.paths.segment_dir()).await;
    let some_segment = root.join(segments.iter().next().expect("a segment"));
    let staged = |p: &std::path::Path, n: u32| {
        let mut s = p.as_os_str().to_owned();
        s.push(format!("#{n}"));
        std::path::PathBuf::from(s)
    };
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    let old_segment = staged(&some_segment.with_file_name("crashed.seg"), 1);
    let old_version = staged(&root.join("manifest/log/00000000000099999999"), 2);
    let fresh_one = staged(&some_segment.with_file_name("in-progress.seg"), 1);
    for (p, old) in [
        (&old_segment, true),
        (&old_version, true),
        (&fresh_one, false),
    ] {
        let f = std::fs::File::create(p).unwrap();
        if old {
            f.set_modified(two_hours_ago).unwrap();
        }
    }
    let summary = compact_ok(&ts.url, &["--orphan-grace", "1h"]).await;
    assert_eq!(summary["orphans_deleted"].as_u64(), Some(2), "{summary}");
    assert!(!old_segment.exists() && !old_version.exists());
    assert!(fresh_one.exists(), "a young staging file is kept");
    assert_eq!(
        list(&ts.store, ts.store.paths.segment_dir()).await,
        segments,
        "every segment kept"
    );
    pull_all(&api, &published).await;
}
