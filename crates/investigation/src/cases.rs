//! Cases: registered (one by one, by API or from a case register), assigned
//! to investigators of their region, read by those the policy lets.

use super::requests::RequestView;
use super::PURPOSE;
use crate::store::{
    CaseDocument, CaseRecord, CaseStore, DataRequestStore, NewCase, RequestFilter, ResponseStore,
};
use crate::Investigation;
use civic_core::audit::AuditEntry;
use civic_core::identity::{Region, UserId};
use civic_core::investigation::{
    CaseId, CaseStatus, CollectionPurpose, CollectionStatus, ResponseId,
};
use civic_core::policy::{decide, Action};
use civic_core::ValidationError;
use civic_eiss::formats::{RegisteredCase, Subject};
use civic_eiss::route::{Timeline, ToldPlace};
use civic_hub::{Ctx, HubError, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// What is sealed of a case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CaseSecret {
    pub subject: Subject,
    /// Symptom onset: as registered, or estimated from the confirmation
    /// date (`onset_estimated`) where the register had none.
    pub onset: time::Date,
    pub confirmed: time::Date,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onset_estimated: bool,
}

pub(crate) fn case_context(response: ResponseId, number: &str) -> String {
    format!("case:{response}:{number}")
}

pub(crate) fn doc_context(case: CaseId, kind: CaseDocument) -> String {
    format!("doc:{case}:{}", kind.as_str())
}

/// A case in a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseSummary {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: CaseId,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub response: ResponseId,
    /// The health authority's case number.
    pub number: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub region: Region,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: CaseStatus,
    /// Symptom onset and confirmation (local dates).
    pub onset: String,
    pub confirmed: String,
    /// True where the onset was not registered: it is then the response's
    /// `onset_to_confirmation_days` before confirmation.
    #[serde(default)]
    pub onset_estimated: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<i64>))]
    pub assigned: Vec<UserId>,
    /// The case it was a contact of, if it was found that way.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub source_case: Option<CaseId>,
    /// Its cluster (the source case's id), if linked to others.
    pub cluster: Option<i64>,
}

/// One holder's part of a case's collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CollectionView {
    pub node: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub purpose: CollectionPurpose,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: CollectionStatus,
    /// A refusal's or failure's reason.
    pub detail: Option<String>,
    pub requested_at: String,
    pub finished_at: Option<String>,
}

/// A case with what its reader may see.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseDetail {
    pub case: CaseSummary,
    /// Who the case is, for the investigators working on it (not for
    /// approvers, who decide on requests without it).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub subject: Option<Subject>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub interview: Vec<ToldPlace>,
    pub requests: Vec<RequestView>,
    pub collections: Vec<CollectionView>,
}

/// A new case as given through the API.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewCaseRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::case_number))]
    pub number: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::region))]
    pub region: String,
    /// YYYY-MM-DD (local); empty or absent when not known: the hub then
    /// estimates it from the confirmation date.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::optional_date))]
    pub onset_date: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::date))]
    pub confirmed_date: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub subject: Subject,
}

impl NewCaseRequest {
    pub fn parse(self) -> Result<RegisteredCase> {
        let onset = match self.onset_date.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(super::date_field("onset_date", raw)?),
        };
        let confirmed = super::date_field("confirmed_date", &self.confirmed_date)?;
        if let Some(onset) = onset {
            civic_eiss::formats::check_case_dates(onset, confirmed)
                .map_err(|e| ValidationError::new("confirmed_date", e))?;
        }
        let number = civic_eiss::formats::case_number(0, self.number.trim())
            .map_err(|e| ValidationError::new("number", e.message))?;
        for (code, _) in self.subject.phones.iter().chain(&self.subject.cards) {
            if civic_eiss::formats::holder_code(code).as_deref() != Some(code.as_str()) {
                return Err(ValidationError::new(
                    "subject",
                    format!("{code:?} is not a holder code"),
                )
                .into());
            }
        }
        if let Some((lat, lon)) = self.subject.home {
            if !(lat.abs() <= 90.0 && lon.abs() <= 180.0) {
                return Err(ValidationError::new("subject.home", "must be degrees").into());
            }
        }
        for text in [&self.subject.name, &self.subject.phone_number]
            .into_iter()
            .flatten()
        {
            civic_core::error::parse_text("subject", text, 200)?;
        }
        Ok(RegisteredCase {
            number,
            region: self.region,
            onset,
            confirmed,
            subject: self.subject,
        })
    }
}

/// Filters of a case list; each narrows.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct CaseFilter {
    /// A region or any of its parts (`seoul` matches `seoul-gangbuk`).
    #[cfg_attr(feature = "openapi", param(pattern = r"^\s*[A-Za-z0-9-]{1,64}\s*$"))]
    pub region: Option<String>,
    #[cfg_attr(feature = "openapi", param(pattern = "^(open|closed)?$"))]
    pub status: Option<String>,
    /// A cluster id (its source case's id).
    pub cluster: Option<i64>,
    /// Confirmed on or after / before this date (YYYY-MM-DD).
    #[cfg_attr(feature = "openapi", param(format = Date, pattern = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$"))]
    pub confirmed_from: Option<String>,
    #[cfg_attr(feature = "openapi", param(format = Date, pattern = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$"))]
    pub confirmed_until: Option<String>,
    /// Part of the case number.
    pub q: Option<String>,
}

impl CaseFilter {
    /// Refuses a filter whose values do not parse.
    fn check(&self) -> Result<()> {
        self.region.as_deref().map(Region::parse).transpose()?;
        self.status.as_deref().map(CaseStatus::parse).transpose()?;
        for (raw, field) in [
            (&self.confirmed_from, "confirmed_from"),
            (&self.confirmed_until, "confirmed_until"),
        ] {
            raw.as_deref()
                .map(|d| super::date_field(field, d))
                .transpose()?;
        }
        Ok(())
    }
}

impl Investigation {
    pub(crate) fn case_secret(
        &self,
        key: &super::DataKey,
        record: &CaseRecord,
    ) -> Result<CaseSecret> {
        key.open_json(
            &case_context(record.response, &record.number),
            &record.sealed,
        )
    }

    /// Registers cases in an open response, all or none; each is assigned
    /// to the investigator of its region with the fewest open cases.
    pub async fn register_cases(
        &self,
        ctx: &Ctx,
        response: ResponseId,
        cases: Vec<RegisteredCase>,
    ) -> Result<Vec<CaseSummary>> {
        if cases.is_empty() {
            return Err(ValidationError::new("cases", "none given").into());
        }
        let mut regions = BTreeSet::new();
        let mut parsed = Vec::with_capacity(cases.len());
        for c in cases {
            let region = Region::parse(&c.region)?;
            regions.insert(region.clone());
            parsed.push((region, c));
        }
        let mut entry = None;
        for region in &regions {
            let e = self
                .authorize(
                    ctx,
                    Action::RegisterCase { region },
                    "eiss.case.register",
                    &format!("response:{response}"),
                )
                .await?;
            entry.get_or_insert(e);
        }
        let (record, rules) = self.open_response_record(response).await?;
        let key = self.data_key(response).await?;
        let mut loads = self.store.investigator_loads().await?;
        let mut new = Vec::with_capacity(parsed.len());
        for (region, c) in parsed {
            let assignee = loads
                .iter_mut()
                .filter(|(_, r, _)| civic_core::policy::region_covers(r, &region))
                .min_by_key(|(u, _, n)| (*n, *u));
            let assigned = match assignee {
                Some((user, _, n)) => {
                    *n += 1;
                    vec![*user]
                }
                None => Vec::new(),
            };
            let secret = CaseSecret {
                subject: c.subject,
                onset: c
                    .onset
                    .unwrap_or_else(|| rules.estimated_onset(c.confirmed)),
                confirmed: c.confirmed,
                onset_estimated: c.onset.is_none(),
            };
            new.push(NewCase {
                response,
                sealed: key.seal_json(&case_context(response, &c.number), &secret),
                number: c.number,
                region,
                source_case: None,
                assigned,
            });
        }
        let n = new.len();
        let entry = entry
            .expect("at least one region")
            .purpose(PURPOSE, &record.legal_basis)
            .reason(format!("{n} cases"));
        let created = self.store.create_cases(new, entry).await?;
        let mut out = Vec::with_capacity(created.len());
        for c in &created {
            out.push(self.summary(&key, c, None)?);
        }
        Ok(out)
    }

    /// Registers the cases of a case register (CSV).
    pub async fn import_cases(
        &self,
        ctx: &Ctx,
        response: ResponseId,
        csv: &str,
    ) -> Result<Vec<CaseSummary>> {
        // Any investigator may try; each case's region is checked below.
        self.authorize(
            ctx,
            Action::Investigate,
            "eiss.case.register",
            &format!("response:{response}"),
        )
        .await?;
        let cases = civic_eiss::formats::case_register(csv)
            .map_err(|e| HubError::BadRequest(format!("case register: {e}")))?;
        self.register_cases(ctx, response, cases).await
    }

    pub(crate) fn summary(
        &self,
        key: &super::DataKey,
        c: &CaseRecord,
        cluster: Option<i64>,
    ) -> Result<CaseSummary> {
        let secret = self.case_secret(key, c)?;
        Ok(CaseSummary {
            id: c.id,
            response: c.response,
            number: c.number.clone(),
            region: c.region.clone(),
            status: c.status,
            onset: secret.onset.to_string(),
            confirmed: secret.confirmed.to_string(),
            onset_estimated: secret.onset_estimated,
            assigned: c.assigned.clone(),
            source_case: c.source_case,
            cluster,
        })
    }

    /// A case's record if the caller may `action` it (the policy decides
    /// on its region and assignment; a case that does not exist is judged
    /// as one of another region).
    pub(crate) async fn case_for(
        &self,
        ctx: &Ctx,
        id: CaseId,
        work: bool,
        audit_action: &str,
    ) -> Result<(CaseRecord, civic_core::audit::AuditEntry)> {
        let meta = self.store.case_meta(id).await?;
        let nowhere = Region::parse("nowhere").expect("a region");
        let (region, assigned) = match &meta {
            Some(m) => (&m.region, m.assigned.as_slice()),
            None => (&nowhere, &[][..]),
        };
        let action = if work {
            Action::WorkCase {
                region,
                assigned_to: assigned,
            }
        } else {
            Action::ReadCase {
                region,
                assigned_to: assigned,
            }
        };
        let entry = self
            .authorize(ctx, action, audit_action, &format!("case:{id}"))
            .await?;
        let meta = meta.ok_or_else(|| HubError::NotFound(format!("case {id}")))?;
        let response = self.store.response(meta.response).await?;
        let entry = entry
            .subject(format!("case:{id}"))
            .purpose(PURPOSE, response.map(|r| r.legal_basis).unwrap_or_default());
        Ok((meta, entry))
    }

    /// The cases of a response the caller may read, filtered.
    pub async fn list_cases(
        &self,
        ctx: &Ctx,
        response: ResponseId,
        filter: CaseFilter,
    ) -> Result<Vec<CaseSummary>> {
        // A bad filter is refused whether or not any case would be shown.
        filter.check()?;
        let entry = self
            .authorize(
                ctx,
                Action::ReadClusters,
                "eiss.case.list",
                &format!("response:{response}"),
            )
            .await?;
        let Some(principal) = ctx.principal().cloned() else {
            return self.list_cases_as_operator(response, filter, entry).await;
        };
        let metas = self.store.case_metas(response).await?;
        let visible: Vec<CaseId> = metas
            .iter()
            .filter(|m| {
                decide(
                    &principal,
                    Action::ReadCase {
                        region: &m.region,
                        assigned_to: &m.assigned,
                    },
                )
                .is_ok()
            })
            .map(|m| m.id)
            .collect();
        if visible.is_empty() {
            return Ok(Vec::new());
        }
        self.read_case_list(response, &visible, filter, entry).await
    }

    async fn list_cases_as_operator(
        &self,
        response: ResponseId,
        filter: CaseFilter,
        entry: civic_core::audit::AuditEntry,
    ) -> Result<Vec<CaseSummary>> {
        let ids: Vec<CaseId> = self
            .store
            .case_metas(response)
            .await?
            .iter()
            .map(|m| m.id)
            .collect();
        self.read_case_list(response, &ids, filter, entry).await
    }

    async fn read_case_list(
        &self,
        response: ResponseId,
        ids: &[CaseId],
        filter: CaseFilter,
        entry: civic_core::audit::AuditEntry,
    ) -> Result<Vec<CaseSummary>> {
        let key = self.data_key(response).await?;
        let record = self.store.response(response).await?;
        let entry = entry
            .purpose(PURPOSE, record.map(|r| r.legal_basis).unwrap_or_default())
            .reason(format!("{} cases", ids.len()));
        let cases = self.store.read_cases(response, ids, entry).await?;
        let clusters: HashMap<i64, i64> = self
            .cluster_assignments(response)
            .await?
            .into_iter()
            .collect();
        let region = filter.region.as_deref().map(Region::parse).transpose()?;
        let status = filter
            .status
            .as_deref()
            .map(CaseStatus::parse)
            .transpose()?;
        let date = |raw: &Option<String>, field: &'static str| {
            raw.as_deref()
                .map(|d| super::date_field(field, d))
                .transpose()
        };
        let (from, until) = (
            date(&filter.confirmed_from, "confirmed_from")?,
            date(&filter.confirmed_until, "confirmed_until")?,
        );
        let mut out = Vec::new();
        for c in &cases {
            let cluster = clusters.get(&c.id.0).copied();
            let s = self.summary(&key, c, cluster)?;
            let secret_confirmed = civic_eiss::formats::parse_date(&s.confirmed);
            let keep = region
                .as_ref()
                .is_none_or(|r| civic_core::policy::region_covers(r, &c.region))
                && status.is_none_or(|st| st == c.status)
                && filter.cluster.is_none_or(|k| s.cluster == Some(k))
                && from.is_none_or(|f| secret_confirmed.is_some_and(|d| d >= f))
                && until.is_none_or(|u| secret_confirmed.is_some_and(|d| d <= u))
                && filter
                    .q
                    .as_deref()
                    .is_none_or(|q| c.number.contains(q.trim()));
            if keep {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// One case, with who it is for the investigators working on it.
    pub async fn get_case(&self, ctx: &Ctx, id: CaseId) -> Result<CaseDetail> {
        let (meta, entry) = self.case_for(ctx, id, false, "eiss.case.read").await?;
        let key = self.data_key(meta.response).await?;
        let interview_entry = {
            let mut e = entry.clone();
            e.action = "eiss.case.interview.read".into();
            e
        };
        let record = self
            .store
            .read_cases(meta.response, &[id], entry)
            .await?
            .pop()
            .ok_or_else(|| HubError::NotFound(format!("case {id}")))?;
        let secret = self.case_secret(&key, &record)?;
        let cluster = self
            .cluster_assignments(meta.response)
            .await?
            .into_iter()
            .find(|(c, _)| *c == id.0)
            .map(|(_, k)| k);
        // The interview is the investigators' work on the case.
        let works = self.allows(
            ctx,
            Action::WorkCase {
                region: &meta.region,
                assigned_to: &meta.assigned,
            },
        );
        let interview = if works {
            self.interview_of(&key, meta.response, id, interview_entry)
                .await?
        } else {
            Vec::new()
        };
        let requests = self
            .store
            .request_metas(RequestFilter {
                case: Some(id),
                ..RequestFilter::default()
            })
            .await?
            .into_iter()
            .map(|r| RequestView::meta(&r, &record.number))
            .collect();
        let collections = self
            .store
            .collection_metas(Some(id), None)
            .await?
            .into_iter()
            .map(|c| CollectionView {
                node: c.node,
                purpose: c.purpose,
                status: c.status,
                detail: c.detail,
                requested_at: c.created_at.to_rfc3339(),
                finished_at: c.finished_at.map(|t| t.to_rfc3339()),
            })
            .collect();
        Ok(CaseDetail {
            case: self.summary(&key, &record, cluster)?,
            subject: works.then_some(secret.subject),
            interview,
            requests,
            collections,
        })
    }

    pub(crate) async fn interview_of(
        &self,
        key: &super::DataKey,
        response: ResponseId,
        id: CaseId,
        entry: AuditEntry,
    ) -> Result<Vec<ToldPlace>> {
        let docs = self
            .store
            .documents(response, &[id], CaseDocument::Interview, entry)
            .await?;
        match docs.first() {
            Some((_, sealed)) => key.open_json(&doc_context(id, CaseDocument::Interview), sealed),
            None => Ok(Vec::new()),
        }
    }

    /// Whether the holder of `bearer` may still follow case `id`: still
    /// signed in, and the case still his to work on. For an open feed's
    /// re-checks: no audit, and not counted as activity.
    pub async fn may_still_follow(&self, bearer: &str, id: CaseId) -> bool {
        let Ok(civic_hub::Actor::User { principal, .. }) = self.check_bearer(bearer, false).await
        else {
            return false;
        };
        let Ok(Some(meta)) = self.store.case_meta(id).await else {
            return false;
        };
        decide(
            &principal,
            Action::WorkCase {
                region: &meta.region,
                assigned_to: &meta.assigned,
            },
        )
        .is_ok()
    }

    /// Opens a case's live feed: who may read the case may follow it; the
    /// subscription is audited.
    pub async fn follow_case(&self, ctx: &Ctx, id: CaseId) -> Result<()> {
        use civic_store::AuditStore;
        let (_, entry) = self.case_for(ctx, id, true, "eiss.case.follow").await?;
        self.store.append_audit(entry).await?;
        Ok(())
    }

    /// Assigns a case to investigators (replacing who had it).
    pub async fn assign_case(&self, ctx: &Ctx, id: CaseId, users: Vec<UserId>) -> Result<()> {
        let (_, entry) = self.case_for(ctx, id, true, "eiss.case.assign").await?;
        let loads = self.store.investigator_loads().await?;
        if let Some(u) = users
            .iter()
            .find(|u| !loads.iter().any(|(l, _, _)| l == *u))
        {
            return Err(
                ValidationError::new("users", format!("user {u} is no investigator")).into(),
            );
        }
        self.store.assign_case(id, users, entry).await?;
        // Its feed may no longer be its former investigators'.
        self.activity().changed();
        Ok(())
    }

    /// Records (replaces) a case's interview: the places the case told,
    /// in the case-route format; the route is checked against it again.
    pub async fn set_interview(&self, ctx: &Ctx, id: CaseId, told: Vec<ToldPlace>) -> Result<()> {
        let (meta, entry) = self.case_for(ctx, id, true, "eiss.case.interview").await?;
        for t in &told {
            if !(t.lat.abs() <= 90.0 && t.lon.abs() <= 180.0 && t.start <= t.end) {
                return Err(ValidationError::new(
                    "interview",
                    "each place needs degrees and start <= end",
                )
                .into());
            }
        }
        let key = self.data_key(meta.response).await?;
        let sealed = key.seal_json(&doc_context(id, CaseDocument::Interview), &told);
        self.store
            .put_document(id, CaseDocument::Interview, sealed, entry)
            .await?;
        self.rebuild_case(meta.response, id).await
    }

    /// Records (replaces) a case's interview given as a case-route file
    /// of its own rows (the `case_id` column is ignored), read in the
    /// local time of the case's response.
    pub async fn set_interview_csv(&self, ctx: &Ctx, id: CaseId, csv: &str) -> Result<()> {
        let (meta, _) = self.case_for(ctx, id, true, "eiss.case.interview").await?;
        let (_, rules) = self.open_response_record(meta.response).await?;
        let told = civic_eiss::formats::case_routes(csv, &rules)
            .map_err(|e| {
                HubError::BadRequest(format!(
                    "interview: row {}: {}",
                    e.line.saturating_sub(1),
                    e.message
                ))
            })?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        self.set_interview(ctx, id, told).await
    }

    /// Records the interviews of many cases from a case-route file (by
    /// case number).
    pub async fn import_interviews(
        &self,
        ctx: &Ctx,
        response: ResponseId,
        csv: &str,
    ) -> Result<usize> {
        self.authorize(
            ctx,
            Action::Investigate,
            "eiss.case.interview",
            &format!("response:{response}"),
        )
        .await?;
        let (_, rules) = self.open_response_record(response).await?;
        let rows = civic_eiss::formats::case_routes(csv, &rules)
            .map_err(|e| HubError::BadRequest(format!("interviews: {e}")))?;
        let mut by_case: HashMap<String, Vec<ToldPlace>> = HashMap::new();
        for (number, place) in rows {
            by_case.entry(number).or_default().push(place);
        }
        // Every case must exist and be the caller's before anything is kept.
        let mut cases = Vec::new();
        for number in by_case.keys() {
            let meta = self
                .store
                .case_by_number(response, number)
                .await?
                .ok_or_else(|| {
                    HubError::NotFound(format!("case {number:?} in response {response}"))
                })?;
            self.case_for(ctx, meta.id, true, "eiss.case.interview")
                .await?;
            cases.push((meta.id, number.clone()));
        }
        for (id, number) in &cases {
            self.set_interview(ctx, *id, by_case.remove(number).unwrap_or_default())
                .await?;
        }
        Ok(cases.len())
    }

    /// A case's reconstructed route.
    pub async fn timeline(&self, ctx: &Ctx, id: CaseId) -> Result<Timeline> {
        let (meta, entry) = self.case_for(ctx, id, true, "eiss.case.timeline").await?;
        let key = self.data_key(meta.response).await?;
        let docs = self
            .store
            .documents(meta.response, &[id], CaseDocument::Timeline, entry)
            .await?;
        match docs.first() {
            Some((_, sealed)) => key.open_json(&doc_context(id, CaseDocument::Timeline), sealed),
            None => Ok(Timeline::default()),
        }
    }
}
