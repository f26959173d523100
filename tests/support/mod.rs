//! Helpers shared by the integration test binaries.
//!
//! A test binary rooted at `tests/<name>/main.rs` includes this with
//! `#[path = "../support/mod.rs"] mod support;` (a plain `mod support;` there
//! would look for `tests/<name>/support.rs`).

pub mod hosts;
