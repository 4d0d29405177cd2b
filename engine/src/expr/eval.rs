//! Evaluating an expression on a whole batch, node by node; the nodes that
//! skip rows (AND, OR, CASE, COALESCE) live in `short_circuit`.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::boolean;
use arrow::datatypes::DataType;

use super::value::Value;
use super::{coercion, functions, kernels, BinaryOp, Expr};
use crate::error::Result;
use crate::plan_err;

impl Expr {
    /// Evaluates on a whole batch, returning an array of `batch.num_rows()` rows.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        self.eval(batch)?.into_array(batch.num_rows())
    }

    /// Evaluates on the rows of `batch` where `mask` (no nulls) is true.
    pub(super) fn evaluate_where(
        &self,
        batch: &RecordBatch,
        mask: &BooleanArray,
    ) -> Result<ArrayRef> {
        if mask.true_count() == batch.num_rows() {
            self.evaluate(batch)
        } else {
            self.evaluate(&filter_record_batch(batch, mask)?)
        }
    }

    pub(super) fn eval(&self, batch: &RecordBatch) -> Result<Value> {
        let n = batch.num_rows();
        match self {
            Expr::Column(i) => match batch.columns().get(*i) {
                Some(c) => Ok(Value::Array(Arc::clone(c))),
                None => plan_err!(
                    "column index {i} out of range for a batch of {} columns",
                    batch.num_columns()
                ),
            },
            Expr::Literal(v) => Ok(Value::Scalar(v.to_array(1)?)),
            Expr::Binary {
                op: op @ (BinaryOp::And | BinaryOp::Or),
                left,
                right,
            } => Self::eval_logical(*op, left, right, batch),
            Expr::Binary { op, left, right } => Self::eval_binary(*op, left, right, batch),
            Expr::Not(e) => {
                let v = e.eval(batch)?;
                if !matches!(v.data_type(), DataType::Boolean | DataType::Null) {
                    plan_err!("NOT expects a boolean, got {}", v.data_type());
                }
                kernels::cast_value(v, &DataType::Boolean)?
                    .map(|a| Ok(Arc::new(boolean::not(a.as_boolean())?) as ArrayRef))
            }
            Expr::Negative(e) => {
                let v = e.eval(batch)?;
                let t = coercion::negative_type(v.data_type())?;
                kernels::negate(&kernels::cast_value(v, &t)?)
            }
            Expr::IsNull(e) => e
                .eval(batch)?
                .map(|a| Ok(Arc::new(boolean::is_null(a.as_ref())?) as ArrayRef)),
            Expr::IsNotNull(e) => e
                .eval(batch)?
                .map(|a| Ok(Arc::new(boolean::is_not_null(a.as_ref())?) as ArrayRef)),
            Expr::Case {
                operand,
                when_then,
                else_expr,
            } => Ok(Value::Array(self.eval_case(
                operand.as_deref(),
                when_then,
                else_expr.as_deref(),
                batch,
            )?)),
            Expr::Cast { expr, to } => kernels::cast_value(expr.eval(batch)?, to),
            Expr::TryCast { expr, to } => expr.eval(batch)?.map(|a| kernels::cast_safe(a, to)),
            Expr::Coalesce(args) => Ok(Value::Array(self.eval_coalesce(args, batch)?)),
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => self.eval_between(expr, low, high, *negated, batch),
            Expr::InList {
                expr,
                list,
                negated,
            } => self.eval_in_list(expr, list, *negated, batch),
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                let v = expr.eval(batch)?;
                let p = pattern.eval(batch)?;
                for t in [v.data_type(), p.data_type()] {
                    if !(coercion::is_string(t) || t == &DataType::Null) {
                        plan_err!("LIKE expects strings, got {t}");
                    }
                }
                let v = kernels::cast_value(v, &DataType::Utf8)?;
                let p = kernels::cast_value(p, &DataType::Utf8)?;
                kernels::like(&v, &p, *negated, *case_insensitive)
            }
            Expr::Function { func, args } => {
                let values = args
                    .iter()
                    .map(|a| a.eval(batch))
                    .collect::<Result<Vec<_>>>()?;
                let digits = functions::literal_round_digits(func, args);
                Ok(Value::Array(functions::evaluate(func, &values, n, digits)?))
            }
        }
    }

    /// Arithmetic, comparison and `||` after coercing both sides.
    fn eval_binary(op: BinaryOp, left: &Expr, right: &Expr, batch: &RecordBatch) -> Result<Value> {
        let n = batch.num_rows();
        let l = left.eval(batch)?;
        let r = right.eval(batch)?;
        let sig = coercion::binary_signature(op, l.data_type(), r.data_type())?;
        let l = kernels::cast_value(l, &sig.left)?;
        let r = kernels::cast_value(r, &sig.right)?;
        if op.is_comparison() {
            kernels::compare(op, &l, &r)
        } else if op == BinaryOp::StringConcat {
            let both_scalar = l.is_scalar() && r.is_scalar();
            let len = if both_scalar { 1 } else { n };
            let out = functions::concat(&[l.into_array(len)?, r.into_array(len)?], len)?;
            Ok(if both_scalar {
                Value::Scalar(out)
            } else {
                Value::Array(out)
            })
        } else {
            kernels::arithmetic(op, &sig, &l, &r)
        }
    }

    /// `BETWEEN` as two comparisons in the operands' common type.
    fn eval_between(
        &self,
        expr: &Expr,
        low: &Expr,
        high: &Expr,
        negated: bool,
        batch: &RecordBatch,
    ) -> Result<Value> {
        let n = batch.num_rows();
        let t = self.operand_type(&[expr, low, high], batch, "BETWEEN")?;
        let v = kernels::cast_value(expr.eval(batch)?, &t)?;
        let lo = kernels::cast_value(low.eval(batch)?, &t)?;
        let hi = kernels::cast_value(high.eval(batch)?, &t)?;
        let ge = kernels::compare(BinaryOp::GtEq, &v, &lo)?.into_array(n)?;
        let le = kernels::compare(BinaryOp::LtEq, &v, &hi)?.into_array(n)?;
        let both = kernels::kleene(BinaryOp::And, &ge, &le)?;
        Ok(Value::Array(if negated {
            Arc::new(boolean::not(both.as_boolean())?)
        } else {
            both
        }))
    }

    /// `IN (list)` as an OR of equalities in the operands' common type.
    fn eval_in_list(
        &self,
        expr: &Expr,
        list: &[Expr],
        negated: bool,
        batch: &RecordBatch,
    ) -> Result<Value> {
        let n = batch.num_rows();
        let mut all: Vec<&Expr> = vec![expr];
        all.extend(list.iter());
        let t = self.operand_type(&all, batch, "IN")?;
        let v = kernels::cast_value(expr.eval(batch)?, &t)?;
        let mut acc: Option<ArrayRef> = None;
        for item in list {
            let w = kernels::cast_value(item.eval(batch)?, &t)?;
            let eq = kernels::compare(BinaryOp::Eq, &v, &w)?.into_array(n)?;
            acc = Some(match acc {
                None => eq,
                Some(prev) => kernels::kleene(BinaryOp::Or, &prev, &eq)?,
            });
        }
        let Some(found) = acc else {
            plan_err!("IN expects a non-empty list");
        };
        Ok(Value::Array(if negated {
            Arc::new(boolean::not(found.as_boolean())?)
        } else {
            found
        }))
    }

    /// The common type of several operands, typed against the batch schema.
    fn operand_type(&self, exprs: &[&Expr], batch: &RecordBatch, what: &str) -> Result<DataType> {
        let schema = batch.schema();
        let types = exprs
            .iter()
            .map(|e| e.data_type(&schema))
            .collect::<Result<Vec<_>>>()?;
        coercion::common_type_of(&types, what)
    }
}
