//! Human output: a status line per task with its diff, a recap line per host.
//! On a terminal, a live progress line per host while tasks run.

use super::{HostReport, Reporter, Stopped, TaskReport, TaskStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use owo_colors::OwoColorize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The progress map's key for a pause's line (not a host name: it holds a NUL).
const PAUSE_BAR: &str = "\0pause";
/// A batch or a watch list longer than this is shown abridged.
const LISTED: usize = 10;

/// `h1, h2, h3` or `h1, ..., h10 and 90 more`.
fn abridged<S: AsRef<str>>(names: &[S], separator: &str) -> String {
    let shown: Vec<&str> = names.iter().take(LISTED).map(AsRef::as_ref).collect();
    let mut text = shown.join(separator);
    if names.len() > LISTED {
        text.push_str(&format!("{separator}and {} more", names.len() - LISTED));
    }
    text
}

fn whole_seconds(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs_f64().ceil() as u64)).to_string()
}

pub struct Human {
    color: bool,
    /// `-q`: hold everything back until we know whether anything changed or failed.
    quiet: bool,
    held: Mutex<Vec<String>>,
    /// What the pause under way follows and watches, for its live line.
    pause_context: Mutex<String>,
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
            pause_context: Mutex::new(String::new()),
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

    /// A word that says something went wrong (`unreachable`, `locked`, `not reached`).
    fn alarm(&self, word: &str) -> String {
        if self.color {
            word.red().bold().to_string()
        } else {
            word.to_string()
        }
    }

    /// The live line of a rollout's pause, made on first use.
    fn pause_bar(&self, message: String) {
        let Some((mp, bars)) = &self.progress else {
            return;
        };
        let Ok(mut bars) = bars.lock() else {
            return;
        };
        let bar = bars.entry(PAUSE_BAR.to_string()).or_insert_with(|| {
            let bar = mp.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{prefix:.bold} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix("pause");
            bar
        });
        bar.set_message(message);
    }

    /// The batch before is done: only what runs now is shown live.
    fn clear_live_lines(&self) {
        if let Some((_, bars)) = &self.progress
            && let Ok(mut bars) = bars.lock()
        {
            for (_, bar) in bars.drain() {
                bar.finish_and_clear();
            }
        }
    }

    fn end_pause_bar(&self) {
        if let Some((_, bars)) = &self.progress
            && let Ok(mut bars) = bars.lock()
            && let Some(bar) = bars.remove(PAUSE_BAR)
        {
            bar.finish_and_clear();
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
        self.emit(format!("{} {host}: {reason}\n", self.alarm("unreachable")));
    }

    fn locked(&self, host: &str, holder: &str) {
        self.emit(format!(
            "{} {host}: another converge run holds this host ({holder}); nothing was done there\n",
            self.alarm("locked")
        ));
    }

    fn note(&self, text: &str) {
        self.emit(format!("note: {text}\n"));
    }

    fn batch(&self, play: &str, number: usize, of: usize, hosts: &[&str]) {
        self.clear_live_lines();
        self.emit(format!(
            "batch {number}/{of} of play {play}: {}\n",
            abridged(hosts, ", ")
        ));
    }

    fn pause_started(&self, after: &str, pause: Duration, watched: &[String]) {
        self.clear_live_lines();
        if let Ok(mut context) = self.pause_context.lock() {
            *context = format!("after {after}, watching {} host(s)", watched.len());
        }
        let mut text = format!(
            "pause {} after {after}: watching {} host(s)\n",
            whole_seconds(pause),
            watched.len()
        );
        for line in abridged(watched, "\n").lines() {
            text.push_str(&format!("    {line}\n"));
        }
        self.emit(text);
    }

    fn pause_left(&self, left: Duration) {
        let context = self
            .pause_context
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        self.pause_bar(format!("{} left {context}", whole_seconds(left)));
    }

    fn pause_ended(&self, after: &str, hosts: usize) {
        self.end_pause_bar();
        self.emit(format!(
            "pause over after {after}: the {hosts} watched host(s) stayed healthy\n"
        ));
    }

    fn not_reached(&self, host: &str, reason: &str) {
        self.emit(format!("{} {host}: {reason}\n", self.alarm("not reached")));
    }

    fn stopped(&self, stopped: &Stopped) {
        self.end_pause_bar();
        self.emit(format!("{}\n", self.alarm(&stopped.summary())));
    }

    fn finish(
        &self,
        hosts: &[HostReport],
        stopped: Option<&Stopped>,
        _check_mode: bool,
        _elapsed: Duration,
    ) {
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
            r.changed > 0 || r.failed > 0 || r.unreachable || r.locked || r.not_reached
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
            if let Some(reason) = &h.not_reached {
                println!("{}  not reached: {reason}", h.host);
                if h.tasks.is_empty() {
                    continue;
                }
            }
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
        if let Some(stopped) = stopped {
            println!("{}", self.alarm(&stopped.summary()));
        }
    }
}
