//! Prepared statements: the SQL text with `?` placeholders, kept under a
//! handle until closed, and the values a client binds to them. The server
//! types each parameter from where it stands; a bound row of Arrow values
//! becomes one value per parameter, which the statement's plan takes as
//! typed literals (the text is never rewritten).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{Field, Schema};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::{IpcMessage, SchemaAsIpc};
use futures::TryStreamExt;
use runnel_engine::expr::ScalarValue;
use tonic::{Request, Status};

use super::codes::status;
use super::metadata::annotate;
use crate::server::Server;

/// A prepared statement: its text, the values bound last, and the user
/// who prepared it (the only one who may use it).
struct PreparedEntry {
    sql: String,
    params: Vec<ScalarValue>,
    owner: String,
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

/// A statement to run and the values of its parameters.
pub(super) type Bound = (String, Vec<ScalarValue>);

impl PreparedStatements {
    fn lock(&self) -> Result<MutexGuard<'_, HashMap<String, PreparedEntry>>, Status> {
        self.entries
            .lock()
            .map_err(|_| Status::internal("prepared statements lock poisoned"))
    }

    /// Plans `sql` on `server` and keeps it under `handle`: its result
    /// schema and one nullable parameter `p1`..`pn` per placeholder, of
    /// the type its place gives.
    pub(super) async fn create(
        &self,
        server: &Arc<Server>,
        client: &crate::clients::Client,
        handle: &str,
        sql: String,
    ) -> Result<Described, Status> {
        let server = Arc::clone(server);
        let probe = sql.clone();
        let client_user = client.user.clone();
        let client = client.clone();
        let (dataset, types) =
            tokio::task::spawn_blocking(move || server.prepare_as(&client, &probe))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(status)?;
        let dataset = dataset
            .map(|s| annotate(&s, None))
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        let params = Schema::new(
            types
                .into_iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("p{}", i + 1), t, true))
                .collect::<Vec<_>>(),
        );
        self.lock()?.insert(
            handle.to_string(),
            PreparedEntry {
                sql,
                params: Vec::new(),
                owner: client_user,
            },
        );
        Ok(Described {
            dataset_schema: encode_schema(&dataset)?,
            parameter_schema: encode_schema(&params)?,
        })
    }

    /// Closes `user`'s prepared statement under `handle`.
    pub(super) fn close(&self, handle: &str, user: &str) -> Result<(), Status> {
        let mut prepared = self.lock()?;
        match prepared.get(handle) {
            Some(e) if e.owner == user => {
                prepared.remove(handle);
                Ok(())
            }
            _ => Err(unknown()),
        }
    }

    /// Binds the one row of parameters a prepared query runs with.
    pub(super) fn bind(
        &self,
        handle: &str,
        user: &str,
        batches: Vec<RecordBatch>,
    ) -> Result<(), Status> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "a query takes one row of parameters, not {rows}"
            )));
        }
        let params = match batches.iter().find(|b| b.num_rows() > 0) {
            Some(b) => row_values(b, 0)?,
            None => Vec::new(),
        };
        let mut prepared = self.lock()?;
        let entry = prepared
            .get_mut(handle)
            .filter(|e| e.owner == user)
            .ok_or_else(unknown)?;
        entry.params = params;
        Ok(())
    }

    /// `user`'s prepared query with the values bound to it.
    pub(super) fn bound(&self, handle: &str, user: &str) -> Result<Bound, Status> {
        let prepared = self.lock()?;
        let entry = prepared
            .get(handle)
            .filter(|e| e.owner == user)
            .ok_or_else(unknown)?;
        Ok((entry.sql.clone(), entry.params.clone()))
    }

    /// The runs of a prepared update: one per row of `batches`, or one
    /// with the values bound before when `batches` has no rows.
    pub(super) fn update_runs(
        &self,
        handle: &str,
        user: &str,
        batches: Vec<RecordBatch>,
    ) -> Result<Vec<Bound>, Status> {
        let (sql, stored) = self.bound(handle, user)?;
        let bound: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        if bound.is_empty() {
            return Ok(vec![(sql, stored)]);
        }
        let mut runs = Vec::new();
        for b in &bound {
            for row in 0..b.num_rows() {
                runs.push((sql.clone(), row_values(b, row)?));
            }
        }
        Ok(runs)
    }
}

/// What a handle that is not the caller's, or not open, finds: nothing
/// (another user's handle is not told apart from an unknown one).
fn unknown() -> Status {
    Status::not_found(
        "unknown or closed prepared statement (a prepared statement is its preparer's)",
    )
}

/// Row `row` of `batch`, one value per column.
fn row_values(batch: &RecordBatch, row: usize) -> Result<Vec<ScalarValue>, Status> {
    batch
        .columns()
        .iter()
        .enumerate()
        .map(|(k, column)| {
            value(column.as_ref(), row)
                .map_err(|e| Status::invalid_argument(format!("parameter {}: {e}", k + 1)))
        })
        .collect()
}

/// One value of a parameter column: the column's type is the client's,
/// the value keeps its meaning (a narrower integer widens, a timestamp of
/// any unit becomes milliseconds).
fn value(array: &dyn Array, row: usize) -> Result<ScalarValue, String> {
    use arrow::datatypes::*;
    if row >= array.len() || array.is_null(row) {
        return Ok(ScalarValue::Null);
    }
    let widened = |to: &DataType| -> Result<ScalarValue, String> {
        let one = array.slice(row, 1);
        let cast = cast(&one, to).map_err(|e| e.to_string())?;
        ScalarValue::try_from_array(cast.as_ref(), 0).map_err(|e| e.to_string())
    };
    match array.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => widened(&DataType::Int64),
        DataType::Float16 | DataType::Float32 => widened(&DataType::Float64),
        DataType::LargeUtf8 | DataType::Utf8View => widened(&DataType::Utf8),
        DataType::Date64 => widened(&DataType::Date32),
        // flightsql-dbapi (and SQLAlchemy through it) sends each value as
        // a dense union of int64, float64, utf8, binary and bool: the value
        // is the one the row's type id selects.
        DataType::Union(_, mode) => {
            let union = array.as_union();
            let child = union.child(union.type_id(row));
            let at = match mode {
                UnionMode::Dense => union.value_offset(row),
                UnionMode::Sparse => row,
            };
            value(child.as_ref(), at)
        }
        // The instant, whatever zone the client named.
        DataType::Timestamp(unit, _) => {
            let millis = match unit {
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
            Ok(ScalarValue::TimestampMillis(millis))
        }
        other => ScalarValue::try_from_array(array, row)
            .map_err(|_| format!("parameters of type {other} are not supported")),
    }
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
    use arrow::array::{
        Float32Array, Int16Array, Int64Array, StringArray, TimestampMicrosecondArray, UnionArray,
    };
    use arrow::buffer::ScalarBuffer;
    use arrow::datatypes::{DataType, TimeUnit};
    use arrow::datatypes::{Field, UnionFields, UnionMode};
    use std::sync::Arc;

    #[test]
    fn a_bound_row_becomes_one_value_per_column() -> Result<(), Status> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int16, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Float32, true),
            Field::new("d", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int16Array::from(vec![Some(7)])),
                Arc::new(StringArray::from(vec![Some("it's \"quoted\"")])),
                Arc::new(Float32Array::from(vec![None])),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(1_500_000)])),
            ],
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        assert_eq!(
            row_values(&batch, 0)?,
            vec![
                ScalarValue::Int64(7),
                ScalarValue::Utf8("it's \"quoted\"".into()),
                ScalarValue::Null,
                ScalarValue::TimestampMillis(1_500),
            ]
        );
        Ok(())
    }

    fn union_of_int_and_text(mode: UnionMode) -> UnionArray {
        let fields = UnionFields::try_new(
            [0, 1],
            [
                Field::new("int", DataType::Int64, true),
                Field::new("str", DataType::Utf8, true),
            ],
        )
        .expect("fields");
        let type_ids = ScalarBuffer::from(vec![1i8, 0, 0]);
        match mode {
            UnionMode::Dense => UnionArray::try_new(
                fields,
                type_ids,
                Some(ScalarBuffer::from(vec![0i32, 0, 1])),
                vec![
                    Arc::new(Int64Array::from(vec![Some(42), None])),
                    Arc::new(StringArray::from(vec!["it's"])),
                ],
            ),
            UnionMode::Sparse => UnionArray::try_new(
                fields,
                type_ids,
                None,
                vec![
                    Arc::new(Int64Array::from(vec![Some(0), Some(42), None])),
                    Arc::new(StringArray::from(vec![Some("it's"), None, None])),
                ],
            ),
        }
        .expect("union")
    }

    #[test]
    fn union_parameters_give_the_value_their_type_id_selects() {
        for mode in [UnionMode::Dense, UnionMode::Sparse] {
            let union = union_of_int_and_text(mode);
            let got: Vec<ScalarValue> = (0..3)
                .map(|row| value(&union, row).expect("value"))
                .collect();
            assert_eq!(
                got,
                vec![
                    ScalarValue::Utf8("it's".into()),
                    ScalarValue::Int64(42),
                    ScalarValue::Null
                ],
                "{mode:?}"
            );
        }
    }
}
