//! What a host's certificate looks like, read without running certbot: the renewal
//! configuration certbot keeps (`/etc/letsencrypt/renewal/NAME.conf`, a configobj
//! file) and the live certificate as `openssl x509 -noout -enddate -ext
//! subjectAltName` prints it; and whether a new certificate must be requested.

/// Renew this long before expiry, as certbot does by default.
pub const RENEW_BEFORE_DAYS: i64 = 30;

/// The live certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Expiry, seconds since the epoch.
    pub not_after: i64,
    /// The DNS names it covers, lower case, in the certificate's order.
    pub names: Vec<String>,
}

/// The parts of `renewal/NAME.conf` that decide renewals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenewalConf {
    pub server: Option<String>,
    pub authenticator: Option<String>,
    pub webroot_path: Vec<String>,
    pub key_type: Option<String>,
    /// certbot stores `--deploy-hook` as `renew_hook`.
    pub renew_hook: Option<String>,
}

/// Read openssl's `notAfter=Nov 25 15:45:19 2031 GMT` and SAN lines.
pub fn parse_openssl(text: &str) -> Option<CertInfo> {
    let not_after = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("notAfter="))
        .and_then(parse_openssl_date)?;
    let mut names = Vec::new();
    let mut in_san = false;
    for line in text.lines() {
        if line
            .trim_start()
            .starts_with("X509v3 Subject Alternative Name")
        {
            in_san = true;
            continue;
        }
        if in_san {
            if !line.starts_with(' ') {
                break;
            }
            names.extend(
                line.split(',')
                    .filter_map(|n| n.trim().strip_prefix("DNS:"))
                    .map(str::to_lowercase),
            );
        }
    }
    Some(CertInfo { not_after, names })
}

/// `Nov 25 15:45:19 2031 GMT` (the day may be space-padded) as seconds since the epoch.
fn parse_openssl_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [month, day, time, year, "GMT"] = parts[..] else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms[..] else {
        return None;
    };
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `2031-11-25` of seconds since the epoch.
pub fn date_text(epoch: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.max(0).unsigned_abs());
    let mut text = humantime::format_rfc3339_seconds(time).to_string();
    text.truncate(10);
    text
}

/// The `[renewalparams]` values of a renewal configuration.
pub fn parse_renewal(text: &str) -> RenewalConf {
    let mut conf = RenewalConf::default();
    let mut in_params = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            // `[[webroot_map]]` is a subsection: its keys are not renewal parameters.
            in_params = line == "[renewalparams]";
            continue;
        }
        if !in_params || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "server" => conf.server = Some(unquote(value)),
            "authenticator" => conf.authenticator = Some(unquote(value)),
            "key_type" => conf.key_type = Some(unquote(value)),
            "renew_hook" => conf.renew_hook = Some(unquote(value)),
            "webroot_path" => {
                conf.webroot_path = value
                    .split(',')
                    .map(|v| unquote(v.trim()))
                    .filter(|v| !v.is_empty())
                    .collect()
            }
            _ => {}
        }
    }
    conf
}

/// A configobj value: quoted (`"..."`, `'...'`, triple quotes) or bare with an
/// optional ` # comment`.
fn unquote(value: &str) -> String {
    for q in ["\"\"\"", "'''", "\"", "'"] {
        if value.len() >= 2 * q.len()
            && value.starts_with(q)
            && let Some(end) = value[q.len()..].find(q)
        {
            return value[q.len()..q.len() + end].to_string();
        }
    }
    match value.find(" #") {
        Some(i) => value[..i].trim_end().to_string(),
        None => value.to_string(),
    }
}

/// A value written so that configobj reads it back unchanged; None when it cannot be.
pub fn configobj_value(value: &str) -> Option<String> {
    let plain = !value.is_empty()
        && value.trim() == value
        && !value.starts_with('[')
        && !value.contains([',', '#', '"', '\'']);
    if plain {
        return Some(value.to_string());
    }
    ["\"", "'", "\"\"\"", "'''"]
        .into_iter()
        // A triple-quoted value must not end in its quote character either.
        .find(|q| !(value.contains(q) || q.len() == 3 && value.ends_with(&q[..1])))
        .map(|q| format!("{q}{value}{q}"))
}

/// The renewal configuration with `renew_hook` set to `hook` (or removed), the rest kept.
pub fn with_renew_hook(text: &str, hook: Option<&str>) -> String {
    let line = hook.and_then(|h| configobj_value(h).map(|v| format!("renew_hook = {v}")));
    let mut out: Vec<String> = Vec::new();
    let mut in_params = false;
    let mut placed = false;
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') {
            in_params = t == "[renewalparams]";
            out.push(l.to_string());
            // Right after the header, before any `[[subsection]]` could start.
            if in_params && !placed {
                out.extend(line.clone());
                placed = true;
            }
            continue;
        }
        let is_hook = t
            .split_once('=')
            .is_some_and(|(k, _)| k.trim() == "renew_hook");
        if in_params && is_hook {
            continue;
        }
        out.push(l.to_string());
    }
    if !placed && line.is_some() {
        out.push("[renewalparams]".into());
        out.extend(line);
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// What the playbook asks for.
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    pub names: &'a [String],
    pub server: &'a str,
    /// `webroot` or `standalone`.
    pub authenticator: &'a str,
    pub webroot: Option<&'a str>,
    pub key_type: Option<&'a str>,
}

/// A new certificate is needed; `expand` when it only adds names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub expand: bool,
    pub why: String,
}

/// Whether to ask the ACME server for a certificate now.
pub fn decide(
    cert: Option<&CertInfo>,
    conf: Option<&RenewalConf>,
    wanted: &Wanted<'_>,
    now: i64,
) -> Option<Request> {
    let request = |why: String| Some(Request { expand: false, why });
    let (Some(cert), Some(conf)) = (cert, conf) else {
        return request("no certificate".into());
    };
    let added: Vec<&String> = wanted
        .names
        .iter()
        .filter(|n| !cert.names.contains(n))
        .collect();
    let removed: Vec<&String> = cert
        .names
        .iter()
        .filter(|n| !wanted.names.contains(n))
        .collect();
    if !added.is_empty() || !removed.is_empty() {
        let list = |names: &[&String]| {
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let why = [("names added", &added), ("names removed", &removed)]
            .iter()
            .filter(|(_, names)| !names.is_empty())
            .map(|(what, names)| format!("{what}: {}", list(names)))
            .collect::<Vec<_>>()
            .join("; ");
        return Some(Request {
            expand: removed.is_empty(),
            why,
        });
    }
    if conf.server.as_deref() != Some(wanted.server) {
        return request("another ACME server".into());
    }
    if conf.authenticator.as_deref() != Some(wanted.authenticator) {
        return request("another challenge method".into());
    }
    if let Some(webroot) = wanted.webroot {
        let current: Vec<&str> = conf
            .webroot_path
            .iter()
            .map(|p| p.trim_end_matches('/'))
            .collect();
        if current != [webroot.trim_end_matches('/')] {
            return request("another webroot".into());
        }
    }
    // certbot before 1.x wrote no key_type: its keys were RSA.
    if let Some(key_type) = wanted.key_type
        && conf.key_type.as_deref().unwrap_or("rsa") != key_type
    {
        return request("another key type".into());
    }
    let left = cert.not_after - now;
    if left < RENEW_BEFORE_DAYS * 86400 {
        return request(format!("{} days left", left.div_euclid(86400)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What certbot 2.1 wrote against pebble (webroot, with a deploy hook).
    const RENEWAL: &str = "\
# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/a.example
cert = /etc/letsencrypt/live/a.example/cert.pem
privkey = /etc/letsencrypt/live/a.example/privkey.pem
chain = /etc/letsencrypt/live/a.example/chain.pem
fullchain = /etc/letsencrypt/live/a.example/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 9a4b42130de4056b507a1f5ece5ccd26
renew_hook = systemctl reload nginx
server = https://127.0.0.1:14000/dir
authenticator = webroot
webroot_path = /var/www/letsencrypt,
key_type = ecdsa
[[webroot_map]]
a.example = /var/www/letsencrypt
b.example = /var/www/letsencrypt
";

    const OPENSSL: &str = "notAfter=Nov 25 15:45:19 2031 GMT
X509v3 Subject Alternative Name: 
    DNS:a.example, DNS:B.example, IP Address:192.0.2.1
";

    #[test]
    fn renewal_conf() {
        assert_eq!(
            parse_renewal(RENEWAL),
            RenewalConf {
                server: Some("https://127.0.0.1:14000/dir".into()),
                authenticator: Some("webroot".into()),
                webroot_path: vec!["/var/www/letsencrypt".into()],
                key_type: Some("ecdsa".into()),
                renew_hook: Some("systemctl reload nginx".into()),
            }
        );
        let quoted =
            "[renewalparams]\nrenew_hook = \"echo a, b # c\"\nserver = https://x/dir # note\n";
        let conf = parse_renewal(quoted);
        assert_eq!(conf.renew_hook.as_deref(), Some("echo a, b # c"));
        assert_eq!(conf.server.as_deref(), Some("https://x/dir"));
        // As certbot 2.1 (configobj) wrote hooks that need quoting.
        let written = [
            (
                r#"renew_hook = 'echo "renewed $RENEWED_LINEAGE" >> /tmp/hook.log, ok'"#,
                r#"echo "renewed $RENEWED_LINEAGE" >> /tmp/hook.log, ok"#,
            ),
            (
                r#"renew_hook = '''echo "edited, $RENEWED_DOMAINS" >> '/tmp/hook.log' # x'''"#,
                r#"echo "edited, $RENEWED_DOMAINS" >> '/tmp/hook.log' # x"#,
            ),
        ];
        for (line, hook) in written {
            let conf = parse_renewal(&format!("[renewalparams]\n{line}\n"));
            assert_eq!(conf.renew_hook.as_deref(), Some(hook));
        }
    }

    #[test]
    fn openssl_output() {
        let info = parse_openssl(OPENSSL).unwrap();
        assert_eq!(info.names, ["a.example", "b.example"]);
        assert_eq!(date_text(info.not_after), "2031-11-25");
        assert_eq!(info.not_after % 86400, 15 * 3600 + 45 * 60 + 19);
        // A space-padded day; a certificate without names.
        let info = parse_openssl("notAfter=Feb  5 00:00:00 2024 GMT\n").unwrap();
        assert_eq!(date_text(info.not_after), "2024-02-05");
        assert!(info.names.is_empty());
        assert_eq!(parse_openssl_date("Jan  1 00:00:00 1970 GMT"), Some(0));
        assert_eq!(
            parse_openssl_date("Mar  1 00:00:00 2000 GMT"),
            Some(951868800)
        );
        assert!(parse_openssl("Could not open file\n").is_none());
    }

    #[test]
    fn renew_hook_edits_keep_the_rest() {
        let edited = with_renew_hook(RENEWAL, Some("systemctl reload nginx, haproxy"));
        assert!(edited.contains(
            "[renewalparams]\nrenew_hook = \"systemctl reload nginx, haproxy\"\naccount = "
        ));
        assert_eq!(edited.matches("renew_hook").count(), 1);
        assert_eq!(
            parse_renewal(&edited).renew_hook.as_deref(),
            Some("systemctl reload nginx, haproxy")
        );
        assert_eq!(
            parse_renewal(&edited).webroot_path,
            ["/var/www/letsencrypt"]
        );
        let removed = with_renew_hook(RENEWAL, None);
        assert!(!removed.contains("renew_hook"));
        assert_eq!(removed.lines().count(), RENEWAL.lines().count() - 1);
        // A hook whose quoting needs care survives the round trip.
        for hook in [
            "sh -c \"echo 'x'\"",
            "sh -c 'echo \"x\"'",
            "echo '#'",
            " padded",
            "a,b",
        ] {
            let text = with_renew_hook(RENEWAL, Some(hook));
            assert_eq!(
                parse_renewal(&text).renew_hook.as_deref(),
                Some(hook),
                "{text}"
            );
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    const NOW: i64 = 1_900_000_000;
    const DAY: i64 = 86400;

    fn decision(
        cert_names: &[&str],
        days_left: i64,
        wanted: &[&str],
        server: &str,
    ) -> Option<Request> {
        let cert = CertInfo {
            not_after: NOW + days_left * DAY,
            names: names(cert_names),
        };
        let conf = parse_renewal(RENEWAL);
        let wanted_names = names(wanted);
        let wanted = Wanted {
            names: &wanted_names,
            server,
            authenticator: "webroot",
            webroot: Some("/var/www/letsencrypt/"),
            key_type: Some("ecdsa"),
        };
        decide(Some(&cert), Some(&conf), &wanted, NOW)
    }

    const PEBBLE: &str = "https://127.0.0.1:14000/dir";

    #[test]
    fn request_decisions() {
        // Valid, same names and server: nothing to do.
        assert_eq!(
            decision(
                &["a.example", "b.example"],
                60,
                &["a.example", "b.example"],
                PEBBLE
            ),
            None
        );
        // Order does not matter.
        assert_eq!(
            decision(
                &["b.example", "a.example"],
                60,
                &["a.example", "b.example"],
                PEBBLE
            ),
            None
        );
        // Names added: expand.
        let r = decision(&["a.example"], 60, &["a.example", "b.example"], PEBBLE).unwrap();
        assert!(r.expand, "{r:?}");
        assert_eq!(r.why, "names added: b.example");
        // Names removed (or replaced): exactly these names.
        let r = decision(&["a.example", "b.example"], 60, &["a.example"], PEBBLE).unwrap();
        assert!(!r.expand);
        let r = decision(
            &["a.example", "b.example"],
            60,
            &["a.example", "c.example"],
            PEBBLE,
        )
        .unwrap();
        assert!(!r.expand);
        assert_eq!(r.why, "names added: c.example; names removed: b.example");
        // Due for renewal.
        let r = decision(
            &["a.example", "b.example"],
            29,
            &["a.example", "b.example"],
            PEBBLE,
        )
        .unwrap();
        assert_eq!(r.why, "29 days left");
        assert!(
            decision(
                &["a.example", "b.example"],
                -3,
                &["a.example", "b.example"],
                PEBBLE
            )
            .is_some()
        );
        assert!(
            decision(
                &["a.example", "b.example"],
                31,
                &["a.example", "b.example"],
                PEBBLE
            )
            .is_none()
        );
        // Another ACME server.
        let r = decision(
            &["a.example", "b.example"],
            60,
            &["a.example", "b.example"],
            "https://acme-v02.api.letsencrypt.org/directory",
        )
        .unwrap();
        assert_eq!(r.why, "another ACME server");
        // Missing.
        let wanted_names = names(&["a.example"]);
        let wanted = Wanted {
            names: &wanted_names,
            server: PEBBLE,
            authenticator: "standalone",
            webroot: None,
            key_type: None,
        };
        assert_eq!(
            decide(None, None, &wanted, NOW).unwrap().why,
            "no certificate"
        );
        // Another method.
        let cert = CertInfo {
            not_after: NOW + 60 * DAY,
            names: wanted_names.clone(),
        };
        let conf = parse_renewal(RENEWAL);
        assert_eq!(
            decide(Some(&cert), Some(&conf), &wanted, NOW).unwrap().why,
            "another challenge method"
        );
    }
}
