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
mod tests;
