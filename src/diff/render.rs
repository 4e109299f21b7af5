//! The plan for people: terraform-like text (colored on a terminal) and markdown for pull request
//! comments. JSON is the plan's own serialization (`formatVersion` 1, documented in README.md).

use super::plan::{Action, Op, Plan};
use crate::desired::Strategy;
use crate::terminal::clean_line;
use std::fmt::Write;

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn sign_and_verb(a: &Action) -> (&'static str, String) {
    match &a.op {
        Op::Create => ("+", "create".into()),
        Op::Replace { strategy, .. } => (
            "~",
            match strategy {
                Strategy::StartFirst => "replace (start-first)".into(),
                Strategy::StopFirst => "replace (stop-first)".into(),
            },
        ),
        Op::Update { .. } => ("~", "update (rolling, by the swarm)".into()),
        Op::Start { .. } => (">", "start".into()),
        Op::Publish { .. } => (">", "publish its host ports".into()),
        Op::Unpublish { .. } => ("<", "take it out of its host ports".into()),
        Op::Adopt { from_name, .. } => (">", format!("rename `{from_name}` back")),
        Op::Remove { .. } => ("-", "remove".into()),
        Op::Pull { reference } => ("+", format!("pull {reference}")),
        Op::Build { reference } => ("+", format!("build {reference}")),
        Op::Conflict => ("!", "conflict".into()),
        Op::Orphan => ("?", "not declared".into()),
        Op::Keep => ("=", "keep what runs".into()),
    }
}

/// Changes, and what is kept for a reason worth knowing (an unresolved digest).
fn shown(plan: &Plan) -> impl Iterator<Item = &Action> {
    plan.actions.iter().filter(|a| a.op != Op::Keep || matches!(a.cause, super::plan::Cause::Unresolved { .. }))
}

fn summary_line(plan: &Plan) -> String {
    if plan.has_changes() {
        format!("Plan: {}", plan.summary())
    } else {
        format!("No changes. {}", plan.summary())
    }
}

/// The dry-run report: one line per action with its cause, changed specs as unified diffs.
pub fn text(plan: &Plan, color: bool) -> String {
    let paint = |code: &str, s: &str| if color { format!("{code}{s}{RESET}") } else { s.to_string() };
    let mut out = String::new();
    let _ = writeln!(out, "Project {} at revision {}", plan.project, clean_line(&plan.revision));
    let mut any = false;
    for a in shown(plan) {
        if !any {
            out.push('\n');
            any = true;
        }
        let (sign, verb) = sign_and_verb(a);
        let sign_color = match sign {
            "+" => GREEN,
            "-" | "!" => RED,
            _ => CYAN,
        };
        // Names, causes and values come from manifests and the engine: no control characters.
        let (name, cause) = (clean_line(&a.name), clean_line(&a.cause.to_string()).into_owned());
        let _ = writeln!(out, "  {} {} {}: {verb} ({cause})", paint(sign_color, sign), a.kind, paint(BOLD, &name));
        if let Some(diff) = &a.diff {
            for line in diff.lines() {
                let line = clean_line(line);
                let line = line.as_ref();
                let code = match line.chars().next() {
                    Some('+') => GREEN,
                    Some('-') => RED,
                    Some('@') => CYAN,
                    _ => "",
                };
                let _ = writeln!(out, "      {}", if code.is_empty() { line.to_string() } else { paint(code, line) });
            }
        }
    }
    if !plan.warnings.is_empty() {
        out.push('\n');
        for w in &plan.warnings {
            let _ = writeln!(out, "  {} {}", paint(YELLOW, "warning:"), clean_line(w));
        }
    }
    out.push('\n');
    out.push_str(&summary_line(plan));
    out.push('\n');
    out
}

/// A pull request comment: a summary table, then each change with its diff in a collapsible block.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let short = if plan.revision.len() > 12 && !plan.revision.starts_with("dir:") {
        &plan.revision[..12]
    } else {
        &plan.revision
    };
    let _ = writeln!(out, "### hawser plan: `{}` at `{short}`\n", plan.project);
    let _ = writeln!(out, "**{}**\n", summary_line(plan));
    for w in &plan.warnings {
        let _ = writeln!(out, "> ⚠️ **warning:** {}\n", w.replace('\n', " "));
    }
    let rows: Vec<&Action> = shown(plan).collect();
    if rows.is_empty() {
        return out;
    }
    out.push_str("| | resource | action | why |\n|---|---|---|---|\n");
    for a in &rows {
        let (sign, verb) = sign_and_verb(a);
        let sign = match sign {
            "+" => "🟢",
            "-" => "🔴",
            "!" => "⛔",
            "~" => "🟡",
            _ => "🔵",
        };
        let why = a.cause.to_string().replace('|', "\\|");
        let _ = writeln!(out, "| {sign} | {} `{}` | {verb} | {why} |", a.kind, a.name);
    }
    for a in rows.iter().filter(|a| a.diff.is_some()) {
        let _ = writeln!(
            out,
            "\n<details><summary>{} <code>{}</code>: what changes</summary>\n\n```diff\n{}```\n</details>",
            a.kind,
            a.name,
            a.diff.as_deref().unwrap_or_default()
        );
    }
    out
}
