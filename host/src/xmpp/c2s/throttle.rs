//! The per-client stanza rate. A client over it is not disconnected and loses nothing: the
//! server stops reading from it until it is back under the rate, so TCP pushes back on the
//! flooding client alone while its queue of stanzas for it keeps being written.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

pub struct Throttle {
    /// `None` when the limit is off.
    limiter: Option<DefaultDirectRateLimiter>,
    /// While paused: when reading may resume. The stanza that went over the rate has already
    /// been handled, so it takes the first cell that frees up.
    paused_until: Option<Instant>,
}

impl Throttle {
    /// `per_second` stanzas on average with `burst` at once; 0 per second for no limit.
    pub fn new(per_second: u32, burst: u32) -> Throttle {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
        });
        Throttle { limiter, paused_until: None }
    }

    pub fn reading(&self) -> bool {
        self.paused_until.is_none()
    }

    /// Counts a stanza the client sent; true when that put it over the rate, so that reading is
    /// now paused.
    pub fn stanza_read(&mut self) -> bool {
        self.try_take()
    }

    /// Waits out the pause (forever while reading: only polled while paused).
    pub async fn paused(&self) {
        match self.paused_until {
            Some(until) => tokio::time::sleep_until(until).await,
            None => std::future::pending().await,
        }
    }

    /// After [`Throttle::paused`]: takes the cell owed by the stanza that went over the rate,
    /// which resumes reading, or pauses again if it is not free yet.
    pub fn retry(&mut self) {
        self.paused_until = None;
        self.try_take();
    }

    /// Takes one cell, or pauses until one is free; true when paused.
    fn try_take(&mut self) -> bool {
        let Some(limiter) = &self.limiter else { return false };
        match limiter.check() {
            Ok(()) => false,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                self.paused_until = Some(Instant::now() + wait);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_flood_is_held_to_the_rate_after_its_burst() {
        let mut throttle = Throttle::new(200, 10);
        let started = Instant::now();
        let mut handled = 0;
        while started.elapsed() < Duration::from_millis(500) {
            if throttle.reading() {
                throttle.stanza_read();
                handled += 1;
            } else {
                throttle.paused().await;
                throttle.retry();
            }
        }
        // 10 at once, then 200/s: about 110 in half a second.
        assert!((95..=125).contains(&handled), "{handled} stanzas in 500 ms");
    }

    #[tokio::test]
    async fn off_never_pauses() {
        let mut throttle = Throttle::new(0, 0);
        assert!((0..100_000).all(|_| !throttle.stanza_read()));
        assert!(throttle.reading());
    }
}
