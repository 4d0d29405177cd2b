"""The ADBC Flight SQL driver against `runnel serve`: statements, batch
queries, prepared statements, metadata, jobs and errors."""

from __future__ import annotations

import re
import time
from collections import Counter

import pyarrow as pa
import pytest

import adbc_driver_manager
from adbc_driver_manager import AdbcStatusCode

from conftest import (
    SensorData,
    adbc_connect,
    all_users,
    job_status,
    query,
    rows,
    single_job_id,
    wait_for,
    wait_for_job,
)

TABLE = "adbc_sensors"


@pytest.fixture(scope="module")
def sensors(conn, tmp_path_factory) -> SensorData:
    data = SensorData(tmp_path_factory.mktemp("adbc-data") / "sensors.csv", count=60, seed=11)
    result = query(conn, data.ddl(TABLE))
    assert result.column_names == ["result"]
    return data


def show_tables(conn) -> set:
    table = query(conn, "SHOW TABLES")
    return set(table.column(0).to_pylist())


# ---------------------------------------------------------------- statements


def test_ddl_returns_a_result_row_and_changes_the_catalog(conn, sensors):
    view = "adbc_hot_view"
    created = query(conn, f"CREATE VIEW {view} AS SELECT id, temp FROM {TABLE} WHERE temp > 80")
    assert created.column_names == ["result"]
    assert created.num_rows == 1
    assert created.column("result")[0].as_py().strip() != ""
    assert {TABLE, view} <= show_tables(conn)

    # The view answers like the filter it stands for.
    got = sorted(rows(conn, f"SELECT id, temp FROM {view}"))
    assert got == sorted((i, t) for i, _, t, _ in sensors.rows if t > 80)

    dropped = query(conn, f"DROP VIEW {view}")
    assert dropped.column_names == ["result"] and dropped.num_rows == 1
    assert view not in show_tables(conn)
    assert TABLE in show_tables(conn)


def test_ddl_through_execute_update(conn, sensors):
    """DDL sent as a Flight SQL update (DoPut CommandStatementUpdate)."""
    view = "adbc_update_view"
    with conn.cursor() as cur:
        stmt = cur.adbc_statement
        stmt.set_sql_query(f"CREATE VIEW {view} AS SELECT device FROM {TABLE}")
        stmt.execute_update()
    assert view in show_tables(conn)
    with conn.cursor() as cur:
        stmt = cur.adbc_statement
        stmt.set_sql_query(f"DROP VIEW {view}")
        stmt.execute_update()
    assert view not in show_tables(conn)


def test_describe_lists_the_declared_columns(conn, sensors):
    table = query(conn, f"DESCRIBE {TABLE}")
    names = table.column(0).to_pylist()
    assert sorted(names) == sorted(SensorData.COLUMNS)


# ------------------------------------------------------------- batch queries


def test_order_by_limit_offset(conn, sensors):
    got = rows(conn, f"SELECT id, device, temp FROM {TABLE} ORDER BY temp DESC, id ASC LIMIT 5 OFFSET 2")
    ordered = sorted(sensors.rows, key=lambda r: (-r[2], r[0]))
    assert got == [(i, d, t) for i, d, t, _ in ordered[2:7]]


def test_order_by_ordinals(conn, sensors):
    got = rows(conn, f"SELECT device, id FROM {TABLE} ORDER BY 1 DESC, 2 LIMIT 8")
    by_id = sorted((d, i) for i, d, _, _ in sensors.rows)
    # Python's sort is stable, also with reverse=True: ids stay ascending.
    ordered = sorted(sorted(by_id, key=lambda r: r[1]), key=lambda r: r[0], reverse=True)
    assert got == ordered[:8]


def test_group_by_aggregate_matches_python(conn, sensors):
    table = query(
        conn,
        f"SELECT device, COUNT(*) AS n, SUM(temp) AS total, MIN(temp) AS lo, MAX(temp) AS hi, "
        f"AVG(temp) AS mean FROM {TABLE} GROUP BY device",
    )
    assert table.column_names == ["device", "n", "total", "lo", "hi", "mean"]
    got = {r["device"]: r for r in table.to_pylist()}
    expected = sensors.by_device()
    assert set(got) == set(expected)
    for device, temps in expected.items():
        row = got[device]
        assert row["n"] == len(temps)
        assert row["total"] == pytest.approx(sum(temps))
        assert row["lo"] == min(temps)
        assert row["hi"] == max(temps)
        assert row["mean"] == pytest.approx(sum(temps) / len(temps))


def test_arrow_types_follow_the_ddl(conn, sensors):
    table = query(conn, f"SELECT id, device, temp, ts FROM {TABLE} ORDER BY id LIMIT 3")
    schema = table.schema
    assert schema.field("id").type == pa.int32()
    assert schema.field("device").type == pa.string()
    assert schema.field("temp").type == pa.float64()
    assert schema.field("ts").type == pa.timestamp("ms")
    assert table.to_pylist() == [
        {"id": i, "device": d, "temp": t, "ts": ts} for i, d, t, ts in sensors.rows[:3]
    ]
    counted = query(conn, f"SELECT COUNT(*) AS n FROM {TABLE}")
    assert counted.schema.field("n").type == pa.int64()
    assert counted.column("n").to_pylist() == [len(sensors.rows)]


def test_prepared_statement_with_parameters(conn, sensors):
    sql = f"SELECT id FROM {TABLE} WHERE device = ? ORDER BY id"
    with conn.cursor() as cur:
        results = {}
        for device in ("d1", "d4"):
            cur.execute(sql, (device,))
            results[device] = [r[0] for r in cur.fetchall()]
    for device, ids in results.items():
        assert ids == [i for i, d, _, _ in sensors.rows if d == device]
    assert results["d1"] != results["d4"]

    # Numeric parameters: an INT column against an int64 parameter, a DOUBLE
    # column against a float one.
    with conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {TABLE} WHERE id <= ? AND temp > ? ORDER BY id", (30, 70.0))
        got = [r[0] for r in cur.fetchall()]
    assert got == [i for i, _, t, _ in sensors.rows if i <= 30 and t > 70.0]


# ------------------------------------------------------------------ metadata


def test_get_objects_lists_the_table_and_its_columns(conn, sensors):
    objects = conn.adbc_get_objects(depth="all", table_name_filter=TABLE).read_all().to_pylist()
    found = []
    for catalog in objects:
        for schema in catalog["catalog_db_schemas"] or []:
            for table in schema["db_schema_tables"] or []:
                if table["table_name"] == TABLE:
                    found.append((catalog["catalog_name"], schema["db_schema_name"], table))
    assert len(found) == 1, objects
    catalog, schema, table = found[0]
    assert (catalog, schema, table["table_type"]) == ("runnel", "public", "TABLE")
    columns = sorted(table["table_columns"], key=lambda c: c["ordinal_position"])
    assert [c["column_name"] for c in columns] == list(SensorData.COLUMNS)
    assert [c["ordinal_position"] for c in columns] == list(range(1, len(SensorData.COLUMNS) + 1))


def test_get_objects_lists_catalogs_and_schemas(conn):
    objects = conn.adbc_get_objects(depth="db_schemas").read_all().to_pylist()
    schemas = {
        (c["catalog_name"], s["db_schema_name"])
        for c in objects
        for s in (c["catalog_db_schemas"] or [])
    }
    assert {("runnel", "public"), ("runnel", "system")} <= schemas


def test_get_table_schema_matches_the_ddl(conn, sensors):
    schema = conn.adbc_get_table_schema(TABLE, db_schema_filter="public")
    assert schema.names == list(SensorData.COLUMNS)
    assert schema.types == [pa.int32(), pa.string(), pa.float64(), pa.timestamp("ms")]


def test_get_table_types(conn):
    types = set(conn.adbc_get_table_types())
    assert {"TABLE", "VIEW", "MATERIALIZED VIEW", "SYSTEM TABLE"} <= types


def test_get_info_vendor_name(conn):
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "Runnel"


def test_system_tables_and_columns(conn, sensors):
    tables = query(
        conn,
        "SELECT table_catalog, table_schema, table_name, table_type, connector FROM system.tables",
    ).to_pylist()
    mine = [t for t in tables if t["table_name"] == TABLE]
    assert mine == [
        {
            "table_catalog": "runnel",
            "table_schema": "public",
            "table_name": TABLE,
            "table_type": "TABLE",
            "connector": "filesystem",
        }
    ]
    system = {(t["table_schema"], t["table_name"], t["table_type"]) for t in tables}
    for name in ("jobs", "tables", "columns", "metrics"):
        assert ("system", name, "SYSTEM TABLE") in system

    columns = query(
        conn,
        "SELECT table_schema, table_name, column_name, ordinal_position, data_type, is_nullable "
        "FROM system.columns",
    ).to_pylist()
    mine = sorted(
        (c for c in columns if c["table_name"] == TABLE), key=lambda c: c["ordinal_position"]
    )
    assert [(c["table_schema"], c["column_name"], c["ordinal_position"]) for c in mine] == [
        ("public", name, pos) for pos, name in enumerate(SensorData.COLUMNS, start=1)
    ]
    types = [re.sub(r"\s+", "", str(c["data_type"]).upper()) for c in mine]
    assert types[0] in ("INT", "INTEGER")
    assert types[1:] == ["STRING", "DOUBLE", "TIMESTAMP(3)"]


def test_count_star_over_a_system_table(conn, sensors):
    """COUNT(*) reads no column of its input."""
    names = rows(conn, "SELECT table_name FROM system.tables")
    assert rows(conn, "SELECT COUNT(*) AS n FROM system.tables") == [(len(names),)]


def test_count_star_over_a_bounded_generator(conn):
    """COUNT(*) over a source that reads only the columns a query uses."""
    query(
        conn,
        "CREATE TABLE adbc_gen (event_time TIMESTAMP(3), device_id STRING) WITH ("
        "'connector' = 'datagen', 'iot.devices' = '7', 'number-of-rows' = '500')",
    )
    assert rows(conn, "SELECT COUNT(*) AS n FROM adbc_gen") == [(500,)]
    assert rows(conn, "SELECT COUNT(DISTINCT device_id) AS d FROM adbc_gen") == [(7,)]


# ---------------------------------------------------------------------- jobs


def test_materialized_view_of_a_group_by(conn, sensors):
    mv = "adbc_device_stats"
    job_id = single_job_id(
        query(
            conn,
            f"CREATE MATERIALIZED VIEW {mv} AS "
            f"SELECT device, COUNT(*) AS n, MAX(temp) AS hi FROM {TABLE} GROUP BY device",
        )
    )
    wait_for_job(conn, job_id, "FINISHED")
    table = query(conn, f"SELECT device, n, hi FROM {mv}")
    assert table.column_names == ["device", "n", "hi"]
    expected = {d: (len(t), max(t)) for d, t in sensors.by_device().items()}
    got = {r["device"]: (r["n"], r["hi"]) for r in table.to_pylist()}
    assert got == expected
    assert table.num_rows == len(expected)

    types = {(t["table_name"], t["table_type"]) for t in query(conn, "SELECT table_name, table_type FROM system.tables").to_pylist()}
    assert (mv, "MATERIALIZED VIEW") in types


def test_materialized_view_of_tumbling_windows(conn, sensors):
    mv = "adbc_minute_stats"
    job_id = single_job_id(
        query(
            conn,
            f"CREATE MATERIALIZED VIEW {mv} AS "
            f"SELECT window_start, window_end, COUNT(*) AS n, SUM(temp) AS total "
            f"FROM TABLE(TUMBLE(TABLE {TABLE}, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
            f"GROUP BY window_start, window_end",
        )
    )
    wait_for_job(conn, job_id, "FINISHED")
    got = {
        r["window_start"]: (r["window_end"], r["n"], r["total"])
        for r in query(conn, f"SELECT window_start, window_end, n, total FROM {mv}").to_pylist()
    }
    expected = sensors.minute_windows()
    assert set(got) == set(expected)
    for start, (end, n, total) in expected.items():
        assert got[start][:2] == (end, n)
        assert got[start][2] == pytest.approx(total)


def test_insert_into_a_filesystem_sink(conn, sensors, tmp_path):
    out_dir = tmp_path / "hot-out"
    sink = "adbc_hot_sink"
    query(
        conn,
        f"CREATE TABLE {sink} (id INT, device STRING, temp DOUBLE) WITH ("
        f"'connector' = 'filesystem', 'path' = '{out_dir}', 'format' = 'csv')",
    )
    job_id = single_job_id(
        query(conn, f"INSERT INTO {sink} SELECT id, device, temp FROM {TABLE} WHERE temp > 75")
    )
    jobs = query(conn, "SELECT job_id, status, statement FROM system.jobs").to_pylist()
    mine = [j for j in jobs if j["job_id"] == job_id]
    assert len(mine) == 1
    assert f"INSERT INTO {sink}" in mine[0]["statement"]
    assert mine[0]["status"] != "FAILED"

    wait_for_job(conn, job_id, "FINISHED")
    expected = sorted((i, d, t) for i, d, t, _ in sensors.rows if t > 75)
    published = wait_for(
        "published part files",
        lambda: [p for p in out_dir.iterdir() if not p.name.startswith((".", "_"))] if out_dir.exists() else [],
        timeout=20,
    )
    assert published
    # Read the files back through the sink table itself (a bounded source).
    assert sorted(rows(conn, f"SELECT id, device, temp FROM {sink}")) == expected


def test_show_jobs_and_metrics(conn, sensors):
    job_id = single_job_id(
        query(conn, f"CREATE MATERIALIZED VIEW adbc_all_ids AS SELECT device, COUNT(*) AS n FROM {TABLE} GROUP BY device")
    )
    wait_for_job(conn, job_id, "FINISHED")
    shown = query(conn, "SHOW JOBS")
    assert job_id in shown.column(0).to_pylist()
    metrics = query(conn, "SELECT job_id, metric, value FROM system.metrics")
    assert metrics.schema.field("value").type == pa.float64()


def test_stop_job(conn):
    """An MV over an unbounded generator runs until STOP JOB; its contents
    stay readable after it stopped."""
    query(
        conn,
        "CREATE TABLE adbc_live (event_time TIMESTAMP(3), device_id STRING) WITH ("
        "'connector' = 'datagen', 'iot.devices' = '5', 'rows-per-second' = '200')",
    )
    job_id = single_job_id(
        query(
            conn,
            "CREATE MATERIALIZED VIEW adbc_live_counts AS "
            "SELECT device_id, COUNT(*) AS n FROM adbc_live GROUP BY device_id",
        )
    )
    wait_for_job(conn, job_id, "RUNNING", timeout=20)
    devices = {f"device-{i:04d}" for i in range(5)}
    wait_for(
        "all 5 devices in the live view",
        lambda: {r[0] for r in rows(conn, "SELECT device_id, n FROM adbc_live_counts")} == devices,
        timeout=20,
    )
    stopped = query(conn, f"STOP JOB '{job_id}'")
    assert stopped.num_rows == 1
    wait_for(
        f"{job_id} to stop running",
        lambda: job_status(conn, job_id) not in (None, "RUNNING"),
        timeout=15,
    )
    final = dict(rows(conn, "SELECT device_id, n FROM adbc_live_counts"))
    assert set(final) == devices
    # Stopped means no more rows: the counts no longer change.
    time.sleep(0.5)
    assert dict(rows(conn, "SELECT device_id, n FROM adbc_live_counts")) == final


def test_stop_unknown_job_fails(conn):
    with pytest.raises(adbc_driver_manager.Error) as caught:
        query(conn, "STOP JOB 'job-999999'")
    assert "job-999999" in str(caught.value)


# -------------------------------------------------------------------- errors


def _error_text(err: Exception) -> str:
    return f"{type(err).__name__}: {err}".lower()


@pytest.mark.parametrize("user", sorted(all_users()))
def test_login_with_every_password_length(server, user):
    """Each user's "name:password" has a different length modulo 3, so its
    base64 needs a different amount of padding; the ADBC (Go) driver sends
    it without padding, and every length must still log in."""
    password = all_users()[user]
    connection = adbc_connect(server.port, user=user, password=password)
    try:
        names = [r[0] for r in rows(connection, "SELECT table_name FROM system.tables")]
        assert {"jobs", "tables", "columns", "metrics"} <= set(names)
    finally:
        connection.close()


def test_the_users_cover_every_padding():
    assert {len(f"{u}:{p}") % 3 for u, p in all_users().items()} == {0, 1, 2}


def test_wrong_password_is_unauthenticated(server):
    with pytest.raises(adbc_driver_manager.Error) as caught:
        connection = adbc_connect(server.port, password="not-the-password")
        try:
            query(connection, "SELECT 1")
        finally:
            connection.close()
    err = caught.value
    assert err.status_code == AdbcStatusCode.UNAUTHENTICATED or "unauthenticated" in _error_text(err), err


def test_unknown_user_is_unauthenticated(server):
    with pytest.raises(adbc_driver_manager.Error) as caught:
        connection = adbc_connect(server.port, user="mallory")
        try:
            query(connection, "SELECT 1")
        finally:
            connection.close()
    err = caught.value
    assert err.status_code == AdbcStatusCode.UNAUTHENTICATED or "unauthenticated" in _error_text(err), err


def test_syntax_error_is_invalid_argument_with_position(conn, sensors):
    lines = ["SELECT id", f"FROM {TABLE}", "WHERE id = )"]
    sql = "\n".join(lines)
    line, column = 3, lines[2].index(")") + 1
    with pytest.raises(adbc_driver_manager.Error) as caught:
        query(conn, sql)
    err = caught.value
    assert err.status_code == AdbcStatusCode.INVALID_ARGUMENT, err
    assert f"line {line}, column {column}" in str(err).lower(), err


def test_unknown_table_is_not_found(conn):
    with pytest.raises(adbc_driver_manager.Error) as caught:
        query(conn, "SELECT * FROM adbc_no_such_table")
    err = caught.value
    assert err.status_code == AdbcStatusCode.NOT_FOUND, err
    assert "adbc_no_such_table" in str(err)


def test_a_failed_statement_leaves_the_connection_usable(conn, sensors):
    with pytest.raises(adbc_driver_manager.Error):
        query(conn, "SELEKT 1")
    counted = Counter(d for _, d, _, _ in sensors.rows)
    got = dict(rows(conn, f"SELECT device, COUNT(*) FROM {TABLE} WHERE device = 'd2' GROUP BY device"))
    assert got == {"d2": counted["d2"]}
