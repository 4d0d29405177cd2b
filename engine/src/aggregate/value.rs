//! `MIN`, `MAX`, `FIRST_VALUE` and `LAST_VALUE`: accumulators that keep one
//! value of the argument's type per group.
//!
//! The value column is a [`Slots`] implementation chosen by type: a native
//! `Vec` for primitives (ints, floats, dates, times, timestamps, durations,
//! decimals), a `Vec<bool>`, byte strings for Utf8/Binary, and arrow-row
//! encodings (which compare in the type's order) for everything else.

use std::any::Any;
use std::cmp::Ordering;
use std::fmt::Debug;
use std::io::Cursor;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::{
    downcast_primitive, Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray,
    BooleanArray, GenericByteArray, PrimitiveArray, RecordBatch, UInt32Array,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowNativeType, BinaryType, ByteArrayType, DataType, Field, LargeBinaryType, LargeUtf8Type,
    Schema, ToByteSlice, Utf8Type,
};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, Rows, SortField};

use super::codec::{self, corrupt, tag, Reader};
use super::{downcast_other, for_each_row, grow, AggregateFunction, GroupsAccumulator, UpdateArgs};
use crate::error::{EngineError, Result};
use crate::internal_err;

/// Whether MIN/MAX/FIRST_VALUE/LAST_VALUE accept `t`.
pub(crate) fn supports_type(t: &DataType) -> bool {
    macro_rules! primitive {
        ($t:ty) => {
            true
        };
    }
    downcast_primitive! {
        t => (primitive),
        DataType::Null => false,
        _ => RowConverter::supports_fields(&[SortField::new(t.clone())])
    }
}

/// Creates the accumulator of `func` (MIN, MAX, FIRST_VALUE or LAST_VALUE).
pub(crate) fn create(func: AggregateFunction, t: &DataType) -> Result<Box<dyn GroupsAccumulator>> {
    macro_rules! primitive {
        ($t:ty, $func:ident, $dt:ident) => {
            with_slots($func, PrimSlots::<$t>::new($dt.clone()))
        };
    }
    downcast_primitive! {
        t => (primitive, func, t),
        DataType::Boolean => with_slots(func, BoolSlots::default()),
        DataType::Utf8 => with_slots(func, BytesSlots::<Utf8Type>::default()),
        DataType::LargeUtf8 => with_slots(func, BytesSlots::<LargeUtf8Type>::default()),
        DataType::Binary => with_slots(func, BytesSlots::<BinaryType>::default()),
        DataType::LargeBinary => with_slots(func, BytesSlots::<LargeBinaryType>::default()),
        _ => with_slots(func, RowSlots::new(t)?)
    }
}

fn with_slots<S: Slots>(func: AggregateFunction, slots: S) -> Result<Box<dyn GroupsAccumulator>> {
    Ok(match func {
        AggregateFunction::Min => Box::new(MinMaxAcc::<S, true>::new(slots)),
        AggregateFunction::Max => Box::new(MinMaxAcc::<S, false>::new(slots)),
        AggregateFunction::FirstValue => Box::new(FirstLastAcc::<S, false>::new(slots)),
        AggregateFunction::LastValue => Box::new(FirstLastAcc::<S, true>::new(slots)),
        other => internal_err!("{} does not keep a value per group", other.name()),
    })
}

/// One value per group, of one Arrow type. Slot contents are meaningful only
/// where the owning accumulator's `set` flag is true.
pub(crate) trait Slots: Send + Debug + Sized + 'static {
    /// The argument column prepared once per update call.
    type Input<'a>;
    fn input<'a>(&self, array: &'a ArrayRef) -> Result<Self::Input<'a>>;
    /// Grows to `n` slots (never shrinks).
    fn grow(&mut self, n: usize);
    /// Orders row `row` of `input` against slot `slot`.
    fn cmp_input(&self, slot: usize, input: &Self::Input<'_>, row: usize) -> Ordering;
    fn set_input(&mut self, slot: usize, input: &Self::Input<'_>, row: usize);
    /// Whether `other` holds values of the same type as self.
    fn same_type(&self, other: &Self) -> bool;
    /// Orders slot `src` of `other` against slot `slot` of self.
    fn cmp_other(&self, slot: usize, other: &Self, src: usize) -> Ordering;
    fn set_other(&mut self, slot: usize, other: &Self, src: usize);
    /// Drops the slot's value (freeing any heap memory).
    fn clear(&mut self, slot: usize);
    /// The values of `groups`; a group is NULL where `set` is false or missing.
    fn evaluate(&self, groups: &[u32], set: &[bool]) -> Result<ArrayRef>;
    fn save(&self, slot: usize, out: &mut Vec<u8>) -> Result<()>;
    fn load(&mut self, slot: usize, r: &mut Reader<'_>) -> Result<()>;
    fn size_bytes(&self) -> usize;
}

fn is_set(set: &[bool], g: u32) -> bool {
    set.get(g as usize).copied().unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Slot implementations

/// Native values of a primitive type.
pub(crate) struct PrimSlots<T: ArrowPrimitiveType> {
    data_type: DataType,
    values: Vec<T::Native>,
}

impl<T: ArrowPrimitiveType> Debug for PrimSlots<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimSlots")
            .field("data_type", &self.data_type)
            .field("groups", &self.values.len())
            .finish()
    }
}

impl<T: ArrowPrimitiveType> PrimSlots<T> {
    fn new(data_type: DataType) -> Self {
        Self {
            data_type,
            values: Vec::new(),
        }
    }
}

impl<T: ArrowPrimitiveType> Slots for PrimSlots<T> {
    type Input<'a> = &'a [T::Native];

    fn input<'a>(&self, array: &'a ArrayRef) -> Result<&'a [T::Native]> {
        match array.as_primitive_opt::<T>() {
            Some(a) => Ok(a.values()),
            None => internal_err!(
                "expected a {} argument, got {}",
                self.data_type,
                array.data_type()
            ),
        }
    }

    fn grow(&mut self, n: usize) {
        grow(&mut self.values, n, T::Native::default());
    }

    #[inline(always)]
    fn cmp_input(&self, slot: usize, input: &&[T::Native], row: usize) -> Ordering {
        input[row].compare(self.values[slot])
    }

    #[inline(always)]
    fn set_input(&mut self, slot: usize, input: &&[T::Native], row: usize) {
        self.values[slot] = input[row];
    }

    fn same_type(&self, other: &Self) -> bool {
        self.data_type == other.data_type
    }

    fn cmp_other(&self, slot: usize, other: &Self, src: usize) -> Ordering {
        other.values[src].compare(self.values[slot])
    }

    fn set_other(&mut self, slot: usize, other: &Self, src: usize) {
        self.values[slot] = other.values[src];
    }

    fn clear(&mut self, slot: usize) {
        if let Some(v) = self.values.get_mut(slot) {
            *v = T::Native::default();
        }
    }

    fn evaluate(&self, groups: &[u32], set: &[bool]) -> Result<ArrayRef> {
        let values: Vec<T::Native> = groups
            .iter()
            .map(|&g| {
                if is_set(set, g) {
                    self.values[g as usize]
                } else {
                    T::Native::default()
                }
            })
            .collect();
        let nulls = NullBuffer::from_iter(groups.iter().map(|&g| is_set(set, g)));
        let array = PrimitiveArray::<T>::try_new(ScalarBuffer::from(values), Some(nulls))?
            .with_data_type(self.data_type.clone());
        Ok(Arc::new(array))
    }

    fn save(&self, slot: usize, out: &mut Vec<u8>) -> Result<()> {
        // Native byte order: checkpoints are read back on the same platform
        // family (every supported target is little-endian).
        out.extend_from_slice(self.values[slot].to_byte_slice());
        Ok(())
    }

    fn load(&mut self, slot: usize, r: &mut Reader<'_>) -> Result<()> {
        let bytes = r.take(std::mem::size_of::<T::Native>())?;
        // Copying into an Arrow buffer gives the alignment the typed view needs.
        let buffer = ScalarBuffer::<T::Native>::from(Buffer::from(bytes));
        match buffer.first() {
            Some(&v) => self.values[slot] = v,
            None => return Err(corrupt("missing primitive value")),
        }
        Ok(())
    }

    fn size_bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<T::Native>()
    }
}

/// Booleans, ordered `false < true`.
#[derive(Debug, Default)]
pub(crate) struct BoolSlots {
    values: Vec<bool>,
}

impl Slots for BoolSlots {
    type Input<'a> = &'a BooleanArray;

    fn input<'a>(&self, array: &'a ArrayRef) -> Result<&'a BooleanArray> {
        match array.as_boolean_opt() {
            Some(a) => Ok(a),
            None => internal_err!("expected a Boolean argument, got {}", array.data_type()),
        }
    }

    fn grow(&mut self, n: usize) {
        grow(&mut self.values, n, false);
    }

    fn cmp_input(&self, slot: usize, input: &&BooleanArray, row: usize) -> Ordering {
        input.value(row).cmp(&self.values[slot])
    }

    fn set_input(&mut self, slot: usize, input: &&BooleanArray, row: usize) {
        self.values[slot] = input.value(row);
    }

    fn same_type(&self, _other: &Self) -> bool {
        true
    }

    fn cmp_other(&self, slot: usize, other: &Self, src: usize) -> Ordering {
        other.values[src].cmp(&self.values[slot])
    }

    fn set_other(&mut self, slot: usize, other: &Self, src: usize) {
        self.values[slot] = other.values[src];
    }

    fn clear(&mut self, slot: usize) {
        if let Some(v) = self.values.get_mut(slot) {
            *v = false;
        }
    }

    fn evaluate(&self, groups: &[u32], set: &[bool]) -> Result<ArrayRef> {
        let array: BooleanArray = groups
            .iter()
            .map(|&g| is_set(set, g).then(|| self.values[g as usize]))
            .collect();
        Ok(Arc::new(array))
    }

    fn save(&self, slot: usize, out: &mut Vec<u8>) -> Result<()> {
        codec::put_u8(out, self.values[slot] as u8);
        Ok(())
    }

    fn load(&mut self, slot: usize, r: &mut Reader<'_>) -> Result<()> {
        self.values[slot] = r.bool()?;
        Ok(())
    }

    fn size_bytes(&self) -> usize {
        self.values.capacity()
    }
}

/// Utf8 / Binary values as owned bytes, compared bytewise (for UTF-8 that is
/// code point order, as Flink compares strings).
pub(crate) struct BytesSlots<B: ByteArrayType> {
    values: Vec<Vec<u8>>,
    /// Sum of the value buffers' capacities, kept so `size_bytes` is O(1).
    heap: usize,
    _b: PhantomData<fn() -> B>,
}

impl<B: ByteArrayType> Debug for BytesSlots<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BytesSlots")
            .field("data_type", &B::DATA_TYPE)
            .field("groups", &self.values.len())
            .finish()
    }
}

impl<B: ByteArrayType> Default for BytesSlots<B> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            heap: 0,
            _b: PhantomData,
        }
    }
}

impl<B: ByteArrayType> BytesSlots<B> {
    fn assign(&mut self, slot: usize, bytes: &[u8]) {
        let dst = &mut self.values[slot];
        let before = dst.capacity();
        // Reusing the slot's buffer means a hot group reallocates only when
        // its value grows.
        dst.clear();
        dst.extend_from_slice(bytes);
        self.heap = self.heap + dst.capacity() - before;
    }

    fn is_utf8() -> bool {
        matches!(B::DATA_TYPE, DataType::Utf8 | DataType::LargeUtf8)
    }
}

impl<B: ByteArrayType> Slots for BytesSlots<B> {
    type Input<'a> = &'a GenericByteArray<B>;

    fn input<'a>(&self, array: &'a ArrayRef) -> Result<&'a GenericByteArray<B>> {
        match array.as_bytes_opt::<B>() {
            Some(a) => Ok(a),
            None => internal_err!(
                "expected a {} argument, got {}",
                B::DATA_TYPE,
                array.data_type()
            ),
        }
    }

    fn grow(&mut self, n: usize) {
        if self.values.len() < n {
            self.values.resize_with(n, Vec::new);
        }
    }

    fn cmp_input(&self, slot: usize, input: &&GenericByteArray<B>, row: usize) -> Ordering {
        let v: &[u8] = input.value(row).as_ref();
        v.cmp(self.values[slot].as_slice())
    }

    fn set_input(&mut self, slot: usize, input: &&GenericByteArray<B>, row: usize) {
        let v: &[u8] = input.value(row).as_ref();
        self.assign(slot, v);
    }

    fn same_type(&self, _other: &Self) -> bool {
        true
    }

    fn cmp_other(&self, slot: usize, other: &Self, src: usize) -> Ordering {
        other.values[src].cmp(&self.values[slot])
    }

    fn set_other(&mut self, slot: usize, other: &Self, src: usize) {
        self.assign(slot, &other.values[src]);
    }

    fn clear(&mut self, slot: usize) {
        if let Some(v) = self.values.get_mut(slot) {
            self.heap -= v.capacity();
            *v = Vec::new();
        }
    }

    fn evaluate(&self, groups: &[u32], set: &[bool]) -> Result<ArrayRef> {
        let mut offsets = Vec::with_capacity(groups.len() + 1);
        let mut data = Vec::new();
        offsets.push(B::Offset::usize_as(0));
        for &g in groups {
            if is_set(set, g) {
                data.extend_from_slice(&self.values[g as usize]);
            }
            match B::Offset::from_usize(data.len()) {
                Some(o) => offsets.push(o),
                None => {
                    return Err(EngineError::Execution(format!(
                        "aggregate result of {} bytes does not fit a {} array",
                        data.len(),
                        B::DATA_TYPE
                    )))
                }
            }
        }
        let nulls = NullBuffer::from_iter(groups.iter().map(|&g| is_set(set, g)));
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        let array = GenericByteArray::<B>::try_new(offsets, Buffer::from_vec(data), Some(nulls))?;
        Ok(Arc::new(array))
    }

    fn save(&self, slot: usize, out: &mut Vec<u8>) -> Result<()> {
        codec::put_bytes(out, &self.values[slot])
    }

    fn load(&mut self, slot: usize, r: &mut Reader<'_>) -> Result<()> {
        let bytes = r.bytes()?;
        if Self::is_utf8() && std::str::from_utf8(bytes).is_err() {
            return Err(corrupt("string value is not valid UTF-8"));
        }
        self.assign(slot, bytes);
        Ok(())
    }

    fn size_bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<Vec<u8>>() + self.heap
    }
}

/// Any other type, as arrow-row encodings: bytewise comparison of the
/// encoding is the type's order, so no per-type code is needed.
#[derive(Debug)]
pub(crate) struct RowSlots {
    data_type: DataType,
    converter: RowConverter,
    values: Vec<Vec<u8>>,
    heap: usize,
}

impl RowSlots {
    fn new(data_type: &DataType) -> Result<Self> {
        Ok(Self {
            data_type: data_type.clone(),
            converter: RowConverter::new(vec![SortField::new(data_type.clone())])?,
            values: Vec::new(),
            heap: 0,
        })
    }

    fn assign(&mut self, slot: usize, bytes: &[u8]) {
        let dst = &mut self.values[slot];
        let before = dst.capacity();
        dst.clear();
        dst.extend_from_slice(bytes);
        self.heap = self.heap + dst.capacity() - before;
    }

    /// Decodes the given slots (which must hold values) into an array of the
    /// argument type. Slot bytes only ever come from this converter's own
    /// encoding (update, or load re-encoding a validated array), so decoding
    /// them is sound.
    fn decode(&self, slots: impl Iterator<Item = usize>) -> Result<ArrayRef> {
        let parser = self.converter.parser();
        let rows: Vec<_> = slots.map(|s| parser.parse(&self.values[s])).collect();
        let mut decoded = self.converter.convert_rows(rows)?;
        let Some(array) = decoded.pop() else {
            internal_err!("row decoding returned no column");
        };
        // The row format flattens dictionaries; restore the argument type.
        if array.data_type() != &self.data_type {
            return Ok(arrow::compute::cast(&array, &self.data_type)?);
        }
        Ok(array)
    }
}

impl Slots for RowSlots {
    type Input<'a> = Rows;

    fn input(&self, array: &ArrayRef) -> Result<Rows> {
        if !array.data_type().equals_datatype(&self.data_type) {
            internal_err!(
                "expected a {} argument, got {}",
                self.data_type,
                array.data_type()
            );
        }
        Ok(self
            .converter
            .convert_columns(std::slice::from_ref(array))?)
    }

    fn grow(&mut self, n: usize) {
        if self.values.len() < n {
            self.values.resize_with(n, Vec::new);
        }
    }

    fn cmp_input(&self, slot: usize, input: &Rows, row: usize) -> Ordering {
        input.row(row).data().cmp(self.values[slot].as_slice())
    }

    fn set_input(&mut self, slot: usize, input: &Rows, row: usize) {
        self.assign(slot, input.row(row).data());
    }

    fn same_type(&self, other: &Self) -> bool {
        self.data_type == other.data_type
    }

    fn cmp_other(&self, slot: usize, other: &Self, src: usize) -> Ordering {
        other.values[src].cmp(&self.values[slot])
    }

    fn set_other(&mut self, slot: usize, other: &Self, src: usize) {
        self.assign(slot, &other.values[src]);
    }

    fn clear(&mut self, slot: usize) {
        if let Some(v) = self.values.get_mut(slot) {
            self.heap -= v.capacity();
            *v = Vec::new();
        }
    }

    fn evaluate(&self, groups: &[u32], set: &[bool]) -> Result<ArrayRef> {
        let present: Vec<usize> = groups
            .iter()
            .filter(|&&g| is_set(set, g))
            .map(|&g| g as usize)
            .collect();
        let decoded = self.decode(present.into_iter())?;
        // Scatter the decoded values back to their positions, NULL elsewhere.
        let mut next = 0u32;
        let indices: UInt32Array = groups
            .iter()
            .map(|&g| {
                is_set(set, g).then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        Ok(arrow::compute::take(&decoded, &indices, None)?)
    }

    fn save(&self, slot: usize, out: &mut Vec<u8>) -> Result<()> {
        // The row format is not a stable storage format, so the value is
        // saved as a one-row Arrow IPC stream of the argument type.
        let array = self.decode(std::iter::once(slot))?;
        let schema = Arc::new(Schema::new(vec![Field::new(
            "v",
            self.data_type.clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![array])?;
        let mut ipc = Vec::new();
        {
            let mut writer = StreamWriter::try_new(&mut ipc, &schema)?;
            writer.write(&batch)?;
            writer.finish()?;
        }
        codec::put_bytes(out, &ipc)?;
        codec::put_u64(out, codec::checksum(&ipc));
        Ok(())
    }

    fn load(&mut self, slot: usize, r: &mut Reader<'_>) -> Result<()> {
        let ipc = r.bytes()?;
        if r.u64()? != codec::checksum(ipc) {
            return Err(corrupt("checksum mismatch in saved value"));
        }
        let batch = read_ipc_value(ipc)?;
        if batch.num_columns() != 1 || batch.num_rows() != 1 {
            return Err(corrupt("saved value is not a single value"));
        }
        let array = batch.column(0);
        if array.data_type() != &self.data_type || array.null_count() != 0 {
            return Err(corrupt("saved value has the wrong type"));
        }
        // Validates buffers (offsets, UTF-8) before the row encoder trusts them.
        array
            .to_data()
            .validate_full()
            .map_err(|e| corrupt(&format!("bad saved value: {e}")))?;
        let rows = self
            .converter
            .convert_columns(std::slice::from_ref(array))?;
        self.assign(slot, rows.row(0).data());
        Ok(())
    }

    fn size_bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<Vec<u8>>() + self.heap + self.converter.size()
    }
}

/// Reads the one-batch IPC stream written by [`RowSlots::save`].
fn read_ipc_value(ipc: &[u8]) -> Result<RecordBatch> {
    let read = || -> Result<RecordBatch> {
        let bad = |e: arrow::error::ArrowError| corrupt(&format!("bad saved value: {e}"));
        let mut reader = StreamReader::try_new(Cursor::new(ipc), None).map_err(bad)?;
        match reader.next() {
            Some(b) => b.map_err(bad),
            None => Err(corrupt("saved value has no rows")),
        }
    };
    // The checksum catches accidental corruption; the IPC reader still
    // panics on some malformed input (e.g. an unknown type id), and a
    // checkpoint must never bring the process down, so contain that too.
    match std::panic::catch_unwind(read) {
        Ok(result) => result,
        Err(_) => Err(corrupt("saved value could not be decoded")),
    }
}

// ---------------------------------------------------------------------------
// Accumulators

/// `MIN` (`MIN = true`) or `MAX`.
#[derive(Debug)]
pub(crate) struct MinMaxAcc<S, const MIN: bool> {
    slots: S,
    set: Vec<bool>,
}

impl<S: Slots, const MIN: bool> MinMaxAcc<S, MIN> {
    fn new(slots: S) -> Self {
        Self {
            slots,
            set: Vec::new(),
        }
    }

    fn grow(&mut self, n: usize) {
        self.slots.grow(n);
        grow(&mut self.set, n, false);
    }

    /// Whether a candidate ordered `ord` against the current value replaces it.
    #[inline(always)]
    fn better(ord: Ordering) -> bool {
        if MIN {
            ord == Ordering::Less
        } else {
            ord == Ordering::Greater
        }
    }

    fn tag() -> u8 {
        if MIN {
            tag::MIN
        } else {
            tag::MAX
        }
    }
}

impl<S: Slots, const MIN: bool> GroupsAccumulator for MinMaxAcc<S, MIN> {
    fn update(&mut self, args: &UpdateArgs<'_>) -> Result<()> {
        args.validate(1)?;
        self.grow(args.total_groups);
        let input = self.slots.input(&args.values[0])?;
        let selection = args.selection(true);
        let groups = args.groups;
        let (slots, set) = (&mut self.slots, &mut self.set);
        for_each_row(groups.len(), selection.as_ref(), |i| {
            let g = groups[i] as usize;
            if !set[g] || Self::better(slots.cmp_input(g, &input, i)) {
                slots.set_input(g, &input, i);
                set[g] = true;
            }
        });
        Ok(())
    }

    fn merge(&mut self, dst: u32, other: &dyn GroupsAccumulator, src: u32) -> Result<()> {
        let other = downcast_other::<Self>(other)?;
        if !self.slots.same_type(&other.slots) {
            internal_err!("cannot merge MIN/MAX states of different types");
        }
        let (d, s) = (dst as usize, src as usize);
        self.grow(d + 1);
        if is_set(&other.set, src)
            && (!self.set[d] || Self::better(self.slots.cmp_other(d, &other.slots, s)))
        {
            self.slots.set_other(d, &other.slots, s);
            self.set[d] = true;
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        self.slots.evaluate(groups, &self.set)
    }

    fn reset(&mut self, group: u32) {
        if let Some(s) = self.set.get_mut(group as usize) {
            *s = false;
            self.slots.clear(group as usize);
        }
    }

    fn num_groups(&self) -> usize {
        self.set.len()
    }

    fn save(&self, group: u32, out: &mut Vec<u8>) -> Result<()> {
        codec::put_u8(out, Self::tag());
        let set = is_set(&self.set, group);
        codec::put_u8(out, set as u8);
        if set {
            self.slots.save(group as usize, out)?;
        }
        Ok(())
    }

    fn load(&mut self, group: u32, bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes);
        r.expect_tag(Self::tag())?;
        let set = r.bool()?;
        let g = group as usize;
        self.grow(g + 1);
        self.slots.clear(g);
        self.set[g] = false;
        if set {
            self.slots.load(g, &mut r)?;
            self.set[g] = true;
        }
        Ok(r.consumed())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn size_bytes(&self) -> usize {
        self.slots.size_bytes() + self.set.capacity()
    }
}

/// `FIRST_VALUE` (`LAST = false`) or `LAST_VALUE`: the non-NULL value with
/// the smallest (largest) arrival sequence number, so that merging states of
/// different time slices picks the right row whatever the merge order.
#[derive(Debug)]
pub(crate) struct FirstLastAcc<S, const LAST: bool> {
    slots: S,
    set: Vec<bool>,
    seqs: Vec<u64>,
}

impl<S: Slots, const LAST: bool> FirstLastAcc<S, LAST> {
    fn new(slots: S) -> Self {
        Self {
            slots,
            set: Vec::new(),
            seqs: Vec::new(),
        }
    }

    fn grow(&mut self, n: usize) {
        self.slots.grow(n);
        grow(&mut self.set, n, false);
        grow(&mut self.seqs, n, 0);
    }

    /// Whether a value with sequence `seq` replaces one with `current`.
    #[inline(always)]
    fn wins(seq: u64, current: u64) -> bool {
        if LAST {
            seq >= current
        } else {
            seq < current
        }
    }

    fn tag() -> u8 {
        if LAST {
            tag::LAST
        } else {
            tag::FIRST
        }
    }
}

impl<S: Slots, const LAST: bool> GroupsAccumulator for FirstLastAcc<S, LAST> {
    fn update(&mut self, args: &UpdateArgs<'_>) -> Result<()> {
        args.validate(1)?;
        self.grow(args.total_groups);
        let input = self.slots.input(&args.values[0])?;
        let selection = args.selection(true);
        let groups = args.groups;
        let base = args.first_row_seq;
        let (slots, set, seqs) = (&mut self.slots, &mut self.set, &mut self.seqs);
        for_each_row(groups.len(), selection.as_ref(), |i| {
            let g = groups[i] as usize;
            let seq = base.wrapping_add(i as u64);
            if !set[g] || Self::wins(seq, seqs[g]) {
                slots.set_input(g, &input, i);
                seqs[g] = seq;
                set[g] = true;
            }
        });
        Ok(())
    }

    fn merge(&mut self, dst: u32, other: &dyn GroupsAccumulator, src: u32) -> Result<()> {
        let other = downcast_other::<Self>(other)?;
        if !self.slots.same_type(&other.slots) {
            internal_err!("cannot merge FIRST_VALUE/LAST_VALUE states of different types");
        }
        let (d, s) = (dst as usize, src as usize);
        self.grow(d + 1);
        if is_set(&other.set, src) && (!self.set[d] || Self::wins(other.seqs[s], self.seqs[d])) {
            self.slots.set_other(d, &other.slots, s);
            self.seqs[d] = other.seqs[s];
            self.set[d] = true;
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        self.slots.evaluate(groups, &self.set)
    }

    fn reset(&mut self, group: u32) {
        let g = group as usize;
        if g < self.set.len() {
            self.set[g] = false;
            self.seqs[g] = 0;
            self.slots.clear(g);
        }
    }

    fn num_groups(&self) -> usize {
        self.set.len()
    }

    fn save(&self, group: u32, out: &mut Vec<u8>) -> Result<()> {
        codec::put_u8(out, Self::tag());
        let set = is_set(&self.set, group);
        codec::put_u8(out, set as u8);
        if set {
            codec::put_u64(out, self.seqs[group as usize]);
            self.slots.save(group as usize, out)?;
        }
        Ok(())
    }

    fn load(&mut self, group: u32, bytes: &[u8]) -> Result<usize> {
        let mut r = Reader::new(bytes);
        r.expect_tag(Self::tag())?;
        let set = r.bool()?;
        let g = group as usize;
        self.grow(g + 1);
        self.slots.clear(g);
        self.set[g] = false;
        self.seqs[g] = 0;
        if set {
            let seq = r.u64()?;
            self.slots.load(g, &mut r)?;
            self.seqs[g] = seq;
            self.set[g] = true;
        }
        Ok(r.consumed())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn size_bytes(&self) -> usize {
        self.slots.size_bytes() + self.set.capacity() + self.seqs.capacity() * 8
    }
}
