//! The records storage reads and writes.

use civic_core::identity::{
    ApiTokenId, Duty, InstitutionId, InstitutionKind, Name, UserId, Username,
};
use civic_core::time::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Institution {
    pub id: InstitutionId,
    pub name: String,
    pub kind: InstitutionKind,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewInstitution {
    pub name: Name,
    pub kind: InstitutionKind,
}

/// A user as stored. Holds secrets (the password hash, the sealed TOTP
/// secret): never serialise it as is; the API has its own view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub institution: InstitutionId,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    /// A machine client signs in only with API tokens, never a password.
    pub machine_client: bool,
    /// The TOTP secret, sealed with the hub's secret key.
    pub totp_secret_sealed: Option<Vec<u8>>,
    pub totp_enabled: bool,
    /// The last TOTP time step accepted, so that no code is used twice.
    pub totp_last_step: Option<i64>,
    pub duties: Vec<Duty>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub institution: InstitutionId,
    pub username: Username,
    pub display_name: Name,
    pub password_hash: String,
    pub machine_client: bool,
    pub duties: Vec<Duty>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the bearer token, hex: the token itself is never stored.
    pub token_hash: String,
    pub user: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub last_seen: Timestamp,
    pub second_factor: bool,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub user: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub second_factor: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub user: UserId,
    pub institution: InstitutionId,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub user: UserId,
    pub name: Name,
    pub token_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// How failed sign-ins counted under one key (a pseudonym of a name, of
/// an address or of a device) slow the next attempt under it: after
/// `free` failures in a row the next attempt waits `first_delay_seconds`,
/// and each further failure doubles the wait, up to `max_delay_seconds`. A key with no failure for `forget_after_seconds`
/// starts again. Nothing is ever locked: a wait ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub free: i64,
    pub first_delay_seconds: i64,
    pub max_delay_seconds: i64,
    pub forget_after_seconds: i64,
}

impl Backoff {
    /// The wait after the `failures`-th failure in a row.
    pub fn delay_seconds(&self, failures: i64) -> i64 {
        let over = failures - self.free;
        if over < 0 {
            0
        } else {
            self.first_delay_seconds
                .saturating_mul(1i64 << over.min(40))
                .min(self.max_delay_seconds)
        }
    }
}

/// A one-time enrolment token for a node, before use.
#[derive(Debug, Clone)]
pub struct NewEnrolment {
    pub token_hash: String,
    pub institution: InstitutionId,
    pub node_name: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewNode {
    /// The name the node enrols under: the token's.
    pub name: String,
    /// The Ed25519 key the node signs envelopes with (hex).
    pub signing_key: String,
    /// The certificate issued to it (PEM).
    pub certificate: String,
    pub enrolled_at: Timestamp,
}

/// An enrolled node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub name: String,
    pub institution: InstitutionId,
    pub signing_key: String,
    #[serde(skip)]
    pub certificate: String,
    pub enrolled_at: Timestamp,
    /// Where it answers and what it holds, once registered.
    #[serde(skip)]
    pub route: Option<NodeRoute>,
}

/// An endorser's signing key, sealed by the hub, with the hub's
/// certificate for it (JSON).
#[derive(Debug, Clone)]
pub struct EndorserKey {
    pub user: UserId,
    /// `health_approver` or `police_location_officer`.
    pub role: String,
    pub public_key: String,
    pub secret_sealed: Vec<u8>,
    pub certificate: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Where the hub reaches a node, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRoute {
    pub url: String,
    /// `pings`, `transactions` or `taps`.
    pub kind: String,
    /// The code of the holder in case registers (`skt`, `shinhan`).
    pub code: String,
}
