//! `converge vault`: encrypt and decrypt files in place and encrypt single values, in
//! the format ansible-vault reads and writes; and the password options every command
//! that reads YAML shares.

use super::{Keyring, VaultError, password};
use crate::error::{Exit, InputError, InputResult};
use clap::{Args, Subcommand};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where the vault passwords come from (`ansible-playbook`'s options).
#[derive(Args, Default, Clone)]
pub struct PasswordArgs {
    /// A vault password: LABEL@FILE, or FILE for the label `default`; repeatable.
    /// An executable FILE is run and its output used.
    #[arg(long = "vault-id", value_name = "LABEL@FILE")]
    pub vault_ids: Vec<String>,
    /// The file holding the vault password, or an executable printing it; repeatable.
    #[arg(
        long = "vault-password-file",
        value_name = "FILE",
        env = "CONVERGE_VAULT_PASSWORD_FILE"
    )]
    pub password_files: Vec<String>,
}

impl PasswordArgs {
    pub fn keyring(&self) -> InputResult<Keyring> {
        password::keyring(&self.vault_ids, &self.password_files)
    }
}

#[derive(Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    passwords: PasswordArgs,
    /// The vault id to encrypt with, when several are given.
    #[arg(long, value_name = "LABEL")]
    encrypt_vault_id: Option<String>,
}

#[derive(Subcommand)]
pub enum VaultCommand {
    /// Encrypt files in place (their mode and owner kept), as `ansible-vault encrypt`.
    Encrypt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        encrypt: EncryptArgs,
    },
    /// Decrypt files in place, as `ansible-vault decrypt`.
    Decrypt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        passwords: PasswordArgs,
    },
    /// Print vaulted files decrypted, changing nothing, as `ansible-vault view`.
    View {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        passwords: PasswordArgs,
    },
    /// Print VALUE (or standard input, as it is) encrypted, to paste into a vars file
    /// as `NAME: !vault |`, as `ansible-vault encrypt_string`.
    #[command(alias = "encrypt_string")]
    EncryptString {
        /// The variable name to print before the value.
        #[arg(short, long)]
        name: Option<String>,
        /// The value; `-` or nothing reads standard input.
        value: Option<String>,
        #[command(flatten)]
        encrypt: EncryptArgs,
    },
}

pub fn run(command: VaultCommand) -> Exit {
    let result = match command {
        VaultCommand::Encrypt { files, encrypt } => encrypt_files(&files, &encrypt),
        VaultCommand::Decrypt { files, passwords } => {
            decrypt_files(&files, &passwords, |file, text| {
                rewrite(file, text)?;
                eprintln!("decrypted {}", file.display());
                Ok(())
            })
        }
        VaultCommand::View { files, passwords } => decrypt_files(&files, &passwords, |_, text| {
            print!("{text}");
            Ok(())
        }),
        VaultCommand::EncryptString {
            name,
            value,
            encrypt,
        } => encrypt_string(name.as_deref(), value, &encrypt),
    };
    match result {
        Ok(()) => Exit::Success,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            Exit::BadInput
        }
    }
}

fn encrypt_files(files: &[PathBuf], args: &EncryptArgs) -> InputResult<()> {
    let keyring = args.passwords.keyring()?;
    for file in files {
        let text = read(file)?;
        let vaulted = keyring
            .encrypt(&text, args.encrypt_vault_id.as_deref())
            .map_err(|e| failed(file, e))?;
        rewrite(file, &vaulted)?;
        eprintln!("encrypted {}", file.display());
    }
    Ok(())
}

/// Open each file and hand its plaintext to `write` (back into the file, or to stdout).
fn decrypt_files(
    files: &[PathBuf],
    args: &PasswordArgs,
    write: impl Fn(&Path, &str) -> InputResult<()>,
) -> InputResult<()> {
    let keyring = args.keyring()?;
    for file in files {
        let text = read(file)?;
        if !super::is_vaulted(&text) {
            return Err(InputError::new(format!(
                "{}: is not encrypted with Ansible Vault",
                file.display()
            ))
            .help("its first line would be `$ANSIBLE_VAULT;1.1;AES256`"));
        }
        let plaintext = keyring.decrypt(&text).map_err(|e| failed(file, e))?;
        write(file, &plaintext)?;
    }
    Ok(())
}

fn encrypt_string(
    name: Option<&str>,
    value: Option<String>,
    args: &EncryptArgs,
) -> InputResult<()> {
    let keyring = args.passwords.keyring()?;
    let value = match value.filter(|v| v != "-") {
        Some(v) => v,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| InputError::new(format!("cannot read standard input: {e}")))?;
            if text.is_empty() {
                return Err(
                    InputError::new("standard input is empty: nothing to encrypt")
                        .help("give the value as an argument, or pipe it in"),
                );
            }
            text
        }
    };
    let vaulted = keyring
        .encrypt(&value, args.encrypt_vault_id.as_deref())
        .map_err(|e| failed(Path::new("the value"), e))?;
    println!("{}", yaml_block(name, &vaulted));
    Ok(())
}

/// The value as ansible-vault prints it: `NAME: !vault |` and the lines indented by 10.
fn yaml_block(name: Option<&str>, vaulted: &str) -> String {
    let mut block = match name {
        Some(name) => format!("{name}: !vault |"),
        None => "!vault |".to_string(),
    };
    for line in vaulted.lines() {
        block.push_str("\n          ");
        block.push_str(line);
    }
    block
}

fn read(file: &Path) -> InputResult<String> {
    std::fs::read_to_string(file).map_err(|e| {
        InputError::new(format!("cannot read {}: {e}", file.display()))
            .help("check the path; a relative path starts at the current directory")
    })
}

fn failed(file: &Path, error: VaultError) -> InputError {
    let help = match error {
        VaultError::NoPassword | VaultError::WrongPassword(_) | VaultError::NoSuchLabel(_) => {
            super::PASSWORD_HELP
        }
        VaultError::WhichPassword => "add --encrypt-vault-id LABEL",
        _ => "check that the file is the one you meant",
    };
    InputError::new(format!("{}: {error}", file.display())).help(help)
}

/// Replace `file` by `text` at once (a hidden temp file beside it, renamed over it),
/// with the file's mode and owner, so a crash leaves the old file or the new one. A
/// link is followed, as ansible-vault does: the file it names is rewritten.
fn rewrite(file: &Path, text: &str) -> InputResult<()> {
    let fail = |e: std::io::Error| InputError::new(format!("cannot write {}: {e}", file.display()));
    let file = &std::fs::canonicalize(file).map_err(fail)?;
    let meta = std::fs::metadata(file).map_err(fail)?;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".converge-vault-")
        .suffix("~")
        .tempfile_in(dir)
        .map_err(fail)?;
    temp.write_all(text.as_bytes()).map_err(fail)?;
    let handle = temp.as_file();
    std::os::unix::fs::fchown(handle, Some(meta.uid()), Some(meta.gid())).map_err(fail)?;
    handle.set_permissions(meta.permissions()).map_err(fail)?;
    handle.sync_all().map_err(fail)?;
    temp.persist(file).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_is_encrypted_and_decrypted_in_place_keeping_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "hunter2\n").unwrap();
        let file = dir.path().join("vars.yml");
        std::fs::write(&file, "a: 1\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let passwords = PasswordArgs {
            vault_ids: vec![format!("prod@{}", pw.display())],
            password_files: Vec::new(),
        };
        let encrypt = EncryptArgs {
            passwords: passwords.clone(),
            encrypt_vault_id: None,
        };
        encrypt_files(std::slice::from_ref(&file), &encrypt).unwrap();
        let vaulted = std::fs::read_to_string(&file).unwrap();
        assert!(vaulted.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        assert!(encrypt_files(std::slice::from_ref(&file), &encrypt).is_err());
        decrypt_files(std::slice::from_ref(&file), &passwords, rewrite).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a: 1\n");
        assert!(decrypt_files(std::slice::from_ref(&file), &passwords, rewrite).is_err());
        // Nothing left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // Through a link, the file it names is encrypted and the link stays.
        let link = dir.path().join("link.yml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        encrypt_files(std::slice::from_ref(&link), &encrypt).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .starts_with("$ANSIBLE_VAULT")
        );
    }

    #[test]
    fn an_encrypted_string_is_a_yaml_block() {
        let block = yaml_block(Some("pw"), "$ANSIBLE_VAULT;1.1;AES256\n3031\n");
        assert_eq!(
            block,
            "pw: !vault |\n          $ANSIBLE_VAULT;1.1;AES256\n          3031"
        );
    }
}
