//! The session context on the wire: Connect and RopLogon, the sequenced requests with
//! their cookies (MS-OXCMAPIHTTP 3.1.5), reconnection, the reopening of held objects,
//! and the Execute request and response formats.

use super::*;

impl MapiSession {
    pub(super) fn is_context_fault(&self, code: ResponseCode) -> bool {
        match self.inner.config.numbering {
            CodeNumbering::Spec => code.needs_reconnect(),
            CodeNumbering::ServerSpecific => code != ResponseCode::Success,
        }
    }

    pub(super) fn silence(&self) -> Duration {
        let pending = self.inner.pending_period_ms.load(Ordering::Relaxed);
        if pending == 0 {
            self.inner.config.silence_timeout
        } else {
            Duration::from_millis(pending.saturating_mul(2)).max(Duration::from_secs(1))
        }
    }

    pub(super) fn touch(&self) {
        self.inner
            .last_request_ms
            .store(self.inner.config.clock.now_millis(), Ordering::Relaxed);
    }

    pub(super) fn headers(&self, request_type: RequestType) -> Result<HeaderMap, SessionError> {
        let request_guid = self
            .inner
            .context
            .try_lock()
            .map(|c| c.request_guid)
            .unwrap_or_else(|_| *self.inner_request_guid());
        self.headers_with(request_type, request_guid, 0)
    }

    pub(super) fn inner_request_guid(&self) -> &Uuid {
        // The X-RequestId GUID only needs to be unique per context; a request that runs
        // beside a sequenced one (PING, NotificationWait) uses the client GUID then.
        &self.inner.client_guid
    }

    pub(super) fn headers_with(
        &self,
        request_type: RequestType,
        request_guid: Uuid,
        context_counter: u64,
    ) -> Result<HeaderMap, SessionError> {
        let counter = self.inner.request_counter.fetch_add(1, Ordering::SeqCst) + 1;
        let headers = RequestHeaders {
            request_type,
            request_id: GuidCounter {
                guid: request_guid,
                counter,
            },
            client_info: GuidCounter {
                guid: self.inner.client_guid,
                counter: context_counter,
            },
            client_application: self.inner.config.client_application.clone(),
        };
        let cookies = self
            .inner
            .cookies
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        headers
            .to_header_map(&cookies)
            .map_err(|e| SessionError::Usage {
                operation: "build request headers",
                reason: e.to_string(),
            })
    }

    /// Sends a sequenced request (Connect, Execute, Disconnect) while the caller holds
    /// the context lock, applies the cookies of a mailbox-server response, and returns the
    /// binary body.
    pub(super) async fn sequenced(
        &self,
        ctx: &mut Context,
        operation: &'static str,
        request_type: RequestType,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Fault> {
        let headers = self
            .headers_with(request_type, ctx.request_guid, ctx.context_counter)
            .map_err(Fault::Other)?;
        let answer = self
            .inner
            .transport
            .post(operation, headers, body, self.silence())
            .await
            .map_err(Fault::Other)?;
        self.touch();
        if let Ok(mut cookies) = self.inner.cookies.lock()
            && cookies.apply_response(&answer.headers)
        {
            tracing::trace!(operation, "cookies updated from the mailbox server");
        }
        let head = classify(operation, &answer)?;
        if head.pending_period_ms > 0 {
            self.inner
                .pending_period_ms
                .store(head.pending_period_ms, Ordering::Relaxed);
        }
        let framed = parse_body(&answer.body)
            .map_err(|e| Fault::Other(SessionError::protocol(operation, e)))?;
        tracing::trace!(
            operation,
            bytes = framed.body.len(),
            keep_alives = framed.keep_alives,
            "response"
        );
        Ok(framed.body)
    }

    pub(super) async fn ensure_connected(&self, ctx: &mut Context) -> Result<(), SessionError> {
        if ctx.connected && ctx.logon.is_some() {
            return Ok(());
        }
        if !ctx.connected {
            ctx.context_counter += 1;
            self.connect_request(ctx).await?;
        }
        self.logon(ctx).await
    }

    pub(super) async fn connect_request(&self, ctx: &mut Context) -> Result<(), SessionError> {
        let operation = "Connect";
        ctx.request_guid = Uuid::new_v4();
        let body = ConnectRequest {
            user_dn: self.inner.config.user_dn.clone(),
            flags: 0,
            default_code_page: 1252,
            lcid_sort: 0x409,
            lcid_string: 0x409,
            aux: Vec::new(),
        }
        .encode()
        .map_err(|e| SessionError::protocol(operation, e))?;
        let answer = match self
            .sequenced(ctx, operation, RequestType::Connect, body)
            .await
        {
            Ok(answer) => answer,
            Err(Fault::Refused(code)) => {
                return Err(SessionError::Refused {
                    operation,
                    code,
                    after_reconnect: false,
                });
            }
            Err(Fault::Other(e)) => return Err(e),
        };
        match ConnectResponse::decode(&answer).map_err(|e| SessionError::protocol(operation, e))? {
            Response::Success(success) if success.error_code == 0 => {
                ctx.connected = true;
                ctx.generation += 1;
                ctx.logon = None;
                self.inner
                    .span
                    .record("session", tracing::field::display(ctx.request_guid));
                tracing::debug!(generation = ctx.generation, "session context created");
                Ok(())
            }
            Response::Success(success) => Err(SessionError::ConnectRefused {
                user_dn: self.inner.config.user_dn.clone(),
                error_code: success.error_code,
            }),
            Response::Failure(failure) => Err(SessionError::Status {
                operation,
                field: "StatusCode",
                value: failure.status_code,
            }),
        }
    }

    pub(super) async fn logon(&self, ctx: &mut Context) -> Result<(), SessionError> {
        let operation = "RopLogon";
        let mut rops = vec![RopRequest::Logon {
            logon_id: 0,
            output_handle: 0,
            logon_flags: 0x01,
            open_flags: 0x0100_040C,
            store_state: 0,
            essdn: self.inner.config.user_dn.as_bytes().to_vec(),
        }];
        let (results, handles) = self
            .raw_execute(ctx, operation, &rops, &[u32::MAX], &HashMap::new())
            .await?;
        let logon = match results.first().and_then(Option::as_ref) {
            Some(RopResult {
                return_value: 0,
                body: ResponseBody::Logon(logon),
                ..
            }) => logon.clone(),
            Some(result) => {
                return Err(SessionError::Rop {
                    operation,
                    rop: "RopLogon",
                    code: result.return_value,
                });
            }
            None => {
                return Err(SessionError::MissingResponse {
                    operation,
                    rop: "RopLogon",
                });
            }
        };
        let logon_handle = handles.first().copied().unwrap_or(u32::MAX);

        // Replica ids come from the folder ids themselves (a real server's RopLogon pair
        // named another replica than the one its ids used).
        let mut replids: Vec<(u16, ObjectId)> = Vec::new();
        for id in logon.folder_ids {
            if id.0 != 0 && !replids.iter().any(|(r, _)| *r == id.replid()) {
                replids.push((id.replid(), id));
            }
        }
        rops.clear();
        for (_, id) in &replids {
            rops.push(RopRequest::LongTermIdFromId {
                logon_id: 0,
                input_handle: 0,
                object_id: *id,
            });
        }
        let mut replicas = HashMap::new();
        if !rops.is_empty() {
            let (results, _) = self
                .raw_execute(
                    ctx,
                    "RopLongTermIdFromId",
                    &rops,
                    &[logon_handle],
                    &HashMap::new(),
                )
                .await?;
            for ((replid, _), result) in replids.iter().zip(results.iter()) {
                match result {
                    Some(RopResult {
                        return_value: 0,
                        body: ResponseBody::LongTermId(ltid),
                        ..
                    }) => {
                        replicas.insert(*replid, ltid.database_guid);
                    }
                    other => {
                        return Err(SessionError::Rop {
                            operation: "resolve replica ids",
                            rop: "RopLongTermIdFromId",
                            code: other.as_ref().map(|r| r.return_value).unwrap_or(u32::MAX),
                        });
                    }
                }
            }
        }
        if logon.repl_id != 0
            && replicas
                .get(&logon.repl_id)
                .is_some_and(|g| *g != logon.repl_guid)
        {
            tracing::warn!(
                repl_id = logon.repl_id,
                "RopLogon's replica pair disagrees with RopLongTermIdFromId; using the latter"
            );
        }
        let info = LogonInfo {
            folder_ids: logon.folder_ids,
            mailbox_guid: logon.mailbox_guid,
            replicas,
            logon_replica: (logon.repl_id, logon.repl_guid),
        };
        ctx.logon = Some((logon_handle, info));

        if let Some(types) = ctx.subscription {
            let mut batch = Batch::new();
            register_rop(&mut batch, types);
            let handles = vec![logon_handle, u32::MAX];
            let (results, _) = self
                .raw_execute(
                    ctx,
                    "register notifications",
                    &batch.rops,
                    &handles,
                    &HashMap::new(),
                )
                .await?;
            if let Some(Some(result)) = results.first()
                && result.return_value != 0
            {
                tracing::warn!(
                    code = result.return_value,
                    "re-registering notifications failed"
                );
            }
        }
        Ok(())
    }

    /// Executes ROPs with a literal handle table on the current context, without any
    /// recovery; used while connecting and reopening.
    pub(super) async fn raw_execute(
        &self,
        ctx: &mut Context,
        operation: &'static str,
        rops: &[RopRequest],
        handles: &[u32],
        columns: &HashMap<u8, Vec<crate::prop::PropTag>>,
    ) -> Result<(Vec<Option<RopResult>>, Vec<u32>), SessionError> {
        match self
            .execute_parts(ctx, operation, rops, handles.to_vec(), columns)
            .await
        {
            Ok(parts) => Ok((parts.results, parts.handles)),
            Err(PartsFault {
                fault: Fault::Refused(code),
                ..
            }) => {
                // The context died while it was being set up: start from scratch next time.
                ctx.connected = false;
                Err(SessionError::Refused {
                    operation,
                    code,
                    after_reconnect: true,
                })
            }
            Err(PartsFault {
                fault: Fault::Other(e),
                ..
            }) => Err(e),
        }
    }

    pub(super) async fn reconnect(
        &self,
        ctx: &mut Context,
        code: ResponseCode,
    ) -> Result<(), SessionError> {
        let count = self.inner.reconnects.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(%code, reconnects = count, "session context lost: reconnecting with the old cookies");
        ctx.connected = false;
        ctx.logon = None;
        // Connect with the old cookies: the server replaces the context (MS-OXCMAPIHTTP
        // 3.2.5.6). Handles of the caller are reopened lazily.
        self.connect_request(ctx).await?;
        self.logon(ctx).await
    }

    pub(super) async fn reopen_stale(
        &self,
        ctx: &mut Context,
        batch: &Batch,
    ) -> Result<(), SessionError> {
        let generation = ctx.generation;
        let stale: Vec<u32> = batch
            .slots
            .iter()
            .filter_map(|slot| match slot {
                HandleRef::Object(ObjectHandle(id)) => Some(*id),
                _ => None,
            })
            .filter(|id| {
                ctx.objects
                    .get(id)
                    .is_some_and(|h| h.generation != generation)
            })
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let logon_handle = ctx.logon.as_ref().map(|(h, _)| *h).unwrap_or(u32::MAX);
        let mut rops = Vec::new();
        let mut handles = vec![logon_handle];
        for id in &stale {
            let Some(held) = ctx.objects.get(id) else {
                continue;
            };
            let out = handles.len() as u8;
            handles.push(u32::MAX);
            match held.reopen {
                Reopen::Folder(folder) => rops.push(RopRequest::OpenFolder {
                    logon_id: 0,
                    input_handle: 0,
                    output_handle: out,
                    folder_id: folder,
                    open_mode_flags: 0,
                }),
                Reopen::Message {
                    folder,
                    message,
                    mode,
                } => {
                    rops.push(RopRequest::OpenMessage {
                        logon_id: 0,
                        input_handle: 0,
                        output_handle: out,
                        code_page_id: 0x0FFF,
                        folder_id: folder,
                        open_mode_flags: mode,
                        message_id: message,
                    });
                }
            }
        }
        tracing::debug!(
            objects = stale.len(),
            "reopening held objects on the new context"
        );
        let (results, out_handles) = self
            .raw_execute(ctx, "reopen held objects", &rops, &handles, &HashMap::new())
            .await?;
        for (position, id) in stale.iter().enumerate() {
            let ok = results
                .get(position)
                .and_then(Option::as_ref)
                .is_some_and(|r| r.return_value == 0);
            let server = out_handles.get(position + 1).copied().unwrap_or(u32::MAX);
            if !ok || server == u32::MAX {
                ctx.objects.remove(id);
                return Err(SessionError::Usage {
                    operation: "reopen held objects",
                    reason: "a folder or message held by the caller could not be reopened after a reconnect (it was deleted or moved); open it again by id".to_owned(),
                });
            }
            if let Some(held) = ctx.objects.get_mut(id) {
                held.server = server;
                held.generation = generation;
            }
        }
        Ok(())
    }

    /// Returns the server handle table of a batch: the server value of every input slot
    /// and 0xFFFFFFFF for output slots.
    pub(super) fn batch_handles(
        &self,
        ctx: &Context,
        batch: &Batch,
        operation: &'static str,
    ) -> Result<Vec<u32>, SessionError> {
        let mut handles = Vec::with_capacity(batch.slots.len());
        for slot in &batch.slots {
            handles.push(match slot {
                HandleRef::Logon => ctx.logon.as_ref().map(|(h, _)| *h).unwrap_or(u32::MAX),
                HandleRef::Object(ObjectHandle(id)) => {
                    ctx.objects.get(id).map(|h| h.server).ok_or_else(|| SessionError::Usage {
                        operation,
                        reason: "the batch uses a handle that was released or belongs to a disconnected session".to_owned(),
                    })?
                }
                HandleRef::Raw(handle) => *handle,
                HandleRef::Output => u32::MAX,
            });
        }
        Ok(handles)
    }

    pub(super) fn encode_execute(
        &self,
        operation: &'static str,
        rops: &[RopRequest],
        handles: &[u32],
        max_rop_out: u32,
    ) -> Result<Vec<u8>, SessionError> {
        let buffer = rop::try_encode_request_buffer(&RopBuffer {
            rops: rops.to_vec(),
            handles: handles.to_vec(),
        })
        .map_err(|error| SessionError::Usage {
            operation,
            reason: format!("a ROP of the batch cannot be encoded: {error}"),
        })?;
        if buffer.len() > ext::MAX_REQUEST_PAYLOAD {
            return Err(SessionError::Usage {
                operation,
                reason: format!(
                    "the ROP batch is {} bytes, over the 32 KiB limit of one request; split it",
                    buffer.len()
                ),
            });
        }
        let mut rop_buffer = Vec::new();
        ext::encode_segment(&buffer, EncodeOptions::default(), true, &mut rop_buffer)
            .map_err(|e| SessionError::protocol(operation, e))?;
        ExecuteRequest {
            flags: self.inner.config.execute_flags,
            rop_buffer,
            max_rop_out,
            aux: Vec::new(),
        }
        .encode()
        .map_err(|e| SessionError::protocol(operation, e))
    }

    pub(super) fn decode_rops(
        &self,
        operation: &'static str,
        rops: &[RopRequest],
        columns: &HashMap<u8, Vec<crate::prop::PropTag>>,
        body: &[u8],
    ) -> Result<DecodedRops, SessionError> {
        let success = match ExecuteResponse::decode(body)
            .map_err(|e| SessionError::protocol(operation, e))?
        {
            Response::Success(success) => success,
            Response::Failure(failure) => {
                return Err(SessionError::Status {
                    operation,
                    field: "StatusCode",
                    value: failure.status_code,
                });
            }
        };
        if success.error_code != 0 {
            return Err(SessionError::Status {
                operation,
                field: "ErrorCode",
                value: success.error_code,
            });
        }
        let segments = ext::decode_chain(&success.rop_buffer)
            .map_err(|e| SessionError::protocol(operation, e))?;
        let mut segments = segments.into_iter();
        let first = segments.next().ok_or(SessionError::MissingResponse {
            operation,
            rop: "ROP output buffer",
        })?;
        let context = ResponseContext {
            requests: rops,
            columns: columns.clone(),
        };
        let decoded = rop::decode_response_buffer(&first.payload, &context)
            .map_err(|e| SessionError::protocol(operation, e))?;
        let mut responses = decoded.rops;
        // Further segments (Chain) continue the output; they carry server-only ROPs or
        // continuations this client does not request.
        for segment in segments {
            if let Ok(partial) = rop::decode_response_buffer_partial(&segment.payload) {
                responses.extend(partial.rops);
            }
        }

        let mut results: Vec<Option<RopResult>> = vec![None; rops.len()];
        let mut slots = rops
            .iter()
            .enumerate()
            .filter(|(_, q)| q.has_response())
            .map(|(i, _)| i);
        let mut notices = Vec::new();
        let mut too_small = None;
        for response in responses {
            match response {
                RopResponse::Result(result) => {
                    if let Some(index) = slots.next()
                        && let Some(slot) = results.get_mut(index)
                    {
                        *slot = Some(result);
                    }
                }
                RopResponse::Notify {
                    notification_handle,
                    data,
                    ..
                } => notices.push(Notice::from_notification(notification_handle, &data)),
                RopResponse::Pending { session_index } => {
                    notices.push(Notice::pending(session_index))
                }
                RopResponse::BufferTooSmall {
                    size_needed,
                    request_buffers,
                } => {
                    too_small = Some(TooSmall {
                        size_needed,
                        request_buffers,
                    });
                }
                RopResponse::Backoff(backoff) => {
                    tracing::warn!(
                        duration_ms = backoff.duration,
                        "the server asked to back off (RopBackoff)"
                    );
                }
            }
        }
        for notice in notices {
            tracing::debug!(?notice.kind, "notice");
            let _ = self.inner.notices.send(notice);
        }
        Ok(DecodedRops {
            results,
            handles: decoded.handles,
            too_small,
        })
    }

    /// Sends one NotificationWait with the context's cookies (not sequenced) and returns
    /// whether events are pending.
    pub(super) async fn notification_wait_once(&self) -> Result<bool, SessionError> {
        let operation = "NotificationWait";
        let body = NotificationWaitRequest::default()
            .encode()
            .map_err(|e| SessionError::protocol(operation, e))?;
        let headers = self.headers(RequestType::NotificationWait)?;
        let answer = self
            .inner
            .transport
            .post(operation, headers, body, self.silence())
            .await?;
        self.touch();
        classify(operation, &answer).map_err(|fault| match fault {
            Fault::Refused(code) => SessionError::Refused {
                operation,
                code,
                after_reconnect: false,
            },
            Fault::Other(e) => e,
        })?;
        let framed = parse_body(&answer.body).map_err(|e| SessionError::protocol(operation, e))?;
        match NotificationWaitResponse::decode(&framed.body)
            .map_err(|e| SessionError::protocol(operation, e))?
        {
            Response::Success(success) => Ok(success.has_events()),
            Response::Failure(failure) => Err(SessionError::Status {
                operation,
                field: "StatusCode",
                value: failure.status_code,
            }),
        }
    }
}

/// A decoded Execute response.
pub(super) struct DecodedRops {
    /// One entry per request sent, `None` for RopRelease and for unprocessed requests.
    pub(super) results: Vec<Option<RopResult>>,
    /// The server object handle table of the response.
    pub(super) handles: Vec<u32>,
    /// The RopBufferTooSmall that ended the response, if any.
    pub(super) too_small: Option<TooSmall>,
}

/// RopBufferTooSmall (MS-OXCROPS 2.2.15.1).
pub(super) struct TooSmall {
    /// SizeNeeded: the MaxRopOut the unprocessed requests need.
    pub(super) size_needed: u16,
    /// RequestBuffers: the requests the server did not process, as sent.
    pub(super) request_buffers: Vec<u8>,
}
