//! SyncFolderItems, FindItem and GetItem with each change or item handed to the caller
//! as soon as its bytes have arrived, so the client keeps about one item and one chunk
//! of the body at a time instead of the whole body (see [`crate::ops::framer`]).
//!
//! Throttling, faults, error messages and the connection rules work as in
//! [`EwsClient::call`], because the body without its list elements is decoded by the
//! same code. A throttled response carries no list elements, so a retry never hands out
//! an item twice within one call.
//!
//! The callback runs before the rest of the body has arrived, so what it receives is
//! provisional: a body that breaks off or fails to parse later makes the call return an
//! error, and an error message makes the call return no page. A caller commits the
//! returned SyncState (or paging offset) only from an `Ok` response with a successful
//! message, so each change it received is either covered by that state or delivered
//! again by the next call from the previous state.

use futures_util::StreamExt as _;

use super::transport::Reply;
use super::{ClientError, EwsClient, MessageOutcomes, Outcome};
use crate::error::{EwsError, MessageError};
use crate::operation::{EwsOperation, Response};
use crate::ops::framer::{Fragment, Framer, ListKind};
use crate::ops::items::GetItem;
use crate::ops::sync::{FindItem, FindItemPage, ItemSync, SyncChange, SyncFolderItems};
use crate::throttle::RetryBudget;
use crate::types::Item;

/// The list to cut out of a response body and the callback that takes each element.
pub(super) struct Framing<'f> {
    kind: ListKind,
    on_fragment: &'f mut (dyn FnMut(&Fragment) -> Result<(), EwsError> + Send),
}

impl Framing<'_> {
    /// Reads the body chunk by chunk, passes each complete list element to the callback,
    /// and returns the body without its list elements.
    pub(super) async fn read(
        &mut self,
        reply: &mut Reply,
        operation: &'static str,
        limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let mut framer = Framer::new(self.kind);
        let mut received = 0usize;
        while let Some(chunk) = reply.body.next().await {
            let chunk = chunk.map_err(|reason| ClientError::Transport { operation, reason })?;
            received = received.saturating_add(chunk.len());
            if received > limit {
                return Err(ClientError::BodyTooLarge { operation, limit });
            }

            framer.push(&chunk);
            while let Some(fragment) = framer.next_fragment() {
                (self.on_fragment)(&fragment)
                    .map_err(|source| ClientError::Ews { operation, source })?;
            }
        }
        tracing::trace!(
            operation,
            received,
            held = framer.high_water(),
            "read the response body in chunks"
        );
        Ok(framer.finish())
    }
}

impl EwsClient {
    /// Sends SyncFolderItems and hands each change to `on_change` in document order as
    /// soon as its bytes have arrived (MS-OXWSSYNC 3.1.4.2). Returns the response with
    /// the page's SyncState and IncludesLastItemInRange and an empty `changes` list.
    ///
    /// The new SyncState is returned only after the whole body has arrived and parsed,
    /// and only in a message whose ResponseClass is not Error. The changes handed out by
    /// a call that returns `Err`, or an error message, belong to no SyncState the caller
    /// has: store the state only from an `Ok` page, and after anything else sync again
    /// from the previous state, which delivers those changes again.
    ///
    /// # Errors
    ///
    /// As [`EwsClient::call`], and [`ClientError::Ews`] with
    /// [`EwsError::MalformedXml`] for a change that is not well-formed.
    pub async fn sync_folder_items_streamed<F>(
        &self,
        op: &SyncFolderItems,
        mut on_change: F,
    ) -> Result<Response<ItemSync>, ClientError>
    where
        F: FnMut(SyncChange) + Send,
    {
        let mut on_fragment = |fragment: &Fragment| {
            if let Some(change) = fragment.parse_change()? {
                on_change(change);
            }
            Ok(())
        };
        self.call_streamed(op, ListKind::SyncChanges, &mut on_fragment, true)
            .await
    }

    /// Sends FindItem and hands each item to `on_item`, with the index of its response
    /// message (one per parent folder), as soon as its bytes have arrived (MS-OXWSSRCH
    /// 3.1.4.2). Returns the response with the paging values and empty `items` lists.
    ///
    /// # Errors
    ///
    /// As [`EwsClient::sync_folder_items_streamed`].
    pub async fn find_item_streamed<F>(
        &self,
        op: &FindItem,
        mut on_item: F,
    ) -> Result<Response<FindItemPage>, ClientError>
    where
        F: FnMut(usize, Item) + Send,
    {
        let mut on_fragment = |fragment: &Fragment| {
            if let Some(item) = fragment.parse_item()? {
                on_item(fragment.message_index, item);
            }
            Ok(())
        };
        self.call_streamed(op, ListKind::FindItems, &mut on_fragment, true)
            .await
    }

    /// Sends GetItem and hands each item to `on_item`, with the index of its response
    /// message (the position of its id in `op.item_ids`), as soon as its bytes have
    /// arrived (MS-OXWSCORE 3.1.4.4). Returns the per-id results in the order of
    /// `op.item_ids`, with empty item lists for the ids that succeeded.
    ///
    /// As [`EwsClient::call_batch`] does, ids whose message was throttling (such as
    /// ErrorServerBusy inside an HTTP 200 response) are sent again after the back-off.
    /// The ids that already have a result are not sent again, but ids the server sent
    /// no message for are. A throttled message carries no item, so no item is handed out
    /// twice.
    ///
    /// # Errors
    ///
    /// As [`EwsClient::sync_folder_items_streamed`], and
    /// [`ClientError::Throttled`] once the throttling waits exceed
    /// the back-off policy's cap.
    pub async fn get_item_streamed<F>(
        &self,
        op: &GetItem,
        mut on_item: F,
    ) -> Result<Response<Vec<Item>>, ClientError>
    where
        F: FnMut(usize, Item) + Send,
    {
        if op.item_ids.is_empty() {
            // Nothing to re-send: the request writer reports the empty list.
            let mut on_fragment = |_: &Fragment| Ok(());
            return self
                .call_streamed(op, ListKind::GetItems, &mut on_fragment, false)
                .await;
        }
        let mut results: Vec<Option<Result<Vec<Item>, MessageError>>> =
            op.item_ids.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..op.item_ids.len()).collect();
        let mut budget = RetryBudget::default();
        let mut server_version = None;

        while !pending.is_empty() {
            let round = GetItem {
                shape: op.shape.clone(),
                item_ids: pending
                    .iter()
                    .filter_map(|index| op.item_ids.get(*index).cloned())
                    .collect(),
            };
            // Message `i` of this round is the response for the id at `pending[i]`.
            let mut on_fragment = |fragment: &Fragment| {
                if let Some(item) = fragment.parse_item()? {
                    let index = pending.get(fragment.message_index).copied();
                    on_item(index.unwrap_or(fragment.message_index), item);
                }
                Ok(())
            };
            let response = self
                .call_streamed_with(
                    &round,
                    ListKind::GetItems,
                    &mut on_fragment,
                    false,
                    &mut budget,
                )
                .await?;
            server_version = response.server_version.or(server_version);

            let signal;
            (pending, signal) = super::settle_batch(pending, response.messages, &mut results);
            if pending.is_empty() {
                break;
            }

            tracing::debug!(
                operation = GetItem::NAME,
                requeued = pending.len(),
                "re-sending the throttled ids of a streamed GetItem"
            );
            self.back_off(GetItem::NAME, signal, &mut budget).await?;
        }

        Ok(Response {
            server_version,
            messages: results.into_iter().flatten().collect(),
        })
    }

    /// Runs `op` as [`EwsClient::call`] does, with the body's list elements of `kind`
    /// going to `on_fragment` as they arrive.
    /// `pause_partial` as in `exchange`: whether a partly throttled response pauses the
    /// mailbox for later requests.
    async fn call_streamed<O>(
        &self,
        op: &O,
        kind: ListKind,
        on_fragment: &mut (dyn FnMut(&Fragment) -> Result<(), EwsError> + Send),
        pause_partial: bool,
    ) -> Result<O::Response, ClientError>
    where
        O: EwsOperation,
        O::Response: MessageOutcomes,
    {
        let mut budget = RetryBudget::default();
        self.call_streamed_with(op, kind, on_fragment, pause_partial, &mut budget)
            .await
    }

    /// As [`EwsClient::call_streamed`], charging the throttling waits to `budget`.
    async fn call_streamed_with<O>(
        &self,
        op: &O,
        kind: ListKind,
        on_fragment: &mut (dyn FnMut(&Fragment) -> Result<(), EwsError> + Send),
        pause_partial: bool,
        budget: &mut RetryBudget,
    ) -> Result<O::Response, ClientError>
    where
        O: EwsOperation,
        O::Response: MessageOutcomes,
    {
        let body = self.encode(op)?;
        loop {
            let mut framing = Framing {
                kind,
                on_fragment: &mut *on_fragment,
            };
            match self
                .exchange::<O>(&body, pause_partial, Some(&mut framing))
                .await?
            {
                Outcome::Done(response) => return Ok(response),
                Outcome::Throttled(signal) => {
                    self.back_off(O::NAME, signal, budget).await?;
                }
            }
        }
    }
}
