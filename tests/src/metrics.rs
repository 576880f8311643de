//! `GET /metrics` as a Prometheus server reads it: the exposition parsed by a real parser, and
//! its samples looked up by name and labels.

use prom_text_format_parser::{Metric, ValueType};

use crate::TestHost;

/// One parsed scrape.
pub struct Scrape {
    pub metrics: Vec<Metric>,
}

impl Scrape {
    /// Scrapes `host` as the admin and parses the answer, which must be the Prometheus text format.
    pub async fn of(host: &TestHost) -> Scrape {
        let reply = host.scrape_request("/metrics").send().await;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        assert_eq!(reply.status, 200, "{text}");
        let content_type = reply.header("content-type").unwrap_or_default();
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        Scrape::parse(&text)
    }

    pub fn parse(text: &str) -> Scrape {
        match prom_text_format_parser::Scrape::parse(text) {
            Ok(scrape) => Scrape { metrics: scrape.metrics },
            Err(error) => panic!("not a valid exposition: {error:?}\n{text}"),
        }
    }

    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|metric| metric.name == name)
    }

    /// The values of the `kind` samples of `name` whose labels include `labels`.
    pub fn values(&self, name: &str, kind: ValueType, labels: &[(&str, &str)]) -> Vec<f64> {
        let Some(metric) = self.metric(name) else { return Vec::new() };
        metric
            .samples
            .iter()
            .filter(|sample| sample.value.value_type == kind)
            .filter(|sample| {
                labels.iter().all(|(key, value)| {
                    sample.labels.iter().any(|label| label.key == *key && label.value == *value)
                })
            })
            .map(|sample| sample.value.value.as_f64())
            .collect()
    }

    /// The one sample of `name` with `labels`; panics when there is none or more than one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.values(name, ValueType::Sample, labels)[..] {
            [value] => value,
            ref found => panic!("{name} {labels:?}: {} samples ({found:?})", found.len()),
        }
    }

    /// The `_count` and `_sum` of the histogram `name` with `labels`, and its `+Inf` bucket.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> (f64, f64, f64) {
        let one = |kind, extra: &[(&str, &str)]| {
            let labels: Vec<_> = labels.iter().chain(extra).copied().collect();
            match self.values(name, kind, &labels)[..] {
                [value] => value,
                ref found => panic!("{name} {kind:?} {labels:?}: {found:?}"),
            }
        };
        (one(ValueType::Count, &[]), one(ValueType::Sum, &[]), one(ValueType::Sample, &[("le", "+Inf")]))
    }
}
