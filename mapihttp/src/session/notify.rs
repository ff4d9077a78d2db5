//! Notices from RopNotify and RopPending, and the NotificationWait loop (MS-OXCMAPIHTTP
//! 2.2.4.4, MS-OXCNOTIF 2.2.1.4.1).
//!
//! A notice is a hint: RopNotify carries no originator (no session, client, change
//! number or change key), and servers deliver it to the session that made the change
//! too. Origin is decided from ICS and change keys, never from a notice.

use std::time::Duration;

use super::{Batch, MapiSession, Replay, SessionError};
use crate::ids::ObjectId;
use crate::notify::{Notification, notification_type};

/// The kind of a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoticeKind {
    /// A new message arrived.
    NewMail,
    /// An object was created.
    Created,
    /// An object was deleted.
    Deleted,
    /// An object was modified.
    Modified,
    /// An object was moved.
    Moved,
    /// An object was copied.
    Copied,
    /// A search completed.
    SearchCompleted,
    /// A table changed (re-read it).
    TableModified,
    /// RopPending: more notifications are queued; the session collects them.
    Pending,
    /// Another type (server-specific).
    Other(u16),
}

/// A notification turned into a hint for the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// What happened.
    pub kind: NoticeKind,
    /// The subscription or table handle it arrived on (in this session's handle space).
    pub handle: u32,
    /// Whether the object is a message (else a folder).
    pub is_message: bool,
    /// The folder concerned (for a message, its folder).
    pub folder_id: Option<ObjectId>,
    /// The message concerned.
    pub message_id: Option<ObjectId>,
    /// The previous folder, for moves and copies.
    pub old_folder_id: Option<ObjectId>,
    /// The previous message id, for moves and copies.
    pub old_message_id: Option<ObjectId>,
}

impl Notice {
    pub(crate) fn from_notification(handle: u32, data: &Notification) -> Self {
        let kind = match data.kind() {
            notification_type::NEW_MAIL => NoticeKind::NewMail,
            notification_type::OBJECT_CREATED => NoticeKind::Created,
            notification_type::OBJECT_DELETED => NoticeKind::Deleted,
            notification_type::OBJECT_MODIFIED => NoticeKind::Modified,
            notification_type::OBJECT_MOVED => NoticeKind::Moved,
            notification_type::OBJECT_COPIED => NoticeKind::Copied,
            notification_type::SEARCH_COMPLETED => NoticeKind::SearchCompleted,
            notification_type::TABLE_MODIFIED => NoticeKind::TableModified,
            other => NoticeKind::Other(other),
        };
        let (folder_id, message_id) = match &data.table {
            Some(table) => (table.row_folder_id, table.row_message.map(|(id, _)| id)),
            None => (data.folder_id, data.message_id),
        };
        Self {
            kind,
            handle,
            is_message: data.is_message(),
            folder_id,
            message_id,
            old_folder_id: data.old_folder_id,
            old_message_id: data.old_message_id,
        }
    }

    pub(crate) fn pending(session_index: u16) -> Self {
        Self {
            kind: NoticeKind::Pending,
            handle: u32::from(session_index),
            is_message: false,
            folder_id: None,
            message_id: None,
            old_folder_id: None,
            old_message_id: None,
        }
    }
}

/// The NotificationWait loop on its own task. Dropping it stops the task.
#[derive(Debug)]
pub struct NotificationWaiter {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NotificationWaiter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MapiSession {
    /// Starts the NotificationWait loop, which keeps one request parked beside the
    /// sequenced ones. When the server reports events, an empty Execute collects them as
    /// notices, and a RopPending leads to another collection. A wait held past
    /// `SessionConfig::notification_wait_limit` or dropped by the network is sent again.
    pub fn start_notification_wait(&self) -> NotificationWaiter {
        let session = self.clone();
        let span = tracing::debug_span!(parent: self.span(), "notification_wait");
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move { session.notification_loop().await },
            span,
        ));
        NotificationWaiter { task }
    }

    async fn notification_loop(&self) {
        let mut failures = 0u32;
        let mut receiver = self.notices();
        loop {
            if !self.is_connected_hint() {
                // Connect through an empty batch; it also collects anything queued.
                if let Err(error) = self.collect_notifications().await {
                    tracing::debug!(%error, "could not connect for NotificationWait");
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
            }
            let limit = self.config().notification_wait_limit;
            match tokio::time::timeout(limit, self.notification_wait_once()).await {
                Err(_) => {
                    tracing::debug!("NotificationWait held past the limit: sending it again");
                    failures = 0;
                }
                Ok(Ok(true)) => {
                    failures = 0;
                    // Collect until no RopPending follows.
                    for _ in 0..16 {
                        if let Err(error) = self.collect_notifications().await {
                            tracing::debug!(%error, "collecting notifications failed");
                            break;
                        }
                        let mut pending = false;
                        while let Ok(notice) = receiver.try_recv() {
                            pending |= notice.kind == NoticeKind::Pending;
                        }
                        if !pending {
                            break;
                        }
                    }
                }
                Ok(Ok(false)) => {
                    failures = 0;
                    // A server that responds at once without events is not holding the
                    // request; pace the loop instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(SessionError::Refused { code, .. })) => {
                    tracing::debug!(%code, "NotificationWait rejected: checking the session context");
                    failures += 1;
                    // An Execute runs the reconnect path when the context is gone.
                    if let Err(error) = self.collect_notifications().await {
                        tracing::debug!(%error, "session context check after a rejected NotificationWait failed");
                    }
                    tokio::time::sleep(backoff(failures)).await;
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, "NotificationWait failed: sending it again");
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
    }

    /// Sends an empty Execute, which returns the queued notifications (MS-OXCMAPIHTTP
    /// 3.2.5.4); they are published as notices.
    ///
    /// # Errors
    ///
    /// [`SessionError`] when the Execute fails.
    pub async fn collect_notifications(&self) -> Result<(), SessionError> {
        self.execute("collect notifications", &Batch::new(), Replay::Safe)
            .await
            .map(|_| ())
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(8))).min(Duration::from_secs(30))
}
