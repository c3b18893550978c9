//! The values request bodies carry, parsed as the hub parses them: names,
//! regions, duties, subjects and free text; a response's rules; a case's
//! subject; a JWK and an agency's key; an inclusion or consistency proof
//! an auditor brings. Each is refused or read, never a panic.
#![no_main]

use civic_core::identity::{Duty, Name, Region, Subject, Username};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match selector % 6 {
        0 => {
            let _ = Username::parse(&text);
            let _ = Region::parse(&text);
            let _ = Subject::parse(&text);
            let _ = Name::parse("name", &text);
            let _ = civic_core::investigation::parse_reason(&text);
            if let Ok(duty) = Duty::parse(&text) {
                // What parses prints back to itself.
                assert_eq!(Duty::parse(&duty.to_string()).ok(), Some(duty));
            }
        }
        1 => {
            if let Ok(rules) = serde_json::from_slice::<civic_eiss::Rules>(rest) {
                if rules.check().is_ok() {
                    let _ = rules.utc_offset();
                }
            }
        }
        2 => {
            let _ = serde_json::from_slice::<civic_eiss::formats::Subject>(rest);
        }
        3 => {
            if let Ok(jwk) = serde_json::from_slice::<civic_credentials::Jwk>(rest) {
                let _ = jwk.public_key();
                let _ = jwk.verifying_key();
            }
        }
        4 => {
            // An inclusion proof: index, size, then 32-byte hashes.
            if rest.len() >= 16 {
                let index = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
                let size = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
                let hashes: Vec<[u8; 32]> = rest[16..]
                    .chunks_exact(32)
                    .map(|c| c.try_into().expect("32 bytes"))
                    .collect();
                if let Some((root, proof)) = hashes.split_first() {
                    let leaf = civic_ledger::leaf_hash(b"record");
                    let _ = civic_ledger::verify_inclusion(&leaf, index, size, proof, root);
                }
            }
        }
        _ => {
            if rest.len() >= 16 {
                let old = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
                let new = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
                let hashes: Vec<[u8; 32]> = rest[16..]
                    .chunks_exact(32)
                    .map(|c| c.try_into().expect("32 bytes"))
                    .collect();
                if hashes.len() >= 2 {
                    let _ = civic_ledger::verify_consistency(
                        old,
                        new,
                        &hashes[0],
                        &hashes[1],
                        &hashes[2..],
                    );
                }
            }
        }
    }
});
