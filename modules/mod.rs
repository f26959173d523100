//! The built-in modules, one folder each. The engine finds them through `registry`.

pub mod certbot;
pub mod file;
pub mod ufw;
