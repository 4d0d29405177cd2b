//! Data-quality expectations (`CONSTRAINT name EXPECT (predicate) ON
//! VIOLATION ...`): each row is checked against every expectation of a
//! table or view, passes and violations are counted, and a violation
//! keeps the row (no action given), drops it (`DROP ROW`, and
//! `QUARANTINE`, whose rows the planner sends to the quarantine table by
//! a branch of its own) or fails the job (`FAIL`), naming the expectation
//! and the row. A row passes when the predicate is TRUE; FALSE and NULL
//! are violations (a malformed record with NULL fields does not pass).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{and_kleene, filter_record_batch};
use arrow::datatypes::DataType;

use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::operator::{Collector, Operator, OperatorContext};
use crate::ops::filter_project::definite;

/// What a violation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// Keep the row; only count it.
    Warn,
    /// Drop the row.
    Drop,
    /// Fail the job.
    Fail,
    /// Drop the row here; the planner's quarantine branch writes it to
    /// the quarantine table.
    Quarantine,
}

impl Violation {
    /// How SQL writes it after `ON VIOLATION` (empty for `Warn`).
    pub fn sql(self) -> &'static str {
        match self {
            Violation::Warn => "",
            Violation::Drop => "DROP ROW",
            Violation::Fail => "FAIL UPDATE",
            Violation::Quarantine => "QUARANTINE",
        }
    }
}

/// One expectation, bound to the operator's input.
#[derive(Debug, Clone)]
pub struct ExpectCheck {
    /// Its name.
    pub name: String,
    /// The predicate over the input's columns.
    pub predicate: Expr,
    /// What a violation does.
    pub mode: Violation,
}

/// Rows that passed and violated each expectation, shared with whoever
/// reports them (`system.expectations`).
#[derive(Debug, Default)]
pub struct ExpectCounts {
    /// Rows that passed.
    pub passed: AtomicU64,
    /// Rows that violated it.
    pub failed: AtomicU64,
}

/// The expectations of one table or view, as an operator.
#[derive(Debug, Clone)]
pub struct ExpectSpec {
    /// The table or view they belong to (for messages).
    pub object: String,
    /// The expectations.
    pub checks: Vec<ExpectCheck>,
    /// One counter pair per check; `None`: this copy does not count (the
    /// same rows are counted by another).
    pub counts: Option<Vec<Arc<ExpectCounts>>>,
    /// The input's column names, for the row a failure shows.
    pub columns: Vec<String>,
}

/// Checks rows against a table's or view's expectations.
#[derive(Debug)]
pub struct ExpectOperator {
    spec: ExpectSpec,
}

impl ExpectOperator {
    /// The operator of `spec`.
    pub fn new(spec: ExpectSpec) -> Self {
        Self { spec }
    }
}

impl Operator for ExpectOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext<'_>,
        out: &mut dyn Collector,
    ) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let mut keep: Option<BooleanArray> = None;
        // Over an updating stream only additions count as rows; their
        // retractions carry the same values and are kept or dropped with
        // them, uncounted.
        let additions: Option<BooleanArray> = match crate::types::is_updating(batch.schema_ref()) {
            true => Some(
                crate::types::row_kinds(&batch)?
                    .iter()
                    .map(|k| Some(k.is_addition()))
                    .collect(),
            ),
            false => None,
        };
        let counted = additions.as_ref().map_or(rows, |a| a.true_count());
        for (i, check) in self.spec.checks.iter().enumerate() {
            let value = check.predicate.evaluate(&batch)?;
            let pass = match value.data_type() {
                DataType::Boolean => definite(value.as_boolean().clone()),
                DataType::Null => BooleanArray::from(vec![false; rows]),
                other => {
                    return Err(EngineError::Plan(format!(
                        "expectation '{}' of '{}' must be boolean, got {other}",
                        check.name, self.spec.object
                    )))
                }
            };
            let passed = pass.true_count();
            if let Some(counts) = &self.spec.counts {
                let passed_counted = match &additions {
                    None => passed,
                    Some(a) => arrow::compute::and(&pass, a)?.true_count(),
                };
                counts[i]
                    .passed
                    .fetch_add(passed_counted as u64, Ordering::Relaxed);
                counts[i]
                    .failed
                    .fetch_add((counted - passed_counted) as u64, Ordering::Relaxed);
            }
            if passed == rows {
                continue;
            }
            match check.mode {
                Violation::Warn => {}
                Violation::Fail => {
                    let row = (0..rows).find(|&r| !pass.value(r)).unwrap_or(0);
                    return Err(EngineError::Execution(format!(
                        "expectation '{}' of '{}' failed (ON VIOLATION FAIL UPDATE) for the row {}",
                        check.name,
                        self.spec.object,
                        describe_row(&batch, row, &self.spec.columns)
                    )));
                }
                Violation::Drop | Violation::Quarantine => {
                    keep = Some(match keep {
                        None => pass,
                        Some(k) => definite(and_kleene(&k, &pass)?),
                    });
                }
            }
        }
        match keep {
            None => out.collect(batch),
            Some(k) if k.true_count() == 0 => Ok(()),
            Some(k) => out.collect(filter_record_batch(&batch, &k)?),
        }
    }
}

/// `{col: value, ...}` of row `row`, as the failure message shows it.
fn describe_row(batch: &RecordBatch, row: usize, names: &[String]) -> String {
    let options = arrow::util::display::FormatOptions::default().with_null("NULL");
    let mut parts = Vec::new();
    for (i, column) in batch.columns().iter().enumerate() {
        let name = names
            .get(i)
            .cloned()
            .unwrap_or_else(|| batch.schema().field(i).name().clone());
        if name.starts_with('$') || name == crate::types::ROW_KIND_COLUMN {
            continue;
        }
        let value = arrow::util::display::ArrayFormatter::try_new(column.as_ref(), &options)
            .map(|f| f.value(row).to_string())
            .unwrap_or_else(|_| "?".into());
        parts.push(format!("{name}: {value}"));
    }
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{binary, col, lit, BinaryOp};
    use crate::testing::OperatorHarness;
    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("t", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(Float64Array::from(vec![
                    Some(20.0),
                    Some(999.0),
                    None,
                    Some(-10.0),
                ])),
            ],
        )
        .expect("batch")
    }

    fn check(name: &str, mode: Violation) -> ExpectCheck {
        ExpectCheck {
            name: name.into(),
            // t < 100
            predicate: binary(col(1), BinaryOp::Lt, lit(100.0)),
            mode,
        }
    }

    fn run(checks: Vec<ExpectCheck>) -> (Result<Vec<RecordBatch>>, Vec<Arc<ExpectCounts>>) {
        let counts: Vec<Arc<ExpectCounts>> = checks
            .iter()
            .map(|_| Arc::new(ExpectCounts::default()))
            .collect();
        let spec = ExpectSpec {
            object: "readings".into(),
            checks,
            counts: Some(counts.clone()),
            columns: vec!["id".into(), "t".into()],
        };
        let mut h = OperatorHarness::new(Box::new(ExpectOperator::new(spec))).expect("harness");
        let out = h.batch(batch()).map(|()| h.take_output());
        (out, counts)
    }

    #[test]
    fn violations_are_counted_and_dropped_kept_or_fatal() {
        // NULL is a violation: 2 pass (20, -10), 2 fail (999, NULL).
        let (out, counts) = run(vec![check("valid_t", Violation::Drop)]);
        let out = out.expect("runs");
        let ids: Vec<i64> = out
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(ids, vec![1, 4]);
        assert_eq!(counts[0].passed.load(Ordering::Relaxed), 2);
        assert_eq!(counts[0].failed.load(Ordering::Relaxed), 2);

        let (out, counts) = run(vec![check("valid_t", Violation::Warn)]);
        assert_eq!(
            out.expect("runs")
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>(),
            4
        );
        assert_eq!(counts[0].failed.load(Ordering::Relaxed), 2);

        let (out, _) = run(vec![check("valid_t", Violation::Fail)]);
        let e = out.expect_err("fails").to_string();
        assert!(
            e.contains("expectation 'valid_t' of 'readings' failed")
                && e.contains("{id: 2, t: 999.0}"),
            "{e}"
        );
    }

    #[test]
    fn over_an_updating_stream_only_additions_are_counted() {
        // +I 20 (passes), +I 999 (fails), -U 20, +U 999 (fails), -D 999.
        let schema = crate::types::with_row_kind(&Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("t", DataType::Float64, true),
        ]));
        let kinds = [
            crate::types::RowKind::Insert,
            crate::types::RowKind::Insert,
            crate::types::RowKind::UpdateBefore,
            crate::types::RowKind::UpdateAfter,
            crate::types::RowKind::Delete,
        ];
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 1, 1, 2])),
                Arc::new(Float64Array::from(vec![20.0, 999.0, 20.0, 999.0, 999.0])),
                crate::types::row_kind_array(&kinds),
            ],
        )
        .expect("batch");
        let counts = vec![Arc::new(ExpectCounts::default())];
        let spec = ExpectSpec {
            object: "totals".into(),
            checks: vec![check("valid_t", Violation::Drop)],
            counts: Some(counts.clone()),
            columns: vec!["id".into(), "t".into()],
        };
        let mut h = OperatorHarness::new(Box::new(ExpectOperator::new(spec))).expect("harness");
        h.batch(batch).expect("runs");
        assert_eq!(counts[0].passed.load(Ordering::Relaxed), 1);
        assert_eq!(counts[0].failed.load(Ordering::Relaxed), 2);
        // Dropped with their retractions: +I 20 and -U 20 stay.
        let kept: Vec<crate::types::RowKind> = h
            .take_output()
            .iter()
            .flat_map(|b| crate::types::row_kinds(b).expect("kinds"))
            .collect();
        assert_eq!(
            kept,
            [
                crate::types::RowKind::Insert,
                crate::types::RowKind::UpdateBefore
            ]
        );
    }
}
