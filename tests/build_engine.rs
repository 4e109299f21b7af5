//! Images built from the repository: built on first apply, not rebuilt while the context is
//! unchanged, rebuilt (and the container replaced) when a file in the context changes.

mod common;
use common::*;

fn setup(s: &Stack, p: &str, msg: &str) {
    s.write("app/Dockerfile", &format!("FROM {IMAGE}\nCOPY msg.txt /msg.txt\nCMD [\"sleep\", \"3600\"]\n"));
    s.write("app/msg.txt", msg);
    s.write(
        "deploy.yaml",
        &format!(
            "kind: Image\nmetadata: {{name: {p}-app}}\nspec:\n  build: {{context: app}}\n---\nkind: Container\nmetadata: {{name: {p}-c}}\nspec:\n  image: {p}-app\n  stopTimeout: 1s\n"
        ),
    );
}

/// Removes images an earlier run of the test left, so each run builds anew.
fn forget_images(p: &str) {
    let ids = docker(&["images", "-q", &format!("hawser-build/{p}-app")]);
    for id in ids.lines() {
        let _ = docker_raw(&["rmi", "-f", id]);
    }
}

fn image_tag(p: &str) -> String {
    inspect(&format!("{p}-c"), "{{.Config.Image}}")
}

#[test]
fn a_build_context_is_built_once_and_rebuilt_exactly_when_it_changes() {
    let p = "t-build";
    let s = Stack::new(p);
    forget_images(p);
    setup(&s, p, "v1\n");
    s.commit("v1");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("+ Image t-build-app: build hawser-build/t-build-app:ctx-"), "{r:?}");
    let out = exec(&format!("{p}-c"), &["cat", "/msg.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v1\n");
    let first_tag = image_tag(p);
    let id = container_id(&format!("{p}-c")).unwrap();

    // A commit that does not touch the context: no build, no replacement.
    s.write("README.md", "docs\n");
    s.commit("docs only");
    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    assert_eq!(container_id(&format!("{p}-c")).as_deref(), Some(id.as_str()));

    // A file in the context changes: rebuilt under a new tag, the container replaced.
    s.write("app/msg.txt", "v2\n");
    s.commit("new message");
    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("build hawser-build/t-build-app:ctx-") && r.stdout.contains("replace"), "{r:?}");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_ne!(image_tag(p), first_tag);
    let out = exec(&format!("{p}-c"), &["cat", "/msg.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v2\n");
    let _ = docker_raw(&["rmi", "-f", &first_tag, &image_tag(p)]);
}

#[test]
fn a_broken_build_fails_that_resource_and_keeps_the_running_container() {
    let p = "t-build-fail";
    let s = Stack::new(p);
    forget_images(p);
    setup(&s, p, "v1\n");
    s.commit("v1");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    let id = container_id(&format!("{p}-c")).unwrap();
    let tag = image_tag(p);
    s.write("app/Dockerfile", &format!("FROM {IMAGE}\nRUN exit 7\n"));
    s.commit("broken");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Image t-build-fail-app") && r.stderr.contains("non-zero code: 7"), "{r:?}");
    assert_eq!(container_id(&format!("{p}-c")).as_deref(), Some(id.as_str()), "the old container keeps running");
    assert_eq!(inspect(&format!("{p}-c"), "{{.State.Running}}"), "true");

    // A context without its Dockerfile is a positioned error before anything runs.
    s.remove("app/Dockerfile");
    s.commit("no dockerfile");
    let r = s.hawser(&["validate", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("deploy.yaml:1:1: Image `t-build-fail-app`: there is no `Dockerfile` in build context `app`"),
        "{r:?}"
    );
    let _ = docker_raw(&["rmi", "-f", &tag]);
}

#[test]
fn old_images_are_collected_beyond_three_per_resource_and_rollback_reuses_them() {
    let p = "t-gc";
    let s = Stack::new(p);
    forget_images(p);
    let mut revs = Vec::new();
    for v in 1..=5 {
        setup(&s, p, &format!("v{v}\n"));
        revs.push(s.commit(&format!("v{v}")));
        let r = s.hawser(&["apply", "{src}"]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let images = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", "hawser-build/t-gc-app"]);
    let tags: Vec<&str> = images.lines().collect();
    assert_eq!(tags.len(), 3, "the newest three are kept: {tags:?}");
    assert!(tags.contains(&image_tag(p).as_str()), "the image in use is never removed");
    let out = exec(&format!("{p}-c"), &["cat", "/msg.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v5\n");

    // Back to v4: its image is still there, so nothing is built.
    let r = s.hawser(&["rollback", "{src}", "--to", &revs[3]]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("build hawser-build"), "reuses the kept image: {r:?}");
    let out = exec(&format!("{p}-c"), &["cat", "/msg.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v4\n");
    for t in tags {
        let _ = docker_raw(&["rmi", "-f", t]);
    }
}

/// Compose's `build` (most public compose projects have one) runs on the same path: the
/// service's image is built from the commit, and rebuilt only when its context changes.
#[test]
fn a_compose_service_with_build_is_built_from_the_repository() {
    let p = "t-compose-build";
    let s = Stack::new(p);
    for id in docker(&["images", "-q", &format!("{p}-app")]).lines() {
        let _ = docker_raw(&["rmi", "-f", id]);
    }
    s.write(
        "app/Dockerfile",
        &format!("FROM {IMAGE}\nARG GREETING\nRUN echo $GREETING > /msg.txt\nCMD [\"sleep\", \"3600\"]\n"),
    );
    let compose = |greeting: &str| {
        format!(
            "services:\n  app:\n    build: {{context: ./app, args: {{GREETING: {greeting}}}}}\n    container_name: {p}-app\n    init: true\n  helper:\n    image: {p}-app\n    container_name: {p}-helper\n    init: true\n"
        )
    };
    s.write("compose.yaml", &compose("hello"));
    s.commit("v1");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&format!("+ Image {p}-app: build {p}-app:ctx-")), "{r:?}");
    let msg = |c: &str| String::from_utf8_lossy(&exec(c, &["cat", "/msg.txt"]).stdout).trim().to_string();
    assert_eq!(msg(&format!("{p}-app")), "hello");
    assert_eq!(msg(&format!("{p}-helper")), "hello", "another service runs the same build by its name");

    // A commit outside the context changes nothing; a changed build arg rebuilds and replaces.
    s.write("README.md", "docs\n");
    s.commit("docs");
    assert_eq!(s.hawser(&["plan", "{src}", "--exit-code"]).code, 0);
    s.write("compose.yaml", &compose("bonjour"));
    s.commit("v2");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(msg(&format!("{p}-app")), "bonjour");
    assert_eq!(msg(&format!("{p}-helper")), "bonjour");
}

/// The engine builder's options of compose's `build`: an inline Dockerfile, labels on the
/// image, and hosts of the build's /etc/hosts; a changed label is a new image.
#[test]
fn a_compose_build_takes_an_inline_dockerfile_labels_and_extra_hosts() {
    let p = "t-build-opts";
    let s = Stack::new(p);
    for id in docker(&["images", "-q", &format!("{p}-app")]).lines() {
        let _ = docker_raw(&["rmi", "-f", id]);
    }
    let compose = |team: &str| {
        format!(
            "services:\n  app:\n    build:\n      context: .\n      dockerfile_inline: |\n        FROM {IMAGE}\n        RUN grep mirror.internal /etc/hosts > /hosts.txt\n        CMD [\"sleep\", \"3600\"]\n      labels: {{org.example.team: {team}}}\n      extra_hosts: [\"mirror.internal:198.18.7.7\"]\n    container_name: {p}-app\n    init: true\n"
        )
    };
    s.write("compose.yaml", &compose("web"));
    s.commit("v1");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let app = format!("{p}-app");
    let hosts = String::from_utf8_lossy(&exec(&app, &["cat", "/hosts.txt"]).stdout).to_string();
    assert!(hosts.contains("198.18.7.7") && hosts.contains("mirror.internal"), "{hosts}");
    let image = inspect(&app, "{{.Config.Image}}");
    let label = docker(&["image", "inspect", &image, "--format", "{{index .Config.Labels \"org.example.team\"}}"]);
    assert_eq!(label, "web");
    // A changed label makes another image, and the container runs it.
    s.write("compose.yaml", &compose("api"));
    s.commit("v2");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let next = inspect(&app, "{{.Config.Image}}");
    assert_ne!(next, image, "{r:?}");
    let label = docker(&["image", "inspect", &next, "--format", "{{index .Config.Labels \"org.example.team\"}}"]);
    assert_eq!(label, "api");
}
