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
            &hawser::diff::network_hash(&r.spec),
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
            &hawser::diff::volume_hash(&r.spec),
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
}
