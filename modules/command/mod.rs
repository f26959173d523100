//! `command`: run a shell line, or an argument vector, unless `creates` exists or
//! `unless` succeeds. It reports `changed` only when it ran.

use crate::error::InputResult;
use crate::module::{
    Action, Command as HostCommand, Failure, HostView, Module, Params, Plan, Probed, Resource,
    Resources,
};
use crate::quote::{quote, quote_all};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub struct Command;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandParams {
    cmd: Option<String>,
    #[serde(default, deserialize_with = "words")]
    argv: Option<Vec<String>>,
    creates: Option<String>,
    unless: Option<String>,
    chdir: Option<String>,
}

/// `argv: [sleep, 1]`: numbers and booleans are words too.
fn words<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Vec::<Value>::deserialize(d)?
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
            other => Err(D::Error::custom(format!(
                "argv holds words (strings), found {other}"
            ))),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

impl Module for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    /// `command: "LINE"` is `{cmd: LINE}`, so an unnamed task is `command LINE` in both
    /// forms; an unnamed `argv` task is plain `command`.
    fn key_param(&self) -> Option<&'static str> {
        Some("cmd")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let p = match &params.value {
            Value::String(line) => CommandParams {
                cmd: Some(line.clone()),
                ..CommandParams::default()
            },
            Value::Null => {
                return Err(params.node.error("command: nothing to run").help(
                    "write `command: \"SHELL LINE\"` or `command: {argv: [PROGRAM, ARG...]}`",
                ));
            }
            _ => params.parse()?,
        };
        let run = match (p.cmd, p.argv) {
            (Some(_), Some(_)) => {
                return Err(params
                    .error_at("argv", "give either cmd or argv, not both")
                    .help(
                        "cmd is a shell line; argv is a program and its arguments, each quoted",
                    ));
            }
            (None, None) => {
                return Err(params.node.error(
                    "command: give cmd (a shell line) or argv (a program and its arguments)",
                ));
            }
            (Some(line), None) if line.trim().is_empty() => {
                return Err(params.error_at("cmd", "is empty"));
            }
            (None, Some(argv)) if argv.is_empty() => {
                return Err(params
                    .error_at("argv", "is empty")
                    .help("argv: [PROGRAM, ARG...]"));
            }
            (Some(line), None) => Run::Shell(line),
            (None, Some(argv)) => Run::Argv(argv),
        };
        if let Some(dir) = &p.chdir
            && !dir.starts_with('/')
        {
            return Err(params.error_at("chdir", "must be an absolute path"));
        }
        if p.creates.as_deref() == Some("") {
            return Err(params.error_at("creates", "is empty"));
        }
        Ok(vec![Box::new(CommandAction {
            run,
            creates: p.creates,
            unless: p.unless,
            chdir: p.chdir,
        })])
    }
}

#[derive(Debug)]
enum Run {
    /// The user's own shell line, run as written.
    Shell(String),
    /// A program and its arguments, each quoted.
    Argv(Vec<String>),
}

#[derive(Debug)]
struct CommandAction {
    run: Run,
    creates: Option<String>,
    unless: Option<String>,
    chdir: Option<String>,
}

/// Lines of stderr kept in a failure message.
const TAIL_LINES: usize = 20;

impl CommandAction {
    fn display(&self) -> String {
        match &self.run {
            Run::Shell(line) => line.clone(),
            Run::Argv(argv) => quote_all(argv),
        }
    }

    /// The command replaces the script's shell, so its exit status is the script's.
    fn run_script(&self) -> String {
        let mut s = String::new();
        if let Some(dir) = &self.chdir {
            s.push_str(&format!("cd {} || exit 1\n", quote(dir)));
        }
        match &self.run {
            Run::Shell(line) => s.push_str(&format!("exec /bin/sh -c {}\n", quote(line))),
            Run::Argv(argv) => s.push_str(&format!("exec {}\n", quote_all(argv))),
        }
        s
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Action for CommandAction {
    fn resources(&self) -> Resources {
        Resources {
            provides: Vec::new(),
            needs: self
                .chdir
                .iter()
                .map(|d| Resource::Path(d.clone()))
                .collect(),
        }
    }

    /// Reads the guards, in the batch's subshell (so `cd` and `exit` stay there). In
    /// apply mode the runner probes again after any change, so the guards see what
    /// earlier tasks did. `unless` runs in a shell of its own: a syntax error in the
    /// user's line cannot break the batched probe script around it.
    fn probe(&self) -> String {
        let mut s = String::new();
        if let Some(dir) = &self.chdir {
            s.push_str(&format!(
                "cd {} 2>/dev/null || {{ echo chdir=missing; exit 0; }}\n",
                quote(dir)
            ));
        }
        if let Some(path) = &self.creates {
            s.push_str(&format!(
                "if [ -e {} ]; then echo creates=exists; exit 0; fi\n",
                quote(path)
            ));
        }
        if let Some(line) = &self.unless {
            s.push_str(&format!(
                "if /bin/sh -c {} </dev/null >/dev/null 2>&1; then echo unless=ok; fi\n",
                quote(line)
            ));
        }
        if s.is_empty() {
            // The batch wraps each probe in `( )`, which must not be empty.
            s.push_str(":\n");
        }
        s
    }

    fn plan<'a>(&'a self, probed: &'a Probed, host: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let fields = probed.fields();
        if fields.contains_key("creates") || fields.contains_key("unless") {
            return Ok(Plan::unchanged());
        }
        if let Some(dir) = &self.chdir
            && fields.contains_key("chdir")
            && !host.coming(&Resource::Path(dir.clone()))
        {
            return Err(Failure::new(format!("chdir {dir} does not exist")));
        }
        let run = HostCommand::new("command", self.run_script()).judged_by(|out| {
            if out.success() {
                return Ok(());
            }
            let stderr = out.stderr_text();
            let detail = if stderr.is_empty() {
                tail(&out.stdout_text(), TAIL_LINES)
            } else {
                tail(&stderr, TAIL_LINES)
            };
            Err(format!("command exited {}: {detail}", out.status))
        });
        Ok(Plan {
            changes: vec![run],
            runs: Some(self.display()),
            ..Plan::unchanged()
        })
    }
}

#[cfg(test)]
mod tests;
