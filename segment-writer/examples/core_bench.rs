//! Benchmark of the durable core: N nodes (one sequencer, the others forwarding in process)
//! submitting in closed loops; reports deltas/s, commands/s and submit-to-outcome latency.
//!
//! ```text
//! cargo run --release -p segment-writer --example core_bench -- \
//!     <store: memory | local | s3> <profile: none | s3-standard | s3-express | minio-lan> \
//!     <nodes> <clients per node> <seconds> <payload: segment64k | inline4k | none>
//! ```
//! `segment64k`: each operation PUTs a 64 KiB segment, then commits its Append (the publish
//! path); `inline4k`: a 4 KiB segment inline in the delta with its Append (the publish path
//! for small batches); `none`: the Append alone (the commit path). `s3` uses `FERRYMQ_TEST_S3_BUCKET` and
//! the `AWS_*` variables. `FERRYMQ_HEDGE=0` turns hedged PUTs off (the baseline);
//! `FERRYMQ_DELTAS_IN_FLIGHT=n` sets the sequencer's pipeline depth (1: one commit at a time);
//! `FERRYMQ_THINK_MS=n` makes each client pause a random 0..=n ms before each operation.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark binary

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use segment_writer::clock::{Clock, TokioClock};
use segment_writer::faulty::{FaultConfig, FaultyStore};
use segment_writer::hedge::Hedger;
use segment_writer::manifest::{Command, TopicDef, TopicKind};
use segment_writer::node::{LocalForwarder, Node, NodeSettings};
use segment_writer::segment::{Message, encode};
use segment_writer::segment_store::put_segment_hedged;
use segment_writer::store::Store;

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (store_kind, profile, nodes, clients, secs, payload) = (
        a[1].as_str(),
        a[2].as_str(),
        a[3].parse::<usize>().unwrap(),
        a[4].parse::<usize>().unwrap(),
        a[5].parse::<u64>().unwrap(),
        a[6].as_str(),
    );
    let _dir = tempfile_dir();
    let base = match store_kind {
        "memory" => Store::memory(),
        "local" => Store::open(&format!("file://{}", _dir.display())).unwrap(),
        "s3" => Store::open(&format!(
            "s3://{}/bench-{}",
            std::env::var("FERRYMQ_TEST_S3_BUCKET").unwrap(),
            ulid::Ulid::new()
        ))
        .unwrap(),
        other => panic!("unknown store {other}"),
    };
    let clock: Arc<dyn Clock> = TokioClock::shared();
    let faulty = Arc::new(FaultyStore::new(
        base.inner.clone(),
        FaultConfig::profile(profile).unwrap(),
        1,
        clock.clone(),
    ));
    let store = base.wrapped(faulty.clone());
    let hedge = std::env::var("FERRYMQ_HEDGE").map_or(true, |v| v != "0");
    let hedger = Arc::new(Hedger::new(hedge, Duration::from_millis(2)));
    let local = Arc::new(LocalForwarder::default());
    let mut ns = Vec::new();
    for i in 0..nodes {
        let mut settings = NodeSettings::new(format!("n{i}"), format!("n{i}"));
        settings.log.hedge = hedge;
        if let Some(depth) = std::env::var("FERRYMQ_DELTAS_IN_FLIGHT")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            settings.max_deltas_in_flight = depth;
        }
        let n = Node::start(
            store.clone(),
            settings,
            clock.clone(),
            local.clone(),
            i as u64,
        )
        .await
        .unwrap();
        local.register(&n);
        ns.push(n);
    }
    while !ns.iter().any(Node::is_sequencer) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let def = TopicDef {
        kind: TopicKind::Normal,
        queues: 8,
        retention_hours: 1,
    };
    ns[0]
        .submit(vec![Command::CreateTopic {
            topic: "t".into(),
            def,
        }])
        .await
        .unwrap();
    let segment = encode(&[Message {
        topic: "t".into(),
        body: vec![7u8; 64 * 1024].into(),
        ..Message::default()
    }]);
    let small = encode(&[Message {
        topic: "t".into(),
        body: vec![7u8; 4 * 1024].into(),
        ..Message::default()
    }]);
    // A random pause of up to this long before each operation spreads arrivals in time as
    // independent producers would (closed loops answered by one delta resubmit together).
    let think_ms: u64 = std::env::var("FERRYMQ_THINK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let v0 = ns[0].version();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, n) in ns.iter().enumerate() {
        for c in 0..clients {
            let (n, stop, store, segment, small, payload, hedger, clock) = (
                n.clone(),
                stop.clone(),
                store.clone(),
                segment.clone(),
                small.clone(),
                payload.to_string(),
                hedger.clone(),
                clock.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).unwrap();
                let mut k = 0u64;
                let mut rng = rand::rngs::SmallRng::seed_from_u64((i * 1000 + c) as u64);
                while !stop.load(Ordering::Relaxed) {
                    if think_ms > 0 {
                        let d = rng.random_range(0..=think_ms);
                        tokio::time::sleep(Duration::from_millis(d)).await;
                    }
                    let t = Instant::now();
                    let name = format!("segments/bench/{i}-{c}-{k}.seg");
                    k += 1;
                    if payload == "segment64k"
                        && put_segment_hedged(
                            &store,
                            &name,
                            segment.clone(),
                            &hedger,
                            clock.as_ref(),
                        )
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    let mut cmds = Vec::new();
                    if payload == "inline4k" {
                        cmds.push(Command::InlineSegment {
                            segment: name.clone(),
                            data: small.clone(),
                            packable: false,
                        });
                    }
                    cmds.push(Command::Append {
                        topic: "t".into(),
                        queue: (k % 8) as u32,
                        segment: name,
                        first_ordinal: 0,
                        count: 1,
                        publish_time_ms: 0,
                    });
                    if n.submit(cmds).await.is_ok() {
                        h.record(t.elapsed().as_micros() as u64).unwrap();
                    }
                }
                h
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::SeqCst);
    let mut all = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        all.add(t.await.unwrap()).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let versions = ns.iter().map(Node::version).max().unwrap() - v0;
    let c = faulty.counts();
    println!(
        "store={store_kind} profile={profile} nodes={nodes} clients/node={clients} payload={payload}: {:.0} deltas/s, {:.0} commands/s, latency p50 {:.1} ms p99 {:.1} ms; PUT/s {:.0}",
        versions as f64 / elapsed,
        all.len() as f64 / elapsed,
        all.value_at_quantile(0.5) as f64 / 1000.0,
        all.value_at_quantile(0.99) as f64 / 1000.0,
        c.puts as f64 / elapsed,
    );
    for n in &ns {
        n.shutdown().await;
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ferrymq-core-bench-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
