#!/usr/bin/env python3
"""Temporal aggregation on an NGSI-LD broker (issue 19's target: over
1,000,000 observations in < 100 ms), with DuckDB beside it as the peer
and the oracle.

    bench/ngsi-ld-temporal.py BROKER_URL [--sensors 100] [--per-sensor 10000]
        [--repeat 20] [--pid PID] [--sqlite FILE]

1. load: SENSORS temperature sensors of PER_SENSOR observations each, one
   a minute with a jitter of seconds (100 x 10,000 = 1,000,000 over a
   week), through POST /temporal/entities, 2000 instances a request,
   4 requests in flight;
2. aggregations through GET /temporal/entities (every sensor, every
   observation of the week: totalCount, avg, min, max), one request at
   a time, REPEAT times each: daily and hourly buckets from midnight,
   daily buckets from an origin that is not on the hour, and one sensor
   hourly;
3. the same aggregations in DuckDB (in memory, the same observations),
   timed the same way, and every bucket of the broker's answers checked
   against DuckDB's (counts and bounds equal, averages within 1e-9);
4. with --sqlite, the same GROUP BY over the broker's own recorded
   instances in its SQLite file (what a broker without hourly sums
   would read).
Prints one JSON object.
"""
import argparse
import asyncio
import calendar
import csv
import json
import math
import os
import random
import sqlite3
import sys
import tempfile
import time
from urllib.parse import urlsplit

TYPE = "TemporalSensor"
T0 = 1_709_251_200_000  # 2024-03-01T00:00:00Z
T0_ISO = "2024-03-01T00:00:00Z"
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


def iso(ms):
    s, milli = divmod(ms, 1000)
    t = time.gmtime(s)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{milli:03d}Z"


def parse_iso(s):
    s = s.rstrip("Z")
    whole, _, frac = s.partition(".")
    t = time.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t) * 1000 + (int(frac.ljust(3, "0")[:3]) if frac else 0)


def observations(sensors, per_sensor):
    """(sensor index, ms, value) for every observation, deterministic."""
    rng = random.Random(19)
    for s in range(sensors):
        phase = rng.random() * 2 * math.pi
        for j in range(per_sensor):
            at = T0 + j * MINUTE + rng.randrange(0, 59_000)
            daily = math.sin(2 * math.pi * (at - T0) / DAY + phase)
            yield s, at, round(15 + 8 * daily + rng.gauss(0, 1.5), 2)


def sensor_id(s):
    return f"urn:ngsi-ld:{TYPE}:{s:04d}"


class Conn:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.r = self.w = None

    async def request(self, method, path, body=None):
        if self.w is None:
            self.r, self.w = await asyncio.open_connection(self.host, self.port, limit=1 << 26)
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(data)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        self.w.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await self.w.drain()
        status = int((await self.r.readline()).split()[1])
        length = 0
        chunked = False
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v.strip())
            if k.lower() == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
        if chunked:
            payload = b""
            while True:
                size = int((await self.r.readline()).strip(), 16)
                if size == 0:
                    await self.r.readline()
                    break
                payload += await self.r.readexactly(size)
                await self.r.readline()
        else:
            payload = await self.r.readexactly(length) if length else b""
        return status, payload


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def rss_mib(pid):
    if not pid:
        return None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)


async def load(host, port, base, sensors, per_sensor):
    batches = []
    by_sensor = {}
    for s, at, v in observations(sensors, per_sensor):
        by_sensor.setdefault(s, []).append({"type": "Property", "value": v, "observedAt": iso(at)})
    for s, items in by_sensor.items():
        for i in range(0, len(items), 2000):
            batches.append({"id": sensor_id(s), "type": TYPE, "temperature": items[i : i + 2000]})
    queue = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    errors = []

    async def worker():
        c = Conn(host, port)
        while not queue.empty():
            b = queue.get_nowait()
            status, payload = await c.request("POST", f"{base}/temporal/entities", b)
            if status not in (201, 204):
                errors.append((status, payload[:200].decode(errors="replace")))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(4)))
    took = time.perf_counter() - start
    if errors:
        raise SystemExit(f"load failed: {errors[:3]}")
    n = sensors * per_sensor
    return {"observations": n, "seconds": round(took, 1), "observations_per_s": round(n / took)}


QUERIES = {
    # name: (query string, origin ms, period ms, one sensor?)
    "daily, every sensor": (f"timerel=after&timeAt={T0_ISO}&aggrPeriodDuration=P1D", T0, DAY, False),
    "hourly, every sensor": (f"timerel=after&timeAt={T0_ISO}&aggrPeriodDuration=PT1H", T0, HOUR, False),
    "daily from 00:17:03, every sensor": (
        f"timerel=after&timeAt=2024-03-01T00:17:03Z&aggrPeriodDuration=P1D",
        T0 + 17 * MINUTE + 3000,
        DAY,
        False,
    ),
    "hourly, one sensor": (f"timerel=after&timeAt={T0_ISO}&aggrPeriodDuration=PT1H", T0, HOUR, True),
}
METHODS = ["totalCount", "avg", "min", "max"]


async def broker_query(host, port, base, q, one, sensors):
    c = Conn(host, port)
    if one:
        path = f"{base}/temporal/entities/{sensor_id(0)}?attrs=temperature&options=aggregatedValues&aggrMethods={','.join(METHODS)}&{q}"
    else:
        path = (
            f"{base}/temporal/entities?type={TYPE}&attrs=temperature&options=aggregatedValues"
            f"&aggrMethods={','.join(METHODS)}&limit={sensors}&{q}"
        )
    start = time.perf_counter()
    status, payload = await c.request("GET", path)
    took = (time.perf_counter() - start) * 1000
    if status != 200:
        raise SystemExit(f"{path}: {status} {payload[:300]!r}")
    c.w.close()
    return took, payload


def answer_buckets(payload, one):
    """{(sensor id, bucket start ms): {method: value}} from an answer."""
    body = json.loads(payload)
    entities = [body] if one else body
    out = {}
    for e in entities:
        for m in METHODS:
            for v, start, _ in e["temperature"][m]:
                out.setdefault((e["id"], parse_iso(start)), {})[m] = v
    return out


def duck_sql(origin, period, one):
    where = f"t >= {origin}" + (" AND sensor = 0" if one else "")
    return (
        f"SELECT sensor, (t - {origin}) // {period} AS k, count(*) AS n, avg(v) AS avg, "
        f"min(v) AS min, max(v) AS max FROM obs WHERE {where} GROUP BY ALL"
    )


def timed(run, repeat):
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - start) * 1000)
    return times, result


def figures(times):
    return {"p50_ms": round(pct(times, 50), 1), "p95_ms": round(pct(times, 95), 1), "max_ms": round(max(times), 1)}


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("broker")
    ap.add_argument("--sensors", type=int, default=100)
    ap.add_argument("--per-sensor", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--sqlite")
    a = ap.parse_args()
    u = urlsplit(a.broker)
    host, port, base = u.hostname, u.port, u.path.rstrip("/")
    out = {"sensors": a.sensors, "per_sensor": a.per_sensor, "repeat": a.repeat}
    out["rss_before_mib"] = rss_mib(a.pid)
    print(f"loading {a.sensors * a.per_sensor} observations", file=sys.stderr)
    out["load"] = await load(host, port, base, a.sensors, a.per_sensor)
    print(f"loaded: {out['load']}", file=sys.stderr)
    out["rss_after_load_mib"] = rss_mib(a.pid)

    import duckdb

    duck = duckdb.connect()
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        csv.writer(f).writerows(observations(a.sensors, a.per_sensor))
        path = f.name
    duck.execute(
        "CREATE TABLE obs AS SELECT * FROM read_csv(?, header=false, "
        "columns={'sensor': 'INTEGER', 't': 'BIGINT', 'v': 'DOUBLE'})",
        [path],
    )
    os.unlink(path)
    lite = sqlite3.connect(f"file:{a.sqlite}?mode=ro", uri=True) if a.sqlite else None

    out["queries"] = {}
    for name, (q, origin, period, one) in QUERIES.items():
        times = []
        payload = None
        for _ in range(a.repeat):
            took, payload = await broker_query(host, port, base, q, one, a.sensors)
            times.append(took)
        got = answer_buckets(payload, one)
        sql = duck_sql(origin, period, one)
        duck_times, want = timed(lambda: duck.execute(sql).fetchall(), a.repeat)
        mismatches = 0
        for sensor, k, n, avg, mn, mx in want:
            g = got.get((sensor_id(sensor), origin + k * period))
            if (
                g is None
                or g["totalCount"] != n
                or abs(g["avg"] - avg) > 1e-9 * max(1.0, abs(avg))
                or g["min"] != mn
                or g["max"] != mx
            ):
                mismatches += 1
        entry = {
            "observations": a.per_sensor if one else a.per_sensor * a.sensors,
            "buckets": len(want),
            "answer_bytes": len(payload),
            "broker": figures(times),
            "duckdb": figures(duck_times),
            "buckets_not_as_duckdb": mismatches + abs(len(got) - len(want)),
        }
        if lite:
            where = "at >= ?" + (" AND entity_id = ?" if one else "")
            args = [origin, period, origin] + ([sensor_id(0)] if one else [])
            raw = (
                "SELECT entity_id, (at - ?) / ? AS k, count(*), avg(num), min(num), max(num) "
                f"FROM ngsi_history WHERE {where} GROUP BY entity_id, k"
            )
            lite_times, _ = timed(lambda: lite.execute(raw, args).fetchall(), max(3, a.repeat // 5))
            entry["sqlite_group_by_instances"] = figures(lite_times)
        out["queries"][name] = entry
        print(f"{name}: {entry}", file=sys.stderr)
    out["rss_end_mib"] = rss_mib(a.pid)
    print(json.dumps(out, indent=1))


asyncio.run(main())
