//! A planned change: what the user is shown and the script that makes it so, for
//! modules whose whole converge is "compute the changes, then run them".

use super::{Ctx, Diff, Failure, Outcome};

#[derive(Debug, Clone)]
pub struct Change {
    pub diff: Diff,
    /// Names the step in a failure message (`creating /opt/app failed (exit 1): ...`).
    pub what: String,
    pub script: String,
}

impl Change {
    /// Report the changes and, when applying, run their scripts in order; the first
    /// failure stops the rest.
    pub async fn converge(changes: Vec<Change>, ctx: &Ctx<'_>) -> Result<Outcome, Failure> {
        if ctx.apply {
            for change in &changes {
                ctx.run_ok(&change.what, &change.script).await?;
            }
        }
        Ok(Outcome::from_diffs(
            changes.into_iter().map(|c| c.diff).collect(),
        ))
    }
}
