//! An agency's request, and the citizen's answer to it: who is party to a
//! transfer, the consent (with its data key) or the refusal, decided in
//! batches.

use super::*;

impl MyData {
    /// An agency asks a citizen for items under its approved agreement.
    pub async fn request_transfer(&self, ctx: &Ctx, req: TransferRequest) -> Result<TransferView> {
        let mut entry = self
            .authorize(
                ctx,
                Action::MydataTransfers,
                "mydata.transfer.request",
                "mydata-transfer",
            )
            .await?;
        let principal = ctx
            .principal()
            .ok_or_else(|| HubError::BadRequest("a transfer is asked for by an agency".into()))?;
        let subject = Subject::parse(&req.subject)?;
        entry.subject = Some(self.citizen_tag(subject.as_str()));
        let Some(agreement) = self
            .store
            .agreement(req.agreement_id)
            .await?
            .filter(|a| a.agency == principal.institution)
        else {
            let err = HubError::NotFound(format!("agreement {}", req.agreement_id));
            return Err(self.refuse(entry, "no agreement of the agency", err).await);
        };
        if agreement.status != civic_core::mydata::AgreementStatus::Approved {
            let err = HubError::Conflict(format!(
                "agreement {} is {}, not approved: no transfer may use it",
                agreement.id, agreement.status
            ));
            return Err(self
                .refuse(entry, "the agreement is not approved", err)
                .await);
        }
        let allowed = &agreement.items;
        let asked: BTreeSet<&str> = req.items.iter().map(String::as_str).collect();
        if asked.is_empty() || asked.len() != req.items.len() {
            return Err(invalid("items", "must name each item once, at least one"));
        }
        if let Some(outside) = asked.iter().find(|n| !allowed.iter().any(|a| a == *n)) {
            let err = invalid(
                "items",
                format!("{outside} is not in agreement {}", agreement.id),
            );
            return Err(self
                .refuse(entry, "an item outside the agreement", err)
                .await);
        }
        let offer =
            self.store.offer(agreement.offer).await?.ok_or_else(|| {
                HubError::NotFound(format!("catalogue entry {}", agreement.offer))
            })?;
        if offer.kind == "document" && asked.len() != allowed.len() {
            return Err(invalid(
                "items",
                "a provided document is sent whole: ask for all its items",
            ));
        }
        let key: civic_credentials::Jwk = serde_json::from_value(req.recipient_key.clone())
            .map_err(|_| invalid("recipient_key", "must be an OKP JWK"))?;
        if key.crv != "X25519" || key.public_key().is_none() {
            return Err(invalid(
                "recipient_key",
                "must be an X25519 public key (OKP JWK)",
            ));
        }
        // The holder must be able to answer before the citizen is asked.
        self.records_node(offer.holder).await?;
        let transfer = self
            .store
            .create_transfer(
                NewTransfer {
                    agreement: agreement.id,
                    offer: offer.id,
                    agency: agreement.agency,
                    holder: offer.holder,
                    subject: subject.as_str().to_owned(),
                    subject_tag: self.citizen_tag(subject.as_str()),
                    items: req.items.clone(),
                    service: agreement.service.clone(),
                    purpose: agreement.purpose.clone(),
                    legal_basis: agreement.legal_basis.clone(),
                    retention_days: agreement.retention_days,
                    recipient_key: serde_json::to_string(&key).expect("a JWK serialises"),
                    created_by: principal.user,
                },
                entry,
            )
            .await?;
        self.transfer_view(&transfer, Vec::new()).await
    }

    /// Who the caller is to a transfer, once the policy allows `action`
    /// (the citizen's own decisions, an agency's steps, or a read by
    /// either): the citizen himself, the agency, or an institution party
    /// to it (agency or holder). Storage finds the transfer only for a
    /// party to it.
    pub(super) async fn party(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TransferId,
        action: &str,
        by: By,
    ) -> Result<(Party, AuditEntry)> {
        let policy = match by {
            By::Citizen => Action::MydataCitizen,
            By::Agency => Action::MydataTransfers,
            By::Either => Action::ReadMydataTransfers,
        };
        let (permit, entry) = self
            .authorize_with_permit(ctx, policy, action, &format!("mydata-transfer:{id}"))
            .await?;
        // The capacity the policy permitted it in.
        let citizen = permit.duty == Some(DutyKind::Citizen);
        let institution = || {
            ctx.principal().map(|p| p.institution).ok_or_else(|| {
                HubError::BadRequest("a transfer is handled by a signed-in user".into())
            })
        };
        let party = match (by, citizen) {
            (By::Citizen, _) | (By::Either, true) => {
                Party::Subject(Self::citizen_subject(ctx)?.as_str().to_owned())
            }
            (By::Agency, _) => Party::Agency(institution()?),
            (By::Either, false) => Party::Institution(institution()?),
        };
        Ok((party, entry))
    }

    /// A storage refusal because the caller is no party to the transfer
    /// (it is "not found") is itself recorded on the ledger.
    pub(super) async fn as_party<T>(
        &self,
        result: civic_store::Result<T>,
        entry: AuditEntry,
    ) -> Result<T> {
        match result {
            Err(civic_store::StoreError::NotFound(what)) => Err(self
                .refuse(entry, "no party to the transfer", HubError::NotFound(what))
                .await),
            other => Ok(other?),
        }
    }

    /// The transfer and its credentials, for a party to it taking `by`'s
    /// step `action` (`fetched`: the agency takes the packages); anyone
    /// else finds nothing, which is recorded as a refusal.
    pub(super) async fn found(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TransferId,
        action: &str,
        by: By,
        fetched: bool,
    ) -> Result<(Transfer, Vec<Delivery>)> {
        let (party, entry) = self.party(ctx, id, action, by).await?;
        let read = self
            .store
            .deliveries(id, &party, fetched, entry.clone())
            .await;
        self.as_party(read, entry).await
    }

    /// One transfer, with its deliveries.
    pub async fn transfer(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TransferId,
    ) -> Result<TransferView> {
        let (t, deliveries) = self
            .found(ctx, id, "mydata.transfer.read", By::Either, false)
            .await?;
        self.transfer_view(&t, deliveries).await
    }

    pub(super) fn tagged(&self, mut entry: AuditEntry, subject: &str) -> AuditEntry {
        entry.subject = Some(self.citizen_tag(subject));
        entry
    }

    /// The caller's transfers: a citizen's own, an agency's or a holder's.
    pub async fn transfers(&self, ctx: &Ctx) -> Result<Vec<TransferView>> {
        let principal = ctx.principal().ok_or_else(|| {
            HubError::BadRequest("transfers are listed for a signed-in user".into())
        })?;
        let (permit, entry) = self
            .authorize_with_permit(
                ctx,
                Action::ReadMydataTransfers,
                "mydata.transfer.list",
                "mydata-transfer",
            )
            .await?;
        let (filter, entry) = if permit.duty == Some(DutyKind::Citizen) {
            let subject = Self::citizen_subject(ctx)?;
            let entry = self.tagged(entry, subject.as_str());
            (TransferFilter::Subject(subject.as_str().to_owned()), entry)
        } else {
            let kind = principal.institution_kind;
            if kind == civic_core::identity::InstitutionKind::UsingAgency {
                (TransferFilter::Agency(principal.institution), entry)
            } else {
                (TransferFilter::Holder(principal.institution), entry)
            }
        };
        let transfers = self.store.transfers_where(filter, entry).await?;
        // Entries and institutions once, not once a row.
        let offers: std::collections::HashMap<civic_core::mydata::OfferId, crate::store::Offer> =
            self.store
                .offers()
                .await?
                .into_iter()
                .map(|o| (o.id, o))
                .collect();
        let names = self.institution_names().await?;
        transfers
            .iter()
            .map(|t| {
                let offer = offers
                    .get(&t.offer)
                    .ok_or_else(|| HubError::NotFound(format!("catalogue entry {}", t.offer)))?;
                view_of(
                    t,
                    Vec::new(),
                    offer,
                    names.named(t.agency),
                    names.named(t.holder),
                )
            })
            .collect()
    }

    /// The citizen consents; the holder issues at once. Returns the
    /// transfer as it stands after the holder answered.
    pub async fn consent_transfer(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TransferId,
        req: ConsentRequest,
    ) -> Result<TransferView> {
        let (party, entry) = self
            .party(ctx, id, "mydata.transfer.consent", By::Citizen)
            .await?;
        let mode = ConsentMode::from_name(&req.mode)
            .ok_or_else(|| invalid("mode", "must be once or periodic"))?;
        let (until, interval) = match mode {
            ConsentMode::Once => (None, None),
            ConsentMode::Periodic => {
                let raw = req
                    .until
                    .as_deref()
                    .ok_or_else(|| invalid("until", "a periodic consent needs its last day"))?;
                let day = time::Date::parse(
                    raw,
                    time::macros::format_description!("[year]-[month]-[day]"),
                )
                .map_err(|_| invalid("until", "must be YYYY-MM-DD"))?;
                let end = day.with_hms(23, 59, 59).expect("a valid time").assume_utc();
                let end = Timestamp::from_micros(end.unix_timestamp() * 1_000_000);
                // How long the agreement lets the agency keep it bounds the
                // consent (a read of the transfer, audited).
                let (t, _) = self
                    .as_party(
                        self.store
                            .deliveries(id, &party, false, entry.clone())
                            .await,
                        entry.clone(),
                    )
                    .await?;
                let max = (now_s() + t.retention_days.max(1) * 86_400) * 1_000_000;
                if end.micros() <= Timestamp::now().micros() || end.micros() > max {
                    return Err(invalid(
                        "until",
                        format!(
                            "must be a day from today to {} days on (the agreement's retention)",
                            t.retention_days
                        ),
                    ));
                }
                let every = req.interval_days.unwrap_or(30);
                if !(1..=366).contains(&every) {
                    return Err(invalid("interval_days", "must be 1-366"));
                }
                (Some(end), Some(every))
            }
        };
        let key = {
            use rand::RngCore;
            let mut k = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            k
        };
        let sealed_key = self.keys().seal(&key_context(id), &key);
        let decision = TransferDecision::Consent {
            mode,
            until,
            interval_days: interval,
            sealed_key,
        };
        let decided = self.decide(id, party, decision, entry.clone()).await;
        let t = self.as_party(decided, entry).await?;
        self.state.events.notify_one();
        // The consent stands once recorded: if the holder's node cannot
        // be reached now, the retry loop asks it again.
        match self.deliver(ctx, t.clone()).await {
            Ok(view) => Ok(view),
            Err(e) => {
                tracing::warn!(transfer = id.0, error = %e, "delivery left for the retry loop");
                self.transfer_view(&t, Vec::new()).await
            }
        }
    }

    /// The citizen refuses.
    pub async fn refuse_transfer(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TransferId,
        req: RefusalRequest,
    ) -> Result<TransferView> {
        let (party, entry) = self
            .party(ctx, id, "mydata.transfer.refuse", By::Citizen)
            .await?;
        let reason = req
            .reason
            .map(|r| civic_core::error::parse_text("reason", &r, 500))
            .transpose()?;
        let decided = self
            .decide(
                id,
                party,
                TransferDecision::Refuse { reason },
                entry.clone(),
            )
            .await;
        let t = self.as_party(decided, entry).await?;
        self.state.events.notify_one();
        self.transfer_view(&t, Vec::new()).await
    }

    /// The consent's data key, opened; `gone` says why there is none (the
    /// consent was refused, withdrawn or failed: the key is destroyed).
    pub(super) fn consent_key(
        &self,
        t: &Transfer,
        gone: impl FnOnce() -> String,
    ) -> Result<[u8; 32]> {
        let sealed = t
            .consent_key
            .as_deref()
            .ok_or_else(|| HubError::Conflict(gone()))?;
        self.keys()
            .open(&key_context(t.id), sealed)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| {
                HubError::Store(civic_store::StoreError::Corrupt(format!(
                    "transfer {}: consent key",
                    t.id
                )))
            })
    }

    /// A citizen's answer, written in a batch with whatever other answers
    /// arrive meanwhile.
    pub(super) async fn decide(
        &self,
        id: civic_core::mydata::TransferId,
        party: Party,
        decision: TransferDecision,
        audit: AuditEntry,
    ) -> civic_store::Result<Transfer> {
        let op = DecisionOp {
            id,
            party,
            decision,
            audit,
        };
        self.in_batch(&self.state.decisions, op, |store, ops| async move {
            store.decide_transfers(ops).await
        })
        .await
    }

    /// Runs `op` in `group`'s next batch, which `write` (a storage batch
    /// method) writes in one transaction.
    pub(super) async fn in_batch<I, T, W, F>(
        &self,
        group: &Arc<Group<I, civic_store::Result<T>>>,
        op: I,
        write: W,
    ) -> civic_store::Result<T>
    where
        I: Send + 'static,
        T: Send + 'static,
        W: Fn(civic_store::Store, Vec<I>) -> F + Copy + Send + Sync + 'static,
        F: std::future::Future<Output = civic_store::Result<Vec<civic_store::Result<T>>>>
            + Send
            + 'static,
    {
        let store = self.store.clone();
        group
            .run(op, move |ops| {
                let store = store.clone();
                async move {
                    let n = ops.len();
                    StoreError::each(write(store, ops).await, n)
                }
            })
            .await
            .unwrap_or_else(|| Err(StoreError::unanswered()))
    }
}
