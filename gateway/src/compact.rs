//! `ferrymq compact` (one pass, for cron or a scheduled task) and the optional background
//! compactor of `ferrymq serve`. Both run [`compactor::run_pass`] on a manifest node; the
//! compactor lease in the manifest keeps one pass active cluster-wide.
//!
//! `ferrymq compact` opens its own node on the store: a follower that forwards its few
//! commands to the running sequencer (so it needs the cluster secret, or the JWT secret it is
//! derived from, like a gateway), or, with no gateway running, the sequencer itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::builder::TypedValueParser;
use compactor::{CompactSettings, Observer, PassReport, Quiet};
use segment_writer::clock::{Clock, TokioClock};
use segment_writer::manifest::catalogue::CatalogueSettings;
use segment_writer::node::{Node, NodeSettings};
use segment_writer::store::{Store, StoreKind, kind_of};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::forward::{ForwardKey, HttpForwarder};

/// Retention and garbage-collection settings, shared by `compact` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct CompactorFlags {
    /// Delete an unreferenced segment only once older than this (it must exceed the time from a
    /// segment's write to its commit).
    #[arg(long, env = "FERRYMQ_SEGMENT_GRACE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub segment_grace: Duration,
    /// Delete an uncatalogued archive file (a compactor died before committing it), and on a
    /// local directory a staging file (`x#1`) of a put a crash interrupted, only once older
    /// than this.
    #[arg(long, env = "FERRYMQ_ORPHAN_GRACE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub orphan_grace: Duration,
    /// Delete archive files whose newest message is older than this (default: keep forever).
    #[arg(long, env = "FERRYMQ_ARCHIVE_RETENTION", value_parser = humantime::parse_duration)]
    pub archive_retention: Option<Duration>,
    /// The compactor lease lasts this long and is renewed before each file; a compactor that
    /// died blocks others at most this long.
    #[arg(long, env = "FERRYMQ_COMPACT_LEASE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub compact_lease_ttl: Duration,
    /// Do not keep the archive's Apache Iceberg table (`archive/metadata/`, one snapshot per
    /// pass that changed the archive). The Parquet files and their catalogue are unaffected;
    /// a table left behind stops following the archive.
    #[arg(long, env = "FERRYMQ_NO_ICEBERG")]
    pub no_iceberg: bool,
    /// Newest archive files of each queue listed in the manifest one by one; older ones are
    /// folded into catalogue objects (`index/*.cat`), so the manifest does not grow with the
    /// archive's age.
    #[arg(long, env = "FERRYMQ_CATALOGUE_KEEP_LISTED", default_value_t = 64)]
    pub catalogue_keep_listed: usize,
    /// Files folded into one catalogue object, once `--catalogue-keep-listed` plus this many
    /// are listed.
    #[arg(long, env = "FERRYMQ_CATALOGUE_CHUNK", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize))]
    pub catalogue_chunk: usize,
    /// Catalogue objects of one level merged into one of the next.
    #[arg(long, env = "FERRYMQ_CATALOGUE_FAN_IN", default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..).map(|n| n as usize))]
    pub catalogue_fan_in: usize,
}

impl CompactorFlags {
    fn settings(&self, holder: String) -> CompactSettings {
        let mut s = CompactSettings::new(holder);
        s.segment_grace = self.segment_grace;
        s.orphan_grace = self.orphan_grace;
        s.archive_retention = self.archive_retention;
        s.lease_ttl = self.compact_lease_ttl;
        s.catalogue = CatalogueSettings {
            keep_listed: self.catalogue_keep_listed,
            chunk: self.catalogue_chunk,
            fan_in: self.catalogue_fan_in,
        };
        if self.no_iceberg {
            s.iceberg = None;
        }
        s
    }
}

/// Settings of `ferrymq compact`.
#[derive(Debug, Clone, Args)]
pub struct CompactArgs {
    /// Store URL: `file:///path`, `s3://bucket/prefix`. Default: `./ferrymq-data`.
    #[arg(long, env = "FERRYMQ_STORE")]
    pub store: Option<String>,
    /// The gateways' cluster secret (to forward commands to the sequencer).
    #[arg(long, env = "FERRYMQ_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// The gateways' HS256 JWT secret, from which the cluster secret is derived when unset.
    #[arg(long, env = "FERRYMQ_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    #[command(flatten)]
    pub compactor: CompactorFlags,
    /// Archive only; no retention or segment deletion.
    #[arg(long)]
    pub no_retention: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Test only: exit abruptly (status 86) at the N-th step of the pass, as if killed.
    #[arg(long, env = "FERRYMQ_COMPACT_CRASH_AFTER_STEPS", hide = true)]
    pub crash_after_steps: Option<u64>,
}

/// The cluster secret a gateway on `url` uses, as `serve` derives it.
fn cluster_secret(args: &CompactArgs, url: &str, kind: StoreKind) -> anyhow::Result<Vec<u8>> {
    if let Some(c) = &args.cluster_secret {
        return Ok(c.as_bytes().to_vec());
    }
    if let Some(s) = &args.jwt_secret {
        return Ok(crate::receipt::derive_key(
            s.as_bytes(),
            "ferrymq cluster secret",
        ));
    }
    if kind == StoreKind::Local {
        let dir = crate::server::local_dir(url).context("local store URL")?;
        if let Ok(s) = std::fs::read_to_string(dir.join(crate::server::SECRET_FILE)) {
            return Ok(crate::receipt::derive_key(
                s.trim().as_bytes(),
                "ferrymq cluster secret",
            ));
        }
        if let Ok(s) = std::fs::read_to_string(dir.join(crate::server::CLUSTER_SECRET_FILE)) {
            return Ok(s.trim().as_bytes().to_vec());
        }
    }
    anyhow::bail!(
        "give --cluster-secret or --jwt-secret (FERRYMQ_CLUSTER_SECRET / FERRYMQ_JWT_SECRET) as the gateways have them"
    )
}

/// A progress line on a terminal, and the test-only crash point.
struct Progress {
    bar: indicatif::ProgressBar,
    steps: AtomicU64,
    crash_after: Option<u64>,
}

impl Observer for Progress {
    fn planned(&self, rows: u64) {
        self.bar.set_length(rows);
    }
    fn archived(&self, rows: u64, _bytes: u64) {
        self.bar.inc(rows);
    }
    fn step(&self, what: &str) {
        let n = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
        if self.crash_after == Some(n) {
            eprintln!("crashing on purpose at step {n} ({what})");
            std::process::exit(86);
        }
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

fn summary(r: &PassReport) -> serde_json::Value {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    json!({
        "files": r.files,
        "rows": r.rows,
        "message_bytes": r.message_bytes,
        "parquet_bytes": r.parquet_bytes,
        "seconds": secs,
        "mb_per_second": mb(r.message_bytes) / secs,
        "queues_trimmed": r.queues_trimmed,
        "segments_deleted": r.segments_deleted,
        "orphans_deleted": r.orphans_deleted,
        "archive_files_expired": r.archive_files_expired,
        "catalogue_runs": r.catalogue_runs,
        "cut_version": r.cut_version,
        "iceberg": {
            "version": r.iceberg.version,
            "files_added": r.iceberg.added,
            "files_removed": r.iceberg.removed,
            "snapshots_expired": r.iceberg.expired_snapshots,
            "metadata_deleted": r.iceberg.metadata_deleted,
        },
    })
}

/// Runs `ferrymq compact`.
pub async fn run(args: CompactArgs) -> anyhow::Result<()> {
    let url = match &args.store {
        Some(s) => s.clone(),
        None => crate::server::default_store()?,
    };
    let kind = kind_of(&url)?;
    anyhow::ensure!(
        kind != StoreKind::Memory,
        "memory:// is private to one process: there is nothing to compact"
    );
    let secret = cluster_secret(&args, &url, kind)?;
    let clock: Arc<dyn Clock> = TokioClock::shared();
    let store = Store::open(&url)?;
    let forwarder = Arc::new(HttpForwarder::new(
        ForwardKey::new(&secret),
        Duration::from_secs(10),
    )?);
    let id = format!("compact-{}", segment_writer::clock::new_ulid(&*clock));
    let mut ns = NodeSettings::new(id.clone(), String::new());
    ns.submit_timeout = Duration::from_secs(30);
    info!(store = %url, id = %id, "compaction pass starting");
    let node = Node::start(store, ns, clock, forwarder, rand::random()).await?;
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "archiving {pos}/{len} messages [{elapsed_precise}] {per_sec} eta {eta}",
        )
        .expect("a valid template"),
    );
    let progress = Progress {
        bar,
        steps: AtomicU64::new(0),
        crash_after: args.crash_after_steps,
    };
    let mut settings = args.compactor.settings(id);
    settings.retention = !args.no_retention;
    let result = compactor::run_pass(&node, &settings, &progress).await;
    progress.bar.finish_and_clear();
    node.shutdown().await;
    let r = result?;
    let s = summary(&r);
    if args.json {
        println!("{s}");
    } else {
        println!(
            "archived {} messages ({:.1} MB) into {} files ({:.1} MB Parquet) in {:.2} s ({:.1} MB/s); trimmed {} queues, deleted {} segments and {} orphan files",
            r.rows,
            mb(r.message_bytes),
            r.files,
            mb(r.parquet_bytes),
            r.elapsed.as_secs_f64(),
            s["mb_per_second"].as_f64().unwrap_or(0.0),
            r.queues_trimmed,
            r.segments_deleted,
            r.orphans_deleted
        );
    }
    Ok(())
}

/// Runs a pass on the gateway's own node every `every`; a pass finding the lease held by
/// another compactor skips quietly.
pub fn spawn_background(
    node: Node,
    every: Duration,
    flags: &CompactorFlags,
) -> tokio::task::JoinHandle<()> {
    let settings = flags.settings(node.settings().gateway_id.clone());
    tokio::spawn(async move {
        loop {
            node.clock().sleep(every).await;
            if node.is_stopped() {
                return;
            }
            match compactor::run_pass(&node, &settings, &Quiet).await {
                Ok(r) => info!(
                    rows = r.rows,
                    files = r.files,
                    segments_deleted = r.segments_deleted,
                    "background compaction pass"
                ),
                Err(compactor::Error::LeaseHeld(who)) => {
                    debug!(%who, "another compactor is running")
                }
                Err(e) => warn!(error = %e, "background compaction pass failed"),
            }
        }
    })
}
