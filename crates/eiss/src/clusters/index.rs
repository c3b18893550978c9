//! The index of who was where: cases placed in cells of their places and
//! towers, kept equal to a rebuild as cases arrive, change and go.

use super::*;

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
    pub(super) fn density(&self, days: f64, estimated: bool) -> f64 {
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
    pub(super) fn learn_towers(&mut self, input: &CaseInput) -> Vec<(f64, f64)> {
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
    pub(super) fn reassign_towers(&mut self, new: &[(f64, f64)]) -> HashSet<u32> {
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
    pub(super) fn nearest_tower(&self, lat: f64, lon: f64) -> Option<(f64, f64)> {
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

    pub(super) fn place_case(&mut self, mut input: CaseInput, sorted: bool) -> u32 {
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

    pub(super) fn unplace(&mut self, i: u32) {
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

    /// Cases meeting case `i` somewhere.
    pub(super) fn neighbours(&self, i: u32) -> HashSet<u32> {
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
    pub(super) fn overlap(&self, p: &Presence, q: &Presence) -> Option<(i64, i64)> {
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
}
