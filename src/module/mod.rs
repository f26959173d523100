//! The contract between the engine and a module.
//!
//! A module turns rendered parameters into [`Action`]s. An action says what it needs
//! to read (a shell probe, batched with every other task's probe into one exec),
//! what it provides or needs (implicit DAG edges), and plans: from the probed state,
//! the diffs, the read-only checks and the changes ([`Plan`]). The engine ([`Ctx`])
//! runs the checks in both modes and the changes only when applying; a module never
//! knows which mode runs, so `converge diff` cannot lie.

pub mod account;
mod change;
mod context;
mod diff;
pub mod files;
pub mod http;
mod managed_file;
mod params;
mod plan;
mod probe;
pub mod steps;
pub mod systemd;
#[cfg(test)]
pub mod testing;
mod watch;

pub use account::Account;
pub use change::Change;
pub use context::{Ctx, HostInfo, PendingSettle, RestartBook};
pub use diff::{Diff, metadata_lines};
pub use managed_file::ManagedFile;
pub use params::{HostPath, Invalid, Mode, Params, State, one_or_many, opt_number};
pub use plan::{Command, Exec, FollowUp, HostView, Plan, failed};
pub use probe::Probed;
pub use watch::Watch;

use crate::error::InputResult;
use crate::transport::TransportError;

/// The lines of `text` (a user's script or extra directives) indented by `indent` to sit
/// inside a generated block; blank lines stay empty.
pub fn indented_lines(text: &str, indent: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!("{indent}{l}")
            }
        })
        .collect()
}

/// A built-in module: parses its parameters; found by name in the registry.
pub trait Module: Send + Sync {
    fn name(&self) -> &'static str;

    /// The parameter that names an unnamed task (`dir /opt/app`); None names it by the
    /// module alone (`ufw`).
    fn key_param(&self) -> Option<&'static str>;

    /// Type-check the parameters rendered for one host and build what to do there.
    /// Errors point into the playbook and stop the run before any host is changed.
    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>>;
}

pub trait Action: Send + Sync {
    /// A label for one part of a task a module splits in two (nginx_vhost's `http`).
    fn phase(&self) -> Option<&'static str> {
        None
    }

    /// What this action creates and what must exist before it (implicit edges).
    fn resources(&self) -> Resources {
        Resources::default()
    }

    /// What this action's probe read, given what it `found`, so that a change elsewhere
    /// that touches none of it leaves the probe standing (see [`Resource::overlaps`]).
    /// None, the default: it may read anything, so it is read again after every change.
    fn reads(&self, _found: &Probed) -> Option<Vec<Resource>> {
        None
    }

    /// What a change by this action can alter on the host. None, the default: anything
    /// (a command, a package, a restarted service), so every later probe is read again.
    fn touches(&self) -> Option<Vec<Resource>> {
        None
    }

    /// The service this action restarts, so restarts of one service can be merged.
    fn restarts(&self) -> Option<&str> {
        None
    }

    /// The service that needs a restart once this action changed something (a unit
    /// file), recorded on the host before the change goes live.
    fn owes_restart(&self) -> Option<&str> {
        self.restarts()
    }

    /// A read-only POSIX sh snippet printing the current state on stdout. It runs in a
    /// subshell, batched with the other tasks' probes, as root when the task becomes root.
    /// It should depend on what to read (paths, names), not on desired content: a probe
    /// whose text is the same before and after facts are known is answered by the first
    /// round trip, which is what makes a no-change rerun one exec.
    fn probe(&self) -> String;

    /// After this action changed something in apply mode: the health check that keeps
    /// guarding it, for a rollout to repeat between batches (see [`Watch`]).
    fn watch(&self) -> Option<Box<dyn Watch>> {
        None
    }

    /// Compare the probed state with the desired one: what differs, the checks to run
    /// and the changes that make it so. Pure: the engine runs what it returns.
    fn plan<'a>(&'a self, state: &'a Probed, host: &HostView<'_>) -> Result<Plan<'a>, Failure>;
}

/// Things on a host that give the DAG its implicit edges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A directory; it covers everything at or below its path.
    Dir(String),
    /// A path something is written at (needs the dirs above it).
    Path(String),
    User(String),
    Group(String),
    /// A systemd unit, by name without `.service`.
    Unit(String),
    Package(String),
    /// A certificate, by certbot's `--cert-name`.
    Cert(String),
    /// The plain-HTTP part of a vhost, which serves the ACME challenge for a name.
    AcmeChallenge(String),
}

impl Resource {
    /// Whether providing `self` must come before something that needs `needed`.
    pub fn satisfies(&self, needed: &Resource) -> bool {
        match (self, needed) {
            (Resource::Dir(dir), Resource::Path(p) | Resource::Dir(p)) => {
                let dir = dir.trim_end_matches('/');
                p == dir || p.starts_with(&format!("{dir}/"))
            }
            _ => self == needed,
        }
    }

    /// Whether a change to one can alter what a probe of the other reads: the same
    /// thing, or a directory and something in it.
    pub fn overlaps(&self, other: &Resource) -> bool {
        self.satisfies(other) || other.satisfies(self)
    }

    /// A unit named with or without `.service`.
    pub fn unit(name: &str) -> Resource {
        Resource::Unit(name.trim_end_matches(".service").to_string())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub provides: Vec<Resource>,
    pub needs: Vec<Resource>,
}

impl Resources {
    /// A path this action writes: it needs the dirs above it, its owner and group, and
    /// orders before other tasks on the same path.
    pub fn writes(path: &str, owner: Option<&str>, group: Option<&str>) -> Resources {
        let mut resources = Resources::for_path(path, owner, group);
        resources.provides.push(Resource::Path(path.to_string()));
        resources
    }

    /// The usual needs of a managed path: the dirs above it, its owner and group.
    pub fn for_path(path: &str, owner: Option<&str>, group: Option<&str>) -> Resources {
        let mut needs = vec![Resource::Path(path.to_string())];
        needs.extend(owner.map(|o| Resource::User(o.to_string())));
        needs.extend(group.map(|g| Resource::Group(g.to_string())));
        Resources {
            provides: Vec::new(),
            needs,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    Changed,
    Skipped(String),
}

/// What a task did (or, in check mode, would do).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub diffs: Vec<Diff>,
}

impl Outcome {
    pub fn ok() -> Outcome {
        Outcome {
            status: Status::Ok,
            diffs: Vec::new(),
        }
    }

    pub fn skipped(reason: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Skipped(reason.into()),
            diffs: Vec::new(),
        }
    }

    /// `changed` when there is any diff, `ok` otherwise.
    pub fn from_diffs(diffs: Vec<Diff>) -> Outcome {
        let status = if diffs.is_empty() {
            Status::Ok
        } else {
            Status::Changed
        };
        Outcome { status, diffs }
    }

    pub fn changed(&self) -> bool {
        self.status == Status::Changed
    }
}

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Task(String),
    /// The connection broke: the host is unreachable from here on.
    #[error(transparent)]
    Connection(TransportError),
}

impl From<TransportError> for Failure {
    /// A command that timed out (or that the host refused to run) fails its task; the
    /// other transport errors mean the connection is gone.
    fn from(e: TransportError) -> Failure {
        if e.is_unreachable() {
            Failure::Connection(e)
        } else {
            Failure::Task(e.to_string())
        }
    }
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure::Task(message.into())
    }
}
