//! The gauges read when Prometheus scrapes rather than kept up to date: authenticated c2s
//! sessions (the session registry), the offline queue (one `count(*)`), the process's resident
//! memory and its uptime. Reading them costs a scrape a read lock and a query; keeping them current
//! would cost every session, message and delivery something.

use std::fmt;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use crate::xmpp::Server;

/// Reads the XMPP core and the process at scrape time. The encoding runs on a blocking thread
/// (see `http::metrics`), since the offline count is a database query.
pub struct ScrapeTime {
    pub server: Server,
    /// When the server started.
    pub started: Instant,
}

impl fmt::Debug for ScrapeTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeTime").field("started", &self.started).finish_non_exhaustive()
    }
}

impl Collector for ScrapeTime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        gauge(
            &mut encoder,
            "c2s_authenticated_sessions",
            "c2s streams that authenticated and bound a resource.",
            self.server.sessions().count_sessions() as i64,
        )?;
        match self.server.offline_total() {
            Ok(depth) => gauge(
                &mut encoder,
                "offline_queue_messages",
                "Stanzas waiting in the offline queue for accounts with no available resource.",
                depth as i64,
            )?,
            // A scrape without this one gauge beats no scrape at all.
            Err(error) => tracing::warn!(%error, "metrics: cannot count the offline queue"),
        }
        if let Some(bytes) = resident_memory_bytes() {
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory of the server process, in bytes (VmRSS).",
                bytes as i64,
            )?;
        }
        gauge(
            &mut encoder,
            "process_uptime_seconds",
            "Seconds since the server started.",
            self.started.elapsed().as_secs_f64(),
        )
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    let gauge = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}

/// `VmRSS` of `/proc/self/status`; `None` where there is no procfs.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}
