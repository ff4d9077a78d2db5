#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Paging loops against a scripted server: indexed paging driven by the server's
//! offset, a throttled page resumed in place, a stalled offset, and SyncFolderItems.

mod client_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use client_support::{Canned, ClockSleeper, MockServer, case, envelope};
use exmux_core::auth::Credentials;
use exmux_core::{ManualClock, Secret};
use exmux_ews::EwsError;
use exmux_ews::client::{ClientError, EwsClient};
use exmux_ews::ops::sync::{FindItem, SyncFolderItems};
use exmux_ews::ops::{IndexedPage, Shape};
use exmux_ews::throttle::BackoffPolicy;
use exmux_ews::types::{BaseShape, DistinguishedFolder, FolderRef, Traversal};

fn client(server: &MockServer) -> (EwsClient, ClockSleeper) {
    let clock = ManualClock::default();
    let sleeper = ClockSleeper::new(clock.clone());
    let client = EwsClient::builder(
        server.url(),
        "user1@example.test",
        Credentials::Basic {
            username: "user1@example.test".into(),
            password: Secret::new("pw"),
        },
    )
    .clock(Arc::new(clock))
    .sleeper(Arc::new(sleeper.clone()))
    .backoff_policy(BackoffPolicy {
        jitter: 0.0,
        ..BackoffPolicy::default()
    })
    .build()
    .unwrap();
    (client, sleeper)
}

/// Returns the three FindItem responses of the paging case, as envelopes.
fn paging_pages() -> Option<Vec<String>> {
    let text = case("C07-paging-indexed-offset.txt")?;
    let mut pages = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("<m:FindItemResponse>") {
        let end = rest.find("</m:FindItemResponse>").unwrap() + "</m:FindItemResponse>".len();
        pages.push(envelope(&rest[start..end]));
        rest = &rest[end..];
    }
    assert_eq!(pages.len(), 3);
    Some(pages)
}

fn find_inbox() -> FindItem {
    FindItem {
        traversal: Traversal::Shallow,
        shape: Shape::base(BaseShape::IdOnly),
        page: Some(IndexedPage {
            max_entries: 5,
            offset: 0,
        }),
        parents: vec![FolderRef::distinguished(DistinguishedFolder::Inbox)],
    }
}

fn offsets(server: &MockServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|seen| {
            let at = seen.body.find("Offset=\"").unwrap() + "Offset=\"".len();
            let end = seen.body[at..].find('"').unwrap();
            seen.body[at..at + end].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn offset_comes_from_server() {
    let Some(pages) = paging_pages() else { return };
    let server = MockServer::with_queue(
        pages
            .into_iter()
            .map(|page| Canned::xml(200, page))
            .collect(),
    )
    .await;
    let (client, _) = client(&server);
    let items = client.find_items_all(&find_inbox()).await.unwrap();

    let ids: HashSet<_> = items
        .iter()
        .map(|item| item.item_id.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(items.len(), 12);
    assert_eq!(ids.len(), 12);
    assert_eq!(offsets(&server), vec!["0", "5", "10"]);
}

#[tokio::test]
async fn throttled_page_resumes_in_place() {
    let (Some(pages), Some(fault)) = (paging_pages(), case("C16-serverbusy-soapfault-http500.xml"))
    else {
        return;
    };
    let fault = fault[fault.find("<s:Envelope").unwrap()..].to_owned();
    let server = MockServer::with_queue(vec![
        Canned::xml(200, pages[0].clone()),
        Canned::xml(500, fault),
        Canned::xml(200, pages[1].clone()),
        Canned::xml(200, pages[2].clone()),
    ])
    .await;
    let (client, sleeper) = client(&server);
    let items = client.find_items_all(&find_inbox()).await.unwrap();
    assert_eq!(items.len(), 12);
    // The throttled page was requested again with the same offset, after the hint.
    assert_eq!(offsets(&server), vec!["0", "5", "5", "10"]);
    assert_eq!(sleeper.total(), Duration::from_millis(297_418));
}

#[tokio::test]
async fn stalled_offset_is_an_error() {
    let Some(pages) = paging_pages() else { return };
    let server = MockServer::with_queue(vec![
        Canned::xml(200, pages[0].clone()),
        // The server returns the first page again for the second request: offset 5
        // does not advance past 5 while more items remain.
        Canned::xml(200, pages[0].clone()),
    ])
    .await;
    let (client, _) = client(&server);
    let error = client.find_items_all(&find_inbox()).await.unwrap_err();
    let ClientError::Ews { source, .. } = &error else {
        panic!("expected an EWS error, got {error:?}");
    };
    assert!(
        matches!(
            source,
            EwsError::PagingStalled {
                operation: "FindItem",
                offset: 5
            }
        ),
        "{source:?}"
    );
    assert_eq!(server.requests().len(), 2);
}

fn sync_page(state: &str, last: bool, ids: &[&str]) -> String {
    let creates: String = ids
        .iter()
        .map(|id| {
            format!(r#"<t:Create><t:Message><t:ItemId Id="{id}" ChangeKey="CQAAAA=="/></t:Message></t:Create>"#)
        })
        .collect();
    envelope(&format!(
        r#"<m:SyncFolderItemsResponse><m:ResponseMessages><m:SyncFolderItemsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SyncState>{state}</m:SyncState><m:IncludesLastItemInRange>{last}</m:IncludesLastItemInRange><m:Changes>{creates}</m:Changes></m:SyncFolderItemsResponseMessage></m:ResponseMessages></m:SyncFolderItemsResponse>"#
    ))
}

fn sync_inbox(state: Option<&str>) -> SyncFolderItems {
    SyncFolderItems {
        shape: Shape::base(BaseShape::IdOnly),
        folder: FolderRef::distinguished(DistinguishedFolder::Inbox),
        sync_state: state.map(str::to_owned),
        ignore: Vec::new(),
        max_changes: 2,
    }
}

#[tokio::test]
async fn sync_pages_until_last() {
    let server = MockServer::with_queue(vec![
        Canned::xml(200, sync_page("state-1", false, &["AAMkAQ==", "AAMkAg=="])),
        Canned::xml(200, sync_page("state-2", true, &["AAMkAw=="])),
    ])
    .await;
    let (client, _) = client(&server);
    let mut pages = Vec::new();
    let state = client
        .sync_folder_items(&sync_inbox(None), |page| {
            pages.push((page.sync_state.clone(), page.changes.len()));
        })
        .await
        .unwrap();
    assert_eq!(state, "state-2");
    assert_eq!(
        pages,
        vec![("state-1".to_owned(), 2), ("state-2".to_owned(), 1)]
    );
    let requests = server.requests();
    assert!(!requests[0].body.contains("SyncState"));
    assert!(
        requests[1]
            .body
            .contains("<m:SyncState>state-1</m:SyncState>")
    );
}

#[tokio::test]
async fn invalid_sync_state_reported() {
    let Some(body) = case("C10-invalid-syncstate.xml") else {
        return;
    };
    let body = body[body.find("<s:Envelope").unwrap()..].to_owned();
    let server = MockServer::with_queue(vec![Canned::xml(200, body)]).await;
    let (client, _) = client(&server);
    let error = client
        .sync_folder_items(&sync_inbox(Some("corrupt")), |_| {})
        .await
        .unwrap_err();
    assert!(error.ews().unwrap().is_invalid_sync_state(), "{error:?}");
    assert!(!error.is_retryable());
}
