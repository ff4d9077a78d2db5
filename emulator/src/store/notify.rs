//! Subscriptions and change notices, modelled on EWS pull and streaming notifications
//! (MS-OXWSNTIF) and MAPI RopRegisterNotification (MS-OXCNOTIF).

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime};

use super::error::StoreError;
use super::ids::{Cn, Fid, Mid};
use super::session::SessionId;

/// The id of a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(pub u64);

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The position of a notice in the store's event sequence. Watermarks grow with every
/// event, store-wide, so a subscription's notices carry increasing watermarks unless a
/// fault reorders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Watermark(pub u64);

/// The kind of a change notice (EWS NotificationEventTypeType).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A message arrived by delivery.
    NewMail,
    /// An item or folder was created.
    Created,
    /// An item or folder was deleted.
    Deleted,
    /// An item or folder was modified.
    Modified,
    /// An item or folder was moved.
    Moved,
    /// An item was copied.
    Copied,
}

impl EventKind {
    fn bit(self) -> u8 {
        match self {
            EventKind::NewMail => 1,
            EventKind::Created => 2,
            EventKind::Deleted => 4,
            EventKind::Modified => 8,
            EventKind::Moved => 16,
            EventKind::Copied => 32,
        }
    }
}

/// A set of event kinds a subscription receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventKinds(u8);

impl EventKinds {
    /// Every kind.
    pub const ALL: EventKinds = EventKinds(63);
    /// No kind.
    pub const NONE: EventKinds = EventKinds(0);

    /// Returns this set with `kind` added.
    pub fn with(self, kind: EventKind) -> Self {
        Self(self.0 | kind.bit())
    }

    /// Returns whether the set contains `kind`.
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & kind.bit() != 0
    }
}

impl FromIterator<EventKind> for EventKinds {
    fn from_iter<T: IntoIterator<Item = EventKind>>(iter: T) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

/// The folders a subscription covers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionScope {
    /// Every folder of the mailbox (EWS `SubscribeToAllFolders`).
    Store,
    /// The listed folders: a notice matches when its parent folder, or for a move its
    /// old parent, is one of them. Subfolders are not included, as in EWS.
    Folders(BTreeSet<Fid>),
}

/// The object a notice is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectId {
    /// An item.
    Item(Mid),
    /// A folder.
    Folder(Fid),
}

/// A change notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The notice's place in the event sequence.
    pub watermark: Watermark,
    /// The kind.
    pub kind: EventKind,
    /// The object (after a move or copy, its new id).
    pub object: ObjectId,
    /// The folder that contains the object (after a move or copy, the target).
    pub parent: Fid,
    /// For a move or copy, the object's old id.
    pub old_object: Option<ObjectId>,
    /// For a move or copy, the old parent folder.
    pub old_parent: Option<Fid>,
    /// The session that made the change. Front ends decide whether to show it; EWS
    /// notifications carry no originator.
    pub session: SessionId,
    /// The change number of the change, if it had one.
    pub cn: Option<Cn>,
    /// When the change was made.
    pub time: SystemTime,
}

/// The notices a poll returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeBatch {
    /// Notices in delivery order.
    pub notices: Vec<Notice>,
    /// Whether more notices are ready than `notices` holds.
    pub more_available: bool,
    /// The watermark a client resumes from: the last delivered notice's, or the
    /// subscription's last one when nothing was delivered.
    pub watermark: Watermark,
}

#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub(crate) notice: Notice,
    /// Clock time in milliseconds from which the notice may be delivered.
    pub(crate) visible_at: u64,
    pub(crate) delivered: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Subscription {
    pub(crate) session: SessionId,
    pub(crate) scope: SubscriptionScope,
    pub(crate) kinds: EventKinds,
    pub(crate) queue: VecDeque<Pending>,
    pub(crate) expired: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) last_activity_millis: u64,
    pub(crate) last_watermark: Watermark,
    /// A delay fault for the next notice.
    pub(crate) delay_next: Option<Duration>,
    /// A reorder fault: hold the next notice until the one after it.
    pub(crate) hold_next: bool,
    pub(crate) held: Option<Notice>,
}

impl Subscription {
    pub(crate) fn matches(&self, notice: &Notice) -> bool {
        if !self.kinds.contains(notice.kind) {
            return false;
        }
        match &self.scope {
            SubscriptionScope::Store => true,
            SubscriptionScope::Folders(folders) => {
                folders.contains(&notice.parent)
                    || notice.old_parent.is_some_and(|old| folders.contains(&old))
            }
        }
    }
}

impl super::Store {
    /// Subscribes `session` to notices of `kinds` in `scope`. A subscription with a
    /// `timeout` expires when it is not polled for that long, as an EWS pull subscription
    /// does. Without one it lives until unsubscribed or expired by fault injection.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnknownSession`] or [`StoreError::SessionExpired`].
    pub fn subscribe(
        &mut self,
        session: SessionId,
        scope: SubscriptionScope,
        kinds: EventKinds,
        timeout: Option<Duration>,
    ) -> Result<SubscriptionId, StoreError> {
        self.check_session("subscribe", session)?;
        let id = SubscriptionId(self.next_subscription);
        self.next_subscription += 1;
        let now = self.clock.now_millis();
        self.subscriptions.insert(
            id,
            Subscription {
                session,
                scope,
                kinds,
                queue: VecDeque::new(),
                expired: false,
                timeout,
                last_activity_millis: now,
                last_watermark: Watermark(self.last_watermark),
                delay_next: None,
                hold_next: false,
                held: None,
            },
        );
        Ok(id)
    }

    /// Ends a subscription. Does nothing when it does not exist.
    pub fn unsubscribe(&mut self, subscription: SubscriptionId) {
        self.subscriptions.remove(&subscription);
    }

    /// Returns the session that made a subscription.
    pub fn subscription_session(&self, subscription: SubscriptionId) -> Option<SessionId> {
        self.subscriptions.get(&subscription).map(|sub| sub.session)
    }

    /// Returns up to `max` notices of a subscription that are ready for delivery, in
    /// queue order. First it drops the delivered notices up to `acknowledged`, the
    /// watermark the client last received (`None` acknowledges nothing). Returned
    /// notices stay queued until acknowledged, so a client that lost a response gets
    /// them again, as with EWS GetEvents.
    ///
    /// # Errors
    ///
    /// [`StoreError::SubscriptionNotFound`], or [`StoreError::SubscriptionExpired`]
    /// when the store expired it or its timeout passed since the last poll.
    pub fn poll_notices(
        &mut self,
        subscription: SubscriptionId,
        acknowledged: Option<Watermark>,
        max: usize,
    ) -> Result<NoticeBatch, StoreError> {
        const OPERATION: &str = "poll notices";
        let now = self.clock.now_millis();
        let sub =
            self.subscriptions
                .get_mut(&subscription)
                .ok_or(StoreError::SubscriptionNotFound {
                    operation: OPERATION,
                    subscription,
                })?;
        let timed_out = sub.timeout.is_some_and(|timeout| {
            let limit = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            now.saturating_sub(sub.last_activity_millis) > limit
        });
        if sub.expired || timed_out {
            sub.expired = true;
            return Err(StoreError::SubscriptionExpired {
                operation: OPERATION,
                subscription,
            });
        }
        sub.last_activity_millis = now;

        if let Some(acknowledged) = acknowledged {
            sub.queue
                .retain(|pending| !(pending.delivered && pending.notice.watermark <= acknowledged));
        }

        let mut notices = Vec::new();
        let mut more_available = false;
        for pending in sub.queue.iter_mut() {
            if pending.visible_at > now {
                continue;
            }
            if notices.len() == max {
                more_available = true;
                break;
            }
            pending.delivered = true;
            notices.push(pending.notice.clone());
        }

        let watermark = notices
            .last()
            .map_or(sub.last_watermark, |notice| notice.watermark);
        Ok(NoticeBatch {
            notices,
            more_available,
            watermark,
        })
    }

    /// Returns the clock time in milliseconds at which the next delayed notice of a
    /// subscription becomes ready, so a driver can schedule its next poll.
    pub fn next_notice_due(&self, subscription: SubscriptionId) -> Option<u64> {
        let sub = self.subscriptions.get(&subscription)?;
        sub.queue
            .iter()
            .filter(|pending| !pending.delivered)
            .map(|pending| pending.visible_at)
            .min()
    }

    /// Queues a notice for every matching live subscription.
    // NOTE: Exchange also sends a Modified notice for a folder whose item counts change;
    // this store sends notices for the changed object only.
    pub(super) fn emit(
        &mut self,
        kind: EventKind,
        object: ObjectId,
        parent: Fid,
        old: Option<(ObjectId, Fid)>,
        session: SessionId,
        cn: Option<Cn>,
    ) {
        self.last_watermark += 1;
        let notice = Notice {
            watermark: Watermark(self.last_watermark),
            kind,
            object,
            parent,
            old_object: old.map(|(object, _)| object),
            old_parent: old.map(|(_, parent)| parent),
            session,
            cn,
            time: self.clock.now(),
        };
        let now = self.clock.now_millis();

        for sub in self.subscriptions.values_mut() {
            if sub.expired || !sub.matches(&notice) {
                continue;
            }
            sub.last_watermark = notice.watermark;

            if sub.hold_next && sub.held.is_none() {
                sub.hold_next = false;
                sub.held = Some(notice.clone());
                continue;
            }

            let delay = sub
                .delay_next
                .take()
                .map_or(0, |by| u64::try_from(by.as_millis()).unwrap_or(u64::MAX));
            sub.queue.push_back(Pending {
                notice: notice.clone(),
                visible_at: now.saturating_add(delay),
                delivered: false,
            });
            if let Some(held) = sub.held.take() {
                sub.queue.push_back(Pending {
                    notice: held,
                    visible_at: now,
                    delivered: false,
                });
            }
        }
    }
}
