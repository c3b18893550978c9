//! support's SQL, for the backend that mounts it (see `crate::store::sql`).

use super::*;

pub(super) const TICKET_COLUMNS: &str =
    "id, institution_id, opened_by, kind, subject, status, created_at, updated_at";

pub(super) fn ticket_from(row: &DbRow) -> Result<Ticket> {
    Ok(Ticket {
        id: civic_core::mydata::TicketId(row.try_get("id")?),
        institution: InstitutionId(row.try_get("institution_id")?),
        opened_by: UserId(row.try_get("opened_by")?),
        kind: civic_core::mydata::TicketKind::parse(&row.try_get::<String, _>("kind")?)
            .map_err(|e| corrupt(format!("ticket kind: {e}")))?,
        subject: row.try_get("subject")?,
        status: civic_core::mydata::TicketStatus::parse(&row.try_get::<String, _>("status")?)
            .map_err(|e| corrupt(format!("ticket status: {e}")))?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

/// Adds a message to a ticket's thread.
pub(super) async fn add_message(
    tx: &mut Tx,
    ticket: civic_core::mydata::TicketId,
    user: UserId,
    text: &str,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO support_messages (ticket_id, user_id, text, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(ticket.0)
    .bind(user.0)
    .bind(text)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn training_in(
    store: &Engine,
    id: civic_core::mydata::TrainingId,
) -> Result<Option<Training>> {
    let Some(row) = sqlx::query(
        "SELECT id, title, held_on, place, materials, created_by, created_at FROM training_sessions WHERE id = $1",
    )
    .bind(id.0)
    .fetch_optional(store.reads())
    .await?
    else {
        return Ok(None);
    };
    let attendees = sqlx::query(
        "SELECT institution_id, name FROM training_attendees WHERE session_id = $1 ORDER BY institution_id, name",
    )
    .bind(id.0)
    .fetch_all(store.reads())
    .await?
    .iter()
    .map(|r| Ok((InstitutionId(r.try_get("institution_id")?), r.try_get("name")?)))
    .collect::<Result<Vec<_>>>()?;
    Ok(Some(Training {
        id: civic_core::mydata::TrainingId(row.try_get("id")?),
        title: row.try_get("title")?,
        held_on: row.try_get("held_on")?,
        place: row.try_get("place")?,
        materials: row.try_get("materials")?,
        created_by: UserId(row.try_get("created_by")?),
        created_at: ts(row.try_get("created_at")?),
        attendees,
    }))
}

impl crate::store::SupportStore for Engine {
    async fn open_ticket(
        &self,
        institution: InstitutionId,
        user: UserId,
        kind: civic_core::mydata::TicketKind,
        subject: &str,
        text: &str,
        audit: AuditEntry,
    ) -> Result<Ticket> {
        let mut tx = self.audited().await?;
        let now = Timestamp::now().micros();
        let row = sqlx::query(&format!(
            "INSERT INTO support_tickets (institution_id, opened_by, kind, subject, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $6, $5, $5) RETURNING {TICKET_COLUMNS}"
        ))
        .bind(institution.0)
        .bind(user.0)
        .bind(kind.as_str())
        .bind(subject)
        .bind(now)
        .bind(civic_core::mydata::TicketStatus::Open.as_str())
        .fetch_one(&mut **tx)
        .await?;
        let ticket = ticket_from(&row)?;
        add_message(&mut tx, ticket.id, user, text, now).await?;
        let mut audit = audit;
        audit.resource = format!("support-ticket:{}", ticket.id);
        tx.commit(audit).await?;
        Ok(ticket)
    }

    async fn tickets(
        &self,
        institution: Option<InstitutionId>,
        before: Option<civic_core::mydata::TicketId>,
        limit: i64,
    ) -> Result<Vec<Ticket>> {
        let mut conditions = Vec::new();
        if institution.is_some() {
            conditions.push(format!("institution_id = ${}", conditions.len() + 1));
        }
        if before.is_some() {
            conditions.push(format!("id < ${}", conditions.len() + 1));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM support_tickets {filter} ORDER BY id DESC LIMIT ${}",
            conditions.len() + 1
        );
        let mut query = sqlx::query(&sql);
        if let Some(i) = institution {
            query = query.bind(i.0);
        }
        if let Some(b) = before {
            query = query.bind(b.0);
        }
        let rows = query.bind(limit).fetch_all(self.reads()).await?;
        rows.iter().map(ticket_from).collect()
    }

    async fn messages_of_tickets(
        &self,
        ids: &[civic_core::mydata::TicketId],
    ) -> Result<Vec<TicketMessage>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT ticket_id, user_id, text, created_at FROM support_messages WHERE ticket_id IN ({}) ORDER BY id",
            marks.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id.0);
        }
        let rows = query.fetch_all(self.reads()).await?;
        rows.iter()
            .map(|r| {
                Ok(TicketMessage {
                    ticket: civic_core::mydata::TicketId(r.try_get("ticket_id")?),
                    user: UserId(r.try_get("user_id")?),
                    text: r.try_get("text")?,
                    created_at: ts(r.try_get("created_at")?),
                })
            })
            .collect()
    }

    async fn ticket(&self, id: civic_core::mydata::TicketId) -> Result<Option<Ticket>> {
        let row = sqlx::query(&format!(
            "SELECT {TICKET_COLUMNS} FROM support_tickets WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(self.reads())
        .await?;
        row.as_ref().map(ticket_from).transpose()
    }

    async fn update_ticket(
        &self,
        id: civic_core::mydata::TicketId,
        user: UserId,
        text: Option<&str>,
        close: bool,
        by_agent: bool,
        audit: AuditEntry,
    ) -> Result<Ticket> {
        // The ledger lock serialises writers: the status read here
        // is the one changed.
        let mut tx = self.audited().await?;
        let now = Timestamp::now().micros();
        let before = sqlx::query(&format!(
            "SELECT {TICKET_COLUMNS} FROM support_tickets WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("ticket {id}")))?;
        let status = ticket_from(&before)?
            .status
            .after(close, by_agent)
            .map_err(|why| StoreError::Conflict(format!("ticket {id} is {why}")))?;
        let row = sqlx::query(&format!(
            "UPDATE support_tickets SET status = $1, updated_at = $2 WHERE id = $3 RETURNING {TICKET_COLUMNS}"
        ))
        .bind(status.as_str())
        .bind(now)
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("ticket {id}")))?;
        let ticket = ticket_from(&row)?;
        if let Some(text) = text {
            add_message(&mut tx, id, user, text, now).await?;
        }
        let mut audit = audit;
        audit.resource = format!("support-ticket:{id}");
        tx.commit(audit).await?;
        Ok(ticket)
    }

    async fn create_training(
        &self,
        title: &str,
        held_on: &str,
        place: &str,
        materials: &str,
        user: UserId,
        audit: AuditEntry,
    ) -> Result<Training> {
        let mut tx = self.audited().await?;
        let id = civic_core::mydata::TrainingId(sqlx::query_scalar(
            "INSERT INTO training_sessions (title, held_on, place, materials, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(title)
        .bind(held_on)
        .bind(place)
        .bind(materials)
        .bind(user.0)
        .bind(Timestamp::now().micros())
        .fetch_one(&mut **tx)
        .await?);
        let mut audit = audit;
        audit.resource = format!("training:{id}");
        tx.commit(audit).await?;
        training_in(self, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("training {id}")))
    }

    async fn add_attendee(
        &self,
        session: civic_core::mydata::TrainingId,
        institution: InstitutionId,
        name: &str,
        audit: AuditEntry,
    ) -> Result<Training> {
        let mut tx = self.audited().await?;
        sqlx::query(
            "INSERT INTO training_attendees (session_id, institution_id, name) VALUES ($1, $2, $3)",
        )
        .bind(session.0)
        .bind(institution.0)
        .bind(name)
        .execute(&mut **tx)
        .await
        .map_err(|e| map_unique(e, || format!("attendee {name:?}")))?;
        let mut audit = audit;
        audit.resource = format!("training:{session}");
        tx.commit(audit).await?;
        training_in(self, session)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("training {session}")))
    }

    async fn training(&self, id: civic_core::mydata::TrainingId) -> Result<Option<Training>> {
        training_in(self, id).await
    }

    async fn trainings(&self) -> Result<Vec<Training>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM training_sessions ORDER BY held_on DESC, id DESC")
                .fetch_all(self.reads())
                .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(t) = training_in(self, civic_core::mydata::TrainingId(id)).await? {
                out.push(t);
            }
        }
        Ok(out)
    }
}
