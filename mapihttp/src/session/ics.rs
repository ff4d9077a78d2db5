//! ICS (MS-OXCFXICS): hierarchy and contents downloads from a stored state, and
//! imports through a collector. An import is stamped with the caller's change key (an
//! XID in exmux's namespace) and returns the checkpoint state that keeps it out of the
//! next download (MS-OXCFXICS 3.3.4.3.3).

use super::batch::BatchResult;
use super::batch::{Batch, HandleRef};
use super::ops::*;
use super::{MapiSession, Replay, SessionError};
use crate::fxics::{FxReader, SyncEvent, SyncParser};
use crate::ids::{ObjectId, PredecessorChangeList, Xid};
use crate::prop::{PropTag, PropValue, TaggedValue, tags};
use crate::rop::{MessageReadState, ResponseBody, RopRequest, RopResult, rop_id};

impl MapiSession {
    /// Runs an ICS download of `folder` from `state` and returns the parsed units.
    pub(super) async fn download(
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
            // NOTE: every unit of the download is collected here before the caller sees
            // any, and `sync_contents` then keeps each change's properties twice (`props`
            // and `raw`), so a full sync holds the whole folder in memory: about 5 KiB
            // per message, 516 MiB peak RSS for 100,000. Handing the units of each
            // GetBuffer to a callback, as the EWS client's paging does, would keep it flat.
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
