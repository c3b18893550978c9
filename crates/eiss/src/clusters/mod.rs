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

mod index;
mod links;
#[cfg(test)]
mod tests;

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
