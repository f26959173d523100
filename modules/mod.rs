//! The built-in modules, one folder each. The engine finds them through `registry`.

pub mod apt;
pub mod certbot;
pub mod command;
pub mod dir;
pub mod file;
pub mod group;
pub mod http_check;
pub mod logrotate;
pub mod nginx_vhost;
pub mod release;
pub mod service;
pub mod systemd_unit;
pub mod template;
pub mod ufw;
pub mod user;
