//! The sequencer and group commit, in process on the in-memory store with tokio's paused
//! clock (virtual time) and `FaultyStore` latency: fairness, takeover within the lease,
//! idempotent forwards, and faults that must surface as errors, never as success.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; tests drive tokio time directly

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use segment_writer::clock::{Clock, TokioClock};
use segment_writer::faulty::{FaultConfig, FaultyStore, Latency};
use segment_writer::manifest::{Command, LogSettings, ManifestLog, Outcome, TopicDef, TopicKind};
use segment_writer::node::{
    ForwardReply, ForwardRequest, Forwarder, LocalForwarder, Node, NodeSettings,
};
use segment_writer::store::Store;

fn create_topic() -> Command {
    Command::CreateTopic {
        topic: "t".into(),
        def: TopicDef {
            kind: TopicKind::Normal,
            queues: 4,
            retention_hours: 1,
        },
    }
}

fn append(segment: String) -> Command {
    Command::Append {
        topic: "t".into(),
        queue: 0,
        segment,
        first_ordinal: 0,
        count: 1,
        publish_time_ms: 0,
    }
}

fn node_settings(i: usize) -> NodeSettings {
    let mut s = NodeSettings::new(format!("gw{i}"), format!("10.0.0.{i}:8080"));
    s.log = LogSettings {
        checkpoint_every: 200,
        checkpoint_min_interval: Duration::ZERO,
        ..LogSettings::default()
    };
    s
}

async fn start(
    store: &Store,
    i: usize,
    fwd: Arc<dyn Forwarder>,
    local: &LocalForwarder,
    clock: &Arc<dyn Clock>,
) -> Node {
    let n = Node::start(
        store.clone(),
        node_settings(i),
        clock.clone(),
        fwd,
        i as u64,
    )
    .await
    .expect("start node");
    local.register(&n);
    n
}

/// How many times each segment name is in the final log, replayed from scratch.
async fn appended_in_log(store: &Store) -> BTreeMap<String, u32> {
    let log = ManifestLog::open(
        store.clone(),
        LogSettings::default(),
        TokioClock::shared(),
        "checker".into(),
        0,
    )
    .await
    .expect("replay");
    let state = log.state().read().unwrap().clone();
    let mut seen = BTreeMap::new();
    for q in &state.topics["t"].queues {
        for r in &q.ranges {
            *seen.entry(r.segment.clone()).or_insert(0) += 1;
        }
    }
    seen
}

async fn wait_for_sequencer(nodes: &[Node]) -> usize {
    loop {
        if let Some(i) = nodes.iter().position(|n| n.is_sequencer()) {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn four_nodes_get_fair_service_and_a_takeover_loses_nothing() {
    let clock: Arc<dyn Clock> = TokioClock::shared();
    let base = Store::memory();
    let profile = FaultConfig::profile("s3-express").unwrap();
    let faulty = Arc::new(FaultyStore::new(
        base.inner.clone(),
        profile,
        11,
        clock.clone(),
    ));
    let store = base.wrapped(faulty.clone());
    let local = Arc::new(LocalForwarder::default());
    let mut nodes = Vec::new();
    for i in 0..4 {
        nodes.push(start(&store, i, local.clone(), &local, &clock).await);
    }
    let leader = wait_for_sequencer(&nodes).await;
    nodes[leader].submit(vec![create_topic()]).await.unwrap();

    // Closed loops on every node for a fixed (virtual) time.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let counts: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for c in 0..4 {
            let (n, stop, acked, count) =
                (n.clone(), stop.clone(), acked.clone(), counts[i].clone());
            tasks.push(tokio::spawn(async move {
                let mut k = 0;
                while !stop.load(Ordering::SeqCst) {
                    let name = format!("n{i}-c{c}-{k}");
                    k += 1;
                    match n.submit(vec![append(name.clone())]).await {
                        Ok(done) => {
                            assert!(
                                matches!(done.outcomes[0], Outcome::Appended { .. }),
                                "{:?}",
                                done.outcomes
                            );
                            acked.lock().unwrap().push(name);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        // This node was stopped.
                        Err(segment_writer::Error::ShuttingDown) => break,
                        Err(_) => {}
                    }
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let per_node: Vec<u64> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    let (min, max) = (
        *per_node.iter().min().unwrap(),
        *per_node.iter().max().unwrap(),
    );
    assert!(min > 0 && max <= 2 * min, "unfair service: {per_node:?}");

    // Stop the sequencer mid-run.
    let stopped_at = tokio::time::Instant::now();
    let old = nodes.remove(leader);
    local.unregister(&old.settings().address);
    old.shutdown().await;
    let new_leader = wait_for_sequencer(&nodes).await;
    let took = stopped_at.elapsed();
    let ttl = nodes[new_leader].settings().lease_ttl;
    assert!(
        took <= ttl + Duration::from_secs(1),
        "takeover took {took:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let after: Vec<u64> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    for (i, n) in nodes.iter().enumerate() {
        let idx = if i >= leader { i + 1 } else { i };
        assert!(
            after[idx] > per_node[idx],
            "node {} made no progress after the takeover",
            n.settings().gateway_id
        );
    }
    for n in &nodes {
        n.shutdown().await;
    }
    let seen = appended_in_log(&base).await;
    for name in acked.lock().unwrap().iter() {
        assert_eq!(
            seen.get(name),
            Some(&1),
            "acknowledged {name} must be in the log exactly once"
        );
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "nothing is in the log twice"
    );
    eprintln!("per node before takeover {per_node:?}, after {after:?}, takeover {took:?}");
}

/// Loses the reply of the first forward after the sequencer applied it.
#[derive(Debug)]
struct LosingForwarder {
    inner: Arc<LocalForwarder>,
    lost: AtomicBool,
}

#[async_trait]
impl Forwarder for LosingForwarder {
    async fn forward(
        &self,
        address: &str,
        request: ForwardRequest,
    ) -> Result<ForwardReply, String> {
        let reply = self.inner.forward(address, request).await;
        if !self.lost.swap(true, Ordering::SeqCst) {
            return Err("connection reset after the request was applied".into());
        }
        reply
    }
}

#[tokio::test(start_paused = true)]
async fn a_retried_forward_is_applied_once() {
    let clock: Arc<dyn Clock> = TokioClock::shared();
    let store = Store::memory();
    let local = Arc::new(LocalForwarder::default());
    let leader = start(&store, 0, local.clone(), &local, &clock).await;
    wait_for_sequencer(std::slice::from_ref(&leader)).await;
    leader.submit(vec![create_topic()]).await.unwrap();
    let losing = Arc::new(LosingForwarder {
        inner: local.clone(),
        lost: AtomicBool::new(false),
    });
    let follower = start(&store, 1, losing, &local, &clock).await;
    let done = follower
        .submit(vec![append("once".into())])
        .await
        .expect("retried forward succeeds");
    assert_eq!(done.outcomes, vec![Outcome::Appended { base_offset: 0 }]);
    assert!(local.calls() >= 2, "the forward was retried");
    assert!(
        follower
            .wait_applied(done.version, Duration::from_secs(5))
            .await
    );
    assert_eq!(
        follower.state().topics["t"].queues[0].next_offset,
        1,
        "read your writes on the follower"
    );
    follower.shutdown().await;
    leader.shutdown().await;
    assert_eq!(appended_in_log(&store).await.get("once"), Some(&1));
}

#[tokio::test(start_paused = true)]
async fn store_faults_surface_as_errors_and_never_lose_or_double_a_commit() {
    let clock: Arc<dyn Clock> = TokioClock::shared();
    let base = Store::memory();
    let faulty = Arc::new(FaultyStore::new(
        base.inner.clone(),
        FaultConfig::profile("s3-express").unwrap(),
        5,
        clock.clone(),
    ));
    let store = base.wrapped(faulty.clone());
    let local = Arc::new(LocalForwarder::default());
    let nodes = vec![
        start(&store, 0, local.clone(), &local, &clock).await,
        start(&store, 1, local.clone(), &local, &clock).await,
    ];
    let l = wait_for_sequencer(&nodes).await;
    nodes[l].submit(vec![create_topic()]).await.unwrap();
    faulty.set_config(FaultConfig {
        error_rate: 0.20,
        lost_response_rate: 0.05,
        ..FaultConfig::profile("s3-express").unwrap()
    });
    let mut tasks = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for c in 0..8 {
            let n = n.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = Vec::new();
                let mut failed = Vec::new();
                for k in 0..40 {
                    let name = format!("n{i}-c{c}-{k}");
                    match n.submit(vec![append(name.clone())]).await {
                        Ok(done) => {
                            assert!(matches!(done.outcomes[0], Outcome::Appended { .. }));
                            ok.push(name);
                        }
                        Err(_) => failed.push(name),
                    }
                }
                (ok, failed)
            }));
        }
    }
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for t in tasks {
        let (o, f) = t.await.unwrap();
        ok.extend(o);
        failed.extend(f);
    }
    faulty.set_config(FaultConfig::default());
    for n in &nodes {
        n.shutdown().await;
    }
    let seen = appended_in_log(&base).await;
    for name in &ok {
        assert_eq!(
            seen.get(name),
            Some(&1),
            "acknowledged {name} lost or doubled"
        );
    }
    for name in &failed {
        assert!(
            seen.get(name).copied().unwrap_or(0) <= 1,
            "failed {name} applied twice"
        );
    }
    assert!(seen.values().all(|&n| n == 1));
    let c = faulty.counts();
    assert!(c.injected_faults > 0, "faults were injected: {c:?}");
    eprintln!(
        "acked {}, failed {}, faults injected {}",
        ok.len(),
        failed.len(),
        c.injected_faults
    );
    assert!(!ok.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_store_turns_the_node_unhealthy_until_it_returns() {
    let clock: Arc<dyn Clock> = TokioClock::shared();
    let base = Store::memory();
    let faulty = Arc::new(FaultyStore::new(
        base.inner.clone(),
        FaultConfig::default(),
        9,
        clock.clone(),
    ));
    let store = base.wrapped(faulty.clone());
    let local = Arc::new(LocalForwarder::default());
    let node = start(&store, 0, local.clone(), &local, &clock).await;
    wait_for_sequencer(std::slice::from_ref(&node)).await;
    assert!(node.store_healthy());
    faulty.set_outage(true);
    let started = tokio::time::Instant::now();
    assert!(
        node.submit(vec![create_topic()]).await.is_err(),
        "no ack while the store is down"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "fails quickly, not a hang"
    );
    assert!(!node.store_healthy());
    faulty.set_outage(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        node.store_healthy(),
        "healthy again after the next heartbeat"
    );
    assert!(node.submit(vec![create_topic()]).await.is_ok());
    node.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_follower_catches_up_with_everything_committed_before_it_asks() {
    let clock: Arc<dyn Clock> = TokioClock::shared();
    let base = Store::memory();
    // Store calls take 30 ms (p99 90), and followers tail only every 10 s: only catch_up
    // can make the follower see the topic soon.
    let latency = Latency::LogNormal {
        p50_ms: 30.0,
        p99_ms: 90.0,
    };
    let faulty = Arc::new(FaultyStore::new(
        base.inner.clone(),
        FaultConfig {
            put_latency: latency,
            get_latency: latency,
            ..FaultConfig::default()
        },
        3,
        clock.clone(),
    ));
    let store = base.wrapped(faulty);
    let local = Arc::new(LocalForwarder::default());
    let start_slow = |i: usize| {
        let (store, local, clock) = (store.clone(), local.clone(), clock.clone());
        async move {
            let mut s = node_settings(i);
            s.tail_interval = Duration::from_secs(10);
            let n = Node::start(store, s, clock, local.clone(), i as u64)
                .await
                .expect("start node");
            local.register(&n);
            n
        }
    };
    let a = start_slow(0).await;
    let b = start_slow(1).await;
    let nodes = [a.clone(), b.clone()];
    let seq = wait_for_sequencer(&nodes).await;
    let (leader, follower) = (&nodes[seq], &nodes[1 - seq]);
    // Let the follower's first tail rounds pass, so the next is 10 s away.
    tokio::time::sleep(Duration::from_secs(1)).await;
    leader.submit(vec![create_topic()]).await.expect("commit");
    assert!(!follower.state().topics.contains_key("t"));
    let asked = tokio::time::Instant::now();
    assert!(follower.catch_up(Duration::from_secs(5)).await);
    assert!(
        follower.state().topics.contains_key("t"),
        "applied what was committed before it asked"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "took {:?}",
        asked.elapsed()
    );
    assert!(
        leader.catch_up(Duration::from_secs(5)).await,
        "the sequencer is current"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Replays the log version by version from an empty state; the versions that were orphans
/// and their writers (written to follow a delta that lost its version: they change nothing).
async fn orphans_in_log(store: &Store) -> Vec<(u64, String)> {
    use object_store::ObjectStoreExt;
    use segment_writer::manifest::{Delta, State};
    let mut state = State::default();
    let mut orphans = Vec::new();
    for v in 1.. {
        let path = store.paths.log_version(v);
        let bytes = match store.inner.get(&path).await {
            Ok(r) => r.bytes().await.unwrap(),
            Err(object_store::Error::NotFound { .. }) => break,
            Err(e) => panic!("get {path}: {e}"),
        };
        let delta: Delta = serde_json::from_slice(&bytes).unwrap();
        if state.is_orphan(&delta) {
            orphans.push((v, delta.writer.clone()));
        }
        state.apply(&delta).unwrap();
    }
    orphans
}

/// The sequencer keeps several deltas in flight, each naming the one before it as parent. An
/// intruder writing the log directly takes versions out from under the pipeline: the deltas
/// in flight behind a lost version land as orphans (no-ops) and their commands are committed
/// again, so every acknowledged command is in the log exactly once.
#[tokio::test(start_paused = true)]
async fn a_pipeline_broken_by_another_writer_resubmits_and_loses_nothing() {
    let clock: Arc<dyn Clock> = TokioClock::shared();
    let base = Store::memory();
    let faulty = Arc::new(FaultyStore::new(
        base.inner.clone(),
        FaultConfig {
            put_latency: Latency::LogNormal {
                p50_ms: 20.0,
                p99_ms: 60.0,
            },
            ..FaultConfig::default()
        },
        7,
        clock.clone(),
    ));
    let store = base.wrapped(faulty);
    let local = Arc::new(LocalForwarder::default());
    let mut settings = node_settings(0);
    settings.max_deltas_in_flight = 4;
    let node = Node::start(store.clone(), settings, clock.clone(), local.clone(), 0)
        .await
        .unwrap();
    local.register(&node);
    wait_for_sequencer(std::slice::from_ref(&node)).await;
    node.submit(vec![create_topic()]).await.unwrap();
    let mut tasks = Vec::new();
    for c in 0..16u64 {
        let n = node.clone();
        let clock = clock.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            for k in 0..30u64 {
                // Arrivals spread over time, so that deltas overlap in flight.
                clock
                    .sleep(Duration::from_millis((c * 7 + k * 13) % 17))
                    .await;
                let name = format!("c{c}-{k}");
                match n.submit(vec![append(name.clone())]).await {
                    Ok(done) => {
                        assert!(matches!(done.outcomes[0], Outcome::Appended { .. }));
                        ok.push(name);
                    }
                    Err(e) => panic!("no store faults here, yet {name} failed: {e}"),
                }
            }
            ok
        }));
    }
    // The intruder: a direct writer (as a gateway that believes itself sequencer would be).
    let intruder_store = store.clone();
    let intruder_clock = clock.clone();
    let intruder = tokio::spawn(async move {
        let mut log = ManifestLog::open(
            intruder_store,
            LogSettings::default(),
            intruder_clock.clone(),
            "intruder".into(),
            99,
        )
        .await
        .unwrap();
        let mut committed = Vec::new();
        for k in 0..20 {
            intruder_clock.sleep(Duration::from_millis(37)).await;
            // A ghost a few versions ahead: the last of a chain whose first deltas are never
            // written (an intruder's pipeline whose first create failed). It can only be an
            // orphan, and the sequencer's delta that wanted its version loses it.
            let _ = log.catch_up().await.unwrap();
            let entry = |name: String| segment_writer::manifest::Entry {
                request: None,
                commands: vec![append(name)],
            };
            let mut chain = log
                .prepare(vec![entry(format!("ghost-{k}-0"))], None)
                .unwrap();
            for g in 1..5 {
                chain = log
                    .prepare(vec![entry(format!("ghost-{k}-{g}"))], Some(&chain))
                    .unwrap();
            }
            let _ = log.create(&chain).await;
            let name = format!("intruder-{k}");
            loop {
                let _ = log.catch_up().await.unwrap();
                let entries = vec![segment_writer::manifest::Entry {
                    request: None,
                    commands: vec![append(name.clone())],
                }];
                match log.try_commit(entries).await.unwrap() {
                    segment_writer::manifest::CommitAttempt::Committed(a) => {
                        assert!(!a.orphan);
                        committed.push(name);
                        break;
                    }
                    segment_writer::manifest::CommitAttempt::Conflict(_) => continue,
                }
            }
        }
        committed
    });
    let mut ok = Vec::new();
    for t in tasks {
        ok.extend(t.await.unwrap());
    }
    let intruded = intruder.await.unwrap();
    node.shutdown().await;
    let seen = appended_in_log(&base).await;
    for name in ok.iter().chain(&intruded) {
        assert_eq!(seen.get(name), Some(&1), "{name} lost or doubled");
    }
    assert_eq!(
        seen.len(),
        ok.len() + intruded.len(),
        "nothing else was appended"
    );
    let orphans = orphans_in_log(&base).await;
    let of_the_sequencer = orphans.iter().filter(|(_, w)| w == "gw0").count();
    eprintln!(
        "acked {} + intruder {}; orphaned versions {} ({of_the_sequencer} of the sequencer)",
        ok.len(),
        intruded.len(),
        orphans.len()
    );
    assert!(
        of_the_sequencer > 0,
        "the intruder broke the pipeline at least once (else this test proves nothing)"
    );
}
