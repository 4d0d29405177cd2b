"""The HTTP port's /metrics in Prometheus's format: `promtool check
metrics` accepts it, a real Prometheus server scrapes a running job and
sees its row counter grow, and unknown routes are 404."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
import json

import pytest

from conftest import ADMIN, ADMIN_PASSWORD, adbc_connect, query, single_job_id, wait_for

METRICS_LINE = re.compile(r"metrics at http://127\.0\.0\.1:(\d+)/metrics")


def metrics_port(server) -> int:
    def probe():
        found = METRICS_LINE.search(server.log_path.read_text())
        return found and int(found.group(1))

    return wait_for("the metrics line", probe, timeout=30)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_prometheus_scrapes_a_running_job(start_server, tmp_path):
    server = start_server(tmp_path / "server", "metrics")
    port = metrics_port(server)
    root = adbc_connect(server.port, user=ADMIN, password=ADMIN_PASSWORD)
    try:
        query(
            root,
            "CREATE TABLE ticks (event_time TIMESTAMP(3), device_id STRING, temperature DOUBLE) "
            "WITH ('connector' = 'datagen', 'rows-per-second' = '500')",
        )
        query(root, "CREATE TABLE nowhere (device_id STRING) WITH ('connector' = 'blackhole')")
        job = single_job_id(query(root, "INSERT INTO nowhere SELECT device_id FROM ticks"))
        sample = re.compile(r'^runnel_job_rows_read_total\{job_id="' + job + r'"\} (\S+)$', re.M)
        def page_with_rows():
            # The counter appears as soon as the job starts, at 0; wait
            # until the source has read something.
            page = get(f"http://127.0.0.1:{port}/metrics")
            found = sample.search(page)
            return found and float(found.group(1)) > 0 and page

        text = wait_for("the job's row counter to grow", page_with_rows)
        # The ADBC calls above were counted and timed.
        calls = re.search(r'^runnel_flight_requests_total\{method="get_flight_info"\} (\d+)$', text, re.M)
        assert calls and int(calls.group(1)) >= 3, text
        assert re.search(r'^runnel_flight_request_duration_seconds_count\{method="get_flight_info"\} \d+$', text, re.M), text
        # Per operator subtask: the source's rows out add up to at least
        # the job's rows read (read earlier in the same page); a thread
        # that reads 500 rows a second is mostly idle.
        job_rows = float(sample.search(text).group(1))
        source = r'job_id="' + job + r'",operator_id="\d+",operator="source: ticks",subtask="(\d+)"'
        outs = re.findall(r"^runnel_operator_rows_out_total\{" + source + r"\} (\S+)$", text, re.M)
        assert outs and sum(float(v) for _, v in outs) >= job_rows > 0, text
        def mostly_idle():
            page = get(f"http://127.0.0.1:{port}/metrics")
            idle = re.findall(r"^runnel_task_idle_seconds_total\{" + source + r"\} (\S+)$", page, re.M)
            busy = re.findall(r"^runnel_task_busy_seconds_total\{" + source + r"\} (\S+)$", page, re.M)
            return idle and busy and sum(float(v) for _, v in idle) > 2 * sum(float(v) for _, v in busy)

        wait_for("the source thread to be mostly idle", mostly_idle, timeout=30)
        assert re.search(r'^runnel_sink_commits_total\{job_id="' + job + r'",operator_id="\d+",operator="sink: nowhere",subtask="0"\} \d+$', text, re.M), text
        # promtool accepts the exposition (names, types, help, format).
        checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        # Unknown routes are 404.
        with pytest.raises(urllib.error.HTTPError) as caught:
            get(f"http://127.0.0.1:{port}/nope")
        assert caught.value.code == 404

        # A real Prometheus server scrapes it every second.
        prom_port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n  - job_name: runnel\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{port}']\n"
        )
        prom = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            q = f"http://127.0.0.1:{prom_port}/api/v1/query?query=runnel_job_rows_read_total"

            def value():
                try:
                    result = json.loads(get(q))["data"]["result"]
                except (OSError, ValueError, KeyError):
                    return None
                mine = [r for r in result if r["metric"].get("job_id") == job]
                return mine and float(mine[0]["value"][1])

            first = wait_for("Prometheus to scrape the job", value, timeout=60)
            time.sleep(3)
            second = wait_for("a later scrape", lambda: (v := value()) and v > first and v, timeout=60)
            assert second > first
        finally:
            prom.terminate()
            prom.wait(10)
    finally:
        root.close()
