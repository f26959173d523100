//! converge: a declarative reconciler for Linux servers.
pub mod error;
pub mod playbook;
pub mod transport;
pub mod module;
