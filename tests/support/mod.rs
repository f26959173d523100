//! Helpers shared by the integration test binaries.
//!
//! A test binary rooted at `tests/<name>/main.rs` includes this with
//! `#[path = "../support/mod.rs"] mod support;`.

pub mod hosts;
pub mod pebble;
pub mod peers;
pub mod sshd;
