//! How long the dashboard takes to render its largest pages: a project of 200 resources with a
//! plan and its recent history, and a history of 1,000 reconciles with its chart (the figures
//! `scripts/bench-dashboard` reports; the target is under 50 ms a page).
//! Run: cargo run --release --example dashboard_bench
use askama::Template;
use hawser::history::Entry;
use hawser::serve::dashboard::{chart, Frame, HistoryPage, HistoryRow, ProjectPage, ResourceRow, SourceRow};
use hawser::serve::metrics::{Outcome, SourceStatus};
use std::time::{Duration, Instant};

fn entries(n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            started_unix: 1.79e9 + i as f64 * 60.0,
            source: format!("source-{}", i % 5),
            project: Some(format!("project-{}", i % 5)),
            revision: Some(format!("{:040x}", i * 7919)),
            trigger: ["push", "interval", "event", "webhook"][i % 4].into(),
            actions: (i % 9) as u64,
            outcome: if i % 17 == 0 { "failed" } else { "changed" }.into(),
            duration_ms: 200 + (i * 37 % 4000) as u64,
            error: (i % 17 == 0).then(|| format!("revision {i} was not fully applied:\n  Container web-{i}: unhealthy\n  last log lines:\n  panic: cannot bind :8080")),
        })
        .collect()
}

fn frame() -> Frame {
    Frame { csrf: "0".repeat(64), login: true }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let now = 1.79e9 + 61_000.0;
    let history = entries(1000);
    let status = SourceStatus {
        name: "shop".into(),
        repo: "/srv/git/shop.git".into(),
        project: Some("shop".into()),
        applied_revision: Some("a".repeat(40)),
        last_revision: Some("b".repeat(40)),
        last_outcome: Some(Outcome::Failed),
        last_error: Some("Container web-3: unhealthy".into()),
        last_attempt_unix: Some(now - 30.0),
        ..Default::default()
    };
    let resources = |n: usize| -> Vec<ResourceRow> {
        (0..n)
            .map(|i| ResourceRow {
                kind: "Container",
                name: format!("web-{i}"),
                state: "running".into(),
                health: "healthy".into(),
                image: "registry.example/shop/web:1.4".into(),
                digest: "sha256:0123456789ab".into(),
                revision: "a".repeat(12),
                uptime: "3h".into(),
                restarts: "0".into(),
                ports: "127.0.0.1:8080->80/tcp".into(),
            })
            .collect()
    };
    let plan: String = (0..200)
        .map(|i| format!("  ~ replace Container web-{i}  (changed: env.VERSION)\n      - VERSION: \"1\"\n      + VERSION: \"2\"\n"))
        .collect();

    let mut project_times = Vec::new();
    let mut history_times = Vec::new();
    let mut sizes = (0, 0);
    for _ in 0..30 {
        let t = Instant::now();
        let page = ProjectPage {
            frame: frame(),
            source: SourceRow::new(&status, now),
            resources: resources(200),
            observe_error: None,
            plan: Some(plan.clone()),
            plan_changes: true,
            plan_error: None,
            history: history.iter().take(20).enumerate().map(|(i, e)| HistoryRow::new(i, e, now)).collect(),
        };
        let html = page.render().unwrap();
        project_times.push(t.elapsed());
        sizes.0 = html.len();

        let t = Instant::now();
        let points: Vec<(f64, u64, bool)> =
            history.iter().map(|e| (e.started_unix, e.duration_ms, e.outcome != "failed")).collect();
        let page = HistoryPage {
            frame: frame(),
            source: None,
            sources: (0..5).map(|i| format!("source-{i}")).collect(),
            rows: history.iter().enumerate().map(|(i, e)| HistoryRow::new(i, e, now)).collect(),
            chart: chart::durations(&points),
        };
        let html = page.render().unwrap();
        history_times.push(t.elapsed());
        sizes.1 = html.len();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "dashboard project page, 200 resources and a 200-action plan: {:.2} ms ({} KB)",
        ms(median(project_times)),
        sizes.0 / 1024
    );
    println!(
        "dashboard history page, 1,000 reconciles with the chart: {:.2} ms ({} KB)",
        ms(median(history_times)),
        sizes.1 / 1024
    );
}
