//! What security auditors watch beside the ledger's records: whether the
//! ledger still verifies (run on demand, the last result kept), and who
//! looks up far more cases than their peers.
//!
//! Both read only the ledger (names of actors and case numbers as
//! resources, no personal data of patients) and are audited themselves.

use crate::ledger::{verify_ledger, VerifyError};
use crate::{Ctx, Hub, HubError, Result};
use civic_core::audit::Outcome;
use civic_core::policy::Action;
use civic_core::time::Timestamp;
use civic_ledger::SignedTreeHead;
use civic_store::{AuditStore, MetaStore};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

const LAST_CHECK_META: &str = "audit.last_verification";

/// The outcome of a full verification of the ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerCheck {
    /// RFC 3339.
    pub checked_at: String,
    pub verified: bool,
    /// Records verified (the prefix the ledger head covered).
    pub records: u64,
    /// Signed tree heads whose signatures and roots were checked.
    pub tree_heads: usize,
    /// Records appended after the newest signed tree head.
    pub unsigned_tail: u64,
    /// The first problem found, if any.
    pub problem: Option<String>,
}

/// The ledger's state for auditors.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerStatus {
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub tree_head: SignedTreeHead,
    /// Hex Ed25519 key the tree heads are signed with.
    pub public_key: String,
    pub last_verification: Option<LedgerCheck>,
}

/// One official's look-ups of cases in a period.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessPattern {
    pub actor: i64,
    pub actor_name: String,
    /// Distinct cases looked up.
    pub cases: u64,
    /// Look-ups in all (requests that read a case).
    pub lookups: u64,
    /// Reads of a whole response: its case list, its contacts.
    pub bulk_reads: u64,
    /// The median of distinct cases read by the other officials.
    pub peer_median: f64,
    /// `cases` over `peer_median`.
    pub ratio_to_median: f64,
    /// Far more cases than peers: over three times the median and at least
    /// ten more.
    pub unusual: bool,
}

/// Who looked up cases in a period, most first.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessPatterns {
    pub from: String,
    pub until: String,
    /// The median of distinct cases per official, all of them.
    pub median_cases: f64,
    pub actors: Vec<AccessPattern>,
}

impl Hub {
    /// The newest signed tree head and the last verification.
    pub async fn ledger_status(&self, ctx: &Ctx) -> Result<LedgerStatus> {
        let entry = self
            .authorize(ctx, Action::SearchAudit, "audit.status", "audit")
            .await?;
        let tree_head = self.tree_head().await?;
        let last_verification = self
            .store
            .meta(LAST_CHECK_META)
            .await?
            .and_then(|s| serde_json::from_str(&s).ok());
        self.store.append_audit(entry).await?;
        Ok(LedgerStatus {
            tree_head,
            public_key: self.public_key_hex(),
            last_verification,
        })
    }

    /// Verifies the whole ledger now, as `civic audit verify` does, with
    /// the hub's own key; keeps and returns the result. A ledger that fails
    /// is a finding, not an error: the result says what is wrong.
    pub async fn verify_ledger_now(&self, ctx: &Ctx) -> Result<LedgerCheck> {
        // The attempt is recorded before the scan: a check cut short (a
        // timeout, a stop) still leaves its trace.
        let entry = self
            .authorize(ctx, Action::SearchAudit, "audit.verify", "audit")
            .await?;
        self.store.append_audit(entry.clone()).await?;
        let key = self.keys().signing_key().verifying_key();
        let check = match verify_ledger(&self.store, &key, &[], |_| {}).await {
            Ok(report) => LedgerCheck {
                checked_at: Timestamp::now().to_rfc3339(),
                verified: true,
                records: report.records,
                tree_heads: report.tree_heads,
                unsigned_tail: report.unsigned_tail,
                problem: None,
            },
            // The database failing is not the ledger failing.
            Err(VerifyError::Store(e)) => return Err(e.into()),
            Err(e) => {
                let mut failed = entry;
                failed.action = "audit.verify.failed".into();
                failed.outcome = Outcome::Failed;
                failed.reason = Some("the ledger does not verify".into());
                self.store.append_audit(failed).await?;
                LedgerCheck {
                    checked_at: Timestamp::now().to_rfc3339(),
                    verified: false,
                    records: 0,
                    tree_heads: 0,
                    unsigned_tail: 0,
                    problem: Some(e.to_string()),
                }
            }
        };
        let json = serde_json::to_string(&check).expect("a check serialises");
        self.store.set_meta(LAST_CHECK_META, &json).await?;
        Ok(check)
    }

    /// Each official's reads of cases (allowed reads of a `case:`
    /// resource) between `from` and `until`, flagged when far above the
    /// median of the other officials who read any; reads of a whole
    /// response (its case list, its contacts) are counted beside them.
    pub async fn access_patterns(
        &self,
        ctx: &Ctx,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<AccessPatterns> {
        if from > until {
            return Err(HubError::BadRequest("from is after until".into()));
        }
        let (permit, entry) = self
            .authorize_with_permit(ctx, Action::SearchAudit, "audit.patterns", "audit")
            .await?;
        let below = self.store.count_audit_records().await?;
        #[derive(Default)]
        struct Tally {
            name: String,
            cases: BTreeSet<String>,
            // One request may write several records of the same case: a
            // look-up is a request.
            lookups: BTreeSet<String>,
            bulk: BTreeSet<String>,
        }
        let mut per_actor: BTreeMap<i64, Tally> = BTreeMap::new();
        let mut records = self.store.stream_audit_records(below);
        while let Some(record) = records.next().await {
            let record = record?;
            let e = record.entry;
            let Some(actor) = e.actor else { continue };
            let case = e.resource.starts_with("case:");
            let response = e.resource.starts_with("response:");
            if e.outcome != Outcome::Allowed
                || e.at < from
                || e.at > until
                || !is_read(&e.action)
                || !(case || response)
                || permit
                    .only_institution
                    .is_some_and(|only| e.institution != Some(only))
            {
                continue;
            }
            let tally = per_actor.entry(actor.0).or_default();
            if tally.name.is_empty() {
                tally.name = e.actor_name.clone().unwrap_or_default();
            }
            let request = e
                .request_id
                .clone()
                .unwrap_or_else(|| format!("record:{}", record.seq));
            if case {
                tally.cases.insert(e.resource);
                tally.lookups.insert(request);
            } else {
                tally.bulk.insert(request);
            }
        }
        drop(records);
        per_actor.retain(|_, t| !t.cases.is_empty() || !t.bulk.is_empty());
        let counts: Vec<u64> = per_actor.values().map(|t| t.cases.len() as u64).collect();
        let median_cases = median(counts.clone());
        let mut actors: Vec<AccessPattern> = per_actor
            .into_iter()
            .enumerate()
            .map(|(i, (actor, tally))| {
                let cases = tally.cases.len() as u64;
                // Set against the others, not against a median it pulls up.
                let peers: Vec<u64> = counts
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, c)| *c)
                    .collect();
                let peer_median = median(peers.clone());
                AccessPattern {
                    actor,
                    actor_name: tally.name,
                    cases,
                    lookups: tally.lookups.len() as u64,
                    bulk_reads: tally.bulk.len() as u64,
                    peer_median,
                    ratio_to_median: if peer_median > 0.0 {
                        cases as f64 / peer_median
                    } else {
                        0.0
                    },
                    unusual: !peers.is_empty() && is_unusual(cases, peer_median),
                }
            })
            .collect();
        actors.sort_by(|a, b| b.cases.cmp(&a.cases).then(a.actor.cmp(&b.actor)));
        self.store.append_audit(entry).await?;
        Ok(AccessPatterns {
            from: from.to_rfc3339(),
            until: until.to_rfc3339(),
            median_cases,
            actors,
        })
    }
}

/// Whether an audited action read data (not wrote it).
fn is_read(action: &str) -> bool {
    action.ends_with(".read")
        || action.ends_with(".list")
        || matches!(action, "eiss.case.timeline" | "eiss.case.follow")
}

fn median(mut counts: Vec<u64>) -> f64 {
    counts.sort_unstable();
    match counts.len() {
        0 => 0.0,
        n if n % 2 == 1 => counts[n / 2] as f64,
        n => (counts[n / 2 - 1] + counts[n / 2]) as f64 / 2.0,
    }
}

/// Far more than the peers' median: over three times it and at least ten
/// cases more.
fn is_unusual(cases: u64, peer_median: f64) -> bool {
    cases as f64 > 3.0 * peer_median && cases as f64 >= peer_median + 10.0
}

#[cfg(test)]
mod tests {
    use super::{is_read, is_unusual, median};

    #[test]
    fn only_far_more_than_peers_is_unusual() {
        assert!(is_unusual(40, 5.0));
        assert!(is_unusual(12, 0.0), "peers who looked up nothing");
        assert!(!is_unusual(13, 4.0), "three times, but not ten more");
        assert!(!is_unusual(30, 15.0), "ten more, but not three times");
    }

    #[test]
    fn only_reads_count() {
        for read in [
            "eiss.case.read",
            "eiss.case.timeline",
            "eiss.contacts.read",
            "eiss.case.list",
        ] {
            assert!(is_read(read), "{read}");
        }
        for write in [
            "eiss.case.assign",
            "eiss.case.interview",
            "eiss.request.create",
        ] {
            assert!(!is_read(write), "{write}");
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![7, 1, 3]), 3.0);
        assert_eq!(median(vec![4, 1, 3, 10]), 3.5);
    }
}
