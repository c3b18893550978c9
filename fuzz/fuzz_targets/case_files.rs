//! The health authority's files as the hub reads them: a case register,
//! and case routes or interviews (the case-route format), with default
//! rules. Refused or read, never a panic; what is read is in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cases) = civic_eiss::formats::case_register(text) {
        for c in cases {
            assert!(c.onset <= c.confirmed);
            assert!(!c.number.is_empty());
        }
    }
    let rules = civic_eiss::Rules::default();
    if let Ok(rows) = civic_eiss::formats::case_routes(text, &rules) {
        for (_, place) in rows {
            assert!(place.lat.abs() <= 90.0 && place.lon.abs() <= 180.0);
            assert!(place.start <= place.end);
        }
    }
});
