//! Brightspace (D2L): OAuth on one host for every tenant, HTTP Basic client authentication,
//! single-use refresh tokens (every refresh answer carries the next one), who-am-I at
//! `/d2l/api/lp/1.0/users/whoami`, and a dead token is any 401 (no `WWW-Authenticate`).

use url::Url;

use super::{ClientAuth, Endpoints, Provider, WhoAmI};

#[derive(Debug)]
pub struct Brightspace;

impl Provider for Brightspace {
    fn kind(&self) -> &'static str {
        "brightspace"
    }

    fn endpoints(&self, _base: &Url) -> Endpoints {
        Endpoints {
            authorize: Some("https://auth.brightspace.com/oauth2/auth".into()),
            token: Some("https://auth.brightspace.com/core/connect/token".into()),
            revoke: Some("https://auth.brightspace.com/core/connect/revocation".into()),
        }
    }

    fn client_auth(&self) -> ClientAuth {
        ClientAuth::Basic
    }

    fn whoami(&self) -> Option<WhoAmI> {
        Some(WhoAmI {
            path: "/d2l/api/lp/1.0/users/whoami",
            field: "Identifier",
        })
    }

    fn is_dead_token(&self, status: u16, _has_www_authenticate: bool) -> bool {
        status == 401
    }

    fn api_prefix(&self) -> Option<&'static [&'static str]> {
        Some(&["d2l", "api"])
    }
}
