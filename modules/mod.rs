//! The built-in modules, one folder each. The engine finds them through `registry`.

pub mod command;
pub mod dir;
pub mod file;
pub mod group;
pub mod logrotate;
pub mod nginx_vhost;
pub mod systemd_unit;
pub mod template;
pub mod user;
