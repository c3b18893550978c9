//! mydata's SQL, for the backend that mounts it (see `crate::store::sql`).

use super::*;

use civic_core::mydata::AgreementStatus;
pub(super) const OFFER_COLUMNS: &str =
    "id, holder_id, kind, code, title, description, legal_basis, items, created_at";
pub(super) const AGREEMENT_COLUMNS: &str =
    "id, offer_id, agency_id, service, version, items, purpose, \
    legal_basis, retention_days, status, created_by, created_at, decided_at";

pub(super) fn offer_from(row: &DbRow) -> Result<Offer> {
    Ok(Offer {
        id: civic_core::mydata::OfferId(row.try_get("id")?),
        holder: InstitutionId(row.try_get("holder_id")?),
        kind: row.try_get("kind")?,
        code: row.try_get("code")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        legal_basis: row.try_get("legal_basis")?,
        items: from_json_text("items", &row.try_get::<String, _>("items")?)?,
        created_at: ts(row.try_get("created_at")?),
    })
}

pub(super) fn agreement_from(row: &DbRow) -> Result<Agreement> {
    Ok(Agreement {
        id: civic_core::mydata::AgreementId(row.try_get("id")?),
        offer: civic_core::mydata::OfferId(row.try_get("offer_id")?),
        agency: InstitutionId(row.try_get("agency_id")?),
        service: row.try_get("service")?,
        version: row.try_get("version")?,
        items: from_json_text("items", &row.try_get::<String, _>("items")?)?,
        purpose: row.try_get("purpose")?,
        legal_basis: row.try_get("legal_basis")?,
        retention_days: row.try_get("retention_days")?,
        status: AgreementStatus::parse(&row.try_get::<String, _>("status")?)
            .map_err(|e| corrupt(format!("agreement status: {e}")))?,
        created_by: UserId(row.try_get("created_by")?),
        created_at: ts(row.try_get("created_at")?),
        decided_at: row.try_get::<Option<i64>, _>("decided_at")?.map(ts),
    })
}

impl crate::store::MydataStore for Engine {
    async fn create_offer(&self, new: NewOffer, audit: AuditEntry) -> Result<Offer> {
        let mut tx = self.audited().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO mydata_offers (holder_id, kind, code, title, description, legal_basis, items, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {OFFER_COLUMNS}"
        ))
        .bind(new.holder.0)
        .bind(&new.kind)
        .bind(&new.code)
        .bind(&new.title)
        .bind(&new.description)
        .bind(&new.legal_basis)
        .bind(json_text(&new.items))
        .bind(Timestamp::now().micros())
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| map_unique(e, || format!("catalogue entry {:?}", new.code)))?;
        let offer = offer_from(&row)?;
        let mut audit = audit;
        audit.resource = format!("mydata-offer:{}", offer.id);
        tx.commit(audit).await?;
        Ok(offer)
    }

    async fn offers(&self) -> Result<Vec<Offer>> {
        let rows = sqlx::query(&format!(
            "SELECT {OFFER_COLUMNS} FROM mydata_offers ORDER BY id"
        ))
        .fetch_all(self.reads())
        .await?;
        rows.iter().map(offer_from).collect()
    }

    async fn offer(&self, id: civic_core::mydata::OfferId) -> Result<Option<Offer>> {
        let row = sqlx::query(&format!(
            "SELECT {OFFER_COLUMNS} FROM mydata_offers WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(self.reads())
        .await?;
        row.as_ref().map(offer_from).transpose()
    }

    async fn apply_agreement(&self, new: NewAgreement, audit: AuditEntry) -> Result<Agreement> {
        let mut tx = self.audited().await?;
        let now = Timestamp::now().micros();
        // The ledger lock serialises writers, so the next version
        // number cannot be taken twice.
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM mydata_agreements WHERE offer_id = $1 AND agency_id = $2 AND service = $3",
        )
        .bind(new.offer.0)
        .bind(new.agency.0)
        .bind(&new.service)
        .fetch_one(&mut **tx)
        .await?;
        let row = sqlx::query(&format!(
            "INSERT INTO mydata_agreements (offer_id, agency_id, service, version, items, purpose, legal_basis, \
             retention_days, status, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $11, $9, $10) RETURNING {AGREEMENT_COLUMNS}"
        ))
        .bind(new.offer.0)
        .bind(new.agency.0)
        .bind(&new.service)
        .bind(last.unwrap_or(0) + 1)
        .bind(json_text(&new.items))
        .bind(&new.purpose)
        .bind(&new.legal_basis)
        .bind(new.retention_days)
        .bind(new.created_by.0)
        .bind(now)
        .bind(AgreementStatus::Applied.as_str())
        .fetch_one(&mut **tx)
        .await?;
        let agreement = agreement_from(&row)?;
        // A new version replaces the earlier ones still under
        // discussion; an approved one stays in force until this one
        // is approved.
        sqlx::query(
            "UPDATE mydata_agreements SET status = $5 WHERE offer_id = $1 AND agency_id = $2 \
             AND service = $3 AND status IN ($6, $7) AND version < $4",
        )
        .bind(new.offer.0)
        .bind(new.agency.0)
        .bind(&new.service)
        .bind(agreement.version)
        .bind(AgreementStatus::Superseded.as_str())
        .bind(AgreementStatus::Applied.as_str())
        .bind(AgreementStatus::Questioned.as_str())
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO mydata_agreement_notes (agreement_id, user_id, kind, text, created_at) VALUES ($1, $2, $5, $3, $4)",
        )
        .bind(agreement.id.0)
        .bind(new.created_by.0)
        .bind(&new.purpose)
        .bind(now)
        .bind(civic_core::mydata::AgreementStep::Apply.as_str())
        .execute(&mut **tx)
        .await?;
        let mut audit = audit;
        audit.resource = format!("mydata-agreement:{}", agreement.id);
        tx.commit(audit).await?;
        Ok(agreement)
    }

    async fn agreements(&self) -> Result<Vec<Agreement>> {
        let rows = sqlx::query(&format!(
            "SELECT {AGREEMENT_COLUMNS} FROM mydata_agreements ORDER BY id"
        ))
        .fetch_all(self.reads())
        .await?;
        rows.iter().map(agreement_from).collect()
    }

    async fn agreement(&self, id: civic_core::mydata::AgreementId) -> Result<Option<Agreement>> {
        let row = sqlx::query(&format!(
            "SELECT {AGREEMENT_COLUMNS} FROM mydata_agreements WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(self.reads())
        .await?;
        row.as_ref().map(agreement_from).transpose()
    }

    async fn note_agreement(&self, note: NewAgreementNote, audit: AuditEntry) -> Result<Agreement> {
        let mut tx = self.audited().await?;
        let now = Timestamp::now().micros();
        let row = sqlx::query(&format!(
            "SELECT {AGREEMENT_COLUMNS} FROM mydata_agreements WHERE id = $1"
        ))
        .bind(note.agreement.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("agreement {}", note.agreement)))?;
        let before = agreement_from(&row)?;
        let to = before
            .status
            .after(note.kind)
            .map_err(|why| StoreError::Conflict(format!("agreement {} is {why}", before.id)))?;
        if let Some(to) = to {
            let decided = to.decided().then_some(now);
            sqlx::query("UPDATE mydata_agreements SET status = $1, decided_at = COALESCE($2, decided_at) WHERE id = $3")
                .bind(to.as_str())
                .bind(decided)
                .bind(before.id.0)
                .execute(&mut **tx)
                .await?;
            if to == AgreementStatus::Approved {
                sqlx::query(
                    "UPDATE mydata_agreements SET status = $5 WHERE offer_id = $1 AND agency_id = $2 \
                     AND service = $3 AND status = $6 AND version < $4",
                )
                .bind(before.offer.0)
                .bind(before.agency.0)
                .bind(&before.service)
                .bind(before.version)
                .bind(AgreementStatus::Superseded.as_str())
                .bind(AgreementStatus::Approved.as_str())
                .execute(&mut **tx)
                .await?;
            }
        }
        sqlx::query(
            "INSERT INTO mydata_agreement_notes (agreement_id, user_id, kind, text, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(before.id.0)
        .bind(note.user.0)
        .bind(note.kind.as_str())
        .bind(&note.text)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {AGREEMENT_COLUMNS} FROM mydata_agreements WHERE id = $1"
        ))
        .bind(before.id.0)
        .fetch_one(&mut **tx)
        .await?;
        let agreement = agreement_from(&row)?;
        let mut audit = audit;
        audit.resource = format!("mydata-agreement:{}", agreement.id);
        tx.commit(audit).await?;
        Ok(agreement)
    }

    async fn agreement_notes(
        &self,
        id: civic_core::mydata::AgreementId,
    ) -> Result<Vec<AgreementNote>> {
        let rows = sqlx::query(
            "SELECT agreement_id, user_id, kind, text, created_at FROM mydata_agreement_notes \
             WHERE agreement_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(self.reads())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AgreementNote {
                    agreement: civic_core::mydata::AgreementId(row.try_get("agreement_id")?),
                    user: UserId(row.try_get("user_id")?),
                    kind: civic_core::mydata::AgreementStep::parse(
                        &row.try_get::<String, _>("kind")?,
                    )
                    .map_err(|e| corrupt(format!("agreement note: {e}")))?,
                    text: row.try_get("text")?,
                    created_at: ts(row.try_get("created_at")?),
                })
            })
            .collect()
    }
}
