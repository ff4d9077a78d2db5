//! The types of the session's operations (sync states, download results, imports,
//! structured messages) and the helpers the operation modules share. The operations
//! themselves are in `read` (tables, property and message fetch), `ics` (downloads and
//! imports) and `write` (writes with ordinary ROPs).

use std::sync::atomic::{AtomicU64, Ordering};

use super::SessionError;
use super::batch::{Batch, BatchResult};
use crate::fxics::{FxProp, MessageChange};
use crate::ids::{GlobCnt, Guid, ObjectId, PredecessorChangeList, Xid};
use crate::idset::{IcsState, IdSet, Replica, StateProperty};
use crate::prop::{PropTag, PropValue, PropertyRow, RowCell, TaggedValue, tags};
use crate::rop::{RopRequest, RopResult, rop_id};

/// Largest number of ids an IDSET of a download may expand to.
pub(super) const MAX_EXPANDED_IDS: u64 = 1 << 20;
/// Bytes of state uploaded per RopSynchronizationUploadStateStreamContinue.
pub(super) const STATE_CHUNK: usize = 0x4000;
/// Attempts of a download whose session context was lost in the middle.
pub(super) const DOWNLOAD_ATTEMPTS: usize = 3;

/// PidTagAttachMimeTag.
pub(super) const PID_TAG_ATTACH_MIME_TAG: PropTag = PropTag(0x370E_001F);
/// PidTagAttachContentId.
pub(super) const PID_TAG_ATTACH_CONTENT_ID: PropTag = PropTag(0x3712_001F);
/// PidTagHtml.
pub(super) const PID_TAG_HTML: PropTag = PropTag(0x1013_0102);

/// The ICS state of one synchronization scope: the four state properties
/// (MS-OXCFXICS 2.2.1.1). Empty for the first sync.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncState(pub IcsState);

impl SyncState {
    /// Serializes the state for storage: per property, `tag u32 | length u32 | IDSET`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (tag, bytes) in self.0.to_upload() {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Reads a state written by [`SyncState::to_bytes`].
    ///
    /// # Errors
    ///
    /// [`SessionError::Usage`] when the bytes are not a stored state.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SessionError> {
        let bad = |reason: &str| SessionError::Usage {
            operation: "load sync state",
            reason: format!(
                "the stored sync state is corrupt ({reason}); start a full sync with an empty state"
            ),
        };
        let mut state = IcsState::default();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (head, tail) = rest
                .split_at_checked(8)
                .ok_or_else(|| bad("truncated header"))?;
            let tag = u32::from_le_bytes(
                head.get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad("tag"))?,
            );
            let len = u32::from_le_bytes(
                head.get(4..8)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad("length"))?,
            ) as usize;
            let (value, tail) = tail
                .split_at_checked(len)
                .ok_or_else(|| bad("truncated value"))?;
            let property = StateProperty::from_tag(tag).ok_or_else(|| bad("unknown property"))?;
            state
                .set_from_bytes(property, value)
                .map_err(|e| bad(&e.to_string()))?;
            rest = tail;
        }
        Ok(Self(state))
    }
}

/// A row of a hierarchy table.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderRow {
    /// PidTagFolderId.
    pub folder_id: ObjectId,
    /// PidTagParentFolderId.
    pub parent_id: Option<ObjectId>,
    /// PidTagDisplayName.
    pub display_name: String,
    /// PidTagContainerClass, e.g. `IPF.Note`.
    pub container_class: Option<String>,
    /// PidTagContentCount.
    pub content_count: Option<u32>,
    /// PidTagContentUnreadCount.
    pub unread_count: Option<u32>,
    /// PidTagChangeKey.
    pub change_key: Option<Vec<u8>>,
}

/// A folder change of an ICS hierarchy download.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderChange {
    /// PidTagSourceKey.
    pub source_key: Vec<u8>,
    /// PidTagParentSourceKey (empty for a child of the sync root).
    pub parent_source_key: Vec<u8>,
    /// PidTagFolderId, when the server sent it.
    pub folder_id: Option<ObjectId>,
    /// PidTagParentFolderId, when the server sent it.
    pub parent_folder_id: Option<ObjectId>,
    /// PidTagDisplayName.
    pub display_name: Option<String>,
    /// PidTagChangeKey.
    pub change_key: Option<Vec<u8>>,
    /// PidTagPredecessorChangeList.
    pub predecessors: Option<PredecessorChangeList>,
    /// Every property as sent.
    pub props: Vec<FxProp>,
}

/// The result of an ICS hierarchy download.
#[derive(Debug, Clone, PartialEq)]
pub struct HierarchySync {
    /// New and changed folders.
    pub changes: Vec<FolderChange>,
    /// Deleted folders (and folders no longer in scope).
    pub deleted: Vec<ObjectId>,
    /// The state to store for the next download.
    pub state: SyncState,
}

/// A message change of an ICS contents download. The change key and predecessor change
/// list decide origin: a change key in exmux's namespace is exmux's own write.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemChange {
    /// PidTagSourceKey.
    pub source_key: Vec<u8>,
    /// PidTagMid, when the server sent it.
    pub message_id: Option<ObjectId>,
    /// PidTagChangeKey as sent.
    pub change_key: Option<Vec<u8>>,
    /// PidTagChangeKey decoded as an XID.
    pub change_xid: Option<Xid>,
    /// PidTagPredecessorChangeList.
    pub predecessors: Option<PredecessorChangeList>,
    /// PidTagChangeNumber.
    pub change_number: Option<ObjectId>,
    /// PidTagAssociated (an FAI message).
    pub associated: bool,
    /// Whether the message is read, from PidTagMessageFlags.
    pub read: Option<bool>,
    /// The full change as sent, with recipients and attachments; [`ItemChange::props`]
    /// returns its message properties.
    pub raw: Box<MessageChange>,
}

impl ItemChange {
    /// Returns the message's properties as sent (without recipients and attachments).
    pub fn props(&self) -> &[FxProp] {
        &self.raw.content.props
    }
}

/// The result of an ICS contents download.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentsSync {
    /// New and changed messages.
    pub changes: Vec<ItemChange>,
    /// Messages deleted (MetaTagIdsetDeleted and MetaTagIdsetExpired).
    pub deleted: Vec<ObjectId>,
    /// Messages no longer in scope; one real server reported soft deletes only here, so
    /// treat them as removed from the view.
    pub no_longer_in_scope: Vec<ObjectId>,
    /// Messages marked read elsewhere.
    pub read: Vec<ObjectId>,
    /// Messages marked unread elsewhere.
    pub unread: Vec<ObjectId>,
    /// The state to store for the next download.
    pub state: SyncState,
}

/// One message change to import (RopSynchronizationImportMessageChange, MS-OXCFXICS
/// 2.2.3.2.4.2).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageImport {
    /// PidTagSourceKey of the message (from a download, or reserved for a new one).
    pub source_key: Vec<u8>,
    /// The message's current predecessor change list, from the last download.
    pub previous: PredecessorChangeList,
    /// The change key to stamp, from exmux's namespace ([`XidSource::next`]).
    pub change_key: Xid,
    /// The properties to set (flags, categories, any other).
    pub set: Vec<TaggedValue>,
    /// PidTagLastModificationTime as a FILETIME.
    pub last_modified: u64,
}

/// The outcome of an ICS import.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedChange {
    /// The source key of the object written.
    pub source_key: Vec<u8>,
    /// The change key stamped on it (exmux's XID), for the journal.
    pub change_key: Option<Xid>,
    /// The predecessor change list sent.
    pub predecessors: Option<PredecessorChangeList>,
    /// The message id the server assigned, when RopSaveChangesMessage returned one.
    pub message_id: Option<ObjectId>,
    /// The checkpoint state (RopSynchronizationGetTransferState) including this import;
    /// store it as the folder's sync state so the next download leaves the import out.
    pub state: SyncState,
}

/// A source of change keys in a caller-chosen namespace: the GUID and a counter the
/// caller persists (MS-OXCFXICS 2.2.2.2, XID).
#[derive(Debug)]
pub struct XidSource {
    namespace: Guid,
    counter: AtomicU64,
}

impl XidSource {
    /// Creates a source that hands out `namespace` with counters after `last`.
    pub fn new(namespace: Guid, last: u64) -> Self {
        Self {
            namespace,
            counter: AtomicU64::new(last),
        }
    }

    /// Returns the namespace GUID.
    pub fn namespace(&self) -> Guid {
        self.namespace
    }

    /// Returns the last counter handed out, to persist.
    pub fn last(&self) -> u64 {
        self.counter.load(Ordering::SeqCst)
    }

    /// Returns the next XID (22 bytes: the GUID and a 6-byte counter).
    pub fn next(&self) -> Xid {
        let value = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let globcnt = GlobCnt::new(value & crate::ids::GLOBCNT_MAX).unwrap_or_default();
        Xid::from_globcnt(self.namespace, globcnt)
    }
}

/// A recipient of a structured message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructuredRecipient {
    /// 1 To, 2 Cc, 3 Bcc.
    pub recipient_type: u32,
    /// Display name.
    pub name: Option<String>,
    /// SMTP address.
    pub address: String,
}

/// An attachment of a structured message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructuredAttachment {
    /// PidTagAttachLongFilename.
    pub file_name: Option<String>,
    /// PidTagAttachMimeTag.
    pub mime_type: Option<String>,
    /// PidTagAttachContentId, the MIME Content-ID without angle brackets; set for an
    /// attachment an HTML body refers to.
    pub content_id: Option<String>,
    /// PidTagAttachDataBinary.
    pub data: Vec<u8>,
}

impl StructuredAttachment {
    /// Builds an attachment from the properties of an attachment object.
    pub(super) fn from_props(find: impl Fn(PropTag) -> Option<PropValue>) -> Self {
        StructuredAttachment {
            file_name: text(find(tags::PID_TAG_ATTACH_LONG_FILENAME).as_ref()),
            mime_type: text(find(PID_TAG_ATTACH_MIME_TAG).as_ref()),
            content_id: text(find(PID_TAG_ATTACH_CONTENT_ID).as_ref()),
            data: binary(find(tags::PID_TAG_ATTACH_DATA_BINARY).as_ref()).unwrap_or_default(),
        }
    }

    /// Returns the properties a create writes on the attachment object: the method
    /// afByValue, the name, type, content id and data.
    pub(super) fn to_props(&self) -> Vec<TaggedValue> {
        /// PidTagAttachMethod afByValue: the data is in PidTagAttachDataBinary.
        const AF_BY_VALUE: i32 = 1;
        let mut props = vec![TaggedValue {
            tag: tags::PID_TAG_ATTACH_METHOD,
            value: PropValue::I32(AF_BY_VALUE),
        }];
        let mut put = |tag: PropTag, text: &Option<String>| {
            if let Some(text) = text {
                props.push(TaggedValue {
                    tag,
                    value: PropValue::Unicode(text.clone()),
                });
            }
        };
        put(tags::PID_TAG_ATTACH_LONG_FILENAME, &self.file_name);
        put(PID_TAG_ATTACH_MIME_TAG, &self.mime_type);
        put(PID_TAG_ATTACH_CONTENT_ID, &self.content_id);
        props.push(TaggedValue {
            tag: tags::PID_TAG_ATTACH_DATA_BINARY,
            value: PropValue::Binary(self.data.clone()),
        });
        props
    }
}

/// A message fetched over MAPI: its properties, bodies, recipients and attachments.
/// [`crate::session::mime::compose`] turns it into MIME.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StructuredMessage {
    /// Every property read (RopGetPropertiesAll).
    pub props: Vec<TaggedValue>,
    /// PidTagSubject.
    pub subject: Option<String>,
    /// PidTagBody.
    pub body_text: Option<String>,
    /// PidTagHtml.
    pub body_html: Option<String>,
    /// Sender name and address.
    pub from: Option<(Option<String>, String)>,
    /// Recipients.
    pub recipients: Vec<StructuredRecipient>,
    /// Attachments.
    pub attachments: Vec<StructuredAttachment>,
    /// PidTagClientSubmitTime or PidTagMessageDeliveryTime, as a FILETIME.
    pub date: Option<u64>,
    /// PidTagInternetMessageId.
    pub message_id: Option<String>,
}

impl StructuredMessage {
    /// Returns the value of a property.
    pub fn get(&self, tag: PropTag) -> Option<&PropValue> {
        self.props.iter().find(|p| p.tag == tag).map(|p| &p.value)
    }

    /// Builds a structured message from a message change of an ICS download, whose
    /// stream carries the recipients and attachments as property lists (MS-OXCFXICS
    /// 2.2.4.3.1), so this path has them where the ROP fetch does not.
    pub fn from_change(change: &MessageChange) -> StructuredMessage {
        let props: Vec<TaggedValue> = change
            .content
            .props
            .iter()
            .map(|p| TaggedValue {
                tag: p.tag,
                value: p.value.clone(),
            })
            .collect();
        let mut message = structured_from(props);
        for recipient in &change.content.recipients {
            let address = text(fx_get(recipient, tags::PID_TAG_SMTP_ADDRESS))
                .or_else(|| text(fx_get(recipient, tags::PID_TAG_EMAIL_ADDRESS)));
            let Some(address) = address else { continue };
            message.recipients.push(StructuredRecipient {
                recipient_type: int(fx_get(recipient, tags::PID_TAG_RECIPIENT_TYPE)).unwrap_or(1),
                name: text(fx_get(recipient, tags::PID_TAG_DISPLAY_NAME)),
                address,
            });
        }
        for attachment in &change.content.attachments {
            message
                .attachments
                .push(StructuredAttachment::from_props(|tag| {
                    fx_get(&attachment.props, tag).cloned()
                }));
        }
        message
    }
}

/// Checks that request `index` of `result` succeeded.
pub(super) fn check(
    result: &BatchResult,
    index: usize,
    operation: &'static str,
) -> Result<(), SessionError> {
    let rop = result.result(index).ok_or(SessionError::MissingResponse {
        operation,
        rop: "a ROP of the batch",
    })?;
    if rop.return_value != 0 {
        return Err(SessionError::Rop {
            operation,
            rop: rop_id::name(rop.rop_id),
            code: rop.return_value,
        });
    }
    Ok(())
}

pub(super) fn ok<'r>(
    result: &'r BatchResult,
    index: usize,
    operation: &'static str,
) -> Result<&'r RopResult, SessionError> {
    check(result, index, operation)?;
    result.result(index).ok_or(SessionError::MissingResponse {
        operation,
        rop: "a ROP of the batch",
    })
}

pub(super) fn text(value: Option<&PropValue>) -> Option<String> {
    match value? {
        PropValue::Unicode(s) => Some(s.clone()),
        PropValue::String8(b) | PropValue::CodePageString(b) => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        _ => None,
    }
}

pub(super) fn binary(value: Option<&PropValue>) -> Option<Vec<u8>> {
    match value? {
        PropValue::Binary(b) => Some(b.clone()),
        _ => None,
    }
}

pub(super) fn id(value: Option<&PropValue>) -> Option<ObjectId> {
    match value? {
        PropValue::I64(v) => Some(ObjectId(*v as u64)),
        _ => None,
    }
}

pub(super) fn int(value: Option<&PropValue>) -> Option<u32> {
    match value? {
        PropValue::I32(v) => Some(*v as u32),
        _ => None,
    }
}

pub(super) fn fx_get(props: &[FxProp], tag: PropTag) -> Option<&PropValue> {
    props.iter().find(|p| p.tag == tag).map(|p| &p.value)
}

pub(super) fn cell(row: &PropertyRow, columns: &[PropTag], tag: PropTag) -> Option<PropValue> {
    match row.get(columns, tag)? {
        RowCell::Value(v) => Some(v.clone()),
        _ => None,
    }
}

/// Expands a REPLID-form IDSET into ids, refusing more than [`MAX_EXPANDED_IDS`].
pub(super) fn expand(
    set: Option<&IdSet>,
    out: &mut Vec<ObjectId>,
    operation: &'static str,
) -> Result<(), SessionError> {
    let Some(set) = set else { return Ok(()) };
    let mut total = 0u64;
    for (replica, globs) in set.entries() {
        let Replica::Id(replid) = replica else {
            continue;
        };
        for &(low, high) in globs.ranges() {
            total = total.saturating_add(high.saturating_sub(low) + 1);
            if total > MAX_EXPANDED_IDS {
                return Err(SessionError::Protocol {
                    operation,
                    reason: format!(
                        "an IDSET of the download names more than {MAX_EXPANDED_IDS} ids"
                    ),
                });
            }
            for value in low..=high {
                if let Some(globcnt) = GlobCnt::new(value) {
                    out.push(ObjectId::from_parts(*replid, globcnt));
                }
            }
        }
    }
    Ok(())
}

/// Appends the ROPs that upload `state` into the sync context or collector at `slot`.
pub(super) fn push_state_upload(batch: &mut Batch, slot: u8, state: &SyncState, contents: bool) {
    for (tag, bytes) in state.0.to_upload() {
        if !contents
            && matches!(
                StateProperty::from_tag(tag),
                Some(StateProperty::CnsetSeenFai | StateProperty::CnsetRead)
            )
        {
            continue;
        }
        batch.push(RopRequest::SynchronizationUploadStateStreamBegin {
            logon_id: 0,
            input_handle: slot,
            state_property: PropTag(tag),
            transfer_buffer_size: bytes.len() as u32,
        });
        for chunk in bytes.chunks(STATE_CHUNK) {
            batch.push(RopRequest::SynchronizationUploadStateStreamContinue {
                logon_id: 0,
                input_handle: slot,
                stream_data: chunk.to_vec(),
            });
        }
        batch.push(RopRequest::SynchronizationUploadStateStreamEnd {
            logon_id: 0,
            input_handle: slot,
        });
    }
}

pub(super) fn get_buffer(slot: u8) -> RopRequest {
    RopRequest::FastTransferSourceGetBuffer {
        logon_id: 0,
        input_handle: slot,
        buffer_size: 0xBABE,
        maximum_buffer_size: Some(0x7FF0),
    }
}

pub(super) fn open_message(
    input: u8,
    output: u8,
    folder: ObjectId,
    message: ObjectId,
    mode: u8,
) -> RopRequest {
    RopRequest::OpenMessage {
        logon_id: 0,
        input_handle: input,
        output_handle: output,
        code_page_id: 0x0FFF,
        folder_id: folder,
        open_mode_flags: mode,
        message_id: message,
    }
}

/// Fills the named fields of a structured message from its properties.
pub(crate) fn structured_from(props: Vec<TaggedValue>) -> StructuredMessage {
    let find = |tag: PropTag| {
        props
            .iter()
            .find(|p| p.tag.0 >> 16 == tag.0 >> 16)
            .map(|p| &p.value)
    };
    let address = text(find(PropTag(0x5D01_001F))).or_else(|| text(find(PropTag(0x0C1F_001F))));
    let from = address.map(|a| (text(find(tags::PID_TAG_SENDER_NAME)), a));
    let html = match find(PID_TAG_HTML) {
        Some(PropValue::Binary(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        other => text(other),
    };
    let date =
        match find(PropTag(0x0039_0040)).or_else(|| find(tags::PID_TAG_MESSAGE_DELIVERY_TIME)) {
            Some(PropValue::Time(t)) => Some(*t),
            _ => None,
        };
    StructuredMessage {
        subject: text(find(tags::PID_TAG_SUBJECT)),
        body_text: text(find(tags::PID_TAG_BODY)),
        body_html: html,
        from,
        recipients: Vec::new(),
        attachments: Vec::new(),
        date,
        message_id: text(find(PropTag(0x1035_001F))),
        props,
    }
}
