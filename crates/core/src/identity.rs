//! Institutions, users and their duties.

use crate::error::{parse_text, ValidationError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

id_type!(InstitutionId, "an institution");
id_type!(UserId, "a user");
id_type!(ApiTokenId, "an API token");

/// What an institution is, which decides the duties its staff may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InstitutionKind {
    /// The national agency that operates the hub itself.
    HubOperator,
    HealthAuthority,
    Police,
    Telco,
    CardCompany,
    TransitOperator,
    Ministry,
    LocalGovernment,
    PublicInstitution,
    UsingAgency,
}

impl InstitutionKind {
    pub const ALL: [InstitutionKind; 10] = [
        Self::HubOperator,
        Self::HealthAuthority,
        Self::Police,
        Self::Telco,
        Self::CardCompany,
        Self::TransitOperator,
        Self::Ministry,
        Self::LocalGovernment,
        Self::PublicInstitution,
        Self::UsingAgency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HubOperator => "hub_operator",
            Self::HealthAuthority => "health_authority",
            Self::Police => "police",
            Self::Telco => "telco",
            Self::CardCompany => "card_company",
            Self::TransitOperator => "transit_operator",
            Self::Ministry => "ministry",
            Self::LocalGovernment => "local_government",
            Self::PublicInstitution => "public_institution",
            Self::UsingAgency => "using_agency",
        }
    }
}

/// Finds the value named `raw` (`-` read as `_`) among `all`.
fn parse_named<T: Copy>(
    field: &'static str,
    what: &str,
    raw: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, ValidationError> {
    let raw = raw.trim().replace('-', "_");
    all.iter()
        .copied()
        .find(|k| name(*k) == raw)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|k| name(*k)).collect();
            ValidationError::new(
                field,
                format!("unknown {what}; expected one of {}", names.join(", ")),
            )
        })
}

impl FromStr for InstitutionKind {
    type Err = ValidationError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        parse_named("kind", "institution kind", raw, &Self::ALL, Self::as_str)
    }
}

impl fmt::Display for InstitutionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A display name of an institution or a person: 1–200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String")]
pub struct Name(String);

impl Name {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        parse_text(field, raw, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A login name: 3–64 characters of `a-z 0-9 . _ -`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let value = raw.trim().to_ascii_lowercase();
        let ok_len = (3..=64).contains(&value.len());
        let ok_first = value.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        let ok_chars = value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if ok_len && ok_first && ok_chars {
            Ok(Self(value))
        } else {
            Err(ValidationError::new(
                "username",
                "must be 3-64 characters of a-z, 0-9, '.', '_', '-' starting with a letter",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed, before hashing. Never printed: `Debug` hides it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 12;
    pub const MAX_LEN: usize = 256;

    /// A new password must be long; a password offered at login is only
    /// bounded (see [`Password::offered`]).
    pub fn parse_new(raw: &str) -> Result<Self, ValidationError> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(ValidationError::new(
                "password",
                format!("must be {}-{} characters", Self::MIN_LEN, Self::MAX_LEN),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn offered(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > 4 * Self::MAX_LEN {
            return Err(ValidationError::new(
                "password",
                "must not be empty or huge",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A region of jurisdiction, e.g. `seoul` or `daegu`: 1–64 characters of
/// `a-z 0-9 -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String")]
pub struct Region(String);

impl Region {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let value = raw.trim().to_ascii_lowercase();
        if !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            Ok(Self(value))
        } else {
            Err(ValidationError::new(
                "region",
                "must be 1-64 characters of a-z, 0-9 and '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Text newtypes come into the program only through their `parse`, from
// JSON and from storage alike.
through_parse!(Name, |raw: &str| Name::parse("name", raw));
through_parse!(Username, Username::parse);
through_parse!(Region, Region::parse);
through_parse!(Subject, Subject::parse);

/// What a user's job allows, without its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DutyKind {
    Investigator,
    Approver,
    PoliceLocationOfficer,
    SecurityAuditor,
    MydataOperator,
    SupportAgent,
    Analyst,
    Administrator,
    /// A citizen of Public MyData: sees and decides about his own data
    /// only (`citizen:SUBJECT`).
    Citizen,
    /// City data: reads and writes the NGSI-LD tenants its institution
    /// owns or is let into, and registers context sources in its own
    /// (sensor operators, city departments, their systems).
    CityDataOperator,
}

impl DutyKind {
    pub const ALL: [DutyKind; 10] = [
        Self::Investigator,
        Self::Approver,
        Self::PoliceLocationOfficer,
        Self::SecurityAuditor,
        Self::MydataOperator,
        Self::SupportAgent,
        Self::Analyst,
        Self::Administrator,
        Self::Citizen,
        Self::CityDataOperator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Investigator => "investigator",
            Self::Approver => "approver",
            Self::PoliceLocationOfficer => "police_location_officer",
            Self::SecurityAuditor => "security_auditor",
            Self::MydataOperator => "mydata_operator",
            Self::SupportAgent => "support_agent",
            Self::Analyst => "analyst",
            Self::Administrator => "administrator",
            Self::Citizen => "citizen",
            Self::CityDataOperator => "city_data_operator",
        }
    }

    /// Whether the duty can see personal data, and so needs a second factor.
    ///
    /// Analysts see only privacy-safe aggregates, city data operators a
    /// city's sensors and services; every other duty sees people: cases,
    /// citizens, officials, or the audit trail about them.
    pub fn sees_personal_data(self) -> bool {
        !matches!(self, Self::Analyst | Self::CityDataOperator)
    }

    /// The institution kinds whose staff may hold this duty.
    pub fn allowed_at(self, kind: InstitutionKind) -> bool {
        use InstitutionKind as K;
        match self {
            Self::Investigator => matches!(kind, K::HealthAuthority | K::LocalGovernment),
            Self::Approver => matches!(kind, K::HealthAuthority),
            Self::PoliceLocationOfficer => matches!(kind, K::Police),
            Self::SecurityAuditor => {
                matches!(kind, K::HubOperator | K::HealthAuthority | K::Ministry)
            }
            Self::MydataOperator => !matches!(kind, K::HubOperator | K::Police),
            Self::SupportAgent => matches!(kind, K::HubOperator),
            // Citizens' accounts are kept by the portal's operator.
            Self::Citizen => matches!(kind, K::HubOperator),
            Self::Analyst | Self::Administrator | Self::CityDataOperator => true,
        }
    }
}

impl FromStr for DutyKind {
    type Err = ValidationError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        parse_named("duty", "duty", raw, &Self::ALL, Self::as_str)
    }
}

impl fmt::Display for DutyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A duty with its scope: an investigator always has a region, no other
/// duty has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Duty {
    pub kind: DutyKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// A citizen's own identifier, as the holding institutions know him.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
}

/// A citizen as the holding institutions know him (in the demo, the
/// synthetic population's person number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String")]
pub struct Subject(String);

impl Subject {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let value = raw.trim();
        if !value.is_empty()
            && value.len() <= 64
            && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            Ok(Self(value.to_owned()))
        } else {
            Err(ValidationError::new(
                "subject",
                "must be 1-64 characters of A-Z, a-z, 0-9 and '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Duty {
    pub fn new(kind: DutyKind, region: Option<Region>) -> Result<Self, ValidationError> {
        match (kind, &region) {
            (DutyKind::Investigator, None) => Err(ValidationError::new(
                "duty",
                "an investigator needs a region (investigator:REGION)",
            )),
            (DutyKind::Citizen, _) => Err(ValidationError::new(
                "duty",
                "a citizen needs his subject (citizen:SUBJECT)",
            )),
            (DutyKind::Investigator, Some(_)) | (_, None) => Ok(Self {
                kind,
                region,
                subject: None,
            }),
            (_, Some(_)) => Err(ValidationError::new(
                "duty",
                format!("{kind} takes no region"),
            )),
        }
    }

    /// Parses `investigator:seoul`, `approver`, ….
    /// A citizen's duty: to decide about his own data.
    pub fn citizen(subject: Subject) -> Self {
        Self {
            kind: DutyKind::Citizen,
            region: None,
            subject: Some(subject),
        }
    }

    /// What the duty is scoped to (a region or a subject), as text; empty
    /// if unscoped.
    pub fn scope(&self) -> &str {
        match (&self.region, &self.subject) {
            (Some(r), _) => r.as_str(),
            (None, Some(s)) => s.as_str(),
            (None, None) => "",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if let Some(("citizen", subject)) = raw.trim().split_once(':') {
            return Ok(Self::citizen(Subject::parse(subject)?));
        }
        let (kind, region) = match raw.split_once(':') {
            Some((k, r)) => (k.parse()?, Some(Region::parse(r)?)),
            None => (raw.parse()?, None),
        };
        Self::new(kind, region)
    }

    pub fn check_institution(&self, kind: InstitutionKind) -> Result<(), ValidationError> {
        if self.kind.allowed_at(kind) {
            Ok(())
        } else {
            Err(ValidationError::new(
                "duty",
                format!("{} cannot be held at a {} institution", self.kind, kind),
            ))
        }
    }
}

impl fmt::Display for Duty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope() {
            "" => write!(f, "{}", self.kind),
            scope => write!(f, "{}:{}", self.kind, scope),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duties_parse_with_their_scope() {
        let d = Duty::parse("investigator:seoul").unwrap();
        assert_eq!(d.region.unwrap().as_str(), "seoul");
        assert!(Duty::parse("investigator").is_err());
        assert!(Duty::parse("approver:seoul").is_err());
        assert!(Duty::parse("janitor").is_err());
        assert_eq!(
            Duty::parse("police-location-officer").unwrap().kind,
            DutyKind::PoliceLocationOfficer
        );
    }

    #[test]
    fn duties_belong_to_institution_kinds() {
        let police = Duty::parse("police_location_officer").unwrap();
        assert!(police.check_institution(InstitutionKind::Police).is_ok());
        assert!(police.check_institution(InstitutionKind::Telco).is_err());
    }

    #[test]
    fn text_newtypes_deserialise_through_their_parse() {
        let user: Username = serde_json::from_str("\" Alice \"").unwrap();
        assert_eq!(user.as_str(), "alice");
        assert!(serde_json::from_str::<Username>("\"1bad\"").is_err());
        let region: Region = serde_json::from_str("\"Seoul\"").unwrap();
        assert_eq!(region.as_str(), "seoul");
        assert!(serde_json::from_str::<Region>("\"seoul city\"").is_err());
        assert!(serde_json::from_str::<Name>("\"  \"").is_err());
        assert!(serde_json::from_str::<Subject>("\"a/b\"").is_err());
        let duty: Duty =
            serde_json::from_str(r#"{"kind":"investigator","region":"Seoul"}"#).unwrap();
        assert_eq!(duty.region.unwrap().as_str(), "seoul");
        assert_eq!(serde_json::to_string(&user).unwrap(), "\"alice\"");
    }

    #[test]
    fn usernames_are_normalised() {
        assert_eq!(Username::parse(" Kim.Inv ").unwrap().as_str(), "kim.inv");
        assert!(Username::parse("1abc").is_err());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("a b c").is_err());
    }

    #[test]
    fn passwords_are_long_and_hidden() {
        assert!(Password::parse_new("short").is_err());
        let p = Password::parse_new("correct horse battery").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }

    #[test]
    fn kinds_round_trip() {
        for k in InstitutionKind::ALL {
            assert_eq!(k.as_str().parse::<InstitutionKind>().unwrap(), k);
        }
        for k in DutyKind::ALL {
            assert_eq!(k.as_str().parse::<DutyKind>().unwrap(), k);
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Parsers never panic, and what they accept prints back to itself.
        #[test]
        fn duties_round_trip_through_display(raw in "\\PC{0,40}") {
            if let Ok(duty) = Duty::parse(&raw) {
                prop_assert_eq!(Duty::parse(&duty.to_string()).unwrap(), duty);
            }
        }

        #[test]
        fn usernames_and_regions_are_normal_forms(raw in "\\PC{0,80}") {
            if let Ok(u) = Username::parse(&raw) {
                prop_assert_eq!(Username::parse(u.as_str()).unwrap(), u.clone());
                prop_assert!(u.as_str().len() <= 64);
            }
            if let Ok(r) = Region::parse(&raw) {
                prop_assert_eq!(Region::parse(r.as_str()).unwrap(), r);
            }
        }

        #[test]
        fn names_never_carry_control_characters(raw in "\\PC{0,300}|[\\x00-\\x1f]{1,5}") {
            if let Ok(n) = Name::parse("name", &raw) {
                prop_assert!(!n.as_str().chars().any(char::is_control));
                prop_assert!(n.as_str().chars().count() <= 200);
            }
        }
    }
}

/// A holder's code (in case registers and on its nodes' routes): 1-32
/// characters of `a-z 0-9 - _`, lower-cased.
pub fn holder_code(raw: &str) -> Option<String> {
    let code = raw.trim().to_ascii_lowercase();
    (!code.is_empty()
        && code.len() <= 32
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
    .then_some(code)
}
