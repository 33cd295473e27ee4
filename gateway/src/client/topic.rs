//! `ferrymq topic create|list|get|delete`: topic definitions over `/v1/topics`.

use clap::{Args, Subcommand};

use super::table::{Table, fields};
use super::{ConnArgs, Output, Result, print_json, print_text};
use crate::wire::{CreateTopicRequest, TopicInfo, TopicList, TopicType};

/// `ferrymq topic …`.
#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    pub command: TopicCommand,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// The topic subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (or confirm that it exists with this definition).
    Create {
        /// The topic's name (`[A-Za-z0-9._-]`, up to 127).
        name: String,
        /// Message type: normal, fifo, delay or transaction (server default: normal).
        #[arg(long = "type")]
        kind: Option<TopicType>,
        /// Number of queues (server default: 8).
        #[arg(long)]
        queues: Option<u32>,
        /// Hours messages stay readable (server default: 72).
        #[arg(long)]
        retention_hours: Option<u32>,
    },
    /// List every topic with its readable message count.
    List,
    /// Show a topic and its queues' offsets.
    Get {
        /// The topic.
        name: String,
    },
    /// Delete a topic.
    Delete {
        /// The topic.
        name: String,
    },
}

/// Runs `ferrymq topic …`.
pub async fn run(args: TopicArgs) -> Result<()> {
    let client = args.conn.connect()?;
    match args.command {
        TopicCommand::Create {
            name,
            kind,
            queues,
            retention_hours,
        } => {
            let req = CreateTopicRequest {
                kind,
                queues,
                retention_hours,
            };
            let (topic, created): (TopicInfo, bool) = client.put(&["topics", &name], &req).await?;
            match client.output {
                Output::Json => print_json(&topic),
                Output::Table => {
                    let verb = if created { "created" } else { "exists" };
                    print_text(&format!(
                        "{verb}: topic {} ({}, {} queues, {} h retention)\n",
                        topic.topic, topic.kind, topic.queues, topic.retention_hours
                    ))
                }
            }
        }
        TopicCommand::List => {
            let list: TopicList = client.get(&["topics"]).await?;
            match client.output {
                Output::Json => print_json(&list),
                Output::Table => {
                    let mut t = Table::new(&["TOPIC", "TYPE", "QUEUES", "RETENTION_H", "MESSAGES"]);
                    for topic in &list.topics {
                        t.row(vec![
                            topic.topic.clone(),
                            topic.kind.to_string(),
                            topic.queues.to_string(),
                            topic.retention_hours.to_string(),
                            topic.messages.map(|m| m.to_string()).unwrap_or_default(),
                        ]);
                    }
                    print_text(&t.render())
                }
            }
        }
        TopicCommand::Get { name } => {
            let topic: TopicInfo = client.get(&["topics", &name]).await?;
            match client.output {
                Output::Json => print_json(&topic),
                Output::Table => {
                    let mut text = fields(&[
                        ("topic", topic.topic.clone()),
                        ("type", topic.kind.to_string()),
                        ("queues", topic.queues.to_string()),
                        ("retention_hours", topic.retention_hours.to_string()),
                    ]);
                    text.push('\n');
                    let mut t = Table::new(&["QUEUE", "MIN_OFFSET", "MAX_OFFSET", "MESSAGES"]);
                    for q in topic.queue_stats.iter().flatten() {
                        t.row(vec![
                            q.queue.to_string(),
                            q.min_offset.to_string(),
                            q.max_offset.to_string(),
                            q.max_offset.saturating_sub(q.min_offset).to_string(),
                        ]);
                    }
                    text.push_str(&t.render());
                    print_text(&text)
                }
            }
        }
        TopicCommand::Delete { name } => {
            client.delete(&["topics", &name]).await?;
            match client.output {
                // 204: nothing to print; the exit status says it.
                Output::Json => Ok(()),
                Output::Table => print_text(&format!("deleted: topic {name}\n")),
            }
        }
    }
}
