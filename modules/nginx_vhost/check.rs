//! `nginx -t` on the configuration as it would be, before anything live changes.
//!
//! nginx reads absolute paths (`include /etc/nginx/sites-enabled/*`), so a candidate
//! file alone cannot be tested. The whole of /etc/nginx is copied to a temp dir, the new
//! vhost and its link are put in the copy, and `nginx -t` runs in a private mount
//! namespace where the copy is bind-mounted over /etc/nginx: nginx sees exactly the
//! configuration that is about to go live, while the live tree, which nginx could
//! reload at any moment, is untouched until the candidate passed.

use crate::transport::quote;

/// The script testing the configuration with stdin as sites-available/`name`, enabled.
pub fn test_script(name: &str) -> String {
    let n = quote(name);
    format!(
        "set -e\n\
         t=$(mktemp -d)\n\
         trap 'rm -rf \"$t\"' EXIT\n\
         cp -a /etc/nginx \"$t/nginx\"\n\
         mkdir -p \"$t/nginx/sites-available\" \"$t/nginx/sites-enabled\"\n\
         cat > \"$t/nginx/sites-available/\"{n}\n\
         rm -rf \"$t/nginx/sites-enabled/\"{n}\n\
         ln -s /etc/nginx/sites-available/{n} \"$t/nginx/sites-enabled/\"{n}\n\
         unshare -m --propagation private sh -c 'mount --bind \"$1\" /etc/nginx && exec nginx -t' sh \"$t/nginx\"\n"
    )
}

/// Reload nginx if it runs (never start or restart it): through systemd when the host
/// runs it, with `nginx -s reload` otherwise.
pub const RELOAD: &str = "if [ -d /run/systemd/system ]; then \
       if systemctl is-active --quiet nginx; then systemctl reload nginx; fi; \
     elif [ -s /run/nginx.pid ] && kill -0 \"$(cat /run/nginx.pid)\" 2>/dev/null; then nginx -s reload; fi\n";
