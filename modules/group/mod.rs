//! `group`: a local group with an optional fixed gid, or no such group.

use crate::error::InputResult;
use crate::module::account::check_name;
use crate::module::{
    Action, Change, Diff, Failure, HostView, Module, Params, Plan, Probed, Resource, Resources,
    State, metadata_lines, opt_number,
};
use crate::quote::{quote, quote_all};
use serde::Deserialize;

pub struct Group;

/// The parameters are the action: a group as it should be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupAction {
    name: String,
    #[serde(default)]
    state: State,
    #[serde(default)]
    system: bool,
    #[serde(default, deserialize_with = "opt_number")]
    gid: Option<u32>,
}

impl Module for Group {
    fn name(&self) -> &'static str {
        "group"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("name")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let group: GroupAction = params.parse()?;
        check_name(params, "name", &group.name)?;
        Ok(vec![Box::new(group)])
    }
}

/// The gid of the group `getent group` printed, when it is the group asked for.
fn parse_gid(name: &str, probed: &Probed) -> Option<String> {
    let line = probed.field("group")?;
    let mut fields = line.split(':');
    (fields.next()? == name)
        .then(|| fields.nth(1).map(str::to_string))
        .flatten()
}

impl GroupAction {
    fn diff_path(&self) -> String {
        format!("group {}", self.name)
    }

    /// What differs, if anything, and the command that changes it.
    fn change(&self, current_gid: Option<String>) -> Option<Change> {
        let name = Some(self.name.clone());
        let want_gid = self.gid.map(|g| g.to_string());
        match (self.state, current_gid) {
            (State::Present, None) => {
                let mut cmd = vec!["groupadd".to_string()];
                if self.system {
                    cmd.push("--system".into());
                }
                if let Some(gid) = &want_gid {
                    cmd.extend(["--gid".into(), gid.clone()]);
                }
                cmd.push(self.name.clone());
                let after = [
                    ("group", name),
                    ("system", self.system.then(|| "yes".to_string())),
                    ("gid", want_gid),
                ];
                Some(Change {
                    diff: Diff::new(self.diff_path(), None, Some(metadata_lines(&after))),
                    what: format!("creating group {}", self.name),
                    script: quote_all(cmd),
                })
            }
            (State::Present, Some(gid)) => {
                let have = [
                    ("group", name.clone()),
                    ("gid", want_gid.as_ref().map(|_| gid)),
                ];
                let want = [("group", name), ("gid", want_gid.clone())];
                let diff = Diff::of_metadata(self.diff_path(), &have, &want)?;
                Some(Change {
                    diff,
                    what: format!("changing the gid of group {}", self.name),
                    script: quote_all(["groupmod", "--gid", want_gid?.as_str(), &self.name]),
                })
            }
            (State::Absent, Some(gid)) => {
                let before = [("group", name), ("gid", Some(gid))];
                Some(Change {
                    diff: Diff::new(self.diff_path(), Some(metadata_lines(&before)), None),
                    what: format!("removing group {}", self.name),
                    script: format!("groupdel {}", quote(&self.name)),
                })
            }
            (State::Absent, None) => None,
        }
    }
}

impl Action for GroupAction {
    fn reads(&self, _found: &Probed) -> Option<Vec<Resource>> {
        Some(vec![Resource::Group(self.name.clone())])
    }

    fn touches(&self) -> Option<Vec<Resource>> {
        Some(vec![Resource::Group(self.name.clone())])
    }

    fn resources(&self) -> Resources {
        Resources {
            provides: match self.state {
                State::Present => vec![Resource::Group(self.name.clone())],
                State::Absent => Vec::new(),
            },
            needs: Vec::new(),
        }
    }

    fn probe(&self) -> String {
        format!(
            "if e=$(getent group {}); then printf 'group=%s\\n' \"$e\"; fi\n",
            quote(&self.name)
        )
    }

    fn plan<'a>(&'a self, probed: &'a Probed, _host: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let change = self.change(parse_gid(&self.name, probed));
        Ok(Change::plan(change))
    }
}

#[cfg(test)]
mod tests;
