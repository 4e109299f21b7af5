//! What goes wrong in the native target's own machinery, by kind; the engine interface turns it
//! into an `EngineError` with the call it failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// A file or folder of the target's state, or of a container's bundle.
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A program the target runs (the OCI runtime, a CNI plugin, `ip`) could not be started,
    /// or failed, with what it said.
    #[error("{program}: {message}")]
    Program { program: String, message: String },
    /// A system call (a mount).
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error(transparent)]
    Spec(#[from] super::spec::SpecError),
    #[error("filling volume {name} from the image: {source}")]
    FillVolume { name: String, source: std::io::Error },
    #[error("network {0} does not exist")]
    NoNetwork(String),
    /// No OCI runtime on this host, and what to install.
    #[error("{0}")]
    NoRuntime(&'static str),
}

/// An `Io` error of `path`, for `map_err`.
pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> NativeError {
    let path = path.into();
    move |source| NativeError::Io { path, source }
}
