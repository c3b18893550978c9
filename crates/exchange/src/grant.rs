use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// What a node may be asked to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    /// A telco's pings: exposure windows and routes.
    LocationPings,
    /// A card company's transactions.
    CardTransactions,
    /// A transit operator's taps.
    TransitTaps,
    /// A MyData holder's administrative records (documents and datasets),
    /// given only under a citizen's consent.
    AdministrativeRecords,
}

impl Item {
    /// Location data needs the police's endorsement besides the health
    /// authority's.
    pub fn is_location(self) -> bool {
        matches!(self, Item::LocationPings)
    }
}

/// A place and time an exposure question asks about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExposureWindow {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    pub t_start: i64,
    pub t_end: i64,
}

/// What the grant lets the requester ask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Question {
    /// Who was in these windows (contact tracing).
    Exposure { windows: Vec<ExposureWindow> },
    /// These data subjects' own records (a case's route).
    Subjects { ids: Vec<u64> },
    /// Who was in windows the request names in its body
    /// ([`WindowsBody`]), at most `max_windows` of them, each a point and
    /// a radius of at most `max_radius_m` and an interval of at most
    /// `max_span_s` seconds within the grant's data period. Approvers
    /// endorse this before the windows exist: they are derived from the
    /// case's own route, which the same approval lets the hub collect.
    Windows {
        max_windows: u32,
        max_radius_m: f64,
        max_span_s: i64,
    },
    /// Issue one credential of a citizen's consented items of one
    /// catalogue entry, encrypted to the using agency (Public MyData).
    Credential(CredentialQuestion),
    /// Mark credentials this holder issued under the grant's consent as
    /// revoked in its status list (the citizen withdrew).
    Revocation { status_indices: Vec<u64> },
    /// Every record the holder keeps of one citizen, for the citizen
    /// (the right to portability).
    Portability { subject: String },
}

/// What a [`Question::Credential`] grant lets the hub ask a MyData holder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialQuestion {
    /// The citizen, as the holders know him.
    pub subject: String,
    /// The catalogue entry's code (a provided document or a dataset).
    pub entry: String,
    /// Whether the entry is a whole provided document (then it is also
    /// rendered as a signed HTML file).
    pub document: bool,
    /// The consented items, and nothing else.
    pub items: Vec<String>,
    /// The using agency, named in the credential.
    pub recipient: String,
    /// The agency's X25519 public key (an OKP JWK) the package is
    /// encrypted to.
    pub recipient_key: serde_json::Value,
    /// When the credential expires (the retention the consent allows).
    pub credential_expires_at: i64,
}

/// The body of a request under a [`Question::Windows`] grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowsBody {
    pub windows: Vec<ExposureWindow>,
}

/// A permission to ask one holder one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub grant_id: String,
    /// The requesting institution (e.g. the health authority).
    pub requester: String,
    /// The holding institution, i.e. the node that may answer.
    pub holder: String,
    pub purpose: String,
    pub legal_basis: String,
    pub case_id: Option<String>,
    pub consent_id: Option<String>,
    pub items: Vec<Item>,
    pub question: Question,
    /// The period the data may come from (Unix seconds, inclusive).
    pub data_from: i64,
    pub data_until: i64,
    pub issued_at: i64,
    pub expires_at: i64,
}

impl Grant {
    /// The bytes every endorsement signs: a domain tag and the grant as
    /// JSON, its fields in declaration order.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = b"civic-grant-v1\n".to_vec();
        out.extend(serde_json::to_vec(self).expect("a grant serialises"));
        out
    }

    pub fn digest(&self) -> String {
        data_encoding::HEXLOWER.encode(&Sha256::digest(self.signing_bytes()))
    }
}

/// Who endorses a grant, in which capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The hub, which checked the whole procedure.
    Hub,
    /// An approver of the health authority.
    HealthApprover,
    /// A police location officer.
    PoliceLocationOfficer,
}

impl Role {
    /// The kind of institution (civic-core's `InstitutionKind`) whose
    /// officials endorse in this role.
    pub fn institution_kind(self) -> &'static str {
        match self {
            Role::Hub => "hub_operator",
            Role::HealthApprover => "health_authority",
            Role::PoliceLocationOfficer => "police",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endorsement {
    pub role: Role,
    /// Who signed (a user or the hub), for the record.
    pub signer: String,
    pub key_id: String,
    /// Base64 Ed25519 signature over [`Grant::signing_bytes`].
    pub signature: String,
    /// The hub's certificate for the signer's key, when the node does not
    /// know the key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<EndorserCertificate>,
}

/// The hub's statement that `key` belongs to `signer`, an official of
/// `institution` (of `institution_kind`) who endorses in `role`, between
/// `not_before` and `not_after`. The hub issues one when an approver or
/// police location officer first endorses, and records it in its audit
/// ledger; a node accepts it in place of a key listed in its own
/// configuration if its policy says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndorserCertificate {
    pub role: Role,
    pub signer: String,
    pub institution: String,
    pub institution_kind: String,
    /// Hex Ed25519 public key.
    pub key: String,
    pub not_before: i64,
    pub not_after: i64,
    /// The hub's key id, and its base64 signature over the fields above.
    pub issuer: String,
    pub signature: String,
}

#[derive(Serialize)]
struct CertificateBody<'a> {
    role: Role,
    signer: &'a str,
    institution: &'a str,
    institution_kind: &'a str,
    key: &'a str,
    not_before: i64,
    not_after: i64,
    issuer: &'a str,
}

impl EndorserCertificate {
    fn signing_bytes(&self) -> Vec<u8> {
        let mut out = b"civic-endorser-certificate-v1\n".to_vec();
        out.extend(
            serde_json::to_vec(&CertificateBody {
                role: self.role,
                signer: &self.signer,
                institution: &self.institution,
                institution_kind: &self.institution_kind,
                key: &self.key,
                not_before: self.not_before,
                not_after: self.not_after,
                issuer: &self.issuer,
            })
            .expect("a certificate serialises"),
        );
        out
    }

    /// The hub certifies `key` for `signer`, an official of `institution`
    /// (of kind `institution_kind`), in `role`.
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        hub: &SigningKey,
        role: Role,
        signer: &str,
        institution: &str,
        institution_kind: &str,
        key: &VerifyingKey,
        not_before: i64,
        not_after: i64,
    ) -> Self {
        let mut cert = Self {
            role,
            signer: signer.to_owned(),
            institution: institution.to_owned(),
            institution_kind: institution_kind.to_owned(),
            key: data_encoding::HEXLOWER.encode(key.as_bytes()),
            not_before,
            not_after,
            issuer: key_id(&hub.verifying_key()),
            signature: String::new(),
        };
        cert.signature = data_encoding::BASE64.encode(&hub.sign(&cert.signing_bytes()).to_bytes());
        cert
    }

    /// The certified key, if the certificate is the `issuer`'s, for
    /// `role`, of the matching institution kind and valid at `now`.
    pub fn verify(
        &self,
        issuer: &VerifyingKey,
        role: Role,
        now: i64,
    ) -> Result<VerifyingKey, Refusal> {
        let bad = |why: &'static str| Refusal::BadCertificate(self.signer.clone(), why);
        if self.issuer != key_id(issuer) {
            return Err(bad("it is not issued by the hub"));
        }
        let signature: [u8; 64] = data_encoding::BASE64
            .decode(self.signature.as_bytes())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("its signature is malformed"))?;
        issuer
            .verify(&self.signing_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| bad("its signature does not verify"))?;
        if self.role != role || role == Role::Hub {
            return Err(bad("it is for another role"));
        }
        if self.institution_kind != role.institution_kind() {
            return Err(bad("its institution cannot endorse in that role"));
        }
        if now < self.not_before || now >= self.not_after {
            return Err(bad("it is not valid now"));
        }
        let key: [u8; 32] = data_encoding::HEXLOWER_PERMISSIVE
            .decode(self.key.as_bytes())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("its key is malformed"))?;
        VerifyingKey::from_bytes(&key).map_err(|_| bad("its key is malformed"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedGrant {
    pub grant: Grant,
    pub endorsements: Vec<Endorsement>,
}

/// Hex of the first 8 bytes of SHA-256 of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(key.as_bytes())[..8])
}

impl SignedGrant {
    pub fn new(grant: Grant) -> Self {
        Self {
            grant,
            endorsements: Vec::new(),
        }
    }

    /// Adds `signer`'s endorsement in `role`.
    pub fn endorse(mut self, role: Role, signer: &str, key: &SigningKey) -> Self {
        let signature = key.sign(&self.grant.signing_bytes());
        self.endorsements.push(Endorsement {
            role,
            signer: signer.to_owned(),
            key_id: key_id(&key.verifying_key()),
            signature: data_encoding::BASE64.encode(&signature.to_bytes()),
            certificate: None,
        });
        self
    }

    /// Adds an endorsement by a key the hub certified.
    pub fn endorse_certified(self, certificate: EndorserCertificate, key: &SigningKey) -> Self {
        let (role, signer) = (certificate.role, certificate.signer.clone());
        let mut endorsed = self.endorse(role, &signer, key);
        if let Some(e) = endorsed.endorsements.last_mut() {
            e.certificate = Some(certificate);
        }
        endorsed
    }
}

/// Why a node refuses a request. Each says what is wrong, never more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the grant carries no endorsement by the hub")]
    NotEndorsedByHub,
    #[error("the grant lacks the endorsement of a {0:?}, which {1} requires")]
    MissingEndorsement(Role, &'static str),
    #[error("an endorsement by key {0} is not from a key this node trusts in that role")]
    UntrustedKey(String),
    #[error("the endorsement by key {0} does not verify: the grant was changed or forged")]
    BadSignature(String),
    #[error("the grant is for {0}, not for this node")]
    WrongHolder(String),
    #[error("the grant expired")]
    Expired,
    #[error("the grant is not valid yet")]
    NotYetValid,
    #[error("this node gives no {0:?} for the purpose {1:?}")]
    OutOfScope(Item, String),
    #[error("the grant is malformed: {0}")]
    Malformed(&'static str),
    #[error("the question reaches outside the grant's data period")]
    OutsideDataPeriod,
    #[error("the data period is longer than this node's limit of {0} days")]
    PeriodTooLong(i64),
    #[error("the grant was already used by request {0}")]
    Replayed(String),
    #[error("the certificate of {0}'s key is refused: {1}")]
    BadCertificate(String, &'static str),
    #[error("the request names more windows than the grant's {0}")]
    TooManyWindows(u32),
}

/// A node's own rules: who it is, which items it gives for which purpose,
/// the longest data period it accepts, and whether it takes endorsements
/// by keys the hub certified (else only keys it lists itself).
#[derive(Debug, Clone)]
pub struct NodePolicy {
    pub holder: String,
    pub gives: BTreeMap<String, BTreeSet<Item>>,
    pub max_period_days: i64,
    pub hub_certified_endorsers: bool,
}

/// A key the node trusts, and in which role.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub key: VerifyingKey,
    pub role: Role,
}

/// What a node admitted: the grant, whether this is a retry of a request
/// already answered (then the node returns the same answer), and the
/// exposure windows to answer (the grant's, or the request's under a
/// [`Question::Windows`] grant).
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub grant: Grant,
    pub retry: bool,
    pub windows: Vec<ExposureWindow>,
}

/// How long after its expiry a used grant is still remembered (margin for
/// a clock set back): then it is forgotten, since an expired grant is
/// refused as expired whoever used it.
pub const FORGET_USED_AFTER_SECONDS: i64 = 3600;

/// The node's gate: its policy, the keys it trusts, and the grants already
/// used (grant id → the request that used it).
#[derive(Debug, Clone)]
pub struct NodeGate {
    pub policy: NodePolicy,
    trusted: BTreeMap<String, TrustedKey>,
    used: BTreeMap<String, String>,
    /// The used grants whose expiry is known, by expiry: forgotten
    /// [`FORGET_USED_AFTER_SECONDS`] after it, so that the set of used
    /// grants holds what could still be replayed, not every grant ever
    /// used.
    expiring: BTreeSet<(i64, String)>,
}

impl NodeGate {
    pub fn new(policy: NodePolicy, keys: impl IntoIterator<Item = TrustedKey>) -> Self {
        let trusted = keys.into_iter().map(|k| (key_id(&k.key), k)).collect();
        Self {
            policy,
            trusted,
            used: BTreeMap::new(),
            expiring: BTreeSet::new(),
        }
    }

    /// Grants already used, for keeping durably.
    pub fn used(&self) -> &BTreeMap<String, String> {
        &self.used
    }

    pub fn restore_used(&mut self, used: BTreeMap<String, String>) {
        self.used = used;
    }

    /// Restores one used grant whose expiry is known (what a node kept of
    /// its own uses); one expired longer ago than the margin is not
    /// remembered at all.
    pub fn restore_use(&mut self, grant_id: String, request_id: String, expires_at: i64, now: i64) {
        if expires_at >= now - FORGET_USED_AFTER_SECONDS {
            self.expiring.insert((expires_at, grant_id.clone()));
            self.used.insert(grant_id, request_id);
        }
    }

    /// Forgets the used grants that expired more than the margin before
    /// `now`.
    fn forget_expired(&mut self, now: i64) {
        while let Some((until, _)) = self.expiring.first() {
            if *until >= now - FORGET_USED_AFTER_SECONDS {
                break;
            }
            if let Some((_, id)) = self.expiring.pop_first() {
                self.used.remove(&id);
            }
        }
    }

    /// The key of an endorsement the node does not know, from the hub's
    /// certificate for it, if the node's policy takes such certificates.
    fn certified_key(&self, e: &Endorsement, now: i64) -> Result<VerifyingKey, Refusal> {
        let untrusted = || Refusal::UntrustedKey(e.key_id.clone());
        let (Some(cert), true) = (&e.certificate, self.policy.hub_certified_endorsers) else {
            return Err(untrusted());
        };
        let mut last = untrusted();
        for hub in self.trusted.values().filter(|t| t.role == Role::Hub) {
            match cert.verify(&hub.key, e.role, now) {
                Ok(key) if key_id(&key) == e.key_id => return Ok(key),
                Ok(_) => {
                    last = Refusal::BadCertificate(cert.signer.clone(), "it is for another key")
                }
                Err(r) => last = r,
            }
        }
        Err(last)
    }

    /// Checks a grant for `request_id` at time `now`; on success records
    /// the grant as used by that request.
    pub fn admit(
        &mut self,
        signed: &SignedGrant,
        request_id: &str,
        now: i64,
    ) -> Result<Admitted, Refusal> {
        self.admit_request(signed, request_id, now, "")
    }

    /// [`NodeGate::admit`] for a request with its body: under a
    /// [`Question::Windows`] grant the body names the windows
    /// ([`WindowsBody`]), each checked against the grant's bounds before
    /// the grant counts as used.
    pub fn admit_request(
        &mut self,
        signed: &SignedGrant,
        request_id: &str,
        now: i64,
        body: &str,
    ) -> Result<Admitted, Refusal> {
        let g = &signed.grant;
        // Signatures first: nothing else of an unverified grant is read.
        let message = g.signing_bytes();
        let mut roles = BTreeSet::new();
        for e in &signed.endorsements {
            let key = match self.trusted.get(&e.key_id).filter(|t| t.role == e.role) {
                Some(trusted) => trusted.key,
                None => self.certified_key(e, now)?,
            };
            let bytes: [u8; 64] = data_encoding::BASE64
                .decode(e.signature.as_bytes())
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| Refusal::BadSignature(e.key_id.clone()))?;
            key.verify(&message, &Signature::from_bytes(&bytes))
                .map_err(|_| Refusal::BadSignature(e.key_id.clone()))?;
            roles.insert(e.role);
        }
        if !roles.contains(&Role::Hub) {
            return Err(Refusal::NotEndorsedByHub);
        }
        if g.items.is_empty() {
            return Err(Refusal::Malformed("it names no item"));
        }
        if g.items.iter().all(|i| !i.is_location())
            && !roles.contains(&Role::HealthApprover)
            && g.consent_id.is_none()
        {
            return Err(Refusal::MissingEndorsement(
                Role::HealthApprover,
                "data without the subject's consent",
            ));
        }
        if g.items.iter().any(|i| i.is_location()) {
            if !roles.contains(&Role::HealthApprover) {
                return Err(Refusal::MissingEndorsement(
                    Role::HealthApprover,
                    "location data",
                ));
            }
            if !roles.contains(&Role::PoliceLocationOfficer) {
                return Err(Refusal::MissingEndorsement(
                    Role::PoliceLocationOfficer,
                    "location data",
                ));
            }
        }
        if g.holder != self.policy.holder {
            return Err(Refusal::WrongHolder(g.holder.clone()));
        }
        if now >= g.expires_at {
            return Err(Refusal::Expired);
        }
        if now < g.issued_at {
            return Err(Refusal::NotYetValid);
        }
        let gives = self.policy.gives.get(&g.purpose);
        if let Some(item) = g
            .items
            .iter()
            .find(|i| !gives.is_some_and(|set| set.contains(i)))
        {
            return Err(Refusal::OutOfScope(*item, g.purpose.clone()));
        }
        if g.data_until < g.data_from {
            return Err(Refusal::Malformed("its data period ends before it starts"));
        }
        if g.data_until - g.data_from > self.policy.max_period_days * 86_400 {
            return Err(Refusal::PeriodTooLong(self.policy.max_period_days));
        }
        let check = |windows: &[ExposureWindow], max_radius: f64| -> Result<(), Refusal> {
            if windows.is_empty() {
                return Err(Refusal::Malformed("it asks about no window"));
            }
            if windows
                .iter()
                .any(|w| w.t_start < g.data_from || w.t_end > g.data_until || w.t_end < w.t_start)
            {
                return Err(Refusal::OutsideDataPeriod);
            }
            if windows.iter().any(|w| {
                !(0.0..=max_radius).contains(&w.radius_m)
                    || !w.lat.is_finite()
                    || !w.lon.is_finite()
            }) {
                return Err(Refusal::Malformed(
                    "a window's place is not a point and a radius within the grant's bound",
                ));
            }
            Ok(())
        };
        let windows = match &g.question {
            Question::Exposure { windows } => {
                check(windows, 50_000.0)?;
                windows.clone()
            }
            Question::Subjects { ids } => {
                if ids.is_empty() {
                    return Err(Refusal::Malformed("it names no data subject"));
                }
                Vec::new()
            }
            Question::Windows {
                max_windows,
                max_radius_m,
                max_span_s,
            } => {
                let body: WindowsBody = serde_json::from_str(body)
                    .map_err(|_| Refusal::Malformed("the request names no windows"))?;
                if body.windows.len() > *max_windows as usize {
                    return Err(Refusal::TooManyWindows(*max_windows));
                }
                check(&body.windows, max_radius_m.min(50_000.0))?;
                if body
                    .windows
                    .iter()
                    .any(|w| w.t_end - w.t_start > *max_span_s)
                {
                    return Err(Refusal::Malformed(
                        "a window is longer than the grant allows",
                    ));
                }
                body.windows
            }
            Question::Credential(q) => {
                if q.subject.is_empty() || q.entry.is_empty() || q.items.is_empty() {
                    return Err(Refusal::Malformed("it names no subject, entry or item"));
                }
                if g.consent_id.is_none() {
                    return Err(Refusal::Malformed(
                        "a credential needs the citizen's consent",
                    ));
                }
                Vec::new()
            }
            Question::Revocation { status_indices } => {
                if status_indices.is_empty() || g.consent_id.is_none() {
                    return Err(Refusal::Malformed("it names no credential or no consent"));
                }
                Vec::new()
            }
            Question::Portability { subject } => {
                if subject.is_empty() || g.consent_id.is_none() {
                    return Err(Refusal::Malformed("it names no subject or no request"));
                }
                Vec::new()
            }
        };
        match self.used.get(&g.grant_id) {
            Some(first) if first == request_id => Ok(Admitted {
                grant: g.clone(),
                retry: true,
                windows,
            }),
            Some(first) => Err(Refusal::Replayed(first.clone())),
            None => {
                self.forget_expired(now);
                self.expiring.insert((g.expires_at, g.grant_id.clone()));
                self.used.insert(g.grant_id.clone(), request_id.to_owned());
                Ok(Admitted {
                    grant: g.clone(),
                    retry: false,
                    windows,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct World {
        hub: SigningKey,
        approver: SigningKey,
        police: SigningKey,
        gate: NodeGate,
    }

    fn key() -> SigningKey {
        SigningKey::generate(&mut rand::rngs::OsRng)
    }

    fn world() -> World {
        let (hub, approver, police) = (key(), key(), key());
        let policy = NodePolicy {
            holder: "SK Telecom".into(),
            gives: BTreeMap::from([(
                "epidemic investigation".into(),
                BTreeSet::from([Item::LocationPings]),
            )]),
            max_period_days: 21,
            hub_certified_endorsers: true,
        };
        let gate = NodeGate::new(
            policy,
            [
                TrustedKey {
                    key: hub.verifying_key(),
                    role: Role::Hub,
                },
                TrustedKey {
                    key: approver.verifying_key(),
                    role: Role::HealthApprover,
                },
                TrustedKey {
                    key: police.verifying_key(),
                    role: Role::PoliceLocationOfficer,
                },
            ],
        );
        World {
            hub,
            approver,
            police,
            gate,
        }
    }

    const NOW: i64 = 1_583_500_000;

    fn grant() -> Grant {
        Grant {
            grant_id: "g-1".into(),
            requester: "Korea Disease Control and Prevention Agency".into(),
            holder: "SK Telecom".into(),
            purpose: "epidemic investigation".into(),
            legal_basis: "Infectious Disease Control and Prevention Act, art. 76-2".into(),
            case_id: Some("1042".into()),
            consent_id: None,
            items: vec![Item::LocationPings],
            question: Question::Exposure {
                windows: vec![ExposureWindow {
                    lat: 37.56,
                    lon: 126.98,
                    radius_m: 500.0,
                    t_start: NOW - 86_400,
                    t_end: NOW - 80_000,
                }],
            },
            data_from: NOW - 14 * 86_400,
            data_until: NOW,
            issued_at: NOW - 60,
            expires_at: NOW + 86_400,
        }
    }

    fn endorsed(w: &World, g: Grant) -> SignedGrant {
        SignedGrant::new(g)
            .endorse(Role::Hub, "hub", &w.hub)
            .endorse(Role::HealthApprover, "approver", &w.approver)
            .endorse(Role::PoliceLocationOfficer, "police", &w.police)
    }

    #[test]
    fn a_fully_endorsed_grant_is_admitted_once_and_its_retry_recognised() {
        let mut w = world();
        let signed = endorsed(&w, grant());
        // As it travels: JSON, floats included, must verify on arrival.
        let signed: SignedGrant =
            serde_json::from_str(&serde_json::to_string(&signed).unwrap()).unwrap();
        assert!(!w.gate.admit(&signed, "r-1", NOW).unwrap().retry);
        assert!(
            w.gate.admit(&signed, "r-1", NOW).unwrap().retry,
            "the same request again is a retry"
        );
        assert_eq!(
            w.gate.admit(&signed, "r-2", NOW),
            Err(Refusal::Replayed("r-1".into()))
        );
    }

    #[test]
    fn grants_with_any_coordinates_verify_after_travelling_as_json() {
        // Signatures cover the grant's JSON as re-serialised on arrival: a
        // float that did not read back to the same bits would break them.
        let w = world();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let windows = (0..2000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let f = (x >> 11) as f64 / (1u64 << 53) as f64;
                ExposureWindow {
                    lat: 37.50 + (i % 10) as f64 * 0.01 + f * 1e-7,
                    lon: 126.95 + f,
                    radius_m: 3000.0 * f,
                    t_start: NOW - 86_400,
                    t_end: NOW - 80_000,
                }
            })
            .collect();
        let signed = endorsed(
            &w,
            Grant {
                question: Question::Exposure { windows },
                ..grant()
            },
        );
        let travelled: SignedGrant =
            serde_json::from_slice(&serde_json::to_vec(&signed).unwrap()).unwrap();
        assert_eq!(
            travelled.grant.signing_bytes(),
            signed.grant.signing_bytes()
        );
        let mut gate = w.gate;
        assert!(gate.admit(&travelled, "r-1", NOW).is_ok());
    }

    #[test]
    fn endorsements_by_hub_certified_keys_pass_only_as_certified() {
        let w = world();
        let (approver, officer) = (key(), key());
        let cert = |role, k: &SigningKey, from: i64, until: i64| {
            EndorserCertificate::issue(
                &w.hub,
                role,
                "someone",
                "an institution",
                role.institution_kind(),
                &k.verifying_key(),
                from,
                until,
            )
        };
        let valid = |role, k: &SigningKey| cert(role, k, NOW - 60, NOW + 3600);
        let hub_signed = || SignedGrant::new(grant()).endorse(Role::Hub, "hub", &w.hub);
        let good = hub_signed()
            .endorse_certified(valid(Role::HealthApprover, &approver), &approver)
            .endorse_certified(valid(Role::PoliceLocationOfficer, &officer), &officer);
        // As it travels.
        let good: SignedGrant =
            serde_json::from_slice(&serde_json::to_vec(&good).unwrap()).unwrap();
        let mut gate = w.gate.clone();
        assert!(gate.admit(&good, "r-1", NOW).is_ok());

        // A node that takes only the keys it lists.
        let mut strict = w.gate.clone();
        strict.policy.hub_certified_endorsers = false;
        assert!(matches!(
            strict.admit(&good, "r-1", NOW),
            Err(Refusal::UntrustedKey(_))
        ));

        let refused = |g: SignedGrant| w.gate.clone().admit(&g, "r-2", NOW);
        // The approver's certificate does not make her a police officer.
        let as_police = hub_signed()
            .endorse_certified(valid(Role::HealthApprover, &approver), &approver)
            .endorse_certified(valid(Role::HealthApprover, &officer), &officer);
        assert!(matches!(
            refused(as_police),
            Err(Refusal::MissingEndorsement(Role::PoliceLocationOfficer, _))
        ));
        let mut relabelled = valid(Role::HealthApprover, &officer);
        relabelled.role = Role::PoliceLocationOfficer;
        let forged_role = hub_signed()
            .endorse_certified(valid(Role::HealthApprover, &approver), &approver)
            .endorse_certified(relabelled, &officer);
        assert!(matches!(
            refused(forged_role),
            Err(Refusal::BadCertificate(_, "its signature does not verify"))
        ));
        // A certificate from anyone but the hub, out of date, or for another key.
        let stranger = key();
        let by_stranger = EndorserCertificate::issue(
            &stranger,
            Role::HealthApprover,
            "x",
            "y",
            "health_authority",
            &approver.verifying_key(),
            NOW - 60,
            NOW + 60,
        );
        assert!(matches!(
            refused(hub_signed().endorse_certified(by_stranger, &approver)),
            Err(Refusal::BadCertificate(_, "it is not issued by the hub"))
        ));
        let expired = cert(Role::HealthApprover, &approver, NOW - 7200, NOW - 3600);
        assert!(matches!(
            refused(hub_signed().endorse_certified(expired, &approver)),
            Err(Refusal::BadCertificate(_, "it is not valid now"))
        ));
        // The hub certified an official of a telco as a police officer.
        let telco = EndorserCertificate::issue(
            &w.hub,
            Role::PoliceLocationOfficer,
            "x",
            "SK Telecom",
            "telco",
            &officer.verifying_key(),
            NOW - 60,
            NOW + 60,
        );
        let from_a_telco = hub_signed()
            .endorse_certified(valid(Role::HealthApprover, &approver), &approver)
            .endorse_certified(telco, &officer);
        assert!(matches!(
            refused(from_a_telco),
            Err(Refusal::BadCertificate(
                _,
                "its institution cannot endorse in that role"
            ))
        ));
        let other_key = valid(Role::HealthApprover, &officer);
        assert!(matches!(
            refused(hub_signed().endorse_certified(other_key, &approver)),
            Err(Refusal::BadCertificate(_, "it is for another key"))
        ));
    }

    #[test]
    fn unsigned_and_under_endorsed_grants_are_refused() {
        let mut w = world();
        assert_eq!(
            w.gate.admit(&SignedGrant::new(grant()), "r", NOW),
            Err(Refusal::NotEndorsedByHub)
        );
        let hub_only = SignedGrant::new(grant()).endorse(Role::Hub, "hub", &w.hub);
        assert_eq!(
            w.gate.admit(&hub_only, "r", NOW),
            Err(Refusal::MissingEndorsement(
                Role::HealthApprover,
                "location data"
            ))
        );
        let no_police = hub_only
            .clone()
            .endorse(Role::HealthApprover, "approver", &w.approver);
        assert_eq!(
            w.gate.admit(&no_police, "r", NOW),
            Err(Refusal::MissingEndorsement(
                Role::PoliceLocationOfficer,
                "location data"
            ))
        );
        // The approver's key cannot stand in for the police's.
        let impostor = no_police.endorse(Role::PoliceLocationOfficer, "approver", &w.approver);
        assert!(matches!(
            w.gate.admit(&impostor, "r", NOW),
            Err(Refusal::UntrustedKey(_))
        ));
        // A stranger's key is not trusted in any role.
        let stranger = SignedGrant::new(grant()).endorse(Role::Hub, "someone", &key());
        assert!(matches!(
            w.gate.admit(&stranger, "r", NOW),
            Err(Refusal::UntrustedKey(_))
        ));
    }

    #[test]
    fn a_grant_changed_after_signing_is_refused() {
        let mut w = world();
        let mut signed = endorsed(&w, grant());
        signed.grant.data_from -= 30 * 86_400; // widen the period afterwards
        assert!(matches!(
            w.gate.admit(&signed, "r", NOW),
            Err(Refusal::BadSignature(_))
        ));
        let mut signed = endorsed(&w, grant());
        signed.endorsements[1].signature = signed.endorsements[0].signature.clone();
        assert!(matches!(
            w.gate.admit(&signed, "r", NOW),
            Err(Refusal::BadSignature(_))
        ));
    }

    #[test]
    fn expired_premature_misaddressed_and_out_of_scope_grants_are_refused() {
        let mut w = world();
        let signed = endorsed(&w, grant());
        assert_eq!(
            w.gate.admit(&signed, "r", NOW + 2 * 86_400),
            Err(Refusal::Expired)
        );
        assert_eq!(
            w.gate.admit(&signed, "r", NOW - 3600),
            Err(Refusal::NotYetValid)
        );
        let to_kt = endorsed(
            &w,
            Grant {
                holder: "KT".into(),
                ..grant()
            },
        );
        assert_eq!(
            w.gate.admit(&to_kt, "r", NOW),
            Err(Refusal::WrongHolder("KT".into()))
        );
        let marketing = endorsed(
            &w,
            Grant {
                purpose: "marketing".into(),
                ..grant()
            },
        );
        assert_eq!(
            w.gate.admit(&marketing, "r", NOW),
            Err(Refusal::OutOfScope(Item::LocationPings, "marketing".into()))
        );
        let cards = endorsed(
            &w,
            Grant {
                items: vec![Item::CardTransactions],
                ..grant()
            },
        );
        assert!(matches!(
            w.gate.admit(&cards, "r", NOW),
            Err(Refusal::OutOfScope(Item::CardTransactions, _))
        ));
        let long = endorsed(
            &w,
            Grant {
                data_from: NOW - 60 * 86_400,
                ..grant()
            },
        );
        assert_eq!(
            w.gate.admit(&long, "r", NOW),
            Err(Refusal::PeriodTooLong(21))
        );
        let outside = endorsed(
            &w,
            Grant {
                question: Question::Exposure {
                    windows: vec![ExposureWindow {
                        lat: 37.5,
                        lon: 127.0,
                        radius_m: 500.0,
                        t_start: NOW - 20 * 86_400,
                        t_end: NOW,
                    }],
                },
                ..grant()
            },
        );
        assert_eq!(
            w.gate.admit(&outside, "r", NOW),
            Err(Refusal::OutsideDataPeriod)
        );
        // None of the refusals used the grant up.
        assert!(w.gate.used().is_empty());
    }

    #[test]
    fn a_used_grant_is_forgotten_only_once_it_can_no_longer_be_replayed() {
        let mut w = world();
        let first = endorsed(&w, grant());
        w.gate.admit(&first, "r-1", NOW).unwrap();
        let expiry = grant().expires_at;
        // Remembered until the margin after its expiry has passed (a
        // replay after its expiry is refused as expired either way).
        let later = expiry + FORGET_USED_AFTER_SECONDS - 1;
        let second = endorsed(
            &w,
            Grant {
                grant_id: "g-2".into(),
                issued_at: later - 60,
                expires_at: later + 600,
                ..grant()
            },
        );
        w.gate.admit(&second, "r-2", later).unwrap();
        assert!(w.gate.used().contains_key("g-1"));
        let much_later = expiry + FORGET_USED_AFTER_SECONDS + 1;
        let third = endorsed(
            &w,
            Grant {
                grant_id: "g-3".into(),
                issued_at: much_later - 60,
                expires_at: much_later + 600,
                ..grant()
            },
        );
        w.gate.admit(&third, "r-3", much_later).unwrap();
        assert!(!w.gate.used().contains_key("g-1"), "forgotten");
        assert!(w.gate.used().contains_key("g-2"));
        assert_eq!(
            w.gate.admit(&first, "r-9", much_later),
            Err(Refusal::Expired)
        );
        // What a node restores: only what could still be replayed.
        let mut gate = world().gate;
        gate.restore_use(
            "old".into(),
            "r".into(),
            NOW - FORGET_USED_AFTER_SECONDS - 1,
            NOW,
        );
        gate.restore_use("live".into(), "r".into(), NOW + 60, NOW);
        assert_eq!(gate.used().keys().collect::<Vec<_>>(), ["live"]);
    }
}
