//! A task's consecutive changes in one exec: each runs in its own subshell, as it would
//! alone, and is followed by a marker line with a per-run nonce on both stdout and
//! stderr, so that each change's output and status split back out and each is judged
//! as if it had run alone. An exec costs a host ~3 ms (sshd's session, `timeout`, a
//! shell) and a round trip; a subshell ~0.3 ms.

use crate::transport::ExecOutput;

/// The script running `bodies` in order, stopping at the first that fails; `stdin` is
/// the one that reads the exec's standard input (the others read /dev/null).
pub fn script(nonce: &str, bodies: &[&str], stdin: Option<usize>) -> String {
    let mut script = format!(
        "cvg_step() {{ printf '\\n{MARK}{nonce}:%s\\n' \"$1\"; printf '\\n{MARK}{nonce}:%s\\n' \"$1\" >&2; }}\n"
    );
    for (k, body) in bodies.iter().enumerate() {
        // An empty subshell `( )` is a syntax error.
        let body = if body.trim().is_empty() { ":" } else { body };
        let input = if Some(k) == stdin { "" } else { " </dev/null" };
        script.push_str(&format!(
            "(\n{body}\n){input}\ncvg_s=$?; cvg_step \"$cvg_s\"; [ \"$cvg_s\" = 0 ] || exit \"$cvg_s\"\n"
        ));
    }
    script
}

const MARK: &str = "@@converge-step:";

/// A marker no file's content can forge: probes and changes print what hosts hold.
pub fn nonce() -> String {
    format!("{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded per process from the OS: enough for an unguessable marker.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Each change's output, for those that ran: one without a marker (cut off, timed out)
/// gets the rest of the output and the exec's status.
pub fn split(nonce: &str, out: &ExecOutput, steps: usize) -> Vec<ExecOutput> {
    let (stdout, statuses) = segments(nonce, &out.stdout);
    let (stderr, _) = segments(nonce, &out.stderr);
    // A change that failed stopped the rest; after one that succeeded the next ran.
    let ran = match statuses.last() {
        Some(&status) if status != 0 => statuses.len(),
        _ => (statuses.len() + 1).min(steps),
    };
    (0..ran)
        .map(|k| ExecOutput {
            status: statuses.get(k).copied().unwrap_or(out.status),
            stdout: stdout.get(k).cloned().unwrap_or_default(),
            stderr: stderr.get(k).cloned().unwrap_or_default(),
        })
        .collect()
}

/// The text before each marker and the status it carries, then what follows the last.
fn segments(nonce: &str, text: &[u8]) -> (Vec<Vec<u8>>, Vec<i32>) {
    let prefix = format!("{MARK}{nonce}:");
    let (mut parts, mut statuses, mut current) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.split_inclusive(|&b| b == b'\n') {
        let marker = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.trim_end_matches('\n').strip_prefix(&prefix))
            .and_then(|status| status.parse::<i32>().ok());
        match marker {
            Some(status) => {
                // The marker is printed after a newline of its own.
                if current.last() == Some(&b'\n') {
                    current.pop();
                }
                parts.push(std::mem::take(&mut current));
                statuses.push(status);
            }
            None => current.extend_from_slice(line),
        }
    }
    parts.push(current);
    (parts, statuses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str, stdin: &str) -> ExecOutput {
        let out = crate::module::testing::sh_with_stdin(script, stdin.as_bytes());
        ExecOutput {
            status: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    #[test]
    fn each_change_keeps_its_output_status_and_stdin() {
        let bodies = [
            "echo one; echo warn >&2",
            "cat; printf 'no newline'",
            "set -e; trap 'echo trap ran >&2' EXIT; cd /; exit 0",
        ];
        let script = script("abc", &bodies, Some(1));
        let out = run(&script, "from stdin\n");
        let steps = split("abc", &out, 3);
        assert_eq!(out.status, 0);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0].stdout_text(), "one\n");
        assert_eq!(steps[0].stderr_text(), "warn");
        assert_eq!(steps[1].stdout_text(), "from stdin\nno newline");
        assert_eq!(steps[2].stderr_text(), "trap ran");
        assert!(steps.iter().all(|s| s.status == 0));
    }

    #[test]
    fn the_first_failure_stops_the_rest_and_reads_no_stdin_but_its_own() {
        let bodies = ["cat; echo read", "echo failing >&2; exit 4", "echo never"];
        let out = run(&script("n1", &bodies, None), "not for them\n");
        assert_eq!(out.status, 4);
        let steps = split("n1", &out, 3);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].stdout_text(), "read\n");
        assert_eq!(
            (steps[1].status, steps[1].stderr_text()),
            (4, "failing".into())
        );
    }

    #[test]
    fn a_change_cut_off_gets_the_rest_and_the_exec_status() {
        let out = ExecOutput {
            status: 124,
            stdout: b"done\n\n@@converge-step:n2:0\nhalf".to_vec(),
            stderr: b"\n@@converge-step:n2:0\n".to_vec(),
        };
        let steps = split("n2", &out, 3);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].stdout_text(), "done\n");
        assert_eq!(
            (steps[1].status, steps[1].stdout_text()),
            (124, "half".into())
        );
        // Another run's nonce is output like any other.
        let forged = ExecOutput {
            status: 0,
            stdout: b"@@converge-step:other:0\n\n@@converge-step:n3:0\n".to_vec(),
            stderr: Vec::new(),
        };
        assert_eq!(
            split("n3", &forged, 1)[0].stdout_text(),
            "@@converge-step:other:0\n"
        );
    }
}
