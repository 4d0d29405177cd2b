//! `'format' = 'debezium-json'`: database changes as Debezium writes them,
//! read as a changelog.
//!
//! Each record is one JSON object, the envelope: `before` (the row before
//! the change, or null), `after` (the row after it, or null) and `op`.
//! With `'debezium-json.schema-include' = 'true'` the envelope is the
//! `payload` field of an object that also carries Debezium's `schema`
//! (which is ignored: the table's columns say what to read). The `op`
//! becomes row kinds, as in Flink:
//!
//! | `op` | meaning | rows |
//! |---|---|---|
//! | `c` | insert | `+I` of `after` |
//! | `r` | snapshot read | `+I` of `after` |
//! | `u` | update | `-U` of `before`, `+U` of `after` |
//! | `d` | delete | `-D` of `before` |
//!
//! An unknown `op`, or a change without the row it needs (an update
//! without `before`, say, which a source table without full replica
//! identity writes), makes the record malformed: the source fails naming
//! it, or skips and counts it, as its malformed-record option says.
//!
//! `METADATA` columns read the envelope ([`DebeziumMeta`]): the operation
//! (`op`, Runnel's addition), when Debezium saw the change
//! (`ingestion-timestamp`, the envelope's `ts_ms`) and the source block's
//! time, database, schema and table, with Flink's key names. A Kafka table
//! prefixes them with `value.` (`'value.source.table'`), as Flink does.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StructArray};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;
use runnel_engine::connector::{TableDescriptor, METADATA_FIELD_KEY};
use runnel_engine::types::{row_kind_array, with_row_kind, RowKind};
use runnel_engine::{EngineError, Result};

/// The format name.
pub const FORMAT: &str = "debezium-json";

/// What a `METADATA` column of a Debezium table reads from the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebeziumMeta {
    /// `op`: the operation code (`c`, `r`, `u`, `d`); both rows of an
    /// update have `u`.
    Op,
    /// `ingestion-timestamp`: the envelope's `ts_ms`, when Debezium
    /// processed the change.
    IngestionTimestamp,
    /// `source.timestamp`: `source.ts_ms`, when the database made it.
    SourceTimestamp,
    /// `source.database`: `source.db`.
    SourceDatabase,
    /// `source.schema`: `source.schema`.
    SourceSchema,
    /// `source.table`: `source.table`.
    SourceTable,
}

impl DebeziumMeta {
    /// The keys, for messages.
    pub const KEYS: &'static str =
        "op, ingestion-timestamp, source.timestamp, source.database, source.schema, source.table";

    /// The metadata a key names (after any `value.` prefix).
    pub fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "op" => Self::Op,
            "ingestion-timestamp" => Self::IngestionTimestamp,
            "source.timestamp" => Self::SourceTimestamp,
            "source.database" => Self::SourceDatabase,
            "source.schema" => Self::SourceSchema,
            "source.table" => Self::SourceTable,
            _ => return None,
        })
    }

    fn is_time(self) -> bool {
        matches!(self, Self::IngestionTimestamp | Self::SourceTimestamp)
    }

    /// The metadata of a column of a Debezium table's value, if it is one.
    fn of(field: &Field) -> Option<Self> {
        let key = field.metadata().get(METADATA_FIELD_KEY)?;
        Self::parse(key.strip_prefix("value.").unwrap_or(key))
    }

    /// Checks the `METADATA` columns of `table` whose key starts with
    /// `prefix` (`""`: all of them): each names Debezium metadata and has
    /// a type it can take.
    pub fn check_columns(table: &TableDescriptor, prefix: &str) -> Result<()> {
        for (i, field) in table.schema.fields().iter().enumerate() {
            let Some((key, _)) = table.metadata_column(i) else {
                continue;
            };
            let Some(rest) = key.strip_prefix(prefix) else {
                continue;
            };
            let meta = Self::parse(rest).ok_or_else(|| {
                EngineError::Plan(format!(
                    "column '{}' of table '{}' reads unknown metadata '{key}'; debezium-json has: {}",
                    field.name(),
                    table.name,
                    Self::KEYS
                        .split(", ")
                        .map(|k| format!("{prefix}{k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let fits = if meta.is_time() {
                matches!(
                    field.data_type(),
                    DataType::Timestamp(_, _) | DataType::Int64
                )
            } else {
                matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8)
            };
            if !fits {
                return Err(EngineError::Plan(format!(
                    "metadata column '{}' of table '{}' ('{key}') must be {}",
                    field.name(),
                    table.name,
                    if meta.is_time() {
                        "TIMESTAMP(3) or BIGINT"
                    } else {
                        "STRING"
                    }
                )));
            }
        }
        Ok(())
    }
}

/// How a table reads Debezium envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debezium {
    /// The envelope is under `payload` (Debezium's JSON converter with
    /// schemas enabled).
    pub schema_include: bool,
}

impl Debezium {
    /// The format of `table` when it reads Debezium JSON (`'format'` or
    /// `'value.format'` is `debezium-json`).
    pub fn of(table: &TableDescriptor) -> Result<Option<Self>> {
        let is = |k: &str| {
            table
                .option(k)
                .is_some_and(|f| f.eq_ignore_ascii_case(FORMAT))
        };
        if !is("format") && !is("value.format") {
            return Ok(None);
        }
        Ok(Some(Self {
            schema_include: table.bool_option("debezium-json.schema-include", false)?,
        }))
    }

    /// What the JSON decoder reads for a table of `columns`: the envelope
    /// with `before` and `after` as structs of the columns that are not
    /// metadata (every one nullable here; the table's NOT NULL is checked
    /// on the rows), and `ts_ms` and `source` when metadata columns read
    /// them.
    pub fn wire_schema(&self, columns: &Schema) -> SchemaRef {
        let row: Fields = columns
            .fields()
            .iter()
            .filter(|f| DebeziumMeta::of(f).is_none())
            .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
            .collect();
        let mut envelope = vec![
            Field::new("before", DataType::Struct(row.clone()), true),
            Field::new("after", DataType::Struct(row), true),
            Field::new("op", DataType::Utf8, true),
        ];
        if columns
            .fields()
            .iter()
            .any(|f| DebeziumMeta::of(f).is_some())
        {
            envelope.push(Field::new("ts_ms", DataType::Int64, true));
            envelope.push(Field::new(
                "source",
                DataType::Struct(Fields::from(vec![
                    Field::new("ts_ms", DataType::Int64, true),
                    Field::new("db", DataType::Utf8, true),
                    Field::new("schema", DataType::Utf8, true),
                    Field::new("table", DataType::Utf8, true),
                ])),
                true,
            ));
        }
        if self.schema_include {
            Arc::new(Schema::new(vec![Field::new(
                "payload",
                DataType::Struct(envelope.into()),
                true,
            )]))
        } else {
            Arc::new(Schema::new(envelope))
        }
    }

    /// Turns decoded envelopes (a batch of [`Self::wire_schema`]) into the
    /// changelog rows of `columns`, with the changelog column last, and
    /// the envelope each row came from.
    pub fn unwrap(
        &self,
        columns: &SchemaRef,
        envelopes: &RecordBatch,
    ) -> std::result::Result<(RecordBatch, Vec<u32>), ArrowError> {
        let envelope: StructArray = if self.schema_include {
            let payload = envelopes.column(0).as_struct();
            if payload.null_count() > 0 {
                return Err(malformed("has no 'payload'"));
            }
            payload.clone()
        } else {
            StructArray::from(envelopes.clone())
        };
        let before = envelope.column(0).as_struct();
        let after = envelope.column(1).as_struct();
        let op = envelope.column(2).as_string::<i32>();
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(envelope.len());
        let mut kinds = Vec::with_capacity(envelope.len());
        let mut records = Vec::with_capacity(envelope.len());
        for i in 0..envelope.len() {
            let need = |side: &StructArray, name: &str, what: &str| {
                if side.is_valid(i) {
                    Ok(())
                } else {
                    Err(malformed(&format!("is {what} without '{name}'")))
                }
            };
            let code = if op.is_valid(i) { op.value(i) } else { "" };
            match code {
                "c" | "r" => {
                    need(after, "after", "an insert")?;
                    picks.push((1, i));
                    kinds.push(RowKind::Insert);
                }
                "u" => {
                    need(before, "before", "an update")?;
                    need(after, "after", "an update")?;
                    picks.push((0, i));
                    kinds.push(RowKind::UpdateBefore);
                    picks.push((1, i));
                    kinds.push(RowKind::UpdateAfter);
                }
                "d" => {
                    need(before, "before", "a delete")?;
                    picks.push((0, i));
                    kinds.push(RowKind::Delete);
                }
                "" => return Err(malformed("has no 'op'")),
                other => {
                    return Err(malformed(&format!(
                        "has the unknown op '{other}' (expected c, r, u or d)"
                    )))
                }
            }
            records.extend(std::iter::repeat_n(
                i as u32,
                if code == "u" { 2 } else { 1 },
            ));
        }
        let mut out: Vec<ArrayRef> = Vec::with_capacity(columns.fields().len() + 1);
        let mut c = 0;
        for field in columns.fields() {
            if let Some(meta) = DebeziumMeta::of(field) {
                let per_envelope: ArrayRef = match meta {
                    DebeziumMeta::Op => Arc::clone(envelope.column(2)),
                    DebeziumMeta::IngestionTimestamp => Arc::clone(envelope.column(3)),
                    _ => {
                        let source = envelope.column(4).as_struct();
                        let child = match meta {
                            DebeziumMeta::SourceTimestamp => 0,
                            DebeziumMeta::SourceDatabase => 1,
                            DebeziumMeta::SourceSchema => 2,
                            _ => 3,
                        };
                        // A row of a missing `source` block has NULLs.
                        let values = source.column(child);
                        match source.nulls() {
                            Some(n) => arrow::compute::nullif(
                                values,
                                &arrow::array::BooleanArray::new(!n.inner(), None),
                            )?,
                            None => Arc::clone(values),
                        }
                    }
                };
                let per_row = arrow::compute::take(
                    per_envelope.as_ref(),
                    &arrow::array::UInt32Array::from(records.clone()),
                    None,
                )?;
                out.push(arrow::compute::cast(&per_row, field.data_type())?);
                continue;
            }
            let sides: [&dyn Array; 2] = [before.column(c).as_ref(), after.column(c).as_ref()];
            out.push(interleave(&sides, &picks)?);
            c += 1;
        }
        out.push(row_kind_array(&kinds));
        let batch = RecordBatch::try_new(with_row_kind(columns), out).map_err(|e| {
            ArrowError::ParseError(format!("a Debezium change does not fit the table: {e}"))
        })?;
        Ok((batch, records))
    }
}

fn malformed(what: &str) -> ArrowError {
    ArrowError::ParseError(format!("the Debezium change {what}"))
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Int64Type;
    use runnel_engine::types::row_kinds;

    use super::*;

    fn table() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn read(format: Debezium, text: &str) -> std::result::Result<RecordBatch, ArrowError> {
        let wire = format.wire_schema(&table());
        let envelopes =
            crate::text::decode_records(&wire, text.as_bytes(), text.lines().count(), None)?;
        format.unwrap(&table(), &envelopes).map(|(b, _)| b)
    }

    fn rows(b: &RecordBatch) -> Vec<String> {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let names = b.column(1).as_string::<i32>();
        row_kinds(b)
            .expect("kinds")
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let name = if names.is_null(i) {
                    "NULL"
                } else {
                    names.value(i)
                };
                format!("{} {} {name}", k.short_string(), ids.value(i))
            })
            .collect()
    }

    #[test]
    fn each_op_becomes_its_row_kinds() {
        let text = r#"{"before":null,"after":{"id":1,"name":"a"},"op":"r"}
{"before":null,"after":{"id":2,"name":"b"},"op":"c"}
{"before":{"id":1,"name":"a"},"after":{"id":1,"name":"z"},"op":"u","ts_ms":5}
{"before":{"id":2,"name":"b"},"after":null,"op":"d"}
"#;
        let b = read(
            Debezium {
                schema_include: false,
            },
            text,
        )
        .expect("reads");
        assert_eq!(rows(&b), ["+I 1 a", "+I 2 b", "-U 1 a", "+U 1 z", "-D 2 b"]);
    }

    #[test]
    fn metadata_columns_read_the_envelope() {
        let meta = |name: &str, key: &str, t: DataType| {
            Field::new(name, t, true).with_metadata(
                [(METADATA_FIELD_KEY.to_string(), key.to_string())]
                    .into_iter()
                    .collect(),
            )
        };
        let columns = Arc::new(Schema::new(vec![
            meta("op", "op", DataType::Utf8),
            Field::new("id", DataType::Int64, false),
            meta(
                "seen",
                "value.ingestion-timestamp",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            ),
            meta("tbl", "source.table", DataType::Utf8),
            Field::new("name", DataType::Utf8, true),
        ]));
        let text = r#"{"before":null,"after":{"id":1,"name":"a"},"op":"c","ts_ms":1000,"source":{"table":"products","db":"shop","snapshot":"false"}}
{"before":{"id":1,"name":"a"},"after":{"id":1,"name":"z"},"op":"u","ts_ms":2000,"source":{"table":"items"}}
{"before":{"id":1,"name":"z"},"after":null,"op":"d"}
"#;
        let format = Debezium {
            schema_include: false,
        };
        let wire = format.wire_schema(&columns);
        let envelopes =
            crate::text::decode_records(&wire, text.as_bytes(), 3, None).expect("parses");
        let (b, records) = format.unwrap(&columns, &envelopes).expect("unwraps");
        assert_eq!(records, [0, 1, 1, 2]);
        let ops: Vec<Option<&str>> = b.column(0).as_string::<i32>().iter().collect();
        assert_eq!(ops, [Some("c"), Some("u"), Some("u"), Some("d")]);
        let ids: Vec<i64> = b.column(1).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(ids, [1, 1, 1, 1]);
        let seen: Vec<Option<i64>> = b
            .column(2)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
            .iter()
            .collect();
        assert_eq!(seen, [Some(1000), Some(2000), Some(2000), None]);
        let tables: Vec<Option<&str>> = b.column(3).as_string::<i32>().iter().collect();
        assert_eq!(
            tables,
            [Some("products"), Some("items"), Some("items"), None]
        );
        let names: Vec<Option<&str>> = b.column(4).as_string::<i32>().iter().collect();
        assert_eq!(names, [Some("a"), Some("a"), Some("z"), Some("z")]);
        let kinds: Vec<&str> = row_kinds(&b)
            .expect("kinds")
            .iter()
            .map(|k| k.short_string())
            .collect();
        assert_eq!(kinds, ["+I", "-U", "+U", "-D"]);
    }

    #[test]
    fn the_envelope_may_sit_under_payload() {
        let text = r#"{"schema":{"type":"struct"},"payload":{"before":null,"after":{"id":7,"name":null},"op":"c"}}
"#;
        let b = read(
            Debezium {
                schema_include: true,
            },
            text,
        )
        .expect("reads");
        assert_eq!(rows(&b), ["+I 7 NULL"]);
    }

    #[test]
    fn broken_changes_are_malformed_with_the_reason() {
        let plain = Debezium {
            schema_include: false,
        };
        for (text, reason) in [
            (
                r#"{"before":null,"after":{"id":1},"op":"x"}"#,
                "unknown op 'x'",
            ),
            (
                r#"{"before":null,"after":{"id":1},"op":"u"}"#,
                "an update without 'before'",
            ),
            (
                r#"{"before":null,"after":null,"op":"d"}"#,
                "a delete without 'before'",
            ),
            (r#"{"after":{"id":1}}"#, "has no 'op'"),
            (
                r#"{"before":null,"after":{"name":"no id"},"op":"c"}"#,
                "does not fit the table",
            ),
        ] {
            let err = read(plain, &format!("{text}\n"))
                .err()
                .map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains(reason)),
                "{text}: {err:?}"
            );
        }
    }
}
