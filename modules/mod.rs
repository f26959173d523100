//! The built-in modules, one folder each. The engine finds them through `registry`.

pub mod certbot;
pub mod command;
pub mod dir;
pub mod file;
pub mod group;
pub mod template;
pub mod ufw;
pub mod user;
