//! How commands reach a host: one trait, an SSH and a local implementation.
//!
//! Every remote action is a POSIX `sh` script plus optional stdin bytes. Scripts are
//! built with [`quote`] from this module, never by pasting user strings.

mod known_hosts;
mod local;
mod quote;
mod ssh;
mod ssh_auth;
mod ssh_config;

pub use local::LocalTransport;
pub use quote::{quote, quote_all};
pub use ssh::{SshOptions, SshTransport};

use async_trait::async_trait;
use std::fmt;
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

/// A script to run with `/bin/sh -c`, optionally as root through `sudo -n`.
#[derive(Debug, Clone)]
pub struct Script<'a> {
    pub body: &'a str,
    pub stdin: &'a [u8],
    /// Run as root (`sudo -n`) when the login user is not root.
    pub become_root: bool,
    /// How long the script may run before it is killed on the host and the exec
    /// fails; None: the transport's default for module commands.
    pub timeout: Option<std::time::Duration>,
}

/// The command line that runs `script` with `/bin/sh`, wrapped in `sudo -n` when a
/// non-root login must become root. Shared by both transports so they behave alike.
pub fn shell_command_line(script: &Script<'_>, login_is_root: bool) -> String {
    let sh = format!("/bin/sh -c {}", quote(script.body));
    if script.become_root && !login_is_root {
        format!("sudo -n {sh}")
    } else {
        sh
    }
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
    #[error("connection to {target} lost: {reason}")]
    Lost { target: String, reason: String },
    #[error("{0}")]
    Io(String),
}

impl TransportError {
    /// Whether the host should be reported unreachable (as opposed to a task failing).
    pub fn is_unreachable(&self) -> bool {
        !matches!(self, TransportError::Io(_))
    }
}

#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Run a script; a non-zero exit is not an error here, callers read `status`.
    async fn exec(&self, script: Script<'_>) -> Result<ExecOutput, TransportError>;

    /// Start a script that lives until its stream or the connection closes; the stream
    /// is its stdin and stdout. For what must die with the connection (the host lock).
    async fn exec_stream(&self, script: Script<'_>) -> Result<Box<dyn Stream>, TransportError>;

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

    fn script(become_root: bool) -> Script<'static> {
        Script {
            body: "echo 'hi' > /tmp/x",
            stdin: b"",
            become_root,
            timeout: None,
        }
    }

    #[test]
    fn become_as_non_root_goes_through_sudo() {
        assert_eq!(
            shell_command_line(&script(true), false),
            r"sudo -n /bin/sh -c 'echo '\''hi'\'' > /tmp/x'"
        );
    }

    #[test]
    fn root_or_no_become_runs_plain_sh() {
        let plain = r"/bin/sh -c 'echo '\''hi'\'' > /tmp/x'";
        assert_eq!(shell_command_line(&script(true), true), plain);
        assert_eq!(shell_command_line(&script(false), false), plain);
        assert_eq!(shell_command_line(&script(false), true), plain);
    }
}
