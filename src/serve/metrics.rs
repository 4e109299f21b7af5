//! What the service reports: per-source status for `/status` and Prometheus metrics for
//! `/metrics` (reconciles by outcome, duration histograms of reconciles and of their phases,
//! last success time, drift repairs, and per managed container: running, healthy, restarts).

use super::Trigger;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;
use std::sync::atomic::AtomicU64;
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
/// Phases are shorter than whole reconciles: a fetch or plan takes milliseconds.
const PHASE_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceOutcome {
    source: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourcePhase {
    source: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    pub project: String,
    pub kind: String,
    pub name: String,
}

/// Where a reconcile's time went.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// Reading the source: fetch, parse, check.
    pub fetch: Option<Duration>,
    /// Observing the host and diffing.
    pub plan: Option<Duration>,
    /// Executing the plan.
    pub apply: Option<Duration>,
}

/// One managed object as the host has it, for the per-resource gauges.
pub struct ResourceSample {
    pub label: ResourceLabel,
    pub running: bool,
    /// `None` without a healthcheck.
    pub healthy: Option<bool>,
    pub restarts: i64,
    /// Memory in bytes and CPU time in seconds, where the target reads them (native).
    pub usage: Option<(u64, f64)>,
    /// A swarm service's tasks: running, and desired.
    pub tasks: Option<(u64, u64)>,
}

/// The service's metrics, in the Prometheus registry of `prometheus-client`.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<SourceOutcome, Counter>,
    durations: Family<SourceLabel, Histogram>,
    phases: Family<SourcePhase, Histogram>,
    drift: Family<SourceLabel, Counter>,
    last_success: Family<SourceLabel, Gauge<f64, AtomicU64>>,
    source_up: Family<SourceLabel, Gauge>,
    running: Family<ResourceLabel, Gauge>,
    healthy: Family<ResourceLabel, Gauge>,
    restarts: Family<ResourceLabel, Gauge>,
    memory: Family<ResourceLabel, Gauge>,
    cpu: Family<ResourceLabel, Gauge<f64, AtomicU64>>,
    tasks_running: Family<ResourceLabel, Gauge>,
    tasks_desired: Family<ResourceLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<SourceOutcome, Counter>::default();
        registry.register("hawser_reconciles", "Reconciles by source and outcome", reconciles.clone());
        let durations =
            Family::<SourceLabel, Histogram>::new_with_constructor((|| Histogram::new(BUCKETS)) as fn() -> Histogram);
        registry.register_with_unit(
            "hawser_reconcile_duration",
            "Time of one reconcile",
            Unit::Seconds,
            durations.clone(),
        );
        let phases = Family::<SourcePhase, Histogram>::new_with_constructor(
            (|| Histogram::new(PHASE_BUCKETS)) as fn() -> Histogram,
        );
        registry.register_with_unit(
            "hawser_reconcile_phase_duration",
            "Time of one phase of a reconcile: fetch (read and check the source), plan (observe and diff), apply",
            Unit::Seconds,
            phases.clone(),
        );
        let drift = Family::<SourceLabel, Counter>::default();
        registry.register(
            "hawser_drift_repairs",
            "Reconciles after an engine event that changed something",
            drift.clone(),
        );
        let last_success = Family::<SourceLabel, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "hawser_last_success_timestamp",
            "When the source last converged",
            Unit::Seconds,
            last_success.clone(),
        );
        let source_up = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "hawser_source_up",
            "Whether the source could be read at the last attempt",
            source_up.clone(),
        );
        let running = Family::<ResourceLabel, Gauge>::default();
        registry.register(
            "hawser_resource_running",
            "Whether a managed container runs (1) or not (0)",
            running.clone(),
        );
        let healthy = Family::<ResourceLabel, Gauge>::default();
        registry.register(
            "hawser_resource_healthy",
            "A managed container's healthcheck: 1 healthy, 0 not (yet); absent without one",
            healthy.clone(),
        );
        let restarts = Family::<ResourceLabel, Gauge>::default();
        registry.register(
            "hawser_resource_restarts",
            "How often the engine restarted a managed container",
            restarts.clone(),
        );
        let memory = Family::<ResourceLabel, Gauge>::default();
        registry.register_with_unit(
            "hawser_resource_memory",
            "Memory a managed container uses now, from its cgroup (native target)",
            Unit::Bytes,
            memory.clone(),
        );
        let cpu = Family::<ResourceLabel, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "hawser_resource_cpu",
            "CPU time a managed container has used since it started, from its cgroup (native target)",
            Unit::Seconds,
            cpu.clone(),
        );
        let tasks_running = Family::<ResourceLabel, Gauge>::default();
        registry.register(
            "hawser_service_tasks_running",
            "The tasks of a managed swarm service that run now",
            tasks_running.clone(),
        );
        let tasks_desired = Family::<ResourceLabel, Gauge>::default();
        registry.register(
            "hawser_service_tasks_desired",
            "The tasks a managed swarm service should run",
            tasks_desired.clone(),
        );
        Metrics {
            registry,
            reconciles,
            durations,
            phases,
            drift,
            last_success,
            source_up,
            running,
            healthy,
            restarts,
            memory,
            cpu,
            tasks_running,
            tasks_desired,
        }
    }
}

impl Metrics {
    pub fn observe(&self, source: &str, outcome: Outcome, took: Duration, phases: Phases) {
        let label = SourceLabel { source: source.to_string() };
        self.reconciles
            .get_or_create(&SourceOutcome { source: source.to_string(), outcome: outcome.as_str().into() })
            .inc();
        self.durations.get_or_create(&label).observe(took.as_secs_f64());
        for (phase, d) in [("fetch", phases.fetch), ("plan", phases.plan), ("apply", phases.apply)] {
            if let Some(d) = d {
                let l = SourcePhase { source: source.to_string(), phase: phase.into() };
                self.phases.get_or_create(&l).observe(d.as_secs_f64());
            }
        }
    }

    pub fn drift_repairs(&self, source: &str) {
        self.drift.get_or_create(&SourceLabel { source: source.to_string() }).inc();
    }

    /// The OpenMetrics text, with the sources' gauges and the resources as sampled now (the
    /// resources of a scrape replace those of the last one: a removed container disappears).
    pub fn render(&self, statuses: &[SourceStatus], resources: &[ResourceSample]) -> String {
        for s in statuses {
            let label = SourceLabel { source: s.name.clone() };
            if let Some(t) = s.last_success_unix {
                self.last_success.get_or_create(&label).set(t);
            }
            self.source_up.get_or_create(&label).set(i64::from(s.source_unavailable.is_none()));
            // A source's drift counter is there from the start, at 0.
            let _ = self.drift.get_or_create(&label);
        }
        self.running.clear();
        self.healthy.clear();
        self.restarts.clear();
        self.memory.clear();
        self.cpu.clear();
        self.tasks_running.clear();
        self.tasks_desired.clear();
        for r in resources {
            if let Some((running, desired)) = r.tasks {
                self.tasks_running.get_or_create(&r.label).set(running as i64);
                self.tasks_desired.get_or_create(&r.label).set(desired as i64);
            }
            if let Some((mem, cpu)) = r.usage {
                self.memory.get_or_create(&r.label).set(mem as i64);
                self.cpu.get_or_create(&r.label).set(cpu);
            }
            self.running.get_or_create(&r.label).set(i64::from(r.running));
            if let Some(h) = r.healthy {
                self.healthy.get_or_create(&r.label).set(i64::from(h));
            }
            self.restarts.get_or_create(&r.label).set(r.restarts);
        }
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_keeps_the_names_and_adds_phases_and_resources() {
        let m = Metrics::default();
        let phases =
            Phases { fetch: Some(Duration::from_millis(3)), plan: Some(Duration::from_millis(8)), apply: None };
        m.observe("shop", Outcome::Changed, Duration::from_millis(1200), phases);
        m.drift_repairs("shop");
        let status = SourceStatus { name: "shop".into(), last_success_unix: Some(1.5e9), ..Default::default() };
        let web = ResourceLabel { project: "shop".into(), kind: "Container".into(), name: "web".into() };
        let text = m.render(
            std::slice::from_ref(&status),
            &[
                ResourceSample {
                    label: web.clone(),
                    running: true,
                    healthy: Some(false),
                    restarts: 3,
                    usage: Some((1 << 20, 0.5)),
                    tasks: None,
                },
                ResourceSample {
                    label: ResourceLabel { project: "shop".into(), kind: "Service".into(), name: "api".into() },
                    running: false,
                    healthy: None,
                    restarts: 1,
                    usage: None,
                    tasks: Some((2, 3)),
                },
            ],
        );
        for line in [
            "hawser_reconciles_total{source=\"shop\",outcome=\"changed\"} 1",
            "hawser_reconcile_duration_seconds_bucket{le=\"2.5\",source=\"shop\"} 1",
            "hawser_reconcile_phase_duration_seconds_count{source=\"shop\",phase=\"plan\"} 1",
            "hawser_drift_repairs_total{source=\"shop\"} 1",
            "hawser_source_up{source=\"shop\"} 1",
            "hawser_resource_running{project=\"shop\",kind=\"Container\",name=\"web\"} 1",
            "hawser_resource_healthy{project=\"shop\",kind=\"Container\",name=\"web\"} 0",
            "hawser_resource_restarts{project=\"shop\",kind=\"Container\",name=\"web\"} 3",
            "hawser_resource_memory_bytes{project=\"shop\",kind=\"Container\",name=\"web\"} 1048576",
            "hawser_resource_cpu_seconds{project=\"shop\",kind=\"Container\",name=\"web\"} 0.5",
            "hawser_service_tasks_running{project=\"shop\",kind=\"Service\",name=\"api\"} 2",
            "hawser_service_tasks_desired{project=\"shop\",kind=\"Service\",name=\"api\"} 3",
            "hawser_resource_running{project=\"shop\",kind=\"Service\",name=\"api\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("phase=\"apply\""), "a phase that did not run is not counted");
        assert!(!text.contains("tasks_running{project=\"shop\",kind=\"Container\""), "a container has no tasks");
        assert!(text.contains("hawser_last_success_timestamp_seconds{source=\"shop\"} 1500000000"), "{text}");
        // A container gone by the next scrape is gone from it.
        let text = m.render(&[status], &[]);
        assert!(!text.contains("hawser_resource_running{"), "{text}");
        assert!(!text.contains("hawser_service_tasks_running{"), "{text}");
    }
}
