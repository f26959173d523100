//! Where vault passwords come from: files, or programs that print them, as Ansible
//! reads `--vault-password-file` and `--vault-id`.

use super::{DEFAULT_LABEL, Keyring, PASSWORD_HELP, Password};
use crate::error::{InputError, InputResult};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The keyring of `--vault-id` values (`LABEL@FILE`, or `FILE` for the label
/// `default`) followed by `--vault-password-file` files (label `default`), as Ansible
/// orders them.
pub fn keyring(vault_ids: &[String], password_files: &[String]) -> InputResult<Keyring> {
    let mut passwords = Vec::new();
    let sources = vault_ids
        .iter()
        .map(|id| split_vault_id(id))
        .chain(password_files.iter().map(|f| (DEFAULT_LABEL, f.as_str())));
    for (label, file) in sources {
        if file == "prompt" {
            return Err(InputError::new(format!(
                "--vault-id {label}@prompt: converge runs unattended and never prompts"
            ))
            .help(PASSWORD_HELP));
        }
        passwords.push(Password::new(label, read(Path::new(file), label)?));
    }
    Ok(Keyring::new(passwords))
}

fn split_vault_id(id: &str) -> (&str, &str) {
    match id.split_once('@') {
        Some((label, file)) if !label.is_empty() => (label, file),
        Some((_, file)) => (DEFAULT_LABEL, file),
        None => (DEFAULT_LABEL, id),
    }
}

/// The password in `path`: its output when it is executable (a program named
/// `*-client` is asked with `--vault-id LABEL`), else its text; surrounding
/// whitespace and line ends dropped as Ansible drops them.
fn read(path: &Path, label: &str) -> InputResult<Vec<u8>> {
    let shown = path.display();
    let fail = |what: String| InputError::new(what).help(PASSWORD_HELP);
    let meta = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read the vault password file {shown}: {e}")))?;
    if meta.is_dir() {
        return Err(fail(format!(
            "the vault password file {shown} is a directory"
        )));
    }
    let password = if meta.permissions().mode() & 0o111 != 0 {
        // A bare `pw.sh` names the file here, not a program on PATH.
        let program = std::path::absolute(path).map_err(|e| {
            fail(format!(
                "cannot run the vault password program {shown}: {e}"
            ))
        })?;
        let mut command = Command::new(program);
        let is_client = path
            .file_stem()
            .is_some_and(|s| s.to_string_lossy().ends_with("-client"));
        if is_client {
            command.args(["--vault-id", label]);
        }
        let output = command
            .stdin(Stdio::inherit())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| {
                fail(format!(
                    "cannot run the vault password program {shown}: {e}"
                ))
            })?;
        if !output.status.success() {
            return Err(fail(format!(
                "the vault password program {shown} failed ({})",
                output.status
            )));
        }
        trim_line_ends(&output.stdout).to_vec()
    } else {
        let text = std::fs::read(path)
            .map_err(|e| fail(format!("cannot read the vault password file {shown}: {e}")))?;
        trim_line_ends(text.trim_ascii()).to_vec()
    };
    if password.is_empty() {
        return Err(fail(format!("the vault password from {shown} is empty")));
    }
    Ok(password)
}

fn trim_line_ends(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b"\r\n".contains(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b"\r\n".contains(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_ids_name_a_label_and_a_file() {
        assert_eq!(split_vault_id("prod@/p"), ("prod", "/p"));
        assert_eq!(split_vault_id("/p"), ("default", "/p"));
        assert_eq!(split_vault_id("@/p"), ("default", "/p"));
    }

    #[test]
    fn a_plain_file_is_read_and_a_program_is_run() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("pw");
        std::fs::write(&plain, "  hunter2 \n").unwrap();
        assert_eq!(read(&plain, "default").unwrap(), b"hunter2");
        let program = dir.path().join("pw.sh");
        std::fs::write(&program, "#!/bin/sh\nprintf ' s3 \\r\\n'\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o700)).unwrap();
        // A program's output keeps its spaces, as in Ansible: only line ends go.
        assert_eq!(read(&program, "default").unwrap(), b" s3 ");
        let client = dir.path().join("pw-client.sh");
        std::fs::write(&client, "#!/bin/sh\nprintf '%s' \"$2\"\n").unwrap();
        std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(read(&client, "prod").unwrap(), b"prod");
    }

    #[test]
    fn unusable_password_sources_are_input_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = read(&empty, "default").unwrap_err();
        assert!(err.message.contains("is empty"), "{}", err.message);
        let failing = dir.path().join("fail.sh");
        std::fs::write(&failing, "#!/bin/sh\nexit 1\n").unwrap();
        std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(
            read(&failing, "default")
                .unwrap_err()
                .message
                .contains("failed")
        );
        assert!(read(&dir.path().join("none"), "default").is_err());
        assert!(keyring(&["x@prompt".into()], &[]).is_err());
    }
}
