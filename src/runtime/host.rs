//! The engine of one host, whichever kind it is: the Docker Engine API or the native target.
//! Both are one [`Deployment`]: the same plan (`diff`) and the same executor (`apply`) over the
//! engine traits, which route each call to the chosen backend.

use super::deployment::{Deployment, EarlyPins, Inspect, ListOptions, Listing, Planned};
use super::docker::DockerEngine;
use super::native::NativeEngine;
use super::{registry, ContainerStatus, CreateContainer, Engine, EngineRead, Events, Result};
use crate::apply::{self, images::ImageRecord, limit::Limited, Report};
use crate::desired::{BuildContext, DesiredState, NetworkSpec, PortBinding, VolumeSpec};
use crate::diff::{self, DiffOptions, Plan};
use crate::observed::{ObservedState, RunState};
use futures_util::future::{BoxFuture, FutureExt, LocalBoxFuture};
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

pub enum HostEngine {
    Docker(DockerEngine),
    Native(NativeEngine),
}

macro_rules! each {
    ($self:ident, $e:ident => $call:expr) => {
        match $self {
            HostEngine::Docker($e) => $call,
            HostEngine::Native($e) => $call,
        }
    };
}

impl EngineRead for HostEngine {
    async fn observe(&self) -> Result<ObservedState> {
        each!(self, e => e.observe().await)
    }
    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        each!(self, e => e.container_status(id).await)
    }
    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String> {
        each!(self, e => e.logs_tail(id, lines).await)
    }
    fn events<'a>(&'a self, id: &str, since: std::time::SystemTime) -> Events<'a> {
        each!(self, e => e.events(id, since))
    }
}

impl Engine for HostEngine {
    async fn create_network(&self, name: &str, spec: &NetworkSpec, labels: BTreeMap<String, String>) -> Result<String> {
        each!(self, e => e.create_network(name, spec, labels).await)
    }
    async fn remove_network(&self, id: &str) -> Result<()> {
        each!(self, e => e.remove_network(id).await)
    }
    async fn create_volume(&self, name: &str, spec: &VolumeSpec, labels: BTreeMap<String, String>) -> Result<()> {
        each!(self, e => e.create_volume(name, spec, labels).await)
    }
    async fn remove_volume(&self, name: &str) -> Result<()> {
        each!(self, e => e.remove_volume(name).await)
    }
    async fn pull_image(&self, reference: &str, platform: Option<&str>) -> Result<()> {
        each!(self, e => e.pull_image(reference, platform).await)
    }
    async fn remove_image(&self, reference: &str) -> Result<()> {
        each!(self, e => e.remove_image(reference).await)
    }
    async fn push_image(&self, reference: &str) -> Result<()> {
        each!(self, e => e.push_image(reference).await)
    }
    async fn build_image(&self, ctx: &BuildContext) -> Result<()> {
        each!(self, e => e.build_image(ctx).await)
    }
    async fn create_container(&self, req: &CreateContainer<'_>) -> Result<String> {
        each!(self, e => e.create_container(req).await)
    }
    async fn start_container(&self, id: &str) -> Result<()> {
        each!(self, e => e.start_container(id).await)
    }
    async fn stop_container(&self, id: &str, timeout: Option<Duration>) -> Result<()> {
        each!(self, e => e.stop_container(id, timeout).await)
    }
    async fn remove_container(&self, id: &str) -> Result<()> {
        each!(self, e => e.remove_container(id).await)
    }
    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        each!(self, e => e.rename_container(id, new_name).await)
    }
    async fn publish(&self, project: &str, name: &str, id: Option<&str>, ports: &[PortBinding]) -> Result<()> {
        each!(self, e => e.publish(project, name, id, ports).await)
    }
    async fn unpublish(&self, project: &str, name: &str, id: &str) -> Result<Vec<PortBinding>> {
        each!(self, e => e.unpublish(project, name, id).await)
    }
    async fn open_connections(&self, id: &str, ports: &[PortBinding]) -> Result<usize> {
        each!(self, e => e.open_connections(id, ports).await)
    }
    async fn exec(&self, id: &str, hook: &crate::desired::Hook) -> Result<i64> {
        each!(self, e => e.exec(id, hook).await)
    }
}

impl Inspect for HostEngine {
    fn plan<'a>(&'a self, d: &'a DesiredState, opts: DiffOptions, _early: EarlyPins) -> BoxFuture<'a, Result<Planned>> {
        async move {
            // `pull: always` tags are asked of their registries while the host is read.
            let mut pinned = d.clone();
            let (observed, ()) = tokio::join!(self.observe(), registry::resolve_digests(&mut pinned));
            let observed = observed?;
            let effective = diff::effective(&pinned, &observed).into_owned();
            let mut plan = diff::diff(&effective, &observed, &opts);
            plan.mask(&d.masked);
            let names: BTreeSet<String> =
                d.containers.keys().chain(d.networks.keys()).chain(d.volumes.keys()).cloned().collect();
            let fingerprint = crate::observed::fingerprint(&observed, &d.project, &names);
            Ok(Planned { plan, desired: effective, fingerprint, warnings: Vec::new() })
        }
        .boxed()
    }

    fn list<'a>(&'a self, opts: ListOptions<'a>) -> BoxFuture<'a, Result<Listing>> {
        async move {
            let observed = self.observe().await?;
            let asked = |o: &crate::labels::Ownership| opts.project.is_none_or(|p| p == o.project);
            let managed: Vec<String> = observed
                .containers
                .iter()
                .filter(|c| c.owner.as_ref().is_some_and(asked))
                .map(|c| c.id.clone())
                .collect();
            let mut status = BTreeMap::new();
            if opts.inspect {
                // 16 asked at a time.
                let answers: Vec<_> = futures_util::stream::iter(managed.iter().cloned())
                    .map(|id| async move { (id.clone(), self.container_status(&id).await) })
                    .buffered(16)
                    .collect()
                    .await;
                status = answers.into_iter().filter_map(|(id, st)| st.ok().map(|st| (id, st))).collect();
            }
            let usage = match self {
                // Read from each running container's cgroup.
                HostEngine::Native(n) => observed
                    .containers
                    .iter()
                    .filter(|c| c.owner.is_some() && c.state == RunState::Running)
                    .filter_map(|c| n.usage(&c.id).map(|u| (c.id.clone(), u)))
                    .collect(),
                HostEngine::Docker(_) => BTreeMap::new(),
            };
            Ok(Listing::Host { observed, status, usage })
        }
        .boxed()
    }

    fn logs<'a>(&'a self, name: &'a str, tail: Option<usize>, follow: bool) -> LocalBoxFuture<'a, Result<()>> {
        async move {
            match self {
                HostEngine::Docker(e) => e.print_logs(name, tail, follow).await,
                HostEngine::Native(n) => {
                    let log = n.log_path(name)?;
                    super::native::logs::print(&log, tail, follow).await;
                    Ok(())
                }
            }
        }
        .boxed_local()
    }
}

impl Deployment for HostEngine {
    fn execute<'a>(
        &'a self,
        d: &'a DesiredState,
        plan: &'a Plan,
        parallel: usize,
        progress: &'a mut dyn FnMut(&str),
    ) -> LocalBoxFuture<'a, Report> {
        async move {
            // The repository files containers mount are on the host before any container is made.
            if let Err(e) = apply::repo_files::materialize(d) {
                return Report { aborted: Some(e), ..Report::default() };
            }
            let limited = Limited::new(self, parallel);
            let report = apply::execute(&limited, d, plan, progress).await;
            if report.ok() {
                apply::repo_files::collect(d);
            }
            report
        }
        .boxed_local()
    }

    fn applied<'a>(&'a self, d: &'a DesiredState, state_dir: &'a Path, keep: usize) -> LocalBoxFuture<'a, Vec<String>> {
        apply::collect_images(self, d, state_dir, keep).boxed_local()
    }

    fn recall(&self, d: &mut DesiredState, state_dir: &Path) -> bool {
        let record = ImageRecord::load(state_dir, &d.project);
        let Some(images) = record.revisions.get(&d.revision) else { return false };
        for (name, reference) in images {
            let Some(img) = d.images.get_mut(name) else { continue };
            let old = std::mem::replace(&mut img.spec.reference, reference.clone());
            for c in d.containers.values_mut().filter(|c| c.spec.image == old) {
                c.spec.image = reference.clone();
            }
        }
        true
    }
}
