"""Read a Delta Lake table with two independent readers, for the sink tests.

The readers are DuckDB's ``delta`` extension (``delta_scan``, built on
delta-kernel-rs) and the Python ``deltalake`` package (delta-rs). Both
return the table's rows in the same normalised form, so that a test can
check that they agree, and check the rows against what was written.

As a command (run it with the python of the test venv, see
scripts/python-tests.sh)::

    python delta_readers.py [--app-id ID ...] TABLE_PATH

prints one JSON object to stdout::

    {"version": 3,                        # latest table version (deltalake)
     "duckdb": [{...}, ...],              # rows read by DuckDB
     "deltalake": [{...}, ...],           # rows read by deltalake
     "txns": {"app": 7},                  # app-transaction (txn) versions,
     "duckdb_txns": {"app": 7}}           #   by deltalake and by DuckDB

and exits 0, or prints a message to stderr and exits 1 when either reader
fails. Both readers read the same snapshot: the latest version that
deltalake sees, which DuckDB is then asked for (``version => N``).

Normalised rows (the same for both readers):

* rows are dicts from column name to value, partition columns included, and
  are sorted by their values, column by column in column-name order;
* timestamp (with time zone) -> ISO 8601 in UTC with microseconds and a
  ``Z``: ``"2024-01-01T00:00:00.123000Z"``; timestamp_ntz -> the same
  without the ``Z``; date -> ``"2024-01-01"``;
* decimal -> its text (``"1.23"``, the column's scale kept); binary -> lower
  case hex; NaN and the infinities -> ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"`` (JSON has no such numbers); struct -> dict; list -> list;
  map -> dict with text keys.

A table on S3 (``s3://bucket/path``) is read through the endpoint and
credentials in the environment: ``AWS_ENDPOINT_URL`` (for example
``http://127.0.0.1:9000``), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``
and ``AWS_REGION`` (default ``us-east-1``); DuckDB then also loads its
httpfs extension (from ``duckdb-extension-httpfs``, the same way).

The delta extension is loaded offline from the ``duckdb-extension-delta``
wheel (``LOAD '<site-packages>/duckdb_extension_delta/extensions/v<duckdb
version>/delta.duckdb_extension'``); ``INSTALL delta`` would download it.
This module imports no pytest.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import decimal
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

Row = Dict[str, Any]

__all__ = [
    "delta_extension_path",
    "duckdb_connect",
    "normalize_value",
    "read_deltalake",
    "read_duckdb",
    "read_all",
    "table_version",
    "txn_app_ids",
    "txn_versions",
    "txn_versions_duckdb",
    "main",
]


# ---------------------------------------------------------------- normalising


def normalize_value(value: Any, arrow_type: Any = None) -> Any:
    """One value from ``pyarrow.Table.to_pylist()`` as plain, exact JSON.

    ``arrow_type`` (the column's pyarrow type) tells a map, which pyarrow
    gives as a list of (key, value) tuples, from a list.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    # datetime before date: a datetime is a date.
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            utc = value.astimezone(_dt.timezone.utc)
            return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        return value.isoformat(timespec="microseconds")
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, _dt.time):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, _dt.timedelta):
        return value // _dt.timedelta(microseconds=1)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        fields = {}
        if arrow_type is not None and hasattr(arrow_type, "num_fields") and hasattr(arrow_type, "field"):
            try:
                fields = {arrow_type.field(i).name: arrow_type.field(i).type for i in range(arrow_type.num_fields)}
            except Exception:  # noqa: BLE001 - not a struct after all
                fields = {}
        return {str(k): normalize_value(v, fields.get(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        import pyarrow.types as pat

        if arrow_type is not None and pat.is_map(arrow_type):
            return {
                str(normalize_value(k, arrow_type.key_type)): normalize_value(v, arrow_type.item_type)
                for k, v in value
            }
        item_type = getattr(arrow_type, "value_type", None)
        return [normalize_value(v, item_type) for v in value]
    # Anything else (pandas Timestamp and the like): its text.
    return str(value)


def _sort_part(value: Any) -> tuple:
    if value is None:
        return (1, 0, "")
    if isinstance(value, bool):
        return (0, 0, int(value))
    if isinstance(value, (int, float)):
        return (0, 1, value)
    if isinstance(value, str):
        return (0, 2, value)
    return (0, 3, json.dumps(value, sort_keys=True))


def _sort_key(row: Row) -> tuple:
    return tuple((name, _sort_part(row[name])) for name in sorted(row))


def _normalize_table(table: Any) -> List[Row]:
    """A pyarrow Table as sorted, normalised rows."""
    types = {field.name: field.type for field in table.schema}
    rows = [
        {name: normalize_value(value, types.get(name)) for name, value in row.items()}
        for row in table.to_pylist()
    ]
    rows.sort(key=_sort_key)
    return rows


# --------------------------------------------------------------------- DuckDB


def _is_s3(path: str | os.PathLike) -> bool:
    return str(path).startswith("s3://")


def _location(path: str | os.PathLike) -> str:
    """A local path made absolute; an s3:// URL as it is."""
    return str(path) if _is_s3(path) else os.path.abspath(path)


def _s3_settings() -> Dict[str, str]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    return {
        "endpoint": endpoint,
        "key": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "secret": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "region": os.environ.get("AWS_REGION", "us-east-1"),
    }


def _extension_path(module: str, name: str) -> Path:
    import importlib

    import duckdb

    root = Path(importlib.import_module(module).__file__).resolve().parent / "extensions"
    path = root / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(f"{module} has no {name} extension for duckdb {duckdb.__version__}")
    return path


def delta_extension_path() -> Path:
    """The delta extension shipped by duckdb-extension-delta for this duckdb.

    The wheel holds ``extensions/v<version>/delta.duckdb_extension``; DuckDB
    refuses an extension built for another version, which is why
    duckdb and duckdb-extension-delta are pinned to the same version.
    """
    import duckdb
    import duckdb_extension_delta

    root = Path(duckdb_extension_delta.__file__).resolve().parent / "extensions"
    version = duckdb.__version__
    path = root / f"v{version}" / "delta.duckdb_extension"
    if not path.is_file():
        shipped = sorted(p.name for p in root.glob("v*")) if root.is_dir() else []
        raise RuntimeError(
            f"duckdb-extension-delta has no delta extension for duckdb {version} "
            f"(it ships {', '.join(shipped) or 'none'} under {root}); pin "
            "duckdb and duckdb-extension-delta to the same version"
        )
    return path


def duckdb_connect(s3: bool = False) -> Any:
    """An in-memory DuckDB connection with the delta extension loaded (and,
    for ``s3``, httpfs and a secret for the endpoint in the environment)."""
    import duckdb

    con = duckdb.connect(
        config={
            # Never reach for extensions.duckdb.org: fail at once instead.
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )
    if s3:
        httpfs = str(_extension_path("duckdb_extension_httpfs", "httpfs")).replace("'", "''")
        con.execute(f"LOAD '{httpfs}'")
    ext = str(delta_extension_path()).replace("'", "''")
    con.execute(f"LOAD '{ext}'")
    con.execute("SET TimeZone = 'UTC'")
    if s3:
        st = _s3_settings()
        endpoint = st["endpoint"]
        use_ssl = not endpoint.startswith("http://")
        host = endpoint.split("://", 1)[-1].rstrip("/")
        con.execute(
            "CREATE SECRET runnel_s3 (TYPE S3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, "
            "URL_STYLE 'path', USE_SSL ?)",
            [st["key"], st["secret"], st["region"], host, use_ssl],
        )
    return con


def _duckdb_arrow(result: Any) -> Any:
    # duckdb 1.5 renamed fetch_arrow_table to to_arrow_table (the old name
    # warns). Arrow, not fetchall(): fetchall() of a TIMESTAMPTZ needs pytz.
    to_arrow = getattr(result, "to_arrow_table", None) or result.fetch_arrow_table
    return to_arrow()


def read_duckdb(path: str | os.PathLike, version: Optional[int] = None) -> List[Row]:
    """The table's rows by DuckDB's ``delta_scan`` (latest, or ``version``)."""
    s3 = _is_s3(path)
    path = _location(path)
    con = duckdb_connect(s3)
    try:
        if version is None:
            result = con.execute("SELECT * FROM delta_scan(?)", [path])
        else:
            result = con.execute(
                "SELECT * FROM delta_scan(?, version => ?)", [path, int(version)]
            )
        return _normalize_table(_duckdb_arrow(result))
    finally:
        con.close()


def txn_versions_duckdb(path: str | os.PathLike, app_ids: Iterable[str]) -> Dict[str, Optional[int]]:
    """App-transaction versions by DuckDB (``delta_get_transaction_version``).

    That function takes an attached delta catalog's name, not a path, so the
    table is ATTACHed first. An app id with no txn maps to None.
    """
    s3 = _is_s3(path)
    path = _location(path)
    con = duckdb_connect(s3)
    try:
        quoted = path.replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS delta_table (TYPE delta, READ_ONLY)")
        out: Dict[str, Optional[int]] = {}
        for app_id in app_ids:
            row = con.execute(
                "SELECT version FROM delta_get_transaction_version('delta_table', ?)",
                [app_id],
            ).fetchone()
            out[app_id] = None if row is None or row[0] is None else int(row[0])
        return out
    finally:
        con.close()


# ------------------------------------------------------------------ deltalake


def _delta_table(path: str | os.PathLike, version: Optional[int] = None) -> Any:
    from deltalake import DeltaTable

    if not _is_s3(path):
        return DeltaTable(os.path.abspath(path), version=version)
    st = _s3_settings()
    options = {
        "AWS_ENDPOINT_URL": st["endpoint"],
        "AWS_ACCESS_KEY_ID": st["key"],
        "AWS_SECRET_ACCESS_KEY": st["secret"],
        "AWS_REGION": st["region"],
        "AWS_ALLOW_HTTP": "true" if st["endpoint"].startswith("http://") else "false",
    }
    return DeltaTable(str(path), version=version, storage_options=options)


def table_version(path: str | os.PathLike) -> int:
    """The latest version of the table, by deltalake."""
    return int(_delta_table(path).version())


def read_deltalake(path: str | os.PathLike, version: Optional[int] = None) -> List[Row]:
    """The table's rows by deltalake (latest, or ``version``)."""
    return _normalize_table(_delta_table(path, version).to_pyarrow_table())


def txn_app_ids(path: str | os.PathLike) -> List[str]:
    """Every app id that has a txn action in the table's log.

    deltalake answers for one app id at a time
    (``DeltaTable.transaction_version(app_id)``) and does not list them, so
    they are collected here from the commit files and any checkpoint.
    """
    log = Path(path) / "_delta_log"
    ids = set()
    if not log.is_dir():
        return []
    for entry in log.iterdir():
        name = entry.name
        if name.endswith(".json") and name[:20].isdigit():
            with entry.open(encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line or '"txn"' not in line:
                        continue
                    action = json.loads(line)
                    txn = action.get("txn")
                    if txn and txn.get("appId") is not None:
                        ids.add(txn["appId"])
        elif ".checkpoint" in name and name.endswith(".parquet"):
            import pyarrow.parquet as pq

            schema = pq.read_schema(entry)
            if "txn" not in schema.names:
                continue
            for txn in pq.read_table(entry, columns=["txn"]).column("txn").to_pylist():
                if txn and txn.get("appId") is not None:
                    ids.add(txn["appId"])
    return sorted(ids)


def txn_versions(
    path: str | os.PathLike, app_ids: Optional[Iterable[str]] = None
) -> Optional[Dict[str, Optional[int]]]:
    """App-transaction versions by deltalake: ``{app_id: version}``.

    ``app_ids`` defaults to every app id in the log (see txn_app_ids). None
    when this deltalake has no ``DeltaTable.transaction_version``.
    """
    table = _delta_table(path)
    lookup = getattr(table, "transaction_version", None)
    if lookup is None:
        return None
    ids = txn_app_ids(path) if app_ids is None else list(app_ids)
    out: Dict[str, Optional[int]] = {}
    for app_id in ids:
        version = lookup(app_id)
        out[app_id] = None if version is None else int(version)
    return out


# ------------------------------------------------------------------------ CLI


class ReaderError(Exception):
    """One reader failed; the message names it."""


def read_all(path: str | os.PathLike, app_ids: Optional[Iterable[str]] = None) -> Dict[str, Any]:
    """What the command prints, as a dict; raises ReaderError."""
    try:
        version = table_version(path)
        from_deltalake = read_deltalake(path, version)
        txns = txn_versions(path, app_ids)
    except Exception as e:  # noqa: BLE001 - reported whole
        raise ReaderError(f"deltalake reader failed on {path}: {type(e).__name__}: {e}") from e
    try:
        from_duckdb = read_duckdb(path, version)
        duckdb_txns = txn_versions_duckdb(path, txns) if txns else ({} if txns is not None else None)
    except Exception as e:  # noqa: BLE001
        raise ReaderError(f"duckdb reader failed on {path}: {type(e).__name__}: {e}") from e
    out: Dict[str, Any] = {
        "duckdb": from_duckdb,
        "deltalake": from_deltalake,
        "version": version,
    }
    if txns is not None:
        out["txns"] = txns
        out["duckdb_txns"] = duckdb_txns
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="delta_readers.py",
        description="Read a Delta table with DuckDB and deltalake; print both as JSON.",
    )
    parser.add_argument("table_path", help="directory of the Delta table")
    parser.add_argument(
        "--app-id",
        action="append",
        dest="app_ids",
        metavar="ID",
        help="report the txn version of this app id (repeatable); "
        "default: every app id in the log",
    )
    args = parser.parse_args(argv)
    if not _is_s3(args.table_path) and not (Path(args.table_path) / "_delta_log").is_dir():
        print(f"delta_readers: {args.table_path}: not a Delta table (no _delta_log)", file=sys.stderr)
        return 1
    try:
        out = read_all(args.table_path, args.app_ids)
    except ReaderError as e:
        print(f"delta_readers: {e}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
