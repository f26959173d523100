//! Vault's AES256 cipher, as Ansible's `VaultAES256` does it: PBKDF2-HMAC-SHA256
//! (10000 rounds) over a 32-byte salt gives the AES-256 key, the HMAC key and the CTR
//! IV; the PKCS#7-padded plaintext is encrypted with AES-256-CTR and the ciphertext
//! signed with HMAC-SHA256.

use aes::Aes256;
use block_padding::{Padding, Pkcs7};
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const SALT_LEN: usize = 32;
const KEY_LEN: usize = 32;
const IV_LEN: usize = 16;
const ROUNDS: u32 = 10_000;
/// Ansible pads to AES's block size although CTR needs no padding; the format keeps it.
const BLOCK: usize = 16;

type Aes256Ctr = ctr::Ctr128BE<Aes256>;
type HmacSha256 = Hmac<Sha256>;

/// What a salt and a password make: the cipher key, the signing key and the IV.
struct Keys {
    cipher: [u8; KEY_LEN],
    signing: [u8; KEY_LEN],
    iv: [u8; IV_LEN],
}

impl Keys {
    fn derive(password: &[u8], salt: &[u8]) -> Keys {
        let mut derived = [0u8; 2 * KEY_LEN + IV_LEN];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, ROUNDS, &mut derived);
        let mut keys = Keys {
            cipher: [0; KEY_LEN],
            signing: [0; KEY_LEN],
            iv: [0; IV_LEN],
        };
        keys.cipher.copy_from_slice(&derived[..KEY_LEN]);
        keys.signing.copy_from_slice(&derived[KEY_LEN..2 * KEY_LEN]);
        keys.iv.copy_from_slice(&derived[2 * KEY_LEN..]);
        keys
    }

    fn apply_keystream(&self, data: &mut [u8]) {
        Aes256Ctr::new(&self.cipher.into(), &self.iv.into()).apply_keystream(data);
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.signing)
            .expect("HMAC takes a key of any length")
    }
}

/// The parts of a vaulted payload, binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub salt: Vec<u8>,
    pub hmac: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Why a payload did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The HMAC does not match: another password (or a tampered file).
    WrongPassword,
    /// The HMAC matched but the padding is broken: the file was written wrongly.
    BadPadding,
}

pub fn seal(plaintext: &[u8], password: &[u8], salt: [u8; SALT_LEN]) -> Sealed {
    let keys = Keys::derive(password, &salt);
    let (blocks, tail) = plaintext.split_at(plaintext.len() - plaintext.len() % BLOCK);
    let mut padded_tail = [0u8; BLOCK];
    padded_tail[..tail.len()].copy_from_slice(tail);
    Pkcs7::raw_pad(&mut padded_tail, tail.len());
    let mut ciphertext = [blocks, &padded_tail].concat();
    keys.apply_keystream(&mut ciphertext);
    let mut mac = keys.mac();
    mac.update(&ciphertext);
    Sealed {
        salt: salt.to_vec(),
        hmac: mac.finalize().into_bytes().to_vec(),
        ciphertext,
    }
}

pub fn open(sealed: &Sealed, password: &[u8]) -> Result<Vec<u8>, OpenError> {
    let keys = Keys::derive(password, &sealed.salt);
    let mut mac = keys.mac();
    mac.update(&sealed.ciphertext);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&sealed.hmac)
        .map_err(|_| OpenError::WrongPassword)?;
    if sealed.ciphertext.is_empty() || !sealed.ciphertext.len().is_multiple_of(BLOCK) {
        return Err(OpenError::BadPadding);
    }
    let mut plaintext = sealed.ciphertext.clone();
    keys.apply_keystream(&mut plaintext);
    let last = plaintext.len() - BLOCK;
    let kept = Pkcs7::raw_unpad(&plaintext[last..])
        .map_err(|_| OpenError::BadPadding)?
        .len();
    plaintext.truncate(last + kept);
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_gives_the_plaintext_back() {
        for len in [0, 1, 15, 16, 17, 100] {
            let plaintext = vec![b'x'; len];
            let sealed = seal(&plaintext, b"pw", [7; SALT_LEN]);
            assert_eq!(sealed.ciphertext.len(), (len / BLOCK + 1) * BLOCK);
            assert_eq!(open(&sealed, b"pw").unwrap(), plaintext);
            assert_eq!(open(&sealed, b"other"), Err(OpenError::WrongPassword));
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_hmac() {
        let mut sealed = seal(b"secret", b"pw", [1; SALT_LEN]);
        sealed.ciphertext[0] ^= 1;
        assert_eq!(open(&sealed, b"pw"), Err(OpenError::WrongPassword));
    }
}
