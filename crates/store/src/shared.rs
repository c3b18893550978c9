//! The SQL both backends share, written once.
//!
//! `impl_backend!(Store, Db)` implements every storage trait for a backend
//! struct that has a `pool: sqlx::Pool<Db>` field and a
//! `begin_ledger(&self) -> Result<(Tx, Frontier)>` method, which opens a
//! transaction holding the ledger lock (that is where the backends differ).
//! Both backends accept `$1`-style parameters, so the SQL text is the same.

macro_rules! impl_backend {
    ($store:ident, $db:ty) => {
        use $crate::*;
        use civic_core::audit::{AuditEntry, AuditQuery, AuditRecord, Outcome};
        use civic_core::identity::{ApiTokenId, Duty, InstitutionId, Region, UserId};
        use civic_core::time::Timestamp;
        use civic_ledger::{record_leaf_hash, Frontier, Hash, NodeId, SignedTreeHead};
        use futures_util::stream::{BoxStream, StreamExt};
        use civic_exchange::{Direction, LogEntry, LogHead};
        use sqlx::Row;
        use $crate::shared::sqlx_value::Value;
        use std::collections::HashMap;

        type Tx = sqlx::Transaction<'static, $db>;
        type DbRow = <$db as sqlx::Database>::Row;

        const USER_COLUMNS: &str = "id, institution_id, username, display_name, password_hash, \
            machine_client, totp_secret, totp_enabled, totp_last_step, created_at";
        const RECORD_COLUMNS: &str = "seq, at, actor_id, actor_name, institution_id, duty, action, \
            resource, subject, purpose, legal_basis, grant_id, outcome, reason, client_addr, request_id";

        fn corrupt(what: impl std::fmt::Display) -> StoreError {
            StoreError::Corrupt(what.to_string())
        }

        fn ts(micros: i64) -> Timestamp {
            Timestamp::from_micros(micros)
        }

        fn institution_from(row: &DbRow) -> Result<Institution> {
            let kind: String = row.try_get("kind")?;
            Ok(Institution {
                id: InstitutionId(row.try_get("id")?),
                name: row.try_get("name")?,
                kind: kind.parse().map_err(corrupt)?,
                created_at: ts(row.try_get("created_at")?),
            })
        }

        fn user_from(row: &DbRow, duties: Vec<Duty>) -> Result<User> {
            Ok(User {
                id: UserId(row.try_get("id")?),
                institution: InstitutionId(row.try_get("institution_id")?),
                username: row.try_get("username")?,
                display_name: row.try_get("display_name")?,
                password_hash: row.try_get("password_hash")?,
                machine_client: row.try_get("machine_client")?,
                totp_secret_sealed: row.try_get("totp_secret")?,
                totp_enabled: row.try_get("totp_enabled")?,
                totp_last_step: row.try_get("totp_last_step")?,
                duties,
                created_at: ts(row.try_get("created_at")?),
            })
        }

        fn duty_from(row: &DbRow) -> Result<(i64, Duty)> {
            let kind: String = row.try_get("duty")?;
            let region: String = row.try_get("region")?;
            let duty = if region.is_empty() { Duty::parse(&kind) } else { Duty::parse(&format!("{kind}:{region}")) };
            Ok((row.try_get("user_id")?, duty.map_err(corrupt)?))
        }

        fn token_from(row: &DbRow) -> Result<ApiToken> {
            Ok(ApiToken {
                id: ApiTokenId(row.try_get("id")?),
                user: UserId(row.try_get("user_id")?),
                institution: InstitutionId(row.try_get("institution_id")?),
                name: row.try_get("name")?,
                token_hash: row.try_get("token_hash")?,
                created_at: ts(row.try_get("created_at")?),
                expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(ts),
                revoked: row.try_get("revoked")?,
            })
        }

        fn record_from(row: &DbRow) -> Result<AuditRecord> {
            let seq: i64 = row.try_get("seq")?;
            let seq = u64::try_from(seq).map_err(corrupt)?;
            // A column edited to something the hub never writes names its
            // record, so that a verification can say which was changed.
            let bad = |what: String| StoreError::BadRecord { seq, what };
            let duty: Option<String> = row.try_get("duty").map_err(|e| bad(format!("duty: {e}")))?;
            let outcome: String = row.try_get("outcome").map_err(|e| bad(format!("outcome: {e}")))?;
            Ok(AuditRecord {
                seq,
                entry: AuditEntry {
                    at: ts(row.try_get("at")?),
                    actor: row.try_get::<Option<i64>, _>("actor_id")?.map(UserId),
                    actor_name: row.try_get("actor_name")?,
                    institution: row.try_get::<Option<i64>, _>("institution_id")?.map(InstitutionId),
                    duty: duty
                        .map(|d| d.parse().map_err(|_| bad(format!("its duty {d:?} is no duty"))))
                        .transpose()?,
                    action: row.try_get("action")?,
                    resource: row.try_get("resource")?,
                    subject: row.try_get("subject")?,
                    purpose: row.try_get("purpose")?,
                    legal_basis: row.try_get("legal_basis")?,
                    grant_id: row.try_get("grant_id")?,
                    outcome: Outcome::parse(&outcome).ok_or_else(|| bad(format!("its outcome {outcome:?} is no outcome")))?,
                    reason: row.try_get("reason")?,
                    client_addr: row.try_get("client_addr")?,
                    request_id: row.try_get("request_id")?,
                },
            })
        }

        fn head_from(row: &DbRow) -> Result<SignedTreeHead> {
            let size: i64 = row.try_get("tree_size")?;
            Ok(SignedTreeHead {
                tree_size: u64::try_from(size).map_err(corrupt)?,
                root_hash: row.try_get("root_hash")?,
                timestamp: row.try_get("signed_at")?,
                key_id: row.try_get("key_id")?,
                signature: row.try_get("signature")?,
            })
        }

        fn frontier_from(bytes: &[u8]) -> Result<Frontier> {
            Frontier::from_bytes(bytes).ok_or_else(|| corrupt("the ledger head is malformed"))
        }

        impl $store {
            /// Opens a transaction holding the ledger lock, for actions that
            /// write: the lock comes first, so writers never deadlock.
            async fn begin_ledger(&self) -> Result<(Tx, Frontier)> {
                let mut tx = self.begin_tx().await?;
                let frontier = Self::lock_ledger(&mut tx).await?;
                Ok((tx, frontier))
            }

            /// Applies the migrations not yet recorded, inside `tx` (which
            /// the backend has made exclusive).
            async fn apply_migrations(tx: &mut Tx, migrations: &[(i64, String)]) -> Result<()> {
                sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                    .execute(&mut **tx)
                    .await?;
                for (version, sql) in migrations {
                    let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                        .bind(version)
                        .fetch_optional(&mut **tx)
                        .await?;
                    if done.is_none() {
                        sqlx::raw_sql(sql).execute(&mut **tx).await?;
                        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                            .bind(version)
                            .bind(Timestamp::now().micros())
                            .execute(&mut **tx)
                            .await?;
                    }
                }
                Ok(())
            }

            /// Appends `entry` inside `tx`, which must hold the ledger lock.
            async fn append_in(tx: &mut Tx, frontier: &mut Frontier, entry: AuditEntry) -> Result<AuditRecord> {
                let mut records = Self::append_many_in(tx, frontier, vec![entry]).await?;
                Ok(records.pop().expect("one record per entry"))
            }

            /// Appends `entries` in order, in `tx`: the records and the
            /// subtrees they complete in multi-row inserts, the head once
            /// (a group commit of many actions' records costs a few
            /// statements, not a few per record).
            async fn append_many_in(tx: &mut Tx, frontier: &mut Frontier, entries: Vec<AuditEntry>) -> Result<Vec<AuditRecord>> {
                if entries.is_empty() {
                    return Ok(Vec::new());
                }
                let mut records = Vec::with_capacity(entries.len());
                let mut nodes = Vec::new();
                for entry in entries {
                    let record = AuditRecord { seq: frontier.size(), entry };
                    nodes.extend(frontier.push(record_leaf_hash(&record)));
                    records.push(record);
                }
                for chunk in records.chunks(100) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!("INSERT INTO audit_records ({RECORD_COLUMNS}) "));
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
                    let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO audit_nodes (seq, level, hash) ");
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

            async fn duties_where(&self, tx: &mut Tx, filter: &str, id: i64) -> Result<HashMap<i64, Vec<Duty>>> {
                let rows = sqlx::query(&format!(
                    "SELECT d.user_id, d.duty, d.region FROM user_duties d JOIN users u ON u.id = d.user_id \
                     WHERE {filter} ORDER BY d.duty, d.region"
                ))
                .bind(id)
                .fetch_all(&mut **tx)
                .await?;
                let mut map: HashMap<i64, Vec<Duty>> = HashMap::new();
                for row in &rows {
                    let (user, duty) = duty_from(row)?;
                    map.entry(user).or_default().push(duty);
                }
                Ok(map)
            }

            async fn write_duties(tx: &mut Tx, user: i64, duties: &[Duty]) -> Result<()> {
                sqlx::query("DELETE FROM user_duties WHERE user_id = $1").bind(user).execute(&mut **tx).await?;
                for duty in duties {
                    sqlx::query("INSERT INTO user_duties (user_id, duty, region) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(user)
                        .bind(duty.kind.as_str())
                        .bind(duty.scope())
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            async fn load_user(&self, tx: &mut Tx, filter: &str, value: Value) -> Result<Option<User>> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {filter}");
                let query = sqlx::query(&sql);
                let query = match &value {
                    Value::Int(v) => query.bind(*v),
                    Value::Text(v) => query.bind(v.clone()),
                };
                let Some(row) = query.fetch_optional(&mut **tx).await? else {
                    return Ok(None);
                };
                let id: i64 = row.try_get("id")?;
                let duties = self.duties_where(tx, "d.user_id = $1", id).await?.remove(&id).unwrap_or_default();
                Ok(Some(user_from(&row, duties)?))
            }

            /// Updates one user row inside an audited transaction; fails
            /// with `NotFound` (and writes nothing) if there is no such user.
            /// Sessions opened with a credential end when it changes.
            async fn end_sessions_of(tx: &mut Tx, user: UserId) -> Result<()> {
                sqlx::query("UPDATE sessions SET revoked = TRUE WHERE user_id = $1")
                    .bind(user.0)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn check_user_exists(tx: &mut Tx, user: UserId) -> Result<()> {
                let found = sqlx::query("SELECT id FROM users WHERE id = $1").bind(user.0).fetch_optional(&mut **tx).await?;
                found.map(|_| ()).ok_or_else(|| StoreError::NotFound(format!("user {user}")))
            }
        }

        impl InstitutionStore for $store {
            async fn create_institution(&self, new: NewInstitution, audit: AuditEntry) -> Result<Institution> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                let now = Timestamp::now();
                let row = sqlx::query("INSERT INTO institutions (name, kind, created_at) VALUES ($1, $2, $3) RETURNING id, name, kind, created_at")
                    .bind(new.name.as_str())
                    .bind(new.kind.as_str())
                    .bind(now.micros())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| map_unique(e, || format!("institution {:?}", new.name.as_str())))?;
                let institution = institution_from(&row)?;
                let mut audit = audit;
                audit.resource = format!("institution:{}", institution.id);
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(institution)
            }

            async fn institution(&self, id: InstitutionId) -> Result<Option<Institution>> {
                let row = sqlx::query("SELECT id, name, kind, created_at FROM institutions WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(institution_from).transpose()
            }

            async fn institutions(&self) -> Result<Vec<Institution>> {
                let rows = sqlx::query("SELECT id, name, kind, created_at FROM institutions ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(institution_from).collect()
            }
        }

        impl UserStore for $store {
            async fn create_user(&self, new: NewUser, audit: AuditEntry) -> Result<User> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                let exists = sqlx::query("SELECT id FROM institutions WHERE id = $1")
                    .bind(new.institution.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound(format!("institution {}", new.institution)));
                }
                let row = sqlx::query(
                    "INSERT INTO users (institution_id, username, display_name, password_hash, machine_client, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(new.institution.0)
                .bind(new.username.as_str())
                .bind(new.display_name.as_str())
                .bind(new.password_hash.as_str())
                .bind(new.machine_client)
                .bind(Timestamp::now().micros())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| map_unique(e, || format!("user {:?}", new.username.as_str())))?;
                let id: i64 = row.try_get("id")?;
                Self::write_duties(&mut tx, id, &new.duties).await?;
                let user = self
                    .load_user(&mut tx, "id = $1", Value::Int(id))
                    .await?
                    .ok_or_else(|| corrupt("a user vanished while being created"))?;
                let mut audit = audit;
                audit.resource = format!("user:{id}");
                audit.subject = Some(format!("user:{id}"));
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(user)
            }

            async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
                let mut tx = self.pool.begin().await?;
                let user = self.load_user(&mut tx, "username = $1", Value::Text(username.to_owned())).await?;
                tx.commit().await?;
                Ok(user)
            }

            async fn user(&self, id: UserId) -> Result<Option<User>> {
                let mut tx = self.pool.begin().await?;
                let user = self.load_user(&mut tx, "id = $1", Value::Int(id.0)).await?;
                tx.commit().await?;
                Ok(user)
            }

            async fn read_user(&self, id: UserId, audit: AuditEntry) -> Result<Option<User>> {
                // Reads run before the ledger lock is taken (to append), in
                // the same transaction: the audit is as atomic, the lock
                // held shorter.
                let mut tx = self.begin_tx().await?;
                let user = self.load_user(&mut tx, "id = $1", Value::Int(id.0)).await?;
                let mut frontier = Self::lock_ledger(&mut tx).await?;
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(user)
            }

            async fn users_of(&self, institution: InstitutionId, audit: AuditEntry) -> Result<Vec<User>> {
                let mut tx = self.begin_tx().await?;
                let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE institution_id = $1 ORDER BY id"))
                    .bind(institution.0)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut duties = self.duties_where(&mut tx, "u.institution_id = $1", institution.0).await?;
                let users = rows
                    .iter()
                    .map(|row| {
                        let id: i64 = row.try_get("id")?;
                        user_from(row, duties.remove(&id).unwrap_or_default())
                    })
                    .collect::<Result<Vec<_>>>()?;
                let mut frontier = Self::lock_ledger(&mut tx).await?;
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(users)
            }

            async fn set_duties(&self, user: UserId, duties: Vec<Duty>, audit: AuditEntry) -> Result<()> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                Self::check_user_exists(&mut tx, user).await?;
                Self::write_duties(&mut tx, user.0, &duties).await?;
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_password_hash(&self, user: UserId, hash: String, audit: AuditEntry) -> Result<()> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                    .bind(user.0)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("user {user}")));
                }
                Self::end_sessions_of(&mut tx, user).await?;
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_totp_pending(&self, user: UserId, secret_sealed: Vec<u8>, audit: AuditEntry) -> Result<()> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                let done = sqlx::query("UPDATE users SET totp_secret = $2, totp_enabled = FALSE WHERE id = $1 AND totp_enabled = FALSE")
                    .bind(user.0)
                    .bind(secret_sealed)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("a confirmed second factor of user {user} already exists")));
                }
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn enable_totp(&self, user: UserId, step: i64, session: Option<String>, audit: AuditEntry) -> Result<()> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                let done = sqlx::query("UPDATE users SET totp_enabled = TRUE, totp_last_step = $2 \
                     WHERE id = $1 AND totp_secret IS NOT NULL AND totp_enabled = FALSE")
                    .bind(user.0)
                    .bind(step)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("a pending second factor of user {user}")));
                }
                if let Some(token_hash) = session {
                    sqlx::query("UPDATE sessions SET second_factor = TRUE WHERE token_hash = $1 AND user_id = $2")
                        .bind(token_hash)
                        .bind(user.0)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn reset_totp(&self, user: UserId, audit: AuditEntry) -> Result<()> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                let done = sqlx::query("UPDATE users SET totp_secret = NULL, totp_enabled = FALSE, totp_last_step = NULL WHERE id = $1")
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("user {user}")));
                }
                Self::end_sessions_of(&mut tx, user).await?;
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn sign_in_wait(&self, keys: &[String], now: Timestamp) -> Result<Option<Timestamp>> {
                let mut wait = None;
                for key in keys {
                    let row = sqlx::query("SELECT not_before FROM sign_in_failures WHERE key = $1")
                        .bind(key.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                    if let Some(row) = row {
                        let until: i64 = row.try_get("not_before")?;
                        if until > now.micros() && wait.is_none_or(|w: Timestamp| w.micros() < until) {
                            wait = Some(ts(until));
                        }
                    }
                }
                Ok(wait)
            }

            async fn login_failed(&self, keys: &[(String, Backoff)], at: Timestamp, audit: AuditEntry) -> Result<Option<Timestamp>> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                let mut wait = None;
                for (key, backoff) in keys {
                    // Read and written under the ledger lock: no other
                    // failure is counted in between.
                    let row = sqlx::query("SELECT failures, last_failure FROM sign_in_failures WHERE key = $1")
                        .bind(key.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let before = match row {
                        Some(row) => {
                            let last: i64 = row.try_get("last_failure")?;
                            let quiet = at.micros() - last > backoff.forget_after_seconds * 1_000_000;
                            if quiet { 0 } else { row.try_get::<i64, _>("failures")? }
                        }
                        None => 0,
                    };
                    let failures = before + 1;
                    let until = at.plus_seconds(backoff.delay_seconds(failures));
                    sqlx::query(
                        "INSERT INTO sign_in_failures (key, failures, last_failure, not_before) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, \
                         last_failure = excluded.last_failure, not_before = excluded.not_before",
                    )
                    .bind(key.as_str())
                    .bind(failures)
                    .bind(at.micros())
                    .bind(until.micros())
                    .execute(&mut *tx)
                    .await?;
                    if until > at && wait.is_none_or(|w| w < until) {
                        wait = Some(until);
                    }
                }
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(wait)
            }

            async fn login_succeeded(&self, session: NewSession, totp_step: Option<i64>, judged: &[String], clear: &[String], audit: AuditEntry) -> Result<()> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                // A wait set by a parallel failure since the attempt was
                // judged holds: a guess in flight does not slip past it.
                for key in judged {
                    let waiting = sqlx::query("SELECT key FROM sign_in_failures WHERE key = $1 AND not_before > $2")
                        .bind(key.as_str())
                        .bind(session.created_at.micros())
                        .fetch_optional(&mut *tx)
                        .await?;
                    if waiting.is_some() {
                        return Err(StoreError::Conflict("sign-ins under this name or from this address must wait".into()));
                    }
                }
                // The step is accepted only if it is newer than the last one
                // used: a code seen once can never sign in again.
                let done = sqlx::query(
                    "UPDATE users SET totp_last_step = COALESCE($2, totp_last_step) \
                     WHERE id = $1 AND ($2 IS NULL OR totp_last_step IS NULL OR totp_last_step < $2)",
                )
                .bind(session.user.0)
                .bind(totp_step)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict("a sign-in with this one-time code already exists".into()));
                }
                for key in clear {
                    sqlx::query("DELETE FROM sign_in_failures WHERE key = $1")
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen, second_factor, revoked) \
                     VALUES ($1, $2, $3, $4, $3, $5, FALSE)",
                )
                .bind(session.token_hash.as_str())
                .bind(session.user.0)
                .bind(session.created_at.micros())
                .bind(session.expires_at.micros())
                .bind(session.second_factor)
                .execute(&mut *tx)
                .await?;
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn clear_sign_in_failures(&self, keys: &[String], audit: AuditEntry) -> Result<()> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                for key in keys {
                    sqlx::query("DELETE FROM sign_in_failures WHERE key = $1")
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(())
            }
        }

        impl SessionStore for $store {
            async fn session(&self, token_hash: &str) -> Result<Option<Session>> {
                let row = sqlx::query(
                    "SELECT token_hash, user_id, created_at, expires_at, last_seen, second_factor, revoked \
                     FROM sessions WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(Session {
                    token_hash: row.try_get("token_hash")?,
                    user: UserId(row.try_get("user_id")?),
                    created_at: ts(row.try_get("created_at")?),
                    expires_at: ts(row.try_get("expires_at")?),
                    last_seen: ts(row.try_get("last_seen")?),
                    second_factor: row.try_get("second_factor")?,
                    revoked: row.try_get("revoked")?,
                }))
            }

            async fn touch_session(&self, token_hash: &str, at: Timestamp) -> Result<()> {
                sqlx::query("UPDATE sessions SET last_seen = $2 WHERE token_hash = $1")
                    .bind(token_hash)
                    .bind(at.micros())
                    .execute(self.write_pool())
                    .await?;
                Ok(())
            }

            async fn revoke_session(&self, token_hash: &str, audit: AuditEntry) -> Result<()> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                sqlx::query("UPDATE sessions SET revoked = TRUE WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&mut *tx)
                    .await?;
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(())
            }
        }

        const TOKEN_SELECT: &str = "SELECT t.id, t.user_id, u.institution_id, t.name, t.token_hash, t.created_at, \
            t.expires_at, t.revoked FROM api_tokens t JOIN users u ON u.id = t.user_id";

        impl ApiTokenStore for $store {
            async fn create_api_token(&self, new: NewApiToken, audit: AuditEntry) -> Result<ApiToken> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                Self::check_user_exists(&mut tx, new.user).await?;
                let row = sqlx::query(
                    "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at, revoked) \
                     VALUES ($1, $2, $3, $4, $5, FALSE) RETURNING id",
                )
                .bind(new.user.0)
                .bind(new.name.as_str())
                .bind(new.token_hash.as_str())
                .bind(new.created_at.micros())
                .bind(new.expires_at.map(|t| t.micros()))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| map_unique(e, || "an API token with this secret".into()))?;
                let id: i64 = row.try_get("id")?;
                let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.id = $1")).bind(id).fetch_one(&mut *tx).await?;
                let token = token_from(&row)?;
                let mut audit = audit;
                audit.resource = format!("api_token:{id}");
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(token)
            }

            async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
                let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.token_hash = $1"))
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(token_from).transpose()
            }

            async fn api_token(&self, id: ApiTokenId) -> Result<Option<ApiToken>> {
                let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.id = $1")).bind(id.0).fetch_optional(&self.pool).await?;
                row.as_ref().map(token_from).transpose()
            }

            async fn api_tokens_of(&self, institution: InstitutionId) -> Result<Vec<ApiToken>> {
                let rows = sqlx::query(&format!("{TOKEN_SELECT} WHERE u.institution_id = $1 ORDER BY t.id"))
                    .bind(institution.0)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(token_from).collect()
            }

            async fn revoke_api_token(&self, id: ApiTokenId, audit: AuditEntry) -> Result<()> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                let done = sqlx::query("UPDATE api_tokens SET revoked = TRUE WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("API token {id}")));
                }
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(())
            }
        }

        impl AuditStore for $store {
            async fn append_audit(&self, entry: AuditEntry) -> Result<AuditRecord> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                let record = Self::append_in(&mut tx, &mut frontier, entry).await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn ledger_head(&self) -> Result<Frontier> {
                let row = sqlx::query("SELECT frontier FROM audit_head WHERE id = 1").fetch_one(&self.pool).await?;
                frontier_from(&row.try_get::<Vec<u8>, _>("frontier")?)
            }

            async fn ledger_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>> {
                let mut found: HashMap<(i64, i64), Hash> = HashMap::new();
                // Bounded batches keep the statement's parameter count small.
                for batch in ids.chunks(200) {
                    let clauses: Vec<String> = (0..batch.len())
                        .map(|i| format!("(seq = ${} AND level = ${})", 2 * i + 1, 2 * i + 2))
                        .collect();
                    let sql = format!("SELECT seq, level, hash FROM audit_nodes WHERE {}", clauses.join(" OR "));
                    let mut query = sqlx::query(&sql);
                    for id in batch {
                        query = query.bind(id.completed_by() as i64).bind(i64::from(id.level));
                    }
                    for row in query.fetch_all(&self.pool).await? {
                        let hash: Vec<u8> = row.try_get("hash")?;
                        let hash: Hash = hash.try_into().map_err(|_| corrupt("a ledger node is not 32 bytes"))?;
                        found.insert((row.try_get("seq")?, row.try_get("level")?), hash);
                    }
                }
                ids.iter()
                    .map(|id| {
                        found
                            .get(&(id.completed_by() as i64, i64::from(id.level)))
                            .copied()
                            .ok_or_else(|| corrupt(format!("ledger node {}/{} is missing", id.level, id.index)))
                    })
                    .collect()
            }

            async fn audit_record(&self, seq: u64, audit: AuditEntry) -> Result<Option<AuditRecord>> {
                let mut tx = self.begin_tx().await?;
                let row = sqlx::query(&format!("SELECT {RECORD_COLUMNS} FROM audit_records WHERE seq = $1"))
                    .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                    .fetch_optional(&mut *tx)
                    .await?;
                let record = row.as_ref().map(record_from).transpose()?;
                let mut frontier = Self::lock_ledger(&mut tx).await?;
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
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
                    add("seq", "<", Arg::Int(i64::try_from(before).unwrap_or(i64::MAX)));
                }
                let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
                let limit = query.limit.clamp(1, AuditQuery::MAX_LIMIT);
                let sql = format!("SELECT {RECORD_COLUMNS} FROM audit_records {filter} ORDER BY seq DESC LIMIT {limit}");
                let mut tx = self.begin_tx().await?;
                let mut q = sqlx::query(&sql);
                for arg in args {
                    q = match arg {
                        Arg::Int(v) => q.bind(v),
                        Arg::Text(v) => q.bind(v),
                    };
                }
                let rows = q.fetch_all(&mut *tx).await?;
                let records = rows.iter().map(record_from).collect::<Result<Vec<_>>>()?;
                let mut frontier = Self::lock_ledger(&mut tx).await?;
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
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
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn latest_tree_head(&self) -> Result<Option<SignedTreeHead>> {
                let row = sqlx::query("SELECT * FROM audit_tree_heads ORDER BY tree_size DESC LIMIT 1")
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(head_from).transpose()
            }

            async fn tree_head(&self, size: u64) -> Result<Option<SignedTreeHead>> {
                let row = sqlx::query("SELECT * FROM audit_tree_heads WHERE tree_size = $1")
                    .bind(i64::try_from(size).unwrap_or(i64::MAX))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(head_from).transpose()
            }

            async fn tree_heads(&self) -> Result<Vec<SignedTreeHead>> {
                let rows = sqlx::query("SELECT * FROM audit_tree_heads ORDER BY tree_size").fetch_all(&self.pool).await?;
                rows.iter().map(head_from).collect()
            }

            fn stream_audit_records(&self, below: u64) -> BoxStream<'_, Result<AuditRecord>> {
                sqlx::query(
                    "SELECT seq, at, actor_id, actor_name, institution_id, duty, action, resource, subject, \
                     purpose, legal_basis, grant_id, outcome, reason, client_addr, request_id \
                     FROM audit_records WHERE seq < $1 ORDER BY seq",
                )
                    .bind(i64::try_from(below).unwrap_or(i64::MAX))
                    .fetch(&self.pool)
                    .map(|row| record_from(&row?))
                    .boxed()
            }

            fn stream_ledger_nodes(&self, below: u64) -> BoxStream<'_, Result<(u64, u32, Vec<u8>)>> {
                sqlx::query("SELECT seq, level, hash FROM audit_nodes WHERE seq < $1 ORDER BY seq, level")
                    .bind(i64::try_from(below).unwrap_or(i64::MAX))
                    .fetch(&self.pool)
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
                let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_records").fetch_one(&self.pool).await?;
                let n: i64 = row.try_get("n")?;
                Ok(u64::try_from(n).unwrap_or(0))
            }
        }

        impl NodeStore for $store {
            async fn create_enrolment(&self, enrolment: NewEnrolment, audit: AuditEntry) -> Result<()> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                sqlx::query(
                    "INSERT INTO node_enrolments (token_hash, institution_id, node_name, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(enrolment.token_hash.as_str())
                .bind(enrolment.institution.0)
                .bind(enrolment.node_name.as_str())
                .bind(enrolment.created_at.micros())
                .bind(enrolment.expires_at.micros())
                .execute(&mut *tx)
                .await
                .map_err(|e| map_unique(e, || "an enrolment token with this secret".into()))?;
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn enrol_node(&self, token_hash: &str, node: NewNode, audit: AuditEntry) -> Result<Node> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                let row = sqlx::query(
                    "UPDATE node_enrolments SET used_at = $2 \
                     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND node_name = $3 \
                     RETURNING institution_id, node_name",
                )
                .bind(token_hash)
                .bind(node.enrolled_at.micros())
                .bind(node.name.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Err(StoreError::NotFound("a valid enrolment token".into()));
                };
                let institution: i64 = row.try_get("institution_id")?;
                let name: String = row.try_get("node_name")?;
                sqlx::query(
                    "INSERT INTO nodes (name, institution_id, signing_key, certificate, enrolled_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(name.as_str())
                .bind(institution)
                .bind(node.signing_key.as_str())
                .bind(node.certificate.as_str())
                .bind(node.enrolled_at.micros())
                .execute(&mut *tx)
                .await
                .map_err(|e| map_unique(e, || format!("node {name:?}")))?;
                let mut audit = audit;
                audit.institution = Some(InstitutionId(institution));
                audit.resource = format!("node:{name}");
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(Node {
                    name,
                    institution: InstitutionId(institution),
                    signing_key: node.signing_key,
                    certificate: node.certificate,
                    enrolled_at: node.enrolled_at,
                    route: None,
                })
            }

            async fn nodes(&self) -> Result<Vec<Node>> {
                let rows = sqlx::query(
                    "SELECT name, institution_id, signing_key, certificate, enrolled_at, url, kind, code FROM nodes ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let url: Option<String> = r.try_get("url")?;
                        let kind: Option<String> = r.try_get("kind")?;
                        let code: Option<String> = r.try_get("code")?;
                        Ok(Node {
                            name: r.try_get("name")?,
                            institution: InstitutionId(r.try_get("institution_id")?),
                            signing_key: r.try_get("signing_key")?,
                            certificate: r.try_get("certificate")?,
                            enrolled_at: ts(r.try_get("enrolled_at")?),
                            route: match (url, kind, code) {
                                (Some(url), Some(kind), Some(code)) => Some(NodeRoute { url, kind, code }),
                                _ => None,
                            },
                        })
                    })
                    .collect()
            }
        }

        fn log_entry_from(row: &DbRow) -> Result<LogEntry> {
            let direction: String = row.try_get("direction")?;
            Ok(LogEntry {
                seq: row.try_get::<i64, _>("seq")? as u64,
                at: row.try_get("at")?,
                direction: Direction::parse(&direction)
                    .ok_or_else(|| corrupt(format!("exchange log direction {direction:?}")))?,
                request_id: row.try_get("request_id")?,
                peer: row.try_get("peer")?,
                message_digest: row.try_get("message_digest")?,
                prev: row.try_get("prev")?,
                hash: row.try_get("hash")?,
            })
        }

        const LOG_COLUMNS: &str = "seq, at, direction, request_id, peer, message_digest, prev, hash";

        impl EndorserKeyStore for $store {
            async fn endorser_key(&self, user: UserId, role: &str, now: Timestamp) -> Result<Option<EndorserKey>> {
                let row = sqlx::query(
                    "SELECT public_key, secret_sealed, certificate, created_at, expires_at FROM endorser_keys \
                     WHERE user_id = $1 AND role = $2 AND expires_at > $3 ORDER BY created_at DESC LIMIT 1",
                )
                .bind(user.0)
                .bind(role)
                .bind(now.micros())
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    Ok(EndorserKey {
                        user,
                        role: role.to_owned(),
                        public_key: r.try_get("public_key")?,
                        secret_sealed: r.try_get("secret_sealed")?,
                        certificate: r.try_get("certificate")?,
                        created_at: ts(r.try_get("created_at")?),
                        expires_at: ts(r.try_get("expires_at")?),
                    })
                })
                .transpose()
            }

            async fn create_endorser_key(&self, key: EndorserKey, audit: AuditEntry) -> Result<()> {
                let (mut tx, mut frontier) = self.begin_ledger().await?;
                sqlx::query(
                    "INSERT INTO endorser_keys (user_id, role, public_key, secret_sealed, certificate, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(key.user.0)
                .bind(key.role.as_str())
                .bind(key.public_key.as_str())
                .bind(key.secret_sealed.as_slice())
                .bind(key.certificate.as_str())
                .bind(key.created_at.micros())
                .bind(key.expires_at.micros())
                .execute(&mut *tx)
                .await?;
                Self::append_in(&mut tx, &mut frontier, audit).await?;
                tx.commit().await?;
                Ok(())
            }
        }

        impl ExchangeLogStore for $store {
            async fn log_exchange(
                &self,
                at: i64,
                direction: Direction,
                request_id: &str,
                peer: &str,
                message_digest: String,
            ) -> Result<LogEntry> {
                // The chain's own lock serialises its appends (apart from
                // the audit ledger's, which it does not touch).
                let mut tx = self.begin_tx().await?;
                Self::lock_exchange_log(&mut tx).await?;
                let last = sqlx::query(&format!(
                    "SELECT {LOG_COLUMNS} FROM exchange_log ORDER BY seq DESC LIMIT 1"
                ))
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| log_entry_from(&r))
                .transpose()?;
                let entry = LogEntry::next(last.as_ref(), at, direction, request_id, peer, message_digest);
                sqlx::query(&format!(
                    "INSERT INTO exchange_log ({LOG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ))
                .bind(entry.seq as i64)
                .bind(entry.at)
                .bind(entry.direction.as_str())
                .bind(entry.request_id.as_str())
                .bind(entry.peer.as_str())
                .bind(entry.message_digest.as_str())
                .bind(entry.prev.as_str())
                .bind(entry.hash.as_str())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn exchange_log(&self, from: u64, limit: u64) -> Result<Vec<LogEntry>> {
                let rows = sqlx::query(&format!(
                    "SELECT {LOG_COLUMNS} FROM exchange_log WHERE seq >= $1 ORDER BY seq LIMIT $2"
                ))
                .bind(from.min(i64::MAX as u64) as i64)
                .bind(limit.min(i64::MAX as u64) as i64)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(log_entry_from).collect()
            }

            async fn latest_exchange(&self) -> Result<Option<LogEntry>> {
                sqlx::query(&format!(
                    "SELECT {LOG_COLUMNS} FROM exchange_log ORDER BY seq DESC LIMIT 1"
                ))
                .fetch_optional(&self.pool)
                .await?
                .map(|r| log_entry_from(&r))
                .transpose()
            }

            async fn keep_node_log_head(&self, node_key: &str, head: &LogHead, at: Timestamp) -> Result<()> {
                let kept = sqlx::query("SELECT hash FROM exchange_witnesses WHERE node_key = $1 AND size = $2")
                    .bind(node_key)
                    .bind(head.size as i64)
                    .fetch_optional(&self.pool)
                    .await?;
                if let Some(row) = kept {
                    let hash: String = row.try_get("hash")?;
                    return if hash == head.hash {
                        Ok(())
                    } else {
                        Err(StoreError::Conflict(format!(
                            "another head of node {node_key}'s log at size {}: its log was rewritten",
                            head.size
                        )))
                    };
                }
                sqlx::query(
                    "INSERT INTO exchange_witnesses (node_key, size, hash, signature, received_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (node_key, size) DO NOTHING",
                )
                .bind(node_key)
                .bind(head.size as i64)
                .bind(head.hash.as_str())
                .bind(head.signature.as_str())
                .bind(at.micros())
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn node_log_heads(&self, node_key: &str) -> Result<Vec<LogHead>> {
                let rows = sqlx::query(
                    "SELECT size, hash, signature FROM exchange_witnesses WHERE node_key = $1 ORDER BY size",
                )
                .bind(node_key)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(LogHead {
                            size: r.try_get::<i64, _>("size")? as u64,
                            hash: r.try_get("hash")?,
                            signature: r.try_get("signature")?,
                        })
                    })
                    .collect()
            }
        }

        impl MetaStore for $store {
            async fn meta(&self, key: &str) -> Result<Option<String>> {
                let row = sqlx::query("SELECT value FROM hub_meta WHERE key = $1").bind(key).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.try_get("value")).transpose()?)
            }

            async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
                sqlx::query("INSERT INTO hub_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                    .bind(key)
                    .bind(value)
                    .execute(self.write_pool())
                    .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_backend;

/// A single bind value of either type, for the few queries that choose
/// their filter at run time.
pub(crate) mod sqlx_value {
    pub enum Value {
        Int(i64),
        Text(String),
    }
}
