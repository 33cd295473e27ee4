//! Simulated history of the offset index (docs/benchmarks.md, "A manifest that stays small"):
//! applies millions of published ranges through the real [`State::apply`] and the real index
//! folding and merging (`manifest::index`, as the sequencer's keeper runs them) on a memory
//! store, and reports at each milestone the state's checkpoint size, the process's memory, the
//! number of run summaries, and the time of random old-offset reads, cold (empty index cache)
//! and warm.
//!
//! usage: cargo run --release -p segment-writer --example index_history_bench -- \
//!   [total ranges, default 100000000] [queues, default 8] [appends per delta, default 400]
//!
//! Each delta carries `appends per delta` appends spread over the queues, each naming its own
//! segment, as the sequencer's commits do under a steady publish load (72 hours of 400
//! batches/s is about 100 million ranges).

use std::time::Instant;

use object_store::ObjectStoreExt;
use rand::{Rng, SeedableRng};
use segment_writer::manifest::index::{self, IndexCache, IndexSettings, QueueSnapshot};
use segment_writer::manifest::log::encode_checkpoint;
use segment_writer::manifest::{Command, Delta, Entry, State, TopicDef, TopicKind};
use segment_writer::store::Store;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Log {
    state: State,
    time_ms: i64,
}

impl Log {
    fn apply(&mut self, commands: Vec<Command>) -> Vec<segment_writer::manifest::Outcome> {
        let d = Delta {
            format: segment_writer::manifest::command::FORMAT,
            version: self.state.version + 1,
            time_ms: self.time_ms,
            writer: "bench".into(),
            nonce: self.state.version,
            parent: None,
            entries: vec![Entry {
                request: None,
                commands,
            }],
        };
        self.state.apply(&d).expect("next version").remove(0)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let total = args.first().copied().unwrap_or(100_000_000);
    let queues = args.get(1).copied().unwrap_or(8) as u32;
    let per_delta = args.get(2).copied().unwrap_or(400);
    let store = Store::open("memory://").expect("memory store");
    let settings = IndexSettings::default();
    let keeper_cache = IndexCache::new(64 << 20);
    let mut log = Log {
        state: State::default(),
        time_ms: 1_767_225_600_000,
    };
    log.apply(vec![Command::CreateTopic {
        topic: "t".into(),
        def: TopicDef {
            kind: TopicKind::Normal,
            queues,
            retention_hours: 72,
        },
    }]);
    let mut milestones: Vec<u64> = [1_000_000, 10_000_000, 100_000_000, 1_000_000_000]
        .into_iter()
        .filter(|m| *m <= total)
        .collect();
    if milestones.last() != Some(&total) {
        milestones.push(total);
    }
    println!(
        "| ranges applied | runs (summaries) | inline ranges | checkpoint bytes | RSS MiB | index objects MiB | cold read ms (p50/max of 20) | warm read µs (p50 of 20) | applied/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let started = Instant::now();
    let mut applied = 0u64;
    let mut segment = 0u64;
    let mut objects: std::collections::HashMap<String, u64> = Default::default();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    for milestone in milestones {
        while applied < milestone {
            let n = per_delta.min(milestone - applied);
            let commands = (0..n)
                .map(|i| {
                    segment += 1;
                    Command::Append {
                        topic: "t".into(),
                        queue: (i % u64::from(queues)) as u32,
                        segment: format!("segments/2026-01-01/{segment:026}.seg"),
                        first_ordinal: 0,
                        count: 31,
                        publish_time_ms: log.time_ms,
                    }
                })
                .collect();
            log.apply(commands);
            applied += n;
            log.time_ms += 2; // ~500 deltas/s of delta time
            // The keeper: one round whenever a queue has a chunk to fold.
            let work = log.state.plan_index(log.time_ms, &settings, 200_000);
            if work.is_empty() {
                continue;
            }
            #[allow(clippy::disallowed_methods)] // a benchmark: the name needs no injected time
            let object = segment_writer::paths::Paths::index_name(&ulid::Ulid::new());
            let (bytes, command) = index::build(&store, &keeper_cache, &object, &work)
                .await
                .expect("built")
                .expect("work");
            let merged = matches!(&command, Command::FoldIndex { runs, .. } if runs.iter().any(|r| !r.replaces.is_empty()));
            objects.insert(object.clone(), bytes.len() as u64);
            index::put_object(&store, &object, bytes)
                .await
                .expect("put");
            log.apply(vec![command]);
            if merged {
                // As the compactor's collection would (after its grace): objects no run names.
                let named = log.state.referenced_index_objects();
                let dead: Vec<String> = objects
                    .keys()
                    .filter(|o| !named.contains(*o))
                    .cloned()
                    .collect();
                for o in dead {
                    objects.remove(&o);
                    store
                        .inner
                        .delete(&store.paths.relative(&o))
                        .await
                        .expect("delete");
                }
            }
        }
        // Random old-offset reads: cold (a fresh cache) and warm (the same offsets again).
        let q = &log.state.topics["t"].queues[0];
        let snap = QueueSnapshot::of(q, 0, u64::MAX);
        let runs: usize = log.state.topics["t"]
            .queues
            .iter()
            .map(|q| q.index.len())
            .sum();
        let inline: usize = log.state.topics["t"]
            .queues
            .iter()
            .map(|q| q.ranges.len())
            .sum();
        let offsets: Vec<u64> = (0..20)
            .map(|_| rng.random_range(0..q.first_inline().max(1)))
            .collect();
        // Each offset read twice through a fresh cache: the first read GETs and decodes its
        // run's section (cold), the second finds it cached (warm).
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for &o in &offsets {
            let cache = IndexCache::new(64 << 20);
            let t = Instant::now();
            let r = cache.locate(&store, "t", 0, &snap, o).await.expect("read");
            cold.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(r.is_some(), "offset {o} is held");
            let t = Instant::now();
            cache.locate(&store, "t", 0, &snap, o).await.expect("read");
            warm.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(cache.gets(), 1, "the warm read costs no GET");
        }
        cold.sort_by(f64::total_cmp);
        warm.sort_by(f64::total_cmp);
        let checkpoint = encode_checkpoint(&log.state).expect("encodes").len();
        println!(
            "| {applied} | {runs} | {inline} | {checkpoint} | {:.0} | {:.0} | {:.2} / {:.2} | {:.1} | {:.0} |",
            rss_mib(),
            objects.values().sum::<u64>() as f64 / (1 << 20) as f64,
            cold[cold.len() / 2],
            cold[cold.len() - 1],
            warm[warm.len() / 2],
            applied as f64 / started.elapsed().as_secs_f64(),
        );
    }
}
