//! The ceiling of one manifest log's state machine (docs/rfcs/0004-sharded-manifest.md): how
//! many published batches, and how many received-and-acked messages, one sequencer can apply
//! per second of one core, with the state bounded (offset index folding as the keeper does).
//! It measures `State::apply` alone (plus delta JSON encode and decode, which every delta costs
//! the sequencer and each follower), not the store: `core_bench` measures commits against a
//! store.
//!
//! usage: cargo run --release -p segment-writer --example apply_ceiling_bench -- \
//!   [seconds per phase, default 10] [queues, default 8] [consumer batch, default 32]
//!
//! Phases:
//! - `publish`: deltas of 64 appends (one per gateway batch and queue, 31 messages each),
//! - `receive+ack`: a clustering group leases `batch` messages per Lease command (16 per
//!   delta, as 16 consumers' receives ride one delta) and acks each with its own Settle (the
//!   API's ack is one command per receipt). Candidates whose ranges are folded carry their
//!   range, looked up through the index cache as the receiving gateway does (that lookup is
//!   counted in the wall time, not in apply).

use std::time::{Duration, Instant};

use segment_writer::manifest::command::FORMAT;
use segment_writer::manifest::index::{self, IndexCache, IndexSettings, QueueSnapshot};
use segment_writer::manifest::{
    Command, Delta, Entry, GroupDef, GroupMode, Outcome, QueueOffset, SettleAction, StartFrom,
    State, Subscription, TopicDef, TopicKind,
};
use segment_writer::store::Store;

struct Bench {
    state: State,
    time_ms: i64,
    encode_ns: u128,
    apply_ns: u128,
}

impl Bench {
    fn apply(&mut self, commands: Vec<Command>) -> Vec<Outcome> {
        let d = Delta {
            format: FORMAT,
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
        // What the sequencer pays per delta besides apply: encode; a follower: decode.
        let t = Instant::now();
        let bytes = serde_json::to_vec(&d).expect("encode");
        let back: Delta = serde_json::from_slice(&bytes).expect("decode");
        self.encode_ns += t.elapsed().as_nanos();
        let t = Instant::now();
        let out = self.state.apply(&back).expect("next").remove(0);
        self.apply_ns += t.elapsed().as_nanos();
        self.time_ms += 1;
        out
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let secs = args.first().copied().unwrap_or(10);
    let queues = args.get(1).copied().unwrap_or(8) as u32;
    let batch = args.get(2).copied().unwrap_or(32) as u32;
    let store = Store::open("memory://").expect("memory");
    let cache = IndexCache::new(64 << 20);
    let settings = IndexSettings::default();
    let mut b = Bench {
        state: State::default(),
        time_ms: 1_767_225_600_000,
        encode_ns: 0,
        apply_ns: 0,
    };
    b.apply(vec![Command::CreateTopic {
        topic: "t".into(),
        def: TopicDef {
            kind: TopicKind::Normal,
            queues,
            retention_hours: 72,
        },
    }]);
    b.apply(vec![Command::CreateGroup {
        group: "g".into(),
        def: GroupDef {
            subscriptions: vec![Subscription {
                topic: "t".into(),
                filter: None,
                sql: None,
            }],
            mode: GroupMode::Clustering,
            start_from: StartFrom::Earliest,
            max_retries: 16,
            invisible_ms: 30_000,
            retry_backoff_ms: vec![1_000],
            push: None,
        },
        resolved: Default::default(),
    }]);
    let mut segment = 0u64;
    let keep = async |b: &mut Bench| {
        let work = b.state.plan_index(b.time_ms, &settings, 200_000);
        if !work.is_empty() {
            let object = format!("index/{}.idx", b.state.version);
            if let Some((bytes, command)) = index::build(&store, &cache, &object, &work)
                .await
                .expect("build")
            {
                index::put_object(&store, &object, bytes)
                    .await
                    .expect("put");
                b.apply(vec![command]);
            }
        }
    };

    // Publish.
    let started = Instant::now();
    let (mut deltas, mut messages) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(secs) {
        let commands = (0..64)
            .map(|i| {
                segment += 1;
                Command::Append {
                    topic: "t".into(),
                    queue: i % queues,
                    segment: format!("segments/2026-01-01/{segment:026}.seg"),
                    first_ordinal: 0,
                    count: 31,
                    publish_time_ms: 0,
                }
            })
            .collect();
        b.apply(commands);
        deltas += 1;
        messages += 64 * 31;
        if deltas.is_multiple_of(16) {
            keep(&mut b).await;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "publish: {:.0} deltas/s, {:.0} appends/s, {:.0} messages/s; per delta: apply {:.1} µs, encode+decode {:.1} µs",
        deltas as f64 / wall,
        deltas as f64 * 64.0 / wall,
        messages as f64 / wall,
        b.apply_ns as f64 / deltas as f64 / 1e3,
        b.encode_ns as f64 / deltas as f64 / 1e3,
    );

    // Receive + ack.
    b.apply_ns = 0;
    b.encode_ns = 0;
    let started = Instant::now();
    let (mut deltas, mut consumed) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(secs) {
        // 16 receives with distinct candidates (as consumers' receives spread over queues).
        let all = b.state.candidates("g", "", b.time_ms, 16 * batch as usize);
        // Folded candidates carry their range, as the receiving gateway read it.
        let mut located = Vec::new();
        for c in &all {
            let q = &b.state.topics["t"].queues[c.queue as usize];
            located.push(if c.offset < q.first_inline() {
                let snap = QueueSnapshot::of(q, c.offset, 1);
                cache
                    .locate(&store, "t", c.queue, &snap, c.offset)
                    .await
                    .expect("index read")
            } else {
                None
            });
        }
        let mut leases = Vec::new();
        for (candidates, located) in all
            .chunks(batch as usize)
            .zip(located.chunks(batch as usize))
        {
            let candidates = candidates.to_vec();
            let located = located.to_vec();
            leases.push(Command::Lease {
                group: "g".into(),
                consumer: String::new(),
                invisible_ms: 30_000,
                max: batch,
                candidates,
                skipped: vec![],
                message_groups: vec![],
                located,
                max_in_flight: None,
            });
        }
        let out = b.apply(leases);
        deltas += 1;
        let mut acks = Vec::new();
        for o in out {
            if let Outcome::Leased {
                version, grants, ..
            } = o
            {
                for g in grants {
                    acks.push(Command::Settle {
                        group: "g".into(),
                        consumer: String::new(),
                        at: QueueOffset {
                            topic: g.at.topic,
                            queue: g.at.queue,
                            offset: g.at.offset,
                        },
                        lease_version: version,
                        action: SettleAction::Ack,
                    });
                }
            }
        }
        consumed += acks.len() as u64;
        if acks.is_empty() {
            println!("nothing left to receive after {consumed} messages");
            break;
        }
        b.apply(acks);
        deltas += 1;
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "receive+ack: {:.0} messages/s ({:.0} deltas/s); per delta: apply {:.1} µs, encode+decode {:.1} µs",
        consumed as f64 / wall,
        deltas as f64 / wall,
        b.apply_ns as f64 / deltas as f64 / 1e3,
        b.encode_ns as f64 / deltas as f64 / 1e3,
    );
}
