//! Transfer events, webhooks and the holders' status lists: the SQL, for
//! the backend that mounts it.

use super::*;

impl TransferEventStore for Engine {
    async fn events_after(
        &self,
        agency: InstitutionId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<TransferEvent>> {
        let rows = sqlx::query(
            "SELECT seq, agency_id, transfer_id, kind, at FROM mydata_events \
             WHERE agency_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(agency.0)
        .bind(after)
        .bind(limit)
        .fetch_all(self.reads())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TransferEvent {
                    seq: row.try_get("seq")?,
                    agency: InstitutionId(row.try_get("agency_id")?),
                    transfer: civic_core::mydata::TransferId(row.try_get("transfer_id")?),
                    kind: row.try_get("kind")?,
                    at: ts(row.try_get("at")?),
                })
            })
            .collect()
    }
    async fn set_webhook(&self, hook: Webhook, audit: AuditEntry) -> Result<()> {
        let mut tx = self.audited().await?;
        // A new subscription starts from the events to come.
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM mydata_events WHERE agency_id = $1")
                .bind(hook.agency.0)
                .fetch_one(&mut **tx)
                .await?;
        sqlx::query("DELETE FROM mydata_webhooks WHERE agency_id = $1")
            .bind(hook.agency.0)
            .execute(&mut **tx)
            .await?;
        sqlx::query("INSERT INTO mydata_webhooks (agency_id, url, secret, delivered_seq) VALUES ($1, $2, $3, $4)")
            .bind(hook.agency.0)
            .bind(&hook.url)
            .bind(&hook.secret)
            .bind(last.unwrap_or(0))
            .execute(&mut **tx)
            .await?;
        tx.commit(audit).await?;
        Ok(())
    }
    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(
            "SELECT agency_id, url, secret, delivered_seq FROM mydata_webhooks ORDER BY agency_id",
        )
        .fetch_all(self.reads())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Webhook {
                    agency: InstitutionId(row.try_get("agency_id")?),
                    url: row.try_get("url")?,
                    secret: row.try_get("secret")?,
                    delivered_seq: row.try_get("delivered_seq")?,
                })
            })
            .collect()
    }
    async fn webhook_delivered(&self, agency: InstitutionId, seq: i64) -> Result<()> {
        sqlx::query("UPDATE mydata_webhooks SET delivered_seq = $2 WHERE agency_id = $1 AND delivered_seq < $2")
            .bind(agency.0)
            .bind(seq)
            .execute(self.writes())
            .await?;
        Ok(())
    }
    async fn save_status_list(&self, node: &str, uri: &str, token: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM mydata_status_lists WHERE node = $1")
            .bind(node)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO mydata_status_lists (node, uri, token, fetched_at) VALUES ($1, $2, $3, $4)")
            .bind(node)
            .bind(uri)
            .bind(token)
            .bind(Timestamp::now().micros())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
    async fn status_list(&self, node: &str) -> Result<Option<(String, String, Timestamp)>> {
        let row =
            sqlx::query("SELECT uri, token, fetched_at FROM mydata_status_lists WHERE node = $1")
                .bind(node)
                .fetch_optional(self.reads())
                .await?;
        row.map(|r| {
            Ok((
                r.try_get("uri")?,
                r.try_get("token")?,
                ts(r.try_get("fetched_at")?),
            ))
        })
        .transpose()
    }
}
