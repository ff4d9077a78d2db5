//! Little-endian append helpers for encoders, and the checked conversions of lengths and
//! counts to the width of their wire fields.

use super::RopError;

/// Appends little-endian integers and byte strings to a `Vec<u8>`.
pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put(&mut self, bytes: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

fn too_long(field: &'static str, len: usize, max: usize) -> RopError {
    RopError::TooLong { field, len, max }
}

/// Converts a length or count to a one-byte field.
pub(crate) fn len_u8(len: usize, field: &'static str) -> Result<u8, RopError> {
    u8::try_from(len).map_err(|_| too_long(field, len, usize::from(u8::MAX)))
}

/// Converts a length or count to a two-byte field.
pub(crate) fn len_u16(len: usize, field: &'static str) -> Result<u16, RopError> {
    u16::try_from(len).map_err(|_| too_long(field, len, usize::from(u16::MAX)))
}

/// Converts a length or count to a four-byte field.
pub(crate) fn len_u32(len: usize, field: &'static str) -> Result<u32, RopError> {
    u32::try_from(len).map_err(|_| too_long(field, len, u32::MAX as usize))
}
