//! investigation's SQL, for the backend that mounts it (see `crate::sql`).

use super::*;

use civic_core::investigation::{
    CaseId, CaseStatus, CollectionPurpose, CollectionStatus, ContactId, ContactStatus, DataItem,
    DataRequestId, RequestStatus, ResponseId, ResponseStatus,
};

pub(super) const RESPONSE_COLUMNS: &str =
    "id, name, legal_basis, rules, status, opened_by, opened_at, closed_at";
pub(super) const CASE_COLUMNS: &str =
    "id, response_id, number, region, status, source_case_id, created_at";
pub(super) const REQUEST_COLUMNS: &str = "r.id, r.case_id, c.response_id, r.items, r.contacts, \
    r.data_from, r.data_until, r.status, r.requested_by, r.created_at";
pub(super) const COLLECTION_COLUMNS: &str = "id, request_id, case_id, node, purpose, exchange_id, \
    status, detail, created_at, finished_at";
pub(super) const CONTACT_COLUMNS: &str =
    "id, case_id, tag, status, overlap_minutes, linked_case_id, updated_at";

pub(super) fn state<T>(
    raw: String,
    parse: fn(&str) -> std::result::Result<T, civic_core::ValidationError>,
) -> Result<T> {
    parse(&raw).map_err(corrupt)
}

pub(super) fn response_from(row: &DbRow) -> Result<Response> {
    Ok(Response {
        id: ResponseId(row.try_get("id")?),
        name: row.try_get("name")?,
        legal_basis: row.try_get("legal_basis")?,
        rules: row.try_get("rules")?,
        status: state(row.try_get("status")?, ResponseStatus::parse)?,
        opened_by: row.try_get::<Option<i64>, _>("opened_by")?.map(UserId),
        opened_at: ts(row.try_get("opened_at")?),
        closed_at: row.try_get::<Option<i64>, _>("closed_at")?.map(ts),
    })
}

pub(super) fn case_from(row: &DbRow, sealed: bool) -> Result<CaseRecord> {
    let region: String = row.try_get("region")?;
    Ok(CaseRecord {
        id: CaseId(row.try_get("id")?),
        response: ResponseId(row.try_get("response_id")?),
        number: row.try_get("number")?,
        region: Region::parse(&region).map_err(corrupt)?,
        status: state(row.try_get("status")?, CaseStatus::parse)?,
        source_case: row.try_get::<Option<i64>, _>("source_case_id")?.map(CaseId),
        assigned: Vec::new(),
        sealed: if sealed {
            row.try_get("sealed")?
        } else {
            Vec::new()
        },
        created_at: ts(row.try_get("created_at")?),
    })
}

pub(super) fn items_text(items: &[DataItem]) -> String {
    items
        .iter()
        .map(|i| i.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn request_from(row: &DbRow, sealed: bool) -> Result<DataRequest> {
    let items: String = row.try_get("items")?;
    Ok(DataRequest {
        id: DataRequestId(row.try_get("id")?),
        case: CaseId(row.try_get("case_id")?),
        response: ResponseId(row.try_get("response_id")?),
        items: items
            .split(',')
            .filter(|i| !i.is_empty())
            .map(DataItem::parse)
            .collect::<std::result::Result<_, _>>()
            .map_err(corrupt)?,
        contacts: row.try_get("contacts")?,
        data_from: row.try_get("data_from")?,
        data_until: row.try_get("data_until")?,
        status: state(row.try_get("status")?, RequestStatus::parse)?,
        requested_by: UserId(row.try_get("requested_by")?),
        created_at: ts(row.try_get("created_at")?),
        sealed: if sealed {
            row.try_get("sealed")?
        } else {
            Vec::new()
        },
        decisions: Vec::new(),
    })
}

pub(super) fn collection_from(row: &DbRow, sealed: bool) -> Result<Collection> {
    Ok(Collection {
        id: row.try_get("id")?,
        request: DataRequestId(row.try_get("request_id")?),
        case: CaseId(row.try_get("case_id")?),
        node: row.try_get("node")?,
        purpose: state(row.try_get("purpose")?, CollectionPurpose::parse)?,
        exchange_id: row.try_get("exchange_id")?,
        status: state(row.try_get("status")?, CollectionStatus::parse)?,
        detail: row.try_get("detail")?,
        sealed: if sealed {
            row.try_get("sealed")?
        } else {
            Vec::new()
        },
        created_at: ts(row.try_get("created_at")?),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(ts),
    })
}

pub(super) fn contact_from(row: &DbRow, sealed: bool) -> Result<ContactRecord> {
    Ok(ContactRecord {
        id: ContactId(row.try_get("id")?),
        case: CaseId(row.try_get("case_id")?),
        tag: row.try_get("tag")?,
        status: state(row.try_get("status")?, ContactStatus::parse)?,
        overlap_minutes: row.try_get("overlap_minutes")?,
        linked_case: row.try_get::<Option<i64>, _>("linked_case_id")?.map(CaseId),
        sealed: if sealed {
            row.try_get("sealed")?
        } else {
            Vec::new()
        },
        updated_at: ts(row.try_get("updated_at")?),
    })
}

pub(super) fn outbox_from(r: &DbRow) -> Result<OutboxMessage> {
    Ok(OutboxMessage {
        id: r.try_get("id")?,
        response: ResponseId(r.try_get("response_id")?),
        case: r.try_get::<Option<i64>, _>("case_id")?.map(CaseId),
        kind: r.try_get("kind")?,
        sealed: r.try_get("sealed")?,
        created_at: ts(r.try_get("created_at")?),
        sent_at: r.try_get::<Option<i64>, _>("sent_at")?.map(ts),
    })
}

pub(super) fn certificate_from(row: &DbRow) -> Result<DeletionCertificate> {
    Ok(DeletionCertificate {
        id: row.try_get("id")?,
        response: ResponseId(row.try_get("response_id")?),
        body: row.try_get("body")?,
        signature: row.try_get("signature")?,
        created_at: ts(row.try_get("created_at")?),
    })
}

/// `(a, b, …)` with `n` parameters from `$first`.
pub(super) fn placeholders(first: usize, n: usize) -> String {
    let list: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    list.join(", ")
}

impl Engine {
    /// Appends `audit` in `tx`, which has done its reads: the ledger
    /// lock is taken only now, so it is held briefly.
    pub(super) async fn audit_reads(mut tx: Tx, audit: AuditEntry) -> Result<()> {
        let mut frontier = Self::lock_ledger(&mut tx).await?;
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Refuses a write to a response that is not open.
    pub(super) async fn check_open(tx: &mut Tx, response: i64) -> Result<()> {
        let row = sqlx::query("SELECT status FROM responses WHERE id = $1")
            .bind(response)
            .fetch_optional(&mut **tx)
            .await?;
        match row {
            None => Err(StoreError::NotFound(format!("response {response}"))),
            Some(r) => {
                let status: String = r.try_get("status")?;
                if status == ResponseStatus::Open.as_str() {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(format!(
                        "response {response} is {status}: it takes no new data"
                    )))
                }
            }
        }
    }

    /// The response of a case that takes new data (`Conflict` once it
    /// is closing).
    pub(super) async fn case_open(tx: &mut Tx, case: i64) -> Result<i64> {
        let response = Self::response_of_case(tx, case).await?;
        Self::check_open(tx, response).await?;
        Ok(response)
    }

    pub(super) async fn response_of_case(tx: &mut Tx, case: i64) -> Result<i64> {
        let row = sqlx::query("SELECT response_id FROM cases WHERE id = $1")
            .bind(case)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("case {case}")))?;
        Ok(row.try_get("response_id")?)
    }

    pub(super) async fn assignments(
        tx: &mut Tx,
        cases: &[i64],
    ) -> Result<HashMap<i64, Vec<UserId>>> {
        let mut out: HashMap<i64, Vec<UserId>> = HashMap::new();
        for chunk in cases.chunks(500) {
            if chunk.is_empty() {
                continue;
            }
            let sql = format!(
                "SELECT case_id, user_id FROM case_assignments WHERE case_id IN ({}) ORDER BY user_id",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = q.bind(*c);
            }
            for row in q.fetch_all(&mut **tx).await? {
                out.entry(row.try_get("case_id")?)
                    .or_default()
                    .push(UserId(row.try_get("user_id")?));
            }
        }
        Ok(out)
    }

    pub(super) async fn with_assignments(
        tx: &mut Tx,
        mut cases: Vec<CaseRecord>,
    ) -> Result<Vec<CaseRecord>> {
        let ids: Vec<i64> = cases.iter().map(|c| c.id.0).collect();
        let mut map = Self::assignments(tx, &ids).await?;
        for c in cases.iter_mut() {
            c.assigned = map.remove(&c.id.0).unwrap_or_default();
        }
        Ok(cases)
    }

    pub(super) async fn with_decisions(
        tx: &mut Tx,
        mut requests: Vec<DataRequest>,
        sealed: bool,
    ) -> Result<Vec<DataRequest>> {
        for chunk in requests.chunks_mut(500) {
            let sql = format!(
                "SELECT request_id, duty, user_id, approve, sealed, decided_at FROM decisions \
                 WHERE request_id IN ({}) ORDER BY decided_at",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for r in chunk.iter() {
                q = q.bind(r.id.0);
            }
            let rows = q.fetch_all(&mut **tx).await?;
            for row in rows {
                let id: i64 = row.try_get("request_id")?;
                let duty: String = row.try_get("duty")?;
                let decision = Decision {
                    duty: duty.parse().map_err(corrupt)?,
                    user: UserId(row.try_get("user_id")?),
                    approve: row.try_get("approve")?,
                    sealed: if sealed {
                        row.try_get("sealed")?
                    } else {
                        Vec::new()
                    },
                    decided_at: ts(row.try_get("decided_at")?),
                };
                if let Some(r) = chunk.iter_mut().find(|r| r.id.0 == id) {
                    r.decisions.push(decision);
                }
            }
        }
        Ok(requests)
    }

    pub(super) async fn requests_where(
        tx: &mut Tx,
        filter: &RequestFilter,
        sealed: bool,
    ) -> Result<Vec<DataRequest>> {
        let mut sql = format!(
            "SELECT {REQUEST_COLUMNS}{} FROM data_requests r JOIN cases c ON c.id = r.case_id WHERE 1 = 1",
            if sealed { ", r.sealed" } else { "" }
        );
        let mut n = 0;
        if filter.id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND r.id = ${n}"));
        }
        if filter.case.is_some() {
            n += 1;
            sql.push_str(&format!(" AND r.case_id = ${n}"));
        }
        if filter.response.is_some() {
            n += 1;
            sql.push_str(&format!(" AND c.response_id = ${n}"));
        }
        if !filter.statuses.is_empty() {
            sql.push_str(&format!(
                " AND r.status IN ({})",
                placeholders(n + 1, filter.statuses.len())
            ));
        }
        sql.push_str(" ORDER BY r.id");
        let mut q = sqlx::query(&sql);
        if let Some(id) = filter.id {
            q = q.bind(id.0);
        }
        if let Some(c) = filter.case {
            q = q.bind(c.0);
        }
        if let Some(r) = filter.response {
            q = q.bind(r.0);
        }
        for s in &filter.statuses {
            q = q.bind(s.as_str());
        }
        let rows = q.fetch_all(&mut **tx).await?;
        let requests = rows
            .iter()
            .map(|r| request_from(r, sealed))
            .collect::<Result<Vec<_>>>()?;
        Self::with_decisions(tx, requests, sealed).await
    }

    pub(super) async fn insert_case(tx: &mut Tx, c: NewCase, now: i64) -> Result<CaseRecord> {
        let row = sqlx::query(&format!(
            "INSERT INTO cases (response_id, number, region, status, source_case_id, sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {CASE_COLUMNS}"
        ))
        .bind(c.response.0)
        .bind(c.number.as_str())
        .bind(c.region.as_str())
        .bind(CaseStatus::Open.as_str())
        .bind(c.source_case.map(|s| s.0))
        .bind(c.sealed.as_slice())
        .bind(now)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| map_unique(e, || format!("case {:?} in response {}", c.number, c.response)))?;
        let mut record = case_from(&row, false)?;
        for user in &c.assigned {
            sqlx::query("INSERT INTO case_assignments (case_id, user_id) VALUES ($1, $2)")
                .bind(record.id.0)
                .bind(user.0)
                .execute(&mut **tx)
                .await?;
        }
        record.assigned = c.assigned;
        record.sealed = c.sealed;
        Ok(record)
    }

    pub(super) async fn insert_outbox(
        tx: &mut Tx,
        messages: &[NewOutboxMessage],
        now: i64,
    ) -> Result<()> {
        for m in messages {
            sqlx::query(
                "INSERT INTO outbox (response_id, case_id, kind, sealed, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(m.response.0)
            .bind(m.case.map(|c| c.0))
            .bind(m.kind.as_str())
            .bind(m.sealed.as_slice())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    pub(super) async fn count(tx: &mut Tx, sql: &str, response: i64) -> Result<u64> {
        let row = sqlx::query(sql).bind(response).fetch_one(&mut **tx).await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(super) async fn counts_in(tx: &mut Tx, response: i64) -> Result<ResponseCounts> {
        let of_cases = |table: &str, key: &str| {
            format!("SELECT COUNT(*) AS n FROM {table} WHERE {key} IN (SELECT id FROM cases WHERE response_id = $1)")
        };
        Ok(ResponseCounts {
            cases: Self::count(tx, "SELECT COUNT(*) AS n FROM cases WHERE response_id = $1", response).await?,
            documents: Self::count(tx, &of_cases("case_documents", "case_id"), response).await?,
            data_requests: Self::count(tx, &of_cases("data_requests", "case_id"), response).await?,
            decisions: Self::count(
                tx,
                "SELECT COUNT(*) AS n FROM decisions WHERE request_id IN \
                 (SELECT r.id FROM data_requests r JOIN cases c ON c.id = r.case_id WHERE c.response_id = $1)",
                response,
            )
            .await?,
            collections: Self::count(tx, &of_cases("collections", "case_id"), response).await?,
            answers: Self::count(
                tx,
                "SELECT COUNT(*) AS n FROM collected WHERE collection_id IN \
                 (SELECT l.id FROM collections l JOIN cases c ON c.id = l.case_id WHERE c.response_id = $1)",
                response,
            )
            .await?,
            contacts: Self::count(tx, &of_cases("contacts", "case_id"), response).await?,
            outbox: Self::count(tx, "SELECT COUNT(*) AS n FROM outbox WHERE response_id = $1", response).await?,
        })
    }
}

impl InvestigationStore for Engine {
    async fn create_response(&self, new: NewResponse, audit: AuditEntry) -> Result<Response> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO responses (name, legal_basis, rules, status, opened_by, opened_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {RESPONSE_COLUMNS}"
        ))
        .bind(new.name.as_str())
        .bind(new.legal_basis.as_str())
        .bind(new.rules.as_str())
        .bind(ResponseStatus::Open.as_str())
        .bind(new.opened_by.map(|u| u.0))
        .bind(Timestamp::now().micros())
        .fetch_one(&mut *tx)
        .await?;
        let response = response_from(&row)?;
        sqlx::query("INSERT INTO response_keys (response_id, key_sealed) VALUES ($1, $2)")
            .bind(response.id.0)
            .bind(new.key_sealed.as_slice())
            .execute(&mut *tx)
            .await?;
        let mut audit = audit;
        audit.resource = format!("response:{}", response.id);
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(response)
    }

    async fn responses(&self) -> Result<Vec<Response>> {
        let rows = sqlx::query(&format!(
            "SELECT {RESPONSE_COLUMNS} FROM responses ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(response_from).collect()
    }

    async fn response(&self, id: ResponseId) -> Result<Option<Response>> {
        let row = sqlx::query(&format!(
            "SELECT {RESPONSE_COLUMNS} FROM responses WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(response_from).transpose()
    }

    async fn response_key(&self, id: ResponseId) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT key_sealed FROM response_keys WHERE response_id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("key_sealed")).transpose()?)
    }

    async fn set_response_status(
        &self,
        id: ResponseId,
        from: ResponseStatus,
        to: ResponseStatus,
        audit: AuditEntry,
    ) -> Result<()> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        let done = sqlx::query("UPDATE responses SET status = $1 WHERE id = $2 AND status = $3")
            .bind(to.as_str())
            .bind(id.0)
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(match self.response(id).await? {
                None => StoreError::NotFound(format!("response {id}")),
                Some(r) => {
                    StoreError::Conflict(format!("response {id} is {}, not {from}", r.status))
                }
            });
        }
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn response_counts(&self, id: ResponseId) -> Result<ResponseCounts> {
        let mut tx = self.pool.begin().await?;
        let counts = Self::counts_in(&mut tx, id.0).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn exchange_ids(&self, id: ResponseId) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT l.node, l.exchange_id FROM collections l JOIN cases c ON c.id = l.case_id \
             WHERE c.response_id = $1 ORDER BY l.id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("node")?, r.try_get("exchange_id")?)))
            .collect()
    }

    async fn close_response(
        &self,
        id: ResponseId,
        certificate: String,
        signature: String,
        audit: AuditEntry,
    ) -> Result<DeletionCertificate> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        let r = id.0;
        let status = sqlx::query("SELECT status FROM responses WHERE id = $1")
            .bind(r)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("response {id}")))?;
        let status: String = status.try_get("status")?;
        if status != ResponseStatus::Closing.as_str() {
            return Err(StoreError::Conflict(format!(
                "response {id} is {status}, not closing"
            )));
        }
        // The key first: what follows is ciphertext nobody can open.
        sqlx::query("DELETE FROM response_keys WHERE response_id = $1")
            .bind(r)
            .execute(&mut *tx)
            .await?;
        let of_cases = "(SELECT id FROM cases WHERE response_id = $1)";
        for sql in [
            format!("DELETE FROM collected WHERE collection_id IN (SELECT id FROM collections WHERE case_id IN {of_cases})"),
            format!("DELETE FROM collections WHERE case_id IN {of_cases}"),
            format!("DELETE FROM decisions WHERE request_id IN (SELECT id FROM data_requests WHERE case_id IN {of_cases})"),
            format!("DELETE FROM data_requests WHERE case_id IN {of_cases}"),
            format!("DELETE FROM contacts WHERE case_id IN {of_cases}"),
            format!("DELETE FROM case_documents WHERE case_id IN {of_cases}"),
            format!("DELETE FROM case_assignments WHERE case_id IN {of_cases}"),
            "DELETE FROM outbox WHERE response_id = $1".to_owned(),
            "DELETE FROM cases WHERE response_id = $1".to_owned(),
        ] {
            sqlx::query(&sql).bind(r).execute(&mut *tx).await?;
        }
        let now = Timestamp::now().micros();
        sqlx::query("UPDATE responses SET status = $1, closed_at = $2 WHERE id = $3")
            .bind(ResponseStatus::Closed.as_str())
            .bind(now)
            .bind(r)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "INSERT INTO deletion_certificates (response_id, body, signature, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id, response_id, body, signature, created_at",
        )
        .bind(r)
        .bind(certificate.as_str())
        .bind(signature.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let cert = certificate_from(&row)?;
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(cert)
    }

    async fn deletion_certificates(&self, id: ResponseId) -> Result<Vec<DeletionCertificate>> {
        let rows = sqlx::query(
            "SELECT id, response_id, body, signature, created_at FROM deletion_certificates \
             WHERE response_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(certificate_from).collect()
    }

    async fn create_cases(&self, new: Vec<NewCase>, audit: AuditEntry) -> Result<Vec<CaseRecord>> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        let mut checked: Vec<i64> = Vec::new();
        let now = Timestamp::now().micros();
        let mut out = Vec::with_capacity(new.len());
        for c in new {
            if !checked.contains(&c.response.0) {
                Self::check_open(&mut tx, c.response.0).await?;
                checked.push(c.response.0);
            }
            out.push(Self::insert_case(&mut tx, c, now).await?);
        }
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn case_meta(&self, id: CaseId) -> Result<Option<CaseRecord>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        let out = match row {
            Some(r) => Self::with_assignments(&mut tx, vec![case_from(&r, false)?])
                .await?
                .pop(),
            None => None,
        };
        tx.commit().await?;
        Ok(out)
    }

    async fn case_by_number(
        &self,
        response: ResponseId,
        number: &str,
    ) -> Result<Option<CaseRecord>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE response_id = $1 AND number = $2"
        ))
        .bind(response.0)
        .bind(number)
        .fetch_optional(&mut *tx)
        .await?;
        let out = match row {
            Some(r) => Self::with_assignments(&mut tx, vec![case_from(&r, false)?])
                .await?
                .pop(),
            None => None,
        };
        tx.commit().await?;
        Ok(out)
    }

    async fn case_metas(&self, response: ResponseId) -> Result<Vec<CaseRecord>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE response_id = $1 ORDER BY id"
        ))
        .bind(response.0)
        .fetch_all(&mut *tx)
        .await?;
        let cases = rows
            .iter()
            .map(|r| case_from(r, false))
            .collect::<Result<Vec<_>>>()?;
        let cases = Self::with_assignments(&mut tx, cases).await?;
        tx.commit().await?;
        Ok(cases)
    }

    async fn read_cases(
        &self,
        response: ResponseId,
        ids: &[CaseId],
        audit: AuditEntry,
    ) -> Result<Vec<CaseRecord>> {
        let mut tx = self.begin_tx().await?;
        let mut cases = Vec::new();
        if ids.is_empty() {
            let rows = sqlx::query(&format!(
                "SELECT {CASE_COLUMNS}, sealed FROM cases WHERE response_id = $1 ORDER BY id"
            ))
            .bind(response.0)
            .fetch_all(&mut *tx)
            .await?;
            for r in &rows {
                cases.push(case_from(r, true)?);
            }
        } else {
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "SELECT {CASE_COLUMNS}, sealed FROM cases WHERE response_id = $1 AND id IN ({}) ORDER BY id",
                    placeholders(2, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(response.0);
                for c in chunk {
                    q = q.bind(c.0);
                }
                for r in &q.fetch_all(&mut *tx).await? {
                    cases.push(case_from(r, true)?);
                }
            }
        }
        let cases = Self::with_assignments(&mut tx, cases).await?;
        Self::audit_reads(tx, audit).await?;
        Ok(cases)
    }

    async fn assign_case(&self, id: CaseId, users: Vec<UserId>, audit: AuditEntry) -> Result<()> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        Self::case_open(&mut tx, id.0).await?;
        sqlx::query("DELETE FROM case_assignments WHERE case_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        for u in &users {
            sqlx::query("INSERT INTO case_assignments (case_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id.0)
                .bind(u.0)
                .execute(&mut *tx)
                .await?;
        }
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn put_document(
        &self,
        case: CaseId,
        kind: CaseDocument,
        sealed: Vec<u8>,
        audit: AuditEntry,
    ) -> Result<()> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        Self::case_open(&mut tx, case.0).await?;
        sqlx::query(
            "INSERT INTO case_documents (case_id, kind, sealed, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (case_id, kind) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
        )
        .bind(case.0)
        .bind(kind.as_str())
        .bind(sealed.as_slice())
        .bind(Timestamp::now().micros())
        .execute(&mut *tx)
        .await?;
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn put_documents(
        &self,
        documents: Vec<(CaseId, CaseDocument, Vec<u8>)>,
        audit: AuditEntry,
    ) -> Result<()> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        let mut checked: Vec<i64> = Vec::new();
        let now = Timestamp::now().micros();
        for (case, kind, sealed) in &documents {
            let response = Self::response_of_case(&mut tx, case.0).await?;
            if !checked.contains(&response) {
                Self::check_open(&mut tx, response).await?;
                checked.push(response);
            }
            sqlx::query(
                "INSERT INTO case_documents (case_id, kind, sealed, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (case_id, kind) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            )
            .bind(case.0)
            .bind(kind.as_str())
            .bind(sealed.as_slice())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn documents(
        &self,
        response: ResponseId,
        cases: &[CaseId],
        kind: CaseDocument,
        audit: AuditEntry,
    ) -> Result<Vec<(CaseId, Vec<u8>)>> {
        let mut tx = self.begin_tx().await?;
        let mut out = Vec::new();
        let base =
            "SELECT d.case_id, d.sealed FROM case_documents d JOIN cases c ON c.id = d.case_id \
                    WHERE c.response_id = $1 AND d.kind = $2";
        if cases.is_empty() {
            let rows = sqlx::query(&format!("{base} ORDER BY d.case_id"))
                .bind(response.0)
                .bind(kind.as_str())
                .fetch_all(&mut *tx)
                .await?;
            for r in rows {
                out.push((CaseId(r.try_get("case_id")?), r.try_get("sealed")?));
            }
        } else {
            for chunk in cases.chunks(500) {
                let sql = format!(
                    "{base} AND d.case_id IN ({}) ORDER BY d.case_id",
                    placeholders(3, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(response.0).bind(kind.as_str());
                for c in chunk {
                    q = q.bind(c.0);
                }
                for r in q.fetch_all(&mut *tx).await? {
                    out.push((CaseId(r.try_get("case_id")?), r.try_get("sealed")?));
                }
            }
        }
        Self::audit_reads(tx, audit).await?;
        Ok(out)
    }

    async fn create_data_request(
        &self,
        new: NewDataRequest,
        audit: AuditEntry,
    ) -> Result<DataRequest> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        let response = Self::case_open(&mut tx, new.case.0).await?;
        let now = Timestamp::now().micros();
        let row = sqlx::query(
            "INSERT INTO data_requests (case_id, items, contacts, data_from, data_until, status, requested_by, sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(new.case.0)
        .bind(items_text(&new.items))
        .bind(new.contacts)
        .bind(new.data_from)
        .bind(new.data_until)
        .bind(RequestStatus::AwaitingApprover.as_str())
        .bind(new.requested_by.0)
        .bind(new.sealed.as_slice())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let id = DataRequestId(row.try_get("id")?);
        let mut audit = audit;
        audit.resource = format!("data_request:{id}");
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(DataRequest {
            id,
            case: new.case,
            response: ResponseId(response),
            items: new.items,
            contacts: new.contacts,
            data_from: new.data_from,
            data_until: new.data_until,
            status: RequestStatus::AwaitingApprover,
            requested_by: new.requested_by,
            created_at: ts(now),
            sealed: new.sealed,
            decisions: Vec::new(),
        })
    }

    async fn request_metas(&self, filter: RequestFilter) -> Result<Vec<DataRequest>> {
        let mut tx = self.pool.begin().await?;
        let requests = Self::requests_where(&mut tx, &filter, false).await?;
        tx.commit().await?;
        Ok(requests)
    }

    async fn read_requests(
        &self,
        filter: RequestFilter,
        audit: AuditEntry,
    ) -> Result<Vec<DataRequest>> {
        let mut tx = self.begin_tx().await?;
        let requests = Self::requests_where(&mut tx, &filter, true).await?;
        Self::audit_reads(tx, audit).await?;
        Ok(requests)
    }

    async fn decide_request(
        &self,
        id: DataRequestId,
        decision: Decision,
        expected: RequestStatus,
        next: RequestStatus,
        sealed: Option<Vec<u8>>,
        audit: AuditEntry,
    ) -> Result<()> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        let row = sqlx::query("SELECT case_id FROM data_requests WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("data request {id}")))?;
        Self::case_open(&mut tx, row.try_get("case_id")?).await?;
        let moved = match &sealed {
            Some(s) => sqlx::query(
                "UPDATE data_requests SET status = $1, sealed = $2 WHERE id = $3 AND status = $4",
            )
            .bind(next.as_str())
            .bind(s.as_slice())
            .bind(id.0)
            .bind(expected.as_str())
            .execute(&mut *tx)
            .await?,
            None => {
                sqlx::query("UPDATE data_requests SET status = $1 WHERE id = $2 AND status = $3")
                    .bind(next.as_str())
                    .bind(id.0)
                    .bind(expected.as_str())
                    .execute(&mut *tx)
                    .await?
            }
        };
        if moved.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "data request {id} is no longer {expected}"
            )));
        }
        sqlx::query(
            "INSERT INTO decisions (request_id, duty, user_id, approve, sealed, decided_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.0)
        .bind(decision.duty.as_str())
        .bind(decision.user.0)
        .bind(decision.approve)
        .bind(decision.sealed.as_slice())
        .bind(decision.decided_at.micros())
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, || format!("a decision by a {} on data request {id}", decision.duty)))?;
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_collections(
        &self,
        request: DataRequestId,
        expected: RequestStatus,
        next: RequestStatus,
        sealed: Option<Vec<u8>>,
        collections: Vec<NewCollection>,
        outbox: Vec<NewOutboxMessage>,
        audit: AuditEntry,
    ) -> Result<Vec<Collection>> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        let row = sqlx::query("SELECT case_id, status FROM data_requests WHERE id = $1")
            .bind(request.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("data request {request}")))?;
        let case: i64 = row.try_get("case_id")?;
        let status: String = row.try_get("status")?;
        if status != expected.as_str() {
            return Err(StoreError::Conflict(format!(
                "data request {request} is {status}, not {expected}"
            )));
        }
        Self::case_open(&mut tx, case).await?;
        sqlx::query("UPDATE data_requests SET status = $1 WHERE id = $2")
            .bind(next.as_str())
            .bind(request.0)
            .execute(&mut *tx)
            .await?;
        if let Some(sealed) = sealed {
            sqlx::query("UPDATE data_requests SET sealed = $1 WHERE id = $2")
                .bind(sealed.as_slice())
                .bind(request.0)
                .execute(&mut *tx)
                .await?;
        }
        let now = Timestamp::now().micros();
        let mut out = Vec::with_capacity(collections.len());
        for c in collections {
            let row = sqlx::query(&format!(
                "INSERT INTO collections (request_id, case_id, node, purpose, exchange_id, status, sealed, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLLECTION_COLUMNS}"
            ))
            .bind(request.0)
            .bind(case)
            .bind(c.node.as_str())
            .bind(c.purpose.as_str())
            .bind(c.exchange_id.as_str())
            .bind(CollectionStatus::Pending.as_str())
            .bind(c.sealed.as_slice())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| map_unique(e, || format!("exchange id {}", c.exchange_id)))?;
            let mut record = collection_from(&row, false)?;
            record.sealed = c.sealed;
            out.push(record);
        }
        Self::insert_outbox(&mut tx, &outbox, now).await?;
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn collection_metas(
        &self,
        case: Option<CaseId>,
        status: Option<CollectionStatus>,
    ) -> Result<Vec<Collection>> {
        let mut sql = format!("SELECT {COLLECTION_COLUMNS} FROM collections WHERE 1 = 1");
        let mut n = 0;
        if case.is_some() {
            n += 1;
            sql.push_str(&format!(" AND case_id = ${n}"));
        }
        if status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND status = ${n}"));
        }
        sql.push_str(" ORDER BY id");
        let mut q = sqlx::query(&sql);
        if let Some(c) = case {
            q = q.bind(c.0);
        }
        if let Some(s) = status {
            q = q.bind(s.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(|r| collection_from(r, false)).collect()
    }

    async fn read_collection(&self, id: i64, audit: AuditEntry) -> Result<Option<Collection>> {
        let mut tx = self.begin_tx().await?;
        let row = sqlx::query(&format!(
            "SELECT {COLLECTION_COLUMNS}, sealed FROM collections WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let c = collection_from(&row, true)?;
        Self::audit_reads(tx, audit).await?;
        Ok(Some(c))
    }

    async fn finish_collection(
        &self,
        id: i64,
        status: CollectionStatus,
        detail: Option<String>,
        answer: Option<Vec<u8>>,
        audit: AuditEntry,
    ) -> Result<()> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        let row = sqlx::query("SELECT case_id FROM collections WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("collection {id}")))?;
        // A closing or closed response takes no new data.
        Self::case_open(&mut tx, row.try_get("case_id")?).await?;
        let done = sqlx::query(
            "UPDATE collections SET status = $1, detail = $2, finished_at = $3 WHERE id = $4 AND status = $5",
        )
        .bind(status.as_str())
        .bind(detail.as_deref())
        .bind(Timestamp::now().micros())
        .bind(id)
        .bind(CollectionStatus::Pending.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "collection {id} is no longer pending"
            )));
        }
        if let Some(answer) = answer {
            sqlx::query("INSERT INTO collected (collection_id, sealed) VALUES ($1, $2)")
                .bind(id)
                .bind(answer.as_slice())
                .execute(&mut *tx)
                .await?;
        }
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_request_status(
        &self,
        id: DataRequestId,
        expected: RequestStatus,
        next: RequestStatus,
    ) -> Result<bool> {
        let done =
            sqlx::query("UPDATE data_requests SET status = $1 WHERE id = $2 AND status = $3")
                .bind(next.as_str())
                .bind(id.0)
                .bind(expected.as_str())
                .execute(self.write_pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn answers(
        &self,
        case: CaseId,
        purpose: Option<CollectionPurpose>,
        audit: AuditEntry,
    ) -> Result<Vec<(Collection, Vec<u8>)>> {
        let mut tx = self.begin_tx().await?;
        let rows = sqlx::query(
            "SELECT l.id, l.request_id, l.case_id, l.node, l.purpose, l.exchange_id, l.status, l.detail, \
             l.created_at, l.finished_at, a.sealed AS answer FROM collections l \
             JOIN collected a ON a.collection_id = l.id WHERE l.case_id = $1 \
             AND ($2 = '' OR l.purpose = $2) ORDER BY l.id",
        )
        .bind(case.0)
        .bind(purpose.map_or("", |p| p.as_str()))
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push((collection_from(r, false)?, r.try_get("answer")?));
        }
        Self::audit_reads(tx, audit).await?;
        Ok(out)
    }

    async fn put_contacts(
        &self,
        case: CaseId,
        contacts: Vec<NewContact>,
        audit: AuditEntry,
    ) -> Result<u64> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        Self::case_open(&mut tx, case.0).await?;
        let before = {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM contacts WHERE case_id = $1")
                .bind(case.0)
                .fetch_one(&mut *tx)
                .await?;
            row.try_get::<i64, _>("n")?
        };
        let now = Timestamp::now().micros();
        for chunk in contacts.chunks(200) {
            let mut qb = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO contacts (case_id, tag, status, overlap_minutes, sealed, updated_at) ",
            );
            qb.push_values(chunk, |mut b, c| {
                b.push_bind(case.0)
                    .push_bind(c.tag.clone())
                    .push_bind(ContactStatus::ToNotify.as_str())
                    .push_bind(c.overlap_minutes)
                    .push_bind(c.sealed.clone())
                    .push_bind(now);
            });
            qb.push(
                " ON CONFLICT (case_id, tag) DO UPDATE SET \
                 sealed = CASE WHEN excluded.overlap_minutes > contacts.overlap_minutes THEN excluded.sealed ELSE contacts.sealed END, \
                 overlap_minutes = CASE WHEN excluded.overlap_minutes > contacts.overlap_minutes THEN excluded.overlap_minutes ELSE contacts.overlap_minutes END, \
                 updated_at = excluded.updated_at",
            );
            qb.build().execute(&mut *tx).await?;
        }
        let after = {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM contacts WHERE case_id = $1")
                .bind(case.0)
                .fetch_one(&mut *tx)
                .await?;
            row.try_get::<i64, _>("n")?
        };
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(u64::try_from(after - before).unwrap_or(0))
    }

    async fn read_contacts(
        &self,
        response: ResponseId,
        case: Option<CaseId>,
        audit: AuditEntry,
    ) -> Result<Vec<ContactRecord>> {
        let mut tx = self.begin_tx().await?;
        let rows = match case {
            Some(c) => {
                sqlx::query(&format!(
                    "SELECT {CONTACT_COLUMNS}, sealed FROM contacts WHERE case_id = $1 \
                 AND case_id IN (SELECT id FROM cases WHERE response_id = $2) ORDER BY id"
                ))
                .bind(c.0)
                .bind(response.0)
                .fetch_all(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {CONTACT_COLUMNS}, sealed FROM contacts WHERE case_id IN \
                 (SELECT id FROM cases WHERE response_id = $1) ORDER BY id"
                ))
                .bind(response.0)
                .fetch_all(&mut *tx)
                .await?
            }
        };
        let contacts = rows
            .iter()
            .map(|r| contact_from(r, true))
            .collect::<Result<Vec<_>>>()?;
        Self::audit_reads(tx, audit).await?;
        Ok(contacts)
    }

    async fn read_contact(
        &self,
        id: ContactId,
        audit: AuditEntry,
    ) -> Result<Option<ContactRecord>> {
        let mut tx = self.begin_tx().await?;
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS}, sealed FROM contacts WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let contact = row.as_ref().map(|r| contact_from(r, true)).transpose()?;
        Self::audit_reads(tx, audit).await?;
        Ok(contact)
    }

    async fn contact_meta(&self, id: ContactId) -> Result<Option<ContactRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| contact_from(r, false)).transpose()
    }

    async fn set_contact_status(
        &self,
        id: ContactId,
        expected: ContactStatus,
        status: ContactStatus,
        new_case: Option<NewCase>,
        outbox: Vec<NewOutboxMessage>,
        audit: AuditEntry,
    ) -> Result<Option<CaseRecord>> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        let row = sqlx::query("SELECT case_id, status, linked_case_id FROM contacts WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("contact {id}")))?;
        let response = Self::case_open(&mut tx, row.try_get("case_id")?).await?;
        // Under the ledger lock: a change made meanwhile is seen.
        let current: String = row.try_get("status")?;
        let linked: Option<i64> = row.try_get("linked_case_id")?;
        if current != expected.as_str() {
            return Err(StoreError::Conflict(format!(
                "contact {id} changed meanwhile: it is {current} now"
            )));
        }
        if new_case.is_some() && linked.is_some() {
            return Err(StoreError::Conflict(format!(
                "contact {id} already became a case"
            )));
        }
        let now = Timestamp::now().micros();
        let created = match new_case {
            Some(c) if c.response.0 == response => Some(Self::insert_case(&mut tx, c, now).await?),
            Some(c) => {
                return Err(StoreError::Conflict(format!(
                    "contact {id} belongs to response {response}, not to response {}",
                    c.response
                )))
            }
            None => None,
        };
        let linked_case = created.as_ref().map(|c| c.id);
        sqlx::query(
            "UPDATE contacts SET status = $1, linked_case_id = COALESCE($2, linked_case_id), updated_at = $3 WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(linked_case.map(|c| c.0))
        .bind(now)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        Self::insert_outbox(&mut tx, &outbox, now).await?;
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn read_outbox(
        &self,
        response: ResponseId,
        case: Option<CaseId>,
        audit: AuditEntry,
    ) -> Result<Vec<OutboxMessage>> {
        let base = "SELECT id, response_id, case_id, kind, sealed, created_at, sent_at FROM outbox WHERE response_id = $1";
        let mut tx = self.begin_tx().await?;
        let rows = match case {
            Some(c) => {
                sqlx::query(&format!("{base} AND case_id = $2 ORDER BY id"))
                    .bind(response.0)
                    .bind(c.0)
                    .fetch_all(&mut *tx)
                    .await?
            }
            None => {
                sqlx::query(&format!("{base} ORDER BY id"))
                    .bind(response.0)
                    .fetch_all(&mut *tx)
                    .await?
            }
        };
        let messages = rows.iter().map(outbox_from).collect::<Result<Vec<_>>>()?;
        Self::audit_reads(tx, audit).await?;
        Ok(messages)
    }

    async fn unsent_outbox(&self, limit: u32, audit: AuditEntry) -> Result<Vec<OutboxMessage>> {
        let mut tx = self.begin_tx().await?;
        let rows = sqlx::query(
            "SELECT o.id, o.response_id, o.case_id, o.kind, o.sealed, o.created_at, o.sent_at FROM outbox o \
             JOIN responses r ON r.id = o.response_id \
             WHERE o.sent_at IS NULL AND r.status = 'open' ORDER BY o.id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let messages = rows.iter().map(outbox_from).collect::<Result<Vec<_>>>()?;
        if messages.is_empty() {
            tx.commit().await?;
            return Ok(messages);
        }
        Self::audit_reads(tx, audit).await?;
        Ok(messages)
    }

    async fn mark_sent(&self, id: i64, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE outbox SET sent_at = $1 WHERE id = $2 AND sent_at IS NULL")
            .bind(at.micros())
            .bind(id)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    async fn investigator_loads(&self) -> Result<Vec<(UserId, Region, u64)>> {
        let rows = sqlx::query(
            "SELECT d.user_id, d.region, COUNT(c.id) AS n FROM user_duties d \
             JOIN users u ON u.id = d.user_id AND u.machine_client = FALSE \
             LEFT JOIN case_assignments a ON a.user_id = d.user_id \
             LEFT JOIN cases c ON c.id = a.case_id AND c.status = 'open' \
             WHERE d.duty = 'investigator' GROUP BY d.user_id, d.region ORDER BY d.user_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let region: String = r.try_get("region")?;
                let n: i64 = r.try_get("n")?;
                Ok((
                    UserId(r.try_get("user_id")?),
                    Region::parse(&region).map_err(corrupt)?,
                    u64::try_from(n).unwrap_or(0),
                ))
            })
            .collect()
    }

    async fn set_node_route(&self, name: &str, route: NodeRoute, audit: AuditEntry) -> Result<()> {
        let (mut tx, mut frontier) = self.begin_ledger().await?;
        let done = sqlx::query("UPDATE nodes SET url = $1, kind = $2, code = $3 WHERE name = $4")
            .bind(route.url.as_str())
            .bind(route.kind.as_str())
            .bind(route.code.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("node {name:?}")));
        }
        Self::append_in(&mut tx, &mut frontier, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}
