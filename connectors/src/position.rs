//! A tiny versioned binary encoding for source positions.
//!
//! Positions end up inside checkpoints, which outlive the binary that wrote
//! them, so every position starts with a version byte and is read with
//! explicit bounds checks: a damaged or foreign position must become a clear
//! error, never a panic or a silently wrong resume point. Integers are
//! big-endian.

use runnel_engine::{EngineError, Result};

/// Builds a position: the version byte, then the fields in order.
#[derive(Debug)]
pub(crate) struct PositionWriter {
    buf: Vec<u8>,
}

impl PositionWriter {
    /// A position of format `version`.
    pub(crate) fn new(version: u8) -> Self {
        Self { buf: vec![version] }
    }

    /// Appends one byte.
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a `u32`.
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a `u64`.
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a length-prefixed string.
    pub(crate) fn str(&mut self, v: &str) -> Result<&mut Self> {
        let len = u32::try_from(v.len())
            .map_err(|_| EngineError::Internal(format!("string too long for a position: {v}")))?;
        self.u32(len);
        self.buf.extend_from_slice(v.as_bytes());
        Ok(self)
    }

    /// The encoded bytes.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Reads a position written by [`PositionWriter`], failing with a plan
/// error that names the source on anything unexpected.
#[derive(Debug)]
pub(crate) struct PositionReader<'a> {
    what: &'static str,
    rest: &'a [u8],
}

impl<'a> PositionReader<'a> {
    /// Starts reading `bytes`, which must be of format `version`; `what`
    /// names the source in errors.
    pub(crate) fn new(what: &'static str, bytes: &'a [u8], version: u8) -> Result<Self> {
        let mut reader = Self { what, rest: bytes };
        let found = reader.u8().map_err(|_| reader.error("it is empty"))?;
        if found != version {
            return Err(reader.error(&format!(
                "it has format version {found}, this build reads version {version}"
            )));
        }
        Ok(reader)
    }

    /// An error about this position.
    pub(crate) fn error(&self, why: &str) -> EngineError {
        EngineError::Plan(format!(
            "cannot restore the position of the {} source from the checkpoint: {why}",
            self.what
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(self.error("it is truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| self.error("it is truncated"))
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a `u32`.
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a `u64`.
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a length-prefixed UTF-8 string.
    pub(crate) fn str(&mut self) -> Result<String> {
        let len = usize::try_from(self.u32()?).map_err(|_| self.error("a length overflows"))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.error("a name is not UTF-8"))
    }

    /// Checks that nothing follows the last field.
    pub(crate) fn finish(self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.error(&format!("{} unexpected trailing bytes", self.rest.len())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() -> Result<()> {
        let bytes = PositionWriter::new(3)
            .u8(7)
            .u32(9)
            .u64(u64::MAX)
            .str("a.json")?
            .finish();
        let mut r = PositionReader::new("test", &bytes, 3)?;
        assert_eq!(r.u8()?, 7);
        assert_eq!(r.u32()?, 9);
        assert_eq!(r.u64()?, u64::MAX);
        assert_eq!(r.str()?, "a.json");
        r.finish()?;

        assert!(PositionReader::new("test", &[], 3).is_err());
        assert!(PositionReader::new("test", &bytes, 4).is_err());
        for cut in 1..bytes.len() {
            let mut r = PositionReader::new("test", &bytes[..cut], 3)?;
            let all = (|| -> Result<()> {
                r.u8()?;
                r.u32()?;
                r.u64()?;
                r.str()?;
                Ok(())
            })();
            assert!(all.is_err(), "cut at {cut} must fail");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let mut r = PositionReader::new("test", &longer, 3)?;
        r.u8()?;
        r.u32()?;
        r.u64()?;
        r.str()?;
        assert!(r.finish().is_err());
        Ok(())
    }
}
