"""Runnel and Apache Flink side by side on the same Nexmark events.

Run through compare.sh, which builds `runnel-bench`, makes the Flink venv
and calls this with that venv's python:

    compare.py --runnel-bench PATH [--events N] [--parallelism P]
               [--query q0,q1,...] [--json FILE] [--markdown FILE] [--no-check]

1. `runnel-bench nexmark-events` writes the events once, as JSON lines, to
   one file (event-time order).
2. For each query, both engines read that file with the same table
   declaration (`_source.sql`, with the filesystem connector) and run the
   same query file into a blackhole sink; the time each takes from job start
   to job end gives events per second. Flink runs in a local MiniCluster in
   this process (PyFlink), started before the clock starts. Flink's job
   start-up (submitting and scheduling a job) is measured once, as the
   median time of q0 over a file of four events, and reported subtracted
   too.
3. Then each engine runs the query again for its final rows: Runnel
   collects them (`runnel-bench --output-dir`, the changelog of an updating
   result applied), Flink runs the same SQL in batch mode into JSON files;
   the two multisets of rows must be equal. Timestamps are compared as epoch milliseconds and doubles
   to 9 significant digits (Flink computes `0.908 * price` in DECIMAL).
   A Top-N or deduplication result is defined only up to ties: of input
   rows equal in the PARTITION BY and ORDER BY columns, either may be the
   one kept (Flink's batch sort does not keep arrival order). For those
   queries (TIE_KEYS) rows that differ are compared again on the columns
   that decide the result; equal there counts as equal, and the number of
   rows that differ only among tied rows is reported.

With --no-check, step 3 is skipped (it doubles the time of a run). The
exit status is 1 when any query's results differ.
"""

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NEXMARK = os.path.dirname(HERE)
GENERATOR_OPTIONS = "'connector' = 'nexmark', 'number-of-events' = '${EVENTS}'"
DEFAULT_QUERIES = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9", "q11", "q15", "q16", "q17", "q18", "q19", "q20", "q21", "q22"]


# Output columns that decide a Top-N or deduplication result (partition,
# order and rank columns); see step 3 above.
TIE_KEYS = {
    "q18": (0, 1, 5),  # auction, bidder, date_time: the last bid's time
    "q19": (0, 2, 6),  # auction, price, rank_number
}


def read(name):
    with open(os.path.join(NEXMARK, name)) as f:
        return f.read()


def statements(sql):
    """Splits a script at semicolons that end a line; drops comments."""
    lines = [l for l in sql.splitlines() if not l.strip().startswith("--")]
    parts = re.split(r";\s*$", "\n".join(lines), flags=re.M)
    return [p.strip() for p in parts if p.strip()]


def flink_source(events_file):
    src = read("_source.sql")
    if GENERATOR_OPTIONS not in src:
        sys.exit("_source.sql no longer has the generator options to replace")
    return src.replace(
        GENERATOR_OPTIONS,
        "'connector' = 'filesystem', 'path' = 'file://%s', 'format' = 'json', "
        "'json.timestamp-format.standard' = 'ISO-8601'" % events_file,
    )


def normal(v):
    """A value as both engines' rows are compared."""
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return int(v.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
    if isinstance(v, str) and re.match(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d", v):
        return normal(dt.datetime.fromisoformat(v))
    if isinstance(v, bool):
        return v
    if isinstance(v, float) or type(v).__name__ == "Decimal":
        return float("%.9g" % float(v))
    return v


def run_runnel(bench, query, events_file, parallelism, workdir, output):
    """Runs one query with runnel-bench; returns its result dict."""
    out_json = os.path.join(workdir, "runnel-%s%s.json" % (query, "-out" if output else ""))
    cmd = [bench, "nexmark", "--query", query, "--events-file", events_file,
           "--parallelism", str(parallelism), "--json", out_json]
    if output:
        cmd += ["--output-dir", output]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out_json) as f:
        return json.load(f)["results"][0]


def runnel_rows(output):
    """The final rows runnel-bench wrote: a JSON array per line."""
    with open(os.path.join(output, "result.json")) as f:
        return [tuple(normal(v) for v in json.loads(line)) for line in f if line.strip()]


class Flink:
    """A streaming TableEnvironment for the timed runs; for the results, a
    batch one (its filesystem sink publishes files at the end, and an
    aggregate's result is final rather than a changelog), or, for what
    batch mode cannot run (session windows), a streaming one with
    checkpoints, whose filesystem sink publishes at the final checkpoint."""

    def __init__(self, parallelism):
        from pyflink.table import EnvironmentSettings, TableEnvironment

        self.streaming = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
        self.batch = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
        self.checkpointed = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
        self.checkpointed.get_config().set("execution.checkpointing.interval", "1 s")
        for env in (self.streaming, self.batch, self.checkpointed):
            env.get_config().set("parallelism.default", str(parallelism))
        # Start the MiniCluster before any clock starts.
        self.streaming.execute_sql("SELECT 1").collect().close()

    @staticmethod
    def declare(env, sql):
        for stmt in statements(sql):
            name = re.match(r"CREATE (TABLE|VIEW) (\w+)", stmt)
            if not name:
                sys.exit("unexpected declaration for Flink: " + stmt[:60])
            env.execute_sql("DROP TEMPORARY %s IF EXISTS %s" % name.groups())
            env.execute_sql(stmt.replace("CREATE ", "CREATE TEMPORARY ", 1))

    def timed(self, declarations, insert):
        self.declare(self.streaming, declarations)
        start = time.monotonic()
        self.streaming.execute_sql(insert).wait()
        return time.monotonic() - start

    def rows(self, declarations, insert, out_dir):
        """The query's final rows, run in batch mode into JSON files."""
        sink = ("'connector' = 'filesystem', 'path' = 'file://%s', 'format' = 'json', "
                "'json.timestamp-format.standard' = 'ISO-8601'" % out_dir)
        declarations = declarations.replace("'connector' = 'blackhole'", sink)
        try:
            self.declare(self.batch, declarations)
            self.batch.execute_sql(insert).wait()
        except Exception as e:  # py4j carries Flink's TableException
            if "not supported in batch mode" not in str(e):
                raise
            self.declare(self.checkpointed, declarations)
            self.checkpointed.execute_sql(insert).wait()
        rows = []
        for root, _, files in os.walk(out_dir):
            for name in files:
                if name.startswith(".") or name.startswith("_"):
                    continue
                with open(os.path.join(root, name)) as f:
                    for line in f:
                        if line.strip():
                            d = json.loads(line)
                            rows.append(tuple(normal(v) for v in d.values()))
        return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runnel-bench", required=True)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--query", default=",".join(DEFAULT_QUERIES))
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    ap.add_argument("--no-check", action="store_true",
                    help="time both engines but skip the second run that compares results")
    args = ap.parse_args()
    queries = [q.strip() for q in args.query.split(",") if q.strip()]

    work = tempfile.mkdtemp(prefix="runnel-flink-")
    events_dir = os.path.join(work, "events")
    print("[compare] writing %d events" % args.events, file=sys.stderr)
    events_file = subprocess.run(
        [args.runnel_bench, "nexmark-events", "--events", str(args.events), "--out", events_dir],
        check=True, capture_output=True, text=True).stdout.strip()
    with open(events_file) as f:
        n_events = sum(1 for _ in f)
    print("[compare] %d events in %s; starting Flink" % (n_events, events_file), file=sys.stderr)

    flink = Flink(args.parallelism)
    tiny_dir = os.path.join(work, "tiny")
    tiny_file = subprocess.run(
        [args.runnel_bench, "nexmark-events", "--events", "4", "--out", tiny_dir],
        check=True, capture_output=True, text=True).stdout.strip()
    q0 = read("q0.sql")
    q0_insert = [s for s in statements(q0) if s.upper().startswith("INSERT")][0]
    startups = sorted(
        flink.timed(flink_source(tiny_file) + "\n" + q0.split("INSERT INTO")[0], q0_insert)
        for _ in range(3))
    startup = startups[1]
    print("[compare] Flink job start-up: %.2f s (median of 3 runs of q0 on 4 events)" % startup,
          file=sys.stderr)
    results = []
    for q in queries:
        qsql = read(q + ".sql")
        if qsql.startswith("-- not yet:"):
            print("[compare] %s: Runnel cannot run it yet" % q, file=sys.stderr)
            continue
        insert = [s for s in statements(qsql) if s.upper().startswith("INSERT")][0]

        print("[compare] %s: Runnel" % q, file=sys.stderr)
        r = run_runnel(args.runnel_bench, q, events_file, args.parallelism, work, None)
        print("[compare] %s: Flink" % q, file=sys.stderr)
        declarations = flink_source(events_file) + "\n" + qsql.split("INSERT INTO")[0]
        flink_seconds = flink.timed(declarations, insert)

        mine, theirs, same, r_out = [], [], None, {"rows_out": None}
        tied = 0
        if not args.no_check:
            print("[compare] %s: checking results" % q, file=sys.stderr)
            out_dir = os.path.join(work, "out-" + q)
            r_out = run_runnel(args.runnel_bench, q, events_file, args.parallelism, work, out_dir)
            mine = sorted(runnel_rows(out_dir), key=repr)
            theirs = sorted(flink.rows(declarations, insert, os.path.join(work, "flink-" + q)),
                            key=repr)
            same = mine == theirs
            if not same and q in TIE_KEYS:
                cols = TIE_KEYS[q]
                def deciding(rows):
                    return sorted((tuple(r[i] for i in cols) for r in rows), key=repr)
                if len(mine) == len(theirs) and deciding(mine) == deciding(theirs):
                    tied = len(set(mine) - set(theirs))
                    print("[compare] %s: %d rows differ only among tied rows" % (q, tied),
                          file=sys.stderr)
                    same = True
        if same is False:
            only_mine = len(set(mine) - set(theirs))
            only_theirs = len(set(theirs) - set(mine))
            print("[compare] %s: results differ: Runnel %d rows, Flink %d rows; %d distinct rows "
                  "only in Runnel's, %d only in Flink's; e.g. %s / %s" % (
                      q, len(mine), len(theirs), only_mine, only_theirs,
                      sorted(set(mine) - set(theirs), key=repr)[:2],
                      sorted(set(theirs) - set(mine), key=repr)[:2]), file=sys.stderr)
        runnel_eps = n_events / r["seconds"]
        flink_eps = n_events / flink_seconds
        print("[compare] %s: Runnel %.2f s, Flink %.2f s, ratio %.1f, results %s (%d rows)" % (
            q, r["seconds"], flink_seconds, runnel_eps / flink_eps,
            {True: "equal", False: "DIFFER", None: "not checked"}[same], len(mine)),
            file=sys.stderr)
        results.append({
            "query": q,
            "events": n_events,
            "parallelism": args.parallelism,
            "runnel_seconds": r["seconds"],
            "runnel_events_per_second": runnel_eps,
            "runnel_events_per_second_per_core": r["events_per_second_per_core"],
            "runnel_latency_p99_ms": r["latency_p99_ms"],
            "flink_seconds": flink_seconds,
            "flink_events_per_second": flink_eps,
            "runnel_over_flink": runnel_eps / flink_eps,
            "flink_startup_seconds": startup,
            "flink_seconds_without_startup": max(flink_seconds - startup, 1e-9),
            "runnel_over_flink_without_startup": max(flink_seconds - startup, 1e-9) / r["seconds"],
            "result_rows": len(mine),
            "flink_result_rows": len(theirs),
            "same_results": same,
            "rows_differing_among_ties": tied,
            "runnel_rows_out_with_output": r_out["rows_out"],
        })

    table = ["| query | events | parallelism | Runnel s | Runnel events/s | Flink s | Flink events/s "
             "| Runnel / Flink | Flink s less start-up | Runnel / Flink less start-up "
             "| result rows | same results |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in results:
        table.append("| %s | %d | %d | %.2f | %.2f M | %.2f | %.3f M | %.1fx | %.2f | %.1fx | %d | %s |" % (
            x["query"], x["events"], x["parallelism"], x["runnel_seconds"],
            x["runnel_events_per_second"] / 1e6, x["flink_seconds"],
            x["flink_events_per_second"] / 1e6, x["runnel_over_flink"],
            x["flink_seconds_without_startup"], x["runnel_over_flink_without_startup"],
            x["result_rows"],
            ("yes, up to ties (%d rows differ among tied rows)" % x["rows_differing_among_ties"]
             if x["same_results"] and x["rows_differing_among_ties"]
             else {True: "yes", None: "not checked"}.get(
                 x["same_results"], "NO (Flink %d rows)" % x["flink_result_rows"]))))
    text = "\n".join(table) + "\n"
    print(text, end="")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results}, f, indent=2)
    subprocess.run(["rm", "-rf", work])
    return 0 if all(x["same_results"] is not False for x in results) else 1


if __name__ == "__main__":
    sys.exit(main())
