//! What the service reports: per-source status for `/status` and Prometheus metrics for
//! `/metrics` (reconciles by outcome, a duration histogram, last success time, drift repairs).

use super::Trigger;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Converged, with changes.
    Changed,
    /// Converged; nothing to do.
    Unchanged,
    /// Some action failed; what could be kept was kept.
    Failed,
    /// The plan had conflicts (or would empty the project): nothing applied.
    Refused,
    /// The revision does not validate: nothing applied.
    Invalid,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Changed => "changed",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
            Outcome::Invalid => "invalid",
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    pub name: String,
    pub repo: String,
    pub project: Option<String>,
    /// The revision last applied successfully.
    pub applied_revision: Option<String>,
    pub last_revision: Option<String>,
    pub last_trigger: Option<Trigger>,
    pub last_outcome: Option<Outcome>,
    pub last_error: Option<String>,
    pub last_attempt_unix: Option<f64>,
    pub last_success_unix: Option<f64>,
    pub last_duration_ms: Option<u128>,
    pub reconciles: u64,
    pub drift_repairs: u64,
    /// The source could not be read at the last attempt; the last good revision stays deployed.
    pub source_unavailable: Option<String>,
    /// Seconds until a failing revision is retried.
    pub retry_in: Option<u64>,
    /// When it is retried.
    pub next_retry_unix: Option<f64>,
    /// A reconcile of it is under way.
    pub reconciling: bool,
}

impl SourceStatus {
    pub fn record(
        &mut self,
        revision: Option<String>,
        why: Trigger,
        outcome: Outcome,
        took: Duration,
        error: Option<String>,
        now: f64,
    ) {
        self.reconciles += 1;
        self.last_trigger = Some(why);
        self.last_outcome = Some(outcome);
        self.last_attempt_unix = Some(now);
        self.last_duration_ms = Some(took.as_millis());
        if matches!(outcome, Outcome::Changed | Outcome::Unchanged) {
            self.applied_revision = revision.clone();
            self.last_success_unix = Some(now);
            self.last_error = None;
            self.retry_in = None;
            self.next_retry_unix = None;
        } else {
            self.last_error = error;
        }
        self.last_revision = revision;
    }

    /// The source was read (valid or not). Only a read says so: a reconcile of the last good
    /// revision (drift repair while the source is away) says nothing about the source.
    pub fn source_read(&mut self) {
        self.source_unavailable = None;
    }

    pub fn source_unavailable(&mut self, error: &str) {
        self.source_unavailable = Some(error.to_string());
    }
}

const BUCKETS: [f64; 9] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: BTreeMap<(String, &'static str), u64>,
    /// Per source: bucket counts, sum, count.
    durations: BTreeMap<String, ([u64; BUCKETS.len()], f64, u64)>,
    drift: BTreeMap<String, u64>,
}

impl Metrics {
    pub fn observe(&mut self, source: &str, outcome: Outcome, took: Duration) {
        *self.reconciles.entry((source.to_string(), outcome.as_str())).or_default() += 1;
        let secs = took.as_secs_f64();
        let h = self.durations.entry(source.to_string()).or_insert(([0; BUCKETS.len()], 0.0, 0));
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.0[i] += 1;
            }
        }
        h.1 += secs;
        h.2 += 1;
    }

    pub fn drift_repairs(&mut self, source: &str) {
        *self.drift.entry(source.to_string()).or_default() += 1;
    }

    /// The Prometheus text exposition format.
    pub fn render(&self, statuses: &[SourceStatus]) -> String {
        let mut out = String::new();
        out.push_str("# HELP hawser_reconciles_total Reconciles by source and outcome.\n# TYPE hawser_reconciles_total counter\n");
        for ((source, outcome), n) in &self.reconciles {
            let _ = writeln!(out, "hawser_reconciles_total{{source=\"{source}\",outcome=\"{outcome}\"}} {n}");
        }
        out.push_str("# HELP hawser_reconcile_duration_seconds Time of one reconcile.\n# TYPE hawser_reconcile_duration_seconds histogram\n");
        for (source, (buckets, sum, count)) in &self.durations {
            for (b, n) in BUCKETS.iter().zip(buckets) {
                let _ = writeln!(out, "hawser_reconcile_duration_seconds_bucket{{source=\"{source}\",le=\"{b}\"}} {n}");
            }
            let _ =
                writeln!(out, "hawser_reconcile_duration_seconds_bucket{{source=\"{source}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "hawser_reconcile_duration_seconds_sum{{source=\"{source}\"}} {sum}");
            let _ = writeln!(out, "hawser_reconcile_duration_seconds_count{{source=\"{source}\"}} {count}");
        }
        out.push_str("# HELP hawser_last_success_timestamp_seconds When the source last converged.\n# TYPE hawser_last_success_timestamp_seconds gauge\n");
        for s in statuses {
            if let Some(t) = s.last_success_unix {
                let _ = writeln!(out, "hawser_last_success_timestamp_seconds{{source=\"{}\"}} {t:.3}", s.name);
            }
        }
        out.push_str("# HELP hawser_drift_repairs_total Reconciles after an engine event that changed something.\n# TYPE hawser_drift_repairs_total counter\n");
        for s in statuses {
            let n = self.drift.get(&s.name).copied().unwrap_or(0);
            let _ = writeln!(out, "hawser_drift_repairs_total{{source=\"{}\"}} {n}", s.name);
        }
        out.push_str("# HELP hawser_source_up Whether the source could be read at the last attempt.\n# TYPE hawser_source_up gauge\n");
        for s in statuses {
            let _ =
                writeln!(out, "hawser_source_up{{source=\"{}\"}} {}", s.name, u8::from(s.source_unavailable.is_none()));
        }
        out
    }
}
