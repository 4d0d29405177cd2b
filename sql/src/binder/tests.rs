//! Tests of binding: values are checked by evaluating bound expressions
//! on a small batch, errors by their message and position.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use runnel_engine::expr::{BinaryOp, ScalarValue, INTERVAL_MONTHS, INTERVAL_MS, TS_MS};
use runnel_engine::time::parse_timestamp_millis;
use sqlparser::ast;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::literals::{days_from_civil, parse_date_days};
use super::*;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// 2026-01-01 00:00:00 UTC.
const NEW_YEAR_2026: i64 = 1_767_225_600_000;
const HOUR: i64 = 3_600_000;
/// 2026-01-01 10:15:30.250 UTC.
const ROW0_TS: i64 = NEW_YEAR_2026 + 10 * HOUR + 15 * 60_000 + 30_250;
/// 2026-01-01 23:59:59.999 UTC.
const ROW1_TS: i64 = NEW_YEAR_2026 + 24 * HOUR - 1;

fn parse(sql: &str) -> std::result::Result<ast::Expr, sqlparser::parser::ParserError> {
    Parser::new(&GenericDialect {})
        .try_with_sql(sql)?
        .parse_expr()
}

fn column(name: &str, data_type: DataType) -> ScopeColumn {
    ScopeColumn {
        qualifier: Some("readings".to_string()),
        name: name.to_string(),
        data_type,
        nullable: true,
    }
}

fn scope() -> Scope {
    Scope::new(vec![
        column("ts", TS_MS),
        column("device_id", DataType::Utf8),
        column("temperature", DataType::Float64),
        column("reading", DataType::Int32),
        column("status", DataType::Utf8),
    ])
}

fn batch() -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(ROW0_TS),
            Some(ROW1_TS),
            None,
        ])),
        Arc::new(StringArray::from(vec![
            Some("dev-1"),
            None,
            Some("sensor-22"),
        ])),
        Arc::new(Float64Array::from(vec![Some(212.0), Some(32.0), None])),
        Arc::new(Int32Array::from(vec![Some(5), Some(17), None])),
        Arc::new(StringArray::from(vec![
            Some("OK"),
            Some("error: overheat"),
            None,
        ])),
    ];
    RecordBatch::try_new(Arc::new(scope().schema()), columns)
}

fn bind_sql(sql: &str) -> std::result::Result<Bound, Box<dyn std::error::Error>> {
    Ok(bind_expr(&parse(sql)?, &scope())?)
}

/// Binds and evaluates `sql` on the test batch, one value per row.
fn eval(sql: &str) -> std::result::Result<Vec<ScalarValue>, Box<dyn std::error::Error>> {
    let bound = bind_sql(sql)?;
    let out = bound.expr.evaluate(&batch()?)?;
    assert_eq!(out.data_type(), &bound.data_type, "type of {sql}");
    let values = (0..out.len())
        .map(|i| ScalarValue::try_from_array(out.as_ref(), i))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(values)
}

fn bind_err(sql: &str) -> std::result::Result<(String, Position), Box<dyn std::error::Error>> {
    match bind_expr(&parse(sql)?, &scope()) {
        Ok(b) => Err(format!("expected an error for {sql}, got {:?}", b.expr).into()),
        Err(SqlError::Plan { message, position }) => Ok((message, position)),
        Err(other) => Err(format!("expected a plan error for {sql}, got {other}").into()),
    }
}

fn s(v: &str) -> ScalarValue {
    ScalarValue::Utf8(v.to_string())
}

fn b(v: bool) -> ScalarValue {
    ScalarValue::Boolean(v)
}

const NULL: ScalarValue = ScalarValue::Null;

#[test]
fn bind_expr_arithmetic_on_columns() -> TestResult {
    assert_eq!(
        eval("(temperature - 32) * 5 / 9")?,
        vec![ScalarValue::Float64(100.0), ScalarValue::Float64(0.0), NULL]
    );
    let i = ScalarValue::Int32;
    assert_eq!(eval("reading % 4")?, vec![i(1), i(1), NULL]);
    assert_eq!(eval("-reading")?, vec![i(-5), i(-17), NULL]);
    assert_eq!(eval("+reading * 2")?, vec![i(10), i(34), NULL]);
    assert_eq!(
        eval("reading + 10000000000")?,
        vec![
            ScalarValue::Int64(10_000_000_005),
            ScalarValue::Int64(10_000_000_017),
            NULL
        ]
    );
    let bound = bind_sql("reading + 1")?;
    assert_eq!((bound.data_type, bound.nullable), (DataType::Int32, true));
    Ok(())
}

#[test]
fn bind_expr_literals() -> TestResult {
    let lit =
        |sql: &str| -> std::result::Result<(ScalarValue, DataType), Box<dyn std::error::Error>> {
            let bound = bind_sql(sql)?;
            match bound.expr {
                Expr::Literal(v) => Ok((v, bound.data_type)),
                other => Err(format!("{sql} bound to {other:?}").into()),
            }
        };
    assert_eq!(
        lit("2147483647")?,
        (ScalarValue::Int32(i32::MAX), DataType::Int32)
    );
    assert_eq!(
        lit("2147483648")?,
        (ScalarValue::Int64(2_147_483_648), DataType::Int64)
    );
    assert_eq!(
        lit("-2147483648")?,
        (ScalarValue::Int32(i32::MIN), DataType::Int32)
    );
    // A number with a point is an exact DECIMAL, as in Flink.
    assert_eq!(
        lit("1.5")?,
        (
            ScalarValue::Decimal128(15, 2, 1),
            DataType::Decimal128(2, 1)
        )
    );
    assert_eq!(
        lit("0.908")?,
        (
            ScalarValue::Decimal128(908, 3, 3),
            DataType::Decimal128(3, 3)
        )
    );
    assert_eq!(
        lit("12345678901234567890")?,
        (
            ScalarValue::Decimal128(12_345_678_901_234_567_890, 20, 0),
            DataType::Decimal128(20, 0)
        )
    );
    assert_eq!(
        lit("1e3")?,
        (ScalarValue::Float64(1000.0), DataType::Float64)
    );
    assert_eq!(lit("'abc'")?, (s("abc"), DataType::Utf8));
    assert_eq!(lit("TRUE")?, (b(true), DataType::Boolean));
    assert_eq!(lit("NULL")?, (NULL, DataType::Null));
    assert_eq!(
        lit("DATE '2026-01-02'")?,
        (ScalarValue::Date32(20_455), DataType::Date32)
    );
    assert_eq!(
        lit("TIMESTAMP '2026-01-01 10:15:30.250'")?,
        (ScalarValue::TimestampMillis(ROW0_TS), TS_MS)
    );
    assert_eq!(
        lit("TIMESTAMP '2024-02-29T00:00:00'")?.0,
        ScalarValue::TimestampMillis(1_709_164_800_000)
    );
    assert_eq!(
        lit("TIMESTAMP '1969-12-31 23:59:59.999'")?.0,
        ScalarValue::TimestampMillis(-1)
    );
    assert_eq!(
        lit("INTERVAL '10' MINUTES")?,
        (ScalarValue::IntervalMillis(600_000), INTERVAL_MS)
    );
    assert_eq!(
        lit("INTERVAL '2' YEAR")?,
        (ScalarValue::IntervalMonths(24), INTERVAL_MONTHS)
    );
    assert_eq!(
        lit("-INTERVAL '1' SECOND")?.0,
        ScalarValue::IntervalMillis(-1_000)
    );
    let (m, p) = bind_err("TIMESTAMP '2026-02-30 00:00:00'")?;
    assert!(m.contains("invalid TIMESTAMP literal"), "{m}");
    assert_eq!(p, Position::new(1, 11));
    Ok(())
}

#[test]
fn bind_expr_case_forms_and_null_branches() -> TestResult {
    assert_eq!(
        eval("CASE WHEN reading > 10 THEN 'high' WHEN reading > 0 THEN 'low' ELSE 'none' END")?,
        vec![s("low"), s("high"), s("none")]
    );
    let i = ScalarValue::Int32;
    assert_eq!(
        eval("CASE status WHEN 'OK' THEN 1 WHEN 'WARN' THEN 2 ELSE 0 END")?,
        vec![i(1), i(0), i(0)]
    );
    let bound = bind_sql("CASE WHEN reading > 10 THEN NULL ELSE reading END")?;
    assert_eq!(bound.data_type, DataType::Int32);
    assert_eq!(
        eval("CASE WHEN reading > 10 THEN NULL ELSE reading END")?,
        vec![i(5), NULL, NULL]
    );
    assert_eq!(
        eval("CASE WHEN reading IS NULL THEN NULL ELSE 'x' END")?,
        vec![s("x"), s("x"), NULL]
    );
    assert_eq!(
        eval("CASE WHEN reading = 5 THEN 'five' END")?,
        vec![s("five"), NULL, NULL]
    );
    Ok(())
}

#[test]
fn bind_expr_in_between_and_boolean_predicates() -> TestResult {
    assert_eq!(eval("reading IN (5, NULL)")?, vec![b(true), NULL, NULL]);
    assert_eq!(eval("reading NOT IN (1, 2)")?, vec![b(true), b(true), NULL]);
    assert_eq!(
        eval("status IN ('OK', 'WARN')")?,
        vec![b(true), b(false), NULL]
    );
    assert_eq!(
        eval("reading BETWEEN 1 AND 10")?,
        vec![b(true), b(false), NULL]
    );
    assert_eq!(
        eval("reading NOT BETWEEN 1 AND 10")?,
        vec![b(false), b(true), NULL]
    );
    assert_eq!(eval("reading IS NULL")?, vec![b(false), b(false), b(true)]);
    assert_eq!(
        eval("device_id IS NOT NULL")?,
        vec![b(true), b(false), b(true)]
    );
    assert_eq!(
        eval("(reading > 10) IS TRUE")?,
        vec![b(false), b(true), b(false)]
    );
    assert_eq!(
        eval("(reading > 10) IS NOT TRUE")?,
        vec![b(true), b(false), b(true)]
    );
    assert_eq!(
        eval("(reading > 10) IS FALSE")?,
        vec![b(true), b(false), b(false)]
    );
    assert_eq!(
        eval("(reading > 10) IS NOT FALSE")?,
        vec![b(false), b(true), b(true)]
    );
    assert!(!bind_sql("(reading > 10) IS TRUE")?.nullable);
    assert_eq!(eval("NOT (reading > 10)")?, vec![b(true), b(false), NULL]);
    assert_eq!(
        eval("reading > 1 AND status = 'OK' OR device_id = 'sensor-22'")?,
        vec![b(true), NULL, b(true)]
    );
    assert_eq!(eval("reading <> 5")?, vec![b(false), b(true), NULL]);
    assert_eq!(eval("reading != 5")?, vec![b(false), b(true), NULL]);
    assert_eq!(
        eval("device_id IS DISTINCT FROM 'dev-1'")?,
        vec![b(false), b(true), b(true)]
    );
    assert_eq!(
        eval("device_id IS NOT DISTINCT FROM NULL")?,
        vec![b(false), b(true), b(false)]
    );
    assert_eq!(eval("NULL = reading")?, vec![NULL, NULL, NULL]);
    Ok(())
}

#[test]
fn bind_expr_like_and_ilike() -> TestResult {
    assert_eq!(eval("status LIKE 'error%'")?, vec![b(false), b(true), NULL]);
    assert_eq!(
        eval("status NOT LIKE 'error%'")?,
        vec![b(true), b(false), NULL]
    );
    assert_eq!(
        eval("device_id LIKE 'dev-_'")?,
        vec![b(true), NULL, b(false)]
    );
    assert_eq!(
        eval("device_id ILIKE 'DEV-%'")?,
        vec![b(true), NULL, b(false)]
    );
    let (m, p) = bind_err("status LIKE 'a!%' ESCAPE '!'")?;
    assert!(m.contains("ESCAPE is not supported"), "{m}");
    assert_eq!(p, Position::new(1, 26));
    Ok(())
}

#[test]
fn bind_expr_casts() -> TestResult {
    assert_eq!(eval("CAST('12' AS INT)")?, vec![ScalarValue::Int32(12); 3]);
    assert_eq!(eval("TRY_CAST('x' AS INT)")?, vec![NULL; 3]);
    assert!(bind_sql("TRY_CAST('x' AS INT)")?.nullable);
    assert_eq!(
        eval("CAST(reading AS STRING)")?,
        vec![s("5"), s("17"), NULL]
    );
    assert_eq!(
        bind_sql("CAST(reading AS BIGINT)")?.data_type,
        DataType::Int64
    );
    assert_eq!(bind_sql("reading::DOUBLE")?.data_type, DataType::Float64);
    assert_eq!(
        eval("CAST('2026-01-01 10:15:30.250' AS TIMESTAMP(3))")?,
        vec![ScalarValue::TimestampMillis(ROW0_TS); 3]
    );
    let (m, _) = bind_err("CAST(reading AS JSON)")?;
    assert!(m.contains("unsupported data type JSON"), "{m}");
    Ok(())
}

#[test]
fn bind_expr_time_functions() -> TestResult {
    let i = ScalarValue::Int64;
    assert_eq!(eval("EXTRACT(HOUR FROM ts)")?, vec![i(10), i(23), NULL]);
    assert_eq!(eval("EXTRACT(MINUTE FROM ts)")?, vec![i(15), i(59), NULL]);
    assert_eq!(eval("EXTRACT(YEAR FROM ts)")?, vec![i(2026), i(2026), NULL]);
    let t = ScalarValue::TimestampMillis;
    assert_eq!(
        eval("FLOOR(ts TO HOUR)")?,
        vec![
            t(NEW_YEAR_2026 + 10 * HOUR),
            t(NEW_YEAR_2026 + 23 * HOUR),
            NULL
        ]
    );
    assert_eq!(
        eval("DATE_TRUNC('day', ts)")?,
        vec![t(NEW_YEAR_2026), t(NEW_YEAR_2026), NULL]
    );
    assert_eq!(
        eval("ts + INTERVAL '5' SECOND")?,
        vec![t(ROW0_TS + 5_000), t(ROW1_TS + 5_000), NULL]
    );
    assert_eq!(
        eval("ts - INTERVAL '1' HOUR")?,
        vec![t(ROW0_TS - HOUR), t(ROW1_TS - HOUR), NULL]
    );
    assert_eq!(bind_sql("ts + INTERVAL '1' MONTH")?.data_type, TS_MS);
    assert_eq!(
        eval("ts > TIMESTAMP '2026-01-01 12:00:00'")?,
        vec![b(false), b(true), NULL]
    );
    assert_eq!(
        eval("ts = TIMESTAMP '2026-01-01 10:15:30.250'")?,
        vec![b(true), b(false), NULL]
    );
    let (m, _) = bind_err("DATE_TRUNC('fortnight', ts)")?;
    assert!(m.contains("does not support the unit 'fortnight'"), "{m}");
    let (m, _) = bind_err("EXTRACT(HOUR FROM status)")?;
    assert!(m.contains("STRING"), "{m}");
    Ok(())
}

#[test]
fn bind_expr_coalesce_nullif_if() -> TestResult {
    assert_eq!(
        eval("COALESCE(device_id, 'unknown')")?,
        vec![s("dev-1"), s("unknown"), s("sensor-22")]
    );
    assert!(!bind_sql("COALESCE(device_id, 'unknown')")?.nullable);
    let bound = bind_sql("COALESCE(NULL, reading)")?;
    assert_eq!(bound.data_type, DataType::Int32);
    let i = ScalarValue::Int32;
    assert_eq!(eval("NULLIF(reading, 5)")?, vec![NULL, i(17), NULL]);
    assert_eq!(
        eval("IF(reading > 10, 'big', 'small')")?,
        vec![s("small"), s("big"), s("small")]
    );
    assert_eq!(
        eval("IF(reading > 10, NULL, reading)")?,
        vec![i(5), NULL, NULL]
    );
    let (m, _) = bind_err("IF(reading, 1, 2)")?;
    assert!(m.contains("IF expects a BOOLEAN operand, got INT"), "{m}");
    let (m, _) = bind_err("NULLIF(reading)")?;
    assert!(m.contains("NULLIF expects 2 arguments"), "{m}");
    Ok(())
}

#[test]
fn bind_expr_string_functions() -> TestResult {
    assert_eq!(
        eval("SUBSTRING(device_id FROM 2 FOR 3)")?,
        vec![s("ev-"), NULL, s("ens")]
    );
    assert_eq!(eval("SUBSTR(status, 1, 2)")?, vec![s("OK"), s("er"), NULL]);
    assert_eq!(
        eval("UPPER(device_id)")?,
        vec![s("DEV-1"), NULL, s("SENSOR-22")]
    );
    assert_eq!(
        eval("lower(status)")?,
        vec![s("ok"), s("error: overheat"), NULL]
    );
    let i = ScalarValue::Int32;
    assert_eq!(eval("CHAR_LENGTH(device_id)")?, vec![i(5), NULL, i(9)]);
    assert_eq!(eval("CHARACTER_LENGTH(status)")?, vec![i(2), i(15), NULL]);
    assert_eq!(eval("TRIM(BOTH 'x' FROM 'xxhixx')")?, vec![s("hi"); 3]);
    assert_eq!(eval("TRIM('  hi  ')")?, vec![s("hi"); 3]);
    assert_eq!(eval("LTRIM('  hi  ')")?, vec![s("hi  "); 3]);
    assert_eq!(eval("TRIM(TRAILING 'x' FROM 'xhix')")?, vec![s("xhi"); 3]);
    assert_eq!(
        eval("CONCAT(device_id, '/', status)")?,
        vec![s("dev-1/OK"), NULL, NULL]
    );
    assert_eq!(
        eval("device_id || '!'")?,
        vec![s("dev-1!"), NULL, s("sensor-22!")]
    );
    assert_eq!(
        eval("REGEXP_REPLACE(device_id, '[0-9]+', '#')")?,
        vec![s("dev-#"), NULL, s("sensor-#")]
    );
    Ok(())
}

#[test]
fn bind_expr_math_functions() -> TestResult {
    let f = ScalarValue::Float64;
    assert_eq!(eval("ABS(-3)")?, vec![ScalarValue::Int32(3); 3]);
    assert_eq!(eval("MOD(17, 5)")?, vec![ScalarValue::Int32(2); 3]);
    assert_eq!(
        eval("ROUND(temperature / 7, 2)")?,
        vec![f(30.29), f(4.57), NULL]
    );
    // Of a DECIMAL(2, 1), exact, with Flink's types: CEIL, FLOOR and ROUND
    // to an integer are DECIMAL(2, 0) (one integer digit more for the
    // carry: 9.9 rounds to 10); ABS keeps the type.
    let d = |v: i128| ScalarValue::Decimal128(v, 2, 0);
    assert_eq!(eval("CEIL(1.2)")?, vec![d(2); 3]);
    assert_eq!(eval("CEILING(-1.2)")?, vec![d(-1); 3]);
    assert_eq!(eval("FLOOR(-1.2)")?, vec![d(-2); 3]);
    assert_eq!(eval("ROUND(2.5)")?, vec![d(3); 3]);
    assert_eq!(eval("ROUND(-2.5)")?, vec![d(-3); 3]);
    assert_eq!(eval("ROUND(9.9)")?, vec![d(10); 3]);
    assert_eq!(
        eval("ABS(-2.5)")?,
        vec![ScalarValue::Decimal128(25, 2, 1); 3]
    );
    assert_eq!(eval("CEIL(CAST(1.2 AS DOUBLE))")?, vec![f(2.0); 3]);
    assert_eq!(
        eval("FLOOR(temperature / 100)")?,
        vec![f(2.0), f(0.0), NULL]
    );
    Ok(())
}

#[test]
fn bind_expr_unknown_column_reports_position_and_choices() -> TestResult {
    let (m, p) = bind_err("reading +\n  tmp")?;
    assert_eq!(
        m,
        "unknown column 'tmp'; available columns: ts, device_id, temperature, reading, status"
    );
    assert_eq!(p, Position::new(2, 3));
    let (m, p) = bind_err("readings.nope")?;
    assert!(m.starts_with("unknown column 'readings.nope'"), "{m}");
    assert_eq!(p, Position::new(1, 1));
    // a long scope lists only the first ten names
    let wide = Scope::new(
        (0..15)
            .map(|i| column(&format!("c{i}"), DataType::Int32))
            .collect(),
    );
    let Err(SqlError::Plan { message, .. }) = bind_expr(&parse("x")?, &wide) else {
        return Err("expected an unknown column error".into());
    };
    assert!(message.ends_with("c8, c9, … (5 more)"), "{message}");
    Ok(())
}

#[test]
fn bind_expr_qualified_and_ambiguous_columns() -> TestResult {
    let col = |q: &str, n: &str| ScopeColumn {
        qualifier: Some(q.to_string()),
        name: n.to_string(),
        data_type: DataType::Int32,
        nullable: false,
    };
    let joined = Scope::new(vec![col("a", "id"), col("b", "ID"), col("b", "x")]);
    let resolve = |sql: &str| -> std::result::Result<Result<usize>, Box<dyn std::error::Error>> {
        Ok(match parse(sql)? {
            ast::Expr::Identifier(i) => joined.resolve(&[i]),
            ast::Expr::CompoundIdentifier(is) => joined.resolve(&is),
            other => return Err(format!("not an identifier: {other}").into()),
        })
    };
    assert_eq!(resolve("a.id")??, 0);
    assert_eq!(resolve("B.Id")??, 1);
    assert_eq!(resolve("X")??, 2);
    assert_eq!(resolve("cat.db.b.x")??, 2);
    match resolve("  id")? {
        Err(SqlError::Plan { message, position }) => {
            assert!(message.contains("column 'id' is ambiguous"), "{message}");
            assert!(message.contains("a, b"), "{message}");
            assert_eq!(position, Position::new(1, 3));
        }
        other => return Err(format!("expected ambiguity, got {other:?}").into()),
    }
    assert!(matches!(resolve("c.id")?, Err(SqlError::Plan { .. })));
    let bound = bind_expr(&parse("a.id + b.x")?, &joined)?;
    assert_eq!(
        bound.expr,
        runnel_engine::expr::binary(Expr::Column(0), BinaryOp::Plus, Expr::Column(2))
    );
    assert!(!bound.nullable);
    Ok(())
}

#[test]
fn bind_expr_type_mismatch_reports_position() -> TestResult {
    let (m, p) = bind_err("reading > 0 AND\n   status = 5")?;
    assert!(m.starts_with("cannot compare STRING and INT"), "{m}");
    assert_eq!(p, Position::new(2, 4));
    let (m, p) = bind_err("1 + (status * 2)")?;
    assert_eq!(m, "cannot apply '*' to STRING and INT");
    assert_eq!(p, Position::new(1, 6));
    let (m, _) = bind_err("reading AND TRUE")?;
    assert_eq!(m, "AND expects BOOLEAN operands, got INT and BOOLEAN");
    let (m, p) = bind_err("x + UPPER(reading)")?;
    assert!(m.starts_with("unknown column 'x'"), "{m}");
    assert_eq!(p, Position::new(1, 1));
    let (m, p) = bind_err("reading + UPPER(reading)")?;
    assert!(m.contains("UPPER") && m.contains("INT"), "{m}");
    assert_eq!(p, Position::new(1, 11));
    let (m, _) = bind_err("UPPER(ts)")?;
    assert_eq!(m, "argument 1 of UPPER must be a string, got TIMESTAMP(3)");
    let (m, _) = bind_err("CASE WHEN reading > 1 THEN 'a' ELSE 1 END")?;
    assert!(m.contains("STRING and INT"), "{m}");
    Ok(())
}

#[test]
fn bind_expr_rejects_aggregates_windows_and_proctime() -> TestResult {
    let (m, p) = bind_err("1 + COUNT(*)")?;
    assert_eq!(m, "aggregate function COUNT is not allowed here");
    assert_eq!(p, Position::new(1, 5));
    let (m, _) = bind_err("sum(reading)")?;
    assert_eq!(m, "aggregate function SUM is not allowed here");
    let (m, _) = bind_err("SUM(reading) OVER (PARTITION BY device_id)")?;
    assert_eq!(m, "OVER windows are not supported yet");
    let (m, _) = bind_err("PROCTIME()")?;
    assert!(m.starts_with("PROCTIME() is only allowed"), "{m}");
    Ok(())
}

#[test]
fn bind_expr_unknown_function_lists_choices() -> TestResult {
    let (m, p) = bind_err("reading + \n FOO(1)")?;
    assert!(
        m.starts_with("unknown function 'FOO'; supported functions: "),
        "{m}"
    );
    assert!(
        m.contains("REGEXP_REPLACE") && m.contains("COALESCE"),
        "{m}"
    );
    assert_eq!(p, Position::new(2, 2));
    Ok(())
}

#[test]
fn bind_expr_with_substitutes_aggregates() -> TestResult {
    // The aggregate's output: the group key and COUNT(*) as column 1.
    let agg_scope = Scope::new(vec![
        ScopeColumn {
            qualifier: None,
            name: "device_id".into(),
            data_type: DataType::Utf8,
            nullable: true,
        },
        ScopeColumn {
            qualifier: None,
            name: "$agg0".into(),
            data_type: DataType::Int64,
            nullable: false,
        },
    ]);
    let mut calls = 0;
    let mut sub = |e: &ast::Expr| -> Option<Result<Bound>> {
        match e {
            ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("count") => {
                calls += 1;
                Some(Ok(Bound {
                    expr: Expr::Column(1),
                    data_type: DataType::Int64,
                    nullable: false,
                }))
            }
            _ => None,
        }
    };
    let bound = bind_expr_with(&parse("COUNT(*) * 2 + 1")?, &agg_scope, &mut sub)?;
    assert_eq!(calls, 1);
    assert_eq!(bound.data_type, DataType::Int64);
    let out_batch = RecordBatch::try_new(
        Arc::new(agg_scope.schema()),
        vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(arrow::array::Int64Array::from(vec![3, 10])),
        ],
    )?;
    let out = bound.expr.evaluate(&out_batch)?;
    assert_eq!(
        ScalarValue::try_from_array(out.as_ref(), 1)?,
        ScalarValue::Int64(21)
    );
    Ok(())
}

#[test]
fn bind_expr_interval_millis_units() -> TestResult {
    let ms = |sql: &str| -> std::result::Result<i64, Box<dyn std::error::Error>> {
        Ok(interval_millis(&parse(sql)?)?)
    };
    assert_eq!(ms("INTERVAL '5' SECOND")?, 5_000);
    assert_eq!(ms("INTERVAL '5' SECONDS")?, 5_000);
    assert_eq!(ms("INTERVAL '1' HOUR")?, 3_600_000);
    assert_eq!(ms("INTERVAL '10' MINUTES")?, 600_000);
    assert_eq!(ms("INTERVAL '2' DAY")?, 172_800_000);
    assert_eq!(ms("INTERVAL '1.5' SECOND")?, 1_500);
    assert_eq!(ms("INTERVAL '250' MILLISECOND")?, 250);
    assert_eq!(ms("INTERVAL '-3' SECOND")?, -3_000);
    assert_eq!(ms("INTERVAL '1:30' MINUTE TO SECOND")?, 90_000);
    assert_eq!(ms("INTERVAL '2:15' HOUR TO MINUTE")?, 8_100_000);
    assert_eq!(ms("INTERVAL '1 02:03:04.5' DAY TO SECOND")?, 93_784_500);
    assert_eq!(ms("INTERVAL '5 seconds'")?, 5_000);
    assert_eq!(ms("(INTERVAL '1' MINUTE)")?, 60_000);
    let err = |sql: &str| -> std::result::Result<String, Box<dyn std::error::Error>> {
        match interval_millis(&parse(sql)?) {
            Err(SqlError::Plan { message, position }) => {
                assert!(!position.is_unknown(), "{sql}");
                Ok(message)
            }
            other => Err(format!("expected an error for {sql}, got {other:?}").into()),
        }
    };
    assert!(err("INTERVAL '1' MONTH")?.contains("month and year intervals are not allowed"));
    assert!(err("INTERVAL '1' YEAR")?.contains("month and year"));
    assert!(err("INTERVAL '1:75' MINUTE TO SECOND")?.contains("does not match"));
    assert!(err("INTERVAL 'abc' SECOND")?.contains("invalid INTERVAL literal"));
    assert!(err("5")?.contains("expected an INTERVAL literal"));
    Ok(())
}

#[test]
fn bind_expr_sql_type_to_arrow_each_type() -> TestResult {
    let cases = [
        ("INT", DataType::Int32),
        ("INTEGER", DataType::Int32),
        ("BIGINT", DataType::Int64),
        ("SMALLINT", DataType::Int16),
        ("TINYINT", DataType::Int8),
        ("FLOAT", DataType::Float32),
        ("REAL", DataType::Float32),
        ("DOUBLE", DataType::Float64),
        ("DOUBLE PRECISION", DataType::Float64),
        ("DECIMAL(10, 2)", DataType::Decimal128(10, 2)),
        ("NUMERIC(5)", DataType::Decimal128(5, 0)),
        ("DECIMAL", DataType::Decimal128(10, 0)),
        ("BOOLEAN", DataType::Boolean),
        ("STRING", DataType::Utf8),
        ("VARCHAR(20)", DataType::Utf8),
        ("CHAR(3)", DataType::Utf8),
        ("TEXT", DataType::Utf8),
        ("TIMESTAMP", TS_MS),
        ("TIMESTAMP(3)", TS_MS),
        ("TIMESTAMP_LTZ(3)", TS_MS),
        ("DATE", DataType::Date32),
        ("BYTES", DataType::Binary),
        ("VARBINARY", DataType::Binary),
    ];
    for (name, expected) in cases {
        let ast::Expr::Cast { data_type, .. } = parse(&format!("CAST(x AS {name})"))? else {
            return Err(format!("{name} did not parse as a CAST").into());
        };
        assert_eq!(
            sql_type_to_arrow(&data_type, Position::new(1, 1))?,
            expected,
            "{name}"
        );
    }
    let ast::Expr::Cast { data_type, .. } = parse("CAST(x AS JSON)")? else {
        return Err("JSON did not parse as a CAST".into());
    };
    match sql_type_to_arrow(&data_type, Position::new(3, 4)) {
        Err(SqlError::Plan { message, position }) => {
            assert_eq!(message, "unsupported data type JSON");
            assert_eq!(position, Position::new(3, 4));
        }
        other => return Err(format!("expected an error, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn bind_expr_flink_type_names() {
    let cases = [
        (DataType::Int32, "INT"),
        (DataType::Int64, "BIGINT"),
        (DataType::Int16, "SMALLINT"),
        (DataType::Int8, "TINYINT"),
        (DataType::Float32, "FLOAT"),
        (DataType::Float64, "DOUBLE"),
        (DataType::Utf8, "STRING"),
        (DataType::Boolean, "BOOLEAN"),
        (DataType::Date32, "DATE"),
        (DataType::Binary, "BYTES"),
        (TS_MS, "TIMESTAMP(3)"),
        (
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            "TIMESTAMP_LTZ(3)",
        ),
        (INTERVAL_MS, "INTERVAL DAY TO SECOND(3)"),
        (INTERVAL_MONTHS, "INTERVAL YEAR TO MONTH"),
        (DataType::Decimal128(10, 2), "DECIMAL(10, 2)"),
        (DataType::Null, "NULL"),
    ];
    for (t, name) in cases {
        assert_eq!(flink_type_name(&t), name, "{t}");
    }
}

#[test]
fn bind_expr_aggregate_names() {
    for name in [
        "count",
        "SUM",
        "Avg",
        "min",
        "MAX",
        "first_value",
        "LAST_VALUE",
        "stddev_pop",
        "VAR_SAMP",
    ] {
        assert!(is_aggregate_name(name), "{name}");
    }
    for name in ["LOWER", "COUNTS", "", "ROUND"] {
        assert!(!is_aggregate_name(name), "{name}");
    }
}

#[test]
fn bind_expr_date_arithmetic_helpers() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2026, 1, 1) * 86_400_000, NEW_YEAR_2026);
    assert_eq!(days_from_civil(1969, 12, 31), -1);
    assert_eq!(parse_date_days("2024-02-29"), Some(19_782));
    assert_eq!(parse_date_days("2023-02-29"), None);
    assert_eq!(parse_date_days("2026-13-01"), None);
    assert_eq!(
        parse_timestamp_millis("2026-01-01 10:15:30.25"),
        Some(ROW0_TS)
    );
    assert_eq!(
        parse_timestamp_millis("2026-01-01 10:15:30.250999"),
        Some(ROW0_TS)
    );
    assert_eq!(parse_timestamp_millis("2026-01-01"), Some(NEW_YEAR_2026));
    assert_eq!(parse_timestamp_millis("2026-01-01 24:00:00"), None);
    assert_eq!(parse_timestamp_millis("2026-01-01 10:15:30."), None);
}

/// Binds `sql` with `values` bound to its `?` placeholders.
fn bind_with(sql: &str, values: Vec<ScalarValue>) -> Result<Bound> {
    let expr = parse(sql).map_err(|e| SqlError::plan(e.to_string(), Position::default()))?;
    let params = Parameters::bound(placeholder_positions(&expr), values);
    with_parameters(params, || bind_expr(&expr, &scope())).0
}

#[test]
fn bound_parameters_are_typed_literals_not_text() -> TestResult {
    // A value that looks like SQL stays one string value.
    let b = bind_with(
        "status = ?",
        vec![ScalarValue::Utf8("'; DROP TABLE t; --".into())],
    )?;
    let Expr::Binary { right, .. } = &b.expr else {
        return Err(format!("a comparison, got {:?}", b.expr).into());
    };
    assert_eq!(
        **right,
        Expr::Literal(ScalarValue::Utf8("'; DROP TABLE t; --".into()))
    );
    // An INT column's parameter takes the BIGINT a client sends as an INT.
    let b = bind_with("reading > ?", vec![ScalarValue::Int64(7)])?;
    let Expr::Binary { right, .. } = &b.expr else {
        return Err(format!("a comparison, got {:?}", b.expr).into());
    };
    assert_eq!(**right, Expr::Literal(ScalarValue::Int32(7)));
    // Arithmetic and a bare parameter.
    let b = bind_with("? + 1", vec![ScalarValue::Utf8("41".into())])?;
    assert_eq!(b.data_type, DataType::Int32);
    assert_eq!(b.expr.evaluate(&batch()?)?.len(), 3);
    let b = bind_with("?", vec![ScalarValue::Null])?;
    assert_eq!(b.data_type, DataType::Utf8);
    Ok(())
}

#[test]
fn a_value_that_does_not_cast_names_its_parameter() -> TestResult {
    let err = bind_with(
        "reading = ? AND temperature > ?",
        vec![ScalarValue::Int32(1), ScalarValue::Utf8("abc".into())],
    )
    .err()
    .ok_or("'abc' is no DOUBLE")?;
    assert!(
        err.to_string()
            .ends_with("parameter 2: cannot cast 'abc' to DOUBLE"),
        "{err}"
    );
    let err = bind_expr(&parse("reading = ?")?, &scope())
        .err()
        .ok_or("no parameters outside a prepared statement")?;
    assert!(err.to_string().contains("prepared statements"), "{err}");
    Ok(())
}
