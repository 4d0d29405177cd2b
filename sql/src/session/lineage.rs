//! Column lineage kept by the session: one row per source column and
//! target column of every job that writes a table or materialized view,
//! and of every view (computed by [`crate::lineage`] from the plan), and
//! `SHOW LINEAGE table[.column]`, which follows it back through the tables
//! other jobs wrote to the sources.

use super::{rows, Outcome, Session};
use crate::catalog::key_of_dotted;
use crate::error::Result;
use crate::lineage::{lineage, Derivation};
use crate::parser::Named;
use crate::plan::Plan;

/// One pair of a source column and a target column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineageRow {
    /// The job that writes the target; `None` for a view.
    pub job: Option<String>,
    /// The source table (catalog key).
    pub source_table: String,
    /// The source column.
    pub source_column: String,
    /// The target table or view.
    pub target_table: String,
    /// The target column.
    pub target_column: String,
    /// How the target derives from the source.
    pub derivation: Derivation,
}

/// The session options that turn OpenLineage run events on.
pub const OPENLINEAGE_FILE_OPTION: &str = "openlineage.file";
/// Events are posted to this `http://` URL (an OpenLineage endpoint such
/// as Marquez's `/api/v1/lineage`).
pub const OPENLINEAGE_URL_OPTION: &str = "openlineage.url";

/// What a job's OpenLineage run events say and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenLineageSpec {
    /// Append each event as a JSON line to this file.
    pub file: Option<String>,
    /// Post each event to this URL.
    pub url: Option<String>,
    /// The job's id (the event's job name).
    pub job: String,
    /// Its statement.
    pub sql: String,
    /// Its column lineage.
    pub rows: Vec<LineageRow>,
}

impl Session {
    /// The OpenLineage events of job `job`, when the session asks for them.
    pub(super) fn openlineage_spec(&self, job: &str, sql: &str) -> Option<OpenLineageSpec> {
        // An empty value turns a transport off again.
        let set = |key: &str| {
            self.option(key)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let file = set(OPENLINEAGE_FILE_OPTION);
        let url = set(OPENLINEAGE_URL_OPTION);
        if file.is_none() && url.is_none() {
            return None;
        }
        Some(OpenLineageSpec {
            file,
            url,
            job: job.to_string(),
            sql: sql.to_string(),
            rows: self
                .lineage
                .iter()
                .filter(|r| r.job.as_deref() == Some(job))
                .cloned()
                .collect(),
        })
    }

    /// Records the lineage of `plan`, whose output columns are those of
    /// `target`, written by `job` (a view's when `None`, replacing what
    /// was recorded for it before).
    pub(super) fn record_lineage(&mut self, job: Option<&str>, target: &str, plan: &Plan) {
        if job.is_none() {
            self.lineage
                .retain(|r| !(r.job.is_none() && r.target_table == target));
        }
        let mut names: Vec<String> = plan
            .scope
            .columns
            .iter()
            .filter(|c| c.name != runnel_engine::types::ROW_KIND_COLUMN)
            .map(|c| c.name.to_lowercase())
            .collect();
        // A table's columns by its own names (the query's may differ:
        // `AVG(x)` into `avg_x`), without the read-only metadata ones.
        if let Some(crate::catalog::Entry::Table(t)) = self.catalog.get_by_key(target) {
            let d = &t.descriptor;
            let written: Vec<String> = (0..d.schema.fields().len())
                .filter(|&i| !d.metadata_column(i).is_some_and(|(_, v)| v))
                .map(|i| d.schema.field(i).name().to_lowercase())
                .collect();
            if written.len() == names.len() {
                names = written;
            }
        }
        let mut rows: Vec<LineageRow> = lineage(plan)
            .pairs()
            .into_iter()
            .filter_map(|((table, column), i, derivation)| {
                Some(LineageRow {
                    job: job.map(str::to_string),
                    source_table: table,
                    source_column: column,
                    target_table: target.to_string(),
                    target_column: names.get(i)?.clone(),
                    derivation,
                })
            })
            .collect();
        rows.sort();
        rows.dedup();
        self.lineage.extend(rows);
    }

    /// The job id the next planned job gets.
    pub(super) fn upcoming_job_id(&self) -> String {
        format!("job-{}", self.next_job)
    }

    /// Every lineage row.
    pub fn lineage_rows(&self) -> &[super::lineage::LineageRow] {
        &self.lineage
    }

    /// Forgets the lineage into a dropped table or view.
    pub(super) fn forget_lineage(&mut self, target: &str) {
        self.lineage.retain(|r| r.target_table != target);
    }

    /// `SHOW LINEAGE t[.c]`: the rows into `t` (its column `c`), and, for
    /// each source that a job writes in turn, the rows into that source,
    /// back to tables nothing writes.
    pub(super) fn show_lineage(&self, target: &Named) -> Result<Outcome> {
        let (table, column) = match target.name.rsplit_once('.') {
            Some((t, c)) if self.catalog.get_by_key(&t.to_lowercase()).is_some() => {
                (t.to_lowercase(), Some(c.to_lowercase()))
            }
            _ => (target.name.to_lowercase(), None),
        };
        let table = key_of_dotted(&table);
        if self.catalog.get_by_key(&table).is_none() {
            return Err(crate::error::SqlError::not_found(
                format!("unknown table or view '{}'", target.name),
                target.position,
            ));
        }
        self.require(
            crate::access::Privilege::Select,
            &crate::access::Securable::Object(table.clone()),
            target.position,
        )?;
        let mut wanted: Vec<(String, Option<String>)> = vec![(table, column)];
        let mut seen = std::collections::BTreeSet::new();
        let mut out: Vec<&LineageRow> = Vec::new();
        while let Some((t, c)) = wanted.pop() {
            if !seen.insert((t.clone(), c.clone())) {
                continue;
            }
            // Sources the user may not read are left out.
            for r in self.lineage.iter().filter(|r| {
                r.target_table == t
                    && c.as_ref().is_none_or(|c| *c == r.target_column)
                    && self.may_read(&r.source_table)
            }) {
                out.push(r);
                // Copied, computed and aggregated columns lead further back.
                if !matches!(r.derivation, Derivation::FilteredOn | Derivation::JoinedOn) {
                    wanted.push((r.source_table.clone(), Some(r.source_column.clone())));
                }
            }
        }
        out.sort_by(|a, b| {
            (
                &a.target_table,
                &a.target_column,
                &a.source_table,
                &a.source_column,
                a.derivation,
            )
                .cmp(&(
                    &b.target_table,
                    &b.target_column,
                    &b.source_table,
                    &b.source_column,
                    b.derivation,
                ))
        });
        out.dedup();
        let col = |f: &dyn Fn(&LineageRow) -> String| out.iter().map(|r| f(r)).collect();
        rows(&[
            (
                "target",
                col(&|r| format!("{}.{}", r.target_table, r.target_column)),
            ),
            (
                "source",
                col(&|r| format!("{}.{}", r.source_table, r.source_column)),
            ),
            ("derivation", col(&|r| r.derivation.to_string())),
            (
                "job",
                col(&|r| r.job.clone().unwrap_or_else(|| "view".into())),
            ),
        ])
    }
}
