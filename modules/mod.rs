//! The built-in modules, one folder each. The engine finds them through `registry`.

pub mod file;
pub mod logrotate;
pub mod nginx_vhost;
pub mod systemd_unit;
