//! Human output: a status line per task with its diff, a recap line per host.
//! On a terminal, a live progress line per host while tasks run.

use super::{HostReport, Reporter, TaskReport, TaskStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use owo_colors::OwoColorize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub struct Human {
    color: bool,
    /// `-q`: hold everything back until we know whether anything changed or failed.
    quiet: bool,
    held: Mutex<Vec<String>>,
    progress: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
}

impl Human {
    pub fn new(color: bool, quiet: bool, live: bool) -> Human {
        let progress = (live && !quiet).then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
                Mutex::new(HashMap::new()),
            )
        });
        Human {
            color,
            quiet,
            held: Mutex::new(Vec::new()),
            progress,
        }
    }

    fn emit(&self, text: String) {
        if self.quiet {
            if let Ok(mut held) = self.held.lock() {
                held.push(text);
            }
        } else if let Some((mp, _)) = &self.progress {
            let _ = mp.println(text.trim_end_matches('\n'));
        } else {
            print!("{text}");
        }
    }

    fn status_word(&self, status: TaskStatus) -> String {
        let word = format!("{:<8}", status.word());
        if !self.color {
            return word;
        }
        match status {
            TaskStatus::Ok => word.green().to_string(),
            TaskStatus::Changed => word.yellow().to_string(),
            TaskStatus::Failed => word.red().bold().to_string(),
            TaskStatus::Skipped => word.cyan().to_string(),
        }
    }

    fn color_diff(&self, diff: &str) -> String {
        if !self.color {
            return diff.to_string();
        }
        diff.lines()
            .map(|l| {
                let styled = if l.starts_with("+++") || l.starts_with("---") {
                    l.bold().to_string()
                } else if l.starts_with('+') {
                    l.green().to_string()
                } else if l.starts_with('-') {
                    l.red().to_string()
                } else if l.starts_with("@@") {
                    l.cyan().to_string()
                } else {
                    l.to_string()
                };
                styled + "\n"
            })
            .collect()
    }
}

impl Reporter for Human {
    fn progress(&self, host: &str, done: usize, total: usize, task: &str) {
        let Some((mp, bars)) = &self.progress else {
            return;
        };
        let Ok(mut bars) = bars.lock() else {
            return;
        };
        let bar = bars.entry(host.to_string()).or_insert_with(|| {
            let bar = mp.add(ProgressBar::new(total as u64));
            bar.set_style(
                ProgressStyle::with_template("{prefix:.bold} [{pos}/{len}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(host.to_string());
            bar
        });
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(task.to_string());
    }

    fn task(&self, host: &str, task: &TaskReport) {
        let mut text = format!("{} {host}: {}", self.status_word(task.status), task.name);
        if let Some(reason) = &task.skip_reason {
            text.push_str(&format!(" ({reason})"));
        }
        text.push('\n');
        if let Some(error) = &task.error {
            for line in error.lines() {
                text.push_str(&format!("    {line}\n"));
            }
        }
        if let Some(diff) = &task.diff {
            text.push_str(&self.color_diff(diff));
        }
        self.emit(text);
    }

    fn unreachable(&self, host: &str, reason: &str) {
        let word = if self.color {
            "unreachable".red().bold().to_string()
        } else {
            "unreachable".to_string()
        };
        self.emit(format!("{word} {host}: {reason}\n"));
    }

    fn locked(&self, host: &str, holder: &str) {
        let word = if self.color {
            "locked".red().bold().to_string()
        } else {
            "locked".to_string()
        };
        self.emit(format!(
            "{word} {host}: another converge run holds this host ({holder}); nothing was done there\n"
        ));
    }

    fn finish(&self, hosts: &[HostReport], _check_mode: bool, _elapsed: Duration) {
        if let Some((mp, bars)) = &self.progress {
            if let Ok(bars) = bars.lock() {
                for bar in bars.values() {
                    bar.finish_and_clear();
                }
            }
            let _ = mp.clear();
        }
        let eventful = hosts.iter().any(|h| {
            let r = h.recap();
            r.changed > 0 || r.failed > 0 || r.unreachable || r.locked
        });
        if self.quiet {
            if !eventful {
                return;
            }
            if let Ok(held) = self.held.lock() {
                print!("{}", held.concat());
            }
        }
        println!();
        for h in hosts {
            let r = h.recap();
            println!(
                "{}  ok={} changed={} failed={} skipped={} unreachable={}",
                h.host,
                r.ok,
                r.changed,
                r.failed,
                r.skipped,
                usize::from(r.unreachable)
            );
        }
    }
}
