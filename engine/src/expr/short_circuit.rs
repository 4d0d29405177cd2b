//! The nodes that evaluate later operands only on the rows that still need
//! them, so that `b <> 0 AND a / b > 1` and `CASE WHEN b = 0 THEN 0 ELSE
//! a / b END` never divide by zero; and the scatter/gather helpers that put
//! the partial results back in row order.

use std::sync::Arc;

use arrow::array::{
    new_empty_array, new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch,
};
use arrow::compute::kernels::{boolean, interleave::interleave};
use arrow::compute::{filter, filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::DataType;

use super::value::Value;
use super::{kernels, BinaryOp, Expr};
use crate::error::Result;
use crate::{internal_err, plan_err};

impl Expr {
    /// AND / OR: the right side runs only on rows the left side leaves open
    /// (not FALSE for AND, not TRUE for OR).
    pub(super) fn eval_logical(
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        batch: &RecordBatch,
    ) -> Result<Value> {
        let n = batch.num_rows();
        let l = left.eval(batch)?;
        if !matches!(l.data_type(), DataType::Boolean | DataType::Null) {
            plan_err!("cannot apply '{op}' to {}", l.data_type());
        }
        let l = kernels::cast_strict(&l.into_array(n)?, &DataType::Boolean)?;
        let lb = l.as_boolean();
        let decisive = op == BinaryOp::Or;
        let open: BooleanArray = (0..n)
            .map(|i| Some(!(lb.is_valid(i) && lb.value(i) == decisive)))
            .collect();
        let k = open.true_count();
        if k == 0 {
            return Ok(Value::Array(l));
        }
        let r = right.evaluate_where(batch, &open)?;
        if !matches!(r.data_type(), DataType::Boolean | DataType::Null) {
            plan_err!("cannot apply '{op}' to Boolean and {}", r.data_type());
        }
        let r = kernels::cast_strict(&r, &DataType::Boolean)?;
        let r = if k == n { r } else { scatter(&open, &r)? };
        Ok(Value::Array(kernels::kleene(op, &l, &r)?))
    }

    /// CASE: each WHEN runs on the rows no earlier WHEN matched, each THEN
    /// only on its matched rows; the pieces are interleaved back in order.
    pub(super) fn eval_case(
        &self,
        operand: Option<&Expr>,
        when_then: &[(Expr, Expr)],
        else_expr: Option<&Expr>,
        batch: &RecordBatch,
    ) -> Result<ArrayRef> {
        let types = Self::case_types(operand, when_then, else_expr, &batch.schema())?;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(new_empty_array(&types.result));
        }
        let mut rest_operand = match (operand, &types.compare) {
            (Some(o), Some(t)) => Some(kernels::cast_strict(&o.evaluate(batch)?, t)?),
            _ => None,
        };
        let mut rest_batch = batch.clone();
        let mut rest_rows: Vec<usize> = (0..n).collect();
        let mut pieces: Vec<ArrayRef> = Vec::new();
        let mut slots: Vec<(usize, usize)> = vec![(0, 0); n];
        for (when, then) in when_then {
            if rest_rows.is_empty() {
                break;
            }
            let cond = match (&rest_operand, &types.compare) {
                (Some(o), Some(t)) => {
                    let w = kernels::cast_value(when.eval(&rest_batch)?, t)?;
                    kernels::compare(BinaryOp::Eq, &Value::Array(Arc::clone(o)), &w)?
                        .into_array(rest_rows.len())?
                }
                _ => kernels::cast_strict(&when.evaluate(&rest_batch)?, &DataType::Boolean)?,
            };
            let hit = definitely_true(cond.as_boolean());
            if hit.true_count() == 0 {
                continue;
            }
            let vals =
                kernels::cast_strict(&then.evaluate_where(&rest_batch, &hit)?, &types.result)?;
            let piece = pieces.len();
            pieces.push(vals);
            let mut next = Vec::with_capacity(rest_rows.len() - hit.true_count());
            let mut j = 0;
            for (pos, &row) in rest_rows.iter().enumerate() {
                if hit.value(pos) {
                    slots[row] = (piece, j);
                    j += 1;
                } else {
                    next.push(row);
                }
            }
            rest_rows = next;
            if !rest_rows.is_empty() {
                let miss = boolean::not(&hit)?;
                rest_batch = filter_record_batch(&rest_batch, &miss)?;
                rest_operand = match rest_operand {
                    Some(o) => Some(filter(o.as_ref(), &miss)?),
                    None => None,
                };
            }
        }
        if !rest_rows.is_empty() {
            let vals = match else_expr {
                Some(e) => kernels::cast_strict(&e.evaluate(&rest_batch)?, &types.result)?,
                None => new_null_array(&types.result, rest_rows.len()),
            };
            let piece = pieces.len();
            pieces.push(vals);
            for (j, &row) in rest_rows.iter().enumerate() {
                slots[row] = (piece, j);
            }
        }
        gather(pieces, &slots)
    }

    /// COALESCE: each argument runs only on the rows still NULL.
    pub(super) fn eval_coalesce(&self, args: &[Expr], batch: &RecordBatch) -> Result<ArrayRef> {
        let result = self.data_type(&batch.schema())?;
        let n = batch.num_rows();
        let Some((first, later)) = args.split_first() else {
            plan_err!("COALESCE expects at least one argument");
        };
        let first = kernels::cast_strict(&first.evaluate(batch)?, &result)?;
        let mut pieces = vec![first];
        let mut slots: Vec<(usize, usize)> = (0..n).map(|i| (0, i)).collect();
        let mut rest_rows: Vec<usize> = (0..n)
            .filter(|&i| !kernels::is_valid_at(pieces[0].as_ref(), i))
            .collect();
        let mut rest_batch = if rest_rows.is_empty() || later.is_empty() {
            batch.clone()
        } else {
            filter_record_batch(batch, &boolean::is_null(pieces[0].as_ref())?)?
        };
        for arg in later {
            if rest_rows.is_empty() {
                break;
            }
            let vals = kernels::cast_strict(&arg.evaluate(&rest_batch)?, &result)?;
            let piece = pieces.len();
            let mut next = Vec::new();
            for (j, &row) in rest_rows.iter().enumerate() {
                slots[row] = (piece, j);
                if !kernels::is_valid_at(vals.as_ref(), j) {
                    next.push(row);
                }
            }
            if !next.is_empty() {
                rest_batch = filter_record_batch(&rest_batch, &boolean::is_null(vals.as_ref())?)?;
            }
            pieces.push(vals);
            rest_rows = next;
        }
        gather(pieces, &slots)
    }
}

/// TRUE rows of a boolean array, NULL counting as not TRUE.
fn definitely_true(b: &BooleanArray) -> BooleanArray {
    if b.null_count() > 0 {
        prep_null_mask_filter(b)
    } else {
        b.clone()
    }
}

/// Spreads `values` (one per TRUE row of `mask`) back to `mask.len()` rows,
/// NULL elsewhere.
fn scatter(mask: &BooleanArray, values: &ArrayRef) -> Result<ArrayRef> {
    let nulls = new_null_array(values.data_type(), 1);
    let mut slots = Vec::with_capacity(mask.len());
    let mut j = 0;
    for i in 0..mask.len() {
        if mask.value(i) {
            slots.push((0, j));
            j += 1;
        } else {
            slots.push((1, 0));
        }
    }
    Ok(interleave(&[values.as_ref(), nulls.as_ref()], &slots)?)
}

/// Builds the result row by row from `(piece, row in piece)` slots.
fn gather(pieces: Vec<ArrayRef>, slots: &[(usize, usize)]) -> Result<ArrayRef> {
    // One piece covering every row in order needs no copy.
    if pieces.len() == 1 && pieces[0].len() == slots.len() {
        if let Some(only) = pieces.into_iter().next() {
            return Ok(only);
        }
        internal_err!("gather lost its only piece");
    }
    let refs: Vec<&dyn Array> = pieces.iter().map(|p| p.as_ref()).collect();
    Ok(interleave(&refs, slots)?)
}
