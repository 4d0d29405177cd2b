"""Continuous queries over plain Arrow Flight (pyarrow.flight): the Flight
SQL command is built by hand, the result is a DoGet stream that stays open,
delivers batches as windows close and keep-alive batches while idle, and
ends when the client cancels it."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pyarrow as pa
import pytest
from pyarrow import flight

from conftest import (
    KEEPALIVE_SECONDS,
    PASSWORD,
    USER,
    _varint,
    statement_query_command,
    wait_for,
)

# The generator's configuration; the expected windows follow from it.
DEVICES = 20
INTERVAL_MS = 1000
WINDOW_SECONDS = 10
START = dt.datetime(2026, 3, 1, 12, 0, 0)
#: Every device reports once per interval and (with no error rates set)
#: never drops or delays a reading, so a window holds exactly this many rows.
READINGS_PER_WINDOW = DEVICES * (WINDOW_SECONDS * 1000 // INTERVAL_MS)

FAST = "sub_readings"
SLOW = "sub_slow_readings"


def test_hand_encoding_matches_protobuf():
    """The helper agrees with the protobuf runtime (installed with
    flightsql-dbapi) on a query long enough to need multi-byte lengths."""
    any_pb2 = pytest.importorskip("google.protobuf.any_pb2")
    flightsql_pb2 = pytest.importorskip("flightsql.flightsql_pb2")
    sql = "SELECT 'é' AS x FROM t WHERE " + " OR ".join(f"id = {i}" for i in range(40))
    packed = any_pb2.Any()
    packed.Pack(flightsql_pb2.CommandStatementQuery(query=sql))
    assert statement_query_command(sql) == packed.SerializeToString()
    assert _varint(300) == b"\xac\x02"


# -------------------------------------------------------------------- client


class FlightSql:
    """A pyarrow.flight client that authenticated with basic auth and sends
    the bearer token on every call."""

    def __init__(self, port: int):
        self.client = flight.FlightClient(f"grpc+tcp://127.0.0.1:{port}")
        self.token = self.client.authenticate_basic_token(USER, PASSWORD)

    def options(self, timeout: float = 60.0) -> flight.FlightCallOptions:
        return flight.FlightCallOptions(headers=[self.token], timeout=timeout)

    def info(self, sql: str) -> flight.FlightInfo:
        descriptor = flight.FlightDescriptor.for_command(statement_query_command(sql))
        return self.client.get_flight_info(descriptor, self.options())

    def subscribe(self, sql: str, timeout: float = 60.0) -> flight.FlightStreamReader:
        info = self.info(sql)
        assert info.endpoints, "the FlightInfo has no endpoint"
        return self.client.do_get(info.endpoints[0].ticket, self.options(timeout))

    def run(self, sql: str) -> pa.Table:
        return self.subscribe(sql).read_all()

    def close(self):
        self.client.close()


@pytest.fixture(scope="module")
def fsql(server):
    client = FlightSql(server.port)
    for name, rate in ((FAST, 2000), (SLOW, 1)):
        result = client.run(
            f"CREATE TABLE {name} (event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE, "
            "WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND) WITH ("
            f"'connector' = 'datagen', 'seed' = '7', 'iot.devices' = '{DEVICES}', "
            f"'iot.interval-ms' = '{INTERVAL_MS}', 'iot.start' = '{START:%Y-%m-%d %H:%M:%S}', "
            f"'rows-per-second' = '{rate}')"
        )
        assert result.column_names == ["result"]
    yield client
    client.close()


def jobs_with(fsql: FlightSql, marker: str):
    table = fsql.run("SELECT job_id, status, statement FROM system.jobs")
    return [j for j in table.to_pylist() if marker in (j["statement"] or "")]


def read_chunks(reader, until, deadline_seconds: float):
    """Reads chunks until `until(batches)` is true; fails after the deadline."""
    batches = []
    deadline = time.monotonic() + deadline_seconds
    while not until(batches):
        if time.monotonic() > deadline:
            pytest.fail(f"stream gave only {len(batches)} batches in {deadline_seconds:.0f} s")
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            pytest.fail(f"the continuous query's stream ended after {len(batches)} batches")
        batches.append(chunk.data)
    return batches


def wait_not_running(fsql: FlightSql, marker: str, timeout: float = 10.0):
    def probe():
        jobs = jobs_with(fsql, marker)
        return jobs and all(j["status"] != "RUNNING" for j in jobs) and jobs

    return wait_for(f"the job of '{marker}' to stop running", probe, timeout, interval=0.2)


# --------------------------------------------------------------------- tests


def test_tumbling_window_subscription(fsql):
    marker = "n_" + uuid.uuid4().hex[:8]
    sql = (
        f"SELECT window_start, window_end, COUNT(*) AS {marker} "
        f"FROM TABLE(TUMBLE(TABLE {FAST}, DESCRIPTOR(event_time), INTERVAL '{WINDOW_SECONDS}' SECOND)) "
        "GROUP BY window_start, window_end"
    )
    reader = fsql.subscribe(sql, timeout=60)
    try:
        assert reader.schema.names == ["window_start", "window_end", marker]
        batches = read_chunks(
            reader, lambda bs: sum(1 for b in bs if b.num_rows > 0) >= 3, deadline_seconds=45
        )
        running = jobs_with(fsql, marker)
        assert [j["status"] for j in running] == ["RUNNING"], running
    finally:
        reader.cancel()

    windows = sorted(
        (r["window_start"], r["window_end"], r[marker])
        for b in batches
        if b.num_rows > 0
        for r in b.to_pylist()
    )
    width = dt.timedelta(seconds=WINDOW_SECONDS)
    # The job generates from 'iot.start', so the first window starts there
    # and later ones follow without gaps.
    assert windows[0][0] == START
    for k, (start, end, count) in enumerate(windows):
        assert start == START + k * width, windows
        assert end == start + width
        assert count == READINGS_PER_WINDOW, windows

    stopped = wait_not_running(fsql, marker)
    assert len(stopped) == 1


def test_idle_subscription_gets_keepalive_batches(fsql):
    """At one row per second no 10 s window of 20 devices closes for minutes,
    so the stream carries only empty keep-alive batches, one per keepalive
    period (1 s in the test config)."""
    marker = "n_" + uuid.uuid4().hex[:8]
    sql = (
        f"SELECT window_start, COUNT(*) AS {marker} "
        f"FROM TABLE(TUMBLE(TABLE {SLOW}, DESCRIPTOR(event_time), INTERVAL '{WINDOW_SECONDS}' SECOND)) "
        "GROUP BY window_start, window_end"
    )
    watch = 4.5 * KEEPALIVE_SECONDS
    reader = fsql.subscribe(sql, timeout=60)
    try:
        assert reader.schema.names == ["window_start", marker]
        started = time.monotonic()
        batches = read_chunks(
            reader, lambda bs: time.monotonic() - started >= watch, deadline_seconds=watch + 10
        )
    finally:
        reader.cancel()
    assert all(b.num_rows == 0 for b in batches), [b.num_rows for b in batches]
    # About one per period; allow for the first one coming a period late.
    assert len(batches) >= int(watch / KEEPALIVE_SECONDS) - 1, len(batches)
    assert all(b.schema.names == ["window_start", marker] for b in batches)
    wait_not_running(fsql, marker)


def test_updating_subscription_has_an_op_column(fsql):
    marker = "n_" + uuid.uuid4().hex[:8]
    sql = f"SELECT device_id, COUNT(*) AS {marker} FROM {FAST} GROUP BY device_id"
    reader = fsql.subscribe(sql, timeout=60)
    try:
        schema = reader.schema
        assert schema.names == ["op", "device_id", marker]
        assert schema.field("op").type == pa.string()
        batches = read_chunks(
            reader, lambda bs: sum(b.num_rows for b in bs) >= 3 * DEVICES, deadline_seconds=45
        )
    finally:
        reader.cancel()

    devices = {f"device-{i:04d}" for i in range(DEVICES)}
    current = {}
    for row in (r for b in batches for r in b.to_pylist()):
        op, device, count = row["op"], row["device_id"], row[marker]
        assert op in ("+I", "-U", "+U", "-D"), row
        assert device in devices, row
        if op == "+I":
            assert device not in current, row
            current[device] = count
        elif op in ("-U", "-D"):
            # A retraction takes back exactly the value last added.
            assert current.pop(device, None) == count, row
        else:  # +U
            assert device not in current, row  # its -U came first
            current[device] = count
        assert count >= 1
    assert current, "no device has a count after the changelog"
    assert set(current) <= devices
    wait_not_running(fsql, marker)


def test_order_by_limit_subscription_is_a_live_top_n(fsql):
    """ORDER BY ... LIMIT n over an unbounded source: a Top-N of the whole
    stream, whose changelog keeps at most n live rows."""
    marker = "n_" + uuid.uuid4().hex[:8]
    sql = (
        f"SELECT device_id, COUNT(*) AS {marker} FROM {FAST} GROUP BY device_id "
        f"ORDER BY {marker} DESC, device_id LIMIT 3"
    )
    reader = fsql.subscribe(sql, timeout=60)
    try:
        assert reader.schema.names == ["op", "device_id", marker]
        batches = read_chunks(
            reader, lambda bs: sum(b.num_rows for b in bs) >= 4 * DEVICES, deadline_seconds=45
        )
    finally:
        reader.cancel()

    live = {}
    for row in (r for b in batches for r in b.to_pylist()):
        op, device, count = row["op"], row["device_id"], row[marker]
        if op in ("+I", "+U"):
            live[(device, count)] = live.get((device, count), 0) + 1
        else:
            # A retraction takes back a row that is live.
            assert live.get((device, count), 0) > 0, row
            live[(device, count)] -= 1
            if live[(device, count)] == 0:
                del live[(device, count)]
        assert len(live) <= 3, live
    assert len(live) == 3, live
    # One row per device: the top three devices by count.
    assert len({device for device, _ in live}) == 3, live
    wait_not_running(fsql, marker)


def test_calls_without_the_token_are_rejected(server):
    client = flight.FlightClient(f"grpc+tcp://127.0.0.1:{server.port}")
    try:
        descriptor = flight.FlightDescriptor.for_command(statement_query_command("SHOW TABLES"))
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.get_flight_info(descriptor, flight.FlightCallOptions(timeout=30))
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token(USER, PASSWORD + "-wrong")
        bogus = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer not-a-token")], timeout=30)
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.get_flight_info(descriptor, bogus)
    finally:
        client.close()
