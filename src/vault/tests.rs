//! Known answers: files and values written by the real ansible-vault (Ansible 12.3,
//! committed under `fixtures/`), opened here; and what converge writes, byte for byte
//! what Ansible writes for the same salt.

use super::*;

const V11: &str = include_str!("fixtures/v11.yml");
const V12: &str = include_str!("fixtures/v12.yml");
const INLINE: &str = include_str!("fixtures/inline.yml");
/// `ansible-vault encrypt_string` with the salt fixed (ANSIBLE_VAULT_ENCRYPT_SALT).
const SALTED: &str = include_str!("fixtures/salted.txt");

fn keyring(passwords: &[(&str, &str)]) -> Keyring {
    Keyring::new(
        passwords
            .iter()
            .map(|(label, pw)| Password::new(*label, pw.as_bytes().to_vec()))
            .collect(),
    )
}

#[test]
fn files_ansible_vault_wrote_open() {
    let hunter = keyring(&[("default", "hunter2")]);
    assert_eq!(
        hunter.decrypt(V11).unwrap(),
        "db_password: S3cret-Db\nport: 5432\n"
    );
    let prod = keyring(&[("prod", "prod-pass")]);
    assert_eq!(prod.decrypt(V12).unwrap(), "api_token: tok-123\n");
}

#[test]
fn an_inline_value_opens_without_its_indentation() {
    let (_, block) = INLINE.split_once("!vault |").unwrap();
    let value: String = block
        .trim()
        .lines()
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    let hunter = keyring(&[("default", "hunter2")]);
    assert_eq!(hunter.decrypt(&value).unwrap(), "S3cret-Db");
}

#[test]
fn every_password_is_tried_the_labelled_one_first() {
    // As in Ansible, a 1.2 file opens with a password of another label, and a 1.1
    // file with a labelled password.
    let both = keyring(&[("dev", "hunter2"), ("other", "prod-pass")]);
    assert!(both.decrypt(V12).is_ok());
    assert!(both.decrypt(V11).is_ok());
}

#[test]
fn a_wrong_or_missing_password_is_told_apart() {
    assert_eq!(
        keyring(&[("prod", "nope")]).decrypt(V12),
        Err(VaultError::WrongPassword("prod".into()))
    );
    assert_eq!(Keyring::default().decrypt(V11), Err(VaultError::NoPassword));
}

#[test]
fn converge_writes_what_ansible_vault_writes() {
    let (salt_hex, expected) = SALTED.split_once('\n').unwrap();
    let salt: [u8; SALT_LEN] = salt_hex.as_bytes().try_into().unwrap();
    let password = Password::new(DEFAULT_LABEL, b"hunter2".to_vec());
    assert_eq!(seal("S3cret-Db", &password, salt), expected);
}

#[test]
fn encrypting_picks_the_password() {
    let one = keyring(&[("prod", "prod-pass")]);
    let text = one.encrypt("x: 1\n", None).unwrap();
    assert!(text.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"));
    assert_eq!(one.decrypt(&text).unwrap(), "x: 1\n");
    // A fresh salt each time.
    assert_ne!(one.encrypt("x: 1\n", None).unwrap(), text);
    let two = keyring(&[("a", "1"), ("b", "2")]);
    assert_eq!(two.encrypt("x", None), Err(VaultError::WhichPassword));
    assert!(two.encrypt("x", Some("b")).is_ok());
    assert_eq!(
        two.encrypt("x", Some("c")),
        Err(VaultError::NoSuchLabel("c".into()))
    );
    assert_eq!(one.encrypt(V11, None), Err(VaultError::AlreadyVaulted));
}
