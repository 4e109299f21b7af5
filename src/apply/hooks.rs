//! A container's lifecycle hooks, run inside it around what the executor does to it: `postStart`
//! once it has started (one that fails fails the start, as compose's), `preStop` before it is
//! stopped (one that fails is logged; the container stops all the same).

use super::ActionError;
use crate::desired::ContainerSpec;
use crate::runtime::Engine;

/// Runs `spec`'s `postStart` hooks in container `id`, in order, each to its end.
pub(crate) async fn post_start<E: Engine>(engine: &E, spec: &ContainerSpec, id: &str) -> Result<(), ActionError> {
    for hook in &spec.post_start {
        let code = engine.exec(id, hook).await?;
        if code != 0 {
            return Err(ActionError::Hook { command: hook.command.join(" "), code });
        }
    }
    Ok(())
}

/// Runs `spec`'s `preStop` hooks in container `id` before it is stopped.
pub(crate) async fn pre_stop<E: Engine>(engine: &E, spec: &ContainerSpec, id: &str) {
    for hook in &spec.pre_stop {
        match engine.exec(id, hook).await {
            Ok(0) => {}
            Ok(code) => tracing::warn!(container = %id, code, "a preStop hook failed; stopping it all the same"),
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "a preStop hook did not run; stopping it all the same")
            }
        }
    }
}
