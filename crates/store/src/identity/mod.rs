//! Who uses the platform: institutions, users and their duties, sign-in, sessions and API tokens.

use crate::*;
use civic_core::audit::AuditEntry;
use civic_core::identity::{ApiTokenId, Duty, InstitutionId, UserId};
use civic_core::time::Timestamp;

store_trait! {
pub trait InstitutionStore {
    fn create_institution(&self, new: NewInstitution, audit: AuditEntry) -> Result<Institution>;
    fn institution(&self, id: InstitutionId) -> Result<Option<Institution>>;
    fn institutions(&self) -> Result<Vec<Institution>>;
}
}

store_trait! {
pub trait UserStore {
    fn create_user(&self, new: NewUser, audit: AuditEntry) -> Result<User>;
    /// For sign-in only: the caller audits the outcome of the attempt.
    fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// For authenticating a session or token: not a read of someone else's data.
    fn user(&self, id: UserId) -> Result<Option<User>>;
    /// An official's account read by someone administering it.
    fn read_user(&self, id: UserId, audit: AuditEntry) -> Result<Option<User>>;
    fn users_of(&self, institution: InstitutionId, audit: AuditEntry) -> Result<Vec<User>>;
    fn set_duties(&self, user: UserId, duties: Vec<Duty>, audit: AuditEntry) -> Result<()>;
    fn set_password_hash(&self, user: UserId, hash: String, audit: AuditEntry) -> Result<()>;
    /// Stores a new, not yet confirmed TOTP secret (encrypted).
    fn set_totp_pending(&self, user: UserId, secret_sealed: Vec<u8>, audit: AuditEntry) -> Result<()>;
    /// Confirms the pending secret; raises `session` (if any) to two factors.
    fn enable_totp(&self, user: UserId, step: i64, session: Option<String>, audit: AuditEntry) -> Result<()>;
    /// Removes the second factor (an administrator's reset).
    fn reset_totp(&self, user: UserId, audit: AuditEntry) -> Result<()>;
    /// When the next sign-in judged under `keys` may be tried, if later
    /// than `now` (the longest wait of them).
    fn sign_in_wait(&self, keys: &[String], now: Timestamp) -> Result<Option<Timestamp>>;
    /// A failed sign-in: counts it under each key (each with its backoff)
    /// and audits it, in one transaction under the ledger lock, so that
    /// parallel guesses cannot all see the old count. Returns the time
    /// the next attempt under these keys may be tried, if later than `at`.
    fn login_failed(&self, keys: &[(String, Backoff)], at: Timestamp, audit: AuditEntry) -> Result<Option<Timestamp>>;
    /// A successful sign-in: refuses it (`Conflict`) if a key it was judged
    /// under has been made to wait meanwhile (by a parallel failure) or its
    /// TOTP step was used before; otherwise records the step (against
    /// replay), forgets the failures under `clear`, stores the session and
    /// audits it.
    fn login_succeeded(&self, session: NewSession, totp_step: Option<i64>, judged: &[String], clear: &[String], audit: AuditEntry) -> Result<()>;
    /// Forgets the failures counted under `keys` (an administrator's
    /// unlock), audited.
    fn clear_sign_in_failures(&self, keys: &[String], audit: AuditEntry) -> Result<()>;
}
}

store_trait! {
pub trait SessionStore {
    fn session(&self, token_hash: &str) -> Result<Option<Session>>;
    fn touch_session(&self, token_hash: &str, at: Timestamp) -> Result<()>;
    fn revoke_session(&self, token_hash: &str, audit: AuditEntry) -> Result<()>;
}
}

store_trait! {
pub trait ApiTokenStore {
    fn create_api_token(&self, new: NewApiToken, audit: AuditEntry) -> Result<ApiToken>;
    fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>>;
    fn api_token(&self, id: ApiTokenId) -> Result<Option<ApiToken>>;
    fn api_tokens_of(&self, institution: InstitutionId) -> Result<Vec<ApiToken>>;
    fn revoke_api_token(&self, id: ApiTokenId, audit: AuditEntry) -> Result<()>;
}
}
