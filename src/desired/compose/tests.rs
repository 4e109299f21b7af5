//! The compose mapping, one behaviour per test, on compose files as people write them.

mod words {
    use super::super::*;

    #[test]
    fn command_strings_split_like_compose() {
        assert_eq!(split_words(r#"sh -c 'echo "a b"' x\ y"#).unwrap(), ["sh", "-c", "echo \"a b\"", "x y"]);
        assert!(split_words("echo 'oops").is_err());
    }
}

mod sizes {
    use super::super::parse_ram;

    #[test]
    fn sizes_are_read_as_compose_reads_them() {
        let gib = 1u64 << 30;
        for (text, want) in [
            ("512m", Some(512 << 20)),
            ("1.5G", Some(gib + gib / 2)),
            ("2 GiB", Some(2 * gib)),
            ("64mb", Some(64 << 20)),
            ("100", Some(100)),
            ("1t", Some(1 << 40)),
            ("0.5k", Some(512)),
            ("1.2.3g", None),
            (".5g", None),
            ("5x", None),
            ("g", None),
            ("-1g", None),
        ] {
            assert_eq!(parse_ram(text), want, "{text}");
        }
    }
}

mod mapping {
    use crate::desired::{load, DependCondition, ManifestFile, Mount};
    use std::collections::BTreeMap;

    fn load_compose(text: &str) -> Result<crate::desired::DesiredState, crate::desired::Diagnostics> {
        load("shop", "r", &[ManifestFile { path: "compose.yaml".into(), text: text.into() }])
    }

    /// Regression: `${VAR}` reached the engine as the literal text.
    #[test]
    fn variables_are_interpolated_from_the_process_then_dotenv_as_compose_does() {
        let files = [
            ManifestFile {
                path: "app/compose.yaml".into(),
                text: "services:\n  web:\n    image: nginx:${TAG:-1}\n    environment: {DB: \"${DB_HOST}:5432\", PASSWORD: $DB_PASSWORD, NONE: \"${UNSET}\"}\n    command: [sh, -c, \"echo $$HOME\"]\n".into(),
            },
            ManifestFile { path: "app/.env".into(), text: "TAG=1.27\nDB_HOST=db\n".into() },
        ];
        let process: std::collections::BTreeMap<String, String> =
            [("DB_PASSWORD".to_string(), "s3cret-from-host".to_string())].into();
        let policy = crate::desired::Policy::default();
        let data = Default::default();
        let filter = Default::default();
        let opts = crate::desired::load_options(&policy, &process, &[], &data, &filter);
        let d = crate::desired::load_with("shop", "r", &files, &opts).unwrap_or_else(|e| panic!("{e}"));
        let web = &d.containers["web"].spec;
        assert_eq!(web.image, "nginx:1.27");
        assert_eq!(web.env["DB"], "db:5432");
        assert_eq!(web.env["PASSWORD"], "s3cret-from-host");
        assert_eq!(web.env["NONE"], "");
        assert_eq!(web.command.as_ref().unwrap()[2], "echo $HOME");
        assert_eq!(d.masked.0, ["s3cret-from-host".to_string()].into());
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].to_string().starts_with("app/compose.yaml:4:"), "{}", d.warnings[0]);
        assert!(d.warnings[0].message.contains("variable `UNSET` is not set"));

        // A plan shows the host's value masked.
        let mut plan = crate::diff::diff(&d, &Default::default(), &Default::default());
        let before = serde_json::to_string(&plan).unwrap();
        plan.mask(&d.masked);
        let after = serde_json::to_string(&plan).unwrap();
        assert_eq!(before, after, "a created container's plan shows no values");

        let e = load_compose("services:\n  web:\n    image: nginx:${TAG:?give a tag}\n").unwrap_err().to_string();
        assert!(e.starts_with("compose.yaml:3:12: required variable `TAG` is missing a value: give a tag"), "{e}");
    }

    /// Attack: plans masked the values compose took from hawser's environment, but a commit
    /// with `mem_limit: "${SOME_TOKEN}"` put the clear value into the validation error, and
    /// from there into /status, the dashboard, `hawser history` and notifications.
    #[test]
    fn a_value_of_hawsers_environment_never_appears_in_an_error_or_a_warning() {
        let token = "tok-9f8e7d6c5b4a";
        let process: BTreeMap<String, String> = [("SOME_TOKEN".to_string(), token.to_string())].into();
        let policy = crate::desired::Policy::default();
        let (data, filter) = (Default::default(), Default::default());
        let opts = crate::desired::load_options(&policy, &process, &[], &data, &filter);
        let files = [ManifestFile {
            path: "compose.yaml".into(),
            text: "services:\n  web:\n    image: \"reg/${SOME_TOKEN}:1\"\n    mem_limit: \"${SOME_TOKEN}\"\n    cpus: \"${SOME_TOKEN}\"\n    ports: [\"${SOME_TOKEN}:80\"]\n".into(),
        }];
        let e = crate::desired::load_with("shop", "r", &files, &opts).unwrap_err();
        let text = e.to_string();
        assert!(e.0.len() >= 2, "{text}");
        assert!(!text.contains(token) && !text.contains("9f8e7d6c"), "{text}");
        assert!(text.contains("***"), "{text}");
    }

    #[test]
    fn relative_binds_mount_files_of_the_repository_read_only_unless_asked() {
        let d = load(
            "shop",
            "r",
            &[ManifestFile {
                path: "deploy/compose.yaml".into(),
                text: "services:\n  web:\n    image: nginx:1\n    volumes:\n      - ./nginx.conf:/etc/nginx/nginx.conf\n      - ../site:/www:rw\n      - {type: bind, source: ./data, target: /data, read_only: false}\n".into(),
            }],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mounts: Vec<(String, bool)> = d.containers["web"]
            .spec
            .volumes
            .iter()
            .map(|m| match m {
                crate::desired::Mount::Repo { path, read_only, .. } => (path.clone(), *read_only),
                other => panic!("{other:?}"),
            })
            .collect();
        let expected = [("deploy/data", false), ("deploy/nginx.conf", true), ("site", false)];
        assert_eq!(mounts, expected.map(|(p, ro)| (p.to_string(), ro)));
        let e = load_compose("services:\n  web:\n    image: nginx:1\n    volumes: [\"../../etc:/etc\"]\n").unwrap_err();
        assert!(e.to_string().contains("compose.yaml:4:15: bind mount `../../etc` leaves the repository"), "{e}");
    }

    #[test]
    fn secrets_are_mounted_files_from_the_repository_or_the_host() {
        let text = "secrets:\n  db: {file: ./secrets/db.txt}\n  api: {file: /etc/hawser/secrets/api}\n  token: {environment: SHOP_TOKEN}\nservices:\n  web:\n    image: nginx:1\n    secrets: [{source: db, uid: \"70\", gid: 70, mode: 0440}, {source: api, target: api_key}, token]\n";
        let d =
            load_files(&[("compose.yaml", text)], &[("SHOP_TOKEN", "t0ken-value")]).unwrap_or_else(|e| panic!("{e}"));
        let v = &d.containers["web"].spec.volumes;
        let access = crate::desired::FileAccess { uid: Some(70), gid: Some(70), mode: Some("0440".parse().unwrap()) };
        assert!(
            v.contains(&crate::desired::Mount::Repo {
                path: "secrets/db.txt".into(),
                target: "/run/secrets/db".into(),
                read_only: true,
                digest: None,
                content: None,
                access: Some(access),
                data_folder: None,
            }),
            "{v:?}"
        );
        assert!(
            v.contains(&crate::desired::Mount::Secret {
                file: "/etc/hawser/secrets/api".into(),
                target: "/run/secrets/api_key".into(),
                digest: None
            }),
            "{v:?}"
        );
        assert!(
            v.contains(&crate::desired::Mount::EnvSecret {
                variable: "SHOP_TOKEN".into(),
                target: "/run/secrets/token".into(),
                digest: None,
                access: None,
            }),
            "{v:?}"
        );
        let rendered = crate::desired::render::to_json(&d);
        assert!(!rendered.contains("t0ken-value"), "{rendered}");
        assert!(rendered.contains("\"mode\": \"0440\""), "{rendered}");
        let warned: Vec<String> = d.warnings.iter().map(|w| w.to_string()).collect();
        assert!(
            warned.iter().any(|w| w
                .contains("compose.yaml:2:3: secret `db` is `./secrets/db.txt` of the repository, committed in clear")),
            "{warned:?}"
        );
        assert_eq!(warned.len(), 1, "{warned:?}");

        let e = load_files(
            &[("compose.yaml", "secrets:\n  s: {file: /etc/shadow, external: true}\n  d: {environment: FROM_DOTENV}\nservices:\n  web:\n    image: nginx:1\n    secrets: [s, nope, {source: s, target: t2, mode: 0400}, {source: d, mode: 999, uid: x}]\n"),
              (".env", "FROM_DOTENV=committed\n")],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("compose.yaml:2:26: `external` in secret `s` is not supported by hawser: a swarm secret"),
            "{e}"
        );
        assert!(
            e.contains("compose.yaml:3:3: secret `d`: `FROM_DOTENV` is set in a .env file of the repository, in clear"),
            "{e}"
        );
        assert!(e.contains("compose.yaml:7:18: secret `nope` is not declared"), "{e}");
        assert!(
            e.contains("secret `s`: uid, gid and mode need the secret in the repository or in the environment"),
            "{e}"
        );
        assert!(e.contains("invalid file mode `999`"), "{e}");
        assert!(e.contains("secret uid `x` must be a number"), "{e}");
        assert!(e.contains("compose.yaml:7:15: secret file `/etc/shadow` is outside the allowed roots"), "{e}");
    }

    #[test]
    fn an_anonymous_volume_becomes_a_volume_named_after_its_container_and_path() {
        let d = load_compose(
            "services:\n  web:\n    image: nginx:1\n    volumes: [/app/node_modules, {type: volume, target: /cache}]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&String> = d.volumes.keys().collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("web-anon-")), "{names:?}");
        let again = load_compose(
            "services:\n  web:\n    image: nginx:2\n    volumes: [/app/node_modules, {type: volume, target: /cache}]\n",
        )
        .unwrap();
        assert_eq!(again.volumes.keys().collect::<Vec<_>>(), names, "the same names in every revision");
        assert!(d.volumes.values().all(|v| v.spec.retain));
    }

    #[test]
    fn services_of_profiles_run_only_when_a_profile_is_active() {
        let files = [ManifestFile {
            path: "compose.yaml".into(),
            text: "services:\n  web:\n    image: nginx:1\n  debug:\n    image: busybox\n    profiles: [debug, tools]\n"
                .into(),
        }];
        let (env, data) = (Default::default(), Default::default());
        let policy = crate::desired::Policy::default();
        let d = crate::desired::load_with(
            "p",
            "r",
            &files,
            &crate::desired::load_options(&policy, &env, &[], &data, &Default::default()),
        )
        .unwrap();
        assert_eq!(d.containers.keys().collect::<Vec<_>>(), ["web"]);
        let on = ["tools".to_string()];
        let d = crate::desired::load_with(
            "p",
            "r",
            &files,
            &crate::desired::load_options(&policy, &env, &on, &data, &Default::default()),
        )
        .unwrap();
        assert_eq!(d.containers.keys().collect::<Vec<_>>(), ["debug", "web"]);
        let env: std::collections::BTreeMap<String, String> =
            [("COMPOSE_PROFILES".to_string(), "x, debug".to_string())].into();
        assert_eq!(crate::desired::active_profiles(&["a".to_string()], &env), ["a", "debug", "x"]);
    }

    #[test]
    fn deploy_gives_limits_restart_and_replicas_on_one_host() {
        let d = load_compose("services:\n  web:\n    image: nginx:1\n    deploy:\n      replicas: 1\n      resources: {limits: {cpus: '0.5', memory: 256M, pids: 100}}\n      restart_policy: {condition: on-failure, max_attempts: 3}\n").unwrap_or_else(|e| panic!("{e}"));
        let web = &d.containers["web"].spec;
        let l = web.resources.as_ref().unwrap();
        assert_eq!((l.cpus, l.memory.map(|m| m.0), l.pids), (Some(0.5), Some(256 << 20), Some(100)));
        assert_eq!(web.restart, Some(crate::desired::RestartPolicy::OnFailure(Some(3))));
        let e = load_compose(
            "services:\n  web:\n    image: nginx:1\n    deploy: {replicas: 3, placement: {constraints: []}}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("deploy.replicas:"), "{e}");
        assert!(e.contains("compose.yaml:4:27: deploy.placement is for a cluster"), "{e}");
        // Replicas: as many containers, named as compose names them, one at a time in a change.
        let d = load_compose(
            "services:\n  web:\n    image: nginx:1\n    ports: ['8080:80']\n    deploy: {replicas: 3, update_config: {parallelism: 2, order: start-first}}\n  lb:\n    image: nginx:1\n    depends_on: [web]\n  one:\n    image: nginx:1\n    scale: 1\n  none:\n    image: nginx:1\n    scale: 0\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = d.containers.keys().map(String::as_str).collect();
        assert_eq!(names, ["lb", "one", "web-1", "web-2", "web-3"]);
        let w2 = &d.containers["web-2"].spec;
        assert_eq!(w2.replica.as_ref().map(|r| (r.service.as_str(), r.index)), Some(("web", 2)));
        assert_eq!(w2.update.as_ref().and_then(|u| u.parallelism), Some(2));
        assert_eq!(w2.ports, d.containers["web-1"].spec.ports, "they share the host port");
        let deps: Vec<&str> = d.containers["lb"].spec.depends_on.keys().map(String::as_str).collect();
        assert_eq!(deps, ["web-1", "web-2", "web-3"]);
    }

    #[test]
    fn deploy_schedules_the_service_on_a_swarm() {
        let policy = crate::desired::Policy::default();
        let (env, data, filter) = (BTreeMap::new(), BTreeMap::new(), Default::default());
        let mut opts = crate::desired::load_options(&policy, &env, &[], &data, &filter);
        opts.target = crate::desired::Target::Swarm;
        let text = "services:\n  web:\n    image: nginx:1\n    deploy:\n      replicas: 3\n      endpoint_mode: dnsrr\n      placement: {constraints: [node.role == worker], preferences: [{spread: node.labels.zone}], max_replicas_per_node: 2}\n      update_config: {parallelism: 2, order: start-first}\n";
        let d = crate::desired::load_with(
            "shop",
            "r",
            &[ManifestFile { path: "compose.yaml".into(), text: text.into() }],
            &opts,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let web = &d.containers["web"].spec;
        assert_eq!(web.replicas, Some(3));
        assert_eq!(web.endpoint_mode, Some(crate::desired::EndpointMode::Dnsrr));
        let p = web.placement.as_ref().unwrap();
        assert_eq!(
            (p.constraints.as_slice(), p.preferences.as_slice(), p.max_replicas_per_node),
            (&["node.role == worker".to_string()][..], &["node.labels.zone".to_string()][..], Some(2))
        );
        let u = web.update.as_ref().unwrap();
        assert_eq!((u.parallelism, u.strategy), (Some(2), Some(crate::desired::Strategy::StartFirst)));
        // The same file on one host: refused where it schedules, not where it scales.
        let e = load_compose(text).unwrap_err().to_string();
        assert!(e.contains("deploy.endpoint_mode is for a cluster") && !e.contains("replicas:"), "{e}");
    }

    #[test]
    fn env_files_of_the_repository_come_before_environment() {
        let files = [ManifestFile {
            path: "app/compose.yaml".into(),
            text: "services:\n  web:\n    image: nginx:1\n    env_file: [common.env, {path: ../local.env, required: false}, ./web.env]\n    environment: {B: from-compose}\n".into(),
        }];
        assert_eq!(
            super::super::referenced_files(&files[0].path, &files[0].text),
            ["app/common.env", "app/web.env", "local.env"]
        );
        let data: std::collections::BTreeMap<String, String> = [
            ("app/common.env".to_string(), "A=common\nB=common\nC=common\n".to_string()),
            ("app/web.env".to_string(), "C=web\n".to_string()),
        ]
        .into();
        let (env, policy) = (Default::default(), crate::desired::Policy::default());
        let d = crate::desired::load_with(
            "p",
            "r",
            &files,
            &crate::desired::load_options(&policy, &env, &[], &data, &Default::default()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let web = &d.containers["web"].spec.env;
        assert_eq!((web["A"].as_str(), web["B"].as_str(), web["C"].as_str()), ("common", "from-compose", "web"));
        let none = Default::default();
        let e = crate::desired::load_with(
            "p",
            "r",
            &files,
            &crate::desired::load_options(&policy, &env, &[], &none, &Default::default()),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("app/compose.yaml:4:16: env_file `common.env` is not in this revision"), "{e}");
        assert!(!e.contains("`../local.env`"), "not required: {e}");
    }

    #[test]
    fn configs_are_files_of_the_repository_or_the_host_or_declared_text() {
        use crate::desired::Mount;
        let text = "configs:\n  nginx: {file: ./nginx.conf}\n  motd: {content: \"hello\"}\n  host: {file: /srv/conf/app.ini}\nservices:\n  web:\n    image: nginx:1\n    configs: [nginx, {source: motd, target: /etc/motd}, {source: host, target: app.ini}]\n";
        let d = load_compose(text).unwrap_or_else(|e| panic!("{e}"));
        let v = &d.containers["web"].spec.volumes;
        let repo = |path: &str, target: &str, content: Option<&str>| Mount::Repo {
            path: path.into(),
            target: target.into(),
            read_only: true,
            digest: None,
            content: content.map(String::from),
            access: None,
            data_folder: None,
        };
        assert!(v.contains(&repo("nginx.conf", "/nginx", None)), "{v:?}");
        assert!(v.contains(&repo("motd", "/etc/motd", Some("hello"))), "{v:?}");
        assert!(
            v.contains(&Mount::Bind { source: "/srv/conf/app.ini".into(), target: "/app.ini".into(), read_only: true }),
            "{v:?}"
        );
        let e = load_compose(
            "configs:\n  c: {file: /etc/shadow}\nservices:\n  web:\n    image: nginx:1\n    configs: [c]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("bind mount `/etc/shadow` is outside the allowed roots"), "{e}");
    }

    #[test]
    fn build_options_of_the_engines_builder_are_taken_and_buildkits_refused_with_why() {
        let text = r#"
services:
  web:
    build:
      context: .
      dockerfile_inline: "FROM busybox\nRUN true\n"
      labels: {org.example.team: web}
      extra_hosts: ["mirror:10.0.0.5"]
      shm_size: 128m
      network: none
      platforms: [linux/amd64]
      cache_from: [reg/web:cache]
      no_cache: true
      pull: true
"#;
        let d = load("shop", "r", &[ManifestFile { path: "compose.yaml".into(), text: text.into() }])
            .unwrap_or_else(|e| panic!("{e}"));
        let b = d.images["shop-web"].spec.build.clone().unwrap();
        assert_eq!(b.dockerfile_inline.as_deref(), Some("FROM busybox\nRUN true\n"));
        assert_eq!(b.labels["org.example.team"], "web");
        assert_eq!(b.extra_hosts, ["mirror:10.0.0.5"]);
        assert_eq!((b.shm_size.map(|s| s.0), b.network.as_deref()), (Some(128 << 20), Some("none")));
        assert_eq!(
            (b.platform.as_deref(), b.cache_from.as_slice()),
            (Some("linux/amd64"), &["reg/web:cache".to_string()][..])
        );
        assert!(b.no_cache && b.pull);
        assert!(b.options_view().contains_key("labels"), "a label is part of what makes the image");
        // A build on the host's network is the host policy's to allow, as a container's is.
        let host = text.replace("network: none", "network: host");
        let e = load("shop", "r", &[ManifestFile { path: "compose.yaml".into(), text: host }]).unwrap_err().to_string();
        assert!(
            e.contains(
                "a build on the host's network (`network: host`) is refused by the host policy (allowHostNetwork)"
            ),
            "{e}"
        );
        let e = load(
            "shop",
            "r",
            &[ManifestFile {
                path: "compose.yaml".into(),
                text: "services:\n  web:\n    build: {context: ., secrets: [npm], platforms: [linux/amd64, linux/arm64], tags: [reg/web:2]}\n".into(),
            }],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("compose key `build.secrets` is not supported by hawser: build secrets need BuildKit"),
            "{e}"
        );
        assert!(e.contains("build.platforms: a multi-platform build needs BuildKit"), "{e}");
        assert!(
            e.contains(
                "compose key `build.tags` is not supported by hawser: hawser tags a built image by its context's hash"
            ),
            "{e}"
        );
    }

    #[test]
    fn build_becomes_an_image_built_from_the_repository() {
        let d = load(
            "shop",
            "r",
            &[ManifestFile {
                path: "deploy/compose.yaml".into(),
                text: r#"
services:
  web:
    build: ../web
  api:
    build: {context: .., dockerfile: api.Dockerfile, args: [VERSION=2], target: prod}
    image: reg/api:1
  worker:
    image: reg/api:1
    command: work
"#
                .into(),
            }],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let web = &d.images["shop-web"].spec;
        assert_eq!(web.build.as_ref().unwrap().context, "web");
        assert_eq!(d.containers["web"].spec.image, "shop-web");
        let api = &d.images["reg/api:1"].spec;
        let b = api.build.as_ref().unwrap();
        assert_eq!(
            (b.context.as_str(), b.dockerfile.as_deref(), b.target.as_deref()),
            (".", Some("api.Dockerfile"), Some("prod"))
        );
        assert_eq!(b.args["VERSION"], "2");
        assert_eq!(d.containers["worker"].spec.image, "reg/api:1", "another service runs that build by its name");

        let e = load(
            "shop",
            "r",
            &[ManifestFile {
                path: "compose.yaml".into(),
                text: "services:\n  a:\n    build: ../outside\n  b:\n    build: {context: ., cache_to: [x], dockerfle: D}\n".into(),
            }],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("compose.yaml:3:12: build context `../outside` must be a folder inside the repository"),
            "{e}"
        );
        assert!(e.contains("compose.yaml:5:25: compose key `build.cache_to` is not supported by hawser: exporting a build cache needs BuildKit"), "{e}");
        assert!(e.contains("unknown compose key `dockerfle` in build; did you mean `dockerfile`?"), "{e}");
    }

    /// Regressions: compose's lowercase capability and a bind volume's `device` both passed the
    /// host policy. The policy is one pass over the model, so compose gets it too.
    #[test]
    fn the_rest_of_the_service_keys_reach_the_model() {
        let d = load_compose(
            r#"
services:
  db:
    image: postgres:16
    shm_size: 128m
  app:
    image: shop/app:1
    pull_policy: always
    expose: ["3000", "9000-9001/udp", 8080]
    platform: linux/arm64
    runtime: crun
    sysctls: {net.core.somaxconn: "1024"}
    security_opt: ["no-new-privileges:true", "apparmor=docker-default"]
    ipc: service:db
    group_add: [audio, 1001]
    mem_reservation: 64m
    oom_score_adj: -200
    domainname: shop.internal
    links: ["db:database"]
    networks:
      back: {ipv4_address: 172.28.0.10, aliases: [api]}
    deploy:
      resources:
        reservations: {memory: 32m, cpus: "0.5"}
networks:
  back:
    ipam: {config: [{subnet: 172.28.0.0/16}]}
"#,
        )
        .unwrap();
        let app = &d.containers["app"].spec;
        let shown = |v: &[crate::desired::types::ContainerPort]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(shown(&app.expose), ["3000/tcp", "8080/tcp", "9000/udp", "9001/udp"]);
        assert_eq!(app.platform.as_deref(), Some("linux/arm64"));
        assert_eq!(app.runtime.as_deref(), Some("crun"));
        assert_eq!(app.sysctls["net.core.somaxconn"], "1024");
        assert_eq!(app.security_opt.len(), 2);
        assert_eq!(app.ipc.as_deref(), Some("container:db"));
        assert_eq!(app.group_add, ["audio", "1001"]);
        let r = app.resources.as_ref().unwrap();
        assert_eq!(r.memory_reservation.unwrap().0, 64 << 20, "the service's key wins over deploy's");
        assert_eq!(app.oom_score_adj, Some(-200));
        assert_eq!(app.domainname.as_deref(), Some("shop.internal"));
        assert_eq!(app.links, ["db:database"]);
        assert_eq!(app.depends_on.get("db"), Some(&DependCondition::Started), "a link starts its target first");
        assert_eq!(app.networks["back"].ipv4_address, Some("172.28.0.10".parse().unwrap()));
        assert_eq!(d.images["shop/app:1"].spec.pull, crate::desired::PullPolicy::Always);
        assert!(
            d.warnings.iter().any(|w| w.to_string().contains("reservations.cpus has no effect")),
            "{:?}",
            d.warnings
        );
        let e = load_compose(
            r#"
services:
  app:
    image: shop/app:1
    pull_policy: daily
    sysctls: [kernel.panic=1]
    devices: [/dev/ttyUSB0]
    security_opt: [seccomp=unconfined]
    pid: host
    ipc: host
    oom_score_adj: -2000
    platform: arm64
    expose: ["0"]
"#,
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "compose.yaml:5:18: pull_policy `daily` is not supported",
            "compose.yaml:6:14: sysctl `kernel.panic` is the host's",
            "compose.yaml:7:15: device `/dev/ttyUSB0` of the host is refused by the host policy (allowDevices)",
            "compose.yaml:8:19: security option `seccomp=unconfined` weakens",
            "compose.yaml:9:10: `pid: host` shares the host's processes",
            "compose.yaml:10:10: `ipc: host` shares the host's IPC",
            "compose.yaml:11:20: oom_score_adj must be between -1000 and 1000",
            "compose.yaml:12:15: invalid platform `arm64`",
            "compose.yaml:13:14: expose: invalid port `0`",
        ] {
            assert!(e.contains(expected), "missing {expected}:\n{e}");
        }
    }

    fn load_files(
        files: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Result<crate::desired::DesiredState, crate::desired::Diagnostics> {
        let files: Vec<ManifestFile> =
            files.iter().map(|(p, t)| ManifestFile { path: p.to_string(), text: t.to_string() }).collect();
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let data = files.iter().map(|f| (f.path.clone(), f.text.clone())).collect();
        let policy = crate::desired::Policy::default();
        let filter = crate::desired::ManifestFilter::default();
        crate::desired::load_with(
            "shop",
            "r",
            &files,
            &crate::desired::load_options(&policy, &env, &[], &data, &filter),
        )
    }

    #[test]
    fn extends_merges_a_base_service_of_this_file_or_another() {
        let d = load_files(
            &[
                (
                    "compose.yaml",
                    r#"
services:
  base:
    image: shop/app:1
    environment: [MODE=base, KEEP=1]
    ports: ["80"]
    volumes: [./conf:/etc/app, data:/data]
  web:
    extends: base
    environment: {MODE: web}
    ports: ["8443:443"]
    volumes: [./web-conf:/etc/app]
    command: serve
  worker:
    extends: {file: common/services.yml, service: job}
    environment: [QUEUE=fast]
volumes:
  data: {}
"#,
                ),
                (
                    "common/services.yml",
                    "services:\n  job:\n    image: shop/job:${TAG:-2}\n    env_file: job.env\n    volumes: [./scripts:/scripts]\n    command: [run, \"--all\"]\n",
                ),
                ("common/job.env", "QUEUE=slow\nRETRIES=3\n"),
            ],
            &[],
        )
        .unwrap();
        let web = &d.containers["web"].spec;
        assert_eq!(web.image, "shop/app:1");
        assert_eq!(web.env["MODE"], "web");
        assert_eq!(web.env["KEEP"], "1");
        assert_eq!(web.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["80/tcp", "8443:443/tcp"]);
        let sources: Vec<String> = web
            .volumes
            .iter()
            .map(|m| match m {
                Mount::Repo { path, target, .. } => format!("{path}:{target}"),
                Mount::Volume { source, target, .. } => format!("{source}:{target}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(sources, ["data:/data", "web-conf:/etc/app"], "a mount at the same path is replaced");
        assert_eq!(web.command.as_deref(), Some(&["serve".to_string()][..]));
        let worker = &d.containers["worker"].spec;
        assert_eq!(worker.image, "shop/job:2", "the other file is interpolated too");
        assert_eq!(worker.env["QUEUE"], "fast");
        assert_eq!(worker.env["RETRIES"], "3", "its env_file is read from its own folder");
        assert!(
            matches!(&worker.volumes[0], Mount::Repo { path, .. } if path == "common/scripts"),
            "its paths are its folder's: {:?}",
            worker.volumes
        );
        let e = load_files(
            &[(
                "compose.yaml",
                "services:\n  a:\n    extends: b\n  b:\n    extends: a\n  c:\n    extends: nothing\n  d:\n    extends: {file: gone.yml, service: x}\n",
            )],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("goes round in a circle"), "{e}");
        assert!(e.contains("compose.yaml:7:14: service `c` extends `nothing`, which this file does not define"), "{e}");
        assert!(e.contains("compose.yaml:9:14: extends.file `gone.yml` is not in this revision"), "{e}");
    }

    #[test]
    fn include_brings_another_files_services_into_the_project() {
        let d = load_files(
            &[
                (
                    "compose.yaml",
                    "include:\n  - db/infra.yaml\nservices:\n  app:\n    image: shop/app:1\n    depends_on: [db]\n",
                ),
                (
                    "db/infra.yaml",
                    "services:\n  db:\n    image: postgres:${PG:-15}\n    volumes: [./init.sql:/docker-entrypoint-initdb.d/init.sql]\n",
                ),
                ("db/.env", "PG=16\n"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(d.containers["db"].spec.image, "postgres:16", "the included file reads the .env beside it");
        assert!(matches!(&d.containers["db"].spec.volumes[0], Mount::Repo { path, .. } if path == "db/init.sql"));
        assert!(d.containers["app"].spec.networks.contains_key("shop-default"));
        assert!(d.containers["db"].spec.networks.contains_key("shop-default"), "one default network for both");
        let e = load_files(
            &[(
                "compose.yaml",
                "include:\n  - missing.yaml\n  - {path: x.yaml, project_directory: ..}\nservices: {}\n",
            )],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("include `missing.yaml` is not in this revision"), "{e}");
        assert!(e.contains("compose.yaml:3:20: `project_directory` in include is not supported"), "{e}");
        assert!(e.contains("compose.yaml:3:12: include `x.yaml` is not in this revision"), "{e}");
    }

    #[test]
    fn a_home_folder_is_the_processs_then_the_policy_decides() {
        let compose = "services:\n  web:\n    image: nginx:1\n    volumes: [\"~/site:/usr/share/nginx/html:ro\"]\n";
        let d = load_files(&[("compose.yaml", compose)], &[("HOME", "/srv/deploy")]).unwrap();
        assert!(
            matches!(&d.containers["web"].spec.volumes[0], Mount::Bind { source, read_only: true, .. } if source == "/srv/deploy/site")
        );
        let e = load_files(&[("compose.yaml", compose)], &[("HOME", "/root")]).unwrap_err().to_string();
        assert!(e.contains("bind mount `/root/site` is outside the allowed roots"), "{e}");
    }

    #[test]
    fn the_host_policy_holds_for_compose_as_for_manifests() {
        let e = load_compose(
            r#"
services:
  web:
    image: nginx:1
    cap_add: [chown, cap_sys_admin]
    network_mode: host
    volumes: ["hostetc:/host"]
volumes:
  hostetc:
    driver_opts: {type: none, o: bind, device: /etc}
networks:
  lan:
    driver: macvlan
    driver_opts: {parent: eth0}
"#,
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "compose.yaml:5:22: capability `SYS_ADMIN` is refused by the host policy",
            "compose.yaml:6:19: `networkMode: host` is refused by the host policy",
            "compose.yaml:10:48: volume device: bind mount `/etc` is outside the allowed roots",
            "compose.yaml:13:13: network driver `macvlan` attaches containers to the host's interfaces",
            "compose.yaml:14:27: network option `parent: eth0` names a host interface",
        ] {
            assert!(e.contains(expected), "missing {expected}:\n{e}");
        }
        assert!(!e.contains("CHOWN"), "{e}");
    }

    #[test]
    fn services_volumes_and_networks_map_onto_the_model() {
        let d = load_compose(
            r#"
services:
  web:
    image: nginx:1
    command: nginx -g "daemon off;"
    ports: ["80:80", {target: 443, published: "8443", host_ip: 127.0.0.1}]
    environment: {A: "1"}
    depends_on: {db: {condition: service_healthy}}
    restart: unless-stopped
    mem_limit: 512m
    logging: {driver: json-file, options: {max-size: 10m, max-file: "3"}}
    shm_size: 256m
    ulimits: {nofile: {soft: 20000, hard: 40000}}
    dns: 10.0.0.2
  db:
    image: postgres:16
    container_name: shop-db
    volumes: ["pgdata:/var/lib/postgresql/data", "/srv/init:/docker-entrypoint-initdb.d:ro"]
    healthcheck: {test: pg_isready, interval: 5s, retries: 5}
volumes:
  pgdata: {}
"#,
        )
        .unwrap_or_else(|d| panic!("{d}"));
        let web = &d.containers["web"].spec;
        assert_eq!(web.command.as_deref(), Some(&["nginx".to_string(), "-g".into(), "daemon off;".into()][..]));
        assert_eq!(
            web.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            ["80:80/tcp", "127.0.0.1:8443:443/tcp"]
        );
        assert_eq!(web.depends_on["shop-db"], DependCondition::Healthy);
        assert_eq!(web.resources.as_ref().unwrap().memory.unwrap().0, 512 << 20);
        let logging = web.logging.as_ref().unwrap();
        assert_eq!((logging.driver.as_deref(), logging.options["max-size"].as_str()), (Some("json-file"), "10m"));
        assert_eq!(web.shm_size.unwrap().0, 256 << 20);
        assert_eq!(web.ulimits["nofile"], crate::desired::model::Ulimit { soft: 20000, hard: 40000 });
        assert_eq!(web.dns, ["10.0.0.2".parse::<std::net::IpAddr>().unwrap()]);
        assert!(web.networks.contains_key("shop-default"), "services without networks join the default network");
        assert!(d.networks.contains_key("shop-default"));
        let db = &d.containers["shop-db"].spec;
        assert_eq!(db.healthcheck.as_ref().unwrap().test, ["CMD-SHELL", "pg_isready"]);
        assert_eq!(db.networks["shop-default"].aliases, ["db"], "the service's name stays in DNS");
        assert!(web.networks["shop-default"].aliases.is_empty(), "named after its service already");
        assert!(d.volumes.contains_key("pgdata"));
    }

    #[test]
    fn the_seeds_typos_and_unsupported_keys_are_reported_not_dropped() {
        let e = load_compose(
            r#"
services:
  web:
    image: nginx:latest
    enviorment:
      - var_name=value
    constainer-name: my-py-app
    mac_address: 02:42:ac:11:65:43
    volumes:
      - ~/html:/usr/share/nginx/html
develop: {}
"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "compose.yaml:5:5: unknown compose key `enviorment` in service `web`; did you mean `environment`?"
            ),
            "{e}"
        );
        assert!(e.contains("compose.yaml:7:5: unknown compose key `constainer-name` in service `web`; did you mean `container_name`?"), "{e}");
        assert!(
            e.contains("compose.yaml:8:5: compose key `mac_address` in service `web` is not supported by hawser"),
            "{e}"
        );
        assert!(e.contains("compose.yaml:10:9: bind mount `~/html`: `~` needs HOME"), "{e}");
        assert!(
            e.contains("compose.yaml:11:1: compose key `develop` in a compose file is not supported by hawser"),
            "{e}"
        );
    }
}

mod profiles {
    use crate::desired::{load_options, load_with, ManifestFile, Policy};
    use std::collections::BTreeMap;

    fn load(text: &str, profiles: &[String]) -> Result<crate::desired::DesiredState, String> {
        let policy = Policy::default();
        let (env, data, filter) = (BTreeMap::new(), BTreeMap::new(), Default::default());
        let opts = load_options(&policy, &env, profiles, &data, &filter);
        load_with("shop", "r", &[ManifestFile { path: "compose.yaml".into(), text: text.into() }], &opts)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_undefined_service_is_named_in_composes_words_with_a_suggestion() {
        let text = "services:\n  web:\n    image: nginx:1\n    depends_on: [bar]\n    networks: [front]\n  baz:\n    image: busybox\nnetworks:\n  fronts: {}\n  provider: {}\n";
        let e = load(text, &[]).unwrap_err();
        assert!(
            e.contains("compose.yaml:4:18: service `bar` is not defined in this compose project; did you mean `baz`?"),
            "{e}"
        );
        assert!(e.contains("network `front` is not defined in this compose project"), "{e}");
        let e = load("services:\n  ai:\n    provider: {type: model}\nmodels:\n  llm: {model: ai/smollm2}\n", &[])
            .unwrap_err();
        assert!(
            e.contains("compose key `provider` in service `ai` is not supported by hawser: a provider service"),
            "{e}"
        );
        assert!(
            e.contains(
                "compose key `models` in a compose file is not supported by hawser: models run on Docker Model Runner"
            ),
            "{e}"
        );
    }

    #[test]
    fn volumes_from_names_the_other_services_container() {
        let text = "services:\n  app:\n    image: busybox\n    volumes_from: [\"db:ro\", data]\n  db:\n    image: postgres\n    container_name: shop-db\n  data:\n    image: busybox\n";
        let d = load(text, &[]).unwrap_or_else(|e| panic!("{e}"));
        let app = &d.containers["app"].spec;
        assert_eq!(app.volumes_from, ["shop-db:ro", "data"]);
        assert!(app.needs("shop-db") && app.needs("data"), "made after them, and again when they are");
        let e = load(&text.replace("data]", "nope]"), &[]).unwrap_err();
        assert!(e.contains("service `nope` is not defined in this compose project"), "{e}");
    }

    #[test]
    fn an_override_file_beside_its_compose_file_is_an_error_not_nothing() {
        let files = |names: &[&str]| -> Vec<ManifestFile> {
            names
                .iter()
                .map(|n| ManifestFile { path: n.to_string(), text: "services:\n  web:\n    image: nginx:1\n".into() })
                .collect()
        };
        let policy = Policy::default();
        let (env, data, filter) = (BTreeMap::new(), BTreeMap::new(), Default::default());
        let opts = load_options(&policy, &env, &[], &data, &filter);
        let e = load_with("shop", "r", &files(&["app/docker-compose.yml", "app/docker-compose.override.yml"]), &opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "app/docker-compose.override.yml:1:1: docker compose merges this file into `app/docker-compose.yml`"
            ),
            "{e}"
        );
        // Without its compose file beside it, it is nobody's override (data, as before).
        assert!(load_with("shop", "r", &files(&["app/compose.yaml", "other/compose.override.yaml"]), &opts).is_ok());
    }

    #[test]
    fn an_empty_name_is_said_to_be_empty() {
        let e = load("services:\n  web:\n    image: nginx\n    depends_on: [\"\"]\n    networks: [\"\"]\n", &[])
            .unwrap_err();
        assert!(e.contains("compose.yaml:4:18: a service is named here with an empty name"), "{e}");
        assert!(e.contains("compose.yaml:5:16: a network is named here with an empty name"), "{e}");
        assert!(!e.contains("``"), "{e}");
    }

    #[test]
    fn lifecycle_hooks_are_the_containers() {
        let text = "services:\n  db:\n    image: postgres\n    post_start: [{command: \"chown -R 999 /data\", user: root}]\n    pre_stop: [{command: [pg_ctl, stop], environment: {MODE: fast}, working_dir: /srv}]\n";
        let d = load(text, &[]).unwrap_or_else(|e| panic!("{e}"));
        let db = &d.containers["db"].spec;
        assert_eq!(db.post_start[0].command, ["chown", "-R", "999", "/data"]);
        assert_eq!(db.post_start[0].user.as_deref(), Some("root"));
        assert_eq!(
            (db.pre_stop[0].env["MODE"].as_str(), db.pre_stop[0].working_dir.as_deref()),
            ("fast", Some("/srv"))
        );
        let e = load(&text.replace("user: root", "privileged: true"), &[]).unwrap_err();
        assert!(e.contains("privileged lifecycle hook is refused by the host policy (allowPrivileged)"), "{e}");
    }

    #[test]
    fn a_dependency_that_is_not_required_may_be_left_out_by_its_profile() {
        let text = "services:\n  web:\n    image: nginx:1\n    depends_on: {debug: {condition: service_started, required: false}}\n  debug:\n    image: busybox\n    profiles: [debug]\n";
        let d = load(text, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(d.containers["web"].spec.depends_on.is_empty());
        let d = load(text, &["debug".to_string()]).unwrap_or_else(|e| panic!("{e}"));
        assert!(d.containers["web"].spec.depends_on.contains_key("debug"), "with its profile on, it is waited for");
        // Required (the default): still an error, at the entry.
        let e = load(&text.replace(", required: false", ""), &[]).unwrap_err();
        assert!(e.contains("compose.yaml:4:18:"), "{e}");
    }
}

mod variables_policy {
    use crate::desired::{load_options, load_with, ManifestFile, ManifestFilter, Policy};
    use std::collections::BTreeMap;

    /// Regression: a repository could read any variable of hawser's environment (a CI runner's
    /// token) into a container it controls; the host policy now says which it may read.
    #[test]
    fn the_host_policy_says_which_variables_of_the_environment_compose_may_read() {
        let compose = "secrets:\n  t: {environment: RUNNER_TOKEN}\nservices:\n  app:\n    image: \"shop/app:${TAG:-1}\"\n    environment: [\"LEAK=${RUNNER_TOKEN:-none}\", RUNNER_TOKEN]\n";
        let env: BTreeMap<String, String> = [("TAG", "7"), ("RUNNER_TOKEN", "ghs_secret")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (data, filter) = (BTreeMap::new(), ManifestFilter::default());
        let load = |policy: &Policy, text: &str| {
            let files = [ManifestFile { path: "compose.yaml".into(), text: text.into() }];
            load_with("shop", "r", &files, &load_options(policy, &env, &[], &data, &filter))
        };
        let strict = Policy { allow_variables: vec!["TAG".into(), "APP_*".into()], ..Policy::default() };
        let e = load(&strict, compose).unwrap_err().to_string();
        assert!(
            e.contains("compose.yaml:2:3: secret `t`: variable `RUNNER_TOKEN` of hawser's environment is refused by the host policy (allowVariables)"),
            "{e}"
        );
        let without_secret = "services:\n  app:\n    image: \"shop/app:${TAG:-1}\"\n    environment: [\"LEAK=${RUNNER_TOKEN:-none}\", RUNNER_TOKEN]\n";
        let d = load(&strict, without_secret).unwrap();
        let app = &d.containers["app"].spec;
        assert_eq!(app.image, "shop/app:7", "an allowed variable is read");
        assert_eq!(app.env["LEAK"], "none", "a refused one is as if unset");
        assert!(!app.env.contains_key("RUNNER_TOKEN"), "{:?}", app.env);
        // The default reads them all, as compose does.
        let d = load(&Policy::default(), without_secret).unwrap();
        assert_eq!(d.containers["app"].spec.env["LEAK"], "ghs_secret");
    }
}
