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

/// What a holder sent: whose token, whether gzip.
struct Batch {
    token: String,
    gzip: bool,
}

fn batch(headers: &HeaderMap) -> Result<Batch, Box<Response>> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
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
    Ok(Batch { token, gzip })
}

/// The name of the holder system whose token came with the batch, or the
/// problem to answer.
fn authenticate(data_dir: &Path, token: &str) -> Result<String, Box<Response>> {
    if token.is_empty() {
        return Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "send the holder's ingest token as Authorization: Bearer …",
        )));
    }
    token_owner(data_dir, token).ok_or_else(|| {
        Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the ingest token is not one this node issued",
        ))
    })
}

pub(crate) async fn add_places(
    State(node): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Batch { token, gzip } = match batch(&headers) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let done = tokio::task::spawn_blocking(move || {
        let mut node = node.lock().unwrap_or_else(|e| e.into_inner());
        let owner = authenticate(&node.config.data_dir, &token)?;
        // The store imports places from a file, all or nothing.
        let path = node.config.data_dir.join("exchange").join(if gzip {
            "incoming-places.csv.gz"
        } else {
            "incoming-places.csv"
        });
        let shown = path.display().to_string();
        std::fs::write(&path, &body).map_err(|e| {
            tracing::error!(error = %e, "writing incoming places");
            Box::new(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not kept",
                "the node could not keep the places; nothing was kept; try again",
            ))
        })?;
        let imported = node.store.import(
            Some(&path),
            &[],
            std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        );
        let _ = std::fs::remove_file(&path);
        let report = imported.map_err(|e| match e {
            civic_node::StoreError::Csv(_) => Box::new(problem(
                StatusCode::BAD_REQUEST,
                "Bad places",
                &e.to_string().replace(&shown, "the places"),
            )),
            other => {
                tracing::error!(error = %other, "adding places");
                Box::new(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Not kept",
                    "the node could not keep the places; nothing was kept; try again",
                ))
            }
        })?;
        tracing::info!(from = %owner, places = report.towers_added, "places added");
        Ok::<_, Box<Response>>(serde_json::json!({
            "added": report.towers_added,
            "places": node.store.towers().len(),
        }))
    })
    .await;
    match done {
        Ok(Ok(report)) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&report).expect("json"),
        )
            .into_response(),
        Ok(Err(problem)) => *problem,
        Err(_) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed",
            "the node failed; nothing was acknowledged; try again",
        ),
    }
}

pub(crate) async fn append(
    State(node): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Batch { token, gzip } = match batch(&headers) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let node = node.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut node = node.lock().unwrap_or_else(|e| e.into_inner());
        let owner = authenticate(&node.config.data_dir, &token)?;
        let reader: Box<dyn std::io::BufRead> = if gzip {
            Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
                std::io::Cursor::new(body),
            )))
        } else {
            Box::new(std::io::Cursor::new(body))
        };
        let report = node
            .store
            .append_csv("the batch", reader)
            .map_err(|e| match e {
                civic_node::StoreError::Csv(civic_node::csv::CsvError::Bad { .. }) => {
                    problem(StatusCode::BAD_REQUEST, "Bad batch", &e.to_string())
                }
                other => {
                    tracing::error!(error = %other, "appending a batch");
                    problem(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Not kept",
                        "the node could not keep the batch; nothing of it was kept; try again",
                    )
                }
            })?;
        tracing::info!(from = %owner, events = report.appended, "batch appended");
        if report.tail >= COMPACT_AT {
            if let Err(e) = node.store.compact() {
                // The batch is durable in the log; compaction is tried again
                // at the next batch.
                tracing::error!(error = %e, "compaction");
            }
        }
        Ok::<_, Box<Response>>(report)
    })
    .await;
    match done {
        Ok(Ok(report)) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&report).expect("json"),
        )
            .into_response(),
        Ok(Err(problem)) => *problem,
        Err(_) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed",
            "the node failed; nothing of the batch was acknowledged; try again",
        ),
    }
}
