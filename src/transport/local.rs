//! `ansible_connection: local`: run on the control machine itself (pull mode from cron).

use super::{
    BecomePassword, Escalation, ExecOutput, RunAs, Script, Stream, Transport, TransportError,
    shell_command_line, stream_command_line,
};
use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[derive(Debug)]
pub struct LocalTransport {
    is_root: bool,
    escalation: Escalation,
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
        LocalTransport {
            is_root,
            escalation: Escalation::default(),
        }
    }

    /// Give `password` to sudo when it asks for one.
    pub fn with_become_password(mut self, password: Option<BecomePassword>) -> Self {
        self.escalation = Escalation::new(password);
        self
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
        let sudo = self
            .escalation
            .sudo(self, "localhost", script.run_as, self.is_root)
            .await?;
        let started = tokio::time::Instant::now();
        let line = shell_command_line(&script, &sudo);
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
        let stdin = child.stdin.take();
        let (prefix, input) = (sudo.prefix(), script.stdin);
        // Fed while the output is read, so a script that writes a lot before reading
        // all its input cannot deadlock on a full pipe.
        let feed = async move {
            let Some(mut stdin) = stdin else {
                return;
            };
            // A script that ignores stdin may exit before reading it all: not an error.
            let _ = async {
                stdin.write_all(&prefix).await?;
                let mut chunks = input.chunks().await?;
                while let Some(chunk) = chunks.next().await? {
                    stdin.write_all(&chunk).await?;
                }
                Ok::<_, std::io::Error>(())
            }
            .await;
        };
        let group = child.id();
        let wait = tokio::time::timeout(script.controller_deadline(), child.wait_with_output());
        tokio::pin!(feed, wait);
        let mut feeding = true;
        let waited = loop {
            tokio::select! {
                () = &mut feed, if feeding => feeding = false,
                waited = &mut wait => break waited,
            }
        };
        let out = match waited {
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
        let status = out.status.code().unwrap_or(128);
        if script.timed_out(status, started.elapsed()) {
            return Err(TransportError::TimedOut {
                limit: script.limit(),
                killed_on_host: true,
            });
        }
        let out = ExecOutput {
            status,
            stdout: out.stdout,
            stderr: out.stderr,
        };
        match sudo.refused("localhost", &out) {
            Some(refused) => Err(refused),
            None => Ok(out),
        }
    }

    async fn exec_stream(
        &self,
        body: &str,
        run_as: &RunAs,
    ) -> Result<Box<dyn Stream>, TransportError> {
        let sudo = self
            .escalation
            .sudo(self, "localhost", run_as, self.is_root)
            .await?;
        // Not killed on drop: it ends when its stdin closes, like a remote one. Its own
        // process group, like exec's: Ctrl-C must not end it while the run finishes.
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(stream_command_line(body, &sudo))
            .process_group(0)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| TransportError::Io(format!("cannot start /bin/sh: {e}")))?;
        match (child.stdout.take(), child.stdin.take()) {
            (Some(stdout), Some(mut stdin)) => {
                if let Some(line) = &sudo.stdin_prefix {
                    stdin
                        .write_all(line)
                        .await
                        .map_err(|e| TransportError::Io(format!("cannot feed sudo: {e}")))?;
                }
                Ok(Box::new(tokio::io::join(stdout, stdin)))
            }
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
            stdin: crate::transport::Input::Bytes(stdin),
            run_as: &RunAs::Login,
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
            .exec_stream(
                "while read -r line; do echo \"got $line\"; done",
                &RunAs::Login,
            )
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
