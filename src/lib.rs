//! hawser: a declarative GitOps reconciler for container hosts.
//!
//! A revision of a git repository is read ([`source`]) into a desired state ([`desired`]), the
//! engine is read into an observed state ([`observed`]), a pure function computes the plan
//! ([`diff`]), and the executor carries it out ([`apply`]) through the engine ([`runtime`]).

pub mod apply;
pub mod cli;
pub mod desired;
pub mod diff;
pub mod display;
pub mod failpoint;
pub mod history;
pub mod labels;
pub mod lock;
pub mod observed;
pub mod reconcile;
pub mod runtime;
pub mod serve;
pub mod source;
pub mod state_file;
pub mod terminal;
pub mod tls;
