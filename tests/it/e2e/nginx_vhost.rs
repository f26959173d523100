//! nginx_vhost on real hosts: a reverse proxy in front of a unit, reloaded (never
//! restarted), repaired after drift; an invalid site never goes live; `tls: certbot`
//! serves HTTP first and HTTPS once the certificate exists.

use crate::scenario::Scenario;

const APP: &str = r#"
    - name: docroot
      file: { path: /srv/index.html, content: "hello from demo\n" }
    - name: app
      systemd_unit:
        name: demo
        exec_start: /usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory /srv
        enabled: true
        state: started
"#;

fn site(vhost: &str) -> String {
    format!("- hosts: all\n  tasks:{APP}    - nginx_vhost: {vhost}\n")
}

const PLAIN: &str = r#"{ name: demo, server_name: demo.test, upstream: "127.0.0.1:8080", client_max_body_size: 1m }"#;

fn nginx_master(s: &Scenario) -> String {
    s.sh("h1", "cat /run/nginx.pid").trim().to_string()
}

fn via_nginx(s: &Scenario, path: &str, want: &str) -> String {
    s.sh_until(
        "h1",
        &format!("curl -s -H 'Host: demo.test' http://127.0.0.1{path}"),
        want,
    )
}

#[test]
fn a_proxy_site_is_reloaded_in_and_drift_is_repaired() {
    let s = Scenario::new(1);
    s.playbook(&site(PLAIN));
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("+        proxy_pass http://127.0.0.1:8080;")
        .expect_stdout_contains("+link: /etc/nginx/sites-available/demo");
    assert_eq!(
        s.hosts
            .exec("h1", "test -e /etc/nginx/sites-enabled/demo")
            .status
            .code(),
        Some(1)
    );

    let master = nginx_master(&s);
    s.converge().expect_code(0).expect_changed("h1", 3);
    via_nginx(&s, "/index.html", "hello from demo");
    assert_eq!(
        nginx_master(&s),
        master,
        "nginx was restarted, not reloaded"
    );
    assert_eq!(
        s.sh("h1", "readlink /etc/nginx/sites-enabled/demo").trim(),
        "/etc/nginx/sites-available/demo"
    );
    assert!(
        s.sh("h1", "test -d /var/www/letsencrypt && echo yes")
            .contains("yes")
    );
    let listing = s.sh(
        "h1",
        "ls -a /etc/nginx/sites-available /etc/nginx/sites-enabled",
    );
    assert!(!listing.contains("converge~"), "{listing}");

    s.converge().expect_code(0).expect_changed("h1", 0);
    s.diff().expect_code(0);

    // Drift: the site disabled by hand is enabled again.
    s.sh(
        "h1",
        "rm /etc/nginx/sites-enabled/demo && systemctl reload nginx",
    );
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("+link: /etc/nginx/sites-available/demo");
    s.converge().expect_code(0).expect_changed("h1", 1);
    via_nginx(&s, "/index.html", "hello from demo");
    s.diff().expect_code(0);
}

#[test]
fn an_invalid_site_never_goes_live() {
    let s = Scenario::new(1);
    s.playbook(&site(PLAIN));
    s.converge().expect_code(0);
    let live = s.sh("h1", "cat /etc/nginx/sites-available/demo");
    s.playbook(&site(
        r#"{ name: demo, server_name: demo.test, upstream: "127.0.0.1:8080", extra: "proxy_bufferz on;" }"#,
    ));
    for run in [s.diff(), s.converge()] {
        run.expect_code(1).expect_stdout_contains(
            "unknown directive \"proxy_bufferz\" in /etc/nginx/sites-enabled/demo:",
        );
    }
    assert_eq!(s.sh("h1", "cat /etc/nginx/sites-available/demo"), live);
    s.sh("h1", "nginx -t 2>&1");
    via_nginx(&s, "/index.html", "hello from demo");
    // A new site that fails is not even enabled.
    s.playbook(&site(
        r#"{ name: other, server_name: other.test, upstream: "127.0.0.1:8080", extra: "proxy_bufferz on;" }"#,
    ));
    s.converge().expect_code(1);
    assert_eq!(
        s.hosts
            .exec(
                "h1",
                "test -e /etc/nginx/sites-available/other || test -e /etc/nginx/sites-enabled/other"
            )
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn certbot_sites_serve_http_until_the_certificate_exists() {
    let s = Scenario::new(1);
    s.playbook(&site(
        r#"{ name: demo, server_name: demo.test, upstream: "127.0.0.1:8080", tls: certbot, redirect_http: true, hsts: true }"#,
    ));
    // No certbot task here: the https part has no certificate and says so.
    let first = s.converge();
    first
        .expect_code(1)
        .expect_stdout_contains("nginx_vhost demo (http)")
        .expect_stdout_contains(
            "certificate /etc/letsencrypt/live/demo.test/fullchain.pem does not exist yet",
        );
    let live = s.sh("h1", "cat /etc/nginx/sites-available/demo");
    assert!(!live.contains("ssl_certificate"), "{live}");
    // The HTTP part answers the ACME challenge and redirects the rest.
    s.sh(
        "h1",
        "mkdir -p /var/www/letsencrypt/.well-known/acme-challenge && echo token > /var/www/letsencrypt/.well-known/acme-challenge/t",
    );
    via_nginx(&s, "/.well-known/acme-challenge/t", "token");
    s.sh_until(
        "h1",
        "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: demo.test' http://127.0.0.1/x",
        "301 https://demo.test/x",
    );

    // What certbot would leave behind.
    s.sh(
        "h1",
        "d=/etc/letsencrypt/live/demo.test; mkdir -p $d && openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
         -subj /CN=demo.test -keyout $d/privkey.pem -out $d/fullchain.pem 2>/dev/null",
    );
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("+    listen 443 ssl http2;");
    s.converge().expect_code(0).expect_changed("h1", 1);
    let https = s.sh_until(
        "h1",
        "curl -sk -D- --resolve demo.test:443:127.0.0.1 https://demo.test/index.html",
        "hello from demo",
    );
    assert!(https.starts_with("HTTP/2 200"), "{https}");
    assert!(
        https.contains("strict-transport-security: max-age=63072000; includeSubDomains; preload"),
        "{https}"
    );
    s.converge().expect_code(0).expect_changed("h1", 0);
    s.diff().expect_code(0);
}

/// One request from this machine to h1's nginx, at once (no retry): the body.
fn get_now(s: &Scenario, port: u16) -> String {
    use std::io::{Read, Write};
    let ip = &s.hosts.host("h1").ip;
    let mut conn = std::net::TcpStream::connect((ip.as_str(), port)).expect("connect to nginx");
    conn.write_all(b"GET / HTTP/1.0\r\nHost: demo.test\r\n\r\n")
        .expect("send the request");
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .expect("read the response");
    response
        .split_once("\r\n\r\n")
        .map_or(response.clone(), |(_, body)| body.to_string())
}

fn generation(n: usize) -> String {
    site(&format!(
        r#"{{ name: demo, server_name: demo.test, upstream: "127.0.0.1:8080", extra: "return 200 gen{n};" }}"#
    ))
}

#[test]
fn the_first_request_after_a_change_gets_the_new_site() {
    let s = Scenario::new(1);
    for n in 1..=5 {
        s.playbook(&generation(n));
        s.converge().expect_code(0);
        assert_eq!(get_now(&s, 80), format!("gen{n}"), "change {n}");
    }
}

#[test]
fn a_site_the_master_refuses_at_reload_is_put_back() {
    let s = Scenario::new(1);
    s.playbook(&generation(1));
    s.converge().expect_code(0);
    let live = s.sh("h1", "cat /etc/nginx/sites-available/demo");
    // `nginx -t` does not bind ports, the master does: a port held by another process
    // passes the check and fails the reload.
    s.sh(
        "h1",
        "nohup python3 -m http.server 8099 --bind 0.0.0.0 >/dev/null 2>&1 & \
         until curl -s -o /dev/null http://127.0.0.1:8099/; do sleep 0.1; done",
    );
    s.playbook(&site(
        r#"{ name: demo, server_name: demo.test, upstream: "127.0.0.1:8080", listen_http: 8099, extra: "return 200 gen2;" }"#,
    ));
    s.converge()
        .expect_code(1)
        .expect_stdout_contains("kept its old workers")
        .expect_stdout_contains("bind() to 0.0.0.0:8099 failed (98: Address already in use)")
        .expect_stdout_contains(
            "nginx still serves the last good configuration; the previous demo is back on disk",
        );
    assert_eq!(get_now(&s, 80), "gen1");
    assert_eq!(s.sh("h1", "cat /etc/nginx/sites-available/demo"), live);
    // A restart (a reboot, say) picks up the last good site, not the refused one.
    s.sh("h1", "systemctl restart nginx");
    assert_eq!(get_now(&s, 80), "gen1");

    // A new site the master refuses is neither left in sites-available nor enabled.
    s.playbook(&format!(
        "{}    - nginx_vhost: {}\n",
        generation(1),
        r#"{ name: other, server_name: other.test, upstream: "127.0.0.1:8080", listen_http: 8099 }"#
    ));
    s.converge()
        .expect_code(1)
        .expect_stdout_contains("kept its old workers");
    let listing = s.sh(
        "h1",
        "ls -a /etc/nginx/sites-available /etc/nginx/sites-enabled",
    );
    assert!(!listing.contains("other"), "{listing}");
    assert_eq!(get_now(&s, 80), "gen1");
}
