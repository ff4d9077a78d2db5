//! PropertyRow (MS-OXCDATA 2.8.1): one row of table data or of RopGetPropertiesSpecific.
//! A row has no length prefix, so decoding needs the column set.

use super::{PropError, PropTag, PropType, PropValue, Reader, ValueEncoding};

/// One column entry of a row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub enum RowCell {
    /// A value (for PtypUnspecified columns, the value's own type is written before it).
    Value(PropValue),
    /// Flag 0x01 of a flagged row: the property has no value. `ptype` is the type written
    /// before the flag for PtypUnspecified columns.
    Missing {
        /// Type written before the flag (PtypUnspecified columns only).
        ptype: Option<PropType>,
    },
    /// Flag 0x0A of a flagged row: an error code instead of the value.
    Error {
        /// The error code, e.g. 0x8004010F (not found).
        code: u32,
        /// Type written before the flag (PtypUnspecified columns only).
        ptype: Option<PropType>,
    },
}

impl RowCell {
    /// Returns the value, if the cell holds one.
    pub fn value(&self) -> Option<&PropValue> {
        match self {
            RowCell::Value(value) => Some(value),
            _ => None,
        }
    }
}

/// A PropertyRow: StandardPropertyRow (flag 0x00) or FlaggedPropertyRow (flag 0x01).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PropertyRow {
    /// Whether the row is flagged (each entry carries its own flag).
    pub flagged: bool,
    /// One cell per column, in column order.
    pub cells: Vec<RowCell>,
}

impl PropertyRow {
    /// Decodes a row over `columns`.
    ///
    /// # Errors
    /// [`PropError`] when the row is cut short, a flag is unknown or a column type has no
    /// known encoding.
    pub fn decode(reader: &mut Reader<'_>, columns: &[PropTag]) -> Result<PropertyRow, PropError> {
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
        reader.check_count(columns.len(), if flagged { 1 } else { 0 }, "row cells")?;
        let mut cells = Vec::with_capacity(columns.len());
        for column in columns {
            let column_type = column.ptype();
            let declared = if column_type == PropType::UNSPECIFIED {
                Some(PropType(reader.u16("row cell type")?))
            } else {
                None
            };
            let ptype = declared.unwrap_or(column_type);
            let cell = if flagged {
                let flag_offset = reader.offset();
                match reader.u8("FlaggedPropertyValue Flag")? {
                    0x00 => RowCell::Value(PropValue::decode(reader, ptype, ValueEncoding::Rop)?),
                    0x01 => RowCell::Missing { ptype: declared },
                    0x0A => RowCell::Error {
                        code: reader.u32("FlaggedPropertyValue error code")?,
                        ptype: declared,
                    },
                    other => {
                        return Err(PropError::InvalidValue {
                            what: "FlaggedPropertyValue Flag",
                            value: u64::from(other),
                            offset: flag_offset,
                        });
                    }
                }
            } else {
                RowCell::Value(PropValue::decode(reader, ptype, ValueEncoding::Rop)?)
            };
            cells.push(cell);
        }
        Ok(PropertyRow { flagged, cells })
    }

    /// Appends the encoding over `columns`. A standard row writes only values, so a
    /// missing or error cell there is written as a flagged row would need; callers that
    /// hold such cells set `flagged`.
    pub fn encode(&self, out: &mut Vec<u8>, columns: &[PropTag]) {
        out.push(u8::from(self.flagged));
        for (column, cell) in columns.iter().zip(&self.cells) {
            let unspecified = column.ptype() == PropType::UNSPECIFIED;
            match cell {
                RowCell::Value(value) => {
                    if unspecified {
                        out.extend_from_slice(&value.ptype().0.to_le_bytes());
                    }
                    if self.flagged {
                        out.push(0x00);
                    }
                    value.encode(out, ValueEncoding::Rop);
                }
                RowCell::Missing { ptype } => {
                    if unspecified {
                        out.extend_from_slice(&ptype.unwrap_or_default().0.to_le_bytes());
                    }
                    out.push(0x01);
                }
                RowCell::Error { code, ptype } => {
                    if unspecified {
                        out.extend_from_slice(&ptype.unwrap_or_default().0.to_le_bytes());
                    }
                    out.push(0x0A);
                    out.extend_from_slice(&code.to_le_bytes());
                }
            }
        }
    }

    /// Returns the cell of `tag`, looked up in `columns`.
    pub fn get<'r>(&'r self, columns: &[PropTag], tag: PropTag) -> Option<&'r RowCell> {
        let index = columns.iter().position(|c| *c == tag)?;
        self.cells.get(index)
    }
}
