#!/usr/bin/env python3
"""Exposure windows side by side: the civic node's ping store, PostgreSQL +
PostGIS, and DuckDB, on the same generated data.

    bench/exposure.py [--people 100000] [--days 14] [--work /tmp/civic-bench]

Generates a city (civic sim), loads its towers and pings into each engine,
runs the same 50 exposure windows (towers within a radius of a point, a
time interval; distinct subscribers), checks that all three give the same
counts, and prints load time, size on disk, median and p95 latency per
window, and the ratios. Needs: a release build of civic (made here),
PostgreSQL with PostGIS (Debian: postgresql-15-postgis-3) at
CIVIC_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres),
and the PyPI packages duckdb and psycopg[binary] (installed if missing).
Latencies are measured warm (a first pass, then the timed one); PostgreSQL
and DuckDB are timed from their client calls, the node in-process.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CIVIC = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "civic"
R = 6371008.8  # metres: the mean Earth radius, as PostGIS's sphere and the node use


def need(module, package):
    try:
        return __import__(module)
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", package])
        return __import__(module)


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, **kw)


def du(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def windows(city):
    towers = [l.split(",") for l in (city / "towers.csv").read_text().splitlines()[1:]]
    summary = json.loads((city / "summary.json").read_text())
    start = min(int(l.split(",")[1]) for l in open(city / "pings-kt.csv").readlines()[1:2000])
    span = (summary["days"] - 1) * 86400
    out = []
    for i in range(50):
        t = towers[(i * 97) % len(towers)]
        t0 = start + (i * 23_400) % span + 8 * 3600
        out.append((i + 1, float(t[1]) + 0.0007, float(t[2]) - 0.0009, 500.0 + (i % 4) * 250.0, t0, t0 + 2 * 3600))
    return out


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--work", default="/tmp/civic-bench")
    a = ap.parse_args()
    duckdb = need("duckdb", "duckdb")
    psycopg = need("psycopg", "psycopg[binary]")
    work = Path(a.work)
    city, node = work / "city", work / "node"
    run("cargo", "build", "--release", "--quiet", cwd=ROOT)
    if not (city / "summary.json").exists() or json.loads((city / "summary.json").read_text())["people"] != a.people:
        shutil.rmtree(work, ignore_errors=True)
        run(CIVIC, "sim", "generate", "--people", a.people, "--days", a.days, "--seed", 1, "--out", city)
    pings = sorted(str(p) for p in city.glob("pings-*.csv"))
    total = sum(sum(1 for _ in open(p)) - 1 for p in pings)
    q = windows(city)
    (work / "queries.csv").write_text("query_id,lat,lon,radius_m,t_start,t_end\n" + "".join(f"{i},{lat},{lon},{r},{t0},{t1}\n" for i, lat, lon, r, t0, t1 in q))
    results = {}

    # The civic node.
    shutil.rmtree(node, ignore_errors=True)
    t = time.perf_counter()
    run(CIVIC, "node", "import", "--data-dir", node, "--towers", city / "towers.csv", *sum((["--pings", p] for p in pings), []), stdout=subprocess.DEVNULL)
    load = time.perf_counter() - t
    for _ in range(2):  # warm, then timed
        answers = run(CIVIC, "node", "exposure", "--data-dir", node, "--queries", work / "queries.csv", "--latencies", work / "lat.csv", capture_output=True, text=True).stdout
    counts = [int(l.split(",")[1]) for l in answers.splitlines()[1:]]
    lat = [float(l.split(",")[1]) / 1000 for l in (work / "lat.csv").read_text().splitlines()[1:]]
    results["civic node"] = dict(load=load, size=du(node), counts=counts, lat=lat)

    # DuckDB.
    db = work / "bench.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    t = time.perf_counter()
    con.execute(f"CREATE TABLE towers AS SELECT * FROM read_csv('{city / 'towers.csv'}', header=true)")
    con.execute(f"CREATE TABLE pings AS SELECT * FROM read_csv({pings!r}, header=true, columns={{'subscriber_id': 'BIGINT', 'ts': 'BIGINT', 'cell_id': 'BIGINT'}})")
    con.execute("CHECKPOINT")
    load = time.perf_counter() - t
    sql = f"""SELECT count(DISTINCT subscriber_id) FROM pings WHERE ts BETWEEN $t0 AND $t1 AND cell_id IN (
        SELECT cell_id FROM towers WHERE 2 * {R} * asin(sqrt(pow(sin(radians(lat - $lat) / 2), 2)
            + cos(radians($lat)) * cos(radians(lat)) * pow(sin(radians(lon - $lon) / 2), 2))) <= $r)"""
    for rnd in range(2):
        counts, lat = [], []
        for i, la, lo, r, t0, t1 in q:
            t = time.perf_counter()
            counts.append(con.execute(sql, dict(t0=t0, t1=t1, lat=la, lon=lo, r=r)).fetchone()[0])
            lat.append((time.perf_counter() - t) * 1000)
    con.close()
    results["DuckDB " + duckdb.__version__] = dict(load=load, size=db.stat().st_size, counts=counts, lat=lat)

    # PostgreSQL + PostGIS.
    url = os.environ.get("CIVIC_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS civic_bench")
        admin.execute("CREATE DATABASE civic_bench")
    bench_url = url.rsplit("/", 1)[0] + "/civic_bench"
    with psycopg.connect(bench_url, autocommit=True) as pg:
        pg.execute("CREATE EXTENSION postgis")
        version = pg.execute("SELECT postgis_lib_version()").fetchone()[0]
        t = time.perf_counter()
        pg.execute("CREATE TABLE towers_raw (cell_id bigint, lat double precision, lon double precision)")
        pg.execute(f"COPY towers_raw FROM '{city / 'towers.csv'}' CSV HEADER")
        pg.execute("CREATE TABLE towers AS SELECT cell_id, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography AS geog FROM towers_raw")
        pg.execute("CREATE TABLE pings (subscriber_id bigint, ts bigint, cell_id bigint)")
        for p in pings:
            pg.execute(f"COPY pings FROM '{p}' CSV HEADER")
        pg.execute("CREATE INDEX pings_cell_ts ON pings (cell_id, ts)")
        pg.execute("CREATE INDEX towers_geog ON towers USING gist (geog)")
        pg.execute("VACUUM ANALYZE pings")
        pg.execute("ANALYZE towers")
        load = time.perf_counter() - t
        size = pg.execute("SELECT pg_total_relation_size('pings') + pg_total_relation_size('towers')").fetchone()[0]
        sql = """SELECT count(DISTINCT p.subscriber_id) FROM towers t JOIN pings p ON p.cell_id = t.cell_id
                 WHERE ST_DWithin(t.geog, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography, %(r)s, false)
                   AND p.ts BETWEEN %(t0)s AND %(t1)s"""
        for rnd in range(2):
            counts, lat = [], []
            for i, la, lo, r, t0, t1 in q:
                t = time.perf_counter()
                counts.append(pg.execute(sql, dict(t0=t0, t1=t1, lat=la, lon=lo, r=r)).fetchone()[0])
                lat.append((time.perf_counter() - t) * 1000)
    results[f"PostgreSQL 15 + PostGIS {version}"] = dict(load=load, size=size, counts=counts, lat=lat)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS civic_bench")

    reference = results["civic node"]["counts"]
    same = all(r["counts"] == reference for r in results.values())
    node_median = statistics.median(results["civic node"]["lat"])
    print(f"\n{total:,} pings, {len(q)} exposure windows (radius 500-1,250 m, 2 h), answers identical: {'yes' if same else 'NO'}")
    print(f"windows with people: {sum(1 for c in reference if c)}; mean distinct subscribers per window: {statistics.mean(reference):.0f}\n")
    print("| engine | load | load rate | size on disk | median / window | p95 / window | median vs the node |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        med, p95 = statistics.median(r["lat"]), percentile(r["lat"], 95)
        print(f"| {name} | {r['load']:.1f} s | {total / r['load'] / 1e6:.2f} M pings/s | {r['size'] / 2**20:,.0f} MiB | {med:.3f} ms | {p95:.3f} ms | {med / node_median:.0f}× |")
    if not same:
        for name, r in results.items():
            diff = [(i + 1, a, b) for i, (a, b) in enumerate(zip(reference, r["counts"])) if a != b]
            if diff:
                print(f"{name} differs from the node on windows (id, node, engine): {diff[:10]}")
        sys.exit(1)


if __name__ == "__main__":
    main()
