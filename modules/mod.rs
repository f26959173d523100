//! The built-in modules, one folder each. The engine finds them through `registry`.

pub mod apt;
pub mod file;
pub mod http_check;
pub mod release;
pub mod service;
