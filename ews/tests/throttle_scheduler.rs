#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The back-off scheduler, driven by a `ManualClock`: no test sleeps.

use std::time::{Duration, UNIX_EPOCH};

use exmux_core::{Clock, ManualClock};
use exmux_ews::throttle::{
    Admission, BackoffPolicy, RetryBudget, RetryDecision, Throttle, ThrottleSignal,
    concurrency_policy_value, parse_retry_after, split_throttled, suggested_back_off,
};

fn no_jitter() -> BackoffPolicy {
    BackoffPolicy {
        jitter: 0.0,
        ..BackoffPolicy::default()
    }
}

fn busy(ms: u64) -> ThrottleSignal {
    ThrottleSignal::ServerBusy {
        back_off: Some(Duration::from_millis(ms)),
        concurrency_limit: None,
    }
}

#[test]
fn hint_pauses_whole_mailbox() {
    let clock = ManualClock::default();
    let mut throttle = Throttle::new(no_jitter(), 1);
    let mut budget = RetryBudget::default();

    assert_eq!(throttle.admit(clock.now()), Admission::Go);
    let decision = throttle.on_throttled("FindItem", busy(297_418), &mut budget, clock.now());
    throttle.release(true);
    let RetryDecision::Retry(wait) = decision else {
        panic!("expected a retry, got {decision:?}");
    };
    assert_eq!(wait.delay, Duration::from_millis(297_418));
    assert_eq!(wait.attempt, 1);

    // Any other request to the mailbox waits too, not only the throttled one.
    assert_eq!(
        throttle.admit(clock.now()),
        Admission::WaitFor(Duration::from_millis(297_418))
    );
    clock.advance(Duration::from_millis(297_417));
    assert_eq!(
        throttle.admit(clock.now()),
        Admission::WaitFor(Duration::from_millis(1))
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(throttle.admit(clock.now()), Admission::Go);
}

#[test]
fn jitter_never_shortens_hint() {
    let clock = ManualClock::default();
    let policy = BackoffPolicy {
        jitter: 0.5,
        max_retries: 1000,
        max_total_wait: Duration::from_secs(1_000_000),
        ..BackoffPolicy::default()
    };
    let mut throttle = Throttle::new(policy, 7);
    let mut budget = RetryBudget::default();
    let mut delays = Vec::new();
    for _ in 0..50 {
        let RetryDecision::Retry(wait) =
            throttle.on_throttled("GetItem", busy(5000), &mut budget, clock.now())
        else {
            panic!("expected a retry");
        };
        assert!(
            wait.delay >= Duration::from_millis(5000),
            "{:?}",
            wait.delay
        );
        assert!(
            wait.delay <= Duration::from_millis(7500),
            "{:?}",
            wait.delay
        );
        delays.push(wait.delay);
    }
    // Jitter actually varies the delay.
    delays.sort();
    delays.dedup();
    assert!(delays.len() > 10, "jitter produced too few distinct delays");
}

#[test]
fn same_seed_same_delays() {
    let run = |seed| {
        let clock = ManualClock::default();
        let mut throttle = Throttle::new(BackoffPolicy::default(), seed);
        let mut budget = RetryBudget::default();
        (0..5)
            .map(|_| {
                match throttle.on_throttled("SyncFolderItems", busy(1000), &mut budget, clock.now())
                {
                    RetryDecision::Retry(wait) => wait.delay,
                    other => panic!("unexpected {other:?}"),
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn unhinted_delay_doubles_to_ceiling() {
    let clock = ManualClock::default();
    let policy = BackoffPolicy {
        jitter: 0.0,
        base_delay: Duration::from_secs(1),
        max_unhinted_delay: Duration::from_secs(5),
        max_retries: 10,
        ..BackoffPolicy::default()
    };
    let mut throttle = Throttle::new(policy, 0);
    let mut budget = RetryBudget::default();
    let mut delays = Vec::new();
    for _ in 0..5 {
        let signal = ThrottleSignal::HttpStatus {
            status: 503,
            retry_after: None,
        };
        match throttle.on_throttled("GetFolder", signal, &mut budget, clock.now()) {
            RetryDecision::Retry(wait) => delays.push(wait.delay.as_secs()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delays, vec![1, 2, 4, 5, 5]);
}

#[test]
fn zero_back_off_uses_base_delay() {
    let clock = ManualClock::default();
    let mut throttle = Throttle::new(no_jitter(), 0);
    let mut budget = RetryBudget::default();
    let signal = ThrottleSignal::TooManyConcurrent {
        code: "ErrorExceededConnectionCount".into(),
        back_off: Some(Duration::ZERO),
    };
    match throttle.on_throttled("GetItem", signal, &mut budget, clock.now()) {
        RetryDecision::Retry(wait) => assert_eq!(wait.delay, Duration::from_secs(1)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn total_wait_cap_gives_up() {
    let clock = ManualClock::default();
    let policy = BackoffPolicy {
        jitter: 0.0,
        max_total_wait: Duration::from_secs(600),
        ..BackoffPolicy::default()
    };
    let mut throttle = Throttle::new(policy, 0);
    let mut budget = RetryBudget::default();
    assert!(matches!(
        throttle.on_throttled("FindItem", busy(297_418), &mut budget, clock.now()),
        RetryDecision::Retry(_)
    ));
    assert!(matches!(
        throttle.on_throttled("FindItem", busy(297_418), &mut budget, clock.now()),
        RetryDecision::Retry(_)
    ));
    let third = throttle.on_throttled("FindItem", busy(297_418), &mut budget, clock.now());
    assert_eq!(
        third,
        RetryDecision::GiveUp {
            attempts: 2,
            waited: Duration::from_millis(2 * 297_418),
            next_delay: Duration::from_millis(297_418),
        }
    );
    assert_eq!(budget.attempts(), 2);
}

#[test]
fn retry_count_cap_gives_up() {
    let clock = ManualClock::default();
    let policy = BackoffPolicy {
        jitter: 0.0,
        max_retries: 2,
        ..BackoffPolicy::default()
    };
    let mut throttle = Throttle::new(policy, 0);
    let mut budget = RetryBudget::default();
    for _ in 0..2 {
        assert!(matches!(
            throttle.on_throttled("GetItem", busy(10), &mut budget, clock.now()),
            RetryDecision::Retry(_)
        ));
    }
    assert!(matches!(
        throttle.on_throttled("GetItem", busy(10), &mut budget, clock.now()),
        RetryDecision::GiveUp { attempts: 2, .. }
    ));
}

#[test]
fn concurrency_limit_from_policy_value() {
    let clock = ManualClock::default();
    let mut throttle = Throttle::new(no_jitter(), 0);
    assert_eq!(throttle.concurrency_limit(), 8);
    let text = "The server cannot service this request right now. Try again later., This \
                operation exceeds the throttling budget for policy part \
                'ConcurrentSyncCalls', policy value '5',  Budget type: 'Ews'.  Suggested \
                backoff time 5000 ms.";
    let signal =
        ThrottleSignal::from_response_code("ErrorServerBusy", None, None, Some(text)).unwrap();
    assert_eq!(
        signal,
        ThrottleSignal::ServerBusy {
            back_off: Some(Duration::from_millis(5000)),
            concurrency_limit: Some(5),
        }
    );
    let mut budget = RetryBudget::default();
    throttle.on_throttled("GetItem", signal, &mut budget, clock.now());
    assert_eq!(throttle.concurrency_limit(), 5);

    clock.advance(Duration::from_secs(10));
    for _ in 0..5 {
        assert_eq!(throttle.admit(clock.now()), Admission::Go);
    }
    assert_eq!(throttle.admit(clock.now()), Admission::AtCapacity);
    throttle.release(false);
    assert_eq!(throttle.admit(clock.now()), Admission::Go);
}

#[test]
fn connection_count_halves_limit() {
    let clock = ManualClock::default();
    let mut throttle = Throttle::new(no_jitter(), 0);
    let mut budget = RetryBudget::default();
    for expected in [4, 2, 1, 1] {
        let signal =
            ThrottleSignal::from_response_code("  ErrorTooManyObjectsOpened\n", None, None, None)
                .unwrap();
        throttle.on_throttled("GetItem", signal, &mut budget, clock.now());
        assert_eq!(throttle.concurrency_limit(), expected);
    }
}

#[test]
fn limit_recovers_after_successes() {
    let clock = ManualClock::default();
    let mut throttle = Throttle::new(no_jitter(), 0);
    let mut budget = RetryBudget::default();
    let signal = ThrottleSignal::TooManyConcurrent {
        code: "ErrorExceededConnectionCount".into(),
        back_off: None,
    };
    throttle.on_throttled("GetItem", signal, &mut budget, clock.now());
    assert_eq!(throttle.concurrency_limit(), 4);
    clock.advance(Duration::from_secs(5));
    for _ in 0..20 {
        assert_eq!(throttle.admit(clock.now()), Admission::Go);
        throttle.release(false);
    }
    assert_eq!(throttle.concurrency_limit(), 5);
}

#[test]
fn signal_shapes_classified() {
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
    assert_eq!(
        ThrottleSignal::from_http(503, Some("120"), now),
        Some(ThrottleSignal::HttpStatus {
            status: 503,
            retry_after: Some(Duration::from_secs(120)),
        })
    );
    assert_eq!(
        ThrottleSignal::from_http(429, Some("garbage"), now),
        Some(ThrottleSignal::HttpStatus {
            status: 429,
            retry_after: None,
        })
    );
    assert_eq!(ThrottleSignal::from_http(500, Some("5"), now), None);
    assert_eq!(ThrottleSignal::from_http(200, None, now), None);

    let inner = ThrottleSignal::from_response_code(
        "ErrorInternalServerError",
        Some("ErrorServerBusy"),
        Some(Duration::from_millis(30)),
        None,
    );
    assert_eq!(
        inner,
        Some(ThrottleSignal::ServerBusy {
            back_off: Some(Duration::from_millis(30)),
            concurrency_limit: None,
        })
    );
    assert_eq!(
        ThrottleSignal::from_response_code("ErrorInternalServerError", None, None, None),
        None
    );
    assert_eq!(
        ThrottleSignal::from_response_code(
            "ErrorInternalServerError",
            Some("ErrorItemNotFound"),
            None,
            None
        ),
        None
    );
    assert_eq!(
        ThrottleSignal::from_response_code("ErrorIrresolvableConflict", None, None, None),
        None
    );
    // The MessageXml value wins over the message text.
    assert_eq!(
        ThrottleSignal::from_response_code(
            "ErrorServerBusy",
            None,
            Some(Duration::from_millis(7)),
            Some("Suggested backoff time 5000 ms.")
        )
        .and_then(|signal| signal.hint()),
        Some(Duration::from_millis(7))
    );
}

#[test]
fn retry_after_http_date() {
    // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 s after the epoch.
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
        Some(Duration::from_secs(30))
    );
    let later = UNIX_EPOCH + Duration::from_secs(784_111_777 + 30);
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
}

#[test]
fn message_text_parsers() {
    assert_eq!(
        suggested_back_off("... Suggested backoff time 5000 ms."),
        Some(Duration::from_millis(5000))
    );
    assert_eq!(suggested_back_off("no hint here"), None);
    assert_eq!(
        concurrency_policy_value("policy part 'ConcurrentSyncCalls', policy value '5', x"),
        Some(5)
    );
    // A rate budget (not a concurrency budget) does not limit parallel calls.
    assert_eq!(
        concurrency_policy_value("policy part 'MaxBurst', policy value '300000', x"),
        None
    );
}

#[test]
fn split_requeues_only_throttled_ids() {
    let ids = ["a", "b", "c"];
    let (done, requeue) = split_throttled(&ids, &[false, true]);
    assert_eq!(done, vec!["a"]);
    assert_eq!(requeue, vec!["b", "c"]);
}

mod properties {
    use std::time::Duration;

    use exmux_core::{Clock, ManualClock};
    use exmux_ews::throttle::{
        Admission, BackoffPolicy, RetryBudget, RetryDecision, Throttle, ThrottleSignal,
    };
    use proptest::prelude::*;

    proptest! {
        /// Whatever the hints, each delay honours the hint within the jitter bound, the
        /// total granted never passes the cap, and the mailbox stays closed until the
        /// delay is over.
        #[test]
        fn delays_honour_hint_and_cap(
            hints in proptest::collection::vec(proptest::option::of(0u64..400_000), 1..20),
            seed in any::<u64>(),
        ) {
            let clock = ManualClock::default();
            let policy = BackoffPolicy { max_retries: 50, ..BackoffPolicy::default() };
            let cap = policy.max_total_wait;
            let mut throttle = Throttle::new(policy, seed);
            let mut budget = RetryBudget::default();
            for hint in hints {
                let signal = ThrottleSignal::ServerBusy {
                    back_off: hint.map(Duration::from_millis),
                    concurrency_limit: None,
                };
                match throttle.on_throttled("SyncFolderItems", signal, &mut budget, clock.now()) {
                    RetryDecision::Retry(wait) => {
                        if let Some(hint) = hint.filter(|hint| *hint > 0) {
                            let hint = Duration::from_millis(hint);
                            prop_assert!(wait.delay >= hint);
                            prop_assert!(wait.delay <= hint.mul_f64(1.2) + Duration::from_millis(1));
                        }
                        prop_assert!(budget.waited() <= cap);
                        if wait.delay > Duration::from_millis(1) {
                            clock.advance(wait.delay - Duration::from_millis(1));
                            prop_assert!(matches!(throttle.admit(clock.now()), Admission::WaitFor(_)));
                            clock.advance(Duration::from_millis(1));
                        } else {
                            clock.advance(wait.delay);
                        }
                        prop_assert_eq!(throttle.admit(clock.now()), Admission::Go);
                        throttle.release(true);
                    }
                    RetryDecision::GiveUp { waited, next_delay, .. } => {
                        prop_assert!(waited + next_delay > cap);
                        break;
                    }
                    other => prop_assert!(false, "unexpected decision {other:?}"),
                }
            }
        }
    }
}
