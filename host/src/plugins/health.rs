//! How the recent calls of one loaded plugin went, for `GET /module/NAME` and the
//! `plughost_plugin_healthy` gauge. It counts only the failures the host answers for (a
//! [`CallError`]: deadline, trap, memory cap, oversized answer, instantiation); a plugin that
//! answers a 5xx itself has answered, and a refusal before the call never reached it.
//!
//! The rule: a plugin is unhealthy after [`UNHEALTHY_AFTER`] failed calls in a row. A successful
//! call clears it, and so does a reload (a new version starts with a new `Health`; a reload of the
//! unchanged file calls [`Health::reset`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::CallError;

/// Consecutive failed calls that make a plugin unhealthy.
pub const UNHEALTHY_AFTER: u32 = 5;

#[derive(Default)]
pub struct Health {
    /// Failed calls since the last success or reset. Atomic: every call touches it, and a
    /// success only reads it unless a failure came before.
    consecutive_failures: AtomicU32,
    /// The text and time (seconds since the Unix epoch) of the latest failed call, kept after
    /// later successes. std: taken only when a call fails, never across an `.await`.
    last_failure: Mutex<Option<(String, u64)>>,
}

/// A snapshot of [`Health`], as `module-info` shows it.
pub struct HealthReport {
    pub healthy: bool,
    pub consecutive_failures: u32,
    pub last_failure: Option<String>,
    pub last_failure_at: Option<u64>,
}

impl Health {
    /// Records a successful call; true when it made an unhealthy plugin healthy again.
    pub fn succeeded(&self) -> bool {
        // A load first, so that the common case (no failure before) writes nothing.
        self.consecutive_failures.load(Ordering::Relaxed) != 0
            && self.consecutive_failures.swap(0, Ordering::Relaxed) >= UNHEALTHY_AFTER
    }

    /// Records a failed call; true when it is the one that made the plugin unhealthy.
    pub fn failed(&self, error: &CallError) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        *self.last_failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((error.to_string(), now));
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed).saturating_add(1) == UNHEALTHY_AFTER
    }

    /// Forgets every failure, as a reload does.
    pub fn reset(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        *self.last_failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    pub fn report(&self) -> HealthReport {
        let consecutive_failures = self.consecutive_failures.load(Ordering::Relaxed);
        let last = self.last_failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let (last_failure, last_failure_at) = last.map_or((None, None), |(text, at)| (Some(text), Some(at)));
        HealthReport {
            healthy: consecutive_failures < UNHEALTHY_AFTER,
            consecutive_failures,
            last_failure,
            last_failure_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trap() -> CallError {
        CallError::Trap { plugin: "trap".into(), message: "unreachable".into() }
    }

    #[test]
    fn unhealthy_after_five_failures_in_a_row_until_a_success() {
        let health = Health::default();
        for _ in 1..UNHEALTHY_AFTER {
            assert!(!health.failed(&trap()));
        }
        assert!(health.report().healthy);
        assert!(health.failed(&trap()), "the fifth failure is the transition");
        assert!(!health.failed(&trap()), "the sixth is not");
        let report = health.report();
        assert!(!report.healthy);
        assert_eq!(report.consecutive_failures, 6);
        assert!(report.last_failure.unwrap().contains("unreachable"));
        assert!(health.succeeded(), "a success heals");
        assert!(!health.succeeded());
        let report = health.report();
        assert!(report.healthy && report.consecutive_failures == 0 && report.last_failure.is_some());
        health.failed(&trap());
        health.reset();
        assert!(health.report().last_failure.is_none());
    }
}
