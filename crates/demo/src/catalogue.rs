//! The demo's MyData catalogue, published once by the local operator: what
//! its ministry, public institution and city hold, with agreements its
//! agency may use (the demo's seed, at the edge of the MyData service).

use civic_hub::{Ctx, Hub, Result};
use civic_mydata::catalogue::{checked_offer, Item, NewOfferRequest};
use civic_mydata::store::MydataStore;
use civic_store::InstitutionStore;

/// The demo's catalogue: what its ministry, public institution and
/// city hold, published once (by the local operator, audited).
pub async fn seed_catalogue(hub: &Hub) -> Result<usize> {
    if !hub.store.offers().await?.is_empty() {
        return Ok(0);
    }
    let institutions = hub.store.institutions().await?;
    let find = |kind: &str| {
        institutions
            .iter()
            .find(|i| i.kind.as_str() == kind)
            .map(|i| i.id)
    };
    let ctx = Ctx::local_operator();
    let mut n = 0;
    for (kind, entry) in demo_catalogue() {
        let Some(holder) = find(kind) else { continue };
        let entry = checked_offer(entry)?;
        let audit = ctx.entry(
            "mydata.offer.publish",
            "mydata-offer",
            civic_core::audit::Outcome::Allowed,
        );
        hub.store
            .create_offer(entry.into_new_offer(holder), audit)
            .await?;
        n += 1;
    }
    Ok(n)
}

fn item(
    name: &str,
    kind: &str,
    description: &str,
    sensitivity: &str,
    legal_basis: &str,
    retention_days: i64,
) -> Item {
    Item {
        name: name.into(),
        kind: kind.into(),
        description: description.into(),
        sensitivity: sensitivity.into(),
        legal_basis: legal_basis.into(),
        retention_days,
    }
}

/// (holder's institution kind, entry)
pub(crate) fn demo_catalogue() -> Vec<(&'static str, NewOfferRequest)> {
    let pipa = "Personal Information Protection Act, art. 35-2 (right to transmission)";
    let resident = "Resident Registration Act, art. 29";
    let nhi = "National Health Insurance Act, art. 96";
    vec![
        (
            "ministry",
            NewOfferRequest {
                kind: "document".into(),
                code: "resident-registration-abstract".into(),
                title: "Resident registration abstract (주민등록표 초본)".into(),
                description:
                    "The citizen's name, resident registration number and address history.".into(),
                legal_basis: resident.into(),
                items: vec![
                    item("name", "string", "Name", "normal", resident, 90),
                    item(
                        "resident_number",
                        "string",
                        "Resident registration number",
                        "unique_id",
                        resident,
                        90,
                    ),
                    item(
                        "address_history",
                        "string",
                        "Addresses with the dates moved in",
                        "normal",
                        resident,
                        90,
                    ),
                ],
            },
        ),
        (
            "ministry",
            NewOfferRequest {
                kind: "document".into(),
                code: "family-relations-certificate".into(),
                title: "Family relations certificate (가족관계증명서)".into(),
                description: "The citizen's parents, spouse and children.".into(),
                legal_basis: "Act on the Registration of Family Relationships, art. 15".into(),
                items: vec![
                    item("name", "string", "Name", "normal", pipa, 90),
                    item(
                        "family_members",
                        "string",
                        "Parents, spouse and children with their birth dates",
                        "normal",
                        pipa,
                        90,
                    ),
                ],
            },
        ),
        (
            "ministry",
            NewOfferRequest {
                kind: "dataset".into(),
                code: "household".into(),
                title: "Household (세대 정보)".into(),
                description: "Items of the citizen's household registration.".into(),
                legal_basis: resident.into(),
                items: vec![
                    item(
                        "household_size",
                        "integer",
                        "People in the household",
                        "normal",
                        resident,
                        365,
                    ),
                    item(
                        "head_of_household",
                        "boolean",
                        "Whether the citizen heads the household",
                        "normal",
                        resident,
                        365,
                    ),
                    item(
                        "moved_in_date",
                        "date",
                        "Date moved in at the current address",
                        "normal",
                        resident,
                        365,
                    ),
                ],
            },
        ),
        (
            "public_institution",
            NewOfferRequest {
                kind: "dataset".into(),
                code: "health-insurance-eligibility".into(),
                title: "Health-insurance eligibility (건강보험 자격)".into(),
                description: "The citizen's national health insurance status.".into(),
                legal_basis: nhi.into(),
                items: vec![
                    item(
                        "insured_type",
                        "string",
                        "Employee, self-employed or dependant",
                        "normal",
                        nhi,
                        365,
                    ),
                    item(
                        "acquired_date",
                        "date",
                        "Date the current eligibility began",
                        "normal",
                        nhi,
                        365,
                    ),
                    item(
                        "workplace",
                        "string",
                        "Employer of an employee-insured",
                        "normal",
                        nhi,
                        180,
                    ),
                ],
            },
        ),
        (
            "public_institution",
            NewOfferRequest {
                kind: "dataset".into(),
                code: "income-bracket".into(),
                title: "Income bracket (소득 분위)".into(),
                description:
                    "The household's income bracket from insurance premiums, 1 (lowest) to 10."
                        .into(),
                legal_basis: nhi.into(),
                items: vec![
                    item(
                        "income_bracket",
                        "integer",
                        "Income bracket, 1-10",
                        "sensitive",
                        nhi,
                        180,
                    ),
                    item(
                        "premium_monthly",
                        "integer",
                        "Monthly premium (KRW)",
                        "sensitive",
                        nhi,
                        180,
                    ),
                ],
            },
        ),
        (
            "public_institution",
            NewOfferRequest {
                kind: "dataset".into(),
                code: "disability-status".into(),
                title: "Disability status (장애 정도)".into(),
                description: "Whether the citizen has a registered disability and its degree."
                    .into(),
                legal_basis: "Act on Welfare of Persons with Disabilities, art. 32".into(),
                items: vec![
                    item(
                        "registered",
                        "boolean",
                        "A registered disability",
                        "sensitive",
                        pipa,
                        180,
                    ),
                    item(
                        "degree",
                        "string",
                        "Severe or not severe",
                        "sensitive",
                        pipa,
                        180,
                    ),
                ],
            },
        ),
        (
            "local_government",
            NewOfferRequest {
                kind: "dataset".into(),
                code: "vehicle-registration".into(),
                title: "Vehicle registration (자동차 등록)".into(),
                description: "Vehicles registered to the citizen.".into(),
                legal_basis: "Motor Vehicle Management Act, art. 7".into(),
                items: vec![
                    item(
                        "vehicles",
                        "integer",
                        "Number of vehicles",
                        "normal",
                        pipa,
                        365,
                    ),
                    item(
                        "vehicle_value",
                        "integer",
                        "Assessed value of the vehicles (KRW)",
                        "normal",
                        pipa,
                        365,
                    ),
                ],
            },
        ),
        (
            "local_government",
            NewOfferRequest {
                kind: "document".into(),
                code: "business-registration".into(),
                title: "Business registration certificate (사업자등록증명)".into(),
                description: "The citizen's registered business.".into(),
                legal_basis: "Value-Added Tax Act, art. 8".into(),
                items: vec![
                    item(
                        "business_number",
                        "string",
                        "Business registration number",
                        "unique_id",
                        pipa,
                        365,
                    ),
                    item("business_name", "string", "Trade name", "normal", pipa, 365),
                    item(
                        "opened_date",
                        "date",
                        "Date the business opened",
                        "normal",
                        pipa,
                        365,
                    ),
                ],
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use civic_hub::HubError;

    #[test]
    fn the_demo_catalogue_is_valid() {
        for (_, entry) in demo_catalogue() {
            checked_offer(entry).unwrap();
        }
    }

    #[test]
    fn wrong_entries_are_refused_with_their_field() {
        let (_, good) = demo_catalogue().remove(0);
        let cases: Vec<(NewOfferRequest, &str)> = vec![
            (
                NewOfferRequest {
                    kind: "leaflet".into(),
                    ..good.clone()
                },
                "kind",
            ),
            (
                NewOfferRequest {
                    code: "Bad Code".into(),
                    ..good.clone()
                },
                "code",
            ),
            (
                NewOfferRequest {
                    items: vec![],
                    ..good.clone()
                },
                "items",
            ),
            (
                NewOfferRequest {
                    items: vec![Item {
                        name: "exp".into(),
                        ..good.items[0].clone()
                    }],
                    ..good.clone()
                },
                "items.name",
            ),
            (
                NewOfferRequest {
                    items: vec![good.items[0].clone(), good.items[0].clone()],
                    ..good.clone()
                },
                "items.name",
            ),
            (
                NewOfferRequest {
                    items: vec![Item {
                        kind: "blob".into(),
                        ..good.items[0].clone()
                    }],
                    ..good.clone()
                },
                "items.type",
            ),
        ];
        for (entry, field) in cases {
            match checked_offer(entry) {
                Err(HubError::Invalid(e)) => assert_eq!(e.field, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
