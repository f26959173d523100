//! What the user reads: per-task status lines with diffs, the recap, or one JSON document.

mod human;
mod json;

pub use human::Human;
pub use json::Json;

use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Ok,
    Changed,
    Failed,
    Skipped,
}

impl TaskStatus {
    pub fn word(self) -> &'static str {
        match self {
            TaskStatus::Ok => "ok",
            TaskStatus::Changed => "changed",
            TaskStatus::Failed => "failed",
            TaskStatus::Skipped => "skipped",
        }
    }
}

/// One task (one loop item) on one host, already redacted.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub name: String,
    pub module: String,
    pub item: Option<serde_json::Value>,
    pub status: TaskStatus,
    pub diff: Option<String>,
    pub error: Option<String>,
    pub skip_reason: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HostReport {
    #[serde(skip)]
    pub host: String,
    pub tasks: Vec<TaskReport>,
    #[serde(skip)]
    pub unreachable: Option<String>,
    /// Another controller held the host: who, since when. Nothing was done there.
    #[serde(skip)]
    pub locked: Option<String>,
    /// A rollout stopped before this host's batch: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_reached: Option<String>,
}

/// A rollout that stopped before its last batch.
#[derive(Debug, Clone, Serialize)]
pub struct Stopped {
    pub play: String,
    /// The last batch that ran (1-based; 0: none did).
    pub batch: usize,
    pub batches: usize,
    pub reason: String,
}

impl Stopped {
    /// `rollout stopped after batch 1/4 of play web: ...`.
    pub fn summary(&self) -> String {
        if self.batch == 0 {
            format!("rollout stopped before play {}: {}", self.play, self.reason)
        } else {
            format!(
                "rollout stopped after batch {}/{} of play {}: {}",
                self.batch, self.batches, self.play, self.reason
            )
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Recap {
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub unreachable: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_reached: bool,
}

impl HostReport {
    pub fn recap(&self) -> Recap {
        let count = |s: TaskStatus| self.tasks.iter().filter(|t| t.status == s).count();
        Recap {
            ok: count(TaskStatus::Ok),
            changed: count(TaskStatus::Changed),
            failed: count(TaskStatus::Failed),
            skipped: count(TaskStatus::Skipped),
            unreachable: self.unreachable.is_some(),
            locked: self.locked.is_some(),
            not_reached: self.not_reached.is_some(),
        }
    }

    /// Merge the reports of one host across plays.
    pub fn absorb(&mut self, other: HostReport) {
        self.tasks.extend(other.tasks);
        if self.unreachable.is_none() {
            self.unreachable = other.unreachable;
        }
        if self.locked.is_none() {
            self.locked = other.locked;
        }
        if self.not_reached.is_none() {
            self.not_reached = other.not_reached;
        }
    }
}

/// Receives results as hosts produce them.
pub trait Reporter: Send + Sync {
    /// A host started a task (for a live progress line).
    fn progress(&self, _host: &str, _done: usize, _total: usize, _task: &str) {}
    fn task(&self, host: &str, task: &TaskReport);
    fn unreachable(&self, host: &str, reason: &str);
    /// Another controller holds the host (`holder`: who, since when); it is left alone.
    fn locked(&self, host: &str, holder: &str);
    /// Something about the whole run, said before it (e.g. check mode ignoring `serial`).
    fn note(&self, text: &str);
    /// A batch of a rollout starts (`number` of `of`, 1-based).
    fn batch(&self, _play: &str, _number: usize, _of: usize, _hosts: &[&str]) {}
    /// A pause between batches starts; `watched`: each host with what is watched there.
    fn pause_started(&self, _after: &str, _pause: Duration, _watched: &[String]) {}
    /// The pause has `left` to go (for a live countdown).
    fn pause_left(&self, _left: Duration) {}
    /// The pause is over and the `hosts` watched stayed healthy.
    fn pause_ended(&self, _after: &str, _hosts: usize) {}
    /// A stopped rollout leaves this host alone.
    fn not_reached(&self, host: &str, reason: &str);
    /// The rollout stopped (said once, after the hosts not reached).
    fn stopped(&self, _stopped: &Stopped) {}
    /// All hosts done, in inventory order.
    fn finish(
        &self,
        hosts: &[HostReport],
        stopped: Option<&Stopped>,
        check_mode: bool,
        elapsed: Duration,
    );
}

/// Replace every secret value in `text` by `<secret>`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    // Longest first, so a secret containing another is replaced whole.
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        out = out.replace(s.as_str(), "<secret>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_every_secret() {
        let secrets = vec!["hunter2".to_string(), "hunter2-long".to_string()];
        assert_eq!(
            redact("pw=hunter2-long x=hunter2", &secrets),
            "pw=<secret> x=<secret>"
        );
    }
}
