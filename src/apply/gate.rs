//! The health gate: decides whether a freshly started container works, before the old one goes.
//!
//! It follows the engine's event stream (start, die, health_status) and looks at the container
//! only when something happened or a deadline came, so twenty gates cost the engine a few calls
//! each, not one every 100 ms, and a gate never holds an engine slot while it waits.

use crate::desired::{ContainerSpec, DependCondition, RestartPolicy};
use crate::observed::{Health, RunState};
use crate::runtime::{ContainerEvent, ContainerStatus, EngineRead};
use futures_util::StreamExt;
use std::time::{Duration, Instant, SystemTime};

/// How often the gate looks when the engine's event stream is not there (closed or failed).
const FALLBACK_POLL: Duration = Duration::from_millis(250);

/// Why a container did not pass its gate: what was seen, with its last log lines.
#[derive(Debug, thiserror::Error)]
#[error("{seen}{}", logs_suffix(.logs))]
pub struct GateFailure {
    pub seen: String,
    pub logs: String,
}

fn logs_suffix(logs: &str) -> String {
    let logs = logs.trim();
    if logs.is_empty() {
        String::new()
    } else {
        format!("; last log lines:\n    {}", logs.lines().collect::<Vec<_>>().join("\n    "))
    }
}

/// What one look at the container decides.
#[derive(Debug, PartialEq)]
enum Verdict {
    Pass,
    Fail(String),
    /// Not yet; look again at the next event, or at `until` when no event comes first.
    Wait {
        until: Option<Instant>,
    },
}

/// Decides on one look. `Started` means healthy if it has a healthcheck, else running, without
/// a restart, for `spec.min_uptime()` since its process started.
fn verdict(st: &ContainerStatus, name: &str, spec: &ContainerSpec, cond: DependCondition, now: Instant) -> Verdict {
    let one_shot = matches!(spec.restart, None | Some(RestartPolicy::No));
    if st.restart_count > 0 {
        return Verdict::Fail(format!("`{name}` restarted {} time(s)", st.restart_count));
    }
    match st.state {
        RunState::Exited | RunState::Dead => {
            let code = st.exit_code.unwrap_or(-1);
            if code == 0 && (cond == DependCondition::Completed || (one_shot && !spec.has_healthcheck())) {
                return Verdict::Pass;
            }
            Verdict::Fail(format!("`{name}` exited with code {code}"))
        }
        RunState::Restarting => {
            Verdict::Fail(format!("`{name}` is restarting after exiting with code {}", st.exit_code.unwrap_or(-1)))
        }
        RunState::Running if cond == DependCondition::Completed => Verdict::Wait { until: None },
        RunState::Running => match &st.health {
            Some(Health::Healthy) => Verdict::Pass,
            Some(Health::Unhealthy) => Verdict::Fail(format!(
                "`{name}` is unhealthy: health check said: {}",
                st.health_output.clone().unwrap_or_default()
            )),
            Some(Health::Starting) => Verdict::Wait { until: None },
            Some(Health::None) | None if spec.has_healthcheck() || cond == DependCondition::Healthy => {
                if cond == DependCondition::Healthy && !spec.has_healthcheck() {
                    return Verdict::Fail(format!("`{name}` has no healthcheck, so it can never be healthy"));
                }
                Verdict::Wait { until: None }
            }
            Some(Health::None) | None => {
                // Up since the engine started it; a clock that says the future counts as now.
                let up = st.started_at.and_then(|t| SystemTime::now().duration_since(t).ok()).unwrap_or_default();
                match spec.min_uptime().as_std().checked_sub(up) {
                    None | Some(Duration::ZERO) => Verdict::Pass,
                    Some(left) => Verdict::Wait { until: Some(now + left) },
                }
            }
        },
        _ => Verdict::Wait { until: None },
    }
}

/// Waits until container `id` satisfies `cond`, or fails with what was seen.
pub async fn wait<E: EngineRead>(
    engine: &E,
    id: &str,
    name: &str,
    spec: &ContainerSpec,
    cond: DependCondition,
) -> Result<(), GateFailure> {
    let timeout = spec.health_timeout().as_std();
    let deadline = Instant::now() + timeout;
    let fail = |seen: String| async move {
        let logs = engine.logs_tail(id, 5).await.unwrap_or_default();
        Err(GateFailure { seen, logs })
    };
    // Subscribed before the first look, from a second back: whatever happens after that look
    // comes as an event.
    let mut events = Some(engine.events(id, SystemTime::now() - Duration::from_secs(1)));
    loop {
        let st = match engine.container_status(id).await {
            Ok(st) => st,
            Err(e) => return fail(format!("`{name}`: {e}")).await,
        };
        let now = Instant::now();
        let until = match verdict(&st, name, spec, cond, now) {
            Verdict::Pass => return Ok(()),
            Verdict::Fail(seen) => return fail(seen).await,
            Verdict::Wait { until } => until,
        };
        if now >= deadline {
            let health = match st.health {
                Some(Health::Starting) => {
                    let out = st.health_output.clone().unwrap_or_default();
                    format!(" (health: starting; last check said: {out})")
                }
                _ => String::new(),
            };
            return fail(format!(
                "`{name}` did not become {} within {}{health}",
                if cond == DependCondition::Completed { "completed" } else { "healthy" },
                crate::desired::Duration(timeout)
            ))
            .await;
        }
        let wake = until.map_or(deadline, |u| u.min(deadline));
        // Until an event that can change the verdict, or the wake-up time.
        loop {
            match events.as_mut() {
                Some(stream) => {
                    tokio::select! {
                        ev = stream.next() => match ev {
                            Some(Ok(ContainerEvent::Other)) => continue,
                            Some(Ok(_)) => {}
                            _ => {
                                // The stream ended or failed: look on a timer from now on.
                                tracing::debug!(container = name, "event stream ended; the gate polls");
                                events = None;
                            }
                        },
                        _ = tokio::time::sleep_until(wake.into()) => {}
                    }
                }
                None => tokio::time::sleep_until(wake.min(Instant::now() + FALLBACK_POLL).into()).await,
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{Healthcheck, UpdatePolicy};

    fn status(state: RunState, health: Option<Health>, up: Duration) -> ContainerStatus {
        ContainerStatus {
            state,
            health,
            exit_code: Some(0),
            restart_count: 0,
            health_output: None,
            started_at: Some(SystemTime::now() - up),
        }
    }

    #[test]
    fn a_container_without_a_healthcheck_passes_after_its_uptime_since_it_started() {
        let spec = ContainerSpec { restart: Some(RestartPolicy::Always), ..Default::default() };
        let now = Instant::now();
        let v = verdict(
            &status(RunState::Running, None, Duration::from_millis(300)),
            "c",
            &spec,
            DependCondition::Started,
            now,
        );
        let Verdict::Wait { until: Some(until) } = v else { panic!("{v:?}") };
        let left = until - now;
        assert!(left > Duration::from_millis(600) && left <= Duration::from_millis(700), "{left:?}");
        let up = status(RunState::Running, None, Duration::from_millis(1200));
        assert_eq!(verdict(&up, "c", &spec, DependCondition::Started, now), Verdict::Pass);

        let quick = ContainerSpec {
            update: Some(UpdatePolicy { min_uptime: Some("100ms".parse().unwrap()), ..Default::default() }),
            ..spec.clone()
        };
        let v = verdict(
            &status(RunState::Running, None, Duration::from_millis(150)),
            "c",
            &quick,
            DependCondition::Started,
            now,
        );
        assert_eq!(v, Verdict::Pass, "update.minUptime");

        let mut restarted = up.clone();
        restarted.restart_count = 1;
        assert_eq!(
            verdict(&restarted, "c", &spec, DependCondition::Started, now),
            Verdict::Fail("`c` restarted 1 time(s)".into())
        );
    }

    #[test]
    fn a_healthcheck_decides_when_there_is_one() {
        let spec = ContainerSpec {
            restart: Some(RestartPolicy::Always),
            healthcheck: Some(Healthcheck {
                test: vec!["CMD".into(), "true".into()],
                interval: None,
                timeout: None,
                retries: None,
                start_period: None,
            }),
            ..Default::default()
        };
        let now = Instant::now();
        let long = Duration::from_secs(5);
        let starting = status(RunState::Running, Some(Health::Starting), long);
        assert_eq!(verdict(&starting, "c", &spec, DependCondition::Started, now), Verdict::Wait { until: None });
        let healthy = status(RunState::Running, Some(Health::Healthy), long);
        assert_eq!(verdict(&healthy, "c", &spec, DependCondition::Started, now), Verdict::Pass);
        let mut sick = status(RunState::Running, Some(Health::Unhealthy), long);
        sick.health_output = Some("refused".into());
        assert_eq!(
            verdict(&sick, "c", &spec, DependCondition::Started, now),
            Verdict::Fail("`c` is unhealthy: health check said: refused".into())
        );
        let plain = ContainerSpec::default();
        assert_eq!(
            verdict(&status(RunState::Running, None, long), "c", &plain, DependCondition::Healthy, now),
            Verdict::Fail("`c` has no healthcheck, so it can never be healthy".into())
        );
    }

    #[test]
    fn exits_pass_only_for_one_shots_and_completion() {
        let now = Instant::now();
        let one_shot = ContainerSpec::default();
        let done = status(RunState::Exited, None, Duration::ZERO);
        assert_eq!(verdict(&done, "c", &one_shot, DependCondition::Started, now), Verdict::Pass);
        assert_eq!(verdict(&done, "c", &one_shot, DependCondition::Completed, now), Verdict::Pass);
        let service = ContainerSpec { restart: Some(RestartPolicy::UnlessStopped), ..Default::default() };
        let mut failed = done.clone();
        failed.exit_code = Some(3);
        assert_eq!(
            verdict(&failed, "c", &service, DependCondition::Started, now),
            Verdict::Fail("`c` exited with code 3".into())
        );
        assert_eq!(
            verdict(&status(RunState::Running, None, Duration::ZERO), "c", &service, DependCondition::Completed, now),
            Verdict::Wait { until: None }
        );
    }
}
