//! Every error the proxy answers itself, and the one place they become HTTP answers.
//!
//! Bodies are Canvas-shaped (`{"errors":[{"message":..}]}`) so Canvas client libraries show the
//! message, plus a machine-readable `error` code that tools branch on.

use serde_json::{json, Map, Value};

use crate::http::Answer;
use crate::identity::CredentialError;
use crate::types::PlatformId;

/// Seconds a tool is asked to wait while the store is unreachable: a database restart or
/// fail-over takes seconds.
pub const STORE_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route matches this path")]
    UnknownRoute,
    #[error("{0}")]
    InvalidToolCredentials(#[from] CredentialError),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the request headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    #[error(
        "the user has not connected this tool to {platform} yet, or the connection was revoked"
    )]
    AuthorizationRequired {
        platform: PlatformId,
        authorize_url: String,
    },
    #[error("the LMS token endpoint is unavailable")]
    LmsUnavailable { retry_after_secs: u64 },
    /// The shared store is unreachable and the answer needs it (a refresh, a consent, a
    /// revocation, a user not in the cache).
    #[error("the proxy cannot reach its token store; try again shortly")]
    StoreUnavailable,
    #[error("the LMS could not be reached")]
    UpstreamUnavailable,
    #[error("the LMS did not answer in time")]
    UpstreamTimeout,
    #[error("internal error")]
    Internal,
}

impl ProxyError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownRoute => "unknown_route",
            Self::InvalidToolCredentials(_) => "invalid_tool_credentials",
            Self::Forbidden(_) => "forbidden",
            Self::BadRequest(_) => "invalid_request",
            Self::HeadersTooLarge(_) => "request_headers_too_large",
            Self::AuthorizationRequired { .. } => "authorization_required",
            Self::LmsUnavailable { .. } => "lms_unavailable",
            Self::StoreUnavailable => "store_unavailable",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::Internal => "internal_error",
        }
    }

    /// The proxy working as designed, not a fault: a user who must connect (again). Such a
    /// failed proxy attempt gets no error line from pingora; the access log has it.
    pub fn is_expected(&self) -> bool {
        matches!(self, Self::AuthorizationRequired { .. })
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownRoute => 404,
            Self::InvalidToolCredentials(_) | Self::AuthorizationRequired { .. } => 401,
            Self::Forbidden(_) => 403,
            Self::BadRequest(_) => 400,
            Self::HeadersTooLarge(_) => 431,
            Self::LmsUnavailable { .. } | Self::StoreUnavailable => 503,
            Self::UpstreamUnavailable => 502,
            Self::UpstreamTimeout => 504,
            Self::Internal => 500,
        }
    }

    /// The JSON answer for a tool.
    pub fn answer(&self) -> Answer {
        let mut body = Map::new();
        body.insert("errors".into(), json!([{ "message": self.to_string() }]));
        body.insert("error".into(), Value::from(self.code()));
        if let Self::AuthorizationRequired {
            platform,
            authorize_url,
        } = self
        {
            body.insert("platform".into(), Value::from(platform.as_str()));
            body.insert("authorize_url".into(), Value::from(authorize_url.as_str()));
        }
        let mut answer = Answer::json(self.status(), &Value::Object(body));
        if self.status() == 401 {
            answer = answer.with_header(
                "www-authenticate",
                format!("Bearer realm=\"lms-proxy\", error=\"{}\"", self.code()),
            );
        }
        match self {
            Self::LmsUnavailable { retry_after_secs } => {
                answer = answer.with_header("retry-after", retry_after_secs.to_string());
            }
            Self::StoreUnavailable => {
                answer = answer.with_header("retry-after", STORE_RETRY_AFTER_SECS.to_string());
            }
            _ => {}
        }
        answer
    }

    /// The answer for a browser navigation: the consent flow instead of a JSON error where
    /// there is one to start.
    pub fn answer_for_browser(&self) -> Answer {
        match self {
            Self::AuthorizationRequired { authorize_url, .. } => Answer::redirect(authorize_url),
            _ => self.answer(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(a: &Answer) -> Value {
        serde_json::from_slice(&a.body).unwrap()
    }

    #[test]
    fn authorization_required_carries_the_consent_url_and_www_authenticate() {
        let e = ProxyError::AuthorizationRequired {
            platform: PlatformId::new("canvas"),
            authorize_url: "https://p/oauth/start/canvas?ticket=t".into(),
        };
        let a = e.answer();
        assert_eq!(a.status, 401);
        let b = body(&a);
        assert_eq!(b["error"], "authorization_required");
        assert_eq!(b["authorize_url"], "https://p/oauth/start/canvas?ticket=t");
        assert_eq!(b["platform"], "canvas");
        assert!(b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("canvas"));
        assert!(a.headers.contains(&(
            "www-authenticate",
            "Bearer realm=\"lms-proxy\", error=\"authorization_required\"".into()
        )));
        let r = e.answer_for_browser();
        assert_eq!(r.status, 302);
    }

    #[test]
    fn lms_unavailable_has_retry_after() {
        let a = ProxyError::LmsUnavailable {
            retry_after_secs: 5,
        }
        .answer();
        assert_eq!(a.status, 503);
        assert!(a.headers.contains(&("retry-after", "5".into())));
        assert_eq!(body(&a)["error"], "lms_unavailable");
    }
}
