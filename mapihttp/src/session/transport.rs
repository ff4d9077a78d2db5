//! One HTTP exchange of the session client: a POST with the MAPI/HTTP headers and the
//! credentials, and the whole response body, read with a silence timeout that the
//! PROCESSING and PENDING keep-alives reset (MS-OXCMAPIHTTP 2.2.7).

use std::time::Duration;

use futures_util::StreamExt;
use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use exmux_core::Secret;
use exmux_core::auth::{self, AuthError, Credentials};

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
                    return Err(rejected(operation, "the bearer token"));
                }
                Ok(answer)
            }
            // NOTE: NTLM and Negotiate need a connection the client owns (the handshake
            // is bound to it), as the EWS client does with hyper; the MAPI session does
            // not run that handshake yet and refuses these credentials.
            _ => Err(SessionError::Usage {
                operation,
                reason: "the MAPI/HTTP session supports Basic and bearer credentials; NTLM and Negotiate are not implemented for MAPI yet, use the EWS backend or another [auth] method".to_owned(),
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
        let response = self
            .client
            .post(&self.url)
            .headers(headers)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|error| SessionError::Transport {
                operation,
                reason: describe(&error),
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
                reason: describe(&error),
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
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

fn rejected(operation: &'static str, username: &str) -> SessionError {
    SessionError::Auth {
        operation,
        source: AuthError::Rejected {
            username: username.to_owned(),
        },
    }
}

/// Describes a reqwest error with its causes. reqwest names the URL, which carries no
/// credentials here (they travel in headers).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
