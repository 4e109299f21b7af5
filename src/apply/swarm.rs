//! The swarm executor: carries out a swarm plan through a manager, in the order of the same
//! graph as on one host. A service is created or updated, then watched until the cluster has
//! converged: every task of the new spec running (healthy, where it has a healthcheck: the
//! swarm starts such a task only once it is), none of the old one left. A rolling update the
//! cluster rolled back is a failure that says which tasks failed and why; the old version
//! serves.

use super::{drive, ActionError, Report};
use crate::desired::{DesiredState, Kind, Mount};
use crate::diff::{self, Action, Op, Plan};
use crate::labels;
use crate::observed::swarm::ObservedService;
use crate::runtime::swarm::{SecretMount, ServiceRequest, SwarmEngine, VolumeOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How often the cluster is asked how a service is doing while hawser waits for it.
const POLL: Duration = Duration::from_millis(200);

/// Carries out `plan` on the swarm; then removes the project's secret objects that no
/// declared service uses any more (a rotated secret's old object).
pub async fn execute(
    engine: &SwarmEngine,
    desired: &DesiredState,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Report {
    let report = drive(desired, plan, progress, starting_note, |a| run(engine, desired, a)).await;
    if report.ok() {
        if let Err(e) = collect_secrets(engine, desired).await {
            tracing::warn!(error = %e, "old secret objects were not removed; the next apply tries again");
        }
    }
    report
}

fn starting_note(a: &Action) -> Option<&'static str> {
    match (&a.op, a.kind) {
        (Op::Create, Kind::Container) => Some("creating the service, waiting for its tasks to run"),
        (Op::Update { .. }, Kind::Container) => Some("updating, waiting for the swarm's rolling update"),
        _ => None,
    }
}

async fn run(engine: &SwarmEngine, desired: &DesiredState, a: &Action) -> Result<String, ActionError> {
    match (&a.op, a.kind) {
        (Op::Create, Kind::Network) => {
            let r = &desired.networks[&a.name];
            engine.create_network(&a.name, &r.spec, labels::network(desired, &a.name)).await?;
            Ok("created".into())
        }
        (Op::Remove { id }, Kind::Network) => {
            // The tasks of a service removed just before may still hold it for a moment.
            let until = Instant::now() + Duration::from_secs(30);
            loop {
                match engine.remove_network(id).await {
                    Err(e) if e.kind == crate::runtime::ErrorKind::InUse => {
                        if Instant::now() > until {
                            return Err(e.into());
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    r => return r.map(|_| "removed".into()).map_err(Into::into),
                }
            }
        }
        (Op::Create, Kind::Container) => {
            let (req, _) = request(engine, desired, &a.name).await?;
            let id = engine.create_service(&req).await?;
            match converge(engine, desired, &a.name, &id, None).await {
                Ok(s) => Ok(format!("created, {}", tasks_line(&s))),
                Err(e) => {
                    // A service whose tasks cannot run is not left behind half-made.
                    let _ = engine.remove_service(&id).await;
                    Err(match e {
                        NotConverged::Unplaceable(why) => ActionError::Unplaceable(why),
                        NotConverged::Failed(e) => e,
                    })
                }
            }
        }
        (Op::Update { id }, Kind::Container) => {
            let before =
                engine.service(id).await?.ok_or_else(|| ActionError::Gone { name: id.clone(), waiting: false })?;
            let (req, why_stop_first) = request(engine, desired, &a.name).await?;
            engine.update_service(id, before.version, &req).await?;
            let started = before.update.as_ref().and_then(|u| u.started_at.clone());
            let s = match converge(engine, desired, &a.name, id, Some(started)).await {
                Ok(s) => s,
                Err(NotConverged::Unplaceable(why)) => return Err(roll_back(engine, id, &req, &why).await),
                Err(NotConverged::Failed(e)) => return Err(e),
            };
            let order = why_stop_first.map(|why| format!(" ({why})")).unwrap_or_default();
            Ok(format!("updated{order}, {}", tasks_line(&s)))
        }
        (Op::Remove { id }, Kind::Container) => {
            engine.remove_service(id).await?;
            Ok("removed".into())
        }
        (op, kind) => Err(ActionError::Skipped(format!("{kind} cannot {op:?} on a swarm"))),
    }
}

fn tasks_line(s: &ObservedService) -> String {
    let running: Vec<&str> = s
        .tasks
        .iter()
        .filter(|t| t.current && t.state == "running" && t.desired_state == "running")
        .map(|t| t.node.as_str())
        .collect();
    let nodes: BTreeSet<&str> = running.iter().copied().collect();
    let nodes: Vec<&str> = nodes.into_iter().collect();
    let n = running.len();
    format!("{n} task{} running on {}", if n == 1 { "" } else { "s" }, nodes.join(", "))
}

/// The name of the secret object holding one content of a file secret: the service, the file
/// and the content's keyed digest, so a changed value is a new object (a secret object can't
/// change) and the same value is the same object.
pub fn secret_name(service: &str, target: &str, digest: &str) -> String {
    let file: String = target
        .rsplit('/')
        .next()
        .unwrap_or(target)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .collect();
    let hex: String = digest.rsplit(':').next().unwrap_or(digest).chars().take(12).collect();
    let mut name = format!("{service}-{file}");
    name.truncate(64 - 13);
    format!("{name}-{hex}")
}

/// The service request for Container `name`, with its file secrets made into secret objects
/// (those that exist already are used as they are).
/// What the cluster is asked to run for `name`, and why its updates go stop-first when the
/// spec asked for start-first.
async fn request<'d>(
    engine: &SwarmEngine,
    desired: &'d DesiredState,
    name: &'d str,
) -> Result<(ServiceRequest<'d>, Option<String>), ActionError> {
    let r = &desired.containers[name];
    let l = labels::container(desired, name);
    let secret_env = super::secret_env(desired, name);
    let mut secrets = Vec::new();
    let existing = engine.observe_secrets().await?;
    for m in &r.spec.volumes {
        let Mount::Secret { file, target, digest } = m else { continue };
        let digest = digest.as_deref().unwrap_or_default();
        let object = secret_name(name, target, digest);
        let id = match existing.get(&object) {
            Some(id) => id.clone(),
            None => {
                let data =
                    std::fs::read(file).map_err(|source| ActionError::SecretFile { file: file.clone(), source })?;
                let mut sl = BTreeMap::new();
                sl.insert(labels::PROJECT.to_string(), desired.project.clone());
                sl.insert(labels::NAME.to_string(), object.clone());
                sl.insert(labels::KIND.to_string(), "Secret".to_string());
                labels::set_source(&mut sl, &desired.source);
                engine.create_secret(&object, &data, sl).await?
            }
        };
        let access = None;
        secrets.push(SecretMount { target: target.clone(), id, name: object, access });
    }
    let volumes = r
        .spec
        .volumes
        .iter()
        .filter_map(|m| match m {
            Mount::Volume { source, .. } => {
                let v = desired.volumes.get(source)?;
                let opts = VolumeOptions {
                    labels: labels::volume(desired, source),
                    driver: v.spec.driver.clone(),
                    driver_opts: v.spec.driver_opts.clone(),
                };
                Some((source.clone(), opts))
            }
            _ => None,
        })
        .collect();
    // Start-first only where the placement leaves room for the extra task.
    let mut why_stop_first = None;
    if r.spec.strategy(false) == crate::desired::Strategy::StartFirst
        && r.spec.placement.as_ref().is_some_and(|p| p.max_replicas_per_node.is_some())
    {
        let nodes = engine.nodes().await?;
        why_stop_first = crate::runtime::swarm::no_room_to_start_first(&r.spec, &nodes.iter().collect::<Vec<_>>());
    }
    let start_first = r.spec.strategy(false) == crate::desired::Strategy::StartFirst && why_stop_first.is_none();
    Ok((ServiceRequest { name, spec: &r.spec, labels: l, secret_env, secrets, volumes, start_first }, why_stop_first))
}

/// A task of the new spec that no node can take (`no suitable node`) for this long fails the
/// wait: the cluster would keep it pending for ever. Shorter ones happen while old tasks go.
const UNPLACEABLE_AFTER: Duration = Duration::from_secs(10);

/// Why waiting for a service ended without it converging.
enum NotConverged {
    /// No node can take a task of the new spec: the cluster's own reason.
    Unplaceable(String),
    Failed(ActionError),
}

impl From<ActionError> for NotConverged {
    fn from(e: ActionError) -> Self {
        NotConverged::Failed(e)
    }
}

impl From<crate::runtime::EngineError> for NotConverged {
    fn from(e: crate::runtime::EngineError) -> Self {
        NotConverged::Failed(e.into())
    }
}

/// Rolls an update that cannot be placed back to the previous spec and waits for it: the old
/// version keeps serving, and the cluster stops trying.
async fn roll_back(engine: &SwarmEngine, id: &str, req: &ServiceRequest<'_>, why: &str) -> ActionError {
    let version = match engine.service(id).await {
        Ok(Some(s)) => s.version,
        Ok(None) => {
            return ActionError::NotConverged(format!("the update cannot be placed ({why}), and the service is gone"))
        }
        Err(e) => return e.into(),
    };
    if let Err(e) = engine.rollback_service(id, version, req).await {
        return ActionError::NotConverged(format!("the update cannot be placed ({why}); rolling it back failed: {e}"));
    }
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if let Ok(Some(s)) = engine.service(id).await {
            use crate::observed::swarm::UpdateState as U;
            if s.update.as_ref().is_some_and(|u| u.state == U::RollbackCompleted) {
                return ActionError::RolledBack(format!(
                    "the update cannot be placed ({why}); hawser rolled it back, the old version serves"
                ));
            }
        }
        tokio::time::sleep(POLL).await;
    }
    ActionError::NotConverged(format!("the update cannot be placed ({why}); its rollback did not finish within 60s"))
}

/// Waits until service `id` runs its current spec everywhere it should; an update (`update`:
/// when the service's last update began before this one) that the cluster rolled back or
/// paused is a failure, reported once the rollback is over, so the old version serves. A task
/// no node can take ends the wait within [`UNPLACEABLE_AFTER`].
async fn converge(
    engine: &SwarmEngine,
    desired: &DesiredState,
    name: &str,
    id: &str,
    update: Option<Option<String>>,
) -> Result<ObservedService, NotConverged> {
    let spec = &desired.containers[name].spec;
    let per_batch = spec.health_timeout().as_std()
        + spec.min_uptime().as_std()
        + spec.stop_timeout.map(|d| d.as_std()).unwrap_or(Duration::from_secs(10));
    let replicas = spec.replicas.unwrap_or(1).max(1);
    let parallelism = spec.update.as_ref().and_then(|u| u.parallelism).unwrap_or(1).max(1);
    let limit = per_batch * replicas.div_ceil(parallelism) as u32 + Duration::from_secs(30);
    let began = Instant::now();
    let mut unplaceable_since: Option<Instant> = None;
    loop {
        let s = engine.service(id).await?.ok_or_else(|| ActionError::Gone { name: name.to_string(), waiting: true })?;
        let unplaceable = s.tasks.iter().find(|t| {
            t.current
                && t.desired_state == "running"
                && t.state == "pending"
                && t.error.as_deref().is_some_and(|e| e.contains("no suitable node"))
        });
        match (unplaceable, unplaceable_since) {
            (None, _) => unplaceable_since = None,
            (Some(_), None) => unplaceable_since = Some(Instant::now()),
            (Some(t), Some(since)) if since.elapsed() >= UNPLACEABLE_AFTER => {
                return Err(NotConverged::Unplaceable(t.error.clone().unwrap_or_default()));
            }
            _ => {}
        }
        let ours = s.update.as_ref().filter(|u| update.as_ref().is_some_and(|before| &u.started_at != before));
        if let Some(u) = ours {
            use crate::observed::swarm::UpdateState as U;
            match u.state {
                U::RollbackCompleted | U::Paused | U::RollbackPaused => {
                    let why = u.message.as_deref().unwrap_or("no reason given");
                    let failing = diff::swarm::failing_tasks(&s, 5);
                    let rolled = if u.state == U::RollbackCompleted {
                        "the swarm rolled the update back; the old version serves"
                    } else {
                        "the swarm paused the update"
                    };
                    let text = format!(
                        "{rolled} ({why}){}",
                        if failing.is_empty() {
                            String::new()
                        } else {
                            format!("; failed tasks: {}", failing.join("; "))
                        }
                    );
                    return Err(NotConverged::Failed(if u.state == U::RollbackCompleted {
                        ActionError::RolledBack(text)
                    } else {
                        ActionError::NotConverged(text)
                    }));
                }
                _ => {}
            }
        }
        let rolling = ours.is_some_and(|u| !matches!(u.state, crate::observed::swarm::UpdateState::Completed));
        let want = s.replicas.unwrap_or(s.desired_tasks);
        let live = |t: &&crate::observed::swarm::ObservedTask| t.desired_state == "running";
        let current =
            s.tasks.iter().filter(live).filter(|t| t.current && t.state == "running" && !t.node_down).count() as u64;
        // Old tasks, and tasks told to stop (a scale-down), count until their container has
        // stopped, not just been told to.
        let stale = s
            .tasks
            .iter()
            .filter(|t| !t.node_down)
            .filter(|t| {
                (!t.current && t.desired_state == "running") || (t.state == "running" && t.desired_state != "running")
            })
            .count();
        if current == want && stale == 0 && !rolling {
            return Ok(s);
        }
        // A new service whose tasks keep failing will not come up by waiting.
        if update.is_none() {
            let failed: Vec<String> = diff::swarm::failing_tasks(&s, 5);
            if s.failing().count() as u64 >= want.max(1) * 3 {
                return Err(ActionError::NotConverged(format!("its tasks keep failing: {}", failed.join("; "))).into());
            }
        }
        if began.elapsed() > limit {
            let failing = diff::swarm::failing_tasks(&s, 5);
            return Err(ActionError::NotConverged(format!(
                "not converged within {}s: {current} of {want} tasks run the new spec{}",
                limit.as_secs(),
                if failing.is_empty() { String::new() } else { format!("; failed tasks: {}", failing.join("; ")) }
            ))
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Removes the project's secret objects that no declared service mounts (in use ones refuse).
async fn collect_secrets(engine: &SwarmEngine, desired: &DesiredState) -> crate::runtime::Result<()> {
    let mut wanted = BTreeSet::new();
    for (name, c) in &desired.containers {
        for m in &c.spec.volumes {
            if let Mount::Secret { target, digest, .. } = m {
                wanted.insert(secret_name(name, target, digest.as_deref().unwrap_or_default()));
            }
        }
    }
    let state = engine.observe().await?;
    for s in state.secrets {
        let ours = s.owner.as_ref().is_some_and(|o| o.project == desired.project);
        if ours && !wanted.contains(&s.name) {
            if let Err(e) = engine.remove_secret(&s.id).await {
                tracing::debug!(secret = %s.name, error = %e, "secret not removed");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_objects_are_named_by_service_file_and_content() {
        let a = secret_name("web", "/run/secrets/db password", "hmac:0123456789abcdef");
        assert_eq!(a, "web-db-password-0123456789ab");
        assert_ne!(a, secret_name("web", "/run/secrets/db password", "hmac:ffff56789abcdef0"));
        assert!(secret_name(&"x".repeat(80), "t", "hmac:0123456789abcdef").len() <= 64);
    }
}
