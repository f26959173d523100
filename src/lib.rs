//! converge: a declarative reconciler for Linux servers.
pub mod error;
pub mod inventory;
pub mod playbook;
pub mod transport;
