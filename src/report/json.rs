//! `--json`: one document on stdout, for cron and monitoring.

use super::{HostReport, Reporter, Stopped, TaskReport};
use serde_json::{Map, Value, json};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Json {
    /// What [`Reporter::note`] said, for the document's `notes`.
    notes: Mutex<Vec<String>>,
}

impl Reporter for Json {
    fn task(&self, _host: &str, _task: &TaskReport) {}

    fn unreachable(&self, host: &str, reason: &str) {
        eprintln!("{host}: unreachable: {reason}");
    }

    fn locked(&self, host: &str, holder: &str) {
        eprintln!("{host}: locked: another converge run holds this host ({holder})");
    }

    fn note(&self, text: &str) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.push(text.to_string());
        }
    }

    fn not_reached(&self, host: &str, reason: &str) {
        eprintln!("{host}: not reached: {reason}");
    }

    fn finish(
        &self,
        hosts: &[HostReport],
        stopped: Option<&Stopped>,
        check_mode: bool,
        _elapsed: Duration,
    ) {
        let mut recap = Map::new();
        let mut details = Map::new();
        for h in hosts {
            recap.insert(h.host.clone(), json!(h.recap()));
            details.insert(h.host.clone(), json!(h));
        }
        let mut doc = json!({
            "version": 1,
            "check_mode": check_mode,
            "recap": Value::Object(recap),
            "hosts": Value::Object(details),
        });
        if let Some(stopped) = stopped {
            let not_reached: Vec<&str> = hosts
                .iter()
                .filter(|h| h.not_reached.is_some())
                .map(|h| h.host.as_str())
                .collect();
            doc["rollout"] = json!({
                "stopped": stopped,
                "summary": stopped.summary(),
                "not_reached": not_reached,
            });
        }
        if let Ok(notes) = self.notes.lock()
            && !notes.is_empty()
        {
            doc["notes"] = json!(*notes);
        }
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
}
