//! Tests of expression typing and evaluation.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int32Type, Int64Type, Schema, TimestampMillisecondType,
};

use super::*;
use crate::error::{EngineError, Result};

/// A batch with columns
/// `i` Int64 [1, 5, NULL, i64::MAX], `s` Utf8 ["abc", "a.c", NULL, "Hello"],
/// `b` Boolean [true, false, NULL, true], `n` Int32 [10, 0, 3, NULL],
/// `f` Float64 [1.5, 0.0, -2.5, NULL].
fn batch() -> Result<RecordBatch> {
    let i: ArrayRef = Arc::new(Int64Array::from(vec![
        Some(1),
        Some(5),
        None,
        Some(i64::MAX),
    ]));
    let s: ArrayRef = Arc::new(StringArray::from(vec![
        Some("abc"),
        Some("a.c"),
        None,
        Some("Hello"),
    ]));
    let b: ArrayRef = Arc::new(BooleanArray::from(vec![
        Some(true),
        Some(false),
        None,
        Some(true),
    ]));
    let n: ArrayRef = Arc::new(Int32Array::from(vec![Some(10), Some(0), Some(3), None]));
    let f: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(1.5),
        Some(0.0),
        Some(-2.5),
        None,
    ]));
    Ok(RecordBatch::try_from_iter(vec![
        ("i", i),
        ("s", s),
        ("b", b),
        ("n", n),
        ("f", f),
    ])?)
}

/// A batch of one nullable column.
fn one(name: &str, a: ArrayRef) -> Result<RecordBatch> {
    Ok(RecordBatch::try_from_iter(vec![(name, a)])?)
}

fn bools(a: &ArrayRef) -> Vec<Option<bool>> {
    a.as_boolean().iter().collect()
}

fn i64s(a: &ArrayRef) -> Vec<Option<i64>> {
    a.as_primitive::<Int64Type>().iter().collect()
}

fn strs(a: &ArrayRef) -> Vec<Option<String>> {
    a.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

fn ts(a: &ArrayRef) -> Vec<Option<i64>> {
    a.as_primitive::<TimestampMillisecondType>()
        .iter()
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn exec_message(r: Result<ArrayRef>) -> String {
    match r {
        Err(EngineError::Execution(m)) => m,
        other => panic!("expected an execution error, got {other:?}"),
    }
}

fn plan_message(r: Result<DataType>) -> String {
    match r {
        Err(EngineError::Plan(m)) => m,
        other => panic!("expected a plan error, got {other:?}"),
    }
}

fn f(func: ScalarFunction, args: Vec<Expr>) -> Expr {
    call(func, args)
}

/// Every pair of {TRUE, FALSE, NULL}.
fn truth_batch() -> Result<RecordBatch> {
    let vals = [Some(true), Some(false), None];
    let mut l = Vec::new();
    let mut r = Vec::new();
    for a in vals {
        for b in vals {
            l.push(a);
            r.push(b);
        }
    }
    let l: ArrayRef = Arc::new(BooleanArray::from(l));
    let r: ArrayRef = Arc::new(BooleanArray::from(r));
    Ok(RecordBatch::try_from_iter(vec![("l", l), ("r", r)])?)
}

#[test]
fn three_valued_and_or_not() -> Result<()> {
    let b = truth_batch()?;
    let (t, fa, n) = (Some(true), Some(false), None);
    // rows: TT TF TN FT FF FN NT NF NN
    assert_eq!(
        bools(&and(col(0), col(1)).evaluate(&b)?),
        vec![t, fa, n, fa, fa, fa, n, fa, n]
    );
    assert_eq!(
        bools(&or(col(0), col(1)).evaluate(&b)?),
        vec![t, t, t, t, fa, n, t, n, n]
    );
    assert_eq!(
        bools(&not(col(0)).evaluate(&b)?),
        vec![fa, fa, fa, t, t, t, n, n, n]
    );
    // NULL literals behave as unknown booleans
    assert_eq!(bools(&and(lit(false), null()).evaluate(&b)?), vec![fa; 9]);
    assert_eq!(bools(&or(lit(true), null()).evaluate(&b)?), vec![t; 9]);
    assert_eq!(bools(&or(lit(false), null()).evaluate(&b)?), vec![n; 9]);
    Ok(())
}

#[test]
fn and_skips_right_side_where_left_is_false() -> Result<()> {
    let b = batch()?;
    // n <> 0 AND i / n >= 0: row 1 has n = 0 and must not divide
    let e = and(
        binary(col(3), BinaryOp::NotEq, lit(0)),
        binary(
            binary(col(0), BinaryOp::Divide, col(3)),
            BinaryOp::GtEq,
            lit(0i64),
        ),
    );
    assert_eq!(
        bools(&e.evaluate(&b)?),
        vec![Some(true), Some(false), None, None]
    );
    // without the guard the division fails
    let unguarded = binary(col(0), BinaryOp::Divide, col(3));
    assert_eq!(exec_message(unguarded.evaluate(&b)), "division by zero");
    // OR skips rows where the left side is TRUE
    let e = or(
        binary(col(3), BinaryOp::Eq, lit(0)),
        binary(
            binary(col(0), BinaryOp::Divide, col(3)),
            BinaryOp::GtEq,
            lit(0i64),
        ),
    );
    assert_eq!(
        bools(&e.evaluate(&b)?),
        vec![Some(true), Some(true), None, None]
    );
    Ok(())
}

#[test]
fn arithmetic_widens_and_propagates_null() -> Result<()> {
    let b = batch()?;
    let e = binary(col(3), BinaryOp::Plus, col(0)); // Int32 + Int64
    assert_eq!(e.data_type(b.schema_ref())?, DataType::Int64);
    let out = binary(col(3), BinaryOp::Plus, lit(1i64)).evaluate(&b)?;
    assert_eq!(i64s(&out), vec![Some(11), Some(1), Some(4), None]);
    let e = binary(col(3), BinaryOp::Multiply, col(4)); // Int32 * Float64
    assert_eq!(e.data_type(b.schema_ref())?, DataType::Float64);
    let out = e.evaluate(&b)?;
    let got: Vec<Option<f64>> = out.as_primitive::<Float64Type>().iter().collect();
    assert_eq!(got, vec![Some(15.0), Some(0.0), Some(-7.5), None]);
    let out = binary(lit(7), BinaryOp::Divide, lit(2)).evaluate(&b)?;
    assert_eq!(
        out.as_primitive::<Int32Type>().values().to_vec(),
        vec![3, 3, 3, 3]
    );
    let out = binary(lit(-7i64), BinaryOp::Modulo, col(0)).evaluate(&b)?;
    assert_eq!(i64s(&out), vec![Some(0), Some(-2), None, Some(-7)]);
    let out = binary(null(), BinaryOp::Plus, col(3)).evaluate(&b)?;
    assert_eq!(out.data_type(), &DataType::Int32);
    assert_eq!(out.null_count(), 4);
    Ok(())
}

#[test]
fn integer_overflow_is_an_error() -> Result<()> {
    let b = batch()?;
    let m = exec_message(binary(col(0), BinaryOp::Plus, lit(1i64)).evaluate(&b));
    assert!(m.starts_with("numeric overflow"), "{m}");
    let m = exec_message(binary(lit(i32::MAX), BinaryOp::Multiply, lit(2)).evaluate(&b));
    assert!(m.starts_with("numeric overflow"), "{m}");
    let m = exec_message(Expr::Negative(Box::new(lit(i64::MIN))).evaluate(&b));
    assert!(m.starts_with("numeric overflow"), "{m}");
    let m = exec_message(binary(lit(i64::MIN), BinaryOp::Divide, lit(-1i64)).evaluate(&b));
    assert!(m.starts_with("numeric overflow"), "{m}");
    let m = exec_message(f(ScalarFunction::Abs, vec![lit(i32::MIN)]).evaluate(&b));
    assert!(m.starts_with("numeric overflow"), "{m}");
    Ok(())
}

#[test]
fn division_by_zero_is_an_error_for_ints_and_floats() -> Result<()> {
    let b = batch()?;
    for e in [
        binary(col(0), BinaryOp::Divide, lit(0i64)),
        binary(col(0), BinaryOp::Modulo, lit(0i64)),
        binary(col(4), BinaryOp::Divide, lit(0.0)),
        binary(lit(1.0), BinaryOp::Divide, col(4)),
        binary(col(0), BinaryOp::Modulo, col(4)),
    ] {
        assert_eq!(exec_message(e.evaluate(&b)), "division by zero", "{e:?}");
    }
    // NULL / 0 is NULL, not an error
    let out = binary(null(), BinaryOp::Divide, lit(0)).evaluate(&b)?;
    assert_eq!(out.null_count(), 4);
    let nulls: ArrayRef = Arc::new(Float64Array::from(vec![None, Some(4.0)]));
    let zeros: ArrayRef = Arc::new(Float64Array::from(vec![Some(0.0), Some(2.0)]));
    let b2 = RecordBatch::try_from_iter(vec![("x", nulls), ("y", zeros)])?;
    let out = binary(col(0), BinaryOp::Divide, col(1)).evaluate(&b2)?;
    let got: Vec<Option<f64>> = out.as_primitive::<Float64Type>().iter().collect();
    assert_eq!(got, vec![None, Some(2.0)]);
    Ok(())
}

#[test]
fn comparisons_across_types() -> Result<()> {
    let b = batch()?;
    let out = binary(col(3), BinaryOp::Lt, col(4)).evaluate(&b)?; // Int32 < Float64
    assert_eq!(
        bools(&out),
        vec![Some(false), Some(false), Some(false), None]
    );
    let out = binary(col(1), BinaryOp::GtEq, lit("abc")).evaluate(&b)?;
    assert_eq!(
        bools(&out),
        vec![Some(true), Some(false), None, Some(false)]
    );
    let out = binary(lit(1), BinaryOp::Eq, lit(1i64)).evaluate(&b)?;
    assert_eq!(bools(&out), vec![Some(true); 4]);
    Ok(())
}

#[test]
fn type_errors_from_data_type() -> Result<()> {
    let b = batch()?;
    let schema = b.schema();
    let m = plan_message(binary(col(1), BinaryOp::Plus, col(0)).data_type(&schema));
    assert_eq!(m, "cannot apply '+' to Utf8 and Int64");
    let m = plan_message(binary(col(1), BinaryOp::Eq, lit(1i64)).data_type(&schema));
    assert_eq!(m, "cannot apply '=' to Utf8 and Int64");
    let m = plan_message(and(col(0), col(2)).data_type(&schema));
    assert_eq!(m, "cannot apply 'AND' to Int64 and Boolean");
    let m = plan_message(not(col(0)).data_type(&schema));
    assert_eq!(m, "NOT expects a boolean, got Int64");
    let m = plan_message(col(9).data_type(&schema));
    assert_eq!(m, "column index 9 out of range for an input of 5 columns");
    let m = plan_message(f(ScalarFunction::Upper, vec![col(0)]).data_type(&schema));
    assert_eq!(m, "argument 1 of UPPER must be a string, got Int64");
    let m = plan_message(f(ScalarFunction::Substring, vec![col(1)]).data_type(&schema));
    assert_eq!(m, "SUBSTRING expects 2 to 3 argument(s), got 1");
    let case = Expr::Case {
        operand: None,
        when_then: vec![(col(2), col(1))],
        else_expr: Some(Box::new(col(0))),
    };
    let m = plan_message(case.data_type(&schema));
    assert_eq!(m, "CASE mixes incompatible types Utf8 and Int64");
    let m = plan_message(
        f(
            ScalarFunction::DateTrunc(TimeUnitField::DayOfWeek),
            vec![lit(ScalarValue::TimestampMillis(0))],
        )
        .data_type(&schema),
    );
    assert_eq!(m, "DATE_TRUNC does not support the unit DayOfWeek");
    let m = plan_message(
        cast(
            col(2),
            DataType::Duration(arrow::datatypes::TimeUnit::Second),
        )
        .data_type(&schema),
    );
    assert!(m.starts_with("cannot cast Boolean to Duration"), "{m}");
    let m = plan_message(
        binary(
            lit(ScalarValue::TimestampMillis(0)),
            BinaryOp::Plus,
            lit(1i64),
        )
        .data_type(&schema),
    );
    assert_eq!(m, "cannot apply '+' to Timestamp(ms) and Int64");
    Ok(())
}

#[test]
fn cast_errors_but_try_cast_gives_null() -> Result<()> {
    let b = one(
        "s",
        Arc::new(StringArray::from(vec![Some("12"), Some("abc"), None])),
    )?;
    let m = exec_message(cast(col(0), DataType::Int64).evaluate(&b));
    assert_eq!(m, "cannot cast 'abc' to Int64");
    let out = try_cast(col(0), DataType::Int64).evaluate(&b)?;
    assert_eq!(i64s(&out), vec![Some(12), None, None]);
    // a value out of range of the target type also fails
    let m = exec_message(cast(lit(i64::MAX), DataType::Int32).evaluate(&b));
    assert_eq!(m, format!("cannot cast '{}' to Int32", i64::MAX));
    let out = cast(lit("2024-02-29 12:00:00"), TS_MS).evaluate(&b)?;
    assert_eq!(ts(&out)[0], Some(1_709_208_000_000));
    assert!(Expr::TryCast {
        expr: Box::new(col(0)),
        to: DataType::Int64
    }
    .nullable(b.schema_ref())?);
    Ok(())
}

#[test]
fn case_with_null_conditions_and_first_match() -> Result<()> {
    let b = batch()?;
    // CASE WHEN b THEN 'yes' WHEN i > 2 THEN 'big' END; row 2 has NULL
    // conditions only, so no WHEN matches and there is no ELSE.
    let e = Expr::Case {
        operand: None,
        when_then: vec![
            (col(2), lit("yes")),
            (binary(col(0), BinaryOp::Gt, lit(2i64)), lit("big")),
        ],
        else_expr: None,
    };
    assert_eq!(
        strs(&e.evaluate(&b)?),
        vec![s("yes"), s("big"), None, s("yes")]
    );
    // first matching WHEN wins even if a later one matches too
    let e = Expr::Case {
        operand: None,
        when_then: vec![
            (binary(col(0), BinaryOp::Gt, lit(0i64)), lit(1)),
            (binary(col(0), BinaryOp::Gt, lit(2i64)), lit(2)),
        ],
        else_expr: Some(Box::new(lit(0i64))),
    };
    assert_eq!(e.data_type(b.schema_ref())?, DataType::Int64);
    assert_eq!(
        i64s(&e.evaluate(&b)?),
        vec![Some(1), Some(1), Some(0), Some(1)]
    );
    // simple CASE: operand NULL matches nothing
    let e = Expr::Case {
        operand: Some(Box::new(col(3))),
        when_then: vec![
            (lit(10), lit("ten")),
            (lit(0), lit("zero")),
            (null(), lit("null")),
        ],
        else_expr: Some(Box::new(lit("other"))),
    };
    assert_eq!(
        strs(&e.evaluate(&b)?),
        vec![s("ten"), s("zero"), s("other"), s("other")]
    );
    // the division only runs on rows where n <> 0
    let e = Expr::Case {
        operand: None,
        when_then: vec![(binary(col(3), BinaryOp::Eq, lit(0)), lit(-1i64))],
        else_expr: Some(Box::new(binary(col(0), BinaryOp::Divide, col(3)))),
    };
    assert_eq!(i64s(&e.evaluate(&b)?), vec![Some(0), Some(-1), None, None]);
    Ok(())
}

#[test]
fn coalesce_takes_first_non_null_lazily() -> Result<()> {
    let b = batch()?;
    let e = Expr::Coalesce(vec![
        col(3),
        binary(lit(100), BinaryOp::Divide, col(3)),
        lit(-1),
    ]);
    // rows 0..2 are non-null, so the failing division only sees row 3 (n NULL)
    assert_eq!(
        e.evaluate(&b)?
            .as_primitive::<Int32Type>()
            .iter()
            .collect::<Vec<_>>(),
        vec![Some(10), Some(0), Some(3), Some(-1)]
    );
    let e = Expr::Coalesce(vec![col(0), col(3)]);
    assert_eq!(e.data_type(b.schema_ref())?, DataType::Int64);
    assert_eq!(
        i64s(&e.evaluate(&b)?),
        vec![Some(1), Some(5), Some(3), Some(i64::MAX)]
    );
    assert!(!Expr::Coalesce(vec![col(0), lit(0i64)]).nullable(b.schema_ref())?);
    Ok(())
}

#[test]
fn in_list_and_between_null_semantics() -> Result<()> {
    let b = batch()?;
    let in_list = |negated, list| Expr::InList {
        expr: Box::new(col(0)),
        list,
        negated,
    };
    // i IN (1, NULL): 1 -> TRUE, 5 -> NULL (no match, list has NULL), NULL -> NULL
    let out = in_list(false, vec![lit(1), null()]).evaluate(&b)?;
    assert_eq!(bools(&out), vec![Some(true), None, None, None]);
    let out = in_list(true, vec![lit(1), null()]).evaluate(&b)?;
    assert_eq!(bools(&out), vec![Some(false), None, None, None]);
    let out = in_list(false, vec![lit(5i64), lit(7)]).evaluate(&b)?;
    assert_eq!(
        bools(&out),
        vec![Some(false), Some(true), None, Some(false)]
    );
    let out = in_list(true, vec![lit(5i64), lit(7)]).evaluate(&b)?;
    assert_eq!(bools(&out), vec![Some(true), Some(false), None, Some(true)]);
    let bad = in_list(false, vec![lit("x")]);
    assert!(matches!(
        bad.data_type(b.schema_ref()),
        Err(EngineError::Plan(_))
    ));
    // BETWEEN is inclusive on both ends
    let between = |negated| Expr::Between {
        expr: Box::new(col(0)),
        low: Box::new(lit(1)),
        high: Box::new(lit(5)),
        negated,
    };
    assert_eq!(
        bools(&between(false).evaluate(&b)?),
        vec![Some(true), Some(true), None, Some(false)]
    );
    assert_eq!(
        bools(&between(true).evaluate(&b)?),
        vec![Some(false), Some(false), None, Some(true)]
    );
    Ok(())
}

#[test]
fn like_wildcards_and_meta_characters() -> Result<()> {
    let v: ArrayRef = Arc::new(StringArray::from(vec![
        Some("abc"),
        Some("a.c"),
        Some("aXc"),
        Some("ABC"),
        Some("50%"),
        None,
    ]));
    let b = one("s", v)?;
    let like = |p: &str, negated, ci| Expr::Like {
        expr: Box::new(col(0)),
        pattern: Box::new(lit(p)),
        negated,
        case_insensitive: ci,
    };
    let (t, fa) = (Some(true), Some(false));
    assert_eq!(
        bools(&like("a%", false, false).evaluate(&b)?),
        vec![t, t, t, fa, fa, None]
    );
    assert_eq!(
        bools(&like("a_c", false, false).evaluate(&b)?),
        vec![t, t, t, fa, fa, None]
    );
    // '.' is literal, not "any character"
    assert_eq!(
        bools(&like("a.c", false, false).evaluate(&b)?),
        vec![fa, t, fa, fa, fa, None]
    );
    assert_eq!(
        bools(&like("%\\%", false, false).evaluate(&b)?),
        vec![fa, fa, fa, fa, t, None]
    );
    assert_eq!(
        bools(&like("a%", true, false).evaluate(&b)?),
        vec![fa, fa, fa, t, t, None]
    );
    assert_eq!(
        bools(&like("abc", false, true).evaluate(&b)?),
        vec![t, fa, fa, t, fa, None]
    );
    let bad = Expr::Like {
        expr: Box::new(lit(1)),
        pattern: Box::new(lit("1")),
        negated: false,
        case_insensitive: false,
    };
    assert!(matches!(
        bad.data_type(b.schema_ref()),
        Err(EngineError::Plan(_))
    ));
    Ok(())
}

#[test]
fn substring_edge_cases() -> Result<()> {
    let b = one(
        "s",
        Arc::new(StringArray::from(vec![Some("hello"), Some("héllo"), None])),
    )?;
    let sub = |start: i64, len: Option<i64>| {
        let mut args = vec![col(0), lit(start)];
        args.extend(len.map(lit));
        f(ScalarFunction::Substring, args)
    };
    assert_eq!(
        strs(&sub(2, Some(3)).evaluate(&b)?),
        vec![s("ell"), s("éll"), None]
    );
    assert_eq!(
        strs(&sub(0, Some(2)).evaluate(&b)?),
        vec![s("he"), s("hé"), None]
    );
    assert_eq!(
        strs(&sub(-3, None).evaluate(&b)?),
        vec![s("llo"), s("llo"), None]
    );
    assert_eq!(
        strs(&sub(-7, Some(4)).evaluate(&b)?),
        vec![s("he"), s("hé"), None]
    );
    assert_eq!(
        strs(&sub(10, Some(2)).evaluate(&b)?),
        vec![s(""), s(""), None]
    );
    assert_eq!(
        strs(&sub(3, Some(100)).evaluate(&b)?),
        vec![s("llo"), s("llo"), None]
    );
    assert_eq!(
        strs(&sub(1, Some(-1)).evaluate(&b)?),
        vec![None, None, None]
    );
    Ok(())
}

#[test]
fn string_functions() -> Result<()> {
    let b = one(
        "s",
        Arc::new(StringArray::from(vec![Some("  MiXed Ünï  "), None])),
    )?;
    let up = f(ScalarFunction::Upper, vec![col(0)]).evaluate(&b)?;
    assert_eq!(strs(&up), vec![s("  MIXED ÜNÏ  "), None]);
    let lo = f(ScalarFunction::Lower, vec![col(0)]).evaluate(&b)?;
    assert_eq!(strs(&lo), vec![s("  mixed ünï  "), None]);
    assert_eq!(
        strs(&f(ScalarFunction::Trim, vec![col(0)]).evaluate(&b)?),
        vec![s("MiXed Ünï"), None]
    );
    assert_eq!(
        strs(&f(ScalarFunction::Ltrim, vec![col(0)]).evaluate(&b)?),
        vec![s("MiXed Ünï  "), None]
    );
    assert_eq!(
        strs(&f(ScalarFunction::Rtrim, vec![col(0)]).evaluate(&b)?),
        vec![s("  MiXed Ünï"), None]
    );
    assert_eq!(
        strs(&f(ScalarFunction::Trim, vec![lit("xxaxx"), lit("x")]).evaluate(&b)?),
        vec![s("a"), s("a")]
    );
    let len = f(ScalarFunction::CharLength, vec![col(0)]).evaluate(&b)?;
    assert_eq!(
        len.as_primitive::<Int32Type>().iter().collect::<Vec<_>>(),
        vec![Some(13), None]
    );
    // CONCAT and || are NULL when any argument is NULL
    let c = f(ScalarFunction::Concat, vec![lit("a"), lit(1), lit("b")]).evaluate(&b)?;
    assert_eq!(strs(&c), vec![s("a1b"), s("a1b")]);
    let c = f(ScalarFunction::Concat, vec![lit("a"), col(0)]).evaluate(&b)?;
    assert_eq!(strs(&c)[1], None);
    let c = binary(lit("x"), BinaryOp::StringConcat, col(0)).evaluate(&b)?;
    assert_eq!(strs(&c), vec![s("x  MiXed Ünï  "), None]);
    Ok(())
}

#[test]
fn regexp_replace_literal_and_bad_patterns() -> Result<()> {
    let b = one(
        "s",
        Arc::new(StringArray::from(vec![Some("a1b22c333"), None])),
    )?;
    let e = f(
        ScalarFunction::RegexpReplace,
        vec![col(0), lit("[0-9]+"), lit("#")],
    );
    assert_eq!(strs(&e.evaluate(&b)?), vec![s("a#b#c#"), None]);
    let e = f(
        ScalarFunction::RegexpReplace,
        vec![
            lit("2024-05-06"),
            lit("(\\d+)-(\\d+)-(\\d+)"),
            lit("$3/$2/$1"),
        ],
    );
    assert_eq!(strs(&e.evaluate(&b)?)[0], s("06/05/2024"));
    // a bad literal pattern is caught when planning, a bad column value when running
    let bad = f(
        ScalarFunction::RegexpReplace,
        vec![col(0), lit("(unclosed"), lit("")],
    );
    assert!(matches!(
        bad.data_type(b.schema_ref()),
        Err(EngineError::Plan(_))
    ));
    let bad_col = f(
        ScalarFunction::RegexpReplace,
        vec![lit("x"), col(0), lit("")],
    );
    let b2 = one("p", Arc::new(StringArray::from(vec![Some("x"), Some("(")])))?;
    let m = exec_message(bad_col.evaluate(&b2));
    assert!(m.starts_with("invalid regular expression '('"), "{m}");
    Ok(())
}

#[test]
fn regexp_extract_groups_and_misses() -> Result<()> {
    let b = one(
        "u",
        Arc::new(StringArray::from(vec![
            Some("a=1&channel_id=xyz&b=2"),
            Some("channel_id=first"),
            Some("no match here"),
            None,
        ])),
    )?;
    let pattern = "(&|^)channel_id=([^&]*)";
    let e = f(
        ScalarFunction::RegexpExtract,
        vec![col(0), lit(pattern), lit(2i64)],
    );
    assert_eq!(
        strs(&e.evaluate(&b)?),
        vec![s("xyz"), s("first"), None, None]
    );
    // without a group: the whole match; the empty alternative of group 1
    let whole = f(ScalarFunction::RegexpExtract, vec![col(0), lit(pattern)]);
    assert_eq!(
        strs(&whole.evaluate(&b)?)[..2],
        [s("&channel_id=xyz"), s("channel_id=first")]
    );
    let g1 = f(
        ScalarFunction::RegexpExtract,
        vec![col(0), lit(pattern), lit(1i64)],
    );
    assert_eq!(strs(&g1.evaluate(&b)?)[..2], [s("&"), s("")]);
    // a group the pattern does not have, and a negative one
    for g in [3i64, -1] {
        let e = f(
            ScalarFunction::RegexpExtract,
            vec![col(0), lit(pattern), lit(g)],
        );
        assert_eq!(strs(&e.evaluate(&b)?), vec![None, None, None, None]);
    }
    let bad = f(ScalarFunction::RegexpExtract, vec![col(0), lit("[")]);
    assert!(matches!(
        bad.data_type(b.schema_ref()),
        Err(EngineError::Plan(_))
    ));
    Ok(())
}

#[test]
fn split_index_keeps_empty_pieces() -> Result<()> {
    let b = one(
        "u",
        Arc::new(StringArray::from(vec![
            Some("https://www.nexmark.com/abc/def/item.htm"),
            None,
        ])),
    )?;
    let piece = |n: i64, sep: &str| -> Result<Vec<Option<String>>> {
        Ok(strs(
            &f(ScalarFunction::SplitIndex, vec![col(0), lit(sep), lit(n)]).evaluate(&b)?,
        ))
    };
    assert_eq!(piece(0, "/")?, vec![s("https:"), None]);
    assert_eq!(piece(1, "/")?, vec![s(""), None]);
    assert_eq!(piece(3, "/")?, vec![s("abc"), None]);
    assert_eq!(piece(5, "/")?, vec![s("item.htm"), None]);
    assert_eq!(piece(6, "/")?, vec![None, None]);
    assert_eq!(piece(-1, "/")?, vec![None, None]);
    assert_eq!(piece(1, "nexmark.")?, vec![s("com/abc/def/item.htm"), None]);
    assert_eq!(piece(0, "")?, vec![None, None]);
    Ok(())
}

#[test]
fn date_format_with_java_patterns() -> Result<()> {
    let b = ts_batch()?;
    let fmt = |p: &str| -> Result<Vec<Option<String>>> {
        Ok(strs(
            &f(ScalarFunction::DateFormat, vec![col(0), lit(p)]).evaluate(&b)?,
        ))
    };
    assert_eq!(
        fmt("yyyy-MM-dd HH:mm:ss.SSS")?,
        vec![
            s("1969-12-31 23:59:59.999"),
            s("2024-02-29 23:59:59.999"),
            s("2024-03-01 00:00:00.000"),
            None
        ]
    );
    assert_eq!(
        fmt("yyyy-MM-dd")?,
        vec![s("1969-12-31"), s("2024-02-29"), s("2024-03-01"), None]
    );
    assert_eq!(fmt("HH:mm")?[2], s("00:00"));
    assert_eq!(fmt("d/M/yy 'at' h a")?[2], s("1/3/24 at 12 AM"));
    assert_eq!(fmt("yyyy''MM '100%'")?[1], s("2024'02 100%"));
    assert_eq!(fmt("EEE, MMM d")?[1], s("Thu, Feb 29"));
    for bad in ["yyyy-qq", "'open"] {
        let e = f(ScalarFunction::DateFormat, vec![col(0), lit(bad)]);
        assert!(
            matches!(e.data_type(b.schema_ref()), Err(EngineError::Plan(_))),
            "{bad}"
        );
    }
    Ok(())
}

/// 1969-12-31 23:59:59.999 UTC, one millisecond before the epoch (a Wednesday).
const BEFORE_EPOCH: i64 = -1;
/// 2024-02-29 23:59:59.999 UTC, the last millisecond of a leap February.
const END_OF_FEB: i64 = 1_709_251_199_999;
/// 2024-03-01 00:00:00.000 UTC.
const MARCH_1: i64 = 1_709_251_200_000;
const DAY: i64 = 86_400_000;

fn ts_batch() -> Result<RecordBatch> {
    let a = TimestampMillisecondArray::from(vec![
        Some(BEFORE_EPOCH),
        Some(END_OF_FEB),
        Some(MARCH_1),
        None,
    ]);
    one("t", Arc::new(a))
}

#[test]
fn extract_before_epoch_and_at_month_boundary() -> Result<()> {
    let b = ts_batch()?;
    let ex = |field| -> Result<Vec<Option<i64>>> {
        Ok(i64s(
            &f(ScalarFunction::Extract(field), vec![col(0)]).evaluate(&b)?,
        ))
    };
    assert_eq!(
        ex(TimeUnitField::Year)?,
        vec![Some(1969), Some(2024), Some(2024), None]
    );
    assert_eq!(
        ex(TimeUnitField::Month)?,
        vec![Some(12), Some(2), Some(3), None]
    );
    assert_eq!(
        ex(TimeUnitField::Day)?,
        vec![Some(31), Some(29), Some(1), None]
    );
    assert_eq!(
        ex(TimeUnitField::Hour)?,
        vec![Some(23), Some(23), Some(0), None]
    );
    assert_eq!(
        ex(TimeUnitField::Second)?,
        vec![Some(59), Some(59), Some(0), None]
    );
    assert_eq!(
        ex(TimeUnitField::Millisecond)?,
        vec![Some(59_999), Some(59_999), Some(0), None]
    );
    assert_eq!(
        ex(TimeUnitField::Quarter)?,
        vec![Some(4), Some(1), Some(1), None]
    );
    assert_eq!(
        ex(TimeUnitField::DayOfWeek)?,
        vec![Some(4), Some(5), Some(6), None]
    );
    assert_eq!(
        ex(TimeUnitField::DayOfYear)?,
        vec![Some(365), Some(60), Some(61), None]
    );
    assert_eq!(
        ex(TimeUnitField::Epoch)?,
        vec![Some(-1), Some(1_709_251_199), Some(1_709_251_200), None]
    );
    assert_eq!(
        ex(TimeUnitField::Week)?,
        vec![Some(1), Some(9), Some(9), None]
    );
    Ok(())
}

#[test]
fn date_trunc_before_epoch_and_at_month_boundary() -> Result<()> {
    let b = ts_batch()?;
    let tr = |field| -> Result<Vec<Option<i64>>> {
        let e = f(ScalarFunction::DateTrunc(field), vec![col(0)]);
        assert_eq!(e.data_type(b.schema_ref())?, TS_MS);
        Ok(ts(&e.evaluate(&b)?))
    };
    assert_eq!(
        tr(TimeUnitField::Second)?,
        vec![Some(-1_000), Some(END_OF_FEB - 999), Some(MARCH_1), None]
    );
    assert_eq!(
        tr(TimeUnitField::Day)?,
        vec![Some(-DAY), Some(MARCH_1 - DAY), Some(MARCH_1), None]
    );
    // 1969-12-29 and 2024-02-26 are Mondays
    assert_eq!(
        tr(TimeUnitField::Week)?,
        vec![
            Some(-3 * DAY),
            Some(MARCH_1 - 4 * DAY),
            Some(MARCH_1 - 4 * DAY),
            None
        ]
    );
    // 1969-12-01, 2024-02-01, 2024-03-01
    assert_eq!(
        tr(TimeUnitField::Month)?,
        vec![
            Some(-31 * DAY),
            Some(MARCH_1 - 29 * DAY),
            Some(MARCH_1),
            None
        ]
    );
    // 1969-10-01, 2024-01-01
    assert_eq!(
        tr(TimeUnitField::Quarter)?,
        vec![
            Some(-92 * DAY),
            Some(1_704_067_200_000),
            Some(1_704_067_200_000),
            None
        ]
    );
    assert_eq!(
        tr(TimeUnitField::Year)?,
        vec![
            Some(-365 * DAY),
            Some(1_704_067_200_000),
            Some(1_704_067_200_000),
            None
        ]
    );
    Ok(())
}

#[test]
fn timestamp_interval_arithmetic() -> Result<()> {
    let b = ts_batch()?;
    let plus_ms = binary(col(0), BinaryOp::Plus, lit(ScalarValue::IntervalMillis(1)));
    assert_eq!(plus_ms.data_type(b.schema_ref())?, TS_MS);
    assert_eq!(
        ts(&plus_ms.evaluate(&b)?),
        vec![Some(0), Some(MARCH_1), Some(MARCH_1 + 1), None]
    );
    let interval_first = binary(
        lit(ScalarValue::IntervalMillis(DAY)),
        BinaryOp::Plus,
        col(0),
    );
    assert_eq!(ts(&interval_first.evaluate(&b)?)[0], Some(DAY - 1));
    // 2024-01-31 + 1 month clamps to 2024-02-29
    let jan_31 = 1_706_659_200_000;
    let e = binary(
        lit(ScalarValue::TimestampMillis(jan_31)),
        BinaryOp::Plus,
        lit(ScalarValue::IntervalMonths(1)),
    );
    assert_eq!(ts(&e.evaluate(&b)?)[0], Some(MARCH_1 - DAY));
    let e = binary(
        col(0),
        BinaryOp::Minus,
        lit(ScalarValue::IntervalMonths(12)),
    );
    assert_eq!(ts(&e.evaluate(&b)?)[2], Some(1_677_628_800_000)); // 2023-03-01
                                                                  // timestamp - timestamp is an interval in milliseconds
    let diff = binary(
        col(0),
        BinaryOp::Minus,
        lit(ScalarValue::TimestampMillis(0)),
    );
    assert_eq!(diff.data_type(b.schema_ref())?, INTERVAL_MS);
    let out = diff.evaluate(&b)?;
    assert_eq!(
        ScalarValue::try_from_array(out.as_ref(), 2)?,
        ScalarValue::IntervalMillis(MARCH_1)
    );
    // intervals scale by integers and compare
    let scaled = binary(
        lit(ScalarValue::IntervalMillis(1_000)),
        BinaryOp::Multiply,
        lit(3),
    );
    assert_eq!(
        ScalarValue::try_from_array(scaled.evaluate(&b)?.as_ref(), 0)?,
        ScalarValue::IntervalMillis(3_000)
    );
    let cmp = binary(diff, BinaryOp::Gt, lit(ScalarValue::IntervalMillis(0)));
    assert_eq!(
        bools(&cmp.evaluate(&b)?),
        vec![Some(false), Some(true), Some(true), None]
    );
    Ok(())
}

#[test]
fn math_functions() -> Result<()> {
    let b = batch()?;
    let round = |x: Expr, d: Option<i32>| {
        let mut args = vec![x];
        args.extend(d.map(lit));
        f(ScalarFunction::Round, args)
    };
    let get = |e: Expr| -> Result<Vec<Option<f64>>> {
        Ok(e.evaluate(&b)?
            .as_primitive::<Float64Type>()
            .iter()
            .collect())
    };
    assert_eq!(
        get(round(col(4), None))?,
        vec![Some(2.0), Some(0.0), Some(-3.0), None]
    );
    assert_eq!(get(round(lit(2.345), Some(2)))?[0], Some(2.35));
    assert_eq!(
        get(f(ScalarFunction::Floor, vec![col(4)]))?,
        vec![Some(1.0), Some(0.0), Some(-3.0), None]
    );
    assert_eq!(
        get(f(ScalarFunction::Ceil, vec![col(4)]))?,
        vec![Some(2.0), Some(0.0), Some(-2.0), None]
    );
    assert_eq!(
        get(f(ScalarFunction::Abs, vec![col(4)]))?,
        vec![Some(1.5), Some(0.0), Some(2.5), None]
    );
    let r = round(lit(1_250i64), Some(-2)).evaluate(&b)?;
    assert_eq!(i64s(&r)[0], Some(1_300));
    let a = f(ScalarFunction::Abs, vec![lit(-7)]).evaluate(&b)?;
    assert_eq!(a.as_primitive::<Int32Type>().value(0), 7);
    Ok(())
}

#[test]
fn literals_broadcast_and_empty_batches() -> Result<()> {
    let b = batch()?;
    let out = binary(lit(2i64), BinaryOp::Multiply, lit(21i64)).evaluate(&b)?;
    assert_eq!(i64s(&out), vec![Some(42); 4]);
    let out = null().evaluate(&b)?;
    assert_eq!((out.len(), out.data_type()), (4, &DataType::Null));
    let empty = b.slice(0, 0);
    let e = Expr::Case {
        operand: None,
        when_then: vec![(col(2), lit(1))],
        else_expr: None,
    };
    assert_eq!(e.evaluate(&empty)?.len(), 0);
    assert_eq!(
        binary(col(0), BinaryOp::Plus, lit(1i64))
            .evaluate(&empty)?
            .len(),
        0
    );
    assert_eq!(ScalarValue::Utf8("x".into()).to_array(3)?.len(), 3);
    Ok(())
}

#[test]
fn nullability() -> Result<()> {
    let schema = Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Int64, true),
    ]);
    assert!(!binary(col(0), BinaryOp::Plus, lit(1i64)).nullable(&schema)?);
    assert!(binary(col(0), BinaryOp::Plus, col(1)).nullable(&schema)?);
    assert!(!Expr::IsNull(Box::new(col(1))).nullable(&schema)?);
    let case = Expr::Case {
        operand: None,
        when_then: vec![(lit(true), col(0))],
        else_expr: None,
    };
    assert!(case.nullable(&schema)?);
    assert!(null().nullable(&schema)?);
    Ok(())
}

/// ROUND of a DECIMAL gets the same type when planned and when evaluated,
/// whatever form its digit count takes: an integer literal decides the
/// scale; an expression, NULL or a column keeps the argument's.
#[test]
fn round_of_a_decimal_is_evaluated_as_planned() -> Result<()> {
    let b = batch()?;
    let schema = b.schema();
    let x = || Expr::Literal(ScalarValue::Decimal128(12_355, 5, 3));
    let cases = [
        (vec![x(), lit(2)], DataType::Decimal128(5, 2)),
        (vec![x()], DataType::Decimal128(3, 0)),
        (
            vec![x(), binary(lit(1), BinaryOp::Plus, lit(1))],
            DataType::Decimal128(6, 3),
        ),
        (
            vec![x(), Expr::Literal(ScalarValue::Null)],
            DataType::Decimal128(6, 3),
        ),
        (vec![x(), col(3)], DataType::Decimal128(6, 3)),
    ];
    for (args, expected) in cases {
        let e = f(ScalarFunction::Round, args);
        let planned = e.data_type(&schema)?;
        let got = e.evaluate(&b)?;
        assert_eq!(planned, expected, "{e:?}");
        assert_eq!(got.data_type(), &planned, "{e:?}");
    }
    Ok(())
}
