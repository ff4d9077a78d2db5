//! A bounds-checked little-endian cursor shared by the ROP, property, notification, IDSET
//! and FastTransfer decoders. Every read checks the remaining input first, so no length
//! taken from the wire can index out of bounds or size an allocation by itself.

use super::PropError;

/// A cursor over a byte slice that reports absolute offsets in its errors.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// Creates a cursor at the start of `buf`, whose offsets count from 0.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// Creates a cursor at the start of `buf`, whose offsets count from `base` (the position of
    /// `buf` inside a larger message).
    #[inline]
    pub fn with_base(buf: &'a [u8], base: usize) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    /// Returns the absolute offset of the next byte.
    #[inline]
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Returns the position inside this cursor's slice.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Returns the number of bytes not read yet.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Returns whether all input was read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Returns the unread bytes, without consuming them.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Reads `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PropError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(PropError::Truncated {
                what,
                offset: self.offset(),
                needed: n,
                available: self.remaining(),
            }),
        }
    }

    /// Reads a fixed-size array.
    #[inline]
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PropError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads a u8.
    #[inline]
    pub fn u8(&mut self, what: &'static str) -> Result<u8, PropError> {
        let [b] = self.array::<1>(what)?;
        Ok(b)
    }

    /// Reads a little-endian u16.
    #[inline]
    pub fn u16(&mut self, what: &'static str) -> Result<u16, PropError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian u32.
    #[inline]
    pub fn u32(&mut self, what: &'static str) -> Result<u32, PropError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian u64.
    #[inline]
    pub fn u64(&mut self, what: &'static str) -> Result<u64, PropError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a NUL-terminated 8-bit string and returns it without the NUL.
    #[inline]
    pub fn nul8(&mut self, what: &'static str) -> Result<&'a [u8], PropError> {
        let rest = self.rest();
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(PropError::Unterminated {
                what,
                offset: self.offset(),
            });
        };
        let text = rest.get(..end).unwrap_or_default();
        self.pos += end + 1;
        Ok(text)
    }

    /// Reads a NUL-terminated UTF-16LE string (terminator on a 2-byte boundary) and returns
    /// its bytes without the terminator.
    #[inline]
    pub fn nul16(&mut self, what: &'static str) -> Result<&'a [u8], PropError> {
        let rest = self.rest();
        let Some(units) = rest.chunks_exact(2).position(|pair| pair == [0, 0]) else {
            return Err(PropError::Unterminated {
                what,
                offset: self.offset(),
            });
        };
        let text = rest.get(..units * 2).unwrap_or_default();
        self.pos += units * 2 + 2;
        Ok(text)
    }

    /// Checks that `count` items of at least `min_size` bytes each can still follow, so a
    /// count from the wire can size an allocation.
    #[inline]
    pub fn check_count(
        &self,
        count: usize,
        min_size: usize,
        what: &'static str,
    ) -> Result<(), PropError> {
        let needed = count.saturating_mul(min_size);
        if needed > self.remaining() {
            return Err(PropError::Truncated {
                what,
                offset: self.offset(),
                needed,
                available: self.remaining(),
            });
        }
        Ok(())
    }
}
