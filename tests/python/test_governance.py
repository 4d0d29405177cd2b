"""Access control over Flight SQL from ADBC: an administrator (root) and
users who are not (alice, bob). Denied, granted and revoked reads; masked
values; paths refused outside the allowed roots; per-client sessions (a
SET in one connection does not change another's); LIMIT over an unbounded
table; ownership surviving a restart."""

from __future__ import annotations

import json

import pytest

import adbc_driver_manager
from adbc_driver_manager import AdbcStatusCode

from conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    EXTRA_USERS,
    PASSWORD,
    USER,
    adbc_connect,
    query,
    rows,
    single_job_id,
    statement_query_command,
    wait_for,
    wait_for_job,
)


def denied(conn, sql: str) -> str:
    """Runs `sql`, which must be refused with PERMISSION_DENIED; the
    message."""
    with pytest.raises(adbc_driver_manager.Error) as caught:
        query(conn, sql)
    err = caught.value
    text = str(err)
    # The Go driver reports gRPC's PERMISSION_DENIED as UNAUTHORIZED.
    assert err.status_code == AdbcStatusCode.UNAUTHORIZED or "PermissionDenied" in text, text
    assert "permission denied" in text, text
    return text


@pytest.fixture()
def gov(start_server, tmp_path):
    """A fresh server, an admin connection and two user connections."""
    server = start_server(tmp_path / "server", "governance")
    root = adbc_connect(server.port, user=ADMIN, password=ADMIN_PASSWORD)
    alice = adbc_connect(server.port, user=USER, password=PASSWORD)
    bob = adbc_connect(server.port, user="bob", password=EXTRA_USERS["bob"])
    yield server, root, alice, bob
    for c in (root, alice, bob):
        c.close()


def readings_table(conn, tmp_path) -> None:
    data = tmp_path / "readings"
    data.mkdir()
    (data / "r.csv").write_text("d1,eu,20.5\nd2,us,30.0\nd3,eu,25.5\n")
    query(
        conn,
        "CREATE TABLE readings (device_id STRING, region STRING, temperature DOUBLE) "
        f"WITH ('connector' = 'filesystem', 'path' = '{data}', 'format' = 'csv')",
    )


def test_denied_granted_and_revoked_reads(gov, tmp_path):
    _, root, alice, bob = gov
    readings_table(root, tmp_path)
    text = denied(alice, "SELECT device_id FROM readings")
    assert "user 'alice' does not have SELECT on TABLE readings" in text, text
    # alice does not see it in the metadata calls or SHOW TABLES either.
    names = [r[0] for r in rows(alice, "SHOW TABLES")]
    assert "readings" not in names, names
    objects = alice.adbc_get_objects(depth="tables").read_all().to_pylist()
    listed = {t["table_name"] for c in objects for s in c["catalog_db_schemas"] for t in (s["db_schema_tables"] or [])}
    assert "readings" not in listed and "jobs" in listed, listed

    query(root, "CREATE ROLE analysts")
    query(root, "GRANT SELECT ON TABLE readings TO analysts")
    query(root, f"GRANT analysts TO USER {USER}")
    got = sorted(rows(alice, "SELECT device_id, temperature FROM readings"))
    assert got == [("d1", 20.5), ("d2", 30.0), ("d3", 25.5)]
    # bob is not in the role.
    denied(bob, "SELECT * FROM readings")
    grants = rows(root, "SHOW GRANTS ON TABLE readings")
    assert ("ROLE analysts", "SELECT", "TABLE", "readings") in grants, grants

    query(root, "REVOKE SELECT ON TABLE readings FROM analysts")
    denied(alice, "SELECT device_id FROM readings")
    # Only administrators manage roles.
    denied(alice, "CREATE ROLE mine")
    denied(alice, f"GRANT admins TO USER {USER}")


def test_masked_values_follow_the_reader(gov, tmp_path):
    _, root, alice, _ = gov
    readings_table(root, tmp_path)
    query(
        root,
        "CREATE FUNCTION mask_id(x STRING) RETURNS STRING "
        "RETURN CASE WHEN is_member('admins') THEN x ELSE '***' END",
    )
    query(root, "CREATE VIEW readings_masked AS SELECT mask_id(device_id) AS device_id, temperature FROM readings")
    query(root, f"GRANT SELECT ON VIEW readings_masked TO USER {USER}")
    mine = sorted(rows(root, "SELECT device_id FROM readings_masked"))
    assert mine == [("d1",), ("d2",), ("d3",)]
    hers = rows(alice, "SELECT device_id FROM readings_masked")
    assert hers == [("***",)] * 3, hers
    # The view's table stays closed to her.
    denied(alice, "SELECT device_id FROM readings")
    # A materialized view an administrator keeps over the masked column:
    # its rows are computed once, and each reader sees them masked as the
    # table's mask says.
    query(root, "ALTER TABLE readings ALTER COLUMN device_id SET MASK mask_id")
    query(root, "CREATE MATERIALIZED VIEW ids AS SELECT device_id, temperature FROM readings")
    query(root, f"GRANT SELECT ON VIEW ids TO USER {USER}")
    wait_for("the view's rows", lambda: len(rows(root, "SELECT device_id FROM ids")) == 3)
    assert sorted(rows(root, "SELECT device_id FROM ids")) == [("d1",), ("d2",), ("d3",)]
    assert rows(alice, "SELECT device_id FROM ids") == [("***",)] * 3
    assert {r[0] for r in rows(alice, "SELECT current_user() AS u FROM readings_masked")} == {USER}


def test_paths_outside_the_allowed_roots_are_refused(gov, tmp_path):
    _, root, alice, _ = gov
    text = denied(
        alice,
        "CREATE TABLE pw (line STRING) WITH ('connector' = 'filesystem', 'path' = '/etc/passwd', 'format' = 'csv')",
    )
    assert "not under the server's allowed paths" in text, text
    # Nothing was created.
    assert "pw" not in [r[0] for r in rows(root, "SHOW TABLES")]
    # Under the allowed root (pytest's temporary directories) it works,
    # and alice owns what she made: bob may not read or drop it.
    mine = tmp_path / "alice"
    mine.mkdir()
    (mine / "a.csv").write_text("x\n")
    query(alice, f"CREATE TABLE mine (line STRING) WITH ('connector' = 'filesystem', 'path' = '{mine}', 'format' = 'csv')")
    assert rows(alice, "SELECT line FROM mine") == [("x",)]
    _, _, _, bob = gov
    denied(bob, "SELECT line FROM mine")
    denied(bob, "DROP TABLE mine")


def test_each_connection_has_its_own_options_and_limit_peeks_at_a_stream(gov):
    _, root, alice, bob = gov
    query(alice, "SET 'parallelism' = '2'")
    query(
        alice,
        "CREATE TABLE ticks (event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE, "
        "WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND) "
        "WITH ('connector' = 'datagen', 'rows-per-second' = '200')",
    )
    # LIMIT over an unbounded table: the first rows, then the end.
    got = rows(alice, "SELECT device_id FROM ticks LIMIT 5")
    assert len(got) == 5, got
    # The SET stayed in alice's session: a job of bob's plans with the
    # server's default parallelism; one of alice's with hers.
    query(alice, "GRANT SELECT ON TABLE ticks TO USER bob")
    plan_bob = "\n".join(r[0] for r in rows(bob, "EXPLAIN SELECT device_id FROM ticks"))
    plan_alice = "\n".join(r[0] for r in rows(alice, "EXPLAIN SELECT device_id FROM ticks"))
    assert "parallelism 2" in plan_alice and "parallelism 2" not in plan_bob, (plan_alice, plan_bob)


def test_owners_and_grants_survive_a_restart(start_server, tmp_path):
    workdir = tmp_path / "server"
    server = start_server(workdir, "gov-restart")
    root = adbc_connect(server.port, user=ADMIN, password=ADMIN_PASSWORD)
    alice = adbc_connect(server.port, user=USER, password=PASSWORD)
    readings_table(alice, tmp_path)
    query(root, "CREATE ROLE readers")
    query(alice, "GRANT SELECT ON TABLE readings TO readers")
    query(root, "GRANT readers TO USER bob")
    root.close()
    alice.close()
    server.stop()

    server = start_server(workdir, "gov-restart-2")
    bob = adbc_connect(server.port, user="bob", password=EXTRA_USERS["bob"])
    carol = adbc_connect(server.port, user="carol", password=EXTRA_USERS["carol"])
    try:
        assert len(rows(bob, "SELECT device_id FROM readings")) == 3
        denied(carol, "SELECT device_id FROM readings")
        # alice still owns it: carol may not drop it.
        denied(carol, "DROP TABLE readings")
    finally:
        bob.close()
        carol.close()


def test_audit_rows_for_logins_statements_and_denials(gov, tmp_path):
    server, root, alice, _ = gov
    readings_table(root, tmp_path)
    denied(alice, "SELECT device_id FROM readings")
    with pytest.raises(adbc_driver_manager.Error):
        bad = adbc_connect(server.port, user="bob", password="not-his-password")
        query(bad, "SELECT 1 FROM readings")
    query(
        root,
        "CREATE TABLE secret_t (a STRING) WITH ('connector' = 'kafka', 'topic' = 't', "
        "'properties.bootstrap.servers' = '127.0.0.1:1', 'format' = 'json', "
        "'properties.sasl.password' = 'hunter2')",
    )
    table = query(root, "SELECT * FROM system.access.audit")
    print("ROWS", table.num_rows, table.schema)
    audit = table.to_pylist()
    print("AUDIT", audit)
    by = lambda **kw: [r for r in audit if all(r[k] == v for k, v in kw.items())]
    assert by(user_name="bob", action="LOGIN", outcome="failed"), audit
    assert by(user_name=USER, action="LOGIN", outcome="ok"), audit
    refused = by(user_name=USER, action="SELECT", outcome="denied")
    assert refused and refused[0]["objects"] == "readings", refused
    assert "does not have SELECT on TABLE readings" in refused[0]["detail"]
    assert refused[0]["client_address"] == "127.0.0.1", refused
    made = by(user_name=ADMIN, action="CREATE TABLE", outcome="ok")
    assert any("secret_t" in r["statement"] for r in made), made
    # Secrets are not written down.
    assert all("hunter2" not in r["statement"] for r in audit)
    # Only administrators read it.
    denied(alice, "SELECT * FROM system.access.audit")
    # It is a file in the data directory that outlives the server.
    assert (server.workdir / "data" / "audit.jsonl").is_file()


def test_tags_and_comments_reach_system_tables_and_flight_metadata(gov, tmp_path):
    _, root, alice, _ = gov
    readings_table(root, tmp_path)
    query(root, "ALTER TABLE readings SET TAGS ('sensitivity' = 'low')")
    query(root, "ALTER TABLE readings ALTER COLUMN device_id SET TAGS ('pii' = 'true')")
    query(root, "COMMENT ON COLUMN readings.temperature IS 'degrees Celsius'")
    query(root, "COMMENT ON TABLE readings IS 'raw sensor readings'")
    tags = rows(root, "SELECT table_name, column_name, tag_name, tag_value FROM system.tags")
    assert sorted(tags, key=str) == sorted(
        [("readings", None, "sensitivity", "low"), ("readings", "device_id", "pii", "true")], key=str
    ), tags
    assert rows(root, "SELECT comment FROM system.tables WHERE table_name = 'readings'") == [("raw sensor readings",)]
    # The column comment is the Flight SQL REMARKS of the column, in the
    # schema GetTables returns (ADBC's get_table_schema reads it).
    schema = root.adbc_get_table_schema("readings", db_schema_filter="public")
    remarks = {f.name: (f.metadata or {}).get(b"ARROW:FLIGHT:SQL:REMARKS") for f in schema}
    assert remarks["temperature"] == b"degrees Celsius", remarks
    assert remarks["device_id"] is None, remarks
    # alice may not read readings: its tags are not hers to see.
    assert rows(alice, "SELECT tag_name FROM system.tags") == []


def test_expectation_counts_and_quarantine_rows(gov, tmp_path):
    _, root, alice, _ = gov
    readings_table(root, tmp_path)
    # 3 readings: d1 eu 20.5, d2 us 30.0, d3 eu 25.5; the us row is
    # quarantined, temperatures above 25 are counted (kept).
    out, quarantined = tmp_path / "silver", tmp_path / "quarantine"
    query(
        root,
        "CREATE TABLE silver (device_id STRING, region STRING, temperature DOUBLE, "
        "CONSTRAINT eu_only EXPECT (region = 'eu') ON VIOLATION QUARANTINE, "
        "CONSTRAINT mild EXPECT (temperature < 25)) "
        f"WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv')",
    )
    query(
        root,
        "CREATE TABLE silver_quarantine (device_id STRING, region STRING, temperature DOUBLE, "
        "expectations STRING, quarantined_at TIMESTAMP(3)) "
        f"WITH ('connector' = 'filesystem', 'path' = '{quarantined}', 'format' = 'csv')",
    )
    job = single_job_id(query(root, "INSERT INTO silver SELECT * FROM readings"))
    wait_for_job(root, job)
    counts = rows(root, "SELECT table_name, expectation, on_violation, passed_rows, failed_rows FROM system.expectations")
    assert sorted(counts) == [("silver", "eu_only", "QUARANTINE", 2, 1), ("silver", "mild", "", 1, 2)], counts
    # The job's metrics carry the same counts.
    metrics = dict(rows(root, f"SELECT metric, value FROM system.metrics WHERE job_id = '{job}'"))
    assert metrics.get("expectation.silver.eu_only.failed_rows") == 1.0, metrics
    assert metrics.get("expectation.silver.mild.passed_rows") == 1.0, metrics
    kept = sorted(rows(root, "SELECT device_id FROM silver"))
    assert kept == [("d1",), ("d3",)], kept
    q = rows(root, "SELECT device_id, expectations FROM silver_quarantine")
    assert q == [("d2", "eu_only")], q
    # Counts are shown to those who may read the table only.
    assert rows(alice, "SELECT expectation FROM system.expectations") == []


def test_lineage_rows_of_jobs_and_views(gov, tmp_path):
    _, root, alice, _ = gov
    readings_table(root, tmp_path)
    query(root, "CREATE VIEW warm AS SELECT device_id, temperature * 2 AS t2 FROM readings WHERE region = 'eu'")
    out = tmp_path / "agg"
    query(
        root,
        "CREATE TABLE per_region (region STRING, hottest DOUBLE) "
        f"WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv')",
    )
    job = single_job_id(
        query(root, "INSERT INTO per_region SELECT region, ROUND(temperature, 1) FROM readings WHERE device_id <> 'd9'")
    )
    lineage = set(
        rows(root, "SELECT job_id, source_table, source_column, target_table, target_column, derivation FROM system.lineage")
    )
    expected = {
        (None, "readings", "device_id", "warm", "device_id", "copied"),
        (None, "readings", "temperature", "warm", "t2", "computed"),
        (None, "readings", "region", "warm", "t2", "filtered on"),
        (job, "readings", "region", "per_region", "region", "copied"),
        (job, "readings", "temperature", "per_region", "hottest", "computed"),
        (job, "readings", "device_id", "per_region", "hottest", "filtered on"),
    }
    assert expected <= lineage, sorted(lineage, key=str)
    # alice may read neither target: she sees none of it.
    assert rows(alice, "SELECT target_table FROM system.lineage") == []


def test_jobs_replayed_after_a_restart_keep_their_users_masks(start_server, tmp_path):
    workdir = tmp_path / "server"
    server = start_server(workdir, "gov-replay")
    root = adbc_connect(server.port, user=ADMIN, password=ADMIN_PASSWORD)
    alice = adbc_connect(server.port, user=USER, password=PASSWORD)
    readings_table(root, tmp_path)
    query(root, "CREATE FUNCTION hide(x STRING) RETURNS STRING RETURN CASE WHEN is_member('admins') THEN x ELSE '***' END")
    query(root, "ALTER TABLE readings ALTER COLUMN device_id SET MASK hide")
    query(root, f"GRANT SELECT ON TABLE readings TO USER {USER}")
    query(alice, "CREATE MATERIALIZED VIEW seen AS SELECT device_id FROM readings")
    wait_for("the view's rows", lambda: len(rows(alice, "SELECT device_id FROM seen")) == 3)
    assert set(rows(alice, "SELECT device_id FROM seen")) == {("***",)}
    # The server's own connectors are not for users' tables.
    text = query_error(alice, "CREATE TABLE a (user_name STRING) WITH ('connector' = 'runnel-system', 'system.table' = 'access.audit')")
    assert "connector of the server's own tables" in text, text
    root.close()
    alice.close()
    server.stop()

    server = start_server(workdir, "gov-replay-2")
    alice = adbc_connect(server.port, user=USER, password=PASSWORD)
    try:
        wait_for("the view's rows after the restart", lambda: len(rows(alice, "SELECT device_id FROM seen")) == 3)
        # Replayed as alice, not as an administrator: still masked.
        assert set(rows(alice, "SELECT device_id FROM seen")) == {("***",)}
    finally:
        alice.close()


def query_error(conn, sql: str) -> str:
    with pytest.raises(adbc_driver_manager.Error) as caught:
        query(conn, sql)
    return str(caught.value)


def _rebuilt(event: dict) -> dict:
    """`event` rebuilt with the OpenLineage client's own classes, whose
    validators check the run id (a UUID), the event time (ISO 8601) and
    the event type, then serialized by the client."""
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import column_lineage_dataset as cl, sql_job
    from openlineage.client.serde import Serde

    def output(o):
        fields = {
            name: cl.Fields(
                inputFields=[
                    cl.InputField(
                        namespace=f["namespace"],
                        name=f["name"],
                        field=f["field"],
                        transformations=[cl.Transformation(type=t["type"], subtype=t["subtype"]) for t in f["transformations"]],
                    )
                    for f in v["inputFields"]
                ]
            )
            for name, v in o["facets"]["columnLineage"]["fields"].items()
        }
        def field(f):
            return cl.InputField(
                namespace=f["namespace"],
                name=f["name"],
                field=f["field"],
                transformations=[cl.Transformation(type=t["type"], subtype=t["subtype"]) for t in f["transformations"]],
            )

        dataset = [field(f) for f in o["facets"]["columnLineage"]["dataset"]]
        facet = cl.ColumnLineageDatasetFacet(fields=fields, dataset=dataset)
        return OutputDataset(namespace=o["namespace"], name=o["name"], facets={"columnLineage": facet})

    rebuilt = RunEvent(
        eventType=RunState[event["eventType"]],
        eventTime=event["eventTime"],
        run=Run(runId=event["run"]["runId"]),
        job=Job(
            namespace=event["job"]["namespace"],
            name=event["job"]["name"],
            facets={"sql": sql_job.SQLJobFacet(query=event["job"]["facets"]["sql"]["query"])},
        ),
        producer=event["producer"],
        inputs=[InputDataset(namespace=i["namespace"], name=i["name"]) for i in event["inputs"]],
        outputs=[output(o) for o in event["outputs"]],
    )
    return json.loads(Serde.to_json(rebuilt))


def _without_producers(value):
    """A facet without the `_producer` / `_schemaURL` each side stamps."""
    if isinstance(value, dict):
        return {k: _without_producers(v) for k, v in value.items() if k not in ("_producer", "_schemaURL")}
    if isinstance(value, list):
        return [_without_producers(v) for v in value]
    return value


def test_openlineage_run_events_with_column_lineage(gov, tmp_path):
    _, root, alice, _ = gov
    readings_table(root, tmp_path)
    events_file = tmp_path / "lineage" / "events.jsonl"
    events_file.parent.mkdir()
    out = tmp_path / "eu"
    query(root, f"CREATE TABLE eu (device_id STRING, t2 DOUBLE) WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv')")
    query(root, f"SET 'openlineage.file' = '{events_file}'")
    job = single_job_id(query(root, "INSERT INTO eu SELECT device_id, temperature * 2 FROM readings WHERE region = 'eu'"))
    wait_for_job(root, job)
    wait_for("two events", lambda: events_file.exists() and len(events_file.read_text().splitlines()) == 2)
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"], events
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"]
    event = events[1]
    assert event["job"] == {**event["job"], "namespace": "runnel", "name": job}
    assert [i["name"] for i in event["inputs"]] == ["readings"]
    facet = event["outputs"][0]["facets"]["columnLineage"]
    fields = facet["fields"]
    direct = {(f["field"], t["type"], t["subtype"]) for f in fields["t2"]["inputFields"] for t in f["transformations"]}
    assert direct == {("temperature", "DIRECT", "TRANSFORMATION")}, direct
    assert [(f["field"], f["transformations"][0]["subtype"]) for f in fields["device_id"]["inputFields"]] == [
        ("device_id", "IDENTITY")
    ]
    # The filter column, which every output column depends on.
    assert [(f["field"], f["transformations"][0]["type"]) for f in facet["dataset"]] == [("region", "INDIRECT")]
    # The client's classes take every event and serialize it as we wrote it.
    for e in events:
        rebuilt = _rebuilt(e)
        for key in ("eventType", "eventTime", "run", "producer", "inputs"):
            assert _without_producers(rebuilt[key]) == _without_producers(e[key]), key
        assert _without_producers(rebuilt["outputs"]) == _without_producers(e["outputs"])
    # A path outside the allowed roots is refused for a user.
    denied(alice, "SET 'openlineage.file' = '/etc/lineage.jsonl'")

    # Posted to an HTTP endpoint (a Python HTTP server standing in for
    # Marquez's /api/v1/lineage).
    import http.server
    import threading

    posted = []

    class Lineage(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posted.append((self.path, json.loads(body)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Lineage)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        query(root, "SET 'openlineage.file' = ''")
        query(root, f"SET 'openlineage.url' = 'http://127.0.0.1:{httpd.server_port}/api/v1/lineage'")
        job = single_job_id(query(root, "INSERT INTO eu SELECT device_id, temperature FROM readings"))
        wait_for_job(root, job)
        wait_for("two posted events", lambda: len(posted) == 2)
        assert [(p, e["eventType"], e["job"]["name"]) for p, e in posted] == [
            ("/api/v1/lineage", "START", job),
            ("/api/v1/lineage", "COMPLETE", job),
        ]
    finally:
        httpd.shutdown()


def test_a_result_ticket_is_fetched_only_by_its_owner(gov, tmp_path):
    """A Flight SQL ticket carries results planned with its owner's rights:
    another user presenting it (a leaked ticket) finds nothing, and the
    owner can still fetch it afterwards."""
    import pyarrow as pa
    from pyarrow import flight

    server, root, alice, bob = gov
    readings_table(root, tmp_path)

    def client(user, password):
        c = flight.FlightClient(f"grpc+tcp://127.0.0.1:{server.port}")
        token = c.authenticate_basic_token(user, password)
        return c, flight.FlightCallOptions(headers=[token], timeout=30)

    admin, admin_opts = client(ADMIN, ADMIN_PASSWORD)
    other, other_opts = client("bob", EXTRA_USERS["bob"])
    try:
        descriptor = flight.FlightDescriptor.for_command(
            statement_query_command("SELECT device_id FROM readings")
        )
        ticket = admin.get_flight_info(descriptor, admin_opts).endpoints[0].ticket
        # bob may not read readings; with admin's ticket he still gets nothing.
        # gRPC NOT_FOUND reaches pyarrow as an ArrowKeyError.
        with pytest.raises((flight.FlightError, pa.ArrowKeyError)) as caught:
            other.do_get(ticket, other_opts).read_all()
        assert "unknown ticket" in str(caught.value), caught.value
        table = admin.do_get(ticket, admin_opts).read_all()
        assert sorted(table.column("device_id").to_pylist()) == ["d1", "d2", "d3"]
    finally:
        admin.close()
        other.close()
