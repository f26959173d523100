//! End-to-end tests: the real binary, real SSH, real Debian hosts in containers.
//! Run serially (nextest test group `hosts`): each test boots its own hosts.

mod ansible_inventory;
mod apt;
mod certbot;
mod command;
mod dir;
mod engine;
mod gin_service;
mod group;
mod hostile_user;
mod hostile_values;
mod http_check;
mod json;
mod lock;
mod logrotate;
mod nginx_vhost;
mod release;
mod secrets;
mod service;
mod systemd_unit;
mod template;
mod ufw;
mod user;
mod vault;
