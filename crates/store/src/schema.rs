//! The schema, written once: the few words in which SQLite and PostgreSQL
//! differ are the backends' [`Dialect`]s.

/// What a backend says differently.
pub(crate) struct Dialect {
    /// An auto-numbered 64-bit primary key.
    pub id: &'static str,
    /// The integer type of the single ledger-head row's key.
    pub head_id: &'static str,
    /// Bytes.
    pub bytes: &'static str,
    /// The empty ledger's frontier (eight zero bytes) as a literal.
    pub empty_frontier: &'static str,
    /// Triggers that keep the audit tables append-only.
    pub append_only: &'static str,
    /// Triggers that keep the exchange log and its witnesses append-only.
    pub exchange_append_only: &'static str,
}

const V1: &str = r#"
CREATE TABLE institutions (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE users (
    id {ID},
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    machine_client BOOLEAN NOT NULL DEFAULT FALSE,
    totp_secret {BYTES},
    totp_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step BIGINT,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX users_institution ON users(institution_id);
CREATE TABLE user_duties (
    user_id BIGINT NOT NULL REFERENCES users(id),
    duty TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, duty, region)
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    second_factor BOOLEAN NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE api_tokens (
    id {ID},
    user_id BIGINT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE audit_records (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor_id BIGINT,
    actor_name TEXT,
    institution_id BIGINT,
    duty TEXT,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    subject TEXT,
    purpose TEXT,
    legal_basis TEXT,
    grant_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    client_addr TEXT,
    request_id TEXT
);
CREATE INDEX audit_by_actor ON audit_records(actor_id, seq);
CREATE INDEX audit_by_actor_name ON audit_records(actor_name, seq);
CREATE INDEX audit_by_subject ON audit_records(subject, seq);
CREATE INDEX audit_by_resource ON audit_records(resource, seq);
CREATE INDEX audit_by_time ON audit_records(at);
CREATE TABLE audit_nodes (
    seq BIGINT NOT NULL,
    level BIGINT NOT NULL,
    hash {BYTES} NOT NULL,
    PRIMARY KEY (seq, level)
);
CREATE TABLE audit_head (
    id {HEAD_ID} PRIMARY KEY CHECK (id = 1),
    frontier {BYTES} NOT NULL
);
INSERT INTO audit_head (id, frontier) VALUES (1, {EMPTY_FRONTIER});
CREATE TABLE audit_tree_heads (
    tree_size BIGINT PRIMARY KEY,
    root_hash TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE hub_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
{APPEND_ONLY}"#;

/// Nodes enrolling with one-time tokens.
const V2: &str = r#"
CREATE TABLE node_enrolments (
    token_hash TEXT PRIMARY KEY,
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    node_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    signing_key TEXT NOT NULL,
    certificate TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL
);
"#;

/// The hub's log of what it sent to nodes and received from them: a hash
/// chain (civic_exchange::log), and the nodes' signed log heads it keeps
/// as witnesses of theirs; the endorsers' keys (sealed) and certificates.
const V3: &str = r#"
CREATE TABLE exchange_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    direction TEXT NOT NULL,
    request_id TEXT NOT NULL,
    peer TEXT NOT NULL,
    message_digest TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX exchange_log_by_request ON exchange_log(request_id);
CREATE TABLE endorser_keys (
    id {ID},
    user_id BIGINT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    public_key TEXT NOT NULL,
    secret_sealed {BYTES} NOT NULL,
    certificate TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX endorser_keys_by_user ON endorser_keys(user_id, role, expires_at);
CREATE TABLE exchange_witnesses (
    node_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (node_key, size)
);
{EXCHANGE_APPEND_ONLY}"#;

/// Where the hub reaches each node (its route).
const V4: &str = r#"
ALTER TABLE nodes ADD COLUMN url TEXT;
ALTER TABLE nodes ADD COLUMN kind TEXT;
ALTER TABLE nodes ADD COLUMN code TEXT;
"#;

/// Failed sign-ins by key (a keyed pseudonym of a typed name, of a client
/// address or of a device), for the backoff that replaced the account
/// lock-out: a name that exists and one that does not are counted alike,
/// and nothing is locked, only slowed.
const V8: &str = r#"
CREATE TABLE sign_in_failures (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_failure BIGINT NOT NULL,
    not_before BIGINT NOT NULL
);
ALTER TABLE users DROP COLUMN failed_logins;
ALTER TABLE users DROP COLUMN locked_until;
"#;

/// Every migration in order, in this dialect. Never edit one that has
/// shipped: add another.
/// An application's schema: its tables, created by its own migrations
/// (numbered from 1 for each application, recorded apart from the
/// platform's), written with the same words as the platform's (`{ID}`,
/// `{BYTES}`, which each backend's [`Dialect`] says).
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub application: &'static str,
    pub versions: &'static [(i64, &'static str)],
}

/// An application's migrations in a backend's words.
pub(crate) fn render(d: &Dialect, m: &Migrations) -> Vec<(i64, String)> {
    m.versions
        .iter()
        .map(|(v, sql)| (*v, sql.replace("{ID}", d.id).replace("{BYTES}", d.bytes)))
        .collect()
}

pub(crate) fn migrations(d: &Dialect) -> Vec<(i64, String)> {
    let v1 = V1
        .replace("{ID}", d.id)
        .replace("{HEAD_ID}", d.head_id)
        .replace("{BYTES}", d.bytes)
        .replace("{EMPTY_FRONTIER}", d.empty_frontier)
        .replace("{APPEND_ONLY}", d.append_only);
    let v3 = V3
        .replace("{ID}", d.id)
        .replace("{BYTES}", d.bytes)
        .replace("{EXCHANGE_APPEND_ONLY}", d.exchange_append_only);
    vec![
        (1, v1),
        (2, V2.to_owned()),
        (3, v3),
        (4, V4.to_owned()),
        (8, V8.to_owned()),
    ]
}
