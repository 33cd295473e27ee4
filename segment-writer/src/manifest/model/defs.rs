//! Definitions of topics and consumer groups, as created by [`Command::CreateTopic`] and
//! [`Command::CreateGroup`] and kept in the state ([`super::Topic::def`], [`super::Group::def`]).
//!
//! Plain data: part of the stored format of deltas and checkpoints.
//!
//! [`Command::CreateTopic`]: crate::manifest::Command::CreateTopic
//! [`Command::CreateGroup`]: crate::manifest::Command::CreateGroup

use serde::{Deserialize, Serialize};

/// RocketMQ 5 topic message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicKind {
    Normal,
    Fifo,
    Delay,
    Transaction,
}

/// A topic's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDef {
    pub kind: TopicKind,
    pub queues: u32,
    pub retention_hours: u32,
}

/// How a consumer group consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMode {
    /// Each message to one consumer of the group, with retries and dead letters.
    Clustering,
    /// Every consumer instance gets every message; offsets per instance.
    Broadcast,
}

/// Where a new cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    Earliest,
    Latest,
    Timestamp(i64),
}

/// One subscription of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub topic: String,
    /// A RocketMQ tag expression (`*`, `A || B`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// A SQL92 filter over properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// A consumer group's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDef {
    pub subscriptions: Vec<Subscription>,
    pub mode: GroupMode,
    pub start_from: StartFrom,
    pub max_retries: u32,
    pub invisible_ms: i64,
    pub retry_backoff_ms: Vec<i64>,
    /// Push delivery (API.md "Push subscriptions"): the gateways POST the group's messages to
    /// a URL instead of waiting for receives. Clustering groups only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushDef>,
}

/// A push group's endpoint and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushDef {
    pub url: String,
    /// Pushes outstanding at once across all gateways (leases of the group), enforced at apply.
    pub max_in_flight: u32,
    /// Leases granted per second across all gateways (0: no cap), enforced at apply.
    pub rate_per_s: u32,
    /// How long a push may take before it counts as failed.
    pub timeout_ms: u64,
    pub format: PushFormat,
    /// The gateways derive the group's signing secret from this and the cluster secret; the
    /// secret itself is never stored in the bucket. A new nonce is a new secret.
    pub secret_nonce: String,
}

impl PushDef {
    /// Whether `other` asks for the same delivery (the nonce aside).
    pub fn same_settings(&self, other: &PushDef) -> bool {
        PushDef {
            secret_nonce: String::new(),
            ..self.clone()
        } == PushDef {
            secret_nonce: String::new(),
            ..other.clone()
        }
    }
}

/// How a push carries a message: a CloudEvents 1.0 HTTP binding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushFormat {
    /// The body as is, attributes as `ce-*` headers.
    Binary,
    /// `application/cloudevents+json`.
    Structured,
}

impl GroupDef {
    /// Which cursors a consumer reads: clustering groups share one (key `""`), each consumer of
    /// a broadcast group has its own (key: the consumer).
    pub fn cursor_key(mode: GroupMode, consumer: &str) -> &str {
        match mode {
            GroupMode::Clustering => "",
            GroupMode::Broadcast => consumer,
        }
    }

    /// The wait before delivery attempt `attempt + 1`, after `attempt` deliveries.
    pub fn backoff_ms(&self, attempt: u32) -> i64 {
        let i = (attempt.max(1) - 1) as usize;
        self.retry_backoff_ms
            .get(i)
            .or(self.retry_backoff_ms.last())
            .copied()
            .unwrap_or(0)
    }

    /// Deliveries allowed before a message is dead-lettered.
    pub fn max_deliveries(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }

    /// Whether `other` differs from this definition in its push settings alone (switching
    /// between pull and push, or changing the endpoint or limits, keeps the cursors).
    pub fn differs_only_in_push(&self, other: &GroupDef) -> bool {
        GroupDef {
            push: None,
            ..self.clone()
        } == GroupDef {
            push: None,
            ..other.clone()
        }
    }
}
