//! `plan`, `apply` and `status` for the swarm target: the same steps and the same output as on
//! one host, through a manager.

use super::{
    color, confirm, print_plan, record_apply, short_revision, ApplyOptions, CliError, Output, EXIT_CHANGES, EXIT_OK,
};
use crate::desired::DesiredState;
use crate::diff::{self, DiffOptions, Plan};
use crate::observed::swarm::SwarmState;
use crate::reconcile;
use crate::runtime::swarm::SwarmEngine;
use crate::terminal::clean_line;
use std::borrow::Cow;

/// Pins the images, observes the swarm and computes the plan, with the desired state it is to
/// be executed against (see `diff::swarm::effective`).
async fn plan_for<'d>(
    engine: &SwarmEngine,
    d: &'d DesiredState,
    prune: bool,
    take_over: bool,
) -> Result<(SwarmState, Plan, Cow<'d, DesiredState>), CliError> {
    let observed = engine.observe().await?;
    let effective = diff::swarm::effective(d, &observed);
    let mut plan = diff::swarm::diff(&effective, &observed, &DiffOptions { prune, take_over });
    plan.mask(&d.masked);
    Ok((observed, plan, effective))
}

/// On a swarm every node must run the same bits: each image is pinned to the digest its tag
/// names now, asked of the manager as `docker service create` does (so its insecure
/// registries and mirrors apply). One that can't be resolved keeps its tag (and a service of
/// it the digest it runs), with a warning.
async fn pin_images(engine: &SwarmEngine, d: &DesiredState) -> Result<DesiredState, CliError> {
    let mut d = d.clone();
    let tags: std::collections::BTreeSet<String> =
        d.containers.values().filter(|c| !c.spec.image.contains('@')).map(|c| c.spec.image.clone()).collect();
    let lookups = tags.into_iter().map(|t| async move {
        let r = engine.resolve_digest(&t).await;
        (t, r)
    });
    for (tag, r) in futures_util::future::join_all(lookups).await {
        match r {
            Ok(digest) => {
                let pinned = format!("{}@{digest}", crate::observed::normalize_reference(&tag));
                for c in d.containers.values_mut().filter(|c| c.spec.image == tag) {
                    c.spec.image = pinned.clone();
                    d.declared_images.insert(c.name.clone(), tag.clone());
                }
            }
            Err(e) => {
                eprintln!("warning: image {tag} is not pinned to a digest ({e}); the nodes resolve the tag themselves")
            }
        }
    }
    Ok(d)
}

pub(super) async fn plan(
    host: &str,
    d: &DesiredState,
    output: Output,
    exit_code: bool,
    prune: bool,
    take_over: bool,
) -> Result<u8, CliError> {
    let engine = SwarmEngine::connect(host).await?;
    let d = pin_images(&engine, d).await?;
    let (_, plan, _) = plan_for(&engine, &d, prune, take_over).await?;
    print_plan(&plan, output);
    Ok(if exit_code && plan.has_changes() { EXIT_CHANGES } else { EXIT_OK })
}

pub(super) async fn apply(
    host: &str,
    state_dir: &std::path::Path,
    source: &str,
    d: &DesiredState,
    opts: &ApplyOptions<'_>,
    lock_timeout: Option<std::time::Duration>,
) -> Result<u8, CliError> {
    let engine = SwarmEngine::connect(host).await?;
    let _lock = crate::lock::acquire(state_dir, &d.project, lock_timeout, &mut |m: &str| eprintln!("{m}"))
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let started = std::time::Instant::now();
    let result = match pin_images(&engine, d).await {
        Ok(pinned) => run(&engine, &pinned, opts).await,
        Err(e) => Err(e),
    };
    record_apply(state_dir, source, d, &result, started);
    result.map(|(code, _)| code)
}

async fn run(engine: &SwarmEngine, d: &DesiredState, o: &ApplyOptions<'_>) -> Result<(u8, usize), CliError> {
    let (_, plan, d) = plan_for(engine, d, o.prune, o.take_over).await?;
    let d = d.as_ref();
    if !o.quiet {
        print!("{}", diff::render::text(&plan, color()));
    }
    let ropts = reconcile::Options { prune: o.prune, allow_empty: o.allow_empty, take_over: o.take_over };
    reconcile::check(&plan, d, &ropts)?;
    if !plan.has_changes() {
        return Ok((EXIT_OK, 0));
    }
    if !confirm(o.yes) {
        return Ok((super::EXIT_FAILED, 0));
    }
    let quiet = o.quiet;
    let mut progress = |line: &str| {
        if !quiet {
            println!("{}", crate::terminal::clean(line));
        }
    };
    let report = crate::apply::swarm::execute(engine, d, &plan, &mut progress).await;
    if !report.ok() {
        return Err(reconcile::ReconcileError::Failed {
            revision: d.revision.clone(),
            done: report.done,
            failed: report.failures.len(),
            lines: report.failures.iter().map(|f| format!("{} {}: {}", f.kind, f.name, f.message)).collect(),
        }
        .into());
    }
    if !quiet {
        println!("Applied revision {} of project {} to the swarm: {} change(s).", d.revision, d.project, report.done);
    }
    Ok((EXIT_OK, report.done))
}

/// Per service: desired and running tasks, and the nodes they run on.
pub(super) async fn status(host: &str, project: Option<&str>, output: Output) -> Result<u8, CliError> {
    let engine = SwarmEngine::connect(host).await?;
    let observed = engine.observe().await?;
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Row<'a> {
        project: &'a str,
        kind: &'static str,
        name: &'a str,
        revision: &'a str,
        desired_tasks: u64,
        running_tasks: u64,
        nodes: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        update: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        failing: Vec<String>,
    }
    let mut rows: Vec<Row> = Vec::new();
    for s in &observed.services {
        let Some(o) = &s.owner else { continue };
        if project.is_some_and(|p| p != o.project) {
            continue;
        }
        let mut nodes: Vec<String> = s
            .tasks
            .iter()
            .filter(|t| t.desired_state == "running" && t.state == "running")
            .map(|t| t.node.clone())
            .collect();
        nodes.sort();
        nodes.dedup();
        rows.push(Row {
            project: &o.project,
            kind: "Service",
            name: &s.name,
            revision: &o.revision,
            desired_tasks: s.replicas.unwrap_or(s.desired_tasks),
            running_tasks: s.running_tasks,
            nodes,
            update: s.update.as_ref().map(|u| format!("{:?}", u.state).to_lowercase()),
            failing: diff::swarm::failing_tasks(s, 3),
        });
    }
    rows.sort_by(|a, b| (a.project, a.name).cmp(&(b.project, b.name)));
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
        return Ok(EXIT_OK);
    }
    println!("{:<16} {:<10} {:<24} {:<8} {:<24} REVISION", "PROJECT", "KIND", "NAME", "TASKS", "NODES");
    for r in rows {
        let tasks = format!("{}/{}", r.running_tasks, r.desired_tasks);
        // Names and labels come from the cluster, where anyone may have put anything.
        println!(
            "{:<16} {:<10} {:<24} {:<8} {:<24} {}",
            clean_line(r.project),
            r.kind,
            clean_line(r.name),
            tasks,
            clean_line(&r.nodes.join(",")),
            short_revision(r.revision)
        );
        for f in &r.failing {
            println!("    failing {}", clean_line(f));
        }
    }
    Ok(EXIT_OK)
}
