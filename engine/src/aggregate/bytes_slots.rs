//! The value column for MIN/MAX/FIRST_VALUE/LAST_VALUE over Utf8 and
//! Binary: owned byte strings, reused in place as values change.

use std::cmp::Ordering;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, GenericByteArray};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowNativeType, ByteArrayType, DataType};

use super::codec::{self, corrupt, Reader};
use super::group_state::{is_set, Values};
use super::slots::Slots;
use crate::error::{EngineError, Result};
use crate::internal_err;

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

impl<B: ByteArrayType> Values for BytesSlots<B> {
    fn grow(&mut self, n: usize) {
        if self.values.len() < n {
            self.values.resize_with(n, Vec::new);
        }
    }

    fn same_type(&self, _other: &Self) -> bool {
        true
    }

    fn clear(&mut self, slot: usize) {
        if let Some(v) = self.values.get_mut(slot) {
            self.heap -= v.capacity();
            *v = Vec::new();
        }
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

    fn cmp_input(&self, slot: usize, input: &&GenericByteArray<B>, row: usize) -> Ordering {
        let v: &[u8] = input.value(row).as_ref();
        v.cmp(self.values[slot].as_slice())
    }

    fn set_input(&mut self, slot: usize, input: &&GenericByteArray<B>, row: usize) {
        let v: &[u8] = input.value(row).as_ref();
        self.assign(slot, v);
    }

    fn cmp_other(&self, slot: usize, other: &Self, src: usize) -> Ordering {
        other.values[src].cmp(&self.values[slot])
    }

    fn set_other(&mut self, slot: usize, other: &Self, src: usize) {
        self.assign(slot, &other.values[src]);
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
}
