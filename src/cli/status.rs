//! `hawser status`: the managed objects on the target `--target` names, the revision each was
//! applied from, and their state.

use super::{Cli, CliError, Output, StatusArgs, EXIT_OK};
use crate::display::short_revision;
use crate::observed::swarm::SwarmState;
use crate::observed::ObservedState;
use crate::runtime::deployment::{ListOptions, Listing};
use crate::runtime::targets::Targets;
use crate::terminal::clean_line;
use std::path::Path;

pub(super) async fn run(cli: &Cli, state_dir: &Path, a: &StatusArgs) -> Result<u8, CliError> {
    let target = Targets::new(&cli.host, state_dir).open(cli.target.unwrap_or_default(), Default::default()).await?;
    let project = a.project.as_deref();
    match target.list(ListOptions { inspect: false, project }).await? {
        Listing::Host { observed, usage, .. } => print_host(&observed, &usage, project, a.output),
        Listing::Cluster(state) => print_cluster(&state, project, a.output),
    }
    Ok(EXIT_OK)
}

/// `usage`: memory (bytes) and CPU time (ns) of running containers, by id, where the target
/// reads them (the native target, from each container's cgroup).
fn print_host(
    observed: &ObservedState,
    usage: &std::collections::BTreeMap<String, (u64, u64)>,
    project: Option<&str>,
    output: Output,
) {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        project: &'a str,
        kind: String,
        name: &'a str,
        revision: &'a str,
        state: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        health: Option<&'static str>,
        #[serde(rename = "memoryBytes", skip_serializing_if = "Option::is_none")]
        memory_bytes: Option<u64>,
        #[serde(rename = "cpuSeconds", skip_serializing_if = "Option::is_none")]
        cpu_seconds: Option<f64>,
        /// The host ports hawser's rules send to it.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ports: Vec<String>,
    }
    let mut rows = Vec::new();
    for c in &observed.containers {
        if let Some(o) = &c.owner {
            rows.push(Row {
                project: &o.project,
                kind: "Container".into(),
                name: &c.name,
                revision: &o.revision,
                state: c.state.as_str().into(),
                health: c.health.as_ref().map(|h| match h {
                    crate::observed::Health::Healthy => "healthy",
                    crate::observed::Health::Unhealthy => "unhealthy",
                    crate::observed::Health::Starting => "starting",
                    crate::observed::Health::None => "none",
                }),
                memory_bytes: usage.get(&c.id).map(|u| u.0),
                cpu_seconds: usage.get(&c.id).map(|u| u.1 as f64 / 1e9),
                ports: observed.ports_of(c),
            });
        }
    }
    for n in &observed.networks {
        if let Some(o) = &n.owner {
            rows.push(Row {
                project: &o.project,
                kind: "Network".into(),
                name: &n.name,
                revision: &o.revision,
                state: "present".into(),
                health: None,
                memory_bytes: None,
                cpu_seconds: None,
                ports: Vec::new(),
            });
        }
    }
    for v in &observed.volumes {
        if let Some(o) = &v.owner {
            rows.push(Row {
                project: &o.project,
                kind: "Volume".into(),
                name: &v.name,
                revision: &o.revision,
                state: "present".into(),
                health: None,
                memory_bytes: None,
                cpu_seconds: None,
                ports: Vec::new(),
            });
        }
    }
    rows.retain(|r| project.is_none_or(|p| p == r.project));
    rows.sort_by(|a, b| (a.project, &a.kind, a.name).cmp(&(b.project, &b.kind, b.name)));
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
        return;
    }
    let with_usage = !usage.is_empty();
    if with_usage {
        println!(
            "{:<16} {:<10} {:<24} {:<22} {:>9} {:>9} {:<12} PORTS",
            "PROJECT", "KIND", "NAME", "STATE", "MEMORY", "CPU", "REVISION"
        );
    } else {
        println!("{:<16} {:<10} {:<24} {:<22} {:<12} PORTS", "PROJECT", "KIND", "NAME", "STATE", "REVISION");
    }
    for r in rows {
        let rev = short_revision(r.revision);
        let state = match r.health {
            Some(h) => format!("{} ({h})", r.state),
            None => r.state.clone(),
        };
        // Labels and names come from the engine, where anyone may have put anything.
        let (project, kind, name) = (clean_line(r.project), clean_line(&r.kind), clean_line(r.name));
        if with_usage {
            let mem = r.memory_bytes.map_or_else(|| "-".into(), |b| format!("{:.1}MiB", b as f64 / 1048576.0));
            let cpu = r.cpu_seconds.map_or_else(|| "-".into(), |s| format!("{s:.2}s"));
            println!(
                "{project:<16} {kind:<10} {name:<24} {:<22} {mem:>9} {cpu:>9} {rev:<12} {}",
                clean_line(&state),
                r.ports.join(",")
            );
        } else {
            println!("{project:<16} {kind:<10} {name:<24} {:<22} {rev:<12} {}", clean_line(&state), r.ports.join(","));
        }
    }
}

/// Per service: desired and running tasks, and the nodes they run on.
fn print_cluster(observed: &SwarmState, project: Option<&str>, output: Output) {
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
            failing: crate::diff::swarm::failing_tasks(s, 3),
        });
    }
    rows.sort_by(|a, b| (a.project, a.name).cmp(&(b.project, b.name)));
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
        return;
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
}
