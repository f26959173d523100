//! `nginx_vhost`: a reverse-proxy site at /etc/nginx/sites-available/NAME, enabled by a
//! link in sites-enabled, rendered from `vhost.hbs`, tested with `nginx -t` before it
//! goes live (see `check`), and picked up by a reload, never a restart.
//!
//! With `tls: certbot` the task is two actions, so the DAG can put the certificate
//! between them: the `http` part (the port-80 server, which serves the ACME challenge)
//! before the `certbot` task, and the `https` part (the full site) after it. The full
//! site is never written before its certificate exists.

pub(crate) mod check;

use crate::error::InputResult;
use crate::module::files::{self, DesiredFile, FileState, Kind, Source};
use crate::module::{
    Action, Command, Diff, Exec, Failure, FollowUp, HostPath, HostView, Invalid, Mode, Module,
    Params, Plan, Probed, Resource, Resources, indented_lines, one_or_many,
};
use crate::node::PathStep;
use crate::playbook::template::engine;
use crate::quote::quote;
use async_trait::async_trait;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use std::sync::Arc;

pub struct NginxVhost;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VhostParams {
    name: String,
    #[serde(deserialize_with = "one_or_many")]
    server_name: Vec<ServerName>,
    upstream: Option<String>,
    listen_http: Option<u16>,
    listen_https: Option<u16>,
    tls: Option<Tls>,
    #[serde(default)]
    redirect_http: bool,
    hsts: Option<Hsts>,
    acme_webroot: Option<HostPath>,
    client_max_body_size: Option<Size>,
    #[serde(default)]
    locations: Vec<Location>,
    extra: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Location {
    path: String,
    root: Option<String>,
    proxy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tls {
    Certbot,
    Files { cert: String, key: String },
}

impl<'de> Deserialize<'de> for Tls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tls, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Files {
            cert: String,
            key: String,
        }
        match Value::deserialize(d)? {
            Value::String(s) if s == "certbot" => Ok(Tls::Certbot),
            v @ Value::Object(_) => serde_json::from_value::<Files>(v)
                .map(|f| Tls::Files {
                    cert: f.cert,
                    key: f.key,
                })
                .map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "expected `certbot` or {{cert, key}}, found {other}"
            ))),
        }
    }
}

#[derive(Debug)]
enum Hsts {
    Flag(bool),
    Policy {
        max_age: u64,
        include_subdomains: bool,
        preload: bool,
    },
}

impl<'de> Deserialize<'de> for Hsts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hsts, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Policy {
            #[serde(default = "two_years")]
            max_age: u64,
            #[serde(default)]
            include_subdomains: bool,
            #[serde(default)]
            preload: bool,
        }
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(Hsts::Flag(b)),
            v @ Value::Object(_) => serde_json::from_value::<Policy>(v)
                .map(|p| Hsts::Policy {
                    max_age: p.max_age,
                    include_subdomains: p.include_subdomains,
                    preload: p.preload,
                })
                .map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "expected true or {{max_age, include_subdomains, preload}}, found {other}"
            ))),
        }
    }
}

fn two_years() -> u64 {
    63_072_000
}

impl Hsts {
    fn header(&self) -> Option<String> {
        let (max_age, sub, preload) = match *self {
            Hsts::Flag(false) => return None,
            Hsts::Flag(true) => (two_years(), true, true),
            Hsts::Policy {
                max_age,
                include_subdomains,
                preload,
            } => (max_age, include_subdomains, preload),
        };
        let mut h = format!("max-age={max_age}");
        if sub {
            h.push_str("; includeSubDomains");
        }
        if preload {
            h.push_str("; preload");
        }
        Some(h)
    }
}

/// A word nginx reads as one token: nothing that ends a directive or opens a block.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && !s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '#')
        })
}

/// A name nginx matches without a regular expression: a host name, an IPv4 address,
/// `*.` or `.` in front, `.*` at the end, or `_` (no name). The first one names the
/// certificate and its directory, so no `/`, no `..`, nothing a shell or nginx would read
/// as more than one word.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
struct ServerName(String);

impl TryFrom<String> for ServerName {
    type Error = Invalid;

    fn try_from(name: String) -> Result<ServerName, Invalid> {
        let invalid = |message: String| Invalid {
            message,
            help: "a host name (IDNs in punycode), an IPv4 address, `*.example.com`, \
                   `example.*`, `.example.com` or `_`",
        };
        if name.starts_with('~') {
            return Err(invalid(format!(
                "`{name}`: regular-expression server names are not supported"
            )));
        }
        let core = name
            .strip_prefix("*.")
            .or_else(|| name.strip_prefix('.'))
            .unwrap_or(&name);
        let core = core.strip_suffix(".*").unwrap_or(core);
        let ok = !core.is_empty()
            && core
                .split('.')
                .all(|l| !l.is_empty() && !l.starts_with('-'))
            && core
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if ok {
            Ok(ServerName(name))
        } else {
            Err(invalid(format!(
                "`{}` is not a server name",
                name.escape_debug()
            )))
        }
    }
}

/// nginx's size: a number of bytes with an optional k, m or g.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
struct Size(String);

impl TryFrom<String> for Size {
    type Error = Invalid;

    fn try_from(size: String) -> Result<Size, Invalid> {
        let digits = size.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || size.len() - digits.len() > 1
        {
            return Err(Invalid {
                message: format!("`{size}` is not a size"),
                help: "a number of bytes with an optional k, m or g: \"10m\"",
            });
        }
        Ok(Size(size))
    }
}

const SITES_AVAILABLE: &str = "/etc/nginx/sites-available";
const SITES_ENABLED: &str = "/etc/nginx/sites-enabled";

impl Module for NginxVhost {
    fn name(&self) -> &'static str {
        "nginx_vhost"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("name")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let site = Arc::new(Site::from_params(params)?);
        let actions: Vec<Box<dyn Action>> = match &site.tls {
            Some(Tls::Certbot) => vec![
                Box::new(VhostAction {
                    site: site.clone(),
                    role: Role::Http,
                }),
                Box::new(VhostAction {
                    site,
                    role: Role::Https,
                }),
            ],
            _ => vec![Box::new(VhostAction {
                site,
                role: Role::Whole,
            })],
        };
        Ok(actions)
    }
}

/// Everything about one vhost, shared by its actions.
#[derive(Debug)]
struct Site {
    name: String,
    available: String,
    enabled: String,
    /// The first server name: it names the certificate and the ACME challenge.
    main_name: String,
    tls: Option<Tls>,
    /// The certificate and key the full site uses.
    cert_files: Option<(String, String)>,
    acme_webroot: String,
    /// The port-80 server only.
    http_only: String,
    /// Both servers; None without TLS.
    full: Option<String>,
}

impl Site {
    fn from_params(params: &Params<'_>) -> InputResult<Site> {
        let p: VhostParams = params.parse()?;
        check_site_name(params, &p.name)?;
        let Some(ServerName(main_name)) = p.server_name.first().cloned() else {
            return Err(params.error_at("server_name", "give at least one server name"));
        };
        check_words(params, &p)?;
        let acme_webroot = p
            .acme_webroot
            .clone()
            .map_or_else(|| "/var/www/letsencrypt".into(), String::from);
        let locations = locations(&p, params)?;
        let tls = p.tls.clone();
        let (listen_http, listen_https) = check_tls_and_ports(params, &p)?;
        let hsts = p.hsts.as_ref().and_then(Hsts::header);
        let cert_files = cert_files(tls.as_ref(), &main_name);
        let redirect = (tls.is_some() && p.redirect_http).then(|| https_redirect(listen_https));
        let extra = indented(p.extra.as_deref());
        let mut ctx = json!({
            "server_names": p.server_name.iter().map(|n| n.0.as_str()).collect::<Vec<_>>().join(" "),
            "listen_http": listen_http,
            "listen_https": listen_https,
            "acme_webroot": acme_webroot,
            "redirect": redirect,
            "https": false,
            "cert": cert_files.as_ref().map(|c| &c.0),
            "key": cert_files.as_ref().map(|c| &c.1),
            "hsts": hsts,
            "client_max_body_size": p.client_max_body_size.as_ref().map(|s| &s.0),
            "locations": locations,
            "extra": extra,
        });
        let render = |ctx: &Value| {
            engine()
                .render_text(include_str!("vhost.hbs"), ctx)
                .map_err(|e| params.error_at("name", format!("rendering vhost.hbs: {e}")))
        };
        let http_only = render(&ctx)?;
        let full = match tls {
            Some(_) => {
                ctx["https"] = Value::Bool(true);
                Some(render(&ctx)?)
            }
            None => None,
        };
        Ok(Site {
            available: format!("{SITES_AVAILABLE}/{}", p.name),
            enabled: format!("{SITES_ENABLED}/{}", p.name),
            name: p.name,
            main_name,
            tls,
            cert_files,
            acme_webroot,
            http_only,
            full,
        })
    }
}

/// The site's file name under sites-available: not hidden, no backup nginx would skip.
fn check_site_name(params: &Params<'_>, name: &str) -> InputResult<()> {
    let valid_name = !name.starts_with('.')
        && !name.ends_with('~')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid_name {
        return Err(params
            .error_at("name", format!("`{name}` cannot name a site"))
            .help("letters, digits and `._-`, not hidden: it names sites-available/NAME"));
    }
    Ok(())
}

/// Values that go into the configuration as one word.
fn check_words(params: &Params<'_>, p: &VhostParams) -> InputResult<()> {
    for (key, value) in [
        ("acme_webroot", p.acme_webroot.as_deref()),
        ("upstream", p.upstream.as_deref()),
    ] {
        if let Some(v) = value.filter(|v| !is_token(v)) {
            return Err(params.error_at(
                key,
                format!("`{v}` must be one word without `;{{}}#` or quotes"),
            ));
        }
    }
    Ok(())
}

/// TLS files are absolute paths; redirects and HSTS need TLS; the ports differ. Returns
/// the HTTP and HTTPS ports.
fn check_tls_and_ports(params: &Params<'_>, p: &VhostParams) -> InputResult<(u16, u16)> {
    let tls = &p.tls;
    if let Some(Tls::Files { cert, key }) = &tls {
        for (what, path) in [("cert", cert), ("key", key)] {
            if !path.starts_with('/') || !is_token(path) {
                return Err(
                    params.error_at("tls", format!("{what} `{path}` must be an absolute path"))
                );
            }
        }
    }
    if tls.is_none() && p.redirect_http {
        return Err(params.error_at("redirect_http", "redirects to HTTPS need tls"));
    }
    if tls.is_none() && p.hsts.as_ref().and_then(Hsts::header).is_some() {
        return Err(params.error_at("hsts", "HSTS is sent over HTTPS only: it needs tls"));
    }
    let listen_http = p.listen_http.unwrap_or(80);
    let listen_https = p.listen_https.unwrap_or(443);
    if listen_http == 0 || listen_https == 0 || (tls.is_some() && listen_http == listen_https) {
        return Err(params.error_at(
            "listen_http",
            "the HTTP and HTTPS ports must be distinct and not 0",
        ));
    }
    Ok((listen_http, listen_https))
}

/// The certificate and key the HTTPS part serves.
fn cert_files(tls: Option<&Tls>, main_name: &str) -> Option<(String, String)> {
    match tls {
        Some(Tls::Certbot) => Some((
            format!("/etc/letsencrypt/live/{main_name}/fullchain.pem"),
            format!("/etc/letsencrypt/live/{main_name}/privkey.pem"),
        )),
        Some(Tls::Files { cert, key }) => Some((cert.clone(), key.clone())),
        None => None,
    }
}

/// Where plain HTTP is sent.
fn https_redirect(listen_https: u16) -> String {
    if listen_https == 443 {
        "https://$host$request_uri".to_string()
    } else {
        format!("https://$host:{listen_https}$request_uri")
    }
}

/// The user's extra lines, indented inside the server block.
fn indented(extra: Option<&str>) -> Vec<String> {
    extra.map_or_else(Vec::new, |e| indented_lines(e, "    "))
}

/// The locations as the template wants them: the upstream as `/`, then the user's.
fn locations(p: &VhostParams, params: &Params<'_>) -> InputResult<Vec<Value>> {
    let mut locations = Vec::new();
    if let Some(upstream) = &p.upstream {
        locations.push(json!({"path": "/", "root": null, "proxy": proxy_url(upstream)}));
    }
    for (i, l) in p.locations.iter().enumerate() {
        let at = |msg: String| {
            params
                .node
                .find(&[PathStep::Key("locations".into()), PathStep::Index(i)])
                .error(format!("nginx_vhost: `locations.{i}`: {msg}"))
        };
        if !is_token(&l.path) {
            return Err(at(format!("`{}` is not a location path", l.path)));
        }
        let (root, proxy) = match (&l.root, &l.proxy) {
            (Some(root), None) if root.starts_with('/') && is_token(root) => {
                (Some(root.clone()), None)
            }
            (None, Some(proxy)) if is_token(proxy) => (None, Some(proxy_url(proxy))),
            (Some(_), Some(_)) | (None, None) => {
                return Err(at(
                    "give either root (a directory) or proxy (an upstream)".into()
                ));
            }
            _ => return Err(at("root must be an absolute path, proxy one word".into())),
        };
        if locations.iter().any(|loc| loc["path"] == l.path.as_str()) {
            let why = if l.path == "/" && p.upstream.is_some() {
                " (upstream is location /)"
            } else {
                ""
            };
            return Err(at(format!("location `{}` is given twice{why}", l.path)));
        }
        locations.push(json!({"path": l.path, "root": root, "proxy": proxy}));
    }
    if locations.is_empty() {
        return Err(params
            .error_at("name", "nothing to serve: give upstream or locations")
            .help("upstream: \"127.0.0.1:8080\" proxies everything to the app"));
    }
    Ok(locations)
}

/// An upstream as `proxy_pass` wants it: `127.0.0.1:8080` means `http://127.0.0.1:8080`.
fn proxy_url(upstream: &str) -> String {
    if upstream.starts_with("http://") || upstream.starts_with("https://") {
        upstream.to_string()
    } else {
        format!("http://{upstream}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The site in one go (no TLS, or certificate files the playbook provides).
    Whole,
    /// `tls: certbot`, before the certificate: the port-80 server (or the full site when
    /// the certificate already exists), and the ACME webroot.
    Http,
    /// `tls: certbot`, after the certificate: the full site.
    Https,
}

#[derive(Debug)]
struct VhostAction {
    site: Arc<Site>,
    role: Role,
}

/// The host as the probe saw it.
#[derive(Debug, Clone)]
struct Seen {
    file: FileState,
    link: FileState,
    webroot: bool,
    nginx: bool,
    cert: bool,
}

impl Seen {
    fn from_probe(probed: &Probed) -> Seen {
        Seen {
            file: FileState::from_probe(probed, "site"),
            link: FileState::from_probe(probed, "link"),
            webroot: probed.field("webroot").as_deref() == Some("yes"),
            nginx: probed.field("nginx").as_deref() == Some("yes"),
            cert: probed.field("cert").as_deref() == Some("yes"),
        }
    }
}

impl VhostAction {
    fn challenge(&self) -> Resource {
        Resource::AcmeChallenge(self.site.main_name.clone())
    }

    fn cert_resource(&self) -> Option<Resource> {
        match &self.site.tls {
            Some(Tls::Certbot) => Some(Resource::Cert(self.site.main_name.clone())),
            Some(Tls::Files { cert, .. }) => Some(Resource::Path(cert.clone())),
            None => None,
        }
    }

    /// What the `http` part writes, given whether the certificate exists: the full site
    /// once it can, so the two parts never undo each other.
    fn http_part_content(&self, cert: bool) -> &str {
        match (&self.site.full, cert) {
            (Some(full), true) => full,
            _ => &self.site.http_only,
        }
    }

    fn desired_content(&self, seen: &Seen) -> &str {
        match self.role {
            Role::Http => self.http_part_content(seen.cert),
            Role::Whole | Role::Https => self.site.full.as_deref().unwrap_or(&self.site.http_only),
        }
    }

    /// The host as this part finds it. In apply mode the engine probes again after any
    /// change, so the probe is current. In check mode nothing changed: the `https` part
    /// diffs against what the `http` part would have written.
    fn seen_now(&self, probed: &Probed, host: &HostView<'_>) -> Seen {
        let seen = Seen::from_probe(probed);
        if self.role != Role::Https || !host.coming(&self.challenge()) {
            return seen;
        }
        let content = self.http_part_content(seen.cert).as_bytes().to_vec();
        Seen {
            file: FileState {
                kind: Kind::File,
                mode: Some("0644".into()),
                owner: Some("root".into()),
                group: Some("root".into()),
                sha256: Some(files::sha256_hex(&content)),
                content: Some(content),
                link_target: None,
            },
            link: FileState {
                kind: Kind::Link,
                link_target: Some(self.site.available.clone()),
                ..seen.link.clone()
            },
            webroot: true,
            ..seen
        }
    }
}

impl Action for VhostAction {
    fn phase(&self) -> Option<&'static str> {
        match self.role {
            Role::Whole => None,
            Role::Http => Some("http"),
            Role::Https => Some("https"),
        }
    }

    fn reads(&self, _found: &Probed) -> Option<Vec<Resource>> {
        let site = &self.site;
        let mut reads = vec![
            Resource::Path(site.available.clone()),
            Resource::Path(site.enabled.clone()),
            Resource::Path(site.acme_webroot.clone()),
            Resource::Dir(SITES_AVAILABLE.into()),
            Resource::Package("nginx".into()),
        ];
        if let Some((cert, key)) = &site.cert_files {
            reads.extend([Resource::Path(cert.clone()), Resource::Path(key.clone())]);
        }
        Some(reads)
    }

    /// Its files; the reload changes nothing another probe reads.
    fn touches(&self) -> Option<Vec<Resource>> {
        let site = &self.site;
        Some(vec![
            Resource::Path(site.available.clone()),
            Resource::Path(site.enabled.clone()),
            Resource::Dir(site.acme_webroot.clone()),
        ])
    }

    fn resources(&self) -> Resources {
        let mut r = Resources::for_path(&self.site.available, None, None);
        r.needs.push(Resource::Package("nginx".into()));
        if self.role != Role::Https {
            r.provides.push(self.challenge());
        }
        if self.role != Role::Http {
            if let Some(Tls::Files { cert, key }) = &self.site.tls {
                r.needs.push(Resource::Path(cert.clone()));
                r.needs.push(Resource::Path(key.clone()));
            }
            if self.site.tls == Some(Tls::Certbot) {
                r.needs.push(Resource::Cert(self.site.main_name.clone()));
            }
        }
        r
    }

    fn probe(&self) -> String {
        let site = &self.site;
        let mut s = files::probe("site", &site.available, files::Read::Content);
        s.push_str(&files::probe("link", &site.enabled, files::Read::Metadata));
        s.push_str(&format!(
            "if [ -d {} ]; then echo webroot=yes; else echo webroot=no; fi\n\
             if [ -d {SITES_AVAILABLE} ] && command -v nginx >/dev/null; then echo nginx=yes; else echo nginx=no; fi\n",
            quote(&site.acme_webroot)
        ));
        if let Some((cert, key)) = &site.cert_files {
            s.push_str(&format!(
                "if [ -s {} ] && [ -s {} ]; then echo cert=yes; else echo cert=no; fi\n",
                quote(cert),
                quote(key)
            ));
        }
        s
    }

    fn plan<'a>(&'a self, probed: &'a Probed, host: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let site = &self.site;
        let seen = self.seen_now(probed, host);
        for (state, path) in [(&seen.file, &site.available), (&seen.link, &site.enabled)] {
            if state.kind == Kind::Dir {
                return Err(Failure::new(format!("{path} is a directory")));
            }
        }
        let content = self.desired_content(&seen);
        let desired = DesiredFile::system_config(&site.available, content.as_bytes(), host);
        let mut diffs = Vec::new();
        let mut plan = Plan::unchanged();
        let makes_webroot = self.role != Role::Https && !seen.webroot;
        if makes_webroot {
            diffs.extend(Diff::of_metadata(
                site.acme_webroot.clone(),
                &[("type", None)],
                &[("type", Some("directory".into()))],
            ));
        }
        let file_diffs = files::diff(&seen.file, &desired);
        let content_changed = desired.content_differs(&seen.file);
        diffs.extend(file_diffs.iter().cloned());
        let link_diff = self.link_diff(&seen.link);
        let link_changed = link_diff.is_some();
        diffs.extend(link_diff);

        if content_changed || link_changed {
            plan.checks
                .extend(self.check_new_site(&seen, content, host)?);
        }
        if makes_webroot {
            plan.changes.push(Command::new(
                format!("creating {}", site.acme_webroot),
                files::dir_script(&site.acme_webroot, None, None, None),
            ));
        }
        if !file_diffs.is_empty() {
            plan.changes.push(files::write(&desired));
        }
        if link_changed {
            plan.changes.push(Command::new(
                format!("enabling {}", site.enabled),
                files::link_script(&site.enabled, &site.available, None),
            ));
        }
        if content_changed || link_changed {
            let old_secret = seen
                .file
                .content
                .as_ref()
                .is_some_and(|c| host.is_secret(c));
            plan.follow_up = Some(Box::new(Reload {
                action: self,
                seen,
                file: !file_diffs.is_empty(),
                link: link_changed,
                old_secret,
            }));
        }
        plan.diffs = diffs;
        Ok(plan)
    }
}

impl VhostAction {
    /// The enabling link as it is and as it should be; None when it is right.
    fn link_diff(&self, link: &FileState) -> Option<Diff> {
        let site = &self.site;
        let now = match link.kind {
            Kind::Link => link.link_target.as_ref().map(|t| format!("link: {t}\n")),
            Kind::Absent => None,
            _ => Some("type: file\n".into()),
        };
        let want = format!("link: {}\n", site.available);
        (now.as_deref() != Some(&want)).then(|| Diff::new(&site.enabled, now, Some(want)))
    }

    /// What a new site needs before it may go live: its certificate and nginx, unless an
    /// earlier task brings them; and `nginx -t` on it when there is something to test.
    fn check_new_site<'a>(
        &self,
        seen: &Seen,
        content: &'a str,
        host: &HostView<'_>,
    ) -> Result<Option<Command<'a>>, Failure> {
        let site = &self.site;
        let needs_cert = site.full.as_deref() == Some(content);
        let cert_assumed = self.cert_resource().is_some_and(|c| host.coming(&c));
        if needs_cert && !seen.cert && !cert_assumed {
            let cert = site.cert_files.as_ref().map_or("", |c| c.0.as_str());
            return Err(Failure::new(format!(
                "certificate {cert} does not exist yet: {} keeps serving plain HTTP only{}",
                site.name,
                if site.tls == Some(Tls::Certbot) {
                    " (the certbot task for this name must succeed first)"
                } else {
                    ""
                }
            )));
        }
        let nginx_assumed = host.coming(&Resource::Package("nginx".into()));
        if !seen.nginx && !nginx_assumed {
            return Err(Failure::new(format!(
                "nginx is not installed ({SITES_AVAILABLE} or the nginx binary is missing)"
            )));
        }
        // Without nginx or the certificate (check mode, assumed) there is nothing to test against.
        Ok((seen.nginx && (seen.cert || !needs_cert)).then(|| {
            Command::new(
                "nginx -t with the new site (nothing live was changed)",
                check::test_script(&site.name),
            )
            .with_stdin(content.as_bytes())
        }))
    }
}

/// Reload nginx after the site changed; when the master refuses the new configuration,
/// put the previous site back.
struct Reload<'a> {
    action: &'a VhostAction,
    seen: Seen,
    file: bool,
    link: bool,
    /// The previous site held a secret: restored without a diff of its lines.
    old_secret: bool,
}

#[async_trait]
impl FollowUp for Reload<'_> {
    fn left_out(&self) -> String {
        "nginx reload".into()
    }

    async fn run(&self, host: &dyn Exec) -> Result<(), Failure> {
        let Err(refused) = host
            .run(Command::new("reloading nginx", check::reload_script()))
            .await
        else {
            return Ok(());
        };
        let name = &self.action.site.name;
        let restored = match self.action.restore(self, host).await {
            Ok(()) => format!("the previous {name} is back on disk"),
            Err(e) => format!("restoring the previous {name} failed too: {e}"),
        };
        Err(Failure::new(format!(
            "{refused}\nnginx still serves the last good configuration; {restored}"
        )))
    }
}

impl VhostAction {
    /// Put back what the probe saw at the site's file and link, so that a configuration
    /// the master refused at reload is not picked up by a later restart either. The link
    /// first: a new site's link never points at a removed file.
    async fn restore(&self, reload: &Reload<'_>, host: &dyn Exec) -> Result<(), Failure> {
        let site = &self.site;
        let seen = &reload.seen;
        if reload.link {
            match (&seen.link.kind, &seen.link.link_target) {
                (Kind::Link, Some(target)) => {
                    host.run(Command::new(
                        format!("restoring {}", site.enabled),
                        files::link_script(&site.enabled, target, None),
                    ))
                    .await?;
                }
                (Kind::Absent, _) => {
                    host.run(Command::new(
                        "disabling the new site",
                        files::remove_script(&site.enabled, false),
                    ))
                    .await?;
                }
                _ => {
                    return Err(Failure::new(format!(
                        "{} was not a link before: not restored",
                        site.enabled
                    )));
                }
            }
        }
        if reload.file {
            match (&seen.file.kind, &seen.file.content) {
                (Kind::File, Some(content)) => {
                    let mode = seen
                        .file
                        .mode
                        .as_deref()
                        .and_then(|m| u32::from_str_radix(m, 8).ok());
                    let old = DesiredFile {
                        path: &site.available,
                        content: Source::Bytes(content),
                        mode: Some(Mode(mode.unwrap_or(0o644))),
                        owner: seen.file.owner.as_deref(),
                        group: seen.file.group.as_deref(),
                        validate: None,
                        secret: reload.old_secret,
                    };
                    host.run(files::write(&old)).await?;
                }
                (Kind::Absent, _) => {
                    host.run(Command::new(
                        "removing the new site",
                        files::remove_script(&site.available, false),
                    ))
                    .await
                    .map(drop)?;
                }
                _ => {
                    return Err(Failure::new(format!(
                        "{} was not a small regular file before: not restored",
                        site.available
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
