"""Ad-hoc query load on `runnel serve` from many ADBC clients.

Each client is an ADBC Flight SQL connection of its own, in one of several
worker processes, looping ``SELECT ... FROM per_device ORDER BY ... LIMIT 10``
against a materialized view that a datagen job keeps updating. A query is
``cursor.execute`` plus fetching its Arrow table; its wall time is one
latency sample. A failed query or an empty result is an error.

Every configuration runs against a fresh server started from the binary
given, with the view and its job set up the same way, one after the
other in one invocation, so the figures are side by side:

* ``snapshot``: the default server (queries over views run from a snapshot);
* ``job``: the same server with ``snapshot_queries = false`` (every query
  starts a job, as before).

Usage::

    python benches/serving/adbc_load.py --bin target/release/runnel \\
        --clients 50 200 --seconds 15 --modes snapshot job

Prints one JSON object per run and a table at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TABLE = (
    "CREATE TABLE readings (event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE, "
    "WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND) WITH ('connector' = 'datagen', "
    "'seed' = '7', 'iot.devices' = '200', 'iot.interval-ms' = '1000', 'rows-per-second' = '2000')"
)
VIEW = (
    "CREATE MATERIALIZED VIEW per_device AS SELECT window_start, device_id, COUNT(*) AS readings, "
    "AVG(temperature) AS avg_temp FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(event_time), "
    "INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, device_id"
)
QUERY = (
    "SELECT window_start, device_id, readings, avg_temp FROM per_device "
    "ORDER BY avg_temp DESC LIMIT 10"
)
READY = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


def start_server(binary: str, workdir: Path, snapshot: bool) -> tuple[subprocess.Popen, int]:
    config = workdir / "runnel.toml"
    config.write_text(
        f'listen = "127.0.0.1:0"\nhttp_listen = "off"\ndata_dir = "{workdir / "data"}"\n'
        f"snapshot_queries = {'true' if snapshot else 'false'}\n"
        "[auth]\nallow_anonymous = true\n"
    )
    proc = subprocess.Popen(
        [binary, "serve", "--config", str(config)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.time() + 60
    assert proc.stderr is not None
    while time.time() < deadline:
        line = proc.stderr.readline()
        m = READY.search(line)
        if m:
            # Keep draining stderr so the server never blocks on it.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(m.group(1))
    proc.kill()
    raise RuntimeError("the server did not start")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def connect(port: int):
    import adbc_driver_flightsql.dbapi as flightsql

    return flightsql.connect(f"grpc://127.0.0.1:{port}")


def set_up(port: int) -> None:
    conn = connect(port)
    try:
        cur = conn.cursor()
        cur.execute(TABLE)
        cur.fetchall()
        cur.execute(VIEW)
        cur.fetchall()
        deadline = time.time() + 60
        while time.time() < deadline:
            cur.execute("SELECT COUNT(*) FROM per_device")
            rows = cur.fetchall()  # no row at all while the view is empty
            if rows and rows[0][0] >= 400:
                return
            time.sleep(0.2)
        raise RuntimeError("the view did not fill")
    finally:
        conn.close()


def worker(port: int, threads: int, start_at: float, stop_at: float, out) -> None:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        try:
            conn = connect(port)
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(f"connect: {e}")
            return
        mine: list[float] = []
        bad: list[str] = []
        cur = conn.cursor()
        while time.time() < start_at:
            time.sleep(0.001)
        while time.time() < stop_at:
            t0 = time.perf_counter()
            try:
                cur.execute(QUERY)
                table = cur.fetch_arrow_table()
                if table.num_rows == 0:
                    bad.append("empty result")
                else:
                    mine.append(time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001
                bad.append(str(e)[:200])
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    ts = [threading.Thread(target=client) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((latencies, errors))


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values))) - 1))
    return sorted_values[k]


def run(binary: str, clients: int, seconds: float, mode: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="runnel-adbc-load-") as tmp:
        proc, port = start_server(binary, Path(tmp), snapshot=(mode == "snapshot"))
        try:
            set_up(port)
            processes = min(clients, max(2, os.cpu_count() or 2) * 2)
            per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
            # Spawned, not forked: the parent has loaded the ADBC driver (a Go
            # runtime), which a forked child cannot use.
            ctx = mp.get_context("spawn")
            out = ctx.Queue()
            start_at = time.time() + 8.0  # time for the workers to start and connect
            stop_at = start_at + seconds
            ps = [ctx.Process(target=worker, args=(port, n, start_at, stop_at, out)) for n in per if n]
            for p in ps:
                p.start()
            while time.time() < start_at:
                time.sleep(0.01)
            cpu_start = cpu_seconds(proc.pid)
            time.sleep(max(0.0, stop_at - time.time()))
            server_cpu = cpu_seconds(proc.pid) - cpu_start
            latencies: list[float] = []
            errors: list[str] = []
            for _ in ps:
                lat, err = out.get(timeout=seconds + 120)
                latencies.extend(lat)
                errors.extend(err)
            for p in ps:
                p.join()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    latencies.sort()
    return {
        "mode": mode,
        "clients": clients,
        "seconds": seconds,
        "queries": len(latencies),
        "queries_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        "errors": len(errors),
        "first_errors": errors[:3],
        # The server's CPU time during the measured window, per query: what
        # it costs apart from the clients, which share the machine.
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_ms_per_query": round(server_cpu * 1000 / max(1, len(latencies)), 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--clients", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--modes", nargs="+", default=["snapshot", "job"], choices=["snapshot", "job"])
    args = ap.parse_args()
    results = []
    for clients in args.clients:
        for mode in args.modes:
            r = run(args.bin, clients, args.seconds, mode)
            print(json.dumps(r), flush=True)
            results.append(r)
    print(
        f"\n{'mode':<9} {'clients':>7} {'q/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'server CPU ms/query':>20}"
    )
    for r in results:
        print(
            f"{r['mode']:<9} {r['clients']:>7} {r['queries_per_s']:>8} {r['p50_ms']:>8} "
            f"{r['p99_ms']:>8} {r['errors']:>6} {r['server_cpu_ms_per_query']:>20}"
        )
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
