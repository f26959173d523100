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

/// A play as the run order sees it: its name, its number of hosts, its rollout.
pub type PlayShape<'p> = (&'p str, usize, &'p Rollout);

/// The segments of a run, in order.
pub fn segments(plays: &[PlayShape<'_>], check: bool) -> RunOrder {
    let mut segments = Vec::new();
    let mut notes = Vec::new();
    let mut together: Vec<(usize, Range<usize>)> = Vec::new();
    for (index, &(name, hosts, rollout)) in plays.iter().enumerate() {
        if !rollout.is_batched() {
            together.push((index, 0..hosts));
            continue;
        }
        let sizes = rollout.batch_sizes(hosts);
        if check {
            notes.push(format!(
                "play {}: serial is for applying; check mode changes nothing, so its {} host(s) \
                 are diffed at once (applying goes in {} batch(es): {})",
                name,
                hosts,
                sizes.len(),
                sizes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            together.push((index, 0..hosts));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::BatchSize;

    /// Each segment's plays with their host ranges, and its batch (number, of).
    type Shape = Vec<(Vec<(usize, Range<usize>)>, Option<(usize, usize)>)>;

    fn shape(order: &RunOrder) -> Shape {
        order
            .segments
            .iter()
            .map(|s| (s.plays.clone(), s.batch.as_ref().map(|b| (b.number, b.of))))
            .collect()
    }

    #[test]
    fn plays_without_serial_run_together_and_a_serial_play_in_batches_of_its_own() {
        let all = Rollout::default();
        let gray = Rollout {
            serial: vec![BatchSize::Hosts(1), BatchSize::Percent(50)],
            ..Rollout::default()
        };
        let plays = [
            ("base", 4, &all),
            ("app", 4, &gray),
            ("after", 2, &all),
            ("more", 2, &all),
        ];
        let order = segments(&plays, false);
        assert_eq!(
            shape(&order),
            [
                (vec![(0, 0..4)], None),
                (vec![(1, 0..1)], Some((1, 3))),
                (vec![(1, 1..3)], Some((2, 3))),
                (vec![(1, 3..4)], Some((3, 3))),
                (vec![(2, 0..2), (3, 0..2)], None),
            ]
        );
        assert!(order.notes.is_empty());
        // Check mode changes nothing: every play at once, and a note says why.
        let order = segments(&plays, true);
        assert_eq!(
            shape(&order),
            [(vec![(0, 0..4), (1, 0..4), (2, 0..2), (3, 0..2)], None)]
        );
        assert_eq!(
            order.notes,
            [
                "play app: serial is for applying; check mode changes nothing, so its 4 host(s) \
              are diffed at once (applying goes in 3 batch(es): 1, 2, 1)"
            ]
        );
    }
}
