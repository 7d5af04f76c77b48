//! Blackboard Learn: OAuth under `/learn/api/public/v1/oauth2/`, HTTP Basic client
//! authentication, no PKCE by default (older Learn releases lack it), `offline` always asked
//! for (no refresh token without it), the user named in the token answer (`user_id`), no
//! revocation, a dead token is any 401 ("Bearer token is invalid"), and `paging.nextPage`
//! left as it is: it is root-relative, and clients append it to their base URL, which holds
//! the route prefix.

use url::Url;

use super::{under, ClientAuth, Endpoints, Provider};

#[derive(Debug)]
pub struct Blackboard;

impl Provider for Blackboard {
    fn kind(&self) -> &'static str {
        "blackboard"
    }

    fn endpoints(&self, base: &Url) -> Endpoints {
        Endpoints {
            authorize: under(base, "/learn/api/public/v1/oauth2/authorizationcode"),
            token: under(base, "/learn/api/public/v1/oauth2/token"),
            revoke: None,
        }
    }

    fn pkce_by_default(&self) -> bool {
        false
    }

    fn added_scopes(&self) -> &'static [&'static str] {
        &["offline"]
    }

    fn client_auth(&self) -> ClientAuth {
        ClientAuth::Basic
    }

    fn is_dead_token(&self, status: u16, _has_www_authenticate: bool) -> bool {
        status == 401
    }

    fn api_prefix(&self) -> Option<&'static [&'static str]> {
        Some(&["learn", "api"])
    }

    fn own_endpoints(&self) -> Option<&'static [&'static str]> {
        Some(&["learn", "api", "public", "v1", "oauth2"])
    }
}
