//! The one place that decides who may do what.
//!
//! A decision depends on three things only: the principal's duties, the
//! principal's institution, and the principal's assignment (an
//! investigator's region, or the cases assigned to her). Routes never decide
//! access themselves: they name an [`Action`] and ask [`decide`].
//!
//! `routes.tsv` beside this file is the route table: every HTTP route and,
//! for each duty, whether it is allowed. A test in `civic-api` walks every
//! route with a user of every duty and checks the server against it.

use crate::identity::Duty;
use crate::identity::{DutyKind, InstitutionId, InstitutionKind, Region, UserId};
use std::fmt;

/// The route table, kept beside the policy (see the module documentation).
pub const ROUTE_TABLE: &str = include_str!("policy/routes.tsv");

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Password only: enough for duties that never see personal data, and
    /// for enrolling a second factor.
    Password,
    /// Password and a TOTP code.
    PasswordAndTotp,
    /// A machine client's API token: a 256-bit secret issued by an
    /// administrator who had signed in with a second factor.
    ApiToken,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub username: String,
    pub institution: InstitutionId,
    pub institution_kind: InstitutionKind,
    pub duties: Vec<Duty>,
    pub auth: AuthMethod,
}

impl Principal {
    pub fn has(&self, kind: DutyKind) -> bool {
        self.duties.iter().any(|d| d.kind == kind)
    }

    /// Whether any of the principal's duties can see personal data.
    pub fn needs_second_factor(&self) -> bool {
        self.duties.iter().any(|d| d.kind.sees_personal_data())
    }

    /// Whether the principal proved itself with two factors: a person's
    /// password and TOTP code. A machine client's token is one secret, one
    /// factor, however long (see [`machine_client_may`]).
    pub fn has_strong_auth(&self) -> bool {
        self.auth == AuthMethod::PasswordAndTotp
    }

    fn is_platform_admin(&self) -> bool {
        self.has(DutyKind::Administrator) && self.institution_kind == InstitutionKind::HubOperator
    }

    fn administers(&self, institution: InstitutionId) -> bool {
        self.is_platform_admin()
            || (self.has(DutyKind::Administrator) && self.institution == institution)
    }
}

/// Something a principal wants to do, with the attributes of its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// See one's own account, sign out.
    ViewOwnAccount,
    /// Enrol or confirm one's own second factor.
    EnrolSecondFactor,
    /// List institutions (not personal data).
    ListInstitutions,
    CreateInstitution,
    /// List the users of an institution (officials' personal data).
    ListUsers {
        institution: InstitutionId,
    },
    /// Reset a second factor, unlock, set a password of a user of the
    /// institution.
    ManageUser {
        institution: InstitutionId,
    },
    /// Give a user of the institution these duties (creating her, or
    /// replacing her duties); `own_account` when she is the caller,
    /// `machine_client` when the account is a machine client's.
    GrantDuties {
        institution: InstitutionId,
        duties: &'a [Duty],
        own_account: bool,
        machine_client: bool,
    },
    /// Issue, list or revoke API tokens of an institution's machine clients.
    ManageApiTokens {
        institution: InstitutionId,
    },
    /// Issue enrolment tokens for an institution's nodes.
    ManageNodes {
        institution: InstitutionId,
    },
    /// Replace the map's geography (regions, places): the platform's
    /// administrators.
    ManageGeography,
    /// Publish a provided document or dataset in the MyData catalogue, as
    /// its holding institution: its MyData operators (of a ministry, a
    /// public institution or a local government).
    PublishMydataOffer,
    /// Apply for, and discuss, a linkage agreement on a dataset, as the
    /// using agency: its MyData operators.
    ApplyMydataAgreement,
    /// Review a linkage agreement — question, approve, reject — as the
    /// holding institution: its MyData operators.
    ReviewMydataAgreement {
        holder: InstitutionId,
    },
    /// See the linkage agreements one's institution is party to.
    ListMydataAgreements,
    /// Public MyData's transfers as an institution: a using agency asks
    /// citizens for items under its approved agreements, fetches what they
    /// sent, confirms deletion and follows its events; a holding
    /// institution sees what it issued. Its MyData operators (people, or
    /// the agency's machine client with a token).
    MydataTransfers,
    /// A citizen's own data: the requests for it (consent, refuse), every
    /// transfer and access, withdrawal, receipts and the portability
    /// download. The citizen himself, signed in with a second factor.
    MydataCitizen,
    /// See transfers, in the capacity the permit names: the citizen his
    /// own ([`Action::MydataCitizen`]'s rule), a MyData operator her
    /// institution's ([`Action::MydataTransfers`]'s).
    ReadMydataTransfers,
    /// Open a support ticket for one's institution, and follow its own
    /// tickets: any user with a duty, outside the hub operator.
    OpenSupportTicket,
    /// Handle every institution's tickets, run trainings and read each
    /// institution's consulting history: the support centre's agents.
    HandleSupport,
    /// See the training sessions: any user with a duty.
    ListTrainings,
    /// Search and read the audit ledger.
    SearchAudit,
    /// Fetch inclusion proofs of audit records.
    ReadAuditProof,
    /// Endorse a grant for a node with one's own key, in the capacity of
    /// `as_duty` (an approver of the health authority, a police location
    /// officer).
    EndorseGrant {
        as_duty: DutyKind,
    },
    /// Read a case: investigators of its region or assigned to it, and
    /// approvers of the health authority deciding on it.
    ReadCase {
        region: &'a Region,
        assigned_to: &'a [UserId],
    },
    /// Work on a case — ask for its data, record its interview, follow up
    /// its contacts: investigators of its region or assigned to it.
    WorkCase {
        region: &'a Region,
        assigned_to: &'a [UserId],
    },
    /// Register cases of a region: its investigators.
    RegisterCase {
        region: &'a Region,
    },
    /// Open and close outbreak responses: administrators of the health
    /// authority or of the hub operator.
    ManageResponses,
    /// See the responses (names, legal bases, rules: no personal data):
    /// the duties of the investigation.
    ListResponses,
    /// See data requests waiting for a decision, and decide them, in the
    /// capacity of `as_duty`.
    DecideDataRequests {
        as_duty: DutyKind,
    },
    /// See a response's clusters (cases by number, places, sources):
    /// investigators of any region and approvers of the health authority.
    ReadClusters,
    /// An investigator's work on a response as a whole — load routes
    /// published elsewhere or interviews, list and notify contacts: any
    /// investigator (each case is then checked on its own).
    Investigate,
    /// City data: `op` on an NGSI-LD tenant that its settings do not leave
    /// to anyone, owned by `owner`, with the institutions it lets read
    /// and write. City data operators of the owner do everything; those of
    /// a writer institution read, subscribe and write; those of a reader
    /// institution read and subscribe, as do its analysts. Only the
    /// owner's register context sources.
    CityData {
        owner: InstitutionId,
        readers: &'a [InstitutionId],
        writers: &'a [InstitutionId],
        op: CityOp,
    },
    /// Create a city data tenant owned by `institution`, or change its
    /// settings: the institution's administrators or the platform's.
    ManageCityTenants {
        institution: InstitutionId,
    },
    /// See city data's tenants and their settings (no personal data):
    /// administrators and city data operators.
    ListCityTenants,
}

/// What a request does to a city data tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CityOp {
    /// Reads entities, their history, types and attributes.
    Read,
    /// Subscribes to entities' changes or to registrations; reads and
    /// changes subscriptions. A subscription tells no more than a read,
    /// but subscriptions hold their owners' endpoints and the headers
    /// sent there: they are not left to anyone with public data.
    Subscribe,
    /// Creates, changes or deletes entities and their history.
    Write,
    /// Registers context sources (which then receive the requests on the
    /// entities they name) and subscribes to the registrations.
    Register,
}

impl CityOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Subscribe => "subscribe",
            Self::Write => "write",
            Self::Register => "register",
        }
    }
}

/// Whether a machine client's API token may take `action`.
///
/// A token is one factor: a secret that a system holds, with no person
/// present to give a second. So it never reaches a person's data (a case,
/// a route, a citizen's choices, the ledger, officials' accounts), with one
/// exception: the MyData transfers of its own agency. There the personal
/// data is end to end: a citizen consented to send it to that agency, the
/// agency named him in its own request, and every package is encrypted to
/// the agency's own X25519 key, which the hub never holds — the token and
/// that key are the system's two factors. Everything else a token may do
/// shows no one's personal data.
pub fn machine_client_may(action: &Action<'_>) -> bool {
    matches!(
        action,
        Action::ViewOwnAccount
            | Action::ListInstitutions
            | Action::ReadAuditProof
            | Action::PublishMydataOffer
            | Action::ApplyMydataAgreement
            | Action::ListMydataAgreements
            | Action::MydataTransfers
            | Action::ReadMydataTransfers
            | Action::CityData { .. }
            | Action::ListCityTenants
    )
}

/// Whether a machine client may hold a duty: only those whose work a
/// token may do ([`machine_client_may`]). An administrator refusing to
/// give an investigator's duty to a system is told so at once, rather than
/// making an account whose every call is refused.
pub fn machine_client_may_hold(kind: DutyKind) -> bool {
    matches!(
        kind,
        DutyKind::MydataOperator | DutyKind::Analyst | DutyKind::CityDataOperator
    )
}

/// The duty in which `who` decides data requests: a police location
/// officer's if she holds it and not an approver's, else an approver's
/// ([`Action::DecideDataRequests`] then says whether she may).
pub fn deciding_duty(who: &Principal) -> DutyKind {
    if who.has(DutyKind::PoliceLocationOfficer) && !who.has(DutyKind::Approver) {
        DutyKind::PoliceLocationOfficer
    } else {
        DutyKind::Approver
    }
}

/// Whether a duty's region covers a case's region: the same, or one of
/// its parts (`seoul` covers `seoul-gangbuk`).
pub fn region_covers(duty: &Region, case: &Region) -> bool {
    let (d, c) = (duty.as_str(), case.as_str());
    c == d || (c.len() > d.len() && c.starts_with(d) && c.as_bytes()[d.len()] == b'-')
}

/// A refusal, with a reason that can be shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: &'static str,
    /// True when the refusal is only for lack of a second factor.
    pub needs_second_factor: bool,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

/// Permission, naming the duty under which it was given (for the audit
/// record), or `None` for what every signed-in user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    pub duty: Option<DutyKind>,
    /// When set, the permission covers only what concerns this institution
    /// (a security auditor outside the hub operator sees only the records
    /// of her own institution's staff).
    pub only_institution: Option<InstitutionId>,
}

/// Why a machine client may not hold a duty (also the administration's
/// answer to the local operator, who bypasses the rest of the policy).
pub const MACHINE_DUTIES: &str =
    "a machine client may hold only mydata_operator, analyst or city_data_operator: its token never reaches a person's data";

const fn deny(reason: &'static str) -> Result<Permit, Denial> {
    Err(Denial {
        reason,
        needs_second_factor: false,
    })
}

const fn permit(duty: Option<DutyKind>) -> Result<Permit, Denial> {
    Ok(Permit {
        duty,
        only_institution: None,
    })
}

/// Decides whether `who` may do `action`.
pub fn decide(who: &Principal, action: Action<'_>) -> Result<Permit, Denial> {
    use DutyKind as D;

    // A machine client's token reaches no person's data, whatever duty its
    // account holds (one made before this rule, or by hand in the
    // database, included).
    if who.auth == AuthMethod::ApiToken {
        if !machine_client_may(&action) {
            return deny("a machine client's token does not reach personal data: a person signed in with a second factor does this");
        }
        let stale = who.duties.iter().any(|d| !machine_client_may_hold(d.kind));
        if stale && !matches!(action, Action::ViewOwnAccount) {
            return deny("this machine client holds a duty no machine client may hold; an administrator must change its duties");
        }
    }
    // Without the second factor a user whose duties see personal data may
    // only look at her own account and enrol the factor.
    let partial = who.auth == AuthMethod::Password && who.needs_second_factor();
    if partial && !matches!(action, Action::ViewOwnAccount | Action::EnrolSecondFactor) {
        return Err(Denial {
            reason: "a second factor (TOTP) is required for your duties",
            needs_second_factor: true,
        });
    }

    match action {
        Action::ViewOwnAccount | Action::EnrolSecondFactor | Action::ReadAuditProof => permit(None),
        Action::ListInstitutions => {
            if who.duties.is_empty() {
                deny("you hold no duty")
            } else {
                permit(None)
            }
        }
        // Administration is done by a person signed in with a second
        // factor, never by a machine client's token.
        Action::CreateInstitution
        | Action::ListUsers { .. }
        | Action::ManageUser { .. }
        | Action::GrantDuties { .. }
        | Action::ManageApiTokens { .. }
        | Action::ManageNodes { .. }
        | Action::ManageGeography
        | Action::ManageCityTenants { .. }
            if who.auth != AuthMethod::PasswordAndTotp =>
        {
            deny("administration needs a person signed in with a second factor")
        }
        Action::EndorseGrant { .. }
        | Action::DecideDataRequests { .. }
        | Action::ReviewMydataAgreement { .. }
            if who.auth != AuthMethod::PasswordAndTotp =>
        {
            deny("an endorsement or a review is given by a person signed in with a second factor")
        }
        Action::ManageResponses if who.auth != AuthMethod::PasswordAndTotp => {
            deny("administration needs a person signed in with a second factor")
        }
        Action::DecideDataRequests { as_duty } => {
            let approver = as_duty == D::Approver
                && who.has(D::Approver)
                && who.institution_kind == InstitutionKind::HealthAuthority;
            let police = as_duty == D::PoliceLocationOfficer
                && who.has(D::PoliceLocationOfficer)
                && who.institution_kind == InstitutionKind::Police;
            if approver || police {
                permit(Some(as_duty))
            } else {
                deny("only approvers of the health authority and police location officers decide data requests, each in her own duty")
            }
        }
        Action::ManageResponses => {
            if who.has(D::Administrator)
                && matches!(
                    who.institution_kind,
                    InstitutionKind::HealthAuthority | InstitutionKind::HubOperator
                )
            {
                permit(Some(D::Administrator))
            } else {
                deny("only administrators of the health authority or the hub operator open and close responses")
            }
        }
        Action::ListResponses => {
            let duty = [
                D::Investigator,
                D::Approver,
                D::PoliceLocationOfficer,
                D::SecurityAuditor,
                D::Administrator,
            ]
            .into_iter()
            .find(|d| who.has(*d));
            match duty {
                Some(d) => permit(Some(d)),
                None => deny("only the duties of the investigation see its responses"),
            }
        }
        Action::RegisterCase { region } => {
            let covers = who.duties.iter().any(|d| {
                d.kind == D::Investigator
                    && d.region.as_ref().is_some_and(|r| region_covers(r, region))
            });
            if covers {
                permit(Some(D::Investigator))
            } else {
                deny("only investigators of the case's region register it")
            }
        }
        Action::WorkCase {
            region,
            assigned_to,
        } => {
            let covers = who.duties.iter().any(|d| {
                d.kind == D::Investigator
                    && d.region.as_ref().is_some_and(|r| region_covers(r, region))
            });
            if who.has(D::Investigator) && (covers || assigned_to.contains(&who.user)) {
                permit(Some(D::Investigator))
            } else {
                deny("the case is neither in your region nor assigned to you")
            }
        }
        Action::ReadClusters => {
            if who.has(D::Investigator) {
                permit(Some(D::Investigator))
            } else if who.has(D::Approver)
                && who.institution_kind == InstitutionKind::HealthAuthority
            {
                permit(Some(D::Approver))
            } else {
                deny("only investigators and approvers of the health authority see clusters")
            }
        }
        Action::Investigate => {
            if who.has(D::Investigator) {
                permit(Some(D::Investigator))
            } else {
                deny("only investigators do this")
            }
        }
        Action::EndorseGrant { as_duty } => {
            if matches!(as_duty, D::Approver | D::PoliceLocationOfficer) && who.has(as_duty) {
                permit(Some(as_duty))
            } else {
                deny("only approvers of the health authority and police location officers endorse grants, each in her own duty")
            }
        }
        Action::CityData {
            owner,
            readers,
            writers,
            op,
        } => {
            let at = who.institution;
            let operator = who.has(D::CityDataOperator);
            let allowed = match op {
                CityOp::Register => operator && at == owner,
                CityOp::Write => operator && (at == owner || writers.contains(&at)),
                CityOp::Read | CityOp::Subscribe => {
                    let member = at == owner || writers.contains(&at) || readers.contains(&at);
                    member && (operator || who.has(D::Analyst))
                }
            };
            match op {
                _ if allowed && operator => permit(Some(D::CityDataOperator)),
                _ if allowed => permit(Some(D::Analyst)),
                CityOp::Register => deny("only city data operators of the tenant's institution register context sources in it"),
                CityOp::Write => deny("only city data operators of the tenant's institution, or of an institution it lets write, write in it"),
                CityOp::Read | CityOp::Subscribe => deny("only city data operators and analysts of the tenant's institution, or of an institution it lets in, read it and subscribe to it"),
            }
        }
        Action::ManageCityTenants { institution } => {
            if who.administers(institution) {
                permit(Some(D::Administrator))
            } else {
                deny("only the institution's administrators, or the platform's, manage its city data tenants")
            }
        }
        Action::ListCityTenants => match [D::Administrator, D::CityDataOperator]
            .into_iter()
            .find(|d| who.has(*d))
        {
            Some(d) => permit(Some(d)),
            None => deny("only administrators and city data operators see city data's tenants"),
        },
        Action::CreateInstitution => {
            if who.is_platform_admin() {
                permit(Some(D::Administrator))
            } else {
                deny("only administrators of the hub operator create institutions")
            }
        }
        Action::PublishMydataOffer => {
            let holder = matches!(
                who.institution_kind,
                InstitutionKind::Ministry
                    | InstitutionKind::PublicInstitution
                    | InstitutionKind::LocalGovernment
            );
            if who.has(D::MydataOperator) && holder {
                permit(Some(D::MydataOperator))
            } else {
                deny("only MyData operators of a ministry, a public institution or a local government publish what it holds")
            }
        }
        Action::ApplyMydataAgreement | Action::ListMydataAgreements => {
            if who.has(D::MydataOperator) {
                permit(Some(D::MydataOperator))
            } else {
                deny("only MyData operators handle linkage agreements")
            }
        }
        Action::ReviewMydataAgreement { holder } => {
            if who.has(D::MydataOperator) && who.institution == holder {
                permit(Some(D::MydataOperator))
            } else {
                deny("only MyData operators of the holding institution review its linkage agreements")
            }
        }
        Action::OpenSupportTicket => {
            if who.duties.is_empty() || who.institution_kind == InstitutionKind::HubOperator {
                deny("tickets are opened by the staff of an institution the support centre serves")
            } else {
                permit(None)
            }
        }
        Action::HandleSupport => {
            if who.has(D::SupportAgent) {
                permit(Some(D::SupportAgent))
            } else {
                deny("only the support centre's agents do this")
            }
        }
        Action::MydataTransfers => {
            if who.has(D::MydataOperator) {
                permit(Some(D::MydataOperator))
            } else {
                deny("only MyData operators of an agency or a holder handle transfers")
            }
        }
        Action::MydataCitizen => {
            if who.has(D::Citizen) && who.auth == AuthMethod::PasswordAndTotp {
                permit(Some(D::Citizen))
            } else {
                deny("only the citizen himself, signed in with a second factor, sees and decides about his data")
            }
        }
        Action::ReadMydataTransfers => {
            if who.has(D::Citizen) {
                decide(who, Action::MydataCitizen)
            } else {
                decide(who, Action::MydataTransfers)
            }
        }
        Action::ListTrainings => {
            if who.duties.is_empty() || who.has(D::Citizen) {
                deny("you hold no duty")
            } else {
                permit(None)
            }
        }
        Action::ManageGeography => {
            if who.is_platform_admin() {
                permit(Some(D::Administrator))
            } else {
                deny("only administrators of the hub operator change the map's geography")
            }
        }
        Action::ListUsers { institution }
        | Action::ManageUser { institution }
        | Action::ManageApiTokens { institution }
        | Action::ManageNodes { institution } => {
            if who.administers(institution) {
                permit(Some(D::Administrator))
            } else {
                deny("only administrators of this institution manage its users and tokens")
            }
        }
        Action::GrantDuties {
            institution,
            duties,
            own_account,
            machine_client,
        } => {
            let powerful = duties
                .iter()
                .any(|d| matches!(d.kind, D::Administrator | D::SecurityAuditor));
            if !who.administers(institution) {
                deny("only administrators of this institution manage its users and tokens")
            } else if machine_client && !duties.iter().all(|d| machine_client_may_hold(d.kind)) {
                deny(MACHINE_DUTIES)
            } else if own_account {
                deny("no one changes her own duties")
            } else if powerful && !who.is_platform_admin() {
                deny("only administrators of the hub operator grant the administrator or security auditor duty")
            } else {
                permit(Some(D::Administrator))
            }
        }
        Action::SearchAudit => {
            if !who.has(D::SecurityAuditor) {
                deny("only security auditors search the audit ledger")
            } else if who.institution_kind == InstitutionKind::HubOperator {
                permit(Some(D::SecurityAuditor))
            } else {
                Ok(Permit {
                    duty: Some(D::SecurityAuditor),
                    only_institution: Some(who.institution),
                })
            }
        }
        Action::ReadCase {
            region,
            assigned_to,
        } => {
            let in_region = who.duties.iter().any(|d| {
                d.kind == D::Investigator
                    && d.region.as_ref().is_some_and(|r| region_covers(r, region))
            });
            if who.has(D::Investigator) && (in_region || assigned_to.contains(&who.user)) {
                permit(Some(D::Investigator))
            } else if who.has(D::Approver)
                && who.institution_kind == InstitutionKind::HealthAuthority
            {
                permit(Some(D::Approver))
            } else {
                deny("the case is neither in your region nor assigned to you")
            }
        }
    }
}

#[cfg(test)]
mod tests;
