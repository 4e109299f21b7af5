//! How a compose service's `volumes`, `secrets` and `configs` become mounts: named volumes,
//! host paths, files of the repository (snapshots), data folders, anonymous volumes, tmpfs,
//! and secrets and configs with their owner and mode.

use super::*;

/// A service's use of a secret or config: `NAME`, or `{source, target, uid, gid, mode}`.
fn usage(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<(String, Option<String>, Option<FileAccess>)> {
    match &n.value {
        Value::Str(name) => Some((name.clone(), None, None)),
        Value::Map(e) => {
            for (k, _) in e {
                if !matches!(k.name.as_str(), "source" | "target" | "uid" | "gid" | "mode") {
                    sink.error(k.pos, format!("unknown compose key `{}` in a service {what}", k.name));
                }
            }
            let Some(source) = field(e, "source").and_then(|v| string(v, "source", sink)) else {
                sink.error(n.pos, format!("a service {what} needs `source`"));
                return None;
            };
            let id = |key: &str, sink: &mut Sink<'_>| {
                let v = field(e, key)?;
                let text = lenient_string(v, key, sink)?;
                let id = text.parse::<u32>().ok();
                if id.is_none() {
                    sink.error(v.pos, format!("{what} {key} `{text}` must be a number"));
                }
                id
            };
            let (uid, gid) = (id("uid", sink), id("gid", sink));
            // Written in octal, as chmod takes it: `0440` (YAML reads it as the number 440).
            let mode = field(e, "mode").and_then(|v| {
                let text = lenient_string(v, "mode", sink)?;
                match text.parse::<crate::desired::types::FileMode>() {
                    Ok(m) => Some(m),
                    Err(err) => {
                        sink.error(v.pos, err);
                        None
                    }
                }
            });
            let access = (uid.is_some() || gid.is_some() || mode.is_some()).then_some(FileAccess { uid, gid, mode });
            Some((source, field(e, "target").and_then(|v| string(v, "target", sink)), access))
        }
        other => {
            sink.error(n.pos, format!("a service {what} must be a name or a map, found {}", other.type_name()));
            None
        }
    }
}

/// The top-level declaration a service's secret or config names, and where it is mounted: its
/// `target` (relative to `dir` unless absolute), else `dir/NAME`.
fn declared<'d, T>(
    n: &Node,
    decls: &'d BTreeMap<String, T>,
    what: &str,
    source: &str,
    target: Option<String>,
    dir: &str,
    sink: &mut Sink<'_>,
) -> Option<(&'d T, String)> {
    let Some(decl) = decls.get(source) else {
        sink.error(n.pos, format!("{what} `{source}` is not declared in the top-level `{what}s`"));
        return None;
    };
    let target = match target {
        Some(t) if t.starts_with('/') => t,
        Some(t) => format!("{dir}/{t}"),
        None => format!("{dir}/{source}"),
    };
    Some((decl, target))
}

/// A service's use of a secret, mounted read-only at `/run/secrets/NAME` (or its `target`): a
/// repository file through a snapshot like any relative bind, a host file directly (held to
/// the policy's `secretRoots`), or a variable of hawser's environment written to a file.
pub(super) fn secret_mount(n: &Node, names: &Names<'_>, sink: &mut Sink<'_>) -> Option<Mount> {
    let (source, target, access) = usage(n, "secret", sink)?;
    let (secret, target) = declared(n, names.secrets, "secret", &source, target, "/run/secrets", sink)?;
    let file = match secret {
        SecretSource::Environment(variable) => {
            return Some(Mount::EnvSecret { variable: variable.clone(), target, digest: None, access })
        }
        SecretSource::File(file) => file,
    };
    if file.starts_with('/') {
        if access.is_some() {
            sink.error(n.pos, format!("secret `{source}`: uid, gid and mode need the secret in the repository or in the environment; a host file is mounted as it is (set them on the file)"));
        }
        return Some(Mount::Secret { file: file.clone(), target, digest: None });
    }
    let base = sink.file.rsplit_once('/').map_or("", |(dir, _)| dir);
    match repository_path(base, file).filter(|_| !file.starts_with('~')) {
        Some(path) => {
            Some(Mount::Repo { path, target, read_only: true, digest: None, content: None, access, data_folder: None })
        }
        None => {
            sink.error(
                n.pos,
                format!("secret `{source}`: file `{file}` must be in the repository or an absolute host path"),
            );
            None
        }
    }
}

/// A service's use of a config (`NAME`, or `{source, target}`), mounted read-only at `/NAME`
/// (or its `target`): a repository file through a snapshot, a host file as a bind (held to
/// `bindRoots`), declared text as a snapshot of its own.
pub(super) fn config_mount(n: &Node, names: &Names<'_>, sink: &mut Sink<'_>) -> Option<Mount> {
    let (source, target, access) = usage(n, "config", sink)?;
    let (config, target) = declared(n, names.configs, "config", &source, target, "", sink)?;
    match config {
        ConfigSource::Content(text) => Some(Mount::Repo {
            path: source,
            target,
            read_only: true,
            digest: None,
            content: Some(text.clone()),
            access,
            data_folder: None,
        }),
        ConfigSource::File(file) if file.starts_with('/') => {
            if access.is_some() {
                sink.error(n.pos, format!("config `{source}`: uid, gid and mode need the file in the repository; a host file is mounted as it is"));
            }
            Some(Mount::Bind { source: file.clone(), target, read_only: true })
        }
        ConfigSource::File(file) => {
            let base = sink.file.rsplit_once('/').map_or("", |(dir, _)| dir);
            match repository_path(base, file).filter(|_| !file.starts_with('~')) {
                Some(path) => Some(Mount::Repo {
                    path,
                    target,
                    read_only: true,
                    digest: None,
                    content: None,
                    access,
                    data_folder: None,
                }),
                None => {
                    sink.error(
                        n.pos,
                        format!("config `{source}`: file `{file}` must be in the repository or an absolute host path"),
                    );
                    None
                }
            }
        }
    }
}

pub(super) fn mount(
    n: &Node,
    names: &Names<'_>,
    container: &str,
    refs: &mut Vec<(Kind, String, Pos)>,
    sink: &mut Sink<'_>,
) -> Option<Mount> {
    let relative = |src: &str, sink: &mut Sink<'_>| {
        sink.error(n.pos, format!("bind mount `{src}`: `~USER` is not supported (compose has only `~`, the home of who runs it); use an absolute host path"))
    };
    // Compose's own default is writable; a file of the repository is mounted read-only unless
    // the compose file asks for writes.
    let mut writable = false;
    let (ty, source, target, read_only, size) = match &n.value {
        Value::Map(_) => {
            let e = checked(
                n,
                &["type", "source", "target", "read_only", "tmpfs", "volume", "bind", "consistency"],
                "a volume",
                sink,
            )?;
            let ty = field(e, "type").and_then(|v| string(v, "type", sink)).unwrap_or_else(|| "volume".into());
            let source = field(e, "source").and_then(|v| string(v, "source", sink));
            let target = field(e, "target").and_then(|v| string(v, "target", sink));
            let read_only = field(e, "read_only").and_then(|v| boolean(v, "read_only", sink)).unwrap_or(false);
            writable = field(e, "read_only").is_some() && !read_only;
            let size = field(e, "tmpfs")
                .and_then(|t| checked(t, &["size", "mode"], "tmpfs", sink))
                .and_then(|t| field(t, "size"))
                .and_then(|v| docker_size(v, "tmpfs.size", sink));
            (ty, source, target?, read_only, size)
        }
        _ => {
            let s = string(n, "a volume", sink)?;
            let parts: Vec<&str> = s.split(':').collect();
            match parts.as_slice() {
                [t] => ("volume".to_string(), None, t.to_string(), false, None),
                [src, t] => (kind_of(src), Some(src.to_string()), t.to_string(), false, None),
                [src, t, mode] => {
                    let ro = mode.split(',').any(|m| m == "ro");
                    writable = mode.split(',').any(|m| m == "rw");
                    (kind_of(src), Some(src.to_string()), t.to_string(), ro, None)
                }
                _ => {
                    sink.error(n.pos, format!("invalid volume `{s}`"));
                    return None;
                }
            }
        }
    };
    if !target.starts_with('/') {
        sink.error(n.pos, format!("mount target `{target}` must be an absolute path in the container"));
        return None;
    }
    // `/data/` and `/data` are one place, as compose and the engine take them.
    let target = match target.trim_end_matches('/') {
        "" => "/".to_string(),
        t => t.to_string(),
    };
    match (ty.as_str(), source) {
        ("tmpfs", _) => Some(Mount::Tmpfs { target, size }),
        ("bind", Some(src)) if src.starts_with('/') => Some(Mount::Bind { source: src, target, read_only }),
        ("bind", Some(src)) if src.starts_with('~') => {
            // As compose: `~` is the home of whoever runs it; then the host policy decides.
            match (src.strip_prefix('~'), names.home) {
                (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
                    Some(Mount::Bind { source: format!("{}{rest}", home.trim_end_matches('/')), target, read_only })
                }
                (Some(rest), None) if rest.is_empty() || rest.starts_with('/') => {
                    sink.error(
                        n.pos,
                        format!("bind mount `{src}`: `~` needs HOME, which the hawser process does not have"),
                    );
                    None
                }
                _ => {
                    relative(&src, sink);
                    None
                }
            }
        }
        ("bind", Some(src)) => {
            let base = sink.file.rsplit_once('/').map_or("", |(dir, _)| dir);
            match repository_path(base, &src) {
                Some(path) => Some(Mount::Repo {
                    path,
                    target,
                    read_only: !writable,
                    digest: None,
                    content: None,
                    access: None,
                    data_folder: Some(read_only),
                }),
                None => {
                    sink.error(n.pos, format!("bind mount `{src}` leaves the repository"));
                    None
                }
            }
        }
        ("volume", Some(src)) => {
            let real = names.volumes.get(&src).cloned().unwrap_or(src);
            refs.push((Kind::Volume, real.clone(), n.pos));
            Some(Mount::Volume { source: real, target, read_only })
        }
        ("volume", None) => {
            // Compose keeps an anonymous volume's data when it recreates the container; here it
            // is a Volume named after the container and the path, kept the same way as any other.
            use sha2::Digest;
            let tag = hex::encode(&sha2::Sha256::digest(target.as_bytes())[..4]);
            let source = format!("{container}-anon-{tag}");
            refs.push((Kind::Volume, source.clone(), n.pos));
            Some(Mount::Volume { source, target, read_only })
        }
        (other, _) => {
            sink.error(n.pos, format!("volume type `{other}` is not supported: expected volume, bind or tmpfs"));
            None
        }
    }
}

fn kind_of(src: &str) -> String {
    if src.starts_with('/') || src.starts_with('.') || src.starts_with('~') {
        "bind".into()
    } else {
        "volume".into()
    }
}
