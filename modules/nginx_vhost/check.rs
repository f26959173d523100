//! `nginx -t` on the configuration as it would be, before anything live changes.
//!
//! nginx reads absolute paths (`include /etc/nginx/sites-enabled/*`), so a candidate
//! file alone cannot be tested. The whole of /etc/nginx is copied to a temp dir, the new
//! vhost and its link are put in the copy, and `nginx -t` runs in a private mount
//! namespace where the copy is bind-mounted over /etc/nginx: nginx sees exactly the
//! configuration that is about to go live, while the live tree, which nginx could
//! reload at any moment, is untouched until the candidate passed.

use crate::quote::quote;

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

/// How long the new configuration may take to serve. The master parses the whole
/// configuration, opens new ports (retrying a busy one for about 2.5 s before it gives up)
/// and forks the new workers; this is that with room to spare, and the bound after which
/// a reload that the master refused is reported.
pub const RELOAD_WAIT_SECS: u32 = 10;

/// Shell functions telling when nginx serves a configuration it was told to reload.
/// `nginx_master` sets `m` to the running master's pid, or fails when nginx is not
/// running; `nginx_before` remembers the master's children (the serving generation) and
/// the error log's length; `nginx_serves_new`, after a reload, waits at most
/// [`RELOAD_WAIT_SECS`] until a new generation serves, or returns 3 with the master's new
/// error-log lines.
///
/// A reload only signals the master, which then forks a new generation of workers and
/// tells the old one to close its listening sockets and finish its requests. A new
/// connection is served by whoever holds a listening socket, so the new configuration
/// serves exactly when the master's children holding one are all new (and there is at
/// least one): read from /proc (the listening inodes in /proc/net, each child's fds), so a
/// request made right after the task gets the new site. A master that rejects the
/// configuration (a port in use, say, which `nginx -t` does not bind) forks none.
///
/// Each poll starts three processes (find, awk, sleep): a process costs the host ~1 ms.
fn generation_functions() -> String {
    format!(
        r#"nginx_master() {{
  if [ -d /run/systemd/system ]; then
    m=0 nginx_state=
    for l in $(systemctl show -p ActiveState,MainPID nginx); do
      case $l in ActiveState=*) nginx_state=${{l#*=}} ;; MainPID=*) m=${{l#*=}} ;; esac
    done
    case $nginx_state in active | reloading) ;; *) return 1 ;; esac
    case $m in 0 | '' | *[!0-9]*)
      echo "nginx runs, but systemd does not know its master's pid" >&2; exit 3 ;;
    esac
  else
    m=
    [ -r /run/nginx.pid ] && read -r m < /run/nginx.pid
    # Signalled below: a pid, never 0 or -1 (every process).
    case $m in 0 | '' | *[!0-9]*) return 1 ;; esac
    kill -0 "$m" 2>/dev/null
  fi
}}
nginx_kids() {{
  if [ -r "/proc/$m/task/$m/children" ]; then
    # One line, with no newline at its end: read assigns it and returns 1.
    nginx_kids=
    read -r nginx_kids < "/proc/$m/task/$m/children" || :
  else
    nginx_kids=$(grep -ls "^PPid:[[:space:]]*$m\$" /proc/[0-9]*/status | cut -d/ -f3)
  fi
}}
nginx_before() {{
  nginx_log=/var/log/nginx/error.log
  nginx_size=$(wc -c < "$nginx_log" 2>/dev/null) || nginx_size=0
  nginx_kids
  nginx_old=$(echo $nginx_kids)
}}
nginx_new_serves() {{
  nginx_kids
  set --
  for k in $nginx_kids; do set -- "$@" "/proc/$k/fd"; done
  [ $# -gt 0 ] || return 1
  find "$@" -mindepth 1 -maxdepth 1 -lname 'socket:*' -printf '%h %l\n' 2>/dev/null |
    awk -v old=" $nginx_old " '
      FILENAME == "/proc/net/unix" {{ if ($4 == "00010000") listening[$7] = 1; next }}
      FILENAME != "-" {{ if ($4 == "0A") listening[$10] = 1; next }}
      {{
        split($1, p, "/"); inode = $2; gsub(/[^0-9]/, "", inode)
        if (!(inode in listening)) next
        if (index(old, " " p[3] " ")) stale = 1; else new = 1
      }}
      END {{ exit !(new && !stale) }}' $nginx_net -
}}
nginx_serves_new() {{
  nginx_net=
  for f in /proc/net/tcp /proc/net/tcp6 /proc/net/unix; do [ -r "$f" ] && nginx_net="$nginx_net $f"; done
  tries={tries}
  until nginx_new_serves; do
    [ $((tries -= 1)) -gt 0 ] || {{
      echo "the nginx master (pid $m) kept its old workers for {RELOAD_WAIT_SECS} s: it did not take the new configuration" >&2
      [ -f "$nginx_log" ] && tail -c +"$((nginx_size + 1))" "$nginx_log" | tail -n 5 >&2
      return 3
    }}
    sleep 0.05
  done
}}
"#,
        tries = RELOAD_WAIT_SECS * 20,
    )
}

/// Reload nginx if it runs (never start or restart it) and wait until the new
/// configuration serves (see [`generation_functions`]). Prints `reloaded=yes` once it
/// does, `reloaded=no` when nginx is not running; exits 3 when the master kept its old
/// workers. The reload is the signal `nginx -s reload` and the unit's `ExecReload=` send
/// the master (HUP), sent directly: they would first parse the whole configuration again.
pub fn reload_script() -> String {
    format!(
        "{}nginx_master || {{ echo reloaded=no; exit 0; }}\n\
         nginx_before\n\
         kill -HUP \"$m\" || exit\n\
         nginx_serves_new || exit\n\
         echo reloaded=yes\n",
        generation_functions()
    )
}

/// `body`, a script that reloads nginx (certbot with a deploy hook that does), made to
/// end only once nginx serves what it reloaded; exits 3 if the master kept its old
/// workers. Nothing to wait for when nginx is not running.
pub fn serving_after(body: &str) -> String {
    format!(
        "{}if nginx_master; then nginx_before; else m=; fi\n\
         {body}\n\
         if [ -n \"$m\" ]; then nginx_serves_new || exit; fi\n",
        generation_functions()
    )
}
