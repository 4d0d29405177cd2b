//! Small stateless operators: union, processing-time column.

use std::sync::Arc;

use arrow::array::{RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::Result;
use crate::operator::{Collector, Operator, OperatorContext, OperatorFactory, TaskInfo};
use crate::time::Clock;

/// Forwards the batches of every input unchanged (`UNION ALL`). The runtime
/// already merges watermarks and aligns barriers across the inputs.
#[derive(Debug, Default)]
pub struct UnionOperator;

impl UnionOperator {
    /// A factory of union operators.
    pub fn factory() -> OperatorFactory {
        Arc::new(|_t: &TaskInfo| Ok(Box::new(UnionOperator) as Box<dyn Operator>))
    }
}

impl Operator for UnionOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        out.collect(batch)
    }
}

/// Appends columns holding the wall-clock time at which each batch passed
/// (`name AS PROCTIME()` columns and `PROCTIME()` in a select list), in
/// milliseconds. The time never goes backwards within one instance, so a
/// processing-time watermark from the same clock never makes a row late.
#[derive(Debug)]
pub struct ProcTimeOperator {
    schema: SchemaRef,
    columns: usize,
    clock: Clock,
    last: i64,
}

impl ProcTimeOperator {
    /// Output schema: `input` plus one non-null `TIMESTAMP(3)` column per name.
    pub fn output_schema(input: &Schema, names: &[String]) -> SchemaRef {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for n in names {
            fields.push(Field::new(
                n,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ));
        }
        Arc::new(Schema::new(fields))
    }

    /// A factory of these operators.
    pub fn factory(input: &Schema, names: Vec<String>, clock: Clock) -> OperatorFactory {
        let schema = Self::output_schema(input, &names);
        let columns = names.len();
        Arc::new(move |_t: &TaskInfo| {
            Ok(Box::new(ProcTimeOperator {
                schema: Arc::clone(&schema),
                columns,
                clock: clock.clone(),
                last: i64::MIN,
            }) as Box<dyn Operator>)
        })
    }
}

impl Operator for ProcTimeOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let now = self.clock.now_millis().max(self.last);
        self.last = now;
        let mut cols = batch.columns().to_vec();
        for _ in 0..self.columns {
            cols.push(Arc::new(TimestampMillisecondArray::from(vec![
                now;
                batch
                    .num_rows(
                    )
            ])));
        }
        out.collect(RecordBatch::try_new(Arc::clone(&self.schema), cols)?)
    }
}
