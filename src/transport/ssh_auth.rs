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
    /// `PubkeyAcceptedAlgorithms +ssh-rsa`: RSA keys may sign with SHA-1 for a server
    /// that accepts nothing else.
    pub ssh_rsa_signatures: bool,
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
        ssh_rsa_signatures: sources.ssh_rsa_signatures,
        rsa_signature: None,
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
    ssh_rsa_signatures: bool,
    /// How RSA keys sign on this server, once the server has been asked.
    rsa_signature: Option<RsaSignature>,
}

/// The signature an RSA key makes for this server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RsaSignature {
    Sha2(HashAlg),
    /// `ssh-rsa`: allowed by the config, and the only one the server takes.
    Sha1,
    /// The server takes only SHA-1, which the config does not allow.
    Refused,
}

/// What `server-sig-algs` says (russh's `best_supported_rsa_hash`: `None` when the server
/// did not say, `Some(None)` when it takes only SHA-1) decides the signature. A server
/// that does not say gets SHA-256, which every OpenSSH since 7.2 takes.
fn rsa_signature(server: Option<Option<HashAlg>>, ssh_rsa_allowed: bool) -> RsaSignature {
    match server {
        Some(Some(hash)) => RsaSignature::Sha2(hash),
        Some(None) if ssh_rsa_allowed => RsaSignature::Sha1,
        Some(None) => RsaSignature::Refused,
        None => RsaSignature::Sha2(HashAlg::Sha256),
    }
}

const SHA1_REFUSED: &str = "skipped: the server takes RSA signatures only with SHA-1 \
    (ssh-rsa), refused as OpenSSH 8.8+ refuses them; allow them for this host with \
    `PubkeyAcceptedAlgorithms +ssh-rsa` in ~/.ssh/config, or use an ed25519 key";

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
        let Ok(hash) = self.rsa_hash_for(key.algorithm().is_rsa()).await else {
            self.notes.push(format!("{what} ({SHA1_REFUSED})"));
            return Next::Continue;
        };
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
            let Ok(hash) = self.rsa_hash_for(key.algorithm().is_rsa()).await else {
                self.notes.push(format!("{what} ({SHA1_REFUSED})"));
                continue;
            };
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

    /// The hash an RSA key signs with (`None`: SHA-1, or not an RSA key); `Err` when the
    /// server takes only SHA-1 and the config does not allow it.
    async fn rsa_hash_for(&mut self, is_rsa: bool) -> Result<Option<HashAlg>, ()> {
        if !is_rsa {
            return Ok(None);
        }
        let signature = match self.rsa_signature {
            Some(known) => known,
            None => {
                // A failed query is taken as the server not saying.
                let server = self.handle.best_supported_rsa_hash().await.ok().flatten();
                *self
                    .rsa_signature
                    .insert(rsa_signature(server, self.ssh_rsa_signatures))
            }
        };
        match signature {
            RsaSignature::Sha2(hash) => Ok(Some(hash)),
            RsaSignature::Sha1 => Ok(None),
            RsaSignature::Refused => Err(()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_only_when_the_server_needs_it_and_the_config_allows_it() {
        let sha512 = Some(Some(HashAlg::Sha512));
        assert_eq!(
            rsa_signature(sha512, true),
            RsaSignature::Sha2(HashAlg::Sha512)
        );
        assert_eq!(rsa_signature(Some(None), true), RsaSignature::Sha1);
        assert_eq!(rsa_signature(Some(None), false), RsaSignature::Refused);
        let unsaid = RsaSignature::Sha2(HashAlg::Sha256);
        assert_eq!(rsa_signature(None, true), unsaid);
        assert_eq!(rsa_signature(None, false), unsaid);
    }
}
