//! The async driver of [`SubscriptionMachine`]: it performs the machine's actions with
//! an [`EwsClient`] and hands events and catch-up requests to the caller.
//!
//! Streaming bodies are split into SOAP documents by the codec's
//! [`StreamingReader`], whatever the chunk boundaries, and each document is fed to the
//! machine as soon as it is complete.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt as _;

use crate::error::{EwsError, MessageError};
use crate::operation::Response;
use crate::ops::notify::{
    self, Event, GetEvents, GetStreamingEvents, Notification, StreamingEvents, StreamingReader,
    Subscribe, SubscriptionKind,
};
use crate::subscription::{
    Action, CatchUpCause, ConnectionStatus, FolderScope, StreamMessage, SubscriptionMachine,
    SubscriptionMode,
};
use crate::types::{EventType, FolderId, FolderRef};

use super::transport::BodyStream;
use super::{ClientError, EwsClient};

/// A report of the subscription driver.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum NotificationEvent {
    /// Events from the server, in order. They are hints that a folder changed, never
    /// state.
    Events(Vec<Event>),
    /// Run an incremental sync of these folders from their stored SyncState: events may
    /// have been lost.
    CatchUp {
        /// The folders.
        folders: FolderScope,
        /// Why.
        cause: CatchUpCause,
    },
}

/// A subscription kept alive by the driver: call [`SubscriptionDriver::next`] in a
/// loop.
pub struct SubscriptionDriver {
    client: EwsClient,
    machine: SubscriptionMachine,
    event_types: Vec<EventType>,
    actions: VecDeque<Action>,
    outgoing: VecDeque<NotificationEvent>,
    stream: Option<(BodyStream, StreamingReader)>,
    clock: std::sync::Arc<dyn exmux_core::Clock>,
}

impl std::fmt::Debug for SubscriptionDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionDriver")
            .field("state", self.machine.state())
            .field("streaming", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

impl SubscriptionDriver {
    /// Creates a driver that subscribes `folders` for `event_types` in `mode`, using the
    /// client's clock.
    pub fn new(
        client: EwsClient,
        folders: FolderScope,
        mode: SubscriptionMode,
        event_types: Vec<EventType>,
    ) -> Self {
        let clock = client.inner.clock.clone();
        Self {
            client,
            machine: SubscriptionMachine::new(folders, mode),
            event_types,
            actions: VecDeque::new(),
            outgoing: VecDeque::new(),
            stream: None,
            clock,
        }
    }

    /// Returns the state machine, for inspection.
    pub fn machine(&self) -> &SubscriptionMachine {
        &self.machine
    }

    /// Runs the subscription until it has something to report.
    ///
    /// # Errors
    ///
    /// [`ClientError::Auth`] and [`ClientError::Config`], which no retry can fix. Every
    /// other failure is handled by the machine (reopen or subscribe again, with a
    /// catch-up).
    pub async fn next(&mut self) -> Result<NotificationEvent, ClientError> {
        loop {
            if let Some(event) = self.outgoing.pop_front() {
                return Ok(event);
            }

            if let Some(action) = self.actions.pop_front() {
                self.perform(action).await?;
                continue;
            }

            if self.stream.is_some() {
                self.read_stream().await;
                continue;
            }

            // Nothing in flight: wait for the machine's next deadline, then poll it.
            let now = self.clock.now();
            if let Some(deadline) = self.machine.next_deadline() {
                let wait = deadline.duration_since(now).unwrap_or(Duration::ZERO);
                if !wait.is_zero() {
                    self.client.inner.sleeper.sleep(wait).await;
                }
            }
            let actions = self.machine.poll(self.clock.now());
            if actions.is_empty() && self.machine.next_deadline().is_none() {
                // Unreachable with the actions above: without a deadline the machine
                // waits for an input, and an idle loop must not spin.
                return Err(ClientError::Config {
                    reason: "the subscription machine stalled without a pending request".to_owned(),
                });
            }
            self.actions.extend(actions);
        }
    }

    async fn perform(&mut self, action: Action) -> Result<(), ClientError> {
        match action {
            Action::Subscribe(scope) => self.subscribe(scope).await,
            Action::OpenStream {
                subscription_id,
                connection_timeout,
            } => {
                let request = GetStreamingEvents {
                    subscription_ids: vec![subscription_id],
                    connection_timeout_minutes: connection_timeout.minutes(),
                };
                match self.client.open_stream(&request).await {
                    Ok(body) => {
                        self.stream = Some((body, StreamingReader::new()));
                    }
                    Err(error) => self.on_request_error(error)?,
                }
                Ok(())
            }
            Action::CloseStream => {
                self.stream = None;
                Ok(())
            }
            Action::GetEvents {
                subscription_id,
                watermark,
            } => {
                let request = GetEvents {
                    subscription_id,
                    watermark: watermark.unwrap_or_default(),
                };
                match self.client.call(&request).await {
                    Ok(response) => {
                        let message = pull_message(response);
                        self.feed(message);
                    }
                    Err(error) => self.on_request_error(error)?,
                }
                Ok(())
            }
            Action::CatchUp { folders, cause } => {
                self.outgoing
                    .push_back(NotificationEvent::CatchUp { folders, cause });
                Ok(())
            }
        }
    }

    async fn subscribe(&mut self, scope: FolderScope) -> Result<(), ClientError> {
        let folders = match &scope {
            FolderScope::Folders(ids) => ids.iter().map(|id| folder_ref(id)).collect(),
            _ => Vec::new(),
        };
        let kind = match self.machine.mode() {
            SubscriptionMode::Pull { timeout, .. } => SubscriptionKind::Pull {
                watermark: None,
                timeout_minutes: timeout.minutes(),
            },
            _ => SubscriptionKind::Streaming,
        };
        let request = Subscribe {
            kind,
            folders,
            event_types: self.event_types.clone(),
        };
        let result = self.client.call(&request).await.and_then(|response| {
            response
                .into_single(<Subscribe as crate::operation::EwsOperation>::NAME)
                .map_err(|source| ClientError::Ews {
                    operation: "Subscribe",
                    source,
                })
        });
        let now = self.clock.now();
        match result {
            Ok(subscription) => {
                let actions = self.machine.on_subscribed(
                    subscription.subscription_id,
                    subscription.watermark,
                    now,
                );
                self.actions.extend(actions);
                Ok(())
            }
            Err(error @ (ClientError::Auth { .. } | ClientError::Config { .. })) => Err(error),
            Err(error) => {
                tracing::warn!(%error, "Subscribe failed");
                let actions = self.machine.on_subscribe_failed(now);
                self.actions.extend(actions);
                Ok(())
            }
        }
    }

    /// Reads until the next document, the end of the stream, or the heartbeat deadline.
    async fn read_stream(&mut self) {
        let Some((body, reader)) = self.stream.as_mut() else {
            return;
        };

        // Documents already framed come first: one chunk may hold several.
        match reader.next_message() {
            Ok(Some(response)) => {
                let message = streaming_message(Ok(response));
                self.feed(message);
                return;
            }
            Ok(None) => {}
            Err(error) => {
                let message = streaming_message(Err(error));
                self.feed(message);
                return;
            }
        }

        let now = self.clock.now();
        let wait = self
            .machine
            .next_deadline()
            .and_then(|deadline| deadline.duration_since(now).ok())
            .unwrap_or(Duration::ZERO);
        match tokio::time::timeout(wait, body.next()).await {
            Ok(Some(Ok(chunk))) => reader.push(&chunk),
            Ok(Some(Err(reason))) => {
                tracing::warn!(%reason, "streaming connection failed");
                self.stream = None;
                let actions = self.machine.on_stream_ended(self.clock.now());
                self.actions.extend(actions);
            }
            Ok(None) => {
                // The body ended without ConnectionStatus Closed.
                tracing::debug!("streaming response ended");
                self.stream = None;
                let actions = self.machine.on_stream_ended(self.clock.now());
                self.actions.extend(actions);
            }
            Err(_) => {
                let actions = self.machine.poll(self.clock.now());
                self.actions.extend(actions);
            }
        }
    }

    fn feed(&mut self, message: StreamMessage<Event>) {
        let step = self.machine.on_message(message, self.clock.now());
        if !step.events.is_empty() {
            self.outgoing
                .push_back(NotificationEvent::Events(step.events));
        }
        self.actions.extend(step.actions);
    }

    /// Hands a failed GetEvents or GetStreamingEvents to the machine: a subscription
    /// error as a message, anything else as a dropped stream.
    fn on_request_error(&mut self, error: ClientError) -> Result<(), ClientError> {
        if matches!(error, ClientError::Auth { .. } | ClientError::Config { .. }) {
            return Err(error);
        }
        let code = error
            .ews()
            .and_then(EwsError::response_code)
            .map(|code| code.as_str().to_owned());
        match code {
            Some(code) if crate::subscription::is_subscription_loss(&code) => {
                let ids = match error.ews() {
                    Some(EwsError::Message { error, .. }) => error.subscription_ids.clone(),
                    _ => Vec::new(),
                };
                self.feed(StreamMessage {
                    error_code: Some(code),
                    error_subscription_ids: ids,
                    ..StreamMessage::default()
                });
            }
            _ => {
                tracing::warn!(%error, "notification request failed");
                self.stream = None;
                let actions = self.machine.on_stream_ended(self.clock.now());
                self.actions.extend(actions);
            }
        }
        Ok(())
    }
}

/// Reduces one streaming document to what the machine needs.
fn streaming_message(parsed: Result<Response<StreamingEvents>, EwsError>) -> StreamMessage<Event> {
    let response = match parsed {
        Ok(response) => response,
        Err(error) => {
            // A fault or an unreadable document: a subscription code is a loss,
            // anything else ends this stream.
            let code = error.response_code().map(|code| code.as_str().to_owned());
            tracing::warn!(%error, "unreadable streaming document");
            return StreamMessage {
                error_code: code.or_else(|| Some("ErrorReadEventsFailed".to_owned())),
                ..StreamMessage::default()
            };
        }
    };

    let mut message = StreamMessage::default();
    for result in response.messages {
        match result {
            Ok(document) => {
                for notification in document.notifications {
                    take_notification(&mut message, notification);
                }
                match document.connection_status {
                    Some(notify::ConnectionStatus::Closed) => {
                        message.status = Some(ConnectionStatus::Closed);
                    }
                    Some(_) if message.status.is_none() => {
                        message.status = Some(ConnectionStatus::Ok);
                    }
                    _ => {}
                }
            }
            Err(error) => take_error(&mut message, &error),
        }
    }
    message
}

/// Reduces a GetEvents response to what the machine needs.
fn pull_message(response: Response<Notification>) -> StreamMessage<Event> {
    let mut message = StreamMessage::default();
    for result in response.messages {
        match result {
            Ok(notification) => {
                message.more_events |= notification.more_events;
                take_notification(&mut message, notification);
            }
            Err(error) => take_error(&mut message, &error),
        }
    }
    message
}

fn take_notification(message: &mut StreamMessage<Event>, notification: Notification) {
    for event in notification.events {
        if let Some(watermark) = &event.watermark {
            message.watermark = Some(watermark.clone());
        }
        message.events.push(event);
    }
}

fn take_error(message: &mut StreamMessage<Event>, error: &MessageError) {
    message.error_code = Some(error.code.as_str().to_owned());
    message
        .error_subscription_ids
        .extend(error.subscription_ids.iter().cloned());
}

/// Turns a folder id or a distinguished folder name into a folder reference.
fn folder_ref(id: &str) -> FolderRef {
    match crate::types::DistinguishedFolder::parse(id) {
        Some(name) => FolderRef::distinguished(name),
        None => FolderRef::Id(FolderId::new(id)),
    }
}
