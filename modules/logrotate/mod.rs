//! `logrotate`: /etc/logrotate.d/NAME rendered from `logrotate.hbs`, checked with
//! `logrotate -d` before it goes live.
//!
//! logrotate reads every file of /etc/logrotate.d except taboo extensions, and its
//! taboo `*~` does not match hidden names (it globs with FNM_PERIOD): a temp file
//! `.NAME.converge~` there would be read as configuration. So the candidate is checked
//! in a temp directory and staged in /etc (same filesystem) for the atomic rename.

use crate::error::InputResult;
use crate::module::files::{self, DesiredFile, FileState, Findings, Kind};
use crate::module::{
    Action, Command, Failure, HostView, Module, Params, Plan, Probed, Resource, Resources,
    indented_lines, one_or_many,
};
use crate::playbook::template::engine;
use serde::{Deserialize, Deserializer};
use serde_json::json;

pub struct Logrotate;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogrotateParams {
    name: String,
    #[serde(deserialize_with = "one_or_many")]
    paths: Vec<String>,
    frequency: Option<Frequency>,
    rotate: Option<u32>,
    compress: Option<bool>,
    delaycompress: Option<bool>,
    missingok: Option<bool>,
    notifempty: Option<bool>,
    copytruncate: Option<bool>,
    create: Option<Create>,
    su: Option<String>,
    postrotate: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Frequency {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// `create: true`, `create: false` or `create: "0640 myapp adm"`.
#[derive(Debug)]
enum Create {
    Flag(bool),
    Spec(String),
}

impl<'de> Deserialize<'de> for Create {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Create, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(b) => Ok(Create::Flag(b)),
            serde_json::Value::String(s) => Ok(Create::Spec(s)),
            other => Err(serde::de::Error::custom(format!(
                "expected true, false or \"MODE OWNER GROUP\", found {other}"
            ))),
        }
    }
}

/// Names logrotate skips in /etc/logrotate.d (its default taboo extensions).
const TABOO: &[&str] = &[
    ",v",
    ".cfsaved",
    ".disabled",
    ".dpkg-bak",
    ".dpkg-del",
    ".dpkg-dist",
    ".dpkg-new",
    ".dpkg-old",
    ".rpmnew",
    ".rpmorig",
    ".rpmsave",
    ".swp",
    ".ucf-dist",
    ".ucf-new",
    ".ucf-old",
    "~",
];

fn is_account(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `su` and `create` name a user, then a group: both must exist before logrotate -d.
fn account_needs(words: &[&str]) -> Vec<Resource> {
    let mut needs = Vec::new();
    needs.extend(words.first().map(|u| Resource::User(u.to_string())));
    needs.extend(words.get(1).map(|g| Resource::Group(g.to_string())));
    needs
}

impl Module for Logrotate {
    fn name(&self) -> &'static str {
        "logrotate"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("name")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        Ok(vec![Box::new(build(params)?)])
    }
}

fn build(params: &Params<'_>) -> InputResult<LogrotateAction> {
    let p: LogrotateParams = params.parse()?;
    check_file_name(params, &p.name)?;
    let paths = log_paths(params, &p.paths)?;
    let mut needs: Vec<Resource> = p.paths.iter().map(|p| Resource::Path(p.clone())).collect();
    needs.push(Resource::Package("logrotate".into()));
    let directives = directives(params, &p, &mut needs)?;
    let postrotate = postrotate_lines(params, p.postrotate.as_deref())?;
    let ctx = json!({"paths": paths, "directives": directives, "postrotate": postrotate});
    let content = engine()
        .render_text(include_str!("logrotate.hbs"), &ctx)
        .map_err(|e| params.error_at("name", format!("rendering logrotate.hbs: {e}")))?;
    Ok(LogrotateAction {
        path: format!("/etc/logrotate.d/{}", p.name),
        name: p.name,
        content,
        needs,
    })
}

/// The stanza's file name: one logrotate reads (it skips backups and hidden files).
fn check_file_name(params: &Params<'_>, name: &str) -> InputResult<()> {
    let valid_name = !name.starts_with('.')
        && is_account(name)
        && !TABOO.iter().any(|t| name.ends_with(t))
        && !name.contains(".rhn-cfg-tmp-");
    if !valid_name {
        return Err(params
                .error_at("name", format!("`{}` cannot name a file in /etc/logrotate.d", name))
                .help("letters, digits and `._-`, not hidden, and no extension logrotate skips (.bak, .swp, .dpkg-old, ~, ...)"));
    }
    Ok(())
}

/// The log paths as the stanza lists them (quoted when they hold spaces).
fn log_paths(params: &Params<'_>, log_paths: &[String]) -> InputResult<Vec<String>> {
    if log_paths.is_empty() {
        return Err(params.error_at("paths", "give at least one log path"));
    }
    let mut paths = Vec::new();
    for path in log_paths {
        if !path.starts_with('/') || path.contains(['"', '\n', '\r', '{', '}', '\'']) {
            return Err(params
                .error_at("paths", format!("`{path}` is not an absolute log path"))
                .help("an absolute path or glob, e.g. /var/log/myapp/*.log"));
        }
        paths.push(if path.contains([' ', '\t']) {
            format!("\"{path}\"")
        } else {
            path.clone()
        });
    }
    Ok(paths)
}

/// The directives, in the order written; the accounts they name go into `needs`.
fn directives(
    params: &Params<'_>,
    p: &LogrotateParams,
    needs: &mut Vec<Resource>,
) -> InputResult<Vec<String>> {
    let mut directives = Vec::new();
    if let Some(f) = p.frequency {
        directives.push(format!("{f:?}").to_lowercase());
    }
    if let Some(n) = p.rotate {
        directives.push(format!("rotate {n}"));
    }
    let flags = [
        (p.compress, "compress", "nocompress"),
        (p.delaycompress, "delaycompress", "nodelaycompress"),
        (p.missingok, "missingok", "nomissingok"),
        (p.notifempty, "notifempty", "ifempty"),
        (p.copytruncate, "copytruncate", "nocopytruncate"),
    ];
    for (flag, yes, no) in flags {
        directives.extend(flag.map(|f| if f { yes } else { no }.to_string()));
    }
    match &p.create {
        Some(Create::Flag(true)) => directives.push("create".into()),
        Some(Create::Flag(false)) => directives.push("nocreate".into()),
        Some(Create::Spec(spec)) => {
            let mut words: Vec<&str> = spec.split_whitespace().collect();
            let mode_ok = match words.first() {
                Some(m) if m.bytes().all(|b| b.is_ascii_digit()) => {
                    let ok = u32::from_str_radix(m, 8).is_ok() && m.len() <= 4;
                    words.remove(0);
                    ok
                }
                _ => true,
            };
            if !mode_ok || words.len() > 2 || !words.iter().all(|w| is_account(w)) {
                return Err(params
                    .error_at("create", format!("`{spec}` is not `MODE OWNER GROUP`"))
                    .help("e.g. \"0640 myapp adm\"; or true for logrotate's default"));
            }
            needs.extend(account_needs(&words));
            directives.push(format!(
                "create {}",
                spec.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        None => {}
    }
    if let Some(su) = &p.su {
        let words: Vec<&str> = su.split_whitespace().collect();
        if words.is_empty() || words.len() > 2 || !words.iter().all(|w| is_account(w)) {
            return Err(params
                .error_at("su", format!("`{su}` is not `USER GROUP`"))
                .help("the user and group logrotate rotates as, e.g. \"myapp adm\""));
        }
        needs.extend(account_needs(&words));
        directives.push(format!("su {}", words.join(" ")));
    }
    Ok(directives)
}

/// The postrotate script, indented inside the stanza; a line `endscript` would end it.
fn postrotate_lines(params: &Params<'_>, script: Option<&str>) -> InputResult<Vec<String>> {
    Ok(match script {
        Some(script) => {
            if script.lines().any(|l| l.trim() == "endscript") {
                return Err(params.error_at(
                    "postrotate",
                    "a line `endscript` would end the script early",
                ));
            }
            indented_lines(script, "        ")
        }
        None => Vec::new(),
    })
}

#[derive(Debug)]
struct LogrotateAction {
    name: String,
    path: String,
    content: String,
    needs: Vec<Resource>,
}

/// Checks the candidate at `%s` without touching logrotate's state file.
const CHECK: &str = "command -v logrotate >/dev/null || { echo 'logrotate: command not found' >&2; exit 127; }; \
     logrotate -d -s %s.state %s";

impl LogrotateAction {
    /// `logrotate -d` on the candidate; in check mode an account an earlier task
    /// creates is excused.
    fn check<'a>(&'a self, host: &HostView<'_>) -> Command<'a> {
        let coming: Vec<String> = self
            .needs
            .iter()
            .filter(|r| host.coming(r))
            .filter_map(|r| match r {
                Resource::User(name) | Resource::Group(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        files::check_candidate(&self.name, self.content.as_bytes(), CHECK, move |check| {
            verdict(
                &check.path,
                &self.path,
                check.output.status,
                &check.output.stderr_text(),
                |account| coming.iter().any(|c| c == account),
            )
        })
    }
}

/// What `logrotate -d` said about the candidate at `candidate`: Ok, or its errors naming
/// `real_path`. It exits 0 on some errors (an unknown directive) and 1 on a log that does
/// not exist yet, so its `error:` lines decide. Missing logs are fine (the service has
/// not written them yet), and so, in check mode, is an account an earlier task creates.
fn verdict(
    candidate: &str,
    real_path: &str,
    status: i32,
    stderr: &str,
    assumed_account: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let mut found = Findings::default();
    for line in stderr.lines().filter(|l| l.starts_with("error:")) {
        let missing_log = line.starts_with("error: stat of ")
            && line.ends_with("failed: No such file or directory");
        let account = ["unknown user '", "unknown group '"]
            .iter()
            .find_map(|p| line.split_once(p))
            .and_then(|(_, rest)| rest.split_once('\''))
            .map(|(name, _)| name);
        if missing_log || account.is_some_and(&assumed_account) {
            found.excused += 1;
        } else if !line.starts_with("error: found error in ") {
            // "found error in ..., skipping" only repeats the error before it.
            found.errors.push(line.replace(candidate, real_path));
        }
    }
    found.verdict("logrotate -d", status, stderr, candidate, real_path)
}

impl Action for LogrotateAction {
    fn resources(&self) -> Resources {
        let mut r = Resources::for_path(&self.path, None, None);
        r.needs.extend(self.needs.iter().cloned());
        r
    }

    fn reads(&self, _found: &Probed) -> Option<Vec<Resource>> {
        Some(vec![
            Resource::Path(self.path.clone()),
            Resource::Package("logrotate".into()),
        ])
    }

    fn touches(&self) -> Option<Vec<Resource>> {
        Some(vec![Resource::Path(self.path.clone())])
    }

    fn probe(&self) -> String {
        let mut s = files::probe("conf", &self.path, files::Read::Content);
        s.push_str(
            "if command -v logrotate >/dev/null; then echo logrotate=yes; else echo logrotate=no; fi\n",
        );
        s
    }

    fn plan<'a>(&'a self, probed: &'a Probed, host: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let state = FileState::from_probe(probed, "conf");
        if state.kind == Kind::Dir {
            return Err(Failure::new(format!("{} is a directory", self.path)));
        }
        let desired = DesiredFile::system_config(&self.path, self.content.as_bytes(), host);
        let mut plan = Plan::with_diffs(files::diff(&state, &desired));
        let content_changed = desired.content_differs(&state);
        if content_changed {
            let installed = probed.field("logrotate").as_deref() == Some("yes");
            if installed {
                plan.checks.push(self.check(host));
            } else if !host.coming(&Resource::Package("logrotate".into())) {
                return Err(Failure::new(
                    "logrotate is not installed: install it first (apt: {name: logrotate})",
                ));
            }
        }
        if !plan.diffs.is_empty() {
            files::replace(&mut plan, &state, &desired);
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests;
