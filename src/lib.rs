//! converge: a declarative reconciler for Linux servers.
pub mod transport;
