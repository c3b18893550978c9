//! The due procedure: an investigator asks for a case's data, with a
//! reason, within the response's look-back; an approver of the health
//! authority decides; for location data a police location officer
//! decides too. Each decision is signed (the decider's own key endorses
//! every grant) and audited; a rejection gives a reason; nothing reaches a
//! node before the chain is complete. Then the hub endorses the grants and
//! the collection starts, and the patient's notice goes to the outbox.

use super::cases::CaseSecret;
use super::{DataKey, PURPOSE};
use crate::store::{
    CaseStore, DataRequest, DataRequestStore, Decision, NewCollection, NewDataRequest,
    NewOutboxMessage, RequestFilter,
};
use crate::Investigation;
use civic_core::identity::{DutyKind, UserId};
use civic_core::investigation::{
    parse_reason, CaseId, CollectionPurpose, DataItem, DataRequestId, RequestStatus, ResponseId,
};
use civic_core::policy::Action;
use civic_core::time::Timestamp;
use civic_core::ValidationError;
use civic_eiss::contacts::{max_windows, MAX_WINDOW_RADIUS_M, MAX_WINDOW_SPAN_S};
use civic_exchange::{Grant, Item, Question, Role, SignedGrant};
use civic_hub::{Ctx, HubError, Result};
use civic_store::{InstitutionStore, Node, NodeStore};
use serde::{Deserialize, Serialize};

/// One grant the approval gives, to one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Planned {
    pub node: String,
    pub purpose: CollectionPurpose,
    pub grant: SignedGrant,
}

/// What is sealed of a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RequestSecret {
    pub reason: String,
    /// Once an approver approved: the grants, as endorsed so far.
    #[serde(default)]
    pub grants: Vec<Planned>,
    /// Holders of the case's identifiers with no node to ask.
    #[serde(default)]
    pub unreachable: Vec<String>,
}

pub(crate) fn request_context(case: CaseId) -> String {
    format!("request:{case}")
}

fn decision_context(request: DataRequestId, duty: DutyKind) -> String {
    format!("decision:{request}:{duty}")
}

/// A decision as shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepView {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub duty: DutyKind,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub user: UserId,
    pub approve: bool,
    pub reason: Option<String>,
    pub decided_at: String,
}

/// A data request as shown: what is asked, for which case, which items,
/// which window, why; and where its procedure stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestView {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: DataRequestId,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub case: CaseId,
    pub case_number: String,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub response: ResponseId,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub items: Vec<DataItem>,
    /// Whether the holders are asked who was where the case was.
    pub contacts: bool,
    /// The period of the data asked for (RFC 3339).
    pub data_from: String,
    pub data_until: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: RequestStatus,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub requested_by: UserId,
    pub requested_at: String,
    /// The investigator's reason (for those who decide and the case's
    /// investigators).
    pub reason: Option<String>,
    pub decisions: Vec<StepView>,
    /// The holders' nodes the grants go to, once approved.
    pub holders: Vec<String>,
    /// Holders of the case's identifiers that have no node.
    pub unreachable: Vec<String>,
}

fn rfc3339(unix: i64) -> String {
    Timestamp::from_micros(unix.saturating_mul(1_000_000)).to_rfc3339()
}

impl RequestView {
    pub(crate) fn meta(r: &DataRequest, number: &str) -> Self {
        Self {
            id: r.id,
            case: r.case,
            case_number: number.to_owned(),
            response: r.response,
            items: r.items.clone(),
            contacts: r.contacts,
            data_from: rfc3339(r.data_from),
            data_until: rfc3339(r.data_until),
            status: r.status,
            requested_by: r.requested_by,
            requested_at: r.created_at.to_rfc3339(),
            reason: None,
            decisions: r
                .decisions
                .iter()
                .map(|d| StepView {
                    duty: d.duty,
                    user: d.user,
                    approve: d.approve,
                    reason: None,
                    decided_at: d.decided_at.to_rfc3339(),
                })
                .collect(),
            holders: Vec::new(),
            unreachable: Vec::new(),
        }
    }

    fn full(r: &DataRequest, number: &str, key: &DataKey) -> Result<Self> {
        let mut v = Self::meta(r, number);
        let secret: RequestSecret = key.open_json(&request_context(r.case), &r.sealed)?;
        v.reason = Some(secret.reason);
        let mut holders: Vec<String> = secret.grants.iter().map(|g| g.node.clone()).collect();
        holders.sort();
        holders.dedup();
        v.holders = holders;
        v.unreachable = secret.unreachable;
        for (step, d) in v.decisions.iter_mut().zip(&r.decisions) {
            let reason: String = key.open_json(&decision_context(r.id, d.duty), &d.sealed)?;
            step.reason = (!reason.is_empty()).then_some(reason);
        }
        Ok(v)
    }
}

/// A request for a case's data, as asked through the API.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DataRequestInput {
    /// `location_pings`, `card_transactions`, `transit_taps`.
    #[cfg_attr(feature = "openapi", schema(schema_with = data_items))]
    pub items: Vec<String>,
    /// Why this data is needed.
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::reason))]
    pub reason: String,
    /// Also ask the holders who was where the case was (default true).
    #[serde(default = "yes")]
    pub contacts: bool,
    /// The period (YYYY-MM-DD, local); default and bound: from the
    /// response's source look-back before onset to confirmation.
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::date_or_null))]
    pub from: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::date_or_null))]
    pub until: Option<String>,
}

fn yes() -> bool {
    true
}

impl Investigation {
    /// An investigator working on the case asks for its data.
    pub async fn request_data(
        &self,
        ctx: &Ctx,
        case: CaseId,
        input: DataRequestInput,
    ) -> Result<RequestView> {
        let mut items = input
            .items
            .iter()
            .map(|i| DataItem::parse(i))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        items.sort_by_key(|i| i.as_str());
        items.dedup();
        if items.is_empty() {
            return Err(ValidationError::new("items", "name at least one item").into());
        }
        let reason = parse_reason(&input.reason)?;
        let (meta, entry) = self
            .case_for(ctx, case, true, "eiss.request.create")
            .await?;
        let Some(principal) = ctx.principal() else {
            return Err(HubError::Forbidden {
                reason: "a data request is made by an investigator, not the local operator",
                needs_second_factor: false,
            });
        };
        let (_, rules) = self.open_response_record(meta.response).await?;
        let key = self.data_key(meta.response).await?;
        let record = self
            .store
            .read_cases(
                meta.response,
                &[case],
                self.system_entry("eiss.case.read", format!("case:{case}")),
            )
            .await?
            .pop()
            .ok_or_else(|| HubError::NotFound(format!("case {case}")))?;
        let secret = self.case_secret(&key, &record)?;
        let (bound_from, bound_until) = rules.data_period(secret.onset, secret.confirmed);
        let day = |raw: &Option<String>, field: &'static str| {
            raw.as_deref()
                .map(|d| super::date_field(field, d))
                .transpose()
        };
        let from = day(&input.from, "from")?.map_or(bound_from, |d| rules.midnight(d));
        let until = day(&input.until, "until")?
            .map_or(bound_until, |d| rules.midnight(d) + civic_eiss::DAY - 1);
        if from < bound_from || until > bound_until || from > until {
            return Err(ValidationError::new(
                "period",
                format!(
                    "must lie within the response's look-back, {} to {}",
                    rules.local_date(bound_from),
                    rules.local_date(bound_until)
                ),
            )
            .into());
        }
        let request = self
            .store
            .create_data_request(
                NewDataRequest {
                    case,
                    items,
                    contacts: input.contacts,
                    data_from: from,
                    data_until: until,
                    requested_by: principal.user,
                    sealed: key.seal_json(
                        &request_context(case),
                        &RequestSecret {
                            reason,
                            grants: Vec::new(),
                            unreachable: Vec::new(),
                        },
                    ),
                },
                entry,
            )
            .await?;
        RequestView::full(&request, &meta.number, &key)
    }

    /// Data requests: for approvers those awaiting them, for police
    /// location officers those awaiting the police; for a case's
    /// investigators, the case's (`case`).
    pub async fn list_requests(&self, ctx: &Ctx, case: Option<CaseId>) -> Result<Vec<RequestView>> {
        if let Some(case) = case {
            let (meta, entry) = self.case_for(ctx, case, false, "eiss.request.list").await?;
            let key = self.data_key(meta.response).await?;
            let requests = self
                .store
                .read_requests(
                    RequestFilter {
                        case: Some(case),
                        ..RequestFilter::default()
                    },
                    entry,
                )
                .await?;
            return requests
                .iter()
                .map(|r| RequestView::full(r, &meta.number, &key))
                .collect();
        }
        let duty = self.deciding_duty(ctx);
        let entry = self
            .authorize(
                ctx,
                Action::DecideDataRequests { as_duty: duty },
                "eiss.request.inbox",
                "data_requests",
            )
            .await?;
        let status = match duty {
            DutyKind::PoliceLocationOfficer => RequestStatus::AwaitingPolice,
            _ => RequestStatus::AwaitingApprover,
        };
        let requests = self
            .store
            .read_requests(
                RequestFilter {
                    statuses: vec![status],
                    ..RequestFilter::default()
                },
                entry,
            )
            .await?;
        let mut out = Vec::with_capacity(requests.len());
        for r in &requests {
            let Some(meta) = self.store.case_meta(r.case).await? else {
                continue;
            };
            let Ok(key) = self.data_key(r.response).await else {
                continue; // a response closing meanwhile
            };
            out.push(RequestView::full(r, &meta.number, &key)?);
        }
        Ok(out)
    }

    /// The duty in which the caller decides (the policy's choice; the
    /// local operator decides as an approver).
    fn deciding_duty(&self, ctx: &Ctx) -> DutyKind {
        ctx.principal()
            .map_or(DutyKind::Approver, civic_core::policy::deciding_duty)
    }

    /// Decides a data request in the caller's duty: an approver of the
    /// health authority first, then (location data) a police location
    /// officer. A rejection needs a reason. The last approval starts the
    /// collection.
    pub async fn decide_request(
        &self,
        ctx: &Ctx,
        id: DataRequestId,
        approve: bool,
        reason: Option<&str>,
    ) -> Result<RequestView> {
        let reason = match (approve, reason.map(str::trim).filter(|r| !r.is_empty())) {
            (false, None) => {
                return Err(ValidationError::new("reason", "a rejection needs a reason").into())
            }
            (_, Some(r)) => parse_reason(r)?,
            (true, None) => String::new(),
        };
        let duty = self.deciding_duty(ctx);
        let resource = format!("data_request:{id}");
        let entry = self
            .authorize(
                ctx,
                Action::DecideDataRequests { as_duty: duty },
                "eiss.request.decide",
                &resource,
            )
            .await?;
        let Some(principal) = ctx.principal().cloned() else {
            return Err(HubError::Forbidden {
                reason: "a decision is made by a person, not the local operator",
                needs_second_factor: false,
            });
        };
        let request = self.request_meta(id).await?;
        let expected = match duty {
            DutyKind::PoliceLocationOfficer => RequestStatus::AwaitingPolice,
            _ => RequestStatus::AwaitingApprover,
        };
        if request.status != expected {
            return Err(HubError::Conflict(format!(
                "data request {id} is {}, not awaiting a {duty}'s decision",
                request.status
            )));
        }
        if request.requested_by == principal.user {
            return Err(HubError::Forbidden {
                reason: "no one decides her own request",
                needs_second_factor: false,
            });
        }
        let (response, _) = self.open_response_record(request.response).await?;
        let key = self.data_key(request.response).await?;
        let meta = self
            .store
            .case_meta(request.case)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("case {}", request.case)))?;
        let mut secret = self.request_secret(&key, &request).await?;
        let decision = Decision {
            duty,
            user: principal.user,
            approve,
            sealed: key.seal_json(&decision_context(id, duty), &reason),
            decided_at: Timestamp::now(),
        };
        let mut entry = entry
            .subject(format!("case:{}", request.case))
            .purpose(PURPOSE, &response.legal_basis);
        if !approve {
            entry.reason = Some("rejected".into());
            self.store
                .decide_request(id, decision, expected, RequestStatus::Rejected, None, entry)
                .await?;
            return self.request_view(id).await;
        }
        let now = Timestamp::now().micros() / 1_000_000;
        let next;
        match duty {
            DutyKind::PoliceLocationOfficer => {
                if secret
                    .grants
                    .iter()
                    .any(|g| g.grant.grant.expires_at <= now)
                {
                    self.store
                        .set_request_status(id, expected, RequestStatus::Expired)
                        .await?;
                    return Err(HubError::Conflict(format!(
                        "data request {id}'s grants expired before the police decided: the investigator asks again"
                    )));
                }
                for planned in secret.grants.iter_mut() {
                    if planned.grant.grant.items.iter().any(|i| i.is_location()) {
                        planned.grant = self
                            .endorse_grant(
                                ctx,
                                DutyKind::PoliceLocationOfficer,
                                planned.grant.clone(),
                            )
                            .await?;
                    }
                }
                next = RequestStatus::Collecting;
            }
            _ => {
                let case_secret = self
                    .case_secret_of(&key, request.response, request.case)
                    .await?;
                let requester = self
                    .store
                    .institution(full_requester(&self.store, request.requested_by).await?)
                    .await?
                    .map(|i| i.name)
                    .unwrap_or_default();
                let (planned, unreachable) = self
                    .plan_grants(
                        &request,
                        &meta.number,
                        &response.legal_basis,
                        &requester,
                        &case_secret,
                        now,
                    )
                    .await?;
                let mut endorsed = Vec::with_capacity(planned.len());
                for p in planned {
                    let grant = self.endorse_grant(ctx, DutyKind::Approver, p.grant).await?;
                    endorsed.push(Planned { grant, ..p });
                }
                secret.grants = endorsed;
                secret.unreachable = unreachable;
                next = if request.items.iter().any(|i| i.is_location()) {
                    RequestStatus::AwaitingPolice
                } else {
                    RequestStatus::Collecting
                };
            }
        }
        let sealed = key.seal_json(&request_context(request.case), &secret);
        self.store
            .decide_request(id, decision, expected, next, Some(sealed), entry)
            .await?;
        if next == RequestStatus::Collecting {
            // The decision stands; a dispatch that fails is taken up again
            // by the hub's periodic retry (retry_stalled_requests).
            if let Err(e) = self.dispatch(id).await {
                tracing::error!(request = id.0, error = %e, "starting an approved request failed");
            }
        }
        self.request_view(id).await
    }

    /// A data request without its sealed part.
    pub(crate) async fn request_meta(&self, id: DataRequestId) -> Result<DataRequest> {
        self.store
            .request_metas(RequestFilter {
                id: Some(id),
                ..RequestFilter::default()
            })
            .await?
            .pop()
            .ok_or_else(|| HubError::NotFound(format!("data request {id}")))
    }

    /// A data request's sealed part, opened (the hub's own read).
    pub(crate) async fn request_secret(
        &self,
        key: &DataKey,
        request: &DataRequest,
    ) -> Result<RequestSecret> {
        let full = self
            .store
            .read_requests(
                RequestFilter {
                    id: Some(request.id),
                    ..RequestFilter::default()
                },
                self.system_entry("eiss.request.read", format!("data_request:{}", request.id)),
            )
            .await?
            .pop()
            .ok_or_else(|| HubError::NotFound(format!("data request {}", request.id)))?;
        key.open_json(&request_context(request.case), &full.sealed)
    }

    async fn request_view(&self, id: DataRequestId) -> Result<RequestView> {
        let r = self.request_meta(id).await?;
        let number = self
            .store
            .case_meta(r.case)
            .await?
            .map(|c| c.number)
            .unwrap_or_default();
        Ok(RequestView::meta(&r, &number))
    }

    /// The grants an approved request gives: each holder of the case's
    /// identifiers is asked for its records of them (route); every telco
    /// and card company, if contacts are asked for, who was where the
    /// case was (windows the route will give, bounded by the grant).
    async fn plan_grants(
        &self,
        request: &DataRequest,
        number: &str,
        legal_basis: &str,
        requester: &str,
        secret: &CaseSecret,
        now: i64,
    ) -> Result<(Vec<Planned>, Vec<String>)> {
        let nodes = self.store.nodes().await?;
        let institutions = self.store.institutions().await?;
        let holder_of = |n: &Node| {
            institutions
                .iter()
                .find(|i| i.id == n.institution)
                .map(|i| i.name.clone())
                .unwrap_or_default()
        };
        // Only nodes of institutions that hold that kind of data.
        let routed: Vec<&Node> = nodes
            .iter()
            .filter(|n| {
                n.route.as_ref().is_some_and(|r| {
                    institutions
                        .iter()
                        .find(|i| i.id == n.institution)
                        .and_then(|i| civic_hub::nodes::node_kind(i.kind))
                        == Some(r.kind.as_str())
                })
            })
            .collect();
        let of_kind = |kind: &str| -> Vec<&Node> {
            routed
                .iter()
                .copied()
                .filter(|n| n.route.as_ref().is_some_and(|r| r.kind == kind))
                .collect()
        };
        let (_, rules) = self.open_response_record(request.response).await?;
        let (contact_from, contact_until) = rules.contact_period(secret.onset, secret.confirmed);
        let validity = self.config.grant_validity_hours * 3600;
        let grant = |n: &Node, item: Item, question: Question, from: i64, until: i64| Grant {
            grant_id: uuid_like(),
            requester: requester.to_owned(),
            holder: holder_of(n),
            purpose: PURPOSE.into(),
            legal_basis: legal_basis.to_owned(),
            case_id: Some(format!("{}/{number}", request.response)),
            consent_id: None,
            items: vec![item],
            question,
            data_from: from,
            data_until: until,
            issued_at: now - 60,
            expires_at: now + validity,
        };
        // The approver's bound on what the hub may ask holders about.
        let windows = |from: i64, until: i64| Question::Windows {
            max_windows: max_windows(from, until),
            max_radius_m: MAX_WINDOW_RADIUS_M,
            max_span_s: MAX_WINDOW_SPAN_S,
        };
        let mut planned = Vec::new();
        let mut unreachable = Vec::new();
        let mut plan = |node: &Node, purpose, g: Grant| {
            planned.push(Planned {
                node: node.name.clone(),
                purpose,
                grant: SignedGrant::new(g),
            })
        };
        for (item, kind, ids) in [
            (DataItem::LocationPings, "pings", &secret.subject.phones),
            (
                DataItem::CardTransactions,
                "transactions",
                &secret.subject.cards,
            ),
        ] {
            if !request.items.contains(&item) {
                continue;
            }
            let wire_item = wire_item(item);
            // Route: each holder of the case's identifiers, for its own.
            let mut codes: Vec<&str> = ids.iter().map(|(c, _)| c.as_str()).collect();
            codes.sort_unstable();
            codes.dedup();
            for code in codes {
                let subjects: Vec<u64> = ids
                    .iter()
                    .filter(|(c, _)| c == code)
                    .map(|(_, id)| *id)
                    .collect();
                match of_kind(kind)
                    .into_iter()
                    .find(|n| n.route.as_ref().is_some_and(|r| r.code == code))
                {
                    Some(node) => plan(
                        node,
                        CollectionPurpose::Route,
                        grant(
                            node,
                            wire_item,
                            Question::Subjects { ids: subjects },
                            request.data_from,
                            request.data_until,
                        ),
                    ),
                    None => unreachable.push(format!("{kind} holder {code:?}")),
                }
            }
            // Contacts: every holder of this kind.
            let (from, until) = (
                contact_from.max(request.data_from),
                contact_until.min(request.data_until),
            );
            if request.contacts && from <= until {
                for node in of_kind(kind) {
                    plan(
                        node,
                        CollectionPurpose::Contacts,
                        grant(node, wire_item, windows(from, until), from, until),
                    );
                }
            }
        }
        if request.items.contains(&DataItem::TransitTaps)
            && !secret.subject.transit_cards.is_empty()
        {
            for node in of_kind("taps") {
                plan(
                    node,
                    CollectionPurpose::Route,
                    grant(
                        node,
                        Item::TransitTaps,
                        Question::Subjects {
                            ids: secret.subject.transit_cards.clone(),
                        },
                        request.data_from,
                        request.data_until,
                    ),
                );
            }
        }
        Ok((planned, unreachable))
    }

    /// Starts a fully approved request: the hub endorses every grant, the
    /// route collections are recorded with the patient's notice, and each
    /// is asked of its node.
    pub(crate) async fn dispatch(&self, id: DataRequestId) -> Result<()> {
        let request = self.request_meta(id).await?;
        let key = self.data_key(request.response).await?;
        let resource = format!("data_request:{id}");
        let mut secret = self.request_secret(&key, &request).await?;
        // The hub's own endorsement comes last: it checked the procedure.
        let hub_key = self.keys().signing_key().clone();
        for p in secret.grants.iter_mut() {
            p.grant = p.grant.clone().endorse(Role::Hub, "hub", &hub_key);
        }
        // Kept with the hub's endorsement, for the contacts' phase.
        let (response, _) = self.open_response_record(request.response).await?;
        let mut collections = Vec::new();
        for p in secret
            .grants
            .iter()
            .filter(|p| p.purpose == CollectionPurpose::Route)
        {
            let exchange_id = self.exchange_id(id, p.purpose, &p.node);
            collections.push(NewCollection {
                node: p.node.clone(),
                purpose: p.purpose,
                sealed: key.seal_json(
                    &super::collect::collection_context(&exchange_id),
                    &super::collect::CollectionSecret {
                        grant: p.grant.clone(),
                        body: "{}".into(),
                        windows: Vec::new(),
                    },
                ),
                exchange_id,
            });
        }
        let notice = self.patient_notice(&request, &secret, &key).await?;
        let mut entry = self.system_entry("eiss.collect.dispatch", resource);
        entry = entry
            .subject(format!("case:{}", request.case))
            .purpose(PURPOSE, &response.legal_basis);
        entry.reason = Some(format!("{} route collections", collections.len()));
        // The sealed request keeps the grants with the hub's endorsement.
        let sealed = key.seal_json(&request_context(request.case), &secret);
        let added = self
            .store
            .add_collections(
                id,
                RequestStatus::Collecting,
                RequestStatus::Collecting,
                Some(sealed),
                collections,
                vec![notice],
                entry,
            )
            .await?;
        if added.is_empty() {
            self.after_collection(request.response, request.case, id, CollectionPurpose::Route)
                .await?;
        }
        for c in added {
            self.spawn_collection(request.response, c);
        }
        Ok(())
    }

    /// The collection's id at the node: fixed for the life of the
    /// collection, unique across hubs.
    pub(crate) fn exchange_id(
        &self,
        request: DataRequestId,
        purpose: CollectionPurpose,
        node: &str,
    ) -> String {
        let me = civic_exchange::key_id(&self.keys().signing_key().verifying_key());
        format!("{me}.r{request}.{purpose}.{node}")
    }

    /// The notice to the patient that his data was collected, by whom and
    /// why.
    async fn patient_notice(
        &self,
        request: &DataRequest,
        secret: &RequestSecret,
        key: &DataKey,
    ) -> Result<NewOutboxMessage> {
        let record = self
            .store
            .read_cases(
                request.response,
                &[request.case],
                self.system_entry("eiss.case.read", format!("case:{}", request.case)),
            )
            .await?
            .pop()
            .ok_or_else(|| HubError::NotFound(format!("case {}", request.case)))?;
        let case_secret = self.case_secret(key, &record)?;
        let (response, rules) = self.open_response_record(request.response).await?;
        let requester = full_requester(&self.store, request.requested_by).await?;
        let institution = self
            .store
            .institution(requester)
            .await?
            .map(|i| i.name)
            .unwrap_or_default();
        let items: Vec<&str> = request
            .items
            .iter()
            .map(|i| match i {
                DataItem::LocationPings => "telecom location",
                DataItem::CardTransactions => "card transactions",
                DataItem::TransitTaps => "transit card taps",
            })
            .collect();
        // Whose records of the patient were collected (not those asked
        // only who else was where he was).
        let mut holders: Vec<&str> = secret
            .grants
            .iter()
            .filter(|g| g.purpose == CollectionPurpose::Route)
            .map(|g| g.grant.grant.holder.as_str())
            .collect();
        holders.sort_unstable();
        holders.dedup();
        let text = format!(
            "Under {}, {} collected your {} from {} to {} held by {} for an epidemic investigation (case {}). \
             You may ask the agency which data was used and how; it is deleted when the response ends.",
            response.legal_basis,
            institution,
            items.join(", "),
            rules.local_date(request.data_from),
            rules.local_date(request.data_until),
            holders.join(", "),
            record.number,
        );
        let recipient = case_secret
            .subject
            .phone_number
            .clone()
            .or(case_secret.subject.name.clone())
            .or_else(|| {
                case_secret
                    .subject
                    .phones
                    .first()
                    .map(|(t, s)| format!("{t} subscriber {s}"))
            })
            .unwrap_or_else(|| format!("case {}", record.number));
        Ok(NewOutboxMessage {
            response: request.response,
            case: Some(request.case),
            kind: "patient_notice".into(),
            sealed: key.seal_json(
                &super::contacts::outbox_context(request.response),
                &super::contacts::Notice { recipient, text },
            ),
        })
    }
}

fn wire_item(item: DataItem) -> Item {
    match item {
        DataItem::LocationPings => Item::LocationPings,
        DataItem::CardTransactions => Item::CardTransactions,
        DataItem::TransitTaps => Item::TransitTaps,
    }
}

/// The institution of the investigator who asked.
async fn full_requester(
    store: &civic_store::Store,
    user: UserId,
) -> Result<civic_core::identity::InstitutionId> {
    use civic_store::UserStore;
    Ok(store
        .user(user)
        .await?
        .ok_or_else(|| HubError::NotFound(format!("user {user}")))?
        .institution)
}

/// A random grant id.
fn uuid_like() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    data_encoding::HEXLOWER.encode(&b)
}

/// The items a data request may name, at least one.
#[cfg(feature = "openapi")]
fn data_items() -> utoipa::openapi::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(civic_core::schemas::one_of(&[
            "location_pings",
            "card_transactions",
            "transit_taps",
        ]))
        .min_items(Some(1))
        .build()
}
