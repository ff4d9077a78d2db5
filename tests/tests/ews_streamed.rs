#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The EWS client's `*_streamed` calls, which hand out each change or item while the
//! response body is still arriving: against a handler that keeps the rest of the body
//! back until the first item reached the caller, and against the emulator's EWS front
//! end, where they must give what `EwsClient::call` gives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use exmux_core::auth::{BoxFuture, Credentials};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::ews::EwsFrontEnd;
use exmux_emulator::server::{
    EWS_PATH, EmuResponse, Emulator, EmulatorHandle, EmulatorOptions, ResponseBody, RouteAuth,
    handler_fn,
};
use exmux_emulator::store::{NewItem, NewItemContent, WellKnownFolder};
use exmux_ews::client::{EwsClient, Sleeper};
use exmux_ews::operation::EwsOperation;
use exmux_ews::ops::Shape;
use exmux_ews::ops::items::GetItem;
use exmux_ews::ops::sync::{FindItem, SyncChange, SyncFolderItems};
use exmux_ews::types::{BaseShape, DistinguishedFolder, FolderRef, Item, Traversal};

const USER: &str = "user1@example.test";

/// A sleeper that advances the test's clock instead of waiting.
#[derive(Debug, Clone)]
struct ClockSleeper {
    clock: ManualClock,
    slept: Arc<Mutex<Vec<Duration>>>,
}

impl Sleeper for ClockSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        self.slept.lock().unwrap().push(duration);
        self.clock.advance(duration);
        Box::pin(async {})
    }
}

async fn start() -> (EmulatorHandle, ManualClock) {
    let clock = ManualClock::default();
    let emulator = Emulator::start(EmulatorOptions {
        tls: false,
        clock: Arc::new(clock.clone()),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    (emulator, clock)
}

fn client(emulator: &EmulatorHandle, sleeper: ClockSleeper) -> EwsClient {
    EwsClient::builder(
        emulator.ews_url(),
        USER,
        Credentials::Basic {
            username: USER.to_owned(),
            password: Secret::new("password1"),
        },
    )
    .clock(Arc::new(sleeper.clock.clone()))
    .sleeper(Arc::new(sleeper))
    .build()
    .unwrap()
}

fn xml_response(body: ResponseBody) -> EmuResponse {
    let mut response = EmuResponse::new(body);
    response.headers_mut().insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

fn inbox() -> FolderRef {
    FolderRef::distinguished(DistinguishedFolder::Inbox)
}

fn find_all(shape: Shape) -> FindItem {
    FindItem {
        traversal: Traversal::Shallow,
        shape,
        page: None,
        parents: vec![inbox()],
    }
}

/// Fills the Inbox with `count` messages of about 1.5 KB of MIME each.
fn fill_inbox(emulator: &EmulatorHandle, count: usize) {
    let mut store = emulator.store().lock().unwrap();
    let session = store.open_session("filler");
    let folder = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
    let paragraph = "Minutes of the weekly planning call, with owners and dates. ".repeat(20);
    for n in 0..count {
        let mime = format!(
            "From: Alice <alice@example.test>\r\nTo: {USER}\r\nSubject: message {n}\r\n\
             Message-ID: <m{n}@example.test>\r\n\r\n{paragraph}\r\n"
        );
        store
            .create_item(
                session,
                folder,
                NewItem {
                    content: NewItemContent::Mime(mime.into_bytes()),
                    ..NewItem::default()
                },
            )
            .unwrap();
    }
}

/// The handler sends half of a 300-item FindItem response and waits until the client's
/// callback has received an item before it sends the rest. A client that read the
/// whole body first would never call back, and the call would time out.
#[tokio::test]
async fn items_arrive_before_body_ends() {
    let (emulator, clock) = start().await;
    let body = exmux_ews::sample::find_item_response(300).unwrap();
    let expected = FindItem::parse_response(&body).unwrap();

    let (first_item_tx, first_item_rx) = tokio::sync::oneshot::channel::<()>();
    let first_item_rx = Arc::new(Mutex::new(Some(first_item_rx)));
    let held_back = Arc::new(Mutex::new(None));
    let held_back_log = Arc::clone(&held_back);
    let body = Arc::new(body);
    emulator.mount(
        EWS_PATH,
        RouteAuth::Required,
        handler_fn(move |_request, _context| {
            let body = body.clone();
            let first_item_rx = first_item_rx.lock().unwrap().take();
            let held_back_log = Arc::clone(&held_back_log);
            async move {
                let (sender, response_body) = ResponseBody::channel(4);
                tokio::spawn(async move {
                    let half = body.len() / 2;
                    sender.send(body[..half].to_vec()).await.unwrap();
                    if let Some(first_item_rx) = first_item_rx {
                        let waited = tokio::time::timeout(Duration::from_secs(10), first_item_rx)
                            .await
                            .is_ok();
                        *held_back_log.lock().unwrap() = Some(waited);
                    }
                    sender.send(body[half..].to_vec()).await.ok();
                });
                xml_response(response_body)
            }
        }),
    );

    let client = client(
        &emulator,
        ClockSleeper {
            clock,
            slept: Arc::default(),
        },
    );
    let mut first_item_tx = Some(first_item_tx);
    let mut items = Vec::new();
    let response = client
        .find_item_streamed(&find_all(Shape::base(BaseShape::Default)), |index, item| {
            assert_eq!(index, 0);
            if let Some(tx) = first_item_tx.take() {
                tx.send(()).unwrap();
            }
            items.push(item);
        })
        .await
        .unwrap();

    assert_eq!(
        *held_back.lock().unwrap(),
        Some(true),
        "the first item reached the caller while the second half was held back"
    );
    let expected_page = expected.messages[0].as_ref().unwrap();
    assert_eq!(items, expected_page.items);
    let page = response.messages[0].as_ref().unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.paging, expected_page.paging);
}

#[tokio::test]
async fn streamed_calls_match_call() {
    let (emulator, clock) = start().await;
    EwsFrontEnd::install(&emulator);
    fill_inbox(&emulator, 1500);
    let client = client(
        &emulator,
        ClockSleeper {
            clock,
            slept: Arc::default(),
        },
    );

    // FindItem over the whole folder: a response of more than a megabyte.
    let find = find_all(Shape::base(BaseShape::Default));
    let whole = client.call(&find).await.unwrap();
    let whole_page = whole.messages[0].as_ref().unwrap();
    assert_eq!(whole_page.items.len(), 1500);
    let mut items = Vec::new();
    let streamed = client
        .find_item_streamed(&find, |_, item| items.push(item))
        .await
        .unwrap();
    assert_eq!(items, whole_page.items);
    assert_eq!(
        streamed.messages[0].as_ref().unwrap().paging,
        whole_page.paging
    );

    // SyncFolderItems, page by page from the same states.
    let mut state = None;
    loop {
        let request = SyncFolderItems {
            shape: Shape::base(BaseShape::Default),
            folder: inbox(),
            sync_state: state.clone(),
            ignore: Vec::new(),
            max_changes: 512,
        };
        let whole = client
            .call(&request)
            .await
            .unwrap()
            .into_single("SyncFolderItems")
            .unwrap();
        let mut changes = Vec::new();
        let streamed = client
            .sync_folder_items_streamed(&request, |change| changes.push(change))
            .await
            .unwrap()
            .into_single("SyncFolderItems")
            .unwrap();
        assert_eq!(changes, whole.changes);
        assert!(
            changes
                .iter()
                .all(|change| matches!(change, SyncChange::Create(_)))
        );
        assert_eq!(streamed.includes_last, whole.includes_last);
        assert!(streamed.changes.is_empty());
        if whole.includes_last {
            break;
        }
        state = Some(whole.sync_state);
    }

    // GetItem with MIME content, one response message per id.
    let ids: Vec<_> = whole_page
        .items
        .iter()
        .filter_map(|item| item.item_id.clone())
        .take(200)
        .collect();
    let get = GetItem {
        shape: Shape {
            include_mime_content: true,
            ..Shape::base(BaseShape::Default)
        },
        item_ids: ids.clone(),
    };
    let whole = client.call(&get).await.unwrap();
    let mut by_message: Vec<Vec<Item>> = vec![Vec::new(); ids.len()];
    let streamed = client
        .get_item_streamed(&get, |index, item| by_message[index].push(item))
        .await
        .unwrap();
    assert_eq!(streamed.messages.len(), ids.len());
    for (index, message) in whole.messages.into_iter().enumerate() {
        let expected = message.unwrap();
        assert_eq!(expected.len(), 1);
        assert!(expected[0].mime_content.is_some());
        assert_eq!(by_message[index], expected, "message {index}");
        assert_eq!(streamed.messages[index], Ok(Vec::new()));
    }
}

/// A throttled response carries no changes, so the retry hands out each change once.
#[tokio::test]
async fn throttled_streamed_call_retries_once() {
    let (emulator, clock) = start().await;
    let front_end = EwsFrontEnd::install(&emulator);
    fill_inbox(&emulator, 20);
    let slept = Arc::new(Mutex::new(Vec::new()));
    let client = client(
        &emulator,
        ClockSleeper {
            clock,
            slept: Arc::clone(&slept),
        },
    );
    front_end.busy_in_response_message(1, Duration::from_millis(2000));

    let request = SyncFolderItems {
        shape: Shape::base(BaseShape::IdOnly),
        folder: inbox(),
        sync_state: None,
        ignore: Vec::new(),
        max_changes: 100,
    };
    let mut changes = Vec::new();
    let page = client
        .sync_folder_items_streamed(&request, |change| changes.push(change))
        .await
        .unwrap()
        .into_single("SyncFolderItems")
        .unwrap();

    assert_eq!(changes.len(), 20);
    assert!(page.includes_last);
    let slept = slept.lock().unwrap().clone();
    assert_eq!(slept.len(), 1, "one wait, then the retry: {slept:?}");
    assert!(slept[0] >= Duration::from_millis(2000), "{slept:?}");
}

#[tokio::test]
async fn malformed_item_is_an_error() {
    let (emulator, clock) = start().await;
    let body = String::from_utf8(exmux_ews::sample::find_item_response(3).unwrap()).unwrap();
    let broken = body.replacen("</t:Subject>", "</t:Subjekt>", 1);
    assert_ne!(broken, body);
    emulator.mount(
        EWS_PATH,
        RouteAuth::Required,
        handler_fn(move |_request, _context| {
            let broken = broken.clone();
            async move { xml_response(ResponseBody::from(broken.into_bytes())) }
        }),
    );
    let client = client(
        &emulator,
        ClockSleeper {
            clock,
            slept: Arc::default(),
        },
    );

    let mut items = 0;
    let error = client
        .find_item_streamed(&find_all(Shape::base(BaseShape::Default)), |_, _| {
            items += 1
        })
        .await
        .unwrap_err();
    assert!(error.to_string().to_lowercase().contains("xml"), "{error}");
    assert!(items < 3, "{items} items before the broken one");
}
