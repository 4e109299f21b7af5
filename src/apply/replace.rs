//! Immutable replacement (contract section 5), the one place its sequence is written down.
//!
//! Invariant: until the new container has passed its gate, the old one is either still serving
//! (start-first) or can be started again under its own name (stop-first). Every intermediate
//! state is recognizable from names and labels alone, so an interrupted run is resumed by the
//! next plan (`diff` adopts or removes leftovers).

use super::{create_request, gate, hooks, publish, ActionError};
use crate::desired::{DependCondition, DesiredState, Strategy};
use crate::failpoint;
use crate::labels::{candidate_name, retired_name};
use crate::runtime::Engine;

pub async fn replace<E: Engine>(
    engine: &E,
    desired: &DesiredState,
    name: &str,
    old_id: &str,
    strategy: Strategy,
) -> Result<String, ActionError> {
    let spec = &desired.containers[name].spec;
    let stop_timeout = spec.stop_timeout.map(|d| d.as_std());
    match strategy {
        Strategy::StartFirst => {
            // 1. The candidate runs beside the old container under a temporary name, answering to
            //    the resource name on its networks.
            let temp = candidate_name(name);
            let id = engine.create_container(&create_request(desired, name, &temp)).await?;
            failpoint::hit(failpoint::CANDIDATE_CREATED);
            let started = engine.start_container(&id).await;
            failpoint::hit(failpoint::CANDIDATE_STARTED);
            // 2. It must prove itself (its postStart hooks, then its gate); if not, it goes and
            //    the old one was never touched.
            let gated = match started {
                Ok(()) => match hooks::post_start(engine, spec, &id).await {
                    Ok(()) => {
                        gate::wait(engine, &id, name, spec, DependCondition::Started).await.map_err(ActionError::from)
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e.into()),
            };
            if let Err(e) = gated {
                return Err(discard(engine, &id, e).await);
            }
            // 3. Its host ports switch to it (new connections only); what the old one is
            //    serving is left to finish, up to the drain timeout.
            if let Err(e) = publish(engine, desired, name, &id).await {
                return Err(discard(engine, &id, e.into()).await);
            }
            failpoint::hit(failpoint::SWITCHED);
            drain(engine, old_id, spec).await;
            // 4. Only now does the old one stop; the candidate takes the name.
            hooks::pre_stop(engine, spec, old_id).await;
            engine.stop_container(old_id, stop_timeout).await?;
            failpoint::hit(failpoint::OLD_STOPPED);
            engine.remove_container(old_id).await?;
            failpoint::hit(failpoint::OLD_REMOVED);
            failpoint::hit(failpoint::BEFORE_RENAME);
            engine.rename_container(&id, name).await?;
            Ok("replaced (start-first)".into())
        }
        Strategy::StopFirst => {
            // 1. The old container stops (it holds host ports) and steps aside under a temporary name.
            let retired = retired_name(name);
            hooks::pre_stop(engine, spec, old_id).await;
            engine.stop_container(old_id, stop_timeout).await?;
            failpoint::hit(failpoint::OLD_STOPPED);
            engine.rename_container(old_id, &retired).await?;
            // 2. The new one starts under the name and must prove itself.
            let attempt = async {
                let id = engine.create_container(&create_request(desired, name, name)).await?;
                failpoint::hit(failpoint::CANDIDATE_CREATED);
                let r = match engine.start_container(&id).await {
                    Ok(()) => match hooks::post_start(engine, spec, &id).await {
                        Ok(()) => match gate::wait(engine, &id, name, spec, DependCondition::Started).await {
                            Ok(()) => publish(engine, desired, name, &id).await.map_err(ActionError::from),
                            Err(e) => Err(e.into()),
                        },
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e.into()),
                };
                match r {
                    Err(e) => Err(discard(engine, &id, e).await),
                    ok => ok,
                }
            };
            match attempt.await {
                Ok(()) => {
                    engine.remove_container(old_id).await?;
                    Ok("replaced (stop-first)".into())
                }
                Err(e) => {
                    // 3. Roll back: the old container gets its name back and serves again.
                    engine.rename_container(old_id, name).await?;
                    engine.start_container(old_id).await?;
                    publish(engine, desired, name, old_id).await?;
                    Err(e)
                }
            }
        }
    }
}

/// Waits until the connections open to the old container end, or its drain timeout.
async fn drain<E: Engine>(engine: &E, old_id: &str, spec: &crate::desired::ContainerSpec) {
    if spec.has_host_ports() {
        drain_ports(engine, old_id, &spec.ports, spec.drain_timeout().as_std()).await;
    }
}

/// Waits until the connections open to container `id` through `ports` end, or `timeout`.
pub(crate) async fn drain_ports<E: Engine>(
    engine: &E,
    id: &str,
    ports: &[crate::desired::PortBinding],
    timeout: std::time::Duration,
) {
    let until = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < until {
        match engine.open_connections(id, ports).await {
            Ok(0) | Err(_) => return,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

/// Removes a failed candidate; the error says why it failed, and whether it could not be removed
/// (then the next run removes it).
async fn discard<E: Engine>(engine: &E, id: &str, why: ActionError) -> ActionError {
    match engine.remove_container(id).await {
        Ok(()) => why,
        Err(source) => ActionError::Leftover { why: Box::new(why), source },
    }
}
