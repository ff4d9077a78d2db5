//! The operations a sync engine needs, over [`MapiSession::execute`]: folder hierarchy
//! (table and ICS), contents tables, ICS contents download from a stored state, property
//! and content fetch, and writes. Writes that ICS import can carry (read state,
//! property changes such as flags and categories, deletes, creates) go through a
//! collector with a change key from the caller's namespace, and return the checkpoint
//! state that keeps them out of the next download (MS-OXCFXICS 3.3.4.3.3); the others
//! read back the change key the server assigned.

use std::sync::atomic::{AtomicU64, Ordering};

use super::batch::{Batch, BatchResult, HandleRef};
use super::{MapiSession, Replay, SessionError};
use crate::fxics::{FxProp, FxReader, MessageChange, SyncEvent, SyncParser};
use crate::ids::{GlobCnt, Guid, ObjectId, PredecessorChangeList, Xid};
use crate::idset::{IcsState, IdSet, Replica, StateProperty};
use crate::prop::{PropTag, PropValue, PropertyRow, RowCell, TaggedValue, tags};
use crate::rop::{MessageReadState, ResponseBody, RopRequest, RopResult, RopString, rop_id};

/// Largest number of ids an IDSET of a download may expand to.
const MAX_EXPANDED_IDS: u64 = 1 << 20;
/// Bytes of state uploaded per RopSynchronizationUploadStateStreamContinue.
const STATE_CHUNK: usize = 0x4000;
/// Attempts of a download whose session context was lost in the middle.
const DOWNLOAD_ATTEMPTS: usize = 3;

/// PidTagAttachMimeTag.
const PID_TAG_ATTACH_MIME_TAG: PropTag = PropTag(0x370E_001F);
/// PidTagHtml.
const PID_TAG_HTML: PropTag = PropTag(0x1013_0102);

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
    /// The message's properties as sent (without recipients and attachments).
    pub props: Vec<FxProp>,
    /// The full change, with recipients and attachments.
    pub raw: Box<MessageChange>,
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
    /// A source that hands out `namespace` with counters after `last`.
    pub fn new(namespace: Guid, last: u64) -> Self {
        Self {
            namespace,
            counter: AtomicU64::new(last),
        }
    }

    /// The namespace GUID.
    pub fn namespace(&self) -> Guid {
        self.namespace
    }

    /// The last counter handed out, to persist.
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
    /// PidTagAttachDataBinary.
    pub data: Vec<u8>,
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
            message.attachments.push(StructuredAttachment {
                file_name: text(fx_get(
                    &attachment.props,
                    tags::PID_TAG_ATTACH_LONG_FILENAME,
                )),
                mime_type: text(fx_get(&attachment.props, PID_TAG_ATTACH_MIME_TAG)),
                data: binary(fx_get(&attachment.props, tags::PID_TAG_ATTACH_DATA_BINARY))
                    .unwrap_or_default(),
            });
        }
        message
    }
}

/// Checks that request `index` of `result` succeeded.
pub(crate) fn check(
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

fn ok<'r>(
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

fn text(value: Option<&PropValue>) -> Option<String> {
    match value? {
        PropValue::Unicode(s) => Some(s.clone()),
        PropValue::String8(b) | PropValue::CodePageString(b) => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        _ => None,
    }
}

fn binary(value: Option<&PropValue>) -> Option<Vec<u8>> {
    match value? {
        PropValue::Binary(b) => Some(b.clone()),
        _ => None,
    }
}

fn id(value: Option<&PropValue>) -> Option<ObjectId> {
    match value? {
        PropValue::I64(v) => Some(ObjectId(*v as u64)),
        _ => None,
    }
}

fn int(value: Option<&PropValue>) -> Option<u32> {
    match value? {
        PropValue::I32(v) => Some(*v as u32),
        _ => None,
    }
}

fn fx_get(props: &[FxProp], tag: PropTag) -> Option<&PropValue> {
    props.iter().find(|p| p.tag == tag).map(|p| &p.value)
}

fn cell(row: &PropertyRow, columns: &[PropTag], tag: PropTag) -> Option<PropValue> {
    match row.get(columns, tag)? {
        RowCell::Value(v) => Some(v.clone()),
        _ => None,
    }
}

/// Expands a REPLID-form IDSET into ids, refusing more than [`MAX_EXPANDED_IDS`].
fn expand(
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
fn push_state_upload(batch: &mut Batch, slot: u8, state: &SyncState, contents: bool) {
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

fn get_buffer(slot: u8) -> RopRequest {
    RopRequest::FastTransferSourceGetBuffer {
        logon_id: 0,
        input_handle: slot,
        buffer_size: 0xBABE,
        maximum_buffer_size: Some(0x7FF0),
    }
}

impl MapiSession {
    /// Reads the subfolders of `folder` (RopGetHierarchyTable, with Depth for the whole
    /// tree below it).
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a ROP or the Execute fails.
    pub async fn hierarchy_table(
        &self,
        folder: ObjectId,
        depth: bool,
    ) -> Result<Vec<FolderRow>, SessionError> {
        let operation = "hierarchy table";
        let columns = vec![
            tags::PID_TAG_FOLDER_ID,
            tags::PID_TAG_PARENT_FOLDER_ID,
            tags::PID_TAG_DISPLAY_NAME,
            tags::PID_TAG_CONTAINER_CLASS,
            tags::PID_TAG_CONTENT_COUNT,
            tags::PID_TAG_CONTENT_UNREAD_COUNT,
            tags::PID_TAG_CHANGE_KEY,
        ];
        let rows = self
            .table(
                operation,
                folder,
                true,
                if depth { 0x04 | 0x40 } else { 0x40 },
                &columns,
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some(FolderRow {
                    folder_id: id(cell(row, &columns, tags::PID_TAG_FOLDER_ID).as_ref())?,
                    parent_id: id(cell(row, &columns, tags::PID_TAG_PARENT_FOLDER_ID).as_ref()),
                    display_name: text(cell(row, &columns, tags::PID_TAG_DISPLAY_NAME).as_ref())
                        .unwrap_or_default(),
                    container_class: text(
                        cell(row, &columns, tags::PID_TAG_CONTAINER_CLASS).as_ref(),
                    ),
                    content_count: int(cell(row, &columns, tags::PID_TAG_CONTENT_COUNT).as_ref()),
                    unread_count: int(
                        cell(row, &columns, tags::PID_TAG_CONTENT_UNREAD_COUNT).as_ref()
                    ),
                    change_key: binary(cell(row, &columns, tags::PID_TAG_CHANGE_KEY).as_ref()),
                })
            })
            .collect())
    }

    /// Reads the rows of the contents table of `folder` over `columns`.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a ROP or the Execute fails.
    pub async fn contents_table(
        &self,
        folder: ObjectId,
        columns: &[PropTag],
    ) -> Result<Vec<PropertyRow>, SessionError> {
        self.table("contents table", folder, false, 0x40, columns)
            .await
    }

    async fn table(
        &self,
        operation: &'static str,
        folder: ObjectId,
        hierarchy: bool,
        table_flags: u8,
        columns: &[PropTag],
    ) -> Result<Vec<PropertyRow>, SessionError> {
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let folder_slot = batch.output();
        let table_slot = batch.output();
        batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: logon,
            output_handle: folder_slot,
            folder_id: folder,
            open_mode_flags: 0,
        });
        let table_rop = if hierarchy {
            RopRequest::GetHierarchyTable {
                logon_id: 0,
                input_handle: folder_slot,
                output_handle: table_slot,
                table_flags,
            }
        } else {
            RopRequest::GetContentsTable {
                logon_id: 0,
                input_handle: folder_slot,
                output_handle: table_slot,
                table_flags,
            }
        };
        batch.push(table_rop);
        batch.push(RopRequest::SetColumns {
            logon_id: 0,
            input_handle: table_slot,
            set_columns_flags: 0,
            tags: columns.to_vec(),
        });
        let query = batch.push(RopRequest::QueryRows {
            logon_id: 0,
            input_handle: table_slot,
            query_rows_flags: 0,
            forward_read: true,
            row_count: 0x200,
        });
        let result = self.execute(operation, &batch, Replay::Safe).await?;
        for index in 0..=query {
            check(&result, index, operation)?;
        }
        let table = result
            .handle(table_slot)
            .ok_or(SessionError::MissingResponse {
                operation,
                rop: "table handle",
            })?;
        let folder_handle = result.handle(folder_slot);
        let mut rows = Vec::new();
        let mut last = ok(&result, query, operation)?.clone();
        let generation = result.generation;
        loop {
            let ResponseBody::QueryRows { rows: page, .. } = last.body else {
                return Err(SessionError::MissingResponse {
                    operation,
                    rop: "RopQueryRows",
                });
            };
            let done = page.is_empty();
            rows.extend(page);
            if done {
                break;
            }
            let mut next = Batch::new();
            let slot = next.input(HandleRef::Raw(table));
            next.with_columns(slot, columns.to_vec());
            next.push(RopRequest::QueryRows {
                logon_id: 0,
                input_handle: slot,
                query_rows_flags: 0,
                forward_read: true,
                row_count: 0x200,
            });
            let result = match self.execute(operation, &next, Replay::Safe).await {
                Err(SessionError::HandlesLost { .. }) => None,
                other => Some(other?),
            };
            let Some(result) = result.filter(|r| r.generation == generation) else {
                // The context was replaced: the table died with it. Start over.
                return Box::pin(self.table(operation, folder, hierarchy, table_flags, columns))
                    .await;
            };
            last = ok(&result, 0, operation)?.clone();
        }
        self.release_raw(&[Some(table), folder_handle]).await;
        Ok(rows)
    }

    async fn release_raw(&self, handles: &[Option<u32>]) {
        let mut batch = Batch::new();
        for handle in handles.iter().flatten() {
            let slot = batch.input(HandleRef::Raw(*handle));
            batch.push(RopRequest::Release {
                logon_id: 0,
                input_handle: slot,
            });
        }
        if !batch.is_empty()
            && let Err(error) = self.execute("release", &batch, Replay::Safe).await
        {
            tracing::debug!(%error, "releasing server objects failed");
        }
    }

    /// Runs an ICS download of `folder` from `state` and returns the parsed units.
    async fn download(
        &self,
        operation: &'static str,
        folder: ObjectId,
        contents: bool,
        state: &SyncState,
    ) -> Result<Vec<SyncEvent>, SessionError> {
        let mut attempt = 0;
        'attempt: loop {
            attempt += 1;
            let mut batch = Batch::new();
            let logon = batch.input(HandleRef::Logon);
            let folder_slot = batch.output();
            let sync_slot = batch.output();
            batch.push(RopRequest::OpenFolder {
                logon_id: 0,
                input_handle: logon,
                output_handle: folder_slot,
                folder_id: folder,
                open_mode_flags: 0,
            });
            // Unicode | ReadState | FAI | Normal | BestBody for contents; Unicode for
            // hierarchy. Extra flags Eid | MessageSize | CN (MS-OXCFXICS 2.2.3.2.1.1).
            let (sync_type, flags) = if contents {
                (1u8, 0x0001 | 0x0008 | 0x0010 | 0x0020 | 0x2000)
            } else {
                (2u8, 0x0001)
            };
            batch.push(RopRequest::SynchronizationConfigure {
                logon_id: 0,
                input_handle: folder_slot,
                output_handle: sync_slot,
                synchronization_type: sync_type,
                send_options: 0x01,
                synchronization_flags: flags,
                restriction_data: Vec::new(),
                synchronization_extra_flags: 0x0000_0007,
                tags: Vec::new(),
            });
            push_state_upload(&mut batch, sync_slot, state, contents);
            let first_get = batch.push(get_buffer(sync_slot));
            let result = self.execute(operation, &batch, Replay::Safe).await?;
            for index in 0..first_get {
                let rop = result.result(index);
                if let Some(rop) = rop
                    && rop.return_value != 0
                    && matches!(
                        rop.rop_id,
                        rop_id::SYNCHRONIZATION_UPLOAD_STATE_STREAM_BEGIN
                            | rop_id::SYNCHRONIZATION_UPLOAD_STATE_STREAM_CONTINUE
                            | rop_id::SYNCHRONIZATION_UPLOAD_STATE_STREAM_END
                    )
                {
                    return Err(SessionError::InvalidSyncState {
                        operation,
                        code: rop.return_value,
                    });
                }
                check(&result, index, operation)?;
            }
            let generation = result.generation;
            let sync = result
                .handle(sync_slot)
                .ok_or(SessionError::MissingResponse {
                    operation,
                    rop: "RopSynchronizationConfigure",
                })?;
            let folder_handle = result.handle(folder_slot);
            let mut reader = FxReader::new();
            let mut parser = SyncParser::new();
            let mut events = Vec::new();
            let mut last = result.result(first_get).cloned();
            loop {
                let rop = last.take().ok_or(SessionError::MissingResponse {
                    operation,
                    rop: "RopFastTransferSourceGetBuffer",
                })?;
                let status = match rop.body {
                    ResponseBody::BackoffTime(ms) => {
                        tracing::debug!(ms, "server busy during a download: backing off");
                        tokio::time::sleep(std::time::Duration::from_millis(u64::from(
                            ms.min(30_000),
                        )))
                        .await;
                        1
                    }
                    ResponseBody::FastTransferBuffer {
                        transfer_status,
                        transfer_buffer,
                        ..
                    } if rop.return_value == 0 => {
                        reader.feed(&transfer_buffer);
                        while let Some(element) = reader
                            .next_element()
                            .map_err(|e| SessionError::protocol(operation, e))?
                        {
                            let offset = reader.offset();
                            parser
                                .push(element, offset, &mut events)
                                .map_err(|e| SessionError::protocol(operation, e))?;
                        }
                        transfer_status
                    }
                    _ => {
                        return Err(SessionError::Rop {
                            operation,
                            rop: "RopFastTransferSourceGetBuffer",
                            code: rop.return_value,
                        });
                    }
                };
                match status {
                    3 => break,
                    0 => {
                        return Err(SessionError::Rop {
                            operation,
                            rop: "RopFastTransferSourceGetBuffer",
                            code: rop.return_value,
                        });
                    }
                    _ => {}
                }
                let mut next = Batch::new();
                let slot = next.input(HandleRef::Raw(sync));
                next.push(get_buffer(slot));
                let result = match self.execute(operation, &next, Replay::Safe).await {
                    Err(SessionError::HandlesLost { .. }) => None,
                    other => Some(other?),
                };
                let lost = result.as_ref().is_none_or(|r| r.generation != generation);
                if lost {
                    if attempt >= DOWNLOAD_ATTEMPTS {
                        return Err(SessionError::Transport {
                            operation,
                            reason: "the session context was lost during every download attempt"
                                .to_owned(),
                        });
                    }
                    tracing::info!(
                        attempt,
                        "session context replaced during a download: starting again from the stored state"
                    );
                    continue 'attempt;
                }
                last = result.and_then(|r| r.result(0).cloned());
            }
            reader
                .finish()
                .map_err(|e| SessionError::protocol(operation, e))?;
            self.release_raw(&[Some(sync), folder_handle]).await;
            return Ok(events);
        }
    }

    /// Downloads the folder changes below `folder` since `state` (ICS hierarchy sync).
    ///
    /// # Errors
    ///
    /// [`SessionError::InvalidSyncState`] when the server rejects the state; other
    /// [`SessionError`]s for failed requests or a malformed stream.
    pub async fn sync_hierarchy(
        &self,
        folder: ObjectId,
        state: &SyncState,
    ) -> Result<HierarchySync, SessionError> {
        let operation = "sync hierarchy";
        let events = self.download(operation, folder, false, state).await?;
        let mut sync = HierarchySync {
            changes: Vec::new(),
            deleted: Vec::new(),
            state: state.clone(),
        };
        for event in events {
            match event {
                SyncEvent::FolderChange(props) => sync.changes.push(FolderChange {
                    source_key: binary(fx_get(&props, tags::PID_TAG_SOURCE_KEY))
                        .unwrap_or_default(),
                    parent_source_key: binary(fx_get(&props, tags::PID_TAG_PARENT_SOURCE_KEY))
                        .unwrap_or_default(),
                    folder_id: id(fx_get(&props, tags::PID_TAG_FOLDER_ID)),
                    parent_folder_id: id(fx_get(&props, tags::PID_TAG_PARENT_FOLDER_ID)),
                    display_name: text(fx_get(&props, tags::PID_TAG_DISPLAY_NAME)),
                    change_key: binary(fx_get(&props, tags::PID_TAG_CHANGE_KEY)),
                    predecessors: binary(fx_get(&props, tags::PID_TAG_PREDECESSOR_CHANGE_LIST))
                        .and_then(|b| PredecessorChangeList::decode(&b, 0).ok()),
                    props,
                }),
                SyncEvent::Deletions {
                    deleted,
                    no_longer_in_scope,
                    expired,
                } => {
                    expand(deleted.as_ref(), &mut sync.deleted, operation)?;
                    expand(no_longer_in_scope.as_ref(), &mut sync.deleted, operation)?;
                    expand(expired.as_ref(), &mut sync.deleted, operation)?;
                }
                SyncEvent::State(state) => sync.state = SyncState(state),
                _ => {}
            }
        }
        Ok(sync)
    }

    /// Downloads the message changes of `folder` since `state` (ICS contents sync, with
    /// read-state changes and deletions). Each change carries its change key and
    /// predecessor change list.
    ///
    /// # Errors
    ///
    /// As [`MapiSession::sync_hierarchy`].
    pub async fn sync_contents(
        &self,
        folder: ObjectId,
        state: &SyncState,
    ) -> Result<ContentsSync, SessionError> {
        let operation = "sync contents";
        let events = self.download(operation, folder, true, state).await?;
        let mut sync = ContentsSync {
            changes: Vec::new(),
            deleted: Vec::new(),
            no_longer_in_scope: Vec::new(),
            read: Vec::new(),
            unread: Vec::new(),
            state: state.clone(),
        };
        for event in events {
            match event {
                SyncEvent::MessageChange(change) => {
                    let change_key = binary(change.header_value(tags::PID_TAG_CHANGE_KEY));
                    let flags = int(fx_get(&change.content.props, tags::PID_TAG_MESSAGE_FLAGS));
                    sync.changes.push(ItemChange {
                        source_key: binary(change.header_value(tags::PID_TAG_SOURCE_KEY))
                            .unwrap_or_default(),
                        message_id: id(change.header_value(tags::PID_TAG_MID)),
                        change_xid: change_key.as_deref().and_then(|b| Xid::decode(b, 0).ok()),
                        change_key,
                        predecessors: binary(
                            change.header_value(tags::PID_TAG_PREDECESSOR_CHANGE_LIST),
                        )
                        .and_then(|b| PredecessorChangeList::decode(&b, 0).ok()),
                        change_number: id(change.header_value(tags::PID_TAG_CHANGE_NUMBER)),
                        associated: matches!(
                            change.header_value(tags::PID_TAG_ASSOCIATED),
                            Some(PropValue::Bool(true))
                        ),
                        read: flags.map(|f| f & 0x1 != 0),
                        props: change.content.props.clone(),
                        raw: change,
                    });
                }
                SyncEvent::Deletions {
                    deleted,
                    no_longer_in_scope,
                    expired,
                } => {
                    expand(deleted.as_ref(), &mut sync.deleted, operation)?;
                    expand(expired.as_ref(), &mut sync.deleted, operation)?;
                    expand(
                        no_longer_in_scope.as_ref(),
                        &mut sync.no_longer_in_scope,
                        operation,
                    )?;
                }
                SyncEvent::ReadStateChanges { read, unread } => {
                    expand(read.as_ref(), &mut sync.read, operation)?;
                    expand(unread.as_ref(), &mut sync.unread, operation)?;
                }
                SyncEvent::State(state) => sync.state = SyncState(state),
                _ => {}
            }
        }
        Ok(sync)
    }

    /// Reads properties of a message (RopOpenMessage, RopGetPropertiesSpecific).
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a ROP or the Execute fails.
    pub async fn get_properties(
        &self,
        folder: ObjectId,
        message: ObjectId,
        tags: &[PropTag],
    ) -> Result<Vec<(PropTag, Option<PropValue>)>, SessionError> {
        let operation = "get properties";
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let msg = batch.output();
        batch.push(open_message(logon, msg, folder, message, 0));
        let get = batch.push(RopRequest::GetPropertiesSpecific {
            logon_id: 0,
            input_handle: msg,
            property_size_limit: 0,
            want_unicode: 1,
            tags: tags.to_vec(),
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: msg,
        });
        let result = self.execute(operation, &batch, Replay::Safe).await?;
        check(&result, 0, operation)?;
        let ResponseBody::PropertyRow(row) = &ok(&result, get, operation)?.body else {
            return Err(SessionError::MissingResponse {
                operation,
                rop: "RopGetPropertiesSpecific",
            });
        };
        Ok(tags
            .iter()
            .map(|tag| (*tag, cell(row, tags, *tag)))
            .collect())
    }

    /// Fetches a whole message: every property, the bodies, and the attachments with
    /// their data.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a ROP or the Execute fails.
    pub async fn fetch_message(
        &self,
        folder: ObjectId,
        message: ObjectId,
    ) -> Result<StructuredMessage, SessionError> {
        let operation = "fetch message";
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let msg = batch.output();
        let table = batch.output();
        batch.push(open_message(logon, msg, folder, message, 0));
        let all = batch.push(RopRequest::GetPropertiesAll {
            logon_id: 0,
            input_handle: msg,
            property_size_limit: 0,
            want_unicode: 1,
        });
        let attach_columns = vec![tags::PID_TAG_ATTACH_NUMBER];
        batch.push(RopRequest::GetAttachmentTable {
            logon_id: 0,
            input_handle: msg,
            output_handle: table,
            table_flags: 0x40,
        });
        batch.push(RopRequest::SetColumns {
            logon_id: 0,
            input_handle: table,
            set_columns_flags: 0,
            tags: attach_columns.clone(),
        });
        let rows = batch.push(RopRequest::QueryRows {
            logon_id: 0,
            input_handle: table,
            query_rows_flags: 0,
            forward_read: true,
            row_count: 0x100,
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: table,
        });
        let result = self.execute(operation, &batch, Replay::Safe).await?;
        check(&result, 0, operation)?;
        let ResponseBody::PropertyValues(props) = &ok(&result, all, operation)?.body else {
            return Err(SessionError::MissingResponse {
                operation,
                rop: "RopGetPropertiesAll",
            });
        };
        // NOTE: recipients are not read here: RopOpenMessage and RopReadRecipients carry
        // them as RecipientRow structures (MS-OXCDATA 2.8.3), which the codec keeps raw.
        // A contents download has them as property lists: see StructuredMessage::from_change.
        let mut structured = structured_from(props.clone());
        let msg_handle = result.handle(msg);
        let numbers: Vec<u32> = match result.result(rows) {
            Some(RopResult {
                return_value: 0,
                body: ResponseBody::QueryRows { rows, .. },
                ..
            }) => rows
                .iter()
                .filter_map(|row| {
                    int(cell(row, &attach_columns, tags::PID_TAG_ATTACH_NUMBER).as_ref())
                })
                .collect(),
            _ => Vec::new(),
        };
        if let Some(msg_handle) = msg_handle {
            for number in numbers {
                let mut batch = Batch::new();
                let m = batch.input(HandleRef::Raw(msg_handle));
                let a = batch.output();
                batch.push(RopRequest::OpenAttachment {
                    logon_id: 0,
                    input_handle: m,
                    output_handle: a,
                    open_attachment_flags: 0,
                    attachment_id: number,
                });
                let get = batch.push(RopRequest::GetPropertiesAll {
                    logon_id: 0,
                    input_handle: a,
                    property_size_limit: 0,
                    want_unicode: 1,
                });
                batch.push(RopRequest::Release {
                    logon_id: 0,
                    input_handle: a,
                });
                let result = self.execute(operation, &batch, Replay::Safe).await?;
                let Ok(RopResult {
                    body: ResponseBody::PropertyValues(values),
                    ..
                }) = ok(&result, get, operation)
                else {
                    continue;
                };
                let find = |tag| {
                    values
                        .iter()
                        .find(|v: &&TaggedValue| v.tag == tag)
                        .map(|v| &v.value)
                };
                structured.attachments.push(StructuredAttachment {
                    file_name: text(find(tags::PID_TAG_ATTACH_LONG_FILENAME)),
                    mime_type: text(find(PID_TAG_ATTACH_MIME_TAG)),
                    data: binary(find(tags::PID_TAG_ATTACH_DATA_BINARY)).unwrap_or_default(),
                });
            }
            self.release_raw(&[Some(msg_handle)]).await;
        }
        Ok(structured)
    }

    /// Marks messages read or unread with RopSetReadFlags. Read state carries no change
    /// key on any protocol; prefer [`MapiSession::import_read_states`] to keep the change
    /// out of the next download.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when the ROP or the Execute fails.
    pub async fn set_read_flags(
        &self,
        folder: ObjectId,
        messages: &[ObjectId],
        read: bool,
    ) -> Result<(), SessionError> {
        let operation = "set read flags";
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let f = batch.output();
        batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: logon,
            output_handle: f,
            folder_id: folder,
            open_mode_flags: 0,
        });
        let set = batch.push(RopRequest::SetReadFlags {
            logon_id: 0,
            input_handle: f,
            want_asynchronous: false,
            read_flags: if read { 0x00 } else { 0x04 },
            message_ids: messages.to_vec(),
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: f,
        });
        // Marking read twice changes nothing, so the batch may be sent again.
        let result = self.execute(operation, &batch, Replay::Safe).await?;
        check(&result, 0, operation)?;
        check(&result, set, operation)
    }

    /// Runs an ICS upload into `folder`: opens a collector, uploads `state`, lets `build`
    /// append the imports (it gets the collector's slot), then takes the checkpoint
    /// state. Returns the batch result and the checkpoint.
    async fn import<F>(
        &self,
        operation: &'static str,
        folder: ObjectId,
        contents: bool,
        state: &SyncState,
        build: F,
    ) -> Result<(BatchResult, SyncState), SessionError>
    where
        F: FnOnce(&mut Batch, u8),
    {
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let f = batch.output();
        let collector = batch.output();
        batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: logon,
            output_handle: f,
            folder_id: folder,
            open_mode_flags: 0,
        });
        batch.push(RopRequest::SynchronizationOpenCollector {
            logon_id: 0,
            input_handle: f,
            output_handle: collector,
            is_contents_collector: contents,
        });
        push_state_upload(&mut batch, collector, state, contents);
        let first_import = batch.rops.len();
        build(&mut batch, collector);
        let imports_end = batch.rops.len();
        let transfer = batch.output();
        batch.push(RopRequest::SynchronizationGetTransferState {
            logon_id: 0,
            input_handle: collector,
            output_handle: transfer,
        });
        let get = batch.push(get_buffer(transfer));
        let result = self.execute(operation, &batch, Replay::Never).await?;
        for index in 0..imports_end {
            if index >= first_import
                && let Some(rop) = result.result(index)
                && rop.return_value == crate::rop::error_code::SYNC_CONFLICT
            {
                tracing::warn!(
                    operation,
                    "the server reported a conflict for an imported change"
                );
            }
            if batch.rops.get(index).is_some_and(RopRequest::has_response) {
                check(&result, index, operation)?;
            }
        }
        check(&result, imports_end, operation)?;
        let transfer_handle = result.handle(transfer);
        let mut reader = FxReader::new();
        let mut parser = SyncParser::new();
        let mut events = Vec::new();
        let mut last = result.result(get).cloned();
        let generation = result.generation;
        loop {
            let Some(RopResult {
                return_value: 0,
                body:
                    ResponseBody::FastTransferBuffer {
                        transfer_status,
                        transfer_buffer,
                        ..
                    },
                ..
            }) = last.take()
            else {
                return Err(SessionError::MissingResponse {
                    operation,
                    rop: "RopFastTransferSourceGetBuffer",
                });
            };
            reader.feed(&transfer_buffer);
            while let Some(element) = reader
                .next_element()
                .map_err(|e| SessionError::protocol(operation, e))?
            {
                let offset = reader.offset();
                parser
                    .push(element, offset, &mut events)
                    .map_err(|e| SessionError::protocol(operation, e))?;
            }
            if transfer_status == 3 {
                break;
            }
            let Some(handle) = transfer_handle else { break };
            let mut next = Batch::new();
            let slot = next.input(HandleRef::Raw(handle));
            next.push(get_buffer(slot));
            let next_result = match self.execute(operation, &next, Replay::Safe).await {
                Err(SessionError::HandlesLost { .. }) => {
                    return Err(SessionError::WriteNotReplayed {
                        operation,
                        code: crate::http::ResponseCode::ContextNotFound,
                    });
                }
                other => other?,
            };
            if next_result.generation != generation {
                return Err(SessionError::WriteNotReplayed {
                    operation,
                    code: crate::http::ResponseCode::ContextNotFound,
                });
            }
            last = next_result.result(0).cloned();
        }
        let checkpoint = events
            .into_iter()
            .find_map(|e| match e {
                SyncEvent::State(state) => Some(SyncState(state)),
                _ => None,
            })
            .ok_or(SessionError::MissingResponse {
                operation,
                rop: "RopSynchronizationGetTransferState",
            })?;
        self.release_raw(&[transfer_handle, result.handle(collector), result.handle(f)])
            .await;
        Ok((result, checkpoint))
    }

    /// Changes properties of an existing message through ICS import
    /// (RopSynchronizationImportMessageChange, RopSetProperties, RopSaveChangesMessage):
    /// flags, categories, any property. The change key is the caller's XID (exmux's
    /// namespace); the new predecessor change list is the previous one merged with it.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a ROP or the Execute fails;
    /// [`SessionError::WriteNotReplayed`] when the context was lost under the write.
    pub async fn import_message_change(
        &self,
        folder: ObjectId,
        state: &SyncState,
        change: MessageImport,
    ) -> Result<ImportedChange, SessionError> {
        let operation = "import message change";
        let MessageImport {
            source_key,
            previous,
            change_key: xid,
            set,
            last_modified: now_filetime,
        } = change;
        let source_key = source_key.as_slice();
        let mut pcl = previous.clone();
        pcl.merge(xid);
        let header = vec![
            TaggedValue {
                tag: tags::PID_TAG_SOURCE_KEY,
                value: PropValue::Binary(source_key.to_vec()),
            },
            TaggedValue {
                tag: tags::PID_TAG_LAST_MODIFICATION_TIME,
                value: PropValue::Time(now_filetime),
            },
            TaggedValue {
                tag: tags::PID_TAG_CHANGE_KEY,
                value: PropValue::Binary(xid.to_vec()),
            },
            TaggedValue {
                tag: tags::PID_TAG_PREDECESSOR_CHANGE_LIST,
                value: PropValue::Binary(pcl.to_vec()),
            },
        ];
        let mut save_index = 0;
        let (result, checkpoint) = self
            .import(operation, folder, true, state, |batch, collector| {
                let message = batch.output();
                batch.push(RopRequest::SynchronizationImportMessageChange {
                    logon_id: 0,
                    input_handle: collector,
                    output_handle: message,
                    import_flag: 0,
                    values: header,
                });
                if !set.is_empty() {
                    batch.push(RopRequest::SetProperties {
                        logon_id: 0,
                        input_handle: message,
                        values: set,
                    });
                }
                save_index = batch.push(RopRequest::SaveChangesMessage {
                    logon_id: 0,
                    response_handle: message,
                    input_handle: message,
                    save_flags: 0x04,
                });
                batch.push(RopRequest::Release {
                    logon_id: 0,
                    input_handle: message,
                });
            })
            .await?;
        let message_id = match result.result(save_index) {
            Some(RopResult {
                body: ResponseBody::SaveChangesMessage { message_id, .. },
                ..
            }) if message_id.0 != 0 => Some(*message_id),
            _ => None,
        };
        Ok(ImportedChange {
            source_key: source_key.to_vec(),
            change_key: Some(xid),
            predecessors: Some(pcl),
            message_id,
            state: checkpoint,
        })
    }

    /// Creates a message through ICS import: the source key comes from an id reserved
    /// with RopGetLocalReplicaIds, the change key is `xid`.
    ///
    /// # Errors
    ///
    /// As [`MapiSession::import_message_change`].
    pub async fn import_new_message(
        &self,
        folder: ObjectId,
        state: &SyncState,
        xid: Xid,
        props: Vec<TaggedValue>,
        now_filetime: u64,
    ) -> Result<ImportedChange, SessionError> {
        let operation = "import new message";
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        batch.push(RopRequest::GetLocalReplicaIds {
            logon_id: 0,
            input_handle: logon,
            id_count: 1,
        });
        let result = self.execute(operation, &batch, Replay::Safe).await?;
        let ResponseBody::LocalReplicaIds {
            repl_guid,
            global_count,
        } = ok(&result, 0, operation)?.body
        else {
            return Err(SessionError::MissingResponse {
                operation,
                rop: "RopGetLocalReplicaIds",
            });
        };
        let source_key = Xid::from_globcnt(repl_guid, global_count).to_vec();
        self.import_message_change(
            folder,
            state,
            MessageImport {
                source_key,
                previous: PredecessorChangeList::new(),
                change_key: xid,
                set: props,
                last_modified: now_filetime,
            },
        )
        .await
    }

    /// Records read-state changes through ICS import
    /// (RopSynchronizationImportReadStateChanges), so the next download from the returned
    /// state does not report them back.
    ///
    /// # Errors
    ///
    /// As [`MapiSession::import_message_change`].
    pub async fn import_read_states(
        &self,
        folder: ObjectId,
        state: &SyncState,
        changes: &[(Vec<u8>, bool)],
    ) -> Result<SyncState, SessionError> {
        let read_states: Vec<MessageReadState> = changes
            .iter()
            .map(|(key, read)| MessageReadState {
                message_id: key.clone(),
                mark_as_read: *read,
            })
            .collect();
        let (_, checkpoint) = self
            .import(
                "import read states",
                folder,
                true,
                state,
                |batch, collector| {
                    batch.push(RopRequest::SynchronizationImportReadStateChanges {
                        logon_id: 0,
                        input_handle: collector,
                        read_states,
                    });
                },
            )
            .await?;
        Ok(checkpoint)
    }

    /// Deletes messages through ICS import (RopSynchronizationImportDeletes) by source
    /// key; `hard` asks for a hard delete.
    ///
    /// # Errors
    ///
    /// As [`MapiSession::import_message_change`].
    pub async fn import_deletes(
        &self,
        folder: ObjectId,
        state: &SyncState,
        source_keys: &[Vec<u8>],
        hard: bool,
    ) -> Result<SyncState, SessionError> {
        let keys = source_keys.to_vec();
        let (_, checkpoint) = self
            .import("import deletes", folder, true, state, |batch, collector| {
                batch.push(RopRequest::SynchronizationImportDeletes {
                    logon_id: 0,
                    input_handle: collector,
                    import_delete_flags: if hard { 0x02 } else { 0x00 },
                    values: vec![TaggedValue {
                        tag: PropTag(0x0000_1102),
                        value: PropValue::MvBinary(keys),
                    }],
                });
            })
            .await?;
        Ok(checkpoint)
    }

    /// Deletes messages with RopDeleteMessages.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when the ROP or the Execute fails.
    pub async fn delete_messages(
        &self,
        folder: ObjectId,
        messages: &[ObjectId],
    ) -> Result<(), SessionError> {
        let operation = "delete messages";
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let f = batch.output();
        batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: logon,
            output_handle: f,
            folder_id: folder,
            open_mode_flags: 0,
        });
        let delete = batch.push(RopRequest::DeleteMessages {
            logon_id: 0,
            input_handle: f,
            want_asynchronous: false,
            notify_non_read: false,
            message_ids: messages.to_vec(),
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: f,
        });
        let result = self.execute(operation, &batch, Replay::Never).await?;
        check(&result, 0, operation)?;
        check(&result, delete, operation)
    }

    /// Moves or copies messages (RopMoveCopyMessages). MAPI does not return the new
    /// message ids: they are learned from the next download of the destination.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when the ROP or the Execute fails.
    pub async fn move_copy_messages(
        &self,
        source: ObjectId,
        destination: ObjectId,
        messages: &[ObjectId],
        copy: bool,
    ) -> Result<(), SessionError> {
        let operation = if copy {
            "copy messages"
        } else {
            "move messages"
        };
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let s = batch.output();
        let d = batch.output();
        batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: logon,
            output_handle: s,
            folder_id: source,
            open_mode_flags: 0,
        });
        batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: logon,
            output_handle: d,
            folder_id: destination,
            open_mode_flags: 0,
        });
        let mv = batch.push(RopRequest::MoveCopyMessages {
            logon_id: 0,
            source_handle: s,
            destination_handle: d,
            message_ids: messages.to_vec(),
            want_asynchronous: false,
            want_copy: copy,
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: s,
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: d,
        });
        let result = self.execute(operation, &batch, Replay::Never).await?;
        check(&result, 0, operation)?;
        check(&result, 1, operation)?;
        check(&result, mv, operation)?;
        if matches!(
            result.result(mv).map(|r| &r.body),
            Some(ResponseBody::PartialCompletion(true))
        ) {
            return Err(SessionError::Rop {
                operation,
                rop: "RopMoveCopyMessages",
                code: crate::rop::error_code::WARN_WITH_ERRORS,
            });
        }
        Ok(())
    }

    /// Creates a message with ordinary ROPs (RopCreateMessage, RopSetProperties,
    /// RopSaveChangesMessage) and reads back the change key the server assigned.
    /// Returns the new message id and that change key.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a ROP or the Execute fails.
    pub async fn create_message(
        &self,
        folder: ObjectId,
        props: Vec<TaggedValue>,
        submit: bool,
    ) -> Result<(ObjectId, Option<Vec<u8>>), SessionError> {
        let operation = if submit {
            "send message"
        } else {
            "create message"
        };
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let m = batch.output();
        batch.push(RopRequest::CreateMessage {
            logon_id: 0,
            input_handle: logon,
            output_handle: m,
            code_page_id: 0x0FFF,
            folder_id: folder,
            associated: false,
        });
        if !props.is_empty() {
            batch.push(RopRequest::SetProperties {
                logon_id: 0,
                input_handle: m,
                values: props,
            });
        }
        let save = batch.push(RopRequest::SaveChangesMessage {
            logon_id: 0,
            response_handle: m,
            input_handle: m,
            save_flags: 0x02,
        });
        let get = batch.push(RopRequest::GetPropertiesSpecific {
            logon_id: 0,
            input_handle: m,
            property_size_limit: 0,
            want_unicode: 1,
            tags: vec![tags::PID_TAG_CHANGE_KEY, tags::PID_TAG_MID],
        });
        let submit_index = submit.then(|| {
            batch.push(RopRequest::SubmitMessage {
                logon_id: 0,
                input_handle: m,
                submit_flags: 0,
            })
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: m,
        });
        let result = self.execute(operation, &batch, Replay::Never).await?;
        for index in 0..=get {
            check(&result, index, operation)?;
        }
        if let Some(index) = submit_index {
            check(&result, index, operation)?;
        }
        let mut message_id = match &ok(&result, save, operation)?.body {
            ResponseBody::SaveChangesMessage { message_id, .. } => *message_id,
            _ => ObjectId(0),
        };
        let columns = [tags::PID_TAG_CHANGE_KEY, tags::PID_TAG_MID];
        let change_key = match &ok(&result, get, operation)?.body {
            ResponseBody::PropertyRow(row) => {
                if message_id.0 == 0
                    && let Some(mid) = id(cell(row, &columns, tags::PID_TAG_MID).as_ref())
                {
                    message_id = mid;
                }
                binary(cell(row, &columns, tags::PID_TAG_CHANGE_KEY).as_ref())
            }
            _ => None,
        };
        Ok((message_id, change_key))
    }

    /// Creates a folder (RopCreateFolder) and reads back its change key.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a ROP or the Execute fails.
    pub async fn create_folder(
        &self,
        parent: ObjectId,
        name: &str,
    ) -> Result<(ObjectId, Option<Vec<u8>>), SessionError> {
        let operation = "create folder";
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let p = batch.output();
        let f = batch.output();
        batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: logon,
            output_handle: p,
            folder_id: parent,
            open_mode_flags: 0,
        });
        let create = batch.push(RopRequest::CreateFolder {
            logon_id: 0,
            input_handle: p,
            output_handle: f,
            folder_type: 1,
            use_unicode: true,
            open_existing: false,
            reserved: 0,
            display_name: RopString::Unicode(name.to_owned()),
            comment: RopString::Unicode(String::new()),
        });
        let get = batch.push(RopRequest::GetPropertiesSpecific {
            logon_id: 0,
            input_handle: f,
            property_size_limit: 0,
            want_unicode: 1,
            tags: vec![tags::PID_TAG_CHANGE_KEY],
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: f,
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: p,
        });
        let result = self.execute(operation, &batch, Replay::Never).await?;
        check(&result, 0, operation)?;
        let ResponseBody::CreateFolder { folder_id, .. } = ok(&result, create, operation)?.body
        else {
            return Err(SessionError::MissingResponse {
                operation,
                rop: "RopCreateFolder",
            });
        };
        let change_key = match result.result(get).map(|r| &r.body) {
            Some(ResponseBody::PropertyRow(row)) => {
                binary(cell(row, &[tags::PID_TAG_CHANGE_KEY], tags::PID_TAG_CHANGE_KEY).as_ref())
            }
            _ => None,
        };
        Ok((folder_id, change_key))
    }

    /// Renames a folder (RopSetProperties on PidTagDisplayName) and reads back its change
    /// key.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a ROP or the Execute fails.
    pub async fn rename_folder(
        &self,
        folder: ObjectId,
        name: &str,
    ) -> Result<Option<Vec<u8>>, SessionError> {
        let operation = "rename folder";
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let f = batch.output();
        batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: logon,
            output_handle: f,
            folder_id: folder,
            open_mode_flags: 0,
        });
        let set = batch.push(RopRequest::SetProperties {
            logon_id: 0,
            input_handle: f,
            values: vec![TaggedValue {
                tag: tags::PID_TAG_DISPLAY_NAME,
                value: PropValue::Unicode(name.to_owned()),
            }],
        });
        let get = batch.push(RopRequest::GetPropertiesSpecific {
            logon_id: 0,
            input_handle: f,
            property_size_limit: 0,
            want_unicode: 1,
            tags: vec![tags::PID_TAG_CHANGE_KEY],
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: f,
        });
        // Setting the same name twice changes nothing.
        let result = self.execute(operation, &batch, Replay::Safe).await?;
        check(&result, 0, operation)?;
        check(&result, set, operation)?;
        if let Some(ResponseBody::PropertyRow(row)) = result.result(get).map(|r| &r.body)
            && let ResponseBody::PropertyProblems(problems) = &ok(&result, set, operation)?.body
            && problems.is_empty()
        {
            return Ok(binary(
                cell(row, &[tags::PID_TAG_CHANGE_KEY], tags::PID_TAG_CHANGE_KEY).as_ref(),
            ));
        }
        Ok(None)
    }

    /// Moves a folder from `parent` to `destination` (RopMoveFolder).
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a ROP or the Execute fails.
    pub async fn move_folder(
        &self,
        parent: ObjectId,
        destination: ObjectId,
        folder: ObjectId,
        name: &str,
    ) -> Result<(), SessionError> {
        let operation = "move folder";
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let s = batch.output();
        let d = batch.output();
        batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: logon,
            output_handle: s,
            folder_id: parent,
            open_mode_flags: 0,
        });
        batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: logon,
            output_handle: d,
            folder_id: destination,
            open_mode_flags: 0,
        });
        let mv = batch.push(RopRequest::MoveFolder {
            logon_id: 0,
            source_handle: s,
            destination_handle: d,
            want_asynchronous: false,
            use_unicode: true,
            folder_id: folder,
            new_folder_name: RopString::Unicode(name.to_owned()),
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: s,
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: d,
        });
        let result = self.execute(operation, &batch, Replay::Never).await?;
        check(&result, 0, operation)?;
        check(&result, 1, operation)?;
        check(&result, mv, operation)
    }

    /// Deletes a folder and its contents (RopDeleteFolder with DEL_MESSAGES |
    /// DEL_FOLDERS).
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a ROP or the Execute fails.
    pub async fn delete_folder(
        &self,
        parent: ObjectId,
        folder: ObjectId,
    ) -> Result<(), SessionError> {
        let operation = "delete folder";
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let p = batch.output();
        batch.push(RopRequest::OpenFolder {
            logon_id: 0,
            input_handle: logon,
            output_handle: p,
            folder_id: parent,
            open_mode_flags: 0,
        });
        let delete = batch.push(RopRequest::DeleteFolder {
            logon_id: 0,
            input_handle: p,
            delete_folder_flags: 0x05,
            folder_id: folder,
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: p,
        });
        let result = self.execute(operation, &batch, Replay::Never).await?;
        check(&result, 0, operation)?;
        check(&result, delete, operation)?;
        if matches!(
            result.result(delete).map(|r| &r.body),
            Some(ResponseBody::PartialCompletion(true))
        ) {
            return Err(SessionError::Rop {
                operation,
                rop: "RopDeleteFolder",
                code: crate::rop::error_code::WARN_WITH_ERRORS,
            });
        }
        Ok(())
    }
}

fn open_message(
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
