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

    async fn write_entities(&self, writes: &[Write]) -> Result<()> {
        let mut conn = self.writes().acquire().await?;
        write_on(&mut conn, writes).await
    }

    async fn write_entities_on(
        &self,
        writer: &mut civic_store::Writer,
        writes: &[Write],
    ) -> Result<()> {
        write_on(Engine::held(writer)?, writes).await
    }

    async fn history(
        &self,
        tenant: &str,
        entity_id: &str,
        attrs: Option<&[String]>,
        from: i64,
        until: i64,
    ) -> Result<Vec<HistoryRow>> {
        let mut sql = format!(
            "SELECT {HISTORY_COLUMNS} FROM ngsi_history \
             WHERE tenant = $1 AND entity_id = $2 AND at >= $3 AND at < $4"
        );
        sql.push_str(&attrs_clause(attrs));
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
            "SELECT entity_id, types FROM ngsi_history_entities WHERE tenant = $1 \
             ORDER BY entity_id",
        )
        .bind(tenant)
        .fetch_all(self.reads())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("entity_id")?, r.try_get("types")?)))
        .collect()
    }

    async fn prune_history(&self, before: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let gone = sqlx::query("DELETE FROM ngsi_history WHERE recorded_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Hours wholly recorded before go; hours recorded partly before
        // are summed again from what is left of them.
        sqlx::query("DELETE FROM ngsi_rollups WHERE recorded_max < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let partly: Vec<(String, String, String, i64)> = sqlx::query(
            "SELECT tenant, entity_id, attr, hour FROM ngsi_rollups WHERE recorded_min < $1",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("tenant")?,
                r.try_get("entity_id")?,
                r.try_get("attr")?,
                r.try_get("hour")?,
            ))
        })
        .collect::<Result<_>>()?;
        for (tenant, entity_id, attr, hour) in partly {
            resum_hour(&mut tx, &tenant, &entity_id, &attr, hour).await?;
        }
        if gone > 0 {
            unlist_forgotten(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    async fn delete_history(
        &self,
        tenant: &str,
        entity_id: &str,
        attr: Option<&str>,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut gone = 0;
        for table in ["ngsi_history", "ngsi_rollups"] {
            let (sql, attr) = match attr {
                Some(a) => (
                    format!(
                        "DELETE FROM {table} WHERE tenant = $1 AND entity_id = $2 AND attr = $3"
                    ),
                    Some(a.to_owned()),
                ),
                None => (
                    format!("DELETE FROM {table} WHERE tenant = $1 AND entity_id = $2"),
                    None,
                ),
            };
            let mut q = sqlx::query(&sql).bind(tenant).bind(entity_id);
            if let Some(a) = attr {
                q = q.bind(a);
            }
            let n = q.execute(&mut *tx).await?.rows_affected();
            if table == "ngsi_history" {
                gone = n;
            }
        }
        unlist_forgotten(&mut tx).await?;
        tx.commit().await?;
        Ok(gone)
    }

    async fn history_exists(
        &self,
        tenant: &str,
        entity_id: &str,
        attrs: Option<&[String]>,
        from: i64,
        until: i64,
    ) -> Result<bool> {
        let mut sql = String::from(
            "SELECT 1 AS one FROM ngsi_history \
             WHERE tenant = $1 AND entity_id = $2 AND at >= $3 AND at < $4 AND attr <> ''",
        );
        sql.push_str(&attrs_clause(attrs));
        sql.push_str(" LIMIT 1");
        let mut q = sqlx::query(&sql)
            .bind(tenant)
            .bind(entity_id)
            .bind(from)
            .bind(until);
        for a in attrs.unwrap_or_default() {
            q = q.bind(a);
        }
        Ok(q.fetch_optional(self.reads()).await?.is_some())
    }

    async fn history_edge(
        &self,
        tenant: &str,
        entity_id: &str,
        attr: Option<&str>,
        from: i64,
        until: i64,
        last: bool,
    ) -> Result<Option<HistoryRow>> {
        // Without an attribute, any instance will do (ordering them all
        // by time would read them all).
        let (which, order) = match (attr, last) {
            (None, _) => ("", ""),
            // An attribute's first or last instance: deletions are not.
            (Some(_), true) => ("AND attr = $5 AND NOT deleted", "ORDER BY at DESC"),
            (Some(_), false) => ("AND attr = $5 AND NOT deleted", "ORDER BY at ASC"),
        };
        let sql = format!(
            "SELECT {HISTORY_COLUMNS} FROM ngsi_history \
             WHERE tenant = $1 AND entity_id = $2 AND at >= $3 AND at < $4 {which} {order} LIMIT 1"
        );
        let mut q = sqlx::query(&sql)
            .bind(tenant)
            .bind(entity_id)
            .bind(from)
            .bind(until);
        if let Some(a) = attr {
            q = q.bind(a.to_owned());
        }
        q.fetch_optional(self.reads())
            .await?
            .as_ref()
            .map(history_from)
            .transpose()
    }

    async fn history_attrs(&self, tenant: &str, entity_id: &str) -> Result<Vec<String>> {
        sqlx::query(
            "SELECT DISTINCT attr FROM ngsi_rollups WHERE tenant = $1 AND entity_id = $2 ORDER BY attr",
        )
        .bind(tenant)
        .bind(entity_id)
        .fetch_all(self.reads())
        .await?
        .iter()
        .map(|r| Ok(r.try_get("attr")?))
        .collect()
    }

    async fn rollups(
        &self,
        tenant: &str,
        entity_id: &str,
        attr: &str,
        from_hour: i64,
        until_hour: i64,
    ) -> Result<Vec<(i64, Stats)>> {
        sqlx::query(
            "SELECT hour AS k, n, nn, sum, sumsq, min, max FROM ngsi_rollups \
             WHERE tenant = $1 AND entity_id = $2 AND attr = $3 AND hour >= $4 AND hour < $5 \
             ORDER BY hour",
        )
        .bind(tenant)
        .bind(entity_id)
        .bind(attr)
        .bind(from_hour)
        .bind(until_hour)
        .fetch_all(self.reads())
        .await?
        .iter()
        .map(stats_from)
        .collect()
    }

    async fn history_buckets(
        &self,
        tenant: &str,
        entity_id: &str,
        attr: &str,
        from: i64,
        until: i64,
        (origin, period): (i64, i64),
    ) -> Result<Vec<(i64, Stats)>> {
        sqlx::query(&format!(
            "SELECT (at - $4) / $5 AS k, {STATS} FROM ngsi_history \
             WHERE tenant = $1 AND entity_id = $2 AND attr = $3 AND at >= $6 AND at < $7 \
             AND NOT deleted GROUP BY (at - $4) / $5 ORDER BY k"
        ))
        .bind(tenant)
        .bind(entity_id)
        .bind(attr)
        .bind(origin)
        .bind(period.max(1))
        .bind(from.max(origin))
        .bind(until)
        .fetch_all(self.reads())
        .await?
        .iter()
        .map(stats_from)
        .collect()
    }

    async fn delete_dataset(
        &self,
        tenant: &str,
        entity_id: &str,
        attr: &str,
        dataset: Option<&str>,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let of_attr = "FROM ngsi_history WHERE tenant = $1 AND entity_id = $2 AND attr = $3";
        let gone = match dataset {
            None => {
                // The default instances are those without a datasetId.
                let gone = sqlx::query(&format!(
                    "DELETE {of_attr} AND instance NOT LIKE '%\"datasetId\":%'"
                ))
                .bind(tenant)
                .bind(entity_id)
                .bind(attr)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(
                    "DELETE FROM ngsi_rollups WHERE tenant = $1 AND entity_id = $2 AND attr = $3",
                )
                .bind(tenant)
                .bind(entity_id)
                .bind(attr)
                .execute(&mut *tx)
                .await?;
                let left: Vec<HistoryRow> =
                    sqlx::query(&format!("SELECT {HISTORY_COLUMNS} {of_attr}"))
                        .bind(tenant)
                        .bind(entity_id)
                        .bind(attr)
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(history_from)
                        .collect::<Result<_>>()?;
                add_rollups(&mut tx, &left).await?;
                gone
            }
            Some(d) => {
                let rows: Vec<HistoryRow> = sqlx::query(&format!(
                    "SELECT {HISTORY_COLUMNS} {of_attr} \
                     AND instance LIKE $4"
                ))
                .bind(tenant)
                .bind(entity_id)
                .bind(attr)
                .bind(format!("%\"datasetId\":\"{d}\"%"))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(history_from)
                .collect::<Result<_>>()?;
                let mut hours = std::collections::BTreeSet::new();
                let mut gone = 0;
                for r in rows.iter().filter(|r| {
                    serde_json::from_str::<serde_json::Value>(&r.instance)
                        .ok()
                        .is_some_and(|i| i.get("datasetId").and_then(|v| v.as_str()) == Some(d))
                }) {
                    gone += sqlx::query(&format!("DELETE {of_attr} AND at = $4 AND instance = $5"))
                        .bind(tenant)
                        .bind(entity_id)
                        .bind(attr)
                        .bind(r.at)
                        .bind(&r.instance)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    hours.insert(r.at.div_euclid(ROLLUP_MS));
                }
                for hour in hours {
                    resum_hour(&mut tx, tenant, entity_id, attr, hour).await?;
                }
                gone
            }
        };
        unlist_forgotten(&mut tx).await?;
        tx.commit().await?;
        Ok(gone)
    }

    async fn history_instance(
        &self,
        tenant: &str,
        entity_id: &str,
        attr: &str,
        instance_id: &str,
    ) -> Result<Option<HistoryRow>> {
        // The stored instance holds `"instanceId":"…"`; LIKE narrows, the
        // parsed instance decides (`_` and `%` match more than themselves).
        let rows: Vec<HistoryRow> = sqlx::query(&format!(
            "SELECT {HISTORY_COLUMNS} FROM ngsi_history \
             WHERE tenant = $1 AND entity_id = $2 AND attr = $3 AND instance LIKE $4"
        ))
        .bind(tenant)
        .bind(entity_id)
        .bind(attr)
        .bind(format!("%\"instanceId\":\"{instance_id}\"%"))
        .fetch_all(self.reads())
        .await?
        .iter()
        .map(history_from)
        .collect::<Result<_>>()?;
        Ok(rows.into_iter().find(|r| {
            serde_json::from_str::<serde_json::Value>(&r.instance)
                .ok()
                .and_then(|i| {
                    i.get("instanceId")
                        .and_then(|v| v.as_str())
                        .map(|v| v == instance_id)
                })
                .unwrap_or(false)
        }))
    }

    async fn replace_instance(&self, old: &HistoryRow, new: Option<&HistoryRow>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let gone = sqlx::query(
            "DELETE FROM ngsi_history WHERE tenant = $1 AND entity_id = $2 AND attr = $3 \
             AND at = $4 AND instance = $5",
        )
        .bind(&old.tenant)
        .bind(&old.entity_id)
        .bind(&old.attr)
        .bind(old.at)
        .bind(&old.instance)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        if let Some(h) = new {
            insert_history(&mut tx, std::slice::from_ref(h)).await?;
        }
        let mut hours = vec![old.at.div_euclid(ROLLUP_MS)];
        hours.extend(new.map(|h| h.at.div_euclid(ROLLUP_MS)));
        hours.dedup();
        for hour in hours {
            resum_hour(&mut tx, &old.tenant, &old.entity_id, &old.attr, hour).await?;
        }
        unlist_forgotten(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rebuild_rollups(&self) -> Result<u64> {
        let mut tx = self.begin().await?;
        let needed = sqlx::query(
            "SELECT 1 AS one FROM ngsi_history \
             WHERE NOT EXISTS (SELECT 1 FROM ngsi_history_entities) LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !needed {
            return Ok(0);
        }
        sqlx::query(
            "INSERT INTO ngsi_history_entities (tenant, entity_id, types) \
             SELECT tenant, entity_id, MAX(types) FROM ngsi_history GROUP BY tenant, entity_id",
        )
        .execute(&mut *tx)
        .await?;
        let mut rows: Vec<HistoryRow> = sqlx::query(&format!(
            "SELECT {HISTORY_COLUMNS} FROM ngsi_history WHERE attr <> ''"
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(history_from)
        .collect::<Result<_>>()?;
        for h in &mut rows {
            h.num = serde_json::from_str::<serde_json::Value>(&h.instance)
                .ok()
                .and_then(|v| crate::store::entities::number_of(v.as_object()?));
            if h.num.is_some() {
                sqlx::query(
                    "UPDATE ngsi_history SET num = $1 WHERE tenant = $2 AND entity_id = $3 \
                     AND attr = $4 AND at = $5 AND instance = $6",
                )
                .bind(h.num)
                .bind(&h.tenant)
                .bind(&h.entity_id)
                .bind(&h.attr)
                .bind(h.at)
                .bind(&h.instance)
                .execute(&mut *tx)
                .await?;
            }
        }
        add_rollups(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}

/// The stats columns of a span of `ngsi_history`.
const STATS: &str = "COUNT(*) AS n, COUNT(num) AS nn, COALESCE(SUM(num), 0.0) AS sum, \
     COALESCE(SUM(num * num), 0.0) AS sumsq, MIN(num) AS min, MAX(num) AS max";

fn stats_from(row: &DbRow) -> Result<(i64, Stats)> {
    Ok((
        row.try_get("k")?,
        Stats {
            n: row.try_get("n")?,
            nn: row.try_get("nn")?,
            sum: row.try_get("sum")?,
            sumsq: row.try_get("sumsq")?,
            min: row.try_get("min")?,
            max: row.try_get("max")?,
        },
    ))
}

type Tx<'c> = sqlx::Transaction<'c, Db>;

/// Sums recorded rows into their hours' rollups.
async fn add_rollups<H: std::borrow::Borrow<HistoryRow>>(
    tx: &mut Tx<'_>,
    rows: &[H],
) -> Result<()> {
    // (tenant, entity, attribute, hour) → its stats, first and last recording.
    type Hour<'a> = (&'a str, &'a str, &'a str, i64);
    let mut hours: std::collections::BTreeMap<Hour, (Stats, i64, i64)> =
        std::collections::BTreeMap::new();
    // Deletions are not instances: they are not counted.
    for h in rows
        .iter()
        .map(|h| h.borrow())
        .filter(|h| !h.attr.is_empty() && !h.deleted)
    {
        let key = (
            h.tenant.as_str(),
            h.entity_id.as_str(),
            h.attr.as_str(),
            h.at.div_euclid(ROLLUP_MS),
        );
        let e = hours
            .entry(key)
            .or_insert((Stats::default(), h.recorded_at, h.recorded_at));
        e.0.add(&Stats::of(h.num));
        e.1 = e.1.min(h.recorded_at);
        e.2 = e.2.max(h.recorded_at);
    }
    let hours: Vec<_> = hours.into_iter().collect();
    for chunk in hours.chunks(ROWS_A_STATEMENT) {
        let mut b = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO ngsi_rollups (tenant, entity_id, attr, hour, n, nn, sum, sumsq, min, max, \
             recorded_min, recorded_max) ",
        );
        b.push_values(
            chunk,
            |mut b, ((tenant, entity_id, attr, hour), (s, rmin, rmax))| {
                b.push_bind(*tenant)
                    .push_bind(*entity_id)
                    .push_bind(*attr)
                    .push_bind(*hour)
                    .push_bind(s.n)
                    .push_bind(s.nn)
                    .push_bind(s.sum)
                    .push_bind(s.sumsq)
                    .push_bind(s.min)
                    .push_bind(s.max)
                    .push_bind(*rmin)
                    .push_bind(*rmax);
            },
        );
        b.push(
            " ON CONFLICT (tenant, entity_id, attr, hour) DO UPDATE SET \
             n = ngsi_rollups.n + excluded.n, nn = ngsi_rollups.nn + excluded.nn, \
             sum = ngsi_rollups.sum + excluded.sum, sumsq = ngsi_rollups.sumsq + excluded.sumsq, \
             min = CASE WHEN ngsi_rollups.min IS NULL OR excluded.min < ngsi_rollups.min \
                   THEN excluded.min ELSE ngsi_rollups.min END, \
             max = CASE WHEN ngsi_rollups.max IS NULL OR excluded.max > ngsi_rollups.max \
                   THEN excluded.max ELSE ngsi_rollups.max END, \
             recorded_min = CASE WHEN excluded.recorded_min < ngsi_rollups.recorded_min \
                   THEN excluded.recorded_min ELSE ngsi_rollups.recorded_min END, \
             recorded_max = CASE WHEN excluded.recorded_max > ngsi_rollups.recorded_max \
                   THEN excluded.recorded_max ELSE ngsi_rollups.recorded_max END",
        );
        b.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// ` AND attr IN ($5, …)` for the attributes asked for (bound after the
/// span's four parameters), or nothing.
fn attrs_clause(attrs: Option<&[String]>) -> String {
    match attrs {
        Some(attrs) => {
            let marks: Vec<String> = (0..attrs.len()).map(|i| format!("${}", i + 5)).collect();
            format!(" AND attr IN ({})", marks.join(", "))
        }
        None => String::new(),
    }
}

/// Rows a multi-row statement carries at most (12 parameters a row
/// stays far below both backends' limits on parameters).
const ROWS_A_STATEMENT: usize = 500;

/// The columns of `ngsi_history` a `HistoryRow` is (`history_from`), in
/// the order `insert_history` binds them.
const HISTORY_COLUMNS: &str =
    "tenant, entity_id, types, attr, at, instance, recorded_at, num, deleted";

/// Records instances.
async fn insert_history<H: std::borrow::Borrow<HistoryRow>>(
    tx: &mut Tx<'_>,
    rows: &[H],
) -> Result<()> {
    for chunk in rows.chunks(ROWS_A_STATEMENT) {
        let mut b =
            sqlx::QueryBuilder::<Db>::new(format!("INSERT INTO ngsi_history ({HISTORY_COLUMNS}) "));
        b.push_values(chunk, |mut b, h| {
            let h = h.borrow();
            b.push_bind(&h.tenant)
                .push_bind(&h.entity_id)
                .push_bind(&h.types)
                .push_bind(&h.attr)
                .push_bind(h.at)
                .push_bind(&h.instance)
                .push_bind(h.recorded_at)
                .push_bind(h.num)
                .push_bind(h.deleted);
        });
        b.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Drops from the list of entities with history those with none left.
async fn unlist_forgotten(tx: &mut Tx<'_>) -> Result<()> {
    sqlx::query(
        "DELETE FROM ngsi_history_entities WHERE NOT EXISTS (SELECT 1 FROM ngsi_history h \
         WHERE h.tenant = ngsi_history_entities.tenant \
         AND h.entity_id = ngsi_history_entities.entity_id)",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sums an hour's rollup again from its rows (or drops it if none is left).
async fn resum_hour(
    tx: &mut Tx<'_>,
    tenant: &str,
    entity_id: &str,
    attr: &str,
    hour: i64,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM ngsi_rollups WHERE tenant = $1 AND entity_id = $2 AND attr = $3 AND hour = $4",
    )
    .bind(tenant)
    .bind(entity_id)
    .bind(attr)
    .bind(hour)
    .execute(&mut **tx)
    .await?;
    let rows: Vec<HistoryRow> = sqlx::query(&format!(
        "SELECT {HISTORY_COLUMNS} FROM ngsi_history \
         WHERE tenant = $1 AND entity_id = $2 AND attr = $3 AND at >= $4 AND at < $5"
    ))
    .bind(tenant)
    .bind(entity_id)
    .bind(attr)
    .bind(hour * ROLLUP_MS)
    .bind((hour + 1) * ROLLUP_MS)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(history_from)
    .collect::<Result<_>>()?;
    add_rollups(tx, &rows).await
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
        num: row.try_get("num")?,
        deleted: row.try_get("deleted")?,
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

/// Writes in one transaction on `conn`.
async fn write_on(conn: &mut sqlx::pool::PoolConnection<Db>, writes: &[Write]) -> Result<()> {
    let mut tx = Engine::begin_on(conn).await?;
    // A run of writes in which only the last deletes means the same as
    // its writes one by one with the history and the entities of the run
    // written together (deletes come after the rest of their write, and
    // nothing but a delete reads what another write wrote): a few
    // statements of many rows, not a few per write.
    let mut run = Vec::new();
    for w in writes {
        run.push(w);
        if !w.delete.is_empty() {
            apply_run(&mut tx, &run).await?;
            run.clear();
        }
    }
    apply_run(&mut tx, &run).await?;
    tx.commit().await?;
    Ok(())
}

/// A run of writes of which only the last may delete (see
/// `write_on`).
async fn apply_run(tx: &mut Tx<'_>, run: &[&Write]) -> Result<()> {
    let history: Vec<&HistoryRow> = run.iter().flat_map(|w| &w.history).collect();
    insert_history(tx, &history).await?;
    add_rollups(tx, &history).await?;
    // Each entity once a statement (an upsert may not touch a row
    // twice): its latest types, its latest document.
    let mut listed = std::collections::BTreeMap::new();
    for h in &history {
        listed.insert((h.tenant.as_str(), h.entity_id.as_str()), h.types.as_str());
    }
    let listed: Vec<_> = listed.into_iter().collect();
    for chunk in listed.chunks(ROWS_A_STATEMENT) {
        let mut b = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO ngsi_history_entities (tenant, entity_id, types) ",
        );
        b.push_values(chunk, |mut b, ((tenant, entity_id), types)| {
            b.push_bind(*tenant).push_bind(*entity_id).push_bind(*types);
        });
        // (Rewritten only when the types changed: most writes leave them.)
        b.push(
            " ON CONFLICT (tenant, entity_id) DO UPDATE SET types = excluded.types \
             WHERE ngsi_history_entities.types <> excluded.types",
        );
        b.build().execute(&mut **tx).await?;
    }
    let mut put = std::collections::BTreeMap::new();
    for e in run.iter().flat_map(|w| &w.put) {
        put.insert((e.tenant.as_str(), e.id.as_str()), e);
    }
    let put: Vec<&StoredEntity> = put.into_values().collect();
    for chunk in put.chunks(ROWS_A_STATEMENT) {
        let mut b =
            sqlx::QueryBuilder::<Db>::new("INSERT INTO ngsi_entities (tenant, id, seq, doc) ");
        b.push_values(chunk, |mut b, e| {
            b.push_bind(&e.tenant)
                .push_bind(&e.id)
                .push_bind(e.seq)
                .push_bind(&e.doc);
        });
        b.push(" ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc, seq = excluded.seq");
        b.build().execute(&mut **tx).await?;
    }
    for (tenant, id) in run.last().map(|w| &w.delete[..]).unwrap_or_default() {
        sqlx::query("DELETE FROM ngsi_entities WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        // An entity's temporal representation goes with it (as the
        // ETSI suite's brokers do).
        for table in ["ngsi_history", "ngsi_rollups", "ngsi_history_entities"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE tenant = $1 AND entity_id = $2"
            ))
            .bind(tenant)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}
