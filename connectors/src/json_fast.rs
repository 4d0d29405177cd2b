//! A one-pass decoder of JSON lines into Arrow columns, for flat tables.
//!
//! arrow-json's decoder first builds a tape of every token of the input,
//! then walks it column by column; and the JSON-lines rule (one object per
//! line) needs a pass of its own on top. For the common case (a table of
//! numbers, booleans, strings and timestamps, whose records are flat
//! objects with plain values) this decoder does all of it in one pass
//! over the bytes: it reads each line as one object and appends each value
//! straight to its column's builder.
//!
//! It decides nothing arrow-json would decide differently. Whatever it is
//! not certain of (an escaped string, a nested value, a number where a
//! string is expected, a timestamp that is not `YYYY-MM-DD[T ]hh:mm:ss
//! [.fffffffff]`, a NUL or other control byte, invalid UTF-8, a key seen
//! twice, a line that is not exactly one object) makes it give up on the
//! whole run of records, and the caller decodes them with arrow-json and
//! its checks as before. So on the inputs it accepts it produces what
//! arrow-json produces (tests compare the two), and everything else keeps
//! arrow-json's behaviour and error messages.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, Int8Builder, PrimitiveBuilder, RecordBatch, StringArray,
};
use arrow::datatypes::{
    DataType, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};

/// The column types this decoder handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    Utf8,
    Timestamp(TimeUnit),
}

impl Kind {
    fn of(t: &DataType) -> Option<Self> {
        Some(match t {
            DataType::Int8 => Kind::Int8,
            DataType::Int16 => Kind::Int16,
            DataType::Int32 => Kind::Int32,
            DataType::Int64 => Kind::Int64,
            DataType::Float32 => Kind::Float32,
            DataType::Float64 => Kind::Float64,
            DataType::Boolean => Kind::Boolean,
            DataType::Utf8 => Kind::Utf8,
            DataType::Timestamp(unit, None) => Kind::Timestamp(*unit),
            _ => return None,
        })
    }
}

/// A column being built.
enum Column {
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    /// Strings are gathered as bytes and checked for UTF-8 once, as one
    /// buffer, when the column is finished.
    Utf8(BinaryBuilder),
    Seconds(PrimitiveBuilder<TimestampSecondType>),
    Millis(PrimitiveBuilder<TimestampMillisecondType>),
    Micros(PrimitiveBuilder<TimestampMicrosecondType>),
    Nanos(PrimitiveBuilder<TimestampNanosecondType>),
}

impl Column {
    fn new(kind: Kind, rows: usize) -> Self {
        match kind {
            Kind::Int8 => Column::Int8(Int8Builder::with_capacity(rows)),
            Kind::Int16 => Column::Int16(Int16Builder::with_capacity(rows)),
            Kind::Int32 => Column::Int32(Int32Builder::with_capacity(rows)),
            Kind::Int64 => Column::Int64(Int64Builder::with_capacity(rows)),
            Kind::Float32 => Column::Float32(Float32Builder::with_capacity(rows)),
            Kind::Float64 => Column::Float64(Float64Builder::with_capacity(rows)),
            Kind::Boolean => Column::Boolean(BooleanBuilder::with_capacity(rows)),
            Kind::Utf8 => Column::Utf8(BinaryBuilder::with_capacity(rows, rows * 16)),
            Kind::Timestamp(TimeUnit::Second) => Column::Seconds(PrimitiveBuilder::new()),
            Kind::Timestamp(TimeUnit::Millisecond) => Column::Millis(PrimitiveBuilder::new()),
            Kind::Timestamp(TimeUnit::Microsecond) => Column::Micros(PrimitiveBuilder::new()),
            Kind::Timestamp(TimeUnit::Nanosecond) => Column::Nanos(PrimitiveBuilder::new()),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Int8(b) => b.append_null(),
            Column::Int16(b) => b.append_null(),
            Column::Int32(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::Float32(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::Boolean(b) => b.append_null(),
            Column::Utf8(b) => b.append_null(),
            Column::Seconds(b) => b.append_null(),
            Column::Millis(b) => b.append_null(),
            Column::Micros(b) => b.append_null(),
            Column::Nanos(b) => b.append_null(),
        }
    }

    /// The finished column; `None` when a string column is not UTF-8.
    fn finish(self) -> Option<ArrayRef> {
        Some(match self {
            Column::Int8(mut b) => Arc::new(b.finish()),
            Column::Int16(mut b) => Arc::new(b.finish()),
            Column::Int32(mut b) => Arc::new(b.finish()),
            Column::Int64(mut b) => Arc::new(b.finish()),
            Column::Float32(mut b) => Arc::new(b.finish()),
            Column::Float64(mut b) => Arc::new(b.finish()),
            Column::Boolean(mut b) => Arc::new(b.finish()),
            Column::Utf8(mut b) => Arc::new(StringArray::try_from_binary(b.finish()).ok()?),
            Column::Seconds(mut b) => Arc::new(b.finish()),
            Column::Millis(mut b) => Arc::new(b.finish()),
            Column::Micros(mut b) => Arc::new(b.finish()),
            Column::Nanos(mut b) => Arc::new(b.finish()),
        })
    }
}

/// The decoder for one table's schema; `None` from [`FastJson::new`] when
/// a column has a type it does not handle.
#[derive(Debug)]
pub(crate) struct FastJson {
    schema: SchemaRef,
    kinds: Vec<Kind>,
    names: Vec<Vec<u8>>,
    /// [`Key`] of each name (`None` for names longer than 16 bytes).
    keys: Vec<Option<Key>>,
}

/// A column name of up to 16 bytes as two words and masks, so that a key
/// in the input (of the name's length, checked first) is compared with two
/// loads rather than a call to memcmp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    words: [u64; 2],
    masks: [u64; 2],
}

impl Key {
    fn of(name: &[u8]) -> Option<Self> {
        if name.len() > 16 {
            return None;
        }
        let mut padded = [0u8; 16];
        padded[..name.len()].copy_from_slice(name);
        let mask = |bytes: usize| match bytes {
            0 => 0,
            8.. => u64::MAX,
            n => (1u64 << (8 * n)) - 1,
        };
        Some(Key {
            words: [word(&padded, 0), word(&padded, 8)],
            masks: [mask(name.len().min(8)), mask(name.len().saturating_sub(8))],
        })
    }
}

/// A word whose lowest set bit marks the first byte of `w` (little-endian)
/// that is a double quote, a backslash or below 0x20; zero when there is
/// none. (The classic "has a zero byte" trick: the lowest flag is exact,
/// flags above it may not be, and only the lowest is used.)
fn special_bytes(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    zero_in(w ^ (ONES * u64::from(b'"')))
        | zero_in(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
}

/// The 8 bytes at `at` (which the caller has checked exist) as a
/// little-endian word.
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(b) = bytes.get(at..at + 8) {
        w.copy_from_slice(b);
    }
    u64::from_le_bytes(w)
}

/// Giving up: the caller decodes with arrow-json instead.
struct GiveUp;

type Step<T> = std::result::Result<T, GiveUp>;

impl FastJson {
    /// A decoder for `schema`, when every column's type is one it handles.
    pub(crate) fn new(schema: &SchemaRef) -> Option<Self> {
        let kinds = schema
            .fields()
            .iter()
            .map(|f| Kind::of(f.data_type()))
            .collect::<Option<Vec<_>>>()?;
        let names: Vec<Vec<u8>> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_bytes().to_vec())
            .collect();
        Some(Self {
            schema: Arc::clone(schema),
            kinds,
            keys: names.iter().map(|n| Key::of(n)).collect(),
            names,
        })
    }

    /// Decodes `bytes`, JSON lines that should hold exactly `records`
    /// objects, into one batch; `None` when it cannot be sure of the
    /// result (see the module docs).
    pub(crate) fn decode(&self, bytes: &[u8], records: usize) -> Option<RecordBatch> {
        let mut columns: Vec<Column> = self
            .kinds
            .iter()
            .map(|k| Column::new(*k, records))
            .collect();
        // The row in which each column last got a value.
        let mut filled = vec![usize::MAX; columns.len()];
        let mut p = Parser {
            bytes,
            at: 0,
            last_date: None,
        };
        let mut row = 0usize;
        loop {
            p.skip_space();
            if p.at >= bytes.len() {
                break;
            }
            if p.peek() == Some(b'\n') {
                p.at += 1;
                continue;
            }
            if row == records {
                return None;
            }
            self.object(&mut p, &mut columns, &mut filled, row).ok()?;
            for (c, f) in columns.iter_mut().zip(&filled) {
                if *f != row {
                    c.append_null();
                }
            }
            p.skip_space();
            match p.peek() {
                Some(b'\n') => p.at += 1,
                None => {}
                Some(_) => return None,
            }
            row += 1;
        }
        if row != records {
            return None;
        }
        let arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(Column::finish)
            .collect::<Option<_>>()?;
        RecordBatch::try_new(Arc::clone(&self.schema), arrays).ok()
    }

    /// The column whose name is the `len` bytes at `start` of `bytes`,
    /// trying `guess` first.
    fn column_of(&self, bytes: &[u8], start: usize, len: usize, guess: usize) -> Option<usize> {
        if guess < self.names.len() && self.is_column(guess, bytes, start, len) {
            return Some(guess);
        }
        (0..self.names.len()).find(|&c| self.is_column(c, bytes, start, len))
    }

    /// True when the `len` bytes at `start` of `bytes` are column `c`'s
    /// name.
    #[inline]
    fn is_column(&self, c: usize, bytes: &[u8], start: usize, len: usize) -> bool {
        let name = &self.names[c];
        if name.len() != len {
            return false;
        }
        match self.keys[c] {
            Some(k) if start + 16 <= bytes.len() => {
                word(bytes, start) & k.masks[0] == k.words[0]
                    && word(bytes, start + 8) & k.masks[1] == k.words[1]
            }
            _ => bytes.get(start..start + len) == Some(&name[..]),
        }
    }

    /// One object: its known keys' values go to their columns.
    fn object(
        &self,
        p: &mut Parser<'_>,
        columns: &mut [Column],
        filled: &mut [usize],
        row: usize,
    ) -> Step<()> {
        p.expect(b'{')?;
        p.skip_space();
        if p.peek() == Some(b'}') {
            p.at += 1;
            return Ok(());
        }
        // Records usually list the columns in the table's order.
        let mut guess = 0usize;
        loop {
            p.skip_space();
            let start = p.at + 1;
            let len = p.checked_string()?.len();
            p.skip_space();
            p.expect(b':')?;
            p.skip_space();
            let column = self.column_of(p.bytes, start, len, guess);
            match column {
                Some(c) => {
                    if filled[c] == row {
                        return Err(GiveUp);
                    }
                    filled[c] = row;
                    value(p, &mut columns[c])?;
                    guess = c + 1;
                }
                None => p.skip_scalar()?,
            }
            p.skip_space();
            match p.next()? {
                b',' => continue,
                b'}' => return Ok(()),
                _ => return Err(GiveUp),
            }
        }
    }
}

/// Reads one value into `column`.
fn value(p: &mut Parser<'_>, column: &mut Column) -> Step<()> {
    if p.bytes[p.at..].starts_with(b"null") {
        p.at += 4;
        column.append_null();
        return Ok(());
    }
    match column {
        Column::Int8(b) => b.append_value(i8::try_from(p.integer()?).map_err(|_| GiveUp)?),
        Column::Int16(b) => b.append_value(i16::try_from(p.integer()?).map_err(|_| GiveUp)?),
        Column::Int32(b) => b.append_value(i32::try_from(p.integer()?).map_err(|_| GiveUp)?),
        Column::Int64(b) => b.append_value(p.integer()?),
        Column::Float32(b) => b.append_value(p.number()?.parse::<f32>().map_err(|_| GiveUp)?),
        Column::Float64(b) => b.append_value(p.double()?),
        Column::Boolean(b) => {
            if p.bytes[p.at..].starts_with(b"true") {
                p.at += 4;
                b.append_value(true);
            } else if p.bytes[p.at..].starts_with(b"false") {
                p.at += 5;
                b.append_value(false);
            } else {
                return Err(GiveUp);
            }
        }
        Column::Utf8(b) => b.append_value(p.plain_string()?),
        Column::Seconds(b) => b.append_value(p.timestamp()?.div_euclid(1_000_000_000)),
        Column::Millis(b) => b.append_value(p.timestamp()?.div_euclid(1_000_000)),
        Column::Micros(b) => b.append_value(p.timestamp()?.div_euclid(1_000)),
        Column::Nanos(b) => b.append_value(p.timestamp()?),
    }
    Ok(())
}

/// `YYYY-MM-DD[T ]hh:mm:ss[.f{1,9}]`, as nanoseconds since 1970 (UTC).
/// `last_date` holds the last date read and its day number: records in
/// time order repeat it, and it need not be worked out again.
fn timestamp(s: &[u8], last_date: &mut Option<([u8; 10], i64)>) -> Step<i64> {
    let digits = |r: std::ops::Range<usize>| -> Step<i64> {
        let mut v = 0i64;
        for &c in s.get(r).ok_or(GiveUp)? {
            if !c.is_ascii_digit() {
                return Err(GiveUp);
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Ok(v)
    };
    if s.len() < 19
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return Err(GiveUp);
    }
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return Err(GiveUp);
    }
    let mut nanos = 0i64;
    if s.len() > 19 {
        let frac = &s[20..];
        if s[19] != b'.' || frac.is_empty() || frac.len() > 9 {
            return Err(GiveUp);
        }
        nanos = digits(20..s.len())? * 10i64.pow(9 - frac.len() as u32);
    }
    let prefix: [u8; 10] = s[..10].try_into().map_err(|_| GiveUp)?;
    let days = match last_date {
        Some((p, days)) if *p == prefix => *days,
        _ => {
            let days = day_number(digits(0..4)?, digits(5..7)?, digits(8..10)?)?;
            *last_date = Some((prefix, days));
            days
        }
    };
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    seconds
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .ok_or(GiveUp)
}

/// The day number (from 1970-01-01) of a valid date.
fn day_number(year: i64, month: i64, day: i64) -> Step<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(GiveUp),
    };
    if day < 1 || day > month_days {
        return Err(GiveUp);
    }
    Ok(days_from_civil(year, month, day))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's well-known algorithm, counted in 400-year eras).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A cursor over the bytes of a run of records.
struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    /// See [`timestamp`].
    last_date: Option<([u8; 10], i64)>,
}

impl<'a> Parser<'a> {
    /// A timestamp string's value in nanoseconds.
    fn timestamp(&mut self) -> Step<i64> {
        let s = self.plain_string()?;
        timestamp(s, &mut self.last_date)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Step<u8> {
        let b = self.peek().ok_or(GiveUp)?;
        self.at += 1;
        Ok(b)
    }

    fn expect(&mut self, b: u8) -> Step<()> {
        if self.next()? == b {
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    /// Skips spaces, tabs and carriage returns (not line breaks: they end
    /// records).
    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string without escapes or control bytes; its bytes between the
    /// quotes. Eight bytes at a time are searched for a quote, a backslash
    /// or a control byte ([`special_bytes`]).
    fn plain_string(&mut self) -> Step<&'a [u8]> {
        self.scan_string().map(|(s, _)| s)
    }

    /// [`Parser::plain_string`], and whether every byte is ASCII.
    fn scan_string(&mut self) -> Step<(&'a [u8], bool)> {
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        self.expect(b'"')?;
        let start = self.at;
        let b = self.bytes;
        let mut i = start;
        let mut high = 0u64;
        while i + 8 <= b.len() {
            let w = word(b, i);
            let found = special_bytes(w);
            if found != 0 {
                let n = (found.trailing_zeros() / 8) as usize;
                // Only the bytes before the special one belong to the string.
                high |= w & HIGHS & ((1u64 << (8 * n)) - 1);
                i += n;
                break;
            }
            high |= w & HIGHS;
            i += 8;
        }
        loop {
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') | None => return Err(GiveUp),
                Some(&c) if c < 0x20 => return Err(GiveUp),
                Some(&c) => {
                    high |= u64::from(c & 0x80);
                    i += 1;
                }
            }
        }
        self.at = i + 1;
        Ok((&b[start..i], high == 0))
    }

    /// A [`Parser::plain_string`] that is valid UTF-8 (keys and skipped
    /// values, which no column checks later; arrow-json refuses invalid
    /// UTF-8 anywhere in a record).
    fn checked_string(&mut self) -> Step<&'a [u8]> {
        let (s, ascii) = self.scan_string()?;
        if !ascii {
            std::str::from_utf8(s).map_err(|_| GiveUp)?;
        }
        Ok(s)
    }

    /// A JSON number's text, checked against JSON's grammar:
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Step<&'a str> {
        let start = self.at;
        let b = self.bytes;
        let mut i = self.at;
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - from
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return Err(GiveUp),
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return Err(GiveUp);
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return Err(GiveUp);
            }
        }
        self.at = i;
        // Only ASCII digits and signs were read.
        std::str::from_utf8(&b[start..i]).map_err(|_| GiveUp)
    }

    /// A JSON number as an f64, rounded as `str::parse` rounds it. A
    /// number of at most 15 significant digits and no exponent is exact as
    /// an integer over a power of ten up to 10^22, and one division of two
    /// exact doubles rounds correctly (Clinger's fast path); anything else
    /// goes through `str::parse`.
    fn double(&mut self) -> Step<f64> {
        const POW10: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ];
        let text = self.number()?;
        let bytes = text.as_bytes();
        let (negative, digits) = match bytes.first() {
            Some(b'-') => (true, &bytes[1..]),
            _ => (false, bytes),
        };
        let mut mantissa = 0u64;
        let mut count = 0usize;
        let mut fraction: Option<usize> = None;
        for &c in digits {
            match c {
                b'0'..=b'9' => {
                    mantissa = mantissa * 10 + u64::from(c - b'0');
                    count += 1;
                    if let Some(f) = fraction.as_mut() {
                        *f += 1;
                    }
                    if count > 15 {
                        return text.parse::<f64>().map_err(|_| GiveUp);
                    }
                }
                b'.' => fraction = Some(0),
                _ => return text.parse::<f64>().map_err(|_| GiveUp),
            }
        }
        let value = mantissa as f64 / POW10[fraction.unwrap_or(0)];
        Ok(if negative { -value } else { value })
    }

    /// A JSON number without fraction or exponent, as an i64.
    fn integer(&mut self) -> Step<i64> {
        let text = self.number()?;
        if text.bytes().any(|c| matches!(c, b'.' | b'e' | b'E')) {
            return Err(GiveUp);
        }
        text.parse::<i64>().map_err(|_| GiveUp)
    }

    /// Skips the value of a key the table does not have: a string, number,
    /// boolean or null (anything nested gives up).
    fn skip_scalar(&mut self) -> Step<()> {
        match self.peek().ok_or(GiveUp)? {
            b'"' => self.checked_string().map(|_| ()),
            b't' if self.bytes[self.at..].starts_with(b"true") => {
                self.at += 4;
                Ok(())
            }
            b'f' if self.bytes[self.at..].starts_with(b"false") => {
                self.at += 5;
                Ok(())
            }
            b'n' if self.bytes[self.at..].starts_with(b"null") => {
                self.at += 4;
                Ok(())
            }
            _ => self.number().map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("small", DataType::Int32, true),
            Field::new("v", DataType::Float64, true),
            Field::new("f", DataType::Float32, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("tu", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]))
    }

    /// What arrow-json makes of the same text (with the JSON-lines checks).
    fn arrow_json(schema: &SchemaRef, text: &str, records: usize) -> Option<RecordBatch> {
        let mut d = crate::text::RecordsDecoder::arrow_only(Arc::clone(schema));
        d.decode(text.as_bytes(), records).ok()
    }

    /// Lines that the fast path must decode exactly as arrow-json does.
    #[test]
    fn plain_records_decode_as_arrow_json_does() {
        let schema = schema();
        let fast = FastJson::new(&schema).expect("every type is handled");
        let text = concat!(
            "{\"id\": 1, \"small\": -7, \"v\": 2.5, \"f\": 0.1, \"ok\": true, \"name\": \"a\", ",
            "\"t\": \"2026-01-01T00:00:00.052\", \"tu\": \"2026-01-01 00:00:01.123456\"}\n",
            "\n",
            "{\"name\": \"b\u{e9}\", \"id\": -0, \"v\": 1e3, \"f\": -1.5E-3, \"extra\": \"\u{fc}ber\", \"\u{e9}t\u{e9}\": 1, \"n\": null}\r\n",
            "  {\"t\": \"1969-12-31 23:59:59.9\", \"v\": 0, \"ok\": false, \"id\": null}\n",
            "{}\n",
            "{\"id\": 9223372036854775807, \"v\": 123456789.123456789, \"t\": \"2026-02-28 23:59:59\"}",
        );
        let ours = fast
            .decode(text.as_bytes(), 5)
            .expect("the fast path takes it");
        let theirs = arrow_json(&schema, text, 5).expect("arrow-json takes it");
        assert_eq!(ours, theirs);
    }

    /// Everything the fast path is unsure of is left to arrow-json.
    #[test]
    fn anything_unusual_gives_up() {
        let schema = schema();
        let fast = FastJson::new(&schema).expect("every type is handled");
        for line in [
            "{\"name\": \"a\\nb\"}",             // an escape
            "{\"id\": \"5\"}",                   // a string for a number
            "{\"id\": 5.0}",                     // a fraction for an integer
            "{\"small\": 3000000000}",           // out of INT's range
            "{\"id\": 1}{\"id\": 2}",            // two objects on a line
            "{\"id\": 1",                        // not closed
            "{\"extra\": {\"a\": 1}}",           // nested
            "{\"id\": 1, \"id\": 2}",            // a key twice
            "{\"t\": \"2026-01-01T00:00:00Z\"}", // a time zone
            "{\"t\": \"2026-02-30 00:00:00\"}",  // no such day
            "{\"t\": 1767225600000}",            // a number for a timestamp
            "{\"v\": 01}",                       // not JSON's number grammar
            "{\"v\": 1.}",                       // not JSON's number grammar
            "{\"name\": \"a\u{0}b\"}",           // a NUL byte
            "{\"ok\": 1}",                       // a number for a boolean
            "[1, 2]",                            // not an object
        ] {
            assert!(
                fast.decode(line.as_bytes(), 1).is_none(),
                "the fast path took {line:?}"
            );
        }
        // Invalid UTF-8 in a string, in a key, or in a value no column takes.
        assert!(fast.decode(b"{\"name\": \"\xff\"}", 1).is_none());
        assert!(fast.decode(b"{\"\xff\": 0, \"id\": 1}", 1).is_none());
        assert!(fast.decode(b"{\"id\": 1, \"junk\": \"\xff\"}", 1).is_none());
        // More or fewer objects than records.
        assert!(fast.decode(b"{\"id\": 1}\n{\"id\": 2}", 1).is_none());
        assert!(fast.decode(b"{\"id\": 1}", 2).is_none());
    }

    /// Random records, some malformed: whenever the fast path answers, its
    /// batch equals arrow-json's.
    #[test]
    fn random_records_agree_with_arrow_json() {
        let schema = schema();
        let fast = FastJson::new(&schema).expect("every type is handled");
        let mut seed = 42u64;
        let mut rand = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let pieces: [&[&str]; 8] = [
            &["1", "-12", "0", "9007199254740993", "1.5", "null", "\"3\""],
            &["2147483647", "-2147483648", "2147483648", "7", "null"],
            &[
                "0.1", "-2.5e-3", "1E10", "3", "null", "-0.0", "1e400", "\"x\"",
            ],
            &["0.1", "3.4028236e38", "1", "null", "-7.25"],
            &["true", "false", "null", "0"],
            &[
                "\"\"",
                "\"plain\"",
                "\"caf\u{e9}\"",
                "null",
                "12",
                "\"tab\\t\"",
            ],
            &[
                "\"2026-01-01T00:00:00.052\"",
                "\"2026-01-01 12:34:56\"",
                "\"2024-02-29 00:00:00.1\"",
                "\"2026-01-01T00:00:00.123456789\"",
                "null",
                "\"2026-13-01 00:00:00\"",
            ],
            &[
                "\"1970-01-01 00:00:00.000001\"",
                "\"1999-12-31T23:59:59.999999\"",
                "null",
            ],
        ];
        let names = ["id", "small", "v", "f", "ok", "name", "t", "tu"];
        let (mut agreed, mut fast_taken) = (0, 0);
        for _ in 0..400 {
            let records = 1 + rand(5) as usize;
            let mut text = String::new();
            for _ in 0..records {
                let mut fields = Vec::new();
                for (c, options) in pieces.iter().enumerate() {
                    if rand(4) > 0 {
                        let v = options[rand(options.len() as u64) as usize];
                        fields.push(format!("\"{}\": {v}", names[c]));
                    }
                }
                if rand(6) == 0 {
                    fields.push("\"other\": [1]".into());
                }
                // Shuffle a little.
                if fields.len() > 1 && rand(2) == 0 {
                    let a = rand(fields.len() as u64) as usize;
                    fields.swap(0, a);
                }
                text.push('{');
                text.push_str(&fields.join(", "));
                text.push_str("}\n");
            }
            let ours = fast.decode(text.as_bytes(), records);
            let theirs = arrow_json(&schema, &text, records);
            if let Some(batch) = ours {
                fast_taken += 1;
                assert_eq!(Some(&batch), theirs.as_ref(), "{text}");
                agreed += 1;
            }
        }
        assert!(fast_taken > 20, "the fast path took only {fast_taken} runs");
        assert_eq!(agreed, fast_taken);
    }

    #[test]
    fn dates_and_doubles_match_chrono_and_std() {
        // The years whose nanoseconds fit an i64 (others go to arrow-json).
        let mut day = chrono::NaiveDate::from_ymd_opt(1678, 1, 1).expect("a date");
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
        while day.format("%Y").to_string() != "2262" {
            let text = day.format("%Y-%m-%d 00:00:00").to_string();
            let ours = timestamp(text.as_bytes(), &mut None)
                .ok()
                .map(|n| n / 86_400_000_000_000);
            assert_eq!(ours, Some((day - epoch).num_days()), "{text}");
            day = day.succ_opt().expect("a next day");
        }
        for text in [
            "54.8",
            "-0.1",
            "0.30000000000000004",
            "123456789012345",
            "1234567890.12345",
            "9007199254740993",
            "1.7976931348623157e308",
            "5e-324",
            "0",
            "-0",
            "2.5e3",
            "0.000001",
            "99999999999999.9",
            "1234567890123456",
        ] {
            let mut p = Parser {
                bytes: text.as_bytes(),
                at: 0,
                last_date: None,
            };
            let ours = p.double().ok();
            let std = text.parse::<f64>().ok();
            assert_eq!(
                ours.map(f64::to_bits),
                std.map(f64::to_bits),
                "{text}: {ours:?} vs {std:?}"
            );
        }
    }

    /// Names that share their first bytes, and names longer than 16 bytes,
    /// find their own columns, wherever the key sits in the input.
    #[test]
    fn similar_and_long_names_find_their_columns() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("temperature_c", DataType::Float64, true),
            Field::new("temperature_f", DataType::Float64, true),
            Field::new("a_rather_long_column_name", DataType::Int64, true),
            Field::new("a_rather_long_column_nam", DataType::Int64, true),
            Field::new("x", DataType::Int64, true),
        ]));
        let fast = FastJson::new(&schema).expect("handled");
        let text =
            "{\"temperature_f\": 1.5, \"a_rather_long_column_nam\": 2, \"temperature_c\": 3.5, \
                    \"a_rather_long_column_name\": 4, \"x\": 5}\n{\"x\":6}";
        let ours = fast.decode(text.as_bytes(), 2).expect("fast path");
        let theirs = arrow_json(&schema, text, 2).expect("arrow-json");
        assert_eq!(ours, theirs);
        assert_eq!(ours.num_rows(), 2);
    }

    /// The eight-byte search finds the first quote, backslash or control
    /// byte wherever it is, as a byte-by-byte look does.
    #[test]
    fn the_word_search_finds_the_first_special_byte() {
        let mut seed = 3u64;
        for _ in 0..20_000 {
            let mut w = [0u8; 8];
            for b in &mut w {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                *b = match (seed >> 40) % 6 {
                    0 => b'"',
                    1 => b'\\',
                    2 => (seed >> 48) as u8 % 0x20,
                    3 => 0x80 | (seed >> 48) as u8,
                    _ => 0x20 + (seed >> 48) as u8 % 0x5f,
                };
            }
            let expected = w.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            let found = special_bytes(u64::from_le_bytes(w));
            let got = (found != 0).then(|| (found.trailing_zeros() / 8) as usize);
            assert_eq!(got, expected, "{w:?}");
        }
    }
}
