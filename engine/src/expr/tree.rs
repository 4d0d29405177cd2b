//! The expression tree itself and the small constructors that build it.

use arrow::datatypes::DataType;

use super::{BinaryOp, ScalarFunction, ScalarValue};

/// A scalar expression over the columns of one input batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The column at this index of the input batch.
    Column(usize),
    /// A constant.
    Literal(ScalarValue),
    /// `left op right`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// Three-valued `NOT`.
    Not(Box<Expr>),
    /// Unary minus.
    Negative(Box<Expr>),
    /// `IS NULL` (never NULL itself).
    IsNull(Box<Expr>),
    /// `IS NOT NULL` (never NULL itself).
    IsNotNull(Box<Expr>),
    /// `CASE [operand] WHEN .. THEN .. [ELSE ..] END`.
    Case {
        /// Compared for equality with each WHEN value; absent for searched CASE.
        operand: Option<Box<Expr>>,
        /// WHEN/THEN pairs, first match wins.
        when_then: Vec<(Expr, Expr)>,
        /// Value when nothing matched (NULL if absent).
        else_expr: Option<Box<Expr>>,
    },
    /// `CAST(expr AS to)`: a value that does not convert is an error.
    Cast {
        /// The value.
        expr: Box<Expr>,
        /// Target type.
        to: DataType,
    },
    /// `TRY_CAST(expr AS to)`: a value that does not convert is NULL.
    TryCast {
        /// The value.
        expr: Box<Expr>,
        /// Target type.
        to: DataType,
    },
    /// `COALESCE(a, b, ...)`: the first non-NULL argument.
    Coalesce(Vec<Expr>),
    /// `expr [NOT] BETWEEN low AND high`, bounds inclusive.
    Between {
        /// The value.
        expr: Box<Expr>,
        /// Lower bound.
        low: Box<Expr>,
        /// Upper bound.
        high: Box<Expr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `expr [NOT] IN (list)`, NULL when nothing matched and the list holds NULL.
    InList {
        /// The value.
        expr: Box<Expr>,
        /// Candidates.
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `expr [NOT] LIKE / ILIKE pattern`.
    Like {
        /// The string.
        expr: Box<Expr>,
        /// The pattern, `%` and `_` wildcards, `\` escapes.
        pattern: Box<Expr>,
        /// `NOT LIKE`.
        negated: bool,
        /// `ILIKE`.
        case_insensitive: bool,
    },
    /// A scalar function call.
    Function {
        /// The function.
        func: ScalarFunction,
        /// Its arguments.
        args: Vec<Expr>,
    },
}

/// `Expr::Column(i)`.
pub fn col(i: usize) -> Expr {
    Expr::Column(i)
}

/// `Expr::Literal(v)`.
pub fn lit(v: impl Into<ScalarValue>) -> Expr {
    Expr::Literal(v.into())
}

/// A NULL literal.
pub fn null() -> Expr {
    Expr::Literal(ScalarValue::Null)
}

/// `left op right`.
pub fn binary(left: Expr, op: BinaryOp, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

/// `left AND right`.
pub fn and(left: Expr, right: Expr) -> Expr {
    binary(left, BinaryOp::And, right)
}

/// `left OR right`.
pub fn or(left: Expr, right: Expr) -> Expr {
    binary(left, BinaryOp::Or, right)
}

/// `NOT e`.
pub fn not(e: Expr) -> Expr {
    Expr::Not(Box::new(e))
}

/// `CAST(e AS to)`.
pub fn cast(e: Expr, to: DataType) -> Expr {
    Expr::Cast {
        expr: Box::new(e),
        to,
    }
}

/// `TRY_CAST(e AS to)`.
pub fn try_cast(e: Expr, to: DataType) -> Expr {
    Expr::TryCast {
        expr: Box::new(e),
        to,
    }
}

/// A function call.
pub fn call(func: ScalarFunction, args: Vec<Expr>) -> Expr {
    Expr::Function { func, args }
}
