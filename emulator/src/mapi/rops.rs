//! ROP execution against the store (MS-OXCROPS): the server object handle table, the
//! objects behind the handles, and one function per ROP family.

use std::collections::BTreeSet;

use exmux_mapihttp::ids::{GlobCnt, Guid as WireGuid, LongTermId, ObjectId};
use exmux_mapihttp::idset::{IdSet, IdsetForm, StateProperty};
use exmux_mapihttp::prop::tags::*;
use exmux_mapihttp::prop::{
    PropTag, PropType, PropValue, PropertyRow, Restriction, RowCell, TaggedValue,
};
use exmux_mapihttp::rop::{
    LogonResponse, OpenMessageResponse, ResponseBody, RopBuffer, RopRequest, RopResponse,
    RopResult, SortOrder, TypedString, error_code, rop_id,
};
use tracing::debug;

use crate::server::MailboxFacts;
use crate::store::{
    Attachment, EventKind, EventKinds, Fid, Globcnt, ImportStamp, ItemProps, Mid, NewItem,
    NewItemContent, Pcl, Store, StoreError, SubscriptionId, SubscriptionScope, SyncKind, SyncState,
    WellKnownFolder, Xid,
};

use super::Quirks;
use super::attachments::{self, AttachmentObject};
use super::context::Context;
use super::folder_import::{self, FolderChange, FolderKeys};
use super::ics;
use super::props::{self, SourceKeys};
use super::recipients::{self, Recipients};
use super::restrict;
use super::streams::{self, StreamObject};

/// The replica id of every FID and MID the store hands out.
const REPLICA_ID: u16 = crate::store::ids::REPLICA_ID;
/// The replica id RopLogon announces under the `foreign_logon_replica` quirk.
const FOREIGN_REPLICA_ID: u16 = 5;
/// The first counter GetLocalReplicaIds reserves, far above anything the store's counter
/// reaches in a test, so reserved source keys never name a store object.
const RESERVED_GLOBCNT_START: u64 = 0x8000_0000_0000;
/// The largest TransferBuffer one RopFastTransferSourceGetBuffer returns, so a response
/// stays within one 32 KiB extended-buffer segment.
const MAX_TRANSFER_BUFFER: usize = 0x7000;
/// The row data one RopQueryRows returns at most, for the same reason.
const MAX_ROW_BYTES: usize = 0x6000;

/// State shared by every context of a front end.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) keys: SourceKeys,
    /// Folder source keys chosen by clients on ICS hierarchy import.
    pub(crate) folder_keys: FolderKeys,
    /// Named properties by their encoded PropertyName; the id is 0x8000 plus the index.
    pub(crate) named: Vec<Vec<u8>>,
    pub(crate) next_reserved: u64,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            keys: SourceKeys::default(),
            folder_keys: FolderKeys::default(),
            named: Vec::new(),
            next_reserved: RESERVED_GLOBCNT_START,
        }
    }
}

/// The store and shared state that ROPs run against.
pub(crate) struct Env<'a> {
    pub(crate) store: &'a mut Store,
    pub(crate) shared: &'a mut Shared,
    pub(crate) quirks: Quirks,
    pub(crate) mailbox: &'a MailboxFacts,
}

/// An object behind a server handle.
#[derive(Debug)]
pub(crate) enum Object {
    Logon,
    Folder(Fid),
    Table(Table),
    Message(Box<MessageObject>),
    Subscription { id: SubscriptionId, logon_id: u8 },
    Download(Box<Download>),
    Collector(Box<Collector>),
    Stream(Box<StreamObject>),
    Attachment(Box<AttachmentObject>),
}

impl Object {
    /// Returns the store subscription the object owns, if any.
    pub(crate) fn subscription(&self) -> Option<SubscriptionId> {
        match self {
            Object::Subscription { id, .. } => Some(*id),
            Object::Table(table) => table.subscription,
            _ => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Object::Logon => "logon",
            Object::Folder(_) => "folder",
            Object::Table(_) => "table",
            Object::Message(_) => "message",
            Object::Subscription { .. } => "subscription",
            Object::Download(_) => "download context",
            Object::Collector(_) => "collector",
            Object::Stream(_) => "stream",
            Object::Attachment(_) => "attachment",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) fid: Fid,
    /// The store subscription behind the table's TableModified notifications, for a
    /// contents table opened without NoNotifications.
    pub(crate) subscription: Option<SubscriptionId>,
    pub(crate) logon_id: u8,
    /// The rows of an attachment table, taken when RopGetAttachmentTable ran; `None`
    /// for a hierarchy or contents table.
    attachment_rows: Option<Vec<Vec<TaggedValue>>>,
    hierarchy: bool,
    depth: bool,
    associated: bool,
    pub(crate) columns: Vec<PropTag>,
    position: usize,
    /// The order of RopSortTable; empty for message id order.
    sort_orders: Vec<SortOrder>,
    /// The restriction of RopRestrict; `None` for every row.
    restriction: Option<Restriction>,
}

#[derive(Debug)]
pub(crate) struct MessageObject {
    folder: Fid,
    mid: Option<Mid>,
    associated: bool,
    pending: Vec<TaggedValue>,
    import: Option<ImportInfo>,
    /// The recipients after RopModifyRecipients or RopRemoveAllRecipients, written at
    /// the next save; `None` while they are unchanged.
    recipients: Option<Recipients>,
    /// The attachments after RopSaveChangesAttachment or RopDeleteAttachment, written
    /// at the next save; `None` while they are unchanged.
    attachments: Option<Vec<Attachment>>,
    /// The number the next RopCreateAttachment gives out, so numbers are not reused
    /// while the message is open; `None` until the first one.
    next_attachment: Option<u32>,
}

#[derive(Debug)]
struct ImportInfo {
    collector: u32,
    source_key: Vec<u8>,
    stamp: ImportStamp,
}

/// A state stream being uploaded with RopSynchronizationUploadStateStream*.
#[derive(Debug)]
struct Upload {
    property: StateProperty,
    declared: usize,
    bytes: Vec<u8>,
}

/// A download context: an ICS synchronization (RopSynchronizationConfigure) or a
/// checkpoint (RopSynchronizationGetTransferState).
#[derive(Debug)]
pub(crate) struct Download {
    fid: Fid,
    kind: SyncKind,
    flags: u16,
    extra_flags: u32,
    state: SyncState,
    upload: Option<Upload>,
    stream: Option<Vec<u8>>,
    offset: usize,
    buffers_sent: u16,
}

/// An upload context (RopSynchronizationOpenCollector) and the state its imports extend.
#[derive(Debug)]
pub(crate) struct Collector {
    fid: Fid,
    contents: bool,
    state: SyncState,
    upload: Option<Upload>,
}

/// Room kept free for the response of a ROP whose effect cannot be taken back once it
/// ran. RopLogon's, 166 bytes for a private mailbox, is the largest of fixed size; a
/// RopSetProperties that lists many property problems can exceed it.
const COMMITTED_RESERVE: usize = 256;
/// The smallest ROP response: RopId, the handle index and ReturnValue.
const MIN_RESPONSE: usize = 6;
/// The fixed part of RopBufferTooSmall (RopId and SizeNeeded), kept free in every
/// response so the server can always end it with one.
const TOO_SMALL_HEAD: usize = 3;

/// Runs a ROP batch and returns the response buffer with the updated handle table.
///
/// The response ROP buffer stays within `limit` bytes: when the
/// next response would not fit, the batch stops and ends with RopBufferTooSmall, which
/// lists the requests not run (MS-OXCROPS 2.2.15.1). A read whose response turns out too
/// large is taken back (its table or download position, the message it opened) before it
/// is listed there. Other ROPs run only while `COMMITTED_RESERVE` bytes are free.
// NOTE: the RequestBuffers of RopBufferTooSmall are not counted against `limit`, so a
// response that ends with one can exceed it by the size of the requests not run.
pub(crate) fn execute_batch(
    context: &mut Context,
    env: &mut Env<'_>,
    batch: RopBuffer<RopRequest>,
    limit: usize,
) -> RopBuffer<RopResponse> {
    let mut handles = batch.handles;
    let fixed = 2 + 4 * handles.len() + TOO_SMALL_HEAD;
    let mut used = fixed;
    let mut rops = Vec::new();
    for (index, request) in batch.rops.iter().enumerate() {
        let rest = batch.rops.get(index..).unwrap_or_default();
        if matches!(request, RopRequest::Release { .. }) {
            run_one(context, env, request, &mut handles);
            continue;
        }
        let takeback = Takeback::prepare(context, &handles, request);
        let reserve = if takeback.is_some() {
            MIN_RESPONSE
        } else {
            COMMITTED_RESERVE
        };
        if used + reserve > limit {
            rops.push(too_small(rest, fixed + reserve));
            break;
        }
        let Some(result) = run_one(context, env, request, &mut handles) else {
            continue;
        };
        let response = RopResponse::Result(result);
        let size = encoded_len(&response);
        if used + size > limit {
            if let Some(takeback) = takeback {
                takeback.apply(context, &mut handles);
                rops.push(too_small(rest, fixed + size));
                break;
            }
            debug!(
                rop = rop_id::name(request.rop_id()),
                size, limit, "a ROP that cannot be taken back answered past the output limit"
            );
        }
        used += size;
        rops.push(response);
    }
    RopBuffer { rops, handles }
}

/// Returns the encoded size of one response.
pub(crate) fn encoded_len(response: &RopResponse) -> usize {
    let mut bytes = Vec::new();
    response.encode(&mut bytes);
    bytes.len()
}

/// Builds the RopBufferTooSmall that ends a response: `needed` is the output buffer the
/// first request of `rest` needs on its own.
fn too_small(rest: &[RopRequest], needed: usize) -> RopResponse {
    let mut request_buffers = Vec::new();
    for request in rest {
        request.encode(&mut request_buffers);
    }
    RopResponse::BufferTooSmall {
        size_needed: u16::try_from(needed).unwrap_or(u16::MAX),
        request_buffers,
    }
}

/// The state a read changes besides its response, saved so the read can be taken back
/// when its response does not fit: the position of the table or download it advanced,
/// and the output slot of the object it opened.
struct Takeback {
    cursor: Option<(u32, Cursor)>,
    output: Option<(u8, u32)>,
}

#[derive(Clone, Copy)]
enum Cursor {
    Table(usize),
    Download { offset: usize, buffers_sent: u16 },
    Stream(usize),
}

impl Takeback {
    /// Returns the takeback of `request`, or `None` when it changes state that cannot be
    /// restored (every write).
    fn prepare(context: &Context, handles: &[u32], request: &RopRequest) -> Option<Takeback> {
        use RopRequest as Q;
        let cursor_at = |index: u8| {
            let handle = input(context, handles, index)?;
            match context.objects.get(&handle)? {
                Object::Table(table) => Some((handle, Cursor::Table(table.position))),
                Object::Download(download) => Some((
                    handle,
                    Cursor::Download {
                        offset: download.offset,
                        buffers_sent: download.buffers_sent,
                    },
                )),
                Object::Stream(stream) => Some((handle, Cursor::Stream(stream.position))),
                _ => None,
            }
        };
        match request {
            Q::QueryRows { input_handle, .. }
            | Q::SeekRow { input_handle, .. }
            | Q::ReadStream { input_handle, .. }
            | Q::FastTransferSourceGetBuffer { input_handle, .. } => Some(Takeback {
                cursor: cursor_at(*input_handle),
                output: None,
            }),
            Q::OpenMessage { output_handle, .. } | Q::OpenAttachment { output_handle, .. } => Some(Takeback {
                cursor: None,
                output: handles
                    .get(usize::from(*output_handle))
                    .map(|previous| (*output_handle, *previous)),
            }),
            Q::GetPropertiesSpecific { .. }
            | Q::GetPropertiesAll { .. }
            | Q::GetPropertiesList { .. }
            | Q::ReadRecipients { .. }
            | Q::LongTermIdFromId { .. }
            | Q::IdFromLongTermId { .. }
            // A name mapped by GetPropertyIdsFromNames stays mapped, but sending the
            // request again returns the same ids.
            | Q::GetPropertyIdsFromNames { .. } => Some(Takeback {
                cursor: None,
                output: None,
            }),
            _ => None,
        }
    }

    fn apply(self, context: &mut Context, handles: &mut [u32]) {
        if let Some((handle, cursor)) = self.cursor {
            match (context.objects.get_mut(&handle), cursor) {
                (Some(Object::Table(table)), Cursor::Table(position)) => {
                    table.position = position;
                }
                (
                    Some(Object::Download(download)),
                    Cursor::Download {
                        offset,
                        buffers_sent,
                    },
                ) => {
                    download.offset = offset;
                    download.buffers_sent = buffers_sent;
                }
                (Some(Object::Stream(stream)), Cursor::Stream(position)) => {
                    stream.position = position;
                }
                _ => {}
            }
        }
        if let Some((slot, previous)) = self.output
            && let Some(current) = handles.get(usize::from(slot)).copied()
            && current != previous
        {
            context.objects.remove(&current);
            set_output(handles, slot, previous);
        }
    }
}

type RopOutcome = Result<ResponseBody, u32>;

fn store_error(error: &StoreError) -> u32 {
    debug!(%error, "ROP failed in the store");
    match error {
        StoreError::FolderNotFound { .. } | StoreError::ItemNotFound { .. } => {
            error_code::NOT_FOUND
        }
        StoreError::UnknownSession { .. } | StoreError::SessionExpired { .. } => {
            error_code::LOGON_FAILED
        }
        StoreError::InvalidSyncState { .. } => error_code::INVALID_PARAMETER,
        _ => error_code::ACCESS_DENIED,
    }
}

/// Returns the handle value at `index` of the request's table, when it names a live
/// object.
fn input(context: &Context, handles: &[u32], index: u8) -> Option<u32> {
    let handle = *handles.get(usize::from(index))?;
    context.objects.contains_key(&handle).then_some(handle)
}

fn set_output(handles: &mut [u32], index: u8, handle: u32) {
    if let Some(slot) = handles.get_mut(usize::from(index)) {
        *slot = handle;
    }
}

fn folder_of(context: &Context, handle: u32) -> Option<Fid> {
    match context.objects.get(&handle)? {
        Object::Folder(fid) => Some(*fid),
        _ => None,
    }
}

fn fid_of(id: ObjectId) -> Option<Fid> {
    Fid::from_u64(id.0)
}

fn mid_of(id: ObjectId) -> Option<Mid> {
    Mid::from_u64(id.0)
}

/// Returns the fields a failed response still carries (MS-OXCROPS per-ROP failure
/// buffers).
fn failure_body(rop: u8) -> ResponseBody {
    match rop {
        rop_id::DELETE_MESSAGES
        | rop_id::SET_READ_FLAGS
        | rop_id::DELETE_FOLDER
        | rop_id::MOVE_COPY_MESSAGES
        | rop_id::MOVE_FOLDER
        | rop_id::COPY_FOLDER => ResponseBody::PartialCompletion(false),
        rop_id::FAST_TRANSFER_SOURCE_GET_BUFFER => ResponseBody::FastTransferBuffer {
            transfer_status: 0,
            in_progress_count: 0,
            total_step_count: 0,
            reserved: 0,
            transfer_buffer: Vec::new(),
        },
        _ => ResponseBody::Empty,
    }
}

fn run_one(
    context: &mut Context,
    env: &mut Env<'_>,
    request: &RopRequest,
    handles: &mut [u32],
) -> Option<RopResult> {
    use RopRequest as Q;
    if let Q::Release { input_handle, .. } = request {
        if let Some(handle) = input(context, handles, *input_handle)
            && let Some(id) = context
                .objects
                .remove(&handle)
                .and_then(|object| object.subscription())
        {
            env.store.unsubscribe(id);
        }
        return None;
    }

    let rop = request.rop_id();
    let index = request.response_handle_index();
    let outcome = dispatch(context, env, request, handles);
    let (return_value, body) = match outcome {
        Ok(body) => (error_code::SUCCESS, body),
        Err(code) => {
            // An output slot of a failed ROP stays empty, so later ROPs that use it fail
            // with ecNullObject.
            (code, failure_body(rop))
        }
    };
    Some(RopResult {
        rop_id: rop,
        handle_index: index,
        return_value,
        body,
    })
}

fn dispatch(
    context: &mut Context,
    env: &mut Env<'_>,
    request: &RopRequest,
    handles: &mut [u32],
) -> RopOutcome {
    use RopRequest as Q;
    let null = error_code::NULL_OBJECT;
    match request {
        Q::Logon {
            output_handle,
            logon_flags,
            ..
        } => {
            let response = logon(env, *logon_flags);
            let handle = context.insert(Object::Logon);
            set_output(handles, *output_handle, handle);
            Ok(ResponseBody::Logon(Box::new(response)))
        }
        Q::OpenFolder {
            input_handle,
            output_handle,
            folder_id,
            ..
        } => {
            input(context, handles, *input_handle).ok_or(null)?;
            let fid = fid_of(*folder_id).ok_or(error_code::NOT_FOUND)?;
            env.store.folder(fid).ok_or(error_code::NOT_FOUND)?;
            let handle = context.insert(Object::Folder(fid));
            set_output(handles, *output_handle, handle);
            Ok(ResponseBody::OpenFolder {
                has_rules: false,
                ghost: None,
            })
        }
        Q::GetHierarchyTable {
            input_handle,
            output_handle,
            table_flags,
            logon_id,
        }
        | Q::GetContentsTable {
            input_handle,
            output_handle,
            table_flags,
            logon_id,
        } => {
            let hierarchy = matches!(request, Q::GetHierarchyTable { .. });
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let fid = folder_of(context, handle).ok_or(error_code::NOT_SUPPORTED)?;
            // Contents tables deliver TableModified notifications on their own handle
            // unless opened with NoNotifications (0x10), as MS-OXCNOTIF 3.2.5.1 has it.
            // NOTE: hierarchy tables deliver none.
            let subscription = if !hierarchy && table_flags & 0x10 == 0 {
                let scope = SubscriptionScope::Folders(BTreeSet::from([fid]));
                let kinds = EventKinds::ALL;
                Some(
                    env.store
                        .subscribe(context.session, scope, kinds, None)
                        .map_err(|e| store_error(&e))?,
                )
            } else {
                None
            };
            let table = Table {
                fid,
                subscription,
                logon_id: *logon_id,
                attachment_rows: None,
                hierarchy,
                depth: hierarchy && table_flags & 0x04 != 0,
                associated: !hierarchy && table_flags & 0x02 != 0,
                columns: Vec::new(),
                position: 0,
                sort_orders: Vec::new(),
                restriction: None,
            };
            let (_, count) = table_rows(env, &table, 0, 0);
            let handle = context.insert(Object::Table(table));
            set_output(handles, *output_handle, handle);
            Ok(ResponseBody::RowCount(
                u32::try_from(count).unwrap_or(u32::MAX),
            ))
        }
        // The rows are taken now, so changes saved later do not show in this table.
        Q::GetAttachmentTable {
            input_handle,
            output_handle,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Message(message)) = context.objects.get(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            let fid = message.folder;
            let rows = message_attachments(context, env, handle)?
                .iter()
                .map(attachments::row_values)
                .collect();
            let table = Table {
                fid,
                subscription: None,
                logon_id: 0,
                attachment_rows: Some(rows),
                hierarchy: false,
                depth: false,
                associated: false,
                columns: Vec::new(),
                position: 0,
                sort_orders: Vec::new(),
                restriction: None,
            };
            let handle = context.insert(Object::Table(table));
            set_output(handles, *output_handle, handle);
            // A RopGetAttachmentTable response has no fields (MS-OXCROPS 2.2.6.13.2).
            Ok(ResponseBody::Empty)
        }
        Q::OpenAttachment {
            input_handle,
            output_handle,
            open_attachment_flags,
            attachment_id,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let list = message_attachments(context, env, handle)?;
            let attachment = list
                .iter()
                .find(|a| a.number == *attachment_id)
                .ok_or(error_code::NOT_FOUND)?;
            let object = AttachmentObject::open(handle, attachment, *open_attachment_flags);
            let attachment_handle = context.insert(Object::Attachment(Box::new(object)));
            set_output(handles, *output_handle, attachment_handle);
            Ok(ResponseBody::Empty)
        }
        Q::CreateAttachment {
            input_handle,
            output_handle,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let first = attachments::next_number(&message_attachments(context, env, handle)?);
            let Some(Object::Message(message)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            let number = message.next_attachment.unwrap_or(first);
            message.next_attachment = Some(number.saturating_add(1));
            let object = AttachmentObject::create(handle, number);
            let attachment_handle = context.insert(Object::Attachment(Box::new(object)));
            set_output(handles, *output_handle, attachment_handle);
            Ok(ResponseBody::AttachmentId(number))
        }
        // Commits the attachment to its message's working list; RopSaveChangesMessage
        // writes the list to the store (MS-OXCMSG 2.2.3.15).
        Q::SaveChangesAttachment { input_handle, .. } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Attachment(object)) = context.objects.get(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            if !object.writable {
                return Err(error_code::ACCESS_DENIED);
            }
            let (message_handle, attachment) = (object.message, object.to_attachment());
            let mut list = message_attachments(context, env, message_handle)
                .map_err(|_| error_code::OBJECT_DELETED)?;
            attachments::put(&mut list, attachment);
            let Some(Object::Message(message)) = context.objects.get_mut(&message_handle) else {
                return Err(error_code::OBJECT_DELETED);
            };
            message.attachments = Some(list);
            Ok(ResponseBody::Empty)
        }
        // Like IMessage::DeleteAttach, the deletion reaches the store with the message's
        // next RopSaveChangesMessage (MS-OXCMSG 2.2.3.14).
        Q::DeleteAttachment {
            input_handle,
            attachment_id,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let mut list = message_attachments(context, env, handle)?;
            let before = list.len();
            list.retain(|a| a.number != *attachment_id);
            if list.len() == before {
                return Err(error_code::NOT_FOUND);
            }
            let Some(Object::Message(message)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            message.attachments = Some(list);
            Ok(ResponseBody::Empty)
        }
        Q::SetColumns {
            input_handle, tags, ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Table(table)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            table.columns = tags.clone();
            Ok(ResponseBody::TableStatus(0))
        }
        // Both move the cursor back to the first row. Hierarchy tables ignore them.
        Q::SortTable {
            input_handle,
            sort_orders,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Table(table)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            table.sort_orders = sort_orders.clone();
            table.position = 0;
            Ok(ResponseBody::TableStatus(0))
        }
        Q::Restrict {
            input_handle,
            restriction,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Table(table)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            table.restriction = restriction.clone();
            table.position = 0;
            Ok(ResponseBody::TableStatus(0))
        }
        Q::QueryRows {
            input_handle,
            query_rows_flags,
            row_count,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Table(table)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            query_rows(env, table, *query_rows_flags, *row_count)
        }
        Q::SeekRow {
            input_handle,
            origin,
            row_count,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Table(table)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            let (_, total) = table_rows(env, table, 0, 0);
            let total = i64::try_from(total).unwrap_or(i64::MAX);
            let start = match origin {
                0 => 0,
                2 => total,
                _ => i64::try_from(table.position).unwrap_or(i64::MAX),
            };
            let wanted = start + i64::from(*row_count);
            let target = wanted.clamp(0, total);
            table.position = usize::try_from(target).unwrap_or_default();
            Ok(ResponseBody::SeekRow {
                has_sought_less: target != wanted,
                rows_sought: i32::try_from(target - start).unwrap_or_default(),
            })
        }
        Q::GetPropertiesSpecific {
            input_handle,
            tags,
            property_size_limit,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let values = object_props(context, env, handle)?;
            let row = row_over(&values, tags);
            let limit = streams::inline_limit(*property_size_limit);
            Ok(ResponseBody::PropertyRow(streams::limit_row(
                row, tags, limit,
            )))
        }
        Q::GetPropertiesAll {
            input_handle,
            property_size_limit,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let values = object_props(context, env, handle)?;
            let limit = streams::inline_limit(*property_size_limit);
            Ok(ResponseBody::PropertyValues(streams::limit_values(
                values, limit,
            )))
        }
        Q::GetPropertiesList { input_handle, .. } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let values = object_props(context, env, handle)?;
            Ok(ResponseBody::PropertyTags(
                values.iter().map(|v| v.tag).collect(),
            ))
        }
        Q::SetProperties {
            input_handle,
            values,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            set_properties(context, env, handle, values)?;
            Ok(ResponseBody::PropertyProblems(Vec::new()))
        }
        // NOTE: deleting properties is accepted and changes nothing.
        Q::DeleteProperties { input_handle, .. } => {
            input(context, handles, *input_handle).ok_or(null)?;
            Ok(ResponseBody::PropertyProblems(Vec::new()))
        }
        Q::OpenMessage {
            input_handle,
            output_handle,
            folder_id,
            message_id,
            ..
        } => {
            input(context, handles, *input_handle).ok_or(null)?;
            let mid = mid_of(*message_id).ok_or(error_code::NOT_FOUND)?;
            let item = env.store.item(mid).ok_or(error_code::NOT_FOUND)?;
            if Some(item.folder) != fid_of(*folder_id) {
                return Err(error_code::NOT_FOUND);
            }
            let all_recipients = recipients::of_item(&item.props);
            let (recipient_columns, recipient_rows) = recipients::open_rows(&all_recipients);
            let response = OpenMessageResponse {
                has_named_properties: false,
                subject_prefix: TypedString::Empty,
                normalized_subject: if item.props.subject.is_empty() {
                    TypedString::Empty
                } else {
                    TypedString::Unicode(item.props.subject.clone())
                },
                recipient_count: u16::try_from(all_recipients.len()).unwrap_or(u16::MAX),
                recipient_columns,
                recipient_rows,
            };
            let object = MessageObject {
                folder: item.folder,
                mid: Some(mid),
                associated: item.associated,
                pending: Vec::new(),
                import: None,
                recipients: None,
                attachments: None,
                next_attachment: None,
            };
            let handle = context.insert(Object::Message(Box::new(object)));
            set_output(handles, *output_handle, handle);
            Ok(ResponseBody::OpenMessage(Box::new(response)))
        }
        Q::CreateMessage {
            input_handle,
            output_handle,
            folder_id,
            associated,
            ..
        } => {
            input(context, handles, *input_handle).ok_or(null)?;
            let fid = fid_of(*folder_id).ok_or(error_code::NOT_FOUND)?;
            env.store.folder(fid).ok_or(error_code::NOT_FOUND)?;
            let object = MessageObject {
                folder: fid,
                mid: None,
                associated: *associated,
                pending: Vec::new(),
                import: None,
                recipients: None,
                attachments: None,
                next_attachment: None,
            };
            let handle = context.insert(Object::Message(Box::new(object)));
            set_output(handles, *output_handle, handle);
            Ok(ResponseBody::CreateMessage { message_id: None })
        }
        Q::SaveChangesMessage { input_handle, .. } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let mid = save_message(context, env, handle)?;
            Ok(ResponseBody::SaveChangesMessage {
                input_handle: *input_handle,
                message_id: ObjectId(mid.to_u64()),
            })
        }
        Q::SubmitMessage { input_handle, .. } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let mid = save_message(context, env, handle)?;
            // NOTE: submission files the message in Sent Items; nothing is delivered.
            let sent = env
                .store
                .well_known_folder(WellKnownFolder::SentItems)
                .ok_or(error_code::NOT_FOUND)?;
            env.store
                .move_item(context.session, mid, sent)
                .map_err(|e| store_error(&e))?;
            context.objects.remove(&handle);
            Ok(ResponseBody::Empty)
        }
        Q::DeleteMessages {
            input_handle,
            message_ids,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            folder_of(context, handle).ok_or(error_code::NOT_SUPPORTED)?;
            let mut partial = false;
            for id in message_ids {
                let done = mid_of(*id)
                    .map(|mid| env.store.delete_item(context.session, mid).is_ok())
                    .unwrap_or(false);
                partial |= !done;
            }
            Ok(ResponseBody::PartialCompletion(partial))
        }
        Q::SetReadFlags {
            input_handle,
            read_flags,
            message_ids,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let fid = folder_of(context, handle).ok_or(error_code::NOT_SUPPORTED)?;
            set_read_flags(context, env, fid, *read_flags, message_ids)
        }
        Q::MoveCopyMessages {
            source_handle,
            destination_handle,
            message_ids,
            want_copy,
            ..
        } => {
            let source = input(context, handles, *source_handle).ok_or(null)?;
            folder_of(context, source).ok_or(error_code::NOT_SUPPORTED)?;
            let Some(target) =
                input(context, handles, *destination_handle).and_then(|h| folder_of(context, h))
            else {
                return Ok(ResponseBody::NullDestination {
                    destination_handle: u32::from(*destination_handle),
                    partial_completion: false,
                })
                .and(Err(error_code::DST_NULL_OBJECT));
            };
            let mut partial = false;
            for id in message_ids {
                let done = mid_of(*id).is_some_and(|mid| {
                    let result = if *want_copy {
                        env.store.copy_item(context.session, mid, target)
                    } else {
                        env.store.move_item(context.session, mid, target)
                    };
                    result.is_ok()
                });
                partial |= !done;
            }
            Ok(ResponseBody::PartialCompletion(partial))
        }
        Q::CreateFolder {
            input_handle,
            output_handle,
            display_name,
            open_existing,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let parent = folder_of(context, handle).ok_or(error_code::NOT_SUPPORTED)?;
            let name = rop_text(display_name);
            let existing = env
                .store
                .child_folders(parent)
                .iter()
                .find(|f| f.display_name.eq_ignore_ascii_case(&name))
                .map(|f| f.fid);
            let fid = match existing {
                Some(fid) if *open_existing => fid,
                _ => {
                    env.store
                        .create_folder(
                            context.session,
                            parent,
                            &name,
                            None,
                            &ImportStamp::default(),
                        )
                        .map_err(|e| store_error(&e))?
                        .id
                }
            };
            let handle = context.insert(Object::Folder(fid));
            set_output(handles, *output_handle, handle);
            Ok(ResponseBody::CreateFolder {
                folder_id: ObjectId(fid.to_u64()),
                existing: existing.filter(|_| *open_existing).map(|_| (false, None)),
            })
        }
        Q::DeleteFolder {
            input_handle,
            folder_id,
            ..
        } => {
            input(context, handles, *input_handle).ok_or(null)?;
            let fid = fid_of(*folder_id).ok_or(error_code::NOT_FOUND)?;
            env.store
                .delete_folder(context.session, fid)
                .map_err(|e| store_error(&e))?;
            Ok(ResponseBody::PartialCompletion(false))
        }
        Q::MoveFolder {
            source_handle,
            destination_handle,
            folder_id,
            new_folder_name,
            ..
        } => {
            input(context, handles, *source_handle).ok_or(null)?;
            let Some(target) =
                input(context, handles, *destination_handle).and_then(|h| folder_of(context, h))
            else {
                return Err(error_code::DST_NULL_OBJECT);
            };
            let fid = fid_of(*folder_id).ok_or(error_code::NOT_FOUND)?;
            env.store
                .move_folder(context.session, fid, target)
                .map_err(|e| store_error(&e))?;
            let name = rop_text(new_folder_name);
            let current = env.store.folder(fid).map(|f| f.display_name.clone());
            if !name.is_empty() && current.as_deref() != Some(name.as_str()) {
                env.store
                    .rename_folder(context.session, fid, &name, &ImportStamp::default())
                    .map_err(|e| store_error(&e))?;
            }
            Ok(ResponseBody::PartialCompletion(false))
        }
        Q::CopyFolder {
            source_handle,
            destination_handle,
            want_recursive,
            folder_id,
            new_folder_name,
            ..
        } => {
            input(context, handles, *source_handle).ok_or(null)?;
            let Some(target) =
                input(context, handles, *destination_handle).and_then(|h| folder_of(context, h))
            else {
                return Err(error_code::DST_NULL_OBJECT);
            };
            let fid = fid_of(*folder_id).ok_or(error_code::NOT_FOUND)?;
            env.store
                .copy_folder(
                    context.session,
                    fid,
                    target,
                    &rop_text(new_folder_name),
                    *want_recursive,
                )
                .map_err(|e| store_error(&e))?;
            Ok(ResponseBody::PartialCompletion(false))
        }
        Q::RegisterNotification {
            input_handle,
            output_handle,
            logon_id,
            notification_types,
            want_whole_store,
            folder_id,
            ..
        } => {
            input(context, handles, *input_handle).ok_or(null)?;
            let kinds = event_kinds(*notification_types);
            let scope = if *want_whole_store {
                SubscriptionScope::Store
            } else {
                // NOTE: a message-level registration (MessageId not 0) is widened to its
                // folder.
                let fid = fid_of(*folder_id).ok_or(error_code::NOT_FOUND)?;
                SubscriptionScope::Folders(BTreeSet::from([fid]))
            };
            let id = env
                .store
                .subscribe(context.session, scope, kinds, None)
                .map_err(|e| store_error(&e))?;
            let handle = context.insert(Object::Subscription {
                id,
                logon_id: *logon_id,
            });
            set_output(handles, *output_handle, handle);
            Ok(ResponseBody::Empty)
        }
        Q::LongTermIdFromId {
            input_handle,
            object_id,
            ..
        } => {
            input(context, handles, *input_handle).ok_or(null)?;
            if object_id.replid() != REPLICA_ID {
                return Err(error_code::NOT_FOUND);
            }
            Ok(ResponseBody::LongTermId(LongTermId {
                database_guid: WireGuid(env.store.replica_guid().0),
                globcnt: object_id.globcnt(),
                pad: 0,
            }))
        }
        Q::IdFromLongTermId {
            input_handle,
            long_term_id,
            ..
        } => {
            input(context, handles, *input_handle).ok_or(null)?;
            if long_term_id.database_guid.0 != env.store.replica_guid().0 {
                return Err(error_code::NOT_FOUND);
            }
            Ok(ResponseBody::ObjectId(ObjectId::from_parts(
                REPLICA_ID,
                long_term_id.globcnt,
            )))
        }
        Q::GetLocalReplicaIds {
            input_handle,
            id_count,
            ..
        } => {
            input(context, handles, *input_handle).ok_or(null)?;
            let first = env.shared.next_reserved;
            env.shared.next_reserved = first.saturating_add(u64::from(*id_count));
            let global_count = GlobCnt::new(first).ok_or(error_code::OUT_OF_MEMORY)?;
            Ok(ResponseBody::LocalReplicaIds {
                repl_guid: WireGuid(env.store.replica_guid().0),
                global_count,
            })
        }
        Q::GetPropertyIdsFromNames {
            input_handle,
            names,
            ..
        } => {
            input(context, handles, *input_handle).ok_or(null)?;
            let mut ids = Vec::with_capacity(names.len());
            for name in names {
                let mut key = Vec::new();
                name.encode(&mut key);
                let index = match env.shared.named.iter().position(|k| *k == key) {
                    Some(index) => index,
                    None => {
                        env.shared.named.push(key);
                        env.shared.named.len() - 1
                    }
                };
                ids.push(0x8000_u16.saturating_add(u16::try_from(index).unwrap_or(0x7FFE)));
            }
            Ok(ResponseBody::PropertyIds(ids))
        }
        Q::SynchronizationConfigure {
            input_handle,
            output_handle,
            synchronization_type,
            synchronization_flags,
            synchronization_extra_flags,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let fid = folder_of(context, handle).ok_or(error_code::NOT_SUPPORTED)?;
            let kind = match synchronization_type {
                1 => SyncKind::Contents,
                2 => SyncKind::Hierarchy,
                _ => return Err(error_code::INVALID_PARAMETER),
            };
            let download = Download {
                fid,
                kind,
                flags: *synchronization_flags,
                extra_flags: *synchronization_extra_flags,
                state: SyncState::empty(kind, fid),
                upload: None,
                stream: None,
                offset: 0,
                buffers_sent: 0,
            };
            let handle = context.insert(Object::Download(Box::new(download)));
            set_output(handles, *output_handle, handle);
            Ok(ResponseBody::Empty)
        }
        Q::SynchronizationUploadStateStreamBegin {
            input_handle,
            state_property,
            transfer_buffer_size,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let property =
                StateProperty::from_tag(state_property.0).ok_or(error_code::INVALID_PARAMETER)?;
            let upload = Upload {
                property,
                declared: usize::try_from(*transfer_buffer_size).unwrap_or(usize::MAX),
                bytes: Vec::new(),
            };
            *upload_slot(context, handle)? = Some(upload);
            Ok(ResponseBody::Empty)
        }
        Q::SynchronizationUploadStateStreamContinue {
            input_handle,
            stream_data,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let slot = upload_slot(context, handle)?;
            let upload = slot.as_mut().ok_or(error_code::INVALID_PARAMETER)?;
            if upload.bytes.len() + stream_data.len() > upload.declared {
                *slot = None;
                return Err(error_code::INVALID_PARAMETER);
            }
            upload.bytes.extend_from_slice(stream_data);
            Ok(ResponseBody::Empty)
        }
        Q::SynchronizationUploadStateStreamEnd { input_handle, .. } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let replica = env.store.replica_guid();
            let upload = upload_slot(context, handle)?
                .take()
                .ok_or(error_code::INVALID_PARAMETER)?;
            let idset = IdSet::decode(&upload.bytes, IdsetForm::ReplGuid)
                .map_err(|_| error_code::INVALID_PARAMETER)?;
            let set = ics::globset_of(&idset, replica);
            let state = match context.objects.get_mut(&handle) {
                Some(Object::Download(download)) => &mut download.state,
                Some(Object::Collector(collector)) => &mut collector.state,
                _ => return Err(error_code::NOT_SUPPORTED),
            };
            *ics::state_set(state, upload.property) = set;
            Ok(ResponseBody::Empty)
        }
        Q::FastTransferSourceGetBuffer {
            input_handle,
            buffer_size,
            maximum_buffer_size,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Download(download)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            let wanted = match maximum_buffer_size {
                Some(max) if *buffer_size == 0xBABE => usize::from(*max),
                _ => usize::from(*buffer_size),
            };
            get_buffer(env, download, wanted.clamp(1, MAX_TRANSFER_BUFFER))
        }
        Q::SynchronizationOpenCollector {
            input_handle,
            output_handle,
            is_contents_collector,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let fid = folder_of(context, handle).ok_or(error_code::NOT_SUPPORTED)?;
            let kind = if *is_contents_collector {
                SyncKind::Contents
            } else {
                SyncKind::Hierarchy
            };
            let collector = Collector {
                fid,
                contents: *is_contents_collector,
                state: SyncState::empty(kind, fid),
                upload: None,
            };
            let handle = context.insert(Object::Collector(Box::new(collector)));
            set_output(handles, *output_handle, handle);
            Ok(ResponseBody::Empty)
        }
        Q::SynchronizationGetTransferState {
            input_handle,
            output_handle,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let (fid, kind, state) = match context.objects.get(&handle) {
                Some(Object::Collector(collector)) => {
                    (collector.fid, collector.state.kind, collector.state.clone())
                }
                Some(Object::Download(download)) => {
                    (download.fid, download.kind, download.state.clone())
                }
                _ => return Err(error_code::NOT_SUPPORTED),
            };
            let stream = ics::state_stream(&state, env.store.replica_guid(), kind);
            let download = Download {
                fid,
                kind,
                flags: 0,
                extra_flags: 0,
                state,
                upload: None,
                stream: Some(stream),
                offset: 0,
                buffers_sent: 0,
            };
            let handle = context.insert(Object::Download(Box::new(download)));
            set_output(handles, *output_handle, handle);
            Ok(ResponseBody::Empty)
        }
        Q::SynchronizationImportMessageChange {
            input_handle,
            output_handle,
            import_flag,
            values,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let object = import_message_change(context, env, handle, *import_flag, values)?;
            let message = context.insert(Object::Message(Box::new(object)));
            set_output(handles, *output_handle, message);
            Ok(ResponseBody::ObjectId(ObjectId(0)))
        }
        Q::SynchronizationImportHierarchyChange {
            input_handle,
            hierarchy_values,
            values,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let root = match context.objects.get(&handle) {
                Some(Object::Collector(collector)) if !collector.contents => collector.fid,
                _ => return Err(error_code::NOT_SUPPORTED),
            };
            let change = FolderChange::read(hierarchy_values, values)?;
            let imported = folder_import::import_change(
                env.store,
                &mut env.shared.folder_keys,
                context.session,
                root,
                change,
                store_error,
            )?;
            if let Some(Object::Collector(collector)) = context.objects.get_mut(&handle) {
                collector.state.given.insert(imported.fid.0);
                if let Some(cn) = imported.cn {
                    collector.state.seen.insert(cn.0);
                }
            }
            Ok(ResponseBody::ObjectId(ObjectId(imported.fid.to_u64())))
        }
        Q::SynchronizationImportDeletes {
            input_handle,
            values,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            import_deletes(context, env, handle, values)?;
            Ok(ResponseBody::Empty)
        }
        Q::SynchronizationImportReadStateChanges {
            input_handle,
            read_states,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let mut results = Vec::new();
            for change in read_states {
                let Some(mid) = env.shared.keys.resolve(env.store, &change.message_id) else {
                    continue;
                };
                let result = env
                    .store
                    .set_read(context.session, mid, change.mark_as_read)
                    .map_err(|e| store_error(&e))?;
                results.push(result.read_cn);
            }
            let Some(Object::Collector(collector)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            for cn in results {
                collector.state.read.insert(cn.0);
            }
            Ok(ResponseBody::Empty)
        }
        Q::SynchronizationImportMessageMove {
            input_handle,
            source_message_id,
            destination_message_id,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Collector(collector)) = context.objects.get(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            let target = collector.fid;
            let mid = env
                .shared
                .keys
                .resolve(env.store, source_message_id)
                .ok_or(error_code::NOT_FOUND)?;
            let result = env
                .store
                .move_item(context.session, mid, target)
                .map_err(|e| store_error(&e))?;
            if !destination_message_id.is_empty() {
                env.shared
                    .keys
                    .bind(destination_message_id.clone(), result.id);
            }
            if let Some(Object::Collector(collector)) = context.objects.get_mut(&handle) {
                collector.state.given.insert(result.id.0);
                collector.state.seen.insert(result.cn.0);
            }
            Ok(ResponseBody::ObjectId(ObjectId(0)))
        }
        Q::OpenStream {
            input_handle,
            output_handle,
            tag,
            open_mode_flags,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            match context.objects.get(&handle) {
                Some(Object::Message(_)) => {}
                Some(Object::Attachment(object)) if object.writable => {}
                // A read-only attachment opens only read-only streams.
                Some(Object::Attachment(_)) if *open_mode_flags & 0x03 == 0 => {}
                Some(Object::Attachment(_)) => return Err(error_code::ACCESS_DENIED),
                _ => return Err(error_code::NOT_SUPPORTED),
            }
            let values = object_props(context, env, handle)?;
            let stream = streams::open(handle, &values, *tag, *open_mode_flags)?;
            let size = u32::try_from(stream.data.len()).unwrap_or(u32::MAX);
            let stream_handle = context.insert(Object::Stream(Box::new(stream)));
            set_output(handles, *output_handle, stream_handle);
            Ok(ResponseBody::StreamSize(size))
        }
        Q::ReadStream {
            input_handle,
            byte_count,
            maximum_byte_count,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Stream(stream)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            let requested = match maximum_byte_count {
                Some(max) if *byte_count == 0xBABE => usize::try_from(*max).unwrap_or(usize::MAX),
                _ => usize::from(*byte_count),
            };
            Ok(ResponseBody::ReadStream {
                data: streams::read(stream, requested),
            })
        }
        Q::WriteStream {
            input_handle, data, ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Stream(stream)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            Ok(ResponseBody::WrittenSize(streams::write(stream, data)?))
        }
        Q::GetStreamSize { input_handle, .. } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Stream(stream)) = context.objects.get(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            Ok(ResponseBody::StreamSize(
                u32::try_from(stream.data.len()).unwrap_or(u32::MAX),
            ))
        }
        Q::CommitStream { input_handle, .. } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Stream(stream)) = context.objects.get(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            let value = streams::commit(stream)?;
            let owner = stream.message;
            // The value joins the unsaved writes of the message or attachment, which
            // RopSaveChangesMessage or RopSaveChangesAttachment stores.
            match context.objects.get_mut(&owner) {
                Some(Object::Message(message)) => {
                    message.pending.retain(|v| v.tag.id() != value.tag.id());
                    message.pending.push(value);
                }
                Some(Object::Attachment(attachment)) => attachment.set(&[value]),
                _ => return Err(error_code::OBJECT_DELETED),
            }
            Ok(ResponseBody::Empty)
        }
        Q::ModifyRecipients {
            input_handle,
            columns,
            rows,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let current = message_recipients(context, env, handle)?;
            let Some(Object::Message(message)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            let mut changed = current;
            recipients::modify(&mut changed, columns, rows)?;
            message.recipients = Some(changed);
            Ok(ResponseBody::Empty)
        }
        Q::RemoveAllRecipients { input_handle, .. } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let Some(Object::Message(message)) = context.objects.get_mut(&handle) else {
                return Err(error_code::NOT_SUPPORTED);
            };
            message.recipients = Some(Recipients::new());
            Ok(ResponseBody::Empty)
        }
        Q::ReadRecipients {
            input_handle,
            row_id,
            ..
        } => {
            let handle = input(context, handles, *input_handle).ok_or(null)?;
            let current = message_recipients(context, env, handle)?;
            Ok(ResponseBody::ReadRecipients(recipients::read_rows(
                &current, *row_id,
            )?))
        }
        other => {
            debug!(
                rop = rop_id::name(other.rop_id()),
                "ROP not supported by the emulator"
            );
            Err(error_code::NOT_SUPPORTED)
        }
    }
}

fn rop_text(value: &exmux_mapihttp::rop::RopString) -> String {
    match value {
        exmux_mapihttp::rop::RopString::Unicode(text) => text.clone(),
        exmux_mapihttp::rop::RopString::String8(bytes) => {
            bytes.iter().map(|b| char::from(*b)).collect()
        }
        _ => String::new(),
    }
}

fn event_kinds(types: u8) -> EventKinds {
    let mut kinds = EventKinds::NONE;
    for (bit, kind) in [
        (0x02, EventKind::NewMail),
        (0x04, EventKind::Created),
        (0x08, EventKind::Deleted),
        (0x10, EventKind::Modified),
        (0x20, EventKind::Moved),
        (0x40, EventKind::Copied),
    ] {
        if types & bit != 0 {
            kinds = kinds.with(kind);
        }
    }
    kinds
}

fn logon(env: &Env<'_>, logon_flags: u8) -> LogonResponse {
    let store = &*env.store;
    let fid = |folder: WellKnownFolder| {
        ObjectId(
            store
                .well_known_folder(folder)
                .map_or(0, |fid| fid.to_u64()),
        )
    };
    // NOTE: the store has no deferred-action, spooler, common-views, schedule, search,
    // views or shortcuts folders; their ids are 0.
    let none = ObjectId(0);
    let folder_ids = [
        fid(WellKnownFolder::Root),
        none,
        none,
        fid(WellKnownFolder::MsgFolderRoot),
        fid(WellKnownFolder::Inbox),
        fid(WellKnownFolder::Outbox),
        fid(WellKnownFolder::SentItems),
        fid(WellKnownFolder::DeletedItems),
        none,
        none,
        none,
        none,
        none,
    ];
    let (repl_id, repl_guid) = if env.quirks.foreign_logon_replica {
        tracing::warn!("foreign_logon_replica quirk: RopLogon names a replica the ids do not use");
        (
            FOREIGN_REPLICA_ID,
            WireGuid(env.mailbox.mailbox_guid.to_bytes_le()),
        )
    } else {
        (REPLICA_ID, WireGuid(store.replica_guid().0))
    };
    let now = time::OffsetDateTime::from(store.now());
    LogonResponse {
        logon_flags,
        folder_ids,
        response_flags: 0x01 | 0x02 | 0x04,
        mailbox_guid: WireGuid(env.mailbox.mailbox_guid.to_bytes_le()),
        repl_id,
        repl_guid,
        logon_time: [
            now.second(),
            now.minute(),
            now.hour(),
            now.weekday().number_days_from_sunday(),
            now.day(),
            u8::from(now.month()),
        ],
        logon_year: u16::try_from(now.year()).unwrap_or_default(),
        gwart_time: props::filetime(store.now()),
        store_state: 0,
    }
}

/// Returns up to `count` rows of a table from row `start` (folder or item properties, in
/// id order) and the table's total row count. Only the returned rows are built, so
/// paging through a large folder stays linear.
fn table_rows(
    env: &Env<'_>,
    table: &Table,
    start: usize,
    count: usize,
) -> (Vec<Vec<TaggedValue>>, usize) {
    let store = &*env.store;
    if let Some(rows) = &table.attachment_rows {
        let page = rows.iter().skip(start).take(count).cloned().collect();
        return (page, rows.len());
    }
    if table.hierarchy {
        let folders: Vec<&crate::store::Folder> = if table.depth {
            store
                .descendant_folders(table.fid)
                .into_iter()
                .map(|(_, folder)| folder)
                .collect()
        } else {
            store.child_folders(table.fid)
        };
        let total = folders.len();
        let rows = folders
            .into_iter()
            .skip(start)
            .take(count)
            .map(|folder| props::folder_props(store, folder))
            .collect();
        return (rows, total);
    }
    if table.restriction.is_some() || !table.sort_orders.is_empty() {
        return sorted_rows(env, table, start, count);
    }
    let options = crate::store::ListOptions {
        offset: start,
        max_entries: count,
        associated: table.associated,
    };
    store
        .list_items(table.fid, options)
        .map(|page| {
            let rows = page
                .items
                .into_iter()
                .map(|item| props::item_props(store, &env.shared.keys, item))
                .collect();
            (rows, page.total)
        })
        .unwrap_or_default()
}

/// Returns a page of a contents table with a restriction or sort order: every row is
/// built, filtered and sorted on each call, so a page costs time linear in the folder.
fn sorted_rows(
    env: &Env<'_>,
    table: &Table,
    start: usize,
    count: usize,
) -> (Vec<Vec<TaggedValue>>, usize) {
    let store = &*env.store;
    let options = crate::store::ListOptions {
        offset: 0,
        max_entries: usize::MAX,
        associated: table.associated,
    };
    let Ok(page) = store.list_items(table.fid, options) else {
        return (Vec::new(), 0);
    };
    let mut rows: Vec<Vec<TaggedValue>> = page
        .items
        .into_iter()
        .map(|item| props::item_props(store, &env.shared.keys, item))
        .filter(|values| {
            table
                .restriction
                .as_ref()
                .is_none_or(|r| restrict::matches(r, values))
        })
        .collect();
    restrict::sort_rows(&mut rows, &table.sort_orders);
    let total = rows.len();
    let rows = rows.into_iter().skip(start).take(count).collect();
    (rows, total)
}

fn query_rows(env: &Env<'_>, table: &mut Table, flags: u8, count: u16) -> RopOutcome {
    if table.columns.is_empty() {
        return Err(error_code::NULL_OBJECT);
    }
    let (rows, total) = table_rows(env, table, table.position, usize::from(count));
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut position = table.position.min(total);
    // NOTE: backward reads (ForwardRead 0) are served forward.
    for values in &rows {
        let row = row_over(values, &table.columns);
        let mut encoded = Vec::new();
        row.encode(&mut encoded, &table.columns);
        if bytes + encoded.len() > MAX_ROW_BYTES && !out.is_empty() {
            break;
        }
        bytes += encoded.len();
        out.push(row);
        position += 1;
    }
    if flags & 0x01 == 0 {
        table.position = position;
    }
    let origin = if position >= total {
        2
    } else if position == 0 {
        0
    } else {
        1
    };
    Ok(ResponseBody::QueryRows { origin, rows: out })
}

/// Builds a PropertyRow over `columns`: standard when every column has a value, flagged
/// with ecNotFound cells otherwise.
pub(crate) fn row_over(values: &[TaggedValue], columns: &[PropTag]) -> PropertyRow {
    let cells: Vec<RowCell> = columns
        .iter()
        .map(|tag| match props::lookup(values, *tag) {
            Some(value) => RowCell::Value(value),
            None => RowCell::Error {
                code: error_code::NOT_FOUND,
                ptype: (tag.ptype() == PropType::UNSPECIFIED).then_some(PropType::ERROR_CODE),
            },
        })
        .collect();
    let flagged = cells.iter().any(|c| !matches!(c, RowCell::Value(_)));
    PropertyRow { flagged, cells }
}

/// Returns the properties of the object behind a handle. A message's unsaved writes
/// override the stored values.
fn object_props(context: &Context, env: &Env<'_>, handle: u32) -> Result<Vec<TaggedValue>, u32> {
    let store = &*env.store;
    match context.objects.get(&handle) {
        Some(Object::Logon) => Ok(vec![
            TaggedValue {
                tag: PID_TAG_DISPLAY_NAME,
                value: PropValue::Unicode(env.mailbox.address.clone()),
            },
            TaggedValue {
                tag: PropTag(0x0FFB_0102),
                value: PropValue::Binary(env.mailbox.mailbox_guid.to_bytes_le().to_vec()),
            },
        ]),
        Some(Object::Folder(fid)) => {
            let folder = store.folder(*fid).ok_or(error_code::OBJECT_DELETED)?;
            Ok(props::folder_props(store, folder))
        }
        Some(Object::Message(message)) => {
            let mut values = match message.mid.and_then(|mid| store.item(mid)) {
                Some(item) => props::item_props(store, &env.shared.keys, item),
                None => Vec::new(),
            };
            for pending in &message.pending {
                values.retain(|v| v.tag.id() != pending.tag.id());
                values.push(pending.clone());
            }
            Ok(values)
        }
        Some(Object::Attachment(attachment)) => Ok(attachment.values.clone()),
        Some(_) => Err(error_code::NOT_SUPPORTED),
        None => Err(error_code::NULL_OBJECT),
    }
}

fn set_properties(
    context: &mut Context,
    env: &mut Env<'_>,
    handle: u32,
    values: &[TaggedValue],
) -> Result<(), u32> {
    match context.objects.get_mut(&handle) {
        Some(Object::Message(message)) => {
            for value in values {
                message.pending.retain(|v| v.tag.id() != value.tag.id());
                message.pending.push(value.clone());
            }
            Ok(())
        }
        Some(Object::Attachment(attachment)) if attachment.writable => {
            attachment.set(values);
            Ok(())
        }
        Some(Object::Attachment(_)) => Err(error_code::ACCESS_DENIED),
        Some(Object::Folder(fid)) => {
            let fid = *fid;
            if let Some(name) = values
                .iter()
                .find(|v| v.tag.id() == PID_TAG_DISPLAY_NAME.id())
                .and_then(|v| props::text_of(&v.value))
            {
                env.store
                    .rename_folder(context.session, fid, &name, &ImportStamp::default())
                    .map_err(|e| store_error(&e))?;
            }
            Ok(())
        }
        Some(_) => Err(error_code::NOT_SUPPORTED),
        None => Err(error_code::NULL_OBJECT),
    }
}

/// Saves a message object by creating or updating the item. The change key and PCL of an
/// ICS import are kept as the client supplied them, and the import is recorded in its
/// collector's state so that the checkpoint leaves it out of the next download.
fn save_message(context: &mut Context, env: &mut Env<'_>, handle: u32) -> Result<Mid, u32> {
    let session = context.session;
    let Some(Object::Message(message)) = context.objects.get_mut(&handle) else {
        return Err(error_code::NOT_SUPPORTED);
    };
    let (mut update, read) = props::update_from(&message.pending);
    if let Some(changed) = message.recipients.take() {
        recipients::apply(&changed, &mut update);
    }
    // Cloned, not taken: a failed save leaves the working list for another try.
    update.attachments = message.attachments.clone();
    let stamp = message
        .import
        .as_ref()
        .map(|import| import.stamp.clone())
        .unwrap_or_default();
    let (mid, cn) = match message.mid {
        Some(mid) => {
            let result = env
                .store
                .update_item(session, mid, update, &stamp)
                .map_err(|e| store_error(&e))?;
            (mid, result.cn)
        }
        None => {
            let mut item = ItemProps::default();
            apply_new(&mut item, update);
            let new = NewItem {
                content: NewItemContent::Props(item),
                associated: message.associated,
                new_mail: false,
                import: stamp,
            };
            let result = env
                .store
                .create_item(session, message.folder, new)
                .map_err(|e| store_error(&e))?;
            (result.id, result.cn)
        }
    };
    let mut read_cn = None;
    if let Some(read) = read
        && env
            .store
            .item(mid)
            .is_some_and(|item| item.props.read != read)
    {
        read_cn = Some(
            env.store
                .set_read(session, mid, read)
                .map_err(|e| store_error(&e))?
                .read_cn,
        );
    }
    message.mid = Some(mid);
    message.pending.clear();
    message.attachments = None;
    let associated = message.associated;
    let import = message.import.take();

    if let Some(import) = import {
        if !import.source_key.is_empty()
            && env.shared.keys.resolve(env.store, &import.source_key) != Some(mid)
        {
            env.shared.keys.bind(import.source_key.clone(), mid);
        }
        if let Some(Object::Collector(collector)) = context.objects.get_mut(&import.collector) {
            collector.state.given.insert(mid.0);
            if associated {
                collector.state.seen_fai.insert(cn.0);
            } else {
                collector.state.seen.insert(cn.0);
            }
            if let Some(read_cn) = read_cn {
                collector.state.read.insert(read_cn.0);
            }
        }
    }
    Ok(mid)
}

/// Returns the attachments of an open message: those changed since it was opened, else
/// the stored ones.
fn message_attachments(
    context: &Context,
    env: &Env<'_>,
    handle: u32,
) -> Result<Vec<Attachment>, u32> {
    let Some(Object::Message(message)) = context.objects.get(&handle) else {
        return Err(error_code::NOT_SUPPORTED);
    };
    if let Some(changed) = &message.attachments {
        return Ok(changed.clone());
    }
    Ok(message
        .mid
        .and_then(|mid| env.store.item(mid))
        .map(|item| item.props.attachments.clone())
        .unwrap_or_default())
}

/// Returns the recipients of an open message: those changed since it was opened, else
/// the stored ones.
fn message_recipients(context: &Context, env: &Env<'_>, handle: u32) -> Result<Recipients, u32> {
    let Some(Object::Message(message)) = context.objects.get(&handle) else {
        return Err(error_code::NULL_OBJECT);
    };
    if let Some(changed) = &message.recipients {
        return Ok(changed.clone());
    }
    Ok(message
        .mid
        .and_then(|mid| env.store.item(mid))
        .map(|item| recipients::of_item(&item.props))
        .unwrap_or_default())
}

fn apply_new(item: &mut ItemProps, update: crate::store::ItemUpdate) {
    if let Some(class) = update.item_class {
        item.item_class = class;
    }
    if let Some(subject) = update.subject {
        item.subject = subject;
    }
    if let Some(body) = update.body {
        item.body = body;
    }
    if let Some(importance) = update.importance {
        item.importance = importance;
    }
    if let Some(flag) = update.flag {
        item.flag = flag;
    }
    if let Some(received) = update.received {
        item.received = received;
    }
    if let Some(to) = update.to {
        item.to = to;
    }
    if let Some(cc) = update.cc {
        item.cc = cc;
    }
    if let Some(bcc) = update.bcc {
        item.bcc = bcc;
    }
    if let Some(attachments) = update.attachments {
        item.attachments = attachments;
    }
}

fn set_read_flags(
    context: &mut Context,
    env: &mut Env<'_>,
    fid: Fid,
    read_flags: u8,
    message_ids: &[ObjectId],
) -> RopOutcome {
    // 0x10 (generate receipt only) changes no flag; 0x04 clears the read flag.
    if read_flags & 0x10 != 0 {
        return Ok(ResponseBody::PartialCompletion(false));
    }
    let read = read_flags & 0x04 == 0;
    let mids: Vec<Mid> = if message_ids.is_empty() {
        let options = crate::store::ListOptions {
            offset: 0,
            max_entries: usize::MAX,
            associated: false,
        };
        env.store
            .list_items(fid, options)
            .map(|page| page.items.iter().map(|item| item.mid).collect())
            .map_err(|e| store_error(&e))?
    } else {
        message_ids.iter().filter_map(|id| mid_of(*id)).collect()
    };
    let mut partial = mids.len() != message_ids.len() && !message_ids.is_empty();
    for mid in mids {
        match env.store.item(mid) {
            Some(item) if item.props.read == read => {}
            Some(_) => {
                partial |= env.store.set_read(context.session, mid, read).is_err();
            }
            None => partial = true,
        }
    }
    Ok(ResponseBody::PartialCompletion(partial))
}

fn upload_slot(context: &mut Context, handle: u32) -> Result<&mut Option<Upload>, u32> {
    match context.objects.get_mut(&handle) {
        Some(Object::Download(download)) => Ok(&mut download.upload),
        Some(Object::Collector(collector)) => Ok(&mut collector.upload),
        Some(other) => {
            debug!(
                object = other.name(),
                "state upload on an object that takes none"
            );
            Err(error_code::NOT_SUPPORTED)
        }
        None => Err(error_code::NULL_OBJECT),
    }
}

fn get_buffer(env: &mut Env<'_>, download: &mut Download, size: usize) -> RopOutcome {
    if download.stream.is_none() {
        let built = ics::download_stream(
            env.store,
            &env.shared.keys,
            download.fid,
            download.kind,
            download.flags,
            download.extra_flags,
            &download.state,
            env.quirks,
        )
        .map_err(|e| store_error(&e))?;
        download.state = built.1;
        download.stream = Some(built.0);
    }
    let stream = download.stream.as_deref().unwrap_or_default();
    let end = download.offset.saturating_add(size).min(stream.len());
    let chunk = stream
        .get(download.offset..end)
        .unwrap_or_default()
        .to_vec();
    download.offset = end;
    download.buffers_sent = download.buffers_sent.saturating_add(1);
    let done = end >= stream.len();
    let total = u16::try_from(stream.len().div_ceil(size.max(1))).unwrap_or(u16::MAX);
    Ok(ResponseBody::FastTransferBuffer {
        transfer_status: if done { 3 } else { 1 },
        in_progress_count: download.buffers_sent.min(total),
        total_step_count: total,
        reserved: 0,
        transfer_buffer: chunk,
    })
}

fn value_of(values: &[TaggedValue], tag: PropTag) -> Option<&PropValue> {
    values.iter().find(|v| v.tag == tag).map(|v| &v.value)
}

fn import_message_change(
    context: &Context,
    env: &mut Env<'_>,
    collector_handle: u32,
    import_flag: u8,
    values: &[TaggedValue],
) -> Result<MessageObject, u32> {
    let Some(Object::Collector(collector)) = context.objects.get(&collector_handle) else {
        return Err(error_code::NOT_SUPPORTED);
    };
    if !collector.contents {
        return Err(error_code::NOT_SUPPORTED);
    }
    let Some(PropValue::Binary(source_key)) = value_of(values, PID_TAG_SOURCE_KEY) else {
        return Err(error_code::INVALID_PARAMETER);
    };
    let change_key = match value_of(values, PID_TAG_CHANGE_KEY) {
        Some(PropValue::Binary(bytes)) => {
            Some(Xid::from_bytes(bytes).map_err(|_| error_code::INVALID_PARAMETER)?)
        }
        _ => None,
    };
    let pcl = match value_of(values, PID_TAG_PREDECESSOR_CHANGE_LIST) {
        Some(PropValue::Binary(bytes)) => {
            Some(Pcl::from_bytes(bytes).map_err(|_| error_code::INVALID_PARAMETER)?)
        }
        _ => None,
    };
    let existing = env.shared.keys.resolve(env.store, source_key);
    if let Some(item) = existing.and_then(|mid| env.store.item(mid)) {
        // FailOnConflict: refuse a change whose PCL does not include the server's
        // current version (MS-OXCFXICS 3.2.5.9.4.2).
        let current = &item.stamp.change_key;
        let includes = pcl.as_ref().is_some_and(|pcl| pcl.includes(current));
        if import_flag & 0x40 != 0 && !includes {
            return Err(error_code::SYNC_CONFLICT);
        }
    }
    let header = [
        PID_TAG_SOURCE_KEY,
        PID_TAG_LAST_MODIFICATION_TIME,
        PID_TAG_CHANGE_KEY,
        PID_TAG_PREDECESSOR_CHANGE_LIST,
    ];
    let pending = values
        .iter()
        .filter(|v| !header.contains(&v.tag))
        .cloned()
        .collect();
    Ok(MessageObject {
        folder: collector.fid,
        mid: existing,
        associated: import_flag & 0x10 != 0,
        pending,
        recipients: None,
        attachments: None,
        next_attachment: None,
        import: Some(ImportInfo {
            collector: collector_handle,
            source_key: source_key.clone(),
            stamp: ImportStamp { change_key, pcl },
        }),
    })
}

fn import_deletes(
    context: &mut Context,
    env: &mut Env<'_>,
    collector_handle: u32,
    values: &[TaggedValue],
) -> Result<(), u32> {
    let Some(Object::Collector(collector)) = context.objects.get(&collector_handle) else {
        return Err(error_code::NOT_SUPPORTED);
    };
    let hierarchy = !collector.contents;
    let keys: Vec<Vec<u8>> = values
        .iter()
        .flat_map(|v| match &v.value {
            PropValue::MvBinary(keys) => keys.clone(),
            PropValue::Binary(key) => vec![key.clone()],
            _ => Vec::new(),
        })
        .collect();
    if hierarchy {
        let deleted = folder_import::import_deletes(
            env.store,
            &env.shared.folder_keys,
            context.session,
            &keys,
            store_error,
        )?;
        if let Some(Object::Collector(collector)) = context.objects.get_mut(&collector_handle) {
            for fid in deleted {
                collector.state.given.remove(fid.0);
            }
        }
        return Ok(());
    }
    let mut deleted = Vec::new();
    for key in keys {
        let Some(mid) = env.shared.keys.resolve(env.store, &key) else {
            // Deleting what is already gone is not an error for ICS.
            continue;
        };
        env.store
            .delete_item(context.session, mid)
            .map_err(|e| store_error(&e))?;
        deleted.push(mid);
    }
    if let Some(Object::Collector(collector)) = context.objects.get_mut(&collector_handle) {
        for mid in deleted {
            collector.state.given.remove(mid.0);
        }
    }
    Ok(())
}

#[allow(dead_code, reason = "kept for converting reserved counters in tests")]
pub(crate) fn globcnt(value: u64) -> Option<Globcnt> {
    Globcnt::new(value)
}
