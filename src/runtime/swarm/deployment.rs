//! The swarm as a [`Deployment`]: every image pinned to a digest through the manager, the plan
//! of services, the executor that watches rolling updates, and the digests recorded for rollback.

use super::SwarmEngine;
use crate::apply::images::ImageRecord;
use crate::apply::Report;
use crate::desired::DesiredState;
use crate::diff::{self, DiffOptions, Plan};
use crate::runtime::deployment::{unsupported, Deployment, EarlyPins, Inspect, ListOptions, Listing, Planned};
use crate::runtime::Result;
use futures_util::future::{BoxFuture, FutureExt, LocalBoxFuture};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

impl Inspect for SwarmEngine {
    fn pinned_tags(&self, d: &DesiredState) -> BTreeSet<String> {
        tags(d)
    }

    fn begin_pins(&self, tags: &BTreeSet<String>) -> EarlyPins {
        EarlyPins::new(
            tags.iter()
                .map(|tag| {
                    let engine = self.clone();
                    let lookup = tag.clone();
                    (tag.clone(), tokio::spawn(async move { engine.resolve_digest(&lookup).await }))
                })
                .collect(),
        )
    }

    fn plan<'a>(&'a self, d: &'a DesiredState, opts: DiffOptions, early: EarlyPins) -> BoxFuture<'a, Result<Planned>> {
        async move {
            // Whether it is a manager at all is asked alongside: its answer wins over the others'.
            let (manager, (pinned, warnings), observed) =
                tokio::join!(self.check(), pin_images(self, d, early), self.observe());
            manager?;
            let observed = observed?;
            let effective = diff::swarm::effective(&pinned, &observed).into_owned();
            let mut plan = diff::swarm::diff(&effective, &observed, &opts);
            plan.mask(&d.masked);
            let names: BTreeSet<String> = d.containers.keys().chain(d.networks.keys()).cloned().collect();
            let fingerprint = crate::observed::swarm::fingerprint(&observed, &d.project, &names);
            Ok(Planned { plan, desired: effective, fingerprint, warnings })
        }
        .boxed()
    }

    fn list<'a>(&'a self, _opts: ListOptions<'a>) -> BoxFuture<'a, Result<Listing>> {
        async move {
            // Whether it is a manager at all, first: a worker's answers are not the cluster's.
            self.check().await?;
            Ok(Listing::Cluster(self.observe().await?))
        }
        .boxed()
    }

    fn logs<'a>(&'a self, _name: &'a str, _tail: Option<usize>, _follow: bool) -> LocalBoxFuture<'a, Result<()>> {
        async { Err(unsupported("read logs", "logs", "swarm")) }.boxed_local()
    }
}

impl Deployment for SwarmEngine {
    fn execute<'a>(
        &'a self,
        d: &'a DesiredState,
        plan: &'a Plan,
        _parallel: usize,
        progress: &'a mut dyn FnMut(&str),
    ) -> LocalBoxFuture<'a, Report> {
        // The cluster paces its own rolling updates.
        crate::apply::swarm::execute(self, d, plan, progress).boxed_local()
    }

    fn applied<'a>(
        &'a self,
        d: &'a DesiredState,
        state_dir: &'a Path,
        _keep: usize,
    ) -> LocalBoxFuture<'a, Vec<String>> {
        // Images live on the nodes, which the cluster cleans up; only the pins are recorded.
        record_pins(state_dir, d);
        async { Vec::new() }.boxed_local()
    }

    fn recall(&self, d: &mut DesiredState, state_dir: &Path) -> bool {
        let record = ImageRecord::load(state_dir, &d.project);
        let Some(pins) = record.swarm_pins.get(&d.revision) else { return false };
        for c in d.containers.values_mut() {
            if let Some(pinned) = pins.get(&c.spec.image) {
                let tag = std::mem::replace(&mut c.spec.image, pinned.clone());
                d.declared_images.insert(c.name.clone(), tag);
            }
        }
        true
    }
}

/// The image tags to pin to digests (an image given by digest already is not looked up).
fn tags(d: &DesiredState) -> BTreeSet<String> {
    d.containers.values().filter(|c| !c.spec.image.contains('@')).map(|c| c.spec.image.clone()).collect()
}

/// Every image pinned to the digest its tag names now, asked of the manager as `docker
/// service create` does (its insecure registries and mirrors apply), so every node runs the
/// same bits. One that can't be resolved keeps its tag (and a service of it the digest it
/// runs); the warnings say which. A lookup begun early (`early`) is used instead of a new one.
async fn pin_images(engine: &SwarmEngine, d: &DesiredState, mut early: EarlyPins) -> (DesiredState, Vec<String>) {
    let mut d = d.clone();
    let lookups = tags(&d).into_iter().map(|t| {
        let begun = early.take(&t);
        async move {
            let r = match begun {
                Some(lookup) => match lookup.await {
                    Ok(r) => r,
                    Err(_) => engine.resolve_digest(&t).await,
                },
                None => engine.resolve_digest(&t).await,
            };
            (t, r)
        }
    });
    let mut warnings = Vec::new();
    for (tag, r) in futures_util::future::join_all(lookups).await {
        match r {
            Ok(digest) => {
                let pinned = format!("{}@{digest}", crate::observed::normalize_reference(&tag));
                for c in d.containers.values_mut().filter(|c| c.spec.image == tag) {
                    c.spec.image = pinned.clone();
                    d.declared_images.insert(c.name.clone(), tag.clone());
                }
            }
            Err(e) => warnings.push(format!(
                "image {tag} is not pinned to a digest ({}); the nodes resolve the tag themselves",
                e.message
            )),
        }
    }
    (d, warnings)
}

/// Notes the digest each tag of the applied revision `d` (pinned) runs, for `hawser rollback`
/// (best effort: without it a rollback resolves the tags anew, and says so).
fn record_pins(state_dir: &Path, d: &DesiredState) {
    let pins: BTreeMap<String, String> = d
        .declared_images
        .iter()
        .filter_map(|(name, tag)| d.containers.get(name).map(|c| (tag.clone(), c.spec.image.clone())))
        .filter(|(_, pinned)| pinned.contains('@'))
        .collect();
    let mut record = ImageRecord::load(state_dir, &d.project);
    if pins.is_empty() || record.swarm_pins.get(&d.revision) == Some(&pins) {
        return;
    }
    record.swarm_pins.insert(d.revision.clone(), pins);
    if let Err(e) = record.save(state_dir, &d.project) {
        eprintln!("warning: cannot record the digests of revision {} for rollback: {e}", d.revision);
    }
}
