//! What travels between hub and nodes: a request's envelope and signed
//! grant as a node reads them, the grant itself as the hub's own key
//! signed it (so the node's policy checks past the signatures are reached
//! too), a request's body of exposure windows, and a streamed answer as
//! the hub reads it, cut anywhere.
#![no_main]

use civic_exchange::wire::AnswerReader;
use civic_exchange::{Envelope, Grant, NodeGate, NodePolicy, Role, SignedGrant, TrustedKey};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fn gate(hub: &SigningKey) -> NodeGate {
    let policy = NodePolicy {
        holder: "node-skt".into(),
        gives: [(
            "epidemic investigation".to_owned(),
            [civic_exchange::Item::LocationPings].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
        max_period_days: 30,
        hub_certified_endorsers: true,
    };
    NodeGate::new(
        policy,
        [TrustedKey {
            key: hub.verifying_key(),
            role: Role::Hub,
        }],
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let hub = SigningKey::from_bytes(&[3u8; 32]);
    let now = 1_583_020_800;
    match selector % 4 {
        0 => {
            if let Ok(envelope) = serde_json::from_slice::<Envelope>(rest) {
                let _ = envelope.open(&hub.verifying_key(), b"{}", now);
                if let Some(grant) = &envelope.grant {
                    let _ = gate(&hub).admit(grant, &envelope.request_id, now);
                }
            }
        }
        1 => {
            // A grant the trusted hub signed, whatever it says, and a body.
            let (grant, body) = match rest.iter().position(|b| *b == 0) {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &b""[..]),
            };
            if let Ok(grant) = serde_json::from_slice::<Grant>(grant) {
                let signed = SignedGrant::new(grant).endorse(Role::Hub, "hub.civic", &hub);
                let body = String::from_utf8_lossy(body);
                let mut gate = gate(&hub);
                if gate.admit_request(&signed, "request-1", now, &body).is_ok() {
                    // A grant is used once: a second request is refused.
                    assert!(gate.admit_request(&signed, "request-2", now, &body).is_err());
                }
            }
        }
        2 => {
            if let Ok(signed) = serde_json::from_slice::<SignedGrant>(rest) {
                let _ = gate(&hub).admit(&signed, "request-1", now);
            }
        }
        _ => {
            // An answer streamed in pieces of every size the input says.
            let mut reader = AnswerReader::default();
            let mut parts = 0usize;
            let (sizes, body) = rest.split_at(rest.len().min(8));
            let mut at = 0;
            for &size in sizes.iter().cycle() {
                if at >= body.len() {
                    break;
                }
                let end = (at + 1 + size as usize).min(body.len());
                if reader.push(&body[at..end], |_| parts += 1).is_err() {
                    return;
                }
                at = end;
            }
            assert_eq!(reader.parts(), parts);
            let _ = reader.finish();
        }
    }
});
