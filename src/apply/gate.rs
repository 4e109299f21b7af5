//! The health gate: decides whether a freshly started container works, before the old one goes.

use crate::desired::{ContainerSpec, DependCondition, RestartPolicy};
use crate::observed::{Health, RunState};
use crate::runtime::EngineRead;
use std::time::{Duration, Instant};

/// How long a container without a healthcheck must stay running, without restarting, to pass.
pub const MIN_UPTIME: Duration = Duration::from_millis(1000);
const POLL: Duration = Duration::from_millis(100);

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

/// Waits until container `id` satisfies `cond`, or fails with what was seen. `Started` means
/// healthy if it has a healthcheck, else running for [`MIN_UPTIME`].
pub async fn wait<E: EngineRead>(
    engine: &E,
    id: &str,
    name: &str,
    spec: &ContainerSpec,
    cond: DependCondition,
) -> Result<(), GateFailure> {
    let timeout = spec.health_timeout().as_std();
    let deadline = Instant::now() + timeout;
    let mut running_since: Option<Instant> = None;
    let fail = |seen: String| async move {
        let logs = engine.logs_tail(id, 5).await.unwrap_or_default();
        Err(GateFailure { seen, logs })
    };
    loop {
        let st = match engine.container_status(id).await {
            Ok(st) => st,
            Err(e) => return fail(format!("`{name}`: {e}")).await,
        };
        let one_shot = matches!(spec.restart, None | Some(RestartPolicy::No));
        match st.state {
            RunState::Exited | RunState::Dead => {
                let code = st.exit_code.unwrap_or(-1);
                if code == 0 && (cond == DependCondition::Completed || (one_shot && !spec.has_healthcheck())) {
                    return Ok(());
                }
                return fail(format!("`{name}` exited with code {code}")).await;
            }
            RunState::Running if cond == DependCondition::Completed => {}
            RunState::Running => match &st.health {
                Some(Health::Healthy) => return Ok(()),
                Some(Health::Unhealthy) => {
                    let out = st.health_output.clone().unwrap_or_default();
                    return fail(format!("`{name}` is unhealthy: health check said: {out}")).await;
                }
                Some(Health::Starting) => {}
                Some(Health::None) | None => {
                    let no_check = !spec.has_healthcheck();
                    if no_check && cond != DependCondition::Healthy {
                        let since = *running_since.get_or_insert_with(Instant::now);
                        if st.restart_count == 0 && since.elapsed() >= MIN_UPTIME {
                            return Ok(());
                        }
                    }
                    if no_check && cond == DependCondition::Healthy {
                        return fail(format!("`{name}` has no healthcheck, so it can never be healthy")).await;
                    }
                }
            },
            RunState::Restarting => {
                return fail(format!("`{name}` is restarting after exiting with code {}", st.exit_code.unwrap_or(-1)))
                    .await;
            }
            _ => {}
        }
        if st.restart_count > 0 {
            return fail(format!("`{name}` restarted {} time(s)", st.restart_count)).await;
        }
        if Instant::now() >= deadline {
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
        tokio::time::sleep(POLL).await;
    }
}
