//! Writes with ordinary ROPs, for what ICS import cannot carry: read flags, deletes,
//! moves and copies, creates and sends, and folder changes. Where the server assigns a
//! change key, the write reads it back so the router can match the change later.

use super::batch::{Batch, HandleRef};
use super::ops::*;
use super::recipients;
use super::streams;
use super::{MapiSession, Replay, SessionError};
use crate::ids::ObjectId;
use crate::prop::{PropValue, TaggedValue, tags};
use crate::rop::{ResponseBody, RopRequest, RopString};

/// SaveFlags of RopSaveChangesAttachment: keep the attachment open read-write.
const KEEP_OPEN_READ_WRITE: u8 = 0x02;

/// Appends the ROPs that add `attachments` to the message in slot `message`: for each,
/// RopCreateAttachment, RopSetProperties, the data through a property stream when it is
/// large, RopSaveChangesAttachment and RopRelease. The message's next
/// RopSaveChangesMessage stores them.
pub(super) fn push_attachments(
    batch: &mut Batch,
    message: u8,
    attachments: &[StructuredAttachment],
) {
    for attachment in attachments {
        let slot = batch.output();
        batch.push(RopRequest::CreateAttachment {
            logon_id: 0,
            input_handle: message,
            output_handle: slot,
        });
        let (inline, large) = streams::split_large(attachment.to_props());
        batch.push(RopRequest::SetProperties {
            logon_id: 0,
            input_handle: slot,
            values: inline,
        });
        for (tag, bytes) in &large {
            streams::push_write(batch, slot, *tag, bytes);
        }
        batch.push(RopRequest::SaveChangesAttachment {
            logon_id: 0,
            response_handle: message,
            input_handle: slot,
            save_flags: KEEP_OPEN_READ_WRITE,
        });
        batch.push(RopRequest::Release {
            logon_id: 0,
            input_handle: slot,
        });
    }
}

impl MapiSession {
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
    /// Returns the new message id and that change key. The message has no recipients:
    /// see [`MapiSession::create_message_with_recipients`].
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
        self.create_message_with_recipients(folder, props, &[], submit)
            .await
    }

    /// Creates a message as [`MapiSession::create_message`] does, and gives it
    /// `recipients` with RopModifyRecipients before it is saved and, when `submit` is
    /// set, sent. [`mime::parse`](super::mime::parse) returns the recipients of a MIME
    /// message. The message has no attachments: see
    /// [`MapiSession::create_message_from_mime`].
    ///
    /// # Errors
    ///
    /// [`SessionError::Usage`] for a recipient type other than 1 (To), 2 (Cc) or 3
    /// (Bcc); otherwise [`SessionError`] when a ROP or the Execute fails.
    pub async fn create_message_with_recipients(
        &self,
        folder: ObjectId,
        props: Vec<TaggedValue>,
        recipients: &[StructuredRecipient],
        submit: bool,
    ) -> Result<(ObjectId, Option<Vec<u8>>), SessionError> {
        self.create_message_with_content(folder, props, recipients, &[], submit)
            .await
    }

    /// Creates a message from MIME, as [`mime::parse`](super::mime::parse) reads it:
    /// its properties, recipients and attachments, in one batch saved at once. When
    /// `submit` is set the message is sent. Returns the new message id and the change
    /// key the server assigned.
    ///
    /// # Errors
    ///
    /// [`SessionError::Usage`] when the bytes are not a MIME message; otherwise as
    /// [`MapiSession::create_message_with_content`].
    pub async fn create_message_from_mime(
        &self,
        folder: ObjectId,
        mime: &[u8],
        submit: bool,
    ) -> Result<(ObjectId, Option<Vec<u8>>), SessionError> {
        let (message, props) = super::mime::parse(mime)?;
        self.create_message_with_content(
            folder,
            props,
            &message.recipients,
            &message.attachments,
            submit,
        )
        .await
    }

    /// Creates a message as [`MapiSession::create_message_with_recipients`] does, and
    /// adds `attachments` before the message is saved: each one with
    /// RopCreateAttachment, its properties (the data through a property stream when it
    /// is larger than 12 KiB) and RopSaveChangesAttachment. The attachments reach the
    /// store with the message's RopSaveChangesMessage, so a failed create leaves
    /// neither behind (MS-OXCMSG 2.2.3.15).
    ///
    /// # Errors
    ///
    /// As [`MapiSession::create_message_with_recipients`].
    pub async fn create_message_with_content(
        &self,
        folder: ObjectId,
        props: Vec<TaggedValue>,
        recipients: &[StructuredRecipient],
        attachments: &[StructuredAttachment],
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
        let (props, large) = streams::split_large(props);
        if !props.is_empty() {
            batch.push(RopRequest::SetProperties {
                logon_id: 0,
                input_handle: m,
                values: props,
            });
        }
        for (tag, bytes) in &large {
            streams::push_write(&mut batch, m, *tag, bytes);
        }
        recipients::push_modify(&mut batch, operation, m, recipients)?;
        push_attachments(&mut batch, m, attachments);
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
        // RopRelease of a property stream has no response to check.
        for (index, rop) in batch.rops().iter().enumerate().take(get + 1) {
            if rop.has_response() {
                check(&result, index, operation)?;
            }
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
