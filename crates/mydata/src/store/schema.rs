//! MyData's schema, migrated by `civic_store::Store::migrate_application`.
//! (Created if missing: a database made before the applications had their
//! own migrations has these tables from the platform's versions 5 to 7.)

use civic_store::kit::Migrations;

/// Public MyData: the catalogue of what holding institutions offer, and
/// the linkage agreements (versioned, with their history) that alone let
/// transfers happen.
const V1: &str = r#"
CREATE TABLE IF NOT EXISTS mydata_offers (
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
CREATE TABLE IF NOT EXISTS mydata_agreements (
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
CREATE INDEX IF NOT EXISTS mydata_agreements_by_agency ON mydata_agreements(agency_id);
CREATE TABLE IF NOT EXISTS mydata_agreement_notes (
    id {ID},
    agreement_id BIGINT NOT NULL REFERENCES mydata_agreements(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS mydata_notes_by_agreement ON mydata_agreement_notes(agreement_id);
"#;

/// The MyData support centre: institutions' tickets and their messages,
/// and training sessions with their attendees.
const V2: &str = r#"
CREATE TABLE IF NOT EXISTS support_tickets (
    id {ID},
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    opened_by BIGINT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS support_tickets_by_institution ON support_tickets(institution_id);
CREATE TABLE IF NOT EXISTS support_messages (
    id {ID},
    ticket_id BIGINT NOT NULL REFERENCES support_tickets(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS support_messages_by_ticket ON support_messages(ticket_id);
CREATE TABLE IF NOT EXISTS training_sessions (
    id {ID},
    title TEXT NOT NULL,
    held_on TEXT NOT NULL,
    place TEXT NOT NULL,
    materials TEXT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS training_attendees (
    session_id BIGINT NOT NULL REFERENCES training_sessions(id),
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    name TEXT NOT NULL,
    PRIMARY KEY (session_id, institution_id, name)
);
"#;

const V3: &str = r#"
CREATE TABLE IF NOT EXISTS mydata_transfers (
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
CREATE INDEX IF NOT EXISTS mydata_transfers_by_subject ON mydata_transfers(subject);
CREATE INDEX IF NOT EXISTS mydata_transfers_by_agency ON mydata_transfers(agency_id);
CREATE TABLE IF NOT EXISTS mydata_deliveries (
    id {ID},
    transfer_id BIGINT NOT NULL REFERENCES mydata_transfers(id),
    node TEXT NOT NULL,
    status_index BIGINT NOT NULL,
    status_uri TEXT NOT NULL,
    package {BYTES},
    delivered_at BIGINT NOT NULL,
    fetched_at BIGINT
);
CREATE INDEX IF NOT EXISTS mydata_deliveries_by_transfer ON mydata_deliveries(transfer_id);
CREATE TABLE IF NOT EXISTS mydata_events (
    seq {ID},
    agency_id BIGINT NOT NULL REFERENCES institutions(id),
    transfer_id BIGINT NOT NULL REFERENCES mydata_transfers(id),
    kind TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS mydata_events_by_agency ON mydata_events(agency_id, seq);
CREATE TABLE IF NOT EXISTS mydata_webhooks (
    agency_id BIGINT PRIMARY KEY REFERENCES institutions(id),
    url TEXT NOT NULL,
    secret {BYTES} NOT NULL,
    delivered_seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS mydata_status_lists (
    node TEXT PRIMARY KEY,
    uri TEXT NOT NULL,
    token TEXT NOT NULL,
    fetched_at BIGINT NOT NULL
);
"#;

/// MyData's migrations.
pub const MIGRATIONS: Migrations = Migrations {
    application: "mydata",
    versions: &[(1, V1), (2, V2), (3, V3)],
};
