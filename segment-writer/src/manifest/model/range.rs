//! Offset ranges: a run of a queue's offsets stored contiguously in one segment (where each
//! message's bytes are: segment and ordinal), and a single message position.
//!
//! Plain data: part of the stored format of checkpoints and deltas.

use serde::{Deserialize, Serialize};

/// A run of offsets stored contiguously in one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    pub base: u64,
    pub count: u32,
    pub segment: String,
    pub first_ordinal: u32,
    pub publish_time_ms: i64,
    /// For dead letters: the topic the message was published to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_topic: Option<String>,
    /// For dead letters: the queue and offset of the first message in its original topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<(u32, u64)>,
    /// When the range was appended, where that is not its publish time: delayed messages
    /// when due, committed half messages, dead letters (the delta time of the append).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appended_ms: Option<i64>,
}

impl OffsetRange {
    /// When its messages entered the queue (RocketMQ's store time): what reset to a
    /// timestamp and retention go by.
    pub fn stored_ms(&self) -> i64 {
        self.appended_ms.unwrap_or(self.publish_time_ms)
    }
}

/// A message position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueOffset {
    pub topic: String,
    pub queue: u32,
    pub offset: u64,
}
