//! The manifest language as a whole: one meaning in YAML and TOML, short and long forms alike.

use super::*;

fn load_one(path: &str, text: &str) -> DesiredState {
    let files = [ManifestFile { path: path.into(), text: text.into() }];
    load("p", "r", &files).unwrap_or_else(|d| panic!("{d}"))
}

#[test]
fn a_container_means_the_same_in_yaml_and_toml() {
    let yaml = load_one(
        "c.yaml",
        r#"
apiVersion: hawser.dev/v1
kind: Container
metadata: {name: web, labels: {tier: front}}
spec:
  image: reg/web:1
  command: "echo hi"
  entrypoint: [/bin/sh, -c]
  env: {PORT: 8080, DEBUG: "false"}
  ports: ["8080:80", {target: 53, published: 5353, protocol: udp, hostIp: 127.0.0.1}]
  volumes: ["/srv/conf:/conf:ro", {type: tmpfs, target: /tmp, size: 64Mi}]
  restart: on-failure:3
  healthcheck: {test: "wget -qO- localhost", interval: 5s, timeout: 1s, retries: 3, startPeriod: 10s}
  resources: {memory: 256Mi, cpus: 0.5, pids: 100}
  user: "1000"
  workingDir: /app
  hostname: web
  stopSignal: SIGINT
  stopTimeout: 1m30s
  readOnly: true
  init: true
  tty: false
  stdinOpen: false
  capAdd: [NET_BIND_SERVICE]
  capDrop: [ALL]
  privileged: false
  extraHosts: ["db:10.0.0.5"]
  logging: {driver: json-file, options: {max-size: 10m, max-file: 3}}
  shmSize: 256Mi
  ulimits: {nofile: {soft: 1024, hard: 65536}, nproc: 512}
  dns: [10.0.0.2, "fd00::53"]
  labels: {team: shop}
  update: {strategy: stop-first, healthTimeout: 30s, minUptime: 250ms}
"#,
    );
    let toml = load_one(
        "c.toml",
        r#"
apiVersion = "hawser.dev/v1"
kind = "Container"
[metadata]
name = "web"
labels = { tier = "front" }
[spec]
image = "reg/web:1"
command = "echo hi"
entrypoint = ["/bin/sh", "-c"]
env = { PORT = 8080, DEBUG = "false" }
ports = ["8080:80", { target = 53, published = 5353, protocol = "udp", hostIp = "127.0.0.1" }]
volumes = ["/srv/conf:/conf:ro", { type = "tmpfs", target = "/tmp", size = "64Mi" }]
restart = "on-failure:3"
healthcheck = { test = "wget -qO- localhost", interval = "5s", timeout = "1s", retries = 3, startPeriod = "10s" }
resources = { memory = "256Mi", cpus = 0.5, pids = 100 }
user = "1000"
workingDir = "/app"
hostname = "web"
stopSignal = "SIGINT"
stopTimeout = "90s"
readOnly = true
init = true
tty = false
stdinOpen = false
capAdd = ["NET_BIND_SERVICE"]
capDrop = ["ALL"]
privileged = false
extraHosts = ["db:10.0.0.5"]
logging = { driver = "json-file", options = { max-size = "10m", max-file = 3 } }
shmSize = "256Mi"
ulimits = { nofile = { soft = 1024, hard = 65536 }, nproc = 512 }
dns = ["10.0.0.2", "fd00::53"]
labels = { team = "shop" }
update = { strategy = "stop-first", healthTimeout = "30s", minUptime = "250ms" }
"#,
    );
    let (y, t) = (&yaml.containers["web"], &toml.containers["web"]);
    assert_eq!(y.spec, t.spec);
    assert_eq!(hash::container(&y.spec), hash::container(&t.spec));
    // And the normalization is what it should be.
    let s = &y.spec;
    assert_eq!(s.command.as_deref(), Some(&["/bin/sh".to_string(), "-c".into(), "echo hi".into()][..]));
    assert_eq!(s.env["PORT"], "8080");
    assert_eq!(s.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["8080:80/tcp", "127.0.0.1:5353:53/udp"]);
    assert_eq!(s.stop_timeout.unwrap().to_string(), "1m30s");
    assert_eq!(s.min_uptime().to_string(), "250ms");
    assert_eq!(s.health_timeout().to_string(), "30s");
    let logging = s.logging.as_ref().unwrap();
    assert_eq!(logging.driver.as_deref(), Some("json-file"));
    assert_eq!(logging.options["max-size"], "10m");
    assert_eq!(logging.options["max-file"], "3");
    assert_eq!(s.shm_size.unwrap().0, 256 << 20);
    assert_eq!(s.ulimits["nofile"], Ulimit { soft: 1024, hard: 65536 });
    assert_eq!(s.ulimits["nproc"], Ulimit { soft: 512, hard: 512 });
    assert_eq!(s.dns.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(), ["10.0.0.2", "fd00::53"]);
    assert_eq!(s.labels.get("tier").map(String::as_str), Some("front"));
    assert_eq!(s.labels.get("team").map(String::as_str), Some("shop"));
    assert_eq!(
        s.healthcheck,
        Some(Healthcheck {
            test: vec!["CMD-SHELL".into(), "wget -qO- localhost".into()],
            interval: Some("5s".parse().unwrap()),
            timeout: Some("1s".parse().unwrap()),
            retries: Some(3),
            start_period: Some("10s".parse().unwrap()),
        })
    );
}

#[test]
fn networks_volumes_and_images_mean_the_same_in_yaml_and_toml() {
    let yaml = load_one(
        "r.yaml",
        r#"
kind: Network
metadata: {name: net}
spec: {driver: bridge, internal: true, attachable: true, enableIpv6: false, ipam: {subnet: 10.9.0.0/24, gateway: 10.9.0.1}, driverOpts: {mtu: "1400"}}
---
kind: Volume
metadata: {name: data, labels: {backup: daily}}
spec: {driver: local, driverOpts: {type: tmpfs}, retain: false}
---
kind: Image
metadata: {name: app}
spec: {ref: "reg/app:2", pull: always}
"#,
    );
    let toml = load_one(
        "r.toml",
        r#"
[[resource]]
kind = "Network"
metadata = { name = "net" }
spec = { driver = "bridge", internal = true, attachable = true, enableIpv6 = false, ipam = { subnet = "10.9.0.0/24", gateway = "10.9.0.1" }, driverOpts = { mtu = "1400" } }

[[resource]]
kind = "Volume"
metadata = { name = "data", labels = { backup = "daily" } }
spec = { driver = "local", driverOpts = { type = "tmpfs" }, retain = false }

[[resource]]
kind = "Image"
metadata = { name = "app" }
spec = { ref = "reg/app:2", pull = "always" }
"#,
    );
    assert_eq!(yaml.networks["net"].spec, toml.networks["net"].spec);
    assert_eq!(yaml.volumes["data"].spec, toml.volumes["data"].spec);
    assert_eq!(yaml.images["app"].spec, toml.images["app"].spec);
    assert!(!yaml.volumes["data"].spec.retain);
    assert_eq!(yaml.images["app"].spec.pull, PullPolicy::Always);
}

#[test]
fn short_and_long_forms_normalize_to_one_model() {
    let short = load_one(
        "s.yaml",
        "kind: Volume\nmetadata: {name: v}\n---\nkind: Network\nmetadata: {name: n}\n---\nkind: Container\nmetadata: {name: c}\nspec: {image: busybox, networks: [n], volumes: [\"v:/data\"], dependsOn: [d]}\n---\nkind: Container\nmetadata: {name: d}\nspec: {image: busybox}\n",
    );
    let long = load_one(
        "l.yaml",
        "kind: Volume\nmetadata: {name: v}\n---\nkind: Network\nmetadata: {name: n}\n---\nkind: Container\nmetadata: {name: c}\nspec: {image: busybox, networks: {n: {}}, volumes: [{type: volume, source: v, target: /data}], dependsOn: {d: started}}\n---\nkind: Container\nmetadata: {name: d}\nspec: {image: busybox}\n",
    );
    assert_eq!(short.containers["c"].spec, long.containers["c"].spec);
}

#[test]
fn an_image_resource_name_resolves_to_its_reference() {
    let d = load_one(
        "i.yaml",
        "kind: Image\nmetadata: {name: app}\nspec: {ref: \"reg/app:2\"}\n---\nkind: Container\nmetadata: {name: c}\nspec: {image: app}\n",
    );
    assert_eq!(d.containers["c"].spec.image, "reg/app:2");
}

#[test]
fn undeclared_fields_stay_out_of_the_canonical_form() {
    let d = load_one("c.yaml", "kind: Container\nmetadata: {name: c}\nspec: {image: busybox}\n");
    assert_eq!(hash::container_view(&d.containers["c"].spec), serde_json::json!({"image": "busybox"}));
}

#[test]
fn logging_options_of_the_rotating_drivers_are_checked() {
    let files = [ManifestFile {
        path: "c.yaml".into(),
        text: "kind: Container\nmetadata: {name: web}\nspec:\n  image: reg/web:1\n  logging:\n    driver: json-file\n    options:\n      max-sise: 10m\n      max-file: none\n      compress: yes-please\n"
            .into(),
    }];
    let e = load("p", "r", &files).unwrap_err().to_string();
    assert!(
        e.contains(
            "c.yaml:8:7: logging option `max-sise` is not one of the json-file driver's (did you mean `max-size`?)"
        ),
        "{e}"
    );
    assert!(e.contains("c.yaml:9:17: logging.options.max-file: `none` is not a positive whole number"), "{e}");
    assert!(e.contains("c.yaml:10:17: logging.options.compress: `yes-please` is not true or false"), "{e}");

    // Sizes as the engine writes them pass; other drivers' options are theirs to judge.
    for size in ["10m", "1g", "512k", "1.5m", "100MB", "2GiB", "4096"] {
        let text = format!("kind: Container\nmetadata: {{name: web}}\nspec: {{image: x, logging: {{driver: local, options: {{max-size: \"{size}\"}}}}}}\n");
        assert!(load("p", "r", &[ManifestFile { path: "c.yaml".into(), text }]).is_ok(), "{size}");
    }
    for size in ["ten", "10x", "-1m", ""] {
        let text = format!("kind: Container\nmetadata: {{name: web}}\nspec: {{image: x, logging: {{driver: local, options: {{max-size: \"{size}\"}}}}}}\n");
        assert!(load("p", "r", &[ManifestFile { path: "c.yaml".into(), text }]).is_err(), "{size}");
    }
    let syslog = "kind: Container\nmetadata: {name: web}\nspec: {image: x, logging: {driver: syslog, options: {syslog-facility: daemon}}}\n";
    assert!(load("p", "r", &[ManifestFile { path: "c.yaml".into(), text: syslog.into() }]).is_ok());
}

#[test]
fn ulimits_and_dns_are_checked() {
    let text = "kind: Container\nmetadata: {name: web}\nspec:\n  image: x\n  ulimits:\n    nofiles: 1024\n    nproc: {soft: 10, hard: 5}\n    core: {soft: 1}\n  dns: [10.0.0.1, resolver.local]\n";
    let e = load("p", "r", &[ManifestFile { path: "c.yaml".into(), text: text.into() }]).unwrap_err().to_string();
    assert!(e.contains("c.yaml:6:5: unknown ulimit `nofiles` (did you mean `nofile`?)"), "{e}");
    assert!(e.contains("c.yaml:7:12: ulimits.nproc: the soft limit 10 is above the hard limit 5"), "{e}");
    assert!(e.contains("c.yaml:8:11: ulimits.core is missing the required field `hard`"), "{e}");
    assert!(e.contains("c.yaml:9:19: dns: `resolver.local` is not an IP address"), "{e}");
}

/// Seconds of the fastest of `runs` runs of `f` (the fastest is the one least disturbed by
/// whatever else the machine is doing).
fn fastest(runs: usize, f: impl Fn()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// How much longer 8x the input takes: about 8 for a linear parser, 64 for a quadratic one.
fn growth(make: impl Fn(usize) -> Vec<ManifestFile>, n: usize) -> f64 {
    let (small, large) = (make(n), make(8 * n));
    let t_small = fastest(5, || drop(load("p", "r", &small)));
    let t_large = fastest(3, || drop(load("p", "r", &large)));
    t_large / t_small.max(1e-4)
}

/// Regressions: a TOML array of 1e6 values took 466 s (every position was found by counting
/// lines from the start), and YAML map keys were checked for duplicates pairwise.
#[test]
fn parsing_time_grows_linearly_with_the_input() {
    let toml = |n: usize| {
        let items: Vec<String> = (0..n).map(|i| format!("\"a{i}\"")).collect();
        let text = format!(
            "kind = \"Container\"\n[metadata]\nname = \"web\"\n[spec]\nimage = \"busybox\"\ncommand = [{}]\n",
            items.join(",")
        );
        vec![ManifestFile { path: "big.toml".into(), text }]
    };
    let yaml = |n: usize| {
        let keys: String = (0..n).map(|i| format!("    k{i}: v\n")).collect();
        vec![ManifestFile {
            path: "big.yaml".into(),
            text: format!("kind: Volume\nmetadata:\n  name: v\n  labels:\n{keys}"),
        }]
    };
    // Every value an error: reported up to a cap, each found without rescanning the file.
    let errors = |n: usize| {
        let items: Vec<String> = (0..n).map(|i| format!("{{x{i}: 1}}")).collect();
        let text = format!(
            "kind: Container\nmetadata: {{name: w}}\nspec:\n  image: busybox\n  ports: [{}]\n",
            items.join(", ")
        );
        vec![ManifestFile { path: "bad.yaml".into(), text }]
    };
    for (what, make, n) in [
        ("toml array", &toml as &dyn Fn(usize) -> Vec<ManifestFile>, 20_000),
        ("yaml keys", &yaml, 10_000),
        ("errors", &errors, 10_000),
    ] {
        let g = growth(make, n);
        // Linear is about 8, quadratic about 64: 32 leaves room for a busy machine.
        assert!(g < 32.0, "{what}: 8x the input took {g:.1}x the time");
    }
    let diags = load("p", "r", &errors(5_000)).unwrap_err();
    assert_eq!(diags.0.len(), crate::desired::diag::MAX_DIAGNOSTICS + 1);
    assert!(diags.to_string().contains("too many problems"));
}

/// Regression: a name with raw escape bytes was echoed to the terminal as it was.
#[test]
fn control_characters_in_input_are_escaped_in_diagnostics() {
    let text = "kind: Container\nmetadata: {name: \"a\\e[2Jb\"}\nspec: {image: busybox}\n";
    let shown = load("p", "r", &[ManifestFile { path: "c.yaml".into(), text: text.into() }]).unwrap_err().to_string();
    assert!(!shown.contains('\x1b'), "{shown:?}");
    assert!(shown.contains("a\\u{1b}[2Jb"), "{shown}");
}

/// A megabyte line is shown as a window around the position, caret included.
#[test]
fn long_source_lines_are_shown_as_a_window() {
    let pad = "x".repeat(100_000);
    let text = format!(
        "kind: Container\nmetadata: {{name: w, labels: {{a: \"{pad}\"}}}}\nspec: {{image: busybox, colour: red}}\n"
    );
    let text = text.replace(
        "spec: {image: busybox, colour: red}",
        &format!("spec: {{image: busybox, command: [\"{pad}\"], colour: red}}"),
    );
    let shown = load("p", "r", &[ManifestFile { path: "c.yaml".into(), text }]).unwrap_err().to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines[0].contains("unknown field `colour`"), "{}", lines[0]);
    assert!(lines[1].len() < 400 && lines[1].contains("colour: red}"), "{}", lines[1]);
    let caret = lines[2].find('^').unwrap();
    let at: String = lines[1].chars().skip(caret).take(6).collect();
    assert_eq!(at, "colour", "{shown}");
}

/// Compose projects carry other YAML (a prometheus.yml, a CI workflow, Kubernetes files): data,
/// not errors. A document meant as a manifest is still checked, broken or not.
#[test]
fn other_yaml_of_the_repository_is_data_and_manifests_are_still_checked() {
    let file = |path: &str, text: &str| ManifestFile { path: path.into(), text: text.into() };
    let files = [
        file("prometheus/prometheus.yml", "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: app\n"),
        file(".github/workflows/ci.yml", "on: push\njobs: {test: {runs-on: ubuntu-latest}}\n"),
        file("k8s/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 1}\n"),
        file("broken-data.yaml", "a: [unclosed\n"),
        file("pyproject.toml", "[tool.black]\nline-length = 100\n"),
        file("web.yaml", "kind: Container\nmetadata: {name: web}\nspec: {image: busybox}\n"),
    ];
    let d = load("p", "r", &files).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.containers.len(), 1);
    assert_eq!(
        d.skipped,
        [
            "prometheus/prometheus.yml",
            ".github/workflows/ci.yml",
            "k8s/deploy.yaml",
            "broken-data.yaml",
            "pyproject.toml"
        ]
        .map(String::from)
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );

    for (text, expected) in [
        ("kind: Containr\nmetadata: {name: a}\nspec: {image: busybox}\n", "x.yaml:1:7: unknown kind `Containr`"),
        ("kind: Container\nmetadata: {name: a}\nspec: {image: [busybox\n", "x.yaml:4:1: invalid YAML"),
        (
            "metadata: {name: a}\nspec: {image: busybox}\n",
            "x.yaml:1:1: a resource is missing the required field `kind`",
        ),
        ("apiVersion: hawser.dev/v1\nkind: Pod\nmetadata: {name: a}\n", "x.yaml:2:7: unknown kind `Pod`"),
    ] {
        let e = load("p", "r", &[file("x.yaml", text)]).unwrap_err().to_string();
        assert!(e.starts_with(expected), "{text:?}: {e}");
    }
}

/// Attack: 4 MiB of unknown fields cost 21 s of CPU: a "did you mean" was computed for every
/// one, past the 200-error cap. Now the work stops where the report does.
#[test]
fn unknown_fields_past_the_error_cap_cost_no_suggestions() {
    let mut text = String::from("kind: Container\nmetadata: {name: web}\nspec:\n  image: reg/web:1\n");
    let mut i = 0;
    while text.len() < 4 << 20 {
        text.push_str(&format!("  enviroment{i}: x\n"));
        i += 1;
    }
    let long_key = "e".repeat(1000);
    text.push_str(&format!("  {long_key}: x\n"));
    let files = [ManifestFile { path: "c.yaml".into(), text }];
    let started = std::time::Instant::now();
    let diags = load("p", "r", &files).unwrap_err();
    let took = started.elapsed();
    assert_eq!(diags.0.len(), super::diag::MAX_DIAGNOSTICS + 1, "the cap and its note: {}", diags.0[0].message);
    assert!(diags.0[0].message.contains("did you mean `env`"), "{}", diags.0[0].message);
    assert!(diags.0.last().unwrap().message.contains("too many problems"));
    // Generous for a debug build on a loaded machine; the suggestions alone took minutes there.
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
}

#[test]
fn a_drain_timeout_is_bounded_and_positioned() {
    let yaml = "kind: Container\nmetadata: {name: web}\nspec:\n  image: reg/app:1\n  update: {drainTimeout: 48h}\n";
    let files = [ManifestFile { path: "web.yaml".into(), text: yaml.into() }];
    let e = load("p", "r", &files).unwrap_err().to_string();
    assert!(e.contains("web.yaml:5:") && e.contains("update.drainTimeout: 48h is more than the 1h"), "{e}");
    let ok = yaml.replace("48h", "30s");
    let files = [ManifestFile { path: "web.yaml".into(), text: ok }];
    let d = load("p", "r", &files).unwrap();
    assert_eq!(d.containers["web"].spec.drain_timeout().to_string(), "30s");
}

#[test]
fn replicas_on_one_host_are_containers_named_as_compose_names_them() {
    let text = "kind: Network\nmetadata: {name: net}\n---\nkind: Container\nmetadata: {name: web}\nspec: {image: reg/web, replicas: 3, networks: [net], ports: ['8080:80']}\n---\nkind: Container\nmetadata: {name: lb}\nspec: {image: reg/lb, dependsOn: {web: healthy}}\n---\nkind: Container\nmetadata: {name: off}\nspec: {image: reg/off, replicas: 0}\n";
    let d = load_one("a.yaml", text);
    let names: Vec<&str> = d.containers.keys().map(String::as_str).collect();
    assert_eq!(names, ["lb", "web-1", "web-2", "web-3"]);
    assert_eq!(d.replicated.get("web"), Some(&3));
    assert_eq!(d.replicated.get("off"), Some(&0));
    let w3 = &d.containers["web-3"].spec;
    assert_eq!((w3.replicas, w3.replica.as_ref().map(|r| r.index)), (None, Some(3)));
    assert_eq!(w3.networks["net"].aliases, ["web"], "reachable by the Container's name");
    assert_eq!(hash::container(w3), hash::container(&d.containers["web-1"].spec), "one spec");
    let deps: Vec<(&str, DependCondition)> =
        d.containers["lb"].spec.depends_on.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        deps,
        [("web-1", DependCondition::Healthy), ("web-2", DependCondition::Healthy), ("web-3", DependCondition::Healthy)]
    );
    // One replica is the container it always was: its name, its hash.
    let one = load_one("a.yaml", "kind: Container\nmetadata: {name: web}\nspec: {image: reg/web, replicas: 1}\n");
    let alone = load_one("a.yaml", "kind: Container\nmetadata: {name: web}\nspec: {image: reg/web}\n");
    assert_eq!(one.containers.keys().collect::<Vec<_>>(), ["web"]);
    assert_eq!(hash::container(&one.containers["web"].spec), hash::container(&alone.containers["web"].spec));
    assert_eq!(one.replicated.get("web"), Some(&1));
    // A replica's name taken by a declared Container is an error at the Container.
    let clash = format!("{text}---\nkind: Container\nmetadata: {{name: web-2}}\nspec: {{image: reg/x}}\n");
    let e = load("p", "r", &[ManifestFile { path: "a.yaml".into(), text: clash }]).unwrap_err().to_string();
    assert!(
        e.contains("a.yaml:4:1: Container web: its replica would be named `web-2`, which another Container is"),
        "{e}"
    );
}

#[test]
fn host_ports_are_replaced_start_first_only_where_hawser_publishes_them() {
    use crate::desired::Strategy::{StartFirst, StopFirst};
    let spec = |ports: &[&str]| ContainerSpec {
        image: "x".into(),
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        ..Default::default()
    };
    assert_eq!(spec(&["127.0.0.1:8080:80"]).strategy(true), StartFirst);
    assert_eq!(spec(&["127.0.0.1:8080:80"]).strategy(false), StopFirst);
    assert_eq!(spec(&["8080"]).strategy(false), StartFirst, "an engine-chosen port is another each time");
    assert_eq!(spec(&["127.0.0.1:8080:80", "[::1]:8080:80"]).strategy(true), StopFirst, "IPv6 stays the engine's");
}

#[test]
fn an_image_build_takes_the_engine_builders_options() {
    let text = "kind: Image\nmetadata: {name: app}\nspec:\n  build: {context: app, dockerfileInline: \"FROM x\\n\", labels: {team: web}, extraHosts: [\"m:10.0.0.1\"], shmSize: 64Mi, network: none, noCache: true}\n";
    let d = load_one("a.yaml", text);
    let b = d.images["app"].spec.build.clone().unwrap();
    assert_eq!((b.labels["team"].as_str(), b.network.as_deref(), b.no_cache), ("web", Some("none"), true));
    assert_eq!(b.shm_size.map(|s| s.0), Some(64 << 20));
    let bad = "kind: Image\nmetadata: {name: app}\nspec:\n  build: {context: app, dockerfile: D, dockerfileInline: \"FROM x\", network: bridge2}\n";
    let e = load("p", "r", &[ManifestFile { path: "a.yaml".into(), text: bad.into() }]).unwrap_err().to_string();
    assert!(e.contains("build.network `bridge2`: expected default, host or none"), "{e}");
    assert!(e.contains("give `dockerfile` or the inline Dockerfile, not both"), "{e}");
}
