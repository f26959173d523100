//! `dir`: a directory with owner, group and mode (missing parents created root-owned
//! 0755), or no directory at all.

use crate::error::InputResult;
use crate::module::files::{self, FileState, Kind};
use crate::module::{
    Account, Action, Change, Diff, Failure, HostPath, HostView, Mode, Module, Params, Plan, Probed,
    Resource, Resources, State, metadata_lines,
};
use serde::Deserialize;

pub struct Dir;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirParams {
    path: HostPath,
    owner: Option<Account>,
    group: Option<Account>,
    mode: Option<Mode>,
    #[serde(default)]
    state: State,
}

impl Module for Dir {
    fn name(&self) -> &'static str {
        "dir"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("path")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let p: DirParams = params.parse()?;
        let path = String::from(p.path);
        if p.state == State::Absent && components(&path) < 2 {
            return Err(params
                .error_at(
                    "path",
                    format!("refusing to remove `{path}` and everything below it"),
                )
                .label("too close to /")
                .help(
                    "state: absent removes a whole tree; it takes a path at least two levels deep",
                ));
        }
        Ok(vec![Box::new(DirAction {
            path,
            owner: p.owner.map(String::from),
            group: p.group.map(String::from),
            mode: p.mode,
            state: p.state,
        })])
    }
}

fn components(path: &str) -> usize {
    path.split('/').filter(|c| !c.is_empty()).count()
}

fn parent(path: &str) -> Option<&str> {
    match path.rsplit_once('/') {
        Some(("", _)) | None => None,
        Some((parent, _)) => Some(parent),
    }
}

#[derive(Debug)]
struct DirAction {
    path: String,
    owner: Option<String>,
    group: Option<String>,
    mode: Option<Mode>,
    state: State,
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Absent => "nothing",
        Kind::File => "a regular file",
        Kind::Dir => "a directory",
        Kind::Link => "a symlink",
        Kind::Other => "a special file",
    }
}

impl DirAction {
    fn not_a_dir(&self, kind: Kind) -> Failure {
        Failure::new(format!(
            "{} is {}, not a directory; refusing to replace it (remove it with `file: {{path: ..., state: absent}}`)",
            self.path,
            kind_name(kind)
        ))
    }

    fn present(&self, state: &FileState) -> Result<Option<Change>, Failure> {
        let script = files::dir_script(
            &self.path,
            self.mode,
            self.owner.as_deref(),
            self.group.as_deref(),
        );
        let want = [
            ("type", Some("directory".to_string())),
            ("mode", self.mode.map(Mode::text)),
            ("owner", self.owner.clone()),
            ("group", self.group.clone()),
        ];
        match state.kind {
            Kind::Absent => Ok(Some(Change {
                diff: Diff::new(&self.path, None, Some(metadata_lines(&want))),
                what: format!("creating {}", self.path),
                script,
            })),
            Kind::Dir => {
                let have = [
                    ("type", Some("directory".to_string())),
                    ("mode", self.mode.and(state.mode.clone())),
                    ("owner", self.owner.as_ref().and(state.owner.clone())),
                    ("group", self.group.as_ref().and(state.group.clone())),
                ];
                Ok(
                    Diff::of_metadata(&self.path, &have, &want).map(|diff| Change {
                        diff,
                        what: format!("setting owner and mode of {}", self.path),
                        script,
                    }),
                )
            }
            other => Err(self.not_a_dir(other)),
        }
    }

    fn absent(&self, state: &FileState) -> Result<Option<Change>, Failure> {
        match state.kind {
            Kind::Absent => Ok(None),
            Kind::Dir => {
                let have = [
                    ("type", Some("directory".to_string())),
                    ("mode", state.mode.clone()),
                    ("owner", state.owner.clone()),
                    ("group", state.group.clone()),
                ];
                // Never into another filesystem mounted below (a data volume, a bind mount).
                Ok(Some(Change {
                    diff: Diff::new(&self.path, Some(metadata_lines(&have)), None),
                    what: format!("removing {}", self.path),
                    script: files::remove_script(&self.path, true),
                }))
            }
            other => Err(self.not_a_dir(other)),
        }
    }
}

impl Action for DirAction {
    fn reads(&self, found: &Probed) -> Option<Vec<Resource>> {
        Some(files::reads(
            found,
            "d",
            &self.path,
            &self.owner,
            &self.group,
        ))
    }

    /// Everything below: `state: absent` removes it all.
    fn touches(&self) -> Option<Vec<Resource>> {
        Some(vec![Resource::Dir(self.path.clone())])
    }

    fn resources(&self) -> Resources {
        if self.state == State::Absent {
            return Resources::default();
        }
        let mut needs: Vec<Resource> = parent(&self.path)
            .map(|p| Resource::Path(p.to_string()))
            .into_iter()
            .collect();
        needs.extend(self.owner.clone().map(Resource::User));
        needs.extend(self.group.clone().map(Resource::Group));
        Resources {
            provides: vec![Resource::Dir(self.path.clone())],
            needs,
        }
    }

    fn probe(&self) -> String {
        files::probe("d", &self.path, files::Read::Metadata)
    }

    fn plan<'a>(&'a self, probed: &'a Probed, _host: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let state = FileState::from_probe(probed, "d");
        let change = match self.state {
            State::Present => self.present(&state)?,
            State::Absent => self.absent(&state)?,
        };
        Ok(Change::plan(change))
    }
}

#[cfg(test)]
mod tests;
