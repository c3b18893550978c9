//! What the storage suites share: an audit entry, an institution, a user.

use civic_core::audit::{AuditEntry, Outcome};
use civic_core::identity::{Duty, InstitutionKind, Name, Username};
use civic_store::*;

pub fn audit(action: &str) -> AuditEntry {
    AuditEntry::new(action, "test", Outcome::Allowed)
}

pub async fn institution(store: &Store, name: &str, kind: InstitutionKind) -> Institution {
    store
        .create_institution(
            NewInstitution {
                name: Name::parse("name", name).unwrap(),
                kind,
            },
            audit("admin.institution.create"),
        )
        .await
        .unwrap()
}

pub async fn user(
    store: &Store,
    institution: &Institution,
    username: &str,
    duties: &[&str],
) -> User {
    store
        .create_user(
            NewUser {
                institution: institution.id,
                username: Username::parse(username).unwrap(),
                display_name: Name::parse("display_name", "Kim Ji-won").unwrap(),
                password_hash: "$argon2id$fake".into(),
                machine_client: false,
                duties: duties.iter().map(|d| Duty::parse(d).unwrap()).collect(),
            },
            audit("admin.user.create"),
        )
        .await
        .unwrap()
}
