//! The order of a run: plays without `serial` run together (every host connected and
//! every play rendered with facts before the first change), a play with `serial` runs
//! batch by batch, each batch on its own connections. Check mode changes nothing, so it
//! never batches.

use super::Target;
use crate::report::{HostReport, Stopped};
use crate::rollout::Rollout;
use std::ops::Range;

/// One batch of a play with `serial`.
pub struct BatchOf {
    /// The play's index among the run's plays.
    pub play: usize,
    /// 1-based.
    pub number: usize,
    pub of: usize,
    pub size: usize,
}

/// Plays (by index, with the range of their hosts) that connect and render together.
pub struct Segment {
    pub plays: Vec<(usize, Range<usize>)>,
    /// Set when the segment is one batch of a rollout.
    pub batch: Option<BatchOf>,
}

pub struct RunOrder {
    pub segments: Vec<Segment>,
    /// Said before the run (check mode ignoring `serial`).
    pub notes: Vec<String>,
}

/// The segments of a run, in order.
pub fn segments(targets: &[Target<'_, '_>], check: bool) -> RunOrder {
    let mut segments = Vec::new();
    let mut notes = Vec::new();
    let mut together: Vec<(usize, Range<usize>)> = Vec::new();
    for (index, (play, hosts, _, rollout)) in targets.iter().enumerate() {
        if !rollout.is_batched() {
            together.push((index, 0..hosts.len()));
            continue;
        }
        let sizes = rollout.batch_sizes(hosts.len());
        if check {
            notes.push(format!(
                "play {}: serial is for applying; check mode changes nothing, so its {} host(s) \
                 are diffed at once (applying goes in {} batch(es): {})",
                play.name,
                hosts.len(),
                sizes.len(),
                sizes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            together.push((index, 0..hosts.len()));
            continue;
        }
        if !together.is_empty() {
            segments.push(Segment {
                plays: std::mem::take(&mut together),
                batch: None,
            });
        }
        let mut start = 0;
        for (n, &size) in sizes.iter().enumerate() {
            segments.push(Segment {
                plays: vec![(index, start..start + size)],
                batch: Some(BatchOf {
                    play: index,
                    number: n + 1,
                    of: sizes.len(),
                    size,
                }),
            });
            start += size;
        }
    }
    if !together.is_empty() {
        segments.push(Segment {
            plays: together,
            batch: None,
        });
    }
    RunOrder { segments, notes }
}

/// Why a batch stopped the rollout: who failed, against which threshold.
pub fn failure_reason(rollout: &Rollout, failed: &[String], size: usize) -> String {
    let hosts = if size == 1 { "host" } else { "hosts" };
    let verb = if failed.len() == 1 {
        "failed or was unreachable"
    } else {
        "failed or were unreachable"
    };
    format!(
        "{} of {size} {hosts} {verb} ({}): {}",
        failed.len(),
        failed.join(", "),
        rollout.threshold()
    )
}

/// The stop Ctrl-C makes before `segment` starts (after the batch before it).
pub fn interrupted(targets: &[Target<'_, '_>], segment: &Segment) -> Stopped {
    let (play, batch, batches) = match &segment.batch {
        Some(b) => (targets[b.play].0.name.clone(), b.number - 1, b.of),
        None => (
            segment
                .plays
                .first()
                .map(|(i, _)| targets[*i].0.name.clone())
                .unwrap_or_default(),
            0,
            1,
        ),
    };
    Stopped {
        play,
        batch,
        batches,
        reason: "interrupted (Ctrl-C)".to_string(),
    }
}

/// Record the hosts of a segment the stopped rollout never reaches.
pub fn not_reached(
    targets: &[Target<'_, '_>],
    segment: &Segment,
    stop: &Stopped,
    reports: &mut indexmap::IndexMap<String, HostReport>,
    settings: &super::RunSettings<'_>,
) {
    let reason = stop.summary();
    for (play, range) in &segment.plays {
        for host in &targets[*play].1[range.clone()] {
            if let Some(r) = reports.get_mut(&host.name)
                && r.not_reached.is_none()
                && r.unreachable.is_none()
                && r.locked.is_none()
            {
                settings.reporter.not_reached(&host.name, &reason);
                r.not_reached = Some(reason.clone());
            }
        }
    }
}
