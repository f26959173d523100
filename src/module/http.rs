//! HTTP health checks from the host's point of view: a GET sent through the
//! transport's TCP forwarding (an SSH direct-tcpip channel), so nothing is needed on
//! the host. `http_check` and `release`'s `health` share this.

use super::{Exec, Failure, FollowUp, Params, opt_number};
use crate::error::InputResult;
use crate::node::PathStep;
use crate::transport::{Transport, TransportError};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long to wait between two attempts.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// One attempt never waits longer than this for an answer, so a hung connection
/// still leaves time for the next attempts.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(10);
/// The status line must come within this many bytes.
const HEAD_LIMIT: usize = 8192;

/// `{url, status, timeout}` as the playbook writes them (numbers may be strings, as
/// `-e` gives them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckParams {
    pub url: String,
    /// Default 200.
    #[serde(default, deserialize_with = "opt_number")]
    pub status: Option<u32>,
    /// Seconds, default 30.
    #[serde(default, deserialize_with = "opt_number")]
    pub timeout: Option<u32>,
}

/// An `http://` URL split the way a request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// As the user wrote it, for messages.
    pub text: String,
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err(
                "https is not supported: check the plain-HTTP port the service \
                        listens on (e.g. http://127.0.0.1:8080/healthz)"
                    .into(),
            );
        }
        if !lower.starts_with("http://") {
            return Err(format!("`{url}` is not an http:// URL"));
        }
        let rest = &url["http://".len()..];
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = target.split('#').next().unwrap_or_default();
        let target = match target {
            "" => "/".to_string(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_string(),
        };
        if target.chars().any(|c| c.is_control() || c == ' ') {
            return Err("the URL's path must not hold spaces or control characters \
                        (percent-encode them)"
                .into());
        }
        if authority.contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{url}`: unclosed `[` in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{p}` is not a port number"))?,
        };
        Ok(HttpUrl {
            text: url.to_string(),
            host: host.to_string(),
            port,
            target,
        })
    }

    /// A minimal HTTP/1.1 GET that asks the server to close the connection after it.
    pub fn request(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let host = if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        };
        format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: converge\r\nAccept: */*\r\n\
             Connection: close\r\n\r\n",
            self.target
        )
    }
}

/// A GET that must answer `status` within `timeout`.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub url: HttpUrl,
    pub status: u16,
    pub timeout: Duration,
}

/// Why a health check did not pass.
#[derive(Debug)]
pub enum Unhealthy {
    /// The last answer or error, e.g. "GET http://... returned 500 after 30 s".
    Failed(String),
    /// The connection to the host itself broke.
    Connection(TransportError),
}

impl HealthCheck {
    /// Check the parameters found at `at` (`[]` for http_check, `["health"]` for
    /// release); errors point at the offending key.
    pub fn prepare(params: &Params<'_>, at: &[&str], p: CheckParams) -> InputResult<HealthCheck> {
        let locate = |key: &str, message: String| {
            let mut steps: Vec<PathStep> =
                at.iter().map(|k| PathStep::Key(k.to_string())).collect();
            steps.push(PathStep::Key(key.to_string()));
            let name = steps
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(".");
            params
                .node
                .find(&steps)
                .error(format!("{}: `{name}`: {message}", params.module))
        };
        let url = HttpUrl::parse(&p.url).map_err(|m| {
            locate("url", m).help("write the URL as the host sees it: http://127.0.0.1:PORT/PATH")
        })?;
        let status = p.status.unwrap_or(200);
        let status = u16::try_from(status)
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| locate("status", format!("{status} is not an HTTP status code")))?;
        Ok(HealthCheck {
            url,
            status,
            timeout: Duration::from_secs(p.timeout.unwrap_or(30).into()),
        })
    }

    /// GET the URL every second until it answers the wanted status or the timeout
    /// passes; at least one attempt is made, and one at the deadline.
    pub async fn wait(&self, transport: &dyn Transport) -> Result<(), Unhealthy> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        loop {
            let limit = deadline
                .saturating_duration_since(Instant::now())
                .clamp(RETRY_EVERY, ATTEMPT_LIMIT);
            let last = match tokio::time::timeout(limit, get_status(transport, &self.url)).await {
                Ok(Ok(code)) if code == self.status => return Ok(()),
                Ok(Ok(code)) => format!("returned {code}"),
                Ok(Err(Attempt::Lost(e))) => return Err(Unhealthy::Connection(e)),
                Ok(Err(Attempt::Failed(reason))) => format!("failed: {reason}"),
                Err(_) => format!("got no answer within {} s", limit.as_secs()),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                let expected = if self.status == 200 {
                    String::new()
                } else {
                    format!(" (expected {})", self.status)
                };
                return Err(Unhealthy::Failed(format!(
                    "GET {} {last}{expected} after {} s",
                    self.url.text,
                    start.elapsed().as_secs_f64().round()
                )));
            }
            tokio::time::sleep(remaining.min(RETRY_EVERY)).await;
        }
    }
}

/// A health check run after the changes: the host must answer before the task is ok.
#[async_trait::async_trait]
impl FollowUp for HealthCheck {
    fn left_out(&self) -> String {
        format!("GET {} not sent", self.url.text)
    }

    async fn run(&self, host: &dyn Exec) -> Result<(), Failure> {
        self.wait(host.transport()).await.map_err(Failure::from)
    }
}

impl From<Unhealthy> for Failure {
    fn from(unhealthy: Unhealthy) -> Failure {
        match unhealthy {
            Unhealthy::Failed(reason) => Failure::new(reason),
            Unhealthy::Connection(e) => Failure::Connection(e),
        }
    }
}

enum Attempt {
    Failed(String),
    Lost(TransportError),
}

/// One GET: the status code of the answer.
async fn get_status(transport: &dyn Transport, url: &HttpUrl) -> Result<u16, Attempt> {
    let mut stream = transport
        .connect_tcp(&url.host, url.port)
        .await
        .map_err(|e| match e {
            TransportError::Lost { .. } => Attempt::Lost(e),
            other => Attempt::Failed(other.to_string()),
        })?;
    let io = |e: std::io::Error| Attempt::Failed(e.to_string());
    stream
        .write_all(url.request().as_bytes())
        .await
        .map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < HEAD_LIMIT {
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    parse_status_line(&head).map_err(Attempt::Failed)
}

/// The code in `HTTP/1.1 200 OK`.
pub fn parse_status_line(head: &[u8]) -> Result<u16, String> {
    if head.is_empty() {
        return Err("the connection closed without an answer".into());
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let code = match (words.next(), words.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") && code.len() == 3 => {
            code.parse().ok()
        }
        _ => None,
    };
    code.ok_or_else(|| {
        let shown: String = line.trim_end().chars().take(60).collect();
        format!("not an HTTP answer: {shown:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::LocalTransport;
    use tokio::net::TcpListener;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:8080/healthz?full=1#x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8080));
        assert_eq!(u.target, "/healthz?full=1");
        let u = HttpUrl::parse("HTTP://example.com").unwrap();
        assert_eq!((u.port, u.target.as_str()), (80, "/"));
        let u = HttpUrl::parse("http://[::1]:81?a").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 81, "/?a")
        );
        assert!(u.request().contains("Host: [::1]:81\r\n"));
        assert!(
            HttpUrl::parse("https://x/")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(HttpUrl::parse("ftp://x/").is_err());
        assert!(HttpUrl::parse("http://:80/").is_err());
        assert!(HttpUrl::parse("http://x:0/").is_err());
        assert!(HttpUrl::parse("http://x:99999/").is_err());
        assert!(HttpUrl::parse("http://x/a b").is_err());
        assert!(HttpUrl::parse("http://x/a\r\nEvil: 1").is_err());
        assert!(HttpUrl::parse("http://u:p@x/").is_err());
    }

    #[test]
    fn the_request() {
        let u = HttpUrl::parse("http://localhost:8080/healthz").unwrap();
        insta::assert_snapshot!(u.request().replace("\r\n", "\\r\\n\n"), @r"
        GET /healthz HTTP/1.1\r\n
        Host: localhost:8080\r\n
        User-Agent: converge\r\n
        Accept: */*\r\n
        Connection: close\r\n
        \r\n
        ");
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 204 No Content\r\n"), Ok(204));
        assert_eq!(parse_status_line(b"HTTP/1.0 500\r\n"), Ok(500));
        assert!(parse_status_line(b"").unwrap_err().contains("closed"));
        assert!(
            parse_status_line(b"SSH-2.0-OpenSSH\r\n")
                .unwrap_err()
                .contains("not an HTTP")
        );
    }

    /// A server answering each connection with the next status of `codes` (the last
    /// one repeats), after reading the request head.
    async fn server(codes: Vec<u16>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for i in 0.. {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let code = codes[i.min(codes.len() - 1)];
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        port
    }

    fn check(port: u16, timeout: u64) -> HealthCheck {
        HealthCheck {
            url: HttpUrl::parse(&format!("http://127.0.0.1:{port}/healthz")).unwrap(),
            status: 200,
            timeout: Duration::from_secs(timeout),
        }
    }

    #[tokio::test]
    async fn retries_until_healthy() {
        let port = server(vec![503, 200]).await;
        let t = Instant::now();
        check(port, 5).wait(&LocalTransport::new()).await.unwrap();
        assert!(t.elapsed() >= RETRY_EVERY);
    }

    #[tokio::test]
    async fn reports_the_last_status() {
        let port = server(vec![500]).await;
        let Err(Unhealthy::Failed(msg)) = check(port, 1).wait(&LocalTransport::new()).await else {
            panic!("healthy?")
        };
        assert_eq!(
            msg,
            format!("GET http://127.0.0.1:{port}/healthz returned 500 after 1 s")
        );
    }

    #[tokio::test]
    async fn nothing_listening() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let Err(Unhealthy::Failed(msg)) = check(port, 0).wait(&LocalTransport::new()).await else {
            panic!("healthy?")
        };
        assert!(
            msg.contains("failed: ") && msg.ends_with("after 0 s"),
            "{msg}"
        );
    }
}
