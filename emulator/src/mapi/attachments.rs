//! Attachment objects (MS-OXCMSG 2.2.2 and 2.2.3): the properties of a stored
//! attachment, and the object a client opens or creates on a message with
//! RopOpenAttachment or RopCreateAttachment.
//!
//! Attachment changes follow the message, as in MAPI (IMessage::DeleteAttach and
//! IAttach::SaveChanges): RopSaveChangesAttachment and RopDeleteAttachment change the
//! open message's working list, and RopSaveChangesMessage writes that list to the store.

use exmux_mapihttp::prop::tags::{
    PID_TAG_ATTACH_DATA_BINARY, PID_TAG_ATTACH_LONG_FILENAME, PID_TAG_ATTACH_METHOD,
    PID_TAG_ATTACH_NUMBER, PID_TAG_ATTACH_SIZE, PID_TAG_DISPLAY_NAME,
};
use exmux_mapihttp::prop::{PropTag, PropValue, TaggedValue};

use crate::store::Attachment;

use super::props;
use super::streams;

/// PidTagAttachFilename (the short file name).
const PID_TAG_ATTACH_FILENAME: PropTag = PropTag(0x3704_001F);
/// PidTagAttachExtension.
const PID_TAG_ATTACH_EXTENSION: PropTag = PropTag(0x3703_001F);
/// PidTagAttachMimeTag.
pub(crate) const PID_TAG_ATTACH_MIME_TAG: PropTag = PropTag(0x370E_001F);
/// PidTagAttachContentId.
pub(crate) const PID_TAG_ATTACH_CONTENT_ID: PropTag = PropTag(0x3712_001F);
/// PidTagRenderingPosition.
const PID_TAG_RENDERING_POSITION: PropTag = PropTag(0x370B_0003);
/// PidTagAttachMethod afByValue: the data is in PidTagAttachDataBinary.
const AF_BY_VALUE: i32 = 1;
/// PidTagRenderingPosition of an attachment not rendered in the body.
const NOT_RENDERED: i32 = -1;
/// OpenAttachmentFlags: read-write (0x01) or best access (0x02). 0x00 opens read-only,
/// the default of MAPI's IMessage::OpenAttach.
const WRITE_FLAGS: u8 = 0x03;

/// An attachment opened or created on the message behind `message`.
#[derive(Debug)]
pub(crate) struct AttachmentObject {
    /// The server handle of the message the attachment belongs to.
    pub(crate) message: u32,
    /// PidTagAttachNumber.
    pub(crate) number: u32,
    /// The current values: the stored ones with the unsaved writes applied.
    pub(crate) values: Vec<TaggedValue>,
    /// Whether RopSetProperties, streams and RopSaveChangesAttachment are allowed.
    pub(crate) writable: bool,
}

impl AttachmentObject {
    /// Opens a stored attachment with the OpenAttachmentFlags of the request.
    pub(crate) fn open(message: u32, attachment: &Attachment, flags: u8) -> Self {
        AttachmentObject {
            message,
            number: attachment.number,
            values: values_of(attachment),
            writable: flags & WRITE_FLAGS != 0,
        }
    }

    /// Creates an empty attachment with number `number`.
    pub(crate) fn create(message: u32, number: u32) -> Self {
        let empty = Attachment {
            number,
            ..Attachment::default()
        };
        AttachmentObject {
            message,
            number,
            values: values_of(&empty),
            writable: true,
        }
    }

    /// Applies RopSetProperties values. PidTagAttachNumber and PidTagAttachSize are
    /// computed, so values for them are ignored.
    pub(crate) fn set(&mut self, values: &[TaggedValue]) {
        for value in values {
            let id = value.tag.id();
            if id == PID_TAG_ATTACH_NUMBER.id() || id == PID_TAG_ATTACH_SIZE.id() {
                continue;
            }
            self.values.retain(|v| v.tag.id() != id);
            self.values.push(value.clone());
        }
    }

    /// Returns the attachment the current values describe.
    pub(crate) fn to_attachment(&self) -> Attachment {
        let text = |tag: PropTag| {
            self.values
                .iter()
                .find(|v| v.tag.id() == tag.id())
                .and_then(|v| props::text_of(&v.value))
                .filter(|text| !text.is_empty())
        };
        let data = self
            .values
            .iter()
            .find(|v| v.tag.id() == PID_TAG_ATTACH_DATA_BINARY.id())
            .and_then(|v| match &v.value {
                PropValue::Binary(bytes) => Some(bytes.clone()),
                _ => None,
            })
            .unwrap_or_default();
        Attachment {
            number: self.number,
            file_name: text(PID_TAG_ATTACH_LONG_FILENAME).or_else(|| text(PID_TAG_ATTACH_FILENAME)),
            mime_type: text(PID_TAG_ATTACH_MIME_TAG),
            content_id: text(PID_TAG_ATTACH_CONTENT_ID),
            data,
        }
    }
}

/// Returns every property of a stored attachment, PidTagAttachDataBinary included.
pub(crate) fn values_of(attachment: &Attachment) -> Vec<TaggedValue> {
    let mut values = row_values(attachment);
    values.push(TaggedValue {
        tag: PID_TAG_ATTACH_DATA_BINARY,
        value: PropValue::Binary(attachment.data.clone()),
    });
    values
}

/// Returns the properties of an attachment table row: every property except
/// PidTagAttachDataBinary, which a client reads from the attachment object.
pub(crate) fn row_values(attachment: &Attachment) -> Vec<TaggedValue> {
    let mut values = vec![
        tagged(
            PID_TAG_ATTACH_NUMBER,
            PropValue::I32(i32::from_le_bytes(attachment.number.to_le_bytes())),
        ),
        tagged(PID_TAG_ATTACH_METHOD, PropValue::I32(AF_BY_VALUE)),
        tagged(PID_TAG_RENDERING_POSITION, PropValue::I32(NOT_RENDERED)),
    ];
    if let Some(name) = &attachment.file_name {
        values.push(unicode(PID_TAG_ATTACH_LONG_FILENAME, name));
        values.push(unicode(PID_TAG_ATTACH_FILENAME, name));
        values.push(unicode(PID_TAG_DISPLAY_NAME, name));
        if let Some((_, extension)) = name.rsplit_once('.') {
            values.push(unicode(PID_TAG_ATTACH_EXTENSION, &format!(".{extension}")));
        }
    }
    if let Some(mime_type) = &attachment.mime_type {
        values.push(unicode(PID_TAG_ATTACH_MIME_TAG, mime_type));
    }
    if let Some(content_id) = &attachment.content_id {
        values.push(unicode(PID_TAG_ATTACH_CONTENT_ID, content_id));
    }
    // PidTagAttachSize is the size of the whole attachment object (MS-OXCMSG 2.2.2.5),
    // so it is at least the data length.
    // NOTE: the size is the data plus the stream bytes of the other properties, an
    // estimate: Exchange's own accounting of an attachment object is not known.
    let properties: usize = values
        .iter()
        .map(|value| streams::bytes_of(&value.value).map_or(4, |bytes| bytes.len()))
        .sum();
    let size = attachment.data.len().saturating_add(properties);
    values.push(tagged(
        PID_TAG_ATTACH_SIZE,
        PropValue::I32(i32::try_from(size).unwrap_or(i32::MAX)),
    ));
    values
}

/// Replaces or inserts `attachment` in `list`, keeping the list in number order.
pub(crate) fn put(list: &mut Vec<Attachment>, attachment: Attachment) {
    list.retain(|a| a.number != attachment.number);
    let at = list.partition_point(|a| a.number < attachment.number);
    list.insert(at, attachment);
}

/// Returns the number a new attachment of `list` gets: one above the highest in use.
pub(crate) fn next_number(list: &[Attachment]) -> u32 {
    list.iter()
        .map(|a| a.number.saturating_add(1))
        .max()
        .unwrap_or(0)
}

fn tagged(tag: PropTag, value: PropValue) -> TaggedValue {
    TaggedValue { tag, value }
}

fn unicode(tag: PropTag, text: &str) -> TaggedValue {
    tagged(tag, PropValue::Unicode(text.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn report() -> Attachment {
        Attachment {
            number: 3,
            file_name: Some("report.pdf".to_owned()),
            mime_type: Some("application/pdf".to_owned()),
            content_id: None,
            data: b"%PDF-".to_vec(),
        }
    }

    #[test]
    fn object_round_trips_attachment() {
        let object = AttachmentObject::open(7, &report(), 0x01);
        assert!(object.writable);
        assert_eq!(object.to_attachment(), report());
    }

    #[test]
    fn set_ignores_computed_properties() {
        let mut object = AttachmentObject::create(7, 2);
        object.set(&[
            tagged(PID_TAG_ATTACH_NUMBER, PropValue::I32(9)),
            unicode(PID_TAG_ATTACH_LONG_FILENAME, "a.txt"),
            tagged(
                PID_TAG_ATTACH_DATA_BINARY,
                PropValue::Binary(b"abc".to_vec()),
            ),
        ]);
        let attachment = object.to_attachment();
        assert_eq!(attachment.number, 2);
        assert_eq!(attachment.file_name.as_deref(), Some("a.txt"));
        assert_eq!(attachment.data, b"abc");
    }

    #[test]
    fn row_values_leave_out_data() {
        let values = row_values(&report());
        assert!(values.iter().all(|v| v.tag != PID_TAG_ATTACH_DATA_BINARY));
    }

    #[test]
    fn attach_size_counts_every_property() {
        let values = row_values(&report());
        let size = values
            .iter()
            .find(|v| v.tag == PID_TAG_ATTACH_SIZE)
            .unwrap();
        let PropValue::I32(size) = size.value else {
            panic!("PidTagAttachSize is not PtypInteger32");
        };
        // The data, three 4-byte integers, the file name three times in UTF-16, the
        // extension and the MIME type.
        let names = 3 * 2 * "report.pdf".len() + 2 * ".pdf".len();
        let expected = 5 + 3 * 4 + names + 2 * "application/pdf".len();
        assert_eq!(usize::try_from(size).unwrap(), expected);
    }

    #[test]
    fn put_keeps_number_order() {
        let mut list = vec![report()];
        put(
            &mut list,
            Attachment {
                number: 1,
                ..Attachment::default()
            },
        );
        assert_eq!(list[0].number, 1);
        assert_eq!(list[1].number, 3);
        assert_eq!(next_number(&list), 4);
        assert_eq!(next_number(&[]), 0);
    }
}
