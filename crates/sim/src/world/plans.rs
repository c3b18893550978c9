//! A person's day: what he means to do (work, school, meals, evenings,
//! services, care when ill), and the trips and stays that carry it out.

use super::*;

/// Where a person means to be today: `(venue, from, to)` in local seconds,
/// starting and ending at home.
pub(super) fn intentions(
    p: &Person,
    weekday: u32,
    isolated: bool,
    rng: &mut Rng,
) -> Vec<(u32, i32, i32)> {
    let mut plan = Vec::with_capacity(8);
    if isolated || p.occupation == Occupation::Child {
        return plan;
    }
    let weekend = weekday >= 5;
    let young_night = |plan: &mut Vec<(u32, i32, i32)>, rng: &mut Rng, chance: f64| {
        if let Some(club) = p.club {
            if rng.chance(chance) {
                plan.push((club, jitter(rng, 21 * 60 + 30, 30), 23 * 3600 + 50 * 60));
            }
        }
    };
    if !weekend {
        match (p.occupation, p.work) {
            (Occupation::Student, Some(school)) => {
                plan.push((
                    school,
                    jitter(rng, 8 * 60 + 30, 10),
                    jitter(rng, 15 * 60 + 30, 30),
                ));
                if rng.chance(0.4) {
                    let v = p.evening[2 + rng.index(3)];
                    plan.push((
                        v,
                        jitter(rng, 16 * 60 + 30, 20),
                        jitter(rng, 17 * 60 + 45, 20),
                    ));
                }
            }
            (occupation, Some(work)) => {
                let (start, end) = match occupation {
                    Occupation::HospitalWorker => (7 * 60, 16 * 60),
                    Occupation::ServiceWorker => (10 * 60, 19 * 60),
                    _ => (9 * 60, 18 * 60 + 30),
                };
                let (start, end) = (jitter(rng, start, 30), jitter(rng, end, 45));
                if occupation != Occupation::ServiceWorker && rng.chance(0.6) {
                    let lunch = p.lunch[rng.index(3)];
                    let l0 = jitter(rng, 12 * 60 + 5, 10);
                    plan.push((work, start, l0 - 5 * 60));
                    plan.push((lunch, l0, l0 + rng.range(35, 55) as i32 * 60));
                    plan.push((work, l0 + 60 * 60, end));
                } else {
                    plan.push((work, start, end));
                }
                let r = rng.f64();
                if r < 0.22 {
                    let v = p.evening[rng.index(2)];
                    plan.push((v, end + 20 * 60, end + rng.range(70, 130) as i32 * 60));
                } else if r < 0.32 {
                    plan.push((p.evening[2], end + 15 * 60, end + 60 * 60));
                } else if r < 0.42 {
                    plan.push((p.evening[3 + rng.index(2)], end + 15 * 60, end + 50 * 60));
                }
                if weekday == 4 {
                    young_night(&mut plan, rng, 0.3);
                }
            }
            _ => {
                if rng.chance(0.05) {
                    plan.push((
                        p.evening[5],
                        jitter(rng, 9 * 60 + 30, 30),
                        jitter(rng, 11 * 60, 20),
                    ));
                }
                if rng.chance(0.5) {
                    plan.push((
                        p.evening[3 + rng.index(2)],
                        jitter(rng, 11 * 60 + 30, 15),
                        jitter(rng, 12 * 60 + 10, 10),
                    ));
                }
                if rng.chance(0.3) {
                    plan.push((
                        p.evening[rng.index(2)],
                        jitter(rng, 12 * 60 + 40, 10),
                        jitter(rng, 13 * 60 + 40, 10),
                    ));
                }
                if rng.chance(0.15) {
                    plan.push((
                        p.evening[2],
                        jitter(rng, 15 * 60, 20),
                        jitter(rng, 16 * 60, 15),
                    ));
                }
            }
        }
        return plan;
    }
    if weekday == 6 {
        if let Some(church) = p.church {
            let end = if rng.chance(0.4) {
                13 * 3600
            } else {
                12 * 3600
            };
            plan.push((church, jitter(rng, 10 * 60, 10), end));
        }
    }
    if p.occupation == Occupation::HospitalWorker && rng.chance(0.3) {
        if let Some(work) = p.work {
            plan.push((work, jitter(rng, 14 * 60, 10), jitter(rng, 19 * 60, 20)));
            return plan;
        }
    }
    if rng.chance(0.4) {
        plan.push((
            p.evening[3 + rng.index(2)],
            jitter(rng, 14 * 60 + 30, 30),
            jitter(rng, 15 * 60 + 40, 20),
        ));
    }
    if rng.chance(0.2) {
        plan.push((
            p.evening[2],
            jitter(rng, 16 * 60 + 20, 10),
            jitter(rng, 17 * 60 + 10, 10),
        ));
    }
    if rng.chance(0.35) {
        plan.push((
            p.evening[rng.index(2)],
            jitter(rng, 18 * 60 + 30, 20),
            jitter(rng, 19 * 60 + 50, 20),
        ));
    }
    if weekday == 5 {
        young_night(&mut plan, rng, 0.5);
    }
    plan
}

/// An ill person's visit for care today, if any: from onset to
/// confirmation, now and then the nearest clinic or pharmacy, and the
/// test the day before confirmation (at the district's public health
/// centre, or the clinic).
pub(super) fn care_visit(
    city: &City,
    scenario: &Scenario,
    seed: u64,
    h: &Health,
    person: usize,
    day: i64,
    start_ts: i64,
) -> Option<(u32, i32, i32)> {
    h.infected_at?;
    let onset_day = (h.onset - start_ts).div_euclid(DAY);
    if day < onset_day || day > h.confirmed_day {
        return None;
    }
    let mut rng = Rng::new(seed, &[10, day as u64, person as u64]);
    let (clinic, pharmacy, centre) = city.care_of(person);
    let (venue, minutes) = if day == onset_day.max(h.confirmed_day - 1) {
        if rng.chance(scenario.tested_at_health_centre) {
            (centre, rng.range(20, 50))
        } else {
            (clinic, rng.range(30, 90))
        }
    } else if rng.chance(scenario.care_visit_chance) {
        if rng.chance(0.5) {
            (clinic, rng.range(30, 90))
        } else {
            (pharmacy, rng.range(10, 20))
        }
    } else {
        return None;
    };
    let start = jitter(&mut rng, 9 * 60 + 30, 60);
    Some((venue, start, start + minutes as i32 * 60))
}

/// The legs of a trip from venue `a` to venue `b` starting at `t`.
pub(super) fn trip(city: &City, p: &Person, a: u32, b: u32, t: i32, out: &mut Vec<Seg>) -> i32 {
    let (pa, pb) = (city.venues[a as usize].pos, city.venues[b as usize].pos);
    let d = distance_m(pa, pb);
    if d < 1_500.0 {
        let t1 = t + (d / 1.3) as i32 + 60;
        out.push(Seg::Move(Move {
            from: pa,
            to: pb,
            t0: t,
            t1,
            leg: Leg::Walk,
        }));
        return t1;
    }
    let (s1, d1) = city.venue_stop[a as usize];
    let (s2, d2) = city.venue_stop[b as usize];
    if p.uses_transit && s1 != s2 && d1 + d2 < 0.7 * d {
        let (q1, q2) = (city.stops[s1 as usize].pos, city.stops[s2 as usize].pos);
        let t1 = t + (d1 / 1.3) as i32 + 60;
        let t2 = t1 + 240 + (distance_m(q1, q2) / 9.0) as i32;
        let t3 = t2 + (d2 / 1.3) as i32 + 60;
        out.push(Seg::Move(Move {
            from: pa,
            to: q1,
            t0: t,
            t1,
            leg: Leg::Walk,
        }));
        out.push(Seg::Move(Move {
            from: q1,
            to: q2,
            t0: t1,
            t1: t2,
            leg: Leg::Ride {
                stop_in: s1,
                stop_out: s2,
            },
        }));
        out.push(Seg::Move(Move {
            from: q2,
            to: pb,
            t0: t2,
            t1: t3,
            leg: Leg::Walk,
        }));
        return t3;
    }
    let t1 = t + 120 + (d / 7.0) as i32;
    out.push(Seg::Move(Move {
        from: pa,
        to: pb,
        t0: t,
        t1,
        leg: Leg::Car,
    }));
    t1
}

/// Turns intentions into a day that covers 00:00–24:00 without gaps.
pub(super) fn route(city: &City, p: &Person, plan: &[(u32, i32, i32)], segs: &mut Vec<Seg>) {
    const END: i32 = DAY as i32;
    let mut here = p.home;
    let mut since = 0i32;
    let mut until = 0i32;
    let mut scratch = Vec::with_capacity(4);
    let mut duration = |a: u32, b: u32| {
        scratch.clear();
        trip(city, p, a, b, 0, &mut scratch)
    };
    for &(venue, start, end) in plan {
        if venue == here {
            until = until.max(end);
            continue;
        }
        let there = duration(here, venue);
        let back = duration(venue, p.home);
        let leave = until.max(start - there).max(since + 300);
        let arrive = leave + there;
        // Everyone is home by midnight: a stay is cut short to allow the
        // trip back, and dropped if less than ten minutes would remain.
        let latest = END - 1 - back;
        if arrive + 600 > latest {
            continue;
        }
        segs.push(Seg::Stay(Stay {
            venue: here,
            from: since,
            to: leave,
        }));
        let reached = trip(city, p, here, venue, leave, segs);
        debug_assert_eq!(reached, arrive);
        here = venue;
        since = arrive;
        until = end.max(arrive + 600).min(latest);
    }
    if here != p.home {
        let leave = until.max(since + 300);
        segs.push(Seg::Stay(Stay {
            venue: here,
            from: since,
            to: leave,
        }));
        let arrive = trip(city, p, here, p.home, leave, segs);
        debug_assert!(arrive < END);
        segs.push(Seg::Stay(Stay {
            venue: p.home,
            from: arrive.min(END - 1),
            to: END,
        }));
    } else {
        segs.push(Seg::Stay(Stay {
            venue: here,
            from: since,
            to: END,
        }));
    }
}
