//! Compose projects as people write them (tests/compose_corpus: a web server with its config,
//! apps built from Dockerfiles beside their databases, a metrics stack with provisioning folders,
//! secrets and configs from files, `.env` defaults, profiles, extends, YAML anchors). Each must
//! pass `hawser validate` as it is, and `hawser render` must agree with `docker-compose config`,
//! the reference implementation, on every service's image or build, command, entrypoint,
//! environment, ports, volumes, networks and dependencies (tests/support/compose_parity.py).
//! No engine is needed: nothing is applied.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment of both programs: the same for each, nothing of the machine's.
fn env_of(project: &str) -> Vec<(&'static str, &'static str)> {
    let mut env = vec![("HOME", "/srv/home")];
    match project {
        // A value of the process's environment wins over `.env`, as in compose.
        "interpolation" => env.extend([("TAG", "3.2.0-rc1"), ("REGISTRY", "127.0.0.1:5000")]),
        "profiles-tools" => env.push(("COMPOSE_PROFILES", "debug")),
        _ => {}
    }
    env
}

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose_corpus");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("the corpus is there")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

fn run(project: &Path, state: &Path) -> Result<(), String> {
    let name = project.file_name().unwrap().to_string_lossy().to_string();
    let env = env_of(&name);
    let command = |program: &str| {
        let mut c = Command::new(program);
        c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        c.envs(env.iter().copied());
        c
    };
    let hawser = env!("CARGO_BIN_EXE_hawser");
    let out = command(hawser).arg("--state-dir").arg(state).arg("validate").arg(project).output().unwrap();
    if !out.status.success() {
        return Err(format!("{name}: hawser validate refused it:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/compose_parity.py");
    let out = command("python3")
        .arg(script)
        .arg(hawser)
        .arg(project)
        .arg(state)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name}: hawser render and docker-compose config disagree:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

#[test]
fn every_project_of_the_corpus_validates_and_renders_as_docker_compose_config_does() {
    let projects = corpus();
    assert!(projects.len() >= 25, "the corpus has {} projects; it needs at least 25", projects.len());
    assert!(
        Command::new("docker-compose").arg("version").output().is_ok_and(|o| o.status.success()),
        "docker-compose (the reference) is not installed: scripts/engine-up installs it"
    );
    let state = tempfile::tempdir().unwrap();
    // Four at a time: each is two short processes, mostly python starting.
    let mut failures = Vec::new();
    for chunk in projects.chunks(4) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|p| {
                let (p, state) = (p.clone(), state.path().join(p.file_name().unwrap()));
                std::thread::spawn(move || run(&p, &state))
            })
            .collect();
        failures.extend(handles.into_iter().filter_map(|h| h.join().unwrap().err()));
    }
    assert!(failures.is_empty(), "{} of {} projects:\n{}", failures.len(), projects.len(), failures.join("\n"));
}
