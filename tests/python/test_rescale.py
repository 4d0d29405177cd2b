"""Changing a job's parallelism on a running server, as in Flink: the job
runs at parallelism 1, is stopped with a savepoint, and the same INSERT is
submitted again with SET 'parallelism' = '2' and SET
'execution.savepoint.path' naming the first job's checkpoints. The second
job starts from that savepoint (its window state, file positions and
staged output move to two subtasks) and the output holds every window
once."""

from __future__ import annotations

import csv

import pytest

from conftest import SensorData, adbc_connect, query, single_job_id, wait_for_job

TABLE = "rsc_sensors"
OUT = "rsc_windows"


def windows_in(out_dir) -> list:
    got = []
    for path in sorted(out_dir.iterdir()):
        if path.name.startswith("."):
            continue  # staged or in progress: not published
        with path.open() as f:
            got.extend(tuple(row) for row in csv.reader(f) if row)
    return sorted(got)


def test_a_job_resumes_from_a_savepoint_at_another_parallelism(start_server, tmp_path):
    data = SensorData(tmp_path / "sensors.csv", count=4000, seed=31)
    expected = sorted(
        (start.strftime("%Y-%m-%dT%H:%M:%S"), str(count))
        for start, (_, count, _) in data.minute_windows().items()
    )
    out = tmp_path / "out"
    server = start_server(tmp_path / "server", "rescale")
    conn = adbc_connect(server.port)
    insert = (
        f"INSERT INTO {OUT} SELECT CAST(window_start AS STRING), COUNT(*) "
        f"FROM TABLE(TUMBLE(TABLE {TABLE}, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
        "GROUP BY window_start, window_end"
    )
    try:
        query(conn, data.ddl(TABLE))
        query(
            conn,
            f"CREATE TABLE {OUT} (window_start STRING, n BIGINT) WITH ("
            f"'connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv')",
        )
        first = single_job_id(query(conn, insert))
        wait_for_job(conn, first, "FINISHED")
        assert windows_in(out) == expected

        savepoint = tmp_path / "server" / "data" / "checkpoints" / first
        assert savepoint.is_dir(), f"{first} checkpoints in {savepoint}"
        query(conn, "SET 'parallelism' = '2'")
        query(conn, f"SET 'execution.savepoint.path' = '{savepoint}'")
        second = single_job_id(query(conn, insert))
        assert second != first
        wait_for_job(conn, second, "FINISHED")
        # Resumed from the savepoint: nothing is read or written again.
        assert windows_in(out) == expected
        log = server.log_since(0)
        assert f"runnel: {second} resumes from checkpoint" in log, log[-2000:]
        assert str(savepoint) in log, log[-2000:]

        # A statement that is not the savepoint's is refused.
        other = insert.replace("COUNT(*)", "COUNT(temp)")
        with pytest.raises(Exception, match="different query"):
            query(conn, other)
    finally:
        conn.close()


def mv_contents(conn, view) -> dict:
    table = query(conn, f"SELECT device, n, total FROM {view}")
    return {r["device"]: (r["n"], r["total"]) for r in table.to_pylist()}


def test_a_materialized_view_comes_back_at_another_parallelism(start_server, tmp_path):
    """A server restarted with another parallelism replays its jobs at that
    parallelism: the view's aggregate moves its key groups and the view's
    two partitions are added into one, so the view holds what it held."""
    data = SensorData(tmp_path / "sensors.csv", count=400, seed=5)
    expected = {d: (len(t), sum(t)) for d, t in data.by_device().items()}
    workdir = tmp_path / "server"

    def args(parallelism: int) -> list:
        return [
            "--config", str(workdir / "runnel.toml"),
            "--listen", "127.0.0.1:0",
            "--parallelism", str(parallelism),
        ]

    first = start_server(workdir, "mv-p2", args=args(2))
    conn = adbc_connect(first.port)
    try:
        query(conn, data.ddl("rsc_mv_sensors"))
        job = single_job_id(
            query(
                conn,
                "CREATE MATERIALIZED VIEW rsc_per_device AS SELECT device, COUNT(*) AS n, "
                "SUM(temp) AS total FROM rsc_mv_sensors GROUP BY device",
            )
        )
        wait_for_job(conn, job, "FINISHED")
        before = mv_contents(conn, "rsc_per_device")
        assert set(before) == set(expected)
        for device, (n, total) in expected.items():
            assert before[device][0] == n
            assert before[device][1] == pytest.approx(total)
    finally:
        conn.close()
    assert first.stop() == 0

    second = start_server(workdir, "mv-p1", args=args(1))
    conn = adbc_connect(second.port)
    try:
        assert mv_contents(conn, "rsc_per_device") == before
        log = second.log_since(0)
        assert f"runnel: {job} resumes from checkpoint" in log, log[-2000:]
    finally:
        conn.close()
