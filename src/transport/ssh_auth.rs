//! Public-key authentication in OpenSSH's order: the given identity files, the ssh-agent,
//! then the default keys in `~/.ssh`. Every step is noted so that a failure says exactly
//! what was tried and why each key did not do.

use russh::client::{AuthResult, Handle, Handler};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{
    Error as KeysError, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, decode_secret_key,
};
use russh::{AgentAuthError, MethodKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(super) const DEFAULT_KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// Where keys may come from, in the order they are tried.
pub(super) struct Sources<'a> {
    pub user: &'a str,
    /// Inventory then ssh_config identity files: a missing one is worth reporting.
    pub identity_files: &'a [PathBuf],
    /// `IdentitiesOnly yes`: no agent keys.
    pub identities_only: bool,
    pub agent_socket: Option<&'a Path>,
    /// `~/.ssh`, for the default key files.
    pub ssh_dir: Option<PathBuf>,
}

/// Authenticate or explain, in one sentence, everything that was tried.
pub(super) async fn authenticate<H: Handler>(
    handle: &mut Handle<H>,
    sources: &Sources<'_>,
) -> Result<(), String> {
    let mut attempt = Attempt {
        handle,
        user: sources.user,
        notes: Vec::new(),
        offered: Vec::new(),
        rsa_hash: None,
    };
    match attempt.run(sources).await {
        Outcome::Accepted => Ok(()),
        Outcome::GaveUp(why) => {
            attempt.notes.push(why);
            Err(attempt.explain())
        }
        Outcome::Rejected => Err(attempt.explain()),
    }
}

enum Outcome {
    Accepted,
    /// Every key was refused or unusable.
    Rejected,
    /// Further attempts are pointless (the server closed, or no longer takes keys).
    GaveUp(String),
}

struct Attempt<'h, 's, H: Handler> {
    handle: &'h mut Handle<H>,
    user: &'s str,
    notes: Vec<String>,
    /// Keys already offered, so that one key found in several places is tried once.
    offered: Vec<KeyData>,
    rsa_hash: Option<HashAlg>,
}

/// What to do after one key was offered.
enum Next {
    Continue,
    Stop(Outcome),
}

impl<H: Handler> Attempt<'_, '_, H> {
    async fn run(&mut self, sources: &Sources<'_>) -> Outcome {
        for path in sources.identity_files {
            if let Next::Stop(outcome) = self.try_file(path, true).await {
                return outcome;
            }
        }
        if !sources.identities_only
            && let Next::Stop(outcome) = self.try_agent(sources.agent_socket).await
        {
            return outcome;
        }
        if let Some(dir) = &sources.ssh_dir {
            for name in DEFAULT_KEYS {
                if let Next::Stop(outcome) = self.try_file(&dir.join(name), false).await {
                    return outcome;
                }
            }
        }
        Outcome::Rejected
    }

    fn explain(&self) -> String {
        if self.notes.is_empty() {
            "no key to offer: no identity file, no ssh-agent, no ~/.ssh/id_ed25519, id_ecdsa \
             or id_rsa"
                .to_string()
        } else {
            format!("no key was accepted; tried: {}", self.notes.join("; "))
        }
    }

    async fn try_file(&mut self, path: &Path, named: bool) -> Next {
        let shown = path.display();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if named {
                    self.notes.push(format!("{shown} (not found)"));
                }
                return Next::Continue;
            }
            Err(e) => {
                self.notes.push(format!("{shown} (unreadable: {e})"));
                return Next::Continue;
            }
        };
        let key = match decode_secret_key(&text, None) {
            Ok(key) => key,
            // PKCS#8 and legacy PEM keys fail to decode rather than say they are encrypted.
            Err(e) if matches!(e, KeysError::KeyIsEncrypted) || text.contains("ENCRYPTED") => {
                self.notes.push(format!(
                    "{shown} (skipped: encrypted with a passphrase; add it to ssh-agent instead)"
                ));
                return Next::Continue;
            }
            Err(e) => {
                self.notes
                    .push(format!("{shown} (not a usable private key: {e})"));
                return Next::Continue;
            }
        };
        self.offer_private(key, shown.to_string()).await
    }

    async fn offer_private(&mut self, key: PrivateKey, what: String) -> Next {
        let data = key.public_key().key_data().clone();
        if self.offered.contains(&data) {
            return Next::Continue;
        }
        self.offered.push(data);
        let hash = self.rsa_hash_for(key.algorithm().is_rsa()).await;
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        let result = self.handle.authenticate_publickey(self.user, key).await;
        self.judge(result.map_err(|e| e.to_string()), what)
    }

    async fn try_agent(&mut self, socket: Option<&Path>) -> Next {
        let Some(socket) = socket else {
            self.notes
                .push("ssh-agent (none: SSH_AUTH_SOCK is not set)".to_string());
            return Next::Continue;
        };
        let shown = socket.display();
        let mut agent = match AgentClient::connect_uds(socket).await {
            Ok(agent) => agent,
            Err(e) => {
                self.notes
                    .push(format!("ssh-agent at {shown} (cannot connect: {e})"));
                return Next::Continue;
            }
        };
        let identities = match agent.request_identities().await {
            Ok(ids) => ids,
            Err(e) => {
                self.notes
                    .push(format!("ssh-agent at {shown} (cannot list keys: {e})"));
                return Next::Continue;
            }
        };
        let keys: Vec<PublicKey> = identities
            .into_iter()
            .filter_map(|id| match id {
                AgentIdentity::PublicKey { key, .. } => Some(key),
                // Certificates need a CA the server trusts: not part of this transport.
                AgentIdentity::Certificate { .. } => None,
            })
            .collect();
        if keys.is_empty() {
            self.notes.push(format!("ssh-agent at {shown} (no keys)"));
        }
        for key in keys {
            if self.offered.contains(key.key_data()) {
                continue;
            }
            self.offered.push(key.key_data().clone());
            let what = format!(
                "ssh-agent key {} {}",
                key.comment(),
                key.fingerprint(HashAlg::Sha256)
            );
            let hash = self.rsa_hash_for(key.algorithm().is_rsa()).await;
            let result = self
                .handle
                .authenticate_publickey_with(self.user, key, hash, &mut agent)
                .await;
            let result = match result {
                Err(AgentAuthError::Key(e)) => {
                    self.notes
                        .push(format!("{what} (the agent did not sign: {e})"));
                    continue;
                }
                other => other.map_err(|e| e.to_string()),
            };
            if let Next::Stop(outcome) = self.judge(result, what) {
                return Next::Stop(outcome);
            }
        }
        Next::Continue
    }

    fn judge(&mut self, result: Result<AuthResult, String>, what: String) -> Next {
        match result {
            Ok(AuthResult::Success) => Next::Stop(Outcome::Accepted),
            Ok(AuthResult::Failure {
                partial_success: true,
                remaining_methods,
            }) => Next::Stop(Outcome::GaveUp(format!(
                "{what} (accepted, but the server also requires {})",
                method_names(&remaining_methods)
            ))),
            Ok(AuthResult::Failure {
                remaining_methods, ..
            }) => {
                self.notes.push(format!("{what} (refused)"));
                if remaining_methods.contains(&MethodKind::PublicKey) {
                    Next::Continue
                } else {
                    Next::Stop(Outcome::GaveUp(format!(
                        "the server accepts no more public keys (remaining methods: {})",
                        method_names(&remaining_methods)
                    )))
                }
            }
            Err(e) => {
                self.notes.push(format!("{what} (interrupted)"));
                Next::Stop(Outcome::GaveUp(format!(
                    "the server closed the connection ({e}); too many keys offered? \
                     (sshd MaxAuthTries)"
                )))
            }
        }
    }

    /// RSA keys sign with SHA-2: modern sshd refuses ssh-rsa (SHA-1) signatures.
    async fn rsa_hash_for(&mut self, is_rsa: bool) -> Option<HashAlg> {
        if !is_rsa {
            return None;
        }
        if self.rsa_hash.is_none() {
            let best = self.handle.best_supported_rsa_hash().await;
            self.rsa_hash = Some(match best {
                Ok(Some(Some(hash))) => hash,
                _ => HashAlg::Sha256,
            });
        }
        self.rsa_hash
    }
}

fn method_names(methods: &[MethodKind]) -> String {
    let names: Vec<&str> = methods.iter().map(<&str>::from).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}
