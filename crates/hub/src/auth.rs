//! Sign-in, sessions, second factor and API tokens of machine clients.
//!
//! A session or API token is a 256-bit bearer secret; only its SHA-256 is
//! stored. A user whose duties see personal data must sign in with a TOTP
//! code; until she has enrolled one, her session may only enrol it.
//! Consecutive failures lock the account for a while. Every attempt, good
//! or bad, is audited in the same transaction as its effect.

use crate::secrets::{self, token_hash};
use crate::{Actor, ClientInfo, Ctx, Hub, HubError, Result};
use civic_core::audit::Outcome;
use civic_core::identity::{Password, Username};
use civic_core::policy::{Action, AuthMethod, Principal};
use civic_core::time::Timestamp;
use civic_store::{
    ApiTokenStore, AuditStore, InstitutionStore, Lockout, NewSession, SessionStore, StoreError,
    User, UserStore,
};

pub const SESSION_PREFIX: &str = "cdh_s_";
pub const API_TOKEN_PREFIX: &str = "cdh_t_";

/// A successful sign-in.
#[derive(Clone)]
pub struct SignedIn {
    /// The bearer token: shown once, never stored.
    pub token: String,
    pub expires_at: Timestamp,
    pub principal: Principal,
    /// True when the user must enrol a second factor before doing anything
    /// else.
    pub must_enrol_second_factor: bool,
}

/// Sign-in attempts per client address in the current minute.
#[derive(Default)]
pub struct Throttle {
    windows: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u32)>>,
}

impl Throttle {
    /// Counts an attempt from `client`; false when it is over `per_minute`.
    pub fn admit(&self, client: &str, per_minute: u32) -> bool {
        let now = std::time::Instant::now();
        let minute = std::time::Duration::from_secs(60);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < minute);
        }
        let (start, count) = windows.entry(client.to_owned()).or_insert((now, 0));
        if now.duration_since(*start) >= minute {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= per_minute
    }
}

/// A new, unconfirmed second factor.
#[derive(Clone)]
pub struct TotpEnrolment {
    pub secret_base32: String,
    pub otpauth_uri: String,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .field("principal", &self.principal)
            .finish()
    }
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(***)")
    }
}

impl Hub {
    fn unix_now() -> i64 {
        Timestamp::now().micros().div_euclid(1_000_000)
    }

    async fn principal_of(&self, user: &User, auth: AuthMethod) -> Result<Principal> {
        let institution = self
            .store
            .institution(user.institution)
            .await?
            .ok_or_else(|| {
                HubError::Store(StoreError::Corrupt(format!(
                    "user {} has no institution",
                    user.id
                )))
            })?;
        Ok(Principal {
            user: user.id,
            username: user.username.clone(),
            institution: user.institution,
            institution_kind: institution.kind,
            duties: user.duties.clone(),
            auth,
        })
    }

    /// Counts an attempt to authenticate (a sign-in, a node's enrolment)
    /// from the client's address; false when it is over the limit.
    pub(crate) fn admit_attempt(&self, client: &ClientInfo) -> bool {
        self.login_throttle.admit(
            client.addr.as_deref().unwrap_or("unknown"),
            self.config.login_attempts_per_minute,
        )
    }

    /// Signs in with a password and, where the account has one, a TOTP code.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<SignedIn> {
        let username = Username::parse(username)?;
        let password = Password::offered(password)?;
        if !self.admit_attempt(client) {
            return Err(HubError::TooManyRequests);
        }
        let now = Timestamp::now();
        let mut entry = Ctx {
            actor: Actor::LocalOperator(String::new()),
            client: client.clone(),
        }
        .entry("auth.login", "session", Outcome::Failed);

        let Some(user) = self.store.user_by_username(username.as_str()).await? else {
            secrets::verify_nothing_async(password).await;
            // What was typed may be a password in the wrong field: the
            // ledger keeps only a pseudonym of it, enough to see one name
            // tried many times.
            entry.actor_name = Some(format!(
                "unknown:{}",
                self.keys().pseudonym(username.as_str())
            ));
            self.store
                .login_failed(None, entry.reason("unknown user"))
                .await?;
            return Err(HubError::InvalidCredentials);
        };
        entry.actor_name = Some(user.username.clone());
        entry.actor = Some(user.id);
        entry.institution = Some(user.institution);
        entry.subject = Some(format!("user:{}", user.id));

        if let Some(until) = user.locked_until.filter(|&u| u > now) {
            secrets::verify_nothing_async(password).await;
            self.store
                .login_failed(None, entry.reason("account locked"))
                .await?;
            return Err(HubError::Locked { until });
        }
        // A failure counts towards the lock-out; storage decides, under the
        // ledger lock, whether this one locks the account.
        let fail = |reason: &'static str, error: HubError| {
            let lockout = Lockout {
                threshold: self.config.lockout_threshold,
                until: now.plus_seconds(self.config.lockout_minutes * 60),
            };
            let entry = entry.clone().reason(reason);
            async move {
                let locked = self
                    .store
                    .login_failed(Some((user.id, lockout)), entry)
                    .await?;
                Err(match locked.filter(|&until| until > now) {
                    Some(until) => HubError::Locked { until },
                    None => error,
                })
            }
        };
        if user.machine_client {
            secrets::verify_nothing_async(password).await;
            return fail(
                "a machine client signs in with API tokens only",
                HubError::InvalidCredentials,
            )
            .await;
        }
        if !secrets::verify_password_async(user.password_hash.clone(), password).await {
            return fail("wrong password", HubError::InvalidCredentials).await;
        }
        let step = if user.totp_enabled {
            let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
                // The same answer as a wrong code: a distinct one would
                // confirm the password to whoever guessed it.
                return fail("one-time code missing", HubError::InvalidCredentials).await;
            };
            let secret = self.totp_secret(&user)?;
            match secrets::totp_matches(&secret, code, Self::unix_now()) {
                Some(step) => Some(step),
                None => return fail("wrong one-time code", HubError::InvalidCredentials).await,
            }
        } else {
            None
        };

        let auth = if step.is_some() {
            AuthMethod::PasswordAndTotp
        } else {
            AuthMethod::Password
        };
        let principal = self.principal_of(&user, auth).await?;
        let token = secrets::new_token(SESSION_PREFIX);
        let expires_at = now.plus_seconds(self.config.session_ttl_minutes * 60);
        let session = NewSession {
            token_hash: token_hash(&token),
            user: user.id,
            created_at: now,
            expires_at,
            second_factor: step.is_some(),
        };
        let mut ok = entry.clone();
        ok.outcome = Outcome::Allowed;
        ok.reason = None;
        match self.store.login_succeeded(session, step, ok).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                // Locked by a parallel failure since we looked, or a replay.
                let now_locked = self.store.user(user.id).await?.and_then(|u| u.locked_until);
                if let Some(until) = now_locked.filter(|&u| u > now) {
                    self.store
                        .login_failed(None, entry.clone().reason("account locked"))
                        .await?;
                    return Err(HubError::Locked { until });
                }
                return fail("one-time code used twice", HubError::InvalidCredentials).await;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(SignedIn {
            token,
            expires_at,
            must_enrol_second_factor: principal.needs_second_factor()
                && !principal.has_strong_auth(),
            principal,
        })
    }

    fn totp_secret(&self, user: &User) -> Result<Vec<u8>> {
        let sealed = user
            .totp_secret_sealed
            .as_deref()
            .ok_or(HubError::Unauthenticated("no second factor is enrolled"))?;
        self.keys()
            .open(&format!("totp:{}", user.id), sealed)
            .ok_or_else(|| {
                HubError::Store(StoreError::Corrupt(format!(
                    "the second factor of user {} does not open",
                    user.id
                )))
            })
    }

    /// Resolves a bearer token (session or API token) to the caller.
    pub async fn authenticate(&self, bearer: &str) -> Result<Actor> {
        self.check_bearer(bearer, true).await
    }

    /// [`Hub::authenticate`]; with `touch` false the check does not count
    /// as activity (a long-lived feed re-checks its caller, and must not
    /// keep an idle session alive).
    pub(crate) async fn check_bearer(&self, bearer: &str, touch: bool) -> Result<Actor> {
        const UNKNOWN: HubError =
            HubError::Unauthenticated("the token is unknown, expired or revoked");
        let now = Timestamp::now();
        let hash = token_hash(bearer.trim());
        if bearer.starts_with(API_TOKEN_PREFIX) {
            let token = self.store.api_token_by_hash(&hash).await?.ok_or(UNKNOWN)?;
            if token.revoked || token.expires_at.is_some_and(|e| e <= now) {
                return Err(UNKNOWN);
            }
            let user = self.store.user(token.user).await?.ok_or(UNKNOWN)?;
            let principal = self.principal_of(&user, AuthMethod::ApiToken).await?;
            return Ok(Actor::User {
                principal,
                session: None,
            });
        }
        let session = self.store.session(&hash).await?.ok_or(UNKNOWN)?;
        let idle_limit = session
            .last_seen
            .plus_seconds(self.config.session_idle_minutes * 60);
        if session.revoked || session.expires_at <= now || idle_limit <= now {
            return Err(UNKNOWN);
        }
        let user = self.store.user(session.user).await?.ok_or(UNKNOWN)?;
        // A second factor reset after sign-in ends what it protected.
        if session.second_factor && !user.totp_enabled {
            return Err(UNKNOWN);
        }
        // Record activity at most once a minute: fewer writes, same idle rule.
        if touch && now.micros() - session.last_seen.micros() > 60_000_000 {
            self.store.touch_session(&hash, now).await?;
        }
        let auth = if session.second_factor {
            AuthMethod::PasswordAndTotp
        } else {
            AuthMethod::Password
        };
        let principal = self.principal_of(&user, auth).await?;
        Ok(Actor::User {
            principal,
            session: Some(hash),
        })
    }

    /// Ends the caller's session. An API token is not a session: an
    /// administrator revokes it.
    pub async fn logout(&self, ctx: &Ctx) -> Result<()> {
        if matches!(&ctx.actor, Actor::User { session: None, .. }) {
            return Err(HubError::BadRequest(
                "an API token is not signed out: an administrator revokes it".into(),
            ));
        }
        let entry = self
            .authorize(ctx, Action::ViewOwnAccount, "auth.logout", "session")
            .await?;
        if let Actor::User {
            session: Some(hash),
            ..
        } = &ctx.actor
        {
            self.store.revoke_session(hash, entry).await?;
        }
        Ok(())
    }

    /// Starts enrolment of a second factor: a new secret to put in an
    /// authenticator app, confirmed by [`Hub::confirm_totp`].
    pub async fn enrol_totp(&self, ctx: &Ctx) -> Result<TotpEnrolment> {
        let principal = ctx.principal().ok_or(HubError::BadRequest(
            "only users enrol a second factor".into(),
        ))?;
        let entry = self
            .authorize(
                ctx,
                Action::EnrolSecondFactor,
                "auth.totp.enrol",
                &format!("user:{}", principal.user),
            )
            .await?;
        let secret = secrets::new_totp_secret();
        let sealed = self
            .keys()
            .seal(&format!("totp:{}", principal.user), &secret);
        self.store
            .set_totp_pending(principal.user, sealed, entry)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => HubError::Conflict(
                    "a confirmed second factor already exists (ask an administrator to reset it)"
                        .into(),
                ),
                other => other.into(),
            })?;
        Ok(TotpEnrolment {
            secret_base32: secrets::base32(&secret),
            otpauth_uri: secrets::otpauth_uri(&principal.username, &secret),
        })
    }

    /// Confirms enrolment with a first code; the current session then
    /// counts as signed in with two factors.
    pub async fn confirm_totp(&self, ctx: &Ctx, code: &str) -> Result<()> {
        let (principal, session) = match &ctx.actor {
            Actor::User { principal, session } => (principal, session.clone()),
            Actor::LocalOperator(_) => {
                return Err(HubError::BadRequest(
                    "only users confirm a second factor".into(),
                ))
            }
        };
        let resource = format!("user:{}", principal.user);
        let entry = self
            .authorize(
                ctx,
                Action::EnrolSecondFactor,
                "auth.totp.confirm",
                &resource,
            )
            .await?;
        let user = self
            .store
            .user(principal.user)
            .await?
            .ok_or_else(|| HubError::NotFound(resource.clone()))?;
        if user.totp_enabled {
            return Err(HubError::Conflict(
                "a confirmed second factor already exists".into(),
            ));
        }
        let secret = self
            .totp_secret(&user)
            .map_err(|_| HubError::BadRequest("start enrolment first".into()))?;
        let Some(step) = secrets::totp_matches(&secret, code, Self::unix_now()) else {
            self.store
                .append_audit(
                    ctx.entry("auth.totp.confirm", &resource, Outcome::Failed)
                        .reason("wrong one-time code"),
                )
                .await?;
            // Signed in already: a wrong code here is bad input, not a
            // failed authentication.
            return Err(civic_core::ValidationError::new(
                "code",
                "does not match the new secret; check the authenticator's clock",
            )
            .into());
        };
        self.store
            .enable_totp(user.id, step, session, entry)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, HubKeys};
    use civic_core::identity::{Duty, InstitutionKind, Name};
    use civic_store::{NewInstitution, NewUser};

    async fn hub_with_user(duty: &str) -> (Hub, civic_store::testing::TestDb) {
        let config = Config {
            lockout_threshold: 3,
            ..Config::default()
        };
        hub_with_config(duty, config).await
    }

    async fn hub_with_config(duty: &str, config: Config) -> (Hub, civic_store::testing::TestDb) {
        let db = civic_store::testing::sqlite().await;
        let hub = Hub::new(db.store.clone(), HubKeys::ephemeral(), config);
        let ctx = Ctx::local_operator();
        let inst = hub
            .store
            .create_institution(
                NewInstitution {
                    name: Name::parse("name", "KDCA").unwrap(),
                    kind: InstitutionKind::HealthAuthority,
                },
                ctx.entry("admin.institution.create", "institution", Outcome::Allowed),
            )
            .await
            .unwrap();
        hub.store
            .create_user(
                NewUser {
                    institution: inst.id,
                    username: Username::parse("kim").unwrap(),
                    display_name: Name::parse("display_name", "Kim").unwrap(),
                    password_hash: secrets::hash_password(
                        &Password::parse_new("correct horse battery").unwrap(),
                    ),
                    machine_client: false,
                    duties: vec![Duty::parse(duty).unwrap()],
                },
                ctx.entry("admin.user.create", "user", Outcome::Allowed),
            )
            .await
            .unwrap();
        (hub, db)
    }

    #[tokio::test]
    async fn enrolment_then_two_factor_sign_in_and_no_replay() {
        let (hub, _db) = hub_with_user("approver").await;
        let client = ClientInfo::default();
        let first = hub
            .login("kim", "correct horse battery", None, &client)
            .await
            .unwrap();
        assert!(first.must_enrol_second_factor);
        let actor = hub.authenticate(&first.token).await.unwrap();
        let ctx = Ctx {
            actor,
            client: client.clone(),
        };
        let enrolment = hub.enrol_totp(&ctx).await.unwrap();
        let secret = secrets::from_base32(&enrolment.secret_base32).unwrap();
        let now = Hub::unix_now();
        let valid: Vec<String> = [-30, 0, 30]
            .iter()
            .map(|d| secrets::totp_code(&secret, now + d))
            .collect();
        let wrong = ["000000", "111111", "222222", "333333"]
            .into_iter()
            .find(|c| !valid.iter().any(|v| v == c))
            .unwrap();
        assert!(matches!(
            hub.confirm_totp(&ctx, wrong).await,
            Err(HubError::Invalid(_))
        ));
        // Use the code of the previous step for confirmation so that the
        // current one is still fresh for the sign-in below.
        hub.confirm_totp(&ctx, &secrets::totp_code(&secret, now - 30))
            .await
            .unwrap();
        let Actor::User { principal, .. } = hub.authenticate(&first.token).await.unwrap() else {
            panic!()
        };
        assert_eq!(principal.auth, AuthMethod::PasswordAndTotp);

        assert!(matches!(
            hub.login("kim", "correct horse battery", None, &client)
                .await,
            Err(HubError::InvalidCredentials)
        ));
        let code = secrets::totp_code(&secret, now);
        let second = hub
            .login("kim", "correct horse battery", Some(&code), &client)
            .await
            .unwrap();
        assert!(!second.must_enrol_second_factor);
        // The same code again is refused.
        assert!(hub
            .login("kim", "correct horse battery", Some(&code), &client)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn repeated_failures_lock_the_account() {
        let (hub, _db) = hub_with_user("analyst").await;
        let client = ClientInfo::default();
        for _ in 0..2 {
            assert!(matches!(
                hub.login("kim", "wrong password!", None, &client).await,
                Err(HubError::InvalidCredentials)
            ));
        }
        assert!(matches!(
            hub.login("kim", "wrong password!", None, &client).await,
            Err(HubError::Locked { .. })
        ));
        // Even the right password is refused while locked.
        assert!(matches!(
            hub.login("kim", "correct horse battery", None, &client)
                .await,
            Err(HubError::Locked { .. })
        ));
        assert!(matches!(
            hub.login("nobody", "whatever", None, &client).await,
            Err(HubError::InvalidCredentials)
        ));
        assert!(matches!(
            hub.authenticate("cdh_s_nonsense").await,
            Err(HubError::Unauthenticated(_))
        ));
    }

    #[tokio::test]
    async fn sessions_end_after_their_lifetime_or_when_idle() {
        let client = ClientInfo::default();
        let (hub, _db) = hub_with_config(
            "analyst",
            Config {
                session_ttl_minutes: 0,
                ..Config::default()
            },
        )
        .await;
        let signed_in = hub
            .login("kim", "correct horse battery", None, &client)
            .await
            .unwrap();
        assert!(matches!(
            hub.authenticate(&signed_in.token).await,
            Err(HubError::Unauthenticated(_))
        ));

        let (hub, _db) = hub_with_config(
            "analyst",
            Config {
                session_idle_minutes: 0,
                ..Config::default()
            },
        )
        .await;
        let signed_in = hub
            .login("kim", "correct horse battery", None, &client)
            .await
            .unwrap();
        assert!(matches!(
            hub.authenticate(&signed_in.token).await,
            Err(HubError::Unauthenticated(_))
        ));

        let (hub, _db) = hub_with_user("analyst").await;
        let signed_in = hub
            .login("kim", "correct horse battery", None, &client)
            .await
            .unwrap();
        assert!(hub.authenticate(&signed_in.token).await.is_ok());
    }

    #[tokio::test]
    async fn a_reset_second_factor_ends_the_sessions_it_protected() {
        let (hub, _db) = hub_with_user("approver").await;
        let client = ClientInfo::default();
        let first = hub
            .login("kim", "correct horse battery", None, &client)
            .await
            .unwrap();
        let ctx = Ctx {
            actor: hub.authenticate(&first.token).await.unwrap(),
            client: client.clone(),
        };
        let enrolment = hub.enrol_totp(&ctx).await.unwrap();
        let secret = secrets::from_base32(&enrolment.secret_base32).unwrap();
        hub.confirm_totp(&ctx, &secrets::totp_code(&secret, Hub::unix_now()))
            .await
            .unwrap();
        assert!(hub.authenticate(&first.token).await.is_ok());
        let user = hub.store.user_by_username("kim").await.unwrap().unwrap();
        hub.reset_second_factor(&Ctx::local_operator(), user.id)
            .await
            .unwrap();
        assert!(matches!(
            hub.authenticate(&first.token).await,
            Err(HubError::Unauthenticated(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_guesses_cannot_outrun_the_lock_out() {
        let (hub, _db) = hub_with_user("analyst").await;
        let mut guesses = Vec::new();
        for i in 0..12 {
            let hub = hub.clone();
            guesses.push(tokio::spawn(async move {
                hub.login(
                    "kim",
                    &format!("wrong guess {i}"),
                    None,
                    &ClientInfo::default(),
                )
                .await
            }));
        }
        for g in guesses {
            assert!(g.await.unwrap().is_err());
        }
        let user = hub.store.user_by_username("kim").await.unwrap().unwrap();
        // Guesses made after the lock are refused without counting.
        assert!(user.failed_logins >= 3, "{}", user.failed_logins);
        assert!(matches!(
            hub.login("kim", "correct horse battery", None, &ClientInfo::default())
                .await,
            Err(HubError::Locked { .. })
        ));
    }
}
