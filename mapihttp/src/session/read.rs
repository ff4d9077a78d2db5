//! Reads with ordinary ROPs: hierarchy and contents tables, message properties and
//! whole messages.

use super::batch::{Batch, HandleRef};
use super::ops::*;
use super::streams;
use super::{MapiSession, Replay, SessionError};
use crate::ids::ObjectId;
use crate::prop::{PropTag, PropValue, PropertyRow, RowCell, TaggedValue, tags};
use crate::rop::{ResponseBody, RopRequest, RopResult};

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

    pub(super) async fn table(
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

    pub(super) async fn release_raw(&self, handles: &[Option<u32>]) {
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
        let mut values: Vec<(PropTag, Option<PropValue>)> = tags
            .iter()
            .map(|tag| (*tag, cell(row, tags, *tag)))
            .collect();

        let too_large: Vec<PropTag> = tags
            .iter()
            .copied()
            .filter(|tag| {
                matches!(
                    row.get(tags, *tag),
                    Some(RowCell::Error {
                        code: streams::NOT_ENOUGH_MEMORY,
                        ..
                    })
                )
            })
            .collect();
        if too_large.is_empty() {
            return Ok(values);
        }
        // The values too large to return inline are read through streams on the
        // message, opened again because the batch above released it.
        let mut batch = Batch::new();
        let logon = batch.input(HandleRef::Logon);
        let msg = batch.output();
        batch.push(open_message(logon, msg, folder, message, 0));
        let result = self.execute(operation, &batch, Replay::Safe).await?;
        check(&result, 0, operation)?;
        let handle = result.handle(msg).ok_or(SessionError::MissingResponse {
            operation,
            rop: "RopOpenMessage",
        })?;
        let mut read = Ok(());
        for tag in too_large {
            match self.read_stream(operation, handle, tag).await {
                Ok(bytes) => {
                    if let Some(entry) = values.iter_mut().find(|(t, _)| *t == tag) {
                        entry.1 = streams::value_from(tag.ptype(), bytes);
                    }
                }
                Err(error) => {
                    read = Err(error);
                    break;
                }
            }
        }
        self.release_raw(&[Some(handle)]).await;
        read.map(|()| values)
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
        let msg_handle = result.handle(msg);
        let mut props = props.clone();
        if let Some(handle) = msg_handle {
            self.read_large_values(operation, handle, &mut props)
                .await?;
        }
        let mut structured = structured_from(props);
        if let (Some(handle), ResponseBody::OpenMessage(opened)) =
            (msg_handle, &ok(&result, 0, operation)?.body)
        {
            structured.recipients = self.read_recipients(operation, handle, opened).await?;
        }
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
                match self.fetch_attachment(operation, msg_handle, number).await {
                    Ok(attachment) => structured.attachments.push(attachment),
                    Err(error) => {
                        self.release_raw(&[Some(msg_handle)]).await;
                        return Err(error);
                    }
                }
            }
            self.release_raw(&[Some(msg_handle)]).await;
        }
        Ok(structured)
    }
}

impl MapiSession {
    /// Reads attachment `number` of an open message (`message`, a raw handle of the
    /// current context) with RopOpenAttachment and RopGetPropertiesAll, and reads the
    /// data through a stream when the server returns it as ecMAPIOOM.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when a ROP, a stream read or the Execute fails.
    async fn fetch_attachment(
        &self,
        operation: &'static str,
        message: u32,
        number: u32,
    ) -> Result<StructuredAttachment, SessionError> {
        let mut batch = Batch::new();
        let m = batch.input(HandleRef::Raw(message));
        let a = batch.output();
        let open = batch.push(RopRequest::OpenAttachment {
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

        let result = self.execute(operation, &batch, Replay::Safe).await?;
        check(&result, open, operation)?;
        let handle = result.handle(a).ok_or(SessionError::MissingResponse {
            operation,
            rop: "RopOpenAttachment",
        })?;

        let values = match ok(&result, get, operation) {
            Ok(RopResult {
                body: ResponseBody::PropertyValues(values),
                ..
            }) => Ok(values.clone()),
            Ok(_) => Err(SessionError::MissingResponse {
                operation,
                rop: "RopGetPropertiesAll",
            }),
            Err(error) => Err(error),
        };
        // The attachment is released whether or not the reads succeed.
        let read = match values {
            Ok(mut values) => self
                .read_large_values(operation, handle, &mut values)
                .await
                .map(|()| values),
            Err(error) => Err(error),
        };
        self.release_raw(&[Some(handle)]).await;
        let values = read?;
        Ok(StructuredAttachment::from_props(|tag| {
            values
                .iter()
                .find(|value| value.tag == tag)
                .map(|value| value.value.clone())
        }))
    }

    /// Replaces each value the server returned as ecMAPIOOM, because it was too large
    /// to return inline, with the value read through a stream. RopGetPropertiesList on
    /// `message` supplies the property types that the error values no longer carry.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when listing the properties or reading a stream fails.
    async fn read_large_values(
        &self,
        operation: &'static str,
        message: u32,
        props: &mut [TaggedValue],
    ) -> Result<(), SessionError> {
        let too_large =
            |value: &TaggedValue| value.value == PropValue::Error(streams::NOT_ENOUGH_MEMORY);
        if !props.iter().any(too_large) {
            return Ok(());
        }
        let mut batch = Batch::new();
        let m = batch.input(HandleRef::Raw(message));
        let list = batch.push(RopRequest::GetPropertiesList {
            logon_id: 0,
            input_handle: m,
        });
        let result = self.execute(operation, &batch, Replay::Safe).await?;
        let ResponseBody::PropertyTags(tags) = &ok(&result, list, operation)?.body else {
            return Err(SessionError::MissingResponse {
                operation,
                rop: "RopGetPropertiesList",
            });
        };
        for value in props.iter_mut().filter(|v| too_large(v)) {
            let Some(tag) = tags.iter().find(|t| t.id() == value.tag.id()).copied() else {
                continue;
            };
            let bytes = self.read_stream(operation, message, tag).await?;
            if let Some(read) = streams::value_from(tag.ptype(), bytes) {
                *value = TaggedValue { tag, value: read };
            }
        }
        Ok(())
    }
}
