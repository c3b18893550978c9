//! The holder's credentials: asked for in batches under the consent's
//! grant, kept sealed, sent again under a periodic consent, fetched by the
//! agency.

use super::*;

impl MyData {
    /// Asks the holders again for the transfers consented more than
    /// `older_than` ago that they have not answered (their node was down);
    /// returns how many were delivered.
    pub async fn deliver_pending(&self, older_than: Duration) -> Result<usize> {
        let before =
            Timestamp::from_micros(Timestamp::now().micros() - older_than.as_micros() as i64);
        let op = Ctx::local_operator();
        // All at once: the deliveries go to each holder in batches.
        let tries = self.store.undelivered(before).await?.into_iter().map(|id| {
            let op = &op;
            async move {
                let entry = op.entry(
                    "mydata.transfer.read",
                    &format!("mydata-transfer:{id}"),
                    Outcome::Allowed,
                );
                let (t, _) = self.store.deliveries(id, &Party::Hub, false, entry).await?;
                match self.deliver(op, t).await {
                    Ok(_) => Ok(true),
                    // What can no longer be delivered (its agreement was
                    // superseded meanwhile) fails, and the agency is told;
                    // a node that is down is asked again next round.
                    Err(HubError::Conflict(why)) => {
                        let mut entry = op.entry(
                            "mydata.transfer.deliver",
                            &format!("mydata-transfer:{id}"),
                            Outcome::Failed,
                        );
                        entry.reason = Some("no longer deliverable".into());
                        self.store.fail_transfer(id, &why, entry).await?;
                        self.state.events.notify_one();
                        Ok(false)
                    }
                    Err(e) => {
                        tracing::warn!(transfer = id.0, error = %e, "delivery still pending");
                        Ok::<bool, HubError>(false)
                    }
                }
            }
        });
        let mut n = 0;
        for delivered in futures_util::future::join_all(tries).await {
            n += usize::from(delivered?);
        }
        Ok(n)
    }

    /// Asks the holder's node for a credential under the transfer's live
    /// consent and keeps it sealed. A refusal by the holder fails the
    /// transfer (the agency is told); a node that cannot be reached leaves
    /// it consented, to be asked again. Deliveries that arrive together
    /// are asked of each holder in one request and kept in one
    /// transaction.
    pub(super) async fn deliver(&self, ctx: &Ctx, t: Transfer) -> Result<TransferView> {
        let resource = format!("mydata-transfer:{}", t.id);
        let mut entry = ctx.entry("mydata.transfer.deliver", &resource, Outcome::Allowed);
        entry.purpose = Some(t.purpose.clone());
        entry.legal_basis = Some(t.legal_basis.clone());
        let hub = self.clone();
        self.state
            .deliveries
            .run((t, entry), move |batch| {
                let hub = hub.clone();
                async move { hub.deliver_batch(batch).await }
            })
            .await
            .unwrap_or_else(|| Err(StoreError::unanswered().into()))
    }

    /// Delivers a batch: the catalogue and the nodes looked up once, one
    /// request to each holder (at once), one transaction keeping every
    /// credential issued; each transfer as it stands after.
    pub(super) async fn deliver_batch(
        &self,
        batch: Vec<(Transfer, AuditEntry)>,
    ) -> Vec<Result<TransferView>> {
        let mut out: Vec<Option<Result<Fetched>>> = batch.iter().map(|_| None).collect();
        let looked_up = async {
            let nodes = self.store.nodes().await?;
            Ok::<_, StoreError>((nodes, self.store.institutions().await?))
        };
        let (nodes, names) = match looked_up.await {
            Ok((nodes, institutions)) => (nodes, InstitutionNames::of(institutions)),
            Err(e) => return batch.iter().map(|_| Err(e.again().into())).collect(),
        };
        let mut offers = std::collections::HashMap::new();
        // Each holder's node and what to ask it: (op, grant, consent key).
        type Ask = (usize, SignedGrant, [u8; 32]);
        type Node = (String, String, ed25519_dalek::VerifyingKey);
        let mut asks: std::collections::BTreeMap<InstitutionId, (Node, Vec<Ask>)> =
            std::collections::BTreeMap::new();
        for (i, (t, _)) in batch.iter().enumerate() {
            let prepared = async {
                let key =
                    self.consent_key(t, || format!("transfer {}: the consent is not live", t.id))?;
                let node = records_node_of(&nodes, t.holder)?;
                let grant = self.credential_grant(t, &mut offers, &names).await?;
                Ok::<_, HubError>((node, grant, key))
            };
            match prepared.await {
                Ok((node, grant, key)) => asks
                    .entry(t.holder)
                    .or_insert_with(|| (node, Vec::new()))
                    .1
                    .push((i, grant, key)),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        let calls = asks.values().map(|((_, url, node_key), items)| {
            let grants: Vec<SignedGrant> = items.iter().map(|(_, g, _)| g.clone()).collect();
            self.ask_credentials(url, node_key, grants)
        });
        let answers = futures_util::future::join_all(calls).await;
        let mut keep = Vec::new();
        let mut kept_at = Vec::new();
        for (((node, _, _), items), answer) in asks.into_values().zip(answers) {
            let replies = match answer {
                Ok(replies) => replies,
                Err(e) => {
                    let why = e.to_string();
                    for (i, ..) in items {
                        out[i] = Some(Err(HubError::BadRequest(why.clone())));
                    }
                    continue;
                }
            };
            for ((i, grant, key), reply) in items.into_iter().zip(replies) {
                let (t, entry) = &batch[i];
                let mut entry = entry.clone();
                entry.grant_id = Some(grant.grant.grant_id.clone());
                match reply {
                    CredentialReply::Issued(package) => {
                        let body = serde_json::to_vec(&package).expect("a package serialises");
                        let sealed = civic_hub::secrets::seal(&key, &package_context(t.id), &body);
                        keep.push(DeliveryOp {
                            id: t.id,
                            node: node.clone(),
                            status_index: package.status_index as i64,
                            status_uri: package.status_uri,
                            package: sealed,
                            audit: entry,
                        });
                        kept_at.push(i);
                    }
                    CredentialReply::Refused(why) => {
                        entry.outcome = Outcome::Failed;
                        entry.reason = Some("the holder refused".into());
                        let failed = self
                            .store
                            .fail_transfer(t.id, &format!("the holder refused: {why}"), entry)
                            .await;
                        out[i] = Some(failed.map(|t| (t, Vec::new())).map_err(HubError::from));
                    }
                }
            }
        }
        let n = keep.len();
        for (i, kept) in kept_at.into_iter().zip(StoreError::each(
            self.store.record_deliveries(keep).await,
            n,
        )) {
            out[i] = Some(kept.map(|(t, d)| (t, vec![d])).map_err(HubError::from));
        }
        self.state.events.notify_one();
        out.into_iter()
            .map(|r| {
                let (t, deliveries) = r.unwrap_or_else(|| Err(StoreError::unanswered().into()))?;
                let offer = offers
                    .get(&t.offer)
                    .ok_or_else(|| HubError::NotFound(format!("catalogue entry {}", t.offer)))?;
                view_of(
                    &t,
                    deliveries,
                    offer,
                    names.named(t.agency),
                    names.named(t.holder),
                )
            })
            .collect()
    }

    /// The grant for a credential under `t`'s consent (entries looked up
    /// once a batch).
    pub(super) async fn credential_grant(
        &self,
        t: &Transfer,
        offers: &mut std::collections::HashMap<civic_core::mydata::OfferId, crate::store::Offer>,
        names: &InstitutionNames,
    ) -> Result<SignedGrant> {
        if let std::collections::hash_map::Entry::Vacant(slot) = offers.entry(t.offer) {
            let offer = self.store.offer(t.offer).await?;
            slot.insert(
                offer.ok_or_else(|| HubError::NotFound(format!("catalogue entry {}", t.offer)))?,
            );
        }
        let offer = &offers[&t.offer];
        let now = now_s();
        let mut expires = now + t.retention_days.max(1) * 86_400;
        if let Some(until) = t.consent_until {
            expires = expires
                .min(until.micros().div_euclid(1_000_000))
                .max(now + 86_400);
        }
        let items = t.items.clone();
        let agency_name = names.named(t.agency).name;
        Ok(mydata_grant(
            self.keys(),
            agency_name.clone(),
            names.named(t.holder).name,
            t.legal_basis.clone(),
            format!("mydata-transfer:{}", t.id),
            Question::Credential(CredentialQuestion {
                subject: t.subject.clone(),
                entry: offer.code.clone(),
                document: offer.kind == "document",
                items,
                recipient: agency_name,
                recipient_key: serde_json::from_str(&t.recipient_key).unwrap_or(Value::Null),
                credential_expires_at: expires,
            }),
        ))
    }

    /// Asks one holder's node for credentials under `grants` (in requests
    /// of at most [`MAX_CREDENTIAL_BATCH`]); one reply a grant, in order.
    pub(super) async fn ask_credentials(
        &self,
        url: &str,
        node_key: &ed25519_dalek::VerifyingKey,
        grants: Vec<SignedGrant>,
    ) -> Result<Vec<CredentialReply>> {
        let mut replies = Vec::with_capacity(grants.len());
        for chunk in grants.chunks(MAX_CREDENTIAL_BATCH) {
            let body = serde_json::to_string(&CredentialBatch {
                grants: chunk.to_vec(),
            })
            .expect("grants serialise");
            let answered: CredentialReplies = self
                .ask_holder(
                    url,
                    CREDENTIALS_PATH,
                    node_key,
                    &body,
                    None,
                    "the holder's answer",
                )
                .await?;
            if answered.results.len() != chunk.len() {
                return Err(HubError::BadRequest(
                    "the holder's answer does not answer every grant".into(),
                ));
            }
            replies.extend(answered.results);
        }
        Ok(replies)
    }

    /// Under a periodic consent, the agency asks for a fresh credential
    /// (at most once an interval, until the consent ends).
    pub async fn send_again(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TransferId,
    ) -> Result<TransferView> {
        let (t, last) = self
            .found(ctx, id, "mydata.transfer.resend", By::Agency, false)
            .await?;
        if t.mode != Some(ConsentMode::Periodic) || t.state != TransferState::Delivered {
            return Err(HubError::Conflict(format!(
                "transfer {id} is not a delivered periodic consent"
            )));
        }
        if t.consent_until
            .is_some_and(|u| u.micros() < Timestamp::now().micros())
        {
            return Err(HubError::Conflict(format!(
                "transfer {id}: the consent has ended"
            )));
        }
        let every = t.interval_days.unwrap_or(30) * 86_400 * 1_000_000;
        if last
            .last()
            .is_some_and(|d| Timestamp::now().micros() - d.delivered_at.micros() < every)
        {
            return Err(HubError::Conflict(format!(
                "transfer {id}: the next sending is due {} days after the last",
                t.interval_days.unwrap_or(30)
            )));
        }
        let mut view = self.deliver(ctx, t).await?;
        let fresh = std::mem::take(&mut view.deliveries);
        view.deliveries = last.into_iter().map(delivery_view).chain(fresh).collect();
        Ok(view)
    }

    /// The agency fetches its newest package (marked fetched).
    pub async fn transfer_package(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::TransferId,
    ) -> Result<PackageView> {
        let (party, mut entry) = self
            .party(ctx, id, "mydata.transfer.fetch", By::Agency)
            .await?;
        entry.purpose = Some("the agency receives what the citizen consented to".into());
        let op = FetchOp {
            id,
            party,
            audit: entry.clone(),
        };
        let fetched = self
            .in_batch(&self.state.fetches, op, |store, ops| async move {
                store.fetch_packages(ops).await
            })
            .await;
        let (t, deliveries) = self.as_party(fetched, entry).await?;
        let key = self.consent_key(&t, || {
            format!("transfer {id} is {}: no package is kept", t.state)
        })?;
        let Some(d) = deliveries.iter().rev().find(|d| d.package.is_some()) else {
            return Err(HubError::Conflict(format!(
                "transfer {id} is {}: nothing delivered yet",
                t.state
            )));
        };
        let body = d
            .package
            .as_deref()
            .and_then(|p| civic_hub::secrets::open(&key, &package_context(id), p))
            .ok_or_else(|| {
                HubError::Store(civic_store::StoreError::Corrupt(format!(
                    "transfer {id}: package"
                )))
            })?;
        let package: IssuedPackage = serde_json::from_slice(&body)
            .map_err(|e| HubError::Store(civic_store::StoreError::Corrupt(e.to_string())))?;
        Ok(PackageView {
            transfer_id: id,
            credential: package.credential,
            document: package.document,
            status_index: d.status_index,
            // Where the list is now (the credential names where it was
            // when issued; the path is the same).
            status_uri: format!("{}/status-list", self.issuer_url(&d.node)),
            jwks_uri: format!("{}/jwks", self.issuer_url(&d.node)),
            issued_at: package.issued_at,
            expires_at: package.expires_at,
        })
    }
}
