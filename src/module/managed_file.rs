//! A regular file with given content: the action behind `file` (content or src) and
//! `template`, so both diff and write a file the same way.

use super::files::{self, Content, DesiredFile, FileState, Kind};
use super::{Action, Failure, HostView, Mode, Plan, Probed, Resource, Resources};

#[derive(Debug)]
pub struct ManagedFile {
    pub path: String,
    pub content: Content,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<Mode>,
    /// A shell line run on the candidate (`%s`) before it goes live.
    pub validate: Option<String>,
    /// A secret flowed into the content (known from the templates that made it).
    pub secret: bool,
}

impl ManagedFile {
    fn desired(&self, secret: bool) -> DesiredFile<'_> {
        DesiredFile {
            path: &self.path,
            content: self.content.source(),
            mode: self.mode,
            owner: self.owner.as_deref(),
            group: self.group.as_deref(),
            validate: self.validate.as_deref(),
            secret,
        }
    }
}

impl Action for ManagedFile {
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
        files::probe("f", &self.path, files::Read::Content)
    }

    fn plan<'a>(&'a self, probed: &'a Probed, host: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let state = FileState::from_probe(probed, "f");
        if state.kind == Kind::Dir {
            return Err(Failure::new(format!("{} is a directory", self.path)));
        }
        let shown = self.content.source().shown();
        let desired = self.desired(self.secret || shown.is_some_and(|c| host.is_secret(c)));
        let mut plan = Plan::with_diffs(files::diff(&state, &desired));
        if !plan.diffs.is_empty() {
            files::replace(&mut plan, &state, &desired);
        }
        Ok(plan)
    }
}
