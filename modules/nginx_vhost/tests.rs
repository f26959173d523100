use super::*;
use crate::module::Outcome;
use crate::module::Status;
use crate::module::testing::{self, FakeHost, TestParams, output};
use base64::Engine as _;

fn site(yaml: &str) -> Site {
    Site::from_params(&TestParams::new("nginx_vhost", yaml).params())
        .unwrap_or_else(|e| panic!("{}", e.message))
}

fn actions(yaml: &str) -> Vec<Box<dyn Action>> {
    testing::prepare(&NginxVhost, yaml, std::path::Path::new("."), &Value::Null)
        .unwrap_or_else(|e| panic!("{e}"))
}

const SEEDS: &str = r#"
name: myapp
server_name: api.example.com
upstream: "127.0.0.1:8080"
tls: certbot
redirect_http: true
hsts: true
"#;

#[test]
fn renders_the_seeds_site() {
    let s = site(SEEDS);
    insta::assert_snapshot!("seeds_full", s.full.unwrap());
    insta::assert_snapshot!("seeds_http_only", s.http_only);
}

#[test]
fn renders_a_plain_http_site_with_locations() {
    insta::assert_snapshot!(
        site(
            r#"
name: docs
server_name: [docs.example.com, www.docs.example.com]
listen_http: 8080
acme_webroot: /srv/acme
client_max_body_size: 10m
locations:
  - { path: /, root: /var/www/docs }
  - { path: /api/, proxy: "http://127.0.0.1:9000/" }
extra: |
  gzip on;

  access_log off;
"#
        )
        .http_only
    );
}

#[test]
fn renders_tls_files_on_other_ports() {
    insta::assert_snapshot!(
        site(
            r#"
name: admin
server_name: admin.internal
upstream: "unix:/run/admin.sock"
listen_http: 8080
listen_https: 8443
tls: { cert: /etc/ssl/admin.pem, key: /etc/ssl/private/admin.key }
redirect_http: true
hsts: { max_age: 300 }
"#
        )
        .full
        .unwrap()
    );
}

#[test]
fn input_errors_point_at_the_parameter() {
    let cases = [
        (
            "name: .x\nserver_name: a\nupstream: b\n",
            "1:7",
            "cannot name a site",
        ),
        (
            "name: x\nserver_name: \"a; b\"\nupstream: b\n",
            "2:14",
            "not a server name",
        ),
        (
            "name: x\nserver_name: []\nupstream: b\n",
            "2:14",
            "at least one server name",
        ),
        (
            "name: x\nserver_name: a\n",
            "1:7",
            "give upstream or locations",
        ),
        (
            "name: x\nserver_name: a\nupstream: \"b; evil\"\n",
            "3:11",
            "must be one word",
        ),
        (
            "name: x\nserver_name: a\nupstream: b\nredirect_http: true\n",
            "4:16",
            "need tls",
        ),
        (
            "name: x\nserver_name: a\nupstream: b\nhsts: true\n",
            "4:7",
            "needs tls",
        ),
        (
            "name: x\nserver_name: a\nupstream: b\ntls: letsencrypt\n",
            "4:6",
            "expected `certbot` or {cert, key}",
        ),
        (
            "name: x\nserver_name: a\nupstream: b\ntls: {cert: a.pem, key: /k}\n",
            "4:6",
            "must be an absolute path",
        ),
        (
            "name: x\nserver_name: a\nupstream: b\nclient_max_body_size: 10mb\n",
            "4:23",
            "is not a size",
        ),
        (
            "name: x\nserver_name: a\nupstream: b\nlocations: [{path: /, root: /srv}]\n",
            "4:13",
            "given twice (upstream is location /)",
        ),
        (
            "name: x\nserver_name: a\nlocations: [{path: /a, root: /srv, proxy: b}]\n",
            "3:13",
            "either root",
        ),
        (
            "name: x\nserver_name: a\nlocations: [{path: /a, alias: /srv}]\n",
            "3:24",
            "unknown parameter `alias`",
        ),
        (
            "name: x\nserver_name: a\nupstream: b\nhsts: {max_age: 1, subdomains: true}\n",
            "4:20",
            "unknown parameter `subdomains`",
        ),
    ];
    testing::assert_refused_at(&NginxVhost, &cases);
}

#[test]
fn certbot_splits_the_task_around_the_certificate() {
    let a = actions(SEEDS);
    assert_eq!(a.len(), 2);
    let (http, https) = (a[0].resources(), a[1].resources());
    assert_eq!(a[0].phase(), Some("http"));
    assert_eq!(
        http.provides,
        vec![Resource::AcmeChallenge("api.example.com".into())]
    );
    assert!(http.needs.contains(&Resource::Package("nginx".into())));
    assert!(!http.needs.iter().any(|r| matches!(r, Resource::Cert(_))));
    assert_eq!(a[1].phase(), Some("https"));
    assert!(https.provides.is_empty());
    assert!(
        https
            .needs
            .contains(&Resource::Cert("api.example.com".into()))
    );
    let plain = actions("name: x\nserver_name: a\nupstream: b\n");
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].phase(), None);
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A probe: `content` of sites-available/myapp (None: absent), whether it is enabled,
/// the webroot exists, and the certificate exists.
fn probe(content: Option<&str>, linked: bool, webroot: bool, cert: bool) -> String {
    let mut s = match content {
        Some(c) => format!(
            "site.stat=regular file/644/root/root/0\nsite.sha256={}\nsite.content:b64={}\n",
            files::sha256_hex(c.as_bytes()),
            b64(c)
        ),
        None => "site.stat=absent\n".into(),
    };
    if linked {
        s.push_str(&format!(
            "link.stat=symbolic link/777/root/root/9\nlink.target:b64={}\n",
            b64("/etc/nginx/sites-available/myapp\n")
        ));
    } else {
        s.push_str("link.stat=absent\n");
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    s.push_str(&format!(
        "webroot={}\nnginx=yes\ncert={}\n",
        yes(webroot),
        yes(cert)
    ));
    s
}

#[tokio::test]
async fn a_fresh_host_gets_the_http_part_first() {
    let a = actions(SEEDS);
    let s = site(SEEDS);
    let h = FakeHost::ok();
    let (out, _) = h
        .converge(&*a[0], &probe(None, false, false, false), true, &[])
        .await;
    let out = out.unwrap();
    let text = testing::diff_text(&out);
    assert!(text.contains("+type: directory\n"), "{text}");
    assert!(
        text.contains("+    listen 80;\n") && !text.contains("listen 443"),
        "{text}"
    );
    assert!(
        text.contains("+link: /etc/nginx/sites-available/myapp\n"),
        "{text}"
    );
    let sent = h.sent();
    assert!(sent[0].contains("exec nginx -t"), "{sent:?}");
    assert!(sent[1].contains(&files::dir_script("/var/www/letsencrypt", None, None, None)));
    assert!(
        sent[2].contains("mv -T -- \"$cvg_tmp\" ./myapp"),
        "{}",
        sent[2]
    );
    assert!(sent[3].contains("ln -s -- /etc/nginx/sites-available/myapp"));
    assert!(sent[4].contains("kill -HUP \"$m\"") && !sent[4].contains("restart"));
    assert_eq!(sent.len(), 5);
    // Then the https part, on the engine's fresh probe after certbot's change.
    let h = FakeHost::ok();
    let fresh = probe(Some(&s.http_only), true, true, true);
    let (out, _) = h.converge(&*a[1], &fresh, true, &[]).await;
    let text = testing::diff_text(&out.unwrap());
    assert!(text.contains("+    listen 443 ssl http2;\n"), "{text}");
    assert!(!text.contains("link"), "{text}");
    let sent = h.sent();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[0].contains("exec nginx -t"));
    assert!(sent[2].contains("kill -HUP \"$m\""));
}

#[tokio::test]
async fn the_https_part_waits_for_its_certificate() {
    let a = actions(SEEDS);
    let s = site(SEEDS);
    let h = FakeHost::ok();
    let p = probe(Some(&s.http_only), true, true, false);
    let (out, _) = h.converge(&*a[1], &p, true, &[]).await;
    let err = out.unwrap_err().to_string();
    assert_eq!(
        err,
        "certificate /etc/letsencrypt/live/api.example.com/fullchain.pem does not exist yet: \
         myapp keeps serving plain HTTP only (the certbot task for this name must succeed first)"
    );
    assert!(h.sent().is_empty());
}

#[tokio::test]
async fn check_mode_on_a_fresh_host_shows_both_parts_exactly() {
    let a = actions(SEEDS);
    let s = site(SEEDS);
    let fresh = probe(None, false, false, false);
    let h = FakeHost::ok();
    let (http, _) = h
        .converge(&*a[0], &fresh, false, &[Resource::Package("nginx".into())])
        .await;
    assert!(http.unwrap().changed());
    let assumed = [
        Resource::AcmeChallenge("api.example.com".into()),
        Resource::Cert("api.example.com".into()),
    ];
    let (https, _) = h.converge(&*a[1], &fresh, false, &assumed).await;
    let https = https.unwrap();
    // The https part diffs against what the http part would have written.
    assert_eq!(https.diffs.len(), 1);
    assert_eq!(https.diffs[0].before.as_deref(), Some(s.http_only.as_str()));
    assert_eq!(https.diffs[0].after.as_deref(), s.full.as_deref());
    // nginx -t ran for the http part only: the certificate is not there to test with.
    let sent = h.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("nginx -t"));
}

#[tokio::test]
async fn a_converged_site_is_ok_in_both_parts() {
    let a = actions(SEEDS);
    let s = site(SEEDS);
    let p = probe(s.full.as_deref(), true, true, true);
    for action in &a {
        let h = FakeHost::ok();
        let (out, _) = h.converge(&**action, &p, true, &[]).await;
        assert_eq!(out.unwrap().status, Status::Ok);
        assert!(h.sent().is_empty());
    }
}

#[tokio::test]
async fn a_changed_site_with_its_certificate_is_written_once_by_the_http_part() {
    let a = actions(SEEDS);
    let old = site(&SEEDS.replace("8080", "8081")).full.unwrap();
    let s = site(SEEDS);
    let h = FakeHost::ok();
    let (out, _) = h
        .converge(&*a[0], &probe(Some(&old), true, true, true), true, &[])
        .await;
    let text = testing::diff_text(&out.unwrap());
    insta::assert_snapshot!(text, @r#"
    --- host:/etc/nginx/sites-available/myapp (current)
    +++ host:/etc/nginx/sites-available/myapp (desired)
    @@ -24,7 +24,7 @@
         add_header Strict-Transport-Security "max-age=63072000; includeSubDomains; preload" always;
     
         location / {
    -        proxy_pass http://127.0.0.1:8081;
    +        proxy_pass http://127.0.0.1:8080;
             proxy_set_header Host $host;
             proxy_set_header X-Real-IP $remote_addr;
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    "#);
    // The https part then finds it done.
    let h = FakeHost::ok();
    let (out, _) = h
        .converge(
            &*a[1],
            &probe(s.full.as_deref(), true, true, true),
            true,
            &[],
        )
        .await;
    assert_eq!(out.unwrap().status, Status::Ok);
    assert!(h.sent().is_empty());
}

#[tokio::test]
async fn a_rejected_site_changes_nothing() {
    let a = actions("name: myapp\nserver_name: a\nupstream: b\n");
    let h = FakeHost::answering(|script, _| {
        if script.contains("nginx -t") {
            output(
                1,
                "",
                "nginx: [emerg] host not found in upstream \"b\" in /etc/nginx/sites-enabled/myapp:17\nnginx: configuration file /etc/nginx/nginx.conf test failed",
            )
        } else {
            output(0, "", "")
        }
    });
    let (out, _) = h
        .converge(&*a[0], &probe(None, false, true, false), true, &[])
        .await;
    let err = out.unwrap_err().to_string();
    assert!(err.starts_with("nginx -t with the new site (nothing live was changed) failed (exit 1): nginx: [emerg] host not found"), "{err}");
    assert_eq!(h.sent().len(), 1);
}

/// Run the real `nginx -t` of this machine on a candidate tree (a copy of /etc/nginx in
/// a temp dir, bind-mounted in a private mount namespace): /etc/nginx is not touched.
async fn nginx_t_here(yaml: &str) -> Result<Outcome, Failure> {
    let a = actions(yaml);
    let action = a.last().unwrap();
    let before = std::fs::read_dir("/etc/nginx/sites-enabled")
        .unwrap()
        .count();
    let result = testing::Local::default().run(&**action, false).await;
    assert_eq!(
        std::fs::read_dir("/etc/nginx/sites-enabled")
            .unwrap()
            .count(),
        before
    );
    result
}

/// The message of [`nginx_t_here`] refusing `yaml`.
async fn nginx_t_error(yaml: &str) -> String {
    nginx_t_here(yaml).await.unwrap_err().to_string()
}

#[tokio::test]
async fn real_nginx_t_accepts_a_good_site() {
    let out = nginx_t_here(
        "name: converge-test-good\nserver_name: good.test\nupstream: \"127.0.0.1:8080\"\n",
    )
    .await
    .unwrap();
    assert!(out.changed());
}

#[tokio::test]
async fn real_nginx_t_accepts_tls_with_existing_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=tls.test",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let yaml = format!(
        "name: converge-test-tls\nserver_name: tls.test\nupstream: \"127.0.0.1:8080\"\n\
         tls: {{cert: {}, key: {}}}\nredirect_http: true\nhsts: true\n",
        cert.display(),
        key.display()
    );
    assert!(nginx_t_here(&yaml).await.unwrap().changed());
}

#[tokio::test]
async fn real_nginx_t_rejects_a_bad_site_with_its_message() {
    let err = nginx_t_error(
        "name: converge-test-bad\nserver_name: bad.test\nupstream: \"127.0.0.1:8080\"\nextra: \"proxy_bufferz on;\"\n",
    ).await;
    assert!(
        err.contains(
            "unknown directive \"proxy_bufferz\" in /etc/nginx/sites-enabled/converge-test-bad:"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn missing_certificate_files_are_reported_not_tested() {
    let err = nginx_t_error(
        "name: converge-test-nocert\nserver_name: x.test\nupstream: b\ntls: {cert: /nonexistent/c.pem, key: /nonexistent/k.pem}\n",
    ).await;
    assert!(
        err.starts_with("certificate /nonexistent/c.pem does not exist yet"),
        "{err}"
    );
}

#[test]
fn the_hidden_link_temp_is_not_included_by_nginx() {
    // nginx's `include sites-enabled/*` is a glob: a hidden `.NAME.converge~` is skipped.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    let sites = dir.path().join("sites");
    std::fs::create_dir(&sites).unwrap();
    std::fs::write(sites.join(".x.converge~"), "garbage here\n").unwrap();
    std::fs::write(
        &conf,
        format!(
            "error_log /dev/null;\npid {}/pid;\nevents {{}}\nhttp {{ include {}/*; }}\n",
            dir.path().display(),
            sites.display()
        ),
    )
    .unwrap();
    let run = || {
        std::process::Command::new("nginx")
            .args(["-t", "-q", "-c"])
            .arg(&conf)
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(sites.join("y~"), "garbage here\n").unwrap();
    assert!(!run().status.success());
}

#[test]
fn hostile_server_names_are_refused_where_they_stand() {
    for bad in testing::HOSTILE
        .iter()
        .chain(&["~^www\\.", "a..b", "*", "x/y"])
    {
        let yaml = format!(
            "name: x\nserver_name: [ok.example, {}]\nupstream: b\n",
            testing::yaml_str(bad)
        );
        let err = testing::refused(&NginxVhost, &yaml);
        assert!(
            err.starts_with("play.yml:2:27: nginx_vhost: `server_name[1]`"),
            "{bad:?}: {err}"
        );
    }
    for good in [
        "example.com",
        "*.example.com",
        "example.*",
        ".example.com",
        "_",
        "10.0.0.1",
        "xn--caf-dma.example",
    ] {
        site(&format!("name: x\nserver_name: {good:?}\nupstream: b\n"));
    }
}

#[tokio::test]
async fn a_reload_the_master_refuses_puts_the_old_site_back() {
    let a = actions("name: myapp\nserver_name: a\nupstream: b\n");
    let stdin_of_writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = stdin_of_writes.clone();
    let h = FakeHost::answering(move |script, stdin| {
        if script.contains("kept its old workers") {
            output(
                3,
                "",
                "the nginx master (pid 9) kept its old workers for 10 s",
            )
        } else {
            if script.contains("mv -T --") {
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(stdin).into_owned());
            }
            output(0, "", "")
        }
    });
    let (out, _) = h
        .converge(
            &*a[0],
            &probe(Some("old site\n"), true, true, false),
            true,
            &[],
        )
        .await;
    let err = out.unwrap_err().to_string();
    assert!(
        err.starts_with(
            "reloading nginx failed (exit 3): the nginx master (pid 9) kept its old workers"
        ) && err.ends_with(
            "nginx still serves the last good configuration; the previous myapp is back on disk"
        ),
        "{err}"
    );
    let writes = stdin_of_writes.lock().unwrap().clone();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes[1], "old site\n");
    // The link was there already: it is left alone.
    assert!(!h.ran("rm -f -- ./myapp"));
}
