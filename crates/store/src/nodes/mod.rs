//! The nodes institutions run, the keys officials endorse with, the exchange log of messages between hub and nodes, and the hub's settings.

use crate::*;
use civic_core::audit::AuditEntry;
use civic_core::identity::UserId;
use civic_core::time::Timestamp;
use civic_exchange::{Direction, LogEntry, LogHead};

store_trait! {
pub trait NodeStore {
    /// Records a one-time enrolment token (its hash) for a node.
    fn create_enrolment(&self, enrolment: NewEnrolment, audit: AuditEntry) -> Result<()>;
    /// Uses a token: checks it is known, unused and unexpired, marks it
    /// used and records the node, in one transaction. `NotFound` for an
    /// unknown, used or expired token; `Conflict` for a taken node name.
    fn enrol_node(&self, token_hash: &str, node: NewNode, audit: AuditEntry) -> Result<Node>;
    fn nodes(&self) -> Result<Vec<Node>>;
    /// Records where a node answers and what it holds.
    fn set_node_route(&self, name: &str, route: NodeRoute, audit: AuditEntry) -> Result<()>;
}
}

store_trait! {
/// Endorsers' keys: one current key per user and role.
pub trait EndorserKeyStore {
    /// The user's newest key for `role` that is still valid at `at`.
    fn endorser_key(&self, user: UserId, role: &str, at: Timestamp) -> Result<Option<EndorserKey>>;
    /// Keeps a new key and its certificate, recording the certification.
    fn create_endorser_key(&self, key: EndorserKey, audit: AuditEntry) -> Result<()>;
}
}

store_trait! {
/// The hub's message log of its exchanges with nodes.
pub trait ExchangeLogStore {
    /// Appends the next entry of the chain (serialised with every other
    /// append, like the audit ledger's) and returns it.
    fn log_exchange(&self, at: i64, direction: Direction, request_id: &str, peer: &str, message_digest: String) -> Result<LogEntry>;
    /// Entries with `seq >= from`, in order, at most `limit`.
    fn exchange_log(&self, from: u64, limit: u64) -> Result<Vec<LogEntry>>;
    /// The newest entry.
    fn latest_exchange(&self) -> Result<Option<LogEntry>>;
    /// Keeps a node's signed log head. The same head again changes
    /// nothing; another head for a size already kept is evidence that the
    /// node's log was rewritten: `Conflict`, and the first is kept.
    fn keep_node_log_head(&self, node_key: &str, head: &LogHead, at: Timestamp) -> Result<()>;
    /// The heads kept of a node's log, by size.
    fn node_log_heads(&self, node_key: &str) -> Result<Vec<LogHead>>;
}
}

store_trait! {
pub trait MetaStore {
    fn meta(&self, key: &str) -> Result<Option<String>>;
    fn set_meta(&self, key: &str, value: &str) -> Result<()>;
}
}
