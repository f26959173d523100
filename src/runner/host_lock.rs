//! One controller at a time per host. Before any change on a host, `converge apply` holds
//! a flock on it for exactly as long as its connection lives: a long-lived script on its
//! own channel takes the lock and waits on its stdin. When the controller dies (kill -9
//! included) the connection closes, stdin ends and the lock goes with the script. A cut
//! cable closes nothing, and sshd may notice a dead peer only hours later; so the
//! controller sends a heartbeat byte every few seconds, and the host gives the lock up
//! after a minute without one. Host tools only: sh, coreutils (timeout, dd, stat),
//! util-linux (flock).
//!
//! `converge diff` takes no host lock: it changes nothing, so it cannot collide with an
//! apply, and a drift check from cron keeps answering while an operator converges.

use crate::quote::quote;
use crate::transport::{ExecOutput, RunAs, Script, Stream, Transport, TransportError};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Root's own directory on the host (/run is root's alone and emptied at boot).
const LOCK_DIR: &str = "/run/converge";
const LOCK_FILE: &str = "/run/converge/host.lock";
/// How often the controller says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long the host waits for a heartbeat before it gives the lock up: several beats,
/// and about when the controller's keepalives give the connection up too.
const SILENCE_SECS: u64 = 60;

/// The lock on one host, held while this value and the connection live.
pub struct HostLock {
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for HostLock {
    fn drop(&mut self) {
        // Dropping the stream closes the script's stdin: the host frees the lock at once.
        self.heartbeat.abort();
    }
}

pub enum Taken {
    /// Shared by the hosts that are one machine (see `Dialer::lock`).
    Held(std::sync::Arc<HostLock>),
    /// Another controller holds the host: `user@controller, pid N, since TIME`.
    Refused(String),
}

/// The host side: make the directory (no link followed: a link or a directory that is
/// not root's 0700 is refused), lock, write the holder, answer, then wait for heartbeats.
/// dd reads one byte at a time, so no heartbeat is swallowed by a buffer.
/// `then` runs once the lock is held, before the wait.
fn script(holder: &str, then: &str) -> String {
    format!(
        r#"exec 2>&1
umask 077
d={dir} f={file}
[ -d "$d" ] || mkdir -m 700 -- "$d" 2>/dev/null
if [ -L "$d" ] || [ ! -d "$d" ] || [ "$(stat -c %u:%a -- "$d")" != 0:700 ]; then
  echo "$d is not a directory of root's with mode 0700; remove it and converge makes it"
  exit 1
fi
if [ -L "$f" ]; then echo "$f is a symbolic link; remove it and converge makes the file"; exit 1; fi
exec 9>>"$f" || exit 1
if ! flock -n 9; then echo "held $(cat -- "$f")"; exit 0; fi
printf '%s\n' {holder} >"$f"
echo locked
{then}while [ -n "$(timeout {SILENCE_SECS} dd bs=1 count=1 2>/dev/null 9>&-)" ]; do :; done
"#,
        dir = quote(LOCK_DIR),
        file = quote(LOCK_FILE),
        holder = quote(holder),
    )
}

/// Take the lock on the host behind `transport`, or learn who holds it. With `read`, a
/// script that only reads (the first read of a run, as root), run once the lock is held,
/// in the same exec: its output comes back with the lock, and a rerun opens one session
/// on the host, not two; the state it reads cannot be another controller's half-done run.
pub async fn take(
    transport: &dyn Transport,
    read: Option<&Script<'_>>,
) -> Result<(Taken, Option<ExecOutput>), TransportError> {
    let end = format!("@@converge-read:{}:", super::batch::nonce());
    let then = read.map_or(String::new(), |read| {
        // Its own limit and stdin (the heartbeats are the lock's), no lock fd kept open.
        format!(
            "{} </dev/null 2>/dev/null 9>&-\nprintf '\\n%s%s\\n' {} \"$?\"\n",
            read.timed_command_line(),
            quote(&end),
        )
    });
    // The controller's clock says since when: one process fewer on the host than `date`.
    let holder = format!(
        "{}, since {}",
        crate::lock::holder(),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    let body = script(&holder, &then);
    let stream = transport.exec_stream(&body, &RunAs::Root).await?;
    let mut stream = BufReader::new(stream);
    let answer = next_line(&mut stream).await;
    if answer == b"locked" {
        let output = match read {
            Some(read) => Some(read_until_end(&mut stream, &end, read).await?),
            None => None,
        };
        // The script prints nothing more: no byte is left in the buffer.
        let mut stream = stream.into_inner();
        let heartbeat = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT);
            loop {
                ticks.tick().await;
                if stream.write_all(b".").await.is_err() || stream.flush().await.is_err() {
                    break;
                }
            }
        });
        return Ok((
            Taken::Held(std::sync::Arc::new(HostLock { heartbeat })),
            output,
        ));
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    if let Some(holder) = answer.strip_prefix("held ") {
        return Ok((Taken::Refused(holder.trim().to_string()), None));
    }
    let mut rest = String::new();
    let _ = stream.read_to_string(&mut rest).await;
    let said = format!("{answer}\n{rest}").trim().to_string();
    Err(TransportError::Io(if said.is_empty() {
        format!(
            "cannot take the host lock {LOCK_FILE}: the script ended without an answer \
             (it runs as root through sudo: does sudo need a password? Give it with \
             --ask-become-pass (-K) or ansible_become_password)"
        )
    } else {
        format!("cannot take the host lock {LOCK_FILE}: {said}")
    }))
}

/// The read's output, up to the line `END` + its exit status, within the read's limit.
async fn read_until_end(
    stream: &mut BufReader<Box<dyn Stream>>,
    end: &str,
    read: &Script<'_>,
) -> Result<ExecOutput, TransportError> {
    let started = std::time::Instant::now();
    let lines = async {
        let mut stdout = Vec::new();
        loop {
            let start = stdout.len();
            if stream.read_until(b'\n', &mut stdout).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the host lock's script ended during the first read",
                ));
            }
            let line = String::from_utf8_lossy(&stdout[start..])
                .trim_end()
                .to_string();
            if let Some(status) = line.strip_prefix(end) {
                // The marker's line, and the newline printed before it.
                stdout.truncate(start.saturating_sub(1));
                let status = status.parse().unwrap_or(-1);
                return Ok(ExecOutput {
                    status,
                    stdout,
                    stderr: Vec::new(),
                });
            }
        }
    };
    let timed_out = |killed_on_host| TransportError::TimedOut {
        limit: read.limit(),
        killed_on_host,
    };
    let output = tokio::time::timeout(read.controller_deadline(), lines)
        .await
        .map_err(|_| timed_out(false))?
        .map_err(|e| TransportError::Io(e.to_string()))?;
    if read.timed_out(output.status, started.elapsed()) {
        return Err(timed_out(true));
    }
    Ok(output)
}

/// The script's first line, without its newline.
async fn next_line(stream: &mut BufReader<Box<dyn Stream>>) -> Vec<u8> {
    let mut line = Vec::new();
    let _ = (&mut *stream).take(4096).read_until(b'\n', &mut line).await;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    line
}
