//! The autodiscover client against loopback servers: the emulator's responses for the
//! successful forms, and small handlers for each failure. Every candidate host is mapped
//! to 127.0.0.1, so no test resolves or contacts a real domain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use exmux_autodiscover::srv::BoxFuture;
use exmux_autodiscover::{
    Autodiscover, AutodiscoverOptions, DiscoverError, LoopbackMap, Method, Protocol, SrvRecord,
    SrvResolver,
};
use exmux_core::Secret;
use exmux_core::auth::Credentials;
use exmux_emulator::autodiscover::{AutodiscoverConfig, AutodiscoverMailbox, Redirect};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use url::Url;

type Handler = Arc<dyn Fn(&Request<Bytes>) -> Response<Bytes> + Send + Sync>;

/// Starts a loopback HTTP/1.1 server that responds through `handler` after `delay`.
async fn serve(handler: Handler, delay: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let bytes = body
                            .collect()
                            .await
                            .map(|body| body.to_bytes())
                            .unwrap_or_default();
                        tokio::time::sleep(delay).await;
                        let response = handler(&Request::from_parts(parts, bytes));
                        Ok::<_, Infallible>(response.map(Full::new))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

fn mailbox(base: &str) -> AutodiscoverMailbox {
    AutodiscoverMailbox {
        address: "user1@example.test".to_owned(),
        display_name: "User One".to_owned(),
        legacy_dn:
            "/o=Emulator/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=user1"
                .to_owned(),
        ews_url: format!("{base}/EWS/Exchange.asmx"),
        emsmdb_url: format!(
            "{base}/mapi/emsmdb/?MailboxId=6f1c2d3e-0000-0000-0000-000000000001@example.test"
        ),
        nspi_url: format!(
            "{base}/mapi/nspi/?MailboxId=6f1c2d3e-0000-0000-0000-000000000001@example.test"
        ),
        deployment_id: "00000000-0000-0000-0000-000000000001".to_owned(),
    }
}

fn status(code: StatusCode) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = code;
    response
}

fn redirect(code: StatusCode, location: &str) -> Response<Bytes> {
    let mut response = status(code);
    response
        .headers_mut()
        .insert(http::header::LOCATION, location.parse().unwrap());
    response
}

fn xml(body: String) -> Response<Bytes> {
    Response::new(Bytes::from(body))
}

fn host_of(request: &Request<Bytes>) -> String {
    request
        .headers()
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn basic_ok(request: &Request<Bytes>) -> bool {
    let expected = exmux_core::auth::basic_header("user1@example.test", &Secret::new("pw"));
    request
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == expected.expose().as_bytes())
}

/// Serves the emulator's responses for the hosts in `hosts` and paths with `path_part`,
/// requiring Basic for POX and SOAP, and 404 elsewhere.
fn emulator_handler(
    config: AutodiscoverConfig,
    hosts: &'static [&'static str],
    path_part: &'static str,
) -> Handler {
    Arc::new(move |request| {
        let host = host_of(request);
        let path = request.uri().path().to_ascii_lowercase();
        if !hosts.contains(&host.as_str()) || !path.contains(path_part) {
            return status(StatusCode::NOT_FOUND);
        }
        let anonymous = path.contains("autodiscover.json");
        if !anonymous && !basic_ok(request) {
            let mut response = status(StatusCode::UNAUTHORIZED);
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                "Basic realm=\"example.test\"".parse().unwrap(),
            );
            return response;
        }
        exmux_emulator::autodiscover::handle(request, &config)
            .unwrap_or_else(|| status(StatusCode::NOT_FOUND))
    })
}

#[derive(Debug)]
struct FakeResolver(Vec<SrvRecord>);

impl SrvResolver for FakeResolver {
    fn lookup_srv<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<SrvRecord>, String>> {
        let records = if name == "_autodiscover._tcp.example.test" {
            self.0.clone()
        } else {
            Vec::new()
        };
        Box::pin(async move { Ok(records) })
    }
}

fn options(address: SocketAddr, hosts: &[&str]) -> AutodiscoverOptions {
    let base = Url::parse(&format!("http://{address}")).unwrap();
    let mut map = LoopbackMap::new();
    for host in hosts {
        map.insert(host, base.clone());
    }
    AutodiscoverOptions {
        credentials: Some(Credentials::Basic {
            username: "user1@example.test".to_owned(),
            password: Secret::new("pw"),
        }),
        resolver: Arc::new(FakeResolver(Vec::new())),
        loopback: Some(map),
        request_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(20),
        ..AutodiscoverOptions::default()
    }
}

const ALL_HOSTS: [&str; 4] = [
    "example.test",
    "autodiscover.example.test",
    "mail.example.test",
    "mail.other.test",
];

fn client(options: AutodiscoverOptions) -> Autodiscover {
    let http = exmux_core::http::HttpOptions::default()
        .build_client()
        .unwrap();
    Autodiscover::new(http, options)
}

fn failures(error: &DiscoverError) -> Vec<String> {
    error
        .attempts()
        .iter()
        .filter_map(|attempt| attempt.failure.clone())
        .collect()
}

#[tokio::test]
async fn pox_on_domain_returns_all_settings() {
    let config = AutodiscoverConfig::new(mailbox("https://mail.example.test"));
    let server = serve(
        emulator_handler(config, &["example.test"], "autodiscover.xml"),
        Duration::ZERO,
    )
    .await;
    let found = client(options(server, &ALL_HOSTS))
        .discover("user1@example.test")
        .await
        .unwrap();

    assert_eq!(found.source.method, Method::PoxDomain);
    assert_eq!(
        found.source.url,
        "https://example.test/autodiscover/autodiscover.xml"
    );
    assert_eq!(
        found.settings.ews_url.as_deref(),
        Some("https://mail.example.test/EWS/Exchange.asmx")
    );
    assert_eq!(
        found.settings.mapi_emsmdb_url.as_deref(),
        Some(
            "https://mail.example.test/mapi/emsmdb/?MailboxId=6f1c2d3e-0000-0000-0000-000000000001@example.test"
        )
    );
    assert!(
        found
            .settings
            .mapi_nspi_url
            .as_deref()
            .unwrap()
            .contains("/mapi/nspi/")
    );
    assert_eq!(
        found.mailbox_id.as_deref(),
        Some("6f1c2d3e-0000-0000-0000-000000000001@example.test")
    );
    assert!(
        found
            .settings
            .legacy_dn
            .as_deref()
            .unwrap()
            .ends_with("/cn=Recipients/cn=user1")
    );
    assert_eq!(found.settings.display_name.as_deref(), Some("User One"));
    assert!(found.settings.protocols.contains(&Protocol::Ews));
    assert!(found.settings.protocols.contains(&Protocol::MapiHttp));
    assert_eq!(found.attempts.len(), 1);

    let json = serde_json::to_value(&found).unwrap();
    assert_eq!(
        json["ews_url"],
        "https://mail.example.test/EWS/Exchange.asmx"
    );
    assert_eq!(json["source"]["method"], "pox-domain");
}

#[tokio::test]
async fn falls_through_to_autodiscover_host() {
    let config = AutodiscoverConfig::new(mailbox("https://mail.example.test"));
    let server = serve(
        emulator_handler(config, &["autodiscover.example.test"], "autodiscover.xml"),
        Duration::ZERO,
    )
    .await;
    let found = client(options(server, &ALL_HOSTS))
        .discover("user1@example.test")
        .await
        .unwrap();

    assert_eq!(found.source.method, Method::PoxAutodiscoverHost);
    assert_eq!(found.attempts.len(), 2);
    assert_eq!(
        found.attempts[0].failure.as_deref(),
        Some("HTTP 404 Not Found")
    );
}

#[tokio::test]
async fn http_redirect_method_leads_to_https_pox() {
    let config = AutodiscoverConfig::new(mailbox("https://mail.example.test"));
    let inner = emulator_handler(config, &["mail.example.test"], "autodiscover.xml");
    let handler: Handler = Arc::new(move |request| {
        if request.method() == http::Method::GET && host_of(request) == "autodiscover.example.test"
        {
            return redirect(
                StatusCode::FOUND,
                "https://mail.example.test/autodiscover/autodiscover.xml",
            );
        }
        inner(request)
    });
    let server = serve(handler, Duration::ZERO).await;
    let found = client(options(server, &ALL_HOSTS))
        .discover("user1@example.test")
        .await
        .unwrap();

    assert_eq!(found.source.method, Method::HttpRedirect);
    assert_eq!(
        found.source.url,
        "https://mail.example.test/autodiscover/autodiscover.xml"
    );
    assert_eq!(
        found.source.redirects,
        ["https://mail.example.test/autodiscover/autodiscover.xml"]
    );
}

#[tokio::test]
async fn http_redirect_to_plain_http_is_refused() {
    let handler: Handler = Arc::new(|request| {
        if request.method() == http::Method::GET {
            return redirect(
                StatusCode::FOUND,
                "http://mail.example.test/autodiscover/autodiscover.xml",
            );
        }
        status(StatusCode::NOT_FOUND)
    });
    let server = serve(handler, Duration::ZERO).await;
    let error = client(options(server, &ALL_HOSTS))
        .discover("user1@example.test")
        .await
        .unwrap_err();
    assert!(
        failures(&error)
            .iter()
            .any(|reason| reason.contains("refused the redirect to plain HTTP")),
        "{error}"
    );
}

#[tokio::test]
async fn srv_record_names_the_server() {
    let config = AutodiscoverConfig::new(mailbox("https://mail.example.test"));
    let server = serve(
        emulator_handler(config, &["mail.example.test:8443"], "autodiscover.xml"),
        Duration::ZERO,
    )
    .await;
    let mut options = options(server, &ALL_HOSTS);
    options.resolver = Arc::new(FakeResolver(vec![SrvRecord {
        priority: 0,
        weight: 0,
        port: 8443,
        target: "mail.example.test".to_owned(),
    }]));
    let found = client(options)
        .discover("user1@example.test")
        .await
        .unwrap();

    assert_eq!(found.source.method, Method::DnsSrv);
    assert_eq!(
        found.source.url,
        "https://mail.example.test:8443/autodiscover/autodiscover.xml"
    );
}

#[tokio::test]
async fn soap_get_user_settings() {
    let config = AutodiscoverConfig::new(mailbox("https://mail.example.test"));
    let server = serve(
        emulator_handler(config, &["autodiscover.example.test"], "autodiscover.svc"),
        Duration::ZERO,
    )
    .await;
    let found = client(options(server, &ALL_HOSTS))
        .discover("user1@example.test")
        .await
        .unwrap();

    assert_eq!(found.source.method, Method::Soap);
    assert_eq!(
        found.settings.ews_url.as_deref(),
        Some("https://mail.example.test/EWS/Exchange.asmx")
    );
    assert!(found.settings.legacy_dn.is_some());
    assert!(found.settings.protocols.contains(&Protocol::MapiHttp));
    assert!(found.settings.mapi_emsmdb_url.is_none());
}

#[tokio::test]
async fn json_v2_per_protocol() {
    let config = AutodiscoverConfig::new(mailbox("https://mail.example.test"));
    let server = serve(
        emulator_handler(config, &["example.test"], "autodiscover.json"),
        Duration::ZERO,
    )
    .await;
    let found = client(options(server, &ALL_HOSTS))
        .discover("user1@example.test")
        .await
        .unwrap();

    assert_eq!(found.source.method, Method::JsonV2);
    assert_eq!(
        found.settings.ews_url.as_deref(),
        Some("https://mail.example.test/EWS/Exchange.asmx")
    );
    assert!(
        found
            .settings
            .mapi_emsmdb_url
            .as_deref()
            .unwrap()
            .contains("/mapi/emsmdb/?MailboxId=")
    );
    assert!(
        found
            .settings
            .mapi_nspi_url
            .as_deref()
            .unwrap()
            .contains("/mapi/nspi/?MailboxId=")
    );
    assert_eq!(
        found.mailbox_id.as_deref(),
        Some("6f1c2d3e-0000-0000-0000-000000000001@example.test")
    );
}

#[tokio::test]
async fn not_found_lists_every_attempt() {
    let server = serve(Arc::new(|_| status(StatusCode::NOT_FOUND)), Duration::ZERO).await;
    let error = client(options(server, &ALL_HOSTS))
        .discover("user1@example.test")
        .await
        .unwrap_err();

    let methods: Vec<Method> = error
        .attempts()
        .iter()
        .map(|attempt| attempt.method)
        .collect();
    for method in Method::DEFAULT_ORDER {
        assert!(
            methods.contains(&method),
            "{method} missing from {methods:?}"
        );
    }
    assert!(
        error
            .attempts()
            .iter()
            .all(|attempt| attempt.failure.is_some())
    );
    let message = error.to_string();
    assert!(message.contains("no SRV record"), "{message}");
    assert!(message.contains("HTTP 404"), "{message}");
}

#[tokio::test]
async fn redirect_loop_is_detected() {
    let handler: Handler = Arc::new(|request| {
        let target = if request.uri().path().starts_with("/a/") {
            "/b/"
        } else {
            "/a/"
        };
        let body = format!(
            "<Autodiscover><Response><Account><Action>redirectUrl</Action><RedirectUrl>https://example.test{target}autodiscover/autodiscover.xml</RedirectUrl></Account></Response></Autodiscover>"
        );
        xml(body)
    });
    let server = serve(handler, Duration::ZERO).await;
    let mut options = options(server, &ALL_HOSTS);
    options.methods = vec![Method::PoxDomain];
    let error = client(options)
        .discover("user1@example.test")
        .await
        .unwrap_err();
    assert!(
        failures(&error)
            .iter()
            .any(|reason| reason.contains("redirect loop")),
        "{error}"
    );
}

#[tokio::test]
async fn redirect_count_is_bounded() {
    let counter = Arc::new(AtomicUsize::new(0));
    let seen = counter.clone();
    let handler: Handler = Arc::new(move |_| {
        let next = seen.fetch_add(1, Ordering::SeqCst);
        redirect(
            StatusCode::FOUND,
            &format!("https://example.test/hop{next}/autodiscover/autodiscover.xml"),
        )
    });
    let server = serve(handler, Duration::ZERO).await;
    let mut options = options(server, &ALL_HOSTS);
    options.methods = vec![Method::PoxDomain];
    options.max_redirects = 3;
    let error = client(options)
        .discover("user1@example.test")
        .await
        .unwrap_err();

    assert!(
        failures(&error)
            .iter()
            .any(|reason| reason.contains("more than 3 redirects")),
        "{error}"
    );
    assert_eq!(counter.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn redirect_to_other_domain_needs_confirmation() {
    let config = AutodiscoverConfig::new(mailbox("https://mail.other.test"));
    let inner = emulator_handler(config, &["mail.other.test"], "autodiscover.xml");
    let handler: Handler = Arc::new(move |request| {
        if host_of(request) == "example.test" {
            return redirect(
                StatusCode::FOUND,
                "https://mail.other.test/autodiscover/autodiscover.xml",
            );
        }
        inner(request)
    });
    let server = serve(handler, Duration::ZERO).await;

    let mut refused = options(server, &ALL_HOSTS);
    refused.methods = vec![Method::PoxDomain];
    let error = client(refused)
        .discover("user1@example.test")
        .await
        .unwrap_err();
    assert!(
        failures(&error)
            .iter()
            .any(|reason| reason.contains("outside example.test")),
        "{error}"
    );

    let asked = Arc::new(Mutex::new(Vec::new()));
    let record = asked.clone();
    let mut approved = options(server, &ALL_HOSTS);
    approved.methods = vec![Method::PoxDomain];
    approved.confirm_redirect = Some(Arc::new(move |question| {
        record.lock().unwrap().push(question.host.clone());
        true
    }));
    let found = client(approved)
        .discover("user1@example.test")
        .await
        .unwrap();
    assert_eq!(
        found.source.url,
        "https://mail.other.test/autodiscover/autodiscover.xml"
    );
    assert_eq!(*asked.lock().unwrap(), ["mail.other.test"]);
}

#[tokio::test]
async fn redirect_url_to_plain_http_is_refused() {
    let handler: Handler = Arc::new(|_| {
        xml("<Autodiscover><Response><Account><Action>redirectUrl</Action><RedirectUrl>http://example.test/autodiscover/autodiscover.xml</RedirectUrl></Account></Response></Autodiscover>".to_owned())
    });
    let server = serve(handler, Duration::ZERO).await;
    let mut options = options(server, &ALL_HOSTS);
    options.methods = vec![Method::PoxDomain];
    let error = client(options)
        .discover("user1@example.test")
        .await
        .unwrap_err();
    assert!(
        failures(&error)
            .iter()
            .any(|reason| reason.contains("refused to send credentials over plain HTTP")),
        "{error}"
    );
}

#[tokio::test]
async fn redirect_addr_restarts_with_new_address() {
    let mut config = AutodiscoverConfig::new(mailbox("https://mail.example.test"));
    config.redirects.push((
        "alias@example.test".to_owned(),
        Redirect::Address("user1@example.test".to_owned()),
    ));
    let server = serve(
        emulator_handler(config, &["example.test"], "autodiscover.xml"),
        Duration::ZERO,
    )
    .await;
    let found = client(options(server, &ALL_HOSTS))
        .discover("alias@example.test")
        .await
        .unwrap();

    assert_eq!(found.address, "alias@example.test");
    assert_eq!(found.effective_address, "user1@example.test");
    assert_eq!(found.source.redirects, ["mailto:user1@example.test"]);
}

#[tokio::test]
async fn malformed_xml_and_json_are_reported() {
    let handler: Handler = Arc::new(|request| {
        if request.uri().path().contains("autodiscover.json") {
            return Response::new(Bytes::from_static(b"{\"Protocol\": \"EWS\", \"Url\""));
        }
        xml("<Autodiscover><Response><Account>".to_owned())
    });
    let server = serve(handler, Duration::ZERO).await;
    let mut options = options(server, &ALL_HOSTS);
    options.methods = vec![Method::PoxDomain, Method::Soap, Method::JsonV2];
    let error = client(options)
        .discover("user1@example.test")
        .await
        .unwrap_err();
    let reasons = failures(&error);
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("ends before its root element closes")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("malformed JSON")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn slow_server_times_out() {
    let server = serve(
        Arc::new(|_| status(StatusCode::NOT_FOUND)),
        Duration::from_secs(10),
    )
    .await;
    let mut options = options(server, &ALL_HOSTS);
    options.request_timeout = Duration::from_millis(200);
    options.deadline = Duration::from_millis(700);
    let started = std::time::Instant::now();
    let error = client(options)
        .discover("user1@example.test")
        .await
        .unwrap_err();

    assert!(
        failures(&error)
            .iter()
            .any(|reason| reason.contains("timed out")),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn unsupported_scheme_names_offers() {
    let handler: Handler = Arc::new(|_| {
        let mut response = status(StatusCode::UNAUTHORIZED);
        response
            .headers_mut()
            .append(http::header::WWW_AUTHENTICATE, "Negotiate".parse().unwrap());
        response.headers_mut().append(
            http::header::WWW_AUTHENTICATE,
            "Basic realm=\"example.test\"".parse().unwrap(),
        );
        response
    });
    let server = serve(handler, Duration::ZERO).await;
    let mut options = options(server, &ALL_HOSTS);
    options.methods = vec![Method::PoxDomain];
    options.credentials = Some(Credentials::Ntlm {
        username: "EXAMPLE\\user1".to_owned(),
        password: Secret::new("pw"),
    });
    let error = client(options)
        .discover("user1@example.test")
        .await
        .unwrap_err();
    assert!(
        failures(&error)
            .iter()
            .any(|reason| reason.contains("unsupported auth schemes (offered: Negotiate, Basic)")),
        "{error}"
    );
}

#[tokio::test]
async fn unmapped_host_is_never_contacted() {
    let server = serve(Arc::new(|_| status(StatusCode::NOT_FOUND)), Duration::ZERO).await;
    let error = client(options(server, &[]))
        .discover("user1@example.test")
        .await
        .unwrap_err();
    assert!(
        failures(&error)
            .iter()
            .any(|reason| reason.contains("not in the loopback map")),
        "{error}"
    );
}

#[tokio::test]
async fn invalid_address_is_rejected() {
    let server = serve(Arc::new(|_| status(StatusCode::NOT_FOUND)), Duration::ZERO).await;
    for address in ["user1", "@example.test", "user1@", "user1@exa/mple.test"] {
        let error = client(options(server, &ALL_HOSTS))
            .discover(address)
            .await
            .unwrap_err();
        assert!(
            matches!(error, DiscoverError::InvalidAddress { .. }),
            "{address}"
        );
    }
}

#[tokio::test]
async fn loopback_map_skips_system_dns() {
    // Nothing listens on this address; the SRV step must stop before any request.
    let address: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let mut options = options(address, &ALL_HOSTS);
    options.resolver = Arc::new(exmux_autodiscover::srv::SystemResolver);
    options.methods = vec![Method::DnsSrv];
    let error = client(options)
        .discover("user1@example.test")
        .await
        .unwrap_err();
    let failures = failures(&error);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].starts_with("skipped"), "{failures:?}");
}
