//! RecipientRow (MS-OXCDATA 2.8.3): one recipient of a message, as RopModifyRecipients,
//! RopReadRecipients and RopOpenMessage carry it inside their recipient rows.
//!
//! The bit layout of RecipientFlags and the presence rule of each field follow
//! MS-OXCDATA 2.8.3.1 and 2.8.3.2. The reference copy of those pages lacks their field
//! tables, so the layout was checked against Microsoft's MAPI Inspector parser and the
//! flag masks that OpenChange's libmapi uses.
//!
//! A RecipientRow's properties are a PropertyRow over the first RecipientColumnCount
//! columns of the ROP's recipient column set, so decoding needs that column set: the
//! request's columns for RopModifyRecipients, the response's RecipientColumns for
//! RopOpenMessage, and the columns of the RopOpenMessage that opened the message for
//! RopReadRecipients.

use super::writer::{Put, len_u16};
use super::{RopError, RopString};
use crate::prop::{PropTag, PropertyRow, Reader};

/// RecipientFlags (MS-OXCDATA 2.8.3.1), a little-endian 16-bit field. The low 3 bits are
/// the address type, and the other bits select the optional fields that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct RecipientFlags(pub u16);

impl RecipientFlags {
    /// Type mask: the address type, one of the `TYPE_*` values.
    pub const TYPE_MASK: u16 = 0x0007;
    /// Type 0x0: no standard type; with [`Self::O`] the AddressType string follows.
    pub const TYPE_NONE: u16 = 0x0;
    /// Type 0x1: an Exchange address; AddressPrefixUsed, DisplayType and X500DN follow.
    pub const TYPE_X500DN: u16 = 0x1;
    /// Type 0x2: MS Mail.
    pub const TYPE_MSMAIL: u16 = 0x2;
    /// Type 0x3: SMTP.
    pub const TYPE_SMTP: u16 = 0x3;
    /// Type 0x4: fax.
    pub const TYPE_FAX: u16 = 0x4;
    /// Type 0x5: Professional Office System.
    pub const TYPE_PROFESSIONAL_OFFICE_SYSTEM: u16 = 0x5;
    /// Type 0x6: personal distribution list; EntryID and SearchKey follow.
    pub const TYPE_PERSONAL_DISTRIBUTION_LIST1: u16 = 0x6;
    /// Type 0x7: personal distribution list; EntryID and SearchKey follow.
    pub const TYPE_PERSONAL_DISTRIBUTION_LIST2: u16 = 0x7;
    /// E: the EmailAddress string is present.
    pub const E: u16 = 0x0008;
    /// D: the DisplayName string is present.
    pub const D: u16 = 0x0010;
    /// T: the TransmittableDisplayName string is present.
    pub const T: u16 = 0x0020;
    /// S: the TransmittableDisplayName equals the DisplayName.
    pub const S: u16 = 0x0040;
    /// R: another transport delivers to this recipient.
    pub const R: u16 = 0x0080;
    /// N: the recipient does not accept rich text.
    pub const N: u16 = 0x0100;
    /// U: the strings are UTF-16LE with a 2-byte NUL; otherwise 8-bit with a 1-byte NUL.
    pub const U: u16 = 0x0200;
    /// I: the SimpleDisplayName string is present.
    pub const I: u16 = 0x0400;
    /// O: a non-standard address type; with type 0x0 the AddressType string follows.
    pub const O: u16 = 0x8000;

    /// Returns the address type (the low 3 bits).
    pub fn address_type(self) -> u16 {
        self.0 & Self::TYPE_MASK
    }

    /// Returns whether every bit of `mask` is set.
    pub fn has(self, mask: u16) -> bool {
        self.0 & mask == mask
    }
}

/// The fields of an Exchange (X500DN type) recipient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct X500Recipient {
    /// AddressPrefixUsed: how many leading bytes of the X500 DN were left out because
    /// they equal the logon's own DN prefix.
    pub address_prefix_used: u8,
    /// DisplayType (0x00 mail user, 0x01 distribution list, and so on, MS-OXCDATA
    /// 2.8.3.2).
    pub display_type: u8,
    /// X500DN: the rest of the DN, 8-bit, without its NUL.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub x500_dn: Vec<u8>,
}

/// The fields of a personal distribution list recipient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DistributionListRecipient {
    /// EntryID of the distribution list.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub entry_id: Vec<u8>,
    /// SearchKey of the distribution list.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub search_key: Vec<u8>,
}

/// A decoded RecipientRow (MS-OXCDATA 2.8.3.2).
///
/// `flags` decides which optional fields are on the wire. The encoder rejects a row whose
/// fields disagree with its flags, because the bytes would decode to another row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecipientRow {
    /// RecipientFlags as sent, presence bits included.
    pub flags: RecipientFlags,
    /// Present exactly when the address type is X500DN.
    pub x500: Option<X500Recipient>,
    /// Present exactly when the address type is a personal distribution list.
    pub distribution_list: Option<DistributionListRecipient>,
    /// AddressType, 8-bit without its NUL: present exactly when the address type is 0x0
    /// and the O flag is set.
    pub address_type: Option<Vec<u8>>,
    /// EmailAddress (flag E).
    pub email_address: Option<RopString>,
    /// DisplayName (flag D).
    pub display_name: Option<RopString>,
    /// SimpleDisplayName (flag I).
    pub simple_display_name: Option<RopString>,
    /// TransmittableDisplayName (flag T).
    pub transmittable_display_name: Option<RopString>,
    /// RecipientColumnCount: how many of the ROP's recipient columns `properties` covers.
    pub column_count: u16,
    /// RecipientProperties: a standard or flagged PropertyRow over the first
    /// `column_count` recipient columns.
    pub properties: PropertyRow,
}

fn invalid(what: &'static str, value: u64, offset: usize) -> RopError {
    crate::prop::PropError::InvalidValue {
        what,
        value,
        offset,
    }
    .into()
}

impl RecipientRow {
    /// Builds a Unicode SMTP recipient with a display name, an e-mail address and no
    /// properties (RecipientColumnCount 0), the form a client uses to add a recipient
    /// with RopModifyRecipients. Set `properties` and `column_count` for more columns.
    pub fn smtp(display_name: &str, email_address: &str) -> RecipientRow {
        RecipientRow {
            flags: RecipientFlags(
                RecipientFlags::TYPE_SMTP
                    | RecipientFlags::E
                    | RecipientFlags::D
                    | RecipientFlags::I
                    | RecipientFlags::U,
            ),
            x500: None,
            distribution_list: None,
            address_type: None,
            email_address: Some(RopString::Unicode(email_address.to_owned())),
            display_name: Some(RopString::Unicode(display_name.to_owned())),
            simple_display_name: Some(RopString::Unicode(display_name.to_owned())),
            transmittable_display_name: None,
            column_count: 0,
            properties: PropertyRow {
                flagged: false,
                cells: Vec::new(),
            },
        }
    }

    /// Decodes a RecipientRow that fills `bytes` exactly (the RecipientRow field of a
    /// recipient row, whose size the ROP gives). `columns` is the ROP's recipient column
    /// set; `base` is the offset of `bytes` in the ROP buffer, for error messages.
    ///
    /// # Errors
    /// [`RopError::Wire`] when a field is cut short, a string is unterminated or
    /// RecipientColumnCount exceeds the column set, [`RopError::TrailingBytes`] when bytes
    /// follow the properties.
    pub fn decode(
        bytes: &[u8],
        columns: &[PropTag],
        base: usize,
    ) -> Result<RecipientRow, RopError> {
        let mut r = Reader::with_base(bytes, base);
        let flags = RecipientFlags(r.u16("RecipientFlags")?);
        let unicode = flags.has(RecipientFlags::U);

        let mut x500 = None;
        let mut distribution_list = None;
        let mut address_type = None;
        match flags.address_type() {
            RecipientFlags::TYPE_X500DN => {
                x500 = Some(X500Recipient {
                    address_prefix_used: r.u8("AddressPrefixUsed")?,
                    display_type: r.u8("DisplayType")?,
                    x500_dn: r.nul8("X500DN")?.to_vec(),
                });
            }
            RecipientFlags::TYPE_PERSONAL_DISTRIBUTION_LIST1
            | RecipientFlags::TYPE_PERSONAL_DISTRIBUTION_LIST2 => {
                let size = usize::from(r.u16("EntryIdSize")?);
                let entry_id = r.take(size, "EntryID")?.to_vec();
                let size = usize::from(r.u16("SearchKeySize")?);
                let search_key = r.take(size, "SearchKey")?.to_vec();
                distribution_list = Some(DistributionListRecipient {
                    entry_id,
                    search_key,
                });
            }
            RecipientFlags::TYPE_NONE if flags.has(RecipientFlags::O) => {
                address_type = Some(r.nul8("AddressType")?.to_vec());
            }
            _ => {}
        }

        let mut string = |flag: u16, what: &'static str| -> Result<Option<RopString>, RopError> {
            if flags.has(flag) {
                Ok(Some(RopString::decode(&mut r, unicode, what)?))
            } else {
                Ok(None)
            }
        };
        let email_address = string(RecipientFlags::E, "EmailAddress")?;
        let display_name = string(RecipientFlags::D, "DisplayName")?;
        let simple_display_name = string(RecipientFlags::I, "SimpleDisplayName")?;
        let transmittable_display_name = string(RecipientFlags::T, "TransmittableDisplayName")?;

        let count_offset = r.offset();
        let column_count = r.u16("RecipientColumnCount")?;
        let Some(row_columns) = columns.get(..usize::from(column_count)) else {
            return Err(invalid(
                "RecipientColumnCount (more than the recipient columns)",
                u64::from(column_count),
                count_offset,
            ));
        };
        let properties = PropertyRow::decode(&mut r, row_columns)?;
        if !r.is_empty() {
            return Err(RopError::TrailingBytes {
                offset: r.offset(),
                len: r.remaining(),
            });
        }

        Ok(RecipientRow {
            flags,
            x500,
            distribution_list,
            address_type,
            email_address,
            display_name,
            simple_display_name,
            transmittable_display_name,
            column_count,
            properties,
        })
    }

    /// Encodes this RecipientRow. `columns` is the ROP's recipient column set; the
    /// properties are written over its first `column_count` columns.
    ///
    /// # Errors
    /// [`RopError::InvalidRecipientRow`] when a field's presence or string width
    /// disagrees with `flags`, when `column_count` exceeds `columns`, or when the
    /// properties have another number of cells. [`RopError::TooLong`] when EntryID or
    /// SearchKey exceeds 65,535 bytes, [`RopError::Wire`] when a property value is too
    /// long for its field.
    pub fn encode(&self, out: &mut Vec<u8>, columns: &[PropTag]) -> Result<(), RopError> {
        let flags = self.flags;
        let kind = flags.address_type();
        let mismatch = |problem| RopError::InvalidRecipientRow {
            flags: flags.0,
            problem,
        };

        if self.x500.is_some() != (kind == RecipientFlags::TYPE_X500DN) {
            return Err(mismatch(
                "X500 fields must be present exactly when the type is 0x1",
            ));
        }
        let is_list = matches!(
            kind,
            RecipientFlags::TYPE_PERSONAL_DISTRIBUTION_LIST1
                | RecipientFlags::TYPE_PERSONAL_DISTRIBUTION_LIST2
        );
        if self.distribution_list.is_some() != is_list {
            return Err(mismatch(
                "distribution list fields must be present exactly when the type is 0x6 or 0x7",
            ));
        }
        let wants_address_type = kind == RecipientFlags::TYPE_NONE && flags.has(RecipientFlags::O);
        if self.address_type.is_some() != wants_address_type {
            return Err(mismatch(
                "AddressType must be present exactly when the type is 0x0 and O is set",
            ));
        }

        let unicode = flags.has(RecipientFlags::U);
        let strings = [
            (
                RecipientFlags::E,
                &self.email_address,
                "EmailAddress must be present exactly when E is set, and UTF-16 exactly when U is set",
            ),
            (
                RecipientFlags::D,
                &self.display_name,
                "DisplayName must be present exactly when D is set, and UTF-16 exactly when U is set",
            ),
            (
                RecipientFlags::I,
                &self.simple_display_name,
                "SimpleDisplayName must be present exactly when I is set, and UTF-16 exactly when U is set",
            ),
            (
                RecipientFlags::T,
                &self.transmittable_display_name,
                "TransmittableDisplayName must be present exactly when T is set, and UTF-16 exactly when U is set",
            ),
        ];
        for (flag, value, problem) in &strings {
            let width_ok = match value {
                Some(RopString::Unicode(_)) => unicode,
                Some(RopString::String8(_)) => !unicode,
                None => true,
            };
            if value.is_some() != flags.has(*flag) || !width_ok {
                return Err(mismatch(problem));
            }
        }

        let Some(row_columns) = columns.get(..usize::from(self.column_count)) else {
            return Err(mismatch(
                "RecipientColumnCount is larger than the recipient column set",
            ));
        };
        if self.properties.cells.len() != row_columns.len() {
            return Err(mismatch(
                "RecipientProperties must have RecipientColumnCount cells",
            ));
        }
        for value in self.properties.cells.iter().filter_map(|cell| cell.value()) {
            value.check_encodable(crate::prop::ValueEncoding::Rop)?;
        }

        out.put_u16(flags.0);
        if let Some(x500) = &self.x500 {
            out.put_u8(x500.address_prefix_used);
            out.put_u8(x500.display_type);
            out.put(&x500.x500_dn);
            out.put_u8(0);
        }
        if let Some(list) = &self.distribution_list {
            out.put_u16(len_u16(list.entry_id.len(), "EntryIdSize")?);
            out.put(&list.entry_id);
            out.put_u16(len_u16(list.search_key.len(), "SearchKeySize")?);
            out.put(&list.search_key);
        }
        if let Some(address_type) = &self.address_type {
            out.put(address_type);
            out.put_u8(0);
        }
        for value in strings.iter().filter_map(|(_, value, _)| value.as_ref()) {
            value.encode(out);
        }
        out.put_u16(self.column_count);
        self.properties.encode(out, row_columns);
        Ok(())
    }

    /// Returns the encoding of this RecipientRow as a new `Vec`, for the `recipient_row`
    /// field of a recipient row.
    ///
    /// # Errors
    /// See [`RecipientRow::encode`].
    pub fn to_bytes(&self, columns: &[PropTag]) -> Result<Vec<u8>, RopError> {
        let mut out = Vec::new();
        self.encode(&mut out, columns)?;
        Ok(out)
    }
}
