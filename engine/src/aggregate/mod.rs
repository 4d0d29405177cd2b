//! Aggregate functions as vectorised "groups accumulators".
//!
//! An accumulator holds the state of one aggregate call for many groups at
//! once, column-wise (one `Vec` per state field, indexed by group), so that an
//! operator feeds it whole batches with a group index per row and no per-row
//! allocation or dynamic dispatch happens.
//!
//! Semantics follow Flink SQL, with these deliberate differences:
//! * `SUM` of integers returns `BIGINT` (Int64) and fails on overflow; `SUM`
//!   of floats returns `DOUBLE`.
//! * `AVG` returns `DOUBLE` for every numeric argument (Flink returns the
//!   argument type; we follow Spark and Arroyo, which keeps the fraction).
//! * Floating point `MIN`/`MAX` use Arrow's total order (IEEE 754
//!   `totalOrder`): `-0.0 < +0.0` and NaN is greater than every number, so
//!   `MAX` over values containing NaN returns NaN and `MIN` ignores it.

mod avg;
pub(crate) use avg::decimal_average;
mod bytes_slots;
mod codec;
mod count;
mod first_last;
mod group_state;
mod min_max;
mod numeric;
mod prim_slots;
mod row_slots;
mod slots;
mod sum;
mod value;
mod variance;

#[cfg(test)]
mod tests;

use std::any::Any;
use std::fmt::Debug;

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};

use crate::error::{EngineError, Result};
use crate::{internal_err, plan_err};

/// An aggregate function of Flink SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    /// `COUNT(x)` counts non-NULL values; with zero arguments it is `COUNT(*)`.
    Count,
    /// `COUNT(DISTINCT x)`: the number of distinct non-NULL values.
    CountDistinct,
    /// `SUM(x)`.
    Sum,
    /// `AVG(x)`, always `DOUBLE`.
    Avg,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// `FIRST_VALUE(x)`: the first non-NULL value by arrival order.
    FirstValue,
    /// `LAST_VALUE(x)`: the last non-NULL value by arrival order.
    LastValue,
    /// `STDDEV_SAMP(x)` (also `STDDEV`).
    StddevSamp,
    /// `STDDEV_POP(x)`.
    StddevPop,
    /// `VAR_SAMP(x)` (also `VARIANCE`).
    VarSamp,
    /// `VAR_POP(x)`.
    VarPop,
}

impl AggregateFunction {
    /// Looks up a Flink function name, case-insensitively; `COUNT DISTINCT` is
    /// not a name (the planner picks it from the DISTINCT flag).
    pub fn from_name(name: &str) -> Option<Self> {
        let f = match name.to_ascii_uppercase().as_str() {
            "COUNT" => Self::Count,
            "SUM" => Self::Sum,
            "AVG" => Self::Avg,
            "MIN" => Self::Min,
            "MAX" => Self::Max,
            "FIRST_VALUE" => Self::FirstValue,
            "LAST_VALUE" => Self::LastValue,
            "STDDEV" | "STDDEV_SAMP" => Self::StddevSamp,
            "STDDEV_POP" => Self::StddevPop,
            "VARIANCE" | "VAR_SAMP" => Self::VarSamp,
            "VAR_POP" => Self::VarPop,
            _ => return None,
        };
        Some(f)
    }

    /// The canonical SQL name (used in error messages and plans).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Count => "COUNT",
            Self::CountDistinct => "COUNT DISTINCT",
            Self::Sum => "SUM",
            Self::Avg => "AVG",
            Self::Min => "MIN",
            Self::Max => "MAX",
            Self::FirstValue => "FIRST_VALUE",
            Self::LastValue => "LAST_VALUE",
            Self::StddevSamp => "STDDEV_SAMP",
            Self::StddevPop => "STDDEV_POP",
            Self::VarSamp => "VAR_SAMP",
            Self::VarPop => "VAR_POP",
        }
    }

    /// The output type for the given argument types, or a plan error naming
    /// the argument the function does not accept.
    pub fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match self {
            Self::Count => Ok(DataType::Int64),
            Self::CountDistinct => {
                if args.is_empty() {
                    plan_err!("COUNT(DISTINCT ...) needs at least one argument");
                }
                let fields: Vec<SortField> =
                    args.iter().map(|t| SortField::new(t.clone())).collect();
                if !RowConverter::supports_fields(&fields) {
                    plan_err!("COUNT(DISTINCT ...) does not accept {}", type_list(args));
                }
                Ok(DataType::Int64)
            }
            Self::Sum => {
                let t = self.single_arg(args)?;
                if let DataType::Decimal128(_, s) = t {
                    Ok(avg::decimal_sum_type(*s))
                } else if is_integer(t) {
                    Ok(DataType::Int64)
                } else if is_float(t) {
                    Ok(DataType::Float64)
                } else {
                    plan_err!("SUM does not accept {t}; expected a numeric argument")
                }
            }
            // As in Flink: the average of integers is an integer of the
            // argument's type (the sum divided by the count, truncated).
            // AVG of DECIMAL(p, s) is DECIMAL(38, max(6, s)), as Flink.
            Self::Avg if is_integer(self.single_arg(args)?) => Ok(self.single_arg(args)?.clone()),
            Self::Avg if matches!(self.single_arg(args)?, DataType::Decimal128(..)) => {
                let scale = match self.single_arg(args)? {
                    DataType::Decimal128(_, s) => *s,
                    _ => 0,
                };
                Ok(avg::decimal_avg_type(scale))
            }
            Self::Avg | Self::StddevSamp | Self::StddevPop | Self::VarSamp | Self::VarPop => {
                let t = self.single_arg(args)?;
                if is_integer(t) || is_float(t) {
                    Ok(DataType::Float64)
                } else {
                    plan_err!(
                        "{} does not accept {t}; expected a numeric argument",
                        self.name()
                    )
                }
            }
            Self::Min | Self::Max | Self::FirstValue | Self::LastValue => {
                let t = self.single_arg(args)?;
                if !value::supports_type(t) {
                    let what = if matches!(self, Self::Min | Self::Max) {
                        "an orderable argument"
                    } else {
                        "an argument of a supported type"
                    };
                    plan_err!("{} does not accept {t}; expected {what}", self.name());
                }
                Ok(t.clone())
            }
        }
    }

    fn single_arg<'a>(&self, args: &'a [DataType]) -> Result<&'a DataType> {
        match args {
            [t] => Ok(t),
            _ => plan_err!(
                "{} takes exactly one argument, got {}",
                self.name(),
                args.len()
            ),
        }
    }
}

fn type_list(args: &[DataType]) -> String {
    args.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Integer types that SUM widens to Int64.
pub(crate) fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

pub(crate) fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float32 | DataType::Float64)
}

/// Arguments of one update call.
pub struct UpdateArgs<'a> {
    /// The evaluated argument columns (empty for `COUNT(*)`).
    pub values: &'a [ArrayRef],
    /// `groups[i]` is the group of row `i`; its length is the number of rows.
    pub groups: &'a [u32],
    /// The `FILTER (WHERE ...)` result: rows where it is false or NULL are skipped.
    pub filter: Option<&'a BooleanArray>,
    /// Every group index is below this; accumulators grow their storage to it.
    pub total_groups: usize,
    /// Arrival sequence number of row 0 (row `i` has `first_row_seq + i`).
    pub first_row_seq: u64,
}

impl UpdateArgs<'_> {
    /// Checks the shape of the call so that the loops can index freely: a
    /// mismatch here is a bug in the calling operator, never user data.
    fn validate(&self, num_args: usize) -> Result<()> {
        let rows = self.groups.len();
        if self.values.len() != num_args {
            internal_err!(
                "aggregate update expected {num_args} argument column(s), got {}",
                self.values.len()
            );
        }
        if let Some(v) = self.values.iter().find(|v| v.len() != rows) {
            internal_err!(
                "aggregate argument has {} rows but {rows} group indices",
                v.len()
            );
        }
        if let Some(f) = self.filter {
            if f.len() != rows {
                internal_err!("aggregate filter has {} rows, expected {rows}", f.len());
            }
        }
        // A vectorised max is far cheaper than a checked index per row.
        if let Some(&max) = self.groups.iter().max() {
            if max as usize >= self.total_groups {
                internal_err!(
                    "group index {max} is not below total_groups {}",
                    self.total_groups
                );
            }
        }
        Ok(())
    }

    /// The rows that feed the accumulator: those passing the filter whose
    /// arguments are all non-NULL. `None` means every row.
    fn selection(&self, skip_nulls: bool) -> Option<BooleanBuffer> {
        let mut mask: Option<BooleanBuffer> = None;
        if let Some(f) = self.filter {
            if f.true_count() != f.len() {
                let m = match f.nulls() {
                    Some(n) => f.values() & n.inner(),
                    None => f.values().clone(),
                };
                mask = Some(m);
            }
        }
        if skip_nulls {
            for v in self.values {
                if let Some(n) = v.logical_nulls() {
                    if n.null_count() > 0 {
                        mask = Some(and_mask(mask, &n));
                    }
                }
            }
        }
        mask
    }
}

fn and_mask(mask: Option<BooleanBuffer>, nulls: &NullBuffer) -> BooleanBuffer {
    match mask {
        Some(m) => &m & nulls.inner(),
        None => nulls.inner().clone(),
    }
}

/// Calls `f(row)` for every selected row, in increasing row order.
#[inline(always)]
fn for_each_row(rows: usize, selection: Option<&BooleanBuffer>, mut f: impl FnMut(usize)) {
    match selection {
        None => (0..rows).for_each(f),
        Some(mask) => {
            for i in mask.set_indices() {
                f(i)
            }
        }
    }
}

/// Per-group state of one aggregate call, stored column-wise.
pub trait GroupsAccumulator: Send + Debug {
    /// Feeds one batch of rows into their groups.
    fn update(&mut self, args: &UpdateArgs<'_>) -> Result<()>;
    /// Merges group `src` of `other` (same function and argument types) into
    /// group `dst` of self, growing self if needed.
    fn merge(&mut self, dst: u32, other: &dyn GroupsAccumulator, src: u32) -> Result<()>;
    /// Final values of `groups`, in that order, as one array of the return type.
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef>;
    /// Makes `group` empty again (as if it had seen no row).
    fn reset(&mut self, group: u32);
    /// Number of groups allocated.
    fn num_groups(&self) -> usize;
    /// Appends a self-describing byte encoding of `group`'s state to `out`.
    fn save(&self, group: u32, out: &mut Vec<u8>) -> Result<()>;
    /// Replaces `group`'s state with an encoding written by `save`; returns
    /// the number of bytes consumed.
    fn load(&mut self, group: u32, bytes: &[u8]) -> Result<usize>;
    /// For downcasting in `merge`.
    fn as_any(&self) -> &dyn Any;
    /// Approximate heap bytes used.
    fn size_bytes(&self) -> usize;
}

/// Downcasts the other side of a merge, which must be the same accumulator type.
fn downcast_other<T: Any>(other: &dyn GroupsAccumulator) -> Result<&T> {
    match other.as_any().downcast_ref::<T>() {
        Some(o) => Ok(o),
        None => Err(EngineError::Internal(format!(
            "cannot merge {other:?} into an accumulator of type {}",
            std::any::type_name::<T>()
        ))),
    }
}

/// Creates the accumulator of `func` over arguments of `arg_types`.
pub fn create_accumulator(
    func: AggregateFunction,
    arg_types: &[DataType],
) -> Result<Box<dyn GroupsAccumulator>> {
    // Checks the argument types once, so the constructors below can rely on them.
    func.return_type(arg_types)?;
    use AggregateFunction as F;
    match func {
        F::Count => Ok(Box::new(count::CountAcc::new(arg_types.len()))),
        F::CountDistinct => Ok(Box::new(count::CountDistinctAcc::new(arg_types)?)),
        F::Sum => sum::create_sum(&arg_types[0]),
        F::Avg => avg::create_avg(&arg_types[0]),
        F::StddevSamp | F::StddevPop | F::VarSamp | F::VarPop => {
            variance::create_variance(func, &arg_types[0])
        }
        F::Min | F::Max | F::FirstValue | F::LastValue => value::create(func, &arg_types[0]),
    }
}

/// Grows a per-group column to `n` entries.
#[inline]
fn grow<T: Clone>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() < n {
        v.resize(n, fill);
    }
}
