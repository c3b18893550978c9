//! The simulator as its users rely on it: files in the exchange formats,
//! plausible counts, byte-identical runs, and a scorer that knows the truth.

use civic_sim::score::{score, truth_contacts, Rules};
use civic_sim::{generate, Params, Scenario};
use std::path::Path;

fn params(people: usize, days: u32, seed: u64, threads: usize) -> Params {
    Params::seoul(people, days, seed, threads)
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn the_same_seed_gives_the_same_bytes_whatever_the_threads() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate(&params(1500, 4, 5, 1), a.path(), &mut |_, _| {}).unwrap();
    generate(&params(1500, 4, 5, 3), b.path(), &mut |_, _| {}).unwrap();
    generate(&params(1500, 4, 6, 2), c.path(), &mut |_, _| {}).unwrap();
    assert_eq!(files(a.path()), files(b.path()));
    for name in files(a.path()) {
        let (x, y) = (
            std::fs::read(a.path().join(&name)).unwrap(),
            std::fs::read(b.path().join(&name)).unwrap(),
        );
        assert!(x == y, "{name} differs between two runs with the same seed");
    }
    for name in ["pings-skt.csv", "people.csv", "visits.csv", "towers.csv"] {
        let (x, y) = (
            std::fs::read(a.path().join(name)).unwrap(),
            std::fs::read(c.path().join(name)).unwrap(),
        );
        assert!(x != y, "{name} is the same for another seed");
    }
}

fn header(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned()
}

fn rows(dir: &Path, name: &str) -> usize {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .lines()
        .count()
        - 1
}

#[test]
fn every_file_is_in_its_exchange_format_with_plausible_counts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = generate(&params(4000, 8, 9, 2), d, &mut |_, _| {}).unwrap();
    for (name, want) in [
        ("towers.csv", "cell_id,lat,lon"),
        ("pings-skt.csv", "subscriber_id,ts,cell_id"),
        ("pings-kt.csv", "subscriber_id,ts,cell_id"),
        ("pings-lguplus.csv", "subscriber_id,ts,cell_id"),
        ("merchants.csv", "merchant_id,lat,lon,category,name"),
        ("transactions-shinhan.csv", "card_id,ts,merchant_id,amount"),
        ("transactions-post.csv", "card_id,ts,merchant_id,amount"),
        ("stops.csv", "stop_id,lat,lon,name"),
        ("taps.csv", "card_id,ts,stop_id,kind"),
        (
            "interviews.csv",
            "case_id,date,lat,lon,start_time,end_time,place",
        ),
        ("visits.csv", "person_id,venue_id,arrival,departure"),
        ("infections.csv", "infectee,infector,venue_id,time"),
        (
            "case-register.csv",
            "case_id,region,onset_date,confirmed_date,telco,subscriber_id,card_ids,transit_card_id,home_lat,home_lon",
        ),
    ] {
        assert_eq!(header(d, name), want, "{name}");
    }
    let transaction_files = files(d)
        .iter()
        .filter(|f| f.starts_with("transactions-"))
        .count();
    assert_eq!(transaction_files, 22);
    assert_eq!(rows(d, "people.csv"), 4000);
    // A ping every 10-30 minutes: about 72 a day per phone.
    let per_phone_day = s.pings as f64 / (s.phones as f64 * 8.0);
    assert!((55.0..90.0).contains(&per_phone_day), "{per_phone_day}");
    // Telco market shares 40/30/30, within noise.
    let skt = s.pings_by_telco["skt"] as f64 / s.pings as f64;
    assert!((0.35..0.45).contains(&skt), "{skt}");
    // Skewed card market: the largest issuer far ahead of the smallest.
    assert!(rows(d, "transactions-shinhan.csv") > 5 * rows(d, "transactions-post.csv").max(1));
    assert!(
        s.taps > 0 && s.taps.is_multiple_of(2),
        "taps come in and out"
    );
    assert!(s.visits >= 4000 * 8);
    assert!(s.infections >= 4 && s.cases >= 1 && s.cases <= s.infections);
    assert_eq!(rows(d, "cases.csv") as u64, s.cases);
    assert_eq!(rows(d, "case-register.csv") as u64, s.cases);
    // Index cases follow the model: infectious from two days before their
    // onset, so a cluster's index has the earliest onset of its cases.
    let infected: std::collections::HashSet<String> =
        std::fs::read_to_string(d.join("infections.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .filter(|l| l.split(',').nth(1) == Some(""))
            .map(|l| l.split(',').next().unwrap().to_owned())
            .collect();
    let cases = std::fs::read_to_string(d.join("cases.csv")).unwrap();
    let first_onset = cases
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(5).unwrap().to_owned())
        .min();
    for line in cases.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if infected.contains(f[1]) {
            assert_eq!(Some(f[5].to_owned()), first_onset, "index case {line}");
        }
    }
    // Every subway tap is in, then out, at a known stop.
    let taps = std::fs::read_to_string(d.join("taps.csv")).unwrap();
    let kinds: Vec<&str> = taps
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap())
        .collect();
    assert!(kinds.chunks(2).all(|p| p == ["in", "out"]));
    // Clubs have their Friday and Saturday nights (2020-03-06 and 07).
    let venues = std::fs::read_to_string(d.join("venues.csv")).unwrap();
    let clubs: std::collections::HashSet<&str> = venues
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("club"))
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let visits = std::fs::read_to_string(d.join("visits.csv")).unwrap();
    let club_visits = visits
        .lines()
        .skip(1)
        .filter(|l| clubs.contains(l.split(',').nth(1).unwrap()))
        .count();
    assert!(club_visits > 10, "club visits: {club_visits}");
    // Everyone is home by midnight: no tap after the last simulated day.
    let last = civic_sim::world::local_midnight(time::macros::date!(2020 - 03 - 01)) + 8 * 86_400;
    assert!(taps
        .lines()
        .skip(1)
        .all(|l| l.split(',').nth(1).unwrap().parse::<i64>().unwrap() < last));
    // Pings fall within the simulated fortnight's days.
    let start = civic_sim::world::local_midnight(time::macros::date!(2020 - 03 - 01));
    let pings = std::fs::read_to_string(d.join("pings-kt.csv")).unwrap();
    for line in pings.lines().skip(1).take(10_000) {
        let ts: i64 = line.split(',').nth(1).unwrap().parse().unwrap();
        assert!((start..start + 8 * 86_400).contains(&ts), "{line}");
    }
}

#[test]
fn scoring_the_truth_is_perfect_and_mistakes_cost() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(&params(3000, 10, 11, 2), d, &mut |_, _| {}).unwrap();
    let rules = Rules::default();
    let truth = truth_contacts(d, rules).unwrap();
    assert!(!truth.is_empty());

    let found = tempfile::tempdir().unwrap();
    let f = found.path();
    // The truth itself, found by person: perfect.
    let mut text = String::from("case_id,person_id\n");
    for (case, person) in &truth {
        text.push_str(&format!("{case},{person}\n"));
    }
    std::fs::write(f.join("contacts.csv"), &text).unwrap();
    std::fs::copy(d.join("clusters.csv"), f.join("clusters.csv")).unwrap();
    let s = score(d, f, rules).unwrap();
    let c = s.contacts.unwrap();
    assert_eq!((c.precision, c.recall), (1.0, 1.0));
    assert_eq!(s.clusters.unwrap().adjusted_rand_index, 1.0);

    // Half the contacts and a stranger: recall halves, precision drops.
    let half: Vec<_> = truth.iter().step_by(2).collect();
    let mut text = String::from("case_id,person_id\n");
    for (case, person) in &half {
        text.push_str(&format!("{case},{person}\n"));
    }
    text.push_str("1001,999999999\n");
    std::fs::write(f.join("contacts.csv"), &text).unwrap();
    // Every case in one cluster: the Rand index falls.
    let cases = std::fs::read_to_string(d.join("cases.csv")).unwrap();
    let mut clusters = String::from("case_id,cluster_id\n");
    for line in cases.lines().skip(1) {
        clusters.push_str(&format!("{},1\n", line.split(',').next().unwrap()));
    }
    std::fs::write(f.join("clusters.csv"), clusters).unwrap();
    std::fs::write(f.join("sources.csv"), "cluster_id,source_case_id\n1,1001\n").unwrap();
    let s = score(d, f, rules).unwrap();
    let c = s.contacts.unwrap();
    assert!((c.recall - 0.5).abs() < 0.01, "{c:?}");
    assert!(c.precision < 1.0);
    assert!(s.clusters.unwrap().adjusted_rand_index < 0.5);
    assert_eq!(s.sources.unwrap().claims, 1);

    // Contacts by the telco's subscriber ids map to the same people.
    let people = std::fs::read_to_string(d.join("people.csv")).unwrap();
    let subscriber: std::collections::HashMap<u64, u64> = people
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f[0].parse().ok()?, f[9].parse().ok()?))
        })
        .collect();
    let mut text = String::from("case_id,subscriber_id\n");
    let mut expected = 0;
    for (case, person) in &truth {
        if let Some(s) = subscriber.get(person) {
            text.push_str(&format!("{case},{s}\n"));
            expected += 1;
        }
    }
    std::fs::write(f.join("contacts.csv"), &text).unwrap();
    let c = score(d, f, rules).unwrap().contacts.unwrap();
    assert_eq!((c.precision, c.true_positives), (1.0, expected));
}

#[test]
fn a_scenario_file_changes_the_run_and_bad_ones_are_refused() {
    let s =
        Scenario::from_toml("telcos = [[\"a\", 0.5], [\"b\", 0.5]]\ncard_companies = 3\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut p = params(500, 2, 1, 1);
    p.scenario = s;
    generate(&p, dir.path(), &mut |_, _| {}).unwrap();
    let names = files(dir.path());
    assert!(names.contains(&"pings-a.csv".to_owned()) && names.contains(&"pings-b.csv".to_owned()));
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("transactions-"))
            .count(),
        3
    );
    assert!(Scenario::from_toml("handover_noise = 2.0").is_err());
    assert!(Scenario::from_toml("colour = \"blue\"").is_err());
    assert!(Scenario::from_toml("telcos = [[\"A B\", 1.0]]").is_err());
}

/// The published view reproduces what published routes were like:
/// sparse, date-only rows at venues' own points (shared by many cases),
/// care visits after onset, cases with no route, onsets mostly missing;
/// and its scenario keys tune it.
#[test]
fn the_published_view_is_sparse_shared_and_mostly_without_onset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = generate(&params(10_000, 14, 1, 2), d, &mut |_, _| {}).unwrap();
    assert_eq!(
        header(d, "published-routes.csv"),
        "case_id,date,lat,lon,start_time,end_time,place"
    );
    assert_eq!(
        header(d, "published-register.csv"),
        "case_id,region,onset_date,confirmed_date"
    );
    let register = std::fs::read_to_string(d.join("published-register.csv")).unwrap();
    let register: Vec<Vec<&str>> = register
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(register.len() as u64, s.cases);
    let missing = register.iter().filter(|r| r[2].is_empty()).count() as f64 / s.cases as f64;
    assert!((0.6..0.8).contains(&missing), "onset missing for {missing}");
    let onset: std::collections::HashMap<&str, &str> =
        register.iter().map(|r| (r[0], r[2])).collect();
    // The truth's onsets, to tell care before and after it.
    let cases = std::fs::read_to_string(d.join("cases.csv")).unwrap();
    let true_onset: std::collections::HashMap<String, String> = cases
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_owned(), f[5].to_owned())
        })
        .collect();
    let routes = std::fs::read_to_string(d.join("published-routes.csv")).unwrap();
    let rows: Vec<Vec<&str>> = routes
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len() as u64, s.published_rows);
    let mut per_case: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut points: std::collections::HashMap<(&str, &str), std::collections::BTreeSet<&str>> =
        Default::default();
    let (mut care, mut care_after_onset) = (0, 0);
    for r in &rows {
        assert!(onset.contains_key(r[0]), "a published case is registered");
        assert!(r[4].is_empty() && r[5].is_empty(), "no times by default");
        assert_ne!(r[6], "home", "homes are not published");
        *per_case.entry(r[0]).or_default() += 1;
        points.entry((r[2], r[3])).or_default().insert(r[0]);
        if ["hospital", "pharmacy", "public health centre"].contains(&r[6]) {
            care += 1;
            if r[1] >= true_onset[r[0]].as_str() {
                care_after_onset += 1;
            }
        }
    }
    let mut counts: Vec<usize> = per_case.values().copied().collect();
    counts.sort_unstable();
    let median = counts[counts.len() / 2];
    assert!((2..=6).contains(&median), "median rows a case: {median}");
    let without = s.cases as usize - per_case.len();
    assert_eq!(without as u64, s.published_without_route);
    assert!(
        without as f64 > 0.1 * s.cases as f64,
        "some cases have no route: {without}"
    );
    let shared = points.values().filter(|c| c.len() >= 5).count();
    assert!(shared >= 5, "venues shared by five cases or more: {shared}");
    assert!(
        care as f64 > 0.2 * rows.len() as f64 && care_after_onset as f64 > 0.9 * care as f64,
        "care visits: {care} of {} rows, {care_after_onset} after onset",
        rows.len()
    );

    // The keys tune it: every row timed, every onset known, every route.
    let tuned = tempfile::tempdir().unwrap();
    let mut p = params(3000, 8, 1, 2);
    p.scenario = Scenario::from_toml(
        "[published]\ntimed_share = 1.0\nonset_missing_share = 0.0\nno_route_share = 0.0\n",
    )
    .unwrap();
    generate(&p, tuned.path(), &mut |_, _| {}).unwrap();
    let routes = std::fs::read_to_string(tuned.path().join("published-routes.csv")).unwrap();
    assert!(routes
        .lines()
        .skip(1)
        .all(|l| l.split(',').nth(4).is_some_and(|t| t.len() == 5)));
    let register = std::fs::read_to_string(tuned.path().join("published-register.csv")).unwrap();
    assert!(register
        .lines()
        .skip(1)
        .all(|l| l.split(',').nth(2).is_some_and(|t| !t.is_empty())));
    assert!(Scenario::from_toml("[published]\nkeep_care = 1.5\n").is_err());
}
