//! Rolling (gray) releases: a play's `serial`, `max_fail_percentage` and `batch_pause`,
//! and how they cut its hosts into batches and decide when a rollout stops. Sizes and
//! thresholds follow Ansible's own code, cited where each rule lives.

use crate::error::InputResult;
use crate::node::{Kind, Node};
use crate::playbook::Play;
use crate::playbook::template::engine;
use crate::playbook::vars::Layer;
use serde_json::Value;
use std::time::Duration;

/// One entry of `serial`: a number of hosts or a percentage of the play's hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    Hosts(u64),
    Percent(u64),
}

impl BatchSize {
    /// How many hosts this entry takes out of a play of `play_hosts`; 0 means every
    /// host left. Ansible's `pct_to_int` (ansible/utils/helpers.py) truncates a
    /// percentage and makes it at least 1: `int((pct / 100.0) * num_items) or 1`; a
    /// number `<= 0` takes the rest (`_get_serialized_batches` in
    /// ansible/executor/playbook_executor.py).
    fn hosts(self, play_hosts: usize) -> usize {
        match self {
            BatchSize::Hosts(n) => usize::try_from(n).unwrap_or(usize::MAX),
            BatchSize::Percent(p) => {
                let share = u128::from(p) * play_hosts as u128 / 100;
                usize::try_from(share).unwrap_or(usize::MAX).max(1)
            }
        }
    }
}

/// A play's rollout keys, as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollout {
    /// Empty: every host in one batch.
    pub serial: Vec<BatchSize>,
    /// Percent of a batch that may fail (or be unreachable) without stopping the rollout.
    pub max_fail_percentage: Option<f64>,
    /// Between two batches: the released hosts stay watched this long.
    pub batch_pause: Option<Duration>,
}

impl Rollout {
    /// Whether the play runs in more than one batch at all.
    pub fn is_batched(&self) -> bool {
        !self.serial.is_empty()
    }

    /// The sizes of the batches that split `play_hosts` hosts, in order (they add up to
    /// `play_hosts`); the last entry of `serial` repeats until every host is taken.
    pub fn batch_sizes(&self, play_hosts: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut left = play_hosts;
        let mut entries = self.serial.iter();
        let mut entry = entries.next();
        while left > 0 {
            let size = match entry.map(|e| e.hosts(play_hosts)) {
                None | Some(0) => left,
                Some(n) => n.min(left),
            };
            sizes.push(size);
            left -= size;
            entry = entries.next().or(entry);
        }
        sizes
    }

    /// Whether `failed` of a batch of `size` hosts (failed or unreachable) stop the
    /// rollout. Ansible stops when the whole batch failed (playbook_executor.py:
    /// `if len(batch) == failed_hosts_count: break_play = True`) or, with
    /// `max_fail_percentage`, when the failed share *exceeds* it, equal is allowed
    /// (ansible/plugins/strategy/linear.py: `(failed / batch_size) > percentage`).
    pub fn stops(&self, failed: usize, size: usize) -> bool {
        if failed == 0 {
            return false;
        }
        let exceeds = self
            .max_fail_percentage
            .is_some_and(|p| failed as f64 * 100.0 > p * size as f64);
        failed >= size || exceeds
    }

    /// The threshold in words, for the reason a rollout stopped.
    pub fn threshold(&self) -> String {
        match self.max_fail_percentage {
            Some(p) => format!("more than max_fail_percentage ({p}%)"),
            None => "the whole batch (the default without max_fail_percentage)".to_string(),
        }
    }
}

/// The rollout keys as the play writes them: checked when the playbook loads, or, when
/// they hold a template (`batch_pause: "{{pause}}"`), once the play's variables and `-e`
/// are known (still before any host is touched).
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub serial: Option<Node>,
    pub max_fail_percentage: Option<Node>,
    pub batch_pause: Option<Node>,
}

impl Written {
    fn keys(&self) -> impl Iterator<Item = &Node> {
        [&self.serial, &self.max_fail_percentage, &self.batch_pause]
            .into_iter()
            .flatten()
    }

    /// Whether a value waits for variables.
    pub fn is_templated(&self) -> bool {
        self.keys().any(|n| n.to_value().to_string().contains("{{"))
    }

    /// The mistakes that need no variables, at load time.
    pub fn check(&self) -> InputResult<()> {
        if !self.is_templated() {
            self.read(|node| Ok(node.to_value()))?;
        }
        Ok(())
    }

    /// The rollout, each value rendered by `render` first.
    pub fn read(&self, render: impl Fn(&Node) -> InputResult<Value>) -> InputResult<Rollout> {
        let mut rollout = Rollout::default();
        if let Some(node) = &self.serial {
            rollout.serial = parse_serial(node, &render(node)?)?;
        }
        if let Some(node) = &self.max_fail_percentage {
            rollout.max_fail_percentage = Some(parse_max_fail_percentage(node, &render(node)?)?);
        }
        if let Some(node) = &self.batch_pause {
            rollout.batch_pause = Some(parse_batch_pause(node, &render(node)?)?);
        }
        Ok(rollout)
    }
}

/// A play's rollout, its templates rendered with the play's variables and `-e` (as
/// Ansible renders `serial`: no host's variables, as the batches are not cut yet).
pub fn of_play(play: &Play, extra: &Layer) -> InputResult<Rollout> {
    if !play.rollout.is_templated() {
        return play.rollout.read(|node| Ok(node.to_value()));
    }
    // Lowest precedence first: play vars, vars_files, -e.
    let layers = std::iter::once(&play.vars)
        .chain(&play.vars_files)
        .chain(std::iter::once(extra));
    let mut vars = serde_json::Map::new();
    for (name, node) in layers.flatten() {
        vars.insert(name.clone(), node.to_value());
    }
    let ctx = Value::Object(vars);
    play.rollout.read(|node| engine().render_node(node, &ctx))
}

/// `serial: 2`, `serial: "25%"` or `serial: [1, "15%", "40%", "100%"]` (`value`: what
/// `node` holds, rendered).
fn parse_serial(node: &Node, value: &Value) -> InputResult<Vec<BatchSize>> {
    match value {
        Value::Array(items) if !items.is_empty() => {
            let at = |i: usize| match &node.kind {
                Kind::Seq(nodes) => nodes.get(i).unwrap_or(node),
                _ => node,
            };
            items
                .iter()
                .enumerate()
                .map(|(i, item)| batch_size(at(i), item))
                .collect()
        }
        Value::Array(_) => Err(node
            .error("serial is an empty list")
            .help("write a number, a percentage, or a list of them: serial: [1, \"25%\"]")),
        _ => Ok(vec![batch_size(node, value)?]),
    }
}

fn batch_size(node: &Node, value: &Value) -> InputResult<BatchSize> {
    let help = "write a number of hosts (`2`), a percentage (`\"25%\"`), or a list of them \
                (the last one repeats): serial: [1, \"15%\", \"100%\"]";
    let size = match value {
        Value::Number(n) => n.as_u64().map(BatchSize::Hosts),
        Value::String(text) => {
            let text = text.trim();
            match text.strip_suffix('%') {
                Some(p) => p
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|p| *p <= 100)
                    .map(BatchSize::Percent),
                None => text.parse::<u64>().ok().map(BatchSize::Hosts),
            }
        }
        _ => None,
    };
    size.ok_or_else(|| {
        node.error(format!(
            "{value}: a serial batch is a number of hosts or a whole percentage from 0% to 100%"
        ))
        .help(help)
    })
}

/// `max_fail_percentage: 20` (or `"20%"`): 0 to 100.
fn parse_max_fail_percentage(node: &Node, value: &Value) -> InputResult<f64> {
    let percent = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => text.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
        _ => None,
    };
    percent
        .filter(|p| (0.0..=100.0).contains(p))
        .ok_or_else(|| {
            node.error(format!("{value}: max_fail_percentage is a percentage from 0 to 100"))
                .help("write e.g. `max_fail_percentage: 20`: more than 20 % of a batch failing stops the rollout")
        })
}

/// `batch_pause: 300` (seconds) or `batch_pause: 5m` (humantime); 0 is no pause.
fn parse_batch_pause(node: &Node, value: &Value) -> InputResult<Duration> {
    let pause = match value {
        Value::Number(n) => n.as_u64().map(Duration::from_secs),
        Value::String(text) => {
            let text = text.trim();
            text.parse::<u64>()
                .ok()
                .map(Duration::from_secs)
                .or_else(|| humantime::parse_duration(text).ok())
        }
        _ => None,
    };
    pause.ok_or_else(|| {
        node.error(format!(
            "{value}: batch_pause must be a number of seconds or a duration"
        ))
        .help("write seconds (`batch_pause: 300`) or a duration like `batch_pause: 5m`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SourceFile;

    fn node(yaml: &str) -> Node {
        crate::node::parse(&SourceFile::new("site.yml", yaml)).unwrap()
    }

    /// Each key as written (`serial: ...`), read without variables.
    fn read(key: &str, yaml: &str) -> InputResult<Rollout> {
        let node = node(yaml);
        let written = match key {
            "serial" => Written {
                serial: Some(node),
                ..Written::default()
            },
            "max_fail_percentage" => Written {
                max_fail_percentage: Some(node),
                ..Written::default()
            },
            _ => Written {
                batch_pause: Some(node),
                ..Written::default()
            },
        };
        written.read(|n| Ok(n.to_value()))
    }

    fn sizes(serial: &str, hosts: usize) -> Vec<usize> {
        read("serial", serial).unwrap().batch_sizes(hosts)
    }

    #[test]
    fn a_number_cuts_batches_of_that_size_and_the_rest() {
        assert_eq!(sizes("2", 5), [2, 2, 1]);
        assert_eq!(sizes("\"3\"", 3), [3]);
        assert_eq!(sizes("10", 4), [4]);
        // Ansible: a serial <= 0 takes every host left.
        assert_eq!(sizes("0", 4), [4]);
        assert_eq!(sizes("[1, 0]", 4), [1, 3]);
        assert_eq!(sizes("1", 0), Vec::<usize>::new());
    }

    #[test]
    fn a_percentage_is_truncated_and_at_least_one_host() {
        // int(0.25 * 10) = 2; int(0.15 * 5) = 0, raised to 1.
        assert_eq!(sizes("\"25%\"", 10), [2, 2, 2, 2, 2]);
        assert_eq!(sizes("\"15%\"", 5), [1, 1, 1, 1, 1]);
        assert_eq!(sizes("\"40%\"", 5), [2, 2, 1]);
        assert_eq!(sizes("\"0%\"", 2), [1, 1]);
        assert_eq!(sizes("\"100%\"", 7), [7]);
    }

    #[test]
    fn a_list_goes_in_order_and_its_last_entry_repeats() {
        assert_eq!(sizes("[1, \"15%\", \"40%\", \"100%\"]", 5), [1, 1, 2, 1]);
        assert_eq!(sizes("[1, \"15%\", \"40%\", \"100%\"]", 20), [1, 3, 8, 8]);
        assert_eq!(sizes("[1, 2]", 7), [1, 2, 2, 2]);
        // Percentages are of the play's hosts, not of those left.
        assert_eq!(sizes("[\"50%\", \"20%\"]", 10), [5, 2, 2, 1]);
    }

    #[test]
    fn what_ansible_computes_for_the_same_serial() {
        // Printed by Ansible 12.3.0's own pct_to_int driven as _get_serialized_batches
        // drives it, on the same inputs (the other cases above agree with it too).
        assert_eq!(sizes("[\"33%\"]", 10), [3, 3, 3, 1]);
        assert_eq!(sizes("[\"10%\", \"30%\"]", 9), [1, 2, 2, 2, 2]);
    }

    #[test]
    fn the_rollout_stops_when_failures_exceed_the_threshold() {
        let default = Rollout::default();
        // Without max_fail_percentage, only a batch that failed whole stops it.
        assert!(!default.stops(0, 1));
        assert!(default.stops(1, 1));
        assert!(!default.stops(1, 2));
        assert!(default.stops(2, 2));
        let twenty = Rollout {
            max_fail_percentage: Some(20.0),
            ..Rollout::default()
        };
        // Exceeding stops, reaching does not: 1 of 5 is exactly 20 %.
        assert!(!twenty.stops(1, 5));
        assert!(twenty.stops(2, 5));
        assert!(twenty.stops(1, 4));
        let zero = Rollout {
            max_fail_percentage: Some(0.0),
            ..Rollout::default()
        };
        assert!(zero.stops(1, 10));
        assert!(!zero.stops(0, 10));
        // 100 % still stops on a batch that failed whole, as Ansible does.
        let all = Rollout {
            max_fail_percentage: Some(100.0),
            ..Rollout::default()
        };
        assert!(all.stops(3, 3));
        assert!(!all.stops(2, 3));
    }

    #[test]
    fn bad_values_are_located_with_a_help() {
        let err = read("serial", "[1, \"15.5%\"]").unwrap_err();
        assert!(err.message.contains("site.yml:1:5"), "{}", err.message);
        assert!(err.help.unwrap().contains("percentage"));
        assert!(read("serial", "[]").is_err());
        assert!(read("serial", "-1").is_err());
        assert!(read("serial", "\"120%\"").is_err());
        assert!(read("max_fail_percentage", "101").is_err());
        let percent = |yaml| {
            read("max_fail_percentage", yaml)
                .unwrap()
                .max_fail_percentage
        };
        assert_eq!(percent("\"25%\""), Some(25.0));
        assert_eq!(percent("12.5"), Some(12.5));
        let pause = |yaml| read("batch_pause", yaml).unwrap().batch_pause;
        assert_eq!(pause("5m"), Some(Duration::from_secs(300)));
        assert_eq!(pause("0"), Some(Duration::ZERO));
        assert_eq!(pause("\"90\""), Some(Duration::from_secs(90)));
        assert!(read("batch_pause", "soon").is_err());
    }

    #[test]
    fn a_templated_value_waits_for_its_variables() {
        let written = Written {
            batch_pause: Some(node("\"{{pause}}\"")),
            ..Written::default()
        };
        assert!(written.is_templated());
        assert!(written.check().is_ok());
        let rollout = written.read(|_| Ok(Value::String("0".into()))).unwrap();
        assert_eq!(rollout.batch_pause, Some(Duration::ZERO));
    }
}
