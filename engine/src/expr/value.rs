//! The operand form evaluation passes between kernels: a full column, or a
//! single value standing for every row.

use arrow::array::{new_null_array, ArrayRef, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::DataType;

use crate::error::Result;
use crate::internal_err;

/// An evaluated operand: a full column, or one value standing for every row
/// (kept as a one-row array so kernels can broadcast it without copying).
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// One value per row.
    Array(ArrayRef),
    /// One value for all rows.
    Scalar(ArrayRef),
}

impl Value {
    pub(super) fn is_scalar(&self) -> bool {
        matches!(self, Value::Scalar(_))
    }

    pub(super) fn array(&self) -> &ArrayRef {
        match self {
            Value::Array(a) | Value::Scalar(a) => a,
        }
    }

    pub(super) fn data_type(&self) -> &DataType {
        self.array().data_type()
    }

    pub(super) fn len(&self) -> usize {
        self.array().len()
    }

    /// Expands to `n` rows.
    pub(super) fn into_array(self, n: usize) -> Result<ArrayRef> {
        match self {
            Value::Array(a) if a.len() == n => Ok(a),
            Value::Array(a) => {
                internal_err!("expression produced {} rows for a batch of {n}", a.len())
            }
            Value::Scalar(a) if a.len() == n => Ok(a),
            Value::Scalar(a) if a.data_type() == &DataType::Null => {
                Ok(new_null_array(&DataType::Null, n))
            }
            Value::Scalar(a) => {
                let Ok(zeros) = u32::try_from(n).map(|_| UInt32Array::from(vec![0u32; n])) else {
                    internal_err!("batch of {n} rows is too large");
                };
                Ok(take(a.as_ref(), &zeros, None)?)
            }
        }
    }

    pub(super) fn map(self, f: impl FnOnce(&ArrayRef) -> Result<ArrayRef>) -> Result<Value> {
        Ok(match self {
            Value::Array(a) => Value::Array(f(&a)?),
            Value::Scalar(a) => Value::Scalar(f(&a)?),
        })
    }
}
