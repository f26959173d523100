//! The SSH transport against a real OpenSSH server on loopback (run as root).

use crate::support::sshd::{Sshd, keygen, public_key};
use converge::transport::{
    Input, RunAs, Script, SshOptions, SshTransport, Transport, TransportError,
};
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Options for the test server, with a private home so no real `~/.ssh` is read.
fn options(sshd: &Sshd, home: &Path) -> SshOptions {
    let mut o = loopback_options("testhost", sshd.port, home);
    o.user = Some("root".into());
    o.identity_file = Some(sshd.client_key.clone());
    // A developer's own agent must not change what these tests see.
    o.agent_socket = Some(home.join("no-agent.sock"));
    o
}

fn known_hosts(home: &Path) -> PathBuf {
    home.join(".ssh/known_hosts")
}

fn write_known_hosts(home: &Path, text: &str) {
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(known_hosts(home), text).unwrap();
}

/// A private home whose known_hosts already trusts `sshd`.
fn trusting_home(sshd: &Sshd) -> TempDir {
    let home = tempfile::tempdir().unwrap();
    write_known_hosts(home.path(), &format!("{}\n", sshd.known_hosts_line()));
    home
}

/// Connect with `opts`, which must succeed (the server's log on failure).
async fn connect(sshd: &Sshd, opts: &SshOptions) -> SshTransport {
    SshTransport::connect(opts)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\nsshd log:\n{}", sshd.log()))
}

/// Connect with `opts`, which must succeed, and close the connection again.
async fn connect_and_close(sshd: &Sshd, opts: &SshOptions) {
    connect(sshd, opts).await.close().await;
}

/// A server, a home that already trusts it, and a connection.
async fn connected() -> (Sshd, TempDir, SshTransport) {
    let sshd = Sshd::start();
    let home = trusting_home(&sshd);
    let ssh = connect(&sshd, &options(&sshd, home.path())).await;
    (sshd, home, ssh)
}

/// Options for a host at 127.0.0.1:`port` with a private home and nothing else set.
fn loopback_options(name: &str, port: u16, home: &Path) -> SshOptions {
    let mut opts = SshOptions::new(name);
    opts.address = Some("127.0.0.1".into());
    opts.port = Some(port);
    opts.home = Some(home.to_path_buf());
    opts
}

fn script<'a>(body: &'a str, stdin: &'a [u8]) -> Script<'a> {
    Script {
        body,
        stdin: Input::Bytes(stdin),
        run_as: &RunAs::Login,
        timeout: None,
        purpose: converge::transport::Purpose::Change,
    }
}

/// Deterministic bytes that compress badly, so the transfer is a real one.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn host_key_reason(result: Result<SshTransport, TransportError>) -> String {
    match result {
        Err(TransportError::HostKey { reason, .. }) => reason,
        Err(other) => panic!("expected a host key error, got {other}"),
        Ok(_) => panic!("expected a host key error, connected"),
    }
}

#[tokio::test]
async fn exec_returns_stdout_stderr_and_status() {
    let (_sshd, _home, ssh) = connected().await;
    assert!(ssh.login_is_root());
    let out = ssh
        .exec(script("echo out; echo err >&2; exit 3", b""))
        .await
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err");

    let out = ssh
        .exec(script("cat; printf ' %s' \"$0\"", b"in"))
        .await
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout_text(), "in /bin/sh");
    ssh.close().await;
}

#[tokio::test]
async fn non_root_login_is_not_taken_for_root() {
    // `nobody` logs in (the key is authorized for every user) but its shell is nologin,
    // so the `id -u` probe fails: not root.
    let sshd = Sshd::start();
    let home = trusting_home(&sshd);
    let mut opts = options(&sshd, home.path());
    opts.user = Some("nobody".into());
    let ssh = connect(&sshd, &opts).await;
    assert!(!ssh.login_is_root());
    let out = ssh.exec(script("true", b"")).await.unwrap();
    assert!(!out.success());
}

#[tokio::test]
async fn killed_command_has_signal_status() {
    let (_sshd, _home, ssh) = connected().await;
    let out = ssh.exec(script("kill -9 $$", b"")).await.unwrap();
    assert_eq!(out.status, 128 + 9);
    let out = ssh.exec(script("kill -TERM $$", b"")).await.unwrap();
    assert_eq!(out.status, 128 + 15);
}

#[tokio::test]
async fn twenty_mib_of_stdin_streams_intact() {
    let (sshd, _home, ssh) = connected().await;
    let data = noise(20 << 20);
    let file = sshd.dir.path().join("upload");
    let body = format!("cat > {0} && sha256sum < {0}", file.display());
    let out = ssh.exec(script(&body, &data)).await.unwrap();
    assert!(out.success(), "{}", out.stderr_text());
    let expected = hex::encode(Sha256::digest(&data));
    assert_eq!(
        out.stdout_text().split_whitespace().next(),
        Some(&*expected)
    );
}

/// A local file as stdin is read as it is sent (a build going to many hosts is never
/// held in memory whole), arrives intact, and is followed by the line saying so only
/// when what was sent is what was hashed.
#[tokio::test]
async fn a_local_file_streams_intact_as_stdin() {
    let (sshd, _home, ssh) = connected().await;
    let data = noise((20 << 20) + 12345);
    let local = sshd.dir.path().join("build");
    std::fs::write(&local, &data).unwrap();
    let file = sshd.dir.path().join("upload");
    let body = format!(
        "head -c {} > {1}; IFS= read -r l; echo \"$l\"; sha256sum < {1}",
        data.len(),
        file.display()
    );
    let expected = hex::encode(Sha256::digest(&data));
    for (claimed, line) in [
        (expected.clone(), converge::transport::sent_whole(&expected)),
        ("0".repeat(64), String::new()),
    ] {
        let out = ssh
            .exec(Script {
                stdin: Input::File {
                    path: &local,
                    sha256: &claimed,
                },
                ..script(&body, b"")
            })
            .await
            .unwrap();
        assert!(out.success(), "{}", out.stderr_text());
        let stdout = out.stdout_text();
        let mut lines = stdout.lines();
        assert_eq!(lines.next(), Some(&*line));
        assert_eq!(
            lines.next().and_then(|l| l.split_whitespace().next()),
            Some(&*expected)
        );
    }
}

#[tokio::test]
async fn output_is_read_while_stdin_is_written() {
    // `cat` echoes as it reads: if stdin were written before output were read, both
    // windows would fill and the exec would never finish.
    let (_sshd, _home, ssh) = connected().await;
    let data = noise(20 << 20);
    let out = tokio::time::timeout(Duration::from_secs(60), ssh.exec(script("cat", &data)))
        .await
        .expect("no deadlock")
        .unwrap();
    assert!(out.success());
    assert!(out.stdout == data, "echoed bytes differ");
}

#[tokio::test]
async fn command_that_ignores_stdin_still_finishes() {
    let (_sshd, _home, ssh) = connected().await;
    let data = noise(5 << 20);
    let out = tokio::time::timeout(Duration::from_secs(30), ssh.exec(script("exit 4", &data)))
        .await
        .expect("no hang on unread stdin")
        .unwrap();
    assert_eq!(out.status, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_concurrent_execs_share_one_connection() {
    let (sshd, _home, ssh) = connected().await;
    let ssh = Arc::new(ssh);
    let started = Instant::now();
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let ssh = ssh.clone();
            tokio::spawn(async move {
                let body = format!("sleep 0.3; echo {i}");
                let out = ssh.exec(script(&body, b"")).await;
                (i, out)
            })
        })
        .collect();
    for task in tasks {
        let (i, out) = task.await.unwrap();
        let out = out.unwrap_or_else(|e| panic!("exec {i}: {e}\n{}", sshd.log()));
        assert!(out.success(), "exec {i}: {}", out.stderr_text());
        assert_eq!(out.stdout_text(), format!("{i}\n"));
    }
    let elapsed = started.elapsed();
    // At most 5 at once: 30 commands need at least 6 rounds of 0.3 s; in parallel, far
    // less than 30 rounds.
    assert!(elapsed >= Duration::from_millis(1800), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    assert!(!sshd.log().contains("no more sessions"), "{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_sessions_are_used_when_the_server_allows_fewer() {
    let sshd = Sshd::start_with("MaxSessions 2");
    let home = trusting_home(&sshd);
    let ssh = Arc::new(connect(&sshd, &options(&sshd, home.path())).await);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let ssh = ssh.clone();
            tokio::spawn(async move {
                let body = format!("sleep 0.1; echo {i}");
                ssh.exec(script(&body, b"")).await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("exec {i}: {e}"));
        assert_eq!(out.stdout_text(), format!("{i}\n"));
    }
}

#[tokio::test]
async fn sequential_exec_latency() {
    let (_sshd, _home, ssh) = connected().await;
    let started = Instant::now();
    for _ in 0..100 {
        assert!(ssh.exec(script("true", b"")).await.unwrap().success());
    }
    let per_exec = started.elapsed() / 100;
    println!("100 sequential execs of `true`: {per_exec:?} each");
    // Nagle and delayed ACKs would make this about 40 ms.
    assert!(
        per_exec < Duration::from_millis(20),
        "{per_exec:?} per exec"
    );
}

#[tokio::test]
async fn unknown_host_key_is_refused() {
    let sshd = Sshd::start();
    let home = tempfile::tempdir().unwrap();
    let reason = host_key_reason(SshTransport::connect(&options(&sshd, home.path())).await);
    assert!(reason.contains("unknown host key"), "{reason}");
    assert!(reason.contains("--accept-new-host-keys"), "{reason}");
    assert!(!known_hosts(home.path()).exists());
}

#[tokio::test]
async fn new_host_key_is_accepted_and_saved_when_allowed() {
    let sshd = Sshd::start();
    let home = tempfile::tempdir().unwrap();
    let mut opts = options(&sshd, home.path());
    opts.accept_new_host_keys = true;
    let ssh = connect(&sshd, &opts).await;
    assert!(ssh.exec(script("true", b"")).await.unwrap().success());
    ssh.close().await;

    let path = known_hosts(home.path());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{}\n", sshd.known_hosts_line()));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);

    // Now known: accepted without permission to learn, and not written twice.
    opts.accept_new_host_keys = false;
    connect_and_close(&sshd, &opts).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[tokio::test]
async fn changed_host_key_is_refused_even_when_accepting_new_keys() {
    let sshd = Sshd::start();
    let home = tempfile::tempdir().unwrap();
    let other = keygen(home.path(), "other_host_key", "ed25519", "");
    let recorded = format!("[127.0.0.1]:{} {}\n", sshd.port, public_key(&other));
    write_known_hosts(home.path(), &recorded);
    let mut opts = options(&sshd, home.path());
    opts.accept_new_host_keys = true;
    let reason = host_key_reason(SshTransport::connect(&opts).await);
    assert!(reason.contains("CHANGED"), "{reason}");
    assert!(reason.contains("known_hosts:1"), "{reason}");
    assert_eq!(
        std::fs::read_to_string(known_hosts(home.path())).unwrap(),
        recorded
    );
}

#[tokio::test]
async fn hashed_known_hosts_entry_is_accepted() {
    let sshd = Sshd::start();
    let home = trusting_home(&sshd);
    let status = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(known_hosts(home.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let hashed = std::fs::read_to_string(known_hosts(home.path())).unwrap();
    assert!(hashed.starts_with("|1|"), "{hashed}");
    connect_and_close(&sshd, &options(&sshd, home.path())).await;
}

#[tokio::test]
async fn known_hosts_entry_for_the_alias_is_accepted() {
    let sshd = Sshd::start();
    let home = tempfile::tempdir().unwrap();
    let line = format!("[testhost]:{} {}\n", sshd.port, sshd.host_key);
    write_known_hosts(home.path(), &line);
    connect_and_close(&sshd, &options(&sshd, home.path())).await;
}

#[tokio::test]
async fn ssh_config_supplies_address_port_user_and_key() {
    let sshd = Sshd::start();
    let home = trusting_home(&sshd);
    std::fs::copy(&sshd.client_key, home.path().join(".ssh/deploy_key")).unwrap();
    std::fs::write(
        home.path().join(".ssh/config"),
        format!(
            "Host other\n  Port 1\n\nHost web* my-alias\n  HostName 127.0.0.1\n  Port {}\n  \
             User root\n  IdentityFile ~/.ssh/deploy_key\n",
            sshd.port
        ),
    )
    .unwrap();
    let mut opts = SshOptions::new("my-alias");
    opts.home = Some(home.path().to_path_buf());
    opts.agent_socket = Some(home.path().join("no-agent.sock"));
    let ssh = connect(&sshd, &opts).await;
    assert_eq!(
        ssh.exec(script("id -un", b"")).await.unwrap().stdout_text(),
        "root\n"
    );
}

#[tokio::test]
async fn default_key_in_home_is_used() {
    let sshd = Sshd::start();
    let home = trusting_home(&sshd);
    std::fs::copy(&sshd.client_key, home.path().join(".ssh/id_ed25519")).unwrap();
    let mut opts = options(&sshd, home.path());
    opts.identity_file = None;
    connect_and_close(&sshd, &opts).await;
}

#[tokio::test]
async fn rsa_key_signs_with_sha2() {
    // OpenSSH 8.8+ refuses ssh-rsa (SHA-1) signatures: success means rsa-sha2 was used.
    let sshd = Sshd::start();
    let home = trusting_home(&sshd);
    let rsa = keygen(home.path(), "id_rsa_test", "rsa", "");
    sshd.authorize(&rsa);
    let mut opts = options(&sshd, home.path());
    opts.identity_file = Some(rsa);
    connect_and_close(&sshd, &opts).await;
}

/// An ssh-agent holding `key`, killed on drop.
struct Agent(std::process::Child);

impl Agent {
    fn start(socket: &Path, key: &Path) -> Agent {
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent = Agent(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ssh-add failed");
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn agent_keys_are_used() {
    let sshd = Sshd::start();
    let home = trusting_home(&sshd);
    let socket = home.path().join("agent.sock");
    let _agent = Agent::start(&socket, &sshd.client_key);
    let mut opts = options(&sshd, home.path());
    opts.identity_file = None;
    opts.agent_socket = Some(socket);
    connect_and_close(&sshd, &opts).await;
}

#[tokio::test]
async fn auth_failure_lists_what_was_tried() {
    let sshd = Sshd::start();
    let home = trusting_home(&sshd);
    let stranger = keygen(home.path(), "stranger", "ed25519", "");
    let locked = keygen(&home.path().join(".ssh"), "id_ed25519", "ed25519", "secret");
    let mut opts = options(&sshd, home.path());
    opts.identity_file = Some(stranger.clone());
    let (user, reason) = match SshTransport::connect(&opts).await {
        Err(TransportError::Auth { user, reason, .. }) => (user, reason),
        Err(other) => panic!("expected an auth error, got {other}"),
        Ok(_) => panic!("expected an auth error, connected"),
    };
    assert_eq!(user, "root");
    assert!(
        reason.contains(&format!("{} (refused)", stranger.display())),
        "{reason}"
    );
    assert!(reason.contains("ssh-agent at"), "{reason}");
    assert!(
        reason.contains(&format!("{} (skipped: encrypted", locked.display())),
        "{reason}"
    );
}

#[tokio::test]
async fn closed_port_fails_fast_with_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let home = tempfile::tempdir().unwrap();
    let opts = loopback_options("nowhere", port, home.path());
    let started = Instant::now();
    let err = SshTransport::connect(&opts).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(err.is_unreachable());
    assert!(err.to_string().contains("refused"), "{err}");
}

#[tokio::test]
async fn silent_server_times_out_with_connect_error() {
    // Accepts TCP but never speaks SSH.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    let mut opts = loopback_options("silent", port, home.path());
    opts.connect_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = SshTransport::connect(&opts).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("no SSH handshake"), "{err}");
    drop(listener);
}

#[tokio::test]
async fn connect_tcp_reaches_a_port_from_the_host_side() {
    let (_sshd, _home, ssh) = connected().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "request cut short");
            request.extend_from_slice(&buf[..n]);
        }
        socket
            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        String::from_utf8(request).unwrap()
    });

    let mut stream = ssh.connect_tcp("127.0.0.1", port).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.0 200 OK"), "{response}");
    assert!(response.ends_with("hello"), "{response}");
    assert!(server.await.unwrap().starts_with("GET /health"));

    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = match ssh.connect_tcp("127.0.0.1", closed_port).await {
        Err(e) => e,
        Ok(_) => panic!("connected to a closed port"),
    };
    assert!(matches!(err, TransportError::Io(_)), "{err}");
    // The connection survives a refused forward.
    assert!(ssh.exec(script("true", b"")).await.unwrap().success());
}

#[tokio::test]
async fn exec_after_close_reports_a_lost_connection() {
    let (_sshd, _home, ssh) = connected().await;
    ssh.close().await;
    let err = ssh.exec(script("true", b"")).await.unwrap_err();
    assert!(matches!(err, TransportError::Lost { .. }), "{err}");
    assert!(err.to_string().contains("converge closed"), "{err}");
}

/// Run `uploads` execs of `body` at once, each with `stdin`, freeze the server's session
/// processes while they run, and return the first error and how long the execs took
/// to fail after the freeze.
async fn execs_against_a_dead_peer(
    uploads: usize,
    body: &str,
    stdin: &[u8],
) -> (TransportError, Duration) {
    let (sshd, _home, ssh) = connected().await;
    let ssh = Arc::new(ssh);
    let stdin = Arc::new(stdin.to_vec());
    let execs: Vec<_> = (0..uploads)
        .map(|_| {
            let (ssh, body, stdin) = (ssh.clone(), body.to_string(), stdin.clone());
            tokio::spawn(async move { ssh.exec(script(&body, &stdin)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen = sshd.freeze_sessions();
    let frozen_at = Instant::now();
    let results = tokio::time::timeout(Duration::from_secs(150), futures::future::join_all(execs))
        .await
        .expect("the execs gave up within 150 s");
    let took = frozen_at.elapsed();
    drop(frozen);
    // An upload may have ended before the freeze on an idle machine; the others must fail.
    let errors: Vec<TransportError> = results
        .into_iter()
        .filter_map(|r| r.unwrap().err())
        .collect();
    let first = errors
        .into_iter()
        .next()
        .expect("every exec succeeded against a frozen server");
    (first, took)
}

#[tokio::test]
async fn dead_peer_mid_upload_is_given_up_as_lost() {
    // Five fast uploads at once keep more in flight than the socket buffers hold, so
    // converge is blocked writing to the socket when the server freezes.
    let data = noise(100 << 20);
    let (err, took) = execs_against_a_dead_peer(5, "cat >/dev/null", &data).await;
    eprintln!("gave up {took:?} after the freeze, mid-upload: {err}");
    assert!(matches!(err, TransportError::Lost { .. }), "{err}");
    assert!(took < Duration::from_secs(75), "took {took:?}");
}

#[tokio::test]
async fn dead_peer_while_a_command_runs_is_given_up_as_lost() {
    let (err, took) = execs_against_a_dead_peer(1, "sleep 600", b"").await;
    eprintln!("gave up {took:?} after the freeze, idle: {err}");
    assert!(matches!(err, TransportError::Lost { .. }), "{err}");
    assert!(took < Duration::from_secs(55), "took {took:?}");
}

#[tokio::test]
async fn command_past_its_timeout_is_killed_on_the_host() {
    let (sshd, _home, ssh) = connected().await;
    let marker = sshd.dir.path().join("survived");
    // The background child would outlive a kill of the shell alone.
    let body = format!("(sleep 3; touch {}) & sleep 30", marker.display());
    let start = Instant::now();
    let err = ssh
        .exec(Script {
            timeout: Some(Duration::from_secs(1)),
            ..script(&body, b"")
        })
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(!err.is_unreachable(), "{err}");
    assert_eq!(err.to_string(), "timed out after 1 s; killed on the host");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !marker.exists(),
        "a child of the timed-out command kept running"
    );
    // The connection is still good for the next task.
    assert!(ssh.exec(script("true", b"")).await.unwrap().success());
}

/// A server whose only host key is RSA and which signs it only with SHA-1 (`ssh-rsa`),
/// like an old OpenSSH.
fn sha1_rsa_server() -> Sshd {
    Sshd::start_with_host_key("rsa", "HostKeyAlgorithms ssh-rsa")
}

#[tokio::test]
async fn ssh_rsa_host_key_is_refused_with_the_way_to_allow_it() {
    let sshd = sha1_rsa_server();
    let home = trusting_home(&sshd);
    let reason = host_key_reason(SshTransport::connect(&options(&sshd, home.path())).await);
    assert!(
        reason.contains("ssh-rsa (RSA with SHA-1) is refused"),
        "{reason}"
    );
    assert!(
        reason.contains("`HostKeyAlgorithms +ssh-rsa` under `Host testhost`"),
        "{reason}"
    );
}

#[tokio::test]
async fn ssh_rsa_host_key_is_accepted_when_ssh_config_allows_it() {
    let sshd = sha1_rsa_server();
    let home = trusting_home(&sshd);
    std::fs::write(
        home.path().join(".ssh/config"),
        "Host testhost\n  HostKeyAlgorithms +ssh-rsa\n",
    )
    .unwrap();
    let ssh = connect(&sshd, &options(&sshd, home.path())).await;
    assert!(ssh.exec(script("true", b"")).await.unwrap().success());
    ssh.close().await;
}

#[tokio::test]
async fn learned_host_key_is_hashed_when_ssh_config_says_so() {
    let sshd = Sshd::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/config"), "HashKnownHosts yes\n").unwrap();
    let mut opts = options(&sshd, home.path());
    opts.accept_new_host_keys = true;
    connect_and_close(&sshd, &opts).await;

    let path = known_hosts(home.path());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    assert!(!text.contains("127.0.0.1"), "{text}");
    assert!(text.trim_end().ends_with(&sshd.host_key), "{text}");

    // The hashed entry vouches for the host on the next connect, without learning again.
    opts.accept_new_host_keys = false;
    connect_and_close(&sshd, &opts).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    // OpenSSH finds it too.
    let found = Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", sshd.port))
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "ssh-keygen -F did not find the entry"
    );
    assert!(
        String::from_utf8_lossy(&found.stdout).contains(&sshd.host_key),
        "{}",
        String::from_utf8_lossy(&found.stdout)
    );
}

#[tokio::test]
async fn command_past_its_timeout_is_killed_on_the_host_also_through_sudo() {
    let hosts = crate::support::hosts::TestHosts::up(1);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::copy(hosts.known_hosts(), known_hosts(home.path())).unwrap();
    let mut opts = SshOptions::new("h1");
    opts.address = Some(hosts.host("h1").ip.clone());
    opts.user = Some("deploy".into());
    opts.identity_file = Some(hosts.key());
    opts.home = Some(home.path().to_path_buf());
    opts.agent_socket = Some(home.path().join("no-agent.sock"));
    let ssh = SshTransport::connect(&opts).await.unwrap();
    assert!(!ssh.login_is_root());

    // Root's own background child: only a kill run as root, of the whole group, ends it.
    let err = ssh
        .exec(Script {
            body: "(sleep 3; touch /root/survived) & exec sleep 30",
            stdin: Input::NONE,
            run_as: &RunAs::Root,
            timeout: Some(Duration::from_secs(1)),
            purpose: converge::transport::Purpose::Change,
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "timed out after 1 s; killed on the host");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let left = hosts.exec("h1", "test -e /root/survived || pgrep -x sleep");
    assert!(
        !left.status.success(),
        "the timed-out command or its child kept running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    ssh.close().await;
}

#[tokio::test]
async fn a_host_that_never_reports_the_kill_times_out_on_the_controller() {
    let (sshd, _home, ssh) = connected().await;
    let exec = tokio::spawn(async move {
        let result = ssh
            .exec(Script {
                timeout: Some(Duration::from_secs(1)),
                ..script("sleep 600", b"")
            })
            .await;
        (result, ssh)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Frozen, the host can neither kill the command nor say so; the connection itself
    // would be given up only later.
    let _frozen = sshd.freeze_sessions();
    let frozen_at = Instant::now();
    let (result, _ssh) = exec.await.unwrap();
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::TimedOut {
                killed_on_host: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_unreachable());
    assert!(
        err.to_string().contains("may still be running there"),
        "{err}"
    );
    assert!(
        frozen_at.elapsed() < Duration::from_secs(40),
        "{:?}",
        frozen_at.elapsed()
    );
}

/// A proxy on loopback to `port` that passes what the client sends at ~1.6 MB/s and
/// what the server sends at full speed: a host slower than the controller, as a busy
/// host is. Its socket's receive buffer is small, so the kernel absorbs little of an
/// upload and the rest waits on the controller's side.
async fn slow_host_proxy(port: u16) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(64).unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_server, mut to_server) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8 << 10];
                loop {
                    match from_client.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if to_server.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let _ = to_server.shutdown().await;
            });
        }
    });
    proxy_port
}

/// This process's resident memory, and its peak since the last reset, in KiB.
fn rss_and_peak_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Uploads keep pace with the socket: to hosts slower than the controller, the bytes
/// not yet taken by a connection's socket stay at a chunk or two per connection, not
/// the server's whole window (2 MiB with OpenSSH), which russh's output buffer would
/// otherwise take in and keep at that size for the life of the connection. 32
/// connections each stream a 4 MiB file to a slow host; this process's peak resident
/// memory grows by less than 10 MiB: 4-5 MiB when paced, 17 MiB when not (here the
/// kernel's socket buffers take most of the window; on busy container hosts, russh's
/// buffer took ~1.9 MiB per connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_to_slow_hosts_hold_little_memory_per_connection() {
    const CONNECTIONS: usize = 32;
    const FILE: usize = 4 << 20;
    const BOUND_KIB: u64 = 10 << 10;
    let sshd = Sshd::start();
    let proxy = slow_host_proxy(sshd.port).await;
    let home = tempfile::tempdir().unwrap();
    write_known_hosts(
        home.path(),
        &format!("[127.0.0.1]:{proxy} {}\n", sshd.host_key),
    );
    let local = sshd.dir.path().join("build");
    std::fs::write(&local, noise(FILE)).unwrap();
    let mut opts = loopback_options("slowhost", proxy, home.path());
    opts.user = Some("root".into());
    opts.identity_file = Some(sshd.client_key.clone());
    opts.agent_socket = Some(home.path().join("no-agent.sock"));
    let mut transports = Vec::new();
    for _ in 0..CONNECTIONS {
        transports.push(Arc::new(connect(&sshd, &opts).await));
    }

    // "5": reset VmHWM to the current resident size (Linux >= 4.0).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let (before, _) = rss_and_peak_kib();
    let uploads: Vec<_> = transports
        .iter()
        .cloned()
        .map(|ssh| {
            let local = local.clone();
            tokio::spawn(async move {
                ssh.exec(Script {
                    // No hash given: nothing follows the file's bytes.
                    stdin: Input::File {
                        path: &local,
                        sha256: "",
                    },
                    ..script("wc -c", b"")
                })
                .await
            })
        })
        .collect();
    for upload in uploads {
        let out = upload.await.unwrap().unwrap();
        assert!(out.success(), "{}", out.stderr_text());
        assert_eq!(out.stdout_text().trim(), FILE.to_string());
    }
    let (_, peak) = rss_and_peak_kib();
    let grown = peak.saturating_sub(before);
    assert!(
        grown < BOUND_KIB,
        "{CONNECTIONS} connections uploading {} MiB each to slow hosts grew this process's \
         peak memory by {} MiB",
        FILE >> 20,
        grown >> 10
    );
    for ssh in transports {
        ssh.close().await;
    }
}
