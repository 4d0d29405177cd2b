//! What the server says about itself: the tables of its catalog as the
//! metadata calls describe them ([`TableInfo`]), and the contents of the
//! system tables (`system.jobs`, `system.tables`, `system.columns`,
//! `system.metrics`). The connector that serves them to queries is in
//! [`crate::tables`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use runnel_engine::connector::TableDescriptor;
use runnel_engine::runtime::Progress;
use runnel_sql::access::ObjectMeta;
use runnel_sql::binder::flink_type_name;
use runnel_sql::catalog::{
    Entry, TableEntry, TableKind, CATALOG_NAME, PUBLIC_SCHEMA, SYSTEM_SCHEMA,
};
use runnel_sql::session::{JobKind, Session};

use crate::error::{Result, ServerError};
use crate::jobs::JobManager;
use crate::tables::SYSTEM_CONNECTOR;

/// A table as the metadata calls describe it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// `public` or `system`.
    pub schema_name: String,
    /// The name within its schema.
    pub table_name: String,
    /// TABLE, VIEW, MATERIALIZED VIEW or SYSTEM TABLE.
    pub table_type: &'static str,
    /// Columns.
    pub schema: SchemaRef,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// The connector, for tables.
    pub connector: Option<String>,
    /// Comments, tags, masks and row filter.
    pub meta: runnel_sql::access::ObjectMeta,
}

impl TableInfo {
    /// The catalog key (`per_region`, `system.jobs`).
    pub fn key(&self) -> String {
        if self.schema_name == runnel_sql::catalog::PUBLIC_SCHEMA {
            self.table_name.to_lowercase()
        } else {
            format!("{}.{}", self.schema_name, self.table_name).to_lowercase()
        }
    }
}

/// The tables and views of `session`'s catalog.
pub fn table_infos(session: &Session) -> Vec<TableInfo> {
    let mut out = Vec::new();
    for (name, entry) in session.catalog().entries() {
        let (schema_name, table_name) = match name.split_once('.') {
            Some((s, t)) => (s.to_string(), t.to_string()),
            None => (PUBLIC_SCHEMA.to_string(), name.to_string()),
        };
        let (table_type, schema, primary_key, connector) = match entry {
            Entry::Table(t) => (
                t.kind.type_name(),
                Arc::clone(&t.descriptor.schema),
                t.descriptor
                    .primary_key
                    .iter()
                    .map(|i| t.descriptor.schema.field(*i).name().clone())
                    .collect(),
                t.descriptor.option("connector").map(str::to_string),
            ),
            Entry::View(v) => {
                let schema = session
                    .view_schema(&v.query)
                    .unwrap_or_else(|_| Arc::new(Schema::empty()));
                ("VIEW", schema, vec![], None)
            }
        };
        out.push(TableInfo {
            schema_name,
            table_name,
            table_type,
            schema,
            primary_key,
            meta: ObjectMeta::default(),
            connector,
        });
    }
    for t in &mut out {
        if let Some(m) = session.catalog().grants().meta(&t.key()) {
            t.meta = m.clone();
        }
    }
    out
}

/// The system tables and their columns.
pub fn system_tables() -> Vec<(&'static str, SchemaRef)> {
    let utf8 = |n: &str| Field::new(n, DataType::Utf8, false);
    vec![
        (
            "jobs",
            Arc::new(Schema::new(vec![
                utf8("job_id"),
                utf8("status"),
                utf8("kind"),
                utf8("target"),
                utf8("statement"),
            ])),
        ),
        (
            "tables",
            Arc::new(Schema::new(vec![
                utf8("table_catalog"),
                utf8("table_schema"),
                utf8("table_name"),
                utf8("table_type"),
                Field::new("connector", DataType::Utf8, true),
                Field::new("comment", DataType::Utf8, true),
            ])),
        ),
        (
            "columns",
            Arc::new(Schema::new(vec![
                utf8("table_catalog"),
                utf8("table_schema"),
                utf8("table_name"),
                utf8("column_name"),
                Field::new("ordinal_position", DataType::Int32, false),
                utf8("data_type"),
                Field::new("is_nullable", DataType::Boolean, false),
                Field::new("comment", DataType::Utf8, true),
            ])),
        ),
        (
            "tags",
            Arc::new(Schema::new(vec![
                utf8("catalog_name"),
                utf8("schema_name"),
                utf8("table_name"),
                Field::new("column_name", DataType::Utf8, true),
                utf8("tag_name"),
                utf8("tag_value"),
            ])),
        ),
        (
            "metrics",
            Arc::new(Schema::new(vec![
                utf8("job_id"),
                utf8("metric"),
                Field::new("value", DataType::Float64, false),
            ])),
        ),
        (
            "expectations",
            Arc::new(Schema::new(vec![
                utf8("table_name"),
                utf8("expectation"),
                utf8("on_violation"),
                Field::new("passed_rows", DataType::Int64, false),
                Field::new("failed_rows", DataType::Int64, false),
            ])),
        ),
        (
            "lineage",
            Arc::new(Schema::new(vec![
                Field::new("job_id", DataType::Utf8, true),
                utf8("source_table"),
                utf8("source_column"),
                utf8("target_table"),
                utf8("target_column"),
                utf8("derivation"),
            ])),
        ),
        ("access.audit", crate::audit::audit_schema()),
    ]
}

/// Adds the system tables to `session`'s catalog.
pub fn register(session: &mut Session) {
    for (name, schema) in system_tables() {
        let entry = TableEntry {
            kind: TableKind::System,
            descriptor: TableDescriptor {
                name: format!("{SYSTEM_SCHEMA}.{name}"),
                schema,
                options: [
                    ("connector".to_string(), SYSTEM_CONNECTOR.to_string()),
                    ("system.table".to_string(), name.to_string()),
                ]
                .into_iter()
                .collect(),
                watermark: None,
                primary_key: vec![],
                partition_keys: vec![],
            },
            proctime: vec![],
        };
        let _ = session
            .catalog_mut()
            .insert_table(&format!("{SYSTEM_SCHEMA}.{name}"), entry);
    }
}

/// The rows of system table `name` as `user` may see them: the tables and
/// columns of what they may read, their own jobs (every job for an
/// administrator); the audit log only for administrators (the planner
/// refuses it to others).
pub fn rows(
    name: &str,
    user: &str,
    jobs: &JobManager,
    session: &Session,
    audit: &crate::audit::AuditLog,
) -> Result<RecordBatch> {
    let schema = system_tables()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
        .ok_or_else(|| ServerError::NotFound(format!("no system table '{name}'")))?;
    let who = session.principal_of(user);
    let admin = session.catalog().grants().is_admin(&who);
    let visible = || -> Vec<TableInfo> {
        table_infos(session)
            .into_iter()
            .filter(|t| session.may_read_as(&who, &t.key()))
            .collect()
    };
    let own_job = |id: &str| admin || session.job_owner(id) == Some(user);
    let columns = match name {
        "jobs" => job_columns(jobs, &own_job),
        "tables" => table_columns(&visible()),
        "columns" => column_columns(&visible()),
        "tags" => tag_columns(&visible()),
        "lineage" => {
            let rows: Vec<_> = session
                .lineage_rows()
                .iter()
                // Only what the reader may read on both ends.
                .filter(|r| {
                    session.may_read_as(&who, &r.target_table)
                        && session.may_read_as(&who, &r.source_table)
                })
                .collect();
            vec![
                strings(rows.iter().map(|r| r.job.clone())),
                strings(rows.iter().map(|r| Some(r.source_table.clone()))),
                strings(rows.iter().map(|r| Some(r.source_column.clone()))),
                strings(rows.iter().map(|r| Some(r.target_table.clone()))),
                strings(rows.iter().map(|r| Some(r.target_column.clone()))),
                strings(rows.iter().map(|r| Some(r.derivation.to_string()))),
            ]
        }
        "expectations" => {
            let counts: Vec<_> = session
                .expectation_counts()
                .into_iter()
                .filter(|c| session.may_read_as(&who, &c.object))
                .collect();
            vec![
                strings(counts.iter().map(|c| Some(c.object.clone()))),
                strings(counts.iter().map(|c| Some(c.name.clone()))),
                strings(counts.iter().map(|c| Some(c.on_violation.to_string()))),
                Arc::new(Int64Array::from_iter_values(
                    counts.iter().map(|c| c.passed as i64),
                )),
                Arc::new(Int64Array::from_iter_values(
                    counts.iter().map(|c| c.failed as i64),
                )),
            ]
        }
        "metrics" => metric_columns(jobs, session, &own_job),
        "access.audit" if admin => {
            return crate::audit::audit_rows(&audit.read()?);
        }
        "access.audit" => return Ok(RecordBatch::new_empty(schema)),
        other => return Err(ServerError::NotFound(format!("no system table '{other}'"))),
    };
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// A job's kind as `system.jobs` names it, and what it writes.
pub(crate) fn kind_and_target(kind: &JobKind) -> (&'static str, String) {
    match kind {
        JobKind::Select => ("SELECT", String::new()),
        JobKind::Insert(t) => ("INSERT", t.clone()),
        JobKind::MaterializedView(v) => ("MATERIALIZED VIEW", v.clone()),
        JobKind::StatementSet(tables) => ("STATEMENT SET", tables.join(", ")),
    }
}

fn job_columns(jobs: &JobManager, visible: &dyn Fn(&str) -> bool) -> Vec<ArrayRef> {
    let mut c: [Vec<String>; 5] = Default::default();
    for (id, j) in jobs.iter().filter(|(id, _)| visible(id)) {
        c[0].push(id.clone());
        c[1].push(j.status().to_string());
        let (kind, target) = kind_and_target(j.kind());
        c[2].push(kind.to_string());
        c[3].push(target);
        c[4].push(j.statement().to_string());
    }
    c.into_iter()
        .map(|v| Arc::new(StringArray::from(v)) as ArrayRef)
        .collect()
}

fn table_columns(tables: &[TableInfo]) -> Vec<ArrayRef> {
    vec![
        strings(tables.iter().map(|_| Some(CATALOG_NAME.to_string()))),
        strings(tables.iter().map(|t| Some(t.schema_name.clone()))),
        strings(tables.iter().map(|t| Some(t.table_name.clone()))),
        strings(tables.iter().map(|t| Some(t.table_type.to_string()))),
        strings(tables.iter().map(|t| t.connector.clone())),
        strings(tables.iter().map(|t| t.meta.comment.clone())),
    ]
}

fn tag_columns(tables: &[TableInfo]) -> Vec<ArrayRef> {
    let mut c: [Vec<Option<String>>; 6] = Default::default();
    for t in tables {
        let table_tags = t.meta.tags.iter().map(|(k, v)| (None, k, v));
        let column_tags = t
            .meta
            .columns
            .iter()
            .flat_map(|(col, m)| m.tags.iter().map(move |(k, v)| (Some(col.clone()), k, v)));
        for (column, k, v) in table_tags.chain(column_tags) {
            c[0].push(Some(CATALOG_NAME.into()));
            c[1].push(Some(t.schema_name.clone()));
            c[2].push(Some(t.table_name.clone()));
            c[3].push(column);
            c[4].push(Some(k.clone()));
            c[5].push(Some(v.clone()));
        }
    }
    c.into_iter().map(|v| strings(v.into_iter())).collect()
}

fn column_columns(tables: &[TableInfo]) -> Vec<ArrayRef> {
    let mut c: [Vec<String>; 4] = Default::default();
    let mut ordinal = Vec::new();
    let mut types = Vec::new();
    let mut nullable = Vec::new();
    let mut comments = Vec::new();
    for t in tables {
        for (i, f) in t.schema.fields().iter().enumerate() {
            comments.push(
                t.meta
                    .columns
                    .get(&f.name().to_lowercase())
                    .and_then(|m| m.comment.clone()),
            );
            c[0].push(CATALOG_NAME.into());
            c[1].push(t.schema_name.clone());
            c[2].push(t.table_name.clone());
            c[3].push(f.name().clone());
            ordinal.push(i as i32 + 1);
            types.push(flink_type_name(f.data_type()));
            nullable.push(f.is_nullable());
        }
    }
    let mut cols: Vec<ArrayRef> = c
        .into_iter()
        .map(|v| Arc::new(StringArray::from(v)) as ArrayRef)
        .collect();
    cols.push(Arc::new(Int32Array::from(ordinal)));
    cols.push(Arc::new(StringArray::from(types)));
    cols.push(Arc::new(BooleanArray::from(nullable)));
    cols.push(strings(comments.into_iter()));
    cols
}

fn metric_columns(
    jobs: &JobManager,
    session: &Session,
    visible: &dyn Fn(&str) -> bool,
) -> Vec<ArrayRef> {
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut values = Vec::new();
    for (id, j) in jobs.iter().filter(|(id, _)| visible(id)) {
        let Some(p) = j.progress() else {
            continue;
        };
        for (n, v) in job_metrics(&p) {
            ids.push(id.clone());
            names.push(n.to_string());
            values.push(v);
        }
        // Rows that passed and violated each expectation the job checks.
        for (object, name, passed, failed) in session.job_expectation_counts(id) {
            for (what, v) in [("passed_rows", passed), ("failed_rows", failed)] {
                ids.push(id.clone());
                names.push(format!("expectation.{object}.{name}.{what}"));
                values.push(v as f64);
            }
        }
    }
    vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(StringArray::from(names)),
        Arc::new(Float64Array::from(values)),
    ]
}

/// The metrics of one job, in the order `system.metrics` lists them.
pub(crate) fn job_metrics(p: &Progress) -> Vec<(&'static str, f64)> {
    let mut out = vec![
        ("rows_read", p.rows_read as f64),
        ("rows_written", p.rows_written as f64),
        ("late_rows_dropped", p.late_rows as f64),
        ("malformed_records", p.malformed as f64),
    ];
    if let Some(w) = p.watermark {
        out.push(("watermark_ms", w as f64));
    }
    if let Some(c) = p.checkpoint {
        out.push(("checkpoints_completed", c.completed as f64));
        out.push(("last_checkpoint_id", c.id as f64));
        out.push((
            "last_checkpoint_duration_ms",
            c.duration.as_secs_f64() * 1e3,
        ));
        out.push(("last_checkpoint_bytes", c.bytes as f64));
        out.push(("last_checkpoint_size_bytes", c.size as f64));
        out.push((
            "last_checkpoint_alignment_ms",
            c.alignment.as_secs_f64() * 1e3,
        ));
    }
    out
}

fn strings(values: impl Iterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}
