//! The dashboard's pages: plain view models built from what the service knows (source status,
//! history, the host's objects, the plan of the head), rendered by askama templates compiled
//! into the binary (`templates/`). Building a page is a pure function of its inputs; the
//! routes gather them.
//!
//! Nothing here shows a secret: the plan text is masked as `hawser plan` masks it, errors are
//! the ones `/status` shows, and labels and environments are not listed.

pub mod chart;

use super::metrics::{Outcome, SourceStatus};
use crate::history::Entry;
use askama::Template;

/// What every page's frame needs.
pub struct Frame {
    pub csrf: String,
    /// A token is configured: the frame offers to log out.
    pub login: bool,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct Overview {
    pub frame: Frame,
    pub rows: Vec<SourceRow>,
}

#[derive(Template)]
#[template(path = "project.html")]
pub struct ProjectPage {
    pub frame: Frame,
    pub source: SourceRow,
    pub resources: Vec<ResourceRow>,
    /// The host could not be read: why.
    pub observe_error: Option<String>,
    /// The plan of the head against the host, as `hawser plan` prints it.
    pub plan: Option<String>,
    pub plan_changes: bool,
    /// Why there is no plan (the head does not validate, or it has not been read yet).
    pub plan_error: Option<String>,
    pub history: Vec<HistoryRow>,
}

#[derive(Template)]
#[template(path = "history.html")]
pub struct HistoryPage {
    pub frame: Frame,
    /// The source the page is narrowed to.
    pub source: Option<String>,
    pub sources: Vec<String>,
    pub rows: Vec<HistoryRow>,
    pub chart: chart::Svg,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub frame: Frame,
    pub failed: bool,
}

/// One source on the overview (and at the top of its project page).
pub struct SourceRow {
    pub name: String,
    pub repo: String,
    pub project: String,
    /// The revision applied last, and the head last read from the branch.
    pub applied: String,
    pub head: String,
    /// The head is not what runs.
    pub behind: bool,
    /// `ok`, `failed`, `down` (source unreachable), `pending` (nothing yet): a CSS class too.
    pub state: &'static str,
    pub outcome: String,
    pub trigger: String,
    pub when: String,
    pub took: String,
    pub next_retry: String,
    pub error: String,
    pub source_error: String,
    /// Notification targets that fail, and why.
    pub notify_error: String,
    pub running: bool,
}

impl SourceRow {
    pub fn new(s: &SourceStatus, now: f64) -> SourceRow {
        let state = if s.source_unavailable.is_some() {
            "down"
        } else {
            match s.last_outcome {
                None => "pending",
                Some(Outcome::Changed | Outcome::Unchanged) => "ok",
                Some(_) => "failed",
            }
        };
        let applied = s.applied_revision.as_deref().map(short_revision).unwrap_or_default();
        let head = s.last_revision.as_deref().map(short_revision).unwrap_or_default();
        SourceRow {
            name: s.name.clone(),
            repo: s.repo.clone(),
            project: s.project.clone().unwrap_or_default(),
            behind: !head.is_empty() && head != applied,
            applied,
            head,
            state,
            outcome: s.last_outcome.map(|o| o.as_str().to_string()).unwrap_or_default(),
            trigger: s.last_trigger.map(|t| t.as_str().to_string()).unwrap_or_default(),
            when: s.last_attempt_unix.map(|t| ago(now - t)).unwrap_or_default(),
            took: s.last_duration_ms.map(|ms| duration_ms(ms as u64)).unwrap_or_default(),
            next_retry: s
                .next_retry_unix
                .filter(|t| *t > now)
                .map(|t| format!("in {}", span(t - now)))
                .unwrap_or_default(),
            error: s.last_error.clone().unwrap_or_default(),
            source_error: s.source_unavailable.clone().unwrap_or_default(),
            notify_error: String::new(),
            running: s.reconciling,
        }
    }
}

/// One object of a project on the host.
pub struct ResourceRow {
    pub kind: &'static str,
    pub name: String,
    pub state: String,
    pub health: String,
    /// The image as declared (its tag), and the digest or image id it runs.
    pub image: String,
    pub digest: String,
    pub revision: String,
    pub uptime: String,
    pub restarts: String,
    /// The host ports hawser publishes to it.
    pub ports: String,
}

/// One reconcile of the history.
pub struct HistoryRow {
    pub id: usize,
    pub when: String,
    pub at: String,
    pub source: String,
    pub project: String,
    pub outcome: String,
    pub ok: bool,
    pub trigger: String,
    pub revision: String,
    pub took: String,
    pub actions: u64,
    pub error: String,
}

impl HistoryRow {
    pub fn new(id: usize, e: &Entry, now: f64) -> HistoryRow {
        HistoryRow {
            id,
            when: ago(now - e.started_unix),
            at: format!("{} UTC", crate::display::utc(e.started_unix)),
            source: e.source.clone(),
            project: e.project.clone().unwrap_or_default(),
            ok: matches!(e.outcome.as_str(), "changed" | "unchanged"),
            outcome: e.outcome.clone(),
            trigger: e.trigger.clone(),
            revision: e.revision.as_deref().map(short_revision).unwrap_or_default(),
            took: duration_ms(e.duration_ms),
            actions: e.actions,
            error: e.error.clone().unwrap_or_default(),
        }
    }
}

pub use crate::display::short_revision;

/// `3s`, `4m`, `2h`, `5d`.
pub fn span(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

pub fn ago(secs: f64) -> String {
    format!("{} ago", span(secs))
}

pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> SourceStatus {
        SourceStatus { name: "shop".into(), repo: "/srv/git/shop.git".into(), ..Default::default() }
    }

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(ago(75.0), "1m ago");
        assert_eq!(span(7200.0), "2h");
        assert_eq!(duration_ms(1530), "1.5 s");
    }

    #[test]
    fn a_failed_source_is_red_and_says_why_and_when_it_retries() {
        let mut s = status();
        s.last_outcome = Some(Outcome::Failed);
        s.last_error = Some("container web: unhealthy".into());
        s.applied_revision = Some("a".repeat(40));
        s.last_revision = Some("b".repeat(40));
        s.next_retry_unix = Some(130.0);
        let row = SourceRow::new(&s, 100.0);
        assert_eq!(row.state, "failed");
        assert!(row.behind);
        assert_eq!(row.head, "b".repeat(12));
        assert_eq!(row.next_retry, "in 30s");
        let html = Overview { frame: Frame { csrf: "c".into(), login: false }, rows: vec![row] }.render().unwrap();
        assert!(html.contains("class=\"source failed\""), "{html}");
        assert!(html.contains("container web: unhealthy"));
    }

    #[test]
    fn text_from_the_host_is_escaped() {
        let mut s = status();
        s.last_outcome = Some(Outcome::Invalid);
        s.last_error = Some("<script>alert(1)</script>".into());
        let html = Overview { frame: Frame { csrf: "c".into(), login: false }, rows: vec![SourceRow::new(&s, 0.0)] }
            .render()
            .unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"), "{html}");
    }
}
