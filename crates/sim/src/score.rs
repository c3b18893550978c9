//! Scores what the platform found against the simulator's truth.
//!
//! Found files, in a directory, each optional (at least one):
//! - `contacts.csv`: `case_id` and one of `person_id`, `subscriber_id` or
//!   `card_id` — the people found exposed to each case;
//! - `clusters.csv`: `case_id,cluster_id` — the clusters found;
//! - `sources.csv`: `cluster_id,source_case_id` — each cluster's likely source.
//!
//! The truth contacts of a case are the people at the same venue at the
//! same time as the case for at least `min_overlap_minutes`, from
//! `lookback_days` before symptom onset until the day of confirmation (the
//! rules of a response). Truth clusters are the cases descending from one
//! index case; a cluster's truth source is its case nearest that index.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{file}: {message}")]
    Bad { file: String, message: String },
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("nothing to score: {0} holds none of contacts.csv, clusters.csv, sources.csv")]
    Nothing(String),
}

#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub min_overlap_minutes: i64,
    pub lookback_days: i64,
    /// What "the same place" is for a true contact.
    pub level: Level,
}

/// The grain of true co-presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    /// The same venue (a person with or without a phone).
    #[default]
    Venue,
    /// The same tower's cell: venues whose nearest tower is the same, and
    /// people with a phone (what telecom location can see).
    Tower,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            min_overlap_minutes: 10,
            lookback_days: 2,
            level: Level::Venue,
        }
    }
}

/// Each venue's place at `level`: itself, or its nearest tower.
fn places(truth: &Path, level: Level) -> Result<Option<HashMap<u64, u64>>, ScoreError> {
    if level == Level::Venue {
        return Ok(None);
    }
    let towers = Table::required(truth, "towers.csv")?;
    let (tc, tlat, tlon) = (
        towers.column("cell_id")?,
        towers.column("lat")?,
        towers.column("lon")?,
    );
    let f = |t: &Table, r: usize, c: usize| -> Result<f64, ScoreError> {
        t.rows[r][c].trim().parse().map_err(|_| ScoreError::Bad {
            file: t.name.clone(),
            message: format!("line {}: not a number", r + 2),
        })
    };
    /// Towers by grid cell: (cell id, lat, lon).
    type Towers = HashMap<(i64, i64), Vec<(u64, f64, f64)>>;
    let mut cells: Towers = HashMap::new();
    // A grid of ~2 km cells: a venue's nearest tower is in its own or a
    // neighbouring cell (towers are at most ~1 km apart).
    const G: f64 = 0.02;
    for r in 0..towers.rows.len() {
        let (lat, lon) = (f(&towers, r, tlat)?, f(&towers, r, tlon)?);
        cells
            .entry(((lat / G).floor() as i64, (lon / G).floor() as i64))
            .or_default()
            .push((towers.u64(r, tc)?, lat, lon));
    }
    let venues = Table::required(truth, "venues.csv")?;
    let (vid, vlat, vlon) = (
        venues.column("venue_id")?,
        venues.column("lat")?,
        venues.column("lon")?,
    );
    let mut out = HashMap::with_capacity(venues.rows.len());
    for r in 0..venues.rows.len() {
        let (lat, lon) = (f(&venues, r, vlat)?, f(&venues, r, vlon)?);
        let (ci, cj) = ((lat / G).floor() as i64, (lon / G).floor() as i64);
        let k = lat.to_radians().cos();
        let mut best = (f64::MAX, u64::MAX);
        for di in -1..=1 {
            for dj in -1..=1 {
                for &(id, tlat, tlon) in cells
                    .get(&(ci + di, cj + dj))
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    let d = (tlat - lat).powi(2) + ((tlon - lon) * k).powi(2);
                    if d < best.0 {
                        best = (d, id);
                    }
                }
            }
        }
        out.insert(venues.u64(r, vid)?, best.1);
    }
    Ok(Some(out))
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Detection {
    pub found: u64,
    pub truth: u64,
    pub true_positives: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Clustering {
    /// Truth cases scored (those missing from the found clusters count as
    /// clusters of their own).
    pub cases: u64,
    pub found_clusters: u64,
    pub truth_clusters: u64,
    pub adjusted_rand_index: f64,
    /// Against the settings health authorities name groups after
    /// (`groups.csv`, when the truth has it): how published infection
    /// groups are made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truth_groups: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_adjusted_rand_index: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sources {
    pub claims: u64,
    pub correct: u64,
    pub accuracy: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Scores {
    pub contacts: Option<Detection>,
    pub clusters: Option<Clustering>,
    pub sources: Option<Sources>,
}

/// A CSV file as rows of fields, with its header.
struct Table {
    name: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Splits a CSV line, `"…"` quoted. The scorer reads the platform's files
/// with its own parser, not `civic_eiss::formats::split_line`, on purpose:
/// it is the platform's independent checker, and the simulator depends on
/// nothing of the platform.
fn split(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

fn read(dir: &Path, name: &str) -> Result<Option<Table>, ScoreError> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ScoreError::Io(path.display().to_string(), e)),
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .map(split)
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let rows: Vec<Vec<String>> = lines.map(split).collect();
    for (i, row) in rows.iter().enumerate() {
        if row.len() != header.len() {
            return Err(ScoreError::Bad {
                file: path.display().to_string(),
                message: format!(
                    "line {} has {} fields, the header {}",
                    i + 2,
                    row.len(),
                    header.len()
                ),
            });
        }
    }
    Ok(Some(Table {
        name: path.display().to_string(),
        header,
        rows,
    }))
}

impl Table {
    fn column(&self, name: &str) -> Result<usize, ScoreError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| ScoreError::Bad {
                file: self.name.clone(),
                message: format!("no column {name:?} (columns: {})", self.header.join(",")),
            })
    }

    fn u64(&self, row: usize, col: usize) -> Result<u64, ScoreError> {
        self.rows[row][col]
            .trim()
            .parse()
            .map_err(|_| ScoreError::Bad {
                file: self.name.clone(),
                message: format!(
                    "line {}: {:?} is not a number",
                    row + 2,
                    self.rows[row][col]
                ),
            })
    }

    fn required(dir: &Path, name: &str) -> Result<Table, ScoreError> {
        read(dir, name)?.ok_or_else(|| ScoreError::Bad {
            file: dir.join(name).display().to_string(),
            message: "missing: is this a directory written by `civic sim generate`?".into(),
        })
    }
}

struct Case {
    person: u64,
    from: i64,
    until: i64,
}

fn cases(truth: &Path, rules: Rules) -> Result<BTreeMap<u64, Case>, ScoreError> {
    let t = Table::required(truth, "cases.csv")?;
    let (id, person, onset, confirmed) = (
        t.column("case_id")?,
        t.column("person_id")?,
        t.column("onset_date")?,
        t.column("confirmed_date")?,
    );
    let date = |row: usize, col: usize| -> Result<i64, ScoreError> {
        let raw = &t.rows[row][col];
        time::Date::parse(
            raw,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map(crate::world::local_midnight)
        .map_err(|_| ScoreError::Bad {
            file: t.name.clone(),
            message: format!("line {}: {raw:?} is not a date", row + 2),
        })
    };
    let mut out = BTreeMap::new();
    for r in 0..t.rows.len() {
        out.insert(
            t.u64(r, id)?,
            Case {
                person: t.u64(r, person)?,
                from: date(r, onset)? - rules.lookback_days * crate::world::DAY,
                until: date(r, confirmed)? + crate::world::DAY,
            },
        );
    }
    Ok(out)
}

/// Streams `visits.csv` as `(person, venue, arrival, departure)`.
fn for_each_visit(truth: &Path, mut f: impl FnMut(u64, u64, i64, i64)) -> Result<(), ScoreError> {
    use std::io::BufRead;
    let path = truth.join("visits.csv");
    let name = path.display().to_string();
    let file = std::fs::File::open(&path).map_err(|e| ScoreError::Io(name.clone(), e))?;
    let mut lines = std::io::BufReader::with_capacity(1 << 20, file).lines();
    match lines.next() {
        Some(Ok(h)) if h.trim() == "person_id,venue_id,arrival,departure" => {}
        _ => {
            return Err(ScoreError::Bad {
                file: name,
                message: "expected the header person_id,venue_id,arrival,departure".into(),
            })
        }
    }
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| ScoreError::Io(name.clone(), e))?;
        let mut it = line.split(',').map(|v| v.trim().parse::<i64>());
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(Ok(p)), Some(Ok(v)), Some(Ok(a)), Some(Ok(d))) if p >= 0 && v >= 0 => {
                f(p as u64, v as u64, a, d)
            }
            _ => {
                return Err(ScoreError::Bad {
                    file: name,
                    message: format!("line {}: expected four integers", n + 2),
                })
            }
        }
    }
    Ok(())
}

/// The truth contacts: `(case_id, person_id)` pairs. Streams the visits
/// twice (the cases' stays, then everyone's), holding only the former.
pub fn truth_contacts(truth: &Path, rules: Rules) -> Result<BTreeSet<(u64, u64)>, ScoreError> {
    let cases = cases(truth, rules)?;
    let place_of = places(truth, rules.level)?;
    let place = |venue: u64| {
        place_of
            .as_ref()
            .map_or(venue, |m| *m.get(&venue).unwrap_or(&venue))
    };
    let phones: Option<std::collections::HashSet<u64>> = match rules.level {
        Level::Venue => None,
        Level::Tower => {
            let people = Table::required(truth, "people.csv")?;
            let (pid, sub) = (people.column("person_id")?, people.column("subscriber_id")?);
            let mut set = std::collections::HashSet::new();
            for r in 0..people.rows.len() {
                if !people.rows[r][sub].trim().is_empty() {
                    set.insert(people.u64(r, pid)?);
                }
            }
            Some(set)
        }
    };
    let by_person: HashMap<u64, Vec<(u64, &Case)>> =
        cases.iter().fold(HashMap::new(), |mut m, (id, c)| {
            m.entry(c.person).or_default().push((*id, c));
            m
        });
    // The cases' stays within their windows, by venue.
    let mut exposures: HashMap<u64, Vec<(u64, u64, i64, i64)>> = HashMap::new();
    for_each_visit(truth, |person, venue, from, to| {
        for (case, c) in by_person.get(&person).map(Vec::as_slice).unwrap_or(&[]) {
            let (f, t) = (from.max(c.from), to.min(c.until));
            if f < t {
                exposures
                    .entry(place(venue))
                    .or_default()
                    .push((*case, person, f, t));
            }
        }
    })?;
    let min = rules.min_overlap_minutes * 60;
    let mut contacts = BTreeSet::new();
    for_each_visit(truth, |person, venue, from, to| {
        if phones.as_ref().is_some_and(|p| !p.contains(&person)) {
            return;
        }
        for &(case, case_person, f, t) in exposures
            .get(&place(venue))
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if person != case_person && to.min(t) - from.max(f) >= min {
                contacts.insert((case, person));
            }
        }
    })?;
    Ok(contacts)
}

fn detection(found: u64, truth: u64, hits: u64) -> Detection {
    let precision = if found == 0 {
        0.0
    } else {
        hits as f64 / found as f64
    };
    let recall = if truth == 0 {
        0.0
    } else {
        hits as f64 / truth as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Detection {
        found,
        truth,
        true_positives: hits,
        precision,
        recall,
        f1,
    }
}

fn pairs(n: u64) -> f64 {
    (n * n.saturating_sub(1)) as f64 / 2.0
}

/// The adjusted Rand index of two labellings of the same items.
pub fn adjusted_rand_index(truth: &[u64], found: &[u64]) -> f64 {
    assert_eq!(truth.len(), found.len());
    let n = truth.len() as u64;
    let mut cells: HashMap<(u64, u64), u64> = HashMap::new();
    let mut rows: HashMap<u64, u64> = HashMap::new();
    let mut cols: HashMap<u64, u64> = HashMap::new();
    for (t, f) in truth.iter().zip(found) {
        *cells.entry((*t, *f)).or_default() += 1;
        *rows.entry(*t).or_default() += 1;
        *cols.entry(*f).or_default() += 1;
    }
    let index: f64 = cells.values().map(|&c| pairs(c)).sum();
    let (a, b): (f64, f64) = (
        rows.values().map(|&c| pairs(c)).sum(),
        cols.values().map(|&c| pairs(c)).sum(),
    );
    let expected = a * b / pairs(n).max(1.0);
    let max = (a + b) / 2.0;
    if (max - expected).abs() < f64::EPSILON {
        1.0
    } else {
        (index - expected) / (max - expected)
    }
}

/// Scores the files in `found` against the truth in `truth`.
pub fn score(truth: &Path, found: &Path, rules: Rules) -> Result<Scores, ScoreError> {
    let mut scores = Scores::default();
    let contacts = read(found, "contacts.csv")?;
    let clusters = read(found, "clusters.csv")?;
    let sources = read(found, "sources.csv")?;
    if contacts.is_none() && clusters.is_none() && sources.is_none() {
        return Err(ScoreError::Nothing(found.display().to_string()));
    }
    if let Some(t) = contacts {
        // Identifiers the platform sees, mapped to people.
        let people = Table::required(truth, "people.csv")?;
        let (pid, sub, cards, transit) = (
            people.column("person_id")?,
            people.column("subscriber_id")?,
            people.column("card_ids")?,
            people.column("transit_card_id")?,
        );
        let case_col = t.column("case_id")?;
        // The identifier columns given: a row names the person by the
        // first of them it fills.
        let columns: Vec<(&str, usize)> = ["person_id", "subscriber_id", "card_id"]
            .iter()
            .filter_map(|k| t.column(k).ok().map(|c| (*k, c)))
            .collect();
        if columns.is_empty() {
            return Err(ScoreError::Bad {
                file: t.name.clone(),
                message: "needs a person_id, subscriber_id or card_id column".into(),
            });
        }
        let mut by_subscriber: HashMap<u64, u64> = HashMap::new();
        let mut by_card: HashMap<u64, u64> = HashMap::new();
        for r in 0..people.rows.len() {
            let person = people.u64(r, pid)?;
            if let Ok(s) = people.rows[r][sub].parse::<u64>() {
                by_subscriber.insert(s, person);
            }
            for card in people.rows[r][cards]
                .split(';')
                .filter_map(|c| c.split(':').nth(1))
            {
                if let Ok(c) = card.parse::<u64>() {
                    by_card.insert(c, person);
                }
            }
            if let Ok(c) = people.rows[r][transit].parse::<u64>() {
                by_card.insert(c, person);
            }
        }
        let mut found_set = BTreeSet::new();
        for r in 0..t.rows.len() {
            let Some(&(kind, col)) = columns
                .iter()
                .find(|(_, c)| !t.rows[r][*c].trim().is_empty())
            else {
                return Err(ScoreError::Bad {
                    file: t.name.clone(),
                    message: format!("line {}: no identifier", r + 2),
                });
            };
            let id = t.u64(r, col)?;
            // An identifier no person holds is a false positive of its own.
            let person = match kind {
                "person_id" => id,
                "subscriber_id" => by_subscriber.get(&id).copied().unwrap_or(u64::MAX - id),
                _ => by_card.get(&id).copied().unwrap_or(u64::MAX - id),
            };
            found_set.insert((t.u64(r, case_col)?, person));
        }
        let truth_set = truth_contacts(truth, rules)?;
        let hits = found_set.intersection(&truth_set).count() as u64;
        scores.contacts = Some(detection(
            found_set.len() as u64,
            truth_set.len() as u64,
            hits,
        ));
    }
    let truth_clusters = Table::required(truth, "clusters.csv")?;
    let (tc, tcase, tsource) = (
        truth_clusters.column("cluster_id")?,
        truth_clusters.column("case_id")?,
        truth_clusters.column("source_case_id")?,
    );
    let mut truth_of: BTreeMap<u64, u64> = BTreeMap::new();
    let mut truth_source: HashMap<u64, u64> = HashMap::new();
    for r in 0..truth_clusters.rows.len() {
        let cluster = truth_clusters.u64(r, tc)?;
        truth_of.insert(truth_clusters.u64(r, tcase)?, cluster);
        truth_source.insert(cluster, truth_clusters.u64(r, tsource)?);
    }
    let mut found_of: HashMap<u64, u64> = HashMap::new();
    if let Some(t) = &clusters {
        let (case, cluster) = (t.column("case_id")?, t.column("cluster_id")?);
        for r in 0..t.rows.len() {
            found_of.insert(t.u64(r, case)?, t.u64(r, cluster)?);
        }
        let truth_labels: Vec<u64> = truth_of.values().copied().collect();
        let found_labels: Vec<u64> = truth_of
            .keys()
            .map(|case| found_of.get(case).copied().unwrap_or(u64::MAX - case))
            .collect();
        let mut clustering = Clustering {
            cases: truth_labels.len() as u64,
            found_clusters: found_of.values().collect::<BTreeSet<_>>().len() as u64,
            truth_clusters: truth_source.len() as u64,
            adjusted_rand_index: adjusted_rand_index(&truth_labels, &found_labels),
            truth_groups: None,
            groups_adjusted_rand_index: None,
        };
        if truth.join("groups.csv").exists() {
            let g = Table::required(truth, "groups.csv")?;
            let (gcase, ggroup) = (g.column("case_id")?, g.column("group_id")?);
            let mut labels: HashMap<&str, u64> = HashMap::new();
            let mut group_of: BTreeMap<u64, u64> = BTreeMap::new();
            for r in 0..g.rows.len() {
                let next = labels.len() as u64;
                let label = *labels.entry(g.rows[r][ggroup].as_str()).or_insert(next);
                group_of.insert(g.u64(r, gcase)?, label);
            }
            let truth_labels: Vec<u64> = group_of.values().copied().collect();
            let found_labels: Vec<u64> = group_of
                .keys()
                .map(|case| found_of.get(case).copied().unwrap_or(u64::MAX - case))
                .collect();
            let sizes = truth_labels
                .iter()
                .fold(HashMap::<u64, u64>::new(), |mut m, l| {
                    *m.entry(*l).or_default() += 1;
                    m
                });
            clustering.truth_groups = Some(sizes.values().filter(|n| **n >= 2).count() as u64);
            clustering.groups_adjusted_rand_index =
                Some(adjusted_rand_index(&truth_labels, &found_labels));
        }
        scores.clusters = Some(clustering);
    }
    if let Some(t) = sources {
        let (cluster, source) = (t.column("cluster_id")?, t.column("source_case_id")?);
        let (mut claims, mut correct) = (0u64, 0u64);
        for r in 0..t.rows.len() {
            claims += 1;
            let found_cluster = t.u64(r, cluster)?;
            let claimed = t.u64(r, source)?;
            // The truth cluster most of the found cluster's cases belong to
            // (or, without found clusters, the claimed source's own).
            let mut votes: BTreeMap<u64, u64> = BTreeMap::new();
            for (case, c) in &found_of {
                if *c == found_cluster {
                    if let Some(tc) = truth_of.get(case) {
                        *votes.entry(*tc).or_default() += 1;
                    }
                }
            }
            let majority = votes
                .iter()
                .max_by_key(|(c, n)| (**n, std::cmp::Reverse(**c)))
                .map(|(c, _)| *c);
            let truth_cluster = majority.or_else(|| truth_of.get(&claimed).copied());
            if truth_cluster.and_then(|c| truth_source.get(&c)) == Some(&claimed) {
                correct += 1;
            }
        }
        scores.sources = Some(Sources {
            claims,
            correct,
            accuracy: if claims == 0 {
                0.0
            } else {
                correct as f64 / claims as f64
            },
        });
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjusted_rand_index_matches_reference_values() {
        // Values from scikit-learn's documentation.
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 1]) - 1.0).abs() < 1e-12);
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[1, 1, 0, 0]) - 1.0).abs() < 1e-12);
        assert!(
            (adjusted_rand_index(&[0, 0, 1, 2], &[0, 0, 1, 1]) - 0.571_428_571_428_571_5).abs()
                < 1e-12
        );
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]) - (-0.5)).abs() < 1e-12);
    }

    #[test]
    fn csv_fields_may_be_quoted() {
        assert_eq!(
            split("1,\"a,b\",\"say \"\"hi\"\"\""),
            vec!["1", "a,b", "say \"hi\""]
        );
    }
}
