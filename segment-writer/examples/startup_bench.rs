//! Start-up time of a manifest log: opens a log with `versions` deltas behind the newest
//! checkpoint (none, 10,000, 100,000), on the in-memory store under a latency profile.
//!
//! ```text
//! cargo run --release -p segment-writer --example startup_bench -- <profile> <versions after the checkpoint>
//! ```

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark binary

use std::sync::Arc;
use std::time::Instant;

use object_store::{ObjectStoreExt, PutPayload};
use segment_writer::clock::{Clock, TokioClock};
use segment_writer::faulty::{FaultConfig, FaultyStore};
use segment_writer::manifest::{
    Command, Delta, Entry, LogSettings, ManifestLog, TopicDef, TopicKind,
};
use segment_writer::store::Store;

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (profile, after) = (a[1].as_str(), a[2].parse::<u64>().unwrap());
    let base = Store::memory();
    let clock: Arc<dyn Clock> = TokioClock::shared();
    // Version 1 creates the topic and is checkpointed; then `after` append deltas follow.
    let mut log = ManifestLog::open(
        base.clone(),
        LogSettings {
            checkpoint_every: 1,
            ..LogSettings::default()
        },
        clock.clone(),
        "w".into(),
        1,
    )
    .await
    .unwrap();
    let def = TopicDef {
        kind: TopicKind::Normal,
        queues: 8,
        retention_hours: 1,
    };
    log.try_commit(vec![Entry {
        request: None,
        commands: vec![Command::CreateTopic {
            topic: "t".into(),
            def,
        }],
    }])
    .await
    .unwrap();
    log.checkpoint_and_gc().await.unwrap();
    for v in 2..2 + after {
        let cmd = Command::Append {
            topic: "t".into(),
            queue: (v % 8) as u32,
            segment: format!("segments/x/{v}.seg"),
            first_ordinal: 0,
            count: 100,
            publish_time_ms: 0,
        };
        let d = Delta {
            format: 1,
            version: v,
            time_ms: v as i64,
            writer: "w".into(),
            nonce: v,
            parent: None,
            entries: vec![Entry {
                request: None,
                commands: vec![cmd],
            }],
        };
        base.inner
            .put(
                &base.paths.log_version(v),
                PutPayload::from(serde_json::to_vec(&d).unwrap()),
            )
            .await
            .unwrap();
    }
    let faulty = Arc::new(FaultyStore::new(
        base.inner.clone(),
        FaultConfig::profile(profile).unwrap(),
        3,
        clock.clone(),
    ));
    let store = base.wrapped(faulty.clone());
    let t = Instant::now();
    let opened = ManifestLog::open(store, LogSettings::default(), clock, "r".into(), 2)
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(opened.version(), 1 + after);
    let c = faulty.counts();
    println!(
        "profile={profile} versions after checkpoint={after}: start-up {:.2} s ({} GETs, {} LISTs)",
        took.as_secs_f64(),
        c.gets,
        c.lists
    );
}
