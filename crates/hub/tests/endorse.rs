//! Approvers and police officers endorse grants with their own keys, which
//! a node accepts through the hub's certificates; on both backends.

use civic_core::identity::{Duty, DutyKind};
use civic_core::policy::{AuthMethod, Principal};
use civic_exchange::{
    ExposureWindow, Grant, Item, NodeGate, NodePolicy, Question, Refusal, Role, SignedGrant,
    TrustedKey,
};
use civic_hub::admin::UserRequest;
use civic_hub::{Actor, ClientInfo, Config, Ctx, Hub, HubError, HubKeys};
use civic_store::testing::TestDb;
use civic_store::{AuditStore, InstitutionStore};

use std::collections::{BTreeMap, BTreeSet};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A signed-in person of `institution` with one duty.
async fn person(hub: &Hub, kind: &str, name: &str, duty: &str, auth: AuthMethod) -> Ctx {
    let op = Ctx::local_operator();
    let institution = match hub
        .store
        .institutions()
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.name == name)
    {
        Some(i) => i,
        None => hub.create_institution(&op, name, kind).await.unwrap(),
    };
    let username = format!("{}.{}", duty.replace([':', '_'], "-"), institution.id);
    let user = hub
        .create_user(
            &op,
            institution.id,
            UserRequest {
                username: username.clone(),
                display_name: username.clone(),
                password: Some("correct horse battery staple".into()),
                duties: vec![duty.into()],
                machine_client: false,
            },
        )
        .await
        .unwrap();
    Ctx {
        actor: Actor::User {
            principal: Principal {
                user: user.id,
                username,
                institution: institution.id,
                institution_kind: institution.kind,
                duties: vec![Duty::parse(duty).unwrap()],
                auth,
            },
            session: None,
        },
        client: ClientInfo {
            addr: Some("127.0.0.1".into()),
            request_id: None,
        },
    }
}

fn grant(id: &str) -> Grant {
    let t = now();
    Grant {
        grant_id: id.into(),
        requester: "Korea Disease Control and Prevention Agency".into(),
        holder: "SK Telecom".into(),
        purpose: "epidemic investigation".into(),
        legal_basis: "Infectious Disease Control and Prevention Act, art. 76-2".into(),
        case_id: Some("1001".into()),
        consent_id: None,
        items: vec![Item::LocationPings],
        question: Question::Exposure {
            windows: vec![ExposureWindow {
                lat: 37.56,
                lon: 126.98,
                radius_m: 500.0,
                t_start: t - 86_400,
                t_end: t - 80_000,
            }],
        },
        data_from: t - 14 * 86_400,
        data_until: t,
        issued_at: t - 60,
        expires_at: t + 3600,
    }
}

async fn endorsers_sign_with_their_own_certified_keys(db: TestDb) {
    let hub = Hub::new(db.store.clone(), HubKeys::ephemeral(), Config::default());
    let strong = AuthMethod::PasswordAndTotp;
    let kdca = "Korea Disease Control and Prevention Agency";
    let approver = person(&hub, "health_authority", kdca, "approver", strong).await;
    let police = person(
        &hub,
        "police",
        "Korean National Police Agency",
        "police_location_officer",
        strong,
    )
    .await;
    let investigator = person(&hub, "health_authority", kdca, "investigator:seoul", strong).await;

    // The node trusts only the hub's key, and takes hub-certified endorsers.
    let gate = || {
        NodeGate::new(
            NodePolicy {
                holder: "SK Telecom".into(),
                gives: BTreeMap::from([(
                    "epidemic investigation".into(),
                    BTreeSet::from([Item::LocationPings]),
                )]),
                max_period_days: 28,
                hub_certified_endorsers: true,
            },
            [TrustedKey {
                key: hub.keys().signing_key().verifying_key(),
                role: Role::Hub,
            }],
        )
    };
    let endorse = |signed: SignedGrant| async {
        let signed = hub
            .endorse_grant(&approver, DutyKind::Approver, signed)
            .await
            .unwrap();
        hub.endorse_grant(&police, DutyKind::PoliceLocationOfficer, signed)
            .await
            .unwrap()
    };
    let hub_signed =
        |id: &str| SignedGrant::new(grant(id)).endorse(Role::Hub, "hub", hub.keys().signing_key());
    let first = endorse(hub_signed("g-1")).await;
    assert!(gate().admit(&first, "r-1", now()).is_ok());
    // The same people's next endorsements use the same keys.
    let second = endorse(hub_signed("g-2")).await;
    assert!(gate().admit(&second, "r-2", now()).is_ok());
    let key_ids = |s: &SignedGrant| -> Vec<String> {
        s.endorsements.iter().map(|e| e.key_id.clone()).collect()
    };
    assert_eq!(key_ids(&first), key_ids(&second));
    // The approver alone is not enough for location data.
    let approved_only = hub
        .endorse_grant(&approver, DutyKind::Approver, hub_signed("g-3"))
        .await
        .unwrap();
    assert!(matches!(
        gate().admit(&approved_only, "r-3", now()),
        Err(Refusal::MissingEndorsement(Role::PoliceLocationOfficer, _))
    ));

    // Who may not endorse: another duty, someone else's duty, no second
    // factor, the local operator.
    let refused = |r: Result<SignedGrant, HubError>| matches!(r, Err(HubError::Forbidden { .. }));
    assert!(refused(
        hub.endorse_grant(&investigator, DutyKind::Investigator, hub_signed("g-4"))
            .await
    ));
    assert!(refused(
        hub.endorse_grant(
            &approver,
            DutyKind::PoliceLocationOfficer,
            hub_signed("g-4")
        )
        .await
    ));
    let weak = person(
        &hub,
        "police",
        "Busan Police",
        "police_location_officer",
        AuthMethod::Password,
    )
    .await;
    assert!(refused(
        hub.endorse_grant(&weak, DutyKind::PoliceLocationOfficer, hub_signed("g-4"))
            .await
    ));
    assert!(refused(
        hub.endorse_grant(
            &Ctx::local_operator(),
            DutyKind::Approver,
            hub_signed("g-4")
        )
        .await
    ));

    // Every endorsement and certification is in the ledger; refusals too.
    let records: Vec<_> = {
        use futures_util::TryStreamExt;
        db.store
            .stream_audit_records(u64::MAX)
            .try_collect()
            .await
            .unwrap()
    };
    let count = |action: &str, allowed: bool| {
        records
            .iter()
            .filter(|r| {
                r.entry.action == action
                    && (r.entry.outcome == civic_core::audit::Outcome::Allowed) == allowed
            })
            .count()
    };
    assert_eq!(count("exchange.endorser_key.issue", true), 2);
    assert_eq!(count("exchange.grant.endorse", true), 5);
    assert_eq!(count("exchange.grant.endorse", false), 4);
    let endorsement = records
        .iter()
        .find(|r| {
            r.entry.action == "exchange.grant.endorse" && r.entry.grant_id.as_deref() == Some("g-1")
        })
        .unwrap();
    assert_eq!(endorsement.entry.subject.as_deref(), Some("case:1001"));
    assert!(endorsement.entry.legal_basis.is_some());
    // The secret key is kept sealed (nonce, ciphertext and tag), and its
    // certificate names the key the endorsements carry.
    let Actor::User { principal, .. } = &approver.actor else {
        unreachable!()
    };
    use civic_store::EndorserKeyStore;
    let kept = db
        .store
        .endorser_key(
            principal.user,
            "health_approver",
            civic_core::time::Timestamp::now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(kept.secret_sealed.len() > 32 + 16);
    let cert = first.endorsements[1].certificate.as_ref().unwrap();
    assert_eq!(cert.key, kept.public_key);
    assert_eq!(cert.institution, kdca);
}

civic_store::backend_tests!(endorsers_sign_with_their_own_certified_keys);
