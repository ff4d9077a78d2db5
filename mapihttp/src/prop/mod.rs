//! Property tags, types and values of MS-OXCDATA 2.9 and 2.11: tags, every property type
//! including multi-valued ones, named properties (PropertyName), TaggedPropertyValue,
//! TypedPropertyValue, PropertyRow in its standard and flagged forms, restrictions, and the
//! tags a sync client needs as named constants.
//!
//! Values are encoded in two contexts that differ in count widths: ROP buffers (binary
//! counts u16, booleans 1 byte) and FastTransfer streams (every length u32, booleans
//! 2 bytes). [`ValueEncoding`] selects one.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod reader;
mod restriction;
mod row;
pub mod tags;
mod view;

pub use reader::Reader;
pub use restriction::{RelOp, Restriction};
pub use row::{PropertyRow, RowCell};
pub use view::{CellRef, RowView, decode_row_views};

use crate::ids::Guid;
use std::fmt;

/// Errors from decoding property tags, values, rows and restrictions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PropError {
    /// The input ended inside a field.
    #[error(
        "truncated {what} at offset {offset}: needs {needed} bytes, {available} left; the buffer is cut short or a count is wrong"
    )]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Byte offset of the field.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A NUL-terminated string had no terminator before the end of the input.
    #[error("unterminated {what} starting at offset {offset}: no NUL before the end of the buffer")]
    Unterminated {
        /// The field being read.
        what: &'static str,
        /// Byte offset where the string starts.
        offset: usize,
    },
    /// A property type that this codec does not know, or that the context does not allow.
    #[error(
        "unsupported property type 0x{ptype:04X} at offset {offset} in {context}; the value cannot be skipped without knowing its size"
    )]
    UnsupportedType {
        /// The property type.
        ptype: u16,
        /// Byte offset of the value.
        offset: usize,
        /// Where the value was found.
        context: &'static str,
    },
    /// A field held a value outside its defined set.
    #[error("invalid {what} 0x{value:X} at offset {offset}")]
    InvalidValue {
        /// The field being read.
        what: &'static str,
        /// The value found.
        value: u64,
        /// Byte offset of the field.
        offset: usize,
    },
    /// A value is longer than its size or count field can state, so it cannot be
    /// encoded.
    #[error(
        "cannot encode {what}: {len} is over its maximum of {max}; send a value this large through a stream (RopOpenStream) instead"
    )]
    TooLong {
        /// The field whose size or count would not fit.
        what: &'static str,
        /// The length or count of the value.
        len: usize,
        /// The largest length or count the field can carry.
        max: usize,
    },
    /// A restriction nested deeper than the decoder allows.
    #[error("restriction at offset {offset} nests deeper than {max} levels")]
    TooDeep {
        /// Byte offset of the restriction that went over the limit.
        offset: usize,
        /// The nesting limit.
        max: usize,
    },
}

/// A property type (MS-OXCDATA 2.11.1), the low 16 bits of a tag.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PropType(pub u16);

impl PropType {
    /// PtypUnspecified: the value carries its own type (TypedPropertyValue).
    pub const UNSPECIFIED: PropType = PropType(0x0000);
    /// PtypNull: no value bytes.
    pub const NULL: PropType = PropType(0x0001);
    /// PtypInteger16.
    pub const INTEGER16: PropType = PropType(0x0002);
    /// PtypInteger32.
    pub const INTEGER32: PropType = PropType(0x0003);
    /// PtypFloating32.
    pub const FLOATING32: PropType = PropType(0x0004);
    /// PtypFloating64.
    pub const FLOATING64: PropType = PropType(0x0005);
    /// PtypCurrency.
    pub const CURRENCY: PropType = PropType(0x0006);
    /// PtypFloatingTime.
    pub const FLOATING_TIME: PropType = PropType(0x0007);
    /// PtypErrorCode.
    pub const ERROR_CODE: PropType = PropType(0x000A);
    /// PtypBoolean.
    pub const BOOLEAN: PropType = PropType(0x000B);
    /// PtypObject.
    pub const OBJECT: PropType = PropType(0x000D);
    /// PtypInteger64.
    pub const INTEGER64: PropType = PropType(0x0014);
    /// PtypString8.
    pub const STRING8: PropType = PropType(0x001E);
    /// PtypString (UTF-16LE).
    pub const STRING: PropType = PropType(0x001F);
    /// PtypTime (FILETIME).
    pub const TIME: PropType = PropType(0x0040);
    /// PtypGuid.
    pub const GUID: PropType = PropType(0x0048);
    /// PtypServerId.
    pub const SERVER_ID: PropType = PropType(0x00FB);
    /// PtypRestriction.
    pub const RESTRICTION: PropType = PropType(0x00FD);
    /// PtypBinary.
    pub const BINARY: PropType = PropType(0x0102);
    /// Flag of multi-valued types.
    pub const MULTIPLE: u16 = 0x1000;
    /// Flag of a multi-valued column expanded to one row per value (MultivalueInstance).
    pub const MV_INSTANCE: u16 = 0x2000;
    /// Flag of a FastTransfer code-page string type; the low 15 bits are the code page.
    pub const CODE_PAGE_STRING: u16 = 0x8000;

    /// Returns whether the type is multi-valued.
    pub fn is_multiple(self) -> bool {
        self.0 & Self::MULTIPLE != 0 && self.0 & Self::CODE_PAGE_STRING == 0
    }

    /// Returns the single-valued type of a multi-valued type.
    pub fn element(self) -> PropType {
        PropType(self.0 & !(Self::MULTIPLE | Self::MV_INSTANCE))
    }
}

/// A property type serializes as its hexadecimal value, `0x001F`.
impl serde::Serialize for PropType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("0x{:04X}", self.0))
    }
}

impl fmt::Debug for PropType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PropType(0x{:04X})", self.0)
    }
}

/// A property tag (MS-OXCDATA 2.9): `PropertyId << 16 | PropertyType`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PropTag(pub u32);

impl PropTag {
    /// Builds a tag from its id and type.
    pub const fn new(id: u16, ptype: PropType) -> PropTag {
        PropTag(((id as u32) << 16) | ptype.0 as u32)
    }

    /// Returns the property id.
    pub const fn id(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// Returns the property type.
    pub const fn ptype(self) -> PropType {
        PropType(self.0 as u16)
    }

    /// Returns whether the id is in the named-property range (0x8000 to 0xFFFE), whose numeric ids
    /// are assigned per mailbox.
    pub const fn is_named(self) -> bool {
        self.id() >= 0x8000
    }

    /// Returns the same id with another type.
    pub const fn with_type(self, ptype: PropType) -> PropTag {
        PropTag::new(self.id(), ptype)
    }
}

/// A property tag serializes as its canonical name and value, `PidTagSubject(0x0037001F)`,
/// or `PropTag(0x...)` for a tag without a name here.
impl serde::Serialize for PropTag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{self:?}"))
    }
}

impl fmt::Debug for PropTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match tags::name(*self) {
            Some(name) => write!(f, "{name}(0x{:08X})", self.0),
            None => write!(f, "PropTag(0x{:08X})", self.0),
        }
    }
}

/// Where a value is encoded; the count widths differ (MS-OXCDATA 2.11.1 and
/// MS-OXCFXICS 2.2.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum ValueEncoding {
    /// ROP buffers: binary counts u16, multi-value counts u32, booleans 1 byte, strings
    /// NUL-terminated.
    Rop,
    /// FastTransfer streams: every length and count u32, booleans 2 bytes, strings with a
    /// u32 byte length that includes the terminator.
    FastTransfer,
}

/// A property value (MS-OXCDATA 2.11.1). The tag or type that goes with it decides how it
/// is encoded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub enum PropValue {
    /// PtypNull.
    Null,
    /// PtypInteger16.
    I16(i16),
    /// PtypInteger32.
    I32(i32),
    /// PtypFloating32.
    F32(f32),
    /// PtypFloating64.
    F64(f64),
    /// PtypCurrency: a 64-bit integer scaled by 10,000.
    Currency(i64),
    /// PtypFloatingTime: days since 1899-12-30 as a double.
    FloatingTime(f64),
    /// PtypErrorCode.
    Error(u32),
    /// PtypBoolean.
    Bool(bool),
    /// PtypInteger64.
    I64(i64),
    /// PtypString8, without its terminator, in the connection's code page.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    String8(Vec<u8>),
    /// PtypString. Unpaired surrogates are replaced by U+FFFD when decoding.
    Unicode(String),
    /// PtypTime as a FILETIME: 100-nanosecond intervals since 1601-01-01 UTC.
    Time(u64),
    /// PtypGuid.
    Guid(Guid),
    /// PtypServerId, raw.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    ServerId(Vec<u8>),
    /// PtypRestriction.
    Restriction(Box<Restriction>),
    /// PtypBinary.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    Binary(Vec<u8>),
    /// PtypObject, raw (in ROP buffers a u16-counted byte string, in FastTransfer streams a
    /// u32-counted one).
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    Object(Vec<u8>),
    /// A FastTransfer code-page string (type 0x8000 | code page), raw bytes without the
    /// terminator.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    CodePageString(Vec<u8>),
    /// PtypMultipleInteger16.
    MvI16(Vec<i16>),
    /// PtypMultipleInteger32.
    MvI32(Vec<i32>),
    /// PtypMultipleFloating32.
    MvF32(Vec<f32>),
    /// PtypMultipleFloating64.
    MvF64(Vec<f64>),
    /// PtypMultipleCurrency.
    MvCurrency(Vec<i64>),
    /// PtypMultipleFloatingTime.
    MvFloatingTime(Vec<f64>),
    /// PtypMultipleInteger64.
    MvI64(Vec<i64>),
    /// PtypMultipleString8.
    MvString8(Vec<Vec<u8>>),
    /// PtypMultipleString.
    MvUnicode(Vec<String>),
    /// PtypMultipleTime.
    MvTime(Vec<u64>),
    /// PtypMultipleGuid.
    MvGuid(Vec<Guid>),
    /// PtypMultipleBinary.
    MvBinary(Vec<Vec<u8>>),
}

#[inline]
pub(crate) fn utf16_to_string(bytes: &[u8]) -> String {
    // Fast path: subjects and names are mostly ASCII, whose UTF-16 units are one byte and
    // a zero.
    let mut ascii = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks_exact(2) {
        match pair {
            [low, 0] if *low < 0x80 => ascii.push(*low),
            _ => return utf16_to_string_slow(bytes),
        }
    }
    String::from_utf8(ascii).unwrap_or_default()
}

fn utf16_to_string_slow(bytes: &[u8]) -> String {
    let units = bytes.chunks_exact(2).map(|pair| {
        u16::from_le_bytes([
            pair.first().copied().unwrap_or(0),
            pair.get(1).copied().unwrap_or(0),
        ])
    });
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn write_utf16(out: &mut Vec<u8>, text: &str) {
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
}

/// Byte length of `text` as UTF-16 plus the 2-byte terminator.
fn utf16_len_with_nul(text: &str) -> usize {
    text.encode_utf16().count() * 2 + 2
}

fn strip_nul(bytes: &[u8], width: usize) -> &[u8] {
    match bytes.len().checked_sub(width) {
        Some(end) if bytes.get(end..).is_some_and(|t| t.iter().all(|&b| b == 0)) => {
            bytes.get(..end).unwrap_or_default()
        }
        _ => bytes,
    }
}

fn guid_from(bytes: [u8; 16]) -> Guid {
    Guid(bytes)
}

impl PropValue {
    /// Returns the natural type of this value (for multi-valued and code-page strings the type
    /// cannot carry the code page, so [`PropValue::CodePageString`] reports PtypString8).
    pub fn ptype(&self) -> PropType {
        let code = match self {
            PropValue::Null => 0x0001,
            PropValue::I16(_) => 0x0002,
            PropValue::I32(_) => 0x0003,
            PropValue::F32(_) => 0x0004,
            PropValue::F64(_) => 0x0005,
            PropValue::Currency(_) => 0x0006,
            PropValue::FloatingTime(_) => 0x0007,
            PropValue::Error(_) => 0x000A,
            PropValue::Bool(_) => 0x000B,
            PropValue::Object(_) => 0x000D,
            PropValue::I64(_) => 0x0014,
            PropValue::String8(_) | PropValue::CodePageString(_) => 0x001E,
            PropValue::Unicode(_) => 0x001F,
            PropValue::Time(_) => 0x0040,
            PropValue::Guid(_) => 0x0048,
            PropValue::ServerId(_) => 0x00FB,
            PropValue::Restriction(_) => 0x00FD,
            PropValue::Binary(_) => 0x0102,
            PropValue::MvI16(_) => 0x1002,
            PropValue::MvI32(_) => 0x1003,
            PropValue::MvF32(_) => 0x1004,
            PropValue::MvF64(_) => 0x1005,
            PropValue::MvCurrency(_) => 0x1006,
            PropValue::MvFloatingTime(_) => 0x1007,
            PropValue::MvI64(_) => 0x1014,
            PropValue::MvString8(_) => 0x101E,
            PropValue::MvUnicode(_) => 0x101F,
            PropValue::MvTime(_) => 0x1040,
            PropValue::MvGuid(_) => 0x1048,
            PropValue::MvBinary(_) => 0x1102,
        };
        PropType(code)
    }

    /// Decodes one value of type `ptype`.
    ///
    /// # Errors
    /// [`PropError::Truncated`] or [`PropError::Unterminated`] when the input ends inside
    /// the value, [`PropError::UnsupportedType`] for a type without a known encoding in
    /// this context.
    #[inline]
    pub fn decode(
        reader: &mut Reader<'_>,
        ptype: PropType,
        encoding: ValueEncoding,
    ) -> Result<PropValue, PropError> {
        let ft = encoding == ValueEncoding::FastTransfer;
        let offset = reader.offset();

        if ft && ptype.0 & PropType::CODE_PAGE_STRING != 0 {
            let len = reader.u32("code-page string length")? as usize;
            let bytes = reader.take(len, "code-page string")?;
            return Ok(PropValue::CodePageString(strip_nul(bytes, 1).to_vec()));
        }

        if ptype.is_multiple() {
            return Self::decode_multiple(reader, ptype, encoding);
        }

        let value = match PropType(ptype.0 & !PropType::MV_INSTANCE) {
            PropType::NULL => PropValue::Null,
            PropType::INTEGER16 => PropValue::I16(reader.u16("PtypInteger16")? as i16),
            PropType::INTEGER32 => PropValue::I32(reader.u32("PtypInteger32")? as i32),
            PropType::FLOATING32 => PropValue::F32(f32::from_bits(reader.u32("PtypFloating32")?)),
            PropType::FLOATING64 => PropValue::F64(f64::from_bits(reader.u64("PtypFloating64")?)),
            PropType::CURRENCY => PropValue::Currency(reader.u64("PtypCurrency")? as i64),
            PropType::FLOATING_TIME => {
                PropValue::FloatingTime(f64::from_bits(reader.u64("PtypFloatingTime")?))
            }
            PropType::ERROR_CODE => PropValue::Error(reader.u32("PtypErrorCode")?),
            PropType::BOOLEAN => {
                let raw = if ft {
                    u64::from(reader.u16("PtypBoolean")?)
                } else {
                    u64::from(reader.u8("PtypBoolean")?)
                };
                PropValue::Bool(raw != 0)
            }
            PropType::INTEGER64 => PropValue::I64(reader.u64("PtypInteger64")? as i64),
            PropType::TIME => PropValue::Time(reader.u64("PtypTime")?),
            PropType::GUID => PropValue::Guid(guid_from(reader.array("PtypGuid")?)),
            PropType::STRING8 => {
                if ft {
                    let len = reader.u32("PtypString8 length")? as usize;
                    PropValue::String8(strip_nul(reader.take(len, "PtypString8")?, 1).to_vec())
                } else {
                    PropValue::String8(reader.nul8("PtypString8")?.to_vec())
                }
            }
            PropType::STRING => {
                let bytes = if ft {
                    let len = reader.u32("PtypString length")? as usize;
                    strip_nul(reader.take(len, "PtypString")?, 2)
                } else {
                    reader.nul16("PtypString")?
                };
                PropValue::Unicode(utf16_to_string(bytes))
            }
            PropType::BINARY | PropType::OBJECT | PropType::SERVER_ID => {
                let len = if ft {
                    reader.u32("binary length")? as usize
                } else {
                    usize::from(reader.u16("binary length")?)
                };
                let bytes = reader.take(len, "binary value")?.to_vec();
                match ptype.element() {
                    PropType::BINARY => PropValue::Binary(bytes),
                    PropType::OBJECT => PropValue::Object(bytes),
                    _ => PropValue::ServerId(bytes),
                }
            }
            PropType::RESTRICTION if !ft => {
                PropValue::Restriction(Box::new(Restriction::decode(reader)?))
            }
            _ => {
                return Err(PropError::UnsupportedType {
                    ptype: ptype.0,
                    offset,
                    context: if ft {
                        "a FastTransfer stream"
                    } else {
                        "a ROP buffer"
                    },
                });
            }
        };
        Ok(value)
    }

    fn decode_multiple(
        reader: &mut Reader<'_>,
        ptype: PropType,
        encoding: ValueEncoding,
    ) -> Result<PropValue, PropError> {
        let offset = reader.offset();
        let count = reader.u32("multi-value count")? as usize;
        let element = ptype.element();
        // Every element takes at least one byte (a terminator or a count), so the count
        // is checked against the remaining input before any allocation.
        let min_size = match element {
            PropType::INTEGER16 => 2,
            PropType::INTEGER32 | PropType::FLOATING32 => 4,
            PropType::GUID => 16,
            PropType::STRING | PropType::BINARY => 2,
            PropType::STRING8 => 1,
            _ => 8,
        };
        reader.check_count(count, min_size, "multi-valued property")?;

        macro_rules! collect {
            ($variant:ident, $read:expr) => {{
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push($read);
                }
                PropValue::$variant(items)
            }};
        }
        let ft = encoding == ValueEncoding::FastTransfer;
        let value = match element {
            PropType::INTEGER16 => collect!(MvI16, reader.u16("PtypMultipleInteger16")? as i16),
            PropType::INTEGER32 => collect!(MvI32, reader.u32("PtypMultipleInteger32")? as i32),
            PropType::FLOATING32 => {
                collect!(MvF32, f32::from_bits(reader.u32("PtypMultipleFloating32")?))
            }
            PropType::FLOATING64 => {
                collect!(MvF64, f64::from_bits(reader.u64("PtypMultipleFloating64")?))
            }
            PropType::CURRENCY => collect!(MvCurrency, reader.u64("PtypMultipleCurrency")? as i64),
            PropType::FLOATING_TIME => collect!(
                MvFloatingTime,
                f64::from_bits(reader.u64("PtypMultipleFloatingTime")?)
            ),
            PropType::INTEGER64 => collect!(MvI64, reader.u64("PtypMultipleInteger64")? as i64),
            PropType::TIME => collect!(MvTime, reader.u64("PtypMultipleTime")?),
            PropType::GUID => collect!(MvGuid, guid_from(reader.array("PtypMultipleGuid")?)),
            PropType::STRING8 => collect!(MvString8, {
                match Self::decode(reader, PropType::STRING8, encoding)? {
                    PropValue::String8(s) => s,
                    _ => Vec::new(),
                }
            }),
            PropType::STRING => collect!(MvUnicode, {
                match Self::decode(reader, PropType::STRING, encoding)? {
                    PropValue::Unicode(s) => s,
                    _ => String::new(),
                }
            }),
            PropType::BINARY => collect!(MvBinary, {
                let len = if ft {
                    reader.u32("binary length")? as usize
                } else {
                    usize::from(reader.u16("binary length")?)
                };
                reader.take(len, "binary value")?.to_vec()
            }),
            _ => {
                return Err(PropError::UnsupportedType {
                    ptype: ptype.0,
                    offset,
                    context: "a multi-valued property",
                });
            }
        };
        Ok(value)
    }

    /// Appends the encoding of this value. The value's variant decides the layout; the
    /// caller pairs it with a tag of the matching type (see [`TaggedValue::new`]).
    pub fn encode(&self, out: &mut Vec<u8>, encoding: ValueEncoding) {
        let ft = encoding == ValueEncoding::FastTransfer;
        let write_len = |out: &mut Vec<u8>, len: usize| {
            if ft {
                out.extend_from_slice(&(len as u32).to_le_bytes());
            } else {
                out.extend_from_slice(&(len as u16).to_le_bytes());
            }
        };
        let write_count = |out: &mut Vec<u8>, count: usize| {
            out.extend_from_slice(&(count as u32).to_le_bytes());
        };
        match self {
            PropValue::Null => {}
            PropValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            PropValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            PropValue::F32(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
            PropValue::F64(v) | PropValue::FloatingTime(v) => {
                out.extend_from_slice(&v.to_bits().to_le_bytes())
            }
            PropValue::Currency(v) | PropValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            PropValue::Error(v) => out.extend_from_slice(&v.to_le_bytes()),
            PropValue::Bool(v) => {
                if ft {
                    out.extend_from_slice(&u16::from(*v).to_le_bytes());
                } else {
                    out.push(u8::from(*v));
                }
            }
            PropValue::Time(v) => out.extend_from_slice(&v.to_le_bytes()),
            PropValue::Guid(g) => out.extend_from_slice(&g.0),
            PropValue::String8(s) | PropValue::CodePageString(s) => {
                if ft {
                    write_count(out, s.len() + 1);
                }
                out.extend_from_slice(s);
                out.push(0);
            }
            PropValue::Unicode(s) => {
                if ft {
                    write_count(out, utf16_len_with_nul(s));
                }
                write_utf16(out, s);
                out.extend_from_slice(&[0, 0]);
            }
            PropValue::Binary(b) | PropValue::Object(b) | PropValue::ServerId(b) => {
                write_len(out, b.len());
                out.extend_from_slice(b);
            }
            PropValue::Restriction(r) => r.encode(out),
            PropValue::MvI16(v) => {
                write_count(out, v.len());
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
            PropValue::MvI32(v) => {
                write_count(out, v.len());
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
            PropValue::MvF32(v) => {
                write_count(out, v.len());
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_bits().to_le_bytes()));
            }
            PropValue::MvF64(v) | PropValue::MvFloatingTime(v) => {
                write_count(out, v.len());
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_bits().to_le_bytes()));
            }
            PropValue::MvCurrency(v) | PropValue::MvI64(v) => {
                write_count(out, v.len());
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
            PropValue::MvTime(v) => {
                write_count(out, v.len());
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
            PropValue::MvGuid(v) => {
                write_count(out, v.len());
                v.iter().for_each(|g| out.extend_from_slice(&g.0));
            }
            PropValue::MvString8(v) => {
                write_count(out, v.len());
                for s in v {
                    PropValue::String8(s.clone()).encode(out, encoding);
                }
            }
            PropValue::MvUnicode(v) => {
                write_count(out, v.len());
                for s in v {
                    if ft {
                        write_count(out, utf16_len_with_nul(s));
                    }
                    write_utf16(out, s);
                    out.extend_from_slice(&[0, 0]);
                }
            }
            PropValue::MvBinary(v) => {
                write_count(out, v.len());
                for b in v {
                    write_len(out, b.len());
                    out.extend_from_slice(b);
                }
            }
        }
    }

    /// Checks that every length and count of this value fits its wire field, so that
    /// [`PropValue::encode`] cannot wrap one. In a ROP buffer a binary value's length is
    /// 16 bits; counts and FastTransfer lengths are 32 bits.
    ///
    /// # Errors
    /// [`PropError::TooLong`] naming the first field that does not fit.
    pub fn check_encodable(&self, encoding: ValueEncoding) -> Result<(), PropError> {
        let max_len = if encoding == ValueEncoding::FastTransfer {
            u32::MAX as usize
        } else {
            usize::from(u16::MAX)
        };
        let check = |what: &'static str, len: usize, max: usize| {
            if len > max {
                Err(PropError::TooLong { what, len, max })
            } else {
                Ok(())
            }
        };
        let count_max = u32::MAX as usize;
        match self {
            PropValue::Binary(b) | PropValue::Object(b) | PropValue::ServerId(b) => {
                check("binary value length", b.len(), max_len)
            }
            PropValue::String8(s) | PropValue::CodePageString(s) => {
                check("string value length", s.len() + 1, count_max)
            }
            PropValue::Unicode(s) => check("string value length", utf16_len_with_nul(s), count_max),
            PropValue::Restriction(r) => r.check_encodable(),
            PropValue::MvI16(v) => check("multi-value count", v.len(), count_max),
            PropValue::MvI32(v) => check("multi-value count", v.len(), count_max),
            PropValue::MvF32(v) => check("multi-value count", v.len(), count_max),
            PropValue::MvF64(v) | PropValue::MvFloatingTime(v) => {
                check("multi-value count", v.len(), count_max)
            }
            PropValue::MvCurrency(v) | PropValue::MvI64(v) => {
                check("multi-value count", v.len(), count_max)
            }
            PropValue::MvTime(v) => check("multi-value count", v.len(), count_max),
            PropValue::MvGuid(v) => check("multi-value count", v.len(), count_max),
            PropValue::MvString8(v) => {
                check("multi-value count", v.len(), count_max)?;
                v.iter()
                    .try_for_each(|s| check("string value length", s.len() + 1, count_max))
            }
            PropValue::MvUnicode(v) => {
                check("multi-value count", v.len(), count_max)?;
                v.iter().try_for_each(|s| {
                    check("string value length", utf16_len_with_nul(s), count_max)
                })
            }
            PropValue::MvBinary(v) => {
                check("multi-value count", v.len(), count_max)?;
                v.iter()
                    .try_for_each(|b| check("binary value length", b.len(), max_len))
            }
            _ => Ok(()),
        }
    }

    /// Returns the value as a FILETIME converted to a UTC date and time, for PtypTime values in
    /// range.
    pub fn as_datetime(&self) -> Option<time::OffsetDateTime> {
        match self {
            PropValue::Time(ft) => filetime_to_datetime(*ft),
            _ => None,
        }
    }
}

/// Converts a FILETIME (100 ns intervals since 1601-01-01 UTC) to a date and time; `None`
/// when it is outside what `time` represents.
pub fn filetime_to_datetime(filetime: u64) -> Option<time::OffsetDateTime> {
    // 11_644_473_600 seconds separate 1601-01-01 and the Unix epoch.
    let nanos = i128::from(filetime) * 100 - 11_644_473_600i128 * 1_000_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// A value with its tag (TaggedPropertyValue, MS-OXCDATA 2.11.4).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaggedValue {
    /// The property tag.
    pub tag: PropTag,
    /// The value, of the tag's type.
    pub value: PropValue,
}

impl TaggedValue {
    /// Pairs a tag and a value; returns `None` when the value's type is not the tag's
    /// (ignoring the MultivalueInstance bit).
    pub fn new(tag: PropTag, value: PropValue) -> Option<TaggedValue> {
        let tag_type = PropType(tag.ptype().0 & !PropType::MV_INSTANCE);
        let matches = value.ptype() == tag_type
            || matches!(value, PropValue::CodePageString(_))
                && tag_type.0 & PropType::CODE_PAGE_STRING != 0;
        matches.then_some(TaggedValue { tag, value })
    }

    /// Decodes a TaggedPropertyValue from a ROP buffer.
    ///
    /// # Errors
    /// [`PropError`] when the value is cut short or of an unknown type.
    pub fn decode(reader: &mut Reader<'_>) -> Result<TaggedValue, PropError> {
        let tag = PropTag(reader.u32("property tag")?);
        let value = if tag.ptype() == PropType::UNSPECIFIED {
            // Restriction values may carry PtypUnspecified; the type then precedes the value.
            let ptype = PropType(reader.u16("property type")?);
            PropValue::decode(reader, ptype, ValueEncoding::Rop)?
        } else {
            PropValue::decode(reader, tag.ptype(), ValueEncoding::Rop)?
        };
        Ok(TaggedValue { tag, value })
    }

    /// Appends the ROP-buffer encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tag.0.to_le_bytes());
        if self.tag.ptype() == PropType::UNSPECIFIED {
            out.extend_from_slice(&self.value.ptype().0.to_le_bytes());
        }
        self.value.encode(out, ValueEncoding::Rop);
    }

    /// Appends the ROP-buffer encoding after checking that no length or count wraps.
    ///
    /// # Errors
    /// [`PropError::TooLong`] when a length or count does not fit its field; nothing is
    /// appended then.
    pub fn try_encode(&self, out: &mut Vec<u8>) -> Result<(), PropError> {
        self.value.check_encodable(ValueEncoding::Rop)?;
        self.encode(out);
        Ok(())
    }
}

/// Decodes `count u16` followed by that many TaggedPropertyValues.
///
/// # Errors
/// [`PropError`] when a value is cut short or of an unknown type.
pub fn decode_tagged_values(
    reader: &mut Reader<'_>,
    count: usize,
) -> Result<Vec<TaggedValue>, PropError> {
    reader.check_count(count, 4, "property values")?;
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        values.push(TaggedValue::decode(reader)?);
    }
    Ok(values)
}

/// Decodes `Count u16 | PropertyTag u32 × Count` (PropertyTagArray).
///
/// # Errors
/// [`PropError::Truncated`] when the array is cut short.
pub fn decode_tag_array(reader: &mut Reader<'_>) -> Result<Vec<PropTag>, PropError> {
    let count = usize::from(reader.u16("property tag count")?);
    decode_tags(reader, count)
}

/// Decodes `count` property tags.
///
/// # Errors
/// [`PropError::Truncated`] when the tags are cut short.
pub fn decode_tags(reader: &mut Reader<'_>, count: usize) -> Result<Vec<PropTag>, PropError> {
    reader.check_count(count, 4, "property tags")?;
    let mut tags = Vec::with_capacity(count);
    for _ in 0..count {
        tags.push(PropTag(reader.u32("property tag")?));
    }
    Ok(tags)
}

/// Appends `Count u16 | PropertyTag u32 × Count` after checking that the count fits.
///
/// # Errors
/// [`PropError::TooLong`] when there are more than 65,535 tags; nothing is appended then.
pub fn try_encode_tag_array(out: &mut Vec<u8>, tags: &[PropTag]) -> Result<(), PropError> {
    if tags.len() > usize::from(u16::MAX) {
        return Err(PropError::TooLong {
            what: "property tag count",
            len: tags.len(),
            max: usize::from(u16::MAX),
        });
    }
    encode_tag_array(out, tags);
    Ok(())
}

/// Appends `Count u16 | PropertyTag u32 × Count`. The count wraps above 65,535 tags; use
/// [`try_encode_tag_array`] where the caller does not bound it.
pub fn encode_tag_array(out: &mut Vec<u8>, tags: &[PropTag]) {
    out.extend_from_slice(&(tags.len() as u16).to_le_bytes());
    for tag in tags {
        out.extend_from_slice(&tag.0.to_le_bytes());
    }
}

/// The name half of a named property (MS-OXCDATA 2.6.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum NameKind {
    /// A numeric long id (Kind 0x00).
    Lid(u32),
    /// A string name (Kind 0x01).
    Name(String),
}

/// A named property: a property set GUID and a long id or a string name (PropertyName,
/// MS-OXCDATA 2.6.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PropertyName {
    /// The property set.
    pub guid: Guid,
    /// The long id or string name.
    pub kind: NameKind,
}

impl PropertyName {
    /// Decodes a PropertyName from a ROP buffer: `Kind u8 | GUID | LID u32` or
    /// `Kind u8 | GUID | NameSize u8 | Name` (UTF-16LE, NameSize bytes including the
    /// terminator). Kind 0xFF (no name) is rejected.
    ///
    /// # Errors
    /// [`PropError`] when the name is cut short or its kind is unknown.
    pub fn decode(reader: &mut Reader<'_>) -> Result<PropertyName, PropError> {
        let offset = reader.offset();
        let kind = reader.u8("PropertyName Kind")?;
        let guid = Guid(reader.array("PropertyName GUID")?);
        let kind = match kind {
            0x00 => NameKind::Lid(reader.u32("PropertyName LID")?),
            0x01 => {
                let size = usize::from(reader.u8("PropertyName NameSize")?);
                let bytes = reader.take(size, "PropertyName Name")?;
                NameKind::Name(utf16_to_string(strip_nul(bytes, 2)))
            }
            other => {
                return Err(PropError::InvalidValue {
                    what: "PropertyName Kind",
                    value: u64::from(other),
                    offset,
                });
            }
        };
        Ok(PropertyName { guid, kind })
    }

    /// Appends the ROP-buffer encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.kind {
            NameKind::Lid(lid) => {
                out.push(0x00);
                out.extend_from_slice(&self.guid.0);
                out.extend_from_slice(&lid.to_le_bytes());
            }
            NameKind::Name(name) => {
                out.push(0x01);
                out.extend_from_slice(&self.guid.0);
                // NameSize is one byte, so the name and its terminator fit in at most
                // 127 UTF-16 code units (254 bytes). A longer name cannot be sent in
                // this form: it is cut at the last whole character that fits, so that
                // NameSize always equals the bytes written.
                let mut units = 0usize;
                let fitting: String = name
                    .chars()
                    .take_while(|c| {
                        units += c.len_utf16();
                        units < 127
                    })
                    .collect();
                let size = u8::try_from(utf16_len_with_nul(&fitting)).unwrap_or(u8::MAX);
                out.push(size);
                write_utf16(out, &fitting);
                out.extend_from_slice(&[0, 0]);
            }
        }
    }

    /// Decodes the FastTransfer form that follows a named tag: `GUID | Kind u8 | (Dispid
    /// u32 | Name NUL16)` (MS-OXCFXICS 2.2.4.1).
    ///
    /// # Errors
    /// [`PropError`] when the name is cut short or its kind is unknown.
    pub fn decode_fast_transfer(reader: &mut Reader<'_>) -> Result<PropertyName, PropError> {
        let guid = Guid(reader.array("named property GUID")?);
        let offset = reader.offset();
        let kind = match reader.u8("named property Kind")? {
            0x00 => NameKind::Lid(reader.u32("named property Dispid")?),
            0x01 => NameKind::Name(utf16_to_string(reader.nul16("named property Name")?)),
            other => {
                return Err(PropError::InvalidValue {
                    what: "named property Kind",
                    value: u64::from(other),
                    offset,
                });
            }
        };
        Ok(PropertyName { guid, kind })
    }

    /// Appends the FastTransfer form.
    pub fn encode_fast_transfer(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.guid.0);
        match &self.kind {
            NameKind::Lid(lid) => {
                out.push(0x00);
                out.extend_from_slice(&lid.to_le_bytes());
            }
            NameKind::Name(name) => {
                out.push(0x01);
                write_utf16(out, name);
                out.extend_from_slice(&[0, 0]);
            }
        }
    }
}

pub(crate) fn decode_utf16(bytes: &[u8]) -> String {
    utf16_to_string(bytes)
}

pub(crate) fn encode_utf16_nul(out: &mut Vec<u8>, text: &str) {
    write_utf16(out, text);
    out.extend_from_slice(&[0, 0]);
}
