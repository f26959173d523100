//! The one place where the engine names modules.

use crate::module::Module;
use crate::modules;

static MODULES: &[&dyn Module] = &[
    &modules::file::File,
    &modules::logrotate::Logrotate,
    &modules::nginx_vhost::NginxVhost,
    &modules::systemd_unit::SystemdUnit,
    &modules::dir::Dir,
    &modules::template::Template,
    &modules::user::User,
    &modules::group::Group,
    &modules::command::Command,
    &modules::apt::Apt,
    &modules::service::Service,
    &modules::http_check::HttpCheck,
    &modules::release::Release,
    &modules::ufw::Ufw,
    &modules::certbot::Certbot,
];

/// The module registered under `name` (a task's module key).
pub fn find(name: &str) -> Option<&'static dyn Module> {
    MODULES.iter().copied().find(|m| m.name() == name)
}

/// Every module name, for "did you mean" hints.
pub fn names() -> impl Iterator<Item = &'static str> {
    MODULES.iter().map(|m| m.name())
}
