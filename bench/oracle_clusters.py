#!/usr/bin/env python3
"""The ceiling of cluster recovery on a synthetic city's truth.

The simulator's clusters are the cases descending from each index case.
Chains meet: a case may be infected where confirmed cases of several
chains were present and infectious (a busy church, a school, a shared
household). No method that sees only who was where and when can tell
those apart. This oracle knows what no platform does -- each case's true
infection venue and time -- and assigns each case to the chain with the
most infectious confirmed cases present there (a case no confirmed case
could have infected stays alone). Its adjusted Rand index bounds what any
co-presence method can reach against this truth.

    bench/oracle_clusters.py CITY_DIR
"""
import collections
import csv
import datetime
import sys
from math import comb

city = sys.argv[1]
KST = datetime.timezone(datetime.timedelta(hours=9))


def local_midnight(date):
    y, m, d = map(int, date.split("-"))
    return datetime.datetime(y, m, d, tzinfo=KST).timestamp()


cases = {r["person_id"]: r for r in csv.DictReader(open(f"{city}/cases.csv"))}
truth = {r["case_id"]: r["cluster_id"] for r in csv.DictReader(open(f"{city}/clusters.csv"))}
for c in cases.values():
    # Infectious from two days before onset (the simulator's model).
    c["infectious_from"] = local_midnight(c["onset_date"]) + 12 * 3600 - 2 * 86400
infections = {r["infectee"]: r for r in csv.DictReader(open(f"{city}/infections.csv"))}
visits = collections.defaultdict(list)
for r in csv.DictReader(open(f"{city}/visits.csv")):
    if r["person_id"] in cases:
        visits[r["venue_id"]].append((r["person_id"], int(r["arrival"]), int(r["departure"])))

found, ambiguous, alone = {}, 0, 0
for person, case in cases.items():
    infection = infections.get(person)
    present = collections.Counter()
    if infection and infection["infector"]:
        t, venue = int(infection["time"]), infection["venue_id"]
        for other, arrival, departure in visits[venue]:
            if other != person and arrival - 3600 <= t <= departure + 3600 and cases[other]["infectious_from"] <= t:
                present[truth[cases[other]["case_id"]]] += 1
    if len(present) > 1:
        ambiguous += 1
    if present:
        found[case["case_id"]] = present.most_common(1)[0][0]
    else:
        alone += 1
        found[case["case_id"]] = "alone-" + case["case_id"]


def ari(a, b):
    n = len(a)
    cells = collections.Counter(zip(a, b))
    rows, cols = collections.Counter(a), collections.Counter(b)
    index = sum(comb(c, 2) for c in cells.values())
    x = sum(comb(c, 2) for c in rows.values())
    y = sum(comb(c, 2) for c in cols.values())
    expected = x * y / comb(n, 2)
    return (index - expected) / ((x + y) / 2 - expected)


keys = sorted(truth)
print(
    f"oracle: {len(keys)} cases; {ambiguous} infected where confirmed cases of several chains were present, "
    f"{alone} where none was; adjusted Rand index {ari([truth[k] for k in keys], [found[k] for k in keys]):.3f}"
)
