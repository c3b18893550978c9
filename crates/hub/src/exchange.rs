//! The hub's side of the exchange: asking a node a granted question.
//!
//! The hub proves itself to nodes with a certificate from its own CA
//! (`hub.civic`), signs each request in an envelope, and verifies the
//! node's signature on the answer with the key the node enrolled with. A
//! request id is fixed for the life of a request: every retry re-seals the
//! same request (a fresh timestamp, the same id, grant and body), which the
//! node recognises, so a retry never has a second effect. Connection
//! failures, timeouts and "try again" answers are retried with exponential
//! backoff until the deadline: a node that is down makes the request wait
//! and complete when it returns. A refusal is final.
//!
//! The hub's side of the message log is in its database
//! ([`civic_store::ExchangeLogStore`]): every attempt is logged as sent
//! before it leaves, and every answer or refusal as received; after an
//! answer the node's signed log head is fetched and kept as a witness of
//! the node's log.

use crate::nodes::HUB_NODE_NAME;
use crate::Hub;
use civic_exchange::trust::{client_config, new_request};
use civic_exchange::wire::{
    Answer, AnswerPart, AnswerReader, Message, PurgeReceipt, PurgeRequest, LOG_HEAD_PATH,
    PURGE_PATH, REQUESTS_PATH,
};
use civic_exchange::{message_digest, Direction, Envelope, LogHead, SignedGrant};
use civic_store::ExchangeLogStore;
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("the node refused: {0}")]
    Refused(String),
    #[error("the node did not answer within {0:?}: {1}")]
    Unreachable(Duration, String),
    #[error("the node's answer is not valid: {0}")]
    BadAnswer(String),
    #[error("cannot set up the hub's TLS identity: {0}")]
    Setup(String),
    #[error("cannot write the hub's message log: {0}")]
    Log(#[from] civic_store::StoreError),
}

/// A client for asking nodes.
pub struct NodeClient {
    http: reqwest::Client,
    key: SigningKey,
    store: civic_store::Store,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Hub {
    /// A client that presents the hub's certificate (issued by its CA) and
    /// trusts only nodes certified by it.
    pub fn node_client(&self) -> Result<NodeClient, ExchangeError> {
        let setup = |e: &dyn std::fmt::Display| ExchangeError::Setup(e.to_string());
        let ca = self.keys().ca();
        let (key_pem, csr) = new_request(HUB_NODE_NAME).map_err(|e| setup(&e))?;
        let issued = ca
            .sign_request(&csr, HUB_NODE_NAME)
            .map_err(|e| setup(&e))?;
        let tls =
            client_config(&issued.cert_pem, &key_pem, &issued.ca_pem).map_err(|e| setup(&e))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(5))
            // A silent node counts as down; a long answer may take longer
            // than any fixed total, so the limit is on silence.
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| setup(&e))?;
        Ok(NodeClient {
            http,
            key: self.keys().signing_key().clone(),
            store: self.store.clone(),
        })
    }
}

impl NodeClient {
    /// Asks the node at `url` (e.g. `https://node-skt.civic:9443`) the
    /// question of `grant`, as request `request_id`, retrying until
    /// `deadline` has passed, and returns the whole answer once it has
    /// arrived and verified.
    pub async fn ask(
        &self,
        url: &str,
        node_key: &VerifyingKey,
        grant: &SignedGrant,
        request_id: &str,
        deadline: Duration,
    ) -> Result<Answer, ExchangeError> {
        let mut parts = Vec::new();
        self.ask_streaming(url, node_key, grant, request_id, deadline, |p| {
            parts.push(p)
        })
        .await?;
        Answer::from_parts(parts).map_err(|e| ExchangeError::BadAnswer(e.to_string()))
    }

    /// Like [`NodeClient::ask`], handing each part of the answer to
    /// `on_part` as it arrives. Parts are provisional until this returns
    /// `Ok` (the node's signature covers the whole body); on an error the
    /// caller discards them. A stream cut by a lost connection is asked
    /// again, and the node's kept answer is the same byte for byte, so the
    /// parts already handed over are skipped, never repeated.
    pub async fn ask_streaming(
        &self,
        url: &str,
        node_key: &VerifyingKey,
        grant: &SignedGrant,
        request_id: &str,
        deadline: Duration,
        on_part: impl FnMut(AnswerPart),
    ) -> Result<(), ExchangeError> {
        self.ask_with_body(url, node_key, grant, request_id, "{}", deadline, on_part)
            .await
    }

    /// [`NodeClient::ask_streaming`] with a request body (the windows of a
    /// `Question::Windows` grant); every retry sends the same body.
    #[allow(clippy::too_many_arguments)]
    pub async fn ask_with_body(
        &self,
        url: &str,
        node_key: &VerifyingKey,
        grant: &SignedGrant,
        request_id: &str,
        body: &str,
        deadline: Duration,
        mut on_part: impl FnMut(AnswerPart),
    ) -> Result<(), ExchangeError> {
        let started = Instant::now();
        let peer = civic_exchange::key_id(node_key);
        let body = body.to_owned();
        let mut wait = Duration::from_millis(100);
        let mut attempt: u64 = 0;
        // Parts handed over, and the digest of the answer they came from.
        let mut delivered = 0usize;
        let mut first_digest: Option<String> = None;
        loop {
            attempt += 1;
            // The head of the hub's log so far, for the node to keep as a
            // witness of it.
            let log_head = self
                .store
                .latest_exchange()
                .await?
                .map(|last| LogHead::of(&last, &self.key));
            let outcome = self
                .post_logged(
                    url,
                    REQUESTS_PATH,
                    request_id,
                    &peer,
                    &body,
                    Some(grant.clone()),
                    log_head,
                )
                .await?;
            let retry_reason = match outcome {
                Ok(mut response) if response.status().is_success() => {
                    let mut reader = AnswerReader::default();
                    let mut seen = 0usize;
                    let mut bad: Option<ExchangeError> = None;
                    let mut cut: Option<String> = None;
                    loop {
                        match response.chunk().await {
                            Ok(Some(bytes)) => {
                                let pushed = reader.push(&bytes, |part| {
                                    seen += 1;
                                    if seen > delivered {
                                        delivered = seen;
                                        on_part(part);
                                    }
                                });
                                if let Err(e) = pushed {
                                    bad = Some(ExchangeError::BadAnswer(e.to_string()));
                                    break;
                                }
                                if let (Some(env), Some(first)) = (reader.envelope(), &first_digest)
                                {
                                    if &env.body_digest != first && delivered > 0 {
                                        bad = Some(ExchangeError::BadAnswer(
                                            "the node answered a retry differently".into(),
                                        ));
                                        break;
                                    }
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                cut = Some(format!("the answer was cut: {e}"));
                                break;
                            }
                        }
                    }
                    if let Some(e) = bad {
                        return Err(e);
                    }
                    // The answer the handed-over parts came from (its envelope
                    // came before any of them).
                    if delivered == 0 {
                        first_digest = reader.envelope().map(|e| e.body_digest.clone());
                    }
                    match cut {
                        Some(reason) => reason,
                        None => {
                            let envelope_line = reader.envelope_line().to_vec();
                            let (envelope, digest) = reader
                                .finish()
                                .map_err(|e| ExchangeError::BadAnswer(e.to_string()))?;
                            if envelope.request_id != request_id {
                                return Err(ExchangeError::BadAnswer(
                                    "the answer is for another request".into(),
                                ));
                            }
                            // The node's answer is kept and may be replayed
                            // after a retry: its age is no reason to refuse it.
                            envelope
                                .open_digest(node_key, &digest, envelope.timestamp)
                                .map_err(|e| ExchangeError::BadAnswer(e.to_string()))?;
                            self.log_received(request_id, &peer, &envelope_line).await?;
                            self.witness(url, node_key, &peer).await;
                            return Ok(());
                        }
                    }
                }
                Ok(response)
                    if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                        || response.status().is_server_error() =>
                {
                    let status = response.status();
                    let body = response.bytes().await.unwrap_or_default();
                    self.log_received(request_id, &peer, &body).await?;
                    format!("the node answered {status}")
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response.bytes().await.unwrap_or_default();
                    self.log_received(request_id, &peer, &body).await?;
                    let reason = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["refused"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| status.to_string());
                    return Err(ExchangeError::Refused(reason));
                }
                Err(e) => e.to_string(),
            };
            if started.elapsed() + wait > deadline {
                return Err(ExchangeError::Unreachable(
                    deadline,
                    format!("{attempt} attempts; last: {retry_reason}"),
                ));
            }
            // Jitter from the request id and attempt: spread, reproducible.
            let jitter =
                Duration::from_millis(civic_exchange::key_id_jitter(request_id, attempt) % 100);
            tokio::time::sleep(wait + jitter).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// Asks the node at `url` to delete the answers it kept for
    /// `request.request_ids`, as request `request_id` (a retry gets the
    /// first receipt), retrying until `deadline`; returns the node's
    /// receipt, its signature verified, and the signed message it came in
    /// (JSON, for anyone with the node's key to verify again).
    pub async fn purge(
        &self,
        url: &str,
        node_key: &VerifyingKey,
        request: &PurgeRequest,
        request_id: &str,
        deadline: Duration,
    ) -> Result<(PurgeReceipt, String), ExchangeError> {
        let body = serde_json::to_string(request).expect("a purge serialises");
        let (message, raw) = self
            .call(url, PURGE_PATH, node_key, &body, None, request_id, deadline)
            .await?;
        let receipt: PurgeReceipt = serde_json::from_str(&message.body)
            .map_err(|e| ExchangeError::BadAnswer(e.to_string()))?;
        Ok((receipt, raw))
    }

    /// Posts one signed request (with `grant`, if any) to `path` and
    /// returns the node's signed reply, its signature and request id
    /// checked, and the reply as it came (for anyone with the node's key
    /// to verify again). Retries as [`NodeClient::ask`] does, re-sealing
    /// the same request id; a refusal is final.
    #[allow(clippy::too_many_arguments)]
    pub async fn call(
        &self,
        url: &str,
        path: &str,
        node_key: &VerifyingKey,
        body: &str,
        grant: Option<SignedGrant>,
        request_id: &str,
        deadline: Duration,
    ) -> Result<(Message, String), ExchangeError> {
        let started = Instant::now();
        let peer = civic_exchange::key_id(node_key);
        let mut wait = Duration::from_millis(100);
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            let outcome = self
                .post_logged(url, path, request_id, &peer, body, grant.clone(), None)
                .await?;
            let retry_reason = match outcome {
                Ok(response) => {
                    let status = response.status();
                    let reply = response.bytes().await.unwrap_or_default();
                    self.log_received(request_id, &peer, &reply).await?;
                    if status.is_success() {
                        let message: Message = serde_json::from_slice(&reply)
                            .map_err(|e| ExchangeError::BadAnswer(e.to_string()))?;
                        message
                            .envelope
                            .open(
                                node_key,
                                message.body.as_bytes(),
                                message.envelope.timestamp,
                            )
                            .map_err(|e| ExchangeError::BadAnswer(e.to_string()))?;
                        if message.envelope.request_id != request_id {
                            return Err(ExchangeError::BadAnswer(
                                "the reply is for another request".into(),
                            ));
                        }
                        return Ok((message, String::from_utf8_lossy(&reply).into_owned()));
                    }
                    if !status.is_server_error() {
                        let reason = serde_json::from_slice::<serde_json::Value>(&reply)
                            .ok()
                            .and_then(|v| v["refused"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| status.to_string());
                        return Err(ExchangeError::Refused(reason));
                    }
                    format!("the node answered {status}")
                }
                Err(e) => e.to_string(),
            };
            if started.elapsed() + wait > deadline {
                return Err(ExchangeError::Unreachable(
                    deadline,
                    format!("{attempt} attempts; last: {retry_reason}"),
                ));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// A GET of `path` at the node (what needs no grant, such as a status
    /// list), parsed as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        path: &str,
    ) -> Result<T, ExchangeError> {
        let response = self
            .http
            .get(format!("{}{path}", url.trim_end_matches('/')))
            .send()
            .await
            .map_err(|e| ExchangeError::Unreachable(Duration::ZERO, e.to_string()))?;
        if !response.status().is_success() {
            return Err(ExchangeError::Refused(response.status().to_string()));
        }
        response
            .json()
            .await
            .map_err(|e| ExchangeError::BadAnswer(e.to_string()))
    }

    /// Seals `body` as request `request_id` (with its grant, and the head
    /// of the hub's log), logs it as sent — nothing leaves that the log
    /// lacks — and posts it to `path` at the node's `url`.
    #[allow(clippy::too_many_arguments)]
    async fn post_logged(
        &self,
        url: &str,
        path: &str,
        request_id: &str,
        peer: &str,
        body: &str,
        grant: Option<SignedGrant>,
        log_head: Option<LogHead>,
    ) -> Result<reqwest::Result<reqwest::Response>, ExchangeError> {
        let message = Message {
            envelope: Envelope::seal(request_id, &self.key, now(), body.as_bytes(), grant),
            body: body.to_owned(),
            log_head,
        };
        let bytes = serde_json::to_vec(&message).expect("a message serialises");
        self.store
            .log_exchange(
                now(),
                Direction::Sent,
                request_id,
                peer,
                message_digest(&bytes),
            )
            .await?;
        Ok(self
            .http
            .post(format!("{}{path}", url.trim_end_matches('/')))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes)
            .send()
            .await)
    }

    /// Logs what came back from the node for `request_id`.
    async fn log_received(
        &self,
        request_id: &str,
        peer: &str,
        message: &[u8],
    ) -> Result<(), ExchangeError> {
        self.store
            .log_exchange(
                now(),
                Direction::Received,
                request_id,
                peer,
                message_digest(message),
            )
            .await?;
        Ok(())
    }

    /// Fetches the node's signed log head and keeps it as a witness of
    /// the node's log. Best effort: an answer already verified stands
    /// without it, and the next answer brings a newer head.
    async fn witness(&self, url: &str, node_key: &VerifyingKey, peer: &str) {
        let fetched = async {
            let head: LogHead = self
                .http
                .get(format!("{}{LOG_HEAD_PATH}", url.trim_end_matches('/')))
                .send()
                .await
                .ok()?
                .error_for_status()
                .ok()?
                .json()
                .await
                .ok()?;
            head.verify(node_key).then_some(head)
        }
        .await;
        match fetched {
            Some(head) => {
                let kept = self
                    .store
                    .keep_node_log_head(peer, &head, civic_core::time::Timestamp::now())
                    .await;
                match kept {
                    Err(civic_store::StoreError::Conflict(why)) => {
                        // Evidence of a rewritten node log: loud, for the
                        // operators and auditors.
                        tracing::error!(node = %peer, %why, "a node's message log was rewritten");
                    }
                    Err(e) => tracing::warn!(error = %e, "keeping a node's log head"),
                    Ok(()) => {}
                }
            }
            None => tracing::warn!("a node gave no valid log head"),
        }
    }
}
