#!/usr/bin/env python3
"""What SQLite alone can do with the broker's write layout on this machine.

Issue 19 asks for 10,000 single-attribute updates a second. Each update
the broker commits writes three rows in random places of their B-trees:
the instance in `ngsi_history` (with its two indexes), its hour in
`ngsi_rollups`, the entity's document in `ngsi_entities`. This replays
exactly those statements (schema of crates/citydata/src/store/schema.rs,
WAL, synchronous=FULL, secure_delete=ON as crates/store/src/sqlite.rs
sets them) over 100,000 entities in transactions of 64 updates (the
load driver's 64 in flight), through Python's sqlite3 with every row
built before the clock starts, and prints the updates a second with all
three writes and with each left out. No broker, no HTTP, no JSON-LD:
the ceiling of the layout itself.

    python3 bench/ngsi-ld-sqlite-ceiling.py
"""
import json
import os
import random
import sqlite3
import tempfile
import time

SCHEMA = """
CREATE TABLE ngsi_entities (tenant TEXT NOT NULL, id TEXT NOT NULL, seq BIGINT NOT NULL,
    doc TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE ngsi_history (tenant TEXT NOT NULL, entity_id TEXT NOT NULL, types TEXT NOT NULL,
    attr TEXT NOT NULL, at BIGINT NOT NULL, instance TEXT NOT NULL, recorded_at BIGINT NOT NULL,
    num DOUBLE PRECISION);
CREATE INDEX ngsi_history_by_entity ON ngsi_history(tenant, entity_id, attr, at);
CREATE INDEX ngsi_history_by_recording ON ngsi_history(recorded_at);
CREATE TABLE ngsi_rollups (tenant TEXT NOT NULL, entity_id TEXT NOT NULL, attr TEXT NOT NULL,
    hour BIGINT NOT NULL, n BIGINT NOT NULL, nn BIGINT NOT NULL, sum DOUBLE PRECISION NOT NULL,
    sumsq DOUBLE PRECISION NOT NULL, min DOUBLE PRECISION, max DOUBLE PRECISION,
    recorded_min BIGINT NOT NULL, recorded_max BIGINT NOT NULL,
    PRIMARY KEY (tenant, entity_id, attr, hour));
CREATE INDEX ngsi_rollups_by_recording ON ngsi_rollups(recorded_min);
"""
ENTITIES = 100_000
GROUP = 64
GROUPS = 300


def doc(i):
    v = "https://uri.etsi.org/ngsi-ld/default-context/"
    return json.dumps({
        "id": f"urn:ngsi-ld:LoadSensor:{i}", "type": [v + "LoadSensor"],
        "attrs": {
            v + "temperature": [{"type": "Property", "value": random.random() * 30,
                                 "createdAt": 1, "modifiedAt": 2}],
            v + "district": [{"type": "Property", "value": f"d{i % 25}"}],
            "https://uri.etsi.org/ngsi-ld/location": [
                {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [126.9, 37.5]}}],
        },
        "createdAt": 1, "modifiedAt": 2})


def run(leave_out=()):
    with tempfile.TemporaryDirectory() as d:
        c = sqlite3.connect(os.path.join(d, "ceiling.db"), isolation_level=None)
        for p in ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON"):
            c.execute(f"PRAGMA {p}")
        c.executescript(SCHEMA)
        c.execute("BEGIN")
        for i in range(ENTITIES):
            eid = f"urn:ngsi-ld:LoadSensor:{i}"
            c.execute("INSERT INTO ngsi_entities VALUES ('', ?, ?, ?)", (eid, i, doc(i)))
            c.execute("INSERT INTO ngsi_history VALUES ('', ?, 't', 'temperature', 1000, "
                      "'{\"type\":\"Property\",\"value\":1.0}', 1000, 1.0)", (eid,))
        c.execute("COMMIT")
        work, now = [], 2000
        for _ in range(GROUPS):
            now += 1
            ids = [f"urn:ngsi-ld:LoadSensor:{random.randrange(ENTITIES)}" for _ in range(GROUP)]
            work.append((
                [(e, now, now) for e in ids],
                [(e, now, now) for e in ids],
                [(e, doc(int(e.rsplit(":", 1)[1]))) for e in ids]))
        start = time.perf_counter()
        for history, rollups, entities in work:
            c.execute("BEGIN IMMEDIATE")
            if "history" not in leave_out:
                c.executemany("INSERT INTO ngsi_history VALUES ('', ?, 't', 'temperature', ?, "
                              "'{\"type\":\"Property\",\"value\":1.0}', ?, 1.0)", history)
            if "rollups" not in leave_out:
                c.executemany(
                    "INSERT INTO ngsi_rollups VALUES ('', ?, 'temperature', 0, 1, 1, 1.0, 1.0, "
                    "1.0, 1.0, ?, ?) ON CONFLICT (tenant, entity_id, attr, hour) DO UPDATE SET "
                    "n = n + 1, nn = nn + 1, sum = sum + 1, recorded_max = excluded.recorded_max",
                    rollups)
            if "documents" not in leave_out:
                c.executemany("INSERT INTO ngsi_entities VALUES ('', ?, 0, ?) ON CONFLICT "
                              "(tenant, id) DO UPDATE SET doc = excluded.doc", entities)
            c.execute("COMMIT")
        c.close()
        return GROUPS * GROUP / (time.perf_counter() - start)


if __name__ == "__main__":
    print(f"sqlite {sqlite3.sqlite_version}, {ENTITIES} entities, {GROUP} updates a transaction")
    for leave_out in ((), ("history",), ("rollups",), ("documents",),
                      ("rollups", "documents"), ("history", "documents"), ("history", "rollups")):
        kept = [w for w in ("history", "rollups", "documents") if w not in leave_out]
        print(f"{' + '.join(kept):32} {run(leave_out):8,.0f} updates/s", flush=True)
