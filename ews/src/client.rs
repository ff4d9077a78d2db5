//! The EWS HTTP client: a thin async driver over the sans-I/O codec.
//!
//! [`EwsClient::call`] encodes an [`EwsOperation`], posts it with the mailbox's routing
//! header (`X-AnchorMailbox`) and credentials, decodes the response whatever its HTTP
//! status, and retries throttled calls through the mailbox's [`Throttle`]. On top of it:
//! [`EwsClient::call_batch`], which re-sends only the throttled ids of a batch, and the
//! paging loops in [`paging`].
//!
//! Rules the client keeps:
//! - A connection that carried a SOAP fault or a non-2xx answer is never reused, except
//!   the 401 inside an NTLM handshake, which is bound to its connection.
//! - HTTP 500 with no SOAP body and no `WWW-Authenticate` challenge is a server error
//!   scoped to the operation, remembered as "unsupported" for this client, and never an
//!   authentication failure.
//! - Secrets travel only in [`exmux_core::Secret`] and in headers marked sensitive; no
//!   log line or error carries one.
//!
//! Cancellation: drop the future of a call. An admitted request releases its place in
//! the mailbox's concurrency limit when dropped.

mod error;
pub mod notifications;
pub mod paging;
pub mod record;
mod streamed;
mod tls;
mod transport;

pub use error::ClientError;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use exmux_core::auth::{BoxFuture, Credentials};
use exmux_core::http::HttpOptions;
use exmux_core::{Clock, SystemClock};
use tracing::Instrument as _;
use url::Url;

use crate::error::{EwsError, MessageError, ThrottleHint};
use crate::operation::{EwsOperation, RequestHeader, Response, decode_response, encode_request};
use crate::throttle::{
    Admission, BackoffPolicy, RetryBudget, RetryDecision, Throttle, ThrottleSignal, ThrottleWait,
};

use record::Recorder;
use transport::{Outgoing, Transport};

/// Operations whose requests carry the server-affinity header and cookie, so that they
/// reach the mailbox server that owns the subscription.
const AFFINITY_OPERATIONS: &[&str] = &[
    "Subscribe",
    "GetEvents",
    "GetStreamingEvents",
    "Unsubscribe",
];

/// The wait primitive of the driver. The default sleeps on tokio's timer; tests pass one that
/// advances a `ManualClock` instead.
pub trait Sleeper: Send + Sync + fmt::Debug {
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()>;
}

/// A [`Sleeper`] on tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A response whose messages may carry throttling verdicts (ErrorServerBusy inside an
/// HTTP 200 response, as Exchange Online sends for SyncFolderItems and GetItem).
pub trait MessageOutcomes {
    /// Returns the number of response messages.
    fn message_count(&self) -> usize;

    /// Returns the error of each message that failed.
    fn message_errors(&self) -> Vec<&MessageError>;
}

impl<T> MessageOutcomes for Response<T> {
    fn message_count(&self) -> usize {
        self.messages.len()
    }

    fn message_errors(&self) -> Vec<&MessageError> {
        self.messages
            .iter()
            .filter_map(|message| message.as_ref().err())
            .collect()
    }
}

/// A callback called with every throttling wait, before the wait starts.
pub type WaitObserver = Arc<dyn Fn(&ThrottleWait) + Send + Sync>;

/// Settings of an [`EwsClient`].
pub struct EwsClientBuilder {
    url: String,
    mailbox: String,
    credentials: Credentials,
    header: RequestHeader,
    timeout: Duration,
    http: HttpOptions,
    max_body_bytes: usize,
    policy: BackoffPolicy,
    seed: u64,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    on_wait: Option<WaitObserver>,
    recorder: Option<Arc<dyn Recorder>>,
}

impl fmt::Debug for EwsClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EwsClientBuilder")
            .field("url", &self.url)
            .field("mailbox", &self.mailbox)
            .field("credentials", &self.credentials)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EwsClientBuilder {
    /// Sets the SOAP header values (RequestServerVersion, impersonation).
    pub fn request_header(mut self, header: RequestHeader) -> Self {
        self.header = header;
        self
    }

    /// Sets the time one request may take, body included. Streaming subscriptions are
    /// bounded by their connection timeout and heartbeat instead. Default 120 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the time to open a connection. Default 30 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.http.connect_timeout = timeout;
        self
    }

    /// Sets the HTTP and TLS options: the CA bundle (trusted in addition to the
    /// platform's roots, or alone with `ca_bundle_only`), the proxy, certificate
    /// verification, the connect timeout and the `User-Agent`. The CA bundle and the
    /// verification setting apply to owned NTLM and Negotiate connections as well as to
    /// the pool. `timeout` is not used: [`EwsClientBuilder::timeout`] bounds each call.
    /// The options replace an earlier [`EwsClientBuilder::connect_timeout`].
    pub fn http_options(mut self, options: HttpOptions) -> Self {
        self.http = options;
        self
    }

    /// Sets the largest response body read into memory, in bytes. Default 256 MiB.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Sets the retry policy for throttled calls.
    pub fn backoff_policy(mut self, policy: BackoffPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the seed of the jitter generator, so a run can be replayed.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the clock the scheduler reads.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets how the driver waits out a back-off.
    pub fn sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// Sets a callback called with each throttling wait.
    pub fn on_wait(mut self, observer: WaitObserver) -> Self {
        self.on_wait = Some(observer);
        self
    }

    /// Sets a recorder that receives every HTTP exchange, with secrets replaced (see
    /// [`record`]).
    pub fn recorder(mut self, recorder: Arc<dyn Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] when the URL is not an absolute http or https URL, the
    /// mailbox is empty, the CA bundle cannot be read or contains no certificate, the proxy
    /// URL is invalid or is combined with NTLM or Negotiate credentials, or the HTTP or
    /// TLS stack cannot be set up.
    pub fn build(self) -> Result<EwsClient, ClientError> {
        let url = Url::parse(&self.url).map_err(|error| ClientError::Config {
            reason: format!("invalid EWS URL {:?}: {error}", self.url),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::Config {
                reason: format!("the EWS URL must use http or https, not {}", url.scheme()),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ClientError::Config {
                reason: "the EWS URL must not carry credentials; configure them in [auth]"
                    .to_owned(),
            });
        }
        if self.mailbox.trim().is_empty() {
            return Err(ClientError::Config {
                reason: "the mailbox address is empty; set it to the SMTP address of the mailbox"
                    .to_owned(),
            });
        }

        let mut transport = Transport::new(url.clone(), self.credentials, self.http)?;
        transport.recorder = self.recorder;
        let throttle = Throttle::new(self.policy, self.seed);
        Ok(EwsClient {
            inner: Arc::new(Inner {
                url,
                mailbox: self.mailbox,
                header: self.header,
                timeout: self.timeout,
                max_body_bytes: self.max_body_bytes,
                transport,
                throttle: Mutex::new(throttle),
                capacity: tokio::sync::Notify::new(),
                clock: self.clock,
                sleeper: self.sleeper,
                on_wait: self.on_wait,
                unsupported: Mutex::new(HashMap::new()),
                next_request_id: AtomicU64::new(1),
            }),
        })
    }
}

/// An EWS client for one mailbox. Clones share connections, the throttling state and
/// the cache of unsupported operations.
#[derive(Clone)]
pub struct EwsClient {
    inner: Arc<Inner>,
}

struct Inner {
    url: Url,
    mailbox: String,
    header: RequestHeader,
    timeout: Duration,
    max_body_bytes: usize,
    transport: Transport,
    throttle: Mutex<Throttle>,
    capacity: tokio::sync::Notify,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    on_wait: Option<WaitObserver>,
    unsupported: Mutex<HashMap<&'static str, (u16, String)>>,
    next_request_id: AtomicU64,
}

impl fmt::Debug for EwsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EwsClient")
            .field("url", &self.inner.url.as_str())
            .field("mailbox", &self.inner.mailbox)
            .finish_non_exhaustive()
    }
}

/// The result of one exchange, before the retry decision.
enum Outcome<T> {
    Done(T),
    Throttled(ThrottleSignal),
}

impl EwsClient {
    /// Starts a client for `mailbox` at the EWS endpoint `url`
    /// (`https://host/EWS/Exchange.asmx`) with `credentials`.
    pub fn builder(
        url: impl Into<String>,
        mailbox: impl Into<String>,
        credentials: Credentials,
    ) -> EwsClientBuilder {
        EwsClientBuilder {
            url: url.into(),
            mailbox: mailbox.into(),
            credentials,
            header: RequestHeader::default(),
            timeout: Duration::from_secs(120),
            http: HttpOptions::default(),
            max_body_bytes: 256 * 1024 * 1024,
            policy: BackoffPolicy::default(),
            seed: 0x0065_786d_7578,
            clock: Arc::new(SystemClock),
            sleeper: Arc::new(TokioSleeper),
            on_wait: None,
            recorder: None,
        }
    }

    /// Returns the mailbox this client addresses.
    pub fn mailbox(&self) -> &str {
        &self.inner.mailbox
    }

    /// Returns the operations the server rejected as unsupported so far.
    pub fn unsupported_operations(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .inner
            .unsupported
            .lock()
            .map(|cache| cache.keys().copied().collect())
            .unwrap_or_default();
        names.sort_unstable();
        names
    }

    /// Returns whether the server's affinity cookie (`X-BackEndOverrideCookie`) is
    /// stored for subscription requests.
    pub fn has_affinity_cookie(&self) -> bool {
        self.inner.transport.has_affinity_cookie()
    }

    /// Returns the current concurrency limit of the mailbox's scheduler.
    pub fn concurrency_limit(&self) -> u32 {
        self.inner
            .throttle
            .lock()
            .map(|throttle| throttle.concurrency_limit())
            .unwrap_or(1)
    }

    /// Sends `op` and decodes its response, retrying while the server throttles.
    ///
    /// A throttling verdict (HTTP 503/429, a fault, or every response message
    /// throttled) pauses every request to the mailbox and retries the same request after
    /// the server's back-off. When only some messages of a batch are throttled, the
    /// others took effect, so the request is not repeated: the response is returned as
    /// it is and the mailbox is paused for later requests. [`EwsClient::call_batch`]
    /// re-sends only the throttled ids.
    ///
    /// # Errors
    ///
    /// [`ClientError::Ews`] for EWS errors (faults, error responses, malformed bodies),
    /// [`ClientError::Throttled`] past the retry policy, [`ClientError::Unsupported`]
    /// for an operation the server does not implement, [`ClientError::Auth`],
    /// [`ClientError::Timeout`], [`ClientError::Transport`], [`ClientError::Http`].
    pub async fn call<O>(&self, op: &O) -> Result<O::Response, ClientError>
    where
        O: EwsOperation,
        O::Response: MessageOutcomes,
    {
        let body = self.encode(op)?;
        let mut budget = RetryBudget::default();
        loop {
            match self.exchange::<O>(&body, true, None).await? {
                Outcome::Done(response) => return Ok(response),
                Outcome::Throttled(signal) => {
                    self.back_off(O::NAME, signal, &mut budget).await?;
                }
            }
        }
    }

    /// Sends a batch operation over `ids` and returns one result per id, re-sending only
    /// the ids whose response message was throttled, after the back-off.
    ///
    /// `build` makes the operation for a slice of ids. The response must contain one
    /// message per id in request order, as EWS response messages follow the order of
    /// the request's items.
    ///
    /// # Errors
    ///
    /// As [`EwsClient::call`]; per-id errors other than throttling stay in the returned
    /// results, so one failed item never hides the others.
    pub async fn call_batch<Id, O, T, F>(
        &self,
        ids: Vec<Id>,
        build: F,
    ) -> Result<Vec<(Id, Result<T, MessageError>)>, ClientError>
    where
        Id: Clone,
        O: EwsOperation<Response = Response<T>>,
        F: Fn(&[Id]) -> O,
    {
        let mut results: Vec<Option<Result<T, MessageError>>> = ids.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..ids.len()).collect();
        let mut budget = RetryBudget::default();

        while !pending.is_empty() {
            let batch: Vec<Id> = pending
                .iter()
                .filter_map(|index| ids.get(*index).cloned())
                .collect();
            let body = self.encode(&build(&batch))?;
            let response = match self.exchange::<O>(&body, false, None).await? {
                Outcome::Done(response) => response,
                Outcome::Throttled(signal) => {
                    self.back_off(O::NAME, signal, &mut budget).await?;
                    continue;
                }
            };

            let signal;
            (pending, signal) = settle_batch(pending, response.messages, &mut results);
            if pending.is_empty() {
                break;
            }
            tracing::debug!(
                operation = O::NAME,
                requeued = pending.len(),
                "re-queueing the throttled ids of a batch"
            );
            self.back_off(O::NAME, signal, &mut budget).await?;
        }

        Ok(ids
            .into_iter()
            .zip(results)
            .filter_map(|(id, result)| result.map(|result| (id, result)))
            .collect())
    }

    /// Opens a long-lived response (GetStreamingEvents) and returns its body as a
    /// stream of chunks once the server answers 200. Any other answer is decoded as for
    /// [`EwsClient::call`]: a throttling verdict is waited out and retried, and an EWS
    /// error is returned. The request waits out a mailbox pause but takes no place in
    /// the concurrency limit, since it stays open for up to 30 minutes.
    pub(crate) async fn open_stream<O>(&self, op: &O) -> Result<transport::BodyStream, ClientError>
    where
        O: EwsOperation,
        O::Response: MessageOutcomes,
    {
        let operation = O::NAME;
        let body = self.encode(op)?;
        let mut budget = RetryBudget::default();
        loop {
            let pause = self
                .inner
                .throttle
                .lock()
                .map(|throttle| throttle.pause_remaining(self.inner.clock.now()))
                .unwrap_or_default();
            if !pause.is_zero() {
                self.inner.sleeper.sleep(pause).await;
                continue;
            }

            let request = Outgoing {
                operation,
                body: body.clone(),
                mailbox: &self.inner.mailbox,
                affinity: AFFINITY_OPERATIONS.contains(&operation),
            };
            let transport = &self.inner.transport;
            let request_id = self.inner.next_request_id.fetch_add(1, Ordering::Relaxed);
            let span = tracing::debug_span!(
                "ews_stream",
                operation,
                request_id,
                mailbox = %self.inner.mailbox,
            );
            let mut reply = tokio::time::timeout(
                self.inner.timeout,
                transport.send(&request).instrument(span),
            )
            .await
            .unwrap_or(Err(ClientError::Timeout {
                operation,
                after: self.inner.timeout,
            }))?;
            tracing::debug!(operation, status = reply.status, "stream response");
            transport.remember_affinity(&reply.headers);
            if reply.status == 200 {
                return Ok(reply.take_body());
            }

            if let Some(signal) = ThrottleSignal::from_http(
                reply.status,
                reply
                    .headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok()),
                self.inner.clock.now(),
            ) {
                transport.discard_pooled_connections();
                self.back_off(operation, signal, &mut budget).await?;
                continue;
            }

            transport.discard_pooled_connections();
            let status = reply.status;
            let bytes = reply.collect(operation, self.inner.max_body_bytes).await?;
            let has_challenge = !reply.challenges().is_empty();
            let content_type = reply.content_type().map(str::to_owned);
            match decode_response::<O>(status, content_type.as_deref(), &bytes) {
                Ok(_) => {
                    return Err(ClientError::Http {
                        operation,
                        status,
                        snippet: snippet(&bytes),
                    });
                }
                Err(error) => {
                    if let Some(hint) = error.throttle_hint() {
                        self.back_off(operation, signal_from_error(&error, hint), &mut budget)
                            .await?;
                        continue;
                    }
                    return Err(self.classify(operation, status, has_challenge, &bytes, error));
                }
            }
        }
    }

    fn encode<O: EwsOperation>(&self, op: &O) -> Result<Bytes, ClientError> {
        encode_request(op, &self.inner.header)
            .map(Bytes::from)
            .map_err(|source| ClientError::Ews {
                operation: O::NAME,
                source,
            })
    }

    /// Waits out a throttling signal or gives up with the last error.
    async fn back_off(
        &self,
        operation: &'static str,
        signal: ThrottleSignal,
        budget: &mut RetryBudget,
    ) -> Result<(), ClientError> {
        let now = self.inner.clock.now();
        let decision = match self.inner.throttle.lock() {
            Ok(mut throttle) => throttle.on_throttled(operation, signal.clone(), budget, now),
            Err(_) => {
                return Err(ClientError::Config {
                    reason: "the throttling state lock is poisoned".to_owned(),
                });
            }
        };
        match decision {
            RetryDecision::Retry(wait) => {
                if let Some(observer) = &self.inner.on_wait {
                    observer(&wait);
                }
                Ok(())
            }
            RetryDecision::GiveUp {
                attempts, waited, ..
            } => Err(ClientError::Throttled {
                operation,
                signal,
                attempts,
                waited,
            }),
        }
    }

    /// Pauses the mailbox for a partly throttled batch that is not retried here.
    fn pause_for(&self, operation: &'static str, signal: ThrottleSignal) {
        let now = self.inner.clock.now();
        if let Ok(mut throttle) = self.inner.throttle.lock() {
            let mut fresh = RetryBudget::default();
            if let RetryDecision::Retry(wait) =
                throttle.on_throttled(operation, signal, &mut fresh, now)
                && let Some(observer) = &self.inner.on_wait
            {
                observer(&wait);
            }
        }
    }

    /// Waits until the scheduler admits a request to the mailbox.
    async fn admit(&self) -> Result<Permit<'_>, ClientError> {
        loop {
            let notified = self.inner.capacity.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let admission = self
                .inner
                .throttle
                .lock()
                .map(|mut throttle| throttle.admit(self.inner.clock.now()))
                .map_err(|_| ClientError::Config {
                    reason: "the throttling state lock is poisoned".to_owned(),
                })?;
            match admission {
                Admission::Go => {
                    return Ok(Permit {
                        inner: &self.inner,
                        throttled: false,
                    });
                }
                Admission::WaitFor(delay) => self.inner.sleeper.sleep(delay).await,
                Admission::AtCapacity => notified.await,
            }
        }
    }

    /// Runs one request under the scheduler and classifies the answer. With `framing`,
    /// the list elements of the body go to its callback as they arrive, and the rest of
    /// the body is decoded as the response.
    async fn exchange<O>(
        &self,
        body: &Bytes,
        pause_partial: bool,
        framing: Option<&mut streamed::Framing<'_>>,
    ) -> Result<Outcome<O::Response>, ClientError>
    where
        O: EwsOperation,
        O::Response: MessageOutcomes,
    {
        let operation = O::NAME;
        if let Some((status, snippet)) = self
            .inner
            .unsupported
            .lock()
            .ok()
            .and_then(|cache| cache.get(operation).cloned())
        {
            return Err(ClientError::Unsupported {
                operation,
                status,
                snippet,
            });
        }

        let mut permit = self.admit().await?;
        let request_id = self.inner.next_request_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!(
            "ews_request",
            operation,
            request_id,
            mailbox = %self.inner.mailbox,
            status = tracing::field::Empty,
        );
        let timeout = self.inner.timeout;
        let result = tokio::time::timeout(
            timeout,
            self.exchange_inner::<O>(body, pause_partial, framing)
                .instrument(span),
        )
        .await
        .unwrap_or(Err(ClientError::Timeout {
            operation,
            after: timeout,
        }));
        if matches!(result, Ok(Outcome::Throttled(_))) {
            permit.throttled = true;
        }
        result
    }

    async fn exchange_inner<O>(
        &self,
        body: &Bytes,
        pause_partial: bool,
        framing: Option<&mut streamed::Framing<'_>>,
    ) -> Result<Outcome<O::Response>, ClientError>
    where
        O: EwsOperation,
        O::Response: MessageOutcomes,
    {
        let operation = O::NAME;
        let transport = &self.inner.transport;
        let request = Outgoing {
            operation,
            body: body.clone(),
            mailbox: &self.inner.mailbox,
            affinity: AFFINITY_OPERATIONS.contains(&operation),
        };

        let mut reply = transport.send(&request).await?;
        tracing::Span::current().record("status", reply.status);
        tracing::debug!(status = reply.status, "EWS response");
        if request.affinity {
            transport.remember_affinity(&reply.headers);
        }

        let status = reply.status;
        if let Some(signal) = ThrottleSignal::from_http(
            status,
            reply
                .headers
                .get(http::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok()),
            self.inner.clock.now(),
        ) {
            transport.discard_pooled_connections();
            return Ok(Outcome::Throttled(signal));
        }

        // Without framing the whole body is read into memory (up to max_body_bytes)
        // before parsing. The `*_streamed` calls and GetStreamingEvents parse it as it
        // arrives.
        let limit = self.inner.max_body_bytes;
        let bytes = match framing {
            None => reply.collect(operation, limit).await?,
            Some(framing) => framing.read(&mut reply, operation, limit).await?,
        };
        let content_type = reply.content_type().map(str::to_owned);
        let has_challenge = !reply.challenges().is_empty();
        let decoded = decode_response::<O>(status, content_type.as_deref(), &bytes);

        let faulted = matches!(decoded, Err(EwsError::Fault(_)));
        if (200..300).contains(&status) && !faulted {
            reply.keep_connection();
        } else {
            transport.discard_pooled_connections();
        }

        match decoded {
            Ok(response) => {
                let throttled: Vec<&MessageError> = response
                    .message_errors()
                    .into_iter()
                    .filter(|error| error.throttle_hint().is_some())
                    .collect();
                let Some(signal) = strongest_signal(&throttled) else {
                    return Ok(Outcome::Done(response));
                };
                if throttled.len() == response.message_count() {
                    return Ok(Outcome::Throttled(signal));
                }
                // Part of the batch took effect: pause the mailbox, return the rest.
                if pause_partial {
                    self.pause_for(operation, signal);
                }
                Ok(Outcome::Done(response))
            }
            Err(error) => {
                if let Some(hint) = error.throttle_hint() {
                    let signal = signal_from_error(&error, hint);
                    tracing::debug!(%error, "throttled by the server");
                    return Ok(Outcome::Throttled(signal));
                }
                Err(self.classify(operation, status, has_challenge, &bytes, error))
            }
        }
    }

    /// Turns a decode error into the client's error, caching operations the server
    /// does not implement.
    fn classify(
        &self,
        operation: &'static str,
        status: u16,
        has_challenge: bool,
        body: &[u8],
        error: EwsError,
    ) -> ClientError {
        let EwsError::NotXml { .. } = error else {
            return ClientError::Ews {
                operation,
                source: error,
            };
        };
        let snippet = snippet(body);

        if status == 500 && !has_challenge {
            tracing::warn!(
                operation,
                status,
                "HTTP 500 without SOAP or a challenge: marking the operation unsupported"
            );
            if let Ok(mut cache) = self.inner.unsupported.lock() {
                cache.insert(operation, (status, snippet.clone()));
            }
            return ClientError::Unsupported {
                operation,
                status,
                snippet,
            };
        }
        if (200..300).contains(&status) {
            return ClientError::Ews {
                operation,
                source: error,
            };
        }
        ClientError::Http {
            operation,
            status,
            snippet,
        }
    }
}

/// A place in the mailbox's concurrency limit, released on drop.
struct Permit<'a> {
    inner: &'a Inner,
    throttled: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Ok(mut throttle) = self.inner.throttle.lock() {
            throttle.release(self.throttled);
        }
        self.inner.capacity.notify_waiters();
    }
}

fn signal_from_error(error: &EwsError, hint: ThrottleHint) -> ThrottleSignal {
    let code = error
        .response_code()
        .map(|code| code.as_str().to_owned())
        .unwrap_or_default();
    let text = match error {
        EwsError::Fault(fault) => fault.message.clone().or(Some(fault.faultstring.clone())),
        EwsError::Message { error, .. } => error.text.clone(),
        _ => None,
    };
    signal_from_parts(&code, hint, text.as_deref())
}

/// Returns the signal with the longest hint among throttled messages.
fn strongest_signal(throttled: &[&MessageError]) -> Option<ThrottleSignal> {
    throttled
        .iter()
        .map(|error| signal_from_message(error))
        .max_by_key(|signal| signal.hint())
}

fn signal_from_message(error: &MessageError) -> ThrottleSignal {
    let hint = error.throttle_hint().unwrap_or(ThrottleHint {
        back_off_millis: None,
        lower_concurrency: false,
    });
    signal_from_parts(error.code.as_str(), hint, error.text.as_deref())
}

fn signal_from_parts(code: &str, hint: ThrottleHint, text: Option<&str>) -> ThrottleSignal {
    let back_off = hint.back_off_millis.map(Duration::from_millis);
    // The codec already resolved an inner ErrorServerBusy; pass it as the inner code.
    ThrottleSignal::from_response_code(code, Some("ErrorServerBusy"), back_off, text).unwrap_or(
        ThrottleSignal::ServerBusy {
            back_off,
            concurrency_limit: None,
        },
    )
}

/// Returns the start of a non-EWS body, for an error message.
fn snippet(body: &[u8]) -> String {
    let end = body.len().min(200);
    let text = String::from_utf8_lossy(body.get(..end).unwrap_or_default());
    text.trim().to_owned()
}

/// Pairs a batch's response messages with the ids of `pending`, in request order, and
/// stores each result in `results`. Returns the ids to send again (throttled ones, and
/// ones the server sent no message for) and the back-off signal for them.
pub(crate) fn settle_batch<T>(
    pending: Vec<usize>,
    messages: Vec<Result<T, MessageError>>,
    results: &mut [Option<Result<T, MessageError>>],
) -> (Vec<usize>, ThrottleSignal) {
    let mut requeue = Vec::new();
    let mut throttled = Vec::new();
    let mut messages = messages.into_iter();
    for index in pending {
        match messages.next() {
            Some(Err(error)) if error.throttle_hint().is_some() => {
                throttled.push(error);
                requeue.push(index);
            }
            Some(result) => {
                if let Some(slot) = results.get_mut(index) {
                    *slot = Some(result);
                }
            }
            None => requeue.push(index),
        }
    }
    let throttled: Vec<&MessageError> = throttled.iter().collect();
    let signal = strongest_signal(&throttled).unwrap_or(ThrottleSignal::ServerBusy {
        back_off: None,
        concurrency_limit: None,
    });
    (requeue, signal)
}
