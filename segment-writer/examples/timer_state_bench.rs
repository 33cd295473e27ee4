//! How big the manifest state gets with many timers (delayed messages not yet due), and how
//! long a checkpoint of it takes to encode and decode: the part of start-up that grows with
//! the timer backlog. Then the same state after the sequencer's spill keeper has moved all but
//! the earliest timers to spill objects (`manifest::timers`, default settings).
//!
//! ```text
//! cargo run --release -p segment-writer --example timer_state_bench -- <timers> [random]
//! ```
//!
//! Due times are spread evenly over 40 days in publish order, or shuffled with `random` (the
//! worst case for spills: each chunk then points into most segments).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark binary

use std::time::Instant;

use segment_writer::manifest::timers::SpillSettings;
use segment_writer::manifest::{
    Command, Delta, Entry, PublishMode, State, TopicDef, TopicKind, command::FORMAT,
};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let random = std::env::args().nth(2).is_some_and(|a| a == "random");
    let mut state = State::default();
    let mut version = 0;
    let mut apply = |state: &mut State, commands: Vec<Command>| {
        version += 1;
        state
            .apply(&Delta {
                format: FORMAT,
                version,
                time_ms: 1_000,
                writer: "w".into(),
                nonce: version,
                parent: None,
                entries: vec![Entry {
                    request: None,
                    commands,
                }],
            })
            .unwrap();
    };
    apply(
        &mut state,
        vec![Command::CreateTopic {
            topic: "reminders".into(),
            def: TopicDef {
                kind: TopicKind::Delay,
                queues: 8,
                retention_hours: 72,
            },
        }],
    );
    // Timers as the batcher makes them: 1,000 per segment, due over the next 40 days.
    let mut i = 0;
    while i < n {
        let segment = format!("segments/2026-11-25/{}.seg", ulid::Ulid::new());
        let commands = (0..1000.min(n - i))
            .map(|k| Command::PublishOne {
                topic: "reminders".into(),
                queue: ((i + k) % 8) as u32,
                segment: segment.clone(),
                ordinal: k as u32,
                publish_time_ms: 1_000,
                message_id: ulid::Ulid::new().to_string(),
                dedup_id: None,
                mode: PublishMode::Timer {
                    deliver_at_ms: 2_000
                        + (spread(i + k, n, random) as i64 * 3_456_000_000) / n as i64,
                },
            })
            .collect();
        apply(&mut state, commands);
        i += 1000;
    }
    measure("inline", &state, n);
    // The spill keeper's rounds, in process: plan a chunk, encode its object, apply the spill.
    let settings = SpillSettings::default();
    let t = Instant::now();
    let (mut objects, mut object_bytes) = (0u64, 0u64);
    while let Some(file) = state.plan_timer_spill(1_000, &settings) {
        object_bytes += serde_json::to_vec(&file).unwrap().len() as u64;
        objects += 1;
        apply(
            &mut state,
            vec![Command::SpillTimers {
                object: format!("timers/{objects}.json"),
                spill: file.summary(),
            }],
        );
    }
    println!(
        "spilled into {objects} objects of {:.1} MiB in all (plan + encode + apply {:.0} ms)",
        object_bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64() * 1000.0
    );
    measure("after spilling", &state, n);
}

/// The `i`th of `n` due slots: in order, or shuffled by a fixed odd multiplier.
fn spread(i: u64, n: u64, random: bool) -> u64 {
    if random {
        (i.wrapping_mul(2_654_435_761)) % n
    } else {
        i
    }
}

fn measure(what: &str, state: &State, n: u64) {
    let t = Instant::now();
    let bytes = serde_json::to_vec(state).unwrap();
    let encode = t.elapsed();
    let t = Instant::now();
    let back: State = serde_json::from_slice(&bytes).unwrap();
    let decode = t.elapsed();
    let (inline, spilled) = back.timer_counts();
    assert_eq!((inline + spilled) as u64, n);
    println!(
        "{what}: {n} timers ({inline} inline, {spilled} spilled): checkpoint {:.1} MiB ({} bytes per timer), encode {:.0} ms, decode {:.0} ms",
        bytes.len() as f64 / 1048576.0,
        bytes.len() as u64 / n.max(1),
        encode.as_secs_f64() * 1000.0,
        decode.as_secs_f64() * 1000.0
    );
}
