//! The value column for MIN/MAX/FIRST_VALUE/LAST_VALUE over every other
//! type: arrow-row encodings in memory, a one-row Arrow IPC stream in
//! checkpoints.

use std::cmp::Ordering;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, Rows, SortField};

use super::codec::{self, corrupt, Reader};
use super::group_state::{is_set, Values};
use super::slots::Slots;
use crate::error::Result;
use crate::internal_err;

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
    pub(super) fn new(data_type: &DataType) -> Result<Self> {
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

impl Values for RowSlots {
    fn grow(&mut self, n: usize) {
        if self.values.len() < n {
            self.values.resize_with(n, Vec::new);
        }
    }

    fn same_type(&self, other: &Self) -> bool {
        self.data_type == other.data_type
    }

    fn clear(&mut self, slot: usize) {
        if let Some(v) = self.values.get_mut(slot) {
            self.heap -= v.capacity();
            *v = Vec::new();
        }
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

    fn cmp_input(&self, slot: usize, input: &Rows, row: usize) -> Ordering {
        input.row(row).data().cmp(self.values[slot].as_slice())
    }

    fn set_input(&mut self, slot: usize, input: &Rows, row: usize) {
        self.assign(slot, input.row(row).data());
    }

    fn cmp_other(&self, slot: usize, other: &Self, src: usize) -> Ordering {
        other.values[src].cmp(&self.values[slot])
    }

    fn set_other(&mut self, slot: usize, other: &Self, src: usize) {
        self.assign(slot, &other.values[src]);
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
