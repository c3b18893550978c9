//! Reading the store: towers near a place, who was exposed in a window,
//! a subscriber's route.

use super::*;

impl EventStore {
    /// A place (tower, merchant, station) by its id: position and name.
    pub fn place(&self, id: u64) -> Option<(Tower, Option<&str>)> {
        let tower = self.manifest.towers.iter().find(|t| t.cell_id == id)?;
        Some((
            *tower,
            self.manifest.place_names.get(&id).map(String::as_str),
        ))
    }

    /// Indices of the towers a selection covers.
    pub fn select_towers(&self, selection: &TowerSelection) -> Vec<usize> {
        let towers = &self.manifest.towers;
        match selection {
            TowerSelection::Near { lat, lon, radius_m } => within(towers, *lat, *lon, *radius_m),
            TowerSelection::Cells(cells) => towers
                .iter()
                .enumerate()
                .filter(|(_, t)| cells.contains(&t.cell_id))
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// The subscribers present in an exposure window, by subscriber id,
    /// with when they were first and last seen there and how often.
    pub fn exposure(&self, query: &ExposureQuery) -> Vec<ExposureAnswer> {
        let mut hits = self.hits(query);
        hits.sort_unstable();
        let mut answers: Vec<ExposureAnswer> = Vec::new();
        for (sub, ts) in hits {
            let Some(&id) = self.subscribers.get(sub as usize) else {
                continue; // a damaged segment: an index past the dictionary
            };
            match answers.last_mut() {
                Some(a) if a.subscriber == id => {
                    a.last_seen = ts as i64;
                    a.pings += 1;
                }
                _ => answers.push(ExposureAnswer {
                    subscriber: id,
                    first_seen: ts as i64,
                    last_seen: ts as i64,
                    pings: 1,
                }),
            }
        }
        answers.sort_unstable_by_key(|a| a.subscriber);
        answers
    }

    /// How many distinct subscribers an exposure window holds: counted in
    /// a scratch bitset over the dictionary, in time proportional to the
    /// hits (no sort).
    pub fn exposure_count(&self, query: &ExposureQuery) -> usize {
        thread_local! {
            static SCRATCH: std::cell::RefCell<(Vec<u64>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        SCRATCH.with(|scratch| {
            let (bits, touched) = &mut *scratch.borrow_mut();
            let words = self.subscribers.len().div_ceil(64);
            if bits.len() < words {
                bits.resize(words, 0);
            }
            touched.clear();
            self.for_each_hit(query, |sub, _| {
                let (w, bit) = ((sub >> 6) as usize, 1u64 << (sub & 63));
                if bits[w] == 0 {
                    touched.push(w as u32);
                }
                bits[w] |= bit;
            });
            let mut count = 0;
            for &w in touched.iter() {
                count += bits[w as usize].count_ones() as usize;
                bits[w as usize] = 0;
            }
            count
        })
    }

    /// Every (subscriber index, ts) in the window.
    pub(super) fn hits(&self, query: &ExposureQuery) -> Vec<(u32, u32)> {
        let mut hits = Vec::new();
        self.for_each_hit(query, |sub, ts| hits.push((sub, ts)));
        hits
    }

    /// Calls `f(subscriber index, ts)` for every ping in the window.
    pub(super) fn for_each_hit(&self, query: &ExposureQuery, mut f: impl FnMut(u32, u32)) {
        if query.t_end < query.t_start || query.t_end < 0 {
            return;
        }
        let t0 = query.t_start.clamp(0, u32::MAX as i64) as u32;
        let t1 = query.t_end.clamp(0, u32::MAX as i64) as u32;
        let towers = self.select_towers(&query.towers);
        for seg in &self.segments {
            if seg.day_start + DAY <= query.t_start || seg.day_start > query.t_end {
                continue;
            }
            for &tower in &towers {
                for row in seg.rows(tower, t0, t1) {
                    f(seg.holder(row), seg.ts(row));
                }
            }
        }
        if self.tail_events > 0 {
            for tower in towers {
                for &(ts, holder) in self.tail.get(&(tower as u32)).into_iter().flatten() {
                    if (t0..=t1).contains(&ts) {
                        f(holder, ts);
                    }
                }
            }
        }
    }

    /// One subscriber's own pings in a time window, in time order, as
    /// `(ts, cell_id)` (a route request).
    pub fn route(&self, subscriber: u64, t_start: i64, t_end: i64) -> Vec<(i64, u64)> {
        let Some(index) = self.subscribers.iter().position(|s| *s == subscriber) else {
            return Vec::new();
        };
        let index = index as u32;
        let mut out = Vec::new();
        for seg in &self.segments {
            if seg.day_start + DAY <= t_start || seg.day_start > t_end {
                continue;
            }
            for tower in 0..seg.places {
                for row in seg.dir(tower)..seg.dir(tower + 1) {
                    if seg.holder(row) == index {
                        let ts = seg.ts(row) as i64;
                        if (t_start..=t_end).contains(&ts) {
                            out.push((ts, self.manifest.towers[tower].cell_id));
                        }
                    }
                }
            }
        }
        for (&tower, events) in &self.tail {
            for &(ts, holder) in events {
                if holder == index && (t_start..=t_end).contains(&(ts as i64)) {
                    out.push((ts as i64, self.manifest.towers[tower as usize].cell_id));
                }
            }
        }
        out.sort_unstable();
        out
    }
}
