//! HTTP-level fault injection, all switches in one place.
//!
//! Each switch is a rule with a path prefix (ASCII case-insensitive, empty for every
//! path) and a count of requests it still applies to. The server consults the switches
//! after authentication and before the handler, except [`FaultKind::CutStream`], which
//! applies while a streaming body is written. Mailbox-level faults (expired sessions,
//! invalid sync states) live in the store.

use std::sync::Mutex;
use std::time::Duration;

use super::routing::starts_with_ignore_ascii_case;

/// The name of a fault switch, for counting and logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// Answer "server busy": HTTP 503 with `Retry-After`, or the protocol's own shape
    /// when the handler provides one (EWS: HTTP 500 SOAP fault `ErrorServerBusy`).
    ServerBusy,
    /// Close the connection without answering.
    DropConnection,
    /// Hold the request for a while before the handler runs.
    Delay,
    /// End a streaming response abruptly after some chunks, without the final chunk.
    CutStream,
}

impl FaultKind {
    /// The switch's name as it appears in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::ServerBusy => "server_busy",
            Self::DropConnection => "drop_connection",
            Self::Delay => "delay",
            Self::CutStream => "cut_stream",
        }
    }
}

#[derive(Debug, Clone)]
struct Rule<T> {
    prefix: String,
    remaining: u32,
    value: T,
}

impl<T: Clone> Rule<T> {
    fn take(rules: &mut Vec<Self>, path: &str) -> Option<T> {
        let position = rules.iter().position(|rule| {
            rule.remaining > 0 && starts_with_ignore_ascii_case(path, &rule.prefix)
        })?;
        let rule = rules.get_mut(position)?;
        rule.remaining -= 1;
        let value = rule.value.clone();
        rules.retain(|rule| rule.remaining > 0);
        Some(value)
    }
}

#[derive(Debug, Default)]
struct Rules {
    busy: Vec<Rule<Duration>>,
    drop: Vec<Rule<()>>,
    delay: Vec<Rule<Duration>>,
    cut: Vec<Rule<usize>>,
    fired: [u64; 4],
}

/// The fault switches of one emulator. Shared by every connection; cheap to consult.
#[derive(Debug, Default)]
pub struct FaultSwitches {
    rules: Mutex<Rules>,
}

/// What the server does to one request, decided before the handler runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestFaults {
    pub(crate) busy: Option<Duration>,
    pub(crate) drop: bool,
    pub(crate) delay: Option<Duration>,
    pub(crate) cut_after_chunks: Option<usize>,
}

impl FaultSwitches {
    /// Answers the next `count` requests under `prefix` with "server busy", telling the
    /// client to wait `back_off` (`Retry-After` in whole seconds, rounded up, or the
    /// protocol's own back-off field).
    pub fn server_busy(&self, prefix: &str, count: u32, back_off: Duration) {
        self.with_rules(|rules| rules.busy.push(rule(prefix, count, back_off)));
    }

    /// Closes the connection without answering for the next `count` requests under
    /// `prefix`.
    pub fn drop_connections(&self, prefix: &str, count: u32) {
        self.with_rules(|rules| rules.drop.push(rule(prefix, count, ())));
    }

    /// Holds the next `count` requests under `prefix` for `delay` before answering.
    pub fn delay_responses(&self, prefix: &str, count: u32, delay: Duration) {
        self.with_rules(|rules| rules.delay.push(rule(prefix, count, delay)));
    }

    /// Ends the next `count` streaming responses under `prefix` abruptly after
    /// `after_chunks` chunks: the connection closes without the terminating chunk.
    /// Complete (non-streaming) bodies are not affected.
    pub fn cut_streams(&self, prefix: &str, count: u32, after_chunks: usize) {
        self.with_rules(|rules| rules.cut.push(rule(prefix, count, after_chunks)));
    }

    /// Turns every switch off. The counts of fired faults stay.
    pub fn clear(&self) {
        self.with_rules(|rules| {
            rules.busy.clear();
            rules.drop.clear();
            rules.delay.clear();
            rules.cut.clear();
        });
    }

    /// How many times the fault `kind` has fired since start.
    pub fn fired(&self, kind: FaultKind) -> u64 {
        self.with_rules(|rules| rules.fired.get(index(kind)).copied().unwrap_or(0))
    }

    /// Consumes the rules that apply to a request for `path`. A dropped connection wins
    /// over everything else, and "server busy" over a delay.
    pub(crate) fn take_for_request(&self, path: &str) -> RequestFaults {
        self.with_rules(|rules| {
            let mut faults = RequestFaults::default();
            if Rule::take(&mut rules.drop, path).is_some() {
                faults.drop = true;
                count(rules, FaultKind::DropConnection);
                return faults;
            }
            faults.busy = Rule::take(&mut rules.busy, path);
            if faults.busy.is_some() {
                count(rules, FaultKind::ServerBusy);
                return faults;
            }
            faults.delay = Rule::take(&mut rules.delay, path);
            if faults.delay.is_some() {
                count(rules, FaultKind::Delay);
            }
            faults
        })
    }

    /// Consumes a cut-stream rule for a streaming response to `path`.
    pub(crate) fn take_stream_cut(&self, path: &str) -> Option<usize> {
        self.with_rules(|rules| {
            let cut = Rule::take(&mut rules.cut, path);
            if cut.is_some() {
                count(rules, FaultKind::CutStream);
            }
            cut
        })
    }

    fn with_rules<R>(&self, f: impl FnOnce(&mut Rules) -> R) -> R {
        let mut rules = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut rules)
    }
}

fn rule<T>(prefix: &str, count: u32, value: T) -> Rule<T> {
    Rule {
        prefix: prefix.to_owned(),
        remaining: count,
        value,
    }
}

fn index(kind: FaultKind) -> usize {
    match kind {
        FaultKind::ServerBusy => 0,
        FaultKind::DropConnection => 1,
        FaultKind::Delay => 2,
        FaultKind::CutStream => 3,
    }
}

fn count(rules: &mut Rules, kind: FaultKind) {
    if let Some(counter) = rules.fired.get_mut(index(kind)) {
        *counter += 1;
    }
    tracing::info!(fault = kind.name(), "fault injected");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_count_times_by_prefix() {
        let faults = FaultSwitches::default();
        faults.drop_connections("/EWS/", 2);
        assert!(!faults.take_for_request("/mapi/emsmdb/").drop);
        assert!(faults.take_for_request("/ews/exchange.asmx").drop);
        assert!(faults.take_for_request("/EWS/Exchange.asmx").drop);
        assert!(!faults.take_for_request("/EWS/Exchange.asmx").drop);
        assert_eq!(faults.fired(FaultKind::DropConnection), 2);
    }

    #[test]
    fn drop_wins_over_busy() {
        let faults = FaultSwitches::default();
        faults.server_busy("", 1, Duration::from_secs(3));
        faults.drop_connections("", 1);
        let first = faults.take_for_request("/health");
        assert!(first.drop);
        assert_eq!(first.busy, None);
        assert_eq!(
            faults.take_for_request("/health").busy,
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn clear_turns_switches_off() {
        let faults = FaultSwitches::default();
        faults.delay_responses("", 5, Duration::from_millis(10));
        faults.cut_streams("", 5, 1);
        faults.clear();
        assert_eq!(faults.take_for_request("/x"), RequestFaults::default());
        assert_eq!(faults.take_stream_cut("/x"), None);
    }
}
