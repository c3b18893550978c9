//! `civic node serve`: an institution node answering the hub's granted
//! requests over mutual TLS.
//!
//! A request is `POST /node/v1/requests` with `{"envelope": …, "body": "…"}`.
//! The node answers only if every check passes, in this order: the TLS
//! client certificate is the hub's (issued by the CA the node trusts, with
//! the hub's name); the envelope is signed by the hub's key, recent, and
//! matches the body; the grant in it passes the node's own gate (its
//! endorsements, holder, validity, purpose, items, period, first use).
//! The answer to the grant's question comes from the node's store, signed
//! in an envelope of its own. Everything the node admits is kept on disk
//! before it answers: the grants used, each answer by request id, and the
//! hash-chained message log. A retry of a request — after a lost
//! connection or a restart — gets the same answer; a grant reused for
//! another request is refused.

mod answer;
pub mod ingest;

pub mod mydata;

pub mod testing;

use axum::extract::State;

use axum::http::StatusCode;

use axum::response::{IntoResponse, Response};

use axum::routing::{get, post};

use axum::{Extension, Router};

use civic_exchange::{
    Direction, Envelope, Item, MessageLog, NodeGate, NodePolicy, Question, Role, TrustedKey,
};

use civic_node::{EventStore, ExposureQuery, Kind, TowerSelection};

use ed25519_dalek::{SigningKey, VerifyingKey};

use serde::{Deserialize, Serialize};

use std::collections::{BTreeMap, BTreeSet};

use std::io::Write;

use std::net::SocketAddr;

use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};

/// `node.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's name, as in its certificate.
    pub name: String,
    /// The holding institution grants must name.
    pub holder: String,
    pub addr: String,
    pub data_dir: PathBuf,
    /// Which store answers: pings, transactions or taps.
    pub kind: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// The hub's CA certificate.
    pub tls_ca: PathBuf,
    /// The name in the hub's certificate.
    pub hub_name: String,
    /// The hub's Ed25519 key (hex), which signs envelopes and endorses grants.
    pub hub_key: String,
    /// Other keys trusted to endorse: `{ role = "health_approver", key = "hex" }`.
    #[serde(default)]
    pub endorsers: Vec<EndorserConfig>,
    /// Whether an endorsement by a key the hub certified (for an official
    /// of the institution kind the role demands) counts like one by a key
    /// listed above. Set false to accept only the listed keys.
    #[serde(default = "yes")]
    pub hub_certified_endorsers: bool,
    /// Items given per purpose.
    pub gives: BTreeMap<String, Vec<Item>>,
    #[serde(default = "default_period")]
    pub max_period_days: i64,
    /// This node's Ed25519 signing key file (hex; created if missing).
    pub signing_key: PathBuf,
    /// Where the holder's own systems append events over HTTPS with this
    /// node's certificate and a token from `civic node ingest-token`
    /// (`POST /node/v1/events`); unset, no appends over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_addr: Option<String>,
    /// For a MyData holder (`kind = "records"`): its credentials' issuer
    /// identifier (`iss`), the URL where the hub publishes its keys; the
    /// status list is at `{issuer_url}/status-list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_url: Option<String>,
}

fn default_period() -> i64 {
    28
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndorserConfig {
    pub role: Role,
    pub key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] civic_node::StoreError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(transparent)]
    Trust(#[from] civic_exchange::trust::TrustError),
}

fn verifying_key(hex: &str, what: &str) -> Result<VerifyingKey, NodeError> {
    let bytes: [u8; 32] = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.trim().as_bytes())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| NodeError::Config(format!("{what}: expected 64 hex digits")))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| NodeError::Config(format!("{what}: not an Ed25519 key")))
}

/// Reads this node's signing key, creating it on first start.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, NodeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes: [u8; 32] = data_encoding::HEXLOWER_PERMISSIVE
                .decode(text.trim().as_bytes())
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| NodeError::Config(format!("{}: not a key", path.display())))?;
            Ok(SigningKey::from_bytes(&bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| NodeError::Io(dir.display().to_string(), e))?;
            }
            // A private key: readable by its owner only.
            write_owner_only(
                path,
                data_encoding::HEXLOWER.encode(key.as_bytes()).as_bytes(),
            )?;
            Ok(key)
        }
        Err(e) => Err(NodeError::Io(path.display().to_string(), e)),
    }
}

/// Writes a file whole or not at all (write, fsync, rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let io = |e| NodeError::Io(path.display().to_string(), e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

pub use civic_exchange::wire::{
    Answer, AnswerPart, AnswerReader, Message, PlaceInfo, PurgeReceipt, PurgeRequest, RouteAnswer,
    Seen, WindowAnswer,
};

/// The content type of a streamed answer: an envelope line, then parts.
pub const ANSWER_CONTENT_TYPE: &str = "application/x-ndjson";

struct Node {
    config: NodeConfig,
    key: SigningKey,
    hub_key: VerifyingKey,
    store: EventStore,
    gate: NodeGate,
    log: MessageLog,
    /// Requests whose kept answers were deleted at the hub's request
    /// (`exchange/purged.json`): a retry of one is refused, not answered
    /// again.
    purged: BTreeSet<String>,
}

type Shared = Arc<Mutex<Node>>;

/// The TLS peer's certificate name.
#[derive(Clone, Debug)]
struct Peer(Option<String>);

/// The body of a refusal: the reason, for the hub to show.
fn refusal_body(reason: impl std::fmt::Display) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "refused": reason.to_string() })).expect("json")
}

fn refuse(status: StatusCode, reason: impl std::fmt::Display) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        refusal_body(reason),
    )
        .into_response()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Syncs a directory, so that removals and renames in it are durable.
fn sync_dir(dir: &Path) -> Result<(), NodeError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| NodeError::Io(dir.display().to_string(), e))
}

async fn purge(
    State(node): State<Shared>,
    Extension(peer): Extension<Peer>,
    body: axum::body::Bytes,
) -> Response {
    let handled = tokio::task::spawn_blocking(move || {
        node.lock()
            .unwrap_or_else(|e| e.into_inner())
            .purge(peer.0, &body)
    })
    .await;
    handled.unwrap_or_else(|_| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the node failed; try again",
        )
    })
}

/// What the node sends back.
enum Outcome {
    Refused(StatusCode, Vec<u8>),
    /// The envelope line and the file holding the body.
    Answer(Vec<u8>, PathBuf),
}

/// Streams an answer: its envelope line, then its body from disk.
async fn stream_answer(envelope: Vec<u8>, body: PathBuf) -> Response {
    let file = match tokio::fs::File::open(&body).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "reading a kept answer");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node cannot read its answer; try again",
            );
        }
    };
    let mut head = envelope;
    head.push(b'\n');
    let head = futures_util::stream::once(async move { Ok(axum::body::Bytes::from(head)) });
    let rest = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 16];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, ANSWER_CONTENT_TYPE)],
        axum::body::Body::from_stream(futures_util::StreamExt::chain(head, rest)),
    )
        .into_response()
}

async fn request(
    State(node): State<Shared>,
    Extension(peer): Extension<Peer>,
    body: axum::body::Bytes,
) -> Response {
    let node = node.clone();
    // The store and the disk are blocking work.
    let handled = tokio::task::spawn_blocking(move || {
        node.lock()
            .unwrap_or_else(|e| e.into_inner())
            .handle(peer.0, &body)
    })
    .await;
    match handled {
        Ok(Handled::Now(response)) => response,
        Ok(Handled::Stream(envelope, body)) => stream_answer(envelope, body).await,
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the node failed; try again",
        ),
    }
}

/// The signed head of the node's message log, for the hub only.
async fn log_head(State(node): State<Shared>, Extension(peer): Extension<Peer>) -> Response {
    // The node's lock may be held by a long answer or a compaction: wait
    // for it off the async workers.
    let head = tokio::task::spawn_blocking(move || {
        let node = node.lock().unwrap_or_else(|e| e.into_inner());
        (peer.0.as_deref() == Some(node.config.hub_name.as_str())).then(|| node.log.head(&node.key))
    })
    .await;
    match head {
        Ok(Some(head)) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&head).expect("a head serialises"),
        )
            .into_response(),
        Ok(None) => refuse(StatusCode::FORBIDDEN, "only the hub may ask this node"),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the node failed; try again",
        ),
    }
}

/// A request's outcome, once the node has decided and logged it.
enum Handled {
    Now(Response),
    /// An answer kept on disk, to stream: its envelope line and body file.
    Stream(Vec<u8>, PathBuf),
}

/// Puts the TLS client's certificate name into each request.
#[derive(Clone)]
struct PeerAcceptor(axum_server::tls_rustls::RustlsAcceptor);

impl<I, S> axum_server::accept::Accept<I, S> for PeerAcceptor
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = tokio_rustls::server::TlsStream<I>;
    type Service = axum::middleware::AddExtension<S, Peer>;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = std::io::Result<(Self::Stream, Self::Service)>> + Send,
        >,
    >;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move {
            let (stream, service) = inner.accept(stream, service).await?;
            let name = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(civic_exchange::trust::peer_name);
            Ok((stream, tower::Layer::layer(&Extension(Peer(name)), service)))
        })
    }
}

/// A running node.
pub struct RunningNode {
    pub addr: SocketAddr,
    /// The holders' ingest listener, if `ingest_addr` is set.
    pub ingest_addr: Option<SocketAddr>,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    ingest: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningNode {
    pub async fn shutdown(self) {
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        let _ = self.task.await;
        if let Some(ingest) = self.ingest {
            let _ = ingest.await;
        }
    }

    pub async fn wait(self) -> std::io::Result<()> {
        let served = self.task.await.unwrap_or(Ok(()));
        if let Some(ingest) = self.ingest {
            ingest.await.unwrap_or(Ok(()))?;
        }
        served
    }

    pub fn handle(&self) -> axum_server::Handle {
        self.handle.clone()
    }
}

/// Starts the node: opens its store and its state, binds `config.addr`.
pub async fn serve(config: NodeConfig) -> Result<RunningNode, NodeError> {
    let kind = match config.kind.as_str() {
        "records" => None,
        other => Some(Kind::parse(other).ok_or_else(|| {
            NodeError::Config("kind must be pings, transactions, taps or records".into())
        })?),
    };
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| NodeError::Io(p.display().to_string(), e))
    };
    let tls = civic_exchange::trust::server_config(
        &read(&config.tls_cert)?,
        &read(&config.tls_key)?,
        &read(&config.tls_ca)?,
    )?;
    let ingest_listener = match &config.ingest_addr {
        Some(raw) => {
            let addr: SocketAddr = raw
                .parse()
                .map_err(|_| NodeError::Config(format!("ingest_addr {raw:?} is not HOST:PORT")))?;
            let tls = civic_exchange::trust::server_config_without_client_auth(
                &read(&config.tls_cert)?,
                &read(&config.tls_key)?,
            )?;
            Some((addr, tls))
        }
        None => None,
    };
    let hub_key = verifying_key(&config.hub_key, "hub_key")?;
    let mut trusted = vec![TrustedKey {
        key: hub_key,
        role: Role::Hub,
    }];
    for e in &config.endorsers {
        trusted.push(TrustedKey {
            key: verifying_key(&e.key, "endorsers.key")?,
            role: e.role,
        });
    }
    let policy = NodePolicy {
        holder: config.holder.clone(),
        gives: config
            .gives
            .iter()
            .map(|(p, items)| (p.clone(), items.iter().copied().collect::<BTreeSet<_>>()))
            .collect(),
        max_period_days: config.max_period_days,
        hub_certified_endorsers: config.hub_certified_endorsers,
    };
    let mut gate = NodeGate::new(policy, trusted);
    let addr: SocketAddr = config
        .addr
        .parse()
        .map_err(|_| NodeError::Config(format!("addr {:?} is not HOST:PORT", config.addr)))?;
    let Some(kind) = kind else {
        let issuer_url = config.issuer_url.clone().ok_or_else(|| {
            NodeError::Config(
                "a records node needs issuer_url (where the hub publishes its keys)".into(),
            )
        })?;
        let node = mydata::RecordsNode::open(mydata::Setup {
            hub_name: config.hub_name.clone(),
            hub_key,
            key: load_or_create_key(&config.signing_key)?,
            issuer_url,
            gate,
            data_dir: config.data_dir.clone(),
        })?;
        let app = Router::new()
            .route(
                civic_exchange::wire::CREDENTIALS_PATH,
                post(mydata::credentials),
            )
            .route(
                civic_exchange::wire::REVOCATIONS_PATH,
                post(mydata::revocations),
            )
            .route(
                civic_exchange::wire::PORTABILITY_PATH,
                post(mydata::portability),
            )
            .route(
                civic_exchange::wire::STATUS_LIST_PATH,
                get(mydata::status_list),
            )
            .route(civic_exchange::wire::LOG_HEAD_PATH, get(mydata::log_head))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(Arc::new(node));
        return serve_mutual_tls(addr, tls, app, None);
    };
    let exchange = config.data_dir.join("exchange");
    std::fs::create_dir_all(exchange.join("answers"))
        .map_err(|e| NodeError::Io(exchange.display().to_string(), e))?;
    if let Ok(bytes) = std::fs::read(exchange.join("used-grants.json")) {
        let used = serde_json::from_slice(&bytes)
            .map_err(|e| NodeError::Config(format!("used-grants.json: {e}")))?;
        gate.restore_used(used);
    }
    let purged: BTreeSet<String> = match std::fs::read(exchange.join("purged.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| NodeError::Config(format!("purged.json: {e}")))?,
        Err(_) => BTreeSet::new(),
    };
    let entries = std::fs::read_to_string(exchange.join("messages.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NodeError::Config(format!("messages.jsonl: {e}")))?;
    let key = load_or_create_key(&config.signing_key)?;
    let store = EventStore::open(&config.data_dir, kind)?;
    let ingest_data_dir = config.data_dir.clone();
    let node: Shared = Arc::new(Mutex::new(Node {
        config,
        key,
        hub_key,
        store,
        gate,
        log: MessageLog::from_entries(entries),
        purged,
    }));
    let ingest_app = Router::new()
        .route(ingest::EVENTS_PATH, post(ingest::append))
        .route(ingest::PLACES_PATH, post(ingest::add_places))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(
            ingest::MAX_BATCH_BYTES,
        ))
        .with_state(ingest::Ingest {
            node: node.clone(),
            data_dir: ingest_data_dir,
        });
    let app = Router::new()
        .route(civic_exchange::wire::REQUESTS_PATH, post(request))
        .route(civic_exchange::wire::LOG_HEAD_PATH, get(log_head))
        .route(civic_exchange::wire::PURGE_PATH, post(purge))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(node);
    let ingest = ingest_listener.map(|(listener, tls)| (listener, tls, ingest_app));
    serve_mutual_tls(addr, tls, app, ingest)
}

fn bind(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), NodeError> {
    let io = |e| NodeError::Io(addr.to_string(), e);
    let listener = std::net::TcpListener::bind(addr).map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    let local = listener.local_addr().map_err(io)?;
    Ok((listener, local))
}

/// Binds `addr` and serves `app` to clients with a certificate of the
/// hub's CA (and the holder's ingest listener beside it, if any).
fn serve_mutual_tls(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    app: Router,
    ingest: Option<(SocketAddr, rustls::ServerConfig, Router)>,
) -> Result<RunningNode, NodeError> {
    let (listener, addr) = bind(addr)?;
    let handle = axum_server::Handle::new();
    let (ingest, ingest_addr) = match ingest {
        Some((listener, tls, ingest_app)) => {
            let (listener, local) = bind(listener)?;
            let server = axum_server::from_tcp_rustls(
                listener,
                axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls)),
            )
            .handle(handle.clone());
            (
                Some(tokio::spawn(async move {
                    server.serve(ingest_app.into_make_service()).await
                })),
                Some(local),
            )
        }
        None => (None, None),
    };
    let acceptor = PeerAcceptor(axum_server::tls_rustls::RustlsAcceptor::new(
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls)),
    ));
    let server = axum_server::from_tcp(listener)
        .acceptor(acceptor)
        .handle(handle.clone());
    let task = tokio::spawn(async move { server.serve(app.into_make_service()).await });
    Ok(RunningNode {
        addr,
        ingest_addr,
        handle,
        task,
        ingest,
    })
}

/// What the hub returned to an enrolling node, and what the node chose.
pub struct Enrolment<'a> {
    pub name: &'a str,
    pub holder: &'a str,
    /// pings, transactions, taps or records.
    pub kind: &'a str,
    /// A records node's issuer identifier (see [`NodeConfig::issuer_url`]).
    pub issuer_url: Option<String>,
    pub addr: &'a str,
    pub certificate: &'a str,
    pub ca: &'a str,
    pub tls_key_pem: &'a str,
    pub hub_name: &'a str,
    pub hub_key: &'a str,
    /// Items given per purpose (empty: the node gives nothing yet).
    pub gives: BTreeMap<String, Vec<Item>>,
}

/// Writes an enrolled node's files into `dir` — its certificate, the CA,
/// its TLS key (owner-only) and a `node.toml` — and returns the
/// configuration's path. The node's signing key is already in `dir`.
pub fn write_enrolment(dir: &Path, e: &Enrolment<'_>) -> Result<PathBuf, NodeError> {
    let io = |p: &Path| {
        let shown = p.display().to_string();
        move |err| NodeError::Io(shown, err)
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (cert, ca, key) = (
        dir.join("node.pem"),
        dir.join("ca.pem"),
        dir.join("node-key.pem"),
    );
    std::fs::write(&cert, e.certificate).map_err(io(&cert))?;
    std::fs::write(&ca, e.ca).map_err(io(&ca))?;
    write_owner_only(&key, e.tls_key_pem.as_bytes())?;
    let config = NodeConfig {
        name: e.name.to_owned(),
        holder: e.holder.to_owned(),
        addr: e.addr.to_owned(),
        data_dir: dir.to_path_buf(),
        kind: e.kind.to_owned(),
        tls_cert: cert,
        tls_key: key,
        tls_ca: ca,
        hub_name: e.hub_name.to_owned(),
        hub_key: e.hub_key.to_owned(),
        endorsers: Vec::new(),
        hub_certified_endorsers: true,
        gives: e.gives.clone(),
        max_period_days: default_period(),
        signing_key: dir.join("node-signing.key"),
        ingest_addr: None,
        issuer_url: e.issuer_url.clone(),
    };
    let text = format!(
        "# Written at enrolment. Add the endorsers' keys, e.g.\n\
         # endorsers = [{{ role = \"health_approver\", key = \"…\" }}, {{ role = \"police_location_officer\", key = \"…\" }}]\n\
         # and under [gives] the items the node gives per purpose.\n{}",
        toml::to_string_pretty(&config).map_err(|err| NodeError::Config(err.to_string()))?
    );
    let path = dir.join("node.toml");
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// Writes a file only its owner can read (keys, personal data), synced.
pub fn write_owner_only(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| NodeError::Io(path.display().to_string(), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| NodeError::Io(path.display().to_string(), e))
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NodeError::Io(path.display().to_string(), e))?;
        toml::from_str(&text)
            .map_err(|e| NodeError::Config(format!("{}: {}", path.display(), e.message())))
    }
}
