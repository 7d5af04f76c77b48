//! Who is calling: the tool (by its JWT or API key) and the user it acts for.
//!
//! Two credential forms share one answer, [`Identity`]. Verified JWTs are remembered by the
//! SHA-256 of the token until they expire ([`verified`]), so a tool that reuses a JWT pays for
//! the signature check once.

mod verified;

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::config::{Config, Tool};
use crate::crypto::sha256;
use crate::types::UserKey;
use verified::VerifiedCache;

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 30;
/// Longest `Authorization` header we look at; real JWTs are well under 2 KiB.
const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;
/// LTI's `sub` is at most 255 characters; so is a user key.
const MAX_USER_KEY_BYTES: usize = 255;
/// Names the user for an API key. A constant name: looking one up by `&str` parses it first.
pub const X_LMS_USER: http::HeaderName = http::HeaderName::from_static("x-lms-user");

#[derive(Debug, Clone)]
pub struct Identity {
    pub tool: Arc<Tool>,
    pub user: UserKey,
    pub lms_user_id: Option<String>,
    /// True for a JWT: the browser-facing flows can only be started with one.
    pub via_jwt: bool,
    /// Which of the proxy's origins the credential names, bit `i` for `Config::origins()[i]`
    /// (bit 0 is `public_url`). An API key names them all.
    pub origins: Origins,
}

/// An authenticated tool, with the user it names if it names one. Requests for a user's
/// grant need the user ([`Caller::identity`]); those for an LTI service token do not.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tool: Arc<Tool>,
    pub user: Option<UserKey>,
    pub lms_user_id: Option<String>,
    pub via_jwt: bool,
    pub origins: Origins,
}

impl Caller {
    /// The caller as a user of the tool, or the error for a credential that names none.
    pub fn identity(self) -> Result<Identity, CredentialError> {
        let Some(user) = self.user else {
            return Err(if self.via_jwt {
                CredentialError::MissingClaim("sub".into())
            } else {
                CredentialError::MissingUserHeader
            });
        };
        Ok(Identity {
            tool: self.tool,
            user,
            lms_user_id: self.lms_user_id,
            via_jwt: self.via_jwt,
            origins: self.origins,
        })
    }
}

/// A set of the proxy's origins, as bits: checked on every request, so no strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origins(pub u64);

impl Origins {
    pub const PUBLIC_URL: Origins = Origins(1);
    pub const ALL: Origins = Origins(u64::MAX);

    pub fn one(index: usize) -> Origins {
        Origins(1u64.checked_shl(index as u32).unwrap_or(0))
    }

    /// Whether a credential for these origins may be used on a route served at `origin`:
    /// that origin, or `public_url`, which every route also answers on.
    pub fn allow(self, origin: Origins) -> bool {
        self.0 & (Self::PUBLIC_URL.0 | origin.0) != 0
    }
}

/// What a tool is told for every JWT that does not verify, whatever the reason: one message,
/// so an unknown `iss` cannot be told from a known one with a bad signature (tool ids cannot
/// be probed). The reason itself is logged at debug level ([`CredentialError::detail`]).
const JWT_REFUSED: &str = "the tool JWT was refused: unknown iss, bad signature, or invalid claims (exp, nbf, iat, aud, sub, lifetime)";

/// Why a credential was refused. The text is shown to the tool; it never repeats the credential.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("no credential: send Authorization: Bearer <tool JWT>, or an API key with X-LMS-User")]
    Missing,
    #[error("the Authorization header is not \"Bearer <credential>\"")]
    NotBearer,
    #[error("the Authorization header is longer than {MAX_AUTHORIZATION_BYTES} bytes")]
    TooLong,
    #[error("{JWT_REFUSED}")]
    Malformed,
    #[error("{JWT_REFUSED}")]
    UnknownTool,
    #[error("{JWT_REFUSED}")]
    BadSignature,
    #[error("{JWT_REFUSED}")]
    Expired,
    #[error("{JWT_REFUSED}")]
    NotYetValid,
    #[error("{JWT_REFUSED}")]
    IssuedInTheFuture,
    #[error("{JWT_REFUSED}")]
    WrongAudience,
    #[error("{JWT_REFUSED}")]
    MissingClaim(String),
    #[error("{JWT_REFUSED}")]
    TooLongLived(u64),
    #[error("{JWT_REFUSED}")]
    BadSubject,
    #[error("unknown API key")]
    UnknownApiKey,
    #[error("an API key needs an X-LMS-User header naming the user")]
    MissingUserHeader,
    #[error("X-LMS-User must be 1 to 255 visible ASCII characters")]
    BadUserHeader,
}

impl CredentialError {
    /// The precise reason, for the proxy's own debug log; never sent to the tool.
    pub fn detail(&self) -> String {
        match self {
            Self::Malformed => "malformed JWT".into(),
            Self::UnknownTool => "unknown iss".into(),
            Self::BadSignature => "bad signature or algorithm".into(),
            Self::Expired => "expired".into(),
            Self::NotYetValid => "nbf in the future".into(),
            Self::IssuedInTheFuture => "iat in the future".into(),
            Self::WrongAudience => "aud is not this proxy's public_url".into(),
            Self::MissingClaim(claim) => format!("claim {claim} missing"),
            Self::TooLongLived(max) => format!("exp is more than {max} s away"),
            Self::BadSubject => "sub is not 1-255 visible ASCII characters".into(),
            other => other.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Issuer {
    iss: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    aud: Option<Audience>,
    sub: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    lms_user_id: Option<LmsUserId>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LmsUserId {
    Number(i64),
    Text(String),
}

impl LmsUserId {
    fn into_string(self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Text(s) => s,
        }
    }
}

struct Verified {
    caller: Caller,
    exp: i64,
}

/// Verified JWTs remembered at most; a tool's JWTs usually live minutes.
const VERIFIED_CAPACITY: usize = 100_000;

pub struct ToolAuth {
    tools: HashMap<String, Arc<Tool>>,
    api_keys: Vec<([u8; 32], Arc<Tool>)>,
    /// `Config::origins()`: the `aud` values a tool JWT may carry, in bit order.
    audiences: Vec<String>,
    max_ttl_secs: u64,
    verified: VerifiedCache<Caller>,
}

impl ToolAuth {
    pub fn new(config: &Config) -> Self {
        let tools = config
            .tools
            .iter()
            .map(|t| (t.id.as_str().to_string(), Arc::clone(t)))
            .collect();
        let api_keys = config
            .tools
            .iter()
            .flat_map(|t| t.api_key_hashes.iter().map(|h| (*h, Arc::clone(t))))
            .collect();
        Self {
            tools,
            api_keys,
            audiences: config.origins(),
            max_ttl_secs: config.server.max_tool_token_ttl.as_secs(),
            verified: VerifiedCache::new(VERIFIED_CAPACITY),
        }
    }

    /// Authenticates a request from its `Authorization` and `X-LMS-User` header values: a
    /// tool and one of its users.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        x_lms_user: Option<&[u8]>,
        now: i64,
    ) -> Result<Identity, CredentialError> {
        self.caller(authorization, x_lms_user, now)?.identity()
    }

    /// A tool, with or without a user: the credential checked exactly as for a user, only
    /// the user may be absent.
    pub fn caller(
        &self,
        authorization: Option<&[u8]>,
        x_lms_user: Option<&[u8]>,
        now: i64,
    ) -> Result<Caller, CredentialError> {
        let credential = bearer(authorization.ok_or(CredentialError::Missing)?)?;
        if looks_like_jwt(credential) {
            self.verify_jwt_caller(credential, now)
        } else {
            self.check_api_key(credential, x_lms_user)
        }
    }

    /// Authenticates from a request's headers: `Authorization`, and `X-LMS-User` for API keys.
    pub fn authenticate_headers(
        &self,
        headers: &http::HeaderMap,
        now: i64,
    ) -> Result<Identity, CredentialError> {
        self.caller_from_headers(headers, now)?.identity()
    }

    pub fn caller_from_headers(
        &self,
        headers: &http::HeaderMap,
        now: i64,
    ) -> Result<Caller, CredentialError> {
        self.caller(
            headers
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
            headers.get(X_LMS_USER).map(|v| v.as_bytes()),
            now,
        )
    }

    /// Verifies a tool JWT on its own (the browser-facing `/oauth/start?token=` uses it too).
    pub fn verify_jwt(&self, jwt: &str, now: i64) -> Result<Identity, CredentialError> {
        self.verify_jwt_caller(jwt, now)?.identity()
    }

    fn verify_jwt_caller(&self, jwt: &str, now: i64) -> Result<Caller, CredentialError> {
        let digest = sha256(jwt.as_bytes());
        if let Some(caller) = self.verified.get(&digest, now) {
            return Ok(caller);
        }
        // Also the path of a remembered JWT that has just expired: checked again, refused.
        let verified = self.verify_jwt_uncached(jwt, now)?;
        let until = verified.exp.saturating_add(LEEWAY_SECS);
        self.verified
            .insert(digest, verified.caller.clone(), until, now);
        Ok(verified.caller)
    }

    fn verify_jwt_uncached(&self, jwt: &str, now: i64) -> Result<Verified, CredentialError> {
        let issuer = unverified_issuer(jwt)?;
        let tool = self
            .tools
            .get(&issuer)
            .ok_or(CredentialError::UnknownTool)?;
        let key = tool.jwt_key.as_ref().ok_or(CredentialError::UnknownTool)?;
        let mut validation = Validation::new_for_family(key.decoding.family());
        // Time claims are checked below against the caller's clock, so tests can fix it.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(jwt, &key.decoding, &validation)
            .map_err(|e| jwt_error(e.kind()))?;
        let claims = data.claims;
        let exp = claims
            .exp
            .ok_or_else(|| CredentialError::MissingClaim("exp".into()))?;
        if exp.saturating_add(LEEWAY_SECS) <= now {
            return Err(CredentialError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS))
        {
            return Err(CredentialError::NotYetValid);
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(LEEWAY_SECS))
        {
            return Err(CredentialError::IssuedInTheFuture);
        }
        // Measured from now, whatever `iat` says: a future `iat` must not stretch the cap.
        let remaining = exp.saturating_sub(now).saturating_sub(LEEWAY_SECS);
        if remaining > self.max_ttl_secs as i64 {
            return Err(CredentialError::TooLongLived(self.max_ttl_secs));
        }
        // A JWT without `sub` is good only where no user is needed (service-token routes).
        let user = match claims.sub {
            Some(sub) => Some(user_key(sub.as_bytes()).ok_or(CredentialError::BadSubject)?),
            None => None,
        };
        let origins = self.origins_named(claims.aud.as_ref());
        Ok(Verified {
            caller: Caller {
                tool: Arc::clone(tool),
                user,
                lms_user_id: claims.lms_user_id.map(LmsUserId::into_string),
                via_jwt: true,
                origins,
            },
            exp,
        })
    }

    fn origins_named(&self, aud: Option<&Audience>) -> Origins {
        let names = |a: &str| -> u64 {
            self.audiences
                .iter()
                .position(|o| o == a)
                .map_or(0, |i| Origins::one(i).0)
        };
        Origins(match aud {
            Some(Audience::One(a)) => names(a),
            Some(Audience::Many(all)) => all.iter().fold(0, |bits, a| bits | names(a)),
            None => 0,
        })
    }

    fn check_api_key(
        &self,
        key: &str,
        x_lms_user: Option<&[u8]>,
    ) -> Result<Caller, CredentialError> {
        let digest = sha256(key.as_bytes());
        // Every configured key is compared, in constant time, whatever matches first.
        let mut found: Option<&Arc<Tool>> = None;
        for (hash, tool) in &self.api_keys {
            if bool::from(hash.ct_eq(&digest)) {
                found = Some(tool);
            }
        }
        let tool = found.ok_or(CredentialError::UnknownApiKey)?;
        let user = match x_lms_user {
            Some(header) => Some(user_key(header).ok_or(CredentialError::BadUserHeader)?),
            None => None,
        };
        Ok(Caller {
            tool: Arc::clone(tool),
            user,
            lms_user_id: None,
            via_jwt: false,
            origins: Origins::ALL,
        })
    }
}

fn bearer(header: &[u8]) -> Result<&str, CredentialError> {
    if header.len() > MAX_AUTHORIZATION_BYTES {
        return Err(CredentialError::TooLong);
    }
    let text = std::str::from_utf8(header).map_err(|_| CredentialError::NotBearer)?;
    let (scheme, credential) = text.split_once(' ').ok_or(CredentialError::NotBearer)?;
    let credential = credential.trim();
    // A fold without early exit: the compiler checks many bytes at once (JWTs are long).
    let visible = credential
        .bytes()
        .fold(true, |all, b| all & b.is_ascii_graphic());
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() || !visible {
        return Err(CredentialError::NotBearer);
    }
    Ok(credential)
}

fn looks_like_jwt(credential: &str) -> bool {
    credential.bytes().filter(|&b| b == b'.').count() == 2
}

/// Reads `iss` before verifying, only to pick the key; nothing else is trusted until verified.
fn unverified_issuer(jwt: &str) -> Result<String, CredentialError> {
    let payload = jwt.split('.').nth(1).ok_or(CredentialError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| CredentialError::Malformed)?;
    let issuer: Issuer = serde_json::from_slice(&bytes).map_err(|_| CredentialError::Malformed)?;
    issuer
        .iss
        .ok_or_else(|| CredentialError::MissingClaim("iss".into()))
}

fn jwt_error(kind: &ErrorKind) -> CredentialError {
    match kind {
        ErrorKind::ExpiredSignature => CredentialError::Expired,
        ErrorKind::ImmatureSignature => CredentialError::NotYetValid,
        ErrorKind::InvalidAudience => CredentialError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => CredentialError::MissingClaim(claim.clone()),
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => CredentialError::BadSignature,
        _ => CredentialError::Malformed,
    }
}

/// A user key is 1 to 255 visible ASCII characters: safe in logs, headers and URLs.
pub fn user_key(bytes: &[u8]) -> Option<UserKey> {
    if bytes.is_empty()
        || bytes.len() > MAX_USER_KEY_BYTES
        || !bytes.iter().all(|b| b.is_ascii_graphic())
    {
        return None;
    }
    std::str::from_utf8(bytes).ok().map(UserKey::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ToolJwtKey;
    use crate::types::{PlatformId, Secret, ToolId};
    use jsonwebtoken::{encode, DecodingKey, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const AUD: &str = "https://proxy.example.edu";
    const NOW: i64 = 1_800_000_000;

    fn auth() -> ToolAuth {
        let tool = Arc::new(Tool {
            id: ToolId::new("quiz"),
            jwt_key: Some(ToolJwtKey {
                decoding: DecodingKey::from_secret(SECRET.as_bytes()),
                secret: Some(Secret::new(SECRET)),
            }),
            api_key_hashes: vec![sha256(b"job-key")],
            platforms: vec![PlatformId::new("canvas")],
            return_to: vec![],
            export_tokens: false,
        });
        ToolAuth {
            tools: HashMap::from([("quiz".to_string(), Arc::clone(&tool))]),
            api_keys: vec![(sha256(b"job-key"), tool)],
            audiences: vec![AUD.into()],
            max_ttl_secs: 86_400,
            verified: VerifiedCache::new(10),
        }
    }

    fn jwt(claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn check(token: &str) -> Result<Identity, CredentialError> {
        auth().authenticate(Some(format!("Bearer {token}").as_bytes()), None, NOW)
    }

    #[test]
    fn accepts_a_good_jwt_with_numeric_or_string_lms_user_id() {
        let id = check(&jwt(
            json!({"iss":"quiz","sub":"u1","aud":AUD,"exp":NOW+60,"iat":NOW,"lms_user_id":42}),
        ))
        .unwrap();
        assert_eq!((id.tool.id.as_str(), id.user.as_str()), ("quiz", "u1"));
        assert_eq!(id.lms_user_id.as_deref(), Some("42"));
        let id = check(&jwt(
            json!({"iss":"quiz","sub":"u1","aud":[AUD,"other"],"exp":NOW+60,"lms_user_id":"abc"}),
        ))
        .unwrap();
        assert_eq!(id.lms_user_id.as_deref(), Some("abc"));
    }

    #[test]
    fn refuses_bad_jwts_with_a_reason() {
        let cases = [
            (
                json!({"iss":"quiz","sub":"u","aud":AUD,"exp":NOW-31}),
                CredentialError::Expired,
            ),
            (
                json!({"iss":"quiz","sub":"u","aud":"https://evil","exp":NOW+60}),
                CredentialError::WrongAudience,
            ),
            (
                json!({"iss":"nope","sub":"u","aud":AUD,"exp":NOW+60}),
                CredentialError::UnknownTool,
            ),
            (
                json!({"iss":"quiz","sub":"u","aud":AUD}),
                CredentialError::MissingClaim("exp".into()),
            ),
            (
                json!({"iss":"quiz","sub":"u","aud":AUD,"exp":NOW+60,"nbf":NOW+100}),
                CredentialError::NotYetValid,
            ),
            (
                json!({"iss":"quiz","sub":"u","aud":AUD,"exp":NOW+90_000,"iat":NOW}),
                CredentialError::TooLongLived(86_400),
            ),
            (
                json!({"iss":"quiz","sub":"u","aud":AUD,"exp":NOW+90_000}),
                CredentialError::TooLongLived(86_400),
            ),
            (
                // A far future exp with an iat just before it: the lifetime counts from now.
                json!({"iss":"quiz","sub":"u","aud":AUD,"exp":NOW+315_360_000,"iat":NOW+315_360_000-60}),
                CredentialError::IssuedInTheFuture,
            ),
            (
                json!({"iss":"quiz","sub":"u","aud":AUD,"exp":NOW+90_000,"iat":NOW+20}),
                CredentialError::TooLongLived(86_400),
            ),
            (
                json!({"iss":"quiz","aud":AUD,"exp":NOW+60}),
                CredentialError::MissingClaim("sub".into()),
            ),
            (
                json!({"iss":"quiz","sub":"bad user","aud":AUD,"exp":NOW+60}),
                CredentialError::BadSubject,
            ),
        ];
        for (claims, expected) in cases {
            let err = check(&jwt(claims.clone())).unwrap_err();
            assert_eq!(err, expected, "{claims}");
        }
    }

    #[test]
    fn unknown_issuers_and_bad_signatures_read_the_same() {
        let unknown = check(&jwt(json!({"iss":"nope","sub":"u","aud":AUD,"exp":NOW+60})));
        let forged = encode(
            &Header::default(),
            &json!({"iss":"quiz","sub":"u","aud":AUD,"exp":NOW+60}),
            &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
        )
        .unwrap();
        let (unknown, forged) = (unknown.unwrap_err(), check(&forged).unwrap_err());
        assert_ne!(unknown, forged);
        assert_eq!(unknown.to_string(), forged.to_string());
        assert_ne!(unknown.detail(), forged.detail());
    }

    #[test]
    fn refuses_forged_and_malformed_tokens() {
        let good = jwt(json!({"iss":"quiz","sub":"u","aud":AUD,"exp":NOW+60}));
        let forged = encode(
            &Header::default(),
            &json!({"iss":"quiz","sub":"u","aud":AUD,"exp":NOW+60}),
            &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
        )
        .unwrap();
        assert_eq!(check(&forged).unwrap_err(), CredentialError::BadSignature);
        let (head, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let swapped = format!(
            "{head}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(br#"{"iss":"quiz","sub":"admin","aud":"https://proxy.example.edu","exp":1900000000}"#)
        );
        assert_eq!(check(&swapped).unwrap_err(), CredentialError::BadSignature);
        assert_eq!(check("a.b.c").unwrap_err(), CredentialError::Malformed);
        let none_alg = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(
                br#"{"iss":"quiz","sub":"u","aud":"https://proxy.example.edu","exp":1900000000}"#
            )
        );
        assert!(check(&none_alg).is_err());
    }

    #[test]
    fn cached_jwt_still_expires() {
        let a = auth();
        let token = jwt(json!({"iss":"quiz","sub":"u","aud":AUD,"exp":NOW+10}));
        let header = format!("Bearer {token}");
        assert!(a.authenticate(Some(header.as_bytes()), None, NOW).is_ok());
        assert!(a
            .authenticate(Some(header.as_bytes()), None, NOW + 5)
            .is_ok());
        assert_eq!(
            a.authenticate(Some(header.as_bytes()), None, NOW + 41)
                .unwrap_err(),
            CredentialError::Expired
        );
    }

    #[test]
    fn api_keys_need_a_user_header() {
        let a = auth();
        let id = a
            .authenticate(Some(b"Bearer job-key"), Some(b"user-7"), NOW)
            .unwrap();
        assert_eq!(
            (id.tool.id.as_str(), id.user.as_str(), id.via_jwt),
            ("quiz", "user-7", false)
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer job-key"), None, NOW)
                .unwrap_err(),
            CredentialError::MissingUserHeader
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer job-key"), Some(b"a\tb"), NOW)
                .unwrap_err(),
            CredentialError::BadUserHeader
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer other"), Some(b"u"), NOW)
                .unwrap_err(),
            CredentialError::UnknownApiKey
        );
    }

    #[test]
    fn refuses_malformed_headers() {
        let a = auth();
        assert_eq!(
            a.authenticate(None, None, NOW).unwrap_err(),
            CredentialError::Missing
        );
        assert_eq!(
            a.authenticate(Some(b"Basic abc"), None, NOW).unwrap_err(),
            CredentialError::NotBearer
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer "), None, NOW).unwrap_err(),
            CredentialError::NotBearer
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer \xff\xfe"), None, NOW)
                .unwrap_err(),
            CredentialError::NotBearer
        );
        let long = format!("Bearer {}", "a".repeat(9000));
        assert_eq!(
            a.authenticate(Some(long.as_bytes()), None, NOW)
                .unwrap_err(),
            CredentialError::TooLong
        );
    }
}
