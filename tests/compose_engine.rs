//! A compose file as desired state: the web + db example of the seeds, on the local registry's
//! image, applied to the real engine.

mod common;
use common::*;
use std::io::{Read, Write};

const COMPOSE: &str = r#"# The seeds' web + db example, with the local registry's busybox standing in for nginx and mysql.
version: "3.9"
services:
  tcompose-web:
    image: 127.0.0.1:5000/busybox:latest
    command: httpd -f -p 8080 -h /www
    ports:
      - "127.0.0.1:18280:8080"
    volumes:
      - tcompose_data:/www:ro
    depends_on:
      tcompose-db:
        condition: service_healthy
    environment:
      - var_name=value
    networks: [backend]
  tcompose-db:
    image: 127.0.0.1:5000/busybox:latest
    command: sh -c "echo db-ready > /var/lib/mysql/index.html && exec sleep 3600"
    environment:
      MYSQL_ROOT_PASSWORD: mysecretpassword
    volumes:
      - tcompose_data:/var/lib/mysql
    healthcheck:
      test: ["CMD", "test", "-f", "/var/lib/mysql/index.html"]
      interval: 300ms
      retries: 20
    stop_grace_period: 1s
    networks: [backend]
volumes:
  tcompose_data:
networks:
  backend:
    name: tcompose-backend
"#;

fn get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, b)| b.trim().to_string())
}

#[test]
fn the_seed_compose_example_is_applied_and_runs() {
    let s = Stack::new("tcompose");
    s.write("compose.yaml", COMPOSE);
    s.commit("compose");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let mut body = None;
    for _ in 0..50 {
        body = get(18280);
        if body.as_deref() == Some("db-ready") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(body.as_deref(), Some("db-ready"));
    assert_eq!(inspect("tcompose-db", "{{.State.Health.Status}}"), "healthy");
    assert_eq!(inspect("tcompose-web", r#"{{index .Config.Labels "dev.hawser.project"}}"#), "tcompose");
    let nets = inspect("tcompose-web", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}");
    assert_eq!(nets.trim(), "tcompose-backend");
    // web came up only after db was healthy.
    let db_started = inspect("tcompose-db", "{{.State.StartedAt}}");
    let web_started = inspect("tcompose-web", "{{.State.StartedAt}}");
    assert!(web_started > db_started, "{web_started} > {db_started}");
    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 0, "a compose project converges: {r:?}");
}

/// Compose's relative bind mounts: files of the repository reach the container from a snapshot
/// of the revision; a changed file replaces only the container that mounts it, and says so.
#[test]
fn repository_files_are_mounted_and_a_changed_file_replaces_only_its_container() {
    let p = "t-repofiles";
    let s = Stack::new(p);
    s.write(
        "compose.yaml",
        &format!(
            "services:\n  web:\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n    volumes: [\"./site:/www\"]\n    container_name: {p}-web\n    init: true\n  conf:\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n    volumes: [\"./conf/app.conf:/etc/app.conf\", \"./scratch:/scratch:rw\"]\n    container_name: {p}-conf\n    init: true\n"
        ),
    );
    s.write("site/index.html", "hello\n");
    s.write("site/css/site.css", "body {}\n");
    s.write("conf/app.conf", "level = 1\n");
    s.write("scratch/keep", "\n");
    s.commit("v1");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let cat = |c: &str, f: &str| String::from_utf8_lossy(&exec(&format!("{p}-{c}"), &["cat", f]).stdout).to_string();
    assert_eq!(cat("web", "/www/index.html"), "hello\n");
    assert_eq!(cat("web", "/www/css/site.css"), "body {}\n");
    assert_eq!(cat("conf", "/etc/app.conf"), "level = 1\n");
    assert!(!exec(&format!("{p}-web"), &["touch", "/www/x"]).status.success(), "read-only by default");
    assert!(exec(&format!("{p}-conf"), &["touch", "/scratch/x"]).status.success(), ":rw is writable");
    let web = container_id(&format!("{p}-web")).unwrap();

    // Nothing of the mounted files changed: nothing to do.
    s.write("README.md", "docs\n");
    s.commit("docs");
    assert_eq!(s.hawser(&["plan", "{src}", "--exit-code"]).code, 0);

    s.write("conf/app.conf", "level = 2\n");
    s.commit("v2");
    let r = s.hawser(&["plan", "{src}"]);
    assert!(
        r.stdout.contains(&format!("~ Container {p}-conf: replace (start-first) (repoFileChanged: conf/app.conf)")),
        "{r:?}"
    );
    assert!(r.stdout.contains("1 to replace"), "only the container that mounts it: {r:?}");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(cat("conf", "/etc/app.conf"), "level = 2\n");
    assert_eq!(container_id(&format!("{p}-web")).as_deref(), Some(web.as_str()));
    // Snapshots are named by content and kept per project; the replaced one is gone.
    let snapshots = std::fs::read_dir(s.state.path().join("files").join(p)).unwrap().count();
    assert_eq!(snapshots, 3, "site, conf/app.conf at level 2, scratch");
}

/// Compose secrets: a host file (under the policy's secretRoots) and a repository file reach
/// /run/secrets, and the value appears in no output, label or state; a changed value replaces
/// the container without showing it.
#[test]
fn secrets_reach_run_secrets_and_their_values_nothing_else() {
    const MARKER: &str = "compose-secret-5e1f0a";
    let p = "t-csecrets";
    let s = Stack::new(p);
    let host = tempfile::tempdir().unwrap();
    let db = host.path().join("db_password");
    std::fs::write(&db, format!("{MARKER}-host-1")).unwrap();
    let policy = s.state.path().join("policy.toml");
    std::fs::write(&policy, format!("secretRoots = [\"{}\"]\n", host.path().display())).unwrap();
    let pol = policy.to_str().unwrap();
    s.write(
        "compose.yaml",
        &format!(
            "secrets:\n  db: {{file: {}}}\n  token: {{file: ./secrets/token}}\n  env: {{environment: HAWSER_TEST_SECRET}}\nservices:\n  app:\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n    container_name: {p}-app\n    init: true\n    secrets: [db, {{source: token, target: api_token, uid: \"1000\", gid: \"1001\", mode: 0440}}, env]\n",
            db.display()
        ),
    );
    s.write("secrets/token", "repo-token\n");
    s.commit("secrets");
    let env_value = format!("{MARKER}-env-1");
    let env = [("HAWSER_TEST_SECRET", env_value.as_str())];
    let mut outputs = Vec::new();
    for output in ["text", "json"] {
        let r = s.hawser_env(&["--policy", pol, "plan", "{src}", "--output", output], &env);
        assert_eq!(r.code, 0, "{r:?}");
        outputs.push(format!("{r:?}"));
    }
    let r = s.hawser_env(&["--policy", pol, "-vv", "apply", "{src}"], &env);
    assert_eq!(r.code, 0, "{r:?}");
    outputs.push(format!("{r:?}"));
    let cat = |f: &str| String::from_utf8_lossy(&exec(&format!("{p}-app"), &["cat", f]).stdout).to_string();
    assert_eq!(cat("/run/secrets/db"), format!("{MARKER}-host-1"));
    assert_eq!(cat("/run/secrets/api_token"), "repo-token\n");
    assert_eq!(cat("/run/secrets/env"), env_value, "a secret of hawser's environment");
    let stat = exec(&format!("{p}-app"), &["stat", "-c", "%a %u %g", "/run/secrets/api_token"]);
    assert_eq!(String::from_utf8_lossy(&stat.stdout).trim(), "440 1000 1001", "mode, uid and gid as asked");
    assert!(!exec(&format!("{p}-app"), &["sh", "-c", "echo x > /run/secrets/db"]).status.success(), "read-only");
    outputs.push(inspect(&format!("{p}-app"), "{{json .Config}}"));
    outputs.push(inspect(&format!("{p}-app"), "{{json .Config.Labels}}"));
    outputs.push(s.hawser_env(&["--policy", pol, "render", "{src}"], &env).stdout);
    // Whatever hawser keeps in its state folder (history, records), besides the mounted files.
    for e in walk(s.state.path()) {
        if !e.starts_with(s.state.path().join("files")) {
            outputs.push(String::from_utf8_lossy(&std::fs::read(&e).unwrap_or_default()).to_string());
        }
    }
    for (i, o) in outputs.iter().enumerate() {
        assert!(!o.contains(MARKER), "output {i} shows the secret: {o}");
    }

    std::fs::write(&db, format!("{MARKER}-host-2")).unwrap();
    let r = s.hawser_env(&["--policy", pol, "plan", "{src}", "--exit-code"], &env);
    assert_eq!(r.code, 2, "a changed secret replaces the container: {r:?}");
    assert!(!r.stdout.contains(MARKER), "{r:?}");
    assert_eq!(s.hawser_env(&["--policy", pol, "apply", "{src}"], &env).code, 0);
    assert_eq!(cat("/run/secrets/db"), format!("{MARKER}-host-2"));

    let two = format!("{MARKER}-env-2");
    let r = s.hawser_env(&["--policy", pol, "plan", "{src}", "--exit-code"], &[("HAWSER_TEST_SECRET", &two)]);
    assert_eq!(r.code, 2, "a changed secret of the environment replaces the container: {r:?}");
    assert!(!r.stdout.contains(MARKER), "{r:?}");
    assert_eq!(s.hawser_env(&["--policy", pol, "apply", "{src}"], &[("HAWSER_TEST_SECRET", &two)]).code, 0);
    assert_eq!(cat("/run/secrets/env"), two);
    let r = s.hawser(&["--policy", pol, "plan", "{src}"]);
    assert_eq!(r.code, 3, "without the variable nothing is planned: {r:?}");
    assert!(
        r.stderr.contains("comes from `HAWSER_TEST_SECRET`, which the environment of hawser does not set"),
        "{r:?}"
    );
}

/// Compose keeps an anonymous volume's data when it recreates a container; so does hawser.
#[test]
fn an_anonymous_volume_keeps_its_data_across_a_replacement() {
    let p = "t-anonvol";
    let s = Stack::new(p);
    let compose = |v: &str| {
        format!("configs:\n  motd: {{content: \"hi from a config\"}}\nservices:\n  app:\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n    environment: {{V: \"{v}\"}}\n    volumes: [/cache]\n    configs: [{{source: motd, target: /etc/motd}}]\n    container_name: {p}-app\n    init: true\n")
    };
    s.write("compose.yaml", &compose("1"));
    s.commit("v1");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    assert!(exec(&format!("{p}-app"), &["sh", "-c", "echo kept > /cache/data"]).status.success());
    let motd = exec(&format!("{p}-app"), &["cat", "/etc/motd"]);
    assert_eq!(String::from_utf8_lossy(&motd.stdout), "hi from a config", "a config's declared content");
    let old = container_id(&format!("{p}-app")).unwrap();
    s.write("compose.yaml", &compose("2"));
    s.commit("v2");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_ne!(container_id(&format!("{p}-app")).unwrap(), old, "replaced");
    let out = exec(&format!("{p}-app"), &["cat", "/cache/data"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kept\n");
}

/// Interpolation as compose does it: `.env` of the commit and the environment of the hawser
/// process; the host's values reach the container and are masked in plans.
#[test]
fn interpolated_values_reach_the_container_and_the_hosts_are_masked_in_plans() {
    const MARKER: &str = "host-value-7c2d";
    let p = "t-interp";
    let s = Stack::new(p);
    s.write(
        "compose.yaml",
        &format!(
            "services:\n  app:\n    image: {IMAGE}\n    command: [sleep, \"${{SLEEP:-3600}}\"]\n    environment:\n      GREETING: \"${{GREETING}} from .env\"\n      TOKEN: ${{HAWSER_TEST_TOKEN:?the host must set it}}\n    env_file: config/app.env\n    container_name: {p}-app\n    init: true\n"
        ),
    );
    s.write(".env", "GREETING=hello\n");
    s.write("config/app.env", "FROM_FILE=yes\n");
    s.commit("v1");
    let r = s.hawser(&["plan", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("required variable `HAWSER_TEST_TOKEN` is missing a value: the host must set it"),
        "{r:?}"
    );

    let one = format!("{MARKER}-1");
    let r = s.hawser_env(&["apply", "{src}"], &[("HAWSER_TEST_TOKEN", &one)]);
    assert_eq!(r.code, 0, "{r:?}");
    let env = inspect(&format!("{p}-app"), "{{json .Config.Env}}");
    assert!(env.contains("GREETING=hello from .env") && env.contains(&format!("TOKEN={one}")), "{env}");
    assert!(env.contains("FROM_FILE=yes"), "env_file of the repository: {env}");
    assert_eq!(inspect(&format!("{p}-app"), "{{json .Config.Cmd}}"), r#"["sleep","3600"]"#);

    let two = format!("{MARKER}-2");
    for output in ["text", "json", "markdown"] {
        let r = s.hawser_env(&["plan", "{src}", "--output", output], &[("HAWSER_TEST_TOKEN", &two)]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("env.TOKEN"), "{output}: {r:?}");
        assert!(!r.stdout.contains(MARKER), "{output} shows the host's value: {r:?}");
    }
}

/// Attack: plans masked the host's values, but a commit with `mem_limit: "${SOME_TOKEN}"` put
/// the clear value into the validation error, and from there into /status, the dashboard,
/// `hawser history` and notifications. An engine's error that quotes one (a pull of an image
/// named from it) is masked as well.
#[test]
fn a_value_of_hawsers_environment_appears_in_no_error_and_no_history() {
    const TOKEN: &str = "leaky-token-5e1f0a";
    let p = "t-interp-leak";
    let s = Stack::new(p);
    let env = [("HAWSER_TEST_LEAK", TOKEN)];
    s.write(
        "compose.yaml",
        &format!("services:\n  app:\n    image: {IMAGE}\n    mem_limit: \"${{HAWSER_TEST_LEAK}}\"\n"),
    );
    s.commit("a size from the host");
    let r = s.hawser_env(&["apply", "{src}", "--yes"], &env);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("invalid size `***`"), "{r:?}");
    assert!(!format!("{}{}", r.stdout, r.stderr).contains(TOKEN), "{r:?}");

    s.write("compose.yaml", "services:\n  app:\n    image: \"127.0.0.1:5000/missing-${HAWSER_TEST_LEAK}:1\"\n");
    s.commit("an image named from the host");
    let r = s.hawser_env(&["apply", "{src}", "--yes"], &env);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("missing-***"), "{r:?}");
    assert!(!format!("{}{}", r.stdout, r.stderr).contains(TOKEN), "{r:?}");
    let history = s.hawser(&["history", "--output", "json"]);
    assert!(history.stdout.contains("missing-***"), "{history:?}");
    assert!(!history.stdout.contains(TOKEN), "{history:?}");
}

/// The service keys beyond the basics reach the engine as compose sends them; a relative bind of
/// a folder the repository lacks is the project's data folder: writable, kept across replacements.
#[test]
fn the_rest_of_the_service_keys_reach_the_engine_and_data_folders_are_kept() {
    let p = "t-ckeys";
    let s = Stack::new(p);
    let compose = |v: &str, db: &str| {
        format!(
            r#"x-base: &base
  image: {IMAGE}
  init: true
  command: [sleep, "3600"]
services:
  db:
    <<: *base
    container_name: {p}-db
    environment: {{DB: "{db}"}}
    ipc: shareable
    networks: [back]
  app:
    <<: *base
    container_name: {p}-app
    environment: {{V: "{v}"}}
    expose: ["7000", "7100-7101/udp"]
    sysctls: {{net.ipv4.ip_unprivileged_port_start: "80"}}
    group_add: ["1234"]
    domainname: shop.internal
    oom_score_adj: 100
    mem_reservation: 32m
    security_opt: [no-new-privileges:true]
    ipc: service:db
    links: ["db:database"]
    volumes: ["./appdata:/appdata"]
    networks:
      back: {{ipv4_address: 198.19.251.10}}
networks:
  back:
    name: {p}-back
    ipam: {{config: [{{subnet: 198.19.251.0/24}}]}}
"#
        )
    };
    s.write("compose.yaml", &compose("1", "1"));
    s.commit("v1");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let app = format!("{p}-app");
    let db_id = container_id(&format!("{p}-db")).unwrap();
    let host = inspect(&app, "{{json .HostConfig}}");
    for expected in [
        r#""Sysctls":{"net.ipv4.ip_unprivileged_port_start":"80"}"#,
        r#""GroupAdd":["1234"]"#,
        r#""OomScoreAdj":100"#,
        r#""MemoryReservation":33554432"#,
        r#""SecurityOpt":["no-new-privileges:true"]"#,
    ] {
        assert!(host.contains(expected), "missing {expected} in {host}");
    }
    let config = inspect(&app, "{{json .Config}}");
    assert!(config.contains(r#""Domainname":"shop.internal""#), "{config}");
    for port in ["7000/tcp", "7100/udp", "7101/udp"] {
        assert!(config.contains(&format!("\"{port}\":{{}}")), "expose {port}: {config}");
    }
    let net = inspect(&app, &format!("{{{{json (index .NetworkSettings.Networks \"{p}-back\")}}}}"));
    assert!(net.contains(r#""IPAddress":"198.19.251.10""#), "{net}");
    assert!(net.contains(&format!(r#""Links":["{p}-db:database"]"#)), "{net}");
    let ping = exec(&app, &["ping", "-c", "1", "-W", "2", "database"]);
    assert!(ping.status.success(), "the link's alias resolves: {ping:?}");
    let ping = exec(&app, &["ping", "-c", "1", "-W", "2", "db"]);
    assert!(ping.status.success(), "the service's name resolves despite container_name: {ping:?}");
    let ipc = |c: &str| inspect(c, "{{.HostConfig.IpcMode}}");
    assert_eq!(ipc(&app), format!("container:{db_id}"), "joins db's IPC namespace");

    // The data folder: made on the host, writable, and kept when the container is replaced.
    assert!(exec(&app, &["sh", "-c", "echo kept > /appdata/state"]).status.success());
    let old = container_id(&app).unwrap();
    s.write("compose.yaml", &compose("2", "1"));
    s.commit("v2");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_ne!(container_id(&app).unwrap(), old, "replaced");
    assert_eq!(container_id(&format!("{p}-db")).unwrap(), db_id, "db is not touched");
    let out = exec(&app, &["cat", "/appdata/state"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kept\n");
    assert!(s.state.path().join("data").join(p).join("appdata/state").is_file());

    // db made anew: app, which joins its IPC namespace, is made anew after it and joins the new one.
    s.write("compose.yaml", &compose("2", "2"));
    s.commit("v3");
    let r = s.hawser(&["plan", "{src}"]);
    assert!(r.stdout.contains(&format!("`{p}-db`, whose namespaces it joins, is made anew")), "{r:?}");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let new_db = container_id(&format!("{p}-db")).unwrap();
    assert_ne!(new_db, db_id);
    assert_eq!(ipc(&app), format!("container:{new_db}"));
    assert!(inspect(&app, "{{.State.Running}}").contains("true"));
}

/// Attack: an age-encrypted file of 1 GiB was decrypted whole (3.2 GB of memory at apply), and
/// repository files that containers mount had no size cap. Over the host policy's
/// `maxRepoFileSize` they are refused at validation, before they are read, and nothing runs.
#[test]
fn repository_files_over_the_cap_are_refused_before_they_are_read() {
    let p = "t-repo-cap";
    let s = Stack::new(p);
    let identity = age::x25519::Identity::generate();
    let sealed = age::encrypt(&identity.to_public(), &vec![b'x'; 3 << 20]).unwrap();
    s.write(
        "compose.yaml",
        &format!("secrets:\n  big: {{file: ./secrets/big.bin.age}}\nservices:\n  app:\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n    container_name: {p}-app\n    secrets: [big]\n    volumes: [\"./site:/site:ro\"]\n"),
    );
    std::fs::create_dir_all(s.path().join("secrets")).unwrap();
    std::fs::write(s.path().join("secrets/big.bin.age"), &sealed).unwrap();
    for i in 0..3 {
        s.write(&format!("site/page{i}.html"), &"x".repeat(500 << 10));
    }
    s.commit("large files");
    let policy = s.state.path().join("policy.toml");
    std::fs::write(&policy, "maxRepoFileSize = \"1Mi\"\n").unwrap();
    let pol = policy.to_str().unwrap();
    let r = s.hawser(&["--policy", pol, "apply", "{src}", "--yes"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("`secrets/big.bin.age` holds more than 1048576 bytes"), "{r:?}");
    assert!(r.stderr.contains("bind mount `site`: `site` holds more than 1048576 bytes"), "{r:?}");
    assert!(r.stderr.contains("maxRepoFileSize"), "{r:?}");
    assert!(container_id(&format!("{p}-app")).is_none(), "nothing was made");
    // Within the default cap, the same files are mounted.
    let r = s.hawser(&["plan", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
}

/// A secret committed encrypted with age is decrypted on the host with the identity the host
/// policy names, only when applied: plans need no key, and no output shows the plaintext.
#[test]
fn an_age_encrypted_secret_is_decrypted_on_the_host_only() {
    use age::secrecy::ExposeSecret;
    const MARKER: &str = "age-plaintext-93b1";
    let p = "t-cage";
    let s = Stack::new(p);
    let identity = age::x25519::Identity::generate();
    let key = s.state.path().join("age.key");
    std::fs::write(&key, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let encrypt = |text: &str| age::encrypt_and_armor(&identity.to_public(), text.as_bytes()).unwrap();
    s.write(
        "compose.yaml",
        &format!("secrets:\n  db: {{file: ./secrets/db.txt.age}}\nservices:\n  app:\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n    container_name: {p}-app\n    init: true\n    secrets: [{{source: db, mode: 0400}}]\n"),
    );
    s.write("secrets/db.txt.age", &encrypt(&format!("{MARKER}-1")));
    s.commit("v1");
    let policy = s.state.path().join("policy.toml");
    std::fs::write(&policy, format!("ageIdentity = \"{}\"\n", key.display())).unwrap();
    let pol = policy.to_str().unwrap();

    // A plan needs no key: the ciphertext is what changes.
    let r = s.hawser(&["plan", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("committed in clear"), "an encrypted secret is not in clear: {r:?}");
    // Without the identity, nothing is applied.
    let r = s.hawser(&["apply", "{src}"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("encrypted with age, and the host policy names no identity"), "{r:?}");
    assert!(container_id(&format!("{p}-app")).is_none(), "nothing was made");

    let r = s.hawser(&["--policy", pol, "-vv", "apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let app = format!("{p}-app");
    let cat = || String::from_utf8_lossy(&exec(&app, &["cat", "/run/secrets/db"]).stdout).to_string();
    assert_eq!(cat(), format!("{MARKER}-1"));
    let stat = exec(&app, &["stat", "-c", "%a", "/run/secrets/db"]);
    assert_eq!(String::from_utf8_lossy(&stat.stdout).trim(), "400");
    let mut outputs = vec![format!("{r:?}"), inspect(&app, "{{json .Config}}")];
    outputs.push(format!("{:?}", s.hawser(&["--policy", pol, "plan", "{src}", "--output", "json"])));
    for (i, o) in outputs.iter().enumerate() {
        assert!(!o.contains(MARKER), "output {i} shows the plaintext: {o}");
    }

    // Re-encrypted with a new value: the plan replaces the container, and the new value is there.
    s.write("secrets/db.txt.age", &encrypt(&format!("{MARKER}-2")));
    s.commit("v2");
    let r = s.hawser(&["--policy", pol, "plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("secrets/db.txt.age"), "the plan names the file: {r:?}");
    assert_eq!(s.hawser(&["--policy", pol, "apply", "{src}"]).code, 0);
    assert_eq!(cat(), format!("{MARKER}-2"));

    // Another identity cannot decrypt it: the apply fails and the running container stays.
    let other = age::x25519::Identity::generate();
    std::fs::write(&key, format!("{}\n", other.to_string().expose_secret())).unwrap();
    s.write("secrets/db.txt.age", &encrypt(&format!("{MARKER}-3")));
    s.commit("v3");
    let r = s.hawser(&["--policy", pol, "apply", "{src}"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("cannot decrypt `secrets/db.txt.age`"), "{r:?}");
    assert!(!r.stderr.contains(MARKER), "{r:?}");
    assert_eq!(cat(), format!("{MARKER}-2"), "what worked keeps running");
}

/// `platform` reaches the pull and the create: an image not on the host is pulled for it, and
/// one of another architecture fails with the engine's reason, nothing else changed.
#[test]
fn platform_is_asked_of_the_pull_and_the_create() {
    let p = "t-cplat";
    let s = Stack::new(p);
    let image = "127.0.0.1:5000/hawser-test-platform:1";
    docker(&["tag", IMAGE, image]);
    docker(&["push", "-q", image]);
    docker(&["rmi", image]);
    let compose = |platform: &str| {
        format!("services:\n  app:\n    image: {image}\n    platform: {platform}\n    command: [sleep, \"3600\"]\n    container_name: {p}-app\n    init: true\n")
    };
    s.write("compose.yaml", &compose("linux/arm64"));
    s.commit("arm64");
    let r = s.hawser(&["apply", "{src}"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("wanted linux/arm64"), "the engine's reason: {r:?}");
    assert!(container_id(&format!("{p}-app")).is_none());

    docker(&["rmi", image]);
    s.write("compose.yaml", &compose("linux/amd64"));
    s.commit("amd64");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("pulled") || r.stderr.contains("pulled"), "pulled for the platform: {r:?}");
    assert_eq!(inspect(&format!("{p}-app"), "{{.Platform}}"), "linux");
}

/// `volumes_from`: the other service's mounts, read-only where asked, and made again with it.
#[test]
fn volumes_from_mounts_the_other_services_volumes() {
    let p = "t-vfrom";
    let s = Stack::new(p);
    let compose = |v: &str| {
        format!(
            "services:\n  data:\n    image: {IMAGE}\n    container_name: {p}-data\n    init: true\n    command: [sh, -c, \"echo {v} > /shared/v && exec sleep 3600\"]\n    volumes: [\"shared:/shared\"]\n  app:\n    image: {IMAGE}\n    container_name: {p}-app\n    init: true\n    command: [sleep, \"3600\"]\n    volumes_from: [\"data:ro\"]\nvolumes:\n  shared: {{name: {p}-shared}}\n"
        )
    };
    s.write("compose.yaml", &compose("one"));
    s.commit("v1");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let app = format!("{p}-app");
    let read = || {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let out = String::from_utf8_lossy(&exec(&app, &["cat", "/shared/v"]).stdout).trim().to_string();
            if !out.is_empty() || std::time::Instant::now() > until {
                return out;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    assert_eq!(read(), "one");
    let write = exec(&app, &["sh", "-c", "echo x > /shared/x"]);
    assert!(!write.status.success(), "read-only from app: {write:?}");
    // The data container made anew: app is made again after it, with its mounts.
    let before = container_id(&app).unwrap();
    s.write("compose.yaml", &compose("two"));
    s.commit("v2");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_ne!(container_id(&app).unwrap(), before, "{r:?}");
    assert_eq!(read(), "two");
}

/// Lifecycle hooks: `post_start` runs in the new container before it passes its gate, `pre_stop`
/// in the old one before it stops.
#[test]
fn post_start_and_pre_stop_hooks_run_in_the_container() {
    let p = "t-hooks";
    let s = Stack::new(p);
    let compose = |v: &str| {
        format!(
            "services:\n  app:\n    image: {IMAGE}\n    container_name: {p}-app\n    init: true\n    command: [sleep, \"3600\"]\n    environment: {{V: \"{v}\"}}\n    volumes: [\"state:/state\"]\n    post_start: [{{command: [sh, -c, \"echo started-$$V >> /state/log\"]}}]\n    pre_stop: [{{command: \"sh -c 'echo stopping-$$V >> /state/log'\"}}]\nvolumes:\n  state: {{name: {p}-state}}\n"
        )
    };
    s.write("compose.yaml", &compose("1"));
    s.commit("v1");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    s.write("compose.yaml", &compose("2"));
    s.commit("v2");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let log = String::from_utf8_lossy(&exec(&format!("{p}-app"), &["cat", "/state/log"]).stdout).to_string();
    assert_eq!(log, "started-1\nstarted-2\nstopping-1\n");
    // A post_start that fails fails the candidate; the running container stays.
    let before = container_id(&format!("{p}-app")).unwrap();
    s.write("compose.yaml", &compose("3").replace("echo started-$$V >> /state/log", "exit 3"));
    s.commit("v3");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("postStart hook") && r.stderr.contains("exited with 3"), "{r:?}");
    assert_eq!(container_id(&format!("{p}-app")).unwrap(), before);
}
