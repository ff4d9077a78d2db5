#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `*_streamed` calls against a scripted server on 127.0.0.1: a SyncFolderItems body
//! that fails after some changes were handed out returns no SyncState, and a streamed
//! GetItem sends the ids of throttled messages again, and only those.

mod client_support;

use std::sync::Arc;
use std::time::Duration;

use client_support::{Canned, ClockSleeper, MockServer, case, envelope};
use exmux_core::auth::Credentials;
use exmux_core::{ManualClock, Secret};
use exmux_ews::client::{ClientError, EwsClient};
use exmux_ews::ops::Shape;
use exmux_ews::ops::items::GetItem;
use exmux_ews::ops::sync::{SyncChange, SyncFolderItems};
use exmux_ews::sample;
use exmux_ews::throttle::BackoffPolicy;
use exmux_ews::types::{BaseShape, DistinguishedFolder, FolderRef, ItemId};

fn client(server: &MockServer) -> (EwsClient, ClockSleeper) {
    let clock = ManualClock::default();
    let sleeper = ClockSleeper::new(clock.clone());
    let client = EwsClient::builder(
        server.url(),
        "user1@example.test",
        Credentials::Basic {
            username: "user1@example.test".into(),
            password: Secret::new("c0rrect-h0rse-b4ttery"),
        },
    )
    .clock(Arc::new(clock))
    .sleeper(Arc::new(sleeper.clone()))
    .backoff_policy(BackoffPolicy {
        jitter: 0.0,
        ..BackoffPolicy::default()
    })
    .timeout(Duration::from_secs(10))
    .build()
    .unwrap();
    (client, sleeper)
}

fn sync_inbox() -> SyncFolderItems {
    SyncFolderItems {
        shape: Shape::base(BaseShape::Default),
        folder: FolderRef::distinguished(DistinguishedFolder::Inbox),
        sync_state: Some("H4sIAAAAAAAEAO29B2AcSZYlJi9tynt".into()),
        ignore: Vec::new(),
        max_changes: 512,
    }
}

/// Runs a streamed SyncFolderItems against a server that sends `body` with HTTP 200 in
/// 1 KiB chunks, and returns the call's result and the changes handed out.
async fn sync_streamed(
    body: Vec<u8>,
) -> (
    Result<exmux_ews::operation::Response<exmux_ews::ops::sync::ItemSync>, ClientError>,
    Vec<SyncChange>,
) {
    let mut canned = Canned::xml(200, bytes::Bytes::new());
    canned.chunks = body
        .chunks(1024)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let server = MockServer::with_queue(vec![canned]).await;
    let (client, _) = client(&server);
    let mut changes = Vec::new();
    let result = client
        .sync_folder_items_streamed(&sync_inbox(), |change| changes.push(change))
        .await;
    (result, changes)
}

#[tokio::test]
async fn sync_streamed_truncated_body_is_err() {
    let whole = sample::sync_folder_items_response(8).unwrap();
    let cut = whole[..whole.len() * 3 / 4].to_vec();

    let (result, changes) = sync_streamed(cut).await;

    assert!(
        changes.len() >= 4,
        "changes before the cut are handed out: {}",
        changes.len()
    );
    assert!(changes.len() < 8, "the cut change is not handed out");
    let error = result.expect_err("a body cut short must not give a page");
    assert!(
        matches!(error, ClientError::Ews { .. }),
        "expected an EWS parse error, got {error:?}"
    );
}

#[tokio::test]
async fn sync_streamed_whole_body_gives_state() {
    let (result, changes) = sync_streamed(sample::sync_folder_items_response(8).unwrap()).await;

    assert_eq!(changes.len(), 8);
    let page = result.unwrap().messages.remove(0).unwrap();
    assert!(page.sync_state.starts_with("H4sI"), "{}", page.sync_state);
    assert!(page.changes.is_empty());
}

#[tokio::test]
async fn sync_streamed_error_message_gives_no_state() {
    // The ResponseClass sits on the message's start tag, before the changes, but the
    // page is decoded only at the end: the changes reach the callback, the state does
    // not reach the caller.
    let body = envelope(
        r#"<m:SyncFolderItemsResponse><m:ResponseMessages><m:SyncFolderItemsResponseMessage ResponseClass="Error"><m:MessageText>The synchronization state is not valid.</m:MessageText><m:ResponseCode>ErrorInvalidSyncStateData</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:SyncState>H4sIAAAAAAAEAO29B2AcSZYlJi9tynt</m:SyncState><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange><m:Changes><t:Delete><t:ItemId Id="AAMkAGV4L2l0ZW0vMDAwMQ==" ChangeKey="EAAAAA=="/></t:Delete></m:Changes></m:SyncFolderItemsResponseMessage></m:ResponseMessages></m:SyncFolderItemsResponse>"#,
    );

    let (result, changes) = sync_streamed(body.into_bytes()).await;

    assert_eq!(changes.len(), 1);
    let response = result.unwrap();
    assert_eq!(response.messages.len(), 1);
    let error = response.messages[0]
        .as_ref()
        .expect_err("no page for an Error message");
    assert_eq!(error.code.as_str(), "ErrorInvalidSyncStateData");
}

#[tokio::test]
async fn get_item_streamed_resends_throttled_ids() {
    let Some(c15) = case("C15-serverbusy-responsemessage.xml") else {
        return;
    };
    let busy = c15[c15.find("<s:Envelope").unwrap()..].to_owned();
    let second_only = envelope(
        r#"<m:GetItemResponse><m:ResponseMessages><m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:Message><t:ItemId Id="AAMkAGV4L2l0ZW0vMDAwMg==" ChangeKey="EAAAAGNrMDAwMWNrMDAwMg=="/><t:IsRead>false</t:IsRead></t:Message></m:Items></m:GetItemResponseMessage></m:ResponseMessages></m:GetItemResponse>"#,
    );
    let server =
        MockServer::with_queue(vec![Canned::xml(200, busy), Canned::xml(200, second_only)]).await;
    let (client, sleeper) = client(&server);
    let get = GetItem {
        shape: Shape::base(BaseShape::IdOnly),
        item_ids: vec![
            ItemId::new("AAMkAGV4L2l0ZW0vMDAwMQ=="),
            ItemId::new("AAMkAGV4L2l0ZW0vMDAwMg=="),
        ],
    };

    let mut handed_out = Vec::new();
    let response = client
        .get_item_streamed(&get, |index, item| {
            handed_out.push((index, item.item_id.unwrap().id));
        })
        .await
        .unwrap();

    // Each item once, under the position of its id in the request.
    assert_eq!(
        handed_out,
        vec![
            (0, "AAMkAGV4L2l0ZW0vMDAwMQ==".to_owned()),
            (1, "AAMkAGV4L2l0ZW0vMDAwMg==".to_owned()),
        ]
    );
    assert_eq!(response.messages.len(), 2);
    assert!(response.messages[0].is_ok());
    assert!(response.messages[1].is_ok());

    // Only the throttled id went out again, after the 5000 ms the server asked for.
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].body.contains("AAMkAGV4L2l0ZW0vMDAwMg=="));
    assert!(!requests[1].body.contains("AAMkAGV4L2l0ZW0vMDAwMQ=="));
    assert_eq!(sleeper.total(), Duration::from_millis(5000));
}
