//! `hawser render`: the normalized desired state written back as manifests, so users see exactly
//! what hawser understood. The output is itself a valid revision that loads to the same model.

use super::decode::API_VERSION;
use super::model::{DesiredState, Kind};
use serde::Serialize;
use serde_json::{json, Map, Value};
use yaml_rust2::{Yaml, YamlEmitter};

/// One kube-like document per resource, in creation order.
pub fn documents(d: &DesiredState) -> Vec<Value> {
    let mut docs = Vec::new();
    fn doc<S: Serialize>(kind: Kind, name: &str, spec: &S, labels_to_metadata: bool) -> Value {
        let mut spec = serde_json::to_value(spec).expect("specs serialize");
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(name));
        if labels_to_metadata {
            if let Some(labels) = spec.as_object_mut().and_then(|s| s.remove("labels")) {
                metadata.insert("labels".into(), labels);
            }
        }
        json!({"apiVersion": API_VERSION, "kind": kind.as_str(), "metadata": metadata, "spec": spec})
    }
    docs.extend(d.networks.values().map(|r| doc(Kind::Network, &r.name, &r.spec, true)));
    docs.extend(d.volumes.values().map(|r| doc(Kind::Volume, &r.name, &r.spec, true)));
    docs.extend(d.images.values().map(|r| doc(Kind::Image, &r.name, &r.spec, false)));
    docs.extend(d.containers.values().map(|r| doc(Kind::Container, &r.name, &r.spec, false)));
    docs
}

pub fn to_json(d: &DesiredState) -> String {
    let v = json!({"project": d.project, "revision": d.revision, "resources": documents(d)});
    serde_json::to_string_pretty(&v).expect("json")
}

/// A YAML stream, one document per resource, headed by a comment naming project and revision.
pub fn to_yaml(d: &DesiredState) -> String {
    let mut out = format!("# project {}, revision {}\n", d.project, d.revision);
    for doc in documents(d) {
        let mut text = String::new();
        YamlEmitter::new(&mut text).dump(&to_yaml_node(&doc)).expect("emit yaml");
        out.push_str(&text);
        out.push('\n');
    }
    out
}

/// A JSON value as block YAML, without the document marker.
pub fn value_to_yaml(v: &Value) -> String {
    let mut text = String::new();
    YamlEmitter::new(&mut text).dump(&to_yaml_node(v)).expect("emit yaml");
    let body = text.strip_prefix("---\n").unwrap_or(&text).to_string();
    body + "\n"
}

fn to_yaml_node(v: &Value) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Array(a.iter().map(to_yaml_node).collect()),
        Value::Object(o) => Yaml::Hash(o.iter().map(|(k, v)| (Yaml::String(k.clone()), to_yaml_node(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use crate::desired::{load, ManifestFile};

    #[test]
    fn rendered_yaml_loads_back_to_the_same_model() {
        let text = r#"
kind: Network
metadata: {name: net, labels: {a: b}}
spec: {internal: true, ipam: {subnet: 10.1.0.0/24}}
---
kind: Volume
metadata: {name: data}
spec: {retain: false}
---
kind: Image
metadata: {name: app}
spec: {ref: "reg/app:1", pull: always}
---
kind: Container
metadata: {name: web, labels: {tier: front}}
spec:
  image: app
  command: "echo 1"
  env: {PORT: 8080, FLAG: "true"}
  ports: ["127.0.0.1:80:8080/udp"]
  volumes: ["data:/data:ro", "/srv/x:/x", {type: tmpfs, target: /tmp, size: 1Mi}]
  networks: {net: {aliases: [www]}}
  healthcheck: {test: [CMD, "true"], interval: 90s}
  resources: {memory: 1G, cpus: 1.5}
  dependsOn: {db: healthy}
  update: {strategy: stop-first}
  logging: {driver: local, options: {max-size: 10m, max-file: "3"}}
  shmSize: 1Gi
  ulimits: {nofile: {soft: 10, hard: 20}, core: 0}
  dns: ["127.0.0.1", "::1"]
---
kind: Container
metadata: {name: db}
spec: {image: "reg/db:1", healthcheck: {disable: true}}
"#;
        let original = load("p", "r", &[ManifestFile { path: "a.yaml".into(), text: text.into() }]).unwrap();
        let rendered = super::to_yaml(&original);
        let back = load("p", "r", &[ManifestFile { path: "render.yaml".into(), text: rendered.clone() }])
            .unwrap_or_else(|d| panic!("{d}\n{rendered}"));
        assert_eq!(back.containers.len(), original.containers.len());
        for (name, c) in &original.containers {
            assert_eq!(back.containers[name].spec, c.spec, "{name}");
        }
        assert_eq!(back.networks["net"].spec, original.networks["net"].spec);
        assert_eq!(back.volumes["data"].spec, original.volumes["data"].spec);
        assert_eq!(back.images["app"].spec, original.images["app"].spec);
        let json: serde_json::Value = serde_json::from_str(&super::to_json(&original)).unwrap();
        assert_eq!(json["resources"].as_array().unwrap().len(), 5);
    }
}
