//! The built-in modules, one folder each. Adding a module is its folder and one line in
//! the list below; the engine finds modules only through `registry`, which reads `ALL`.

/// Declares each folder as a module and lists its `Module` in [`ALL`], so the two can
/// never disagree.
macro_rules! builtin {
    ($($folder:ident :: $module:ident),* $(,)?) => {
        $(pub mod $folder;)*

        /// Every built-in module, in the order "did you mean" hints list them.
        pub static ALL: &[&dyn crate::module::Module] = &[$(&$folder::$module),*];
    };
}

builtin! {
    file::File,
    logrotate::Logrotate,
    nginx_vhost::NginxVhost,
    systemd_unit::SystemdUnit,
    dir::Dir,
    template::Template,
    user::User,
    group::Group,
    command::Command,
    apt::Apt,
    service::Service,
    http_check::HttpCheck,
    release::Release,
    ufw::Ufw,
    certbot::Certbot,
}
