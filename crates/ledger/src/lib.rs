//! The audit ledger's cryptography: an RFC 6962 (RFC 9162 §2.1) Merkle tree
//! over the audit records, tree heads signed with the hub's Ed25519 key,
//! and inclusion and consistency proofs.
//!
//! Storage keeps every *perfect* subtree hash (a [`NodeId`]) as it is
//! completed, so a root or a proof needs only O(log n) stored nodes: see
//! [`Frontier`] for appending and [`inclusion_plan`] / [`consistency_plan`]
//! for proofs. Verification ([`verify_inclusion`], [`verify_consistency`])
//! needs nothing but the proof and a tree head.
//!
//! This crate does no I/O.

mod leaf;
mod merkle;
mod tree_head;

pub use leaf::{leaf_bytes, record_leaf_hash};
pub use merkle::*;
pub use tree_head::{key_id, HubSigner, SignedTreeHead, TreeHeadError};
