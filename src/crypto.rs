//! Sealing what the proxy keeps or hands out: tokens at rest, tickets, OAuth state.
//!
//! One key derived from the master key (HMAC-SHA256 of a label), AES-256-GCM with a random
//! nonce; the associated data names what a blob is and whose, so a ticket never opens as a
//! token row, nor one user's row as another's.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::MasterKey;

type HmacSha256 = Hmac<Sha256>;

const NONCE_LEN: usize = 12;
/// Version byte in front of every sealed blob, so the format can change without guessing.
const SEAL_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("sealed data is malformed")]
    Malformed,
    #[error(
        "sealed data does not open with this key and row (wrong master key, or a swapped row)"
    )]
    Open,
}

pub struct Crypto {
    seal: Aes256Gcm,
}

impl Crypto {
    pub fn new(master: &MasterKey) -> Self {
        let seal_key = derive(master, b"lms-proxy seal v1");
        Self {
            seal: Aes256Gcm::new((&seal_key).into()),
        }
    }

    /// AES-256-GCM with a random nonce; `aad` binds the blob to its row.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        // Encryption with a valid key and nonce size cannot fail; an empty result would only
        // make the later open fail loudly, never leak.
        if let Ok(ciphertext) = self.seal.encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        ) {
            out.extend_from_slice(&ciphertext);
        }
        out
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != SEAL_VERSION {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
        self.seal
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

fn derive(master: &MasterKey, label: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&master.0)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(label);
    mac.finalize().into_bytes().into()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// 256 bits from the OS generator, base64url: state values, ticket ids, PKCE verifiers.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto(byte: u8) -> Crypto {
        Crypto::new(&MasterKey([byte; 32]))
    }

    #[test]
    fn seal_round_trips_and_binds_to_its_row() {
        let c = crypto(1);
        let sealed = c.seal(b"access-token", b"row-a");
        assert!(!sealed.windows(12).any(|w| w == b"access-token"));
        assert_eq!(c.open(&sealed, b"row-a").unwrap(), b"access-token");
        assert_eq!(c.open(&sealed, b"row-b"), Err(CryptoError::Open));
        assert_eq!(crypto(2).open(&sealed, b"row-a"), Err(CryptoError::Open));
        assert_eq!(c.open(&sealed[..10], b"row-a"), Err(CryptoError::Malformed));
    }
}
