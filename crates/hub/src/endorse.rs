//! Endorsements: an approver of the health authority or a police location
//! officer signs a grant with her own key.
//!
//! Each endorser has one Ed25519 key per role, made by the hub the first
//! time she endorses, kept sealed under the hub's sealing key (bound to her
//! user id and role) and never shown, and certified by the hub for her
//! role, name and institution ([`EndorserCertificate`], valid
//! [`ENDORSER_KEY_DAYS`] days); the certification is an audit record. A
//! node that takes hub-certified endorsers checks the certificate, then
//! the endorsement with the certified key. The key signs only in
//! [`Hub::endorse_grant`], which the policy allows only to a person
//! signed in with her second factor, in her own duty; every endorsement is
//! an audit record naming the grant, its purpose and legal basis.
//!
//! The approval procedure that decides *whether* to endorse (issue 6)
//! calls this once the decision is made.

use crate::{Ctx, Hub, HubError, Result};
use civic_core::audit::Outcome;
use civic_core::identity::DutyKind;
use civic_core::policy::Action;
use civic_core::time::Timestamp;
use civic_exchange::{EndorserCertificate, Role, SignedGrant};
use civic_store::{AuditStore, EndorserKey, EndorserKeyStore, InstitutionStore};
use ed25519_dalek::SigningKey;

/// How long an endorser's key and certificate are valid.
pub const ENDORSER_KEY_DAYS: i64 = 90;
/// A key is replaced once less than this is left of its validity, so that
/// a grant endorsed with it still verifies at the node until the grant
/// expires (grants live hours to days, never this long).
pub const ENDORSER_KEY_RENEW_DAYS: i64 = 30;

fn role_of(duty: DutyKind) -> Option<Role> {
    match duty {
        DutyKind::Approver => Some(Role::HealthApprover),
        DutyKind::PoliceLocationOfficer => Some(Role::PoliceLocationOfficer),
        _ => None,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Hub => "hub",
        Role::HealthApprover => "health_approver",
        Role::PoliceLocationOfficer => "police_location_officer",
    }
}

impl Hub {
    /// Adds the caller's endorsement, in the capacity of `as_duty`, to a
    /// grant.
    pub async fn endorse_grant(
        &self,
        ctx: &Ctx,
        as_duty: DutyKind,
        signed: SignedGrant,
    ) -> Result<SignedGrant> {
        let grant = &signed.grant;
        // The record names the grant's exact contents, not only its id.
        let resource = format!("grant:{}/sha256:{}", grant.grant_id, grant.digest());
        let entry = self
            .authorize(
                ctx,
                Action::EndorseGrant { as_duty },
                "exchange.grant.endorse",
                &resource,
            )
            .await?;
        let (Some(principal), Some(role)) = (ctx.principal(), role_of(as_duty)) else {
            // The local operator holds the keys but is nobody's approver.
            let denied = ctx
                .entry("exchange.grant.endorse", &resource, Outcome::Denied)
                .reason("only a signed-in approver or police location officer endorses");
            self.store.append_audit(denied).await?;
            return Err(HubError::Forbidden {
                reason: "only a signed-in approver or police location officer endorses",
                needs_second_factor: false,
            });
        };
        let mut entry = entry.purpose(&grant.purpose, &grant.legal_basis);
        entry.grant_id = Some(grant.grant_id.clone());
        if let Some(case) = &grant.case_id {
            entry = entry.subject(format!("case:{case}"));
        }
        let now = Timestamp::now();
        let context = format!("endorser-key:{}:{}", principal.user, role_name(role));
        let (key, certificate) = match self
            .store
            .endorser_key(
                principal.user,
                role_name(role),
                now.plus_seconds(ENDORSER_KEY_RENEW_DAYS * 86_400),
            )
            .await?
        {
            Some(kept) => {
                let secret: [u8; 32] = self
                    .keys()
                    .open(&context, &kept.secret_sealed)
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| {
                        HubError::Store(civic_store::StoreError::Corrupt(
                            "an endorser key does not open with this hub's sealing key".into(),
                        ))
                    })?;
                let certificate: EndorserCertificate = serde_json::from_str(&kept.certificate)
                    .map_err(|e| {
                        HubError::Store(civic_store::StoreError::Corrupt(format!(
                            "an endorser certificate: {e}"
                        )))
                    })?;
                (SigningKey::from_bytes(&secret), certificate)
            }
            None => {
                let institution = self
                    .store
                    .institution(principal.institution)
                    .await?
                    .ok_or_else(|| HubError::NotFound("the caller's institution".into()))?;
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                let expires_at = now.plus_seconds(ENDORSER_KEY_DAYS * 86_400);
                let certificate = EndorserCertificate::issue(
                    self.keys().signing_key(),
                    role,
                    &principal.username,
                    &institution.name,
                    institution.kind.as_str(),
                    &key.verifying_key(),
                    now.micros() / 1_000_000 - 60,
                    expires_at.micros() / 1_000_000,
                );
                let mut issued = ctx.entry(
                    "exchange.endorser_key.issue",
                    &format!("user:{}", principal.user),
                    Outcome::Allowed,
                );
                issued.duty = Some(as_duty);
                self.store
                    .create_endorser_key(
                        EndorserKey {
                            user: principal.user,
                            role: role_name(role).to_owned(),
                            public_key: certificate.key.clone(),
                            secret_sealed: self.keys().seal(&context, key.as_bytes()),
                            certificate: serde_json::to_string(&certificate)
                                .expect("a certificate serialises"),
                            created_at: now,
                            expires_at,
                        },
                        issued,
                    )
                    .await?;
                (key, certificate)
            }
        };
        self.store.append_audit(entry).await?;
        Ok(signed.endorse_certified(certificate, &key))
    }
}
