//! What travels between hub and node over HTTP.
//!
//! A request is one JSON [`Message`]: the hub's envelope and its body. An
//! answer streams, so that neither side holds a large one whole: its first
//! line is the node's envelope (JSON), and every further line is an
//! [`AnswerPart`] (newline-delimited JSON) — a window's holders or a
//! subject's records, at most [`PART_LIMIT`] of them a line. The
//! envelope's body digest covers every byte after the first line break,
//! so the answer is confirmed once it has arrived whole
//! ([`AnswerReader::finish`]); parts seen before are provisional.

use crate::envelope::Envelope;
use serde::{Deserialize, Serialize};

/// A request or an answer: the signed envelope and the body it covers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub envelope: Envelope,
    /// The body as the envelope's digest covers it.
    pub body: String,
    /// The sender's signed message-log head, for the other side to keep as
    /// a witness of the sender's log (the hub sends its own with each
    /// request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_head: Option<crate::log::LogHead>,
}

/// A holder present in an exposure window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Subscriber or card id.
    pub holder: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub events: u32,
    /// Seconds the holder was seen inside the window: from the first to
    /// the last event there (0 for a single event).
    pub overlap_s: i64,
}

impl Seen {
    pub fn new(holder: u64, first_seen: i64, last_seen: i64, events: u32) -> Self {
        Self {
            holder,
            first_seen,
            last_seen,
            events,
            overlap_s: last_seen - first_seen,
        }
    }
}

/// The answer to one window of an exposure question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowAnswer {
    pub window: usize,
    pub holders: Vec<Seen>,
}

/// One data subject's own records over the grant's period, in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteAnswer {
    pub holder: u64,
    /// `(ts, place id)`: tower, merchant or station.
    pub events: Vec<(i64, u64)>,
    /// Where the places of `events` are (towers, merchants and stations
    /// are not personal data; the hub needs them to place the route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub places: Vec<PlaceInfo>,
}

/// A tower, merchant or station: its id, position and (merchants,
/// stations) name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceInfo {
    pub id: u64,
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Where the hub asks a node to delete what it answered for a purpose that
/// has ended (an envelope signed by the hub; body [`PurgeRequest`]).
pub const PURGE_PATH: &str = "/node/v1/purge";

/// The hub's request to delete kept answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurgeRequest {
    /// What ended, for the record (e.g. `response:3`).
    pub purpose: String,
    pub request_ids: Vec<String>,
}

/// The node's signed receipt of a purge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurgeReceipt {
    pub purpose: String,
    pub node: String,
    /// Requests whose kept answer was deleted, with its size in bytes.
    pub deleted: Vec<(String, u64)>,
    /// Requests of which the node kept nothing (never asked, or purged
    /// before).
    pub absent: Vec<String>,
    pub at: i64,
}

/// A node's answer to a grant's question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "answers", rename_all = "snake_case")]
pub enum Answer {
    Exposure(Vec<WindowAnswer>),
    Routes(Vec<RouteAnswer>),
}

/// The path nodes answer on.
pub const REQUESTS_PATH: &str = "/node/v1/requests";

/// Where a MyData holder issues credentials: the request's body is a
/// [`CredentialBatch`] (each grant a [`crate::Question::Credential`] for one
/// consent, admitted by the holder's gate on its own), the reply one signed
/// [`Message`] whose body is a [`CredentialReplies`], in the same order.
pub const CREDENTIALS_PATH: &str = "/node/v1/mydata/credentials";

/// At most this many grants in one [`CredentialBatch`].
pub const MAX_CREDENTIAL_BATCH: usize = 1000;

/// Credentials asked of a holder together (one round trip, one envelope,
/// one write of the holder's logs for many consents).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialBatch {
    pub grants: Vec<crate::SignedGrant>,
}

/// A holder's answer to a [`CredentialBatch`], one result a grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialReplies {
    pub results: Vec<CredentialReply>,
}

/// What the holder did with one grant of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialReply {
    Issued(IssuedPackage),
    /// The gate refused the grant or the holder cannot issue (no such
    /// record, no such item): the reason.
    Refused(String),
}

/// Where a MyData holder revokes credentials under a
/// [`crate::Question::Revocation`] grant; the reply's body is a
/// [`StatusListReply`].
pub const REVOCATIONS_PATH: &str = "/node/v1/mydata/revocations";

/// Where a MyData holder gives a citizen's records under a
/// [`crate::Question::Portability`] grant; the reply's body is a
/// [`PortabilityReply`].
pub const PORTABILITY_PATH: &str = "/node/v1/mydata/portability";

/// Where a MyData holder gives its current signed status list (a
/// [`StatusListReply`], not personal data: no grant needed).
pub const STATUS_LIST_PATH: &str = "/node/v1/mydata/status-list";

/// A credential as a holder issued it, encrypted to the using agency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedPackage {
    /// The SD-JWT VC, as a compact JWE to the agency's key
    /// (`cty` = `dc+sd-jwt`).
    pub credential: String,
    /// For a provided document: the rendered document and the holder's
    /// signature over it (a JWE to the agency's key, `cty` = `json`).
    pub document: Option<String>,
    /// The credential's entry in the holder's status list.
    pub status_index: u64,
    pub status_uri: String,
    /// The items it discloses.
    pub items: Vec<String>,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// How long a holder's signed status list is valid; the hub fetches a
/// fresh one when the kept one is past half of it.
pub const STATUS_LIST_TTL_SECONDS: i64 = 24 * 3600;

/// A holder's signed status list (`statuslist+jwt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusListReply {
    pub uri: String,
    pub token: String,
}

/// One record a MyData holder keeps of a citizen: a document or a
/// dataset, its items and their values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HolderRecord {
    pub subject: String,
    /// The catalogue entry's code.
    pub entry: String,
    pub title: String,
    pub items: serde_json::Map<String, serde_json::Value>,
}

/// Everything a holder keeps of one citizen, and each record as an
/// unencrypted SD-JWT VC for the citizen himself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortabilityReply {
    pub records: Vec<HolderRecord>,
    pub credentials: Vec<String>,
}

/// Where a node gives the signed head of its message log, for the hub to
/// keep as a witness.
pub const LOG_HEAD_PATH: &str = "/node/v1/log-head";

/// Holders or records one line of a streamed answer carries at most.
pub const PART_LIMIT: usize = 4096;

/// The longest line a reader accepts (a part of [`PART_LIMIT`] entries
/// takes well under 1 MiB).
pub const MAX_LINE_BYTES: usize = 8 << 20;

/// One line of a streamed answer. A window or a subject with more than
/// [`PART_LIMIT`] entries takes several consecutive lines; one with none
/// takes one empty line, so every window and subject is named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "snake_case")]
pub enum AnswerPart {
    Window {
        window: usize,
        holders: Vec<Seen>,
    },
    Route {
        holder: u64,
        events: Vec<(i64, u64)>,
    },
    /// The places of a subject's route, after its events.
    RoutePlaces {
        holder: u64,
        places: Vec<PlaceInfo>,
    },
}

/// `items` in lines of at most [`PART_LIMIT`], one empty line for none.
fn chunked<T>(items: Vec<T>, make: impl Fn(Vec<T>) -> AnswerPart) -> Vec<AnswerPart> {
    if items.is_empty() {
        return vec![make(items)];
    }
    let mut items = items.into_iter().peekable();
    let mut out = Vec::new();
    while items.peek().is_some() {
        out.push(make(items.by_ref().take(PART_LIMIT).collect()));
    }
    out
}

impl AnswerPart {
    /// The lines one window's holders stream in.
    pub fn window(window: usize, holders: Vec<Seen>) -> Vec<AnswerPart> {
        chunked(holders, |holders| AnswerPart::Window { window, holders })
    }

    /// The lines one subject's records stream in.
    pub fn route(holder: u64, events: Vec<(i64, u64)>) -> Vec<AnswerPart> {
        chunked(events, |events| AnswerPart::Route { holder, events })
    }
}

impl Answer {
    /// The answer as the lines it streams in.
    pub fn parts(&self) -> Vec<AnswerPart> {
        match self {
            Answer::Exposure(windows) => windows
                .iter()
                .flat_map(|w| AnswerPart::window(w.window, w.holders.clone()))
                .collect(),
            Answer::Routes(routes) => routes
                .iter()
                .flat_map(|r| {
                    let mut parts = AnswerPart::route(r.holder, r.events.clone());
                    if !r.places.is_empty() {
                        parts.push(AnswerPart::RoutePlaces {
                            holder: r.holder,
                            places: r.places.clone(),
                        });
                    }
                    parts
                })
                .collect(),
        }
    }

    /// Gathers streamed parts back into an answer (consecutive parts of
    /// one window or subject are joined).
    pub fn from_parts(parts: impl IntoIterator<Item = AnswerPart>) -> Result<Answer, WireError> {
        let mut windows: Vec<WindowAnswer> = Vec::new();
        let mut routes: Vec<RouteAnswer> = Vec::new();
        for part in parts {
            match part {
                AnswerPart::Window { window, holders } => match windows.last_mut() {
                    Some(w) if w.window == window => w.holders.extend(holders),
                    _ => windows.push(WindowAnswer { window, holders }),
                },
                AnswerPart::Route { holder, events } => match routes.last_mut() {
                    Some(r) if r.holder == holder => r.events.extend(events),
                    _ => routes.push(RouteAnswer {
                        holder,
                        events,
                        places: Vec::new(),
                    }),
                },
                AnswerPart::RoutePlaces { holder, places } => match routes.last_mut() {
                    Some(r) if r.holder == holder => r.places.extend(places),
                    _ => routes.push(RouteAnswer {
                        holder,
                        events: Vec::new(),
                        places,
                    }),
                },
            }
        }
        match (windows.is_empty(), routes.is_empty()) {
            (_, true) => Ok(Answer::Exposure(windows)),
            (true, false) => Ok(Answer::Routes(routes)),
            (false, false) => Err(WireError::Malformed(
                "an answer mixes windows and routes".into(),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the answer is malformed: {0}")]
    Malformed(String),
    #[error("the answer ended before its envelope")]
    NoEnvelope,
}

/// Reads a streamed answer as its bytes arrive: the envelope first, then
/// one part a line, hashing the body for the envelope's digest.
#[derive(Default)]
pub struct AnswerReader {
    envelope: Option<Envelope>,
    envelope_line: Vec<u8>,
    pending: Vec<u8>,
    hasher: sha2::Sha256,
    parts: usize,
}

impl AnswerReader {
    /// The node's envelope, once its line has arrived.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }

    /// The envelope's line as it travelled (what a message log keeps of an
    /// answer: it commits to the body by its digest).
    pub fn envelope_line(&self) -> &[u8] {
        &self.envelope_line
    }

    /// Parts read so far.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Takes the next bytes; calls `on_part` for each whole line.
    pub fn push(
        &mut self,
        bytes: &[u8],
        mut on_part: impl FnMut(AnswerPart),
    ) -> Result<(), WireError> {
        use sha2::Digest;
        let mut rest = bytes;
        if self.envelope.is_none() {
            let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
                self.pending.extend_from_slice(rest);
                return self.check_line();
            };
            self.pending.extend_from_slice(&rest[..nl]);
            let envelope = serde_json::from_slice(&self.pending)
                .map_err(|e| WireError::Malformed(format!("envelope: {e}")))?;
            self.envelope = Some(envelope);
            self.envelope_line = std::mem::take(&mut self.pending);
            rest = &rest[nl + 1..];
        }
        self.hasher.update(rest);
        for &b in rest {
            if b == b'\n' {
                let part = serde_json::from_slice(&self.pending)
                    .map_err(|e| WireError::Malformed(format!("part {}: {e}", self.parts)))?;
                self.parts += 1;
                on_part(part);
                self.pending.clear();
            } else {
                self.pending.push(b);
            }
        }
        self.check_line()
    }

    fn check_line(&self) -> Result<(), WireError> {
        if self.pending.len() > MAX_LINE_BYTES {
            return Err(WireError::Malformed(format!(
                "a line is longer than {} MiB",
                MAX_LINE_BYTES >> 20
            )));
        }
        Ok(())
    }

    /// The envelope and the hex SHA-256 of the body, once it has ended.
    pub fn finish(self) -> Result<(Envelope, String), WireError> {
        use sha2::Digest;
        let envelope = self.envelope.ok_or(WireError::NoEnvelope)?;
        if !self.pending.is_empty() {
            return Err(WireError::Malformed("the last part is cut".into()));
        }
        Ok((
            envelope,
            data_encoding::HEXLOWER.encode(&self.hasher.finalize()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_streams_in_parts_of_any_split_and_reassembles() {
        let answer = Answer::Exposure(vec![
            WindowAnswer {
                window: 0,
                holders: (0..PART_LIMIT as u64 * 2 + 3)
                    .map(|h| Seen::new(h, 10, 70, 2))
                    .collect(),
            },
            WindowAnswer {
                window: 1,
                holders: Vec::new(),
            },
        ]);
        let parts = answer.parts();
        assert_eq!(parts.len(), 4);
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let mut body = Vec::new();
        for p in &parts {
            body.extend(serde_json::to_vec(p).unwrap());
            body.push(b'\n');
        }
        let envelope = Envelope::seal("r-1", &key, 100, &body, None);
        let mut stream = serde_json::to_vec(&envelope).unwrap();
        stream.push(b'\n');
        stream.extend(&body);
        for split in [1, 7, 100, stream.len()] {
            let mut reader = AnswerReader::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(split) {
                reader.push(chunk, |p| got.push(p)).unwrap();
            }
            let (env, digest) = reader.finish().unwrap();
            env.open_digest(&key.verifying_key(), &digest, 100).unwrap();
            assert_eq!(Answer::from_parts(got).unwrap(), answer);
        }
        // A cut stream does not finish.
        let mut reader = AnswerReader::default();
        reader.push(&stream[..stream.len() - 5], |_| {}).unwrap();
        assert!(reader.finish().is_err());
    }
}
