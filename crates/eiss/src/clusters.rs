//! Clusters: cases linked through places they shared in time.
//!
//! Two cases are linked where they were at the same place at overlapping
//! times for at least the response's minimum overlap: the same place for
//! two places known precisely (a merchant, a place told, a home address)
//! is within [`LinkRules::near_m`]; for two stays known only to their
//! towers, the same main tower — weaker evidence, weighted by
//! [`LinkRules::area_weight`].
//!
//! Linking every such pair and taking connected components merges a
//! city's clusters into one (two chains meet at a school, a hospital, a
//! busy church). So each case keeps only its **most likely infector**: the
//! earlier case (by onset, then id) with the highest weight of evidence
//! that it infected this one: hours together, while the other was
//! infectious (from two days before its onset to eight after) and this one
//! was incubating (weighted by the incubation's log-normal density at this
//! one's onset). A case with no such link keeps its strongest link to an
//! earlier case both of whom were incubating at the time (infected at the
//! same event). Clusters are the connected components of these links; as
//! every link points to an earlier case, each cluster is a tree, whose
//! root — its earliest onset — is the likely source, and whose most
//! frequent link place names it.
//!
//! [`ClusterIndex`] keeps the cases' places in a grid of cells by time, so
//! a case that arrives (or gets more data) is linked by looking only at
//! its cells, and only the cases it touches choose their infector again.

use crate::geo::{cell, distance_m};
use crate::DAY;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Where and when a case was, for linking: at a place known precisely
/// (a merchant, a place told, a home address), in a tower's area (the
/// main tower of the pings that placed it), or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// The place, if known precisely.
    pub point: Option<(f64, f64)>,
    /// The main tower of the pings that placed it, if any.
    pub tower: Option<(f64, f64)>,
    pub start: i64,
    pub end: i64,
    /// False for a date-level row of a published route: some time that
    /// day.
    pub timed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

impl Presence {
    /// Where it is best known.
    pub fn position(&self) -> (f64, f64) {
        self.point.or(self.tower).unwrap_or((0.0, 0.0))
    }
}

/// What a place is, for what a meeting there says: read from its name or
/// its published category (English or Korean).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// The case's home.
    Home,
    /// A hospital, clinic, pharmacy, public health centre or testing site:
    /// where the ill go. A visit from the visitor's onset on is care, not
    /// exposure.
    Care,
    /// A place people return to: a workplace, school, church, care home.
    /// Two cases seen there on different days of a week were most likely
    /// both there on others too.
    Regular,
    /// An airport, station or terminal: many brief passings.
    Transit,
    /// Anything else: a restaurant, cafe, shop, club, or no name.
    Other,
}

impl Setting {
    /// Reads a place's name or category.
    pub fn of(place: Option<&str>) -> Self {
        let Some(raw) = place else {
            return Self::Other;
        };
        let p = raw.trim().to_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| p.contains(w));
        if any(&[
            "nursing",
            "care home",
            "elderly",
            "workplace",
            "office",
            "company",
            "call cent",
            "factory",
            "warehouse",
            "logistics",
            "school",
            "academy",
            "university",
            "kindergarten",
            "daycare",
            "church",
            "temple",
            "cathedral",
            "mosque",
            "religious",
            "직장",
            "회사",
            "콜센터",
            "공장",
            "물류",
            "학교",
            "학원",
            "유치원",
            "어린이집",
            "교회",
            "성당",
            "사찰",
            "요양",
        ]) {
            Self::Regular
        } else if any(&[
            "hospital",
            "clinic",
            "medical",
            "pharmacy",
            "drugstore",
            "health cent",
            "public health",
            "screening",
            "testing",
            "병원",
            "의원",
            "약국",
            "보건소",
            "선별진료소",
        ]) {
            Self::Care
        } else if any(&[
            "airport",
            "station",
            "terminal",
            "subway",
            "공항",
            "터미널",
            "지하철",
        ]) {
            Self::Transit
        } else if p == "home" || any(&["자택", "거주지"]) {
            Self::Home
        } else {
            Self::Other
        }
    }
}

/// A position: (latitude, longitude).
type Point = (f64, f64);

/// What the index needs of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseInput {
    pub case: i64,
    /// Symptom onset (Unix seconds; local noon of the onset date).
    pub onset: i64,
    /// True where the onset was not registered but estimated from the
    /// confirmation date: the index then takes an earlier visit for care
    /// as the onset, and is less sure of the timing.
    #[serde(default)]
    pub onset_estimated: bool,
    /// Confirmation (Unix seconds; local noon of the date): the case is
    /// isolated after that day and infects no one. None: infectious for
    /// the usual time.
    #[serde(default)]
    pub confirmed: Option<i64>,
    pub presences: Vec<Presence>,
}

/// How links are made and weighed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkRules {
    /// Two precise places at most this far apart are one place.
    pub near_m: f64,
    /// Overlap that makes a link, in seconds.
    pub min_overlap_s: i64,
    /// Evidence from two tower areas counts this much of a precise place's.
    pub area_weight: f64,
    /// Time together at home counts this much of time elsewhere: people
    /// are not at home all the time a household shares, and crowded
    /// places pass infections on faster than homes do.
    pub home_weight: f64,
    /// Infectious from this long before onset …
    pub infectious_before_s: i64,
    /// … to this long after.
    pub infectious_after_s: i64,
    /// Incubation: log-normal with this mean and standard deviation, days.
    pub incubation_mean_days: f64,
    pub incubation_sd_days: f64,
    /// An estimated onset is this uncertain (sd, days), on top of the
    /// incubation's own spread.
    pub estimated_onset_sd_days: f64,
    /// Two cases seen at the same regular setting (a workplace, school,
    /// church) up to this many days apart are taken to share it …
    pub setting_days: i64,
    /// … which counts this much of a day together there, on each day the
    /// one was infectious and the other may have been infected.
    pub setting_weight: f64,
    /// Meetings at a transit place count this much.
    pub transit_weight: f64,
}

impl Default for LinkRules {
    fn default() -> Self {
        Self {
            near_m: 60.0,
            min_overlap_s: 600,
            area_weight: 0.25,
            home_weight: 0.5,
            infectious_before_s: 2 * DAY,
            infectious_after_s: 8 * DAY,
            incubation_mean_days: 5.2,
            incubation_sd_days: 2.8,
            estimated_onset_sd_days: 1.5,
            setting_days: 7,
            setting_weight: 0.3,
            transit_weight: 0.3,
        }
    }
}

impl LinkRules {
    /// Regular settings are indexed in cells of `near_m` (a place's
    /// neighbours are in the 3 × 3 cells around it): venues are dense
    /// downtown, and a setting's mates are only at that one place.
    fn setting_cell_m(&self) -> f64 {
        self.near_m.max(1.0)
    }

    /// The incubation density (per day) at `days` after infection, for an
    /// onset known or estimated.
    fn incubation_of(&self, days: f64, estimated: bool) -> f64 {
        if !estimated {
            return self.incubation(days);
        }
        let sd = self.incubation_sd_days.hypot(self.estimated_onset_sd_days);
        self.incubation_with(days, sd)
    }

    /// The incubation density (per day) at `days` after infection.
    fn incubation(&self, days: f64) -> f64 {
        self.incubation_with(days, self.incubation_sd_days)
    }

    fn incubation_with(&self, days: f64, s: f64) -> f64 {
        if days < 1.0 {
            return 0.0;
        }
        let m = self.incubation_mean_days;
        let sigma2 = (1.0 + (s / m).powi(2)).ln();
        let mu = m.ln() - sigma2 / 2.0;
        let z = days.ln() - mu;
        (-z * z / (2.0 * sigma2)).exp() / (days * (2.0 * std::f64::consts::PI * sigma2).sqrt())
    }
}

/// Grid cells are this big; a precise place's neighbours are found in the
/// 3 × 3 cells around it.
const CELL_M: f64 = 150.0;
/// Metres in a degree of latitude.
const M_PER_DEG: f64 = 111_195.0;
/// Towers are looked up in cells this big.
const TOWER_CELL_M: f64 = 1_000.0;
/// A tower serves places up to about this far.
const TOWER_REACH_M: f64 = 750.0;
/// A date-level row counts as this much time together on that day.
const UNTIMED_OVERLAP_S: i64 = 3600;
/// The incubation density is tabulated to this many hours (30 days; 0
/// beyond).
const DENSITY_HOURS: usize = 30 * 24;
/// A case keeps this many of its likeliest infectors, for the chains to
/// vote on.
const MAX_CANDIDATES: usize = 16;
/// Evidence is weighed in slices of at most this long.
const SLICE_S: i64 = 6 * 3600;

#[derive(Debug, Clone, Copy)]
struct Entry {
    case: u32,
    presence: u32,
    start: i64,
    end: i64,
}

#[derive(Debug, Default)]
struct Cell {
    /// Sorted by start.
    entries: Vec<Entry>,
    /// The longest presence in the cell, to bound a search by start.
    longest: i64,
}

/// How a case is linked to its infector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// The other was infectious while this one was incubating.
    Infector,
    /// Both were incubating: infected at the same event.
    CoExposed,
}

/// What put two cases together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// At the same place at the same time.
    SameTime,
    /// At the same place on the same day (a route without times).
    SameDay,
    /// At the same regular setting on different days of a week.
    SameSetting,
}

/// What one case's meetings with another say.
#[derive(Debug, Clone, Copy)]
struct Evidence {
    /// The other was infectious while this one was incubating: hours
    /// together, weighed.
    infector: f64,
    /// Both were incubating: infected at the same event.
    co: f64,
    /// Both were seen at a regular setting on different days.
    setting: f64,
    /// The presence (of this case) that weighed most, when, and how.
    presence: u32,
    at: i64,
    best: f64,
    basis: Basis,
}

impl Default for Evidence {
    fn default() -> Self {
        Self {
            infector: 0.0,
            co: 0.0,
            setting: 0.0,
            presence: 0,
            at: 0,
            best: 0.0,
            basis: Basis::SameTime,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Parent {
    case: i64,
    score: f64,
    kind: LinkKind,
    basis: Basis,
    /// The presence (of the child) that weighed most.
    presence: u32,
    at: i64,
}

/// Where a case was seen at a regular setting: the place, the first and
/// last time there, and its first presence there.
#[derive(Debug, Clone, Copy)]
struct SettingSeen {
    point: (f64, f64),
    first: i64,
    last: i64,
    presence: u32,
}

#[derive(Debug)]
struct Case {
    id: i64,
    /// As given, or moved to the first visit for care when estimated.
    onset: i64,
    estimated: bool,
    /// Infectious from `infectious_before_s` before onset to this.
    infectious_until: i64,
    presences: Vec<Presence>,
    /// Each presence's setting.
    settings: Vec<Setting>,
    /// Whether each presence's tower is the nearest to its place (not
    /// one its pings named): it changes as towers become known.
    assigned_tower: Vec<bool>,
    /// The regular settings it was seen at.
    regular: Vec<SettingSeen>,
    /// Its likeliest infectors, likeliest first (at most
    /// [`MAX_CANDIDATES`]), or the one case it was most likely infected
    /// with.
    links: Vec<Parent>,
    live: bool,
}

/// A cluster: its cases, source, name and transmission tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// The source's case id.
    pub id: i64,
    /// The dominant place: where most links in the cluster were made.
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    /// The likely source: the earliest onset, the tree's root.
    pub source: i64,
    pub cases: Vec<i64>,
    /// Each case but the source, with its likely infector.
    pub tree: Vec<TreeEdge>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeEdge {
    pub case: i64,
    pub infector: i64,
    pub kind: LinkKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// When they were together (the middle of the strongest overlap; for
    /// a shared setting, when the infectee was there).
    pub at: i64,
    /// The weight of evidence: hours together weighed by the place and by
    /// how well the timing fits an infection.
    pub score: f64,
    /// What the place is, and what put the two together.
    pub setting: Setting,
    pub basis: Basis,
}

/// The cases of a response, indexed by place and time.
#[derive(Debug)]
pub struct ClusterIndex {
    rules: LinkRules,
    /// The incubation density by hour after infection, for an onset known
    /// and estimated (`[known, estimated]`): looked up, not computed, in
    /// the inner loops.
    density: [Vec<f64>; 2],
    cases: Vec<Case>,
    by_id: HashMap<i64, u32>,
    precise: HashMap<(i32, i32), Cell>,
    /// Tower areas, by their centre's cell.
    areas: HashMap<(i32, i32), Cell>,
    /// Towers the cases' presences named, by cell.
    towers: HashMap<(i32, i32), Vec<(f64, f64)>>,
    /// Regular settings: (case, its setting's index), by cell.
    regular: HashMap<(i32, i32), Vec<(u32, u32)>>,
}

impl Default for ClusterIndex {
    fn default() -> Self {
        Self::new(LinkRules::default())
    }
}

impl ClusterIndex {
    pub fn new(rules: LinkRules) -> Self {
        let table = |estimated| {
            (0..=DENSITY_HOURS)
                .map(|h| rules.incubation_of(h as f64 / 24.0, estimated))
                .collect()
        };
        Self {
            rules,
            density: [table(false), table(true)],
            cases: Vec::new(),
            by_id: HashMap::new(),
            precise: HashMap::new(),
            areas: HashMap::new(),
            towers: HashMap::new(),
            regular: HashMap::new(),
        }
    }

    /// The incubation density at `days` after infection (to the hour).
    fn density(&self, days: f64, estimated: bool) -> f64 {
        // Beyond the table (or before infection) there is none.
        let hour = (days * 24.0).round();
        if !(0.0..=DENSITY_HOURS as f64).contains(&hour) {
            return 0.0;
        }
        self.density[usize::from(estimated)][hour as usize]
    }

    pub fn len(&self) -> usize {
        self.cases.iter().filter(|c| c.live).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds the index of many cases at once (faster than one by one).
    pub fn build(rules: LinkRules, cases: impl IntoIterator<Item = CaseInput>) -> Self {
        let mut index = Self::new(rules);
        let cases: Vec<CaseInput> = cases.into_iter().collect();
        for c in &cases {
            index.learn_towers(c);
        }
        for input in cases {
            index.place_case(input, false);
        }
        for cell in index.precise.values_mut().chain(index.areas.values_mut()) {
            cell.entries.sort_by_key(|e| e.start);
        }
        // Each case's infector depends only on the index: the cases are
        // shared among the cores.
        let n = index.cases.len();
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(n.max(1));
        let chunk = n.div_ceil(threads.max(1)).max(1);
        let parents: Vec<Vec<Parent>> = std::thread::scope(|scope| {
            let index = &index;
            let workers: Vec<_> = (0..n)
                .step_by(chunk)
                .map(|from| {
                    scope.spawn(move || {
                        (from..(from + chunk).min(n))
                            .map(|i| index.links_of(i as u32))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a worker does not panic"))
                .collect()
        });
        for (case, links) in index.cases.iter_mut().zip(parents) {
            case.links = links;
        }
        index
    }

    /// Adds a case, or replaces what is known of it; the cases it touches
    /// choose their infector again.
    pub fn upsert(&mut self, input: CaseInput) {
        let new_towers = self.learn_towers(&input);
        let mut touched: HashSet<u32> = HashSet::new();
        if let Some(&i) = self.by_id.get(&input.case) {
            touched.extend(self.neighbours(i));
            self.unplace(i);
        }
        let i = self.place_case(input, true);
        touched.extend(self.neighbours(i));
        if !new_towers.is_empty() {
            touched.extend(self.reassign_towers(&new_towers));
        }
        self.choose_parent(i);
        for t in touched {
            if t != i {
                self.choose_parent(t);
            }
        }
    }

    /// Forgets a case (its data was deleted).
    pub fn remove(&mut self, case: i64) {
        if let Some(&i) = self.by_id.get(&case) {
            let touched = self.neighbours(i);
            self.unplace(i);
            self.cases[i as usize].live = false;
            self.cases[i as usize].links.clear();
            for t in touched {
                if t != i {
                    self.choose_parent(t);
                }
            }
        }
    }

    /// Remembers the towers a case's presences name (towers are not
    /// personal data: they are where the holders' antennas stand).
    /// Returns the towers it did not know.
    fn learn_towers(&mut self, input: &CaseInput) -> Vec<(f64, f64)> {
        let mut new = Vec::new();
        for (lat, lon) in input.presences.iter().filter_map(|p| p.tower) {
            let list = self.towers.entry(cell(lat, lon, TOWER_CELL_M)).or_default();
            if !list.iter().any(|t| distance_m(t.0, t.1, lat, lon) < 1.0) {
                list.push((lat, lon));
                new.push((lat, lon));
            }
        }
        new
    }

    /// Places known only precisely near towers just learned get their
    /// nearest tower again (as if every tower had been known when they
    /// were placed, as [`ClusterIndex::build`] has it). Returns the cases
    /// moved, with the cases they met before and after.
    fn reassign_towers(&mut self, new: &[(f64, f64)]) -> HashSet<u32> {
        let reach = (TOWER_REACH_M / CELL_M).ceil() as i32 + 1;
        // (case, presence, its nearest tower now)
        let mut moves: Vec<(u32, u32, Option<Point>)> = Vec::new();
        let mut seen: HashSet<(u32, u32)> = HashSet::new();
        for &(lat, lon) in new {
            let (ci, cj) = cell(lat, lon, CELL_M);
            for di in -reach..=reach {
                for dj in -reach..=reach {
                    let Some(c) = self.precise.get(&(ci + di, cj + dj)) else {
                        continue;
                    };
                    for e in &c.entries {
                        if !seen.insert((e.case, e.presence)) {
                            continue;
                        }
                        let case = &self.cases[e.case as usize];
                        let k = e.presence as usize;
                        let p = &case.presences[k];
                        let (Some((plat, plon)), true) = (p.point, case.assigned_tower[k]) else {
                            continue;
                        };
                        let nearest = self.nearest_tower(plat, plon);
                        if nearest != p.tower {
                            moves.push((e.case, e.presence, nearest));
                        }
                    }
                }
            }
        }
        let mut touched: HashSet<u32> = moves.iter().map(|m| m.0).collect();
        let moved: Vec<u32> = touched.iter().copied().collect();
        for &m in &moved {
            touched.extend(self.neighbours(m));
        }
        for (case, k, tower) in moves {
            let (start, end, old) = {
                let p = &self.cases[case as usize].presences[k as usize];
                (p.start, p.end, p.tower)
            };
            if let Some((lat, lon)) = old {
                if let Some(c) = self.areas.get_mut(&cell(lat, lon, CELL_M)) {
                    c.entries.retain(|e| !(e.case == case && e.presence == k));
                }
            }
            if let Some((lat, lon)) = tower {
                let c = self.areas.entry(cell(lat, lon, CELL_M)).or_default();
                c.longest = c.longest.max(end - start);
                let at = c.entries.partition_point(|e| e.start <= start);
                c.entries.insert(
                    at,
                    Entry {
                        case,
                        presence: k,
                        start,
                        end,
                    },
                );
            }
            self.cases[case as usize].presences[k as usize].tower = tower;
        }
        for &m in &moved {
            touched.extend(self.neighbours(m));
        }
        touched
    }

    /// The nearest known tower to a place, within [`TOWER_REACH_M`].
    fn nearest_tower(&self, lat: f64, lon: f64) -> Option<(f64, f64)> {
        let (ci, cj) = cell(lat, lon, TOWER_CELL_M);
        let mut best: Option<((f64, f64), f64)> = None;
        for di in -1..=1 {
            for dj in -1..=1 {
                for &t in self
                    .towers
                    .get(&(ci + di, cj + dj))
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    let d = distance_m(lat, lon, t.0, t.1);
                    if d <= TOWER_REACH_M && best.is_none_or(|b| d < b.1) {
                        best = Some((t, d));
                    }
                }
            }
        }
        best.map(|b| b.0)
    }

    fn place_case(&mut self, mut input: CaseInput, sorted: bool) -> u32 {
        // A place known only precisely is also in the area of its nearest
        // tower: there it meets those known only by their pings (weakly).
        let mut assigned_tower = vec![false; input.presences.len()];
        for (k, p) in input.presences.iter_mut().enumerate() {
            if let (Some((lat, lon)), None, true) = (p.point, p.tower, p.end - p.start <= DAY) {
                p.tower = self.nearest_tower(lat, lon);
                assigned_tower[k] = true;
            }
        }
        let i = match self.by_id.get(&input.case) {
            Some(&i) => i,
            None => {
                let i = self.cases.len() as u32;
                self.cases.push(Case {
                    id: input.case,
                    onset: input.onset,
                    estimated: false,
                    infectious_until: 0,
                    presences: Vec::new(),
                    settings: Vec::new(),
                    assigned_tower: Vec::new(),
                    regular: Vec::new(),
                    links: Vec::new(),
                    live: true,
                });
                self.by_id.insert(input.case, i);
                i
            }
        };
        let rules = self.rules;
        let case = &mut self.cases[i as usize];
        case.settings = input
            .presences
            .iter()
            .map(|p| Setting::of(p.place.as_deref()))
            .collect();
        // An estimated onset is no later than the first visit for care:
        // people go because they are ill.
        case.onset = input.onset;
        if input.onset_estimated {
            if let Some(first) = input
                .presences
                .iter()
                .zip(&case.settings)
                .filter(|(_, s)| **s == Setting::Care)
                .map(|(p, _)| p.start)
                .min()
            {
                // Noon of that local day (onsets are local noons).
                let midnight = input.onset - DAY / 2;
                let noon = input.onset + (first - midnight).div_euclid(DAY) * DAY;
                case.onset = case.onset.min(noon);
            }
        }
        case.estimated = input.onset_estimated;
        let usual = case.onset + rules.infectious_after_s;
        // Isolated after the day of confirmation.
        case.infectious_until = input.confirmed.map_or(usual, |c| usual.min(c + DAY / 2));
        case.live = true;
        case.presences = input.presences;
        case.assigned_tower = assigned_tower;
        for (k, p) in case.presences.iter().enumerate() {
            let entry = Entry {
                case: i,
                presence: k as u32,
                start: p.start,
                end: p.end,
            };
            for (grid, at) in [(&mut self.precise, p.point), (&mut self.areas, p.tower)] {
                let Some((lat, lon)) = at else { continue };
                let cell = grid.entry(cell(lat, lon, CELL_M)).or_default();
                cell.longest = cell.longest.max(p.end - p.start);
                if sorted {
                    let at = cell.entries.partition_point(|e| e.start <= p.start);
                    cell.entries.insert(at, entry);
                } else {
                    cell.entries.push(entry);
                }
            }
        }
        // Its regular settings: one a place (presences within `near_m` of
        // the first seen there), with the first and last time there.
        let near = self.rules.near_m;
        let mut regular: Vec<SettingSeen> = Vec::new();
        for (k, p) in case.presences.iter().enumerate() {
            let (Setting::Regular, Some(point)) = (case.settings[k], p.point) else {
                continue;
            };
            let cos_lat = point.0.to_radians().cos();
            let same = regular
                .iter_mut()
                .find(|r| within(point, r.point, cos_lat, near));
            match same {
                Some(r) => {
                    r.first = r.first.min(p.start);
                    r.last = r.last.max(p.end);
                }
                None => regular.push(SettingSeen {
                    point,
                    first: p.start,
                    last: p.end,
                    presence: k as u32,
                }),
            }
        }
        let setting_cell = rules.setting_cell_m();
        for (k, r) in regular.iter().enumerate() {
            self.regular
                .entry(cell(r.point.0, r.point.1, setting_cell))
                .or_default()
                .push((i, k as u32));
        }
        case.regular = regular;
        i
    }

    fn unplace(&mut self, i: u32) {
        for r in std::mem::take(&mut self.cases[i as usize].regular) {
            if let Some(list) =
                self.regular
                    .get_mut(&cell(r.point.0, r.point.1, self.rules.setting_cell_m()))
            {
                list.retain(|(c, _)| *c != i);
            }
        }
        let presences = std::mem::take(&mut self.cases[i as usize].presences);
        for p in &presences {
            for (grid, at) in [(&mut self.precise, p.point), (&mut self.areas, p.tower)] {
                let Some((lat, lon)) = at else { continue };
                if let Some(cell) = grid.get_mut(&cell(lat, lon, CELL_M)) {
                    cell.entries.retain(|e| e.case != i);
                }
            }
        }
    }

    /// Calls `f(other case, my presence's index, my presence, other's
    /// presence, weight)` for every presence of another case (an earlier
    /// one only, if `earlier_only`) at the same place as one of case `i`'s,
    /// overlapping in time: the same precise place (weight 1), or failing
    /// that the same main tower (`area_weight`); at home with another home,
    /// times `home_weight`; at a transit place, times `transit_weight`.
    fn for_each_meeting(
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
    fn for_each_setting_mate(
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

    /// Cases meeting case `i` somewhere.
    fn neighbours(&self, i: u32) -> HashSet<u32> {
        let mut out = HashSet::new();
        self.for_each_meeting(i, false, |other, _, _, _, _| {
            out.insert(other);
        });
        self.for_each_setting_mate(i, false, |other, _, _| {
            out.insert(other);
        });
        out
    }

    /// The time two presences overlap, as (start, end), if long enough.
    fn overlap(&self, p: &Presence, q: &Presence) -> Option<(i64, i64)> {
        if p.timed && q.timed {
            let (s, e) = (p.start.max(q.start), p.end.min(q.end));
            (e - s >= self.rules.min_overlap_s).then_some((s, e))
        } else {
            // Some time on a day both were there.
            let (s, e) = (p.start.max(q.start), p.end.min(q.end));
            (e >= s).then(|| {
                let mid = s + (e - s) / 2;
                (mid - UNTIMED_OVERLAP_S / 2, mid + UNTIMED_OVERLAP_S / 2)
            })
        }
    }

    /// Chooses case `i`'s most likely infector among earlier cases.
    fn choose_parent(&mut self, i: u32) {
        let links = self.links_of(i);
        self.cases[i as usize].links = links;
    }

    /// Case `i`'s likeliest infectors among earlier cases, likeliest
    /// first; failing any, the earlier case it was likeliest infected with.
    fn links_of(&self, i: u32) -> Vec<Parent> {
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
    fn chosen(&self) -> Vec<Option<&Parent>> {
        let first: Vec<Option<&Parent>> = self
            .cases
            .iter()
            .map(|c| c.links.first().filter(|_| c.live))
            .collect();
        // One vote: a second changes nothing on the benchmark's city.
        self.vote(&first)
    }

    /// Each case's link after one vote over the chains `current` makes.
    fn vote<'a>(&'a self, current: &[Option<&'a Parent>]) -> Vec<Option<&'a Parent>> {
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

    fn assignments_of(&self, chosen: &[Option<&Parent>]) -> Vec<(i64, i64)> {
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

/// Whether `b` is within `near` metres of `a` (`cos_lat`: the cosine of
/// `a`'s latitude). Metres on a local plane: exact enough at tens of
/// metres, and cheap (no trigonometry).
#[inline]
fn within(a: Point, b: Point, cos_lat: f64, near: f64) -> bool {
    let dy = (b.0 - a.0) * M_PER_DEG;
    let dx = (b.1 - a.1) * M_PER_DEG * cos_lat;
    dx * dx + dy * dy <= near * near
}

/// The connected components of links `i → links[i]`: each index's root.
fn components(links: &[Option<u32>]) -> Vec<u32> {
    let mut root: Vec<u32> = (0..links.len() as u32).collect();
    fn find(root: &mut [u32], mut x: u32) -> u32 {
        while root[x as usize] != x {
            root[x as usize] = root[root[x as usize] as usize];
            x = root[x as usize];
        }
        x
    }
    for (i, link) in links.iter().enumerate() {
        if let Some(j) = *link {
            let (a, b) = (find(&mut root, i as u32), find(&mut root, j));
            if a != b {
                root[a as usize] = b;
            }
        }
    }
    (0..links.len() as u32)
        .map(|i| find(&mut root, i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;
    /// 2020-03-01 00:00 UTC.
    const T0: i64 = 1_583_020_800;

    fn at(lat: f64, lon: f64, start: i64, hours: i64, place: &str) -> Presence {
        Presence {
            point: Some((lat, lon)),
            tower: None,
            start,
            end: start + hours * H,
            timed: true,
            place: Some(place.into()),
        }
    }

    fn case(id: i64, onset_day: i64, presences: Vec<Presence>) -> CaseInput {
        CaseInput {
            case: id,
            onset: T0 + onset_day * DAY + 12 * H,
            onset_estimated: false,
            confirmed: None,
            presences,
        }
    }

    const CHURCH: (f64, f64) = (37.50, 127.00);
    const OFFICE: (f64, f64) = (37.55, 127.05);

    /// A church on day 0 (the source, onset day 1, and three it
    /// infected), an office where one of them infects a colleague later,
    /// and a stranger at the office before anyone was infectious.
    fn outbreak() -> Vec<CaseInput> {
        let church = |d| at(CHURCH.0, CHURCH.1, T0 + 10 * H, d, "Church Songpa 36");
        vec![
            case(1, 1, vec![church(3)]),
            case(
                2,
                5,
                vec![
                    church(2),
                    at(OFFICE.0, OFFICE.1, T0 + 4 * DAY + 9 * H, 8, "Office 7"),
                ],
            ),
            case(3, 6, vec![church(2)]),
            case(4, 4, vec![church(3)]),
            case(
                5,
                9,
                vec![at(OFFICE.0, OFFICE.1, T0 + 4 * DAY + 9 * H, 8, "Office 7")],
            ),
            // At the office on day 0: nobody there was infectious yet.
            case(
                6,
                3,
                vec![at(OFFICE.0, OFFICE.1 + 0.0002, T0 + 9 * H, 8, "Office 7")],
            ),
        ]
    }

    #[test]
    fn cases_link_to_their_likely_infector_and_clusters_are_trees() {
        let index = ClusterIndex::build(LinkRules::default(), outbreak());
        assert_eq!(index.infector(2), Some((1, LinkKind::Infector)));
        assert_eq!(index.infector(5), Some((2, LinkKind::Infector)));
        assert_eq!(index.infector(1), None, "the source has none");
        assert_eq!(index.infector(6), None, "no one infectious met it");
        let clusters = index.clusters();
        assert_eq!(clusters.len(), 1);
        let c = &clusters[0];
        assert_eq!(c.source, 1);
        assert_eq!(c.cases, vec![1, 2, 3, 4, 5]);
        assert_eq!(c.name, "Church Songpa 36");
        assert_eq!(c.tree.len(), 4);
        let a = index.assignments();
        assert!(a.contains(&(6, 6)) && a.contains(&(5, 1)));
    }

    #[test]
    fn arriving_one_by_one_gives_what_building_at_once_gives() {
        let all = ClusterIndex::build(LinkRules::default(), outbreak());
        let mut inc = ClusterIndex::new(LinkRules::default());
        for c in outbreak().into_iter().rev() {
            inc.upsert(c);
        }
        assert_eq!(inc.assignments(), all.assignments());
        assert_eq!(inc.clusters(), all.clusters());
        // More data for a case, then its removal.
        let mut more = outbreak().remove(5);
        more.presences
            .push(at(CHURCH.0, CHURCH.1, T0 + 10 * H, 2, "Church Songpa 36"));
        inc.upsert(more);
        assert_eq!(inc.clusters()[0].cases, vec![1, 2, 3, 4, 5, 6]);
        inc.remove(2);
        // Its link from the office that day is gone; what remains is the
        // office itself: case 6 worked there too, infectious from day 1.
        assert_eq!(inc.infector(5), Some((6, LinkKind::Infector)));
        let edge = inc.clusters()[0]
            .tree
            .iter()
            .find(|e| e.case == 5)
            .cloned()
            .unwrap();
        assert_eq!(
            (edge.setting, edge.basis),
            (Setting::Regular, Basis::SameSetting)
        );
        assert_eq!(inc.len(), 5);
    }

    #[test]
    fn a_case_goes_with_the_chain_that_weighs_most_not_the_strongest_single_link() {
        const CAFE: (f64, f64) = (37.58, 127.01);
        // A restaurant (no regular setting): only the hours together count.
        let church = |day: i64, hours| {
            at(
                CHURCH.0,
                CHURCH.1,
                T0 + day * DAY + 10 * H,
                hours,
                "Restaurant Songpa 36",
            )
        };
        let index = ClusterIndex::build(
            LinkRules::default(),
            vec![
                // A chain: the source and two it infected at a dinner.
                case(2, 1, vec![church(0, 2), church(3, 1)]),
                case(3, 4, vec![church(0, 2), church(3, 1)]),
                case(4, 4, vec![church(0, 2), church(3, 1)]),
                // A stranger, infectious, two hours at a cafe with case 10.
                case(
                    1,
                    1,
                    vec![at(
                        CAFE.0,
                        CAFE.1,
                        T0 + 3 * DAY + 14 * H,
                        2,
                        "Cafe Jongno 3",
                    )],
                ),
                // Case 10: an hour at the next dinner with each of the
                // chain's three, two hours with the stranger.
                case(
                    10,
                    6,
                    vec![
                        church(3, 1),
                        at(CAFE.0, CAFE.1, T0 + 3 * DAY + 14 * H, 2, "Cafe Jongno 3"),
                    ],
                ),
            ],
        );
        let first = &index.cases[index.by_id[&10] as usize].links[0];
        assert_eq!(first.case, 1, "the strongest single link is the stranger");
        let (infector, _) = index.infector(10).unwrap();
        assert!([2, 3, 4].contains(&infector), "{infector}");
        let clusters = index.clusters();
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0].cases, vec![2, 3, 4, 10]);
    }

    #[test]
    fn a_tower_learned_later_reaches_places_placed_before_it() {
        // Case 1 told a place 200 m from a tower no case has named yet;
        // case 2 is known only by that tower, later. Arriving in that
        // order, they meet as they do when built at once.
        let told = at(37.5018, 127.0, T0 + 10 * H, 3, "Restaurant A");
        let pings = Presence {
            point: None,
            tower: Some((37.5, 127.0)),
            start: T0 + 10 * H,
            end: T0 + 13 * H,
            timed: true,
            place: None,
        };
        let cases = vec![case(1, 1, vec![told]), case(2, 5, vec![pings])];
        let all = ClusterIndex::build(LinkRules::default(), cases.clone());
        assert_eq!(all.infector(2), Some((1, LinkKind::Infector)));
        let mut inc = ClusterIndex::new(LinkRules::default());
        for c in cases {
            inc.upsert(c);
        }
        assert_eq!(inc.infector(2), Some((1, LinkKind::Infector)));
        assert_eq!(inc.clusters(), all.clusters());
    }

    #[test]
    fn places_are_read_from_names_and_categories() {
        for (text, setting) in [
            ("Call Centre Yongsan 6", Setting::Regular),
            ("workplace", Setting::Regular),
            ("Church Songpa 36", Setting::Regular),
            ("Seoul Nursing Home", Setting::Regular),
            ("콜센터", Setting::Regular),
            ("Hospital Guro 2", Setting::Care),
            ("public health centre", Setting::Care),
            ("Pharmacy Mapo 3", Setting::Care),
            ("선별진료소", Setting::Care),
            ("Incheon Airport", Setting::Transit),
            ("home", Setting::Home),
            ("Restaurant Jongno 4", Setting::Other),
        ] {
            assert_eq!(Setting::of(Some(text)), setting, "{text}");
        }
        assert_eq!(Setting::of(None), Setting::Other);
    }

    /// A published route: the day, the venue's point, its category.
    fn visit(lat: f64, lon: f64, day: i64, place: &str) -> Presence {
        Presence {
            point: Some((lat, lon)),
            tower: None,
            start: T0 + day * DAY - 9 * H,
            end: T0 + (day + 1) * DAY - 9 * H - 1,
            timed: false,
            place: Some(place.into()),
        }
    }

    #[test]
    fn care_after_onset_is_not_exposure_and_settings_link_across_days() {
        const CENTRE: (f64, f64) = (37.52, 126.98);
        let index = ClusterIndex::build(
            LinkRules::default(),
            vec![
                // Tested at the same health centre on the same day, each
                // after his own onset: care, no link.
                case(
                    1,
                    2,
                    vec![visit(CENTRE.0, CENTRE.1, 4, "public health centre")],
                ),
                case(
                    2,
                    3,
                    vec![visit(CENTRE.0, CENTRE.1, 4, "public health centre")],
                ),
                // A call centre: the first worker there on days 1-2, the
                // second on day 6, a week's setting: linked.
                case(
                    3,
                    2,
                    vec![
                        visit(OFFICE.0, OFFICE.1, 1, "workplace"),
                        visit(OFFICE.0, OFFICE.1, 2, "workplace"),
                    ],
                ),
                case(4, 7, vec![visit(OFFICE.0, OFFICE.1, 6, "workplace")]),
                // A restaurant on different days: no link.
                case(5, 2, vec![visit(CHURCH.0, CHURCH.1, 1, "restaurant")]),
                case(6, 7, vec![visit(CHURCH.0, CHURCH.1, 6, "restaurant")]),
            ],
        );
        assert_eq!(index.infector(2), None);
        assert_eq!(index.infector(4), Some((3, LinkKind::Infector)));
        assert_eq!(index.infector(6), None);
    }

    #[test]
    fn an_estimated_onset_is_no_later_than_the_first_visit_for_care() {
        // Registered without onset: estimated day 6, but at a clinic on
        // day 3 — ill by then. A colleague infectious on day 0 (onset day
        // 1, confirmed day 1, isolated after) fits day 3's onset, not an
        // infection after his isolation.
        let mut ill = case(
            2,
            6,
            vec![
                visit(OFFICE.0, OFFICE.1, 0, "workplace"),
                visit(CHURCH.0, CHURCH.1, 3, "Hospital Songpa 1"),
            ],
        );
        ill.onset_estimated = true;
        // Local (KST) noon, as the hub gives it: visits start at local
        // midnight.
        ill.onset = T0 + 6 * DAY + 3 * H;
        let mut first = case(1, 1, vec![visit(OFFICE.0, OFFICE.1, 0, "workplace")]);
        first.confirmed = Some(T0 + DAY + 12 * H);
        let index = ClusterIndex::build(LinkRules::default(), vec![first.clone(), ill]);
        assert_eq!(index.infector(2), Some((1, LinkKind::Infector)));
        let i = index.by_id[&2] as usize;
        assert_eq!(index.cases[i].onset, T0 + 3 * DAY + 3 * H);
        // Isolated after day 1: on day 5 he infects no one.
        let late = case(3, 9, vec![visit(OFFICE.0, OFFICE.1, 5, "restaurant")]);
        let mut seen = first;
        seen.presences
            .push(visit(OFFICE.0, OFFICE.1, 5, "restaurant"));
        let index = ClusterIndex::build(LinkRules::default(), vec![seen, late]);
        assert_eq!(index.infector(3), None);
    }

    #[test]
    fn places_apart_or_times_apart_make_no_link() {
        let index = ClusterIndex::build(
            LinkRules::default(),
            vec![
                case(1, 1, vec![at(37.5, 127.0, T0, 3, "A")]),
                // 100 m away.
                case(2, 5, vec![at(37.5009, 127.0, T0, 3, "B")]),
                // The same place, after the first left.
                case(3, 5, vec![at(37.5, 127.0, T0 + 3 * H + 60, 3, "A")]),
                // Five minutes together only.
                case(4, 5, vec![at(37.5, 127.0, T0 - 3 * H + 300, 3, "A")]),
            ],
        );
        assert!(index.clusters().is_empty());
    }

    #[test]
    fn date_level_routes_link_on_the_same_day() {
        let day = |d: i64, lat: f64| Presence {
            point: Some((lat, 127.0)),
            tower: None,
            start: T0 + d * DAY - 9 * H,
            end: T0 + (d + 1) * DAY - 9 * H - 1,
            timed: false,
            place: None,
        };
        let index = ClusterIndex::build(
            LinkRules::default(),
            vec![
                case(1, 1, vec![day(0, 37.5)]),
                case(2, 5, vec![day(0, 37.5)]),
                case(3, 5, vec![day(1, 37.5)]),
            ],
        );
        assert_eq!(index.infector(2), Some((1, LinkKind::Infector)));
        assert_eq!(index.infector(3), None);
        assert!(index.clusters()[0].name.starts_with("near 37.5000"));
    }

    #[test]
    fn the_incubation_density_is_a_density() {
        let r = LinkRules::default();
        let total: f64 = (0..3000)
            .map(|k| r.incubation(k as f64 / 100.0) / 100.0)
            .sum();
        // Mass below one day is cut.
        assert!((0.95..1.0).contains(&total), "{total}");
    }
}
