//! Playbooks: loading with locations, variables and templates.

pub mod node;
pub mod template;
