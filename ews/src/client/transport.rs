//! The HTTP exchange under the client: one POST with the EWS headers and credentials.
//! Basic and Bearer go over reqwest's pool, NTLM and Negotiate over connections the
//! client owns. A connection that carried a SOAP fault or a non-2xx response is never
//! used again.

use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue, SET_COOKIE};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use url::Url;

use exmux_core::Secret;
use exmux_core::auth::{self, AuthError, AuthScheme, Credentials, NtlmHandshake};
use exmux_core::http::HttpOptions;

use super::error::ClientError;
use super::record::{self, PendingExchange, Recorder};
use super::tls;

/// A response body as a stream of chunks.
pub(crate) type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// The name of the cookie that pins subscription requests to one mailbox server.
pub(crate) const AFFINITY_COOKIE: &str = "X-BackEndOverrideCookie";

/// One HTTP response whose body has not been read yet.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: BodyStream,
    lease: Option<ConnectionLease>,
}

impl Reply {
    /// Returns the `Content-Type` header.
    pub(crate) fn content_type(&self) -> Option<&str> {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
    }

    /// Returns every `WWW-Authenticate` value.
    pub(crate) fn challenges(&self) -> Vec<&str> {
        self.headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect()
    }

    /// Reads the whole body, failing past `limit` bytes.
    pub(crate) async fn collect(
        &mut self,
        operation: &'static str,
        limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.body.next().await {
            let chunk = chunk.map_err(|reason| ClientError::Transport { operation, reason })?;
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(ClientError::BodyTooLarge { operation, limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Takes the body stream out. An owned connection stays with the stream and
    /// closes when it is dropped.
    pub(crate) fn take_body(self) -> BodyStream {
        let Reply { body, lease, .. } = self;
        match lease {
            None => body,
            Some(lease) => Box::pin(body.map(move |chunk| {
                let _connection = &lease;
                chunk
            })),
        }
    }

    /// Returns an owned connection to its pool for the next request. Without this call
    /// the connection closes when the reply is dropped.
    pub(crate) fn keep_connection(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.keep();
        }
    }
}

/// The request headers that the client sets on top of the body.
pub(crate) struct Outgoing<'a> {
    pub(crate) operation: &'static str,
    pub(crate) body: Bytes,
    pub(crate) mailbox: &'a str,
    pub(crate) affinity: bool,
}

/// The HTTP layer: credentials, cookies and connections.
#[derive(Debug)]
pub(crate) struct Transport {
    url: Url,
    credentials: Credentials,
    options: HttpOptions,
    pool: RwLock<reqwest::Client>,
    owned: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
    affinity_cookie: Mutex<Option<Secret>>,
    /// The TLS configuration of owned connections, which speak only HTTP/1.1.
    tls: Arc<rustls::ClientConfig>,
    /// The TLS configuration each rebuilt pool starts from, so a rebuild does not read
    /// the CA bundle again.
    pool_tls: rustls::ClientConfig,
    /// Receives every exchange when set (see `record`).
    pub(crate) recorder: Option<Arc<dyn Recorder>>,
}

impl Transport {
    /// Sets up the pool and the TLS configuration from `options`. Its `timeout` is not
    /// used: the client bounds each call itself.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] for an unreadable CA bundle or an invalid proxy URL.
    pub(crate) fn new(
        url: Url,
        credentials: Credentials,
        options: HttpOptions,
    ) -> Result<Self, ClientError> {
        let pool_tls = tls::client_config(&options)?;
        let pool = tls::build_pool(&options, &pool_tls)?;
        let mut owned_tls = pool_tls.clone();
        owned_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            url,
            credentials,
            options,
            pool: RwLock::new(pool),
            owned: Arc::new(Mutex::new(Vec::new())),
            affinity_cookie: Mutex::new(None),
            tls: Arc::new(owned_tls),
            pool_tls,
            recorder: None,
        })
    }

    /// Replaces reqwest's connection pool, so no later request reuses a connection that
    /// carried a SOAP fault or a non-2xx response. One server sent a second, stale 200
    /// after a fault on the same connection, so a keep-alive client read every later
    /// response one request late. Other pooled connections close with the old pool.
    pub(crate) fn discard_pooled_connections(&self) {
        match tls::build_pool(&self.options, &self.pool_tls) {
            Ok(fresh) => {
                if let Ok(mut pool) = self.pool.write() {
                    *pool = fresh;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not rebuild the HTTP connection pool");
            }
        }
    }

    /// Stores the affinity cookie from a `Set-Cookie` of `headers`, if there is one.
    pub(crate) fn remember_affinity(&self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default().trim();
            let Some((name, cookie)) = pair.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case(AFFINITY_COOKIE) {
                tracing::debug!("stored the server affinity cookie");
                if let Ok(mut slot) = self.affinity_cookie.lock() {
                    *slot = Some(Secret::new(cookie.trim()));
                }
            }
        }
    }

    /// Returns whether an affinity cookie is stored.
    pub(crate) fn has_affinity_cookie(&self) -> bool {
        self.affinity_cookie
            .lock()
            .map(|slot| slot.is_some())
            .unwrap_or(false)
    }

    /// Sends one request with credentials, running the authentication the credentials
    /// need: one token refresh on 401 for Bearer, the three-message handshake for NTLM.
    pub(crate) async fn send(&self, request: &Outgoing<'_>) -> Result<Reply, ClientError> {
        match &self.credentials {
            Credentials::Basic { username, password } => {
                let authorization = auth::basic_header(username, password);
                let reply = self.send_pooled(request, Some(&authorization)).await?;
                if reply.status == 401 {
                    self.discard_pooled_connections();
                    return Err(self.rejected(request.operation, &reply, username));
                }
                Ok(reply)
            }
            Credentials::Bearer(provider) => {
                let token = provider
                    .access_token()
                    .await
                    .map_err(|source| ClientError::Auth {
                        operation: request.operation,
                        source,
                    })?;
                let reply = self
                    .send_pooled(request, Some(&auth::bearer_header(&token)))
                    .await?;
                if reply.status != 401 {
                    return Ok(reply);
                }
                drop(reply);
                self.discard_pooled_connections();

                tracing::debug!(
                    operation = request.operation,
                    "bearer token rejected: refreshing once"
                );
                provider.invalidate(&token);
                let fresh = provider
                    .access_token()
                    .await
                    .map_err(|source| ClientError::Auth {
                        operation: request.operation,
                        source,
                    })?;
                let reply = self
                    .send_pooled(request, Some(&auth::bearer_header(&fresh)))
                    .await?;
                if reply.status == 401 {
                    self.discard_pooled_connections();
                    return Err(self.rejected_token(request.operation, &reply));
                }
                Ok(reply)
            }
            Credentials::Ntlm { username, .. } | Credentials::Negotiate { username, .. } => {
                self.send_owned(request, username).await
            }
            _ => Err(ClientError::Config {
                reason: "these credentials are not supported by the EWS client".to_owned(),
            }),
        }
    }

    fn rejected(&self, operation: &'static str, reply: &Reply, username: &str) -> ClientError {
        let challenges = auth::parse_challenges(reply.challenges()).unwrap_or_default();
        let offered = auth::challenge::offered_list(&challenges);
        let source = if challenges.is_empty()
            || auth::choose_challenge(&challenges, &self.credentials).is_ok()
        {
            AuthError::Rejected {
                username: username.to_owned(),
            }
        } else {
            AuthError::UnsupportedSchemes { offered }
        };
        ClientError::Auth { operation, source }
    }

    /// Builds the error for a bearer token rejected twice, or for a server that offers
    /// no Bearer scheme at all.
    fn rejected_token(&self, operation: &'static str, reply: &Reply) -> ClientError {
        let challenges = auth::parse_challenges(reply.challenges()).unwrap_or_default();
        let source = if challenges.is_empty()
            || auth::choose_challenge(&challenges, &self.credentials).is_ok()
        {
            AuthError::TokenRejected
        } else {
            AuthError::UnsupportedSchemes {
                offered: auth::challenge::offered_list(&challenges),
            }
        };
        ClientError::Auth { operation, source }
    }

    fn headers(&self, request: &Outgoing<'_>) -> Result<HeaderMap, ClientError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        let action = format!(
            "\"http://schemas.microsoft.com/exchange/services/2006/messages/{}\"",
            request.operation
        );
        headers.insert("SOAPAction", header_value(request.operation, &action)?);
        headers.insert(
            "X-AnchorMailbox",
            header_value(request.operation, request.mailbox)?,
        );
        headers.insert(
            http::header::USER_AGENT,
            header_value(request.operation, &self.options.user_agent)?,
        );

        if request.affinity {
            headers.insert("X-PreferServerAffinity", HeaderValue::from_static("true"));
            let cookie = self
                .affinity_cookie
                .lock()
                .ok()
                .and_then(|slot| slot.clone());
            if let Some(cookie) = cookie {
                let mut value = header_value(
                    request.operation,
                    &format!("{AFFINITY_COOKIE}={}", cookie.expose()),
                )?;
                value.set_sensitive(true);
                headers.insert(COOKIE, value);
            }
        }
        Ok(headers)
    }

    async fn send_pooled(
        &self,
        request: &Outgoing<'_>,
        authorization: Option<&Secret>,
    ) -> Result<Reply, ClientError> {
        let operation = request.operation;
        let client =
            self.pool
                .read()
                .map(|pool| pool.clone())
                .map_err(|_| ClientError::Config {
                    reason: "the HTTP pool lock is poisoned".to_owned(),
                })?;
        let mut headers = self.headers(request)?;
        if let Some(authorization) = authorization {
            let mut value = header_value(operation, authorization.expose())?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }

        let pending = PendingExchange::begin(
            self.recorder.as_ref(),
            operation,
            &self.url,
            &headers,
            &request.body,
        );
        let response = match client
            .post(self.url.clone())
            .headers(headers)
            .body(request.body.clone())
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                record::failed(pending);
                return Err(ClientError::Transport {
                    operation,
                    reason: exmux_core::http::describe_error(&error),
                });
            }
        };

        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|error| exmux_core::http::describe_error(&error)));
        Ok(Reply {
            status,
            body: record::respond(pending, status, &headers, Box::pin(body)),
            headers,
            lease: None,
        })
    }

    /// Sends over an authenticated connection the client owns, running the NTLM or
    /// Negotiate handshake on a new one when none is idle (MS-NTHT 3.2.5).
    async fn send_owned(
        &self,
        request: &Outgoing<'_>,
        username: &str,
    ) -> Result<Reply, ClientError> {
        let operation = request.operation;
        let idle = self.owned.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(mut sender) = idle
            && sender.ready().await.is_ok()
        {
            let reply = self.exchange(&mut sender, request, None).await?;
            if reply.status != 401 {
                return Ok(self.lease(reply, sender));
            }
            // The server forgot the connection's authentication: start over on a new one.
            tracing::debug!(operation, "owned connection lost its authentication");
        }

        let mut sender = self.connect(operation).await?;
        let scheme = match &self.credentials {
            Credentials::Negotiate { .. } => AuthScheme::Negotiate,
            _ => AuthScheme::Ntlm,
        };
        let mut handshake = NtlmHandshake::from_credentials(scheme, &self.credentials)
            .map_err(|source| ClientError::Auth { operation, source })?;

        let negotiate = handshake
            .negotiate_header()
            .map_err(|source| ClientError::Auth { operation, source })?;
        let reply = self
            .exchange(&mut sender, request, Some(&negotiate))
            .await?;
        if reply.status != 401 {
            // The server did not ask for the handshake (anonymous access, or a proxy).
            return Ok(self.lease(reply, sender));
        }

        let challenges = auth::parse_challenges(reply.challenges())
            .map_err(|source| ClientError::Auth { operation, source })?;
        if !challenges
            .iter()
            .any(|challenge| challenge.known_scheme() == Some(scheme))
        {
            return Err(ClientError::Auth {
                operation,
                source: AuthError::UnsupportedSchemes {
                    offered: auth::challenge::offered_list(&challenges),
                },
            });
        }
        // The handshake's 401 is the one non-2xx response after which the connection
        // stays open: the challenge is bound to it. Its body must be read first.
        let mut reply = reply;
        reply.collect(operation, 64 * 1024).await?;
        sender
            .ready()
            .await
            .map_err(|error| ClientError::Transport {
                operation,
                reason: format!(
                    "the server closed the connection during the NTLM handshake: {error}"
                ),
            })?;

        let authenticate = handshake
            .authenticate_header(&challenges)
            .map_err(|source| ClientError::Auth { operation, source })?;
        let reply = self
            .exchange(&mut sender, request, Some(&authenticate))
            .await?;
        if reply.status == 401 {
            return Err(ClientError::Auth {
                operation,
                source: AuthError::Rejected {
                    username: username.to_owned(),
                },
            });
        }
        Ok(self.lease(reply, sender))
    }

    fn lease(&self, mut reply: Reply, sender: SendRequest<Full<Bytes>>) -> Reply {
        reply.lease = Some(ConnectionLease {
            sender,
            pool: Arc::clone(&self.owned),
        });
        reply
    }

    async fn exchange(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        request: &Outgoing<'_>,
        authorization: Option<&Secret>,
    ) -> Result<Reply, ClientError> {
        let operation = request.operation;
        let mut headers = self.headers(request)?;
        if let Some(authorization) = authorization {
            let mut value = header_value(operation, authorization.expose())?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let host = self.url.host_str().unwrap_or_default();
        let authority = match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        headers.insert(http::header::HOST, header_value(operation, &authority)?);

        let pending = PendingExchange::begin(
            self.recorder.as_ref(),
            operation,
            &self.url,
            &headers,
            &request.body,
        );
        let mut builder = http::Request::post(&self.url[url::Position::BeforePath..]);
        if let Some(map) = builder.headers_mut() {
            *map = headers;
        }
        let http_request = builder
            .body(Full::new(request.body.clone()))
            .map_err(|error| ClientError::Config {
                reason: format!("cannot build the HTTP request: {error}"),
            })?;

        let response = match sender.send_request(http_request).await {
            Ok(response) => response,
            Err(error) => {
                record::failed(pending);
                return Err(ClientError::Transport {
                    operation,
                    reason: error.to_string(),
                });
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().into_data_stream();
        let body = body.map(|chunk| chunk.map_err(|error| error.to_string()));
        Ok(Reply {
            status,
            body: record::respond(pending, status, &headers, Box::pin(body)),
            headers,
            lease: None,
        })
    }

    /// Opens an owned connection, through the configured proxy's tunnel when one
    /// applies (`exmux_core::dial`).
    async fn connect(
        &self,
        operation: &'static str,
    ) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let stream = exmux_core::dial::dial(
            &self.url,
            &self.options.proxy,
            &self.tls,
            self.options.connect_timeout,
        )
        .await
        .map_err(|error| ClientError::Transport {
            operation,
            reason: error.to_string(),
        })?;
        handshake_http1(TokioIo::new(stream), operation).await
    }
}

async fn handshake_http1<T>(
    io: TokioIo<T>,
    operation: &'static str,
) -> Result<SendRequest<Full<Bytes>>, ClientError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|error| ClientError::Transport {
                operation,
                reason: format!("HTTP/1.1 handshake failed: {error}"),
            })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "owned EWS connection ended");
        }
    });
    Ok(sender)
}

/// An owned connection in use by one reply.
struct ConnectionLease {
    sender: SendRequest<Full<Bytes>>,
    pool: Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>,
}

impl ConnectionLease {
    fn keep(self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(self.sender);
        }
    }
}

fn header_value(operation: &'static str, value: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(value).map_err(|_| ClientError::Config {
        reason: format!("{operation}: a header value contains characters HTTP does not allow"),
    })
}
