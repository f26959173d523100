//! `certbot` on a real host against pebble on this machine: one request, then none
//! while valid; added names, a changed deploy hook, renewals by certbot's timer service
//! with the private CA bundle.

use crate::scenario::Scenario;
use crate::support::pebble::Pebble;

fn site(pebble: &Pebble, certbot: &str) -> String {
    format!(
        r#"
- hosts: all
  vars: {{ acme: "{}" }}
  tasks:
    - file: {{ path: /etc/ssl/pebble-ca.pem, src: pebble-ca.pem, mode: "0644" }}
    - certbot:
        email: ops@example.com
        server: "{{{{acme}}}}"
        ca_bundle: /etc/ssl/pebble-ca.pem
{certbot}"#,
        pebble.directory()
    )
}

/// `openssl x509 -noout` with `args` on h1's certificate.
fn cert(s: &Scenario, args: &str) -> String {
    s.sh(
        "h1",
        &format!("openssl x509 -noout {args} -in /etc/letsencrypt/live/h1.test/cert.pem"),
    )
}

fn serial(s: &Scenario) -> String {
    cert(s, "-serial")
}

/// The certificate's subjectAltName extension.
fn names(s: &Scenario) -> String {
    cert(s, "-ext subjectAltName")
}

fn deployments(s: &Scenario) -> usize {
    s.sh("h1", "cat /root/deployed.log 2>/dev/null || true")
        .lines()
        .count()
}

#[test]
fn one_request_then_none_while_valid() {
    let s = Scenario::new(1);
    let pebble = Pebble::start(&s.hosts.bridge_ip());
    s.file("pebble-ca.pem", &pebble.ca_pem());
    let hook = "        deploy_hook: \"echo deployed $RENEWED_DOMAINS >> /root/deployed.log\"\n";
    s.playbook(&site(
        &pebble,
        &format!("        domains: [h1.test, www.h1.test]\n{hook}"),
    ));

    s.diff()
        .expect_code(2)
        .expect_stdout_contains("--- h1:/etc/letsencrypt/live/h1.test (current)")
        .expect_stdout_contains("-certificate: absent\n+certificate: h1.test (h1.test, www.h1.test)\n+expires: new certificate\n")
        .expect_stdout_contains("+Environment=\"REQUESTS_CA_BUNDLE=/etc/ssl/pebble-ca.pem\"");

    s.converge().expect_code(0).expect_changed("h1", 2);
    let san = names(&s);
    assert!(san.contains("DNS:h1.test, DNS:www.h1.test"), "{san}");
    assert_eq!(
        s.sh("h1", "cat /root/deployed.log"),
        "deployed h1.test www.h1.test\n"
    );
    let conf = s.sh("h1", "cat /etc/letsencrypt/renewal/h1.test.conf");
    assert!(
        conf.contains(&format!("server = {}", pebble.directory())),
        "{conf}"
    );
    assert!(
        conf.contains("renew_hook = echo deployed $RENEWED_DOMAINS >> /root/deployed.log"),
        "{conf}"
    );
    assert_eq!(
        s.sh("h1", "systemctl show -p Environment certbot.service")
            .trim(),
        "Environment=REQUESTS_CA_BUNDLE=/etc/ssl/pebble-ca.pem"
    );
    assert_eq!(
        s.sh(
            "h1",
            "systemctl is-enabled certbot.timer; systemctl is-active certbot.timer"
        ),
        "enabled\nactive\n"
    );

    // Valid and for exactly these names: no request, no change.
    let first = serial(&s);
    s.converge().expect_code(0).expect_changed("h1", 0);
    s.diff().expect_code(0);
    assert_eq!(serial(&s), first);

    // A name added: a new certificate (--expand) for all three.
    s.playbook(&site(
        &pebble,
        &format!("        domains: [h1.test, www.h1.test, api.h1.test]\n{hook}"),
    ));
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("-certificate: h1.test (h1.test, www.h1.test)\n")
        .expect_stdout_contains("+certificate: h1.test (h1.test, www.h1.test, api.h1.test)\n");
    s.converge().expect_code(0).expect_changed("h1", 1);
    let san = names(&s);
    assert!(san.contains("DNS:api.h1.test"), "{san}");
    assert_eq!(deployments(&s), 2);
    s.converge().expect_code(0).expect_changed("h1", 0);

    // Only the deploy hook changed: written into the renewal conf, no new certificate.
    let second = serial(&s);
    s.playbook(&site(
        &pebble,
        "        domains: [h1.test, www.h1.test, api.h1.test]\n        deploy_hook: \"echo 'reloaded, all' >> /root/deployed.log\"\n",
    ));
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("-deploy_hook: echo deployed $RENEWED_DOMAINS >> /root/deployed.log\n+deploy_hook: echo 'reloaded, all' >> /root/deployed.log\n");
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(serial(&s), second);
    assert_eq!(deployments(&s), 2);
    let conf = s.sh("h1", "cat /etc/letsencrypt/renewal/h1.test.conf");
    assert!(
        conf.contains(r#"renew_hook = "echo 'reloaded, all' >> /root/deployed.log""#),
        "{conf}"
    );
    s.converge().expect_code(0).expect_changed("h1", 0);

    // Drift: the renewal environment removed by hand is put back.
    s.sh(
        "h1",
        "rm /etc/systemd/system/certbot.service.d/converge.conf && systemctl daemon-reload",
    );
    s.diff().expect_code(2).expect_stdout_contains(
        "+++ h1:/etc/systemd/system/certbot.service.d/converge.conf (desired)",
    );
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert!(
        s.sh("h1", "systemctl show -p Environment certbot.service")
            .contains("REQUESTS_CA_BUNDLE")
    );
    s.diff().expect_code(0);
}

#[test]
fn renewals_reach_the_private_server_with_the_ca_bundle() {
    let s = Scenario::new(1);
    // Certificates valid 10 days: due for renewal from the start.
    let pebble = Pebble::start_with_validity(&s.hosts.bridge_ip(), Some(10 * 86400));
    s.file("pebble-ca.pem", &pebble.ca_pem());
    // Standalone: certbot answers on port 80 itself, so nginx must not hold it.
    s.sh("h1", "systemctl stop nginx");
    s.playbook(&site(
        &pebble,
        "        domains: h1.test\n        method: standalone\n        deploy_hook: \"echo deployed >> /root/deployed.log\"\n",
    ));
    s.converge().expect_code(0).expect_changed("h1", 2);
    assert_eq!(deployments(&s), 1);
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("days left, due for renewal)\n");

    // certbot's own renewal service (what certbot.timer starts), with converge's drop-in.
    let before = serial(&s);
    s.sh("h1", "systemctl start certbot.service");
    assert_ne!(serial(&s), before, "renewed");
    assert_eq!(deployments(&s), 2);
    let conf = s.sh("h1", "cat /etc/letsencrypt/renewal/h1.test.conf");
    assert!(conf.contains("authenticator = standalone"), "{conf}");
}

/// The serial of the certificate h1's nginx serves for h1.test, asked once from this
/// machine (no retry).
fn served_serial(s: &Scenario) -> String {
    let ip = &s.hosts.host("h1").ip;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {ip}:443 -servername h1.test </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A deploy hook reloading nginx returns before the new workers serve; certbot's own
/// work after the hook usually outlasts that, but not under load: the task waits for it.
#[test]
fn a_certificate_whose_hook_reloads_nginx_is_served_when_reported() {
    let s = Scenario::new(1);
    let pebble = Pebble::start(&s.hosts.bridge_ip());
    s.file("pebble-ca.pem", &pebble.ca_pem());
    let certbot = |domains: &str| {
        site(
            &pebble,
            &format!(
                "        domains: {domains}\n        deploy_hook: \"systemctl reload nginx\"\n"
            ),
        )
    };
    s.playbook(&format!(
        "{}    - nginx_vhost: {{ name: h1, server_name: h1.test, locations: [{{ path: /, root: /srv }}], tls: certbot }}\n",
        certbot("[h1.test]")
    ));
    s.converge().expect_code(0);
    assert_eq!(served_serial(&s), serial(&s));
    // A name added: a new certificate, put live by the hook's reload only, and the
    // certbot task is the run's last.
    for domains in [
        "[h1.test, www.h1.test]",
        "[h1.test, www.h1.test, api.h1.test]",
    ] {
        let before = serial(&s);
        s.playbook(&certbot(domains));
        s.converge().expect_code(0).expect_changed("h1", 1);
        assert_eq!(served_serial(&s), serial(&s));
        assert_ne!(serial(&s), before);
    }
}
