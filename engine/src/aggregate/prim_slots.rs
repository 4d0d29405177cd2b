//! Value columns for MIN/MAX/FIRST_VALUE/LAST_VALUE over primitive types
//! and booleans: plain vectors of native values.

use std::cmp::Ordering;
use std::fmt::Debug;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, BooleanArray, PrimitiveArray,
};
use arrow::buffer::{Buffer, NullBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, ToByteSlice};

use super::codec::{self, corrupt, Reader};
use super::group_state::{is_set, Values};
use super::grow;
use super::slots::Slots;
use crate::error::Result;
use crate::internal_err;

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
    pub(super) fn new(data_type: DataType) -> Self {
        Self {
            data_type,
            values: Vec::new(),
        }
    }
}

impl<T: ArrowPrimitiveType> Values for PrimSlots<T> {
    fn grow(&mut self, n: usize) {
        grow(&mut self.values, n, T::Native::default());
    }

    fn same_type(&self, other: &Self) -> bool {
        self.data_type == other.data_type
    }

    fn clear(&mut self, slot: usize) {
        if let Some(v) = self.values.get_mut(slot) {
            *v = T::Native::default();
        }
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

    #[inline(always)]
    fn cmp_input(&self, slot: usize, input: &&[T::Native], row: usize) -> Ordering {
        input[row].compare(self.values[slot])
    }

    #[inline(always)]
    fn set_input(&mut self, slot: usize, input: &&[T::Native], row: usize) {
        self.values[slot] = input[row];
    }

    fn cmp_other(&self, slot: usize, other: &Self, src: usize) -> Ordering {
        other.values[src].compare(self.values[slot])
    }

    fn set_other(&mut self, slot: usize, other: &Self, src: usize) {
        self.values[slot] = other.values[src];
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
}

/// Booleans, ordered `false < true`.
#[derive(Debug, Default)]
pub(crate) struct BoolSlots {
    values: Vec<bool>,
}

impl Values for BoolSlots {
    fn grow(&mut self, n: usize) {
        grow(&mut self.values, n, false);
    }

    fn same_type(&self, _other: &Self) -> bool {
        true
    }

    fn clear(&mut self, slot: usize) {
        if let Some(v) = self.values.get_mut(slot) {
            *v = false;
        }
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

impl Slots for BoolSlots {
    type Input<'a> = &'a BooleanArray;

    fn input<'a>(&self, array: &'a ArrayRef) -> Result<&'a BooleanArray> {
        match array.as_boolean_opt() {
            Some(a) => Ok(a),
            None => internal_err!("expected a Boolean argument, got {}", array.data_type()),
        }
    }

    fn cmp_input(&self, slot: usize, input: &&BooleanArray, row: usize) -> Ordering {
        input.value(row).cmp(&self.values[slot])
    }

    fn set_input(&mut self, slot: usize, input: &&BooleanArray, row: usize) {
        self.values[slot] = input.value(row);
    }

    fn cmp_other(&self, slot: usize, other: &Self, src: usize) -> Ordering {
        other.values[src].cmp(&self.values[slot])
    }

    fn set_other(&mut self, slot: usize, other: &Self, src: usize) {
        self.values[slot] = other.values[src];
    }

    fn evaluate(&self, groups: &[u32], set: &[bool]) -> Result<ArrayRef> {
        let array: BooleanArray = groups
            .iter()
            .map(|&g| is_set(set, g).then(|| self.values[g as usize]))
            .collect();
        Ok(Arc::new(array))
    }
}
