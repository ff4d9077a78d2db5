//! The injectable clock.
//!
//! State machines (sessions, the router core, back-off schedulers, watchdogs) read time
//! only through a [`Clock`], and the emulator uses the same clock, so tests and the
//! simulation advance time by hand with [`ManualClock`] instead of sleeping. Only the
//! async drivers sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Returns the current wall-clock time.
    fn now(&self) -> SystemTime;

    /// Returns the current time as milliseconds since the Unix epoch (0 before 1970).
    fn now_millis(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when a test advances or sets it. Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// Creates a clock that reads `start_millis` milliseconds after the Unix epoch.
    pub fn new(start_millis: u64) -> Self {
        Self {
            millis: Arc::new(AtomicU64::new(start_millis)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let step = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(step, Ordering::SeqCst);
    }

    /// Sets the clock to `millis` milliseconds after the Unix epoch.
    pub fn set_millis(&self, millis: u64) {
        self.millis.store(millis, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    /// Starts at 2024-01-01T00:00:00Z, a fixed point so recorded output is stable.
    fn default() -> Self {
        Self::new(1_704_067_200_000)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_advances_all_clones() {
        let clock = ManualClock::new(1_000);
        let other = clock.clone();
        clock.advance(Duration::from_secs(45));
        assert_eq!(other.now_millis(), 46_000);
    }
}
