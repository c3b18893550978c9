#!/usr/bin/env python3
"""Crash trials: kill -9 of the hub (the whole demo: hub and its nodes) and
of a node alone, in the middle of work, then start again and check that
nothing acknowledged was lost, nothing was done twice, and the ledger
verifies.

  security/crash.py [--civic BIN] [--trials N] [--backend sqlite|postgres|both]
                    [--scenario NAME ...]

Scenarios:
  audit      support tickets opened by many clients at once (audited writes)
  approvals  data requests filed, then decided by the approver and the police
  transfers  MyData transfers asked for and consented to (delivery in flight)
  close      an outbreak response closed (nodes purge, keys destroyed)
  import     `civic node import` of a telco's pings, killed and run again
  append     batches appended to a serving node's ingest listener

A write the hub or node answered with success is "acknowledged": after the
restart it must be there, once. A write that was cut off may or may not be
there, but never twice and never half. After each trial the ledger and the
exchange log are verified with `civic audit verify`.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokens import sign_in  # noqa: E402

PG_URL = os.environ.get("CIVIC_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


# ---------------------------------------------------------------- databases


class Database:
    """The hub's database, read directly for the checks."""

    def __init__(self, backend, data_dir):
        self.backend = backend
        self.data_dir = data_dir
        self.schema = None
        if backend == "postgres":
            self.schema = f"crash_{os.getpid()}_{random.randrange(1 << 30)}"
            self.psql(f"CREATE SCHEMA {self.schema}")

    @property
    def url(self):
        if self.backend == "sqlite":
            return None
        return f"{PG_URL}?options=-csearch_path%3D{self.schema}"

    def psql(self, sql):
        out = subprocess.run(
            ["psql", PG_URL, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise Failure(f"psql: {out.stderr.strip()}")
        return out.stdout

    def rows(self, sql, params=()):
        if self.backend == "sqlite":
            con = sqlite3.connect(os.path.join(self.data_dir, "civic.db"), timeout=30)
            try:
                return con.execute(sql, params).fetchall()
            finally:
                con.close()
        # psql has no parameters: the checks only pass numbers and hex ids.
        for p in params:
            sql = sql.replace("?", f"'{p}'" if isinstance(p, str) else str(p), 1)
        text = self.psql(f"SET search_path TO {self.schema}; {sql}")
        lines = [l for l in text.splitlines() if l and l != "SET"]
        return [tuple(l.split("|")) for l in lines]

    def count(self, sql, params=()):
        return int(self.rows(sql, params)[0][0])

    def counts(self, table, column, values):
        """How many rows of `table` have each of `values` in `column` (one
        query for all of them)."""
        found = {}
        values = list(values)
        for at in range(0, len(values), 500):
            chunk = values[at : at + 500]
            listed = ",".join(f"'{v}'" if isinstance(v, str) else str(int(v)) for v in chunk)
            for value, n in self.rows(
                f"SELECT {column}, COUNT(*) FROM {table} WHERE {column} IN ({listed}) GROUP BY {column}"
            ):
                found[str(value)] = int(n)
        return {str(v): found.get(str(v), 0) for v in values}

    def drop(self):
        if self.schema:
            self.psql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


# ---------------------------------------------------------------- processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    """`civic demo`: the hub and its nodes in one process."""

    def __init__(self, civic, data_dir, db):
        self.civic, self.data_dir, self.db = civic, data_dir, db
        self.proc = None
        self.url = None

    def start(self):
        cmd = [self.civic, "demo", "--addr", "127.0.0.1:0", "--data-dir", self.data_dir]
        if self.db.url:
            cmd += ["--database-url", self.db.url]
        log = open(os.path.join(self.data_dir, "demo.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
        deadline = time.time() + 600
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            if "running at " in line:
                self.url = line.split("running at ")[1].strip()
                break
            if time.time() > deadline:
                break
        check(self.url, "the demo did not start")
        # Drain what it prints, so it never writes to a full pipe.
        threading.Thread(target=lambda p=self.proc: [_ for _ in p.stdout], daemon=True).start()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()

    def verify(self):
        cmd = [self.civic, "audit", "verify", "--data-dir", self.data_dir]
        if self.db.url:
            cmd += ["--database-url", self.db.url]
        out = subprocess.run(cmd, capture_output=True, text=True)
        check(out.returncode == 0, f"audit verify: {out.stderr.strip()}")


def call(url, method="GET", token=None, body=None, timeout=60):
    """(status, json or None, request id); a cut connection is status 0."""
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None), r.headers.get("x-request-id")
    except urllib.error.HTTPError as e:
        return e.code, None, e.headers.get("x-request-id")
    except (OSError, urllib.error.URLError):
        return 0, None, None


def hammer(worker, threads, kill_after, demo):
    """Runs `worker(i, stop)` in threads and kills the demo after
    `kill_after` seconds; returns once every thread has seen the kill."""
    stop = threading.Event()
    pool = [threading.Thread(target=worker, args=(i, stop)) for i in range(threads)]
    for t in pool:
        t.start()
    time.sleep(kill_after)
    demo.kill()
    stop.set()
    for t in pool:
        t.join()


class Session:
    """The demo's users signed in once for the whole run (sessions outlive
    restarts: they are in the database)."""

    def __init__(self, demo):
        creds = json.load(open(os.path.join(demo.data_dir, "demo-credentials.json")))
        self.logins = {l["username"]: l for l in creds}
        self.tokens = {}
        self.demo = demo

    def token(self, username):
        if username not in self.tokens:
            for _ in range(3):
                try:
                    self.tokens[username] = sign_in(self.demo.url, self.logins[username])
                    break
                except urllib.error.HTTPError:
                    time.sleep(31)  # the code of this step was used: the next one
        return self.tokens[username]


# ---------------------------------------------------------------- hub scenarios


def audit_trial(demo, db, session, rng):
    token = session.token("investigator.seoul")
    acked = []
    lock = threading.Lock()

    def worker(i, stop):
        n = 0
        while not stop.is_set():
            n += 1
            body = {"kind": "other", "subject": f"crash {i}-{n}", "text": "opened during a crash trial"}
            status, answer, rid = call(f"{demo.url}/api/v1/support/tickets", "POST", token, body)
            if status == 201:
                with lock:
                    acked.append((answer["id"], rid))

    hammer(worker, 8, rng.uniform(0.3, 2.5), demo)
    demo.start()
    tickets = db.counts("support_tickets", "id", [t for t, _ in acked])
    records = db.counts("audit_records", "request_id", [r for _, r in acked])
    for ticket, rid in acked:
        check(tickets[str(ticket)] == 1, f"acknowledged ticket {ticket} is lost")
        check(records[rid] == 1, f"acknowledged request {rid} is on the ledger {records[rid]} times")
    return len(acked)


def seoul_cases(demo, token):
    status, responses, _ = call(f"{demo.url}/api/v1/responses", token=token)
    check(status == 200, f"responses: {status}")
    open_ = [r for r in responses if r["status"] == "open"]
    check(open_, "no open response")
    status, cases, _ = call(f"{demo.url}/api/v1/responses/{open_[0]['id']}/cases", token=token)
    check(status == 200 and cases, f"cases: {status}")
    return [c["id"] for c in cases]


def approvals_trial(demo, db, session, rng):
    inv, approver, police = (session.token(u) for u in ("investigator.seoul", "approver", "police"))
    cases = seoul_cases(demo, inv)
    acked = []
    lock = threading.Lock()

    def worker(i, stop):
        while not stop.is_set():
            case = rng.choice(cases)
            body = {"items": ["location_pings"], "reason": "crash trial", "contacts": False}
            status, req, _ = call(f"{demo.url}/api/v1/cases/{case}/data-requests", "POST", inv, body)
            if status != 201 or stop.is_set():
                continue
            for token, duty in ((approver, "approver"), (police, "police_location_officer")):
                status, _, rid = call(
                    f"{demo.url}/api/v1/data-requests/{req['id']}/decision", "POST", token,
                    {"approve": True})
                if status != 200:
                    break
                with lock:
                    acked.append((req["id"], duty, rid))

    hammer(worker, 4, rng.uniform(0.5, 4.0), demo)
    demo.start()
    decided = {(str(r), d) for r, d in db.rows("SELECT request_id, duty FROM decisions")}
    records = db.counts("audit_records", "request_id", [r for _, _, r in acked])
    for request, duty, rid in acked:
        check((str(request), duty) in decided,
              f"acknowledged decision {duty} on request {request} is lost")
        check(records[rid] >= 1, f"acknowledged decision {rid} is not on the ledger")
    return len(acked)


def agency_key():
    x = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    canonical = f'{{"crv":"X25519","kty":"OKP","x":"{x}"}}'.encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "X25519", "x": x, "kid": kid}


def transfers_trial(demo, db, session, rng):
    agency, citizen = session.token("mydata.agency"), session.token("citizen")
    subject = session.logins["citizen"]["duty"].split(":", 1)[1]
    status, agreements, _ = call(f"{demo.url}/api/v1/mydata/agreements", token=agency)
    check(status == 200, f"agreements: {status}")
    approved = [a for a in agreements if a["status"] == "approved"]
    check(approved, "no approved agreement")
    agreement = approved[0]
    acked = []
    lock = threading.Lock()

    def worker(i, stop):
        while not stop.is_set():
            body = {"agreement_id": agreement["id"], "subject": subject,
                    "items": agreement["items"], "recipient_key": agency_key()}
            status, t, _ = call(f"{demo.url}/api/v1/mydata/transfers", "POST", agency, body)
            if status != 201 or stop.is_set():
                continue
            status, _, rid = call(f"{demo.url}/api/v1/mydata/transfers/{t['id']}/consent", "POST",
                                  citizen, {"mode": "once"})
            if status == 200:
                with lock:
                    acked.append((t["id"], rid))

    hammer(worker, 4, rng.uniform(0.5, 4.0), demo)
    demo.start()
    states = {str(i): s for i, s in db.rows("SELECT id, state FROM mydata_transfers")}
    records = db.counts("audit_records", "request_id", [r for _, r in acked])
    for transfer, rid in acked:
        state = states.get(str(transfer))
        check(state in ("consented", "delivered", "fetched"),
              f"acknowledged consent to transfer {transfer} is lost ({state})")
        check(records[rid] >= 1, f"acknowledged consent {rid} is not on the ledger")
    # Each transfer is delivered at most once, however often its delivery
    # was cut off and retried.
    twice = db.rows("SELECT transfer_id FROM mydata_deliveries GROUP BY transfer_id HAVING COUNT(*) > 1")
    check(not twice, f"transfers delivered twice: {twice}")
    return len(acked)


def close_trial(demo, db, session, rng):
    admin = session.token("admin")
    status, responses, _ = call(f"{demo.url}/api/v1/responses", token=admin)
    open_ = [r for r in responses if r["status"] == "open"]
    check(open_, "no open response")
    response = open_[0]["id"]
    acked = []

    def worker(i, stop):
        status, _, _ = call(f"{demo.url}/api/v1/responses/{response}/close", "POST", admin, {})
        if status == 200:
            acked.append(response)

    # A close takes a few tenths of a second (every node purges first).
    hammer(worker, 1, rng.uniform(0.0, 0.6), demo)
    demo.start()
    closed = db.rows("SELECT status FROM responses WHERE id = ?", (response,))[0][0] == "closed"
    check(not acked or closed, f"acknowledged close of response {response} is lost")
    keys = db.count("SELECT COUNT(*) FROM response_keys WHERE response_id = ?", (response,))
    certs = db.count("SELECT COUNT(*) FROM deletion_certificates WHERE response_id = ?", (response,))
    cases = db.count("SELECT COUNT(*) FROM cases WHERE response_id = ?", (response,))
    if closed:
        check((keys, certs, cases) == (0, 1, 0),
              f"closed response {response} is half closed: keys {keys}, certificates {certs}, cases {cases}")
    else:
        # Cut off before its transaction: still whole, and it closes now.
        check(keys == 1 and certs == 0, f"open response {response}: keys {keys}, certificates {certs}")
        status, _, _ = call(f"{demo.url}/api/v1/responses/{response}/close", "POST", admin, {})
        check(status == 200, f"closing response {response} again: {status}")
        check(db.count("SELECT COUNT(*) FROM response_keys WHERE response_id = ?", (response,)) == 0,
              "the key outlived the close")
    # The next trial needs an open response: a restart seeds a new one.
    demo.stop()
    demo.start()
    return len(acked)


HUB_SCENARIOS = {
    "audit": audit_trial,
    "approvals": approvals_trial,
    "transfers": transfers_trial,
    "close": close_trial,
}


def run_hub(civic, backend, scenario, trials, rng, work):
    data_dir = os.path.join(work, f"hub-{backend}-{scenario}")
    os.makedirs(data_dir, exist_ok=True)
    db = Database(backend, data_dir)
    demo = Demo(civic, data_dir, db)
    acked = 0
    try:
        demo.start()
        session = Session(demo)
        for trial in range(trials):
            acked += HUB_SCENARIOS[scenario](demo, db, session, rng)
            demo.stop()
            demo.verify()
            demo.start()
    finally:
        if demo.proc and demo.proc.poll() is None:
            demo.stop()
        db.drop()
    return acked


# ---------------------------------------------------------------- node scenarios


def node_rows(civic, node_dir):
    out = subprocess.run([civic, "node", "info", "--data-dir", node_dir, "--format", "json"],
                         capture_output=True, text=True)
    check(out.returncode == 0, f"node info: {out.stderr.strip()}")
    return json.loads(out.stdout)["rows"]


def city_files(civic, work):
    """A small synthetic city's towers and one telco's pings."""
    city = os.path.join(work, "city")
    if not os.path.exists(os.path.join(city, "towers.csv")):
        out = subprocess.run([civic, "sim", "generate", "--out", city, "--people", "3000", "--days", "7"],
                             capture_output=True, text=True)
        check(out.returncode == 0, f"sim generate: {out.stderr.strip()}")
    pings = os.path.join(city, "pings-skt.csv")
    rows = sum(1 for _ in open(pings)) - 1
    return os.path.join(city, "towers.csv"), pings, rows


IMPORT_SECONDS = {}


def import_seconds(civic, work, towers, pings):
    """How long a whole import takes here (measured once a binary), so
    that kills land during the import, not after it."""
    if civic not in IMPORT_SECONDS:
        node_dir = tempfile.mkdtemp(dir=work)
        started = time.time()
        subprocess.run([civic, "node", "import", "--data-dir", node_dir, "--towers", towers,
                        "--pings", pings], capture_output=True, check=True)
        IMPORT_SECONDS[civic] = time.time() - started
        shutil.rmtree(node_dir)
    return IMPORT_SECONDS[civic]


def import_trial(civic, work, rng):
    towers, pings, rows = city_files(civic, work)
    whole = import_seconds(civic, work, towers, pings)
    node_dir = tempfile.mkdtemp(dir=work)
    cmd = [civic, "node", "import", "--data-dir", node_dir, "--towers", towers, "--pings", pings]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Mostly during the import; now and then just after it.
    time.sleep(rng.uniform(0.0, whole * 1.1))
    proc.send_signal(signal.SIGKILL)
    finished_before = proc.wait() == 0
    # Run again, as an operator would: the whole file, once.
    out = subprocess.run(cmd, capture_output=True, text=True)
    check(out.returncode == 0, f"import again: {out.stderr.strip()}")
    check(node_rows(civic, node_dir) == rows, f"after a kill and a re-run: {node_rows(civic, node_dir)} rows, not {rows}")
    out = subprocess.run(cmd, capture_output=True, text=True)
    check(out.returncode == 0 and "already imported" in out.stdout, f"a third run: {out.stdout}{out.stderr}")
    check(node_rows(civic, node_dir) == rows, "a third run changed the rows")
    shutil.rmtree(node_dir)
    return int(finished_before)


class IngestNode:
    """A node enrolled with a demo hub, serving with an ingest listener."""

    def __init__(self, civic, work):
        self.civic, self.work = civic, work
        self.dir = os.path.join(work, "node")
        data = os.path.join(work, "hub-for-node")
        os.makedirs(data, exist_ok=True)
        self.db = Database("sqlite", data)
        self.demo = Demo(civic, data, self.db)
        self.demo.start()
        env = dict(os.environ, CIVIC_DATA_DIR=data)
        out = subprocess.run([civic, "admin", "node", "token", "--institution", "5", "--name", "node-crash"],
                             capture_output=True, text=True, env=env)
        check(out.returncode == 0, f"node token: {out.stderr.strip()}")
        out = subprocess.run([civic, "node", "enrol", "--hub", self.demo.url, "--token", out.stdout.strip(),
                              "--name", "node-crash", "--dir", self.dir], capture_output=True, text=True)
        check(out.returncode == 0, f"node enrol: {out.stderr.strip()}")
        self.ingest = free_port()
        toml = os.path.join(self.dir, "node.toml")
        text = open(toml).read().replace("addr = ", f'ingest_addr = "127.0.0.1:{self.ingest}"\naddr = ', 1)
        text = "\n".join(f'addr = "127.0.0.1:{free_port()}"' if l.startswith("addr = ") else l
                         for l in text.splitlines())
        open(toml, "w").write(text)
        self.config = toml
        out = subprocess.run([civic, "node", "ingest-token", "--config", toml, "--name", "loader"],
                             capture_output=True, text=True)
        check(out.returncode == 0, f"ingest token: {out.stderr.strip()}")
        self.token = out.stdout.strip()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.civic, "node", "serve", "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.ingest), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise Failure("the node did not start")

    def append(self, towers, pings):
        return subprocess.Popen(
            [self.civic, "node", "append", "--url", f"https://127.0.0.1:{self.ingest}",
             "--ca", os.path.join(self.dir, "ca.pem"), "--places", towers, "--events", pings,
             "--batch-rows", "5000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, CIVIC_INGEST_TOKEN=self.token))

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait()
        self.demo.stop()


def append_trial(node, work, rng):
    towers, pings, rows = city_files(node.civic, work)
    node.start()
    client = node.append(towers, pings)
    time.sleep(rng.uniform(0.1, 3.0))
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait()
    client.wait()
    # Start again and send the whole file again: the batches the node took
    # are recognised by their ids, the rest appended.
    node.start()
    out = node.append(towers, pings).communicate()
    node.proc.send_signal(signal.SIGTERM)
    node.proc.wait()
    check(b"appended" in out[0], f"append again: {out[1].decode().strip()}")
    count = node_rows(node.civic, node.dir)
    check(count == rows, f"after a kill and a resend: {count} rows, not {rows}")


# ---------------------------------------------------------------- main


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_civic = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(here, "..", "target")),
                                 "debug", "civic")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--civic", default=default_civic)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--scenario", nargs="*", default=list(HUB_SCENARIOS) + ["import", "append"])
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    work = tempfile.mkdtemp(prefix="civic-crash-")
    print(f"crash trials (seed {seed}) in {work}")
    failed = False
    try:
        for scenario in args.scenario:
            runs = [(b, scenario) for b in backends] if scenario in HUB_SCENARIOS else [(None, scenario)]
            for backend, name in runs:
                started = time.time()
                label = f"{name} ({backend})" if backend else name
                try:
                    if name in HUB_SCENARIOS:
                        acked = run_hub(args.civic, backend, name, args.trials, rng, work)
                        said = f"{acked} acknowledged writes checked: 0 lost, 0 twice; the ledger verified"
                    elif name == "import":
                        done = sum(import_trial(args.civic, work, rng) for _ in range(args.trials))
                        said = (f"each time the file's rows exactly once after a re-run "
                                f"({done} imports had finished before the kill)")
                    else:
                        node = IngestNode(args.civic, work)
                        try:
                            for _ in range(args.trials):
                                append_trial(node, work, rng)
                        finally:
                            node.close()
                        said = "each time the file's rows exactly once after a restart and a resend"
                    print(f"  {label}: {args.trials} kills; {said} ({time.time() - started:.0f} s)")
                except Failure as e:
                    failed = True
                    print(f"  {label}: FAILED: {e}", file=sys.stderr)
    finally:
        if not failed:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
