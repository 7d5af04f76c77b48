//! Small types that carry meaning through the program.
//!
//! Secrets (`AccessToken`, `RefreshToken`, `Secret`) have a `Debug` that redacts, so a stray
//! `{:?}` in a log line or an error can never print one.

use std::fmt;
use std::sync::Arc;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(value: impl Into<Arc<str>>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            /// Padded, so `{:<16}` lines up table columns.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }

        /// As a plain string, so sealed tickets and flows read the same as before they
        /// were typed.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(Self::new)
            }
        }
    };
}

id_type!(
    /// A platform's id from the config (`[[platforms]] id`).
    PlatformId
);
id_type!(
    /// A tool's id from the config (`[[tools]] id`), also the `iss` of its JWTs.
    ToolId
);
id_type!(
    /// The tool's stable id for one LMS user (`sub` of a tool JWT, or `X-LMS-User`).
    UserKey
);

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself; every call site is a place where it leaves our hands.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_type!(
    /// An LMS access token.
    AccessToken
);
secret_type!(
    /// An LMS refresh token.
    RefreshToken
);
secret_type!(
    /// Any other secret read from the environment (client secrets, tool secrets).
    Secret
);

/// Longest LMS token the proxy accepts; real ones are well under 2 KiB.
pub const MAX_TOKEN_LEN: usize = 4096;

/// RFC 6750's `b64token`: `A-Z a-z 0-9 - . _ ~ + /`, then `=` padding, 1 to
/// [`MAX_TOKEN_LEN`] characters. Only such a token can be placed in an `Authorization`
/// header as the LMS expects; anything else (a newline, a space, a control character) is
/// refused where it enters, so it can never displace or split a header on the way out.
pub fn is_token_shape(token: &str) -> bool {
    let bytes = token.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_TOKEN_LEN {
        return false;
    }
    let body_len = bytes.len() - bytes.iter().rev().take_while(|&&b| b == b'=').count();
    body_len > 0
        && bytes[..body_len].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// An LMS user id as the proxy keeps it: 1 to 255 visible ASCII characters, safe in logs,
/// JSON and comparisons.
pub fn is_lms_user_id_shape(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The tool id under which LTI service tokens are stored. Configured tool ids are
/// `[a-z0-9-]+`, so no tool's grants can ever share these rows.
pub const SERVICE_TOOL: &str = "@lti";

/// The scopes of an LTI service token, order and repeats aside: routes that list the same
/// scopes share one token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeSet {
    scopes: Arc<str>,
    /// Where the token is stored, worked out once: a digest of the set, since a user key holds
    /// at most 255 characters and scope URLs are long.
    user: UserKey,
}

impl ScopeSet {
    pub fn new<S: AsRef<str>>(scopes: &[S]) -> ScopeSet {
        use sha2::Digest;
        let mut sorted: Vec<&str> = scopes.iter().map(AsRef::as_ref).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let scopes = sorted.join(" ");
        let digest = sha2::Sha256::digest(scopes.as_bytes());
        let user = UserKey::new(format!("scopes-{}", hex::encode(&digest[..16])));
        ScopeSet {
            scopes: scopes.into(),
            user,
        }
    }

    /// Space-separated, as the token request's `scope` takes them.
    pub fn as_str(&self) -> &str {
        &self.scopes
    }

    /// Where the platform's token for these scopes is stored.
    pub fn key(&self, platform: &PlatformId) -> TokenKey {
        TokenKey::new(
            platform.clone(),
            ToolId::new(SERVICE_TOOL),
            self.user.clone(),
        )
    }
}

/// The key under which one user's grant to one tool on one platform is stored.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TokenKey {
    pub platform: PlatformId,
    pub tool: ToolId,
    pub user: UserKey,
}

impl TokenKey {
    pub fn new(platform: PlatformId, tool: ToolId, user: UserKey) -> Self {
        Self {
            platform,
            tool,
            user,
        }
    }

    /// Associated data for sealing: binds a sealed row to its key so rows cannot be swapped.
    /// Length-prefixed so that no two different keys give the same bytes.
    pub fn associated_data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        for part in [
            self.platform.as_str(),
            self.tool.as_str(),
            self.user.as_str(),
        ] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_honour_width_in_tables() {
        assert_eq!(format!("{:<6}|", PlatformId::new("ab")), "ab    |");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let token = AccessToken::new("very-secret-value");
        assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }

    #[test]
    fn token_shape_is_rfc6750_b64token() {
        for good in ["a", "sandbox~abc.DEF-1_2+3/4", "abc==", "1~xyz"] {
            assert!(is_token_shape(good), "{good}");
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        for bad in [
            "",
            "=",
            "a b",
            "EVIL\nX",
            "a\r\nX-Evil: 1",
            "a=b",
            "tab\t",
            "é",
            long.as_str(),
        ] {
            assert!(!is_token_shape(bad), "{bad:?}");
        }
        assert!(is_token_shape(&"a".repeat(MAX_TOKEN_LEN)));
    }

    #[test]
    fn associated_data_is_unambiguous() {
        let a = TokenKey::new(PlatformId::new("ab"), ToolId::new("c"), UserKey::new("d"));
        let b = TokenKey::new(PlatformId::new("a"), ToolId::new("bc"), UserKey::new("d"));
        assert_ne!(a.associated_data(), b.associated_data());
    }
}
