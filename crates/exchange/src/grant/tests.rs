use super::*;

struct World {
    hub: SigningKey,
    approver: SigningKey,
    police: SigningKey,
    gate: NodeGate,
}

fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn world() -> World {
    let (hub, approver, police) = (key(), key(), key());
    let policy = NodePolicy {
        holder: "SK Telecom".into(),
        gives: BTreeMap::from([(
            "epidemic investigation".into(),
            BTreeSet::from([Item::LocationPings]),
        )]),
        max_period_days: 21,
        hub_certified_endorsers: true,
    };
    let gate = NodeGate::new(
        policy,
        [
            TrustedKey {
                key: hub.verifying_key(),
                role: Role::Hub,
            },
            TrustedKey {
                key: approver.verifying_key(),
                role: Role::HealthApprover,
            },
            TrustedKey {
                key: police.verifying_key(),
                role: Role::PoliceLocationOfficer,
            },
        ],
    );
    World {
        hub,
        approver,
        police,
        gate,
    }
}

const NOW: i64 = 1_583_500_000;

fn grant() -> Grant {
    Grant {
        grant_id: "g-1".into(),
        requester: "Korea Disease Control and Prevention Agency".into(),
        holder: "SK Telecom".into(),
        purpose: "epidemic investigation".into(),
        legal_basis: "Infectious Disease Control and Prevention Act, art. 76-2".into(),
        case_id: Some("1042".into()),
        consent_id: None,
        items: vec![Item::LocationPings],
        question: Question::Exposure {
            windows: vec![ExposureWindow {
                lat: 37.56,
                lon: 126.98,
                radius_m: 500.0,
                t_start: NOW - 86_400,
                t_end: NOW - 80_000,
            }],
        },
        data_from: NOW - 14 * 86_400,
        data_until: NOW,
        issued_at: NOW - 60,
        expires_at: NOW + 86_400,
    }
}

fn endorsed(w: &World, g: Grant) -> SignedGrant {
    SignedGrant::new(g)
        .endorse(Role::Hub, "hub", &w.hub)
        .endorse(Role::HealthApprover, "approver", &w.approver)
        .endorse(Role::PoliceLocationOfficer, "police", &w.police)
}

#[test]
fn a_fully_endorsed_grant_is_admitted_once_and_its_retry_recognised() {
    let mut w = world();
    let signed = endorsed(&w, grant());
    // As it travels: JSON, floats included, must verify on arrival.
    let signed: SignedGrant =
        serde_json::from_str(&serde_json::to_string(&signed).unwrap()).unwrap();
    assert!(!w.gate.admit(&signed, "r-1", NOW).unwrap().retry);
    assert!(
        w.gate.admit(&signed, "r-1", NOW).unwrap().retry,
        "the same request again is a retry"
    );
    assert_eq!(
        w.gate.admit(&signed, "r-2", NOW),
        Err(Refusal::Replayed("r-1".into()))
    );
}

#[test]
fn grants_with_any_coordinates_verify_after_travelling_as_json() {
    // Signatures cover the grant's JSON as re-serialised on arrival: a
    // float that did not read back to the same bits would break them.
    let w = world();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let windows = (0..2000)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = (x >> 11) as f64 / (1u64 << 53) as f64;
            ExposureWindow {
                lat: 37.50 + (i % 10) as f64 * 0.01 + f * 1e-7,
                lon: 126.95 + f,
                radius_m: 3000.0 * f,
                t_start: NOW - 86_400,
                t_end: NOW - 80_000,
            }
        })
        .collect();
    let signed = endorsed(
        &w,
        Grant {
            question: Question::Exposure { windows },
            ..grant()
        },
    );
    let travelled: SignedGrant =
        serde_json::from_slice(&serde_json::to_vec(&signed).unwrap()).unwrap();
    assert_eq!(
        travelled.grant.signing_bytes(),
        signed.grant.signing_bytes()
    );
    let mut gate = w.gate;
    assert!(gate.admit(&travelled, "r-1", NOW).is_ok());
}

#[test]
fn endorsements_by_hub_certified_keys_pass_only_as_certified() {
    let w = world();
    let (approver, officer) = (key(), key());
    let cert = |role, k: &SigningKey, from: i64, until: i64| {
        EndorserCertificate::issue(
            &w.hub,
            role,
            "someone",
            "an institution",
            role.institution_kind(),
            &k.verifying_key(),
            from,
            until,
        )
    };
    let valid = |role, k: &SigningKey| cert(role, k, NOW - 60, NOW + 3600);
    let hub_signed = || SignedGrant::new(grant()).endorse(Role::Hub, "hub", &w.hub);
    let good = hub_signed()
        .endorse_certified(valid(Role::HealthApprover, &approver), &approver)
        .endorse_certified(valid(Role::PoliceLocationOfficer, &officer), &officer);
    // As it travels.
    let good: SignedGrant = serde_json::from_slice(&serde_json::to_vec(&good).unwrap()).unwrap();
    let mut gate = w.gate.clone();
    assert!(gate.admit(&good, "r-1", NOW).is_ok());

    // A node that takes only the keys it lists.
    let mut strict = w.gate.clone();
    strict.policy.hub_certified_endorsers = false;
    assert!(matches!(
        strict.admit(&good, "r-1", NOW),
        Err(Refusal::UntrustedKey(_))
    ));

    let refused = |g: SignedGrant| w.gate.clone().admit(&g, "r-2", NOW);
    // The approver's certificate does not make her a police officer.
    let as_police = hub_signed()
        .endorse_certified(valid(Role::HealthApprover, &approver), &approver)
        .endorse_certified(valid(Role::HealthApprover, &officer), &officer);
    assert!(matches!(
        refused(as_police),
        Err(Refusal::MissingEndorsement(Role::PoliceLocationOfficer, _))
    ));
    let mut relabelled = valid(Role::HealthApprover, &officer);
    relabelled.role = Role::PoliceLocationOfficer;
    let forged_role = hub_signed()
        .endorse_certified(valid(Role::HealthApprover, &approver), &approver)
        .endorse_certified(relabelled, &officer);
    assert!(matches!(
        refused(forged_role),
        Err(Refusal::BadCertificate(_, "its signature does not verify"))
    ));
    // A certificate from anyone but the hub, out of date, or for another key.
    let stranger = key();
    let by_stranger = EndorserCertificate::issue(
        &stranger,
        Role::HealthApprover,
        "x",
        "y",
        "health_authority",
        &approver.verifying_key(),
        NOW - 60,
        NOW + 60,
    );
    assert!(matches!(
        refused(hub_signed().endorse_certified(by_stranger, &approver)),
        Err(Refusal::BadCertificate(_, "it is not issued by the hub"))
    ));
    let expired = cert(Role::HealthApprover, &approver, NOW - 7200, NOW - 3600);
    assert!(matches!(
        refused(hub_signed().endorse_certified(expired, &approver)),
        Err(Refusal::BadCertificate(_, "it is not valid now"))
    ));
    // The hub certified an official of a telco as a police officer.
    let telco = EndorserCertificate::issue(
        &w.hub,
        Role::PoliceLocationOfficer,
        "x",
        "SK Telecom",
        "telco",
        &officer.verifying_key(),
        NOW - 60,
        NOW + 60,
    );
    let from_a_telco = hub_signed()
        .endorse_certified(valid(Role::HealthApprover, &approver), &approver)
        .endorse_certified(telco, &officer);
    assert!(matches!(
        refused(from_a_telco),
        Err(Refusal::BadCertificate(
            _,
            "its institution cannot endorse in that role"
        ))
    ));
    let other_key = valid(Role::HealthApprover, &officer);
    assert!(matches!(
        refused(hub_signed().endorse_certified(other_key, &approver)),
        Err(Refusal::BadCertificate(_, "it is for another key"))
    ));
}

#[test]
fn unsigned_and_under_endorsed_grants_are_refused() {
    let mut w = world();
    assert_eq!(
        w.gate.admit(&SignedGrant::new(grant()), "r", NOW),
        Err(Refusal::NotEndorsedByHub)
    );
    let hub_only = SignedGrant::new(grant()).endorse(Role::Hub, "hub", &w.hub);
    assert_eq!(
        w.gate.admit(&hub_only, "r", NOW),
        Err(Refusal::MissingEndorsement(
            Role::HealthApprover,
            "location data"
        ))
    );
    let no_police = hub_only
        .clone()
        .endorse(Role::HealthApprover, "approver", &w.approver);
    assert_eq!(
        w.gate.admit(&no_police, "r", NOW),
        Err(Refusal::MissingEndorsement(
            Role::PoliceLocationOfficer,
            "location data"
        ))
    );
    // The approver's key cannot stand in for the police's.
    let impostor = no_police.endorse(Role::PoliceLocationOfficer, "approver", &w.approver);
    assert!(matches!(
        w.gate.admit(&impostor, "r", NOW),
        Err(Refusal::UntrustedKey(_))
    ));
    // A stranger's key is not trusted in any role.
    let stranger = SignedGrant::new(grant()).endorse(Role::Hub, "someone", &key());
    assert!(matches!(
        w.gate.admit(&stranger, "r", NOW),
        Err(Refusal::UntrustedKey(_))
    ));
}

#[test]
fn a_grant_changed_after_signing_is_refused() {
    let mut w = world();
    let mut signed = endorsed(&w, grant());
    signed.grant.data_from -= 30 * 86_400; // widen the period afterwards
    assert!(matches!(
        w.gate.admit(&signed, "r", NOW),
        Err(Refusal::BadSignature(_))
    ));
    let mut signed = endorsed(&w, grant());
    signed.endorsements[1].signature = signed.endorsements[0].signature.clone();
    assert!(matches!(
        w.gate.admit(&signed, "r", NOW),
        Err(Refusal::BadSignature(_))
    ));
}

#[test]
fn expired_premature_misaddressed_and_out_of_scope_grants_are_refused() {
    let mut w = world();
    let signed = endorsed(&w, grant());
    assert_eq!(
        w.gate.admit(&signed, "r", NOW + 2 * 86_400),
        Err(Refusal::Expired)
    );
    assert_eq!(
        w.gate.admit(&signed, "r", NOW - 3600),
        Err(Refusal::NotYetValid)
    );
    let to_kt = endorsed(
        &w,
        Grant {
            holder: "KT".into(),
            ..grant()
        },
    );
    assert_eq!(
        w.gate.admit(&to_kt, "r", NOW),
        Err(Refusal::WrongHolder("KT".into()))
    );
    let marketing = endorsed(
        &w,
        Grant {
            purpose: "marketing".into(),
            ..grant()
        },
    );
    assert_eq!(
        w.gate.admit(&marketing, "r", NOW),
        Err(Refusal::OutOfScope(Item::LocationPings, "marketing".into()))
    );
    let cards = endorsed(
        &w,
        Grant {
            items: vec![Item::CardTransactions],
            ..grant()
        },
    );
    assert!(matches!(
        w.gate.admit(&cards, "r", NOW),
        Err(Refusal::OutOfScope(Item::CardTransactions, _))
    ));
    let long = endorsed(
        &w,
        Grant {
            data_from: NOW - 60 * 86_400,
            ..grant()
        },
    );
    assert_eq!(
        w.gate.admit(&long, "r", NOW),
        Err(Refusal::PeriodTooLong(21))
    );
    let outside = endorsed(
        &w,
        Grant {
            question: Question::Exposure {
                windows: vec![ExposureWindow {
                    lat: 37.5,
                    lon: 127.0,
                    radius_m: 500.0,
                    t_start: NOW - 20 * 86_400,
                    t_end: NOW,
                }],
            },
            ..grant()
        },
    );
    assert_eq!(
        w.gate.admit(&outside, "r", NOW),
        Err(Refusal::OutsideDataPeriod)
    );
    // None of the refusals used the grant up.
    assert!(w.gate.used().is_empty());
}

#[test]
fn a_used_grant_is_forgotten_only_once_it_can_no_longer_be_replayed() {
    let mut w = world();
    let first = endorsed(&w, grant());
    w.gate.admit(&first, "r-1", NOW).unwrap();
    let expiry = grant().expires_at;
    // Remembered until the margin after its expiry has passed (a
    // replay after its expiry is refused as expired either way).
    let later = expiry + FORGET_USED_AFTER_SECONDS - 1;
    let second = endorsed(
        &w,
        Grant {
            grant_id: "g-2".into(),
            issued_at: later - 60,
            expires_at: later + 600,
            ..grant()
        },
    );
    w.gate.admit(&second, "r-2", later).unwrap();
    assert!(w.gate.used().contains_key("g-1"));
    let much_later = expiry + FORGET_USED_AFTER_SECONDS + 1;
    let third = endorsed(
        &w,
        Grant {
            grant_id: "g-3".into(),
            issued_at: much_later - 60,
            expires_at: much_later + 600,
            ..grant()
        },
    );
    w.gate.admit(&third, "r-3", much_later).unwrap();
    assert!(!w.gate.used().contains_key("g-1"), "forgotten");
    assert!(w.gate.used().contains_key("g-2"));
    assert_eq!(
        w.gate.admit(&first, "r-9", much_later),
        Err(Refusal::Expired)
    );
    // What a node restores: only what could still be replayed.
    let mut gate = world().gate;
    gate.restore_use(
        "old".into(),
        "r".into(),
        NOW - FORGET_USED_AFTER_SECONDS - 1,
        NOW,
    );
    gate.restore_use("live".into(), "r".into(), NOW + 60, NOW);
    assert_eq!(gate.used().keys().collect::<Vec<_>>(), ["live"]);
}
