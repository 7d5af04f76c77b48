//! The consent in progress, kept in the browser: the `state` parameter is 256 random bits,
//! and a cookie named after it carries the flow's details sealed under the master key with
//! the state as associated data. The proxy holds nothing until the callback, so several
//! instances need no shared session store, and two consents in one browser use two cookies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::crypto::{sha256, Crypto};
use crate::types::{PlatformId, ToolId, UserKey};

/// Ten minutes, like the tickets it starts from.
pub const STATE_LIFETIME_SECS: i64 = 600;
const COOKIE_PREFIX: &str = "lmsp_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub platform: PlatformId,
    pub tool: ToolId,
    pub user: UserKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lms_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
    /// The PKCE code verifier, when the platform uses PKCE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<String>,
    pub exp: i64,
}

/// One cookie per consent in progress, named after (a hash of) its state.
pub fn cookie_name(state: &str) -> String {
    let digest = sha256(state.as_bytes());
    format!("{COOKIE_PREFIX}{}", hex::encode(&digest[..8]))
}

pub fn seal(crypto: &Crypto, state: &str, flow: &Flow) -> String {
    let json = serde_json::to_vec(flow).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(crypto.seal(&json, state.as_bytes()))
}

/// `None` when the cookie was not made by this proxy for this state.
pub fn open(crypto: &Crypto, state: &str, cookie_value: &str) -> Option<Flow> {
    let sealed = URL_SAFE_NO_PAD.decode(cookie_value).ok()?;
    let json = crypto.open(&sealed, state.as_bytes()).ok()?;
    serde_json::from_slice(&json).ok()
}

/// `Set-Cookie` for a new flow: HttpOnly, SameSite=Lax (the LMS's redirect back is a
/// top-level GET), Secure on https, and only sent to the callback path.
pub fn set_cookie(name: &str, value: &str, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/oauth/callback/; Max-Age={STATE_LIFETIME_SECS}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie(name: &str, secure: bool) -> String {
    format!(
        "{name}=; Path=/oauth/callback/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Finds one cookie's value in a `Cookie` header.
pub fn find_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// PKCE S256: base64url(SHA-256(verifier)).
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MasterKey;

    fn flow() -> Flow {
        Flow {
            platform: PlatformId::new("canvas"),
            tool: ToolId::new("quiz"),
            user: UserKey::new("u"),
            lms_user_id: Some("42".into()),
            return_to: None,
            verifier: Some("v".into()),
            exp: 100,
        }
    }

    #[test]
    fn a_cookie_opens_only_with_its_own_state() {
        let c = Crypto::new(&MasterKey([9; 32]));
        let value = seal(&c, "state-a", &flow());
        assert_eq!(open(&c, "state-a", &value), Some(flow()));
        assert_eq!(open(&c, "state-b", &value), None);
        assert_eq!(open(&c, "state-a", "garbage"), None);
        assert_ne!(cookie_name("state-a"), cookie_name("state-b"));
    }

    #[test]
    fn cookie_parsing_and_attributes() {
        assert_eq!(find_cookie("a=1; lmsp_x=abc; b=2", "lmsp_x"), Some("abc"));
        assert_eq!(find_cookie("a=1", "lmsp_x"), None);
        let set = set_cookie("lmsp_x", "v", true);
        for attr in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Max-Age=600",
            "Path=/oauth/callback/",
        ] {
            assert!(set.contains(attr), "{set}");
        }
        assert!(!set_cookie("n", "v", false).contains("Secure"));
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
