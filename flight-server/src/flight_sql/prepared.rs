//! Prepared statements: the SQL text with `?` placeholders, kept under a
//! handle until closed, and the parameters a client binds, which become
//! SQL literals in the text when the statement runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::{IpcMessage, SchemaAsIpc};
use futures::TryStreamExt;
use tonic::{Request, Status};

use super::codes::status;
use super::metadata::annotate;
use crate::server::Server;

/// A prepared statement: its text and the parameters bound last.
struct PreparedEntry {
    sql: String,
    placeholders: usize,
    params: Option<RecordBatch>,
}

/// The open prepared statements of a service, by handle.
#[derive(Default)]
pub(super) struct PreparedStatements {
    entries: Mutex<HashMap<String, PreparedEntry>>,
}

/// What a client learns when it prepares a statement.
pub(super) struct Described {
    /// The IPC-encoded schema of the result (empty for updates).
    pub dataset_schema: Vec<u8>,
    /// The IPC-encoded schema of the parameters.
    pub parameter_schema: Vec<u8>,
}

impl PreparedStatements {
    fn lock(&self) -> Result<MutexGuard<'_, HashMap<String, PreparedEntry>>, Status> {
        self.entries
            .lock()
            .map_err(|_| Status::internal("prepared statements lock poisoned"))
    }

    /// Plans `sql` on `server` and keeps it under `handle`: its result
    /// schema and one nullable string parameter per placeholder.
    pub(super) async fn create(
        &self,
        server: &Arc<Server>,
        handle: &str,
        sql: String,
    ) -> Result<Described, Status> {
        let count = placeholders(&sql).len();
        // The schema is planned with NULL for every parameter.
        let probe = {
            let mut s = String::with_capacity(sql.len());
            let mut last = 0;
            for pos in placeholders(&sql) {
                s.push_str(&sql[last..pos]);
                s.push_str("NULL");
                last = pos + 1;
            }
            s.push_str(&sql[last..]);
            s
        };
        let server = Arc::clone(server);
        let dataset = tokio::task::spawn_blocking(move || server.describe(&probe))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(status)?;
        let dataset = dataset
            .map(|s| annotate(&s, None))
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        let params = Schema::new(
            (1..=count)
                .map(|i| Field::new(format!("p{i}"), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        self.lock()?.insert(
            handle.to_string(),
            PreparedEntry {
                sql,
                placeholders: count,
                params: None,
            },
        );
        Ok(Described {
            dataset_schema: encode_schema(&dataset)?,
            parameter_schema: encode_schema(&params)?,
        })
    }

    /// Closes the prepared statement under `handle`.
    pub(super) fn close(&self, handle: &str) -> Result<(), Status> {
        self.lock()?
            .remove(handle)
            .map(|_| ())
            .ok_or_else(|| Status::not_found("unknown or already closed prepared statement"))
    }

    /// Binds the one row of parameters a prepared query runs with.
    pub(super) fn bind(&self, handle: &str, batches: Vec<RecordBatch>) -> Result<(), Status> {
        let mut prepared = self.lock()?;
        let entry = prepared
            .get_mut(handle)
            .ok_or_else(|| Status::not_found("unknown or closed prepared statement"))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "a query takes one row of parameters, not {rows}"
            )));
        }
        entry.params = batches.into_iter().find(|b| b.num_rows() > 0);
        Ok(())
    }

    /// The SQL of a prepared statement with its bound parameters.
    pub(super) fn bound_sql(&self, handle: &str) -> Result<String, Status> {
        let prepared = self.lock()?;
        let entry = prepared
            .get(handle)
            .ok_or_else(|| Status::not_found("unknown or closed prepared statement"))?;
        substitute(&entry.sql, entry.placeholders, entry.params.as_ref(), 0)
    }

    /// The statements a prepared update runs: one per row of `batches`, or
    /// once with the parameters bound before when `batches` has no rows.
    pub(super) fn update_statements(
        &self,
        handle: &str,
        batches: Vec<RecordBatch>,
    ) -> Result<Vec<String>, Status> {
        let (sql, count, stored) = {
            let prepared = self.lock()?;
            let e = prepared
                .get(handle)
                .ok_or_else(|| Status::not_found("unknown or closed prepared statement"))?;
            (e.sql.clone(), e.placeholders, e.params.clone())
        };
        let mut statements = Vec::new();
        let bound: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        if bound.is_empty() {
            statements.push(substitute(&sql, count, stored.as_ref(), 0)?);
        }
        for b in &bound {
            for row in 0..b.num_rows() {
                statements.push(substitute(&sql, count, Some(b), row)?);
            }
        }
        Ok(statements)
    }
}

/// Positions of the `?` placeholders of `sql` (outside strings, quoted
/// identifiers and comments), as byte offsets.
pub fn placeholders(sql: &str) -> Vec<usize> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        // A doubled quote is an escaped quote.
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'?' => out.push(i),
            _ => {}
        }
        i += 1;
    }
    out
}

/// `sql` with its placeholders replaced by the values of row `row` of
/// `params`, as SQL literals.
pub fn substitute(
    sql: &str,
    count: usize,
    params: Option<&RecordBatch>,
    row: usize,
) -> Result<String, Status> {
    if count == 0 {
        return Ok(sql.to_string());
    }
    let params = params.ok_or_else(|| {
        Status::invalid_argument(format!(
            "the statement has {count} parameter(s) but none were bound"
        ))
    })?;
    if params.num_columns() != count {
        return Err(Status::invalid_argument(format!(
            "the statement has {count} parameter(s) but {} were bound",
            params.num_columns()
        )));
    }
    let mut out = String::with_capacity(sql.len() + 16 * count);
    let mut last = 0;
    for (k, pos) in placeholders(sql).into_iter().enumerate() {
        out.push_str(&sql[last..pos]);
        out.push_str(&literal(params.column(k), row)?);
        last = pos + 1;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

/// One value as a SQL literal.
fn literal(array: &ArrayRef, row: usize) -> Result<String, Status> {
    use arrow::array::AsArray;
    use arrow::datatypes::*;
    if row >= array.len() || array.is_null(row) {
        return Ok("NULL".into());
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Ok(match array.data_type() {
        DataType::Boolean => {
            if array.as_boolean().value(row) {
                "TRUE".into()
            } else {
                "FALSE".into()
            }
        }
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::Float32 | DataType::Float64 => {
            let v = if array.data_type() == &DataType::Float32 {
                f64::from(array.as_primitive::<Float32Type>().value(row))
            } else {
                array.as_primitive::<Float64Type>().value(row)
            };
            if !v.is_finite() {
                return Err(Status::invalid_argument(format!(
                    "parameter value {v} has no SQL literal"
                )));
            }
            // A literal with an exponent is a DOUBLE, not a DECIMAL.
            format!("{v:e}")
        }
        DataType::Utf8 => quote(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => quote(array.as_string::<i64>().value(row)),
        DataType::Utf8View => quote(array.as_string_view().value(row)),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let date = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                .ok_or_else(|| Status::invalid_argument("date parameter out of range"))?;
            format!("DATE '{date}'")
        }
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row) * 1000,
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row) / 1000
                }
                TimeUnit::Nanosecond => {
                    array.as_primitive::<TimestampNanosecondType>().value(row) / 1_000_000
                }
            };
            let t = chrono::DateTime::from_timestamp_millis(v)
                .ok_or_else(|| Status::invalid_argument("timestamp parameter out of range"))?;
            format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.3f"))
        }
        other => {
            return Err(Status::invalid_argument(format!(
                "parameters of type {other} are not supported"
            )))
        }
    })
}

/// Reads the parameter batches of a DoPut.
pub(super) async fn read_params(
    request: Request<PeekableFlightDataStream>,
) -> Result<Vec<RecordBatch>, Status> {
    // The first message may carry only the descriptor (no parameters).
    let stream = request
        .into_inner()
        .try_filter(|d| futures::future::ready(!d.data_header.is_empty()))
        .map_err(|e| e.into());
    FlightRecordBatchStream::new_from_flight_data(stream)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}")))
}

fn encode_schema(schema: &Schema) -> Result<Vec<u8>, Status> {
    let message: Result<IpcMessage, _> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    let IpcMessage(bytes) = message.map_err(|e| Status::internal(e.to_string()))?;
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};

    #[test]
    fn placeholders_skip_strings_identifiers_and_comments() {
        let sql = "SELECT '?', `a?` -- ?\n FROM t /* ? */ WHERE a = ? AND b = '''?' AND c = ?";
        let p = placeholders(sql);
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|&i| &sql[i..=i] == "?"));
    }

    #[test]
    fn parameters_become_literals() -> Result<(), Status> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(7)])),
                Arc::new(StringArray::from(vec![Some("it's")])),
                Arc::new(Float64Array::from(vec![None])),
            ],
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        let sql = substitute(
            "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?",
            3,
            Some(&batch),
            0,
        )?;
        assert_eq!(
            sql,
            "SELECT * FROM t WHERE a = 7 AND b = 'it''s' AND c = NULL"
        );
        let err = substitute("SELECT ?", 1, None, 0).expect_err("unbound");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        Ok(())
    }
}
