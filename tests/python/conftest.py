"""Shared fixtures of the Python end-to-end tests.

Each server is the real `runnel serve` binary (``$RUNNEL_BIN``) started as a
subprocess with its own data directory and a config file that declares one
user, ``alice``. Tests talk to it through real Flight SQL clients: ADBC,
pyarrow.flight and flightsql-dbapi (SQLAlchemy).

A session-wide server serves most tests; tests that need to stop and start
a server (test_restart.py) make their own with :func:`start_server`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

# flightsql-dbapi needs SQLAlchemy 1.4, which otherwise warns on first use
# that the API is not 2.0-ready.
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

import pytest  # noqa: E402

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql_dbapi
import adbc_driver_manager

REPO_ROOT = Path(__file__).resolve().parents[2]

USER = "alice"
PASSWORD = "correct-horse-7"

#: More users, so that "name:password" comes in each length modulo 3 (with
#: alice's): base64 of such text needs 0, 1 or 2 padding characters, and
#: clients differ in whether they send the padding.
EXTRA_USERS = {"bob": "hunter2-bobby", "carol": "s3cret-carol!"}

#: An administrator (role `admins` in the configuration); the users above
#: are not.
ADMIN = "root"
ADMIN_PASSWORD = "admin-pass-42"

#: Settings written to every server's config. Tests derive their expected
#: timing from these (the keep-alive test reads KEEPALIVE_SECONDS).
CHECKPOINT_INTERVAL_SECONDS = 2
KEEPALIVE_SECONDS = 1

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
READY_LINE = re.compile(r"Flight SQL server listening on 127\.0\.0\.1:(\d+)")

# Every server started in this pytest run; see pytest_runtest_makereport.
_SERVERS: List["RunnelServer"] = []


def runnel_binary() -> Path:
    """The server binary: ``$RUNNEL_BIN``, else the cargo debug build."""
    explicit = os.environ.get("RUNNEL_BIN")
    if explicit:
        path = Path(explicit)
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
        if not target.is_absolute():
            target = REPO_ROOT / target
        path = target / "debug" / "runnel"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"runnel binary not found at {path}: build it with "
            "`cargo build -p runnel-flight` or set RUNNEL_BIN",
            pytrace=False,
        )
    return path.resolve()


def all_users() -> dict:
    return {USER: PASSWORD, **EXTRA_USERS, ADMIN: ADMIN_PASSWORD}


def hash_password(binary: Path, password: str) -> str:
    """Runs `runnel hash-password` with the password on stdin."""
    done = subprocess.run(
        [str(binary), "hash-password"],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.fail(
            f"`runnel hash-password` exited {done.returncode}: {done.stderr.strip()}",
            pytrace=False,
        )
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("$argon2"):
        pytest.fail(
            f"`runnel hash-password` printed no argon2 PHC hash: {done.stdout!r}",
            pytrace=False,
        )
    return lines[-1]


def toml_literal(text: str) -> str:
    """A TOML literal string (no escapes are interpreted inside it)."""
    assert "'" not in text and "\n" not in text, text
    return f"'{text}'"


def write_config(
    path: Path, data_dir: Path, password_hashes: dict, tls=None, allowed_paths=()
) -> Path:
    """The server's TOML config; `password_hashes` maps user names to
    argon2 hashes (ADMIN gets the role `admins`); `tls` is an optional
    (cert, key) pair of PEM files; `allowed_paths` are the roots under
    which users who are not administrators may create tables."""
    lines = [
        'listen = "127.0.0.1:50051"',
        # The HTTP port (/metrics) on a free port: tests run servers side by side.
        'http_listen = "127.0.0.1:0"',
        f"data_dir = {toml_literal(str(data_dir))}",
        "parallelism = 1",
        f'checkpoint_interval = "{CHECKPOINT_INTERVAL_SECONDS} s"',
        f'keepalive = "{KEEPALIVE_SECONDS} s"',
        "",
        "[auth]",
        "allow_anonymous = false",
    ]
    for name, password_hash in password_hashes.items():
        lines += [
            "",
            "[[auth.users]]",
            f"name = {toml_literal(name)}",
            f"password_hash = {toml_literal(password_hash)}",
        ]
        if name == ADMIN:
            lines.append('roles = ["admins"]')
    lines += ["", "[security]"]
    lines.append("allowed_paths = [" + ", ".join(toml_literal(str(p)) for p in allowed_paths) + "]")
    if tls is not None:
        cert, key = tls
        lines += ["", "[tls]", f"cert = {toml_literal(str(cert))}", f"key = {toml_literal(str(key))}"]
    path.write_text("\n".join(lines) + "\n")
    return path


class RunnelServer:
    """One `runnel serve` process; its stderr is copied to a log file."""

    def __init__(self, binary: Path, args: List[str], workdir: Path, name: str, env=None):
        self.binary = binary
        self.args = list(args)
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / f"{name}.stderr.log"
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.returncode: Optional[int] = None
        # Where the log stood when the current test began (for failure output).
        self.mark = 0
        self._ready = threading.Event()
        self._reader: Optional[threading.Thread] = None

    @property
    def uri(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self) -> "RunnelServer":
        self._ready.clear()
        self.port = None
        self.returncode = None
        self.mark = self.log_size()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("RUNNEL_CONFIG", "RUNNEL_LISTEN", "RUNNEL_DATA_DIR")
        }
        env.update(self.env or {})
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", *self.args],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _SERVERS.append(self)
        self._reader = threading.Thread(target=self._copy_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._reader.join(5)
                pytest.fail(
                    f"runnel serve exited with {self.proc.returncode} before it was "
                    f"ready; its stderr:\n{self.log_since(self.mark)}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(
                    f"runnel serve printed no 'listening' line within {READY_TIMEOUT:.0f} s; "
                    f"its stderr:\n{self.log_since(self.mark)}",
                    pytrace=False,
                )
        return self

    def _copy_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with open(self.log_path, "ab") as log:
            for raw in iter(self.proc.stderr.readline, b""):
                log.write(raw)
                log.flush()
                if not self._ready.is_set():
                    found = READY_LINE.search(raw.decode("utf-8", "replace"))
                    if found:
                        self.port = int(found.group(1))
                        self._ready.set()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL; the exit code."""
        if self.proc is None:
            raise RuntimeError("server was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.returncode = self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        return self.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int, limit: int = 20000) -> str:
        try:
            data = self.log_path.read_bytes()[offset:]
        except FileNotFoundError:
            return "(no stderr captured)"
        text = data.decode("utf-8", "replace")
        if len(text) > limit:
            text = "...(cut)...\n" + text[-limit:]
        return text or "(empty)"


# --------------------------------------------------------------------------
# pytest hooks: attach the servers' stderr to a failing test's report.


def pytest_runtest_setup(item):
    for server in _SERVERS:
        server.mark = server.log_size()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in _SERVERS:
            if server.log_size() > server.mark:
                report.sections.append(
                    (
                        f"runnel serve stderr ({server.log_path.name}, during {report.when})",
                        server.log_since(server.mark),
                    )
                )


# --------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="session")
def runnel_bin() -> Path:
    return runnel_binary()


@pytest.fixture(scope="session")
def password_hashes(runnel_bin: Path) -> dict:
    return {name: hash_password(runnel_bin, pw) for name, pw in all_users().items()}


@pytest.fixture(scope="session")
def start_server(runnel_bin: Path, password_hashes: dict, tmp_path_factory):
    """A factory: ``start_server(workdir, name)`` writes ``workdir/runnel.toml``
    (data directory ``workdir/data``) and starts a server with
    ``--config workdir/runnel.toml --listen 127.0.0.1:0``, or with ``args``
    instead (and ``env`` added to the environment); ``tls`` adds a [tls]
    section with that (cert, key) pair. Calling it again with the
    same workdir restarts on the same data. Every server still running at
    the end of the session is stopped."""
    started: List[RunnelServer] = []

    def start(workdir: Path, name: str = "server", args=None, env=None, tls=None) -> RunnelServer:
        workdir.mkdir(parents=True, exist_ok=True)
        # The tests' files live in pytest's temporary directories.
        config = write_config(
            workdir / "runnel.toml",
            workdir / "data",
            password_hashes,
            tls,
            allowed_paths=[tmp_path_factory.getbasetemp()],
        )
        if args is None:
            args = ["--config", str(config), "--listen", "127.0.0.1:0"]
        server = RunnelServer(runnel_bin, args, workdir, name, env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        if server.running:
            server.stop()


@pytest.fixture(scope="session")
def server(start_server, tmp_path_factory) -> RunnelServer:
    """The session-wide server most tests share."""
    return start_server(tmp_path_factory.mktemp("runnel-session"), "session")


# --------------------------------------------------------------------------
# Client helpers.


def adbc_connect(port: int, user: str = USER, password: str = PASSWORD):
    """An ADBC DB-API connection with username/password (basic auth
    handshake, then the bearer token on every call)."""
    return flightsql_dbapi.connect(
        f"grpc://127.0.0.1:{port}",
        db_kwargs={
            adbc_driver_manager.DatabaseOptions.USERNAME.value: user,
            adbc_driver_manager.DatabaseOptions.PASSWORD.value: password,
            # A server bug must fail a test, not hang the suite.
            adbc_driver_flightsql.DatabaseOptions.TIMEOUT_QUERY.value: "60",
            adbc_driver_flightsql.DatabaseOptions.TIMEOUT_FETCH.value: "60",
            adbc_driver_flightsql.DatabaseOptions.TIMEOUT_UPDATE.value: "60",
        },
        # The server has no transactions; ask for no autocommit=False dance.
        autocommit=True,
    )


@pytest.fixture(scope="session")
def conn(server):
    """A session-wide ADBC connection to the session server."""
    connection = adbc_connect(server.port)
    yield connection
    connection.close()


def query(connection, sql: str, parameters=None):
    """Runs one statement and returns its result as a pyarrow Table."""
    with connection.cursor() as cur:
        if parameters is None:
            cur.execute(sql)
        else:
            cur.execute(sql, parameters)
        return cur.fetch_arrow_table()


def rows(connection, sql: str, parameters=None) -> List[tuple]:
    table = query(connection, sql, parameters)
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return list(zip(*columns))


def wait_for(what: str, probe: Callable[[], object], timeout: float = 60.0, interval: float = 0.25):
    """Calls `probe` until it returns something truthy; fails after `timeout`
    seconds, saying what it waited for and what the probe returned last."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last probe: {last!r}")
        time.sleep(interval)


def job_status(connection, job_id: str) -> Optional[str]:
    table = query(connection, "SELECT job_id, status FROM system.jobs")
    for jid, status in zip(table.column("job_id").to_pylist(), table.column("status").to_pylist()):
        if jid == job_id:
            return status
    return None


def wait_for_job(connection, job_id: str, status: str = "FINISHED", timeout: float = 60.0) -> str:
    def probe():
        current = job_status(connection, job_id)
        if current in ("FAILED", "CANCELED", "CANCELLED") and current != status:
            pytest.fail(f"job {job_id} ended as {current} while waiting for {status}")
        return current == status and current

    return wait_for(f"job {job_id} to be {status}", probe, timeout)


def single_job_id(table) -> str:
    """The job id of a statement that started a job (one row, `job_id`)."""
    assert table.num_rows == 1, table
    assert "job_id" in table.column_names, table.schema
    job_id = table.column("job_id")[0].as_py()
    assert re.fullmatch(r"job-\d+", job_id), job_id
    return job_id


# --------------------------------------------------------------------------
# Test data: a small CSV file of sensor readings whose answers the tests
# compute in Python.


class SensorData:
    """Rows (id, device, temp, ts) written as CSV with a header line."""

    COLUMNS = ("id", "device", "temp", "ts")
    SQL_COLUMNS = "id INT, device STRING, temp DOUBLE, ts TIMESTAMP(3)"

    def __init__(self, path: Path, count: int = 60, seed: int = 2026):
        import datetime as dt
        import random

        rng = random.Random(seed)
        start = dt.datetime(2026, 1, 1, 0, 0, 0)
        devices = ["d1", "d2", "d3", "d4", "d5"]
        self.path = path
        self.rows = []
        offset = 0
        for i in range(1, count + 1):
            offset += rng.randint(1, 9)
            # Whole tenths, so that the CSV text is the exact value.
            temp = rng.randint(400, 950) / 10
            self.rows.append((i, rng.choice(devices), temp, start + dt.timedelta(seconds=offset)))
        lines = [",".join(self.COLUMNS)]
        for i, device, temp, ts in self.rows:
            lines.append(f"{i},{device},{temp!r},{ts:%Y-%m-%d %H:%M:%S}")
        path.write_text("\n".join(lines) + "\n")

    def ddl(self, name: str, watermark: bool = True) -> str:
        wm = ", WATERMARK FOR ts AS ts - INTERVAL '1' SECOND" if watermark else ""
        return (
            f"CREATE TABLE {name} ({self.SQL_COLUMNS}{wm}) WITH ("
            f"'connector' = 'filesystem', 'path' = '{self.path}', 'format' = 'csv', "
            "'csv.ignore-first-line' = 'true')"
        )

    def by_device(self):
        groups = {}
        for _, device, temp, _ in self.rows:
            groups.setdefault(device, []).append(temp)
        return groups

    def minute_windows(self):
        """(window_start, count, sum of temp) of 1-minute tumbling windows."""
        import datetime as dt

        windows = {}
        for _, _, temp, ts in self.rows:
            start = ts.replace(second=0, microsecond=0)
            count, total = windows.get(start, (0, 0.0))
            windows[start] = (count + 1, total + temp)
        return {start: (start + dt.timedelta(minutes=1), c, t) for start, (c, t) in windows.items()}


COMMAND_STATEMENT_QUERY = "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"


# ------------------------------------------------------------ protobuf by hand


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def statement_query_command(sql: str) -> bytes:
    """A google.protobuf.Any holding a Flight SQL CommandStatementQuery."""
    inner = _bytes_field(1, sql.encode("utf-8"))
    return _bytes_field(1, COMMAND_STATEMENT_QUERY.encode("ascii")) + _bytes_field(2, inner)
