//! Test hosts, OpenSSH servers and an ACME server for the integration tests.

pub mod hosts;
pub mod pebble;
pub mod peers;
pub mod sshd;
