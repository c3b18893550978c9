use super::*;
use crate::{Config, HubKeys};
use civic_core::identity::{Duty, InstitutionKind, Name};
use civic_store::{NewInstitution, NewUser};

async fn hub_with_user(duty: &str) -> (Hub, civic_store::testing::TestDb) {
    let config = Config {
        sign_in_free_failures: 2,
        sign_in_first_wait_seconds: 60,
        ..Config::default()
    };
    hub_with_config(duty, config).await
}

async fn hub_with_config(duty: &str, config: Config) -> (Hub, civic_store::testing::TestDb) {
    let db = civic_store::testing::sqlite().await;
    let hub = Hub::new(db.store.clone(), HubKeys::ephemeral(), config);
    let ctx = Ctx::local_operator();
    let inst = hub
        .store
        .create_institution(
            NewInstitution {
                name: Name::parse("name", "KDCA").unwrap(),
                kind: InstitutionKind::HealthAuthority,
            },
            ctx.entry("admin.institution.create", "institution", Outcome::Allowed),
        )
        .await
        .unwrap();
    hub.store
        .create_user(
            NewUser {
                institution: inst.id,
                username: Username::parse("kim").unwrap(),
                display_name: Name::parse("display_name", "Kim").unwrap(),
                password_hash: secrets::hash_password(
                    &Password::parse_new("correct horse battery").unwrap(),
                ),
                machine_client: false,
                duties: vec![Duty::parse(duty).unwrap()],
            },
            ctx.entry("admin.user.create", "user", Outcome::Allowed),
        )
        .await
        .unwrap();
    (hub, db)
}

#[tokio::test]
async fn enrolment_then_two_factor_sign_in_and_no_replay() {
    let (hub, _db) = hub_with_user("approver").await;
    let client = ClientInfo::default();
    let first = hub
        .login("kim", "correct horse battery", None, None, &client)
        .await
        .unwrap();
    assert!(first.must_enrol_second_factor);
    let actor = hub.authenticate(&first.token).await.unwrap();
    let ctx = Ctx {
        actor,
        client: client.clone(),
    };
    let enrolment = hub.enrol_totp(&ctx).await.unwrap();
    let secret = secrets::from_base32(&enrolment.secret_base32).unwrap();
    let now = Hub::unix_now();
    let valid: Vec<String> = [-30, 0, 30]
        .iter()
        .map(|d| secrets::totp_code(&secret, now + d))
        .collect();
    let wrong = ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| !valid.iter().any(|v| v == c))
        .unwrap();
    assert!(matches!(
        hub.confirm_totp(&ctx, wrong).await,
        Err(HubError::Invalid(_))
    ));
    // Use the code of the previous step for confirmation so that the
    // current one is still fresh for the sign-in below.
    hub.confirm_totp(&ctx, &secrets::totp_code(&secret, now - 30))
        .await
        .unwrap();
    let Actor::User { principal, .. } = hub.authenticate(&first.token).await.unwrap() else {
        panic!()
    };
    assert_eq!(principal.auth, AuthMethod::PasswordAndTotp);

    assert!(matches!(
        hub.login("kim", "correct horse battery", None, None, &client)
            .await,
        Err(HubError::InvalidCredentials)
    ));
    let code = secrets::totp_code(&secret, now);
    let second = hub
        .login("kim", "correct horse battery", Some(&code), None, &client)
        .await
        .unwrap();
    assert!(!second.must_enrol_second_factor);
    // The same code again is refused.
    assert!(hub
        .login("kim", "correct horse battery", Some(&code), None, &client)
        .await
        .is_err());
}

#[tokio::test]
async fn failures_slow_strangers_alike_for_every_name_but_not_the_owners_device() {
    let (hub, _db) = hub_with_user("analyst").await;
    let client = ClientInfo {
        addr: Some("192.0.2.7".into()),
        request_id: None,
    };
    let owner = hub
        .login("kim", "correct horse battery", None, None, &client)
        .await
        .unwrap();
    // A real name and an unknown one get the same answers: two free
    // failures, then a wait, even for the right password.
    for name in ["kim", "nobody"] {
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(
                match hub
                    .login(name, "wrong password!", None, None, &client)
                    .await
                {
                    Err(HubError::InvalidCredentials) => "invalid",
                    Err(HubError::SignInWait { .. }) => "wait",
                    other => panic!("{other:?}"),
                },
            );
        }
        assert_eq!(answers, ["invalid", "invalid", "wait"], "{name}");
    }
    assert!(matches!(
        hub.login("kim", "correct horse battery", None, None, &client).await,
        Err(HubError::SignInWait { seconds }) if seconds > 1
    ));
    // The owner's device is judged on its own: the strangers' guesses
    // do not keep her out.
    hub.login(
        "kim",
        "correct horse battery",
        None,
        Some(&owner.device),
        &client,
    )
    .await
    .unwrap();
    // Another user's device token, or a forged one, counts for nothing.
    let forged = format!("{}x", owner.device);
    assert!(hub.device_key(&forged, owner.principal.user).is_none());
    assert!(hub
        .device_key(&owner.device, UserId(owner.principal.user.0 + 1))
        .is_none());
    // An administrator's unlock ends the wait under her name.
    hub.unlock_user(&Ctx::local_operator(), owner.principal.user)
        .await
        .unwrap();
    hub.login(
        "kim",
        "correct horse battery",
        None,
        None,
        &ClientInfo::default(),
    )
    .await
    .unwrap();
    assert!(matches!(
        hub.authenticate("cdh_s_nonsense").await,
        Err(HubError::Unauthenticated(_))
    ));
}

#[tokio::test]
async fn sessions_end_after_their_lifetime_or_when_idle() {
    let client = ClientInfo::default();
    let (hub, _db) = hub_with_config(
        "analyst",
        Config {
            session_ttl_minutes: 0,
            ..Config::default()
        },
    )
    .await;
    let signed_in = hub
        .login("kim", "correct horse battery", None, None, &client)
        .await
        .unwrap();
    assert!(matches!(
        hub.authenticate(&signed_in.token).await,
        Err(HubError::Unauthenticated(_))
    ));

    let (hub, _db) = hub_with_config(
        "analyst",
        Config {
            session_idle_minutes: 0,
            ..Config::default()
        },
    )
    .await;
    let signed_in = hub
        .login("kim", "correct horse battery", None, None, &client)
        .await
        .unwrap();
    assert!(matches!(
        hub.authenticate(&signed_in.token).await,
        Err(HubError::Unauthenticated(_))
    ));

    let (hub, _db) = hub_with_user("analyst").await;
    let signed_in = hub
        .login("kim", "correct horse battery", None, None, &client)
        .await
        .unwrap();
    assert!(hub.authenticate(&signed_in.token).await.is_ok());
}

#[tokio::test]
async fn a_reset_second_factor_ends_the_sessions_it_protected() {
    let (hub, _db) = hub_with_user("approver").await;
    let client = ClientInfo::default();
    let first = hub
        .login("kim", "correct horse battery", None, None, &client)
        .await
        .unwrap();
    let ctx = Ctx {
        actor: hub.authenticate(&first.token).await.unwrap(),
        client: client.clone(),
    };
    let enrolment = hub.enrol_totp(&ctx).await.unwrap();
    let secret = secrets::from_base32(&enrolment.secret_base32).unwrap();
    hub.confirm_totp(&ctx, &secrets::totp_code(&secret, Hub::unix_now()))
        .await
        .unwrap();
    assert!(hub.authenticate(&first.token).await.is_ok());
    let user = hub.store.user_by_username("kim").await.unwrap().unwrap();
    hub.reset_second_factor(&Ctx::local_operator(), user.id)
        .await
        .unwrap();
    assert!(matches!(
        hub.authenticate(&first.token).await,
        Err(HubError::Unauthenticated(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_cannot_outrun_the_wait() {
    let (hub, _db) = hub_with_user("analyst").await;
    let mut guesses = Vec::new();
    for i in 0..12 {
        let hub = hub.clone();
        guesses.push(tokio::spawn(async move {
            hub.login(
                "kim",
                &format!("wrong guess {i}"),
                None,
                None,
                &ClientInfo::default(),
            )
            .await
        }));
    }
    for g in guesses {
        assert!(g.await.unwrap().is_err());
    }
    // Every guess judged was counted: the name waits, and the right
    // password is refused until it has.
    assert!(matches!(
        hub.login(
            "kim",
            "correct horse battery",
            None,
            None,
            &ClientInfo::default()
        )
        .await,
        Err(HubError::SignInWait { .. })
    ));
}

#[tokio::test]
async fn a_session_in_use_is_not_idle_though_the_database_saw_it_a_minute_ago() {
    let (hub, db) = hub_with_config(
        "analyst",
        Config {
            session_idle_minutes: 1,
            ..Config::default()
        },
    )
    .await;
    let client = ClientInfo::default();
    let signed_in = hub
        .login("kim", "correct horse battery", None, None, &client)
        .await
        .unwrap();
    hub.authenticate(&signed_in.token).await.unwrap();
    // Used just now, but last written 61 s ago (writes are at most a
    // minute apart): the session is not idle.
    let hash = token_hash(&signed_in.token);
    let written = Timestamp::now().plus_seconds(-61);
    hub.store.touch_session(&hash, written).await.unwrap();
    hub.authenticate(&signed_in.token).await.unwrap();
    // A process that never saw it use the session goes by the
    // database: used less than a minute ago, not idle either.
    let other = Hub::new(
        db.store.clone(),
        HubKeys::ephemeral(),
        hub.config.as_ref().clone(),
    );
    other.authenticate(&signed_in.token).await.unwrap();
    // Truly idle for longer than the limit: ended everywhere.
    hub.store.touch_session(&hash, written).await.unwrap();
    let other = Hub::new(
        db.store.clone(),
        HubKeys::ephemeral(),
        hub.config.as_ref().clone(),
    );
    assert!(other.authenticate(&signed_in.token).await.is_err());
}
