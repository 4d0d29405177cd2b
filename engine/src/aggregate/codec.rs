//! The checkpoint encoding of one group's state.
//!
//! Every saved state starts with a tag byte naming the accumulator kind, so a
//! state loaded into the wrong accumulator is rejected instead of being
//! misread; numbers are little-endian and variable-length parts carry a u32
//! length, so a reader never needs to know where the state ends.

use crate::error::{EngineError, Result};

/// Tag bytes, one per accumulator layout.
pub(crate) mod tag {
    pub const COUNT: u8 = 0xA1;
    pub const COUNT_DISTINCT: u8 = 0xA2;
    pub const SUM_INT: u8 = 0xA3;
    pub const SUM_FLOAT: u8 = 0xA4;
    pub const AVG: u8 = 0xA5;
    pub const VARIANCE: u8 = 0xA6;
    pub const MIN: u8 = 0xA7;
    pub const MAX: u8 = 0xA8;
    pub const FIRST: u8 = 0xA9;
    pub const LAST: u8 = 0xAA;
    pub const AVG_INT: u8 = 0xAB;
    pub const SUM_DECIMAL: u8 = 0xAC;
    pub const AVG_DECIMAL: u8 = 0xAD;
}

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes a length-prefixed byte string.
pub(crate) fn put_bytes(out: &mut Vec<u8>, v: &[u8]) -> Result<()> {
    let len = u32::try_from(v.len()).map_err(|_| {
        EngineError::Internal(format!(
            "aggregate state value of {} bytes is too large to save",
            v.len()
        ))
    })?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(v);
    Ok(())
}

/// A bounds-checked cursor over saved state.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub(crate) fn corrupt(what: &str) -> EngineError {
    EngineError::Internal(format!("corrupt aggregate state: {what}"))
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| corrupt("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A 0/1 byte; anything else is corruption.
    pub fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(corrupt(&format!("invalid flag byte {b}"))),
        }
    }

    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        self.take(len)
    }

    /// Reads the leading tag and checks it is the expected one.
    pub fn expect_tag(&mut self, expected: u8) -> Result<()> {
        let t = self.u8()?;
        if t != expected {
            return Err(corrupt(&format!(
                "state tag {t:#04x} does not match accumulator tag {expected:#04x}"
            )));
        }
        Ok(())
    }
}

/// FNV-1a, a stable 64-bit checksum: guards blobs whose decoder (Arrow IPC)
/// is not hardened against corrupt input.
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
