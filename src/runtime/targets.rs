//! The one place a target becomes a [`Deployment`]: the command line, the service and the
//! dashboard all open theirs here. A new target is a folder under `runtime/` and a line in
//! [`Targets::open`].

use super::deployment::Deployment;
use super::docker::DockerEngine;
use super::host::HostEngine;
use super::native::NativeEngine;
use super::swarm::SwarmEngine;
use super::{EngineError, Result};
use crate::desired::{HostLimits, Target};
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::task::JoinHandle;

/// The targets of one host (`--host`, the state directory), opened as they are asked for; the
/// connections made are kept for the next.
pub struct Targets {
    host: String,
    state_dir: PathBuf,
    docker: tokio::sync::OnceCell<DockerEngine>,
    connecting: Mutex<Option<JoinHandle<Result<DockerEngine>>>>,
    swarm: std::sync::OnceLock<SwarmEngine>,
}

impl Targets {
    pub fn new(host: &str, state_dir: &std::path::Path) -> Targets {
        Targets {
            host: host.to_string(),
            state_dir: state_dir.to_path_buf(),
            docker: Default::default(),
            connecting: Mutex::new(None),
            swarm: Default::default(),
        }
    }

    /// With a connection to the Docker engine at `host` made already.
    pub fn with_docker(self, engine: Option<DockerEngine>) -> Targets {
        if let Some(e) = engine {
            let _ = self.docker.set(e);
        }
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Begins what opening `target` will wait on (connecting to the engine) in the background:
    /// begun before the source is read, the two overlap instead of adding up.
    pub fn prepare(&self, target: Target) {
        if target != Target::Docker || self.docker.initialized() {
            return;
        }
        let mut connecting = self.connecting.lock().unwrap();
        if connecting.is_none() {
            let host = self.host.clone();
            *connecting = Some(tokio::spawn(async move { DockerEngine::connect(&host).await }));
        }
    }

    /// The deployment of a project whose target is `target`, within the host's `limits`.
    pub async fn open(&self, target: Target, limits: HostLimits) -> Result<Box<dyn Deployment>> {
        self.abort_unless(target);
        Ok(match target {
            Target::Docker => Box::new(HostEngine::Docker(self.docker().await?)),
            // Its engine is files and processes of this host: opened each time, at no cost.
            Target::Native => Box::new(HostEngine::Native(NativeEngine::open(&self.state_dir)?.with_limits(limits))),
            // No round trip here: planning asks whether it is a manager.
            Target::Swarm => Box::new(self.swarm()?),
        })
    }

    /// The targets in use on this host (for the metrics): the engine connected to, the native
    /// target once something ran on it, the swarm once a project was deployed to it.
    pub fn in_use(&self) -> Vec<Box<dyn Deployment>> {
        let mut all: Vec<Box<dyn Deployment>> = Vec::new();
        if let Some(e) = self.docker.get() {
            all.push(Box::new(HostEngine::Docker(e.clone())));
        }
        if self.state_dir.join("native").is_dir() {
            if let Ok(n) = NativeEngine::open(&self.state_dir) {
                all.push(Box::new(HostEngine::Native(n)));
            }
        }
        if let Some(s) = self.swarm.get() {
            all.push(Box::new(s.clone()));
        }
        all
    }

    /// A connection begun for another target than the one opened is not waited for.
    fn abort_unless(&self, target: Target) {
        if target != Target::Docker {
            if let Some(c) = self.connecting.lock().unwrap().take() {
                c.abort();
            }
        }
    }

    async fn docker(&self) -> Result<DockerEngine> {
        let begun = self.connecting.lock().unwrap().take();
        let engine = self
            .docker
            .get_or_try_init(|| async {
                match begun {
                    Some(c) => c.await.map_err(|e| EngineError {
                        op: format!("connect to {}", self.host),
                        kind: super::ErrorKind::Unavailable,
                        message: e.to_string(),
                    })?,
                    None => DockerEngine::connect(&self.host).await,
                }
            })
            .await?;
        Ok(engine.clone())
    }

    fn swarm(&self) -> Result<SwarmEngine> {
        if let Some(s) = self.swarm.get() {
            return Ok(s.clone());
        }
        let s = SwarmEngine::at(&self.host)?;
        Ok(self.swarm.get_or_init(|| s).clone())
    }
}
