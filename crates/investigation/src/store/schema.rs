//! The investigation's schema, migrated by `civic_store::Store::migrate_application`.

use civic_store::kit::Migrations;

/// The investigation's tables: responses and their data keys, cases and
/// their sealed documents, data requests and decisions, collections and
/// their answers, contacts, the outbox, deletion certificates. (Created
/// if missing: a database made before the applications had their own
/// migrations has them from the platform's version 4.)
const V1: &str = r#"
CREATE TABLE IF NOT EXISTS responses (
    id {ID},
    name TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    rules TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_by BIGINT,
    opened_at BIGINT NOT NULL,
    closed_at BIGINT
);
CREATE TABLE IF NOT EXISTS response_keys (
    response_id BIGINT PRIMARY KEY REFERENCES responses(id),
    key_sealed {BYTES} NOT NULL
);
CREATE TABLE IF NOT EXISTS cases (
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
CREATE INDEX IF NOT EXISTS cases_by_region ON cases(response_id, region);
CREATE TABLE IF NOT EXISTS case_assignments (
    case_id BIGINT NOT NULL REFERENCES cases(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    PRIMARY KEY (case_id, user_id)
);
CREATE INDEX IF NOT EXISTS case_assignments_by_user ON case_assignments(user_id);
CREATE TABLE IF NOT EXISTS case_documents (
    case_id BIGINT NOT NULL REFERENCES cases(id),
    kind TEXT NOT NULL,
    sealed {BYTES} NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, kind)
);
CREATE TABLE IF NOT EXISTS data_requests (
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
CREATE INDEX IF NOT EXISTS data_requests_by_case ON data_requests(case_id);
CREATE INDEX IF NOT EXISTS data_requests_by_status ON data_requests(status);
CREATE TABLE IF NOT EXISTS decisions (
    request_id BIGINT NOT NULL REFERENCES data_requests(id),
    duty TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id),
    approve BOOLEAN NOT NULL,
    sealed {BYTES} NOT NULL,
    decided_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, duty)
);
CREATE TABLE IF NOT EXISTS collections (
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
CREATE INDEX IF NOT EXISTS collections_by_case ON collections(case_id);
CREATE INDEX IF NOT EXISTS collections_by_status ON collections(status);
CREATE TABLE IF NOT EXISTS collected (
    collection_id BIGINT PRIMARY KEY REFERENCES collections(id),
    sealed {BYTES} NOT NULL
);
CREATE TABLE IF NOT EXISTS contacts (
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
CREATE TABLE IF NOT EXISTS outbox (
    id {ID},
    response_id BIGINT NOT NULL REFERENCES responses(id),
    case_id BIGINT,
    kind TEXT NOT NULL,
    sealed {BYTES} NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX IF NOT EXISTS outbox_by_response ON outbox(response_id, case_id);
CREATE TABLE IF NOT EXISTS deletion_certificates (
    id {ID},
    response_id BIGINT NOT NULL REFERENCES responses(id),
    body TEXT NOT NULL,
    signature TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
"#;

/// A response's cases in id order, for reading them all without a sort.
const V2: &str = "CREATE INDEX IF NOT EXISTS cases_by_response ON cases(response_id, id);";

/// The investigation's migrations.
pub const MIGRATIONS: Migrations = Migrations {
    application: "investigation",
    versions: &[(1, V1), (2, V2)],
};
