//! One HTTP exchange of the session client: a POST with the MAPI/HTTP headers and the
//! credentials, and the whole response body, read with a silence timeout that the
//! PROCESSING and PENDING keep-alives reset (MS-OXCMAPIHTTP 2.2.7).
//!
//! Basic and bearer requests go over reqwest's pool. NTLM and Negotiate authenticate a
//! connection rather than a request (MS-NTHT 3.2.5), so they go over HTTP/1.1
//! connections the client owns: a sequenced request and a parked NotificationWait each
//! take an idle authenticated connection, or run the handshake on a new one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::StatusCode;
use http::header::{AUTHORIZATION, HOST, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use exmux_core::Secret;
use exmux_core::auth::{self, AuthError, AuthScheme, Credentials, NtlmHandshake};

use super::error::SessionError;

/// A response whose body was read completely.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// The HTTP layer: one reqwest client (TLS verified unless the caller built it
/// otherwise) and the credentials.
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) url: String,
    pub(crate) credentials: Credentials,
    pub(crate) client: reqwest::Client,
    pub(crate) body_limit: usize,
    /// Idle authenticated connections for NTLM and Negotiate.
    pub(crate) owned: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    /// TLS settings of owned connections; `None` uses the platform's roots.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// The proxy owned connections tunnel through, when it applies to the URL.
    pub(crate) proxy: exmux_core::http::ProxySetting,
    /// Receives every exchange when set (see `record`).
    pub(crate) recorder: Option<Arc<dyn super::record::Recorder>>,
}

impl Transport {
    /// Sends one POST. Basic and bearer credentials go in the Authorization header; a
    /// bearer token rejected with 401 is refreshed once.
    pub(crate) async fn post(
        &self,
        operation: &'static str,
        headers: HeaderMap,
        body: Vec<u8>,
        silence: Duration,
    ) -> Result<Answer, SessionError> {
        match &self.credentials {
            Credentials::Basic { username, password } => {
                let authorization = auth::basic_header(username, password);
                let answer = self
                    .send(operation, &headers, &body, Some(&authorization), silence)
                    .await?;
                if answer.status == StatusCode::UNAUTHORIZED {
                    return Err(rejected(operation, username));
                }
                Ok(answer)
            }
            Credentials::Bearer(provider) => {
                let token = provider
                    .access_token()
                    .await
                    .map_err(|source| SessionError::Auth { operation, source })?;
                let answer = self
                    .send(
                        operation,
                        &headers,
                        &body,
                        Some(&auth::bearer_header(&token)),
                        silence,
                    )
                    .await?;
                if answer.status != StatusCode::UNAUTHORIZED {
                    return Ok(answer);
                }
                tracing::debug!(operation, "bearer token rejected: refreshing once");
                provider.invalidate(&token);
                let fresh = provider
                    .access_token()
                    .await
                    .map_err(|source| SessionError::Auth { operation, source })?;
                let answer = self
                    .send(
                        operation,
                        &headers,
                        &body,
                        Some(&auth::bearer_header(&fresh)),
                        silence,
                    )
                    .await?;
                if answer.status == StatusCode::UNAUTHORIZED {
                    return Err(SessionError::Auth {
                        operation,
                        source: AuthError::TokenRejected,
                    });
                }
                Ok(answer)
            }
            Credentials::Ntlm { username, .. } | Credentials::Negotiate { username, .. } => {
                self.post_owned(operation, &headers, &body, silence, username)
                    .await
            }
            _ => Err(SessionError::Usage {
                operation,
                reason: "these credentials are not supported by the MAPI/HTTP session; use Basic, NTLM, Negotiate or a bearer token".to_owned(),
            }),
        }
    }

    async fn send(
        &self,
        operation: &'static str,
        headers: &HeaderMap,
        body: &[u8],
        authorization: Option<&Secret>,
        silence: Duration,
    ) -> Result<Answer, SessionError> {
        let mut headers = headers.clone();
        if let Some(authorization) = authorization {
            let mut value =
                HeaderValue::from_str(authorization.expose()).map_err(|_| SessionError::Usage {
                    operation,
                    reason: "the credentials contain characters an HTTP header cannot carry"
                        .to_owned(),
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let sent = self.recorder.as_ref().map(|_| headers.clone());
        let request_body = body;
        let response = self
            .client
            .post(&self.url)
            .headers(headers)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|error| {
                self.record_exchange(operation, sent.as_ref(), request_body, None);
                SessionError::Transport {
                    operation,
                    reason: exmux_core::http::describe_error(&error),
                }
            })?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut stream = response.bytes_stream();
        let mut body = Vec::new();
        loop {
            let next = tokio::time::timeout(silence, stream.next())
                .await
                .map_err(|_| SessionError::Transport {
                    operation,
                    reason: format!(
                        "no data and no keep-alive for {} s; the connection is considered dead",
                        silence.as_secs()
                    ),
                })?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|error| SessionError::Transport {
                operation,
                reason: exmux_core::http::describe_error(&error),
            })?;
            if body.len().saturating_add(chunk.len()) > self.body_limit {
                return Err(SessionError::Protocol {
                    operation,
                    reason: format!(
                        "response body exceeds the limit of {} bytes",
                        self.body_limit
                    ),
                });
            }
            body.extend_from_slice(&chunk);
        }
        self.record_exchange(
            operation,
            sent.as_ref(),
            request_body,
            Some((status.as_u16(), &headers, &body)),
        );
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

impl Transport {
    /// Sends over an authenticated connection the client owns, running the NTLM or
    /// Negotiate handshake on a new connection when none is idle.
    async fn post_owned(
        &self,
        operation: &'static str,
        headers: &HeaderMap,
        body: &[u8],
        silence: Duration,
        username: &str,
    ) -> Result<Answer, SessionError> {
        let idle = self.owned.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(mut sender) = idle
            && sender.ready().await.is_ok()
        {
            let answer = self
                .exchange(&mut sender, operation, headers, body, None, silence)
                .await?;
            if answer.status != StatusCode::UNAUTHORIZED {
                self.keep(sender);
                return Ok(answer);
            }
            tracing::debug!(operation, "owned connection lost its authentication");
        }

        let mut sender = self.connect(operation).await?;
        let scheme = match &self.credentials {
            Credentials::Negotiate { .. } => AuthScheme::Negotiate,
            _ => AuthScheme::Ntlm,
        };
        let auth_error = |source| SessionError::Auth { operation, source };
        let mut handshake =
            NtlmHandshake::from_credentials(scheme, &self.credentials).map_err(auth_error)?;
        let negotiate = handshake.negotiate_header().map_err(auth_error)?;
        let answer = self
            .exchange(
                &mut sender,
                operation,
                headers,
                body,
                Some(&negotiate),
                silence,
            )
            .await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            // The server did not ask for the handshake (anonymous access or a proxy).
            self.keep(sender);
            return Ok(answer);
        }

        let values: Vec<&str> = answer
            .headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let challenges = auth::parse_challenges(values).map_err(auth_error)?;
        if !challenges.iter().any(|c| c.known_scheme() == Some(scheme)) {
            return Err(auth_error(AuthError::UnsupportedSchemes {
                offered: auth::challenge::offered_list(&challenges),
            }));
        }
        sender
            .ready()
            .await
            .map_err(|error| SessionError::Transport {
                operation,
                reason: format!(
                    "the server closed the connection during the NTLM handshake: {error}"
                ),
            })?;
        let authenticate = handshake
            .authenticate_header(&challenges)
            .map_err(auth_error)?;
        let answer = self
            .exchange(
                &mut sender,
                operation,
                headers,
                body,
                Some(&authenticate),
                silence,
            )
            .await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            return Err(rejected(operation, username));
        }
        self.keep(sender);
        Ok(answer)
    }

    fn keep(&self, sender: SendRequest<Full<Bytes>>) {
        if let Ok(mut idle) = self.owned.lock() {
            idle.push(sender);
        }
    }

    async fn exchange(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        operation: &'static str,
        headers: &HeaderMap,
        body: &[u8],
        authorization: Option<&Secret>,
        silence: Duration,
    ) -> Result<Answer, SessionError> {
        let url = self.parsed_url(operation)?;
        let mut headers = headers.clone();
        if let Some(authorization) = authorization {
            headers.insert(AUTHORIZATION, sensitive(operation, authorization)?);
        }
        let host = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let authority = HeaderValue::from_str(&authority).map_err(|_| SessionError::Usage {
            operation,
            reason: format!("the MAPI URL's host `{authority}` is not a valid Host header"),
        })?;
        headers.insert(HOST, authority);
        let mut target = url.path().to_owned();
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        let sent = self.recorder.as_ref().map(|_| headers.clone());
        let request_body = body;
        let mut builder = http::Request::post(target);
        if let Some(map) = builder.headers_mut() {
            *map = headers;
        }
        let request = builder
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|error| SessionError::Usage {
                operation,
                reason: format!("cannot build the HTTP request: {error}"),
            })?;
        let response = sender.send_request(request).await.map_err(|error| {
            self.record_exchange(operation, sent.as_ref(), request_body, None);
            SessionError::Transport {
                operation,
                reason: error.to_string(),
            }
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut incoming = response.into_body();
        let mut body = Vec::new();
        loop {
            let frame = tokio::time::timeout(silence, incoming.frame())
                .await
                .map_err(|_| SessionError::Transport {
                    operation,
                    reason: format!(
                        "no data and no keep-alive for {} s; the connection is considered dead",
                        silence.as_secs()
                    ),
                })?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|error| SessionError::Transport {
                operation,
                reason: error.to_string(),
            })?;
            if let Ok(data) = frame.into_data() {
                if body.len().saturating_add(data.len()) > self.body_limit {
                    return Err(SessionError::Protocol {
                        operation,
                        reason: format!(
                            "response body exceeds the limit of {} bytes",
                            self.body_limit
                        ),
                    });
                }
                body.extend_from_slice(&data);
            }
        }
        self.record_exchange(
            operation,
            sent.as_ref(),
            request_body,
            Some((status.as_u16(), &headers, &body)),
        );
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    fn parsed_url(&self, operation: &'static str) -> Result<reqwest::Url, SessionError> {
        reqwest::Url::parse(&self.url).map_err(|error| SessionError::Usage {
            operation,
            reason: format!("the MAPI URL is invalid ({error}); check mapi_url"),
        })
    }

    async fn connect(
        &self,
        operation: &'static str,
    ) -> Result<SendRequest<Full<Bytes>>, SessionError> {
        let url = self.parsed_url(operation)?;
        let config = match &self.tls {
            Some(config) => Arc::clone(config),
            None => platform_tls(operation)?,
        };
        let stream = exmux_core::dial::dial(&url, &self.proxy, &config, Duration::from_secs(30))
            .await
            .map_err(|error| SessionError::Transport {
                operation,
                reason: error.to_string(),
            })?;
        handshake_http1(TokioIo::new(stream), operation).await
    }
}

async fn handshake_http1<T>(
    io: TokioIo<T>,
    operation: &'static str,
) -> Result<SendRequest<Full<Bytes>>, SessionError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|error| SessionError::Transport {
                operation,
                reason: format!("HTTP/1.1 handshake failed: {error}"),
            })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "owned MAPI/HTTP connection ended");
        }
    });
    Ok(sender)
}

/// TLS settings that verify the server against the platform's roots, for a session
/// whose `SessionConfig::owned_tls` is unset; the router always sets it from `[http]`.
fn platform_tls(operation: &'static str) -> Result<Arc<rustls::ClientConfig>, SessionError> {
    exmux_core::http::HttpOptions::default()
        .tls_config()
        .map_err(|error| SessionError::Usage {
            operation,
            reason: error.to_string(),
        })
}

fn sensitive(operation: &'static str, secret: &Secret) -> Result<HeaderValue, SessionError> {
    let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| SessionError::Usage {
        operation,
        reason: "the credentials contain characters an HTTP header cannot carry".to_owned(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn rejected(operation: &'static str, username: &str) -> SessionError {
    SessionError::Auth {
        operation,
        source: AuthError::Rejected {
            username: username.to_owned(),
        },
    }
}
