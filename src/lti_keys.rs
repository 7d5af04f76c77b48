//! The proxy's LTI signing keys: RSA keys from PEM files (2048 bits or more), the first of
//! which signs client assertions while all are published at `/.well-known/jwks.json`, so a
//! new key can be put first and the old one kept until the tokens it got have expired.
//!
//! Signing is ring's (constant-time RSA, already the TLS stack's); the `kid` is the key's
//! RFC 7638 JWK thumbprint, so it is the same on every instance and after every restart
//! without being configured.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RsaPublicKeyComponents, RSA_PKCS1_SHA256};
use serde_json::{json, Value};

/// NIST's floor for RSA; Canvas takes nothing smaller either.
pub const MIN_BITS: usize = 2048;

pub struct SigningKey {
    pair: RsaKeyPair,
    kid: String,
    /// Base64url big-endian modulus and exponent, as a JWK writes them.
    n: String,
    e: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A private key from PEM text, PKCS#8 or PKCS#1 (what `openssl genrsa` and
    /// `lms-proxy keys new` write).
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, String> {
        let key = rustls_pemfile::private_key(&mut &pem[..])
            .map_err(|e| format!("not a PEM private key: {e}"))?
            .ok_or("no private key in the file (a public key or certificate is not enough)")?;
        let pair = match &key {
            rustls::pki_types::PrivateKeyDer::Pkcs8(der) => {
                RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            }
            rustls::pki_types::PrivateKeyDer::Pkcs1(der) => {
                RsaKeyPair::from_der(der.secret_pkcs1_der())
            }
            _ => return Err("not an RSA key (LTI assertions are signed RS256)".into()),
        }
        .map_err(|e| match e.to_string().as_str() {
            "TooSmall" => format!("the key is smaller than {MIN_BITS} bits"),
            "InvalidEncoding" | "WrongAlgorithm" => {
                "not an RSA key (LTI assertions are signed RS256)".to_string()
            }
            other => format!("unusable RSA key: {other}"),
        })?;
        let bits = pair.public().modulus_len() * 8;
        if bits < MIN_BITS {
            return Err(format!(
                "the key has {bits} bits; at least {MIN_BITS} are needed"
            ));
        }
        let public: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
        let n = URL_SAFE_NO_PAD.encode(&public.n);
        let e = URL_SAFE_NO_PAD.encode(&public.e);
        let kid = thumbprint(&n, &e);
        Ok(SigningKey { pair, kid, n, e })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> Value {
        json!({"kty": "RSA", "n": self.n, "e": self.e, "kid": self.kid, "alg": "RS256", "use": "sig"})
    }
}

/// RFC 7638: SHA-256 over the required members in lexical order, no whitespace.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()))
}

/// The configured keys, in the config's order: the first signs.
#[derive(Debug)]
pub struct SigningKeys {
    keys: Vec<SigningKey>,
}

impl SigningKeys {
    /// `None` for an empty list: there is nothing to sign with.
    pub fn new(keys: Vec<SigningKey>) -> Option<SigningKeys> {
        (!keys.is_empty()).then_some(SigningKeys { keys })
    }

    pub fn signing_kid(&self) -> &str {
        self.keys[0].kid()
    }

    /// `{"keys": [...]}`: every key, the signing one first.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(SigningKey::jwk).collect::<Vec<_>>()})
    }

    /// A compact RS256 JWT of `claims`, headed with the signing key's `kid`.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let key = &self.keys[0];
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": key.kid});
        let mut jwt = URL_SAFE_NO_PAD.encode(header.to_string());
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0u8; key.pair.public().modulus_len()];
        key.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                jwt.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "RSA signing failed".to_string())?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jwt)
    }
}

/// A new RSA key as PKCS#8 PEM, for `lms-proxy keys new`.
pub fn generate_pem(bits: usize) -> Result<String, String> {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
        .map_err(|e| format!("cannot make an RSA key: {e}"))?;
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| format!("cannot encode the key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7638_example_thumbprint() {
        // RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_new_key_signs_what_its_published_half_verifies() {
        let pem = generate_pem(2048).unwrap();
        let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
        let jwk = key.jwk();
        let kid = key.kid().to_string();
        let keys = SigningKeys::new(vec![key]).unwrap();
        let jwt = keys
            .sign(&json!({"sub": "x", "exp": i64::MAX / 2}))
            .unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
        let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(&jwt, &decoding, &validation).unwrap();
        assert_eq!(claims.claims["sub"], "x");
        assert_eq!(keys.jwks()["keys"][0]["kid"], kid.as_str());
    }

    #[test]
    fn small_or_non_rsa_keys_are_refused() {
        let small = generate_pem(1024).unwrap();
        let e = SigningKey::from_pem(small.as_bytes()).unwrap_err();
        assert!(e.contains("2048"), "{e}");
        let e =
            SigningKey::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .unwrap_err();
        assert!(e.contains("no private key"), "{e}");
    }
}
