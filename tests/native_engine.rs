//! What only the native target does: its refusals. Everything it shares with the Docker target
//! is tested on both, in targets_engine.rs.

mod common;
use common::*;

#[test]
fn what_the_native_target_cannot_do_is_refused_at_its_position() {
    let p = "nt-refuse";
    let s = Stack::new(p);
    s.write("hawser.toml", &format!("project = \"{p}\"\ntarget = \"native\"\n"));
    s.write(
        "c.yaml",
        &format!(
            r#"kind: Image
metadata: {{name: built}}
spec: {{ref: "127.0.0.1:5000/built:1", build: {{context: .}}}}
---
kind: Container
metadata: {{name: {p}-c}}
spec:
  image: "{IMAGE}"
  tty: true
  ports: ["8080"]
"#
        ),
    );
    s.write("Dockerfile", "FROM scratch\n");
    s.commit("first");
    let r = s.hawser(&["validate", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("c.yaml:1:") && r.stderr.contains("image builder"), "{r:?}");
    assert!(r.stderr.contains("c.yaml:9:") && r.stderr.contains("tty"), "{r:?}");
    assert!(r.stderr.contains("c.yaml:10:") && r.stderr.contains("give the host port"), "{r:?}");
}
