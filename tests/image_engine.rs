//! Registry digests: a tag that moves in the registry shows in the plan and replaces the
//! container, which then runs the planned digest; `pull: missing` does not react; with the
//! registry gone, the changed image fails alone and the running container stays.
//! Uses a registry of its own on 127.0.0.1:5011, so stopping it disturbs no other test.

mod common;
use common::*;
use std::process::{Child, Command, Stdio};

const REG: &str = "127.0.0.1:5011";

struct Registry {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Registry { dir, child: None };
        r.up();
        r
    }
    fn up(&mut self) {
        let cfg = self.dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp:\n  addr: {REG}\n",
                self.dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(REG).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("private registry did not start");
    }
    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.down();
    }
}

/// Pushes an image whose /marker holds `marker` to `REG/name:tag`; returns its digest.
fn push_variant(name: &str, tag: &str, marker: &str) -> String {
    push_variant_to(REG, name, tag, marker)
}

fn manifest(p: &str) -> String {
    format!(
        "kind: Image\nmetadata: {{name: app}}\nspec: {{ref: \"{REG}/{p}-app:latest\", pull: always}}\n---\nkind: Image\nmetadata: {{name: lazy}}\nspec: {{ref: \"{REG}/{p}-lazy:latest\", pull: missing}}\n---\nkind: Container\nmetadata: {{name: {p}-app}}\nspec: {{image: app, command: [sleep, \"3600\"], stopTimeout: 1s}}\n---\nkind: Container\nmetadata: {{name: {p}-lazy}}\nspec: {{image: lazy, command: [sleep, \"3600\"], stopTimeout: 1s}}\n"
    )
}

fn marker(name: &str) -> String {
    String::from_utf8_lossy(&exec(name, &["cat", "/marker"]).stdout).trim().to_string()
}

#[test]
fn a_moved_tag_is_planned_by_digest_and_replaces_the_container() {
    let p = "t-digest";
    let mut reg = Registry::start();
    let s = Stack::new(p);
    let d1 = push_variant(&format!("{p}-app"), "latest", "one");
    push_variant(&format!("{p}-lazy"), "latest", "lazy-one");
    s.write("stack.yaml", &manifest(p));
    s.commit("images");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(marker(&format!("{p}-app")), "one");
    assert_eq!(inspect(&format!("{p}-app"), "{{.Config.Image}}"), format!("{REG}/{p}-app@{d1}"));
    assert_eq!(s.hawser(&["plan", "{src}", "--exit-code"]).code, 0, "nothing moved yet");

    // The same tags move in the registry.
    let d2 = push_variant(&format!("{p}-app"), "latest", "two");
    push_variant(&format!("{p}-lazy"), "latest", "lazy-two");
    assert_ne!(d1, d2);
    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout.contains(&format!("Container {p}-app: replace")) && r.stdout.contains(&d1) && r.stdout.contains(&d2),
        "old and new digest: {r:?}"
    );
    assert!(!r.stdout.contains(&format!("Container {p}-lazy: replace")), "pull: missing does not react: {r:?}");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(marker(&format!("{p}-app")), "two");
    assert_eq!(
        inspect(&format!("{p}-app"), "{{.Config.Image}}"),
        format!("{REG}/{p}-app@{d2}"),
        "runs the planned digest"
    );
    assert_eq!(marker(&format!("{p}-lazy")), "lazy-one");

    // A built image with `push: true` lands in the registry under its context tag (built anew:
    // no image of an earlier run may stand in for it).
    let stale = docker(&["images", "-q", &format!("{REG}/{p}-built")]);
    for id in stale.lines() {
        let _ = docker_raw(&["rmi", "-f", id]);
    }
    s.write("app/Dockerfile", &format!("FROM {IMAGE}\nCOPY m /m\n"));
    s.write("app/m", "pushed\n");
    s.write(
        "built.yaml",
        &format!("kind: Image\nmetadata: {{name: built}}\nspec: {{ref: \"{REG}/{p}-built\", build: {{context: app, push: true}}}}\n"),
    );
    s.commit("a pushed build");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("built and pushed"), "{r:?}");
    let tags = {
        let mut st = std::net::TcpStream::connect(REG).unwrap();
        use std::io::{Read, Write};
        st.write_all(format!("GET /v2/{p}-built/tags/list HTTP/1.0\r\nHost: {REG}\r\n\r\n").as_bytes()).unwrap();
        let mut out = String::new();
        st.read_to_string(&mut out).unwrap();
        out
    };
    assert!(tags.contains("\"ctx-"), "the context tag is in the registry: {tags}");
    s.remove("built.yaml");

    // The registry goes away, and the manifest asks for another tag: that image fails, the
    // container keeps running what it ran, the rest of the revision is applied.
    s.write("stack.yaml", &manifest(p).replace(&format!("{p}-app:latest"), &format!("{p}-app:v3")));
    s.commit("a tag the registry can't give now");
    reg.down();
    let app_id = container_id(&format!("{p}-app")).unwrap();
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Image app") && r.stderr.contains(REG), "names the image and the registry: {r:?}");
    assert_eq!(container_id(&format!("{p}-app")).as_deref(), Some(app_id.as_str()));
    assert_eq!(marker(&format!("{p}-app")), "two", "the old container keeps running");
    let _ = docker_raw(&["rmi", "-f", &format!("{REG}/{p}-app@{d1}"), &format!("{REG}/{p}-app@{d2}")]);
}

/// Regression: with the engine able to pull but hawser's registry lookup failing, a container
/// pinned by digest was replaced by the mutable tag, and back at the next good lookup.
#[test]
fn an_unresolved_digest_keeps_what_runs() {
    let p = "t-unresolved";
    let reg = "127.0.0.1:5000";
    let s = Stack::new(p);
    let d1 = push_variant_to(reg, &format!("{p}-app"), "latest", "one");
    let manifest = |version: &str| {
        format!(
            "kind: Image\nmetadata: {{name: app}}\nspec: {{ref: \"{reg}/{p}-app:latest\", pull: always}}\n---\nkind: Container\nmetadata: {{name: {p}-app}}\nspec: {{image: app, command: [sleep, \"3600\"], env: {{V: \"{version}\"}}, stopTimeout: 1s, init: true}}\n"
        )
    };
    s.write("stack.yaml", &manifest("1"));
    s.commit("v1");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    let pinned = format!("{reg}/{p}-app@{d1}");
    assert_eq!(inspect(&format!("{p}-app"), "{{.Config.Image}}"), pinned);
    let id = container_id(&format!("{p}-app")).unwrap();

    // The tag moves, and hawser can't ask the registry (its requests go to a dead proxy; the
    // engine's pulls don't).
    push_variant_to(reg, &format!("{p}-app"), "latest", "two");
    let offline = [
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    let r = s.hawser_env(&["plan", "{src}", "--exit-code"], &offline);
    assert_eq!(r.code, 0, "nothing to change while the digest is unknown: {r:?}");
    assert!(r.stdout.contains("Image app: keep what runs (unresolved:"), "{r:?}");
    let r = s.hawser_env(&["apply", "{src}"], &offline);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(container_id(&format!("{p}-app")).as_deref(), Some(id.as_str()), "not replaced");

    // A change of its own replaces it, still on the digest it ran.
    s.write("stack.yaml", &manifest("2"));
    s.commit("v2");
    let r = s.hawser_env(&["apply", "{src}"], &offline);
    assert_eq!(r.code, 0, "{r:?}");
    assert_ne!(container_id(&format!("{p}-app")).as_deref(), Some(id.as_str()));
    assert_eq!(inspect(&format!("{p}-app"), "{{.Config.Image}}"), pinned);
    assert_eq!(marker(&format!("{p}-app")), "one");

    // With the registry reachable again, the moved tag is one replacement.
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(marker(&format!("{p}-app")), "two");
    assert_eq!(s.hawser(&["plan", "{src}", "--exit-code"]).code, 0);
}
