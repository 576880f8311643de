//! Slows down password guessing: after `max_failures` failed authentications from one address,
//! that address (and only that one) is refused with 429 for `lockout`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many tracked addresses the oldest state is dropped, so memory stays bounded.
const MAX_TRACKED: usize = 100_000;

pub struct FailureLimiter {
    max_failures: u32,
    lockout: Duration,
    /// std: held only for a map operation.
    by_address: Mutex<HashMap<IpAddr, Failures>>,
}

struct Failures {
    count: u32,
    /// Failures older than `lockout` are forgotten; a lockout ends `lockout` after the last one.
    last: Instant,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, lockout: Duration) -> FailureLimiter {
        FailureLimiter { max_failures, lockout, by_address: Mutex::new(HashMap::new()) }
    }

    /// How long `ip` must still wait, if it is locked out.
    pub fn locked_out(&self, ip: IpAddr) -> Option<Duration> {
        let map = self.by_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let failures = map.get(&ip)?;
        let elapsed = failures.last.elapsed();
        (failures.count >= self.max_failures && elapsed < self.lockout).then(|| self.lockout - elapsed)
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut map = self.by_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            let lockout = self.lockout;
            map.retain(|_, failures| failures.last.elapsed() < lockout);
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let now = Instant::now();
        let failures = map.entry(ip).or_insert(Failures { count: 0, last: now });
        if failures.last.elapsed() >= self.lockout {
            failures.count = 0;
        }
        failures.count += 1;
        failures.last = now;
        if failures.count == self.max_failures {
            tracing::warn!(%ip, failures = failures.count, lockout_s = self.lockout.as_secs(), "address locked out after repeated authentication failures");
        }
    }

    pub fn record_success(&self, ip: IpAddr) {
        let mut map = self.by_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_failing_address_is_locked_out() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let (bad, good): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..2 {
            limiter.record_failure(bad);
        }
        assert_eq!(limiter.locked_out(bad), None);
        limiter.record_failure(bad);
        assert!(limiter.locked_out(bad).is_some_and(|wait| wait > Duration::from_secs(59)));
        assert_eq!(limiter.locked_out(good), None);
        limiter.record_success(bad);
        assert_eq!(limiter.locked_out(bad), None);
    }

    #[test]
    fn a_lockout_ends() {
        let limiter = FailureLimiter::new(1, Duration::from_millis(20));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        limiter.record_failure(ip);
        assert!(limiter.locked_out(ip).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(limiter.locked_out(ip), None);
    }
}
