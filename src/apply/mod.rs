//! The executor: walks a plan in order and carries out each action through the engine. It makes
//! no decisions of its own beyond skipping what depends on something that failed; the plan
//! already says what to do and why.

mod gate;
mod replace;

use crate::desired::{hash, DependCondition, DesiredState, Kind};
use crate::diff::{self, Action, Op, Plan};
use crate::labels;
use crate::runtime::{CreateContainer, Engine, EngineError};
use std::collections::BTreeSet;
use std::time::Instant;

pub use gate::GateFailure;

/// One action that did not succeed.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub name: String,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub done: usize,
    pub failures: Vec<Failure>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
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
}

/// Carries out `plan`, reporting progress through `progress` (one line per finished action).
pub async fn execute<E: Engine>(
    engine: &E,
    desired: &DesiredState,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Report {
    let mut report = Report::default();
    let mut failed: BTreeSet<(Kind, String)> = BTreeSet::new();
    for a in &plan.actions {
        if matches!(a.op, Op::Keep | Op::Orphan | Op::Conflict) {
            continue;
        }
        let started = Instant::now();
        let result = match blocked_by(desired, a, &failed) {
            Some(why) => Err(ActionError::Skipped(why)),
            None => run(engine, desired, a).await,
        };
        match result {
            Ok(verb) => {
                report.done += 1;
                progress(&format!("{} {}: {verb} in {:.1}s", a.kind, a.name, started.elapsed().as_secs_f64()));
            }
            Err(e) => {
                failed.insert((a.kind, a.name.clone()));
                progress(&format!("{} {}: FAILED: {e}", a.kind, a.name));
                report.failures.push(Failure { kind: a.kind, name: a.name.clone(), message: e.to_string() });
            }
        }
    }
    report
}

/// What a container needs that failed earlier in this run, if anything.
fn blocked_by(desired: &DesiredState, a: &Action, failed: &BTreeSet<(Kind, String)>) -> Option<String> {
    if a.kind != Kind::Container || failed.is_empty() {
        return None;
    }
    let c = desired.containers.get(&a.name)?;
    let needs = c
        .spec
        .networks
        .keys()
        .map(|n| (Kind::Network, n.clone()))
        .chain(c.spec.volumes.iter().filter_map(|m| match m {
            crate::desired::Mount::Volume { source, .. } => Some((Kind::Volume, source.clone())),
            _ => None,
        }))
        .chain(c.spec.depends_on.keys().map(|d| (Kind::Container, d.clone())))
        .chain(
            desired
                .images
                .iter()
                .filter(|(_, i)| i.spec.reference == c.spec.image)
                .map(|(n, _)| (Kind::Image, n.clone())),
        )
        .chain(std::iter::once((Kind::Image, c.spec.image.clone())));
    for need in needs {
        if failed.contains(&need) {
            return Some(format!("{} `{}` failed", need.0, need.1));
        }
    }
    None
}

async fn run<E: Engine>(engine: &E, desired: &DesiredState, a: &Action) -> Result<String, ActionError> {
    let project = desired.project.as_str();
    let revision = desired.revision.as_str();
    match (&a.op, a.kind) {
        (Op::Create, Kind::Network) => {
            let r = &desired.networks[&a.name];
            let spec_json = serde_json::to_string(&r.spec).ok();
            let l = labels::for_object(
                &r.spec.labels,
                project,
                Kind::Network,
                &a.name,
                &diff::network_hash(&r.spec),
                revision,
                spec_json.as_deref(),
            );
            engine.create_network(&a.name, &r.spec, l).await?;
            Ok("created".into())
        }
        (Op::Create, Kind::Volume) => {
            let r = &desired.volumes[&a.name];
            let spec_json = serde_json::to_string(&r.spec).ok();
            let l = labels::for_object(
                &r.spec.labels,
                project,
                Kind::Volume,
                &a.name,
                &diff::volume_hash(&r.spec),
                revision,
                spec_json.as_deref(),
            );
            engine.create_volume(&a.name, &r.spec, l).await?;
            Ok("created".into())
        }
        (Op::Pull { reference }, _) => {
            engine.pull_image(reference).await?;
            Ok("pulled".into())
        }
        (Op::Create, Kind::Container) => {
            let r = &desired.containers[&a.name];
            wait_for_dependencies(engine, desired, &a.name).await?;
            let req = create_request(desired, &a.name, &a.name);
            let id = engine.create_container(&req).await?;
            if let Err(e) = engine.start_container(&id).await {
                // A container that cannot start is not left behind half-made.
                let _ = engine.remove_container(&id).await;
                return Err(e.into());
            }
            let _ = r;
            Ok("created".into())
        }
        (Op::Replace { old_id, strategy }, Kind::Container) => {
            wait_for_dependencies(engine, desired, &a.name).await?;
            replace::replace(engine, desired, &a.name, old_id, *strategy).await
        }
        (Op::Start { id }, Kind::Container) => {
            engine.start_container(id).await?;
            Ok("started".into())
        }
        (Op::Adopt { id, .. }, Kind::Container) => {
            engine.rename_container(id, &a.name).await?;
            Ok("renamed back".into())
        }
        (Op::Remove { id }, Kind::Container) => {
            let timeout = desired.containers.get(&a.name).and_then(|c| c.spec.stop_timeout).map(|d| d.as_std());
            engine.stop_container(id, timeout).await?;
            engine.remove_container(id).await?;
            Ok("removed".into())
        }
        (Op::Remove { id }, Kind::Network) => {
            engine.remove_network(id).await?;
            Ok("removed".into())
        }
        (op, kind) => Err(ActionError::Skipped(format!("{kind} cannot {op:?}"))),
    }
}

/// The create request for container `resource` under engine name `name`.
pub(crate) fn create_request<'d>(desired: &'d DesiredState, resource: &'d str, name: &'d str) -> CreateContainer<'d> {
    let r = &desired.containers[resource];
    let view = hash::container_view(&r.spec);
    let spec_json = serde_json::to_string(&view).ok();
    let l = labels::for_object(
        &r.spec.labels,
        &desired.project,
        Kind::Container,
        resource,
        &hash::container(&r.spec),
        &desired.revision,
        spec_json.as_deref(),
    );
    CreateContainer { name, spec: &r.spec, labels: l, aliases: vec![resource.to_string()] }
}

/// Holds a container back until what it `dependsOn` is started, healthy or completed.
async fn wait_for_dependencies<E: Engine>(engine: &E, desired: &DesiredState, name: &str) -> Result<(), ActionError> {
    let c = &desired.containers[name];
    if c.spec.depends_on.is_empty() {
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
            ActionError::Skipped(format!(
                "dependency `{dep}` is not {}: {e}",
                match cond {
                    DependCondition::Healthy => "healthy",
                    _ => "completed",
                }
            ))
        })?;
    }
    Ok(())
}
