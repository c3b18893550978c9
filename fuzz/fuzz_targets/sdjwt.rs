//! Credentials as an agency or the hub verifies them: an SD-JWT VC as
//! received, the same with a payload and disclosures the holder's own key
//! signed (so that the claims' processing is reached past the signature),
//! and a holder's signed status list.
#![no_main]

use civic_credentials::{Issuer, StatusList};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let issuer = Issuer::new(SigningKey::from_bytes(&[4u8; 32]), "https://hub/issuers/node-mois");
    let keys = issuer.jwks();
    let now = 1_800_000_000;
    let text = String::from_utf8_lossy(rest);
    match selector % 3 {
        0 => {
            let _ = civic_credentials::sdjwt::verify(&text, &keys, now);
        }
        1 => {
            // payload JSON, then `~`-separated disclosures.
            let (payload, disclosures) = text.split_once('~').unwrap_or((&text, ""));
            if let Ok(payload) = serde_json::from_str(payload) {
                let jws = issuer.sign_jws("dc+sd-jwt", &payload);
                let compact = format!("{jws}~{disclosures}");
                if let Ok(verified) = civic_credentials::sdjwt::verify(&compact, &keys, now) {
                    let _ = verified.status();
                }
            }
        }
        _ => {
            let uri = "https://hub/issuers/node-mois/status-list";
            if let Ok(payload) = serde_json::from_str(&text) {
                let token = issuer.sign_jws("statuslist+jwt", &payload);
                if let Ok(list) = StatusList::from_token(&token, &keys, uri, now) {
                    let _ = list.is_revoked(u64::from(rest.len() as u32) * 7);
                }
            }
            let _ = StatusList::from_token(&text, &keys, uri, now);
        }
    }
});
