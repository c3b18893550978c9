//! The audit ledger as a service: signed tree heads, proofs, the auditors'
//! search, and the full verification behind `civic audit verify`.

use crate::{Ctx, Hub, HubError, Result};
use civic_core::audit::{AuditQuery, AuditRecord};
use civic_core::policy::Action;
use civic_core::time::Timestamp;
use civic_ledger::{
    consistency_plan, fold_range, inclusion_plan, key_id, record_leaf_hash, to_hex, Frontier, Hash,
    NodeId, SignedTreeHead,
};
use civic_store::{AuditStore, MetaStore, Store, StoreError};
use ed25519_dalek::VerifyingKey;
use futures_util::StreamExt;

pub const PUBLIC_KEY_META: &str = "hub.signing_public_key";

/// An inclusion proof of one record in a signed tree head.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InclusionProof {
    pub seq: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    pub proof: Vec<String>,
    pub tree_head: Option<SignedTreeHead>,
}

/// A consistency proof between two tree sizes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsistencyProof {
    pub first: u64,
    pub second: u64,
    pub proof: Vec<String>,
}

impl Hub {
    /// Records the public key beside the data, for verifiers that have no
    /// copy of their own (a copy from the key file is better evidence).
    ///
    /// A ledger has one signing key: a database whose tree heads were signed
    /// by another key is refused, rather than silently signed by a new one
    /// (as would happen if the hub ran with the wrong data directory).
    pub async fn publish_public_key(&self) -> Result<(), crate::OpenError> {
        let key = self.public_key_hex();
        match self.store.meta(PUBLIC_KEY_META).await? {
            Some(recorded) if recorded == key => Ok(()),
            Some(recorded) => Err(crate::OpenError::KeyMismatch {
                recorded,
                data_dir: self.config.data_dir.display().to_string(),
            }),
            None => Ok(self.store.set_meta(PUBLIC_KEY_META, &key).await?),
        }
    }

    pub fn public_key_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(self.keys().signing_key().verifying_key().as_bytes())
    }

    /// The newest signed tree head, signing a new one if the ledger grew.
    pub async fn tree_head(&self) -> Result<SignedTreeHead> {
        let head = self.store.ledger_head().await?;
        if let Some(latest) = self.store.latest_tree_head().await? {
            if latest.tree_size == head.size() {
                return Ok(latest);
            }
        }
        let signed = self.signer_sign(head.size(), &head.root());
        self.store.save_tree_head(&signed).await?;
        Ok(signed)
    }

    fn signer_sign(&self, size: u64, root: &Hash) -> SignedTreeHead {
        self.signer.sign(size, root, Timestamp::now())
    }

    async fn resolve(&self, plan: Vec<Vec<NodeId>>) -> Result<Vec<String>> {
        let flat: Vec<NodeId> = plan.iter().flatten().copied().collect();
        let hashes = self.store.ledger_nodes(&flat).await?;
        let mut at = 0;
        Ok(plan
            .iter()
            .map(|range| {
                let h = fold_range(&hashes[at..at + range.len()]);
                at += range.len();
                to_hex(&h)
            })
            .collect())
    }

    /// Proves that record `seq` is in the tree of `tree_size` records
    /// (default: the newest signed tree head).
    pub async fn inclusion_proof(
        &self,
        ctx: &Ctx,
        seq: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof> {
        self.authorize(
            ctx,
            Action::ReadAuditProof,
            "audit.proof",
            &format!("audit:{seq}"),
        )
        .await?;
        let (tree_size, tree_head) = match tree_size {
            Some(size) => (size, self.store.tree_head(size).await?),
            None => {
                let head = self.tree_head().await?;
                (head.tree_size, Some(head))
            }
        };
        let current = self.store.ledger_head().await?.size();
        // No such proof exists: a record past the tree, or a tree the
        // ledger has not reached.
        if tree_size > current || seq >= tree_size {
            return Err(HubError::NotFound(format!(
                "a proof of record {seq} in a tree of {tree_size} records (the ledger holds {current})"
            )));
        }
        let plan = inclusion_plan(seq, tree_size)
            .ok_or_else(|| HubError::BadRequest("no such proof".into()))?;
        let leaf = self
            .store
            .ledger_nodes(&[NodeId {
                level: 0,
                index: seq,
            }])
            .await?;
        Ok(InclusionProof {
            seq,
            tree_size,
            leaf_hash: to_hex(&leaf[0]),
            proof: self.resolve(plan).await?,
            tree_head,
        })
    }

    /// Proves that the tree of `first` records is a prefix of the tree of
    /// `second` records. Public: it reveals only hashes.
    pub async fn consistency_proof(&self, first: u64, second: u64) -> Result<ConsistencyProof> {
        let current = self.store.ledger_head().await?.size();
        if first > second || second > current {
            return Err(HubError::NotFound(format!(
                "a proof that the tree of {first} records is a prefix of the tree of {second} (first <= second <= {current}, the ledger's size)"
            )));
        }
        let plan = consistency_plan(first, second)
            .ok_or_else(|| HubError::BadRequest("no such proof".into()))?;
        Ok(ConsistencyProof {
            first,
            second,
            proof: self.resolve(plan).await?,
        })
    }

    /// A security auditor's search; the search itself is audited. An
    /// auditor outside the hub operator sees her institution's records only.
    pub async fn search_audit(&self, ctx: &Ctx, mut query: AuditQuery) -> Result<Vec<AuditRecord>> {
        let (permit, mut entry) = self
            .authorize_with_permit(ctx, Action::SearchAudit, "audit.search", "audit")
            .await?;
        if let Some(only) = permit.only_institution {
            query.institution = Some(only);
        }
        entry.subject = query.subject.clone();
        Ok(self.store.search_audit(query, entry).await?)
    }

    pub async fn audit_record(&self, ctx: &Ctx, seq: u64) -> Result<AuditRecord> {
        let (permit, entry) = self
            .authorize_with_permit(
                ctx,
                Action::SearchAudit,
                "audit.read",
                &format!("audit:{seq}"),
            )
            .await?;
        let record = self.store.audit_record(seq, entry).await?;
        record
            .filter(|r| {
                permit
                    .only_institution
                    .is_none_or(|only| r.entry.institution == Some(only))
            })
            .ok_or_else(|| HubError::NotFound(format!("audit record {seq}")))
    }
}

/// What verification found wrong: the first problem, in ledger order.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("record {seq} is missing{}", if found > seq { format!(" (the next stored record is {found})") } else { " (removed from the end of the ledger)".to_owned() })]
    Missing { seq: u64, found: u64 },
    #[error("record {seq} was inserted: the ledger head covers only {head} records")]
    Inserted { seq: u64, head: u64 },
    #[error("record {seq} was changed: its contents no longer match the hash the ledger recorded for it")]
    Changed { seq: u64 },
    #[error("record {seq} was changed: {what}")]
    Unreadable { seq: u64, what: String },
    #[error("ledger node {level}/{index} (completed by record {seq}) is missing or was changed")]
    NodeChanged { seq: u64, level: u32, index: u64 },
    #[error("the ledger holds a node that no record explains (completed by record {seq}, level {level})")]
    ExtraNode { seq: u64, level: u32 },
    #[error("the tree head signed for {size} records does not match the records: a record before {size} was changed, removed, inserted or reordered")]
    TreeHeadMismatch { size: u64 },
    #[error("the tree head for {size} records is not validly signed: {reason}")]
    TreeHeadSignature { size: u64, reason: String },
    #[error("a tree head was signed for {size} records but the ledger holds {records}: records were removed from its end")]
    TreeHeadBeyond { size: u64, records: u64 },
    #[error("the ledger head's root does not match the records")]
    HeadRootMismatch,
    #[error("exchange log entry {0} was changed, removed, inserted or reordered")]
    ExchangeLog(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a successful verification checked.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub records: u64,
    pub root: Hash,
    /// Signed tree heads checked: stored ones and witnesses.
    pub tree_heads: usize,
    /// Records appended after the newest signed tree head.
    pub unsigned_tail: u64,
    pub key_id: String,
}

/// Recomputes the ledger from its records and checks every stored leaf and
/// node, the head, every signed tree head in the database and every
/// `witness` (tree heads kept outside it, e.g. fetched earlier from
/// `/api/v1/audit/tree-head`), all signatures with `trusted_key`. Returns
/// the first problem found.
///
/// It may run against a live hub: tree heads are read first and the head
/// after them, and the prefix the head covers is verified; records appended
/// meanwhile are left for the next run.
pub async fn verify_ledger(
    store: &Store,
    trusted_key: &VerifyingKey,
    witnesses: &[SignedTreeHead],
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport, VerifyError> {
    let mut heads = store.tree_heads().await?;
    heads.extend_from_slice(witnesses);
    heads.sort_by_key(|h| h.tree_size);
    for h in &heads {
        h.verify(trusted_key)
            .map_err(|e| VerifyError::TreeHeadSignature {
                size: h.tree_size,
                reason: e.to_string(),
            })?;
    }
    let head = store.ledger_head().await?;
    let size = head.size();
    // Every tree head was signed over a ledger at most this long.
    if let Some(h) = heads.iter().find(|h| h.tree_size > size) {
        return Err(VerifyError::TreeHeadBeyond {
            size: h.tree_size,
            records: size,
        });
    }
    let mut pending_heads = heads.iter().peekable();
    // A tree head of the empty tree is checked at once.
    while let Some(h) = pending_heads.peek().filter(|h| h.tree_size == 0) {
        if h.root().ok() != Some(Frontier::default().root()) {
            return Err(VerifyError::TreeHeadMismatch { size: 0 });
        }
        pending_heads.next();
    }

    let mut frontier = Frontier::default();
    let mut records = store.stream_audit_records(size);
    let mut nodes = store.stream_ledger_nodes(size);
    while let Some(record) = records.next().await {
        let record = record.map_err(|e| match e {
            StoreError::BadRecord { seq, what } => VerifyError::Unreadable { seq, what },
            other => other.into(),
        })?;
        let expected = frontier.size();
        if record.seq != expected {
            return Err(VerifyError::Missing {
                seq: expected,
                found: record.seq,
            });
        }
        for (id, hash) in frontier.push(record_leaf_hash(&record)) {
            let stored = nodes.next().await.transpose()?;
            let matches = matches!(&stored, Some((seq, level, h)) if *seq == id.completed_by() && *level == id.level && h.as_slice() == hash);
            if !matches {
                return Err(if id.level == 0 {
                    VerifyError::Changed { seq: record.seq }
                } else {
                    VerifyError::NodeChanged {
                        seq: record.seq,
                        level: id.level,
                        index: id.index,
                    }
                });
            }
        }
        while let Some(h) = pending_heads
            .peek()
            .filter(|h| h.tree_size == frontier.size())
        {
            if h.root().ok() != Some(frontier.root()) {
                return Err(VerifyError::TreeHeadMismatch { size: h.tree_size });
            }
            pending_heads.next();
        }
        progress(frontier.size());
    }
    if frontier.size() < size {
        return Err(VerifyError::Missing {
            seq: frontier.size(),
            found: frontier.size(),
        });
    }
    if let Some((seq, level, _)) = nodes.next().await.transpose()? {
        return Err(VerifyError::ExtraNode { seq, level });
    }
    if head.root() != frontier.root() {
        return Err(VerifyError::HeadRootMismatch);
    }
    // Records the head does not cover, beyond what a hub appended since:
    // counted first, so an honest append can only make the head larger.
    let stored = store.count_audit_records().await?;
    let now = store.ledger_head().await?.size();
    if stored > now {
        return Err(VerifyError::Inserted {
            seq: now,
            head: now,
        });
    }
    let signed = heads.last().map(|h| h.tree_size).unwrap_or(0);
    Ok(VerifyReport {
        records: size,
        root: frontier.root(),
        tree_heads: heads.len(),
        unsigned_tail: size - signed,
        key_id: key_id(trusted_key),
    })
}

/// Checks the hub's exchange log is one unbroken hash chain; returns its
/// length, or the first entry that was changed, removed, inserted or
/// reordered. Reads it in pages.
pub async fn verify_exchange_log(store: &Store) -> Result<u64, VerifyError> {
    use civic_store::ExchangeLogStore;
    const PAGE: u64 = 10_000;
    let mut prev: Option<civic_exchange::LogEntry> = None;
    let mut seen = 0u64;
    loop {
        let page = store.exchange_log(seen, PAGE).await?;
        if page.is_empty() {
            return Ok(seen);
        }
        for e in page {
            let expected = civic_exchange::LogEntry::next(
                prev.as_ref(),
                e.at,
                e.direction,
                &e.request_id,
                &e.peer,
                e.message_digest.clone(),
            );
            if expected != e {
                return Err(VerifyError::ExchangeLog(seen));
            }
            seen += 1;
            prev = Some(e);
        }
    }
}
