//! RopNotify NotificationData (MS-OXCNOTIF 2.2.1.4.1.2). RopPending is decoded with the
//! other server-only ROPs in [`crate::rop`].
//!
//! A notification carries no originator: no session, client or change key names who made
//! the change, so it is a hint to synchronize, never state.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::ids::ObjectId;
use crate::prop::{PropError, PropTag, PropertyRow, Reader, decode_tags};
use crate::rop::writer::Put;

/// Errors from decoding NotificationData.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// A field was cut short or malformed.
    #[error(transparent)]
    Wire(#[from] PropError),
    /// NotificationFlags named no known type, or more than one.
    #[error(
        "invalid NotificationFlags 0x{flags:04X} at offset {offset}: the low 12 bits must name exactly one notification type"
    )]
    BadType {
        /// The flags.
        flags: u16,
        /// Byte offset of the flags.
        offset: usize,
    },
}

/// Notification type bits (the low 12 bits of NotificationFlags).
#[allow(missing_docs)]
pub mod notification_type {
    pub const NEW_MAIL: u16 = 0x0002;
    pub const OBJECT_CREATED: u16 = 0x0004;
    pub const OBJECT_DELETED: u16 = 0x0008;
    pub const OBJECT_MODIFIED: u16 = 0x0010;
    pub const OBJECT_MOVED: u16 = 0x0020;
    pub const OBJECT_COPIED: u16 = 0x0040;
    pub const SEARCH_COMPLETED: u16 = 0x0080;
    pub const TABLE_MODIFIED: u16 = 0x0100;
    pub const EXTENDED: u16 = 0x0400;
}

/// NotificationFlags bit: TotalMessageCount is present.
pub const FLAG_TOTAL_COUNT: u16 = 0x1000;
/// NotificationFlags bit: UnreadMessageCount is present.
pub const FLAG_UNREAD_COUNT: u16 = 0x2000;
/// NotificationFlags bit: the object is in a search folder.
pub const FLAG_SEARCH: u16 = 0x4000;
/// NotificationFlags bit: the object is a message (clear: a folder).
pub const FLAG_MESSAGE: u16 = 0x8000;

/// TableEventType values of TableModified notifications.
#[allow(missing_docs)]
pub mod table_event {
    pub const TABLE_CHANGED: u16 = 0x0001;
    pub const ROW_ADDED: u16 = 0x0003;
    pub const ROW_DELETED: u16 = 0x0004;
    pub const ROW_MODIFIED: u16 = 0x0005;
    pub const RESTRICTION_CHANGED: u16 = 0x0007;
}

/// The table fields of a TableModified notification.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct TableEvent {
    /// TableEventType.
    pub event_type: u16,
    /// TableRowFolderID (row events).
    pub row_folder_id: Option<ObjectId>,
    /// TableRowMessageID and TableRowInstance (row events on message tables).
    pub row_message: Option<(ObjectId, u32)>,
    /// InsertAfterTableRowFolderID (added and modified rows).
    pub insert_after_folder_id: Option<ObjectId>,
    /// InsertAfterTableRowID and InsertAfterTableRowInstance (added and modified rows of
    /// message tables; all zero means "at the top").
    pub insert_after_message: Option<(ObjectId, u32)>,
    /// TableRowData: a PropertyRow over the table's columns, raw (decode it with
    /// [`TableEvent::row`]).
    pub row_data: Option<Vec<u8>>,
}

impl TableEvent {
    /// Decodes `row_data` over the table's current columns.
    ///
    /// # Errors
    /// [`PropError`] when the row does not fit the columns.
    pub fn row(&self, columns: &[PropTag]) -> Option<Result<PropertyRow, PropError>> {
        let data = self.row_data.as_ref()?;
        Some(PropertyRow::decode(&mut Reader::new(data), columns))
    }
}

/// NotificationData (MS-OXCNOTIF 2.2.1.4.1.2). Each field is present only under the
/// condition its documentation names; the encoder writes the fields that are `Some`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Notification {
    /// NotificationFlags: the type in the low 12 bits plus the T, U, S and M bits.
    pub flags: u16,
    /// Table fields (TableModified).
    pub table: Option<TableEvent>,
    /// FolderId (all types but TableModified and Extended).
    pub folder_id: Option<ObjectId>,
    /// MessageId (same types, when M is set).
    pub message_id: Option<ObjectId>,
    /// ParentFolderId (created, deleted, moved, copied, when S and M are both set or both
    /// clear).
    pub parent_folder_id: Option<ObjectId>,
    /// OldFolderId (moved, copied).
    pub old_folder_id: Option<ObjectId>,
    /// OldMessageId (moved, copied, when M is set).
    pub old_message_id: Option<ObjectId>,
    /// OldParentFolderId (moved, copied, when M is clear).
    pub old_parent_folder_id: Option<ObjectId>,
    /// Changed property tags (created, modified); `None` when TagCount is 0 or 0xFFFF.
    pub tags: Option<Vec<PropTag>>,
    /// TagCount as sent (0x0000 or 0xFFFF when no tags follow), kept for exact
    /// re-encoding.
    pub tag_count: Option<u16>,
    /// TotalMessageCount (T).
    pub total_message_count: Option<u32>,
    /// UnreadMessageCount (U).
    pub unread_message_count: Option<u32>,
    /// NewMail: MessageFlags, UnicodeFlag and MessageClass (NUL8 or NUL16 bytes without
    /// the terminator).
    pub new_mail: Option<(u32, bool, Vec<u8>)>,
}

impl Notification {
    /// Returns the notification type (low 12 bits of the flags).
    pub fn kind(&self) -> u16 {
        self.flags & 0x0FFF
    }

    /// Returns whether the object is a message.
    pub fn is_message(&self) -> bool {
        self.flags & FLAG_MESSAGE != 0
    }

    /// Decodes NotificationData.
    ///
    /// # Errors
    /// [`NotifyError`] when the flags are invalid or a field is cut short.
    pub fn decode(r: &mut Reader<'_>) -> Result<Notification, NotifyError> {
        use notification_type as t;
        let offset = r.offset();
        let flags = r.u16("NotificationFlags")?;
        let kind = flags & 0x0FFF;
        if kind.count_ones() != 1 {
            return Err(NotifyError::BadType { flags, offset });
        }
        let message = flags & FLAG_MESSAGE != 0;
        let search = flags & FLAG_SEARCH != 0;
        let mut n = Notification {
            flags,
            ..Notification::default()
        };

        if kind == t::TABLE_MODIFIED {
            let event_type = r.u16("TableEventType")?;
            let mut table = TableEvent {
                event_type,
                ..TableEvent::default()
            };
            let row_event = matches!(event_type, 3..=5);
            let insert_event = matches!(event_type, 3 | 5);
            if row_event {
                table.row_folder_id = Some(ObjectId(r.u64("TableRowFolderID")?));
                if message {
                    table.row_message = Some((
                        ObjectId(r.u64("TableRowMessageID")?),
                        r.u32("TableRowInstance")?,
                    ));
                }
            }
            if insert_event {
                table.insert_after_folder_id =
                    Some(ObjectId(r.u64("InsertAfterTableRowFolderID")?));
                if message {
                    table.insert_after_message = Some((
                        ObjectId(r.u64("InsertAfterTableRowID")?),
                        r.u32("InsertAfterTableRowInstance")?,
                    ));
                }
                let size = usize::from(r.u16("TableRowDataSize")?);
                table.row_data = Some(r.take(size, "TableRowData")?.to_vec());
            }
            n.table = Some(table);
        }

        if kind != t::TABLE_MODIFIED && kind != t::EXTENDED {
            n.folder_id = Some(ObjectId(r.u64("FolderId")?));
            if message {
                n.message_id = Some(ObjectId(r.u64("MessageId")?));
            }
        }
        let structural = matches!(
            kind,
            t::OBJECT_CREATED | t::OBJECT_DELETED | t::OBJECT_MOVED | t::OBJECT_COPIED
        );
        if structural && search == message {
            n.parent_folder_id = Some(ObjectId(r.u64("ParentFolderId")?));
        }
        if matches!(kind, t::OBJECT_MOVED | t::OBJECT_COPIED) {
            n.old_folder_id = Some(ObjectId(r.u64("OldFolderId")?));
            if message {
                n.old_message_id = Some(ObjectId(r.u64("OldMessageId")?));
            } else {
                n.old_parent_folder_id = Some(ObjectId(r.u64("OldParentFolderId")?));
            }
        }
        if matches!(kind, t::OBJECT_CREATED | t::OBJECT_MODIFIED) {
            let count = r.u16("TagCount")?;
            n.tag_count = Some(count);
            if count != 0 && count != 0xFFFF {
                n.tags = Some(decode_tags(r, usize::from(count))?);
            }
        }
        if flags & FLAG_TOTAL_COUNT != 0 {
            n.total_message_count = Some(r.u32("TotalMessageCount")?);
        }
        if flags & FLAG_UNREAD_COUNT != 0 {
            n.unread_message_count = Some(r.u32("UnreadMessageCount")?);
        }
        if kind == t::NEW_MAIL {
            let message_flags = r.u32("MessageFlags")?;
            let unicode = r.u8("UnicodeFlag")? != 0;
            let class = if unicode {
                r.nul16("MessageClass")?.to_vec()
            } else {
                r.nul8("MessageClass")?.to_vec()
            };
            n.new_mail = Some((message_flags, unicode, class));
        }
        Ok(n)
    }

    /// Appends NotificationData after checking that its lengths and counts fit their
    /// fields: TableEventData's row data is at most 65,535 bytes, and at most 65,534 tags
    /// follow TagCount, because 0xFFFF there means "all properties" with no tags after it.
    ///
    /// # Errors
    /// [`NotifyError::Wire`] with [`PropError::TooLong`] when one does not fit; nothing
    /// is appended then.
    pub fn try_encode(&self, out: &mut Vec<u8>) -> Result<(), NotifyError> {
        let too_long = |what, len, max| NotifyError::Wire(PropError::TooLong { what, len, max });
        let row_data = self
            .table
            .as_ref()
            .and_then(|table| table.row_data.as_ref());
        if let Some(data) = row_data
            && data.len() > usize::from(u16::MAX)
        {
            return Err(too_long(
                "table row data",
                data.len(),
                usize::from(u16::MAX),
            ));
        }
        if let Some(tags) = &self.tags
            && tags.len() >= usize::from(u16::MAX)
        {
            return Err(too_long("TagCount", tags.len(), usize::from(u16::MAX) - 1));
        }
        self.encode(out);
        Ok(())
    }

    /// Appends NotificationData: the flags, then each field that is `Some`, in the fixed
    /// order of MS-OXCNOTIF 2.2.1.4.1.2. Lengths wrap when they do not fit; use
    /// [`Notification::try_encode`] where the caller does not bound them.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(self.flags);
        if let Some(table) = &self.table {
            out.put_u16(table.event_type);
            if let Some(id) = table.row_folder_id {
                out.put_u64(id.0);
            }
            if let Some((id, instance)) = table.row_message {
                out.put_u64(id.0);
                out.put_u32(instance);
            }
            if let Some(id) = table.insert_after_folder_id {
                out.put_u64(id.0);
            }
            if let Some((id, instance)) = table.insert_after_message {
                out.put_u64(id.0);
                out.put_u32(instance);
            }
            if let Some(data) = &table.row_data {
                out.put_u16(data.len() as u16);
                out.put(data);
            }
        }
        for id in [
            self.folder_id,
            self.message_id,
            self.parent_folder_id,
            self.old_folder_id,
            self.old_message_id,
            self.old_parent_folder_id,
        ]
        .into_iter()
        .flatten()
        {
            out.put_u64(id.0);
        }
        if let Some(count) = self.tag_count {
            match &self.tags {
                Some(tags) => {
                    out.put_u16(tags.len() as u16);
                    tags.iter().for_each(|tag| out.put_u32(tag.0));
                }
                None => out.put_u16(count),
            }
        }
        if let Some(count) = self.total_message_count {
            out.put_u32(count);
        }
        if let Some(count) = self.unread_message_count {
            out.put_u32(count);
        }
        if let Some((message_flags, unicode, class)) = &self.new_mail {
            out.put_u32(*message_flags);
            out.put_u8(u8::from(*unicode));
            out.put(class);
            if *unicode {
                out.put(&[0, 0]);
            } else {
                out.put_u8(0);
            }
        }
    }
}
