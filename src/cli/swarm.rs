//! `plan`, `apply` and `status` for the swarm target: the same steps and the same output as on
//! one host, through a manager.

use super::{
    color, confirm, print_plan, record_apply, short_revision, ApplyOptions, CliError, Output, EXIT_CHANGES, EXIT_OK,
};
use crate::desired::DesiredState;
use crate::diff;
use crate::reconcile;
use crate::runtime::swarm::SwarmEngine;
use crate::terminal::clean_line;

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

pub(super) async fn plan(
    host: &str,
    d: &DesiredState,
    output: Output,
    exit_code: bool,
    prune: bool,
    take_over: bool,
) -> Result<u8, CliError> {
    let engine = SwarmEngine::at(host)?;
    let opts = reconcile::Options { prune, take_over, allow_empty: false };
    let (_, plan, _, warnings) = reconcile::plan_swarm(&engine, d, &opts).await?;
    warn(&warnings);
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
    let engine = SwarmEngine::at(host)?;
    let _lock = crate::lock::acquire(state_dir, &d.project, lock_timeout, &mut |m: &str| eprintln!("{m}"))
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let started = std::time::Instant::now();
    let result = run(&engine, d, opts).await;
    record_apply(state_dir, source, d, &result, started);
    result.map(|(code, _)| code)
}

async fn run(engine: &SwarmEngine, d: &DesiredState, o: &ApplyOptions<'_>) -> Result<(u8, usize), CliError> {
    let ropts = reconcile::Options { prune: o.prune, allow_empty: o.allow_empty, take_over: o.take_over };
    let (_, plan, d, warnings) = reconcile::plan_swarm(engine, d, &ropts).await?;
    warn(&warnings);
    let d = &d;
    if !o.quiet {
        print!("{}", diff::render::text(&plan, color()));
    }
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
            println!("{}", crate::terminal::clean(&d.secrets.redact(line)));
        }
    };
    let report = reconcile::execute_swarm(engine, d, &plan, &mut progress).await?;
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
