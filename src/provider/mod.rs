//! What differs from one LMS to another, behind one trait, one file per kind. The rest of
//! the proxy asks the platform's provider and never matches on the kind: adding an LMS is a
//! new file here, not an edit in four places. docs/lms-behaviour.md has the facts.

mod blackboard;
mod brightspace;
mod canvas;
mod oauth2;

use url::Url;

use crate::percent::percent_decode;

/// How the proxy proves itself to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    Form,
    /// HTTP Basic `client_id:client_secret`.
    Basic,
}

/// How a grant is revoked at the LMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// `DELETE` on the revoke URL with the access token as bearer (Canvas).
    DeleteWithBearer,
    /// RFC 7009: `POST token=...` with client authentication.
    Rfc7009,
}

/// The LMS's who-am-I call: a path under `base_url` and the answer's field naming the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhoAmI {
    pub path: &'static str,
    pub field: &'static str,
}

/// An LMS's OAuth endpoints as its kind places them, before the config overrides any.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorize: Option<String>,
    pub token: Option<String>,
    pub revoke: Option<String>,
}

pub trait Provider: Send + Sync + std::fmt::Debug {
    /// The config's `kind`.
    fn kind(&self) -> &'static str;

    /// Where the kind's OAuth endpoints are, from `base_url`.
    fn endpoints(&self, base: &Url) -> Endpoints;

    /// Whether the config must name the endpoints itself (no defaults to take).
    fn needs_endpoints(&self) -> bool {
        false
    }

    /// Whether the kind may name an `issuer` whose metadata gives the endpoints, and a
    /// userinfo endpoint instead of a built-in who-am-I call (generic OAuth2).
    fn discovers(&self) -> bool {
        false
    }

    fn pkce_by_default(&self) -> bool {
        true
    }

    /// Scopes the proxy asks for whatever the config says (Blackboard's `offline`: without
    /// it there is no refresh token).
    fn added_scopes(&self) -> &'static [&'static str] {
        &[]
    }

    /// When the LMS grants nothing without scopes, an example for `check` to show.
    fn required_scopes_example(&self) -> Option<&'static str> {
        None
    }

    fn client_auth(&self) -> ClientAuth;

    /// How to revoke at the LMS when the config names a revoke URL.
    fn revocation(&self) -> Revocation {
        Revocation::Rfc7009
    }

    /// How to ask the LMS who a token belongs to, when the token answer does not say.
    fn whoami(&self) -> Option<WhoAmI> {
        None
    }

    /// Whether an API answer says the access token is dead (refresh and replay), as opposed
    /// to an answer about scopes or permissions to pass on.
    fn is_dead_token(&self, status: u16, has_www_authenticate: bool) -> bool {
        status == 401 && has_www_authenticate
    }

    /// Whether a token-endpoint error refuses the refresh token itself (the grant is gone).
    fn refuses_grant(&self, error: &str, _description: &str) -> bool {
        error == "invalid_grant"
    }

    /// The segments under which the kind's REST API lives: what a route without `allow`
    /// permits. `None`: no known prefix, everything.
    fn api_prefix(&self) -> Option<&'static [&'static str]>;

    /// The top-level field of the kind's JSON answers that holds the next page as an
    /// absolute URL on the LMS (Brightspace's `Next`), rewritten to the proxy. `None` for
    /// kinds that paginate in headers, or with paths clients resolve themselves.
    fn body_link_field(&self) -> Option<&'static str> {
        None
    }

    /// The segments of the LMS's own login and OAuth endpoints, never on a tool's path unless
    /// a route names the exact path.
    fn own_endpoints(&self) -> Option<&'static [&'static str]> {
        None
    }
}

/// Every kind the config takes, in the order `check` lists them.
pub const KINDS: [&dyn Provider; 4] = [
    &canvas::Canvas,
    &brightspace::Brightspace,
    &blackboard::Blackboard,
    &oauth2::OAuth2,
];

/// The provider for a config's `kind`.
pub fn for_kind(kind: &str) -> Option<&'static dyn Provider> {
    KINDS.iter().copied().find(|p| p.kind() == kind)
}

/// `base_url` (without a trailing slash) followed by `path`.
pub fn under(base: &Url, path: &str) -> Option<String> {
    let mut s = base.as_str().trim_end_matches('/').to_string();
    s.push_str(path);
    Some(s)
}

/// Whether `path` (after the route prefix) is one of the LMS's own endpoints. Compared
/// decoded and without regard to case, since the LMS may route `%6Cogin` or `LOGIN` the
/// same way.
pub fn is_own_endpoint(provider: &dyn Provider, path: &str) -> bool {
    let Some(prefix) = provider.own_endpoints() else {
        return false;
    };
    let decoded;
    let path = if path.contains('%') {
        decoded = percent_decode(path);
        decoded.as_str()
    } else {
        path
    };
    let mut segments = path.split(['/', '\\']).filter(|s| !s.is_empty());
    prefix
        .iter()
        .all(|p| segments.next().is_some_and(|s| s.eq_ignore_ascii_case(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> &'static dyn Provider {
        for_kind(name).unwrap()
    }

    #[test]
    fn canvas_login_is_its_own_endpoint_however_spelled() {
        for path in [
            "/login/oauth2/token",
            "/login",
            "/LOGIN/session_token",
            "/%6Cogin/session_token",
            "//login/oauth2/token",
            "/%4C%4F%47%49%4E/x",
        ] {
            assert!(is_own_endpoint(kind("canvas"), path), "{path}");
        }
        for path in ["/api/v1/login", "/loginx", "/api/v1/courses"] {
            assert!(!is_own_endpoint(kind("canvas"), path), "{path}");
        }
        assert!(is_own_endpoint(
            kind("blackboard"),
            "/learn/api/public/v1/oauth2/token"
        ));
        assert!(!is_own_endpoint(
            kind("blackboard"),
            "/learn/api/public/v1/courses"
        ));
        assert!(!is_own_endpoint(kind("oauth2"), "/login"));
    }

    #[test]
    fn dead_tokens_look_different_per_kind() {
        assert!(kind("canvas").is_dead_token(401, true));
        assert!(!kind("canvas").is_dead_token(401, false), "Canvas: scopes");
        assert!(!kind("canvas").is_dead_token(403, true));
        assert!(kind("brightspace").is_dead_token(401, false));
        assert!(kind("blackboard").is_dead_token(401, false));
        assert!(!kind("oauth2").is_dead_token(401, false));
    }

    #[test]
    fn refusals_of_the_grant_follow_each_lms() {
        assert!(kind("canvas").refuses_grant("invalid_request", "refresh_token not found"));
        assert!(kind("canvas").refuses_grant("invalid_grant", ""));
        assert!(!kind("brightspace").refuses_grant("invalid_request", "refresh_token not found"));
        assert!(kind("brightspace").refuses_grant("invalid_grant", ""));
    }

    #[test]
    fn default_endpoints_come_from_base_url() {
        let base = Url::parse("https://lms.example.edu/").unwrap();
        let canvas = kind("canvas").endpoints(&base);
        assert_eq!(
            canvas.token.as_deref(),
            Some("https://lms.example.edu/login/oauth2/token")
        );
        let blackboard = kind("blackboard").endpoints(&base);
        assert_eq!(
            blackboard.authorize.as_deref(),
            Some("https://lms.example.edu/learn/api/public/v1/oauth2/authorizationcode")
        );
        assert_eq!(blackboard.revoke, None);
        assert_eq!(kind("oauth2").endpoints(&base), Endpoints::default());
        assert!(kind("oauth2").needs_endpoints());
        assert!(for_kind("moodle").is_none());
    }
}
