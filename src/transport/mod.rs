//! How commands reach a host: one trait, an SSH and a local implementation.
//!
//! Every remote action is a POSIX `sh` script plus optional stdin bytes. Scripts are
//! built with [`quote`] from this module, never by pasting user strings.

mod drained;
mod jump;
mod known_hosts;
mod local;
mod privilege;
mod ssh;
mod ssh_auth;
mod ssh_config;
mod write_deadline;

pub use crate::quote::{quote, quote_all};
pub use jump::Bastions;
pub use local::LocalTransport;
pub use privilege::{BecomePassword, Escalation, RunAs};
pub use ssh::{Session, SshOptions, SshTransport};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// What a script run on a host returned.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim_end().to_string()
    }
}

/// What a script reads on its standard input.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Bytes(&'a [u8]),
    /// A file on this machine, read as it is sent: never held in memory whole, so many
    /// hosts can take a large build at once. After its bytes comes the line
    /// [`sent_whole`]`(sha256)`, but only when what was read and sent hashes to `sha256`
    /// (see [`sent_whole`]).
    File {
        path: &'a Path,
        sha256: &'a str,
    },
}

/// The line following a file's bytes on a script's stdin when they are the file as it
/// was hashed. SSH delivers a channel's bytes intact and in order, so a script that
/// reads exactly the file's length and then finds this line has the file it was sent,
/// without hashing it again (sha256sum costs a host ~6 ms of CPU per MiB). A cut-off
/// upload never gets the line; neither does a file that changed on this machine since.
pub fn sent_whole(sha256: &str) -> String {
    format!("@@converge-sent:{sha256}")
}

/// How much of an input is read and handed to the connection at a time: OpenSSH's
/// largest packet, so a chunk is one packet and an upload keeps at most about two of
/// them in this process (see `drained`).
pub(crate) const CHUNK: usize = 32 * 1024;

impl<'a> Input<'a> {
    pub const NONE: Input<'static> = Input::Bytes(&[]);

    /// All of it at once, for tests.
    #[cfg(test)]
    pub fn read(self) -> Vec<u8> {
        match self {
            Input::Bytes(bytes) => bytes.to_vec(),
            Input::File { path, sha256 } => {
                let mut bytes = std::fs::read(path).expect("the input file");
                if hex::encode(Sha256::digest(&bytes)) == sha256 {
                    bytes.extend_from_slice(format!("{}\n", sent_whole(sha256)).as_bytes());
                }
                bytes
            }
        }
    }

    /// The input chunk by chunk, a file read as it goes.
    pub async fn chunks(self) -> std::io::Result<Chunks<'a>> {
        Ok(match self {
            Input::Bytes(bytes) => Chunks::Bytes(bytes),
            Input::File { path, sha256 } => {
                let path = path.to_path_buf();
                let file = tokio::task::spawn_blocking(move || std::fs::File::open(path))
                    .await
                    .map_err(std::io::Error::other)??;
                Chunks::File {
                    file: Some(file),
                    read: Sha256::new(),
                    sha256,
                }
            }
        })
    }
}

/// What is left of an [`Input`].
pub enum Chunks<'a> {
    Bytes(&'a [u8]),
    /// Read on the blocking pool straight into the chunk handed on (tokio's `File` would
    /// keep a buffer of its own per upload as well). None: the end was reached, or a read
    /// failed midway.
    File {
        file: Option<std::fs::File>,
        /// The hash of what was read so far.
        read: Sha256,
        sha256: &'a str,
    },
}

impl Chunks<'_> {
    /// The next chunk of at most [`CHUNK`] bytes; None at the end.
    pub async fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        match self {
            Chunks::Bytes(bytes) => {
                let (chunk, rest) = bytes.split_at(bytes.len().min(CHUNK));
                *bytes = rest;
                Ok((!chunk.is_empty()).then(|| chunk.to_vec()))
            }
            Chunks::File { file, read, sha256 } => {
                let Some(mut open) = file.take() else {
                    return Ok(None);
                };
                // Allocated here, not on the blocking thread, which would make glibc give
                // that thread an arena of its own (one per thread, up to 8 per core).
                let mut chunk = vec![0; CHUNK];
                let (open, chunk) = tokio::task::spawn_blocking(move || {
                    use std::io::Read;
                    let read = loop {
                        match open.read(&mut chunk) {
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            read => break read,
                        }
                    };
                    let read = read.map(|n| {
                        chunk.truncate(n);
                        chunk
                    });
                    (open, read)
                })
                .await
                .map_err(std::io::Error::other)?;
                let chunk = chunk?;
                if chunk.is_empty() {
                    let whole = hex::encode(std::mem::take(read).finalize()) == **sha256;
                    return Ok(whole.then(|| format!("{}\n", sent_whole(sha256)).into_bytes()));
                }
                read.update(&chunk);
                *file = Some(open);
                Ok(Some(chunk))
            }
        }
    }
}

/// A script to run with `/bin/sh -c`, as the login user or through sudo.
#[derive(Debug, Clone)]
pub struct Script<'a> {
    pub body: &'a str,
    pub stdin: Input<'a>,
    pub run_as: &'a RunAs,
    /// How long the script may run before it is killed on the host and the exec
    /// fails with [`TransportError::TimedOut`]; None: [`COMMAND_TIMEOUT`].
    pub timeout: Option<Duration>,
    pub purpose: Purpose,
}

/// Why a script runs: check mode runs probes and checks only, never a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Reads the state.
    Probe,
    /// Reads only, but may stage a candidate in a temp dir (`nginx -t` on it).
    Check,
    /// Changes the host.
    Change,
}

/// How long a module command may run when its task sets no `timeout:`: long enough for
/// a slow `apt-get install` of many packages, short enough that a hung command cannot
/// hold the run and its lock forever.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long a probe (reading facts or state, no side effects) may run; callers pass it
/// as [`Script::timeout`].
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// A script still running at its limit gets SIGTERM, and SIGKILL this much later.
const KILL_GRACE: Duration = Duration::from_secs(10);
/// The controller stops waiting this long after the host should have killed the script:
/// the safety net for a host whose `timeout` itself hangs.
const CONTROLLER_MARGIN: Duration = Duration::from_secs(20);
/// GNU timeout's statuses for a command it stopped: SIGTERM sufficed, or SIGKILL was needed.
const TIMED_OUT_STATUSES: [i32; 2] = [124, 128 + 9];

impl Script<'_> {
    /// How long the script may run on the host.
    pub fn limit(&self) -> Duration {
        self.timeout.unwrap_or(COMMAND_TIMEOUT)
    }

    /// How long the controller waits for the script before giving up on it.
    pub fn controller_deadline(&self) -> Duration {
        self.limit() + KILL_GRACE + CONTROLLER_MARGIN
    }

    /// Whether a script that ran for `elapsed` and exited with `status` was stopped by
    /// the host's `timeout` (a script's own 124 before its limit is its own business).
    pub fn timed_out(&self, status: i32, elapsed: Duration) -> bool {
        TIMED_OUT_STATUSES.contains(&status) && elapsed >= self.limit()
    }
}

impl Script<'_> {
    /// The command line running the script under its limit, from a shell that already
    /// runs as its user (the host lock's, as root).
    pub fn timed_command_line(&self) -> String {
        shell_command_line(self, &privilege::Sudo::none())
    }
}

/// The command line that runs `script` with `/bin/sh` under coreutils `timeout`, wrapped
/// in `sudo` to run as another user. `timeout` runs inside sudo so that it may kill a
/// root script, and it signals its whole process group, so children (apt, dpkg) die
/// with the script. Shared by both transports so they behave alike.
fn shell_command_line(script: &Script<'_>, sudo: &privilege::Sudo) -> String {
    let kill_after = format!("{}s", KILL_GRACE.as_secs_f64());
    // `timeout 0` would mean no limit at all.
    let limit = format!(
        "{}s",
        script.limit().max(Duration::from_millis(1)).as_secs_f64()
    );
    command_line(script.body, sudo, &["timeout", "-k", &kill_after, &limit])
}

/// The command line of a script that lives as long as its connection
/// ([`Transport::exec_stream`]): no time limit, the end of its stdin ends it.
fn stream_command_line(body: &str, sudo: &privilege::Sudo) -> String {
    command_line(body, sudo, &[])
}

fn command_line(body: &str, sudo: &privilege::Sudo, limit: &[&str]) -> String {
    let words = sudo
        .words()
        .chain(limit.iter().copied())
        .chain(["/bin/sh", "-c", body]);
    quote_all(words)
}

/// A duration for messages: `300 s`, `0.5 s`.
fn seconds(d: &Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// A byte stream opened from the host's side (SSH direct-tcpip), used by `http_check`.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("host key verification failed for {target}: {reason}")]
    HostKey { target: String, reason: String },
    #[error("authentication failed for {user}@{target}: {reason}")]
    Auth {
        target: String,
        user: String,
        reason: String,
    },
    /// sudo did not run the script (no password, a wrong one): the task fails.
    #[error("{target}: {reason}")]
    Become { target: String, reason: String },
    #[error("connection to {target} lost: {reason}")]
    Lost { target: String, reason: String },
    /// The script ran past its limit: a task failure, the host is still reachable.
    #[error("timed out after {}; {}", seconds(limit), if *killed_on_host {
        "killed on the host"
    } else {
        "the host did not report it killed, so it may still be running there"
    })]
    TimedOut {
        limit: Duration,
        killed_on_host: bool,
    },
    #[error("{0}")]
    Io(String),
}

impl TransportError {
    /// Whether the host should be reported unreachable (as opposed to a task failing).
    pub fn is_unreachable(&self) -> bool {
        !matches!(
            self,
            TransportError::Io(_) | TransportError::TimedOut { .. } | TransportError::Become { .. }
        )
    }
}

#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Run a script; a non-zero exit is not an error here, callers read `status`.
    async fn exec(&self, script: Script<'_>) -> Result<ExecOutput, TransportError>;

    /// Start a script (`sh -c body`, as `run_as`) that lives until its stream or the
    /// connection closes, with no time limit; the stream is its stdin and stdout. For
    /// what must die with the connection (the host lock).
    async fn exec_stream(
        &self,
        body: &str,
        run_as: &RunAs,
    ) -> Result<Box<dyn Stream>, TransportError>;

    /// Open a TCP connection to `host:port` as seen from the managed host.
    async fn connect_tcp(&self, host: &str, port: u16) -> Result<Box<dyn Stream>, TransportError>;

    /// The login user is root, so `become` needs no sudo.
    fn login_is_root(&self) -> bool;

    /// Close the connection politely.
    async fn close(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(run_as: &RunAs) -> Script<'_> {
        Script {
            body: "echo 'hi' > /tmp/x",
            stdin: Input::NONE,
            run_as,
            timeout: None,
            purpose: Purpose::Change,
        }
    }

    #[test]
    fn sudo_goes_before_timeout() {
        let sudo = privilege::no_password(vec!["-u".into(), "app".into()]);
        assert_eq!(
            shell_command_line(&script(&RunAs::Root), &sudo),
            r"sudo -n -u app timeout -k 10s 1800s /bin/sh -c 'echo '\''hi'\'' > /tmp/x'"
        );
    }

    #[test]
    fn without_sudo_sh_runs_under_timeout() {
        assert_eq!(
            shell_command_line(&script(&RunAs::Login), &privilege::Sudo::none()),
            r"timeout -k 10s 1800s /bin/sh -c 'echo '\''hi'\'' > /tmp/x'"
        );
    }

    #[test]
    fn a_stream_has_no_time_limit() {
        assert_eq!(
            stream_command_line("cat", &privilege::no_password(Vec::new())),
            "sudo -n /bin/sh -c cat"
        );
    }

    #[test]
    fn a_given_timeout_is_passed_to_the_host() {
        let none = privilege::Sudo::none();
        let short = Script {
            timeout: Some(Duration::from_millis(2500)),
            ..script(&RunAs::Login)
        };
        assert!(shell_command_line(&short, &none).starts_with("timeout -k 10s 2.5s /bin/sh"));
        let zero = Script {
            timeout: Some(Duration::ZERO),
            ..script(&RunAs::Login)
        };
        assert!(shell_command_line(&zero, &none).starts_with("timeout -k 10s 0.001s /bin/sh"));
    }

    #[test]
    fn only_timeouts_statuses_past_the_limit_count_as_timed_out() {
        let s = Script {
            timeout: Some(Duration::from_secs(5)),
            ..script(&RunAs::Login)
        };
        assert!(s.timed_out(124, Duration::from_secs(5)));
        assert!(s.timed_out(137, Duration::from_secs(16)));
        assert!(!s.timed_out(124, Duration::from_secs(1)));
        assert!(!s.timed_out(1, Duration::from_secs(6)));
    }

    #[test]
    fn timed_out_is_a_task_failure_with_a_clear_message() {
        let e = TransportError::TimedOut {
            limit: Duration::from_secs(300),
            killed_on_host: true,
        };
        assert!(!e.is_unreachable());
        assert_eq!(e.to_string(), "timed out after 300 s; killed on the host");
    }
}
