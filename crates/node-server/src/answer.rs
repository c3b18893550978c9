//! How a node answers: a granted request checked by its gate, answered
//! from its event store (or its records) and streamed signed, kept for a
//! retry, logged; and the purge of a closed response's data.

use crate::*;

impl Node {
    pub(crate) fn dir(&self) -> PathBuf {
        self.config.data_dir.join("exchange")
    }

    /// Where an answer's `envelope` or `body` is kept.
    pub(crate) fn answer_path(&self, request_id: &str, part: &str) -> PathBuf {
        let safe: String = data_encoding::HEXLOWER.encode(request_id.as_bytes());
        self.dir().join("answers").join(format!("{safe}.{part}"))
    }

    /// Keeps a signed head of the hub's message log that came with its
    /// request, as a witness of the hub's log (`exchange/hub-heads.jsonl`).
    pub(crate) fn keep_hub_head(&self, head: &civic_exchange::LogHead) {
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

    pub(crate) fn append_log(
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

    pub(crate) fn handle(&mut self, peer: Option<String>, raw: &[u8]) -> Handled {
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
    pub(crate) fn answer(
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
    pub(crate) fn write_body(
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
    pub(crate) fn purge(&mut self, peer: Option<String>, raw: &[u8]) -> Response {
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
