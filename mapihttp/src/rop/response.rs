//! ROP responses (MS-OXCROPS 2.2.2 to 2.2.15): `RopId u8 | handle index u8 |
//! ReturnValue u32 | fields`, where a failed ROP carries no fields except the documented
//! exceptions, and the server-only ROPs that follow the responses.

use super::writer::{Put, len_u8, len_u16};
use super::{RecipientRow, RopError, RopRequest, error_code, rop_id};
use crate::ids::{GlobCnt, Guid, LongTermId, ObjectId};
use crate::notify::Notification;
use crate::prop::{
    PropTag, PropertyName, PropertyRow, Reader, TaggedValue, ValueEncoding, decode_tag_array,
    decode_tagged_values, decode_utf16, encode_utf16_nul, try_encode_tag_array,
};

/// A string of RopOpenMessage with its own type byte (TypedString, MS-OXCDATA 2.11.7).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum TypedString {
    /// 0x00: no string.
    Absent,
    /// 0x01: an empty string.
    Empty,
    /// 0x02: NUL-terminated 8-bit string (without the NUL).
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    String8(Vec<u8>),
    /// 0x03: "reduced Unicode", 8-bit characters that are the low bytes of UTF-16 units.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    Reduced(Vec<u8>),
    /// 0x04: NUL-terminated UTF-16LE string.
    Unicode(String),
}

impl TypedString {
    fn decode(r: &mut Reader<'_>) -> Result<TypedString, RopError> {
        let offset = r.offset();
        Ok(match r.u8("StringType")? {
            0x00 => TypedString::Absent,
            0x01 => TypedString::Empty,
            0x02 => TypedString::String8(r.nul8("TypedString")?.to_vec()),
            0x03 => TypedString::Reduced(r.nul8("TypedString")?.to_vec()),
            0x04 => TypedString::Unicode(decode_utf16(r.nul16("TypedString")?)),
            other => {
                return Err(crate::prop::PropError::InvalidValue {
                    what: "StringType",
                    value: u64::from(other),
                    offset,
                }
                .into());
            }
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            TypedString::Absent => out.put_u8(0x00),
            TypedString::Empty => out.put_u8(0x01),
            TypedString::String8(bytes) | TypedString::Reduced(bytes) => {
                out.put_u8(if matches!(self, TypedString::String8(_)) {
                    0x02
                } else {
                    0x03
                });
                out.put(bytes);
                out.put_u8(0);
            }
            TypedString::Unicode(text) => {
                out.put_u8(0x04);
                encode_utf16_nul(out, text);
            }
        }
    }
}

/// The success response of a private-mailbox RopLogon (MS-OXCROPS 2.2.3.1.3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogonResponse {
    /// LogonFlags (0x01 Private).
    pub logon_flags: u8,
    /// The 13 special folder ids: root, deferred action, spooler queue, IPM subtree,
    /// inbox, outbox, sent items, deleted items, common views, schedule, search, views,
    /// shortcuts.
    pub folder_ids: [ObjectId; 13],
    /// ResponseFlags (0x01 reserved, 0x02 OwnerRight, 0x04 SendAsRight, 0x10 OOF).
    pub response_flags: u8,
    /// The mailbox GUID.
    pub mailbox_guid: Guid,
    /// The logon's replica id. A real server used another REPLID in all FIDs and MIDs, so
    /// resolve id mappings with RopLongTermIdFromId instead of trusting this pair.
    pub repl_id: u16,
    /// The replica GUID paired with `repl_id`.
    pub repl_guid: Guid,
    /// LogonTime: seconds, minutes, hour, day of week, day, month, then year.
    pub logon_time: [u8; 6],
    /// LogonTime year.
    pub logon_year: u16,
    /// GwartTime, a FILETIME.
    pub gwart_time: u64,
    /// StoreState.
    pub store_state: u32,
}

/// Ghost information of RopOpenFolder and RopCreateFolder (public folders).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GhostInfo {
    /// CheapServerCount.
    pub cheap_server_count: u16,
    /// Server names (NUL-terminated on the wire, stored without the NUL).
    pub servers: Vec<Vec<u8>>,
}

/// A recipient row of RopOpenMessage (OpenRecipientRow, MS-OXCROPS 2.2.6.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenRecipientRow {
    /// RecipientType.
    pub recipient_type: u8,
    /// CodePageId.
    pub code_page_id: u16,
    /// Reserved.
    pub reserved: u16,
    /// The RecipientRow (MS-OXCDATA 2.8.3) as bytes. Decode it with
    /// [`OpenRecipientRow::recipient`].
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub recipient_row: Vec<u8>,
}

impl OpenRecipientRow {
    /// Decodes the RecipientRow over the response's RecipientColumns. Error offsets
    /// count from the start of the RecipientRow.
    ///
    /// # Errors
    /// See [`RecipientRow::decode`].
    pub fn recipient(&self, columns: &[PropTag]) -> Result<RecipientRow, RopError> {
        RecipientRow::decode(&self.recipient_row, columns, 0)
    }
}

/// A recipient row of RopReadRecipients (ReadRecipientRow, MS-OXCROPS 2.2.6.6.2.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReadRecipientRow {
    /// RowId.
    pub row_id: u32,
    /// RecipientType.
    pub recipient_type: u8,
    /// CodePageId.
    pub code_page_id: u16,
    /// Reserved.
    pub reserved: u16,
    /// The RecipientRow (MS-OXCDATA 2.8.3) as bytes. Decode it with
    /// [`ReadRecipientRow::recipient`].
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub recipient_row: Vec<u8>,
}

impl ReadRecipientRow {
    /// Decodes the RecipientRow over the RecipientColumns of the RopOpenMessage response
    /// that opened the message, because RopReadRecipients does not repeat them. Error
    /// offsets count from the start of the RecipientRow.
    ///
    /// # Errors
    /// See [`RecipientRow::decode`].
    pub fn recipient(&self, columns: &[PropTag]) -> Result<RecipientRow, RopError> {
        RecipientRow::decode(&self.recipient_row, columns, 0)
    }
}

/// The success response of RopOpenMessage (MS-OXCROPS 2.2.6.1.2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenMessageResponse {
    /// HasNamedProperties.
    pub has_named_properties: bool,
    /// SubjectPrefix.
    pub subject_prefix: TypedString,
    /// NormalizedSubject.
    pub normalized_subject: TypedString,
    /// RecipientCount: all recipients, of which `recipient_rows` may hold only the first.
    pub recipient_count: u16,
    /// RecipientColumns.
    pub recipient_columns: Vec<PropTag>,
    /// RecipientRows.
    pub recipient_rows: Vec<OpenRecipientRow>,
}

/// A problem reported by RopSetProperties or RopDeleteProperties (PropertyProblem,
/// MS-OXCDATA 2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PropertyProblem {
    /// Index of the property in the request.
    pub index: u16,
    /// The property tag.
    pub tag: PropTag,
    /// The error code.
    pub error_code: u32,
}

/// One entry of RopBackoff's BackoffRopData (BackoffRop, MS-OXCROPS 2.2.15.2.1.1):
/// `RopIdBackoff u8 | Duration u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BackoffRop {
    /// RopIdBackoff: the ROP whose requests the client delays.
    pub rop_id: u8,
    /// Delay in milliseconds.
    pub duration: u32,
}

/// RopBackoff (0xF9, MS-OXCROPS 2.2.15.2.1): `RopId | LogonId u8 | Duration u32 |
/// BackoffRopCount u8 | BackoffRop × BackoffRopCount | AdditionalDataSize u16 |
/// AdditionalData`.
///
/// It may stand anywhere in the ROP list. The response of the delayed ROP and all
/// responses after it are missing from the buffer, and a BackoffRopCount of 0 delays
/// every ROP of the logon (MS-OXCROPS 3.1.5.1.1).
//
// The search tool's copy of MS-OXCROPS lacks the field table of 2.2.15.2.1, so the
// layout was checked against Microsoft's MAPI Inspector parser (RopBackoffResponse and
// BackoffRop), which reads these fields in this order and width.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Backoff {
    /// LogonId: the logon whose requests the client delays.
    pub logon_id: u8,
    /// Delay for the whole logon in milliseconds.
    pub duration: u32,
    /// BackoffRopData: per-ROP delays; empty means every ROP of the logon.
    pub rops: Vec<BackoffRop>,
    /// AdditionalData, opaque.
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub additional_data: Vec<u8>,
}

/// The public-folder part of a RopSetMessageReadFlag response (MS-OXCROPS 2.2.6.11.2),
/// present when ReadStatusChanged is nonzero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ReadStatusChange {
    /// LogonId of the public-folder logon.
    pub logon_id: u8,
    /// ClientData: the per-user read state data, 24 bytes.
    pub client_data: [u8; 24],
}

/// The fields of a response after ReturnValue.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
#[allow(missing_docs)] // Field names follow MS-OXCROPS; each variant documents its ROPs.
pub enum ResponseBody {
    /// No fields: a failed ROP, or a ROP whose success response has none.
    Empty,
    /// RopLogon, private mailbox.
    Logon(Box<LogonResponse>),
    /// RopLogon, public folders (MS-OXCROPS 2.2.3.1.4).
    LogonPublic {
        logon_flags: u8,
        folder_ids: [ObjectId; 13],
        repl_id: u16,
        repl_guid: Guid,
        per_user_guid: Guid,
    },
    /// RopLogon failed with 0x478 (wrong server): the server to use.
    LogonRedirect {
        logon_flags: u8,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        server_name: Vec<u8>,
    },
    /// RopOpenFolder.
    OpenFolder {
        has_rules: bool,
        ghost: Option<GhostInfo>,
    },
    /// RopOpenMessage.
    OpenMessage(Box<OpenMessageResponse>),
    /// RopOpenEmbeddedMessage: Reserved, MessageId, then the RopOpenMessage fields.
    OpenEmbeddedMessage {
        reserved: u8,
        message_id: ObjectId,
        message: Box<OpenMessageResponse>,
    },
    /// RopGetHierarchyTable, RopGetContentsTable.
    RowCount(u32),
    /// RopCreateMessage.
    CreateMessage { message_id: Option<ObjectId> },
    /// RopGetPropertiesSpecific: one row over the requested tags.
    PropertyRow(PropertyRow),
    /// RopGetPropertiesAll.
    PropertyValues(Vec<TaggedValue>),
    /// RopGetPropertiesList.
    PropertyTags(Vec<PropTag>),
    /// RopSetProperties, RopDeleteProperties.
    PropertyProblems(Vec<PropertyProblem>),
    /// RopSaveChangesMessage.
    SaveChangesMessage {
        input_handle: u8,
        message_id: ObjectId,
    },
    /// RopReadRecipients.
    ReadRecipients(Vec<ReadRecipientRow>),
    /// RopSetMessageReadFlag: `Some` when ReadStatusChanged is nonzero, which a server
    /// sends only for public-folder logons.
    MessageReadFlag { changed: Option<ReadStatusChange> },
    /// RopSetColumns, RopSortTable, RopRestrict (0 = TBLSTAT_COMPLETE).
    TableStatus(u8),
    /// RopQueryRows.
    QueryRows { origin: u8, rows: Vec<PropertyRow> },
    /// RopSeekRow.
    SeekRow {
        has_sought_less: bool,
        rows_sought: i32,
    },
    /// RopCreateFolder; `existing` is present when IsExistingFolder was set.
    CreateFolder {
        folder_id: ObjectId,
        existing: Option<(bool, Option<GhostInfo>)>,
    },
    /// RopDeleteFolder, RopDeleteMessages, RopHardDeleteMessages,
    /// RopHardDeleteMessagesAndSubfolders, RopSetReadFlags, RopMoveCopyMessages,
    /// RopMoveFolder, RopCopyFolder (present on failure too).
    PartialCompletion(bool),
    /// RopMoveCopyMessages, RopMoveFolder, RopCopyFolder failed with 0x503 (null
    /// destination object).
    NullDestination {
        destination_handle: u32,
        partial_completion: bool,
    },
    /// RopCreateAttachment.
    AttachmentId(u32),
    /// RopOpenStream, RopGetStreamSize.
    StreamSize(u32),
    /// RopReadStream.
    ReadStream { data: Vec<u8> },
    /// RopWriteStream.
    WrittenSize(u16),
    /// RopLongTermIdFromId.
    LongTermId(LongTermId),
    /// RopIdFromLongTermId, RopSynchronizationImportMessageChange,
    /// RopSynchronizationImportHierarchyChange, RopSynchronizationImportMessageMove.
    ObjectId(ObjectId),
    /// RopFastTransferSourceGetBuffer (status 0 Error, 1 Partial, 2 NoRoom, 3 Done).
    FastTransferBuffer {
        transfer_status: u16,
        in_progress_count: u16,
        total_step_count: u16,
        reserved: u8,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        transfer_buffer: Vec<u8>,
    },
    /// RopFastTransferSourceGetBuffer failed with 0x480 (server busy): wait this many
    /// milliseconds.
    BackoffTime(u32),
    /// RopFindRow.
    FindRow {
        row_no_longer_visible: bool,
        row: Option<PropertyRow>,
    },
    /// RopGetNamesFromPropertyIds.
    PropertyNames(Vec<PropertyName>),
    /// RopGetPropertyIdsFromNames (also with the warning 0x00040380).
    PropertyIds(Vec<u16>),
    /// RopGetLocalReplicaIds: the replica GUID and the first reserved counter.
    LocalReplicaIds {
        repl_guid: Guid,
        global_count: GlobCnt,
    },
}

/// An ordinary ROP response.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RopResult {
    /// The RopId.
    pub rop_id: u8,
    /// The handle index the response echoes (per ROP: input, output, response or source).
    pub handle_index: u8,
    /// ReturnValue (0 is success).
    pub return_value: u32,
    /// The fields after ReturnValue.
    pub body: ResponseBody,
}

/// One entry of a ROP output buffer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub enum RopResponse {
    /// The response to a request.
    Result(RopResult),
    /// RopNotify (0x2A, MS-OXCROPS 2.2.14.2).
    Notify {
        /// The subscription or table handle the event is for (a server handle value).
        notification_handle: u32,
        /// LogonId.
        logon_id: u8,
        /// The event.
        data: Notification,
    },
    /// RopPending (0x6E, MS-OXCROPS 2.2.14.3): the session context with queued
    /// notifications.
    Pending {
        /// SessionIndex.
        session_index: u16,
    },
    /// RopBackoff (0xF9, MS-OXCROPS 2.2.15.2): a request from the server to delay
    /// requests.
    Backoff(Backoff),
    /// RopBufferTooSmall (0xFF, MS-OXCROPS 2.2.15.1): the output buffer was full; the
    /// unprocessed requests follow.
    BufferTooSmall {
        /// SizeNeeded.
        size_needed: u16,
        /// The request ROPs to send again, raw.
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        request_buffers: Vec<u8>,
    },
}

fn read_ghost(r: &mut Reader<'_>) -> Result<GhostInfo, RopError> {
    let server_count = usize::from(r.u16("ServerCount")?);
    let cheap_server_count = r.u16("CheapServerCount")?;
    r.check_count(server_count, 1, "servers")?;
    let mut servers = Vec::with_capacity(server_count);
    for _ in 0..server_count {
        servers.push(r.nul8("Servers")?.to_vec());
    }
    Ok(GhostInfo {
        cheap_server_count,
        servers,
    })
}

fn put_ghost(out: &mut Vec<u8>, ghost: &GhostInfo) -> Result<(), RopError> {
    out.put_u16(len_u16(ghost.servers.len(), "ServerCount")?);
    out.put_u16(ghost.cheap_server_count);
    for server in &ghost.servers {
        out.put(server);
        out.put_u8(0);
    }
    Ok(())
}

fn read_open_message(r: &mut Reader<'_>) -> Result<OpenMessageResponse, RopError> {
    let has_named_properties = r.u8("HasNamedProperties")? != 0;
    let subject_prefix = TypedString::decode(r)?;
    let normalized_subject = TypedString::decode(r)?;
    let recipient_count = r.u16("RecipientCount")?;
    let recipient_columns = decode_tag_array(r)?;
    let row_count = usize::from(r.u8("RowCount")?);
    r.check_count(row_count, 7, "recipient rows")?;
    let mut recipient_rows = Vec::with_capacity(row_count);
    for _ in 0..row_count {
        let recipient_type = r.u8("RecipientType")?;
        let code_page_id = r.u16("CodePageId")?;
        let reserved = r.u16("Reserved")?;
        let size = usize::from(r.u16("RecipientRowSize")?);
        let recipient_row = r.take(size, "RecipientRow")?.to_vec();
        recipient_rows.push(OpenRecipientRow {
            recipient_type,
            code_page_id,
            reserved,
            recipient_row,
        });
    }
    Ok(OpenMessageResponse {
        has_named_properties,
        subject_prefix,
        normalized_subject,
        recipient_count,
        recipient_columns,
        recipient_rows,
    })
}

fn put_open_message(out: &mut Vec<u8>, message: &OpenMessageResponse) -> Result<(), RopError> {
    out.put_u8(u8::from(message.has_named_properties));
    message.subject_prefix.encode(out);
    message.normalized_subject.encode(out);
    out.put_u16(message.recipient_count);
    try_encode_tag_array(out, &message.recipient_columns)?;
    out.put_u8(len_u8(message.recipient_rows.len(), "RowCount")?);
    for row in &message.recipient_rows {
        out.put_u8(row.recipient_type);
        out.put_u16(row.code_page_id);
        out.put_u16(row.reserved);
        out.put_u16(len_u16(row.recipient_row.len(), "RecipientRowSize")?);
        out.put(&row.recipient_row);
    }
    Ok(())
}

fn read_folder_ids(r: &mut Reader<'_>) -> Result<[ObjectId; 13], RopError> {
    let mut ids = [ObjectId(0); 13];
    for id in &mut ids {
        *id = ObjectId(r.u64("FolderIds")?);
    }
    Ok(ids)
}

fn read_rows(
    r: &mut Reader<'_>,
    count: usize,
    columns: &[PropTag],
) -> Result<Vec<PropertyRow>, RopError> {
    r.check_count(count, 1, "rows")?;
    let mut rows = Vec::with_capacity(count);
    for _ in 0..count {
        rows.push(PropertyRow::decode(r, columns)?);
    }
    Ok(rows)
}

fn read_problems(r: &mut Reader<'_>) -> Result<Vec<PropertyProblem>, RopError> {
    let count = usize::from(r.u16("PropertyProblemCount")?);
    r.check_count(count, 10, "property problems")?;
    let mut problems = Vec::with_capacity(count);
    for _ in 0..count {
        problems.push(PropertyProblem {
            index: r.u16("PropertyProblem Index")?,
            tag: PropTag(r.u32("PropertyProblem PropertyTag")?),
            error_code: r.u32("PropertyProblem ErrorCode")?,
        });
    }
    Ok(problems)
}

impl RopResponse {
    /// Decodes one entry of a ROP output buffer. `request` is the request it answers
    /// (`None` decodes by RopId alone); `columns` is the column set of the table for
    /// RopQueryRows and RopFindRow (for RopGetPropertiesSpecific the request's tags are
    /// used).
    ///
    /// # Errors
    /// [`RopError::MissingColumns`] when rows need a column set that is not given,
    /// [`RopError::UnknownRop`] for an unknown RopId, [`RopError::Wire`] when a field is
    /// cut short or malformed.
    pub fn decode(
        r: &mut Reader<'_>,
        request: Option<&RopRequest>,
        columns: Option<&[PropTag]>,
    ) -> Result<RopResponse, RopError> {
        let offset = r.offset();
        let id = r.u8("RopId")?;
        match id {
            rop_id::NOTIFY => {
                let notification_handle = r.u32("NotificationHandle")?;
                let logon_id = r.u8("LogonId")?;
                let data = Notification::decode(r)?;
                return Ok(RopResponse::Notify {
                    notification_handle,
                    logon_id,
                    data,
                });
            }
            rop_id::PENDING => {
                return Ok(RopResponse::Pending {
                    session_index: r.u16("SessionIndex")?,
                });
            }
            rop_id::BUFFER_TOO_SMALL => {
                let size_needed = r.u16("SizeNeeded")?;
                let request_buffers = r.take(r.remaining(), "RequestBuffers")?.to_vec();
                return Ok(RopResponse::BufferTooSmall {
                    size_needed,
                    request_buffers,
                });
            }
            rop_id::BACKOFF => {
                let logon_id = r.u8("LogonId")?;
                let duration = r.u32("Duration")?;
                let count = usize::from(r.u8("BackoffRopCount")?);
                r.check_count(count, 5, "BackoffRopData")?;
                let mut rops = Vec::with_capacity(count);
                for _ in 0..count {
                    rops.push(BackoffRop {
                        rop_id: r.u8("RopIdBackoff")?,
                        duration: r.u32("Duration")?,
                    });
                }
                let size = usize::from(r.u16("AdditionalDataSize")?);
                let additional_data = r.take(size, "AdditionalData")?.to_vec();
                return Ok(RopResponse::Backoff(Backoff {
                    logon_id,
                    duration,
                    rops,
                    additional_data,
                }));
            }
            _ => {}
        }
        if !rop_id::is_known_request(id) || id == rop_id::RELEASE {
            return Err(RopError::UnknownRop {
                rop_id: id,
                offset,
                bytes: r.rest().to_vec(),
            });
        }
        let handle_index = r.u8("handle index")?;
        let return_value = r.u32("ReturnValue")?;
        let body = decode_body(r, id, return_value, handle_index, offset, request, columns)?;
        Ok(RopResponse::Result(RopResult {
            rop_id: id,
            handle_index,
            return_value,
            body,
        }))
    }

    /// Appends the encoding of this entry, or nothing when [`RopResponse::try_encode`]
    /// fails (a field too long for its size field).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        if self.try_encode(out).is_err() {
            out.truncate(start);
        }
    }

    /// Appends the encoding of this entry.
    ///
    /// # Errors
    /// [`RopError::TooLong`] or [`RopError::Wire`] when a length or count does not fit its
    /// wire field. `out` may then hold part of the entry; truncate it to its old length.
    pub fn try_encode(&self, out: &mut Vec<u8>) -> Result<(), RopError> {
        match self {
            RopResponse::Result(result) => {
                out.put_u8(result.rop_id);
                out.put_u8(result.handle_index);
                out.put_u32(result.return_value);
                encode_body(out, &result.body)?;
            }
            RopResponse::Notify {
                notification_handle,
                logon_id,
                data,
            } => {
                out.put_u8(rop_id::NOTIFY);
                out.put_u32(*notification_handle);
                out.put_u8(*logon_id);
                data.try_encode(out)?;
            }
            RopResponse::Pending { session_index } => {
                out.put_u8(rop_id::PENDING);
                out.put_u16(*session_index);
            }
            RopResponse::Backoff(backoff) => {
                out.put_u8(rop_id::BACKOFF);
                out.put_u8(backoff.logon_id);
                out.put_u32(backoff.duration);
                out.put_u8(len_u8(backoff.rops.len(), "BackoffRopCount")?);
                for rop in &backoff.rops {
                    out.put_u8(rop.rop_id);
                    out.put_u32(rop.duration);
                }
                out.put_u16(len_u16(
                    backoff.additional_data.len(),
                    "AdditionalDataSize",
                )?);
                out.put(&backoff.additional_data);
            }
            RopResponse::BufferTooSmall {
                size_needed,
                request_buffers,
            } => {
                out.put_u8(rop_id::BUFFER_TOO_SMALL);
                out.put_u16(*size_needed);
                out.put(request_buffers);
            }
        }
        Ok(())
    }

    /// Returns the ordinary response, if this is one.
    pub fn as_result(&self) -> Option<&RopResult> {
        match self {
            RopResponse::Result(result) => Some(result),
            _ => None,
        }
    }
}

fn decode_body(
    r: &mut Reader<'_>,
    id: u8,
    return_value: u32,
    handle_index: u8,
    offset: usize,
    request: Option<&RopRequest>,
    columns: Option<&[PropTag]>,
) -> Result<ResponseBody, RopError> {
    use ResponseBody as B;
    let ok = return_value == error_code::SUCCESS;

    // Failure responses that still carry fields (MS-OXCROPS per-ROP failure buffers).
    match id {
        rop_id::LOGON if return_value == error_code::WRONG_SERVER => {
            let logon_flags = r.u8("LogonFlags")?;
            let size = usize::from(r.u8("ServerNameSize")?);
            let raw = r.take(size, "ServerName")?;
            let server_name = raw.strip_suffix(&[0]).unwrap_or(raw).to_vec();
            return Ok(B::LogonRedirect {
                logon_flags,
                server_name,
            });
        }
        rop_id::MOVE_COPY_MESSAGES | rop_id::MOVE_FOLDER | rop_id::COPY_FOLDER => {
            if return_value == error_code::DST_NULL_OBJECT {
                return Ok(B::NullDestination {
                    destination_handle: r.u32("DestHandleIndex")?,
                    partial_completion: r.u8("PartialCompletion")? != 0,
                });
            }
            return Ok(B::PartialCompletion(r.u8("PartialCompletion")? != 0));
        }
        rop_id::DELETE_MESSAGES
        | rop_id::HARD_DELETE_MESSAGES
        | rop_id::HARD_DELETE_MESSAGES_AND_SUBFOLDERS
        | rop_id::SET_READ_FLAGS
        | rop_id::DELETE_FOLDER => {
            return Ok(B::PartialCompletion(r.u8("PartialCompletion")? != 0));
        }
        rop_id::GET_PROPERTY_IDS_FROM_NAMES
            if ok || return_value == error_code::WARN_WITH_ERRORS =>
        {
            let count = usize::from(r.u16("PropertyIdCount")?);
            r.check_count(count, 2, "property ids")?;
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(r.u16("PropertyId")?);
            }
            return Ok(B::PropertyIds(ids));
        }
        // The status fields are present for every ReturnValue but 0x480, which carries
        // BackoffTime instead: MS-OXCFXICS 2.2.3.1.1.5.2 defines TransferStatus Error as
        // "ReturnValue contains a code for that error", and gromox and OpenChange keep
        // the fields on failure.
        rop_id::FAST_TRANSFER_SOURCE_GET_BUFFER => {
            if return_value == error_code::SERVER_BUSY {
                return Ok(B::BackoffTime(r.u32("BackoffTime")?));
            }
            let transfer_status = r.u16("TransferStatus")?;
            let in_progress_count = r.u16("InProgressCount")?;
            let total_step_count = r.u16("TotalStepCount")?;
            let reserved = r.u8("Reserved")?;
            let size = usize::from(r.u16("TransferBufferSize")?);
            let transfer_buffer = r.take(size, "TransferBuffer")?.to_vec();
            return Ok(B::FastTransferBuffer {
                transfer_status,
                in_progress_count,
                total_step_count,
                reserved,
                transfer_buffer,
            });
        }
        _ => {}
    }
    if !ok {
        return Ok(B::Empty);
    }

    let missing_columns = || RopError::MissingColumns {
        rop: rop_id::name(id),
        offset,
        handle_index,
    };

    let body = match id {
        rop_id::LOGON => {
            let logon_flags = r.u8("LogonFlags")?;
            let folder_ids = read_folder_ids(r)?;
            if logon_flags & 0x01 != 0 {
                let response_flags = r.u8("ResponseFlags")?;
                let mailbox_guid = Guid(r.array("MailboxGuid")?);
                let repl_id = r.u16("ReplId")?;
                let repl_guid = Guid(r.array("ReplGuid")?);
                let logon_time = r.array("LogonTime")?;
                let logon_year = r.u16("LogonTime Year")?;
                let gwart_time = r.u64("GwartTime")?;
                let store_state = r.u32("StoreState")?;
                B::Logon(Box::new(LogonResponse {
                    logon_flags,
                    folder_ids,
                    response_flags,
                    mailbox_guid,
                    repl_id,
                    repl_guid,
                    logon_time,
                    logon_year,
                    gwart_time,
                    store_state,
                }))
            } else {
                B::LogonPublic {
                    logon_flags,
                    folder_ids,
                    repl_id: r.u16("ReplId")?,
                    repl_guid: Guid(r.array("ReplGuid")?),
                    per_user_guid: Guid(r.array("PerUserGuid")?),
                }
            }
        }
        rop_id::OPEN_FOLDER => {
            let has_rules = r.u8("HasRules")? != 0;
            let ghosted = r.u8("IsGhosted")? != 0;
            let ghost = if ghosted { Some(read_ghost(r)?) } else { None };
            B::OpenFolder { has_rules, ghost }
        }
        rop_id::OPEN_MESSAGE => B::OpenMessage(Box::new(read_open_message(r)?)),
        rop_id::OPEN_EMBEDDED_MESSAGE => B::OpenEmbeddedMessage {
            reserved: r.u8("Reserved")?,
            message_id: ObjectId(r.u64("MessageId")?),
            message: Box::new(read_open_message(r)?),
        },
        rop_id::GET_HIERARCHY_TABLE | rop_id::GET_CONTENTS_TABLE => B::RowCount(r.u32("RowCount")?),
        rop_id::CREATE_MESSAGE => {
            let has_id = r.u8("HasMessageId")? != 0;
            let message_id = if has_id {
                Some(ObjectId(r.u64("MessageId")?))
            } else {
                None
            };
            B::CreateMessage { message_id }
        }
        rop_id::GET_PROPERTIES_SPECIFIC => {
            let Some(RopRequest::GetPropertiesSpecific { tags, .. }) = request else {
                return Err(missing_columns());
            };
            B::PropertyRow(PropertyRow::decode(r, tags)?)
        }
        rop_id::GET_PROPERTIES_ALL => {
            let count = usize::from(r.u16("PropertyValueCount")?);
            B::PropertyValues(decode_tagged_values(r, count)?)
        }
        rop_id::GET_PROPERTIES_LIST => B::PropertyTags(decode_tag_array(r)?),
        rop_id::SET_PROPERTIES | rop_id::DELETE_PROPERTIES => {
            B::PropertyProblems(read_problems(r)?)
        }
        rop_id::SAVE_CHANGES_MESSAGE => B::SaveChangesMessage {
            input_handle: r.u8("InputHandleIndex")?,
            message_id: ObjectId(r.u64("MessageId")?),
        },
        rop_id::READ_RECIPIENTS => {
            let count = usize::from(r.u8("RowCount")?);
            r.check_count(count, 11, "recipient rows")?;
            let mut rows = Vec::with_capacity(count);
            for _ in 0..count {
                let row_id = r.u32("RowId")?;
                let recipient_type = r.u8("RecipientType")?;
                let code_page_id = r.u16("CodePageId")?;
                let reserved = r.u16("Reserved")?;
                let size = usize::from(r.u16("RecipientRowSize")?);
                let recipient_row = r.take(size, "RecipientRow")?.to_vec();
                rows.push(ReadRecipientRow {
                    row_id,
                    recipient_type,
                    code_page_id,
                    reserved,
                    recipient_row,
                });
            }
            B::ReadRecipients(rows)
        }
        rop_id::SET_COLUMNS | rop_id::SORT_TABLE | rop_id::RESTRICT => {
            B::TableStatus(r.u8("TableStatus")?)
        }
        rop_id::SET_MESSAGE_READ_FLAG => {
            let changed = if r.u8("ReadStatusChanged")? != 0 {
                Some(ReadStatusChange {
                    logon_id: r.u8("LogonId")?,
                    client_data: r.array("ClientData")?,
                })
            } else {
                None
            };
            B::MessageReadFlag { changed }
        }
        rop_id::QUERY_ROWS => {
            let origin = r.u8("Origin")?;
            let count = usize::from(r.u16("RowCount")?);
            if count == 0 {
                return Ok(B::QueryRows {
                    origin,
                    rows: Vec::new(),
                });
            }
            let columns = columns.ok_or_else(missing_columns)?;
            B::QueryRows {
                origin,
                rows: read_rows(r, count, columns)?,
            }
        }
        rop_id::SEEK_ROW => B::SeekRow {
            has_sought_less: r.u8("HasSoughtLess")? != 0,
            rows_sought: r.u32("RowsSought")? as i32,
        },
        rop_id::CREATE_FOLDER => {
            let folder_id = ObjectId(r.u64("FolderId")?);
            let existing = if r.u8("IsExistingFolder")? != 0 {
                let has_rules = r.u8("HasRules")? != 0;
                let ghosted = r.u8("IsGhosted")? != 0;
                let ghost = if ghosted { Some(read_ghost(r)?) } else { None };
                Some((has_rules, ghost))
            } else {
                None
            };
            B::CreateFolder {
                folder_id,
                existing,
            }
        }
        rop_id::CREATE_ATTACHMENT => B::AttachmentId(r.u32("AttachmentID")?),
        rop_id::OPEN_STREAM | rop_id::GET_STREAM_SIZE => B::StreamSize(r.u32("StreamSize")?),
        rop_id::READ_STREAM => {
            let size = usize::from(r.u16("DataSize")?);
            B::ReadStream {
                data: r.take(size, "Data")?.to_vec(),
            }
        }
        rop_id::WRITE_STREAM => B::WrittenSize(r.u16("WrittenSize")?),
        rop_id::LONG_TERM_ID_FROM_ID => {
            let at = r.offset();
            B::LongTermId(LongTermId::decode(
                r.take(LongTermId::SIZE, "LongTermId")?,
                at,
            )?)
        }
        rop_id::ID_FROM_LONG_TERM_ID
        | rop_id::SYNCHRONIZATION_IMPORT_MESSAGE_CHANGE
        | rop_id::SYNCHRONIZATION_IMPORT_HIERARCHY_CHANGE
        | rop_id::SYNCHRONIZATION_IMPORT_MESSAGE_MOVE => B::ObjectId(ObjectId(r.u64("ObjectId")?)),
        rop_id::FIND_ROW => {
            let row_no_longer_visible = r.u8("RowNoLongerVisible")? != 0;
            let has_row = r.u8("HasRowData")? != 0;
            let row = if has_row {
                let columns = columns.ok_or_else(missing_columns)?;
                Some(PropertyRow::decode(r, columns)?)
            } else {
                None
            };
            B::FindRow {
                row_no_longer_visible,
                row,
            }
        }
        rop_id::GET_NAMES_FROM_PROPERTY_IDS => {
            let count = usize::from(r.u16("PropertyNameCount")?);
            r.check_count(count, 17, "property names")?;
            let mut names = Vec::with_capacity(count);
            for _ in 0..count {
                names.push(PropertyName::decode(r)?);
            }
            B::PropertyNames(names)
        }
        rop_id::GET_LOCAL_REPLICA_IDS => B::LocalReplicaIds {
            repl_guid: Guid(r.array("ReplGuid")?),
            global_count: GlobCnt::from_bytes(r.array("GlobalCount")?),
        },
        _ => B::Empty,
    };
    Ok(body)
}

fn encode_body(out: &mut Vec<u8>, body: &ResponseBody) -> Result<(), RopError> {
    use ResponseBody as B;
    match body {
        B::Empty => {}
        B::Logon(logon) => {
            out.put_u8(logon.logon_flags);
            logon.folder_ids.iter().for_each(|id| out.put_u64(id.0));
            out.put_u8(logon.response_flags);
            out.put(&logon.mailbox_guid.0);
            out.put_u16(logon.repl_id);
            out.put(&logon.repl_guid.0);
            out.put(&logon.logon_time);
            out.put_u16(logon.logon_year);
            out.put_u64(logon.gwart_time);
            out.put_u32(logon.store_state);
        }
        B::LogonPublic {
            logon_flags,
            folder_ids,
            repl_id,
            repl_guid,
            per_user_guid,
        } => {
            out.put_u8(*logon_flags);
            folder_ids.iter().for_each(|id| out.put_u64(id.0));
            out.put_u16(*repl_id);
            out.put(&repl_guid.0);
            out.put(&per_user_guid.0);
        }
        B::LogonRedirect {
            logon_flags,
            server_name,
        } => {
            out.put_u8(*logon_flags);
            // ServerNameSize is one byte and counts the terminating NUL (MS-OXCROPS
            // 2.2.3.1.3). A name of 255 bytes or more has no room for the NUL, so it goes
            // out unterminated and cut to 255 bytes, which the decoder reads back as is.
            let name = server_name.get(..255).unwrap_or(server_name);
            match u8::try_from(name.len() + 1) {
                Ok(size) => {
                    out.put_u8(size);
                    out.put(name);
                    out.put_u8(0);
                }
                Err(_) => {
                    out.put_u8(u8::MAX);
                    out.put(name);
                }
            }
        }
        B::OpenFolder { has_rules, ghost } => {
            out.put_u8(u8::from(*has_rules));
            out.put_u8(u8::from(ghost.is_some()));
            if let Some(ghost) = ghost {
                put_ghost(out, ghost)?;
            }
        }
        B::OpenMessage(message) => put_open_message(out, message)?,
        B::OpenEmbeddedMessage {
            reserved,
            message_id,
            message,
        } => {
            out.put_u8(*reserved);
            out.put_u64(message_id.0);
            put_open_message(out, message)?;
        }
        B::RowCount(count) | B::AttachmentId(count) | B::StreamSize(count) => out.put_u32(*count),
        B::CreateMessage { message_id } => {
            out.put_u8(u8::from(message_id.is_some()));
            if let Some(id) = message_id {
                out.put_u64(id.0);
            }
        }
        B::PropertyRow(row) => encode_row_self(out, row)?,
        B::PropertyValues(values) => {
            out.put_u16(len_u16(values.len(), "PropertyValueCount")?);
            for value in values {
                value.try_encode(out)?;
            }
        }
        B::PropertyTags(tags) => try_encode_tag_array(out, tags)?,
        B::PropertyProblems(problems) => {
            out.put_u16(len_u16(problems.len(), "PropertyProblemCount")?);
            for problem in problems {
                out.put_u16(problem.index);
                out.put_u32(problem.tag.0);
                out.put_u32(problem.error_code);
            }
        }
        B::SaveChangesMessage {
            input_handle,
            message_id,
        } => {
            out.put_u8(*input_handle);
            out.put_u64(message_id.0);
        }
        B::ReadRecipients(rows) => {
            out.put_u8(len_u8(rows.len(), "RowCount")?);
            for row in rows {
                out.put_u32(row.row_id);
                out.put_u8(row.recipient_type);
                out.put_u16(row.code_page_id);
                out.put_u16(row.reserved);
                out.put_u16(len_u16(row.recipient_row.len(), "RecipientRowSize")?);
                out.put(&row.recipient_row);
            }
        }
        B::TableStatus(status) => out.put_u8(*status),
        B::MessageReadFlag { changed } => {
            out.put_u8(u8::from(changed.is_some()));
            if let Some(change) = changed {
                out.put_u8(change.logon_id);
                out.put(&change.client_data);
            }
        }
        B::QueryRows { origin, rows } => {
            out.put_u8(*origin);
            out.put_u16(len_u16(rows.len(), "RowCount")?);
            for row in rows {
                encode_row_self(out, row)?;
            }
        }
        B::SeekRow {
            has_sought_less,
            rows_sought,
        } => {
            out.put_u8(u8::from(*has_sought_less));
            out.put_u32(*rows_sought as u32);
        }
        B::CreateFolder {
            folder_id,
            existing,
        } => {
            out.put_u64(folder_id.0);
            out.put_u8(u8::from(existing.is_some()));
            if let Some((has_rules, ghost)) = existing {
                out.put_u8(u8::from(*has_rules));
                out.put_u8(u8::from(ghost.is_some()));
                if let Some(ghost) = ghost {
                    put_ghost(out, ghost)?;
                }
            }
        }
        B::PartialCompletion(partial) => out.put_u8(u8::from(*partial)),
        B::NullDestination {
            destination_handle,
            partial_completion,
        } => {
            out.put_u32(*destination_handle);
            out.put_u8(u8::from(*partial_completion));
        }
        B::ReadStream { data } => {
            out.put_u16(len_u16(data.len(), "DataSize")?);
            out.put(data);
        }
        B::WrittenSize(size) => out.put_u16(*size),
        B::LongTermId(id) => id.encode(out),
        B::ObjectId(id) => out.put_u64(id.0),
        B::FastTransferBuffer {
            transfer_status,
            in_progress_count,
            total_step_count,
            reserved,
            transfer_buffer,
        } => {
            out.put_u16(*transfer_status);
            out.put_u16(*in_progress_count);
            out.put_u16(*total_step_count);
            out.put_u8(*reserved);
            out.put_u16(len_u16(transfer_buffer.len(), "TransferBufferSize")?);
            out.put(transfer_buffer);
        }
        B::BackoffTime(time) => out.put_u32(*time),
        B::FindRow {
            row_no_longer_visible,
            row,
        } => {
            out.put_u8(u8::from(*row_no_longer_visible));
            out.put_u8(u8::from(row.is_some()));
            if let Some(row) = row {
                encode_row_self(out, row)?;
            }
        }
        B::PropertyNames(names) => {
            out.put_u16(len_u16(names.len(), "PropertyNameCount")?);
            names.iter().for_each(|n| n.encode(out));
        }
        B::PropertyIds(ids) => {
            out.put_u16(len_u16(ids.len(), "PropertyIdCount")?);
            ids.iter().for_each(|id| out.put_u16(*id));
        }
        B::LocalReplicaIds {
            repl_guid,
            global_count,
        } => {
            out.put(&repl_guid.0);
            out.put(&global_count.to_bytes());
        }
    }
    Ok(())
}

/// Encodes a row whose cells carry their own types. Columns of type PtypUnspecified are
/// not known here, so every cell is written as a value of a typed column.
fn encode_row_self(out: &mut Vec<u8>, row: &PropertyRow) -> Result<(), RopError> {
    for value in row.cells.iter().filter_map(|cell| cell.value()) {
        value.check_encodable(ValueEncoding::Rop)?;
    }
    let columns: Vec<PropTag> = row
        .cells
        .iter()
        .map(|cell| match cell.value() {
            Some(value) => PropTag::new(0, value.ptype()),
            None => PropTag::new(0, crate::prop::PropType::INTEGER32),
        })
        .collect();
    row.encode(out, &columns);
    Ok(())
}
