//! City data's SQL, written once and compiled once per backend (see
//! `civic_store::kit`).

use super::{Db, Engine};
use crate::store::*;
use civic_store::kit::Backend;
use sqlx::Row;

type DbRow = <Db as sqlx::Database>::Row;

fn entity_from(row: &DbRow) -> Result<StoredEntity> {
    Ok(StoredEntity {
        tenant: row.try_get("tenant")?,
        id: row.try_get("id")?,
        seq: row.try_get("seq")?,
        doc: row.try_get("doc")?,
    })
}

impl crate::store::EntityStore for Engine {
    async fn load_entities(&self) -> Result<Vec<StoredEntity>> {
        sqlx::query("SELECT tenant, id, seq, doc FROM ngsi_entities ORDER BY tenant, seq")
            .fetch_all(self.reads())
            .await?
            .iter()
            .map(entity_from)
            .collect()
    }

    async fn write_entities(
        &self,
        put: &[StoredEntity],
        delete: &[(String, String)],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for e in put {
            sqlx::query(
                "INSERT INTO ngsi_entities (tenant, id, seq, doc) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc, seq = excluded.seq",
            )
            .bind(&e.tenant)
            .bind(&e.id)
            .bind(e.seq)
            .bind(&e.doc)
            .execute(&mut *tx)
            .await?;
        }
        for (tenant, id) in delete {
            sqlx::query("DELETE FROM ngsi_entities WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl crate::store::SubscriptionStore for Engine {
    async fn load_subscriptions(&self) -> Result<Vec<(String, String)>> {
        sqlx::query("SELECT tenant, doc FROM ngsi_subscriptions ORDER BY tenant, id")
            .fetch_all(self.reads())
            .await?
            .iter()
            .map(|r| Ok((r.try_get("tenant")?, r.try_get("doc")?)))
            .collect()
    }

    async fn put_subscription(
        &self,
        tenant: &str,
        id: &str,
        doc: &str,
        audit: civic_core::audit::AuditEntry,
    ) -> Result<()> {
        let mut tx = self.audited().await?;
        sqlx::query(
            "INSERT INTO ngsi_subscriptions (tenant, id, doc) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc",
        )
        .bind(tenant)
        .bind(id)
        .bind(doc)
        .execute(&mut **tx)
        .await?;
        tx.commit(audit).await?;
        Ok(())
    }

    async fn delete_subscription(
        &self,
        tenant: &str,
        id: &str,
        audit: civic_core::audit::AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.audited().await?;
        let gone = sqlx::query("DELETE FROM ngsi_subscriptions WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        tx.commit(audit).await?;
        Ok(true)
    }
}
