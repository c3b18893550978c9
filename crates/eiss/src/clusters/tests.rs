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
