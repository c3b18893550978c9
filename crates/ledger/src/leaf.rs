//! The canonical bytes of an audit record, which its leaf hash covers.
//!
//! Format (version 1): the byte `0x01`, then every field in a fixed order,
//! each as a 4-byte big-endian length and its UTF-8 bytes, or `0xFFFFFFFF`
//! for an absent field. Numbers are written in decimal. The sequence number
//! is covered, so moving a record to another position changes its hash.

use crate::merkle::{leaf_hash, Hash};
use civic_core::audit::AuditRecord;

pub fn leaf_bytes(record: &AuditRecord) -> Vec<u8> {
    let e = &record.entry;
    let mut out = Vec::with_capacity(256);
    out.push(1u8);
    let fields: [Option<String>; 16] = [
        Some(record.seq.to_string()),
        Some(e.at.micros().to_string()),
        e.actor.map(|a| a.0.to_string()),
        e.actor_name.clone(),
        e.institution.map(|i| i.0.to_string()),
        e.duty.map(|d| d.as_str().to_owned()),
        Some(e.action.clone()),
        Some(e.resource.clone()),
        e.subject.clone(),
        e.purpose.clone(),
        e.legal_basis.clone(),
        e.grant_id.clone(),
        Some(e.outcome.as_str().to_owned()),
        e.reason.clone(),
        e.client_addr.clone(),
        e.request_id.clone(),
    ];
    for field in fields {
        match field {
            Some(value) => {
                let len = u32::try_from(value.len()).unwrap_or(u32::MAX - 1);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&value.as_bytes()[..len as usize]);
            }
            None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        }
    }
    out
}

pub fn record_leaf_hash(record: &AuditRecord) -> Hash {
    leaf_hash(&leaf_bytes(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use civic_core::audit::{AuditEntry, Outcome};

    #[test]
    fn every_field_and_the_position_are_covered() {
        let record = AuditRecord {
            seq: 3,
            entry: AuditEntry::new("auth.login", "user:1", Outcome::Allowed),
        };
        let base = record_leaf_hash(&record);
        let moved = AuditRecord {
            seq: 4,
            ..record.clone()
        };
        assert_ne!(record_leaf_hash(&moved), base);
        let mut changed = record.clone();
        changed.entry.outcome = Outcome::Failed;
        assert_ne!(record_leaf_hash(&changed), base);
        // Absent and empty are different.
        let mut empty = record.clone();
        empty.entry.subject = Some(String::new());
        assert_ne!(record_leaf_hash(&empty), base);
    }
}
