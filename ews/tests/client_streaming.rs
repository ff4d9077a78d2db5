#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The subscription driver against a scripted server: a streaming subscription that
//! survives a dropped connection, a Closed status and a dead subscription id, and
//! reports a catch-up each time.

mod client_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use client_support::{Canned, ClockSleeper, MockServer, case, envelope};
use exmux_core::auth::Credentials;
use exmux_core::{ManualClock, Secret};
use exmux_ews::client::EwsClient;
use exmux_ews::client::notifications::{NotificationEvent, SubscriptionDriver};
use exmux_ews::ops::notify::EventKind;
use exmux_ews::subscription::{CatchUpCause, FolderScope, SubscriptionMode};
use exmux_ews::types::EventType;

const SUB: &str = "HwBtYngwMS5leGFtcGxlLnRlc3QQAAAAc3ViLTAwMDEtcGxhY2Vob2xkZXI=";

/// Returns the chunks of the raw chunked HTTP response in a case file, exactly as sent.
fn raw_chunks(text: &str) -> Vec<Bytes> {
    let marker = "----- raw HTTP response follows -----";
    let raw = &text[text.find(marker).unwrap() + marker.len()..];
    let raw = raw.trim_start_matches(['\r', '\n']);
    let body_start = raw.find("\r\n\r\n").unwrap() + 4;
    let mut rest = &raw.as_bytes()[body_start..];
    let mut chunks = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|pair| pair == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return chunks;
        }
        let data = &rest[line_end + 2..line_end + 2 + size];
        chunks.push(Bytes::copy_from_slice(data));
        rest = &rest[line_end + 2 + size + 2..];
    }
}

fn subscribe_ok() -> String {
    envelope(&format!(
        r#"<m:SubscribeResponse><m:ResponseMessages><m:SubscribeResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SubscriptionId>{SUB}</m:SubscriptionId><m:Watermark>GwAAAHdhdGVybWFyay0wMDAx</m:Watermark></m:SubscribeResponseMessage></m:ResponseMessages></m:SubscribeResponse>"#
    ))
}

fn streaming(chunks: Vec<Bytes>, drop_after: bool) -> Canned {
    let mut canned = Canned::xml(200, Bytes::new());
    canned.chunks = chunks;
    canned.drop_after = drop_after;
    canned
}

#[tokio::test]
async fn streaming_resumes_after_every_loss() {
    let (Some(c19), Some(c18)) = (
        case("C19-streaming-multi-envelope.txt"),
        case("C18-invalid-subscription-status-ok.xml"),
    ) else {
        return;
    };
    let chunks = raw_chunks(&c19);
    assert_eq!(
        chunks.len(),
        4,
        "envelope 1 in two chunks, then heartbeat and Closed"
    );
    let c18 = c18[c18.find("<s:Envelope").unwrap()..].to_owned();

    // The first stream delivers envelope 1, split inside a tag across two chunks, and
    // then the connection drops.
    let first_stream = vec![
        chunks[0].clone(),
        chunks[1].slice(..100),
        chunks[1].slice(100..),
    ];
    let second_stream = chunks.clone();

    let server = MockServer::with_queue(vec![
        Canned::xml(200, subscribe_ok()).header(
            "Set-Cookie",
            "X-BackEndOverrideCookie=be01.example.test~1942; path=/",
        ),
        streaming(first_stream, true),
        streaming(second_stream, false),
        Canned::xml(200, c18),
        Canned::xml(200, subscribe_ok()),
    ])
    .await;

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
    .sleeper(Arc::new(sleeper))
    .build()
    .unwrap();
    let folders = FolderScope::Folders(vec!["inbox".into()]);
    let mut driver = SubscriptionDriver::new(
        client.clone(),
        folders.clone(),
        SubscriptionMode::streaming(),
        vec![EventType::NewMail, EventType::Created, EventType::Modified],
    );

    let mut seen = Vec::new();
    for _ in 0..7 {
        let event = tokio::time::timeout(Duration::from_secs(10), driver.next())
            .await
            .expect("the driver stalled")
            .unwrap();
        seen.push(event);
    }

    let catch_up = |cause| NotificationEvent::CatchUp {
        folders: folders.clone(),
        cause,
    };
    assert_eq!(seen[0], catch_up(CatchUpCause::Subscribed));
    let NotificationEvent::Events(first) = &seen[1] else {
        panic!("expected events, got {:?}", seen[1]);
    };
    let kinds: Vec<_> = first.iter().map(|event| event.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::NewMail, EventKind::Created, EventKind::Modified]
    );
    assert_eq!(
        first[0].item_id.as_ref().unwrap().id,
        "AAMkAGV4L2l0ZW0vMDAxMA=="
    );
    assert_eq!(seen[2], catch_up(CatchUpCause::ConnectionDropped));
    assert!(matches!(&seen[3], NotificationEvent::Events(events) if events.len() == 3));
    // The heartbeat delivered nothing; the Closed envelope reopened the stream.
    assert_eq!(seen[4], catch_up(CatchUpCause::StreamClosed));
    // The reopened stream returned ErrorInvalidSubscription with ConnectionStatus OK: the
    // driver subscribed again and asked for a catch-up.
    assert_eq!(
        seen[5],
        catch_up(CatchUpCause::SubscriptionError(
            "ErrorInvalidSubscription".into()
        ))
    );

    let requests = server.requests();
    let operations: Vec<_> = requests
        .iter()
        .map(|seen| {
            let action = seen.header("soapaction").unwrap();
            action
                .trim_matches('"')
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        &operations[..5],
        &[
            "Subscribe",
            "GetStreamingEvents",
            "GetStreamingEvents",
            "GetStreamingEvents",
            "Subscribe"
        ]
    );
    // Every reopen used the same subscription id and the affinity cookie.
    for request in &requests[1..4] {
        assert!(request.body.contains(SUB));
        assert_eq!(
            request.header("x-preferserveraffinity").as_deref(),
            Some("true")
        );
        assert_eq!(
            request.header("cookie").as_deref(),
            Some("X-BackEndOverrideCookie=be01.example.test~1942")
        );
        assert!(
            request
                .body
                .contains("<m:ConnectionTimeout>30</m:ConnectionTimeout>")
        );
    }
    assert!(client.has_affinity_cookie());
}

fn get_events(body: &str) -> String {
    envelope(&format!(
        r#"<m:GetEventsResponse><m:ResponseMessages><m:GetEventsResponseMessage ResponseClass="{}"><m:ResponseCode>{}</m:ResponseCode>{body}</m:GetEventsResponseMessage></m:ResponseMessages></m:GetEventsResponse>"#,
        if body.is_empty() { "Error" } else { "Success" },
        if body.is_empty() {
            "ErrorSubscriptionNotFound"
        } else {
            "NoError"
        },
    ))
}

#[tokio::test]
async fn pull_subscription_polls_and_recovers() {
    let notification = r#"<m:Notification><t:SubscriptionId>pull-0001</t:SubscriptionId><t:PreviousWatermark>GwAAAHdhdGVybWFyay0wMDAx</t:PreviousWatermark><t:MoreEvents>false</t:MoreEvents><t:DeletedEvent><t:Watermark>GwAAAHdhdGVybWFyay0wMDAy</t:Watermark><t:TimeStamp>2015-12-24T10:02:11Z</t:TimeStamp><t:ItemId Id="AAMkAGV4L2l0ZW0vMDAwNQ==" ChangeKey="EAAAAGNrMDAwNWNrMDAwNQ=="/><t:ParentFolderId Id="AAEuAGV4L2ZvbGRlci90YXNrcw==" ChangeKey="AQAAAA=="/></t:DeletedEvent></m:Notification>"#;
    let subscribe = envelope(
        r#"<m:SubscribeResponse><m:ResponseMessages><m:SubscribeResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:SubscriptionId>pull-0001</m:SubscriptionId><m:Watermark>GwAAAHdhdGVybWFyay0wMDAx</m:Watermark></m:SubscribeResponseMessage></m:ResponseMessages></m:SubscribeResponse>"#,
    );
    let server = MockServer::with_queue(vec![
        Canned::xml(200, subscribe.clone()),
        Canned::xml(200, get_events(notification)),
        Canned::xml(200, get_events("")),
        Canned::xml(200, subscribe),
    ])
    .await;

    let clock = ManualClock::default();
    let client = EwsClient::builder(
        server.url(),
        "user1@example.test",
        Credentials::Basic {
            username: "user1@example.test".into(),
            password: Secret::new("pw"),
        },
    )
    .clock(Arc::new(clock.clone()))
    .sleeper(Arc::new(ClockSleeper::new(clock)))
    .build()
    .unwrap();
    let mode = SubscriptionMode::Pull {
        timeout: exmux_ews::subscription::PullTimeout::from_minutes(10).unwrap(),
        interval: Duration::from_secs(60),
    };
    let mut driver = SubscriptionDriver::new(
        client,
        FolderScope::WholeMailbox,
        mode,
        vec![EventType::Deleted, EventType::Moved],
    );

    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(10), driver.next())
            .await
            .expect("the driver stalled")
            .unwrap();
        seen.push(event);
    }
    assert_eq!(
        seen[0],
        NotificationEvent::CatchUp {
            folders: FolderScope::WholeMailbox,
            cause: CatchUpCause::Subscribed,
        }
    );
    let NotificationEvent::Events(events) = &seen[1] else {
        panic!("expected events, got {:?}", seen[1]);
    };
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Deleted);
    assert_eq!(
        seen[2],
        NotificationEvent::CatchUp {
            folders: FolderScope::WholeMailbox,
            cause: CatchUpCause::SubscriptionError("ErrorSubscriptionNotFound".into()),
        }
    );

    let requests = server.requests();
    assert!(requests[1].body.contains("GwAAAHdhdGVybWFyay0wMDAx"));
    // The second poll continues from the watermark of the last event.
    assert!(requests[2].body.contains("GwAAAHdhdGVybWFyay0wMDAy"));
    assert!(requests[0].body.contains("PullSubscriptionRequest"));
}

#[tokio::test]
async fn silent_stream_trips_watchdog() {
    let Some(c19) = case("C19-streaming-multi-envelope.txt") else {
        return;
    };
    let chunks = raw_chunks(&c19);
    // Envelope 1, then silence far longer than the heartbeat timeout.
    let envelope_one = Bytes::from([chunks[0].as_ref(), chunks[1].as_ref()].concat());
    let mut stalled = streaming(vec![envelope_one], false);
    stalled.chunk_delay = Duration::from_secs(30);
    let server = MockServer::with_queue(vec![
        Canned::xml(200, subscribe_ok()),
        stalled,
        streaming(chunks.clone(), false),
    ])
    .await;

    // Real time here: the watchdog is driven by the system clock, with a short timeout.
    let client = EwsClient::builder(
        server.url(),
        "user1@example.test",
        Credentials::Basic {
            username: "user1@example.test".into(),
            password: Secret::new("pw"),
        },
    )
    .build()
    .unwrap();
    let folders = FolderScope::Folders(vec!["inbox".into()]);
    let mode = SubscriptionMode::Streaming {
        connection_timeout: exmux_ews::subscription::ConnectionTimeout::from_minutes(1).unwrap(),
        heartbeat_timeout: Duration::from_millis(300),
    };
    let mut driver =
        SubscriptionDriver::new(client, folders.clone(), mode, vec![EventType::NewMail]);

    let mut seen = Vec::new();
    for _ in 0..4 {
        let event = tokio::time::timeout(Duration::from_secs(5), driver.next())
            .await
            .expect("the watchdog did not fire")
            .unwrap();
        seen.push(event);
    }
    assert!(matches!(seen[1], NotificationEvent::Events(_)));
    assert_eq!(
        seen[2],
        NotificationEvent::CatchUp {
            folders: folders.clone(),
            cause: CatchUpCause::HeartbeatMissed,
        }
    );
    assert!(matches!(seen[3], NotificationEvent::Events(_)));
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[2].body.contains(SUB));
    assert!(
        requests[2]
            .body
            .contains("<m:ConnectionTimeout>1</m:ConnectionTimeout>")
    );
}
