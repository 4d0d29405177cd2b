//! Turning one partition's run of records into a batch: parsing keys and
//! values, filling metadata columns, and routing records that do not parse.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::compute::concat_batches;
use runnel_engine::types::{row_kind_array, with_row_kind, RowKind};
use runnel_engine::{EngineError, Result};

use super::dead_letter::DeadLetter;
use super::{show, KafkaSource, Rec, Tp};
use crate::kafka::{Malformed, Meta};

impl KafkaSource {
    /// Decodes the records of one partition, routing bad ones.
    pub(super) fn decode_run(&mut self, tp: &Tp, recs: &[Rec]) -> Result<RecordBatch> {
        if self.t.upsert {
            return self.decode_upsert_run(tp, recs);
        }
        let t = Arc::clone(&self.t);
        // Tombstones (no value) carry no row for an append-only table.
        let live: Vec<&Rec> = recs.iter().filter(|r| r.value.is_some()).collect();
        // Key columns are read from the key only when the value lacks them.
        let decode_keys =
            t.key_format.is_some() && t.key_columns.iter().any(|k| !t.value_columns.contains(k));
        let values: Vec<&[u8]> = live
            .iter()
            .map(|r| r.value.as_deref().unwrap_or_default())
            .collect();
        // Debezium envelopes become one or two rows each: `picks` says
        // which record (of `good`) each value row came from.
        let unwrap =
            |v: RecordBatch| -> std::result::Result<(RecordBatch, Option<Vec<u32>>), String> {
                match t.debezium {
                    None => Ok((v, None)),
                    Some(d) => d
                        .unwrap(&t.value_schema, &v)
                        .map(|(b, picks)| (b, Some(picks)))
                        .map_err(|e| e.to_string()),
                }
            };
        let fast = t
            .value_format
            .decode_all(&t.value_wire_schema, &values)
            .and_then(unwrap)
            .and_then(|v| {
                if !decode_keys {
                    return Ok((v, None));
                }
                let keys: Vec<&[u8]> = live
                    .iter()
                    .map(|r| r.key.as_deref().unwrap_or_default())
                    .collect();
                let f = t.key_format.unwrap_or(t.value_format);
                f.decode_all(&t.key_schema, &keys).map(|k| (v, Some(k)))
            });
        let (good, (value_batch, picks), key_batch) = match fast {
            Ok((v, k)) => (live, v, k),
            Err(_) => {
                let mut good = Vec::new();
                let mut vs = Vec::new();
                let mut ks = Vec::new();
                let mut picks: Vec<u32> = Vec::new();
                for r in live {
                    let v = t
                        .value_format
                        .decode_one(&t.value_wire_schema, r.value.as_deref().unwrap_or_default())
                        .and_then(unwrap);
                    let k = match (&v, decode_keys) {
                        (Ok(_), true) => t
                            .key_format
                            .unwrap_or(t.value_format)
                            .decode_one(&t.key_schema, r.key.as_deref().unwrap_or_default())
                            .map(Some)
                            .map_err(|e| format!("bad key: {e}")),
                        _ => Ok(None),
                    };
                    match (v, k) {
                        (Ok((v, p)), Ok(k)) => {
                            if p.is_some() {
                                picks.extend(std::iter::repeat_n(good.len() as u32, v.num_rows()));
                            }
                            good.push(r);
                            vs.push(v);
                            ks.extend(k);
                        }
                        (Err(e), _) | (_, Err(e)) => self.malformed(tp, r, &e)?,
                    }
                }
                let v = match t.debezium {
                    Some(_) => concat_batches(&with_row_kind(&t.value_schema), &vs)?,
                    None => concat_batches(&t.value_schema, &vs)?,
                };
                let picks = t.debezium.map(|_| picks);
                let k = if decode_keys {
                    Some(concat_batches(&t.key_schema, &ks)?)
                } else {
                    None
                };
                (good, (v, picks), k)
            }
        };
        // Columns not from the value repeat per row of their record.
        let spread = |a: ArrayRef| -> Result<ArrayRef> {
            match &picks {
                None => Ok(a),
                Some(p) => Ok(arrow::compute::take(
                    a.as_ref(),
                    &arrow::array::UInt32Array::from(p.clone()),
                    None,
                )?),
            }
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(t.schema.fields().len() + 1);
        for (i, field) in t.schema.fields().iter().enumerate() {
            let col: ArrayRef = if let Some((_, meta)) = t.metadata.iter().find(|(m, _)| *m == i) {
                let array = meta_column(*meta, tp, &good);
                spread(arrow::compute::cast(&array, field.data_type())?)?
            } else if let Some(k) = t.value_columns.iter().position(|&c| c == i) {
                value_batch.column(k).clone()
            } else if let (Some(kb), Some(k)) = (
                key_batch.as_ref(),
                t.key_columns.iter().position(|&c| c == i),
            ) {
                spread(kb.column(k).clone())?
            } else {
                return Err(EngineError::Internal(format!(
                    "kafka source: column '{}' has no origin",
                    field.name()
                )));
            };
            columns.push(col);
        }
        let schema = match t.debezium {
            Some(_) => {
                columns.push(value_batch.column(value_batch.num_columns() - 1).clone());
                with_row_kind(&t.schema)
            }
            None => Arc::clone(&t.schema),
        };
        RecordBatch::try_new(schema, columns).map_err(|e| {
            EngineError::Execution(format!(
                "kafka: records of {} do not fit table '{}': {e}",
                show(tp),
                t.name
            ))
        })
    }

    /// `upsert-kafka`: every record with a key is a row, `+U` with its
    /// value or `-D` for a tombstone (value columns NULL); key columns come
    /// from the key, which says what the record is about. Records are
    /// parsed one by one.
    fn decode_upsert_run(&mut self, tp: &Tp, recs: &[Rec]) -> Result<RecordBatch> {
        let t = Arc::clone(&self.t);
        let key_format = t.key_format.unwrap_or(t.value_format);
        let mut good: Vec<&Rec> = Vec::new();
        let mut keys = Vec::new();
        let mut values = Vec::new();
        // Per good record: its row among `values`, or None (tombstone).
        let mut picks: Vec<Option<u32>> = Vec::new();
        for r in recs {
            let Some(key) = r.key.as_deref() else {
                self.malformed(tp, r, "an upsert-kafka record needs a key")?;
                continue;
            };
            let k = match key_format.decode_one(&t.key_schema, key) {
                Ok(k) => k,
                Err(e) => {
                    self.malformed(tp, r, &format!("bad key: {e}"))?;
                    continue;
                }
            };
            let v = match r.value.as_deref() {
                None => None,
                Some(v) => match t.value_format.decode_one(&t.value_schema, v) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        self.malformed(tp, r, &e)?;
                        continue;
                    }
                },
            };
            picks.push(v.as_ref().map(|_| values.len() as u32));
            values.extend(v);
            keys.push(k);
            good.push(r);
        }
        let key_batch = concat_batches(&t.key_schema, &keys)?;
        let value_batch = concat_batches(&t.value_schema, &values)?;
        let picks = arrow::array::UInt32Array::from(picks);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(t.schema.fields().len() + 1);
        for (i, field) in t.schema.fields().iter().enumerate() {
            let col: ArrayRef = if let Some((_, meta)) = t.metadata.iter().find(|(m, _)| *m == i) {
                arrow::compute::cast(&meta_column(*meta, tp, &good), field.data_type())?
            } else if let Some(k) = t.key_columns.iter().position(|&c| c == i) {
                key_batch.column(k).clone()
            } else if let Some(k) = t.value_columns.iter().position(|&c| c == i) {
                arrow::compute::take(value_batch.column(k).as_ref(), &picks, None)?
            } else {
                return Err(EngineError::Internal(format!(
                    "upsert-kafka source: column '{}' has no origin",
                    field.name()
                )));
            };
            columns.push(col);
        }
        let kinds: Vec<RowKind> = good
            .iter()
            .map(|r| {
                if r.value.is_some() {
                    RowKind::UpdateAfter
                } else {
                    RowKind::Delete
                }
            })
            .collect();
        columns.push(row_kind_array(&kinds));
        // Value columns of a tombstone are NULL even where the table says
        // NOT NULL: the normalize after the scan emits the key's last row.
        let fields: Vec<arrow::datatypes::Field> = t
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let schema = with_row_kind(&arrow::datatypes::Schema::new(fields));
        RecordBatch::try_new(schema, columns).map_err(|e| {
            EngineError::Execution(format!(
                "kafka: records of {} do not fit table '{}': {e}",
                show(tp),
                t.name
            ))
        })
    }

    fn malformed(&mut self, tp: &Tp, r: &Rec, why: &str) -> Result<()> {
        match &self.t.malformed {
            Malformed::Fail => Err(EngineError::Execution(format!(
                "malformed record in topic '{}' partition {} at offset {}: {why} \
                 (set 'scan.malformed-records' to 'skip' or 'dead-letter' to go on)",
                tp.0, tp.1, r.offset
            ))),
            Malformed::Skip => {
                if let Some(m) = &self.metrics {
                    m.add_malformed(1);
                }
                Ok(())
            }
            Malformed::DeadLetter(topic) => {
                if self.dead_letter.is_none() {
                    self.dead_letter = Some(DeadLetter::new(&self.t)?);
                }
                if let Some(d) = &self.dead_letter {
                    d.send(topic, tp, r, why)?;
                }
                if let Some(m) = &self.metrics {
                    m.add_malformed(1);
                }
                Ok(())
            }
        }
    }
}

/// The values of one metadata column for `recs`.
fn meta_column(meta: Meta, tp: &Tp, recs: &[&Rec]) -> ArrayRef {
    match meta {
        Meta::Timestamp => Arc::new(TimestampMillisecondArray::from(
            recs.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
        )),
        Meta::Partition => Arc::new(Int32Array::from(vec![tp.1; recs.len()])),
        Meta::Offset => Arc::new(Int64Array::from(
            recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        )),
        Meta::Topic => Arc::new(StringArray::from(vec![tp.0.as_str(); recs.len()])),
        Meta::Key => Arc::new(BinaryArray::from(
            recs.iter().map(|r| r.key.as_deref()).collect::<Vec<_>>(),
        )),
        Meta::Headers => Arc::new(StringArray::from(
            recs.iter()
                .map(|r| {
                    let map: serde_json::Map<String, serde_json::Value> = r
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            let v = v.as_ref().map_or(serde_json::Value::Null, |b| {
                                serde_json::Value::String(String::from_utf8_lossy(b).into_owned())
                            });
                            (k.clone(), v)
                        })
                        .collect();
                    serde_json::Value::Object(map).to_string()
                })
                .collect::<Vec<_>>(),
        )),
    }
}
