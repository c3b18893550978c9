//! The evidence between cases (meetings, shared settings) and the chains
//! it makes: each case's candidate infectors, the vote, the clusters.

use super::*;

impl ClusterIndex {
    /// Calls `f(other case, my presence's index, my presence, other's
    /// presence, weight)` for every presence of another case (an earlier
    /// one only, if `earlier_only`) at the same place as one of case `i`'s,
    /// overlapping in time: the same precise place (weight 1), or failing
    /// that the same main tower (`area_weight`); at home with another home,
    /// times `home_weight`; at a transit place, times `transit_weight`.
    pub(super) fn for_each_meeting(
        &self,
        i: u32,
        earlier_only: bool,
        mut f: impl FnMut(u32, u32, &Presence, &Presence, f64),
    ) {
        let case = &self.cases[i as usize];
        let me = (case.onset, case.id);
        let mut met: HashMap<(u32, u32), f64> = HashMap::new();
        for (k, p) in case.presences.iter().enumerate() {
            met.clear();
            let searches = [
                (&self.precise, p.point, true, 1.0, self.rules.near_m),
                // The same main tower.
                (&self.areas, p.tower, false, self.rules.area_weight, 1.0),
            ];
            for (grid, at, precise, weight, near) in searches {
                let Some((lat, lon)) = at else { continue };
                let cos_lat = lat.to_radians().cos();
                let reach = i32::from(precise);
                let (ci, cj) = cell(lat, lon, CELL_M);
                for di in -reach..=reach {
                    for dj in -reach..=reach {
                        let Some(cell) = grid.get(&(ci + di, cj + dj)) else {
                            continue;
                        };
                        let from = cell
                            .entries
                            .partition_point(|e| e.start < p.start - cell.longest);
                        for e in &cell.entries[from..] {
                            if e.start > p.end {
                                break;
                            }
                            if e.case == i || e.end < p.start {
                                continue;
                            }
                            let other = &self.cases[e.case as usize];
                            if earlier_only && (other.onset, other.id) >= me {
                                continue;
                            }
                            let q = &other.presences[e.presence as usize];
                            let theirs = if precise { q.point } else { q.tower };
                            let Some(q) = theirs else { continue };
                            if within((lat, lon), q, cos_lat, near) {
                                let w = met.entry((e.case, e.presence)).or_insert(0.0);
                                *w = w.max(weight);
                            }
                        }
                    }
                }
            }
            let home = case.settings[k] == Setting::Home;
            for (&(other, presence), &weight) in &met {
                let them = &self.cases[other as usize];
                let q = &them.presences[presence as usize];
                let weight = match them.settings[presence as usize] {
                    Setting::Home if home => weight * self.rules.home_weight,
                    Setting::Transit => weight * self.rules.transit_weight,
                    _ => weight,
                };
                f(other, k as u32, p, q, weight);
            }
        }
    }

    /// Calls `f(other case, my setting, theirs)` for every regular setting
    /// of another case (an earlier one only, if `earlier_only`) at the
    /// same place as one of case `i`'s and seen there within
    /// `setting_days` of it: one call a pair of cases and place, however
    /// often each was seen there.
    pub(super) fn for_each_setting_mate(
        &self,
        i: u32,
        earlier_only: bool,
        mut f: impl FnMut(u32, &SettingSeen, &SettingSeen),
    ) {
        let case = &self.cases[i as usize];
        let me = (case.onset, case.id);
        let spread = self.rules.setting_days * DAY;
        let near = self.rules.near_m;
        let setting_cell = self.rules.setting_cell_m();
        for mine in &case.regular {
            let (lat, lon) = mine.point;
            let cos_lat = lat.to_radians().cos();
            let (ci, cj) = cell(lat, lon, setting_cell);
            for di in -1..=1 {
                for dj in -1..=1 {
                    for &(other, k) in self.regular.get(&(ci + di, cj + dj)).into_iter().flatten() {
                        if other == i {
                            continue;
                        }
                        let them = &self.cases[other as usize];
                        if earlier_only && (them.onset, them.id) >= me {
                            continue;
                        }
                        let theirs = &them.regular[k as usize];
                        if theirs.first > mine.last + spread || theirs.last < mine.first - spread {
                            continue;
                        }
                        if within((lat, lon), theirs.point, cos_lat, near) {
                            f(other, mine, theirs);
                        }
                    }
                }
            }
        }
    }

    /// Chooses case `i`'s most likely infector among earlier cases.
    pub(super) fn choose_parent(&mut self, i: u32) {
        let links = self.links_of(i);
        self.cases[i as usize].links = links;
    }

    /// Case `i`'s likeliest infectors among earlier cases, likeliest
    /// first; failing any, the earlier case it was likeliest infected with.
    pub(super) fn links_of(&self, i: u32) -> Vec<Parent> {
        let me = &self.cases[i as usize];
        if !me.live {
            return Vec::new();
        }
        let rules = self.rules;
        let order = |c: &Case| (c.onset, c.id);
        let incubating = |at: i64| self.density((me.onset - at) as f64 / DAY as f64, me.estimated);
        // From the visitor's onset day on, a visit for care is care.
        let ill_from = me.onset - DAY / 2;
        let mut evidence: HashMap<u32, Evidence> = HashMap::new();
        self.for_each_meeting(i, true, |other, presence, p, q, weight| {
            let them = &self.cases[other as usize];
            if !them.live
                || (me.settings[presence as usize] == Setting::Care && p.start >= ill_from)
            {
                return;
            }
            let infectious = |at: i64| {
                at >= them.onset - rules.infectious_before_s && at <= them.infectious_until
            };
            let entry = evidence.entry(other).or_insert(Evidence {
                presence,
                at: p.start,
                ..Evidence::default()
            });
            let Some((s, e)) = self.overlap(p, q) else {
                return;
            };
            let (mut infector, mut co) = (0.0, 0.0);
            let mut t = s;
            while t < e {
                let step = (e - t).min(SLICE_S);
                let mid = t + step / 2;
                let hours = step as f64 / 3600.0;
                let mine = incubating(mid);
                if mine > 0.0 {
                    if infectious(mid) {
                        infector += hours * weight * mine;
                    }
                    co += hours
                        * weight
                        * mine
                        * self.density((them.onset - mid) as f64 / DAY as f64, them.estimated);
                }
                t += step;
            }
            entry.infector += infector;
            entry.co += co;
            let part = infector.max(co);
            if part > entry.best {
                entry.best = part;
                entry.presence = presence;
                entry.at = s + (e - s) / 2;
                entry.basis = if p.timed && q.timed {
                    Basis::SameTime
                } else {
                    Basis::SameDay
                };
            }
        });
        // Regular settings both were seen at: each day the other was
        // infectious and this one may have been infected there, counted
        // once for the pair (the likeliest place, not every sighting).
        self.for_each_setting_mate(i, true, |other, mine, _| {
            let them = &self.cases[other as usize];
            if !them.live {
                return;
            }
            let first = (them.onset - rules.infectious_before_s).max(me.onset - 14 * DAY);
            let last = them.infectious_until.min(me.onset - DAY);
            let mut score = 0.0;
            let mut t = first;
            while t <= last {
                score += rules.setting_weight * incubating(t);
                t += DAY;
            }
            let entry = evidence.entry(other).or_insert(Evidence {
                presence: mine.presence,
                at: mine.first,
                ..Evidence::default()
            });
            if score > entry.setting {
                entry.setting = score;
                if score > entry.best {
                    entry.best = score;
                    entry.presence = mine.presence;
                    let p = &me.presences[mine.presence as usize];
                    entry.at = p.start + (p.end - p.start) / 2;
                    entry.basis = Basis::SameSetting;
                }
            }
        });
        let pick = |by: fn(&Evidence) -> f64, kind: LinkKind| {
            evidence
                .iter()
                .filter(|(_, v)| by(v) > 0.0)
                .max_by(|a, b| {
                    by(a.1).total_cmp(&by(b.1)).then_with(|| {
                        order(&self.cases[*b.0 as usize]).cmp(&order(&self.cases[*a.0 as usize]))
                    })
                })
                .map(|(other, v)| Parent {
                    case: self.cases[*other as usize].id,
                    score: by(v),
                    kind,
                    basis: v.basis,
                    presence: v.presence,
                    at: v.at,
                })
        };
        let infectors = |v: &Evidence| v.infector + v.setting;
        let mut links: Vec<Parent> = evidence
            .iter()
            .filter(|(_, v)| infectors(v) > 0.0)
            .map(|(other, v)| Parent {
                case: self.cases[*other as usize].id,
                score: infectors(v),
                kind: LinkKind::Infector,
                basis: v.basis,
                presence: v.presence,
                at: v.at,
            })
            .collect();
        links.sort_by(|a, b| {
            let order = |id: i64| order(&self.cases[self.by_id[&id] as usize]);
            b.score
                .total_cmp(&a.score)
                .then_with(|| order(b.case).cmp(&order(a.case)))
        });
        links.truncate(MAX_CANDIDATES);
        if links.is_empty() {
            links.extend(pick(|v| v.co, LinkKind::CoExposed));
        }
        links
    }

    /// Each case's chosen link. A case goes with the chain (the clusters
    /// its likeliest infectors alone would make) whose cases together
    /// weigh most as its infectors — where several chains met, the one
    /// more of its infectious cases were at — and links to the likeliest
    /// infector of that chain. So a cluster stays whole when its evidence
    /// is spread over many weaker links, and one strong link to a
    /// stranger does not carry a case off.
    pub(super) fn chosen(&self) -> Vec<Option<&Parent>> {
        let first: Vec<Option<&Parent>> = self
            .cases
            .iter()
            .map(|c| c.links.first().filter(|_| c.live))
            .collect();
        // One vote: a second changes nothing on the benchmark's city.
        self.vote(&first)
    }

    /// Each case's link after one vote over the chains `current` makes.
    pub(super) fn vote<'a>(&'a self, current: &[Option<&'a Parent>]) -> Vec<Option<&'a Parent>> {
        let links: Vec<Option<u32>> = current
            .iter()
            .map(|p| p.and_then(|p| self.by_id.get(&p.case).copied()))
            .collect();
        let chain = components(&links);
        self.cases
            .iter()
            .map(|c| {
                if !c.live {
                    return None;
                }
                let best = c.links.first()?;
                let chain_of = |p: &Parent| self.by_id.get(&p.case).map(|&j| chain[j as usize]);
                let mut votes: HashMap<u32, f64> = HashMap::new();
                for p in &c.links {
                    if let Some(k) = chain_of(p) {
                        *votes.entry(k).or_default() += p.score;
                    }
                }
                let own = chain_of(best);
                let winner = votes
                    .iter()
                    .max_by(|a, b| {
                        a.1.total_cmp(b.1)
                            .then_with(|| (Some(*a.0) == own).cmp(&(Some(*b.0) == own)))
                            .then_with(|| b.0.cmp(a.0))
                    })
                    .map(|(k, _)| *k);
                c.links
                    .iter()
                    .find(|p| chain_of(p) == winner)
                    .or(Some(best))
            })
            .collect()
    }

    /// The likely infector of a case, if linked.
    pub fn infector(&self, case: i64) -> Option<(i64, LinkKind)> {
        let i = *self.by_id.get(&case)?;
        self.chosen()[i as usize].map(|p| (p.case, p.kind))
    }

    /// Every case's cluster: (case, cluster id = its source's case id).
    pub fn assignments(&self) -> Vec<(i64, i64)> {
        self.assignments_of(&self.chosen())
    }

    pub(super) fn assignments_of(&self, chosen: &[Option<&Parent>]) -> Vec<(i64, i64)> {
        let links: Vec<Option<u32>> = chosen
            .iter()
            .map(|p| p.and_then(|p| self.by_id.get(&p.case).copied()))
            .collect();
        let root = components(&links);
        // The cluster's id: its earliest case.
        let mut source: HashMap<u32, u32> = HashMap::new();
        for (i, c) in self.cases.iter().enumerate() {
            if !c.live {
                continue;
            }
            let r = root[i];
            let s = source.entry(r).or_insert(i as u32);
            let cur = &self.cases[*s as usize];
            if (c.onset, c.id) < (cur.onset, cur.id) {
                *s = i as u32;
            }
        }
        let mut out: Vec<(i64, i64)> = self
            .cases
            .iter()
            .enumerate()
            .filter(|(_, c)| c.live)
            .map(|(i, c)| (c.id, self.cases[source[&root[i]] as usize].id))
            .collect();
        out.sort_unstable();
        out
    }

    /// The clusters of two or more cases, largest first.
    pub fn clusters(&self) -> Vec<Cluster> {
        let chosen = self.chosen();
        let mut members: HashMap<i64, Vec<i64>> = HashMap::new();
        for (case, cluster) in self.assignments_of(&chosen) {
            members.entry(cluster).or_default().push(case);
        }
        let mut out = Vec::new();
        for (source, cases) in members {
            if cases.len() < 2 {
                continue;
            }
            let mut tree = Vec::new();
            // Where links were made: (name or rounded place) → count.
            let mut places: HashMap<String, (u32, f64, f64)> = HashMap::new();
            for &case in &cases {
                let i = self.by_id[&case] as usize;
                let c = &self.cases[i];
                let Some(p) = chosen[i] else { continue };
                let presence = &c.presences[p.presence as usize];
                let (lat, lon) = presence.position();
                let key = presence
                    .place
                    .clone()
                    .filter(|n| n != "home")
                    .unwrap_or_else(|| format!("near {lat:.4}, {lon:.4}"));
                let slot = places.entry(key).or_insert((0, lat, lon));
                slot.0 += 1;
                tree.push(TreeEdge {
                    case,
                    infector: p.case,
                    kind: p.kind,
                    place: presence.place.clone(),
                    lat,
                    lon,
                    at: p.at,
                    score: p.score,
                    setting: c.settings[p.presence as usize],
                    basis: p.basis,
                });
            }
            let (name, (_, lat, lon)) = places
                .into_iter()
                .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then_with(|| b.0.cmp(&a.0)))
                .unwrap_or_else(|| ("unnamed".into(), (0, 0.0, 0.0)));
            let mut cases = cases;
            cases.sort_unstable();
            tree.sort_by_key(|e| e.case);
            out.push(Cluster {
                id: source,
                name,
                lat,
                lon,
                source,
                cases,
                tree,
            });
        }
        out.sort_by(|a, b| b.cases.len().cmp(&a.cases.len()).then(a.id.cmp(&b.id)));
        out
    }
}
