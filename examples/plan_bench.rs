//! Plan time for 1,000 resources in process (parse, normalize, diff), the figure `scripts/bench`
//! reports. Run: cargo run --release --example plan_bench
use hawser::desired::{self, hash, Kind, ManifestFile};
use hawser::diff::{diff, DiffOptions};
use hawser::labels::{self, Ownership};
use hawser::observed::{
    normalize_reference, ObservedContainer, ObservedNetwork, ObservedState, ObservedVolume, RunState,
};
use std::time::Instant;

fn main() {
    // 1 network + 333 volumes + 666 containers = 1,000 resources, over 10 files.
    let mut files = Vec::new();
    for f in 0..10 {
        let mut docs = Vec::new();
        if f == 0 {
            docs.push("kind: Network\nmetadata: {name: net}\n".to_string());
        }
        for i in (f * 67)..((f + 1) * 67).min(666) {
            if i < 333 {
                docs.push(format!("kind: Volume\nmetadata: {{name: v{i}}}\n"));
            }
            let vol = if i < 333 { format!("  volumes: [\"v{i}:/data\"]\n") } else { String::new() };
            docs.push(format!(
                "kind: Container\nmetadata: {{name: c{i}, labels: {{app: bench}}}}\nspec:\n  image: reg/app:{}\n  command: [sleep, \"3600\"]\n  env: {{A: \"1\", B: \"two\"}}\n  ports: [\"{}:80\"]\n  networks: [net]\n  healthcheck: {{test: [CMD, \"true\"], interval: 5s}}\n{vol}",
                i % 7,
                10000 + i
            ));
        }
        files.push(ManifestFile { path: format!("m{f}.yaml"), text: docs.join("---\n") });
    }
    let d = desired::load("bench", "rev", &files).unwrap_or_else(|e| panic!("{e}"));
    let n = d.networks.len() + d.volumes.len() + d.containers.len() + d.images.len();

    // A host that has all of it, as hawser would have created it.
    let mut o = ObservedState::default();
    for (name, r) in &d.networks {
        let l = labels::for_object(
            &Default::default(),
            "bench",
            Kind::Network,
            name,
            &hawser::desired::hash::network(&r.spec),
            "rev",
            None,
        );
        o.networks.push(ObservedNetwork {
            id: name.clone(),
            name: name.clone(),
            owner: Ownership::from_labels(&l),
            labels: l,
        });
    }
    for (name, r) in &d.volumes {
        let l = labels::for_object(
            &Default::default(),
            "bench",
            Kind::Volume,
            name,
            &hawser::desired::hash::volume(&r.spec),
            "rev",
            None,
        );
        o.volumes.push(ObservedVolume { name: name.clone(), owner: Ownership::from_labels(&l), labels: l });
    }
    for (name, r) in &d.containers {
        let view = serde_json::to_string(&hash::container_view(&r.spec)).unwrap();
        let l = labels::for_object(
            &r.spec.labels,
            "bench",
            Kind::Container,
            name,
            &hash::container(&r.spec),
            "rev",
            Some(&view),
        );
        o.images.insert(normalize_reference(&r.spec.image), format!("sha256:{}", r.spec.image));
        o.containers.push(ObservedContainer {
            id: name.clone(),
            name: name.clone(),
            image_id: format!("sha256:{}", r.spec.image),
            state: RunState::Running,
            exit_code: None,
            health: None,
            owner: Ownership::from_labels(&l),
            labels: l,
            networks: vec!["net".into()],
            address: None,
        });
    }

    let mut parse = Vec::new();
    let mut plan = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let d = desired::load("bench", "rev", &files).unwrap();
        parse.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let p = diff(&d, &o, &DiffOptions::default());
        plan.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(!p.has_changes());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (mp, md) = (median(&mut parse), median(&mut plan));
    println!("resources: {n}");
    println!("plan of {n} resources, parse and normalize: {mp:.1} ms");
    println!("plan of {n} resources, diff: {md:.1} ms");
    println!("plan of {n} resources, total: {:.1} ms", mp + md);
    println!("compose project of 50 services with interpolation, read and render: {:.1} ms", compose_50());
}

/// Issue 13's figure: a compose file of 50 services, each with variables from `.env` and the
/// environment, defaults, a build, a repository file and a secret, read and rendered.
fn compose_50() -> f64 {
    let mut text = String::from("secrets:\n  db: {file: ./secrets/db}\nservices:\n");
    for i in 0..50 {
        text.push_str(&format!(
            "  s{i}:\n    image: ${{REGISTRY:-reg}}/app{i}:${{TAG}}\n    command: [serve, \"--port\", \"${{PORT_{i}:-80{i:02}}}\"]\n    environment: {{DB: \"${{DB_HOST}}:5432\", MODE: \"${{MODE:?set MODE}}\", N: \"{i}\"}}\n    ports: [\"127.0.0.1:${{BASE:-9}}0{i:02}:80\"]\n    volumes: [\"./conf/s{i}.conf:/etc/app.conf\", \"data{i}:/data\"]\n    secrets: [db]\n    depends_on: [{}]\n    healthcheck: {{test: [CMD, \"true\"], interval: 5s}}\n",
            if i == 0 { "s1".to_string() } else { format!("s{}", i - 1) }
        ).replace("depends_on: [s1]", "depends_on: []"));
    }
    text.push_str("volumes:\n");
    for i in 0..50 {
        text.push_str(&format!("  data{i}:\n"));
    }
    let files = vec![
        ManifestFile { path: "compose.yaml".into(), text },
        ManifestFile { path: ".env".into(), text: "TAG=1.2.3\nDB_HOST=db\nMODE=prod\n".into() },
    ];
    let env: std::collections::BTreeMap<String, String> =
        [("REGISTRY".to_string(), "registry.example".to_string())].into();
    let policy = desired::Policy::default();
    let data = Default::default();
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let d = desired::load_with(
            "bench",
            "rev",
            &files,
            &desired::load_options(&policy, &env, &[], &data, &Default::default()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let _ = desired::render::to_yaml(&d);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(d.containers.len(), 50);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}
