//! One HTTP/1.1 connection that the autodiscover client opens and keeps for the whole
//! NTLM or Negotiate handshake.
//!
//! NTLM over HTTP (MS-NTHT) authenticates the TCP connection, so the request
//! with the NEGOTIATE token, the `401` with the CHALLENGE, and the request with the
//! AUTHENTICATE token must share one connection. reqwest's pool gives no such promise:
//! it may open a new connection for the second request, or keep none idle.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderValue, USER_AGENT};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use reqwest::StatusCode;
use url::Url;

use exmux_core::Secret;
use exmux_core::http::{DEFAULT_USER_AGENT, ProxySetting};

/// The largest response body read, in bytes. Autodiscover responses are a few
/// kilobytes, and the bound keeps a misbehaving server from growing memory without limit.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// The parts of a request that every leg of a handshake repeats.
#[derive(Clone, Copy)]
pub(crate) struct OwnedRequest<'a> {
    pub(crate) method: &'a reqwest::Method,
    /// The URL connected to, whose path and query form the request target.
    pub(crate) physical: &'a Url,
    /// The `Host` header: the logical host, which differs from `physical` under a
    /// loopback map.
    pub(crate) host: &'a str,
    /// The content type and the body.
    pub(crate) body: Option<(&'static str, &'a str)>,
}

/// A response read in full from an owned connection.
pub(crate) struct OwnedResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// One connection the client owns, speaking HTTP/1.1.
pub(crate) struct OwnedConnection {
    sender: SendRequest<Full<Bytes>>,
}

impl OwnedConnection {
    /// Opens a connection to the host and port of `physical`, with TLS for `https`,
    /// through `proxy`'s tunnel when it applies.
    pub(crate) async fn open(
        physical: &Url,
        tls: Option<&Arc<rustls::ClientConfig>>,
        proxy: &ProxySetting,
        timeout: Duration,
    ) -> Result<Self, String> {
        let config = match tls {
            Some(config) => Arc::clone(config),
            None => platform_tls()?,
        };
        let stream = exmux_core::dial::dial(physical, proxy, &config, timeout)
            .await
            .map_err(|error| error.to_string())?;
        handshake_http1(TokioIo::new(stream)).await
    }

    /// Sends one request with the `Host` header `host` and reads the whole response,
    /// within `timeout`.
    pub(crate) async fn exchange(
        &mut self,
        request: &OwnedRequest<'_>,
        authorization: Option<&Secret>,
        timeout: Duration,
    ) -> Result<OwnedResponse, String> {
        let OwnedRequest {
            method,
            physical,
            host,
            body,
        } = *request;
        self.sender.ready().await.map_err(|error| {
            format!("the server closed the connection during the handshake: {error}")
        })?;

        let mut target = physical.path().to_owned();
        if let Some(query) = physical.query() {
            target.push('?');
            target.push_str(query);
        }
        let mut request = http::Request::builder().method(method.as_str()).uri(target);
        if let Some(headers) = request.headers_mut() {
            headers.insert(
                HOST,
                HeaderValue::from_str(host)
                    .map_err(|_| format!("the host {host:?} is not a valid Host header"))?,
            );
            headers.insert(USER_AGENT, HeaderValue::from_static(DEFAULT_USER_AGENT));
            if let Some((content_type, _)) = body {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
            if let Some(value) = authorization {
                let mut header = HeaderValue::from_str(value.expose())
                    .map_err(|_| "the Authorization value is not a valid header".to_owned())?;
                header.set_sensitive(true);
                headers.insert(AUTHORIZATION, header);
            }
        }
        let payload = body
            .map(|(_, text)| Bytes::copy_from_slice(text.as_bytes()))
            .unwrap_or_default();
        let request = request
            .body(Full::new(payload))
            .map_err(|error| format!("cannot build the HTTP request: {error}"))?;

        let timed_out = || format!("timed out after {} ms", timeout.as_millis());
        let exchange = async {
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|error| format!("the request failed: {error}"))?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut incoming = response.into_body();
            let mut body = Vec::new();
            while let Some(frame) = incoming.frame().await {
                let frame =
                    frame.map_err(|error| format!("reading the response failed: {error}"))?;
                if let Ok(data) = frame.into_data() {
                    if body.len().saturating_add(data.len()) > MAX_BODY {
                        return Err(format!(
                            "the response body exceeds the limit of {MAX_BODY} bytes"
                        ));
                    }
                    body.extend_from_slice(&data);
                }
            }
            Ok(OwnedResponse {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| timed_out())?
    }
}

async fn handshake_http1<T>(io: TokioIo<T>) -> Result<OwnedConnection, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|error| format!("the HTTP/1.1 handshake failed: {error}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "owned autodiscover connection ended");
        }
    });
    Ok(OwnedConnection { sender })
}

/// TLS settings that verify the server against the platform's roots.
fn platform_tls() -> Result<Arc<rustls::ClientConfig>, String> {
    exmux_core::http::HttpOptions::default()
        .tls_config()
        .map_err(|error| error.to_string())
}
