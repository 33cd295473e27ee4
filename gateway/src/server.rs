//! Wiring of `ferrymq serve`: the store, secrets, the manifest node, the batcher, the hot
//! tail, background tasks and the HTTP server with graceful shutdown.
//!
//! Shutdown (SIGTERM or ctrl-c): `/readyz` turns 503, the listener stops accepting, every
//! in-flight request is answered with its true outcome (open batches are flushed and
//! committed), then the manifest node stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::header::AUTHORIZATION;
use rand::TryRngCore;
use segment_writer::clock::{Clock, TokioClock};
use segment_writer::faulty::{FaultConfig, FaultyStore};
use segment_writer::manifest::timers::SpillSettings;
use segment_writer::manifest::{Command, LogSettings};
use segment_writer::node::{Node, NodeSettings};
use segment_writer::store::{Store, StoreKind, kind_of};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::auth::Verifier;
use crate::batcher::{BatchSettings, Batcher};
use crate::cli::ServeArgs;
use crate::forward::{ForwardKey, HttpForwarder};
use crate::reader::Reader;
use crate::receipt::ReceiptKey;
use crate::service::{AppState, Limits};

pub(crate) const SECRET_FILE: &str = "jwt-secret";
pub(crate) const CLUSTER_SECRET_FILE: &str = "cluster-secret";

pub(crate) fn default_store() -> anyhow::Result<String> {
    let dir = std::env::current_dir()?.join("ferrymq-data");
    Ok(format!("file://{}", dir.display()))
}

pub(crate) fn local_dir(url: &str) -> Option<PathBuf> {
    url.strip_prefix("file://").map(PathBuf::from)
}

fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut b)
        .expect("the OS has randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads, or creates with mode 0600, a secret file in the local data directory.
fn secret_file(dir: &std::path::Path, name: &str) -> anyhow::Result<(String, bool)> {
    let path = dir.join(name);
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok((s.trim().to_string(), false));
    }
    std::fs::create_dir_all(dir)?;
    let secret = random_secret();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    Ok((secret, true))
}

/// The secret the local-directory gateway generated (for `ferrymq token`).
pub fn generated_secret(store: Option<&str>) -> anyhow::Result<String> {
    let url = match store {
        Some(s) => s.to_string(),
        None => default_store()?,
    };
    let dir =
        local_dir(&url).context("no --jwt-secret given and the store is not a local directory")?;
    let path = dir.join(SECRET_FILE);
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("no --jwt-secret given and {} is missing", path.display()))?
        .trim()
        .to_string())
}

struct Secrets {
    verifier: Verifier,
    cluster: Vec<u8>,
    print_token_with: Option<String>,
}

fn secrets(args: &ServeArgs, url: &str, kind: StoreKind) -> anyhow::Result<Secrets> {
    let mut print_token_with = None;
    let (verifier, hs_secret) = if let Some(s) = &args.jwt_secret {
        anyhow::ensure!(!s.is_empty(), "--jwt-secret is empty");
        (Verifier::hs256(s.as_bytes()), Some(s.clone()))
    } else if let Some(p) = &args.jwt_public_key {
        (
            Verifier::public_key_pem(
                &std::fs::read(p).with_context(|| format!("read {}", p.display()))?,
            )?,
            None,
        )
    } else if let Some(p) = &args.jwks {
        (
            Verifier::jwks(&std::fs::read(p).with_context(|| format!("read {}", p.display()))?)?,
            None,
        )
    } else {
        match kind {
            StoreKind::S3 => bail!(
                "refusing to start against S3 without a JWT key: set --jwt-secret, --jwt-public-key or --jwks (or FERRYMQ_JWT_SECRET)"
            ),
            StoreKind::Local => {
                let dir = local_dir(url).context("local store URL")?;
                let (secret, created) = secret_file(&dir, SECRET_FILE)?;
                if created {
                    print_token_with = Some(secret.clone());
                }
                (Verifier::hs256(secret.as_bytes()), Some(secret))
            }
            StoreKind::Memory => {
                let secret = random_secret();
                print_token_with = Some(secret.clone());
                (Verifier::hs256(secret.as_bytes()), Some(secret))
            }
        }
    };
    let cluster = match (&args.cluster_secret, hs_secret) {
        (Some(c), _) => c.as_bytes().to_vec(),
        (None, Some(s)) => crate::receipt::derive_key(s.as_bytes(), "ferrymq cluster secret"),
        (None, None) => match kind {
            StoreKind::Local => secret_file(
                &local_dir(url).context("local store URL")?,
                CLUSTER_SECRET_FILE,
            )?
            .0
            .into_bytes(),
            StoreKind::Memory => random_secret().into_bytes(),
            StoreKind::S3 => bail!(
                "--cluster-secret (FERRYMQ_CLUSTER_SECRET) is required with S3 and a public-key JWT configuration"
            ),
        },
    };
    Ok(Secrets {
        verifier,
        cluster,
        print_token_with,
    })
}

/// Publish-path defaults that depend on the store (each overridable by its flag).
///
/// A local directory without an injected latency profile is CPU- and fsync-bound: fewer,
/// bigger batches, no inline segments and no hedged writes (a second identical write only
/// competes for the same disk and CPU) publish more. Anything else waits on the network: more
/// in flight, one PUT per acknowledgement and hedging cut latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoreDefaults {
    /// `--inline-max-bytes`.
    inline_max_bytes: usize,
    /// `--max-inflight-batches`.
    max_inflight_batches: usize,
    /// Hedged segment and delta writes (no flag).
    hedge: bool,
}

impl StoreDefaults {
    fn for_store(kind: StoreKind, profile: Option<&str>) -> StoreDefaults {
        let local_disk = kind == StoreKind::Local && profile.is_none_or(|p| p == "none");
        if local_disk {
            StoreDefaults {
                inline_max_bytes: 0,
                max_inflight_batches: 1,
                hedge: false,
            }
        } else {
            StoreDefaults {
                inline_max_bytes: 64 * 1024,
                max_inflight_batches: 16,
                hedge: true,
            }
        }
    }
}

/// The timer spill settings of the `--timer-*` flags.
fn timer_spill_settings(args: &ServeArgs) -> anyhow::Result<SpillSettings> {
    let s = SpillSettings {
        keep_inline: args.timer_keep_inline,
        chunk: args.timer_spill_chunk,
        horizon_ms: args.timer_spill_horizon.as_millis() as i64,
        load_ahead_ms: args.timer_load_ahead.as_millis() as i64,
    };
    if s.chunk == 0 {
        anyhow::bail!("--timer-spill-chunk must be at least 1");
    }
    if s.load_ahead_ms >= s.horizon_ms {
        anyhow::bail!("--timer-load-ahead must be less than --timer-spill-horizon");
    }
    Ok(s)
}

/// Runs `ferrymq serve` until SIGTERM or ctrl-c.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let url = match &args.store {
        Some(s) => s.clone(),
        None => default_store()?,
    };
    let kind = kind_of(&url)?;
    let secrets = secrets(&args, &url, kind)?;
    let listener_addr: std::net::SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("bad --listen {:?}", args.listen))?;
    let address = match &args.advertise_addr {
        Some(a) => a.clone(),
        None if !listener_addr.ip().is_unspecified() => args.listen.clone(),
        None => {
            warn!(
                "--listen is a wildcard address and no --advertise-addr is set: other gateways cannot forward to this one"
            );
            String::new()
        }
    };
    let profile = match &args.store_profile {
        Some(p) => Some(FaultConfig::profile(p).with_context(|| {
            format!("unknown --store-profile {p:?} (s3-standard, s3-express, minio-lan, none)")
        })?),
        None => None,
    };
    let spill = timer_spill_settings(&args)?;
    let push_allow =
        crate::push::allow::AllowList::parse(&args.push_allow.clone().unwrap_or_else(|| {
            crate::push::allow::AllowList::defaults(matches!(
                kind,
                StoreKind::Local | StoreKind::Memory
            ))
        }))?;
    if args.check_config {
        println!(
            "configuration ok: store {url}, listen {}, advertise {address:?}",
            args.listen
        );
        return Ok(());
    }
    let clock: Arc<dyn Clock> = match args.test_clock_ahead {
        Some(ahead) => {
            warn!(
                ?ahead,
                "the clock runs ahead of the system's (--test-clock-ahead): for tests only"
            );
            Arc::new(TokioClock::starting_at(
                TokioClock::new().now_ms() + ahead.as_millis() as i64,
            ))
        }
        None => TokioClock::shared(),
    };
    let base = Store::open(&url)?;
    let mut faults = profile.unwrap_or_default();
    let mut fault_seed = rand::random();
    if let Some(f) = args.store_faults {
        faults.error_rate = f.errors;
        faults.lost_response_rate = f.lost;
        faults.timeout_rate = f.timeouts;
        fault_seed = f.seed.unwrap_or(fault_seed);
        warn!(
            ?f,
            fault_seed, "injecting store faults (--store-faults): for tests only"
        );
    }
    let counter = Arc::new(FaultyStore::new(
        base.inner.clone(),
        faults,
        fault_seed,
        clock.clone(),
    ));
    let store = base.wrapped(counter.clone());
    let forward_key = ForwardKey::new(&secrets.cluster);
    let forwarder = Arc::new(HttpForwarder::new(
        forward_key.clone(),
        Duration::from_secs(10),
    )?);
    let gateway_id = segment_writer::clock::new_ulid(&*clock).to_string();
    let mut ns = NodeSettings::new(gateway_id.clone(), address.clone());
    ns.lease_ttl = args.lease_ttl;
    ns.heartbeat = (args.lease_ttl / 3).min(Duration::from_secs(1));
    ns.tail_interval = args.tail_interval;
    ns.max_deltas_in_flight = usize::from(args.max_deltas_in_flight);
    ns.deltas_per_round_trip = args.deltas_per_round_trip;
    let defaults = StoreDefaults::for_store(kind, args.store_profile.as_deref());
    ns.log = LogSettings {
        hedge: defaults.hedge,
        checkpoint_every: args.checkpoint_every,
        checkpoint_min_interval: args.checkpoint_min_interval,
        gc_grace: args.gc_grace,
        ..LogSettings::default()
    };
    info!(store = %url, gateway = %gateway_id, %address, "opening the manifest");
    // A store that fails now and then (an S3 503) must not stop a gateway from starting: the
    // manifest load is retried while its error is transient, for about a minute.
    let mut attempt = 0u64;
    let node = loop {
        let fwd = forwarder.clone();
        match Node::start(
            store.clone(),
            ns.clone(),
            clock.clone(),
            fwd,
            rand::random(),
        )
        .await
        {
            Ok(node) => break node,
            Err(e) if e.is_retryable() && attempt < 60 => {
                attempt += 1;
                warn!(error = %e, attempt, "loading the manifest failed; retrying");
                clock
                    .sleep(Duration::from_millis(100 * attempt.min(10)))
                    .await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    crate::backlog::seed(&node.state());
    let reader =
        Arc::new(Reader::new(store.clone(), args.hot_tail_bytes).with_state(node.shared_state()));
    let (batcher, batcher_task) = Batcher::start(
        node.clone(),
        reader.clone(),
        BatchSettings {
            linger: args.linger,
            inline_max_bytes: args.inline_max_bytes.unwrap_or(defaults.inline_max_bytes),
            inline_backlog: args.inline_backlog,
            max_batch_bytes: args.max_batch_bytes,
            max_inflight_batches: args
                .max_inflight_batches
                .unwrap_or(defaults.max_inflight_batches),
            max_inflight_bytes: args.max_inflight_bytes,
            hedge: defaults.hedge,
        },
    );
    let state = Arc::new(AppState {
        node: node.clone(),
        batcher: batcher.clone(),
        reader: reader.clone(),
        verifier: secrets.verifier,
        receipts: ReceiptKey::new(&secrets.cluster),
        forward_key,
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_request_bytes: args.max_request_bytes,
            max_messages_per_publish: 1000,
            max_receive: 1000,
            max_wait_ms: 30_000,
            max_properties_bytes: 64 * 1024,
            max_delay_ms: 40 * 86_400_000,
            max_in_flight_per_group: args.max_in_flight_per_group,
        },
        round_robin: AtomicU64::new(rand::random::<u32>().into()),
        long_polls: tokio::sync::Semaphore::new(args.max_long_polls),
        claims: Default::default(),
        fifo_groups: Default::default(),
        ready: AtomicBool::new(true),
        store_url: url.clone(),
        metrics_per_queue: args.metrics_per_queue,
        push: crate::push::PushSettings {
            allow: push_allow,
            key: crate::push::signing::PushKey::new(&secrets.cluster),
            enabled: !args.no_push,
        },
    });
    // The sequencer keeps the bytes of inline segments it commits, to write them out later
    // without reading its own deltas back (beyond the bound it GETs them).
    let inline_bytes = Arc::new(segment_writer::inline::InlineBytes::new(
        args.inline_keep_bytes,
    ));
    let background = spawn_background(
        node.clone(),
        reader.clone(),
        counter.clone(),
        inline_bytes.clone(),
    );
    let inline_writer =
        spawn_inline_writer(node.clone(), args.inline_write_out_every, inline_bytes);
    let scheduler =
        crate::scheduler::spawn(node.clone(), reader.clone(), Duration::from_millis(10));
    let spill_keeper = crate::scheduler::spawn_spill_keeper(node.clone(), spill);
    let index_keeper = crate::scheduler::spawn_index_keeper(
        node.clone(),
        reader.index().clone(),
        segment_writer::manifest::index::IndexSettings {
            keep_inline: args.index_keep_inline,
            chunk: args.index_chunk.max(1),
            min_chunk: 32.min(args.index_chunk.max(1)),
            fold_age_ms: args.index_fold_age.as_millis() as i64,
            fan_in: args.index_fan_in.max(2),
            ..Default::default()
        },
    );
    let pushers = crate::push::spawn(state.clone());
    let ledger_keeper = crate::scheduler::spawn_ledger_keeper(
        node.clone(),
        crate::scheduler::LedgerSettings {
            flush_interval: args.ledger_flush_interval,
            flush_bytes: args.ledger_flush_bytes,
            ..Default::default()
        },
    );
    let compactor = (!args.no_compact).then(|| {
        crate::compact::spawn_background(node.clone(), args.compact_interval, &args.compactor)
    });
    let app = crate::http::router(state.clone())
        .layer(axum::middleware::from_fn(count_responses))
        .layer(TraceLayer::new_for_http().make_span_with(crate::http::otel::RequestSpan))
        .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION]));
    let listener = tokio::net::TcpListener::bind(listener_addr)
        .await
        .with_context(|| format!("bind {listener_addr}"))?;
    info!(listen = %listener.local_addr()?, "FerryMQ gateway ready");
    if let Some(secret) = secrets.print_token_with {
        let token = crate::auth::mint(
            secret.as_bytes(),
            "admin",
            &["admin:*".to_string()],
            Duration::from_secs(30 * 86_400),
        )?;
        println!("Generated a JWT secret for this data directory. Admin token (30 days):\n{token}");
    }
    let shutdown_state = state.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            info!("shutting down: refusing new requests, finishing in-flight ones");
            shutdown_state.ready.store(false, Ordering::SeqCst);
        })
        .await?;
    // The pushers hold the state (and so the batcher): stop them first.
    pushers.abort();
    let _ = pushers.await;
    batcher.close();
    drop(state);
    let _ = batcher_task.await;
    node.shutdown().await;
    background.abort();
    inline_writer.abort();
    scheduler.abort();
    spill_keeper.abort();
    index_keeper.abort();
    ledger_keeper.abort();
    if let Some(c) = compactor {
        c.abort();
    }
    info!("stopped");
    Ok(())
}

async fn count_responses(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let resp = next.run(req).await;
    crate::metrics::observe_http(resp.status().as_u16());
    resp
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// On the sequencer, every `every`: inline segments become objects of their own, so the log
/// versions holding them can be collected.
fn spawn_inline_writer(
    node: Node,
    every: Duration,
    known: Arc<segment_writer::inline::InlineBytes>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            node.clock().sleep(every).await;
            if node.is_stopped() {
                return;
            }
            if node.is_sequencer() && !node.state().inline_segments.is_empty() {
                match segment_writer::inline::materialize(&node, &known).await {
                    Ok(n) => crate::metrics::observe_inline_written(n),
                    Err(e) => warn!(error = %e, "writing inline segments out failed"),
                }
            }
        }
    })
}

/// Gateways fill the hot tail with each new segment of a topic read through them lately
/// ([`Reader::wants_ahead`]) once; the sequencer dead-letters
/// exhausted leases; store call counts feed `/metrics`.
fn spawn_background(
    node: Node,
    reader: Arc<Reader>,
    counter: Arc<FaultyStore>,
    inline_bytes: Arc<segment_writer::inline::InlineBytes>,
) -> tokio::task::JoinHandle<()> {
    let mut applied = node.subscribe();
    let sequencer = node.clone();
    let prefetch_reader = reader.clone();
    tokio::spawn(async move {
        loop {
            let a = match applied.recv().await {
                Ok(a) => a,
                // Behind: the hot tail fetches what it misses when read; dead letters are
                // counted from the state, so only redeliveries of the skipped deltas are lost.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    warn!(skipped = n, "the applied-delta listener fell behind");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            crate::backlog::observe_applied(&sequencer.state(), &a);
            if sequencer.is_sequencer() {
                inline_bytes.remember(&a.delta);
            }
            // Inline segments arrive with their delta: into the hot tail without a GET.
            for (name, data) in segment_writer::inline::inline_segments(&a.delta) {
                if !prefetch_reader.contains(name) {
                    match segment_writer::segment::decode(data) {
                        Ok(messages) => prefetch_reader.insert(name, Arc::new(messages)),
                        Err(e) => warn!(error = %e, segment = %name, "undecodable inline segment"),
                    }
                }
            }
            for entry in &a.delta.entries {
                for c in &entry.commands {
                    if let Command::Packed { pack, parts } = c {
                        prefetch_reader.packed(pack, parts);
                    }
                    if let Command::Append { topic, segment, .. }
                    | Command::PublishOne { topic, segment, .. } = c
                    {
                        if prefetch_reader.wants_ahead(topic) && !prefetch_reader.contains(segment)
                        {
                            let (r, s) = (prefetch_reader.clone(), segment.clone());
                            tokio::spawn(async move {
                                if let Err(e) = r.prefetch(&s).await {
                                    warn!(error = %e, segment = %s, "hot-tail prefetch failed");
                                }
                            });
                        }
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        loop {
            node.clock().sleep(Duration::from_millis(250)).await;
            let c = counter.counts();
            crate::metrics::observe_store_requests(c.puts, c.gets, c.lists, c.deletes);
            crate::metrics::observe_store_injected_faults(c.injected_faults);
            if node.is_stopped() {
                return;
            }
            if node.is_sequencer() {
                let now = node.state().time_ms.max(node.clock().now_ms());
                let due = !node.state().exhausted_leases(now).is_empty();
                if due {
                    if let Err(e) = node.submit(vec![Command::ExpireLeases]).await {
                        warn!(error = %e, "dead-lettering expired leases failed");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_directory_without_a_latency_profile_gets_the_disk_defaults() {
        let disk = StoreDefaults::for_store(StoreKind::Local, None);
        assert_eq!(
            (disk.inline_max_bytes, disk.max_inflight_batches, disk.hedge),
            (0, 1, false)
        );
        assert_eq!(
            StoreDefaults::for_store(StoreKind::Local, Some("none")),
            disk
        );
        let network = StoreDefaults::for_store(StoreKind::S3, None);
        assert_eq!(
            (
                network.inline_max_bytes,
                network.max_inflight_batches,
                network.hedge
            ),
            (64 * 1024, 16, true)
        );
        assert_eq!(
            StoreDefaults::for_store(StoreKind::Local, Some("s3-standard")),
            network
        );
        assert_eq!(StoreDefaults::for_store(StoreKind::Memory, None), network);
    }
}
