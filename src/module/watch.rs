//! What a module leaves behind to be watched: a rollout's pause between batches keeps
//! checking the hosts already released and undoes a change that turns unhealthy there.
//! The runner knows only this contract, never which module made the change.

use super::{Exec, Failure};
use crate::transport::{Transport, TransportError};
use async_trait::async_trait;

/// A health check that keeps its meaning after its task: a module that changed
/// something a health check guards returns one from [`super::Action::watch`].
#[async_trait]
pub trait Watch: Send + Sync {
    /// What is watched, for progress lines: `release demo v2 (GET http://127.0.0.1:8080/healthz)`.
    fn describe(&self) -> String;

    /// One check, read-only: `Ok(Err(why))` when unhealthy; `Err` when the connection broke.
    async fn check(&self, transport: &dyn Transport) -> Result<Result<(), String>, TransportError>;

    /// Undo the watched change after a check failed for `why`, as the task itself does
    /// when its own check fails; what was done (`rolled back to v1`), or why it could not be.
    async fn roll_back(&self, why: &str, host: &dyn Exec) -> Result<String, Failure>;
}
