//! Property streams (MS-OXCPRPT streams, MS-OXCROPS 2.2.9): a property of a message read
//! or written in pieces with RopOpenStream, RopReadStream, RopWriteStream,
//! RopCommitStream and RopGetStreamSize, for values too large for one ROP.
//!
//! A stream contains the property's bytes: UTF-16LE code units without a terminator for
//! PtypString, the bytes for PtypString8 and PtypBinary.

use exmux_mapihttp::prop::{PropTag, PropType, PropValue, PropertyRow, RowCell, TaggedValue};
use exmux_mapihttp::rop::error_code;

/// Maximum size, in stream bytes, of a value that RopGetPropertiesSpecific and
/// RopGetPropertiesAll return inline. A larger one comes back as the error ecMAPIOOM
/// (0x8007000E), so the client reads it with a stream. The size is this emulator's
/// choice, not a figure taken from Exchange.
pub(crate) const MAX_INLINE_PROPERTY: usize = 0x4000;
/// ecMAPIOOM: the value is too large to return inline.
pub(crate) const NOT_ENOUGH_MEMORY: u32 = 0x8007_000E;
/// Maximum number of bytes in one RopReadStream response, so a response stays within
/// one 32 KiB extended-buffer segment.
const MAX_READ: usize = 0x7000;
/// OpenModeFlags: read and write.
const READ_WRITE: u8 = 0x01;
/// OpenModeFlags: create the property empty, or truncate it, and open it for writing.
const CREATE: u8 = 0x02;

/// An open stream on a property of the message behind `message`.
#[derive(Debug)]
pub(crate) struct StreamObject {
    /// The server handle of the message the stream belongs to.
    pub(crate) message: u32,
    /// The property.
    pub(crate) tag: PropTag,
    /// The stream's bytes.
    pub(crate) data: Vec<u8>,
    /// The seek pointer.
    pub(crate) position: usize,
    /// Whether RopWriteStream and RopCommitStream are allowed.
    pub(crate) writable: bool,
}

/// Returns the stream bytes of a value, or `None` for a type streams do not carry.
pub(crate) fn bytes_of(value: &PropValue) -> Option<Vec<u8>> {
    match value {
        PropValue::Unicode(text) => Some(text.encode_utf16().flat_map(u16::to_le_bytes).collect()),
        PropValue::String8(bytes) | PropValue::Binary(bytes) => Some(bytes.clone()),
        _ => None,
    }
}

/// Returns the value of a property of type `ptype` from its stream bytes.
///
/// # Errors
///
/// ecNotSupported for a type streams do not carry, ecInvalidParam for a PtypString
/// stream of an odd length.
fn value_from(ptype: PropType, bytes: &[u8]) -> Result<PropValue, u32> {
    match ptype {
        PropType::STRING => {
            if !bytes.len().is_multiple_of(2) {
                return Err(error_code::INVALID_PARAMETER);
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| match pair {
                    [low, high] => u16::from_le_bytes([*low, *high]),
                    _ => 0,
                })
                .collect();
            Ok(PropValue::Unicode(String::from_utf16_lossy(&units)))
        }
        PropType::STRING8 => Ok(PropValue::String8(bytes.to_vec())),
        PropType::BINARY => Ok(PropValue::Binary(bytes.to_vec())),
        _ => Err(error_code::NOT_SUPPORTED),
    }
}

/// Opens a stream on `tag` of a message whose current values are `values`.
///
/// # Errors
///
/// ecNotSupported for a type streams do not carry, ecNotFound when the property has no
/// value and the mode does not create it.
pub(crate) fn open(
    message: u32,
    values: &[TaggedValue],
    tag: PropTag,
    open_mode_flags: u8,
) -> Result<StreamObject, u32> {
    if !matches!(
        tag.ptype(),
        PropType::STRING | PropType::STRING8 | PropType::BINARY
    ) {
        return Err(error_code::NOT_SUPPORTED);
    }
    let create = open_mode_flags & CREATE != 0;
    let data = if create {
        Vec::new()
    } else {
        let value = values
            .iter()
            .find(|v| v.tag == tag)
            .ok_or(error_code::NOT_FOUND)?;
        bytes_of(&value.value).ok_or(error_code::NOT_SUPPORTED)?
    };
    Ok(StreamObject {
        message,
        tag,
        data,
        position: 0,
        writable: create || open_mode_flags & READ_WRITE != 0,
    })
}

/// Reads up to `requested` bytes from the seek pointer and advances it.
pub(crate) fn read(stream: &mut StreamObject, requested: usize) -> Vec<u8> {
    let start = stream.position.min(stream.data.len());
    let end = start
        .saturating_add(requested.min(MAX_READ))
        .min(stream.data.len());
    stream.position = end;
    stream.data.get(start..end).unwrap_or_default().to_vec()
}

/// Writes `data` at the seek pointer, growing the stream, and returns WrittenSize.
///
/// # Errors
///
/// ecAccessDenied on a stream opened read-only.
pub(crate) fn write(stream: &mut StreamObject, data: &[u8]) -> Result<u16, u32> {
    if !stream.writable {
        return Err(error_code::ACCESS_DENIED);
    }
    let start = stream.position.min(stream.data.len());
    let end = start + data.len();
    if stream.data.len() < end {
        stream.data.resize(end, 0);
    }
    if let Some(target) = stream.data.get_mut(start..end) {
        target.copy_from_slice(data);
    }
    stream.position = end;
    Ok(u16::try_from(data.len()).unwrap_or(u16::MAX))
}

/// Returns the property value a commit writes to the message.
///
/// # Errors
///
/// ecAccessDenied on a stream opened read-only, and the errors of the conversion.
pub(crate) fn commit(stream: &StreamObject) -> Result<TaggedValue, u32> {
    if !stream.writable {
        return Err(error_code::ACCESS_DENIED);
    }
    Ok(TaggedValue {
        tag: stream.tag,
        value: value_from(stream.tag.ptype(), &stream.data)?,
    })
}

/// Replaces each value larger than the inline limit with ecMAPIOOM, as a
/// RopGetPropertiesAll returns it: the tag's type becomes PtypErrorCode.
pub(crate) fn limit_values(values: Vec<TaggedValue>, limit: usize) -> Vec<TaggedValue> {
    values
        .into_iter()
        .map(|value| match bytes_of(&value.value) {
            Some(bytes) if bytes.len() > limit => TaggedValue {
                tag: PropTag((value.tag.0 & 0xFFFF_0000) | u32::from(PropType::ERROR_CODE.0)),
                value: PropValue::Error(NOT_ENOUGH_MEMORY),
            },
            _ => value,
        })
        .collect()
}

/// Replaces each cell larger than the inline limit with ecMAPIOOM, as a
/// RopGetPropertiesSpecific returns it: the row becomes a flagged row.
pub(crate) fn limit_row(row: PropertyRow, columns: &[PropTag], limit: usize) -> PropertyRow {
    let mut flagged = row.flagged;
    let cells = row
        .cells
        .into_iter()
        .zip(columns)
        .map(|(cell, column)| match &cell {
            RowCell::Value(value) if bytes_of(value).is_some_and(|b| b.len() > limit) => {
                flagged = true;
                RowCell::Error {
                    code: NOT_ENOUGH_MEMORY,
                    ptype: (column.ptype() == PropType::UNSPECIFIED)
                        .then_some(PropType::ERROR_CODE),
                }
            }
            _ => cell,
        })
        .collect();
    PropertyRow { flagged, cells }
}

/// Returns the inline limit of a RopGetPropertiesSpecific or RopGetPropertiesAll:
/// PropertySizeLimit when the client set one below the emulator's, else the emulator's.
pub(crate) fn inline_limit(property_size_limit: u16) -> usize {
    match usize::from(property_size_limit) {
        0 => MAX_INLINE_PROPERTY,
        limit => limit.min(MAX_INLINE_PROPERTY),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    const BODY: PropTag = PropTag(0x1000_001F);

    #[test]
    fn write_commit_round_trip() {
        let mut stream = open(1, &[], BODY, CREATE).unwrap();
        let text = "héllo wörld ".repeat(100);
        let bytes = bytes_of(&PropValue::Unicode(text.clone())).unwrap();
        for chunk in bytes.chunks(333) {
            assert_eq!(usize::from(write(&mut stream, chunk).unwrap()), chunk.len());
        }
        assert_eq!(commit(&stream).unwrap().value, PropValue::Unicode(text));
    }

    #[test]
    fn read_advances_and_stops_at_end() {
        let values = [TaggedValue {
            tag: BODY,
            value: PropValue::Unicode("abc".to_owned()),
        }];
        let mut stream = open(1, &values, BODY, 0).unwrap();
        assert_eq!(read(&mut stream, 4), vec![b'a', 0, b'b', 0]);
        assert_eq!(read(&mut stream, 100), vec![b'c', 0]);
        assert!(read(&mut stream, 100).is_empty());
        assert_eq!(write(&mut stream, b"x"), Err(error_code::ACCESS_DENIED));
    }

    #[test]
    fn open_missing_property_without_create() {
        assert_eq!(open(1, &[], BODY, 0).unwrap_err(), error_code::NOT_FOUND);
        let int_tag = PropTag(0x0E07_0003);
        assert_eq!(
            open(1, &[], int_tag, CREATE).unwrap_err(),
            error_code::NOT_SUPPORTED
        );
    }

    #[test]
    fn limit_values_replaces_large() {
        let values = vec![
            TaggedValue {
                tag: BODY,
                value: PropValue::Unicode("x".repeat(10)),
            },
            TaggedValue {
                tag: PropTag(0x0037_001F),
                value: PropValue::Unicode("short".to_owned()),
            },
        ];
        let limited = limit_values(values, 12);
        assert_eq!(limited[0].tag, PropTag(0x1000_000A));
        assert_eq!(limited[0].value, PropValue::Error(NOT_ENOUGH_MEMORY));
        assert_eq!(limited[1].value, PropValue::Unicode("short".to_owned()));
    }
}
