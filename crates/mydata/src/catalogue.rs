//! Public MyData on the hub, first part: the catalogue of provided
//! documents and datasets that holding institutions publish (open to
//! anyone, with demand statistics), and the linkage consultation — a using
//! agency applies to use a dataset for a named service, the holder asks,
//! approves or rejects; each application is a new version of the
//! agreement, its history kept. An approved agreement is what will let
//! transfers happen (the next part: consents, transfers, credentials).
//!
//! None of this is personal data: writes are audited in their
//! transaction; reads are not.

use crate::store::{
    Agreement, MydataStore, NewAgreement, NewAgreementNote, NewOffer, Offer, TransferStore,
};
use crate::MyData;
use civic_core::error::parse_text;
use civic_core::identity::InstitutionId;
use civic_core::mydata::{AgreementStatus, AgreementStep};
use civic_core::policy::Action;
use civic_hub::{invalid, Ctx, HubError, Result};
use civic_store::InstitutionStore;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use civic_core::mydata::{Item, ITEM_TYPES, SENSITIVITIES};

/// A catalogue entry as published.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewOfferRequest {
    /// `document` (sent whole) or `dataset` (the citizen picks items).
    #[cfg_attr(feature = "openapi", schema(schema_with = offer_kind))]
    pub kind: String,
    /// `[a-z0-9-]`, 2-64 characters, unique in the catalogue.
    #[cfg_attr(feature = "openapi", schema(schema_with = offer_code))]
    pub code: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_200))]
    pub title: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_2000))]
    pub description: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_500))]
    pub legal_basis: String,
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub items: Vec<Item>,
}

/// Who holds an entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstitutionRef {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: InstitutionId,
    pub name: String,
}

/// A catalogue entry, named.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfferRef {
    pub id: civic_core::mydata::OfferId,
    pub kind: String,
    pub code: String,
    pub title: String,
}

/// How much an entry is asked for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Demand {
    /// Approved agreements in force (latest versions).
    pub agreements: u64,
    /// Distinct agencies with one.
    pub agencies: u64,
    /// Transfers delivered from it (credentials issued to agencies).
    pub transfers: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfferView {
    pub id: civic_core::mydata::OfferId,
    pub kind: String,
    pub code: String,
    pub title: String,
    pub description: String,
    pub legal_basis: String,
    pub holder: InstitutionRef,
    pub items: Vec<Item>,
    /// RFC 3339.
    pub published_at: String,
    pub demand: Demand,
}

/// The catalogue's figures, by year and by agency.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogueStats {
    pub by_year: Vec<YearStats>,
    pub by_agency: Vec<AgencyStats>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct YearStats {
    pub year: i32,
    pub documents_published: u64,
    pub datasets_published: u64,
    pub agreements_approved: u64,
    /// Transfers of provided documents and of datasets delivered that year.
    pub documents_used: u64,
    pub datasets_used: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgencyStats {
    pub agency: InstitutionRef,
    /// Agreements in force, on documents and on datasets.
    pub documents: u64,
    pub datasets: u64,
    /// Transfers delivered to the agency.
    pub transfers: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Catalogue {
    pub offers: Vec<OfferView>,
    pub stats: CatalogueStats,
}

/// An agency's application for a linkage agreement.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgreementRequest {
    pub offer_id: civic_core::mydata::OfferId,
    /// The agency's service the data is for (e.g. a subsidy application).
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_200))]
    pub service: String,
    /// The items asked for: all of a document's, or some of a dataset's.
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::names))]
    pub items: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_2000))]
    pub purpose: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_500))]
    pub legal_basis: String,
    /// How long the agency keeps what it receives (days); at most what
    /// each item allows.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 3650))]
    pub retention_days: i64,
}

/// A step of the consultation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgreementNoteRequest {
    /// `question` or `approve` or `reject` (the holder), `answer` (the
    /// agency), `comment` (either).
    #[cfg_attr(feature = "openapi", schema(schema_with = note_kind))]
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_2000))]
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoteView {
    pub user: i64,
    pub kind: AgreementStep,
    pub text: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgreementView {
    pub id: civic_core::mydata::AgreementId,
    pub offer_id: civic_core::mydata::OfferId,
    pub offer_code: String,
    pub offer_title: String,
    pub holder: InstitutionRef,
    pub agency: InstitutionRef,
    pub service: String,
    pub version: i64,
    pub items: Vec<String>,
    pub purpose: String,
    pub legal_basis: String,
    pub retention_days: i64,
    pub status: AgreementStatus,
    pub applied_at: String,
    pub decided_at: Option<String>,
    pub history: Vec<NoteView>,
}

fn check_name(field: &'static str, raw: &str, allowed: fn(u8) -> bool, max: usize) -> Result<()> {
    if raw.is_empty() || raw.len() > max || !raw.bytes().all(allowed) {
        return Err(invalid(
            field,
            format!(
                "must be 1-{max} characters of {}",
                if allowed(b'-') {
                    "a-z, 0-9 and -"
                } else {
                    "a-z, 0-9 and _"
                }
            ),
        ));
    }
    Ok(())
}

pub fn checked_offer(req: NewOfferRequest) -> Result<NewOfferRequest> {
    if !matches!(req.kind.as_str(), "document" | "dataset") {
        return Err(invalid("kind", "must be document or dataset"));
    }
    check_name(
        "code",
        &req.code,
        |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-',
        64,
    )?;
    if req.code.len() < 2 {
        return Err(invalid("code", "must be 2-64 characters of a-z, 0-9 and -"));
    }
    let title = parse_text("title", &req.title, 200)?;
    let description = parse_text("description", &req.description, 2000)?;
    let legal_basis = parse_text("legal_basis", &req.legal_basis, 500)?;
    if req.items.is_empty() || req.items.len() > 100 {
        return Err(invalid("items", "must be 1-100 items"));
    }
    let mut names = BTreeSet::new();
    let mut items = Vec::with_capacity(req.items.len());
    for item in req.items {
        check_name(
            "items.name",
            &item.name,
            |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_',
            64,
        )?;
        if civic_credentials::sdjwt::RESERVED.contains(&item.name.as_str()) {
            return Err(invalid(
                "items.name",
                format!("{} is a name credentials reserve", item.name),
            ));
        }
        if !names.insert(item.name.clone()) {
            return Err(invalid(
                "items.name",
                format!("{} is given twice", item.name),
            ));
        }
        if !ITEM_TYPES.contains(&item.kind.as_str()) {
            return Err(invalid(
                "items.type",
                format!("must be one of {}", ITEM_TYPES.join(", ")),
            ));
        }
        if !SENSITIVITIES.contains(&item.sensitivity.as_str()) {
            return Err(invalid(
                "items.sensitivity",
                format!("must be one of {}", SENSITIVITIES.join(", ")),
            ));
        }
        if !(0..=3650).contains(&item.retention_days) {
            return Err(invalid("items.retention_days", "must be 0-3650"));
        }
        items.push(Item {
            description: parse_text("items.description", &item.description, 500)?,
            legal_basis: parse_text("items.legal_basis", &item.legal_basis, 500)?,
            ..item
        });
    }
    Ok(NewOfferRequest {
        title,
        description,
        legal_basis,
        items,
        ..req
    })
}

impl NewOfferRequest {
    /// The entry to store, once checked.
    pub fn into_new_offer(self, holder: InstitutionId) -> NewOffer {
        NewOffer {
            holder,
            items: self.items,
            kind: self.kind,
            code: self.code,
            title: self.title,
            description: self.description,
            legal_basis: self.legal_basis,
        }
    }
}

fn offer_view(
    offer: &Offer,
    holder: InstitutionRef,
    items: Vec<Item>,
    demand: Demand,
) -> OfferView {
    OfferView {
        id: offer.id,
        kind: offer.kind.clone(),
        code: offer.code.clone(),
        title: offer.title.clone(),
        description: offer.description.clone(),
        legal_basis: offer.legal_basis.clone(),
        holder,
        items,
        published_at: offer.created_at.to_rfc3339(),
        demand,
    }
}

/// Every institution's name, read once for a listing or a batch.
pub(crate) struct InstitutionNames(HashMap<InstitutionId, String>);

impl InstitutionNames {
    pub(crate) fn of(institutions: Vec<civic_store::Institution>) -> Self {
        Self(institutions.into_iter().map(|i| (i.id, i.name)).collect())
    }

    pub(crate) fn name(&self, id: InstitutionId) -> Option<&str> {
        self.0.get(&id).map(String::as_str)
    }

    /// The institution with its name (empty if unknown).
    pub(crate) fn named(&self, id: InstitutionId) -> InstitutionRef {
        InstitutionRef {
            id,
            name: self.name(id).unwrap_or_default().to_owned(),
        }
    }
}

impl MyData {
    pub(crate) async fn institution_names(&self) -> Result<InstitutionNames> {
        Ok(InstitutionNames::of(self.store.institutions().await?))
    }

    pub(crate) async fn institution_ref(&self, id: InstitutionId) -> Result<InstitutionRef> {
        let name = self
            .store
            .institution(id)
            .await?
            .map(|i| i.name)
            .unwrap_or_default();
        Ok(InstitutionRef { id, name })
    }

    /// Publishes a provided document or dataset of the caller's
    /// institution.
    pub async fn publish_offer(&self, ctx: &Ctx, req: NewOfferRequest) -> Result<OfferView> {
        let entry = self
            .authorize(
                ctx,
                Action::PublishMydataOffer,
                "mydata.offer.publish",
                "mydata-offer",
            )
            .await?;
        let holder = ctx.principal().map(|p| p.institution).ok_or_else(|| {
            HubError::BadRequest("an offer is published by a holding institution's operator".into())
        })?;
        let req = checked_offer(req)?;
        let offer = self
            .store
            .create_offer(req.into_new_offer(holder), entry)
            .await?;
        Ok(offer_view(
            &offer,
            self.institution_ref(offer.holder).await?,
            offer.items.clone(),
            Demand::default(),
        ))
    }

    /// The public catalogue, searched by `q` (title, description, code,
    /// item, holder), with its figures.
    pub async fn catalogue(&self, q: Option<&str>) -> Result<Catalogue> {
        let offers = self.store.offers().await?;
        let agreements = self.store.agreements().await?;
        // (offer, agency, year, transfers delivered)
        let counts = self.store.transfer_counts().await?;
        let names = self.institution_names().await?;
        let approved: Vec<&Agreement> = agreements
            .iter()
            .filter(|a| a.status == AgreementStatus::Approved)
            .collect();
        let kind_of: HashMap<civic_core::mydata::OfferId, &str> =
            offers.iter().map(|o| (o.id, o.kind.as_str())).collect();
        let needle = q.map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
        let mut views = Vec::new();
        for offer in &offers {
            let items = offer.items.clone();
            if let Some(n) = &needle {
                let holder = names
                    .name(offer.holder)
                    .map(str::to_lowercase)
                    .unwrap_or_default();
                let hit = [&offer.title, &offer.description, &offer.code]
                    .iter()
                    .any(|f| f.to_lowercase().contains(n.as_str()))
                    || holder.contains(n.as_str())
                    || items.iter().any(|i| {
                        i.name.contains(n.as_str())
                            || i.description.to_lowercase().contains(n.as_str())
                    });
                if !hit {
                    continue;
                }
            }
            let mine: Vec<&&Agreement> = approved.iter().filter(|a| a.offer == offer.id).collect();
            let demand = Demand {
                agreements: mine.len() as u64,
                agencies: mine.iter().map(|a| a.agency).collect::<BTreeSet<_>>().len() as u64,
                transfers: counts
                    .iter()
                    .filter(|(o, ..)| *o == offer.id)
                    .map(|(.., n)| *n as u64)
                    .sum(),
            };
            views.push(offer_view(offer, names.named(offer.holder), items, demand));
        }
        let mut years: BTreeMap<i32, YearStats> = BTreeMap::new();
        let year_of = |t: civic_core::time::Timestamp| {
            time::OffsetDateTime::from_unix_timestamp(t.micros().div_euclid(1_000_000))
                .map(|d| d.year())
                .unwrap_or(1970)
        };
        for o in &offers {
            let y = years.entry(year_of(o.created_at)).or_default();
            if o.kind == "document" {
                y.documents_published += 1;
            } else {
                y.datasets_published += 1;
            }
        }
        let mut by_agency: BTreeMap<InstitutionId, (u64, u64, u64)> = BTreeMap::new();
        for a in &approved {
            let at = a.decided_at.unwrap_or(a.created_at);
            years.entry(year_of(at)).or_default().agreements_approved += 1;
            let slot = by_agency.entry(a.agency).or_default();
            if kind_of.get(&a.offer) == Some(&"document") {
                slot.0 += 1;
            } else {
                slot.1 += 1;
            }
        }
        for &(offer, agency, year, n) in &counts {
            let y = years.entry(year as i32).or_default();
            if kind_of.get(&offer) == Some(&"document") {
                y.documents_used += n as u64;
            } else {
                y.datasets_used += n as u64;
            }
            by_agency.entry(agency).or_default().2 += n as u64;
        }
        let stats = CatalogueStats {
            by_year: years
                .into_iter()
                .map(|(year, s)| YearStats { year, ..s })
                .collect(),
            by_agency: by_agency
                .into_iter()
                .map(|(id, (documents, datasets, transfers))| AgencyStats {
                    agency: names.named(id),
                    documents,
                    datasets,
                    transfers,
                })
                .collect(),
        };
        Ok(Catalogue {
            offers: views,
            stats,
        })
    }

    /// A using agency applies for (a new version of) a linkage agreement.
    pub async fn apply_agreement(&self, ctx: &Ctx, req: AgreementRequest) -> Result<AgreementView> {
        let entry = self
            .authorize(
                ctx,
                Action::ApplyMydataAgreement,
                "mydata.agreement.apply",
                "mydata-agreement",
            )
            .await?;
        let principal = ctx.principal().ok_or_else(|| {
            HubError::BadRequest("an agreement is applied for by an agency's operator".into())
        })?;
        let offer = self
            .store
            .offer(req.offer_id)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("catalogue entry {}", req.offer_id)))?;
        if offer.holder == principal.institution {
            return Err(invalid(
                "offer_id",
                "an institution does not apply for its own data",
            ));
        }
        let items = offer.items.clone();
        let service = parse_text("service", &req.service, 200)?;
        let purpose = parse_text("purpose", &req.purpose, 2000)?;
        let legal_basis = parse_text("legal_basis", &req.legal_basis, 500)?;
        let asked: BTreeSet<&str> = req.items.iter().map(String::as_str).collect();
        if asked.is_empty() || asked.len() != req.items.len() {
            return Err(invalid("items", "must name each item once, at least one"));
        }
        for name in &asked {
            if !items.iter().any(|i| i.name == *name) {
                return Err(invalid(
                    "items",
                    format!("{} is not an item of {}", name, offer.code),
                ));
            }
        }
        if offer.kind == "document" && asked.len() != items.len() {
            return Err(invalid(
                "items",
                "a provided document is sent whole: ask for all its items",
            ));
        }
        let longest = items
            .iter()
            .filter(|i| asked.contains(i.name.as_str()))
            .map(|i| i.retention_days)
            .min()
            .unwrap_or(0);
        if !(0..=longest).contains(&req.retention_days) {
            return Err(invalid(
                "retention_days",
                format!("must be 0-{longest}: the items asked for allow no more"),
            ));
        }
        let agreement = self
            .store
            .apply_agreement(
                NewAgreement {
                    offer: offer.id,
                    agency: principal.institution,
                    service,
                    items: req.items.clone(),
                    purpose,
                    legal_basis,
                    retention_days: req.retention_days,
                    created_by: principal.user,
                },
                entry,
            )
            .await?;
        self.agreement_view(&agreement).await
    }

    async fn agreement_view(&self, a: &Agreement) -> Result<AgreementView> {
        let offer = self
            .store
            .offer(a.offer)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("catalogue entry {}", a.offer)))?;
        let history = self
            .store
            .agreement_notes(a.id)
            .await?
            .into_iter()
            .map(|n| NoteView {
                user: n.user.0,
                kind: n.kind,
                text: n.text,
                at: n.created_at.to_rfc3339(),
            })
            .collect();
        Ok(AgreementView {
            id: a.id,
            offer_id: offer.id,
            offer_code: offer.code.clone(),
            offer_title: offer.title.clone(),
            holder: self.institution_ref(offer.holder).await?,
            agency: self.institution_ref(a.agency).await?,
            service: a.service.clone(),
            version: a.version,
            items: a.items.clone(),
            purpose: a.purpose.clone(),
            legal_basis: a.legal_basis.clone(),
            retention_days: a.retention_days,
            status: a.status,
            applied_at: a.created_at.to_rfc3339(),
            decided_at: a.decided_at.map(|t| t.to_rfc3339()),
            history,
        })
    }

    /// The agreements the caller's institution is party to, as holder or
    /// as agency.
    pub async fn list_agreements(&self, ctx: &Ctx) -> Result<Vec<AgreementView>> {
        self.authorize(
            ctx,
            Action::ListMydataAgreements,
            "mydata.agreement.list",
            "mydata-agreement",
        )
        .await?;
        let Some(me) = ctx.principal().map(|p| p.institution) else {
            return Ok(Vec::new());
        };
        let holders: HashMap<civic_core::mydata::OfferId, InstitutionId> = self
            .store
            .offers()
            .await?
            .into_iter()
            .map(|o| (o.id, o.holder))
            .collect();
        let mut out = Vec::new();
        for a in self.store.agreements().await? {
            if a.agency == me || holders.get(&a.offer) == Some(&me) {
                out.push(self.agreement_view(&a).await?);
            }
        }
        Ok(out)
    }

    /// One agreement, for the institutions party to it.
    pub async fn get_agreement(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::AgreementId,
    ) -> Result<AgreementView> {
        self.authorize(
            ctx,
            Action::ListMydataAgreements,
            "mydata.agreement.read",
            &format!("mydata-agreement:{id}"),
        )
        .await?;
        let (agreement, holder) = self.agreement_and_holder(id).await?;
        let me = ctx.principal().map(|p| p.institution);
        if me.is_some() && me != Some(agreement.agency) && me != Some(holder) {
            return Err(HubError::NotFound(format!("agreement {id}")));
        }
        self.agreement_view(&agreement).await
    }

    async fn agreement_and_holder(
        &self,
        id: civic_core::mydata::AgreementId,
    ) -> Result<(Agreement, InstitutionId)> {
        let agreement = self
            .store
            .agreement(id)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("agreement {id}")))?;
        let holder = self
            .store
            .offer(agreement.offer)
            .await?
            .map(|o| o.holder)
            .ok_or_else(|| HubError::NotFound(format!("agreement {id}")))?;
        Ok((agreement, holder))
    }

    /// A step of the consultation: the holder questions, approves or
    /// rejects (with a reason); the agency answers; either comments.
    pub async fn note_agreement(
        &self,
        ctx: &Ctx,
        id: civic_core::mydata::AgreementId,
        req: AgreementNoteRequest,
    ) -> Result<AgreementView> {
        let resource = format!("mydata-agreement:{id}");
        // Only operators go further (and learn whether it exists).
        self.authorize(
            ctx,
            Action::ListMydataAgreements,
            "mydata.agreement.read",
            &resource,
        )
        .await?;
        let (agreement, holder) = self.agreement_and_holder(id).await?;
        let text = parse_text("text", &req.text, 2000)?;
        let step = AgreementStep::from_name(&req.kind)
            .filter(|s| *s != AgreementStep::Apply)
            .ok_or_else(|| {
                invalid(
                    "kind",
                    "must be question, approve, reject, answer or comment",
                )
            })?;
        let action = match step {
            AgreementStep::Question | AgreementStep::Approve | AgreementStep::Reject => {
                Action::ReviewMydataAgreement { holder }
            }
            AgreementStep::Answer => Action::ApplyMydataAgreement,
            AgreementStep::Comment | AgreementStep::Apply => Action::ListMydataAgreements,
        };
        let principal = ctx
            .principal()
            .ok_or_else(|| HubError::BadRequest("a consultation step is an operator's".into()))?;
        // Who is not party to it learns nothing of it.
        let party = principal.institution == agreement.agency || principal.institution == holder;
        if !party {
            return Err(HubError::NotFound(format!("agreement {id}")));
        }
        let entry = self
            .authorize(ctx, action, &format!("mydata.agreement.{step}"), &resource)
            .await?;
        if step == AgreementStep::Answer && principal.institution != agreement.agency {
            return Err(HubError::Forbidden {
                reason: "only the using agency answers the holder's questions",
                needs_second_factor: false,
            });
        }
        // Checked again in the store's transaction; here so that a step
        // out of turn is refused before anything is written.
        if let Err(why) = agreement.status.after(step) {
            return Err(HubError::Conflict(format!("agreement {id} is {why}")));
        }
        let agreement = self
            .store
            .note_agreement(
                NewAgreementNote {
                    agreement: id,
                    user: principal.user,
                    kind: step,
                    text,
                },
                entry,
            )
            .await?;
        self.agreement_view(&agreement).await
    }
}

#[cfg(feature = "openapi")]
fn note_kind() -> utoipa::openapi::Object {
    // An application is a new version, not a step a note takes.
    let mut steps = AgreementStep::names();
    steps.retain(|s| *s != AgreementStep::Apply.as_str());
    civic_core::schemas::one_of(&steps)
}

#[cfg(feature = "openapi")]
fn offer_kind() -> utoipa::openapi::Object {
    civic_core::schemas::one_of(&["document", "dataset"])
}

#[cfg(feature = "openapi")]
fn offer_code() -> utoipa::openapi::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(r"^[a-z0-9-]{2,64}$"))
        .build()
}
