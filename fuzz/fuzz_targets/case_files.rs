//! The health authority's files as the hub reads them: a case register,
//! and case routes or interviews (the case-route format), with default
//! rules. Refused or read, never a panic; what is read is in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rules = civic_eiss::Rules::default();
    if let Ok(cases) = civic_eiss::formats::case_register(text) {
        for c in cases {
            // An onset, when given, is no later than confirmation; an
            // estimate from the rules is too.
            assert!(c.onset.is_none_or(|onset| onset <= c.confirmed));
            assert!(rules.estimated_onset(c.confirmed) <= c.confirmed);
            assert!(!c.number.is_empty());
        }
    }
    if let Ok(rows) = civic_eiss::formats::case_routes(text, &rules) {
        for (_, place) in rows {
            assert!(place.lat.abs() <= 90.0 && place.lon.abs() <= 180.0);
            assert!(place.start <= place.end);
        }
    }
});
