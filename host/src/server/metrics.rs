//! The daemon's metrics (`GET /metrics`, Prometheus text format 0.0.4),
//! on `prometheus-client`.
//!
//! Owns the catalogue of metrics (name, help, type, buckets; the table in
//! docs/operations.md "Monitoring"), the counters and histograms the request
//! path records ([`Metrics::add`], [`Metrics::observe`]), and rendering
//! them with the gauges read at scrape time ([`Scrape`]). Label values are
//! escaped by the encoder (`\\`, `"`, newline).
//!
//! It must never block on I/O or a store (scrape-time values are gathered
//! by the caller first), never create a metric the catalogue does not name
//! (an unknown name is dropped and logged), and never take a label value
//! from an unbounded source (request ids, inputs).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, LabelSetEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::time::Duration;

/// The `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Bucket upper bounds for whole workflow runs, in seconds: a run that
/// waits for a human takes hours.
const RUN_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0, 86400.0,
];

/// Counters the request path adds to: name as scraped, help.
const COUNTERS: &[(&str, &str)] = &[
    (
        "warden_requests_total",
        "Answers by outcome class (including pending_approval)",
    ),
    (
        "warden_queue_timeouts_total",
        "503 overloaded: no concurrency slot within queue_timeout",
    ),
    ("warden_retries_total", "Retried attempts"),
    ("warden_fuel_used_total", "Fuel consumed"),
    (
        "warden_budget_exhaustions_total",
        "Invocations ended budget_exhausted:<budget>",
    ),
    (
        "warden_denials_total",
        "Auth failures, policy and tenant denials, refused approval decisions",
    ),
    ("warden_reloads_total", "Reloads, applied or rejected"),
    (
        "warden_idempotent_replays_total",
        "Answers replayed for an idempotency key",
    ),
    ("warden_approvals_held_total", "Requests held for approval"),
    (
        "warden_approval_decisions_total",
        "Approvals and denials recorded",
    ),
    (
        "warden_approval_expiries_total",
        "Held requests that expired",
    ),
    (
        "warden_connections_closed_total",
        "Connections closed by the daemon, by reason",
    ),
    (
        "warden_connections_refused_total",
        "Connections refused at the connection limit",
    ),
    (
        "warden_requests_shed_total",
        "Requests shed while the daemon was overloaded",
    ),
    (
        "warden_workflow_runs_total",
        "Workflow runs that ended (completed, compensated, cancelled) or stopped in needs_attention, by workflow and state",
    ),
    (
        "warden_workflow_runs_escalated_total",
        "Ended workflow runs that waited for a human (an approval step that was not skipped)",
    ),
    (
        "warden_workflow_run_fuel_total",
        "Fuel of completed workflow runs (every attempt and compensation of the run), by workflow",
    ),
    (
        "warden_workflow_run_model_tokens_total",
        "Model tokens (input + output) of completed workflow runs, by workflow",
    ),
];

/// Histograms the request path observes into: name, help, buckets.
const HISTOGRAMS: &[(&str, &str, &[f64])] = &[
    (
        "warden_stage_seconds",
        "Time per request stage: route, queue, execute, audit_commit",
        BUCKETS,
    ),
    (
        "warden_approval_latency_seconds",
        "From holding a request to its end (executed, denied, expired)",
        BUCKETS,
    ),
    (
        "warden_workflow_step_seconds",
        "Wall time of each workflow step attempt (and compensation), by workflow and step",
        BUCKETS,
    ),
    (
        "warden_workflow_run_seconds",
        "Wall time of a workflow run from its start to its end, by workflow and state",
        RUN_BUCKETS,
    ),
];

/// A label set, in the order given (values escaped when rendered).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Vec<(String, String)>);

impl EncodeLabelSet for Labels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

/// The label set `pairs`, for [`Metrics::add`] and [`Metrics::observe`].
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
    )
}

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The counters and histograms of one daemon (in memory; they restart at
/// zero).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    counters: HashMap<&'static str, Family<Labels, Counter>>,
    histograms: HashMap<&'static str, HistogramFamily>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let mut counters = HashMap::new();
        for (name, help) in COUNTERS {
            let family = Family::<Labels, Counter>::default();
            // The encoder appends `_total` to counters.
            let base = name.strip_suffix("_total").unwrap_or(name);
            registry.register(base, *help, family.clone());
            counters.insert(*name, family);
        }
        let mut histograms = HashMap::new();
        for (name, help, buckets) in HISTOGRAMS {
            let family: HistogramFamily = if std::ptr::eq(*buckets, RUN_BUCKETS) {
                Family::new_with_constructor(|| Histogram::new(RUN_BUCKETS.iter().copied()))
            } else {
                Family::new_with_constructor(|| Histogram::new(BUCKETS.iter().copied()))
            };
            registry.register(*name, *help, family.clone());
            histograms.insert(*name, family);
        }
        Metrics {
            registry,
            counters,
            histograms,
        }
    }
}

impl Metrics {
    /// Adds `n` to a counter of the catalogue (an unknown name is dropped
    /// and logged).
    pub fn add(&self, name: &'static str, labels: impl Into<Labels>, n: u64) {
        let labels = labels.into();
        match self.counters.get(name) {
            Some(family) => {
                family.get_or_create(&labels).inc_by(n);
            }
            None => tracing::warn!(metric = name, "not a counter of the catalogue; dropped"),
        }
    }

    /// Observes a duration in a histogram of the catalogue (an unknown name
    /// is dropped and logged).
    pub fn observe(&self, name: &'static str, labels: impl Into<Labels>, d: Duration) {
        let labels = labels.into();
        match self.histograms.get(name) {
            Some(family) => family.get_or_create(&labels).observe(d.as_secs_f64()),
            None => tracing::warn!(metric = name, "not a histogram of the catalogue; dropped"),
        }
    }

    /// Renders every metric, then the scrape-time values, in the
    /// Prometheus text format.
    pub fn render(&self, out: &mut String, scrape: Scrape) {
        let mut now = Registry::default();
        now.register_collector(Box::new(scrape));
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(out, &self.registry);
        let _ = prometheus_text::encode(out, &now);
    }
}

/// Values read when `/metrics` is scraped: current state, not counts.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Per capability: its breaker (0 closed, 1 open, 2 half-open).
    pub breakers: Vec<(String, i64)>,
    /// Per capability: busy concurrency slots.
    pub in_flight: Vec<(String, i64)>,
    /// `POST /v1/requests` calls being handled.
    pub requests_active: i64,
    /// Held requests now.
    pub pending_approvals: i64,
    /// Age of the oldest held request, in seconds (0 when none).
    pub oldest_pending_approval_age_seconds: f64,
    /// The audit log's group commits, when the daemon has an audit log.
    pub audit_commits: Option<AuditCommits>,
    /// Per workflow: runs stopped in `needs_attention` now.
    pub needs_attention: Vec<(String, i64)>,
    /// Seconds since the longest-waiting run in `needs_attention` stopped
    /// (0 when none).
    pub oldest_needs_attention_age_seconds: f64,
}

/// The audit log's group-commit statistics.
#[derive(Debug, Default)]
pub struct AuditCommits {
    /// Commits whose batch had at most `2^i` entries and more than
    /// `2^(i-1)`, for each `i`.
    pub batch_sizes: Vec<u64>,
    /// Commits.
    pub commits: u64,
    /// Entries committed.
    pub entries: u64,
    /// Time appenders waited for their entry to be durable, summed.
    pub wait: Duration,
}

/// One metric without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One gauge per capability.
fn per_capability(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(String, i64)],
) -> Result<(), std::fmt::Error> {
    per_label(encoder, "capability", name, help, values)
}

/// One gauge per value of label `label`.
fn per_label(
    encoder: &mut DescriptorEncoder,
    label: &str,
    name: &str,
    help: &str,
    values: &[(String, i64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, v) in values {
        let labels = [(label, value.as_str())];
        ConstGauge::new(*v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        per_capability(
            e,
            "warden_breaker_state",
            "Circuit breaker per capability: 0 closed, 1 open, 2 half-open",
            &self.breakers,
        )?;
        per_capability(
            e,
            "warden_capability_in_flight",
            "Busy concurrency slots per capability",
            &self.in_flight,
        )?;
        single(
            e,
            "warden_requests_active",
            "POST /v1/requests calls being handled (queued, running, retrying)",
            ConstGauge::new(self.requests_active),
        )?;
        single(
            e,
            "warden_pending_approvals",
            "Requests held for approval now",
            ConstGauge::new(self.pending_approvals),
        )?;
        single(
            e,
            "warden_oldest_pending_approval_age_seconds",
            "Age of the oldest held request",
            ConstGauge::new(self.oldest_pending_approval_age_seconds),
        )?;
        per_label(
            e,
            "workflow",
            "warden_workflow_runs_needs_attention",
            "Workflow runs stopped in needs_attention now, by workflow",
            &self.needs_attention,
        )?;
        single(
            e,
            "warden_workflow_oldest_needs_attention_age_seconds",
            "Seconds since the longest-waiting run in needs_attention stopped",
            ConstGauge::new(self.oldest_needs_attention_age_seconds),
        )?;
        if let Some(a) = &self.audit_commits {
            // Bucket `i` holds the commits of at most 2^i entries.
            let buckets: Vec<(f64, u64)> = a
                .batch_sizes
                .iter()
                .zip(std::iter::successors(Some(1f64), |le| Some(le * 2.0)))
                .map(|(n, le)| (le, *n))
                .collect();
            e.encode_descriptor(
                "warden_audit_commit_batch_size",
                "Entries per audit commit; _sum is the entries committed",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(
                a.entries as f64,
                a.commits,
                &buckets,
                None,
            )?;
            single(
                e,
                "warden_audit_commit_wait_seconds",
                "Time appenders spent waiting for their entry to be durable, summed",
                ConstCounter::new(a.wait.as_secs_f64()),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(m: &Metrics, scrape: Scrape) -> String {
        let mut s = String::new();
        m.render(&mut s, scrape);
        s
    }

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.add("warden_requests_total", labels(&[("outcome", "ok")]), 2);
        m.observe(
            "warden_stage_seconds",
            labels(&[("stage", "route")]),
            Duration::from_millis(2),
        );
        let s = rendered(&m, Scrape::default());
        assert!(s.contains("# TYPE warden_requests_total counter\n"), "{s}");
        assert!(
            s.contains("warden_requests_total{outcome=\"ok\"} 2\n"),
            "{s}"
        );
        assert!(s.contains("# TYPE warden_stage_seconds histogram\n"), "{s}");
        assert!(
            s.contains("warden_stage_seconds_bucket{stage=\"route\",le=\"0.001\"} 0\n"),
            "{s}"
        );
        assert!(
            s.contains("warden_stage_seconds_bucket{stage=\"route\",le=\"0.005\"} 1\n"),
            "{s}"
        );
        assert!(
            s.contains("warden_stage_seconds_bucket{stage=\"route\",le=\"5\"} 1\n"),
            "{s}"
        );
        assert!(
            s.contains("warden_stage_seconds_bucket{stage=\"route\",le=\"+Inf\"} 1\n"),
            "{s}"
        );
        assert!(
            s.contains("warden_stage_seconds_count{stage=\"route\"} 1\n"),
            "{s}"
        );
    }

    #[test]
    fn label_values_with_quotes_backslashes_and_newlines_are_escaped() {
        let m = Metrics::default();
        m.add(
            "warden_denials_total",
            labels(&[("reason", "a\"b\\c\nd")]),
            1,
        );
        let s = rendered(
            &m,
            Scrape {
                breakers: vec![("x\"y\\z\nw".into(), 1)],
                ..Scrape::default()
            },
        );
        assert!(
            s.contains("warden_denials_total{reason=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{s}"
        );
        assert!(
            s.contains("warden_breaker_state{capability=\"x\\\"y\\\\z\\nw\"} 1\n"),
            "{s}"
        );
        // Every sample is on one line: the raw newline never reaches the output.
        for line in s.lines() {
            assert!(
                line.starts_with('#') || line.starts_with("warden_"),
                "{line:?}"
            );
        }
    }

    #[test]
    fn every_documented_metric_has_help_and_type_lines() {
        let m = Metrics::default();
        // Like the hand-rolled renderer, a family shows once it has a series.
        for (name, _) in COUNTERS {
            m.add(name, labels(&[]), 1);
        }
        for (name, _, _) in HISTOGRAMS {
            m.observe(name, labels(&[]), Duration::ZERO);
        }
        let s = rendered(
            &m,
            Scrape {
                audit_commits: Some(AuditCommits::default()),
                ..Scrape::default()
            },
        );
        const OPERATIONS: &str = include_str!("../../../docs/operations.md");
        let documented: Vec<&str> = OPERATIONS
            .split('`')
            .filter(|w| w.starts_with("warden_"))
            .map(|w| {
                let end = w
                    .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                    .unwrap_or(w.len());
                &w[..end]
            })
            .collect();
        assert!(documented.len() > 15, "{documented:?}");
        for name in documented {
            assert!(s.contains(&format!("# HELP {name} ")), "{name} in {s}");
            assert!(s.contains(&format!("# TYPE {name} ")), "{name} in {s}");
        }
        let histograms = HISTOGRAMS.iter().map(|(name, help, _)| (*name, *help));
        for (name, _) in COUNTERS.iter().copied().chain(histograms) {
            assert!(s.contains(&format!("# TYPE {name} ")), "{name} in {s}");
        }
    }

    #[test]
    fn scrape_time_gauges_and_the_audit_histogram_render_as_before() {
        let m = Metrics::default();
        let s = rendered(
            &m,
            Scrape {
                breakers: vec![("echo".into(), 1)],
                in_flight: vec![("echo".into(), 3)],
                requests_active: 4,
                pending_approvals: 1,
                oldest_pending_approval_age_seconds: 2.5,
                audit_commits: Some(AuditCommits {
                    batch_sizes: vec![2, 0, 1],
                    commits: 3,
                    entries: 6,
                    wait: Duration::from_millis(1500),
                }),
                needs_attention: vec![("order-refund".into(), 2)],
                oldest_needs_attention_age_seconds: 7.5,
            },
        );
        for line in [
            "# TYPE warden_breaker_state gauge",
            "warden_breaker_state{capability=\"echo\"} 1",
            "warden_capability_in_flight{capability=\"echo\"} 3",
            "warden_requests_active 4",
            "warden_pending_approvals 1",
            "warden_oldest_pending_approval_age_seconds 2.5",
            "# TYPE warden_audit_commit_batch_size histogram",
            "warden_audit_commit_batch_size_bucket{le=\"1\"} 2",
            "warden_audit_commit_batch_size_bucket{le=\"2\"} 2",
            "warden_audit_commit_batch_size_bucket{le=\"4\"} 3",
            "warden_audit_commit_batch_size_bucket{le=\"+Inf\"} 3",
            "warden_audit_commit_batch_size_count 3",
            "# TYPE warden_audit_commit_wait_seconds_total counter",
            "warden_audit_commit_wait_seconds_total 1.5",
            "# TYPE warden_workflow_runs_needs_attention gauge",
            "warden_workflow_runs_needs_attention{workflow=\"order-refund\"} 2",
            "warden_workflow_oldest_needs_attention_age_seconds 7.5",
        ] {
            assert!(s.lines().any(|l| l == line), "{line:?} missing in {s}");
        }
        let sum: f64 = s
            .lines()
            .find_map(|l| l.strip_prefix("warden_audit_commit_batch_size_sum "))
            .and_then(|v| v.parse().ok())
            .expect("sum");
        assert_eq!(sum, 6.0);
    }

    #[test]
    fn workflow_run_durations_have_buckets_of_hours_and_step_latencies_of_milliseconds() {
        let m = Metrics::default();
        let run = labels(&[("workflow", "order"), ("state", "completed")]);
        m.observe(
            "warden_workflow_run_seconds",
            run,
            Duration::from_secs(7200),
        );
        let step = labels(&[("workflow", "order"), ("step", "charge")]);
        m.observe(
            "warden_workflow_step_seconds",
            step,
            Duration::from_millis(3),
        );
        let s = rendered(&m, Scrape::default());
        for line in [
            "warden_workflow_run_seconds_bucket{workflow=\"order\",state=\"completed\",le=\"3600\"} 0",
            "warden_workflow_run_seconds_bucket{workflow=\"order\",state=\"completed\",le=\"14400\"} 1",
            "warden_workflow_step_seconds_bucket{workflow=\"order\",step=\"charge\",le=\"0.001\"} 0",
            "warden_workflow_step_seconds_bucket{workflow=\"order\",step=\"charge\",le=\"0.005\"} 1",
        ] {
            assert!(s.lines().any(|l| l == line), "{line:?} missing in {s}");
        }
    }

    #[test]
    fn a_name_outside_the_catalogue_is_dropped() {
        let m = Metrics::default();
        m.add("warden_made_up_total", labels(&[]), 1);
        m.observe("warden_made_up_seconds", labels(&[]), Duration::ZERO);
        let s = rendered(&m, Scrape::default());
        assert!(!s.contains("made_up"), "{s}");
    }

    #[test]
    fn a_counter_without_labels_has_no_braces() {
        let m = Metrics::default();
        m.add("warden_idempotent_replays_total", labels(&[]), 3);
        let s = rendered(&m, Scrape::default());
        assert!(s.contains("\nwarden_idempotent_replays_total 3\n"), "{s}");
    }
}
