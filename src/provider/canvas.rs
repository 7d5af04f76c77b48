//! Canvas: form client authentication, revocation by `DELETE` with the token, who-am-I at
//! `/api/v1/users/self`, a dead token is a 401 *with* `WWW-Authenticate` (without it, the
//! token lacks a scope), and a revoked refresh token is `invalid_request` "refresh_token
//! not found" rather than `invalid_grant`.

use url::Url;

use super::{under, ClientAuth, Endpoints, Provider, Revocation, WhoAmI};

#[derive(Debug)]
pub struct Canvas;

impl Provider for Canvas {
    fn kind(&self) -> &'static str {
        "canvas"
    }

    fn endpoints(&self, base: &Url) -> Endpoints {
        Endpoints {
            authorize: under(base, "/login/oauth2/auth"),
            token: under(base, "/login/oauth2/token"),
            revoke: under(base, "/login/oauth2/token"),
        }
    }

    fn client_auth(&self) -> ClientAuth {
        ClientAuth::Form
    }

    fn revocation(&self) -> Revocation {
        Revocation::DeleteWithBearer
    }

    fn whoami(&self) -> Option<WhoAmI> {
        Some(WhoAmI {
            path: "/api/v1/users/self",
            field: "id",
        })
    }

    fn refuses_grant(&self, error: &str, description: &str) -> bool {
        error == "invalid_grant"
            || (error == "invalid_request" && description.contains("refresh_token not found"))
    }

    fn api_prefix(&self) -> Option<&'static [&'static str]> {
        Some(&["api"])
    }

    fn own_endpoints(&self) -> Option<&'static [&'static str]> {
        Some(&["login"])
    }
}
