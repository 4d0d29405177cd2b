//! Catalog statements that only read or change the catalog: CREATE
//! TABLE, DROP, SHOW TABLES, SHOW JOBS, DESCRIBE and STOP JOB, each with
//! its access check.

use super::*;

impl Session {
    /// `CREATE TABLE`: checked against the user's rights and the server's
    /// allow-lists, then owned by the user.
    pub(super) fn create_table_statement(
        &mut self,
        ct: &crate::parser::CreateTable,
    ) -> Result<Outcome> {
        self.check_create(position_of(&ct.name))?;
        let key = key_of(&ct.name);
        let existed = self.catalog.get(&ct.name).is_some();
        let mut scratch = crate::catalog::Catalog::new();
        scratch.create_table(ct, &self.registry)?;
        if let Some(Entry::Table(t)) = scratch.get(&ct.name) {
            if self
                .registry
                .resolve(&t.descriptor)
                .is_ok_and(|c| c.internal())
            {
                return Err(SqlError::plan(
                    format!(
                        "'{}' is a connector of the server's own tables; a table cannot use it",
                        t.descriptor.option("connector").unwrap_or_default()
                    ),
                    position_of(&ct.name),
                ));
            }
            self.check_resources(&t.descriptor, position_of(&ct.name))?;
        }
        self.catalog.create_table(ct, &self.registry)?;
        if !existed {
            if let Some(Entry::Table(t)) = self.catalog.get(&ct.name) {
                let scope = Self::table_scope(&t.descriptor);
                if let Err(e) = self.set_expectations(&key, &scope, &ct.expectations) {
                    self.catalog.remove(&key);
                    return Err(e);
                }
            }
            self.own(&key);
            let meta = self.catalog.grants_mut().meta_mut(&key);
            meta.comment.clone_from(&ct.comment);
            for c in &ct.columns {
                if let Some(text) = &c.comment {
                    let col = meta.columns.entry(c.name.value.to_lowercase()).or_default();
                    col.comment = Some(text.clone());
                }
            }
        }
        Ok(Outcome::Message(format!("created table {}", ct.name)))
    }

    /// `DROP TABLE|VIEW`: by the owner or an administrator.
    pub(super) fn drop_statement(
        &mut self,
        names: &[sqlparser::ast::ObjectName],
        if_exists: bool,
        view: bool,
    ) -> Result<Outcome> {
        for n in names {
            if self.catalog.get(n).is_some() {
                self.require_owner(&key_of(n), "drop", position_of(n))?;
            }
        }
        for n in names {
            self.catalog.drop(n, view, if_exists)?;
            self.forget_lineage(&key_of(n));
        }
        Ok(Outcome::Message("dropped".into()))
    }

    /// `SHOW TABLES`: what the user may read.
    pub(super) fn show_tables(&self) -> Result<Outcome> {
        // Only what the user may read.
        let listed: Vec<(String, &str)> = self
            .catalog
            .list()
            .into_iter()
            .filter(|(n, _)| self.may_read(&n.to_lowercase()))
            .collect();
        let names: Vec<String> = listed.iter().map(|(n, _)| n.clone()).collect();
        let kinds: Vec<&str> = listed.iter().map(|(_, k)| *k).collect();
        rows(&[
            ("table name", names),
            ("kind", kinds.iter().map(|k| k.to_string()).collect()),
        ])
    }

    /// `SHOW JOBS`: every job for an administrator, one's own otherwise.
    pub(super) fn show_jobs(&self) -> Result<Outcome> {
        // Administrators see every job; other users their own.
        let admin = self.is_admin();
        let me = self.principal().user.clone();
        let mine: Vec<_> = self.jobs.iter().filter(|j| admin || j.3 == me).collect();
        let ids = mine.iter().map(|j| j.0.clone()).collect();
        let statuses = mine
            .iter()
            .map(|j| j.2.lock().map(|s| s.to_string()).unwrap_or_default())
            .collect();
        let sqls = mine.iter().map(|j| j.1.clone()).collect();
        rows(&[("job id", ids), ("status", statuses), ("statement", sqls)])
    }

    /// `STOP JOB`: by the job's owner or an administrator.
    pub(super) fn stop_job_statement(
        &self,
        id: &str,
        savepoint: bool,
        position: crate::error::Position,
    ) -> Result<Outcome> {
        if let Some(job) = self.jobs.iter().find(|j| j.0 == id) {
            if job.3 != self.principal().user && !self.is_admin() {
                return Err(SqlError::denied(
                    format!(
                        "user '{}' may not stop job '{id}': only its owner ('{}') or an administrator may",
                        self.principal().user,
                        job.3
                    ),
                    position,
                ));
            }
        }
        if !self.jobs.iter().any(|j| j.0 == id) {
            let known: Vec<&str> = self.jobs.iter().map(|j| j.0.as_str()).collect();
            return Err(SqlError::not_found(
                format!("unknown job '{id}'; jobs: {}", known.join(", ")),
                position,
            ));
        }
        Ok(Outcome::StopJob {
            id: id.to_string(),
            savepoint,
        })
    }

    pub(super) fn describe(&self, name: &sqlparser::ast::ObjectName) -> Result<Outcome> {
        let plan_scope = match self.catalog.get(name) {
            Some(Entry::Table(t)) => {
                let d = &t.descriptor;
                let mut names = Vec::new();
                let mut types = Vec::new();
                let mut nulls = Vec::new();
                let mut extras = Vec::new();
                for (i, f) in d.schema.fields().iter().enumerate() {
                    names.push(f.name().clone());
                    types.push(flink_type_name(f.data_type()));
                    nulls.push(if f.is_nullable() { "true" } else { "false" }.to_string());
                    let mut extra = Vec::new();
                    if d.primary_key.contains(&i) {
                        extra.push("PRIMARY KEY".to_string());
                    }
                    if let Some((key, is_virtual)) = d.metadata_column(i) {
                        let v = if is_virtual { " VIRTUAL" } else { "" };
                        extra.push(format!("METADATA FROM '{key}'{v}"));
                    }
                    if let Some((c, delay)) = d.watermark {
                        if c == i {
                            extra.push(format!("WATERMARK AS {} - {} ms", f.name(), delay));
                        }
                    }
                    extras.push(extra.join(", "));
                }
                for p in &t.proctime {
                    names.push(p.clone());
                    types.push("TIMESTAMP_LTZ(3) *PROCTIME*".into());
                    nulls.push("false".into());
                    extras.push(String::new());
                }
                return rows(&[
                    ("name", names),
                    ("type", types),
                    ("null", nulls),
                    ("extras", extras),
                ]);
            }
            // Reading the view was checked above; what it reads is its
            // owner's business.
            Some(Entry::View(v)) => self.planner().plan_query(&v.query)?.scope,
            None => {
                return Err(SqlError::not_found(
                    format!("unknown table or view '{}'", key_of(name)),
                    position_of(name),
                ))
            }
        };
        let cols: Vec<_> = plan_scope
            .columns
            .iter()
            .filter(|c| c.name != ROW_KIND_COLUMN)
            .collect();
        rows(&[
            ("name", cols.iter().map(|c| c.name.clone()).collect()),
            (
                "type",
                cols.iter().map(|c| flink_type_name(&c.data_type)).collect(),
            ),
            (
                "null",
                cols.iter().map(|c| c.nullable.to_string()).collect(),
            ),
            ("extras", cols.iter().map(|_| String::new()).collect()),
        ])
    }
}
