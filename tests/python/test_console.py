"""The web console in a real browser: headless Chromium (Debian's
`chromium` package) driven by playwright-core from npm
(tests/browser/console.mjs) logs in, sees the IoT demo's job graph with
its operators, runs a query and sees its rows, sees a planning error with
its position, streams a subscription, and browses the catalog. The JSON
calls behind it are checked here too: 401 without a session, 404 for
unknown routes, and no job or table shown to a user the server would
refuse. Screenshots are kept in target/test-artifacts/console/."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    PASSWORD,
    REPO_ROOT,
    USER,
    adbc_connect,
    query,
    wait_for,
)
from test_metrics import metrics_port

BROWSER_DIR = REPO_ROOT / "tests" / "browser"
CHROMIUM = Path("/usr/bin/chromium")


def artifacts_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    d = target / "test-artifacts" / "console"
    d.mkdir(parents=True, exist_ok=True)
    return d


def demo_statements(out_dir: Path) -> list:
    """The IoT demo's statements (examples/iot/pipeline.sql), one per
    request, writing under `out_dir` and reading at 4,000 rows a second so
    that the job is still running while the browser looks at it."""
    text = (REPO_ROOT / "examples" / "iot" / "pipeline.sql").read_text()
    text = text.replace("'target/iot-demo/", f"'{out_dir}/")
    text = text.replace("'examples/iot/", f"'{REPO_ROOT}/examples/iot/")
    text = text.replace("'number-of-rows' = '400000',", "'number-of-rows' = '400000', 'rows-per-second' = '4000',")
    assert "rows-per-second" in text
    statements, current, in_block = [], [], False
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("--")):
            continue
        current.append(line)
        if stripped.upper() == "BEGIN":
            in_block = True
        if stripped.endswith(";") and (not in_block or stripped.upper() == "END;"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current, in_block = [], False
    return statements


class Console:
    """A console session through urllib, with its own cookies."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def call(self, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method="GET" if body is None else "POST")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "{}")


@pytest.fixture(scope="module")
def demo(start_server, tmp_path_factory):
    """A server running the IoT demo's job as the administrator."""
    base = tmp_path_factory.mktemp("console")
    server = start_server(base / "server", "console")
    port = metrics_port(server)
    root = adbc_connect(server.port, user=ADMIN, password=ADMIN_PASSWORD)
    job = None
    for stmt in demo_statements(base / "iot-demo"):
        result = query(root, stmt)
        if stmt.startswith("EXECUTE STATEMENT SET"):
            job = result.column(0)[0].as_py()
    assert job and job.startswith("job-"), job
    # An endless table, for a subscription from the editor.
    query(
        root,
        "CREATE TABLE ticks (event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE) "
        "WITH ('connector' = 'datagen', 'rows-per-second' = '50')",
    )
    try:
        yield server, port, job
    finally:
        root.close()


def test_console_api_needs_a_session_and_shows_only_what_the_user_may_see(demo):
    server, port, job = demo
    anonymous = Console(port)
    # No session: every /api/ call is 401; the page itself loads.
    for path in ["/api/jobs", f"/api/jobs/{job}", "/api/me"]:
        status, body = anonymous.call(path)
        assert status == 401, (path, status, body)
    status, body = anonymous.call("/api/sql", {"sql": "SELECT 1"})
    assert status == 401 and "log in" in body["error"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        page = r.read().decode()
    assert r.status == 200 and "/assets/app.js" in page
    # Unknown routes and console files are 404.
    for path in ["/nope", "/api/nope", "/assets/nope.js"]:
        status, body = anonymous.call(path)
        assert status == 404 and "error" in body, (path, status)
    # A wrong password is refused and logged.
    status, body = anonymous.call("/api/login", {"user": USER, "password": "wrong"})
    assert status == 401
    # Another name pointed at the loopback address (DNS rebinding) is
    # refused; localhost is fine.
    for host, expected in [("evil.example", 421), (f"localhost:{port}", 200)]:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        assert status == expected, (host, status)

    # alice is not an administrator: the administrator's job and tables are
    # not hers to see.
    alice = Console(port)
    status, body = alice.call("/api/login", {"user": USER, "password": PASSWORD})
    assert status == 200 and body["user"] == USER
    status, body = alice.call("/api/jobs")
    assert status == 200 and [j["id"] for j in body["jobs"]] == []
    status, body = alice.call(f"/api/jobs/{job}")
    assert status == 404
    status, body = alice.call("/api/sql", {"sql": "SELECT * FROM gold_hourly"})
    assert status == 403 and "SELECT" in body["error"] and "gold_hourly" in body["error"], body
    assert (body["line"], body["column"]) == (1, 15), body
    status, body = alice.call("/api/sql", {"sql": "SELECT table_name FROM system.tables"})
    assert status == 200 and ["gold_hourly"] not in body["rows"], body

    root = Console(port)
    status, _ = root.call("/api/login", {"user": ADMIN, "password": ADMIN_PASSWORD})
    assert status == 200
    status, body = root.call(f"/api/jobs/{job}")
    assert status == 200 and body["owner"] == ADMIN
    names = [o["name"] for o in body["graph"]["operators"]]
    assert any(n.startswith("source: sensor_readings") for n in names), names
    assert any("sink: gold_hourly" in n for n in names), names
    # A statement's error carries its position.
    status, body = root.call("/api/sql", {"sql": "SELECT nope\nFROM gold_hourly"})
    assert status == 400 and (body["line"], body["column"]) == (1, 8), body

    # The login, the refused read and the statements are in the audit log.
    status, body = root.call(
        "/api/sql",
        {"sql": "SELECT user_name, action, outcome FROM system.access.audit WHERE user_name = 'alice'"},
    )
    assert status == 200
    assert ["alice", "LOGIN", "failed"] in body["rows"] and ["alice", "SELECT", "denied"] in body["rows"], body


def test_a_real_browser_logs_in_sees_the_demo_graph_and_runs_queries(demo):
    server, port, job = demo
    assert CHROMIUM.exists(), "scripts/setup.sh installs Debian's chromium"
    assert (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), "scripts/setup.sh runs npm ci in tests/browser"
    shots = artifacts_dir()
    for old in shots.glob("*.png"):
        old.unlink()
    env = dict(
        os.environ,
        CONSOLE_URL=f"http://127.0.0.1:{port}/",
        CONSOLE_USER=ADMIN,
        CONSOLE_PASSWORD=ADMIN_PASSWORD,
        CONSOLE_JOB=job,
        CONSOLE_QUERY="SELECT region, COUNT(*) AS devices FROM devices GROUP BY region",
        CONSOLE_BAD_QUERY="SELECT region,\n  no_such_column FROM devices",
        CONSOLE_SUBSCRIPTION="SELECT device_id, temperature FROM ticks",
        CONSOLE_TABLE="sensor_readings",
        SCREENSHOTS=str(shots),
    )
    done = subprocess.run(
        ["node", str(BROWSER_DIR / "console.mjs")],
        cwd=BROWSER_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "failure" not in seen, seen.get("failure") + "\nsteps done: " + ", ".join(seen["steps"])
    assert seen["pageErrors"] == [], seen["pageErrors"]
    assert "wrong user name or password" in seen["wrongPassword"]
    assert ADMIN in seen["who"]
    # The job list has the demo's job, running.
    mine = [r for r in seen["jobs"] if r[0] == job]
    assert mine and mine[0][1] == "RUNNING", seen["jobs"]
    # Its graph: every operator named, sources to sinks, with edges.
    ops = seen["operators"]
    assert any(o.startswith("source: sensor_readings") for o in ops), ops
    for sink in ["gold_hourly", "silver_readings", "device_sessions", "outage_alerts"]:
        assert any(o == f"sink: {sink}" or o.startswith(f"sink: {sink}") for o in ops), (sink, ops)
    assert seen["edges"] >= len(ops) - 3, seen
    assert all("rows/s" in t and "backpressured" in t for t in seen["operatorText"]), seen["operatorText"]
    assert seen["subtasks"] == 2 and "2 subtasks" in seen["operatorTitle"], seen
    # The query's rows: the devices per region of examples/iot/devices.csv.
    expected = {}
    for line in (REPO_ROOT / "examples" / "iot" / "devices.csv").read_text().splitlines()[1:]:
        region = line.split(",")[1]
        expected[region] = expected.get(region, 0) + 1
    assert seen["queryColumns"] == ["region", "devices"], seen
    assert {r[0]: int(r[1]) for r in seen["queryRows"]} == expected, seen["queryRows"]
    # The error names the column and its position, with a caret.
    assert "line 2, column 3" in seen["queryError"] and "no_such_column" in seen["queryError"], seen["queryError"]
    assert "^" in seen["queryError"]
    assert seen["streamed"] >= 3 and "live" in seen["streamStatus"], seen
    assert "sensor_readings" in seen["catalogTables"], seen["catalogTables"]
    by_column = {r[0]: r for r in seen["catalogColumns"]}
    assert by_column["device_id"][1] == "STRING" and "pii=true" in by_column["device_id"][4], by_column
    assert seen["catalogLineage"] > 0
    for name in ["console-jobs.png", "console-job-graph.png", "console-sql.png", "console-catalog.png"]:
        assert (shots / name).stat().st_size > 10_000, name
    print(f"screenshots in {shots}")


def test_runnel_run_serves_the_scripts_jobs_and_metrics(runnel_bin, tmp_path):
    """`runnel run FILE --http-listen ADDR`: the console's calls and
    /metrics show the script's job while it runs (no login: the script's
    user sees its own jobs); there is no SQL editor there."""
    script = tmp_path / "slow.sql"
    script.write_text(
        "CREATE TABLE ticks (event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE) "
        "WITH ('connector' = 'datagen', 'rows-per-second' = '100', 'number-of-rows' = '1500');\n"
        "CREATE TABLE nowhere (device_id STRING,\n"
        "  CONSTRAINT has_id EXPECT (device_id IS NOT NULL) ON VIOLATION DROP ROW)\n"
        "WITH ('connector' = 'blackhole');\n"
        "INSERT INTO nowhere SELECT device_id FROM ticks;\n"
    )
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        run = subprocess.Popen(
            [str(runnel_bin), "run", str(script), "--http-listen", "127.0.0.1:0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        found = wait_for(
            "the console line",
            lambda: re.search(r"console at http://127\.0\.0\.1:(\d+)/", log.read_text()),
            timeout=60,
        )
        console = Console(int(found.group(1)))
        status, me = console.call("/api/me")
        assert status == 200 and me["script"] is True
        status, body = wait_for(
            "the job to read rows",
            lambda: (r := console.call("/api/jobs/job-1"))[0] == 200 and r[1]["rows_read"] > 0 and r,
            timeout=30,
        )
        assert body["running"] and body["statement"] == "INSERT INTO nowhere SELECT device_id FROM ticks"
        names = [o["name"] for o in body["graph"]["operators"]]
        assert names[0] == "source: ticks" and names[-1] == "sink: nowhere", names
        with urllib.request.urlopen(console.base + "/metrics", timeout=10) as r:
            text = r.read().decode()
        rows = re.search(r'^runnel_job_rows_read_total\{job_id="job-1"\} (\S+)$', text, re.M)
        assert rows and float(rows.group(1)) > 0, text
        assert re.search(r'^runnel_operator_rows_out_total\{job_id="job-1",operator_id="0",operator="source: ticks",subtask="0"\} ', text, re.M), text
        # The sink table's expectation counts the rows written.
        passed = re.compile(
            r'^runnel_expectation_passed_rows_total\{job_id="job-1",table="[^"]*nowhere",expectation="has_id"\} (\S+)$',
            re.M,
        )

        def counted():
            with urllib.request.urlopen(console.base + "/metrics", timeout=10) as r:
                found = passed.search(r.read().decode())
            return found and float(found.group(1)) > 0

        wait_for("the expectation's count on /metrics", counted, timeout=30)
        status, body = console.call("/api/sql", {"sql": "SELECT 1"})
        assert status == 404 and "runnel serve" in body["error"]
        assert run.wait(timeout=60) == 0, log.read_text()
    finally:
        if run.poll() is None:
            run.kill()


def test_a_stalled_or_closed_browser_does_not_hold_the_jobs(demo):
    """A subscription whose reader never reads holds only its own query's
    job: the demo's job keeps reading; closing the connection cancels the
    query's job."""
    import socket

    server, port, job = demo
    root = Console(port)
    assert root.call("/api/login", {"user": ADMIN, "password": ADMIN_PASSWORD})[0] == 200
    # The session cookie, for a raw socket that sends the request and then
    # reads nothing.
    jar = [h for h in root.opener.handlers if isinstance(h, urllib.request.HTTPCookieProcessor)][0].cookiejar
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    body = json.dumps({"sql": "SELECT device_id, temperature FROM ticks"}).encode()
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        f"POST /api/sql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n".encode()
        + f"Cookie: {cookie}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )

    def queries():
        status, listed = root.call("/api/jobs")
        return [j for j in listed["jobs"] if j["kind"] == "SELECT" and j["running"]]

    sub = wait_for("the subscription's job", queries, timeout=30)[0]
    before = root.call(f"/api/jobs/{job}")[1]["rows_read"]
    time.sleep(3)
    after = root.call(f"/api/jobs/{job}")[1]
    assert after["running"] and after["rows_read"] > before + 1000, (before, after["rows_read"])
    stalled.close()

    def cancelled():
        status, listed = root.call("/api/jobs")
        mine = [j for j in listed["jobs"] if j["id"] == sub["id"]]
        return mine and not mine[0]["running"] and mine[0]["status"]

    assert wait_for("the closed subscription's job to end", cancelled, timeout=60) == "CANCELED"
