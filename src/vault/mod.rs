//! Ansible Vault: values and whole files encrypted with `ansible-vault`, opened with the
//! passwords of the command line, and written back in the same format.
//!
//! `format` is the text envelope, `cipher` the AES256 scheme, `password` where the
//! passwords come from, `command` the `converge vault` subcommand. Every YAML file
//! converge reads goes through [`crate::node::parse`], which opens what is vaulted with
//! the process's [`Keyring`] (given once, from the command line, by [`unlock`]): the
//! inventory, the playbook, vars files and `-e @FILE` need no password of their own.

mod cipher;
pub mod command;
mod format;
pub mod password;

use crate::error::{InputError, InputResult, Span};
use cipher::{OpenError, SALT_LEN};
pub use format::{DEFAULT_LABEL, is_vaulted};
use std::sync::{Arc, RwLock};

/// How to give converge the vault password, for every error that lacks it.
pub const PASSWORD_HELP: &str = "give the vault password with --vault-password-file FILE \
     (an executable file is run and its output used), --vault-id LABEL@FILE, \
     or CONVERGE_VAULT_PASSWORD_FILE";

/// A vault password and the vault id (label) it was given for.
pub struct Password {
    label: String,
    secret: Vec<u8>,
}

impl Password {
    pub fn new(label: impl Into<String>, secret: Vec<u8>) -> Password {
        Password {
            label: label.into(),
            secret,
        }
    }
}

/// The passwords of this run, in the order they were given.
#[derive(Default)]
pub struct Keyring {
    passwords: Vec<Password>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("this is encrypted with Ansible Vault, and no vault password was given")]
    NoPassword,
    #[error("no vault password given opens this (vault id `{0}`; the HMAC does not match)")]
    WrongPassword(String),
    #[error("{0}")]
    Format(#[from] format::FormatError),
    #[error("the vault payload opened but its padding is broken: the file is damaged")]
    BadPadding,
    #[error("the decrypted text is not UTF-8")]
    NotText,
    #[error("several vault ids are given: name the one to encrypt with --encrypt-vault-id")]
    WhichPassword,
    #[error("no vault id `{0}` is given (--vault-id {0}@FILE)")]
    NoSuchLabel(String),
    #[error("this is encrypted already")]
    AlreadyVaulted,
}

impl Keyring {
    pub fn new(passwords: Vec<Password>) -> Keyring {
        Keyring { passwords }
    }

    /// Open vault text as Ansible does: the password given for the envelope's vault id
    /// first, then every other one in the order given (the id is only a hint: it is
    /// neither encrypted nor signed).
    pub fn decrypt(&self, text: &str) -> Result<String, VaultError> {
        let envelope = format::parse(text)?;
        if self.passwords.is_empty() {
            return Err(VaultError::NoPassword);
        }
        let label = envelope.label.as_deref().unwrap_or(DEFAULT_LABEL);
        let (matching, others): (Vec<&Password>, Vec<&Password>) =
            self.passwords.iter().partition(|p| p.label == label);
        for password in matching.into_iter().chain(others) {
            match cipher::open(&envelope.sealed, &password.secret) {
                Ok(plaintext) => {
                    return String::from_utf8(plaintext).map_err(|_| VaultError::NotText);
                }
                Err(OpenError::WrongPassword) => continue,
                Err(OpenError::BadPadding) => return Err(VaultError::BadPadding),
            }
        }
        Err(VaultError::WrongPassword(label.to_string()))
    }

    /// Encrypt as ansible-vault does, with the only password, or the one labelled
    /// `label` when several are given; a fresh random salt each time.
    pub fn encrypt(&self, plaintext: &str, label: Option<&str>) -> Result<String, VaultError> {
        if is_vaulted(plaintext) {
            return Err(VaultError::AlreadyVaulted);
        }
        let password = match (label, self.passwords.as_slice()) {
            (Some(label), passwords) => passwords
                .iter()
                .find(|p| p.label == label)
                .ok_or_else(|| VaultError::NoSuchLabel(label.to_string()))?,
            (None, []) => return Err(VaultError::NoPassword),
            (None, [only]) => only,
            (None, _) => return Err(VaultError::WhichPassword),
        };
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).expect("the operating system's random source works");
        Ok(seal(plaintext, password, salt))
    }
}

fn seal(plaintext: &str, password: &Password, salt: [u8; SALT_LEN]) -> String {
    let sealed = cipher::seal(plaintext.as_bytes(), &password.secret, salt);
    format::format(&sealed, &password.label)
}

static KEYRING: RwLock<Option<Arc<Keyring>>> = RwLock::new(None);

/// Make `keyring` the one every YAML file of this run is opened with.
pub fn unlock(keyring: Keyring) {
    if let Ok(mut installed) = KEYRING.write() {
        *installed = Some(Arc::new(keyring));
    }
}

fn keyring() -> Arc<Keyring> {
    KEYRING
        .read()
        .ok()
        .and_then(|k| k.clone())
        .unwrap_or_default()
}

/// Open the vault text written at `span` with this run's passwords; a failure is
/// located there.
pub fn open_at(text: &str, span: &Span) -> InputResult<String> {
    keyring().decrypt(text).map_err(|e| located(e, span))
}

/// The error pointing at the vault text's header line, not at its whole payload.
fn located(error: VaultError, span: &Span) -> InputError {
    let help = match error {
        VaultError::NoPassword | VaultError::WrongPassword(_) => PASSWORD_HELP,
        _ => "encrypt it again with `converge vault encrypt` or `ansible-vault encrypt`",
    };
    let written = span.file.text.get(span.offset..).unwrap_or_default();
    let header = Span {
        len: written
            .find('\n')
            .unwrap_or(written.len())
            .min(span.len.max(1)),
        ..span.clone()
    };
    header.error(error.to_string()).help(help)
}

#[cfg(test)]
mod tests;
