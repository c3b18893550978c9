#!/usr/bin/env python3
"""Load on an NGSI-LD broker (issue 19's targets), standard library only.

    bench/ngsi-ld-load.py BROKER_URL [--entities 100000] [--seconds 20] [--in-flight 64] [--pid PID]

1. batch upsert: ENTITIES sensors (a number, a string, a point in Seoul)
   in batches of 1000 through POST /entityOperations/upsert;
2. single updates: PATCH /entities/{id}/attrs, IN_FLIGHT at once, for
   SECONDS;
3. queries: `q=` (type and a numeric range) and `near` geo-queries with
   limit 20, IN_FLIGHT at once, for SECONDS each;
and, with --pid, the broker process's resident memory after each step.
Prints one JSON object. Keep-alive HTTP/1.1 over asyncio, so that the
client is not what is measured (it is on the same cores all the same).
"""
import argparse
import asyncio
import json
import random
import time
from urllib.parse import urlsplit, quote

TYPE = "LoadSensor"


class Conn:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.r = self.w = None

    async def request(self, method, path, body=None, headers=None):
        if self.w is None:
            self.r, self.w = await asyncio.open_connection(self.host, self.port)
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(data)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        for k, v in (headers or {}).items():
            head.append(f"{k}: {v}")
        self.w.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await self.w.drain()
        status_line = await self.r.readline()
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v.strip())
        payload = await self.r.readexactly(length) if length else b""
        return status, payload


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p / 100))] * 1000, 2)


def rss_mib(pid):
    if not pid:
        return None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)


def entity(i):
    lon = 126.8 + (i * 7919 % 1000) / 1000 * 0.35
    lat = 37.45 + (i * 104729 % 1000) / 1000 * 0.2
    return {
        "id": f"urn:ngsi-ld:{TYPE}:{i}",
        "type": TYPE,
        "temperature": {"type": "Property", "value": round(10 + (i % 300) / 10, 1)},
        "district": {"type": "Property", "value": f"d{i % 25}"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}},
    }


async def timed_loop(host, port, in_flight, seconds, make):
    """Runs `make(i)` -> (method, path, body) from IN_FLIGHT connections."""
    latencies, errors, stop = [], 0, time.monotonic() + seconds
    counter = iter(range(10**12))

    async def worker():
        nonlocal errors
        c = Conn(host, port)
        while time.monotonic() < stop:
            method, path, body = make(next(counter))
            t0 = time.monotonic()
            try:
                status, _ = await c.request(method, path, body)
            except Exception:
                errors += 1
                c = Conn(host, port)
                continue
            latencies.append(time.monotonic() - t0)
            if status >= 400:
                errors += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.monotonic() - t0
    return {
        "requests": len(latencies), "errors": errors, "per_second": round(len(latencies) / elapsed),
        "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95), "p99_ms": pct(latencies, 99),
    }


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("broker")
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--pid", type=int)
    a = ap.parse_args()
    u = urlsplit(a.broker)
    base = u.path.rstrip("/") or "/ngsi-ld/v1"
    host, port = u.hostname, u.port or 80
    out = {"entities": a.entities, "in_flight": a.in_flight, "rss_mib_before": rss_mib(a.pid)}

    # 1. Batch upsert, 4 batches in flight.
    batches = [[entity(i) for i in range(s, min(s + 1000, a.entities))] for s in range(0, a.entities, 1000)]
    queue = list(enumerate(batches))
    errors = 0

    async def upserter():
        nonlocal errors
        c = Conn(host, port)
        while queue:
            _, b = queue.pop()
            status, _ = await c.request("POST", f"{base}/entityOperations/upsert", b)
            if status >= 300 and status != 204:
                errors += 1

    t0 = time.monotonic()
    await asyncio.gather(*(upserter() for _ in range(4)))
    took = time.monotonic() - t0
    out["batch_upsert"] = {"seconds": round(took, 2), "entities_per_second": round(a.entities / took), "failed_batches": errors}
    out["rss_mib_after_load"] = rss_mib(a.pid)

    # 2. Single updates.
    rnd = random.Random(19)

    def update(i):
        n = rnd.randrange(a.entities)
        return "PATCH", f"{base}/entities/{quote(f'urn:ngsi-ld:{TYPE}:{n}', safe=':')}/attrs", {
            "temperature": {"type": "Property", "value": round(rnd.uniform(-10, 40), 1)}}

    out["single_updates"] = await timed_loop(host, port, a.in_flight, a.seconds, update)

    # 3. q and geo queries.
    def q(i):
        lo = rnd.randrange(0, 390) / 10
        return "GET", f"{base}/entities?type={TYPE}&q=" + quote(f"temperature>={lo};temperature<{lo + 0.5}") + "&limit=20", None

    def near(i):
        lon, lat = 126.8 + rnd.random() * 0.35, 37.45 + rnd.random() * 0.2
        coords = quote(f"[{lon:.5f},{lat:.5f}]")
        return "GET", f"{base}/entities?type={TYPE}&georel=near;maxDistance==500&geometry=Point&coordinates={coords}&limit=20", None

    out["q_queries"] = await timed_loop(host, port, a.in_flight, a.seconds, q)
    out["near_queries"] = await timed_loop(host, port, a.in_flight, a.seconds, near)
    out["rss_mib_end"] = rss_mib(a.pid)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
