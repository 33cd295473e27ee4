//! The `ferrymq` command line: the server side (`serve`, `token`, `bench`, `compact`) and the
//! shell client (`topic`, `group`, `publish`, `consume`, `tail`, `message`; see
//! [`crate::client`]). Every `serve` setting is a flag with a `FERRYMQ_*` environment
//! twin and may also come from a TOML file (`--config`): a flag beats the environment, which
//! beats the file, which beats the default. This is the one place that lists every setting.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::client::ClientCommand;

/// FerryMQ: RocketMQ semantics over HTTP, durable in object storage.
#[derive(Debug, Parser)]
#[command(name = "ferrymq", version, about)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `gateway=debug`.
    #[arg(long, env = "FERRYMQ_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Export spans over OTLP/HTTP (protobuf) to this collector, e.g. `http://collector:4318`
    /// (spans go to `<endpoint>/v1/traces`). Needs a build with the `otlp` feature; off by
    /// default.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    #[arg(
        long,
        env = "OTEL_SERVICE_NAME",
        default_value = "ferrymq",
        global = true
    )]
    pub otlp_service_name: String,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up; boxing buys nothing
pub enum Command {
    /// Run a gateway.
    Serve(Box<ServeArgs>),
    /// Mint a JWT from the configured HS256 secret.
    Token(TokenArgs),
    /// Drive load against a running gateway and print throughput and latency percentiles.
    Bench(crate::bench::BenchArgs),
    /// Run one compaction pass: archive everything committed before it began as Parquet, then
    /// apply retention and delete unneeded segments. Safe beside running gateways.
    Compact(crate::compact::CompactArgs),
    /// Topics: create, list, get, delete.
    Topic(crate::client::topic::TopicArgs),
    /// Consumer groups: create, list, get, delete, lag, reset, redrive.
    Group(crate::client::group::GroupArgs),
    /// Publish stdin lines (one message each, in batches, in order) or one `--body`.
    Publish(crate::client::message::PublishArgs),
    /// Receive from a consumer group, print each message as a JSON line, ack.
    Consume(crate::client::message::ConsumeArgs),
    /// Follow a topic: pull every queue from its end (or beginning) and print what arrives.
    Tail(crate::client::message::TailArgs),
    /// One message: look it up by id, or trace its life.
    Message(crate::client::message::MessageArgs),
}

/// Settings of `ferrymq serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Store URL: `file:///path`, `s3://bucket/prefix` or `memory://`. Default: `./ferrymq-data`.
    #[arg(long, env = "FERRYMQ_STORE")]
    pub store: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "FERRYMQ_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// How other gateways reach this one (`HOST:PORT`); defaults to `--listen` when that names a host.
    #[arg(long, env = "FERRYMQ_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Signs receipts and gateway-to-gateway calls; derived from an HS256 JWT secret when unset.
    #[arg(long, env = "FERRYMQ_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// HS256 secret for user JWTs (its UTF-8 bytes).
    #[arg(long, env = "FERRYMQ_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// RS256/ES256 public key (PEM file) for user JWTs.
    #[arg(long, env = "FERRYMQ_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<std::path::PathBuf>,
    /// JWKS file with the public keys for user JWTs.
    #[arg(long, env = "FERRYMQ_JWKS")]
    pub jwks: Option<std::path::PathBuf>,
    /// TOML file with any of these settings (keys as the flags, with `_` for `-`).
    #[arg(long, env = "FERRYMQ_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// A publish batch closes after this long (0: as soon as no segment write is in flight).
    /// Longer: bigger segments, fewer PUTs, higher latency.
    #[arg(long, env = "FERRYMQ_LINGER", default_value = "0ms", value_parser = humantime::parse_duration)]
    pub linger: Duration,
    /// A publish batch closes at this many bytes.
    #[arg(long, env = "FERRYMQ_MAX_BATCH_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_batch_bytes: usize,
    /// A publish batch whose segment is at most this many bytes rides inside the manifest
    /// delta (one PUT to acknowledge instead of two); the sequencer writes it out as a segment
    /// object shortly after. 0: every batch is a segment object first. Default: 64 KiB on S3,
    /// in memory and under `--store-profile`; 0 on a local directory, where a segment write
    /// costs no more than the delta's and writing it out later would only add work.
    #[arg(long, env = "FERRYMQ_INLINE_MAX_BYTES")]
    pub inline_max_bytes: Option<usize>,
    /// The sequencer writes inline segments out as objects this often (one PUT each, from the
    /// bytes it kept as it committed them, and one small delta per round). Until then they are
    /// read from the log, which is not collected past them.
    #[arg(long, env = "FERRYMQ_INLINE_WRITE_OUT_EVERY", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub inline_write_out_every: Duration,
    /// Bytes of inline segments the sequencer keeps in memory until it has written them out;
    /// beyond it, it reads them back from their log versions (one GET per version).
    #[arg(long, env = "FERRYMQ_INLINE_KEEP_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub inline_keep_bytes: usize,
    /// Inline segments not yet written out, at most: while the state holds this many, new
    /// batches are written as segment objects first (two PUTs each instead of one) until the
    /// sequencer has caught up. Bounds the state's map of inline segments and the log versions
    /// kept for them (at most this many × `--inline-max-bytes`).
    #[arg(long, env = "FERRYMQ_INLINE_BACKLOG", default_value_t = 2048)]
    pub inline_backlog: usize,
    /// Publish batches in flight per gateway (segment write and commit, or an inline commit);
    /// what arrives meanwhile waits for the next batch. Default: 1 on a local directory (a
    /// write takes CPU and an fsync, not a round trip: one batch at a time publishes as much
    /// as 2 with half the files and a lower tail), 16 on S3, in memory and under
    /// `--store-profile` (a write waits on the network: more in flight, lower latency).
    #[arg(long, env = "FERRYMQ_MAX_INFLIGHT_BATCHES")]
    pub max_inflight_batches: Option<usize>,
    /// Bytes of publishes accepted but not yet acknowledged; beyond it publishes get 429.
    #[arg(long, env = "FERRYMQ_MAX_INFLIGHT_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_inflight_bytes: usize,
    /// Bytes of recent segments kept in memory (the hot tail).
    #[arg(long, env = "FERRYMQ_HOT_TAIL_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub hot_tail_bytes: usize,
    /// Long-polls (receive, pull, check polls with `wait_ms` > 0) waiting at once; beyond
    /// it they get 429. Each holds a connection and a few KiB.
    #[arg(long, env = "FERRYMQ_MAX_LONG_POLLS", default_value_t = 10_000)]
    pub max_long_polls: usize,
    /// Messages one consumer group may have leased or waiting for a retry at once (SQS: 120,000
    /// per queue). A receive past it is answered 429 (`TooManyRequests`) until some are acked,
    /// nacked or expire; this bounds the group's cursor state.
    #[arg(
        long,
        env = "FERRYMQ_MAX_IN_FLIGHT_PER_GROUP",
        default_value_t = 100_000
    )]
    pub max_in_flight_per_group: u32,
    /// Largest message body.
    #[arg(long, env = "FERRYMQ_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest request.
    #[arg(long, env = "FERRYMQ_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// A follower that sees the manifest log silent this long takes over as sequencer.
    #[arg(long, env = "FERRYMQ_LEASE_TTL", default_value = "3s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,
    /// Followers read the manifest log this often.
    #[arg(long, env = "FERRYMQ_TAIL_INTERVAL", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub tail_interval: Duration,
    /// Manifest deltas the sequencer has in flight at once, each chained to the one before
    /// it: a commit never waits for the one ahead of it to land. More: lower publish latency
    /// under load, up to this many log PUTs per PUT round trip. 1: one commit at a time.
    #[arg(long, env = "FERRYMQ_MAX_DELTAS_IN_FLIGHT", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_deltas_in_flight: u16,
    /// While deltas are in flight, the sequencer starts another at most this many times per
    /// typical (median) log PUT latency: log PUTs per second stay near this ÷ latency however
    /// fast publishes come, and a slow PUT still never holds up the next delta.
    #[arg(long, env = "FERRYMQ_DELTAS_PER_ROUND_TRIP", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub deltas_per_round_trip: u32,
    /// Write a manifest checkpoint every this many versions ...
    #[arg(long, env = "FERRYMQ_CHECKPOINT_EVERY", default_value_t = 500)]
    pub checkpoint_every: u64,
    /// ... and no more often than this: a checkpoint is the whole state (tens of KB with the
    /// offset index folded out, compressed); a restart replays at most this long's deltas more.
    #[arg(long, env = "FERRYMQ_CHECKPOINT_MIN_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub checkpoint_min_interval: Duration,
    /// Delete manifest log versions and checkpoints only this long behind a retained
    /// checkpoint (a writer stalled longer than half of it re-reads before writing). Tests
    /// shorten it to see what happens once the log is collected.
    #[arg(long, env = "FERRYMQ_GC_GRACE", default_value = "10m", value_parser = humantime::parse_duration, hide = true)]
    pub gc_grace: Duration,
    /// The sequencer writes the delivery ledger's pending events (the message-life events that
    /// `/trace` answers from) to Parquet objects under `ledger/` at least this often: one PUT
    /// per topic and hour with events, and one small delta. Until then they ride in the
    /// manifest state (and its checkpoints). Shorter: more, smaller objects.
    #[arg(long, env = "FERRYMQ_LEDGER_FLUSH_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ledger_flush_interval: Duration,
    /// ... or as soon as the pending events take this many bytes in the state (about 120
    /// bytes an event; the state keeps 8 MiB of them at most while writes fail).
    #[arg(long, env = "FERRYMQ_LEDGER_FLUSH_BYTES", default_value_t = 1024 * 1024)]
    pub ledger_flush_bytes: u64,
    /// Inject a latency profile into the store (`s3-standard`, `s3-express`, `minio-lan`), for benchmarks.
    #[arg(long, env = "FERRYMQ_STORE_PROFILE")]
    pub store_profile: Option<String>,
    /// Delayed messages kept in the manifest itself (the earliest due); beyond this plus
    /// `--timer-spill-chunk`, the sequencer moves those due last to spill objects in the bucket.
    #[arg(long, env = "FERRYMQ_TIMER_KEEP_INLINE", default_value_t = 20_000)]
    pub timer_keep_inline: usize,
    /// Delayed messages per spill object.
    #[arg(long, env = "FERRYMQ_TIMER_SPILL_CHUNK", default_value_t = 4_096)]
    pub timer_spill_chunk: usize,
    /// Only delayed messages due later than this are spilled.
    #[arg(long, env = "FERRYMQ_TIMER_SPILL_HORIZON", default_value = "5m", value_parser = humantime::parse_duration)]
    pub timer_spill_horizon: Duration,
    /// A spill object is loaded back into the manifest this long before its first message is
    /// due (less than `--timer-spill-horizon`).
    #[arg(long, env = "FERRYMQ_TIMER_LOAD_AHEAD", default_value = "60s", value_parser = humantime::parse_duration)]
    pub timer_load_ahead: Duration,
    /// Newest offset ranges of each queue kept in the manifest itself; older ones are folded
    /// into index objects in the bucket (`index/`), so the manifest does not grow with traffic.
    #[arg(long, env = "FERRYMQ_INDEX_KEEP_INLINE", default_value_t = 256)]
    pub index_keep_inline: usize,
    /// A queue's ranges are folded once this many are beyond `--index-keep-inline` ...
    #[arg(long, env = "FERRYMQ_INDEX_CHUNK", default_value_t = 1_024)]
    pub index_chunk: usize,
    /// ... or once the newest of at least 32 of them is older than this.
    #[arg(long, env = "FERRYMQ_INDEX_FOLD_AGE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub index_fold_age: Duration,
    /// Consecutive index runs of one level merged into one of the next.
    #[arg(long, env = "FERRYMQ_INDEX_FAN_IN", default_value_t = 8)]
    pub index_fan_in: usize,
    /// Run a compaction pass in this gateway every this long (one compactor is active
    /// cluster-wide at a time, through a lease in the manifest; the others skip). The archive
    /// and retention lag publishing by up to this plus a pass; each queue gets at most one
    /// Parquet file per pass (and per hour of publish time), so shorter means more, smaller
    /// files. Default 5 min: at most 12 files per queue and hour from the interval.
    #[arg(long, env = "FERRYMQ_COMPACT_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub compact_interval: Duration,
    /// Do not run the compactor in this gateway (then nothing is archived, and retention
    /// frees no segment, unless `ferrymq compact` or another gateway runs it).
    #[arg(long, env = "FERRYMQ_NO_COMPACT")]
    pub no_compact: bool,
    /// URLs push groups may name (API.md "Push subscriptions"), as `scheme://host[:port][/path]`
    /// patterns where `*` matches any run of characters; repeat the flag or separate with
    /// commas. A URL with user info never matches. Default: `http://127.0.0.1:*` and
    /// `http://localhost:*` on a local directory, nothing on S3 (no push group can be defined).
    #[arg(long, env = "FERRYMQ_PUSH_ALLOW", value_delimiter = ',')]
    pub push_allow: Option<Vec<String>>,
    /// Do not push from this gateway (other gateways on the bucket still push).
    #[arg(long, env = "FERRYMQ_NO_PUSH")]
    pub no_push: bool,
    #[command(flatten)]
    pub compactor: crate::compact::CompactorFlags,
    /// Test only: run the gateway's clock this far ahead of the system's (retention,
    /// segment and orphan graces, leases, timers), so that a test can see what a default
    /// install does hours later. Never in production: a segment written by a gateway on the
    /// true time looks older here than it is.
    #[arg(long, env = "FERRYMQ_TEST_CLOCK_AHEAD", value_parser = humantime::parse_duration, hide = true)]
    pub test_clock_ahead: Option<Duration>,
    /// Inject store faults, for tests and benchmarks only: `errors=0.05,lost=0.01,timeouts=0,seed=7`
    /// (fractions of calls that fail, of puts that land but report an error, of calls that hang
    /// 2 s then fail; the seed of the fault generator). Composes with `--store-profile`.
    #[arg(long, env = "FERRYMQ_STORE_FAULTS", hide = true)]
    pub store_faults: Option<StoreFaults>,
    /// Backlog metrics per queue as well (a `queue` label on the `ferrymq_consumer_*` gauges):
    /// one series per queue of every topic each group reads, instead of one per topic.
    #[arg(long, env = "FERRYMQ_METRICS_PER_QUEUE", action = clap::ArgAction::Set,
          num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub metrics_per_queue: bool,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// Injected store faults (`--store-faults`): rates in `[0, 1]` and an optional seed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreFaults {
    /// Fraction of store calls that fail before reaching the store.
    pub errors: f64,
    /// Fraction of puts that land in the store but report an error.
    pub lost: f64,
    /// Fraction of calls that hang, then fail without reaching the store.
    pub timeouts: f64,
    /// Seed of the fault generator (random when absent).
    pub seed: Option<u64>,
}

impl std::str::FromStr for StoreFaults {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut f = StoreFaults::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not key=value"))?;
            let rate = || match value.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(format!("{key}={value:?} is not a rate in [0, 1]")),
            };
            match key {
                "errors" => f.errors = rate()?,
                "lost" => f.lost = rate()?,
                "timeouts" => f.timeouts = rate()?,
                "seed" => {
                    f.seed = Some(
                        value
                            .parse()
                            .map_err(|_| format!("seed={value:?} is not an integer"))?,
                    )
                }
                _ => {
                    return Err(format!(
                        "unknown fault {key:?} (errors, lost, timeouts, seed)"
                    ));
                }
            }
        }
        if f.errors + f.lost + f.timeouts > 1.0 {
            return Err("errors + lost + timeouts exceed 1".into());
        }
        Ok(f)
    }
}

/// Settings of `ferrymq token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The token's subject.
    #[arg(long, default_value = "admin")]
    pub sub: String,
    /// A permission (`action:resource`, e.g. `pub:topic/orders*`); repeatable.
    #[arg(long = "perm", default_value = "admin:*")]
    pub perms: Vec<String>,
    /// Lifetime.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// HS256 secret; default: the one the local-directory gateway generated.
    #[arg(long, env = "FERRYMQ_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Store whose generated secret to use when no secret is given.
    #[arg(long, env = "FERRYMQ_STORE")]
    pub store: Option<String>,
}

/// Inserts the settings of a `--config` TOML file (or `FERRYMQ_CONFIG`) as flags, where
/// neither a flag nor its environment variable is given.
pub fn args_with_config_file(
    args: impl IntoIterator<Item = OsString>,
) -> anyhow::Result<Vec<OsString>> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let given = |name: &str, args: &[OsString]| {
        args.iter().any(|a| {
            a.to_str()
                .is_some_and(|a| a == format!("--{name}") || a.starts_with(&format!("--{name}=")))
        })
    };
    let mut path = std::env::var_os("FERRYMQ_CONFIG").map(std::path::PathBuf::from);
    for (i, a) in args.iter().enumerate() {
        if a == "--config" {
            path = args.get(i + 1).map(std::path::PathBuf::from);
        } else if let Some(p) = a.to_str().and_then(|a| a.strip_prefix("--config=")) {
            path = Some(p.into());
        }
    }
    let Some(path) = path else { return Ok(args) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| anyhow::anyhow!("bad config {}: {e}", path.display()))?;
    for (key, value) in table {
        let flag = key.replace('_', "-");
        let env = format!("FERRYMQ_{}", key.to_uppercase().replace('-', "_"));
        if given(&flag, &args) || std::env::var_os(&env).is_some() {
            continue;
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => anyhow::bail!("config key {key}: unsupported value {other}"),
        };
        args.push(format!("--{flag}={value}").into());
    }
    Ok(args)
}

/// Installs the tracing subscriber: logs to stderr under `--log`, and spans over OTLP when
/// `--otlp-endpoint` is set (with their own filter: see [`crate::otlp`]). Keep the guard until
/// the program ends: dropping it flushes the last spans.
pub fn install_tracing(cli: &Cli) -> anyhow::Result<crate::otlp::OtlpGuard> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let (spans, guard) = crate::otlp::layer(&crate::otlp::OtlpSettings {
        endpoint: cli.otlp_endpoint.clone(),
        service_name: cli.otlp_service_name.clone(),
    })?;
    tracing_subscriber::registry().with(logs).with(spans).init();
    Ok(guard)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => crate::server::run(*args).await,
        Command::Token(args) => {
            let secret = match args.jwt_secret {
                Some(s) => s,
                None => crate::server::generated_secret(args.store.as_deref())?,
            };
            let token = crate::auth::mint(secret.as_bytes(), &args.sub, &args.perms, args.ttl)?;
            println!("{token}");
            Ok(())
        }
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Compact(args) => crate::compact::run(args).await,
        Command::Topic(a) => client(ClientCommand::Topic(a)).await,
        Command::Group(a) => client(ClientCommand::Group(a)).await,
        Command::Publish(a) => client(ClientCommand::Publish(a)).await,
        Command::Consume(a) => client(ClientCommand::Consume(a)).await,
        Command::Tail(a) => client(ClientCommand::Tail(a)).await,
        Command::Message(a) => client(ClientCommand::Message(a)).await,
    }
}

/// Runs a client subcommand; its error (the API's code and message) is what the binary
/// prints on failure.
async fn client(command: ClientCommand) -> anyhow::Result<()> {
    Ok(crate::client::run(command).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_faults_parse_and_reject() {
        let f: StoreFaults = "errors=0.05, lost=0.01,seed=7".parse().expect("valid");
        assert_eq!(
            f,
            StoreFaults {
                errors: 0.05,
                lost: 0.01,
                timeouts: 0.0,
                seed: Some(7)
            }
        );
        assert_eq!("".parse::<StoreFaults>(), Ok(StoreFaults::default()));
        for bad in [
            "errors",
            "errors=2",
            "lost=-0.1",
            "seed=x",
            "typo=0.1",
            "errors=0.6,lost=0.6",
        ] {
            assert!(bad.parse::<StoreFaults>().is_err(), "{bad}");
        }
    }
}
