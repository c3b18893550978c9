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

/// The epidemic investigation: responses and their data keys, cases,
/// their sealed documents, data requests and decisions, collections and
/// their answers, contacts, the outbox, deletion certificates; and where
/// the hub reaches each node.
const V4: &str = r#"
CREATE TABLE responses (
    id {ID},
    name TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    rules TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_by BIGINT,
    opened_at BIGINT NOT NULL,
    closed_at BIGINT
);
CREATE TABLE response_keys (
    response_id BIGINT PRIMARY KEY REFERENCES responses(id),
    key_sealed {BYTES} NOT NULL
);
CREATE TABLE cases (
    id {ID},
    response_id BIGINT NOT NULL REFERENCES responses(id),
    number TEXT NOT NULL,
    region TEXT NOT NULL,
    status TEXT NOT NULL,
    source_case_id BIGINT,
    sealed {BYTES} NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (response_id, number)
);
CREATE INDEX cases_by_region ON cases(response_id, region);
CREATE TABLE case_assignments (
    case_id BIGINT NOT NULL REFERENCES cases(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    PRIMARY KEY (case_id, user_id)
);
CREATE INDEX case_assignments_by_user ON case_assignments(user_id);
CREATE TABLE case_documents (
    case_id BIGINT NOT NULL REFERENCES cases(id),
    kind TEXT NOT NULL,
    sealed {BYTES} NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, kind)
);
CREATE TABLE data_requests (
    id {ID},
    case_id BIGINT NOT NULL REFERENCES cases(id),
    items TEXT NOT NULL,
    contacts BOOLEAN NOT NULL,
    data_from BIGINT NOT NULL,
    data_until BIGINT NOT NULL,
    status TEXT NOT NULL,
    requested_by BIGINT NOT NULL REFERENCES users(id),
    sealed {BYTES} NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX data_requests_by_case ON data_requests(case_id);
CREATE INDEX data_requests_by_status ON data_requests(status);
CREATE TABLE decisions (
    request_id BIGINT NOT NULL REFERENCES data_requests(id),
    duty TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id),
    approve BOOLEAN NOT NULL,
    sealed {BYTES} NOT NULL,
    decided_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, duty)
);
CREATE TABLE collections (
    id {ID},
    request_id BIGINT NOT NULL REFERENCES data_requests(id),
    case_id BIGINT NOT NULL REFERENCES cases(id),
    node TEXT NOT NULL,
    purpose TEXT NOT NULL,
    exchange_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    detail TEXT,
    sealed {BYTES} NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX collections_by_case ON collections(case_id);
CREATE INDEX collections_by_status ON collections(status);
CREATE TABLE collected (
    collection_id BIGINT PRIMARY KEY REFERENCES collections(id),
    sealed {BYTES} NOT NULL
);
CREATE TABLE contacts (
    id {ID},
    case_id BIGINT NOT NULL REFERENCES cases(id),
    tag TEXT NOT NULL,
    status TEXT NOT NULL,
    overlap_minutes BIGINT NOT NULL,
    linked_case_id BIGINT,
    sealed {BYTES} NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (case_id, tag)
);
CREATE TABLE outbox (
    id {ID},
    response_id BIGINT NOT NULL REFERENCES responses(id),
    case_id BIGINT,
    kind TEXT NOT NULL,
    sealed {BYTES} NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX outbox_by_response ON outbox(response_id, case_id);
CREATE TABLE deletion_certificates (
    id {ID},
    response_id BIGINT NOT NULL REFERENCES responses(id),
    body TEXT NOT NULL,
    signature TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
ALTER TABLE nodes ADD COLUMN url TEXT;
ALTER TABLE nodes ADD COLUMN kind TEXT;
ALTER TABLE nodes ADD COLUMN code TEXT;
"#;

/// Public MyData: the catalogue of what holding institutions offer, and
/// the linkage agreements (versioned, with their history) that alone let
/// transfers happen.
const V5: &str = r#"
CREATE TABLE mydata_offers (
    id {ID},
    holder_id BIGINT NOT NULL REFERENCES institutions(id),
    kind TEXT NOT NULL,
    code TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    items TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE mydata_agreements (
    id {ID},
    offer_id BIGINT NOT NULL REFERENCES mydata_offers(id),
    agency_id BIGINT NOT NULL REFERENCES institutions(id),
    service TEXT NOT NULL,
    version BIGINT NOT NULL,
    items TEXT NOT NULL,
    purpose TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    retention_days BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    UNIQUE (offer_id, agency_id, service, version)
);
CREATE INDEX mydata_agreements_by_agency ON mydata_agreements(agency_id);
CREATE TABLE mydata_agreement_notes (
    id {ID},
    agreement_id BIGINT NOT NULL REFERENCES mydata_agreements(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX mydata_notes_by_agreement ON mydata_agreement_notes(agreement_id);
"#;

/// The MyData support centre: institutions' tickets and their messages,
/// and training sessions with their attendees.
const V6: &str = r#"
CREATE TABLE support_tickets (
    id {ID},
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    opened_by BIGINT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX support_tickets_by_institution ON support_tickets(institution_id);
CREATE TABLE support_messages (
    id {ID},
    ticket_id BIGINT NOT NULL REFERENCES support_tickets(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX support_messages_by_ticket ON support_messages(ticket_id);
CREATE TABLE training_sessions (
    id {ID},
    title TEXT NOT NULL,
    held_on TEXT NOT NULL,
    place TEXT NOT NULL,
    materials TEXT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);
CREATE TABLE training_attendees (
    session_id BIGINT NOT NULL REFERENCES training_sessions(id),
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    name TEXT NOT NULL,
    PRIMARY KEY (session_id, institution_id, name)
);
"#;

const V7: &str = r#"
CREATE TABLE mydata_transfers (
    id {ID},
    agreement_id BIGINT NOT NULL REFERENCES mydata_agreements(id),
    offer_id BIGINT NOT NULL REFERENCES mydata_offers(id),
    agency_id BIGINT NOT NULL REFERENCES institutions(id),
    holder_id BIGINT NOT NULL REFERENCES institutions(id),
    subject TEXT NOT NULL,
    subject_tag TEXT NOT NULL,
    items TEXT NOT NULL,
    service TEXT NOT NULL,
    purpose TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    retention_days BIGINT NOT NULL,
    recipient_key TEXT NOT NULL,
    state TEXT NOT NULL,
    mode TEXT,
    consent_until BIGINT,
    interval_days BIGINT,
    reason TEXT,
    consent_key {BYTES},
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    withdrawn_at BIGINT,
    revoked_at BIGINT,
    deletion_confirmed_at BIGINT
);
CREATE INDEX mydata_transfers_by_subject ON mydata_transfers(subject);
CREATE INDEX mydata_transfers_by_agency ON mydata_transfers(agency_id);
CREATE TABLE mydata_deliveries (
    id {ID},
    transfer_id BIGINT NOT NULL REFERENCES mydata_transfers(id),
    node TEXT NOT NULL,
    status_index BIGINT NOT NULL,
    status_uri TEXT NOT NULL,
    package {BYTES},
    delivered_at BIGINT NOT NULL,
    fetched_at BIGINT
);
CREATE INDEX mydata_deliveries_by_transfer ON mydata_deliveries(transfer_id);
CREATE TABLE mydata_events (
    seq {ID},
    agency_id BIGINT NOT NULL REFERENCES institutions(id),
    transfer_id BIGINT NOT NULL REFERENCES mydata_transfers(id),
    kind TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX mydata_events_by_agency ON mydata_events(agency_id, seq);
CREATE TABLE mydata_webhooks (
    agency_id BIGINT PRIMARY KEY REFERENCES institutions(id),
    url TEXT NOT NULL,
    secret {BYTES} NOT NULL,
    delivered_seq BIGINT NOT NULL
);
CREATE TABLE mydata_status_lists (
    node TEXT PRIMARY KEY,
    uri TEXT NOT NULL,
    token TEXT NOT NULL,
    fetched_at BIGINT NOT NULL
);
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
    let v4 = V4.replace("{ID}", d.id).replace("{BYTES}", d.bytes);
    let v5 = V5.replace("{ID}", d.id);
    let v6 = V6.replace("{ID}", d.id);
    let v7 = V7.replace("{ID}", d.id).replace("{BYTES}", d.bytes);
    vec![
        (1, v1),
        (2, V2.to_owned()),
        (3, v3),
        (4, v4),
        (5, v5),
        (6, v6),
        (7, v7),
        (8, V8.to_owned()),
    ]
}
