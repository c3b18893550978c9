//! Administration: institutions, users, duties, second-factor resets,
//! unlocking, and API tokens of machine clients.

use crate::secrets::{self, token_hash};
use crate::{Ctx, Hub, HubError, Result};
use civic_core::audit::AuditEntry;
use civic_core::identity::{
    ApiTokenId, Duty, InstitutionId, InstitutionKind, Name, Password, UserId, Username,
};
use civic_core::policy::Action;
use civic_core::time::Timestamp;
use civic_store::{
    ApiToken, ApiTokenStore, Institution, InstitutionStore, NewApiToken, NewInstitution, NewUser,
    User, UserStore,
};

/// A new user as asked for, before validation.
#[derive(Debug, Clone)]
pub struct UserRequest {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub duties: Vec<String>,
}

/// An issued API token: the secret is shown once.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: ApiToken,
    pub secret: String,
}

impl Hub {
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
        Ok(self.store.create_institution(new, entry).await?)
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

    /// Looks a user up to decide on it; who may see it is decided after.
    async fn target_user(&self, id: UserId) -> Result<User> {
        self.store
            .user(id)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("user {id}")))
    }

    fn parse_duties(raw: &[String], kind: InstitutionKind) -> Result<Vec<Duty>> {
        let mut duties = raw
            .iter()
            .map(|d| Duty::parse(d))
            .collect::<Result<Vec<_>, _>>()?;
        for duty in &duties {
            duty.check_institution(kind)?;
        }
        duties.sort();
        duties.dedup();
        Ok(duties)
    }

    pub async fn create_user(
        &self,
        ctx: &Ctx,
        institution: InstitutionId,
        request: UserRequest,
    ) -> Result<User> {
        let mut entry = self
            .authorize(
                ctx,
                Action::ManageUser { institution },
                "admin.user.create",
                "user",
            )
            .await?;
        let inst = self.institution_of(institution).await?;
        let username = Username::parse(&request.username)?;
        let display_name = Name::parse("display_name", &request.display_name)?;
        let password = Password::parse_new(&request.password)?;
        let duties = Self::parse_duties(&request.duties, inst.kind)?;
        entry.reason = Some(format!(
            "duties: {}",
            duties
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ));
        let new = NewUser {
            institution,
            username,
            display_name,
            password_hash: secrets::hash_password(&password),
            duties,
        };
        Ok(self.store.create_user(new, entry).await?)
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

    /// Authorizes a change to `user`'s account by an administrator of her
    /// institution; returns her and the audit entry naming her as subject.
    async fn authorize_user_change(
        &self,
        ctx: &Ctx,
        user: UserId,
        audit_action: &str,
    ) -> Result<(User, AuditEntry)> {
        let target = self.target_user(user).await?;
        let resource = format!("user:{user}");
        let action = Action::ManageUser {
            institution: target.institution,
        };
        let entry = self.authorize(ctx, action, audit_action, &resource).await?;
        Ok((target, entry.subject(resource)))
    }

    pub async fn set_duties(&self, ctx: &Ctx, user: UserId, duties: &[String]) -> Result<User> {
        let (target, entry) = self
            .authorize_user_change(ctx, user, "admin.user.duties")
            .await?;
        let inst = self.institution_of(target.institution).await?;
        let duties = Self::parse_duties(duties, inst.kind)?;
        let listed: Vec<String> = duties.iter().map(|d| d.to_string()).collect();
        let entry = entry.reason(format!("duties: {}", listed.join(",")));
        self.store.set_duties(user, duties, entry).await?;
        self.target_user(user).await
    }

    pub async fn reset_second_factor(&self, ctx: &Ctx, user: UserId) -> Result<()> {
        let (_, entry) = self
            .authorize_user_change(ctx, user, "admin.user.totp_reset")
            .await?;
        Ok(self.store.reset_totp(user, entry).await?)
    }

    pub async fn unlock_user(&self, ctx: &Ctx, user: UserId) -> Result<()> {
        let (_, entry) = self
            .authorize_user_change(ctx, user, "admin.user.unlock")
            .await?;
        Ok(self.store.unlock(user, entry).await?)
    }

    pub async fn set_password(&self, ctx: &Ctx, user: UserId, password: &str) -> Result<()> {
        let password = Password::parse_new(password)?;
        let (_, entry) = self
            .authorize_user_change(ctx, user, "admin.user.password")
            .await?;
        let hash = secrets::hash_password(&password);
        Ok(self.store.set_password_hash(user, hash, entry).await?)
    }

    /// Issues an API token for a machine-client user of `institution`.
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
            .await?;
        let name = Name::parse("name", name)?;
        if let Some(days) = valid_days {
            if !(1..=3650).contains(&days) {
                return Err(
                    civic_core::ValidationError::new("valid_days", "must be 1-3650").into(),
                );
            }
        }
        if self.store.user(user).await?.map(|u| u.institution) != Some(institution) {
            return Err(civic_core::ValidationError::new(
                "user_id",
                "no such user in this institution",
            )
            .into());
        }
        let secret = secrets::new_token(crate::auth::API_TOKEN_PREFIX);
        let now = Timestamp::now();
        let token = self
            .store
            .create_api_token(
                NewApiToken {
                    user,
                    name,
                    token_hash: token_hash(&secret),
                    created_at: now,
                    expires_at: valid_days.map(|d| now.plus_seconds(d * 86_400)),
                },
                entry.subject(format!("user:{user}")),
            )
            .await?;
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
        let token = self
            .store
            .api_token(id)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("API token {id}")))?;
        let entry = self
            .authorize(
                ctx,
                Action::ManageApiTokens {
                    institution: token.institution,
                },
                "admin.token.revoke",
                &format!("api_token:{id}"),
            )
            .await?;
        Ok(self.store.revoke_api_token(id, entry).await?)
    }
}
