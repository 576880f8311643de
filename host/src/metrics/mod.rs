//! Prometheus metrics: the one registry, the names, labels and help texts, and the typed handles
//! that the request, plugin and stanza paths increment. It serves nothing (`http::metrics` does)
//! and reads the XMPP core only when scraped.
//!
//! Hot paths never allocate, lock or hash labels: every handle they touch is created beforehand
//! (per route when the route table is built, per stanza kind and dialect here) and is an atomic
//! counter behind an `Arc`. Values that are cheap to read when scraped (sessions, the offline
//! queue, the process) are read then, rather than kept up to date.
//!
//! # Layout
//! - `histogram`: a latency histogram of atomic buckets (prometheus-client's locks a mutex).
//! - `collector`: the gauges read at scrape time.

mod collector;
mod histogram;

use std::fmt;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_xmpp::Stanza;

pub use histogram::Histogram;

use crate::config::Dialect;
use crate::plugins::CallError;
use crate::plugins::registry::LoadedPlugin;
use crate::xmpp::Server;

/// The `Content-Type` of a scrape: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The status classes a plugin's answer is counted under. HTTP defines none above 5xx, so a
/// plugin's 6xx to 9xx counts as 5xx (1xx never reaches a client: the host answers 500 instead).
const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// One route of one plugin: the template, not the concrete path, so that cardinality is bounded
/// by the routes plugins declare.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    plugin: String,
    dialect: &'static str,
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteClassLabels {
    plugin: String,
    dialect: &'static str,
    method: &'static str,
    route: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginInfoLabels {
    plugin: String,
    version: String,
    sha256: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    dialect: &'static str,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StanzaLabels {
    direction: &'static str,
    kind: &'static str,
}

/// Every metric of the server. One per process, shared as an `Arc` by the HTTP layer, the plugin
/// host and the c2s listener.
pub struct Metrics {
    /// Only read, by scrapes; every family in it is also held below.
    registry: Registry,
    route_answers: Family<RouteClassLabels, Counter>,
    route_durations: Family<RouteLabels, Histogram>,
    route_deadline_kills: Family<RouteLabels, Counter>,
    route_traps: Family<RouteLabels, Counter>,
    route_memory_limit_hits: Family<RouteLabels, Counter>,
    route_oversized_responses: Family<RouteLabels, Counter>,
    plugin_loads: Family<PluginLabels, Counter>,
    plugin_reloads: Family<PluginLabels, Counter>,
    plugin_unloads: Family<PluginLabels, Counter>,
    plugin_load_failures: Family<PluginLabels, Counter>,
    /// `1` for the serving version of each loaded plugin; changed only under the plugin host's
    /// load lock, so a reload removes exactly the series it replaces.
    plugin_info: Family<PluginInfoLabels, Gauge>,
    /// `1` while a loaded plugin is healthy, `0` once its calls keep failing (see
    /// `plugins::health`); set only when that changes, never per call.
    plugin_healthy: Family<PluginLabels, Gauge>,
    /// By dialect (in `Dialect::ALL` order), then 4xx and 5xx: a refusal is never a success.
    refused: [[Counter; 2]; 2],
    /// By [`stanza_kind`]: received from clients, then sent to them.
    stanzas_in: [Counter; 3],
    stanzas_out: [Counter; 3],
    /// Open c2s connections. Kept rather than read at scrape time because nothing else counts
    /// connections that have not bound a resource; it changes once per connection, not per stanza.
    c2s_sessions: Gauge,
    /// Times a client went over `c2s.max_stanzas_per_s` and reading from it was paused.
    c2s_throttled: Counter,
    /// Sessions closed because their client stopped reading and `c2s.max_backlog_kib` filled.
    c2s_backlog_overflows: Counter,
}

/// The handles of one route, cloned out of the families when the route table is built, so that a
/// call records with atomic increments only.
pub struct RouteMetrics {
    /// By status class, as [`CLASSES`].
    answers: [Counter; 4],
    duration: Histogram,
    deadline_kills: Counter,
    traps: Counter,
    memory_limit_hits: Counter,
    oversized_responses: Counter,
}

/// Keeps one c2s connection counted in `plughost_c2s_sessions` until dropped.
pub struct SessionCounted(Gauge);

impl Drop for SessionCounted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// The registry with every metric at zero; `server` and `started` feed the gauges read at
    /// scrape time.
    pub fn new(server: Server, started: Instant) -> Metrics {
        let mut registry = Registry::with_prefix("plughost");
        let route_answers = Family::<RouteClassLabels, Counter>::default();
        registry.register(
            "plugin_requests",
            "Requests answered by a plugin route (or by the host when the plugin failed), by status class",
            route_answers.clone(),
        );
        let route_durations = Family::<RouteLabels, Histogram>::default();
        registry.register(
            "plugin_request_duration_seconds",
            "Time from the route lookup to the answer of plugin routes: the access check, reading the \
             body, the plugin call (queue, instantiation, run) and the audit record of a mutating route",
            route_durations.clone(),
        );
        let route_deadline_kills = Family::<RouteLabels, Counter>::default();
        registry.register(
            "plugin_deadline_kills",
            "Plugin calls stopped at their deadline (answered 503)",
            route_deadline_kills.clone(),
        );
        let route_traps = Family::<RouteLabels, Counter>::default();
        registry.register(
            "plugin_traps",
            "Plugin calls that trapped (a panic, unreachable, a bad access; answered 500)",
            route_traps.clone(),
        );
        let route_memory_limit_hits = Family::<RouteLabels, Counter>::default();
        registry.register(
            "plugin_memory_limit_hits",
            "Plugin calls that went over their memory cap (answered 500)",
            route_memory_limit_hits.clone(),
        );
        let route_oversized_responses = Family::<RouteLabels, Counter>::default();
        registry.register(
            "plugin_oversized_responses",
            "Plugin answers whose body was over the plugin's response cap (answered 500 by the host)",
            route_oversized_responses.clone(),
        );
        let plugin_loads = Family::<PluginLabels, Counter>::default();
        registry.register("plugin_loads", "Plugins loaded where none was serving", plugin_loads.clone());
        let plugin_reloads = Family::<PluginLabels, Counter>::default();
        registry.register(
            "plugin_reloads",
            "Serving plugins replaced by another version",
            plugin_reloads.clone(),
        );
        let plugin_unloads = Family::<PluginLabels, Counter>::default();
        registry.register("plugin_unloads", "Plugins unloaded", plugin_unloads.clone());
        let plugin_load_failures = Family::<PluginLabels, Counter>::default();
        registry.register(
            "plugin_load_failures",
            "Plugin files that could not be loaded (unreadable, invalid, ungranted import, bad manifest, \
             route conflict); the serving version, if any, stayed",
            plugin_load_failures.clone(),
        );
        let plugin_info = Family::<PluginInfoLabels, Gauge>::default();
        registry.register(
            "plugin_info",
            "1 for the serving version of each loaded plugin, with its manifest version and the sha-256 \
             of its file",
            plugin_info.clone(),
        );
        let plugin_healthy = Family::<PluginLabels, Gauge>::default();
        registry.register(
            "plugin_healthy",
            "1 while a loaded plugin is healthy, 0 after its latest calls all failed (deadline, trap, \
             memory cap, oversized answer); a success or a reload sets it back to 1",
            plugin_healthy.clone(),
        );
        let refused_family = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "http_refused",
            "Requests the host answered itself before any plugin ran (unknown path or method, \
             whitelist, TLS, authentication, access rules, body size), by dialect and status class",
            refused_family.clone(),
        );
        let refused = Dialect::ALL.map(|dialect| {
            ["4xx", "5xx"].map(|class| {
                refused_family.get_or_create_owned(&RefusedLabels { dialect: dialect.name(), class })
            })
        });
        let stanzas = Family::<StanzaLabels, Counter>::default();
        registry.register(
            "c2s_stanzas",
            "Stanzas of bound c2s sessions, received from clients (in) and written to them (out), by kind",
            stanzas.clone(),
        );
        let stanza_counters = |direction| {
            STANZA_KINDS.map(|kind| stanzas.get_or_create_owned(&StanzaLabels { direction, kind }))
        };
        let (stanzas_in, stanzas_out) = (stanza_counters("in"), stanza_counters("out"));
        let c2s_sessions = Gauge::default();
        registry.register("c2s_sessions", "Open c2s connections, authenticated or not", c2s_sessions.clone());
        let c2s_throttled = Counter::default();
        registry.register(
            "c2s_throttled",
            "Times a client went over the stanza rate and reading from it was paused",
            c2s_throttled.clone(),
        );
        let c2s_backlog_overflows = Counter::default();
        registry.register(
            "c2s_backlog_overflows",
            "Sessions closed because their client stopped reading and its backlog filled up",
            c2s_backlog_overflows.clone(),
        );
        registry.register_collector(Box::new(collector::ScrapeTime { server, started }));
        Metrics {
            registry,
            route_answers,
            route_durations,
            route_deadline_kills,
            route_traps,
            route_memory_limit_hits,
            route_oversized_responses,
            plugin_loads,
            plugin_reloads,
            plugin_unloads,
            plugin_load_failures,
            plugin_info,
            plugin_healthy,
            refused,
            stanzas_in,
            stanzas_out,
            c2s_sessions,
            c2s_throttled,
            c2s_backlog_overflows,
        }
    }

    /// The exposition of every metric, in the Prometheus text format. Blocking: it counts the
    /// offline queue in the database.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// The handles of one route (the same series again for a route that served before, so that
    /// counts go on across reloads).
    pub fn route(
        &self,
        plugin: &str,
        dialect: Dialect,
        method: &'static str,
        template: &str,
    ) -> RouteMetrics {
        let labels = RouteLabels {
            plugin: plugin.to_owned(),
            dialect: dialect.name(),
            method,
            route: template.to_owned(),
        };
        let answers = CLASSES.map(|class| {
            self.route_answers.get_or_create_owned(&RouteClassLabels {
                plugin: labels.plugin.clone(),
                dialect: labels.dialect,
                method,
                route: labels.route.clone(),
                class,
            })
        });
        RouteMetrics {
            answers,
            duration: self.route_durations.get_or_create_owned(&labels),
            deadline_kills: self.route_deadline_kills.get_or_create_owned(&labels),
            traps: self.route_traps.get_or_create_owned(&labels),
            memory_limit_hits: self.route_memory_limit_hits.get_or_create_owned(&labels),
            oversized_responses: self.route_oversized_responses.get_or_create_owned(&labels),
        }
    }

    /// `plugin` serves now, in place of `replaced` if that was serving.
    pub fn plugin_loaded(&self, plugin: &LoadedPlugin, replaced: Option<&LoadedPlugin>) {
        let labels = PluginLabels { plugin: plugin.name.to_string() };
        match replaced {
            Some(old) => {
                self.plugin_info.remove(&info_labels(old));
                self.plugin_reloads.get_or_create(&labels).inc();
            }
            None => {
                self.plugin_loads.get_or_create(&labels).inc();
            }
        }
        self.plugin_info.get_or_create(&info_labels(plugin)).set(1);
        self.plugin_health(&plugin.name, true);
    }

    /// Whether the serving version of `plugin` is healthy now.
    pub fn plugin_health(&self, plugin: &str, healthy: bool) {
        self.plugin_healthy.get_or_create(&PluginLabels { plugin: plugin.to_owned() }).set(healthy.into());
    }

    pub fn plugin_unloaded(&self, plugin: &LoadedPlugin) {
        self.plugin_info.remove(&info_labels(plugin));
        self.plugin_healthy.remove(&PluginLabels { plugin: plugin.name.to_string() });
        self.plugin_unloads.get_or_create(&PluginLabels { plugin: plugin.name.to_string() }).inc();
    }

    pub fn plugin_load_failed(&self, name: &str) {
        self.plugin_load_failures.get_or_create(&PluginLabels { plugin: name.to_owned() }).inc();
    }

    /// A request to `dialect` that the host answered with `status` without calling a plugin.
    pub fn refused(&self, dialect: Dialect, status: u16) {
        let by_class = match dialect {
            Dialect::AdminRest => &self.refused[0],
            Dialect::Api => &self.refused[1],
        };
        by_class[usize::from(status >= 500)].inc();
    }

    pub fn stanza_received(&self, stanza: &Stanza) {
        self.stanzas_in[stanza_kind(stanza)].inc();
    }

    pub fn stanza_sent(&self, stanza: &Stanza) {
        self.stanzas_out[stanza_kind(stanza)].inc();
    }

    pub fn c2s_throttled(&self) {
        self.c2s_throttled.inc();
    }

    pub fn c2s_backlog_overflow(&self) {
        self.c2s_backlog_overflows.inc();
    }

    /// Counts one c2s connection until the returned guard is dropped.
    pub fn c2s_session(&self) -> SessionCounted {
        self.c2s_sessions.inc();
        SessionCounted(self.c2s_sessions.clone())
    }
}

impl RouteMetrics {
    /// Records one call that reached the plugin: the status answered, the time since the route was
    /// looked up, and how the call failed, if it did.
    pub fn record(&self, status: u16, elapsed: Duration, failure: Option<&CallError>) {
        let class = usize::from(status / 100).clamp(2, 5) - 2;
        self.answers[class].inc();
        self.duration.observe(elapsed);
        let counter = match failure {
            Some(CallError::Deadline { .. }) => &self.deadline_kills,
            Some(CallError::Trap { .. }) => &self.traps,
            Some(CallError::MemoryLimit { .. }) => &self.memory_limit_hits,
            Some(CallError::OversizedResponse { .. }) => &self.oversized_responses,
            Some(CallError::Instantiate { .. }) | None => return,
        };
        counter.inc();
    }
}

const STANZA_KINDS: [&str; 3] = ["message", "presence", "iq"];

/// The index of `stanza`'s kind in [`STANZA_KINDS`].
fn stanza_kind(stanza: &Stanza) -> usize {
    match stanza {
        Stanza::Message(_) => 0,
        Stanza::Presence(_) => 1,
        Stanza::Iq(_) => 2,
    }
}

fn info_labels(plugin: &LoadedPlugin) -> PluginInfoLabels {
    PluginInfoLabels {
        plugin: plugin.name.to_string(),
        version: plugin.manifest.version.clone(),
        sha256: plugin.sha256.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;

    fn metrics() -> Metrics {
        Metrics::new(Server::new(vec!["localhost".into()], Db::in_memory().unwrap()), Instant::now())
    }

    fn line<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines().find(|line| line.starts_with(start)).unwrap_or_else(|| panic!("no {start} in\n{text}"))
    }

    #[test]
    fn a_route_counts_by_class_and_failure_kind() {
        let metrics = metrics();
        let route = metrics.route("user", Dialect::AdminRest, "GET", "/user/{name}");
        for status in [200, 201, 404, 700] {
            route.record(status, Duration::from_millis(1), None);
        }
        let deadline = CallError::Deadline { plugin: "user".into(), deadline_ms: 10 };
        route.record(503, Duration::from_millis(10), Some(&deadline));
        // The same series again, as after a reload.
        let again = metrics.route("user", Dialect::AdminRest, "GET", "/user/{name}");
        again.record(200, Duration::from_millis(1), None);
        let text = metrics.encode().unwrap();
        let labels = r#"plugin="user",dialect="admin_rest",method="GET",route="/user/{name}""#;
        for (class, count) in [("2xx", 3), ("3xx", 0), ("4xx", 1), ("5xx", 2)] {
            let start = format!("plughost_plugin_requests_total{{{labels},class=\"{class}\"}} ");
            assert_eq!(line(&text, &start), format!("{start}{count}"));
        }
        let count = format!("plughost_plugin_request_duration_seconds_count{{{labels}}} ");
        assert_eq!(line(&text, &count), format!("{count}6"));
        let kills = format!("plughost_plugin_deadline_kills_total{{{labels}}} ");
        assert_eq!(line(&text, &kills), format!("{kills}1"));
        let traps = format!("plughost_plugin_traps_total{{{labels}}} ");
        assert_eq!(line(&text, &traps), format!("{traps}0"));
    }

    #[test]
    fn refusals_stanzas_and_sessions() {
        let metrics = metrics();
        metrics.refused(Dialect::Api, 401);
        metrics.refused(Dialect::Api, 503);
        metrics.refused(Dialect::AdminRest, 404);
        let session = metrics.c2s_session();
        let _other = metrics.c2s_session();
        drop(session);
        let message = Stanza::Message(tokio_xmpp::parsers::message::Message::new(None::<jid::Jid>));
        metrics.stanza_received(&message);
        metrics.stanza_sent(&message);
        metrics.stanza_sent(&message);
        let text = metrics.encode().unwrap();
        for expected in [
            r#"plughost_http_refused_total{dialect="api",class="4xx"} 1"#,
            r#"plughost_http_refused_total{dialect="api",class="5xx"} 1"#,
            r#"plughost_http_refused_total{dialect="admin_rest",class="4xx"} 1"#,
            r#"plughost_c2s_stanzas_total{direction="in",kind="message"} 1"#,
            r#"plughost_c2s_stanzas_total{direction="out",kind="message"} 2"#,
            r#"plughost_c2s_stanzas_total{direction="out",kind="iq"} 0"#,
            "plughost_c2s_sessions 1",
            "plughost_c2s_authenticated_sessions 0",
            "plughost_offline_queue_messages 0",
            "# TYPE plughost_process_uptime_seconds gauge",
        ] {
            assert!(text.lines().any(|line| line == expected), "no {expected:?} in\n{text}");
        }
    }
}
