//! ICS (MS-OXCFXICS): hierarchy and contents downloads from a stored state, and
//! imports through a collector. An import is stamped with the caller's change key (an
//! XID in exmux's namespace) and returns the checkpoint state that keeps it out of the
//! next download (MS-OXCFXICS 3.3.4.3.3).

use super::batch::BatchResult;
use super::batch::{Batch, HandleRef};
use super::ops::*;
use super::{MapiSession, Replay, SessionError};
use super::{recipients, streams, write};
use crate::fxics::{FxReader, MessageChange, SyncEvent, SyncParser};
use crate::ids::{ObjectId, PredecessorChangeList, Xid};
use crate::prop::{PropTag, PropValue, TaggedValue, tags};
use crate::rop::{MessageReadState, ResponseBody, RopRequest, RopResult, rop_id};

impl MapiSession {
    /// Runs an ICS download of `folder` from `state` and hands the units parsed from
    /// each GetBuffer response to `on_units`, so only the FastTransfer reader's carry-over
    /// and one buffer stay in memory. When the session context is lost mid-download, the
    /// download starts again from `state`, so `on_units` may see a unit twice.
    pub(super) async fn download<F>(
        &self,
        operation: &'static str,
        folder: ObjectId,
        contents: bool,
        state: &SyncState,
        buffer_size: u16,
        mut on_units: F,
    ) -> Result<(), SessionError>
    where
        F: FnMut(Vec<SyncEvent>) -> Result<(), SessionError>,
    {
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
            let first_get = batch.push(sized_get_buffer(sync_slot, buffer_size));
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
                        drop(transfer_buffer);
                        let mut events = Vec::new();
                        while let Some(element) = reader
                            .next_element()
                            .map_err(|e| SessionError::protocol(operation, e))?
                        {
                            let offset = reader.offset();
                            parser
                                .push(element, offset, &mut events)
                                .map_err(|e| SessionError::protocol(operation, e))?;
                        }
                        if !events.is_empty() {
                            on_units(events)?;
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
                next.push(sized_get_buffer(slot, buffer_size));
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
            return Ok(());
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
        let mut events = Vec::new();
        self.download(operation, folder, false, state, AUTO_BUFFER, |units| {
            events.extend(units);
            Ok(())
        })
        .await?;
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
    /// read-state changes and deletions) and returns them all at once. Each change
    /// carries its change key and predecessor change list. For a large folder,
    /// [`MapiSession::sync_contents_streaming`] keeps memory flat instead.
    ///
    /// # Errors
    ///
    /// As [`MapiSession::sync_hierarchy`].
    pub async fn sync_contents(
        &self,
        folder: ObjectId,
        state: &SyncState,
    ) -> Result<ContentsSync, SessionError> {
        let mut sync = ContentsSync {
            changes: Vec::new(),
            deleted: Vec::new(),
            no_longer_in_scope: Vec::new(),
            read: Vec::new(),
            unread: Vec::new(),
            state: state.clone(),
        };
        let options = StreamOptions::default();
        let final_state = self
            .sync_contents_streaming(folder, state, options, |part| {
                sync.changes.extend(part.changes);
                sync.deleted.extend(part.deleted);
                sync.no_longer_in_scope.extend(part.no_longer_in_scope);
                sync.read.extend(part.read);
                sync.unread.extend(part.unread);
                Ok(())
            })
            .await?;
        sync.state = final_state;
        Ok(sync)
    }

    /// Downloads the message changes of `folder` since `state` like
    /// [`MapiSession::sync_contents`], but hands the changes, deletions and read-state
    /// changes parsed from each RopFastTransferSourceGetBuffer response to `on_part` as
    /// they arrive, and returns only the final state. Memory stays bounded by one
    /// transfer buffer, the FastTransfer reader's carry-over of a value cut across
    /// buffers, and what `on_part` keeps. The `state` field of each part is the input
    /// `state`: store only the returned state, after the last part.
    ///
    /// When the session context is lost in the middle of the download, it starts again
    /// from `state`, so `on_part` can see a change again. Applying it again must change
    /// nothing, as the delivery contract of a download already requires.
    ///
    /// # Errors
    ///
    /// As [`MapiSession::sync_hierarchy`], and any error `on_part` returns, which stops
    /// the download.
    pub async fn sync_contents_streaming<F>(
        &self,
        folder: ObjectId,
        state: &SyncState,
        options: StreamOptions,
        mut on_part: F,
    ) -> Result<SyncState, SessionError>
    where
        F: FnMut(ContentsSync) -> Result<(), SessionError>,
    {
        let operation = "sync contents";
        let mut final_state = state.clone();
        self.download(
            operation,
            folder,
            true,
            state,
            options.buffer_size,
            |events| {
                let mut part = ContentsSync {
                    changes: Vec::new(),
                    deleted: Vec::new(),
                    no_longer_in_scope: Vec::new(),
                    read: Vec::new(),
                    unread: Vec::new(),
                    state: state.clone(),
                };
                for event in events {
                    match event {
                        SyncEvent::MessageChange(change) => part.changes.push(item_change(change)),
                        SyncEvent::Deletions {
                            deleted,
                            no_longer_in_scope,
                            expired,
                        } => {
                            expand(deleted.as_ref(), &mut part.deleted, operation)?;
                            expand(expired.as_ref(), &mut part.deleted, operation)?;
                            expand(
                                no_longer_in_scope.as_ref(),
                                &mut part.no_longer_in_scope,
                                operation,
                            )?;
                        }
                        SyncEvent::ReadStateChanges { read, unread } => {
                            expand(read.as_ref(), &mut part.read, operation)?;
                            expand(unread.as_ref(), &mut part.unread, operation)?;
                        }
                        SyncEvent::State(state) => final_state = SyncState(state),
                        _ => {}
                    }
                }
                on_part(part)
            },
        )
        .await?;
        Ok(final_state)
    }

    /// Runs an ICS upload into `folder`: opens a collector, uploads `state`, lets `build`
    /// append the imports (it gets the collector's slot), then takes the checkpoint
    /// state. Returns the batch result and the checkpoint.
    pub(super) async fn import<F>(
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
        self.import_change(
            "import message change",
            folder,
            state,
            change,
            &StructuredMessage::default(),
        )
        .await
    }

    /// Imports `change` and, from `content`, writes its recipients and attachments on
    /// the imported message before it is saved. Property values larger than 12 KiB go
    /// through property streams.
    async fn import_change(
        &self,
        operation: &'static str,
        folder: ObjectId,
        state: &SyncState,
        change: MessageImport,
        content: &StructuredMessage,
    ) -> Result<ImportedChange, SessionError> {
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
        // Checked before any request goes out, so an invalid recipient sends nothing.
        recipients::push_modify(&mut Batch::new(), operation, 0, &content.recipients)?;
        let (set, large) = streams::split_large(set);
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
                for (tag, bytes) in &large {
                    streams::push_write(batch, message, *tag, bytes);
                }
                // The same recipients went through `push_modify` on a scratch batch above,
                // so this call cannot fail.
                let _ = recipients::push_modify(batch, operation, message, &content.recipients);
                write::push_attachments(batch, message, &content.attachments);
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
        let content = StructuredMessage {
            props,
            ..StructuredMessage::default()
        };
        self.import_new(folder, state, xid, content, now_filetime)
            .await
    }

    /// Creates a message from MIME through ICS import, as
    /// [`MapiSession::import_new_message`] does, with the properties, recipients and
    /// attachments that [`mime::parse`](super::mime::parse) reads from it.
    ///
    /// # Errors
    ///
    /// [`SessionError::Usage`] when the bytes are not a MIME message or a recipient
    /// type is invalid; otherwise as [`MapiSession::import_message_change`].
    pub async fn import_new_message_from_mime(
        &self,
        folder: ObjectId,
        state: &SyncState,
        xid: Xid,
        mime: &[u8],
        now_filetime: u64,
    ) -> Result<ImportedChange, SessionError> {
        let (content, _) = super::mime::parse(mime)?;
        self.import_new(folder, state, xid, content, now_filetime)
            .await
    }

    /// Reserves a source key and imports `content` (its `props`, recipients and
    /// attachments) as a new message.
    async fn import_new(
        &self,
        folder: ObjectId,
        state: &SyncState,
        xid: Xid,
        content: StructuredMessage,
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
        let change = MessageImport {
            source_key,
            previous: PredecessorChangeList::new(),
            change_key: xid,
            set: content.props.clone(),
            last_modified: now_filetime,
        };
        self.import_change(operation, folder, state, change, &content)
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
    /// key; `hard` requests a hard delete.
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
}

/// Options of a streaming ICS download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamOptions {
    /// BufferSize of each RopFastTransferSourceGetBuffer request (MS-OXCROPS
    /// 2.2.13.5.1). 0xBABE, the default, lets the server choose up to 0x7FF0 bytes; a
    /// smaller value cuts the download into more GetBuffer round trips.
    pub buffer_size: u16,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            buffer_size: AUTO_BUFFER,
        }
    }
}

impl StreamOptions {
    /// Options that ask for at most `buffer_size` bytes per GetBuffer response.
    pub fn with_buffer_size(buffer_size: u16) -> Self {
        StreamOptions { buffer_size }
    }
}

/// The BufferSize value that lets the server choose the buffer size, up to
/// MaximumBufferSize (MS-OXCROPS 2.2.13.5.1).
const AUTO_BUFFER: u16 = 0xBABE;

fn sized_get_buffer(slot: u8, buffer_size: u16) -> RopRequest {
    if buffer_size == AUTO_BUFFER {
        return get_buffer(slot);
    }
    RopRequest::FastTransferSourceGetBuffer {
        logon_id: 0,
        input_handle: slot,
        buffer_size,
        maximum_buffer_size: None,
    }
}

fn item_change(change: Box<MessageChange>) -> ItemChange {
    let change_key = binary(change.header_value(tags::PID_TAG_CHANGE_KEY));
    let flags = int(fx_get(&change.content.props, tags::PID_TAG_MESSAGE_FLAGS));
    ItemChange {
        source_key: binary(change.header_value(tags::PID_TAG_SOURCE_KEY)).unwrap_or_default(),
        message_id: id(change.header_value(tags::PID_TAG_MID)),
        change_xid: change_key.as_deref().and_then(|b| Xid::decode(b, 0).ok()),
        change_key,
        predecessors: binary(change.header_value(tags::PID_TAG_PREDECESSOR_CHANGE_LIST))
            .and_then(|b| PredecessorChangeList::decode(&b, 0).ok()),
        change_number: id(change.header_value(tags::PID_TAG_CHANGE_NUMBER)),
        associated: matches!(
            change.header_value(tags::PID_TAG_ASSOCIATED),
            Some(PropValue::Bool(true))
        ),
        read: flags.map(|f| f & 0x1 != 0),
        raw: change,
    }
}
