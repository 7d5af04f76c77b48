//! Sealing tokens at rest and signing what the proxy hands out (tickets, OAuth state).
//!
//! One master key, separate derived keys per purpose (HMAC-SHA256 of a label), so a sealed
//! token can never be replayed as a signature and the other way round.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
    #[error("signature does not match")]
    BadSignature,
}

pub struct Crypto {
    seal: Aes256Gcm,
    sign_key: [u8; 32],
}

impl Crypto {
    pub fn new(master: &MasterKey) -> Self {
        let seal_key = derive(master, b"lms-proxy seal v1");
        let sign_key = derive(master, b"lms-proxy sign v1");
        Self {
            seal: Aes256Gcm::new((&seal_key).into()),
            sign_key,
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

    /// `base64url(payload).base64url(hmac)`: compact, URL-safe, opaque to the browser.
    pub fn sign(&self, purpose: &str, payload: &[u8]) -> String {
        let body = URL_SAFE_NO_PAD.encode(payload);
        let mac = self.mac(purpose, body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// Checks the signature in constant time and returns the payload.
    pub fn verify(&self, purpose: &str, signed: &str) -> Result<Vec<u8>, CryptoError> {
        let (body, mac) = signed.split_once('.').ok_or(CryptoError::Malformed)?;
        let given = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| CryptoError::Malformed)?;
        let expected = self.mac(purpose, body.as_bytes());
        if !bool::from(expected.as_slice().ct_eq(&given)) {
            return Err(CryptoError::BadSignature);
        }
        URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptoError::Malformed)
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.sign_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().into()
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

    #[test]
    fn signatures_check_purpose_and_content() {
        let c = crypto(1);
        let signed = c.sign("ticket", b"{\"a\":1}");
        assert_eq!(c.verify("ticket", &signed).unwrap(), b"{\"a\":1}");
        assert_eq!(c.verify("state", &signed), Err(CryptoError::BadSignature));
        assert_eq!(
            crypto(2).verify("ticket", &signed),
            Err(CryptoError::BadSignature)
        );
        let (body, mac) = signed.split_once('.').unwrap();
        let forged = format!("{}A.{mac}", body);
        assert!(c.verify("ticket", &forged).is_err());
        assert_eq!(c.verify("ticket", "no-dot"), Err(CryptoError::Malformed));
    }
}
