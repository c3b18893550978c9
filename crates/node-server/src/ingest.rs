//! The holder's own door into its node: `POST /node/v1/events` appends a
//! batch of events (the kind's CSV, header first; `Content-Encoding: gzip`
//! accepted) durably, and `POST /node/v1/places` adds places (towers,
//! merchants, stops: all or nothing, like `civic node import`), over HTTPS with the node's certificate, for a bearer
//! token issued by `civic node ingest-token`. Only SHA-256 digests of
//! tokens are kept (`DATA_DIR/ingest-tokens`, owner-only), read at each
//! request so that a new or removed token counts at once.
//!
//! A batch is acknowledged (200) only once it is in the node's write-ahead
//! log on disk; a bad row gets a problem+json naming its line, and nothing
//! of the batch is kept. When the appended tail reaches
//! [`COMPACT_AT`] events it is compacted into segments before the answer.
//! The hub's door (mutual TLS, grants) is a different listener: holders
//! never ask questions here, and the hub never appends.

use crate::{NodeError, Shared};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// The path holders append events on.
pub const EVENTS_PATH: &str = "/node/v1/events";
/// The path holders add places (towers, merchants, stops) on.
pub const PLACES_PATH: &str = "/node/v1/places";
/// The largest batch accepted, in bytes as sent.
pub const MAX_BATCH_BYTES: usize = 64 << 20;
/// Tail events that set off a compaction.
pub const COMPACT_AT: u64 = 2_000_000;

fn tokens_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("ingest-tokens")
}

fn digest(token: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}

/// Issues a bearer token for the holder system `name`: keeps its digest
/// and returns the token, which is shown once.
pub fn issue_token(data_dir: &Path, name: &str) -> Result<String, NodeError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(NodeError::Config(
            "a token's name is one word without spaces".into(),
        ));
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = format!(
        "civic-ingest-{}",
        data_encoding::BASE32_NOPAD.encode(&secret)
    )
    .to_lowercase();
    let path = tokens_path(data_dir);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let io = |e| NodeError::Io(path.display().to_string(), e);
    std::fs::create_dir_all(data_dir)
        .map_err(|e| NodeError::Io(data_dir.display().to_string(), e))?;
    let mut file = options.open(&path).map_err(io)?;
    file.write_all(format!("{} {name}\n", digest(&token)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    Ok(token)
}

/// The name of the holder system whose token this is.
fn token_owner(data_dir: &Path, token: &str) -> Option<String> {
    let wanted = digest(token);
    std::fs::read_to_string(tokens_path(data_dir))
        .ok()?
        .lines()
        .find_map(|line| {
            let (hash, name) = line.split_once(' ')?;
            (hash == wanted).then(|| name.trim().to_owned())
        })
}

/// An RFC 9457 problem.
fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        serde_json::to_vec(&serde_json::json!({
            "type": "about:blank",
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        }))
        .expect("json"),
    )
        .into_response()
}

/// The ingest listener's state: the node, and where its tokens are (read
/// without the node's lock, so that a stranger never waits for it).
#[derive(Clone)]
pub(crate) struct Ingest {
    pub node: Shared,
    pub data_dir: std::path::PathBuf,
}

/// The most a gzip batch may unpack to.
pub const MAX_UNPACKED_BYTES: u64 = 256 << 20;

/// The header naming a batch, so that a batch sent again is recognised:
/// 32 hex digits, chosen by the sender and kept for its retries.
pub const BATCH_ID_HEADER: &str = "civic-batch-id";

/// What came with a batch: whose token, whether gzip, its id.
struct Batch {
    owner: String,
    gzip: bool,
    id: Option<civic_node::BatchId>,
}

/// Checks the token and the headers before the body is read.
fn admit(ingest: &Ingest, headers: &HeaderMap) -> Result<Batch, Box<Response>> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "send the holder's ingest token as Authorization: Bearer …",
        )));
    }
    let owner = token_owner(&ingest.data_dir, token).ok_or_else(|| {
        Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the ingest token is not one this node issued",
        ))
    })?;
    let gzip = match headers
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(Box::new(problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported content encoding",
                &format!("the batch is {other}-encoded; send it plain or gzip"),
            )))
        }
    };
    let id = match headers.get(BATCH_ID_HEADER) {
        None => None,
        Some(v) => {
            let id = v
                .to_str()
                .ok()
                .and_then(|v| data_encoding::HEXLOWER_PERMISSIVE.decode(v.as_bytes()).ok())
                .and_then(|v| civic_node::BatchId::try_from(v).ok())
                .filter(|id| *id != [0; 16]);
            Some(id.ok_or_else(|| {
                Box::new(problem(
                    StatusCode::BAD_REQUEST,
                    "Bad batch id",
                    &format!("{BATCH_ID_HEADER} must be 32 hex digits, not all zero"),
                ))
            })?)
        }
    };
    Ok(Batch { owner, gzip, id })
}

/// Reads and drops a refused request's body (at most [`MAX_BATCH_BYTES`]),
/// so that the sender gets the answer rather than a broken connection,
/// without ever holding it.
async fn drain(body: axum::body::Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len();
        if seen > MAX_BATCH_BYTES {
            break;
        }
    }
}

/// Reads the body, at most [`MAX_BATCH_BYTES`].
async fn read_body(body: axum::body::Body) -> Result<axum::body::Bytes, Box<Response>> {
    axum::body::to_bytes(body, MAX_BATCH_BYTES)
        .await
        .map_err(|_| {
            Box::new(problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Batch too large",
                &format!(
                    "a batch is at most {} MiB as sent; send it in parts",
                    MAX_BATCH_BYTES >> 20
                ),
            ))
        })
}

/// A reader that fails once more than `left` bytes came through: a gzip
/// batch that unpacks to more than it may is refused, not cut short.
struct Limited<R> {
    inner: R,
    left: u64,
}

impl<R: std::io::Read> std::io::Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "it unpacks to more than {} MiB; send it in parts",
                    MAX_UNPACKED_BYTES >> 20
                ),
            )
        })?;
        Ok(n)
    }
}

fn reader(body: axum::body::Bytes, gzip: bool) -> Box<dyn std::io::BufRead> {
    if gzip {
        Box::new(std::io::BufReader::new(Limited {
            inner: flate2::read::MultiGzDecoder::new(std::io::Cursor::new(body)),
            left: MAX_UNPACKED_BYTES,
        }))
    } else {
        Box::new(std::io::Cursor::new(body))
    }
}

/// The answer to a store error: the sender's fault (400), a passing state
/// (503, try again), or the node's.
fn store_problem(e: civic_node::StoreError, what: &str) -> Box<Response> {
    Box::new(match e {
        // The body is in memory: a read error is a bad gzip stream.
        civic_node::StoreError::Csv(_) => problem(
            StatusCode::BAD_REQUEST,
            &format!("Bad {what}"),
            &e.to_string(),
        ),
        civic_node::StoreError::Busy(why) => {
            let mut r = problem(StatusCode::SERVICE_UNAVAILABLE, "Busy", &why);
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            r
        }
        other => {
            tracing::error!(error = %other, what, "ingest");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not kept",
                &format!("the node could not keep the {what}; nothing of it was kept; try again"),
            )
        }
    })
}

fn json(value: &impl serde::Serialize) -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(value).expect("json"),
    )
        .into_response()
}

fn failed() -> Response {
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Failed",
        "the node failed; nothing was acknowledged; try again",
    )
}

/// Takes a batch: its headers checked and its body read, then `work` run
/// with them on the node, off the async workers; `work`'s report, or
/// the answer to give.
async fn take_batch<T: serde::Serialize + Send + 'static>(
    ingest: &Ingest,
    headers: &HeaderMap,
    body: axum::body::Body,
    work: impl FnOnce(&mut crate::Node, Batch, axum::body::Bytes) -> Result<T, Box<Response>>
        + Send
        + 'static,
) -> Result<T, Response> {
    let batch = match admit(ingest, headers) {
        Ok(b) => b,
        Err(r) => {
            drain(body).await;
            return Err(*r);
        }
    };
    let body = read_body(body).await.map_err(|r| *r)?;
    let node = ingest.node.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut node = node.lock().unwrap_or_else(|e| e.into_inner());
        work(&mut node, batch, body)
    })
    .await;
    match done {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(problem)) => Err(*problem),
        Err(_) => Err(failed()),
    }
}

pub(crate) async fn add_places(
    State(ingest): State<Ingest>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let done = take_batch(&ingest, &headers, body, move |node, batch, body| {
        let report = node
            .store
            .add_places("the places", reader(body, batch.gzip))
            .map_err(|e| store_problem(e, "places"))?;
        tracing::info!(from = %batch.owner, places = report.towers_added, "places added");
        Ok(serde_json::json!({
            "added": report.towers_added,
            "places": node.store.towers().len(),
        }))
    })
    .await;
    match done {
        Ok(report) => json(&report),
        Err(r) => r,
    }
}

pub(crate) async fn append(
    State(ingest): State<Ingest>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let done = take_batch(&ingest, &headers, body, move |node, batch, body| {
        let report = node
            .store
            .append_csv("the batch", reader(body, batch.gzip), batch.id)
            .map_err(|e| store_problem(e, "batch"))?;
        tracing::info!(
            from = %batch.owner,
            events = report.appended,
            duplicate = report.duplicate,
            "batch appended"
        );
        Ok(report)
    })
    .await;
    match done {
        Ok(report) => {
            if report.tail >= COMPACT_AT {
                // After the answer: the batch is durable in the log already.
                let node = ingest.node.clone();
                tokio::task::spawn_blocking(move || {
                    let mut node = node.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(e) = node.store.compact() {
                        tracing::error!(error = %e, "compaction; tried again at the next batch");
                    }
                });
            }
            json(&report)
        }
        Err(r) => r,
    }
}
