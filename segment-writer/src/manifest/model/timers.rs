//! What the state keeps of timer spills ([`TimerSpill`]) and what a spill object holds
//! ([`SpillFile`]); why timers spill is told in `manifest::state::timers`, and the objects are
//! read and written by `manifest::timers`.
//!
//! Plain data: part of the stored format of deltas, checkpoints and spill objects.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use super::messaging::{Pending, timer_due};

/// The format version of spill objects this code writes.
pub const SPILL_FORMAT: u32 = 1;
/// What the state keeps of one spill object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerSpill {
    /// The first and last timer key it holds (inclusive).
    pub first_key: String,
    pub last_key: String,
    pub count: u32,
    /// Segments its timers point into (sorted, distinct), so they are not collected.
    pub segments: Vec<String>,
    /// Base64 of the sorted little-endian 32-bit fingerprints of its message ids.
    pub fingerprints: String,
    /// Message ids cancelled while spilled; they are skipped when the spill is loaded.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub cancelled: BTreeSet<String>,
}

impl TimerSpill {
    /// The summary of `timers` (in key order), as apply recomputes it.
    pub fn summarize<'a>(timers: impl IntoIterator<Item = (&'a String, &'a Pending)>) -> Self {
        let mut first_key = None;
        let mut last_key = String::new();
        let mut count = 0u32;
        let mut segments = BTreeSet::new();
        let mut prints = Vec::new();
        for (k, p) in timers {
            if first_key.is_none() {
                first_key = Some(k.clone());
            }
            last_key.clone_from(k);
            count += 1;
            if !segments.contains(&p.segment) {
                segments.insert(p.segment.clone());
            }
            prints.push(fingerprint(&p.message_id));
        }
        prints.sort_unstable();
        let bytes: Vec<u8> = prints.iter().flat_map(|f| f.to_le_bytes()).collect();
        TimerSpill {
            first_key: first_key.unwrap_or_default(),
            last_key,
            count,
            segments: segments.into_iter().collect(),
            fingerprints: B64.encode(bytes),
            cancelled: BTreeSet::new(),
        }
    }

    /// When its first timer is due.
    pub fn first_due_ms(&self) -> i64 {
        timer_due(&self.first_key)
    }

    /// Whether it may hold `message_id` (false positives about one in 2^32 per timer).
    pub fn may_hold(&self, message_id: &str) -> bool {
        let Ok(bytes) = B64.decode(&self.fingerprints) else {
            return true; // unreadable summary: look in the object
        };
        let f = fingerprint(message_id);
        let prints: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        prints.binary_search(&f).is_ok()
    }

    pub(crate) fn same_contents(&self, other: &TimerSpill) -> bool {
        self.first_key == other.first_key
            && self.last_key == other.last_key
            && self.count == other.count
            && self.segments == other.segments
            && self.fingerprints == other.fingerprints
    }
}

/// 32-bit FNV-1a of a message id.
fn fingerprint(message_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in message_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// One timer in a spill object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpilledTimer {
    pub key: String,
    pub message: Pending,
}

/// A spill object: timers in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpillFile {
    pub format: u32,
    pub timers: Vec<SpilledTimer>,
}

impl SpillFile {
    /// The summary of its timers.
    pub fn summary(&self) -> TimerSpill {
        TimerSpill::summarize(self.timers.iter().map(|t| (&t.key, &t.message)))
    }
}
