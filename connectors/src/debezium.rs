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

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StructArray};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;
use runnel_engine::connector::TableDescriptor;
use runnel_engine::types::{row_kind_array, with_row_kind, RowKind};
use runnel_engine::Result;

/// The format name.
pub const FORMAT: &str = "debezium-json";

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
    /// with `before` and `after` as structs of the columns (every one
    /// nullable here; the table's NOT NULL is checked on the rows).
    pub fn wire_schema(&self, columns: &Schema) -> SchemaRef {
        let row: Fields = columns
            .fields()
            .iter()
            .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
            .collect();
        let envelope = vec![
            Field::new("before", DataType::Struct(row.clone()), true),
            Field::new("after", DataType::Struct(row), true),
            Field::new("op", DataType::Utf8, true),
        ];
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
        for c in 0..columns.fields().len() {
            let sides: [&dyn Array; 2] = [before.column(c).as_ref(), after.column(c).as_ref()];
            out.push(interleave(&sides, &picks)?);
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
