//! What the audit ledger records.
//!
//! An [`AuditEntry`] is what an action hands to storage together with its
//! own writes; storage appends it in the same transaction and gives it its
//! sequence number, which makes it an [`AuditRecord`].

use crate::identity::{DutyKind, InstitutionId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action was allowed and done.
    Allowed,
    /// The policy refused it.
    Denied,
    /// It was attempted and failed (a wrong password, a bad code).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "allowed" => Some(Self::Allowed),
            "denied" => Some(Self::Denied),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audited event before it is appended.
///
/// `subject` names the person or record whose data was touched (a case, a
/// citizen, a user account) by identifier only: the ledger never holds
/// personal data itself, only who touched whose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// When it happened.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub at: Timestamp,
    pub actor: Option<UserId>,
    /// The actor's login name, or the name offered at a failed login.
    pub actor_name: Option<String>,
    pub institution: Option<InstitutionId>,
    pub duty: Option<DutyKind>,
    /// What was done, e.g. `auth.login`, `admin.user.create`, `audit.search`.
    pub action: String,
    /// What it was done to, e.g. `user:12`, `institution:3`, `audit`.
    pub resource: String,
    pub subject: Option<String>,
    pub purpose: Option<String>,
    pub legal_basis: Option<String>,
    pub grant_id: Option<String>,
    pub outcome: Outcome,
    /// Why a denial or failure happened; never a secret or personal data.
    pub reason: Option<String>,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
}

impl AuditEntry {
    /// An entry for `action` on `resource` at this instant; the builder
    /// methods fill in the rest.
    pub fn new(action: impl Into<String>, resource: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            at: Timestamp::now(),
            actor: None,
            actor_name: None,
            institution: None,
            duty: None,
            action: action.into(),
            resource: resource.into(),
            subject: None,
            purpose: None,
            legal_basis: None,
            grant_id: None,
            outcome,
            reason: None,
            client_addr: None,
            request_id: None,
        }
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn purpose(mut self, purpose: impl Into<String>, legal_basis: impl Into<String>) -> Self {
        self.purpose = Some(purpose.into());
        self.legal_basis = Some(legal_basis.into());
        self
    }
}

/// An appended entry with its place in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Zero-based position in the ledger, which is the leaf index in the
    /// Merkle tree.
    pub seq: u64,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// What a security auditor may search the ledger by. Every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Records of this institution's staff only.
    pub institution: Option<InstitutionId>,
    pub actor: Option<UserId>,
    pub actor_name: Option<String>,
    pub subject: Option<String>,
    pub resource: Option<String>,
    pub action: Option<String>,
    pub from: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Return records with `seq` below this (for paging backwards).
    pub before_seq: Option<u64>,
    pub limit: u32,
}

impl AuditQuery {
    pub const MAX_LIMIT: u32 = 1000;
}
