//! transfers's SQL, for the backend that mounts it (see `crate::store::sql`).

use super::*;

mod events;

pub(super) const TRANSFER_COLUMNS: &str = "id, agreement_id, offer_id, agency_id, holder_id, subject, subject_tag, items, service, \
    purpose, legal_basis, retention_days, recipient_key, state, mode, consent_until, interval_days, reason, \
    consent_key, created_by, created_at, decided_at, withdrawn_at, revoked_at, deletion_confirmed_at";
pub(super) const DELIVERY_COLUMNS: &str =
    "id, transfer_id, node, status_index, status_uri, package, delivered_at, fetched_at";

pub(super) fn transfer_from(row: &DbRow) -> Result<Transfer> {
    let opt_ts = |name: &str| -> Result<Option<Timestamp>> {
        Ok(row.try_get::<Option<i64>, _>(name)?.map(ts))
    };
    Ok(Transfer {
        id: civic_core::mydata::TransferId(row.try_get("id")?),
        agreement: civic_core::mydata::AgreementId(row.try_get("agreement_id")?),
        offer: civic_core::mydata::OfferId(row.try_get("offer_id")?),
        agency: InstitutionId(row.try_get("agency_id")?),
        holder: InstitutionId(row.try_get("holder_id")?),
        subject: row.try_get("subject")?,
        subject_tag: row.try_get("subject_tag")?,
        items: from_json_text("items", &row.try_get::<String, _>("items")?)?,
        service: row.try_get("service")?,
        purpose: row.try_get("purpose")?,
        legal_basis: row.try_get("legal_basis")?,
        retention_days: row.try_get("retention_days")?,
        recipient_key: row.try_get("recipient_key")?,
        state: civic_core::mydata::TransferState::parse(&row.try_get::<String, _>("state")?)
            .map_err(|e| corrupt(format!("transfer state: {e}")))?,
        mode: row
            .try_get::<Option<String>, _>("mode")?
            .map(|m| civic_core::mydata::ConsentMode::parse(&m))
            .transpose()
            .map_err(|e| corrupt(format!("consent mode: {e}")))?,
        consent_until: opt_ts("consent_until")?,
        interval_days: row.try_get("interval_days")?,
        reason: row.try_get("reason")?,
        consent_key: row.try_get("consent_key")?,
        created_by: UserId(row.try_get("created_by")?),
        created_at: ts(row.try_get("created_at")?),
        decided_at: opt_ts("decided_at")?,
        withdrawn_at: opt_ts("withdrawn_at")?,
        revoked_at: opt_ts("revoked_at")?,
        deletion_confirmed_at: opt_ts("deletion_confirmed_at")?,
    })
}

pub(super) fn delivery_from(row: &DbRow) -> Result<Delivery> {
    Ok(Delivery {
        id: row.try_get("id")?,
        transfer: civic_core::mydata::TransferId(row.try_get("transfer_id")?),
        node: row.try_get("node")?,
        status_index: row.try_get("status_index")?,
        status_uri: row.try_get("status_uri")?,
        package: row.try_get("package")?,
        delivered_at: ts(row.try_get("delivered_at")?),
        fetched_at: row.try_get::<Option<i64>, _>("fetched_at")?.map(ts),
    })
}

/// Appends `($1, $2, …)` bound to `ids` (an `IN` list).
pub(super) fn push_ids(
    qb: &mut sqlx::QueryBuilder<'_, Db>,
    ids: impl Iterator<Item = civic_core::mydata::TransferId>,
) {
    qb.push("(");
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(id.0);
    }
    qb.push(")");
}

/// Whether `agreement` (of `statuses`) lets transfers happen.
pub(super) fn approved(
    statuses: &HashMap<civic_core::mydata::AgreementId, String>,
    agreement: civic_core::mydata::AgreementId,
) -> Result<()> {
    match statuses.get(&agreement).map(String::as_str) {
        Some(status) if status == civic_core::mydata::AgreementStatus::Approved.as_str() => Ok(()),
        Some(other) => Err(StoreError::Conflict(format!(
            "agreement {agreement} is {other}, not approved: no transfer may use it"
        ))),
        None => Err(StoreError::NotFound(format!("agreement {agreement}"))),
    }
}

/// The transfer, if `party` is party to it; its audit record
/// gets the citizen's pseudonym as subject.
pub(super) async fn party_transfer(
    tx: &mut Tx,
    id: civic_core::mydata::TransferId,
    party: &crate::store::Party,
    audit: &mut AuditEntry,
) -> Result<Transfer> {
    let t = transfer_in(tx, id).await?;
    if party.sees(&t) {
        audit.subject = Some(t.subject_tag.clone());
        Ok(t)
    } else {
        Err(StoreError::NotFound(format!("transfer {id}")))
    }
}

pub(super) async fn transfer_in(
    tx: &mut Tx,
    id: civic_core::mydata::TransferId,
) -> Result<Transfer> {
    let row = sqlx::query(&format!(
        "SELECT {TRANSFER_COLUMNS} FROM mydata_transfers WHERE id = $1"
    ))
    .bind(id.0)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("transfer {id}")))?;
    transfer_from(&row)
}

/// Tells the agency of `step`, if it is told of it.
pub(super) async fn transfer_event(
    tx: &mut Tx,
    t: &Transfer,
    step: civic_core::mydata::TransferStep,
    at: i64,
) -> Result<()> {
    let Some(kind) = civic_core::mydata::TransferState::event(step) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO mydata_events (agency_id, transfer_id, kind, at) VALUES ($1, $2, $3, $4)",
    )
    .bind(t.agency.0)
    .bind(t.id.0)
    .bind(kind)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The transfers with these ids (those that exist), and the
/// status of each one's agreement (one query).
pub(super) async fn transfers_by_id(
    tx: &mut Tx,
    ids: &[civic_core::mydata::TransferId],
) -> Result<(
    HashMap<civic_core::mydata::TransferId, Transfer>,
    HashMap<civic_core::mydata::AgreementId, String>,
)> {
    let columns: Vec<String> = TRANSFER_COLUMNS
        .split(", ")
        .map(|c| format!("t.{c}"))
        .collect();
    let mut found = HashMap::with_capacity(ids.len());
    let mut statuses = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
            "SELECT {}, a.status AS agreement_status FROM mydata_transfers t \
             JOIN mydata_agreements a ON a.id = t.agreement_id WHERE t.id IN ",
            columns.join(", ")
        ));
        push_ids(&mut qb, chunk.iter().copied());
        for row in qb.build().fetch_all(&mut **tx).await? {
            let t = transfer_from(&row)?;
            statuses.insert(t.agreement, row.try_get::<String, _>("agreement_status")?);
            found.insert(t.id, t);
        }
    }
    Ok((found, statuses))
}

/// The deliveries of these transfers, oldest first.
pub(super) async fn deliveries_of(
    tx: &mut Tx,
    ids: &[civic_core::mydata::TransferId],
) -> Result<HashMap<civic_core::mydata::TransferId, Vec<Delivery>>> {
    let mut out: HashMap<civic_core::mydata::TransferId, Vec<Delivery>> =
        HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM mydata_deliveries WHERE transfer_id IN "
        ));
        push_ids(&mut qb, chunk.iter().copied());
        qb.push(" ORDER BY id");
        for row in qb.build().fetch_all(&mut **tx).await? {
            let d = delivery_from(&row)?;
            out.entry(d.transfer).or_default().push(d);
        }
    }
    Ok(out)
}

/// Appends the events of `(agency, transfer, step)` at `at`, in order.
pub(super) async fn transfer_events(
    tx: &mut Tx,
    events: &[(
        InstitutionId,
        civic_core::mydata::TransferId,
        civic_core::mydata::TransferStep,
    )],
    at: i64,
) -> Result<()> {
    let events: Vec<(InstitutionId, i64, &'static str)> = events
        .iter()
        .filter_map(|(a, t, step)| {
            Some((*a, t.0, civic_core::mydata::TransferState::event(*step)?))
        })
        .collect();
    for chunk in events.chunks(500) {
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO mydata_events (agency_id, transfer_id, kind, at) ",
        );
        qb.push_values(chunk, |mut b, (agency, transfer, kind)| {
            b.push_bind(agency.0)
                .push_bind(*transfer)
                .push_bind(*kind)
                .push_bind(at);
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

pub(super) async fn agreement_is_approved(
    tx: &mut Tx,
    agreement: civic_core::mydata::AgreementId,
) -> Result<()> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM mydata_agreements WHERE id = $1")
            .bind(agreement.0)
            .fetch_optional(&mut **tx)
            .await?;
    approved(
        &status.map(|s| (agreement, s)).into_iter().collect(),
        agreement,
    )
}

/// Moves a transfer by `step` (from a state the machine allows
/// it from) with `set` (SQL assignments after `state = $2`,
/// binding $3…),
/// appends the event and the audit, and returns it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn move_transfer(
    store: &Engine,
    id: civic_core::mydata::TransferId,
    party: &crate::store::Party,
    step: civic_core::mydata::TransferStep,
    set: &str,
    binds: Vec<Bind>,
    mut audit: AuditEntry,
) -> Result<Transfer> {
    let mut tx = store.audited().await?;
    let before = party_transfer(&mut tx, id, party, &mut audit).await?;
    let to = before
        .state
        .after(step)
        .map_err(|why| StoreError::Conflict(format!("transfer {id} is {why}")))?;
    let sql = format!("UPDATE mydata_transfers SET state = $2{set} WHERE id = $1");
    let mut q = sqlx::query(&sql).bind(id.0).bind(to.as_str());
    for b in binds {
        q = match b {
            Bind::Int(v) => q.bind(v),
            Bind::Text(v) => q.bind(v),
            Bind::OptText(v) => q.bind(v),
        };
    }
    q.execute(&mut **tx).await?;
    let after = transfer_in(&mut tx, id).await?;
    let now = Timestamp::now().micros();
    transfer_event(&mut tx, &after, step, now).await?;
    tx.commit(audit).await?;
    Ok(after)
}

impl crate::store::TransferStore for Engine {
    async fn create_transfer(&self, new: NewTransfer, audit: AuditEntry) -> Result<Transfer> {
        let mut tx = self.audited().await?;
        agreement_is_approved(&mut tx, new.agreement).await?;
        let now = Timestamp::now().micros();
        let row = sqlx::query(&format!(
            "INSERT INTO mydata_transfers (agreement_id, offer_id, agency_id, holder_id, subject, subject_tag, items, service, \
             purpose, legal_basis, retention_days, recipient_key, state, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $14, $6, $7, $8, $9, $10, $11, $15, $12, $13) \
             RETURNING {TRANSFER_COLUMNS}"
        ))
        .bind(new.agreement.0)
        .bind(new.offer.0)
        .bind(new.agency.0)
        .bind(new.holder.0)
        .bind(&new.subject)
        .bind(json_text(&new.items))
        .bind(&new.service)
        .bind(&new.purpose)
        .bind(&new.legal_basis)
        .bind(new.retention_days)
        .bind(&new.recipient_key)
        .bind(new.created_by.0)
        .bind(now)
        .bind(&new.subject_tag)
        .bind(civic_core::mydata::TransferState::AwaitingConsent.as_str())
        .fetch_one(&mut **tx)
        .await?;
        let transfer = transfer_from(&row)?;
        let mut audit = audit;
        audit.resource = format!("mydata-transfer:{}", transfer.id);
        audit.subject = Some(transfer.subject_tag.clone());
        tx.commit(audit).await?;
        Ok(transfer)
    }

    async fn transfer(
        &self,
        id: civic_core::mydata::TransferId,
        mut audit: AuditEntry,
    ) -> Result<Option<Transfer>> {
        let mut tx = self.begin().await?;
        let found = match transfer_in(&mut tx, id).await {
            Ok(t) => {
                audit.subject = Some(t.subject_tag.clone());
                Some(t)
            }
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        Self::commit_reads(tx, audit).await?;
        Ok(found)
    }

    async fn transfers_where(
        &self,
        filter: TransferFilter,
        audit: AuditEntry,
    ) -> Result<Vec<Transfer>> {
        let mut tx = self.begin().await?;
        let base = format!("SELECT {TRANSFER_COLUMNS} FROM mydata_transfers WHERE");
        let (column, value) = match &filter {
            TransferFilter::Subject(s) => ("subject", Value::Text(s.clone())),
            TransferFilter::Agency(a) => ("agency_id", Value::Int(a.0)),
            TransferFilter::Holder(h) => ("holder_id", Value::Int(h.0)),
        };
        let sql = format!("{base} {column} = $1 ORDER BY id DESC LIMIT 1000");
        let query = sqlx::query(&sql);
        let query = match value {
            Value::Int(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
        };
        let rows = query.fetch_all(&mut *tx).await?;
        let transfers = rows.iter().map(transfer_from).collect::<Result<Vec<_>>>()?;
        Self::commit_reads(tx, audit).await?;
        Ok(transfers)
    }

    async fn decide_transfer(
        &self,
        id: civic_core::mydata::TransferId,
        party: &Party,
        decision: TransferDecision,
        audit: AuditEntry,
    ) -> Result<Transfer> {
        let op = crate::store::DecisionOp {
            id,
            party: party.clone(),
            decision,
            audit,
        };
        only(self.decide_transfers(vec![op]).await?)
    }

    async fn decide_transfers(
        &self,
        ops: Vec<crate::store::DecisionOp>,
    ) -> Result<Vec<Result<Transfer>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.audited().await?;
        let ids: Vec<civic_core::mydata::TransferId> = ops.iter().map(|o| o.id).collect();
        let (mut found, statuses) = transfers_by_id(&mut tx, &ids).await?;
        let now = Timestamp::now().micros();
        let mut results = Vec::with_capacity(ops.len());
        let mut events = Vec::new();
        let mut audits = Vec::new();
        let mut consents = Vec::new();
        for crate::store::DecisionOp {
            id,
            party,
            decision,
            mut audit,
        } in ops
        {
            let Some(t) = found.get_mut(&id).filter(|t| party.sees(t)) else {
                results.push(Err(StoreError::NotFound(format!("transfer {id}"))));
                continue;
            };
            let step = match decision {
                TransferDecision::Consent { .. } => civic_core::mydata::TransferStep::Consent,
                TransferDecision::Refuse { .. } => civic_core::mydata::TransferStep::Refuse,
            };
            let next = match t.state.after(step) {
                Ok(next) => next,
                Err(why) => {
                    results.push(Err(StoreError::Conflict(format!("transfer {id} is {why}"))));
                    continue;
                }
            };
            match decision {
                TransferDecision::Consent {
                    mode,
                    until,
                    interval_days,
                    sealed_key,
                } => {
                    if let Err(e) = approved(&statuses, t.agreement) {
                        results.push(Err(e));
                        continue;
                    }
                    consents.push((
                        id,
                        mode.as_str(),
                        until.map(|t| t.micros()),
                        interval_days,
                        sealed_key.clone(),
                    ));
                    t.state = next;
                    t.mode = Some(mode);
                    t.consent_until = until;
                    t.interval_days = interval_days;
                    t.consent_key = Some(sealed_key);
                    events.push((t.agency, id, step));
                }
                TransferDecision::Refuse { reason } => {
                    sqlx::query("UPDATE mydata_transfers SET state = $4, reason = $2, decided_at = $3 WHERE id = $1")
                        .bind(id.0)
                        .bind(reason.clone())
                        .bind(now)
                        .bind(next.as_str())
                        .execute(&mut **tx)
                        .await?;
                    t.state = next;
                    t.reason = reason;
                    events.push((t.agency, id, step));
                }
            }
            t.decided_at = Some(ts(now));
            audit.subject = Some(t.subject_tag.clone());
            audits.push(audit);
            results.push(Ok(t.clone()));
        }
        // Every consent of the batch in one statement.
        for chunk in consents.chunks(100) {
            let mut qb =
                sqlx::QueryBuilder::<Db>::new("WITH v (id, mode, until, every, sealed) AS (");
            qb.push_values(chunk, |mut b, (id, mode, until, every, sealed)| {
                b.push_bind(id.0)
                    .push_bind(*mode)
                    .push_bind(*until)
                    .push_bind(*every)
                    .push_bind(sealed.clone());
            });
            qb.push(
                ") UPDATE mydata_transfers SET mode = v.mode, consent_until = v.until, \
                 interval_days = v.every, consent_key = v.sealed, state = ",
            );
            qb.push_bind(civic_core::mydata::TransferState::Consented.as_str());
            qb.push(", decided_at = ");
            qb.push_bind(now);
            qb.push(" FROM v WHERE mydata_transfers.id = v.id");
            qb.build().execute(&mut **tx).await?;
        }
        transfer_events(&mut tx, &events, now).await?;
        tx.commit_all(audits).await?;
        Ok(results)
    }

    async fn record_delivery(
        &self,
        id: civic_core::mydata::TransferId,
        node: &str,
        status_index: i64,
        status_uri: &str,
        package: Vec<u8>,
        audit: AuditEntry,
    ) -> Result<(Transfer, Delivery)> {
        let op = crate::store::DeliveryOp {
            id,
            node: node.to_owned(),
            status_index,
            status_uri: status_uri.to_owned(),
            package,
            audit,
        };
        only(self.record_deliveries(vec![op]).await?)
    }

    async fn record_deliveries(
        &self,
        ops: Vec<crate::store::DeliveryOp>,
    ) -> Result<Vec<Result<(Transfer, Delivery)>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.audited().await?;
        let ids: Vec<civic_core::mydata::TransferId> = ops.iter().map(|o| o.id).collect();
        let (mut found, statuses) = transfers_by_id(&mut tx, &ids).await?;
        let now = Timestamp::now().micros();
        let mut results: Vec<Option<Result<(Transfer, Delivery)>>> = Vec::with_capacity(ops.len());
        let mut kept = Vec::new();
        for (i, mut op) in ops.into_iter().enumerate() {
            let live = match found.get_mut(&op.id) {
                None => Err(StoreError::NotFound(format!("transfer {}", op.id))),
                Some(t) => match t.state.after(civic_core::mydata::TransferStep::Deliver) {
                    Ok(next) if t.consent_key.is_some() => {
                        approved(&statuses, t.agreement).map(|()| {
                            op.audit.subject = Some(t.subject_tag.clone());
                            t.state = next;
                        })
                    }
                    Ok(_) => Err(StoreError::Conflict(format!(
                        "transfer {}: its consent's key is gone",
                        op.id
                    ))),
                    Err(why) => Err(StoreError::Conflict(format!("transfer {} is {why}", op.id))),
                },
            };
            match live {
                Ok(()) => {
                    results.push(None);
                    kept.push((i, op));
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let mut delivered: HashMap<(civic_core::mydata::TransferId, String, i64), Delivery> =
            HashMap::new();
        for chunk in kept.chunks(200) {
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO mydata_deliveries (transfer_id, node, status_index, status_uri, package, delivered_at) ",
            );
            qb.push_values(chunk, |mut b, (_, op)| {
                b.push_bind(op.id.0)
                    .push_bind(op.node.clone())
                    .push_bind(op.status_index)
                    .push_bind(op.status_uri.clone())
                    .push_bind(op.package.clone())
                    .push_bind(now);
            });
            qb.push(format!(" RETURNING {DELIVERY_COLUMNS}"));
            for row in qb.build().fetch_all(&mut **tx).await? {
                let d = delivery_from(&row)?;
                delivered.insert((d.transfer, d.node.clone(), d.status_index), d);
            }
            let mut qb = sqlx::QueryBuilder::<Db>::new("UPDATE mydata_transfers SET state = ");
            qb.push_bind(civic_core::mydata::TransferState::Delivered.as_str());
            qb.push(" WHERE id IN ");
            push_ids(&mut qb, chunk.iter().map(|(_, op)| op.id));
            qb.build().execute(&mut **tx).await?;
        }
        let mut events = Vec::with_capacity(kept.len());
        let mut audits = Vec::with_capacity(kept.len());
        for (i, op) in kept {
            let t = found.get(&op.id).expect("kept only what was found");
            let d = delivered
                .remove(&(op.id, op.node.clone(), op.status_index))
                .ok_or_else(|| corrupt(format!("transfer {}: the delivery was not kept", op.id)))?;
            events.push((t.agency, op.id, civic_core::mydata::TransferStep::Deliver));
            audits.push(op.audit);
            results[i] = Some(Ok((t.clone(), d)));
        }
        transfer_events(&mut tx, &events, now).await?;
        tx.commit_all(audits).await?;
        Ok(results
            .into_iter()
            .map(|r| r.expect("every op answered"))
            .collect())
    }

    async fn fail_transfer(
        &self,
        id: civic_core::mydata::TransferId,
        reason: &str,
        audit: AuditEntry,
    ) -> Result<Transfer> {
        move_transfer(
            self,
            id,
            &crate::store::Party::Hub,
            civic_core::mydata::TransferStep::Fail,
            ", reason = $3, consent_key = NULL",
            vec![Bind::Text(reason.to_owned())],
            audit,
        )
        .await
    }

    async fn deliveries(
        &self,
        id: civic_core::mydata::TransferId,
        party: &Party,
        fetched: bool,
        mut audit: AuditEntry,
    ) -> Result<(Transfer, Vec<Delivery>)> {
        if fetched {
            let op = crate::store::FetchOp {
                id,
                party: party.clone(),
                audit,
            };
            return only(self.fetch_packages(vec![op]).await?);
        }
        // A read takes the ledger lock only to append.
        let mut tx = self.begin().await?;
        let t = party_transfer(&mut tx, id, party, &mut audit).await?;
        let out = deliveries_of(&mut tx, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        Self::commit_reads(tx, audit).await?;
        Ok((t, out))
    }

    async fn fetch_packages(
        &self,
        ops: Vec<crate::store::FetchOp>,
    ) -> Result<Vec<Result<(Transfer, Vec<Delivery>)>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        // Marking fetched is a write: the ledger lock first.
        let mut tx = self.audited().await?;
        let ids: Vec<civic_core::mydata::TransferId> = ops.iter().map(|o| o.id).collect();
        let (found, _) = transfers_by_id(&mut tx, &ids).await?;
        let mut parties = Vec::with_capacity(ops.len());
        let mut audits = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for crate::store::FetchOp {
            id,
            party,
            mut audit,
        } in ops
        {
            match found.get(&id).filter(|t| party.sees(t)) {
                Some(t) => {
                    audit.subject = Some(t.subject_tag.clone());
                    audits.push(audit);
                    seen.insert(id);
                    parties.push(Some(id));
                }
                None => parties.push(None),
            }
        }
        let seen: Vec<civic_core::mydata::TransferId> = seen.into_iter().collect();
        let now = Timestamp::now().micros();
        for chunk in seen.chunks(500) {
            let mut qb =
                sqlx::QueryBuilder::<Db>::new("UPDATE mydata_deliveries SET fetched_at = ");
            qb.push_bind(now);
            qb.push(" WHERE fetched_at IS NULL AND package IS NOT NULL AND transfer_id IN ");
            push_ids(&mut qb, chunk.iter().copied());
            qb.build().execute(&mut **tx).await?;
        }
        let delivered = deliveries_of(&mut tx, &seen).await?;
        tx.commit_all(audits).await?;
        Ok(ids
            .iter()
            .zip(parties)
            .map(|(id, party)| match party {
                Some(id) => Ok((
                    found[&id].clone(),
                    delivered.get(&id).cloned().unwrap_or_default(),
                )),
                None => Err(StoreError::NotFound(format!("transfer {id}"))),
            })
            .collect())
    }

    async fn withdraw_transfer(
        &self,
        id: civic_core::mydata::TransferId,
        party: &Party,
        mut audit: AuditEntry,
    ) -> Result<Transfer> {
        let mut tx = self.audited().await?;
        let before = party_transfer(&mut tx, id, party, &mut audit).await?;
        let next = before
            .state
            .after(civic_core::mydata::TransferStep::Withdraw)
            .map_err(|why| StoreError::Conflict(format!("transfer {id} is {why}")))?;
        let now = Timestamp::now().micros();
        // Crypto-shredding: the key and every package sealed
        // under it go in the same transaction.
        sqlx::query(
            "UPDATE mydata_transfers SET state = $3, consent_key = NULL, withdrawn_at = $2 WHERE id = $1",
        )
        .bind(id.0)
        .bind(now)
        .bind(next.as_str())
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE mydata_deliveries SET package = NULL WHERE transfer_id = $1")
            .bind(id.0)
            .execute(&mut **tx)
            .await?;
        let after = transfer_in(&mut tx, id).await?;
        transfer_event(
            &mut tx,
            &after,
            civic_core::mydata::TransferStep::Withdraw,
            now,
        )
        .await?;
        tx.commit(audit).await?;
        Ok(after)
    }

    async fn mark_revoked(
        &self,
        id: civic_core::mydata::TransferId,
        audit: AuditEntry,
    ) -> Result<Transfer> {
        move_transfer(
            self,
            id,
            &crate::store::Party::Hub,
            civic_core::mydata::TransferStep::MarkRevoked,
            ", revoked_at = $3",
            vec![Bind::Int(Timestamp::now().micros())],
            audit,
        )
        .await
    }

    async fn confirm_deletion(
        &self,
        id: civic_core::mydata::TransferId,
        party: &Party,
        audit: AuditEntry,
    ) -> Result<Transfer> {
        move_transfer(
            self,
            id,
            party,
            civic_core::mydata::TransferStep::ConfirmDeletion,
            ", deletion_confirmed_at = COALESCE(deletion_confirmed_at, $3)",
            vec![Bind::Int(Timestamp::now().micros())],
            audit,
        )
        .await
    }

    async fn undelivered(&self, before: Timestamp) -> Result<Vec<civic_core::mydata::TransferId>> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT id FROM mydata_transfers WHERE state = $2 AND decided_at < $1 ORDER BY id LIMIT 1000",
        )
        .bind(before.micros())
        .bind(civic_core::mydata::TransferState::Consented.as_str())
        .fetch_all(self.reads())
        .await?
        .into_iter()
        .map(civic_core::mydata::TransferId)
        .collect())
    }

    async fn unrevoked(&self) -> Result<Vec<civic_core::mydata::TransferId>> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT id FROM mydata_transfers WHERE state = $1 AND revoked_at IS NULL ORDER BY id",
        )
        .bind(civic_core::mydata::TransferState::Withdrawn.as_str())
        .fetch_all(self.reads())
        .await?
        .into_iter()
        .map(civic_core::mydata::TransferId)
        .collect())
    }

    async fn transfer_counts(
        &self,
    ) -> Result<Vec<(civic_core::mydata::OfferId, InstitutionId, i64, i64)>> {
        // Years are counted in the application (both backends'
        // date functions differ); a row a delivered transfer.
        let rows = sqlx::query(
            "SELECT t.offer_id, t.agency_id, MIN(d.delivered_at) AS first FROM mydata_transfers t \
             JOIN mydata_deliveries d ON d.transfer_id = t.id GROUP BY t.id, t.offer_id, t.agency_id",
        )
        .fetch_all(self.reads())
        .await?;
        let mut counts: std::collections::BTreeMap<(i64, i64, i64), i64> = Default::default();
        for row in &rows {
            let year: i64 = ts(row.try_get("first")?).to_rfc3339()[..4]
                .parse()
                .unwrap_or(0);
            *counts
                .entry((row.try_get("offer_id")?, row.try_get("agency_id")?, year))
                .or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .map(|((offer, agency, year), n)| {
                (
                    civic_core::mydata::OfferId(offer),
                    InstitutionId(agency),
                    year,
                    n,
                )
            })
            .collect())
    }
}
