//! Clusters of a response: kept in memory per response (built from the
//! cases' sealed routes at first use, updated as each case's route
//! changes), and routes published elsewhere loaded into it.

use super::cases::{case_context, doc_context, CaseSecret};
use super::collect::case_input;
use super::{DataKey, PURPOSE};
use crate::store::{CaseDocument, CaseStore, NewCase};
use crate::Investigation;
use civic_core::identity::Region;
use civic_core::investigation::{CaseId, ResponseId};
use civic_core::policy::{decide, Action};
use civic_eiss::clusters::{CaseInput, ClusterIndex, LinkRules};
use civic_eiss::formats::Subject;
use civic_eiss::route::{Timeline, ToldPlace};
use civic_hub::{Ctx, HubError, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// One row of `civic eiss clusters --format csv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterRow {
    pub case_id: String,
    /// The cluster: its source case's number (the case's own if unlinked).
    pub cluster_id: String,
    /// The cluster's dominant place (empty if unlinked).
    pub place: String,
    /// The case's link to its likely infector, with its evidence (empty
    /// for a source, an unlinked case, or a link the caller may not see):
    /// the infector's number, the day and place they met, the place's
    /// setting, what put them together and the weight of evidence.
    pub infector: String,
    pub link_date: String,
    pub link_place: String,
    pub link_setting: String,
    pub link_basis: String,
    pub link_strength: String,
}

/// A case in a cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterCase {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: CaseId,
    pub number: String,
    pub onset: String,
    /// The onset was estimated from the confirmation date.
    #[serde(default)]
    pub onset_estimated: bool,
}

/// A link of the transmission tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TreeLink {
    pub case: String,
    pub infector: String,
    /// `infector` (the other was infectious) or `co_exposed`.
    pub kind: String,
    pub place: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// When they were together (local date and time).
    pub at: String,
    /// The evidence: what the place is (`home`, `care`, `regular`,
    /// `transit`, `other`), what put them together (`same_time`,
    /// `same_day`, `same_setting`) and its weight (hours together weighed
    /// by the place and by how well the timing fits an infection).
    pub setting: String,
    pub basis: String,
    pub strength: f64,
}

/// A cluster as shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterView {
    /// Its source case's id.
    pub id: i64,
    /// Its place (where most of the links shown were made), or "cluster
    /// of" a case when no link is shown.
    pub name: String,
    /// The place's position; none when no link is shown.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// The likely source, unless it is a case the caller may not read.
    pub source: Option<ClusterCase>,
    pub cases: Vec<ClusterCase>,
    pub tree: Vec<TreeLink>,
    /// Cases by onset date: (YYYY-MM-DD, count).
    pub epidemic_curve: Vec<(String, u32)>,
}

/// What loading published routes did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoutesLoaded {
    pub rows: usize,
    pub cases_created: usize,
    pub cases_updated: usize,
}

/// How much of a case a caller may see in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sight {
    /// Its number and onset: who may read the case.
    Header,
    /// Also where it was: who may work on it.
    Route,
}

/// The commonest place of these links (named, or "near" its position;
/// homes are named by position), as the cluster index names a cluster.
fn dominant_place(edges: &[&civic_eiss::clusters::TreeEdge]) -> Option<(String, f64, f64)> {
    let mut places: HashMap<String, (u32, f64, f64)> = HashMap::new();
    for e in edges {
        let key = e
            .place
            .clone()
            .filter(|n| n != "home")
            .unwrap_or_else(|| format!("near {:.4}, {:.4}", e.lat, e.lon));
        places.entry(key).or_insert((0, e.lat, e.lon)).0 += 1;
    }
    places
        .into_iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then_with(|| b.0.cmp(&a.0)))
        .map(|(name, (_, lat, lon))| (name, lat, lon))
}

/// A unit enum's serde name (`same_day`).
fn snake<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn untimed_onset(rules: &civic_eiss::Rules, places: &[ToldPlace]) -> (time::Date, time::Date) {
    // A published route runs from `lookback_days` before onset to
    // confirmation: that is all it says of them.
    let first = places.iter().map(|p| p.start).min().unwrap_or(0);
    let last = places.iter().map(|p| p.end).max().unwrap_or(0);
    let onset = rules
        .local_date(first)
        .saturating_add(time::Duration::days(i64::from(rules.lookback_days)));
    let confirmed = rules.local_date(last).max(onset);
    (onset, confirmed)
}

impl Investigation {
    /// The response's cluster index, built from its cases at first use.
    async fn cluster_index(
        &self,
        response: ResponseId,
    ) -> Result<Arc<tokio::sync::Mutex<ClusterIndex>>> {
        let mut all = self.state.clusters.lock().await;
        if let Some(index) = all.get(&response) {
            return Ok(index.clone());
        }
        let inputs = self.cluster_inputs(response).await?;
        let index = Arc::new(tokio::sync::Mutex::new(ClusterIndex::build(
            LinkRules::default(),
            inputs,
        )));
        all.insert(response, index.clone());
        Ok(index)
    }

    /// Every case's input to the cluster index, from its sealed records
    /// (what a recomputation reads; public for benchmarks).
    pub async fn cluster_inputs(&self, response: ResponseId) -> Result<Vec<CaseInput>> {
        let key = self.data_key(response).await?;
        let (_, rules) = self.open_response_record(response).await?;
        let cases = self
            .store
            .sealed_routes(
                response,
                self.system_entry("eiss.clusters.build", format!("response:{response}")),
            )
            .await?;
        let mut inputs = Vec::with_capacity(cases.len());
        for c in cases {
            let secret: CaseSecret =
                key.open_json(&case_context(response, &c.number), &c.sealed)?;
            let timeline: Timeline = match &c.timeline {
                Some(s) => key.open_json(&doc_context(c.id, CaseDocument::Timeline), s)?,
                None => Timeline::default(),
            };
            let routes: Vec<ToldPlace> = match &c.published {
                Some(s) => key.open_json(&doc_context(c.id, CaseDocument::PublishedRoute), s)?,
                None => Vec::new(),
            };
            inputs.push(case_input(c.id, &secret, &timeline, &routes, &rules));
        }
        Ok(inputs)
    }

    pub(crate) async fn update_cluster(
        &self,
        response: ResponseId,
        input: CaseInput,
    ) -> Result<()> {
        let index = self.cluster_index(response).await?;
        let case = CaseId(input.case);
        index.lock().await.upsert(input);
        let cluster = self
            .cluster_assignments(response)
            .await?
            .into_iter()
            .find(|(c, _)| *c == case.0)
            .map(|(_, k)| k);
        self.publish(case, "cluster", serde_json::json!({ "cluster": cluster }));
        Ok(())
    }

    /// (case, cluster) for every case linked to another.
    pub(crate) async fn cluster_assignments(
        &self,
        response: ResponseId,
    ) -> Result<Vec<(i64, i64)>> {
        let index = self.cluster_index(response).await?;
        let all = index.lock().await.assignments();
        let mut size: HashMap<i64, usize> = HashMap::new();
        for (_, k) in &all {
            *size.entry(*k).or_default() += 1;
        }
        Ok(all.into_iter().filter(|(_, k)| size[k] > 1).collect())
    }

    pub(crate) async fn published_route(
        &self,
        key: &DataKey,
        response: ResponseId,
        case: CaseId,
    ) -> Result<Vec<ToldPlace>> {
        let docs = self
            .store
            .documents(
                response,
                &[case],
                CaseDocument::PublishedRoute,
                self.system_entry("eiss.route.read", format!("case:{case}")),
            )
            .await?;
        match docs.first() {
            Some((_, s)) => key.open_json(&doc_context(case, CaseDocument::PublishedRoute), s),
            None => Ok(Vec::new()),
        }
    }

    /// What the caller may see of each case of the response: its header
    /// (who may read the case) or also its route (who may work on it).
    /// The local operator sees everything.
    async fn sight(&self, ctx: &Ctx, response: ResponseId) -> Result<HashMap<i64, Sight>> {
        let metas = self.store.case_metas(response).await?;
        let Some(principal) = ctx.principal() else {
            return Ok(metas.iter().map(|m| (m.id.0, Sight::Route)).collect());
        };
        let mut sight = HashMap::new();
        for m in &metas {
            let (region, assigned_to) = (&m.region, m.assigned.as_slice());
            if decide(
                principal,
                Action::WorkCase {
                    region,
                    assigned_to,
                },
            )
            .is_ok()
            {
                sight.insert(m.id.0, Sight::Route);
            } else if decide(
                principal,
                Action::ReadCase {
                    region,
                    assigned_to,
                },
            )
            .is_ok()
            {
                sight.insert(m.id.0, Sight::Header);
            }
        }
        Ok(sight)
    }

    /// The response's clusters, largest first, as far as the caller may
    /// see them: the same rule as for each case alone. A case she may not
    /// read is left out (a cluster with none she may read is not shown);
    /// a link, with its place and time, is shown only when she may see the
    /// routes of both its cases; the cluster's place is the commonest place
    /// of the links shown (none when no link is). So an approver, who reads
    /// a case but not its route, sees which cases are linked and when they
    /// fell ill, not where they met.
    pub async fn clusters(&self, ctx: &Ctx, response: ResponseId) -> Result<Vec<ClusterView>> {
        let entry = self
            .authorize(
                ctx,
                Action::ReadClusters,
                "eiss.clusters.read",
                &format!("response:{response}"),
            )
            .await?;
        let key = self.data_key(response).await?;
        let sight = self.sight(ctx, response).await?;
        let index = self.cluster_index(response).await?;
        let clusters = index.lock().await.clusters();
        let shown: Vec<CaseId> = clusters
            .iter()
            .flat_map(|c| &c.cases)
            .filter(|k| sight.contains_key(k))
            .map(|k| CaseId(*k))
            .collect();
        if shown.is_empty() {
            // An empty list reads every case: nothing to read instead.
            return Ok(Vec::new());
        }
        let entry = entry.reason(format!("{} cases in clusters", shown.len()));
        let cases = self.store.read_cases(response, &shown, entry).await?;
        let mut known: HashMap<i64, ClusterCase> = HashMap::new();
        for c in &cases {
            let secret: CaseSecret =
                key.open_json(&case_context(response, &c.number), &c.sealed)?;
            known.insert(
                c.id.0,
                ClusterCase {
                    id: c.id,
                    number: c.number.clone(),
                    onset: secret.onset.to_string(),
                    onset_estimated: secret.onset_estimated,
                },
            );
        }
        let (_, rules) = self.open_response_record(response).await?;
        let route_of = |id: i64| sight.get(&id) == Some(&Sight::Route);
        let mut out = Vec::new();
        for c in clusters {
            let cases: Vec<ClusterCase> = c
                .cases
                .iter()
                .filter_map(|k| known.get(k).cloned())
                .collect();
            if cases.is_empty() {
                continue;
            }
            let mut curve: std::collections::BTreeMap<String, u32> = Default::default();
            for case in &cases {
                *curve.entry(case.onset.clone()).or_default() += 1;
            }
            let edges: Vec<&civic_eiss::clusters::TreeEdge> = c
                .tree
                .iter()
                .filter(|e| route_of(e.case) && route_of(e.infector))
                .collect();
            let place = dominant_place(&edges);
            let tree = edges
                .iter()
                .map(|e| TreeLink {
                    case: known[&e.case].number.clone(),
                    infector: known[&e.infector].number.clone(),
                    kind: match e.kind {
                        civic_eiss::clusters::LinkKind::Infector => "infector".into(),
                        civic_eiss::clusters::LinkKind::CoExposed => "co_exposed".into(),
                    },
                    place: e.place.clone(),
                    lat: e.lat,
                    lon: e.lon,
                    at: format!("{} {}", rules.local_date(e.at), rules.local_hhmm(e.at)),
                    setting: snake(&e.setting),
                    basis: snake(&e.basis),
                    strength: (e.score * 1000.0).round() / 1000.0,
                })
                .collect();
            let source = known.get(&c.source).cloned();
            let name = match (&place, &source) {
                (Some((name, _, _)), _) => name.clone(),
                (None, Some(s)) => format!("cluster of {}", s.number),
                (None, None) => format!("cluster of {}", cases[0].number),
            };
            out.push(ClusterView {
                id: c.id,
                name,
                lat: place.as_ref().map(|p| p.1),
                lon: place.as_ref().map(|p| p.2),
                source,
                cases,
                tree,
                epidemic_curve: curve.into_iter().collect(),
            });
        }
        out.sort_by(|a, b| b.cases.len().cmp(&a.cases.len()).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Every case the caller may read with its cluster and, where she may
    /// see its route, the cluster's place (the CSV of `civic eiss
    /// clusters`).
    pub async fn cluster_rows(&self, ctx: &Ctx, response: ResponseId) -> Result<Vec<ClusterRow>> {
        let clusters = self.clusters(ctx, response).await?;
        let sight = self.sight(ctx, response).await?;
        let mut of: HashMap<String, (String, String)> = HashMap::new();
        let mut links: HashMap<&str, &TreeLink> = HashMap::new();
        for link in clusters.iter().flat_map(|c| &c.tree) {
            links.insert(link.case.as_str(), link);
        }
        for c in &clusters {
            let cluster = c
                .source
                .as_ref()
                .map_or_else(|| c.id.to_string(), |s| s.number.clone());
            let place = if c.lat.is_some() {
                c.name.clone()
            } else {
                String::new()
            };
            for case in &c.cases {
                of.insert(case.number.clone(), (cluster.clone(), place.clone()));
            }
        }
        let mut rows: Vec<ClusterRow> = self
            .store
            .case_metas(response)
            .await?
            .into_iter()
            .filter(|m| sight.contains_key(&m.id.0))
            .map(|m| {
                let (cluster, place) = of
                    .get(&m.number)
                    .cloned()
                    .unwrap_or_else(|| (m.number.clone(), String::new()));
                let place = if sight.get(&m.id.0) == Some(&Sight::Route) {
                    place
                } else {
                    String::new()
                };
                let link = links.get(m.number.as_str());
                let field = |f: fn(&TreeLink) -> String| link.map(|l| f(l)).unwrap_or_default();
                ClusterRow {
                    infector: field(|l| l.infector.clone()),
                    link_date: field(|l| l.at.split(' ').next().unwrap_or_default().to_owned()),
                    link_place: field(|l| {
                        l.place
                            .clone()
                            .unwrap_or_else(|| format!("{:.5} {:.5}", l.lat, l.lon))
                    }),
                    link_setting: field(|l| l.setting.clone()),
                    link_basis: field(|l| l.basis.clone()),
                    link_strength: field(|l| format!("{:.3}", l.strength)),
                    case_id: m.number,
                    cluster_id: cluster,
                    place,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.case_id.cmp(&b.case_id));
        Ok(rows)
    }

    /// Loads routes published elsewhere (the case-route format): a case
    /// not yet known is created (in the caller's region, its onset taken
    /// from the route), one known gets the route beside its own data.
    pub async fn import_routes(
        &self,
        ctx: &Ctx,
        response: ResponseId,
        csv: &str,
    ) -> Result<RoutesLoaded> {
        let entry = self
            .authorize(
                ctx,
                Action::Investigate,
                "eiss.routes.import",
                &format!("response:{response}"),
            )
            .await?;
        let (record, rules) = self.open_response_record(response).await?;
        let rows = civic_eiss::formats::case_routes(csv, &rules)
            .map_err(|e| HubError::BadRequest(format!("case routes: {e}")))?;
        let n = rows.len();
        let mut by_case: Vec<(String, Vec<ToldPlace>)> = Vec::new();
        let mut slot: HashMap<String, usize> = HashMap::new();
        for (number, place) in rows {
            match slot.get(&number) {
                Some(&i) => by_case[i].1.push(place),
                None => {
                    slot.insert(number.clone(), by_case.len());
                    by_case.push((number, vec![place]));
                }
            }
        }
        let region = ctx
            .principal()
            .and_then(|p| p.duties.iter().find_map(|d| d.region.clone()))
            .unwrap_or_else(|| Region::parse("imported").expect("a region"));
        let key = self.data_key(response).await?;
        let mut new = Vec::new();
        let mut known = Vec::new();
        for (number, places) in &by_case {
            match self.store.case_by_number(response, number).await? {
                Some(meta) => known.push((meta.id, places)),
                None => {
                    let (onset, confirmed) = untimed_onset(&rules, places);
                    let secret = CaseSecret {
                        subject: Subject::default(),
                        onset,
                        confirmed,
                        onset_estimated: true,
                    };
                    new.push(NewCase {
                        response,
                        sealed: key.seal_json(&case_context(response, number), &secret),
                        number: number.clone(),
                        region: region.clone(),
                        source_case: None,
                        assigned: Vec::new(),
                    });
                }
            }
        }
        let entry = entry
            .purpose(PURPOSE, &record.legal_basis)
            .reason(format!("{n} route rows of {} cases", by_case.len()));
        let known_ids: Vec<CaseId> = known.iter().map(|(id, _)| *id).collect();
        // A case already known gets the route only from one who works on it.
        for id in &known_ids {
            self.case_for(ctx, *id, true, "eiss.routes.import").await?;
        }
        let mut secrets: HashMap<String, CaseSecret> = HashMap::new();
        for c in &new {
            secrets.insert(
                c.number.clone(),
                key.open_json(&case_context(response, &c.number), &c.sealed)?,
            );
        }
        let created = if new.is_empty() {
            Vec::new()
        } else {
            self.store.create_cases(new, entry.clone()).await?
        };
        let mut timelines: HashMap<CaseId, Timeline> = HashMap::new();
        if !known_ids.is_empty() {
            for c in self
                .store
                .read_cases(response, &known_ids, entry.clone())
                .await?
            {
                secrets.insert(
                    c.number.clone(),
                    key.open_json(&case_context(response, &c.number), &c.sealed)?,
                );
            }
            for (id, sealed) in self
                .store
                .documents(response, &known_ids, CaseDocument::Timeline, entry.clone())
                .await?
            {
                timelines.insert(
                    id,
                    key.open_json(&doc_context(id, CaseDocument::Timeline), &sealed)?,
                );
            }
        }
        let metas: HashMap<CaseId, String> = created
            .iter()
            .map(|c| (c.id, c.number.clone()))
            .chain(
                self.store
                    .case_metas(response)
                    .await?
                    .into_iter()
                    .filter(|m| known_ids.contains(&m.id))
                    .map(|m| (m.id, m.number)),
            )
            .collect();
        let mut documents = Vec::with_capacity(metas.len());
        let mut inputs = Vec::with_capacity(metas.len());
        for (id, number) in &metas {
            let places = &by_case[slot[number]].1;
            documents.push((
                *id,
                CaseDocument::PublishedRoute,
                key.seal_json(&doc_context(*id, CaseDocument::PublishedRoute), places),
            ));
            let secret = secrets.get(number).expect("every case's secret was read");
            let timeline = timelines.remove(id).unwrap_or_default();
            inputs.push(case_input(*id, secret, &timeline, places, &rules));
        }
        self.store.put_documents(documents, entry).await?;
        // An index already built takes the routes in; one not yet built
        // will read them.
        let built = self.state.clusters.lock().await.get(&response).cloned();
        if let Some(index) = built {
            let mut index = index.lock().await;
            for input in inputs {
                index.upsert(input);
            }
        }
        Ok(RoutesLoaded {
            rows: n,
            cases_created: created.len(),
            cases_updated: known.len(),
        })
    }
}
