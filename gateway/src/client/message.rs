//! Messages from the shell: `ferrymq publish` (stdin lines, in batches, in order),
//! `consume` (receive with a lease, print, ack), `tail` (pull every queue of a topic and
//! follow), and `message get|trace`.
//!
//! `publish` reads stdin on its own thread; each request takes the lines that arrive within
//! 10 ms of its first, up to `--batch` lines and 2 MiB, and the next request starts only when
//! the previous one is answered, so messages keep their order and an interactive user's line
//! is sent at once. `consume` prints a batch before acking it (at least once: a crash between
//! the two redelivers, never loses).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use clap::{Args, Subcommand};
use tokio::sync::mpsc;

use super::table::{Table, fields, one_line};
use super::{Client, ClientError, ConnArgs, Output, Result, print_json, print_text};
use crate::wire::{
    Message, Messages, PublishMessage, PublishRequest, PublishResponse, PublishResult, PullQuery,
    ReceiveRequest, SettleRequest, SettleResponse, TopicInfo, Trace,
};

/// Raw bytes of stdin lines in one publish request at most (JSON escaping may grow them;
/// the gateway's default request limit is 16 MiB).
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// How long a publish request waits for more stdin lines after its first: lines written
/// together go out together, and a line typed by hand still leaves at once.
const LINGER: Duration = Duration::from_millis(10);

/// `ferrymq publish`.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// The topic.
    pub topic: String,
    /// Publish this one message. Without it, every line of stdin is a message (lines that
    /// are not UTF-8 are sent as `body_base64`).
    #[arg(long)]
    pub body: Option<String>,
    /// Tag of every message.
    #[arg(long)]
    pub tag: Option<String>,
    /// A key of every message (for lookup by key); repeatable.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// A property `k=v` of every message; repeatable.
    #[arg(long = "property", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// Message group (required on FIFO topics).
    #[arg(long)]
    pub message_group: Option<String>,
    /// Delay before the message is visible (delay topics only).
    #[arg(long)]
    pub delay_ms: Option<i64>,
    /// Producer group (required on transaction topics).
    #[arg(long)]
    pub producer_group: Option<String>,
    /// Messages per request at most when reading stdin (the gateway takes up to 1000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not k=v")),
    }
}

/// `ferrymq consume`.
#[derive(Debug, Clone, Args)]
pub struct ConsumeArgs {
    /// The consumer group.
    pub group: String,
    /// Stop after this many messages (default: keep consuming).
    #[arg(long)]
    pub max: Option<u64>,
    /// How long one receive waits for a message (the gateway allows up to 30000).
    #[arg(long, default_value_t = 20_000)]
    pub wait_ms: u64,
    /// Stop at the first receive that waited `--wait-ms` and got nothing.
    #[arg(long)]
    pub until_empty: bool,
    /// Print without acking: the messages are delivered again after their lease.
    #[arg(long)]
    pub no_ack: bool,
    /// Consumer instance name (required by broadcast groups).
    #[arg(long)]
    pub consumer: Option<String>,
    /// Lease of each received message (default: the group's).
    #[arg(long)]
    pub invisible_ms: Option<i64>,
    /// Messages per receive at most.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `ferrymq tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// The topic.
    pub topic: String,
    /// Start at each queue's first readable message instead of its end.
    #[arg(long)]
    pub from_beginning: bool,
    /// Stop at the end of each queue as it was when `tail` started, instead of following.
    #[arg(long)]
    pub no_follow: bool,
    /// Stop after this many messages.
    #[arg(long)]
    pub max: Option<u64>,
    /// How long one pull of a queue waits for a message (the gateway allows up to 30000).
    #[arg(long, default_value_t = 20_000)]
    pub wait_ms: u64,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `ferrymq message …`.
#[derive(Debug, Clone, Args)]
pub struct MessageArgs {
    #[command(subcommand)]
    pub command: MessageCommand,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// The message subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum MessageCommand {
    /// Look a message up by id.
    Get {
        /// The topic.
        topic: String,
        /// The message id (from publish).
        id: String,
    },
    /// The life of a message: published, delivered, acked, dead-lettered, …
    Trace {
        /// The topic.
        topic: String,
        /// The message id (from publish).
        id: String,
    },
}

// ---------- publish ----------

/// Runs `ferrymq publish`.
pub async fn publish(args: PublishArgs) -> Result<()> {
    let client = args.conn.connect()?;
    let template = PublishMessage {
        tag: args.tag.clone(),
        keys: args.keys.clone(),
        properties: args.properties.iter().cloned().collect::<BTreeMap<_, _>>(),
        message_group: args.message_group.clone(),
        delay_ms: args.delay_ms,
        ..Default::default()
    };
    let mut shown = Shown::new(client.output);
    if let Some(body) = &args.body {
        let results = send(&client, &args, &template, vec![body.clone().into_bytes()]).await?;
        shown.add(&results)?;
        return shown.finish();
    }
    if std::io::stdin().is_terminal() {
        tracing::info!("reading messages from stdin, one per line (ctrl-d to end)");
    }
    let batch = args.batch as usize;
    let mut lines = stdin_lines(batch * 2);
    let outcome = async {
        while let Some(first) = lines.recv().await {
            let first = first?;
            let mut bytes = first.len();
            let mut bodies = vec![first];
            let deadline = tokio::time::Instant::now() + LINGER;
            while bodies.len() < batch && bytes < MAX_BATCH_BYTES {
                match tokio::time::timeout_at(deadline, lines.recv()).await {
                    Ok(Some(line)) => {
                        let line = line?;
                        bytes += line.len();
                        bodies.push(line);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            let results = send(&client, &args, &template, bodies).await?;
            shown.add(&results)?;
        }
        Ok::<_, ClientError>(())
    }
    .await;
    // What was published is shown even when a later batch failed.
    let finished = shown.finish();
    outcome.and(finished)
}

/// Publishes one batch of bodies with the flags' fields.
async fn send(
    client: &Client,
    args: &PublishArgs,
    template: &PublishMessage,
    bodies: Vec<Vec<u8>>,
) -> Result<Vec<PublishResult>> {
    let messages = bodies
        .into_iter()
        .map(|b| {
            let mut m = template.clone();
            match String::from_utf8(b) {
                Ok(text) => m.body = Some(text),
                Err(e) => {
                    m.body_base64 =
                        Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes()))
                }
            }
            m
        })
        .collect();
    let req = PublishRequest {
        messages,
        producer_group: args.producer_group.clone(),
    };
    let answer: PublishResponse = client
        .post(&["topics", &args.topic, "messages"], &req, Duration::ZERO)
        .await?;
    Ok(answer.results)
}

/// Lines of stdin without their `\n` (or `\r\n`), read on a thread of their own.
fn stdin_lines(buffer: usize) -> mpsc::Receiver<Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(buffer.max(1));
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.into()));
                    return;
                }
            }
        }
    });
    rx
}

/// Publish results as they are printed: JSON lines at once, a table at the end.
struct Shown {
    output: Output,
    table: Table,
}

impl Shown {
    fn new(output: Output) -> Shown {
        Shown {
            output,
            table: Table::new(&["MESSAGE_ID", "QUEUE", "OFFSET", "TRANSACTION_ID"]),
        }
    }

    fn add(&mut self, results: &[PublishResult]) -> Result<()> {
        for r in results {
            match self.output {
                Output::Json => print_json(r)?,
                Output::Table => self.table.row(vec![
                    r.message_id.clone(),
                    r.queue.map(|q| q.to_string()).unwrap_or_default(),
                    r.offset.map(|o| o.to_string()).unwrap_or_default(),
                    r.transaction_id.clone().unwrap_or_default(),
                ]),
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self.output {
            Output::Json => Ok(()),
            Output::Table => print_text(&self.table.render()),
        }
    }
}

// ---------- consume ----------

/// Runs `ferrymq consume`.
pub async fn consume(args: ConsumeArgs) -> Result<()> {
    let client = args.conn.connect()?;
    if client.output == Output::Table {
        print_text(&stream_header(true))?;
    }
    let mut received: u64 = 0;
    let (mut acked, mut failed, mut first_error) = (0usize, 0usize, None);
    loop {
        let want = match args.max {
            Some(max) if received >= max => break,
            Some(max) => (max - received).min(u64::from(args.batch)) as u32,
            None => args.batch,
        };
        let req = ReceiveRequest {
            max_messages: want,
            wait_ms: args.wait_ms,
            invisible_ms: args.invisible_ms,
            consumer: args.consumer.clone(),
            ack_receipt_handles: Vec::new(),
        };
        let got: Messages = client
            .post(
                &["groups", &args.group, "receive"],
                &req,
                Duration::from_millis(args.wait_ms),
            )
            .await?;
        if got.messages.is_empty() {
            if args.until_empty {
                break;
            }
            continue;
        }
        received += got.messages.len() as u64;
        show_messages(client.output, &got.messages, true)?;
        if args.no_ack {
            continue;
        }
        let handles: Vec<String> = got
            .messages
            .into_iter()
            .filter_map(|m| m.receipt_handle)
            .collect();
        let answer: SettleResponse = client
            .post(
                &["groups", &args.group, "ack"],
                &SettleRequest {
                    receipt_handles: handles,
                    delay_ms: None,
                },
                Duration::ZERO,
            )
            .await?;
        for r in answer.results {
            if r.ok {
                acked += 1;
            } else {
                failed += 1;
                let error = r.error.unwrap_or_default();
                tracing::warn!(%error, "an ack was refused; the message will be delivered again");
                first_error.get_or_insert(error);
            }
        }
    }
    tracing::debug!(received, acked, failed, "consume finished");
    match first_error {
        Some(first_error) => Err(ClientError::AckFailed {
            failed,
            total: acked + failed,
            first_error,
        }),
        None => Ok(()),
    }
}

/// The header of streamed message lines (`--output table`).
fn stream_header(attempt: bool) -> String {
    if attempt {
        format!(
            "{:<5}  {:>10}  {:<26}  {:>7}  {:<12}  BODY\n",
            "QUEUE", "OFFSET", "MESSAGE_ID", "ATTEMPT", "TAG"
        )
    } else {
        format!(
            "{:<5}  {:>10}  {:<26}  {:<12}  BODY\n",
            "QUEUE", "OFFSET", "MESSAGE_ID", "TAG"
        )
    }
}

/// Prints messages: the API's message object per line, or one table line each in the
/// columns of [`stream_header`].
fn show_messages(output: Output, messages: &[Message], attempt: bool) -> Result<()> {
    match output {
        Output::Json => messages.iter().try_for_each(print_json),
        Output::Table => {
            let mut text = String::new();
            for m in messages {
                let attempt = if attempt {
                    format!(
                        "{:>7}  ",
                        m.delivery_attempt
                            .map(|a| a.to_string())
                            .unwrap_or_default()
                    )
                } else {
                    String::new()
                };
                text.push_str(&format!(
                    "{:<5}  {:>10}  {:<26}  {attempt}{:<12}  {}\n",
                    m.queue,
                    m.offset,
                    m.message_id,
                    m.tag.as_deref().unwrap_or(""),
                    one_line(&shown_body(m))
                ));
            }
            print_text(&text)
        }
    }
}

/// A message's body as text: itself when UTF-8, else `base64:…`.
fn shown_body(m: &Message) -> String {
    match (&m.body, &m.body_base64) {
        (Some(b), _) => b.clone(),
        (None, Some(b)) => format!("base64:{b}"),
        (None, None) => String::new(),
    }
}

// ---------- tail ----------

/// Runs `ferrymq tail`: one long-poll loop per queue, printed as they arrive.
pub async fn tail(args: TailArgs) -> Result<()> {
    let client = Arc::new(args.conn.connect()?);
    let topic: TopicInfo = client.get(&["topics", &args.topic]).await?;
    if client.output == Output::Table {
        print_text(&stream_header(false))?;
    }
    let (tx, mut rx) = mpsc::channel::<Result<Vec<Message>>>(64);
    let mut tasks = tokio::task::JoinSet::new();
    let per_request = args.max.unwrap_or(100).clamp(1, 100) as u32;
    for q in topic.queue_stats.unwrap_or_default() {
        let (client, tx, name) = (client.clone(), tx.clone(), args.topic.clone());
        let start = if args.from_beginning {
            q.min_offset
        } else {
            q.max_offset
        };
        // Without following, a queue is done at its end as it was at the start.
        let end = (args.no_follow).then_some(q.max_offset);
        let wait_ms = if args.no_follow { 0 } else { args.wait_ms };
        tasks.spawn(async move {
            let queue = q.queue.to_string();
            let mut offset = start;
            while end.is_none_or(|end| offset < end) {
                let query = PullQuery {
                    offset,
                    max: per_request,
                    wait_ms,
                };
                let got: Result<Messages> = client
                    .get_query(
                        &["topics", &name, "queues", &queue, "messages"],
                        &query,
                        Duration::from_millis(wait_ms),
                    )
                    .await;
                let got = match got {
                    Ok(got) => got,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let next = got.next_offset.unwrap_or(offset);
                if got.messages.is_empty() && end.is_some() {
                    return; // nothing more readable below the end (expired, or half messages)
                }
                offset = next.max(offset);
                let mut messages = got.messages;
                if let Some(end) = end {
                    messages.retain(|m| m.offset < end);
                }
                if !messages.is_empty() && tx.send(Ok(messages)).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut printed: u64 = 0;
    while let Some(batch) = rx.recv().await {
        let mut batch = batch?;
        if let Some(max) = args.max {
            batch.truncate((max - printed).min(batch.len() as u64) as usize);
        }
        printed += batch.len() as u64;
        show_messages(client.output, &batch, false)?;
        if args.max.is_some_and(|max| printed >= max) {
            break;
        }
    }
    tasks.abort_all();
    Ok(())
}

// ---------- message get / trace ----------

/// Runs `ferrymq message …`.
pub async fn run(args: MessageArgs) -> Result<()> {
    let client = args.conn.connect()?;
    match args.command {
        MessageCommand::Get { topic, id } => {
            let m: Message = client.get(&["topics", &topic, "messages", &id]).await?;
            match client.output {
                Output::Json => print_json(&m),
                Output::Table => {
                    let properties = m
                        .properties
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    print_text(&fields(&[
                        ("message_id", m.message_id.clone()),
                        ("topic", m.topic.clone()),
                        ("queue", m.queue.to_string()),
                        ("offset", m.offset.to_string()),
                        ("published", time(m.publish_time_ms)),
                        ("tag", m.tag.clone().unwrap_or_default()),
                        ("keys", m.keys.join(", ")),
                        ("properties", properties),
                        ("message_group", m.message_group.clone().unwrap_or_default()),
                        ("body", shown_body(&m)),
                    ]))
                }
            }
        }
        MessageCommand::Trace { topic, id } => {
            let trace: Trace = client
                .get(&["topics", &topic, "messages", &id, "trace"])
                .await?;
            match client.output {
                Output::Json => print_json(&trace),
                Output::Table => {
                    let mut t =
                        Table::new(&["TIME", "EVENT", "GROUP", "CONSUMER", "ATTEMPT", "DETAIL"]);
                    for e in &trace.events {
                        t.row(vec![
                            time(e.time_ms),
                            e.event.clone(),
                            e.group.clone().unwrap_or_default(),
                            e.consumer.clone().unwrap_or_default(),
                            e.attempt.map(|a| a.to_string()).unwrap_or_default(),
                            e.detail.clone().unwrap_or_default(),
                        ]);
                    }
                    print_text(&t.render())
                }
            }
        }
    }
}

/// Epoch milliseconds as RFC 3339 (UTC).
fn time(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(ms) => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_need_a_key_and_an_equals_sign() {
        assert_eq!(
            parse_property("region=hz=1"),
            Ok(("region".into(), "hz=1".into()))
        );
        assert_eq!(
            parse_property("empty="),
            Ok(("empty".into(), String::new()))
        );
        assert!(parse_property("=v").is_err());
        assert!(parse_property("novalue").is_err());
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(time(1_767_225_600_000), "2026-01-01T00:00:00.000Z");
        assert_eq!(time(-1), "-1");
    }
}
