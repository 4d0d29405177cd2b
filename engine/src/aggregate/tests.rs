//! Tests of the aggregate accumulators. Expected values come from hand
//! computation or from naive per-group loops written here, never from the
//! code under test.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
    FixedSizeBinaryArray, Float64Array, Int32Array, Int64Array, StringArray, StringViewArray,
    TimestampMillisecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Int32Type, TimeUnit};
use proptest::prelude::*;

use super::*;
use AggregateFunction as F;

const ALL: [AggregateFunction; 12] = [
    F::Count,
    F::CountDistinct,
    F::Sum,
    F::Avg,
    F::Min,
    F::Max,
    F::FirstValue,
    F::LastValue,
    F::StddevSamp,
    F::StddevPop,
    F::VarSamp,
    F::VarPop,
];

fn make(func: AggregateFunction, types: &[DataType]) -> Box<dyn GroupsAccumulator> {
    create_accumulator(func, types).expect("create accumulator")
}

fn upd(
    acc: &mut dyn GroupsAccumulator,
    values: &[ArrayRef],
    groups: &[u32],
    filter: Option<&BooleanArray>,
    total: usize,
    seq: u64,
) -> Result<()> {
    acc.update(&UpdateArgs {
        values,
        groups,
        filter,
        total_groups: total,
        first_row_seq: seq,
    })
}

fn i64s(a: &ArrayRef) -> Vec<Option<i64>> {
    a.as_primitive::<arrow::datatypes::Int64Type>()
        .iter()
        .collect()
}

fn f64s(a: &ArrayRef) -> Vec<Option<f64>> {
    a.as_primitive::<arrow::datatypes::Float64Type>()
        .iter()
        .collect()
}

fn strs(a: &ArrayRef) -> Vec<Option<String>> {
    a.as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect()
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())),
        _ => false,
    }
}

fn assert_close(got: &[Option<f64>], want: &[Option<f64>]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g, *w), "group {i}: got {g:?}, want {w:?}");
    }
}

// The shared small input: 8 rows, 4 groups; group 3 never gets a row.
const GROUPS: [u32; 8] = [0, 1, 0, 2, 1, 0, 2, 1];
const ALL_GROUPS: [u32; 4] = [0, 1, 2, 3];

fn ints() -> ArrayRef {
    Arc::new(Int64Array::from(vec![
        Some(5),
        None,
        Some(-3),
        Some(7),
        Some(2),
        None,
        None,
        Some(2),
    ]))
}

fn filter() -> BooleanArray {
    BooleanArray::from(vec![
        Some(true),
        Some(true),
        Some(false),
        None,
        Some(true),
        Some(true),
        Some(true),
        Some(true),
    ])
}

// ---------------------------------------------------------------------------
// Names and types

#[test]
fn names_and_return_types() {
    assert_eq!(AggregateFunction::from_name("count"), Some(F::Count));
    assert_eq!(AggregateFunction::from_name("Stddev"), Some(F::StddevSamp));
    assert_eq!(AggregateFunction::from_name("VARIANCE"), Some(F::VarSamp));
    assert_eq!(AggregateFunction::from_name("var_pop"), Some(F::VarPop));
    assert_eq!(
        AggregateFunction::from_name("last_value"),
        Some(F::LastValue)
    );
    assert_eq!(AggregateFunction::from_name("median"), None);
    for f in ALL {
        if f != F::CountDistinct {
            assert_eq!(AggregateFunction::from_name(f.name()), Some(f));
        }
    }

    assert_eq!(F::Count.return_type(&[]).ok(), Some(DataType::Int64));
    assert_eq!(
        F::Sum.return_type(&[DataType::Int32]).ok(),
        Some(DataType::Int64)
    );
    assert_eq!(
        F::Sum.return_type(&[DataType::Float32]).ok(),
        Some(DataType::Float64)
    );
    // AVG of an integer is an integer of its type, as in Flink.
    assert_eq!(
        F::Avg.return_type(&[DataType::Int8]).ok(),
        Some(DataType::Int8)
    );
    assert_eq!(
        F::Avg.return_type(&[DataType::Float32]).ok(),
        Some(DataType::Float64)
    );
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    assert_eq!(F::Max.return_type(std::slice::from_ref(&ts)).ok(), Some(ts));
    match F::Sum.return_type(&[DataType::Utf8]) {
        Err(EngineError::Plan(m)) => {
            assert_eq!(m, "SUM does not accept Utf8; expected a numeric argument")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(F::Sum.return_type(&[]), Err(EngineError::Plan(_))));
    assert!(matches!(
        create_accumulator(F::StddevPop, &[DataType::Boolean]),
        Err(EngineError::Plan(_))
    ));
    assert!(matches!(
        create_accumulator(F::Min, &[DataType::Null]),
        Err(EngineError::Plan(_))
    ));
    assert!(matches!(
        create_accumulator(F::CountDistinct, &[]),
        Err(EngineError::Plan(_))
    ));
}

// ---------------------------------------------------------------------------
// Each function on the shared input, with and without FILTER

#[test]
fn count_star_and_count() -> Result<()> {
    let mut star = make(F::Count, &[]);
    upd(star.as_mut(), &[], &GROUPS, None, 4, 0)?;
    assert_eq!(
        i64s(&star.evaluate(&ALL_GROUPS)?),
        vec![Some(3), Some(3), Some(2), Some(0)]
    );

    let mut x = make(F::Count, &[DataType::Int64]);
    upd(x.as_mut(), &[ints()], &GROUPS, None, 4, 0)?;
    assert_eq!(
        i64s(&x.evaluate(&ALL_GROUPS)?),
        vec![Some(2), Some(2), Some(1), Some(0)]
    );

    // FILTER drops rows 2 (false) and 3 (NULL).
    let f = filter();
    let mut star = make(F::Count, &[]);
    upd(star.as_mut(), &[], &GROUPS, Some(&f), 4, 0)?;
    assert_eq!(
        i64s(&star.evaluate(&ALL_GROUPS)?),
        vec![Some(2), Some(3), Some(1), Some(0)]
    );
    let mut x = make(F::Count, &[DataType::Int64]);
    upd(x.as_mut(), &[ints()], &GROUPS, Some(&f), 4, 0)?;
    assert_eq!(
        i64s(&x.evaluate(&ALL_GROUPS)?),
        vec![Some(1), Some(2), Some(0), Some(0)]
    );

    // COUNT(a, b) counts rows where both are non-NULL.
    let b: ArrayRef = Arc::new(StringArray::from(vec![
        None,
        Some("x"),
        Some("y"),
        Some("z"),
        Some("w"),
        Some("v"),
        Some("u"),
        None,
    ]));
    let mut two = make(F::Count, &[DataType::Int64, DataType::Utf8]);
    upd(two.as_mut(), &[ints(), b], &GROUPS, None, 4, 0)?;
    assert_eq!(
        i64s(&two.evaluate(&ALL_GROUPS)?),
        vec![Some(1), Some(1), Some(1), Some(0)]
    );
    Ok(())
}

#[test]
fn sum_avg_with_nulls_and_filter() -> Result<()> {
    let mut sum = make(F::Sum, &[DataType::Int64]);
    upd(sum.as_mut(), &[ints()], &GROUPS, None, 4, 0)?;
    assert_eq!(
        i64s(&sum.evaluate(&[3, 2, 1, 0])?),
        vec![None, Some(7), Some(4), Some(2)]
    );

    let f = filter();
    let mut sum = make(F::Sum, &[DataType::Int64]);
    upd(sum.as_mut(), &[ints()], &GROUPS, Some(&f), 4, 0)?;
    assert_eq!(
        i64s(&sum.evaluate(&ALL_GROUPS)?),
        vec![Some(5), Some(4), None, None]
    );

    let small: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None, Some(2), Some(-4)]));
    let mut sum = make(F::Sum, &[DataType::Int32]);
    upd(sum.as_mut(), &[small], &[1, 1, 1, 0], None, 2, 0)?;
    assert_eq!(i64s(&sum.evaluate(&[0, 1])?), vec![Some(-4), Some(3)]);

    let floats: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(0.5),
        None,
        Some(1.25),
        Some(-2.0),
    ]));
    let mut sum = make(F::Sum, &[DataType::Float64]);
    upd(
        sum.as_mut(),
        std::slice::from_ref(&floats),
        &[0, 0, 0, 1],
        None,
        3,
        0,
    )?;
    assert_eq!(
        f64s(&sum.evaluate(&[0, 1, 2])?),
        vec![Some(1.75), Some(-2.0), None]
    );

    let mut avg = make(F::Avg, &[DataType::Int64]);
    upd(avg.as_mut(), &[ints()], &GROUPS, None, 4, 0)?;
    assert_eq!(
        i64s(&avg.evaluate(&ALL_GROUPS)?),
        vec![Some(1), Some(2), Some(7), None]
    );
    let mut avg = make(F::Avg, &[DataType::Int64]);
    upd(avg.as_mut(), &[ints()], &GROUPS, Some(&f), 4, 0)?;
    assert_eq!(
        i64s(&avg.evaluate(&ALL_GROUPS)?),
        vec![Some(5), Some(2), None, None]
    );
    // Truncated toward zero, in the argument's type: 7 / 2 and -7 / 2.
    let halves: ArrayRef = Arc::new(Int32Array::from(vec![3, 4, -3, -4]));
    let mut avg = make(F::Avg, &[DataType::Int32]);
    upd(avg.as_mut(), &[halves], &[0, 0, 1, 1], None, 2, 0)?;
    let got = avg.evaluate(&[0, 1])?;
    assert_eq!(got.data_type(), &DataType::Int32);
    let got = got.as_any().downcast_ref::<Int32Array>().expect("INT");
    assert_eq!(got.iter().collect::<Vec<_>>(), vec![Some(3), Some(-3)]);
    let mut avg = make(F::Avg, &[DataType::Float64]);
    upd(avg.as_mut(), &[floats], &[0, 0, 0, 1], None, 2, 0)?;
    assert_close(&f64s(&avg.evaluate(&[0, 1])?), &[Some(0.875), Some(-2.0)]);
    Ok(())
}

#[test]
fn sum_overflow_is_an_execution_error() -> Result<()> {
    let big: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX, 1]));
    let mut sum = make(F::Sum, &[DataType::Int64]);
    let err = upd(
        sum.as_mut(),
        std::slice::from_ref(&big),
        &[0, 0],
        None,
        1,
        0,
    );
    assert!(matches!(err, Err(EngineError::Execution(_))), "{err:?}");

    // The same values in different groups do not overflow.
    let mut sum = make(F::Sum, &[DataType::Int64]);
    upd(
        sum.as_mut(),
        std::slice::from_ref(&big),
        &[0, 1],
        None,
        2,
        0,
    )?;
    // ... but merging them does.
    let mut other = make(F::Sum, &[DataType::Int64]);
    upd(other.as_mut(), &[big], &[0, 1], None, 2, 0)?;
    assert!(matches!(
        sum.merge(0, other.as_ref(), 0),
        Err(EngineError::Execution(_))
    ));

    // u64 values beyond i64 overflow too.
    let huge: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
    let mut sum = make(F::Sum, &[DataType::UInt64]);
    assert!(matches!(
        upd(sum.as_mut(), &[huge], &[0], None, 1, 0),
        Err(EngineError::Execution(_))
    ));

    // Negative overflow.
    let neg: ArrayRef = Arc::new(Int64Array::from(vec![i64::MIN, -1]));
    let mut sum = make(F::Sum, &[DataType::Int64]);
    assert!(matches!(
        upd(sum.as_mut(), &[neg], &[0, 0], None, 1, 0),
        Err(EngineError::Execution(_))
    ));
    Ok(())
}

#[test]
fn min_max_on_many_types() -> Result<()> {
    let f = filter();
    let mut min = make(F::Min, &[DataType::Int64]);
    let mut max = make(F::Max, &[DataType::Int64]);
    upd(min.as_mut(), &[ints()], &GROUPS, None, 4, 0)?;
    upd(max.as_mut(), &[ints()], &GROUPS, None, 4, 0)?;
    assert_eq!(
        i64s(&min.evaluate(&ALL_GROUPS)?),
        vec![Some(-3), Some(2), Some(7), None]
    );
    assert_eq!(
        i64s(&max.evaluate(&ALL_GROUPS)?),
        vec![Some(5), Some(2), Some(7), None]
    );
    let mut min = make(F::Min, &[DataType::Int64]);
    upd(min.as_mut(), &[ints()], &GROUPS, Some(&f), 4, 0)?;
    assert_eq!(
        i64s(&min.evaluate(&ALL_GROUPS)?),
        vec![Some(5), Some(2), None, None]
    );

    // Floats follow the total order: NaN is the largest, -0.0 < 0.0.
    let fl: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(1.0),
        Some(f64::NAN),
        Some(-1.5),
        Some(0.0),
        Some(-0.0),
    ]));
    let mut min = make(F::Min, &[DataType::Float64]);
    let mut max = make(F::Max, &[DataType::Float64]);
    upd(
        min.as_mut(),
        std::slice::from_ref(&fl),
        &[0, 0, 0, 1, 1],
        None,
        2,
        0,
    )?;
    upd(max.as_mut(), &[fl], &[0, 0, 0, 1, 1], None, 2, 0)?;
    let mins = f64s(&min.evaluate(&[0, 1])?);
    let maxs = f64s(&max.evaluate(&[0, 1])?);
    assert_eq!(mins[0], Some(-1.5));
    assert!(mins[1].is_some_and(|v| v == 0.0 && v.is_sign_negative()));
    assert!(maxs[0].is_some_and(f64::is_nan));
    assert!(maxs[1].is_some_and(|v| v == 0.0 && v.is_sign_positive()));

    // Strings compare bytewise.
    let s: ArrayRef = Arc::new(StringArray::from(vec![
        Some("pear"),
        None,
        Some("apple"),
        Some("Zebra"),
        Some("äpfel"),
    ]));
    let mut min = make(F::Min, &[DataType::Utf8]);
    let mut max = make(F::Max, &[DataType::Utf8]);
    upd(
        min.as_mut(),
        std::slice::from_ref(&s),
        &[0, 0, 0, 0, 1],
        None,
        3,
        0,
    )?;
    upd(max.as_mut(), &[s], &[0, 0, 0, 0, 1], None, 3, 0)?;
    assert_eq!(
        strs(&min.evaluate(&[0, 1, 2])?),
        vec![Some("Zebra".into()), Some("äpfel".into()), None]
    );
    assert_eq!(
        strs(&max.evaluate(&[0, 1, 2])?),
        vec![Some("pear".into()), Some("äpfel".into()), None]
    );

    // Booleans: false < true.
    let b: ArrayRef = Arc::new(BooleanArray::from(vec![
        Some(true),
        Some(false),
        None,
        Some(true),
    ]));
    let mut min = make(F::Min, &[DataType::Boolean]);
    let mut max = make(F::Max, &[DataType::Boolean]);
    upd(
        min.as_mut(),
        std::slice::from_ref(&b),
        &[0, 0, 1, 1],
        None,
        2,
        0,
    )?;
    upd(max.as_mut(), &[b], &[0, 0, 1, 1], None, 2, 0)?;
    let want_min: ArrayRef = Arc::new(BooleanArray::from(vec![Some(false), Some(true)]));
    let want_max: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), Some(true)]));
    assert_eq!(&min.evaluate(&[0, 1])?, &want_min);
    assert_eq!(&max.evaluate(&[0, 1])?, &want_max);

    // Timestamps keep their time zone, decimals their precision and scale.
    let ts_type = DataType::Timestamp(TimeUnit::Millisecond, Some("+01:00".into()));
    let ts: ArrayRef = Arc::new(
        TimestampMillisecondArray::from(vec![Some(30), Some(10), None, Some(20)])
            .with_timezone("+01:00"),
    );
    let mut max = make(F::Max, std::slice::from_ref(&ts_type));
    upd(max.as_mut(), &[ts], &[0, 0, 0, 1], None, 3, 0)?;
    let out = max.evaluate(&[0, 1, 2])?;
    assert_eq!(out.data_type(), &ts_type);
    let want: ArrayRef = Arc::new(
        TimestampMillisecondArray::from(vec![Some(30), Some(20), None]).with_timezone("+01:00"),
    );
    assert_eq!(&out, &want);

    let dec_type = DataType::Decimal128(10, 2);
    let dec: ArrayRef = Arc::new(
        Decimal128Array::from(vec![Some(125), Some(-50), None]).with_precision_and_scale(10, 2)?,
    );
    let mut min = make(F::Min, std::slice::from_ref(&dec_type));
    upd(min.as_mut(), &[dec], &[0, 0, 1], None, 2, 0)?;
    let out = min.evaluate(&[0, 1])?;
    let want: ArrayRef =
        Arc::new(Decimal128Array::from(vec![Some(-50), None]).with_precision_and_scale(10, 2)?);
    assert_eq!(&out, &want);

    let dates: ArrayRef = Arc::new(Date32Array::from(vec![19000, 18000, 20000]));
    let mut min = make(F::Min, &[DataType::Date32]);
    upd(min.as_mut(), &[dates], &[0, 0, 0], None, 1, 0)?;
    let want: ArrayRef = Arc::new(Date32Array::from(vec![18000]));
    assert_eq!(&min.evaluate(&[0])?, &want);
    Ok(())
}

#[test]
fn min_max_generic_row_path() -> Result<()> {
    // Utf8View and FixedSizeBinary go through the arrow-row fallback.
    let v: ArrayRef = Arc::new(StringViewArray::from(vec![
        Some("a fairly long string value beyond twelve bytes"),
        Some("b"),
        None,
        Some("a"),
    ]));
    let mut max = make(F::Max, &[DataType::Utf8View]);
    let mut min = make(F::Min, &[DataType::Utf8View]);
    upd(
        max.as_mut(),
        std::slice::from_ref(&v),
        &[0, 0, 1, 0],
        None,
        2,
        0,
    )?;
    upd(min.as_mut(), &[v], &[0, 0, 1, 0], None, 2, 0)?;
    let want_max: ArrayRef = Arc::new(StringViewArray::from(vec![Some("b"), None]));
    let want_min: ArrayRef = Arc::new(StringViewArray::from(vec![Some("a"), None]));
    assert_eq!(&max.evaluate(&[0, 1])?, &want_max);
    assert_eq!(&min.evaluate(&[0, 1])?, &want_min);

    let fsb: ArrayRef = Arc::new(FixedSizeBinaryArray::try_from_iter(
        vec![vec![3u8, 1], vec![1, 9], vec![2, 0]].into_iter(),
    )?);
    let mut min = make(F::Min, &[DataType::FixedSizeBinary(2)]);
    upd(min.as_mut(), &[fsb], &[0, 0, 1], None, 2, 0)?;
    let want: ArrayRef = Arc::new(FixedSizeBinaryArray::try_from_iter(
        vec![vec![1u8, 9], vec![2, 0]].into_iter(),
    )?);
    assert_eq!(&min.evaluate(&[0, 1])?, &want);

    // Dictionaries are flattened by the row format and restored on output.
    let dict_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let dict: DictionaryArray<Int32Type> = vec!["m", "c", "x", "c"].into_iter().collect();
    let dict: ArrayRef = Arc::new(dict);
    let mut max = make(F::Max, std::slice::from_ref(&dict_type));
    upd(max.as_mut(), &[dict], &[0, 0, 1, 1], None, 3, 0)?;
    let out = max.evaluate(&[0, 1, 2])?;
    assert_eq!(out.data_type(), &dict_type);
    let plain = arrow::compute::cast(&out, &DataType::Utf8)?;
    assert_eq!(strs(&plain), vec![Some("m".into()), Some("x".into()), None]);
    Ok(())
}

#[test]
fn first_last_value_by_arrival() -> Result<()> {
    let mut first = make(F::FirstValue, &[DataType::Int64]);
    let mut last = make(F::LastValue, &[DataType::Int64]);
    upd(first.as_mut(), &[ints()], &GROUPS, None, 4, 100)?;
    upd(last.as_mut(), &[ints()], &GROUPS, None, 4, 100)?;
    // Group 0 rows: 5, -3, NULL; group 1: NULL, 2, 2; group 2: 7, NULL.
    assert_eq!(
        i64s(&first.evaluate(&ALL_GROUPS)?),
        vec![Some(5), Some(2), Some(7), None]
    );
    assert_eq!(
        i64s(&last.evaluate(&ALL_GROUPS)?),
        vec![Some(-3), Some(2), Some(7), None]
    );

    // A second batch arrives later: LAST moves, FIRST stays.
    let more: ArrayRef = Arc::new(Int64Array::from(vec![Some(40), None]));
    upd(
        first.as_mut(),
        std::slice::from_ref(&more),
        &[0, 2],
        None,
        4,
        200,
    )?;
    upd(last.as_mut(), &[more], &[0, 2], None, 4, 200)?;
    assert_eq!(
        i64s(&first.evaluate(&ALL_GROUPS)?),
        vec![Some(5), Some(2), Some(7), None]
    );
    assert_eq!(
        i64s(&last.evaluate(&ALL_GROUPS)?),
        vec![Some(40), Some(2), Some(7), None]
    );

    // FILTER: row 0 (5) is kept, row 2 (-3) is not.
    let f = filter();
    let mut last = make(F::LastValue, &[DataType::Int64]);
    upd(last.as_mut(), &[ints()], &GROUPS, Some(&f), 4, 0)?;
    assert_eq!(
        i64s(&last.evaluate(&ALL_GROUPS)?),
        vec![Some(5), Some(2), None, None]
    );

    let s: ArrayRef = Arc::new(StringArray::from(vec![None, Some("b"), Some("c")]));
    let mut first = make(F::FirstValue, &[DataType::Utf8]);
    upd(first.as_mut(), &[s], &[0, 0, 0], None, 1, 0)?;
    assert_eq!(strs(&first.evaluate(&[0])?), vec![Some("b".into())]);
    Ok(())
}

#[test]
fn count_distinct() -> Result<()> {
    let mut cd = make(F::CountDistinct, &[DataType::Int64]);
    upd(cd.as_mut(), &[ints()], &GROUPS, None, 4, 0)?;
    // Group 1 has 2 twice.
    assert_eq!(
        i64s(&cd.evaluate(&ALL_GROUPS)?),
        vec![Some(2), Some(1), Some(1), Some(0)]
    );
    let f = filter();
    let mut cd = make(F::CountDistinct, &[DataType::Int64]);
    upd(cd.as_mut(), &[ints()], &GROUPS, Some(&f), 4, 0)?;
    assert_eq!(
        i64s(&cd.evaluate(&ALL_GROUPS)?),
        vec![Some(1), Some(1), Some(0), Some(0)]
    );

    let s: ArrayRef = Arc::new(StringArray::from(vec![
        Some("a"),
        Some("b"),
        Some("a"),
        None,
        Some("c"),
    ]));
    let n: ArrayRef = Arc::new(Int64Array::from(vec![
        Some(1),
        Some(1),
        Some(2),
        Some(1),
        None,
    ]));
    let mut cd = make(F::CountDistinct, &[DataType::Utf8]);
    upd(cd.as_mut(), std::slice::from_ref(&s), &[0; 5], None, 1, 0)?;
    assert_eq!(i64s(&cd.evaluate(&[0])?), vec![Some(3)]);
    // Pairs (a,1) (b,1) (a,2); rows with a NULL do not count.
    let mut cd = make(F::CountDistinct, &[DataType::Utf8, DataType::Int64]);
    upd(cd.as_mut(), &[s, n], &[0; 5], None, 1, 0)?;
    assert_eq!(i64s(&cd.evaluate(&[0])?), vec![Some(3)]);
    Ok(())
}

/// Two-pass reference: mean first, then squared deviations.
fn two_pass(xs: &[f64]) -> (f64, usize) {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    (xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>(), n)
}

#[test]
fn variance_family_against_two_pass() -> Result<()> {
    // Large offset: the naive sum-of-squares formula loses every digit here.
    let xs = [1e9 + 4.0, 1e9 + 7.0, 1e9 + 13.0, 1e9 + 16.0];
    let values: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(xs[0]),
        Some(xs[1]),
        None,
        Some(xs[2]),
        Some(xs[3]),
        Some(42.0),
    ]));
    let groups = [0, 0, 0, 0, 0, 1];
    let (m2, n) = two_pass(&xs);
    assert_eq!(m2, 90.0);
    let cases = [
        (F::VarPop, Some(m2 / n as f64), Some(0.0)),
        (F::VarSamp, Some(m2 / (n - 1) as f64), None),
        (F::StddevPop, Some((m2 / n as f64).sqrt()), Some(0.0)),
        (F::StddevSamp, Some((m2 / (n - 1) as f64).sqrt()), None),
    ];
    for (func, want0, want1) in cases {
        let mut acc = make(func, &[DataType::Float64]);
        upd(
            acc.as_mut(),
            std::slice::from_ref(&values),
            &groups,
            None,
            3,
            0,
        )?;
        let got = f64s(&acc.evaluate(&[0, 1, 2])?);
        assert_close(&got, &[want0, want1, None]);
    }
    // Integer input, hand computed: 2, 4, 4, 4, 5, 5, 7, 9 has pop variance 4.
    let ints: ArrayRef = Arc::new(Int32Array::from(vec![2, 4, 4, 4, 5, 5, 7, 9]));
    let mut acc = make(F::StddevPop, &[DataType::Int32]);
    upd(acc.as_mut(), &[ints], &[0; 8], None, 1, 0)?;
    assert_close(&f64s(&acc.evaluate(&[0])?), &[Some(2.0)]);
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties shared by every function

/// Argument types and a 12-row argument column for each function, chosen to
/// contain NULLs, duplicates and out-of-order values.
fn sample(func: AggregateFunction) -> (Vec<DataType>, Vec<ArrayRef>) {
    let ints: ArrayRef = Arc::new(Int64Array::from(vec![
        Some(4),
        None,
        Some(9),
        Some(-2),
        Some(4),
        Some(7),
        None,
        Some(1),
        Some(9),
        Some(3),
        Some(-8),
        Some(4),
    ]));
    let strings: ArrayRef = Arc::new(StringArray::from(vec![
        Some("k"),
        Some("b"),
        None,
        Some("q"),
        Some("b"),
        Some("z"),
        Some("a"),
        None,
        Some("k"),
        Some("m"),
        Some("c"),
        Some("b"),
    ]));
    match func {
        F::Count => (vec![], vec![]),
        F::CountDistinct | F::FirstValue | F::LastValue | F::Max => {
            (vec![DataType::Utf8], vec![strings])
        }
        _ => (vec![DataType::Int64], vec![ints]),
    }
}

const SAMPLE_GROUPS: [u32; 12] = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 0];

fn eval_all(acc: &dyn GroupsAccumulator, n: u32) -> Result<ArrayRef> {
    acc.evaluate(&(0..n).collect::<Vec<_>>())
}

fn assert_same_result(func: AggregateFunction, got: &ArrayRef, want: &ArrayRef) {
    if got.data_type() == &DataType::Float64 && want.data_type() == &DataType::Float64 {
        assert_close(&f64s(got), &f64s(want));
    } else {
        assert_eq!(got, want, "{}", func.name());
    }
}

#[test]
fn merge_equals_single_accumulator_for_every_function() -> Result<()> {
    // Rows alternate between two partial accumulators, one row per call with
    // its global sequence number, so sequence numbers interleave.
    for func in ALL {
        let (types, values) = sample(func);
        let mut whole = make(func, &types);
        upd(whole.as_mut(), &values, &SAMPLE_GROUPS, None, 4, 0)?;

        let mut parts = [make(func, &types), make(func, &types)];
        for row in 0..SAMPLE_GROUPS.len() {
            let cols: Vec<ArrayRef> = values.iter().map(|v| v.slice(row, 1)).collect();
            let part = &mut parts[(row * 7 / 3) % 2];
            upd(
                part.as_mut(),
                &cols,
                &SAMPLE_GROUPS[row..row + 1],
                None,
                3,
                row as u64,
            )?;
        }
        // Merge in both orders into fresh groups: the result must not depend
        // on which side is merged first.
        let [a, b] = parts;
        let mut merged = make(func, &types);
        for g in 0..3u32 {
            merged.merge(g, b.as_ref(), g)?;
            merged.merge(g, a.as_ref(), g)?;
        }
        // A group absent from both sides stays empty.
        merged.merge(3, a.as_ref(), 3)?;
        assert_eq!(merged.num_groups(), 4);
        assert_same_result(
            func,
            &eval_all(merged.as_ref(), 4)?,
            &eval_all(whole.as_ref(), 4)?,
        );

        let mut merged = make(func, &types);
        for g in 0..3u32 {
            merged.merge(g, a.as_ref(), g)?;
            merged.merge(g, b.as_ref(), g)?;
        }
        merged.merge(3, b.as_ref(), 3)?;
        assert_same_result(
            func,
            &eval_all(merged.as_ref(), 4)?,
            &eval_all(whole.as_ref(), 4)?,
        );
    }
    Ok(())
}

#[test]
fn merge_first_last_and_distinct_hand_checked() -> Result<()> {
    // FIRST/LAST: the earlier partial holds seqs 10 and 30, the later one 20
    // and 40 (interleaved).
    let a: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let b: ArrayRef = Arc::new(Int64Array::from(vec![2]));
    let c: ArrayRef = Arc::new(Int64Array::from(vec![3]));
    let d: ArrayRef = Arc::new(Int64Array::from(vec![4]));
    for (func, want) in [(F::FirstValue, 1), (F::LastValue, 4)] {
        let mut p = make(func, &[DataType::Int64]);
        let mut q = make(func, &[DataType::Int64]);
        upd(p.as_mut(), std::slice::from_ref(&a), &[0], None, 1, 10)?;
        upd(q.as_mut(), std::slice::from_ref(&b), &[0], None, 1, 20)?;
        upd(p.as_mut(), std::slice::from_ref(&c), &[0], None, 1, 30)?;
        upd(q.as_mut(), std::slice::from_ref(&d), &[0], None, 1, 40)?;
        let mut m1 = make(func, &[DataType::Int64]);
        m1.merge(5, q.as_ref(), 0)?;
        m1.merge(5, p.as_ref(), 0)?;
        assert_eq!(i64s(&m1.evaluate(&[5])?), vec![Some(want)], "{func:?}");
        p.merge(0, q.as_ref(), 0)?;
        assert_eq!(i64s(&p.evaluate(&[0])?), vec![Some(want)], "{func:?}");
    }

    // COUNT DISTINCT with overlapping sets {x, y} and {y, z}.
    let l: ArrayRef = Arc::new(StringArray::from(vec!["x", "y"]));
    let r: ArrayRef = Arc::new(StringArray::from(vec!["y", "z", "z"]));
    let mut p = make(F::CountDistinct, &[DataType::Utf8]);
    let mut q = make(F::CountDistinct, &[DataType::Utf8]);
    upd(p.as_mut(), &[l], &[0, 0], None, 1, 0)?;
    upd(q.as_mut(), &[r], &[0, 0, 0], None, 1, 0)?;
    p.merge(0, q.as_ref(), 0)?;
    assert_eq!(i64s(&p.evaluate(&[0])?), vec![Some(3)]);
    Ok(())
}

#[test]
fn merge_rejects_a_different_accumulator() {
    let min = make(F::Min, &[DataType::Int64]);
    let mut max = make(F::Max, &[DataType::Int64]);
    assert!(matches!(
        max.merge(0, min.as_ref(), 0),
        Err(EngineError::Internal(_))
    ));
    let sum32 = make(F::Sum, &[DataType::Int32]);
    let mut sum64 = make(F::Sum, &[DataType::Int64]);
    assert!(matches!(
        sum64.merge(0, sum32.as_ref(), 0),
        Err(EngineError::Internal(_))
    ));
}

#[test]
fn reset_empties_a_group_for_every_function() -> Result<()> {
    for func in ALL {
        let (types, values) = sample(func);
        let mut acc = make(func, &types);
        upd(acc.as_mut(), &values, &SAMPLE_GROUPS, None, 4, 0)?;
        let before = eval_all(acc.as_ref(), 4)?;
        acc.reset(1);
        acc.reset(99); // out of range: a no-op
        let after = eval_all(acc.as_ref(), 4)?;
        let empty = acc.evaluate(&[3])?; // group 3 never had a row
        assert_eq!(after.slice(1, 1).as_ref(), empty.as_ref(), "{func:?}");
        assert_eq!(after.slice(0, 1).as_ref(), before.slice(0, 1).as_ref());
        assert_eq!(after.slice(2, 1).as_ref(), before.slice(2, 1).as_ref());

        // The reused group behaves like a new one.
        let mut fresh = make(func, &types);
        let rows: Vec<u32> = SAMPLE_GROUPS.iter().map(|&g| u32::from(g != 1)).collect();
        upd(acc.as_mut(), &values, &rows, None, 4, 100)?;
        upd(fresh.as_mut(), &values, &rows, None, 2, 100)?;
        let reused = acc.evaluate(&[1])?;
        let want = fresh.evaluate(&[1])?;
        assert_same_result(func, &reused, &want);
    }
    Ok(())
}

#[test]
fn empty_groups_are_null_or_zero() -> Result<()> {
    for func in ALL {
        let (types, _) = sample(func);
        let acc = make(func, &types);
        // Groups never allocated evaluate as empty, too.
        let out = acc.evaluate(&[0, 7])?;
        assert_eq!(out.len(), 2);
        assert_eq!(out.data_type(), &func.return_type(&types)?);
        if matches!(func, F::Count | F::CountDistinct) {
            assert_eq!(i64s(&out), vec![Some(0), Some(0)]);
        } else {
            assert_eq!(out.null_count(), 2, "{func:?}");
        }
    }
    Ok(())
}

/// Accumulators for the save/load tests, beyond `sample`'s: the typed paths
/// of MIN/MAX/FIRST/LAST and the row-format fallback.
fn save_load_cases() -> Vec<(AggregateFunction, Vec<DataType>, Vec<ArrayRef>)> {
    let mut cases: Vec<_> = ALL
        .iter()
        .map(|&f| {
            let (t, v) = sample(f);
            (f, t, v)
        })
        .collect();
    let ints = sample(F::Sum).1.remove(0);
    let strings = sample(F::Max).1.remove(0);
    let bools: ArrayRef = Arc::new(BooleanArray::from(
        (0..12)
            .map(|i| (i % 5 != 0).then_some(i % 3 == 0))
            .collect::<Vec<_>>(),
    ));
    let floats: ArrayRef = Arc::new(Float64Array::from(
        (0..12)
            .map(|i| (i % 4 != 1).then_some(i as f64 * 0.5 - 2.0))
            .collect::<Vec<_>>(),
    ));
    let views = arrow::compute::cast(&strings, &DataType::Utf8View).expect("cast");
    for f in [F::Min, F::Max, F::FirstValue, F::LastValue] {
        cases.push((f, vec![DataType::Int64], vec![ints.clone()]));
        cases.push((f, vec![DataType::Utf8], vec![strings.clone()]));
        cases.push((f, vec![DataType::Boolean], vec![bools.clone()]));
        cases.push((f, vec![DataType::Utf8View], vec![views.clone()]));
    }
    cases.push((F::Sum, vec![DataType::Float64], vec![floats.clone()]));
    cases.push((F::Avg, vec![DataType::Float64], vec![floats]));
    cases.push((F::CountDistinct, vec![DataType::Int64], vec![ints.clone()]));
    cases.push((F::Count, vec![DataType::Int64], vec![ints]));
    let decimals: ArrayRef = Arc::new(
        arrow::array::Decimal128Array::from(
            (0..12)
                .map(|i| (i % 4 != 2).then_some(i128::from(i) * 125 - 700))
                .collect::<Vec<_>>(),
        )
        .with_precision_and_scale(10, 2)
        .expect("DECIMAL(10, 2)"),
    );
    for f in [F::Sum, F::Avg, F::Min, F::Max] {
        cases.push((f, vec![DataType::Decimal128(10, 2)], vec![decimals.clone()]));
    }
    cases
}

#[test]
fn decimal_sum_and_avg_are_exact() -> Result<()> {
    let t = DataType::Decimal128(10, 2);
    // Group 0: 0.10 + 0.20 + 0.01 = 0.31, avg 0.103333 (0.1033333...);
    // group 1: -0.05 and -0.10, avg -0.075000; group 2: empty.
    let v: ArrayRef = Arc::new(
        arrow::array::Decimal128Array::from(vec![
            Some(10),
            Some(20),
            Some(-5),
            Some(1),
            Some(-10),
            None,
        ])
        .with_precision_and_scale(10, 2)?,
    );
    let groups = [0, 0, 1, 0, 1, 2];
    let mut sum = make(F::Sum, std::slice::from_ref(&t));
    upd(sum.as_mut(), std::slice::from_ref(&v), &groups, None, 3, 0)?;
    let got = sum.evaluate(&[0, 1, 2])?;
    assert_eq!(got.data_type(), &DataType::Decimal128(38, 2));
    let got = got.as_primitive::<arrow::datatypes::Decimal128Type>();
    assert_eq!(
        got.iter().collect::<Vec<_>>(),
        vec![Some(31), Some(-15), None]
    );
    let mut avg = make(F::Avg, std::slice::from_ref(&t));
    upd(avg.as_mut(), std::slice::from_ref(&v), &groups, None, 3, 0)?;
    let got = avg.evaluate(&[0, 1, 2])?;
    assert_eq!(got.data_type(), &DataType::Decimal128(38, 6));
    let got = got.as_primitive::<arrow::datatypes::Decimal128Type>();
    assert_eq!(
        got.iter().collect::<Vec<_>>(),
        vec![Some(103_333), Some(-75_000), None]
    );
    // Past 38 digits: an error, not a wrong sum.
    let big: ArrayRef = Arc::new(
        arrow::array::Decimal128Array::from(vec![10i128.pow(37) * 9, 10i128.pow(37) * 9])
            .with_precision_and_scale(38, 0)?,
    );
    let mut sum = make(F::Sum, &[DataType::Decimal128(38, 0)]);
    let err = upd(sum.as_mut(), &[big], &[0, 0], None, 1, 0);
    assert!(matches!(err, Err(EngineError::Execution(_))), "{err:?}");
    Ok(())
}

#[test]
fn save_load_round_trip_for_every_function() -> Result<()> {
    for (func, types, values) in save_load_cases() {
        let mut acc = make(func, &types);
        upd(acc.as_mut(), &values, &SAMPLE_GROUPS, None, 4, 1000)?;
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for g in 0..4 {
            acc.save(g, &mut bytes)?;
            ends.push(bytes.len());
        }
        // Load the concatenation into other group indices of a fresh accumulator.
        let mut restored = make(func, &types);
        let mut pos = 0;
        for (g, end) in ends.iter().enumerate() {
            let used = restored.load(10 + g as u32, &bytes[pos..])?;
            pos += used;
            assert_eq!(pos, *end, "{func:?} {types:?}");
        }
        assert_eq!(restored.num_groups(), 14);
        let got = restored.evaluate(&[10, 11, 12, 13])?;
        let want = eval_all(acc.as_ref(), 4)?;
        assert_eq!(&got, &want, "{func:?} {types:?}");

        // The restored state keeps accumulating like the original (FIRST/LAST
        // keep their sequence numbers).
        let late: Vec<u32> = SAMPLE_GROUPS.iter().map(|&g| g + 10).collect();
        upd(restored.as_mut(), &values, &late, None, 14, 0)?;
        upd(acc.as_mut(), &values, &SAMPLE_GROUPS, None, 4, 0)?;
        assert_same_result(
            func,
            &restored.evaluate(&[10, 11, 12, 13])?,
            &eval_all(acc.as_ref(), 4)?,
        );

        // Loading over a non-empty group replaces it.
        let mut empty = Vec::new();
        acc.save(3, &mut empty)?;
        restored.load(10, &empty)?;
        assert_eq!(
            restored.evaluate(&[10])?.as_ref(),
            acc.evaluate(&[3])?.as_ref()
        );
    }
    Ok(())
}

#[test]
fn corrupt_state_is_an_error() -> Result<()> {
    for (func, types, values) in save_load_cases() {
        let mut acc = make(func, &types);
        upd(acc.as_mut(), &values, &SAMPLE_GROUPS, None, 4, 0)?;
        let mut bytes = Vec::new();
        acc.save(0, &mut bytes)?;
        let mut target = make(func, &types);
        // Every proper prefix is truncated.
        for len in 0..bytes.len() {
            assert!(
                target.load(0, &bytes[..len]).is_err(),
                "{func:?} {types:?} prefix {len}"
            );
        }
        // A wrong tag byte.
        let mut wrong = bytes.clone();
        wrong[0] ^= 0xFF;
        assert!(target.load(0, &wrong).is_err());
        // Flipping any single byte never panics (it may still decode, and
        // a DECIMAL average of what it decodes to may overflow: an error).
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x5A;
            let _ = target.load(0, &flipped);
            let _ = target.evaluate(&[0]);
        }
    }
    // A state of a different function is rejected.
    let mut bytes = Vec::new();
    make(F::Sum, &[DataType::Int64]).save(0, &mut bytes)?;
    assert!(make(F::Avg, &[DataType::Int64]).load(0, &bytes).is_err());
    assert!(make(F::Min, &[DataType::Int64]).load(0, &bytes).is_err());

    // Invalid UTF-8 in a saved string.
    let mut max = make(F::Max, &[DataType::Utf8]);
    let s: ArrayRef = Arc::new(StringArray::from(vec!["ok"]));
    upd(max.as_mut(), &[s], &[0], None, 1, 0)?;
    let mut bytes = Vec::new();
    max.save(0, &mut bytes)?;
    let n = bytes.len();
    bytes[n - 2] = 0xFF;
    assert!(make(F::Max, &[DataType::Utf8]).load(0, &bytes).is_err());

    // A count of distinct values larger than the input could hold.
    let mut bytes = vec![codec::tag::COUNT_DISTINCT];
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(make(F::CountDistinct, &[DataType::Utf8])
        .load(0, &bytes)
        .is_err());
    Ok(())
}

#[test]
fn bad_update_arguments_are_internal_errors() {
    let mut sum = make(F::Sum, &[DataType::Int64]);
    let strings: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
    let one: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let internal = |r: Result<()>| matches!(r, Err(EngineError::Internal(_)));
    assert!(internal(upd(
        sum.as_mut(),
        std::slice::from_ref(&strings),
        &[0],
        None,
        1,
        0
    )));
    // Group index not below total_groups.
    assert!(internal(upd(
        sum.as_mut(),
        std::slice::from_ref(&one),
        &[1],
        None,
        1,
        0
    )));
    // Length mismatches.
    assert!(internal(upd(
        sum.as_mut(),
        std::slice::from_ref(&one),
        &[0, 0],
        None,
        1,
        0
    )));
    let f = BooleanArray::from(vec![true, false]);
    assert!(internal(upd(
        sum.as_mut(),
        std::slice::from_ref(&one),
        &[0],
        Some(&f),
        1,
        0
    )));
    // Wrong number of arguments.
    assert!(internal(upd(sum.as_mut(), &[], &[0], None, 1, 0)));
    let mut min = make(F::Min, &[DataType::Utf8View]);
    assert!(internal(upd(
        min.as_mut(),
        std::slice::from_ref(&strings),
        &[0],
        None,
        1,
        0
    )));
    let mut cd = make(F::CountDistinct, &[DataType::Int64]);
    assert!(internal(upd(cd.as_mut(), &[strings], &[0], None, 1, 0)));
}

#[test]
fn size_bytes_grows_with_state() -> Result<()> {
    let mut cd = make(F::CountDistinct, &[DataType::Int64]);
    let before = cd.size_bytes();
    let many: ArrayRef = Arc::new(Int64Array::from((0..1000).collect::<Vec<i64>>()));
    upd(cd.as_mut(), &[many], &[0; 1000], None, 1, 0)?;
    assert!(cd.size_bytes() > before + 1000 * 8);
    cd.reset(0);
    assert!(cd.size_bytes() < before + 1000);

    let mut max = make(F::Max, &[DataType::Utf8]);
    let long: ArrayRef = Arc::new(StringArray::from(vec!["x".repeat(5000)]));
    upd(max.as_mut(), &[long], &[0], None, 1, 0)?;
    assert!(max.size_bytes() >= 5000);
    Ok(())
}

// ---------------------------------------------------------------------------
// Property tests against naive per-group loops

#[derive(Debug, Clone)]
struct Batch {
    groups: Vec<u32>,
    values: Vec<Option<i64>>,
    filter: Option<Vec<Option<bool>>>,
}

fn batch() -> impl Strategy<Value = Batch> {
    (1usize..60).prop_flat_map(|n| {
        (
            proptest::collection::vec(0u32..6, n),
            proptest::collection::vec(proptest::option::weighted(0.8, -1000i64..1000), n),
            proptest::option::of(proptest::collection::vec(
                proptest::option::weighted(0.9, any::<bool>()),
                n,
            )),
        )
            .prop_map(|(groups, values, filter)| Batch {
                groups,
                values,
                filter,
            })
    })
}

/// The (value, sequence) pairs each group receives, by a plain loop.
fn naive_rows(b: &Batch) -> Vec<Vec<(i64, u64)>> {
    let mut per = vec![Vec::new(); 6];
    for (i, (&g, v)) in b.groups.iter().zip(&b.values).enumerate() {
        let passes = b.filter.as_ref().is_none_or(|f| f[i] == Some(true));
        if let (true, Some(v)) = (passes, v) {
            per[g as usize].push((*v, i as u64));
        }
    }
    per
}

fn naive(func: AggregateFunction, rows: &[(i64, u64)]) -> Option<f64> {
    let xs: Vec<f64> = rows.iter().map(|r| r.0 as f64).collect();
    let n = xs.len();
    let var = |div: usize| {
        let (m2, _) = two_pass(&xs);
        m2 / div as f64
    };
    match func {
        F::Count => Some(n as f64),
        F::CountDistinct => {
            let mut d: Vec<i64> = rows.iter().map(|r| r.0).collect();
            d.sort_unstable();
            d.dedup();
            Some(d.len() as f64)
        }
        F::Sum => (n > 0).then(|| xs.iter().sum()),
        // Integer arguments: the exact sum divided by the count, truncated.
        F::Avg => {
            (n > 0).then(|| (rows.iter().map(|r| i128::from(r.0)).sum::<i128>() / n as i128) as f64)
        }
        F::Min => rows.iter().map(|r| r.0).min().map(|v| v as f64),
        F::Max => rows.iter().map(|r| r.0).max().map(|v| v as f64),
        F::FirstValue => rows.first().map(|r| r.0 as f64),
        F::LastValue => rows.last().map(|r| r.0 as f64),
        F::VarPop => (n > 0).then(|| var(n)),
        F::VarSamp => (n > 1).then(|| var(n - 1)),
        F::StddevPop => (n > 0).then(|| var(n).sqrt()),
        F::StddevSamp => (n > 1).then(|| var(n - 1).sqrt()),
    }
}

fn as_f64s(a: &ArrayRef) -> Vec<Option<f64>> {
    match a.data_type() {
        DataType::Int64 => i64s(a).into_iter().map(|v| v.map(|v| v as f64)).collect(),
        _ => f64s(a),
    }
}

fn feed(acc: &mut dyn GroupsAccumulator, b: &Batch, func: AggregateFunction) -> Result<()> {
    let values: ArrayRef = Arc::new(Int64Array::from(b.values.clone()));
    let filter = b.filter.as_ref().map(|f| BooleanArray::from(f.clone()));
    let _ = func;
    upd(acc, &[values], &b.groups, filter.as_ref(), 6, 0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_function_matches_a_naive_loop(b in batch()) {
        let per = naive_rows(&b);
        for func in ALL {
            let mut acc = make(func, &[DataType::Int64]);
            feed(acc.as_mut(), &b, func).expect("update");
            let got = as_f64s(&acc.evaluate(&[0, 1, 2, 3, 4, 5]).expect("evaluate"));
            let want: Vec<Option<f64>> = per.iter().map(|rows| naive(func, rows)).collect();
            for (g, (x, y)) in got.iter().zip(&want).enumerate() {
                prop_assert!(close(*x, *y), "{:?} group {}: got {:?} want {:?}", func, g, x, y);
            }
        }
    }

    #[test]
    fn split_and_merge_matches_whole(b in batch(), cut in 0usize..60) {
        let cut = cut.min(b.groups.len());
        for func in ALL {
            let mut whole = make(func, &[DataType::Int64]);
            feed(whole.as_mut(), &b, func).expect("update");
            // Split rows at `cut` into two accumulators with the right sequences.
            let values: ArrayRef = Arc::new(Int64Array::from(b.values.clone()));
            let filter = b.filter.as_ref().map(|f| BooleanArray::from(f.clone()));
            let mut left = make(func, &[DataType::Int64]);
            let mut right = make(func, &[DataType::Int64]);
            let fl = filter.as_ref().map(|f| f.slice(0, cut));
            let fr = filter.as_ref().map(|f| f.slice(cut, b.groups.len() - cut));
            upd(left.as_mut(), &[values.slice(0, cut)], &b.groups[..cut], fl.as_ref(), 6, 0)
                .expect("left");
            upd(right.as_mut(), &[values.slice(cut, b.groups.len() - cut)], &b.groups[cut..],
                fr.as_ref(), 6, cut as u64).expect("right");
            // Merge right first, then left, into group g + 1 of a fresh one.
            let mut merged = make(func, &[DataType::Int64]);
            for g in 0..6u32 {
                merged.merge(g + 1, right.as_ref(), g).expect("merge");
                merged.merge(g + 1, left.as_ref(), g).expect("merge");
            }
            let got = as_f64s(&merged.evaluate(&[1, 2, 3, 4, 5, 6]).expect("evaluate"));
            let want = as_f64s(&whole.evaluate(&[0, 1, 2, 3, 4, 5]).expect("evaluate"));
            for (x, y) in got.iter().zip(&want) {
                prop_assert!(close(*x, *y), "{:?}: got {:?} want {:?}", func, got, want);
            }
        }
    }

    #[test]
    fn load_of_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                         first in 0xA0u8..0xAC) {
        let mut input = vec![first];
        input.extend_from_slice(&bytes);
        for (func, types, _) in save_load_cases() {
            let mut acc = make(func, &types);
            if acc.load(0, &input).is_ok() {
                let _ = acc.evaluate(&[0]);
            }
        }
    }
}
