use super::*;
use crate::module::Outcome;
use crate::module::testing::{Local, TestParams, probed, sh};
use std::collections::HashSet;
use std::path::Path;

fn prepare(yaml: &str) -> InputResult<Vec<Box<dyn Action>>> {
    prepare_in_play(yaml, &["certbot"])
}

fn prepare_in_play(
    yaml: &str,
    play_modules: &'static [&'static str],
) -> InputResult<Vec<Box<dyn Action>>> {
    Certbot.prepare(
        &TestParams::new("certbot", yaml)
            .play_modules(play_modules)
            .params(),
    )
}

#[test]
fn standalone_is_refused_beside_an_nginx_vhost() {
    let yaml = "domains: [a.example]\nmethod: standalone\n";
    assert!(prepare_in_play(yaml, &["certbot"]).is_ok());
    let err = prepare_in_play(yaml, &["nginx_vhost", "certbot"])
        .err()
        .expect("refused");
    assert!(err.message.starts_with("play.yml:2:9:"), "{}", err.message);
    assert!(err.message.contains("port 80"), "{}", err.message);
}

/// The action itself (the trait object hides it).
fn action_of(yaml: &str) -> CertbotAction {
    action(
        &TestParams::new("certbot", yaml)
            .play_modules(&["certbot"])
            .params(),
    )
    .unwrap()
}

fn error(yaml: &str) -> String {
    match prepare(yaml) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(e) => e.message,
    }
}

#[test]
fn playbook_mistakes_are_located() {
    insta::assert_snapshot!(error("domains: [a.example, \"*.b.example\"]\n"), @"play.yml:1:22: certbot: `domains[1]`: `*.b.example`: wildcard names need a DNS challenge, which this module does not do");
    insta::assert_snapshot!(error("domains: [a.example, A.example]\n"), @"play.yml:1:22: certbot: `domains[1]`: `a.example` is listed twice");
    insta::assert_snapshot!(error("domains: a.example\nmethod: standalone\nwebroot: /srv/acme\n"), @"play.yml:3:10: certbot: `webroot`: a webroot is only used with `method: webroot`");
    insta::assert_snapshot!(error("domains: a.example\nserver: https://acme.test/dir\nstaging: true\n"), @"play.yml:3:10: certbot: `staging`: give either `server` or `staging: true`, not both");
    assert!(error("domains: []\n").contains("at least one domain"));
    assert!(error("domains: 192.0.2.1\n").contains("not a domain name"));
    assert!(error("domains: a.example\nemail: ops\n").contains("not an email address"));
    assert!(error("domains: a.example\nserver: acme.test\n").contains("ACME directory URL"));
    assert!(error("domains: a.example\nca_bundle: ca.pem\n").contains("absolute path"));
    assert!(error("domains: a.example\ndeploy_hook: \"a\\nb\"\n").contains("one shell line"));
    assert!(error("domains: a.example\nmethod: dns\n").contains("unknown variant `dns`"));
    assert!(error("domains: a.example\nkey_type: dsa\n").contains("unknown variant `dsa`"));
}

#[test]
fn resources_and_naming() {
    assert_eq!(Certbot.key_param(), Some("domains"));
    let a = &prepare("domains: [API.example.com, www.example.com]\n").unwrap()[0];
    let r = a.resources();
    assert_eq!(r.provides, [Resource::Cert("api.example.com".into())]);
    assert!(r.needs.contains(&Resource::Package("certbot".into())));
    assert!(
        r.needs
            .contains(&Resource::AcmeChallenge("api.example.com".into()))
    );
    assert!(r.needs.contains(&Resource::Path(DEFAULT_WEBROOT.into())));
    let standalone = &prepare("domains: a.example\nmethod: standalone\n").unwrap()[0];
    assert!(
        !standalone
            .resources()
            .needs
            .iter()
            .any(|n| matches!(n, Resource::AcmeChallenge(_)))
    );
}

#[test]
fn the_request_command() {
    let a = action_of(
        "domains: [a.example, b.example]\nemail: ops@example.com\n\
         server: https://127.0.0.1:14000/dir\nkey_type: ecdsa\n\
         ca_bundle: /etc/ssl/pebble ca.pem\n\
         deploy_hook: \"systemctl restart app && echo 'renewed' >> /var/log/renew.log\"\n",
    );
    // The webroot is made through the one write path, then certbot runs.
    let script = a.request_script(true);
    let webroot = files::dir_script("/var/www/letsencrypt", None, None, None);
    let request = script
        .strip_prefix(&format!("set -e\n{webroot}"))
        .unwrap_or_else(|| panic!("{script}"));
    insta::assert_snapshot!(request, @r#"
    REQUESTS_CA_BUNDLE='/etc/ssl/pebble ca.pem' certbot certonly --non-interactive --agree-tos --email ops@example.com --cert-name a.example -d a.example -d b.example --expand --force-renewal --webroot -w /var/www/letsencrypt --server https://127.0.0.1:14000/dir --key-type ecdsa --deploy-hook 'systemctl restart app && echo '\''renewed'\'' >> /var/log/renew.log'
    "#);
    // A hook reloading nginx: the script ends once nginx serves the new certificate.
    let n = action_of("domains: a.example\ndeploy_hook: systemctl reload nginx\n");
    let script = n.request_script(false);
    assert!(
        script.contains("--deploy-hook 'systemctl reload nginx'\n")
            && script.ends_with("if [ -n \"$m\" ]; then nginx_serves_new || exit; fi\n"),
        "{script}"
    );
    let b = action_of("domains: a.example\nmethod: standalone\nstaging: true\n");
    insta::assert_snapshot!(b.request_script(false), @r"
    set -e
    certbot certonly --non-interactive --agree-tos --register-unsafely-without-email --cert-name a.example -d a.example --force-renewal --standalone --server https://acme-staging-v02.api.letsencrypt.org/directory
    ");
}

#[test]
fn renewal_environment_files() {
    let a = action_of("domains: a.example\nca_bundle: '/etc/ssl/50% \"odd\".pem'\n");
    insta::assert_snapshot!(a.dropin_content().unwrap(), @r#"
    # Written by converge (certbot task): renewals reach the ACME server with this CA bundle.
    [Service]
    Environment="REQUESTS_CA_BUNDLE=/etc/ssl/50%% \"odd\".pem"
    "#);
    let b = action_of("domains: a.example\nca_bundle: /etc/ssl/pebble.pem\n");
    insta::assert_snapshot!(b.cron_content(), @r"
    # /etc/cron.d/certbot: crontab entries for the certbot package (written by converge)
    #
    # Upstream recommends attempting renewal twice a day. This entry does nothing on
    # hosts running systemd, where certbot.timer renews.
    SHELL=/bin/sh
    PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin
    REQUESTS_CA_BUNDLE=/etc/ssl/pebble.pem

    0 */12 * * * root test -x /usr/bin/certbot -a \! -d /run/systemd/system && perl -e 'sleep int(rand(43200))' && certbot -q renew --no-random-sleep-on-renew
    ");
    let c = action_of("domains: a.example\n");
    assert!(c.dropin_content().is_none());
    assert!(!c.cron_content().contains("REQUESTS_CA_BUNDLE"));
}

/// A certificate for `names`, valid for `days`, laid out as certbot leaves it.
fn lineage(root: &Path, names: &[&str], days: u32, renewal: &str) {
    let name = names[0];
    let live = root.join(format!("etc/letsencrypt/live/{name}"));
    let renewal_dir = root.join("etc/letsencrypt/renewal");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::create_dir_all(&renewal_dir).unwrap();
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    sh(&format!(
        "cd {} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout privkey.pem -out cert.pem -days {days} -subj /CN={name} \
         -addext subjectAltName={} 2>/dev/null",
        quote(live.to_str().unwrap()),
        san.join(",")
    ));
    std::fs::write(renewal_dir.join(format!("{name}.conf")), renewal).unwrap();
}

const RENEWAL: &str = "version = 2.1.0\n\
    cert = /etc/letsencrypt/live/a.example/cert.pem\n\
    \n\
    [renewalparams]\n\
    account = 9a4b42130de4056b507a1f5ece5ccd26\n\
    renew_hook = systemctl reload nginx\n\
    server = https://acme-v02.api.letsencrypt.org/directory\n\
    authenticator = webroot\n\
    webroot_path = /var/www/letsencrypt,\n\
    key_type = ecdsa\n\
    [[webroot_map]]\n\
    a.example = /var/www/letsencrypt\n";

/// Converge in check mode on a probe run against `root`.
async fn check(
    a: &CertbotAction,
    root: &Path,
    certbot_installed: bool,
) -> Result<Outcome, Failure> {
    let mut stdout = sh(&a.probe_script(root.to_str().unwrap()));
    // This machine's certbot (or its absence) must not decide the test.
    stdout = stdout.replace("certbot=yes\n", "");
    if certbot_installed {
        stdout.push_str("certbot=yes\n");
    }
    let mut host = Local::default();
    host.assumed = HashSet::from([Resource::Package("certbot".into())]);
    host.converge_with(a, &probed(&stdout), false).await
}

fn texts(outcome: &Outcome) -> String {
    outcome
        .diffs
        .iter()
        .filter(|d| d.path.starts_with("/etc/letsencrypt"))
        .map(|d| d.unified("web1"))
        .collect()
}

#[tokio::test]
async fn a_valid_certificate_for_these_names_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    lineage(dir.path(), &["a.example", "b.example"], 60, RENEWAL);
    let a = action_of(
        "domains: [a.example, b.example]\nkey_type: ecdsa\ndeploy_hook: systemctl reload nginx\n",
    );
    let out = check(&a, dir.path(), true).await.unwrap();
    assert_eq!(texts(&out), "");
}

#[tokio::test]
async fn a_missing_certificate_is_requested() {
    let dir = tempfile::tempdir().unwrap();
    let a = action_of("domains: [a.example, www.a.example]\ndeploy_hook: systemctl reload nginx\n");
    // certbot itself is coming from an earlier apt task (check mode).
    let out = check(&a, dir.path(), false).await.unwrap();
    assert!(out.changed());
    insta::assert_snapshot!(texts(&out), @r"
    --- web1:/etc/letsencrypt/live/a.example (current)
    +++ web1:/etc/letsencrypt/live/a.example (desired)
    @@ -1 +1,5 @@
    -certificate: absent
    +certificate: a.example (a.example, www.a.example)
    +expires: new certificate
    +server: https://acme-v02.api.letsencrypt.org/directory
    +method: webroot /var/www/letsencrypt
    +deploy_hook: systemctl reload nginx
    ");
}

#[tokio::test]
async fn added_names_and_expiry_show_in_the_diff() {
    let dir = tempfile::tempdir().unwrap();
    lineage(dir.path(), &["a.example"], 10, RENEWAL);
    let a = action_of("domains: [a.example, b.example]\ndeploy_hook: systemctl reload nginx\n");
    let out = check(&a, dir.path(), true).await.unwrap();
    let text = texts(&out);
    assert!(
        text.contains("-certificate: a.example (a.example)\n"),
        "{text}"
    );
    assert!(
        text.contains("+certificate: a.example (a.example, b.example)\n"),
        "{text}"
    );
    assert!(
        text.contains(" days left, due for renewal)\n+certificate"),
        "{text}"
    );
    assert!(text.contains("\n+expires: new certificate\n"), "{text}");
    assert!(text.contains(" server: https://acme-v02"), "{text}");
}

#[tokio::test]
async fn only_a_changed_hook_is_edited_in_place() {
    let dir = tempfile::tempdir().unwrap();
    lineage(dir.path(), &["a.example"], 60, RENEWAL);
    let a = action_of("domains: a.example\ndeploy_hook: systemctl reload haproxy\n");
    let out = check(&a, dir.path(), true).await.unwrap();
    let text = texts(&out);
    assert!(
        text.contains(
            "-deploy_hook: systemctl reload nginx\n+deploy_hook: systemctl reload haproxy\n"
        ),
        "{text}"
    );
    assert!(!text.contains("new certificate"), "{text}");
}

#[tokio::test]
async fn without_certbot_nothing_can_be_done() {
    let dir = tempfile::tempdir().unwrap();
    let a = action_of("domains: a.example\n");
    let stdout = sh(&a.probe_script(dir.path().to_str().unwrap())).replace("certbot=yes\n", "");
    let err = Local::default()
        .converge_with(&a, &probed(&stdout), false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("certbot is not installed"),
        "{err}"
    );
}

fn host_state(systemd: bool, timer: bool, dropin: Option<&str>, cron: Option<&str>) -> HostState {
    let file = |content: Option<&str>| match content {
        Some(c) => FileState {
            kind: files::Kind::File,
            mode: Some("0644".into()),
            owner: Some("root".into()),
            group: Some("root".into()),
            sha256: Some(files::sha256_hex(c.as_bytes())),
            content: Some(c.as_bytes().to_vec()),
            link_target: None,
        },
        None => FileState::absent(),
    };
    HostState {
        certbot: true,
        openssl: true,
        now: 0,
        cert_present: false,
        cert: None,
        renewal: file(None),
        systemd,
        timer_enabled: timer,
        timer_active: timer,
        dropin: file(dropin),
        cron: file(cron),
    }
}

#[test]
fn renewals_are_scheduled_with_the_ca_bundle() {
    let a = action_of("domains: a.example\nca_bundle: /etc/ssl/pebble.pem\n");
    // systemd, timer off, no drop-in: write it, reload, enable.
    let s = a.schedule(&host_state(true, false, None, None), false);
    // The new file's content and its owner and mode, then the timer.
    let paths: Vec<&str> = s.diffs.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, [DROPIN, DROPIN, "unit certbot.timer"]);
    assert!(s.script.starts_with(&format!(
        "{}set -e\n",
        files::dir_script("/etc/systemd/system/certbot.service.d", None, None, None)
    )));
    assert!(
        s.script
            .ends_with("systemctl daemon-reload\nsystemctl enable --now certbot.timer\n")
    );
    assert_eq!(s.stdin, a.dropin_content().unwrap().into_bytes());
    // All in place: nothing.
    let dropin = a.dropin_content().unwrap();
    let s = a.schedule(&host_state(true, true, Some(&dropin), None), false);
    assert!(s.diffs.is_empty() && s.script.is_empty());
    // ca_bundle gone from the playbook: our drop-in goes too.
    let plain = action_of("domains: a.example\n");
    let s = plain.schedule(&host_state(true, true, Some(&dropin), None), false);
    assert_eq!(s.diffs[0].after, None);
    assert_eq!(
        s.script,
        format!(
            "{}systemctl daemon-reload\n",
            files::remove_script("/etc/systemd/system/certbot.service.d/converge.conf", false)
        )
    );
    // The certbot package is coming: its timer will be enabled by it.
    assert!(
        plain
            .schedule(&host_state(true, false, None, None), true)
            .diffs
            .is_empty()
    );
}

#[test]
fn without_systemd_cron_renews() {
    let debian = "# the package's own file\n0 */12 * * * root certbot -q renew\n";
    let plain = action_of("domains: a.example\n");
    assert!(
        plain
            .schedule(&host_state(false, false, None, Some(debian)), false)
            .diffs
            .is_empty()
    );
    // Missing: written.
    let s = plain.schedule(&host_state(false, false, None, None), false);
    assert_eq!(s.diffs[0].path, CRON);
    // With a CA bundle: ours, with the environment line.
    let a = action_of("domains: a.example\nca_bundle: /etc/ssl/pebble.pem\n");
    let s = a.schedule(&host_state(false, false, None, Some(debian)), false);
    let text = s.diffs[0].unified("h");
    assert!(
        text.contains("+REQUESTS_CA_BUNDLE=/etc/ssl/pebble.pem"),
        "{text}"
    );
    // Our file with a CA bundle the playbook dropped: rewritten without it.
    let ours = a.cron_content();
    let s = plain.schedule(&host_state(false, false, None, Some(&ours)), false);
    assert!(s.diffs[0].unified("h").contains("-REQUESTS_CA_BUNDLE"));
}

#[test]
fn hostile_domains_and_emails_are_refused_where_they_stand() {
    use crate::module::testing::{HOSTILE, yaml_str};
    for bad in HOSTILE {
        let err = error(&format!("domains: [a.example, {}]\n", yaml_str(bad)));
        assert!(
            err.starts_with("play.yml:1:22: certbot: `domains[1]`:"),
            "{bad:?}: {err}"
        );
        let email = format!("{bad}@example.com");
        let err = error(&format!(
            "domains: a.example\nemail: {}\n",
            yaml_str(&email)
        ));
        assert!(
            err.starts_with("play.yml:2:8: certbot: `email`:")
                && err.contains("not an email address"),
            "{email:?}: {err}"
        );
    }
    for bad in ["ops@-x.example", "ops@example", "-ops@example.com"] {
        assert!(
            error(&format!("domains: a.example\nemail: {bad}\n")).contains("not an email address")
        );
    }
    action_of("domains: a.example\nemail: ops+certs@example.com\n");
}
