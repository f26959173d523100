//! `command`: run a shell line, or an argument vector, unless `creates` exists or
//! `unless` succeeds. It reports `changed` only when it ran.

use crate::error::InputResult;
use crate::module::{
    Action, Ctx, Diff, Failure, Module, Outcome, Params, Probed, Resource, Resources,
};
use crate::transport::{quote, quote_all};
use async_trait::async_trait;
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

/// What the run script prints, alone, when a guard turned out to hold after all.
const SKIPPED: &str = "converge:command-skipped:5d1f0c";

/// Lines of stderr kept in a failure message.
const TAIL_LINES: usize = 20;

impl CommandAction {
    fn display(&self) -> String {
        match &self.run {
            Run::Shell(line) => line.clone(),
            Run::Argv(argv) => quote_all(argv),
        }
    }

    /// `cd` and the guards, shared by the probe and the run script. Each guard that
    /// holds runs `then` (printing why, and leaving). `unless` runs in its own shell, so
    /// a syntax error in it cannot break the batched probe.
    fn guards(&self, chdir_missing: &str, then: impl Fn(&str) -> String) -> String {
        let mut s = String::new();
        if let Some(dir) = &self.chdir {
            s.push_str(&format!(
                "cd {} 2>/dev/null || {{ {chdir_missing} }}\n",
                quote(dir)
            ));
        }
        if let Some(path) = &self.creates {
            s.push_str(&format!(
                "if [ -e {} ]; then {} fi\n",
                quote(path),
                then("creates=exists")
            ));
        }
        if let Some(line) = &self.unless {
            s.push_str(&format!(
                "if /bin/sh -c {} </dev/null >/dev/null 2>&1; then {} fi\n",
                quote(line),
                then("unless=ok")
            ));
        }
        s
    }

    /// Runs the command in place of the script, so its exit status is the script's.
    /// The guards are checked again: in apply mode an earlier task may have changed
    /// what they look at since the batched probe ran.
    fn run_script(&self) -> String {
        let chdir_missing = format!(
            "echo {} >&2; exit 1;",
            quote(&format!(
                "cannot change to directory {}",
                self.chdir.as_deref().unwrap_or_default()
            ))
        );
        let skipped = format!("printf %s {}; exit 0;", quote(SKIPPED));
        let mut s = self.guards(&chdir_missing, |_| skipped.clone());
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

#[async_trait]
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

    fn probe(&self) -> String {
        let guards = self.guards("echo chdir=missing; exit 0;", |why| {
            format!("echo {why}; exit 0;")
        });
        if guards.is_empty() {
            // Nothing to read; an empty probe could upset the shell that batches them.
            return ":\n".to_string();
        }
        format!("(\n{guards})\n")
    }

    async fn converge(&self, probed: &Probed, ctx: &mut Ctx<'_>) -> Result<Outcome, Failure> {
        let fields = probed.fields();
        if fields.contains_key("creates") || fields.contains_key("unless") {
            return Ok(Outcome::ok());
        }
        if let Some(dir) = &self.chdir
            && fields.contains_key("chdir")
            && !ctx.assumes(&Resource::Path(dir.clone()))
        {
            return Err(Failure::new(format!("chdir {dir} does not exist")));
        }
        if ctx.apply {
            let out = ctx.run(&self.run_script()).await?;
            if !out.success() {
                let stderr = out.stderr_text();
                let detail = if stderr.is_empty() {
                    tail(&out.stdout_text(), TAIL_LINES)
                } else {
                    tail(&stderr, TAIL_LINES)
                };
                return Err(Failure::new(format!(
                    "command exited {}: {detail}",
                    out.status
                )));
            }
            if out.stdout == SKIPPED.as_bytes() {
                return Ok(Outcome::ok());
            }
        }
        let verb = if ctx.apply { "ran" } else { "would run" };
        Ok(Outcome::from_diffs(vec![Diff::new(
            "command",
            None,
            Some(format!("{verb}: {}\n", self.display())),
        )]))
    }
}

#[cfg(test)]
mod tests;
