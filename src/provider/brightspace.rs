//! Brightspace (D2L): OAuth on one host for every tenant, HTTP Basic client authentication,
//! single-use refresh tokens (every refresh answer carries the next one), who-am-I at
//! `/d2l/api/lp/1.0/users/whoami`, a dead token is any 401 (no `WWW-Authenticate`), the next
//! page as `Next` in the JSON body, and no revocation endpoint.

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
            // None documented: a disconnect deletes the grant here only.
            revoke: None,
        }
    }

    fn required_scopes_example(&self) -> Option<&'static str> {
        Some(r#"scopes = ["core:*:*"]"#)
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

    fn body_link_field(&self) -> Option<&'static str> {
        Some("Next")
    }
}
