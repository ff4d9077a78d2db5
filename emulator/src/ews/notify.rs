//! Notifications (MS-OXWSNTIF): Subscribe, GetEvents, Unsubscribe, and the long chunked
//! GetStreamingEvents response with heartbeats on the emulator's clock.
//!
//! A SubscriptionId is base64 of `EXSB`, the store's subscription number and a random
//! number from the store's seeded generator. A Watermark is base64 of the store's
//! watermark (a little-endian u64).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use exmux_ews::ops::notify::{
    ConnectionStatus, Event, EventKind as EwsEventKind, GetEvents, GetStreamingEvents,
    Notification, StreamingEvents, Subscribe, Subscription, SubscriptionKind, Unsubscribe,
};
use exmux_ews::types::{EventType, FolderId};
use exmux_ews::{EwsServerOperation as _, MessageError, Response, ResponseCode, encode_response};
use http::StatusCode;
use time::OffsetDateTime;
use tracing::{debug, warn};

use super::error::{code_error, request_fault, store_error};
use super::ids::{IdCodec, change_key};
use super::ops::Ctx;
use super::{
    EwsFrontEnd, Quirk, Quirks, SubscriptionInfo, server_version, single, store_of, xml_response,
};
use crate::server::{EmuResponse, ResponseBody, SharedState};
use crate::store::{
    EventKind, EventKinds, Notice, ObjectId, Store, StoreError, SubscriptionId, SubscriptionScope,
    Watermark,
};
use exmux_ews::ids::{CHANGE_KEY_CLASS_FOLDER, CHANGE_KEY_CLASS_MESSAGE};

/// The maximum number of events in one GetEvents response or streaming envelope.
const MAX_EVENTS: usize = 50;
/// The real-time interval at which a streaming response checks for new notices and
/// for the clock's progress.
const STREAM_POLL: Duration = Duration::from_millis(10);
/// How long [`Quirk::DeadStreamHeldOpen`] keeps a dead subscription's response open, on
/// the emulator's clock (about what one server was seen to do).
const DEAD_STREAM_HOLD: Duration = Duration::from_secs(50);

fn event_kind(event: EventType) -> Option<EventKind> {
    Some(match event {
        EventType::NewMail => EventKind::NewMail,
        EventType::Created => EventKind::Created,
        EventType::Deleted => EventKind::Deleted,
        EventType::Modified => EventKind::Modified,
        EventType::Moved => EventKind::Moved,
        EventType::Copied => EventKind::Copied,
        _ => return None,
    })
}

fn watermark_text(watermark: Watermark) -> String {
    STANDARD.encode(watermark.0.to_le_bytes())
}

fn parse_watermark(text: &str) -> Option<Watermark> {
    let bytes = STANDARD.decode(text.trim()).ok()?;
    let bytes: [u8; 8] = bytes.try_into().ok()?;
    Some(Watermark(u64::from_le_bytes(bytes)))
}

pub(crate) fn subscribe(ctx: &mut Ctx<'_>, op: Subscribe) -> Response<Subscription> {
    single((|| {
        let scope = if op.folders.is_empty() {
            SubscriptionScope::Store
        } else {
            let folders = op
                .folders
                .iter()
                .map(|folder| ctx.ids.resolve_folder(ctx.store, folder))
                .collect::<Result<BTreeSet<_>, _>>()?;
            SubscriptionScope::Folders(folders)
        };
        let kinds: EventKinds = op
            .event_types
            .iter()
            .filter_map(|e| event_kind(*e))
            .collect();
        let (timeout, streaming) = match &op.kind {
            SubscriptionKind::Pull {
                timeout_minutes, ..
            } => (
                Some(Duration::from_secs(u64::from(*timeout_minutes) * 60)),
                false,
            ),
            _ => (None, true),
        };
        let id = ctx
            .store
            .subscribe(ctx.session, scope, kinds, timeout)
            .map_err(|error| store_error(&error))?;

        let mut token = b"EXSB".to_vec();
        token.extend_from_slice(&id.0.to_le_bytes());
        token.extend_from_slice(&ctx.store.next_random().to_le_bytes());
        let token = STANDARD.encode(token);
        ctx.front_end
            .register_subscription(token.clone(), SubscriptionInfo { id, streaming });

        // A new subscription starts at the newest event: its watermark is the last one.
        let watermark = ctx
            .store
            .poll_notices(id, None, 0)
            .map(|batch| batch.watermark)
            .map_err(|error| store_error(&error))?;
        let watermark = if ctx.quirks.on(Quirk::NoWatermarks) {
            None
        } else {
            Some(watermark_text(watermark))
        };
        Ok(Subscription {
            subscription_id: token,
            watermark,
        })
    })())
}

fn lost_subscription(token: &str) -> MessageError {
    code_error(
        ResponseCode::ErrorSubscriptionNotFound,
        format!("The subscription {token} was not found; subscribe again."),
    )
}

pub(crate) fn get_events(ctx: &mut Ctx<'_>, op: GetEvents) -> Response<Notification> {
    single((|| {
        let info = ctx
            .front_end
            .subscription(&op.subscription_id)
            .filter(|info| !info.streaming)
            .ok_or_else(|| lost_subscription(&op.subscription_id))?;
        let acknowledged = match parse_watermark(&op.watermark) {
            Some(watermark) => Some(watermark),
            None if ctx.quirks.on(Quirk::NoWatermarks) => None,
            None => {
                return Err(code_error(
                    ResponseCode::ErrorInvalidWatermark,
                    format!("The watermark {:?} is not valid.", op.watermark),
                ));
            }
        };
        let batch = ctx
            .store
            .poll_notices(info.id, acknowledged, MAX_EVENTS)
            .map_err(|error| store_error(&error))?;
        let previous = acknowledged.unwrap_or(batch.watermark);
        let mut events = events_of(ctx.store, &ctx.ids, ctx.quirks, &batch.notices);
        if events.is_empty() {
            // Exchange returns one StatusEvent for a poll without changes.
            let mut status = Event::new(EwsEventKind::Status);
            status.watermark = Some(watermark_text(batch.watermark));
            events.push(status);
        }
        strip_watermarks(&mut events, ctx.quirks);
        Ok(Notification {
            subscription_id: op.subscription_id.clone(),
            previous_watermark: (!ctx.quirks.on(Quirk::NoWatermarks))
                .then(|| watermark_text(previous)),
            more_events: batch.more_available,
            events,
        })
    })())
}

pub(crate) fn unsubscribe(ctx: &mut Ctx<'_>, op: Unsubscribe) -> Response<()> {
    single(
        match ctx.front_end.forget_subscription(&op.subscription_id) {
            Some(info) => {
                ctx.store.unsubscribe(info.id);
                Ok(())
            }
            None => Err(lost_subscription(&op.subscription_id)),
        },
    )
}

fn strip_watermarks(events: &mut [Event], quirks: Quirks) {
    if quirks.on(Quirk::NoWatermarks) {
        for event in events {
            event.watermark = None;
        }
    }
}

/// Turns store notices into EWS events.
fn events_of(store: &Store, ids: &IdCodec, quirks: Quirks, notices: &[Notice]) -> Vec<Event> {
    let mut events = Vec::new();
    for notice in notices {
        let kind = match notice.kind {
            EventKind::NewMail => EwsEventKind::NewMail,
            EventKind::Created => EwsEventKind::Created,
            EventKind::Deleted => EwsEventKind::Deleted,
            EventKind::Modified => EwsEventKind::Modified,
            EventKind::Moved => EwsEventKind::Moved,
            EventKind::Copied => EwsEventKind::Copied,
        };
        let mut event = Event::new(kind);
        event.watermark = Some(watermark_text(notice.watermark));
        event.timestamp = Some(OffsetDateTime::from(notice.time));
        event.parent_folder_id = Some(folder_id(store, ids, quirks, notice.parent));
        match notice.object {
            ObjectId::Item(mid) => {
                let mut id = ids.item_id_at(notice.parent, mid);
                if !quirks.on(Quirk::NoChangeKeysInEvents) {
                    id.change_key = store
                        .item(mid)
                        .map(|item| change_key(CHANGE_KEY_CLASS_MESSAGE, &item.stamp.change_key));
                }
                event.item_id = Some(id);
            }
            ObjectId::Folder(fid) => {
                event.folder_id = Some(folder_id(store, ids, quirks, fid));
            }
        }
        match (notice.old_object, notice.old_parent) {
            (Some(ObjectId::Item(old)), Some(old_parent)) => {
                event.old_item_id = Some(ids.item_id_at(old_parent, old));
                event.old_parent_folder_id = Some(folder_id(store, ids, quirks, old_parent));
            }
            (Some(ObjectId::Folder(old)), Some(old_parent)) => {
                event.old_folder_id = Some(FolderId::new(ids.folder_id_text(old)));
                event.old_parent_folder_id = Some(folder_id(store, ids, quirks, old_parent));
            }
            _ => {}
        }
        let duplicate = kind == EwsEventKind::Modified
            && event.item_id.is_some()
            && quirks.on(Quirk::DuplicateModifiedEvents);
        if duplicate {
            events.push(event.clone());
        }
        events.push(event);
    }
    events
}

fn folder_id(store: &Store, ids: &IdCodec, quirks: Quirks, fid: crate::store::Fid) -> FolderId {
    match store.folder(fid) {
        Some(folder) if !quirks.on(Quirk::NoChangeKeysInEvents) => FolderId {
            change_key: Some(change_key(
                CHANGE_KEY_CLASS_FOLDER,
                &folder.stamp.change_key,
            )),
            ..FolderId::new(ids.folder_id_text(fid))
        },
        _ => FolderId::new(ids.folder_id_text(fid)),
    }
}

/// Writes one GetStreamingEvents envelope, with `t:Notification` as the schema has it,
/// or `m:Notification` under [`Quirk::MessagesNamespaceNotification`].
fn streaming_envelope(message: Result<StreamingEvents, MessageError>, quirks: Quirks) -> Vec<u8> {
    let response = Response::new(vec![message]);
    let body = encode_response::<GetStreamingEvents>(&response, Some(&server_version()))
        .unwrap_or_default();
    if !quirks.on(Quirk::MessagesNamespaceNotification) {
        return body;
    }
    String::from_utf8_lossy(&body)
        .replace("<t:Notification>", "<m:Notification>")
        .replace("</t:Notification>", "</m:Notification>")
        .into_bytes()
}

/// Returns the chunks that carry `envelopes` under the framing quirks.
fn frame(envelopes: Vec<Vec<u8>>, quirks: Quirks) -> Vec<Bytes> {
    if quirks.on(Quirk::CoalesceStreamEnvelopes) {
        return vec![Bytes::from(envelopes.concat())];
    }
    let mut chunks = Vec::new();
    for envelope in envelopes {
        if quirks.on(Quirk::SplitStreamEnvelopes) {
            // Split inside the first tag after the middle, so a reader that parses each
            // chunk alone fails.
            let middle = envelope.len() / 2;
            let split = envelope
                .iter()
                .skip(middle)
                .position(|byte| *byte == b'<')
                .map_or(middle, |offset| middle + offset + 2)
                .min(envelope.len());
            let mut envelope = Bytes::from(envelope);
            let tail = envelope.split_off(split);
            chunks.push(envelope);
            chunks.push(tail);
        } else {
            chunks.push(Bytes::from(envelope));
        }
    }
    chunks
}

/// Serves GetStreamingEvents: checks the subscriptions, then streams envelopes with
/// events as they arrive, a heartbeat whenever nothing was sent for the heartbeat
/// interval, and a final `ConnectionStatus Closed` after ConnectionTimeout minutes on
/// the emulator's clock. A subscription that dies meanwhile ends the stream with its
/// error and Closed.
pub(crate) async fn streaming(
    front_end: EwsFrontEnd,
    state: Arc<SharedState>,
    body: &exmux_ews::xml::Element,
    quirks: Quirks,
) -> EmuResponse {
    let op = match GetStreamingEvents::from_request(body) {
        Ok(op) => op,
        Err(error) => {
            return xml_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                request_fault(
                    ResponseCode::ErrorSchemaValidation,
                    &format!("The request failed schema validation: {error}"),
                ),
            );
        }
    };

    let mut subscriptions = Vec::new();
    let mut dead = Vec::new();
    {
        let mut store = store_of(&state);
        for token in &op.subscription_ids {
            match front_end.subscription(token).filter(|info| info.streaming) {
                Some(info) => match store.poll_notices(info.id, None, 0) {
                    Ok(_) => subscriptions.push((token.clone(), info.id)),
                    Err(error) => dead.push((token.clone(), error)),
                },
                None => dead.push((
                    token.clone(),
                    StoreError::SubscriptionNotFound {
                        operation: "get streaming events",
                        subscription: SubscriptionId(0),
                    },
                )),
            }
        }
    }
    if let Some((token, error)) = dead.first() {
        // As Exchange: the error at once, with Closed, in an ordinary response.
        let code = match error {
            StoreError::SubscriptionExpired { .. } => ResponseCode::ErrorExpiredSubscription,
            _ => ResponseCode::ErrorInvalidSubscription,
        };
        let mut message = code_error(code, error.to_string());
        message.subscription_ids = dead.iter().map(|(token, _)| token.clone()).collect();
        debug!(subscription = %token, "GetStreamingEvents on a dead subscription");
        let envelope = streaming_envelope(Err(message), quirks);
        if !quirks.on(Quirk::DeadStreamHeldOpen) {
            return xml_response(StatusCode::OK, envelope);
        }

        warn!("quirk: holding the response of a dead subscription open");
        let (sender, body) = ResponseBody::channel(1);
        tokio::spawn(async move {
            let clock = Arc::clone(&state.clock);
            let start = clock.now_millis();
            let hold = u64::try_from(DEAD_STREAM_HOLD.as_millis()).unwrap_or(u64::MAX);
            if sender.send(Bytes::from(envelope)).await.is_err() {
                return;
            }
            while clock.now_millis().saturating_sub(start) < hold && !state.shutdown.is_cancelled()
            {
                tokio::select! {
                    () = tokio::time::sleep(STREAM_POLL) => {}
                    () = sender.closed() => return,
                }
            }
        });
        return stream_response(body);
    }

    let (sender, body) = ResponseBody::channel(16);
    let timeout = Duration::from_secs(u64::from(op.connection_timeout_minutes.clamp(1, 30)) * 60);
    let heartbeat = front_end.heartbeat_interval();
    tokio::spawn(async move {
        let clock = Arc::clone(&state.clock);
        let start = clock.now_millis();
        let mut last_sent = start;
        let mut acknowledged: Vec<Option<Watermark>> = vec![None; subscriptions.len()];
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);

        loop {
            let now = clock.now_millis();
            let mut envelopes = Vec::new();
            let mut closing = None;
            {
                let mut store = store_of(&state);
                let ids = IdCodec::new(state.mailbox.mailbox_guid, &store);
                let mut notifications = Vec::new();
                for ((token, id), ack) in subscriptions.iter().zip(acknowledged.iter_mut()) {
                    match store.poll_notices(*id, *ack, MAX_EVENTS) {
                        Ok(batch) if !batch.notices.is_empty() => {
                            let previous = ack.unwrap_or(batch.watermark);
                            // Delivered notices are acknowledged at the next poll, once
                            // the chunk left without the client disconnecting.
                            *ack = Some(batch.watermark);
                            let mut events = events_of(&store, &ids, quirks, &batch.notices);
                            strip_watermarks(&mut events, quirks);
                            notifications.push(Notification {
                                subscription_id: token.clone(),
                                previous_watermark: (!quirks.on(Quirk::NoWatermarks))
                                    .then(|| watermark_text(previous)),
                                more_events: batch.more_available,
                                events,
                            });
                        }
                        Ok(_) => {}
                        Err(error) => {
                            let code = match error {
                                StoreError::SubscriptionExpired { .. } => {
                                    ResponseCode::ErrorExpiredSubscription
                                }
                                _ => ResponseCode::ErrorInvalidSubscription,
                            };
                            let mut message = code_error(code, error.to_string());
                            message.subscription_ids = vec![token.clone()];
                            closing = Some(message);
                        }
                    }
                }
                if quirks.on(Quirk::CoalesceStreamEnvelopes) {
                    for notification in notifications {
                        for event in notification.events.iter().cloned() {
                            envelopes.push(streaming_envelope(
                                Ok(StreamingEvents {
                                    notifications: vec![Notification {
                                        events: vec![event],
                                        ..notification.clone()
                                    }],
                                    connection_status: Some(ConnectionStatus::Ok),
                                }),
                                quirks,
                            ));
                        }
                    }
                } else if !notifications.is_empty() {
                    envelopes.push(streaming_envelope(
                        Ok(StreamingEvents {
                            notifications,
                            connection_status: Some(ConnectionStatus::Ok),
                        }),
                        quirks,
                    ));
                }
            }

            let finished = closing.is_some()
                || now.saturating_sub(start) >= millis(timeout)
                || state.shutdown.is_cancelled();
            if let Some(message) = closing {
                envelopes.push(streaming_envelope(Err(message), quirks));
            } else if finished {
                envelopes.push(streaming_envelope(
                    Ok(StreamingEvents {
                        notifications: Vec::new(),
                        connection_status: Some(ConnectionStatus::Closed),
                    }),
                    quirks,
                ));
            } else if envelopes.is_empty() && now.saturating_sub(last_sent) >= millis(heartbeat) {
                envelopes.push(streaming_envelope(
                    Ok(StreamingEvents {
                        notifications: Vec::new(),
                        connection_status: Some(ConnectionStatus::Ok),
                    }),
                    quirks,
                ));
            }

            if !envelopes.is_empty() {
                last_sent = now;
                for chunk in frame(envelopes, quirks) {
                    if sender.send(chunk).await.is_err() {
                        debug!("streaming client went away");
                        return;
                    }
                }
            }
            if finished {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(STREAM_POLL) => {}
                () = sender.closed() => {
                    warn!("streaming response closed before ConnectionStatus Closed");
                    return;
                }
            }
        }
    });

    stream_response(body)
}

/// Returns a streaming response with an XML content type.
fn stream_response(body: ResponseBody) -> EmuResponse {
    let mut response = http::Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}
