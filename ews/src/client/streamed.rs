//! SyncFolderItems, FindItem and GetItem with each change or item handed to the caller
//! as soon as its bytes have arrived, so the client keeps about one item and one chunk
//! of the body at a time instead of the whole body (see [`crate::ops::framer`]).
//!
//! Throttling, faults, error messages and the connection rules work as in
//! [`EwsClient::call`], because the body without its list elements is decoded by the
//! same code. A throttled response carries no list elements, so a retry never hands out
//! an item twice within one call.

use futures_util::StreamExt as _;

use super::transport::Reply;
use super::{ClientError, EwsClient, MessageOutcomes, Outcome};
use crate::error::EwsError;
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
    /// The changes of a call that fails belong to no SyncState the caller has: sync
    /// again from the previous state, which delivers them again.
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
        self.call_streamed(op, ListKind::SyncChanges, &mut on_fragment)
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
        self.call_streamed(op, ListKind::FindItems, &mut on_fragment)
            .await
    }

    /// Sends GetItem and hands each item to `on_item`, with the index of its response
    /// message (the position of its id in the request), as soon as its bytes have
    /// arrived (MS-OXWSCORE 3.1.4.4). Returns the per-id results with empty item lists
    /// for the ids that succeeded.
    ///
    /// Unlike [`EwsClient::call_batch`], a partly throttled batch is not re-sent: the
    /// throttled ids keep their error and the mailbox pauses for later requests.
    ///
    /// # Errors
    ///
    /// As [`EwsClient::sync_folder_items_streamed`].
    pub async fn get_item_streamed<F>(
        &self,
        op: &GetItem,
        mut on_item: F,
    ) -> Result<Response<Vec<Item>>, ClientError>
    where
        F: FnMut(usize, Item) + Send,
    {
        let mut on_fragment = |fragment: &Fragment| {
            if let Some(item) = fragment.parse_item()? {
                on_item(fragment.message_index, item);
            }
            Ok(())
        };
        self.call_streamed(op, ListKind::GetItems, &mut on_fragment)
            .await
    }

    /// Runs `op` as [`EwsClient::call`] does, with the body's list elements of `kind`
    /// going to `on_fragment` as they arrive.
    async fn call_streamed<O>(
        &self,
        op: &O,
        kind: ListKind,
        on_fragment: &mut (dyn FnMut(&Fragment) -> Result<(), EwsError> + Send),
    ) -> Result<O::Response, ClientError>
    where
        O: EwsOperation,
        O::Response: MessageOutcomes,
    {
        let body = self.encode(op)?;
        let mut budget = RetryBudget::default();
        loop {
            let mut framing = Framing {
                kind,
                on_fragment: &mut *on_fragment,
            };
            match self.exchange::<O>(&body, true, Some(&mut framing)).await? {
                Outcome::Done(response) => return Ok(response),
                Outcome::Throttled(signal) => {
                    self.back_off(O::NAME, signal, &mut budget).await?;
                }
            }
        }
    }
}
