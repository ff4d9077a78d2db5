//! Fault injection: what tests and the simulation use to make the store misbehave the
//! way Exchange does.

use std::time::Duration;

use super::model::{ImportStamp, WriteResult};
use super::notify::{EventKind, ObjectId};
use super::{Cn, Fid, Mid, SessionId, Store, StoreError, SubscriptionId};

/// A fault the store cannot act out itself and a front end must: the store only records
/// it, and the front end takes it with [`Store::take_front_end_fault`] before serving a
/// request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrontEndFault {
    /// Close the client's connection without a response.
    DropConnection,
    /// Reject the request as "server busy" and ask the client to wait `back_off`
    /// (EWS ErrorServerBusy with BackOffMilliseconds, or the MAPI equivalent).
    ServerBusy {
        /// The wait the response requests.
        back_off: Duration,
    },
}

impl Store {
    /// Queues a front-end fault for the next request of `session`, or of any session
    /// when `session` is `None`. Faults are taken in the order they were injected.
    pub fn inject_front_end_fault(&mut self, session: Option<SessionId>, fault: FrontEndFault) {
        tracing::debug!(?session, ?fault, "front-end fault injected");
        self.front_end_faults.push((session, fault));
    }

    /// Takes the oldest queued front-end fault that applies to `session`, if any.
    pub fn take_front_end_fault(&mut self, session: SessionId) -> Option<FrontEndFault> {
        let position = self
            .front_end_faults
            .iter()
            .position(|(target, _)| target.is_none_or(|target| target == session))?;
        Some(self.front_end_faults.remove(position).1)
    }

    /// Expires a session: its later operations fail with
    /// [`StoreError::SessionExpired`]. Its subscriptions are not affected.
    pub fn expire_session(&mut self, session: SessionId) {
        if let Some(info) = self.sessions.get_mut(&session)
            && session != SessionId::SYSTEM
        {
            info.expired = true;
        }
    }

    /// Expires a subscription: its next poll fails with
    /// [`StoreError::SubscriptionExpired`] and it receives no more notices.
    pub fn expire_subscription(&mut self, subscription: SubscriptionId) {
        if let Some(sub) = self.subscriptions.get_mut(&subscription) {
            sub.expired = true;
            sub.queue.clear();
        }
    }

    /// Delays the next notice queued for a subscription by `by`; later notices that are
    /// not delayed are delivered before it.
    pub fn delay_next_notice(&mut self, subscription: SubscriptionId, by: Duration) {
        if let Some(sub) = self.subscriptions.get_mut(&subscription) {
            sub.delay_next = Some(by);
        }
    }

    /// Swaps the next two notices queued for a subscription, so they arrive out of
    /// watermark order. The first stays undelivered until the second one is queued.
    pub fn reorder_next_notices(&mut self, subscription: SubscriptionId) {
        if let Some(sub) = self.subscriptions.get_mut(&subscription) {
            sub.hold_next = true;
        }
    }

    /// Invalidates every sync state (contents and hierarchy) of folder `fid` made before
    /// now: a sync from such a state fails with [`StoreError::InvalidSyncState`], and
    /// only a sync from an empty state succeeds. Returns the change number reserved as
    /// the invalidation marker.
    ///
    /// # Errors
    ///
    /// [`StoreError::CounterExhausted`].
    pub fn invalidate_sync_states(&mut self, fid: Fid) -> Result<Cn, StoreError> {
        tracing::debug!(%fid, "sync states invalidated");
        // The marker is a change number no object carries, so a state that contains
        // it was made after this call, and marking it seen hides no change.
        let marker = Cn(self.next_globcnt("invalidate sync states")?);
        self.sync_invalidations.insert(fid, marker);
        Ok(marker)
    }

    /// Rewrites an item's change key in the background, as Exchange Online is reported to
    /// do without any client action: a new change number, change key and PCL made by
    /// [`SessionId::SYSTEM`], with the same properties. Syncs report the item as
    /// modified and subscriptions receive a modified notice.
    ///
    /// # Errors
    ///
    /// [`StoreError::ItemNotFound`].
    pub fn rewrite_change_key(&mut self, mid: Mid) -> Result<WriteResult<Mid>, StoreError> {
        const OPERATION: &str = "rewrite change key";
        let item = self.items.get(&mid).ok_or(StoreError::ItemNotFound {
            operation: OPERATION,
            mid,
        })?;
        let old_stamp = item.stamp.clone();
        let folder = item.folder;

        let stamp = self.new_stamp(
            OPERATION,
            SessionId::SYSTEM,
            Some(&old_stamp),
            &ImportStamp::default(),
        )?;
        let result = WriteResult {
            id: mid,
            cn: stamp.cn,
            change_key: stamp.change_key.clone(),
        };
        if let Some(item) = self.items.get_mut(&mid) {
            item.stamp = stamp;
        }

        self.emit(
            EventKind::Modified,
            ObjectId::Item(mid),
            folder,
            None,
            SessionId::SYSTEM,
            Some(result.cn),
        );
        Ok(result)
    }
}
