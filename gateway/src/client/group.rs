//! `ferrymq group create|list|get|delete|lag|reset|redrive`: consumer groups over
//! `/v1/groups`.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::table::{Table, fields};
use super::{ConnArgs, Output, Result, print_json, print_text};
use crate::wire::{
    CreateGroupRequest, GroupInfo, GroupList, GroupMode, Position, QueueLag, RedriveRequest,
    RedriveResponse, ResetRequest, ResetResponse, Subscription,
};

/// `ferrymq group …`.
#[derive(Debug, Clone, Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    pub command: GroupCommand,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// The group subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum GroupCommand {
    /// Create a consumer group (or confirm that it exists with this definition).
    Create {
        /// The group's name (`[A-Za-z0-9._-]`, up to 120).
        name: String,
        /// A topic to subscribe to; repeatable (the filter applies to each).
        #[arg(long = "topic", required = true)]
        topics: Vec<String>,
        /// A tag expression (`*`, `A`, `A || B`).
        #[arg(long, conflicts_with = "sql")]
        filter: Option<String>,
        /// A SQL92 filter over properties (and `TAGS`).
        #[arg(long)]
        sql: Option<String>,
        /// clustering (each message to one consumer) or broadcast (server default: clustering).
        #[arg(long)]
        mode: Option<GroupMode>,
        /// Where a new cursor starts: earliest, latest or epoch milliseconds (server default:
        /// latest).
        #[arg(long)]
        start_from: Option<Position>,
        /// Deliveries after the first before a message is dead-lettered (server default: 16).
        #[arg(long)]
        max_retries: Option<u32>,
        /// Lease of a received message before it is delivered again (server default: 30000).
        #[arg(long)]
        invisible_ms: Option<i64>,
        /// Push the group's messages to this URL (a webhook) instead of receiving them; it
        /// must match the gateways' --push-allow. The answer shows the signing secret once.
        #[arg(long)]
        push_url: Option<String>,
        /// With --push-url: binary or structured CloudEvents (server default: binary).
        #[arg(long, requires = "push_url")]
        push_format: Option<crate::wire::PushFormat>,
        /// With --push-url: pushes outstanding at once over all gateways (server default: 64).
        #[arg(long, requires = "push_url")]
        push_max_in_flight: Option<u32>,
    },
    /// List every group with its backlog per topic and dead letters.
    List,
    /// Show a group's definition and its lag per queue.
    Get {
        /// The group.
        name: String,
    },
    /// Delete a group.
    Delete {
        /// The group.
        name: String,
    },
    /// Show a group's lag per topic and queue.
    Lag {
        /// The group.
        name: String,
    },
    /// Move a group's offsets on one topic.
    Reset {
        /// The group.
        name: String,
        /// The topic whose offsets move.
        #[arg(long)]
        topic: String,
        /// earliest, latest or epoch milliseconds.
        #[arg(long)]
        to: Position,
    },
    /// Make the group's dead letters visible to it again.
    Redrive {
        /// The group.
        name: String,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        max: u32,
    },
}

/// What `group lag --output json` prints.
#[derive(Debug, Serialize)]
struct LagOut<'a> {
    group: &'a str,
    lag: &'a [QueueLag],
}

/// Runs `ferrymq group …`.
pub async fn run(args: GroupArgs) -> Result<()> {
    let client = args.conn.connect()?;
    match args.command {
        GroupCommand::Create {
            name,
            topics,
            filter,
            sql,
            mode,
            start_from,
            max_retries,
            invisible_ms,
            push_url,
            push_format,
            push_max_in_flight,
        } => {
            let push = push_url.map(|url| {
                let mut p = crate::wire::PushConfig::new(url);
                p.format = push_format.unwrap_or_default();
                if let Some(n) = push_max_in_flight {
                    p.max_in_flight = n;
                }
                p
            });
            let req = CreateGroupRequest {
                subscriptions: topics
                    .into_iter()
                    .map(|topic| Subscription {
                        topic,
                        filter: filter.clone(),
                        sql: sql.clone(),
                    })
                    .collect(),
                mode,
                start_from,
                max_retries,
                invisible_ms,
                retry_backoff_ms: None,
                push,
            };
            let (group, created): (GroupInfo, bool) = client.put(&["groups", &name], &req).await?;
            match client.output {
                Output::Json => print_json(&group),
                Output::Table => {
                    let verb = if created { "created" } else { "exists" };
                    print_text(&format!(
                        "{verb}: group {}\n{}",
                        group.group,
                        definition(&group)
                    ))
                }
            }
        }
        GroupCommand::List => {
            let list: GroupList = client.get(&["groups"]).await?;
            match client.output {
                Output::Json => print_json(&list),
                Output::Table => {
                    let mut t = Table::new(&[
                        "GROUP",
                        "MODE",
                        "TOPICS",
                        "LAG",
                        "INFLIGHT",
                        "DELAYED",
                        "DEAD_LETTERS",
                    ]);
                    for g in &list.groups {
                        let backlog = g.backlog.as_deref().unwrap_or_default();
                        t.row(vec![
                            g.group.clone(),
                            g.mode.to_string(),
                            topics(&g.subscriptions),
                            backlog.iter().map(|b| b.lag).sum::<u64>().to_string(),
                            backlog.iter().map(|b| b.inflight).sum::<u64>().to_string(),
                            backlog.iter().map(|b| b.delayed).sum::<u64>().to_string(),
                            g.dead_letters.unwrap_or(0).to_string(),
                        ]);
                    }
                    print_text(&t.render())
                }
            }
        }
        GroupCommand::Get { name } => {
            let group: GroupInfo = client.get(&["groups", &name]).await?;
            match client.output {
                Output::Json => print_json(&group),
                Output::Table => print_text(&format!(
                    "{}\n{}",
                    definition(&group),
                    lag_table(group.lag.as_deref().unwrap_or_default())
                )),
            }
        }
        GroupCommand::Delete { name } => {
            client.delete(&["groups", &name]).await?;
            match client.output {
                Output::Json => Ok(()),
                Output::Table => print_text(&format!("deleted: group {name}\n")),
            }
        }
        GroupCommand::Lag { name } => {
            let group: GroupInfo = client.get(&["groups", &name]).await?;
            let lag = group.lag.as_deref().unwrap_or_default();
            match client.output {
                Output::Json => print_json(&LagOut { group: &name, lag }),
                Output::Table => print_text(&lag_table(lag)),
            }
        }
        GroupCommand::Reset { name, topic, to } => {
            let req = ResetRequest {
                topic: topic.clone(),
                to,
            };
            let answer: ResetResponse = client
                .post(&["groups", &name, "reset"], &req, Duration::ZERO)
                .await?;
            match client.output {
                Output::Json => print_json(&answer),
                Output::Table => print_text(&format!("reset: group {name} on {topic} to {to}\n")),
            }
        }
        GroupCommand::Redrive { name, max } => {
            let req = RedriveRequest { max_messages: max };
            let answer: RedriveResponse = client
                .post(&["groups", &name, "redrive"], &req, Duration::ZERO)
                .await?;
            match client.output {
                Output::Json => print_json(&answer),
                Output::Table => print_text(&format!(
                    "redriven: {} dead letters of group {name}\n",
                    answer.moved
                )),
            }
        }
    }
}

/// The subscribed topics, comma-separated.
fn topics(subs: &[Subscription]) -> String {
    subs.iter()
        .map(|s| s.topic.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A group's definition as aligned `key: value` lines.
fn definition(g: &GroupInfo) -> String {
    let subs = g
        .subscriptions
        .iter()
        .map(|s| match (&s.filter, &s.sql) {
            (Some(f), _) => format!("{} [{f}]", s.topic),
            (None, Some(q)) => format!("{} [sql: {q}]", s.topic),
            (None, None) => s.topic.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut rows = vec![
        ("group", g.group.clone()),
        ("subscriptions", subs),
        ("mode", g.mode.to_string()),
        ("start_from", g.start_from.to_string()),
        ("max_retries", g.max_retries.to_string()),
        ("invisible_ms", g.invisible_ms.to_string()),
    ];
    if let Some(p) = &g.push {
        rows.push((
            "push",
            format!(
                "{} ({}, max_in_flight {}, rate_per_s {}, timeout_ms {})",
                p.url, p.format, p.max_in_flight, p.rate_per_s, p.timeout_ms
            ),
        ));
        if let Some(secret) = &p.signing_secret {
            rows.push(("signing_secret", format!("{secret} (shown once: keep it)")));
        }
    }
    if let Some(s) = &g.push_status {
        rows.push((
            "push_status",
            format!(
                "in_flight {}, delivered {}, failed {}{}{}",
                s.in_flight,
                s.delivered_total,
                s.failed_total,
                s.last_error
                    .as_ref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default(),
                s.paused_until_ms
                    .map(|t| format!(", paused by Retry-After until {t} ms"))
                    .unwrap_or_default()
            ),
        ));
    }
    fields(&rows)
}

/// The lag per queue, with a total line when there are several.
fn lag_table(lag: &[QueueLag]) -> String {
    let mut t = Table::new(&[
        "TOPIC",
        "QUEUE",
        "COMMITTED",
        "MAX",
        "LAG",
        "INFLIGHT",
        "READY",
        "RETRYING",
        "OLDEST_UNACKED_MS",
    ]);
    for l in lag {
        t.row(vec![
            l.topic.clone(),
            l.queue.to_string(),
            l.committed_offset.to_string(),
            l.max_offset.to_string(),
            l.lag.to_string(),
            l.inflight.to_string(),
            l.ready.to_string(),
            l.retrying.to_string(),
            l.oldest_unacked_age_ms
                .map(|a| a.to_string())
                .unwrap_or_default(),
        ]);
    }
    if lag.len() > 1 {
        t.row(vec![
            "total".into(),
            String::new(),
            String::new(),
            String::new(),
            lag.iter().map(|l| l.lag).sum::<u64>().to_string(),
            lag.iter().map(|l| l.inflight).sum::<u64>().to_string(),
            lag.iter().map(|l| l.ready).sum::<u64>().to_string(),
            lag.iter().map(|l| l.retrying).sum::<u64>().to_string(),
        ]);
    }
    t.render()
}
