//! Nodes, endorser keys, the exchange log and the settings table: the SQL, for the backend that mounts it.

use super::*;

impl NodeStore for Engine {
    async fn create_enrolment(&self, enrolment: NewEnrolment, audit: AuditEntry) -> Result<()> {
        let mut tx = self.audited().await?;
        sqlx::query(
            "INSERT INTO node_enrolments (token_hash, institution_id, node_name, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(enrolment.token_hash.as_str())
        .bind(enrolment.institution.0)
        .bind(enrolment.node_name.as_str())
        .bind(enrolment.created_at.micros())
        .bind(enrolment.expires_at.micros())
        .execute(&mut **tx)
        .await
        .map_err(|e| map_unique(e, || "an enrolment token with this secret".into()))?;
        tx.commit(audit).await?;
        Ok(())
    }

    async fn enrol_node(&self, token_hash: &str, node: NewNode, audit: AuditEntry) -> Result<Node> {
        let mut tx = self.audited().await?;
        let row = sqlx::query(
            "UPDATE node_enrolments SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND node_name = $3 \
             RETURNING institution_id, node_name",
        )
        .bind(token_hash)
        .bind(node.enrolled_at.micros())
        .bind(node.name.as_str())
        .fetch_optional(&mut **tx)
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
        .execute(&mut **tx)
        .await
        .map_err(|e| map_unique(e, || format!("node {name:?}")))?;
        let mut audit = audit;
        audit.institution = Some(InstitutionId(institution));
        audit.resource = format!("node:{name}");
        tx.commit(audit).await?;
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
        .fetch_all(self.reads())
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

    async fn set_node_route(&self, name: &str, route: NodeRoute, audit: AuditEntry) -> Result<()> {
        let mut tx = self.audited().await?;
        let done = sqlx::query("UPDATE nodes SET url = $1, kind = $2, code = $3 WHERE name = $4")
            .bind(route.url.as_str())
            .bind(route.kind.as_str())
            .bind(route.code.as_str())
            .bind(name)
            .execute(&mut **tx)
            .await?;
        changed(done.rows_affected(), || {
            StoreError::NotFound(format!("node {name:?}"))
        })?;
        tx.commit(audit).await?;
        Ok(())
    }
}

pub(super) fn log_entry_from(row: &DbRow) -> Result<LogEntry> {
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

pub(super) const LOG_COLUMNS: &str =
    "seq, at, direction, request_id, peer, message_digest, prev, hash";

impl EndorserKeyStore for Engine {
    async fn endorser_key(
        &self,
        user: UserId,
        role: &str,
        now: Timestamp,
    ) -> Result<Option<EndorserKey>> {
        let row = sqlx::query(
            "SELECT public_key, secret_sealed, certificate, created_at, expires_at FROM endorser_keys \
             WHERE user_id = $1 AND role = $2 AND expires_at > $3 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(user.0)
        .bind(role)
        .bind(now.micros())
        .fetch_optional(self.reads())
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
        let mut tx = self.audited().await?;
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
        .execute(&mut **tx)
        .await?;
        tx.commit(audit).await?;
        Ok(())
    }
}

impl ExchangeLogStore for Engine {
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
        let mut tx = self.begin().await?;
        Self::lock_exchange_log(&mut tx).await?;
        let last = sqlx::query(&format!(
            "SELECT {LOG_COLUMNS} FROM exchange_log ORDER BY seq DESC LIMIT 1"
        ))
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| log_entry_from(&r))
        .transpose()?;
        let entry = LogEntry::next(
            last.as_ref(),
            at,
            direction,
            request_id,
            peer,
            message_digest,
        );
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
        .fetch_all(self.reads())
        .await?;
        rows.iter().map(log_entry_from).collect()
    }

    async fn latest_exchange(&self) -> Result<Option<LogEntry>> {
        sqlx::query(&format!(
            "SELECT {LOG_COLUMNS} FROM exchange_log ORDER BY seq DESC LIMIT 1"
        ))
        .fetch_optional(self.reads())
        .await?
        .map(|r| log_entry_from(&r))
        .transpose()
    }

    async fn keep_node_log_head(
        &self,
        node_key: &str,
        head: &LogHead,
        at: Timestamp,
    ) -> Result<()> {
        let kept =
            sqlx::query("SELECT hash FROM exchange_witnesses WHERE node_key = $1 AND size = $2")
                .bind(node_key)
                .bind(head.size as i64)
                .fetch_optional(self.reads())
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
        .execute(self.writes())
        .await?;
        Ok(())
    }

    async fn node_log_heads(&self, node_key: &str) -> Result<Vec<LogHead>> {
        let rows = sqlx::query(
            "SELECT size, hash, signature FROM exchange_witnesses WHERE node_key = $1 ORDER BY size",
        )
        .bind(node_key)
        .fetch_all(self.reads())
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

impl MetaStore for Engine {
    async fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM hub_meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.reads())
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO hub_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(self.writes())
            .await?;
        Ok(())
    }
}
