//! The demo's seed: institutions of every kind and one user per duty,
//! each with a password and (where the duty sees personal data) an
//! enrolled second factor, printed for whoever runs the demo.

pub mod catalogue;
pub mod nodes;
pub mod records;
pub mod sensors;

pub use catalogue::seed_catalogue;
pub use records::seed_mydata;

use civic_core::identity::InstitutionId;
use civic_hub::admin::UserRequest;
use civic_hub::secrets;
use civic_hub::{Ctx, Hub, Result};
use civic_store::{MetaStore, UserStore};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// One demo login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoLogin {
    pub username: String,
    pub duty: String,
    pub institution: String,
    pub password: String,
    /// Base32 TOTP secret, for an authenticator app or `civic totp-code`.
    pub totp_secret: Option<String>,
}

const INSTITUTIONS: &[(&str, &str)] = &[
    ("National Information Society Agency", "hub_operator"),
    (
        "Korea Disease Control and Prevention Agency",
        "health_authority",
    ),
    ("Seoul Metropolitan Police Agency", "police"),
    ("Ministry of the Interior and Safety", "ministry"),
    ("SK Telecom", "telco"),
    ("KT", "telco"),
    ("LG Uplus", "telco"),
    ("Shinhan Card", "card_company"),
    ("KB Kookmin Card", "card_company"),
    ("Samsung Card", "card_company"),
    ("Seoul Metro", "transit_operator"),
    ("Seoul Metropolitan Government", "local_government"),
    ("National Health Insurance Service", "public_institution"),
    ("Korea Employment Information Service", "using_agency"),
];

/// (username, duty, institution index)
const USERS: &[(&str, &str, usize)] = &[
    ("admin", "administrator", 0),
    ("auditor", "security_auditor", 0),
    ("support", "support_agent", 0),
    ("investigator.seoul", "investigator:seoul", 1),
    ("investigator.daegu", "investigator:daegu", 1),
    ("approver", "approver", 1),
    ("analyst", "analyst", 1),
    ("police", "police_location_officer", 2),
    ("mydata", "mydata_operator", 3),
    // MyData's holding institution and using agency.
    ("mydata.nhis", "mydata_operator", 12),
    ("mydata.agency", "mydata_operator", 13),
    // City data: Seoul's operator of its closed tenant `seoul`.
    ("city.seoul", "city_data_operator", 11),
];

/// The demo's closed city data tenant: Seoul's, which the disease-control
/// agency's analysts may read (the default tenant stays open to
/// everything, for the ETSI suite).
pub const CITY_TENANT: &str = "seoul";

fn random_password() -> String {
    const WORDS: &[&str] = &[
        "harbor", "maple", "lantern", "river", "cobalt", "meadow", "granite", "willow", "ember",
        "summit", "copper", "orchid",
    ];
    let mut rng = rand::rngs::OsRng;
    let words: Vec<&str> = (0..3)
        .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
        .collect();
    format!("{}-{}", words.join("-"), rng.gen_range(1000..10000))
}

/// Creates a demo user with a random password and, if her duties see
/// personal data, an enabled TOTP secret.
pub async fn create_login(
    hub: &Hub,
    ctx: &Ctx,
    institution: InstitutionId,
    institution_name: &str,
    username: &str,
    duty: &str,
    display_name: Option<&str>,
) -> Result<DemoLogin> {
    let password = random_password();
    let user = hub
        .create_user(
            ctx,
            institution,
            UserRequest {
                username: username.into(),
                display_name: display_name
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("Demo {username}")),
                password: Some(password.clone()),
                duties: vec![duty.into()],
                machine_client: false,
            },
        )
        .await?;
    let needs_totp = user.duties.iter().any(|d| d.kind.sees_personal_data());
    let totp_secret = if needs_totp {
        let secret = secrets::new_totp_secret();
        let sealed = hub.keys().seal(&format!("totp:{}", user.id), &secret);
        let entry = ctx.entry(
            "auth.totp.enrol",
            &format!("user:{}", user.id),
            civic_core::audit::Outcome::Allowed,
        );
        hub.store
            .set_totp_pending(user.id, sealed, entry.clone())
            .await?;
        // Step 0: any real code is newer.
        hub.store.enable_totp(user.id, 0, None, entry).await?;
        Some(secrets::base32(&secret))
    } else {
        None
    };
    Ok(DemoLogin {
        username: username.into(),
        duty: duty.into(),
        institution: institution_name.into(),
        password,
        totp_secret,
    })
}

/// Seeds the demo once; returns the logins (new, or as first seeded,
/// from `demo-credentials.json` in the data directory).
pub async fn seed(hub: &Hub) -> Result<Vec<DemoLogin>> {
    let file = hub.config.data_dir.join("demo-credentials.json");
    if hub.store.meta("demo.seeded").await?.is_some() {
        if let Ok(text) = std::fs::read_to_string(&file) {
            if let Ok(logins) = serde_json::from_str(&text) {
                return Ok(logins);
            }
        }
        return Ok(Vec::new());
    }
    let ctx = Ctx::local_operator();
    let mut ids: Vec<InstitutionId> = Vec::new();
    for (name, kind) in INSTITUTIONS {
        ids.push(hub.create_institution(&ctx, name, kind).await?.id);
    }
    let mut logins = Vec::new();
    for (username, duty, inst) in USERS {
        logins.push(
            create_login(
                hub,
                &ctx,
                ids[*inst],
                INSTITUTIONS[*inst].0,
                username,
                duty,
                None,
            )
            .await?,
        );
    }
    let settings = civic_citydata::tenancy::TenantSettings {
        name: CITY_TENANT.into(),
        institution: ids[11],
        access: civic_citydata::tenancy::Access::Closed,
        public_writes: false,
        public_registrations: false,
        readers: vec![ids[1]],
        writers: vec![],
    };
    // (Its tables may not be there yet where a hub was opened without
    // the applications' migrations; they are safe to run again.)
    civic_citydata::store::migrate(&hub.store).await?;
    civic_citydata::CityData::new(hub.clone())
        .set_tenant(&ctx, settings)
        .await?;
    let json = serde_json::to_string_pretty(&logins).expect("logins serialise");
    civic_hub::keys::write_private(&file, &json).map_err(|e| {
        civic_hub::HubError::BadRequest(format!("cannot write {}: {e}", file.display()))
    })?;
    hub.store.set_meta("demo.seeded", "1").await?;
    Ok(logins)
}

/// The demo's outbreak response: the open one, or (first start, or
/// every earlier one closed) a new one with the synthetic city's
/// confirmed cases registered from its case register and their
/// interviews recorded (as the local operator, audited). Returns it
/// and its number of cases.
pub async fn seed_response(
    hub: &Hub,
    city: &std::path::Path,
) -> Result<(civic_investigation::ResponseView, usize)> {
    use civic_investigation::store::CaseStore;
    let hub = &civic_investigation::Investigation::new(hub.clone());
    let ctx = Ctx::local_operator();
    let open = hub
        .list_responses(&ctx)
        .await?
        .into_iter()
        .find(|r| r.status == civic_core::investigation::ResponseStatus::Open);
    if let Some(open) = open {
        let cases = hub.store.case_metas(open.id).await?.len();
        return Ok((open, cases));
    }
    let response = hub
        .open_response(
            &ctx,
            "COVID-19 Seoul (demo)",
            "Infectious Disease Control and Prevention Act, art. 76-2",
            None,
        )
        .await?;
    let read = |name: &str| {
        std::fs::read_to_string(city.join(name)).map_err(|e| {
            civic_hub::HubError::BadRequest(format!("cannot read the demo city's {name}: {e}"))
        })
    };
    let register = read("case-register.csv")?;
    // A city too small or too short may have no confirmed case.
    if register.lines().skip(1).all(|l| l.trim().is_empty()) {
        return Ok((response, 0));
    }
    let cases = hub.import_cases(&ctx, response.id, &register).await?;
    hub.import_interviews(&ctx, response.id, &read("interviews.csv")?)
        .await?;
    Ok((response, cases.len()))
}
