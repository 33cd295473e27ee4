//! The manifest log against every store: safety of conditional creates with many writers,
//! deterministic replay, checkpoints, start-up cost, corruption.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; tests drive tokio time directly

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrymq_tests::common::stores::{self, Backend};
use ferrymq_tests::on_every_store;
use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use segment_writer::clock::TokioClock;
use segment_writer::faulty::{FaultConfig, FaultyStore};
use segment_writer::manifest::{
    Command, CommitAttempt, Entry, LogSettings, ManifestLog, State, TopicDef, TopicKind,
};
use segment_writer::{Error, store::Store};

fn settings(checkpoint_every: u64) -> LogSettings {
    LogSettings {
        checkpoint_every,
        checkpoint_min_interval: Duration::ZERO,
        ..LogSettings::default()
    }
}

async fn open(store: &Store, name: &str, cp: u64) -> ManifestLog {
    ManifestLog::open(
        store.clone(),
        settings(cp),
        TokioClock::shared(),
        name.into(),
        rand::random(),
    )
    .await
    .expect("open log")
}

/// Commits `commands` directly (no sequencer), retrying on conflict.
async fn commit(log: &mut ManifestLog, commands: Vec<Command>) -> u64 {
    loop {
        match log
            .try_commit(vec![Entry {
                request: None,
                commands: commands.clone(),
            }])
            .await
        {
            Ok(CommitAttempt::Committed(a)) => return a.delta.version,
            Ok(CommitAttempt::Conflict(_)) => continue,
            Err(e) if e.is_retryable() => continue,
            Err(e) => panic!("commit failed: {e}"),
        }
    }
}

fn create_topic(queues: u32) -> Command {
    Command::CreateTopic {
        topic: "t".into(),
        def: TopicDef {
            kind: TopicKind::Normal,
            queues,
            retention_hours: 1,
        },
    }
}

fn append(queue: u32, segment: String) -> Command {
    Command::Append {
        topic: "t".into(),
        queue,
        segment,
        first_ordinal: 0,
        count: 1,
        publish_time_ms: 0,
    }
}

fn encode(state: &State) -> Vec<u8> {
    serde_json::to_vec(state).expect("encode state")
}

async fn eight_writers_without_a_sequencer_never_share_an_offset(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let per_writer: u32 = match backend {
        Backend::Memory => 500,
        Backend::Local => 150,
        // moto serialises contending creates; 8 x 60 keeps CI fast and still contends hard.
        Backend::S3 => 60,
    };
    let mut first = open(&ts.store, "setup", 10_000).await;
    commit(&mut first, vec![create_topic(4)]).await;
    let mut tasks = Vec::new();
    for w in 0..8u32 {
        let store = ts.reopen();
        tasks.push(tokio::spawn(async move {
            let mut log = open(&store, &format!("w{w}"), 10_000).await;
            for i in 0..per_writer {
                commit(&mut log, vec![append((w + i) % 4, format!("w{w}-{i}"))]).await;
            }
            log
        }));
    }
    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await.expect("writer task"));
    }
    let mut replayed = open(&ts.reopen(), "reader", 10_000).await;
    replayed.catch_up().await.expect("catch up");
    let state = replayed.state().read().unwrap().clone();
    let q = &state.topics["t"].queues;
    let mut seen = BTreeMap::new();
    for queue in q {
        let mut expect = 0;
        for r in &queue.ranges {
            assert_eq!(r.base, expect, "offsets are dense");
            expect += u64::from(r.count);
            *seen.entry(r.segment.clone()).or_insert(0) += 1;
        }
        assert_eq!(queue.next_offset, expect);
    }
    assert_eq!(
        seen.len(),
        8 * per_writer as usize,
        "every message is there"
    );
    assert!(seen.values().all(|&n| n == 1), "no message twice");
    // Every writer, caught up, holds the same state, as a value and as bytes.
    for mut log in logs {
        log.catch_up().await.expect("catch up");
        let s = log.state().read().unwrap().clone();
        assert_eq!(s, state);
        assert_eq!(encode(&s), encode(&state));
    }
}
on_every_store!(eight_writers_without_a_sequencer_never_share_an_offset);

async fn replay_from_checkpoint_equals_replay_from_zero(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let mut log = open(&ts.store, "w", 50).await;
    commit(&mut log, vec![create_topic(2)]).await;
    for i in 0..180u32 {
        commit(&mut log, vec![append(i % 2, format!("s{i}"))]).await;
        if log.checkpoint_due() {
            log.checkpoint_and_gc().await.expect("checkpoint");
        }
    }
    let head = log.state().read().unwrap().clone();
    // From the checkpoint (the default open path).
    let from_cp = open(&ts.reopen(), "r1", 50).await;
    assert_eq!(*from_cp.state().read().unwrap(), head);
    // From version 0: apply every version by hand.
    let mut s = State::default();
    for v in 1..=head.version {
        let path = ts.store.paths.log_version(v);
        let bytes = ts
            .store
            .inner
            .get(&path)
            .await
            .expect("log version kept within grace")
            .bytes()
            .await
            .unwrap();
        let delta = serde_json::from_slice(&bytes).unwrap();
        s.apply(&delta).unwrap();
    }
    assert_eq!(s, head);
    assert_eq!(encode(&s), encode(&head));
}
on_every_store!(replay_from_checkpoint_equals_replay_from_zero);

async fn a_corrupt_log_version_is_an_error_naming_it(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let mut log = open(&ts.store, "w", 1000).await;
    commit(&mut log, vec![create_topic(1)]).await;
    let path = ts.store.paths.log_version(2);
    ts.store
        .inner
        .put(&path, PutPayload::from_static(b"\x00garbage"))
        .await
        .unwrap();
    let err = log.catch_up().await.expect_err("corrupt version must fail");
    match err {
        Error::Corrupt { path: p, .. } => assert!(p.ends_with("00000000000000000002"), "{p}"),
        e => panic!("expected Corrupt, got {e}"),
    }
    // A fresh open fails the same way, cleanly.
    assert!(matches!(
        ManifestLog::open(
            ts.reopen(),
            settings(1000),
            TokioClock::shared(),
            "r".into(),
            1
        )
        .await,
        Err(Error::Corrupt { .. })
    ));
}
on_every_store!(a_corrupt_log_version_is_an_error_naming_it);

async fn a_corrupt_segment_is_an_error_naming_it(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let msgs: Vec<_> = (0..100)
        .map(|i| segment_writer::segment::Message {
            topic: "t".into(),
            message_id: format!("m{i}"),
            body: vec![i as u8; 2000].into(),
            ..Default::default()
        })
        .collect();
    let bytes = segment_writer::segment::encode(&msgs);
    segment_writer::segment_store::put_segment(&ts.store, "segments/d/ok.seg", bytes.clone())
        .await
        .unwrap();
    let got = segment_writer::segment_store::read_ordinals(&ts.store, "segments/d/ok.seg", 40..45)
        .await
        .unwrap();
    assert_eq!(got, msgs[40..45]);
    let mut bad = bytes.to_vec();
    bad[100] ^= 0xff;
    segment_writer::segment_store::put_segment(&ts.store, "segments/d/bad.seg", bad.into())
        .await
        .unwrap();
    let err = segment_writer::segment_store::read_ordinals(&ts.store, "segments/d/bad.seg", 0..1)
        .await
        .expect_err("damaged block");
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if path.ends_with("bad.seg")),
        "{err}"
    );
    // Other blocks of the same damaged segment still read.
    assert_eq!(
        segment_writer::segment_store::read_ordinals(&ts.store, "segments/d/bad.seg", 90..91)
            .await
            .unwrap(),
        msgs[90..91]
    );
    let missing =
        segment_writer::segment_store::read_ordinals(&ts.store, "segments/d/none.seg", 0..1)
            .await
            .expect_err("missing");
    assert!(matches!(missing, Error::Corrupt { .. }));
}
on_every_store!(a_corrupt_segment_is_an_error_naming_it);

/// 10,000 versions, a checkpoint every 1,000: start-up GETs one checkpoint plus the versions
/// after it (counted through the wrapper), and LISTs twice.
#[tokio::test]
async fn start_up_reads_one_checkpoint_and_the_versions_after_it() {
    let base = Store::memory();
    let mut log = open(&base, "w", 1000).await;
    commit(&mut log, vec![create_topic(1)]).await;
    for i in 0..9_999u32 {
        commit(&mut log, vec![append(0, format!("s{i}"))]).await;
        if log.checkpoint_due() {
            log.checkpoint_and_gc().await.unwrap();
        }
    }
    commit(&mut log, vec![append(0, "tail-1".into())]).await;
    commit(&mut log, vec![append(0, "tail-2".into())]).await;
    let head = log.version();
    assert_eq!(head, 10_002);
    let faulty = Arc::new(FaultyStore::new(
        base.inner.clone(),
        FaultConfig::default(),
        1,
        TokioClock::shared(),
    ));
    let counted = base.wrapped(faulty.clone());
    let started = std::time::Instant::now();
    let reopened = open(&counted, "r", 1000).await;
    let took = started.elapsed();
    assert_eq!(reopened.version(), head);
    let c = faulty.counts();
    // One checkpoint GET, one GET per version after it, one not-found GET at the head.
    assert_eq!(c.gets, 1 + (head - 10_000) + 1, "{c:?}");
    assert!(c.lists <= 2, "{c:?}");
    eprintln!(
        "start-up with {} versions after the checkpoint took {took:?}",
        head - 10_000
    );
}

/// Under load a checkpoint (the whole state) is written no more often than
/// `checkpoint_min_interval`, however many versions pass; then at the first version due after it.
#[tokio::test(start_paused = true)]
async fn checkpoints_wait_for_their_minimum_interval_under_load() {
    let store = Store::memory();
    let s = LogSettings {
        checkpoint_every: 10,
        checkpoint_min_interval: Duration::from_secs(10),
        ..LogSettings::default()
    };
    let mut log = ManifestLog::open(store.clone(), s, TokioClock::shared(), "w".into(), 7)
        .await
        .unwrap();
    commit(&mut log, vec![create_topic(1)]).await;
    let mut written = Vec::new();
    for i in 0..100u32 {
        commit(&mut log, vec![append(0, format!("s{i}"))]).await;
        if log.checkpoint_due() {
            log.checkpoint_and_gc().await.unwrap();
            written.push(log.version());
        }
        // 100 versions in 5 s: without the interval, one checkpoint per 10 versions.
        tokio::time::advance(Duration::from_millis(50)).await;
    }
    assert_eq!(written, vec![10], "only the first, then the interval holds");
    // The first was written at 0.4 s (version 10); the loop ended at 5 s.
    tokio::time::advance(Duration::from_secs(5)).await;
    commit(&mut log, vec![append(0, "early".into())]).await;
    assert!(!log.checkpoint_due(), "9.6 s after the last one");
    tokio::time::advance(Duration::from_secs(1)).await;
    commit(&mut log, vec![append(0, "late".into())]).await;
    assert!(
        log.checkpoint_due(),
        "due again once the interval has passed"
    );
    log.checkpoint_and_gc().await.unwrap();
    let listed =
        object_store::ObjectStore::list(store.inner.as_ref(), Some(&store.paths.checkpoint_dir()))
            .map(|m| m.unwrap().location.to_string())
            .collect::<Vec<_>>()
            .await;
    assert_eq!(listed.len(), 2, "{listed:?}");
}

/// A writer stalled past the GC grace re-reads before writing, so it cannot recreate a
/// deleted version that no one would read.
#[tokio::test(start_paused = true)]
async fn a_stalled_writer_cannot_write_into_a_deleted_version() {
    let store = Store::memory();
    let grace = Duration::from_secs(600);
    let s = LogSettings {
        checkpoint_every: 100,
        checkpoint_min_interval: Duration::ZERO,
        gc_grace: grace,
        ..LogSettings::default()
    };
    let clock = TokioClock::shared();
    let mut stalled =
        ManifestLog::open(store.clone(), s.clone(), clock.clone(), "stalled".into(), 1)
            .await
            .unwrap();
    commit(&mut stalled, vec![create_topic(1)]).await;
    let stalled_at = stalled.version();
    let mut active = ManifestLog::open(store.clone(), s.clone(), clock.clone(), "active".into(), 2)
        .await
        .unwrap();
    for i in 0..250u32 {
        commit(&mut active, vec![append(0, format!("a{i}"))]).await;
        if active.checkpoint_due() {
            active.checkpoint_and_gc().await.unwrap();
        }
    }
    tokio::time::advance(grace + Duration::from_secs(60)).await;
    for i in 0..250u32 {
        commit(&mut active, vec![append(0, format!("b{i}"))]).await;
        if active.checkpoint_due() {
            active.checkpoint_and_gc().await.unwrap();
        }
    }
    // GC removed the versions right after the stalled writer's head.
    let next = store.paths.log_version(stalled_at + 1);
    assert!(
        store.inner.head(&next).await.is_err(),
        "GC should have deleted version {}",
        stalled_at + 1
    );
    let v = commit(&mut stalled, vec![append(0, "late".into())]).await;
    assert_eq!(
        v,
        active.version() + 1,
        "the stalled writer wrote at the head, not into the hole"
    );
    assert!(
        store.inner.head(&next).await.is_err(),
        "the deleted version stays deleted"
    );
    active.catch_up().await.unwrap();
    assert_eq!(
        *active.state().read().unwrap(),
        *stalled.state().read().unwrap()
    );
}
