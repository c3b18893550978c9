//! Collection: each approved question is asked of its node, in parallel,
//! with the hub's client (mutual TLS, retries with the same exchange id
//! until the deadline). Answers are sealed and kept as they come; each
//! one rebuilds the case's route and updates its live feed and cluster.
//! Once every route answer is in, the route's exposure windows are asked
//! of every telco and card company under the contacts' grants, and their
//! answers become the case's contacts. A hub that restarts asks its
//! pending questions again under the same ids: nodes answer them once.

use super::cases::{doc_context, CaseSecret};
use super::requests::Planned;
use super::{json, DataKey, PURPOSE};
use crate::store::{
    CaseDocument, CaseStore, Collection, ContactStore, DataRequestStore, NewCollection, NewContact,
    RequestFilter,
};
use crate::Investigation;
use civic_core::investigation::{
    CaseId, CollectionPurpose, CollectionStatus, DataRequestId, RequestStatus, ResponseId,
};
use civic_eiss::clusters::{CaseInput, Presence};
use civic_eiss::contacts::{Audience, Sighting, Window};
use civic_eiss::route::{CaseData, Event, SourceKind, TapKind, Timeline, ToldPlace};
use civic_eiss::Rules;
use civic_exchange::wire::Answer;
use civic_exchange::{ExposureWindow, Question, SignedGrant, WindowsBody};
use civic_hub::exchange::{ExchangeError, NodeClient};
use civic_hub::{HubError, Result};
use civic_store::{InstitutionStore, NodeStore};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What is sealed of a collection: the grant, the body sent with it and
/// (for contacts) the windows it asks about, as the route gave them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CollectionSecret {
    pub grant: SignedGrant,
    pub body: String,
    #[serde(default)]
    pub windows: Vec<Window>,
}

pub(crate) fn collection_context(exchange_id: &str) -> String {
    format!("collection:{exchange_id}")
}

fn answer_context(exchange_id: &str) -> String {
    format!("answer:{exchange_id}")
}

impl Investigation {
    pub(crate) async fn collector_client(&self) -> Result<Arc<NodeClient>> {
        self.state
            .client
            .get_or_try_init(|| async {
                self.node_client()
                    .map(Arc::new)
                    .map_err(|e| HubError::BadRequest(e.to_string()))
            })
            .await
            .cloned()
    }

    /// The lock that orders the updates of one case.
    async fn case_lock(&self, case: CaseId) -> Arc<tokio::sync::Mutex<()>> {
        self.state
            .case_locks
            .lock()
            .await
            .entry(case)
            .or_default()
            .clone()
    }

    /// Asks a collection's node in the background.
    pub(crate) fn spawn_collection(&self, response: ResponseId, collection: Collection) {
        let hub = self.clone();
        tokio::spawn(async move {
            let (id, case, request, purpose) = (
                collection.id,
                collection.case,
                collection.request,
                collection.purpose,
            );
            match hub.run_collection(response, collection).await {
                Ok(true) => {}
                // Finished by another run, or the response is closing:
                // nothing new for the case.
                Ok(false) => return,
                Err(e) => {
                    tracing::error!(collection = id, error = %e, "a collection failed in the hub");
                }
            }
            // The answer is kept; what it changes of the case (route,
            // contacts, cluster link) is tried again while storage is
            // busy (a pool timing out under load), not left stale.
            let mut wait = std::time::Duration::from_secs(1);
            for attempt in 1..=5 {
                match hub.after_collection(response, case, request, purpose).await {
                    Ok(()) => break,
                    Err(HubError::Store(e)) if attempt < 5 => {
                        tracing::warn!(collection = id, attempt, error = %e, "updating a case after a collection: storage busy, trying again");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    Err(e) => {
                        tracing::error!(collection = id, error = %e, "updating a case after a collection");
                        break;
                    }
                }
            }
        });
    }

    /// Asks the node and keeps its answer; `false` if this run finished
    /// nothing (another run had, or the response is closing).
    async fn run_collection(&self, response: ResponseId, c: Collection) -> Result<bool> {
        let _permit = self
            .state
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HubError::BadRequest("the collector stopped".into()))?;
        let key = self.data_key(response).await?;
        let resource = format!("collection:{}", c.id);
        let entry = self
            .system_entry("eiss.collect.read", resource.clone())
            .subject(format!("case:{}", c.case));
        let Some(full) = self.store.read_collection(c.id, entry).await? else {
            return Ok(false);
        };
        let secret: CollectionSecret =
            key.open_json(&collection_context(&c.exchange_id), &full.sealed)?;
        let nodes = self.store.nodes().await?;
        let finish = |status, detail: Option<String>, answer: Option<Vec<u8>>| {
            let mut entry = self
                .system_entry("eiss.collect.answer", resource.clone())
                .subject(format!("case:{}", c.case));
            entry.grant_id = Some(secret.grant.grant.grant_id.clone());
            entry.legal_basis = Some(secret.grant.grant.legal_basis.clone());
            entry.reason = Some(format!("{} from {}: {status}", c.purpose, c.node));
            self.store
                .finish_collection(c.id, status, detail, answer, entry)
        };
        let Some((node, route)) = nodes
            .iter()
            .find(|n| n.name == c.node)
            .and_then(|n| n.route.clone().map(|r| (n, r)))
        else {
            finish(
                CollectionStatus::Failed,
                Some("the node is not registered with an address".into()),
                None,
            )
            .await?;
            return Ok(true);
        };
        let node_key = civic_hub::nodes::node_key(node)?;
        let client = self.collector_client().await?;
        let mut parts = Vec::new();
        let asked = client
            .ask_with_body(
                &route.url,
                &node_key,
                &secret.grant,
                &c.exchange_id,
                &secret.body,
                Duration::from_secs(self.config.collection_deadline_seconds),
                |p| parts.push(p),
            )
            .await;
        let outcome = match asked {
            Ok(()) => match Answer::from_parts(parts) {
                Ok(answer) => {
                    let sealed = key.seal_json(&answer_context(&c.exchange_id), &answer);
                    finish(CollectionStatus::Answered, None, Some(sealed)).await
                }
                Err(e) => finish(CollectionStatus::Failed, Some(e.to_string()), None).await,
            },
            Err(ExchangeError::Refused(why)) => {
                finish(CollectionStatus::Refused, Some(why), None).await
            }
            Err(e) => finish(CollectionStatus::Failed, Some(e.to_string()), None).await,
        };
        match outcome {
            // Finished by another run (a resumed hub), or the response is
            // closing and takes no new data: the answer is dropped.
            Err(civic_store::StoreError::Conflict(_)) => return Ok(false),
            other => other?,
        }
        self.publish(
            c.case,
            "collection",
            serde_json::json!({ "node": c.node, "purpose": c.purpose }),
        );
        Ok(true)
    }

    /// After one of a request's collections ended: the case's route is
    /// rebuilt, contacts computed, the contacts' phase started when the
    /// route is complete, and the request marked collected when nothing is
    /// pending.
    pub(crate) async fn after_collection(
        &self,
        response: ResponseId,
        case: CaseId,
        request: DataRequestId,
        purpose: CollectionPurpose,
    ) -> Result<()> {
        let lock = self.case_lock(case).await;
        let _held = lock.lock().await;
        // Whether this is the last collection to end: what is processed
        // below then includes every answer (each ends before its own
        // update runs, and the updates take turns).
        let pending_before = self
            .store
            .collection_metas(Some(case), Some(CollectionStatus::Pending))
            .await?
            .into_iter()
            .any(|c| c.request == request);
        match purpose {
            CollectionPurpose::Route => {
                self.rebuild_case_locked(response, case).await?;
            }
            CollectionPurpose::Contacts => {
                self.update_contacts(response, case).await?;
            }
        }
        let collections: Vec<Collection> = self
            .store
            .collection_metas(Some(case), None)
            .await?
            .into_iter()
            .filter(|c| c.request == request)
            .collect();
        let pending = |p: CollectionPurpose| {
            collections
                .iter()
                .any(|c| c.purpose == p && c.status == CollectionStatus::Pending)
        };
        let has_contacts = collections
            .iter()
            .any(|c| c.purpose == CollectionPurpose::Contacts);
        if !pending(CollectionPurpose::Route) && !has_contacts {
            // Every route answer is in now, also one that ended after this
            // collection's rebuild read them: the windows come from all.
            let timeline = self.rebuild_case_locked(response, case).await?;
            let started = self
                .start_contacts(response, case, request, &timeline)
                .await?;
            if started {
                return Ok(());
            }
        }
        // Once there are exposure questions, only their updates finish the
        // request: an update of a route answer may run while theirs wait
        // for this case's lock, with nothing pending any more.
        let may_finish = purpose == CollectionPurpose::Contacts || !has_contacts;
        if !pending_before && may_finish {
            self.store
                .set_request_status(request, RequestStatus::Collecting, RequestStatus::Collected)
                .await?;
        }
        Ok(())
    }

    /// Asks every telco and card company about the route's exposure
    /// windows, under the contacts' grants the request was approved with.
    /// False when there is nothing to ask.
    async fn start_contacts(
        &self,
        response: ResponseId,
        case: CaseId,
        request: DataRequestId,
        timeline: &Timeline,
    ) -> Result<bool> {
        let key = self.data_key(response).await?;
        let (record, rules) = self.open_response_record(response).await?;
        let meta = self.request_meta(request).await?;
        let secret = self.request_secret(&key, &meta).await?;
        let planned: Vec<&Planned> = secret
            .grants
            .iter()
            .filter(|p| p.purpose == CollectionPurpose::Contacts)
            .collect();
        if planned.is_empty() {
            return Ok(false);
        }
        let case_secret = self.case_secret_of(&key, response, case).await?;
        let period = rules.contact_period(case_secret.onset, case_secret.confirmed);
        let windows = civic_eiss::contacts::windows(timeline, &rules, period);
        let nodes = self.store.nodes().await?;
        let mut collections = Vec::new();
        for p in planned {
            let kind = nodes
                .iter()
                .find(|n| n.name == p.node)
                .and_then(|n| n.route.as_ref())
                .map(|r| r.kind.clone())
                .unwrap_or_default();
            let audience = match kind.as_str() {
                "pings" => Audience::Telcos,
                "transactions" => Audience::CardCompanies,
                _ => continue,
            };
            let (from, until) = (p.grant.grant.data_from, p.grant.grant.data_until);
            let most = match p.grant.grant.question {
                Question::Windows { max_windows, .. } => max_windows as usize,
                _ => continue,
            };
            let mine: Vec<Window> = windows
                .iter()
                .filter(|w| w.audience == audience)
                .map(|w| Window {
                    t_start: w.t_start.max(from),
                    t_end: w.t_end.min(until),
                    ..w.clone()
                })
                .filter(|w| w.t_start <= w.t_end)
                .collect();
            if mine.is_empty() {
                continue;
            }
            tracing::debug!(
                request = request.0,
                node = %p.node,
                windows = mine.len(),
                allowed = most,
                widest_m = mine.iter().map(|w| w.radius_m).fold(0.0, f64::max),
                "contact windows"
            );
            if mine.len() > most {
                // More than the approver allowed: the first ones, in route
                // order (stays first); the rest are left out, and the log
                // says so for the data officer.
                tracing::warn!(
                    request = request.0,
                    node = %p.node,
                    windows = mine.len(),
                    allowed = most,
                    "a route needs more windows than its grant allows"
                );
            }
            let mine: Vec<Window> = mine.into_iter().take(most).collect();
            let body = serde_json::to_string(&WindowsBody {
                windows: mine
                    .iter()
                    .map(|w| ExposureWindow {
                        lat: w.lat,
                        lon: w.lon,
                        radius_m: w.radius_m,
                        t_start: w.t_start,
                        t_end: w.t_end,
                    })
                    .collect(),
            })
            .expect("windows serialise");
            let exchange_id = self.exchange_id(request, p.purpose, &p.node);
            collections.push(NewCollection {
                node: p.node.clone(),
                purpose: p.purpose,
                sealed: key.seal_json(
                    &collection_context(&exchange_id),
                    &CollectionSecret {
                        grant: p.grant.clone(),
                        body,
                        windows: mine,
                    },
                ),
                exchange_id,
            });
        }
        if collections.is_empty() {
            return Ok(false);
        }
        let mut entry = self
            .system_entry("eiss.collect.contacts", format!("data_request:{request}"))
            .subject(format!("case:{case}"))
            .purpose(PURPOSE, &record.legal_basis);
        entry.reason = Some(format!("{} exposure questions", collections.len()));
        let added = self
            .store
            .add_collections(
                request,
                RequestStatus::Collecting,
                RequestStatus::Collecting,
                None,
                collections,
                Vec::new(),
                entry,
            )
            .await?;
        for c in added {
            self.spawn_collection(response, c);
        }
        Ok(true)
    }

    pub(crate) async fn case_secret_of(
        &self,
        key: &DataKey,
        response: ResponseId,
        case: CaseId,
    ) -> Result<CaseSecret> {
        let record = self
            .store
            .read_cases(
                response,
                &[case],
                self.system_entry("eiss.case.read", format!("case:{case}")),
            )
            .await?
            .pop()
            .ok_or_else(|| HubError::NotFound(format!("case {case}")))?;
        self.case_secret(key, &record)
    }

    /// Rebuilds a case's route from every answer and its interview.
    pub(crate) async fn rebuild_case(&self, response: ResponseId, case: CaseId) -> Result<()> {
        let lock = self.case_lock(case).await;
        let _held = lock.lock().await;
        self.rebuild_case_locked(response, case).await?;
        self.update_contacts(response, case).await
    }

    async fn rebuild_case_locked(&self, response: ResponseId, case: CaseId) -> Result<Timeline> {
        let key = self.data_key(response).await?;
        let (_, rules) = self.open_response_record(response).await?;
        let secret = self.case_secret_of(&key, response, case).await?;
        let answers = self
            .store
            .answers(
                case,
                Some(CollectionPurpose::Route),
                self.system_entry("eiss.collect.read", format!("case:{case}")),
            )
            .await?;
        let nodes = self.store.nodes().await?;
        let institutions = self.store.institutions().await?;
        let mut events = Vec::new();
        for (c, sealed) in &answers {
            let answer: Answer = key.open_json(&answer_context(&c.exchange_id), sealed)?;
            let node = nodes.iter().find(|n| n.name == c.node);
            let holder = node
                .and_then(|n| institutions.iter().find(|i| i.id == n.institution))
                .map(|i| i.name.clone())
                .unwrap_or_else(|| c.node.clone());
            let kind = match node.and_then(|n| n.route.as_ref()).map(|r| r.kind.as_str()) {
                Some("transactions") => SourceKind::Card,
                Some("taps") => SourceKind::Transit,
                _ => SourceKind::Pings,
            };
            if let Answer::Routes(routes) = answer {
                for r in routes {
                    events.extend(route_events(&r, kind, &holder));
                }
            }
        }
        let interview = self
            .interview_of(
                &key,
                response,
                case,
                self.system_entry("eiss.case.interview.read", format!("case:{case}")),
            )
            .await?;
        let period = rules.contact_period(secret.onset, secret.confirmed);
        let timeline = civic_eiss::route::reconstruct(
            &CaseData {
                events: &events,
                interview: &interview,
                home: secret.subject.home,
                interview_period: (!interview.is_empty()).then_some(period),
            },
            &rules,
        );
        let previous = self.stored_timeline(&key, response, case).await?;
        let entry = self
            .system_entry("eiss.timeline.update", format!("case:{case}"))
            .subject(format!("case:{case}"));
        self.store
            .put_document(
                case,
                CaseDocument::Timeline,
                key.seal_json(&doc_context(case, CaseDocument::Timeline), &timeline),
                entry,
            )
            .await?;
        let new: Vec<_> = timeline
            .stays
            .iter()
            .filter(|s| {
                !previous.stays.iter().any(|p| {
                    p.arrival == s.arrival
                        && p.departure == s.departure
                        && p.lat == s.lat
                        && p.lon == s.lon
                })
            })
            .collect();
        if !new.is_empty() || previous.stays.len() != timeline.stays.len() {
            self.publish(
                case,
                "stay_points",
                serde_json::json!({ "new": json(&new), "total": timeline.stays.len() }),
            );
        }
        let published = self.published_route(&key, response, case).await?;
        let input = case_input(case, &secret, &timeline, &published, &rules);
        self.update_cluster(response, input).await?;
        Ok(timeline)
    }

    pub(crate) async fn stored_timeline(
        &self,
        key: &DataKey,
        response: ResponseId,
        case: CaseId,
    ) -> Result<Timeline> {
        let docs = self
            .store
            .documents(
                response,
                &[case],
                CaseDocument::Timeline,
                self.system_entry("eiss.timeline.read", format!("case:{case}")),
            )
            .await?;
        match docs.first() {
            Some((_, sealed)) => key.open_json(&doc_context(case, CaseDocument::Timeline), sealed),
            None => Ok(Timeline::default()),
        }
    }

    /// The contacts every answered exposure question gives.
    async fn update_contacts(&self, response: ResponseId, case: CaseId) -> Result<()> {
        let key = self.data_key(response).await?;
        let (_, rules) = self.open_response_record(response).await?;
        let answered: Vec<Collection> = self
            .store
            .collection_metas(Some(case), Some(CollectionStatus::Answered))
            .await?
            .into_iter()
            .filter(|c| c.purpose == CollectionPurpose::Contacts)
            .collect();
        if answered.is_empty() {
            return Ok(());
        }
        let secret = self.case_secret_of(&key, response, case).await?;
        let own: Vec<u64> = secret
            .subject
            .phones
            .iter()
            .map(|p| p.1)
            .chain(secret.subject.cards.iter().map(|c| c.1))
            .chain(secret.subject.transit_cards.iter().copied())
            .collect();
        let answers: HashMap<i64, Vec<u8>> = self
            .store
            .answers(
                case,
                Some(CollectionPurpose::Contacts),
                self.system_entry("eiss.collect.read", format!("case:{case}")),
            )
            .await?
            .into_iter()
            .map(|(c, a)| (c.id, a))
            .collect();
        let nodes = self.store.nodes().await?;
        let institutions = self.store.institutions().await?;
        let mut new = Vec::new();
        for c in &answered {
            let Some(sealed_answer) = answers.get(&c.id) else {
                continue;
            };
            let full = self
                .store
                .read_collection(
                    c.id,
                    self.system_entry("eiss.collect.read", format!("collection:{}", c.id)),
                )
                .await?
                .ok_or_else(|| HubError::NotFound(format!("collection {}", c.id)))?;
            let secret: CollectionSecret =
                key.open_json(&collection_context(&c.exchange_id), &full.sealed)?;
            let answer: Answer = key.open_json(&answer_context(&c.exchange_id), sealed_answer)?;
            let holder = nodes
                .iter()
                .find(|n| n.name == c.node)
                .and_then(|n| institutions.iter().find(|i| i.id == n.institution))
                .map(|i| i.name.clone())
                .unwrap_or_else(|| c.node.clone());
            let Answer::Exposure(windows) = answer else {
                continue;
            };
            let sightings = windows.iter().flat_map(|w| {
                w.holders.iter().map(move |h| Sighting {
                    window: w.window,
                    id: h.holder,
                    first_seen: h.first_seen,
                    last_seen: h.last_seen,
                    events: h.events,
                })
            });
            for contact in
                civic_eiss::contacts::contacts(&holder, &secret.windows, sightings, &own, &rules)
            {
                let tag = key.tag(&format!("{}:{}", contact.holder, contact.id));
                new.push(NewContact {
                    overlap_minutes: i64::from(contact.overlap_minutes),
                    sealed: key.seal_json(&super::contacts::contact_context(case, &tag), &contact),
                    tag,
                });
            }
        }
        // One row per person: two answers may name the same one (two
        // requests of the case, two nodes of a holder).
        new.sort_by(|a, b| {
            a.tag
                .cmp(&b.tag)
                .then(b.overlap_minutes.cmp(&a.overlap_minutes))
        });
        new.dedup_by(|later, first| later.tag == first.tag);
        if new.is_empty() {
            return Ok(());
        }
        let n = new.len();
        let mut entry = self
            .system_entry("eiss.contacts.update", format!("case:{case}"))
            .subject(format!("case:{case}"));
        entry.reason = Some(format!("{n} exposures"));
        let added = self.store.put_contacts(case, new, entry).await?;
        self.publish(
            case,
            "contacts",
            serde_json::json!({ "new": added, "exposures": n }),
        );
        Ok(())
    }

    /// Asks again every question still pending (after a restart), under
    /// the same exchange ids; starts requests approved but never sent.
    pub async fn resume_collections(&self) -> Result<usize> {
        let pending = self
            .store
            .collection_metas(None, Some(CollectionStatus::Pending))
            .await?;
        let n = pending.len();
        for c in pending {
            let Some(meta) = self.store.case_meta(c.case).await? else {
                continue;
            };
            self.spawn_collection(meta.response, c);
        }
        self.retry_stalled_requests(Duration::ZERO).await?;
        Ok(n)
    }

    /// Takes up requests approved at least `min_age` ago that stalled: never
    /// sent (a dispatch that failed), or every answer in but the update
    /// after the last one not run. The hub calls it at start and now and
    /// then, so a passing failure does not wait for a restart (by then its
    /// grants may have expired). Returns how many it took up.
    pub async fn retry_stalled_requests(&self, min_age: Duration) -> Result<usize> {
        let collecting = self
            .store
            .request_metas(RequestFilter {
                statuses: vec![RequestStatus::Collecting],
                ..RequestFilter::default()
            })
            .await?;
        let now = civic_core::time::Timestamp::now().micros();
        let min_age = i64::try_from(min_age.as_micros()).unwrap_or(i64::MAX);
        let mut taken = 0;
        for r in collecting {
            let approved = r
                .decisions
                .iter()
                .map(|d| d.decided_at.micros())
                .max()
                .unwrap_or(0);
            if now - approved < min_age {
                continue;
            }
            let of_request: Vec<Collection> = self
                .store
                .collection_metas(Some(r.case), None)
                .await?
                .into_iter()
                .filter(|c| c.request == r.id)
                .collect();
            let outcome = if of_request.is_empty() {
                // Approved, never sent.
                taken += 1;
                self.dispatch(r.id).await
            } else if of_request
                .iter()
                .all(|c| c.status != CollectionStatus::Pending)
            {
                // Every answer in, but the update after the last one did
                // not run (a stop, an error): the contacts' phase or the
                // end of the request is still to come.
                taken += 1;
                self.after_collection(r.response, r.case, r.id, CollectionPurpose::Contacts)
                    .await
                    .and(
                        self.after_collection(r.response, r.case, r.id, CollectionPurpose::Route)
                            .await,
                    )
            } else {
                Ok(())
            };
            if let Err(e) = outcome {
                tracing::warn!(request = r.id.0, error = %e, "taking up a request again");
            }
        }
        Ok(taken)
    }
}

/// A route answer's records as events of the case.
fn route_events(
    r: &civic_exchange::wire::RouteAnswer,
    kind: SourceKind,
    holder: &str,
) -> Vec<Event> {
    let places: HashMap<u64, &civic_exchange::wire::PlaceInfo> =
        r.places.iter().map(|p| (p.id, p)).collect();
    let mut out = Vec::with_capacity(r.events.len());
    let mut last_tap: Option<(i64, TapKind)> = None;
    for &(ts, place) in &r.events {
        let Some(p) = places.get(&place) else {
            continue; // a place the node did not name: nowhere to put it
        };
        // Taps come in and out: alternate, unless hours apart.
        let tap = (kind == SourceKind::Transit).then(|| match last_tap {
            Some((t, TapKind::In)) if ts - t <= 3 * 3600 => TapKind::Out,
            _ => TapKind::In,
        });
        if let Some(t) = tap {
            last_tap = Some((ts, t));
        }
        out.push(Event {
            ts,
            lat: p.lat,
            lon: p.lon,
            place_id: place,
            name: p.name.clone(),
            kind,
            holder: holder.to_owned(),
            tap,
        });
    }
    out
}

/// What the cluster index needs of a case: its onset and where it was —
/// its stays, told places no data placed, routes published elsewhere.
pub(crate) fn case_input(
    case: CaseId,
    secret: &CaseSecret,
    timeline: &Timeline,
    published: &[ToldPlace],
    rules: &Rules,
) -> CaseInput {
    let mut presences = Vec::new();
    for s in &timeline.stays {
        // A payment is an instant: around it.
        let (start, end) = if s.departure - s.arrival < 600 {
            (s.arrival - 900, s.departure + 900)
        } else {
            (s.arrival, s.departure)
        };
        presences.push(Presence {
            point: s.precise.then_some((s.lat, s.lon)),
            tower: s.area.map(|a| (a.lat, a.lon)),
            start,
            end,
            timed: true,
            place: s.place.clone(),
        });
    }
    for c in timeline.interview.iter().filter(|c| c.stay.is_none()) {
        presences.push(told(&c.told));
    }
    presences.extend(published.iter().map(told));
    // Home, all the while: the household is the first place people meet
    // (also for a case no ping places there).
    if let Some(home) = secret.subject.home {
        let onset = rules.midnight(secret.onset);
        presences.push(Presence {
            point: Some(home),
            tower: None,
            start: onset - i64::from(rules.source_lookback_days) * civic_eiss::DAY,
            end: rules.midnight(secret.confirmed) + 8 * civic_eiss::DAY,
            timed: true,
            place: Some("home".into()),
        });
    }
    CaseInput {
        case: case.0,
        onset: rules.midnight(secret.onset) + 12 * 3600,
        onset_estimated: secret.onset_estimated,
        confirmed: Some(rules.midnight(secret.confirmed) + 12 * 3600),
        presences,
    }
}

fn told(t: &ToldPlace) -> Presence {
    Presence {
        point: Some((t.lat, t.lon)),
        tower: None,
        start: t.start,
        end: t.end,
        timed: t.timed,
        place: t.place.clone(),
    }
}
