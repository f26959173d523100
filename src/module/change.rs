//! A planned change: what the user is shown and the script that makes it so, for
//! modules whose whole plan is "compute the changes, then run them".

use super::{Command, Diff, Plan};

#[derive(Debug, Clone)]
pub struct Change {
    pub diff: Diff,
    /// Names the step in a failure message (`creating /opt/app failed (exit 1): ...`).
    pub what: String,
    pub script: String,
}

impl Change {
    /// Each change shown, and run in order when applying.
    pub fn plan<'a>(changes: impl IntoIterator<Item = Change>) -> Plan<'a> {
        let mut plan = Plan::unchanged();
        for change in changes {
            plan.change(Some(change.diff), Command::new(change.what, change.script));
        }
        plan
    }
}
