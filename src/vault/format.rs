//! The vault envelope as ansible-vault writes it: a header line
//! (`$ANSIBLE_VAULT;1.1;AES256`, or `$ANSIBLE_VAULT;1.2;AES256;LABEL` with a vault id),
//! then the payload in lines of 80 characters. The payload is hex of
//! `hex(salt) \n hex(hmac) \n hex(ciphertext)`: hexlified twice, as Ansible keeps it
//! for compatibility.

use super::cipher::Sealed;

const HEADER: &str = "$ANSIBLE_VAULT";
const CIPHER: &str = "AES256";
/// Ansible's label for a password given without one (`--vault-password-file`).
pub const DEFAULT_LABEL: &str = "default";
const LINE: usize = 80;

/// A parsed envelope: the vault id it names (1.2 only) and the sealed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub label: Option<String>,
    pub sealed: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the vault header `{0}` is not `$ANSIBLE_VAULT;1.1;AES256` or `;1.2;AES256;LABEL`")]
    Header(String),
    #[error("the vault cipher `{0}` is not supported (only AES256, which ansible-vault writes)")]
    Cipher(String),
    #[error("this Ansible Vault payload is damaged (not the hex ansible-vault writes)")]
    Payload,
}

/// Whether `text` is vault data, by Ansible's test: it starts with the header.
pub fn is_vaulted(text: &str) -> bool {
    text.starts_with(HEADER)
}

pub fn parse(text: &str) -> Result<Envelope, FormatError> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().trim();
    let fields: Vec<&str> = header.split(';').map(str::trim).collect();
    let label = match fields.as_slice() {
        [HEADER, "1.1" | "1.2", _] => None,
        [HEADER, "1.2", _, label] if !label.is_empty() => Some(label.to_string()),
        _ => return Err(FormatError::Header(header.to_string())),
    };
    if fields[2] != CIPHER {
        return Err(FormatError::Cipher(fields[2].to_string()));
    }
    let body: String = lines.map(str::trim).collect();
    let payload = hex::decode(body).map_err(|_| FormatError::Payload)?;
    let mut parts = payload.splitn(3, |b| *b == b'\n');
    let mut next_hex = || {
        parts
            .next()
            .and_then(|part| hex::decode(part).ok())
            .ok_or(FormatError::Payload)
    };
    let sealed = Sealed {
        salt: next_hex()?,
        hmac: next_hex()?,
        ciphertext: next_hex()?,
    };
    Ok(Envelope { label, sealed })
}

/// The text ansible-vault would write: version 1.2 only for a label other than `default`.
pub fn format(sealed: &Sealed, label: &str) -> String {
    let header = if label == DEFAULT_LABEL {
        format!("{HEADER};1.1;{CIPHER}")
    } else {
        format!("{HEADER};1.2;{CIPHER};{label}")
    };
    let payload = [&sealed.salt, &sealed.hmac, &sealed.ciphertext]
        .map(hex::encode)
        .join("\n");
    let body = hex::encode(payload);
    let mut text = header;
    for line in body.as_bytes().chunks(LINE) {
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(line));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_both_versions() {
        let sealed = Sealed {
            salt: vec![1; 32],
            hmac: vec![2; 32],
            ciphertext: vec![3; 16],
        };
        let v11 = format(&sealed, DEFAULT_LABEL);
        assert!(v11.starts_with("$ANSIBLE_VAULT;1.1;AES256\n"));
        assert!(v11.lines().skip(1).all(|l| l.len() <= 80));
        assert_eq!(parse(&v11).unwrap().label, None);
        let v12 = format(&sealed, "prod");
        assert!(v12.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"));
        let parsed = parse(&v12).unwrap();
        assert_eq!(parsed.label.as_deref(), Some("prod"));
        assert_eq!(parsed.sealed, sealed);
    }

    #[test]
    fn damaged_envelopes_are_refused() {
        assert!(matches!(
            parse("$ANSIBLE_VAULT;9.9;AES256\n00\n"),
            Err(FormatError::Header(_))
        ));
        assert!(matches!(
            parse("$ANSIBLE_VAULT;1.1;AES\n00\n"),
            Err(FormatError::Cipher(_))
        ));
        assert_eq!(
            parse("$ANSIBLE_VAULT;1.1;AES256\nzz\n"),
            Err(FormatError::Payload)
        );
        assert_eq!(
            parse("$ANSIBLE_VAULT;1.1;AES256\n3030\n"),
            Err(FormatError::Payload)
        );
    }
}
