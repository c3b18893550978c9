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

impl Node {
    fn dir(&self) -> PathBuf {
        self.config.data_dir.join("exchange")
    }

    /// Where an answer's `envelope` or `body` is kept.
    fn answer_path(&self, request_id: &str, part: &str) -> PathBuf {
        let safe: String = data_encoding::HEXLOWER.encode(request_id.as_bytes());
        self.dir().join("answers").join(format!("{safe}.{part}"))
    }

    /// Keeps a signed head of the hub's message log that came with its
    /// request, as a witness of the hub's log (`exchange/hub-heads.jsonl`).
    fn keep_hub_head(&self, head: &civic_exchange::LogHead) {
        if !head.verify(&self.hub_key) {
            tracing::warn!("a request carried a hub log head that does not verify");
            return;
        }
        let path = self.dir().join("hub-heads.jsonl");
        let kept = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                let mut line = serde_json::to_vec(head).expect("a head serialises");
                line.push(b'\n');
                f.write_all(&line)
            });
        if let Err(e) = kept {
            tracing::warn!(error = %e, "keeping the hub's log head");
        }
    }

    fn append_log(
        &mut self,
        direction: Direction,
        request_id: &str,
        message: &[u8],
    ) -> Result<(), NodeError> {
        let entry = self
            .log
            .append(now(), direction, request_id, &self.config.hub_name, message)
            .clone();
        let path = self.dir().join("messages.jsonl");
        let io = |e| NodeError::Io(path.display().to_string(), e);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        f.write_all(&serde_json::to_vec(&entry).expect("an entry serialises"))
            .map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)
    }

    fn handle(&mut self, peer: Option<String>, raw: &[u8]) -> Handled {
        let Ok(message) = serde_json::from_slice::<Message>(raw) else {
            return Handled::Now(refuse(
                StatusCode::BAD_REQUEST,
                "expected {\"envelope\": …, \"body\": \"…\"}",
            ));
        };
        if peer.as_deref() != Some(self.config.hub_name.as_str()) {
            return Handled::Now(refuse(
                StatusCode::FORBIDDEN,
                "only the hub may ask this node",
            ));
        }
        let envelope = &message.envelope;
        if let Err(e) = envelope.open(&self.hub_key, message.body.as_bytes(), now()) {
            return Handled::Now(refuse(StatusCode::UNAUTHORIZED, e));
        }
        if let Some(head) = &message.log_head {
            self.keep_hub_head(head);
        }
        let Some(grant) = &envelope.grant else {
            return Handled::Now(refuse(
                StatusCode::FORBIDDEN,
                "the request carries no grant",
            ));
        };
        let request_id = envelope.request_id.clone();
        if let Err(e) = self.append_log(Direction::Received, &request_id, raw) {
            tracing::error!(error = %e, "message log");
            return Handled::Now(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node cannot log; try again",
            ));
        }
        let grant = grant.clone();
        let outcome = self.answer(&grant, &request_id, &message.body);
        // The envelope line is what the log keeps of an answer: it commits
        // to the body by its digest.
        let sent = match &outcome {
            Outcome::Refused(_, bytes) | Outcome::Answer(bytes, _) => bytes.clone(),
        };
        if let Err(e) = self.append_log(Direction::Sent, &request_id, &sent) {
            tracing::error!(error = %e, "message log");
            return Handled::Now(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node cannot log; try again",
            ));
        }
        match outcome {
            Outcome::Refused(status, bytes) => Handled::Now(
                (
                    status,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    bytes,
                )
                    .into_response(),
            ),
            Outcome::Answer(line, body) => Handled::Stream(line, body),
        }
    }

    /// The answer to an enveloped, logged request: the gate's refusal, the
    /// answer given before (a retry), or a new answer kept on disk first.
    /// An answer is its envelope line and the file that holds its body.
    fn answer(
        &mut self,
        grant: &civic_exchange::SignedGrant,
        request_id: &str,
        body: &str,
    ) -> Outcome {
        if self.purged.contains(request_id) {
            return Outcome::Refused(
                StatusCode::GONE,
                refusal_body("the answer to this request was deleted when its purpose ended"),
            );
        }
        let admitted = match self.gate.admit_request(grant, request_id, now(), body) {
            Ok(a) => a,
            Err(r) => return Outcome::Refused(StatusCode::FORBIDDEN, refusal_body(r)),
        };
        let (envelope_path, body_path) = (
            self.answer_path(request_id, "envelope"),
            self.answer_path(request_id, "body"),
        );
        if admitted.retry {
            if let Ok(line) = std::fs::read(&envelope_path) {
                return Outcome::Answer(line, body_path);
            }
        }
        // Data another process imported since counts (one stat if none).
        if let Err(e) = self.store.refresh() {
            tracing::error!(error = %e, "reloading the store; answering from the one loaded");
        }
        let kept = self.write_body(&admitted, &body_path).and_then(|digest| {
            let envelope = Envelope::seal_digest(request_id, &self.key, now(), &digest, None);
            let line = serde_json::to_vec(&envelope).expect("an envelope serialises");
            // The envelope is the commit point of the answer; then the
            // grant's use.
            write_atomic(&envelope_path, &line)?;
            let used = serde_json::to_vec(self.gate.used()).expect("used grants serialise");
            write_atomic(&self.dir().join("used-grants.json"), &used)?;
            Ok(line)
        });
        match kept {
            Ok(line) => Outcome::Answer(line, body_path),
            Err(e) => {
                tracing::error!(error = %e, "keeping an answer");
                Outcome::Refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    refusal_body("the node cannot keep its answer; try again"),
                )
            }
        }
    }

    /// Writes the grant's answer as parts, one a line, and syncs it;
    /// returns its hex SHA-256. One window or subject at a time is in
    /// memory.
    fn write_body(
        &self,
        admitted: &civic_exchange::Admitted,
        path: &Path,
    ) -> Result<String, NodeError> {
        let grant = &admitted.grant;
        use sha2::Digest;
        let io = |e| NodeError::Io(path.display().to_string(), e);
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        let mut hasher = sha2::Sha256::new();
        let mut emit = |part: AnswerPart| -> Result<(), NodeError> {
            let mut line = serde_json::to_vec(&part).expect("a part serialises");
            line.push(b'\n');
            hasher.update(&line);
            out.write_all(&line).map_err(io)
        };
        match &grant.question {
            Question::Exposure { .. } | Question::Windows { .. } => {
                for (i, w) in admitted.windows.iter().enumerate() {
                    let holders: Vec<Seen> = self
                        .store
                        .exposure(&ExposureQuery {
                            towers: TowerSelection::Near {
                                lat: w.lat,
                                lon: w.lon,
                                radius_m: w.radius_m,
                            },
                            t_start: w.t_start,
                            t_end: w.t_end,
                        })
                        .into_iter()
                        .map(|a| Seen::new(a.subscriber, a.first_seen, a.last_seen, a.pings))
                        .collect();
                    for part in AnswerPart::window(i, holders) {
                        emit(part)?;
                    }
                }
            }
            // Each subject's own records, within the grant's period only.
            Question::Subjects { ids } => {
                for &holder in ids {
                    let events = self.store.route(holder, grant.data_from, grant.data_until);
                    let mut ids: Vec<u64> = events.iter().map(|e| e.1).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    let places: Vec<PlaceInfo> = ids
                        .into_iter()
                        .filter_map(|id| {
                            self.store.place(id).map(|(t, name)| PlaceInfo {
                                id,
                                lat: t.lat,
                                lon: t.lon,
                                name: name.map(str::to_owned),
                            })
                        })
                        .collect();
                    for part in AnswerPart::route(holder, events) {
                        emit(part)?;
                    }
                    if !places.is_empty() {
                        emit(AnswerPart::RoutePlaces { holder, places })?;
                    }
                }
            }
            // An event store keeps no administrative records: its policy
            // gives no such item, so the gate refused these already.
            Question::Credential(_)
            | Question::Revocation { .. }
            | Question::Portability { .. } => {}
        }
        let file = out
            .into_inner()
            .map_err(|e| NodeError::Io(path.display().to_string(), e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(data_encoding::HEXLOWER.encode(&hasher.finalize()))
    }
}

impl Node {
    /// Deletes the kept answers of the requests a purge names, keeps their
    /// ids so that none is answered again, and returns the signed receipt.
    fn purge(&mut self, peer: Option<String>, raw: &[u8]) -> Response {
        let Ok(message) = serde_json::from_slice::<Message>(raw) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "expected {\"envelope\": …, \"body\": \"…\"}",
            );
        };
        if peer.as_deref() != Some(self.config.hub_name.as_str()) {
            return refuse(StatusCode::FORBIDDEN, "only the hub may ask this node");
        }
        if let Err(e) = message
            .envelope
            .open(&self.hub_key, message.body.as_bytes(), now())
        {
            return refuse(StatusCode::UNAUTHORIZED, e);
        }
        let Ok(request) = serde_json::from_str::<PurgeRequest>(&message.body) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "expected {\"purpose\": …, \"request_ids\": […]}",
            );
        };
        let request_id = message.envelope.request_id.clone();
        if let Err(e) = self.append_log(Direction::Received, &request_id, raw) {
            tracing::error!(error = %e, "message log");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node cannot log; try again",
            );
        }
        // A retried purge gets the receipt the first one got.
        let kept_receipt = self.answer_path(&request_id, "purge");
        if let Ok(bytes) = std::fs::read(&kept_receipt) {
            return (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response();
        }
        let mut receipt = PurgeReceipt {
            purpose: request.purpose.clone(),
            node: self.config.name.clone(),
            deleted: Vec::new(),
            absent: Vec::new(),
            at: now(),
        };
        for id in &request.request_ids {
            let mut bytes = 0;
            let mut found = false;
            for part in ["body", "envelope"] {
                let path = self.answer_path(id, part);
                if let Ok(meta) = std::fs::metadata(&path) {
                    bytes += meta.len();
                    found = true;
                    if let Err(e) = std::fs::remove_file(&path) {
                        tracing::error!(error = %e, "deleting a kept answer");
                        return refuse(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "the node cannot delete; try again",
                        );
                    }
                }
            }
            self.purged.insert(id.clone());
            if found {
                receipt.deleted.push((id.clone(), bytes));
            } else {
                receipt.absent.push(id.clone());
            }
        }
        let purged = serde_json::to_vec(&self.purged).expect("ids serialise");
        if let Err(e) = write_atomic(&self.dir().join("purged.json"), &purged)
            .and_then(|()| sync_dir(&self.dir().join("answers")))
        {
            tracing::error!(error = %e, "keeping the purged requests");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node cannot keep its purge; try again",
            );
        }
        let body = serde_json::to_string(&receipt).expect("a receipt serialises");
        let reply = Message {
            envelope: Envelope::seal(&request_id, &self.key, now(), body.as_bytes(), None),
            body,
            log_head: None,
        };
        let bytes = serde_json::to_vec(&reply).expect("a message serialises");
        if let Err(e) = write_atomic(&kept_receipt, &bytes) {
            tracing::error!(error = %e, "keeping a purge receipt");
        }
        if let Err(e) = self.append_log(Direction::Sent, &request_id, &bytes) {
            tracing::error!(error = %e, "message log");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node cannot log; try again",
            );
        }
        tracing::info!(
            deleted = receipt.deleted.len(),
            absent = receipt.absent.len(),
            "purged answers at the hub's request"
        );
        (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response()
    }
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
