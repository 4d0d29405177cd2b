//! EXTRACT, DATE_TRUNC and DATE_FORMAT on millisecond timestamps.
//!
//! Timestamps are read as UTC wall-clock time (Flink's `TIMESTAMP(3)` has no
//! zone); a zone on the Arrow type is kept on the output but not applied.

use std::sync::Arc;

use arrow::array::StringBuilder;
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use chrono::format::Item;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};

use super::kernels::cast_strict;
use super::TimeUnitField;
use crate::error::Result;
use crate::{exec_err, plan_err};

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// True for types EXTRACT and DATE_TRUNC accept.
pub(crate) fn is_temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Null
    )
}

/// The output type of DATE_TRUNC on `input`.
pub(crate) fn date_trunc_type(field: TimeUnitField, input: &DataType) -> Result<DataType> {
    if matches!(
        field,
        TimeUnitField::DayOfWeek | TimeUnitField::DayOfYear | TimeUnitField::Epoch
    ) {
        plan_err!("DATE_TRUNC does not support the unit {field:?}");
    }
    if !is_temporal(input) {
        plan_err!("DATE_TRUNC expects a timestamp or date, got {input}");
    }
    Ok(match input {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        _ => DataType::Timestamp(TimeUnit::Millisecond, None),
    })
}

/// Reads any temporal array as milliseconds since the epoch.
fn as_millis(input: &ArrayRef) -> Result<ArrayRef> {
    let target = match input.data_type() {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        _ => DataType::Timestamp(TimeUnit::Millisecond, None),
    };
    cast_strict(input, &target)
}

fn to_datetime(ms: i64) -> Result<NaiveDateTime> {
    match DateTime::from_timestamp_millis(ms) {
        Some(dt) => Ok(dt.naive_utc()),
        None => exec_err!("timestamp {ms} ms is out of the supported range"),
    }
}

/// Formats each timestamp of `input` with the chrono items `items_at(row)`
/// gives for its row; NULL where either is NULL.
pub(crate) fn format_timestamps<'a>(
    input: &ArrayRef,
    items_at: impl Fn(usize) -> Option<&'a [Item<'static>]>,
) -> Result<ArrayRef> {
    use std::fmt::Write;
    let ms = as_millis(input)?;
    let ms = ms.as_primitive::<TimestampMillisecondType>();
    let mut b = StringBuilder::with_capacity(ms.len(), ms.len() * 16);
    let mut buf = String::new();
    for i in 0..ms.len() {
        let items = match items_at(i) {
            Some(items) if !ms.is_null(i) => items,
            _ => {
                b.append_null();
                continue;
            }
        };
        let dt = to_datetime(ms.value(i))?;
        buf.clear();
        if write!(buf, "{}", dt.format_with_items(items.iter())).is_err() {
            exec_err!("cannot format timestamp {} ms", ms.value(i));
        }
        b.append_value(&buf);
    }
    Ok(Arc::new(b.finish()))
}

/// `EXTRACT(field FROM ts)` as BIGINT.
///
/// `MILLISECOND` is the milliseconds within the minute (seconds × 1000 plus
/// the fraction), as Calcite and PostgreSQL define it; `DOW` counts Sunday
/// as 1 through Saturday as 7 (Flink); `WEEK` is the ISO week; `EPOCH` is
/// whole seconds since 1970, rounded down.
pub(crate) fn extract(field: TimeUnitField, input: &ArrayRef) -> Result<ArrayRef> {
    let ms = as_millis(input)?;
    let ms = ms.as_primitive::<TimestampMillisecondType>();
    let mut out = Vec::with_capacity(ms.len());
    for i in 0..ms.len() {
        if ms.is_null(i) {
            out.push(None);
            continue;
        }
        let v = ms.value(i);
        let r = match field {
            TimeUnitField::Epoch => v.div_euclid(MS_PER_SECOND),
            TimeUnitField::Millisecond => v.rem_euclid(MS_PER_MINUTE),
            _ => {
                let dt = to_datetime(v)?;
                i64::from(match field {
                    TimeUnitField::Year => dt.year(),
                    TimeUnitField::Quarter => (dt.month0() / 3 + 1) as i32,
                    TimeUnitField::Month => dt.month() as i32,
                    TimeUnitField::Week => dt.iso_week().week() as i32,
                    TimeUnitField::Day => dt.day() as i32,
                    TimeUnitField::Hour => dt.hour() as i32,
                    TimeUnitField::Minute => dt.minute() as i32,
                    TimeUnitField::Second => dt.second() as i32,
                    TimeUnitField::DayOfWeek => dt.weekday().number_from_sunday() as i32,
                    TimeUnitField::DayOfYear => dt.ordinal() as i32,
                    TimeUnitField::Epoch | TimeUnitField::Millisecond => 0,
                })
            }
        };
        out.push(Some(r));
    }
    Ok(Arc::new(Int64Array::from(out)))
}

/// Rounds `v` down to a multiple of `unit`, also for times before 1970.
fn floor_to(v: i64, unit: i64) -> Result<i64> {
    match v.checked_sub(v.rem_euclid(unit)) {
        Some(r) => Ok(r),
        None => exec_err!("timestamp {v} ms is out of the supported range"),
    }
}

fn start_of_month(year: i32, month: u32) -> Result<i64> {
    match NaiveDate::from_ymd_opt(year, month, 1).and_then(|d| d.and_hms_opt(0, 0, 0)) {
        Some(dt) => Ok(dt.and_utc().timestamp_millis()),
        None => exec_err!("date {year}-{month}-01 is out of the supported range"),
    }
}

fn trunc_one(field: TimeUnitField, v: i64) -> Result<i64> {
    match field {
        TimeUnitField::Millisecond => Ok(v),
        TimeUnitField::Second => floor_to(v, MS_PER_SECOND),
        TimeUnitField::Minute => floor_to(v, MS_PER_MINUTE),
        TimeUnitField::Hour => floor_to(v, MS_PER_HOUR),
        TimeUnitField::Day => floor_to(v, MS_PER_DAY),
        TimeUnitField::Week => {
            // ISO weeks start on Monday; 1970-01-01 was a Thursday.
            let day = floor_to(v, MS_PER_DAY)?;
            let days_since_monday = (day.div_euclid(MS_PER_DAY) + 3).rem_euclid(7);
            match day.checked_sub(days_since_monday * MS_PER_DAY) {
                Some(r) => Ok(r),
                None => exec_err!("timestamp {v} ms is out of the supported range"),
            }
        }
        TimeUnitField::Month => {
            let dt = to_datetime(v)?;
            start_of_month(dt.year(), dt.month())
        }
        TimeUnitField::Quarter => {
            let dt = to_datetime(v)?;
            start_of_month(dt.year(), dt.month0() / 3 * 3 + 1)
        }
        TimeUnitField::Year => {
            let dt = to_datetime(v)?;
            start_of_month(dt.year(), 1)
        }
        TimeUnitField::DayOfWeek | TimeUnitField::DayOfYear | TimeUnitField::Epoch => {
            plan_err!("DATE_TRUNC does not support the unit {field:?}")
        }
    }
}

/// `DATE_TRUNC(field, ts)`: the start of the period containing `ts`.
pub(crate) fn date_trunc(field: TimeUnitField, input: &ArrayRef) -> Result<ArrayRef> {
    let out_type = date_trunc_type(field, input.data_type())?;
    let ms = as_millis(input)?;
    let ms = ms.as_primitive::<TimestampMillisecondType>();
    let mut out = Vec::with_capacity(ms.len());
    for i in 0..ms.len() {
        out.push(if ms.is_null(i) {
            None
        } else {
            Some(trunc_one(field, ms.value(i))?)
        });
    }
    let arr = TimestampMillisecondArray::from(out);
    let arr = match out_type {
        DataType::Timestamp(_, Some(tz)) => arr.with_timezone(tz),
        _ => arr,
    };
    Ok(Arc::new(arr))
}
