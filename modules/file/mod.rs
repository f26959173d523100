//! `file`: a regular file with given content (inline or copied from a local file), a
//! symlink, or nothing at all; with owner, group and mode.

use crate::error::InputResult;
use crate::module::files::{self, Content, FileState, Kind};
use crate::module::{
    Account, Action, Command, Diff, Failure, HostPath, HostView, ManagedFile, Mode, Module, Params,
    Plan, Probed, Resource, Resources, State,
};
use serde::Deserialize;

pub struct File;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileParams {
    path: HostPath,
    content: Option<String>,
    src: Option<String>,
    link: Option<String>,
    #[serde(default)]
    state: State,
    owner: Option<Account>,
    group: Option<Account>,
    mode: Option<Mode>,
    validate: Option<String>,
}

impl Module for File {
    fn name(&self) -> &'static str {
        "file"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("path")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let p: FileParams = params.parse()?;
        let sources = [p.content.is_some(), p.src.is_some(), p.link.is_some()];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(params
                .error_at("path", "give only one of content, src and link")
                .help("content is inline text, src a local file to copy, link a symlink target"));
        }
        let content = if p.state == State::Absent {
            None
        } else if let Some(src) = &p.src {
            let local = params.local_path(src);
            let file = files::load_local(&local).map_err(|e| {
                params
                    .error_at("src", format!("cannot read {}: {e}", local.display()))
                    .help("src is a file on this machine, relative to the playbook's folder")
            })?;
            Some(Content::Local(file))
        } else {
            p.content.map(|text| Content::Bytes(text.into_bytes()))
        };
        if let Some(content) = content {
            let secret = params.taint.holds_at(params.node, &["content"]);
            return Ok(vec![Box::new(ManagedFile {
                path: p.path.clone().into(),
                content,
                owner: p.owner.map(String::from),
                group: p.group.map(String::from),
                mode: p.mode,
                validate: p.validate,
                secret,
            })]);
        }
        if p.validate.is_some() {
            return Err(params
                .error_at("validate", "only applies to content or src")
                .help("validate checks a new file's content before it goes live"));
        }
        let what = match (p.state, p.link) {
            (State::Absent, _) => What::Absent,
            (State::Present, Some(target)) => What::Link(target),
            (State::Present, None) => What::MetadataOnly,
        };
        Ok(vec![Box::new(FileAction {
            path: p.path.into(),
            what,
            owner: p.owner.map(String::from),
            group: p.group.map(String::from),
            mode: p.mode,
        })])
    }
}

#[derive(Debug)]
enum What {
    Link(String),
    /// Only owner/group/mode of an existing file.
    MetadataOnly,
    Absent,
}

#[derive(Debug)]
struct FileAction {
    path: String,
    what: What,
    owner: Option<String>,
    group: Option<String>,
    mode: Option<Mode>,
}

impl FileAction {
    fn plan_link<'a>(
        &'a self,
        target: &str,
        state: &FileState,
        host: &HostView<'_>,
    ) -> Result<Plan<'a>, Failure> {
        let current = match state.kind {
            Kind::Link => state.link_target.clone().map(|t| format!("link: {t}\n")),
            Kind::Absent => None,
            Kind::File => Some("type: file\n".into()),
            Kind::Dir => Some("type: directory\n".into()),
            Kind::Other => Some("type: special file\n".into()),
        };
        let desired = format!("link: {target}\n");
        if current.as_deref() == Some(&desired) {
            return self.plan_metadata(state, host);
        }
        if state.kind == Kind::Dir {
            return Err(Failure::new(format!(
                "{} is a directory; refusing to replace it with a link",
                self.path
            )));
        }
        let mut plan = Plan::unchanged();
        plan.change(
            Some(Diff::new(&self.path, current, Some(desired))),
            Command::new(
                format!("linking {}", self.path),
                files::link_script(&self.path, target, self.owner.as_deref()),
            ),
        );
        Ok(plan)
    }

    fn plan_metadata<'a>(
        &'a self,
        state: &FileState,
        host: &HostView<'_>,
    ) -> Result<Plan<'a>, Failure> {
        // The file may be one an earlier task will write.
        let assumed = host.coming(&Resource::Path(self.path.clone()));
        if !state.exists() && !assumed {
            return Err(Failure::new(format!(
                "{} does not exist (give content, src or link to create it)",
                self.path
            )));
        }
        let before = [
            ("mode", self.mode.and(state.mode.clone())),
            ("owner", self.owner.as_ref().and(state.owner.clone())),
            ("group", self.group.as_ref().and(state.group.clone())),
        ];
        let after = [
            ("mode", self.mode.map(Mode::text)),
            ("owner", self.owner.clone()),
            ("group", self.group.clone()),
        ];
        // A link's own mode is meaningless: compare only ownership there.
        let before = if state.kind == Kind::Link {
            &before[1..]
        } else {
            &before[..]
        };
        let after = if state.kind == Kind::Link {
            &after[1..]
        } else {
            &after[..]
        };
        let Some(diff) = Diff::of_metadata(&self.path, before, after) else {
            return Ok(Plan::unchanged());
        };
        let mode = if state.kind == Kind::Link {
            None
        } else {
            self.mode
        };
        let mut plan = Plan::unchanged();
        plan.change(
            Some(diff),
            Command::new(
                format!("setting owner and mode of {}", self.path),
                files::chown_chmod_script(
                    &self.path,
                    mode,
                    self.owner.as_deref(),
                    self.group.as_deref(),
                ),
            ),
        );
        Ok(plan)
    }
}

impl Action for FileAction {
    fn reads(&self, found: &Probed) -> Option<Vec<Resource>> {
        Some(files::reads(
            found,
            "f",
            &self.path,
            &self.owner,
            &self.group,
        ))
    }

    fn touches(&self) -> Option<Vec<Resource>> {
        Some(vec![Resource::Path(self.path.clone())])
    }

    fn resources(&self) -> Resources {
        Resources::writes(&self.path, self.owner.as_deref(), self.group.as_deref())
    }

    fn probe(&self) -> String {
        files::probe(
            "f",
            &self.path,
            if matches!(self.what, What::Absent) {
                files::Read::Content
            } else {
                files::Read::Metadata
            },
        )
    }

    fn plan<'a>(&'a self, probed: &'a Probed, host: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let state = FileState::from_probe(probed, "f");
        match &self.what {
            What::Link(target) => self.plan_link(target, &state, host),
            What::MetadataOnly => self.plan_metadata(&state, host),
            What::Absent => {
                if !state.exists() {
                    return Ok(Plan::unchanged());
                }
                if state.kind == Kind::Dir {
                    return Err(Failure::new(format!(
                        "{} is a directory: remove it with `dir: {{path: ..., state: absent}}`",
                        self.path
                    )));
                }
                let before = match (&state.content, state.kind) {
                    (Some(c), Kind::File)
                        if std::str::from_utf8(c).is_ok() && !host.is_secret(c) =>
                    {
                        String::from_utf8_lossy(c).into_owned()
                    }
                    (_, Kind::Link) => {
                        format!("link: {}\n", state.link_target.clone().unwrap_or_default())
                    }
                    _ => format!("sha256: {}\n", state.sha256.clone().unwrap_or_default()),
                };
                let mut plan = Plan::unchanged();
                plan.change(
                    Some(Diff::new(&self.path, Some(before), None)),
                    Command::new(
                        format!("removing {}", self.path),
                        files::remove_script(&self.path, false),
                    ),
                );
                Ok(plan)
            }
        }
    }
}

#[cfg(test)]
mod tests;
