//! Who may reach the admin APIs and call what: access rules, bearer tokens, the limiter of
//! failed authentications and the client address behind trusted proxies. The HTTP layer applies
//! them; the `tokens` interface lets plugins manage tokens.

pub mod audit;
pub mod limiter;
pub mod policy;
pub mod proxies;
pub mod tokens;

use subtle::ConstantTimeEq;

/// Compares secrets (SCRAM keys, token hashes) in time that depends only on their length, so
/// that an attacker cannot learn how many leading bytes of a guess were right.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    use super::secrets_equal;

    /// The fastest of several timings of `compare` over many calls, to shed scheduling noise.
    fn fastest(rounds: usize, mut compare: impl FnMut() -> bool) -> Duration {
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..20 {
                    black_box(compare());
                }
                start.elapsed()
            })
            .min()
            .unwrap_or_default()
    }

    #[test]
    fn secret_comparison_is_constant_time() {
        assert!(secrets_equal(b"same", b"same"));
        assert!(!secrets_equal(b"same", b"sane"));
        assert!(!secrets_equal(b"short", b"longer"));
        // Long inputs make an early exit obvious: an ordinary comparison that stops at the first
        // differing byte is thousands of times faster when that byte comes first.
        let secret = vec![7u8; 1 << 16];
        let mut first_differs = secret.clone();
        first_differs[0] ^= 1;
        let mut last_differs = secret.clone();
        *last_differs.last_mut().unwrap() ^= 1;
        let early = fastest(30, || secrets_equal(black_box(&secret), black_box(&first_differs)));
        let late = fastest(30, || secrets_equal(black_box(&secret), black_box(&last_differs)));
        assert!(early * 2 >= late, "a mismatch in the first byte took {early:?}, in the last {late:?}");
        // The same check fails for a comparison that exits early, so it measures what it claims.
        let naive_early = fastest(30, || black_box(&secret[..]) == black_box(&first_differs[..]));
        let naive_late = fastest(30, || black_box(&secret[..]) == black_box(&last_differs[..]));
        assert!(naive_early * 2 < naive_late, "naive: {naive_early:?} vs {naive_late:?}");
    }
}
