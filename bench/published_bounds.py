#!/usr/bin/env python3
"""How well could any method cluster a city's cases from its published routes?

The simulator's `published-routes.csv` shows a few places per case from two
days before onset (issue 17). This script bounds the adjusted Rand index
against the setting groups (`groups.csv`) that any method linking cases
through the places in their rows can reach, on that file and on richer
views a health authority might have published instead (every outing in a
window, none dropped), each with three bounds, more generous in turn:

  shown       a case is put in its true group when one of its rows lies
              within 100 m of its group's venue, else alone;
  +household  also every case infected at home by a case whose group is
              shown (a method would need a link it has no row for);
  +routeless  also every case with no row at all, placed by a perfect guess.

    bench/published_bounds.py CITY_DIR
"""
import collections
import csv
import datetime
import json
import math
import random
import statistics
import sys

city = sys.argv[1]
KST = datetime.timezone(datetime.timedelta(hours=9))
start = datetime.date.fromisoformat(json.load(open(f"{city}/summary.json"))["start"])
midnight = datetime.datetime(start.year, start.month, start.day, tzinfo=KST).timestamp()
CARE = {"hospital", "pharmacy", "health_centre"}


def day_of_ts(ts):
    return int((ts - midnight) // 86400)


def day_of_date(text):
    return (datetime.date.fromisoformat(text) - start).days


def cell(lat, lon):
    m = 111_195.0
    return (round(lat * m / 100), round(lon * m * math.cos(math.radians(lat)) / 100))


def near(a, b):
    return abs(a[0] - b[0]) <= 1 and abs(a[1] - b[1]) <= 1


def ari(truth, found):
    pairs = lambda n: n * (n - 1) / 2
    both = collections.Counter((truth[k], found[k]) for k in truth)
    a = collections.Counter(truth.values())
    b = collections.Counter(found.values())
    index = sum(pairs(v) for v in both.values())
    sa, sb = sum(pairs(v) for v in a.values()), sum(pairs(v) for v in b.values())
    expected = sa * sb / pairs(len(truth))
    top = (sa + sb) / 2
    return (index - expected) / (top - expected) if top != expected else 1.0


venues = {}
for r in csv.DictReader(open(f"{city}/venues.csv")):
    venues[r["venue_id"]] = (r["kind"], cell(float(r["lat"]), float(r["lon"])))
cases = {}
for r in csv.DictReader(open(f"{city}/cases.csv")):
    cases[r["person_id"]] = {
        "id": r["case_id"],
        "onset": day_of_date(r["onset_date"]),
        "confirmed": day_of_date(r["confirmed_date"]),
    }
case_ids = {c["id"] for c in cases.values()}
truth = {r["case_id"]: r["group_id"] for r in csv.DictReader(open(f"{city}/groups.csv"))}
infected_at = {r["infectee"]: (r["infector"], r["venue_id"]) for r in csv.DictReader(open(f"{city}/infections.csv"))}
outings = collections.defaultdict(dict)
for r in csv.reader(open(f"{city}/visits.csv")):
    if r[0] in cases and r[1] in venues and venues[r[1]][0] != "home":
        outings[r[0]].setdefault((day_of_ts(int(r[2])), r[1]), venues[r[1]][0])


def bounds(name, cells):
    """`cells`: case id -> the 100 m cells of its rows."""
    shown = {}
    for case, group in truth.items():
        shown[case] = group in venues and any(near(c, venues[group][1]) for c in cells.get(case, ()))
    b1 = {case: ("g" + g if shown[case] else case) for case, g in truth.items()}
    b2 = dict(b1)
    for person, c in cases.items():
        infector, venue = infected_at.get(person, (None, None))
        if infector in cases and venues.get(venue, ("",))[0] == "home" and shown[cases[infector]["id"]]:
            b2[c["id"]] = "g" + truth[c["id"]]
    b3 = dict(b2)
    for case in truth:
        if not cells.get(case):
            b3[case] = "g" + truth[case]
    rows = [len(cells.get(c, ())) for c in case_ids]
    print(
        f"| {name} | {sum(rows):,} | {statistics.median(rows):g} | {sum(shown.values())} of {len(shown)} "
        f"| {ari(truth, b1):.3f} | {ari(truth, b2):.3f} | {ari(truth, b3):.3f} |"
    )


def view(lookback, after, keep, seed=1):
    """Every outing from `lookback` days before onset to `after` days after
    it (at most to confirmation), each kept with chance `keep`; care
    visits from onset to confirmation; 15 % of cases without a route."""
    rng = random.Random(seed)
    cells = {}
    for person, c in cases.items():
        if rng.random() < 0.15:
            continue
        rows = []
        for (d, venue), kind in sorted(outings[person].items()):
            if kind in CARE:
                ok = c["onset"] <= d <= c["confirmed"]
            else:
                ok = c["onset"] - lookback <= d <= min(c["confirmed"], c["onset"] + after) and rng.random() < keep
            if ok:
                rows.append(venues[venue][1])
        cells[c["id"]] = rows
    return cells


print("| view | rows | median rows a case | cases shown at their setting | shown | +household | +routeless |")
print("|---|---|---|---|---|---|---|")
published = collections.defaultdict(list)
for r in csv.DictReader(open(f"{city}/published-routes.csv")):
    published[r["case_id"]].append(cell(float(r["lat"]), float(r["lon"])))
bounds("`published-routes.csv`", published)
for lookback in (1, 2):
    for after in (0, 99):
        until = "onset" if after == 0 else "confirmation"
        bounds(f"every outing, {lookback} d before onset to {until}", view(lookback, after, 1.0))
        bounds(f"half of them, {lookback} d before onset to {until}", view(lookback, after, 0.5))
everything = {c["id"]: [venues[v][1] for (d, v) in outings[p] if d <= c["confirmed"]] for p, c in cases.items()}
bounds("every outing of the whole run, no case without a route", everything)
