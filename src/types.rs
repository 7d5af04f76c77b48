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
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
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

/// The key under which one user's grant to one tool on one platform is stored.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
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
    fn secrets_are_redacted_in_debug() {
        let token = AccessToken::new("very-secret-value");
        assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }

    #[test]
    fn associated_data_is_unambiguous() {
        let a = TokenKey::new(PlatformId::new("ab"), ToolId::new("c"), UserKey::new("d"));
        let b = TokenKey::new(PlatformId::new("a"), ToolId::new("bc"), UserKey::new("d"));
        assert_ne!(a.associated_data(), b.associated_data());
    }
}
