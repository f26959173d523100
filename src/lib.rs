//! converge: a declarative reconciler for Linux servers.
//!
//! `playbook` loads what the user wrote, `plan` orders it per host, `runner` converges
//! hosts in parallel over a `transport`, `report` shows what happened. Modules live in
//! `modules/`, one folder each, and are found through `registry`.

// Input errors carry their source for miette; they are the cold path, so their size is fine.
#![allow(clippy::result_large_err)]

pub mod cli;
pub mod error;
pub mod inventory;
pub mod lock;
pub mod module;
pub mod node;
pub mod plan;
pub mod playbook;
pub mod quote;
pub mod registry;
pub mod report;
pub mod runner;
pub mod transport;
pub mod vault;

#[path = "../modules/mod.rs"]
pub mod modules;
