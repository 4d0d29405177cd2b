//! `/metrics` in Prometheus's text format (0.0.4): per job, per operator
//! subtask, per subtask thread, per sink and per server. The names are
//! listed in docs/observability.md.

use std::fmt::Write as _;

use crate::monitor::JobView;
use crate::server::Server;

/// One metric family: its name, type, help and samples (labels, value).
pub struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Each job's metrics as `system.metrics` names them, and the counts of
/// its expectations: (job, metrics, (table, expectation, passed, failed)).
pub type JobMetrics = Vec<(
    String,
    Vec<(&'static str, f64)>,
    Vec<(String, String, u64, u64)>,
)>;

/// The server's metrics in Prometheus's text format.
pub fn metrics_text(server: &Server) -> String {
    let mut out = String::new();
    server.requests().write(&mut out);
    jobs_text(&mut out, server.job_metrics(), &server.job_views(None));
    out
}

/// The families of jobs: `metrics` per job, and `views` per operator.
pub fn jobs_text(out: &mut String, metrics: JobMetrics, views: &[JobView]) {
    let mut families = vec![
        family(
            "runnel_job_rows_read_total",
            "counter",
            "Rows the job's sources read.",
        ),
        family(
            "runnel_job_rows_written_total",
            "counter",
            "Rows the job's sinks wrote.",
        ),
        family(
            "runnel_job_late_rows_dropped_total",
            "counter",
            "Rows dropped as later than the watermark.",
        ),
        family(
            "runnel_job_malformed_records_total",
            "counter",
            "Records the job's sources could not decode.",
        ),
        family(
            "runnel_job_watermark_milliseconds",
            "gauge",
            "The job's lowest watermark, in milliseconds since the epoch.",
        ),
        family(
            "runnel_job_checkpoints_completed_total",
            "counter",
            "Checkpoints the job completed.",
        ),
        family(
            "runnel_job_last_checkpoint_duration_seconds",
            "gauge",
            "How long the job's last checkpoint took.",
        ),
        family(
            "runnel_job_last_checkpoint_size_bytes",
            "gauge",
            "The size of the job's last checkpoint.",
        ),
        family(
            "runnel_expectation_passed_rows_total",
            "counter",
            "Rows that passed an expectation, per job.",
        ),
        family(
            "runnel_expectation_failed_rows_total",
            "counter",
            "Rows that violated an expectation, per job.",
        ),
    ];
    for (job, metrics, expectations) in metrics {
        let l = format!("job_id=\"{}\"", label(&job));
        for (name, value) in metrics {
            let (index, value) = match name {
                "rows_read" => (0, value),
                "rows_written" => (1, value),
                "late_rows_dropped" => (2, value),
                "malformed_records" => (3, value),
                "watermark_ms" => (4, value),
                "checkpoints_completed" => (5, value),
                "last_checkpoint_duration_ms" => (6, value / 1e3),
                "last_checkpoint_size_bytes" => (7, value),
                _ => continue,
            };
            families[index].samples.push((l.clone(), value));
        }
        for (table, name, passed, failed) in expectations {
            let l = format!(
                "{l},table=\"{}\",expectation=\"{}\"",
                label(&table),
                label(&name)
            );
            families[8].samples.push((l.clone(), passed as f64));
            families[9].samples.push((l, failed as f64));
        }
    }
    families.extend(subtask_families(views));
    write_families(out, families);
}

/// Writes `families` in the text format.
pub fn write_families(out: &mut String, families: Vec<Family>) {
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, value) in f.samples {
            let _ = writeln!(out, "{}{{{labels}}} {value}", f.name);
        }
    }
}

/// The families of every running job's operators, subtask threads and
/// sinks, and of its checkpoints and watermark lag.
pub fn subtask_families(jobs: &[JobView]) -> Vec<Family> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut f = [
        family("runnel_operator_rows_in_total", "counter", "Rows an operator subtask received."),
        family("runnel_operator_rows_out_total", "counter", "Rows an operator subtask emitted."),
        family(
            "runnel_operator_watermark_milliseconds",
            "gauge",
            "An operator subtask's watermark, in milliseconds since the epoch.",
        ),
        family(
            "runnel_operator_watermark_lag_seconds",
            "gauge",
            "How far an operator subtask's watermark is behind the wall clock.",
        ),
        family(
            "runnel_operator_late_rows_dropped_total",
            "counter",
            "Rows an operator subtask dropped as late.",
        ),
        family(
            "runnel_operator_malformed_records_total",
            "counter",
            "Records a source subtask could not decode.",
        ),
        family(
            "runnel_task_busy_seconds_total",
            "counter",
            "Time a subtask thread spent processing (rate() gives Flink's busyTimeMsPerSecond / 1000).",
        ),
        family(
            "runnel_task_backpressured_seconds_total",
            "counter",
            "Time a subtask thread waited for room in a full output channel.",
        ),
        family(
            "runnel_task_idle_seconds_total",
            "counter",
            "Time a subtask thread waited for input.",
        ),
        family(
            "runnel_task_bytes_in_total",
            "counter",
            "Arrow bytes a subtask thread received from other subtasks.",
        ),
        family(
            "runnel_task_bytes_out_total",
            "counter",
            "Arrow bytes a subtask thread sent to other subtasks.",
        ),
        family(
            "runnel_sink_commits_total",
            "counter",
            "Checkpoint completions a sink subtask handled (its commits).",
        ),
        family(
            "runnel_sink_commit_seconds_total",
            "counter",
            "Time a sink subtask spent committing.",
        ),
        family(
            "runnel_sink_last_commit_seconds",
            "gauge",
            "How long a sink subtask's last commit took.",
        ),
        family(
            "runnel_job_watermark_lag_seconds",
            "gauge",
            "How far a job's lowest watermark is behind the wall clock.",
        ),
        family(
            "runnel_job_last_checkpoint_alignment_seconds",
            "gauge",
            "The longest barrier alignment of the job's last checkpoint.",
        ),
        family(
            "runnel_job_state_size_bytes",
            "gauge",
            "The job's state: the whole size of its last checkpoint.",
        ),
        family(
            "runnel_kafka_consumer_lag_records",
            "gauge",
            "Records a Kafka source subtask is behind the end of a partition.",
        ),
    ];
    let lag = |wm: i64| (now_ms.saturating_sub(wm)) as f64 / 1e3;
    for job in jobs.iter().filter(|j| j.running) {
        let jl = format!("job_id=\"{}\"", label(&job.id));
        if let Some(wm) = job.watermark_ms.filter(|w| *w != i64::MAX) {
            f[14].samples.push((jl.clone(), lag(wm)));
        }
        let Some(graph) = &job.graph else {
            continue;
        };
        if let Some(c) = graph.checkpoints.last() {
            f[15].samples.push((jl.clone(), c.alignment_ms / 1e3));
            f[16].samples.push((jl.clone(), c.size as f64));
        }
        for op in &graph.operators {
            for s in &op.subtasks {
                let l = format!(
                    "{jl},operator_id=\"{}\",operator=\"{}\",subtask=\"{}\"",
                    op.id,
                    label(&op.name),
                    s.subtask
                );
                f[0].samples.push((l.clone(), s.rows_in as f64));
                f[1].samples.push((l.clone(), s.rows_out as f64));
                if let Some(wm) = s.watermark_ms.filter(|w| *w != i64::MAX) {
                    f[2].samples.push((l.clone(), wm as f64));
                    f[3].samples.push((l.clone(), lag(wm)));
                }
                f[4].samples.push((l.clone(), s.late_rows as f64));
                if op.is_source {
                    f[5].samples.push((l.clone(), s.malformed as f64));
                }
                // A thread's counters once, under its chain's first operator.
                if op.chain == op.id {
                    f[6].samples.push((l.clone(), s.busy_ms / 1e3));
                    f[7].samples.push((l.clone(), s.backpressured_ms / 1e3));
                    f[8].samples.push((l.clone(), s.idle_ms / 1e3));
                    f[9].samples.push((l.clone(), s.bytes_in as f64));
                    f[10].samples.push((l.clone(), s.bytes_out as f64));
                }
                for lag in &s.partition_lag {
                    f[17].samples.push((
                        format!(
                            "{l},topic=\"{}\",partition=\"{}\"",
                            label(&lag.topic),
                            lag.partition
                        ),
                        lag.records as f64,
                    ));
                }
                if op.is_sink {
                    f[11].samples.push((l.clone(), s.commits as f64));
                    f[12].samples.push((l.clone(), s.commit_ms_total / 1e3));
                    f[13].samples.push((l, s.last_commit_ms / 1e3));
                }
            }
        }
    }
    f.into()
}

pub fn family(name: &'static str, kind: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind,
        help,
        samples: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::monitor::{GraphView, OperatorView, PartitionLag, SubtaskView};

    fn subtask(i: usize, lag: Vec<PartitionLag>) -> SubtaskView {
        SubtaskView {
            subtask: i,
            rows_in: 0,
            rows_out: 10 + i as u64,
            bytes_in: 0,
            bytes_out: 640,
            busy_ms: 1500.0,
            backpressured_ms: 250.0,
            idle_ms: 0.0,
            watermark_ms: None,
            late_rows: 0,
            malformed: 0,
            commits: 0,
            commit_ms_total: 0.0,
            last_commit_ms: 0.0,
            partition_lag: lag,
        }
    }

    /// One labelled sample per subtask, thread times in seconds, Kafka lag
    /// per topic and partition; label values escaped.
    #[test]
    fn subtask_families_label_each_subtask_and_partition() {
        let lag = vec![PartitionLag {
            topic: "in\"q".into(),
            partition: 3,
            records: 42,
        }];
        let job = JobView {
            id: "job-7".into(),
            status: "RUNNING".into(),
            kind: "INSERT".into(),
            target: "t".into(),
            statement: String::new(),
            owner: "admin".into(),
            running: true,
            uptime_ms: 2000,
            rows_read: 21,
            rows_written: 0,
            late_rows: 0,
            malformed: 0,
            watermark_ms: None,
            graph: Some(Arc::new(GraphView {
                operators: vec![OperatorView {
                    id: 0,
                    name: "source: in".into(),
                    parallelism: 2,
                    is_source: true,
                    is_sink: false,
                    chain: 0,
                    subtasks: vec![subtask(0, lag), subtask(1, vec![])],
                }],
                edges: vec![],
                checkpoints: vec![],
            })),
        };
        let mut out = String::new();
        write_families(&mut out, subtask_families(&[job]));
        let l = r#"job_id="job-7",operator_id="0",operator="source: in",subtask="#;
        for line in [
            format!("runnel_operator_rows_out_total{{{l}\"0\"}} 10"),
            format!("runnel_operator_rows_out_total{{{l}\"1\"}} 11"),
            format!("runnel_task_busy_seconds_total{{{l}\"0\"}} 1.5"),
            format!("runnel_task_backpressured_seconds_total{{{l}\"1\"}} 0.25"),
            format!("runnel_kafka_consumer_lag_records{{{l}\"0\",topic=\"in\\\"q\",partition=\"3\"}} 42"),
        ] {
            assert!(out.lines().any(|x| x == line), "{line} not in\n{out}");
        }
        assert_eq!(out.matches("runnel_kafka_consumer_lag_records{").count(), 1);
    }
}
