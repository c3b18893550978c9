//! The audit ledger: appending records and their Merkle nodes, reading, searching and streaming them, the signed tree heads; the SQL, for the backend that mounts it.

use super::*;

pub(super) const RECORD_COLUMNS: &str =
    "seq, at, actor_id, actor_name, institution_id, duty, action, \
    resource, subject, purpose, legal_basis, grant_id, outcome, reason, client_addr, request_id";

pub(super) fn record_from(row: &DbRow) -> Result<AuditRecord> {
    let seq: i64 = row.try_get("seq")?;
    let seq = u64::try_from(seq).map_err(corrupt)?;
    // A column edited to something the hub never writes names its
    // record, so that a verification can say which was changed.
    let bad = |what: String| StoreError::BadRecord { seq, what };
    let duty: Option<String> = row.try_get("duty").map_err(|e| bad(format!("duty: {e}")))?;
    let outcome: String = row
        .try_get("outcome")
        .map_err(|e| bad(format!("outcome: {e}")))?;
    Ok(AuditRecord {
        seq,
        entry: AuditEntry {
            at: ts(row.try_get("at")?),
            actor: row.try_get::<Option<i64>, _>("actor_id")?.map(UserId),
            actor_name: row.try_get("actor_name")?,
            institution: row
                .try_get::<Option<i64>, _>("institution_id")?
                .map(InstitutionId),
            duty: duty
                .map(|d| {
                    d.parse()
                        .map_err(|_| bad(format!("its duty {d:?} is no duty")))
                })
                .transpose()?,
            action: row.try_get("action")?,
            resource: row.try_get("resource")?,
            subject: row.try_get("subject")?,
            purpose: row.try_get("purpose")?,
            legal_basis: row.try_get("legal_basis")?,
            grant_id: row.try_get("grant_id")?,
            outcome: Outcome::parse(&outcome)
                .ok_or_else(|| bad(format!("its outcome {outcome:?} is no outcome")))?,
            reason: row.try_get("reason")?,
            client_addr: row.try_get("client_addr")?,
            request_id: row.try_get("request_id")?,
        },
    })
}

pub(super) fn head_from(row: &DbRow) -> Result<SignedTreeHead> {
    let size: i64 = row.try_get("tree_size")?;
    Ok(SignedTreeHead {
        tree_size: u64::try_from(size).map_err(corrupt)?,
        root_hash: row.try_get("root_hash")?,
        timestamp: row.try_get("signed_at")?,
        key_id: row.try_get("key_id")?,
        signature: row.try_get("signature")?,
    })
}

impl Engine {
    /// Appends `entries` in order, in `tx`: the records and the
    /// subtrees they complete in multi-row inserts, the head once
    /// (a group commit of many actions' records costs a few
    /// statements, not a few per record).
    pub(super) async fn append_many_in(
        tx: &mut Tx,
        frontier: &mut Frontier,
        entries: Vec<AuditEntry>,
    ) -> Result<Vec<AuditRecord>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut records = Vec::with_capacity(entries.len());
        let mut nodes = Vec::new();
        for entry in entries {
            let record = AuditRecord {
                seq: frontier.size(),
                entry,
            };
            nodes.extend(frontier.push(record_leaf_hash(&record)));
            records.push(record);
        }
        for chunk in records.chunks(100) {
            let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
                "INSERT INTO audit_records ({RECORD_COLUMNS}) "
            ));
            qb.push_values(chunk, |mut b, record| {
                let e = &record.entry;
                b.push_bind(record.seq as i64)
                    .push_bind(e.at.micros())
                    .push_bind(e.actor.map(|a| a.0))
                    .push_bind(e.actor_name.clone())
                    .push_bind(e.institution.map(|i| i.0))
                    .push_bind(e.duty.map(|d| d.as_str()))
                    .push_bind(e.action.clone())
                    .push_bind(e.resource.clone())
                    .push_bind(e.subject.clone())
                    .push_bind(e.purpose.clone())
                    .push_bind(e.legal_basis.clone())
                    .push_bind(e.grant_id.clone())
                    .push_bind(e.outcome.as_str())
                    .push_bind(e.reason.clone())
                    .push_bind(e.client_addr.clone())
                    .push_bind(e.request_id.clone());
            });
            qb.build().execute(&mut **tx).await?;
        }
        for chunk in nodes.chunks(500) {
            let mut qb =
                sqlx::QueryBuilder::<Db>::new("INSERT INTO audit_nodes (seq, level, hash) ");
            qb.push_values(chunk, |mut b, (id, hash)| {
                b.push_bind(id.completed_by() as i64)
                    .push_bind(i64::from(id.level))
                    .push_bind(hash.to_vec());
            });
            qb.build().execute(&mut **tx).await?;
        }
        sqlx::query("UPDATE audit_head SET frontier = $1 WHERE id = 1")
            .bind(frontier.to_bytes())
            .execute(&mut **tx)
            .await?;
        Ok(records)
    }
}

impl AuditStore for Engine {
    async fn append_audit(&self, entry: AuditEntry) -> Result<AuditRecord> {
        self.audited().await?.commit(entry).await
    }

    async fn ledger_head(&self) -> Result<Frontier> {
        let row = sqlx::query("SELECT frontier FROM audit_head WHERE id = 1")
            .fetch_one(self.reads())
            .await?;
        frontier_from(&row.try_get::<Vec<u8>, _>("frontier")?)
    }

    async fn ledger_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>> {
        let mut found: HashMap<(i64, i64), Hash> = HashMap::new();
        // Bounded batches keep the statement's parameter count small.
        for batch in ids.chunks(200) {
            let clauses: Vec<String> = (0..batch.len())
                .map(|i| format!("(seq = ${} AND level = ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!(
                "SELECT seq, level, hash FROM audit_nodes WHERE {}",
                clauses.join(" OR ")
            );
            let mut query = sqlx::query(&sql);
            for id in batch {
                query = query
                    .bind(id.completed_by() as i64)
                    .bind(i64::from(id.level));
            }
            for row in query.fetch_all(self.reads()).await? {
                let hash: Vec<u8> = row.try_get("hash")?;
                let hash: Hash = hash
                    .try_into()
                    .map_err(|_| corrupt("a ledger node is not 32 bytes"))?;
                found.insert((row.try_get("seq")?, row.try_get("level")?), hash);
            }
        }
        ids.iter()
            .map(|id| {
                found
                    .get(&(id.completed_by() as i64, i64::from(id.level)))
                    .copied()
                    .ok_or_else(|| {
                        corrupt(format!("ledger node {}/{} is missing", id.level, id.index))
                    })
            })
            .collect()
    }

    async fn audit_record(&self, seq: u64, audit: AuditEntry) -> Result<Option<AuditRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM audit_records WHERE seq = $1"
        ))
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .fetch_optional(&mut *tx)
        .await?;
        let record = row.as_ref().map(record_from).transpose()?;
        Self::commit_reads(tx, audit).await?;
        Ok(record)
    }

    async fn search_audit(&self, query: AuditQuery, audit: AuditEntry) -> Result<Vec<AuditRecord>> {
        enum Arg {
            Int(i64),
            Text(String),
        }
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        let mut add = |column: &str, op: &str, arg: Arg| {
            args.push(arg);
            conditions.push(format!("{column} {op} ${}", args.len()));
        };
        if let Some(actor) = query.actor {
            add("actor_id", "=", Arg::Int(actor.0));
        }
        if let Some(name) = query.actor_name {
            add("actor_name", "=", Arg::Text(name));
        }
        if let Some(institution) = query.institution {
            add("institution_id", "=", Arg::Int(institution.0));
        }
        if let Some(subject) = query.subject {
            add("subject", "=", Arg::Text(subject));
        }
        if let Some(resource) = query.resource {
            add("resource", "=", Arg::Text(resource));
        }
        if let Some(action) = query.action {
            add("action", "=", Arg::Text(action));
        }
        if let Some(from) = query.from {
            add("at", ">=", Arg::Int(from.micros()));
        }
        if let Some(until) = query.until {
            add("at", "<=", Arg::Int(until.micros()));
        }
        if let Some(before) = query.before_seq {
            add(
                "seq",
                "<",
                Arg::Int(i64::try_from(before).unwrap_or(i64::MAX)),
            );
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let limit = query.limit.clamp(1, AuditQuery::MAX_LIMIT);
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM audit_records {filter} ORDER BY seq DESC LIMIT {limit}"
        );
        let mut tx = self.begin().await?;
        let mut q = sqlx::query(&sql);
        for arg in args {
            q = match arg {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
            };
        }
        let rows = q.fetch_all(&mut *tx).await?;
        let records = rows.iter().map(record_from).collect::<Result<Vec<_>>>()?;
        Self::commit_reads(tx, audit).await?;
        Ok(records)
    }

    async fn save_tree_head(&self, head: &SignedTreeHead) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_tree_heads (tree_size, root_hash, signed_at, key_id, signature) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING",
        )
        .bind(head.tree_size as i64)
        .bind(head.root_hash.as_str())
        .bind(head.timestamp)
        .bind(head.key_id.as_str())
        .bind(head.signature.as_str())
        .execute(self.writes())
        .await?;
        Ok(())
    }

    async fn latest_tree_head(&self) -> Result<Option<SignedTreeHead>> {
        let row = sqlx::query("SELECT * FROM audit_tree_heads ORDER BY tree_size DESC LIMIT 1")
            .fetch_optional(self.reads())
            .await?;
        row.as_ref().map(head_from).transpose()
    }

    async fn tree_head(&self, size: u64) -> Result<Option<SignedTreeHead>> {
        let row = sqlx::query("SELECT * FROM audit_tree_heads WHERE tree_size = $1")
            .bind(i64::try_from(size).unwrap_or(i64::MAX))
            .fetch_optional(self.reads())
            .await?;
        row.as_ref().map(head_from).transpose()
    }

    async fn tree_heads(&self) -> Result<Vec<SignedTreeHead>> {
        let rows = sqlx::query("SELECT * FROM audit_tree_heads ORDER BY tree_size")
            .fetch_all(self.reads())
            .await?;
        rows.iter().map(head_from).collect()
    }

    fn stream_audit_records(&self, below: u64) -> BoxStream<'_, Result<AuditRecord>> {
        sqlx::query(
            "SELECT seq, at, actor_id, actor_name, institution_id, duty, action, resource, subject, \
             purpose, legal_basis, grant_id, outcome, reason, client_addr, request_id \
             FROM audit_records WHERE seq < $1 ORDER BY seq",
        )
            .bind(i64::try_from(below).unwrap_or(i64::MAX))
            .fetch(self.reads())
            .map(|row| record_from(&row?))
            .boxed()
    }

    fn stream_ledger_nodes(&self, below: u64) -> BoxStream<'_, Result<(u64, u32, Vec<u8>)>> {
        sqlx::query("SELECT seq, level, hash FROM audit_nodes WHERE seq < $1 ORDER BY seq, level")
            .bind(i64::try_from(below).unwrap_or(i64::MAX))
            .fetch(self.reads())
            .map(|row| {
                let row = row?;
                let seq: i64 = row.try_get("seq")?;
                let level: i64 = row.try_get("level")?;
                Ok((
                    u64::try_from(seq).map_err(corrupt)?,
                    u32::try_from(level).map_err(corrupt)?,
                    row.try_get("hash")?,
                ))
            })
            .boxed()
    }

    async fn count_audit_records(&self) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_records")
            .fetch_one(self.reads())
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
