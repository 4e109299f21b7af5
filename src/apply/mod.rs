//! The executor: carries out a plan's actions through the engine, each as soon as what it waits
//! for is done (`graph`), with a bounded number of engine calls in flight (`limit`). It makes no
//! decisions of its own beyond skipping what depends on something that failed; the plan already
//! says what to do and why.

mod gate;
mod graph;
mod hooks;
pub mod images;
pub mod limit;
mod replace;
pub mod repo_files;
pub mod swarm;
#[cfg(test)]
mod tests;

use crate::desired::{DependCondition, DesiredState, Kind, Mount};
use crate::diff::{Action, Cause, Op, Plan};
use crate::labels;
use crate::runtime::{CreateContainer, Engine, EngineError};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::time::Instant;

pub use gate::GateFailure;
pub use graph::{dependencies, runnable};

/// One action that did not succeed.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub name: String,
    pub message: String,
    /// What it replaced keeps serving: a candidate failed its gate, or the swarm rolled back.
    pub rolled_back: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub done: usize,
    pub failures: Vec<Failure>,
    /// What kept the executor from starting at all (the repository files containers mount
    /// could not be written): nothing was done.
    pub aborted: Option<repo_files::FilesError>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.aborted.is_none()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Gate(#[from] GateFailure),
    #[error("skipped: {0}")]
    Skipped(String),
    /// The cluster rolled an update back: the old version serves.
    #[error("{0}")]
    RolledBack(String),
    /// The cluster has no node the new tasks fit on.
    #[error("its tasks cannot be placed: {0}")]
    Unplaceable(String),
    /// A swarm update that did not reach its end (its tasks keep failing, it paused, it ran
    /// out of time, its rollback failed), as the cluster tells it.
    #[error("{0}")]
    NotConverged(String),
    /// The service was removed by someone else while the executor worked on it.
    #[error("service {name} {}", if *.waiting { "was removed while hawser waited for it" } else { "is gone; plan again" })]
    Gone { name: String, waiting: bool },
    #[error("cannot read the secret file {file}: {source}")]
    SecretFile { file: String, source: std::io::Error },
    #[error("no build context was read for {0}")]
    NoBuildContext(String),
    /// A `postStart` hook ended with another code than 0: the container failed to start.
    #[error("its postStart hook `{command}` exited with {code}")]
    Hook { command: String, code: i64 },
    /// A candidate that failed could not be removed; the next run removes it.
    #[error("{why}; the candidate could not be removed ({source}), the next run removes it")]
    Leftover { why: Box<ActionError>, source: EngineError },
}

impl ActionError {
    /// Whether what the action replaced still serves: a candidate failed its gate (the old
    /// container was never touched, or got its name back), or the cluster rolled back.
    fn rolled_back(&self, op: &Op) -> bool {
        match self {
            ActionError::RolledBack(_) => true,
            ActionError::Gate(_) | ActionError::Hook { .. } => matches!(op, Op::Replace { .. }),
            ActionError::Leftover { why, .. } => why.rolled_back(op),
            _ => false,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Running,
    Done,
    Failed,
}

/// Carries out `plan`; `progress` gets one line when an action starts a long step and one when
/// it ends.
pub async fn execute<E: Engine>(
    engine: &E,
    desired: &DesiredState,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Report {
    drive(desired, plan, progress, starting_note, |a| run(engine, desired, a)).await
}

/// The executor's loop, whatever the target: starts each action of `plan` once the actions it
/// waits for are done (`graph`), with `run`, and skips what waits on a failure.
pub(crate) async fn drive<'a, F, Fut>(
    desired: &'a DesiredState,
    plan: &'a Plan,
    progress: &mut dyn FnMut(&str),
    starting_note: fn(&Action) -> Option<&'static str>,
    run: F,
) -> Report
where
    F: Fn(&'a Action) -> Fut,
    Fut: std::future::Future<Output = Result<String, ActionError>> + 'a,
{
    let run = &run;
    let deps = dependencies(desired, plan);
    let actions = &plan.actions;
    let mut state: Vec<State> =
        actions.iter().map(|a| if runnable(a) { State::Waiting } else { State::Done }).collect();
    let mut report = Report::default();
    let mut running = FuturesUnordered::new();
    loop {
        // Start everything whose prerequisites are done; skip what waits on a failure.
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..actions.len() {
                if state[i] != State::Waiting {
                    continue;
                }
                if let Some(&j) = deps[i].iter().find(|&&j| state[j] == State::Failed) {
                    let why = format!("{} `{}` failed", actions[j].kind, actions[j].name);
                    let a = &actions[i];
                    progress(&format!("{} {}: skipped: {why}", a.kind, a.name));
                    report.failures.push(Failure {
                        kind: a.kind,
                        name: a.name.clone(),
                        message: format!("skipped: {why}"),
                        rolled_back: false,
                    });
                    state[i] = State::Failed;
                    changed = true;
                } else if deps[i].iter().all(|&j| state[j] == State::Done) {
                    state[i] = State::Running;
                    let a = &actions[i];
                    tracing::debug!(kind = %a.kind, name = %a.name, op = ?a.op, "starting action");
                    if let Some(note) = starting_note(a) {
                        progress(&format!("{} {}: {note}", a.kind, a.name));
                    }
                    running.push(async move {
                        let started = Instant::now();
                        (i, run(a).await, started.elapsed())
                    });
                }
            }
        }
        let Some((i, result, took)) = running.next().await else { break };
        let a = &actions[i];
        match result {
            Ok(verb) => {
                state[i] = State::Done;
                report.done += 1;
                progress(&format!("{} {}: {verb} in {:.1}s", a.kind, a.name, took.as_secs_f64()));
            }
            Err(e) => {
                state[i] = State::Failed;
                progress(&format!("{} {}: FAILED: {e}", a.kind, a.name));
                let rolled_back = e.rolled_back(&a.op);
                report.failures.push(Failure {
                    kind: a.kind,
                    name: a.name.clone(),
                    message: e.to_string(),
                    rolled_back,
                });
            }
        }
    }
    report
}

fn starting_note(a: &Action) -> Option<&'static str> {
    match a.op {
        Op::Replace { .. } if a.kind == Kind::Container => {
            Some("replacing, waiting for the new container to be healthy")
        }
        Op::Pull { .. } => Some("pulling"),
        Op::Build { .. } => Some("building"),
        _ => None,
    }
}

async fn run<E: Engine>(engine: &E, desired: &DesiredState, a: &Action) -> Result<String, ActionError> {
    match (&a.op, a.kind) {
        (Op::Create, Kind::Network) => {
            create_network(engine, desired, &a.name).await?;
            Ok("created".into())
        }
        (Op::Replace { old_id, .. }, Kind::Network) => {
            // The containers on it were removed by earlier actions; they are created again after.
            engine.remove_network(old_id).await?;
            create_network(engine, desired, &a.name).await?;
            Ok("replaced".into())
        }
        (Op::Create, Kind::Volume) => {
            let r = &desired.volumes[&a.name];
            engine.create_volume(&a.name, &r.spec, labels::volume(desired, &a.name)).await?;
            Ok("created".into())
        }
        (Op::Pull { reference }, _) => {
            // The platform a container of it asks for (`platform`), else the engine's own.
            let platform = desired
                .containers
                .values()
                .find(|c| &c.spec.image == reference && c.spec.platform.is_some())
                .and_then(|c| c.spec.platform.as_deref());
            engine.pull_image(reference, platform).await?;
            Ok("pulled".into())
        }
        (Op::Build { reference }, Kind::Image) => match desired.builds.get(&a.name) {
            Some(ctx) => {
                engine.build_image(ctx).await?;
                if ctx.push {
                    engine.push_image(&ctx.tag).await?;
                    return Ok(format!("built and pushed {reference}"));
                }
                Ok(format!("built {reference}"))
            }
            None => Err(ActionError::NoBuildContext(reference.clone())),
        },
        (Op::Create, Kind::Container) => {
            wait_for_dependencies(engine, desired, &a.name).await?;
            let id = engine.create_container(&create_request(desired, &a.name, &a.name)).await?;
            let started = match engine.start_container(&id).await {
                Ok(()) => hooks::post_start(engine, &desired.containers[&a.name].spec, &id).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = started {
                // A container that cannot start is not left behind half-made.
                let _ = engine.remove_container(&id).await;
                return Err(e);
            }
            publish(engine, desired, &a.name, &id).await?;
            Ok("created".into())
        }
        (Op::Replace { old_id, strategy }, Kind::Container) => {
            wait_for_dependencies(engine, desired, &a.name).await?;
            replace::replace(engine, desired, &a.name, old_id, *strategy).await
        }
        (Op::Start { id }, Kind::Container) => {
            engine.start_container(id).await?;
            hooks::post_start(engine, &desired.containers[&a.name].spec, id).await?;
            // Its address may be another than before it stopped.
            publish(engine, desired, &a.name, id).await?;
            Ok("started".into())
        }
        (Op::Adopt { id, .. }, Kind::Container) => {
            engine.rename_container(id, &a.name).await?;
            publish(engine, desired, &a.name, id).await?;
            Ok("renamed back".into())
        }
        (Op::Unpublish { id }, Kind::Container) => {
            engine.unpublish(&desired.project, &a.name, id).await?;
            Ok("taken out of its host ports".into())
        }
        (Op::Publish { id }, Kind::Container) => {
            publish(engine, desired, &a.name, id).await?;
            Ok("published its host ports".into())
        }
        (Op::Remove { id }, Kind::Container) => {
            // Its host ports go with it (only those that still go to it), and the connections
            // they brought it are left to finish, as in a replacement: a replica scaled away
            // drops no request.
            let unpublished = engine.unpublish(&desired.project, &a.name, id).await?;
            if !unpublished.is_empty() {
                replace::drain_ports(engine, id, &unpublished, drain_timeout(desired, a)).await;
            }
            let declared = desired.containers.get(&a.name).map(|c| &c.spec);
            if let Some(spec) = declared {
                hooks::pre_stop(engine, spec, id).await;
            }
            let timeout = declared.and_then(|s| s.stop_timeout).map(|d| d.as_std());
            engine.stop_container(id, timeout).await?;
            engine.remove_container(id).await?;
            Ok("removed".into())
        }
        (Op::Remove { id }, Kind::Network) => {
            engine.remove_network(id).await?;
            Ok("removed".into())
        }
        (Op::Remove { id }, Kind::Volume) => {
            engine.remove_volume(id).await?;
            Ok("removed".into())
        }
        (op, kind) => Err(ActionError::Skipped(format!("{kind} cannot {op:?}"))),
    }
}

/// How long a container that goes is drained: as its Container says (the one it was a replica
/// of, when `replicas` changed), else the default.
fn drain_timeout(desired: &DesiredState, a: &Action) -> std::time::Duration {
    let service = match &a.cause {
        Cause::Rescaled { container, .. } => container,
        _ => &a.name,
    };
    let spec = desired.containers.get(&a.name).or_else(|| desired.containers.get(service)).or_else(|| {
        desired.containers.values().find(|c| c.spec.replica.as_ref().is_some_and(|r| &r.service == service))
    });
    spec.map_or(crate::desired::ContainerSpec::default().drain_timeout(), |c| c.spec.drain_timeout()).as_std()
}

async fn create_network<E: Engine>(engine: &E, desired: &DesiredState, name: &str) -> Result<String, EngineError> {
    engine.create_network(name, &desired.networks[name].spec, labels::network(desired, name)).await
}

/// Sends Container `resource`'s host ports to container `id` (where hawser publishes them).
pub(crate) async fn publish<E: Engine>(
    engine: &E,
    desired: &DesiredState,
    resource: &str,
    id: &str,
) -> Result<(), EngineError> {
    let ports = &desired.containers[resource].spec.ports;
    engine.publish(&desired.project, resource, Some(id), ports).await
}

/// The create request for container `resource` under engine name `name`.
/// Container `resource`'s `secretEnv` values, as read when applied.
pub(crate) fn secret_env(desired: &DesiredState, resource: &str) -> Vec<(String, String)> {
    desired.containers[resource]
        .spec
        .secret_env
        .keys()
        .filter_map(|var| desired.secrets.0.get(&(resource.to_string(), var.clone())).map(|v| (var.clone(), v.clone())))
        .collect()
}

pub(crate) fn create_request<'d>(desired: &'d DesiredState, resource: &'d str, name: &'d str) -> CreateContainer<'d> {
    let r = &desired.containers[resource];
    let l = labels::container(desired, resource);
    let secret_env = secret_env(desired, resource);
    let repo_mounts = r
        .spec
        .volumes
        .iter()
        .filter_map(|m| match m {
            Mount::Repo { target, digest: Some(digest), .. } => {
                let snap = desired.repo_files.get(digest)?;
                Some((target.clone(), snap.host_path(&desired.repo_files_root, digest)))
            }
            Mount::EnvSecret { target, digest: Some(digest), .. } => {
                let key = digest.replace(':', "-");
                let snap = desired.repo_files.get(&key)?;
                Some((target.clone(), snap.host_path(&desired.repo_files_root, &key)))
            }
            _ => None,
        })
        .collect();
    CreateContainer { name, spec: &r.spec, labels: l, aliases: vec![resource.to_string()], secret_env, repo_mounts }
}

/// Holds a container back until what it `dependsOn` is healthy or completed (`started` is
/// already ensured by the order of actions).
async fn wait_for_dependencies<E: Engine>(engine: &E, desired: &DesiredState, name: &str) -> Result<(), ActionError> {
    let c = &desired.containers[name];
    if c.spec.depends_on.values().all(|c| *c == DependCondition::Started) {
        return Ok(());
    }
    let observed = engine.observe().await?;
    for (dep, cond) in &c.spec.depends_on {
        if *cond == DependCondition::Started {
            continue;
        }
        let Some(found) = observed.containers.iter().find(|o| &o.name == dep) else {
            return Err(ActionError::Skipped(format!("dependency `{dep}` does not exist")));
        };
        let spec = &desired.containers[dep].spec;
        gate::wait(engine, &found.id, dep, spec, *cond).await.map_err(|e| {
            let what = if *cond == DependCondition::Healthy { "healthy" } else { "completed" };
            ActionError::Skipped(format!("dependency `{dep}` is not {what}: {e}"))
        })?;
    }
    Ok(())
}

/// After a successful apply: records the images this revision runs, and removes images of the
/// project's Image resources that no container uses, beyond the newest `keep` per resource.
/// Returns the references removed. Failures to remove are not errors: an image in use elsewhere
/// simply stays.
pub async fn collect_images<E: Engine>(
    engine: &E,
    d: &DesiredState,
    state_dir: &std::path::Path,
    keep: usize,
) -> Vec<String> {
    let mut record = images::ImageRecord::load(state_dir, &d.project);
    let before = serde_json::to_string(&record).unwrap_or_default();
    let now: std::collections::BTreeMap<String, String> =
        d.images.iter().map(|(n, i)| (n.clone(), i.spec.reference.clone())).collect();
    record.applied(&d.revision, &now);
    let mut removed = Vec::new();
    // Only an image past the newest `keep` of its resource can go: with none, the engine is not asked.
    let stale = !record.stale(keep).is_empty();
    if let Some(observed) = if stale { engine.observe().await.ok() } else { None } {
        let in_use: std::collections::BTreeSet<&str> =
            observed.containers.iter().map(|c| c.image_id.as_str()).collect();
        for (name, reference) in record.stale(keep) {
            let key = crate::observed::normalize_reference(&reference);
            match observed.images.get(&key) {
                Some(id) if in_use.contains(id.as_str()) => continue,
                None => record.forget(&name, &reference),
                Some(_) => {
                    if engine.remove_image(&reference).await.is_ok() {
                        removed.push(reference.clone());
                        record.forget(&name, &reference);
                    }
                }
            }
        }
    }
    let unchanged = serde_json::to_string(&record).is_ok_and(|after| after == before);
    if unchanged {
        return removed;
    }
    if let Err(e) = record.save(state_dir, &d.project) {
        tracing::warn!(error = %e, "cannot record the images of this revision");
    }
    removed
}
