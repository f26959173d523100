//! The main use case, end to end: the real `playbooks/site.yml` (packages, service
//! account, layout, config, systemd unit, release with health check, logrotate, ufw, a
//! certificate from pebble through a real HTTP-01 challenge served by nginx, the nginx
//! vhost with TLS) on a fresh host, checked from outside: HTTPS from this machine, the
//! firewall, the rerun that changes nothing, a release, a rollback, drift, and host-side
//! validation that keeps broken configs from going live.

use crate::scenario::{Run, Scenario};
use crate::support::pebble::Pebble;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const DOMAIN: &str = "h1.test";
const PLAYBOOKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks");

/// demo-app built as v1, v2 and an unhealthy v3 (its /healthz answers 500): once per
/// test process, each version in a target dir of its own so rebuilds are no-ops.
fn builds() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.join("demo-app-builds");
        std::fs::create_dir_all(&dir).expect("builds dir");
        for (version, unhealthy) in [("v1", false), ("v2", false), ("v3", true)] {
            let target = tmp.join(format!("demo-app-{version}"));
            let mut cargo = Command::new(env!("CARGO"));
            cargo
                .args(["build", "--release", "-q", "-p", "demo-app", "--target-dir"])
                .arg(&target)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("DEMO_VERSION", version)
                .env_remove("DEMO_UNHEALTHY");
            if unhealthy {
                cargo.env("DEMO_UNHEALTHY", "1");
            }
            let out = cargo.output().expect("run cargo");
            assert!(
                out.status.success(),
                "building demo-app {version}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::copy(
                target.join("release/demo-app"),
                dir.join(format!("demo-{version}")),
            )
            .expect("copy the build");
        }
        dir
    })
}

/// A fresh host in group `web`, pebble checking HTTP-01 for real, and a copy of the
/// real playbook with the builds and the test's extra vars (`-e @vars.yml`).
struct Gin {
    s: Scenario,
    pebble: Pebble,
    ip: String,
    /// `site.yml`, or its role-based twin `site-roles.yml`.
    playbook: &'static str,
}

/// The files of both playbooks, relative to playbooks/.
const FILES: &[&str] = &[
    "site.yml",
    "vars/common.yml",
    "templates/config.yaml.hbs",
    "site-roles.yml",
    "roles/gin_service/defaults/main.yml",
    "roles/gin_service/tasks/main.yml",
    "roles/gin_service/tasks/service.yml",
    "roles/gin_service/tasks/edge.yml",
    "roles/gin_service/handlers/main.yml",
    "roles/gin_service/templates/config.yaml.hbs",
];

impl Gin {
    fn new() -> Gin {
        Gin::with_playbook("site.yml")
    }

    fn with_playbook(playbook: &'static str) -> Gin {
        let s = Scenario::new(1);
        let pebble = Pebble::start_real_http01(&s.hosts);
        let ip = s.hosts.host("h1").ip.clone();
        for file in FILES {
            let text = std::fs::read_to_string(Path::new(PLAYBOOKS).join(file)).expect(file);
            s.file(file, &text);
        }
        std::fs::create_dir_all(s.path("build")).expect("build dir");
        for v in ["v1", "v2", "v3"] {
            let name = format!("demo-{v}");
            std::fs::copy(builds().join(&name), s.path("build").join(&name)).expect("build");
        }
        let inventory = std::fs::read_to_string(s.path("inventory.yml")).expect("inventory");
        s.file(
            "inventory.yml",
            &format!("{inventory}  children:\n    web:\n      hosts: {{ h1: }}\n"),
        );
        // JSON is YAML: the multi-line PEM needs no hand quoting.
        let vars = serde_json::json!({
            "domain": DOMAIN,
            "acme_server": pebble.directory(),
            "acme_ca_pem": pebble.ca_pem(),
            "acme_ca_bundle": "/etc/ssl/certs/converge-acme-ca.pem",
            "health_timeout": 5,
        });
        s.file(
            "vars.yml",
            &serde_json::to_string_pretty(&vars).expect("json"),
        );
        Gin {
            s,
            pebble,
            ip,
            playbook,
        }
    }

    fn run(&self, command: &[&str], extra: &[&str]) -> Run {
        let mut args = command.to_vec();
        args.extend(["-e", "@vars.yml"]);
        args.extend(extra);
        self.s.run(&args)
    }

    fn converge(&self, extra: &[&str]) -> Run {
        self.run(&[self.playbook], extra)
    }

    fn diff(&self, extra: &[&str]) -> Run {
        self.run(&["diff", self.playbook], extra)
    }

    /// The playbook with `from` replaced by `to` (a user's edit), as `NAME.yml`.
    fn variant(&self, name: &str, from: &str, to: &str) -> String {
        let site = std::fs::read_to_string(self.s.path("site.yml")).expect("site.yml");
        assert!(site.contains(from), "site.yml has no {from:?}");
        let file = format!("{name}.yml");
        self.s.file(&file, &site.replacen(from, to, 1));
        file
    }

    /// curl from this machine, DOMAIN resolved to the host; stdout.
    fn curl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(["--resolve", &format!("{DOMAIN}:443:{}", self.ip)])
            .args(["--resolve", &format!("{DOMAIN}:80:{}", self.ip)])
            .args(args)
            .output()
            .expect("run curl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// GET https://DOMAIN/PATH, trusting only pebble's issuing root, once it answers
    /// (nginx reloads in the background): headers and body.
    fn https(&self, path: &str) -> String {
        let roots = self.pebble.roots_pem();
        let url = format!("https://{DOMAIN}{path}");
        let args = ["-i", "--cacert", roots.to_str().expect("utf-8 path"), &url];
        let mut last = String::new();
        for _ in 0..50 {
            match self.curl(&args) {
                Ok(text) => return text,
                Err(e) => last = e,
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("GET {url} never answered: {last}");
    }

    /// The body of https://DOMAIN/version.
    fn version(&self) -> String {
        let text = self.https("/version");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        body.trim().to_string()
    }

    fn main_pid(&self) -> String {
        self.s
            .sh("h1", "systemctl show -p MainPID --value demo")
            .trim()
            .to_string()
    }

    /// The versions demo-app started as, in order (each start logs a line).
    fn starts(&self) -> Vec<String> {
        self.s
            .sh(
                "h1",
                "grep -o '^demo-app v[0-9]*' /var/log/demo/demo.log || true",
            )
            .lines()
            .map(|l| l.trim_start_matches("demo-app ").to_string())
            .collect()
    }

    /// nginx's master and worker PIDs: a reload replaces the workers.
    fn nginx_pids(&self) -> String {
        self.s.sh(
            "h1",
            "m=$(cat /run/nginx.pid); echo $m $(pgrep -P $m | sort)",
        )
    }

    fn certificate(&self) -> String {
        self.s.sh(
            "h1",
            "openssl x509 -noout -serial -in /etc/letsencrypt/live/h1.test/cert.pem; \
             find /etc/letsencrypt/archive -type f | sort",
        )
    }

    fn sha(&self, path: &str) -> String {
        self.s.sh("h1", &format!("sha256sum {path}"))
    }
}

fn lines(text: &str, want: &[&str]) {
    for line in want {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
}

#[test]
fn a_fresh_host_serves_the_release_over_https_and_a_rerun_changes_nothing() {
    let g = Gin::new();

    let diff = g.diff(&[]);
    diff.expect_code(2);
    lines(
        &diff.stdout,
        &[
            "+version: v1",
            "-certificate: absent\n+certificate: h1.test (h1.test)",
            "+allow 443/tcp",
            "+        return 301 https://$host$request_uri;",
        ],
    );
    assert_eq!(g.s.hosts.exec("h1", "id demo").status.code(), Some(1));

    let started = std::time::Instant::now();
    let first = g.converge(&[]);
    let first_time = started.elapsed();
    first.expect_code(0);
    // Everything but the packages (in the host image); the handler's restart is merged
    // into the release's.
    assert_eq!(first.recap("h1"), (1, 13, 0, 1, 0));
    first.expect_stdout_contains("skipped  h1: restart app (restart merged");

    // HTTPS through nginx, with a certificate that chains to pebble's issuing root
    // (curl verifies it with nothing else trusted), not to the CA of pebble's own TLS.
    assert_eq!(g.version(), "v1");
    let issuer = g.s.sh(
        "h1",
        "openssl x509 -noout -issuer -in /etc/letsencrypt/live/h1.test/cert.pem",
    );
    assert!(issuer.contains("Pebble Intermediate CA"), "{issuer}");
    let headers = g.https("/version").to_lowercase();
    assert!(
        headers.contains(
            "strict-transport-security: max-age=63072000; includesubdomains; preload\r\n"
        ),
        "{headers}"
    );
    // The HTTP-01 challenge was fetched for real, from nginx on port 80.
    let challenges = g.s.sh(
        "h1",
        "grep 'GET /.well-known/acme-challenge/' /var/log/nginx/access.log",
    );
    assert!(
        challenges.contains("\" 200 ") && challenges.contains("Pebble-VA"),
        "{challenges}"
    );
    assert_eq!(
        g.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            &format!("http://{DOMAIN}/version"),
        ])
        .expect("http"),
        "301 https://h1.test/version"
    );

    let ufw = g.s.sh("h1", "ufw status verbose");
    assert!(
        ufw.contains("Status: active\n")
            && ufw.contains("Default: deny (incoming), allow (outgoing)"),
        "{ufw}"
    );
    let mut rules: Vec<String> = ufw
        .lines()
        .filter(|l| l.contains("ALLOW") || l.contains("DENY") || l.contains("LIMIT"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    rules.sort_unstable();
    assert_eq!(
        rules,
        [
            "22/tcp (v6) ALLOW IN Anywhere (v6)",
            "22/tcp ALLOW IN Anywhere",
            "443/tcp (v6) ALLOW IN Anywhere (v6)",
            "443/tcp ALLOW IN Anywhere",
            "80/tcp (v6) ALLOW IN Anywhere (v6)",
            "80/tcp ALLOW IN Anywhere",
        ],
        "{ufw}"
    );

    let logrotate = g.s.hosts.exec("h1", "logrotate -d /etc/logrotate.d/demo");
    let out = String::from_utf8_lossy(&logrotate.stderr).into_owned()
        + &String::from_utf8_lossy(&logrotate.stdout);
    assert!(
        logrotate.status.success() && !out.contains("error:"),
        "{out}"
    );
    assert!(
        out.contains("rotating pattern: /var/log/demo/*.log"),
        "{out}"
    );
    assert_eq!(
        g.s.sh("h1", "systemctl is-active demo; systemctl is-enabled demo"),
        "active\nenabled\n"
    );
    assert_eq!(
        g.s.sh(
            "h1",
            "stat -c '%U %a' /opt/demo/config/config.yaml /var/log/demo; readlink /opt/demo/current"
        ),
        "demo 640\ndemo 750\nreleases/v1\n"
    );

    // The rerun: nothing changes, nothing restarts or reloads, no new certificate.
    let (pid, nginx, cert) = (g.main_pid(), g.nginx_pids(), g.certificate());
    let started = std::time::Instant::now();
    let rerun = g.converge(&["-v"]);
    let rerun_time = started.elapsed();
    rerun.expect_code(0);
    assert_eq!(rerun.recap("h1"), (14, 0, 0, 0, 0));
    rerun.expect_stderr_contains("h1: 1 exec(s) over one connection");
    assert_eq!(g.main_pid(), pid, "demo restarted");
    assert_eq!(g.nginx_pids(), nginx, "nginx restarted or reloaded");
    assert_eq!(g.certificate(), cert, "a new certificate");
    assert_eq!(g.starts(), ["v1"]);
    g.diff(&[]).expect_code(0);
    eprintln!("site.yml on a fresh host: {first_time:.1?}; no-change rerun: {rerun_time:.2?}");
}

#[test]
fn the_role_based_playbook_deploys_the_same_service() {
    let g = Gin::with_playbook("site-roles.yml");
    // The app's token, vaulted inline in group_vars/web.yml (as ansible-vault would).
    g.s.file("vault.pw", "role-vault-pass\n");
    let password = ["--vault-password-file", "vault.pw"];
    let vaulted = g.s.run(&[
        "vault",
        "encrypt-string",
        "--name",
        "api_token_override",
        "role-s3cret-token",
        password[0],
        password[1],
    ]);
    vaulted.expect_code(0);
    g.s.file("group_vars/web.yml", &vaulted.stdout);

    let first = g.converge(&password);
    first.expect_code(0);
    assert_eq!(first.recap("h1"), (1, 13, 0, 1, 0));
    assert_eq!(g.version(), "v1");
    // The role's template (roles/gin_service/templates/), its secret on the host only.
    assert!(
        g.s.sh("h1", "cat /opt/demo/config/config.yaml")
            .contains("api_token: role-s3cret-token\n")
    );
    first.expect_stdout_contains("content: changed (secret)");

    let rerun = g.converge(&password);
    rerun.expect_code(0);
    assert_eq!(rerun.recap("h1"), (14, 0, 0, 0, 0));
    let json = g.run(&["diff", "site-roles.yml", "--json"], &password);
    json.expect_code(0);
    // The same desired state as the flat playbook: it finds nothing to change.
    g.run(&["diff", "site.yml"], &password).expect_code(0);
    for run in [&first, &rerun, &json] {
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(!all.to_lowercase().contains("role-s3cret"), "{all}");
    }
}

#[test]
fn a_new_version_restarts_once_and_an_unhealthy_one_is_rolled_back() {
    let g = Gin::new();
    g.converge(&[]).expect_code(0);
    assert_eq!(g.version(), "v1");
    let v1_pid = g.main_pid();

    let diff = g.diff(&["-e", "version=v2"]);
    diff.expect_code(2)
        .expect_stdout_contains("-version: v1\n+version: v2");
    assert_eq!(diff.recap("h1").1, 1, "only the release differs");

    let v2 = g.converge(&["-e", "version=v2"]);
    v2.expect_code(0).expect_changed("h1", 1);
    assert_eq!(g.starts(), ["v1", "v2"], "exactly one restart");
    assert_ne!(g.main_pid(), v1_pid);
    assert_eq!(g.version(), "v2");
    assert_eq!(
        g.s.sh("h1", "systemctl show -p NRestarts --value demo")
            .trim(),
        "0"
    );
    let v2_pid = g.main_pid();
    g.converge(&["-e", "version=v2"])
        .expect_code(0)
        .expect_changed("h1", 0);
    assert_eq!(g.main_pid(), v2_pid);

    // v3's /healthz answers 500: rolled back to v2, which keeps serving.
    let v3 = g.converge(&["-e", "version=v3"]);
    v3.expect_code(1)
        .expect_stdout_contains("failed   h1: release\n")
        .expect_stdout_contains(
            "v3 unhealthy: GET http://127.0.0.1:8080/healthz returned 500 after 5 s; rolled back to v2",
        );
    assert_eq!(v3.recap("h1").2, 1);
    assert_eq!(g.version(), "v2");
    assert_eq!(
        g.s.sh("h1", "readlink /opt/demo/current").trim(),
        "releases/v2"
    );
    assert_eq!(g.s.sh("h1", "systemctl is-active demo").trim(), "active");
    assert_eq!(g.starts(), ["v1", "v2", "v3", "v2"]);

    // The same bad build is not deployed again by a rerun (a cron job would otherwise
    // take the service down every time).
    let again = g.converge(&["-e", "version=v3"]);
    again
        .expect_code(1)
        .expect_stdout_contains("v3 was rolled back on this host after failing its health check");
    assert_eq!(g.starts(), ["v1", "v2", "v3", "v2"]);
    g.converge(&["-e", "version=v2"])
        .expect_code(0)
        .expect_changed("h1", 0);
}

#[test]
fn drift_is_shown_by_diff_and_repaired() {
    let g = Gin::new();
    g.converge(&[]).expect_code(0);

    g.s.sh(
        "h1",
        "sed -i 's/max-age=63072000/max-age=0/' /etc/nginx/sites-available/demo \
         && systemctl stop demo \
         && ufw delete allow 443/tcp \
         && sed -i 's/^Restart=always/Restart=no/' /etc/systemd/system/demo.service \
         && systemctl daemon-reload",
    );
    let diff = g.diff(&[]);
    diff.expect_code(2);
    lines(
        &diff.stdout,
        &[
            "changed  h1: vhost (http)\n--- h1:/etc/nginx/sites-available/demo (current)",
            "-    add_header Strict-Transport-Security \"max-age=0; includeSubDomains; preload\" always;\n\
             +    add_header Strict-Transport-Security \"max-age=63072000; includeSubDomains; preload\" always;",
            "changed  h1: release\n--- h1:service demo (current)\n+++ h1:service demo (desired)\n@@ -1 +1 @@\n-active: no\n+active: yes",
            "changed  h1: firewall\n--- h1:ufw (current)",
            " allow 80/tcp\n+allow 443/tcp",
            "-Restart=no\n+Restart=always",
        ],
    );
    // The changed unit notifies `restart app`, merged into the release's start.
    assert_eq!(diff.recap("h1"), (10, 4, 0, 1, 0));
    // diff is read-only.
    assert_eq!(
        g.s.hosts.exec("h1", "systemctl is-active demo").stdout,
        b"inactive\n"
    );

    g.converge(&[]).expect_code(0).expect_changed("h1", 4);
    g.diff(&[]).expect_code(0);
    assert_eq!(g.s.sh("h1", "systemctl is-active demo").trim(), "active");
    assert_eq!(
        g.s.sh("h1", "systemctl show -p Restart --value demo")
            .trim(),
        "always"
    );
    assert!(g.s.sh("h1", "ufw status").contains("443/tcp"));
    assert!(
        g.https("/version")
            .to_lowercase()
            .contains("max-age=63072000;")
    );
    assert_eq!(g.version(), "v1");
}

#[test]
fn invalid_configs_are_refused_on_the_host_and_never_go_live() {
    let g = Gin::new();
    g.converge(&[]).expect_code(0);
    let vhost = g.sha("/etc/nginx/sites-available/demo");
    let logrotate = g.sha("/etc/logrotate.d/demo");
    let unit = g.sha("/etc/systemd/system/demo.service");
    let (pid, nginx_master) = (g.main_pid(), g.s.sh("h1", "cat /run/nginx.pid"));

    // A directive nginx -t rejects: the old site stays live and nginx keeps serving.
    let bad = g.variant(
        "bad-vhost",
        "hsts: true }",
        "hsts: true, extra: \"proxy_buffering maybe;\" }",
    );
    let run = g.run(&[&bad], &[]);
    run.expect_code(1)
        .expect_stdout_contains("failed   h1: vhost (http)\n")
        .expect_stdout_contains("nginx -t with the new site (nothing live was changed) failed")
        .expect_stdout_contains(
            "invalid value \"maybe\" in \"proxy_buffering\" directive, it must be \"on\" or \"off\"",
        )
        .expect_stdout_contains("skipped  h1: vhost (https) (`certificate` was skipped: `vhost (http)` failed)");
    assert_eq!(g.sha("/etc/nginx/sites-available/demo"), vhost);
    assert_eq!(
        g.s.sh(
            "h1",
            "ls -A /etc/nginx/sites-enabled /etc/nginx/sites-available"
        ),
        "/etc/nginx/sites-available:\ndefault\ndemo\n\n/etc/nginx/sites-enabled:\ndefault\ndemo\n"
    );
    assert_eq!(g.s.sh("h1", "cat /run/nginx.pid"), nginx_master);
    assert_eq!(g.version(), "v1");

    // A stanza logrotate -d rejects never lands in /etc/logrotate.d.
    let bad = g.variant(
        "bad-logrotate",
        "copytruncate: true }",
        "copytruncate: true, su: \"demo nosuchgroup\" }",
    );
    g.run(&[&bad], &[])
        .expect_code(1)
        .expect_stdout_contains(
            "failed   h1: logrotate\n    logrotate -d rejects /etc/logrotate.d/demo; it was not installed:\n    error: /etc/logrotate.d/demo:10 unknown group 'nosuchgroup'",
        );
    assert_eq!(g.sha("/etc/logrotate.d/demo"), logrotate);
    assert_eq!(
        g.s.sh(
            "h1",
            "ls -A /etc/logrotate.d | grep -c demo; ls -A /etc | grep -c converge || true"
        ),
        "1\n0\n"
    );

    // A unit systemd would only half understand is refused by systemd-analyze verify.
    let bad = g.variant(
        "bad-unit",
        "        restart: always\n",
        "        restart: always\n        restart_sec: soon\n",
    );
    g.run(&[&bad], &[])
        .expect_code(1)
        .expect_stdout_contains(
            "failed   h1: unit\n    systemd-analyze verify rejects /etc/systemd/system/demo.service; it was not installed:\n    /etc/systemd/system/demo.service:14: Failed to parse sec value, ignoring: soon",
        )
        .expect_stdout_contains("skipped  h1: release (`unit` failed)");
    assert_eq!(g.sha("/etc/systemd/system/demo.service"), unit);
    assert_eq!(
        g.s.sh("h1", "systemctl show -p NeedDaemonReload --value demo")
            .trim(),
        "no"
    );
    assert_eq!(g.main_pid(), pid);

    // The real playbook again: nothing to repair.
    g.converge(&[]).expect_code(0).expect_changed("h1", 0);
    assert_eq!(g.version(), "v1");
}
