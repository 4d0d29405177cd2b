//! End-to-end tests of Runnel, in one test binary.
//!
//! * `window_oracle`: window aggregates on shuffled, late and duplicated
//!   input equal a brute-force computation, for every window kind, at
//!   parallelism 1 and 4 (proptest).
//! * `iot_demo`: the IoT demo script, run as the CLI runs it, on less data;
//!   its seven INSERTs are one statement set, one job with one source.
//! * `sql_harness`: the `tests/sql/*.slt` files.
//! * `recovery`: restoring any checkpoint after a crash gives the output of
//!   a run that never failed (proptest).
//! * `kill`: a SQL job killed with SIGKILL 20 times and restarted
//!   publishes every row exactly once, into files and into a Delta table
//!   (read back by DuckDB), also with the table and checkpoints on S3;
//!   and a Kafka job stopped with a savepoint at parallelism 2, resumed
//!   and killed at 4, finished at 1, into files and Delta.
//! * `savepoint`: a job stopped with a savepoint, resumed as a new job at
//!   another parallelism through `'execution.savepoint.path'`.
//! * `s3`: checkpoints on an S3 server (moto) that hangs mid-job: the
//!   checkpoints fail and are retried, the job goes on, no manifest lists
//!   a missing object.
//! * `delta`: Delta tables written by SQL jobs, read back by DuckDB and the
//!   Python `deltalake` package; a stream following a table that another
//!   writer appends to.
//! * `kafka`: SQL jobs from Kafka to Kafka against the Tansu broker
//!   (exactly-once sink, metadata columns, dead-letter topic, a malformed
//!   record failing the job); the Kafka kill test is in `kill`.
//! * `large_state`: 1 million keys in windows with an 8 MB memory budget
//!   (5 million and 64 MB on request) spill to RocksDB and come out right.
//! * `nexmark`: Nexmark query files run on the generator, outputs checked.
//! * `flight`: the Flight SQL server through arrow-flight's client:
//!   statements, errors, auth, prepared statements, subscriptions,
//!   metadata, TLS, a statement set as one request and one job, and a
//!   restart that keeps views and jobs.
//! * `fuzz_sql`: a bounded fuzz run over the SQL front end: statements
//!   from a grammar, and the corpus in `tests/fuzz/corpus/` mutated with
//!   hostile tokens; no panic, and every error's position is in the text.
//! * `hostile`: the Flight SQL server under hostile input: 100,000-term
//!   operator chains, SQL that is not UTF-8, scripts of several
//!   statements, wrong-password floods; it answers each with a clear
//!   error and keeps serving.
//! * `governance`: roles, grants, views with their owner's rights, masks
//!   with `is_member`, allow-lists of paths and servers, in a session with
//!   the real connectors.
//! * `parallel`: a multi-threaded job produces the same multiset of rows as
//!   the single-threaded run of the same job.

mod changelog_oracle;
mod common;
mod delta;
mod flight;
mod fuzz_sql;
mod governance;
mod hostile;
mod iot_demo;
mod kafka;
mod kill;
mod large_state;
mod nexmark;
mod parallel;
mod recovery;
mod s3;
mod savepoint;
mod sql_harness;
mod window_oracle;
