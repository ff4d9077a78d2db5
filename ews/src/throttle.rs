//! One back-off scheduler for every throttling shape Exchange sends.
//!
//! Exchange throttles in several shapes that a client must treat alike:
//!
//! - HTTP 503 or 429 with a `Retry-After` header (seconds or an HTTP date);
//! - an HTTP 500 SOAP fault `ErrorServerBusy` whose detail carries
//!   `<t:Value Name="BackOffMilliseconds">` in `MessageXml`;
//! - `ErrorServerBusy` inside an ordinary HTTP 200 response message (Exchange Online
//!   returns it for SyncFolderItems and GetItem under its ConcurrentSyncCalls policy);
//! - `ErrorInternalServerError` whose inner error is `ErrorServerBusy`;
//! - `ErrorExceededConnectionCount` and `ErrorTooManyObjectsOpened`, which ask for fewer
//!   requests in parallel and may come with a back-off of 0 or none at all.
//!
//! The caller turns each shape into a [`ThrottleSignal`]. The [`Throttle`] scheduler keeps
//! one pause and one concurrency limit per mailbox, so a hint received by one request
//! holds back every other request to the same mailbox. It is sans-I/O: it takes the
//! current time as an argument and says when the next request may go; the async driver
//! does the sleeping. Jitter comes from a seeded generator, so a test replays the same
//! delays.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A throttling verdict from the server, in a shape-independent form.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThrottleSignal {
    /// HTTP 503 or 429, with the delay from `Retry-After` when the server sent one.
    HttpStatus {
        /// The HTTP status (503 or 429).
        status: u16,
        /// The delay that `Retry-After` asked for.
        retry_after: Option<Duration>,
    },
    /// `ErrorServerBusy`, as a SOAP fault, inside a response message, or as the inner
    /// error of `ErrorInternalServerError`.
    ServerBusy {
        /// `BackOffMilliseconds` from `MessageXml`, or the "Suggested backoff time"
        /// from the message text.
        back_off: Option<Duration>,
        /// The policy value of a concurrency budget (ConcurrentSyncCalls and the like)
        /// named in the message text, which is the number of calls the server allows in
        /// parallel.
        concurrency_limit: Option<u32>,
    },
    /// `ErrorExceededConnectionCount` or `ErrorTooManyObjectsOpened`: too many requests or
    /// open objects at once.
    TooManyConcurrent {
        /// The response code as the server sent it.
        code: String,
        /// The back-off the server asked for; Exchange sends 0 or nothing here.
        back_off: Option<Duration>,
    },
}

impl ThrottleSignal {
    /// Returns the delay that the server asked for, if any.
    pub fn hint(&self) -> Option<Duration> {
        match self {
            Self::HttpStatus { retry_after, .. } => *retry_after,
            Self::ServerBusy { back_off, .. } | Self::TooManyConcurrent { back_off, .. } => {
                *back_off
            }
        }
    }

    /// Returns the signal for an EWS response code and its back-off, or `None` when the
    /// code is not a throttling code.
    ///
    /// `inner_code` is the inner error of `ErrorInternalServerError`, which Exchange uses
    /// to wrap `ErrorServerBusy`. Surrounding whitespace in codes is ignored, because
    /// real servers send it.
    pub fn from_response_code(
        code: &str,
        inner_code: Option<&str>,
        back_off: Option<Duration>,
        message_text: Option<&str>,
    ) -> Option<Self> {
        let code = code.trim();
        let busy = code == "ErrorServerBusy"
            || (code == "ErrorInternalServerError"
                && inner_code.is_some_and(|inner| inner.trim() == "ErrorServerBusy"));
        if busy {
            let back_off = back_off.or_else(|| message_text.and_then(suggested_back_off));
            let concurrency_limit = message_text.and_then(concurrency_policy_value);
            return Some(Self::ServerBusy {
                back_off,
                concurrency_limit,
            });
        }

        if code == "ErrorExceededConnectionCount" || code == "ErrorTooManyObjectsOpened" {
            return Some(Self::TooManyConcurrent {
                code: code.to_owned(),
                back_off,
            });
        }

        None
    }

    /// Returns the signal for an HTTP status, or `None` unless it is 503 or 429.
    ///
    /// `retry_after` is the raw `Retry-After` header; a value that parses neither as
    /// seconds nor as an HTTP date counts as absent.
    pub fn from_http(status: u16, retry_after: Option<&str>, now: SystemTime) -> Option<Self> {
        if status != 503 && status != 429 {
            return None;
        }
        Some(Self::HttpStatus {
            status,
            retry_after: retry_after.and_then(|value| parse_retry_after(value, now)),
        })
    }
}

impl fmt::Display for ThrottleSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HttpStatus { status, .. } => write!(f, "HTTP {status}"),
            Self::ServerBusy { .. } => f.write_str("ErrorServerBusy"),
            Self::TooManyConcurrent { code, .. } => f.write_str(code),
        }
    }
}

/// Parses "Suggested backoff time 5000 ms" out of an Exchange message text.
pub fn suggested_back_off(message_text: &str) -> Option<Duration> {
    let rest = after_ignoring_case(message_text, "suggested backoff time")?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse::<u64>().ok().map(Duration::from_millis)
}

/// Parses the value of "policy value '5'" from an Exchange message text when the policy
/// part limits concurrency (its name starts with "Concurrent").
pub fn concurrency_policy_value(message_text: &str) -> Option<u32> {
    let part = after_ignoring_case(message_text, "policy part '")?;
    if !part.to_ascii_lowercase().starts_with("concurrent") {
        return None;
    }
    let value = after_ignoring_case(part, "policy value '")?;
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u32>().ok().filter(|limit| *limit > 0)
}

fn after_ignoring_case<'a>(haystack: &'a str, needle: &str) -> Option<&'a str> {
    let position = haystack.to_ascii_lowercase().find(needle)?;
    haystack.get(position + needle.len()..)
}

/// Parses a `Retry-After` value: delay-seconds or an IMF-fixdate (RFC 9110 section 10.2.3).
/// A date in the past gives a zero delay.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }

    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let date = time::PrimitiveDateTime::parse(value, &format).ok()?;
    let at = SystemTime::from(date.assume_utc());
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Limits of the back-off scheduler.
#[derive(Clone, Debug)]
pub struct BackoffPolicy {
    /// The delay used when the server gives no hint, doubled on each further attempt.
    pub base_delay: Duration,
    /// The ceiling of the doubled delay when there is no hint. A server hint may exceed
    /// it, since Exchange Online requests several minutes.
    pub max_unhinted_delay: Duration,
    /// The jitter added on top of each delay, as a fraction of it (0.2 adds up to 20%).
    /// The server's hint is a minimum, so jitter never shortens it.
    pub jitter: f64,
    /// The maximum total time one call may spend waiting for retries. A call whose next
    /// wait would pass it fails with the throttling error instead.
    pub max_total_wait: Duration,
    /// The maximum number of retries of one call.
    pub max_retries: u32,
    /// The number of requests allowed in parallel before any throttling.
    pub initial_concurrency: u32,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_secs(1),
            max_unhinted_delay: Duration::from_secs(60),
            jitter: 0.2,
            // Exchange Online hints of about 5 minutes are normal for FindItem paging, so
            // the cap allows two of them.
            max_total_wait: Duration::from_secs(15 * 60),
            max_retries: 8,
            initial_concurrency: 8,
        }
    }
}

/// One wait that the scheduler decided on, reported through tracing and to the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottleWait {
    /// The EWS operation that was throttled.
    pub operation: String,
    /// The server's signal.
    pub signal: ThrottleSignal,
    /// The retry number this wait precedes, starting at 1.
    pub attempt: u32,
    /// How long the mailbox is paused from now, jitter included.
    pub delay: Duration,
    /// The concurrency limit after this signal.
    pub concurrency_limit: u32,
}

/// The caller's next step after a throttling signal.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryDecision {
    /// Wait, then send the same request again (the same page, the throttled ids only).
    Retry(ThrottleWait),
    /// Give up: the retry count or the total wait would pass the policy's limit.
    GiveUp {
        /// The retries already made.
        attempts: u32,
        /// The total time already waited by this call.
        waited: Duration,
        /// The delay the next retry would have needed.
        next_delay: Duration,
    },
}

/// The retry state of one call, kept by the caller across its attempts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryBudget {
    attempts: u32,
    waited: Duration,
}

impl RetryBudget {
    /// Returns the retries made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Returns the total delay granted so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

/// Whether a request may be sent now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Send it; call [`Throttle::release`] when its response has arrived.
    Go,
    /// The mailbox is paused: try again after this delay.
    WaitFor(Duration),
    /// The concurrency limit is reached: try again when a request finishes.
    AtCapacity,
}

/// The back-off scheduler of one mailbox.
#[derive(Debug)]
pub struct Throttle {
    policy: BackoffPolicy,
    rng: StdRng,
    paused_until_millis: u64,
    concurrency_limit: u32,
    in_flight: u32,
    successes_since_lowered: u32,
}

impl Throttle {
    /// Creates a scheduler with `policy`, drawing jitter from a generator seeded by
    /// `seed`.
    pub fn new(policy: BackoffPolicy, seed: u64) -> Self {
        let concurrency_limit = policy.initial_concurrency.max(1);
        Self {
            policy,
            rng: StdRng::seed_from_u64(seed),
            paused_until_millis: 0,
            concurrency_limit,
            in_flight: 0,
            successes_since_lowered: 0,
        }
    }

    /// Returns the policy.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    /// Returns how many requests may run in parallel now.
    pub fn concurrency_limit(&self) -> u32 {
        self.concurrency_limit
    }

    /// Returns how many admitted requests have not been released.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Returns how long the mailbox stays paused after `now` (zero when it is not).
    pub fn pause_remaining(&self, now: SystemTime) -> Duration {
        Duration::from_millis(self.paused_until_millis.saturating_sub(millis(now)))
    }

    /// Decides whether a request may go at `now`, and counts it as in flight if so.
    pub fn admit(&mut self, now: SystemTime) -> Admission {
        let remaining = self.pause_remaining(now);
        if !remaining.is_zero() {
            return Admission::WaitFor(remaining);
        }
        if self.in_flight >= self.concurrency_limit {
            return Admission::AtCapacity;
        }
        self.in_flight += 1;
        Admission::Go
    }

    /// Marks an admitted request as finished. `throttled` is true when its response was a
    /// throttling signal. After every 20 unthrottled responses a lowered limit rises by
    /// one, so a long sync does not stay at one request forever.
    pub fn release(&mut self, throttled: bool) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if throttled {
            self.successes_since_lowered = 0;
            return;
        }

        if self.concurrency_limit < self.policy.initial_concurrency.max(1) {
            self.successes_since_lowered += 1;
            if self.successes_since_lowered >= 20 {
                self.concurrency_limit += 1;
                self.successes_since_lowered = 0;
            }
        }
    }

    /// Records a throttling signal for `operation` at `now` and decides whether the call
    /// retries. A retry pauses the whole mailbox for the returned delay.
    ///
    /// The delay is the server's hint (or, without one, the base delay doubled per
    /// attempt up to the ceiling) plus up to `jitter` of it. The decision is `GiveUp`
    /// when the call has used its retries or when the wait would pass the total cap.
    pub fn on_throttled(
        &mut self,
        operation: &str,
        signal: ThrottleSignal,
        budget: &mut RetryBudget,
        now: SystemTime,
    ) -> RetryDecision {
        self.lower_concurrency(&signal);

        let attempt = budget.attempts + 1;
        let base = match signal.hint() {
            Some(hint) if !hint.is_zero() => hint,
            _ => self.unhinted_delay(attempt),
        };
        let delay = self.with_jitter(base);

        if budget.attempts >= self.policy.max_retries
            || budget.waited.saturating_add(delay) > self.policy.max_total_wait
        {
            tracing::warn!(
                operation,
                signal = %signal,
                attempts = budget.attempts,
                waited_ms = duration_millis(budget.waited),
                next_delay_ms = duration_millis(delay),
                "throttled: giving up, the retry limit or total wait cap is reached"
            );
            return RetryDecision::GiveUp {
                attempts: budget.attempts,
                waited: budget.waited,
                next_delay: delay,
            };
        }

        budget.attempts = attempt;
        budget.waited = budget.waited.saturating_add(delay);
        let until = millis(now).saturating_add(duration_millis(delay));
        self.paused_until_millis = self.paused_until_millis.max(until);

        tracing::warn!(
            operation,
            signal = %signal,
            attempt,
            delay_ms = duration_millis(delay),
            concurrency_limit = self.concurrency_limit,
            "throttled: pausing the mailbox before retrying"
        );
        RetryDecision::Retry(ThrottleWait {
            operation: operation.to_owned(),
            signal,
            attempt,
            delay,
            concurrency_limit: self.concurrency_limit,
        })
    }

    fn lower_concurrency(&mut self, signal: &ThrottleSignal) {
        let lowered = match signal {
            ThrottleSignal::ServerBusy {
                concurrency_limit: Some(limit),
                ..
            } => (*limit).min(self.concurrency_limit),
            // Halving, as TCP does on congestion, converges quickly without knowing the
            // server's limit, which these codes do not state.
            ThrottleSignal::TooManyConcurrent { .. } => (self.concurrency_limit / 2).max(1),
            _ => return,
        };
        if lowered < self.concurrency_limit {
            tracing::debug!(
                from = self.concurrency_limit,
                to = lowered,
                "lowering the concurrency limit"
            );
        }
        self.concurrency_limit = lowered.max(1);
        self.successes_since_lowered = 0;
    }

    fn unhinted_delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.policy
            .base_delay
            .saturating_mul(factor)
            .min(self.policy.max_unhinted_delay)
    }

    fn with_jitter(&mut self, base: Duration) -> Duration {
        let fraction = self.policy.jitter.clamp(0.0, 1.0);
        if fraction == 0.0 {
            return base;
        }
        let extra = self.rng.random_range(0.0..=fraction);
        base.saturating_add(base.mul_f64(extra))
    }
}

/// Splits a batch after a response whose messages are in request order: ids whose
/// message was a throttling signal go back in the queue, the rest are done (whatever
/// their outcome). Ids without a matching message (the server sent fewer messages) are
/// re-queued too, so none is lost.
pub fn split_throttled<Id: Clone>(ids: &[Id], throttled: &[bool]) -> (Vec<Id>, Vec<Id>) {
    let mut done = Vec::new();
    let mut requeue = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        match throttled.get(index) {
            Some(false) => done.push(id.clone()),
            Some(true) | None => requeue.push(id.clone()),
        }
    }
    (done, requeue)
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(duration_millis)
        .unwrap_or(0)
}

fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
