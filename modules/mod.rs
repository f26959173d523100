//! The built-in modules, one folder each. The engine finds them through `registry`.

pub mod command;
pub mod dir;
pub mod file;
pub mod group;
pub mod template;
pub mod user;
