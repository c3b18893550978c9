//! The exchange protocol between the hub and the institution nodes.
//!
//! A node obeys only grants. A [`Grant`] names who asks whom for what, for
//! which purpose and legal basis, about which case or consent, which items,
//! which question, which time window, and until when it is valid. It
//! carries [`Endorsement`]s: the hub's signature, and those of the people
//! the rules require (for location data, an approver of the health
//! authority **and** a police location officer). The node checks all of it
//! itself ([`NodeGate::admit`]) against keys it trusts and its own policy,
//! and refuses anything else with a reason ([`Refusal`]).
//!
//! Every request travels in a signed [`Envelope`]: request id, sender key,
//! timestamp, body digest, grant. A request id answers once: a retry of the
//! same request (same id, same body) is recognised as such (idempotency),
//! while a grant reused for another request is a replay and is refused.
//!
//! Each side keeps a [`MessageLog`] of what it sent and received: a hash
//! chain whose signed heads the other side keeps as witnesses.
//!
//! This crate does no I/O; the node's server (civic-node-server) keeps the
//! [`NodeGate`]'s state and the log durable.

mod envelope;
mod grant;
pub mod log;
pub mod trust;
pub mod wire;

pub use envelope::{Envelope, EnvelopeError};
pub use grant::*;
pub use log::{message_digest, Direction, LogEntry, LogError, LogHead, MessageLog};

/// A small number derived from a request id and an attempt, for spreading
/// retries without a random source.
pub fn key_id_jitter(request_id: &str, attempt: u64) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("{request_id}/{attempt}").as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}
