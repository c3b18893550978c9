//! Administration: institutions, users, duties, second-factor resets,
//! unlocking, and API tokens of machine clients.
//!
//! The policy decides before anything is revealed: asking about a user of
//! another institution, or one that does not exist, gets the same refusal.
//! A refused action and an action that fails in storage (a duplicate name,
//! a vanished user) are audited as well as one that succeeds.

use crate::secrets::{self, token_hash};
use crate::{Ctx, Hub, HubError, Result};
use civic_core::audit::{AuditEntry, Outcome};
use civic_core::identity::{ApiTokenId, Duty, InstitutionId, Name, Password, UserId, Username};
use civic_core::policy::{self, Action};
use civic_core::time::Timestamp;
use civic_core::ValidationError;
use civic_store::{
    ApiToken, ApiTokenStore, AuditStore, Institution, InstitutionStore, NewApiToken,
    NewInstitution, NewUser, StoreError, User, UserStore,
};
use std::fmt;

/// No institution has this id: the policy's answer for a target that does
/// not exist is its answer for "another institution's".
const NO_INSTITUTION: InstitutionId = InstitutionId(-1);

/// API tokens expire after this many days unless asked otherwise.
pub const DEFAULT_TOKEN_DAYS: i64 = 90;

/// A new user as asked for, before validation.
#[derive(Clone)]
pub struct UserRequest {
    pub username: String,
    pub display_name: String,
    /// Required for a person; none for a machine client.
    pub password: Option<String>,
    pub duties: Vec<String>,
    /// A machine client signs in only with API tokens.
    pub machine_client: bool,
}

impl fmt::Debug for UserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRequest")
            .field("username", &self.username)
            .field("duties", &self.duties)
            .field("machine_client", &self.machine_client)
            .finish_non_exhaustive()
    }
}

/// An issued API token: the secret is shown once.
#[derive(Clone)]
pub struct IssuedToken {
    pub token: ApiToken,
    pub secret: String,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

fn parse_duties(raw: &[String]) -> Result<Vec<Duty>> {
    let mut duties = raw
        .iter()
        .map(|d| Duty::parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    duties.sort();
    duties.dedup();
    Ok(duties)
}

fn listed(duties: &[Duty]) -> String {
    let names: Vec<String> = duties.iter().map(|d| d.to_string()).collect();
    format!("duties: {}", names.join(","))
}

impl Hub {
    /// Hands back a storage result; a conflict or a missing record is
    /// audited as a failed attempt before it is returned.
    async fn audited<T>(&self, entry: AuditEntry, result: Result<T, StoreError>) -> Result<T> {
        match result {
            Ok(value) => Ok(value),
            Err(e @ (StoreError::Conflict(_) | StoreError::NotFound(_))) => {
                let mut failed = entry;
                failed.outcome = Outcome::Failed;
                failed.reason = Some(e.to_string());
                self.store.append_audit(failed).await?;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create_institution(
        &self,
        ctx: &Ctx,
        name: &str,
        kind: &str,
    ) -> Result<Institution> {
        let new = NewInstitution {
            name: Name::parse("name", name)?,
            kind: kind.parse()?,
        };
        let entry = self
            .authorize(
                ctx,
                Action::CreateInstitution,
                "admin.institution.create",
                "institution",
            )
            .await?;
        let result = self.store.create_institution(new, entry.clone()).await;
        self.audited(entry, result).await
    }

    pub async fn list_institutions(&self, ctx: &Ctx) -> Result<Vec<Institution>> {
        // Institutions are not personal data: only a refusal is audited.
        self.authorize(
            ctx,
            Action::ListInstitutions,
            "admin.institution.list",
            "institution",
        )
        .await?;
        Ok(self.store.institutions().await?)
    }

    async fn institution_of(&self, id: InstitutionId) -> Result<Institution> {
        self.store
            .institution(id)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("institution {id}")))
    }

    /// Whether `duties` fit the account: each one the institution's kind
    /// may hold, and, for a machine client, each one a machine client may
    /// hold (the policy's rule, checked here for the local operator too).
    fn check_duties_fit(
        duties: &[Duty],
        institution: &Institution,
        machine_client: bool,
    ) -> Result<()> {
        for duty in duties {
            duty.check_institution(institution.kind)?;
            if machine_client && !policy::machine_client_may_hold(duty.kind) {
                return Err(ValidationError::new("duties", policy::MACHINE_DUTIES).into());
            }
        }
        Ok(())
    }

    pub async fn create_user(
        &self,
        ctx: &Ctx,
        institution: InstitutionId,
        request: UserRequest,
    ) -> Result<User> {
        let duties = parse_duties(&request.duties)?;
        let action = Action::GrantDuties {
            institution,
            duties: &duties,
            own_account: false,
            machine_client: request.machine_client,
        };
        let entry = self
            .authorize(ctx, action, "admin.user.create", "user")
            .await?
            .reason(listed(&duties));
        let inst = self.institution_of(institution).await?;
        Self::check_duties_fit(&duties, &inst, request.machine_client)?;
        let username = Username::parse(&request.username)?;
        let display_name = Name::parse("display_name", &request.display_name)?;
        let password_hash = match (request.machine_client, request.password.as_deref()) {
            (false, Some(raw)) => secrets::hash_password_async(Password::parse_new(raw)?).await,
            (false, None) => {
                return Err(ValidationError::new("password", "a person needs a password").into())
            }
            // A machine client's password can never be typed: it signs in
            // with API tokens only.
            (true, None) => format!("!machine-client:{}", secrets::new_token("")),
            (true, Some(_)) => {
                return Err(ValidationError::new(
                    "password",
                    "a machine client has no password: it signs in with API tokens",
                )
                .into())
            }
        };
        let new = NewUser {
            institution,
            username,
            display_name,
            password_hash,
            machine_client: request.machine_client,
            duties,
        };
        let result = self.store.create_user(new, entry.clone()).await;
        self.audited(entry, result).await
    }

    pub async fn list_users(&self, ctx: &Ctx, institution: InstitutionId) -> Result<Vec<User>> {
        let entry = self
            .authorize(
                ctx,
                Action::ListUsers { institution },
                "admin.user.list",
                &format!("institution:{institution}/users"),
            )
            .await?;
        self.institution_of(institution).await?;
        Ok(self.store.users_of(institution, entry).await?)
    }

    /// The user `id` if she exists, and the institution the policy should
    /// judge the request by.
    async fn target(&self, id: UserId) -> Result<(Option<User>, InstitutionId)> {
        let user = self.store.user(id).await?;
        let institution = user.as_ref().map_or(NO_INSTITUTION, |u| u.institution);
        Ok((user, institution))
    }

    /// Authorizes a change to `user`'s account by an administrator of her
    /// institution; returns her and the audit entry naming her as subject.
    async fn authorize_user_change(
        &self,
        ctx: &Ctx,
        user: UserId,
        audit_action: &str,
    ) -> Result<(User, AuditEntry)> {
        let (target, institution) = self.target(user).await?;
        let resource = format!("user:{user}");
        let action = Action::ManageUser { institution };
        let entry = self.authorize(ctx, action, audit_action, &resource).await?;
        let target = target.ok_or_else(|| HubError::NotFound(resource.clone()))?;
        Ok((target, entry.subject(resource)))
    }

    pub async fn set_duties(&self, ctx: &Ctx, user: UserId, duties: &[String]) -> Result<User> {
        let duties = parse_duties(duties)?;
        let (target, institution) = self.target(user).await?;
        let resource = format!("user:{user}");
        let own_account = ctx.principal().is_some_and(|p| p.user == user);
        let action = Action::GrantDuties {
            institution,
            duties: &duties,
            own_account,
            machine_client: target.as_ref().is_some_and(|t| t.machine_client),
        };
        let entry = self
            .authorize(ctx, action, "admin.user.duties", &resource)
            .await?
            .subject(resource.clone())
            .reason(listed(&duties));
        let target = target.ok_or_else(|| HubError::NotFound(resource))?;
        Self::check_duties_fit(
            &duties,
            &self.institution_of(target.institution).await?,
            target.machine_client,
        )?;
        let result = self.store.set_duties(user, duties, entry.clone()).await;
        self.audited(entry, result).await?;
        self.activity().changed();
        self.target(user)
            .await?
            .0
            .ok_or_else(|| HubError::NotFound(format!("user {user}")))
    }

    pub async fn reset_second_factor(&self, ctx: &Ctx, user: UserId) -> Result<()> {
        let (_, entry) = self
            .authorize_user_change(ctx, user, "admin.user.totp_reset")
            .await?;
        let result = self.store.reset_totp(user, entry.clone()).await;
        self.audited(entry, result).await?;
        self.activity().changed();
        Ok(())
    }

    /// Ends the wait that failed sign-ins under a user's name imposed on
    /// clients without her device token (her own, say, on a new machine).
    pub async fn unlock_user(&self, ctx: &Ctx, user: UserId) -> Result<()> {
        let (target, entry) = self
            .authorize_user_change(ctx, user, "admin.user.unlock")
            .await?;
        let name = Username::parse(&target.username)?;
        let keys = [self.name_key(&name)];
        Ok(self.store.clear_sign_in_failures(&keys, entry).await?)
    }

    /// Sets a new password; the user's sessions end.
    pub async fn set_password(&self, ctx: &Ctx, user: UserId, password: &str) -> Result<()> {
        let password = Password::parse_new(password)?;
        let (target, entry) = self
            .authorize_user_change(ctx, user, "admin.user.password")
            .await?;
        if target.machine_client {
            return Err(ValidationError::new(
                "user",
                "a machine client has no password: issue it an API token",
            )
            .into());
        }
        let hash = secrets::hash_password_async(password).await;
        let result = self
            .store
            .set_password_hash(user, hash, entry.clone())
            .await;
        self.audited(entry, result).await?;
        self.activity().changed();
        Ok(())
    }

    /// Issues an API token for a machine-client user of `institution`,
    /// valid for `valid_days` (default [`DEFAULT_TOKEN_DAYS`]).
    pub async fn issue_api_token(
        &self,
        ctx: &Ctx,
        institution: InstitutionId,
        user: UserId,
        name: &str,
        valid_days: Option<i64>,
    ) -> Result<IssuedToken> {
        let entry = self
            .authorize(
                ctx,
                Action::ManageApiTokens { institution },
                "admin.token.create",
                "api_token",
            )
            .await?
            .subject(format!("user:{user}"));
        let name = Name::parse("name", name)?;
        let days = valid_days.unwrap_or(DEFAULT_TOKEN_DAYS);
        if !(1..=3650).contains(&days) {
            return Err(ValidationError::new("valid_days", "must be 1-3650").into());
        }
        match self.store.user(user).await? {
            Some(u) if u.institution == institution && u.machine_client => {}
            Some(u) if u.institution == institution => {
                return Err(ValidationError::new(
                    "user_id",
                    "API tokens are only for machine-client accounts; people sign in with a password and a second factor",
                )
                .into())
            }
            _ => {
                return Err(HubError::NotFound(format!(
                    "user {user} of institution {institution}"
                )))
            }
        }
        let secret = secrets::new_token(crate::auth::API_TOKEN_PREFIX);
        let now = Timestamp::now();
        let new = NewApiToken {
            user,
            name,
            token_hash: token_hash(&secret),
            created_at: now,
            expires_at: Some(now.plus_seconds(days * 86_400)),
        };
        let result = self.store.create_api_token(new, entry.clone()).await;
        let token = self.audited(entry, result).await?;
        Ok(IssuedToken { token, secret })
    }

    pub async fn list_api_tokens(
        &self,
        ctx: &Ctx,
        institution: InstitutionId,
    ) -> Result<Vec<ApiToken>> {
        // Token metadata holds no secret: only a refusal is audited.
        self.authorize(
            ctx,
            Action::ManageApiTokens { institution },
            "admin.token.list",
            &format!("institution:{institution}/api_tokens"),
        )
        .await?;
        self.institution_of(institution).await?;
        Ok(self.store.api_tokens_of(institution).await?)
    }

    pub async fn revoke_api_token(&self, ctx: &Ctx, id: ApiTokenId) -> Result<()> {
        let token = self.store.api_token(id).await?;
        let institution = token.as_ref().map_or(NO_INSTITUTION, |t| t.institution);
        let resource = format!("api_token:{id}");
        let entry = self
            .authorize(
                ctx,
                Action::ManageApiTokens { institution },
                "admin.token.revoke",
                &resource,
            )
            .await?;
        if token.is_none() {
            return Err(HubError::NotFound(format!("API token {id}")));
        }
        let result = self.store.revoke_api_token(id, entry.clone()).await;
        self.audited(entry, result).await?;
        self.activity().changed();
        Ok(())
    }
}
