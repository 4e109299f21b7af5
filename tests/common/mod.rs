//! Helpers for tests against the real engine started by `scripts/engine-up`: a scratch git
//! repository per test, the hawser binary, and the docker CLI as an independent observer.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

pub const IMAGE: &str = "127.0.0.1:5000/busybox:latest";
/// The local registry of the tests (scripts/engine-up).
pub const REG: &str = "127.0.0.1:5000";

pub fn docker_host() -> String {
    std::env::var("HAWSER_TEST_DOCKER_HOST").unwrap_or_else(|_| "unix:///run/hawser-engine/docker.sock".into())
}

/// Runs the docker CLI against the test engine; panics with its stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = docker_raw(args);
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn docker_raw(args: &[&str]) -> Output {
    Command::new("docker").arg("-H").arg(docker_host()).args(args).output().expect("the docker CLI runs")
}

/// The result of one hawser run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// A scratch git repository holding one project's manifests, cleaned off the engine on drop.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub project: String,
}

impl Stack {
    /// `project` must be unique per test: tests run in parallel on one engine.
    pub fn new(project: &str) -> Stack {
        let s = Stack {
            dir: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
            project: project.to_string(),
        };
        s.cleanup();
        s.git(&["init", "-q", "-b", "main"]);
        s.write("hawser.toml", &format!("project = \"{project}\"\n"));
        s
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.dir.path().join(rel)).unwrap();
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Runs hawser with the arguments, `{src}` standing for the repository's path.
    pub fn hawser(&self, args: &[&str]) -> Run {
        self.hawser_env(args, &[])
    }

    /// As `hawser`, with extra environment variables.
    pub fn hawser_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let src = self.dir.path().to_string_lossy().to_string();
        let args: Vec<String> = args.iter().map(|a| a.replace("{src}", &src)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hawser_in(self.dir.path(), self.state.path(), &args, env)
    }

    /// Removes everything of this project from the engine (containers, networks, volumes).
    pub fn cleanup(&self) {
        let filter = format!("label=dev.hawser.project={}", self.project);
        let ids = docker(&["ps", "-aq", "--filter", &filter]);
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.lines());
            let _ = docker_raw(&args);
        }
        for (kind, fmt) in [("network", "{{.Name}}"), ("volume", "{{.Name}}")] {
            let names = docker(&[kind, "ls", "-q", "--filter", &filter, "--format", fmt]);
            for n in names.lines().filter(|n| !n.is_empty()) {
                let _ = docker_raw(&[kind, "rm", n]);
            }
        }
        remove_port_rules(&self.project);
    }
}

/// Removes the kernel rules hawser made to publish `project`'s host ports: its chains and the
/// jumps to them, nothing else.
pub fn remove_port_rules(project: &str) {
    // Under hawser's own lock on its rules: another test's hawser may be writing its project's.
    let Ok(lock) = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open("/run/hawser-ports.lock")
    else {
        return;
    };
    #[allow(deprecated)]
    let _ = nix::fcntl::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), nix::fcntl::FlockArg::LockExclusive);
    let comment = format!("hawser {project}");
    for table in ["nat", "filter"] {
        let Ok(out) = Command::new("iptables-save").args(["-t", table]).output() else { return };
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let tag = format!("--comment \"{comment}\" -j ");
        for line in text.lines().filter(|l| l.starts_with("-A ") && l.contains(&tag)) {
            let base = line.split_whitespace().nth(1).unwrap_or_default();
            let chain = line.rsplit(' ').next().unwrap_or_default();
            let run = |args: &[&str]| {
                let _ = Command::new("iptables").args(["-w", "-t", table]).args(args).output();
            };
            run(&["-D", base, "-m", "comment", "--comment", &comment, "-j", chain]);
            run(&["-F", chain]);
            run(&["-X", chain]);
        }
    }
    // hawser's base chains go when no project uses them any more, as hawser itself does.
    let rules = |table: &str, chain: &str| {
        Command::new("iptables")
            .args(["-w", "-t", table, "-S", chain])
            .output()
            .map_or(String::new(), |o| String::from_utf8_lossy(&o.stdout).to_string())
    };
    let used = |table: &str, chain: &str| rules(table, chain).lines().any(|l| l.starts_with("-A "));
    if used("nat", "HAWSER") || used("nat", "HAWSER-POST") || used("filter", "HAWSER-FWD") {
        return;
    }
    let local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "HAWSER"];
    for (table, from, rule) in [
        ("nat", "PREROUTING", &local[..]),
        ("nat", "OUTPUT", &local[..]),
        ("nat", "POSTROUTING", &["-j", "HAWSER-POST"][..]),
        ("filter", "DOCKER-USER", &["-j", "HAWSER-FWD"][..]),
        ("filter", "FORWARD", &["-j", "HAWSER-FWD"][..]),
    ] {
        let _ = Command::new("iptables").args(["-w", "-t", table, "-D", from]).args(rule).output();
    }
    for (table, chain) in [("nat", "HAWSER"), ("nat", "HAWSER-POST"), ("filter", "HAWSER-FWD")] {
        let _ = Command::new("iptables").args(["-w", "-t", table, "-X", chain]).output();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.cleanup();
    }
}

pub fn hawser_in(dir: &Path, state: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(args)
        .envs(env.iter().copied())
        .env("DOCKER_HOST", docker_host())
        .env("HAWSER_STATE_DIR", state)
        .env_remove("HAWSER_LOG")
        .current_dir(dir)
        .output()
        .expect("hawser runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// The id of the container with exactly this name, if any.
pub fn container_id(name: &str) -> Option<String> {
    let out = docker_raw(&["inspect", "--type", "container", "--format", "{{.Id}}", name]);
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, name])
}

/// Names of all containers (running or not) whose name starts with `prefix`.
pub fn containers_named(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = docker(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

pub fn exec(name: &str, cmd: &[&str]) -> Output {
    let mut args = vec!["exec", name];
    args.extend(cmd);
    docker_raw(&args)
}

pub fn repo_path(s: &Stack) -> PathBuf {
    s.path().to_path_buf()
}

/// A container `{p}-svc` that sleeps, with `VERSION` in its environment to tell revisions apart.
pub fn svc(p: &str, version: &str) -> String {
    format!(
        "kind: Container\nmetadata: {{name: {p}-svc}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sleep, \"3600\"]\n  env: {{VERSION: \"{version}\"}}\n  stopTimeout: 1s\n"
    )
}

/// The container `name` runs with `VERSION=version`.
pub fn runs_version(name: &str, version: &str) -> bool {
    let out = docker_raw(&["inspect", "--format", "{{.State.Running}} {{json .Config.Env}}", name]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.starts_with("true") && text.contains(&format!("VERSION={version}\""))
}

impl Stack {
    /// Commits `svc(project, version)` as svc.yaml and pushes it to `origin`; the commit id.
    pub fn push_svc(&self, version: &str) -> String {
        self.write("svc.yaml", &svc(&self.project, version));
        let rev = self.commit(&format!("v{version}"));
        self.git(&["push", "-q", "origin", "main"]);
        rev
    }
}

/// A bare repository `origin.git` in a fresh folder, added to the stack as its `origin`.
pub fn bare_remote(s: &Stack) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("origin.git");
    let out = Command::new("git").args(["init", "-q", "--bare", "-b", "main"]).arg(&bare).output().unwrap();
    assert!(out.status.success());
    s.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
    dir
}

/// A child process killed when dropped, also when a test fails.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every file under `dir`, for tests that search all of hawser's state for a secret.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Pushes an image whose /marker holds `marker` to `REG/name:tag` (built with the Docker engine,
/// whichever target runs it); returns its digest.
pub fn push_variant_to(reg: &str, name: &str, tag: &str, marker: &str) -> String {
    let builder = format!("{name}-builder");
    let _ = docker_raw(&["rm", "-f", &builder]);
    docker(&["run", "--name", &builder, IMAGE, "sh", "-c", &format!("echo {marker} > /marker")]);
    let target = format!("{reg}/{name}:{tag}");
    docker(&["commit", &builder, &target]);
    docker(&["rm", "-f", &builder]);
    docker(&["push", "-q", &target]);
    let digests = docker(&["inspect", "--format", "{{join .RepoDigests \" \"}}", &target]);
    docker(&["rmi", "-f", &target]);
    digests
        .split(' ')
        .find(|d| d.starts_with(&format!("{reg}/{name}@")))
        .unwrap()
        .split('@')
        .nth(1)
        .unwrap()
        .to_string()
}

/// Pushes an image made of `layers` (gzipped tars, bottom first) and a minimal config straight
/// to `REG/name:tag`, as a hostile publisher could: no builder checks what the layers hold.
pub fn push_layers(reg: &str, name: &str, tag: &str, layers: &[Vec<u8>]) {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    use sha2::Digest;
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| {
            let mut tar = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&l[..]), &mut tar).unwrap();
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&tar)))
        })
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        hawser::tls::init();
        let client = oci_client::Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() });
        let reference: oci_client::Reference = format!("{reg}/{name}:{tag}").parse().unwrap();
        let layers: Vec<ImageLayer> = layers
            .iter()
            .map(|l| ImageLayer::new(l.clone(), "application/vnd.oci.image.layer.v1.tar+gzip".into(), None))
            .collect();
        let config = Config::oci_v1(serde_json::to_vec(&config).unwrap(), None);
        client.push(&reference, &layers, config, &oci_client::secrets::RegistryAuth::Anonymous, None).await.unwrap();
    })
}

/// A gzipped tar of `entries`, in order.
pub fn gzip_tar(entries: &[TarEntry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match e {
            TarEntry::File(path, data) => {
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, &data[..]).unwrap();
            }
            TarEntry::Link(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

pub enum TarEntry {
    File(String, Vec<u8>),
    Link(String, String),
}
