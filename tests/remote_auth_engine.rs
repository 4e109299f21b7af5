//! Remote sources that want credentials, against real servers on loopback: an OpenSSH `sshd`
//! serving a bare repository to a deploy key, and a git smart-HTTP server behind TLS and token
//! auth. The host key and the TLS certificate must verify; the wrong ones change nothing.

mod common;
use common::*;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn keygen(path: &Path) -> String {
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"]).arg(path));
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    public.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// OpenSSH's sshd on a loopback port, with its own host key, accepting one client key for root.
struct Sshd {
    dir: tempfile::TempDir,
    _child: Killed,
    port: u16,
    host_key: String,
}

impl Sshd {
    fn start(port: u16) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let host_key = keygen(&d.join("host_key"));
        let client = keygen(&d.join("client_key"));
        keygen(&d.join("stranger_key"));
        std::fs::write(d.join("authorized_keys"), format!("{client}\n")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
             LogLevel VERBOSE\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd runs (scripts/engine-up installs openssh-server)");
        let sshd = Sshd { dir, _child: Killed(child), port, host_key };
        assert!(wait_for(Duration::from_secs(10), || listening(port)), "sshd listens: {}", sshd.log());
        sshd
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// A known_hosts file with `line` in it.
    fn known_hosts(&self, name: &str, line: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, format!("# test\n{line}\n")).unwrap();
        path
    }
}

#[test]
fn an_ssh_remote_needs_a_known_host_key_and_an_accepted_deploy_key() {
    let p = "t-auth-ssh";
    let s = Stack::new(p);
    let remote = bare_remote(&s);
    let bare = remote.path().join("origin.git");
    s.push_svc("1");
    let sshd = Sshd::start(19492);
    let url = format!("ssh://root@127.0.0.1:{}{}", sshd.port, bare.display());
    let name = format!("[127.0.0.1]:{}", sshd.port);
    let good_hosts = sshd.known_hosts("known_hosts", &format!("{name} {}", sshd.host_key));
    let key = sshd.path("client_key");

    let r = s.hawser(&["apply", &url, "--ssh-key", &key, "--known-hosts", &good_hosts]);
    assert_eq!(r.code, 0, "{r:?}\nsshd: {}", sshd.log());
    assert!(runs_version(&format!("{p}-svc"), "1"));

    // v2 waits on the remote: each refusal below must leave v1 running.
    s.push_svc("2");

    // A host the known_hosts file does not list is refused, not trusted on first use; the
    // message says how to add it.
    let other = sshd.known_hosts("other_hosts", &format!("git.example {}", sshd.host_key));
    let r = s.hawser(&["apply", &url, "--ssh-key", &key, "--known-hosts", &other]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains(&format!("host {name} is not in")), "{r:?}");
    assert!(r.stderr.contains("SHA256:") && r.stderr.contains("ssh-keyscan -p 19492 127.0.0.1"), "{r:?}");

    // The host listed with another key: someone may be in the middle.
    let stranger = std::fs::read_to_string(sshd.path("stranger_key.pub")).unwrap();
    let stranger: String = stranger.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let wrong = sshd.known_hosts("wrong_hosts", &format!("{name} {stranger}"));
    let r = s.hawser(&["apply", &url, "--ssh-key", &key, "--known-hosts", &wrong]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("HOST KEY MISMATCH"), "{r:?}");

    // A key the server does not accept.
    let r = s.hawser(&["apply", &url, "--ssh-key", &sshd.path("stranger_key"), "--known-hosts", &good_hosts]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("refused the SSH key"), "{r:?}");
    assert!(runs_version(&format!("{p}-svc"), "1"), "nothing changed on refusals");

    // Without --known-hosts, ~/.ssh/known_hosts is consulted (as ssh does).
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::copy(&good_hosts, home.path().join(".ssh/known_hosts")).unwrap();
    let r = s.hawser_env(&["plan", &url, "--ssh-key", &key], &[("HOME", home.path().to_str().unwrap())]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("replace"), "v2 is planned: {r:?}");
    let r = s.hawser_env(&["plan", &url, "--ssh-key", &key], &[("HOME", sshd.path("no-such-home").as_str())]);
    assert!(r.stderr.contains(".ssh/known_hosts or /etc/ssh/ssh_known_hosts"), "{r:?}");

    // Without a key file, and without an agent, the error says what to set.
    let r = s.hawser_env(&["apply", &url, "--known-hosts", &good_hosts], &[("SSH_AUTH_SOCK", "")]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("the server wants an SSH key"), "{r:?}");
    assert!(runs_version(&format!("{p}-svc"), "1"), "nothing changed on refusals");

    // Hashed known_hosts entries (ssh-keygen -H, HashKnownHosts) work too, and the key may come
    // from an ssh-agent: v2 is applied.
    run(Command::new("ssh-keygen").args(["-H", "-f", &good_hosts]));
    assert!(!std::fs::read_to_string(&good_hosts).unwrap().contains("127.0.0.1"), "hashed");
    let agent_sock = sshd.path("agent.sock");
    let agent = Command::new("ssh-agent").args(["-D", "-a", &agent_sock]).stdout(Stdio::null()).spawn().unwrap();
    let _agent = Killed(agent);
    assert!(wait_for(Duration::from_secs(5), || Path::new(&agent_sock).exists()), "ssh-agent listens");
    run(Command::new("ssh-add").arg("-q").arg(&key).env("SSH_AUTH_SOCK", &agent_sock));
    let r = s.hawser_env(&["apply", &url, "--known-hosts", &good_hosts], &[("SSH_AUTH_SOCK", &agent_sock)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(runs_version(&format!("{p}-svc"), "2"));
}

#[test]
fn serve_polls_an_ssh_remote_with_the_auth_of_its_config() {
    let p = "t-auth-serve";
    let s = Stack::new(p);
    let remote = bare_remote(&s);
    let bare = remote.path().join("origin.git");
    s.push_svc("1");
    let sshd = Sshd::start(19494);
    let known = sshd.known_hosts("known_hosts", &format!("[127.0.0.1]:{} {}", sshd.port, sshd.host_key));
    let config = s.state.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:19486\"\n\n[[source]]\nrepo = \"ssh://root@127.0.0.1:{}{}\"\ninterval = \"500ms\"\n\n\
             [source.auth]\nsshKeyFile = \"{}\"\nknownHosts = \"{known}\"\n",
            sshd.port,
            bare.display(),
            sshd.path("client_key")
        ),
    )
    .unwrap();
    let log_path = s.state.path().join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("DOCKER_HOST", docker_host())
        .env("HAWSER_STATE_DIR", s.state.path())
        .env("HAWSER_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let _serve = Killed(child);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(wait_for(Duration::from_secs(15), || runs_version(&format!("{p}-svc"), "1")), "v1: {}", log());
    s.push_svc("2");
    assert!(wait_for(Duration::from_secs(15), || runs_version(&format!("{p}-svc"), "2")), "v2: {}", log());
}

/// The git smart-HTTP server of tests/support, over TLS with a self-signed certificate.
struct Https {
    dir: tempfile::TempDir,
    _child: Killed,
    port: u16,
}

impl Https {
    fn start(port: u16, root: &Path, token: &str) -> Https {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(d.join("key.pem"))
            .arg("-out")
            .arg(d.join("cert.pem")));
        std::fs::write(d.join("server.token"), token).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/git_https_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(root)
            .arg(d.join("cert.pem"))
            .arg(d.join("key.pem"))
            .arg(d.join("server.token"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(d.join("server.log")).unwrap())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "{}", std::fs::read_to_string(d.join("server.log")).unwrap_or_default());
        Https { dir, _child: Killed(child), port }
    }

    fn cert(&self) -> String {
        self.dir.path().join("cert.pem").display().to_string()
    }
}

#[test]
fn an_https_remote_needs_a_trusted_certificate_and_an_accepted_token() {
    let p = "t-auth-https";
    let s = Stack::new(p);
    let remote = bare_remote(&s);
    s.push_svc("1");
    let token = "glpat-test-7f3a9c1e5b";
    let server = Https::start(19493, remote.path(), token);
    let url = format!("https://127.0.0.1:{}/origin.git", server.port);
    let token_file = s.state.path().join("deploy.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let wrong_file = s.state.path().join("wrong.token");
    std::fs::write(&wrong_file, "not-the-token\n").unwrap();
    let token_arg = token_file.display().to_string();
    let trusted = [("SSL_CERT_FILE", server.cert())];
    let trusted: Vec<(&str, &str)> = trusted.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let no_secret = |r: &Run| assert!(!r.stdout.contains(token) && !r.stderr.contains(token), "token shown: {r:?}");

    // A certificate nothing vouches for is refused, token or not (with the system's trust store,
    // looked up lazily in its hashed directory as hawser does when the user names none).
    let system = [("SSL_CERT_FILE", ""), ("SSL_CERT_DIR", "")];
    let r = s.hawser_env(&["apply", &url, "--git-token-file", &token_arg], &system);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.to_lowercase().contains("certificate"), "{r:?}");
    no_secret(&r);

    // Trusted, but without credentials, or with the wrong ones.
    let r = s.hawser_env(&["apply", &url], &trusted);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("the server wants credentials"), "{r:?}");
    let r = s.hawser_env(&["apply", &url, "--git-token-file", wrong_file.to_str().unwrap()], &trusted);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("refused the token"), "{r:?}");
    assert!(container_id(&format!("{p}-svc")).is_none(), "nothing was created");

    // A token written into the URL is refused before any use, and not echoed.
    let inline = format!("https://deploy:{token}@127.0.0.1:{}/origin.git", server.port);
    let r = s.hawser_env(&["plan", &inline], &trusted);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("tokenFile"), "{r:?}");
    no_secret(&r);

    // A private CA in a hashed directory is found there, with no bundle at all: the lookup
    // hawser sets up by default works for TLS.
    let hashed = tempfile::tempdir().unwrap();
    std::fs::copy(server.cert(), hashed.path().join("test-ca.pem")).unwrap();
    run(Command::new("openssl").arg("rehash").arg(hashed.path()));
    let dir_only = [("SSL_CERT_FILE", "/dev/null"), ("SSL_CERT_DIR", hashed.path().to_str().unwrap())];
    let r = s.hawser_env(&["plan", &url, "--git-token-file", &token_arg], &dir_only);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&format!("Container {p}-svc: create")), "{r:?}");

    let r = s.hawser_env(&["apply", &url, "--git-token-file", &token_arg], &trusted);
    assert_eq!(r.code, 0, "{r:?}");
    no_secret(&r);
    assert!(runs_version(&format!("{p}-svc"), "1"));
}

#[test]
fn a_server_that_accepts_and_never_answers_times_out() {
    // Accepts connections and holds them open in silence until the test ends.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().take(4) {
            held.push(c);
        }
        std::thread::sleep(Duration::from_secs(120));
    });
    let s = Stack::new("t-auth-silent");
    let urls = [format!("ssh://git@127.0.0.1:{port}/x.git"), format!("https://127.0.0.1:{port}/x.git")];
    std::thread::scope(|scope| {
        let runs: Vec<_> = urls
            .iter()
            .map(|url| {
                let s = &s;
                scope.spawn(move || {
                    let t = Instant::now();
                    (url, s.hawser(&["plan", url]), t.elapsed())
                })
            })
            .collect();
        for run in runs {
            let (url, r, took) = run.join().unwrap();
            assert_ne!(r.code, 0, "{r:?}");
            assert!(took < Duration::from_secs(40), "{url} took {took:?}");
            assert!(r.stderr.contains("did not answer within"), "{r:?}");
        }
    });
}
