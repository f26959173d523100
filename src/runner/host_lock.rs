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
use crate::transport::{RunAs, Stream, Transport, TransportError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
fn script(holder: &str) -> String {
    format!(
        r#"exec 2>&1
umask 077
d={dir} f={file}
mkdir -m 700 -- "$d" 2>/dev/null
if [ -L "$d" ] || [ ! -d "$d" ] || [ "$(stat -c %u:%a -- "$d")" != 0:700 ]; then
  echo "$d is not a directory of root's with mode 0700; remove it and converge makes it"
  exit 1
fi
if [ -L "$f" ]; then echo "$f is a symbolic link; remove it and converge makes the file"; exit 1; fi
exec 9>>"$f" || exit 1
if ! flock -n 9; then echo "held $(cat -- "$f")"; exit 0; fi
printf '%s, since %s\n' {holder} "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$f"
echo locked
while [ -n "$(timeout {SILENCE_SECS} dd bs=1 count=1 2>/dev/null 9>&-)" ]; do :; done
"#,
        dir = quote(LOCK_DIR),
        file = quote(LOCK_FILE),
        holder = quote(holder),
    )
}

/// Take the lock on the host behind `transport`, or learn who holds it.
pub async fn take(transport: &dyn Transport) -> Result<Taken, TransportError> {
    let body = script(&crate::lock::holder());
    let mut stream = transport.exec_stream(&body, &RunAs::Root).await?;
    let answer = first_line(&mut stream).await;
    if answer == "locked" {
        let heartbeat = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT);
            loop {
                ticks.tick().await;
                if stream.write_all(b".").await.is_err() || stream.flush().await.is_err() {
                    break;
                }
            }
        });
        return Ok(Taken::Held(std::sync::Arc::new(HostLock { heartbeat })));
    }
    if let Some(holder) = answer.strip_prefix("held ") {
        return Ok(Taken::Refused(holder.trim().to_string()));
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

/// The script's first line, read byte by byte so that nothing after it is consumed.
async fn first_line(stream: &mut Box<dyn Stream>) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 4096 {
        match stream.read(&mut byte).await {
            Ok(1) if byte[0] != b'\n' => line.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}
