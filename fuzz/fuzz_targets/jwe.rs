//! A package as the agency opens it: any compact JWE, and every plaintext
//! encrypted to the agency's key, which must open to itself.
#![no_main]

use civic_credentials::{EncryptionJwk, Jwk};
use libfuzzer_sys::fuzz_target;
use x25519_dalek::{PublicKey, StaticSecret};

fuzz_target!(|data: &[u8]| {
    let secret = StaticSecret::from([6u8; 32]);
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        let _ = civic_credentials::jwe::decrypt(&String::from_utf8_lossy(rest), &secret);
    } else {
        let jwk: EncryptionJwk = Jwk::x25519(&PublicKey::from(&secret));
        let sealed = civic_credentials::jwe::encrypt(rest, &jwk, "dc+sd-jwt").expect("encrypts");
        let (opened, cty) = civic_credentials::jwe::decrypt(&sealed, &secret).expect("opens");
        assert_eq!(opened, rest);
        assert_eq!(cty, "dc+sd-jwt");
    }
});
