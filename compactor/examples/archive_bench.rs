//! Benchmark of the compactor: publishes `<messages>` JSON-like messages in-process (segments
//! of 1,000 messages over 8 queues of one topic, on a fsynced local directory), runs one
//! compaction pass, and reports throughput (MB/s of message bytes), the Parquet-to-raw size
//! ratio, and, with `FERRYMQ_TEST_PYTHON` pointing at a Python with DuckDB, the time of an
//! aggregate over the whole archive.
//!
//! ```text
//! cargo run --release -p compactor --example archive_bench -- <messages> [dir]
//! ```
//! `FERRYMQ_BENCH_OPEN_FILES=N` sets `CompactSettings::open_files` (queues archived together),
//! `FERRYMQ_BENCH_ZSTD_LEVEL=N` the zstd level of the Parquet files.
//! The pass's CPU time (user + system, all threads) is read from `/proc/self/stat`.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark binary

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use compactor::{CompactSettings, run_pass};
use rand::{Rng, SeedableRng};
use segment_writer::clock::TokioClock;
use segment_writer::manifest::{Command, TopicDef, TopicKind};
use segment_writer::node::{LocalForwarder, Node, NodeSettings};
use segment_writer::paths::Paths;
use segment_writer::segment::{Message, encode};
use segment_writer::segment_store::put_segment;
use segment_writer::store::Store;

const QUEUES: u32 = 8;
const PER_SEGMENT: u64 = 1000;

fn body(rng: &mut rand::rngs::SmallRng, i: u64) -> Bytes {
    let regions = ["eu-west", "eu-central", "us-east", "ap-south"];
    let status = ["new", "paid", "shipped", "cancelled"];
    Bytes::from(format!(
        r#"{{"order_id":{i},"customer":"customer-{}","region":"{}","amount":{:.2},"currency":"EUR","status":"{}","items":[{{"sku":"SKU-{:05}","qty":{}}}],"created_at":"2026-11-25T12:{:02}:{:02}Z"}}"#,
        rng.random_range(0..50_000),
        regions[rng.random_range(0..4)],
        rng.random_range(100..100_000) as f64 / 100.0,
        status[rng.random_range(0..4)],
        rng.random_range(0..20_000),
        rng.random_range(1..5),
        rng.random_range(0..60),
        rng.random_range(0..60),
    ))
}

/// Sums the time the pass spends between its steps "finish file" → "commit file" (waiting for
/// a file's encoder and upload) and "commit file" → "file committed" (the manifest commit).
#[derive(Default)]
struct Steps {
    state: std::sync::Mutex<StepTimes>,
}

#[derive(Default)]
struct StepTimes {
    /// The last step and when it happened.
    last: Option<(String, Instant)>,
    finishing: std::time::Duration,
    committing: std::time::Duration,
}

impl Steps {
    fn totals(&self) -> (std::time::Duration, std::time::Duration) {
        let s = self.state.lock().unwrap();
        (s.finishing, s.committing)
    }
}

impl compactor::Observer for Steps {
    fn step(&self, what: &str) {
        let mut s = self.state.lock().unwrap();
        let now = Instant::now();
        if let Some((prev, at)) = s.last.take() {
            match (prev.as_str(), what) {
                ("finish file", "commit file") => s.finishing += now - at,
                ("commit file", "file committed") => s.committing += now - at,
                _ => {}
            }
        }
        s.last = Some((what.to_string(), now));
    }
}

/// User + system CPU time of this process so far (Linux: `/proc/self/stat`, clock ticks of
/// 1/100 s).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let total: u64 = a.get(1).map_or(1_000_000, |s| s.parse().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let dir = a
        .get(2)
        .map_or(tmp.path().to_path_buf(), std::path::PathBuf::from);
    let url = format!("file://{}", dir.display());
    let store = Store::open(&url).unwrap();
    let fwd = Arc::new(LocalForwarder::default());
    let node = Node::start(
        store.clone(),
        NodeSettings::new("bench", "bench"),
        TokioClock::shared(),
        fwd.clone(),
        1,
    )
    .await
    .unwrap();
    fwd.register(&node);
    node.submit(vec![Command::CreateTopic {
        topic: "orders".into(),
        def: TopicDef {
            kind: TopicKind::Normal,
            queues: QUEUES,
            retention_hours: 72,
        },
    }])
    .await
    .unwrap();

    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let now = node.clock().now_ms();
    let mut segment_bytes = 0u64;
    let started = Instant::now();
    let mut i = 0;
    while i < total {
        let n = PER_SEGMENT.min(total - i);
        let per_queue = n / u64::from(QUEUES);
        let msgs: Vec<Message> = (0..n)
            .map(|k| Message {
                topic: "orders".into(),
                message_id: ulid::Ulid::new().to_string(),
                body: body(&mut rng, i + k),
                tag: Some(["created", "paid"][(k % 2) as usize].into()),
                keys: vec![format!("order-{}", i + k)],
                properties: [("region".to_string(), "eu".to_string())].into(),
                publish_time_ms: now - 3_600_000 + ((i + k) as i64 * 3_600_000 / total as i64),
                ..Message::default()
            })
            .collect();
        let bytes = encode(&msgs);
        segment_bytes += bytes.len() as u64;
        let name = Paths::segment_name("2026-11-25", &ulid::Ulid::new());
        put_segment(&store, &name, bytes).await.unwrap();
        let mut commands = Vec::new();
        for q in 0..QUEUES {
            let first = u64::from(q) * per_queue;
            let count = if q == QUEUES - 1 {
                n - first
            } else {
                per_queue
            };
            if count > 0 {
                commands.push(Command::Append {
                    topic: "orders".into(),
                    queue: q,
                    segment: name.clone(),
                    first_ordinal: first as u32,
                    count: count as u32,
                    publish_time_ms: msgs[first as usize].publish_time_ms,
                });
            }
        }
        node.submit(commands).await.unwrap();
        i += n;
    }
    eprintln!(
        "published {total} messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut settings = CompactSettings::new("bench");
    settings.retention = false;
    if let Ok(n) = std::env::var("FERRYMQ_BENCH_OPEN_FILES") {
        settings.open_files = n.parse().unwrap();
    }
    if let Ok(n) = std::env::var("FERRYMQ_BENCH_ZSTD_LEVEL") {
        settings.file.zstd_level = n.parse().unwrap();
    }
    let cpu0 = process_cpu_seconds();
    let steps = Steps::default();
    let r = run_pass(&node, &settings, &steps).await.unwrap();
    let cpu = process_cpu_seconds() - cpu0;
    let secs = r.elapsed.as_secs_f64();
    let mb = r.message_bytes as f64 / 1e6;
    println!(
        "compaction: {} messages, {} files, {:.1} MB message bytes in {:.2} s = {:.1} MB/s ({:.0} messages/s); CPU {:.2} s = {:.1} ms per MB",
        r.rows,
        r.files,
        mb,
        secs,
        mb / secs,
        r.rows as f64 / secs,
        cpu,
        cpu * 1000.0 / mb
    );
    let (finishing, committing) = steps.totals();
    println!(
        "waits: {:.2} s finishing files (encoder drain, upload, HEAD), {:.2} s cataloguing them (manifest commits)",
        finishing.as_secs_f64(),
        committing.as_secs_f64()
    );
    println!(
        "size: Parquet {:.1} MB / raw message bytes {:.1} MB = {:.3}; / segment bytes {:.1} MB = {:.3}",
        r.parquet_bytes as f64 / 1e6,
        r.message_bytes as f64 / 1e6,
        r.parquet_bytes as f64 / r.message_bytes as f64,
        segment_bytes as f64 / 1e6,
        r.parquet_bytes as f64 / segment_bytes as f64
    );
    node.shutdown().await;

    if let Ok(python) = std::env::var("FERRYMQ_TEST_PYTHON") {
        let script = r#"
import duckdb, sys, time
con = duckdb.connect()
rel = f"read_parquet('{sys.argv[1]}/archive/**/*.parquet', hive_partitioning = true)"
q = f"""select json_extract_string(decode(body), '$.region') as region,
               count(*) as n,
               round(sum(cast(json_extract(decode(body), '$.amount') as double)), 2) as amount,
               count(distinct message_id) as ids
        from {rel} group by region order by region"""
t = time.perf_counter(); rows = con.execute(q).fetchall(); t1 = time.perf_counter() - t
t = time.perf_counter(); n = con.execute(f"select count(*), max(\"offset\") from {rel} where tag = 'paid'").fetchall(); t2 = time.perf_counter() - t
print(f"duckdb: json aggregate over the archive {t1:.2f} s -> {rows}")
print(f"duckdb: count with a tag filter {t2:.2f} s -> {n}")
"#;
        let out = std::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(dir.display().to_string())
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
}
