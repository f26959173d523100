//! `--json`: one document on stdout, for cron and monitoring.

use super::{HostReport, Reporter, TaskReport};
use serde_json::{Map, Value, json};
use std::time::Duration;

pub struct Json;

impl Reporter for Json {
    fn task(&self, _host: &str, _task: &TaskReport) {}

    fn unreachable(&self, host: &str, reason: &str) {
        eprintln!("{host}: unreachable: {reason}");
    }

    fn locked(&self, host: &str, holder: &str) {
        eprintln!("{host}: locked: another converge run holds this host ({holder})");
    }

    fn finish(&self, hosts: &[HostReport], check_mode: bool, _elapsed: Duration) {
        let mut recap = Map::new();
        let mut details = Map::new();
        for h in hosts {
            recap.insert(h.host.clone(), json!(h.recap()));
            details.insert(h.host.clone(), json!({ "tasks": h.tasks }));
        }
        let doc = json!({
            "version": 1,
            "check_mode": check_mode,
            "recap": Value::Object(recap),
            "hosts": Value::Object(details),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
}
