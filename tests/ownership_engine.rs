//! A project belongs to one source: a second source claiming it is refused and changes nothing,
//! until it takes the project over on purpose.

mod common;
use common::*;

fn container(name: &str, version: &str) -> String {
    format!(
        "kind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sleep, \"3600\"]\n  env: {{VERSION: \"{version}\"}}\n  stopTimeout: 1s\n  init: true\n"
    )
}

/// Regression: two sources of one service claiming one project removed each other's
/// containers in a loop.
#[test]
fn a_second_source_is_refused_until_it_takes_the_project_over() {
    let p = "t-owner";
    let a = Stack::new(p);
    a.write("web.yaml", &container(&format!("{p}-web"), "a"));
    a.write("db.yaml", &container(&format!("{p}-db"), "a"));
    a.commit("a");
    let r = a.hawser(&["apply", "{src}", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let web = container_id(&format!("{p}-web")).unwrap();
    let label = inspect(&format!("{p}-web"), "{{index .Config.Labels \"dev.hawser.source\"}}");
    let a_path = std::fs::canonicalize(a.path()).unwrap().display().to_string();
    assert_eq!(label.trim(), a_path);

    // Another folder, same project name, declaring only one container, pruning.
    let b = tempfile::tempdir().unwrap();
    std::fs::write(b.path().join("hawser.toml"), format!("project = \"{p}\"\n")).unwrap();
    std::fs::write(b.path().join("web.yaml"), container(&format!("{p}-web"), "b")).unwrap();
    let b_src = b.path().display().to_string();
    let r = hawser_in(b.path(), a.state.path(), &["apply", &b_src, "--prune", "--yes"], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains(&format!("the project belongs to source `{a_path}`")), "{r:?}");
    assert!(r.stderr.contains("refusing to apply"), "{r:?}");
    assert_eq!(container_id(&format!("{p}-web")).as_deref(), Some(web.as_str()), "nothing was replaced");
    assert!(container_id(&format!("{p}-db")).is_some(), "nothing was pruned");

    // A deliberate move: replaced to carry the new source, the other one pruned.
    let r = hawser_in(b.path(), a.state.path(), &["apply", &b_src, "--prune", "--take-over", "--yes"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("taken over from source"), "{r:?}");
    let b_path = std::fs::canonicalize(b.path()).unwrap().display().to_string();
    let label = inspect(&format!("{p}-web"), "{{index .Config.Labels \"dev.hawser.source\"}}");
    assert_eq!(label.trim(), b_path);
    assert!(container_id(&format!("{p}-db")).is_none());

    // Now the first source is the stranger, and B applies as usual.
    let r = a.hawser(&["apply", "{src}", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains(&format!("the project belongs to source `{b_path}`")), "{r:?}");
    let r = hawser_in(b.path(), a.state.path(), &["plan", &b_src, "--exit-code"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
}

/// Attack: a second source took over a project that had only volumes and networks (only
/// containers counted as evidence of ownership) and pruned a volume with `retain: false`,
/// and its data with it.
#[test]
fn a_project_of_volumes_alone_is_not_taken_and_its_data_is_kept() {
    let p = "t-owner-vol";
    let a = Stack::new(p);
    a.write(
        "v.yaml",
        &format!("kind: Volume\nmetadata: {{name: {p}-cache}}\nspec: {{retain: false}}\n---\nkind: Network\nmetadata: {{name: {p}-net}}\n"),
    );
    a.commit("a");
    let r = a.hawser(&["apply", "{src}", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    docker(&["run", "--rm", "-v", &format!("{p}-cache:/data"), IMAGE, "sh", "-c", "echo precious > /data/file"]);

    let b = tempfile::tempdir().unwrap();
    std::fs::write(b.path().join("hawser.toml"), format!("project = \"{p}\"\n")).unwrap();
    std::fs::write(b.path().join("other.yaml"), format!("kind: Volume\nmetadata: {{name: {p}-other}}\n")).unwrap();
    let b_src = b.path().display().to_string();
    let r = hawser_in(b.path(), a.state.path(), &["apply", &b_src, "--prune", "--yes"], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    let a_path = std::fs::canonicalize(a.path()).unwrap().display().to_string();
    assert!(r.stdout.contains(&format!("the project belongs to source `{a_path}`")), "{r:?}");
    let volumes = docker(&["volume", "ls", "-q"]);
    assert!(volumes.contains(&format!("{p}-cache")) && !volumes.contains(&format!("{p}-other")), "{volumes}");
    assert!(docker(&["network", "ls", "--format", "{{.Name}}"]).contains(&format!("{p}-net")));
    let out = docker(&["run", "--rm", "-v", &format!("{p}-cache:/data"), IMAGE, "cat", "/data/file"]);
    assert_eq!(out.trim(), "precious");
}
