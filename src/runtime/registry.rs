//! Registry access through oci-client: resolves the tag of a `pull: always` Image to the
//! manifest digest it names now, without pulling, so a moved tag shows in the plan as a change
//! of the container's image (old digest to new) and the container runs exactly the digest that
//! was planned. Credentials come from the docker CLI's config; loopback registries are spoken
//! to over plain HTTP, as docker does.

use crate::desired::{DesiredState, PullPolicy};
use crate::observed::repository;
use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::time::Duration;

const RESOLVE_TIMEOUT: Duration = Duration::from_secs(15);

pub fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// The registry a reference names (`docker.io` when it names none), by docker's rule: the
/// first path component is a registry when it has a `.` or a `:`, or is `localhost`. (Not
/// through oci-client's parser: its reference grammar costs tens of milliseconds to compile,
/// a no-op's whole budget.)
pub fn registry_of(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => "docker.io".into(),
    }
}

/// Credentials for `registry` from `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
pub fn auth_for(registry: &str) -> RegistryAuth {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker")));
    let Some(text) = dir.and_then(|d| std::fs::read_to_string(d.join("config.json")).ok()) else {
        return RegistryAuth::Anonymous;
    };
    let Ok(cfg) = serde_json::from_str::<serde_json::Value>(&text) else { return RegistryAuth::Anonymous };
    let auths = cfg.get("auths").and_then(|a| a.as_object());
    let entry = auths.and_then(|a| {
        a.iter().find(|(k, _)| {
            k.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/') == registry
        })
    });
    let encoded = entry.and_then(|(_, v)| v.get("auth")).and_then(|a| a.as_str());
    let decoded = encoded.and_then(|e| base64::engine::general_purpose::STANDARD.decode(e).ok());
    match decoded
        .and_then(|d| String::from_utf8(d).ok())
        .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
    {
        Some((user, pass)) => RegistryAuth::Basic(user, pass),
        None => RegistryAuth::Anonymous,
    }
}

/// Pins every `pull: always` Image (without `build`) to the digest its tag names now. An Image
/// whose registry can't be asked keeps its tag and is listed in `d.unresolved` with the reason.
pub async fn resolve_digests(d: &mut DesiredState) {
    let names: Vec<String> = d
        .images
        .iter()
        .filter(|(_, i)| i.spec.pull == PullPolicy::Always && i.spec.build.is_none() && !i.spec.reference.contains('@'))
        .map(|(n, _)| n.clone())
        .collect();
    for name in names {
        let old = d.images[&name].spec.reference.clone();
        match resolve(&old).await {
            Ok(digest) => {
                let pinned = format!("{}@{digest}", repository(&old));
                for c in d.containers.values_mut() {
                    if c.spec.image == old {
                        c.spec.image = pinned.clone();
                        d.declared_images.insert(c.name.clone(), old.clone());
                    }
                }
                d.images.get_mut(&name).expect("present").spec.reference = pinned;
            }
            Err(e) => {
                tracing::warn!(image = %old, error = %e, "cannot resolve the digest");
                d.unresolved.insert(name, e.to_string());
            }
        }
    }
}

/// Why a tag's digest is unknown.
#[derive(Debug, thiserror::Error)]
enum ResolveError {
    #[error("invalid reference `{reference}`: {source}")]
    Reference { reference: String, source: oci_client::ParseError },
    #[error("registry {registry}: {source}")]
    Registry { registry: String, source: oci_client::errors::OciDistributionError },
    #[error("registry {registry}: no answer within {}s", RESOLVE_TIMEOUT.as_secs())]
    Timeout { registry: String },
}

async fn resolve(reference: &str) -> Result<String, ResolveError> {
    let r: Reference =
        reference.parse().map_err(|source| ResolveError::Reference { reference: reference.to_string(), source })?;
    let registry = r.resolve_registry().to_string();
    let protocol = if is_loopback(&registry) {
        ClientProtocol::HttpsExcept(vec![registry.clone()])
    } else {
        ClientProtocol::Https
    };
    crate::tls::init();
    let client = Client::new(ClientConfig { protocol, ..Default::default() });
    let auth = auth_for(&registry);
    match tokio::time::timeout(RESOLVE_TIMEOUT, client.fetch_manifest_digest(&r, &auth)).await {
        Ok(Ok(digest)) => Ok(digest),
        Ok(Err(source)) => Err(ResolveError::Registry { registry, source }),
        Err(_) => Err(ResolveError::Timeout { registry }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_and_loopback() {
        assert_eq!(repository("127.0.0.1:5000/busybox:latest"), "127.0.0.1:5000/busybox");
        assert_eq!(repository("127.0.0.1:5000/busybox"), "127.0.0.1:5000/busybox");
        assert_eq!(repository("reg/app:1@sha256:abc"), "reg/app");
        assert!(is_loopback("127.0.0.1:5000") && is_loopback("localhost:5000") && !is_loopback("ghcr.io"));
        assert_eq!(registry_of("127.0.0.1:5000/busybox:latest"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/org/app@sha256:ab"), "ghcr.io");
        assert_eq!(registry_of("library/busybox"), "docker.io");
        assert_eq!(registry_of("busybox:1"), "docker.io");
    }
}
