"""`runnel serve` settings from flags, environment and config file (flags
win over the environment, the environment over the file), --allow-anonymous
and TLS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi
import pytest
from pyarrow import flight

from conftest import PASSWORD, USER, adbc_connect, query
from test_subscribe import statement_query_command


def has_data(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def create_something(port: int, name: str):
    conn = adbc_connect(port)
    try:
        query(
            conn,
            f"CREATE TABLE {name} (event_time TIMESTAMP(3), device_id STRING) "
            "WITH ('connector' = 'datagen', 'number-of-rows' = '10')",
        )
        tables = query(conn, "SELECT table_name FROM system.tables").column(0).to_pylist()
        assert name in tables
    finally:
        conn.close()


def test_config_from_the_environment(start_server, tmp_path):
    """RUNNEL_CONFIG, RUNNEL_LISTEN and RUNNEL_DATA_DIR stand in for the flags;
    RUNNEL_DATA_DIR wins over the file's data_dir."""
    env_data = tmp_path / "env-data"
    config = tmp_path / "runnel.toml"  # written by start_server
    server = start_server(
        tmp_path,
        "env",
        args=[],
        env={
            "RUNNEL_CONFIG": str(config),
            "RUNNEL_LISTEN": "127.0.0.1:0",
            "RUNNEL_DATA_DIR": str(env_data),
        },
    )
    # The file says 50051; the environment said port 0, so some other port.
    assert server.port != 50051
    create_something(server.port, "cli_env_table")
    assert server.stop() == 0
    assert has_data(env_data)
    assert not has_data(tmp_path / "data"), "the config file's data_dir was used"


def test_flags_win_over_the_environment(start_server, tmp_path):
    env_data = tmp_path / "env-data"
    flag_data = tmp_path / "flag-data"
    server = start_server(
        tmp_path,
        "flags",
        args=[
            "--config",
            str(tmp_path / "runnel.toml"),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(flag_data),
        ],
        env={"RUNNEL_DATA_DIR": str(env_data), "RUNNEL_LISTEN": "127.0.0.1:50051"},
    )
    assert server.port != 50051
    create_something(server.port, "cli_flag_table")
    assert server.stop() == 0
    assert has_data(flag_data)
    assert not has_data(env_data)
    assert not has_data(tmp_path / "data")


def test_allow_anonymous(start_server, tmp_path):
    server = start_server(
        tmp_path,
        "anonymous",
        args=["--config", str(tmp_path / "runnel.toml"), "--listen", "127.0.0.1:0", "--allow-anonymous"],
    )
    client = flight.FlightClient(f"grpc+tcp://127.0.0.1:{server.port}")
    try:
        descriptor = flight.FlightDescriptor.for_command(
            statement_query_command("SELECT table_name FROM system.tables")
        )
        options = flight.FlightCallOptions(timeout=30)
        info = client.get_flight_info(descriptor, options)
        names = client.do_get(info.endpoints[0].ticket, options).read_all().column(0).to_pylist()
        assert {"jobs", "tables", "columns", "metrics"} <= set(names)
        # Users can still log in, and a wrong password is still refused.
        assert client.authenticate_basic_token(USER, PASSWORD)[0] == b"authorization"
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token(USER, PASSWORD + "-wrong")
    finally:
        client.close()
    assert server.stop() == 0


def test_tls(start_server, tmp_path):
    """With a [tls] section the server speaks TLS: clients that trust its
    certificate connect, and a plain-text client does not."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = start_server(tmp_path, "tls", tls=(cert, key))
    pem = cert.read_bytes()

    client = flight.FlightClient(f"grpc+tls://127.0.0.1:{server.port}", tls_root_certs=pem)
    try:
        token = client.authenticate_basic_token(USER, PASSWORD)
        options = flight.FlightCallOptions(headers=[token], timeout=30)
        descriptor = flight.FlightDescriptor.for_command(
            statement_query_command("SELECT table_name FROM system.tables")
        )
        info = client.get_flight_info(descriptor, options)
        names = client.do_get(info.endpoints[0].ticket, options).read_all().column(0).to_pylist()
        assert "jobs" in names
    finally:
        client.close()

    conn = adbc_driver_flightsql.dbapi.connect(
        f"grpc+tls://127.0.0.1:{server.port}",
        db_kwargs={
            "username": USER,
            "password": PASSWORD,
            adbc_driver_flightsql.DatabaseOptions.TLS_ROOT_CERTS.value: pem.decode(),
        },
        autocommit=True,
    )
    try:
        assert conn.adbc_get_info()["vendor_name"] == "Runnel"
    finally:
        conn.close()

    plain = flight.FlightClient(f"grpc+tcp://127.0.0.1:{server.port}")
    try:
        with pytest.raises(flight.FlightError):
            plain.authenticate_basic_token(USER, PASSWORD, flight.FlightCallOptions(timeout=10))
    finally:
        plain.close()
    assert server.stop() == 0


def run_script(runnel_bin: Path, tmp_path: Path, select: str) -> subprocess.CompletedProcess:
    data = tmp_path / "t.csv"
    data.write_text("n\n1\n")
    script = tmp_path / "chain.sql"
    script.write_text(
        "CREATE TABLE t (n BIGINT) WITH ('connector' = 'filesystem', "
        f"'path' = '{data}', 'format' = 'csv', 'csv.ignore-first-line' = 'true');\n"
        f"{select};\n"
    )
    return subprocess.run(
        [str(runnel_bin), "run", str(script)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("op", [" + ", " * ", " || ", " OR ", " AND ", " = "])
def test_run_refuses_a_100000_term_chain_with_its_position(runnel_bin, tmp_path, op):
    """`runnel run` answers a 100,000-term chain of any operator with an
    error at the operator that passes the depth limit, instead of dying
    of a stack overflow (a signal)."""
    operand = "n = 1" if op.strip() in ("OR", "AND") else "n"
    done = run_script(runnel_bin, tmp_path, "SELECT " + op.join([operand] * 100_000) + " FROM t")
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    first_line = done.stderr.splitlines()[0]
    assert "the expression is too deep" in first_line
    assert f"{tmp_path / 'chain.sql'}:2:" in first_line
    # The offending line is shown cut around the error, not whole.
    assert len(done.stderr) < 2_000


def test_run_computes_a_900_term_chain(runnel_bin, tmp_path):
    done = run_script(runnel_bin, tmp_path, "SELECT " + " + ".join(["n"] * 900) + " AS total FROM t")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "+I[900]" in done.stdout
