//! `hawser history`: past reconciles (of `hawser serve` and `hawser apply`), newest first.

use super::{CliError, HistoryArgs, Output, EXIT_OK};
use crate::display::short_revision;
use crate::terminal::clean_line;
use std::path::Path;

pub(super) fn run(state_dir: &Path, a: &HistoryArgs) -> Result<u8, CliError> {
    let h = crate::history::History::open(state_dir)?;
    let entries = h.recent(a.project.as_deref(), a.limit)?;
    if a.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&entries).expect("entries serialize"));
        return Ok(EXIT_OK);
    }
    println!(
        "{:<20} {:<16} {:<16} {:<9} {:<10} {:>7} {:>8}  REVISION",
        "WHEN (UTC)", "SOURCE", "PROJECT", "TRIGGER", "OUTCOME", "ACTIONS", "MS"
    );
    for e in &entries {
        let rev = short_revision(e.revision.as_deref().unwrap_or("-"));
        println!(
            "{:<20} {:<16} {:<16} {:<9} {:<10} {:>7} {:>8}  {rev}",
            crate::display::utc(e.started_unix),
            clean_line(&e.source),
            clean_line(e.project.as_deref().unwrap_or("-")),
            e.trigger,
            e.outcome,
            e.actions,
            e.duration_ms
        );
        if let Some(err) = &e.error {
            println!("    {}", clean_line(err.lines().next().unwrap_or_default()));
        }
    }
    Ok(EXIT_OK)
}
