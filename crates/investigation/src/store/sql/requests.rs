//! Data requests, their decisions and collections, and the nodes' routes:
//! the SQL, for the backend that mounts it.

use super::*;

impl DataRequestStore for Engine {
    async fn create_data_request(
        &self,
        new: NewDataRequest,
        audit: AuditEntry,
    ) -> Result<DataRequest> {
        let mut tx = self.audited().await?;
        let response = case_open(&mut tx, new.case.0).await?;
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
        .fetch_one(&mut **tx)
        .await?;
        let id = DataRequestId(row.try_get("id")?);
        let mut audit = audit;
        audit.resource = format!("data_request:{id}");
        tx.commit(audit).await?;
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
        let mut tx = self.reads().begin().await?;
        let requests = requests_where(&mut tx, &filter, false).await?;
        tx.commit().await?;
        Ok(requests)
    }

    async fn read_requests(
        &self,
        filter: RequestFilter,
        audit: AuditEntry,
    ) -> Result<Vec<DataRequest>> {
        let mut tx = self.begin().await?;
        let requests = requests_where(&mut tx, &filter, true).await?;
        Self::commit_reads(tx, audit).await?;
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
        let mut tx = self.audited().await?;
        let row = sqlx::query("SELECT case_id FROM data_requests WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("data request {id}")))?;
        case_open(&mut tx, row.try_get("case_id")?).await?;
        let moved = match &sealed {
            Some(s) => sqlx::query(
                "UPDATE data_requests SET status = $1, sealed = $2 WHERE id = $3 AND status = $4",
            )
            .bind(next.as_str())
            .bind(s.as_slice())
            .bind(id.0)
            .bind(expected.as_str())
            .execute(&mut **tx)
            .await?,
            None => {
                sqlx::query("UPDATE data_requests SET status = $1 WHERE id = $2 AND status = $3")
                    .bind(next.as_str())
                    .bind(id.0)
                    .bind(expected.as_str())
                    .execute(&mut **tx)
                    .await?
            }
        };
        changed(moved.rows_affected(), || {
            StoreError::Conflict(format!("data request {id} is no longer {expected}"))
        })?;
        sqlx::query(
            "INSERT INTO decisions (request_id, duty, user_id, approve, sealed, decided_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.0)
        .bind(decision.duty.as_str())
        .bind(decision.user.0)
        .bind(decision.approve)
        .bind(decision.sealed.as_slice())
        .bind(decision.decided_at.micros())
        .execute(&mut **tx)
        .await
        .map_err(|e| map_unique(e, || format!("a decision by a {} on data request {id}", decision.duty)))?;
        tx.commit(audit).await?;
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
        let mut tx = self.audited().await?;
        let row = sqlx::query("SELECT case_id, status FROM data_requests WHERE id = $1")
            .bind(request.0)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("data request {request}")))?;
        let case: i64 = row.try_get("case_id")?;
        let status: String = row.try_get("status")?;
        if status != expected.as_str() {
            return Err(StoreError::Conflict(format!(
                "data request {request} is {status}, not {expected}"
            )));
        }
        case_open(&mut tx, case).await?;
        sqlx::query("UPDATE data_requests SET status = $1 WHERE id = $2")
            .bind(next.as_str())
            .bind(request.0)
            .execute(&mut **tx)
            .await?;
        if let Some(sealed) = sealed {
            sqlx::query("UPDATE data_requests SET sealed = $1 WHERE id = $2")
                .bind(sealed.as_slice())
                .bind(request.0)
                .execute(&mut **tx)
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
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| map_unique(e, || format!("exchange id {}", c.exchange_id)))?;
            let mut record = collection_from(&row, false)?;
            record.sealed = c.sealed;
            out.push(record);
        }
        insert_outbox(&mut tx, &outbox, now).await?;
        tx.commit(audit).await?;
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
        let rows = q.fetch_all(self.reads()).await?;
        rows.iter().map(|r| collection_from(r, false)).collect()
    }

    async fn read_collection(&self, id: i64, audit: AuditEntry) -> Result<Option<Collection>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {COLLECTION_COLUMNS}, sealed FROM collections WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let c = collection_from(&row, true)?;
        Self::commit_reads(tx, audit).await?;
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
        let mut tx = self.audited().await?;
        let row = sqlx::query("SELECT case_id FROM collections WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("collection {id}")))?;
        // A closing or closed response takes no new data.
        case_open(&mut tx, row.try_get("case_id")?).await?;
        let done = sqlx::query(
            "UPDATE collections SET status = $1, detail = $2, finished_at = $3 WHERE id = $4 AND status = $5",
        )
        .bind(status.as_str())
        .bind(detail.as_deref())
        .bind(Timestamp::now().micros())
        .bind(id)
        .bind(CollectionStatus::Pending.as_str())
        .execute(&mut **tx)
        .await?;
        changed(done.rows_affected(), || {
            StoreError::Conflict(format!("collection {id} is no longer pending"))
        })?;
        if let Some(answer) = answer {
            sqlx::query("INSERT INTO collected (collection_id, sealed) VALUES ($1, $2)")
                .bind(id)
                .bind(answer.as_slice())
                .execute(&mut **tx)
                .await?;
        }
        tx.commit(audit).await?;
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
                .execute(self.writes())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn answers(
        &self,
        case: CaseId,
        purpose: Option<CollectionPurpose>,
        audit: AuditEntry,
    ) -> Result<Vec<(Collection, Vec<u8>)>> {
        let mut tx = self.begin().await?;
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
        Self::commit_reads(tx, audit).await?;
        Ok(out)
    }
}
