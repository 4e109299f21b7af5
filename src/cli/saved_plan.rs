//! A plan saved by `hawser plan --out`, applied by `hawser apply --plan`: what is applied is
//! what was reviewed, or nothing.

use super::SourceArgs;
use crate::desired::DesiredState;
use crate::diff;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub(super) enum SavedPlanError {
    #[error("cannot write the plan to {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read the plan {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a saved hawser plan: {source}", .path.display())]
    Format { path: PathBuf, source: serde_json::Error },
    #[error("{} is a plan of format {found}, this hawser reads format {}", .path.display(), diff::FORMAT_VERSION)]
    Version { path: PathBuf, found: u32 },
    #[error("stale plan: it was made for project `{planned_project}` at revision {planned_revision}, and the source is now at {revision} (project `{project}`); run `hawser plan --out` again")]
    OtherRevision { planned_project: String, planned_revision: String, project: String, revision: String },
    #[error("stale plan: the managed objects of project `{project}` on the host changed since the plan was made; run `hawser plan --out` again")]
    HostChanged { project: String },
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SavedPlan {
    format_version: u32,
    pub source: String,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub path: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    pub prune: bool,
    #[serde(default)]
    pub take_over: bool,
    /// What the host's relevant objects were when the plan was made.
    host_fingerprint: String,
    /// The plan in its JSON form; applying recomputes the plan, which must come out identical.
    plan: serde_json::Value,
}

impl SavedPlan {
    pub fn new(
        src: &SourceArgs,
        prune: bool,
        take_over: bool,
        host_fingerprint: String,
        plan: &diff::Plan,
    ) -> SavedPlan {
        SavedPlan {
            format_version: diff::FORMAT_VERSION,
            source: std::fs::canonicalize(&src.source)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| src.source.clone()),
            git_ref: src.sel.git_ref.clone(),
            path: src.sel.path.clone(),
            project: src.sel.project.clone(),
            prune,
            take_over,
            host_fingerprint,
            plan: serde_json::to_value(plan).expect("plans serialize"),
        }
    }

    pub fn write(&self, file: &Path) -> Result<(), SavedPlanError> {
        let text = serde_json::to_string_pretty(self).expect("plans serialize");
        std::fs::write(file, text + "\n").map_err(|source| SavedPlanError::Write { path: file.into(), source })
    }

    /// Refuses a saved plan made for another revision or project than `d`'s.
    pub fn check_revision(&self, d: &DesiredState) -> Result<(), SavedPlanError> {
        if self.field("revision") != d.revision || self.field("project") != d.project {
            return Err(SavedPlanError::OtherRevision {
                planned_project: self.field("project").into(),
                planned_revision: self.field("revision").into(),
                project: d.project.clone(),
                revision: d.revision.clone(),
            });
        }
        Ok(())
    }

    /// Refuses a saved plan when the host's objects, or the plan made now, differ from then.
    pub fn check_unchanged(&self, fingerprint: &str, plan: &diff::Plan, project: &str) -> Result<(), SavedPlanError> {
        let now = serde_json::to_value(plan).expect("plans serialize");
        if fingerprint != self.host_fingerprint || self.plan != now {
            return Err(SavedPlanError::HostChanged { project: project.into() });
        }
        Ok(())
    }

    fn field(&self, key: &str) -> &str {
        self.plan.get(key).and_then(|v| v.as_str()).unwrap_or_default()
    }

    pub fn read(path: &Path) -> Result<SavedPlan, SavedPlanError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SavedPlanError::Read { path: path.into(), source })?;
        let sp: SavedPlan =
            serde_json::from_str(&text).map_err(|source| SavedPlanError::Format { path: path.into(), source })?;
        if sp.format_version != diff::FORMAT_VERSION {
            return Err(SavedPlanError::Version { path: path.into(), found: sp.format_version });
        }
        Ok(sp)
    }
}
