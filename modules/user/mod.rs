//! `user`: a local account (uid, primary and supplementary groups, shell, home), or no
//! such account. The home directory is created only with `create_home: true`.

use crate::error::InputResult;
use crate::module::account::check_name;
use crate::module::files;
use crate::module::{
    Action, Change, Diff, Failure, HostView, Module, Params, Plan, Probed, Resource, Resources,
    State, metadata_lines, one_or_many, opt_number,
};
use crate::quote::{quote, quote_all};
use serde::{Deserialize, Deserializer};

pub struct User;

/// The parameters are the action: an account as it should be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserAction {
    name: String,
    #[serde(default)]
    state: State,
    #[serde(default)]
    system: bool,
    #[serde(default, deserialize_with = "opt_number")]
    uid: Option<u32>,
    /// The primary group.
    group: Option<String>,
    /// The supplementary groups, exactly (`[]` removes them all).
    #[serde(default, deserialize_with = "opt_list")]
    groups: Option<Vec<String>>,
    shell: Option<String>,
    home: Option<String>,
    #[serde(default)]
    create_home: bool,
}

fn opt_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    one_or_many(d).map(Some)
}

impl Module for User {
    fn name(&self) -> &'static str {
        "user"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("name")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let user: UserAction = params.parse()?;
        check_name(params, "name", &user.name)?;
        if let Some(group) = &user.group {
            check_name(params, "group", group)?;
        }
        for group in user.groups.iter().flatten() {
            check_name(params, "groups", group)?;
        }
        for (key, value) in [("shell", &user.shell), ("home", &user.home)] {
            if let Some(path) = value
                && (!path.starts_with('/') || path.contains([':', '\n']))
            {
                return Err(params
                    .error_at(key, format!("`{path}` is not an absolute path without `:`"))
                    .help("passwd fields are separated by `:`; write e.g. /usr/sbin/nologin"));
            }
        }
        Ok(vec![Box::new(user)])
    }
}

/// The account as the probe found it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    uid: String,
    /// The primary group's name (its gid when it has none).
    group: String,
    /// Supplementary groups, sorted.
    groups: Vec<String>,
    home: String,
    shell: String,
    /// Whether the home directory exists (probed only with `create_home`).
    home_dir: Option<bool>,
}

/// Read `getent passwd` and `id -Gn` as the probe printed them.
fn parse_account(name: &str, probed: &Probed) -> Option<Account> {
    let line = probed.field("passwd")?;
    let fields: Vec<&str> = line.split(':').collect();
    let [login, _, uid, gid, _, home, shell] = fields[..] else {
        return None;
    };
    if login != name {
        return None;
    }
    let ids = probed.field("groups").unwrap_or_default();
    // `id -Gn` lists the primary group first, then the others.
    let mut names = ids.split_whitespace();
    let group = names.next().unwrap_or(gid).to_string();
    let mut groups: Vec<String> = names.filter(|g| *g != group).map(str::to_string).collect();
    groups.sort();
    groups.dedup();
    Some(Account {
        uid: uid.to_string(),
        group,
        groups,
        home: home.to_string(),
        shell: shell.to_string(),
        home_dir: probed.field("home_dir").map(|v| v == "present"),
    })
}

fn list(groups: &[String]) -> String {
    if groups.is_empty() {
        "(none)".to_string()
    } else {
        groups.join(", ")
    }
}

impl UserAction {
    fn diff_path(&self) -> String {
        format!("user {}", self.name)
    }

    /// The primary group a new account gets: `group`, else one named like the user.
    fn new_primary(&self) -> &str {
        self.group.as_deref().unwrap_or(&self.name)
    }

    /// Groups that must exist before the account can use them. A primary group named
    /// like the user is created along with it.
    fn needed_groups(&self) -> Vec<&str> {
        let primary = self.group.as_deref().filter(|g| *g != self.name);
        primary
            .into_iter()
            .chain(self.groups.iter().flatten().map(String::as_str))
            .collect()
    }

    /// The supplementary groups asked for, sorted as the probe's, without the primary
    /// one (which `id` lists only once, as primary).
    fn wanted_groups(&self, primary: &str) -> Option<Vec<String>> {
        self.groups.as_ref().map(|groups| {
            let mut wanted: Vec<String> =
                groups.iter().filter(|g| *g != primary).cloned().collect();
            wanted.sort();
            wanted.dedup();
            wanted
        })
    }

    fn create(&self) -> Change {
        let primary = self.new_primary();
        let groups = self.wanted_groups(primary);
        let after = [
            ("user", Some(self.name.clone())),
            ("system", self.system.then(|| "yes".to_string())),
            ("uid", self.uid.map(|u| u.to_string())),
            ("group", self.group.clone()),
            ("groups", groups.as_deref().map(list)),
            ("shell", self.shell.clone()),
            ("home", self.home.clone()),
            ("home_dir", self.create_home.then(|| "present".to_string())),
        ];
        let mut args: Vec<String> = Vec::new();
        if self.system {
            args.push("--system".into());
        }
        if let Some(uid) = self.uid {
            args.extend(["-u".into(), uid.to_string()]);
        }
        let mut script = String::from("set -e\n");
        if primary == self.name {
            // A group named like the user: use it when it exists, else create it.
            let n = quote(&self.name);
            script.push_str(&format!(
                "if getent group {n} >/dev/null; then set -- -g {n}; else set -- -U; fi\n"
            ));
        } else {
            args.extend(["-g".into(), primary.to_string()]);
        }
        if let Some(groups) = groups.filter(|g| !g.is_empty()) {
            args.extend(["-G".into(), groups.join(",")]);
        }
        if let Some(shell) = &self.shell {
            args.extend(["-s".into(), shell.clone()]);
        }
        if let Some(home) = &self.home {
            args.extend(["-d".into(), home.clone()]);
        }
        let home_flag = if self.create_home {
            "--create-home"
        } else {
            "--no-create-home"
        };
        args.extend([home_flag.to_string(), self.name.clone()]);
        script.push_str(&format!("useradd \"$@\" {}\n", quote_all(&args)));
        Change {
            diff: Diff::new(self.diff_path(), None, Some(metadata_lines(&after))),
            what: format!("creating user {}", self.name),
            script,
        }
    }

    fn modify(&self, have: &Account) -> Option<Change> {
        let primary = self.group.as_deref().unwrap_or(&have.group);
        let groups = self.wanted_groups(primary);
        let uid = self.uid.map(|u| u.to_string());
        // (key, usermod flag, current, desired as shown, desired as usermod takes it)
        let fields = [
            ("uid", "-u", have.uid.clone(), uid.clone(), uid),
            (
                "group",
                "-g",
                have.group.clone(),
                self.group.clone(),
                self.group.clone(),
            ),
            (
                "groups",
                "-G",
                list(&have.groups),
                groups.as_deref().map(list),
                groups.map(|g| g.join(",")),
            ),
            (
                "shell",
                "-s",
                have.shell.clone(),
                self.shell.clone(),
                self.shell.clone(),
            ),
            (
                "home",
                "-d",
                have.home.clone(),
                self.home.clone(),
                self.home.clone(),
            ),
        ];
        let mut before = vec![("user", Some(self.name.clone()))];
        let mut after = before.clone();
        let mut args: Vec<String> = Vec::new();
        for (key, flag, current, shown, arg) in fields {
            let (Some(shown), Some(arg)) = (shown, arg) else {
                continue;
            };
            if current != shown {
                args.extend([flag.to_string(), arg]);
            }
            before.push((key, Some(current)));
            after.push((key, Some(shown)));
        }
        let make_home_dir = self.create_home && have.home_dir == Some(false);
        if self.create_home {
            let state = if make_home_dir { "missing" } else { "present" };
            before.push(("home_dir", Some(state.to_string())));
            after.push(("home_dir", Some("present".to_string())));
        }
        let diff = Diff::of_metadata(self.diff_path(), &before, &after)?;
        let mut script = String::from("set -e\n");
        if !args.is_empty() {
            args.push(self.name.clone());
            script.push_str(&format!("usermod {}\n", quote_all(&args)));
        }
        if make_home_dir {
            let home = self.home.as_deref().unwrap_or(&have.home);
            script.push_str(&make_home(&self.name, home));
        }
        Some(Change {
            diff,
            what: format!("changing user {}", self.name),
            script,
        })
    }

    fn remove(&self, have: &Account) -> Change {
        let before = [
            ("user", Some(self.name.clone())),
            ("uid", Some(have.uid.clone())),
            ("group", Some(have.group.clone())),
            ("groups", Some(list(&have.groups))),
            ("shell", Some(have.shell.clone())),
            ("home", Some(have.home.clone())),
        ];
        Change {
            diff: Diff::new(self.diff_path(), Some(metadata_lines(&before)), None),
            what: format!("removing user {}", self.name),
            // The home directory stays: it may hold data nobody asked to delete.
            script: format!("userdel {}\n", quote(&self.name)),
        }
    }

    fn change(&self, current: Option<&Account>) -> Option<Change> {
        match (self.state, current) {
            (State::Present, None) => Some(self.create()),
            (State::Present, Some(have)) => self.modify(have),
            (State::Absent, Some(have)) => Some(self.remove(have)),
            (State::Absent, None) => None,
        }
    }
}

/// A missing home directory as `useradd --create-home` makes one: from /etc/skel,
/// owned by the user and its primary group.
/// Made through the one write path and filled from inside it (`.`), so no link
/// planted on the way is followed.
fn make_home(name: &str, home: &str) -> String {
    format!(
        "if [ ! -d {} ]; then (\n{}\
         if [ -d /etc/skel ]; then cp -a /etc/skel/. .; fi\nchown -R -- {} .\n); fi\n",
        quote(home),
        files::dir_script(home, None, None, None),
        quote(&format!("{name}:"))
    )
}

impl Action for UserAction {
    fn reads(&self, _found: &Probed) -> Option<Vec<Resource>> {
        let groups = self.group.iter().chain(self.groups.iter().flatten());
        let groups = groups.map(|g| Resource::Group(g.clone()));
        Some(
            std::iter::once(Resource::User(self.name.clone()))
                .chain(groups)
                .collect(),
        )
    }

    /// The account, the group named like it (`useradd -U` makes it, `userdel` removes
    /// it), the groups it joins, and with `create_home` the home directory: anything when
    /// that is useradd's default, unknown here. The groups it leaves change only in their
    /// member lists, which no plan compares; a new uid renumbers the files in its home,
    /// whose owner's name stays what probes print.
    fn touches(&self) -> Option<Vec<Resource>> {
        let groups = self.group.iter().chain(self.groups.iter().flatten());
        let mut touched: Vec<Resource> = [
            Resource::User(self.name.clone()),
            Resource::Group(self.name.clone()),
        ]
        .into_iter()
        .chain(groups.map(|g| Resource::Group(g.clone())))
        .collect();
        if self.create_home {
            touched.push(Resource::Dir(self.home.clone()?));
        }
        Some(touched)
    }

    fn resources(&self) -> Resources {
        if self.state == State::Absent {
            return Resources::default();
        }
        let groups = self.group.iter().chain(self.groups.iter().flatten());
        Resources {
            provides: vec![Resource::User(self.name.clone())],
            needs: groups.map(|g| Resource::Group(g.clone())).collect(),
        }
    }

    fn probe(&self) -> String {
        let n = quote(&self.name);
        let mut s = format!(
            "if e=$(getent passwd {n}); then printf 'passwd=%s\\n' \"$e\"; \
             printf 'groups=%s\\n' \"$(id -Gn {n} 2>/dev/null)\"; "
        );
        if self.create_home {
            let home = match &self.home {
                Some(h) => quote(h).into_owned(),
                None => "\"$(printf %s \"$e\" | cut -d: -f6)\"".to_string(),
            };
            s.push_str(&format!(
                "if [ -d {home} ]; then echo home_dir=present; else echo home_dir=missing; fi; "
            ));
        }
        s.push_str("fi\n");
        let needed = self.needed_groups();
        if self.state == State::Present && !needed.is_empty() {
            s.push_str(&format!(
                "m=; for g in {}; do getent group \"$g\" >/dev/null || m=\"$m $g\"; done; \
                 printf 'missing_groups=%s\\n' \"$m\"\n",
                quote_all(needed)
            ));
        }
        s
    }

    fn plan<'a>(&'a self, probed: &'a Probed, host: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let missing: Vec<String> = probed
            .field("missing_groups")
            .unwrap_or_default()
            .split_whitespace()
            .filter(|g| !host.coming(&Resource::Group(g.to_string())))
            .map(str::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(Failure::new(format!(
                "user {}: group {} does not exist (create it with a `group` task)",
                self.name,
                missing.join(", ")
            )));
        }
        let change = self.change(parse_account(&self.name, probed).as_ref());
        Ok(Change::plan(change))
    }
}

#[cfg(test)]
mod tests;
