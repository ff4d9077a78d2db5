//! Pull and streaming subscriptions: a sans-I/O state machine and its rule for a lost
//! subscription (MS-OXWSNTIF).
//!
//! A subscription can be lost in many ways: the server returns
//! `ErrorSubscriptionNotFound`, `ErrorInvalidSubscription` or another subscription error
//! (sometimes with `ConnectionStatus` OK), a pull subscription expires, a
//! stream ends with `ConnectionStatus` Closed, the connection drops, or no heartbeat
//! arrives in time. The machine applies one rule to all of them:
//!
//! 1. while the server may still accept the subscription id (a stream that closed,
//!    dropped or went silent), open the stream again with the same id;
//! 2. otherwise (any subscription error, an expired pull subscription, a reopen that
//!    keeps failing) subscribe again;
//! 3. in every case, report the subscribed folders as needing a catch-up incremental
//!    sync, because events in the gap are lost and many servers send no usable
//!    watermark.
//!
//! The machine takes time as an argument ([`exmux_core::Clock`] in the driver, a
//! `ManualClock` in tests) and returns [`Action`]s; the driver performs them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{MessageError, ResponseCode};
use crate::ops::notify::{Event, EventKind};
use crate::types::{FolderId, ItemId};

/// The `ConnectionTimeout` of GetStreamingEvents, in minutes (MS-OXWSNTIF 3.1.4.3: 1 to
/// 30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionTimeout(u8);

impl ConnectionTimeout {
    /// The maximum timeout, 30 minutes.
    pub const MAX: Self = Self(30);

    /// Creates a timeout of `minutes`.
    ///
    /// # Errors
    ///
    /// Returns [`SubscriptionConfigError::ConnectionTimeout`] unless `minutes` is 1 to 30.
    pub fn from_minutes(minutes: u32) -> Result<Self, SubscriptionConfigError> {
        match u8::try_from(minutes) {
            Ok(value @ 1..=30) => Ok(Self(value)),
            _ => Err(SubscriptionConfigError::ConnectionTimeout { minutes }),
        }
    }

    /// Returns the timeout in minutes.
    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }
}

/// The `Timeout` of a pull subscription, in minutes (MS-OXWSNTIF 2.2.4.7: 1 to 1440).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PullTimeout(u16);

impl PullTimeout {
    /// Creates a timeout of `minutes`.
    ///
    /// # Errors
    ///
    /// Returns [`SubscriptionConfigError::PullTimeout`] unless `minutes` is 1 to 1440.
    pub fn from_minutes(minutes: u32) -> Result<Self, SubscriptionConfigError> {
        match u16::try_from(minutes) {
            Ok(value @ 1..=1440) => Ok(Self(value)),
            _ => Err(SubscriptionConfigError::PullTimeout { minutes }),
        }
    }

    /// Returns the timeout in minutes.
    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }
}

/// An invalid subscription setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionConfigError {
    /// A streaming `ConnectionTimeout` outside 1 to 30 minutes.
    #[error("invalid streaming ConnectionTimeout {minutes} min: use 1 to 30 minutes")]
    ConnectionTimeout {
        /// The rejected value.
        minutes: u32,
    },
    /// A pull subscription `Timeout` outside 1 to 1440 minutes.
    #[error("invalid pull subscription Timeout {minutes} min: use 1 to 1440 minutes")]
    PullTimeout {
        /// The rejected value.
        minutes: u32,
    },
}

/// The folders a subscription watches.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FolderScope {
    /// These folder ids (case-sensitive base64, or distinguished folder names).
    Folders(Vec<String>),
    /// Every folder of the mailbox (Subscribe with `SubscribeToAllFolders`).
    WholeMailbox,
}

/// The delivery mode of a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionMode {
    /// A pull subscription polled with GetEvents.
    Pull {
        /// The subscription's `Timeout`: the server drops it when no GetEvents arrives
        /// for this long.
        timeout: PullTimeout,
        /// The time between two GetEvents calls. It must stay below the timeout.
        interval: Duration,
    },
    /// A streaming subscription read with GetStreamingEvents.
    Streaming {
        /// How long one GetStreamingEvents response stays open.
        connection_timeout: ConnectionTimeout,
        /// The maximum silence on an open stream before it counts as dead.
        /// Exchange sends a heartbeat every 45 s, and the EWS Managed API waits twice
        /// that, which is the default here.
        heartbeat_timeout: Duration,
    },
}

impl SubscriptionMode {
    /// Returns a streaming mode with a 30-minute connection timeout and a 90-second
    /// heartbeat watchdog.
    pub fn streaming() -> Self {
        Self::Streaming {
            connection_timeout: ConnectionTimeout::MAX,
            heartbeat_timeout: Duration::from_secs(90),
        }
    }
}

/// The reason the folders need a catch-up sync.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatchUpCause {
    /// A new subscription: changes made before it started are not in its events.
    Subscribed,
    /// The server rejected the subscription id with this response code.
    SubscriptionError(String),
    /// A pull subscription was not polled within its timeout and has expired.
    Expired,
    /// The stream ended with `ConnectionStatus` Closed.
    StreamClosed,
    /// The connection dropped before `ConnectionStatus` Closed.
    ConnectionDropped,
    /// No heartbeat or event arrived within the heartbeat timeout.
    HeartbeatMissed,
}

/// Something the driver does for the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send Subscribe for these folders, then call [`SubscriptionMachine::on_subscribed`]
    /// or [`SubscriptionMachine::on_subscribe_failed`].
    Subscribe(FolderScope),
    /// Send GetStreamingEvents for this id, feed each SOAP document to
    /// [`SubscriptionMachine::on_message`], and call
    /// [`SubscriptionMachine::on_stream_ended`] when the response ends without a Closed
    /// status.
    OpenStream {
        /// The subscription id (case-sensitive).
        subscription_id: String,
        /// The `ConnectionTimeout` to send.
        connection_timeout: ConnectionTimeout,
    },
    /// Stop reading the current GetStreamingEvents response and drop its connection.
    CloseStream,
    /// Send GetEvents for this id and watermark, then call
    /// [`SubscriptionMachine::on_message`].
    GetEvents {
        /// The subscription id (case-sensitive).
        subscription_id: String,
        /// The last watermark seen, when the server sent one.
        watermark: Option<String>,
    },
    /// Run an incremental sync (SyncFolderItems from the stored SyncState) of these
    /// folders.
    CatchUp {
        /// The folders to sync.
        folders: FolderScope,
        /// Why.
        cause: CatchUpCause,
    },
}

/// `ConnectionStatus` of a GetStreamingEvents response message (MS-OXWSNTIF 3.1.4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// The stream stays open.
    Ok,
    /// The server ends the stream after this document.
    Closed,
}

/// One GetEvents response or one document of a GetStreamingEvents response, reduced to
/// what the machine needs. `E` is the caller's event type; the machine only passes events
/// through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamMessage<E> {
    /// The events in the document, in order.
    pub events: Vec<E>,
    /// The last watermark in the document, when it carries one.
    pub watermark: Option<String>,
    /// `ConnectionStatus`, on streaming documents.
    pub status: Option<ConnectionStatus>,
    /// The response code when the response message is an error.
    pub error_code: Option<String>,
    /// `ErrorSubscriptionIds` of an error message; empty means the error applies to
    /// the request as a whole.
    pub error_subscription_ids: Vec<String>,
    /// `MoreEvents` of a pull notification: poll again at once.
    pub more_events: bool,
}

impl<E> Default for StreamMessage<E> {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            watermark: None,
            status: None,
            error_code: None,
            error_subscription_ids: Vec::new(),
            more_events: false,
        }
    }
}

/// The outcome of feeding the machine: events to deliver and actions to perform, in
/// this order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step<E> {
    /// Events to hand to the caller. Events of a document that also ends or fails the
    /// subscription are still delivered.
    pub events: Vec<E>,
    /// Actions for the driver, in order.
    pub actions: Vec<Action>,
}

/// The state of a [`SubscriptionMachine`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Not started, or waiting to subscribe again after a failure.
    Unsubscribed {
        /// When to send Subscribe again, in Unix milliseconds (0 means at once).
        retry_at_millis: u64,
    },
    /// Subscribe was sent.
    Subscribing,
    /// A GetStreamingEvents response is open (or being opened) on this id.
    Streaming {
        /// The subscription id.
        id: String,
        /// The time of the last document or stream start, in Unix milliseconds.
        last_activity_millis: u64,
    },
    /// A pull subscription waiting for its next poll.
    Pulling {
        /// The subscription id.
        id: String,
        /// When to poll next, in Unix milliseconds.
        next_poll_millis: u64,
        /// The time of the last successful GetEvents, in Unix milliseconds.
        last_poll_millis: u64,
        /// Whether a GetEvents is in flight.
        in_flight: bool,
    },
    /// A stream that failed, waiting to be reopened with the same id.
    Reopening {
        /// The subscription id.
        id: String,
        /// When to reopen, in Unix milliseconds.
        at_millis: u64,
    },
}

/// Response codes that mean the subscription is gone for good. A subscription error
/// not in this list is handled the same way whenever it names this subscription.
pub const SUBSCRIPTION_ERRORS: &[&str] = &[
    "ErrorSubscriptionNotFound",
    "ErrorInvalidSubscription",
    "ErrorExpiredSubscription",
    "ErrorInvalidWatermark",
    "ErrorMissedNotificationEvents",
    "ErrorSubscriptionAccessDenied",
    "ErrorSubscriptionDelegateAccessNotSupported",
    "ErrorInvalidSubscriptionRequest",
    "ErrorReadEventsFailed",
];

/// After this many stream failures in a row without a document, the machine subscribes
/// again instead of reopening.
const MAX_REOPEN_FAILURES: u32 = 3;

/// The delay before the second reopen after consecutive stream failures, doubled per
/// further failure up to five minutes. The first reopen after a document goes at once.
const REOPEN_BASE_DELAY: Duration = Duration::from_secs(1);

/// The delay before subscribing again after a failed Subscribe, doubled per failure up
/// to five minutes.
const RESUBSCRIBE_BASE_DELAY: Duration = Duration::from_secs(2);

/// The subscription state machine.
#[derive(Clone, Debug)]
pub struct SubscriptionMachine {
    folders: FolderScope,
    mode: SubscriptionMode,
    state: State,
    watermark: Option<String>,
    reopen_failures: u32,
    subscribe_failures: u32,
    pending_cause: Option<CatchUpCause>,
}

impl SubscriptionMachine {
    /// Creates a machine for `folders` in `mode`. Nothing happens until
    /// [`SubscriptionMachine::poll`].
    pub fn new(folders: FolderScope, mode: SubscriptionMode) -> Self {
        Self {
            folders,
            mode,
            state: State::Unsubscribed { retry_at_millis: 0 },
            watermark: None,
            reopen_failures: 0,
            subscribe_failures: 0,
            pending_cause: Some(CatchUpCause::Subscribed),
        }
    }

    /// Returns the current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Returns the subscribed folders.
    pub fn folders(&self) -> &FolderScope {
        &self.folders
    }

    /// Returns the mode.
    pub fn mode(&self) -> SubscriptionMode {
        self.mode
    }

    /// Returns when [`SubscriptionMachine::poll`] has something to do next: a retry, a
    /// pull, an expiry or the heartbeat deadline. `None` means only an input can move
    /// the machine.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        let millis = match &self.state {
            State::Unsubscribed { retry_at_millis } => *retry_at_millis,
            State::Subscribing => return None,
            State::Reopening { at_millis, .. } => *at_millis,
            State::Streaming {
                last_activity_millis,
                ..
            } => last_activity_millis.saturating_add(duration_millis(self.heartbeat_timeout())),
            State::Pulling {
                next_poll_millis,
                in_flight,
                ..
            } => {
                if *in_flight {
                    return None;
                }
                *next_poll_millis
            }
        };
        Some(UNIX_EPOCH + Duration::from_millis(millis))
    }

    /// Advances the machine to `now`: subscribes when due, polls a pull subscription,
    /// and fires the heartbeat watchdog of a silent stream.
    pub fn poll(&mut self, now: SystemTime) -> Vec<Action> {
        let now_millis = millis(now);
        let heartbeat_timeout = duration_millis(self.heartbeat_timeout());
        match &mut self.state {
            State::Unsubscribed { retry_at_millis } if now_millis >= *retry_at_millis => {
                self.state = State::Subscribing;
                vec![Action::Subscribe(self.folders.clone())]
            }
            State::Streaming {
                id,
                last_activity_millis,
            } => {
                let deadline = last_activity_millis.saturating_add(heartbeat_timeout);
                if now_millis < deadline {
                    return Vec::new();
                }
                let id = id.clone();
                tracing::warn!(
                    subscription_id = %id,
                    "no heartbeat within the timeout: reopening the stream"
                );
                let mut actions = vec![Action::CloseStream];
                actions.extend(self.reopen(id, CatchUpCause::HeartbeatMissed, now_millis));
                actions
            }
            State::Reopening { id, at_millis } => {
                if now_millis < *at_millis {
                    return Vec::new();
                }
                let id = id.clone();
                self.reopen(id, CatchUpCause::ConnectionDropped, now_millis)
            }
            State::Pulling {
                id,
                next_poll_millis,
                last_poll_millis,
                in_flight,
            } => {
                if *in_flight || now_millis < *next_poll_millis {
                    return Vec::new();
                }
                let expiry = match self.mode {
                    SubscriptionMode::Pull { timeout, .. } => {
                        last_poll_millis.saturating_add(u64::from(timeout.minutes()) * 60_000)
                    }
                    SubscriptionMode::Streaming { .. } => u64::MAX,
                };
                if now_millis >= expiry {
                    tracing::warn!(subscription_id = %id, "pull subscription expired: subscribing again");
                    return self.resubscribe(CatchUpCause::Expired);
                }
                *in_flight = true;
                vec![Action::GetEvents {
                    subscription_id: id.clone(),
                    watermark: self.watermark.clone(),
                }]
            }
            _ => Vec::new(),
        }
    }

    /// Records a successful Subscribe with its id and watermark.
    pub fn on_subscribed(
        &mut self,
        subscription_id: String,
        watermark: Option<String>,
        now: SystemTime,
    ) -> Vec<Action> {
        let now_millis = millis(now);
        self.subscribe_failures = 0;
        self.watermark = watermark;
        tracing::debug!(subscription_id = %subscription_id, "subscribed");

        let mut actions = Vec::new();
        // The catch-up comes after the subscription exists, so a change made in between
        // is seen either by the sync or by an event.
        if let Some(cause) = self.pending_cause.take() {
            actions.push(Action::CatchUp {
                folders: self.folders.clone(),
                cause,
            });
        }

        match self.mode {
            SubscriptionMode::Streaming {
                connection_timeout, ..
            } => {
                actions.push(Action::OpenStream {
                    subscription_id: subscription_id.clone(),
                    connection_timeout,
                });
                self.state = State::Streaming {
                    id: subscription_id,
                    last_activity_millis: now_millis,
                };
            }
            SubscriptionMode::Pull { interval, .. } => {
                self.state = State::Pulling {
                    id: subscription_id,
                    next_poll_millis: now_millis.saturating_add(duration_millis(interval)),
                    last_poll_millis: now_millis,
                    in_flight: false,
                };
            }
        }
        actions
    }

    /// Records a failed Subscribe (a transport error or an error response) and schedules
    /// another attempt after a back-off.
    pub fn on_subscribe_failed(&mut self, now: SystemTime) -> Vec<Action> {
        self.subscribe_failures = self.subscribe_failures.saturating_add(1);
        let factor = 1u32
            .checked_shl(self.subscribe_failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let delay = RESUBSCRIBE_BASE_DELAY
            .saturating_mul(factor)
            .min(Duration::from_secs(300));
        tracing::warn!(
            failures = self.subscribe_failures,
            delay_ms = duration_millis(delay),
            "Subscribe failed: retrying after a delay"
        );
        self.state = State::Unsubscribed {
            retry_at_millis: millis(now).saturating_add(duration_millis(delay)),
        };
        Vec::new()
    }

    /// Feeds one GetEvents response or one GetStreamingEvents document.
    pub fn on_message<E>(&mut self, message: StreamMessage<E>, now: SystemTime) -> Step<E> {
        let now_millis = millis(now);
        let StreamMessage {
            events,
            watermark,
            status,
            error_code,
            error_subscription_ids,
            more_events,
        } = message;
        if watermark.is_some() {
            self.watermark = watermark;
        }

        let current_id = match &self.state {
            State::Streaming { id, .. } | State::Pulling { id, .. } => id.clone(),
            // A document from a stream the machine already left: its events still go
            // to the caller, since a duplicate is harmless and a loss is not.
            _ => {
                return Step {
                    events,
                    actions: Vec::new(),
                };
            }
        };

        if let Some(code) = error_code {
            let code = code.trim().to_owned();
            let names_us =
                error_subscription_ids.is_empty() || error_subscription_ids.contains(&current_id);
            if names_us && is_subscription_loss(&code) {
                // ConnectionStatus may still be OK here, and the error code wins.
                tracing::warn!(
                    subscription_id = %current_id,
                    code = %code,
                    "subscription lost: subscribing again"
                );
                let mut actions = Vec::new();
                if matches!(self.state, State::Streaming { .. }) {
                    actions.push(Action::CloseStream);
                }
                actions.extend(self.resubscribe(CatchUpCause::SubscriptionError(code)));
                return Step { events, actions };
            }
            tracing::warn!(
                subscription_id = %current_id,
                code = %code,
                "notification request failed: retrying the same subscription"
            );
        }

        let actions = match &mut self.state {
            State::Streaming {
                id,
                last_activity_millis,
            } => {
                *last_activity_millis = now_millis;
                self.reopen_failures = 0;
                if status == Some(ConnectionStatus::Closed) {
                    let id = id.clone();
                    tracing::debug!(subscription_id = %id, "stream closed by the server: reopening");
                    let mut actions = vec![Action::CloseStream];
                    actions.extend(self.reopen(id, CatchUpCause::StreamClosed, now_millis));
                    actions
                } else {
                    Vec::new()
                }
            }
            State::Pulling {
                next_poll_millis,
                last_poll_millis,
                in_flight,
                ..
            } => {
                *in_flight = false;
                *last_poll_millis = now_millis;
                let interval = match self.mode {
                    SubscriptionMode::Pull { interval, .. } => interval,
                    SubscriptionMode::Streaming { .. } => Duration::ZERO,
                };
                *next_poll_millis = if more_events {
                    now_millis
                } else {
                    now_millis.saturating_add(duration_millis(interval))
                };
                Vec::new()
            }
            _ => Vec::new(),
        };
        Step { events, actions }
    }

    /// Records that the GetStreamingEvents response ended or failed before a Closed
    /// status (a dropped connection, a reset, a transport error), or that a GetEvents
    /// call failed in transport.
    pub fn on_stream_ended(&mut self, now: SystemTime) -> Vec<Action> {
        let now_millis = millis(now);
        match &mut self.state {
            State::Streaming { id, .. } => {
                let id = id.clone();
                self.reopen_failures = self.reopen_failures.saturating_add(1);
                let delay = failure_delay(self.reopen_failures);
                let at_millis = now_millis.saturating_add(duration_millis(delay));
                if self.reopen_failures > MAX_REOPEN_FAILURES {
                    tracing::warn!(
                        subscription_id = %id,
                        delay_ms = duration_millis(delay),
                        "stream keeps failing: subscribing again after a delay"
                    );
                    self.watermark = None;
                    self.pending_cause = Some(CatchUpCause::ConnectionDropped);
                    self.state = State::Unsubscribed {
                        retry_at_millis: at_millis,
                    };
                    return Vec::new();
                }
                if delay.is_zero() {
                    tracing::warn!(subscription_id = %id, "stream dropped: reopening");
                    return self.reopen(id, CatchUpCause::ConnectionDropped, now_millis);
                }
                tracing::warn!(
                    subscription_id = %id,
                    delay_ms = duration_millis(delay),
                    "stream failed again: reopening after a delay"
                );
                self.state = State::Reopening { id, at_millis };
                Vec::new()
            }
            State::Pulling {
                in_flight,
                next_poll_millis,
                ..
            } => {
                // The pull subscription lives on the server; poll again after the interval
                // and let the expiry check decide when it is gone.
                *in_flight = false;
                let interval = match self.mode {
                    SubscriptionMode::Pull { interval, .. } => interval,
                    SubscriptionMode::Streaming { .. } => Duration::ZERO,
                };
                *next_poll_millis = now_millis.saturating_add(duration_millis(interval));
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn reopen(&mut self, id: String, cause: CatchUpCause, now_millis: u64) -> Vec<Action> {
        let connection_timeout = match self.mode {
            SubscriptionMode::Streaming {
                connection_timeout, ..
            } => connection_timeout,
            SubscriptionMode::Pull { .. } => ConnectionTimeout::MAX,
        };
        self.state = State::Streaming {
            id: id.clone(),
            last_activity_millis: now_millis,
        };
        vec![
            Action::CatchUp {
                folders: self.folders.clone(),
                cause,
            },
            Action::OpenStream {
                subscription_id: id,
                connection_timeout,
            },
        ]
    }

    fn resubscribe(&mut self, cause: CatchUpCause) -> Vec<Action> {
        self.watermark = None;
        self.pending_cause = Some(cause);
        self.state = State::Subscribing;
        vec![Action::Subscribe(self.folders.clone())]
    }

    fn heartbeat_timeout(&self) -> Duration {
        match self.mode {
            SubscriptionMode::Streaming {
                heartbeat_timeout, ..
            } => heartbeat_timeout,
            SubscriptionMode::Pull { .. } => Duration::MAX,
        }
    }
}

/// Returns the delay before the next attempt after `failures` stream failures in a row.
fn failure_delay(failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 2).unwrap_or(u32::MAX);
    REOPEN_BASE_DELAY
        .saturating_mul(factor)
        .min(Duration::from_secs(300))
}

/// Returns whether `code` means the subscription itself is gone.
pub fn is_subscription_loss(code: &str) -> bool {
    let code = code.trim();
    SUBSCRIPTION_ERRORS.contains(&code)
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(duration_millis)
        .unwrap_or(0)
}

fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// An item named by an event, with the folder it was in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemHint {
    /// The item id (case-sensitive).
    pub item_id: ItemId,
    /// The folder that contains (or contained) the item, when the event names it.
    pub parent_folder_id: Option<FolderId>,
}

/// The work one batch of events calls for, after coalescing per item.
///
/// Events are hints, never state (MS-OXWSNTIF gives no originator and servers repeat
/// and reorder them): one UpdateItem can produce several ModifiedEvents, and events for
/// an item deleted moments later still arrive before its DeletedEvent. The authoritative
/// source is an incremental sync of [`EventHints::folders`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventHints {
    /// Items whose last event in the batch is a creation or a modification.
    pub changed: Vec<ItemHint>,
    /// Items whose last event in the batch is a deletion: never fetch them.
    pub deleted: Vec<ItemHint>,
    /// Moves and copies as (old id, new id): re-key before any further call, because the
    /// server returns ErrorItemNotFound for the old id after a move.
    pub moved: Vec<(ItemId, ItemHint)>,
    /// Every folder an event touched, in first-seen order: sync each from its stored
    /// SyncState.
    pub folders: Vec<FolderId>,
}

/// Coalesces a batch of events per item: the last event for an item id wins, a
/// deletion means no fetch, and a move re-keys the old id instead of creating a
/// second item. Ids are compared exactly, because EWS ids are case-sensitive base64.
pub fn coalesce_events(events: &[Event]) -> EventHints {
    let mut hints = EventHints::default();
    // Index of each item id's last item event, so earlier ones can be skipped.
    let mut last_index = std::collections::HashMap::new();
    for (index, event) in events.iter().enumerate() {
        if let Some(item_id) = &event.item_id {
            last_index.insert(item_id.id.clone(), index);
        }
    }

    for (index, event) in events.iter().enumerate() {
        push_folder(&mut hints.folders, event.parent_folder_id.as_ref());
        push_folder(&mut hints.folders, event.old_parent_folder_id.as_ref());
        if event.item_id.is_none() {
            push_folder(&mut hints.folders, event.folder_id.as_ref());
        }

        let Some(item_id) = &event.item_id else {
            continue;
        };
        let hint = ItemHint {
            item_id: item_id.clone(),
            parent_folder_id: event.parent_folder_id.clone(),
        };
        match event.kind {
            EventKind::Moved | EventKind::Copied => {
                if let Some(old) = &event.old_item_id {
                    hints.moved.push((old.clone(), hint));
                }
                continue;
            }
            _ if last_index.get(&item_id.id) != Some(&index) => continue,
            EventKind::Deleted => hints.deleted.push(hint),
            EventKind::NewMail | EventKind::Created | EventKind::Modified => {
                hints.changed.push(hint);
            }
            _ => {}
        }
    }

    // An item moved away in this batch is gone under its old id.
    let moved_away: Vec<String> = hints.moved.iter().map(|(old, _)| old.id.clone()).collect();
    hints
        .changed
        .retain(|hint| !moved_away.contains(&hint.item_id.id));
    hints
}

fn push_folder(folders: &mut Vec<FolderId>, folder: Option<&FolderId>) {
    if let Some(folder) = folder
        && !folders.iter().any(|known| known.id == folder.id)
    {
        folders.push(folder.clone());
    }
}

/// Returns whether a failed fetch of an item named by an event only means the item
/// is gone or out of reach (ErrorItemNotFound, ErrorAccessDenied). That is no error
/// for the caller: it syncs the parent folder instead.
pub fn is_stale_event_target(error: &MessageError) -> bool {
    matches!(
        error.code,
        ResponseCode::ErrorItemNotFound | ResponseCode::ErrorAccessDenied
    )
}
