//! Institutions, users, sessions and API tokens: the SQL, for the backend that mounts it.

use super::*;

pub(super) const USER_COLUMNS: &str = "id, institution_id, username, display_name, password_hash, \
    machine_client, totp_secret, totp_enabled, totp_last_step, created_at";

pub(super) fn institution_from(row: &DbRow) -> Result<Institution> {
    let kind: String = row.try_get("kind")?;
    Ok(Institution {
        id: InstitutionId(row.try_get("id")?),
        name: row.try_get("name")?,
        kind: kind.parse().map_err(corrupt)?,
        created_at: ts(row.try_get("created_at")?),
    })
}

pub(super) fn user_from(row: &DbRow, duties: Vec<Duty>) -> Result<User> {
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

pub(super) fn duty_from(row: &DbRow) -> Result<(i64, Duty)> {
    let kind: String = row.try_get("duty")?;
    let region: String = row.try_get("region")?;
    let duty = if region.is_empty() {
        Duty::parse(&kind)
    } else {
        Duty::parse(&format!("{kind}:{region}"))
    };
    Ok((row.try_get("user_id")?, duty.map_err(corrupt)?))
}

pub(super) fn token_from(row: &DbRow) -> Result<ApiToken> {
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

impl Engine {
    pub(super) async fn duties_where(
        &self,
        tx: &mut Tx,
        filter: &str,
        id: i64,
    ) -> Result<HashMap<i64, Vec<Duty>>> {
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

    pub(super) async fn write_duties(tx: &mut Tx, user: i64, duties: &[Duty]) -> Result<()> {
        sqlx::query("DELETE FROM user_duties WHERE user_id = $1")
            .bind(user)
            .execute(&mut **tx)
            .await?;
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

    pub(super) async fn load_user(
        &self,
        tx: &mut Tx,
        filter: &str,
        value: Value,
    ) -> Result<Option<User>> {
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
        let duties = self
            .duties_where(tx, "d.user_id = $1", id)
            .await?
            .remove(&id)
            .unwrap_or_default();
        Ok(Some(user_from(&row, duties)?))
    }

    /// Updates one user row inside an audited transaction; fails
    /// with `NotFound` (and writes nothing) if there is no such user.
    /// Sessions opened with a credential end when it changes.
    pub(super) async fn end_sessions_of(tx: &mut Tx, user: UserId) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked = TRUE WHERE user_id = $1")
            .bind(user.0)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub(super) async fn check_user_exists(tx: &mut Tx, user: UserId) -> Result<()> {
        let found = sqlx::query("SELECT id FROM users WHERE id = $1")
            .bind(user.0)
            .fetch_optional(&mut **tx)
            .await?;
        found
            .map(|_| ())
            .ok_or_else(|| StoreError::NotFound(format!("user {user}")))
    }
}

impl InstitutionStore for Engine {
    async fn create_institution(
        &self,
        new: NewInstitution,
        audit: AuditEntry,
    ) -> Result<Institution> {
        let mut tx = self.audited().await?;
        let now = Timestamp::now();
        let row = sqlx::query("INSERT INTO institutions (name, kind, created_at) VALUES ($1, $2, $3) RETURNING id, name, kind, created_at")
            .bind(new.name.as_str())
            .bind(new.kind.as_str())
            .bind(now.micros())
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| map_unique(e, || format!("institution {:?}", new.name.as_str())))?;
        let institution = institution_from(&row)?;
        let mut audit = audit;
        audit.resource = format!("institution:{}", institution.id);
        tx.commit(audit).await?;
        Ok(institution)
    }

    async fn institution(&self, id: InstitutionId) -> Result<Option<Institution>> {
        let row = sqlx::query("SELECT id, name, kind, created_at FROM institutions WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.reads())
            .await?;
        row.as_ref().map(institution_from).transpose()
    }

    async fn institutions(&self) -> Result<Vec<Institution>> {
        let rows = sqlx::query("SELECT id, name, kind, created_at FROM institutions ORDER BY id")
            .fetch_all(self.reads())
            .await?;
        rows.iter().map(institution_from).collect()
    }
}

impl UserStore for Engine {
    async fn create_user(&self, new: NewUser, audit: AuditEntry) -> Result<User> {
        let mut tx = self.audited().await?;
        let exists = sqlx::query("SELECT id FROM institutions WHERE id = $1")
            .bind(new.institution.0)
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!(
                "institution {}",
                new.institution
            )));
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
        .fetch_one(&mut **tx)
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
        tx.commit(audit).await?;
        Ok(user)
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let mut tx = self.reads().begin().await?;
        let user = self
            .load_user(&mut tx, "username = $1", Value::Text(username.to_owned()))
            .await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn user(&self, id: UserId) -> Result<Option<User>> {
        let mut tx = self.reads().begin().await?;
        let user = self.load_user(&mut tx, "id = $1", Value::Int(id.0)).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn read_user(&self, id: UserId, audit: AuditEntry) -> Result<Option<User>> {
        // Reads run before the ledger lock is taken (to append), in
        // the same transaction: the audit is as atomic, the lock
        // held shorter.
        let mut tx = self.begin().await?;
        let user = self.load_user(&mut tx, "id = $1", Value::Int(id.0)).await?;
        Self::commit_reads(tx, audit).await?;
        Ok(user)
    }

    async fn users_of(&self, institution: InstitutionId, audit: AuditEntry) -> Result<Vec<User>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE institution_id = $1 ORDER BY id"
        ))
        .bind(institution.0)
        .fetch_all(&mut *tx)
        .await?;
        let mut duties = self
            .duties_where(&mut tx, "u.institution_id = $1", institution.0)
            .await?;
        let users = rows
            .iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                user_from(row, duties.remove(&id).unwrap_or_default())
            })
            .collect::<Result<Vec<_>>>()?;
        Self::commit_reads(tx, audit).await?;
        Ok(users)
    }

    async fn set_duties(&self, user: UserId, duties: Vec<Duty>, audit: AuditEntry) -> Result<()> {
        let mut tx = self.audited().await?;
        Self::check_user_exists(&mut tx, user).await?;
        Self::write_duties(&mut tx, user.0, &duties).await?;
        tx.commit(audit).await?;
        Ok(())
    }

    async fn set_password_hash(&self, user: UserId, hash: String, audit: AuditEntry) -> Result<()> {
        let mut tx = self.audited().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user.0)
            .bind(hash)
            .execute(&mut **tx)
            .await?;
        changed(done.rows_affected(), || {
            StoreError::NotFound(format!("user {user}"))
        })?;
        Self::end_sessions_of(&mut tx, user).await?;
        tx.commit(audit).await?;
        Ok(())
    }

    async fn set_totp_pending(
        &self,
        user: UserId,
        secret_sealed: Vec<u8>,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut tx = self.audited().await?;
        let done = sqlx::query("UPDATE users SET totp_secret = $2, totp_enabled = FALSE WHERE id = $1 AND totp_enabled = FALSE")
            .bind(user.0)
            .bind(secret_sealed)
            .execute(&mut **tx)
            .await?;
        changed(done.rows_affected(), || {
            StoreError::Conflict(format!(
                "a confirmed second factor of user {user} already exists"
            ))
        })?;
        tx.commit(audit).await?;
        Ok(())
    }

    async fn enable_totp(
        &self,
        user: UserId,
        step: i64,
        session: Option<String>,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut tx = self.audited().await?;
        let done = sqlx::query(
            "UPDATE users SET totp_enabled = TRUE, totp_last_step = $2 \
             WHERE id = $1 AND totp_secret IS NOT NULL AND totp_enabled = FALSE",
        )
        .bind(user.0)
        .bind(step)
        .execute(&mut **tx)
        .await?;
        changed(done.rows_affected(), || {
            StoreError::NotFound(format!("a pending second factor of user {user}"))
        })?;
        if let Some(token_hash) = session {
            sqlx::query(
                "UPDATE sessions SET second_factor = TRUE WHERE token_hash = $1 AND user_id = $2",
            )
            .bind(token_hash)
            .bind(user.0)
            .execute(&mut **tx)
            .await?;
        }
        tx.commit(audit).await?;
        Ok(())
    }

    async fn reset_totp(&self, user: UserId, audit: AuditEntry) -> Result<()> {
        let mut tx = self.audited().await?;
        let done = sqlx::query("UPDATE users SET totp_secret = NULL, totp_enabled = FALSE, totp_last_step = NULL WHERE id = $1")
            .bind(user.0)
            .execute(&mut **tx)
            .await?;
        changed(done.rows_affected(), || {
            StoreError::NotFound(format!("user {user}"))
        })?;
        Self::end_sessions_of(&mut tx, user).await?;
        tx.commit(audit).await?;
        Ok(())
    }

    async fn sign_in_wait(&self, keys: &[String], now: Timestamp) -> Result<Option<Timestamp>> {
        let mut wait = None;
        for key in keys {
            let row = sqlx::query("SELECT not_before FROM sign_in_failures WHERE key = $1")
                .bind(key.as_str())
                .fetch_optional(self.reads())
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

    async fn login_failed(
        &self,
        keys: &[(String, Backoff)],
        at: Timestamp,
        audit: AuditEntry,
    ) -> Result<Option<Timestamp>> {
        let mut tx = self.audited().await?;
        let mut wait = None;
        for (key, backoff) in keys {
            // Read and written under the ledger lock: no other
            // failure is counted in between.
            let row =
                sqlx::query("SELECT failures, last_failure FROM sign_in_failures WHERE key = $1")
                    .bind(key.as_str())
                    .fetch_optional(&mut **tx)
                    .await?;
            let before = match row {
                Some(row) => {
                    let last: i64 = row.try_get("last_failure")?;
                    let quiet = at.micros() - last > backoff.forget_after_seconds * 1_000_000;
                    if quiet {
                        0
                    } else {
                        row.try_get::<i64, _>("failures")?
                    }
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
            .execute(&mut **tx)
            .await?;
            if until > at && wait.is_none_or(|w| w < until) {
                wait = Some(until);
            }
        }
        tx.commit(audit).await?;
        Ok(wait)
    }

    async fn login_succeeded(
        &self,
        session: NewSession,
        totp_step: Option<i64>,
        judged: &[String],
        clear: &[String],
        audit: AuditEntry,
    ) -> Result<()> {
        let mut tx = self.audited().await?;
        // A wait set by a parallel failure since the attempt was
        // judged holds: a guess in flight does not slip past it.
        for key in judged {
            let waiting =
                sqlx::query("SELECT key FROM sign_in_failures WHERE key = $1 AND not_before > $2")
                    .bind(key.as_str())
                    .bind(session.created_at.micros())
                    .fetch_optional(&mut **tx)
                    .await?;
            if waiting.is_some() {
                return Err(StoreError::Conflict(
                    "sign-ins under this name or from this address must wait".into(),
                ));
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
        .execute(&mut **tx)
        .await?;
        changed(done.rows_affected(), || {
            StoreError::Conflict("a sign-in with this one-time code already exists".into())
        })?;
        for key in clear {
            sqlx::query("DELETE FROM sign_in_failures WHERE key = $1")
                .bind(key.as_str())
                .execute(&mut **tx)
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
        .execute(&mut **tx)
        .await?;
        tx.commit(audit).await?;
        Ok(())
    }

    async fn clear_sign_in_failures(&self, keys: &[String], audit: AuditEntry) -> Result<()> {
        let mut tx = self.audited().await?;
        for key in keys {
            sqlx::query("DELETE FROM sign_in_failures WHERE key = $1")
                .bind(key.as_str())
                .execute(&mut **tx)
                .await?;
        }
        tx.commit(audit).await?;
        Ok(())
    }
}

impl SessionStore for Engine {
    async fn session(&self, token_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT token_hash, user_id, created_at, expires_at, last_seen, second_factor, revoked \
             FROM sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.reads())
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
            .execute(self.writes())
            .await?;
        Ok(())
    }

    async fn revoke_session(&self, token_hash: &str, audit: AuditEntry) -> Result<()> {
        let mut tx = self.audited().await?;
        sqlx::query("UPDATE sessions SET revoked = TRUE WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut **tx)
            .await?;
        tx.commit(audit).await?;
        Ok(())
    }
}

pub(super) const TOKEN_SELECT: &str =
    "SELECT t.id, t.user_id, u.institution_id, t.name, t.token_hash, t.created_at, \
    t.expires_at, t.revoked FROM api_tokens t JOIN users u ON u.id = t.user_id";

impl ApiTokenStore for Engine {
    async fn create_api_token(&self, new: NewApiToken, audit: AuditEntry) -> Result<ApiToken> {
        let mut tx = self.audited().await?;
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
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| map_unique(e, || "an API token with this secret".into()))?;
        let id: i64 = row.try_get("id")?;
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.id = $1"))
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
        let token = token_from(&row)?;
        let mut audit = audit;
        audit.resource = format!("api_token:{id}");
        tx.commit(audit).await?;
        Ok(token)
    }

    async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(self.reads())
            .await?;
        row.as_ref().map(token_from).transpose()
    }

    async fn api_token(&self, id: ApiTokenId) -> Result<Option<ApiToken>> {
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.id = $1"))
            .bind(id.0)
            .fetch_optional(self.reads())
            .await?;
        row.as_ref().map(token_from).transpose()
    }

    async fn api_tokens_of(&self, institution: InstitutionId) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(&format!(
            "{TOKEN_SELECT} WHERE u.institution_id = $1 ORDER BY t.id"
        ))
        .bind(institution.0)
        .fetch_all(self.reads())
        .await?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_api_token(&self, id: ApiTokenId, audit: AuditEntry) -> Result<()> {
        let mut tx = self.audited().await?;
        let done = sqlx::query("UPDATE api_tokens SET revoked = TRUE WHERE id = $1")
            .bind(id.0)
            .execute(&mut **tx)
            .await?;
        changed(done.rows_affected(), || {
            StoreError::NotFound(format!("API token {id}"))
        })?;
        tx.commit(audit).await?;
        Ok(())
    }
}
