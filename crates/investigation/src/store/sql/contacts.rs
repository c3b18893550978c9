//! Contacts and the notification outbox: the SQL, for the backend that
//! mounts it.

use super::*;

impl ContactStore for Engine {
    async fn put_contacts(
        &self,
        case: CaseId,
        contacts: Vec<NewContact>,
        audit: AuditEntry,
    ) -> Result<u64> {
        let mut tx = self.audited().await?;
        case_open(&mut tx, case.0).await?;
        let before = {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM contacts WHERE case_id = $1")
                .bind(case.0)
                .fetch_one(&mut **tx)
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
            qb.build().execute(&mut **tx).await?;
        }
        let after = {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM contacts WHERE case_id = $1")
                .bind(case.0)
                .fetch_one(&mut **tx)
                .await?;
            row.try_get::<i64, _>("n")?
        };
        tx.commit(audit).await?;
        Ok(u64::try_from(after - before).unwrap_or(0))
    }

    async fn read_contacts(
        &self,
        response: ResponseId,
        case: Option<CaseId>,
        audit: AuditEntry,
    ) -> Result<Vec<ContactRecord>> {
        let mut tx = self.begin().await?;
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
        Self::commit_reads(tx, audit).await?;
        Ok(contacts)
    }

    async fn read_contact(
        &self,
        id: ContactId,
        audit: AuditEntry,
    ) -> Result<Option<ContactRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS}, sealed FROM contacts WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let contact = row.as_ref().map(|r| contact_from(r, true)).transpose()?;
        Self::commit_reads(tx, audit).await?;
        Ok(contact)
    }

    async fn contact_meta(&self, id: ContactId) -> Result<Option<ContactRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(self.reads())
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
        let mut tx = self.audited().await?;
        let row = sqlx::query("SELECT case_id, status, linked_case_id FROM contacts WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("contact {id}")))?;
        let response = case_open(&mut tx, row.try_get("case_id")?).await?;
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
            Some(c) if c.response.0 == response => Some(insert_case(&mut tx, c, now).await?),
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
        .execute(&mut **tx)
        .await?;
        insert_outbox(&mut tx, &outbox, now).await?;
        tx.commit(audit).await?;
        Ok(created)
    }

    async fn read_outbox(
        &self,
        response: ResponseId,
        case: Option<CaseId>,
        audit: AuditEntry,
    ) -> Result<Vec<OutboxMessage>> {
        let base = "SELECT id, response_id, case_id, kind, sealed, created_at, sent_at FROM outbox WHERE response_id = $1";
        let mut tx = self.begin().await?;
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
        Self::commit_reads(tx, audit).await?;
        Ok(messages)
    }

    async fn unsent_outbox(&self, limit: u32, audit: AuditEntry) -> Result<Vec<OutboxMessage>> {
        let mut tx = self.begin().await?;
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
        Self::commit_reads(tx, audit).await?;
        Ok(messages)
    }

    async fn mark_sent(&self, id: i64, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE outbox SET sent_at = $1 WHERE id = $2 AND sent_at IS NULL")
            .bind(at.micros())
            .bind(id)
            .execute(self.writes())
            .await?;
        Ok(())
    }
}
