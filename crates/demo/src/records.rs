//! The demo's administrative records: what the ministry, the health
//! insurer and the city keep of each person of the synthetic city
//! (`people.csv`), written as each holder's `records.jsonl`. Names,
//! numbers and amounts are drawn from a hash of the person's number, so a
//! city always gives the same records; every value is synthetic.

use crate::create_login;
use civic_exchange::wire::HolderRecord;
use civic_hub::Hub;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// One person of `people.csv`.
struct Person {
    id: u64,
    age: u64,
    occupation: String,
    home: u64,
    district: String,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn draw(id: u64, purpose: u64, n: u64) -> u64 {
    mix(id ^ mix(purpose)) % n.max(1)
}

const SURNAMES: [&str; 10] = ["김", "이", "박", "최", "정", "강", "조", "윤", "장", "임"];
const SYLLABLES: [&str; 16] = [
    "민", "서", "지", "현", "우", "준", "하", "윤", "수", "영", "은", "도", "연", "진", "예", "성",
];

fn name(p: &Person) -> String {
    format!(
        "{}{}{}",
        SURNAMES[draw(p.id, 1, 10) as usize],
        SYLLABLES[draw(p.id, 2, 16) as usize],
        SYLLABLES[draw(p.id, 3, 16) as usize]
    )
}

/// (year, month, day) of birth, in the simulation's year 2020.
fn birth(p: &Person) -> (u64, u64, u64) {
    (2020 - p.age, 1 + draw(p.id, 4, 12), 1 + draw(p.id, 5, 28))
}

fn resident_number(p: &Person) -> String {
    let (y, m, d) = birth(p);
    let sex = 1 + draw(p.id, 6, 2) + if y >= 2000 { 2 } else { 0 };
    format!(
        "{:02}{m:02}{d:02}-{sex}{:06}",
        y % 100,
        draw(p.id, 7, 1_000_000)
    )
}

/// Who the holders keep records of, and what: (entry, title, items).
fn records_of(
    kind: &str,
    p: &Person,
    household: &[&Person],
) -> Vec<(&'static str, &'static str, Map<String, Value>)> {
    let obj = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let (y, m, d) = birth(p);
    let moved_year = (y + 18).clamp(2005, 2019);
    let moved = format!(
        "{moved_year}-{:02}-{:02}",
        1 + draw(p.id, 8, 12),
        1 + draw(p.id, 9, 28)
    );
    let head = household.iter().max_by_key(|q| (q.age, q.id)).map(|q| q.id) == Some(p.id);
    let working = matches!(
        p.occupation.as_str(),
        "office_worker" | "call_centre_worker" | "hospital_worker" | "service_worker"
    );
    match kind {
        "ministry" => {
            let family: Vec<String> = household
                .iter()
                .filter(|q| q.id != p.id)
                .map(|q| {
                    let (qy, qm, qd) = birth(q);
                    let relation = match q.age as i64 - p.age as i64 {
                        a if a >= 16 => "parent",
                        a if a <= -16 => "child",
                        _ => "spouse or sibling",
                    };
                    format!("{} ({relation}, born {qy}-{qm:02}-{qd:02})", name(q))
                })
                .collect();
            vec![
                (
                    "resident-registration-abstract",
                    "Resident registration abstract (주민등록표 초본)",
                    obj(json!({
                        "name": name(p),
                        "resident_number": resident_number(p),
                        "address_history": format!("{moved}: Seoul, {} district", p.district),
                    })),
                ),
                (
                    "family-relations-certificate",
                    "Family relations certificate (가족관계증명서)",
                    obj(json!({
                        "name": name(p),
                        "family_members": if family.is_empty() { "none registered".to_owned() } else { family.join("; ") },
                    })),
                ),
                (
                    "household",
                    "Household composition",
                    obj(json!({
                        "household_size": household.len(),
                        "head_of_household": head,
                        "moved_in_date": moved,
                    })),
                ),
            ]
        }
        "public_institution" => {
            let bracket = if working {
                3 + draw(p.id, 10, 7)
            } else {
                1 + draw(p.id, 10, 3)
            };
            let mut out = vec![
                (
                    "health-insurance-eligibility",
                    "Health insurance eligibility (건강보험 자격득실 확인서)",
                    obj(json!({
                        "insured_type": if working { "employee" } else if head { "self_employed_region" } else { "dependant" },
                        "acquired_date": format!("{}-{:02}-{:02}", (y + 20).clamp(2000, 2019), 1 + draw(p.id, 11, 12), 1 + draw(p.id, 12, 28)),
                        "workplace": if working { format!("Workplace no. {}", 1000 + draw(p.id, 13, 9000)) } else { String::new() },
                    })),
                ),
                (
                    "income-bracket",
                    "Income bracket",
                    obj(json!({
                        "income_bracket": bracket,
                        "premium_monthly": bracket * 23_000 + draw(p.id, 14, 10_000),
                    })),
                ),
            ];
            if draw(p.id, 15, 20) == 0 {
                out.push((
                    "disability-status",
                    "Disability registration",
                    obj(json!({
                        "registered": true,
                        "degree": if draw(p.id, 16, 2) == 0 { "severe" } else { "mild" },
                    })),
                ));
            }
            let _ = (m, d);
            out
        }
        "local_government" => {
            let mut out = Vec::new();
            if p.age >= 20 {
                let vehicles = draw(p.id, 17, 3);
                out.push((
                    "vehicle-registration",
                    "Vehicle registration",
                    obj(json!({
                        "vehicles": vehicles,
                        "vehicle_value": vehicles * (8_000_000 + draw(p.id, 18, 30_000_000)),
                    })),
                ));
            }
            if p.occupation == "service_worker" && draw(p.id, 19, 3) == 0 {
                out.push((
                    "business-registration",
                    "Business registration",
                    obj(json!({
                        "business_number": format!("{:03}-{:02}-{:05}", 100 + draw(p.id, 20, 900), draw(p.id, 21, 100), draw(p.id, 22, 100_000)),
                        "business_name": format!("{} {} Shop", p.district, name(p)),
                        "opened_date": format!("{}-{:02}-01", (y + 25).clamp(2005, 2019), 1 + draw(p.id, 23, 12)),
                    })),
                ));
            }
            out
        }
        _ => Vec::new(),
    }
}

fn read_people(people_csv: &Path) -> std::io::Result<Vec<Person>> {
    let text = std::fs::read_to_string(people_csv)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let bad =
        |what: &str| std::io::Error::other(format!("{}: no {what} column", people_csv.display()));
    let (id, age, occ, home, district) = (
        col("person_id").ok_or_else(|| bad("person_id"))?,
        col("age").ok_or_else(|| bad("age"))?,
        col("occupation").ok_or_else(|| bad("occupation"))?,
        col("home_venue_id").ok_or_else(|| bad("home_venue_id"))?,
        col("district").ok_or_else(|| bad("district"))?,
    );
    Ok(lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some(Person {
                id: f.get(id)?.parse().ok()?,
                age: f.get(age)?.parse().ok()?,
                occupation: f.get(occ)?.to_string(),
                home: f.get(home)?.parse().ok()?,
                district: f.get(district)?.to_string(),
            })
        })
        .collect())
}

/// The citizen's subject for person `id` of the city.
pub fn subject_of(id: u64) -> String {
    format!("{id}")
}

/// Writes the records a holder of `kind` keeps of the city's people to
/// `out` (one [`HolderRecord`] a line); returns how many.
pub fn write_records(people_csv: &Path, kind: &str, out: &Path) -> std::io::Result<usize> {
    let people = read_people(people_csv)?;
    let mut households: BTreeMap<u64, Vec<&Person>> = BTreeMap::new();
    for p in &people {
        households.entry(p.home).or_default().push(p);
    }
    let tmp = out.with_extension("tmp");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let mut n = 0;
    for p in &people {
        let household = &households[&p.home];
        for (entry, title, items) in records_of(kind, p, household) {
            let record = HolderRecord {
                subject: subject_of(p.id),
                entry: entry.into(),
                title: title.into(),
                items,
            };
            serde_json::to_writer(&mut w, &record)?;
            w.write_all(b"\n")?;
            n += 1;
        }
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, out)?;
    Ok(n)
}

/// An example person of the city with records at every demo holder (a
/// working adult, head of a household of several, with a disability
/// record): the demo's citizen.
pub fn demo_citizen(people_csv: &Path) -> std::io::Result<Option<(String, String)>> {
    let people = read_people(people_csv)?;
    let mut households: BTreeMap<u64, usize> = BTreeMap::new();
    for p in &people {
        *households.entry(p.home).or_default() += 1;
    }
    let pick = people
        .iter()
        .filter(|p| p.age >= 25 && p.occupation == "office_worker" && households[&p.home] >= 2)
        .find(|p| draw(p.id, 15, 20) == 0)
        .or_else(|| people.iter().find(|p| p.age >= 25));
    Ok(pick.map(|p| (subject_of(p.id), name(p))))
}

/// The demo's agency's approved agreements: (entry, items; empty = all).
const DEMO_AGREEMENTS: &[(&str, &[&str])] = &[
    ("income-bracket", &["income_bracket"]),
    ("health-insurance-eligibility", &[]),
    ("resident-registration-abstract", &[]),
    ("household", &["household_size", "head_of_household"]),
];

/// Seeds Public MyData's demo once: a citizen of the city (with
/// records at every holder) who can sign in, and approved agreements
/// of the demo's agency for a youth employment subsidy. Returns the
/// citizen's login, also added to `demo-credentials.json`.
pub async fn seed_mydata(hub: &Hub, city: &Path) -> civic_hub::Result<Option<crate::DemoLogin>> {
    use civic_mydata::store::MydataStore;
    use civic_store::{InstitutionStore, MetaStore, UserStore};
    if hub.store.meta("demo.mydata.seeded").await?.is_some() {
        return Ok(None);
    }
    let bad = |e: std::io::Error| civic_hub::HubError::BadRequest(format!("the demo city: {e}"));
    let Some((subject, name)) = demo_citizen(&city.join("people.csv")).map_err(bad)? else {
        return Ok(None);
    };
    let ctx = crate::Ctx::local_operator();
    let institutions = hub.store.institutions().await?;
    let find = |kind: civic_core::identity::InstitutionKind| {
        institutions.iter().find(|i| i.kind == kind).cloned()
    };
    let (Some(portal), Some(agency)) = (
        find(civic_core::identity::InstitutionKind::HubOperator),
        find(civic_core::identity::InstitutionKind::UsingAgency),
    ) else {
        return Ok(None);
    };
    let login = create_login(
        hub,
        &ctx,
        portal.id,
        &portal.name,
        "citizen",
        &format!("citizen:{subject}"),
        Some(&name),
    )
    .await?;
    let agency_user = hub
        .store
        .user_by_username("mydata.agency")
        .await?
        .map(|u| u.id);
    let mut reviewers = Vec::new();
    for username in ["mydata", "mydata.nhis"] {
        if let Some(u) = hub.store.user_by_username(username).await? {
            reviewers.push(u);
        }
    }
    let offers = hub.store.offers().await?;
    for (code, items) in DEMO_AGREEMENTS {
        let (Some(offer), Some(user)) = (offers.iter().find(|o| o.code == *code), agency_user)
        else {
            continue;
        };
        let all: Vec<String> = offer.items.iter().map(|i| i.name.clone()).collect();
        let names: Vec<String> = if items.is_empty() {
            all
        } else {
            items.iter().map(|s| (*s).to_owned()).collect()
        };
        let entry = |action: &str| {
            ctx.entry(
                action,
                "mydata-agreement",
                civic_core::audit::Outcome::Allowed,
            )
        };
        let agreement = hub
            .store
            .apply_agreement(
                civic_mydata::store::NewAgreement {
                    offer: offer.id,
                    agency: agency.id,
                    service: "Youth employment subsidy (청년일자리도약장려금)".into(),
                    items: names.clone(),
                    purpose: "Checking an applicant's eligibility for the subsidy".into(),
                    legal_basis: "Employment Insurance Act, art. 20".into(),
                    retention_days: 90,
                    created_by: user,
                },
                entry("mydata.agreement.apply"),
            )
            .await?;
        let reviewer = reviewers
            .iter()
            .find(|u| u.institution == offer.holder)
            .map_or(user, |u| u.id);
        hub.store
            .note_agreement(
                civic_mydata::store::NewAgreementNote {
                    agreement: agreement.id,
                    user: reviewer,
                    kind: civic_core::mydata::AgreementStep::Approve,
                    text: "Approved for the demo.".into(),
                },
                entry("mydata.agreement.review"),
            )
            .await?;
    }
    let file = hub.config.data_dir.join("demo-credentials.json");
    let mut logins: Vec<crate::DemoLogin> = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    logins.push(login.clone());
    let json = serde_json::to_string_pretty(&logins).expect("logins serialise");
    civic_hub::keys::write_private(&file, &json).map_err(|e| {
        civic_hub::HubError::BadRequest(format!("cannot write {}: {e}", file.display()))
    })?;
    hub.store.set_meta("demo.mydata.seeded", "1").await?;
    Ok(Some(login))
}
