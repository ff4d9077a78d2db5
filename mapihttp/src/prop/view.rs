//! A borrowing view of PropertyRows (MS-OXCDATA 2.8.1). Each row is checked and cut out of
//! the buffer once, and its cells are read from those bytes on demand. Decoding a
//! RopQueryRows response so allocates one `Vec` for all rows, where the owned decoder
//! allocates one per row and a `String` per text cell.

use super::{PropError, PropTag, PropType, PropValue, Reader, ValueEncoding, utf16_to_string};

/// One cell of a [`RowView`], borrowing its value bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CellRef<'a> {
    /// A value of type `ptype`, as its wire bytes (for strings without the NUL, for
    /// binary values without the length).
    Value {
        /// The value's type (the column's, or the one a PtypUnspecified column sent).
        ptype: PropType,
        /// The value bytes.
        bytes: &'a [u8],
    },
    /// Flag 0x01 of a flagged row: no value.
    Missing,
    /// Flag 0x0A of a flagged row: an error code in place of the value.
    Error {
        /// The error code.
        code: u32,
    },
}

impl<'a> CellRef<'a> {
    /// Returns a PtypInteger32 value.
    pub fn as_i32(&self) -> Option<i32> {
        match self {
            CellRef::Value {
                ptype: PropType::INTEGER32,
                bytes,
            } => Some(i32::from_le_bytes((*bytes).try_into().ok()?)),
            _ => None,
        }
    }

    /// Returns a PtypInteger64 or PtypTime value as its 64 bits.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            CellRef::Value {
                ptype: PropType::INTEGER64 | PropType::TIME,
                bytes,
            } => Some(u64::from_le_bytes((*bytes).try_into().ok()?)),
            _ => None,
        }
    }

    /// Returns a PtypString value as UTF-16LE bytes without the NUL.
    pub fn as_utf16(&self) -> Option<&'a [u8]> {
        match self {
            CellRef::Value {
                ptype: PropType::STRING,
                bytes,
            } => Some(bytes),
            _ => None,
        }
    }

    /// Returns a PtypString value converted to a `String`, with U+FFFD for unpaired
    /// surrogates.
    pub fn to_text(&self) -> Option<String> {
        self.as_utf16().map(utf16_to_string)
    }

    /// Converts the cell's value to an owned [`PropValue`]; `None` for a missing or error
    /// cell.
    ///
    /// # Errors
    /// [`PropError`] when the bytes do not hold a value of the type. That cannot happen
    /// for a cell of a [`RowView`], because its bytes were checked when the row was cut
    /// out.
    pub fn to_value(&self) -> Result<Option<PropValue>, PropError> {
        let CellRef::Value { ptype, bytes } = self else {
            return Ok(None);
        };
        let value = match *ptype {
            PropType::STRING => PropValue::Unicode(utf16_to_string(bytes)),
            PropType::STRING8 => PropValue::String8(bytes.to_vec()),
            PropType::BINARY => PropValue::Binary(bytes.to_vec()),
            other => PropValue::decode(&mut Reader::new(bytes), other, ValueEncoding::Rop)?,
        };
        Ok(Some(value))
    }
}

/// A PropertyRow whose bytes were checked against its column set, read cell by cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowView<'a> {
    flagged: bool,
    bytes: &'a [u8],
    columns: &'a [PropTag],
}

/// Finds the value of type `ptype` at the start of `r` and moves past it. Returns the
/// value bytes as [`CellRef::Value`] carries them.
fn take_value<'a>(r: &mut Reader<'a>, ptype: PropType) -> Result<&'a [u8], PropError> {
    let fixed = match ptype {
        PropType::BOOLEAN => Some(1),
        PropType::INTEGER16 => Some(2),
        PropType::INTEGER32 | PropType::FLOATING32 | PropType::ERROR_CODE => Some(4),
        PropType::FLOATING64
        | PropType::CURRENCY
        | PropType::FLOATING_TIME
        | PropType::INTEGER64
        | PropType::TIME => Some(8),
        PropType::GUID => Some(16),
        _ => None,
    };
    if let Some(size) = fixed {
        return r.take(size, "row cell value");
    }
    match ptype {
        PropType::STRING => r.nul16("row cell PtypString"),
        PropType::STRING8 => r.nul8("row cell PtypString8"),
        PropType::BINARY => {
            let len = usize::from(r.u16("row cell binary length")?);
            r.take(len, "row cell PtypBinary")
        }
        // Rare types (multi-valued, object, server id, restriction) go through the owned
        // decoder once, only to find where they end.
        other => {
            let start = r.clone();
            PropValue::decode(r, other, ValueEncoding::Rop)?;
            let used = start.remaining() - r.remaining();
            start.rest().get(..used).ok_or(PropError::Truncated {
                what: "row cell value",
                offset: start.offset(),
                needed: used,
                available: start.remaining(),
            })
        }
    }
}

impl<'a> RowView<'a> {
    /// Checks one PropertyRow at the start of `reader` against `columns`, moves past it
    /// and returns its view.
    ///
    /// # Errors
    /// [`PropError`] when the row is cut short, a flag is invalid or a type is unknown,
    /// the same cases as [`super::PropertyRow::decode`].
    pub fn decode(
        reader: &mut Reader<'a>,
        columns: &'a [PropTag],
    ) -> Result<RowView<'a>, PropError> {
        let offset = reader.offset();
        let flagged = match reader.u8("PropertyRow Flag")? {
            0x00 => false,
            0x01 => true,
            other => {
                return Err(PropError::InvalidValue {
                    what: "PropertyRow Flag",
                    value: u64::from(other),
                    offset,
                });
            }
        };
        let start = reader.clone();
        for column in columns {
            read_cell(reader, *column, flagged)?;
        }
        let used = start.remaining() - reader.remaining();
        let bytes = start.rest().get(..used).unwrap_or_default();
        Ok(RowView {
            flagged,
            bytes,
            columns,
        })
    }

    /// Returns whether the row is a FlaggedPropertyRow.
    pub fn flagged(&self) -> bool {
        self.flagged
    }

    /// Returns the cells in column order.
    pub fn cells(&self) -> impl Iterator<Item = CellRef<'a>> + 'a {
        let mut reader = Reader::new(self.bytes);
        let flagged = self.flagged;
        // The bytes were checked in `decode`, so no cell fails here; a failure would end
        // the iteration early rather than panic.
        self.columns
            .iter()
            .map_while(move |column| read_cell(&mut reader, *column, flagged).ok())
    }

    /// Returns the cell of column `tag`, when the column set contains it.
    pub fn get(&self, tag: PropTag) -> Option<CellRef<'a>> {
        let index = self.columns.iter().position(|c| *c == tag)?;
        self.cells().nth(index)
    }
}

fn read_cell<'a>(
    r: &mut Reader<'a>,
    column: PropTag,
    flagged: bool,
) -> Result<CellRef<'a>, PropError> {
    let ptype = if column.ptype() == PropType::UNSPECIFIED {
        PropType(r.u16("row cell type")?)
    } else {
        column.ptype()
    };
    if flagged {
        let flag_offset = r.offset();
        match r.u8("FlaggedPropertyValue Flag")? {
            0x00 => {}
            0x01 => return Ok(CellRef::Missing),
            0x0A => {
                return Ok(CellRef::Error {
                    code: r.u32("FlaggedPropertyValue error code")?,
                });
            }
            other => {
                return Err(PropError::InvalidValue {
                    what: "FlaggedPropertyValue Flag",
                    value: u64::from(other),
                    offset: flag_offset,
                });
            }
        }
    }
    let bytes = take_value(r, ptype)?;
    Ok(CellRef::Value { ptype, bytes })
}

/// Checks `count` PropertyRows at the start of `reader` and returns their views.
///
/// # Errors
/// [`PropError`] for the first row that [`RowView::decode`] rejects, or when `count` rows
/// cannot fit the remaining bytes.
pub fn decode_row_views<'a>(
    reader: &mut Reader<'a>,
    count: usize,
    columns: &'a [PropTag],
) -> Result<Vec<RowView<'a>>, PropError> {
    reader.check_count(count, 1, "rows")?;
    let mut rows = Vec::with_capacity(count);
    for _ in 0..count {
        rows.push(RowView::decode(reader, columns)?);
    }
    Ok(rows)
}
