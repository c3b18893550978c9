//! The synthetic city: towers on a jittered grid denser downtown, venues
//! of every kind, subway lines, and households of people with their phones,
//! cards, jobs, schools and habits. Built once from the seed.

use crate::geo::{distance_m, BBox, Point, TowerGrid};
use crate::rng::{permute40, Rng};
use crate::scenario::{Scenario, CARD_COMPANIES, DISTRICTS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VenueKind {
    Home,
    Office,
    CallCentre,
    School,
    Church,
    Club,
    Hospital,
    Restaurant,
    Cafe,
    Shop,
    Pharmacy,
    /// A public health centre: where people are tested.
    HealthCentre,
}

impl VenueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Home => "home",
            Self::Office => "office",
            Self::CallCentre => "call_centre",
            Self::School => "school",
            Self::Church => "church",
            Self::Club => "club",
            Self::Hospital => "hospital",
            Self::Restaurant => "restaurant",
            Self::Cafe => "cafe",
            Self::Shop => "shop",
            Self::Pharmacy => "pharmacy",
            Self::HealthCentre => "health_centre",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Home,
            Self::Office,
            Self::CallCentre,
            Self::School,
            Self::Church,
            Self::Club,
            Self::Hospital,
            Self::Restaurant,
            Self::Cafe,
            Self::Shop,
            Self::Pharmacy,
            Self::HealthCentre,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
    }

    /// Venues where people pay by card.
    pub fn is_merchant(self) -> bool {
        matches!(
            self,
            Self::Club
                | Self::Hospital
                | Self::Restaurant
                | Self::Cafe
                | Self::Shop
                | Self::Pharmacy
        )
    }

    /// Places people go to for care once they are ill.
    pub fn is_care(self) -> bool {
        matches!(self, Self::Hospital | Self::Pharmacy | Self::HealthCentre)
    }
}

pub struct Venue {
    pub kind: VenueKind,
    pub pos: Point,
    pub name: String,
    pub district: u8,
    /// Nearest and second-nearest tower.
    pub towers: (u32, u32),
    pub merchant: Option<u32>,
}

pub struct Stop {
    pub pos: Point,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occupation {
    Child,
    Student,
    OfficeWorker,
    CallCentreWorker,
    HospitalWorker,
    ServiceWorker,
    Retired,
    AtHome,
}

impl Occupation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Child => "child",
            Self::Student => "student",
            Self::OfficeWorker => "office_worker",
            Self::CallCentreWorker => "call_centre_worker",
            Self::HospitalWorker => "hospital_worker",
            Self::ServiceWorker => "service_worker",
            Self::Retired => "retired",
            Self::AtHome => "at_home",
        }
    }
}

pub struct Person {
    pub age: u8,
    pub home: u32,
    pub occupation: Occupation,
    /// Workplace or school.
    pub work: Option<u32>,
    /// Telco index and subscriber id, if the person has a phone.
    pub phone: Option<(u8, u64)>,
    /// (card company index, card id); the first is the main card.
    pub cards: Vec<(u8, u64)>,
    /// The card tapped on the subway (the main card, or a prepaid one).
    pub transit_card: u64,
    pub uses_transit: bool,
    pub church: Option<u32>,
    pub club: Option<u32>,
    pub lunch: [u32; 3],
    pub evening: [u32; 6],
}

pub struct City {
    pub bbox: BBox,
    pub towers: Vec<Point>,
    pub grid: TowerGrid,
    pub venues: Vec<Venue>,
    pub stops: Vec<Stop>,
    pub people: Vec<Person>,
    /// Merchant id → venue index.
    pub merchants: Vec<u32>,
    /// Each venue's nearest subway stop and its distance in metres (trips
    /// run between venues, so this is all a trip needs).
    pub venue_stop: Vec<(u32, f64)>,
    /// Pharmacies, and each district's public health centre (by district
    /// index), where the ill go for care and tests.
    pub pharmacies: Vec<u32>,
    pub health_centres: Vec<u32>,
}

pub const TOWER_ID_BASE: u64 = 100_000;
pub const VENUE_ID_BASE: u64 = 1_000_000;
pub const MERCHANT_ID_BASE: u64 = 500_000;
pub const STOP_ID_BASE: u64 = 1_000;

/// Downtown centres as fractions of the box: old downtown, the south-east
/// business district, the island finance district.
const CENTRES: [(f64, f64, f64); 3] = [(0.47, 0.47, 0.45), (0.19, 0.62, 0.35), (0.37, 0.30, 0.20)];

struct Placer<'a> {
    bbox: BBox,
    rng: &'a mut Rng,
}

impl Placer<'_> {
    /// A point: with chance `central` near a downtown centre (normal,
    /// `spread_m`), otherwise anywhere.
    fn place(&mut self, central: f64, spread_m: f64) -> Point {
        if self.rng.chance(central) {
            let weights: Vec<f64> = CENTRES.iter().map(|c| c.2).collect();
            let (fy, fx, _) = CENTRES[self.rng.weighted(&weights)];
            let centre = self.bbox.at(fy, fx);
            let (dlat, dlon) = self
                .bbox
                .metres_to_deg(self.rng.normal() * spread_m, self.rng.normal() * spread_m);
            self.bbox.clamp(Point {
                lat: centre.lat + dlat,
                lon: centre.lon + dlon,
            })
        } else {
            self.bbox.at(self.rng.f64(), self.rng.f64())
        }
    }
}

/// Venues of one kind bucketed on a 1 km grid, for "one near here".
struct Nearby {
    bbox: BBox,
    rows: usize,
    cols: usize,
    cells: Vec<Vec<u32>>,
    all: Vec<u32>,
}

impl Nearby {
    fn new(bbox: BBox, venues: &[Venue], kind: VenueKind) -> Self {
        let rows = (bbox.height_m() / 1000.0).ceil().max(1.0) as usize;
        let cols = (bbox.width_m() / 1000.0).ceil().max(1.0) as usize;
        let mut n = Self {
            bbox,
            rows,
            cols,
            cells: vec![Vec::new(); rows * cols],
            all: Vec::new(),
        };
        for (i, v) in venues.iter().enumerate().filter(|(_, v)| v.kind == kind) {
            let c = n.cell(v.pos);
            n.cells[c.0 * cols + c.1].push(i as u32);
            n.all.push(i as u32);
        }
        n
    }

    fn cell(&self, p: Point) -> (usize, usize) {
        let b = &self.bbox;
        let fy = ((p.lat - b.south) / (b.north - b.south)).clamp(0.0, 0.999_999);
        let fx = ((p.lon - b.west) / (b.east - b.west)).clamp(0.0, 0.999_999);
        (
            (fy * self.rows as f64) as usize,
            (fx * self.cols as f64) as usize,
        )
    }

    /// A random venue within about `ring` km, or any if none is there:
    /// a draw over the cells weighted by their venues, without copying them.
    fn pick(&self, p: Point, ring: usize, rng: &mut Rng) -> u32 {
        let (r, c) = self.cell(p);
        let (rows, cols) = (
            r.saturating_sub(ring)..=(r + ring).min(self.rows - 1),
            c.saturating_sub(ring)..=(c + ring).min(self.cols - 1),
        );
        let total: usize = rows
            .clone()
            .flat_map(|rr| cols.clone().map(move |cc| (rr, cc)))
            .map(|(rr, cc)| self.cells[rr * self.cols + cc].len())
            .sum();
        if total == 0 {
            return self.all[rng.index(self.all.len())];
        }
        let mut k = rng.index(total);
        for rr in rows {
            for cc in cols.clone() {
                let cell = &self.cells[rr * self.cols + cc];
                if k < cell.len() {
                    return cell[k];
                }
                k -= cell.len();
            }
        }
        unreachable!("k is below the total")
    }

    fn nearest(&self, p: Point, venues: &[Venue], rng: &mut Rng) -> u32 {
        // Among a few nearby, the closest: people go to the local one.
        let options: Vec<u32> = (0..4).map(|_| self.pick(p, 2, rng)).collect();
        *options
            .iter()
            .min_by(|a, b| {
                distance_m(p, venues[**a as usize].pos)
                    .total_cmp(&distance_m(p, venues[**b as usize].pos))
            })
            .expect("four options")
    }
}

fn district_of(bbox: &BBox, p: Point) -> u8 {
    let fy = ((p.lat - bbox.south) / (bbox.north - bbox.south)).clamp(0.0, 0.999_999);
    let fx = ((p.lon - bbox.west) / (bbox.east - bbox.west)).clamp(0.0, 0.999_999);
    ((fy * 5.0) as u8) * 5 + (fx * 5.0) as u8
}

pub fn district_name(d: u8) -> &'static str {
    DISTRICTS[d as usize % DISTRICTS.len()]
}

fn towers(bbox: BBox, rng: &mut Rng) -> Vec<Point> {
    let mut towers = Vec::new();
    let centres: Vec<Point> = CENTRES.iter().map(|c| bbox.at(c.0, c.1)).collect();
    for (spacing, keep) in [(1000.0, None), (400.0, Some(3_500.0))] {
        let rows = (bbox.height_m() / spacing).floor() as usize;
        let cols = (bbox.width_m() / spacing).floor() as usize;
        for r in 0..=rows {
            for c in 0..=cols {
                let (dlat, dlon) = bbox.metres_to_deg(
                    (r as f64 + 0.5 + 0.3 * (rng.f64() - 0.5)) * spacing,
                    (c as f64 + 0.5 + 0.3 * (rng.f64() - 0.5)) * spacing,
                );
                let p = bbox.clamp(Point {
                    lat: bbox.south + dlat,
                    lon: bbox.west + dlon,
                });
                let downtown = centres
                    .iter()
                    .any(|c| distance_m(*c, p) < keep.unwrap_or(0.0));
                if keep.is_none() || downtown {
                    towers.push(p);
                }
            }
        }
    }
    towers
}

fn subway(bbox: BBox, rng: &mut Rng) -> Vec<Stop> {
    // Lines through the centres at assorted angles, a stop every ~1.2 km.
    let mut stops = Vec::new();
    let lines = 8;
    for line in 0..lines {
        let (fy, fx, _) = CENTRES[line % CENTRES.len()];
        let angle = (line as f64 * 67.0 + rng.uniform(-10.0, 10.0)).to_radians();
        let centre = bbox.at(fy, fx);
        let reach = bbox.height_m().max(bbox.width_m());
        let n = (reach / 1200.0) as i64;
        let mut number = 1;
        for k in -n..=n {
            let d = k as f64 * 1200.0;
            let (dlat, dlon) = bbox.metres_to_deg(d * angle.sin(), d * angle.cos());
            let p = Point {
                lat: centre.lat + dlat,
                lon: centre.lon + dlon,
            };
            if p.lat > bbox.south && p.lat < bbox.north && p.lon > bbox.west && p.lon < bbox.east {
                stops.push(Stop {
                    pos: p,
                    name: format!("Line {} Station {}", line + 1, number),
                });
                number += 1;
            }
        }
    }
    stops
}

impl City {
    pub fn build(people: usize, bbox: BBox, seed: u64, scenario: &Scenario) -> City {
        let mut rng = Rng::new(seed, &[1]);
        let towers = towers(bbox, &mut rng);
        let grid = TowerGrid::build(bbox, &towers);
        let stops = subway(bbox, &mut rng);
        let mut venues: Vec<Venue> = Vec::new();
        let add = |venues: &mut Vec<Venue>, kind: VenueKind, pos: Point, name: String| -> u32 {
            venues.push(Venue {
                kind,
                pos,
                name,
                district: district_of(&bbox, pos),
                towers: grid.lookup(pos),
                merchant: None,
            });
            (venues.len() - 1) as u32
        };

        // Households first: who lives where, and what each person does.
        let mut persons: Vec<Person> = Vec::with_capacity(people);
        let mut placer = Placer {
            bbox,
            rng: &mut rng,
        };
        let mut homes = 0usize;
        while persons.len() < people {
            let size = 1 + placer.rng.weighted(&[0.30, 0.28, 0.21, 0.16, 0.05]);
            let pos = placer.place(0.3, 5_000.0);
            homes += 1;
            let home = add(&mut venues, VenueKind::Home, pos, format!("Home {homes}"));
            for member in 0..size {
                if persons.len() == people {
                    break;
                }
                let age = if member < 2 {
                    placer.rng.range(19, 86) as u8
                } else {
                    placer.rng.range(0, 19) as u8
                };
                persons.push(Person {
                    age,
                    home,
                    occupation: Occupation::AtHome,
                    work: None,
                    phone: None,
                    cards: Vec::new(),
                    transit_card: 0,
                    uses_transit: false,
                    church: None,
                    club: None,
                    lunch: [0; 3],
                    evening: [0; 6],
                });
            }
        }
        for p in &mut persons {
            let r = placer.rng.f64();
            p.occupation = match p.age {
                0..=6 => Occupation::Child,
                7..=18 => Occupation::Student,
                19..=64 if r < 0.56 => Occupation::OfficeWorker,
                19..=64 if r < 0.59 => Occupation::CallCentreWorker,
                19..=64 if r < 0.63 => Occupation::HospitalWorker,
                19..=64 if r < 0.78 => Occupation::ServiceWorker,
                19..=64 => Occupation::AtHome,
                _ => Occupation::Retired,
            };
        }

        // Venues sized to the population.
        let count = |o: Occupation| persons.iter().filter(|p| p.occupation == o).count();
        let n = people as f64;
        let plan: [(VenueKind, usize, f64, f64, &str); 9] = [
            (
                VenueKind::Office,
                count(Occupation::OfficeWorker).div_ceil(30).max(3),
                0.8,
                2_500.0,
                "Office",
            ),
            (
                VenueKind::CallCentre,
                count(Occupation::CallCentreWorker).div_ceil(150).max(1),
                0.9,
                1_500.0,
                "Call Centre",
            ),
            (
                VenueKind::Hospital,
                (n / 10_000.0).ceil().max(1.0) as usize,
                0.5,
                4_000.0,
                "Hospital",
            ),
            (
                VenueKind::School,
                count(Occupation::Student).div_ceil(400).max(1),
                0.2,
                5_000.0,
                "School",
            ),
            (
                VenueKind::Church,
                (n / 1_000.0).ceil().max(2.0) as usize,
                0.3,
                5_000.0,
                "Church",
            ),
            (
                VenueKind::Club,
                (n / 3_000.0).ceil().max(2.0) as usize,
                0.95,
                1_000.0,
                "Club",
            ),
            (
                VenueKind::Restaurant,
                (n / 60.0).ceil().max(10.0) as usize,
                0.5,
                3_000.0,
                "Restaurant",
            ),
            (
                VenueKind::Cafe,
                (n / 120.0).ceil().max(5.0) as usize,
                0.5,
                3_000.0,
                "Cafe",
            ),
            (
                VenueKind::Shop,
                (n / 90.0).ceil().max(5.0) as usize,
                0.4,
                3_500.0,
                "Shop",
            ),
        ];
        let mut merchants = Vec::new();
        for (kind, number, central, spread, label) in plan {
            for i in 0..number {
                let pos = placer.place(central, spread);
                let district = district_name(district_of(&bbox, pos));
                let id = add(
                    &mut venues,
                    kind,
                    pos,
                    format!("{label} {} {}", capitalised(district), i + 1),
                );
                if kind.is_merchant() {
                    venues[id as usize].merchant = Some(merchants.len() as u32);
                    merchants.push(id);
                }
            }
        }

        let index = |kind| Nearby::new(bbox, &venues, kind);
        let (offices, call_centres, hospitals, schools) = (
            index(VenueKind::Office),
            index(VenueKind::CallCentre),
            index(VenueKind::Hospital),
            index(VenueKind::School),
        );
        let (churches, clubs, restaurants, cafes, shops) = (
            index(VenueKind::Church),
            index(VenueKind::Club),
            index(VenueKind::Restaurant),
            index(VenueKind::Cafe),
            index(VenueKind::Shop),
        );
        let rng = placer.rng;
        let telco_shares: Vec<f64> = scenario.telcos.iter().map(|t| t.1).collect();
        let companies = scenario.card_companies.min(CARD_COMPANIES.len()).max(1);
        let card_shares: Vec<f64> = (1..=companies)
            .map(|k| 1.0 / (k as f64).powf(scenario.card_skew))
            .collect();
        for (i, p) in persons.iter_mut().enumerate() {
            let home = venues[p.home as usize].pos;
            p.work = match p.occupation {
                Occupation::OfficeWorker => Some(offices.pick(home, 12, rng)),
                Occupation::CallCentreWorker => Some(call_centres.pick(home, 15, rng)),
                Occupation::HospitalWorker => Some(hospitals.pick(home, 10, rng)),
                Occupation::ServiceWorker => Some(match rng.index(3) {
                    0 => restaurants.pick(home, 6, rng),
                    1 => cafes.pick(home, 6, rng),
                    _ => shops.pick(home, 6, rng),
                }),
                Occupation::Student => Some(schools.nearest(home, &venues, rng)),
                _ => None,
            };
            if p.age >= 10 && rng.chance(0.98) {
                let telco = rng.weighted(&telco_shares) as u8;
                p.phone = Some((telco, 10_000_000_000 + permute40(i as u64, seed ^ 0x7E1C0)));
            }
            let n_cards = match p.age {
                0..=15 => 0,
                16..=18 => usize::from(rng.chance(0.3)),
                _ => 1 + rng.weighted(&[0.35, 0.40, 0.25]),
            };
            for k in 0..n_cards {
                let company = rng.weighted(&card_shares) as u8;
                let id = (company as u64 + 1) * 10_000_000_000_000
                    + permute40(i as u64 * 4 + k as u64, seed ^ 0xCA4D);
                p.cards.push((company, id));
            }
            // Prepaid cards: prefix 99, which no card company has (1-22).
            p.transit_card = p.cards.first().map_or(
                990_000_000_000_000 + permute40(i as u64, seed ^ 0x7A9),
                |c| c.1,
            );
            p.uses_transit = rng.chance(scenario.transit_share);
            if rng.chance(scenario.churchgoers) {
                p.church = Some(churches.nearest(home, &venues, rng));
            }
            if (19..=35).contains(&p.age) && rng.chance(scenario.clubbers) {
                p.club = Some(clubs.pick(home, 40, rng));
            }
            let near_work = p.work.map_or(home, |w| venues[w as usize].pos);
            p.lunch = [
                restaurants.pick(near_work, 1, rng),
                restaurants.pick(near_work, 1, rng),
                cafes.pick(near_work, 1, rng),
            ];
            p.evening = [
                restaurants.pick(home, 2, rng),
                restaurants.pick(near_work, 1, rng),
                cafes.pick(home, 2, rng),
                shops.pick(home, 2, rng),
                shops.pick(home, 3, rng),
                hospitals.nearest(home, &venues, rng),
            ];
        }
        // Care: added after everything else, from a stream of their own,
        // so that the rest of the city is what it was before they existed.
        let mut care_rng = Rng::new(seed, &[1, 7]);
        let mut health_centres = Vec::with_capacity(DISTRICTS.len());
        for d in 0..DISTRICTS.len() as u8 {
            let (fy, fx) = (
                (f64::from(d / 5) + care_rng.uniform(0.3, 0.7)) / 5.0,
                (f64::from(d % 5) + care_rng.uniform(0.3, 0.7)) / 5.0,
            );
            let name = format!("{} Public Health Centre", capitalised(district_name(d)));
            health_centres.push(add(
                &mut venues,
                VenueKind::HealthCentre,
                bbox.at(fy, fx),
                name,
            ));
        }
        let mut pharmacies = Vec::new();
        let mut placer = Placer {
            bbox,
            rng: &mut care_rng,
        };
        for i in 0..(n / 2_000.0).ceil().max(5.0) as usize {
            let pos = placer.place(0.5, 3_500.0);
            let district = district_name(district_of(&bbox, pos));
            let id = add(
                &mut venues,
                VenueKind::Pharmacy,
                pos,
                format!("Pharmacy {} {}", capitalised(district), i + 1),
            );
            venues[id as usize].merchant = Some(merchants.len() as u32);
            merchants.push(id);
            pharmacies.push(id);
        }
        let venue_stop = venues.iter().map(|v| nearest_stop(&stops, v.pos)).collect();
        City {
            pharmacies,
            health_centres,
            bbox,
            towers,
            grid,
            venues,
            stops,
            people: persons,
            merchants,
            venue_stop,
        }
    }
}

impl City {
    /// Where a person goes when ill: the nearest hospital (a clinic), the
    /// nearest pharmacy, and the home district's public health centre.
    pub fn care_of(&self, person: usize) -> (u32, u32, u32) {
        let p = &self.people[person];
        let home = &self.venues[p.home as usize];
        let pharmacy = self
            .pharmacies
            .iter()
            .copied()
            .min_by(|a, b| {
                let d = |v: u32| distance_m(home.pos, self.venues[v as usize].pos);
                d(*a).total_cmp(&d(*b))
            })
            .unwrap_or(p.evening[5]);
        let centre = self
            .health_centres
            .get(home.district as usize)
            .copied()
            .unwrap_or(p.evening[5]);
        (p.evening[5], pharmacy, centre)
    }
}

fn nearest_stop(stops: &[Stop], p: Point) -> (u32, f64) {
    let mut best = (0u32, f64::MAX);
    for (i, s) in stops.iter().enumerate() {
        let d = distance_m(p, s.pos);
        if d < best.1 {
            best = (i as u32, d);
        }
    }
    best
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| {
        f.to_uppercase().collect::<String>() + c.as_str()
    })
}
