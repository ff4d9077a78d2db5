//! ROP requests (MS-OXCROPS 2.2.2 to 2.2.13). Every request starts with `RopId u8 |
//! LogonId u8`, followed by its handle indexes and fields.

use super::writer::{Put, len_u16, len_u32};
use super::{RecipientRow, RopError, RopString, rop_id};
use crate::ids::{LongTermId, ObjectId};
use crate::prop::{
    PropTag, PropertyName, Reader, Restriction, TaggedValue, decode_tag_array,
    decode_tagged_values, try_encode_tag_array,
};

/// One sort key of RopSortTable (SortOrder, MS-OXCDATA 2.13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SortOrder {
    /// The column (PropertyType u16, PropertyId u16 on the wire, as a tag).
    pub tag: PropTag,
    /// 0x00 ascending, 0x01 descending, 0x04 maximum of a category, 0x08 minimum.
    pub order: u8,
}

/// A recipient row of RopModifyRecipients (ModifyRecipientRow, MS-OXCROPS 2.2.6.5.1.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModifyRecipientRow {
    /// RowId of the recipient.
    pub row_id: u32,
    /// RecipientType (1 To, 2 Cc, 3 Bcc; 0 with an empty row removes the recipient).
    pub recipient_type: u8,
    /// The RecipientRow (MS-OXCDATA 2.8.3) as bytes; empty removes the recipient. Decode
    /// it with [`ModifyRecipientRow::recipient`].
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub recipient_row: Vec<u8>,
}

impl ModifyRecipientRow {
    /// Builds a row that adds or changes a recipient, encoding `recipient` over the
    /// request's recipient `columns`.
    ///
    /// # Errors
    /// See [`RecipientRow::encode`].
    pub fn new(
        row_id: u32,
        recipient_type: u8,
        recipient: &RecipientRow,
        columns: &[PropTag],
    ) -> Result<ModifyRecipientRow, RopError> {
        Ok(ModifyRecipientRow {
            row_id,
            recipient_type,
            recipient_row: recipient.to_bytes(columns)?,
        })
    }

    /// Decodes the RecipientRow over the request's recipient `columns`; `None` for an
    /// empty row, which removes the recipient. Error offsets count from the start of the
    /// RecipientRow.
    ///
    /// # Errors
    /// See [`RecipientRow::decode`].
    pub fn recipient(&self, columns: &[PropTag]) -> Result<Option<RecipientRow>, RopError> {
        if self.recipient_row.is_empty() {
            return Ok(None);
        }
        RecipientRow::decode(&self.recipient_row, columns, 0).map(Some)
    }
}

/// A read-state change of RopSynchronizationImportReadStateChanges (MessageReadState,
/// MS-OXCROPS 2.2.13.3.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageReadState {
    /// The message's source key (an XID).
    #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
    pub message_id: Vec<u8>,
    /// Whether the message is now read.
    pub mark_as_read: bool,
}

/// A ROP request.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
#[allow(missing_docs)] // Field names follow MS-OXCROPS; each variant documents its ROP.
pub enum RopRequest {
    /// RopRelease 0x01 (MS-OXCROPS 2.2.2.1). Has no response.
    Release { logon_id: u8, input_handle: u8 },
    /// RopOpenFolder 0x02 (2.2.4.1).
    OpenFolder {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        folder_id: ObjectId,
        open_mode_flags: u8,
    },
    /// RopOpenMessage 0x03 (2.2.6.1).
    OpenMessage {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        code_page_id: u16,
        folder_id: ObjectId,
        open_mode_flags: u8,
        message_id: ObjectId,
    },
    /// RopGetHierarchyTable 0x04 (2.2.4.13).
    GetHierarchyTable {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        table_flags: u8,
    },
    /// RopGetContentsTable 0x05 (2.2.4.14).
    GetContentsTable {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        table_flags: u8,
    },
    /// RopCreateMessage 0x06 (2.2.6.2).
    CreateMessage {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        code_page_id: u16,
        folder_id: ObjectId,
        associated: bool,
    },
    /// RopGetPropertiesSpecific 0x07 (2.2.8.3).
    GetPropertiesSpecific {
        logon_id: u8,
        input_handle: u8,
        property_size_limit: u16,
        want_unicode: u16,
        tags: Vec<PropTag>,
    },
    /// RopGetPropertiesAll 0x08 (2.2.8.4).
    GetPropertiesAll {
        logon_id: u8,
        input_handle: u8,
        property_size_limit: u16,
        want_unicode: u16,
    },
    /// RopGetPropertiesList 0x09 (2.2.8.5).
    GetPropertiesList { logon_id: u8, input_handle: u8 },
    /// RopSetProperties 0x0A (2.2.8.6). PropertyValueSize is computed when encoding.
    SetProperties {
        logon_id: u8,
        input_handle: u8,
        values: Vec<TaggedValue>,
    },
    /// RopDeleteProperties 0x0B (2.2.8.8).
    DeleteProperties {
        logon_id: u8,
        input_handle: u8,
        tags: Vec<PropTag>,
    },
    /// RopSaveChangesMessage 0x0C (2.2.6.3).
    SaveChangesMessage {
        logon_id: u8,
        response_handle: u8,
        input_handle: u8,
        save_flags: u8,
    },
    /// RopRemoveAllRecipients 0x0D (2.2.6.4).
    RemoveAllRecipients {
        logon_id: u8,
        input_handle: u8,
        reserved: u32,
    },
    /// RopModifyRecipients 0x0E (2.2.6.5).
    ModifyRecipients {
        logon_id: u8,
        input_handle: u8,
        columns: Vec<PropTag>,
        rows: Vec<ModifyRecipientRow>,
    },
    /// RopReadRecipients 0x0F (2.2.6.6).
    ReadRecipients {
        logon_id: u8,
        input_handle: u8,
        row_id: u32,
        reserved: u16,
    },
    /// RopSetMessageReadFlag 0x11 (2.2.6.11): sets or clears the read flag of an open
    /// message; the response echoes `response_handle`, the message's folder.
    // NOTE: a public-folder logon adds 24 bytes of ClientData after ReadFlags, but the
    // request decoder does not know the logon's flags, so it reads the private-mailbox
    // form only and this variant cannot carry ClientData.
    SetMessageReadFlag {
        logon_id: u8,
        response_handle: u8,
        input_handle: u8,
        read_flags: u8,
    },
    /// RopSetColumns 0x12 (2.2.5.1).
    SetColumns {
        logon_id: u8,
        input_handle: u8,
        set_columns_flags: u8,
        tags: Vec<PropTag>,
    },
    /// RopSortTable 0x13 (2.2.5.2).
    SortTable {
        logon_id: u8,
        input_handle: u8,
        sort_table_flags: u8,
        categorized_count: u16,
        expanded_count: u16,
        sort_orders: Vec<SortOrder>,
    },
    /// RopRestrict 0x14 (2.2.5.3). An empty restriction (size 0) removes the restriction.
    Restrict {
        logon_id: u8,
        input_handle: u8,
        restrict_flags: u8,
        restriction: Option<Restriction>,
    },
    /// RopQueryRows 0x15 (2.2.5.4).
    QueryRows {
        logon_id: u8,
        input_handle: u8,
        query_rows_flags: u8,
        forward_read: bool,
        row_count: u16,
    },
    /// RopSeekRow 0x18 (2.2.5.8).
    SeekRow {
        logon_id: u8,
        input_handle: u8,
        origin: u8,
        row_count: i32,
        want_row_moved_count: bool,
    },
    /// RopCreateFolder 0x1C (2.2.4.2). The strings are NUL16 when `use_unicode` is set,
    /// NUL8 otherwise.
    CreateFolder {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        folder_type: u8,
        use_unicode: bool,
        open_existing: bool,
        reserved: u8,
        display_name: RopString,
        comment: RopString,
    },
    /// RopDeleteFolder 0x1D (2.2.4.3).
    DeleteFolder {
        logon_id: u8,
        input_handle: u8,
        delete_folder_flags: u8,
        folder_id: ObjectId,
    },
    /// RopDeleteMessages 0x1E (2.2.4.11).
    DeleteMessages {
        logon_id: u8,
        input_handle: u8,
        want_asynchronous: bool,
        notify_non_read: bool,
        message_ids: Vec<ObjectId>,
    },
    /// RopGetAttachmentTable 0x21 (2.2.6.13).
    GetAttachmentTable {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        table_flags: u8,
    },
    /// RopOpenAttachment 0x22 (2.2.6.12).
    OpenAttachment {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        open_attachment_flags: u8,
        attachment_id: u32,
    },
    /// RopCreateAttachment 0x23 (2.2.6.13).
    CreateAttachment {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
    },
    /// RopDeleteAttachment 0x24 (2.2.6.14).
    DeleteAttachment {
        logon_id: u8,
        input_handle: u8,
        attachment_id: u32,
    },
    /// RopSaveChangesAttachment 0x25 (2.2.6.15).
    SaveChangesAttachment {
        logon_id: u8,
        response_handle: u8,
        input_handle: u8,
        save_flags: u8,
    },
    /// RopRegisterNotification 0x29 (2.2.14.1). FolderId and MessageId are on the wire only
    /// when `want_whole_store` is false.
    RegisterNotification {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        notification_types: u8,
        reserved: u8,
        want_whole_store: bool,
        folder_id: ObjectId,
        message_id: ObjectId,
    },
    /// RopOpenStream 0x2B (2.2.9.1).
    OpenStream {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        tag: PropTag,
        open_mode_flags: u8,
    },
    /// RopReadStream 0x2C (2.2.9.2). `maximum_byte_count` is on the wire only when
    /// `byte_count` is 0xBABE.
    ReadStream {
        logon_id: u8,
        input_handle: u8,
        byte_count: u16,
        maximum_byte_count: Option<u32>,
    },
    /// RopWriteStream 0x2D (2.2.9.3).
    WriteStream {
        logon_id: u8,
        input_handle: u8,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        data: Vec<u8>,
    },
    /// RopSetStreamSize 0x2F (2.2.9.6).
    SetStreamSize {
        logon_id: u8,
        input_handle: u8,
        stream_size: u64,
    },
    /// RopSubmitMessage 0x32 (2.2.7.1).
    SubmitMessage {
        logon_id: u8,
        input_handle: u8,
        submit_flags: u8,
    },
    /// RopMoveCopyMessages 0x33 (2.2.4.6).
    MoveCopyMessages {
        logon_id: u8,
        source_handle: u8,
        destination_handle: u8,
        message_ids: Vec<ObjectId>,
        want_asynchronous: bool,
        want_copy: bool,
    },
    /// RopMoveFolder 0x35 (2.2.4.7).
    MoveFolder {
        logon_id: u8,
        source_handle: u8,
        destination_handle: u8,
        want_asynchronous: bool,
        use_unicode: bool,
        folder_id: ObjectId,
        new_folder_name: RopString,
    },
    /// RopCopyFolder 0x36 (2.2.4.8).
    CopyFolder {
        logon_id: u8,
        source_handle: u8,
        destination_handle: u8,
        want_asynchronous: bool,
        want_recursive: bool,
        use_unicode: bool,
        folder_id: ObjectId,
        new_folder_name: RopString,
    },
    /// RopOpenEmbeddedMessage 0x46 (2.2.6.16).
    OpenEmbeddedMessage {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        code_page_id: u16,
        open_mode_flags: u8,
    },
    /// RopGetRulesTable 0x3F (2.2.11.2).
    GetRulesTable {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        table_flags: u8,
    },
    /// RopLongTermIdFromId 0x43 (2.2.3.8).
    LongTermIdFromId {
        logon_id: u8,
        input_handle: u8,
        object_id: ObjectId,
    },
    /// RopIdFromLongTermId 0x44 (2.2.3.9).
    IdFromLongTermId {
        logon_id: u8,
        input_handle: u8,
        long_term_id: LongTermId,
    },
    /// RopFastTransferSourceCopyMessages 0x4B (2.2.12.6): opens a FastTransfer download
    /// of whole messages of the input folder.
    FastTransferSourceCopyMessages {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        message_ids: Vec<ObjectId>,
        copy_flags: u8,
        send_options: u8,
    },
    /// RopFastTransferSourceCopyFolder 0x4C (2.2.12.5): opens a FastTransfer download of
    /// the input folder.
    FastTransferSourceCopyFolder {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        copy_flags: u8,
        send_options: u8,
    },
    /// RopFastTransferSourceCopyTo 0x4D (2.2.12.7): opens a FastTransfer download of an
    /// object without the properties in `tags`. CopyFlags is 32 bits here, 8 bits in the
    /// other copy ROPs.
    FastTransferSourceCopyTo {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        level: u8,
        copy_flags: u32,
        send_options: u8,
        tags: Vec<PropTag>,
    },
    /// RopFastTransferSourceCopyProperties 0x69 (2.2.12.8): opens a FastTransfer download
    /// of the properties in `tags` of an object.
    FastTransferSourceCopyProperties {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        level: u8,
        copy_flags: u8,
        send_options: u8,
        tags: Vec<PropTag>,
    },
    /// RopFastTransferSourceGetBuffer 0x4E (2.2.12.4). `maximum_buffer_size` is on the
    /// wire only when `buffer_size` is 0xBABE.
    FastTransferSourceGetBuffer {
        logon_id: u8,
        input_handle: u8,
        buffer_size: u16,
        maximum_buffer_size: Option<u16>,
    },
    /// RopFindRow 0x4F (2.2.5.13).
    FindRow {
        logon_id: u8,
        input_handle: u8,
        find_row_flags: u8,
        restriction: Option<Restriction>,
        origin: u8,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        bookmark: Vec<u8>,
    },
    /// RopGetNamesFromPropertyIds 0x55 (2.2.8.1).
    GetNamesFromPropertyIds {
        logon_id: u8,
        input_handle: u8,
        property_ids: Vec<u16>,
    },
    /// RopGetPropertyIdsFromNames 0x56 (2.2.8.2).
    GetPropertyIdsFromNames {
        logon_id: u8,
        input_handle: u8,
        flags: u8,
        names: Vec<PropertyName>,
    },
    /// RopCommitStream 0x5D (2.2.9.4).
    CommitStream { logon_id: u8, input_handle: u8 },
    /// RopGetStreamSize 0x5E (2.2.9.5).
    GetStreamSize { logon_id: u8, input_handle: u8 },
    /// RopSetReadFlags 0x66 (2.2.6.10).
    SetReadFlags {
        logon_id: u8,
        input_handle: u8,
        want_asynchronous: bool,
        read_flags: u8,
        message_ids: Vec<ObjectId>,
    },
    /// RopSynchronizationConfigure 0x70 (2.2.13.1). RestrictionData is kept as bytes
    /// (decode it with [`Restriction::decode`]); empty means no restriction.
    SynchronizationConfigure {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        synchronization_type: u8,
        send_options: u8,
        synchronization_flags: u16,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        restriction_data: Vec<u8>,
        synchronization_extra_flags: u32,
        tags: Vec<PropTag>,
    },
    /// RopSynchronizationImportMessageChange 0x72 (2.2.13.2).
    SynchronizationImportMessageChange {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        import_flag: u8,
        values: Vec<TaggedValue>,
    },
    /// RopSynchronizationImportHierarchyChange 0x73 (2.2.13.4).
    SynchronizationImportHierarchyChange {
        logon_id: u8,
        input_handle: u8,
        hierarchy_values: Vec<TaggedValue>,
        values: Vec<TaggedValue>,
    },
    /// RopSynchronizationImportDeletes 0x74 (2.2.13.5).
    SynchronizationImportDeletes {
        logon_id: u8,
        input_handle: u8,
        import_delete_flags: u8,
        values: Vec<TaggedValue>,
    },
    /// RopSynchronizationUploadStateStreamBegin 0x75 (2.2.13.9).
    SynchronizationUploadStateStreamBegin {
        logon_id: u8,
        input_handle: u8,
        state_property: PropTag,
        transfer_buffer_size: u32,
    },
    /// RopSynchronizationUploadStateStreamContinue 0x76 (2.2.13.10).
    SynchronizationUploadStateStreamContinue {
        logon_id: u8,
        input_handle: u8,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        stream_data: Vec<u8>,
    },
    /// RopSynchronizationUploadStateStreamEnd 0x77 (2.2.13.11).
    SynchronizationUploadStateStreamEnd { logon_id: u8, input_handle: u8 },
    /// RopSynchronizationImportMessageMove 0x78 (2.2.13.6). Five u32-length-prefixed blobs.
    SynchronizationImportMessageMove {
        logon_id: u8,
        input_handle: u8,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        source_folder_id: Vec<u8>,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        source_message_id: Vec<u8>,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        predecessor_change_list: Vec<u8>,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        destination_message_id: Vec<u8>,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        change_number: Vec<u8>,
    },
    /// RopSynchronizationOpenCollector 0x7E (2.2.13.7).
    SynchronizationOpenCollector {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
        is_contents_collector: bool,
    },
    /// RopGetLocalReplicaIds 0x7F (2.2.13.13).
    GetLocalReplicaIds {
        logon_id: u8,
        input_handle: u8,
        id_count: u32,
    },
    /// RopSynchronizationImportReadStateChanges 0x80 (2.2.13.3).
    SynchronizationImportReadStateChanges {
        logon_id: u8,
        input_handle: u8,
        read_states: Vec<MessageReadState>,
    },
    /// RopSynchronizationGetTransferState 0x82 (2.2.13.8).
    SynchronizationGetTransferState {
        logon_id: u8,
        input_handle: u8,
        output_handle: u8,
    },
    /// RopHardDeleteMessagesAndSubfolders 0x92 (2.2.4.10): hard deletes the messages and
    /// subfolders of the input folder.
    HardDeleteMessagesAndSubfolders {
        logon_id: u8,
        input_handle: u8,
        want_asynchronous: bool,
        want_delete_associated: bool,
    },
    /// RopHardDeleteMessages 0x91 (2.2.4.12): hard deletes messages of the input folder.
    // NOTE: this layout is assumed to be RopDeleteMessages', because MS-OXCFOLD 2.2.1.12
    // describes the same operation as a hard delete; its field table was not available.
    HardDeleteMessages {
        logon_id: u8,
        input_handle: u8,
        want_asynchronous: bool,
        notify_non_read: bool,
        message_ids: Vec<ObjectId>,
    },
    /// RopLogon 0xFE (2.2.3.1). `essdn` is the mailbox DN without its terminator.
    Logon {
        logon_id: u8,
        output_handle: u8,
        logon_flags: u8,
        open_flags: u32,
        store_state: u32,
        #[serde(serialize_with = "crate::bytes_serde::text_or_hex")]
        essdn: Vec<u8>,
    },
}

fn read_ids(r: &mut Reader<'_>, count: usize) -> Result<Vec<ObjectId>, RopError> {
    r.check_count(count, 8, "message ids")?;
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(ObjectId(r.u64("message id")?));
    }
    Ok(ids)
}

fn put_ids(out: &mut Vec<u8>, ids: &[ObjectId]) -> Result<(), RopError> {
    out.put_u16(len_u16(ids.len(), "MessageIdCount")?);
    for id in ids {
        out.put_u64(id.0);
    }
    Ok(())
}

fn read_blob32<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<Vec<u8>, RopError> {
    let len = r.u32(what)? as usize;
    Ok(r.take(len, what)?.to_vec())
}

fn put_blob32(out: &mut Vec<u8>, blob: &[u8], what: &'static str) -> Result<(), RopError> {
    out.put_u32(len_u32(blob.len(), what)?);
    out.put(blob);
    Ok(())
}

fn read_restriction_blob(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<Option<Restriction>, RopError> {
    let size = usize::from(r.u16(what)?);
    if size == 0 {
        return Ok(None);
    }
    let base = r.offset();
    let bytes = r.take(size, what)?;
    let mut inner = Reader::with_base(bytes, base);
    Ok(Some(Restriction::decode(&mut inner)?))
}

fn put_restriction_blob(
    out: &mut Vec<u8>,
    restriction: &Option<Restriction>,
) -> Result<(), RopError> {
    let mut bytes = Vec::new();
    if let Some(restriction) = restriction {
        restriction.try_encode(&mut bytes)?;
    }
    out.put_u16(len_u16(bytes.len(), "RestrictionDataSize")?);
    out.put(&bytes);
    Ok(())
}

fn read_values_u16(r: &mut Reader<'_>) -> Result<Vec<TaggedValue>, RopError> {
    let count = usize::from(r.u16("property value count")?);
    Ok(decode_tagged_values(r, count)?)
}

fn put_values_u16(out: &mut Vec<u8>, values: &[TaggedValue]) -> Result<(), RopError> {
    out.put_u16(len_u16(values.len(), "PropertyValueCount")?);
    for value in values {
        value.try_encode(out)?;
    }
    Ok(())
}

impl RopRequest {
    /// Returns the RopId of this request.
    pub fn rop_id(&self) -> u8 {
        use RopRequest as Q;
        match self {
            Q::Release { .. } => rop_id::RELEASE,
            Q::OpenFolder { .. } => rop_id::OPEN_FOLDER,
            Q::OpenMessage { .. } => rop_id::OPEN_MESSAGE,
            Q::GetHierarchyTable { .. } => rop_id::GET_HIERARCHY_TABLE,
            Q::GetContentsTable { .. } => rop_id::GET_CONTENTS_TABLE,
            Q::CreateMessage { .. } => rop_id::CREATE_MESSAGE,
            Q::GetPropertiesSpecific { .. } => rop_id::GET_PROPERTIES_SPECIFIC,
            Q::GetPropertiesAll { .. } => rop_id::GET_PROPERTIES_ALL,
            Q::GetPropertiesList { .. } => rop_id::GET_PROPERTIES_LIST,
            Q::SetProperties { .. } => rop_id::SET_PROPERTIES,
            Q::DeleteProperties { .. } => rop_id::DELETE_PROPERTIES,
            Q::SaveChangesMessage { .. } => rop_id::SAVE_CHANGES_MESSAGE,
            Q::RemoveAllRecipients { .. } => rop_id::REMOVE_ALL_RECIPIENTS,
            Q::ModifyRecipients { .. } => rop_id::MODIFY_RECIPIENTS,
            Q::ReadRecipients { .. } => rop_id::READ_RECIPIENTS,
            Q::SetMessageReadFlag { .. } => rop_id::SET_MESSAGE_READ_FLAG,
            Q::FastTransferSourceCopyMessages { .. } => rop_id::FAST_TRANSFER_SOURCE_COPY_MESSAGES,
            Q::FastTransferSourceCopyFolder { .. } => rop_id::FAST_TRANSFER_SOURCE_COPY_FOLDER,
            Q::FastTransferSourceCopyTo { .. } => rop_id::FAST_TRANSFER_SOURCE_COPY_TO,
            Q::FastTransferSourceCopyProperties { .. } => {
                rop_id::FAST_TRANSFER_SOURCE_COPY_PROPERTIES
            }
            Q::HardDeleteMessagesAndSubfolders { .. } => {
                rop_id::HARD_DELETE_MESSAGES_AND_SUBFOLDERS
            }
            Q::HardDeleteMessages { .. } => rop_id::HARD_DELETE_MESSAGES,
            Q::SetColumns { .. } => rop_id::SET_COLUMNS,
            Q::SortTable { .. } => rop_id::SORT_TABLE,
            Q::Restrict { .. } => rop_id::RESTRICT,
            Q::QueryRows { .. } => rop_id::QUERY_ROWS,
            Q::SeekRow { .. } => rop_id::SEEK_ROW,
            Q::CreateFolder { .. } => rop_id::CREATE_FOLDER,
            Q::DeleteFolder { .. } => rop_id::DELETE_FOLDER,
            Q::DeleteMessages { .. } => rop_id::DELETE_MESSAGES,
            Q::GetAttachmentTable { .. } => rop_id::GET_ATTACHMENT_TABLE,
            Q::OpenAttachment { .. } => rop_id::OPEN_ATTACHMENT,
            Q::CreateAttachment { .. } => rop_id::CREATE_ATTACHMENT,
            Q::DeleteAttachment { .. } => rop_id::DELETE_ATTACHMENT,
            Q::SaveChangesAttachment { .. } => rop_id::SAVE_CHANGES_ATTACHMENT,
            Q::RegisterNotification { .. } => rop_id::REGISTER_NOTIFICATION,
            Q::OpenStream { .. } => rop_id::OPEN_STREAM,
            Q::ReadStream { .. } => rop_id::READ_STREAM,
            Q::WriteStream { .. } => rop_id::WRITE_STREAM,
            Q::SetStreamSize { .. } => rop_id::SET_STREAM_SIZE,
            Q::SubmitMessage { .. } => rop_id::SUBMIT_MESSAGE,
            Q::MoveCopyMessages { .. } => rop_id::MOVE_COPY_MESSAGES,
            Q::MoveFolder { .. } => rop_id::MOVE_FOLDER,
            Q::CopyFolder { .. } => rop_id::COPY_FOLDER,
            Q::GetRulesTable { .. } => rop_id::GET_RULES_TABLE,
            Q::OpenEmbeddedMessage { .. } => rop_id::OPEN_EMBEDDED_MESSAGE,
            Q::LongTermIdFromId { .. } => rop_id::LONG_TERM_ID_FROM_ID,
            Q::IdFromLongTermId { .. } => rop_id::ID_FROM_LONG_TERM_ID,
            Q::FastTransferSourceGetBuffer { .. } => rop_id::FAST_TRANSFER_SOURCE_GET_BUFFER,
            Q::FindRow { .. } => rop_id::FIND_ROW,
            Q::GetNamesFromPropertyIds { .. } => rop_id::GET_NAMES_FROM_PROPERTY_IDS,
            Q::GetPropertyIdsFromNames { .. } => rop_id::GET_PROPERTY_IDS_FROM_NAMES,
            Q::CommitStream { .. } => rop_id::COMMIT_STREAM,
            Q::GetStreamSize { .. } => rop_id::GET_STREAM_SIZE,
            Q::SetReadFlags { .. } => rop_id::SET_READ_FLAGS,
            Q::SynchronizationConfigure { .. } => rop_id::SYNCHRONIZATION_CONFIGURE,
            Q::SynchronizationImportMessageChange { .. } => {
                rop_id::SYNCHRONIZATION_IMPORT_MESSAGE_CHANGE
            }
            Q::SynchronizationImportHierarchyChange { .. } => {
                rop_id::SYNCHRONIZATION_IMPORT_HIERARCHY_CHANGE
            }
            Q::SynchronizationImportDeletes { .. } => rop_id::SYNCHRONIZATION_IMPORT_DELETES,
            Q::SynchronizationUploadStateStreamBegin { .. } => {
                rop_id::SYNCHRONIZATION_UPLOAD_STATE_STREAM_BEGIN
            }
            Q::SynchronizationUploadStateStreamContinue { .. } => {
                rop_id::SYNCHRONIZATION_UPLOAD_STATE_STREAM_CONTINUE
            }
            Q::SynchronizationUploadStateStreamEnd { .. } => {
                rop_id::SYNCHRONIZATION_UPLOAD_STATE_STREAM_END
            }
            Q::SynchronizationImportMessageMove { .. } => {
                rop_id::SYNCHRONIZATION_IMPORT_MESSAGE_MOVE
            }
            Q::SynchronizationOpenCollector { .. } => rop_id::SYNCHRONIZATION_OPEN_COLLECTOR,
            Q::GetLocalReplicaIds { .. } => rop_id::GET_LOCAL_REPLICA_IDS,
            Q::SynchronizationImportReadStateChanges { .. } => {
                rop_id::SYNCHRONIZATION_IMPORT_READ_STATE_CHANGES
            }
            Q::SynchronizationGetTransferState { .. } => rop_id::SYNCHRONIZATION_GET_TRANSFER_STATE,
            Q::Logon { .. } => rop_id::LOGON,
        }
    }

    /// Returns the handle index that the response echoes (InputHandleIndex, OutputHandleIndex,
    /// ResponseHandleIndex or SourceHandleIndex, per ROP).
    pub fn response_handle_index(&self) -> u8 {
        use RopRequest as Q;
        match self {
            Q::OpenFolder { output_handle, .. }
            | Q::OpenMessage { output_handle, .. }
            | Q::GetHierarchyTable { output_handle, .. }
            | Q::GetContentsTable { output_handle, .. }
            | Q::CreateMessage { output_handle, .. }
            | Q::CreateFolder { output_handle, .. }
            | Q::GetAttachmentTable { output_handle, .. }
            | Q::OpenAttachment { output_handle, .. }
            | Q::CreateAttachment { output_handle, .. }
            | Q::RegisterNotification { output_handle, .. }
            | Q::OpenStream { output_handle, .. }
            | Q::GetRulesTable { output_handle, .. }
            | Q::OpenEmbeddedMessage { output_handle, .. }
            | Q::SynchronizationConfigure { output_handle, .. }
            | Q::SynchronizationImportMessageChange { output_handle, .. }
            | Q::SynchronizationOpenCollector { output_handle, .. }
            | Q::SynchronizationGetTransferState { output_handle, .. }
            | Q::FastTransferSourceCopyMessages { output_handle, .. }
            | Q::FastTransferSourceCopyFolder { output_handle, .. }
            | Q::FastTransferSourceCopyTo { output_handle, .. }
            | Q::FastTransferSourceCopyProperties { output_handle, .. }
            | Q::Logon { output_handle, .. } => *output_handle,
            Q::SaveChangesMessage {
                response_handle, ..
            }
            | Q::SaveChangesAttachment {
                response_handle, ..
            }
            | Q::SetMessageReadFlag {
                response_handle, ..
            } => *response_handle,
            Q::MoveCopyMessages { source_handle, .. }
            | Q::MoveFolder { source_handle, .. }
            | Q::CopyFolder { source_handle, .. } => *source_handle,
            Q::Release { input_handle, .. }
            | Q::GetPropertiesSpecific { input_handle, .. }
            | Q::GetPropertiesAll { input_handle, .. }
            | Q::GetPropertiesList { input_handle, .. }
            | Q::SetProperties { input_handle, .. }
            | Q::DeleteProperties { input_handle, .. }
            | Q::RemoveAllRecipients { input_handle, .. }
            | Q::ModifyRecipients { input_handle, .. }
            | Q::ReadRecipients { input_handle, .. }
            | Q::SetColumns { input_handle, .. }
            | Q::SortTable { input_handle, .. }
            | Q::Restrict { input_handle, .. }
            | Q::QueryRows { input_handle, .. }
            | Q::SeekRow { input_handle, .. }
            | Q::DeleteFolder { input_handle, .. }
            | Q::DeleteMessages { input_handle, .. }
            | Q::DeleteAttachment { input_handle, .. }
            | Q::ReadStream { input_handle, .. }
            | Q::WriteStream { input_handle, .. }
            | Q::SetStreamSize { input_handle, .. }
            | Q::SubmitMessage { input_handle, .. }
            | Q::LongTermIdFromId { input_handle, .. }
            | Q::IdFromLongTermId { input_handle, .. }
            | Q::FastTransferSourceGetBuffer { input_handle, .. }
            | Q::FindRow { input_handle, .. }
            | Q::GetNamesFromPropertyIds { input_handle, .. }
            | Q::GetPropertyIdsFromNames { input_handle, .. }
            | Q::CommitStream { input_handle, .. }
            | Q::GetStreamSize { input_handle, .. }
            | Q::SetReadFlags { input_handle, .. }
            | Q::SynchronizationImportHierarchyChange { input_handle, .. }
            | Q::SynchronizationImportDeletes { input_handle, .. }
            | Q::SynchronizationUploadStateStreamBegin { input_handle, .. }
            | Q::SynchronizationUploadStateStreamContinue { input_handle, .. }
            | Q::SynchronizationUploadStateStreamEnd { input_handle, .. }
            | Q::SynchronizationImportMessageMove { input_handle, .. }
            | Q::GetLocalReplicaIds { input_handle, .. }
            | Q::SynchronizationImportReadStateChanges { input_handle, .. }
            | Q::HardDeleteMessagesAndSubfolders { input_handle, .. }
            | Q::HardDeleteMessages { input_handle, .. } => *input_handle,
        }
    }

    /// Returns whether the server sends a response for this request (all but RopRelease).
    pub fn has_response(&self) -> bool {
        !matches!(self, RopRequest::Release { .. })
    }

    /// Decodes one request.
    ///
    /// # Errors
    /// [`RopError::UnknownRop`] (with the remaining bytes) for a RopId this codec does not
    /// know, [`RopError::Wire`] when a field is cut short or malformed.
    pub fn decode(r: &mut Reader<'_>) -> Result<RopRequest, RopError> {
        use RopRequest as Q;
        let offset = r.offset();
        let id = r.u8("RopId")?;
        let logon_id = r.u8("LogonId")?;
        let request = match id {
            rop_id::LOGON => {
                let output_handle = r.u8("OutputHandleIndex")?;
                let logon_flags = r.u8("LogonFlags")?;
                let open_flags = r.u32("OpenFlags")?;
                let store_state = r.u32("StoreState")?;
                let size = usize::from(r.u16("EssdnSize")?);
                let essdn_offset = r.offset();
                let raw = r.take(size, "Essdn")?;
                // EssdnSize counts the terminating NUL (MS-OXCROPS 2.2.3.1.1); a zero size
                // carries no string. An Essdn without its NUL is rejected, because the
                // encoder always adds one and could not reproduce the bytes.
                let essdn = match raw.split_last() {
                    None => Vec::new(),
                    Some((0, text)) => text.to_vec(),
                    Some(_) => {
                        return Err(crate::prop::PropError::Unterminated {
                            what: "Essdn",
                            offset: essdn_offset,
                        }
                        .into());
                    }
                };
                Q::Logon {
                    logon_id,
                    output_handle,
                    logon_flags,
                    open_flags,
                    store_state,
                    essdn,
                }
            }
            rop_id::SAVE_CHANGES_MESSAGE | rop_id::SAVE_CHANGES_ATTACHMENT => {
                let response_handle = r.u8("ResponseHandleIndex")?;
                let input_handle = r.u8("InputHandleIndex")?;
                let save_flags = r.u8("SaveFlags")?;
                if id == rop_id::SAVE_CHANGES_MESSAGE {
                    Q::SaveChangesMessage {
                        logon_id,
                        response_handle,
                        input_handle,
                        save_flags,
                    }
                } else {
                    Q::SaveChangesAttachment {
                        logon_id,
                        response_handle,
                        input_handle,
                        save_flags,
                    }
                }
            }
            rop_id::SET_MESSAGE_READ_FLAG => Q::SetMessageReadFlag {
                logon_id,
                response_handle: r.u8("ResponseHandleIndex")?,
                input_handle: r.u8("InputHandleIndex")?,
                read_flags: r.u8("ReadFlags")?,
            },
            rop_id::MOVE_COPY_MESSAGES | rop_id::MOVE_FOLDER | rop_id::COPY_FOLDER => {
                let source_handle = r.u8("SourceHandleIndex")?;
                let destination_handle = r.u8("DestHandleIndex")?;
                match id {
                    rop_id::MOVE_COPY_MESSAGES => {
                        let count = usize::from(r.u16("MessageIdCount")?);
                        let message_ids = read_ids(r, count)?;
                        Q::MoveCopyMessages {
                            logon_id,
                            source_handle,
                            destination_handle,
                            message_ids,
                            want_asynchronous: r.u8("WantAsynchronous")? != 0,
                            want_copy: r.u8("WantCopy")? != 0,
                        }
                    }
                    rop_id::MOVE_FOLDER => {
                        let want_asynchronous = r.u8("WantAsynchronous")? != 0;
                        let use_unicode = r.u8("UseUnicode")? != 0;
                        let folder_id = ObjectId(r.u64("FolderId")?);
                        let new_folder_name = RopString::decode(r, use_unicode, "NewFolderName")?;
                        Q::MoveFolder {
                            logon_id,
                            source_handle,
                            destination_handle,
                            want_asynchronous,
                            use_unicode,
                            folder_id,
                            new_folder_name,
                        }
                    }
                    _ => {
                        let want_asynchronous = r.u8("WantAsynchronous")? != 0;
                        let want_recursive = r.u8("WantRecursive")? != 0;
                        let use_unicode = r.u8("UseUnicode")? != 0;
                        let folder_id = ObjectId(r.u64("FolderId")?);
                        let new_folder_name = RopString::decode(r, use_unicode, "NewFolderName")?;
                        Q::CopyFolder {
                            logon_id,
                            source_handle,
                            destination_handle,
                            want_asynchronous,
                            want_recursive,
                            use_unicode,
                            folder_id,
                            new_folder_name,
                        }
                    }
                }
            }
            _ => return Self::decode_with_input(r, id, logon_id, offset),
        };
        Ok(request)
    }

    fn decode_with_input(
        r: &mut Reader<'_>,
        id: u8,
        logon_id: u8,
        offset: usize,
    ) -> Result<RopRequest, RopError> {
        use RopRequest as Q;
        if !rop_id::is_known_request(id) {
            return Err(RopError::UnknownRop {
                rop_id: id,
                offset,
                bytes: r.rest().to_vec(),
            });
        }
        let input_handle = r.u8("InputHandleIndex")?;
        let request = match id {
            rop_id::RELEASE => Q::Release {
                logon_id,
                input_handle,
            },
            rop_id::OPEN_FOLDER => Q::OpenFolder {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                folder_id: ObjectId(r.u64("FolderId")?),
                open_mode_flags: r.u8("OpenModeFlags")?,
            },
            rop_id::OPEN_MESSAGE => Q::OpenMessage {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                code_page_id: r.u16("CodePageId")?,
                folder_id: ObjectId(r.u64("FolderId")?),
                open_mode_flags: r.u8("OpenModeFlags")?,
                message_id: ObjectId(r.u64("MessageId")?),
            },
            rop_id::GET_HIERARCHY_TABLE => Q::GetHierarchyTable {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                table_flags: r.u8("TableFlags")?,
            },
            rop_id::GET_CONTENTS_TABLE => Q::GetContentsTable {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                table_flags: r.u8("TableFlags")?,
            },
            rop_id::CREATE_MESSAGE => Q::CreateMessage {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                code_page_id: r.u16("CodePageId")?,
                folder_id: ObjectId(r.u64("FolderId")?),
                associated: r.u8("AssociatedFlag")? != 0,
            },
            rop_id::GET_PROPERTIES_SPECIFIC => Q::GetPropertiesSpecific {
                logon_id,
                input_handle,
                property_size_limit: r.u16("PropertySizeLimit")?,
                want_unicode: r.u16("WantUnicode")?,
                tags: decode_tag_array(r)?,
            },
            rop_id::GET_PROPERTIES_ALL => Q::GetPropertiesAll {
                logon_id,
                input_handle,
                property_size_limit: r.u16("PropertySizeLimit")?,
                want_unicode: r.u16("WantUnicode")?,
            },
            rop_id::GET_PROPERTIES_LIST => Q::GetPropertiesList {
                logon_id,
                input_handle,
            },
            rop_id::SET_PROPERTIES => {
                let size = usize::from(r.u16("PropertyValueSize")?);
                let base = r.offset();
                let body = r.take(size, "SetProperties values")?;
                let mut inner = Reader::with_base(body, base);
                let values = read_values_u16(&mut inner)?;
                Q::SetProperties {
                    logon_id,
                    input_handle,
                    values,
                }
            }
            rop_id::DELETE_PROPERTIES => Q::DeleteProperties {
                logon_id,
                input_handle,
                tags: decode_tag_array(r)?,
            },
            rop_id::REMOVE_ALL_RECIPIENTS => Q::RemoveAllRecipients {
                logon_id,
                input_handle,
                reserved: r.u32("Reserved")?,
            },
            rop_id::MODIFY_RECIPIENTS => {
                let columns = decode_tag_array(r)?;
                let count = usize::from(r.u16("RowCount")?);
                r.check_count(count, 7, "recipient rows")?;
                let mut rows = Vec::with_capacity(count);
                for _ in 0..count {
                    let row_id = r.u32("RowId")?;
                    let recipient_type = r.u8("RecipientType")?;
                    let size = usize::from(r.u16("RecipientRowSize")?);
                    let recipient_row = r.take(size, "RecipientRow")?.to_vec();
                    rows.push(ModifyRecipientRow {
                        row_id,
                        recipient_type,
                        recipient_row,
                    });
                }
                Q::ModifyRecipients {
                    logon_id,
                    input_handle,
                    columns,
                    rows,
                }
            }
            rop_id::READ_RECIPIENTS => Q::ReadRecipients {
                logon_id,
                input_handle,
                row_id: r.u32("RowId")?,
                reserved: r.u16("Reserved")?,
            },
            rop_id::SET_COLUMNS => Q::SetColumns {
                logon_id,
                input_handle,
                set_columns_flags: r.u8("SetColumnsFlags")?,
                tags: decode_tag_array(r)?,
            },
            rop_id::SORT_TABLE => {
                let sort_table_flags = r.u8("SortTableFlags")?;
                let count = usize::from(r.u16("SortOrderCount")?);
                let categorized_count = r.u16("CategorizedCount")?;
                let expanded_count = r.u16("ExpandedCount")?;
                r.check_count(count, 5, "sort orders")?;
                let mut sort_orders = Vec::with_capacity(count);
                for _ in 0..count {
                    let ptype = r.u16("SortOrder PropertyType")?;
                    let pid = r.u16("SortOrder PropertyId")?;
                    let order = r.u8("SortOrder Order")?;
                    sort_orders.push(SortOrder {
                        tag: PropTag((u32::from(pid) << 16) | u32::from(ptype)),
                        order,
                    });
                }
                Q::SortTable {
                    logon_id,
                    input_handle,
                    sort_table_flags,
                    categorized_count,
                    expanded_count,
                    sort_orders,
                }
            }
            rop_id::RESTRICT => Q::Restrict {
                logon_id,
                input_handle,
                restrict_flags: r.u8("RestrictFlags")?,
                restriction: read_restriction_blob(r, "RestrictionDataSize")?,
            },
            rop_id::QUERY_ROWS => Q::QueryRows {
                logon_id,
                input_handle,
                query_rows_flags: r.u8("QueryRowsFlags")?,
                forward_read: r.u8("ForwardRead")? != 0,
                row_count: r.u16("RowCount")?,
            },
            rop_id::SEEK_ROW => Q::SeekRow {
                logon_id,
                input_handle,
                origin: r.u8("Origin")?,
                row_count: r.u32("RowCount")? as i32,
                want_row_moved_count: r.u8("WantRowMovedCount")? != 0,
            },
            rop_id::CREATE_FOLDER => {
                let output_handle = r.u8("OutputHandleIndex")?;
                let folder_type = r.u8("FolderType")?;
                let use_unicode = r.u8("UseUnicodeStrings")? != 0;
                let open_existing = r.u8("OpenExisting")? != 0;
                let reserved = r.u8("Reserved")?;
                let display_name = RopString::decode(r, use_unicode, "DisplayName")?;
                let comment = RopString::decode(r, use_unicode, "Comment")?;
                Q::CreateFolder {
                    logon_id,
                    input_handle,
                    output_handle,
                    folder_type,
                    use_unicode,
                    open_existing,
                    reserved,
                    display_name,
                    comment,
                }
            }
            rop_id::DELETE_FOLDER => Q::DeleteFolder {
                logon_id,
                input_handle,
                delete_folder_flags: r.u8("DeleteFolderFlags")?,
                folder_id: ObjectId(r.u64("FolderId")?),
            },
            rop_id::DELETE_MESSAGES => {
                let want_asynchronous = r.u8("WantAsynchronous")? != 0;
                let notify_non_read = r.u8("NotifyNonRead")? != 0;
                let count = usize::from(r.u16("MessageIdCount")?);
                Q::DeleteMessages {
                    logon_id,
                    input_handle,
                    want_asynchronous,
                    notify_non_read,
                    message_ids: read_ids(r, count)?,
                }
            }
            rop_id::GET_ATTACHMENT_TABLE => Q::GetAttachmentTable {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                table_flags: r.u8("TableFlags")?,
            },
            rop_id::OPEN_ATTACHMENT => Q::OpenAttachment {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                open_attachment_flags: r.u8("OpenAttachmentFlags")?,
                attachment_id: r.u32("AttachmentID")?,
            },
            rop_id::CREATE_ATTACHMENT => Q::CreateAttachment {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
            },
            rop_id::DELETE_ATTACHMENT => Q::DeleteAttachment {
                logon_id,
                input_handle,
                attachment_id: r.u32("AttachmentID")?,
            },
            rop_id::REGISTER_NOTIFICATION => {
                let output_handle = r.u8("OutputHandleIndex")?;
                let notification_types = r.u8("NotificationTypes")?;
                let reserved = r.u8("Reserved")?;
                let want_whole_store = r.u8("WantWholeStore")? != 0;
                let (folder_id, message_id) = if want_whole_store {
                    (ObjectId(0), ObjectId(0))
                } else {
                    (ObjectId(r.u64("FolderId")?), ObjectId(r.u64("MessageId")?))
                };
                Q::RegisterNotification {
                    logon_id,
                    input_handle,
                    output_handle,
                    notification_types,
                    reserved,
                    want_whole_store,
                    folder_id,
                    message_id,
                }
            }
            rop_id::OPEN_STREAM => Q::OpenStream {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                tag: PropTag(r.u32("PropertyTag")?),
                open_mode_flags: r.u8("OpenModeFlags")?,
            },
            rop_id::READ_STREAM => {
                let byte_count = r.u16("ByteCount")?;
                let maximum_byte_count = if byte_count == 0xBABE {
                    Some(r.u32("MaximumByteCount")?)
                } else {
                    None
                };
                Q::ReadStream {
                    logon_id,
                    input_handle,
                    byte_count,
                    maximum_byte_count,
                }
            }
            rop_id::WRITE_STREAM => {
                let size = usize::from(r.u16("DataSize")?);
                Q::WriteStream {
                    logon_id,
                    input_handle,
                    data: r.take(size, "Data")?.to_vec(),
                }
            }
            rop_id::SET_STREAM_SIZE => Q::SetStreamSize {
                logon_id,
                input_handle,
                stream_size: r.u64("StreamSize")?,
            },
            rop_id::SUBMIT_MESSAGE => Q::SubmitMessage {
                logon_id,
                input_handle,
                submit_flags: r.u8("SubmitFlags")?,
            },
            rop_id::GET_RULES_TABLE => Q::GetRulesTable {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                table_flags: r.u8("TableFlags")?,
            },
            rop_id::OPEN_EMBEDDED_MESSAGE => Q::OpenEmbeddedMessage {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                code_page_id: r.u16("CodePageId")?,
                open_mode_flags: r.u8("OpenModeFlags")?,
            },
            rop_id::LONG_TERM_ID_FROM_ID => Q::LongTermIdFromId {
                logon_id,
                input_handle,
                object_id: ObjectId(r.u64("ObjectId")?),
            },
            rop_id::ID_FROM_LONG_TERM_ID => {
                let at = r.offset();
                let bytes = r.take(LongTermId::SIZE, "LongTermId")?;
                Q::IdFromLongTermId {
                    logon_id,
                    input_handle,
                    long_term_id: LongTermId::decode(bytes, at)?,
                }
            }
            rop_id::FAST_TRANSFER_SOURCE_GET_BUFFER => {
                let buffer_size = r.u16("BufferSize")?;
                let maximum_buffer_size = if buffer_size == 0xBABE {
                    Some(r.u16("MaximumBufferSize")?)
                } else {
                    None
                };
                Q::FastTransferSourceGetBuffer {
                    logon_id,
                    input_handle,
                    buffer_size,
                    maximum_buffer_size,
                }
            }
            rop_id::FIND_ROW => {
                let find_row_flags = r.u8("FindRowFlags")?;
                let restriction = read_restriction_blob(r, "RestrictionDataSize")?;
                let origin = r.u8("Origin")?;
                let size = usize::from(r.u16("BookmarkSize")?);
                let bookmark = r.take(size, "Bookmark")?.to_vec();
                Q::FindRow {
                    logon_id,
                    input_handle,
                    find_row_flags,
                    restriction,
                    origin,
                    bookmark,
                }
            }
            rop_id::GET_NAMES_FROM_PROPERTY_IDS => {
                let count = usize::from(r.u16("PropertyIdCount")?);
                r.check_count(count, 2, "property ids")?;
                let mut property_ids = Vec::with_capacity(count);
                for _ in 0..count {
                    property_ids.push(r.u16("PropertyId")?);
                }
                Q::GetNamesFromPropertyIds {
                    logon_id,
                    input_handle,
                    property_ids,
                }
            }
            rop_id::GET_PROPERTY_IDS_FROM_NAMES => {
                let flags = r.u8("Flags")?;
                let count = usize::from(r.u16("PropertyNameCount")?);
                r.check_count(count, 18, "property names")?;
                let mut names = Vec::with_capacity(count);
                for _ in 0..count {
                    names.push(PropertyName::decode(r)?);
                }
                Q::GetPropertyIdsFromNames {
                    logon_id,
                    input_handle,
                    flags,
                    names,
                }
            }
            rop_id::COMMIT_STREAM => Q::CommitStream {
                logon_id,
                input_handle,
            },
            rop_id::GET_STREAM_SIZE => Q::GetStreamSize {
                logon_id,
                input_handle,
            },
            rop_id::SET_READ_FLAGS => {
                let want_asynchronous = r.u8("WantAsynchronous")? != 0;
                let read_flags = r.u8("ReadFlags")?;
                let count = usize::from(r.u16("MessageIdCount")?);
                Q::SetReadFlags {
                    logon_id,
                    input_handle,
                    want_asynchronous,
                    read_flags,
                    message_ids: read_ids(r, count)?,
                }
            }
            rop_id::SYNCHRONIZATION_CONFIGURE => {
                let output_handle = r.u8("OutputHandleIndex")?;
                let synchronization_type = r.u8("SynchronizationType")?;
                let send_options = r.u8("SendOptions")?;
                let synchronization_flags = r.u16("SynchronizationFlags")?;
                let size = usize::from(r.u16("RestrictionDataSize")?);
                let restriction_data = r.take(size, "RestrictionData")?.to_vec();
                let synchronization_extra_flags = r.u32("SynchronizationExtraFlags")?;
                let tags = decode_tag_array(r)?;
                Q::SynchronizationConfigure {
                    logon_id,
                    input_handle,
                    output_handle,
                    synchronization_type,
                    send_options,
                    synchronization_flags,
                    restriction_data,
                    synchronization_extra_flags,
                    tags,
                }
            }
            rop_id::SYNCHRONIZATION_IMPORT_MESSAGE_CHANGE => {
                Q::SynchronizationImportMessageChange {
                    logon_id,
                    input_handle,
                    output_handle: r.u8("OutputHandleIndex")?,
                    import_flag: r.u8("ImportFlag")?,
                    values: read_values_u16(r)?,
                }
            }
            rop_id::SYNCHRONIZATION_IMPORT_HIERARCHY_CHANGE => {
                Q::SynchronizationImportHierarchyChange {
                    logon_id,
                    input_handle,
                    hierarchy_values: read_values_u16(r)?,
                    values: read_values_u16(r)?,
                }
            }
            rop_id::SYNCHRONIZATION_IMPORT_DELETES => Q::SynchronizationImportDeletes {
                logon_id,
                input_handle,
                import_delete_flags: r.u8("ImportDeleteFlags")?,
                values: read_values_u16(r)?,
            },
            rop_id::SYNCHRONIZATION_UPLOAD_STATE_STREAM_BEGIN => {
                Q::SynchronizationUploadStateStreamBegin {
                    logon_id,
                    input_handle,
                    state_property: PropTag(r.u32("StateProperty")?),
                    transfer_buffer_size: r.u32("TransferBufferSize")?,
                }
            }
            rop_id::SYNCHRONIZATION_UPLOAD_STATE_STREAM_CONTINUE => {
                Q::SynchronizationUploadStateStreamContinue {
                    logon_id,
                    input_handle,
                    stream_data: read_blob32(r, "StreamData")?,
                }
            }
            rop_id::SYNCHRONIZATION_UPLOAD_STATE_STREAM_END => {
                Q::SynchronizationUploadStateStreamEnd {
                    logon_id,
                    input_handle,
                }
            }
            rop_id::SYNCHRONIZATION_IMPORT_MESSAGE_MOVE => Q::SynchronizationImportMessageMove {
                logon_id,
                input_handle,
                source_folder_id: read_blob32(r, "SourceFolderId")?,
                source_message_id: read_blob32(r, "SourceMessageId")?,
                predecessor_change_list: read_blob32(r, "PredecessorChangeList")?,
                destination_message_id: read_blob32(r, "DestinationMessageId")?,
                change_number: read_blob32(r, "ChangeNumber")?,
            },
            rop_id::SYNCHRONIZATION_OPEN_COLLECTOR => Q::SynchronizationOpenCollector {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                is_contents_collector: r.u8("IsContentsCollector")? != 0,
            },
            rop_id::GET_LOCAL_REPLICA_IDS => Q::GetLocalReplicaIds {
                logon_id,
                input_handle,
                id_count: r.u32("IdCount")?,
            },
            rop_id::SYNCHRONIZATION_IMPORT_READ_STATE_CHANGES => {
                let size = usize::from(r.u16("MessageReadStatesSize")?);
                let base = r.offset();
                let body = r.take(size, "MessageReadStates")?;
                let mut inner = Reader::with_base(body, base);
                let mut read_states = Vec::new();
                while !inner.is_empty() {
                    let id_size = usize::from(inner.u16("MessageIdSize")?);
                    let message_id = inner.take(id_size, "MessageId")?.to_vec();
                    let mark_as_read = inner.u8("MarkAsRead")? != 0;
                    read_states.push(MessageReadState {
                        message_id,
                        mark_as_read,
                    });
                }
                Q::SynchronizationImportReadStateChanges {
                    logon_id,
                    input_handle,
                    read_states,
                }
            }
            rop_id::SYNCHRONIZATION_GET_TRANSFER_STATE => Q::SynchronizationGetTransferState {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
            },
            rop_id::FAST_TRANSFER_SOURCE_COPY_MESSAGES => {
                let output_handle = r.u8("OutputHandleIndex")?;
                let count = usize::from(r.u16("MessageIdCount")?);
                let message_ids = read_ids(r, count)?;
                Q::FastTransferSourceCopyMessages {
                    logon_id,
                    input_handle,
                    output_handle,
                    message_ids,
                    copy_flags: r.u8("CopyFlags")?,
                    send_options: r.u8("SendOptions")?,
                }
            }
            rop_id::FAST_TRANSFER_SOURCE_COPY_FOLDER => Q::FastTransferSourceCopyFolder {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                copy_flags: r.u8("CopyFlags")?,
                send_options: r.u8("SendOptions")?,
            },
            rop_id::FAST_TRANSFER_SOURCE_COPY_TO => Q::FastTransferSourceCopyTo {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                level: r.u8("Level")?,
                copy_flags: r.u32("CopyFlags")?,
                send_options: r.u8("SendOptions")?,
                tags: decode_tag_array(r)?,
            },
            rop_id::FAST_TRANSFER_SOURCE_COPY_PROPERTIES => Q::FastTransferSourceCopyProperties {
                logon_id,
                input_handle,
                output_handle: r.u8("OutputHandleIndex")?,
                level: r.u8("Level")?,
                copy_flags: r.u8("CopyFlags")?,
                send_options: r.u8("SendOptions")?,
                tags: decode_tag_array(r)?,
            },
            rop_id::HARD_DELETE_MESSAGES_AND_SUBFOLDERS => Q::HardDeleteMessagesAndSubfolders {
                logon_id,
                input_handle,
                want_asynchronous: r.u8("WantAsynchronous")? != 0,
                want_delete_associated: r.u8("WantDeleteAssociated")? != 0,
            },
            rop_id::HARD_DELETE_MESSAGES => {
                let want_asynchronous = r.u8("WantAsynchronous")? != 0;
                let notify_non_read = r.u8("NotifyNonRead")? != 0;
                let count = usize::from(r.u16("MessageIdCount")?);
                Q::HardDeleteMessages {
                    logon_id,
                    input_handle,
                    want_asynchronous,
                    notify_non_read,
                    message_ids: read_ids(r, count)?,
                }
            }
            _ => {
                return Err(RopError::UnknownRop {
                    rop_id: id,
                    offset,
                    bytes: r.rest().to_vec(),
                });
            }
        };
        Ok(request)
    }

    /// Appends the encoding of this request, or nothing when
    /// [`RopRequest::try_encode`] fails (a field too long for its size field).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        if self.try_encode(out).is_err() {
            out.truncate(start);
        }
    }

    /// Appends the encoding of this request.
    ///
    /// # Errors
    /// [`RopError::TooLong`] or [`RopError::Wire`] when a length or count does not fit its
    /// wire field. `out` may then hold part of the request; truncate it to its old length.
    pub fn try_encode(&self, out: &mut Vec<u8>) -> Result<(), RopError> {
        use RopRequest as Q;
        out.put_u8(self.rop_id());
        match self {
            Q::Logon {
                logon_id,
                output_handle,
                logon_flags,
                open_flags,
                store_state,
                essdn,
            } => {
                out.put(&[*logon_id, *output_handle, *logon_flags]);
                out.put_u32(*open_flags);
                out.put_u32(*store_state);
                if essdn.is_empty() {
                    out.put_u16(0);
                } else {
                    out.put_u16(len_u16(essdn.len() + 1, "EssdnSize")?);
                    out.put(essdn);
                    out.put_u8(0);
                }
            }
            Q::SaveChangesMessage {
                logon_id,
                response_handle,
                input_handle,
                save_flags,
            }
            | Q::SaveChangesAttachment {
                logon_id,
                response_handle,
                input_handle,
                save_flags,
            } => {
                out.put(&[*logon_id, *response_handle, *input_handle, *save_flags]);
            }
            Q::SetMessageReadFlag {
                logon_id,
                response_handle,
                input_handle,
                read_flags,
            } => {
                out.put(&[*logon_id, *response_handle, *input_handle, *read_flags]);
            }
            Q::MoveCopyMessages {
                logon_id,
                source_handle,
                destination_handle,
                message_ids,
                want_asynchronous,
                want_copy,
            } => {
                out.put(&[*logon_id, *source_handle, *destination_handle]);
                put_ids(out, message_ids)?;
                out.put(&[u8::from(*want_asynchronous), u8::from(*want_copy)]);
            }
            Q::MoveFolder {
                logon_id,
                source_handle,
                destination_handle,
                want_asynchronous,
                use_unicode,
                folder_id,
                new_folder_name,
            } => {
                out.put(&[*logon_id, *source_handle, *destination_handle]);
                out.put(&[u8::from(*want_asynchronous), u8::from(*use_unicode)]);
                out.put_u64(folder_id.0);
                new_folder_name.encode(out);
            }
            Q::CopyFolder {
                logon_id,
                source_handle,
                destination_handle,
                want_asynchronous,
                want_recursive,
                use_unicode,
                folder_id,
                new_folder_name,
            } => {
                out.put(&[*logon_id, *source_handle, *destination_handle]);
                out.put(&[
                    u8::from(*want_asynchronous),
                    u8::from(*want_recursive),
                    u8::from(*use_unicode),
                ]);
                out.put_u64(folder_id.0);
                new_folder_name.encode(out);
            }
            _ => self.encode_with_input(out)?,
        }
        Ok(())
    }

    fn encode_with_input(&self, out: &mut Vec<u8>) -> Result<(), RopError> {
        use RopRequest as Q;
        match self {
            Q::Release {
                logon_id,
                input_handle,
            }
            | Q::GetPropertiesList {
                logon_id,
                input_handle,
            }
            | Q::CommitStream {
                logon_id,
                input_handle,
            }
            | Q::GetStreamSize {
                logon_id,
                input_handle,
            }
            | Q::SynchronizationUploadStateStreamEnd {
                logon_id,
                input_handle,
            } => {
                out.put(&[*logon_id, *input_handle]);
            }
            Q::OpenFolder {
                logon_id,
                input_handle,
                output_handle,
                folder_id,
                open_mode_flags,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle]);
                out.put_u64(folder_id.0);
                out.put_u8(*open_mode_flags);
            }
            Q::OpenMessage {
                logon_id,
                input_handle,
                output_handle,
                code_page_id,
                folder_id,
                open_mode_flags,
                message_id,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle]);
                out.put_u16(*code_page_id);
                out.put_u64(folder_id.0);
                out.put_u8(*open_mode_flags);
                out.put_u64(message_id.0);
            }
            Q::GetHierarchyTable {
                logon_id,
                input_handle,
                output_handle,
                table_flags,
            }
            | Q::GetContentsTable {
                logon_id,
                input_handle,
                output_handle,
                table_flags,
            }
            | Q::GetAttachmentTable {
                logon_id,
                input_handle,
                output_handle,
                table_flags,
            }
            | Q::GetRulesTable {
                logon_id,
                input_handle,
                output_handle,
                table_flags,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle, *table_flags]);
            }
            Q::CreateMessage {
                logon_id,
                input_handle,
                output_handle,
                code_page_id,
                folder_id,
                associated,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle]);
                out.put_u16(*code_page_id);
                out.put_u64(folder_id.0);
                out.put_u8(u8::from(*associated));
            }
            Q::GetPropertiesSpecific {
                logon_id,
                input_handle,
                property_size_limit,
                want_unicode,
                tags,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u16(*property_size_limit);
                out.put_u16(*want_unicode);
                try_encode_tag_array(out, tags)?;
            }
            Q::GetPropertiesAll {
                logon_id,
                input_handle,
                property_size_limit,
                want_unicode,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u16(*property_size_limit);
                out.put_u16(*want_unicode);
            }
            Q::SetProperties {
                logon_id,
                input_handle,
                values,
            } => {
                out.put(&[*logon_id, *input_handle]);
                let mut body = Vec::new();
                put_values_u16(&mut body, values)?;
                out.put_u16(len_u16(body.len(), "PropertyValueSize")?);
                out.put(&body);
            }
            Q::DeleteProperties {
                logon_id,
                input_handle,
                tags,
            } => {
                out.put(&[*logon_id, *input_handle]);
                try_encode_tag_array(out, tags)?;
            }
            Q::RemoveAllRecipients {
                logon_id,
                input_handle,
                reserved,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u32(*reserved);
            }
            Q::ModifyRecipients {
                logon_id,
                input_handle,
                columns,
                rows,
            } => {
                out.put(&[*logon_id, *input_handle]);
                try_encode_tag_array(out, columns)?;
                out.put_u16(len_u16(rows.len(), "RowCount")?);
                for row in rows {
                    out.put_u32(row.row_id);
                    out.put_u8(row.recipient_type);
                    out.put_u16(len_u16(row.recipient_row.len(), "RecipientRowSize")?);
                    out.put(&row.recipient_row);
                }
            }
            Q::ReadRecipients {
                logon_id,
                input_handle,
                row_id,
                reserved,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u32(*row_id);
                out.put_u16(*reserved);
            }
            Q::SetColumns {
                logon_id,
                input_handle,
                set_columns_flags,
                tags,
            } => {
                out.put(&[*logon_id, *input_handle, *set_columns_flags]);
                try_encode_tag_array(out, tags)?;
            }
            Q::SortTable {
                logon_id,
                input_handle,
                sort_table_flags,
                categorized_count,
                expanded_count,
                sort_orders,
            } => {
                out.put(&[*logon_id, *input_handle, *sort_table_flags]);
                out.put_u16(len_u16(sort_orders.len(), "SortOrderCount")?);
                out.put_u16(*categorized_count);
                out.put_u16(*expanded_count);
                for sort in sort_orders {
                    out.put_u16(sort.tag.ptype().0);
                    out.put_u16(sort.tag.id());
                    out.put_u8(sort.order);
                }
            }
            Q::Restrict {
                logon_id,
                input_handle,
                restrict_flags,
                restriction,
            } => {
                out.put(&[*logon_id, *input_handle, *restrict_flags]);
                put_restriction_blob(out, restriction)?;
            }
            Q::QueryRows {
                logon_id,
                input_handle,
                query_rows_flags,
                forward_read,
                row_count,
            } => {
                out.put(&[
                    *logon_id,
                    *input_handle,
                    *query_rows_flags,
                    u8::from(*forward_read),
                ]);
                out.put_u16(*row_count);
            }
            Q::SeekRow {
                logon_id,
                input_handle,
                origin,
                row_count,
                want_row_moved_count,
            } => {
                out.put(&[*logon_id, *input_handle, *origin]);
                out.put_u32(*row_count as u32);
                out.put_u8(u8::from(*want_row_moved_count));
            }
            Q::CreateFolder {
                logon_id,
                input_handle,
                output_handle,
                folder_type,
                use_unicode,
                open_existing,
                reserved,
                display_name,
                comment,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle, *folder_type]);
                out.put(&[u8::from(*use_unicode), u8::from(*open_existing), *reserved]);
                display_name.encode(out);
                comment.encode(out);
            }
            Q::DeleteFolder {
                logon_id,
                input_handle,
                delete_folder_flags,
                folder_id,
            } => {
                out.put(&[*logon_id, *input_handle, *delete_folder_flags]);
                out.put_u64(folder_id.0);
            }
            Q::DeleteMessages {
                logon_id,
                input_handle,
                want_asynchronous,
                notify_non_read,
                message_ids,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put(&[u8::from(*want_asynchronous), u8::from(*notify_non_read)]);
                put_ids(out, message_ids)?;
            }
            Q::OpenAttachment {
                logon_id,
                input_handle,
                output_handle,
                open_attachment_flags,
                attachment_id,
            } => {
                out.put(&[
                    *logon_id,
                    *input_handle,
                    *output_handle,
                    *open_attachment_flags,
                ]);
                out.put_u32(*attachment_id);
            }
            Q::CreateAttachment {
                logon_id,
                input_handle,
                output_handle,
            }
            | Q::SynchronizationGetTransferState {
                logon_id,
                input_handle,
                output_handle,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle]);
            }
            Q::DeleteAttachment {
                logon_id,
                input_handle,
                attachment_id,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u32(*attachment_id);
            }
            Q::RegisterNotification {
                logon_id,
                input_handle,
                output_handle,
                notification_types,
                reserved,
                want_whole_store,
                folder_id,
                message_id,
            } => {
                out.put(&[
                    *logon_id,
                    *input_handle,
                    *output_handle,
                    *notification_types,
                ]);
                out.put(&[*reserved, u8::from(*want_whole_store)]);
                if !*want_whole_store {
                    out.put_u64(folder_id.0);
                    out.put_u64(message_id.0);
                }
            }
            Q::OpenStream {
                logon_id,
                input_handle,
                output_handle,
                tag,
                open_mode_flags,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle]);
                out.put_u32(tag.0);
                out.put_u8(*open_mode_flags);
            }
            Q::ReadStream {
                logon_id,
                input_handle,
                byte_count,
                maximum_byte_count,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u16(*byte_count);
                if *byte_count == 0xBABE {
                    out.put_u32(maximum_byte_count.unwrap_or(0));
                }
            }
            Q::WriteStream {
                logon_id,
                input_handle,
                data,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u16(len_u16(data.len(), "DataSize")?);
                out.put(data);
            }
            Q::SetStreamSize {
                logon_id,
                input_handle,
                stream_size,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u64(*stream_size);
            }
            Q::SubmitMessage {
                logon_id,
                input_handle,
                submit_flags,
            } => {
                out.put(&[*logon_id, *input_handle, *submit_flags]);
            }
            Q::OpenEmbeddedMessage {
                logon_id,
                input_handle,
                output_handle,
                code_page_id,
                open_mode_flags,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle]);
                out.put_u16(*code_page_id);
                out.put_u8(*open_mode_flags);
            }
            Q::LongTermIdFromId {
                logon_id,
                input_handle,
                object_id,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u64(object_id.0);
            }
            Q::IdFromLongTermId {
                logon_id,
                input_handle,
                long_term_id,
            } => {
                out.put(&[*logon_id, *input_handle]);
                long_term_id.encode(out);
            }
            Q::FastTransferSourceGetBuffer {
                logon_id,
                input_handle,
                buffer_size,
                maximum_buffer_size,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u16(*buffer_size);
                if *buffer_size == 0xBABE {
                    out.put_u16(maximum_buffer_size.unwrap_or(0));
                }
            }
            Q::FindRow {
                logon_id,
                input_handle,
                find_row_flags,
                restriction,
                origin,
                bookmark,
            } => {
                out.put(&[*logon_id, *input_handle, *find_row_flags]);
                put_restriction_blob(out, restriction)?;
                out.put_u8(*origin);
                out.put_u16(len_u16(bookmark.len(), "BookmarkSize")?);
                out.put(bookmark);
            }
            Q::GetNamesFromPropertyIds {
                logon_id,
                input_handle,
                property_ids,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u16(len_u16(property_ids.len(), "PropertyIdCount")?);
                for id in property_ids {
                    out.put_u16(*id);
                }
            }
            Q::GetPropertyIdsFromNames {
                logon_id,
                input_handle,
                flags,
                names,
            } => {
                out.put(&[*logon_id, *input_handle, *flags]);
                out.put_u16(len_u16(names.len(), "PropertyNameCount")?);
                for name in names {
                    name.encode(out);
                }
            }
            Q::SetReadFlags {
                logon_id,
                input_handle,
                want_asynchronous,
                read_flags,
                message_ids,
            } => {
                out.put(&[
                    *logon_id,
                    *input_handle,
                    u8::from(*want_asynchronous),
                    *read_flags,
                ]);
                put_ids(out, message_ids)?;
            }
            Q::SynchronizationConfigure {
                logon_id,
                input_handle,
                output_handle,
                synchronization_type,
                send_options,
                synchronization_flags,
                restriction_data,
                synchronization_extra_flags,
                tags,
            } => {
                out.put(&[
                    *logon_id,
                    *input_handle,
                    *output_handle,
                    *synchronization_type,
                ]);
                out.put_u8(*send_options);
                out.put_u16(*synchronization_flags);
                out.put_u16(len_u16(restriction_data.len(), "RestrictionDataSize")?);
                out.put(restriction_data);
                out.put_u32(*synchronization_extra_flags);
                try_encode_tag_array(out, tags)?;
            }
            Q::SynchronizationImportMessageChange {
                logon_id,
                input_handle,
                output_handle,
                import_flag,
                values,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle, *import_flag]);
                put_values_u16(out, values)?;
            }
            Q::SynchronizationImportHierarchyChange {
                logon_id,
                input_handle,
                hierarchy_values,
                values,
            } => {
                out.put(&[*logon_id, *input_handle]);
                put_values_u16(out, hierarchy_values)?;
                put_values_u16(out, values)?;
            }
            Q::SynchronizationImportDeletes {
                logon_id,
                input_handle,
                import_delete_flags,
                values,
            } => {
                out.put(&[*logon_id, *input_handle, *import_delete_flags]);
                put_values_u16(out, values)?;
            }
            Q::SynchronizationUploadStateStreamBegin {
                logon_id,
                input_handle,
                state_property,
                transfer_buffer_size,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u32(state_property.0);
                out.put_u32(*transfer_buffer_size);
            }
            Q::SynchronizationUploadStateStreamContinue {
                logon_id,
                input_handle,
                stream_data,
            } => {
                out.put(&[*logon_id, *input_handle]);
                put_blob32(out, stream_data, "StreamDataSize")?;
            }
            Q::SynchronizationImportMessageMove {
                logon_id,
                input_handle,
                source_folder_id,
                source_message_id,
                predecessor_change_list,
                destination_message_id,
                change_number,
            } => {
                out.put(&[*logon_id, *input_handle]);
                for (blob, what) in [
                    (source_folder_id, "SourceFolderIdSize"),
                    (source_message_id, "SourceMessageIdSize"),
                    (predecessor_change_list, "PredecessorChangeListSize"),
                    (destination_message_id, "DestinationMessageIdSize"),
                    (change_number, "ChangeNumberSize"),
                ] {
                    put_blob32(out, blob, what)?;
                }
            }
            Q::SynchronizationOpenCollector {
                logon_id,
                input_handle,
                output_handle,
                is_contents_collector,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle]);
                out.put_u8(u8::from(*is_contents_collector));
            }
            Q::GetLocalReplicaIds {
                logon_id,
                input_handle,
                id_count,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put_u32(*id_count);
            }
            Q::SynchronizationImportReadStateChanges {
                logon_id,
                input_handle,
                read_states,
            } => {
                out.put(&[*logon_id, *input_handle]);
                let mut body = Vec::new();
                for state in read_states {
                    body.put_u16(len_u16(state.message_id.len(), "MessageIdSize")?);
                    body.put(&state.message_id);
                    body.put_u8(u8::from(state.mark_as_read));
                }
                out.put_u16(len_u16(body.len(), "MessageReadStatesSize")?);
                out.put(&body);
            }
            Q::FastTransferSourceCopyMessages {
                logon_id,
                input_handle,
                output_handle,
                message_ids,
                copy_flags,
                send_options,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle]);
                put_ids(out, message_ids)?;
                out.put(&[*copy_flags, *send_options]);
            }
            Q::FastTransferSourceCopyFolder {
                logon_id,
                input_handle,
                output_handle,
                copy_flags,
                send_options,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle]);
                out.put(&[*copy_flags, *send_options]);
            }
            Q::FastTransferSourceCopyTo {
                logon_id,
                input_handle,
                output_handle,
                level,
                copy_flags,
                send_options,
                tags,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle, *level]);
                out.put_u32(*copy_flags);
                out.put_u8(*send_options);
                try_encode_tag_array(out, tags)?;
            }
            Q::FastTransferSourceCopyProperties {
                logon_id,
                input_handle,
                output_handle,
                level,
                copy_flags,
                send_options,
                tags,
            } => {
                out.put(&[*logon_id, *input_handle, *output_handle, *level]);
                out.put(&[*copy_flags, *send_options]);
                try_encode_tag_array(out, tags)?;
            }
            Q::HardDeleteMessagesAndSubfolders {
                logon_id,
                input_handle,
                want_asynchronous,
                want_delete_associated,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put(&[
                    u8::from(*want_asynchronous),
                    u8::from(*want_delete_associated),
                ]);
            }
            Q::HardDeleteMessages {
                logon_id,
                input_handle,
                want_asynchronous,
                notify_non_read,
                message_ids,
            } => {
                out.put(&[*logon_id, *input_handle]);
                out.put(&[u8::from(*want_asynchronous), u8::from(*notify_non_read)]);
                put_ids(out, message_ids)?;
            }
            // Encoded in `try_encode`.
            Q::Logon { .. }
            | Q::SetMessageReadFlag { .. }
            | Q::SaveChangesMessage { .. }
            | Q::SaveChangesAttachment { .. }
            | Q::MoveCopyMessages { .. }
            | Q::MoveFolder { .. }
            | Q::CopyFolder { .. } => {}
        }
        Ok(())
    }
}
