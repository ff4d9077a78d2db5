//! Property tags a sync client needs (MS-OXPROPS, MS-OXCFXICS 2.2.1), as named constants.

use super::PropTag;

/// PidTagFolderId (0x67480014): Folder id (FID).
pub const PID_TAG_FOLDER_ID: PropTag = PropTag(0x67480014);
/// PidTagParentFolderId (0x67490014): Parent folder id.
pub const PID_TAG_PARENT_FOLDER_ID: PropTag = PropTag(0x67490014);
/// PidTagMid (0x674A0014): Message id (MID).
pub const PID_TAG_MID: PropTag = PropTag(0x674A0014);
/// PidTagInstID (0x674D0014): Table row instance id.
pub const PID_TAG_INST_ID: PropTag = PropTag(0x674D0014);
/// PidTagInstanceNum (0x674E0003): Table row instance number.
pub const PID_TAG_INSTANCE_NUM: PropTag = PropTag(0x674E0003);
/// PidTagChangeNumber (0x67A40014): Change number (CN), shaped like a MID.
pub const PID_TAG_CHANGE_NUMBER: PropTag = PropTag(0x67A40014);
/// PidTagChangeKey (0x65E20102): XID of the last change.
pub const PID_TAG_CHANGE_KEY: PropTag = PropTag(0x65E20102);
/// PidTagPredecessorChangeList (0x65E30102): Predecessor change list (SizedXids).
pub const PID_TAG_PREDECESSOR_CHANGE_LIST: PropTag = PropTag(0x65E30102);
/// PidTagSourceKey (0x65E00102): XID identifying the object across sessions.
pub const PID_TAG_SOURCE_KEY: PropTag = PropTag(0x65E00102);
/// PidTagParentSourceKey (0x65E10102): Source key of the parent folder.
pub const PID_TAG_PARENT_SOURCE_KEY: PropTag = PropTag(0x65E10102);
/// PidTagLastModificationTime (0x30080040): Last modification time.
pub const PID_TAG_LAST_MODIFICATION_TIME: PropTag = PropTag(0x30080040);
/// PidTagCreationTime (0x30070040): Creation time.
pub const PID_TAG_CREATION_TIME: PropTag = PropTag(0x30070040);
/// PidTagLocalCommitTime (0x67090040): Time of the last local commit of an item.
pub const PID_TAG_LOCAL_COMMIT_TIME: PropTag = PropTag(0x67090040);
/// PidTagLocalCommitTimeMax (0x670A0040): Latest local commit time in a folder.
pub const PID_TAG_LOCAL_COMMIT_TIME_MAX: PropTag = PropTag(0x670A0040);
/// PidTagDeletedCountTotal (0x670B0003): Count of deleted items in a folder.
pub const PID_TAG_DELETED_COUNT_TOTAL: PropTag = PropTag(0x670B0003);
/// PidTagMessageFlags (0x0E070003): Message flags (0x1 read, 0x2 unmodified, 0x10 has attachments, 0x40 FAI).
pub const PID_TAG_MESSAGE_FLAGS: PropTag = PropTag(0x0E070003);
/// PidTagRead (0x0E69000B): Read state.
pub const PID_TAG_READ: PropTag = PropTag(0x0E69000B);
/// PidTagAssociated (0x67AA000B): Whether the message is folder-associated (FAI).
pub const PID_TAG_ASSOCIATED: PropTag = PropTag(0x67AA000B);
/// PidTagMessageSize (0x0E080003): Message size in bytes.
pub const PID_TAG_MESSAGE_SIZE: PropTag = PropTag(0x0E080003);
/// PidTagSubject (0x0037001F): Subject.
pub const PID_TAG_SUBJECT: PropTag = PropTag(0x0037001F);
/// PidTagNormalizedSubject (0x0E1D001F): Subject without its prefix.
pub const PID_TAG_NORMALIZED_SUBJECT: PropTag = PropTag(0x0E1D001F);
/// PidTagSubjectPrefix (0x003D001F): Subject prefix such as "RE: ".
pub const PID_TAG_SUBJECT_PREFIX: PropTag = PropTag(0x003D001F);
/// PidTagMessageClass (0x001A001F): Message class such as IPM.Note.
pub const PID_TAG_MESSAGE_CLASS: PropTag = PropTag(0x001A001F);
/// PidTagMessageClass_A (0x001A001E): Message class as an 8-bit string.
pub const PID_TAG_MESSAGE_CLASS_STRING8: PropTag = PropTag(0x001A001E);
/// PidTagMessageDeliveryTime (0x0E060040): Delivery time.
pub const PID_TAG_MESSAGE_DELIVERY_TIME: PropTag = PropTag(0x0E060040);
/// PidTagHasAttachments (0x0E1B000B): Whether the message has attachments.
pub const PID_TAG_HAS_ATTACHMENTS: PropTag = PropTag(0x0E1B000B);
/// PidTagEntryId (0x0FFF0102): Entry id.
pub const PID_TAG_ENTRY_ID: PropTag = PropTag(0x0FFF0102);
/// PidTagParentEntryId (0x0E090102): Entry id of the parent folder.
pub const PID_TAG_PARENT_ENTRY_ID: PropTag = PropTag(0x0E090102);
/// PidTagInstanceKey (0x0FF60102): Table row instance key.
pub const PID_TAG_INSTANCE_KEY: PropTag = PropTag(0x0FF60102);
/// PidTagRecordKey (0x0FF90102): Record key.
pub const PID_TAG_RECORD_KEY: PropTag = PropTag(0x0FF90102);
/// PidTagDisplayName (0x3001001F): Display name (folders, recipients).
pub const PID_TAG_DISPLAY_NAME: PropTag = PropTag(0x3001001F);
/// PidTagContentCount (0x36020003): Number of messages in a folder.
pub const PID_TAG_CONTENT_COUNT: PropTag = PropTag(0x36020003);
/// PidTagContentUnreadCount (0x36030003): Number of unread messages in a folder.
pub const PID_TAG_CONTENT_UNREAD_COUNT: PropTag = PropTag(0x36030003);
/// PidTagSubfolders (0x360A000B): Whether the folder has subfolders.
pub const PID_TAG_SUBFOLDERS: PropTag = PropTag(0x360A000B);
/// PidTagContainerClass (0x3613001F): Folder class such as IPF.Note.
pub const PID_TAG_CONTAINER_CLASS: PropTag = PropTag(0x3613001F);
/// PidTagLastModifierName (0x3FFA001F): Name of the last modifier.
pub const PID_TAG_LAST_MODIFIER_NAME: PropTag = PropTag(0x3FFA001F);
/// PidTagHierRev (0x40820040): Folder hierarchy revision time.
pub const PID_TAG_HIER_REV: PropTag = PropTag(0x40820040);
/// PidTagDepth (0x30050003): Depth of a row in a hierarchy table.
pub const PID_TAG_DEPTH: PropTag = PropTag(0x30050003);
/// PidTagFolderType (0x36010003): Folder type.
pub const PID_TAG_FOLDER_TYPE: PropTag = PropTag(0x36010003);
/// PidTagRowType (0x0FF50003): Row type of a categorized table.
pub const PID_TAG_ROW_TYPE: PropTag = PropTag(0x0FF50003);
/// PidTagSenderName (0x0C1A001F): Sender display name.
pub const PID_TAG_SENDER_NAME: PropTag = PropTag(0x0C1A001F);
/// PidTagSentRepresentingName (0x0042001F): Display name of the represented sender.
pub const PID_TAG_SENT_REPRESENTING_NAME: PropTag = PropTag(0x0042001F);
/// PidTagBody (0x1000001F): Plain text body.
pub const PID_TAG_BODY: PropTag = PropTag(0x1000001F);
/// PidTagRtfInSync (0x0E1F000B): Whether the RTF body matches the plain body.
pub const PID_TAG_RTF_IN_SYNC: PropTag = PropTag(0x0E1F000B);
/// PidTagInternetCodepage (0x3FDE0003): Code page of the Internet body.
pub const PID_TAG_INTERNET_CODEPAGE: PropTag = PropTag(0x3FDE0003);
/// PidTagMessageRecipients (0x0E12000D): Recipients subobject (FastTransfer and restrictions).
pub const PID_TAG_MESSAGE_RECIPIENTS: PropTag = PropTag(0x0E12000D);
/// PidTagMessageAttachments (0x0E13000D): Attachments subobject (FastTransfer and restrictions).
pub const PID_TAG_MESSAGE_ATTACHMENTS: PropTag = PropTag(0x0E13000D);
/// PidTagRecipientType (0x0C150003): Recipient type (1 To, 2 Cc, 3 Bcc).
pub const PID_TAG_RECIPIENT_TYPE: PropTag = PropTag(0x0C150003);
/// PidTagAddressType (0x3002001F): Address type such as SMTP.
pub const PID_TAG_ADDRESS_TYPE: PropTag = PropTag(0x3002001F);
/// PidTagEmailAddress (0x3003001F): E-mail address.
pub const PID_TAG_EMAIL_ADDRESS: PropTag = PropTag(0x3003001F);
/// PidTagSmtpAddress (0x39FE001F): SMTP address.
pub const PID_TAG_SMTP_ADDRESS: PropTag = PropTag(0x39FE001F);
/// PidTagRowid (0x30000003): Row id of a recipient or attachment.
pub const PID_TAG_ROWID: PropTag = PropTag(0x30000003);
/// PidTagAttachNumber (0x0E210003): Attachment number.
pub const PID_TAG_ATTACH_NUMBER: PropTag = PropTag(0x0E210003);
/// PidTagAttachMethod (0x37050003): Attachment method (1 by value).
pub const PID_TAG_ATTACH_METHOD: PropTag = PropTag(0x37050003);
/// PidTagAttachLongFilename (0x3707001F): Attachment file name.
pub const PID_TAG_ATTACH_LONG_FILENAME: PropTag = PropTag(0x3707001F);
/// PidTagAttachDataBinary (0x37010102): Attachment content.
pub const PID_TAG_ATTACH_DATA_BINARY: PropTag = PropTag(0x37010102);
/// PidTagAttachSize (0x0E200003): Attachment size.
pub const PID_TAG_ATTACH_SIZE: PropTag = PropTag(0x0E200003);
/// PidTagIpmAppointmentEntryId (0x36D00102): Entry id of the Calendar folder.
pub const PID_TAG_IPM_APPOINTMENT_ENTRY_ID: PropTag = PropTag(0x36D00102);
/// PidTagIpmContactEntryId (0x36D10102): Entry id of the Contacts folder.
pub const PID_TAG_IPM_CONTACT_ENTRY_ID: PropTag = PropTag(0x36D10102);
/// MetaTagIdsetGiven (0x40170003): ICS state: ids of the objects on the client (typed Integer32, but the value is a u32-length IDSET).
pub const META_TAG_IDSET_GIVEN: PropTag = PropTag(0x40170003);
/// MetaTagIdsetGiven (0x40170102): ICS state: ids of the objects on the client, a binary-typed form that some servers also accept.
pub const META_TAG_IDSET_GIVEN_BINARY: PropTag = PropTag(0x40170102);
/// MetaTagCnsetSeen (0x67960102): ICS state: change numbers of normal messages or folders seen.
pub const META_TAG_CNSET_SEEN: PropTag = PropTag(0x67960102);
/// MetaTagCnsetSeenFAI (0x67DA0102): ICS state: change numbers of FAI messages seen.
pub const META_TAG_CNSET_SEEN_FAI: PropTag = PropTag(0x67DA0102);
/// MetaTagCnsetRead (0x67D20102): ICS state: change numbers of read-state changes seen.
pub const META_TAG_CNSET_READ: PropTag = PropTag(0x67D20102);
/// MetaTagIdsetDeleted (0x67E50102): Deleted ids (REPLID-form IDSET).
pub const META_TAG_IDSET_DELETED: PropTag = PropTag(0x67E50102);
/// MetaTagIdsetNoLongerInScope (0x40210102): Ids no longer in the synchronization scope (REPLID form).
pub const META_TAG_IDSET_NO_LONGER_IN_SCOPE: PropTag = PropTag(0x40210102);
/// MetaTagIdsetExpired (0x67930102): Expired ids (REPLID form).
pub const META_TAG_IDSET_EXPIRED: PropTag = PropTag(0x67930102);
/// MetaTagIdsetRead (0x402D0102): Ids of messages marked read (REPLID form).
pub const META_TAG_IDSET_READ: PropTag = PropTag(0x402D0102);
/// MetaTagIdsetUnread (0x402E0102): Ids of messages marked unread (REPLID form).
pub const META_TAG_IDSET_UNREAD: PropTag = PropTag(0x402E0102);
/// MetaTagFXDelProp (0x40160003): FastTransfer: the following subobject list replaces the existing one.
pub const META_TAG_FX_DEL_PROP: PropTag = PropTag(0x40160003);
/// MetaTagEcWarning (0x400F0003): FastTransfer: a warning code.
pub const META_TAG_EC_WARNING: PropTag = PropTag(0x400F0003);
/// MetaTagNewFXFolder (0x40110102): FastTransfer: a folder that is not copied.
pub const META_TAG_NEW_FX_FOLDER: PropTag = PropTag(0x40110102);
/// MetaTagIncrSyncGroupId (0x407C0003): FastTransfer: property group id of a partial change.
pub const META_TAG_INCR_SYNC_GROUP_ID: PropTag = PropTag(0x407C0003);
/// MetaTagIncrementalSyncMessagePartial (0x407A0003): FastTransfer: group index of a partial message change.
pub const META_TAG_INCREMENTAL_SYNC_MESSAGE_PARTIAL: PropTag = PropTag(0x407A0003);
/// MetaTagDnPrefix (0x4008001E): FastTransfer: distinguished-name prefix.
pub const META_TAG_DN_PREFIX: PropTag = PropTag(0x4008001E);

/// The canonical name of a known tag, for diagnostics.
pub fn name(tag: PropTag) -> Option<&'static str> {
    let name = match tag.0 {
        0x67480014 => "PidTagFolderId",
        0x67490014 => "PidTagParentFolderId",
        0x674A0014 => "PidTagMid",
        0x674D0014 => "PidTagInstID",
        0x674E0003 => "PidTagInstanceNum",
        0x67A40014 => "PidTagChangeNumber",
        0x65E20102 => "PidTagChangeKey",
        0x65E30102 => "PidTagPredecessorChangeList",
        0x65E00102 => "PidTagSourceKey",
        0x65E10102 => "PidTagParentSourceKey",
        0x30080040 => "PidTagLastModificationTime",
        0x30070040 => "PidTagCreationTime",
        0x67090040 => "PidTagLocalCommitTime",
        0x670A0040 => "PidTagLocalCommitTimeMax",
        0x670B0003 => "PidTagDeletedCountTotal",
        0x0E070003 => "PidTagMessageFlags",
        0x0E69000B => "PidTagRead",
        0x67AA000B => "PidTagAssociated",
        0x0E080003 => "PidTagMessageSize",
        0x0037001F => "PidTagSubject",
        0x0E1D001F => "PidTagNormalizedSubject",
        0x003D001F => "PidTagSubjectPrefix",
        0x001A001F => "PidTagMessageClass",
        0x001A001E => "PidTagMessageClass_A",
        0x0E060040 => "PidTagMessageDeliveryTime",
        0x0E1B000B => "PidTagHasAttachments",
        0x0FFF0102 => "PidTagEntryId",
        0x0E090102 => "PidTagParentEntryId",
        0x0FF60102 => "PidTagInstanceKey",
        0x0FF90102 => "PidTagRecordKey",
        0x3001001F => "PidTagDisplayName",
        0x36020003 => "PidTagContentCount",
        0x36030003 => "PidTagContentUnreadCount",
        0x360A000B => "PidTagSubfolders",
        0x3613001F => "PidTagContainerClass",
        0x3FFA001F => "PidTagLastModifierName",
        0x40820040 => "PidTagHierRev",
        0x30050003 => "PidTagDepth",
        0x36010003 => "PidTagFolderType",
        0x0FF50003 => "PidTagRowType",
        0x0C1A001F => "PidTagSenderName",
        0x0042001F => "PidTagSentRepresentingName",
        0x1000001F => "PidTagBody",
        0x0E1F000B => "PidTagRtfInSync",
        0x3FDE0003 => "PidTagInternetCodepage",
        0x0E12000D => "PidTagMessageRecipients",
        0x0E13000D => "PidTagMessageAttachments",
        0x0C150003 => "PidTagRecipientType",
        0x3002001F => "PidTagAddressType",
        0x3003001F => "PidTagEmailAddress",
        0x39FE001F => "PidTagSmtpAddress",
        0x30000003 => "PidTagRowid",
        0x0E210003 => "PidTagAttachNumber",
        0x37050003 => "PidTagAttachMethod",
        0x3707001F => "PidTagAttachLongFilename",
        0x37010102 => "PidTagAttachDataBinary",
        0x0E200003 => "PidTagAttachSize",
        0x36D00102 => "PidTagIpmAppointmentEntryId",
        0x36D10102 => "PidTagIpmContactEntryId",
        0x40170003 => "MetaTagIdsetGiven",
        0x40170102 => "MetaTagIdsetGiven",
        0x67960102 => "MetaTagCnsetSeen",
        0x67DA0102 => "MetaTagCnsetSeenFAI",
        0x67D20102 => "MetaTagCnsetRead",
        0x67E50102 => "MetaTagIdsetDeleted",
        0x40210102 => "MetaTagIdsetNoLongerInScope",
        0x67930102 => "MetaTagIdsetExpired",
        0x402D0102 => "MetaTagIdsetRead",
        0x402E0102 => "MetaTagIdsetUnread",
        0x40160003 => "MetaTagFXDelProp",
        0x400F0003 => "MetaTagEcWarning",
        0x40110102 => "MetaTagNewFXFolder",
        0x407C0003 => "MetaTagIncrSyncGroupId",
        0x407A0003 => "MetaTagIncrementalSyncMessagePartial",
        0x4008001E => "MetaTagDnPrefix",
        _ => return None,
    };
    Some(name)
}
