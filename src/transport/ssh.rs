//! SSH transport on russh: one connection per host, many channels on it.

use super::Purpose;
use super::drained::{DrainSignal, Drained, Paced};
use super::jump::{self, Bastions, Hop};
use super::known_hosts::{self, KnownHosts, Verdict};
use super::ssh_auth::{self, Sources};
use super::ssh_config::{self, Tokens, expand_tilde, expand_tokens};
use super::write_deadline::WriteDeadline;
use super::{
    BecomePassword, Escalation, ExecOutput, Input, RunAs, Script, Stream, Transport,
    TransportError, shell_command_line, stream_command_line,
};
use async_trait::async_trait;
use futures::FutureExt;
use futures::future::BoxFuture;
use russh::client::{self, DisconnectReason, Handle};
use russh::keys::{Algorithm, HashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{AlgorithmKind, Channel, ChannelMsg, Disconnect, Preferred, Sig, cipher};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Where and how to connect; inventory values win over `~/.ssh/config`.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Inventory host name, used in messages and as the `~/.ssh/config` Host alias.
    pub alias: String,
    /// Address to connect to (`ansible_host`), when the inventory gives one.
    pub address: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// `ansible_ssh_private_key_file`; tried before the agent and the default keys.
    pub identity_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Trust on first use: append unknown keys to `~/.ssh/known_hosts`.
    pub accept_new_host_keys: bool,
    /// The directory holding `.ssh/` (config, known_hosts, default keys); `None` is `$HOME`.
    pub home: Option<PathBuf>,
    /// The ssh-agent socket; `None` is `$SSH_AUTH_SOCK`.
    pub agent_socket: Option<PathBuf>,
    /// Given to sudo when it asks (`ansible_become_password`, `--ask-become-pass`).
    pub become_password: Option<BecomePassword>,
    /// `ProxyJump` from the inventory (`ansible_ssh_common_args`); None: ssh_config's.
    pub proxy_jump: Option<String>,
    /// The bastion connections of the run, shared by every host behind one.
    pub bastions: Arc<Bastions<Session>>,
}

impl SshOptions {
    /// Options for `alias` with everything else from `~/.ssh/config` and the defaults.
    pub fn new(alias: impl Into<String>) -> SshOptions {
        SshOptions {
            alias: alias.into(),
            address: None,
            port: None,
            user: None,
            identity_file: None,
            connect_timeout: Duration::from_secs(10),
            accept_new_host_keys: false,
            home: None,
            agent_socket: None,
            become_password: None,
            proxy_jump: None,
            bastions: Arc::default(),
        }
    }
}

/// sshd's MaxSessions defaults to 10 session channels per connection, and sshd frees a
/// closed session only after it has also read the requests queued behind our CLOSE: a new
/// channel may briefly coexist with every channel just closed. Hence 2 x 5 <= 10.
const MAX_SESSIONS: usize = 5;
/// A server that still refuses sessions (a lower MaxSessions) gets fewer at once and a
/// few retries before the refusal is reported.
const SESSION_RETRIES: u32 = 5;
/// Keepalives start only after authentication, so a host that stalls while keys are
/// being offered would otherwise hang the run.
const AUTH_TIMEOUT: Duration = Duration::from_secs(60);
/// A host that neither answers nor accepts data for this long is given up as lost,
/// whatever is in flight: silent while idle (keepalives below), or not taking the bytes
/// of an upload ([`WriteDeadline`]).
const DEAD_AFTER: Duration = Duration::from_secs(45);
/// A keepalive after 15 s of silence, then another; the third interval without a word
/// from the host ends the connection at `DEAD_AFTER`.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 2;
const SYSTEM_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";
/// How much of an upload may be handed to the connection before it waits for the socket
/// to have taken everything ([`Paced`]): one chunk, the next read meanwhile, so ~2 chunks
/// per host wait in this process's buffers at most instead of the server's whole window
/// (2 MiB with OpenSSH, a buffer russh then keeps for the whole run).
const UPLOAD_AHEAD: usize = super::CHUNK;

pub struct SshTransport {
    handle: Handle<Client>,
    target: String,
    login_is_root: bool,
    sessions: Semaphore,
    /// How many permits `sessions` still has: the limit shrinks when the server refuses.
    session_limit: AtomicUsize,
    /// Why the connection ended, as the session task saw it.
    lost: Arc<Mutex<Option<String>>>,
    /// The bastion the connection runs through, kept open while it is used.
    via: Option<Arc<Session>>,
    escalation: Escalation,
    /// When the connection's output buffer was last empty: uploads keep pace with it.
    drained: DrainSignal,
}

impl fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshTransport")
            .field("target", &self.target)
            .field("login_is_root", &self.login_is_root)
            .finish_non_exhaustive()
    }
}

/// The options resolved against `~/.ssh/config` and the environment.
struct Resolved {
    target: String,
    host: String,
    port: u16,
    user: String,
    home: Option<PathBuf>,
    identity_files: Vec<PathBuf>,
    identities_only: bool,
    agent_socket: Option<PathBuf>,
    /// `HashKnownHosts yes`: learned host keys are recorded under hashed names.
    hash_known_hosts: bool,
    /// `HostKeyAlgorithms` lets the SHA-1 `ssh-rsa` host key algorithm back in.
    ssh_rsa_host_keys: bool,
    /// `PubkeyAcceptedAlgorithms` lets RSA user keys sign with SHA-1.
    ssh_rsa_signatures: bool,
    /// The bastions to pass through, in order (`ProxyJump`).
    jumps: Vec<Hop>,
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Resolved {
    fn new(options: &SshOptions) -> Result<Resolved, TransportError> {
        let alias = &options.alias;
        let home = options
            .home
            .clone()
            .or_else(|| env_nonempty("HOME").map(PathBuf::from));
        let config = match &home {
            Some(home) => ssh_config::load(&home.join(".ssh/config"), alias, Some(home)),
            None => Ok(Default::default()),
        }
        .map_err(|reason| TransportError::Connect {
            target: alias.clone(),
            reason,
        })?;

        let local_user = env_nonempty("USER").unwrap_or_else(|| "root".to_string());
        let user = options
            .user
            .clone()
            .or(config.user)
            .unwrap_or_else(|| local_user.clone());
        let mut tokens = Tokens {
            host: alias,
            remote_user: &user,
            local_user: &local_user,
            home: home.as_deref(),
        };
        let host = options
            .address
            .clone()
            .or_else(|| config.host_name.map(|h| expand_tokens(&h, &tokens)))
            .unwrap_or_else(|| alias.clone());
        tokens.host = &host;
        let port = options.port.or(config.port).unwrap_or(22);

        let identity_files = options
            .identity_file
            .iter()
            .map(|p| expand_tilde(&p.to_string_lossy(), home.as_deref()))
            .chain(
                config
                    .identity_files
                    .iter()
                    .map(|raw| expand_tilde(&expand_tokens(raw, &tokens), home.as_deref())),
            )
            .collect();

        let jumps = options
            .proxy_jump
            .as_deref()
            .or(config.proxy_jump.as_deref())
            .map(jump::parse_chain)
            .transpose()
            .map_err(|reason| TransportError::Connect {
                target: alias.clone(),
                reason,
            })?
            .unwrap_or_default();
        let target = if *alias == host && port == 22 {
            alias.clone()
        } else {
            format!("{alias} ({host}:{port})")
        };
        Ok(Resolved {
            target,
            port,
            user,
            identity_files,
            identities_only: config.identities_only.unwrap_or(false),
            hash_known_hosts: config.hash_known_hosts.unwrap_or(false),
            ssh_rsa_host_keys: ssh_config::allows_ssh_rsa(config.host_key_algorithms.as_deref()),
            ssh_rsa_signatures: ssh_config::allows_ssh_rsa(
                config.pubkey_accepted_algorithms.as_deref(),
            ),
            jumps,
            agent_socket: options
                .agent_socket
                .clone()
                .or_else(|| env_nonempty("SSH_AUTH_SOCK").map(PathBuf::from)),
            home,
            host,
        })
    }

    fn ssh_dir(&self) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(".ssh"))
    }
}

/// Host key algorithms with those known_hosts holds for this host first, so the server
/// shows a key that can be checked rather than one that would look changed. `ssh-rsa`
/// (RSA signed with SHA-1) is left out unless `ssh_rsa` allows it, as OpenSSH 8.8+ does.
fn host_key_preference(known: &[Algorithm], ssh_rsa: bool) -> Vec<Algorithm> {
    let mut order: Vec<Algorithm> = Vec::new();
    for algorithm in known {
        if matches!(algorithm, Algorithm::Rsa { .. }) {
            order.push(Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            });
            order.push(Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            });
        } else {
            order.push(algorithm.clone());
        }
    }
    for algorithm in Preferred::DEFAULT.key.iter() {
        if !order.contains(algorithm) {
            order.push(algorithm.clone());
        }
    }
    if !ssh_rsa {
        order.retain(|a| *a != SSH_RSA);
    }
    order
}

/// Ciphers, best first: AES-GCM where the CPU has AES instructions (as Go's x/crypto/ssh
/// chooses), since sshd decrypts every uploaded byte: a 5 MiB build costs a host ~12 ms
/// of CPU with aes128-gcm and ~50 ms with chacha20-poly1305, russh's and OpenSSH's first
/// choice, which is the faster one only without them.
fn cipher_preference(hardware_aes: bool) -> Vec<cipher::Name> {
    let gcm = [cipher::AES_128_GCM, cipher::AES_256_GCM];
    let mut order: Vec<cipher::Name> = if hardware_aes {
        gcm.to_vec()
    } else {
        Vec::new()
    };
    for name in Preferred::DEFAULT.cipher.iter().chain(&gcm) {
        if !order.contains(name) {
            order.push(*name);
        }
    }
    order
}

fn hardware_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull");
    #[allow(unreachable_code)]
    false
}

/// The `ssh-rsa` algorithm: RSA keys with SHA-1 signatures.
const SSH_RSA: Algorithm = Algorithm::Rsa { hash: None };

/// When the handshake failed because the server offers only `ssh-rsa` host keys, which
/// were not allowed: why, and what to do.
fn refused_ssh_rsa(e: &russh::Error, alias: &str) -> Option<String> {
    match e {
        russh::Error::NoCommonAlgo {
            kind: AlgorithmKind::Key,
            theirs,
            ..
        } if theirs.iter().any(|a| a == SSH_RSA.as_str()) => Some(format!(
            "the server offers only the host key algorithms {}; ssh-rsa (RSA with SHA-1) is \
             refused as OpenSSH 8.8+ refuses it. To accept it for this host, add \
             `HostKeyAlgorithms +ssh-rsa` under `Host {alias}` in ~/.ssh/config (better: give \
             the server an ed25519 host key)",
            theirs.join(", ")
        )),
        _ => None,
    }
}

/// Decides about the server's host key and remembers why the connection ended.
struct Client {
    known: KnownHosts,
    /// The name a new key is recorded under: the address, in `[host]:port` form off port 22.
    name: String,
    /// The names the host is looked up under: `name`, then the alias.
    names: Vec<String>,
    /// Where a new key is saved when trusting on first use is allowed.
    learn_into: Option<PathBuf>,
    accept_new: bool,
    /// Save new keys under a hashed name (`HashKnownHosts yes`).
    hash_new: bool,
    lost: Arc<Mutex<Option<String>>>,
}

#[derive(Debug)]
enum ClientError {
    Ssh(russh::Error),
    HostKey(String),
}

impl From<russh::Error> for ClientError {
    fn from(e: russh::Error) -> Self {
        ClientError::Ssh(e)
    }
}

impl Client {
    fn verify(&self, key: &PublicKey) -> Result<(), String> {
        let shown = format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256));
        let name = &self.name;
        match self.known.check(&self.names, key) {
            Verdict::Trusted => Ok(()),
            Verdict::Revoked(at) => Err(format!("host key {shown} is marked @revoked at {at}")),
            Verdict::Changed(at) => Err(format!(
                "the host key has CHANGED: the server shows {shown} but {} records another \
                 key for {name}; this may be an attack, or the host was reinstalled (then \
                 remove the old entry with: ssh-keygen -R '{name}')",
                at.join(", ")
            )),
            Verdict::Unknown if self.accept_new => {
                let path = self.learn_into.as_deref().ok_or_else(|| {
                    format!("cannot save the new host key {shown}: no home directory")
                })?;
                known_hosts::append(path, name, key, self.hash_new)
                    .map_err(|e| format!("cannot save host key to {}: {e}", path.display()))
            }
            Verdict::Unknown => Err(format!(
                "unknown host key {shown} for {name}; run once with --accept-new-host-keys \
                 or add it to known_hosts"
            )),
        }
    }
}

impl client::Handler for Client {
    type Error = ClientError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, ClientError> {
        self.verify(&key.public_key())
            .map_err(ClientError::HostKey)?;
        Ok(true)
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<ClientError>,
    ) -> Result<(), ClientError> {
        let (why, result) = match reason {
            DisconnectReason::ReceivedDisconnect(info) => (
                format!(
                    "the server disconnected ({:?}) {}",
                    info.reason_code, info.message
                ),
                Ok(()),
            ),
            DisconnectReason::Error(e) => (
                match &e {
                    ClientError::Ssh(russh::Error::KeepaliveTimeout) => {
                        format!(
                            "the host stopped answering keepalives for {} s",
                            DEAD_AFTER.as_secs()
                        )
                    }
                    ClientError::Ssh(e) => e.to_string(),
                    ClientError::HostKey(reason) => reason.clone(),
                },
                Err(e),
            ),
        };
        if let Ok(mut lost) = self.lost.lock() {
            lost.get_or_insert(why);
        }
        result
    }
}

/// An authenticated SSH connection: a managed host's, or a bastion's that carries the
/// connections to the hosts behind it.
pub struct Session {
    handle: Handle<Client>,
    target: String,
    user: String,
    /// Why the connection ended, as the session task saw it.
    lost: Arc<Mutex<Option<String>>>,
    /// The bastion this connection runs through, kept open while it is used.
    via: Option<Arc<Session>>,
    drained: DrainSignal,
}

/// More hops than this is a `ProxyJump` loop in ssh_config.
const MAX_HOPS: usize = 8;

impl Session {
    /// Connect (through the bastions `ProxyJump` names, if any) and authenticate.
    /// `hops`: how many bastions lead to this connection.
    fn open(
        options: SshOptions,
        hops: usize,
    ) -> BoxFuture<'static, Result<Session, TransportError>> {
        async move { Session::open_now(&options, hops).await }.boxed()
    }

    async fn open_now(options: &SshOptions, hops: usize) -> Result<Session, TransportError> {
        let resolved = Resolved::new(options)?;
        let target = resolved.target.clone();
        let connect_error = |reason: String| TransportError::Connect {
            target: target.clone(),
            reason,
        };

        let name = known_hosts::host_name(&resolved.host, resolved.port);
        let mut names = vec![name.clone()];
        let alias_name = known_hosts::host_name(&options.alias, resolved.port);
        if alias_name != name {
            names.push(alias_name);
        }
        let user_known_hosts = resolved.ssh_dir().map(|d| d.join("known_hosts"));
        let files: Vec<PathBuf> = user_known_hosts
            .iter()
            .cloned()
            .chain([PathBuf::from(SYSTEM_KNOWN_HOSTS)])
            .collect();
        let known = KnownHosts::load(&files).only_for(&names);

        let config = client::Config {
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
            keepalive_max: KEEPALIVE_MAX,
            inactivity_timeout: None,
            preferred: Preferred {
                key: host_key_preference(&known.algorithms(&names), resolved.ssh_rsa_host_keys)
                    .into(),
                cipher: cipher_preference(hardware_aes()).into(),
                ..Preferred::DEFAULT
            },
            ..Default::default()
        };
        let lost = Arc::new(Mutex::new(None));
        let client = Client {
            known,
            name,
            names,
            learn_into: user_known_hosts,
            accept_new: options.accept_new_host_keys,
            hash_new: resolved.hash_known_hosts,
            lost: lost.clone(),
        };

        // One budget for reaching the host and for its SSH handshake, like OpenSSH's
        // ConnectTimeout, so a port that accepts but never speaks SSH fails as fast.
        let timeout = options.connect_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let (stream, via) = match resolved.jumps.split_last() {
            None => (tcp(&resolved, deadline).await.map_err(connect_error)?, None),
            Some((bastion, before)) => {
                if hops >= MAX_HOPS {
                    return Err(connect_error(format!(
                        "more than {MAX_HOPS} ProxyJump hops: is there a loop in ssh_config?"
                    )));
                }
                let hop = hop_options(options, bastion, before);
                let key = format!("{bastion} via {:?}", hop.proxy_jump);
                let bastion = options
                    .bastions
                    .get(&key, Session::open(hop, hops + 1))
                    .await
                    .map_err(|reason| connect_error(format!("through the bastion: {reason}")))?;
                let channel = tokio::time::timeout_at(
                    deadline,
                    bastion.handle.channel_open_direct_tcpip(
                        resolved.host.as_str(),
                        u32::from(resolved.port),
                        "127.0.0.1",
                        0,
                    ),
                )
                .await
                .map_err(|_| {
                    connect_error(format!(
                        "no tunnel through {} within {timeout:?}",
                        bastion.target
                    ))
                })?
                .map_err(|e| connect_error(format!("{} opened no tunnel: {e}", bastion.target)))?;
                let stream: Box<dyn Stream> = Box::new(channel.into_stream());
                (stream, Some(bastion))
            }
        };
        let (stream, drained) = Drained::new(WriteDeadline::new(stream, DEAD_AFTER));
        let mut handle = tokio::time::timeout_at(
            deadline,
            client::connect_stream(Arc::new(config), stream, client),
        )
        .await
        .map_err(|_| connect_error(format!("no SSH handshake within {timeout:?}")))?
        .map_err(|e| match e {
            ClientError::HostKey(reason) => TransportError::HostKey {
                target: target.clone(),
                reason,
            },
            ClientError::Ssh(e) => match refused_ssh_rsa(&e, &options.alias) {
                Some(reason) => TransportError::HostKey {
                    target: target.clone(),
                    reason,
                },
                None => connect_error(format!("SSH handshake failed: {e}")),
            },
        })?;

        let sources = Sources {
            user: &resolved.user,
            identity_files: &resolved.identity_files,
            identities_only: resolved.identities_only,
            ssh_rsa_signatures: resolved.ssh_rsa_signatures,
            agent_socket: resolved.agent_socket.as_deref(),
            ssh_dir: resolved.ssh_dir(),
        };
        let auth_error = |reason: String| TransportError::Auth {
            target: target.clone(),
            user: resolved.user.clone(),
            reason,
        };
        tokio::time::timeout(AUTH_TIMEOUT, ssh_auth::authenticate(&mut handle, &sources))
            .await
            .map_err(|_| auth_error(format!("no answer within {AUTH_TIMEOUT:?}")))?
            .map_err(auth_error)?;
        Ok(Session {
            handle,
            target,
            user: resolved.user,
            lost,
            via,
            drained,
        })
    }

    /// Why the connection ended: the bastion's loss first, which explains this one's.
    fn lost_reason(&self) -> Option<String> {
        lost_reason(self.via.as_deref(), &self.lost)
    }
}

/// Why a connection ended, from what its session task recorded; when it ran through a
/// bastion that was lost, that is the reason.
fn lost_reason(via: Option<&Session>, lost: &Mutex<Option<String>>) -> Option<String> {
    if let Some(via) = via
        && let Some(reason) = via.lost_reason()
    {
        return Some(format!("the bastion {} was lost: {reason}", via.target));
    }
    lost.lock().ok().and_then(|l| l.clone())
}

/// A TCP connection to the host itself, within the connection budget.
async fn tcp(
    resolved: &Resolved,
    deadline: tokio::time::Instant,
) -> Result<Box<dyn Stream>, String> {
    let tcp = tokio::time::timeout_at(
        deadline,
        TcpStream::connect((resolved.host.as_str(), resolved.port)),
    )
    .await
    .map_err(|_| "no TCP connection within the connection timeout".to_string())?
    .map_err(|e| e.to_string())?;
    // Without it every small request waits for a delayed ACK (~40 ms per exec);
    // russh applies Config::nodelay only to sockets it opens itself.
    tcp.set_nodelay(true)
        .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
    Ok(Box::new(tcp))
}

/// How to reach `bastion`, the last hop before the host of `target`: as OpenSSH does,
/// its own ssh_config entry applies, and the hops `before` it lead there.
fn hop_options(target: &SshOptions, bastion: &Hop, before: &[Hop]) -> SshOptions {
    let before: Vec<String> = before.iter().map(Hop::to_string).collect();
    SshOptions {
        port: bastion.port,
        user: bastion.user.clone(),
        connect_timeout: target.connect_timeout,
        accept_new_host_keys: target.accept_new_host_keys,
        home: target.home.clone(),
        agent_socket: target.agent_socket.clone(),
        // None: the bastion's own ssh_config says.
        proxy_jump: (!before.is_empty()).then(|| before.join(",")),
        bastions: target.bastions.clone(),
        ..SshOptions::new(bastion.host.clone())
    }
}

impl SshTransport {
    pub async fn connect(options: &SshOptions) -> Result<SshTransport, TransportError> {
        let Session {
            handle,
            target,
            user,
            lost,
            via,
            drained,
        } = Session::open(options.clone(), 0).await?;
        let mut transport = SshTransport {
            handle,
            target,
            login_is_root: user == "root",
            sessions: Semaphore::new(MAX_SESSIONS),
            session_limit: AtomicUsize::new(MAX_SESSIONS),
            lost,
            via,
            escalation: Escalation::new(options.become_password.clone()),
            drained,
        };
        if !transport.login_is_root {
            transport.login_is_root = transport.uid_is_zero().await?;
        }
        Ok(transport)
    }

    /// A login named otherwise can still be uid 0; one round trip settles it.
    async fn uid_is_zero(&self) -> Result<bool, TransportError> {
        let out = self
            .exec(Script {
                body: "id -u",
                stdin: Input::NONE,
                run_as: &RunAs::Login,
                timeout: Some(super::PROBE_TIMEOUT),
                purpose: Purpose::Probe,
            })
            .await?;
        Ok(out.success() && out.stdout_text().trim() == "0")
    }

    /// A session channel and the permit that counts it.
    async fn open_session(
        &self,
    ) -> Result<(Channel<client::Msg>, SemaphorePermit<'_>), TransportError> {
        let mut refusals = 0;
        loop {
            let permit = self
                .sessions
                .acquire()
                .await
                .map_err(|e| self.lost_error(e))?;
            match self.handle.channel_open_session().await {
                Ok(channel) => return Ok((channel, permit)),
                Err(russh::Error::ChannelOpenFailure(_)) if refusals < SESSION_RETRIES => {
                    refusals += 1;
                    let shrunk =
                        self.session_limit
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                (n > 1).then(|| n - 1)
                            });
                    if shrunk.is_ok() {
                        permit.forget();
                    } else {
                        drop(permit);
                    }
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(refusals))).await;
                }
                Err(e) => return Err(self.open_error("a session", e)),
            }
        }
    }

    fn lost_error(&self, cause: impl fmt::Display) -> TransportError {
        let recorded = lost_reason(self.via.as_deref(), &self.lost);
        TransportError::Lost {
            target: self.target.clone(),
            reason: recorded.unwrap_or_else(|| cause.to_string()),
        }
    }

    fn open_error(&self, what: &str, e: russh::Error) -> TransportError {
        match e {
            russh::Error::ChannelOpenFailure(why) => TransportError::Io(format!(
                "{}: the server refused {what}: {why:?}",
                self.target
            )),
            e => self.lost_error(e),
        }
    }
}

/// The status a shell reports for a command killed by `signal`.
fn signal_status(signal: &Sig) -> i32 {
    let number = match signal {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(name) => match name.as_str() {
            "TRAP" => 5,
            "BUS" => 7,
            "USR2" => 12,
            "XCPU" => 24,
            "XFSZ" => 25,
            "SYS" => 31,
            _ => return 255,
        },
    };
    128 + number
}

#[async_trait]
impl Transport for SshTransport {
    async fn exec(&self, script: Script<'_>) -> Result<ExecOutput, TransportError> {
        let sudo = self
            .escalation
            .sudo(self, &self.target, script.run_as, self.login_is_root)
            .await?;
        let started = tokio::time::Instant::now();
        let (channel, _permit) = self.open_session().await?;
        channel
            .exec(true, shell_command_line(&script, &sudo))
            .await
            .map_err(|e| self.lost_error(e))?;
        let (mut reader, writer) = channel.split();

        // Stdin is written while output is read: a command may fill its output window
        // before it has consumed all of its input.
        let (prefix, input) = (sudo.prefix(), script.stdin);
        let mut paced = Paced::new(self.drained.clone(), UPLOAD_AHEAD);
        let send = async move {
            if !prefix.is_empty() {
                writer.data_bytes(prefix).await?;
            }
            let mut chunks = input.chunks().await?;
            while let Some(chunk) = chunks.next().await? {
                paced.before(chunk.len()).await;
                writer.data_bytes(chunk).await?;
            }
            writer.eof().await
        };
        tokio::pin!(send);
        let mut sending = true;

        let mut out = ExecOutput::default();
        let mut status = None;
        let mut refused = false;
        let mut closed = false;
        let give_up = started + script.controller_deadline();
        loop {
            let msg = tokio::select! {
                // A command that exits without reading its stdin leaves the rest unsent;
                // like a local pipe, that is not an error: the exit status tells.
                _ = &mut send, if sending => {
                    sending = false;
                    continue;
                }
                msg = reader.wait() => msg,
                // Dropping the channel closes it; the host's `timeout` still ends the script.
                () = tokio::time::sleep_until(give_up) => {
                    return Err(TransportError::TimedOut {
                        limit: script.limit(),
                        killed_on_host: false,
                    });
                }
            };
            match msg {
                None => break,
                Some(ChannelMsg::Data { data }) => out.stdout.extend_from_slice(&data),
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    out.stderr.extend_from_slice(&data)
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    status = Some(i32::try_from(exit_status).unwrap_or(255))
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    status = Some(signal_status(&signal_name))
                }
                Some(ChannelMsg::Failure) => refused = true,
                Some(ChannelMsg::Close) => closed = true,
                Some(_) => {}
            }
        }
        if !closed {
            return Err(self.lost_error("the connection closed during a command"));
        }
        if refused {
            return Err(TransportError::Io(format!(
                "{}: the server refused to run the command",
                self.target
            )));
        }
        // OpenSSH's client also reports 255 when the server gives no exit status.
        out.status = status.unwrap_or(255);
        if let Some(refused) = sudo.refused(&self.target, &out) {
            return Err(refused);
        }
        if script.timed_out(out.status, started.elapsed()) {
            return Err(TransportError::TimedOut {
                limit: script.limit(),
                killed_on_host: true,
            });
        }
        Ok(out)
    }

    async fn exec_stream(
        &self,
        body: &str,
        run_as: &RunAs,
    ) -> Result<Box<dyn Stream>, TransportError> {
        let sudo = self
            .escalation
            .sudo(self, &self.target, run_as, self.login_is_root)
            .await?;
        let (channel, permit) = self.open_session().await?;
        // The channel holds its sshd session for the whole connection, so the execs get
        // one permit fewer for good (1 + 2 x 4 <= MaxSessions), and at least one is left.
        if self
            .session_limit
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 1).then(|| n - 1)
            })
            .is_err()
        {
            return Err(TransportError::Io(format!(
                "{}: the server allows one session at a time; a long-lived one needs two",
                self.target
            )));
        }
        permit.forget();
        channel
            .exec(true, stream_command_line(body, &sudo))
            .await
            .map_err(|e| self.lost_error(e))?;
        if let Some(line) = sudo.stdin_prefix {
            channel
                .data(&line[..])
                .await
                .map_err(|e| self.lost_error(e))?;
        }
        Ok(Box::new(channel.into_stream()))
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<Box<dyn Stream>, TransportError> {
        let channel = self
            .handle
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
            .await
            .map_err(|e| self.open_error(&format!("a connection to {host}:{port}"), e))?;
        Ok(Box::new(channel.into_stream()))
    }

    fn login_is_root(&self) -> bool {
        self.login_is_root
    }

    async fn close(&self) {
        if let Ok(mut lost) = self.lost.lock() {
            lost.get_or_insert_with(|| "converge closed the connection".to_string());
        }
        // Nothing is left to do if the connection is already gone.
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_key_types_come_first_and_rsa_uses_sha2() {
        let order = host_key_preference(&[SSH_RSA], false);
        assert_eq!(
            order[..2],
            [
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512)
                },
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha256)
                }
            ]
        );
        assert_eq!(order[2], Algorithm::Ed25519);
        assert_eq!(order.len(), Preferred::DEFAULT.key.len() - 1);
        assert!(!order.contains(&SSH_RSA));
    }

    #[test]
    fn ssh_rsa_is_offered_only_when_allowed() {
        assert!(!host_key_preference(&[], false).contains(&SSH_RSA));
        assert!(host_key_preference(&[], true).contains(&SSH_RSA));
    }

    #[test]
    fn aes_gcm_comes_first_only_with_hardware_aes() {
        let with = cipher_preference(true);
        assert_eq!(with[..2], [cipher::AES_128_GCM, cipher::AES_256_GCM]);
        let without = cipher_preference(false);
        assert_eq!(without[0], cipher::CHACHA20_POLY1305);
        for order in [&with, &without] {
            assert_eq!(
                order.len(),
                Preferred::DEFAULT.cipher.len() + 1,
                "{order:?}"
            );
        }
    }

    #[test]
    fn inventory_wins_over_ssh_config() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".ssh")).unwrap();
        std::fs::write(
            home.path().join(".ssh/config"),
            "Host web1\n  HostName %h.example.com\n  User deploy\n  Port 2222\n  \
             IdentityFile ~/.ssh/%r-%h\n",
        )
        .unwrap();
        let mut options = SshOptions::new("web1");
        options.home = Some(home.path().to_path_buf());

        let from_config = Resolved::new(&options).unwrap();
        assert_eq!(from_config.host, "web1.example.com");
        assert_eq!(from_config.port, 2222);
        assert_eq!(from_config.user, "deploy");
        assert_eq!(
            from_config.identity_files,
            [home.path().join(".ssh/deploy-web1.example.com")]
        );
        assert_eq!(from_config.target, "web1 (web1.example.com:2222)");

        options.address = Some("10.0.0.5".into());
        options.port = Some(22);
        options.user = Some("ops".into());
        options.identity_file = Some("~/keys/ops".into());
        let from_inventory = Resolved::new(&options).unwrap();
        assert_eq!(from_inventory.host, "10.0.0.5");
        assert_eq!(from_inventory.port, 22);
        assert_eq!(from_inventory.user, "ops");
        assert_eq!(
            from_inventory.identity_files,
            [
                home.path().join("keys/ops"),
                home.path().join(".ssh/ops-10.0.0.5")
            ]
        );
    }

    #[test]
    fn defaults_without_config() {
        let home = tempfile::tempdir().unwrap();
        let mut options = SshOptions::new("web1");
        options.home = Some(home.path().to_path_buf());
        options.user = Some("root".into());
        let r = Resolved::new(&options).unwrap();
        assert_eq!((r.host.as_str(), r.port), ("web1", 22));
        assert_eq!(r.target, "web1");
        assert!(r.identity_files.is_empty());
    }
}
