//! The session's options: `SET`, and what jobs and plans take from them
//! (parallelism, state TTL, allowed lateness, the late-data table, state
//! backend, latency markers, checkpoints).

use std::time::Duration;

use runnel_engine::connector::parse_duration;

use super::*;

impl Session {
    /// The parallelism for new jobs: `SET 'parallelism'` (or Flink's
    /// `'parallelism.default'`), else the number of cores.
    pub fn parallelism(&self) -> usize {
        self.options
            .get("parallelism")
            .or_else(|| self.options.get("parallelism.default"))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    /// Sets a session option by value, as `SET 'key' = 'value'` does;
    /// `position` is where an error points (the default when no statement
    /// is behind the value, as for command-line settings).
    pub fn set_option(
        &mut self,
        key: &str,
        value: &str,
        position: crate::error::Position,
    ) -> Result<()> {
        if key == "parallelism" || key == "parallelism.default" {
            match value.parse::<usize>() {
                Ok(n) if self.parallelism_limit.is_some_and(|limit| n > limit) => {
                    return Err(SqlError::plan(
                        format!(
                            "'{key}' may be at most {} here (the server's max_parallelism), not {n}",
                            self.parallelism_limit.unwrap_or(n)
                        ),
                        position,
                    ))
                }
                Ok(n) if n > 0 => {}
                _ => {
                    return Err(SqlError::plan(
                        format!("'{key}' must be a positive whole number, not '{value}'"),
                        position,
                    ))
                }
            }
        }
        if key == ALLOW_LATENESS_OPTION && parse_duration(value).is_none() {
            return Err(SqlError::plan(
                format!(
                    "'{key}' must be a duration such as '1 min' or '30 s' (0 fires each window once), not '{value}'"
                ),
                position,
            ));
        }
        if key == STATE_TTL_OPTION && parse_duration(value).is_none() {
            return Err(SqlError::plan(
                format!(
                    "'{key}' must be a duration such as '1 h', '30 min' or '1 d' (0 keeps state forever), not '{value}'"
                ),
                position,
            ));
        }
        self.options.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// A session option.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// Swaps the session's options for `options` and returns the ones it
    /// had: a server shares one catalog between clients, each with the
    /// options of its own `SET`s.
    pub fn replace_options(
        &mut self,
        options: BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        std::mem::replace(&mut self.options, options)
    }

    /// The session's options.
    pub fn options(&self) -> &BTreeMap<String, String> {
        &self.options
    }

    /// A planner over the session's catalog, with its options.
    pub(crate) fn planner(&self) -> Planner<'_> {
        let lateness = self
            .option(ALLOW_LATENESS_OPTION)
            .and_then(parse_duration)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Planner::new(&self.catalog)
            .with_expectations(&self.expect)
            .with_allowed_lateness(lateness)
            .with_identity(&self.principal().user, self.current_roles())
    }

    /// The late-data table the session names, checked: a table (not a
    /// view) with the columns late rows have.
    pub(super) fn late_table(
        &self,
        position: crate::error::Position,
    ) -> Result<Option<runnel_engine::connector::TableDescriptor>> {
        let Some(name) = self.option(LATE_DATA_TABLE_OPTION).map(str::trim) else {
            return Ok(None);
        };
        if name.is_empty() {
            return Ok(None);
        }
        let wanted = runnel_engine::ops::late::late_table_schema();
        let create = format!(
            "CREATE TABLE {name} (operator STRING, watermark TIMESTAMP(3), row_time TIMESTAMP(3), `row` STRING) WITH (...)"
        );
        let table = match self.catalog.get_by_key(&name.to_lowercase()) {
            Some(Entry::Table(t)) if t.kind == crate::catalog::TableKind::Table => t,
            Some(_) => {
                return Err(SqlError::plan(
                    format!("'{LATE_DATA_TABLE_OPTION}' names '{name}', which is not a table; late rows go to a table such as {create}"),
                    position,
                ))
            }
            None => {
                return Err(SqlError::plan(
                    format!("'{LATE_DATA_TABLE_OPTION}' names '{name}', which does not exist; create it first: {create}"),
                    position,
                ))
            }
        };
        // Late rows are written to it: the user needs INSERT there.
        self.require(
            crate::access::Privilege::Insert,
            &crate::access::Securable::Object(name.to_lowercase()),
            position,
        )?;
        let have = &table.descriptor.schema;
        let same = have.fields().len() == wanted.fields().len()
            && have.fields().iter().zip(wanted.fields()).all(|(a, b)| {
                a.name().eq_ignore_ascii_case(b.name()) && a.data_type() == b.data_type()
            });
        if !same {
            return Err(SqlError::plan(
                format!("the late-data table '{name}' must have the columns (operator STRING, watermark TIMESTAMP(3), row_time TIMESTAMP(3), `row` STRING), in this order: {create}"),
                position,
            ));
        }
        Ok(Some(table.descriptor.clone()))
    }

    pub(super) fn lower_options(&self, position: crate::error::Position) -> Result<LowerOptions> {
        Ok(LowerOptions {
            parallelism: self.parallelism(),
            registry: self.registry.clone(),
            state_ttl: self
                .option(STATE_TTL_OPTION)
                .and_then(parse_duration)
                .filter(|d| !d.is_zero()),
            clock: self.clock.clone(),
            late_table: self.late_table(position)?,
        })
    }

    /// Where state lives, from the session options: `'state.backend.type'`
    /// (`'rocksdb'`, the default, or `'hashmap'`, Flink's names),
    /// `'state.backend.memory-budget'` (state each stateful operator subtask
    /// keeps in memory before spilling to RocksDB; default 512 MB) and
    /// `'state.backend.rocksdb.localdir'` (working copies of jobs without
    /// checkpoints).
    pub(super) fn state_config(&self, position: crate::error::Position) -> Result<StateConfig> {
        let mut config = StateConfig::default();
        if let Some(v) = self.option("state.backend.type") {
            config.backend = match v.trim().to_ascii_lowercase().as_str() {
                "rocksdb" => StateBackendKind::RocksDb,
                "hashmap" => StateBackendKind::HashMap,
                _ => {
                    return Err(SqlError::plan(
                        format!("'state.backend.type' must be 'rocksdb' or 'hashmap', not '{v}'"),
                        position,
                    ))
                }
            };
        }
        if let Some(v) = self.option("state.backend.memory-budget") {
            config.memory_budget = parse_byte_size(v)
                .filter(|n| *n > 0)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    SqlError::plan(
                        format!(
                            "'state.backend.memory-budget' must be a size such as '64mb', not '{v}'"
                        ),
                        position,
                    )
                })?;
        }
        if let Some(v) = self.option("state.backend.rocksdb.localdir") {
            config.local_dir = Some(PathBuf::from(v));
        }
        Ok(config)
    }

    /// A duration option (milliseconds or a duration such as `'5 ms'`),
    /// `None` when not set.
    pub(super) fn duration_option(
        &self,
        key: &str,
        position: crate::error::Position,
    ) -> Result<Option<Duration>> {
        let Some(v) = self.option(key) else {
            return Ok(None);
        };
        parse_duration(v).map(Some).ok_or_else(|| {
            SqlError::plan(
                format!("'{key}' must be milliseconds or a duration such as '5 ms', not '{v}'"),
                position,
            )
        })
    }

    /// `'metrics.latency.interval'` (Flink's name): how often sources send
    /// latency markers; milliseconds or a duration, `0` (the default) for
    /// none.
    pub(super) fn latency_interval(
        &self,
        position: crate::error::Position,
    ) -> Result<Option<Duration>> {
        let Some(v) = self.option("metrics.latency.interval") else {
            return Ok(None);
        };
        let d = parse_duration(v).ok_or_else(|| {
            SqlError::plan(
                format!("'metrics.latency.interval' must be milliseconds or a duration such as '100 ms', not '{v}'"),
                position,
            )
        })?;
        Ok((!d.is_zero()).then_some(d))
    }

    /// Checkpointing for job `id`, from the session options (Flink's
    /// names): `'state.checkpoints.dir'` turns it on (each job gets the
    /// subdirectory named after its id), `'execution.checkpointing.interval'`
    /// (default 10 s) and `'state.checkpoints.num-retained'` (default 3).
    pub(super) fn checkpoint_config(
        &self,
        id: &str,
        statement: &str,
        graph: &JobGraph,
        position: crate::error::Position,
    ) -> Result<Option<CheckpointConfig>> {
        let Some(dir) = self.option("state.checkpoints.dir") else {
            return Ok(None);
        };
        let interval = match self.option("execution.checkpointing.interval") {
            None => Duration::from_secs(10),
            Some(v) => parse_duration(v).filter(|d| !d.is_zero()).ok_or_else(|| {
                SqlError::plan(
                    format!("'execution.checkpointing.interval' must be a duration such as '10 s', not '{v}'"),
                    position,
                )
            })?,
        };
        let retained = match self.option("state.checkpoints.num-retained") {
            None => 3,
            Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                SqlError::plan(
                    format!("'state.checkpoints.num-retained' must be a positive whole number, not '{v}'"),
                    position,
                )
            })?,
        };
        // The same statement planned the same way may resume its
        // checkpoints, at any parallelism.
        let plan_text = graph.shape().map_err(SqlError::Engine)?;
        let fingerprint = format!(
            "{:016x}",
            fnv1a(format!("{statement}\n{plan_text}").as_bytes())
        );
        // S3 options (Flink's names), for a checkpoint directory on S3.
        let storage_options = runnel_engine::graph::CHECKPOINT_STORAGE_OPTIONS
            .iter()
            .filter_map(|k| self.option(k).map(|v| (k.to_string(), v.to_string())))
            .collect();
        let dir = if dir.starts_with("s3://") {
            PathBuf::from(format!("{}/{id}", dir.trim_end_matches('/')))
        } else {
            PathBuf::from(dir).join(id)
        };
        Ok(Some(CheckpointConfig {
            dir,
            interval,
            retained,
            fingerprint,
            storage_options,
            restore_from: self.option("execution.savepoint.path").map(PathBuf::from),
        }))
    }
}
