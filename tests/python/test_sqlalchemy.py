"""flightsql-dbapi through SQLAlchemy (1.4): connecting by URL, queries, and
reflection through the Flight SQL metadata calls.

flightsql-dbapi's package metadata registers its dialect under the entry
point name ``datafusion``, so ``datafusion://USER:PASSWORD@HOST:PORT?insecure=true``
works as is (``insecure`` means plain TCP instead of TLS). Without
``feature-sqlalchemy-prepared-statements=on`` the dialect writes bound
values into the SQL text itself, and text() parameters come out as NULL;
with it, they are sent as prepared-statement parameters. That full URL is
the one the README gives. ``datafusion+flightsql://`` only works after importing
``flightsql.sqlalchemy``.
"""

from __future__ import annotations

import pytest
import sqlalchemy
from sqlalchemy import Column, MetaData, Table, inspect, select, text, types
from sqlalchemy.engine import URL

from conftest import PASSWORD, USER, SensorData

TABLE = "sa_sensors"


@pytest.fixture(scope="module")
def engine(server):
    url = URL.create(
        "datafusion",
        username=USER,
        password=PASSWORD,
        host="127.0.0.1",
        port=server.port,
        query={"insecure": "true", "feature-sqlalchemy-prepared-statements": "on"},
    )
    eng = sqlalchemy.create_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def sensors(engine, tmp_path_factory) -> SensorData:
    """The test table, created through SQLAlchemy as well: DDL answers with
    one `result` row."""
    data = SensorData(tmp_path_factory.mktemp("sa-data") / "sensors.csv", count=40, seed=5)
    with engine.connect() as c:
        result = c.execute(text(data.ddl(TABLE, watermark=False)))
        assert list(result.keys()) == ["result"]
        assert len(result.fetchall()) == 1
    return data


def test_the_readme_url(server, sensors):
    """The URL the README gives, as a string, with a plain install: the
    ``datafusion`` entry point of flightsql-dbapi, nothing imported first."""
    eng = sqlalchemy.create_engine(
        f"datafusion://{USER}:{PASSWORD}@127.0.0.1:{server.port}"
        "?insecure=true&feature-sqlalchemy-prepared-statements=on"
    )
    try:
        with eng.connect() as c:
            got = c.execute(text(f"SELECT COUNT(*) AS n FROM {TABLE}")).scalar()
            assert got == len(sensors.rows)
            got = c.execute(text(f"SELECT COUNT(*) AS n FROM {TABLE} WHERE id > :id"), {"id": 10}).scalar()
            assert got == sum(1 for i, _, _, _ in sensors.rows if i > 10)
    finally:
        eng.dispose()


def test_bound_parameters(engine, sensors):
    """SQLAlchemy binds parameters through flightsql-dbapi, which sends each
    as a dense union of int64, float64, utf8, binary and bool; the server
    takes the value the union holds and types it as the placeholder."""
    with engine.connect() as c:
        got = c.execute(
            text(f"SELECT id FROM {TABLE} WHERE device = :device AND temp > :temp AND id >= :id ORDER BY id"),
            {"device": "d2", "temp": 40.5, "id": 3},
        ).fetchall()
    assert [r[0] for r in got] == [i for i, d, t, _ in sensors.rows if d == "d2" and t > 40.5 and i >= 3]


def test_anonymous_server_through_sqlalchemy(start_server, tmp_path):
    """Against `--allow-anonymous`, SQLAlchemy without credentials works:
    it sends ``Bearer None``, which such a server takes as anonymous."""
    server = start_server(
        tmp_path,
        "sa-anonymous",
        args=["--config", str(tmp_path / "runnel.toml"), "--listen", "127.0.0.1:0", "--allow-anonymous"],
    )
    eng = sqlalchemy.create_engine(
        f"datafusion://127.0.0.1:{server.port}?insecure=true&feature-sqlalchemy-prepared-statements=on"
    )
    try:
        with eng.connect() as c:
            names = [r[0] for r in c.execute(text("SELECT table_name FROM system.tables")).fetchall()]
            assert "jobs" in names
            # Parameters work there too.
            got = c.execute(
                text("SELECT table_name FROM system.tables WHERE table_name = :name"), {"name": "jobs"}
            ).fetchall()
            assert [r[0] for r in got] == ["jobs"]
    finally:
        eng.dispose()
    assert server.stop() == 0


def test_text_query(engine, sensors):
    with engine.connect() as c:
        result = c.execute(text(f"SELECT id, device, temp FROM {TABLE} ORDER BY id LIMIT 4"))
        assert list(result.keys()) == ["id", "device", "temp"]
        got = [tuple(r) for r in result.fetchall()]
    assert got == [(i, d, t) for i, d, t, _ in sensors.rows[:4]]


def test_aggregate_query(engine, sensors):
    with engine.connect() as c:
        got = dict(
            c.execute(text(f"SELECT device, MAX(temp) AS hi FROM {TABLE} GROUP BY device")).fetchall()
        )
    assert got == {d: max(t) for d, t in sensors.by_device().items()}


def test_reflection(engine, sensors):
    inspector = inspect(engine)
    assert TABLE in inspector.get_table_names()
    assert TABLE in inspector.get_table_names(schema="public")
    assert "public" in inspector.get_schema_names()
    columns = inspector.get_columns(TABLE)
    assert [c["name"] for c in columns] == list(SensorData.COLUMNS)
    expected = [types.INTEGER, types.TEXT, types.FLOAT, types.TIMESTAMP]
    assert [type(c["type"]) for c in columns] == expected


def test_core_select_on_a_reflected_table(engine, sensors):
    table = Table(TABLE, MetaData(), autoload_with=engine)
    assert [c.name for c in table.columns] == list(SensorData.COLUMNS)
    stmt = select(table.c.id, table.c.temp).where(table.c.device == "d2").order_by(table.c.id)
    with engine.connect() as c:
        got = [tuple(r) for r in c.execute(stmt).fetchall()]
    assert got == [(i, t) for i, d, t, _ in sensors.rows if d == "d2"]


def test_core_select_on_a_declared_table(engine, sensors):
    """Without reflection: a Table declared in Python, filtered by a value
    SQLAlchemy binds as a parameter."""
    table = Table(TABLE, MetaData(), Column("id", types.Integer), Column("temp", types.Float))
    stmt = select(sqlalchemy.func.count()).select_from(table).where(table.c.temp >= 60.0)
    with engine.connect() as c:
        got = c.execute(stmt).scalar()
    assert got == sum(1 for _, _, t, _ in sensors.rows if t >= 60.0)


# ------------------------------------------------ the flightsql-dbapi client


@pytest.fixture(scope="module")
def client(server):
    from flightsql import FlightSQLClient

    c = FlightSQLClient(host="127.0.0.1", port=server.port, user=USER, password=PASSWORD, insecure=True)
    yield c
    c.close()


def fetch(client, info):
    return client.do_get(info.endpoints[0].ticket).read_all()


def test_catalogs_and_schemas(client):
    assert fetch(client, client.get_catalogs()).column("catalog_name").to_pylist() == ["runnel"]
    schemas = fetch(client, client.get_db_schemas()).to_pylist()
    assert {(s["catalog_name"], s["db_schema_name"]) for s in schemas} == {
        ("runnel", "public"),
        ("runnel", "system"),
    }


def test_tables_filtered_by_type_and_pattern(client, engine, sensors):
    view = "sa_cool_view"
    with engine.connect() as c:
        c.execute(text(f"CREATE VIEW {view} AS SELECT id FROM {TABLE} WHERE temp < 50"))
    views = fetch(client, client.get_tables(table_types=["VIEW"])).to_pylist()
    assert view in [v["table_name"] for v in views]
    assert {v["table_type"] for v in views} == {"VIEW"}
    system = fetch(client, client.get_tables(db_schema_filter_pattern="sys%")).to_pylist()
    assert {t["table_name"] for t in system} >= {"jobs", "tables", "columns", "metrics"}
    assert {(t["db_schema_name"], t["table_type"]) for t in system} == {("system", "SYSTEM TABLE")}
    mine = fetch(client, client.get_tables(table_name_filter_pattern="sa\\_sens%")).to_pylist()
    assert [t["table_name"] for t in mine] == [TABLE]


def test_xdbc_type_info_covers_the_ddl_types(client):
    table = fetch(client, client.get_xdbc_type_info(None)).to_pylist()
    codes = {t["type_name"]: t["data_type"] for t in table}
    # JDBC/XDBC codes: INTEGER 4, DOUBLE 8, VARCHAR 12, TIMESTAMP 93.
    assert codes.get("INT") == 4
    assert codes.get("DOUBLE") == 8
    assert codes.get("STRING") == 12
    assert codes.get("TIMESTAMP(3)") == 93


def test_primary_keys(client, engine, sensors, tmp_path_factory):
    from flightsql import TableRef

    path = tmp_path_factory.mktemp("sa-pk") / "people.csv"
    path.write_text("1,ann\n2,bo\n")
    with engine.connect() as c:
        c.execute(
            text(
                "CREATE TABLE sa_people (id INT, name STRING, PRIMARY KEY (id, name) NOT ENFORCED) "
                f"WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')"
            )
        )
    keys = fetch(client, client.get_primary_keys(TableRef(table="sa_people"))).to_pylist()
    assert [(k["table_name"], k["column_name"], k["key_sequence"]) for k in keys] == [
        ("sa_people", "id", 1),
        ("sa_people", "name", 2),
    ]
    none = fetch(client, client.get_primary_keys(TableRef(table=TABLE))).to_pylist()
    assert none == []


def test_dbapi_parameters(client, server, sensors):
    """flightsql-dbapi's own DB-API cursor with ``?`` parameters of each
    kind it sends: int, float, str and bool."""
    import flightsql

    conn = flightsql.connect(client)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT id FROM {TABLE} WHERE id > ? AND temp < ? AND device <> ? ORDER BY id", [5, 70.0, "d1"])
        got = [r[0] for r in cur.fetchall()]
        assert got == [i for i, d, t, _ in sensors.rows if i > 5 and t < 70.0 and d != "d1"]
        cur.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE (id > 3) = ?", [True])
        assert cur.fetchall()[0][0] == sum(1 for i, _, _, _ in sensors.rows if i > 3)
    finally:
        conn.close()
