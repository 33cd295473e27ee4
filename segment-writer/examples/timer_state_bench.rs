//! How big the manifest state gets with many timers (delayed messages not yet due), and how
//! long a checkpoint of it takes to encode and decode: the part of start-up that grows with
//! the timer backlog.
//!
//! ```text
//! cargo run --release -p segment-writer --example timer_state_bench -- <timers>
//! ```

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark binary

use std::time::Instant;

use segment_writer::manifest::{
    Command, Delta, Entry, PublishMode, State, TopicDef, TopicKind, command::FORMAT,
};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
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
                    deliver_at_ms: 2_000 + ((i + k) as i64 * 3_456_000_000) / n as i64,
                },
            })
            .collect();
        apply(&mut state, commands);
        i += 1000;
    }
    let t = Instant::now();
    let bytes = serde_json::to_vec(&state).unwrap();
    let encode = t.elapsed();
    let t = Instant::now();
    let back: State = serde_json::from_slice(&bytes).unwrap();
    let decode = t.elapsed();
    assert_eq!(back.timers.len() as u64, n);
    println!(
        "{n} timers: checkpoint {:.1} MiB ({} bytes per timer), encode {:.0} ms, decode {:.0} ms",
        bytes.len() as f64 / 1048576.0,
        bytes.len() as u64 / n.max(1),
        encode.as_secs_f64() * 1000.0,
        decode.as_secs_f64() * 1000.0
    );
}
