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
        history: &[HistoryRow],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for h in history {
            sqlx::query(
                "INSERT INTO ngsi_history (tenant, entity_id, types, attr, at, instance, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&h.tenant)
            .bind(&h.entity_id)
            .bind(&h.types)
            .bind(&h.attr)
            .bind(h.at)
            .bind(&h.instance)
            .bind(h.recorded_at)
            .execute(&mut *tx)
            .await?;
        }
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
            // An entity's temporal representation goes with it (as the
            // ETSI suite's brokers do).
            sqlx::query("DELETE FROM ngsi_history WHERE tenant = $1 AND entity_id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn history(
        &self,
        tenant: &str,
        entity_id: &str,
        attrs: Option<&[String]>,
        from: i64,
        until: i64,
    ) -> Result<Vec<HistoryRow>> {
        let mut sql = String::from(
            "SELECT tenant, entity_id, types, attr, at, instance, recorded_at FROM ngsi_history \
             WHERE tenant = $1 AND entity_id = $2 AND at >= $3 AND at < $4",
        );
        if let Some(attrs) = attrs {
            let marks: Vec<String> = (0..attrs.len()).map(|i| format!("${}", i + 5)).collect();
            sql.push_str(&format!(" AND attr IN ({})", marks.join(", ")));
        }
        sql.push_str(" ORDER BY attr, at");
        let mut q = sqlx::query(&sql)
            .bind(tenant)
            .bind(entity_id)
            .bind(from)
            .bind(until);
        for a in attrs.unwrap_or_default() {
            q = q.bind(a);
        }
        q.fetch_all(self.reads())
            .await?
            .iter()
            .map(history_from)
            .collect()
    }

    async fn history_entities(&self, tenant: &str) -> Result<Vec<(String, String)>> {
        sqlx::query(
            "SELECT entity_id, MAX(types) AS types FROM ngsi_history WHERE tenant = $1 \
             GROUP BY entity_id ORDER BY entity_id",
        )
        .bind(tenant)
        .fetch_all(self.reads())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("entity_id")?, r.try_get("types")?)))
        .collect()
    }

    async fn prune_history(&self, before: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM ngsi_history WHERE recorded_at < $1")
                .bind(before)
                .execute(self.writes())
                .await?
                .rows_affected(),
        )
    }

    async fn delete_history(
        &self,
        tenant: &str,
        entity_id: &str,
        attr: Option<&str>,
    ) -> Result<u64> {
        let q = match attr {
            Some(a) => sqlx::query(
                "DELETE FROM ngsi_history WHERE tenant = $1 AND entity_id = $2 AND attr = $3",
            )
            .bind(tenant)
            .bind(entity_id)
            .bind(a.to_owned()),
            None => sqlx::query("DELETE FROM ngsi_history WHERE tenant = $1 AND entity_id = $2")
                .bind(tenant)
                .bind(entity_id),
        };
        Ok(q.execute(self.writes()).await?.rows_affected())
    }
}

fn history_from(row: &DbRow) -> Result<HistoryRow> {
    Ok(HistoryRow {
        tenant: row.try_get("tenant")?,
        entity_id: row.try_get("entity_id")?,
        types: row.try_get("types")?,
        attr: row.try_get("attr")?,
        at: row.try_get("at")?,
        instance: row.try_get("instance")?,
        recorded_at: row.try_get("recorded_at")?,
    })
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

impl crate::store::RegistrationStore for Engine {
    async fn load_registrations(&self, kind: &str) -> Result<Vec<(String, String)>> {
        sqlx::query(
            "SELECT tenant, doc FROM ngsi_registrations WHERE kind = $1 ORDER BY tenant, id",
        )
        .bind(kind)
        .fetch_all(self.reads())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("tenant")?, r.try_get("doc")?)))
        .collect()
    }

    async fn put_registration(
        &self,
        kind: &str,
        tenant: &str,
        id: &str,
        doc: &str,
        audit: civic_core::audit::AuditEntry,
    ) -> Result<()> {
        let mut tx = self.audited().await?;
        sqlx::query(
            "INSERT INTO ngsi_registrations (kind, tenant, id, doc) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (kind, tenant, id) DO UPDATE SET doc = excluded.doc",
        )
        .bind(kind)
        .bind(tenant)
        .bind(id)
        .bind(doc)
        .execute(&mut **tx)
        .await?;
        tx.commit(audit).await?;
        Ok(())
    }

    async fn delete_registration(
        &self,
        kind: &str,
        tenant: &str,
        id: &str,
        audit: civic_core::audit::AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.audited().await?;
        let gone = sqlx::query(
            "DELETE FROM ngsi_registrations WHERE kind = $1 AND tenant = $2 AND id = $3",
        )
        .bind(kind)
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

impl crate::store::TenantStore for Engine {
    async fn load_tenants(&self) -> Result<Vec<(String, String)>> {
        sqlx::query("SELECT name, doc FROM ngsi_tenants ORDER BY name")
            .fetch_all(self.reads())
            .await?
            .iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("doc")?)))
            .collect()
    }

    async fn put_tenant(
        &self,
        name: &str,
        doc: &str,
        audit: civic_core::audit::AuditEntry,
    ) -> Result<()> {
        let mut tx = self.audited().await?;
        sqlx::query(
            "INSERT INTO ngsi_tenants (name, doc) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
        )
        .bind(name)
        .bind(doc)
        .execute(&mut **tx)
        .await?;
        tx.commit(audit).await?;
        Ok(())
    }
}
