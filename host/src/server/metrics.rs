//! Prometheus text-format metrics (`GET /metrics`), hand-rolled: counters
//! and histograms keyed by name and label set. Gauges that describe current
//! state (breakers, in-flight, audit batches) are rendered at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

type Key = (&'static str, String);

/// Counters and histograms.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Key, u64>>,
    histograms: Mutex<BTreeMap<Key, Histogram>>,
}

/// Formats a label set: `a="x",b="y"` (values escaped).
pub fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(&self, name: &'static str, labels: String, n: u64) {
        let mut c = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *c.entry((name, labels)).or_default() += n;
    }

    /// Observes a duration in a histogram.
    pub fn observe(&self, name: &'static str, labels: String, d: Duration) {
        let secs = d.as_secs_f64();
        let mut h = self
            .histograms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = h.entry((name, labels)).or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Renders counters and histograms in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut last = "";
        for ((name, labels), v) in counters.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
        drop(counters);
        let hist = self
            .histograms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut last = "";
        for ((name, labels), h) in hist.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = name;
            }
            let sep = if labels.is_empty() { "" } else { "," };
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.add("warden_requests_total", labels(&[("outcome", "ok")]), 2);
        m.observe(
            "warden_stage_seconds",
            labels(&[("stage", "route")]),
            Duration::from_millis(2),
        );
        let mut s = String::new();
        m.render(&mut s);
        assert!(s.contains("warden_requests_total{outcome=\"ok\"} 2"), "{s}");
        assert!(
            s.contains("warden_stage_seconds_bucket{stage=\"route\",le=\"0.005\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("warden_stage_seconds_count{stage=\"route\"} 1"),
            "{s}"
        );
    }
}
