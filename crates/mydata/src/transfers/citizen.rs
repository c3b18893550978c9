//! What the citizen and verifiers see: the holders' keys and status
//! lists, a credential checked, his accesses, consent receipts and the
//! portability download.

use super::*;

impl MyData {
    /// A records node's public keys (JWK set), for verifiers.
    pub async fn issuer_jwks(&self, node: &str) -> Result<civic_credentials::JwkSet> {
        let (_, key) = self.records_node_named(node).await?;
        Ok(civic_credentials::JwkSet {
            keys: vec![civic_credentials::Jwk::ed25519(&key)],
        })
    }

    /// A records node's signed status list, fetched again from the node
    /// when the kept one is past half its life.
    pub async fn issuer_status_list(&self, node: &str) -> Result<StatusListReply> {
        let (url, _) = self.records_node_named(node).await?;
        let kept = self.store.status_list(node).await?;
        let fresh_for = civic_exchange::wire::STATUS_LIST_TTL_SECONDS / 2 * 1_000_000;
        if let Some((uri, token, at)) = &kept {
            if Timestamp::now().micros() - at.micros() < fresh_for {
                return Ok(StatusListReply {
                    uri: uri.clone(),
                    token: token.clone(),
                });
            }
        }
        match self
            .mydata_client()?
            .get_json::<StatusListReply>(&url, STATUS_LIST_PATH)
            .await
        {
            Ok(list) => {
                self.store
                    .save_status_list(node, &list.uri, &list.token)
                    .await?;
                Ok(list)
            }
            // An older list still within its life serves while the node
            // is away.
            Err(e) => kept
                .map(|(uri, token, _)| StatusListReply { uri, token })
                .ok_or_else(|| exchange_error(e)),
        }
    }

    /// Checks a credential as an agency would: the issuer's key, the
    /// signature, the expiry and its entry in the issuer's status list.
    pub async fn verify_credential(&self, ctx: &Ctx, req: VerifyRequest) -> Result<VerifyView> {
        self.authorize(
            ctx,
            Action::MydataTransfers,
            "mydata.credential.verify",
            "mydata-credential",
        )
        .await?;
        let fail = |error: String| VerifyView {
            valid: false,
            error: Some(error),
            issuer: None,
            revoked: None,
            claims: Value::Null,
        };
        // The issuer is named in the payload; its keys are the hub's to
        // give, so the issuer is looked up, never fetched from the URL.
        let payload = req
            .credential
            .split('~')
            .next()
            .and_then(|jws| jws.split('.').nth(1))
            .and_then(|p| data_encoding::BASE64URL_NOPAD.decode(p.as_bytes()).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let Some(iss) = payload.as_ref().and_then(|p| p["iss"].as_str()) else {
            return Ok(fail("not an SD-JWT VC with an issuer".into()));
        };
        // The hub's own address may differ from the one a credential was
        // issued under (a demo on another port): the path names the
        // holder, and its key decides.
        let Some(node) = iss
            .rsplit('/')
            .next()
            .filter(|n| iss.ends_with(&format!("/api/v1/mydata/issuers/{n}")))
        else {
            return Ok(fail(format!("{iss} is not an issuer of this hub")));
        };
        let keys = match self.issuer_jwks(node).await {
            Ok(k) => k,
            Err(_) => return Ok(fail(format!("{iss} is not an issuer of this hub"))),
        };
        let verified = match civic_credentials::sdjwt::verify(&req.credential, &keys, now_s()) {
            Ok(v) => v,
            Err(e) => return Ok(fail(e.to_string())),
        };
        let mut revoked = None;
        if let Some((uri, idx)) = verified.status() {
            let list = self.issuer_status_list(node).await?;
            if list.uri != uri {
                return Ok(fail("the status list is not the issuer's".into()));
            }
            match civic_credentials::status::is_revoked(&list.token, &keys, &uri, idx, now_s()) {
                Ok(r) => revoked = Some(r),
                Err(e) => return Ok(fail(e.to_string())),
            }
        }
        let valid = revoked != Some(true);
        Ok(VerifyView {
            valid,
            error: (!valid).then(|| "the credential was revoked".to_owned()),
            issuer: Some(iss.to_owned()),
            revoked,
            claims: Value::Object(verified.claims),
        })
    }

    /// Every access to the citizen's data recorded in the ledger, newest
    /// first (his own included).
    pub async fn my_accesses(&self, ctx: &Ctx) -> Result<Vec<AccessView>> {
        let entry = self
            .authorize(
                ctx,
                Action::MydataCitizen,
                "mydata.accesses.read",
                "mydata-accesses",
            )
            .await?;
        let subject = Self::citizen_subject(ctx)?;
        let tag = self.citizen_tag(subject.as_str());
        let records = self
            .store
            .search_audit(
                AuditQuery {
                    subject: Some(tag.clone()),
                    limit: AuditQuery::MAX_LIMIT,
                    ..Default::default()
                },
                self.tagged(entry, subject.as_str()),
            )
            .await?;
        let names = self.institution_names().await?;
        Ok(records
            .into_iter()
            .map(|r| AccessView {
                seq: r.seq,
                at: rfc3339(r.entry.at),
                who: r.entry.actor_name.clone(),
                institution: r
                    .entry
                    .institution
                    .and_then(|i| names.name(i).map(str::to_owned)),
                action: r.entry.action.clone(),
                resource: r.entry.resource.clone(),
                purpose: r.entry.purpose.clone(),
                outcome: format!("{:?}", r.entry.outcome).to_lowercase(),
            })
            .collect())
    }

    /// A transfer's consent receipt, in the structure of ISO/IEC TS 27560
    /// (consent record information structure).
    pub async fn consent_receipt(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TransferId,
    ) -> Result<Value> {
        let view = self.transfer(ctx, id).await?;
        Ok(consent_record(&view, &self.public_url()))
    }

    /// Everything every holding institution keeps of the citizen, asked of
    /// each holder's node under a portability grant.
    pub async fn my_data(&self, ctx: &Ctx) -> Result<Value> {
        let entry = self
            .authorize(
                ctx,
                Action::MydataCitizen,
                "mydata.portability.export",
                "mydata-portability",
            )
            .await?;
        let subject = Self::citizen_subject(ctx)?;
        let mut holders = Vec::new();
        let nodes: Vec<_> = self
            .store
            .nodes()
            .await?
            .into_iter()
            .filter(|n| n.route.as_ref().is_some_and(|r| r.kind == "records"))
            .collect();
        for node in nodes {
            let key = civic_hub::nodes::node_key(&node)?;
            let url = node
                .route
                .as_ref()
                .map(|r| r.url.clone())
                .unwrap_or_default();
            let holder = self.institution_ref(node.institution).await?;
            let signed = mydata_grant(
                self.keys(),
                "the citizen".into(),
                holder.name.clone(),
                "Personal Information Protection Act, art. 35-2 (right to transmission)".into(),
                format!("mydata-portability:{}", random_id("p")),
                Question::Portability {
                    subject: subject.as_str().to_owned(),
                },
            );
            let reply: PortabilityReply = self
                .ask_holder(
                    &url,
                    PORTABILITY_PATH,
                    &key,
                    "{}",
                    Some(signed),
                    "the holder's records",
                )
                .await?;
            if !reply.records.is_empty() {
                holders.push(json!({
                    "institution": holder,
                    "issuer": self.issuer_url(&node.name),
                    "records": reply.records,
                    "credentials": reply.credentials,
                }));
            }
        }
        // The download itself is an access to his data.
        self.store
            .append_audit(self.tagged(entry, subject.as_str()))
            .await?;
        Ok(json!({
            "subject": subject.as_str(),
            "exported_at": rfc3339(Timestamp::now()),
            "holders": holders,
        }))
    }
}

/// The citizen's data as CSV: one row an item.
pub fn portability_csv(export: &Value) -> String {
    let mut out = String::from("\u{feff}holder,entry,title,item,value\r\n");
    let cell = |s: &str| {
        let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}")
        } else {
            s.to_owned()
        };
        format!("\"{}\"", s.replace('"', "\"\""))
    };
    for h in export["holders"].as_array().into_iter().flatten() {
        let holder = h["institution"]["name"].as_str().unwrap_or_default();
        for r in h["records"].as_array().into_iter().flatten() {
            for (name, value) in r["items"].as_object().into_iter().flatten() {
                let value = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.push_str(&format!(
                    "{},{},{},{},{}\r\n",
                    cell(holder),
                    cell(r["entry"].as_str().unwrap_or_default()),
                    cell(r["title"].as_str().unwrap_or_default()),
                    cell(name),
                    cell(&value)
                ));
            }
        }
    }
    out
}

/// A consent record in the structure of ISO/IEC TS 27560:2023 (its
/// information elements, in the JSON names the DPV community's guide to
/// it uses).
pub(super) fn consent_record(t: &TransferView, hub: &str) -> Value {
    let state = match t.state {
        TransferState::AwaitingConsent => "requested",
        TransferState::Refused => "refused",
        TransferState::Withdrawn => "withdrawn",
        TransferState::Consented | TransferState::Delivered | TransferState::Failed => "given",
    };
    let mut events = vec![
        json!({"event_time": t.created_at, "event_type": "requested", "event_by": t.agency.name}),
    ];
    if let Some(at) = &t.decided_at {
        events.push(json!({
            "event_time": at,
            "event_type": if t.state == TransferState::Refused { "refused" } else { "given" },
            "event_by": "data subject",
        }));
    }
    if let Some(at) = &t.withdrawn_at {
        events
            .push(json!({"event_time": at, "event_type": "withdrawn", "event_by": "data subject"}));
    }
    json!({
        "schema_version": "ISO/IEC TS 27560:2023",
        "record_id": format!("urn:civic:consent:{}", t.id),
        "pii_principal_id": t.subject,
        "consent_status": state,
        "notice": {
            "notice_id": format!("{hub}/api/v1/mydata/transfers/{}", t.id),
            "notice_text": format!(
                "{} asks for {} ({}) from {} for the service {}: {}",
                t.agency.name, t.offer.title, t.items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", "),
                t.holder.name, t.service, t.purpose
            ),
        },
        "pii_controllers": [
            {"name": t.agency.name, "role": "recipient"},
            {"name": t.holder.name, "role": "source"},
        ],
        "purposes": [{
            "purpose": t.purpose,
            "service": t.service,
            "lawful_basis": t.legal_basis,
            "pii_categories": t.items.iter().map(|i| json!({"name": i.name, "description": i.description, "sensitivity": i.sensitivity})).collect::<Vec<_>>(),
            "processing": ["transmission", "storage"],
            "storage_duration_days": t.retention_days,
        }],
        "consent_type": "explicit",
        "duration": {
            "mode": t.mode,
            "until": t.consent_until,
            "interval_days": t.interval_days,
        },
        "jurisdiction": "KR",
        "events": events,
        "credentials": t.deliveries.iter().map(|d| json!({"status_list": d.status_uri, "index": d.status_index, "kept_by_hub": d.kept})).collect::<Vec<_>>(),
    })
}
