//! `certbot`: a certificate for a set of names from an ACME server (Let's Encrypt by
//! default), requested only when missing, different or due for renewal, and renewed
//! by certbot's own timer (or cron) with the same server, CA bundle and deploy hook.
//!
//! The probe never runs certbot (slow Python): it reads the renewal configuration and
//! asks `openssl` for the live certificate's expiry and names.

mod state;

use crate::error::InputResult;
use crate::module::files::{self, DesiredFile, FileState, Source};
use crate::module::{
    Action, Command, Diff, Failure, HostView, Module, Params, Plan, Probed, Resource, Resources,
    metadata_lines, one_or_many,
};
use crate::modules::nginx_vhost::check;
use crate::node::PathStep;
use crate::quote::{quote, quote_all};
use serde::Deserialize;
use state::{CertInfo, RenewalConf, Request, Wanted};

pub struct Certbot;

const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
const DEFAULT_WEBROOT: &str = "/var/www/letsencrypt";
const DROPIN_DIR: &str = "/etc/systemd/system/certbot.service.d";
const DROPIN: &str = "/etc/systemd/system/certbot.service.d/converge.conf";
const CRON: &str = "/etc/cron.d/certbot";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertbotParams {
    #[serde(deserialize_with = "one_or_many")]
    domains: Vec<String>,
    email: Option<String>,
    #[serde(default)]
    method: Method,
    webroot: Option<String>,
    server: Option<String>,
    #[serde(default)]
    staging: bool,
    key_type: Option<KeyType>,
    ca_bundle: Option<String>,
    deploy_hook: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Method {
    #[default]
    Webroot,
    Standalone,
}

impl Method {
    /// certbot's `authenticator` (and its command-line flag without `--`).
    fn authenticator(self) -> &'static str {
        match self {
            Method::Webroot => "webroot",
            Method::Standalone => "standalone",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KeyType {
    Rsa,
    Ecdsa,
}

impl KeyType {
    fn word(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ecdsa => "ecdsa",
        }
    }
}

impl Module for Certbot {
    fn name(&self) -> &'static str {
        "certbot"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("domains")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        Ok(vec![Box::new(action(params)?)])
    }
}

fn action(params: &Params<'_>) -> InputResult<CertbotAction> {
    let p: CertbotParams = params.parse()?;
    let mut domains: Vec<String> = Vec::new();
    for (i, domain) in p.domains.iter().enumerate() {
        let domain = domain.trim().to_lowercase();
        let at = [PathStep::Key("domains".into()), PathStep::Index(i)];
        if let Err(why) = check_domain(&domain) {
            return Err(params.error_at_path(&at, why));
        }
        if domains.contains(&domain) {
            return Err(params.error_at_path(&at, format!("`{domain}` is listed twice")));
        }
        domains.push(domain);
    }
    if domains.is_empty() {
        return Err(params
            .error_at("domains", "give at least one domain")
            .help("the certificate is named after the first domain"));
    }
    if p.method == Method::Standalone && params.play_modules.contains(&"nginx_vhost") {
        return Err(params
            .error_at(
                "method",
                "standalone needs port 80, which this play's nginx_vhost serves",
            )
            .help("use `method: webroot`: nginx serves the challenge from the webroot"));
    }
    if p.method == Method::Standalone && p.webroot.is_some() {
        return Err(params
            .error_at("webroot", "a webroot is only used with `method: webroot`")
            .help("standalone answers the challenge with certbot's own server on port 80"));
    }
    let webroot = p.webroot.unwrap_or_else(|| DEFAULT_WEBROOT.to_string());
    let webroot = match webroot.trim_end_matches('/') {
        "" => webroot,
        trimmed => trimmed.to_string(),
    };
    if !webroot.starts_with('/') {
        return Err(params.error_at("webroot", "must be an absolute path"));
    }
    let server = match (p.server, p.staging) {
        (Some(_), true) => {
            return Err(params
                .error_at(
                    "staging",
                    "give either `server` or `staging: true`, not both",
                )
                .help("staging means Let's Encrypt's staging server"));
        }
        (Some(s), false) => s,
        (None, true) => LETS_ENCRYPT_STAGING.to_string(),
        (None, false) => LETS_ENCRYPT.to_string(),
    };
    if !(server.starts_with("https://") || server.starts_with("http://"))
        || server.contains(char::is_whitespace)
    {
        return Err(params
            .error_at(
                "server",
                "an ACME directory URL, like https://acme.example/directory",
            )
            .help("for Let's Encrypt, leave `server` out"));
    }
    if let Some(email) = &p.email
        && let Err(why) = check_email(email)
    {
        return Err(params
            .error_at("email", why)
            .help("the ACME account's contact, like ops@example.com"));
    }
    if let Some(bundle) = &p.ca_bundle
        && (!bundle.starts_with('/') || bundle.contains(char::is_control))
    {
        return Err(params
            .error_at("ca_bundle", "an absolute path of a PEM file on the host")
            .help("certbot and its renewals trust this CA bundle (REQUESTS_CA_BUNDLE)"));
    }
    // certbot keeps the hook on one line of its renewal configuration.
    if let Some(hook) = &p.deploy_hook
        && (hook.contains(char::is_control) || state::configobj_value(hook).is_none())
    {
        return Err(params
            .error_at("deploy_hook", "one shell line, without line breaks")
            .help("put longer hooks in a script and call it"));
    }
    Ok(CertbotAction {
        name: domains[0].clone(),
        domains,
        email: p.email,
        method: p.method,
        webroot,
        server,
        key_type: p.key_type,
        ca_bundle: p.ca_bundle,
        deploy_hook: p.deploy_hook,
    })
}

/// An address certbot takes as one `--email` value: `LOCAL@DOMAIN` in the characters
/// addresses use in practice, nothing that reads as an option or breaks a line.
fn check_email(email: &str) -> Result<(), String> {
    let bad = || format!("`{}` is not an email address", email.escape_debug());
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && !local.starts_with(['-', '.'])
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b));
    if !local_ok || check_domain(&domain.to_lowercase()).is_err() {
        return Err(bad());
    }
    Ok(())
}

/// A name an HTTP-01 challenge can prove: no wildcards, no IP addresses.
fn check_domain(domain: &str) -> Result<(), String> {
    if domain.starts_with("*.") {
        return Err(format!(
            "`{domain}`: wildcard names need a DNS challenge, which this module does not do"
        ));
    }
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !labels_ok || !domain.contains('.') || domain.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "`{domain}` is not a domain name like api.example.com"
        ));
    }
    Ok(())
}

#[derive(Debug)]
struct CertbotAction {
    /// certbot's `--cert-name`: the first domain.
    name: String,
    domains: Vec<String>,
    email: Option<String>,
    method: Method,
    webroot: String,
    server: String,
    key_type: Option<KeyType>,
    ca_bundle: Option<String>,
    deploy_hook: Option<String>,
}

/// The host's side, as the probe saw it.
#[derive(Debug)]
struct HostState {
    certbot: bool,
    openssl: bool,
    /// Host time, seconds since the epoch: certbot renews by the host's clock.
    now: i64,
    cert_present: bool,
    cert: Option<CertInfo>,
    renewal: FileState,
    systemd: bool,
    timer_enabled: bool,
    timer_active: bool,
    dropin: FileState,
    cron: FileState,
}

impl CertbotAction {
    fn renewal_path(&self, root: &str) -> String {
        format!("{root}/etc/letsencrypt/renewal/{}.conf", self.name)
    }

    /// The probe, reading certbot's files under `root` ("" on a host; a temp dir in tests).
    fn probe_script(&self, root: &str) -> String {
        let cert = quote(&format!(
            "{root}/etc/letsencrypt/live/{}/cert.pem",
            self.name
        ))
        .into_owned();
        format!(
            "echo \"now=$(date +%s)\"\n\
             command -v certbot >/dev/null 2>&1 && echo certbot=yes\n\
             command -v openssl >/dev/null 2>&1 && echo openssl=yes\n\
             if [ -f {cert} ]; then echo cert=yes; \
             printf 'cert.info:b64=%s\\n' \"$(openssl x509 -noout -enddate -ext subjectAltName -in {cert} | base64 -w0)\"; fi\n\
             {renewal}\
             if [ -d /run/systemd/system ]; then echo systemd=yes; \
             echo \"timer.enabled=$(systemctl is-enabled certbot.timer 2>/dev/null)\"; \
             echo \"timer.active=$(systemctl is-active certbot.timer 2>/dev/null)\"; fi\n\
             {dropin}{cron}",
            renewal = files::probe("renewal", &self.renewal_path(root), files::Read::Content),
            dropin = files::probe("dropin", DROPIN, files::Read::Content),
            cron = files::probe("cron", CRON, files::Read::Content),
        )
    }

    fn read_state(probed: &Probed) -> HostState {
        let fields = probed.fields();
        let text = |k: &str| {
            fields
                .get(k)
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
        };
        let yes = |k: &str| text(k).as_deref() == Some("yes");
        HostState {
            certbot: yes("certbot"),
            openssl: yes("openssl"),
            now: text("now").and_then(|n| n.parse().ok()).unwrap_or(0),
            cert_present: yes("cert"),
            cert: text("cert.info").and_then(|t| state::parse_openssl(&t)),
            renewal: FileState::from_fields(&fields, "renewal"),
            systemd: yes("systemd"),
            timer_enabled: text("timer.enabled").is_some_and(|v| v.starts_with("enabled")),
            timer_active: text("timer.active").as_deref() == Some("active"),
            dropin: FileState::from_fields(&fields, "dropin"),
            cron: FileState::from_fields(&fields, "cron"),
        }
    }

    fn wanted(&self) -> Wanted<'_> {
        Wanted {
            names: &self.domains,
            server: &self.server,
            authenticator: self.method.authenticator(),
            webroot: (self.method == Method::Webroot).then_some(self.webroot.as_str()),
            key_type: self.key_type.map(KeyType::word),
        }
    }

    fn method_text(&self) -> String {
        match self.method {
            Method::Webroot => format!("webroot {}", self.webroot),
            Method::Standalone => "standalone".into(),
        }
    }

    /// The certificate as `key: value` lines, before and after.
    fn certificate_diff(
        &self,
        cert: Option<&CertInfo>,
        conf: Option<&RenewalConf>,
        request: Option<&Request>,
        now: i64,
    ) -> Option<Diff> {
        let path = format!("/etc/letsencrypt/live/{}", self.name);
        let key_type = self.key_type.map(|k| k.word().to_string());
        let current = cert.map(|cert| {
            let conf = conf.cloned().unwrap_or_default();
            vec![
                (
                    "certificate",
                    Some(format!("{} ({})", self.name, cert.names.join(", "))),
                ),
                ("expires", Some(expiry_text(cert.not_after, now))),
                (
                    "server",
                    Some(conf.server.clone().unwrap_or_else(|| "unknown".into())),
                ),
                ("method", Some(conf_method(&conf))),
                // certbot before 1.x wrote no key_type: its keys were RSA.
                (
                    "key_type",
                    key_type
                        .as_ref()
                        .map(|_| conf.key_type.clone().unwrap_or("rsa".into())),
                ),
                ("deploy_hook", conf.renew_hook.clone()),
            ]
        });
        let desired = match (request, &current) {
            // No request: only the deploy hook can change (edited in place).
            (None, Some(current)) => {
                let mut lines = current.clone();
                for (key, value) in &mut lines {
                    if *key == "deploy_hook" {
                        *value = self.deploy_hook.clone();
                    }
                }
                lines
            }
            _ => vec![
                (
                    "certificate",
                    Some(format!("{} ({})", self.name, self.domains.join(", "))),
                ),
                ("expires", Some("new certificate".into())),
                ("server", Some(self.server.clone())),
                ("method", Some(self.method_text())),
                ("key_type", key_type.clone()),
                ("deploy_hook", self.deploy_hook.clone()),
            ],
        };
        let before = current.map_or_else(
            || "certificate: absent\n".to_string(),
            |c| metadata_lines(&c),
        );
        let after = metadata_lines(&desired);
        (before != after).then(|| Diff::new(path, Some(before), Some(after)))
    }

    /// `certbot certonly` for exactly these names, trusting `ca_bundle`.
    fn request_script(&self, expand: bool) -> String {
        let mut args: Vec<String> = vec![
            "certbot".into(),
            "certonly".into(),
            "--non-interactive".into(),
            "--agree-tos".into(),
        ];
        match &self.email {
            Some(email) => args.extend(["--email".into(), email.clone()]),
            None => args.push("--register-unsafely-without-email".into()),
        }
        args.extend(["--cert-name".into(), self.name.clone()]);
        for domain in &self.domains {
            args.extend(["-d".into(), domain.clone()]);
        }
        if expand {
            args.push("--expand".into());
        }
        // The decision is made here: a server, method or key type change, or an
        // early renewal, must not be answered with "not yet due for renewal".
        args.push("--force-renewal".into());
        match self.method {
            Method::Webroot => args.extend(["--webroot".into(), "-w".into(), self.webroot.clone()]),
            Method::Standalone => args.push("--standalone".into()),
        }
        args.extend(["--server".into(), self.server.clone()]);
        if let Some(key_type) = self.key_type {
            args.extend(["--key-type".into(), key_type.word().into()]);
        }
        // The hook is the user's shell line: certbot runs it; here it is one argument.
        if let Some(hook) = &self.deploy_hook {
            args.extend(["--deploy-hook".into(), hook.clone()]);
        }
        let mut s = String::from("set -e\n");
        if self.method == Method::Webroot {
            s.push_str(&files::dir_script(&self.webroot, None, None, None));
        }
        if let Some(bundle) = &self.ca_bundle {
            s.push_str(&format!("REQUESTS_CA_BUNDLE={} ", quote(bundle)));
        }
        s.push_str(&quote_all(&args));
        s.push('\n');
        // A hook reloading nginx returns before nginx serves the new certificate, and
        // certbot does not always outlast it (seen under load): the task ends once nginx
        // serves it. Only a reload keeps the master whose workers are watched.
        if self.deploy_hook.as_deref().is_some_and(|h| {
            ["reload nginx", "nginx -s reload", "reload-or-restart nginx"]
                .iter()
                .any(|r| h.contains(r))
        }) {
            return check::serving_after(&s);
        }
        s
    }

    /// The systemd drop-in that gives renewals the CA bundle.
    fn dropin_content(&self) -> Option<String> {
        let bundle = self.ca_bundle.as_ref()?;
        // systemd's quoting inside "...": backslashes and quotes escaped, % doubled.
        let escaped = bundle
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%");
        Some(render(include_str!("dropin.conf.hbs"), &escaped))
    }

    fn cron_content(&self) -> String {
        render(
            include_str!("cron.hbs"),
            self.ca_bundle.as_deref().unwrap_or(""),
        )
    }

    /// Renewal scheduling: what differs, and how to make it so.
    fn schedule(&self, host: &HostState, package_coming: bool) -> Schedule {
        let mut plan = Schedule::default();
        if host.systemd {
            match self.dropin_content() {
                Some(content) => {
                    let desired = plain_file(DROPIN, content.as_bytes());
                    let diffs = files::diff(&host.dropin, &desired);
                    if !diffs.is_empty() {
                        plan.script
                            .push_str(&files::dir_script(DROPIN_DIR, None, None, None));
                        plan.script.push_str(&files::write_script(&desired));
                        plan.stdin = content.clone().into_bytes();
                        plan.script.push_str("systemctl daemon-reload\n");
                    }
                    plan.diffs.extend(diffs);
                }
                None if host.dropin.exists() => {
                    let before = host
                        .dropin
                        .content
                        .as_ref()
                        .map(|c| String::from_utf8_lossy(c).into_owned());
                    plan.diffs.push(Diff::new(DROPIN, before, None));
                    plan.script.push_str(&files::remove_script(DROPIN, false));
                    plan.script.push_str("systemctl daemon-reload\n");
                }
                None => {}
            }
            // A package about to be installed enables its own timer.
            if !(package_coming || host.timer_enabled && host.timer_active) {
                let yes_no = |b: bool| Some(if b { "yes" } else { "no" }.to_string());
                plan.diffs.extend(Diff::of_metadata(
                    "unit certbot.timer",
                    &[
                        ("enabled", yes_no(host.timer_enabled)),
                        ("active", yes_no(host.timer_active)),
                    ],
                    &[("enabled", yes_no(true)), ("active", yes_no(true))],
                ));
                plan.script
                    .push_str("systemctl enable --now certbot.timer\n");
            }
        } else {
            // Without systemd, /etc/cron.d/certbot renews: the package's entry, or ours
            // when the CA bundle must be in its environment (or when it is missing).
            let ours = host
                .cron
                .content
                .as_deref()
                .is_some_and(|c| String::from_utf8_lossy(c).contains("REQUESTS_CA_BUNDLE"));
            let missing = !host.cron.exists() && !package_coming;
            if self.ca_bundle.is_some() || ours || missing {
                let content = self.cron_content();
                let desired = plain_file(CRON, content.as_bytes());
                let diffs = files::diff(&host.cron, &desired);
                if !diffs.is_empty() {
                    plan.script.push_str(&files::write_script(&desired));
                    plan.stdin = content.clone().into_bytes();
                }
                plan.diffs.extend(diffs);
            }
        }
        plan
    }
}

/// Renewal scheduling to do: one exec, with the one file it writes on stdin.
#[derive(Debug, Default)]
struct Schedule {
    diffs: Vec<Diff>,
    script: String,
    stdin: Vec<u8>,
}

fn render(template: &str, ca_bundle: &str) -> String {
    let json = serde_json::json!({ "ca_bundle": ca_bundle });
    crate::playbook::template::engine()
        .render_text(template, &json)
        .expect("the module's own templates, whose one variable is always set")
}

fn plain_file<'a>(path: &'a str, content: &'a [u8]) -> DesiredFile<'a> {
    DesiredFile {
        path,
        content: Source::Bytes(content),
        mode: Some(crate::module::Mode(0o644)),
        owner: Some("root"),
        group: Some("root"),
        validate: None,
        secret: false,
    }
}

fn conf_method(conf: &RenewalConf) -> String {
    match conf.authenticator.as_deref() {
        Some("webroot") => format!("webroot {}", conf.webroot_path.join(", ")),
        Some(other) => other.to_string(),
        None => "unknown".into(),
    }
}

fn expiry_text(not_after: i64, now: i64) -> String {
    let days = (not_after - now).div_euclid(86400);
    let date = state::date_text(not_after);
    if not_after <= now {
        format!("{date} (expired)")
    } else if days < state::RENEW_BEFORE_DAYS {
        format!("{date} ({days} days left, due for renewal)")
    } else {
        format!("{date} ({days} days left)")
    }
}

impl Action for CertbotAction {
    fn resources(&self) -> Resources {
        let mut needs = vec![Resource::Package("certbot".into())];
        if self.method == Method::Webroot {
            needs.push(Resource::AcmeChallenge(self.name.clone()));
            needs.push(Resource::Path(self.webroot.clone()));
        }
        needs.extend(self.ca_bundle.clone().map(Resource::Path));
        Resources {
            provides: vec![Resource::Cert(self.name.clone())],
            needs,
        }
    }

    fn probe(&self) -> String {
        self.probe_script("")
    }

    fn plan<'a>(
        &'a self,
        probed: &'a Probed,
        host_view: &HostView<'_>,
    ) -> Result<Plan<'a>, Failure> {
        let host = Self::read_state(probed);
        let package_coming =
            !host.certbot && host_view.coming(&Resource::Package("certbot".into()));
        if !host.certbot && !package_coming {
            return Err(Failure::new(
                "certbot is not installed: add `apt: { name: certbot }` before this task",
            ));
        }
        if host.cert_present && host.cert.is_none() {
            return Err(Failure::new(if host.openssl {
                format!(
                    "cannot read /etc/letsencrypt/live/{}/cert.pem with openssl",
                    self.name
                )
            } else {
                "openssl is not installed: it reads the certificate's expiry and names".into()
            }));
        }
        let conf = host
            .renewal
            .content
            .as_deref()
            .map(|c| state::parse_renewal(&String::from_utf8_lossy(c)));
        let request = state::decide(host.cert.as_ref(), conf.as_ref(), &self.wanted(), host.now);
        let mut diffs: Vec<Diff> = Vec::new();
        diffs.extend(self.certificate_diff(
            host.cert.as_ref(),
            conf.as_ref(),
            request.as_ref(),
            host.now,
        ));
        // Without a new request, a changed deploy hook is edited into the renewal conf.
        let hook_edit = match (&request, &conf, &host.renewal.content) {
            (None, Some(conf), Some(text)) if conf.renew_hook != self.deploy_hook => Some(
                state::with_renew_hook(&String::from_utf8_lossy(text), self.deploy_hook.as_deref()),
            ),
            _ => None,
        };
        let schedule = self.schedule(&host, package_coming);
        diffs.extend(schedule.diffs);
        let mut plan = Plan::with_diffs(diffs);
        if let Some(request) = &request {
            plan.changes.push(Command::new(
                format!("certbot for {} ({})", self.domains.join(", "), request.why),
                self.request_script(request.expand),
            ));
        }
        if let Some(text) = hook_edit {
            let path = self.renewal_path("");
            let desired = DesiredFile {
                path: &path,
                content: Source::Bytes(text.as_bytes()),
                mode: None,
                owner: None,
                group: None,
                validate: None,
                secret: false,
            };
            let (what, script) = {
                let write = files::write(&desired);
                (write.what, write.script)
            };
            plan.changes
                .push(Command::new(what, script).with_stdin(text.into_bytes()));
        }
        if !schedule.script.is_empty() {
            plan.changes.push(
                Command::new(
                    "scheduling certbot renewals",
                    format!("set -e\n{}", schedule.script),
                )
                .with_stdin(schedule.stdin),
            );
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests;
