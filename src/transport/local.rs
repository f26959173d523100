//! `ansible_connection: local`: run on the control machine itself (pull mode from cron).

use super::{
    ExecOutput, Script, Stream, Transport, TransportError, shell_command_line, stream_command_line,
};
use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[derive(Debug)]
pub struct LocalTransport {
    is_root: bool,
}

impl LocalTransport {
    pub fn new() -> Self {
        // The effective uid from /proc saves a libc binding for one call.
        let is_root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
            })
            .unwrap_or(false);
        LocalTransport { is_root }
    }
}

impl Default for LocalTransport {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Transport for LocalTransport {
    async fn exec(&self, script: Script<'_>) -> Result<ExecOutput, TransportError> {
        let started = tokio::time::Instant::now();
        let line = shell_command_line(&script, self.is_root);
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(line)
            // A process group of its own: Ctrl-C in the terminal reaches converge, which
            // lets the task in flight finish, and not apt or dpkg in the middle of a change.
            .process_group(0)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TransportError::Io(format!("cannot start /bin/sh: {e}")))?;
        let mut stdin = child.stdin.take();
        let input = script.stdin.to_vec();
        // Fed while the output is read, so a script that writes a lot before reading
        // all its input cannot deadlock on a full pipe.
        let feed = tokio::spawn(async move {
            if let Some(stdin) = stdin.as_mut() {
                // A script that ignores stdin may exit before reading it all: not an error.
                let _ = stdin.write_all(&input).await;
            }
        });
        let group = child.id();
        let out = match tokio::time::timeout(script.controller_deadline(), child.wait_with_output())
            .await
        {
            Ok(out) => out.map_err(|e| TransportError::Io(format!("waiting for /bin/sh: {e}")))?,
            Err(_) => {
                // `timeout` did not end the script: end its whole group here.
                if let Some(group) = group.and_then(|g| libc::pid_t::try_from(g).ok()) {
                    // SAFETY: kill(2) takes plain integers; a group already gone is ESRCH.
                    unsafe { libc::kill(-group, libc::SIGKILL) };
                }
                return Err(TransportError::TimedOut {
                    limit: script.limit(),
                    killed_on_host: true,
                });
            }
        };
        let _ = feed.await;
        let status = out.status.code().unwrap_or(128);
        if script.timed_out(status, started.elapsed()) {
            return Err(TransportError::TimedOut {
                limit: script.limit(),
                killed_on_host: true,
            });
        }
        Ok(ExecOutput {
            status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn exec_stream(
        &self,
        body: &str,
        become_root: bool,
    ) -> Result<Box<dyn Stream>, TransportError> {
        // Not killed on drop: it ends when its stdin closes, like a remote one. Its own
        // process group, like exec's: Ctrl-C must not end it while the run finishes.
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(stream_command_line(body, become_root, self.is_root))
            .process_group(0)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| TransportError::Io(format!("cannot start /bin/sh: {e}")))?;
        match (child.stdout.take(), child.stdin.take()) {
            (Some(stdout), Some(stdin)) => Ok(Box::new(tokio::io::join(stdout, stdin))),
            _ => Err(TransportError::Io("/bin/sh started without pipes".into())),
        }
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<Box<dyn Stream>, TransportError> {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| TransportError::Io(format!("connect {host}:{port}: {e}")))?;
        Ok(Box::new(stream))
    }

    fn login_is_root(&self) -> bool {
        self.is_root
    }

    async fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Purpose, quote};
    use std::time::{Duration, Instant};

    fn script<'a>(body: &'a str, stdin: &'a [u8], timeout: Option<Duration>) -> Script<'a> {
        Script {
            body,
            stdin,
            become_root: false,
            timeout,
            purpose: Purpose::Change,
        }
    }

    #[tokio::test]
    async fn a_script_past_its_limit_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // The background child would outlive a kill of the shell alone.
        let body = format!(
            "(sleep 3; touch {marker}) & sleep 30",
            marker = quote(&marker.to_string_lossy())
        );
        let start = Instant::now();
        let err = LocalTransport::new()
            .exec(script(&body, b"", Some(Duration::from_secs(1))))
            .await
            .unwrap_err();
        let took = start.elapsed();
        assert!(
            matches!(
                err,
                TransportError::TimedOut {
                    killed_on_host: true,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.to_string(), "timed out after 1 s; killed on the host");
        assert!(took < Duration::from_secs(3), "{took:?}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !marker.exists(),
            "a child of the timed-out script kept running"
        );
    }

    #[tokio::test]
    async fn a_script_within_its_limit_keeps_its_own_status() {
        let out = LocalTransport::new()
            .exec(script("exit 124", b"", Some(Duration::from_secs(5))))
            .await
            .unwrap();
        assert_eq!(out.status, 124);
    }

    #[tokio::test]
    async fn large_input_echoed_back_does_not_deadlock() {
        let input = vec![b'x'; 4 << 20];
        let out = LocalTransport::new()
            .exec(script("cat", &input, None))
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.len(), input.len());
    }

    #[tokio::test]
    async fn a_stream_script_reads_its_stdin_as_it_comes() {
        use tokio::io::AsyncReadExt;
        let mut stream = LocalTransport::new()
            .exec_stream("while read -r line; do echo \"got $line\"; done", false)
            .await
            .unwrap();
        stream.write_all(b"one\n").await.unwrap();
        let mut first = [0u8; 8];
        stream.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"got one\n");
        stream.write_all(b"two\n").await.unwrap();
        stream.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"got two\n");
    }
}
