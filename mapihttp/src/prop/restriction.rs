//! Restrictions in ROP buffers (MS-OXCDATA 2.12; AND/OR counts are u16 in this context).

use super::{PropError, PropTag, Reader, TaggedValue, ValueEncoding};

/// Nesting limit for decoding, so a crafted buffer cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// A relational operator (MS-OXCDATA 2.12.4): 0 `<`, 1 `<=`, 2 `>`, 3 `>=`, 4 `=`, 5 `!=`,
/// 6 regular expression, 0x64 member of a distribution list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RelOp(pub u8);

/// A restriction (MS-OXCDATA 2.12).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub enum Restriction {
    /// 0x00: all subrestrictions hold.
    And(Vec<Restriction>),
    /// 0x01: any subrestriction holds.
    Or(Vec<Restriction>),
    /// 0x02: the subrestriction does not hold.
    Not(Box<Restriction>),
    /// 0x03: a string or binary content match.
    Content {
        /// FuzzyLevelLow u16.
        fuzzy_low: u16,
        /// FuzzyLevelHigh u16.
        fuzzy_high: u16,
        /// The column compared.
        tag: PropTag,
        /// The value searched for.
        value: TaggedValue,
    },
    /// 0x04: compares a column with a value.
    Property {
        /// The operator.
        op: RelOp,
        /// The column compared.
        tag: PropTag,
        /// The value compared with.
        value: TaggedValue,
    },
    /// 0x05: compares two columns.
    CompareProps {
        /// The operator.
        op: RelOp,
        /// First column.
        tag1: PropTag,
        /// Second column.
        tag2: PropTag,
    },
    /// 0x06: tests bits of an integer column; `op` 0 means "all masked bits zero", 1
    /// means "some masked bit set".
    Bitmask {
        /// BitmapRelOp.
        op: u8,
        /// The column tested.
        tag: PropTag,
        /// The mask.
        mask: u32,
    },
    /// 0x07: compares the size of a column value.
    Size {
        /// The operator.
        op: RelOp,
        /// The column.
        tag: PropTag,
        /// The size compared with.
        size: u32,
    },
    /// 0x08: the column exists.
    Exist(PropTag),
    /// 0x09: applies a restriction to a subobject table (recipients or attachments).
    SubObject {
        /// PidTagMessageRecipients or PidTagMessageAttachments.
        subobject: PropTag,
        /// The restriction on the subobject rows.
        restriction: Box<Restriction>,
    },
    /// 0x0A: annotates a restriction with property values.
    Comment {
        /// The annotations.
        values: Vec<TaggedValue>,
        /// The annotated restriction, if present.
        restriction: Option<Box<Restriction>>,
    },
    /// 0x0B: limits the number of matches of the subrestriction.
    Count {
        /// The maximum number of matches.
        count: u32,
        /// The subrestriction.
        restriction: Box<Restriction>,
    },
}

impl Restriction {
    /// Decodes one restriction.
    ///
    /// # Errors
    /// [`PropError`] when it is cut short, of an unknown type or nested too deeply.
    pub fn decode(reader: &mut Reader<'_>) -> Result<Restriction, PropError> {
        Self::decode_at(reader, 0)
    }

    fn decode_at(reader: &mut Reader<'_>, depth: usize) -> Result<Restriction, PropError> {
        let offset = reader.offset();
        if depth >= MAX_DEPTH {
            return Err(PropError::TooDeep {
                offset,
                max: MAX_DEPTH,
            });
        }
        let kind = reader.u8("RestrictType")?;
        let restriction = match kind {
            0x00 | 0x01 => {
                let count = usize::from(reader.u16("restriction count")?);
                reader.check_count(count, 1, "subrestrictions")?;
                let mut subs = Vec::with_capacity(count);
                for _ in 0..count {
                    subs.push(Self::decode_at(reader, depth + 1)?);
                }
                if kind == 0 {
                    Restriction::And(subs)
                } else {
                    Restriction::Or(subs)
                }
            }
            0x02 => Restriction::Not(Box::new(Self::decode_at(reader, depth + 1)?)),
            0x03 => Restriction::Content {
                fuzzy_low: reader.u16("FuzzyLevelLow")?,
                fuzzy_high: reader.u16("FuzzyLevelHigh")?,
                tag: PropTag(reader.u32("content restriction tag")?),
                value: TaggedValue::decode(reader)?,
            },
            0x04 => Restriction::Property {
                op: RelOp(reader.u8("RelOp")?),
                tag: PropTag(reader.u32("property restriction tag")?),
                value: TaggedValue::decode(reader)?,
            },
            0x05 => Restriction::CompareProps {
                op: RelOp(reader.u8("RelOp")?),
                tag1: PropTag(reader.u32("PropTag1")?),
                tag2: PropTag(reader.u32("PropTag2")?),
            },
            0x06 => Restriction::Bitmask {
                op: reader.u8("BitmapRelOp")?,
                tag: PropTag(reader.u32("bitmask restriction tag")?),
                mask: reader.u32("Mask")?,
            },
            0x07 => Restriction::Size {
                op: RelOp(reader.u8("RelOp")?),
                tag: PropTag(reader.u32("size restriction tag")?),
                size: reader.u32("Size")?,
            },
            0x08 => Restriction::Exist(PropTag(reader.u32("exist restriction tag")?)),
            0x09 => Restriction::SubObject {
                subobject: PropTag(reader.u32("Subobject")?),
                restriction: Box::new(Self::decode_at(reader, depth + 1)?),
            },
            0x0A => {
                let count = usize::from(reader.u8("TaggedValuesCount")?);
                let values = super::decode_tagged_values(reader, count)?;
                let present = reader.u8("RestrictionPresent")?;
                let restriction = if present != 0 {
                    Some(Box::new(Self::decode_at(reader, depth + 1)?))
                } else {
                    None
                };
                Restriction::Comment {
                    values,
                    restriction,
                }
            }
            0x0B => Restriction::Count {
                count: reader.u32("Count")?,
                restriction: Box::new(Self::decode_at(reader, depth + 1)?),
            },
            other => {
                return Err(PropError::InvalidValue {
                    what: "RestrictType",
                    value: u64::from(other),
                    offset,
                });
            }
        };
        Ok(restriction)
    }

    /// Checks that every count and value length in this restriction fits its wire field,
    /// so that [`Restriction::encode`] cannot wrap one.
    ///
    /// # Errors
    /// [`PropError::TooLong`] naming the first field that does not fit.
    pub fn check_encodable(&self) -> Result<(), PropError> {
        match self {
            Restriction::And(subs) | Restriction::Or(subs) => {
                if subs.len() > usize::from(u16::MAX) {
                    return Err(PropError::TooLong {
                        what: "RestrictCount",
                        len: subs.len(),
                        max: usize::from(u16::MAX),
                    });
                }
                subs.iter().try_for_each(Restriction::check_encodable)
            }
            Restriction::Not(sub)
            | Restriction::SubObject {
                restriction: sub, ..
            }
            | Restriction::Count {
                restriction: sub, ..
            } => sub.check_encodable(),
            Restriction::Content { value, .. } | Restriction::Property { value, .. } => {
                value.value.check_encodable(ValueEncoding::Rop)
            }
            Restriction::Comment {
                values,
                restriction,
            } => {
                if values.len() > usize::from(u8::MAX) {
                    return Err(PropError::TooLong {
                        what: "TaggedValuesCount",
                        len: values.len(),
                        max: usize::from(u8::MAX),
                    });
                }
                for value in values {
                    value.value.check_encodable(ValueEncoding::Rop)?;
                }
                match restriction {
                    Some(sub) => sub.check_encodable(),
                    None => Ok(()),
                }
            }
            Restriction::CompareProps { .. }
            | Restriction::Bitmask { .. }
            | Restriction::Size { .. }
            | Restriction::Exist(_) => Ok(()),
        }
    }

    /// Appends the ROP-buffer encoding after [`Restriction::check_encodable`].
    ///
    /// # Errors
    /// [`PropError::TooLong`] when a count or length does not fit; nothing is appended
    /// then.
    pub fn try_encode(&self, out: &mut Vec<u8>) -> Result<(), PropError> {
        self.check_encodable()?;
        self.encode(out);
        Ok(())
    }

    /// Appends the ROP-buffer encoding. Counts wrap when they do not fit their fields; use
    /// [`Restriction::try_encode`] where the caller does not bound them.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Restriction::And(subs) | Restriction::Or(subs) => {
                out.push(if matches!(self, Restriction::And(_)) {
                    0x00
                } else {
                    0x01
                });
                out.extend_from_slice(&(subs.len() as u16).to_le_bytes());
                for sub in subs {
                    sub.encode(out);
                }
            }
            Restriction::Not(sub) => {
                out.push(0x02);
                sub.encode(out);
            }
            Restriction::Content {
                fuzzy_low,
                fuzzy_high,
                tag,
                value,
            } => {
                out.push(0x03);
                out.extend_from_slice(&fuzzy_low.to_le_bytes());
                out.extend_from_slice(&fuzzy_high.to_le_bytes());
                out.extend_from_slice(&tag.0.to_le_bytes());
                value.encode(out);
            }
            Restriction::Property { op, tag, value } => {
                out.push(0x04);
                out.push(op.0);
                out.extend_from_slice(&tag.0.to_le_bytes());
                value.encode(out);
            }
            Restriction::CompareProps { op, tag1, tag2 } => {
                out.push(0x05);
                out.push(op.0);
                out.extend_from_slice(&tag1.0.to_le_bytes());
                out.extend_from_slice(&tag2.0.to_le_bytes());
            }
            Restriction::Bitmask { op, tag, mask } => {
                out.push(0x06);
                out.push(*op);
                out.extend_from_slice(&tag.0.to_le_bytes());
                out.extend_from_slice(&mask.to_le_bytes());
            }
            Restriction::Size { op, tag, size } => {
                out.push(0x07);
                out.push(op.0);
                out.extend_from_slice(&tag.0.to_le_bytes());
                out.extend_from_slice(&size.to_le_bytes());
            }
            Restriction::Exist(tag) => {
                out.push(0x08);
                out.extend_from_slice(&tag.0.to_le_bytes());
            }
            Restriction::SubObject {
                subobject,
                restriction,
            } => {
                out.push(0x09);
                out.extend_from_slice(&subobject.0.to_le_bytes());
                restriction.encode(out);
            }
            Restriction::Comment {
                values,
                restriction,
            } => {
                out.push(0x0A);
                out.push(values.len() as u8);
                for value in values {
                    value.encode(out);
                }
                match restriction {
                    Some(sub) => {
                        out.push(1);
                        sub.encode(out);
                    }
                    None => out.push(0),
                }
            }
            Restriction::Count { count, restriction } => {
                out.push(0x0B);
                out.extend_from_slice(&count.to_le_bytes());
                restriction.encode(out);
            }
        }
    }
}
