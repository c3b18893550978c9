//! The audit ledger: an append-only Merkle log of audit records and its signed tree heads.

use crate::*;
use civic_core::audit::{AuditEntry, AuditQuery, AuditRecord};
use civic_ledger::{Frontier, Hash, NodeId, SignedTreeHead};
use futures_util::stream::BoxStream;

store_trait! {
pub trait AuditStore {
    /// Appends an entry on its own (a denial, a failed request).
    fn append_audit(&self, entry: AuditEntry) -> Result<AuditRecord>;
    /// The right edge of the Merkle tree: its size and root.
    fn ledger_head(&self) -> Result<Frontier>;
    /// The hashes of the given perfect subtrees, in the order asked.
    fn ledger_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>>;
    fn audit_record(&self, seq: u64, audit: AuditEntry) -> Result<Option<AuditRecord>>;
    /// A security auditor's search, newest first; the search is itself audited.
    fn search_audit(&self, query: AuditQuery, audit: AuditEntry) -> Result<Vec<AuditRecord>>;
    fn save_tree_head(&self, head: &SignedTreeHead) -> Result<()>;
    fn latest_tree_head(&self) -> Result<Option<SignedTreeHead>>;
    fn tree_head(&self, size: u64) -> Result<Option<SignedTreeHead>>;
    fn tree_heads(&self) -> Result<Vec<SignedTreeHead>>;
    fn count_audit_records(&self) -> Result<u64>;
    sync {
        /// Every record with `seq < below`, in order, for verification.
        fn stream_audit_records(&self, below: u64) -> BoxStream<'_, Result<AuditRecord>>;
        /// Every stored node completed by a record with `seq < below`, as
        /// `(completed_by, level, hash)` in creation order.
        fn stream_ledger_nodes(&self, below: u64) -> BoxStream<'_, Result<(u64, u32, Vec<u8>)>>;
    }
}
}
