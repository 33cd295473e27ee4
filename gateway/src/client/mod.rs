//! `ferrymq` as the shell client of a running gateway: `topic`, `group`, `publish`,
//! `consume`, `tail` and `message`, over the `/v1` API with the types of [`crate::wire`].
//!
//! - [`ConnArgs`]: `--url` (`FERRYMQ_URL`), `--token` (`FERRYMQ_TOKEN`), `--store` and
//!   `--output`, shared by every client subcommand. Without a token, and when the store is a
//!   local directory holding the secret a gateway generated there, the client mints itself a
//!   short-lived admin token from it (as `ferrymq token` does), renewed before it expires.
//! - [`Client`]: one request per call; a non-2xx answer becomes [`ClientError::Api`] with the
//!   gateway's error code and message, a transport failure [`ClientError::Connect`].
//! - [`topic`], [`group`], [`message`]: the subcommands; `table`: `--output table`.
//!
//! Results go to stdout (one JSON document per line with `--output json`, the default when
//! stdout is not a terminal); errors go to stderr and make the process exit non-zero.

pub mod group;
pub mod message;
mod table;
pub mod topic;

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::ErrorBody;

/// An error of a client subcommand.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway answered with an error.
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The gateway could not be reached, or the connection failed mid-request.
    #[error("cannot reach the gateway at {url}: {detail}")]
    Connect { url: String, detail: String },
    /// The gateway answered 2xx with a body this client cannot read.
    #[error("unexpected answer from {url}: {source}")]
    Decode {
        url: String,
        source: serde_json::Error,
    },
    /// `--url` is not a usable base URL.
    #[error("bad --url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// Bad input on the command line or stdin.
    #[error("{0}")]
    Input(String),
    /// Minting a token from the generated secret failed.
    #[error("cannot mint a token: {0}")]
    Token(String),
    /// Some acknowledgements were refused (their messages will be delivered again).
    #[error("{failed} of {total} acks failed ({first_error})")]
    AckFailed {
        failed: usize,
        total: usize,
        first_error: String,
    },
    /// Reading stdin or writing stdout failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Results of the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One JSON document per line, as the API answers it.
    Json,
    /// Aligned columns for people.
    Table,
}

/// Where the gateway is, how to authenticate, how to print: shared by every client
/// subcommand (and accepted after any of them).
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// The gateway's base URL.
    #[arg(
        long,
        env = "FERRYMQ_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// A bearer token (JWT). Default: one minted from the secret a local-directory gateway
    /// generated in `--store`.
    #[arg(long, env = "FERRYMQ_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The local data directory whose generated secret mints a token when none is given
    /// (`file:///path` or a path). Default: `./ferrymq-data`.
    #[arg(long, env = "FERRYMQ_STORE", global = true)]
    pub store: Option<String>,
    /// `json` (one JSON document per line) or `table`. Default: `table` on a terminal,
    /// `json` otherwise.
    #[arg(long, value_enum, global = true)]
    pub output: Option<Output>,
}

impl ConnArgs {
    /// The client these settings describe.
    pub fn connect(&self) -> Result<Client> {
        let base = url::Url::parse(&self.url).map_err(|e| ClientError::BadUrl {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::BadUrl {
                url: self.url.clone(),
                reason: "not an http(s) base URL".into(),
            });
        }
        let auth = match &self.token {
            Some(t) => Auth::Token(t.clone()),
            None => match local_secret(self.store.as_deref()) {
                Ok(secret) => Auth::Minted {
                    secret,
                    current: Mutex::new(None),
                },
                Err(why) => {
                    tracing::debug!(%why, "no token given and no generated secret");
                    Auth::None { why }
                }
            },
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Connect {
                url: self.url.clone(),
                detail: chain(&e),
            })?;
        Ok(Client {
            http,
            base,
            auth,
            output: self.output.unwrap_or_else(|| {
                if std::io::stdout().is_terminal() {
                    Output::Table
                } else {
                    Output::Json
                }
            }),
        })
    }
}

/// The generated secret of a local data directory (`file:///path`, a plain path, or the
/// default `./ferrymq-data`).
fn local_secret(store: Option<&str>) -> Result<String, String> {
    let url = store.map(|s| {
        if s.contains("://") {
            s.to_string()
        } else {
            let path = std::path::Path::new(s);
            let abs = std::env::current_dir()
                .map(|d| d.join(path))
                .unwrap_or_else(|_| path.to_path_buf());
            format!("file://{}", abs.display())
        }
    });
    crate::server::generated_secret(url.as_deref()).map_err(|e| format!("{e:#}"))
}

/// How requests authenticate.
#[derive(Debug)]
enum Auth {
    /// No token: the gateway will answer 401; `why` says why none was found.
    None { why: String },
    /// `--token` / `FERRYMQ_TOKEN`.
    Token(String),
    /// Minted from a generated secret, and again shortly before it expires.
    Minted {
        secret: String,
        current: Mutex<Option<(String, Instant)>>,
    },
}

/// Lifetime of a token minted from the generated secret.
const MINTED_TTL: Duration = Duration::from_secs(15 * 60);

impl Auth {
    fn bearer(&self) -> Result<Option<String>> {
        match self {
            Auth::None { .. } => Ok(None),
            Auth::Token(t) => Ok(Some(t.clone())),
            Auth::Minted { secret, current } => {
                let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((t, minted)) = current.as_ref() {
                    if minted.elapsed() + Duration::from_secs(60) < MINTED_TTL {
                        return Ok(Some(t.clone()));
                    }
                }
                let token = crate::auth::mint(
                    secret.as_bytes(),
                    "ferrymq-cli",
                    &["admin:*".to_string()],
                    MINTED_TTL,
                )
                .map_err(|e| ClientError::Token(e.to_string()))?;
                *current = Some((token.clone(), Instant::now()));
                Ok(Some(token))
            }
        }
    }
}

/// An HTTP client of one gateway.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    auth: Auth,
    /// How results are printed.
    pub output: Output,
}

/// A request's timeout beyond the time the server may hold it (`wait_ms`).
const REQUEST_SLACK: Duration = Duration::from_secs(30);

impl Client {
    /// The URL of `/v1/<segments…>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut u = self.base.clone();
        {
            let mut path = u
                .path_segments_mut()
                .expect("checked in connect: the URL can be a base");
            path.pop_if_empty().push("v1").extend(segments);
        }
        u
    }

    /// A request to `/v1/<segments…>` that the server may hold up to `wait`.
    fn request(
        &self,
        method: Method,
        segments: &[&str],
        wait: Duration,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(segments))
            .timeout(wait + REQUEST_SLACK)
    }

    /// Sends one request and reads its JSON answer (`None` for 204).
    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Option<T>)> {
        let req = match self.auth.bearer()? {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let connect_error = |e: reqwest::Error| ClientError::Connect {
            url: self.base.to_string(),
            detail: chain(&e),
        };
        let req = req.build().map_err(connect_error)?;
        let url = req.url().clone();
        tracing::debug!(method = %req.method(), %url, "request");
        let resp = self.http.execute(req).await.map_err(connect_error)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(connect_error)?;
        if !status.is_success() {
            return Err(self.api_error(status, &bytes));
        }
        if status == StatusCode::NO_CONTENT {
            return Ok((status, None));
        }
        let value = serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            url: url.to_string(),
            source,
        })?;
        Ok((status, Some(value)))
    }

    fn api_error(&self, status: StatusCode, bytes: &[u8]) -> ClientError {
        let (code, mut message) = match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(b) => (b.error.code, b.error.message),
            Err(_) => (
                status
                    .canonical_reason()
                    .unwrap_or("HttpError")
                    .replace(' ', ""),
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            ),
        };
        if status == StatusCode::UNAUTHORIZED {
            if let Auth::None { why } = &self.auth {
                message = format!(
                    "{message} (no --token or FERRYMQ_TOKEN, and no generated secret to mint one: {why})"
                );
            }
        }
        ClientError::Api {
            status: status.as_u16(),
            code,
            message,
        }
    }

    /// `GET /v1/…`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        let req = self.request(Method::GET, segments, Duration::ZERO);
        let (_, v) = self.send(req).await?;
        v.ok_or_else(|| self.empty(segments))
    }

    /// `GET /v1/…?query`, held by the server up to `wait`.
    pub(crate) async fn get_query<T: DeserializeOwned, Q: Serialize>(
        &self,
        segments: &[&str],
        query: &Q,
        wait: Duration,
    ) -> Result<T> {
        let req = self.request(Method::GET, segments, wait).query(query);
        let (_, v) = self.send(req).await?;
        v.ok_or_else(|| self.empty(segments))
    }

    /// `PUT /v1/…` with a JSON body: the answer and whether it created something (201).
    pub(crate) async fn put<T: DeserializeOwned, B: Serialize>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<(T, bool)> {
        let req = self
            .request(Method::PUT, segments, Duration::ZERO)
            .json(body);
        let (status, v) = self.send(req).await?;
        let v = v.ok_or_else(|| self.empty(segments))?;
        Ok((v, status == StatusCode::CREATED))
    }

    /// `POST /v1/…` with a JSON body, held by the server up to `wait`.
    pub(crate) async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        segments: &[&str],
        body: &B,
        wait: Duration,
    ) -> Result<T> {
        let req = self.request(Method::POST, segments, wait).json(body);
        let (_, v) = self.send(req).await?;
        v.ok_or_else(|| self.empty(segments))
    }

    /// `DELETE /v1/…`.
    pub(crate) async fn delete(&self, segments: &[&str]) -> Result<()> {
        let req = self.request(Method::DELETE, segments, Duration::ZERO);
        self.send::<serde_json::Value>(req).await.map(|_| ())
    }

    fn empty(&self, segments: &[&str]) -> ClientError {
        ClientError::Decode {
            url: self.url(segments).to_string(),
            source: serde::de::Error::custom("empty answer (204) where a body was expected"),
        }
    }
}

/// An error and its sources, `: `-separated (reqwest hides the useful part, such as
/// "Connection refused", in its sources).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

/// Prints one JSON document on its own line.
pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Prints text as is.
pub(crate) fn print_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Runs a client subcommand. A closed stdout (`ferrymq tail … | head`) ends it quietly.
pub async fn run(command: ClientCommand) -> Result<()> {
    let result = match command {
        ClientCommand::Topic(a) => topic::run(a).await,
        ClientCommand::Group(a) => group::run(a).await,
        ClientCommand::Publish(a) => message::publish(a).await,
        ClientCommand::Consume(a) => message::consume(a).await,
        ClientCommand::Tail(a) => message::tail(a).await,
        ClientCommand::Message(a) => message::run(a).await,
    };
    match result {
        Err(ClientError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// The client subcommands, as [`crate::cli::Command`] carries them.
#[derive(Debug)]
pub enum ClientCommand {
    Topic(topic::TopicArgs),
    Group(group::GroupArgs),
    Publish(message::PublishArgs),
    Consume(message::ConsumeArgs),
    Tail(message::TailArgs),
    Message(message::MessageArgs),
}
