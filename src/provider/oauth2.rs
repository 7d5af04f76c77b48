//! Any OAuth2 server: endpoints, client authentication and PKCE from the config or from the
//! issuer's metadata (`discovery`), RFC 7009 revocation, a dead token is a 401 with
//! `WWW-Authenticate` (RFC 6750), and no known API prefix, so routes permit every path
//! unless they say otherwise. Without either, client credentials go in HTTP Basic (`client_secret_basic`).

use url::Url;

use super::{ClientAuth, Endpoints, Provider};

#[derive(Debug)]
pub struct OAuth2;

impl Provider for OAuth2 {
    fn kind(&self) -> &'static str {
        "oauth2"
    }

    fn endpoints(&self, _base: &Url) -> Endpoints {
        Endpoints::default()
    }

    fn needs_endpoints(&self) -> bool {
        true
    }

    fn discovers(&self) -> bool {
        true
    }

    /// RFC 8414's default when metadata lists no methods, and the one RFC 6749 obliges
    /// every server to accept.
    fn client_auth(&self) -> ClientAuth {
        ClientAuth::Basic
    }

    fn api_prefix(&self) -> Option<&'static [&'static str]> {
        None
    }
}
