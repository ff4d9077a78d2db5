//! ROP buffers (MS-OXCROPS 2.2.1): `RopSize u16 | RopsList | ServerObjectHandleTable`, the
//! requests and responses of the ROPs a sync client, a sender and the emulator use, and
//! the server-only ROPs that follow the responses (RopNotify, RopPending, RopBackoff,
//! RopBufferTooSmall).
//!
//! A response has no length prefix and its layout depends on the request, so
//! [`decode_response_buffer`] takes the request list (and the column sets of tables set
//! in earlier batches); [`decode_response_buffer_partial`] decodes a buffer without that
//! context as far as its bytes allow.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[doc(hidden)]
pub mod fuzz;
mod recipient;
mod request;
mod response;
pub(crate) mod writer;

pub use recipient::{DistributionListRecipient, RecipientFlags, RecipientRow, X500Recipient};
pub use request::{MessageReadState, ModifyRecipientRow, RopRequest, SortOrder};
pub use response::{
    Backoff, BackoffRop, GhostInfo, LogonResponse, OpenMessageResponse, OpenRecipientRow,
    PropertyProblem, ReadRecipientRow, ReadStatusChange, ResponseBody, RopResponse, RopResult,
    TypedString,
};

use crate::ids::IdsError;
use crate::notify::NotifyError;
use crate::prop::{
    PropError, PropTag, Reader, RowView, decode_row_views, decode_utf16, encode_utf16_nul,
};
use std::collections::HashMap;
use writer::Put;

/// RopId values (MS-OXCROPS 2.2.x).
#[allow(missing_docs)]
pub mod rop_id {
    pub const RELEASE: u8 = 0x01;
    pub const OPEN_FOLDER: u8 = 0x02;
    pub const OPEN_MESSAGE: u8 = 0x03;
    pub const GET_HIERARCHY_TABLE: u8 = 0x04;
    pub const GET_CONTENTS_TABLE: u8 = 0x05;
    pub const CREATE_MESSAGE: u8 = 0x06;
    pub const GET_PROPERTIES_SPECIFIC: u8 = 0x07;
    pub const GET_PROPERTIES_ALL: u8 = 0x08;
    pub const GET_PROPERTIES_LIST: u8 = 0x09;
    pub const SET_PROPERTIES: u8 = 0x0A;
    pub const DELETE_PROPERTIES: u8 = 0x0B;
    pub const SAVE_CHANGES_MESSAGE: u8 = 0x0C;
    pub const REMOVE_ALL_RECIPIENTS: u8 = 0x0D;
    pub const MODIFY_RECIPIENTS: u8 = 0x0E;
    pub const READ_RECIPIENTS: u8 = 0x0F;
    pub const SET_MESSAGE_READ_FLAG: u8 = 0x11;
    pub const SET_COLUMNS: u8 = 0x12;
    pub const SORT_TABLE: u8 = 0x13;
    pub const RESTRICT: u8 = 0x14;
    pub const QUERY_ROWS: u8 = 0x15;
    pub const SEEK_ROW: u8 = 0x18;
    pub const CREATE_FOLDER: u8 = 0x1C;
    pub const DELETE_FOLDER: u8 = 0x1D;
    pub const DELETE_MESSAGES: u8 = 0x1E;
    pub const GET_ATTACHMENT_TABLE: u8 = 0x21;
    pub const OPEN_ATTACHMENT: u8 = 0x22;
    pub const CREATE_ATTACHMENT: u8 = 0x23;
    pub const DELETE_ATTACHMENT: u8 = 0x24;
    pub const SAVE_CHANGES_ATTACHMENT: u8 = 0x25;
    pub const REGISTER_NOTIFICATION: u8 = 0x29;
    pub const NOTIFY: u8 = 0x2A;
    pub const OPEN_STREAM: u8 = 0x2B;
    pub const READ_STREAM: u8 = 0x2C;
    pub const WRITE_STREAM: u8 = 0x2D;
    pub const SET_STREAM_SIZE: u8 = 0x2F;
    pub const SUBMIT_MESSAGE: u8 = 0x32;
    pub const MOVE_COPY_MESSAGES: u8 = 0x33;
    pub const MOVE_FOLDER: u8 = 0x35;
    pub const COPY_FOLDER: u8 = 0x36;
    pub const GET_RULES_TABLE: u8 = 0x3F;
    pub const LONG_TERM_ID_FROM_ID: u8 = 0x43;
    pub const ID_FROM_LONG_TERM_ID: u8 = 0x44;
    pub const OPEN_EMBEDDED_MESSAGE: u8 = 0x46;
    pub const FAST_TRANSFER_SOURCE_COPY_MESSAGES: u8 = 0x4B;
    pub const FAST_TRANSFER_SOURCE_COPY_FOLDER: u8 = 0x4C;
    pub const FAST_TRANSFER_SOURCE_COPY_TO: u8 = 0x4D;
    pub const FAST_TRANSFER_SOURCE_GET_BUFFER: u8 = 0x4E;
    pub const FIND_ROW: u8 = 0x4F;
    pub const GET_NAMES_FROM_PROPERTY_IDS: u8 = 0x55;
    pub const GET_PROPERTY_IDS_FROM_NAMES: u8 = 0x56;
    pub const COMMIT_STREAM: u8 = 0x5D;
    pub const GET_STREAM_SIZE: u8 = 0x5E;
    pub const SET_READ_FLAGS: u8 = 0x66;
    pub const FAST_TRANSFER_SOURCE_COPY_PROPERTIES: u8 = 0x69;
    pub const PENDING: u8 = 0x6E;
    pub const SYNCHRONIZATION_CONFIGURE: u8 = 0x70;
    pub const SYNCHRONIZATION_IMPORT_MESSAGE_CHANGE: u8 = 0x72;
    pub const SYNCHRONIZATION_IMPORT_HIERARCHY_CHANGE: u8 = 0x73;
    pub const SYNCHRONIZATION_IMPORT_DELETES: u8 = 0x74;
    pub const SYNCHRONIZATION_UPLOAD_STATE_STREAM_BEGIN: u8 = 0x75;
    pub const SYNCHRONIZATION_UPLOAD_STATE_STREAM_CONTINUE: u8 = 0x76;
    pub const SYNCHRONIZATION_UPLOAD_STATE_STREAM_END: u8 = 0x77;
    pub const SYNCHRONIZATION_IMPORT_MESSAGE_MOVE: u8 = 0x78;
    pub const SYNCHRONIZATION_OPEN_COLLECTOR: u8 = 0x7E;
    pub const GET_LOCAL_REPLICA_IDS: u8 = 0x7F;
    pub const SYNCHRONIZATION_IMPORT_READ_STATE_CHANGES: u8 = 0x80;
    pub const SYNCHRONIZATION_GET_TRANSFER_STATE: u8 = 0x82;
    pub const HARD_DELETE_MESSAGES_AND_SUBFOLDERS: u8 = 0x92;
    pub const HARD_DELETE_MESSAGES: u8 = 0x91;
    pub const BACKOFF: u8 = 0xF9;
    pub const LOGON: u8 = 0xFE;
    pub const BUFFER_TOO_SMALL: u8 = 0xFF;

    /// Returns whether a request with this RopId can be decoded.
    pub fn is_known_request(id: u8) -> bool {
        matches!(
            id,
            0x01..=0x0F
                | 0x11
                | 0x12..=0x15
                | 0x18
                | 0x1C..=0x1E
                | 0x21..=0x25
                | 0x29
                | 0x2B..=0x2D
                | 0x2F
                | 0x32
                | 0x33
                | 0x35
                | 0x36
                | 0x3F
                | 0x43
                | 0x44
                | 0x46
                | 0x4B..=0x4D
                | 0x4E
                | 0x4F
                | 0x55
                | 0x56
                | 0x5D
                | 0x5E
                | 0x66
                | 0x69
                | 0x70
                | 0x72..=0x78
                | 0x7E
                | 0x7F
                | 0x80
                | 0x82
                | 0x91
                | 0x92
                | 0xFE
        )
    }

    /// Returns the ROP's name as MS-OXCROPS spells it, for diagnostics.
    pub fn name(id: u8) -> &'static str {
        match id {
            RELEASE => "RopRelease",
            OPEN_FOLDER => "RopOpenFolder",
            OPEN_MESSAGE => "RopOpenMessage",
            GET_HIERARCHY_TABLE => "RopGetHierarchyTable",
            GET_CONTENTS_TABLE => "RopGetContentsTable",
            CREATE_MESSAGE => "RopCreateMessage",
            GET_PROPERTIES_SPECIFIC => "RopGetPropertiesSpecific",
            GET_PROPERTIES_ALL => "RopGetPropertiesAll",
            GET_PROPERTIES_LIST => "RopGetPropertiesList",
            SET_PROPERTIES => "RopSetProperties",
            DELETE_PROPERTIES => "RopDeleteProperties",
            SAVE_CHANGES_MESSAGE => "RopSaveChangesMessage",
            REMOVE_ALL_RECIPIENTS => "RopRemoveAllRecipients",
            MODIFY_RECIPIENTS => "RopModifyRecipients",
            READ_RECIPIENTS => "RopReadRecipients",
            SET_MESSAGE_READ_FLAG => "RopSetMessageReadFlag",
            SET_COLUMNS => "RopSetColumns",
            SORT_TABLE => "RopSortTable",
            RESTRICT => "RopRestrict",
            QUERY_ROWS => "RopQueryRows",
            SEEK_ROW => "RopSeekRow",
            CREATE_FOLDER => "RopCreateFolder",
            DELETE_FOLDER => "RopDeleteFolder",
            DELETE_MESSAGES => "RopDeleteMessages",
            GET_ATTACHMENT_TABLE => "RopGetAttachmentTable",
            OPEN_ATTACHMENT => "RopOpenAttachment",
            CREATE_ATTACHMENT => "RopCreateAttachment",
            DELETE_ATTACHMENT => "RopDeleteAttachment",
            SAVE_CHANGES_ATTACHMENT => "RopSaveChangesAttachment",
            REGISTER_NOTIFICATION => "RopRegisterNotification",
            NOTIFY => "RopNotify",
            OPEN_STREAM => "RopOpenStream",
            READ_STREAM => "RopReadStream",
            WRITE_STREAM => "RopWriteStream",
            SET_STREAM_SIZE => "RopSetStreamSize",
            SUBMIT_MESSAGE => "RopSubmitMessage",
            MOVE_COPY_MESSAGES => "RopMoveCopyMessages",
            MOVE_FOLDER => "RopMoveFolder",
            COPY_FOLDER => "RopCopyFolder",
            GET_RULES_TABLE => "RopGetRulesTable",
            LONG_TERM_ID_FROM_ID => "RopLongTermIdFromId",
            ID_FROM_LONG_TERM_ID => "RopIdFromLongTermId",
            OPEN_EMBEDDED_MESSAGE => "RopOpenEmbeddedMessage",
            FAST_TRANSFER_SOURCE_COPY_MESSAGES => "RopFastTransferSourceCopyMessages",
            FAST_TRANSFER_SOURCE_COPY_FOLDER => "RopFastTransferSourceCopyFolder",
            FAST_TRANSFER_SOURCE_COPY_TO => "RopFastTransferSourceCopyTo",
            FAST_TRANSFER_SOURCE_GET_BUFFER => "RopFastTransferSourceGetBuffer",
            FIND_ROW => "RopFindRow",
            GET_NAMES_FROM_PROPERTY_IDS => "RopGetNamesFromPropertyIds",
            GET_PROPERTY_IDS_FROM_NAMES => "RopGetPropertyIdsFromNames",
            COMMIT_STREAM => "RopCommitStream",
            GET_STREAM_SIZE => "RopGetStreamSize",
            SET_READ_FLAGS => "RopSetReadFlags",
            FAST_TRANSFER_SOURCE_COPY_PROPERTIES => "RopFastTransferSourceCopyProperties",
            PENDING => "RopPending",
            SYNCHRONIZATION_CONFIGURE => "RopSynchronizationConfigure",
            SYNCHRONIZATION_IMPORT_MESSAGE_CHANGE => "RopSynchronizationImportMessageChange",
            SYNCHRONIZATION_IMPORT_HIERARCHY_CHANGE => "RopSynchronizationImportHierarchyChange",
            SYNCHRONIZATION_IMPORT_DELETES => "RopSynchronizationImportDeletes",
            SYNCHRONIZATION_UPLOAD_STATE_STREAM_BEGIN => "RopSynchronizationUploadStateStreamBegin",
            SYNCHRONIZATION_UPLOAD_STATE_STREAM_CONTINUE => {
                "RopSynchronizationUploadStateStreamContinue"
            }
            SYNCHRONIZATION_UPLOAD_STATE_STREAM_END => "RopSynchronizationUploadStateStreamEnd",
            SYNCHRONIZATION_IMPORT_MESSAGE_MOVE => "RopSynchronizationImportMessageMove",
            SYNCHRONIZATION_OPEN_COLLECTOR => "RopSynchronizationOpenCollector",
            GET_LOCAL_REPLICA_IDS => "RopGetLocalReplicaIds",
            SYNCHRONIZATION_IMPORT_READ_STATE_CHANGES => "RopSynchronizationImportReadStateChanges",
            SYNCHRONIZATION_GET_TRANSFER_STATE => "RopSynchronizationGetTransferState",
            HARD_DELETE_MESSAGES_AND_SUBFOLDERS => "RopHardDeleteMessagesAndSubfolders",
            HARD_DELETE_MESSAGES => "RopHardDeleteMessages",
            BACKOFF => "RopBackoff",
            LOGON => "RopLogon",
            BUFFER_TOO_SMALL => "RopBufferTooSmall",
            _ => "unknown ROP",
        }
    }
}

/// Common ReturnValue codes (MS-OXCDATA 2.4).
#[allow(missing_docs)]
pub mod error_code {
    pub const SUCCESS: u32 = 0;
    pub const NULL_OBJECT: u32 = 0x4B9;
    pub const RPC_FORMAT: u32 = 0x4B6;
    pub const WRONG_SERVER: u32 = 0x478;
    pub const BUFFER_TOO_SMALL: u32 = 0x47D;
    pub const SERVER_BUSY: u32 = 0x480;
    pub const DST_NULL_OBJECT: u32 = 0x503;
    pub const NOT_FOUND: u32 = 0x8004_010F;
    pub const NOT_SUPPORTED: u32 = 0x8004_0102;
    pub const OBJECT_MODIFIED: u32 = 0x8004_0109;
    pub const OBJECT_DELETED: u32 = 0x8004_010A;
    pub const ACCESS_DENIED: u32 = 0x8007_0005;
    pub const INVALID_PARAMETER: u32 = 0x8007_0057;
    pub const OUT_OF_MEMORY: u32 = 0x8007_000E;
    pub const LOGON_FAILED: u32 = 0x8004_0111;
    pub const UNKNOWN_USER: u32 = 0x3EB;
    pub const WARN_WITH_ERRORS: u32 = 0x0004_0380;
    pub const SYNC_IGNORE: u32 = 0x8004_0801;
    pub const SYNC_CONFLICT: u32 = 0x8004_0802;
}

/// Errors from decoding ROP buffers.
/// A ROP error serializes as its message.
impl serde::Serialize for RopError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RopError {
    /// A field was cut short or malformed.
    #[error(transparent)]
    Wire(#[from] PropError),
    /// An identifier inside a ROP was malformed.
    #[error(transparent)]
    Id(#[from] IdsError),
    /// A RopNotify body was malformed.
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// A RopId that this codec cannot decode. The bytes from that ROP to the end of the
    /// ROP list are kept, because the ROP's length is unknown.
    #[error(
        "unknown RopId 0x{rop_id:02X} at offset {offset}; {} bytes from there on were not decoded",
        bytes.len()
    )]
    UnknownRop {
        /// The RopId.
        rop_id: u8,
        /// Byte offset of the ROP.
        offset: usize,
        /// The undecoded bytes, starting after RopId and LogonId.
        bytes: Vec<u8>,
    },
    /// RopSize was smaller than 2 or larger than the buffer.
    #[error("invalid RopSize {rop_size} for a buffer of {buffer_len} bytes")]
    BadRopSize {
        /// The RopSize field.
        rop_size: usize,
        /// The buffer length.
        buffer_len: usize,
    },
    /// The bytes after the ROP list are not a whole number of 4-byte handles.
    #[error(
        "server object handle table of {len} bytes is not a multiple of 4; the RopSize field or the buffer length is wrong"
    )]
    BadHandleTable {
        /// Length of the bytes after the ROP list.
        len: usize,
    },
    /// A response did not match the request at the same position.
    #[error(
        "response at offset {offset} is {found} (0x{found_id:02X}) but the request at that position is {expected} (0x{expected_id:02X})"
    )]
    UnexpectedResponse {
        /// Byte offset of the response.
        offset: usize,
        /// RopId found.
        found_id: u8,
        /// Its name.
        found: &'static str,
        /// RopId of the request.
        expected_id: u8,
        /// Its name.
        expected: &'static str,
    },
    /// A row-carrying response on a table whose column set is unknown.
    #[error(
        "{rop} response at offset {offset} carries rows of handle index {handle_index}, whose column set is unknown; pass the SetColumns tags in the response context"
    )]
    MissingColumns {
        /// The ROP name.
        rop: &'static str,
        /// Byte offset of the response.
        offset: usize,
        /// The table's handle index.
        handle_index: u8,
    },
    /// A field is longer than its size or count field can state, so it cannot be
    /// encoded.
    #[error(
        "cannot encode {field}: {len} is over its maximum of {max}; split the data across several ROPs or buffers"
    )]
    TooLong {
        /// The field whose size or count would not fit.
        field: &'static str,
        /// The length or count of the value.
        len: usize,
        /// The largest length or count the field can carry.
        max: usize,
    },
    /// A RecipientRow to encode whose fields disagree with its RecipientFlags or with the
    /// recipient column set.
    #[error(
        "cannot encode RecipientRow with RecipientFlags 0x{flags:04X}: {problem}; make the flags, fields and column count agree"
    )]
    InvalidRecipientRow {
        /// The row's RecipientFlags.
        flags: u16,
        /// What disagrees.
        problem: &'static str,
    },
    /// Bytes were left inside the ROP list after the last response or request.
    #[error("{len} bytes left over at offset {offset} after the last ROP")]
    TrailingBytes {
        /// Byte offset of the leftover bytes.
        offset: usize,
        /// How many bytes were left.
        len: usize,
    },
}

/// A string whose width a flag of the ROP selects (UseUnicode fields).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum RopString {
    /// NUL-terminated UTF-16LE.
    Unicode(String),
    /// NUL-terminated 8-bit string in the connection's code page, without the NUL.
    String8(Vec<u8>),
}

impl RopString {
    fn decode(
        r: &mut Reader<'_>,
        unicode: bool,
        what: &'static str,
    ) -> Result<RopString, RopError> {
        Ok(if unicode {
            RopString::Unicode(decode_utf16(r.nul16(what)?))
        } else {
            RopString::String8(r.nul8(what)?.to_vec())
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            RopString::Unicode(text) => encode_utf16_nul(out, text),
            RopString::String8(bytes) => {
                out.put(bytes);
                out.put_u8(0);
            }
        }
    }
}

/// A ROP input or output buffer: the ROP list and the server object handle table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RopBuffer<T> {
    /// The ROPs in order.
    pub rops: Vec<T>,
    /// The server object handle table (0xFFFFFFFF marks an output slot in requests).
    pub handles: Vec<u32>,
}

/// Splits a ROP buffer into its ROP list (with its offset) and handle table.
///
/// # Errors
/// [`RopError::BadRopSize`] or [`RopError::BadHandleTable`] when the framing is wrong.
pub fn split_buffer(bytes: &[u8]) -> Result<(&[u8], Vec<u32>), RopError> {
    let mut r = Reader::new(bytes);
    let rop_size = usize::from(r.u16("RopSize")?);
    if rop_size < 2 || rop_size > bytes.len() {
        return Err(RopError::BadRopSize {
            rop_size,
            buffer_len: bytes.len(),
        });
    }
    let list = bytes.get(2..rop_size).unwrap_or_default();
    let table = bytes.get(rop_size..).unwrap_or_default();
    if table.len() % 4 != 0 {
        return Err(RopError::BadHandleTable { len: table.len() });
    }
    let handles = table
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    Ok((list, handles))
}

/// The largest RopsList: RopSize is 16 bits and counts its own 2 bytes as well as the
/// list (MS-OXCROPS 2.2.1), so RopSize 0xFFFF leaves 65,533 bytes for the list.
///
/// A ROP input buffer sent in one extended buffer must also fit the 32 KB payload limit
/// of MS-OXCRPC 3.1.4.2.1 ([`crate::ext::MAX_REQUEST_PAYLOAD`]). The session client
/// checks that limit when it splits a batch; this module does not.
pub const MAX_ROP_LIST_LEN: usize = u16::MAX as usize - 2;

/// Joins a ROP list and a handle table into a ROP buffer.
///
/// # Errors
/// [`RopError::TooLong`] when the list is longer than [`MAX_ROP_LIST_LEN`], because
/// its RopSize would not fit in 16 bits.
pub fn join_buffer(rop_list: &[u8], handles: &[u32]) -> Result<Vec<u8>, RopError> {
    let rop_size = writer::len_u16(rop_list.len() + 2, "RopSize")?;
    let mut out = Vec::with_capacity(2 + rop_list.len() + handles.len() * 4);
    out.put_u16(rop_size);
    out.put(rop_list);
    for handle in handles {
        out.put_u32(*handle);
    }
    Ok(out)
}

/// Decodes a ROP input buffer.
///
/// # Errors
/// [`RopError`] when the framing is wrong, a request is malformed or its RopId unknown.
pub fn decode_request_buffer(bytes: &[u8]) -> Result<RopBuffer<RopRequest>, RopError> {
    let (list, handles) = split_buffer(bytes)?;
    let mut r = Reader::with_base(list, 2);
    let mut rops = Vec::new();
    while !r.is_empty() {
        rops.push(RopRequest::decode(&mut r)?);
    }
    Ok(RopBuffer { rops, handles })
}

/// Encodes a ROP input buffer.
///
/// # Errors
/// [`RopError::TooLong`] when a field is longer than its size or count field allows, or
/// the ROP list is longer than [`MAX_ROP_LIST_LEN`].
pub fn try_encode_request_buffer(buffer: &RopBuffer<RopRequest>) -> Result<Vec<u8>, RopError> {
    let mut list = Vec::new();
    for rop in &buffer.rops {
        rop.try_encode(&mut list)?;
    }
    join_buffer(&list, &buffer.handles)
}

/// Encodes a ROP input buffer, returning an empty `Vec` where
/// [`try_encode_request_buffer`] fails. An empty buffer has no RopSize, so a server
/// rejects it instead of misreading a wrapped size. Prefer the `try_` form, whose error
/// names the field that was too long.
pub fn encode_request_buffer(buffer: &RopBuffer<RopRequest>) -> Vec<u8> {
    try_encode_request_buffer(buffer).unwrap_or_default()
}

/// Encodes a ROP output buffer.
///
/// # Errors
/// [`RopError::TooLong`] when a field is longer than its size or count field allows, or
/// the ROP list is longer than [`MAX_ROP_LIST_LEN`].
pub fn try_encode_response_buffer(buffer: &RopBuffer<RopResponse>) -> Result<Vec<u8>, RopError> {
    let mut list = Vec::new();
    for rop in &buffer.rops {
        rop.try_encode(&mut list)?;
    }
    join_buffer(&list, &buffer.handles)
}

/// Encodes a ROP output buffer, returning an empty `Vec` where
/// [`try_encode_response_buffer`] fails (see [`encode_request_buffer`]).
pub fn encode_response_buffer(buffer: &RopBuffer<RopResponse>) -> Vec<u8> {
    try_encode_response_buffer(buffer).unwrap_or_default()
}

/// A RopQueryRows response (MS-OXCROPS 2.2.5.4.2) whose rows are borrowed views of the
/// buffer, for reading large tables without an allocation per row or per string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRowsView<'a> {
    /// InputHandleIndex echoed from the request.
    pub handle_index: u8,
    /// ReturnValue. A failed response carries no Origin and no rows.
    pub return_value: u32,
    /// Origin (BOOKMARK_BEGINNING 0x00, CURRENT 0x01, END 0x02).
    pub origin: u8,
    /// The rows, over the table's column set.
    pub rows: Vec<RowView<'a>>,
}

/// Decodes one RopQueryRows response at the start of `r` as borrowed row views over
/// `columns`, the table's column set.
///
/// # Errors
/// [`RopError::UnexpectedResponse`] when the entry is not a RopQueryRows response,
/// [`RopError::Wire`] when a field or row is cut short or malformed.
pub fn decode_query_rows_view<'a>(
    r: &mut Reader<'a>,
    columns: &'a [PropTag],
) -> Result<QueryRowsView<'a>, RopError> {
    let offset = r.offset();
    let id = r.u8("RopId")?;
    if id != rop_id::QUERY_ROWS {
        return Err(RopError::UnexpectedResponse {
            offset,
            found_id: id,
            found: rop_id::name(id),
            expected_id: rop_id::QUERY_ROWS,
            expected: rop_id::name(rop_id::QUERY_ROWS),
        });
    }
    let handle_index = r.u8("InputHandleIndex")?;
    let return_value = r.u32("ReturnValue")?;
    if return_value != error_code::SUCCESS {
        return Ok(QueryRowsView {
            handle_index,
            return_value,
            origin: 0,
            rows: Vec::new(),
        });
    }
    let origin = r.u8("Origin")?;
    let count = usize::from(r.u16("RowCount")?);
    let rows = decode_row_views(r, count, columns)?;
    Ok(QueryRowsView {
        handle_index,
        return_value,
        origin,
        rows,
    })
}

/// What the response decoder needs to know besides the bytes.
#[derive(Debug, Clone, Default)]
pub struct ResponseContext<'a> {
    /// The requests of the batch, in order.
    pub requests: &'a [RopRequest],
    /// Column sets of tables whose RopSetColumns was in an earlier batch, by the handle
    /// index the table has in this batch.
    pub columns: HashMap<u8, Vec<PropTag>>,
}

/// Decodes a ROP output buffer with the requests it answers.
///
/// Responses follow the requests in order, without one for RopRelease; server-only ROPs
/// (RopNotify, RopPending, RopBackoff, RopBufferTooSmall) may follow them. Column sets
/// are taken from RopSetColumns requests earlier in the batch, then from
/// `context.columns`.
///
/// # Errors
/// [`RopError`] when the framing is wrong, a response does not match its request, a
/// table's columns are unknown or a field is malformed.
pub fn decode_response_buffer(
    bytes: &[u8],
    context: &ResponseContext<'_>,
) -> Result<RopBuffer<RopResponse>, RopError> {
    let (list, handles) = split_buffer(bytes)?;
    let mut r = Reader::with_base(list, 2);
    let rops = decode_response_list(&mut r, context)?;
    Ok(RopBuffer { rops, handles })
}

/// Decodes a ROP list (without RopSize and handle table) with its requests.
///
/// # Errors
/// See [`decode_response_buffer`].
pub fn decode_response_list(
    r: &mut Reader<'_>,
    context: &ResponseContext<'_>,
) -> Result<Vec<RopResponse>, RopError> {
    let mut columns = context.columns.clone();
    let mut rops = Vec::new();
    let mut pending = context
        .requests
        .iter()
        .filter(|q| q.has_response())
        .peekable();
    // SetColumns requests apply in request order, including to later QueryRows.
    let mut requests_seen = context.requests.iter();

    while !r.is_empty() {
        let offset = r.offset();
        let id = r.rest().first().copied().unwrap_or_default();
        if let Some(request) = pending.peek().copied() {
            if id == request.rop_id() {
                for earlier in requests_seen.by_ref() {
                    if let RopRequest::SetColumns {
                        input_handle, tags, ..
                    } = earlier
                    {
                        columns.insert(*input_handle, tags.clone());
                    }
                    if std::ptr::eq(earlier, request) {
                        break;
                    }
                }
                let table_columns = columns.get(&request.response_handle_index());
                rops.push(RopResponse::decode(
                    r,
                    Some(request),
                    table_columns.map(Vec::as_slice),
                )?);
                pending.next();
                continue;
            }
            if !is_server_only(id) {
                return Err(RopError::UnexpectedResponse {
                    offset,
                    found_id: id,
                    found: rop_id::name(id),
                    expected_id: request.rop_id(),
                    expected: rop_id::name(request.rop_id()),
                });
            }
        }
        let response = RopResponse::decode(r, None, None)?;
        let stop = matches!(response, RopResponse::BufferTooSmall { .. });
        rops.push(response);
        if stop {
            break;
        }
    }
    Ok(rops)
}

fn is_server_only(id: u8) -> bool {
    matches!(
        id,
        rop_id::NOTIFY | rop_id::PENDING | rop_id::BACKOFF | rop_id::BUFFER_TOO_SMALL
    )
}

/// Why a context-free decode stopped.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PartialStop {
    /// Byte offset of the ROP that could not be decoded.
    pub offset: usize,
    /// Its RopId.
    pub rop_id: u8,
    /// The error (for rows without a known column set, [`RopError::MissingColumns`]).
    pub error: RopError,
}

/// The result of decoding a ROP output buffer without its requests.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PartialResponses {
    /// The responses decoded before the first one that needed context or was malformed.
    pub rops: Vec<RopResponse>,
    /// The handle table, when the framing was valid.
    pub handles: Vec<u32>,
    /// Where and why decoding stopped; `None` when the whole list was decoded.
    pub stopped: Option<PartialStop>,
}

/// Decodes a ROP output buffer without its requests, as far as the bytes allow: every
/// response whose layout its RopId and ReturnValue determine is decoded, and decoding
/// stops at the first response that carries rows of an unknown column set.
///
/// # Errors
/// [`RopError`] only when the RopSize framing itself is invalid.
pub fn decode_response_buffer_partial(bytes: &[u8]) -> Result<PartialResponses, RopError> {
    let (list, handles) = split_buffer(bytes)?;
    let mut r = Reader::with_base(list, 2);
    let (rops, stopped) = decode_response_list_partial(&mut r);
    Ok(PartialResponses {
        rops,
        handles,
        stopped,
    })
}

/// Decodes a bare ROP list (no RopSize) without requests, as far as the bytes allow.
pub fn decode_response_list_partial(r: &mut Reader<'_>) -> (Vec<RopResponse>, Option<PartialStop>) {
    let mut rops = Vec::new();
    while !r.is_empty() {
        let offset = r.offset();
        let id = r.rest().first().copied().unwrap_or_default();
        let mut attempt = r.clone();
        match RopResponse::decode(&mut attempt, None, None) {
            Ok(response) => {
                *r = attempt;
                rops.push(response);
            }
            Err(error) => {
                return (
                    rops,
                    Some(PartialStop {
                        offset,
                        rop_id: id,
                        error,
                    }),
                );
            }
        }
    }
    (rops, None)
}
