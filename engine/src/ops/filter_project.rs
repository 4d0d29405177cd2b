//! Stateless row operators: WHERE (filter) and SELECT lists (project).

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, RecordBatchOptions};
use arrow::compute::{filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::operator::{Collector, Operator, OperatorContext};
use crate::plan_err;

/// `mask` with NULL read as FALSE.
pub(crate) fn definite(mask: arrow::array::BooleanArray) -> arrow::array::BooleanArray {
    if mask.null_count() > 0 {
        prep_null_mask_filter(&mask)
    } else {
        mask
    }
}

/// Keeps the rows where the predicate is TRUE; FALSE and NULL rows are dropped.
#[derive(Debug, Clone)]
pub struct FilterOperator {
    predicate: Expr,
}

impl FilterOperator {
    /// A filter on `predicate` (its type is checked on the first batch; use
    /// [`FilterOperator::try_new`] to check it when planning).
    pub fn new(predicate: Expr) -> Self {
        Self { predicate }
    }

    /// A filter on `predicate`, failing unless it is boolean over `input`.
    pub fn try_new(predicate: Expr, input: &Schema) -> Result<Self> {
        let t = predicate.data_type(input)?;
        if !matches!(t, DataType::Boolean | DataType::Null) {
            plan_err!("filter predicate must be boolean, got {t}");
        }
        Ok(Self::new(predicate))
    }

    /// The predicate.
    pub fn predicate(&self) -> &Expr {
        &self.predicate
    }
}

impl Operator for FilterOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mask = self.predicate.evaluate(&batch)?;
        let mask = match mask.data_type() {
            DataType::Boolean => mask.as_boolean().clone(),
            // A NULL predicate (e.g. `WHERE NULL`) keeps nothing.
            DataType::Null => return Ok(()),
            other => plan_err!("filter predicate must be boolean, got {other}"),
        };
        let mask = definite(mask);
        let kept = mask.true_count();
        if kept == 0 {
            return Ok(());
        }
        if kept == batch.num_rows() {
            return out.collect(batch);
        }
        out.collect(filter_record_batch(&batch, &mask)?)
    }
}

/// Computes one output column per expression, under the declared names.
#[derive(Debug, Clone)]
pub struct ProjectOperator {
    exprs: Vec<Expr>,
    schema: SchemaRef,
}

impl ProjectOperator {
    /// A projection of `exprs` (with output names) over `input`; type errors
    /// in the expressions are reported here.
    pub fn new(exprs: Vec<(Expr, String)>, input: &Schema) -> Result<Self> {
        let mut fields = Vec::with_capacity(exprs.len());
        let mut list = Vec::with_capacity(exprs.len());
        for (e, name) in exprs {
            fields.push(Field::new(name, e.data_type(input)?, e.nullable(input)?));
            list.push(e);
        }
        Ok(Self {
            exprs: list,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The schema of the output batches.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The expressions, in output column order.
    pub fn exprs(&self) -> &[Expr] {
        &self.exprs
    }

    /// Projects one batch (also usable outside the operator, e.g. by sinks).
    pub fn project(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mut columns = Vec::with_capacity(self.exprs.len());
        for (e, field) in self.exprs.iter().zip(self.schema.fields()) {
            let c = e.evaluate(batch)?;
            if c.data_type() != field.data_type() {
                return Err(EngineError::Internal(format!(
                    "column '{}' evaluated to {} but was planned as {}",
                    field.name(),
                    c.data_type(),
                    field.data_type()
                )));
            }
            columns.push(c);
        }
        // The row count is explicit so that a projection with no columns
        // keeps the number of rows.
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }
}

impl Operator for ProjectOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        out.collect(self.project(&batch)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{binary, col, lit, BinaryOp, ScalarFunction};
    use crate::operator::{OperatorMetrics, TaskInfo, VecCollector};
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use runnel_state::MemoryStateBackend;

    fn input() -> Result<RecordBatch> {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(5), None, Some(10)]));
        let b: ArrayRef = Arc::new(StringArray::from(vec![
            Some("x"),
            Some("y"),
            Some("z"),
            None,
        ]));
        Ok(RecordBatch::try_from_iter(vec![("a", a), ("b", b)])?)
    }

    /// Runs `op` on one batch with a fresh context.
    fn run(op: &mut dyn Operator, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let task = TaskInfo {
            operator_name: "test".into(),
            subtask: 0,
            parallelism: 1,
            max_parallelism: 128,
            checkpointing: false,
            memory_budget: None,
        };
        let mut state = MemoryStateBackend::new();
        let metrics = Arc::new(OperatorMetrics::default());
        let mut ctx = OperatorContext {
            task: &task,
            state: &mut state,
            metrics: &metrics,
        };
        let mut out = VecCollector::default();
        op.open(&mut ctx)?;
        op.process_batch(0, batch, &mut ctx, &mut out)?;
        Ok(out.batches)
    }

    #[test]
    fn filter_keeps_only_true_rows() -> Result<()> {
        let batch = input()?;
        // a > 2: row 0 false, row 2 NULL -> both dropped
        let mut op =
            FilterOperator::try_new(binary(col(0), BinaryOp::Gt, lit(2i64)), batch.schema_ref())?;
        let out = run(&mut op, batch)?;
        assert_eq!(out.len(), 1);
        let a = out[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(a.values().to_vec(), vec![5, 10]);
        let b = out[0].column(1).as_string::<i32>();
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![Some("y"), None]);
        Ok(())
    }

    #[test]
    fn filter_emits_nothing_when_no_row_matches() -> Result<()> {
        let batch = input()?;
        let mut op = FilterOperator::new(binary(col(0), BinaryOp::Gt, lit(100i64)));
        assert!(run(&mut op, batch.clone())?.is_empty());
        let mut op = FilterOperator::new(lit(crate::expr::ScalarValue::Null));
        assert!(run(&mut op, batch)?.is_empty());
        Ok(())
    }

    #[test]
    fn filter_rejects_non_boolean_predicate() -> Result<()> {
        let batch = input()?;
        assert!(matches!(
            FilterOperator::try_new(col(0), batch.schema_ref()),
            Err(EngineError::Plan(_))
        ));
        let mut op = FilterOperator::new(col(1));
        assert!(matches!(run(&mut op, batch), Err(EngineError::Plan(_))));
        Ok(())
    }

    #[test]
    fn project_computes_declared_schema() -> Result<()> {
        let batch = input()?;
        let mut op = ProjectOperator::new(
            vec![
                (
                    binary(col(0), BinaryOp::Multiply, lit(2i32)),
                    "a2".to_string(),
                ),
                (
                    crate::expr::call(ScalarFunction::Upper, vec![col(1)]),
                    "b_up".to_string(),
                ),
                (lit(7i32), "seven".to_string()),
            ],
            batch.schema_ref(),
        )?;
        let schema = op.schema();
        assert_eq!(schema.field(0).name(), "a2");
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert!(schema.field(0).is_nullable());
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert_eq!(schema.field(2).data_type(), &DataType::Int32);
        assert!(!schema.field(2).is_nullable());
        let out = run(&mut op, batch)?;
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].schema(), schema);
        let a2 = out[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(
            a2.iter().collect::<Vec<_>>(),
            vec![Some(2), Some(10), None, Some(20)]
        );
        let up = out[0].column(1).as_string::<i32>();
        assert_eq!(
            up.iter().collect::<Vec<_>>(),
            vec![Some("X"), Some("Y"), Some("Z"), None]
        );
        let seven = out[0]
            .column(2)
            .as_primitive::<arrow::datatypes::Int32Type>();
        assert_eq!(seven.values().to_vec(), vec![7, 7, 7, 7]);
        Ok(())
    }

    #[test]
    fn project_reports_type_errors_when_built() -> Result<()> {
        let batch = input()?;
        let err = ProjectOperator::new(
            vec![(binary(col(1), BinaryOp::Plus, col(0)), "bad".to_string())],
            batch.schema_ref(),
        );
        match err {
            Err(EngineError::Plan(m)) => assert_eq!(m, "cannot apply '+' to Utf8 and Int64"),
            other => panic!("expected a plan error, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn project_propagates_execution_errors() -> Result<()> {
        let batch = input()?;
        let mut op = ProjectOperator::new(
            vec![(binary(col(0), BinaryOp::Divide, lit(0i64)), "q".to_string())],
            batch.schema_ref(),
        )?;
        match run(&mut op, batch) {
            Err(EngineError::Execution(m)) => assert_eq!(m, "division by zero"),
            other => panic!("expected division by zero, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn project_without_columns_keeps_row_count() -> Result<()> {
        let batch = input()?;
        let op = ProjectOperator::new(vec![], batch.schema_ref())?;
        assert_eq!(op.project(&batch)?.num_rows(), 4);
        Ok(())
    }
}
