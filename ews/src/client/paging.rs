//! Paging loops over [`EwsClient::call`].
//!
//! Indexed paging (FindItem, FindFolder; MS-OXWSSRCH IndexedPageViewType) takes the
//! next offset from the server's `IndexedPagingOffset`, because servers cap the page
//! size (Exchange Online at 1000), and stops only on `IncludesLastItemInRange` true.
//! An offset that does not advance while more items remain is an error, never a
//! quiet end. SyncFolderItems pages until `IncludesLastItemInRange` is true, feeding
//! each page's SyncState into the next request.
//!
//! A throttled page is retried by [`EwsClient::call`] with the same offset or
//! SyncState, so an enumeration resumes where the server stopped it.

use crate::error::EwsError;
use crate::operation::EwsOperation;
use crate::ops::folders::FindFolder;
use crate::ops::sync::{FindItem, SyncChange, SyncFolderItems};
use crate::ops::{IndexedPage, Paging};
use crate::types::{Folder, Item};

use super::{ClientError, EwsClient, MessageOutcomes};

/// One page of an indexed enumeration, as the caller's `take` closure extracts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The paging attributes of the page's RootFolder.
    pub paging: Paging,
    /// The page's entries.
    pub entries: Vec<T>,
}

/// Runs an indexed enumeration from `start_offset` to the last page and returns every
/// entry in order.
///
/// `build` makes the request for an offset; `take` reads a page out of the response
/// (the single response message of FindItem or FindFolder).
///
/// # Errors
///
/// [`EwsError::PagingStalled`] (inside [`ClientError::Ews`]) when the server reports more
/// items but its `IndexedPagingOffset` does not pass the previous offset;
/// otherwise as [`EwsClient::call`], and whatever `take` returns.
pub async fn collect_indexed<O, T, B, F>(
    client: &EwsClient,
    start_offset: u32,
    mut build: B,
    mut take: F,
) -> Result<Vec<T>, ClientError>
where
    O: EwsOperation,
    O::Response: MessageOutcomes,
    B: FnMut(u32) -> O,
    F: FnMut(O::Response) -> Result<Page<T>, EwsError>,
{
    let mut entries = Vec::new();
    let mut offset = start_offset;
    loop {
        let response = client.call(&build(offset)).await?;
        let page = take(response).map_err(|source| ClientError::Ews {
            operation: O::NAME,
            source,
        })?;
        tracing::debug!(
            operation = O::NAME,
            offset,
            entries = page.entries.len(),
            next = ?page.paging.indexed_paging_offset,
            last = page.paging.includes_last_item_in_range,
            "page received"
        );
        entries.extend(page.entries);

        match page.paging.next_offset(O::NAME, offset) {
            Ok(Some(next)) => offset = next,
            Ok(None) => return Ok(entries),
            Err(source) => {
                return Err(ClientError::Ews {
                    operation: O::NAME,
                    source,
                });
            }
        }
    }
}

/// One page of a SyncFolderItems or SyncFolderHierarchy run, as the caller's `take`
/// closure extracts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage<T> {
    /// The SyncState to send next (and to store once the run ends).
    pub sync_state: String,
    /// `IncludesLastItemInRange` (`IncludesLastFolderInRange` for the hierarchy).
    pub includes_last: bool,
    /// The page's changes.
    pub changes: Vec<T>,
}

/// Runs a sync from `sync_state` (empty for a first sync) until the server reports
/// that the last change is included, handing each page to `on_page` as it arrives, and returns
/// the final SyncState.
///
/// `on_page` receives every page before the next request, so the caller can apply the
/// changes and store the page's SyncState; a run cut short by an error resumes from the
/// last stored state.
///
/// # Errors
///
/// As [`EwsClient::call`]; [`EwsError::Unexpected`] inside [`ClientError::Ews`] when
/// the server says more changes remain but returns the same SyncState with no change,
/// which would loop forever.
pub async fn sync_until_last<O, T, B, F, P>(
    client: &EwsClient,
    sync_state: Option<String>,
    mut build: B,
    mut take: F,
    mut on_page: P,
) -> Result<String, ClientError>
where
    O: EwsOperation,
    O::Response: MessageOutcomes,
    B: FnMut(Option<&str>) -> O,
    F: FnMut(O::Response) -> Result<SyncPage<T>, EwsError>,
    P: FnMut(SyncPage<T>),
{
    let mut state = sync_state;
    loop {
        let response = client.call(&build(state.as_deref())).await?;
        let page = take(response).map_err(|source| ClientError::Ews {
            operation: O::NAME,
            source,
        })?;
        let includes_last = page.includes_last;
        let stalled = !includes_last
            && page.changes.is_empty()
            && state.as_deref() == Some(page.sync_state.as_str());
        let next = page.sync_state.clone();
        tracing::debug!(
            operation = O::NAME,
            changes = page.changes.len(),
            last = includes_last,
            "sync page received"
        );
        on_page(page);

        if includes_last {
            return Ok(next);
        }
        if stalled {
            return Err(ClientError::Ews {
                operation: O::NAME,
                source: EwsError::Unexpected {
                    operation: O::NAME,
                    expected: "a new SyncState or changes while IncludesLastItemInRange is false",
                    found: "the same SyncState and no change".to_owned(),
                },
            });
        }
        state = Some(next);
    }
}

impl EwsClient {
    /// Runs FindItem over every page and returns the items in order. The request's
    /// `page` sets the page size and the first offset; without one, pages of 1000 from
    /// offset 0 are requested.
    ///
    /// # Errors
    ///
    /// As [`collect_indexed`].
    pub async fn find_items_all(&self, request: &FindItem) -> Result<Vec<Item>, ClientError> {
        let first = request.page.unwrap_or(IndexedPage {
            max_entries: 1000,
            offset: 0,
        });
        collect_indexed(
            self,
            first.offset,
            |offset| FindItem {
                page: Some(IndexedPage {
                    max_entries: first.max_entries,
                    offset,
                }),
                ..request.clone()
            },
            |response| {
                let page = response.into_single(FindItem::NAME)?;
                Ok(Page {
                    paging: page.paging,
                    entries: page.items,
                })
            },
        )
        .await
    }

    /// Runs FindFolder over every page and returns the folders in order, paging as
    /// [`EwsClient::find_items_all`] does.
    ///
    /// # Errors
    ///
    /// As [`collect_indexed`].
    pub async fn find_folders_all(&self, request: &FindFolder) -> Result<Vec<Folder>, ClientError> {
        let first = request.page.unwrap_or(IndexedPage {
            max_entries: 1000,
            offset: 0,
        });
        collect_indexed(
            self,
            first.offset,
            |offset| FindFolder {
                page: Some(IndexedPage {
                    max_entries: first.max_entries,
                    offset,
                }),
                ..request.clone()
            },
            |response| {
                let page = response.into_single(FindFolder::NAME)?;
                Ok(Page {
                    paging: page.paging,
                    entries: page.folders,
                })
            },
        )
        .await
    }

    /// Runs SyncFolderItems from the request's SyncState until the last change is
    /// included, handing each page to `on_page` before the next request, and returns
    /// the final SyncState.
    ///
    /// # Errors
    ///
    /// As [`sync_until_last`]. `ErrorInvalidSyncStateData` comes back as
    /// [`ClientError::Ews`] whose error returns true from
    /// [`EwsError::is_invalid_sync_state`]: restart the folder from an empty state.
    pub async fn sync_folder_items<P>(
        &self,
        request: &SyncFolderItems,
        on_page: P,
    ) -> Result<String, ClientError>
    where
        P: FnMut(SyncPage<SyncChange>),
    {
        sync_until_last(
            self,
            request.sync_state.clone(),
            |state| SyncFolderItems {
                sync_state: state.map(str::to_owned),
                ..request.clone()
            },
            |response| {
                let page = response.into_single(SyncFolderItems::NAME)?;
                Ok(SyncPage {
                    sync_state: page.sync_state,
                    includes_last: page.includes_last,
                    changes: page.changes,
                })
            },
            on_page,
        )
        .await
    }
}
