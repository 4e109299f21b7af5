//! The one interface every target implements: what the command line, the service and the
//! dashboard ask of wherever a project is deployed. Which implementation answers is decided once,
//! in [`super::targets`]; a capability a target lacks is an error of its own method, never a
//! branch in a caller.

use super::{ContainerStatus, EngineError, ErrorKind, Result};
use crate::apply::Report;
use crate::desired::DesiredState;
use crate::diff::{DiffOptions, Plan};
use crate::observed::swarm::SwarmState;
use crate::observed::ObservedState;
use futures_util::future::{BoxFuture, LocalBoxFuture};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A plan with what it is to be executed against.
#[derive(Debug)]
pub struct Planned {
    /// Masked: the host's values are not in it.
    pub plan: Plan,
    /// The desired state the plan executes against: its images pinned to digests where the
    /// target pins them, and what `diff::effective` keeps of the running ones.
    pub desired: DesiredState,
    /// What the project's objects were when planned; a saved plan is stale when it changes.
    pub fingerprint: String,
    /// Images the target could not pin, and why.
    pub warnings: Vec<String>,
}

/// The managed objects a target has, in the shape it has them.
#[derive(Debug)]
pub enum Listing {
    /// One host's containers, networks and volumes, with (when asked for) each container's
    /// inspected status, and usage (memory bytes, CPU ns) where the target reads it.
    Host { observed: ObservedState, status: BTreeMap<String, ContainerStatus>, usage: BTreeMap<String, (u64, u64)> },
    /// A cluster's services and their tasks.
    Cluster(SwarmState),
}

/// How `list` reads: `inspect` asks each managed container's status as well (one call each),
/// of `project`'s only when one is named.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListOptions<'a> {
    pub inspect: bool,
    pub project: Option<&'a str>,
}

/// Digest lookups begun before the desired state is known, tag to lookup (see `cli::early`);
/// those not taken are aborted when it is dropped.
#[derive(Default)]
pub struct EarlyPins(BTreeMap<String, tokio::task::JoinHandle<std::result::Result<String, EngineError>>>);

impl EarlyPins {
    pub fn new(lookups: BTreeMap<String, tokio::task::JoinHandle<std::result::Result<String, EngineError>>>) -> Self {
        EarlyPins(lookups)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The lookup begun for `tag`, if there is one.
    pub fn take(&mut self, tag: &str) -> Option<tokio::task::JoinHandle<std::result::Result<String, EngineError>>> {
        self.0.remove(tag)
    }
}

impl Drop for EarlyPins {
    fn drop(&mut self) {
        for lookup in self.0.values() {
            lookup.abort();
        }
    }
}

/// What may be asked of where a project runs without changing anything: all `plan`, `status`,
/// the dashboard and the metrics hold. Every method reads only.
pub trait Inspect: Send + Sync {
    /// The tags whose digests this target looks up when planning `d` (remembered by the command
    /// line to begin the lookups early next time); none by default.
    fn pinned_tags(&self, _d: &DesiredState) -> BTreeSet<String> {
        BTreeSet::new()
    }

    /// Begins looking up `tags`' digests, before the desired state is known.
    fn begin_pins(&self, _tags: &BTreeSet<String>) -> EarlyPins {
        EarlyPins::default()
    }

    /// Pins `d`'s images and observes the target (at once), then plans. Read-only.
    fn plan<'a>(&'a self, d: &'a DesiredState, opts: DiffOptions, early: EarlyPins) -> BoxFuture<'a, Result<Planned>>;

    /// The managed objects of every project.
    fn list<'a>(&'a self, opts: ListOptions<'a>) -> BoxFuture<'a, Result<Listing>>;

    /// Prints a container's output to stdout (following it when `follow`).
    fn logs<'a>(&'a self, name: &'a str, tail: Option<usize>, follow: bool) -> LocalBoxFuture<'a, Result<()>>;
}

/// Where a project runs, with the calls that change it. Every method changes only the
/// project's own objects.
pub trait Deployment: Inspect {
    /// Carries out a checked plan, at most `parallel` engine calls at a time where the target
    /// makes them; `progress` gets a line as each long step starts and ends.
    fn execute<'a>(
        &'a self,
        d: &'a DesiredState,
        plan: &'a Plan,
        parallel: usize,
        progress: &'a mut dyn FnMut(&str),
    ) -> LocalBoxFuture<'a, Report>;

    /// After a successful apply of `d`: records what it ran (for `hawser rollback`) and removes
    /// images past the newest `keep_images` that nothing uses; returns the images removed.
    fn applied<'a>(
        &'a self,
        d: &'a DesiredState,
        state_dir: &'a Path,
        keep_images: usize,
    ) -> LocalBoxFuture<'a, Vec<String>>;

    /// Gives `d` the images its revision ran when it was applied here, as `applied` recorded
    /// them; false when there is no record (they are then resolved anew).
    fn recall(&self, d: &mut DesiredState, state_dir: &Path) -> bool;
}

/// The error of a capability (`what`, plural) that `target` does not have.
pub fn unsupported(op: &str, what: &str, target: &str) -> EngineError {
    EngineError {
        op: op.to_string(),
        kind: ErrorKind::Unsupported,
        message: format!("{what} are not available on the {target} target"),
    }
}
