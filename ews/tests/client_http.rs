#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The EWS client against a scripted server on 127.0.0.1: throttling in every shape,
//! batches, connection handling, unsupported operations, authentication and timeouts.

mod client_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_support::{Canned, ClockSleeper, MockServer, case, envelope};
use exmux_core::auth::{AuthError, BoxFuture, Credentials, TokenProvider};
use exmux_core::{ManualClock, Secret};
use exmux_ews::client::{ClientError, EwsClient};
use exmux_ews::ops::Shape;
use exmux_ews::ops::folders::GetFolder;
use exmux_ews::ops::items::GetItem;
use exmux_ews::throttle::{BackoffPolicy, ThrottleSignal, ThrottleWait};
use exmux_ews::types::{BaseShape, DistinguishedFolder, FolderRef, ItemId};

const PASSWORD: &str = "c0rrect-h0rse-b4ttery";

fn basic() -> Credentials {
    Credentials::Basic {
        username: "user1@example.test".into(),
        password: Secret::new(PASSWORD),
    }
}

struct Harness {
    client: EwsClient,
    sleeper: ClockSleeper,
    waits: Arc<Mutex<Vec<ThrottleWait>>>,
}

fn harness(server: &MockServer, credentials: Credentials, policy: BackoffPolicy) -> Harness {
    let clock = ManualClock::default();
    let sleeper = ClockSleeper::new(clock.clone());
    let waits = Arc::new(Mutex::new(Vec::new()));
    let waits_for_observer = Arc::clone(&waits);
    let client = EwsClient::builder(server.url(), "user1@example.test", credentials)
        .clock(Arc::new(clock))
        .sleeper(Arc::new(sleeper.clone()))
        .backoff_policy(policy)
        .timeout(Duration::from_secs(10))
        .on_wait(Arc::new(move |wait: &ThrottleWait| {
            waits_for_observer.lock().unwrap().push(wait.clone());
        }))
        .build()
        .unwrap();
    Harness {
        client,
        sleeper,
        waits,
    }
}

fn no_jitter() -> BackoffPolicy {
    BackoffPolicy {
        jitter: 0.0,
        ..BackoffPolicy::default()
    }
}

fn get_inbox() -> GetFolder {
    GetFolder {
        shape: Shape::base(BaseShape::IdOnly),
        folder_ids: vec![FolderRef::distinguished(DistinguishedFolder::Inbox)],
    }
}

fn get_folder_ok() -> String {
    envelope(
        r#"<m:GetFolderResponse><m:ResponseMessages><m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Folders><t:Folder><t:FolderId Id="AAEuAGV4L2ZvbGRlci9pbmJveA==" ChangeKey="AQAAAA=="/><t:DisplayName>Inbox</t:DisplayName></t:Folder></m:Folders></m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse>"#,
    )
}

fn server_busy_message(code: &str, back_off: &str) -> String {
    envelope(&format!(
        r#"<m:GetFolderResponse><m:ResponseMessages><m:GetFolderResponseMessage ResponseClass="Error"><m:MessageText>The server cannot service this request right now.</m:MessageText><m:ResponseCode> {code} </m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:MessageXml>{back_off}</m:MessageXml></m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse>"#
    ))
}

/// Strips the leading XML comment lines of a case file down to the envelope.
fn case_envelope(name: &str) -> Option<String> {
    let text = case(name)?;
    let start = text.find("<s:Envelope").unwrap();
    Some(text[start..].to_owned())
}

#[tokio::test]
async fn routing_headers_on_every_request() {
    let server = MockServer::with_queue(vec![
        Canned::xml(200, get_folder_ok()),
        Canned::xml(200, get_folder_ok()),
    ])
    .await;
    let h = harness(&server, basic(), no_jitter());
    let first = h.client.call(&get_inbox()).await.unwrap();
    assert_eq!(first.messages.len(), 1);
    h.client.call(&get_inbox()).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(
            request.header("x-anchormailbox").as_deref(),
            Some("user1@example.test")
        );
        assert_eq!(
            request.header("soapaction").as_deref(),
            Some("\"http://schemas.microsoft.com/exchange/services/2006/messages/GetFolder\"")
        );
        assert!(
            request
                .header("authorization")
                .unwrap()
                .starts_with("Basic ")
        );
        assert!(request.body.contains("GetFolder"));
    }
    // Successful responses keep the connection alive.
    assert_eq!(requests[0].peer, requests[1].peer);
}

#[tokio::test]
async fn soap_fault_500_honours_back_off() {
    let Some(fault) = case_envelope("C16-serverbusy-soapfault-http500.xml") else {
        return;
    };
    let server = MockServer::with_queue(vec![
        Canned::xml(200, get_folder_ok()),
        Canned::xml(500, fault).header("X-BackEndHttpStatus", "500"),
        Canned::xml(200, get_folder_ok()),
    ])
    .await;
    let h = harness(&server, basic(), no_jitter());
    h.client.call(&get_inbox()).await.unwrap();
    h.client.call(&get_inbox()).await.unwrap();

    // The back-off of the fault's MessageXml, minutes included, was waited out.
    assert_eq!(h.sleeper.total(), Duration::from_millis(297_418));
    let waits = h.waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].operation, "GetFolder");
    assert_eq!(waits[0].delay, Duration::from_millis(297_418));

    // The same request was sent again, on a new connection.
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[1].body, requests[2].body);
    assert_eq!(requests[0].peer, requests[1].peer);
    assert_ne!(requests[1].peer, requests[2].peer);
}

#[tokio::test]
async fn http_503_retry_after() {
    let server = MockServer::with_queue(vec![
        Canned::new(503, "text/html", "<html>Service Unavailable</html>")
            .header("Retry-After", "7"),
        Canned::new(429, "text/plain", "Too Many Requests"),
        Canned::xml(200, get_folder_ok()),
    ])
    .await;
    let h = harness(&server, basic(), no_jitter());
    h.client.call(&get_inbox()).await.unwrap();
    let waits = h.waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 2);
    assert_eq!(
        waits[0].signal,
        ThrottleSignal::HttpStatus {
            status: 503,
            retry_after: Some(Duration::from_secs(7)),
        }
    );
    assert_eq!(waits[0].delay, Duration::from_secs(7));
    // No hint with the 429: the policy's doubled base delay (second attempt).
    assert_eq!(waits[1].delay, Duration::from_secs(2));
    assert_eq!(h.sleeper.total(), Duration::from_secs(9));
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_ne!(requests[0].peer, requests[1].peer);
}

#[tokio::test]
async fn server_busy_in_http_200_message() {
    let server = MockServer::with_queue(vec![
        Canned::xml(
            200,
            server_busy_message(
                "ErrorServerBusy",
                r#"<t:Value Name="BackOffMilliseconds">5000</t:Value>"#,
            ),
        ),
        Canned::xml(200, get_folder_ok()),
    ])
    .await;
    let h = harness(&server, basic(), no_jitter());
    let response = h.client.call(&get_inbox()).await.unwrap();
    assert!(response.messages[0].is_ok());
    assert_eq!(h.sleeper.total(), Duration::from_millis(5000));
}

#[tokio::test]
async fn inner_server_busy_is_throttling() {
    let fault = envelope(
        r#"<s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorInternalServerError</faultcode><faultstring>An internal server error occurred. Try again later.</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorInternalServerError</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">An internal server error occurred.</e:Message><t:MessageXml><t:Value Name="InnerErrorResponseCode">ErrorServerBusy</t:Value><t:Value Name="BackOffMilliseconds">1200</t:Value></t:MessageXml></detail></s:Fault>"#,
    );
    let server = MockServer::with_queue(vec![
        Canned::xml(500, fault),
        Canned::xml(200, get_folder_ok()),
    ])
    .await;
    let h = harness(&server, basic(), no_jitter());
    h.client.call(&get_inbox()).await.unwrap();
    assert_eq!(h.sleeper.total(), Duration::from_millis(1200));
}

#[tokio::test]
async fn connection_count_lowers_concurrency() {
    let server = MockServer::with_queue(vec![
        Canned::xml(200, server_busy_message("ErrorExceededConnectionCount", "")),
        Canned::xml(
            200,
            server_busy_message(
                "ErrorTooManyObjectsOpened",
                r#"<t:Value Name="BackOffMilliseconds">0</t:Value>"#,
            ),
        ),
        Canned::xml(200, get_folder_ok()),
    ])
    .await;
    let h = harness(&server, basic(), no_jitter());
    assert_eq!(h.client.concurrency_limit(), 8);
    h.client.call(&get_inbox()).await.unwrap();
    assert_eq!(h.client.concurrency_limit(), 2);
    // No hint and a hint of 0 both fall back to the policy's base delay, doubled.
    assert_eq!(h.sleeper.total(), Duration::from_secs(3));
}

#[tokio::test]
async fn throttling_gives_up_at_cap() {
    let busy = server_busy_message(
        "ErrorServerBusy",
        r#"<t:Value Name="BackOffMilliseconds">297418</t:Value>"#,
    );
    let server = MockServer::with_queue(vec![Canned::xml(200, busy); 5]).await;
    let policy = BackoffPolicy {
        jitter: 0.0,
        max_total_wait: Duration::from_secs(600),
        ..BackoffPolicy::default()
    };
    let h = harness(&server, basic(), policy);
    let error = h.client.call(&get_inbox()).await.unwrap_err();
    let ClientError::Throttled {
        operation,
        attempts,
        waited,
        ..
    } = &error
    else {
        panic!("expected Throttled, got {error:?}");
    };
    assert_eq!(*operation, "GetFolder");
    assert_eq!(*attempts, 2);
    assert_eq!(*waited, Duration::from_millis(2 * 297_418));
    assert_eq!(server.requests().len(), 3);
    assert!(error.is_retryable());
    let message = error.to_string();
    assert!(message.contains("GetFolder"), "{message}");
    assert!(message.contains("max_total_wait"), "{message}");
}

#[tokio::test]
async fn batch_requeues_only_throttled_ids() {
    let Some(busy) = case_envelope("C15-serverbusy-responsemessage.xml") else {
        return;
    };
    let second_only = envelope(
        r#"<m:GetItemResponse><m:ResponseMessages><m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:Message><t:ItemId Id="AAMkAGV4L2l0ZW0vMDAwMg==" ChangeKey="EAAAAGNrMDAwMWNrMDAwMg=="/><t:IsRead>false</t:IsRead></t:Message></m:Items></m:GetItemResponseMessage></m:ResponseMessages></m:GetItemResponse>"#,
    );
    let server =
        MockServer::with_queue(vec![Canned::xml(200, busy), Canned::xml(200, second_only)]).await;
    let h = harness(&server, basic(), no_jitter());
    let ids = vec![
        ItemId::new("AAMkAGV4L2l0ZW0vMDAwMQ=="),
        ItemId::new("AAMkAGV4L2l0ZW0vMDAwMg=="),
    ];
    let results = h
        .client
        .call_batch(ids.clone(), |batch: &[ItemId]| GetItem {
            shape: Shape::base(BaseShape::IdOnly),
            item_ids: batch.to_vec(),
        })
        .await
        .unwrap();

    assert_eq!(results.len(), 2);
    assert_eq!(results[0].0, ids[0]);
    assert_eq!(results[1].0, ids[1]);
    let first = results[0].1.as_ref().unwrap();
    assert_eq!(
        first[0].item_id.as_ref().unwrap().id,
        "AAMkAGV4L2l0ZW0vMDAwMQ=="
    );
    let second = results[1].1.as_ref().unwrap();
    assert_eq!(
        second[0].item_id.as_ref().unwrap().id,
        "AAMkAGV4L2l0ZW0vMDAwMg=="
    );

    // Only the throttled id went out again, after the whole back-off.
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].body.contains("AAMkAGV4L2l0ZW0vMDAwMg=="));
    assert!(!requests[1].body.contains("AAMkAGV4L2l0ZW0vMDAwMQ=="));
    assert_eq!(h.sleeper.total(), Duration::from_millis(5000));
    // The policy value of ConcurrentSyncCalls became the concurrency limit.
    assert_eq!(h.client.concurrency_limit(), 5);
}

#[tokio::test]
async fn plain_500_is_unsupported_not_auth() {
    let server = MockServer::with_queue(vec![
        Canned::xml(200, get_folder_ok()),
        Canned::new(
            500,
            "text/plain; charset=utf-8",
            "unknown request 'GetItem'",
        )
        .header("Server", "nginx"),
        Canned::xml(200, get_folder_ok()),
    ])
    .await;
    let h = harness(&server, basic(), no_jitter());
    h.client.call(&get_inbox()).await.unwrap();

    let get_item = GetItem {
        shape: Shape::base(BaseShape::IdOnly),
        item_ids: vec![ItemId::new("AAMkAGV4L2l0ZW0vMDAwMQ==")],
    };
    let error = h.client.call(&get_item).await.unwrap_err();
    let ClientError::Unsupported {
        operation,
        status,
        snippet,
    } = &error
    else {
        panic!("expected Unsupported, got {error:?}");
    };
    assert_eq!(*operation, "GetItem");
    assert_eq!(*status, 500);
    assert_eq!(snippet, "unknown request 'GetItem'");
    assert!(!matches!(error, ClientError::Auth { .. }));
    assert!(!error.is_retryable());
    assert_eq!(h.client.unsupported_operations(), vec!["GetItem"]);

    // The verdict is cached: no second request for GetItem.
    let again = h.client.call(&get_item).await.unwrap_err();
    assert!(matches!(again, ClientError::Unsupported { .. }));
    assert_eq!(server.requests().len(), 2);

    // Other operations go on.
    h.client.call(&get_inbox()).await.unwrap();
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn plain_500_with_challenge_not_cached() {
    let server = MockServer::with_queue(vec![
        Canned::new(500, "text/html", "<html>error</html>")
            .header("WWW-Authenticate", "Basic realm=\"mail.example.test\""),
    ])
    .await;
    let h = harness(&server, basic(), no_jitter());
    let error = h.client.call(&get_inbox()).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Http { status: 500, .. }),
        "{error:?}"
    );
    assert!(h.client.unsupported_operations().is_empty());
}

#[tokio::test]
async fn html_page_with_200_is_ews_error() {
    let server =
        MockServer::with_queue(vec![Canned::new(200, "text/html", "<html>login</html>")]).await;
    let h = harness(&server, basic(), no_jitter());
    let error = h.client.call(&get_inbox()).await.unwrap_err();
    assert!(matches!(error, ClientError::Ews { .. }), "{error:?}");
}

#[derive(Debug)]
struct RotatingToken {
    current: Mutex<u32>,
    invalidated: Mutex<Vec<String>>,
}

impl TokenProvider for RotatingToken {
    fn access_token(&self) -> BoxFuture<'_, Result<Secret, AuthError>> {
        let token = Secret::new(format!("token-{}", self.current.lock().unwrap()));
        Box::pin(async move { Ok(token) })
    }

    fn invalidate(&self, token: &Secret) {
        self.invalidated
            .lock()
            .unwrap()
            .push(token.expose().to_owned());
        *self.current.lock().unwrap() += 1;
    }
}

#[tokio::test]
async fn bearer_refreshes_once_on_401() {
    let server = MockServer::start(Box::new(|seen| {
        if seen.header("authorization").as_deref() == Some("Bearer token-1") {
            Canned::xml(200, get_folder_ok())
        } else {
            Canned::new(401, "text/plain", "").header("WWW-Authenticate", "Bearer")
        }
    }))
    .await;
    let provider = Arc::new(RotatingToken {
        current: Mutex::new(0),
        invalidated: Mutex::new(Vec::new()),
    });
    let h = harness(&server, Credentials::Bearer(provider.clone()), no_jitter());
    h.client.call(&get_inbox()).await.unwrap();
    assert_eq!(*provider.invalidated.lock().unwrap(), vec!["token-0"]);
    let auth: Vec<_> = server
        .requests()
        .iter()
        .map(|seen| seen.header("authorization").unwrap())
        .collect();
    assert_eq!(auth, vec!["Bearer token-0", "Bearer token-1"]);
    // The retry after a 401 goes out on a new connection.
    let requests = server.requests();
    assert_ne!(requests[0].peer, requests[1].peer);

    // A token the server keeps rejecting fails after one refresh, not in a loop.
    *provider.current.lock().unwrap() = 5;
    let error = h.client.call(&get_inbox()).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Auth {
                source: AuthError::TokenRejected,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("exmux login"), "{error}");
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn basic_rejected_names_user_only() {
    let server = MockServer::with_queue(vec![
        Canned::new(401, "text/plain", "")
            .header("WWW-Authenticate", "Basic realm=\"mail.example.test\""),
    ])
    .await;
    let h = harness(&server, basic(), no_jitter());
    let error = h.client.call(&get_inbox()).await.unwrap_err();
    let ClientError::Auth { source, .. } = &error else {
        panic!("expected Auth, got {error:?}");
    };
    assert!(matches!(source, AuthError::Rejected { username } if username == "user1@example.test"));
    assert!(!format!("{error} {error:?}").contains(PASSWORD));
}

#[tokio::test]
async fn unsupported_scheme_reported() {
    let server = MockServer::with_queue(vec![
        Canned::new(401, "text/plain", "")
            .header("WWW-Authenticate", "Negotiate")
            .header("WWW-Authenticate", "NTLM"),
    ])
    .await;
    let h = harness(&server, basic(), no_jitter());
    let error = h.client.call(&get_inbox()).await.unwrap_err();
    let ClientError::Auth { source, .. } = &error else {
        panic!("expected Auth, got {error:?}");
    };
    let AuthError::UnsupportedSchemes { offered } = source else {
        panic!("expected UnsupportedSchemes, got {source:?}");
    };
    assert!(
        offered.contains("Negotiate") && offered.contains("NTLM"),
        "{offered}"
    );
}

#[tokio::test]
async fn slow_answer_times_out() {
    let mut slow = Canned::xml(200, get_folder_ok());
    slow.delay = Duration::from_secs(5);
    let server = MockServer::with_queue(vec![slow]).await;
    let client = EwsClient::builder(server.url(), "user1@example.test", basic())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let error = client.call(&get_inbox()).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Timeout {
                operation: "GetFolder",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn dropped_call_frees_its_slot() {
    let mut slow = Canned::xml(200, get_folder_ok());
    slow.delay = Duration::from_secs(5);
    let server = MockServer::with_queue(vec![slow, Canned::xml(200, get_folder_ok())]).await;
    let policy = BackoffPolicy {
        initial_concurrency: 1,
        ..no_jitter()
    };
    let h = harness(&server, basic(), policy);
    // Cancel the first call by dropping its future while the server stalls.
    let cancelled =
        tokio::time::timeout(Duration::from_millis(100), h.client.call(&get_inbox())).await;
    assert!(cancelled.is_err());
    // With a limit of one, the next call can only run if the slot was released.
    tokio::time::timeout(Duration::from_secs(5), h.client.call(&get_inbox()))
        .await
        .expect("the cancelled call kept its concurrency slot")
        .unwrap();
}

#[tokio::test]
async fn ntlm_handshake_on_one_connection() {
    let Some(text) = case("C23-www-authenticate-multi.txt") else {
        return;
    };
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with("WWW-Authenticate: NTLM TlRM"))
        .unwrap();
    let challenge = line
        .trim_start()
        .trim_start_matches("WWW-Authenticate: ")
        .to_owned();

    let server = MockServer::start(Box::new(move |seen| {
        let auth = seen.header("authorization").unwrap_or_default();
        if auth.starts_with("NTLM TlRMTVNTUAAB") {
            Canned::new(401, "text/plain", "")
                .header("WWW-Authenticate", &challenge)
                .header("WWW-Authenticate", "Negotiate")
        } else if auth.starts_with("NTLM TlRMTVNTUAAD") || auth.is_empty() {
            // The type-3 message, then requests on the authenticated connection.
            Canned::xml(200, get_folder_ok())
        } else {
            Canned::new(400, "text/plain", "unexpected Authorization")
        }
    }))
    .await;
    let credentials = Credentials::Ntlm {
        username: "EXAMPLE\\user1".into(),
        password: Secret::new(PASSWORD),
    };
    let h = harness(&server, credentials, no_jitter());
    h.client.call(&get_inbox()).await.unwrap();
    h.client.call(&get_inbox()).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests[0]
            .header("authorization")
            .unwrap()
            .starts_with("NTLM TlRMTVNTUAAB")
    );
    assert!(
        requests[1]
            .header("authorization")
            .unwrap()
            .starts_with("NTLM TlRMTVNTUAAD")
    );
    assert_eq!(requests[2].header("authorization"), None);
    // All three on one connection: NTLM authenticates the connection.
    assert_eq!(requests[0].peer, requests[1].peer);
    assert_eq!(requests[1].peer, requests[2].peer);
}

#[tokio::test]
async fn conflict_is_not_retried() {
    let Some(text) = case("C13-changekey-conflict.txt") else {
        return;
    };
    let start = text.find("<m:SendItemResponse>").unwrap();
    let end = text.find("</m:SendItemResponse>").unwrap() + "</m:SendItemResponse>".len();
    let body = envelope(&text[start..end]);
    let server = MockServer::with_queue(vec![Canned::xml(200, body)]).await;
    let h = harness(&server, basic(), no_jitter());
    let send = exmux_ews::ops::items::SendItem {
        item_ids: vec![ItemId {
            id: "AAMkAGV4L2l0ZW0vMDIwMQ==".into(),
            change_key: Some("EAAAAGNrMDAwM2NrMDAwMw==".into()),
        }],
        saved_folder: None,
        save_copy: true,
    };
    let response = h.client.call(&send).await.unwrap();
    let error = response.messages[0].as_ref().unwrap_err();
    assert!(error.is_conflict());
    // One request only: a stale ChangeKey is never sent again blindly.
    assert_eq!(server.requests().len(), 1);
    assert!(h.waits.lock().unwrap().is_empty());
}
