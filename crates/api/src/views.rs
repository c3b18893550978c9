//! What the API sends and receives. Kept apart from storage records so that
//! a secret (a password hash, a sealed TOTP seed) can never leak into a
//! response by a field added to storage.

use civic_core::identity::{ApiTokenId, Duty, InstitutionId, InstitutionKind, UserId};
use civic_core::policy::Principal;
use civic_store::{ApiToken, Institution, User};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct InstitutionView {
    pub id: InstitutionId,
    pub name: String,
    pub kind: InstitutionKind,
    /// RFC 3339.
    pub created_at: String,
}

impl From<Institution> for InstitutionView {
    fn from(i: Institution) -> Self {
        Self {
            id: i.id,
            name: i.name,
            kind: i.kind,
            created_at: i.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub institution_id: InstitutionId,
    pub username: String,
    pub display_name: String,
    pub duties: Vec<Duty>,
    pub machine_client: bool,
    pub second_factor_enrolled: bool,
    pub created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            institution_id: u.institution,
            username: u.username,
            display_name: u.display_name,
            duties: u.duties,
            machine_client: u.machine_client,
            second_factor_enrolled: u.totp_enabled,
            created_at: u.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    pub id: UserId,
    pub username: String,
    pub institution_id: InstitutionId,
    pub institution_kind: InstitutionKind,
    pub duties: Vec<Duty>,
    /// `password`, `password_and_totp` or `api_token`.
    pub authenticated_with: String,
    /// True when the caller must enrol a second factor before anything else.
    pub must_enrol_second_factor: bool,
}

impl From<&Principal> for MeView {
    fn from(p: &Principal) -> Self {
        use civic_core::policy::AuthMethod;
        Self {
            id: p.user,
            username: p.username.clone(),
            institution_id: p.institution,
            institution_kind: p.institution_kind,
            duties: p.duties.clone(),
            authenticated_with: match p.auth {
                AuthMethod::Password => "password",
                AuthMethod::PasswordAndTotp => "password_and_totp",
                AuthMethod::ApiToken => "api_token",
            }
            .into(),
            must_enrol_second_factor: p.needs_second_factor() && !p.has_strong_auth(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(schema_with = civic_core::schemas::username)]
    pub username: String,
    #[schema(schema_with = civic_core::schemas::offered_password)]
    pub password: String,
    /// The current 6-digit code of the user's authenticator, if enrolled.
    #[schema(schema_with = civic_core::schemas::totp_code_or_null)]
    pub totp: Option<String>,
    /// The device token an earlier sign-in from this client returned:
    /// with it, failed sign-ins by others under this name do not slow
    /// this client's.
    #[schema(max_length = 512)]
    pub device: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
    pub token_type: String,
    pub expires_at: String,
    pub user: MeView,
    /// Keep it, and send it as `device` at the next sign-ins from this
    /// client.
    pub device: String,
}

#[derive(Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    /// Base32 secret, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
    /// The URI as a QR code (SVG), for an authenticator app's camera.
    pub qr_svg: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmRequest {
    #[schema(schema_with = civic_core::schemas::totp_code)]
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstitutionRequest {
    #[schema(schema_with = civic_core::schemas::text_200)]
    pub name: String,
    #[schema(schema_with = civic_core::schemas::institution_kind)]
    pub kind: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    #[schema(schema_with = civic_core::schemas::username)]
    pub username: String,
    #[schema(schema_with = civic_core::schemas::text_200)]
    pub display_name: String,
    /// At least 12 characters; none for a machine client.
    #[schema(schema_with = civic_core::schemas::new_password_or_null)]
    pub password: Option<String>,
    /// A machine client (a node, an agency's system) signs in only with API
    /// tokens; default false.
    #[serde(default)]
    pub machine_client: bool,
    /// e.g. `investigator:seoul`, `approver`.
    #[serde(default)]
    #[schema(schema_with = civic_core::schemas::duties)]
    pub duties: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DutiesRequest {
    #[schema(schema_with = civic_core::schemas::duties)]
    pub duties: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiTokenRequest {
    /// The machine-client user the token acts as.
    pub user_id: i64,
    #[schema(schema_with = civic_core::schemas::text_200)]
    pub name: String,
    /// Days until it expires (1–3650; default 90).
    #[schema(minimum = 1, maximum = 3650)]
    pub valid_days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenView {
    pub id: ApiTokenId,
    pub user_id: UserId,
    pub institution_id: InstitutionId,
    pub name: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked: bool,
}

impl From<ApiToken> for ApiTokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            user_id: t.user,
            institution_id: t.institution,
            name: t.name,
            created_at: t.created_at.to_rfc3339(),
            expires_at: t.expires_at.map(|e| e.to_rfc3339()),
            revoked: t.revoked,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct IssuedTokenView {
    pub token: ApiTokenView,
    /// The secret: shown this once, never again.
    pub secret: String,
}

/// A page of support tickets, newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditSearchParams {
    /// User id of the actor.
    pub actor: Option<i64>,
    /// Login name of the actor.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 200
    )]
    pub actor_name: Option<String>,
    /// Whose data, e.g. `case:1042` or `user:12`.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 200
    )]
    pub subject: Option<String>,
    /// What was touched, e.g. `institution:3`.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 200
    )]
    pub resource: Option<String>,
    /// e.g. `auth.login`.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 200
    )]
    pub action: Option<String>,
    /// RFC 3339 lower bound.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339 upper bound.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Only records with a sequence number below this (paging).
    pub before: Option<u64>,
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub records: Vec<civic_core::audit::AuditRecord>,
    /// Pass as `before` for the next (older) page.
    pub next_before: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InclusionParams {
    pub seq: u64,
    /// Default: the newest signed tree head.
    pub tree_size: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProofView {
    pub seq: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    /// Hex hashes, bottom first (RFC 9162 §2.1.3).
    pub proof: Vec<String>,
    pub tree_head: Option<civic_ledger::SignedTreeHead>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    pub first: u64,
    pub second: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProofView {
    pub first: u64,
    pub second: u64,
    /// Hex hashes (RFC 9162 §2.1.4).
    pub proof: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TreeHeadView {
    pub tree_head: civic_ledger::SignedTreeHead,
    /// Hex Ed25519 public key of the hub.
    pub public_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}
