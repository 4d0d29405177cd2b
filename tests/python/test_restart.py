"""The catalog and materialized views outlive a server: stop it with
SIGTERM, start a new one on the same data directory, and everything is
still there."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import (
    SensorData,
    adbc_connect,
    query,
    rows,
    single_job_id,
    wait_for,
    wait_for_job,
)

TABLE = "rs_sensors"
VIEW = "rs_warm"
MV = "rs_device_stats"


def catalog(conn) -> set:
    table = query(conn, "SELECT table_schema, table_name, table_type FROM system.tables")
    return {(t["table_schema"], t["table_name"], t["table_type"]) for t in table.to_pylist()}


def mv_contents(conn) -> dict:
    table = query(conn, f"SELECT device, n, total FROM {MV}")
    assert table.column_names == ["device", "n", "total"]
    return {r["device"]: (r["n"], r["total"]) for r in table.to_pylist()}


def test_catalog_and_materialized_view_survive_a_restart(start_server, tmp_path):
    data = SensorData(tmp_path / "sensors.csv", count=50, seed=99)
    expected_mv = {d: (len(t), sum(t)) for d, t in data.by_device().items()}
    expected_view = sorted((i, t) for i, _, t, _ in data.rows if t >= 65)
    workdir = tmp_path / "server"

    first = start_server(workdir, "first")
    conn = adbc_connect(first.port)
    try:
        query(conn, data.ddl(TABLE))
        query(conn, f"CREATE VIEW {VIEW} AS SELECT id, temp FROM {TABLE} WHERE temp >= 65")
        job_id = single_job_id(
            query(
                conn,
                f"CREATE MATERIALIZED VIEW {MV} AS "
                f"SELECT device, COUNT(*) AS n, SUM(temp) AS total FROM {TABLE} GROUP BY device",
            )
        )
        wait_for_job(conn, job_id, "FINISHED")
        before = mv_contents(conn)
        assert set(before) == set(expected_mv)
        for device, (n, total) in expected_mv.items():
            assert before[device][0] == n
            assert before[device][1] == pytest.approx(total)
        assert sorted(rows(conn, f"SELECT id, temp FROM {VIEW}")) == expected_view
    finally:
        conn.close()

    assert first.stop() == 0, "runnel serve should exit 0 after SIGTERM"

    second = start_server(workdir, "second")
    conn = adbc_connect(second.port)
    try:
        tables = catalog(conn)
        assert {
            ("public", TABLE, "TABLE"),
            ("public", VIEW, "VIEW"),
            ("public", MV, "MATERIALIZED VIEW"),
        } <= tables
        assert mv_contents(conn) == before
        assert sorted(rows(conn, f"SELECT id, temp FROM {VIEW}")) == expected_view
        # A new query over the restored table.
        got = rows(conn, f"SELECT id, device FROM {TABLE} ORDER BY id DESC LIMIT 3")
        assert got == [(i, d) for i, d, _, _ in reversed(data.rows)][:3]
        schema = conn.adbc_get_table_schema(TABLE, db_schema_filter="public")
        assert schema.names == list(SensorData.COLUMNS)
    finally:
        conn.close()
    assert second.stop() == 0


def test_running_materialized_view_keeps_its_windows(start_server, tmp_path):
    """A job still running at SIGTERM stops with a savepoint; the windows its
    materialized view held before the stop are still there afterwards, with
    the same counts (20 devices x 10 readings per 10 s window)."""
    devices, per_window = 20, 200
    start = dt.datetime(2026, 5, 1, 0, 0, 0)
    workdir = tmp_path / "server"

    first = start_server(workdir, "first-live")
    conn = adbc_connect(first.port)
    try:
        query(
            conn,
            "CREATE TABLE rs_live (event_time TIMESTAMP(3), device_id STRING, "
            "WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND) WITH ("
            f"'connector' = 'datagen', 'iot.devices' = '{devices}', 'iot.interval-ms' = '1000', "
            f"'iot.start' = '{start:%Y-%m-%d %H:%M:%S}', 'rows-per-second' = '2000')",
        )
        single_job_id(
            query(
                conn,
                "CREATE MATERIALIZED VIEW rs_live_windows AS "
                "SELECT window_start, COUNT(*) AS n "
                "FROM TABLE(TUMBLE(TABLE rs_live, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) "
                "GROUP BY window_start, window_end",
            )
        )
        before = wait_for(
            "the live view to hold 3 windows",
            lambda: (lambda got: len(got) >= 3 and got)(
                dict(rows(conn, "SELECT window_start, n FROM rs_live_windows"))
            ),
            timeout=30,
        )
        assert all(n == per_window for n in before.values()), before
        assert min(before) == start
    finally:
        conn.close()

    assert first.stop() == 0

    second = start_server(workdir, "second-live")
    conn = adbc_connect(second.port)
    try:
        after = dict(rows(conn, "SELECT window_start, n FROM rs_live_windows"))
        for window, n in before.items():
            assert after.get(window) == n, (window, after.get(window))
    finally:
        conn.close()
    second.stop()
