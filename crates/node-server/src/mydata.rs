//! A MyData holder's node (`kind = "records"`): the administrative records
//! a ministry or public institution keeps of its citizens, and the
//! credentials it issues from them.
//!
//! It answers the hub only (mutual TLS, the hub's envelope), and only under
//! a grant its own gate admits: the hub's endorsement and the citizen's
//! consent. A credential holds exactly the items the grant names, is
//! signed with this node's Ed25519 key as an SD-JWT VC (RFC 9901) with an
//! entry in this node's status list, and is encrypted to the using agency's
//! key from the grant, so the hub relays it without being able to read
//! it. A revocation sets the entries' bits and returns the newly signed
//! list.
//!
//! Durability: every message (received and sent, the hash-chained
//! `exchange/messages.jsonl`) and every issuance and revocation
//! (`mydata/state.jsonl`, from which the status list, the next index and
//! the used grants are rebuilt at start) is on disk before the reply
//! leaves. Concurrent requests share fsyncs (a group commit), so the disk
//! does not bound throughput at one request per sync.
//!
//! It never logs a record's values or a subject.

use crate::{now, refusal_body, Peer};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use civic_credentials::{Issuer, Jwk, StatusList};
use civic_exchange::wire::{
    CredentialBatch, CredentialReplies, CredentialReply, HolderRecord, IssuedPackage, Message,
    PortabilityReply, StatusListReply, MAX_CREDENTIAL_BATCH,
};
use civic_exchange::{Direction, Envelope, MessageLog, NodeGate, Question};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// How many credentials one status list holds.
pub const STATUS_LIST_LEN: u64 = 1 << 20;

use civic_exchange::wire::STATUS_LIST_TTL_SECONDS as STATUS_TTL_SECONDS;

/// The records file a holder's systems write: one [`HolderRecord`] a line.
pub const RECORDS_FILE: &str = "records.jsonl";

/// An append-only file of lines whose writers wait until their line is on
/// disk, sharing one fsync with every writer that came meanwhile.
pub(crate) struct GroupLog {
    path: PathBuf,
    state: Mutex<GroupState>,
    synced: Condvar,
}

struct GroupState {
    file: std::fs::File,
    pending: Vec<u8>,
    appended: u64,
    durable: u64,
    flushing: bool,
    /// A write failed: what was queued is lost, so nothing after it may
    /// be called durable until the node restarts.
    broken: bool,
}

impl GroupLog {
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(GroupState {
                file,
                pending: Vec::new(),
                appended: 0,
                durable: 0,
                flushing: false,
                broken: false,
            }),
            synced: Condvar::new(),
        })
    }

    /// Queues a line; returns its ticket for [`GroupLog::wait`].
    pub(crate) fn append(&self, line: &[u8]) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.pending.extend_from_slice(line);
        s.pending.push(b'\n');
        s.appended += 1;
        s.appended
    }

    /// Returns once the line of `ticket` (and every one before it) is
    /// synced. One waiter writes and syncs everything queued; the others
    /// wait for it.
    pub(crate) fn wait(&self, ticket: u64) -> std::io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if s.durable >= ticket {
                return Ok(());
            }
            if s.broken {
                return Err(std::io::Error::other(format!(
                    "{}: an earlier write failed",
                    self.path.display()
                )));
            }
            if s.flushing {
                s = self.synced.wait(s).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            s.flushing = true;
            let batch = std::mem::take(&mut s.pending);
            let upto = s.appended;
            let file = s.file.try_clone();
            drop(s);
            let written = file.and_then(|mut f| {
                f.write_all(&batch)?;
                f.sync_data()
            });
            s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.flushing = false;
            self.synced.notify_all();
            match written {
                Ok(()) => s.durable = upto,
                Err(e) => {
                    s.broken = true;
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("{}: {e}", self.path.display()),
                    ));
                }
            }
        }
    }
}

/// One line of `mydata/state.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StateLine {
    Issued {
        grant: String,
        request: String,
        index: u64,
        at: i64,
        /// The grant's expiry (absent in lines written before it was
        /// kept): after it, the gate need not remember the grant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<i64>,
    },
    Revoked {
        grant: String,
        request: String,
        indices: Vec<u64>,
        at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<i64>,
    },
    Exported {
        grant: String,
        request: String,
        at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<i64>,
    },
}

impl StateLine {
    /// The grant it used: (grant, request, expiry).
    fn grant(&self) -> (&str, &str, Option<i64>) {
        match self {
            Self::Issued {
                grant,
                request,
                expires,
                ..
            }
            | Self::Revoked {
                grant,
                request,
                expires,
                ..
            }
            | Self::Exported {
                grant,
                request,
                expires,
                ..
            } => (grant, request, *expires),
        }
    }
}

struct Status {
    list: StatusList,
    next: u64,
    /// The entry each grant's credential took, while the grant could still
    /// be used (until its expiry): a request sent again after its reply
    /// was lost gets its credential again under the same entry, not a
    /// second credential.
    by_grant: HashMap<String, (u64, i64)>,
}

impl Status {
    /// The entry of the credential issued under `grant`, taking the next
    /// one if none was.
    fn entry_for(&mut self, grant: &str, expires: i64, now: i64) -> Option<u64> {
        if let Some(&(index, _)) = self.by_grant.get(grant) {
            return Some(index);
        }
        if self.next >= STATUS_LIST_LEN {
            return None;
        }
        if self.by_grant.len() >= 10_000 {
            self.by_grant.retain(|_, (_, until)| *until >= now);
        }
        let index = self.next;
        self.next += 1;
        self.by_grant.insert(grant.to_owned(), (index, expires));
        Some(index)
    }
}

pub(crate) struct RecordsNode {
    hub_name: String,
    hub_key: VerifyingKey,
    key: SigningKey,
    issuer: Issuer,
    status_uri: String,
    records: HashMap<(String, String), HolderRecord>,
    by_subject: HashMap<String, Vec<(String, String)>>,
    gate: Mutex<NodeGate>,
    status: Mutex<Status>,
    log: Mutex<MessageLog>,
    messages: GroupLog,
    state: GroupLog,
}

pub(crate) type SharedRecords = Arc<RecordsNode>;

/// Reads a holder's records file; a bad line is an error naming it.
pub fn load_records(path: &Path) -> Result<Vec<HolderRecord>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

pub(crate) struct Setup {
    pub hub_name: String,
    pub hub_key: VerifyingKey,
    pub key: SigningKey,
    pub issuer_url: String,
    pub gate: NodeGate,
    pub data_dir: PathBuf,
}

impl RecordsNode {
    pub(crate) fn open(setup: Setup) -> Result<Self, crate::NodeError> {
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |e| crate::NodeError::Io(p, e)
        };
        let dir = setup.data_dir.join("mydata");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let exchange = setup.data_dir.join("exchange");
        std::fs::create_dir_all(&exchange).map_err(io(&exchange))?;
        let mut records = HashMap::new();
        let mut by_subject: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in
            load_records(&setup.data_dir.join(RECORDS_FILE)).map_err(crate::NodeError::Config)?
        {
            let key = (r.subject.clone(), r.entry.clone());
            by_subject
                .entry(r.subject.clone())
                .or_default()
                .push(key.clone());
            records.insert(key, r);
        }
        // The status list, the next index and the used grants, from what
        // this node did before.
        let state_path = dir.join("state.jsonl");
        let mut gate = setup.gate;
        let mut status = Status {
            list: StatusList::new(STATUS_LIST_LEN),
            next: 0,
            by_grant: HashMap::new(),
        };
        let text = match std::fs::read_to_string(&state_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(&state_path)(e)),
        };
        let started = now();
        for (i, line) in text.lines().enumerate() {
            // A torn last line was never acknowledged.
            let Ok(parsed) = serde_json::from_str::<StateLine>(line) else {
                if i + 1 == text.lines().count() {
                    break;
                }
                return Err(crate::NodeError::Config(format!(
                    "{} line {} is damaged",
                    state_path.display(),
                    i + 1
                )));
            };
            // The grants that could still be replayed (all of them, for
            // lines that do not say when theirs expired).
            let (grant, request, expires) = parsed.grant();
            gate.restore_use(
                grant.to_owned(),
                request.to_owned(),
                expires.unwrap_or(i64::MAX),
                started,
            );
            match parsed {
                StateLine::Issued {
                    index,
                    grant,
                    expires,
                    ..
                } => {
                    status.next = status.next.max(index + 1);
                    let until = expires.unwrap_or(i64::MAX);
                    if until >= started {
                        status.by_grant.insert(grant, (index, until));
                    }
                }
                StateLine::Revoked { indices, .. } => {
                    for idx in indices {
                        let _ = status.list.revoke(idx);
                    }
                }
                StateLine::Exported { .. } => {}
            }
        }
        let messages_path = exchange.join("messages.jsonl");
        let entries = std::fs::read_to_string(&messages_path)
            .unwrap_or_default()
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| crate::NodeError::Config(format!("messages.jsonl: {e}")))?;
        let status_uri = format!("{}/status-list", setup.issuer_url.trim_end_matches('/'));
        Ok(Self {
            hub_name: setup.hub_name,
            hub_key: setup.hub_key,
            issuer: Issuer::new(setup.key.clone(), setup.issuer_url),
            key: setup.key,
            status_uri,
            records,
            by_subject,
            gate: Mutex::new(gate),
            status: Mutex::new(status),
            log: Mutex::new(MessageLog::from_entries(entries)),
            messages: GroupLog::open(&messages_path).map_err(io(&messages_path))?,
            state: GroupLog::open(&state_path).map_err(io(&state_path))?,
        })
    }

    /// Appends a message to the hash-chained log; returns its ticket.
    fn log(&self, direction: Direction, request_id: &str, message: &[u8]) -> u64 {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let entry = log.append(now(), direction, request_id, &self.hub_name, message);
        let line = serde_json::to_vec(entry).expect("an entry serialises");
        // Queued while the chain is locked, so the file keeps its order.
        self.messages.append(&line)
    }

    fn status_token(&self) -> StatusListReply {
        let token = {
            let status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            status
                .list
                .to_token(&self.issuer, &self.status_uri, now(), STATUS_TTL_SECONDS)
        };
        StatusListReply {
            uri: self.status_uri.clone(),
            token,
        }
    }

    /// Opens, checks and answers one enveloped request to `path`'s
    /// handler, logging both ways; the reply is a signed message. What
    /// the answer did (its state lines) is on disk before the reply
    /// leaves.
    fn handle(&self, peer: Option<String>, raw: &[u8], answer: Answer) -> Response {
        let Ok(message) = serde_json::from_slice::<Message>(raw) else {
            return crate::refuse(
                StatusCode::BAD_REQUEST,
                "expected {\"envelope\": …, \"body\": \"…\"}",
            );
        };
        if peer.as_deref() != Some(self.hub_name.as_str()) {
            return crate::refuse(StatusCode::FORBIDDEN, "only the hub may ask this node");
        }
        let envelope = &message.envelope;
        if let Err(e) = envelope.open(&self.hub_key, message.body.as_bytes(), now()) {
            return crate::refuse(StatusCode::UNAUTHORIZED, e);
        }
        let request_id = envelope.request_id.clone();
        let received = self.log(Direction::Received, &request_id, raw);
        let (status, reply, state_ticket) = match answer(self, &message, &request_id) {
            Ok((body, lines)) => {
                let body = body.to_string();
                let reply = Message {
                    envelope: Envelope::seal(&request_id, &self.key, now(), body.as_bytes(), None),
                    body,
                    log_head: None,
                };
                let ticket = lines.iter().fold(None, |_, line| {
                    let line = serde_json::to_vec(line).expect("a state line serialises");
                    Some(self.state.append(&line))
                });
                (
                    StatusCode::OK,
                    serde_json::to_vec(&reply).expect("a message serialises"),
                    ticket,
                )
            }
            Err(Refused(status, reason)) => (status, refusal_body(reason), None),
        };
        let sent = self.log(Direction::Sent, &request_id, &reply);
        let durable = self
            .messages
            .wait(received.max(sent))
            .and_then(|()| state_ticket.map_or(Ok(()), |t| self.state.wait(t)));
        if let Err(e) = durable {
            tracing::error!(error = %e, "the node's logs");
            return crate::refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node cannot log; try again",
            );
        }
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            reply,
        )
            .into_response()
    }

    /// The gate's verdict on `grant`, used by `request_id`.
    fn admit(
        &self,
        grant: Option<&civic_exchange::SignedGrant>,
        request_id: &str,
        body: &str,
    ) -> Result<civic_exchange::Admitted, Refused> {
        let grant = grant.ok_or_else(|| Refused::forbidden("the request carries no grant"))?;
        self.gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit_request(grant, request_id, now(), body)
            .map_err(|r| Refused(StatusCode::FORBIDDEN, r.to_string()))
    }

    /// Issues a credential for each grant of a [`CredentialBatch`], each
    /// admitted on its own (as request `REQUEST#i`, so that the same
    /// batch sent again is a retry, not a replay); one refused grant does
    /// not stop the others.
    fn issue_all(&self, message: &Message, request_id: &str) -> Answered {
        let batch: CredentialBatch = serde_json::from_str(&message.body).map_err(|_| {
            Refused(
                StatusCode::BAD_REQUEST,
                "the body is not {\"grants\": […]}".into(),
            )
        })?;
        if batch.grants.is_empty() || batch.grants.len() > MAX_CREDENTIAL_BATCH {
            return Err(Refused(
                StatusCode::BAD_REQUEST,
                format!("a batch holds 1 to {MAX_CREDENTIAL_BATCH} grants"),
            ));
        }
        let mut results = Vec::with_capacity(batch.grants.len());
        let mut lines = Vec::with_capacity(batch.grants.len());
        for (i, grant) in batch.grants.iter().enumerate() {
            let id = format!("{request_id}#{i}");
            match self
                .admit(Some(grant), &id, "")
                .and_then(|admitted| self.issue(&admitted, &id))
            {
                Ok((package, line)) => {
                    results.push(CredentialReply::Issued(package));
                    lines.push(line);
                }
                Err(Refused(_, reason)) => results.push(CredentialReply::Refused(reason)),
            }
        }
        let replies = CredentialReplies { results };
        Ok((
            serde_json::to_value(replies).expect("replies serialise"),
            lines,
        ))
    }

    fn revoke_one(&self, message: &Message, request_id: &str) -> Answered {
        let admitted = self.admit(message.envelope.grant.as_ref(), request_id, &message.body)?;
        let (reply, line) = self.revoke(&admitted, request_id)?;
        Ok((reply, vec![line]))
    }

    fn export_one(&self, message: &Message, request_id: &str) -> Answered {
        let admitted = self.admit(message.envelope.grant.as_ref(), request_id, &message.body)?;
        let (reply, line) = self.export(&admitted, request_id)?;
        Ok((reply, vec![line]))
    }

    fn issue(
        &self,
        admitted: &civic_exchange::Admitted,
        request_id: &str,
    ) -> Result<(IssuedPackage, StateLine), Refused> {
        let g = &admitted.grant;
        let Question::Credential(q) = &g.question else {
            return Err(Refused::forbidden("this grant is not for a credential"));
        };
        let record = self
            .records
            .get(&(q.subject.clone(), q.entry.clone()))
            .ok_or_else(|| {
                Refused(
                    StatusCode::NOT_FOUND,
                    "this holder keeps no such record of the citizen".into(),
                )
            })?;
        let mut items = Vec::with_capacity(q.items.len());
        for name in &q.items {
            let value = record.items.get(name).ok_or_else(|| {
                Refused(
                    StatusCode::NOT_FOUND,
                    format!("the record has no item {name:?}"),
                )
            })?;
            items.push((name.clone(), value.clone()));
        }
        let recipient: Jwk = serde_json::from_value(q.recipient_key.clone())
            .map_err(|_| Refused::forbidden("the agency's key is not an OKP JWK"))?;
        let index = {
            let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            status
                .entry_for(&g.grant_id, g.expires_at, now())
                .ok_or_else(|| {
                    Refused(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the status list is full".into(),
                    )
                })?
        };
        let issued_at = now();
        let mut plain = Map::new();
        plain.insert("sub".into(), q.subject.clone().into());
        plain.insert("entry".into(), q.entry.clone().into());
        plain.insert("recipient".into(), q.recipient.clone().into());
        plain.insert("purpose".into(), g.purpose.clone().into());
        plain.insert("legal_basis".into(), g.legal_basis.clone().into());
        if let Some(consent) = &g.consent_id {
            plain.insert("consent".into(), consent.clone().into());
        }
        let vct = format!("urn:civic:mydata:{}", q.entry);
        let issued = self
            .issuer
            .issue(
                &vct,
                plain,
                &items,
                issued_at,
                q.credential_expires_at,
                Some((&self.status_uri, index)),
            )
            .map_err(|e| Refused::forbidden(&e))?;
        let seal = |plaintext: &[u8], cty: &str| {
            civic_credentials::jwe::encrypt(plaintext, &recipient, cty)
                .map_err(|e| Refused::forbidden(&format!("the agency's key: {e}")))
        };
        let credential = seal(issued.compact.as_bytes(), civic_credentials::sdjwt::TYP)?;
        let document = if q.document {
            let html = render_document(record, &items, issued_at);
            let signature = self.issuer.sign_jws(
                DOCUMENT_SIGNATURE_TYP,
                &json!({
                    "iss": self.issuer.iss,
                    "iat": issued_at,
                    "entry": q.entry,
                    "sub": q.subject,
                    "html_sha256": civic_credentials::sdjwt::digest(&html),
                }),
            );
            let doc = json!({"media_type": "text/html", "html": html, "signature": signature});
            Some(seal(doc.to_string().as_bytes(), "json")?)
        } else {
            None
        };
        let package = IssuedPackage {
            credential,
            document,
            status_index: index,
            status_uri: self.status_uri.clone(),
            items: issued.items,
            issued_at,
            expires_at: q.credential_expires_at,
        };
        Ok((
            package,
            StateLine::Issued {
                grant: g.grant_id.clone(),
                request: request_id.to_owned(),
                index,
                at: issued_at,
                expires: Some(g.expires_at),
            },
        ))
    }

    fn revoke(
        &self,
        admitted: &civic_exchange::Admitted,
        request_id: &str,
    ) -> Result<(Value, StateLine), Refused> {
        let g = &admitted.grant;
        let Question::Revocation { status_indices } = &g.question else {
            return Err(Refused::forbidden("this grant is not for a revocation"));
        };
        {
            let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            if status_indices.iter().any(|&i| i >= status.next) {
                return Err(Refused::forbidden("no credential has that index"));
            }
            for &i in status_indices {
                let _ = status.list.revoke(i);
            }
        }
        Ok((
            serde_json::to_value(self.status_token()).expect("a reply serialises"),
            StateLine::Revoked {
                grant: g.grant_id.clone(),
                request: request_id.to_owned(),
                indices: status_indices.clone(),
                at: now(),
                expires: Some(g.expires_at),
            },
        ))
    }

    fn export(
        &self,
        admitted: &civic_exchange::Admitted,
        request_id: &str,
    ) -> Result<(Value, StateLine), Refused> {
        let g = &admitted.grant;
        let Question::Portability { subject } = &g.question else {
            return Err(Refused::forbidden("this grant is not for portability"));
        };
        let mut records: Vec<HolderRecord> = self
            .by_subject
            .get(subject)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| self.records.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default();
        records.sort_by(|a, b| a.entry.cmp(&b.entry));
        let at = now();
        let mut credentials = Vec::with_capacity(records.len());
        for r in &records {
            let mut plain = Map::new();
            plain.insert("sub".into(), r.subject.clone().into());
            plain.insert("entry".into(), r.entry.clone().into());
            plain.insert("purpose".into(), "data portability".into());
            let items: Vec<(String, Value)> = r
                .items
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let issued = self
                .issuer
                .issue(
                    &format!("urn:civic:mydata:{}", r.entry),
                    plain,
                    &items,
                    at,
                    at + 365 * 86_400,
                    None,
                )
                .map_err(|e| Refused::forbidden(&e))?;
            credentials.push(issued.compact);
        }
        Ok((
            serde_json::to_value(PortabilityReply {
                records,
                credentials,
            })
            .expect("a reply serialises"),
            StateLine::Exported {
                grant: g.grant_id.clone(),
                request: request_id.to_owned(),
                at,
                expires: Some(g.expires_at),
            },
        ))
    }
}

/// The `typ` of a holder's signature over a rendered document.
pub const DOCUMENT_SIGNATURE_TYP: &str = "civic-document+jwt";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A provided document as a plain, self-contained HTML page of the
/// consented items.
fn render_document(record: &HolderRecord, items: &[(String, Value)], at: i64) -> String {
    let mut rows = String::new();
    for (name, value) in items {
        let shown = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        rows.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            escape(name),
            escape(&shown)
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"ko\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n<table>\n{rows}</table>\n<p>Issued at {at} (Unix time) by the holding institution's node; \
         the attached signature covers these bytes.</p></body></html>\n",
        title = escape(&record.title),
    )
}

/// How a request of one kind is answered: the reply's body and the line
/// the node keeps of it.
/// A reply's body and what the node did (its state lines).
type Answered = Result<(Value, Vec<StateLine>), Refused>;

type Answer = fn(&RecordsNode, &Message, &str) -> Answered;

/// A refusal: its status and reason.
pub(crate) struct Refused(StatusCode, String);

impl Refused {
    fn forbidden(reason: &str) -> Self {
        Self(StatusCode::FORBIDDEN, reason.to_owned())
    }
}

async fn blocking(
    node: SharedRecords,
    peer: Peer,
    body: axum::body::Bytes,
    answer: Answer,
) -> Response {
    let handled = tokio::task::spawn_blocking(move || node.handle(peer.0, &body, answer)).await;
    handled.unwrap_or_else(|_| {
        crate::refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the node failed; try again",
        )
    })
}

pub(crate) async fn credentials(
    State(node): State<SharedRecords>,
    Extension(peer): Extension<Peer>,
    body: axum::body::Bytes,
) -> Response {
    blocking(node, peer, body, RecordsNode::issue_all).await
}

pub(crate) async fn revocations(
    State(node): State<SharedRecords>,
    Extension(peer): Extension<Peer>,
    body: axum::body::Bytes,
) -> Response {
    blocking(node, peer, body, RecordsNode::revoke_one).await
}

pub(crate) async fn portability(
    State(node): State<SharedRecords>,
    Extension(peer): Extension<Peer>,
    body: axum::body::Bytes,
) -> Response {
    blocking(node, peer, body, RecordsNode::export_one).await
}

pub(crate) async fn status_list(
    State(node): State<SharedRecords>,
    Extension(peer): Extension<Peer>,
) -> Response {
    if peer.0.as_deref() != Some(node.hub_name.as_str()) {
        return crate::refuse(StatusCode::FORBIDDEN, "only the hub may ask this node");
    }
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&node.status_token()).expect("a reply serialises"),
    )
        .into_response()
}

pub(crate) async fn log_head(
    State(node): State<SharedRecords>,
    Extension(peer): Extension<Peer>,
) -> Response {
    if peer.0.as_deref() != Some(node.hub_name.as_str()) {
        return crate::refuse(StatusCode::FORBIDDEN, "only the hub may ask this node");
    }
    let head = node
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .head(&node.key);
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&head).expect("a head serialises"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_asked_again_gets_its_first_status_entry() {
        let mut status = Status {
            list: StatusList::new(STATUS_LIST_LEN),
            next: 0,
            by_grant: HashMap::new(),
        };
        let a = status.entry_for("grant-a", 100, 10).unwrap();
        let b = status.entry_for("grant-b", 100, 10).unwrap();
        assert_eq!((a, b), (0, 1));
        // The reply to grant-a was lost and the hub asks again.
        assert_eq!(status.entry_for("grant-a", 100, 20), Some(0));
        assert_eq!(status.next, 2);
        // A full list takes no new grant, but still answers a known one.
        status.next = STATUS_LIST_LEN;
        assert_eq!(status.entry_for("grant-c", 100, 20), None);
        assert_eq!(status.entry_for("grant-b", 100, 20), Some(1));
    }
}
