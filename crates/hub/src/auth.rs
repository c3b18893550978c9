//! Sign-in, sessions, second factor and API tokens of machine clients.
//!
//! A session or API token is a 256-bit bearer secret; only its SHA-256 is
//! stored. A user whose duties see personal data must sign in with a TOTP
//! code; until she has enrolled one, her session may only enrol it.
//! Failures slow the next attempts under the same name and from the same
//! address (never locking anyone out, never telling which names exist);
//! a client's device token exempts it from the waits strangers cause.
//! Every attempt, good or bad, is audited in the same transaction as its
//! effect.

use crate::secrets::{self, token_hash};
use crate::{Actor, ClientInfo, Ctx, Hub, HubError, Result};
use civic_core::audit::Outcome;
use civic_core::identity::{Password, UserId, Username};
use civic_core::policy::{Action, AuthMethod, Principal};
use civic_core::time::Timestamp;
use civic_store::{
    ApiTokenStore, AuditStore, Backoff, InstitutionStore, NewSession, SessionStore, StoreError,
    User, UserStore,
};

pub const SESSION_PREFIX: &str = "cdh_s_";
pub const API_TOKEN_PREFIX: &str = "cdh_t_";
pub const DEVICE_PREFIX: &str = "cdh_d_";
/// How long a device token exempts its client from strangers' waits.
const DEVICE_DAYS: i64 = 180;

/// A successful sign-in.
#[derive(Clone)]
pub struct SignedIn {
    /// The bearer token: shown once, never stored.
    pub token: String,
    pub expires_at: Timestamp,
    /// A device token for the next sign-ins from this client (shown once,
    /// kept by the client, never stored by the hub).
    pub device: String,
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

/// What this process knows of sessions beyond the database: when each was
/// last used (the database's `last_seen` is written at most once a minute,
/// so alone it would end an idle session up to a minute early), and a
/// signal raised whenever access may have been taken away (a sign-out, a
/// revoked token, changed duties or assignments), on which open feeds check
/// their caller at once instead of at their next periodic check.
pub struct Activity {
    seen: std::sync::Mutex<std::collections::HashMap<String, Timestamp>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            seen: Default::default(),
            changed: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Activity {
    /// When this process last saw the session used, if it did.
    fn last_seen(&self, session: &str) -> Option<Timestamp> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(session).copied()
    }

    /// Records a use; forgets sessions idle longer than `idle` when the
    /// map grows, so it holds the sessions in use, not every one ever.
    fn touch(&self, session: &str, now: Timestamp, idle_seconds: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= 10_000 {
            let horizon = now.plus_seconds(-idle_seconds);
            seen.retain(|_, at| *at > horizon);
        }
        seen.insert(session.to_owned(), now);
    }

    fn forget(&self, session: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.remove(session);
    }

    /// Tells open feeds that someone's access may have ended.
    pub fn changed(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes when access may have ended (see [`Activity::changed`]).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
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
            .field("device", &"***")
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

    /// The key under which failed sign-ins with this name are counted: a
    /// keyed pseudonym, so that a name that exists and one that does not
    /// are counted alike and the table names no one.
    pub(crate) fn name_key(&self, username: &Username) -> String {
        format!(
            "name:{}",
            self.keys().pseudonym(&format!("sign-in:{username}"))
        )
    }

    fn address_key(&self, client: &ClientInfo) -> String {
        let addr = client.addr.as_deref().unwrap_or("unknown");
        format!(
            "address:{}",
            self.keys().pseudonym(&format!("sign-in:{addr}"))
        )
    }

    /// A device token for `user`: proof that this client once signed in
    /// as her, which exempts its later sign-ins from the waits strangers
    /// cause under her name (after OWASP's device cookies). It opens
    /// nothing by itself.
    fn device_token(&self, user: UserId) -> String {
        let nonce = secrets::new_token("");
        let issued = Self::unix_now();
        let body = format!("{}.{}.{}", user.0, &nonce[..22], issued);
        let tag = self.keys().tag("device", &body);
        format!(
            "{DEVICE_PREFIX}{body}.{}",
            data_encoding::BASE64URL_NOPAD.encode(&tag[..16])
        )
    }

    /// The key of a valid device token of `user`, if `token` is one.
    fn device_key(&self, token: &str, user: UserId) -> Option<String> {
        let rest = token.trim().strip_prefix(DEVICE_PREFIX)?;
        let (body, tag) = rest.rsplit_once('.')?;
        let mut parts = body.split('.');
        let (owner, nonce, issued) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || owner.parse::<i64>().ok()? != user.0 {
            return None;
        }
        let expected = self.keys().tag("device", body);
        let given = data_encoding::BASE64URL_NOPAD.decode(tag.as_bytes()).ok()?;
        let fresh = Self::unix_now() - issued.parse::<i64>().ok()? < DEVICE_DAYS * 86_400;
        (given.len() == 16 && secrets::constant_time_eq(&given, &expected[..16]) && fresh).then(
            || {
                format!(
                    "device:{}",
                    self.keys().pseudonym(&format!("device:{nonce}"))
                )
            },
        )
    }

    fn backoff(&self, free: i64) -> Backoff {
        Backoff {
            free,
            first_delay_seconds: self.config.sign_in_first_wait_seconds,
            max_delay_seconds: self.config.sign_in_max_wait_minutes * 60,
            forget_after_seconds: 86_400,
        }
    }

    /// Signs in with a password and, where the account has one, a TOTP
    /// code; `device` is a device token an earlier sign-in gave.
    ///
    /// Failures slow the next attempts rather than lock the account:
    /// counted under the name tried and the client's address, each with a
    /// growing wait once past its free failures, exactly alike for a name
    /// that exists and one that does not. A client with a device token of
    /// the account is judged under that device alone, so a stranger's
    /// guesses never keep its owner out.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        code: Option<&str>,
        device: Option<&str>,
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
        let user = self.store.user_by_username(username.as_str()).await?;
        let device = match (&user, device) {
            (Some(u), Some(token)) => self.device_key(token, u.id),
            _ => None,
        };
        let (keys, clear) = match device {
            Some(key) => (
                vec![(key.clone(), self.backoff(self.config.sign_in_free_failures))],
                key,
            ),
            None => {
                let name = self.name_key(&username);
                (
                    vec![
                        (
                            name.clone(),
                            self.backoff(self.config.sign_in_free_failures),
                        ),
                        (
                            self.address_key(client),
                            self.backoff(self.config.sign_in_free_failures_per_address),
                        ),
                    ],
                    name,
                )
            }
        };
        let judged: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
        let wait = |until: Timestamp| HubError::SignInWait {
            seconds: ((until.micros() - Timestamp::now().micros()) / 1_000_000).max(1),
        };
        match &user {
            Some(user) => {
                entry.actor_name = Some(user.username.clone());
                entry.actor = Some(user.id);
                entry.institution = Some(user.institution);
                entry.subject = Some(format!("user:{}", user.id));
            }
            // What was typed may be a password in the wrong field: the
            // ledger keeps only a pseudonym of it, enough to see one name
            // tried many times.
            None => {
                entry.actor_name = Some(format!(
                    "unknown:{}",
                    self.keys().pseudonym(username.as_str())
                ))
            }
        }
        if let Some(until) = self.store.sign_in_wait(&judged, now).await? {
            self.store
                .append_audit(entry.reason("waiting after failed sign-ins"))
                .await?;
            return Err(wait(until));
        }
        // A failure is counted under every key, in the transaction that
        // audits it; the answer is the same whatever the name.
        let fail = |reason: &'static str| {
            let entry = entry.clone().reason(reason);
            let keys = &keys;
            async move {
                self.store.login_failed(keys, now, entry).await?;
                Err(HubError::InvalidCredentials)
            }
        };
        let Some(user) = user else {
            secrets::verify_nothing_async(password).await;
            return fail("unknown user").await;
        };
        if user.machine_client {
            secrets::verify_nothing_async(password).await;
            return fail("a machine client signs in with API tokens only").await;
        }
        if !secrets::verify_password_async(user.password_hash.clone(), password).await {
            return fail("wrong password").await;
        }
        let step = if user.totp_enabled {
            let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
                // The same answer as a wrong code: a distinct one would
                // confirm the password to whoever guessed it.
                return fail("one-time code missing").await;
            };
            let secret = self.totp_secret(&user)?;
            match secrets::totp_matches(&secret, code, Self::unix_now()) {
                Some(step) => Some(step),
                None => return fail("wrong one-time code").await,
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
        match self
            .store
            .login_succeeded(session, step, &judged, &[clear], ok)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                // Made to wait by a parallel failure since we looked, or a
                // replayed code.
                if let Some(until) = self.store.sign_in_wait(&judged, now).await? {
                    self.store
                        .append_audit(entry.reason("waiting after failed sign-ins"))
                        .await?;
                    return Err(wait(until));
                }
                return fail("one-time code used twice").await;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(SignedIn {
            token,
            expires_at,
            device: self.device_token(user.id),
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
    pub async fn check_bearer(&self, bearer: &str, touch: bool) -> Result<Actor> {
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
        // The database's last use is at most a minute old when another
        // process served it; this process's own is exact.
        let idle_seconds = self.config.session_idle_minutes * 60;
        let last_seen = match self.activity.last_seen(&hash) {
            Some(here) if here > session.last_seen => here,
            _ => session.last_seen,
        };
        if session.revoked
            || session.expires_at <= now
            || last_seen.plus_seconds(idle_seconds) <= now
        {
            self.activity.forget(&hash);
            return Err(UNKNOWN);
        }
        let user = self.store.user(session.user).await?.ok_or(UNKNOWN)?;
        // A second factor reset after sign-in ends what it protected.
        if session.second_factor && !user.totp_enabled {
            return Err(UNKNOWN);
        }
        // Activity is kept here at every request and written to the
        // database at most once a minute (fewer writes; other processes
        // then see it at most a minute late, so a session stays open at
        // most a minute longer there, never shorter).
        if touch {
            self.activity.touch(&hash, now, idle_seconds);
            if now.micros() - session.last_seen.micros() > 60_000_000 {
                self.store.touch_session(&hash, now).await?;
            }
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
            self.activity.forget(hash);
            self.activity.changed();
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
mod tests;
