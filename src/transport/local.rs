//! `ansible_connection: local`: run on the control machine itself (pull mode from cron).

use super::{ExecOutput, Script, Stream, Transport, TransportError, shell_command_line};
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
        let line = shell_command_line(&script, self.is_root);
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(line)
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
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| TransportError::Io(format!("waiting for /bin/sh: {e}")))?;
        let _ = feed.await;
        Ok(ExecOutput {
            status: out.status.code().unwrap_or(128),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn exec_stream(&self, script: Script<'_>) -> Result<Box<dyn Stream>, TransportError> {
        // Not killed on drop: it ends when its stdin closes, like a remote one.
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(shell_command_line(&script, self.is_root))
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

    #[tokio::test]
    async fn large_input_echoed_back_does_not_deadlock() {
        let input = vec![b'x'; 4 << 20];
        let out = LocalTransport::new()
            .exec(Script {
                body: "cat",
                stdin: &input,
                become_root: false,
                timeout: None,
            })
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.len(), input.len());
    }

    #[tokio::test]
    async fn a_stream_script_reads_its_stdin_as_it_comes() {
        use tokio::io::AsyncReadExt;
        let mut stream = LocalTransport::new()
            .exec_stream(Script {
                body: "while read -r line; do echo \"got $line\"; done",
                stdin: b"",
                become_root: false,
                timeout: None,
            })
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
