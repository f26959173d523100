//! The engine's one way to the modules: by name, in the list `modules/mod.rs` keeps.

use crate::module::Module;
use crate::modules;

/// The module registered under `name` (a task's module key).
pub fn find(name: &str) -> Option<&'static dyn Module> {
    modules::ALL.iter().copied().find(|m| m.name() == name)
}

/// Every module name, for "did you mean" hints.
pub fn names() -> impl Iterator<Item = &'static str> {
    modules::ALL.iter().map(|m| m.name())
}
