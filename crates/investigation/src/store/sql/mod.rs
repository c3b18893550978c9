//! The investigation's SQL, written once and compiled once per backend
//! (see `civic_store::kit`): the rows, the helpers, responses and cases;
//! data requests in `requests.rs`, contacts in `contacts.rs`.

use super::{Db, Engine};
use crate::store::*;
use civic_core::audit::AuditEntry;
use civic_core::identity::{Region, UserId};
use civic_core::time::Timestamp;
use civic_store::kit::{changed, corrupt, map_unique, ts, Backend};
use sqlx::Row;
use std::collections::HashMap;

type Tx = sqlx::Transaction<'static, Db>;
type DbRow = <Db as sqlx::Database>::Row;

mod contacts;
mod requests;

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

/// The case a row holds (if any), with its assignments.
pub(super) async fn case_of_row(tx: &mut Tx, row: Option<DbRow>) -> Result<Option<CaseRecord>> {
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(with_assignments(tx, vec![case_from(&row, false)?])
        .await?
        .pop())
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
    let response = response_of_case(tx, case).await?;
    check_open(tx, response).await?;
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

pub(super) async fn assignments(tx: &mut Tx, cases: &[i64]) -> Result<HashMap<i64, Vec<UserId>>> {
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
    let mut map = assignments(tx, &ids).await?;
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
    with_decisions(tx, requests, sealed).await
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
        cases: count(tx, "SELECT COUNT(*) AS n FROM cases WHERE response_id = $1", response).await?,
        documents: count(tx, &of_cases("case_documents", "case_id"), response).await?,
        data_requests: count(tx, &of_cases("data_requests", "case_id"), response).await?,
        decisions: count(
            tx,
            "SELECT COUNT(*) AS n FROM decisions WHERE request_id IN \
             (SELECT r.id FROM data_requests r JOIN cases c ON c.id = r.case_id WHERE c.response_id = $1)",
            response,
        )
        .await?,
        collections: count(tx, &of_cases("collections", "case_id"), response).await?,
        answers: count(
            tx,
            "SELECT COUNT(*) AS n FROM collected WHERE collection_id IN \
             (SELECT l.id FROM collections l JOIN cases c ON c.id = l.case_id WHERE c.response_id = $1)",
            response,
        )
        .await?,
        contacts: count(tx, &of_cases("contacts", "case_id"), response).await?,
        outbox: count(tx, "SELECT COUNT(*) AS n FROM outbox WHERE response_id = $1", response).await?,
    })
}

impl ResponseStore for Engine {
    async fn create_response(&self, new: NewResponse, audit: AuditEntry) -> Result<Response> {
        let mut tx = self.audited().await?;
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
        .fetch_one(&mut **tx)
        .await?;
        let response = response_from(&row)?;
        sqlx::query("INSERT INTO response_keys (response_id, key_sealed) VALUES ($1, $2)")
            .bind(response.id.0)
            .bind(new.key_sealed.as_slice())
            .execute(&mut **tx)
            .await?;
        let mut audit = audit;
        audit.resource = format!("response:{}", response.id);
        tx.commit(audit).await?;
        Ok(response)
    }

    async fn responses(&self) -> Result<Vec<Response>> {
        let rows = sqlx::query(&format!(
            "SELECT {RESPONSE_COLUMNS} FROM responses ORDER BY id"
        ))
        .fetch_all(self.reads())
        .await?;
        rows.iter().map(response_from).collect()
    }

    async fn response(&self, id: ResponseId) -> Result<Option<Response>> {
        let row = sqlx::query(&format!(
            "SELECT {RESPONSE_COLUMNS} FROM responses WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(self.reads())
        .await?;
        row.as_ref().map(response_from).transpose()
    }

    async fn response_key(&self, id: ResponseId) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT key_sealed FROM response_keys WHERE response_id = $1")
            .bind(id.0)
            .fetch_optional(self.reads())
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
        let mut tx = self.audited().await?;
        let done = sqlx::query("UPDATE responses SET status = $1 WHERE id = $2 AND status = $3")
            .bind(to.as_str())
            .bind(id.0)
            .bind(from.as_str())
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(match self.response(id).await? {
                None => StoreError::NotFound(format!("response {id}")),
                Some(r) => {
                    StoreError::Conflict(format!("response {id} is {}, not {from}", r.status))
                }
            });
        }
        tx.commit(audit).await?;
        Ok(())
    }

    async fn response_counts(&self, id: ResponseId) -> Result<ResponseCounts> {
        let mut tx = self.reads().begin().await?;
        let counts = counts_in(&mut tx, id.0).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn exchange_ids(&self, id: ResponseId) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT l.node, l.exchange_id FROM collections l JOIN cases c ON c.id = l.case_id \
             WHERE c.response_id = $1 ORDER BY l.id",
        )
        .bind(id.0)
        .fetch_all(self.reads())
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
        let mut tx = self.audited().await?;
        let r = id.0;
        let status = sqlx::query("SELECT status FROM responses WHERE id = $1")
            .bind(r)
            .fetch_optional(&mut **tx)
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
            .execute(&mut **tx)
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
            sqlx::query(&sql).bind(r).execute(&mut **tx).await?;
        }
        let now = Timestamp::now().micros();
        sqlx::query("UPDATE responses SET status = $1, closed_at = $2 WHERE id = $3")
            .bind(ResponseStatus::Closed.as_str())
            .bind(now)
            .bind(r)
            .execute(&mut **tx)
            .await?;
        let row = sqlx::query(
            "INSERT INTO deletion_certificates (response_id, body, signature, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id, response_id, body, signature, created_at",
        )
        .bind(r)
        .bind(certificate.as_str())
        .bind(signature.as_str())
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        let cert = certificate_from(&row)?;
        tx.commit(audit).await?;
        Ok(cert)
    }

    async fn deletion_certificates(&self, id: ResponseId) -> Result<Vec<DeletionCertificate>> {
        let rows = sqlx::query(
            "SELECT id, response_id, body, signature, created_at FROM deletion_certificates \
             WHERE response_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(self.reads())
        .await?;
        rows.iter().map(certificate_from).collect()
    }
}

impl CaseStore for Engine {
    async fn create_cases(&self, new: Vec<NewCase>, audit: AuditEntry) -> Result<Vec<CaseRecord>> {
        let mut tx = self.audited().await?;
        let mut checked: Vec<i64> = Vec::new();
        let now = Timestamp::now().micros();
        let mut out = Vec::with_capacity(new.len());
        for c in new {
            if !checked.contains(&c.response.0) {
                check_open(&mut tx, c.response.0).await?;
                checked.push(c.response.0);
            }
            out.push(insert_case(&mut tx, c, now).await?);
        }
        tx.commit(audit).await?;
        Ok(out)
    }

    async fn case_meta(&self, id: CaseId) -> Result<Option<CaseRecord>> {
        let mut tx = self.reads().begin().await?;
        let row = sqlx::query(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        let out = case_of_row(&mut tx, row).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn case_by_number(
        &self,
        response: ResponseId,
        number: &str,
    ) -> Result<Option<CaseRecord>> {
        let mut tx = self.reads().begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE response_id = $1 AND number = $2"
        ))
        .bind(response.0)
        .bind(number)
        .fetch_optional(&mut *tx)
        .await?;
        let out = case_of_row(&mut tx, row).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn case_metas(&self, response: ResponseId) -> Result<Vec<CaseRecord>> {
        let mut tx = self.reads().begin().await?;
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
        let cases = with_assignments(&mut tx, cases).await?;
        tx.commit().await?;
        Ok(cases)
    }

    async fn read_cases(
        &self,
        response: ResponseId,
        ids: &[CaseId],
        audit: AuditEntry,
    ) -> Result<Vec<CaseRecord>> {
        let mut tx = self.begin().await?;
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
        let cases = with_assignments(&mut tx, cases).await?;
        Self::commit_reads(tx, audit).await?;
        Ok(cases)
    }

    async fn assign_case(&self, id: CaseId, users: Vec<UserId>, audit: AuditEntry) -> Result<()> {
        let mut tx = self.audited().await?;
        case_open(&mut tx, id.0).await?;
        sqlx::query("DELETE FROM case_assignments WHERE case_id = $1")
            .bind(id.0)
            .execute(&mut **tx)
            .await?;
        for u in &users {
            sqlx::query("INSERT INTO case_assignments (case_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id.0)
                .bind(u.0)
                .execute(&mut **tx)
                .await?;
        }
        tx.commit(audit).await?;
        Ok(())
    }

    async fn put_document(
        &self,
        case: CaseId,
        kind: CaseDocument,
        sealed: Vec<u8>,
        audit: AuditEntry,
    ) -> Result<()> {
        self.put_documents(vec![(case, kind, sealed)], audit).await
    }

    async fn put_documents(
        &self,
        documents: Vec<(CaseId, CaseDocument, Vec<u8>)>,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut tx = self.audited().await?;
        let mut checked: Vec<i64> = Vec::new();
        let now = Timestamp::now().micros();
        for (case, kind, sealed) in &documents {
            let response = response_of_case(&mut tx, case.0).await?;
            if !checked.contains(&response) {
                check_open(&mut tx, response).await?;
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
            .execute(&mut **tx)
            .await?;
        }
        tx.commit(audit).await?;
        Ok(())
    }

    async fn documents(
        &self,
        response: ResponseId,
        cases: &[CaseId],
        kind: CaseDocument,
        audit: AuditEntry,
    ) -> Result<Vec<(CaseId, Vec<u8>)>> {
        let mut tx = self.begin().await?;
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
        Self::commit_reads(tx, audit).await?;
        Ok(out)
    }

    async fn sealed_routes(
        &self,
        response: ResponseId,
        audit: AuditEntry,
    ) -> Result<Vec<SealedRoutes>> {
        let mut tx = self.begin().await?;
        // In the order of `cases_by_response`: no sort of the blobs.
        let rows = sqlx::query(
            "SELECT c.id, c.number, c.sealed, t.sealed AS timeline, p.sealed AS published \
             FROM cases c \
             LEFT JOIN case_documents t ON t.case_id = c.id AND t.kind = $2 \
             LEFT JOIN case_documents p ON p.case_id = c.id AND p.kind = $3 \
             WHERE c.response_id = $1 ORDER BY c.id",
        )
        .bind(response.0)
        .bind(CaseDocument::Timeline.as_str())
        .bind(CaseDocument::PublishedRoute.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(SealedRoutes {
                id: CaseId(r.try_get("id")?),
                number: r.try_get("number")?,
                sealed: r.try_get("sealed")?,
                timeline: r.try_get("timeline")?,
                published: r.try_get("published")?,
            });
        }
        drop(rows);
        Self::commit_reads(tx, audit).await?;
        Ok(out)
    }

    async fn investigator_loads(&self) -> Result<Vec<(UserId, Region, u64)>> {
        let rows = sqlx::query(
            "SELECT d.user_id, d.region, COUNT(c.id) AS n FROM user_duties d \
             JOIN users u ON u.id = d.user_id AND u.machine_client = FALSE \
             LEFT JOIN case_assignments a ON a.user_id = d.user_id \
             LEFT JOIN cases c ON c.id = a.case_id AND c.status = 'open' \
             WHERE d.duty = 'investigator' GROUP BY d.user_id, d.region ORDER BY d.user_id",
        )
        .fetch_all(self.reads())
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
}
