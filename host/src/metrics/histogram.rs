//! A latency histogram that records without a lock: fixed buckets of atomic counters.
//! prometheus-client's own `Histogram` locks a mutex on every observation, which the request
//! path must not do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds of the buckets, in nanoseconds: from 100 µs (a small plugin answering) to 10 s
/// (past any sensible deadline); slower calls land in `+Inf`.
const BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];
const BUCKETS: usize = BOUNDS_NS.len() + 1;

/// A cheap handle: clones share the same buckets.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    inner: Arc<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    /// Observations per bucket, not cumulative; the last one is above every bound.
    counts: [AtomicU64; BUCKETS],
    /// Nanoseconds rather than seconds, so that an observation is one integer `fetch_add`.
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let index = BOUNDS_NS.iter().position(|bound| ns <= *bound).unwrap_or(BOUNDS_NS.len());
        self.inner.counts[index].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(f64::INFINITY, 0_u64); BUCKETS];
        let mut count = 0;
        for (index, (bound, observed)) in buckets.iter_mut().enumerate() {
            if let Some(ns) = BOUNDS_NS.get(index) {
                *bound = *ns as f64 / 1e9;
            }
            *observed = self.inner.counts[index].load(Ordering::Relaxed);
            count += *observed;
        }
        // The count is the buckets' total, so that `_count` always equals the `+Inf` bucket even
        // while observations land during a scrape; the sum may be a moment ahead of it.
        let sum = self.inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::prometheus_text::encode;
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let histogram = Histogram::default();
        for micros in [50, 100, 101, 3_000, 20_000_000] {
            histogram.observe(Duration::from_micros(micros));
        }
        let mut registry = Registry::default();
        registry.register("latency_seconds", "Latency", histogram.clone());
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            "latency_seconds_bucket{le=\"0.0001\"} 2\n",
            "latency_seconds_bucket{le=\"0.00025\"} 3\n",
            "latency_seconds_bucket{le=\"0.005\"} 4\n",
            "latency_seconds_bucket{le=\"10\"} 4\n",
            "latency_seconds_bucket{le=\"+Inf\"} 5\n",
            "latency_seconds_count 5\n",
            "latency_seconds_sum 20.003251\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }
}
